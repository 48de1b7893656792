/* Unit tests: the aggregators (core/agg.h) and exact sums (core/xsum.h).
 * - each type's values, empty states and nulls;
 * - merge order independence: random splits of one stream of values,
 *   merged in random orders, give identical state bytes and encodings;
 * - exact sums against an independent big-integer reference, correct
 *   rounding to double, the overflowed state;
 * - encode/decode round trips, and malformed encodings detected;
 * - columns (agg_column_encode/decode): every state back bit for bit, in
 *   the compact form (integers, halves, fractions, negative values) and in
 *   the canonical fallback (empty states, overflowed or huge sums, values
 *   no int64 scales to), the form each takes, and truncations detected. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/agg.h"
#include "core/xsum.h"
#include "tests/unit/aggtest.h"
#include "tests/unit/check.h"
#include "tests/unit/xorshift.h"


/* A value of the kinds metrics see: integers, decimals, tiny and huge
 * fractions, negative numbers and zeros of both signs. */
static double random_value(void)
{
    switch (next_rand() % 8) {
    case 0: return (double)(int64_t)(next_rand() % 2000001) - 1000000;
    case 1: return (double)(next_rand() % 100000) / 100.0;
    case 2: return -(double)(next_rand() % 1000) / 7.0;
    case 3: return ldexp((double)(next_rand() >> 11), -(int)(next_rand() % 60));
    case 4: return ldexp((double)(next_rand() >> 11), (int)(next_rand() % 27));   /* < 2^80 */
    case 5: return next_rand() % 2 ? 0.0 : -0.0;
    case 6: return 0.1 * (double)(next_rand() % 10);
    default: return -ldexp(1.0, (int)(next_rand() % 80));
    }
}

static void test_values(void)
{
    agg_layout *l = layout_of(5, MT_COUNT, MT_SUM, MT_MIN, MT_MAX, MT_AVG);
    uint64_t row[16];
    CHECK(l->size <= sizeof(row));
    CHECK_INT(l->slot[0].off, 0);
    CHECK_INT(agg_count.size, 8);   /* a count is one integer */
    agg_row_init(l, row);
    /* empty: count 0, sum 0, min/max/avg null */
    CHECK_INT(agg_read(l, 0, row, &agg_render_default).i, 0);
    agg_value s = agg_read(l, 1, row, &agg_render_default);
    CHECK_INT(s.kind, AV_INT);
    CHECK_INT(s.i, 0);
    for (size_t i = 2; i < 5; i++)
        CHECK_INT(agg_read(l, i, row, &agg_render_default).kind, AV_NULL);

    const double vals[] = {5, -3, 12.5, 1e6, 0.25};
    for (int k = 0; k < 5; k++)
        for (size_t i = 0; i < 5; i++)
            row_add(l, row, i, vals[k]);
    CHECK_DBL(row_value(l, row, 0), 5);
    CHECK_DBL(row_value(l, row, 1), 1000014.75);
    CHECK_DBL(row_value(l, row, 2), -3);
    CHECK_DBL(row_value(l, row, 3), 1e6);
    CHECK_DBL(row_value(l, row, 4), 1000014.75 / 5);

    /* values a metric cannot take are skipped, for that metric only */
    field_value str = {.kind = FV_STRING, .str = "12", .len = 2};
    field_value missing = {.kind = FV_MISSING};
    field_value inf = {.kind = FV_NUMBER, .num = INFINITY, .str = "1e999", .len = 5};
    for (size_t i = 1; i < 5; i++) {
        l->slot[i].ops->add(agg_state(l, row, i), &l->slot[i].params, &str);
        l->slot[i].ops->add(agg_state(l, row, i), &l->slot[i].params, &missing);
        l->slot[i].ops->add(agg_state(l, row, i), &l->slot[i].params, &inf);
    }
    CHECK_DBL(row_value(l, row, 1), 1000014.75);
    CHECK_DBL(row_value(l, row, 4), 1000014.75 / 5);

    /* rendering */
    jbuf b;
    jb_init(&b);
    for (size_t i = 0; i < 5; i++) {
        agg_render(l, i, row, &agg_render_default, &b);
        jb_lit(&b, " ");
    }
    agg_row_init(l, row);
    for (size_t i = 0; i < 5; i++) {
        agg_render(l, i, row, &agg_render_default, &b);
        jb_lit(&b, " ");
    }
    size_t len;
    char *text = jb_take(&b, &len);
    CHECK_STR(text, "5 1000014.75 -3 1000000 200002.95 0 0 null null null ");
    free(text);

    /* ordering puts nulls aside for the caller */
    uint64_t a[16], c[16];
    agg_row_init(l, a);
    agg_row_init(l, c);
    row_add(l, a, 3, 7);
    bool na, nc;
    CHECK_INT(agg_compare(l, 3, a, c, &agg_render_default, &na, &nc), 0);
    CHECK(!na && nc);
    row_add(l, c, 3, 9);
    CHECK_INT(agg_compare(l, 3, a, c, &agg_render_default, &na, &nc), -1);
    CHECK_INT(agg_compare(l, 3, c, a, &agg_render_default, &na, &nc), 1);
    free(l);
}

