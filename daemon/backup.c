/* backup.c - lambdad backup -c FILE DEST: a consistent copy of the archive
 * and the views file, also while the daemon runs.
 *
 * Both files are copied with SQLite's online backup API (sqlite3_backup_*),
 * BACKUP_STEP_PAGES pages per step (--pages-per-step). Each source connection holds one read
 * transaction for the whole copy, so each copy is one snapshot of its file
 * (the backup never restarts when the daemon commits, and in WAL mode a
 * reader never blocks the daemon's writes; the WAL may only grow meanwhile,
 * as no checkpoint can pass the snapshot).
 *
 * Why the pair is consistent. A restored daemon serves the views file's
 * segments (events with seq <= R) plus the archive's chunks with seq > R,
 * so the archive copy must hold exactly the events of seq <= R that the
 * views were built from, and every event after. The snapshots are taken
 * in this order:
 *   1. the archive's (its last seq is A);
 *   2. the views file's (its R), and R <= A is checked.
 * The batch layer writes a views file's R only after the archive holds
 * every seq up to R, and R only grows; so when R <= A, the archive
 * snapshot holds all of seq <= R. Anything that rewrites archive chunks
 * (compaction) only touches chunks at or below the R persisted at the time,
 * which by step 1 was at most R: no chunk of the archive snapshot mixes
 * events of both sides of R. When a batch run persisted a newer R between
 * the two snapshots (R > A), both are dropped and taken again. Taking the
 * views first would not do: a batch run and a compaction after it could
 * merge chunks across the copied R before the archive's snapshot.
 *
 * Copies are written as hidden temporary files in DEST, synced, and renamed
 * over the final names, so DEST never holds half a backup under the final
 * names. Runs on the calling thread; the daemon needs to do nothing.
 */
#include "daemon/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "core/strutil.h"

#define BACKUP_STEP_PAGES 1024   /* default: 4 MiB with SQLite's default page size */
#define BACKUP_ATTEMPTS 20       /* batch runs persisting between the two snapshots */

static int fail_db(sqlite3 *db, const char *what, const char *path)
{
    fprintf(stderr, "lambdad backup: %s %s: %s\n", what, path, db ? sqlite3_errmsg(db) : "out of memory");
    return -EIO;
}

/* A connection that only reads (read-write without create: a reader of a
 * WAL file needs its -shm). -ENOENT when the file does not exist. */
