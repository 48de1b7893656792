/* Unit tests: the segment cache reads segments from the views file on
 * demand, keeps them within its byte budget (least recently used leave
 * first), never frees a segment a query holds, and reports a damaged or
 * missing segment with a distinct code. */
#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

#include "batch/store.h"
#include "serving/segcache.h"
#include "tests/unit/aggtest.h"
#include "tests/unit/check.h"

static metric_def metrics[1] = {{.name = "n", .type = MT_COUNT, .field_idx = -1}};
static view_def view = {.name = "v", .ndims = 1, .metrics = metrics, .nmetrics = 1,
                        .gran = GRAN_MINUTE, .fingerprint = "0123456789abcdef"};

/* Stores a segment of day d with n rows; returns its id. */
static int64_t put_day(bstore *s, int d, int n)
{
    vtable *t = vtable_new(1, view.layout);
    char key[32];
    for (int i = 0; i < n; i++) {
        int len = snprintf(key, sizeof(key), "k%d", i % 20);   /* 20 groups: a small roll-up */
        dimval dv = {.s = key, .len = (uint32_t)len};
        row_add(view.layout, vtable_upsert(t, (int64_t)d * 86400 + (i % 1440) * 60, &dv), 0, 0);
    }
    seg_blob blob = {0};
    CHECK_INT(seg_build(t, (int64_t)d * 86400, (int64_t)(d + 1) * 86400, GRAN_MINUTE, &blob), 0);
    int64_t id = -1;
    char *err = NULL;
    CHECK_INT(bstore_put_segment(s, &view, (int64_t)d * 86400, (int64_t)(d + 1) * 86400, blob.p,
                                 blob.len, n, &id, &err), 0);
    free(err);
    seg_blob_free(&blob);
    vtable_free(t);
    return id;
}

