/* agg_distinct.c - the number of distinct values of a field: a
 * HyperLogLog-style sketch that is exact while small.
 *
 * Values are compared by their text (a string's unescaped bytes, a number,
 * boolean, object or array as written); missing and null values are
 * skipped. Each value is hashed once with XXH3-64 under a fixed seed
 * (core/checksum.h: the output is specified, the same on every machine and
 * version, because hashes are persisted in segments).
 *
 * Two forms, chosen by the contents alone:
 *  - explicit: the sorted set of the distinct hashes, while there are at
 *    most T = max(1024, m/8) of them (m = 2^precision registers; T keeps
 *    the set no larger than the registers). The count is exact (up to
 *    64-bit hash collisions: about n^2/2^65, 3e-14 at 1000 values).
 *  - dense: m one-byte registers, register i the largest "rank" (leading
 *    zeros + 1 of the hash's low 64-p bits) among the hashes whose top p
 *    bits are i, plus a histogram of the register values so the estimate
 *    costs O(64), not O(m).
 * Any state is a function of the set of hashes it has seen: the explicit
 * set while that set has at most T members, else the registers of that
 * set (a union of sets, then a maximum per register). So merges in any
 * order and any grouping give the same bits, and the encoding (below) is
 * canonical.
 *
 * The estimate of the dense form is Ertl's "improved raw estimator" (O.
 * Ertl, New cardinality estimation algorithms for HyperLogLog sketches,
 * 2017): unbiased over the whole range from the register histogram, with
 * no empirical bias tables, standard error about 1.04/sqrt(m) (0.81% at
 * precision 14); it is clamped to at least T+1, which the dense form
 * proves. Plain arithmetic and sqrt (correctly rounded), so every machine
 * computes the same estimate.
 *
 * Encoding: varint(n << 1) then n hashes as 8-byte words, ascending
 * (explicit; the empty state is the single byte 0); or varint(1) then the
 * m register bytes (dense).
 *
 * Pure; a state is owned by whoever owns its table.
 */
#include "core/agg.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/checksum.h"

/* Fixed forever: hashes in stored segments were made with it. */
#define DISTINCT_SEED UINT64_C(0x6c616d6264616421)   /* "lambdad!" */
#define MAX_RANK 65   /* 64 - precision + 1 < 65 for every precision */

typedef struct {
    uint32_t m;                    /* registers */
    uint32_t hist[MAX_RANK + 1];   /* registers per value */
    uint8_t reg[];                 /* m registers */
} dense;

typedef struct {
    uint64_t *set;   /* explicit: n distinct hashes, ascending, cap allocated */
    dense *d;        /* dense form (then set is NULL), or NULL */
    uint32_t n, cap;
} dstate;

static inline size_t nreg(const agg_params *p) { return (size_t)1 << p->precision; }

uint32_t agg_distinct_exact_limit(int precision)
{
    size_t t = ((size_t)1 << precision) / 8;
    return t < 1024 ? 1024 : (uint32_t)t;
}

/* The largest explicit set. */
static inline uint32_t threshold(const agg_params *p)
{
    return agg_distinct_exact_limit(p->precision);
}

static void distinct_init(void *st, const agg_params *p)
{
    memset(st, 0, sizeof(dstate));
}

static void distinct_destroy(void *st)
{
    dstate *s = st;
    free(s->set);
    free(s->d);
    memset(s, 0, sizeof(*s));
}

static size_t distinct_heap_bytes(const void *st)
{
    const dstate *s = st;
    return (size_t)s->cap * sizeof(uint64_t) + (s->d ? sizeof(dense) + s->d->m : 0);
}

static void dense_put(dense *d, const agg_params *p, uint64_t h)
{
    size_t i = (size_t)(h >> (64 - p->precision));
    uint64_t w = h << p->precision;
    uint8_t rank = w ? (uint8_t)(__builtin_clzll(w) + 1) : (uint8_t)(64 - p->precision + 1);
    if (rank > d->reg[i]) {
        d->hist[d->reg[i]]--;
        d->hist[rank]++;
        d->reg[i] = rank;
    }
}

static dense *dense_new(const agg_params *p)
{
    dense *d = calloc(1, sizeof(dense) + nreg(p));
    if (d)
        d->m = d->hist[0] = (uint32_t)nreg(p);
    return d;
}

