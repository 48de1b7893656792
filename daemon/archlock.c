/* archlock.c - see archlock.h. */
#include "daemon/archlock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>

int archlock_probe(const char *archive_path, int *fd, long *pid)
{
    char path[4096];
    *fd = -1;
    *pid = 0;
    if (snprintf(path, sizeof(path), "%s-lock", archive_path) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    int f = open(path, O_RDONLY | O_CLOEXEC);   /* flock needs no write access */
    if (f < 0)
        return errno == ENOENT ? 0 : -errno;
    if (flock(f, LOCK_SH | LOCK_NB) == 0) {
        *fd = f;
        return 0;
    }
    int e = errno;
    char buf[32];
    ssize_t n = pread(f, buf, sizeof(buf) - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    *pid = strtol(buf, NULL, 10);
    close(f);
    return e == EWOULDBLOCK ? -EWOULDBLOCK : -e;
}
