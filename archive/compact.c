/* compact.c - merging small archive chunks into large ones (arch_compact).
 *
 * Every commit of the speed thread writes one chunk per (stream, Kafka
 * partition, time partition) it touched: at 100 events/s and a 50 ms
 * commit interval that is a few events per chunk, and the per-row and
 * per-frame overhead dwarfs the compressed payload. Compaction rewrites
 * runs of small chunks of one (stream, partition, tpart) into chunks of up
 * to COMPACT_TARGET raw bytes, compressed at a higher zstd level.
 *
 * The exactness protocol (DESIGN.md) is untouched: only chunks with
 * seq <= upto (the batch watermark R, already durable in the views file)
 * are merged, and a merged chunk takes the highest seq of the chunks it
 * replaces, so it is still <= R: the batch layer still finds its events
 * at seq <= R, recovery still replays only seq > R, and the archive's
 * last seq (sqlite_sequence) never moves back. Every event keeps its
 * offset and time; the merged chunk's row, checksum and the stored totals
 * are written like a commit's.
 *
 * Ingestion never waits for the work: reading and checking the sources,
 * decoding and compressing happen outside any write transaction; each
 * merge is then one short write transaction (delete the sources, insert
 * the merged chunk, update total_chunks), so a crash at any moment leaves
 * either the sources or the merged chunk, never both and never neither.
 * A damaged source chunk (chunk_load) is left as it is, never merged.
 *
 * Which chunks: the groups that gained a chunk since the last pass (the
 * rowid range (compacted_seq, upto], read without an index), then in each
 * group every chunk below the target with seq <= upto, through the
 * (stream, tpart, seq) index. meta.compacted_seq records the pass, so the
 * work is proportional to what arrived since, not to the archive.
 *
 * Runs on the thread that owns the (writable) handle: the batch thread's
 * maintenance connection.
 */
#include "archive/archive_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/failpoint.h"

/* Merged chunks grow up to this many raw bytes (about 40k events of 100
 * bytes); chunks below it are merged again when their group grows. */
#define COMPACT_TARGET ((int64_t)4 << 20)
/* At most this many sources per merge, so one write transaction stays
 * short (deleting a source's two rows and index entry costs about 10 us
 * on a quiet machine; bench/results/archive_size.md has the longest
 * transactions measured). A group with more small chunks is merged in
 * rounds (compact_group): 128 * 128 small chunks take two. */
#define COMPACT_MAX_SOURCES 128
#define COMPACT_MAX_ROUNDS 4

typedef struct {
    char *stream;
    int32_t part;
    int64_t tpart;
} cgroup;

typedef struct {
    arch *a;
    int level;
    bool (*go_on)(void *ud);
    void *ud;
    arch_compact_stats *st;
    char **errmsg;
    chunk_loader ld;
    sqlite3_stmt *del_chunk, *del_data, *ins_chunk, *dec_total;
    chunk_builder b;
    int64_t src_bytes;        /* stored bytes of the sources in b */
    int round;                /* of compact_group: damaged chunks count in the first */
} compactor;

static int prep(compactor *c, sqlite3_stmt **st, const char *sql)
{
    int rc = sqlite3_prepare_v2(c->a->db, sql, -1, st, NULL);
    return rc == SQLITE_OK ? 0 : arch_sqlfail(c->a, c->errmsg, rc, "compaction: prepare");
}

/* Makes room for one more element in *arr (of *cap, n in use, each size
 * bytes): 0 or -ENOMEM (*arr unchanged). */
static int grow(void *arr, size_t n, size_t *cap, size_t size)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 64;
    void *p = realloc(*(void **)arr, ncap * size);
    if (!p)
        return -ENOMEM;
    *(void **)arr = p;
    *cap = ncap;
    return 0;
}

