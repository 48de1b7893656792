/* store.c - the views file (see store.h).
 *
 * Schema (SQLite, WAL, synchronous=FULL: a swap must only ever follow a
 * durable write):
 *   meta(key PRIMARY KEY, value)     'format' (4), 'R', 'at'
 *   views(name PRIMARY KEY, fingerprint, unit)
 *   segments(id INTEGER PRIMARY KEY, view, start, end, nrows, bytes, current)
 *                                    the index: small rows, read at start
 *   segdata(id INTEGER PRIMARY KEY, data)
 *                                    the segment bytes (core/segment.h), read
 *                                    on demand by the serving layer's cache
 * A segment is current (1) while the published batch version holds it. A
 * run that replaces one marks it 0 in the same transaction that adds its
 * successor; its rows are deleted once no query holds it any more
 * (bstore_delete_segments, from the state's garbage list), or at the next
 * open. A file of another format (1: no 'format' key and 40-byte cells; 2:
 * one row blob per partition; 3: segments of version 1, core/segment.h) is
 * emptied at open, and given the page size of a new file (VIEWS_PAGE_SIZE):
 * every view is then rebuilt from the archive. Batch thread only (and at start).
 */
#include "batch/store.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STR_(x) #x
#define STR(x) STR_(x)

/* The format this code writes; see the top of this file. */
#define VIEWS_FORMAT 4
/* SQLite's page size for a new views file. Each segment is one blob whose
 * last page is half empty on average: 2 KB pages waste half what 4 KB
 * ones do (the file of 10M events over a year: 73.7 MB instead of 74.5;
 * 1 KB pages saved only 0.2 MB more, for twice the page reads). */
#define VIEWS_PAGE_SIZE 2048

struct bstore {
    sqlite3 *db;
    int reset_from;   /* the format found at open and discarded, 0: none */
};

static int fail(char **errmsg, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char **errmsg, int rc, const char *fmt, ...)
{
    if (errmsg) {
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(errmsg, fmt, ap) < 0)
            *errmsg = NULL;
        va_end(ap);
    }
    return rc;
}

static int sqlfail(bstore *s, char **errmsg, const char *what)
{
    return fail(errmsg, -EIO, "views file: %s: %s", what, sqlite3_errmsg(s->db));
}

static int check_format(bstore *s, char **errmsg);
static int get_int(bstore *s, const char *key, int64_t *v, char **errmsg);

static int exec(bstore *s, const char *sql, char **errmsg)
{
    char *e = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &e) != SQLITE_OK) {
        int r = fail(errmsg, -EIO, "views file: %s", e ? e : sqlite3_errmsg(s->db));
        sqlite3_free(e);
        return r;
    }
    return 0;
}

int bstore_open(const char *path, bstore **out, char **errmsg)
{
    bstore *s = calloc(1, sizeof(*s));
    if (!s)
        return fail(errmsg, -ENOMEM, "out of memory");
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        int r = fail(errmsg, -EIO, "cannot open views file %s: %s", path,
                     s->db ? sqlite3_errmsg(s->db) : "out of memory");
        bstore_close(s);
        return r;
    }
    sqlite3_busy_timeout(s->db, 5000);
    int r = exec(s,
                 /* both only take effect in a new file (an emptied older one
                  * is converted by check_format) */
                 "PRAGMA page_size=" STR(VIEWS_PAGE_SIZE) ";"
                 /* incremental: space freed by deleted segments goes back to
                  * the file system (bstore_delete_segments) */
                 "PRAGMA auto_vacuum=INCREMENTAL;"
                 "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                 "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
                 "CREATE TABLE IF NOT EXISTS views(name TEXT PRIMARY KEY, fingerprint TEXT NOT NULL,"
                 " unit TEXT NOT NULL) WITHOUT ROWID;",
                 errmsg);
    if (r == 0)
        r = check_format(s, errmsg);
    if (r < 0) {
        bstore_close(s);
        return r;
    }
    *out = s;
    return 0;
}

