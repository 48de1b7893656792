/* devbroker.c - lambdad-devbroker: a Kafka-protocol broker on loopback for
 * tests and demos, built on librdkafka's mock cluster.
 *
 * It creates a producer handle with no real bootstrap, starts a mock cluster
 * of --brokers brokers on it, creates the --topic topics, prints the
 * bootstrap address as the first line of stdout and serves until SIGTERM or
 * SIGINT. SIGUSR1 takes every broker down (connections closed, new ones
 * refused, all data kept) and SIGUSR2 brings them back, so tests can stage
 * a broker outage. The mock cluster runs in librdkafka's own thread; the
 * optional --port forwarder (fwd.c) runs in one more. The main thread
 * blocks the four signals before any thread exists (so every thread
 * inherits the mask), then takes them one at a time with sigwait() (no
 * handler does any work) and acts on them from its loop; at the end it
 * tears down in reverse order. No shared state, no locks.
 *
 * What the mock cluster of librdkafka 2.0.2 is not (measured; see --help):
 * - it keeps at most about 5 MiB (and 100k message sets) per partition and
 *   drops the oldest beyond that, so a producer far ahead of its consumer
 *   loses events (about 45k uncompressed 100-byte events per partition;
 *   lz4/zstd producer compression stretches that to ~114k/~200k);
 * - an empty fetch is held for the full fetch.wait.max.ms (500 ms by
 *   default) and is not woken by new data: consumers should use ~10 ms;
 * - a fetch finds its offset by walking the partition's message sets from
 *   the oldest (no index), so a slow producer with a short linger.ms (sets
 *   of one or two events) makes every fetch costlier as data accumulates:
 *   at 5k events/s over 16 partitions with linger.ms 5, the broker's CPU
 *   climbs past 0.5 cores within a minute and consumers fall behind; with
 *   lambdad-gen --linger-ms 100 it stays near 0.05;
 * - a first consumer-group join is delayed by about 3 s;
 * - brokers listen on random ports, hence the --port forwarder.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "tools/fwd.h"

#define PROG "lambdad-devbroker"

enum { MAX_BROKERS = 9, MAX_PARTITIONS = 1000, MAX_TOPIC_LEN = 249 };

struct topic_arg {
    char *name;
    int partitions;
};

struct opts {
    int port; /* 0: none */
    int brokers;
    int verbose; /* -v: librdkafka logs; -vv: also every mock request */
    struct topic_arg *topics;
    size_t ntopics;
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: " PROG " [--port N] [--brokers N] [--topic NAME[:PARTITIONS]]... [-v[v]]\n"
            "\n"
            "A Kafka-protocol broker on 127.0.0.1 for tests and demos, built on\n"
            "librdkafka's mock cluster. Prints the bootstrap address on the first line\n"
            "of stdout, then serves until SIGTERM or SIGINT and exits 0.\n"
            "\n"
            "  -p, --port N         also accept bootstrap connections on 127.0.0.1:N and\n"
            "                       print that address (relayed to broker 1; clients then\n"
            "                       talk to the brokers' own random ports). Exit 1 if the\n"
            "                       port is taken.\n"
            "  -b, --brokers N      number of brokers, 1..%d (default 1)\n"
            "  -t, --topic NAME[:P] create topic NAME with P partitions (default 1,\n"
            "                       at most %d), replication min(3, brokers); repeatable.\n"
            "                       Other topics are auto-created on first use, with 4\n"
            "                       partitions.\n"
            "  -v, --verbose        librdkafka logs and outages on stderr (default: errors\n"
            "                       only); twice: also every connection and request (noisy)\n"
            "  -h, --help           this text\n"
            "  -V, --version        the version\n"
            "\n"
            "Signals:\n"
            "  SIGUSR1              take every broker down: open connections are closed\n"
            "                       and new ones refused (a broker outage); topics and\n"
            "                       messages are kept\n"
            "  SIGUSR2              bring every broker back up\n"
            "  SIGTERM, SIGINT      stop and exit 0\n"
            "\n"
            "Limits of the mock cluster (librdkafka 2.0.2, measured):\n"
            "  - it keeps at most about 5 MiB (100k message sets) per partition and\n"
            "    drops the oldest data beyond that: about 45k uncompressed 100-byte\n"
            "    events per partition (lz4 ~114k, zstd ~200k). Do not let a producer\n"
            "    run far ahead of its consumer.\n"
            "  - an empty fetch is held for the full fetch.wait.max.ms and is not woken\n"
            "    by new data: set fetch.wait.max.ms to about 10 on consumers.\n"
            "  - a fetch walks the partition's message sets from the oldest: a slow\n"
            "    producer with a short linger.ms (sets of one or two events) makes\n"
            "    the broker slower as data accumulates. At a few thousand events/s,\n"
            "    produce with a longer linger (lambdad-gen --linger-ms 100).\n"
            "  - a first consumer-group join is delayed by about 3 s.\n"
            "\n"
            "Exit status: 0 after SIGTERM/SIGINT, 1 on a runtime error, 2 on bad usage.\n",
            MAX_BROKERS, MAX_PARTITIONS);
}

