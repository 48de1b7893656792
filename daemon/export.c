/* export.c - lambdad export: a view's query answer as CSV or JSON lines.
 *
 * Every option besides -c, --view, --format and --output is a query
 * parameter of the same name, passed on as it is (--from X --granularity
 * day ...), so a parameter the query API gains works here unchanged; the
 * query API checks them and its error is printed. The answer comes from
 * the running daemon when one holds the archive's lock (through its HTTP
 * API: http.listen and the bearer token of the same config), otherwise
 * from the files (daemon/offline.h), holding the lock shared so that no
 * daemon starts meanwhile. Both paths run the same query code, so they
 * give the same bytes for the same state.
 *
 * CSV is the query API's format=csv as it is; JSON lines are the rows of
 * its JSON answer, one object per line, byte for byte.
 */
#include "daemon/cli.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/jbuf.h"
#include "core/log.h"
#include "core/strutil.h"
#include "daemon/archlock.h"
#include "daemon/client.h"
#include "daemon/offline.h"
#include "serving/query.h"

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: lambdad export -c FILE --view NAME [--format csv|jsonl] [--output FILE]\n"
            "                      [--PARAMETER VALUE]...\n"
            "\n"
            "Writes a view's query answer: CSV (a header line, one line per row) or JSON lines\n"
            "(one row object per line, as in the query API's rows). Every other option is a\n"
            "query parameter of GET /v1/views/{view}/query, e.g. --from 2026-11-01T00:00:00Z\n"
            "--to 2026-12-01T00:00:00Z --granularity day --group_by country --filter country:DE.\n"
            "Asks the lambdad running on the config's archive (its http.listen), or reads the\n"
            "archive and the views file when none runs.\n"
            "\n"
            "  -c, --config FILE   the daemon's config\n"
            "      --view NAME     the view\n"
            "      --format F      csv (default) or jsonl\n"
            "  -o, --output FILE   write there (default: standard output)\n");
}

typedef struct {
    const char *config, *view, *output;
    bool jsonl;
    const char **keys, **vals;   /* the query parameters, in order */
    size_t np;
} export_args;

/* --name value, --name=value; 0, or 2 after printing the problem */
static int parse_args(int argc, char **argv, export_args *a)
{
    a->keys = calloc((size_t)argc, sizeof(*a->keys));
    a->vals = calloc((size_t)argc, sizeof(*a->vals));
    if (!a->keys || !a->vals) {
        fprintf(stderr, "lambdad export: out of memory\n");
        return 2;
    }
    const char *format = "csv";
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            usage(stdout);
            exit(0);
        }
        const char *name, *val = NULL;
        size_t nlen;
        if (strcmp(arg, "-c") == 0 || strcmp(arg, "-o") == 0) {
            name = arg[1] == 'c' ? "config" : "output";
            nlen = strlen(name);
        } else if (strncmp(arg, "--", 2) == 0 && arg[2]) {
            name = arg + 2;
            const char *eq = strchr(name, '=');
            nlen = eq ? (size_t)(eq - name) : strlen(name);
            if (eq)
                val = eq + 1;
        } else {
            fprintf(stderr, "lambdad export: unexpected argument '%s'\n", arg);
            usage(stderr);
            return 2;
        }
        if (!val) {
            if (i + 1 >= argc) {
                fprintf(stderr, "lambdad export: %s needs a value\n", arg);
                return 2;
            }
            val = argv[++i];
        }
#define IS(lit) (nlen == strlen(lit) && strncmp(name, lit, nlen) == 0)
        if (IS("config"))
            a->config = val;
        else if (IS("view"))
            a->view = val;
        else if (IS("output"))
            a->output = val;
        else if (IS("format"))
            format = val;
        else {
            char *key = strndup(name, nlen);
            if (!key) {
                fprintf(stderr, "lambdad export: out of memory\n");
                return 2;
            }
            a->keys[a->np] = key;
            a->vals[a->np++] = val;
        }
#undef IS
    }
    if (strcmp(format, "jsonl") == 0)
        a->jsonl = true;
    else if (strcmp(format, "csv") != 0) {
        fprintf(stderr, "lambdad export: unknown --format '%s' (expected csv or jsonl)\n", format);
        return 2;
    }
    if (!a->config || !a->view) {
        fprintf(stderr, "lambdad export: %s is required\n", !a->config ? "-c FILE" : "--view NAME");
        usage(stderr);
        return 2;
    }
    return 0;
}

