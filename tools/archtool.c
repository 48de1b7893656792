/* archtool.c - lambdad-archive: reads a lambdad archive back out, for
 * operators and for bench/run's sqlite3 baseline.
 *
 *   lambdad-archive dump [--stream NAME] [--from T] [--to T] [--from-seq N] [--to-seq N]
 *                        [--meta] ARCHIVE
 *   lambdad-archive stats ARCHIVE
 *   lambdad-archive verify ARCHIVE
 *   lambdad-archive extract|drop --partition TOPIC:P[,P...] ... (archtool_move.c)
 *
 * The archive stores events in zstd-compressed chunks that no other tool can
 * read; `dump` prints them as JSON lines (one accepted event per line, in
 * seq order, in offset order within a chunk), through archive.h's arch_scan
 * on an ARCH_READONLY connection, so it is safe while lambdad runs (it sees
 * the archive as of its start: WAL snapshot). `--meta` wraps each event
 * with where it came from. --from/--to keep events by event time, reading
 * only the chunks of the time partitions that can hold them; without
 * --stream every stream is dumped, one after the other. `stats` prints the totals as one JSON object
 * (stored in the archive: instant at any size). `verify` checks every
 * chunk and SQLite's integrity (arch_verify) and prints each problem and a
 * summary; its exit status says whether the archive is clean. A damaged
 * chunk met by `dump` is named on stderr and skipped, and the exit status
 * is 1.
 *
 * Runs on the caller's thread; the only shared state is getopt's.
 */
#include "tools/archtool_int.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "archive/archive.h"
#include "core/gran.h"

void archtool_usage(FILE *f)
{
    fprintf(f,
            "Usage: " PROG " dump [--stream NAME] [--from T] [--to T] [--from-seq N] [--to-seq N]\n"
            "                            [--meta] ARCHIVE\n"
            "       " PROG " stats ARCHIVE\n"
            "       " PROG " verify ARCHIVE\n"
            "       " PROG " extract --partition TOPIC:P[,P...] SRC DST\n"
            "       " PROG " drop --partition TOPIC:P[,P...] ARCHIVE\n"
            "\n"
            "Reads a lambdad archive (dump, stats, verify, extract: read-only, safe while\n"
            "lambdad runs), or moves Kafka partitions out of one (extract, drop).\n"
            "\n"
            "  dump     print the accepted events as JSON lines, in archive order (seq,\n"
            "           then Kafka offset within a chunk), one stream after the other\n"
            "    -s, --stream NAME  only this stream (default: every stream, by name)\n"
            "        --from T       only events with an event time at or after T: epoch\n"
            "                       seconds, epoch milliseconds (from 10^11 on) or RFC 3339\n"
            "        --to T         only events with an event time before T\n"
            "        --from-seq N   only chunks with seq > N (default 0)\n"
            "        --to-seq N     only chunks with seq <= N (default: all)\n"
            "        --meta         print {\"seq\":S,\"partition\":P,\"offset\":O,\"ts_ms\":T,\n"
            "                       \"event\":EVENT} instead of the bare event (with\n"
            "                       \"stream\":NAME first when dumping every stream)\n"
            "  stats    print the archive's totals as one JSON object: events, rejects,\n"
            "           chunks, last_seq, file_bytes, payload_bytes\n"
            "  verify   check every chunk (checksum, decompression, event count, offsets,\n"
            "           event times against the row and the time partition), the stored\n"
            "           totals and SQLite's integrity; print each problem, then a summary;\n"
            "           exit 0 when the archive is clean, 1 when not\n"
            "  extract  make the new archive DST of the events, rejects and next offsets of\n"
            "           the Kafka partitions given, read from SRC as one snapshot (fresh\n"
            "           seqs, chunks checked and rewritten): a lambdad started on DST with\n"
            "           kafka.partitions set to them resumes where SRC stood. DST, DST-wal,\n"
            "           DST-shm and DST-views must not exist. Imported events (lambdad\n"
            "           import) belong to no partition: not copied. A damaged chunk of the\n"
            "           partitions stops it (its events cannot be copied)\n"
            "  drop     delete the events, rejects, next offsets and damaged-chunk records\n"
            "           of the partitions given from ARCHIVE, in one transaction, and\n"
            "           remove ARCHIVE-views (lambdad rebuilds its views at its next start);\n"
            "           ARCHIVE's lambdad must be stopped (drop takes its lock). Imported\n"
            "           events stay\n"
            "    -p, --partition TOPIC:P[,P...]  the partitions (repeat for other topics);\n"
            "                       every one must be in the archive\n"
            "\n"
            "  -h, --help           this text\n"
            "\n"
            "A line break inside an event (JSON whitespace) is printed as a space, so\n"
            "every line is one complete JSON value. Exit status: 0, 1 on an error, 2 on\n"
            "bad usage. dump names a damaged chunk on stderr, skips it and goes on\n"
            "(exit 1 at the end).\n");
}

