/* archive_int.h - the arch handle, shared by the files of archive/.
 *
 * One handle is one SQLite connection, used by one thread at a time (the
 * caller's duty, see archive.h), so nothing in it is locked.
 */
#pragma once
#include <sqlite3.h>
#include <zstd.h>

#include "archive/archive.h"

#define ARCH_SCHEMA_VERSION 1

struct arch {
    sqlite3 *db;
    char *path;
    char *wal_path;            /* path-wal, for file_bytes */
    bool readonly;
    int level;                 /* zstd level of new chunks */

    /* writer only: the commit path, prepared once */
    ZSTD_CCtx *cctx;
    uint8_t *zbuf;             /* compressed chunk, reused */
    size_t zcap;
    sqlite3_stmt *st_begin, *st_commit, *st_rollback;
    sqlite3_stmt *st_chunk, *st_data, *st_reject, *st_offset;

    sqlite3_stmt *st_get_offset;
    sqlite3_stmt *st_data_version;

    /* Running totals (file_bytes unused), valid as of data_version: they
     * are reloaded from the tables when another connection committed. */
    arch_stats tot;
    int64_t data_version;
};

/* The chunk queries of arch_scan (scan.c), for the test of their plans. */
extern const char arch_sql_scan_by_seq[], arch_sql_scan_by_tpart[];

/* Sets *errmsg (when errmsg is not NULL) to a malloc'd formatted text
 * (NULL if even that fails) and returns rc. */
int arch_fail(char **errmsg, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* arch_fail with "<what>: <SQLite's message>" and rc mapped to an errno. */
int arch_sqlfail(arch *a, char **errmsg, int rc, const char *what);
/* A negative errno for an SQLite result code. */
int arch_errno(int sqlite_rc);
