/* scan.c - reading events and rejects back from the archive.
 *
 * A scan is one read transaction (its chunk query stays active throughout):
 * it sees the archive as of its start, whatever the writer commits
 * meanwhile (WAL mode). Each chunk is checked completely before its first
 * event is handed out (chunk_load): the checksum over its row and blob
 * (chunk.h; chunks written before checksums existed have none and are
 * checked for structure only), then decompression into a buffer reused for
 * the whole scan, then every event against the row. So a damaged chunk
 * never yields part of its events, never reaches zstd with flipped bits,
 * and never reads out of bounds. It is recorded (damage.c) and reported to
 * the caller, and the scan goes on with the next chunk: one bad chunk
 * costs its own events, not the whole archive, and never silently.
 *
 * Statements and buffers belong to the call, not the handle, so a callback
 * may use other arch functions on the same handle (but must not commit on
 * it). Runs on the caller's thread (recovery, batch runs, tools).
 */
#include "archive/archive_int.h"
#include "archive/chunk.h"

#include <errno.h>
#include <stdlib.h>

#define SCAN_COLUMNS "SELECT " CHUNK_ROW_COLUMNS " FROM chunks"

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
/* Version 1 archives have no checksum column. */
static const char SQL_DATA[] = "SELECT data, checksum FROM chunk_data WHERE seq = ?1";
static const char SQL_DATA_V1[] = "SELECT data, NULL FROM chunk_data WHERE seq = ?1";

/* ---- one chunk ------------------------------------------------------- */

int chunk_loader_init(chunk_loader *l, arch *a, char **errmsg)
{
    *l = (chunk_loader){ .a = a };
    if (a->version < 2) {
        /* a writer may have upgraded it since this handle opened */
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(a->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK) {
            if (sqlite3_step(st) == SQLITE_ROW)
                a->version = sqlite3_column_int(st, 0);
            sqlite3_finalize(st);
        }
    }
    int rc = sqlite3_prepare_v2(a->db, a->version >= 2 ? SQL_DATA : SQL_DATA_V1, -1, &l->data,
                                NULL);
    if (rc != SQLITE_OK)
        return arch_sqlfail(a, errmsg, rc, "read chunk data");
    l->dctx = ZSTD_createDCtx();
    if (!l->dctx)
        return arch_fail(errmsg, -ENOMEM, "read chunk data: out of memory");
    return 0;
}

void chunk_loader_release(chunk_loader *l)
{
    sqlite3_finalize(l->data);
    ZSTD_freeDCtx(l->dctx);
    free(l->buf);
    l->data = NULL;
    l->dctx = NULL;
    l->buf = NULL;
    l->cap = 0;
}

void chunk_row_read(sqlite3_stmt *st, chunk_header *h)
{
    h->seq = sqlite3_column_int64(st, 0);
    h->part = sqlite3_column_int64(st, 1);
    h->m = (chunk_meta){
        .tpart = sqlite3_column_int64(st, 2),
        .first_offset = sqlite3_column_int64(st, 3),
        .last_offset = sqlite3_column_int64(st, 4),
        .n = sqlite3_column_int64(st, 5),
        .min_ts = sqlite3_column_int64(st, 6),
        .max_ts = sqlite3_column_int64(st, 7),
    };
    h->raw_bytes = sqlite3_column_int64(st, 8);
    h->payload_bytes = sqlite3_column_int64(st, 9);
    h->codec = sqlite3_column_int64(st, 10);
}