/* The write transaction of one merge: hs[0..n) replaced by c->b. */
static int write_merge(compactor *c, const chunk_header *hs, size_t n)
{
    arch *a = c->a;
    chunk_builder *b = &c->b;
    const void *data;
    size_t dlen;
    int codec;
    const char *zerr = NULL;
    int r = chunk_compress(a->cctx, c->level, b->buf, b->len, &a->zbuf, &a->zcap, &data, &dlen,
                           &codec, &zerr);
    if (r < 0)
        return arch_fail(c->errmsg, r, "compaction: compress: %s", zerr ? zerr : strerror(-r));
    int64_t seq = hs[n - 1].seq;   /* sources are in seq order: the highest */
    chunk_header h = {
        .seq = seq, .stream = hs[0].stream, .part = hs[0].part,
        .m = { .tpart = b->tpart, .first_offset = b->first_offset, .last_offset = b->last_offset,
               .n = (int64_t)b->n, .min_ts = b->min_ts, .max_ts = b->max_ts },
        .raw_bytes = (int64_t)b->len, .payload_bytes = b->payload_bytes, .codec = codec,
    };

    if ((r = arch_step(a, a->st_begin, "compaction: begin", c->errmsg)) < 0)
        return r;
    /* from holding the write lock to releasing it: what a commit of the
     * speed thread may wait for */
    double t0 = arch_mono_s();
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_int64(c->del_chunk, 1, hs[i].seq);
        if ((r = arch_step(a, c->del_chunk, "compaction: delete chunk", c->errmsg)) < 0)
            goto fail;
        if (sqlite3_changes(a->db) != 1) {
            r = arch_fail(c->errmsg, -ESTALE, "compaction: chunk %lld is gone",
                          (long long)hs[i].seq);
            goto fail;
        }
        sqlite3_bind_int64(c->del_data, 1, hs[i].seq);
        if ((r = arch_step(a, c->del_data, "compaction: delete chunk data", c->errmsg)) < 0)
            goto fail;
    }
    sqlite3_stmt *st = c->ins_chunk;
    sqlite3_bind_int64(st, 1, seq);
    sqlite3_bind_text(st, 2, h.stream, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, h.part);
    sqlite3_bind_int64(st, 4, h.m.tpart);
    sqlite3_bind_int64(st, 5, h.m.first_offset);
    sqlite3_bind_int64(st, 6, h.m.last_offset);
    sqlite3_bind_int64(st, 7, h.m.n);
    sqlite3_bind_int64(st, 8, h.m.min_ts);
    sqlite3_bind_int64(st, 9, h.m.max_ts);
    sqlite3_bind_int64(st, 10, h.raw_bytes);
    sqlite3_bind_int64(st, 11, h.payload_bytes);
    sqlite3_bind_int(st, 12, codec);
    if ((r = arch_step(a, st, "compaction: insert merged chunk", c->errmsg)) < 0)
        goto fail;
    st = a->st_data;
    sqlite3_bind_int64(st, 1, seq);
    sqlite3_bind_blob64(st, 2, data, dlen, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (int64_t)chunk_checksum(&h, data, dlen));
    if ((r = arch_step(a, st, "compaction: insert merged chunk data", c->errmsg)) < 0)
        goto fail;
    sqlite3_bind_int64(c->dec_total, 1, (int64_t)n - 1);
    if ((r = arch_step(a, c->dec_total, "compaction: update totals", c->errmsg)) < 0)
        goto fail;
    failpoint("during_compaction");   /* merged chunk written, not committed */
    if ((r = arch_step(a, a->st_commit, "compaction: commit", c->errmsg)) < 0)
        goto fail;
    double ms = (arch_mono_s() - t0) * 1e3;
    c->st->txn_ms += ms;
    if (ms > c->st->longest_txn_ms)
        c->st->longest_txn_ms = ms;
    a->tot.chunks -= (int64_t)n - 1;
    c->st->merges++;
    c->st->chunks_merged += (int64_t)n;
    c->st->events += h.m.n;
    c->st->bytes_before += c->src_bytes;
    c->st->bytes_after += (int64_t)dlen;
    return 0;
fail:
    arch_rollback(a);
    return r;
}

/* Ends the current run hs[0..n): merged when it has two chunks or more. */
static int flush(compactor *c, const chunk_header *hs, size_t n, int32_t part, int64_t tpart)
{
    int r = n >= 2 ? write_merge(c, hs, n) : 0;
    chunk_builder_clear(&c->b, part, tpart);
    c->src_bytes = 0;
    return r;
}

/* Appends chunk h's events to the builder: 0, or -EBADMSG when the chunk
 * is damaged (left alone; the builder is untouched), or another error. */
