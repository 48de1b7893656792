/* Unit tests: the answer state's seal and swap (nothing counted twice or
 * lost at any step), snapshots pinned across swaps, the background merger
 * of live runs, superseded segments handed to the batch thread only once
 * nothing holds them, a damaged segment's partition answering -EAGAIN
 * alone, and the views file's segment index. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "batch/store.h"
#include "core/vstate.h"
#include "tests/unit/aggtest.h"
#include "tests/unit/check.h"

static metric_def view_metrics[2] = {
    {.name = "n", .type = MT_COUNT, .field_idx = -1},
    {.name = "s", .type = MT_SUM, .field = "x", .field_idx = 0},
};
static view_def view = {.name = "v", .ndims = 1, .metrics = view_metrics, .nmetrics = 2};

/* The rows of the "segments" of these tests: segment id -> table. */
#define MAX_SEGS 64
static vtable *seg_rows_of[MAX_SEGS];
static int64_t next_id = 1;

static int sum_rows(const vrow *r, void *ud)
{
    int64_t *total = ud;
    *total += row_count(view.layout, r->cells, 0);
    return 0;
}

static int sum_seg(const bseg *s, void *ud)
{
    return vtable_foreach(seg_rows_of[s->id], sum_rows, ud);
}

static int64_t total(vstate *vs)
{
    int64_t t = 0;
    CHECK_INT(vstate_scan(vs, 0, INT64_MIN, INT64_MAX, sum_seg, sum_rows, &t, NULL), 0);
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

/* A segment of partition [start, end) holding n events of dim at bucket. */
static bseg *seg_with(const char *dim, int64_t bucket, int n, int64_t start, int64_t end)
{
    int64_t id = next_id++;
    CHECK(id < MAX_SEGS);
    seg_rows_of[id] = table_with(dim, bucket, n);
    return bseg_new(id, start, end, 1, 100);
}

static bversion *version_of(size_t n, bseg **segs)
{
    bversion *v = calloc(1, sizeof(*v));
    v->segs = calloc(n ? n : 1, sizeof(bseg *));
    for (size_t i = 0; i < n; i++)
        v->segs[i] = segs[i];
    v->nsegs = n;
    return v;
}

static void swap_in(vstate *vs, bversion *nv, int64_t R)
{
    bversion *next[1] = {nv}, *old[1];
    vstate_swap(vs, next, R, 1000, old);
    CHECK(next[0] == NULL);
    bversion_unref(old[0]);
}

/* The garbage is exactly segment id. */
static void check_garbage_is(vstate *vs, int64_t id)
{
    int64_t *ids;
    size_t n;
    vstate_take_garbage(vs, &ids, &n);
    CHECK_INT(n, 1);
    if (n == 1)
        CHECK_INT(ids[0], id);
    free(ids);
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
    bseg *s1 = seg_with("a", 60, 5, 0, 86400);
    swap_in(vs, version_of(1, &s1), R);
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

    /* a query range skips segments it cannot touch, never P or L */
    bseg *two[2] = {bseg_ref(s1), seg_with("c", 86460, 100, 86400, 172800)};
    swap_in(vs, version_of(2, two), R);
    int64_t t = 0;
    CHECK_INT(vstate_scan(vs, 0, 86400, 172800, sum_seg, sum_rows, &t, NULL), 0);
    CHECK_INT(t, 100 + 4);                          /* day 2 + L */
    t = 0;
    CHECK_INT(vstate_scan(vs, 0, 0, 86400, sum_seg, sum_rows, &t, NULL), 0);
    CHECK_INT(t, 5 + 4);                            /* day 1 + L */
    t = 0;
    CHECK_INT(vstate_scan(vs, 0, 86399, 86401, sum_seg, sum_rows, &t, NULL), 0);
    CHECK_INT(t, 5 + 100 + 4);                      /* touches both days */
    CHECK_INT(total(vs), 109);

    /* a failed run leaves P; the next seal adds L to it */
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
    CHECK_INT(vstate_scan(vs, 0, INT64_MIN, INT64_MAX, sum_seg, sum_rows, &t, NULL), -EAGAIN);
    CHECK_INT(t, 0);
    vstate_free(vs);
}

/* A scan pins a snapshot: while its callback runs (outside any lock), the
 * batch thread may swap in a new version and drop P, and the speed thread
 * append runs; the scan still sees exactly the state it started from, and
 * the replaced segment is handed over as garbage only once the scan let go
 * of it (ASan catches a use after free). */
typedef struct {
    vstate *vs;
    int64_t seen;
    bool swapped;
    int64_t old_id;
} pin_ctx;

static int swap_during_scan(const bseg *s, void *ud)
{
    pin_ctx *c = ud;
    if (!c->swapped) {
        c->swapped = true;
        bseg *z = seg_with("z", 60, 1000, 0, 86400);
        swap_in(c->vs, version_of(1, &z), 99);   /* replaces s, drops P */
        vtable *stage[1] = {table_with("y", 120, 500)};
        CHECK_INT(vstate_apply(c->vs, stage, 500, 100, true), 0);
        int64_t *ids;
        size_t n;
        vstate_take_garbage(c->vs, &ids, &n);
        CHECK_INT(n, 0);                         /* we still hold it */
        free(ids);
    }
    CHECK_INT(s->id, c->old_id);
    return vtable_foreach(seg_rows_of[s->id], sum_rows, &c->seen);
}

static int count_rows(const vrow *r, void *ud)
{
    return sum_rows(r, &((pin_ctx *)ud)->seen);
}

static void test_snapshot_pins(void)
{
    vstate *vs = vstate_new(&view, 1);
    bseg *a = seg_with("a", 60, 7, 0, 86400);
    swap_in(vs, version_of(1, &a), 1);
    vtable *stage[1] = {table_with("p", 60, 3)};
    CHECK_INT(vstate_apply(vs, stage, 3, 2, true), 0);
    int64_t R;
    CHECK_INT(vstate_seal(vs, &R), 0);                  /* P: 3 events */
    stage[0] = table_with("l", 60, 2);
    CHECK_INT(vstate_apply(vs, stage, 2, 3, true), 0);  /* L: 2 events */
    pin_ctx c = {.vs = vs, .old_id = a->id};
    CHECK_INT(vstate_scan(vs, 0, INT64_MIN, INT64_MAX, swap_during_scan, count_rows, &c, NULL), 0);
    CHECK(c.swapped);
    CHECK_INT(c.seen, 7 + 3 + 2);                    /* the snapshot, not the new state */
    CHECK_INT(total(vs), 1000 + 2 + 500);            /* the new state */
    check_garbage_is(vs, c.old_id);   /* the scan is over: now it may go */
    vstate_free(vs);
}

/* Many small runs are merged in the background into few, with the same
 * answers. */
static void test_merger(void)
{
    vstate *vs = vstate_new(&view, 1);
    int64_t want = 0;
    for (int i = 0; i < 200; i++) {
        vtable *stage[1] = {table_with(i % 2 ? "a" : "b", 60 * (i % 5), 1 + i % 3)};
        CHECK_INT(vstate_apply(vs, stage, 1 + i % 3, i + 1, true), 0);
        want += 1 + i % 3;
    }
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

/* Segments kept by the next version are not garbage; those it drops are,
 * and a version freed at shutdown hands over nothing. */
static void test_garbage(void)
{
    vstate *vs = vstate_new(&view, 1);
    bseg *keep = seg_with("k", 0, 1, 0, 86400), *gone = seg_with("g", 86400, 1, 86400, 172800);
    int64_t gone_id = gone->id;   /* gone is freed once garbage */
    bseg *first[2] = {keep, gone};
    swap_in(vs, version_of(2, first), 1);
    bseg *second[2] = {bseg_ref(keep), seg_with("n", 86400, 2, 86400, 172800)};
    swap_in(vs, version_of(2, second), 2);
    check_garbage_is(vs, gone_id);
    CHECK_INT(total(vs), 3);
    vstate_free(vs);   /* current segments are not garbage */
}

static int64_t total_in(vstate *vs, int64_t from, int64_t to, int *rc)
{
    int64_t t = 0;
    *rc = vstate_scan(vs, 0, from, to, sum_seg, sum_rows, &t, NULL);
    return t;
}

/* A damaged segment makes scans over its partition answer -EAGAIN (before
 * any segment is read) and leaves the other partitions answering; only
 * the first to find it is told so; its successor answers again. */
static void test_damaged_partition(void)
{
    vstate *vs = vstate_new(&view, 1);
    bseg *segs[3] = {seg_with("a", 0, 1, 0, 86400), seg_with("b", 86400, 2, 86400, 172800),
                     seg_with("c", 172800, 4, 172800, 259200)};
    int64_t bad = segs[1]->id;
    swap_in(vs, version_of(3, segs), 1);
    uint64_t v0 = vstate_version(vs);
    CHECK(vstate_mark_damaged(vs, 0, bad));
    CHECK(!vstate_mark_damaged(vs, 0, bad));          /* once */
    CHECK(!vstate_mark_damaged(vs, 0, 9999));         /* not a current segment */
    CHECK(vstate_version(vs) == v0 + 1);              /* answers changed (to 503s) */
    int rc;
    int64_t t = total_in(vs, INT64_MIN, INT64_MAX, &rc);
    CHECK_INT(rc, -EAGAIN);
    CHECK_INT(t, 0);                                  /* nothing read, nothing half-summed */
    t = total_in(vs, 100000, 100001, &rc);            /* inside the damaged day */
    CHECK_INT(rc, -EAGAIN);
    t = total_in(vs, 0, 86400, &rc);                  /* the day before */
    CHECK_INT(rc, 0);
    CHECK_INT(t, 1);
    t = total_in(vs, 172800, INT64_MAX, &rc);         /* the day after */
    CHECK_INT(rc, 0);
    CHECK_INT(t, 4);
    vstate_view_stats st;
    vstate_get_view_stats(vs, 0, &st);
    CHECK_INT(st.damaged_parts, 1);
    CHECK(st.available);
    /* the rebuild: a new segment for that day, the others shared */
    bseg *next[3] = {bseg_ref(segs[0]), seg_with("b", 86400, 2, 86400, 172800), bseg_ref(segs[2])};
    swap_in(vs, version_of(3, next), 2);
    CHECK_INT(total(vs), 7);
    vstate_get_view_stats(vs, 0, &st);
    CHECK_INT(st.damaged_parts, 0);
    check_garbage_is(vs, bad);
    vstate_free(vs);
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
    CHECK_INT(bstore_reset_from(s), 0);   /* a new file is not a reset */
    int64_t R = -1, at = -1;
    CHECK_INT(bstore_get_watermark(s, &R, &at, &err), 0);
    CHECK_INT(R, 0);
    char fp[17];
    gran_t unit;
    CHECK_INT(bstore_get_view(s, "v", fp, &unit, &err), -ENOENT);

    view_def v = view;
    strcpy(v.fingerprint, "0123456789abcdef");
    int64_t id1, id2, id3;
    CHECK_INT(bstore_begin(s, &err), 0);
    CHECK_INT(bstore_put_segment(s, &v, 0, 86400, "one", 3, 10, &id1, &err), 0);
    CHECK_INT(bstore_put_segment(s, &v, 86400, 172800, "two!", 4, 20, &id2, &err), 0);
    CHECK_INT(bstore_put_view(s, &v, GRAN_DAY, &err), 0);
    CHECK_INT(bstore_put_watermark(s, 42, 1000, &err), 0);
    CHECK_INT(bstore_commit(s, &err), 0);

    /* a run replaces the second partition: retired in the same transaction */
    CHECK_INT(bstore_begin(s, &err), 0);
    CHECK_INT(bstore_put_segment(s, &v, 86400, 172800, "three", 5, 30, &id3, &err), 0);
    CHECK_INT(bstore_retire(s, &id2, 1, &err), 0);
    CHECK_INT(bstore_put_watermark(s, 50, 2000, &err), 0);
    CHECK_INT(bstore_commit(s, &err), 0);
    /* a rolled-back transaction leaves nothing */
    CHECK_INT(bstore_begin(s, &err), 0);
    int64_t id4;
    CHECK_INT(bstore_put_segment(s, &v, 172800, 259200, "four", 4, 1, &id4, &err), 0);
    CHECK_INT(bstore_put_watermark(s, 99, 3000, &err), 0);
    bstore_rollback(s);

    bversion *idx = NULL;
    CHECK_INT(bstore_load_index(s, &v, &idx, &err), 0);
    CHECK_INT(idx ? (long long)idx->nsegs : -1, 2);
    if (idx && idx->nsegs == 2) {
        CHECK_INT(idx->segs[0]->id, id1);
        CHECK_INT(idx->segs[0]->nrows, 10);
        CHECK_INT(idx->segs[0]->bytes, 3);
        CHECK_INT(idx->segs[1]->id, id3);
        CHECK_INT(idx->segs[1]->start, 86400);
        CHECK_INT(idx->segs[1]->end, 172800);
    }
    bversion_unref(idx);
    bstore_close(s);

    /* reopening deletes what a crash left superseded (id2), keeps the rest */
    CHECK_INT(bstore_open(path, &s, &err), 0);
    CHECK_INT(bstore_get_watermark(s, &R, &at, &err), 0);
    CHECK_INT(R, 50);
    CHECK_INT(at, 2000);
    CHECK_INT(bstore_get_view(s, "v", fp, &unit, &err), 0);
    CHECK_STR(fp, "0123456789abcdef");
    CHECK_INT(unit, GRAN_DAY);
    CHECK_INT(bstore_delete_segments(s, &id1, 1, &err), 0);
    CHECK_INT(bstore_load_index(s, &v, &idx, &err), 0);
    CHECK_INT(idx ? (long long)idx->nsegs : -1, 1);
    bversion_unref(idx);
    /* views no longer configured are dropped with their segments */
    view_def other = {.name = "w"};
    CHECK_INT(bstore_begin(s, &err), 0);
    CHECK_INT(bstore_drop_unknown_views(s, &other, 1, &err), 0);
    CHECK_INT(bstore_commit(s, &err), 0);
    CHECK_INT(bstore_get_view(s, "v", fp, &unit, &err), -ENOENT);
    CHECK_INT(bstore_load_index(s, &v, &idx, &err), 0);
    CHECK_INT(idx ? (long long)idx->nsegs : -1, 0);
    bversion_unref(idx);
    bstore_close(s);
    free(err);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK_INT(system(cmd), 0);
}

int main(void)
{
    view.layout = agg_layout_new(view.metrics, NULL, view.nmetrics);
    test_seal_swap();
    test_snapshot_pins();
    test_merger();
    test_garbage();
    test_damaged_partition();
    test_store();
    for (int i = 0; i < MAX_SEGS; i++)
        vtable_free(seg_rows_of[i]);
    free(view.layout);
    CHECK_DONE();
}
