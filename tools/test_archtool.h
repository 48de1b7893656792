/* test_archtool.h - what the tests of lambdad-archive share: running the
 * tool in-process and touching an archive with plain SQL. Included by one
 * test program each (static functions). */
#pragma once
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "tests/unit/check.h"
#include "tools/archtool.h"

struct run {
    int rc;
    char *out, *err;
};

/* Runs archtool_main with the NULL-terminated arguments after argv[0]. */
static struct run run_tool(const char *first, ...)
{
    char *argv[16];
    int argc = 0;
    argv[argc++] = (char *)"lambdad-archive";
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a && argc < 15; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    struct run r = {0, NULL, NULL};
    size_t ol, el;
    FILE *out = open_memstream(&r.out, &ol), *err = open_memstream(&r.err, &el);
    r.rc = archtool_main(argc, argv, out, err);
    fclose(out);
    fclose(err);
    return r;
}

static void run_free(struct run *r)
{
    free(r->out);
    free(r->err);
}

/* Runs SQL on the archive directly: the damage a disk or a person does. */
static void sql(const char *path, const char *stmt)
{
    sqlite3 *db;
    CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
    char *err = NULL;
    CHECK_INT(sqlite3_exec(db, stmt, NULL, NULL, &err), SQLITE_OK);
    if (err)
        fprintf(stderr, "sql: %s: %s\n", stmt, err);
    sqlite3_free(err);
    sqlite3_close(db);
}

/* Flips one bit in the middle of chunk seq's stored blob. */
static void flip_bit(const char *path, int seq)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
    CHECK_INT(sqlite3_prepare_v2(db, "SELECT data FROM chunk_data WHERE seq = ?1", -1, &st, NULL),
              SQLITE_OK);
    sqlite3_bind_int(st, 1, seq);
    CHECK_INT(sqlite3_step(st), SQLITE_ROW);
    int n = sqlite3_column_bytes(st, 0);
    unsigned char *b = malloc((size_t)n);
    memcpy(b, sqlite3_column_blob(st, 0), (size_t)n);
    sqlite3_finalize(st);
    b[n / 2] ^= 0x08;
    CHECK_INT(sqlite3_prepare_v2(db, "UPDATE chunk_data SET data = ?1 WHERE seq = ?2", -1, &st,
                                 NULL), SQLITE_OK);
    sqlite3_bind_blob(st, 1, b, n, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, seq);
    CHECK_INT(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    sqlite3_close(db);
    free(b);
}
