/* nullconsumer.c - bench-nullconsumer: the do-nothing Kafka consumer that
 * is the ceiling of bench/run's ingest benchmark.
 *
 * It reads a topic exactly the way lambdad's speed layer does (librdkafka,
 * every partition assigned explicitly, no consumer-group join, the same
 * consumer settings) but does nothing with a message except count it. So
 * its events/s and CPU seconds are what the Kafka client alone costs on this
 * machine, and lambdad's figures divided by them say what decoding,
 * archiving and aggregating add.
 *
 * One thread (main) polls the consumer; librdkafka runs its own threads.
 * SIGTERM/SIGINT only set a flag. Output on stdout, one line each:
 *   ready partitions=P                        (assigned; start producing)
 *   done count=N bytes=B first_to_last_s=X cpu_s=C maxrss_kb=K
 * cpu_s is getrusage(RUSAGE_SELF) user+system time from "ready" to the Nth
 * message, so it holds librdkafka's threads too, like lambdad's figure.
 * Exit 0 when --count messages were read, 1 on error, timeout or signal,
 * 2 on bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#define PROG "bench-nullconsumer"

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    stop_flag = sig;
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: " PROG " --brokers B --topic T --count N [--timeout S]\n"
            "\n"
            "Counts messages of every partition of topic T (assigned explicitly, read\n"
            "from the beginning, with lambdad's consumer settings) until N were read,\n"
            "then prints the elapsed time and the CPU time it used.\n"
            "\n"
            "  -b, --brokers B   bootstrap servers\n"
            "  -t, --topic T     topic to read\n"
            "  -n, --count N     messages to read (at least 1)\n"
            "  -T, --timeout S   give up after S seconds without a message (default 60)\n"
            "  -h, --help        this text\n");
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static rd_kafka_t *consumer_new(const char *brokers)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* The settings of speed/speed.c plus the fetch wait lambdad's demo and
     * bench configs pass, so both clients read the broker the same way. */
    const char *kv[][2] = {
        {"bootstrap.servers", brokers},
        {"group.id", "bench-nullconsumer"},
        {"client.id", PROG},
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"enable.partition.eof", "false"},
        {"auto.offset.reset", "earliest"},
        {"queued.min.messages", "1000000"},
        {"fetch.wait.max.ms", "10"},
        {"log_level", "3"},
    };
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++) {
        if (rd_kafka_conf_set(conf, kv[i][0], kv[i][1], errstr, sizeof errstr) !=
            RD_KAFKA_CONF_OK) {
            fprintf(stderr, PROG ": librdkafka %s=%s: %s\n", kv[i][0], kv[i][1], errstr);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, PROG ": rd_kafka_new: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    /* conf now belongs to rk */
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

/* Assigns every partition of topic from the beginning; returns how many,
 * or -1 after printing why. Waits up to 10 s for the topic's metadata. */
static int assign_all(rd_kafka_t *rk, const char *topic)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    if (!rkt) {
        fprintf(stderr, PROG ": topic %s: %s\n", topic, rd_kafka_err2str(rd_kafka_last_error()));
        return -1;
    }
    int n = -1;
    for (int attempt = 0; attempt < 100 && n < 0 && !stop_flag; attempt++) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, 1000);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1 && !md->topics[0].err &&
            md->topics[0].partition_cnt > 0)
            n = md->topics[0].partition_cnt;
        if (md)
            rd_kafka_metadata_destroy(md);
        if (n < 0) {
            struct timespec ts = {0, 100 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    rd_kafka_topic_destroy(rkt);
    if (n < 0) {
        fprintf(stderr, PROG ": no metadata for topic %s\n", topic);
        return -1;
    }
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(n);
    for (int p = 0; p < n; p++)
        rd_kafka_topic_partition_list_add(parts, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_resp_err_t err = rd_kafka_assign(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    if (err) {
        fprintf(stderr, PROG ": assign: %s\n", rd_kafka_err2str(err));
        return -1;
    }
    return n;
}

int main(int argc, char **argv)
{
    const char *brokers = NULL, *topic = NULL;
    long long count = 0;
    double timeout = 60;
    static const struct option longopts[] = {
        {"brokers", required_argument, NULL, 'b'}, {"topic", required_argument, NULL, 't'},
        {"count", required_argument, NULL, 'n'},   {"timeout", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "b:t:n:T:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'b': brokers = optarg; break;
        case 't': topic = optarg; break;
        case 'n':
            errno = 0;
            count = strtoll(optarg, &end, 10);
            if (errno || *end || count < 1) {
                fprintf(stderr, PROG ": --count: expected a positive integer\n");
                return 2;
            }
            break;
        case 'T':
            timeout = strtod(optarg, &end);
            if (*end || !(timeout > 0)) {
                fprintf(stderr, PROG ": --timeout: expected seconds > 0\n");
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!brokers || !topic || !count || optind != argc) {
        usage(stderr);
        return 2;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    rd_kafka_t *rk = consumer_new(brokers);
    if (!rk)
        return 1;
    int rc = 1;
    int nparts = assign_all(rk, topic);
    if (nparts < 0)
        goto out;
    printf("ready partitions=%d\n", nparts);
    fflush(stdout);

    double cpu0 = cpu_s(), first = 0, last = 0, last_progress = now_s();
    long long n = 0, bytes = 0, errors = 0;
    while (n < count && !stop_flag) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        double t = now_s();
        if (!m) {
            if (t - last_progress > timeout) {
                fprintf(stderr, PROG ": timed out after %.0f s without a message (%lld of %lld read)\n",
                        timeout, n, count);
                goto out;
            }
            continue;
        }
        if (m->err) {
            /* Transport errors are retried by librdkafka; report the first few. */
            if (errors++ < 5)
                fprintf(stderr, PROG ": %s\n", rd_kafka_message_errstr(m));
        } else {
            if (n++ == 0)
                first = t;
            bytes += (long long)m->len;
            last = t;
            last_progress = t;
        }
        rd_kafka_message_destroy(m);
    }
    if (n < count)
        goto out; /* signal */
    double cpu = cpu_s() - cpu0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("done count=%lld bytes=%lld first_to_last_s=%.6f cpu_s=%.3f maxrss_kb=%ld\n", n, bytes,
           last - first, cpu, ru.ru_maxrss);
    fflush(stdout);
    rc = 0;
out:
    rd_kafka_assign(rk, NULL);
    /* No consumer close: there is no group membership to leave, and
     * close can block while the broker is gone (see speed/speed.c). */
    rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    return rc;
}
