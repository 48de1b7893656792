/* segcache.h - the segment cache: decoded batch segments read on demand
 * from the views file, kept within a byte budget (serving.cache_mb).
 *
 * A query asks for the segments of its snapshot (core/vstate.h) by id; a
 * segment in the cache is handed out at once, another is read from the
 * views file (its own read connection) and decoded (core/segment.h). Each
 * handed-out segment is pinned until the query puts it back, so eviction
 * (least recently used first, whenever the cached bytes exceed the budget)
 * never frees a segment a query reads; a pinned segment may push the cache
 * over its budget for as long as the query runs. Any thread; one mutex,
 * held for lookups and list moves, never while reading or decoding.
 */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "core/defs.h"
#include "core/segment.h"

typedef struct segcache segcache;
typedef struct segcache_ref segcache_ref;

/* Opens views_path (created by the batch layer) for reading. */
int segcache_new(const char *views_path, size_t budget_bytes, segcache **out, char **errmsg);
void segcache_free(segcache *c);   /* accepts NULL; every ref must be put back */

/* Segment id of view v, decoded at least from the level a query of
 * answer granularity gran over [from, to) reads (seg_info_pick_level),
 * pinned. 0; -EBADMSG, -EPROTONOSUPPORT or -EINVAL when the stored segment
 * is damaged, of another format or of another shape (rebuild it from the
 * archive); -ENOENT when the views file has no such segment; -EIO;
 * -ENOMEM. */
int segcache_get(segcache *c, int64_t id, const view_def *v, gran_t gran, int64_t from,
                 int64_t to, segcache_ref **out);
const segment *segcache_segment(const segcache_ref *r);
void segcache_put(segcache *c, segcache_ref *r);   /* accepts NULL */
/* Drops segments deleted from the views file (superseded by a batch run):
 * they would otherwise hold memory until the budget pushed them out. */
void segcache_forget(segcache *c, const int64_t *ids, size_t n);

typedef struct {
    uint64_t entries, bytes, budget;
    uint64_t hits, misses, evictions, damaged;
    uint64_t read_bytes;        /* bytes read from the views file */
} segcache_stats;
void segcache_get_stats(segcache *c, segcache_stats *st);
