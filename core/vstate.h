/* vstate.h - the answer state of every view: batch + pending + live.
 *
 * For each view: the published batch version (rows of archive seq <= R,
 * split into recompute partitions), the pending table P (events sealed for
 * the running batch run) and the live table L (events the speed layer
 * applied since). One rwlock covers all three, so the two moves of the
 * exactness protocol are atomic to readers (DESIGN.md):
 *   seal: L -> P, new empty L, R = last applied seq       (batch thread)
 *   swap: publish the new batch versions and drop P        (batch thread)
 * Readers scan batch + P + L of a view under the read lock and never count
 * an event twice or miss one. The speed thread only merges committed
 * transactions into L (vstate_apply).
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/defs.h"
#include "core/vtable.h"

/* One recompute partition of a batch view: the rows of buckets in
 * [start, gran_next(unit, start)). Immutable once published. */
typedef struct {
    int64_t start;
    vtable *t;
    int64_t end;     /* exclusive; end <= start: unknown (never skipped) */
} bpart;

/* A batch view: its partitions sorted by start. Immutable once published;
 * a new version may share partition tables with the old one. */
typedef struct {
    bpart *parts;
    size_t nparts;
} bversion;

typedef struct vstate vstate;

vstate *vstate_new(const view_def *views, size_t nviews);
void vstate_free(vstate *vs);   /* frees every table; accepts NULL */

/* ---- speed thread ---- */

/* Merges the staged tables (one per view, events of one committed archive
 * transaction) into L and records last_seq. Takes ownership of every
 * stage[v] and sets it to NULL. With keep_delta the staged tables are
 * kept, read-only, in a ring of recent deltas, so answer caches can move
 * forward by them (vstate_scan_since); without (recovery's one big apply)
 * the epoch changes instead. 0, or -ENOMEM (the caller must stop: a
 * restart recovers). */
int vstate_apply(vstate *vs, vtable **stage, int64_t events, int64_t last_seq, bool keep_delta);

/* ---- batch thread ---- */

/* Seals: P += L (P is usually empty), L = new empty tables. *R = the last
 * applied seq. 0 or -ENOMEM. */
int vstate_seal(vstate *vs, int64_t *R);
/* P of view v, read by the batch thread between seal and swap (only the
 * batch thread changes P, so no lock is needed to read it). */
const vtable *vstate_pending(const vstate *vs, size_t v);
/* The published batch version of view v (batch thread: no lock needed). */
const bversion *vstate_batch(const vstate *vs, size_t v);

/* Publishes next[v] for every view with next[v] != NULL (taking them),
 * drops every P, sets the batch watermark to (R, at) and marks those
 * views available. The replaced versions are returned in old[v] for the
 * caller to free outside the lock, with vstate_free_replaced(). */
void vstate_swap(vstate *vs, bversion **next, int64_t R, int64_t at, bversion **old);
/* Frees an old version, except the partition tables that next shares. */
void vstate_free_replaced(bversion *old, const bversion *next);
void bversion_free(bversion *b);   /* frees the version and all its tables */

/* Marks view v answerable or not (a view whose definition changed stays
 * unavailable until its full recompute is swapped in). */
void vstate_set_available(vstate *vs, size_t v, bool available);
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

/* Calls fn for every row of view v's batch partitions, P and L, under the
 * read lock; batch partitions entirely outside [from, to) are skipped.
 * Returns -EAGAIN when the view is not available. */
int vstate_scan(vstate *vs, size_t v, int64_t from, int64_t to,
                int (*fn)(const vrow *row, void *ud), void *ud, vstate_watermark *wm);

typedef struct {
    int64_t batch_rows, batch_bytes, batch_parts;
    int64_t pending_rows, pending_bytes;
    int64_t live_rows, live_bytes;
    bool available;
} vstate_view_stats;

void vstate_get_watermark(vstate *vs, vstate_watermark *wm);
/* The state's version: equal versions mean equal answers (any thread). */
uint64_t vstate_version(vstate *vs);

/* Calls fn for the rows of view v's deltas applied after version `since`,
 * when the epoch is still `epoch` and the ring still holds every one of
 * them; merging those rows into an answer computed at `since` gives the
 * answer at the current version (wm). Otherwise returns -ESTALE. */
int vstate_scan_since(vstate *vs, size_t v, uint64_t epoch, uint64_t since,
                      int (*fn)(const vrow *row, void *ud), void *ud, vstate_watermark *wm);
void vstate_get_view_stats(vstate *vs, size_t v, vstate_view_stats *st);
