/* agg_quantiles.c - quantiles of a numeric field: a DDSketch-style
 * relative-error sketch (Masson, Rim, Lee: "DDSketch: a fast and
 * fully-mergeable quantile sketch with relative-error guarantees", 2019).
 *
 * A value x > 0 goes to bucket k = ceil(L(x) * mult), where L is the
 * paper's cubically interpolated log2: for x = 2^e (1 + s), s in [0, 1),
 * L(x) = e + ((A s + B) s + C) s with A = 6/35, B = -3/5, C = 10/7. L is
 * increasing and grows at least 10/7 times as fast as ln x, so with mult
 * = 7 / (10 ln gamma), gamma = (1 + a) / (1 - a), a bucket [lo, hi] has
 * hi/lo <= gamma, and its harmonic mean 2 lo hi / (lo + hi) is within the
 * relative accuracy a of every value in it. L reads the double's bits and
 * does three multiplications and additions (the build turns off FMA
 * contraction), and mult comes from a series (agg.c), so bucket numbers
 * are the same on every machine: states are persisted and merged across
 * processes.
 *
 * Negative values go to a second store by -x; zeros (and the subnormal
 * magnitudes below 2^-1022) to a zero count. Counts are integers, so
 * merging is exact and the state is a function of the multiset of values
 * seen, except for collapsing: each store keeps keys within max_buckets
 * of its top (agg_params: 40 binary orders of magnitude, about 10^12),
 * the positive store folding its lowest keys into the lowest kept one,
 * the negative store its highest (the most negative values): the low
 * tail loses accuracy, never the high quantiles. The kept window hangs
 * from the store's extreme key, which only the contents decide, and a
 * fold commutes with adding and merging, so collapsing after every add
 * and merge gives the same bits in any order.
 *
 * The q-quantile is the value of rank floor(q (n - 1)) (0-based) in
 * ascending order; the sketch answers the representative of its bucket,
 * within the relative accuracy a of the true value (zero exactly).
 *
 * Encoding: varint flags (1: zeros, 2: negatives, 4: positives); then the
 * zero count; then each present store, negatives first: varint n, zigzag
 * first key, its count, then per further bucket varint(key gap - 1) and
 * its count. Keys ascend, counts are at least 1: canonical.
 *
 * Pure; a state is owned by whoever owns its table.
 */
#include "core/agg.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t *c;     /* counts, then (same block) the keys */
    int32_t *k;      /* n keys, ascending */
    uint32_t n, cap;
} store;

typedef struct {
    store pos, neg;  /* neg holds -x */
    uint64_t zero;
} qstate;

#define CA (6.0 / 35.0)
#define CB (-3.0 / 5.0)
#define CC (10.0 / 7.0)

static double log2_approx(double x)
{
    uint64_t b = f64_bits(x);
    double e = (double)((int)((b >> 52) & 0x7ff) - 1023);
    double s = (double)(b & ((UINT64_C(1) << 52) - 1)) * 0x1p-52;
    return ((CA * s + CB) * s + CC) * s + e;
}

/* x: a positive normal double. */
static int32_t key_of(double x, const agg_params *p)
{
    return (int32_t)ceil(log2_approx(x) * p->mult);
}

/* ---- stores ---- */

static void store_free(store *s)
{
    free(s->c);
    memset(s, 0, sizeof(*s));
}

/* Resizes to cap buckets (>= n), keeping the contents. */
static int store_resize(store *s, uint32_t cap)
{
    uint64_t *c = malloc((size_t)cap * (sizeof(uint64_t) + sizeof(int32_t)));
    if (!c)
        return -ENOMEM;
    int32_t *k = (int32_t *)(c + cap);
    if (s->n) {
        memcpy(c, s->c, s->n * sizeof(*c));
        memcpy(k, s->k, s->n * sizeof(*k));
    }
    free(s->c);
    s->c = c;
    s->k = k;
    s->cap = cap;
    return 0;
}

