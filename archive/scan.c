/* scan.c - reading events and rejects back from the archive.
 *
 * A scan is one read transaction (its chunk query stays active throughout):
 * it sees the archive as of its start, whatever the writer commits
 * meanwhile (WAL mode). Each
 * chunk is decompressed into a buffer reused for the whole scan and
 * checked completely against its row before its first event is handed
 * out, so a corrupt chunk stops the scan with an error and never yields
 * part of its events or reads out of bounds.
 *
 * Statements and buffers belong to the call, not the handle, so a callback
 * may use other arch functions on the same handle (but must not commit on
 * it). Runs on the caller's thread (recovery, batch runs).
 */
#include "archive/archive_int.h"
#include "archive/chunk.h"

#include <errno.h>
#include <stdlib.h>

#define SCAN_COLUMNS \
    "SELECT seq, part, tpart, first_offset, last_offset, n, min_ts_ms, max_ts_ms, raw_bytes," \
    " codec FROM chunks"

/* The chunk rows are sorted without their data (a sort over a join with
 * chunk_data would copy every blob into the sorter before the first row);
 * each chunk's data is then read by its rowid, in the same read
 * transaction, as the first statement is still active. */

/* All of a stream within a seq range: the rowid range bounds the work
 * (recovery reads seq > R) and gives seq order without a sort. */
const char arch_sql_scan_by_seq[] =
    SCAN_COLUMNS " NOT INDEXED WHERE stream = ?1 AND seq > ?2 AND seq <= ?3 ORDER BY seq";
/* Only some time partitions (batch runs): the index bounds the work,
 * whatever the size of the archive. */
const char arch_sql_scan_by_tpart[] =
    SCAN_COLUMNS " INDEXED BY chunks_stream_tpart"
    " WHERE stream = ?1 AND tpart BETWEEN ?4 AND ?5 AND seq > ?2 AND seq <= ?3 ORDER BY seq";
static const char SQL_DATA[] = "SELECT data FROM chunk_data WHERE seq = ?1";

typedef struct {
    arch *a;
    sqlite3_stmt *data;
    ZSTD_DCtx *dctx;
    uint8_t *buf;
    size_t cap;
    int (*fn)(const arch_event *ev, void *ud);
    void *ud;
    char **errmsg;
} scan_ctx;

static int corrupt(scan_ctx *s, int64_t seq, const char *why)
{
    return arch_fail(s->errmsg, -EBADMSG, "archive chunk %lld is corrupt: %s", (long long)seq,
                     why);
}

/* One row of the scan statement: reads its data, checks it all, then
 * hands out its events. The data blob stays valid until s->data resets. */
static int scan_chunk_data(scan_ctx *s, sqlite3_stmt *st)
{
    int64_t seq = sqlite3_column_int64(st, 0);
    int64_t part = sqlite3_column_int64(st, 1);
    chunk_meta m = {
        .tpart = sqlite3_column_int64(st, 2),
        .first_offset = sqlite3_column_int64(st, 3),
        .last_offset = sqlite3_column_int64(st, 4),
        .n = sqlite3_column_int64(st, 5),
        .min_ts = sqlite3_column_int64(st, 6),
        .max_ts = sqlite3_column_int64(st, 7),
    };
    int64_t raw_bytes = sqlite3_column_int64(st, 8);
    int64_t codec = sqlite3_column_int64(st, 9);
    if (part < INT32_MIN || part > INT32_MAX)
        return corrupt(s, seq, "partition out of range");
    if (raw_bytes < 1 || (uint64_t)raw_bytes > CHUNK_RAW_MAX)
        return corrupt(s, seq, "raw size out of range");
    if (codec != CHUNK_CODEC_RAW && codec != CHUNK_CODEC_ZSTD)
        return corrupt(s, seq, "unknown codec");

    sqlite3_bind_int64(s->data, 1, seq);
    int rc = sqlite3_step(s->data);
    if (rc == SQLITE_DONE)
        return corrupt(s, seq, "no data");
    if (rc != SQLITE_ROW)
        return arch_sqlfail(s->a, s->errmsg, rc, "scan: read chunk data");
    if (sqlite3_column_type(s->data, 0) != SQLITE_BLOB)
        return corrupt(s, seq, "data is not a blob");
    const void *src = sqlite3_column_blob(s->data, 0);
    size_t srclen = (size_t)sqlite3_column_bytes(s->data, 0);
    const void *raw;
    const char *why = NULL;
    int r = chunk_decompress(s->dctx, (int)codec, src ? src : "", srclen, (size_t)raw_bytes,
                             &s->buf, &s->cap, &raw, &why);
    if (r == -ENOMEM)
        return arch_fail(s->errmsg, r, "archive chunk %lld: out of memory", (long long)seq);
    if (r < 0)
        return corrupt(s, seq, why);

    chunk_reader rd;
    chunk_event ce;
    chunk_reader_init(&rd, raw, (size_t)raw_bytes, &m);
    while ((r = chunk_reader_next(&rd, &ce)) > 0)
        ;
    if (r < 0)
        return corrupt(s, seq, rd.err);

    arch_event ev = { .seq = seq, .partition = (int32_t)part, .tpart = m.tpart };
    chunk_reader_init(&rd, raw, (size_t)raw_bytes, &m);
    while (chunk_reader_next(&rd, &ce) > 0) {
        ev.offset = ce.offset;
        ev.ts_ms = ce.ts_ms;
        ev.payload = ce.payload;
        ev.len = ce.len;
        if ((r = s->fn(&ev, s->ud)) != 0)
            return r;
    }
    return 0;
}