static int load_data(chunk_loader *l, const chunk_header *h, const void **raw,
                     bool *checksummed, const char **why, char **errmsg)
{
    *checksummed = false;
    sqlite3_reset(l->data);   /* the previous chunk's row (a codec 0 blob) is done with */
    sqlite3_bind_int64(l->data, 1, h->seq);
    int rc = sqlite3_step(l->data);
    if (rc == SQLITE_DONE) {
        *why = "no data";
        return -EBADMSG;
    }
    if ((rc & 0xff) == SQLITE_CORRUPT) {
        /* a damaged page under this chunk's data: the chunk is lost, the
         * scan can go on (the chunks table itself reads fine) */
        *why = "SQLite reports its data pages corrupt";
        return -EBADMSG;
    }
    if (rc != SQLITE_ROW)
        return arch_sqlfail(l->a, errmsg, rc, "read chunk data");
    if (sqlite3_column_type(l->data, 0) != SQLITE_BLOB) {
        *why = "data is not a blob";
        return -EBADMSG;
    }
    const void *src = sqlite3_column_blob(l->data, 0);
    size_t srclen = (size_t)sqlite3_column_bytes(l->data, 0);
    if (!src)
        src = "";
    int ctype = sqlite3_column_type(l->data, 1);
    if (ctype != SQLITE_NULL) {
        *checksummed = true;
        if (ctype != SQLITE_INTEGER ||
            (uint64_t)sqlite3_column_int64(l->data, 1) != chunk_checksum(h, src, srclen)) {
            *why = "checksum mismatch";
            return -EBADMSG;
        }
    }
    int r = chunk_decompress(l->dctx, (int)h->codec, src, srclen, (size_t)h->raw_bytes, &l->buf,
                             &l->cap, raw, why);
    if (r == -ENOMEM)
        return arch_fail(errmsg, r, "archive chunk %lld: out of memory", (long long)h->seq);
    return r;
}

int chunk_load(chunk_loader *l, const chunk_header *h, const void **raw, bool *checksummed,
               const char **why, char **errmsg)
{
    *checksummed = false;
    if (h->part < INT32_MIN || h->part > INT32_MAX) {
        *why = "partition out of range";
        return -EBADMSG;
    }
    if (h->raw_bytes < 1 || (uint64_t)h->raw_bytes > CHUNK_RAW_MAX) {
        *why = "raw size out of range";
        return -EBADMSG;
    }
    if (h->codec != CHUNK_CODEC_RAW && h->codec != CHUNK_CODEC_ZSTD) {
        *why = "unknown codec";
        return -EBADMSG;
    }
    int r = load_data(l, h, raw, checksummed, why, errmsg);
    if (r == 0) {
        /* the blob is copied or decompressed: the row can go */
        chunk_reader rd;
        chunk_event ce;
        chunk_reader_init(&rd, *raw, (size_t)h->raw_bytes, &h->m);
        while ((r = chunk_reader_next(&rd, &ce)) > 0)
            ;
        if (r < 0)
            *why = rd.err;
    }
    /* for codec 0, *raw points into the data row, which stays until the
     * next chunk_load resets the statement */
    return r;
}

/* ---- arch_scan ------------------------------------------------------- */

typedef struct {
    arch *a;
    const char *stream;
    chunk_loader ld;
    int (*fn)(const arch_event *ev, void *ud);
    int (*on_damage)(const arch_damage *d, void *ud);
    void *ud;
    char **errmsg;
    const int32_t *parts;      /* nparts > 0: only chunks of these Kafka partitions */
    size_t nparts;
} scan_ctx;

/* Whether the chunk row at st is of one of s's partitions (checked before
 * its data is read: the other chunks cost their row only). */
static bool part_wanted(const scan_ctx *s, sqlite3_stmt *st)
{
    if (!s->nparts)
        return true;
    int64_t part = sqlite3_column_int64(st, 1);
    for (size_t i = 0; i < s->nparts; i++)
        if (s->parts[i] == part)
            return true;
    return false;
}

/* Records and reports damaged chunk h. */
static int damaged(scan_ctx *s, const chunk_header *h, const char *why)
{
    arch_damage d = {
        .seq = h->seq, .stream = s->stream, .partition = (int32_t)h->part,
        .tpart = h->m.tpart, .first_offset = h->m.first_offset, .last_offset = h->m.last_offset,
        .events = h->m.n, .reason = why,
    };
    if (h->part < INT32_MIN || h->part > INT32_MAX)
        d.partition = -1;   /* the row's own value is damaged */
    dmg_record(s->a->dmg, &d);   /* out of memory: still reported, just not kept */
    if (s->on_damage)
        return s->on_damage(&d, s->ud);
    return arch_fail(s->errmsg, -EBADMSG, "archive chunk %lld is corrupt: %s", (long long)h->seq,
                     why);
}