/* Parses a decimal int in [lo, hi]; false on anything else. */
static bool parse_int(const char *s, int lo, int hi, int *out)
{
    if (!*s)
        return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return false;
    *out = (int)v;
    return true;
}

/* Kafka's own rule: 1..249 of [A-Za-z0-9._-], and not "." or "..". */
static bool topic_name_ok(const char *s, size_t len)
{
    if (len == 0 || len > MAX_TOPIC_LEN)
        return false;
    if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* Adds "NAME[:P]" to o->topics. Prints the problem and returns false. */
static bool add_topic(struct opts *o, const char *arg)
{
    const char *colon = strrchr(arg, ':');
    size_t len = colon ? (size_t)(colon - arg) : strlen(arg);
    int parts = 1;
    if (!topic_name_ok(arg, len)) {
        fprintf(stderr,
                PROG ": invalid topic name in '%s' (1..%d characters of "
                     "[A-Za-z0-9._-], not '.' or '..')\n",
                arg, MAX_TOPIC_LEN);
        return false;
    }
    if (colon && !parse_int(colon + 1, 1, MAX_PARTITIONS, &parts)) {
        fprintf(stderr, PROG ": invalid partition count in '%s' (expected 1..%d)\n", arg,
                MAX_PARTITIONS);
        return false;
    }
    for (size_t i = 0; i < o->ntopics; i++) {
        if (strlen(o->topics[i].name) == len && !memcmp(o->topics[i].name, arg, len)) {
            fprintf(stderr, PROG ": topic '%.*s' given twice\n", (int)len, arg);
            return false;
        }
    }
    struct topic_arg *t = realloc(o->topics, (o->ntopics + 1) * sizeof *t);
    if (!t) {
        fprintf(stderr, PROG ": out of memory\n");
        return false;
    }
    o->topics = t;
    char *name = strndup(arg, len);
    if (!name) {
        fprintf(stderr, PROG ": out of memory\n");
        return false;
    }
    o->topics[o->ntopics++] = (struct topic_arg){.name = name, .partitions = parts};
    return true;
}

static void opts_free(struct opts *o)
{
    for (size_t i = 0; i < o->ntopics; i++)
        free(o->topics[i].name);
    free(o->topics);
}

/* Returns -1 to go on, or the exit status. */
static int parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option lopts[] = {
        {"port", required_argument, NULL, 'p'},
        {"brokers", required_argument, NULL, 'b'},
        {"topic", required_argument, NULL, 't'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "p:b:t:vhV", lopts, NULL)) != -1) {
        switch (c) {
        case 'p':
            if (!parse_int(optarg, 1, 65535, &o->port)) {
                fprintf(stderr, PROG ": invalid --port '%s' (expected 1..65535)\n", optarg);
                return 2;
            }
            break;
        case 'b':
            if (!parse_int(optarg, 1, MAX_BROKERS, &o->brokers)) {
                fprintf(stderr, PROG ": invalid --brokers '%s' (expected 1..%d)\n", optarg,
                        MAX_BROKERS);
                return 2;
            }
            break;
        case 't':
            if (!add_topic(o, optarg))
                return 2;
            break;
        case 'v': o->verbose++; break;
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
    return -1;
}

/* librdkafka's internal threads call this; one fprintf per line keeps lines
 * whole (stdio locks the stream). */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    fprintf(stderr, PROG ": rdkafka %d %s: %s\n", level, fac, buf);
}

static void on_signal(int sig)
{
}

/* Takes brokers 1..n down or up (their ids in a mock cluster). The call
 * waits for the mock cluster's thread to apply it, so when this returns
 * the brokers refuse connections (down) or accept them (up). */
static int set_brokers(rd_kafka_mock_cluster_t *mc, int n, bool up)
{
    for (int32_t id = 1; id <= n; id++) {
        rd_kafka_resp_err_t err =
            up ? rd_kafka_mock_broker_set_up(mc, id) : rd_kafka_mock_broker_set_down(mc, id);
        if (err) {
            fprintf(stderr, PROG ": cannot take broker %d %s: %s\n", (int)id, up ? "up" : "down",
                    rd_kafka_err2str(err));
            return -1;
        }
    }
    return 0;
}

/* The port of the first "host:port" in a bootstrap list (broker 1). */
static int first_port(const char *bootstraps)
{
    size_t n = strcspn(bootstraps, ",");
    const char *p = bootstraps + n;
    while (p > bootstraps && p[-1] != ':')
        p--;
    if (p == bootstraps)
        return -EINVAL;
    char buf[8];
    size_t len = (size_t)(bootstraps + n - p);
    if (len == 0 || len >= sizeof buf)
        return -EINVAL;
    memcpy(buf, p, len);
    buf[len] = '\0';
    int port;
    return parse_int(buf, 1, 65535, &port) ? port : -EINVAL;
}

