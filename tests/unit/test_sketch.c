/* Unit tests: the sketch aggregators, distinct (core/agg_distinct.c) and
 * quantiles (core/agg_quantiles.c).
 * - merge order independence: random splits of one stream, merged in
 *   random trees, give the same encoded bytes as the whole stream;
 * - distinct: exact up to the threshold (1024, or m/8), estimates against
 *   exact counts from 10^3 to 10^6 values (10^7 in bench/), and the
 *   measured error printed;
 * - quantiles: every quantile within the relative accuracy of the true
 *   one on uniform, exponential, Pareto and mixed-sign data with zeros,
 *   at several accuracies, and collapsing keeping the high quantiles;
 * - encode/decode round trips, every truncation and malformed encodings
 *   detected; heap bytes; rendering with the query's quantiles. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/agg.h"
#include "tests/unit/check.h"
#include "tests/unit/xorshift.h"


#define ROW_WORDS 16

/* Slot 0: distinct of the given precision; slot 1: quantiles of the given
 * accuracy (0: the defaults). */
static agg_layout *sketch_layout(int precision, double accuracy)
{
    metric_def d[2] = {
        {.type = MT_DISTINCT, .field_idx = -1, .precision = precision},
        {.type = MT_QUANTILES, .field_idx = -1, .accuracy = accuracy},
    };
    agg_layout *l = agg_layout_new(d, NULL, 2);
    CHECK(l && l->size <= ROW_WORDS * 8);
    return l;
}

static void add_text(const agg_layout *l, void *row, const char *s, size_t len)
{
    field_value fv = {.kind = FV_STRING, .str = s, .len = len};
    CHECK_INT(l->slot[0].ops->add(agg_state(l, row, 0), &l->slot[0].params, &fv), 0);
}

/* The distinct value of user number u (as text, like a JSON id). */
static void add_user(const agg_layout *l, void *row, uint64_t u)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "user-%llu", (unsigned long long)u);
    add_text(l, row, buf, (size_t)n);
}

static void add_num(const agg_layout *l, void *row, double v)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%.17g", v);
    field_value fv = {.kind = FV_NUMBER, .str = buf, .len = (size_t)n, .num = v};
    CHECK_INT(l->slot[1].ops->add(agg_state(l, row, 1), &l->slot[1].params, &fv), 0);
}

static int64_t distinct_of(const agg_layout *l, const void *row)
{
    agg_value v = agg_read(l, 0, row, &agg_render_default);
    CHECK_INT(v.kind, AV_INT);
    return v.i;
}

static double quantile_of(const agg_layout *l, const void *row, double q)
{
    agg_render_ctx c = {.q = &q, .names = NULL, .nq = 1, .pick = 0};
    agg_value v = agg_read(l, 1, row, &c);
    return v.kind == AV_NUM ? v.d : NAN;
}

static void encode_row(const agg_layout *l, const void *row, bytes_w *w)
{
    w->len = 0;
    agg_row_encode(l, row, w);
    CHECK(!w->oom);
}

/* ---- distinct ---- */

static void test_distinct_exact(void)
{
    const int precisions[] = {10, 14, 18};
    for (size_t pi = 0; pi < 3; pi++) {
        agg_layout *l = sketch_layout(precisions[pi], 0);
        size_t m = (size_t)1 << precisions[pi];
        int64_t t = m / 8 < 1024 ? 1024 : (int64_t)(m / 8);
        uint64_t row[ROW_WORDS];
        agg_row_init(l, row);
        CHECK_INT(distinct_of(l, row), 0);
        field_value missing = {.kind = FV_MISSING}, null = {.kind = FV_NULL};
        l->slot[0].ops->add(agg_state(l, row, 0), &l->slot[0].params, &missing);
        l->slot[0].ops->add(agg_state(l, row, 0), &l->slot[0].params, &null);
        CHECK_INT(distinct_of(l, row), 0);
        /* exact at every count up to the threshold, whatever the repeats */
        for (int64_t u = 0; u < t; u++) {
            add_user(l, row, (uint64_t)u);
            add_user(l, row, (uint64_t)(u / 2));   /* a value seen before */
            if (u % 97 == 0 || u == t - 1)
                CHECK_INT(distinct_of(l, row), u + 1);
        }
        /* "1" the string and 1 the number have the same text: one value */
        add_text(l, row, "1", 1);
        field_value one = {.kind = FV_NUMBER, .str = "1", .len = 1, .num = 1};
        l->slot[0].ops->add(agg_state(l, row, 0), &l->slot[0].params, &one);
        /* one past the threshold: the registers, an estimate of at least t+1 */
        int64_t est = distinct_of(l, row);
        CHECK(est >= t + 1);
        CHECK(fabs((double)est - (double)(t + 1)) <= 0.05 * (double)(t + 1));
        /* the heap holds the registers now */
        size_t heap = l->slot[0].ops->heap_bytes(agg_cstate(l, row, 0));
        CHECK(heap >= m && heap < m + 512);
        agg_row_destroy(l, row);
        free(l);
    }
}

