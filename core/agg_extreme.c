/* agg_extreme.c - min and max of a numeric field: one double, the empty
 * state a NaN (values are finite, so no value is ever NaN); null when no
 * value was seen. Both types share this file because they differ only in
 * which of two values wins. -0.0 is stored as 0.0, so the state's bits do
 * not depend on which of two equal zeros came first. */
#include "core/agg.h"

#include <math.h>
#include <string.h>

static void ext_init(void *st, const agg_params *p)
{
    *(double *)st = NAN;
}

static void take(double *cur, double v, bool want_min)
{
    if (isnan(*cur) || (want_min ? v < *cur : v > *cur))
        *cur = v;
}

static int min_add(void *st, const agg_params *p, const field_value *fv)
{
    if (fv->kind == FV_NUMBER && isfinite(fv->num))
        take(st, fv->num + 0.0, true);
    return 0;
}

static int max_add(void *st, const agg_params *p, const field_value *fv)
{
    if (fv->kind == FV_NUMBER && isfinite(fv->num))
        take(st, fv->num + 0.0, false);
    return 0;
}

static int min_merge(void *dst, const void *src, const agg_params *p)
{
    double v = *(const double *)src;
    if (!isnan(v))
        take(dst, v, true);
    return 0;
}

static int max_merge(void *dst, const void *src, const agg_params *p)
{
    double v = *(const double *)src;
    if (!isnan(v))
        take(dst, v, false);
    return 0;
}

/* Encoding: 0 (empty), 1 and a zigzag varint (an integral value below
 * 2^53), or 2 and the double's 8 bytes. */
#define EXACT_INT_LIMIT 0x1p53

static void ext_encode(const void *st, bytes_w *w)
{
    double v = *(const double *)st;
    if (isnan(v)) {
        bw_varint(w, 0);
    } else if (v == floor(v) && fabs(v) < EXACT_INT_LIMIT) {
        bw_varint(w, 1);
        bw_svarint(w, (int64_t)v);
    } else {
        bw_varint(w, 2);
        bw_f64(w, v);
    }
}

static int ext_decode(void *st, const agg_params *p, bytes_r *r)
{
    double *d = st;
    uint64_t form = br_varint(r);
    *d = NAN;
    if (form == 1)
        *d = (double)br_svarint(r) + 0.0;
    else if (form == 2)
        *d = br_f64(r);
    else if (form != 0)
        r->bad = true;
    if (r->bad || !(isnan(*d) || isfinite(*d)) || (form == 2 && isnan(*d)))
        r->bad = true;
    if (r->bad)
        *d = NAN;
    return 0;
}

static agg_value ext_value(const void *st, const agg_params *p, const agg_render_ctx *c)
{
    double v = *(const double *)st;
    return isnan(v) ? (agg_value){.kind = AV_NULL} : (agg_value){.kind = AV_NUM, .d = v};
}

static int ext_compare(const void *a, const void *b, const agg_params *p,
                      const agg_render_ctx *c)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void ext_render(const void *st, const agg_params *p, const agg_render_ctx *c, jbuf *b)
{
    double v = *(const double *)st;
    if (isnan(v))
        jb_lit(b, "null");
    else
        jb_num(b, v);
}

#define EXTREME_OPS(T, NAME, ADD, MERGE)                                                          \
    {                                                                                             \
        .type = T, .name = NAME, .needs_field = true, .size = sizeof(double), .init = ext_init,   \
        .add = ADD, .merge = MERGE, .encode = ext_encode, .decode = ext_decode,                   \
        .value = ext_value, .compare = ext_compare, .render = ext_render,                         \
    }

const agg_ops agg_min = EXTREME_OPS(MT_MIN, "min", min_add, min_merge);
const agg_ops agg_max = EXTREME_OPS(MT_MAX, "max", max_add, max_merge);
