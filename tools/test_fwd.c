/* test_fwd.c - unit tests of the devbroker's --port forwarder against a
 * threaded echo server on loopback: many concurrent connections (beyond the
 * cap of 256, so some wait in the backlog), a large transfer in both
 * directions, half-close ordering, an unreachable upstream, a taken port,
 * and shutting down with live connections.
 *
 * Threads: the main thread drives clients; the echo server has an acceptor
 * thread and one thread per connection (joined at the end, under a mutex). */
#include "tools/fwd.h"
#include "tests/unit/check.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

enum { NCONN = 300, SMALL = 10000, BIG = 8 << 20, MAX_ECHO = 1024 };

static struct {
    int lfd;
    pthread_t acceptor;
    pthread_mutex_t lock;
    pthread_t threads[MAX_ECHO];
    int nthreads;
} echo = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void *echo_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(fd, buf + off, (size_t)(n - off));
            if (w <= 0)
                goto out;
            off += w;
        }
    }
out:
    close(fd);
    return NULL;
}

static void *echo_accept(void *arg)
{
    for (;;) {
        int fd = accept(echo.lfd, NULL, NULL);
        if (fd < 0)
            return NULL; /* shutdown() of the listener */
        pthread_mutex_lock(&echo.lock);
        if (echo.nthreads == MAX_ECHO ||
            pthread_create(&echo.threads[echo.nthreads], NULL, echo_conn, (void *)(intptr_t)fd))
            close(fd);
        else
            echo.nthreads++;
        pthread_mutex_unlock(&echo.lock);
    }
}

static int listen_any(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 1024) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
        abort();
    *port = ntohs(sa.sin_port);
    return fd;
}

/* A blocking client of 127.0.0.1:port with a 2 s receive timeout, so a
 * broken relay fails the test instead of hanging it. */
static int client(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = 2};
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
        connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        abort();
    return fd;
}

static bool send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* Reads until n bytes or EOF/error; returns the count read. */
static size_t recv_all(int fd, char *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

/* True when the peer closed: read() returns 0, not a timeout or an error. */
static bool at_eof(int fd)
{
    char c;
    return read(fd, &c, 1) == 0;
}

static void fill(char *p, size_t n, unsigned seed)
{
    uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        p[i] = (char)x;
    }
}

struct big_writer {
    int fd;
    const char *data;
    bool ok;
};

static void *write_big(void *arg)
{
    struct big_writer *w = arg;
    w->ok = send_all(w->fd, w->data, BIG) && shutdown(w->fd, SHUT_WR) == 0;
    return NULL;
}

int main(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4 * NCONN + 64) {
        rl.rlim_cur = rl.rlim_max < 4 * NCONN + 64 ? rl.rlim_max : 4 * NCONN + 64;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < 4 * NCONN + 64) {
            fprintf(stderr, "skipped: needs %d file descriptors\n", 4 * NCONN + 64);
            return 77;
        }
    }
    int echo_port;
    echo.lfd = listen_any(&echo_port);
    if (pthread_create(&echo.acceptor, NULL, echo_accept, NULL))
        abort();

    fwd_t *f = NULL;
    CHECK_INT(fwd_new(&f, 0), 0);
    if (!f)
        CHECK_DONE();
    int port = fwd_port(f);
    CHECK(port > 0);
    CHECK_INT(fwd_start(f, (uint16_t)echo_port), 0);

    /* A taken port. */
    fwd_t *g = NULL;
    CHECK_INT(fwd_new(&g, (uint16_t)port), -EADDRINUSE);
    CHECK(g == NULL);

    /* NCONN concurrent connections, more than the relay's cap of 256: the
     * rest wait in the backlog until earlier ones close. */
    static int fds[NCONN];
    static char out[SMALL], in[SMALL];
    int bad_echo = 0, bad_eof = 0;
    for (int i = 0; i < NCONN; i++) {
        fds[i] = client(port);
        fill(out, SMALL, (unsigned)i);
        CHECK(send_all(fds[i], out, SMALL)); /* fits the socket buffers */
    }
    for (int i = 0; i < NCONN; i++) {
        fill(out, SMALL, (unsigned)i);
        memset(in, 0, SMALL);
        if (recv_all(fds[i], in, SMALL) != SMALL || memcmp(in, out, SMALL) != 0)
            bad_echo++;
        /* Half-close: the echo server sees EOF and closes, after the data. */
        shutdown(fds[i], SHUT_WR);
        if (!at_eof(fds[i]))
            bad_eof++;
        close(fds[i]);
        if (bad_echo + bad_eof > 3) { /* broken: do not wait 2 s for each */
            for (int j = i + 1; j < NCONN; j++)
                close(fds[j]);
            break;
        }
    }
    CHECK_INT(bad_echo, 0);
    CHECK_INT(bad_eof, 0);

    /* 8 MiB each way through one connection, writing and reading at once. */
    char *big = malloc(BIG), *back = malloc(BIG + 1);
    if (!big || !back)
        abort();
    fill(big, BIG, 12345);
    struct big_writer w = {.fd = client(port), .data = big};
    pthread_t wt;
    if (pthread_create(&wt, NULL, write_big, &w))
        abort();
    size_t got = recv_all(w.fd, back, BIG);
    CHECK(at_eof(w.fd));
    pthread_join(wt, NULL);
    CHECK(w.ok);
    CHECK_INT(got, BIG);
    CHECK(memcmp(big, back, BIG) == 0);
    close(w.fd);
    free(big);
    free(back);

    /* Shutting down with a live connection closes it. */
    int live = client(port);
    CHECK(send_all(live, "ping", 4));
    char pong[8] = {0};
    CHECK_INT(recv_all(live, pong, 4), 4);
    CHECK_STR(pong, "ping");
    fwd_free(f);
    CHECK(at_eof(live));
    close(live);

    /* An unreachable upstream: the client is closed, nothing hangs. */
    int dead_port, dead = listen_any(&dead_port);
    close(dead);
    CHECK_INT(fwd_new(&f, 0), 0);
    CHECK_INT(fwd_start(f, (uint16_t)dead_port), 0);
    int c = client(fwd_port(f));
    ssize_t r = read(c, pong, 1);
    CHECK(r == 0 || (r < 0 && errno == ECONNRESET));
    close(c);
    fwd_free(f);
    fwd_free(NULL);

    shutdown(echo.lfd, SHUT_RDWR);
    pthread_join(echo.acceptor, NULL);
    close(echo.lfd);
    for (int i = 0; i < echo.nthreads; i++)
        pthread_join(echo.threads[i], NULL);
    CHECK_DONE();
}
