/* qcache.h - the exact answer cache (serving/ private).
 *
 * Dashboards ask the same questions over and over. An answer depends only
 * on the query and on the source's state, which has a version (bumped by
 * every change) and an epoch (bumped by changes other than applying a
 * committed transaction). An entry keeps the query's result table (rows
 * before ordering and limit, with mergeable cells), the rendered answer,
 * and the epoch and version it was computed at:
 * - at the same version the rendered answer is served again;
 * - at a later version of the same epoch the table moves forward by the
 *   deltas applied since (serving_source.scan_since), which costs what
 *   arrived since, not the size of the view;
 * - otherwise it is computed afresh.
 * Never stale, never inexact.
 *
 * Memory: the stored entries' bytes (key + rendered body + result table,
 * qcache_entry_bytes()) stay within a budget; the least recently used
 * entries are evicted to make room. One answer may take at most a quarter
 * of the budget (so one huge question cannot flush every dashboard's
 * answers), and at most max_rows rows. A budget of 0 turns the cache off.
 *
 * Checkout: a request takes a question's entry out while it works on it
 * (qcache_take), and gives it back with a newer answer (qcache_put) or
 * without one (qcache_release). While a question is checked out, other
 * requests for it wait for it (up to 250 ms) instead of computing it a
 * second time; this holds for a question asked for the first time too (the
 * first asker checks out the empty key). A checked-out entry belongs to
 * its holder: it is never evicted. Any thread; one mutex, held only to
 * move pointers (tables and bodies are freed outside it).
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/vtable.h"
#include "serving/serving.h"

typedef struct qcache qcache;

typedef struct {
    uint64_t epoch, version;
    vtable *table;     /* owned by whoever holds the entry */
    char *body;        /* the rendered answer at (epoch, version), owned */
    size_t len;
    serving_watermark wm;   /* the answer's, for its response headers */
    uint64_t ticket;   /* set by qcache_take: non-zero while this request has
                          the key checked out (others wait for it) */
} qcache_entry;

/* budget_bytes: memory for stored entries (0: the cache is off);
 * max_rows: answers with more rows are not kept. NULL when out of memory. */
qcache *qcache_new(size_t budget_bytes, size_t max_rows);
void qcache_free(qcache *c);   /* accepts NULL; nothing may be checked out */
size_t qcache_max_rows(const qcache *c);

/* Takes the answer stored for key out of the cache: true, with *out
 * filled. While another request has the key checked out, waits for it
 * (up to 250 ms). When out->ticket is non-zero on return (found, or not
 * found and now reserved for this request), the key is checked out to the
 * caller, who must then call qcache_put or qcache_release. out->ticket is
 * 0 when the cache is off, or another request kept the key for the whole
 * wait: compute without the cache (a qcache_put may still store). */
bool qcache_take(qcache *c, const void *key, size_t klen, qcache_entry *out);
/* Gives back e's checkout without an answer (the request failed) and
 * clears e. Waiters then find nothing and compute it themselves. */
void qcache_release(qcache *c, const void *key, size_t klen, qcache_entry *e);
/* Stores e for key, taking ownership of its table and body (e is left
 * empty) and giving back e's checkout. e is freed instead when it has no
 * table, is too large, an answer already stored is newer (a later epoch,
 * or the same epoch and a version at least as high), or another request
 * has the key checked out (its answer comes back soon). Stored entries are
 * evicted, least recently used first, until the budget holds. */
void qcache_put(qcache *c, const void *key, size_t klen, qcache_entry *e);
void qcache_entry_clear(qcache_entry *e);
/* The bytes an entry counts against the budget. */
size_t qcache_entry_bytes(size_t klen, const qcache_entry *e);

typedef struct {
    uint64_t hits, advances, misses;   /* qcache_count() */
    uint64_t evictions;                /* entries dropped to keep the budget */
    size_t entries, bytes;             /* stored (not checked out) */
    size_t checked_out;                /* keys checked out by requests now */
    size_t budget;                     /* bytes */
} qcache_stats;
void qcache_count(qcache *c, int kind);   /* 0 hit, 1 advance, 2 miss */
void qcache_get_stats(qcache *c, qcache_stats *st);

/* Tests: how long qcache_take waits (default 250 ms), and blocks until n
 * requests are waiting in qcache_take for a checked-out key (so a test
 * orders threads by the event, not by sleeping). */
void qcache_set_wait_ms(qcache *c, int ms);
void qcache_wait_for_waiters(qcache *c, size_t n);
