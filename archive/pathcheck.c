/* pathcheck.c - arch_check_path: can the archive be opened or created at
 * a path? For `lambdad --check-config` and the start, so a path that
 * cannot work is refused with its reason before anything is created.
 *
 * The checks are the file system's own answers (stat, and faccessat with
 * the effective ids, which also reports a read-only file system); they
 * create nothing. The archive's directory must be writable even when the
 * file exists: SQLite creates the -wal and -shm files next to it, and the
 * daemon its -lock and -views files. A race (the directory removed after
 * the check) is still caught by arch_open.
 *
 * Any thread; no shared state.
 */
#include "archive/archive_int.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The reasons for the archive's directory dir; verb says what would be
 * done to path ("create" or "open"). */
static int check_dir(const char *path, const char *verb, const char *dir, char **errmsg)
{
    struct stat st;
    if (stat(dir, &st) < 0) {
        int e = errno;
        if (e == ENOENT)
            return arch_fail(errmsg, -e, "cannot %s %s: directory %s does not exist", verb, path,
                             dir);
        return arch_fail(errmsg, -e, "cannot %s %s: directory %s: %s", verb, path, dir,
                         strerror(e));
    }
    if (!S_ISDIR(st.st_mode))
        return arch_fail(errmsg, -ENOTDIR, "cannot %s %s: %s is not a directory", verb, path, dir);
    if (faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) < 0) {
        int e = errno;
        return arch_fail(errmsg, -e, "cannot %s %s: directory %s is not writable (%s); the "
                         "archive's -wal, -shm, -lock and -views files go there too", verb, path,
                         dir, strerror(e));
    }
    return 0;
}

int arch_check_path(const char *path, char **errmsg)
{
    if (!path || !*path)
        return arch_fail(errmsg, -EINVAL, "no archive path");
    const char *verb = "create";
    struct stat st;
    if (stat(path, &st) == 0) {
        verb = "open";
        if (S_ISDIR(st.st_mode))
            return arch_fail(errmsg, -EISDIR, "cannot open %s: it is a directory", path);
        if (!S_ISREG(st.st_mode))
            return arch_fail(errmsg, -EINVAL, "cannot open %s: not a regular file", path);
        if (faccessat(AT_FDCWD, path, R_OK | W_OK, AT_EACCESS) < 0) {
            int e = errno;
            return arch_fail(errmsg, -e, "cannot open %s for reading and writing: %s", path,
                             strerror(e));
        }
    } else if (errno != ENOENT && errno != ENOTDIR) {
        /* ENOENT and ENOTDIR: the directory's checks say which part is wrong */
        int e = errno;
        return arch_fail(errmsg, -e, "cannot open %s: %s", path, strerror(e));
    }
    char *copy = strdup(path);
    if (!copy)
        return arch_fail(errmsg, -ENOMEM, "out of memory");
    int r = check_dir(path, verb, dirname(copy), errmsg);   /* dirname may write into copy */
    free(copy);
    return r;
}