/* One row of the scan statement: checks it all, then hands out its events. */
static int scan_chunk(scan_ctx *s, sqlite3_stmt *st)
{
    chunk_header h = { .stream = s->stream };
    chunk_row_read(st, &h);
    const void *raw;
    const char *why = NULL;
    bool checksummed;
    int r = chunk_load(&s->ld, &h, &raw, &checksummed, &why, s->errmsg);
    if (r == -EBADMSG)
        return damaged(s, &h, why);
    if (r < 0)
        return r;

    chunk_reader rd;
    chunk_event ce;
    arch_event ev = { .seq = h.seq, .partition = (int32_t)h.part, .tpart = h.m.tpart };
    chunk_reader_init(&rd, raw, (size_t)h.raw_bytes, &h.m);
    while (r == 0 && chunk_reader_next(&rd, &ce) > 0) {
        ev.offset = ce.offset;
        ev.ts_ms = ce.ts_ms;
        ev.payload = ce.payload;
        ev.len = ce.len;
        r = s->fn(&ev, s->ud);
    }
    sqlite3_reset(s->ld.data);   /* releases a raw (codec 0) blob */
    return r;
}

static int scan_run(scan_ctx *s, int64_t seq_lo, int64_t seq_hi, int64_t tpart_lo,
                    int64_t tpart_hi)
{
    arch *a = s->a;
    char **errmsg = s->errmsg;
    if (errmsg)
        *errmsg = NULL;
    bool by_tpart = tpart_lo <= tpart_hi;
    sqlite3_stmt *st = NULL;
    int r = chunk_loader_init(&s->ld, a, errmsg);
    if (r < 0)
        goto out;
    int rc = sqlite3_prepare_v2(a->db, by_tpart ? arch_sql_scan_by_tpart : arch_sql_scan_by_seq,
                                -1, &st, NULL);
    if (rc != SQLITE_OK) {
        r = arch_sqlfail(a, errmsg, rc, "scan");
        goto out;
    }
    sqlite3_bind_text(st, 1, s->stream, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, seq_lo);
    sqlite3_bind_int64(st, 3, seq_hi);
    if (by_tpart) {
        sqlite3_bind_int64(st, 4, tpart_lo);
        sqlite3_bind_int64(st, 5, tpart_hi);
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if (part_wanted(s, st) && (r = scan_chunk(s, st)) != 0)
            goto out;
    if (rc != SQLITE_DONE)
        r = arch_sqlfail(a, errmsg, rc, "scan");
out:
    chunk_loader_release(&s->ld);
    sqlite3_finalize(st);
    return r;
}

int arch_scan(arch *a, const char *stream, int64_t seq_lo, int64_t seq_hi,
              int64_t tpart_lo, int64_t tpart_hi,
              int (*fn)(const arch_event *ev, void *ud),
              int (*on_damage)(const arch_damage *d, void *ud), void *ud, char **errmsg)
{
    scan_ctx s = { .a = a, .stream = stream, .fn = fn, .on_damage = on_damage, .ud = ud,
                   .errmsg = errmsg };
    return scan_run(&s, seq_lo, seq_hi, tpart_lo, tpart_hi);
}

int arch_scan_parts(arch *a, const char *stream, const int32_t *parts, size_t nparts,
                    int (*fn)(const arch_event *ev, void *ud),
                    int (*on_damage)(const arch_damage *d, void *ud), void *ud, char **errmsg)
{
    if (!nparts)
        return 0;
    scan_ctx s = { .a = a, .stream = stream, .fn = fn, .on_damage = on_damage, .ud = ud,
                   .errmsg = errmsg, .parts = parts, .nparts = nparts };
    return scan_run(&s, 0, INT64_MAX, 1, 0);
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
