/* import_cmd.c - `lambdad import`: files of history into the archive.
 *
 * Who writes the archive: the process holding the exclusive flock on
 * <archive>-lock (main.c takes it for the daemon's whole life, and the
 * kernel drops it with the process, also on kill -9). So the command tries
 * that lock first:
 *  - it gets it: no daemon runs on the archive, and none can start while
 *    the lock is held; the command writes the archive itself (imports are
 *    picked up by the daemon's next start, which replays the archive after
 *    the batch views' R, like late events);
 *  - it is held: a daemon runs (its pid is in the file); the command asks
 *    the daemon at the config's http.listen for /v1/status and checks that
 *    it serves this very archive, then sends each file (as it is on disk,
 *    compressed or not) to POST /v1/admin/import, which imports it through
 *    the speed thread into the live views too.
 * Either way the same code (import/import.h) reads the file, so the
 * answers do not depend on the path taken. One thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "core/strutil.h"
#include "daemon/cli.h"
#include "import/import.h"

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: lambdad import -c FILE --stream NAME [--format jsonl|csv] [-q] FILE...\n"
            "\n"
            "Imports files of events (JSON lines or CSV with a header line; plain, gzip\n"
            "or zstd) into the archive, through the running daemon when one runs on it.\n"
            "A file already imported into the stream is skipped; an interrupted import\n"
            "resumes where it stopped.\n"
            "\n"
            "  -c, --config FILE     the daemon's JSON config\n"
            "  -s, --stream NAME     the stream the events belong to\n"
            "  -f, --format FORMAT   jsonl or csv (default: from each file's extension:\n"
            "                        .jsonl .ndjson .json .csv, also with .gz .zst)\n"
            "      --commit-every N  records per archive transaction (default %d)\n"
            "  -q, --quiet           no progress line\n"
            "  -h, --help            this text\n",
            IMPORT_COMMIT_RECORDS);
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the progress line (a terminal only) --------------------------------- */

typedef struct {
    bool on;
    const char *name;
    double last;
} progress;

static void show_progress(void *ud, int pass, uint64_t done, uint64_t total,
                          const import_result *r)
{
    progress *p = ud;
    double now = mono_s();
    if (!p->on || now - p->last < 0.2)
        return;
    p->last = now;
    char pct[16] = "";
    if (total)
        snprintf(pct, sizeof(pct), " %3.0f%%", 100.0 * (double)done / (double)total);
    if (pass == 1)
        fprintf(stderr, "\r\033[K%s: reading%s, %lld record(s)", p->name, pct,
                (long long)r->records);
    else if (pass == 2)
        fprintf(stderr, "\r\033[K%s: importing%s, %lld event(s), %lld reject(s)", p->name, pct,
                (long long)r->imported, (long long)r->rejected);
    else
        fprintf(stderr, "\r\033[K%s: sending%s", p->name, pct);
}

static void end_progress(progress *p)
{
    if (p->on && p->last > 0)
        fprintf(stderr, "\r\033[K");
    p->last = 0;
}

static void print_summary(const char *name, const import_result *r, double secs)
{
    double rate = secs > 0 ? (double)(r->imported + r->rejected) / secs : 0;
    printf("%s: imported %lld, rejected %lld, skipped %lld (already imported) in %.2f s "
           "(%.0f events/s)\n", name, (long long)r->imported, (long long)r->rejected,
           (long long)r->skipped, secs, rate);
    fflush(stdout);
}

/* ---- the archive lock ---------------------------------------------------- */

/* 1 with *fd holding the lock (no daemon runs), 0 when a daemon holds it
 * (*pid: its pid text, maybe empty), or a negative errno (logged). */
static int try_lock(const char *archive_path, int *fd, char *pid, size_t pidsize)
{
    char *path = str_printf("%s-lock", archive_path);
    if (!path)
        return -ENOMEM;
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (*fd < 0) {
        int e = errno;
        fprintf(stderr, "lambdad import: cannot open the archive's lock file %s: %s\n", path,
                strerror(e));
        free(path);
        return -e;
    }
    if (flock(*fd, LOCK_EX | LOCK_NB) == 0) {
        char mine[32];
        int n = snprintf(mine, sizeof(mine), "%d\n", (int)getpid());
        if (ftruncate(*fd, 0) < 0 || pwrite(*fd, mine, (size_t)n, 0) != n)
            fprintf(stderr, "lambdad import: warning: cannot write the pid into %s\n", path);
        free(path);
        return 1;
    }
    int e = errno;
    ssize_t n = pread(*fd, pid, pidsize - 1, 0);
    pid[n > 0 ? n : 0] = '\0';
    pid[strcspn(pid, "\n")] = '\0';
    close(*fd);
    *fd = -1;
    if (e != EWOULDBLOCK) {
        fprintf(stderr, "lambdad import: cannot lock %s: %s\n", path, strerror(e));
        free(path);
        return -e;
    }
    free(path);
    return 0;
}

