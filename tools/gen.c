/* gen.c - lambdad-gen, the load generator: produces realistic, seeded JSON
 * page-view events (genev.c) to a Kafka topic through librdkafka.
 *
 * One thread (main) generates, paces (a token bucket), produces and serves
 * delivery reports through rd_kafka_poll(); the delivery callback runs in
 * that same thread, so the counters need no locks. SIGTERM/SIGINT only set
 * a flag: the loop stops producing, flushes (at most 30 s, then purges what
 * is left and counts it as failed), prints one summary line on stderr and
 * exits 0, or 1 if any delivery failed.
 *
 * --dump FILE writes every payload, exactly as produced and in produce
 * order, as one line: payloads never contain a raw newline.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "tools/genev.h"

#define PROG "lambdad-gen"

enum { FLUSH_TIMEOUT_MS = 30000, PROGRESS_EVERY_S = 10 };
static const int64_t MAX_START_TIME = 253402300799LL; /* 9999-12-31T23:59:59Z */

struct opts {
    const char *brokers, *topic, *dump, *compression;
    uint64_t count, seed;
    double rate, late_share, late_days, bad_share;
    genev_tsfmt_t fmt;
    bool has_start;
    int64_t start_time, step_ms;
    int linger_ms;
    bool quiet;
};

struct counters {
    uint64_t produced, bad, late, delivered, failed;
    bool reported_failure;
};

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    stop_flag = sig;
}

static void usage(FILE *out)
{
    fprintf(
        out,
        "Usage: " PROG " --brokers B --topic T [options]\n"
        "\n"
        "Produces realistic, seeded JSON page-view events (~100 bytes) to Kafka, e.g.\n"
        "  {\"ts\":1763892000,\"page\":\"/products/42\",\"country\":\"DE\",\"user\":\"u18273\",\"bytes\":5120,\"ms\":87}\n"
        "keyed by the user id. The same --seed gives byte-identical payloads.\n"
        "\n"
        "  -b, --brokers B          bootstrap servers (host:port[,host:port...])\n"
        "  -t, --topic T            topic to produce to\n"
        "  -n, --count N            events to produce (default 100000; 0 = until\n"
        "                           SIGTERM/SIGINT)\n"
        "  -r, --rate R             events per second, token bucket (default 0 = as\n"
        "                           fast as possible)\n"
        "  -s, --seed S             PRNG seed, unsigned 64-bit (default 1)\n"
        "      --time-format F      \"ts\" encoding: epoch_s (default), epoch_ms, or\n"
        "                           rfc3339 (\"2026-11-23T10:00:00.123Z\")\n"
        "      --start-time T       event i gets time T + i*step (epoch seconds);\n"
        "                           default: the wall clock when generated\n"
        "      --step-ms MS         time step for --start-time (default 1)\n"
        "      --late-share F       fraction of events made up to --late-days older\n"
        "                           (default 0)\n"
        "      --late-days D        how late a late event can be (default 3)\n"
        "      --bad-share F        fraction of malformed events, cycling through: not\n"
        "                           JSON (a truncated object), JSON but not an object,\n"
        "                           no \"ts\", unparseable \"ts\" (default 0)\n"
        "      --compression C      none (default), lz4, zstd\n"
        "      --linger-ms MS       librdkafka linger.ms (default 5): how long a batch\n"
        "                           waits to fill; at a low --rate a longer one makes\n"
        "                           fewer, larger message sets\n"
        "      --dump FILE          also write every payload, in produce order, one per\n"
        "                           line (payloads never contain a newline)\n"
        "  -q, --quiet              no progress lines or librdkafka warnings (errors\n"
        "                           and the summary line are still printed)\n"
        "  -h, --help               this text\n"
        "  -V, --version            the version\n"
        "\n"
        "At the end it prints on stderr:\n"
        "  produced N events (M malformed, L late), delivered D, failed F in X.XX s (R/s)\n"
        "Exit status: 0, or 1 if any delivery failed (or on a runtime error), 2 on\n"
        "bad usage.\n");
}