static uint32_t store_find(const store *s, int32_t key)
{
    uint32_t lo = 0, hi = s->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (s->k[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Folds the keys outside the window of max_buckets that hangs from the
 * top key (low: positive store) or the bottom key (negative store). */
static void store_fold(store *s, bool low, int32_t max_buckets)
{
    if (s->n == 0 || (int64_t)s->k[s->n - 1] - s->k[0] < max_buckets)
        return;
    if (low) {
        int32_t floor_k = s->k[s->n - 1] - max_buckets + 1;
        uint32_t j = store_find(s, floor_k + 1);   /* keys [0, j) fold into floor_k */
        uint64_t sum = 0;
        for (uint32_t i = 0; i < j; i++)
            sum += s->c[i];
        s->c[0] = sum;
        s->k[0] = floor_k;
        memmove(s->c + 1, s->c + j, (s->n - j) * sizeof(*s->c));
        memmove(s->k + 1, s->k + j, (s->n - j) * sizeof(*s->k));
        s->n = s->n - j + 1;
    } else {
        int32_t ceil_k = s->k[0] + max_buckets - 1;
        uint32_t i = store_find(s, ceil_k);   /* keys [i, n) fold into ceil_k */
        uint64_t sum = 0;
        for (uint32_t t = i; t < s->n; t++)
            sum += s->c[t];
        s->c[i] = sum;
        s->k[i] = ceil_k;
        s->n = i + 1;
    }
}

static int store_add(store *s, int32_t key, bool low, int32_t max_buckets)
{
    uint32_t at = store_find(s, key);
    if (at < s->n && s->k[at] == key) {
        s->c[at]++;
        return 0;
    }
    if (s->n == s->cap && store_resize(s, s->cap ? s->cap * 2 : 4) < 0)
        return -ENOMEM;
    memmove(s->c + at + 1, s->c + at, (s->n - at) * sizeof(*s->c));
    memmove(s->k + at + 1, s->k + at, (s->n - at) * sizeof(*s->k));
    s->c[at] = 1;
    s->k[at] = key;
    s->n++;
    store_fold(s, low, max_buckets);
    return 0;
}

static int store_merge(store *d, const store *s, bool low, int32_t max_buckets)
{
    if (s->n == 0)
        return 0;
    uint32_t n = 0;
    for (uint32_t i = 0, j = 0; i < d->n || j < s->n; n++) {
        bool ti = j == s->n || (i < d->n && d->k[i] <= s->k[j]);
        bool tj = i == d->n || (j < s->n && s->k[j] <= d->k[i]);
        i += ti;
        j += tj;
    }
    if (n > d->cap && store_resize(d, n > 2 * d->cap ? n : 2 * d->cap) < 0)
        return -ENOMEM;   /* doubling: a cell many cells merge into grows O(log n) times */
    /* merge from the back, in place: slots past the old end are free */
    uint32_t i = d->n, j = s->n, k = n;
    while (j > 0) {
        int32_t y = s->k[j - 1];
        if (i > 0 && d->k[i - 1] > y) {
            k--;
            i--;
            d->k[k] = d->k[i];
            d->c[k] = d->c[i];
        } else {
            uint64_t c = s->c[j - 1];
            if (i > 0 && d->k[i - 1] == y)
                c += d->c[--i];
            k--;
            d->k[k] = y;
            d->c[k] = c;
            j--;
        }
    }
    d->n = n;
    store_fold(d, low, max_buckets);
    return 0;
}

static uint64_t store_total(const store *s)
{
    uint64_t t = 0;
    for (uint32_t i = 0; i < s->n; i++)
        t += s->c[i];
    return t;
}

static void store_encode(const store *s, bytes_w *w)
{
    bw_varint(w, s->n);
    for (uint32_t i = 0; i < s->n; i++) {
        if (i == 0)
            bw_svarint(w, s->k[0]);
        else
            bw_varint(w, (uint64_t)((int64_t)s->k[i] - s->k[i - 1] - 1));
        bw_varint(w, s->c[i]);
    }
}

/* 0 or -ENOMEM; r->bad when malformed or not canonical. */
static int store_decode(store *s, const agg_params *p, bytes_r *r)
{
    uint64_t n = br_varint(r);
    /* a bucket takes two bytes at least; a canonical store is never empty
     * here (its flag bit says so) nor wider than max_buckets */
    if (r->bad || n == 0 || n > (uint64_t)p->max_buckets || n * 2 > br_left(r)) {
        r->bad = true;
        return 0;
    }
    if (store_resize(s, (uint32_t)n) < 0)
        return -ENOMEM;
    int64_t lowest = key_of(DBL_MIN, p), highest = key_of(DBL_MAX, p), key = 0;
    for (uint64_t i = 0; i < n && !r->bad; i++) {
        if (i == 0) {
            key = br_svarint(r);
        } else {
            uint64_t gap = br_varint(r);
            if (gap >= (uint64_t)p->max_buckets)
                r->bad = true;   /* and not added: it could overflow the key */
            else
                key += (int64_t)gap + 1;
        }
        uint64_t c = br_varint(r);
        if (c == 0 || key < lowest || key > highest)
            r->bad = true;
        s->k[i] = (int32_t)(r->bad ? 0 : key);
        s->c[i] = c;
    }
    s->n = (uint32_t)n;
    if (!r->bad && (int64_t)s->k[n - 1] - s->k[0] >= p->max_buckets)
        r->bad = true;   /* should have been folded */
    return 0;
}

/* ---- the aggregator ---- */

static void q_init(void *st, const agg_params *p)
{
    memset(st, 0, sizeof(qstate));
}

static void q_destroy(void *st)
{
    qstate *q = st;
    store_free(&q->pos);
    store_free(&q->neg);
    q->zero = 0;
}

static size_t q_heap_bytes(const void *st)
{
    const qstate *q = st;
    return ((size_t)q->pos.cap + q->neg.cap) * (sizeof(uint64_t) + sizeof(int32_t));
}

static int q_add(void *st, const agg_params *p, const field_value *fv)
{
    qstate *q = st;
    if (fv->kind != FV_NUMBER || !isfinite(fv->num))
        return 0;
    double x = fv->num;
    if (fabs(x) < DBL_MIN) {
        q->zero++;
        return 0;
    }
    if (x > 0)
        return store_add(&q->pos, key_of(x, p), true, p->max_buckets);
    return store_add(&q->neg, key_of(-x, p), false, p->max_buckets);
}

static int q_merge(void *dst, const void *src, const agg_params *p)
{
    qstate *d = dst;
    const qstate *s = src;
    if (store_merge(&d->pos, &s->pos, true, p->max_buckets) < 0 ||
        store_merge(&d->neg, &s->neg, false, p->max_buckets) < 0)
        return -ENOMEM;
    d->zero += s->zero;
    return 0;
}

static void q_encode(const void *st, bytes_w *w)
{
    const qstate *q = st;
    bw_varint(w, (q->zero ? 1u : 0u) | (q->neg.n ? 2u : 0u) | (q->pos.n ? 4u : 0u));
    if (q->zero)
        bw_varint(w, q->zero);
    if (q->neg.n)
        store_encode(&q->neg, w);
    if (q->pos.n)
        store_encode(&q->pos, w);
}

static int q_decode(void *st, const agg_params *p, bytes_r *r)
{
    qstate *q = st;
    q_init(q, p);
    uint64_t flags = br_varint(r);
    if (flags > 7)
        r->bad = true;
    if (!r->bad && (flags & 1) && (q->zero = br_varint(r)) == 0)
        r->bad = true;
    int rc = 0;
    if (!r->bad && (flags & 2))
        rc = store_decode(&q->neg, p, r);
    if (!rc && !r->bad && (flags & 4))
        rc = store_decode(&q->pos, p, r);
    if (rc < 0 || r->bad)
        q_destroy(q);
    return rc;
}

/* Where the q-quantile lies: sign (-1, 0, 1) and key; false when empty. */
static bool locate(const qstate *s, double q, int *sign, int32_t *key)
{
    uint64_t n = s->zero + store_total(&s->pos) + store_total(&s->neg);
    if (n == 0)
        return false;
    double rank = q * (double)(n - 1);
    uint64_t cum = 0;
    for (uint32_t i = s->neg.n; i-- > 0;) {   /* most negative first */
        cum += s->neg.c[i];
        if ((double)cum > rank) {
            *sign = -1;
            *key = s->neg.k[i];
            return true;
        }
    }
    cum += s->zero;
    if ((double)cum > rank) {
        *sign = 0;
        *key = 0;
        return true;
    }
    for (uint32_t i = 0; i + 1 < s->pos.n; i++) {
        cum += s->pos.c[i];
        if ((double)cum > rank) {
            *sign = 1;
            *key = s->pos.k[i];
            return true;
        }
    }
    /* rank <= n - 1: the last value holds it (also when rounding a rank
     * beyond 2^53 kept every comparison above false) */
    if (s->pos.n) {
        *sign = 1;
        *key = s->pos.k[s->pos.n - 1];
    } else {
        *sign = s->zero ? 0 : -1;
        *key = s->zero ? 0 : s->neg.k[0];
    }
    return true;
}

/* The largest positive normal double whose key is at most k (DBL_MIN when
 * there is none): bisection over the bit patterns, which order positive
 * doubles, so bucket edges are exact whatever libm does. */
static double bucket_top(int32_t k, const agg_params *p)
{
    uint64_t lo = f64_bits(DBL_MIN), hi = f64_bits(DBL_MAX);
    if (key_of(DBL_MIN, p) > k)
        return DBL_MIN;
    if (key_of(DBL_MAX, p) <= k)
        return DBL_MAX;
    while (hi - lo > 1) {   /* key(lo) <= k < key(hi) */
        uint64_t mid = lo + (hi - lo) / 2;
        if (key_of(f64_of_bits(mid), p) <= k)
            lo = mid;
        else
            hi = mid;
    }
    return f64_of_bits(lo);
}

/* The value of bucket k: the harmonic mean of its edges. */
static double bucket_value(int32_t k, const agg_params *p)
{
    double lo = bucket_top(k - 1, p), hi = bucket_top(k, p);
    return 2 / (1 / lo + 1 / hi);
}

static agg_value quantile(const qstate *s, const agg_params *p, double q)
{
    int sign;
    int32_t key;
    if (!locate(s, q, &sign, &key))
        return (agg_value){.kind = AV_NULL};
    double v = sign == 0 ? 0 : sign * bucket_value(key, p);
    return (agg_value){.kind = AV_NUM, .d = v};
}

static agg_value q_value(const void *st, const agg_params *p, const agg_render_ctx *c)
{
    return quantile(st, p, c->q[c->pick]);
}

/* By bucket, which orders like the bucket's value, without computing it. */
static int q_compare(const void *a, const void *b, const agg_params *p, const agg_render_ctx *c)
{
    int sa, sb;
    int32_t ka, kb;
    locate(a, c->q[c->pick], &sa, &ka);
    locate(b, c->q[c->pick], &sb, &kb);
    if (sa != sb)
        return (sa > sb) - (sa < sb);
    int by_key = (ka > kb) - (ka < kb);
    return sa < 0 ? -by_key : by_key;
}

static void q_render(const void *st, const agg_params *p, const agg_render_ctx *c, jbuf *b)
{
    jb_lit(b, "{");
    for (size_t i = 0; i < c->nq; i++) {
        if (i)
            jb_lit(b, ",");
        jb_cstr(b, c->names[i]);
        jb_lit(b, ":");
        agg_value v = quantile(st, p, c->q[i]);
        if (v.kind == AV_NULL)
            jb_lit(b, "null");
        else
            jb_num(b, v.d);
    }
    jb_lit(b, "}");
}

const agg_ops agg_quantiles = {
    .type = MT_QUANTILES,
    .name = "quantiles",
    .needs_field = true,
    .size = sizeof(qstate),
    .init = q_init,
    .add = q_add,
    .merge = q_merge,
    .destroy = q_destroy,
    .heap_bytes = q_heap_bytes,
    .encode = q_encode,
    .decode = q_decode,
    .value = q_value,
    .compare = q_compare,
    .render = q_render,
};