/* The payload without its line end; see archtool_write_line. */
static void write_event(FILE *out, const char *p, size_t len)
{
    bool in_str = false, esc = false;
    size_t from = 0;
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        if (in_str) {
            if (esc)
                esc = false;
            else if (c == '\\')
                esc = true;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        }
        if (c != '\n' && c != '\r')
            continue;
        fwrite(p + from, 1, i - from, out);
        if (in_str)
            fputs(c == '\n' ? "\\n" : "\\r", out);
        else
            fputc(' ', out);
        from = i + 1;
    }
    fwrite(p + from, 1, len - from, out);
}

int archtool_write_line(FILE *out, const char *p, size_t len)
{
    write_event(out, p, len);
    fputc('\n', out);
    return ferror(out) ? -EIO : 0;
}

struct dump_ctx {
    FILE *out, *err;
    const char *path;
    bool meta;
    const char *stream;        /* named in --meta lines when dumping every stream */
    int64_t from_ms, to_ms;    /* event times kept: [from_ms, to_ms) */
    arch *a;
    int64_t seq_lo, seq_hi, tpart_lo, tpart_hi;
    char *msg;                 /* a scan's error */
    bool write_failed;
    int64_t damaged;
};

/* The events of a damaged chunk cannot be printed: name it, go on. */
static int dump_damage(const arch_damage *dmg, void *ud)
{
    struct dump_ctx *d = ud;
    char what[512];
    fprintf(d->err, PROG ": %s: skipped damaged %s\n", d->path,
            arch_damage_describe(dmg, what, sizeof what));
    d->damaged++;
    return 0;
}

static int dump_one(const arch_event *ev, void *ud)
{
    struct dump_ctx *d = ud;
    if (ev->ts_ms < d->from_ms || ev->ts_ms >= d->to_ms)
        return 0;
    if (!d->meta) {
        d->write_failed = archtool_write_line(d->out, ev->payload, ev->len) < 0;
        return d->write_failed; /* non-zero stops the scan */
    }
    if (d->stream)   /* stream names are [A-Za-z0-9_.-]: nothing to escape */
        fprintf(d->out, "{\"stream\":\"%s\",", d->stream);
    fprintf(d->out,
            "%s\"seq\":%" PRId64 ",\"partition\":%" PRId32 ",\"offset\":%" PRId64
            ",\"ts_ms\":%" PRId64 ",\"event\":",
            d->stream ? "" : "{", ev->seq, ev->partition, ev->offset, ev->ts_ms);
    write_event(d->out, ev->payload, ev->len);
    fputs("}\n", d->out);
    d->write_failed = ferror(d->out) != 0;
    return d->write_failed;
}

static int parse_seq(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < 0)
        return -EINVAL;
    *out = v;
    return 0;
}

static int open_ro(const char *path, arch **a, FILE *err)
{
    char *msg = NULL;
    int r = arch_open(path, ARCH_READONLY, 3, a, &msg);
    if (r < 0) {
        fprintf(err, PROG ": %s: %s\n", path, msg ? msg : strerror(-r));
        free(msg);
        return 1;
    }
    return 0;
}

/* An event-time bound: epoch seconds, epoch milliseconds (an integer of
 * at least 10^11, as the query API reads them) or RFC 3339; in ms. */
static int parse_time_ms(const char *s, int64_t *ms)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!errno && end != s && !*end) {
        if (v >= 100000000000LL || v <= -100000000000LL)
            *ms = v;
        else
            *ms = (int64_t)v * 1000;
        return 0;
    }
    return time_parse_rfc3339(s, strlen(s), ms);
}

/* The time partitions that can hold events of [from_ms, to_ms), under the
 * archive's partition unit, so the scan reads only their chunks; all of
 * them when the unit is not recorded. */
