/* vtable.h - a view table: (time bucket, dimension values) -> row of
 * metric states laid out by an agg_layout (core/agg.h).
 *
 * Open-addressing hash table; rows live in an arena and are freed with the
 * table. A table is written by one owner (the speed thread's staging
 * table, a batch run's partition, a query's result); once handed to the
 * answer state (core/vstate.h) it is never written again and is shared by
 * reference: every holder (the state, a query's snapshot, the answer
 * cache's delta ring) took a reference and drops it with vtable_free.
 */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "core/agg.h"

/* A dimension value: a byte string, or null. */
typedef struct {
    const char *s;
    uint32_t len;
    bool null;
} dimval;

typedef struct vtable vtable;

typedef struct {
    int64_t bucket;
    const dimval *dims;   /* ndims values, valid during the callback only */
    const void *cells;    /* the row's states, in the table's layout */
} vrow;

/* A table of rows of ndims dimensions and the states of layout (copied). */
vtable *vtable_new(size_t ndims, const agg_layout *layout);
/* One empty table per view (the staging tables of a transaction: the
 * speed thread's, an import's), or NULL when out of memory; and their
 * release (accepts NULL and NULL entries: tables taken by vstate_apply). */
vtable **vtables_new_per_view(const view_def *views, size_t nviews);
void vtables_free(vtable **t, size_t nviews);
/* Takes another reference (any thread; the table must be immutable by then). */
vtable *vtable_ref(vtable *t);
/* Drops a reference; the last one frees the table. Accepts NULL. */
void vtable_free(vtable *t);
size_t vtable_ndims(const vtable *t);
const agg_layout *vtable_layout(const vtable *t);
size_t vtable_rows(const vtable *t);
/* Memory held, the states' own heap (sketches) included. Call it on a
 * table nobody writes (its owner's, or a published one). */
size_t vtable_bytes(const vtable *t);

/* The states of the row for (bucket, dims), created (all states empty) if
 * missing. NULL only when out of memory. */
void *vtable_upsert(vtable *t, int64_t bucket, const dimval *dims);
/* Merges every row of src into dst (same ndims and layout). 0, -EINVAL or
 * -ENOMEM. */
int vtable_merge(vtable *dst, const vtable *src);
/* Calls fn for each row, in no particular order; stops when fn returns
 * non-zero and returns that value. */
int vtable_foreach(const vtable *t, int (*fn)(const vrow *row, void *ud), void *ud);
