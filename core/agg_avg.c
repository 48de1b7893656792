/* agg_avg.c - average of a numeric field: the number of values and their
 * exact sum (core/xsum.h); reads as the correctly rounded sum divided by
 * the count, null when no value was seen or the sum overflowed (a value
 * of magnitude 2^80 or more). */
#include "core/agg.h"

#include <math.h>

#include "core/xsum.h"

typedef struct {
    int64_t n;
    xsum sum;
} avg_state;

static void avg_init(void *st, const agg_params *p)
{
    avg_state *a = st;
    a->n = 0;
    xsum_zero(&a->sum);
}

static int avg_add(void *st, const agg_params *p, const field_value *fv)
{
    avg_state *a = st;
    if (fv->kind == FV_NUMBER && isfinite(fv->num)) {
        xsum_add_double(&a->sum, fv->num);
        a->n++;
    }
    return 0;
}

static int avg_merge(void *dst, const void *src, const agg_params *p)
{
    avg_state *d = dst;
    const avg_state *s = src;
    d->n += s->n;
    xsum_add(&d->sum, &s->sum);
    return 0;
}

static void avg_encode(const void *st, bytes_w *w)
{
    const avg_state *a = st;
    bw_varint(w, (uint64_t)a->n);
    if (a->n)
        xsum_encode(&a->sum, w);
}

static int avg_decode(void *st, const agg_params *p, bytes_r *r)
{
    avg_state *a = st;
    avg_init(a, p);
    uint64_t n = br_varint(r);
    if (n > INT64_MAX)
        r->bad = true;
    if (r->bad || n == 0)
        return 0;
    a->n = (int64_t)n;
    xsum_decode(&a->sum, r);
    if (r->bad)
        avg_init(a, p);
    return 0;
}

static agg_value avg_value(const void *st, const agg_params *p, const agg_render_ctx *c)
{
    const avg_state *a = st;
    if (a->n == 0 || xsum_overflowed(&a->sum))
        return (agg_value){.kind = AV_NULL};
    return (agg_value){.kind = AV_NUM, .d = xsum_double(&a->sum) / (double)a->n};
}

static int avg_compare(const void *a, const void *b, const agg_params *p,
                      const agg_render_ctx *c)
{
    double x = avg_value(a, p, c).d, y = avg_value(b, p, c).d;
    return (x > y) - (x < y);
}

static void avg_render(const void *st, const agg_params *p, const agg_render_ctx *c, jbuf *b)
{
    agg_value v = avg_value(st, p, c);
    if (v.kind == AV_NULL)
        jb_lit(b, "null");
    else
        jb_num(b, v.d);
}

const agg_ops agg_avg = {
    .type = MT_AVG,
    .name = "avg",
    .needs_field = true,
    .size = sizeof(avg_state),
    .init = avg_init,
    .add = avg_add,
    .merge = avg_merge,
    .encode = avg_encode,
    .decode = avg_decode,
    .value = avg_value,
    .compare = avg_compare,
    .render = avg_render,
};
