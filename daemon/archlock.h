/* archlock.h - who may use an archive: a flock on <archive>-lock.
 * Exclusive for a writer (the daemon for its lifetime, daemon/main.c; a
 * direct lambdad import), shared for an offline reader (lambdad export
 * from the files). The kernel drops it with the process, also on kill -9.
 * The holder of the exclusive lock writes its pid into the file, so a
 * refused caller can name it. Callers word their own messages. */
#pragma once
#include <stdbool.h>

typedef struct {
    int fd;              /* the lock held, or -1 */
    char path[4096];     /* <archive>-lock */
    char holder[32];     /* after -EWOULDBLOCK: the holder's pid as written, "" if unreadable */
    bool open_failed;    /* after another error: the open failed (else the flock) */
    int pid_err;         /* exclusive, held: -errno when our pid could not be written */
} archlock;

/* Takes the lock without waiting. exclusive: creates the file (0600) and
 * writes our pid into it (l->pid_err when that fails; the lock is held all
 * the same). shared: opens the file only for reading and, when it
 * does not exist (no daemon ever ran there), succeeds with l->fd -1.
 * 0 when held; -EWOULDBLOCK when another holds it; another negative errno
 * (-ENAMETOOLONG, counted as a failed open: the path does not fit). l->fd
 * is -1 unless 0. */
int archlock_take(const char *archive_path, bool exclusive, archlock *l);
void archlock_release(archlock *l);   /* closes l->fd: drops the lock */