/* The same values added in one go, or split at random into parts merged in
 * a random order, give the same state bytes and the same encoding. */
static void test_merge_order(void)
{
    agg_layout *l = layout_of(5, MT_COUNT, MT_SUM, MT_MIN, MT_MAX, MT_AVG);
    enum { N = 2000, PARTS = 16 };
    static double vals[N];
    for (int i = 0; i < N; i++)
        vals[i] = random_value();
    uint64_t whole[16];
    agg_row_init(l, whole);
    for (int i = 0; i < N; i++)
        for (size_t m = 0; m < 5; m++)
            row_add(l, whole, m, vals[i]);
    bytes_w ew = {0};
    agg_row_encode(l, whole, &ew);

    for (int trial = 0; trial < 50; trial++) {
        uint64_t parts[PARTS][16];
        for (int p = 0; p < PARTS; p++)
            agg_row_init(l, parts[p]);
        for (int i = 0; i < N; i++) {
            int p = (int)(next_rand() % PARTS);
            for (size_t m = 0; m < 5; m++)
                row_add(l, parts[p], m, vals[(i * 7919 + trial) % N]);   /* permuted order */
        }
        /* merge in a random tree: repeatedly merge two random survivors */
        int alive[PARTS], n = PARTS;
        for (int p = 0; p < PARTS; p++)
            alive[p] = p;
        while (n > 1) {
            int i = (int)(next_rand() % (uint64_t)n), j = (int)(next_rand() % (uint64_t)(n - 1));
            if (j >= i)
                j++;
            agg_row_merge(l, parts[alive[i]], parts[alive[j]]);
            alive[j] = alive[--n];
            if (i == n)
                i = j;
        }
        CHECK(memcmp(parts[alive[0]], whole, l->size) == 0);
        bytes_w pw = {0};
        agg_row_encode(l, parts[alive[0]], &pw);
        CHECK_MEM(pw.p, pw.len, ew.p, ew.len);
        bw_free(&pw);
    }

    /* the encoding round-trips, and every truncation is detected */
    uint64_t back[16];
    bytes_r r = br_init(ew.p, ew.len);
    agg_row_decode(l, back, &r);
    CHECK(!r.bad);
    CHECK_INT(br_left(&r), 0);
    CHECK(memcmp(back, whole, l->size) == 0);
    for (size_t cut = 0; cut < ew.len; cut++) {
        r = br_init(ew.p, cut);
        agg_row_decode(l, back, &r);
        CHECK(r.bad);
    }
    bw_free(&ew);
    free(l);
}

/* ---- exact sums against a reference: values as integers of 2^-64 ---- */

/* A reference big integer: 8 limbs of 32 bits, two's complement. */
typedef struct {
    int64_t limb[8];
} big;

static void big_add_scaled(big *b, double v)
{
    /* v * 2^64 exactly as an integer (v's lowest bit is >= 2^-64 here) */
    int e;
    double m = frexp(fabs(v), &e);            /* |v| = m * 2^e, m in [0.5, 1) */
    uint64_t M = (uint64_t)ldexp(m, 53);      /* 53-bit integer mantissa */
    int shift = e - 53 + 64;                  /* |v| * 2^64 = M * 2^shift */
    for (int bit = 0; bit < 53; bit++) {
        if (!((M >> bit) & 1))
            continue;
        int pos = bit + shift;
        b->limb[pos / 32] += (v < 0 ? -1 : 1) * ((int64_t)1 << (pos % 32));
    }
}

