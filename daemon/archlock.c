/* archlock.c - see archlock.h. */
#include "daemon/archlock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

static int write_pid(int fd)
{
    char mine[32];
    int n = snprintf(mine, sizeof(mine), "%d\n", (int)getpid());
    if (ftruncate(fd, 0) < 0)
        return -errno;
    ssize_t w = pwrite(fd, mine, (size_t)n, 0);
    return w == n ? 0 : w < 0 ? -errno : -EIO;
}

int archlock_take(const char *archive_path, bool exclusive, archlock *l)
{
    *l = (archlock){.fd = -1};
    if (snprintf(l->path, sizeof(l->path), "%s-lock", archive_path) >= (int)sizeof(l->path)) {
        l->open_failed = true;
        return -ENAMETOOLONG;
    }
    /* a shared lock needs no write access, and no file means no daemon */
    int fd = exclusive ? open(l->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)
                       : open(l->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (!exclusive && errno == ENOENT)
            return 0;
        l->open_failed = true;
        return -errno;
    }
    if (flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) == 0) {
        if (exclusive)
            l->pid_err = write_pid(fd);
        l->fd = fd;
        return 0;
    }
    int e = errno;
    ssize_t n = pread(fd, l->holder, sizeof(l->holder) - 1, 0);
    l->holder[n > 0 ? n : 0] = '\0';
    l->holder[strcspn(l->holder, "\n")] = '\0';
    close(fd);
    return -e;
}

void archlock_release(archlock *l)
{
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
}
