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
};

static vtable *new_table(const view_def *v)
{
    return vtable_new(v->ndims, v->nmetrics);
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

void vstate_free(vstate *vs)
{
    if (!vs)
        return;
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

int vstate_apply(vstate *vs, vtable **stage, int64_t events, int64_t last_seq)
{
    int r = 0;
    pthread_rwlock_wrlock(&vs->lock);
    for (size_t v = 0; v < vs->nviews; v++) {
        if (!stage[v])
            continue;
        if (vtable_rows(vs->live[v]) == 0) {
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
    atomic_fetch_add(&vs->version, 1);
    pthread_rwlock_unlock(&vs->lock);
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
