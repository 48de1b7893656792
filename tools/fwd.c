/* fwd.c - the loopback TCP forwarder behind lambdad-devbroker --port.
 *
 * One thread runs a poll(2) loop over the listening socket, a wake pipe and
 * every relayed connection. A connection is a pair of non-blocking sockets
 * (client, upstream) with one bounded buffer per direction: a side is read
 * only while the buffer towards the other side has room, so a slow reader
 * throttles its writer instead of growing memory. EOF on one side is passed
 * on as shutdown(SHUT_WR) once its buffer drained; a pair is closed when
 * both directions are finished or on any error. At most FWD_MAX_CONNS pairs
 * exist; further clients wait in the listen backlog.
 *
 * Only the relay thread touches connections; fwd_free() writes to the wake
 * pipe and joins. No locks.
 */
#include "tools/fwd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { FWD_BUF = 64 * 1024, FWD_MAX_CONNS = 256 };

/* Bytes read from one side, waiting to be written to the other. */
struct fwd_buf {
    char *data;
    size_t start, end;
};

struct fwd_conn {
    int fd[2];           /* 0: the client, 1: the mock broker */
    struct fwd_buf b[2]; /* b[i]: read from fd[i], to be written to fd[1-i] */
    bool rd_eof[2];      /* fd[i] reported EOF */
    bool wr_shut[2];     /* shutdown(fd[i], SHUT_WR) done */
};

struct fwd {
    int lfd;
    int wake[2];
    struct sockaddr_in upstream;
    pthread_t thread;
    bool started;
    struct fwd_conn *conns[FWD_MAX_CONNS];
    size_t nconns;
};

static void conn_free(struct fwd_conn *c)
{
    if (!c)
        return;
    for (int i = 0; i < 2; i++) {
        if (c->fd[i] >= 0)
            close(c->fd[i]);
        free(c->b[i].data);
    }
    free(c);
}

/* Connects to the upstream broker. A blocking connect is fine here: the
 * broker is on loopback, so it either accepts into its backlog or refuses
 * at once. The socket is made non-blocking afterwards. */
static int upstream_connect(const struct sockaddr_in *sa)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) < 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    int one = 1;
    /* Kafka requests are small and latency-bound, as librdkafka itself does. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    return fd;
}

/* Accepts every pending client (up to the cap) and pairs it with a new
 * upstream connection. A client whose upstream cannot be reached is closed,
 * which the Kafka client sees as a broker going away and retries. */
static void accept_all(fwd_t *f)
{
    while (f->nconns < FWD_MAX_CONNS) {
        int cfd = accept4(f->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0)
            return; /* EAGAIN, or a client that vanished: try later */
        int one = 1;
        (void)setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct fwd_conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(cfd);
            return;
        }
        c->fd[0] = cfd;
        c->fd[1] = upstream_connect(&f->upstream);
        c->b[0].data = malloc(FWD_BUF);
        c->b[1].data = malloc(FWD_BUF);
        if (c->fd[1] < 0 || !c->b[0].data || !c->b[1].data) {
            conn_free(c);
            continue;
        }
        f->conns[f->nconns++] = c;
    }
}

static size_t buf_room(struct fwd_buf *b)
{
    if (b->start == b->end)
        b->start = b->end = 0;
    if (b->end == FWD_BUF && b->start > 0) {
        memmove(b->data, b->data + b->start, b->end - b->start);
        b->end -= b->start;
        b->start = 0;
    }
    return FWD_BUF - b->end;
}

/* Moves bytes for side i of c after poll said revents. Returns false when
 * the pair must be closed. */
static bool conn_step(struct fwd_conn *c, int i, short revents)
{
    if (revents & POLLERR)
        return false;
    struct fwd_buf *in = &c->b[i], *out = &c->b[1 - i];
    if ((revents & (POLLIN | POLLHUP)) && !c->rd_eof[i] && buf_room(in) > 0) {
        ssize_t n = read(c->fd[i], in->data + in->end, FWD_BUF - in->end);
        if (n > 0)
            in->end += (size_t)n;
        else if (n == 0)
            c->rd_eof[i] = true;
        else if (errno != EAGAIN && errno != EINTR)
            return false;
    }
    /* On POLLHUP the send fails with EPIPE and the pair is closed. */
    if ((revents & (POLLOUT | POLLHUP)) && out->end > out->start) {
        /* MSG_NOSIGNAL: a client that went away must not SIGPIPE the broker. */
        ssize_t n = send(c->fd[i], out->data + out->start, out->end - out->start, MSG_NOSIGNAL);
        if (n > 0)
            out->start += (size_t)n;
        else if (n < 0 && errno != EAGAIN && errno != EINTR)
            return false;
    }
    return true;
}