static void big_to_words(big *b, uint64_t w[3])
{
    int64_t carry = 0;
    uint32_t limbs[8];
    for (int i = 0; i < 8; i++) {
        int64_t x = b->limb[i] + carry;
        limbs[i] = (uint32_t)x;
        carry = (x - (int64_t)(uint32_t)x) / ((int64_t)1 << 32);
    }
    for (int i = 0; i < 3; i++)
        w[i] = (uint64_t)limbs[2 * i] | (uint64_t)limbs[2 * i + 1] << 32;
}

static void test_xsum(void)
{
    /* random values on the 2^-64 grid: the sum equals the reference */
    for (int trial = 0; trial < 200; trial++) {
        xsum s;
        xsum_zero(&s);
        big ref = {{0}};
        int n = 1 + (int)(next_rand() % 200);
        for (int i = 0; i < n; i++) {
            double v = random_value();
            if (v != 0 && ilogb(v) - 52 < -64)
                v = 1.0;   /* finer than the grid: tested below */
            xsum_add_double(&s, v);
            big_add_scaled(&ref, v);
        }
        uint64_t w[3];
        big_to_words(&ref, w);
        CHECK(memcmp(w, s.w, sizeof(w)) == 0);
    }

    /* correct rounding (half to even) when read as a double */
    xsum s;
    xsum_zero(&s);
    xsum_add_double(&s, 0.1);
    xsum_add_double(&s, 0.2);
    CHECK_DBL(xsum_double(&s), 0.30000000000000004);   /* math.fsum([0.1, 0.2]) */
    xsum_zero(&s);
    xsum_add_double(&s, 0x1p53);
    xsum_add_double(&s, 1);            /* 2^53 + 1: a tie, rounds to even 2^53 */
    CHECK_DBL(xsum_double(&s), 0x1p53);
    int64_t i64;
    CHECK(xsum_int64(&s, &i64));
    CHECK_INT(i64, 9007199254740993ll);   /* but exact as an integer */
    xsum_add_double(&s, 2);            /* 2^53 + 3: a tie, rounds to even 2^53 + 4 */
    CHECK_DBL(xsum_double(&s), 0x1p53 + 4);
    xsum_zero(&s);
    xsum_add_double(&s, 1e300 / 1e290);   /* 1e10 */
    xsum_add_double(&s, -0.5);
    CHECK(!xsum_int64(&s, &i64));
    CHECK_DBL(xsum_double(&s), 9999999999.5);
    xsum_zero(&s);
    xsum_add_double(&s, -7);
    CHECK(xsum_int64(&s, &i64));
    CHECK_INT(i64, -7);
    CHECK_DBL(xsum_double(&s), -7);
    xsum t;
    xsum_zero(&t);
    xsum_add_double(&t, -6.5);
    CHECK_INT(xsum_cmp(&s, &t), -1);
    CHECK_INT(xsum_cmp(&t, &s), 1);
    CHECK_INT(xsum_cmp(&s, &s), 0);

    /* values finer than 2^-64 round to the grid, half to even */
    xsum_zero(&s);
    xsum_add_double(&s, 0x1p-65);      /* half of the grid step: rounds to 0 */
    xsum_add_double(&s, 0x3p-66);      /* 0.75 steps: rounds to one step */
    CHECK_DBL(xsum_double(&s), 0x1p-64);

    /* int64 limits */
    xsum_zero(&s);
    xsum_add_double(&s, 0x1p62);
    xsum_add_double(&s, 0x1p62);       /* 2^63: beyond int64 */
    CHECK(!xsum_int64(&s, &i64));
    CHECK_DBL(xsum_double(&s), 0x1p63);
    xsum_zero(&s);
    xsum_add_double(&s, -0x1p63);
    CHECK(xsum_int64(&s, &i64));
    CHECK(i64 == INT64_MIN);

    /* the overflowed state absorbs everything and reads as null */
    xsum_zero(&s);
    xsum_add_double(&s, 5);
    xsum_add_double(&s, 0x1p80);
    CHECK(xsum_overflowed(&s));
    xsum_add_double(&s, -0x1p80);
    CHECK(xsum_overflowed(&s));
    xsum_zero(&t);
    xsum_add_double(&t, 1);
    xsum_add(&t, &s);
    CHECK(xsum_overflowed(&t));
    CHECK(!xsum_int64(&t, &i64));
    xsum_zero(&t);
    xsum_add_double(&t, 0x1.fffffffffffffp79);   /* the largest value that fits */
    for (int k = 0; k < 1000; k++)
        xsum_add_double(&t, 0x1.fffffffffffffp79);
    CHECK(!xsum_overflowed(&t));
    CHECK_DBL(xsum_double(&t), 1001 * 0x1.fffffffffffffp79);
    /* a sum past what 192 bits hold overflows rather than wraps */
    xsum big_sum = {{0, 0, UINT64_C(0x7fffffffffffffff)}};
    xsum_add_double(&big_sum, 1);
    CHECK(!xsum_overflowed(&big_sum));
    xsum_add(&big_sum, &big_sum);
    CHECK(xsum_overflowed(&big_sum));

    /* encodings of every form round-trip; a bad form byte is refused */
    xsum forms[3];
    xsum_zero(&forms[0]);
    xsum_add_double(&forms[0], -12345.75);
    forms[1] = t;
    forms[2] = s;   /* overflowed */
    for (int k = 0; k < 3; k++) {
        bytes_w w = {0};
        xsum_encode(&forms[k], &w);
        bytes_r r = br_init(w.p, w.len);
        xsum back;
        xsum_decode(&back, &r);
        CHECK(!r.bad && br_left(&r) == 0);
        CHECK(memcmp(&back, &forms[k], sizeof(back)) == 0);
        bw_free(&w);
    }
    unsigned char bad[] = {0, 7, 0};
    bytes_r r = br_init(bad, sizeof(bad));
    xsum back;
    xsum_decode(&back, &r);
    CHECK(r.bad);
}