static int scan_chunk(scan_ctx *s, sqlite3_stmt *st)
{
    int r = scan_chunk_data(s, st);
    sqlite3_reset(s->data);
    return r;
}

int arch_scan(arch *a, const char *stream, int64_t seq_lo, int64_t seq_hi,
              int64_t tpart_lo, int64_t tpart_hi,
              int (*fn)(const arch_event *ev, void *ud), void *ud, char **errmsg)
{
    if (errmsg)
        *errmsg = NULL;
    bool by_tpart = tpart_lo <= tpart_hi;
    scan_ctx s = { .a = a, .fn = fn, .ud = ud, .errmsg = errmsg };
    sqlite3_stmt *st = NULL;
    int r = 0;
    int rc = sqlite3_prepare_v2(a->db, by_tpart ? arch_sql_scan_by_tpart : arch_sql_scan_by_seq,
                                -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(a->db, SQL_DATA, -1, &s.data, NULL);
    if (rc != SQLITE_OK) {
        r = arch_sqlfail(a, errmsg, rc, "scan");
        goto out;
    }
    sqlite3_bind_text(st, 1, stream, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, seq_lo);
    sqlite3_bind_int64(st, 3, seq_hi);
    if (by_tpart) {
        sqlite3_bind_int64(st, 4, tpart_lo);
        sqlite3_bind_int64(st, 5, tpart_hi);
    }
    s.dctx = ZSTD_createDCtx();
    if (!s.dctx) {
        r = arch_fail(errmsg, -ENOMEM, "scan: out of memory");
        goto out;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if ((r = scan_chunk(&s, st)) != 0)
            goto out;
    if (rc != SQLITE_DONE)
        r = arch_sqlfail(a, errmsg, rc, "scan");
out:
    sqlite3_finalize(s.data);
    sqlite3_finalize(st);
    ZSTD_freeDCtx(s.dctx);
    free(s.buf);
    return r;
}

static const char *text_or_empty(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    return t ? (const char *)t : "";
}

int arch_list_rejects(arch *a, int limit, int (*fn)(const arch_reject *r, void *ud), void *ud,
                      char **errmsg)
{
    if (errmsg)
        *errmsg = NULL;
    if (limit < 0)
        return arch_fail(errmsg, -EINVAL, "list rejects: negative limit %d", limit);
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(a->db,
                                "SELECT id, topic, part, kafka_offset, reason, detail, raw"
                                " FROM rejects ORDER BY id DESC LIMIT ?1", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return arch_sqlfail(a, errmsg, rc, "list rejects");
    sqlite3_bind_int(st, 1, limit);
    int r = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const void *raw = sqlite3_column_blob(st, 6);   /* before _bytes */
        arch_reject j = {
            .id = sqlite3_column_int64(st, 0),
            .topic = text_or_empty(st, 1),
            .partition = sqlite3_column_int(st, 2),
            .offset = sqlite3_column_int64(st, 3),
            .reason = text_or_empty(st, 4),
            .detail = text_or_empty(st, 5),
            .payload = raw ? raw : "",
            .len = (size_t)sqlite3_column_bytes(st, 6),
        };
        if ((r = fn(&j, ud)) != 0)
            break;
    }
    if (r == 0 && rc != SQLITE_DONE)
        r = arch_sqlfail(a, errmsg, rc, "list rejects");
    sqlite3_finalize(st);
    return r;
}

int arch_tpart_range(arch *a, const char *stream, int64_t seq_hi, int64_t *lo, int64_t *hi,
                     char **errmsg)
{
    /* min() and max() each walk one end of the (stream, tpart, seq) index. */
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(a->db,
                                "SELECT (SELECT min(tpart) FROM chunks WHERE stream = ?1 AND seq <= ?2),"
                                " (SELECT max(tpart) FROM chunks WHERE stream = ?1 AND seq <= ?2)",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return arch_sqlfail(a, errmsg, rc, "read time partitions");
    sqlite3_bind_text(st, 1, stream, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, seq_hi);
    rc = sqlite3_step(st);
    int r = -ENOENT;
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        *lo = sqlite3_column_int64(st, 0);
        *hi = sqlite3_column_int64(st, 1);
        r = 0;
    } else if (rc != SQLITE_ROW) {
        r = arch_sqlfail(a, errmsg, rc, "read time partitions");
    }
    sqlite3_finalize(st);
    return r;
}