/* |estimate / n - 1| for n distinct values added to one state, and to 8
 * states merged. Checked against 4 standard errors (1.04 / sqrt(m)); the
 * measured errors are printed for the README. */
static void test_distinct_error(void)
{
    const int precisions[] = {12, 14, 16};
    const uint64_t sizes[] = {1000, 3000, 10000, 100000, 1000000, 10000000};
    for (size_t pi = 0; pi < 3; pi++) {
        agg_layout *l = sketch_layout(precisions[pi], 0);
        double se = 1.04 / sqrt((double)((size_t)1 << precisions[pi]));
        for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
            uint64_t n = sizes[si];
            if (precisions[pi] != 14 && n > 100000)
                continue;   /* keep the test fast: 10^6 and 10^7 at the default precision */
            double sq = 0;
            int trials = n <= 10000 ? 8 : n <= 100000 ? 2 : 1;
            double worst = 0;
            for (int tr = 0; tr < trials; tr++) {
                uint64_t row[ROW_WORDS];
                agg_row_init(l, row);
                uint64_t base = next_rand();
                for (uint64_t u = 0; u < n; u++)
                    add_user(l, row, base + u);
                double err = (double)distinct_of(l, row) / (double)n - 1;
                sq += err * err;
                if (fabs(err) > fabs(worst))
                    worst = err;
                agg_row_destroy(l, row);
            }
            double rms = sqrt(sq / trials);
            printf("distinct p=%d n=%-8llu rms error %.4f%% worst %+.4f%% (%d trials; "
                   "standard error %.3f%%)\n",
                   precisions[pi], (unsigned long long)n, 100 * rms, 100 * worst, trials,
                   100 * se);
            CHECK(fabs(worst) <= 4 * se);
        }
        free(l);
    }
}

/* ---- quantiles ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef enum { D_UNIFORM, D_EXPONENTIAL, D_PARETO, D_MIXED, D_N } dist;
static const char *const dist_names[D_N] = {"uniform", "exponential", "pareto", "mixed"};

static double draw(dist d)
{
    switch (d) {
    case D_UNIFORM: return 1000 * unit_rand();
    case D_EXPONENTIAL: return -log(1 - unit_rand()) * 50;
    case D_PARETO: return 1 / pow(1 - unit_rand(), 1 / 1.2);   /* alpha 1.2: heavy tail */
    default: {
        /* zeros, negatives and positives across 12 orders of magnitude */
        uint64_t r = next_rand() % 10;
        double mag = pow(10, 12 * unit_rand() - 6);
        return r < 2 ? 0.0 : r < 5 ? -mag : mag;
    }
    }
}

/* Every percentile (and 0.999, 0.9999) of n values within the accuracy of
 * the true one: the value of rank floor(q (n - 1)) in ascending order. */
