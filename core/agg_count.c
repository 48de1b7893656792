/* agg_count.c - count: the number of events, one int64. */
#include "core/agg.h"

#include <stdlib.h>

#include <string.h>

static void count_init(void *st, const agg_params *p)
{
    memset(st, 0, sizeof(int64_t));
}

static int count_add(void *st, const agg_params *p, const field_value *fv)
{
    (*(int64_t *)st)++;
    return 0;
}

static int count_merge(void *dst, const void *src, const agg_params *p)
{
    *(int64_t *)dst = agg_count_add(*(int64_t *)dst, *(const int64_t *)src);
    return 0;
}

static void count_encode(const void *st, bytes_w *w)
{
    bw_varint(w, (uint64_t)*(const int64_t *)st);
}

static int count_decode(void *st, const agg_params *p, bytes_r *r)
{
    uint64_t n = br_varint(r);
    if (n > INT64_MAX)
        r->bad = true;
    *(int64_t *)st = r->bad ? 0 : (int64_t)n;
    return 0;
}

/* Column: the counts as bw_ints (core/bytes.h); each >= 0. */
static void count_encode_column(const void *const *rows, size_t off, size_t n, bytes_w *w)
{
    int64_t *v = malloc((n ? n : 1) * sizeof(*v));
    if (!v) {
        w->oom = true;
        return;
    }
    for (size_t i = 0; i < n; i++)
        v[i] = *(const int64_t *)((const char *)rows[i] + off);
    bw_ints(w, v, n, 0);
    free(v);
}

static int count_decode_column(unsigned char *rows, size_t stride, size_t off, size_t n,
                               const agg_params *p, bytes_r *r)
{
    br_ints(r, rows + off, stride, n);
    for (size_t i = 0; i < n && !r->bad; i++)
        if (*(int64_t *)(rows + i * stride + off) < 0)
            r->bad = true;
    for (size_t i = 0; r->bad && i < n; i++)
        *(int64_t *)(rows + i * stride + off) = 0;
    return 0;
}

static agg_value count_value(const void *st, const agg_params *p, const agg_render_ctx *c)
{
    return (agg_value){.kind = AV_INT, .i = *(const int64_t *)st};
}

static int count_compare(const void *a, const void *b, const agg_params *p,
                      const agg_render_ctx *c)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void count_render(const void *st, const agg_params *p, const agg_render_ctx *c, jbuf *b)
{
    jb_int(b, *(const int64_t *)st);
}

const agg_ops agg_count = {
    .type = MT_COUNT,
    .name = "count",
    .needs_field = false,
    .size = sizeof(int64_t),
    .init = count_init,
    .add = count_add,
    .merge = count_merge,
    .encode = count_encode,
    .decode = count_decode,
    .encode_column = count_encode_column,
    .decode_column = count_decode_column,
    .value = count_value,
    .compare = count_compare,
    .render = count_render,
};
