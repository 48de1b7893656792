/* Unit tests: view table upsert, null vs empty dimensions, merge, growth. */
#include "core/vtable.h"
#include "tests/unit/check.h"
#include "tests/unit/aggtest.h"

#include <stdio.h>

typedef struct {
    int64_t rows, count, sum_bucket;
} totals;

static agg_layout *count1;   /* one count */

static int add_up(const vrow *r, void *ud)
{
    totals *t = ud;
    t->rows++;
    t->count += row_count(count1, r->cells, 0);
    t->sum_bucket += r->bucket;
    return 0;
}

static int stop_at_first(const vrow *r, void *ud)
{
    (void)r;
    (*(int *)ud)++;
    return 42;
}

static void count_one(vtable *t, int64_t bucket, const dimval *d)
{
    row_add(vtable_layout(t), vtable_upsert(t, bucket, d), 0, 0);
}

static int64_t count_of(vtable *t, int64_t bucket, const dimval *d)
{
    return row_count(vtable_layout(t), vtable_upsert(t, bucket, d), 0);
}

int main(void)
{
    count1 = layout_of(1, MT_COUNT);
    agg_layout *count2 = layout_of(2, MT_COUNT, MT_COUNT), *sum1 = layout_of(1, MT_SUM);
    vtable *t = vtable_new(2, count1);
    CHECK(t != NULL);
    dimval a[2] = {{"de", 2, false}, {"/x", 2, false}};
    dimval null_dim[2] = {{NULL, 0, true}, {"/x", 2, false}};
    dimval empty_dim[2] = {{"", 0, false}, {"/x", 2, false}};
    /* same dims split differently must be different keys */
    dimval split1[2] = {{"ab", 2, false}, {"c", 1, false}};
    dimval split2[2] = {{"a", 1, false}, {"bc", 2, false}};

    count_one(t, 60, a);
    count_one(t, 60, a);
    count_one(t, 120, a);
    count_one(t, 60, null_dim);
    count_one(t, 60, empty_dim);
    count_one(t, 60, split1);
    count_one(t, 60, split2);
    CHECK_INT(vtable_rows(t), 6);
    CHECK_INT(count_of(t, 60, a), 2);
    CHECK_INT(count_of(t, 60, null_dim), 1);
    CHECK_INT(count_of(t, 60, empty_dim), 1);

    /* many rows force growth; every count survives */
    char name[32];
    for (int i = 0; i < 100000; i++) {
        int len = snprintf(name, sizeof(name), "k%d", i % 50000);
        dimval d[2] = {{name, (uint32_t)len, false}, {NULL, 0, true}};
        count_one(t, i % 3, d);
    }
    totals tt = {0};
    CHECK_INT(vtable_foreach(t, add_up, &tt), 0);
    /* (i%50000, i%3) pairs for i<100000: 100000 distinct values of i mod 150000 */
    CHECK_INT(tt.rows, 6 + 100000);
    CHECK_INT(tt.count, 7 + 100000);
    CHECK(vtable_bytes(t) > 100000 * 16);

    int calls = 0;
    CHECK_INT(vtable_foreach(t, stop_at_first, &calls), 42);
    CHECK_INT(calls, 1);

    /* merge: overlapping keys add, new keys appear; mismatched shapes refused */
    vtable *u = vtable_new(2, count1);
    count_one(u, 60, a);
    count_one(u, 999, a);
    CHECK_INT(vtable_merge(t, u), 0);
    CHECK_INT(count_of(t, 60, a), 3);
    CHECK_INT(count_of(t, 999, a), 1);
    vtable *w = vtable_new(1, count1), *w2 = vtable_new(2, sum1);
    CHECK_INT(vtable_merge(t, w), -22);
    CHECK_INT(vtable_merge(t, w2), -22);   /* same shape, other metric type */

    /* zero dimensions */
    vtable *z = vtable_new(0, count2);
    count_one(z, 5, NULL);
    count_one(z, 5, NULL);
    CHECK_INT(vtable_rows(z), 1);
    CHECK_INT(count_of(z, 5, NULL), 2);

    vtable_free(t);
    vtable_free(u);
    vtable_free(w);
    vtable_free(w2);
    free(count1);
    free(count2);
    free(sum1);
    vtable_free(z);
    vtable_free(NULL);
    CHECK_DONE();
}
