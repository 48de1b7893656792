/* fixedserver.c - bench-fixedserver: the HTTP ceiling of bench/run's query
 * benchmark.
 *
 * A minimal libmicrohttpd server that answers every GET with one fixed JSON
 * body (read from a file: bench/run saves lambdad's own answer to the query
 * being measured, so the bytes on the wire are the same). It runs
 * libmicrohttpd the way serving/http.c does (internal polling thread pool,
 * epoll, the same number of threads) and does no work per request, so its
 * requests/s is what this machine's HTTP stack alone allows.
 *
 * Threads: main waits for SIGTERM/SIGINT in sigwait(); libmicrohttpd's pool
 * answers requests from one shared, read-only response object (libmicrohttpd
 * reference-counts it under its own lock). Prints the bound port as the
 * first line of stdout. Exit 0 after a signal, 1 on error, 2 on bad usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#define PROG "bench-fixedserver"

enum { MAX_BODY = 64 * 1024 * 1024 };

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **req_cls)
{
    static int seen;
    (void)url, (void)version, (void)upload_data;
    /* Answer on the second call, like serving/http.c: a response queued on
     * the first one (headers only) makes libmicrohttpd close the connection. */
    if (!*req_cls) {
        *req_cls = &seen;
        return MHD_YES;
    }
    if (*upload_data_size) {
        *upload_data_size = 0; /* ignore any body */
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0)
        return MHD_NO;
    return MHD_queue_response(conn, MHD_HTTP_OK, (struct MHD_Response *)cls);
}

/* Reads path whole into *out (malloc'd, *len bytes), at most MAX_BODY. */
static int read_file(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 65536;
            if (cap > MAX_BODY) {
                rc = -EFBIG;
                break;
            }
            char *nb = realloc(buf, cap);
            if (!nb) {
                rc = -ENOMEM;
                break;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) {
            if (ferror(f))
                rc = -EIO;
            break;
        }
    }
    fclose(f);
    if (rc) {
        free(buf);
        return rc;
    }
    *out = buf;
    *len = n;
    return 0;
}

int main(int argc, char **argv)
{
    const char *body_file = NULL;
    long port = 0, threads = 2;
    static const struct option longopts[] = {
        {"body-file", required_argument, NULL, 'f'}, {"port", required_argument, NULL, 'p'},
        {"threads", required_argument, NULL, 'j'},   {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "f:p:j:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': body_file = optarg; break;
        case 'p':
            port = strtol(optarg, &end, 10);
            if (*end || port < 0 || port > 65535) {
                fprintf(stderr, PROG ": --port: expected 0..65535\n");
                return 2;
            }
            break;
        case 'j':
            threads = strtol(optarg, &end, 10);
            if (*end || threads < 1 || threads > 64) {
                fprintf(stderr, PROG ": --threads: expected 1..64\n");
                return 2;
            }
            break;
        case 'h':
            printf("Usage: " PROG " --body-file F [--port N] [--threads N]\n"
                   "Answers every GET on 127.0.0.1:N (0: a free port, printed on the first\n"
                   "line) with the bytes of F as application/json, until SIGTERM.\n");
            return 0;
        default: return 2;
        }
    }
    if (!body_file || optind != argc) {
        fprintf(stderr, "Usage: " PROG " --body-file F [--port N] [--threads N]\n");
        return 2;
    }
    char *body = NULL;
    size_t len = 0;
    int r = read_file(body_file, &body, &len);
    if (r) {
        fprintf(stderr, PROG ": %s: %s\n", body_file, strerror(-r));
        return 1;
    }

    /* Block the signals before libmicrohttpd starts its threads, so only
     * sigwait() below sees them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, body, MHD_RESPMEM_PERSISTENT);
    struct MHD_Daemon *d = NULL;
    int rc = 1;
    if (!resp || MHD_add_response_header(resp, "Content-Type", "application/json") != MHD_YES) {
        fprintf(stderr, PROG ": cannot build the response\n");
        goto out;
    }
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL_LINUX_ONLY |
                             MHD_USE_ERROR_LOG,
                         0, NULL, NULL, on_request, resp, MHD_OPTION_SOCK_ADDR, &sa,
                         MHD_OPTION_THREAD_POOL_SIZE, (unsigned)threads,
                         MHD_OPTION_CONNECTION_TIMEOUT, 30U, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, PROG ": cannot listen on 127.0.0.1:%ld\n", port);
        goto out;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    printf("%u\n", info ? (unsigned)info->port : 0U);
    fflush(stdout);
    int sig;
    sigwait(&set, &sig);
    rc = 0;
out:
    if (d)
        MHD_stop_daemon(d);
    if (resp)
        MHD_destroy_response(resp);
    free(body);
    return rc;
}
