/* ingestpath.c - the speed thread's work per event without Kafka:
 *
 *     bench-ingestpath CONFIG PAYLOADS [--per-commit N] [--reps R]
 *
 * CONFIG is a lambdad config (the demo's: its first stream and every view
 * of it, archive.compression_level); PAYLOADS holds one event a line
 * (`lambdad-gen --dump FILE`). Each repetition makes four passes over the
 * events, each adding one stage of what the speed thread does with a
 * message (speed/speed.c, take_message and commit_txn):
 *
 *     decode   event_decode
 *     apply    + event_apply to one staging table per view
 *     chunk    + arch_txn_add_event (16 Kafka partitions, round robin)
 *     commit   + arch_commit every N events (zstd and SQLite, durable) into
 *              a fresh archive in a temporary folder, and new staging tables
 *
 * and prints each stage's CPU seconds per million events: the difference
 * between a pass and the one before, each pass's CPU time (process CPU
 * clock) the least of the repetitions, which is the figure least moved by
 * other work on a shared machine. Kafka is left out on purpose: its cost
 * is the null consumer's (bench section 1). bench/results/NOTES.md,
 * issue 13, has the figures.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "archive/archive.h"
#include "config/config.h"
#include "core/event.h"
#include "core/gran.h"
#include "core/vtable.h"

#define PROG "bench-ingestpath"
#define PARTITIONS 16
enum { DECODE, APPLY, CHUNK, COMMIT, PASSES };
static const char *const pass_name[PASSES] = {"decode", "apply", "chunk", "commit"};

typedef struct {
    const char **line;
    size_t *len, n;
} events;

static double cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Splits buf (newline-terminated lines) into ev; 0 or -ENOMEM. */
static int split_lines(char *buf, size_t size, events *ev)
{
    size_t cap = 0;
    for (char *p = buf, *end = buf + size; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (ev->n == cap) {
            cap = cap ? cap * 2 : 4096;
            const char **l = realloc(ev->line, cap * sizeof(*l));
            size_t *n = l ? realloc(ev->len, cap * sizeof(*n)) : NULL;
            if (l)
                ev->line = l;
            if (!n)
                return -ENOMEM;
            ev->len = n;
        }
        ev->line[ev->n] = p;
        ev->len[ev->n++] = len;
        p += len + 1;
    }
    return 0;
}

static char *read_file(const char *path, size_t *size)
{
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    long n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (n > 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n)) &&
        fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *size = n > 0 ? (size_t)n : 0;
    return buf;
}

typedef struct {
    const config *cfg;
    const stream_def *st;
    size_t stream_idx;
    const events *ev;
    size_t per_commit;
    event_decoder *dec;
    field_value *vals;
    const char *dir;
} bench;

/* One pass with the stages up to `last`; its CPU seconds, or -1 after
 * printing why it failed. */
static double run_pass(bench *b, int last, int rep)
{
    const config *cfg = b->cfg;
    vtable **stage = last >= APPLY ? vtables_new_per_view(cfg->views, cfg->nviews) : NULL;
    arch_txn *txn = last >= CHUNK ? arch_txn_new() : NULL;
    arch *w = NULL;
    char path[4096], *err = NULL;
    snprintf(path, sizeof(path), "%s/archive-%d.db", b->dir, rep);
    double result = -1;
    if ((last >= APPLY && !stage) || (last >= CHUNK && !txn)) {
        fprintf(stderr, PROG ": out of memory\n");
        goto out;
    }
    if (last >= COMMIT && arch_open(path, 0, cfg->compression_level, &w, &err) < 0) {
        fprintf(stderr, PROG ": %s: %s\n", path, err ? err : "cannot open");
        goto out;
    }
    int64_t offset[PARTITIONS] = {0}, last_seq;
    double t0 = cpu_s();
    for (size_t i = 0; i < b->ev->n; i++) {
        int64_t ts_ms;
        const char *reason, *detail;
        if (event_decode(b->dec, b->st, b->ev->line[i], b->ev->len[i], 0, &ts_ms, b->vals, &reason,
                         &detail) < 0) {
            fprintf(stderr, PROG ": event %zu: %s (%s)\n", i + 1, reason, detail);
            goto out;
        }
        for (size_t v = 0; last >= APPLY && v < cfg->nviews; v++)
            if (cfg->views[v].stream_idx == b->stream_idx &&
                event_apply(&cfg->views[v], stage[v], ts_ms, b->vals, b->dec) < 0) {
                fprintf(stderr, PROG ": out of memory\n");
                goto out;
            }
        if (last >= CHUNK) {
            int part = (int)(i % PARTITIONS);
            int64_t tpart = gran_floor(cfg->batch_partition, floor_div(ts_ms, 1000));
            if (arch_txn_add_event(txn, b->st->name, part, tpart, offset[part]++, ts_ms,
                                   b->ev->line[i], b->ev->len[i]) < 0) {
                fprintf(stderr, PROG ": out of memory\n");
                goto out;
            }
        }
        if (last < CHUNK || ((i + 1) % b->per_commit && i + 1 < b->ev->n))
            continue;
        if (last >= COMMIT && arch_commit(w, txn, &last_seq, &err) < 0) {
            fprintf(stderr, PROG ": commit: %s\n", err ? err : "failed");
            goto out;
        }
        arch_txn_reset(txn);
        /* the speed thread hands its tables over and starts new ones */
        vtables_free(stage, cfg->nviews);
        if (!(stage = vtables_new_per_view(cfg->views, cfg->nviews))) {
            fprintf(stderr, PROG ": out of memory\n");
            goto out;
        }
    }
    result = cpu_s() - t0;
out:
    free(err);
    vtables_free(stage, cfg->nviews);
    arch_txn_free(txn);
    if (w) {
        arch_close(w);
        const char *sfx[] = {"", "-wal", "-shm"};
        for (int k = 0; k < 3; k++) {
            char p[4200];
            snprintf(p, sizeof(p), "%s%s", path, sfx[k]);
            unlink(p);
        }
    }
    return result;
}

