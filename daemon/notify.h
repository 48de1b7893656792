/* notify.h - systemd's service notification protocol (sd_notify), without
 * libsystemd.
 *
 * Under a Type=notify unit systemd passes NOTIFY_SOCKET (a unix datagram
 * socket: a path, or '@' for an abstract name) and, with WatchdogSec=,
 * WATCHDOG_USEC and WATCHDOG_PID. notify_init() reads them once; then
 * notify_send("READY=1\nSTATUS=...") sends one datagram. Outside systemd
 * (no NOTIFY_SOCKET) every call is a no-op that returns 0, so the daemon
 * calls them unconditionally.
 *
 * Thread-safe: one process-wide state under a mutex; any thread may call
 * any function. Sends wait at most NOTIFY_SEND_TIMEOUT_MS for a busy
 * receiver. Errors are negative errnos; nothing is printed. The environment
 * is read, never changed.
 */
#pragma once
#include <stdint.h>

enum {
    /* systemd reads at most this many bytes per message (PIPE_BUF) and drops
     * a longer one: notify_send refuses it with -EMSGSIZE instead. */
    NOTIFY_MAX_BYTES = 4096,
    /* A receiver whose queue is full makes a send fail with -EAGAIN after
     * this long, so a wedged systemd cannot stall the caller's loop. */
    NOTIFY_SEND_TIMEOUT_MS = 1000,
};

/* Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID and opens the socket
 * used by notify_send. Returns 1 when a notify socket is set up, 0 when
 * NOTIFY_SOCKET is unset (not under systemd: everything else is a no-op),
 * or a negative errno, and then nothing is set up:
 *   -EINVAL        NOTIFY_SOCKET is neither "/path" nor "@abstract", or
 *                  WATCHDOG_USEC / WATCHDOG_PID is not a positive integer;
 *   -ENAMETOOLONG  the socket name does not fit a sockaddr_un;
 *   others         from socket(2).
 * The socket's existence is not checked here: the first send reports it.
 * The watchdog is on when WATCHDOG_USEC is set and WATCHDOG_PID is unset
 * or equals getpid(). Calling it again first closes the previous state. */
int notify_init(void);

/* Sends state (newline-separated "KEY=VALUE" assignments, e.g.
 * "READY=1\nSTATUS=Consuming 3 topics", "WATCHDOG=1", "STOPPING=1") as one
 * datagram. Returns 1 when sent, 0 when there is no notify socket, or a
 * negative errno: -EINVAL for NULL or "", -EMSGSIZE beyond NOTIFY_MAX_BYTES,
 * -EAGAIN when the receiver stayed full for NOTIFY_SEND_TIMEOUT_MS, or
 * sendto(2)'s error (-ENOENT, -ECONNREFUSED: nobody listens). */
int notify_send(const char *state);

/* notify_send of a printf-formatted state; the same results. */
__attribute__((format(printf, 1, 2))) int notify_sendf(const char *fmt, ...);

/* The watchdog interval in microseconds (WATCHDOG_USEC), or 0 when there is
 * no watchdog for this process (or no notify socket). Send "WATCHDOG=1"
 * at least every half of it, and only while the work it vouches for
 * progresses. */
int64_t notify_watchdog_usec(void);

/* Closes the socket; afterwards every call is a no-op until notify_init.
 * Safe to call when nothing is set up, and more than once. */
void notify_close(void);
