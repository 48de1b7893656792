/* agg.h - the aggregator interface: one ops table per metric type.
 *
 * A metric's *state* (a cell) is what its aggregator keeps per row of a
 * view: a count is one int64, a sum an exact 192-bit fixed-point number,
 * min and max a double each, avg a count and a sum. Every state has a fixed
 * in-memory size; a variable-size state (a sketch) keeps a pointer to what
 * it owns in its fixed part and frees it in destroy. Merging is associative,
 * commutative and exact, so the same events give the same bits in any merge
 * order: batch segments, pending and live tables, time buckets and other
 * instances combine with the same code.
 *
 * An *agg_layout* places the states of a list of metrics side by side in a
 * row (8-byte aligned offsets); a view's tables use the layout of all its
 * metrics, a query's result table the layout of the metrics it selects.
 * Layouts copy what they need from the metric definitions, so they outlive
 * the config that made them (answer caches keep tables across reloads).
 *
 * Each aggregator lives in its own file (agg_count.c, agg_sum.c, ...);
 * agg.c holds the registry and the layout helpers. Pure code; any thread
 * (a state is owned by whoever owns its table).
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/bytes.h"
#include "core/defs.h"
#include "core/event.h"
#include "core/jbuf.h"

/* What a state reads as, for ordering and rendering. */
typedef enum { AV_NULL, AV_INT, AV_NUM } agg_value_kind;
typedef struct {
    agg_value_kind kind;
    int64_t i;
    double d;
} agg_value;

/* Per-metric parameters an aggregator may need (sketch precision later). */
typedef struct {
    int reserved;
} agg_params;

typedef struct agg_ops {
    metric_type type;
    const char *name;        /* as in the config: "count", "sum", ... */
    bool needs_field;        /* reads an event field (all but count) */
    size_t size;             /* bytes of the in-memory state, a multiple of 8 */
    void (*init)(void *st, const agg_params *p);
    /* Adds one event's field value (NULL for count); a value this metric
     * cannot take (missing, not a number, ...) is skipped. */
    void (*add)(void *st, const agg_params *p, const field_value *fv);
    void (*merge)(void *dst, const void *src, const agg_params *p);
    void (*destroy)(void *st);   /* NULL: the state owns nothing */
    /* Canonical bytes of a state, and back (r->bad on malformed input,
     * leaving an initialized state). */
    void (*encode)(const void *st, bytes_w *w);
    void (*decode)(void *st, const agg_params *p, bytes_r *r);
    /* Optional (NULL: a column is the states' canonical encodings one
     * after another): a column of n states, the one at rows[i] + off, in a
     * compact encoding of the aggregator's own (integers in byte planes,
     * core/bytes.h bw_ints: what zstd compresses best), and back into the
     * states at rows + i * stride + off. decode_column initializes all n
     * states whatever it reads (r->bad on malformed input). Written down
     * byte by byte in core/segment.h. */
    void (*encode_column)(const void *const *rows, size_t off, size_t n, bytes_w *w);
    void (*decode_column)(unsigned char *rows, size_t stride, size_t off, size_t n,
                          const agg_params *p, bytes_r *r);
    agg_value (*value)(const void *st);
    /* Orders two states by value; both are non-null (value().kind != AV_NULL). */
    int (*compare)(const void *a, const void *b);
    /* Appends the state's JSON value. */
    void (*render)(const void *st, jbuf *b);
} agg_ops;

extern const agg_ops agg_count, agg_sum, agg_min, agg_max, agg_avg;

/* The ops of a metric type (never NULL for a valid type). */
const agg_ops *agg_ops_of(metric_type t);

typedef struct {
    const agg_ops *ops;
    agg_params params;
    uint32_t off;          /* byte offset of the state in a row */
} agg_slot;

typedef struct agg_layout {
    size_t n;              /* metrics */
    size_t size;           /* bytes of one row's states */
    bool destroy;          /* some state owns memory */
    agg_slot slot[];
} agg_layout;

/* The layout of metrics[pick[0..n)] (pick NULL: metrics[0..n)). NULL when
 * out of memory. Free with free(). */
agg_layout *agg_layout_new(const metric_def *metrics, const size_t *pick, size_t n);
agg_layout *agg_layout_dup(const agg_layout *l);
bool agg_layout_equal(const agg_layout *a, const agg_layout *b);

static inline void *agg_state(const agg_layout *l, void *row, size_t i)
{
    return (char *)row + l->slot[i].off;
}
static inline const void *agg_cstate(const agg_layout *l, const void *row, size_t i)
{
    return (const char *)row + l->slot[i].off;
}

void agg_row_init(const agg_layout *l, void *row);
void agg_row_destroy(const agg_layout *l, void *row);   /* no-op unless l->destroy */
void agg_row_merge(const agg_layout *l, void *dst, const void *src);
/* Merges state i of a row in layout sl into state k of a row in layout dl
 * (the same metric in both). */
static inline void agg_merge_one(const agg_layout *dl, void *dst, size_t k,
                                 const agg_layout *sl, const void *src, size_t i)
{
    dl->slot[k].ops->merge(agg_state(dl, dst, k), agg_cstate(sl, src, i), &dl->slot[k].params);
}
void agg_row_encode(const agg_layout *l, const void *row, bytes_w *w);
void agg_row_decode(const agg_layout *l, void *row, bytes_r *r);

/* Column m of n rows: rows[i]'s state m. The aggregator's encode_column,
 * or the canonical encodings one after another (for an aggregator without
 * one, and as a fallback form of those with one). */
void agg_column_encode(const agg_layout *l, size_t m, const void *const *rows, size_t n,
                       bytes_w *w);
/* Back into state m of rows + i * l->size: every one of the n states is
 * initialized whatever happens (r->bad when malformed). */
void agg_column_decode(const agg_layout *l, size_t m, unsigned char *rows, size_t n, bytes_r *r);
void agg_states_encode(const agg_ops *ops, const void *const *rows, size_t off, size_t n,
                       bytes_w *w);
void agg_states_decode(const agg_ops *ops, unsigned char *rows, size_t stride, size_t off,
                       size_t n, const agg_params *p, bytes_r *r);

/* Ordering of two states of slot i: nulls compare as equal to each other;
 * *null_a / *null_b say which are null (callers put nulls last). */
int agg_compare(const agg_layout *l, size_t i, const void *a, const void *b, bool *null_a,
                bool *null_b);
