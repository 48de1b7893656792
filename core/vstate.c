/* vstate.c - batch + pending + live of every view, as snapshots of
 * immutable, reference-counted tables (see vstate.h).
 *
 * Locking: `mu` guards the pointers (batch[], the run lists pending[] and
 * live[], the delta ring), the available flags, the watermark and the
 * marking of damaged segments (their flag is read without it); it is
 * held only to copy or move pointers and take references, never while a
 * table is read or built. Tables are immutable once they are in here.
 * Threads: the speed thread appends runs (vstate_apply), the batch thread
 * seals and swaps, the merger thread (started by vstate_new) combines
 * adjacent runs of one list into one table outside the lock and puts the
 * result in their place if they are still there, readers take snapshots.
 */
#include "core/vstate.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* How many recent deltas are kept, and their total rows at most: enough
 * for answers asked every few seconds, small next to the live tables. */
#define DELTA_MAX 64
#define DELTA_MAX_ROWS 200000
/* Runs of one list beyond this are merged whatever their sizes, so a scan
 * visits few tables. */
#define RUNS_SOFT_MAX 8

typedef struct {
    vtable **t;      /* oldest first */
    size_t n, cap;
} runs;

struct vstate {
    const view_def *views;
    size_t nviews;
    pthread_mutex_t mu;
    bversion **batch;     /* per view, never NULL */
    runs *pending;        /* per view */
    runs *live;           /* per view */
    bool *available;
    int64_t batch_seq, batch_at, last_seq, pending_events, live_events;
    /* Bumped under mu by every change of answers (apply, seal, swap,
     * availability); read without a lock by answer caches. */
    atomic_uint_fast64_t version;
    uint64_t epoch;          /* under mu */
    /* Recent deltas (references to the staged tables of the last applies),
     * oldest first from ring_head; each with the version its apply made. */
    struct {
        uint64_t version;
        vtable **t;          /* per view */
        size_t rows;
    } ring[DELTA_MAX];
    size_t ring_head, ring_n, ring_rows;

    /* the merger thread */
    pthread_t merger;
    bool merger_started, stop;
    pthread_cond_t work, idle;   /* new runs to look at / nothing to do */
    bool merging;                /* the merger is busy (tests wait for !merging) */
    uint64_t applies;            /* bumped by every apply and seal: the merger rechecks */

    /* ids of superseded segments nothing holds any more (vstate_take_garbage) */
    pthread_mutex_t gc_mu;       /* leaf lock: taken by whichever thread drops a segment */
    int64_t *garbage;
    size_t ngarbage, garbage_cap;
    bool closing;                /* vstate_free: segments dropped now stay in the file */
};

static void gc_push(vstate *vs, int64_t id)
{
    pthread_mutex_lock(&vs->gc_mu);
    if (!vs->closing) {
        if (vs->ngarbage == vs->garbage_cap) {
            size_t ncap = vs->garbage_cap ? vs->garbage_cap * 2 : 16;
            int64_t *ng = realloc(vs->garbage, ncap * sizeof(*ng));
            if (ng) {
                vs->garbage = ng;
                vs->garbage_cap = ncap;
            }
        }
        /* Out of memory: the row stays until the next start's clean-up. */
        if (vs->ngarbage < vs->garbage_cap)
            vs->garbage[vs->ngarbage++] = id;
    }
    pthread_mutex_unlock(&vs->gc_mu);
}

void vstate_take_garbage(vstate *vs, int64_t **ids, size_t *n)
{
    pthread_mutex_lock(&vs->gc_mu);
    *ids = vs->garbage;
    *n = vs->ngarbage;
    vs->garbage = NULL;
    vs->ngarbage = vs->garbage_cap = 0;
    pthread_mutex_unlock(&vs->gc_mu);
}

/* ---- versions and run lists ---- */

bseg *bseg_new(int64_t id, int64_t start, int64_t end, int64_t nrows, int64_t bytes)
{
    bseg *s = calloc(1, sizeof(*s));
    if (s)
        *s = (bseg){.id = id, .start = start, .end = end, .nrows = nrows, .bytes = bytes};
    return s;
}

bseg *bseg_ref(bseg *s)
{
    __atomic_fetch_add(&s->refs, 1, __ATOMIC_RELAXED);
    return s;
}