int bstore_open_existing(const char *path, bstore **out, char **errmsg)
{
    bstore *s = calloc(1, sizeof(*s));
    if (!s)
        return fail(errmsg, -ENOMEM, "out of memory");
    /* read-write without create: a reader of a WAL file needs its -shm */
    int rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE, NULL);
    if (rc != SQLITE_OK) {
        int r = rc == SQLITE_CANTOPEN ? -ENOENT : -EIO;
        r = fail(errmsg, r, "cannot open views file %s: %s", path,
                 s->db ? sqlite3_errmsg(s->db) : "out of memory");
        bstore_close(s);
        return r;
    }
    sqlite3_busy_timeout(s->db, 5000);
    int64_t format = 0;
    int r = get_int(s, "format", &format, errmsg);
    if (r == 0 && format != VIEWS_FORMAT)
        r = fail(errmsg, -EPROTONOSUPPORT, "views file %s has format %lld, not %d (lambdad "
                 "rebuilds it at its next start)", path, (long long)format, VIEWS_FORMAT);
    if (r < 0) {
        bstore_close(s);
        return r;
    }
    *out = s;
    return 0;
}

int bstore_reset_from(const bstore *s)
{
    return s->reset_from;
}

void bstore_close(bstore *s)
{
    if (!s)
        return;
    sqlite3_close(s->db);
    free(s);
}

static int get_int(bstore *s, const char *key, int64_t *v, char **errmsg)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE key = ?", -1, &st, NULL) != SQLITE_OK)
        return sqlfail(s, errmsg, "read meta");
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    *v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : sqlfail(s, errmsg, "read meta");
}

static const char *const schema =
    "CREATE TABLE segments(id INTEGER PRIMARY KEY, view TEXT NOT NULL, start INTEGER NOT NULL,"
    " end INTEGER NOT NULL, nrows INTEGER NOT NULL, bytes INTEGER NOT NULL,"
    " current INTEGER NOT NULL);"
    "CREATE INDEX segments_by_view ON segments(view, current, start);"
    "CREATE TABLE segdata(id INTEGER PRIMARY KEY, data BLOB NOT NULL);";

/* Empties a views file of another format (its views are then rebuilt
 * from the archive) and creates this format's tables; in a file of this
 * format, deletes the segments a crash left superseded. */
static int check_format(bstore *s, char **errmsg)
{
    int64_t format = 0, views = 0;
    int r = get_int(s, "format", &format, errmsg);
    sqlite3_stmt *st;
    if (r == 0 && sqlite3_prepare_v2(s->db, "SELECT count(*) FROM views", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            views = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    if (r < 0)
        return r;
    if (format == VIEWS_FORMAT)
        return exec(s, "BEGIN IMMEDIATE;"
                       "DELETE FROM segdata WHERE id IN (SELECT id FROM segments WHERE current = 0);"
                       "DELETE FROM segments WHERE current = 0; COMMIT;", errmsg);
    if (format != 0 || views > 0)
        s->reset_from = format ? (int)format : 1;
    char *sql = NULL;
    if (asprintf(&sql,
                 "BEGIN IMMEDIATE; DROP TABLE IF EXISTS parts; DROP TABLE IF EXISTS segments;"
                 "DROP TABLE IF EXISTS segdata; DELETE FROM views; DELETE FROM meta; %s"
                 "INSERT INTO meta(key, value) VALUES ('format', %d); COMMIT;",
                 schema, VIEWS_FORMAT) < 0)
        return fail(errmsg, -ENOMEM, "out of memory");
    r = exec(s, sql, errmsg);
    free(sql);
    if (r < 0) {
        bstore_rollback(s);
        return r;
    }
    /* The file is empty now: give it this code's page size and vacuum
     * mode, as a new file has them, while rewriting it costs nothing.
     * Best effort: any page size works, and a reader still open on the
     * file (a reload's previous runtime) keeps SQLite from leaving WAL. */
    sqlite3_exec(s->db, "PRAGMA journal_mode=DELETE; PRAGMA page_size=" STR(VIEWS_PAGE_SIZE) ";"
                        "PRAGMA auto_vacuum=INCREMENTAL; VACUUM;", NULL, NULL, NULL);
    return exec(s, "PRAGMA journal_mode=WAL", errmsg);
}

int bstore_get_watermark(bstore *s, int64_t *R, int64_t *at, char **errmsg)
{
    int r = get_int(s, "R", R, errmsg);
    return r < 0 ? r : get_int(s, "at", at, errmsg);
}

int bstore_get_view(bstore *s, const char *name, char fingerprint[17], gran_t *unit, char **errmsg)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT fingerprint, unit FROM views WHERE name = ?", -1, &st,
                           NULL) != SQLITE_OK)
        return sqlfail(s, errmsg, "read views");
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st), r = -ENOENT;
    if (rc == SQLITE_ROW) {
        const char *fp = (const char *)sqlite3_column_text(st, 0);
        const char *u = (const char *)sqlite3_column_text(st, 1);
        snprintf(fingerprint, 17, "%s", fp ? fp : "");
        r = u && gran_parse(u, unit) == 0 ? 0 : fail(errmsg, -EINVAL, "views file: bad unit for view '%s'", name);
    } else if (rc != SQLITE_DONE) {
        r = sqlfail(s, errmsg, "read views");
    }
    sqlite3_finalize(st);
    return r;
}

