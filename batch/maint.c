/* maint.c - archive maintenance after each batch run: retention,
 * compaction, vacuum, checkpoints (DESIGN.md, "The archive").
 *
 * Runs on the batch thread, right after a run's swap, through its own
 * writable archive connection (b->mw), so the speed thread's connection is
 * never busy with it; every step writes in short transactions
 * (archive/compact.c, archive/retain.c), and the speed thread's commits
 * wait at most for one of them.
 *
 *   retention  the archive's time partitions before b->arch_cut, at or
 *              below R, are deleted. The run just swapped has already
 *              dropped them (and any view partition before its cut) from
 *              the answers, in one step; the archive follows. Chunks above
 *              R stay until the next run has moved them out of the live
 *              tables, so recovery never replays what no view holds.
 *   compaction chunks at or below R merged (arch_compact), at
 *              archive.compaction_level; at most one pass a minute.
 *   vacuum     freed pages handed back (auto_vacuum=INCREMENTAL).
 *   checkpoint a PASSIVE checkpoint now, every second during a long pass
 *              and between runs (batch_checkpoint), so the speed thread's
 *              commits rarely checkpoint themselves (daemon/runtime.c
 *              raises their automatic threshold). This connection never
 *              checkpoints on its own (batch_new): a checkpoint run by a
 *              COMMIT would make each merge look 30 ms long.
 *
 * The figures go to b->st under b->mu, and to /metrics here.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch/batch_int.h"
#include "core/gran.h"
#include "core/log.h"
#include "core/metrics.h"

METRIC_COUNTER(m_compacted, "lambdad_archive_chunks_compacted_total",
               "Small archive chunks merged into larger ones by compaction.");
METRIC_COUNTER(m_merges, "lambdad_archive_compaction_merges_total",
               "Merged chunks written by compaction.");
METRIC_COUNTER(m_dropped, "lambdad_archive_retention_dropped_events_total",
               "Archived events dropped by archive.retention.");
METRIC_GAUGE(m_oldest, "lambdad_archive_oldest_partition_timestamp_seconds",
             "Start of the oldest time partition the archive holds (absent when empty).");
METRIC_GAUGE(m_view_oldest, "lambdad_view_oldest_partition_timestamp_seconds",
             "Start of the oldest batch partition of a view (absent when it has none).", "view");

#define COMPACT_INTERVAL_MS 60000

/* Asked between chunks and transactions of a long pass: stops it when the
 * daemon stops, keeps the watchdog fed and the WAL checkpointed. */
static bool go_on(void *ud)
{
    batch *b = ud;
    int64_t now = batch_now_ms();
    b->heartbeat_ms = now;
    if (now - b->last_checkpoint_ms >= 1000)
        batch_checkpoint(b);
    return !b->stop;
}

static void maint_failed(batch *b, const char *what, int r, char *err)
{
    log_warn("Archive %s failed (retried after the next batch run): %s", what,
             err ? err : strerror(-r));
    pthread_mutex_lock(&b->mu);
    snprintf(b->st.maint_error, sizeof(b->st.maint_error), "%s: %s", what,
             err ? err : strerror(-r));
    pthread_mutex_unlock(&b->mu);
    free(err);
}

/* The oldest time partition of any stream, INT64_MIN when empty. */
static int64_t archive_oldest(batch *b)
{
    int64_t oldest = INT64_MIN;
    for (size_t si = 0; si < b->cfg->nstreams; si++) {
        int64_t lo, hi;
        char *err = NULL;
        if (arch_tpart_range(b->mw, b->cfg->streams[si].name, INT64_MAX, &lo, &hi, &err) == 0 &&
            (oldest == INT64_MIN || lo < oldest))
            oldest = lo;
        free(err);
    }
    return oldest;
}

void batch_note_oldest(batch *b)
{
    const config *cfg = b->cfg;
    int64_t oldest = archive_oldest(b);
    pthread_mutex_lock(&b->mu);
    b->st.archive_oldest = oldest;
    for (size_t v = 0; v < cfg->nviews; v++) {
        const bversion *ver = vstate_batch(b->vs, v);
        b->vst[v].oldest = ver->nsegs ? ver->segs[0]->start : INT64_MIN;
    }
    pthread_mutex_unlock(&b->mu);
    if (oldest != INT64_MIN)
        metrics_gauge_set(&m_oldest, NULL, (double)oldest);
    for (size_t v = 0; v < cfg->nviews; v++) {
        const bversion *ver = vstate_batch(b->vs, v);
        if (ver->nsegs)
            metrics_gauge_set(&m_view_oldest, METRIC_LABELS(cfg->views[v].name),
                              (double)ver->segs[0]->start);
    }
}

