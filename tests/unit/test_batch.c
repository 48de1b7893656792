/* Unit tests: the answer state's seal and swap (nothing counted twice or
 * lost at any step), partition encoding round trips, the views file. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "batch/store.h"
#include "core/vstate.h"
#include "tests/unit/check.h"
#include "tests/unit/aggtest.h"

static metric_def view_metrics[2] = {
    {.name = "n", .type = MT_COUNT, .field_idx = -1},
    {.name = "s", .type = MT_SUM, .field = "x", .field_idx = 0},
};
static view_def view = {.name = "v", .ndims = 1, .metrics = view_metrics, .nmetrics = 2};

static int sum_rows(const vrow *r, void *ud)
{
    int64_t *total = ud;
    *total += row_count(view.layout, r->cells, 0);
    return 0;
}

static int64_t total(vstate *vs)
{
    int64_t t = 0;
    CHECK_INT(vstate_scan(vs, 0, INT64_MIN, INT64_MAX, sum_rows, &t, NULL), 0);
    return t;
}

static vtable *table_with(const char *dim, int64_t bucket, int n)
{
    vtable *t = vtable_new(1, view.layout);
    dimval d = {.s = dim, .len = (uint32_t)strlen(dim)};
    for (int i = 0; i < n; i++) {
        void *c = vtable_upsert(t, bucket, &d);
        row_add(view.layout, c, 0, 0);
        row_add(view.layout, c, 1, i + 0.5);
    }
    return t;
}

static void test_seal_swap(void)
{
    vstate *vs = vstate_new(&view, 1);
    vtable *stage[1] = {table_with("a", 60, 3)};
    CHECK_INT(vstate_apply(vs, stage, 3, 5, true), 0);
    CHECK(stage[0] == NULL);
    stage[0] = table_with("a", 60, 2);
    CHECK_INT(vstate_apply(vs, stage, 2, 7, true), 0);
    CHECK_INT(total(vs), 5);

    int64_t R = 0;
    CHECK_INT(vstate_seal(vs, &R), 0);
    CHECK_INT(R, 7);
    CHECK_INT(total(vs), 5);                        /* P now, still counted once */
    int64_t pending = 0;
    CHECK_INT(vstate_pending_foreach(vs, 0, sum_rows, &pending), 0);
    CHECK_INT(pending, 5);
    stage[0] = table_with("b", 120, 4);             /* ingestion goes on into L */
    CHECK_INT(vstate_apply(vs, stage, 4, 9, true), 0);
    CHECK_INT(total(vs), 9);

    /* the batch run's result for seq <= 7: the same 5 events */
    bversion *next[1] = {calloc(1, sizeof(bversion))};
    next[0]->parts = calloc(1, sizeof(bpart));
    next[0]->parts[0] = (bpart){.start = 0, .t = table_with("a", 60, 5)};
    next[0]->nparts = 1;
    bversion *old[1];
    vstate_swap(vs, next, R, 1000, old);
    CHECK(next[0] == NULL);
    pending = 0;
    CHECK_INT(vstate_pending_foreach(vs, 0, sum_rows, &pending), 0);
    CHECK_INT(pending, 0);
    CHECK_INT(total(vs), 9);                        /* batch 5 + L 4, P dropped */
    vstate_watermark wm;
    vstate_get_watermark(vs, &wm);
    CHECK_INT(wm.batch_seq, 7);
    CHECK_INT(wm.last_seq, 9);
    CHECK_INT(wm.live_events, 4);
    CHECK_INT(wm.pending_events, 0);
    bversion_unref(old[0]);

    /* a query range skips batch partitions it cannot touch, never P or L */
    next[0] = calloc(1, sizeof(bversion));
    next[0]->parts = calloc(2, sizeof(bpart));
    next[0]->parts[0] = (bpart){.start = 0, .t = table_with("a", 60, 5), .end = 86400};
    next[0]->parts[1] = (bpart){.start = 86400, .t = table_with("c", 86460, 100), .end = 172800};
    next[0]->nparts = 2;
    vstate_swap(vs, next, R, 1000, old);
    bversion_unref(old[0]);
    int64_t t = 0;
    CHECK_INT(vstate_scan(vs, 0, 86400, 172800, sum_rows, &t, NULL), 0);
    CHECK_INT(t, 100 + 4);                          /* day 2 + L */
    t = 0;
    CHECK_INT(vstate_scan(vs, 0, 0, 86400, sum_rows, &t, NULL), 0);
    CHECK_INT(t, 5 + 4);                            /* day 1 + L */
    t = 0;
    CHECK_INT(vstate_scan(vs, 0, 86399, 86401, sum_rows, &t, NULL), 0);
    CHECK_INT(t, 5 + 100 + 4);                      /* touches both days */
    CHECK_INT(total(vs), 109);

    /* a failed run leaves P; the next seal merges L into it */
    CHECK_INT(vstate_seal(vs, &R), 0);
    stage[0] = table_with("b", 120, 1);
    CHECK_INT(vstate_apply(vs, stage, 1, 10, true), 0);
    CHECK_INT(vstate_seal(vs, &R), 0);
    CHECK_INT(R, 10);
    CHECK_INT(total(vs), 110);
    vstate_get_watermark(vs, &wm);
    CHECK_INT(wm.pending_events, 5);

    /* an unavailable view answers -EAGAIN, never a partial answer */
    vstate_set_available(vs, 0, false);
    t = 0;
    CHECK_INT(vstate_scan(vs, 0, INT64_MIN, INT64_MAX, sum_rows, &t, NULL), -EAGAIN);
    CHECK_INT(t, 0);
    vstate_free(vs);
}

