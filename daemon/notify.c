/* notify.c - sd_notify without libsystemd: one datagram per message to the
 * unix socket systemd names in NOTIFY_SOCKET.
 *
 * State: one socket, the receiver's address and the watchdog interval,
 * process-wide, under `lock`. Any thread may call any function; the lock
 * is held for the duration of a send (bounded by SO_SNDTIMEO), so messages
 * from several threads never interleave and notify_close cannot close the
 * socket under a send. The socket is not connected: each send names the
 * receiver, as sd_notify does, so a receiver that re-creates its socket
 * keeps getting messages. systemd learns who sent a message from the
 * kernel's SCM_CREDENTIALS (it enables SO_PASSCRED), nothing to attach.
 */
#include "daemon/notify.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int sock_fd = -1;               /* -1: no notify socket, every call a no-op */
static struct sockaddr_un sock_addr;
static socklen_t sock_addr_len;
static int64_t watchdog_usec;          /* 0: no watchdog */

/* A positive decimal integer that fits an int64_t; no sign, no spaces. */
static int parse_positive(const char *s, int64_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v == 0 || v > INT64_MAX)
        return -EINVAL;
    *out = (int64_t)v;
    return 0;
}

/* NOTIFY_SOCKET as a sockaddr: "/path" (length counts the NUL) or
 * "@name" (abstract: a leading NUL, length without a trailing NUL). */
static int parse_address(const char *e, struct sockaddr_un *sa, socklen_t *len)
{
    size_t n = strlen(e);
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if (e[0] == '/') {
        if (n >= sizeof sa->sun_path)
            return -ENAMETOOLONG;
        memcpy(sa->sun_path, e, n + 1);
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
        return 0;
    }
    if (e[0] == '@' && n > 1) {
        if (n > sizeof sa->sun_path)
            return -ENAMETOOLONG;
        memcpy(sa->sun_path + 1, e + 1, n - 1);   /* sun_path[0] stays '\0' */
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
        return 0;
    }
    return -EINVAL;   /* relative paths, "@", "vsock:..." (not supported) */
}

/* Reads the watchdog variables: *usec = 0 when there is none for us. */
static int parse_watchdog(int64_t *usec)
{
    *usec = 0;
    const char *u = getenv("WATCHDOG_USEC");
    if (!u)
        return 0;
    int64_t v, pid;
    if (parse_positive(u, &v) < 0)
        return -EINVAL;
    const char *p = getenv("WATCHDOG_PID");
    if (p) {
        if (parse_positive(p, &pid) < 0)
            return -EINVAL;
        if (pid != (int64_t)getpid())
            return 0;   /* meant for another process (e.g. our parent) */
    }
    *usec = v;
    return 0;
}

/* @locks lock */
static void close_locked(void)
{
    if (sock_fd >= 0)
        close(sock_fd);
    sock_fd = -1;
    sock_addr_len = 0;
    watchdog_usec = 0;
}

int notify_init(void)
{
    const char *e = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa;
    socklen_t len = 0;
    int64_t wd = 0;
    int r = 0, fd = -1;

    pthread_mutex_lock(&lock);
    close_locked();
    if (!e)
        goto out;
    if ((r = parse_address(e, &sa, &len)) < 0 || (r = parse_watchdog(&wd)) < 0)
        goto out;
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        r = -errno;
        goto out;
    }
    /* Bounded sends: a receiver with a full queue makes sendto fail with
     * EAGAIN after this long instead of blocking the caller forever. */
    struct timeval tv = {.tv_sec = NOTIFY_SEND_TIMEOUT_MS / 1000,
                         .tv_usec = (NOTIFY_SEND_TIMEOUT_MS % 1000) * 1000};
    if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0) {
        r = -errno;
        close(fd);
        goto out;
    }
    sock_fd = fd;
    sock_addr = sa;
    sock_addr_len = len;
    watchdog_usec = wd;
    r = 1;
out:
    pthread_mutex_unlock(&lock);
    return r;
}

int notify_send(const char *state)
{
    if (!state || !*state)
        return -EINVAL;
    size_t n = strlen(state);
    if (n > NOTIFY_MAX_BYTES)
        return -EMSGSIZE;
    int r;
    pthread_mutex_lock(&lock);
    if (sock_fd < 0) {
        r = 0;
    } else {
        ssize_t k;
        do
            k = sendto(sock_fd, state, n, MSG_NOSIGNAL, (const struct sockaddr *)&sock_addr,
                       sock_addr_len);
        while (k < 0 && errno == EINTR);
        /* SO_SNDTIMEO expiring reports EAGAIN (or EWOULDBLOCK, the same
         * value on Linux); a datagram is sent whole or not at all. */
        r = k < 0 ? -errno : 1;
    }
    pthread_mutex_unlock(&lock);
    return r;
}

int notify_sendf(const char *fmt, ...)
{
    char buf[NOTIFY_MAX_BYTES + 1];   /* capped: longer is -EMSGSIZE, not cut */
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    if ((size_t)n > NOTIFY_MAX_BYTES)
        return -EMSGSIZE;
    return notify_send(buf);
}

int64_t notify_watchdog_usec(void)
{
    pthread_mutex_lock(&lock);
    int64_t v = sock_fd >= 0 ? watchdog_usec : 0;
    pthread_mutex_unlock(&lock);
    return v;
}

void notify_close(void)
{
    pthread_mutex_lock(&lock);
    close_locked();
    pthread_mutex_unlock(&lock);
}
