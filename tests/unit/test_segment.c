/* Unit tests: segments (core/segment.h).
 * - round trip: every row, bucket, dimension value and state byte-identical
 *   to the source table; rows in answer order (null first, bytewise);
 * - roll-ups equal to aggregating the events by hand (count, sum, min, max,
 *   avg); the levels of minute/hour/day/... views on hour/day/month
 *   partitions; several tables merged give the same bytes as one;
 * - the body as the format in segment.h describes it, byte for byte;
 * - dictionaries sorted with null first, lookups; time range to row range
 *   at every edge; the level chooser against answers computed from level 0;
 * - every corruption detected: every bit flipped, every truncation, damage
 *   behind a valid checksum (dictionary order, ids, row order, trailing
 *   bytes, ...), another version refused with its own code; a state that
 *   owns memory freed on every error path (run under ASan);
 * - bytes per row of a count-only and a 5-metric view (printed). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zstd.h>

#include "core/checksum.h"
#include "core/segment.h"
#include "core/vtable.h"
#include "tests/unit/aggtest.h"
#include "tests/unit/check.h"
#include "tests/unit/xorshift.h"

#define INFO(s) seg_info_of(s)


/* ---- dimension values ---- */

typedef struct {
    const char *s;
    uint32_t len;
    bool null;
} val;

#define V(str) {str, sizeof(str) - 1, false}
static const val pool0[] = {{NULL, 0, true}, V(""), V("\0"), V("a"), V("a\0"), V("ab"), V("b"),
                            V("\xff"), V("de"), V("fr")};
static const val pool1[] = {{NULL, 0, true}, V("/"), V("/a"), V("/a/b"), V("/b"), V("x")};
#define NPOOL0 (sizeof(pool0) / sizeof(pool0[0]))
#define NPOOL1 (sizeof(pool1) / sizeof(pool1[0]))

/* The order of query answers (serving/query_run.c cmp_dimval). */
static int cmp_dim(const char *a, size_t al, bool an, const char *b, size_t bl, bool bn)
{
    if (an || bn)
        return (int)bn - (int)an;
    size_t n = al < bl ? al : bl;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c;
    return (al > bl) - (al < bl);
}

static int cmp_dimval(dimval a, dimval b)
{
    return cmp_dim(a.s, a.len, a.null, b.s, b.len, b.null);
}

static dimval dv(val v)
{
    return (dimval){.s = v.s, .len = v.len, .null = v.null};
}

/* ---- events and the table they fill ---- */

typedef struct {
    int64_t bucket;   /* at the view's granularity */
    int d0, d1;       /* indexes into pool0, pool1 */
    int64_t v;
} event;

#define NMETRICS5 5
static agg_layout *five;   /* count, sum, min, max, avg */

static void apply(vtable *t, const event *e)
{
    const agg_layout *l = vtable_layout(t);
    dimval d[2] = {dv(pool0[e->d0]), dv(pool1[e->d1])};
    void *row = vtable_upsert(t, e->bucket, d);
    CHECK(row != NULL);
    if (!row)
        return;
    for (size_t m = 0; m < l->n; m++)
        row_add(l, row, m, (double)e->v);
}

static event *random_events(size_t n, int64_t ps, int64_t pe, gran_t g)
{
    event *ev = malloc(n * sizeof(*ev));
    for (size_t i = 0; i < n; i++) {
        int64_t ts = ps + (int64_t)(next_rand() % (uint64_t)(pe - ps));
        ev[i] = (event){.bucket = gran_floor(g, ts), .d0 = (int)(next_rand() % NPOOL0),
                        .d1 = (int)(next_rand() % NPOOL1),
                        .v = (int64_t)(next_rand() % 2001) - 1000};
    }
    return ev;
}

static vtable *table_of(const event *ev, size_t n, const agg_layout *l)
{
    vtable *t = vtable_new(2, l);
    for (size_t i = 0; i < n; i++)
        apply(t, &ev[i]);
    return t;
}

static segment *build_decode(const vtable *t, int64_t ps, int64_t pe, gran_t g, seg_blob *blob)
{
    seg_blob local = {0};
    seg_blob *b = blob ? blob : &local;
    int r = seg_build(t, ps, pe, g, b);
    CHECK_INT(r, 0);
    segment *s = NULL;
    if (r == 0) {
        r = seg_decode(b->p, b->len, vtable_layout(t), vtable_ndims(t), &s);
        CHECK_INT(r, 0);
    }
    seg_blob_free(&local);
    return s;
}

static dimval row_dim(const segment *s, size_t level, size_t row, size_t d)
{
    return seg_dict_value(s, d, seg_row_id(s, level, row, d));
}

/* ---- round trip ---- */

static bool same_states(const agg_layout *l, const void *a, const void *b)
{
    bytes_w wa = {0}, wb = {0};
    agg_row_encode(l, a, &wa);
    agg_row_encode(l, b, &wb);
    /* states that own memory hold pointers: compare their encodings only */
    bool same = wa.len == wb.len && memcmp(wa.p, wb.p, wa.len) == 0 &&
                (l->destroy || memcmp(a, b, l->size) == 0);
    bw_free(&wa);
    bw_free(&wb);
    return same;
}

typedef struct {
    const segment *s;
    vtable *t;
    size_t seen;
    int bad;
} rt_ctx;

/* Every segment row of level 0 is a table row with the same states, every
 * row in strictly ascending (bucket, dims) order. */
static void check_round_trip(const segment *s, vtable *t)
{
    const agg_layout *l = seg_layout(s);
    size_t n = INFO(s)->nrows[0], ndims = INFO(s)->ndims;
    CHECK_INT(n, vtable_rows(t));
    size_t rows_before = vtable_rows(t);
    int bad_states = 0, bad_order = 0;
    for (size_t i = 0; i < n; i++) {
        dimval d[8];
        for (size_t k = 0; k < ndims; k++)
            d[k] = row_dim(s, 0, i, k);
        int64_t b = seg_row_bucket(s, 0, i);
        void *trow = vtable_upsert(t, b, d);   /* finds it: no row may be added */
        if (!trow || !same_states(l, trow, seg_row_states(s, 0, i)))
            bad_states++;
        if (i > 0) {
            int64_t pb = seg_row_bucket(s, 0, i - 1);
            int c = pb < b ? -1 : pb > b ? 1 : 0;
            for (size_t k = 0; k < ndims && c == 0; k++)
                c = cmp_dimval(row_dim(s, 0, i - 1, k), d[k]);
            bad_order += c >= 0;
        }
    }
    CHECK_INT(vtable_rows(t), rows_before);
    CHECK_INT(bad_states, 0);
    CHECK_INT(bad_order, 0);
}

/* ---- roll-ups by hand ---- */

typedef struct {
    int64_t bucket;
    int d0, d1;
    int64_t count, sum, min, max;
} agg_row;

static int cmp_key(int64_t ba, int a0, int a1, int64_t bb, int b0, int b1)
{
    if (ba != bb)
        return ba < bb ? -1 : 1;
    int c = cmp_dim(pool0[a0].s, pool0[a0].len, pool0[a0].null, pool0[b0].s, pool0[b0].len,
                    pool0[b0].null);
    if (c)
        return c;
    return cmp_dim(pool1[a1].s, pool1[a1].len, pool1[a1].null, pool1[b1].s, pool1[b1].len,
                   pool1[b1].null);
}

static int cmp_agg(const void *pa, const void *pb)
{
    const agg_row *a = pa, *b = pb;
    return cmp_key(a->bucket, a->d0, a->d1, b->bucket, b->d0, b->d1);
}

/* The events aggregated by (the unit's bucket, dims), in answer order. */
static agg_row *aggregate(const event *ev, size_t n, gran_t unit, int64_t ps, size_t *nout)
{
    agg_row *a = malloc(n * sizeof(*a));
    for (size_t i = 0; i < n; i++)
        a[i] = (agg_row){.bucket = unit == GRAN_ALL ? ps : gran_floor(unit, ev[i].bucket),
                         .d0 = ev[i].d0, .d1 = ev[i].d1, .count = 1, .sum = ev[i].v,
                         .min = ev[i].v, .max = ev[i].v};
    qsort(a, n, sizeof(*a), cmp_agg);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k && cmp_agg(&a[k - 1], &a[i]) == 0) {
            agg_row *o = &a[k - 1];
            o->count++;
            o->sum += a[i].sum;
            o->min = a[i].min < o->min ? a[i].min : o->min;
            o->max = a[i].max > o->max ? a[i].max : o->max;
        } else {
            a[k++] = a[i];
        }
    }
    *nout = k;
    return a;
}