/* ---- direct: this process writes the archive ---------------------------- */

static int import_direct(const config *cfg, size_t si, char **files, const import_format *fmts,
                         size_t nfiles, int64_t per, bool quiet, import_result *total)
{
    arch *w = NULL;
    char *err = NULL;
    int r = arch_open(cfg->archive_path, 0, cfg->compression_level, &w, &err);
    if (r == 0)
        r = check_partition_unit(cfg, w, &err);
    if (r < 0) {
        fprintf(stderr, "lambdad import: cannot open archive %s: %s\n", cfg->archive_path,
                err ? err : strerror(-r));
        free(err);
        arch_close(w);
        return 1;
    }
    int failed = 0;
    for (size_t i = 0; i < nfiles; i++) {
        int fd = open(files[i], O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            fprintf(stderr, "lambdad import: %s: %s\n", files[i], strerror(errno));
            failed = 1;
            continue;
        }
        progress pg = {.on = !quiet && isatty(STDERR_FILENO), .name = files[i]};
        import_opts o = {.cfg = cfg, .stream_idx = si, .fmt = fmts[i], .name = files[i],
                         .commit_records = per, .sink = import_sink_archive(w),
                         .progress = show_progress, .progress_ud = &pg};
        import_result res;
        double t0 = mono_s();
        r = import_run(&o, fd, &res, &err);
        close(fd);
        end_progress(&pg);
        if (r < 0) {
            fprintf(stderr, "lambdad import: %s\n", err ? err : strerror(-r));
            free(err);
            err = NULL;
            failed = 1;
            continue;
        }
        print_summary(files[i], &res, mono_s() - t0);
        total->imported += res.imported;
        total->rejected += res.rejected;
        total->skipped += res.skipped;
    }
    arch_close(w);
    return failed;
}

/* ---- through the daemon -------------------------------------------------- */

typedef struct {
    char *p;
    size_t len;
} membuf;

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    membuf *b = ud;
    size_t k = size * n;
    if (b->len + k > (1u << 20))
        return 0;   /* an answer is a small JSON object */
    char *np = realloc(b->p, b->len + k + 1);
    if (!np)
        return 0;
    memcpy(np + b->len, data, k);
    b->p = np;
    b->len += k;
    b->p[b->len] = '\0';
    return k;
}

static int on_upload(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                     curl_off_t ulnow)
{
    import_result none = {0};
    show_progress(ud, 3, (uint64_t)ulnow, (uint64_t)ultotal, &none);
    return 0;
}

typedef struct {
    const config *cfg;
    char *base;                 /* http://127.0.0.1:8080 */
    struct curl_slist *headers;
} client;

/* One request: *status and the parsed JSON answer (NULL when not JSON).
 * body: a file to send (POST), or NULL (GET). 0 or -1 after printing. */
static int call(client *c, const char *path, FILE *body, uint64_t size, progress *pg,
                long *status, json_t **answer)
{
    CURL *h = curl_easy_init();
    membuf out = {0};
    char *url = str_printf("%s%s", c->base, path);
    if (!h || !url) {
        fprintf(stderr, "lambdad import: out of memory\n");
        curl_easy_cleanup(h);
        free(url);
        return -1;
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &out);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (c->cfg->http_tls_cert_file) {
        /* the daemon's own certificate is the one to trust, whatever name
         * it was issued to: we connect to the address of its config */
        curl_easy_setopt(h, CURLOPT_CAINFO, c->cfg->http_tls_cert_file);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (body) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_READDATA, body);   /* the default reader: fread */
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)size);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_upload);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, pg);
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    }
    CURLcode rc = curl_easy_perform(h);
    int r = 0;
    if (rc != CURLE_OK) {
        fprintf(stderr, "lambdad import: %s: %s\n", url, errbuf[0] ? errbuf : curl_easy_strerror(rc));
        r = -1;
    } else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
        *answer = out.p ? json_loads(out.p, 0, NULL) : NULL;
        if (!*answer) {
            fprintf(stderr, "lambdad import: %s: HTTP %ld with an answer that is not JSON\n", url,
                    *status);
            r = -1;
        }
    }
    free(out.p);
    free(url);
    curl_easy_cleanup(h);
    return r;
}