/* ---- the segment index ------------------------------------------------- */

int bstore_load_index(bstore *s, const view_def *v, bversion **out, char **errmsg)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT id, start, end, nrows, bytes FROM segments"
                           " WHERE view = ? AND current = 1 ORDER BY start", -1, &st, NULL) != SQLITE_OK)
        return sqlfail(s, errmsg, "read segments");
    sqlite3_bind_text(st, 1, v->name, -1, SQLITE_STATIC);
    bversion *ver = calloc(1, sizeof(*ver));
    size_t cap = 0;
    int r = ver ? 0 : -ENOMEM, rc = SQLITE_DONE;
    while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (ver->nsegs == cap) {
            cap = cap ? cap * 2 : 16;
            bseg **ns = realloc(ver->segs, cap * sizeof(*ns));
            if (!ns) {
                r = -ENOMEM;
                break;
            }
            ver->segs = ns;
        }
        bseg *seg = bseg_new(sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1),
                             sqlite3_column_int64(st, 2), sqlite3_column_int64(st, 3),
                             sqlite3_column_int64(st, 4));
        if (!seg)
            r = -ENOMEM;
        else
            ver->segs[ver->nsegs++] = seg;
    }
    if (r == 0 && rc != SQLITE_DONE)
        r = sqlfail(s, errmsg, "read segments");
    else if (r == -ENOMEM)
        fail(errmsg, r, "out of memory loading the index of view '%s'", v->name);
    sqlite3_finalize(st);
    if (r < 0) {
        bversion_unref(ver);
        return r;
    }
    *out = ver;
    return 0;
}

int bstore_begin(bstore *s, char **errmsg)
{
    return exec(s, "BEGIN IMMEDIATE", errmsg);
}

int bstore_commit(bstore *s, char **errmsg)
{
    return exec(s, "COMMIT", errmsg);
}

void bstore_rollback(bstore *s)
{
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

int bstore_put_segment(bstore *s, const view_def *v, int64_t start, int64_t end,
                       const void *blob, size_t len, int64_t nrows, int64_t *id, char **errmsg)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO segments(view, start, end, nrows, bytes, current)"
                           " VALUES (?, ?, ?, ?, ?, 1)", -1, &st, NULL) != SQLITE_OK)
        return sqlfail(s, errmsg, "write segment");
    sqlite3_bind_text(st, 1, v->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, start);
    sqlite3_bind_int64(st, 3, end);
    sqlite3_bind_int64(st, 4, nrows);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)len);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return sqlfail(s, errmsg, "write segment");
    *id = sqlite3_last_insert_rowid(s->db);
    if (sqlite3_prepare_v2(s->db, "INSERT INTO segdata(id, data) VALUES (?, ?)", -1, &st, NULL) !=
        SQLITE_OK)
        return sqlfail(s, errmsg, "write segment");
    sqlite3_bind_int64(st, 1, *id);
    sqlite3_bind_blob64(st, 2, blob, len, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : sqlfail(s, errmsg, "write segment");
}

/* Runs sql (one '?' for the id) for each id. */
static int each_id(bstore *s, const char *sql, const int64_t *ids, size_t n, char **errmsg)
{
    sqlite3_stmt *st;
    if (n == 0)
        return 0;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return sqlfail(s, errmsg, "update segments");
    int r = 0;
    for (size_t i = 0; i < n && r == 0; i++) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, ids[i]);
        if (sqlite3_step(st) != SQLITE_DONE)
            r = sqlfail(s, errmsg, "update segments");
    }
    sqlite3_finalize(st);
    return r;
}