static void check_level_by_hand(const segment *s, size_t level, const event *ev, size_t n)
{
    size_t ne;
    agg_row *want = aggregate(ev, n, INFO(s)->unit[level], INFO(s)->part_start, &ne);
    const agg_layout *l = seg_layout(s);
    CHECK_INT(INFO(s)->nrows[level], ne);
    int bad = 0;
    for (size_t i = 0; i < ne && i < INFO(s)->nrows[level]; i++) {
        const agg_row *w = &want[i];
        const void *st = seg_row_states(s, level, i);
        bool ok = seg_row_bucket(s, level, i) == w->bucket &&
                  cmp_dimval(row_dim(s, level, i, 0), dv(pool0[w->d0])) == 0 &&
                  cmp_dimval(row_dim(s, level, i, 1), dv(pool1[w->d1])) == 0 &&
                  row_count(l, st, 0) == w->count && row_value(l, st, 1) == (double)w->sum &&
                  row_value(l, st, 2) == (double)w->min && row_value(l, st, 3) == (double)w->max &&
                  row_value(l, st, 4) == (double)w->sum / (double)w->count;
        if (!ok && bad++ < 3)
            fprintf(stderr, "level %zu row %zu differs from the events aggregated by hand\n",
                    level, i);
    }
    CHECK_INT(bad, 0);
    free(want);
}

/* ---- levels of views and partitions ---- */

static int64_t day_start(int64_t y, unsigned m, unsigned d)
{
    return days_from_civil(y, m, d) * 86400;
}

typedef struct {
    gran_t view, part;
    size_t nlevels;
    gran_t units[3];
} level_case;

/* The hour level is written only when it has at most half the rows of
 * level 0 (segment.h): whether the events give it that. */
static bool hour_halves(const event *ev, size_t n, gran_t view, int64_t ps)
{
    size_t n0, nh;
    free(aggregate(ev, n, view, ps, &n0));
    free(aggregate(ev, n, GRAN_HOUR, ps, &nh));
    return nh * 2 <= n0;
}

static void test_levels_and_rollups(void)
{
    static const level_case cases[] = {
        {GRAN_MINUTE, GRAN_DAY, 3, {GRAN_MINUTE, GRAN_HOUR, GRAN_ALL}},
        {GRAN_MINUTE, GRAN_HOUR, 2, {GRAN_MINUTE, GRAN_ALL}},
        {GRAN_MINUTE, GRAN_MONTH, 3, {GRAN_MINUTE, GRAN_HOUR, GRAN_ALL}},
        {GRAN_SECOND, GRAN_HOUR, 2, {GRAN_SECOND, GRAN_ALL}},
        {GRAN_SECOND, GRAN_DAY, 3, {GRAN_SECOND, GRAN_HOUR, GRAN_ALL}},
        {GRAN_HOUR, GRAN_HOUR, 1, {GRAN_HOUR}},
        {GRAN_HOUR, GRAN_DAY, 2, {GRAN_HOUR, GRAN_ALL}},
        {GRAN_HOUR, GRAN_MONTH, 2, {GRAN_HOUR, GRAN_ALL}},
        {GRAN_DAY, GRAN_DAY, 1, {GRAN_DAY}},
        {GRAN_DAY, GRAN_MONTH, 2, {GRAN_DAY, GRAN_ALL}},
        {GRAN_MONTH, GRAN_MONTH, 1, {GRAN_MONTH}},
    };
    /* a leap February, and a day before 1970 (floors toward minus infinity);
     * few events (the hour level rarely halves the rows) and many */
    const int64_t starts[] = {day_start(2024, 2, 1), day_start(1969, 12, 1)};
    const size_t counts[] = {3000, 3000, 60000};
    size_t hours_kept = 0, hours_dropped = 0;
    for (size_t si = 0; si < 3; si++) {
        for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
            level_case k_ = cases[c], *k = &k_;
            int64_t ps = gran_floor(k->part, starts[si % 2] + 86400 * 9 + 3600 * 5);
            int64_t pe = gran_next(k->part, ps);
            size_t n = counts[si];
            event *ev = random_events(n, ps, pe, k->view);
            if (k->nlevels == 3 && k->units[1] == GRAN_HOUR) {
                if (hour_halves(ev, n, k->view, ps)) {
                    hours_kept++;
                } else {
                    hours_dropped++;
                    k->nlevels = 2;
                    k->units[1] = GRAN_ALL;
                }
            }
            vtable *t = table_of(ev, n, five);
            segment *s = build_decode(t, ps, pe, k->view, NULL);
            if (!s) {
                free(ev);
                vtable_free(t);
                continue;
            }
            CHECK_INT(INFO(s)->part_start, ps);
            CHECK_INT(INFO(s)->part_end, pe);
            CHECK_INT(INFO(s)->unit[0], k->view);
            CHECK_INT(INFO(s)->nlevels, k->nlevels);
            for (size_t l = 0; l < k->nlevels && l < INFO(s)->nlevels; l++)
                CHECK_INT(INFO(s)->unit[l], k->units[l]);
            check_round_trip(s, t);
            for (size_t l = 0; l < INFO(s)->nlevels; l++)
                check_level_by_hand(s, l, ev, n);
            seg_free(s);
            vtable_free(t);
            free(ev);
        }
    }
    CHECK(hours_kept > 0 && hours_dropped > 0);   /* both ways were seen */
}

/* Several tables are merged: the same bytes as the one merged table. */
static void test_merge_tables(void)
{
    int64_t ps = day_start(2026, 11, 23), pe = ps + 86400;
    size_t n = 4000;
    event *ev = random_events(n, ps, pe, GRAN_MINUTE);
    vtable *a = table_of(ev, n / 3, five), *b = table_of(ev + n / 3, n - n / 3, five);
    vtable *all = table_of(ev, n, five);
    const vtable *both[2] = {a, b};
    seg_blob x = {0}, y = {0};
    CHECK_INT(seg_build_n(both, 2, ps, pe, GRAN_MINUTE, &x), 0);
    CHECK_INT(seg_build(all, ps, pe, GRAN_MINUTE, &y), 0);
    CHECK_MEM(x.p, x.len, y.p, y.len);
    /* building twice gives the same bytes */
    seg_blob z = {0};
    CHECK_INT(seg_build_n(both, 2, ps, pe, GRAN_MINUTE, &z), 0);
    CHECK_MEM(x.p, x.len, z.p, z.len);
    seg_blob_free(&x);
    seg_blob_free(&y);
    seg_blob_free(&z);
    vtable_free(a);
    vtable_free(b);
    vtable_free(all);
    free(ev);
}

static void test_build_errors(void)
{
    int64_t ps = day_start(2026, 11, 23), pe = ps + 86400;
    vtable *t = vtable_new(2, five);
    event e = {.bucket = ps + 60, .d0 = 1, .d1 = 2, .v = 5};
    apply(t, &e);
    seg_blob b = {0};
    CHECK_INT(seg_build(t, ps, pe, GRAN_ALL, &b), -EINVAL);
    CHECK_INT(seg_build(t, ps + 1, pe, GRAN_MINUTE, &b), -EINVAL);   /* not a bucket start */
    CHECK_INT(seg_build(t, ps, ps, GRAN_MINUTE, &b), -EINVAL);
    CHECK_INT(seg_build(t, ps + 120, pe, GRAN_MINUTE, &b), -EINVAL); /* row before the partition */
    CHECK_INT(seg_build(t, ps, ps + 60, GRAN_MINUTE, &b), -EINVAL);  /* row after it */
    CHECK_INT(seg_build(t, ps, pe, GRAN_HOUR, &b), -EINVAL);         /* not an hour bucket */
    CHECK(b.p == NULL);
    agg_layout *other = layout_of(1, MT_COUNT);
    vtable *u = vtable_new(2, other), *w = vtable_new(1, five);
    const vtable *mixed[2] = {t, u}, *mixed2[2] = {t, w};
    CHECK_INT(seg_build_n(mixed, 2, ps, pe, GRAN_MINUTE, &b), -EINVAL);
    CHECK_INT(seg_build_n(mixed2, 2, ps, pe, GRAN_MINUTE, &b), -EINVAL);
    /* decoding with another definition of the view */
    CHECK_INT(seg_build(t, ps, pe, GRAN_MINUTE, &b), 0);
    segment *s = NULL;
    CHECK_INT(seg_decode(b.p, b.len, other, 2, &s), -EINVAL);
    CHECK_INT(seg_decode(b.p, b.len, five, 1, &s), -EINVAL);
    agg_layout *swapped = layout_of(5, MT_COUNT, MT_SUM, MT_MAX, MT_MIN, MT_AVG);
    CHECK_INT(seg_decode(b.p, b.len, swapped, 2, &s), -EINVAL);
    CHECK(s == NULL);
    seg_blob_free(&b);
    /* an empty table: every level empty */
    vtable *empty = vtable_new(2, five);
    s = build_decode(empty, ps, pe, GRAN_MINUTE, NULL);
    CHECK(s != NULL);
    for (size_t l = 0; s && l < INFO(s)->nlevels; l++) {
        size_t f, en;
        CHECK_INT(INFO(s)->nrows[l], 0);
        seg_level_rows(s, l, INT64_MIN, INT64_MAX, &f, &en);
        CHECK_INT(en - f, 0);
    }
    CHECK_INT(s ? seg_pick_level(s, GRAN_ALL, INT64_MIN, INT64_MAX) : 0, 2);
    seg_free(s);
    free(swapped);
    free(other);
    vtable_free(empty);
    vtable_free(t);
    vtable_free(u);
    vtable_free(w);
}

