/* vstate.h - the answer state of every view: batch + pending + live.
 *
 * For each view: the published batch version (rows of archive seq <= R,
 * split into recompute partitions), the pending runs P (events sealed for
 * the running batch run) and the live runs L (events the speed layer
 * applied since). Every table in it is immutable and reference counted
 * (core/vtable.h): the speed thread appends the staged table of each
 * committed transaction as a new live run, a merger thread combines small
 * runs into larger ones in the background, and the two moves of the
 * exactness protocol (DESIGN.md) are pointer moves under one mutex:
 *   seal: P += L, L = empty, R = last applied seq        (batch thread)
 *   swap: publish the new batch versions and drop P       (batch thread)
 * Readers take a snapshot (references to the batch version and the runs)
 * under that mutex, held only for the pointer copies, and scan outside any
 * lock: no query, however heavy, delays an apply, a seal, a swap or
 * another query. A snapshot never counts an event twice or misses one.
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/defs.h"
#include "core/vtable.h"

/* A batch segment: one view's persisted rows of one recompute partition
 * [start, end), stored in the views file under id (core/segment.h is its
 * format; the serving layer reads it on demand through its cache). Reference
 * counted: versions share the segments of unchanged partitions, and a
 * query's snapshot keeps the ones it reads. When a newer segment replaces
 * one, the swap marks it superseded; once its last reference is gone, its
 * id is handed to the batch thread (vstate_take_garbage), which deletes
 * its row: a query never finds the segment it pinned deleted. */
typedef struct bseg {
    int64_t id;              /* the views file's segment id */
    int64_t start, end;      /* the partition; end exclusive */
    int64_t nrows, bytes;    /* rows of its finest level, bytes stored */
    int refs;                /* holders beyond the first (a new one has one); atomic */
    struct vstate *gc;       /* set when superseded: where its id goes at the end */
    bool damaged;            /* found unreadable (vstate_mark_damaged); atomic */
} bseg;

bseg *bseg_new(int64_t id, int64_t start, int64_t end, int64_t nrows, int64_t bytes);
bseg *bseg_ref(bseg *s);
void bseg_unref(bseg *s);   /* accepts NULL */

/* A batch view: its segments sorted by start. Immutable once published
 * and reference counted (a query's snapshot may hold an old version). */
typedef struct {
    bseg **segs;
    size_t nsegs;
    int refs;        /* holders beyond the first (a zeroed version has one); atomic */
} bversion;

bversion *bversion_ref(bversion *b);
/* Drops a reference; the last one drops the segments' references and
 * frees the version. Accepts NULL. */
void bversion_unref(bversion *b);

typedef struct vstate vstate;

vstate *vstate_new(const view_def *views, size_t nviews);
void vstate_free(vstate *vs);   /* frees every table; accepts NULL */

/* ---- speed thread ---- */

/* Appends the staged tables (one per view, events of one committed archive
 * transaction) to L as new runs and records last_seq. Takes ownership of
 * every stage[v] and sets it to NULL; the tables are immutable from now
 * on. With keep_delta they are also kept in a ring of recent deltas, so
 * answer caches can move forward by them (vstate_scan_since); without
 * (recovery's one big apply) the epoch changes instead. Never waits for a
 * reader. 0, or -ENOMEM (the caller must stop: a restart recovers). */
int vstate_apply(vstate *vs, vtable **stage, int64_t events, int64_t last_seq, bool keep_delta);

/* ---- batch thread ---- */

/* Seals: P += L (P is usually empty), L = no runs. *R = the last applied
 * seq. 0 or -ENOMEM. */
int vstate_seal(vstate *vs, int64_t *R);
/* Calls fn for every row of P of view v (a snapshot of its runs; rows with
 * equal keys may repeat), outside the lock. */
int vstate_pending_foreach(vstate *vs, size_t v, int (*fn)(const vrow *row, void *ud), void *ud);
/* The published batch version of view v (batch thread: no lock needed). */
const bversion *vstate_batch(const vstate *vs, size_t v);

/* Publishes next[v] for every view with next[v] != NULL (taking their
 * references), drops every P, sets the batch watermark to (R, at) and
 * marks those views available. Segments of the old versions that the new
 * ones do not hold are marked superseded. The replaced versions are
 * returned in old[v] for the caller to drop outside the lock
 * (bversion_unref). */
void vstate_swap(vstate *vs, bversion **next, int64_t R, int64_t at, bversion **old);
/* Moves the ids of superseded segments that nothing holds any more into
 * *ids (malloc'd, *n of them; NULL and 0 when none). Batch thread. */
void vstate_take_garbage(vstate *vs, int64_t **ids, size_t *n);

/* Marks view v answerable or not (a view whose definition changed stays
 * unavailable until its full recompute is swapped in). */
void vstate_set_available(vstate *vs, size_t v, bool available);
/* Marks view v's current segment id damaged (it cannot be read back):
 * from now on every scan over its partition answers -EAGAIN, until a
 * batch run replaces the segment; the view's other partitions keep
 * answering. true for the first caller only (who logs it and asks for the
 * rebuild); false when it was marked already or is no longer current. */
bool vstate_mark_damaged(vstate *vs, size_t v, int64_t id);
/* Sets the watermark of loaded, persisted batch views (at start). */
void vstate_set_batch_watermark(vstate *vs, int64_t R, int64_t at);

/* ---- readers (any thread) ---- */

typedef struct {
    uint64_t version;        /* changes whenever any answer may change */
    uint64_t epoch;          /* changes when answers change other than by deltas */
    int64_t batch_seq;       /* R */
    int64_t batch_at;        /* epoch s of the swap, 0 = never */
    int64_t last_seq;        /* last applied seq (>= R) */
    int64_t pending_events;  /* events in P */
    int64_t live_events;     /* events in L */
} vstate_watermark;

/* From a snapshot and outside any lock: calls seg_fn for each of view v's
 * batch segments that may hold a bucket in [from, to), then fn for every
 * row of P and L (rows with equal keys may repeat). Returns -EAGAIN when
 * the view is not available or one of those segments is damaged (its
 * partition is being rebuilt), else 0 or the first non-zero callback
 * value. */
int vstate_scan(vstate *vs, size_t v, int64_t from, int64_t to,
                int (*seg_fn)(const bseg *seg, void *ud),
                int (*fn)(const vrow *row, void *ud), void *ud, vstate_watermark *wm);

typedef struct {
    int64_t batch_rows, batch_bytes, batch_parts;   /* segments: rows, bytes stored, count */
    int64_t pending_rows, pending_bytes;
    int64_t live_rows, live_bytes;
    int64_t live_runs;           /* tables in P and L (merged in the background) */
    int64_t damaged_parts;       /* current segments marked damaged, awaiting their rebuild */
    bool available;
} vstate_view_stats;

void vstate_get_watermark(vstate *vs, vstate_watermark *wm);
/* The state's version: equal versions mean equal answers (any thread). */
uint64_t vstate_version(vstate *vs);

/* Calls fn (outside any lock) for the rows of view v's deltas applied
 * after version `since`, when the epoch is still `epoch` and the ring
 * still holds every one of them; merging those rows into an answer
 * computed at `since` gives the answer at the current version (wm).
 * Otherwise returns -ESTALE. */
int vstate_scan_since(vstate *vs, size_t v, uint64_t epoch, uint64_t since,
                      int (*fn)(const vrow *row, void *ud), void *ud, vstate_watermark *wm);
void vstate_get_view_stats(vstate *vs, size_t v, vstate_view_stats *st);

/* Waits until the merger has nothing left to do (tests). */
void vstate_merge_idle(vstate *vs);