static void test_quantiles_accuracy(void)
{
    const double accs[] = {0.01, 0.001, 0.05};
    enum { N = 30000 };
    double *vals = malloc(N * sizeof(double));
    for (size_t ai = 0; ai < 3; ai++) {
        agg_layout *l = sketch_layout(0, accs[ai]);
        for (int d = 0; d < D_N; d++) {
            uint64_t row[ROW_WORDS];
            agg_row_init(l, row);
            for (int i = 0; i < N; i++) {
                vals[i] = draw((dist)d);
                add_num(l, row, vals[i]);
            }
            qsort(vals, N, sizeof(double), cmp_double);
            double worst = 0;
            for (int k = 0; k <= 101; k++) {
                double q = k <= 100 ? k / 100.0 : 0.999;
                if (k == 101 && d == D_PARETO)
                    q = 0.9999;
                double truth = vals[(size_t)(q * (N - 1))];
                double est = quantile_of(l, row, q);
                double err = truth == 0 ? fabs(est) : fabs(est - truth) / fabs(truth);
                if (err > worst)
                    worst = err;
                if (!(err <= accs[ai] * (1 + 1e-9)))
                    fprintf(stderr, "%s accuracy %g q %g: %.17g, true %.17g\n", dist_names[d],
                            accs[ai], q, est, truth);
                CHECK(err <= accs[ai] * (1 + 1e-9));
            }
            size_t heap = l->slot[1].ops->heap_bytes(agg_cstate(l, row, 1));
            printf("quantiles accuracy %g %-11s worst relative error %.5f%%, %zu heap bytes\n",
                   accs[ai], dist_names[d], 100 * worst, heap);
            agg_row_destroy(l, row);
        }
        free(l);
    }
    free(vals);
}

/* Values over more orders of magnitude than the store keeps: the lowest
 * fold into one bucket, the high quantiles keep their accuracy. */
static void test_quantiles_collapse(void)
{
    agg_layout *l = sketch_layout(0, 0.05);   /* mult ~ 7, 40 * mult buckets: 2^40 */
    int32_t maxb = l->slot[1].params.max_buckets;
    CHECK(maxb > 200 && maxb < 400);
    uint64_t row[ROW_WORDS];
    agg_row_init(l, row);
    enum { N = 20000 };
    static double vals[N];
    for (int i = 0; i < N; i++) {
        vals[i] = pow(2, 200 * unit_rand() - 100) * (i % 3 == 0 ? -1 : 1);
        add_num(l, row, vals[i]);
    }
    qsort(vals, N, sizeof(double), cmp_double);
    /* top 2^40 of the positives and the negatives closest to zero keep
     * their accuracy: q >= 0.9 is above 2^60, and the positives start at
     * 1/3 of the ranks */
    for (double q = 0.9; q <= 1.0; q += 0.01) {
        double truth = vals[(size_t)(q * (N - 1))];
        CHECK(fabs(quantile_of(l, row, q) - truth) <= 0.05 * fabs(truth) * (1 + 1e-9));
    }
    bytes_w w = {0};
    encode_row(l, row, &w);
    /* at most maxb buckets per sign, a few bytes each */
    CHECK(w.len < (size_t)maxb * 2 * 4);
    bw_free(&w);
    agg_row_destroy(l, row);
    free(l);
}

/* ---- both: merge order, encodings ---- */

/* One stream of n events (users from a pool of `users`, numbers of dist
 * d) split at random into parts merged in a random tree, against the
 * whole stream added to one row: identical bytes. */
static void merge_order_case(const agg_layout *l, size_t n, uint64_t users, dist d)
{
    enum { PARTS = 12 };
    uint64_t *us = malloc(n * sizeof(*us));
    double *vs = malloc(n * sizeof(*vs));
    uint64_t whole[ROW_WORDS];
    agg_row_init(l, whole);
    for (size_t i = 0; i < n; i++) {
        us[i] = next_rand() % users;
        vs[i] = draw(d);
        add_user(l, whole, us[i]);
        add_num(l, whole, vs[i]);
    }
    bytes_w ew = {0}, pw = {0};
    encode_row(l, whole, &ew);
    for (int trial = 0; trial < 4; trial++) {
        uint64_t parts[PARTS][ROW_WORDS];
        for (int p = 0; p < PARTS; p++)
            agg_row_init(l, parts[p]);
        /* skewed splits: some parts small (explicit), some large */
        for (size_t i = 0; i < n; i++) {
            size_t j = (i * 7919 + (size_t)trial * 104729) % n;   /* another order */
            int p = (int)(next_rand() % (next_rand() % 2 ? PARTS : 2));
            add_user(l, parts[p], us[j]);
            add_num(l, parts[p], vs[j]);
        }
        int alive[PARTS], k = PARTS;
        for (int p = 0; p < PARTS; p++)
            alive[p] = p;
        while (k > 1) {
            int i = (int)(next_rand() % (uint64_t)k), j = (int)(next_rand() % (uint64_t)(k - 1));
            if (j >= i)
                j++;
            CHECK_INT(agg_row_merge(l, parts[alive[i]], parts[alive[j]]), 0);
            agg_row_destroy(l, parts[alive[j]]);
            alive[j] = alive[--k];
        }
        encode_row(l, parts[alive[0]], &pw);
        CHECK_MEM(pw.p, pw.len, ew.p, ew.len);
        CHECK_INT(distinct_of(l, parts[alive[0]]), distinct_of(l, whole));
        agg_row_destroy(l, parts[alive[0]]);
    }
    bw_free(&pw);
    bw_free(&ew);
    agg_row_destroy(l, whole);
    free(us);
    free(vs);
}

