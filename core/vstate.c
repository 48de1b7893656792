/* vstate.c - batch + pending + live tables of every view (see vstate.h).
 *
 * Locking: `lock` (a writer-preferring rwlock) guards the pointers batch[],
 * pending[], live[], the available flags and the watermark. The table
 * contents change only under the write lock (apply, seal) or are immutable
 * (published batch partitions, sealed P), so readers holding the read lock
 * see a consistent batch(<= R) + P + L.
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

struct vstate {
    const view_def *views;
    size_t nviews;
    pthread_rwlock_t lock;
    bversion **batch;     /* per view, never NULL */
    vtable **pending;     /* per view, NULL when nothing is sealed */
    vtable **live;        /* per view, never NULL */
    bool *available;
    int64_t batch_seq, batch_at, last_seq, pending_events, live_events;
    /* Bumped under the write lock by every change (apply, seal, swap,
     * availability); read without a lock by answer caches. */
    atomic_uint_fast64_t version;
    uint64_t epoch;          /* under the lock */
    /* Recent deltas (the staged tables of the last applies), oldest first
     * from ring_head; each with the version its apply produced. */
    struct {
        uint64_t version;
        vtable **t;          /* per view */
        size_t rows;
    } ring[DELTA_MAX];
    size_t ring_head, ring_n, ring_rows;
};

static vtable *new_table(const view_def *v)
{
    return vtable_new(v->ndims, v->layout);
}

void bversion_free(bversion *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->nparts; i++)
        vtable_free(b->parts[i].t);
    free(b->parts);
    free(b);
}

static bool shares(const bversion *next, const vtable *t)
{
    for (size_t i = 0; next && i < next->nparts; i++)
        if (next->parts[i].t == t)
            return true;
    return false;
}

void vstate_free_replaced(bversion *old, const bversion *next)
{
    if (!old)
        return;
    for (size_t i = 0; i < old->nparts; i++)
        if (!shares(next, old->parts[i].t))
            vtable_free(old->parts[i].t);
    free(old->parts);
    free(old);
}

vstate *vstate_new(const view_def *views, size_t nviews)
{
    vstate *vs = calloc(1, sizeof(*vs));
    if (!vs)
        return NULL;
    vs->views = views;
    vs->nviews = nviews;
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    /* Queries must not starve the speed thread's short write sections. */
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&vs->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    size_t n = nviews ? nviews : 1;
    vs->batch = calloc(n, sizeof(*vs->batch));
    vs->pending = calloc(n, sizeof(*vs->pending));
    vs->live = calloc(n, sizeof(*vs->live));
    vs->available = calloc(n, sizeof(*vs->available));
    if (!vs->batch || !vs->pending || !vs->live || !vs->available)
        goto fail;
    for (size_t v = 0; v < nviews; v++) {
        vs->batch[v] = calloc(1, sizeof(bversion));
        vs->live[v] = new_table(&views[v]);
        if (!vs->batch[v] || !vs->live[v])
            goto fail;
        vs->available[v] = true;
    }
    return vs;
fail:
    vstate_free(vs);
    return NULL;
}

static void free_views(vtable **t, size_t n)
{
    if (!t)
        return;
    for (size_t v = 0; v < n; v++)
        vtable_free(t[v]);
    free(t);
}

/* Under the write lock: forget every delta (a new epoch begins). */
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
    ring_clear(vs);
    for (size_t v = 0; v < vs->nviews; v++) {
        if (vs->batch)
            bversion_free(vs->batch[v]);
        if (vs->pending)
            vtable_free(vs->pending[v]);
        if (vs->live)
            vtable_free(vs->live[v]);
    }
    free(vs->batch);
    free(vs->pending);
    free(vs->live);
    free(vs->available);
    pthread_rwlock_destroy(&vs->lock);
    free(vs);
}