static void test_extreme_zeros(void)
{
    /* -0.0 and 0.0: the same bits whichever came first */
    agg_layout *l = layout_of(2, MT_MIN, MT_MAX);
    uint64_t a[4], b[4];
    agg_row_init(l, a);
    agg_row_init(l, b);
    row_add(l, a, 0, -0.0);
    row_add(l, a, 0, 0.0);
    row_add(l, a, 1, 0.0);
    row_add(l, a, 1, -0.0);
    row_add(l, b, 0, 0.0);
    row_add(l, b, 0, -0.0);
    row_add(l, b, 1, -0.0);
    row_add(l, b, 1, 0.0);
    CHECK(memcmp(a, b, l->size) == 0);
    CHECK(!signbit(row_value(l, a, 0)));
    free(l);
}

/* ---- columns ---- */

#define COLROWS 300

/* Column m of rows (l->size bytes each) round-trips bit for bit and
 * every truncation is detected; returns the column's first byte (the
 * form, for those with one). */
static int column_round_trip(const agg_layout *l, size_t m, unsigned char *rows, size_t n)
{
    const void *ptr[COLROWS];
    for (size_t i = 0; i < n; i++)
        ptr[i] = rows + i * l->size;
    bytes_w w = {0};
    agg_column_encode(l, m, ptr, n, &w);
    CHECK(!w.oom);
    unsigned char *back = malloc(n * l->size + 1);
    memset(back, 0xa5, n * l->size + 1);
    bytes_r r = br_init(w.p, w.len);
    agg_column_decode(l, m, back, n, &r);
    CHECK(!r.bad && br_left(&r) == 0);
    for (size_t i = 0; i < n; i++) {
        bytes_w a = {0}, b = {0};
        l->slot[m].ops->encode(agg_cstate(l, rows + i * l->size, m), &a);
        l->slot[m].ops->encode(agg_cstate(l, back + i * l->size, m), &b);
        CHECK_MEM(b.p, b.len, a.p, a.len);
        bw_free(&a);
        bw_free(&b);
    }
    for (size_t cut = 0; cut < w.len; cut++) {
        bytes_r t = br_init(w.p, cut);
        agg_column_decode(l, m, back, n, &t);
        if (!t.bad && n > 0)
            fprintf(stderr, "column of metric %zu cut at %zu of %zu decodes\n", m, cut, w.len);
        CHECK(t.bad || n == 0);
    }
    int form = w.len ? w.p[0] : -1;
    free(back);
    bw_free(&w);
    return form;
}

