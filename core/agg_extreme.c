/* agg_extreme.c - min and max of a numeric field: one double, the empty
 * state a NaN (values are finite, so no value is ever NaN); null when no
 * value was seen. Both types share this file because they differ only in
 * which of two values wins. -0.0 is stored as 0.0, so the state's bits do
 * not depend on which of two equal zeros came first. */
#include "core/agg.h"

#include <math.h>
#include <stdlib.h>
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

/* The fraction bits a finite double needs: v * 2^k is an integer. */
static int frac_bits(double v)
{
    if (v == 0)
        return 0;
    int e;
    double m = frexp(v, &e);                        /* v = m * 2^e, 0.5 <= |m| < 1 */
    int64_t mant = (int64_t)ldexp(fabs(m), 53);     /* exact: 53 bits */
    int need = 53 - e - __builtin_ctzll((uint64_t)mant);
    return need > 0 ? need : 0;
}

/* Column: varint 0, varint k (0..63), then every value times 2^k as
 * bw_ints (core/bytes.h), each of magnitude below 2^53, when every state
 * holds a value that is exactly so (integral values: k = 0); else (an
 * empty state among them, say) varint 1 and the canonical states. */
static void ext_encode_column_of(const agg_ops *ops, const void *const *rows, size_t off,
                                 size_t n, bytes_w *w)
{
    int64_t *x = malloc((n ? n : 1) * sizeof(*x));
    if (!x) {
        w->oom = true;
        return;
    }
    int k = 0;
    bool scaled = true;
    for (size_t i = 0; scaled && i < n; i++) {
        double v = *(const double *)((const char *)rows[i] + off);
        scaled = !isnan(v);
        int f = scaled ? frac_bits(v) : 0;
        k = f > k ? f : k;
    }
    scaled &= k <= 63;
    double scale = ldexp(1.0, k);   /* a power of two: products are exact, or too large */
    for (size_t i = 0; scaled && i < n; i++) {
        double v = *(const double *)((const char *)rows[i] + off) * scale;
        scaled = fabs(v) < EXACT_INT_LIMIT;
        x[i] = scaled ? (int64_t)v : 0;
    }
    bw_varint(w, scaled ? 0 : 1);
    if (scaled) {
        bw_varint(w, (uint64_t)k);
        bw_ints(w, x, n, 0);
    } else {
        agg_states_encode(ops, rows, off, n, w);
    }
    free(x);
}

static int ext_decode_column_of(const agg_ops *ops, unsigned char *rows, size_t stride,
                                size_t off, size_t n, const agg_params *p, bytes_r *r)
{
    uint64_t form = br_varint(r);
    if (form == 1)
        return agg_states_decode(ops, rows, stride, off, n, p, r);
    uint64_t k = br_varint(r);
    if (form != 0 || k > 63)
        r->bad = true;
    /* the scaled values land in each double's bytes, then convert */
    br_ints(r, rows + off, stride, n);
    double scale = r->bad ? 1 : ldexp(1.0, -(int)k);   /* exact: |x| < 2^53, k < 64 */
    for (size_t i = 0; i < n && !r->bad; i++) {
        double *d = (double *)(rows + i * stride + off);
        int64_t x;
        memcpy(&x, d, sizeof(x));
        if (x <= -(int64_t)EXACT_INT_LIMIT || x >= (int64_t)EXACT_INT_LIMIT)
            r->bad = true;
        else
            *d = (double)x * scale;
    }
    for (size_t i = 0; r->bad && i < n; i++)
        *(double *)(rows + i * stride + off) = NAN;
    return 0;
}

static void min_encode_column(const void *const *rows, size_t off, size_t n, bytes_w *w)
{
    ext_encode_column_of(&agg_min, rows, off, n, w);
}
static void max_encode_column(const void *const *rows, size_t off, size_t n, bytes_w *w)
{
    ext_encode_column_of(&agg_max, rows, off, n, w);
}
static int min_decode_column(unsigned char *rows, size_t stride, size_t off, size_t n,
                             const agg_params *p, bytes_r *r)
{
    return ext_decode_column_of(&agg_min, rows, stride, off, n, p, r);
}
static int max_decode_column(unsigned char *rows, size_t stride, size_t off, size_t n,
                             const agg_params *p, bytes_r *r)
{
    return ext_decode_column_of(&agg_max, rows, stride, off, n, p, r);
}

#define EXTREME_OPS(T, NAME, ADD, MERGE, ENC_COL, DEC_COL)                                                          \
    {                                                                                             \
        .type = T, .name = NAME, .needs_field = true, .size = sizeof(double), .init = ext_init,   \
        .add = ADD, .merge = MERGE, .encode = ext_encode, .decode = ext_decode,                   \
        .encode_column = ENC_COL, .decode_column = DEC_COL,                                       \
        .value = ext_value, .compare = ext_compare, .render = ext_render,                         \
    }

const agg_ops agg_min = EXTREME_OPS(MT_MIN, "min", min_add, min_merge, min_encode_column,
                                    min_decode_column);
const agg_ops agg_max = EXTREME_OPS(MT_MAX, "max", max_add, max_merge, max_encode_column,
                                    max_decode_column);