/* The query string: every parameter given, then the format. */
static char *query_string(const export_args *a)
{
    jbuf b;
    jb_init(&b);
    for (size_t i = 0; i < a->np; i++) {
        char *k = client_escape(a->keys[i]), *v = client_escape(a->vals[i]);
        if (!k || !v)
            b.oom = true;
        jb_lit(&b, i ? "&" : "?");
        jb_lit(&b, k ? k : "");
        jb_lit(&b, "=");
        jb_lit(&b, v ? v : "");
        free(k);
        free(v);
    }
    jb_lit(&b, a->np ? "&format=" : "?format=");
    jb_lit(&b, a->jsonl ? "json" : "csv");
    return jb_take(&b, NULL);
}

/* The JSON answer's rows, one per line: each element of "rows" copied as
 * it is. The answer is the query API's own JSON, so the first "rows":[
 * is the array (no string before it can hold those bytes followed by a
 * '['), and strings are skipped by their quotes and escapes. */
static int write_rows(const char *s, size_t len, FILE *out, int64_t *nrows)
{
    const char *p = memmem(s, len, "\"rows\":[", 8);
    if (!p)
        return -EINVAL;
    size_t i = (size_t)(p - s) + 8, start = 0;
    int depth = 0;
    bool in_str = false;
    for (; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
            continue;
        }
        if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            if (depth++ == 0)
                start = i;
        } else if (c == '}' || c == ']') {
            if (depth == 0)
                return 0;   /* the end of "rows" */
            if (--depth == 0) {
                if (fwrite(s + start, 1, i + 1 - start, out) != i + 1 - start || fputc('\n', out) == EOF)
                    return -EIO;
                (*nrows)++;
            }
        }
    }
    return -EINVAL;
}

/* An error answer's message ({"error":{"message":...}}), or the body;
 * with the HTTP status when it came from the daemon (status > 0). */
static void print_error(long status, const char *body, size_t len)
{
    json_t *j = json_loadb(body, len, 0, NULL);
    const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    if (status > 0)
        fprintf(stderr, "lambdad export: %s (HTTP %ld)\n", msg ? msg : body, status);
    else
        fprintf(stderr, "lambdad export: %s\n", msg ? msg : body);
    json_decref(j);
}

/* The lines of a format=csv answer: its line breaks outside quoted
 * fields (a quoted field may hold line breaks; a doubled quote inside one
 * toggles twice). */
static int64_t count_csv_lines(const char *s, size_t len)
{
    int64_t n = 0;
    bool quoted = false;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '"')
            quoted = !quoted;
        else if (s[i] == '\n' && !quoted)
            n++;
    return n;
}

/* Writes a 200 answer to the output and says what was written. */
static int write_answer(const export_args *a, const char *body, size_t len, const char *from,
                        const char *seq, const char *live)
{
    FILE *out = stdout;
    if (a->output && !(out = fopen(a->output, "w"))) {
        fprintf(stderr, "lambdad export: cannot write %s: %s\n", a->output, strerror(errno));
        return 1;
    }
    int64_t rows = 0;
    int r = 0;
    if (a->jsonl)
        r = write_rows(body, len, out, &rows);
    else if (fwrite(body, 1, len, out) != len)
        r = -EIO;
    else
        rows = count_csv_lines(body, len) - 1;   /* the header line */
    if (fflush(out) != 0 || ferror(out))
        r = -EIO;
    if (out != stdout && fclose(out) != 0)
        r = -EIO;
    if (r < 0) {
        fprintf(stderr, "lambdad export: %s\n", r == -EIO ? "cannot write the output"
                                                          : "malformed answer from lambdad");
        return 1;
    }
    fprintf(stderr, "lambdad export: %lld row(s) of view '%s' from %s (batch_seq %s, live_events %s)%s%s\n",
            (long long)rows, a->view, from, seq ? seq : "?", live ? live : "?",
            a->output ? " to " : "", a->output ? a->output : "");
    return 0;
}

/* Asks the daemon at the config's http.listen, once it is known to serve
 * this archive (a daemon of another config listening there would answer
 * from other data). */
