/* agg.h - the aggregator interface: one ops table per metric type.
 *
 * A metric's *state* (a cell) is what its aggregator keeps per row of a
 * view: a count is one int64, a sum an exact 192-bit fixed-point number,
 * min and max a double each, avg a count and a sum, distinct and quantiles
 * a sketch (agg_distinct.c, agg_quantiles.c). Every state has a fixed
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

/* Per-metric parameters, from the metric's definition (agg_params_of);
 * zero for the types that take none. No padding: layouts compare them
 * with memcmp. */
typedef struct {
    int32_t precision;    /* distinct: log2 of the number of registers, 10..18 */
    int32_t max_buckets;  /* quantiles: buckets kept per sign (see agg_quantiles.c) */
    double accuracy;      /* quantiles: relative accuracy, 0.0001..0.5 */
    double mult;          /* quantiles: buckets per unit of the log2 mapping */
} agg_params;

#define AGG_DEFAULT_PRECISION 14
#define AGG_DEFAULT_ACCURACY 0.01

/* A distinct metric counts exactly up to this many values per cell (an
 * explicit set of hashes), and estimates beyond. */
uint32_t agg_distinct_exact_limit(int precision);

/* How an answer reads its states: the quantiles a query asks for
 * (`quantiles=0.5,0.99`). A quantiles state renders one value per entry,
 * named names[i] ("p50"); value() and compare() read entry `pick` (the
 * one order_by names). The other types ignore it. */
typedef struct {
    const double *q;             /* each in [0, 1] */
    const char *const *names;
    size_t nq;
    size_t pick;                 /* < nq */
} agg_render_ctx;

/* 0.5, 0.9 and 0.99 (p50, p90, p99), pick 0: the default of a query. */
extern const agg_render_ctx agg_render_default;

typedef struct agg_ops {
    metric_type type;
    const char *name;        /* as in the config: "count", "sum", ... */
    bool needs_field;        /* reads an event field (all but count) */
    size_t size;             /* bytes of the in-memory state, a multiple of 8 */
    /* Never allocates: an empty state owns nothing. */
    void (*init)(void *st, const agg_params *p);
    /* Adds one event's field value (NULL for count); a value this metric
     * cannot take (missing, not a number, ...) is skipped. 0, or -ENOMEM
     * (a sketch that could not grow; the state is left valid). */
    int (*add)(void *st, const agg_params *p, const field_value *fv);
    /* 0, or -ENOMEM (dst is left valid, src untouched). */
    int (*merge)(void *dst, const void *src, const agg_params *p);
    void (*destroy)(void *st);   /* NULL: the state owns nothing */
    /* Heap bytes the state owns beyond its fixed size (NULL: none). */
    size_t (*heap_bytes)(const void *st);
    /* Canonical bytes of a state (the same state gives the same bytes),
     * and back: r->bad on malformed input, leaving an initialized state;
     * returns 0, or -ENOMEM (also leaving an initialized state). */
    void (*encode)(const void *st, bytes_w *w);
    int (*decode)(void *st, const agg_params *p, bytes_r *r);
    /* Optional (NULL: a column is the states' canonical encodings one
     * after another): a column of n states, the one at rows[i] + off, in a
     * compact encoding of the aggregator's own (integers in byte planes,
     * core/bytes.h bw_ints: what zstd compresses best), and back into the
     * states at rows + i * stride + off. decode_column initializes all n
     * states whatever it reads (r->bad on malformed input); 0 or -ENOMEM.
     * Written down byte by byte in core/segment.h. */
    void (*encode_column)(const void *const *rows, size_t off, size_t n, bytes_w *w);
    int (*decode_column)(unsigned char *rows, size_t stride, size_t off, size_t n,
                         const agg_params *p, bytes_r *r);
    agg_value (*value)(const void *st, const agg_params *p, const agg_render_ctx *c);
    /* Orders two states by value; both are non-null (value().kind != AV_NULL). */
    int (*compare)(const void *a, const void *b, const agg_params *p, const agg_render_ctx *c);
    /* Appends the state's JSON value. */
    void (*render)(const void *st, const agg_params *p, const agg_render_ctx *c, jbuf *b);
} agg_ops;

