/* store.c - the views file (see store.h).
 *
 * Schema (SQLite, WAL, synchronous=FULL: a swap must only ever follow a
 * durable write):
 *   meta(key PRIMARY KEY, value)           'format', 'R', 'at'
 *   views(name PRIMARY KEY, fingerprint, unit)
 *   parts(view, start, nrows, data, PRIMARY KEY(view, start))
 * A partition's data is its rows, zstd-compressed:
 *   varint nrows, then per row: zigzag(bucket - start), per dimension
 *   varint(len + 1) and the bytes (0 = null), then each metric's state in
 *   its aggregator's canonical encoding (core/agg.h).
 * A file of another format (format 1 had no 'format' key and 40-byte
 * cells) is emptied at open: every view is then rebuilt from the archive.
 * Batch thread only.
 */
#include "batch/store.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "core/bytes.h"

/* The format this code writes; see the top of this file. */
#define VIEWS_FORMAT 2

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
                 "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                 "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
                 "CREATE TABLE IF NOT EXISTS views(name TEXT PRIMARY KEY, fingerprint TEXT NOT NULL,"
                 " unit TEXT NOT NULL) WITHOUT ROWID;"
                 "CREATE TABLE IF NOT EXISTS parts(view TEXT NOT NULL, start INTEGER NOT NULL,"
                 " nrows INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY(view, start));",
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

/* Empties a views file of another format (its views are then rebuilt
 * from the archive) and stamps the current one. */
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
    if (r < 0 || format == VIEWS_FORMAT)
        return r;
    if (format != 0 || views > 0)
        s->reset_from = format ? (int)format : 1;
    char sql[256];
    snprintf(sql, sizeof(sql),
             "BEGIN IMMEDIATE; DELETE FROM parts; DELETE FROM views; DELETE FROM meta;"
             "INSERT INTO meta(key, value) VALUES ('format', %d); COMMIT;", VIEWS_FORMAT);
    r = exec(s, sql, errmsg);
    if (r < 0)
        bstore_rollback(s);
    return r;
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

/* ---- partition encoding ------------------------------------------------ */

typedef struct {
    bytes_w *b;
    int64_t start;
    size_t ndims;
    const agg_layout *layout;
} enc_ctx;

static int enc_row(const vrow *r, void *ud)
{
    enc_ctx *c = ud;
    bw_svarint(c->b, r->bucket - c->start);
    for (size_t d = 0; d < c->ndims; d++) {
        if (r->dims[d].null) {
            bw_varint(c->b, 0);
        } else {
            bw_varint(c->b, (uint64_t)r->dims[d].len + 1);
            bw_put(c->b, r->dims[d].s, r->dims[d].len);
        }
    }
    agg_row_encode(c->layout, r->cells, c->b);
    return c->b->oom ? -ENOMEM : 0;
}

int bpart_encode(const vtable *t, int64_t start, unsigned char **out, size_t *len)
{
    bytes_w raw = {0};
    bw_varint(&raw, vtable_rows(t));
    enc_ctx c = {.b = &raw, .start = start, .ndims = vtable_ndims(t), .layout = vtable_layout(t)};
    int r = vtable_foreach(t, enc_row, &c);
    if (r < 0 || raw.oom) {
        bw_free(&raw);
        return -ENOMEM;
    }
    size_t bound = ZSTD_compressBound(raw.len);
    unsigned char *z = malloc(bound ? bound : 1);
    if (!z) {
        bw_free(&raw);
        return -ENOMEM;
    }
    size_t zl = ZSTD_compress(z, bound, raw.p, raw.len, 1);
    bw_free(&raw);
    if (ZSTD_isError(zl)) {
        free(z);
        return -EIO;
    }
    *out = z;
    *len = zl;
    return 0;
}

int bpart_decode(const unsigned char *buf, size_t len, int64_t start, size_t ndims,
                 const agg_layout *layout, vtable **out)
{
    unsigned long long rawlen = ZSTD_getFrameContentSize(buf, len);
    if (rawlen == ZSTD_CONTENTSIZE_ERROR || rawlen == ZSTD_CONTENTSIZE_UNKNOWN ||
        rawlen > ((unsigned long long)1 << 34))
        return -EBADMSG;
    unsigned char *raw = malloc(rawlen ? rawlen : 1);
    if (!raw)
        return -ENOMEM;
    size_t got = ZSTD_decompress(raw, rawlen, buf, len);
    if (ZSTD_isError(got) || got != rawlen) {
        free(raw);
        return -EBADMSG;
    }
    vtable *t = vtable_new(ndims, layout);
    void *states = malloc(layout->size ? layout->size : 8);
    dimval dims[64];
    int r = t && states && ndims <= 64 ? 0 : -ENOMEM;
    bytes_r b = br_init(raw, rawlen);
    uint64_t nrows = r == 0 ? br_varint(&b) : 0;
    for (uint64_t i = 0; r == 0 && i < nrows && !b.bad; i++) {
        int64_t bucket = start + br_svarint(&b);
        for (size_t d = 0; d < ndims && !b.bad; d++) {
            uint64_t l = br_varint(&b);
            if (l == 0) {
                dims[d] = (dimval){.s = NULL, .len = 0, .null = true};
            } else {
                const unsigned char *s = l - 1 <= br_left(&b) ? br_take(&b, l - 1) : NULL;
                if (!s)
                    b.bad = true;
                else
                    dims[d] = (dimval){.s = (const char *)s, .len = (uint32_t)(l - 1), .null = false};
            }
        }
        if (b.bad)
            break;
        agg_row_decode(layout, states, &b);
        if (b.bad) {
            agg_row_destroy(layout, states);
            break;
        }
        void *row = vtable_upsert(t, bucket, dims);
        if (row)
            agg_row_merge(layout, row, states);
        agg_row_destroy(layout, states);
        if (!row)
            r = -ENOMEM;
    }
    free(states);
    free(raw);
    if (r == 0 && (b.bad || br_left(&b) != 0))
        r = -EBADMSG;
    if (r < 0) {
        vtable_free(t);
        return r;
    }
    *out = t;
    return 0;
}

