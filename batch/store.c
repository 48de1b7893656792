/* store.c - the views file (see store.h).
 *
 * Schema (SQLite, WAL, synchronous=FULL: a swap must only ever follow a
 * durable write):
 *   meta(key PRIMARY KEY, value)           'R', 'at'
 *   views(name PRIMARY KEY, fingerprint, unit)
 *   parts(view, start, nrows, data, PRIMARY KEY(view, start))
 * A partition's data is its rows, zstd-compressed:
 *   varint nrows, then per row: zigzag(bucket - start), per dimension
 *   varint(len + 1) and the bytes (0 = null), per cell varint(n) and, when
 *   n > 0, zigzag(isum) and fsum, min, max as 8-byte doubles.
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

struct bstore {
    sqlite3 *db;
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
    if (r < 0) {
        bstore_close(s);
        return r;
    }
    *out = s;
    return 0;
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
    unsigned char *p;
    size_t len, cap;
    bool oom;
} wbuf;

static void put(wbuf *b, const void *src, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n > b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 4096;
        while (ncap < b->len + n)
            ncap *= 2;
        unsigned char *np = realloc(b->p, ncap);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void put_varint(wbuf *b, uint64_t v)
{
    unsigned char tmp[10];
    size_t n = 0;
    do {
        tmp[n] = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v)
            tmp[n] |= 0x80;
        n++;
    } while (v);
    put(b, tmp, n);
}

static uint64_t zigzag(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }
static int64_t unzigzag(uint64_t v) { return (int64_t)(v >> 1) ^ -(int64_t)(v & 1); }

typedef struct {
    wbuf *b;
    int64_t start;
    size_t ndims, ncells;
} enc_ctx;

static int enc_row(const vrow *r, void *ud)
{
    enc_ctx *c = ud;
    put_varint(c->b, zigzag(r->bucket - c->start));
    for (size_t d = 0; d < c->ndims; d++) {
        if (r->dims[d].null) {
            put_varint(c->b, 0);
        } else {
            put_varint(c->b, (uint64_t)r->dims[d].len + 1);
            put(c->b, r->dims[d].s, r->dims[d].len);
        }
    }
    for (size_t k = 0; k < c->ncells; k++) {
        const cell *x = &r->cells[k];
        put_varint(c->b, (uint64_t)x->n);
        if (x->n > 0) {
            put_varint(c->b, zigzag(x->isum));
            put(c->b, &x->fsum, 8);
            put(c->b, &x->min, 8);
            put(c->b, &x->max, 8);
        }
    }
    return c->b->oom ? -ENOMEM : 0;
}

int bpart_encode(const vtable *t, int64_t start, unsigned char **out, size_t *len)
{
    wbuf raw = {0};
    put_varint(&raw, vtable_rows(t));
    enc_ctx c = {.b = &raw, .start = start, .ndims = vtable_ndims(t), .ncells = vtable_ncells(t)};
    int r = vtable_foreach(t, enc_row, &c);
    if (r < 0 || raw.oom) {
        free(raw.p);
        return -ENOMEM;
    }
    size_t bound = ZSTD_compressBound(raw.len);
    unsigned char *z = malloc(bound ? bound : 1);
    if (!z) {
        free(raw.p);
        return -ENOMEM;
    }
    size_t zl = ZSTD_compress(z, bound, raw.p, raw.len, 1);
    free(raw.p);
    if (ZSTD_isError(zl)) {
        free(z);
        return -EIO;
    }
    *out = z;
    *len = zl;
    return 0;
}

typedef struct {
    const unsigned char *p, *end;
    bool bad;
} rbuf;

static uint64_t get_varint(rbuf *b)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (b->p >= b->end) {
            b->bad = true;
            return 0;
        }
        unsigned char c = *b->p++;
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80))
            return v;
    }
    b->bad = true;
    return 0;
}

static void get_bytes(rbuf *b, void *dst, size_t n)
{
    if ((size_t)(b->end - b->p) < n) {
        b->bad = true;
        memset(dst, 0, n);
        return;
    }
    memcpy(dst, b->p, n);
    b->p += n;
}

int bpart_decode(const unsigned char *buf, size_t len, int64_t start, size_t ndims,
                 size_t ncells, vtable **out)
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
    vtable *t = vtable_new(ndims, ncells);
    dimval dims[64];
    int r = t && ndims <= 64 ? 0 : -ENOMEM;
    rbuf b = {.p = raw, .end = raw + rawlen};
    uint64_t nrows = r == 0 ? get_varint(&b) : 0;
    for (uint64_t i = 0; r == 0 && i < nrows && !b.bad; i++) {
        int64_t bucket = start + unzigzag(get_varint(&b));
        for (size_t d = 0; d < ndims; d++) {
            uint64_t l = get_varint(&b);
            if (l == 0) {
                dims[d] = (dimval){.s = NULL, .len = 0, .null = true};
            } else if (l - 1 > (uint64_t)(b.end - b.p)) {
                b.bad = true;
                break;
            } else {
                dims[d] = (dimval){.s = (const char *)b.p, .len = (uint32_t)(l - 1), .null = false};
                b.p += l - 1;
            }
        }
        if (b.bad)
            break;
        cell *cells = vtable_upsert(t, bucket, dims);
        if (!cells) {
            r = -ENOMEM;
            break;
        }
        for (size_t k = 0; k < ncells; k++) {
            cell x;
            cell_init(&x);
            x.n = (int64_t)get_varint(&b);
            if (x.n > 0) {
                x.isum = unzigzag(get_varint(&b));
                get_bytes(&b, &x.fsum, 8);
                get_bytes(&b, &x.min, 8);
                get_bytes(&b, &x.max, 8);
            }
            cell_merge(&cells[k], &x);
        }
    }
    free(raw);
    if (r == 0 && (b.bad || b.p != b.end))
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
        r = bpart_decode(data, (size_t)len, start, v->ndims, v->nmetrics, &t);
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
        bversion_free(ver);
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
