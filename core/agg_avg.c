/* agg_avg.c - average of a numeric field: the number of values and their
 * exact sum (core/xsum.h); reads as the correctly rounded sum divided by
 * the count, null when no value was seen or the sum overflowed (a value
 * of magnitude 2^80 or more). */
#include "core/agg.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>

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
    d->n = agg_count_add(d->n, s->n);
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

/* Column: varint 0, varint k (0..64), the counts as bw_ints, then every
 * sum times 2^k as bw_ints (core/bytes.h), when each is an exact int64 so;
 * else varint 1 and the canonical states. A count of 0 has a sum of 0. */
static void avg_encode_column(const void *const *rows, size_t off, size_t n, bytes_w *w)
{
    int64_t *v = malloc((n ? n : 1) * 2 * sizeof(*v));
    if (!v) {
        w->oom = true;
        return;
    }
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        const avg_state *a = (const avg_state *)((const char *)rows[i] + off);
        int f = xsum_frac_bits(&a->sum);
        k = f > k ? f : k;
        v[i] = a->n;
    }
    bool scaled = true;
    for (size_t i = 0; scaled && i < n; i++)
        scaled = xsum_to_scaled(&((const avg_state *)((const char *)rows[i] + off))->sum, k,
                                &v[n + i]);
    bw_varint(w, scaled ? 0 : 1);
    if (scaled) {
        bw_varint(w, (uint64_t)k);
        bw_ints(w, v, n, 0);
        bw_ints(w, v + n, n, 0);
    } else {
        agg_states_encode(&agg_avg, rows, off, n, w);
    }
    free(v);
}

static int avg_decode_column(unsigned char *rows, size_t stride, size_t off, size_t n,
                             const agg_params *p, bytes_r *r)
{
    uint64_t form = br_varint(r);
    if (form == 1)
        return agg_states_decode(&agg_avg, rows, stride, off, n, p, r);
    uint64_t k = br_varint(r);
    if (form != 0 || k > 64)
        r->bad = true;
    /* the counts, then the scaled sums in each sum's first word */
    br_ints(r, rows + off + offsetof(avg_state, n), stride, n);
    br_ints(r, rows + off + offsetof(avg_state, sum), stride, n);
    for (size_t i = 0; i < n && !r->bad; i++) {
        avg_state *a = (avg_state *)(rows + i * stride + off);
        int64_t x = (int64_t)a->sum.w[0];
        if (a->n < 0 || (a->n == 0 && x != 0))
            r->bad = true;
        else
            xsum_from_scaled(&a->sum, x, (int)k);
    }
    for (size_t i = 0; r->bad && i < n; i++)
        avg_init(rows + i * stride + off, p);
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
    .encode_column = avg_encode_column,
    .decode_column = avg_decode_column,
    .value = avg_value,
    .compare = avg_compare,
    .render = avg_render,
};