static void test_shared_partitions(void)
{
    /* a new version shares unchanged partitions with the old one: freeing
     * the replaced version must keep them (ASan catches a mistake). */
    vtable *keep = table_with("k", 0, 1), *gone = table_with("g", 86400, 1);
    bversion *old = calloc(1, sizeof(*old)), *next = calloc(1, sizeof(*next));
    old->parts = calloc(2, sizeof(bpart));
    old->parts[0] = (bpart){0, keep, 86400};
    old->parts[1] = (bpart){86400, gone, 172800};
    old->nparts = 2;
    next->parts = calloc(2, sizeof(bpart));
    next->parts[0] = (bpart){0, keep, 86400};
    next->parts[1] = (bpart){86400, table_with("g", 86400, 2), 172800};
    next->nparts = 2;
    vtable_ref(keep);   /* next's own reference, as batch/recompute.c takes */
    bversion_unref(old);
    CHECK_INT(vtable_rows(keep), 1);
    bversion_unref(next);
}

/* A scan pins a snapshot: while its callback runs (outside any lock), the
 * batch thread may swap in a new version and drop P, and the speed thread
 * append runs; the scan still sees exactly the state it started from, and
 * the replaced tables live until it ends (ASan catches a use after free). */
typedef struct {
    vstate *vs;
    int64_t seen;
    bool swapped;
} pin_ctx;

static int swap_during_scan(const vrow *r, void *ud)
{
    pin_ctx *c = ud;
    c->seen += row_count(view.layout, r->cells, 0);
    if (c->swapped)
        return 0;
    c->swapped = true;
    bversion *next[1] = {calloc(1, sizeof(bversion))}, *old[1];
    next[0]->parts = calloc(1, sizeof(bpart));
    next[0]->parts[0] = (bpart){.start = 0, .t = table_with("z", 60, 1000)};
    next[0]->nparts = 1;
    vstate_swap(c->vs, next, 99, 2000, old);   /* drops P and the old batch version */
    bversion_unref(old[0]);
    vtable *stage[1] = {table_with("y", 120, 500)};
    CHECK_INT(vstate_apply(c->vs, stage, 500, 100, true), 0);
    return 0;
}

