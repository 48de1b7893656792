/* batch_int.h - private state of the batch layer (batch/ only). */
#pragma once
#include <pthread.h>
#include <stdatomic.h>

#include "archive/archive.h"
#include "batch/batch.h"
#include "batch/store.h"
#include "core/event.h"

struct batch {
    const config *cfg;
    vstate *vs;
    /* Told the ids of segments deleted from the views file (batch thread). */
    void (*on_deleted)(const int64_t *ids, size_t n, void *ud);
    void *on_deleted_ud;
    arch *ro;                 /* read-only archive connection (batch thread) */
    bstore *store;            /* the views file (batch thread, and batch_load) */
    char *store_path;
    event_decoder *dec;
    field_value *vals;
    gran_t *unit;             /* per view: its recompute partition unit */
    /* Retention cuts of the current run (config_retention_cuts; batch
     * thread): partitions starting before are dropped. */
    int64_t arch_cut, *cut;
    arch *mw;                 /* archive maintenance connection (maint.c; batch thread) */
    int64_t last_checkpoint_ms;   /* monotonic: its last checkpoint */
    bool checkpoint_failing;      /* the last one failed (logged once) */
    int64_t last_compaction_ms;   /* monotonic: the last compaction pass, 0: none yet */

    pthread_t thread;
    bool started;
    atomic_bool stop;
    atomic_bool failed;
    atomic_llong heartbeat_ms;   /* monotonic: the thread is alive (watchdog) */

    /* Guarded by mu: requests, and the figures status reads. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool run_requested;
    bool *needs_full;         /* per view: a full recompute is due */
    /* Per view: starts of partitions whose segment was found damaged, to
     * rebuild (batch_request_partition); a run plans the first `n` it saw
     * and removes them once it has swapped their new segments in. */
    struct rebuild_list {
        int64_t *starts;
        size_t n, cap;
    } *rebuild;
    batch_status st;
    batch_view_status *vst;   /* per view */
};

/* One run: seal, recompute, persist, swap (DESIGN.md steps 2-4). full[v]
 * says which views are recomputed in full. Batch thread. Returns 0, or a
 * negative code with *errmsg (P then stays for the next run). */
int batch_run(batch *b, const bool *full, char **errmsg);

/* After a successful run with watermark R (maint.c; batch thread): drops
 * the archive partitions before b->arch_cut, compacts chunks <= R, hands
 * freed pages back and checkpoints the WAL; notes the figures in b->st.
 * Failures are logged and recorded, never fatal. */
void batch_maintain(batch *b, int64_t R);
/* CLOCK_MONOTONIC in ms (heartbeats, intervals; batch.c). */
int64_t batch_now_ms(void);
/* A PASSIVE checkpoint between runs (batch thread). */
void batch_checkpoint(batch *b);
/* Notes each view's oldest batch partition in its status (batch thread). */
void batch_note_oldest(batch *b);