static void tpart_bounds(struct dump_ctx *d)
{
    char *unit = NULL, *msg = NULL;
    gran_t g;
    d->tpart_lo = 1;   /* lo > hi: no time-partition bound */
    d->tpart_hi = 0;
    if (d->from_ms == INT64_MIN && d->to_ms == INT64_MAX)
        return;
    if (arch_meta_get(d->a, "partition", &unit, &msg) == 0 && gran_parse(unit, &g) == 0) {
        d->tpart_lo = d->from_ms == INT64_MIN ? INT64_MIN
                                              : gran_floor(g, floor_div(d->from_ms, 1000));
        d->tpart_hi = d->to_ms == INT64_MAX ? INT64_MAX
                                            : gran_floor(g, floor_div(d->to_ms - 1, 1000));
    }
    free(unit);
    free(msg);
}

static int dump_stream(const char *stream, void *ud)
{
    struct dump_ctx *d = ud;
    if (d->stream)
        d->stream = stream;
    if (d->from_ms >= d->to_ms)
        return 0;   /* an empty time range: nothing to read */
    return arch_scan(d->a, stream, d->seq_lo, d->seq_hi, d->tpart_lo, d->tpart_hi, dump_one,
                     dump_damage, d, &d->msg);
}

static int cmd_dump(int argc, char **argv, FILE *out, FILE *err)
{
    const char *stream = NULL;
    int64_t lo = 0, hi = INT64_MAX, from_ms = INT64_MIN, to_ms = INT64_MAX;
    bool meta = false;
    enum { O_FROM_SEQ = 256, O_TO_SEQ, O_META, O_FROM, O_TO };
    static const struct option longopts[] = {
        {"stream", required_argument, NULL, 's'}, {"from-seq", required_argument, NULL, O_FROM_SEQ},
        {"to-seq", required_argument, NULL, O_TO_SEQ}, {"meta", no_argument, NULL, O_META},
        {"from", required_argument, NULL, O_FROM}, {"to", required_argument, NULL, O_TO},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "+s:h", longopts, NULL)) != -1) {
        switch (c) {
        case 's': stream = optarg; break;
        case O_FROM_SEQ:
        case O_TO_SEQ:
            if (parse_seq(optarg, c == O_FROM_SEQ ? &lo : &hi) < 0) {
                fprintf(err, PROG ": %s: expected a seq (integer >= 0), got '%s'\n",
                        c == O_FROM_SEQ ? "--from-seq" : "--to-seq", optarg);
                return 2;
            }
            break;
        case O_FROM:
        case O_TO:
            if (parse_time_ms(optarg, c == O_FROM ? &from_ms : &to_ms) < 0) {
                fprintf(err, PROG ": %s: expected epoch seconds, epoch milliseconds or RFC 3339, "
                             "got '%s'\n", c == O_FROM ? "--from" : "--to", optarg);
                return 2;
            }
            break;
        case O_META: meta = true; break;
        case 'h': archtool_usage(out); return 0;
        default:
            fprintf(err, PROG ": dump: bad option '%s' (see --help)\n", argv[optind - 1]);
            return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(err, PROG ": dump: expected one ARCHIVE\n");
        return 2;
    }
    if (from_ms > to_ms) {
        fprintf(err, PROG ": dump: --from is after --to\n");
        return 2;
    }
    struct dump_ctx d = {.out = out, .err = err, .path = argv[optind], .meta = meta,
                         .stream = meta && !stream ? "" : NULL, .from_ms = from_ms,
                         .to_ms = to_ms, .seq_lo = lo, .seq_hi = hi};
    if (open_ro(argv[optind], &d.a, err))
        return 1;
    tpart_bounds(&d);
    int r = stream ? dump_stream(stream, &d) : arch_list_streams(d.a, dump_stream, &d, &d.msg);
    int rc = 0;
    if (d.write_failed) {
        fprintf(err, PROG ": write error\n");
        rc = 1;
    } else if (r < 0) {
        fprintf(err, PROG ": %s: %s\n", argv[optind], d.msg ? d.msg : strerror(-r));
        rc = 1;
    } else if (fflush(out) != 0) {
        fprintf(err, PROG ": write error\n");
        rc = 1;
    } else if (d.damaged) {
        fprintf(err, PROG ": %s: %lld damaged chunk(s) skipped (see " PROG " verify)\n",
                argv[optind], (long long)d.damaged);
        rc = 1;
    }
    free(d.msg);
    arch_close(d.a);
    return rc;
}

