/* commit.c - writing one arch_txn in one SQLite transaction.
 *
 * BEGIN IMMEDIATE takes the write lock up front, so nothing inside the
 * transaction can fail with SQLITE_BUSY halfway. Chunks (each with its
 * checksum, chunk.h), rejects, next offsets and the running totals in meta
 * go in together (and an import's progress, imports.c), with any damaged chunks that scans found since the last
 * commit (damage.c), then COMMIT; on any failure ROLLBACK, so either all
 * of a transaction is stored or none of it. The running totals of the
 * handle change only after COMMIT succeeded. Runs on the writer's thread
 * (the speed thread); the compression context and buffer are the handle's.
 */
#include "archive/archive_int.h"
#include "archive/txn.h"

#include <errno.h>
#include <string.h>
#include <time.h>

int arch_step(arch *a, sqlite3_stmt *st, const char *what, char **errmsg)
{
    int rc = sqlite3_step(st);
    int r = rc == SQLITE_DONE ? 0 : arch_sqlfail(a, errmsg, rc, what);
    sqlite3_reset(st);
    return r;
}

void arch_rollback(arch *a)
{
    /* some errors (disk full, I/O) already rolled back */
    if (!sqlite3_get_autocommit(a->db)) {
        sqlite3_step(a->st_rollback);
        sqlite3_reset(a->st_rollback);
    }
}

static int insert_chunk(arch *a, const chunk_builder *b, int64_t *seq, char **errmsg)
{
    const void *data;
    size_t dlen;
    int codec;
    const char *zerr = NULL;
    int r = chunk_compress(a->cctx, a->level, b->buf, b->len, &a->zbuf, &a->zcap, &data, &dlen,
                           &codec, &zerr);
    if (r < 0)
        return arch_fail(errmsg, r, "compress chunk: %s", zerr ? zerr : strerror(-r));

    sqlite3_stmt *st = a->st_chunk;
    sqlite3_bind_text(st, 1, b->stream, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, b->part);
    sqlite3_bind_int64(st, 3, b->tpart);
    sqlite3_bind_int64(st, 4, b->first_offset);
    sqlite3_bind_int64(st, 5, b->last_offset);
    sqlite3_bind_int64(st, 6, (int64_t)b->n);
    sqlite3_bind_int64(st, 7, b->min_ts);
    sqlite3_bind_int64(st, 8, b->max_ts);
    sqlite3_bind_int64(st, 9, (int64_t)b->len);
    sqlite3_bind_int64(st, 10, b->payload_bytes);
    sqlite3_bind_int(st, 11, codec);
    if ((r = arch_step(a, st, "insert chunk", errmsg)) < 0)
        return r;
    *seq = sqlite3_last_insert_rowid(a->db);

    /* the checksum covers seq, known only now: it goes with the data */
    chunk_header h = {
        .seq = *seq, .stream = b->stream, .part = b->part,
        .m = { .tpart = b->tpart, .first_offset = b->first_offset, .last_offset = b->last_offset,
               .n = (int64_t)b->n, .min_ts = b->min_ts, .max_ts = b->max_ts },
        .raw_bytes = (int64_t)b->len, .payload_bytes = b->payload_bytes, .codec = codec,
    };
    st = a->st_data;
    sqlite3_bind_int64(st, 1, *seq);
    sqlite3_bind_blob64(st, 2, data, dlen, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (int64_t)chunk_checksum(&h, data, dlen));
    return arch_step(a, st, "insert chunk data", errmsg);
}

static int insert_reject(arch *a, const txn_reject *j, int64_t at_ms, char **errmsg)
{
    sqlite3_stmt *st = a->st_reject;
    sqlite3_bind_text(st, 1, j->topic, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, j->part);
    sqlite3_bind_int64(st, 3, j->offset);
    sqlite3_bind_text(st, 4, j->reason, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, j->detail, -1, SQLITE_STATIC);
    /* raw is never NULL (it points into the reject's allocation), so an
     * empty payload stays an empty blob rather than NULL */
    sqlite3_bind_blob64(st, 6, j->raw, j->len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, j->at_ms ? j->at_ms : at_ms);
    return arch_step(a, st, "insert reject", errmsg);
}

static int store_offset(arch *a, const txn_offset *o, char **errmsg)
{
    sqlite3_stmt *st = a->st_offset;
    sqlite3_bind_text(st, 1, o->topic, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, o->part);
    sqlite3_bind_int64(st, 3, o->next);
    return arch_step(a, st, "store offset", errmsg);
}

int arch_commit(arch *a, arch_txn *t, int64_t *last_seq, char **errmsg)
{
    if (errmsg)
        *errmsg = NULL;
    if (a->readonly)
        return arch_fail(errmsg, -EROFS, "archive %s is open read-only", a->path);
    if (!t->nevents && !t->nrejects && !t->noffsets && !t->imp.set && !dmg_unstored(a)) {
        if (last_seq)
            *last_seq = a->tot.last_seq;
        return 0;
    }
    int r = arch_step(a, a->st_begin, "begin", errmsg);
    if (r < 0)
        return r;

    int64_t seq = 0, chunks = 0, events = 0, payload = 0;
    for (size_t i = 0; i < t->nchunks; i++) {
        const chunk_builder *b = &t->chunks[i];
        if (!b->n)
            continue;   /* left empty by a failed add */
        if ((r = insert_chunk(a, b, &seq, errmsg)) < 0)
            goto fail;
        chunks++;
        events += (int64_t)b->n;
        payload += b->payload_bytes;
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t at_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    for (size_t i = 0; i < t->nrejects; i++)
        if ((r = insert_reject(a, &t->rejects[i], at_ms, errmsg)) < 0)
            goto fail;
    for (size_t i = 0; i < t->noffsets; i++)
        if ((r = store_offset(a, &t->offsets[i], errmsg)) < 0)
            goto fail;
    if (t->imp.set && (r = arch_import_store(a, t, errmsg)) < 0)
        goto fail;
    if (chunks || t->nrejects) {
        sqlite3_stmt *st = a->st_totals;
        sqlite3_bind_int64(st, 1, events);
        sqlite3_bind_int64(st, 2, (int64_t)t->nrejects);
        sqlite3_bind_int64(st, 3, chunks);
        sqlite3_bind_int64(st, 4, payload);
        if ((r = arch_step(a, st, "update totals", errmsg)) < 0)
            goto fail;
        if (sqlite3_changes(a->db) != 4) {
            r = arch_fail(errmsg, -EBADMSG, "update totals: the archive's meta table lacks "
                          "some of them");
            goto fail;
        }
    }
    if ((r = dmg_store(a, errmsg)) < 0 ||
        (r = arch_step(a, a->st_commit, "commit", errmsg)) < 0)
        goto fail;
    dmg_store_done(a, true);

    a->tot.chunks += chunks;
    a->tot.events += events;
    a->tot.payload_bytes += payload;
    a->tot.rejects += (int64_t)t->nrejects;
    if (seq > a->tot.last_seq)
        a->tot.last_seq = seq;
    if (last_seq)
        *last_seq = a->tot.last_seq;
    return 0;
fail:
    arch_rollback(a);
    dmg_store_done(a, false);
    return r;
}