static int append_chunk(compactor *c, const chunk_header *h)
{
    const void *raw;
    const char *why = NULL;
    bool checksummed;
    int r = chunk_load(&c->ld, h, &raw, &checksummed, &why, c->errmsg);
    if (r < 0) {
        sqlite3_reset(c->ld.data);
        return r;
    }
    chunk_reader rd;
    chunk_event ev;
    chunk_reader_init(&rd, raw, (size_t)h->raw_bytes, &h->m);
    while (r == 0 && chunk_reader_next(&rd, &ev) > 0)
        r = chunk_builder_add(&c->b, ev.offset, ev.ts_ms, ev.payload, ev.len);
    c->src_bytes += sqlite3_column_bytes(c->ld.data, 0);
    /* no read transaction stays open across the merge's write */
    sqlite3_reset(c->ld.data);
    return r == 0 ? 0 : arch_fail(c->errmsg, r, "compaction: out of memory");
}

/* Reads the candidate chunks of group g: below the target, seq <= upto,
 * in seq order. */
static int load_group(compactor *c, const cgroup *g, int64_t upto, chunk_header **out,
                      size_t *nout)
{
    sqlite3_stmt *st;
    int r = prep(c, &st, "SELECT " CHUNK_ROW_COLUMNS " FROM chunks INDEXED BY chunks_stream_tpart"
                         " WHERE stream = ?1 AND tpart = ?2 AND seq <= ?3 AND part = ?4"
                         " AND raw_bytes < ?5 ORDER BY seq");
    if (r < 0)
        return r;
    sqlite3_bind_text(st, 1, g->stream, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, g->tpart);
    sqlite3_bind_int64(st, 3, upto);
    sqlite3_bind_int(st, 4, g->part);
    sqlite3_bind_int64(st, 5, COMPACT_TARGET);
    chunk_header *hs = NULL;
    size_t n = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (grow(&hs, n, &cap, sizeof *hs) < 0) {
            r = arch_fail(c->errmsg, -ENOMEM, "compaction: out of memory");
            break;
        }
        hs[n] = (chunk_header){ .stream = g->stream };
        chunk_row_read(st, &hs[n++]);
    }
    if (r == 0 && rc != SQLITE_DONE)
        r = arch_sqlfail(c->a, c->errmsg, rc, "compaction: read chunks");
    sqlite3_finalize(st);
    if (r < 0) {
        free(hs);
        return r;
    }
    *out = hs;
    *nout = n;
    return 0;
}

static int compact_round(compactor *c, const cgroup *g, int64_t upto)
{
    chunk_header *hs;
    size_t n;
    int r = load_group(c, g, upto, &hs, &n);
    if (r < 0)
        return r;
    chunk_builder *b = &c->b;
    chunk_builder_clear(b, g->part, g->tpart);
    c->src_bytes = 0;
    size_t first = 0;   /* the current run is hs[first, i) */
    for (size_t i = 0; r == 0 && i < n; i++) {
        const chunk_header *h = &hs[i];
        bool full = (int64_t)b->len + h->raw_bytes > COMPACT_TARGET ||
                    i - first >= COMPACT_MAX_SOURCES;
        /* offsets must not go back inside a chunk (chunk.h) */
        if (i > first && (full || h->m.first_offset < b->last_offset)) {
            r = flush(c, hs + first, i - first, g->part, g->tpart);
            first = i;
        }
        if (r == 0 && c->go_on && !c->go_on(c->ud))
            r = -ECANCELED;
        if (r == 0 && (r = append_chunk(c, h)) == -EBADMSG) {
            /* damaged: merge what came before it, leave it alone */
            *c->errmsg = NULL;
            r = flush(c, hs + first, i - first, g->part, g->tpart);
            first = i + 1;
            c->st->damaged += c->round == 0;
        }
    }
    if (r == 0)
        r = flush(c, hs + first, n - first, g->part, g->tpart);
    free(hs);
    return r;
}

/* Merges group g in rounds: a group of more than COMPACT_MAX_SOURCES small
 * chunks becomes several merged chunks in the first round, merged again in
 * the next (a few sources each), until a round merges at most once. */