static void test_snapshot_pins(void)
{
    vstate *vs = vstate_new(&view, 1);
    bversion *next[1] = {calloc(1, sizeof(bversion))}, *old[1];
    next[0]->parts = calloc(1, sizeof(bpart));
    next[0]->parts[0] = (bpart){.start = 0, .t = table_with("a", 60, 7)};
    next[0]->nparts = 1;
    vstate_swap(vs, next, 1, 1000, old);
    bversion_unref(old[0]);
    vtable *stage[1] = {table_with("p", 60, 3)};
    CHECK_INT(vstate_apply(vs, stage, 3, 2, true), 0);
    int64_t R;
    CHECK_INT(vstate_seal(vs, &R), 0);               /* P: 3 events */
    stage[0] = table_with("l", 60, 2);
    CHECK_INT(vstate_apply(vs, stage, 2, 3, true), 0);  /* L: 2 events */
    pin_ctx c = {.vs = vs};
    CHECK_INT(vstate_scan(vs, 0, INT64_MIN, INT64_MAX, swap_during_scan, &c, NULL), 0);
    CHECK(c.swapped);
    CHECK_INT(c.seen, 7 + 3 + 2);                    /* the snapshot, not the new state */
    CHECK_INT(total(vs), 1000 + 2 + 500);            /* the new state */
    vstate_free(vs);
}

/* Many small runs are merged in the background into few, with the same
 * answers. */
static void test_merger(void)
{
    vstate *vs = vstate_new(&view, 1);
    for (int i = 0; i < 200; i++) {
        vtable *stage[1] = {table_with(i % 2 ? "a" : "b", 60 * (i % 5), 1 + i % 3)};
        CHECK_INT(vstate_apply(vs, stage, 1 + i % 3, i + 1, true), 0);
    }
    int64_t want = 0;
    for (int i = 0; i < 200; i++)
        want += 1 + i % 3;
    vstate_merge_idle(vs);
    vstate_view_stats st;
    vstate_get_view_stats(vs, 0, &st);
    CHECK(st.live_runs <= 8);
    CHECK_INT(total(vs), want);
    int64_t R;
    CHECK_INT(vstate_seal(vs, &R), 0);
    CHECK_INT(total(vs), want);
    vstate_free(vs);
}

typedef struct {
    int64_t n, bucket;
    double sum;
    int nulls;
} totals;

static int agg_rows(const vrow *r, void *ud)
{
    totals *a = ud;
    a->n += row_count(view.layout, r->cells, 0);
    a->sum += row_value(view.layout, r->cells, 1);
    a->bucket += r->bucket;
    a->nulls += r->dims[0].null;
    return 0;
}

static void test_encoding(void)
{
    vtable *t = vtable_new(1, view.layout);
    dimval dims[3] = {{"x", 1, false}, {NULL, 0, true}, {"", 0, false}};
    for (int i = 0; i < 3; i++) {
        void *c = vtable_upsert(t, 86400 + i * 60, &dims[i]);
        row_add(view.layout, c, 0, 0);
        row_add(view.layout, c, 1, i == 0 ? 7 : 2.25);
    }
    unsigned char *buf;
    size_t len;
    CHECK_INT(bpart_encode(t, 86400, &buf, &len), 0);
    vtable *u = NULL;
    CHECK_INT(bpart_decode(buf, len, 86400, 1, view.layout, &u), 0);
    totals a = {0}, b = {0};
    vtable_foreach(t, agg_rows, &a);
    if (u)
        vtable_foreach(u, agg_rows, &b);
    CHECK_INT(vtable_rows(u), 3);
    CHECK_INT(b.n, a.n);
    CHECK_DBL(b.sum, 11.5);
    CHECK_INT(b.bucket, a.bucket);
    CHECK_INT(b.nulls, 1);
    /* corrupt or truncated blobs are refused, never read past their end */
    vtable *bad = NULL;
    CHECK_INT(bpart_decode(buf, len / 2, 86400, 1, view.layout, &bad), -EBADMSG);
    CHECK(bad == NULL);
    CHECK_INT(bpart_decode(buf, len, 86400, 2, view.layout, &bad), -EBADMSG);   /* wrong shape */
    free(buf);
    vtable_free(t);
    vtable_free(u);
}