static bool parse_u64(const char *s, uint64_t *out)
{
    if (!*s || *s == '-' || *s == '+')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

static bool parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    if (!*s)
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool parse_double(const char *s, double lo, double hi, double *out)
{
    if (!*s)
        return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static int bad_value(const char *opt, const char *val, const char *expected)
{
    fprintf(stderr, PROG ": invalid %s '%s' (expected %s)\n", opt, val, expected);
    return 2;
}

/* Returns -1 to go on, or the exit status. */
static int parse_args(int argc, char **argv, struct opts *o)
{
    enum { O_TFMT = 256, O_START, O_STEP, O_LATE, O_LATE_DAYS, O_BAD, O_COMP, O_DUMP, O_LINGER };
    static const struct option lopts[] = {
        {"brokers", required_argument, NULL, 'b'},
        {"topic", required_argument, NULL, 't'},
        {"count", required_argument, NULL, 'n'},
        {"rate", required_argument, NULL, 'r'},
        {"seed", required_argument, NULL, 's'},
        {"time-format", required_argument, NULL, O_TFMT},
        {"start-time", required_argument, NULL, O_START},
        {"step-ms", required_argument, NULL, O_STEP},
        {"late-share", required_argument, NULL, O_LATE},
        {"late-days", required_argument, NULL, O_LATE_DAYS},
        {"bad-share", required_argument, NULL, O_BAD},
        {"compression", required_argument, NULL, O_COMP},
        {"dump", required_argument, NULL, O_DUMP},
        {"linger-ms", required_argument, NULL, O_LINGER},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "b:t:n:r:s:qhV", lopts, NULL)) != -1) {
        switch (c) {
        case 'b': o->brokers = optarg; break;
        case 't': o->topic = optarg; break;
        case 'n':
            if (!parse_u64(optarg, &o->count))
                return bad_value("--count", optarg, "an integer >= 0");
            break;
        case 'r':
            if (!parse_double(optarg, 0, 1e9, &o->rate))
                return bad_value("--rate", optarg, "events per second, 0..1e9");
            break;
        case 's':
            if (!parse_u64(optarg, &o->seed))
                return bad_value("--seed", optarg, "an unsigned 64-bit integer");
            break;
        case O_TFMT:
            if (genev_tsfmt_parse(optarg, &o->fmt) < 0)
                return bad_value("--time-format", optarg, "epoch_s, epoch_ms or rfc3339");
            break;
        case O_START:
            if (!parse_i64(optarg, 0, MAX_START_TIME, &o->start_time))
                return bad_value("--start-time", optarg, "epoch seconds, 0..253402300799");
            o->has_start = true;
            break;
        case O_STEP:
            if (!parse_i64(optarg, 0, 86400000, &o->step_ms))
                return bad_value("--step-ms", optarg, "milliseconds, 0..86400000");
            break;
        case O_LATE:
            if (!parse_double(optarg, 0, 1, &o->late_share))
                return bad_value("--late-share", optarg, "a fraction in [0, 1]");
            break;
        case O_LATE_DAYS:
            if (!parse_double(optarg, 0.001, 3650, &o->late_days))
                return bad_value("--late-days", optarg, "days, 0.001..3650");
            break;
        case O_BAD:
            if (!parse_double(optarg, 0, 1, &o->bad_share))
                return bad_value("--bad-share", optarg, "a fraction in [0, 1]");
            break;
        case O_COMP:
            if (strcmp(optarg, "none") && strcmp(optarg, "lz4") && strcmp(optarg, "zstd"))
                return bad_value("--compression", optarg, "none, lz4 or zstd");
            o->compression = optarg;
            break;
        case O_DUMP: o->dump = optarg; break;
        case O_LINGER: {
            int64_t v;
            if (!parse_i64(optarg, 0, 900000, &v))
                return bad_value("--linger-ms", optarg, "milliseconds, 0..900000");
            o->linger_ms = (int)v;
            break;
        }
        case 'q': o->quiet = true; break;
        case 'h': usage(stdout); return 0;
        case 'V':
            printf(PROG " %s (librdkafka %s)\n", LAMBDAD_VERSION, rd_kafka_version_str());
            return 0;
        default: fprintf(stderr, "Try '" PROG " --help'.\n"); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, PROG ": unexpected argument '%s'\nTry '" PROG " --help'.\n", argv[optind]);
        return 2;
    }
    if (!o->brokers || !*o->brokers || !o->topic || !*o->topic) {
        fprintf(stderr, PROG ": --brokers and --topic are required\nTry '" PROG " --help'.\n");
        return 2;
    }
    if (o->bad_share + o->late_share > 1) {
        fprintf(stderr, PROG ": --bad-share plus --late-share must not exceed 1\n");
        return 2;
    }
    return -1;
}

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int64_t now_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs in the main thread, from rd_kafka_poll()/rd_kafka_flush(). */
static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct counters *k = opaque;
    if (!m->err) {
        k->delivered++;
        return;
    }
    k->failed++;
    if (!k->reported_failure) { /* once: a dead broker fails every message */
        fprintf(stderr, PROG ": delivery failed: %s\n", rd_kafka_err2str(m->err));
        k->reported_failure = true;
    }
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    fprintf(stderr, PROG ": rdkafka %d %s: %s\n", level, fac, buf);
}