static int compact_group(compactor *c, const cgroup *g, int64_t upto)
{
    int r = 0;
    for (c->round = 0; r == 0 && c->round < COMPACT_MAX_ROUNDS; c->round++) {
        int64_t before = c->st->merges;
        r = compact_round(c, g, upto);
        if (c->st->merges - before <= 1)
            break;
    }
    return r;
}

/* The groups with a chunk in (after, upto]. */
static int touched_groups(compactor *c, int64_t after, int64_t upto, cgroup **out, size_t *nout)
{
    sqlite3_stmt *st;
    int r = prep(c, &st, "SELECT DISTINCT stream, part, tpart FROM chunks NOT INDEXED"
                         " WHERE seq > ?1 AND seq <= ?2");
    if (r < 0)
        return r;
    sqlite3_bind_int64(st, 1, after);
    sqlite3_bind_int64(st, 2, upto);
    cgroup *gs = NULL;
    size_t n = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (grow(&gs, n, &cap, sizeof *gs) < 0) {
            r = -ENOMEM;
            break;
        }
        const unsigned char *s = sqlite3_column_text(st, 0);
        gs[n] = (cgroup){ .stream = strdup(s ? (const char *)s : ""),
                          .part = sqlite3_column_int(st, 1),
                          .tpart = sqlite3_column_int64(st, 2) };
        if (!gs[n++].stream) {
            r = -ENOMEM;
            break;
        }
    }
    if (r == -ENOMEM)
        arch_fail(c->errmsg, r, "compaction: out of memory");
    else if (rc != SQLITE_DONE)
        r = arch_sqlfail(c->a, c->errmsg, rc, "compaction: find new chunks");
    sqlite3_finalize(st);
    *out = gs;
    *nout = n;
    return r;
}

int arch_compact(arch *a, int64_t upto, int level, bool (*go_on)(void *ud), void *ud,
                 arch_compact_stats *st, char **errmsg)
{
    if (errmsg)
        *errmsg = NULL;
    char *dummy = NULL;
    if (!errmsg)
        errmsg = &dummy;
    if (a->readonly)
        return arch_fail(errmsg, -EROFS, "archive %s is open read-only", a->path);
    compactor c = { .a = a, .level = level, .go_on = go_on, .ud = ud, .st = st,
                    .errmsg = errmsg };
    cgroup *gs = NULL;
    size_t ng = 0;
    int64_t after = 0;
    char *v = NULL;
    int r = arch_meta_get(a, "compacted_seq", &v, errmsg);
    if (r == 0)
        after = strtoll(v, NULL, 10);
    free(v);
    if (r == -ENOENT)
        r = 0;
    if (r == 0 && after >= upto)
        return 0;   /* nothing new since the last pass */
    if (r == 0)
        r = chunk_loader_init(&c.ld, a, errmsg);
    if (r == 0)
        r = prep(&c, &c.del_chunk, "DELETE FROM chunks WHERE seq = ?1");
    if (r == 0)
        r = prep(&c, &c.del_data, "DELETE FROM chunk_data WHERE seq = ?1");
    if (r == 0)
        r = prep(&c, &c.ins_chunk,
                 "INSERT INTO chunks (seq, stream, part, tpart, first_offset, last_offset, n,"
                 " min_ts_ms, max_ts_ms, raw_bytes, payload_bytes, codec)"
                 " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)");
    if (r == 0)
        r = prep(&c, &c.dec_total,
                 "UPDATE meta SET value = value - ?1 WHERE key = 'total_chunks'");
    if (r == 0)
        r = touched_groups(&c, after, upto, &gs, &ng);
    for (size_t i = 0; r == 0 && i < ng; i++)
        r = compact_group(&c, &gs[i], upto);
    if (r == 0) {
        char buf[24];
        snprintf(buf, sizeof buf, "%" PRId64, upto);
        r = arch_meta_set(a, "compacted_seq", buf, errmsg);
    }
    for (size_t i = 0; i < ng; i++)
        free(gs[i].stream);
    free(gs);
    free(c.b.buf);
    chunk_loader_release(&c.ld);
    sqlite3_finalize(c.del_chunk);
    sqlite3_finalize(c.del_data);
    sqlite3_finalize(c.ins_chunk);
    sqlite3_finalize(c.dec_total);
    free(dummy);
    return r;
}