static void test_columns(void)
{
    agg_layout *l = layout_of(5, MT_COUNT, MT_SUM, MT_MIN, MT_MAX, MT_AVG);
    unsigned char *rows = malloc(COLROWS * l->size);
    /* the kinds of values: integers (form 0, no fraction), halves (form
     * 0 scaled by 2), random values (form 0 or, for 0.1 and the like, the
     * canonical form 1) */
    for (int kind = 0; kind < 3; kind++) {
        for (size_t i = 0; i < COLROWS; i++) {
            unsigned char *row = rows + i * l->size;
            agg_row_init(l, row);
            size_t nv = 1 + next_rand() % 3;
            for (size_t k = 0; k < nv; k++) {
                double v = kind == 0   ? (double)(int64_t)(next_rand() % 200001) - 100000
                           : kind == 1 ? (double)(int64_t)(next_rand() % 2001) / 2 - 500
                                       : random_value();
                for (size_t m = 0; m < l->n; m++)
                    row_add(l, row, m, v);
            }
        }
        for (size_t m = 0; m < l->n; m++) {
            int form = column_round_trip(l, m, rows, COLROWS);
            if (m > 0 && kind < 2)
                CHECK_INT(form, 0);   /* the compact form */
        }
        CHECK_INT(column_round_trip(l, 1, rows, 0), 0);   /* no rows */
    }
    /* counts equal everywhere take no plane: base, width 0 */
    for (size_t i = 0; i < COLROWS; i++) {
        agg_row_init(l, rows + i * l->size);
        row_add(l, rows + i * l->size, 0, 1);
    }
    const void *ptr[COLROWS];
    for (size_t i = 0; i < COLROWS; i++)
        ptr[i] = rows + i * l->size;
    bytes_w w = {0};
    agg_column_encode(l, 0, ptr, COLROWS, &w);
    CHECK_MEM(w.p, w.len, "\x02\x00", 2);
    bw_free(&w);
    /* an empty min/max/avg among others, an overflowed sum, a huge max:
     * the canonical form, still exact */
    for (size_t i = 0; i < COLROWS; i++) {
        unsigned char *row = rows + i * l->size;
        agg_row_init(l, row);
        if (i % 7 == 3)
            continue;   /* empty: min, max and avg are null */
        for (size_t m = 0; m < l->n; m++)
            row_add(l, row, m, i == 11 ? 1e23 : (double)i);
    }
    row_add(l, rows + 20 * l->size, 1, 2e24);     /* overflows that sum */
    row_add(l, rows + 30 * l->size, 3, 0x1p60);   /* beyond 2^53 */
    CHECK_INT(column_round_trip(l, 0, rows, COLROWS), 0x00);   /* counts: base 0 */
    for (size_t m = 1; m < l->n; m++) {
        int form = column_round_trip(l, m, rows, COLROWS);
        if (form != 1)
            fprintf(stderr, "metric %zu: form %d\n", m, form);
        CHECK_INT(form, 1);
    }
    /* malformed columns */
    static const struct {
        size_t m;
        const char *bytes;
        size_t len;
    } bad[] = {
        {0, "\x01\x00", 2},                 /* a count of -1 (base -1, width 0) */
        {0, "\x00\x09", 2},                 /* width 9 */
        {1, "\x02", 1},                      /* an unknown form */
        {1, "\x00\x41\x00\x00", 4},       /* k = 65 */
        {2, "\x00\x40\x00\x00", 4},       /* k = 64 (min/max: at most 63) */
        {2, "\x00\x00\x80\x80\x80\x80\x80\x80\x80\x80\x20\x00", 12},   /* 2^53 */
        {4, "\x00\x00\x00\x00\x02\x00", 6},   /* a count of 0 with a sum of 1 */
    };
    unsigned char one[128];
    CHECK(l->size <= sizeof(one));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        bytes_r r = br_init(bad[i].bytes, bad[i].len);
        agg_column_decode(l, bad[i].m, one, 1, &r);
        if (!r.bad)
            fprintf(stderr, "malformed column %zu decodes\n", i);
        CHECK(r.bad);
        bytes_w a = {0}, b = {0};   /* and leaves an initialized (empty) state */
        l->slot[bad[i].m].ops->encode(agg_cstate(l, one, bad[i].m), &a);
        unsigned char fresh[128];
        agg_row_init(l, fresh);
        l->slot[bad[i].m].ops->encode(agg_cstate(l, fresh, bad[i].m), &b);
        CHECK_MEM(a.p, a.len, b.p, b.len);
        bw_free(&a);
        bw_free(&b);
    }
    free(rows);
    free(l);
}

int main(void)
{
    xorshift_seed(88172645463325252ull);   /* the sequence these tests were written with */
    test_values();
    test_merge_order();
    test_xsum();
    test_extreme_zeros();
    test_columns();
    CHECK_DONE();
}