static void test_merge_order(void)
{
    agg_layout *l = sketch_layout(12, 0.01);    /* threshold 1024, 4096 registers */
    merge_order_case(l, 3000, 600, D_EXPONENTIAL);      /* stays explicit */
    merge_order_case(l, 5000, 1500, D_MIXED);           /* parts explicit, whole dense */
    merge_order_case(l, 16000, 12000, D_PARETO);        /* dense everywhere */
    free(l);
    l = sketch_layout(10, 0.3);   /* few buckets: collapsing on almost every merge */
    merge_order_case(l, 8000, 3000, D_MIXED);
    free(l);
}

/* Round trip and re-encoding of a state; every prefix of its encoding is
 * detected as truncated. */
static void round_trip(const agg_layout *l, const void *row)
{
    bytes_w w = {0}, w2 = {0};
    encode_row(l, row, &w);
    uint64_t back[ROW_WORDS];
    bytes_r r = br_init(w.p, w.len);
    CHECK_INT(agg_row_decode(l, back, &r), 0);
    CHECK(!r.bad);
    CHECK_INT(br_left(&r), 0);
    encode_row(l, back, &w2);
    CHECK_MEM(w2.p, w2.len, w.p, w.len);
    CHECK_INT(distinct_of(l, back), distinct_of(l, row));
    double qb = quantile_of(l, back, 0.99), qr = quantile_of(l, row, 0.99);
    CHECK(memcmp(&qb, &qr, sizeof(qb)) == 0);   /* NaN (empty) too */
    agg_row_destroy(l, back);
    for (size_t cut = 0; cut < w.len; cut++) {
        r = br_init(w.p, cut);
        CHECK_INT(agg_row_decode(l, back, &r), 0);
        CHECK(r.bad);
        agg_row_destroy(l, back);   /* decode leaves an initialized state */
    }
    bw_free(&w);
    bw_free(&w2);
}