/* ---- dictionaries ---- */

static void test_dictionaries(void)
{
    int64_t ps = day_start(2026, 11, 23), pe = ps + 86400;
    size_t n = 2000;
    event *ev = random_events(n, ps, pe, GRAN_MINUTE);
    vtable *t = table_of(ev, n, five);
    segment *s = build_decode(t, ps, pe, GRAN_MINUTE, NULL);
    if (!s)
        return;
    /* every pool value appears (2000 events over 60 combinations) */
    CHECK_INT(seg_dict_size(s, 0), NPOOL0);
    CHECK_INT(seg_dict_size(s, 1), NPOOL1);
    for (size_t d = 0; d < 2; d++) {
        uint32_t nd = seg_dict_size(s, d);
        CHECK(seg_dict_value(s, d, 0).null);   /* null first */
        for (uint32_t i = 1; i < nd; i++)
            CHECK(cmp_dimval(seg_dict_value(s, d, i - 1), seg_dict_value(s, d, i)) < 0);
        for (uint32_t i = 0; i < nd; i++) {
            dimval v = seg_dict_value(s, d, i);
            CHECK_INT(seg_dict_find(s, d, v.s, v.len, v.null), i);
        }
    }
    CHECK_INT(seg_dict_find(s, 0, NULL, 0, true), 0);
    CHECK_INT(seg_dict_find(s, 0, "", 0, false), 1);   /* the empty string is not null */
    CHECK_INT(seg_dict_find(s, 0, "\0", 1, false), 2);
    CHECK_INT(seg_dict_find(s, 0, "a\0", 2, false), 4);
    CHECK_INT(seg_dict_find(s, 0, "\xff", 1, false), NPOOL0 - 1);
    CHECK_INT(seg_dict_find(s, 0, "aa", 2, false), -1);
    CHECK_INT(seg_dict_find(s, 0, "a\0\0", 3, false), -1);
    CHECK_INT(seg_dict_find(s, 0, "\xff\xff", 2, false), -1);
    CHECK_INT(seg_dict_find(s, 1, "/a/", 3, false), -1);
    CHECK_INT(seg_dict_find(s, 1, "0", 1, false), -1);
    seg_free(s);
    vtable_free(t);
    free(ev);

    /* a dimension without null, and with one value */
    t = vtable_new(2, five);
    dimval d[2] = {{"b", 1, false}, {"x", 1, false}};
    row_add(five, vtable_upsert(t, ps, d), 0, 1);
    d[0] = (dimval){"a", 1, false};
    row_add(five, vtable_upsert(t, ps, d), 0, 1);
    s = build_decode(t, ps, pe, GRAN_MINUTE, NULL);
    if (s) {
        CHECK_INT(seg_dict_size(s, 0), 2);
        CHECK_INT(seg_dict_find(s, 0, NULL, 0, true), -1);
        CHECK_INT(seg_dict_find(s, 0, "a", 1, false), 0);
        CHECK_INT(seg_dict_find(s, 0, "b", 1, false), 1);
        CHECK_INT(seg_dict_find(s, 0, "c", 1, false), -1);
        CHECK_INT(seg_dict_find(s, 0, "", 0, false), -1);
        CHECK_INT(seg_dict_find(s, 1, "x", 1, false), 0);
        CHECK(!seg_dict_value(s, 0, 0).null);
    }
    seg_free(s);
    vtable_free(t);
}

/* Ids wider than a byte: more than 256 and more than 65536 values. */
static void test_wide_ids(void)
{
    int64_t ps = day_start(2026, 11, 23), pe = ps + 86400;
    agg_layout *c1 = layout_of(1, MT_COUNT);
    vtable *t = vtable_new(2, c1);
    char a[16], b[16];
    for (int i = 0; i < 70000; i++) {
        int la = snprintf(a, sizeof(a), "p%d", i * 7919 % 70000);
        int lb = snprintf(b, sizeof(b), "%d", i % 300);
        dimval d[2] = {{a, (uint32_t)la, false}, {b, (uint32_t)lb, false}};
        row_add(c1, vtable_upsert(t, ps + 60 * (i % 1440), d), 0, 0);
    }
    segment *s = build_decode(t, ps, pe, GRAN_MINUTE, NULL);
    if (s) {
        CHECK_INT(seg_dict_size(s, 0), 70000);
        CHECK_INT(seg_dict_size(s, 1), 300);
        check_round_trip(s, t);
        CHECK_INT(seg_dict_find(s, 0, "p69999", 6, false) >= 0, 1);
        CHECK_INT(seg_dict_find(s, 0, "p70000", 6, false), -1);
    }
    seg_free(s);
    vtable_free(t);
    free(c1);
}

/* ---- time range to row range ---- */

static void test_ranges(void)
{
    int64_t ps = day_start(2026, 11, 23), pe = ps + 86400;
    /* rows in a few buckets only, so some ranges fall between buckets */
    vtable *t = vtable_new(2, five);
    const int64_t minutes[] = {0, 1, 2, 59, 60, 61, 700, 1439};
    for (size_t i = 0; i < sizeof(minutes) / sizeof(minutes[0]); i++)
        for (int k = 0; k <= (int)i % 3; k++) {
            event e = {.bucket = ps + 60 * minutes[i], .d0 = k, .d1 = k + 1, .v = k};
            apply(t, &e);
        }
    segment *s = build_decode(t, ps, pe, GRAN_MINUTE, NULL);
    if (!s)
        return;
    int64_t pts[64];
    size_t np = 0;
    pts[np++] = INT64_MIN;
    pts[np++] = INT64_MAX;
    pts[np++] = ps - 86400;
    pts[np++] = pe + 86400;
    for (size_t i = 0; i < sizeof(minutes) / sizeof(minutes[0]); i++)
        for (int dlt = -1; dlt <= 1; dlt++)
            pts[np++] = ps + 60 * minutes[i] + dlt;
    pts[np++] = pe;
    pts[np++] = pe - 1;
    int bad = 0;
    for (size_t l = 0; l < INFO(s)->nlevels; l++) {
        size_t nr = INFO(s)->nrows[l];
        for (size_t i = 0; i < np; i++) {
            for (size_t j = 0; j < np; j++) {
                int64_t from = pts[i], to = pts[j];
                size_t first, end, want_first = nr, want_end = nr;
                seg_level_rows(s, l, from, to, &first, &end);
                /* by brute force: rows are sorted by bucket */
                size_t cnt = 0;
                for (size_t r = 0; r < nr; r++) {
                    int64_t b = seg_row_bucket(s, l, r);
                    if (from <= b && b < to) {
                        if (cnt++ == 0)
                            want_first = r;
                        want_end = r + 1;
                    }
                }
                if (cnt == 0)
                    bad += first != end;
                else
                    bad += first != want_first || end != want_end || end - first != cnt;
            }
        }
        /* walking bucket by bucket visits every row once, buckets ascending */
        size_t visited = 0;
        int64_t prev = INT64_MIN;
        for (size_t r = 0; r < nr;) {
            int64_t b;
            size_t e = seg_bucket_end(s, l, r, &b);
            bad += e <= r || b <= prev || b != seg_row_bucket(s, l, r) ||
                   b != seg_row_bucket(s, l, e - 1);
            visited += e - r;
            prev = b;
            r = e;
        }
        bad += visited != nr;
    }
    CHECK_INT(bad, 0);
    /* the partition level's one bucket is the partition start */
    size_t f, e;
    seg_level_rows(s, 2, ps, ps + 1, &f, &e);
    CHECK_INT(e - f, INFO(s)->nrows[2]);
    seg_level_rows(s, 2, ps + 1, pe, &f, &e);
    CHECK_INT(e - f, 0);
    seg_free(s);
    vtable_free(t);
}