void batch_maintain(batch *b, int64_t R)
{
    const config *cfg = b->cfg;
    char *err = NULL;
    int r = 0;
    pthread_mutex_lock(&b->mu);
    b->st.maint_error[0] = '\0';   /* set again below by what fails this time */
    pthread_mutex_unlock(&b->mu);
    arch_drop_stats ds = {0};
    for (size_t si = 0; b->arch_cut != INT64_MIN && r == 0 && si < cfg->nstreams; si++)
        r = arch_drop_before(b->mw, cfg->streams[si].name, b->arch_cut, R, go_on, b, &ds, &err);
    if (r < 0 && r != -ECANCELED)
        maint_failed(b, "retention", r, err);
    else if (ds.chunks) {
        char cut[32];
        time_format_rfc3339(b->arch_cut, cut, sizeof cut);
        log_info("Retention: dropped %lld archived event(s) in %lld chunk(s) of time partitions "
                 "before %s", (long long)ds.events, (long long)ds.chunks, cut);
    }

    /* At most one compaction pass a minute: a merged chunk below the
     * target is rewritten with the new small chunks of its group each
     * pass, and a batch.interval_s of seconds would rewrite it (and hold
     * up the next run) every few seconds. */
    arch_compact_stats cs = {0};
    err = NULL;
    r = 0;
    if (!b->last_compaction_ms ||
        batch_now_ms() - b->last_compaction_ms >= COMPACT_INTERVAL_MS) {
        r = arch_compact(b->mw, R, cfg->compact_level, go_on, b, &cs, &err);
        b->last_compaction_ms = batch_now_ms();
    }
    if (r < 0 && r != -ECANCELED)
        maint_failed(b, "compaction", r, err);
    else
        free(err);
    if (cs.merges)
        log_info("Compaction: %lld chunk(s) merged into %lld, %lld -> %lld bytes",
                 (long long)cs.chunks_merged, (long long)cs.merges,
                 (long long)cs.bytes_before, (long long)cs.bytes_after);

    int64_t freed = 0;
    err = NULL;
    double vacuum_ms = 0;
    int vr = arch_vacuum(b->mw, go_on, b, &freed, &vacuum_ms, &err);
    if (vr < 0 && vr != -ENOTSUP && vr != -ECANCELED)
        maint_failed(b, "vacuum", vr, err);
    else
        free(err);
    batch_checkpoint(b);

    metrics_counter_add(&m_compacted, NULL, (uint64_t)cs.chunks_merged);
    metrics_counter_add(&m_merges, NULL, (uint64_t)cs.merges);
    metrics_counter_add(&m_dropped, NULL, (uint64_t)ds.events);
    pthread_mutex_lock(&b->mu);
    b->st.compact_merges += cs.merges;
    b->st.compact_chunks += cs.chunks_merged;
    b->st.compact_bytes_before += cs.bytes_before;
    b->st.compact_bytes_after += cs.bytes_after;
    b->st.compact_txn_ms += cs.txn_ms;
    if (cs.longest_txn_ms > b->st.compact_longest_txn_ms)
        b->st.compact_longest_txn_ms = cs.longest_txn_ms;
    b->st.retention_chunks += ds.chunks;
    b->st.retention_events += ds.events;
    b->st.vacuum_pages += freed;
    if (vacuum_ms > b->st.vacuum_longest_txn_ms)
        b->st.vacuum_longest_txn_ms = vacuum_ms;
    b->st.vacuum_off = vr == -ENOTSUP;
    pthread_mutex_unlock(&b->mu);
    batch_note_oldest(b);
}

void batch_checkpoint(batch *b)
{
    int r = arch_checkpoint(b->mw, NULL, NULL);
    b->last_checkpoint_ms = batch_now_ms();
    /* tried every second: said when it starts failing and when it works again */
    if (r < 0 && !b->checkpoint_failing)
        log_warn("Archive checkpoint failed (tried again every second; the speed thread's "
                 "commits checkpoint beyond 64 MiB of WAL): %s", strerror(-r));
    else if (r == 0 && b->checkpoint_failing)
        log_info("Archive checkpoints work again");
    b->checkpoint_failing = r < 0;
}
