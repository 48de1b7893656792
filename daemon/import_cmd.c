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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>   /* curl_global_init */
#include <jansson.h>

#include "core/strutil.h"
#include "daemon/archlock.h"
#include "daemon/cli.h"
#include "daemon/client.h"
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

/* One file's summary line, and its counts into *total. */
static void add_file(const char *name, const import_result *r, double secs, import_result *total)
{
    print_summary(name, r, secs);
    total->imported += r->imported;
    total->rejected += r->rejected;
    total->skipped += r->skipped;
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
        add_file(files[i], &res, mono_s() - t0, total);
    }
    arch_close(w);
    return failed;
}

/* ---- through the daemon -------------------------------------------------- */

static void show_upload(void *ud, uint64_t sent, uint64_t total)
{
    import_result none = {0};
    show_progress(ud, 3, sent, total, &none);
}

/* the {"error":{"message":...}} of an API answer */
static const char *error_message(json_t *answer)
{
    const char *m = json_string_value(json_object_get(json_object_get(answer, "error"), "message"));
    return m ? m : "(no message)";
}

/* Whether the daemon answering at cl's address is the one holding the
 * archive (pid, "?" when unknown). 0, or -1 after saying why. */
static int check_same_archive(client *cl, const config *cfg, const char *pid)
{
    client_answer st;
    char *theirs = NULL, *err = NULL;
    json_t *j = NULL;
    int r = client_serves_archive(cl, &st, &theirs, &err);
    if (r < 0)
        fprintf(stderr, "lambdad import: %s/v1/status: %s\n"
                "lambdad import: archive %s is in use by lambdad (pid %s), but it does not answer "
                "at %s (http.listen of the config)\n", client_base(cl), err, cfg->archive_path,
                pid, client_base(cl));
    else if (r > 0 && st.status != 200) {
        j = json_loadb(st.body, st.len, 0, NULL);
        fprintf(stderr, "lambdad import: %s/v1/status: HTTP %ld: %s\n", client_base(cl),
                st.status, error_message(j));
    } else if (r > 0)
        fprintf(stderr, "lambdad import: the lambdad at %s serves archive %s, not %s (which "
                "lambdad pid %s holds); refusing to import into the wrong one\n",
                client_base(cl), theirs ? theirs : "(unknown)", cfg->archive_path, pid);
    json_decref(j);
    client_answer_clear(&st);
    free(theirs);
    free(err);
    return r == 0 ? 0 : -1;
}

/* Sends one file to POST /v1/admin/import; 0 with *res, or -1 after
 * saying why. */
static int send_file(client *cl, const config *cfg, size_t si, const char *file,
                     import_format fmt, int64_t per, bool quiet, import_result *res)
{
    FILE *f = fopen(file, "rb");
    struct stat sb;
    if (!f || fstat(fileno(f), &sb) < 0) {
        fprintf(stderr, "lambdad import: %s: %s\n", file, strerror(errno));
        if (f)
            fclose(f);
        return -1;
    }
    char *copy = strdup(file);
    char *name = copy ? client_escape(basename(copy)) : NULL;
    char every[32] = "";
    if (per > 0)
        snprintf(every, sizeof(every), "&commit_every=%lld", (long long)per);
    char *path = name ? str_printf("/v1/admin/import?stream=%s&format=%s&name=%s%s",
                                   cfg->streams[si].name, import_format_name(fmt), name, every)
                      : NULL;
    progress pg = {.on = !quiet && isatty(STDERR_FILENO), .name = file};
    client_answer ans = {0};
    char *err = NULL;
    json_t *j = NULL;
    int r = path ? client_post_file(cl, path, f, (uint64_t)sb.st_size, show_upload, &pg, &ans,
                                    &err)
                 : -ENOMEM;
    end_progress(&pg);
    fclose(f);
    if (!path)
        fprintf(stderr, "lambdad import: out of memory\n");
    else if (r < 0)
        fprintf(stderr, "lambdad import: %s%s: %s\n", client_base(cl), path, err);
    else if (!(j = json_loadb(ans.body, ans.len, 0, NULL)))
        fprintf(stderr, "lambdad import: %s%s: HTTP %ld with an answer that is not JSON\n",
                client_base(cl), path, ans.status);
    else if (ans.status != 200)
        fprintf(stderr, "lambdad import: %s: HTTP %ld: %s\n", file, ans.status,
                error_message(j));
    else
        *res = (import_result){
            .imported = json_integer_value(json_object_get(j, "imported")),
            .rejected = json_integer_value(json_object_get(j, "rejected")),
            .skipped = json_integer_value(json_object_get(j, "skipped")),
        };
    int ok = path && r == 0 && j && ans.status == 200;
    json_decref(j);
    client_answer_clear(&ans);
    free(err);
    free(path);
    free(name);
    free(copy);
    return ok ? 0 : -1;
}

static int import_remote(const config *cfg, size_t si, char **files, const import_format *fmts,
                         size_t nfiles, int64_t per, bool quiet, const char *pid,
                         import_result *total)
{
    if (cfg->http_port == 0) {
        fprintf(stderr, "lambdad import: archive %s is in use by lambdad (pid %s), whose "
                "http.listen has port 0: cannot reach it; import while it is stopped\n",
                cfg->archive_path, pid);
        return 1;
    }
    client *cl = NULL;
    char *err = NULL;
    if (client_new(cfg, &cl, &err) < 0) {
        fprintf(stderr, "lambdad import: %s\n", err);
        free(err);
        return 1;
    }
    int failed = check_same_archive(cl, cfg, pid) < 0;
    for (size_t i = 0; i < nfiles && !failed; i++) {
        import_result res;
        double t0 = mono_s();
        if (send_file(cl, cfg, si, files[i], fmts[i], per, quiet, &res) < 0) {
            failed = 1;
            continue;
        }
        add_file(files[i], &res, mono_s() - t0, total);
    }
    client_free(cl);
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
    if (!fmts) {
        fprintf(stderr, "lambdad import: out of memory\n");
        return 1;
    }
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
    if (cli_config_load(path, &cfg) < 0) {
        free(fmts);
        return 1;
    }
    size_t si = 0;
    while (si < cfg->nstreams && strcmp(cfg->streams[si].name, stream) != 0)
        si++;
    int rc = 1;
    archlock lock = {.fd = -1};
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
    int locked = archlock_take(cfg->archive_path, true, &lock);
    if (locked < 0 && locked != -EWOULDBLOCK) {
        if (lock.open_failed)
            fprintf(stderr, "lambdad import: cannot open the archive's lock file %s: %s\n",
                    lock.path, strerror(-locked));
        else
            fprintf(stderr, "lambdad import: cannot lock %s: %s\n", lock.path, strerror(-locked));
        goto out;
    }
    if (locked == 0 && lock.pid_err < 0)
        fprintf(stderr, "lambdad import: warning: cannot write the pid into %s\n", lock.path);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "lambdad import: cannot initialize libcurl\n");
        goto out;
    }
    rc = locked == 0 ? import_direct(cfg, si, files, fmts, nfiles, per, quiet, &total)
                     : import_remote(cfg, si, files, fmts, nfiles, per, quiet,
                                     lock.holder[0] ? lock.holder : "?", &total);
    curl_global_cleanup();
    if (nfiles > 1)
        print_summary("total", &total, mono_s() - t0);
out:
    archlock_release(&lock);
    config_free(cfg);
    free(fmts);
    return rc;
}