int main(int argc, char **argv)
{
    size_t per_commit = 32000;   /* 50 ms at ~650k events/s */
    int reps = 5;
    const char *cfg_path = NULL, *payloads = NULL;
    bool usage = false;
    for (int i = 1; i < argc && !usage; i++) {
        if (!strcmp(argv[i], "--per-commit") && i + 1 < argc)
            per_commit = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!cfg_path)
            cfg_path = argv[i];
        else if (!payloads)
            payloads = argv[i];
        else
            usage = true;
    }
    if (usage || !cfg_path || !payloads || per_commit < 1 || reps < 1) {
        fprintf(stderr, "usage: " PROG " CONFIG PAYLOADS [--per-commit N] [--reps R]\n");
        return 2;
    }
    config *cfg = NULL;
    config_errors errs = {0};
    if (config_load(cfg_path, &cfg, &errs) < 0) {
        fprintf(stderr, PROG ": %s: %s\n", cfg_path, errs.n ? errs.items[0] : "cannot load");
        config_errors_clear(&errs);
        return 1;
    }
    config_errors_clear(&errs);
    size_t size;
    char *buf = read_file(payloads, &size);
    events ev = {0};
    char dir[] = "/tmp/" PROG "-XXXXXX";
    bench b = {.cfg = cfg, .st = cfg->nstreams ? &cfg->streams[0] : NULL, .ev = &ev,
               .per_commit = per_commit, .dec = event_decoder_new(), .dir = dir};
    int rc = 1;
    if (!buf || !size) {
        fprintf(stderr, PROG ": %s: cannot read, or empty\n", payloads);
        goto out;
    }
    if (!b.st || split_lines(buf, size, &ev) < 0 || !b.dec ||
        !(b.vals = calloc(stream_nvals(b.st), sizeof(*b.vals))) || !mkdtemp(dir)) {
        fprintf(stderr, PROG ": %s\n", !b.st ? "the config has no stream" : strerror(errno));
        goto out;
    }
    double best[PASSES];
    for (int p = 0; p < PASSES; p++)
        best[p] = -1;
    for (int r = 0; r < reps; r++)
        for (int p = 0; p < PASSES; p++) {
            double s = run_pass(&b, p, r);
            if (s < 0)
                goto out_dir;
            if (best[p] < 0 || s < best[p])
                best[p] = s;
        }
    double m = (double)ev.n / 1e6;
    printf("%zu events of %.1f bytes, %zu per commit, %d views, zstd level %d, least of %d "
           "repetitions\n", ev.n, (double)size / (double)ev.n - 1, per_commit, (int)cfg->nviews,
           cfg->compression_level, reps);
    printf("CPU s per million events:");
    for (int p = 0; p < PASSES; p++)
        printf(" %s %.3f", pass_name[p], (best[p] - (p ? best[p - 1] : 0)) / m);
    printf(" total %.3f\n", best[PASSES - 1] / m);
    rc = 0;
out_dir:
    rmdir(dir);
out:
    free(b.vals);
    event_decoder_free(b.dec);
    free(ev.line);
    free(ev.len);
    free(buf);
    config_free(cfg);
    return rc;
}
