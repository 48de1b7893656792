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
 * Never stale, never inexact. Entries are taken out while a request uses
 * them (one mutex, held only to move pointers). Any thread.
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/vtable.h"

typedef struct qcache qcache;

typedef struct {
    uint64_t epoch, version;
    vtable *table;     /* owned by whoever holds the entry */
    char *body;        /* the rendered answer at (epoch, version), owned */
    size_t len;
} qcache_entry;

/* slots: how many questions are kept; max_rows: larger answers are not. */
qcache *qcache_new(size_t slots, size_t max_rows);
void qcache_free(qcache *c);   /* accepts NULL */
size_t qcache_max_rows(const qcache *c);

/* Takes the entry stored for key out of the cache (true), or false. While
 * another request has it checked out, waits up to 250 ms for it. Every
 * successful take must be followed by qcache_put or qcache_release. */
bool qcache_take(qcache *c, const void *key, size_t klen, qcache_entry *out);
/* Gives back a taken key without an entry (the request failed). */
void qcache_release(qcache *c, const void *key, size_t klen);
/* Stores e for key, taking ownership of its table and body; an entry
 * already there that is newer wins and e is freed instead. */
void qcache_put(qcache *c, const void *key, size_t klen, qcache_entry *e);
void qcache_entry_clear(qcache_entry *e);

typedef struct {
    uint64_t hits, advances, misses;
} qcache_stats;
void qcache_count(qcache *c, int kind);   /* 0 hit, 1 advance, 2 miss */
void qcache_get_stats(qcache *c, qcache_stats *st);