/* Turns an explicit state into the dense form of the same set. */
static int to_dense(dstate *s, const agg_params *p)
{
    dense *d = dense_new(p);
    if (!d)
        return -ENOMEM;
    for (uint32_t i = 0; i < s->n; i++)
        dense_put(d, p, s->set[i]);
    free(s->set);
    s->set = NULL;
    s->n = s->cap = 0;
    s->d = d;
    return 0;
}

/* Index of the first hash >= h in the explicit set. */
static uint32_t lower_bound(const dstate *s, uint64_t h)
{
    uint32_t lo = 0, hi = s->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (s->set[mid] < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int add_hash(dstate *s, const agg_params *p, uint64_t h)
{
    if (s->d) {
        dense_put(s->d, p, h);
        return 0;
    }
    uint32_t at = lower_bound(s, h);
    if (at < s->n && s->set[at] == h)
        return 0;
    if (s->n == threshold(p)) {
        if (to_dense(s, p) < 0)
            return -ENOMEM;
        dense_put(s->d, p, h);
        return 0;
    }
    if (s->n == s->cap) {
        uint32_t ncap = s->cap ? s->cap * 2 : 4;
        if (ncap > threshold(p))
            ncap = threshold(p);
        uint64_t *ns = realloc(s->set, ncap * sizeof(*ns));
        if (!ns)
            return -ENOMEM;
        s->set = ns;
        s->cap = ncap;
    }
    memmove(s->set + at + 1, s->set + at, (s->n - at) * sizeof(*s->set));
    s->set[at] = h;
    s->n++;
    return 0;
}

static int distinct_add(void *st, const agg_params *p, const field_value *fv)
{
    if (fv->kind == FV_MISSING || fv->kind == FV_NULL)
        return 0;
    return add_hash(st, p, checksum64(fv->str, fv->len, DISTINCT_SEED));
}

/* The size of the union of two sorted sets. */
static size_t union_size(const uint64_t *a, size_t na, const uint64_t *b, size_t nb)
{
    size_t i = 0, j = 0, n = 0;
    while (i < na && j < nb) {
        uint64_t x = a[i], y = b[j];
        i += x <= y;
        j += y <= x;
        n++;
    }
    return n + (na - i) + (nb - j);
}

static int distinct_merge(void *dst, const void *src, const agg_params *p)
{
    dstate *d = dst;
    const dstate *s = src;
    if (s->d) {
        if (!d->d && to_dense(d, p) < 0)
            return -ENOMEM;
        size_t m = nreg(p);
        for (size_t i = 0; i < m; i++)
            if (s->d->reg[i] > d->d->reg[i]) {
                d->d->hist[d->d->reg[i]]--;
                d->d->hist[s->d->reg[i]]++;
                d->d->reg[i] = s->d->reg[i];
            }
        return 0;
    }
    if (s->n == 0)
        return 0;
    size_t n = d->d ? 0 : union_size(d->set, d->n, s->set, s->n);
    if (d->d || n > threshold(p)) {
        if (!d->d && to_dense(d, p) < 0)
            return -ENOMEM;
        for (uint32_t i = 0; i < s->n; i++)
            dense_put(d->d, p, s->set[i]);
        return 0;
    }
    if (n == d->n)
        return 0;   /* nothing new */
    if (n > d->cap) {
        /* grow by doubling (up to the threshold), so a cell that many
         * small cells merge into allocates O(log n) times, not per merge */
        uint32_t cap = d->cap ? d->cap : 4;
        while (cap < n)
            cap *= 2;
        if (cap > threshold(p))
            cap = threshold(p);
        uint64_t *ns = realloc(d->set, cap * sizeof(*ns));
        if (!ns)
            return -ENOMEM;
        d->set = ns;
        d->cap = cap;
    }
    /* merge from the back, in place: slots past the old end are free */
    size_t i = d->n, j = s->n, k = n;
    while (j > 0) {
        uint64_t y = s->set[j - 1];
        if (i > 0 && d->set[i - 1] > y) {
            d->set[--k] = d->set[--i];
        } else {
            if (i > 0 && d->set[i - 1] == y)
                i--;   /* in both: kept once */
            d->set[--k] = y;
            j--;
        }
    }
    d->n = (uint32_t)n;
    return 0;
}

static void distinct_encode(const void *st, bytes_w *w)
{
    const dstate *s = st;
    if (s->d) {
        bw_varint(w, 1);   /* the register count follows from the precision */
        bw_put(w, s->d->reg, s->d->m);
        return;
    }
    bw_varint(w, (uint64_t)s->n << 1);
    for (uint32_t i = 0; i < s->n; i++)
        bw_u64(w, s->set[i]);
}

static int distinct_decode(void *st, const agg_params *p, bytes_r *r)
{
    dstate *s = st;
    distinct_init(s, p);
    uint64_t head = br_varint(r);
    if (r->bad)
        return 0;
    if (head == 1) {
        size_t m = nreg(p);
        const unsigned char *b = br_take(r, m);
        if (!b)
            return 0;
        if (!(s->d = dense_new(p)))
            return -ENOMEM;
        s->d->hist[0] = 0;
        for (size_t i = 0; i < m; i++) {
            if (b[i] > 64 - p->precision + 1) {
                r->bad = true;
                distinct_destroy(s);
                return 0;
            }
            s->d->reg[i] = b[i];
            s->d->hist[b[i]]++;
        }
        return 0;
    }
    uint64_t n = head >> 1;
    if ((head & 1) || n > threshold(p) || n * 8 > br_left(r)) {
        r->bad = true;
        return 0;
    }
    if (n == 0)
        return 0;
    if (!(s->set = malloc(n * sizeof(*s->set))))
        return -ENOMEM;
    s->cap = (uint32_t)n;
    for (uint64_t i = 0; i < n; i++) {
        s->set[i] = br_u64(r);
        if (i && s->set[i] <= s->set[i - 1])
            r->bad = true;   /* not ascending or not distinct: not canonical */
    }
    s->n = (uint32_t)n;
    if (r->bad)
        distinct_destroy(s);
    return 0;
}

/* Ertl's sigma and tau series (see the top). */
static double sigma(double x)
{
    if (x == 1)
        return INFINITY;
    double y = 1, z = x, prev;
    do {
        x *= x;
        prev = z;
        z += x * y;
        y += y;
    } while (z != prev);
    return z;
}

static double tau(double x)
{
    if (x == 0 || x == 1)
        return 0;
    double y = 1, z = 1 - x, prev;
    do {
        x = sqrt(x);
        prev = z;
        y *= 0.5;
        z -= (1 - x) * (1 - x) * y;
    } while (z != prev);
    return z / 3;
}

static int64_t estimate(const dstate *s, const agg_params *p)
{
    if (!s->d)
        return s->n;
    double m = (double)nreg(p);
    int q = 64 - p->precision;
    double z = m * tau(1 - s->d->hist[q + 1] / m);
    for (int k = q; k >= 1; k--)
        z = 0.5 * (z + s->d->hist[k]);
    z += m * sigma(s->d->hist[0] / m);
    double e = m * m / (2 * M_LN2 * z);
    double least = (double)threshold(p) + 1;
    return (int64_t)llround(e < least ? least : e);
}

static agg_value distinct_value(const void *st, const agg_params *p, const agg_render_ctx *c)
{
    return (agg_value){.kind = AV_INT, .i = estimate(st, p)};
}

static int distinct_compare(const void *a, const void *b, const agg_params *p,
                            const agg_render_ctx *c)
{
    int64_t x = estimate(a, p), y = estimate(b, p);
    return (x > y) - (x < y);
}

static void distinct_render(const void *st, const agg_params *p, const agg_render_ctx *c,
                            jbuf *b)
{
    jb_int(b, estimate(st, p));
}

const agg_ops agg_distinct = {
    .type = MT_DISTINCT,
    .name = "distinct",
    .needs_field = true,
    .size = sizeof(dstate),
    .init = distinct_init,
    .add = distinct_add,
    .merge = distinct_merge,
    .destroy = distinct_destroy,
    .heap_bytes = distinct_heap_bytes,
    .encode = distinct_encode,
    .decode = distinct_decode,
    .value = distinct_value,
    .compare = distinct_compare,
    .render = distinct_render,
};