int main(void)
{
    view.layout = agg_layout_new(view.metrics, NULL, view.nmetrics);
    char dir[] = "/tmp/lambdad-test-segcache-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof(path), "%s/views", dir);
    bstore *s = NULL;
    char *err = NULL;
    CHECK_INT(bstore_open(path, &s, &err), 0);
    CHECK_INT(bstore_begin(s, &err), 0);
    int64_t ids[4];
    for (int d = 0; d < 4; d++)
        ids[d] = put_day(s, d, 2000);
    CHECK_INT(bstore_commit(s, &err), 0);

    /* the size of one decoded segment, to set a budget of two and a half */
    segcache *c = NULL;
    CHECK_INT(segcache_new(path, 1 << 30, &c, &err), 0);
    segcache_ref *r = NULL;
    CHECK_INT(segcache_get(c, ids[0], &view, GRAN_MINUTE, INT64_MIN, INT64_MAX, &r), 0);
    CHECK_INT(seg_info_of(segcache_segment(r))->nrows[0], 1440);
    segcache_stats st;
    segcache_get_stats(c, &st);
    size_t one = st.bytes;
    CHECK(one > 0);
    segcache_put(c, r);
    segcache_free(c);

    CHECK_INT(segcache_new(path, one * 5 / 2, &c, &err), 0);
    segcache_ref *held = NULL;
    CHECK_INT(segcache_get(c, ids[0], &view, GRAN_MINUTE, INT64_MIN, INT64_MAX, &held), 0);   /* a query holds day 0 */
    for (int d = 1; d < 4; d++) {
        CHECK_INT(segcache_get(c, ids[d], &view, GRAN_MINUTE, INT64_MIN, INT64_MAX, &r), 0);
        segcache_put(c, r);
    }
    segcache_get_stats(c, &st);
    CHECK_INT(st.misses, 4);
    CHECK_INT(st.entries, 2);                 /* day 0 (held) and day 3 (newest) */
    CHECK(st.bytes <= st.budget);
    CHECK_INT(st.evictions, 2);               /* days 1 and 2 */
    CHECK_INT(seg_info_of(segcache_segment(held))->nrows[0], 1440);   /* still readable */
    CHECK_INT(segcache_get(c, ids[3], &view, GRAN_MINUTE, INT64_MIN, INT64_MAX, &r), 0);              /* in memory: a hit */
    segcache_put(c, r);
    segcache_get_stats(c, &st);
    CHECK_INT(st.hits, 1);
    segcache_put(c, held);

    /* a query at granularity all reads only the roll-up's prefix; a finer
     * one decodes the segment again from level 0 and replaces the entry,
     * while the coarse one stays readable by whoever holds it */
    segcache_free(c);
    CHECK_INT(segcache_new(path, 1 << 30, &c, &err), 0);
    segcache_ref *coarse = NULL, *fine = NULL;
    CHECK_INT(segcache_get(c, ids[2], &view, GRAN_ALL, INT64_MIN, INT64_MAX, &coarse), 0);
    segcache_get_stats(c, &st);
    uint64_t coarse_bytes = st.read_bytes;
    CHECK(seg_min_level(segcache_segment(coarse)) > 0);
    CHECK_INT(segcache_get(c, ids[2], &view, GRAN_ALL, INT64_MIN, INT64_MAX, &r), 0);   /* a hit */
    segcache_put(c, r);
    CHECK_INT(segcache_get(c, ids[2], &view, GRAN_MINUTE, INT64_MIN, INT64_MAX, &fine), 0);
    CHECK_INT(seg_min_level(segcache_segment(fine)), 0);
    segcache_get_stats(c, &st);
    CHECK_INT(st.hits, 1);
    CHECK_INT(st.misses, 2);
    printf("segment prefix for granularity all: %llu of %llu bytes\n", (unsigned long long)coarse_bytes,
           (unsigned long long)(st.read_bytes - coarse_bytes));
    CHECK(coarse_bytes < st.read_bytes - coarse_bytes);   /* a prefix, not the whole */
    CHECK_INT(st.entries, 1);
    CHECK(seg_info_of(segcache_segment(coarse))->nrows[0] == 1440);
    segcache_put(c, coarse);
    CHECK_INT(segcache_get(c, ids[2], &view, GRAN_ALL, INT64_MIN, INT64_MAX, &r), 0);   /* the fine one serves */
    CHECK(r == fine);
    segcache_put(c, r);
    segcache_put(c, fine);

    /* A segment deleted from the views file leaves the cache at once (not
     * when the budget pushes it out), and that is not an eviction. */
    segcache_get_stats(c, &st);
    uint64_t evictions = st.evictions;
    CHECK_INT(st.entries, 1);
    int64_t gone[] = {ids[2], 4242};   /* cached, and never read */
    segcache_forget(c, gone, 2);
    segcache_get_stats(c, &st);
    CHECK_INT(st.entries, 0);
    CHECK_INT(st.bytes, 0);
    CHECK_INT(st.evictions, evictions);

    /* missing and damaged segments */
    CHECK_INT(segcache_get(c, 9999, &view, GRAN_MINUTE, INT64_MIN, INT64_MAX, &r), -ENOENT);
    sqlite3 *db;
    CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
    char sql[160];
    snprintf(sql, sizeof(sql),
             "UPDATE segdata SET data = substr(data, 1, 40) || x'00' || substr(data, 42) WHERE id = %lld",
             (long long)ids[1]);
    CHECK_INT(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    CHECK_INT(segcache_get(c, ids[1], &view, GRAN_MINUTE, INT64_MIN, INT64_MAX, &r), -EBADMSG);
    segcache_get_stats(c, &st);
    CHECK_INT(st.damaged, 1);
    segcache_free(c);
    bstore_close(s);
    free(err);
    free(view.layout);
    snprintf(sql, sizeof(sql), "rm -rf %s", dir);
    CHECK_INT(system(sql), 0);
    CHECK_DONE();
}