static int through_daemon(const config *cfg, const export_args *a, long pid)
{
    char *err = NULL, *theirs = NULL, *qs = query_string(a), *view = client_escape(a->view);
    char *path = qs && view ? str_printf("/v1/views/%s/query%s", view, qs) : NULL;
    client *cl = NULL;
    client_answer st = {0}, ans = {0};
    int rc = 1, other = 0;
    if (client_new(cfg, &cl, &err) < 0) {
        fprintf(stderr, "lambdad export: lambdad is running on %s (pid %ld), but %s\n",
                cfg->archive_path, pid, err);
    } else if (!path) {
        fprintf(stderr, "lambdad export: out of memory\n");
    } else if ((other = client_serves_archive(cl, &st, &theirs, &err)) < 0 ||
               (other == 0 && client_get(cl, path, &ans, &err) < 0)) {
        fprintf(stderr, "lambdad export: lambdad is running on %s (pid %ld) but does not answer "
                        "at %s: %s\n", cfg->archive_path, pid, client_base(cl), err);
    } else if (other && st.status != 200) {
        print_error(st.status, st.body, st.len);
    } else if (other) {
        fprintf(stderr, "lambdad export: the lambdad at %s serves archive %s, not %s (which "
                        "lambdad pid %ld holds); not exporting from the wrong one\n",
                client_base(cl), theirs ? theirs : "(unknown)", cfg->archive_path, pid);
    } else if (ans.status != 200) {
        print_error(ans.status, ans.body, ans.len);
    } else {
        char *from = str_printf("the running lambdad at %s", client_base(cl));
        rc = write_answer(a, ans.body, ans.len, from ? from : client_base(cl), ans.batch_seq,
                          ans.live_events);
        free(from);
    }
    client_answer_clear(&st);
    client_answer_clear(&ans);
    free(err);
    free(theirs);
    free(qs);
    free(view);
    free(path);
    client_free(cl);
    return rc;
}

static int from_files(const config *cfg, const export_args *a)
{
    char *err = NULL;
    offline *o = NULL;
    if (offline_open(cfg, a->view, &o, &err) < 0) {
        fprintf(stderr, "lambdad export: %s\n", err ? err : "out of memory");
        free(err);
        return 1;
    }
    size_t np = a->np + 1;
    qparam *p = calloc(np, sizeof(*p));
    if (!p) {
        offline_close(o);
        fprintf(stderr, "lambdad export: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < a->np; i++)
        p[i] = (qparam){a->keys[i], strlen(a->keys[i]), a->vals[i], strlen(a->vals[i])};
    const char *fmt = a->jsonl ? "json" : "csv";
    p[a->np] = (qparam){"format", 6, fmt, strlen(fmt)};
    query_opts qo = {0};
    char *body = NULL;
    size_t len = 0;
    int status = query_handle_cached(offline_config(o), offline_source(o), NULL, a->view,
                                     strlen(a->view), p, np, &qo, &body, &len);
    int rc = 1;
    if (!body) {
        fprintf(stderr, "lambdad export: out of memory\n");
    } else if (status != 200) {
        print_error(0, body, len);
    } else {
        char seq[24], live[24];
        snprintf(seq, sizeof(seq), "%lld", (long long)qo.wm.batch_seq);
        snprintf(live, sizeof(live), "%lld", (long long)qo.wm.live_events);
        char *from = str_printf("the files (no lambdad runs on %s)", cfg->archive_path);
        rc = write_answer(a, body, len, from ? from : "the files", seq, live);
        free(from);
    }
    free(body);
    free(p);
    offline_close(o);
    return rc;
}

int export_main(int argc, char **argv)
{
    export_args a = {0};
    int rc = parse_args(argc, argv, &a);
    config *cfg = NULL;
    if (rc == 0 && cli_config_load(a.config, &cfg) < 0)
        rc = 1;
    if (rc == 0) {
        log_init("lambdad export", LOG_LVL_WARN);
        archlock lock;   /* shared: no daemon starts while the files are read */
        int r = archlock_take(cfg->archive_path, false, &lock);
        if (r == -EWOULDBLOCK) {
            curl_global_init(CURL_GLOBAL_DEFAULT);
            rc = through_daemon(cfg, &a, strtol(lock.holder, NULL, 10));
            curl_global_cleanup();
        } else if (r < 0) {
            fprintf(stderr, "lambdad export: cannot tell whether lambdad runs on %s: %s-lock: %s\n",
                    cfg->archive_path, cfg->archive_path, strerror(-r));
            rc = 1;
        } else {
            rc = from_files(cfg, &a);
            archlock_release(&lock);
        }
    }
    config_free(cfg);
    for (size_t i = 0; i < a.np; i++)
        free((char *)a.keys[i]);
    free(a.keys);
    free(a.vals);
    return rc;
}
