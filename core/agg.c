/* agg.c - the aggregator registry and row layouts (see agg.h). */
#include "core/agg.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const agg_ops *agg_ops_of(metric_type t)
{
    switch (t) {
    case MT_COUNT: return &agg_count;
    case MT_SUM: return &agg_sum;
    case MT_MIN: return &agg_min;
    case MT_MAX: return &agg_max;
    case MT_AVG: return &agg_avg;
    case MT_DISTINCT: return &agg_distinct;
    case MT_QUANTILES: return &agg_quantiles;
    }
    return NULL;
}

static const double default_q[] = {0.5, 0.9, 0.99};
static const char *const default_names[] = {"p50", "p90", "p99"};
const agg_render_ctx agg_render_default = {
    .q = default_q, .names = default_names, .nq = 3, .pick = 0};

/* ln((1 + a) / (1 - a)) = 2 atanh(a), by its series: plain arithmetic, so
 * the quantiles' bucket boundaries are the same bits on every machine
 * and libm (states are persisted and merged across versions). a <= 0.5:
 * the terms shrink by a^2 <= 1/4, about 27 of them reach 1e-17. */
static double ln_gamma(double a)
{
    double term = a, sum = 0, a2 = a * a;
    for (int k = 1; k < 200; k += 2) {
        double next = sum + term / k;
        if (next == sum)
            break;
        sum = next;
        term *= a2;
    }
    return 2 * sum;
}

agg_params agg_params_of(const metric_def *m)
{
    agg_params p = {0};
    if (m->type == MT_DISTINCT) {
        p.precision = m->precision ? m->precision : AGG_DEFAULT_PRECISION;
    } else if (m->type == MT_QUANTILES) {
        p.accuracy = m->accuracy > 0 ? m->accuracy : AGG_DEFAULT_ACCURACY;
        /* agg_quantiles.c maps a value to ceil(log2approx(x) * mult); its
         * log2 approximation grows at least 10/7 times as fast as ln x,
         * so buckets of 1/mult = 10/7 ln(gamma) are at most ln(gamma)
         * wide in ln x: the relative accuracy holds. */
        p.mult = 7.0 / (10.0 * ln_gamma(p.accuracy));
        /* keep 40 binary orders of magnitude (about 10^12) per sign */
        p.max_buckets = (int32_t)ceil(40.0 * p.mult);
    }
    return p;
}

static agg_layout *alloc_layout(size_t n)
{
    return calloc(1, sizeof(agg_layout) + (n ? n : 1) * sizeof(agg_slot));
}

agg_layout *agg_layout_new(const metric_def *metrics, const size_t *pick, size_t n)
{
    agg_layout *l = alloc_layout(n);
    if (!l)
        return NULL;
    l->n = n;
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const metric_def *m = &metrics[pick ? pick[i] : i];
        const agg_ops *ops = agg_ops_of(m->type);
        l->slot[i] = (agg_slot){.ops = ops, .params = agg_params_of(m), .off = (uint32_t)off};
        off += (ops->size + 7) & ~(size_t)7;
        l->destroy |= ops->destroy != NULL;
    }
    l->size = off;
    return l;
}

void agg_params_encode(const agg_slot *s, bytes_w *w)
{
    if (s->ops->type == MT_DISTINCT)
        bw_varint(w, (uint64_t)s->params.precision);
    else if (s->ops->type == MT_QUANTILES)
        bw_f64(w, s->params.accuracy);
}

agg_layout *agg_layout_dup(const agg_layout *src)
{
    size_t bytes = sizeof(agg_layout) + (src->n ? src->n : 1) * sizeof(agg_slot);
    agg_layout *l = malloc(bytes);
    if (l)
        memcpy(l, src, bytes);
    return l;
}

bool agg_layout_equal(const agg_layout *a, const agg_layout *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (a->slot[i].ops != b->slot[i].ops ||
            memcmp(&a->slot[i].params, &b->slot[i].params, sizeof(agg_params)) != 0)
            return false;
    return true;
}

void agg_row_init(const agg_layout *l, void *row)
{
    for (size_t i = 0; i < l->n; i++)
        l->slot[i].ops->init(agg_state(l, row, i), &l->slot[i].params);
}

void agg_row_destroy(const agg_layout *l, void *row)
{
    if (!l->destroy)
        return;
    for (size_t i = 0; i < l->n; i++)
        if (l->slot[i].ops->destroy)
            l->slot[i].ops->destroy(agg_state(l, row, i));
}

int agg_row_merge(const agg_layout *l, void *dst, const void *src)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->slot[i].ops->merge(agg_state(l, dst, i), agg_cstate(l, src, i),
                                  &l->slot[i].params) < 0)
            return -ENOMEM;
    return 0;
}

void agg_row_encode(const agg_layout *l, const void *row, bytes_w *w)
{
    for (size_t i = 0; i < l->n; i++)
        l->slot[i].ops->encode(agg_cstate(l, row, i), w);
}

int agg_row_decode(const agg_layout *l, void *row, bytes_r *r)
{
    int rc = 0;
    for (size_t i = 0; i < l->n; i++)
        if (l->slot[i].ops->decode(agg_state(l, row, i), &l->slot[i].params, r) < 0)
            rc = -ENOMEM;
    return rc;
}

size_t agg_row_heap_bytes(const agg_layout *l, const void *row)
{
    size_t n = 0;
    for (size_t i = 0; l->destroy && i < l->n; i++)
        if (l->slot[i].ops->heap_bytes)
            n += l->slot[i].ops->heap_bytes(agg_cstate(l, row, i));
    return n;
}

void agg_states_encode(const agg_ops *ops, const void *const *rows, size_t off, size_t n,
                       bytes_w *w)
{
    for (size_t i = 0; i < n; i++)
        ops->encode((const char *)rows[i] + off, w);
}

int agg_states_decode(const agg_ops *ops, unsigned char *rows, size_t stride, size_t off,
                      size_t n, const agg_params *p, bytes_r *r)
{
    int rv = 0;
    for (size_t i = 0; i < n; i++) {
        void *st = rows + i * stride + off;
        if (r->bad || rv < 0)
            ops->init(st, p);   /* past an error: initialized, not read */
        else
            rv = ops->decode(st, p, r);
    }
    return rv;
}

void agg_column_encode(const agg_layout *l, size_t m, const void *const *rows, size_t n,
                       bytes_w *w)
{
    const agg_ops *ops = l->slot[m].ops;
    if (ops->encode_column)
        ops->encode_column(rows, l->slot[m].off, n, w);
    else
        agg_states_encode(ops, rows, l->slot[m].off, n, w);
}

int agg_column_decode(const agg_layout *l, size_t m, unsigned char *rows, size_t n, bytes_r *r)
{
    const agg_slot *sl = &l->slot[m];
    if (sl->ops->decode_column)
        return sl->ops->decode_column(rows, l->size, sl->off, n, &sl->params, r);
    return agg_states_decode(sl->ops, rows, l->size, sl->off, n, &sl->params, r);
}

int agg_compare(const agg_layout *l, size_t i, const void *a, const void *b,
                const agg_render_ctx *c, bool *null_a, bool *null_b)
{
    const agg_ops *ops = l->slot[i].ops;
    const agg_params *p = &l->slot[i].params;
    const void *sa = agg_cstate(l, a, i), *sb = agg_cstate(l, b, i);
    *null_a = ops->value(sa, p, c).kind == AV_NULL;
    *null_b = ops->value(sb, p, c).kind == AV_NULL;
    if (*null_a || *null_b)
        return 0;
    return ops->compare(sa, sb, p, c);
}
