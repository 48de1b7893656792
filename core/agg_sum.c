/* agg_sum.c - sum of a numeric field: an exact sum (core/xsum.h), so the
 * same values give the same bits in any order. Renders as an integer when
 * the sum is one that an int64 holds, else as the correctly rounded double.
 * A sum of no values is 0; a sum that took a value of magnitude 2^80
 * (1.2e24) or more cannot be exact and reads as null. */
#include "core/agg.h"

#include <math.h>

#include "core/xsum.h"

static void sum_init(void *st, const agg_params *p)
{
    xsum_zero(st);
}

static int sum_add(void *st, const agg_params *p, const field_value *fv)
{
    if (fv->kind == FV_NUMBER && isfinite(fv->num))
        xsum_add_double(st, fv->num);
    return 0;
}

static int sum_merge(void *dst, const void *src, const agg_params *p)
{
    xsum_add(dst, src);
    return 0;
}

static void sum_encode(const void *st, bytes_w *w)
{
    xsum_encode(st, w);
}

static int sum_decode(void *st, const agg_params *p, bytes_r *r)
{
    xsum_decode(st, r);
    return 0;
}

static agg_value sum_value(const void *st, const agg_params *p, const agg_render_ctx *c)
{
    if (xsum_overflowed(st))
        return (agg_value){.kind = AV_NULL};
    agg_value v = {.kind = AV_INT};
    if (!xsum_int64(st, &v.i)) {
        v.kind = AV_NUM;
        v.d = xsum_double(st);
    }
    return v;
}

static int sum_compare(const void *a, const void *b, const agg_params *p,
                      const agg_render_ctx *c)
{
    return xsum_cmp(a, b);
}

static void sum_render(const void *st, const agg_params *p, const agg_render_ctx *c, jbuf *b)
{
    agg_value v = sum_value(st, p, c);
    if (v.kind == AV_INT)
        jb_int(b, v.i);
    else if (v.kind == AV_NUM)
        jb_num(b, v.d);
    else
        jb_lit(b, "null");
}

const agg_ops agg_sum = {
    .type = MT_SUM,
    .name = "sum",
    .needs_field = true,
    .size = sizeof(xsum),
    .init = sum_init,
    .add = sum_add,
    .merge = sum_merge,
    .encode = sum_encode,
    .decode = sum_decode,
    .value = sum_value,
    .compare = sum_compare,
    .render = sum_render,
};
