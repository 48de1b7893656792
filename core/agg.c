/* agg.c - the aggregator registry and row layouts (see agg.h). */
#include "core/agg.h"

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
    }
    return NULL;
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
        l->slot[i] = (agg_slot){.ops = ops, .off = (uint32_t)off};
        off += (ops->size + 7) & ~(size_t)7;
        l->destroy |= ops->destroy != NULL;
    }
    l->size = off;
    return l;
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

void agg_row_merge(const agg_layout *l, void *dst, const void *src)
{
    for (size_t i = 0; i < l->n; i++)
        l->slot[i].ops->merge(agg_state(l, dst, i), agg_cstate(l, src, i), &l->slot[i].params);
}

void agg_row_encode(const agg_layout *l, const void *row, bytes_w *w)
{
    for (size_t i = 0; i < l->n; i++)
        l->slot[i].ops->encode(agg_cstate(l, row, i), w);
}

void agg_row_decode(const agg_layout *l, void *row, bytes_r *r)
{
    for (size_t i = 0; i < l->n; i++)
        l->slot[i].ops->decode(agg_state(l, row, i), &l->slot[i].params, r);
}

void agg_states_encode(const agg_ops *ops, const void *const *rows, size_t off, size_t n,
                       bytes_w *w)
{
    for (size_t i = 0; i < n; i++)
        ops->encode((const char *)rows[i] + off, w);
}

void agg_states_decode(const agg_ops *ops, unsigned char *rows, size_t stride, size_t off,
                       size_t n, const agg_params *p, bytes_r *r)
{
    for (size_t i = 0; i < n; i++) {
        void *st = rows + i * stride + off;
        if (r->bad)
            ops->init(st, p);   /* past an error: initialized, not read */
        else
            ops->decode(st, p, r);
    }
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

void agg_column_decode(const agg_layout *l, size_t m, unsigned char *rows, size_t n, bytes_r *r)
{
    const agg_slot *sl = &l->slot[m];
    if (sl->ops->decode_column)
        sl->ops->decode_column(rows, l->size, sl->off, n, &sl->params, r);
    else
        agg_states_decode(sl->ops, rows, l->size, sl->off, n, &sl->params, r);
}

int agg_compare(const agg_layout *l, size_t i, const void *a, const void *b, bool *null_a,
                bool *null_b)
{
    const agg_ops *ops = l->slot[i].ops;
    const void *sa = agg_cstate(l, a, i), *sb = agg_cstate(l, b, i);
    *null_a = ops->value(sa).kind == AV_NULL;
    *null_b = ops->value(sb).kind == AV_NULL;
    if (*null_a || *null_b)
        return 0;
    return ops->compare(sa, sb);
}