/* ---- the level chooser ---- */

typedef struct {
    int64_t off;     /* seconds added before flooring (a time zone) */
    int64_t width;   /* a multiple of seconds; 0: use gran */
    gran_t gran;
} qbuckets;

static int64_t qfloor_of(int64_t ts, const void *ud)
{
    const qbuckets *q = ud;
    if (q->width)
        return floor_div(ts + q->off, q->width) * q->width - q->off;
    return gran_floor(q->gran, ts + q->off) - q->off;
}

/* The answer to (from, to, answer buckets) computed from one level, as one
 * table keyed by answer bucket and dimensions. */
static vtable *answer(const segment *s, size_t level, const qbuckets *q, int64_t from, int64_t to)
{
    vtable *t = vtable_new(INFO(s)->ndims, seg_layout(s));
    size_t first, end;
    seg_level_rows(s, level, from, to, &first, &end);
    for (size_t r = first; r < end; r++) {
        dimval d[8];
        for (size_t k = 0; k < INFO(s)->ndims; k++)
            d[k] = row_dim(s, level, r, k);
        void *row = vtable_upsert(t, qfloor_of(seg_row_bucket(s, level, r), q), d);
        agg_row_merge(seg_layout(s), row, seg_row_states(s, level, r));
    }
    return t;
}

typedef struct {
    vtable *other;
    const agg_layout *l;
    int diff;
} eq_ctx;

static int eq_row(const vrow *r, void *ud)
{
    eq_ctx *c = ud;
    size_t before = vtable_rows(c->other);
    void *o = vtable_upsert(c->other, r->bucket, r->dims);
    c->diff += vtable_rows(c->other) != before || !same_states(c->l, o, r->cells);
    return 0;
}

static bool same_answer(vtable *a, vtable *b)
{
    if (vtable_rows(a) != vtable_rows(b))
        return false;
    eq_ctx c = {.other = b, .l = vtable_layout(a)};
    vtable_foreach(a, eq_row, &c);
    return c.diff == 0;
}

/* A partition of 70000 hours (a reader accepts any length up to 2^41 s):
 * the chooser checks at most 65536 buckets of a level, then passes the
 * level over instead of walking them all (fuzz_segment found a header
 * that made it walk billions). */
static void test_pick_level_long_partition(void)
{
    int64_t H = 3600, ps = day_start(2026, 11, 23), pe = ps + 70000 * H;
    agg_layout *c1 = layout_of(1, MT_COUNT);
    vtable *t = vtable_new(2, c1);
    for (int m = 1; m <= 4; m++) {   /* four minutes of one hour: the hour roll-up halves them */
        event e = {.bucket = ps + 60 * m, .d0 = 1, .d1 = 1, .v = 1};
        apply(t, &e);
    }
    segment *s = build_decode(t, ps, pe, GRAN_MINUTE, NULL);
    vtable_free(t);
    free(c1);
    if (!s)
        return;
    CHECK_INT(INFO(s)->nlevels, 3);
    qbuckets days = {.gran = GRAN_DAY};
    /* every hour of the range lies in one day: the hour level answers */
    CHECK_INT(seg_info_pick_level_fn(INFO(s), qfloor_of, &days, ps, ps + 65536 * H), 1);
    /* one hour more than the cap: level 0, which answers the same */
    CHECK_INT(seg_info_pick_level_fn(INFO(s), qfloor_of, &days, ps, ps + 65537 * H), 0);
    qbuckets all = {.gran = GRAN_ALL};
    CHECK_INT(seg_info_pick_level_fn(INFO(s), qfloor_of, &all, ps, INT64_MAX), 2);
    seg_free(s);
}

static void test_pick_level(void)
{
    int64_t ps = day_start(2026, 11, 23), pe = ps + 86400, H = 3600;
    size_t n = 5000;
    event *ev = random_events(n, ps, pe, GRAN_MINUTE);
    vtable *t = table_of(ev, n, five);
    segment *s = build_decode(t, ps, pe, GRAN_MINUTE, NULL);
    free(ev);
    vtable_free(t);
    if (!s)
        return;
    const int64_t MIN = INT64_MIN, MAX = INT64_MAX;
    /* no range: by granularity */
    CHECK_INT(seg_pick_level(s, GRAN_ALL, MIN, MAX), 2);
    CHECK_INT(seg_pick_level(s, GRAN_MONTH, MIN, MAX), 2);
    CHECK_INT(seg_pick_level(s, GRAN_DAY, MIN, MAX), 2);
    CHECK_INT(seg_pick_level(s, GRAN_HOUR, MIN, MAX), 1);
    CHECK_INT(seg_pick_level(s, GRAN_MINUTE, MIN, MAX), 0);
    CHECK_INT(seg_pick_level(s, GRAN_SECOND, MIN, MAX), 0);
    /* ranges covering the partition, or missing it */
    CHECK_INT(seg_pick_level(s, GRAN_ALL, ps, pe), 2);
    CHECK_INT(seg_pick_level(s, GRAN_ALL, ps - 86400, pe + 1), 2);
    CHECK_INT(seg_pick_level(s, GRAN_ALL, pe, pe + 86400), 2);
    CHECK_INT(seg_pick_level(s, GRAN_ALL, ps - 86400, ps), 2);
    /* the range cuts the partition on an hour, on a minute, inside a minute */
    CHECK_INT(seg_pick_level(s, GRAN_ALL, ps + H, MAX), 1);
    CHECK_INT(seg_pick_level(s, GRAN_ALL, MIN, pe - H), 1);
    CHECK_INT(seg_pick_level(s, GRAN_DAY, ps + 2 * H, ps + 5 * H), 1);
    CHECK_INT(seg_pick_level(s, GRAN_ALL, ps + 60, MAX), 0);
    CHECK_INT(seg_pick_level(s, GRAN_ALL, MIN, pe - 60), 0);
    CHECK_INT(seg_pick_level(s, GRAN_HOUR, ps + H + 60, ps + 3 * H), 0);
    /* from = bucket start + 1: the query starts counting at the next minute */
    CHECK_INT(seg_pick_level(s, GRAN_ALL, ps - 59, pe), 2);
    CHECK_INT(seg_pick_level(s, GRAN_ALL, ps + H - 59, MAX), 1);
    CHECK_INT(seg_pick_level(s, GRAN_ALL, ps + H - 60, MAX), 0);
    CHECK_INT(seg_pick_level(s, GRAN_ALL, MIN, pe - 59), 2);
    /* answer buckets of other shapes */
    qbuckets q15 = {.width = 900}, q6h = {.width = 6 * H}, ist = {.off = 5 * H + 1800, .gran = GRAN_DAY},
             cet = {.off = H, .gran = GRAN_DAY};
    CHECK_INT(seg_info_pick_level_fn(INFO(s), qfloor_of, &q15, MIN, MAX), 0);
    CHECK_INT(seg_info_pick_level_fn(INFO(s), qfloor_of, &q6h, MIN, MAX), 1);
    CHECK_INT(seg_info_pick_level_fn(INFO(s), qfloor_of, &ist, MIN, MAX), 0);   /* +05:30 days */
    CHECK_INT(seg_info_pick_level_fn(INFO(s), qfloor_of, &cet, MIN, MAX), 1);   /* +01:00 days */

    /* random ranges and answer buckets: the picked level gives the same
     * answer as level 0 */
    const qbuckets shapes[] = {{.gran = GRAN_ALL}, {.gran = GRAN_DAY}, {.gran = GRAN_HOUR},
                               {.gran = GRAN_MINUTE}, {.gran = GRAN_MONTH}, q15, q6h, ist, cet,
                               {.width = 2 * H}, {.width = 7 * 86400}};
    int bad = 0, used[3] = {0};
    for (int i = 0; i < 400; i++) {
        const qbuckets *q = &shapes[next_rand() % (sizeof(shapes) / sizeof(shapes[0]))];
        int64_t cut[] = {1, 60, H};
        int64_t g1 = cut[next_rand() % 3], g2 = cut[next_rand() % 3];
        int64_t from = ps - H + (int64_t)(next_rand() % (26 * H / g1)) * g1;
        int64_t to = ps - H + (int64_t)(next_rand() % (26 * H / g2)) * g2;
        if (next_rand() % 8 == 0)
            from = MIN;
        if (next_rand() % 8 == 0)
            to = MAX;
        size_t l = seg_info_pick_level_fn(INFO(s), qfloor_of, q, from, to);
        used[l]++;
        /* UTC units: the shortcut that checks only the buckets at from and to agrees */
        if (!q->width && !q->off)
            bad += seg_info_pick_level(INFO(s), q->gran, from, to) != l ||
                   seg_pick_level(s, q->gran, from, to) != l;
        vtable *want = answer(s, 0, q, from, to), *got = answer(s, l, q, from, to);
        bad += !same_answer(want, got);
        vtable_free(want);
        vtable_free(got);
    }
    CHECK_INT(bad, 0);
    CHECK(used[0] > 0 && used[1] > 0 && used[2] > 0);
    seg_free(s);
}

