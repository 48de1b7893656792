/* batch.h - the batch layer: recomputes views from the archive and
 * publishes them (DESIGN.md, "The exactness protocol", steps 2 to 5).
 *
 * A batch thread with its own read-only archive connection runs every
 * batch.interval_s, on request (POST /v1/admin/recompute) and at start when
 * a view's definition changed. A run seals the live tables (L -> P, R = last
 * applied seq), recomputes from archive rows with seq <= R only the
 * partitions that P touches (a view whose definition changed, or that is
 * asked for, in full), builds each of them into a segment stored with R in
 * the views file (<archive.path>-views, one transaction), and swaps them in
 * together with dropping P. Ingestion and queries never wait for a run;
 * the swap is pointer moves.
 */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "core/vstate.h"

typedef struct batch batch;

/* Opens (creating) the views file beside the archive and a read-only
 * archive connection. cfg and vs are borrowed and must outlive it. */
int batch_new(const config *cfg, vstate *vs, batch **out, char **errmsg);
/* Before batch_start: fn is called on the batch thread with the ids of the
 * superseded segments it deletes from the views file, so a cache of
 * segments can drop them. */
void batch_on_deleted_segments(batch *b, void (*fn)(const int64_t *ids, size_t n, void *ud),
                               void *ud);

/* At start, before recovery: loads the segment index of the persisted
 * batch views whose definition is unchanged into vs, and marks the others
 * unavailable until their full recompute (unless nothing was persisted
 * yet and the archive is small enough to replay). Sets *R: recovery
 * replays the archive after it. archive_last_seq guards against a views
 * file ahead of its archive; archive_events is the archive's event count. */
int batch_load(batch *b, int64_t archive_last_seq, int64_t archive_events, int64_t *R,
               char **errmsg);

/* Without a batch thread (lambdad export from the files): loads view v's
 * persisted segment index into vs, reading the views file only, when it
 * matches v's definition and the archive (archive_last_seq), and sets *R
 * to the seq it covers; otherwise loads nothing and sets *R to 0 (the
 * view then comes from the whole archive, as a full recompute would give
 * it). 0, or a negative code with *errmsg (malloc'd). */
int batch_load_view_readonly(const config *cfg, vstate *vs, size_t v, int64_t archive_last_seq,
                             int64_t *R, char **errmsg);

/* Starts the batch thread; it runs at once when a view needs recomputing. */
int batch_start(batch *b, char **errmsg);
/* Asks for a run now. view_idx < 0: an incremental run of every view;
 * otherwise that view is also recomputed in full. Any thread. */
void batch_request(batch *b, long view_idx);
/* Asks for a run that rebuilds partition `start` of view view_idx from the
 * archive, its segment having been found damaged (vstate_mark_damaged);
 * the view's other partitions are left as they are. Any thread. */
void batch_request_partition(batch *b, size_t view_idx, int64_t start);
/* Stops the thread, abandoning a run in progress (nothing of it is kept;
 * P stays and the next start recovers it from the archive). */
void batch_stop(batch *b);
void batch_free(batch *b);   /* stops first; accepts NULL */
/* true when a fatal error (out of memory while sealing) stopped the
 * thread: the daemon exits and a restart recovers. */
bool batch_failed(batch *b);
/* Milliseconds since the batch thread last showed it is alive (between
 * runs at least every second; during a run every 4096 events). */
int64_t batch_since_heartbeat_ms(batch *b);

typedef struct {
    int64_t runs, failures;
    bool running;
    int64_t last_run_at;          /* epoch s of the last successful run's end, 0 = none */
    int64_t last_duration_ms;
    int64_t last_rows_scanned;    /* archived events decoded by the last run */
    int64_t last_R;
    int64_t next_run_at;          /* epoch s */
    char last_error[256];         /* empty when the last run succeeded */
    /* Archive maintenance after each run (maint.c), totals since start: */
    int64_t compact_merges;       /* merged chunks written */
    int64_t compact_chunks;       /* small chunks they replaced */
    int64_t compact_bytes_before, compact_bytes_after;   /* stored bytes, replaced -> merged */
    double compact_longest_txn_ms;   /* the longest merge transaction since start */
    double compact_txn_ms;           /* all merge transactions together */
    int64_t retention_chunks, retention_events;          /* dropped by archive.retention */
    int64_t vacuum_pages;         /* free pages handed back to the file system */
    double vacuum_longest_txn_ms; /* its longest transaction since start */
    int64_t archive_oldest;       /* start of the oldest time partition archived, INT64_MIN: none */
    bool vacuum_off;              /* the archive has no auto_vacuum (README, "Retention") */
    char maint_error[256];        /* the last maintenance failure, empty when it worked */
} batch_status;

/* How many waiting damaged partitions a view's status lists. */
#define BATCH_DAMAGED_LIST 10

typedef struct {
    int64_t R;                    /* seq the published batch view covers */
    /* The last run that recomputed any partition of this view: */
    int64_t last_run_at;          /* epoch s, 0 = none since start */
    int64_t last_duration_ms;
    int64_t last_rows_scanned;    /* events recomputed into this view */
    int64_t last_partitions;      /* partitions recomputed */
    bool last_full;               /* the last run recomputed it in full */
    int64_t recomputes;           /* runs that recomputed any of it, since start */
    int64_t full_recomputes;      /* ... of which in full */
    int64_t rows_scanned_total;   /* events recomputed into it, since start */
    int64_t partitions_total;     /* partitions recomputed, since start */
    bool needs_full;              /* waiting for a full recompute */
    int64_t oldest;               /* start of its oldest batch partition, INT64_MIN: none */
    int64_t damaged_rebuilt;      /* partitions rebuilt because their segment was damaged */
    size_t damaged_waiting;       /* damaged partitions waiting for their rebuild */
    int64_t damaged_starts[BATCH_DAMAGED_LIST];   /* the first of them */
} batch_view_status;

void batch_get_status(batch *b, batch_status *st);
void batch_get_view_status(batch *b, size_t v, batch_view_status *st);