int main(int argc, char **argv)
{
    struct opts o = {.brokers = 1};
    rd_kafka_conf_t *conf = NULL;
    rd_kafka_t *rk = NULL;
    rd_kafka_mock_cluster_t *mc = NULL;
    fwd_t *fwd = NULL;
    char errstr[512];
    int status = 1, r;

    r = parse_args(argc, argv, &o);
    if (r >= 0) {
        opts_free(&o);
        return r;
    }

    /* Before any thread exists, so librdkafka's and the forwarder's threads
   * inherit the mask and the signals reach sigwait() below only. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGUSR1);
    sigaddset(&sigs, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    /* A shell starts background jobs with SIGINT ignored, and an ignored
   * signal is discarded instead of waiting for sigwait(): a handler (never
   * run, the signals stay blocked) makes both deliverable. */
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    /* A reader that closed our stdout must not kill us. */
    signal(SIGPIPE, SIG_IGN);

    if (o.port) {
        r = fwd_new(&fwd, (uint16_t)o.port);
        if (r < 0) {
            if (r == -EADDRINUSE)
                fprintf(stderr, PROG ": port 127.0.0.1:%d is already in use\n", o.port);
            else
                fprintf(stderr, PROG ": cannot listen on 127.0.0.1:%d: %s\n", o.port, strerror(-r));
            goto out;
        }
    }

    conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, log_cb);
    if (rd_kafka_conf_set(conf, "log_level", o.verbose ? "7" : "3", errstr, sizeof errstr) ||
        rd_kafka_conf_set(conf, "client.id", PROG, errstr, sizeof errstr) ||
        (o.verbose > 1 && rd_kafka_conf_set(conf, "debug", "mock", errstr, sizeof errstr))) {
        fprintf(stderr, PROG ": librdkafka configuration: %s\n", errstr);
        goto out;
    }
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, PROG ": cannot create the librdkafka handle: %s\n", errstr);
        goto out;
    }
    conf = NULL; /* rd_kafka_new() took it */

    mc = rd_kafka_mock_cluster_new(rk, o.brokers);
    if (!mc) {
        fprintf(stderr, PROG ": cannot start a mock cluster of %d broker(s)\n", o.brokers);
        goto out;
    }
    int repl = o.brokers < 3 ? o.brokers : 3;
    for (size_t i = 0; i < o.ntopics; i++) {
        rd_kafka_resp_err_t err =
            rd_kafka_mock_topic_create(mc, o.topics[i].name, o.topics[i].partitions, repl);
        if (err) {
            fprintf(stderr, PROG ": cannot create topic '%s': %s\n", o.topics[i].name,
                    rd_kafka_err2str(err));
            goto out;
        }
    }

    const char *bootstraps = rd_kafka_mock_cluster_bootstraps(mc);
    if (fwd) {
        int up = first_port(bootstraps);
        if (up < 0 || (r = fwd_start(fwd, (uint16_t)up)) < 0) {
            fprintf(stderr, PROG ": cannot start the forwarder to '%s'\n", bootstraps);
            goto out;
        }
        printf("127.0.0.1:%d\n", o.port);
    } else {
        printf("%s\n", bootstraps);
    }
    if (fflush(stdout) != 0 && errno != EPIPE) {
        fprintf(stderr, PROG ": cannot write the bootstrap address: %s\n", strerror(errno));
        goto out;
    }
    if (o.verbose) {
        fprintf(stderr, PROG ": %d broker(s) at %s", o.brokers, bootstraps);
        if (fwd)
            fprintf(stderr, ", bootstrap 127.0.0.1:%d relayed to broker 1", o.port);
        fprintf(stderr, "; %zu topic(s) created\n", o.ntopics);
    }

    /* The loop acts on one signal at a time: an outage (SIGUSR1) or its end
     * (SIGUSR2) goes on serving; SIGTERM/SIGINT stop. */
    int sig = 0;
    for (;;) {
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig != SIGUSR1 && sig != SIGUSR2)
            break;
        bool up = sig == SIGUSR2;
        if (set_brokers(mc, o.brokers, up) == 0 && o.verbose)
            fprintf(stderr, PROG ": %s: %d broker(s) %s\n", up ? "SIGUSR2" : "SIGUSR1",
                    o.brokers, up ? "up" : "down (data kept)");
    }
    if (o.verbose)
        fprintf(stderr, PROG ": %s, shutting down\n", strsignal(sig));
    status = 0;

out:
    /* Reverse order: no client may reach a broker that is gone through the
   * forwarder, and the cluster lives on the handle. */
    fwd_free(fwd);
    if (mc)
        rd_kafka_mock_cluster_destroy(mc);
    if (rk)
        rd_kafka_destroy(rk);
    if (conf)
        rd_kafka_conf_destroy(conf);
    opts_free(&o);
    return status;
}