extern const agg_ops agg_count, agg_sum, agg_min, agg_max, agg_avg, agg_distinct, agg_quantiles;

/* a + b for the event counts of states (>= 0 each, as their decoders
 * check), stopping at INT64_MAX: no count a real stream reaches, but one
 * that damaged or hostile bytes can claim, and an overflow would be
 * undefined. Still commutative and associative for counts >= 0. */
static inline int64_t agg_count_add(int64_t a, int64_t b)
{
    int64_t sum;
    return __builtin_add_overflow(a, b, &sum) ? INT64_MAX : sum;
}

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

/* The parameters of a metric: its precision and accuracy, or their
 * defaults, and what follows from them. */
agg_params agg_params_of(const metric_def *m);

/* The layout of metrics[pick[0..n)] (pick NULL: metrics[0..n)). NULL when
 * out of memory. Free with free(). */
agg_layout *agg_layout_new(const metric_def *metrics, const size_t *pick, size_t n);
agg_layout *agg_layout_dup(const agg_layout *l);
/* The parameters of slot s as segments store them (nothing for the types
 * without any; distinct: varint precision; quantiles: the accuracy's
 * 8 bytes), so a segment of another precision reads as another view. */
void agg_params_encode(const agg_slot *s, bytes_w *w);
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
/* 0 or -ENOMEM (dst left valid: a failed merge is an error of the whole). */
int agg_row_merge(const agg_layout *l, void *dst, const void *src);
/* Merges state i of a row in layout sl into state k of a row in layout dl
 * (the same metric in both). 0 or -ENOMEM. */
static inline int agg_merge_one(const agg_layout *dl, void *dst, size_t k,
                                const agg_layout *sl, const void *src, size_t i)
{
    return dl->slot[k].ops->merge(agg_state(dl, dst, k), agg_cstate(sl, src, i),
                                  &dl->slot[k].params);
}
void agg_row_encode(const agg_layout *l, const void *row, bytes_w *w);
/* r->bad on malformed input; 0 or -ENOMEM. The row is initialized either way. */
int agg_row_decode(const agg_layout *l, void *row, bytes_r *r);
/* Heap bytes the row's states own (0 unless l->destroy). */
size_t agg_row_heap_bytes(const agg_layout *l, const void *row);

static inline void agg_render(const agg_layout *l, size_t i, const void *row,
                              const agg_render_ctx *c, jbuf *b)
{
    l->slot[i].ops->render(agg_cstate(l, row, i), &l->slot[i].params, c, b);
}
static inline agg_value agg_read(const agg_layout *l, size_t i, const void *row,
                                 const agg_render_ctx *c)
{
    return l->slot[i].ops->value(agg_cstate(l, row, i), &l->slot[i].params, c);
}

/* Column m of n rows: rows[i]'s state m. The aggregator's encode_column,
 * or the canonical encodings one after another (for an aggregator without
 * one, and as a fallback form of those with one). */
void agg_column_encode(const agg_layout *l, size_t m, const void *const *rows, size_t n,
                       bytes_w *w);
/* Back into state m of rows + i * l->size: every one of the n states is
 * initialized whatever happens (r->bad when malformed); 0 or -ENOMEM. */
int agg_column_decode(const agg_layout *l, size_t m, unsigned char *rows, size_t n, bytes_r *r);
void agg_states_encode(const agg_ops *ops, const void *const *rows, size_t off, size_t n,
                       bytes_w *w);
int agg_states_decode(const agg_ops *ops, unsigned char *rows, size_t stride, size_t off,
                      size_t n, const agg_params *p, bytes_r *r);

/* Ordering of two states of slot i: nulls compare as equal to each other;
 * *null_a / *null_b say which are null (callers put nulls last). */
int agg_compare(const agg_layout *l, size_t i, const void *a, const void *b,
                const agg_render_ctx *c, bool *null_a, bool *null_b);