static const char *error_message(json_t *answer)
{
    const char *m = json_string_value(json_object_get(json_object_get(answer, "error"), "message"));
    return m ? m : "(no message)";
}

/* Whether the daemon answering at c->base serves cfg's archive: its
 * /v1/status names the archive path (compared after resolving links). */
static int check_same_archive(client *c, const char *pid)
{
    long status = 0;
    json_t *st = NULL;
    if (call(c, "/v1/status", NULL, 0, NULL, &status, &st) < 0) {
        fprintf(stderr, "lambdad import: archive %s is in use by lambdad (pid %s), but it does "
                "not answer at %s (http.listen of the config)\n", c->cfg->archive_path,
                pid[0] ? pid : "?", c->base);
        return -1;
    }
    int r = 0;
    const char *theirs = json_string_value(json_object_get(json_object_get(st, "archive"), "path"));
    char a[PATH_MAX], b[PATH_MAX];
    if (status != 200) {
        fprintf(stderr, "lambdad import: %s/v1/status: HTTP %ld: %s\n", c->base, status,
                error_message(st));
        r = -1;
    } else if (!theirs || strcmp(realpath(theirs, a) ? a : theirs,
                                 realpath(c->cfg->archive_path, b) ? b : c->cfg->archive_path)) {
        fprintf(stderr, "lambdad import: the lambdad at %s serves archive %s, not %s (which "
                "lambdad pid %s holds); refusing to import into the wrong one\n", c->base,
                theirs ? theirs : "(unknown)", c->cfg->archive_path, pid[0] ? pid : "?");
        r = -1;
    }
    json_decref(st);
    return r;
}

static int import_remote(const config *cfg, size_t si, char **files, const import_format *fmts,
                         size_t nfiles, int64_t per, bool quiet, const char *pid,
                         import_result *total)
{
    const char *host = cfg->http_host;
    if (!strcmp(host, "0.0.0.0") || !host[0])
        host = "127.0.0.1";
    else if (!strcmp(host, "::"))
        host = "::1";
    client c = {.cfg = cfg};
    c.base = str_printf(strchr(host, ':') ? "%s://[%s]:%d" : "%s://%s:%d",
                        cfg->http_tls_cert_file ? "https" : "http", host, cfg->http_port);
    c.headers = curl_slist_append(NULL, "Content-Type: application/octet-stream");
    char *auth = cfg->http_auth_token ? str_printf("Authorization: Bearer %s",
                                                   cfg->http_auth_token) : NULL;
    if (auth)
        c.headers = curl_slist_append(c.headers, auth);
    int failed = 0;
    if (!c.base || !c.headers || (cfg->http_auth_token && !auth)) {
        fprintf(stderr, "lambdad import: out of memory\n");
        failed = 1;
    } else if (cfg->http_port == 0) {
        fprintf(stderr, "lambdad import: archive %s is in use by lambdad (pid %s), whose "
                "http.listen has port 0: cannot reach it; import while it is stopped\n",
                cfg->archive_path, pid[0] ? pid : "?");
        failed = 1;
    } else if (check_same_archive(&c, pid) < 0) {
        failed = 1;
    }
    for (size_t i = 0; i < nfiles && !failed; i++) {
        FILE *f = fopen(files[i], "rb");
        struct stat sb;
        if (!f || fstat(fileno(f), &sb) < 0) {
            fprintf(stderr, "lambdad import: %s: %s\n", files[i], strerror(errno));
            if (f)
                fclose(f);
            failed = 1;
            continue;
        }
        char *copy = strdup(files[i]);
        char *name = copy ? curl_easy_escape(NULL, basename(copy), 0) : NULL;
        char *path = name ? str_printf("/v1/admin/import?stream=%s&format=%s&name=%s",
                                       cfg->streams[si].name, import_format_name(fmts[i]), name)
                          : NULL;
        char *full = path && per > 0 ? str_printf("%s&commit_every=%lld", path, (long long)per)
                                     : NULL;
        progress pg = {.on = !quiet && isatty(STDERR_FILENO), .name = files[i]};
        long status = 0;
        json_t *ans = NULL;
        double t0 = mono_s();
        int r = path && (per <= 0 || full)
                    ? call(&c, full ? full : path, f, (uint64_t)sb.st_size, &pg, &status, &ans)
                    : (fprintf(stderr, "lambdad import: out of memory\n"), -1);
        end_progress(&pg);
        fclose(f);
        curl_free(name);
        free(copy);
        free(path);
        free(full);
        if (r == 0 && status == 200) {
            import_result res = {
                .imported = json_integer_value(json_object_get(ans, "imported")),
                .rejected = json_integer_value(json_object_get(ans, "rejected")),
                .skipped = json_integer_value(json_object_get(ans, "skipped")),
            };
            print_summary(files[i], &res, mono_s() - t0);
            total->imported += res.imported;
            total->rejected += res.rejected;
            total->skipped += res.skipped;
        } else {
            if (r == 0)
                fprintf(stderr, "lambdad import: %s: HTTP %ld: %s\n", files[i], status,
                        error_message(ans));
            failed = 1;
        }
        json_decref(ans);
    }
    free(auth);
    free(c.base);
    curl_slist_free_all(c.headers);
    return failed;
}