/* ---- the format, byte for byte ---- */

static void put_le(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* A segment around raw parts, written from segment.h's description: the
 * header (levels: unit codes, bucket and row counts; each part's sizes and
 * checksum; its own checksum), then the parts compressed: dictionaries,
 * then levels coarsest first. part[0] is the dictionary part, part[1 + l]
 * level l's. */
typedef struct {
    uint16_t version, flags, ndims, nmetrics;
    int64_t ps, pe;
    uint8_t nlevels;
    uint8_t unit[16];
    uint32_t nbuckets[16];
    uint32_t nrows[16];
} hdr;

typedef struct {
    unsigned char *p[1 + 16];
    size_t len[1 + 16];
} raws;

static bool hdr_equal(const hdr *a, const hdr *b)
{
    bool eq = a->version == b->version && a->flags == b->flags && a->ndims == b->ndims &&
              a->nmetrics == b->nmetrics && a->ps == b->ps && a->pe == b->pe &&
              a->nlevels == b->nlevels;
    for (int i = 0; eq && i < a->nlevels; i++)
        eq = a->unit[i] == b->unit[i] && a->nbuckets[i] == b->nbuckets[i] &&
             a->nrows[i] == b->nrows[i];
    return eq;
}

static void raws_free(raws *r)
{
    for (int i = 0; i < 17; i++)
        free(r->p[i]);
}

static seg_blob seal(const hdr *h, const raws *rw)
{
    size_t nl = h->nlevels, hl = 64 + 32 * nl, len = hl;
    unsigned char *z[17];
    size_t zl[17];
    for (size_t i = 0; i <= nl; i++) {
        size_t bound = ZSTD_compressBound(rw->len[i]);
        z[i] = malloc(bound);
        zl[i] = ZSTD_compress(z[i], bound, rw->p[i] ? (const void *)rw->p[i] : "", rw->len[i], 1);
        len += zl[i];
    }
    unsigned char *p = calloc(1, len);
    memcpy(p, "LDSEG\r\n\x1a", 8);
    put_le(p + 8, h->version, 2);
    put_le(p + 10, h->flags, 2);
    put_le(p + 12, hl, 4);
    put_le(p + 16, h->ndims, 2);
    put_le(p + 18, h->nmetrics, 2);
    p[20] = h->nlevels;
    put_le(p + 24, (uint64_t)h->ps, 8);
    put_le(p + 32, (uint64_t)h->pe, 8);
    put_le(p + 40, zl[0], 4);
    put_le(p + 44, rw->len[0], 4);
    put_le(p + 48, checksum64(z[0], zl[0], 0), 8);
    for (size_t i = 0; i < nl; i++) {
        unsigned char *e = p + 56 + 32 * i;
        e[0] = h->unit[i];
        put_le(e + 4, h->nbuckets[i], 4);
        put_le(e + 8, h->nrows[i], 4);
        put_le(e + 16, zl[1 + i], 4);
        put_le(e + 20, rw->len[1 + i], 4);
        put_le(e + 24, checksum64(z[1 + i], zl[1 + i], 0), 8);
    }
    put_le(p + hl - 8, checksum64(p, hl - 8, 0), 8);
    size_t off = hl;
    memcpy(p + off, z[0], zl[0]);
    off += zl[0];
    for (size_t i = nl; i-- > 0;) {
        memcpy(p + off, z[1 + i], zl[1 + i]);
        off += zl[1 + i];
    }
    for (size_t i = 0; i <= nl; i++)
        free(z[i]);
    return (seg_blob){.p = p, .len = len};
}

/* The header and raw parts of a segment. */
static bool unseal(const seg_blob *b, hdr *h, raws *rw)
{
    const unsigned char *p = b->p;
    *h = (hdr){.version = (uint16_t)get_le(p + 8, 2), .flags = (uint16_t)get_le(p + 10, 2),
               .ndims = (uint16_t)get_le(p + 16, 2), .nmetrics = (uint16_t)get_le(p + 18, 2),
               .ps = (int64_t)get_le(p + 24, 8), .pe = (int64_t)get_le(p + 32, 8),
               .nlevels = p[20]};
    size_t nl = h->nlevels, hl = 64 + 32 * nl, zl[17];
    if (nl > 16 || get_le(p + 12, 4) != hl)
        return false;
    zl[0] = get_le(p + 40, 4);
    rw->len[0] = get_le(p + 44, 4);
    for (size_t i = 0; i < nl; i++) {
        const unsigned char *e = p + 56 + 32 * i;
        h->unit[i] = e[0];
        h->nbuckets[i] = (uint32_t)get_le(e + 4, 4);
        h->nrows[i] = (uint32_t)get_le(e + 8, 4);
        zl[1 + i] = get_le(e + 16, 4);
        rw->len[1 + i] = get_le(e + 20, 4);
    }
    bool ok = true;
    size_t off = hl;
    for (size_t k = 0; k <= nl; k++) {
        size_t i = k == 0 ? 0 : 1 + nl - k;   /* in the order they are stored */
        rw->p[i] = malloc(rw->len[i] + 1);
        size_t got = ZSTD_decompress(rw->p[i], rw->len[i], p + off, zl[i]);
        ok &= !ZSTD_isError(got) && got == rw->len[i];
        off += zl[i];
    }
    return ok && off == b->len;
}

/* The minute view (one dimension, one count) of one hour partition, rows:
 *   minute 0: "b" x2, null x1; minute 2: "a" x3. */
static const unsigned char tiny_dict[] = {
    5, 'c', 'o', 'u', 'n', 't', 0,    /* metric: "count", no parameters */
    3, 0, 2, 'a', 2, 'b',             /* dictionary: null, "a", "b" */
};
static const unsigned char tiny_l0[] = {
    0, 2, 120, 1,                     /* buckets +0 (2 rows), +120 (1 row) */
    5, 0, 1, 0, 2, 1,                 /* ids null, "b", "a": 0, +2 (same bucket), 1;
                                         base 0, one plane */
    5, 2, 1, 0, 1, 2,                 /* counts 1, 2, 3: base 1 (zigzag 2), one plane */
};
static const unsigned char tiny_l1[] = {
    0, 3,                             /* the partition: bucket +0, 3 rows */
    5, 0, 1, 0, 1, 1,                 /* null, "a", "b": 0, +1, +1 */
    5, 2, 1, 0, 2, 1,                 /* counts 1, 3, 2 */
};

static hdr tiny_hdr(int64_t ps)
{
    return (hdr){.version = 2, .ndims = 1, .nmetrics = 1, .ps = ps, .pe = ps + 3600,
                 .nlevels = 2, .unit = {1, 15}, .nbuckets = {2, 1}, .nrows = {3, 3}};
}

/* Copies of the tiny parts, to damage. */
static raws tiny_raws(void)
{
    raws r = {.len = {0}};
    const unsigned char *src[3] = {tiny_dict, tiny_l0, tiny_l1};
    size_t len[3] = {sizeof(tiny_dict), sizeof(tiny_l0), sizeof(tiny_l1)};
    for (int i = 0; i < 3; i++) {
        r.p[i] = malloc(len[i] + 8);
        memcpy(r.p[i], src[i], len[i]);
        r.len[i] = len[i];
    }
    return r;
}

static vtable *tiny_table(int64_t ps, const agg_layout *l)
{
    vtable *t = vtable_new(1, l);
    dimval b = {"b", 1, false}, a = {"a", 1, false}, nul = {NULL, 0, true};
    for (int i = 0; i < 2; i++)
        row_add(l, vtable_upsert(t, ps, &b), 0, 0);
    row_add(l, vtable_upsert(t, ps, &nul), 0, 0);
    for (int i = 0; i < 3; i++)
        row_add(l, vtable_upsert(t, ps + 120, &a), 0, 0);
    return t;
}

static void test_format(void)
{
    int64_t ps = day_start(2026, 11, 23) + 7 * 3600;
    agg_layout *c1 = layout_of(1, MT_COUNT);
    vtable *t = tiny_table(ps, c1);
    seg_blob b = {0};
    CHECK_INT(seg_build(t, ps, ps + 3600, GRAN_MINUTE, &b), 0);
    hdr h, want = tiny_hdr(ps);
    raws rw = {.len = {0}};
    CHECK(b.p && unseal(&b, &h, &rw));
    CHECK(hdr_equal(&h, &want));
    CHECK_MEM(rw.p[0], rw.len[0], tiny_dict, sizeof(tiny_dict));
    CHECK_MEM(rw.p[1], rw.len[1], tiny_l0, sizeof(tiny_l0));
    CHECK_MEM(rw.p[2], rw.len[2], tiny_l1, sizeof(tiny_l1));
    CHECK_MEM(b.p, 8, "LDSEG\r\n\x1a", 8);
    CHECK_INT(get_le(b.p + 12, 4), 128);
    CHECK_INT(get_le(b.p + 120, 8), checksum64(b.p, 120, 0));
    raws_free(&rw);
    /* what the header says */
    seg_info in;
    CHECK_INT(seg_read_info(b.p, b.len, &in), 0);
    CHECK_INT(in.nlevels, 2);
    CHECK_INT(in.unit[0], GRAN_MINUTE);
    CHECK_INT(in.unit[1], GRAN_ALL);
    CHECK_INT(in.nrows[0], 3);
    CHECK_INT(in.len, b.len);
    CHECK_INT(in.need[0], b.len);
    CHECK(in.need[1] < in.need[0] && in.need[1] > 128);
    CHECK_INT(seg_read_info(b.p, 127, &in), -ENOBUFS);
    CHECK_INT(seg_read_info(b.p, 128, &in), 0);
    /* and the hand-written segment decodes to the same rows */
    raws tr = tiny_raws();
    seg_blob hb = seal(&want, &tr);
    raws_free(&tr);
    segment *s = NULL;
    CHECK_INT(seg_decode(hb.p, hb.len, c1, 1, &s), 0);
    if (s) {
        check_round_trip(s, t);
        CHECK_INT(INFO(s)->nrows[1], 3);
        CHECK_INT(row_count(c1, seg_row_states(s, 1, 1), 0), 3);
    }
    seg_free(s);
    seg_blob_free(&hb);
    seg_blob_free(&b);
    vtable_free(t);
    free(c1);
}

/* ---- corruption ---- */

/* A state that owns memory (as sketches will): a heap-allocated sum. */
typedef struct {
    int64_t *v;
} heap_state;

static void heap_init(void *st, const agg_params *p) { ((heap_state *)st)->v = NULL; }
static int64_t *heap_get(void *st)
{
    heap_state *h = st;
    if (!h->v && (h->v = malloc(sizeof(int64_t))))
        *h->v = 0;
    return h->v;
}
static int heap_add(void *st, const agg_params *p, const field_value *fv)
{
    *heap_get(st) += (int64_t)fv->num;
    return 0;
}
static int heap_merge(void *dst, const void *src, const agg_params *p)
{
    const heap_state *s = src;
    if (s->v)
        *heap_get(dst) += *s->v;
    return 0;
}
static void heap_destroy(void *st)
{
    free(((heap_state *)st)->v);
    ((heap_state *)st)->v = NULL;
}
static void heap_encode(const void *st, bytes_w *w)
{
    const heap_state *h = st;
    bw_varint(w, h->v != NULL);
    if (h->v)
        bw_svarint(w, *h->v);
}
static int heap_decode(void *st, const agg_params *p, bytes_r *r)
{
    heap_init(st, p);
    uint64_t has = br_varint(r);
    if (has > 1)
        r->bad = true;
    if (has == 1) {
        int64_t v = br_svarint(r);
        if (!r->bad)
            *heap_get(st) = v;
    }
    return 0;
}
static agg_value heap_value(const void *st, const agg_params *p, const agg_render_ctx *c)
{
    const heap_state *h = st;
    return h->v ? (agg_value){.kind = AV_INT, .i = *h->v} : (agg_value){.kind = AV_NULL};
}
static int heap_compare(const void *a, const void *b, const agg_params *p,
                        const agg_render_ctx *c)
{
    return 0;
}
static void heap_render(const void *st, const agg_params *p, const agg_render_ctx *c, jbuf *b)
{
}

static const agg_ops agg_heap = {
    .type = MT_SUM, .name = "heapsum", .needs_field = true, .size = sizeof(heap_state),
    .init = heap_init, .add = heap_add, .merge = heap_merge, .destroy = heap_destroy,
    .encode = heap_encode, .decode = heap_decode, .value = heap_value,
    .compare = heap_compare, .render = heap_render,
};

/* count, heapsum, sum, heapsum: owned states between plain ones */
static agg_layout *heap_layout(void)
{
    agg_layout *l = calloc(1, sizeof(agg_layout) + 4 * sizeof(agg_slot));
    const agg_ops *ops[4] = {&agg_count, &agg_heap, &agg_sum, &agg_heap};
    size_t off = 0;
    l->n = 4;
    for (size_t i = 0; i < 4; i++) {
        l->slot[i] = (agg_slot){.ops = ops[i], .off = (uint32_t)off};
        off += (ops[i]->size + 7) & ~(size_t)7;
    }
    l->size = off;
    l->destroy = true;
    return l;
}

static vtable *small_table(const agg_layout *l, int64_t ps, size_t n)
{
    vtable *t = vtable_new(2, l);
    for (size_t i = 0; i < n; i++) {
        /* few keys a minute, so that the hour level halves the rows */
        event e = {.bucket = ps + 3600 * (int64_t)(next_rand() % 2) + 60 * (int64_t)(next_rand() % 6),
                   .d0 = (int)(next_rand() % 2), .d1 = (int)(next_rand() % 2),
                   .v = (int64_t)(next_rand() % 100) - 50};
        apply(t, &e);
    }
    return t;
}

/* Decodes damaged bytes: never 0 unless allowed, never a crash; the
 * count of successes. */
static int try_decode(const unsigned char *p, size_t len, const agg_layout *l, size_t ndims,
                      int *errors)
{
    segment *s = NULL;
    int r = seg_decode(p, len, l, ndims, &s);
    if (r == 0) {
        seg_free(s);
        return 1;
    }
    CHECK(s == NULL);
    if (r != -EBADMSG && r != -EPROTONOSUPPORT && r != -EINVAL)
        (*errors)++;
    return 0;
}

static void test_corruption_of(const agg_layout *l, const char *what)
{
    int64_t ps = day_start(2026, 11, 23) + 3600 * 4;
    int64_t pe = ps + 2 * 3600;   /* minute, hour and partition levels */
    vtable *t = small_table(l, ps, 40);
    seg_blob b = {0};
    CHECK_INT(seg_build(t, ps, pe, GRAN_MINUTE, &b), 0);
    if (!b.p) {
        vtable_free(t);
        return;
    }
    segment *s = NULL;
    CHECK_INT(seg_decode(b.p, b.len, l, 2, &s), 0);
    CHECK_INT(s ? INFO(s)->nlevels : 0, 3);
    if (s)
        check_round_trip(s, t);
    seg_free(s);
    printf("corruption (%s): a segment of %zu rows in %zu bytes\n", what, vtable_rows(t), b.len);

    /* every bit of every byte flipped: a checksum or the magic catches it */
    unsigned char *c = malloc(b.len + 1);
    int accepted = 0, odd = 0;
    for (size_t i = 0; i < b.len; i++)
        for (int bit = 0; bit < 8; bit++) {
            memcpy(c, b.p, b.len);
            c[i] ^= (unsigned char)(1u << bit);
            segment *x = NULL;
            int r = seg_decode(c, b.len, l, 2, &x);
            accepted += r == 0;
            odd += r != -EBADMSG;
            seg_free(x);
        }
    CHECK_INT(accepted, 0);
    CHECK_INT(odd, 0);
    /* every truncation, and a byte more */
    for (size_t n = 0; n < b.len; n++) {
        memcpy(c, b.p, n);
        segment *x = NULL;
        int r = seg_decode(n ? c : NULL, n, l, 2, &x);
        accepted += r == 0;
        odd += r != -EBADMSG;
        seg_free(x);
    }
    memcpy(c, b.p, b.len);
    c[b.len] = 0;
    CHECK_INT(try_decode(c, b.len + 1, l, 2, &odd), 0);
    CHECK_INT(accepted, 0);
    CHECK_INT(odd, 0);

    /* decoding from a level: a prefix suffices, one byte less does not;
     * damage in a finer level's part goes unseen until that level is read */
    seg_info in;
    CHECK_INT(seg_read_info(b.p, b.len < SEG_HEADER_MAX ? b.len : SEG_HEADER_MAX, &in), 0);
    for (size_t lv = 0; lv < in.nlevels; lv++) {
        segment *x = NULL;
        CHECK_INT(seg_decode_from(b.p, in.need[lv], lv, l, 2, &x), 0);
        if (x) {
            CHECK_INT(seg_min_level(x), lv);
            size_t f, e;
            for (size_t k = 0; k < in.nlevels; k++) {
                seg_level_rows(x, k, INT64_MIN, INT64_MAX, &f, &e);
                CHECK_INT(e - f, k >= lv ? in.nrows[k] : 0);
            }
        }
        seg_free(x);
        CHECK_INT(seg_decode_from(b.p, in.need[lv] - 1, lv, l, 2, &x), -EBADMSG);
        CHECK_INT(seg_decode_from(b.p, b.len, lv, l, 2, &x), 0);
        seg_free(x);
    }
    memcpy(c, b.p, b.len);
    c[b.len - 1] ^= 1;   /* level 0's part ends the segment */
    segment *x = NULL;
    CHECK_INT(seg_decode_from(c, b.len, 1, l, 2, &x), 0);
    seg_free(x);
    CHECK_INT(seg_decode_from(c, b.len, 0, l, 2, &x), -EBADMSG);
    CHECK_INT(seg_decode_from(b.p, b.len, 3, l, 2, &x), -EINVAL);
    free(c);

    /* damage behind valid checksums: every byte of every part changed,
     * every truncation of a part; no crash, no leak, only known codes */
    hdr h;
    raws rw = {.len = {0}};
    CHECK(unseal(&b, &h, &rw));
    int errors = 0, ok = 0, truncated_ok = 0;
    size_t total = 0;
    for (size_t k = 0; k <= h.nlevels; k++) {
        unsigned char *orig = rw.p[k];
        size_t olen = rw.len[k];
        unsigned char *m = malloc(olen + 16);
        rw.p[k] = m;
        for (size_t i = 0; i < olen; i++) {
            const unsigned char flips[] = {0x01, 0x80, 0xff};
            for (int f = 0; f < 3; f++) {
                memcpy(m, orig, olen);
                m[i] ^= flips[f];
                seg_blob y = seal(&h, &rw);
                ok += try_decode(y.p, y.len, l, 2, &errors);
                seg_blob_free(&y);
                total++;
            }
        }
        memcpy(m, orig, olen);
        for (size_t n = 0; n < olen; n++) {
            rw.len[k] = n;
            seg_blob y = seal(&h, &rw);
            truncated_ok += try_decode(y.p, y.len, l, 2, &errors);
            seg_blob_free(&y);
        }
        m[olen] = 0;
        rw.len[k] = olen + 1;   /* a trailing byte */
        seg_blob y = seal(&h, &rw);
        truncated_ok += try_decode(y.p, y.len, l, 2, &errors);
        seg_blob_free(&y);
        rw.len[k] = olen;
        rw.p[k] = orig;
        free(m);
    }
    CHECK_INT(truncated_ok, 0);
    CHECK_INT(errors, 0);
    printf("corruption (%s): %d of %zu changed parts decode (states whose value changed)\n",
           what, ok, total);

    /* header fields changed behind a valid checksum */
    hdr v;
#define HDR_CASE(expr, want)                                                                     \
    do {                                                                                         \
        v = h;                                                                                   \
        expr;                                                                                    \
        seg_blob y = seal(&v, &rw);                                                              \
        segment *z = NULL;                                                                       \
        CHECK_INT(seg_decode(y.p, y.len, l, 2, &z), want);                                       \
        seg_free(z);                                                                             \
        seg_blob_free(&y);                                                                       \
    } while (0)
    HDR_CASE((void)0, 0);
    HDR_CASE(v.version = 1, -EPROTONOSUPPORT);   /* the version before */
    HDR_CASE(v.version = 3, -EPROTONOSUPPORT);
    HDR_CASE(v.version = 0, -EPROTONOSUPPORT);
    HDR_CASE(v.flags = 1, -EBADMSG);
    HDR_CASE(v.ndims = 1, -EINVAL);
    HDR_CASE(v.nmetrics = 3, -EINVAL);
    HDR_CASE(v.ps = ps - 60, -EBADMSG);           /* not an hour start */
    HDR_CASE(v.ps = ps + 1, -EBADMSG);            /* not a minute start */
    HDR_CASE(v.ps = ps + 3600, -EBADMSG);         /* rows before the start */
    HDR_CASE(v.pe = ps, -EBADMSG);
    HDR_CASE(v.pe = ps + 3600, -EBADMSG);         /* rows past the end */
    HDR_CASE(v.ps = INT64_MIN, -EBADMSG);
    HDR_CASE(v.pe = INT64_MAX, -EBADMSG);
    HDR_CASE(v.unit[0] = 2, -EBADMSG);            /* minute buckets are not hour starts */
    HDR_CASE(v.unit[0] = 15, -EBADMSG);
    HDR_CASE(v.unit[1] = 1, -EBADMSG);            /* not coarser */
    HDR_CASE(v.unit[1] = 3, -EBADMSG);            /* the partition does not start a day */
    HDR_CASE(v.unit[1] = 7, -EBADMSG);            /* unknown unit */
    HDR_CASE(v.unit[2] = 2, -EBADMSG);
    HDR_CASE(v.nbuckets[0]++, -EBADMSG);
    HDR_CASE(v.nbuckets[0]--, -EBADMSG);
    HDR_CASE(v.nrows[0]++, -EBADMSG);
    HDR_CASE(v.nrows[0]--, -EBADMSG);
    HDR_CASE(v.nrows[0] = UINT32_MAX, -EBADMSG);
    HDR_CASE(v.nbuckets[2] = 2, -EBADMSG);
    HDR_CASE(v.nrows[1] = 0, -EBADMSG);
#undef HDR_CASE
    /* a level more or less than the parts: the sizes no longer add up */
    v = h;
    v.nlevels = 2;
    seg_blob y = seal(&v, &rw);   /* level 2's part is left out */
    segment *z = NULL;
    CHECK_INT(seg_decode(y.p, y.len, l, 2, &z), 0);   /* minute and hour: a sound segment */
    seg_free(z);
    seg_blob_free(&y);
    v.nlevels = 0;
    y = seal(&v, &rw);
    CHECK_INT(seg_decode(y.p, y.len, l, 2, &z), -EBADMSG);
    seg_blob_free(&y);
    v.nlevels = 5;
    y = seal(&v, &rw);
    CHECK_INT(seg_decode(y.p, y.len, l, 2, &z), -EBADMSG);
    seg_blob_free(&y);
    raws_free(&rw);
    seg_blob_free(&b);
    vtable_free(t);
}

/* Targeted damage to the tiny hand-written parts, resealed: each is the
 * kind of error the decoder must name. */
static void test_damage_cases(void)
{
    int64_t ps = day_start(2026, 11, 23) + 7 * 3600;
    agg_layout *c1 = layout_of(1, MT_COUNT);
    hdr h = tiny_hdr(ps);
    /* part 0: the dictionary part, 1: level 0, 2: the partition level;
     * offsets into tiny_dict, tiny_l0, tiny_l1 */
    struct {
        const char *what;
        int part;
        size_t at, n;
        unsigned char v[5];
    } cases[] = {
        {"metric name", 0, 1, 1, {'k'}},
        {"metric parameters", 0, 6, 1, {1}},
        {"dictionary order (\"c\" before \"b\")", 0, 10, 1, {'c'}},
        {"dictionary duplicate", 0, 12, 1, {'a'}},
        {"dictionary size", 0, 7, 1, {4}},
        {"null not first", 0, 8, 5, {2, 'a', 0, 2, 'b'}},
        {"value longer than the part", 0, 11, 1, {0x7f}},
        {"id out of range", 1, 9, 1, {3}},
        {"id delta out of range", 1, 8, 1, {3}},
        {"rows unsorted in a bucket (\"b\" before null: 2, -2)", 1, 5, 5, {3, 1, 4, 0, 3}},
        {"rows duplicated in a bucket (a delta of 0)", 1, 8, 1, {0}},
        {"id column without a plane", 1, 6, 1, {0}},
        {"id column width over 8", 1, 6, 1, {9}},
        {"bucket delta malformed", 1, 0, 1, {0xff}},
        {"second bucket not after the first", 1, 2, 1, {0}},
        {"bucket not a minute start", 1, 2, 1, {121}},
        {"bucket row counts", 1, 1, 1, {1}},
        {"empty bucket", 1, 3, 1, {0}},
        {"id column longer than its rows", 1, 4, 1, {6}},
        {"id column shorter than its rows", 1, 4, 1, {4}},
        {"metric column longer than the part", 1, 10, 1, {6}},
        {"metric column shorter than its rows", 1, 10, 1, {4}},
        {"metric column base malformed", 1, 11, 1, {0x80}},
        {"metric column width over 8", 1, 12, 1, {9}},
        {"a negative count (base -1)", 1, 11, 1, {1}},
        {"partition bucket not the partition start", 2, 0, 1, {60}},
        {"partition level rows unsorted", 2, 6, 1, {0}},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        raws rw = tiny_raws();
        memcpy(rw.p[cases[i].part] + cases[i].at, cases[i].v, cases[i].n);
        seg_blob x = seal(&h, &rw);
        segment *s = NULL;
        int r = seg_decode(x.p, x.len, c1, 1, &s);
        int want = i == 0 ? -EINVAL : -EBADMSG;
        if (r != want) {
            fprintf(stderr, "damage '%s': %d, expected %d\n", cases[i].what, r, want);
            bad++;
        }
        seg_free(s);
        seg_blob_free(&x);
        raws_free(&rw);
    }
    CHECK_INT(bad, 0);
    raws rw = tiny_raws();
    segment *s = NULL;
    /* the partition ends before a bucket */
    hdr v = h;
    v.pe = ps + 120;
    seg_blob x = seal(&v, &rw);
    CHECK_INT(seg_decode(x.p, x.len, c1, 1, &s), -EBADMSG);
    seg_blob_free(&x);
    /* trailing bytes in a part */
    rw.p[2][rw.len[2]++] = 0;
    x = seal(&h, &rw);
    CHECK_INT(seg_decode(x.p, x.len, c1, 1, &s), -EBADMSG);
    seg_blob_free(&x);
    rw.len[2]--;
    /* a part that is not one zstd frame of the declared size */
    x = seal(&h, &rw);
    put_le(x.p + 44, get_le(x.p + 44, 4) + 1, 4);
    put_le(x.p + 120, checksum64(x.p, 120, 0), 8);
    CHECK_INT(seg_decode(x.p, x.len, c1, 1, &s), -EBADMSG);
    seg_blob_free(&x);
    /* the magic */
    x = seal(&h, &rw);
    x.p[0] = 'X';
    put_le(x.p + 120, checksum64(x.p, 120, 0), 8);
    CHECK_INT(seg_decode(x.p, x.len, c1, 1, &s), -EBADMSG);
    seg_blob_free(&x);
    /* a header length that is not 64 + 32 * nlevels */
    x = seal(&h, &rw);
    put_le(x.p + 12, 120, 4);
    put_le(x.p + 112, checksum64(x.p, 112, 0), 8);
    CHECK_INT(seg_decode(x.p, x.len, c1, 1, &s), -EBADMSG);
    seg_blob_free(&x);
    raws_free(&rw);
    /* a future version with a longer header: refused by its version */
    unsigned char fut[300] = "LDSEG\r\n\x1a";
    put_le(fut + 8, 7, 2);
    put_le(fut + 12, 300, 4);
    put_le(fut + 292, checksum64(fut, 292, 0), 8);
    CHECK_INT(seg_decode(fut, 300, c1, 1, &s), -EPROTONOSUPPORT);
    seg_info in;
    CHECK_INT(seg_read_info(fut, SEG_HEADER_MAX, &in), -ENOBUFS);
    CHECK_INT(seg_decode(fut, SEG_HEADER_MAX, c1, 1, &s), -EBADMSG);
    memset(fut + 16, 0, 16);   /* the shortest a header can be */
    put_le(fut + 12, 24, 4);
    put_le(fut + 16, checksum64(fut, 16, 0), 8);
    CHECK_INT(seg_decode(fut, 24, c1, 1, &s), -EPROTONOSUPPORT);
    CHECK(s == NULL);
    free(c1);
}

/* ---- sizes ---- */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void size_report(const char *what, const agg_layout *l)
{
    int64_t ps = day_start(2026, 11, 23), pe = ps + 86400;
    /* a day of a minute view: 300 pages (skewed), 40 countries */
    vtable *t = vtable_new(2, l);
    char page[32], country[8];
    for (int i = 0; i < 400000; i++) {
        uint64_t r = next_rand();
        int p = (int)((r % 1000) * (r % 1000) / 3334);   /* skewed to small numbers */
        int lp = snprintf(page, sizeof(page), "/articles/%d", p);
        int lc = snprintf(country, sizeof(country), "c%d", (int)(next_rand() % 40));
        dimval d[2] = {{page, (uint32_t)lp, false}, {country, (uint32_t)lc, false}};
        void *row = vtable_upsert(t, ps + 60 * (int64_t)(next_rand() % 1440), d);
        for (size_t m = 0; m < l->n; m++)
            row_add(l, row, m, (double)(next_rand() % 5000));
    }
    seg_blob b = {0};
    double t0 = now_ms();
    CHECK_INT(seg_build(t, ps, pe, GRAN_MINUTE, &b), 0);
    double t1 = now_ms();
    segment *s = NULL;
    CHECK_INT(seg_decode(b.p, b.len, l, 2, &s), 0);
    double t2 = now_ms();
    if (s) {
        size_t rows = 0;
        for (size_t i = 0; i < INFO(s)->nlevels; i++)
            rows += INFO(s)->nrows[i];
        size_t r0 = INFO(s)->nrows[0];
        printf("size (%s): %zu rows (+%zu roll-up rows); persisted %zu bytes = %.2f bytes/row "
               "(%.2f per row of every level); in memory %.1f bytes/row (a view table: %.1f)\n",
               what, r0, rows - r0, b.len, (double)b.len / (double)r0,
               (double)b.len / (double)rows, (double)seg_bytes(s) / (double)rows,
               (double)vtable_bytes(t) / (double)vtable_rows(t));
        printf("size (%s): built in %.1f ms, decoded in %.1f ms\n", what, t1 - t0, t2 - t1);
        const seg_info *in = INFO(s);
        for (size_t lv = in->nlevels; lv-- > 1;) {
            segment *x = NULL;
            double t3 = now_ms();
            CHECK_INT(seg_decode_from(b.p, in->need[lv], lv, l, 2, &x), 0);
            printf("size (%s): from level %zu (%s, %zu rows): reads %zu bytes, decoded in %.1f ms, "
                   "holds %zu bytes\n", what, lv, gran_name(in->unit[lv]), in->nrows[lv],
                   in->need[lv], now_ms() - t3, x ? seg_bytes(x) : 0);
            seg_free(x);
        }
    }
    seg_free(s);
    seg_blob_free(&b);
    vtable_free(t);
}

int main(void)
{
    five = layout_of(NMETRICS5, MT_COUNT, MT_SUM, MT_MIN, MT_MAX, MT_AVG);
    test_levels_and_rollups();
    test_merge_tables();
    test_build_errors();
    test_dictionaries();
    test_wide_ids();
    test_ranges();
    test_pick_level();
    test_pick_level_long_partition();
    test_format();
    test_damage_cases();
    test_corruption_of(five, "5 metrics");
    agg_layout *heap = heap_layout();
    test_corruption_of(heap, "states owning memory");
    agg_layout *c1 = layout_of(1, MT_COUNT);
    size_report("count only", c1);
    size_report("5 metrics", five);
    free(c1);
    free(heap);
    free(five);
    CHECK_DONE();
}