static void test_encoding(void)
{
    agg_layout *l = sketch_layout(10, 0.02);
    uint64_t row[ROW_WORDS];
    agg_row_init(l, row);
    round_trip(l, row);   /* empty: one byte each */
    bytes_w w = {0};
    encode_row(l, row, &w);
    CHECK_INT(w.len, 2);
    add_user(l, row, 1);
    add_num(l, row, 0.0);
    round_trip(l, row);
    encode_row(l, row, &w);
    CHECK_INT(w.len, 1 + 8 + 2);   /* a hash; flags and the zero count */
    for (int i = 0; i < 700; i++) {
        add_user(l, row, next_rand() % 800);
        add_num(l, row, draw(D_MIXED));
    }
    round_trip(l, row);
    for (int i = 0; i < 3000; i++)
        add_user(l, row, next_rand());   /* dense: 1024 registers */
    round_trip(l, row);
    encode_row(l, row, &w);
    printf("encoding: dense distinct (p=10) and 700 mixed values in %zu bytes\n", w.len);

    /* malformed: each detected, leaving an empty state */
    const agg_params *dp = &l->slot[0].params, *qp = &l->slot[1].params;
    const agg_ops *d = l->slot[0].ops, *q = l->slot[1].ops;
    uint64_t st[ROW_WORDS];
    struct {
        const char *what;
        int slot;
        unsigned char b[24];
        size_t len;
    } bad[] = {
        {"distinct: odd header above 1", 0, {3}, 1},
        {"distinct: hashes not ascending", 0, {4, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0}, 17},
        {"distinct: duplicate hash", 0, {4, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0}, 17},
        {"distinct: more hashes than the threshold", 0, {0x82, 0x10}, 2},
        {"quantiles: unknown flag", 1, {8}, 1},
        {"quantiles: zero count of 0", 1, {1, 0}, 2},
        {"quantiles: empty store", 1, {4, 0}, 2},
        {"quantiles: bucket count of 0", 1, {4, 1, 2, 0}, 4},
        {"quantiles: key out of range", 1, {4, 1, 0xfe, 0xff, 0xff, 0x0f, 1}, 7},
        {"quantiles: wider than max_buckets", 1, {4, 2, 0, 1, 0xff, 0x7f, 1}, 7},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        bytes_r r = br_init(bad[i].b, bad[i].len);
        const agg_ops *ops = bad[i].slot ? q : d;
        CHECK_INT(ops->decode(st, bad[i].slot ? qp : dp, &r), 0);
        if (!r.bad)
            fprintf(stderr, "not detected: %s\n", bad[i].what);
        CHECK(r.bad);
        CHECK_INT(ops->heap_bytes(st), 0);
        ops->destroy(st);
    }
    /* a register above 64 - precision + 1 */
    bytes_w dw = {0};
    bw_varint(&dw, 1);
    for (int i = 0; i < 1024; i++)
        bw_put(&dw, i == 5 ? "\x38" : "\x01", 1);
    bytes_r r = br_init(dw.p, dw.len);
    d->decode(st, dp, &r);
    CHECK(r.bad);
    d->destroy(st);
    bw_free(&dw);
    bw_free(&w);
    agg_row_destroy(l, row);
    free(l);
}

static void test_render(void)
{
    agg_layout *l = sketch_layout(0, 0);
    CHECK_INT(l->slot[0].params.precision, 14);
    CHECK_DBL(l->slot[1].params.accuracy, 0.01);
    uint64_t row[ROW_WORDS];
    agg_row_init(l, row);
    jbuf b;
    jb_init(&b);
    agg_render(l, 1, row, &agg_render_default, &b);
    agg_render(l, 0, row, &agg_render_default, &b);
    CHECK_MEM(b.p, b.len, "{\"p50\":null,\"p90\":null,\"p99\":null}0", 35);
    for (int i = 1; i <= 100; i++) {
        add_num(l, row, i);
        add_user(l, row, (uint64_t)i % 7);
    }
    const double qs[] = {0, 0.5, 1};
    const char *const names[] = {"p0", "p50", "p100"};
    agg_render_ctx c = {.q = qs, .names = names, .nq = 3, .pick = 2};
    jb_free(&b);
    jb_init(&b);
    agg_render(l, 1, row, &c, &b);
    agg_render(l, 0, row, &c, &b);
    /* 1, 50 and 100 within 1%: the buckets' harmonic means */
    double v0 = 0, v50 = 0, v100 = 0;   /* zero when the text does not parse */
    int got = 0;
    CHECK(b.p && sscanf(b.p, "{\"p0\":%lf,\"p50\":%lf,\"p100\":%lf}%d", &v0, &v50, &v100, &got) == 4);
    CHECK(fabs(v0 - 1) <= 0.01 && fabs(v50 - 50) <= 0.5 && fabs(v100 - 100) <= 1);
    CHECK_INT(got, 7);
    /* compare reads the picked quantile */
    uint64_t other[ROW_WORDS];
    agg_row_init(l, other);
    add_num(l, other, 1000);
    bool na, nb;
    CHECK_INT(agg_compare(l, 1, row, other, &c, &na, &nb), -1);
    c.pick = 0;   /* p0: 1 against 1000 */
    CHECK_INT(agg_compare(l, 1, other, row, &c, &na, &nb), 1);
    add_num(l, other, -5);
    CHECK_INT(agg_compare(l, 1, other, row, &c, &na, &nb), -1);   /* -5 < 1 */
    jb_free(&b);
    agg_row_destroy(l, row);
    agg_row_destroy(l, other);
    free(l);
}

int main(void)
{
    test_distinct_exact();
    test_distinct_error();
    test_quantiles_accuracy();
    test_quantiles_collapse();
    test_merge_order();
    test_encoding();
    test_render();
    CHECK_DONE();
}