int bstore_retire(bstore *s, const int64_t *ids, size_t n, char **errmsg)
{
    return each_id(s, "UPDATE segments SET current = 0 WHERE id = ?", ids, n, errmsg);
}

int bstore_delete_segments(bstore *s, const int64_t *ids, size_t n, char **errmsg)
{
    int r = exec(s, "BEGIN IMMEDIATE", errmsg);
    if (r == 0)
        r = each_id(s, "DELETE FROM segdata WHERE id = ?", ids, n, errmsg);
    if (r == 0)
        r = each_id(s, "DELETE FROM segments WHERE id = ?", ids, n, errmsg);
    if (r == 0)
        r = exec(s, "COMMIT", errmsg);
    if (r < 0) {
        bstore_rollback(s);
        return r;
    }
    /* Give the freed pages back, and keep the WAL from growing with every
     * run's segments: both are best effort (a busy reader only delays). */
    sqlite3_exec(s->db, "PRAGMA incremental_vacuum; PRAGMA wal_checkpoint(TRUNCATE);", NULL, NULL,
                 NULL);
    return 0;
}

int bstore_put_view(bstore *s, const view_def *v, gran_t unit, char **errmsg)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT OR REPLACE INTO views(name, fingerprint, unit) VALUES (?, ?, ?)",
                           -1, &st, NULL) != SQLITE_OK)
        return sqlfail(s, errmsg, "write view");
    sqlite3_bind_text(st, 1, v->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, v->fingerprint, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, gran_name(unit), -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : sqlfail(s, errmsg, "write view");
}

int bstore_drop_unknown_views(bstore *s, const view_def *views, size_t nviews, char **errmsg)
{
    sqlite3_stmt *sel;
    if (sqlite3_prepare_v2(s->db, "SELECT name FROM views", -1, &sel, NULL) != SQLITE_OK)
        return sqlfail(s, errmsg, "read views");
    char **gone = NULL;
    size_t ngone = 0;
    int r = 0;
    while (sqlite3_step(sel) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(sel, 0);
        bool known = false;
        for (size_t v = 0; name && v < nviews && !known; v++)
            known = strcmp(views[v].name, name) == 0;
        if (known || !name)
            continue;
        char **ng = realloc(gone, (ngone + 1) * sizeof(*ng));
        if (!ng || !(ng[ngone] = strdup(name))) {
            gone = ng ? ng : gone;
            r = -ENOMEM;
            break;
        }
        gone = ng;
        ngone++;
    }
    sqlite3_finalize(sel);
    for (size_t i = 0; r == 0 && i < ngone; i++) {
        sqlite3_stmt *del;
        /* No query can hold these segments: the view is not configured. */
        const char *sqls[] = {
            "DELETE FROM segdata WHERE id IN (SELECT id FROM segments WHERE view = ?)",
            "DELETE FROM segments WHERE view = ?", "DELETE FROM views WHERE name = ?"};
        for (int q = 0; r == 0 && q < 3; q++) {
            if (sqlite3_prepare_v2(s->db, sqls[q], -1, &del, NULL) != SQLITE_OK) {
                r = sqlfail(s, errmsg, "drop view");
                break;
            }
            sqlite3_bind_text(del, 1, gone[i], -1, SQLITE_STATIC);
            if (sqlite3_step(del) != SQLITE_DONE)
                r = sqlfail(s, errmsg, "drop view");
            sqlite3_finalize(del);
        }
    }
    for (size_t i = 0; i < ngone; i++)
        free(gone[i]);
    free(gone);
    if (r == -ENOMEM && errmsg && !*errmsg)
        fail(errmsg, r, "out of memory");
    return r;
}

int bstore_put_watermark(bstore *s, int64_t R, int64_t at, char **errmsg)
{
    char sql[160];
    snprintf(sql, sizeof(sql),
             "INSERT OR REPLACE INTO meta(key, value) VALUES ('R', %lld), ('at', %lld)",
             (long long)R, (long long)at);
    return exec(s, sql, errmsg);
}