/* ---- loading and saving --------------------------------------------------- */

int bstore_load_view(bstore *s, const view_def *v, bversion **out, char **errmsg)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT start, data FROM parts WHERE view = ? ORDER BY start",
                           -1, &st, NULL) != SQLITE_OK)
        return sqlfail(s, errmsg, "read parts");
    sqlite3_bind_text(st, 1, v->name, -1, SQLITE_STATIC);
    bversion *ver = calloc(1, sizeof(*ver));
    size_t cap = 0;
    int r = ver ? 0 : -ENOMEM, rc;
    while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t start = sqlite3_column_int64(st, 0);
        const void *data = sqlite3_column_blob(st, 1);
        int len = sqlite3_column_bytes(st, 1);
        if (ver->nparts == cap) {
            cap = cap ? cap * 2 : 16;
            bpart *np = realloc(ver->parts, cap * sizeof(*np));
            if (!np) {
                r = -ENOMEM;
                break;
            }
            ver->parts = np;
        }
        vtable *t = NULL;
        r = bpart_decode(data, (size_t)len, start, v->ndims, v->layout, &t);
        if (r < 0) {
            fail(errmsg, r, "views file: partition %lld of view '%s' is %s", (long long)start,
                 v->name, r == -ENOMEM ? "too large for memory" : "corrupt");
            break;
        }
        ver->parts[ver->nparts++] = (bpart){.start = start, .t = t};
    }
    if (r == 0 && rc != SQLITE_DONE)
        r = sqlfail(s, errmsg, "read parts");
    else if (r == -ENOMEM && errmsg && !*errmsg)
        fail(errmsg, r, "out of memory loading view '%s'", v->name);
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

static int put_part(bstore *s, sqlite3_stmt *ins, const view_def *v, const bpart *p, char **errmsg)
{
    unsigned char *data;
    size_t len;
    int r = bpart_encode(p->t, p->start, &data, &len);
    if (r < 0)
        return fail(errmsg, r, "encoding partition %lld of view '%s' failed", (long long)p->start,
                    v->name);
    sqlite3_reset(ins);
    sqlite3_bind_text(ins, 1, v->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(ins, 2, p->start);
    sqlite3_bind_int64(ins, 3, (sqlite3_int64)vtable_rows(p->t));
    sqlite3_bind_blob64(ins, 4, data, len, free);
    return sqlite3_step(ins) == SQLITE_DONE ? 0 : sqlfail(s, errmsg, "write partition");
}

int bstore_put_view(bstore *s, const view_def *v, gran_t unit, const bversion *ver,
                    const int64_t *starts, size_t n, bool full, char **errmsg)
{
    sqlite3_stmt *st = NULL, *ins = NULL;
    int r = 0;
    if (full) {
        if (sqlite3_prepare_v2(s->db, "DELETE FROM parts WHERE view = ?", -1, &st, NULL) != SQLITE_OK)
            return sqlfail(s, errmsg, "delete parts");
        sqlite3_bind_text(st, 1, v->name, -1, SQLITE_STATIC);
        r = sqlite3_step(st) == SQLITE_DONE ? 0 : sqlfail(s, errmsg, "delete parts");
        sqlite3_finalize(st);
        st = NULL;
    }
    if (r == 0 && sqlite3_prepare_v2(s->db,
                                     "INSERT OR REPLACE INTO parts(view, start, nrows, data) "
                                     "VALUES (?, ?, ?, ?)", -1, &ins, NULL) != SQLITE_OK)
        r = sqlfail(s, errmsg, "write partition");
    /* ver->parts and starts are both sorted: walk them together. */
    size_t k = 0;
    for (size_t i = 0; r == 0 && i < ver->nparts; i++) {
        const bpart *p = &ver->parts[i];
        if (!full) {
            while (k < n && starts[k] < p->start)
                k++;
            if (k == n || starts[k] != p->start)
                continue;
        }
        r = put_part(s, ins, v, p, errmsg);
    }
    sqlite3_finalize(ins);
    if (r == 0 && sqlite3_prepare_v2(s->db,
                                     "INSERT OR REPLACE INTO views(name, fingerprint, unit) "
                                     "VALUES (?, ?, ?)", -1, &st, NULL) != SQLITE_OK)
        r = sqlfail(s, errmsg, "write view");
    if (r == 0) {
        sqlite3_bind_text(st, 1, v->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, v->fingerprint, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, gran_name(unit), -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            r = sqlfail(s, errmsg, "write view");
    }
    sqlite3_finalize(st);
    return r;
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
        const char *sqls[] = {"DELETE FROM parts WHERE view = ?", "DELETE FROM views WHERE name = ?"};
        for (int q = 0; r == 0 && q < 2; q++) {
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
