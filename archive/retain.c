/* retain.c - giving space back: retention (dropping old time partitions),
 * incremental vacuum and WAL checkpoints.
 *
 * arch_drop_before deletes whole time partitions in short write
 * transactions (at most CHUNK_DELETE_BATCH chunks each, with the totals), so the
 * speed thread's commits never wait long for it; a crash between two of
 * them leaves some of the old partitions, which the next call drops.
 * Freed pages go to SQLite's freelist; with auto_vacuum=INCREMENTAL
 * (every archive created since this file exists) arch_vacuum hands them
 * back to the file system, 64 pages per transaction.
 *
 * Checkpoints: the speed thread's connection would checkpoint the WAL
 * itself every wal_autocheckpoint pages (SQLite's default 1000), copying
 * pages and syncing the database file inside a commit. The daemon moves
 * that work to the batch thread's maintenance connection (arch_checkpoint,
 * PASSIVE: it never blocks a writer or a reader) and leaves the writer a
 * far larger automatic threshold as a safety net. journal_size_limit
 * (archive.c) truncates the WAL back after it was reset.
 *
 * Runs on the thread that owns the handle (the batch thread).
 */
#include "archive/archive_int.h"

#include <errno.h>
#include <stdlib.h>

int chunk_deleter_init(arch *a, chunk_deleter *d, char **errmsg)
{
    *d = (chunk_deleter){0};
    int rc = sqlite3_prepare_v2(a->db, "DELETE FROM chunks WHERE seq = ?1", -1, &d->del_chunk,
                                NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(a->db, "DELETE FROM chunk_data WHERE seq = ?1", -1,
                                &d->del_data, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(a->db,
                                "UPDATE meta SET value = value - CASE key"
                                " WHEN 'total_events' THEN ?1 WHEN 'total_chunks' THEN ?2"
                                " ELSE ?3 END WHERE key IN ('total_events', 'total_chunks',"
                                " 'total_payload_bytes')", -1, &d->totals, NULL);
    if (rc != SQLITE_OK) {
        int r = arch_sqlfail(a, errmsg, rc, "prepare to delete chunks");
        chunk_deleter_release(d);
        return r;
    }
    return 0;
}

void chunk_deleter_release(chunk_deleter *d)
{
    sqlite3_finalize(d->del_chunk);
    sqlite3_finalize(d->del_data);
    sqlite3_finalize(d->totals);
    *d = (chunk_deleter){0};
}

int chunk_delete_rows(arch *a, chunk_deleter *d, sqlite3_stmt *sel, arch_drop_stats *st,
                      int64_t *payload, bool *more, char **errmsg)
{
    /* the rows first, then the deletes: no row is deleted under the
     * statement that walks them */
    int64_t seqs[CHUNK_DELETE_BATCH];
    int64_t chunks = 0, events = 0, bytes = 0;
    int r = 0, rc = SQLITE_DONE;
    while (chunks < CHUNK_DELETE_BATCH && (rc = sqlite3_step(sel)) == SQLITE_ROW) {
        seqs[chunks++] = sqlite3_column_int64(sel, 0);
        events += sqlite3_column_int64(sel, 1);
        bytes += sqlite3_column_int64(sel, 2);
    }
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        r = arch_sqlfail(a, errmsg, rc, "find chunks");
    sqlite3_reset(sel);
    for (int64_t i = 0; r == 0 && i < chunks; i++) {
        sqlite3_bind_int64(d->del_chunk, 1, seqs[i]);
        sqlite3_bind_int64(d->del_data, 1, seqs[i]);
        if ((r = arch_step(a, d->del_chunk, "delete chunk", errmsg)) == 0)
            r = arch_step(a, d->del_data, "delete chunk data", errmsg);
        if (r == 0)
            d->last_seq = seqs[i];
    }
    if (r == 0 && chunks) {
        sqlite3_bind_int64(d->totals, 1, events);
        sqlite3_bind_int64(d->totals, 2, chunks);
        sqlite3_bind_int64(d->totals, 3, bytes);
        r = arch_step(a, d->totals, "update totals", errmsg);
    }
    if (r < 0)
        return r;
    st->chunks += chunks;
    st->events += events;
    *payload += bytes;
    *more = chunks == CHUNK_DELETE_BATCH;
    return 0;
}

/* One short transaction of retention: up to CHUNK_DELETE_BATCH chunks. */
static int drop_some(arch *a, sqlite3_stmt *sel, chunk_deleter *d, arch_drop_stats *st,
                     bool *more, char **errmsg)
{
    arch_drop_stats got = {0};
    int64_t payload = 0;
    int r = arch_step(a, a->st_begin, "retention: begin", errmsg);
    if (r < 0)
        return r;
    r = chunk_delete_rows(a, d, sel, &got, &payload, more, errmsg);
    if (r == 0)
        r = arch_step(a, a->st_commit, "retention: commit", errmsg);
    if (r < 0) {
        arch_rollback(a);
        return r;
    }
    a->tot.chunks -= got.chunks;
    a->tot.events -= got.events;
    a->tot.payload_bytes -= payload;
    st->chunks += got.chunks;
    st->events += got.events;
    return 0;
}

int arch_drop_before(arch *a, const char *stream, int64_t before, int64_t upto,
                     bool (*go_on)(void *ud), void *ud, arch_drop_stats *st, char **errmsg)
{
    if (errmsg)
        *errmsg = NULL;
    if (a->readonly)
        return arch_fail(errmsg, -EROFS, "archive %s is open read-only", a->path);
    sqlite3_stmt *sel = NULL;
    chunk_deleter d;
    int r = chunk_deleter_init(a, &d, errmsg);
    if (r < 0)
        return r;
    int rc = sqlite3_prepare_v2(a->db, "SELECT seq, n, payload_bytes FROM chunks"
                                " INDEXED BY chunks_stream_tpart"
                                " WHERE stream = ?1 AND tpart < ?2 AND seq <= ?3 LIMIT ?4",
                                -1, &sel, NULL);
    if (rc != SQLITE_OK) {
        r = arch_sqlfail(a, errmsg, rc, "retention: prepare");
    } else {
        sqlite3_bind_text(sel, 1, stream, -1, SQLITE_STATIC);
        sqlite3_bind_int64(sel, 2, before);
        sqlite3_bind_int64(sel, 3, upto);
        sqlite3_bind_int(sel, 4, CHUNK_DELETE_BATCH);
        for (bool more = true; r == 0 && more;) {
            r = drop_some(a, sel, &d, st, &more, errmsg);
            if (r == 0 && more && go_on && !go_on(ud))
                r = -ECANCELED;
        }
    }
    sqlite3_finalize(sel);
    chunk_deleter_release(&d);
    return r;
}

/* One integer from a PRAGMA; -1 when it cannot be read. */
static int64_t pragma_int(arch *a, const char *sql)
{
    sqlite3_stmt *st;
    int64_t v = -1;
    if (sqlite3_prepare_v2(a->db, sql, -1, &st, NULL) != SQLITE_OK)
        return -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

int arch_vacuum(arch *a, bool (*go_on)(void *ud), void *ud, int64_t *freed_pages,
                double *longest_ms, char **errmsg)
{
    if (errmsg)
        *errmsg = NULL;
    *freed_pages = 0;
    if (pragma_int(a, "PRAGMA auto_vacuum") != 2)
        return -ENOTSUP;   /* an archive created before: see README, "Retention" */
    for (;;) {
        int64_t before = pragma_int(a, "PRAGMA freelist_count");
        if (before <= 0)
            return 0;
        if (go_on && !go_on(ud))
            return -ECANCELED;
        /* Each PRAGMA is its own write transaction, moving pages from the
         * end of the file into free ones (and their parents' pointers):
         * 64 at a time keeps it short. */
        char *e = NULL;
        double t0 = arch_mono_s();
        int rc = sqlite3_exec(a->db, "PRAGMA incremental_vacuum(64)", NULL, NULL, &e);
        double ms = (arch_mono_s() - t0) * 1e3;
        if (ms > *longest_ms)
            *longest_ms = ms;
        if (rc != SQLITE_OK) {
            int r = arch_fail(errmsg, arch_errno(rc), "incremental vacuum: %s",
                              e ? e : sqlite3_errstr(rc));
            sqlite3_free(e);
            return r;
        }
        int64_t after = pragma_int(a, "PRAGMA freelist_count");
        if (after < 0 || after >= before)
            return 0;
        *freed_pages += before - after;
    }
}

int arch_checkpoint(arch *a, int *wal_frames, int *done_frames)
{
    int log = 0, ckpt = 0;
    int rc = sqlite3_wal_checkpoint_v2(a->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &ckpt);
    if (wal_frames)
        *wal_frames = log;
    if (done_frames)
        *done_frames = ckpt;
    return rc == SQLITE_OK || rc == SQLITE_BUSY ? 0 : arch_errno(rc);
}

void arch_set_autocheckpoint(arch *a, int pages)
{
    sqlite3_wal_autocheckpoint(a->db, pages);
}