static int cmd_stats(int argc, char **argv, FILE *out, FILE *err)
{
    if (argc != 2 || argv[1][0] == '-') {
        if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
            archtool_usage(out);
            return 0;
        }
        fprintf(err, PROG ": stats: expected one ARCHIVE\n");
        return 2;
    }
    arch *a = NULL;
    if (open_ro(argv[1], &a, err))
        return 1;
    arch_stats st;
    int r = arch_get_stats(a, &st);
    arch_close(a);
    if (r < 0) {
        fprintf(err, PROG ": %s: %s\n", argv[1], strerror(-r));
        return 1;
    }
    fprintf(out,
            "{\"events\":%" PRId64 ",\"rejects\":%" PRId64 ",\"chunks\":%" PRId64
            ",\"last_seq\":%" PRId64 ",\"file_bytes\":%" PRId64 ",\"payload_bytes\":%" PRId64 "}\n",
            st.events, st.rejects, st.chunks, st.last_seq, st.file_bytes, st.payload_bytes);
    return fflush(out) == 0 ? 0 : 1;
}

static int print_problem(const arch_problem *p, void *ud)
{
    FILE *out = ud;
    char what[512];
    if (p->chunk)
        fprintf(out, "%s %s\n", p->unreadable ? "damaged" : "inconsistent",
                arch_damage_describe(p->chunk, what, sizeof what));
    else
        fprintf(out, "problem: %s\n", p->what);
    return ferror(out) ? -EIO : 0;
}

static const char *plural(int64_t n) { return n == 1 ? "" : "s"; }

static int cmd_verify(int argc, char **argv, FILE *out, FILE *err)
{
    if (argc != 2 || argv[1][0] == '-') {
        if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
            archtool_usage(out);
            return 0;
        }
        fprintf(err, PROG ": verify: expected one ARCHIVE\n");
        return 2;
    }
    arch *a = NULL;
    if (open_ro(argv[1], &a, err))
        return 1;
    arch_verify_summary s;
    char *msg = NULL;
    int r = arch_verify(a, print_problem, out, &s, &msg);
    arch_close(a);
    if (r == -EIO && !msg) {
        fprintf(err, PROG ": write error\n");
        return 1;
    }
    if (r < 0) {
        fprintf(err, PROG ": %s: %s\n", argv[1], msg ? msg : strerror(-r));
        free(msg);
        return 1;
    }
    fprintf(out, "%s: %lld chunk%s (%lld with a checksum", argv[1], (long long)s.chunks,
            plural(s.chunks), (long long)s.checksummed);
    if (s.checksummed < s.chunks)
        fprintf(out, ", %lld older without", (long long)(s.chunks - s.checksummed));
    fprintf(out, "), %lld event%s, %lld reject%s: ", (long long)s.events, plural(s.events),
            (long long)s.rejects, plural(s.rejects));
    int64_t other = s.problems - s.damaged_chunks;
    if (!s.problems)
        fprintf(out, "ok\n");
    else if (s.damaged_chunks && other)
        fprintf(out, "%lld damaged chunk%s (%lld event%s unreadable), %lld other problem%s\n",
                (long long)s.damaged_chunks, plural(s.damaged_chunks),
                (long long)s.unreadable_events, plural(s.unreadable_events), (long long)other,
                plural(other));
    else if (s.damaged_chunks)
        fprintf(out, "%lld damaged chunk%s (%lld event%s unreadable)\n",
                (long long)s.damaged_chunks, plural(s.damaged_chunks),
                (long long)s.unreadable_events, plural(s.unreadable_events));
    else
        fprintf(out, "%lld problem%s\n", (long long)other, plural(other));
    if (fflush(out) != 0)
        return 1;
    return s.problems ? 1 : 0;
}

int archtool_main(int argc, char **argv, FILE *out, FILE *err)
{
    optind = 0; /* GNU getopt: full re-initialisation for every call */
    opterr = 0; /* our own messages, to err */
    if (argc < 2) {
        archtool_usage(err);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
        archtool_usage(out);
        return 0;
    }
    if (!strcmp(cmd, "dump"))
        return cmd_dump(argc - 1, argv + 1, out, err);
    if (!strcmp(cmd, "stats"))
        return cmd_stats(argc - 1, argv + 1, out, err);
    if (!strcmp(cmd, "verify"))
        return cmd_verify(argc - 1, argv + 1, out, err);
    if (!strcmp(cmd, "extract"))
        return archtool_extract(argc - 1, argv + 1, out, err);
    if (!strcmp(cmd, "drop"))
        return archtool_drop(argc - 1, argv + 1, out, err);
    fprintf(err, PROG ": unknown command '%s' (dump, stats, verify, extract, drop)\n", cmd);
    return 2;
}