int import_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"stream", required_argument, NULL, 's'},
        {"format", required_argument, NULL, 'f'},
        {"commit-every", required_argument, NULL, 'n'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {0, 0, 0, 0},
    };
    const char *path = NULL, *stream = NULL, *format = NULL;
    int64_t per = 0;
    bool quiet = false;
    int c;
    while ((c = getopt_long(argc, argv, "c:s:f:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': path = optarg; break;
        case 's': stream = optarg; break;
        case 'f': format = optarg; break;
        case 'q': quiet = true; break;
        case 'n': {
            char *end;
            per = strtoll(optarg, &end, 10);
            if (*end || per < 1 || per > 10000000) {
                fprintf(stderr, "lambdad import: --commit-every wants a number of records from "
                        "1 to 10000000, not '%s'\n", optarg);
                return 2;
            }
            break;
        }
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!path || !stream || optind == argc) {
        fprintf(stderr, "lambdad import: %s\n", !path ? "-c FILE is required"
                                                : !stream ? "--stream NAME is required"
                                                : "no file to import");
        usage(stderr);
        return 2;
    }
    import_format forced = IMPORT_JSONL;
    if (format && import_format_parse(format, &forced) < 0) {
        fprintf(stderr, "lambdad import: unknown --format '%s' (jsonl or csv)\n", format);
        return 2;
    }
    size_t nfiles = (size_t)(argc - optind);
    char **files = argv + optind;
    import_format *fmts = calloc(nfiles, sizeof(*fmts));
    if (!fmts)
        return 1;
    for (size_t i = 0; i < nfiles; i++)
        if (format)
            fmts[i] = forced;
        else if (import_format_of_name(files[i], &fmts[i]) < 0) {
            fprintf(stderr, "lambdad import: %s: cannot tell the format from the name "
                    "(.jsonl, .ndjson, .json or .csv, also with .gz or .zst); use --format\n",
                    files[i]);
            free(fmts);
            return 2;
        }

    config *cfg = NULL;
    config_errors errs = {0};
    if (config_load(path, &cfg, &errs) < 0) {
        for (size_t i = 0; i < errs.n; i++)
            fprintf(stderr, "%s: %s\n", path, errs.items[i]);
        if (!errs.n)
            fprintf(stderr, "%s: out of memory\n", path);
        config_errors_clear(&errs);
        free(fmts);
        return 1;
    }
    size_t si = 0;
    while (si < cfg->nstreams && strcmp(cfg->streams[si].name, stream) != 0)
        si++;
    int rc = 1, lock_fd = -1;
    char pid[32] = "";
    import_result total = {0};
    double t0 = mono_s();
    if (si == cfg->nstreams) {
        fprintf(stderr, "lambdad import: %s has no stream '%s'\n", path, stream);
        goto out;
    }
    char *why = NULL;
    if (arch_check_path(cfg->archive_path, &why) < 0) {
        fprintf(stderr, "lambdad import: %s\n", why ? why : "out of memory");
        free(why);
        goto out;
    }
    int locked = try_lock(cfg->archive_path, &lock_fd, pid, sizeof(pid));
    if (locked < 0)
        goto out;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "lambdad import: cannot initialize libcurl\n");
        goto out;
    }
    rc = locked ? import_direct(cfg, si, files, fmts, nfiles, per, quiet, &total)
                : import_remote(cfg, si, files, fmts, nfiles, per, quiet, pid, &total);
    curl_global_cleanup();
    if (nfiles > 1) {
        import_result sum = total;
        print_summary("total", &sum, mono_s() - t0);
    }
out:
    if (lock_fd >= 0)
        close(lock_fd);   /* drops the lock */
    config_free(cfg);
    free(fmts);
    return rc;
}
