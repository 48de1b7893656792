/* archlock.h - whether a lambdad runs on an archive: the daemon holds an
 * exclusive flock on <archive>-lock for its lifetime (daemon/main.c), so
 * a shared lock succeeds exactly when none runs. For the commands that
 * work through a running daemon or on the files (export). */
#pragma once

/* 0 when no daemon runs: *fd then holds a shared lock on the lock file
 * (-1 when there is no lock file: no daemon ever ran there) that keeps a
 * daemon from starting until the caller closes it. -EWOULDBLOCK when a
 * daemon runs: *pid is its pid from the lock file (0 if unreadable).
 * Another negative errno when the lock file cannot be opened. */
int archlock_probe(const char *archive_path, int *fd, long *pid);