static void gc_push(vstate *vs, int64_t id);

void bseg_unref(bseg *s)
{
    if (!s || __atomic_fetch_sub(&s->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    vstate *gc = __atomic_load_n(&s->gc, __ATOMIC_ACQUIRE);
    if (gc)
        gc_push(gc, s->id);
    free(s);
}

bversion *bversion_ref(bversion *b)
{
    __atomic_fetch_add(&b->refs, 1, __ATOMIC_RELAXED);
    return b;
}

void bversion_unref(bversion *b)
{
    if (!b || __atomic_fetch_sub(&b->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    for (size_t i = 0; i < b->nsegs; i++)
        bseg_unref(b->segs[i]);
    free(b->segs);
    free(b);
}

static int runs_push(runs *r, vtable *t)
{
    if (r->n == r->cap) {
        size_t ncap = r->cap ? r->cap * 2 : 8;
        vtable **nt = realloc(r->t, ncap * sizeof(*nt));
        if (!nt)
            return -ENOMEM;
        r->t = nt;
        r->cap = ncap;
    }
    r->t[r->n++] = t;
    return 0;
}

static void runs_clear(runs *r)
{
    for (size_t i = 0; i < r->n; i++)
        vtable_free(r->t[i]);
    free(r->t);
    *r = (runs){0};
}

/* A copy of the list holding its own references (under mu). */
static int runs_snapshot(const runs *r, runs *out)
{
    *out = (runs){0};
    if (r->n == 0)
        return 0;
    out->t = malloc(r->n * sizeof(*out->t));
    if (!out->t)
        return -ENOMEM;
    for (size_t i = 0; i < r->n; i++)
        out->t[i] = vtable_ref(r->t[i]);
    out->n = out->cap = r->n;
    return 0;
}

static int runs_foreach(const runs *r, int (*fn)(const vrow *row, void *ud), void *ud)
{
    int rc = 0;
    for (size_t i = 0; i < r->n && rc == 0; i++)
        rc = vtable_foreach(r->t[i], fn, ud);
    return rc;
}

/* ---- life cycle ---- */

static void *merger_main(void *arg);

static void free_views(vtable **t, size_t n)
{
    if (!t)
        return;
    for (size_t v = 0; v < n; v++)
        vtable_free(t[v]);
    free(t);
}

vstate *vstate_new(const view_def *views, size_t nviews)
{
    vstate *vs = calloc(1, sizeof(*vs));
    if (!vs)
        return NULL;
    vs->views = views;
    vs->nviews = nviews;
    pthread_mutex_init(&vs->mu, NULL);
    pthread_mutex_init(&vs->gc_mu, NULL);
    pthread_cond_init(&vs->work, NULL);
    pthread_cond_init(&vs->idle, NULL);
    size_t n = nviews ? nviews : 1;
    vs->batch = calloc(n, sizeof(*vs->batch));
    vs->pending = calloc(n, sizeof(*vs->pending));
    vs->live = calloc(n, sizeof(*vs->live));
    vs->available = calloc(n, sizeof(*vs->available));
    if (!vs->batch || !vs->pending || !vs->live || !vs->available)
        goto fail;
    for (size_t v = 0; v < nviews; v++) {
        vs->batch[v] = calloc(1, sizeof(bversion));
        if (!vs->batch[v])
            goto fail;
        vs->available[v] = true;
    }
    if (pthread_create(&vs->merger, NULL, merger_main, vs) != 0)
        goto fail;
    vs->merger_started = true;
    return vs;
fail:
    vstate_free(vs);
    return NULL;
}

/* Under mu: forget every delta (a new epoch begins). */
static void ring_clear(vstate *vs)
{
    for (size_t i = 0; i < vs->ring_n; i++)
        free_views(vs->ring[(vs->ring_head + i) % DELTA_MAX].t, vs->nviews);
    vs->ring_head = vs->ring_n = vs->ring_rows = 0;
}

static void new_epoch(vstate *vs)
{
    ring_clear(vs);
    vs->epoch++;
}

void vstate_free(vstate *vs)
{
    if (!vs)
        return;
    if (vs->merger_started) {
        pthread_mutex_lock(&vs->mu);
        vs->stop = true;
        pthread_cond_signal(&vs->work);
        pthread_mutex_unlock(&vs->mu);
        pthread_join(vs->merger, NULL);
    }
    ring_clear(vs);
    pthread_mutex_lock(&vs->gc_mu);
    vs->closing = true;
    pthread_mutex_unlock(&vs->gc_mu);
    for (size_t v = 0; v < vs->nviews; v++) {
        if (vs->batch)
            bversion_unref(vs->batch[v]);
        if (vs->pending)
            runs_clear(&vs->pending[v]);
        if (vs->live)
            runs_clear(&vs->live[v]);
    }
    free(vs->batch);
    free(vs->pending);
    free(vs->live);
    free(vs->available);
    free(vs->garbage);
    pthread_mutex_destroy(&vs->gc_mu);
    pthread_mutex_destroy(&vs->mu);
    pthread_cond_destroy(&vs->work);
    pthread_cond_destroy(&vs->idle);
    free(vs);
}

/* ---- speed thread ---- */

int vstate_apply(vstate *vs, vtable **stage, int64_t events, int64_t last_seq, bool keep_delta)
{
    int r = 0;
    vtable **kept = keep_delta ? calloc(vs->nviews ? vs->nviews : 1, sizeof(*kept)) : NULL;
    if (keep_delta && !kept)
        return -ENOMEM;
    size_t rows = 0;
    pthread_mutex_lock(&vs->mu);
    for (size_t v = 0; v < vs->nviews && r == 0; v++) {
        if (!stage[v])
            continue;
        if (vtable_rows(stage[v]) == 0) {
            vtable_free(stage[v]);   /* nothing for this view in the transaction */
        } else {
            r = runs_push(&vs->live[v], stage[v]);
            if (r < 0)
                break;
            if (keep_delta) {
                rows += vtable_rows(stage[v]);
                kept[v] = vtable_ref(stage[v]);
            }
        }
        stage[v] = NULL;
    }
    if (r == 0) {
        vs->live_events += events;
        if (last_seq > vs->last_seq)
            vs->last_seq = last_seq;
    }
    if (r == 0 && keep_delta) {
        while (vs->ring_n > 0 && (vs->ring_n == DELTA_MAX || vs->ring_rows + rows > DELTA_MAX_ROWS)) {
            size_t h = vs->ring_head;
            free_views(vs->ring[h].t, vs->nviews);
            vs->ring_rows -= vs->ring[h].rows;
            vs->ring_head = (h + 1) % DELTA_MAX;
            vs->ring_n--;
        }
        size_t at = (vs->ring_head + vs->ring_n) % DELTA_MAX;
        vs->ring[at].version = atomic_load(&vs->version) + 1;   /* the bump below */
        vs->ring[at].t = kept;
        vs->ring[at].rows = rows;
        vs->ring_n++;
        vs->ring_rows += rows;
        kept = NULL;
    } else {
        new_epoch(vs);   /* answers changed without a delta to follow them by */
    }
    atomic_fetch_add(&vs->version, 1);
    vs->applies++;
    pthread_cond_signal(&vs->work);
    pthread_mutex_unlock(&vs->mu);
    free_views(kept, vs->nviews);   /* only after a failure: else the ring has them */
    return r;
}

/* ---- batch thread ---- */

int vstate_seal(vstate *vs, int64_t *R)
{
    int r = 0;
    pthread_mutex_lock(&vs->mu);
    for (size_t v = 0; v < vs->nviews && r == 0; v++) {
        runs *p = &vs->pending[v], *l = &vs->live[v];
        if (p->n == 0) {
            runs tmp = *p;   /* empty: swap the lists, no copy */
            *p = *l;
            *l = tmp;
            continue;
        }
        /* P left behind by a failed run: append L's runs to it. */
        while (l->n > 0 && r == 0) {
            r = runs_push(p, l->t[0]);
            if (r == 0)
                memmove(l->t, l->t + 1, --l->n * sizeof(*l->t));
        }
    }
    if (r == 0) {
        vs->pending_events += vs->live_events;
        vs->live_events = 0;
        *R = vs->last_seq;
    }
    /* Answers are the same after a seal, but the layers moved: caches
     * start over rather than reason about it. */
    new_epoch(vs);
    atomic_fetch_add(&vs->version, 1);
    vs->applies++;
    pthread_cond_signal(&vs->work);
    pthread_mutex_unlock(&vs->mu);
    return r;
}

int vstate_pending_foreach(vstate *vs, size_t v, int (*fn)(const vrow *row, void *ud), void *ud)
{
    runs snap;
    pthread_mutex_lock(&vs->mu);
    int r = runs_snapshot(&vs->pending[v], &snap);
    pthread_mutex_unlock(&vs->mu);
    if (r == 0)
        r = runs_foreach(&snap, fn, ud);
    runs_clear(&snap);
    return r;
}

const bversion *vstate_batch(const vstate *vs, size_t v)
{
    return vs->batch[v];   /* only the batch thread changes it */
}

/* Under mu: marks the segments of old that next does not hold (both are
 * sorted by start) as superseded. */
static void mark_superseded(vstate *vs, const bversion *old, const bversion *next)
{
    size_t k = 0;
    for (size_t i = 0; i < old->nsegs; i++) {
        bseg *s = old->segs[i];
        while (k < next->nsegs && next->segs[k]->start < s->start)
            k++;
        if (k < next->nsegs && next->segs[k] == s)
            continue;
        __atomic_store_n(&s->gc, vs, __ATOMIC_RELEASE);
    }
}

void vstate_swap(vstate *vs, bversion **next, int64_t R, int64_t at, bversion **old)
{
    runs *dropped = calloc(vs->nviews ? vs->nviews : 1, sizeof(*dropped));
    pthread_mutex_lock(&vs->mu);
    for (size_t v = 0; v < vs->nviews; v++) {
        old[v] = NULL;
        if (next[v]) {
            old[v] = vs->batch[v];
            mark_superseded(vs, old[v], next[v]);
            vs->batch[v] = next[v];
            next[v] = NULL;
            vs->available[v] = true;
        }
        if (dropped)
            dropped[v] = vs->pending[v];   /* released below, outside the lock */
        else
            runs_clear(&vs->pending[v]);   /* no memory for the list: under the lock */
        vs->pending[v] = (runs){0};
    }
    vs->pending_events = 0;
    vs->batch_seq = R;
    vs->batch_at = at;
    new_epoch(vs);
    atomic_fetch_add(&vs->version, 1);
    pthread_mutex_unlock(&vs->mu);
    for (size_t v = 0; dropped && v < vs->nviews; v++)
        runs_clear(&dropped[v]);
    free(dropped);
}

void vstate_set_available(vstate *vs, size_t v, bool available)
{
    pthread_mutex_lock(&vs->mu);
    vs->available[v] = available;
    new_epoch(vs);
    atomic_fetch_add(&vs->version, 1);
    pthread_mutex_unlock(&vs->mu);
}

bool vstate_mark_damaged(vstate *vs, size_t v, int64_t id)
{
    bool first = false;
    pthread_mutex_lock(&vs->mu);
    const bversion *b = v < vs->nviews ? vs->batch[v] : NULL;
    for (size_t i = 0; b && i < b->nsegs && !first; i++) {
        bseg *s = b->segs[i];
        if (s->id == id && !__atomic_load_n(&s->damaged, __ATOMIC_ACQUIRE)) {
            __atomic_store_n(&s->damaged, true, __ATOMIC_RELEASE);
            first = true;
        }
    }
    if (first) {   /* answers over that partition turn into 503s */
        new_epoch(vs);
        atomic_fetch_add(&vs->version, 1);
    }
    pthread_mutex_unlock(&vs->mu);
    return first;
}

void vstate_set_batch_watermark(vstate *vs, int64_t R, int64_t at)
{
    pthread_mutex_lock(&vs->mu);
    vs->batch_seq = R;
    vs->batch_at = at;
    if (vs->last_seq < R)
        vs->last_seq = R;
    new_epoch(vs);
    atomic_fetch_add(&vs->version, 1);
    pthread_mutex_unlock(&vs->mu);
}

/* ---- the merger thread ---- */

/* Under mu: a pair of adjacent runs of one list worth merging, newest
 * first: the older run is at most twice the newer's rows (so runs grow
 * geometrically and each row is copied O(log n) times), or the list is
 * long. true with *idx = the older run's index. */
static bool pick_pair(const runs *r, size_t *idx)
{
    for (size_t i = r->n; i >= 2; i--) {
        size_t a = i - 2;
        if (vtable_rows(r->t[a]) <= 2 * vtable_rows(r->t[a + 1]) || r->n > RUNS_SOFT_MAX) {
            *idx = a;
            return true;
        }
    }
    return false;
}

/* Under mu: replaces runs a, b (adjacent, in this order) by m in whichever
 * list still holds them; false when they are gone (sealed and swapped). */
static bool put_merged(vstate *vs, size_t v, vtable *a, vtable *b, vtable *m)
{
    runs *lists[2] = {&vs->live[v], &vs->pending[v]};
    for (int k = 0; k < 2; k++) {
        runs *r = lists[k];
        for (size_t i = 0; i + 1 < r->n; i++) {
            if (r->t[i] != a || r->t[i + 1] != b)
                continue;
            r->t[i] = m;
            memmove(&r->t[i + 1], &r->t[i + 2], (r->n - i - 2) * sizeof(*r->t));
            r->n--;
            return true;
        }
    }
    return false;
}

static void *merger_main(void *arg)
{
    vstate *vs = arg;
    pthread_mutex_lock(&vs->mu);
    while (!vs->stop) {
        vtable *a = NULL, *b = NULL;
        size_t view = 0;
        for (size_t v = 0; v < vs->nviews && !a; v++) {
            runs *lists[2] = {&vs->live[v], &vs->pending[v]};
            for (int k = 0; k < 2 && !a; k++) {
                size_t i;
                if (pick_pair(lists[k], &i)) {
                    a = vtable_ref(lists[k]->t[i]);
                    b = vtable_ref(lists[k]->t[i + 1]);
                    view = v;
                }
            }
        }
        if (!a) {
            vs->merging = false;
            pthread_cond_broadcast(&vs->idle);
            uint64_t seen = vs->applies;
            while (!vs->stop && vs->applies == seen)
                pthread_cond_wait(&vs->work, &vs->mu);
            continue;
        }
        vs->merging = true;
        pthread_mutex_unlock(&vs->mu);
        /* The merge: outside the lock, from immutable tables. */
        const view_def *vd = &vs->views[view];
        vtable *m = vtable_new(vd->ndims, vd->layout);
        bool ok = m && vtable_merge(m, a) == 0 && vtable_merge(m, b) == 0;
        pthread_mutex_lock(&vs->mu);
        bool placed = ok && put_merged(vs, view, a, b, m);
        pthread_mutex_unlock(&vs->mu);
        if (placed) {
            vtable_free(a);   /* the list's references */
            vtable_free(b);
        } else {
            vtable_free(m);   /* out of memory (the runs stay as they are) or moved on */
        }
        vtable_free(a);       /* ours */
        vtable_free(b);
        pthread_mutex_lock(&vs->mu);
        if (!ok) {
            /* Out of memory: wait for the next apply rather than spin. */
            uint64_t seen = vs->applies;
            while (!vs->stop && vs->applies == seen)
                pthread_cond_wait(&vs->work, &vs->mu);
        }
    }
    vs->merging = false;
    pthread_cond_broadcast(&vs->idle);
    pthread_mutex_unlock(&vs->mu);
    return NULL;
}

void vstate_merge_idle(vstate *vs)
{
    pthread_mutex_lock(&vs->mu);
    /* The merger wakes on the signal of the last apply; it is idle once it
     * found nothing to merge since. */
    vs->applies++;
    vs->merging = true;
    pthread_cond_signal(&vs->work);
    while (vs->merging && !vs->stop)
        pthread_cond_wait(&vs->idle, &vs->mu);
    pthread_mutex_unlock(&vs->mu);
}

/* ---- readers ---- */

uint64_t vstate_version(vstate *vs)
{
    return atomic_load(&vs->version);
}

static void fill_watermark(vstate *vs, vstate_watermark *wm)
{
    wm->version = atomic_load(&vs->version);
    wm->epoch = vs->epoch;
    wm->batch_seq = vs->batch_seq;
    wm->batch_at = vs->batch_at;
    wm->last_seq = vs->last_seq;
    wm->pending_events = vs->pending_events;
    wm->live_events = vs->live_events;
}

int vstate_scan(vstate *vs, size_t v, int64_t from, int64_t to,
                int (*seg_fn)(const bseg *seg, void *ud),
                int (*fn)(const vrow *row, void *ud), void *ud, vstate_watermark *wm)
{
    if (v >= vs->nviews)
        return -EINVAL;
    /* The snapshot: references taken under the lock, read outside it. */
    bversion *b = NULL;
    runs p = {0}, l = {0};
    int r = 0;
    pthread_mutex_lock(&vs->mu);
    if (!vs->available[v]) {
        r = -EAGAIN;
    } else {
        b = bversion_ref(vs->batch[v]);
        r = runs_snapshot(&vs->pending[v], &p);
        if (r == 0)
            r = runs_snapshot(&vs->live[v], &l);
    }
    if (wm)
        fill_watermark(vs, wm);
    pthread_mutex_unlock(&vs->mu);

    /* A damaged partition is being rebuilt: no answer without it (checked
     * before any segment is read, so a 503 costs nothing). */
    for (size_t i = 0; r == 0 && b && i < b->nsegs; i++) {
        const bseg *seg = b->segs[i];
        if (seg->end > from && seg->start < to && __atomic_load_n(&seg->damaged, __ATOMIC_ACQUIRE))
            r = -EAGAIN;
    }
    for (size_t i = 0; r == 0 && b && i < b->nsegs; i++) {
        const bseg *seg = b->segs[i];
        if (seg->end <= from || seg->start >= to)
            continue;   /* no bucket of this partition can be asked for */
        r = seg_fn(seg, ud);
    }
    if (r == 0)
        r = runs_foreach(&p, fn, ud);
    if (r == 0)
        r = runs_foreach(&l, fn, ud);
    runs_clear(&p);
    runs_clear(&l);
    bversion_unref(b);
    return r;
}

int vstate_scan_since(vstate *vs, size_t v, uint64_t epoch, uint64_t since,
                      int (*fn)(const vrow *row, void *ud), void *ud, vstate_watermark *wm)
{
    if (v >= vs->nviews)
        return -EINVAL;
    runs deltas = {0};
    int r = 0;
    pthread_mutex_lock(&vs->mu);
    uint64_t now = atomic_load(&vs->version);
    /* Within an epoch every version step is one kept delta, so the deltas
     * after `since` are the newest (now - since) entries of the ring. */
    if (epoch != vs->epoch || !vs->available[v] || since > now || now - since > vs->ring_n) {
        r = -ESTALE;
    } else {
        for (size_t i = vs->ring_n - (size_t)(now - since); i < vs->ring_n && r == 0; i++) {
            vtable *t = vs->ring[(vs->ring_head + i) % DELTA_MAX].t[v];
            if (t && (r = runs_push(&deltas, t)) == 0)
                vtable_ref(t);
        }
    }
    if (wm)
        fill_watermark(vs, wm);
    pthread_mutex_unlock(&vs->mu);
    if (r == 0)
        r = runs_foreach(&deltas, fn, ud);
    runs_clear(&deltas);
    return r;
}

void vstate_get_watermark(vstate *vs, vstate_watermark *wm)
{
    pthread_mutex_lock(&vs->mu);
    fill_watermark(vs, wm);
    pthread_mutex_unlock(&vs->mu);
}

static void add_runs(const runs *r, int64_t *rows, int64_t *bytes, int64_t *n)
{
    for (size_t i = 0; i < r->n; i++) {
        *rows += (int64_t)vtable_rows(r->t[i]);
        *bytes += (int64_t)vtable_bytes(r->t[i]);
    }
    *n += (int64_t)r->n;
}

void vstate_get_view_stats(vstate *vs, size_t v, vstate_view_stats *st)
{
    memset(st, 0, sizeof(*st));
    pthread_mutex_lock(&vs->mu);
    const bversion *b = vs->batch[v];
    st->batch_parts = (int64_t)b->nsegs;
    for (size_t i = 0; i < b->nsegs; i++) {
        st->batch_rows += b->segs[i]->nrows;
        st->batch_bytes += b->segs[i]->bytes;
        st->damaged_parts += __atomic_load_n(&b->segs[i]->damaged, __ATOMIC_ACQUIRE);
    }
    add_runs(&vs->pending[v], &st->pending_rows, &st->pending_bytes, &st->live_runs);
    add_runs(&vs->live[v], &st->live_rows, &st->live_bytes, &st->live_runs);
    st->available = vs->available[v];
    pthread_mutex_unlock(&vs->mu);
}
