/* mkarchive.c - bench-mkarchive: writes an archive of N generated events
 * straight through archive/archive.h, without Kafka.
 *
 * bench/run needs archives of millions of events (the batch benchmark's 1,
 * 4 and 16 million rows, the sqlite3 baseline); producing them through the
 * devbroker would take minutes and lose events to its retention. The events
 * are lambdad-gen's (tools/genev.c, same seed gives the same payloads), the
 * chunks are the ones lambdad's speed layer writes: one transaction per
 * --txn-events events, chunks per (stream, partition, day). Event i gets
 * time --start-time + i * --step-ms (or, with --span S, start + i * S / N:
 * N events spread evenly over S seconds, for any N; the scale benchmark's
 * 50M events over 365 days is a step of 630.72 ms, which whole milliseconds
 * cannot give) and Kafka partition --first-partition + i % --partitions,
 * with offsets counting per partition.
 * The default first partition (1000) lies outside any devbroker topic, so a
 * daemon started on the archive reads its real topic from the beginning
 * without any offset of the archive's history colliding with it; no offsets
 * are stored.
 *
 * Single-threaded; prints one summary line on stderr. Exit 0, 1 on error,
 * 2 on bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive/archive.h"
#include "core/gran.h"
#include "tools/genev.h"

#define PROG "bench-mkarchive"

static int parse_i64(const char *s, long long lo, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s || v < lo)
        return -EINVAL;
    *out = v;
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: " PROG " --out FILE --count N [options]\n"
            "\n"
            "Writes N generated page-view events (lambdad-gen's) into a new lambdad\n"
            "archive, as lambdad's speed layer would have stored them.\n"
            "\n"
            "  -o, --out FILE          the archive to create (must not exist)\n"
            "  -n, --count N           events\n"
            "  -s, --seed S            generator seed (default 1)\n"
            "      --start-time T      time of event 0, epoch s (default 1795392000)\n"
            "      --step-ms MS        time step between events (default 86)\n"
            "      --span S            spread the N events evenly over S seconds instead\n"
            "      --stream NAME       stream name (default pageviews)\n"
            "      --partitions P      Kafka partitions to spread over (default 8)\n"
            "      --first-partition F number of the first one (default 1000)\n"
            "      --partition-by G    time partition: hour, day, month (default day)\n"
            "      --txn-events N      events per archive transaction (default 100000)\n"
            "      --level L           zstd level (default 3)\n");
}

int main(int argc, char **argv)
{
    const char *out = NULL, *stream = "pageviews";
    long long count = -1, seed = 1, start = 1795392000LL, step = 86, parts = 8, first = 1000;
    long long per_txn = 100000, level = 3, span = -1;
    int have_step = 0;
    gran_t tgran = GRAN_DAY;
    enum { O_START = 256, O_STEP, O_SPAN, O_STREAM, O_PARTS, O_FIRST, O_BY, O_TXN, O_LEVEL };
    static const struct option longopts[] = {
        {"out", required_argument, NULL, 'o'},
        {"count", required_argument, NULL, 'n'},
        {"seed", required_argument, NULL, 's'},
        {"start-time", required_argument, NULL, O_START},
        {"step-ms", required_argument, NULL, O_STEP},
        {"span", required_argument, NULL, O_SPAN},
        {"stream", required_argument, NULL, O_STREAM},
        {"partitions", required_argument, NULL, O_PARTS},
        {"first-partition", required_argument, NULL, O_FIRST},
        {"partition-by", required_argument, NULL, O_BY},
        {"txn-events", required_argument, NULL, O_TXN},
        {"level", required_argument, NULL, O_LEVEL},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c, bad = 0;
    while ((c = getopt_long(argc, argv, "o:n:s:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'n': bad |= parse_i64(optarg, 0, &count); break;
        case 's': bad |= parse_i64(optarg, 0, &seed); break;
        case O_START: bad |= parse_i64(optarg, 0, &start); break;
        case O_STEP: bad |= parse_i64(optarg, 0, &step); have_step = 1; break;
        case O_SPAN: bad |= parse_i64(optarg, 1, &span); break;
        case O_STREAM: stream = optarg; break;
        case O_PARTS: bad |= parse_i64(optarg, 1, &parts); break;
        case O_FIRST: bad |= parse_i64(optarg, 0, &first); break;
        case O_BY:
            if (gran_parse(optarg, &tgran) || tgran < GRAN_HOUR || tgran > GRAN_MONTH)
                bad = 1;
            break;
        case O_TXN: bad |= parse_i64(optarg, 1, &per_txn); break;
        case O_LEVEL: bad |= parse_i64(optarg, 1, &level); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (bad || !out || count < 0 || optind != argc || level > 19 || first + parts > INT32_MAX ||
        (span > 0 && have_step) || span > 100LL * 366 * 86400) {
        usage(stderr);
        return 2;
    }
    FILE *probe = fopen(out, "rb");
    if (probe) {
        fclose(probe);
        fprintf(stderr, PROG ": %s exists\n", out);
        return 1;
    }

    arch *a = NULL;
    arch_txn *t = NULL;
    long long *next_off = calloc((size_t)parts, sizeof *next_off);
    char *err = NULL;
    int rc = 1, r;
    if (!next_off)
        goto fail;
    if ((r = arch_open(out, 0, (int)level, &a, &err)) < 0) {
        fprintf(stderr, PROG ": %s: %s\n", out, err ? err : strerror(-r));
        goto fail;
    }
    if (!(t = arch_txn_new()))
        goto fail;
    genev_t g;
    genev_init(&g, (uint64_t)seed, GENEV_EPOCH_S, 0, 0, 0);
    genev_event_t ev;
    int64_t last_seq = 0;
    for (long long i = 0; i < count; i++) {
        int64_t t_ms = span > 0 ? start * 1000 + (int64_t)((__int128)i * span * 1000 / count)
                                : start * 1000 + i * step;
        genev_next(&g, t_ms, &ev);
        /* lambdad reads epoch_s times as whole seconds */
        int64_t ts_ms = floor_div(ev.time_ms, 1000) * 1000;
        int32_t p = (int32_t)(first + i % parts);
        int64_t tpart = gran_floor(tgran, ts_ms / 1000);
        if (arch_txn_add_event(t, stream, p, tpart, next_off[i % parts]++, ts_ms, ev.payload,
                               ev.len) < 0)
            goto fail;
        if ((long long)arch_txn_events(t) >= per_txn || i == count - 1) {
            if ((r = arch_commit(a, t, &last_seq, &err)) < 0) {
                fprintf(stderr, PROG ": commit: %s\n", err ? err : strerror(-r));
                goto fail;
            }
            arch_txn_reset(t);
        }
    }
    arch_stats st;
    if ((r = arch_get_stats(a, &st)) < 0)
        goto fail;
    fprintf(stderr, PROG ": %lld events, %lld chunks, last seq %lld, %lld bytes\n",
            (long long)st.events, (long long)st.chunks, (long long)st.last_seq,
            (long long)st.file_bytes);
    rc = 0;
fail:
    if (rc && !err)
        fprintf(stderr, PROG ": failed (out of memory?)\n");
    free(err);
    arch_txn_free(t);
    arch_close(a);
    free(next_off);
    return rc;
}