static int open_source(const char *path, sqlite3 **db)
{
    *db = NULL;
    if (access(path, F_OK) < 0)
        return -ENOENT;
    if (sqlite3_open_v2(path, db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
        return fail_db(*db, "cannot open", path);
    sqlite3_busy_timeout(*db, 10000);
    return 0;
}

/* Starts a read transaction on db and reads one integer in it (the
 * snapshot is taken by that first read). */
static int snapshot_int(sqlite3 *db, const char *sql, const char *path, int64_t *v)
{
    if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        return fail_db(db, "cannot read", path);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return fail_db(db, "cannot read", path);
    int rc = sqlite3_step(st);
    *v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return fail_db(db, "cannot read", path);
    return 0;
}

static void end_read(sqlite3 *db)
{
    if (db && !sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

/* Copies src (in its read transaction) into the new file tmp, in steps of
 * `pages` pages (counted in *steps). */
static int copy_db(sqlite3 *src, const char *src_path, const char *tmp, int pages, long *steps)
{
    unlink(tmp);
    sqlite3 *dst = NULL;
    if (sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        int r = fail_db(dst, "cannot create", tmp);
        sqlite3_close(dst);
        return r;
    }
    sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
    if (!b) {
        int r = fail_db(dst, "cannot copy into", tmp);
        sqlite3_close(dst);
        return r;
    }
    int rc;
    do {
        rc = sqlite3_backup_step(b, pages);
        (*steps)++;
    } while (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED);
    sqlite3_backup_finish(b);
    int r = 0;
    if (rc != SQLITE_DONE) {
        fprintf(stderr, "lambdad backup: copying %s failed: %s\n", src_path, sqlite3_errstr(rc));
        r = -EIO;
    }
    if (sqlite3_close(dst) != SQLITE_OK && r == 0)
        r = fail_db(dst, "cannot close", tmp);
    return r;
}

static int sync_path(const char *path, bool dir)
{
    int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_WRONLY) | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return r;
}

static int64_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

typedef struct {
    const char *src;     /* the live file */
    char *tmp, *dst;     /* in DEST */
    sqlite3 *db;
} copy_job;

static int run_backup(const config *cfg, const char *dest, int pages)
{
    char *views = str_printf("%s-views", cfg->archive_path);
    char *apath = strdup(cfg->archive_path);
    if (!views || !apath) {
        free(views);
        free(apath);
        fprintf(stderr, "lambdad backup: out of memory\n");
        return 1;
    }
    const char *base = basename(apath);
    copy_job job[2] = {
        {.src = cfg->archive_path, .tmp = str_printf("%s/.%s.tmp", dest, base),
         .dst = str_printf("%s/%s", dest, base)},
        {.src = views, .tmp = str_printf("%s/.%s-views.tmp", dest, base),
         .dst = str_printf("%s/%s-views", dest, base)},
    };
    int rc = 1, r;
    int64_t A = 0, R = 0;
    long steps = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (!job[0].tmp || !job[0].dst || !job[1].tmp || !job[1].dst) {
        fprintf(stderr, "lambdad backup: out of memory\n");
        goto out;
    }
    if ((r = open_source(job[0].src, &job[0].db)) < 0) {
        if (r == -ENOENT)
            fprintf(stderr, "lambdad backup: no archive at %s\n", job[0].src);
        goto out;
    }
    r = open_source(job[1].src, &job[1].db);   /* none yet: the archive alone */
    if (r < 0 && r != -ENOENT)
        goto out;
    for (int attempt = 0;; attempt++) {
        if (snapshot_int(job[0].db, "SELECT coalesce(max(seq), 0) FROM chunks", job[0].src, &A) < 0)
            goto out;
        if (job[1].db && snapshot_int(job[1].db, "SELECT coalesce((SELECT value FROM meta WHERE"
                                                 " key = 'R'), 0)", job[1].src, &R) < 0)
            goto out;
        if (R <= A)
            break;
        end_read(job[0].db);   /* a batch run persisted a newer R between the two */
        end_read(job[1].db);
        if (attempt + 1 == BACKUP_ATTEMPTS) {
            fprintf(stderr, "lambdad backup: the views file kept moving ahead of the archive "
                            "snapshot (%d attempts); try again\n", BACKUP_ATTEMPTS);
            goto out;
        }
    }
    for (int i = 0; i < 2; i++)
        if (job[i].db && copy_db(job[i].db, job[i].src, job[i].tmp, pages, &steps) < 0)
            goto out;
    for (int i = 0; i < 2; i++) {
        if (!job[i].db) {
            unlink(job[i].dst);   /* no views file: a stale one must not pair with this archive */
            continue;
        }
        if ((r = sync_path(job[i].tmp, false)) < 0 || rename(job[i].tmp, job[i].dst) < 0) {
            fprintf(stderr, "lambdad backup: cannot write %s: %s\n", job[i].dst,
                    strerror(r < 0 ? -r : errno));
            goto out;
        }
    }
    if ((r = sync_path(dest, true)) < 0) {
        fprintf(stderr, "lambdad backup: cannot sync %s: %s\n", dest, strerror(-r));
        goto out;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%s: %lld bytes, archive seq <= %lld\n", job[0].dst, (long long)file_size(job[0].dst),
           (long long)A);
    if (job[1].db)
        printf("%s: %lld bytes, batch views cover seq <= %lld\n", job[1].dst,
               (long long)file_size(job[1].dst), (long long)R);
    else
        printf("(no views file yet: a daemon started on this backup builds the views from the "
               "archive)\n");
    printf("backup done in %.1f s, %ld step(s) of at most %d pages\n",
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9, steps, pages);
    rc = 0;
out:
    for (int i = 0; i < 2; i++) {
        end_read(job[i].db);
        sqlite3_close(job[i].db);
        if (job[i].tmp)
            unlink(job[i].tmp);
        free(job[i].tmp);
        free(job[i].dst);
    }
    free(views);
    free(apath);
    return rc;
}

/* DEST exists (or is made) and is not the archive's own directory. */
static int check_dest(const config *cfg, const char *dest)
{
    if (mkdir(dest, 0700) < 0 && errno != EEXIST) {
        int e = errno;
        fprintf(stderr, "lambdad backup: cannot create %s: %s\n", dest, strerror(e));
        return -e;
    }
    char *adir_buf = strdup(cfg->archive_path);
    char real_dest[PATH_MAX], real_adir[PATH_MAX];
    int r = 0;
    if (!adir_buf) {
        fprintf(stderr, "lambdad backup: out of memory\n");
        r = -ENOMEM;
    } else if (!realpath(dest, real_dest)) {
        r = -errno;
        fprintf(stderr, "lambdad backup: %s: %s\n", dest, strerror(-r));
    } else if (realpath(dirname(adir_buf), real_adir) && strcmp(real_dest, real_adir) == 0) {
        fprintf(stderr, "lambdad backup: %s is the archive's own directory; back up elsewhere\n",
                dest);
        r = -EINVAL;
    }
    free(adir_buf);
    return r;
}

int backup_main(int argc, char **argv)
{
    const char *path = NULL, *dest = NULL;
    int pages = BACKUP_STEP_PAGES;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            printf("Usage: lambdad backup -c FILE [--pages-per-step N] DEST\n\n"
                   "Copies the archive and the views file of the config into the directory DEST\n"
                   "(made if missing), consistent with each other, while lambdad runs or not,\n"
                   "N database pages at a time (default 1024).\n"
                   "Restore: stop lambdad, copy both files back to archive.path's directory\n"
                   "(removing the old -wal and -shm files), start lambdad.\n");
            return 0;
        }
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
            path = argv[++i];
        else if (strcmp(argv[i], "--pages-per-step") == 0 && i + 1 < argc) {
            char *end;
            long n = strtol(argv[++i], &end, 10);
            if (*end || end == argv[i] || n < 1 || n > 1000000) {
                fprintf(stderr, "lambdad backup: --pages-per-step: expected 1..1000000, got '%s'\n",
                        argv[i]);
                return 2;
            }
            pages = (int)n;
        }
        else if (argv[i][0] != '-' && !dest)
            dest = argv[i];
        else {
            fprintf(stderr, "lambdad backup: unexpected argument '%s'\n", argv[i]);
            fprintf(stderr, "Usage: lambdad backup -c FILE [--pages-per-step N] DEST\n");
            return 2;
        }
    }
    if (!path || !dest) {
        fprintf(stderr, "lambdad backup: %s is required\nUsage: lambdad backup -c FILE [--pages-per-step N] DEST\n",
                path ? "DEST" : "-c FILE");
        return 2;
    }
    umask(077);   /* the copies are as private as the archive (the unit's UMask=0077) */
    config *cfg = NULL;
    int rc = 1;
    if (cli_config_load(path, &cfg) == 0 && check_dest(cfg, dest) == 0)
        rc = run_backup(cfg, dest, pages);
    config_free(cfg);
    return rc;
}