/* Passes EOF on once everything read before it has been written. Returns
 * false when both directions are finished. */
static bool conn_settle(struct fwd_conn *c)
{
    for (int i = 0; i < 2; i++) {
        if (c->rd_eof[i] && c->b[i].start == c->b[i].end && !c->wr_shut[1 - i]) {
            (void)shutdown(c->fd[1 - i], SHUT_WR);
            c->wr_shut[1 - i] = true;
        }
    }
    return !(c->wr_shut[0] && c->wr_shut[1]);
}

static void *relay_main(void *arg)
{
    fwd_t *f = arg;
    struct pollfd pfd[2 + 2 * FWD_MAX_CONNS];
    for (;;) {
        pfd[0] = (struct pollfd){.fd = f->wake[0], .events = POLLIN};
        pfd[1] = (struct pollfd){.fd = f->nconns < FWD_MAX_CONNS ? f->lfd : -1, .events = POLLIN};
        size_t np = 2;
        for (size_t k = 0; k < f->nconns; k++) {
            struct fwd_conn *c = f->conns[k];
            for (int i = 0; i < 2; i++) {
                short ev = 0;
                if (!c->rd_eof[i] && buf_room(&c->b[i]) > 0)
                    ev |= POLLIN;
                if (c->b[1 - i].end > c->b[1 - i].start)
                    ev |= POLLOUT;
                /* A socket with nothing to do is left out: poll would keep
         * reporting POLLHUP on it and spin. */
                pfd[np++] = (struct pollfd){.fd = ev ? c->fd[i] : -1, .events = ev};
            }
        }
        if (poll(pfd, np, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pfd[0].revents)
            break;
        /* Connections first: the pollfd slots match the current list. */
        size_t kept = 0;
        for (size_t k = 0; k < f->nconns; k++) {
            struct fwd_conn *c = f->conns[k];
            bool ok = conn_step(c, 0, pfd[2 + 2 * k].revents) &&
                      conn_step(c, 1, pfd[3 + 2 * k].revents) && conn_settle(c);
            if (ok)
                f->conns[kept++] = c;
            else
                conn_free(c);
        }
        f->nconns = kept;
        if (pfd[1].revents & POLLIN)
            accept_all(f);
    }
    for (size_t k = 0; k < f->nconns; k++)
        conn_free(f->conns[k]);
    f->nconns = 0;
    return NULL;
}

int fwd_new(fwd_t **out, uint16_t port)
{
    int r;
    fwd_t *f = calloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    f->lfd = f->wake[0] = f->wake[1] = -1;
    if (pipe2(f->wake, O_CLOEXEC | O_NONBLOCK) < 0)
        goto fail_errno;
    f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (f->lfd < 0)
        goto fail_errno;
    /* SO_REUSEADDR only skips TIME_WAIT leftovers of a previous run; a port
   * somebody is listening on still fails with EADDRINUSE. */
    int one = 1;
    if (setsockopt(f->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        goto fail_errno;
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(f->lfd, (struct sockaddr *)&sa, sizeof sa) < 0)
        goto fail_errno;
    if (listen(f->lfd, 128) < 0)
        goto fail_errno;
    *out = f;
    return 0;
fail_errno:
    r = -errno;
    fwd_free(f);
    return r;
}

int fwd_port(const fwd_t *f)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    if (getsockname(f->lfd, (struct sockaddr *)&sa, &len) < 0)
        return -errno;
    return ntohs(sa.sin_port);
}

int fwd_start(fwd_t *f, uint16_t upstream_port)
{
    f->upstream = (struct sockaddr_in){.sin_family = AF_INET,
                                       .sin_port = htons(upstream_port),
                                       .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int r = pthread_create(&f->thread, NULL, relay_main, f);
    if (r != 0)
        return -r;
    f->started = true;
    return 0;
}

void fwd_free(fwd_t *f)
{
    if (!f)
        return;
    if (f->started) {
        char b = 1;
        while (write(f->wake[1], &b, 1) < 0 && errno == EINTR) {
        }
        pthread_join(f->thread, NULL);
    }
    if (f->lfd >= 0)
        close(f->lfd);
    for (int i = 0; i < 2; i++)
        if (f->wake[i] >= 0)
            close(f->wake[i]);
    free(f);
}
