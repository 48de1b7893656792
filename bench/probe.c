/* probe.c - bench-probe: produces marker events for bench/run's freshness
 * benchmark, each one the moment it is asked for.
 *
 * bench/run writes one payload per line to stdin and takes the time just
 * before; the probe produces the line at once (linger.ms=0: no batching
 * delay), and bench/run then polls a query until the marker is visible.
 * For every delivery report the probe prints one line on stdout:
 *   ack N OK|<error>
 * (N counts lines from 1), which bench/run uses to tell the broker's share
 * of the delay. At end of input it flushes (at most 10 s) and exits 0, or 1
 * if a delivery failed; 2 on bad usage.
 *
 * One thread (main) reads, produces and serves delivery reports; stdin is
 * read with poll() so reports are printed while no line arrives.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#define PROG "bench-probe"

enum { MAX_LINE = 64 * 1024 };

static int failed;

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk, (void)opaque;
    printf("ack %llu %s\n", (unsigned long long)(uintptr_t)m->_private,
           m->err ? rd_kafka_err2str(m->err) : "OK");
    fflush(stdout);
    if (m->err)
        failed = 1;
}

static rd_kafka_t *producer_new(const char *brokers)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *kv[][2] = {
        {"bootstrap.servers", brokers}, {"client.id", PROG}, {"linger.ms", "0"},
        {"enable.idempotence", "false"}, {"log_level", "3"},
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
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, PROG ": rd_kafka_new: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
    }
    /* on success conf belongs to rk */
    return rk;
}

int main(int argc, char **argv)
{
    const char *brokers = NULL, *topic = NULL;
    static const struct option longopts[] = {
        {"brokers", required_argument, NULL, 'b'},
        {"topic", required_argument, NULL, 't'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "b:t:", longopts, NULL)) != -1) {
        switch (c) {
        case 'b': brokers = optarg; break;
        case 't': topic = optarg; break;
        default: return 2;
        }
    }
    if (!brokers || !topic || optind != argc) {
        fprintf(stderr, "Usage: " PROG " --brokers B --topic T  (payloads on stdin, one a line)\n");
        return 2;
    }
    rd_kafka_t *rk = producer_new(brokers);
    if (!rk)
        return 1;
    char *buf = malloc(MAX_LINE);
    size_t have = 0;
    uint64_t lines = 0;
    bool eof = false;
    int rc = 1;
    if (!buf)
        goto out;
    while (!eof) {
        struct pollfd pfd = {.fd = 0, .events = POLLIN};
        int pr = poll(&pfd, 1, 5);
        rd_kafka_poll(rk, 0);
        if (pr <= 0)
            continue;
        ssize_t r = read(0, buf + have, MAX_LINE - have);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            eof = true;
            break;
        }
        have += (size_t)r;
        char *start = buf, *nl;
        while ((nl = memchr(start, '\n', have - (size_t)(start - buf)))) {
            size_t len = (size_t)(nl - start);
            lines++;
            if (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_VALUE(start, len),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                  RD_KAFKA_V_OPAQUE((void *)(uintptr_t)lines),
                                  RD_KAFKA_V_END) != RD_KAFKA_RESP_ERR_NO_ERROR) {
                printf("ack %llu %s\n", (unsigned long long)lines,
                       rd_kafka_err2str(rd_kafka_last_error()));
                fflush(stdout);
                failed = 1;
            }
            start = nl + 1;
        }
        have -= (size_t)(start - buf);
        memmove(buf, start, have);
        if (have == MAX_LINE) {
            fprintf(stderr, PROG ": a line longer than %d bytes\n", MAX_LINE);
            goto out;
        }
    }
    if (rd_kafka_flush(rk, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, PROG ": %d message(s) not delivered within 10 s\n", rd_kafka_outq_len(rk));
        goto out;
    }
    rc = failed;
out:
    free(buf);
    rd_kafka_destroy(rk);
    return rc;
}
