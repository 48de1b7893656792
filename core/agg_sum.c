/* agg_sum.c - sum of a numeric field: an exact sum (core/xsum.h), so the
 * same values give the same bits in any order. Renders as an integer when
 * the sum is one that an int64 holds, else as the correctly rounded double.
 * A sum of no values is 0; a sum that took a value of magnitude 2^80
 * (1.2e24) or more cannot be exact and reads as null. */
#include "core/agg.h"

#include <math.h>
#include <stdlib.h>

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

/* Column: varint 0, varint k (0..64), then every sum times 2^k as
 * bw_ints (core/bytes.h), when each is an exact int64 so (integer sums:
 * k = 0); else varint 1 and the canonical states. */
static void sum_encode_column(const void *const *rows, size_t off, size_t n, bytes_w *w)
{
    int64_t *x = malloc((n ? n : 1) * sizeof(*x));
    if (!x) {
        w->oom = true;
        return;
    }
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        int f = xsum_frac_bits((const xsum *)((const char *)rows[i] + off));
        k = f > k ? f : k;
    }
    bool scaled = true;
    for (size_t i = 0; scaled && i < n; i++)
        scaled = xsum_to_scaled((const xsum *)((const char *)rows[i] + off), k, &x[i]);
    bw_varint(w, scaled ? 0 : 1);
    if (scaled) {
        bw_varint(w, (uint64_t)k);
        bw_ints(w, x, n, 0);
    } else {
        agg_states_encode(&agg_sum, rows, off, n, w);
    }
    free(x);
}

static int sum_decode_column(unsigned char *rows, size_t stride, size_t off, size_t n,
                             const agg_params *p, bytes_r *r)
{
    uint64_t form = br_varint(r);
    if (form == 1)
        return agg_states_decode(&agg_sum, rows, stride, off, n, p, r);
    uint64_t k = br_varint(r);
    if (form != 0 || k > 64)
        r->bad = true;
    /* the scaled sums land in each state's first word, then widen */
    br_ints(r, rows + off, stride, n);
    for (size_t i = 0; i < n; i++) {
        xsum *s = (xsum *)(rows + i * stride + off);
        if (r->bad)
            xsum_zero(s);
        else
            xsum_from_scaled(s, (int64_t)s->w[0], (int)k);
    }
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
    .encode_column = sum_encode_column,
    .decode_column = sum_decode_column,
    .value = sum_value,
    .compare = sum_compare,
    .render = sum_render,
};
