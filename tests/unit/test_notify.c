/* test_notify.c - daemon/notify.c against receivers of the test's own: a
 * unix datagram socket in a temporary folder and an abstract one, named in
 * NOTIFY_SOCKET the way systemd does. Every message is read back exactly.
 * Single-threaded except the concurrency case, whose threads only send.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "daemon/notify.h"
#include "tests/unit/check.h"

static char tmpdir[64];

/* A bound, non-blocking datagram receiver; abstract when name starts with '@'. */
static int receiver(const char *name)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(name);
    socklen_t len;
    if (name[0] == '@') {
        memcpy(sa.sun_path + 1, name + 1, n - 1);
        len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    } else {
        memcpy(sa.sun_path, name, n + 1);
        len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    }
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, len) < 0) {
        perror("receiver");
        exit(1);
    }
    return fd;
}

/* The next datagram, NUL-terminated in buf, or "" when none is queued. */
static const char *next_msg(int fd, char *buf, size_t size)
{
    ssize_t n = recv(fd, buf, size - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

static void set_env(const char *notify, const char *usec, const char *pid)
{
    if (notify)
        setenv("NOTIFY_SOCKET", notify, 1);
    else
        unsetenv("NOTIFY_SOCKET");
    if (usec)
        setenv("WATCHDOG_USEC", usec, 1);
    else
        unsetenv("WATCHDOG_USEC");
    if (pid)
        setenv("WATCHDOG_PID", pid, 1);
    else
        unsetenv("WATCHDOG_PID");
}

/* READY, STATUS, WATCHDOG, STOPPING arrive as sent, in order, one datagram each. */
static void lifecycle_to(const char *name)
{
    char buf[NOTIFY_MAX_BYTES + 64];
    int fd = receiver(name);
    set_env(name, NULL, NULL);
    CHECK_INT(notify_init(), 1);
    CHECK_INT(notify_watchdog_usec(), 0);
    CHECK_INT(notify_send("READY=1\nSTATUS=Recovered 12 events; consuming 2 topics"), 1);
    CHECK_INT(notify_sendf("STATUS=%d events/s, lag %d, last batch %s", 1500, 0, "12:00:00Z"), 1);
    CHECK_INT(notify_send("WATCHDOG=1"), 1);
    CHECK_INT(notify_send("STOPPING=1"), 1);
    CHECK_STR(next_msg(fd, buf, sizeof buf), "READY=1\nSTATUS=Recovered 12 events; consuming 2 topics");
    CHECK_STR(next_msg(fd, buf, sizeof buf), "STATUS=1500 events/s, lag 0, last batch 12:00:00Z");
    CHECK_STR(next_msg(fd, buf, sizeof buf), "WATCHDOG=1");
    CHECK_STR(next_msg(fd, buf, sizeof buf), "STOPPING=1");
    CHECK_STR(next_msg(fd, buf, sizeof buf), "");

    /* The biggest message systemd reads goes out whole; one byte more is refused. */
    char *big = malloc(NOTIFY_MAX_BYTES + 2);
    if (!big)
        abort();
    memcpy(big, "STATUS=", 7);
    memset(big + 7, 'x', NOTIFY_MAX_BYTES - 7);
    big[NOTIFY_MAX_BYTES] = '\0';
    CHECK_INT(notify_send(big), 1);
    CHECK_STR(next_msg(fd, buf, sizeof buf), big);
    big[NOTIFY_MAX_BYTES] = 'x';
    big[NOTIFY_MAX_BYTES + 1] = '\0';
    CHECK_INT(notify_send(big), -EMSGSIZE);
    CHECK_INT(notify_sendf("%s", big), -EMSGSIZE);
    CHECK_STR(next_msg(fd, buf, sizeof buf), "");
    free(big);
    CHECK_INT(notify_send(""), -EINVAL);
    CHECK_INT(notify_send(NULL), -EINVAL);

    notify_close();
    CHECK_INT(notify_send("STATUS=after close"), 0);
    CHECK_STR(next_msg(fd, buf, sizeof buf), "");
    notify_close();   /* twice is fine */
    close(fd);
}

static void test_path_and_abstract(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/notify", tmpdir);
    lifecycle_to(path);
    unlink(path);
    char abstract[64];
    snprintf(abstract, sizeof abstract, "@lambdad-test-notify-%ld", (long)getpid());
    lifecycle_to(abstract);
}

static void test_not_under_systemd(void)
{
    set_env(NULL, "30000000", NULL);
    CHECK_INT(notify_init(), 0);
    CHECK_INT(notify_send("READY=1"), 0);
    CHECK_INT(notify_sendf("STATUS=%d", 1), 0);
    CHECK_INT(notify_watchdog_usec(), 0);   /* no socket to ping: no watchdog */
    notify_close();
    /* Before any notify_init, too (state starts empty). */
    CHECK_INT(notify_send("STOPPING=1"), 0);
}

static void test_watchdog(void)
{
    char path[128], pid[32], other[32];
    snprintf(path, sizeof path, "%s/wd", tmpdir);
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    snprintf(other, sizeof other, "%ld", (long)getpid() + 1);
    int fd = receiver(path);

    set_env(path, "30000000", NULL);
    CHECK_INT(notify_init(), 1);
    CHECK_INT(notify_watchdog_usec(), 30000000);
    set_env(path, "30000000", pid);
    CHECK_INT(notify_init(), 1);
    CHECK_INT(notify_watchdog_usec(), 30000000);
    set_env(path, "9223372036854775807", pid);
    CHECK_INT(notify_init(), 1);
    CHECK_INT(notify_watchdog_usec(), INT64_MAX);
    /* Another process's watchdog (WATCHDOG_PID of our parent): none for us,
     * but the socket works. */
    set_env(path, "30000000", other);
    CHECK_INT(notify_init(), 1);
    CHECK_INT(notify_watchdog_usec(), 0);
    CHECK_INT(notify_send("READY=1"), 1);
    char buf[64];
    CHECK_STR(next_msg(fd, buf, sizeof buf), "READY=1");
    notify_close();
    CHECK_INT(notify_watchdog_usec(), 0);

    /* Malformed values: an error, and nothing set up. */
    const char *bad_usec[] = {"", "0", "-5", "+5", " 5", "5s", "abc", "9223372036854775808",
                              "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad_usec / sizeof *bad_usec; i++) {
        set_env(path, bad_usec[i], NULL);
        CHECK_INT(notify_init(), -EINVAL);
        CHECK_INT(notify_watchdog_usec(), 0);
        CHECK_INT(notify_send("READY=1"), 0);
    }
    const char *bad_pid[] = {"", "0", "x1", "1.5"};
    for (size_t i = 0; i < sizeof bad_pid / sizeof *bad_pid; i++) {
        set_env(path, "30000000", bad_pid[i]);
        CHECK_INT(notify_init(), -EINVAL);
        CHECK_INT(notify_watchdog_usec(), 0);
    }
    CHECK_STR(next_msg(fd, buf, sizeof buf), "");
    close(fd);
    unlink(path);
}

static void test_bad_addresses(void)
{
    const char *bad[] = {"", "@", "relative/notify", "vsock:2:1234"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        set_env(bad[i], NULL, NULL);
        CHECK_INT(notify_init(), -EINVAL);
        CHECK_INT(notify_send("READY=1"), 0);
    }
    /* sun_path holds 108 bytes: a path needs its NUL, an abstract name does not. */
    char name[200];
    memset(name, 'a', sizeof name);
    name[0] = '/';
    name[108] = '\0';
    set_env(name, NULL, NULL);
    CHECK_INT(notify_init(), -ENAMETOOLONG);
    name[107] = '\0';
    set_env(name, NULL, NULL);
    CHECK_INT(notify_init(), 1);   /* fits; nobody listens there */
    CHECK_INT(notify_send("READY=1"), -ENOENT);
    name[0] = '@';
    name[107] = 'a';
    set_env(name, NULL, NULL);
    CHECK_INT(notify_init(), 1);
    name[108] = 'a';
    name[109] = '\0';
    set_env(name, NULL, NULL);
    CHECK_INT(notify_init(), -ENAMETOOLONG);

    /* A socket file whose owner is gone. */
    char path[128];
    snprintf(path, sizeof path, "%s/gone", tmpdir);
    close(receiver(path));
    set_env(path, NULL, NULL);
    CHECK_INT(notify_init(), 1);
    CHECK_INT(notify_send("READY=1"), -ECONNREFUSED);
    unlink(path);
    notify_close();
}

/* A receiver that never reads: once its queue is full a send gives up after
 * NOTIFY_SEND_TIMEOUT_MS with -EAGAIN instead of blocking for good. */
static void test_full_receiver(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/full", tmpdir);
    int fd = receiver(path);
    set_env(path, NULL, NULL);
    CHECK_INT(notify_init(), 1);
    int r = 1, sent = 0;
    struct timespec t0, t1;
    while (r == 1 && sent < 100000) {
        clock_gettime(CLOCK_MONOTONIC, &t0);
        r = notify_send("WATCHDOG=1");
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (r == 1)
            sent++;
    }
    double waited = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    CHECK_INT(r, -EAGAIN);
    CHECK(sent > 0);
    CHECK(waited >= NOTIFY_SEND_TIMEOUT_MS / 1000.0 * 0.9);
    CHECK(waited < NOTIFY_SEND_TIMEOUT_MS / 1000.0 + 5);
    /* Draining the queue makes sends work again. */
    char buf[64];
    int drained = 0;
    while (*next_msg(fd, buf, sizeof buf))
        drained++;
    CHECK_INT(drained, sent);
    CHECK_INT(notify_send("STOPPING=1"), 1);
    CHECK_STR(next_msg(fd, buf, sizeof buf), "STOPPING=1");
    notify_close();
    close(fd);
    unlink(path);
}

/* Several threads sending while the main thread re-initializes and closes,
 * and a receiver thread drains (as systemd would: the kernel queues only
 * net.unix.max_dgram_qlen datagrams, often 10, so senders wait for it).
 * Every message that reports success arrives whole, each sender's in order. */
enum { THREADS = 4, PER_THREAD = 2000 };
struct sender {
    pthread_t t;
    int id, ok;
};

struct drain {
    pthread_t t;
    int fd;
    atomic_bool stop;
    int got[THREADS], last[THREADS], bad;
};

static void *send_many(void *arg)
{
    struct sender *s = arg;
    for (int i = 0; i < PER_THREAD; i++)
        if (notify_sendf("STATUS=thread %d message %d", s->id, i) == 1)
            s->ok++;
    return NULL;
}

static void drain_queued(struct drain *d)
{
    char buf[128];
    while (*next_msg(d->fd, buf, sizeof buf)) {
        int t, m;
        if (sscanf(buf, "STATUS=thread %d message %d", &t, &m) != 2 || t < 0 || t >= THREADS ||
            m <= d->last[t]) {
            d->bad++;
            continue;
        }
        d->last[t] = m;
        d->got[t]++;
    }
}

static void *drain_run(void *arg)
{
    struct drain *d = arg;
    while (!atomic_load(&d->stop)) {
        struct pollfd p = {.fd = d->fd, .events = POLLIN};
        poll(&p, 1, 10);
        drain_queued(d);
    }
    return NULL;
}

static void test_threads(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/threads", tmpdir);
    struct drain d = {.fd = receiver(path)};
    for (int i = 0; i < THREADS; i++)
        d.last[i] = -1;
    set_env(path, NULL, NULL);
    CHECK_INT(notify_init(), 1);
    pthread_create(&d.t, NULL, drain_run, &d);
    struct sender s[THREADS] = {{0}};
    for (int i = 0; i < THREADS; i++) {
        s[i].id = i;
        pthread_create(&s[i].t, NULL, send_many, &s[i]);
    }
    /* Sends between a close and the next init are no-ops (0), not errors. */
    for (int round = 0; round < 200; round++) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
        if (round % 2)
            notify_close();
        else
            CHECK_INT(notify_init(), 1);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(s[i].t, NULL);
    atomic_store(&d.stop, true);
    pthread_join(d.t, NULL);
    drain_queued(&d);
    CHECK_INT(d.bad, 0);
    int total = 0;
    for (int i = 0; i < THREADS; i++) {
        CHECK_INT(d.got[i], s[i].ok);
        total += s[i].ok;
    }
    CHECK(total > 0);
    notify_close();
    close(d.fd);
    unlink(path);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lambdad-test-notify-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_not_under_systemd();
    test_path_and_abstract();
    test_watchdog();
    test_bad_addresses();
    test_full_receiver();
    test_threads();
    rmdir(tmpdir);
    CHECK_DONE();
}