int vstate_apply(vstate *vs, vtable **stage, int64_t events, int64_t last_seq, bool keep_delta)
{
    int r = 0;
    vtable **kept = keep_delta ? calloc(vs->nviews ? vs->nviews : 1, sizeof(*kept)) : NULL;
    if (keep_delta && !kept)
        return -ENOMEM;
    size_t rows = 0;
    pthread_rwlock_wrlock(&vs->lock);
    for (size_t v = 0; v < vs->nviews; v++) {
        if (!stage[v])
            continue;
        if (keep_delta) {
            r = vtable_merge(vs->live[v], stage[v]);
            if (r < 0)
                break;
            rows += vtable_rows(stage[v]);
            kept[v] = stage[v];   /* read-only from now on */
        } else if (vtable_rows(vs->live[v]) == 0) {
            /* Nothing live yet (e.g. right after a seal or in recovery):
             * take the staged table as it is, no copy. */
            vtable_free(vs->live[v]);
            vs->live[v] = stage[v];
        } else {
            r = vtable_merge(vs->live[v], stage[v]);
            if (r < 0)
                break;
            vtable_free(stage[v]);
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
    pthread_rwlock_unlock(&vs->lock);
    free_views(kept, vs->nviews);   /* only after a failure: else the ring has them */
    return r;
}

int vstate_seal(vstate *vs, int64_t *R)
{
    /* New empty tables are made before taking the lock: the critical
     * section is pointer moves, plus a merge only when an earlier run
     * failed and left P behind. */
    vtable **fresh = calloc(vs->nviews ? vs->nviews : 1, sizeof(*fresh));
    if (!fresh)
        return -ENOMEM;
    for (size_t v = 0; v < vs->nviews; v++) {
        fresh[v] = new_table(&vs->views[v]);
        if (!fresh[v]) {
            for (size_t k = 0; k < v; k++)
                vtable_free(fresh[k]);
            free(fresh);
            return -ENOMEM;
        }
    }
    int r = 0;
    pthread_rwlock_wrlock(&vs->lock);
    for (size_t v = 0; v < vs->nviews && r == 0; v++) {
        if (vs->pending[v]) {
            r = vtable_merge(vs->pending[v], vs->live[v]);
            if (r == 0)
                vtable_free(vs->live[v]);
        } else {
            vs->pending[v] = vs->live[v];
        }
        if (r == 0) {
            vs->live[v] = fresh[v];
            fresh[v] = NULL;
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
    pthread_rwlock_unlock(&vs->lock);
    for (size_t v = 0; v < vs->nviews; v++)
        vtable_free(fresh[v]);
    free(fresh);
    return r;
}

const vtable *vstate_pending(const vstate *vs, size_t v)
{
    return vs->pending[v];
}

const bversion *vstate_batch(const vstate *vs, size_t v)
{
    return vs->batch[v];
}

void vstate_swap(vstate *vs, bversion **next, int64_t R, int64_t at, bversion **old)
{
    vtable **dropped = calloc(vs->nviews ? vs->nviews : 1, sizeof(*dropped));
    pthread_rwlock_wrlock(&vs->lock);
    for (size_t v = 0; v < vs->nviews; v++) {
        old[v] = NULL;
        if (next[v]) {
            old[v] = vs->batch[v];
            vs->batch[v] = next[v];
            next[v] = NULL;
            vs->available[v] = true;
        }
        if (dropped)
            dropped[v] = vs->pending[v];
        else
            vtable_free(vs->pending[v]);   /* no memory for the list: free under the lock */
        vs->pending[v] = NULL;
    }
    vs->pending_events = 0;
    vs->batch_seq = R;
    vs->batch_at = at;
    new_epoch(vs);
    atomic_fetch_add(&vs->version, 1);
    pthread_rwlock_unlock(&vs->lock);
    if (dropped) {
        for (size_t v = 0; v < vs->nviews; v++)
            vtable_free(dropped[v]);
        free(dropped);
    }
}

void vstate_set_available(vstate *vs, size_t v, bool available)
{
    pthread_rwlock_wrlock(&vs->lock);
    vs->available[v] = available;
    new_epoch(vs);
    atomic_fetch_add(&vs->version, 1);
    pthread_rwlock_unlock(&vs->lock);
}

void vstate_set_batch_watermark(vstate *vs, int64_t R, int64_t at)
{
    pthread_rwlock_wrlock(&vs->lock);
    vs->batch_seq = R;
    vs->batch_at = at;
    if (vs->last_seq < R)
        vs->last_seq = R;
    new_epoch(vs);
    atomic_fetch_add(&vs->version, 1);
    pthread_rwlock_unlock(&vs->lock);
}

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
                int (*fn)(const vrow *row, void *ud), void *ud, vstate_watermark *wm)
{
    if (v >= vs->nviews)
        return -EINVAL;
    int r = 0;
    pthread_rwlock_rdlock(&vs->lock);
    if (!vs->available[v]) {
        r = -EAGAIN;
        goto out;
    }
    const bversion *b = vs->batch[v];
    for (size_t i = 0; i < b->nparts && r == 0; i++) {
        const bpart *p = &b->parts[i];
        if (p->end > p->start && (p->end <= from || p->start >= to))
            continue;   /* no bucket of this partition can be asked for */
        r = vtable_foreach(p->t, fn, ud);
    }
    if (r == 0 && vs->pending[v])
        r = vtable_foreach(vs->pending[v], fn, ud);
    if (r == 0)
        r = vtable_foreach(vs->live[v], fn, ud);
out:
    if (wm)
        fill_watermark(vs, wm);
    pthread_rwlock_unlock(&vs->lock);
    return r;
}

int vstate_scan_since(vstate *vs, size_t v, uint64_t epoch, uint64_t since,
                      int (*fn)(const vrow *row, void *ud), void *ud, vstate_watermark *wm)
{
    if (v >= vs->nviews)
        return -EINVAL;
    int r = 0;
    pthread_rwlock_rdlock(&vs->lock);
    uint64_t now = atomic_load(&vs->version);
    /* Within an epoch every version step is one kept delta, so the deltas
     * after `since` are the newest (now - since) entries of the ring. */
    if (epoch != vs->epoch || !vs->available[v] || since > now || now - since > vs->ring_n) {
        r = -ESTALE;
        goto out;
    }
    size_t first = vs->ring_n - (size_t)(now - since);
    for (size_t i = first; i < vs->ring_n && r == 0; i++) {
        size_t at = (vs->ring_head + i) % DELTA_MAX;
        if (vs->ring[at].t[v])
            r = vtable_foreach(vs->ring[at].t[v], fn, ud);
    }
out:
    if (wm)
        fill_watermark(vs, wm);
    pthread_rwlock_unlock(&vs->lock);
    return r;
}

void vstate_get_watermark(vstate *vs, vstate_watermark *wm)
{
    pthread_rwlock_rdlock(&vs->lock);
    fill_watermark(vs, wm);
    pthread_rwlock_unlock(&vs->lock);
}

void vstate_get_view_stats(vstate *vs, size_t v, vstate_view_stats *st)
{
    memset(st, 0, sizeof(*st));
    pthread_rwlock_rdlock(&vs->lock);
    const bversion *b = vs->batch[v];
    st->batch_parts = (int64_t)b->nparts;
    for (size_t i = 0; i < b->nparts; i++) {
        st->batch_rows += (int64_t)vtable_rows(b->parts[i].t);
        st->batch_bytes += (int64_t)vtable_bytes(b->parts[i].t);
    }
    if (vs->pending[v]) {
        st->pending_rows = (int64_t)vtable_rows(vs->pending[v]);
        st->pending_bytes = (int64_t)vtable_bytes(vs->pending[v]);
    }
    st->live_rows = (int64_t)vtable_rows(vs->live[v]);
    st->live_bytes = (int64_t)vtable_bytes(vs->live[v]);
    st->available = vs->available[v];
    pthread_rwlock_unlock(&vs->lock);
}