static void test_store(void)
{
    char dir[] = "/tmp/lambdad-test-batch-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof(path), "%s/views", dir);
    bstore *s = NULL;
    char *err = NULL;
    CHECK_INT(bstore_open(path, &s, &err), 0);
    int64_t R = -1, at = -1;
    CHECK_INT(bstore_get_watermark(s, &R, &at, &err), 0);
    CHECK_INT(R, 0);
    char fp[17];
    gran_t unit;
    CHECK_INT(bstore_get_view(s, "v", fp, &unit, &err), -ENOENT);

    view_def v = view;
    strcpy(v.fingerprint, "0123456789abcdef");
    bversion ver = {.nparts = 2};
    bpart parts[2] = {{0, table_with("a", 60, 2), 86400}, {86400, table_with("b", 86460, 3), 172800}};
    ver.parts = parts;
    CHECK_INT(bstore_begin(s, &err), 0);
    CHECK_INT(bstore_put_view(s, &v, GRAN_DAY, &ver, NULL, 0, true, &err), 0);
    CHECK_INT(bstore_put_watermark(s, 42, 1000, &err), 0);
    CHECK_INT(bstore_commit(s, &err), 0);

    /* incremental: only partition 86400 is rewritten */
    vtable_free(parts[1].t);
    parts[1].t = table_with("b", 86460, 5);
    int64_t starts[1] = {86400};
    CHECK_INT(bstore_begin(s, &err), 0);
    CHECK_INT(bstore_put_view(s, &v, GRAN_DAY, &ver, starts, 1, false, &err), 0);
    CHECK_INT(bstore_put_watermark(s, 50, 2000, &err), 0);
    CHECK_INT(bstore_commit(s, &err), 0);
    /* a rolled-back transaction leaves nothing */
    CHECK_INT(bstore_begin(s, &err), 0);
    CHECK_INT(bstore_put_watermark(s, 99, 3000, &err), 0);
    bstore_rollback(s);
    bstore_close(s);

    CHECK_INT(bstore_open(path, &s, &err), 0);
    CHECK_INT(bstore_get_watermark(s, &R, &at, &err), 0);
    CHECK_INT(R, 50);
    CHECK_INT(at, 2000);
    CHECK_INT(bstore_get_view(s, "v", fp, &unit, &err), 0);
    CHECK_STR(fp, "0123456789abcdef");
    CHECK_INT(unit, GRAN_DAY);
    bversion *loaded = NULL;
    CHECK_INT(bstore_load_view(s, &v, &loaded, &err), 0);
    CHECK_INT(loaded ? (long long)loaded->nparts : -1, 2);
    if (loaded && loaded->nparts == 2) {
        int64_t t0 = 0, t1 = 0;
        vtable_foreach(loaded->parts[0].t, sum_rows, &t0);
        vtable_foreach(loaded->parts[1].t, sum_rows, &t1);
        CHECK_INT(t0, 2);
        CHECK_INT(t1, 5);
        CHECK_INT(loaded->parts[1].start, 86400);
    }
    bversion_unref(loaded);
    /* views no longer configured are dropped */
    view_def other = {.name = "w"};
    CHECK_INT(bstore_begin(s, &err), 0);
    CHECK_INT(bstore_drop_unknown_views(s, &other, 1, &err), 0);
    CHECK_INT(bstore_commit(s, &err), 0);
    CHECK_INT(bstore_get_view(s, "v", fp, &unit, &err), -ENOENT);
    bstore_close(s);
    vtable_free(parts[0].t);
    vtable_free(parts[1].t);
    free(err);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK_INT(system(cmd), 0);
}

int main(void)
{
    view.layout = agg_layout_new(view.metrics, NULL, view.nmetrics);
    test_seal_swap();
    test_shared_partitions();
    test_snapshot_pins();
    test_merger();
    test_encoding();
    test_store();
    free(view.layout);
    CHECK_DONE();
}