static rd_kafka_t *producer_new(const struct opts *o, struct counters *k)
{
    char errstr[512], linger[16];
    snprintf(linger, sizeof linger, "%d", o->linger_ms);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *kv[][2] = {
        {"bootstrap.servers", o->brokers},
        {"client.id", PROG},
        {"enable.idempotence", "false"},
        {"linger.ms", linger},
        {"batch.num.messages", "10000"},
        {"batch.size", "1000000"},
        /* ~0.2 s of a fast run: deep enough to never stall a live broker,
         * small enough (~50 MB) when the broker is gone. */
        {"queue.buffering.max.messages", "200000"},
        {"compression.codec", o->compression ? o->compression : "none"},
        {"log_level", o->quiet ? "3" : "4"},
    };
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++) {
        if (rd_kafka_conf_set(conf, kv[i][0], kv[i][1], errstr, sizeof errstr) !=
            RD_KAFKA_CONF_OK) {
            fprintf(stderr, PROG ": librdkafka %s=%s: %s\n", kv[i][0], kv[i][1], errstr);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_opaque(conf, k);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, PROG ": cannot create the producer: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    /* conf now belongs to rk */
    return rk;
}

/* Token bucket: rate tokens per second, at most 10 ms (and >= 1) of burst.
 * Waits (serving delivery reports) until one token is there or a signal. */
struct bucket {
    double rate, burst, tokens, last;
};

static void bucket_take(struct bucket *b, rd_kafka_t *rk)
{
    for (;;) {
        double t = now_mono();
        b->tokens += (t - b->last) * b->rate;
        if (b->tokens > b->burst)
            b->tokens = b->burst;
        b->last = t;
        if (b->tokens >= 1 || stop_flag)
            break;
        double wait_s = (1 - b->tokens) / b->rate;
        if (wait_s >= 0.001) {
            rd_kafka_poll(rk, (int)(wait_s * 1000));
        } else {
            struct timespec ts = {0, (long)(wait_s * 1e9)};
            nanosleep(&ts, NULL);
        }
    }
    b->tokens -= 1;
}

int main(int argc, char **argv)
{
    struct opts o = {
        .count = 100000, .seed = 1, .late_days = 3, .step_ms = 1, .fmt = GENEV_EPOCH_S,
        .linger_ms = 5};
    struct counters k = {0};
    rd_kafka_t *rk = NULL;
    rd_kafka_topic_t *rkt = NULL;
    FILE *dump = NULL;
    int status = 1;

    int r = parse_args(argc, argv, &o);
    if (r >= 0)
        return r;

    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (o.dump) {
        dump = fopen(o.dump, "we");
        if (!dump) {
            fprintf(stderr, PROG ": cannot open --dump file %s: %s\n", o.dump, strerror(errno));
            goto out;
        }
    }
    rk = producer_new(&o, &k);
    if (!rk)
        goto out;
    rkt = rd_kafka_topic_new(rk, o.topic, NULL);
    if (!rkt) {
        fprintf(stderr, PROG ": topic %s: %s\n", o.topic, rd_kafka_err2str(rd_kafka_last_error()));
        goto out;
    }

    genev_t g;
    genev_init(&g, o.seed, o.fmt, o.bad_share, o.late_share,
               (int64_t)llround(o.late_days * 86400000.0));
    genev_event_t ev;
    double t0 = now_mono(), next_progress = t0 + PROGRESS_EVERY_S;
    struct bucket bucket = {
        .rate = o.rate, .burst = o.rate / 100 > 1 ? o.rate / 100 : 1, .tokens = 1, .last = t0};
    bool fatal = false;

    for (uint64_t i = 0; (o.count == 0 || i < o.count) && !stop_flag && !fatal; i++) {
        if (o.rate > 0) {
            bucket_take(&bucket, rk);
            if (stop_flag)
                break;
        }
        int64_t t_ms = o.has_start ? o.start_time * 1000 + (int64_t)i * o.step_ms : now_wall_ms();
        genev_next(&g, t_ms, &ev);
        /* RD_KAFKA_MSG_F_COPY: ev is reused for the next event. */
        bool queued;
        while (!(queued = rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY,
                                           ev.payload, ev.len, ev.key, ev.keylen, NULL) == 0)) {
            rd_kafka_resp_err_t err = rd_kafka_last_error();
            if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                fprintf(stderr, PROG ": produce failed: %s\n", rd_kafka_err2str(err));
                fatal = true;
                break;
            }
            if (stop_flag) /* e.g. the broker is gone: drop this one, stop */
                break;
            rd_kafka_poll(rk, 10); /* the queue drains as deliveries are reported */
        }
        if (!queued)
            break;
        if (dump) {
            fwrite(ev.payload, 1, ev.len, dump);
            putc('\n', dump);
        }
        k.produced++;
        k.bad += ev.kind != GENEV_GOOD;
        k.late += ev.late;
        if ((i & 1023) == 0) {
            rd_kafka_poll(rk, 0);
            double t = now_mono();
            if (!o.quiet && t >= next_progress) {
                fprintf(stderr, PROG ": %llu produced, %llu delivered, %llu failed (%.0f/s)\n",
                        (unsigned long long)k.produced, (unsigned long long)k.delivered,
                        (unsigned long long)k.failed, (double)k.produced / (t - t0));
                next_progress = t + PROGRESS_EVERY_S;
            }
        }
    }

    if (rd_kafka_flush(rk, FLUSH_TIMEOUT_MS) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        int left = rd_kafka_outq_len(rk);
        fprintf(stderr, PROG ": %d message(s) not delivered within %d s, giving up\n", left,
                FLUSH_TIMEOUT_MS / 1000);
        /* Purged messages come back as failed delivery reports. */
        rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_flush(rk, 1000);
    }
    double el = now_mono() - t0;
    fprintf(stderr,
            "produced %llu events (%llu malformed, %llu late), delivered %llu, failed %llu in "
            "%.2f s (%.0f/s)\n",
            (unsigned long long)k.produced, (unsigned long long)k.bad, (unsigned long long)k.late,
            (unsigned long long)k.delivered, (unsigned long long)k.failed, el,
            el > 0 ? (double)k.produced / el : 0.0);
    status = k.failed || fatal ? 1 : 0;

out:
    if (dump) {
        bool bad = ferror(dump) != 0;
        if (fclose(dump) != 0)
            bad = true;
        if (bad) {
            fprintf(stderr, PROG ": cannot write --dump file %s: %s\n", o.dump, strerror(errno));
            status = 1;
        }
    }
    if (rkt)
        rd_kafka_topic_destroy(rkt);
    if (rk)
        rd_kafka_destroy(rk);
    return status;
}
