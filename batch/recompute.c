/* recompute.c - one batch run (DESIGN.md, "The exactness protocol"):
 *
 *   seal      L -> P, R = the last applied seq
 *   plan      per view, the partitions P touches (all of them for a view
 *             recomputed in full); a view's partition unit is the coarser
 *             of its granularity and batch.partition, so each bucket lies
 *             in exactly one partition
 *   recompute per stream, the archive rows of seq <= R scanned one time
 *             partition at a time in time order (the archive's (stream,
 *             tpart, seq) index), decoding the raw payloads again into
 *             fresh partition tables; each view partition is built into a
 *             segment (core/segment.h) and stored as soon as the scan has
 *             passed its end, and its table freed
 *   persist   the segments, the retired ones and R, in one views-file
 *             transaction (begun before the scan, committed after it)
 *   swap      publish the new versions and drop P, under the state's mutex
 *
 * A partition whose segment was found damaged (batch_request_partition)
 * is planned like one P touches: only it is rebuilt, not its view.
 * Untouched partitions keep their segments, shared with the previous
 * version: P holds every event in (R_prev, R], so a partition without one
 * in P is unchanged.
 * Retention (config_retention_cuts, at the run's start): a view's
 * partitions before its cut are neither planned nor rebuilt, and the next
 * version leaves out its segments before the cut, so they leave the
 * answers with this run's swap; the archive follows after it (maint.c).
 * Runs on the batch thread only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <malloc.h>

#include "batch/batch_int.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/failpoint.h"
#include "core/segment.h"
#include "core/strutil.h"

METRIC_HISTOGRAM(m_run, "lambdad_batch_run_duration_seconds",
                 "Duration of successful batch runs (seal to swap).", metrics_buckets_long);
METRIC_COUNTER(m_scanned, "lambdad_batch_rows_scanned_total",
               "Archived events decoded again by batch runs.");

/* A partition being rebuilt: its start, its table while the scan fills
 * it, then its segment once built and stored (the table is freed then). */
typedef struct {
    int64_t start;
    vtable *t;
    bseg *seg;      /* NULL: not built yet, or no rows */
    bool built;
} wpart;

/* Sorted set of partition starts, with the tables being rebuilt. */
typedef struct {
    wpart *p;
    size_t n, cap;
    bool full;
    int64_t rows_scanned;
    size_t last;               /* index of the last hit: events come in runs */
} work;

static long find(const work *w, int64_t start)
{
    size_t lo = 0, hi = w->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (w->p[mid].start < start)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < w->n && w->p[lo].start == start ? (long)lo : -(long)lo - 1;
}

/* The index of partition start, inserted (at its sorted place, without a
 * table yet) if absent; -1 when out of memory. */
static long work_slot(work *w, int64_t start)
{
    if (w->last < w->n && w->p[w->last].start == start)
        return (long)w->last;
    long i = find(w, start);
    if (i >= 0) {
        w->last = (size_t)i;
        return i;
    }
    size_t at = (size_t)(-i - 1);
    if (w->n == w->cap) {
        size_t ncap = w->cap ? w->cap * 2 : 16;
        wpart *np = realloc(w->p, ncap * sizeof(*np));
        if (!np)
            return -1;
        w->p = np;
        w->cap = ncap;
    }
    memmove(&w->p[at + 1], &w->p[at], (w->n - at) * sizeof(*w->p));
    w->p[at] = (wpart){.start = start, .t = NULL};
    w->n++;
    w->last = at;
    return (long)at;
}

/* The table of partition start, created if absent. */
static vtable *work_table(work *w, int64_t start, const view_def *v)
{
    long i = work_slot(w, start);
    if (i < 0)
        return NULL;
    if (!w->p[i].t)
        w->p[i].t = vtable_new(v->ndims, v->layout);
    return w->p[i].t;
}

static void work_clear(work *w)
{
    for (size_t i = 0; i < w->n; i++) {
        vtable_free(w->p[i].t);
        bseg_unref(w->p[i].seg);
    }
    free(w->p);
    memset(w, 0, sizeof(*w));
}

/* Removes the partitions starting before cut (retention). */
static void drop_before(work *w, int64_t cut)
{
    size_t k = 0;
    while (k < w->n && w->p[k].start < cut) {
        vtable_free(w->p[k].t);
        k++;
    }
    if (k == 0)
        return;   /* also: no partitions at all (w->p may be NULL) */
    memmove(w->p, w->p + k, (w->n - k) * sizeof(*w->p));
    w->n -= k;
    w->last = 0;
}

typedef struct {
    int64_t unit_start;
    gran_t unit;
    work *w;
} touch_ctx;

static int touch_row(const vrow *r, void *ud)
{
    touch_ctx *c = ud;
    int64_t start = gran_floor(c->unit, r->bucket);
    if (start == c->unit_start)
        return 0;   /* same partition as the previous row */
    c->unit_start = start;
    /* Only the set of starts matters here; the tables are made below. */
    return work_slot(c->w, start) >= 0 ? 0 : -ENOMEM;
}

typedef struct {
    batch *b;
    size_t stream_idx;
    work *w;                   /* per view */
    int64_t scanned, undecodable;
    int64_t damaged, unreadable;   /* chunks skipped as damaged, their events */
} scan_ctx;

/* A damaged archive chunk: its events are missing from this run's views.
 * The archive records it for /v1/status and the query watermark; the log
 * names it the first time it is found. */
static int scan_damage(const arch_damage *d, void *ud)
{
    scan_ctx *c = ud;
    c->damaged++;
    c->unreadable += d->events;
    if (!d->known) {
        char what[512];
        log_error("Batch: damaged archive %s; its events are left out of the views",
                  arch_damage_describe(d, what, sizeof(what)));
    }
    return 0;
}

static int scan_event(const arch_event *ev, void *ud)
{
    scan_ctx *c = ud;
    batch *b = c->b;
    const config *cfg = b->cfg;
    if (b->stop)
        return -ECANCELED;
    if ((c->scanned & 4095) == 0)
        b->heartbeat_ms = batch_now_ms();   /* a long run is alive, not stalled */
    int64_t ts_ms;
    const char *reason, *detail;
    int r = event_decode(b->dec, &cfg->streams[c->stream_idx], ev->payload, ev->len, ev->ts_ms,
                         &ts_ms, b->vals, &reason, &detail);
    if (r == -ENOMEM)
        return r;
    c->scanned++;
    if (r < 0) {
        c->undecodable++;
        return 0;
    }
    for (size_t v = 0; v < cfg->nviews; v++) {
        const view_def *vd = &cfg->views[v];
        work *w = &c->w[v];
        if (vd->stream_idx != c->stream_idx || (!w->full && w->n == 0))
            continue;
        int64_t bucket = gran_floor(vd->gran, floor_div(ts_ms, 1000));
        int64_t start = gran_floor(b->unit[v], bucket);
        vtable *t;
        if (w->full) {
            if (start < b->cut[v])
                continue;   /* dropped by retention */
            t = work_table(w, start, vd);
        } else {
            long i = find(w, start);
            if (i < 0)
                continue;   /* a partition this run does not recompute */
            t = w->p[i].t;
        }
        if (!t || event_apply(vd, t, ts_ms, b->vals, b->dec) < 0)
            return -ENOMEM;
        w->rows_scanned++;
    }
    return 0;
}

/* Builds the segment of every partition of view v whose table is complete
 * (its end at or before upto), stores it in the views file (inside the
 * run's transaction) and frees the table: a run holds in memory only the
 * partitions its scan is in, so its peak memory does not grow with the
 * history it recomputes. */
static int build_complete(batch *b, size_t v, work *w, int64_t upto, char **errmsg)
{
    const view_def *vd = &b->cfg->views[v];
    for (size_t i = 0; i < w->n; i++) {
        wpart *wp = &w->p[i];
        int64_t end = gran_next(b->unit[v], wp->start);
        if (wp->built || end > upto)
            continue;
        wp->built = true;
        if (!wp->t || vtable_rows(wp->t) == 0) {
            vtable_free(wp->t);   /* no rows: no segment */
            wp->t = NULL;
            continue;
        }
        seg_blob blob = {0};
        int64_t id = 0, nrows = (int64_t)vtable_rows(wp->t);
        b->heartbeat_ms = batch_now_ms();
        int r = seg_build(wp->t, wp->start, end, vd->gran, &blob);
        if (r < 0) {
            *errmsg = str_printf("building segment %lld of view '%s': %s", (long long)wp->start,
                                 vd->name, strerror(-r));
            return r;
        }
        r = bstore_put_segment(b->store, vd, wp->start, end, blob.p, blob.len, nrows, &id, errmsg);
        if (r == 0 && !(wp->seg = bseg_new(id, wp->start, end, nrows, (int64_t)blob.len)))
            r = -ENOMEM;
        seg_blob_free(&blob);
        vtable_free(wp->t);
        wp->t = NULL;
        if (r < 0)
            return r;
    }
    return 0;
}

/* Is the segment of partition start in version cur marked damaged? */
static bool damaged_at(const bversion *cur, int64_t start)
{
    for (size_t i = 0; i < cur->nsegs; i++)
        if (cur->segs[i]->start == start)
            return __atomic_load_n(&cur->segs[i]->damaged, __ATOMIC_ACQUIRE);
    return false;
}

/* Plans the rebuild of view v's partitions whose segment was found
 * damaged (b->rebuild): sets *taken to how many requests this run
 * answers (removed at its swap) and *repaired to how many of them are
 * still damaged (a run may have replaced one since it was asked for). */
static int plan_repairs(batch *b, size_t v, work *w, size_t *taken, size_t *repaired)
{
    const bversion *cur = vstate_batch(b->vs, v);
    int r = 0;
    pthread_mutex_lock(&b->mu);
    struct rebuild_list *l = &b->rebuild[v];
    *taken = l->n;
    *repaired = 0;
    for (size_t i = 0; i < l->n && r == 0; i++) {
        if (!damaged_at(cur, l->starts[i]))
            continue;
        ++*repaired;
        if (!w->full && work_slot(w, l->starts[i]) < 0)
            r = -ENOMEM;
    }
    pthread_mutex_unlock(&b->mu);
    return r;
}

/* After the swap: forgets the rebuild requests the run answered, counts
 * and logs the repaired partitions. */
static void done_repairs(batch *b, size_t v, size_t taken, size_t repaired)
{
    if (taken == 0)
        return;
    pthread_mutex_lock(&b->mu);
    struct rebuild_list *l = &b->rebuild[v];
    /* requests only ever append, so the run's are the first `taken` */
    memmove(l->starts, l->starts + taken, (l->n - taken) * sizeof(*l->starts));
    l->n -= taken;
    b->vst[v].damaged_rebuilt += (int64_t)repaired;
    pthread_mutex_unlock(&b->mu);
    if (repaired)
        log_notice("Batch: rebuilt %zu damaged partition(s) of view '%s' from the archive",
                   repaired, b->cfg->views[v].name);
}

/* Does view v rebuild the partition holding time partition t? Full views
 * rebuild every partition (their table is made here). */
static bool wants(batch *b, size_t v, work *w, int64_t t)
{
    int64_t start = gran_floor(b->unit[v], t);
    if (start < b->cut[v])
        return false;   /* dropped by retention */
    if (w->full)
        return work_table(w, start, &b->cfg->views[v]) != NULL;
    return find(w, start) >= 0;
}

/* Scans stream si one time partition (batch.partition) at a time, in time
 * order, over the partitions its views rebuild (every one for a view
 * recomputed in full), and builds each view partition's segment as soon as
 * the scan has passed its end. */
static int scan_stream(batch *b, size_t si, work *w, int64_t R, int64_t *scanned, char **errmsg)
{
    const config *cfg = b->cfg;
    const char *name = cfg->streams[si].name;
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    bool full = false;
    for (size_t v = 0; v < cfg->nviews; v++) {
        if (cfg->views[v].stream_idx != si)
            continue;
        full |= w[v].full;
        if (!w[v].full && w[v].n > 0) {
            if (w[v].p[0].start < lo)
                lo = w[v].p[0].start;
            int64_t end = gran_next(b->unit[v], w[v].p[w[v].n - 1].start) - 1;
            if (end > hi)
                hi = end;
        }
    }
    int r = 0;
    if (full) {
        int64_t alo, ahi;
        r = arch_tpart_range(b->ro, name, R, &alo, &ahi, errmsg);
        if (r == 0) {
            lo = alo < lo ? alo : lo;
            hi = ahi > hi ? ahi : hi;
        } else if (r == -ENOENT) {
            r = 0;   /* no events: every full view of this stream becomes empty */
        }
    }
    scan_ctx c = {.b = b, .stream_idx = si, .w = w};
    gran_t bp = cfg->batch_partition;
    for (int64_t t = lo; r == 0 && lo <= hi && t <= hi; t = gran_next(bp, t)) {
        bool needed = false;
        for (size_t v = 0; v < cfg->nviews; v++)
            if (cfg->views[v].stream_idx == si && (w[v].full || w[v].n > 0))
                needed |= wants(b, v, &w[v], t);
        if (needed)
            r = arch_scan(b->ro, name, 0, R, t, t, scan_event, scan_damage, &c, errmsg);
        for (size_t v = 0; r == 0 && v < cfg->nviews; v++)
            if (cfg->views[v].stream_idx == si)
                r = build_complete(b, v, &w[v], gran_next(bp, t), errmsg);
        if (b->stop)
            r = -ECANCELED;
    }
    for (size_t v = 0; r == 0 && v < cfg->nviews; v++)
        if (cfg->views[v].stream_idx == si)
            r = build_complete(b, v, &w[v], INT64_MAX, errmsg);   /* whatever is left */
    *scanned += c.scanned;
    if (c.undecodable)
        log_warn("Batch: %lld archived event(s) of stream '%s' no longer decode and were skipped",
                 (long long)c.undecodable, name);
    if (c.damaged)
        log_warn("Batch: %lld damaged archive chunk(s) of stream '%s' skipped, %lld event(s) "
                 "unreadable (see /v1/status)", (long long)c.damaged, name,
                 (long long)c.unreadable);
    if (r > 0)
        r = -EIO;
    return r;
}

/* The next version of view v: the old one with its rebuilt partitions'
 * segments in place (every partition when full). The ids of the segments
 * they replace are retired in the run's transaction. Takes w's segments. */
static int next_version(batch *b, size_t v, work *w, bversion **out, char **errmsg)
{
    const bversion *old = vstate_batch(b->vs, v);
    bversion *nv = calloc(1, sizeof(*nv));
    size_t cap = old->nsegs + w->n;
    int64_t *retired = malloc((old->nsegs ? old->nsegs : 1) * sizeof(*retired));
    size_t nretired = 0, i = 0, k = 0;
    int r = nv && retired && (nv->segs = malloc((cap ? cap : 1) * sizeof(bseg *))) ? 0 : -ENOMEM;
    while (r == 0 && (i < old->nsegs || k < w->n)) {
        bseg *o = i < old->nsegs ? old->segs[i] : NULL;
        if (k < w->n && (!o || w->p[k].start <= o->start)) {
            wpart *wp = &w->p[k++];   /* rebuilt: its new segment, if it has rows */
            if (o && o->start == wp->start) {
                retired[nretired++] = o->id;
                i++;
            }
            if (wp->seg) {
                nv->segs[nv->nsegs++] = wp->seg;
                wp->seg = NULL;
            }
        } else if (w->full || o->start < b->cut[v]) {
            /* a full rebuild replaces every segment; retention drops old ones */
            retired[nretired++] = o->id;
            i++;
        } else {
            nv->segs[nv->nsegs++] = bseg_ref(o);   /* unchanged: shared by both versions */
            i++;
        }
    }
    if (r == 0)
        r = bstore_retire(b->store, retired, nretired, errmsg);
    if (r == 0)
        r = bstore_put_view(b->store, &b->cfg->views[v], b->unit[v], errmsg);
    free(retired);
    if (r < 0) {
        bversion_unref(nv);   /* its segments' rows go with the rolled-back transaction */
        return r;
    }
    *out = nv;
    return 0;
}

/* Makes the archive's committed WAL frames durable before the views file
 * claims R: with synchronous=NORMAL the archive may lose its newest commits
 * on power loss, and batch views must never be ahead of their archive. */
static void sync_archive(const char *archive_path)
{
    char wal[4096];
    snprintf(wal, sizeof(wal), "%s-wal", archive_path);
    int fd = open(wal, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        fd = open(archive_path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

int batch_run(batch *b, const bool *full, char **errmsg)
{
    const config *cfg = b->cfg;
    size_t nv = cfg->nviews;
    int64_t t0 = batch_now_ms(), R = 0, scanned = 0;
    work *w = calloc(nv ? nv : 1, sizeof(*w));
    bversion **next = calloc(nv ? nv : 1, sizeof(*next));
    bversion **old = calloc(nv ? nv : 1, sizeof(*old));
    size_t *nstarts = calloc(nv ? nv : 1, sizeof(*nstarts));
    size_t *taken = calloc(nv ? nv : 1, sizeof(*taken));
    size_t *repaired = calloc(nv ? nv : 1, sizeof(*repaired));
    int r = w && next && old && nstarts && taken && repaired ? 0 : -ENOMEM;

    if (r == 0 && (r = vstate_seal(b->vs, &R)) < 0) {
        /* L is half moved: answers could be wrong. Stop; a restart
         * recovers everything from the archive. */
        b->failed = true;
    }
    /* Retention: partitions before the cuts are neither recomputed nor
     * kept; they leave the answers with this run's swap. */
    config_retention_cuts(cfg, (int64_t)time(NULL), &b->arch_cut, b->cut);
    /* Plan: which partitions of which view. */
    for (size_t v = 0; r == 0 && v < nv; v++) {
        w[v].full = full[v];
        if (!w[v].full) {
            touch_ctx tc = {.unit_start = INT64_MIN, .unit = b->unit[v], .w = &w[v]};
            r = vstate_pending_foreach(b->vs, v, touch_row, &tc);
        }
        if (r == 0)
            r = plan_repairs(b, v, &w[v], &taken[v], &repaired[v]);
        if (r == 0 && !w[v].full) {
            drop_before(&w[v], b->cut[v]);
            /* Every touched partition gets a table, filled by the scan. */
            for (size_t i = 0; r == 0 && i < w[v].n; i++)
                if (!work_table(&w[v], w[v].p[i].start, &cfg->views[v]))
                    r = -ENOMEM;
        }
    }
    failpoint("after_seal");   /* L moved to P, nothing recomputed yet */
    /* One views-file transaction: segments are stored as the scan builds
     * them; R is claimed, and the run published, only at its commit. */
    bool in_txn = false;
    if (r == 0)
        in_txn = (r = bstore_begin(b->store, errmsg)) == 0;
    for (size_t si = 0; r == 0 && si < cfg->nstreams; si++)
        r = scan_stream(b, si, w, R, &scanned, errmsg);

    /* Persist the rebuilt partitions as segments, then swap. */
    int64_t at = (int64_t)time(NULL);
    if (r == 0) {
        for (size_t v = 0; r == 0 && v < nv; v++) {
            nstarts[v] = w[v].n;
            const bversion *cur = vstate_batch(b->vs, v);
            bool expired = cur->nsegs > 0 && cur->segs[0]->start < b->cut[v];
            if (w[v].full || w[v].n > 0 || expired)
                r = next_version(b, v, &w[v], &next[v], errmsg);
        }
        if (r == 0)
            r = bstore_drop_unknown_views(b->store, cfg->views, nv, errmsg);
        if (r == 0)
            r = bstore_put_watermark(b->store, R, at, errmsg);
        if (r == 0)
            failpoint("before_views_commit");   /* views written, not committed */
        if (r == 0) {
            sync_archive(cfg->archive_path);    /* R is claimed by this commit */
            r = bstore_commit(b->store, errmsg);
        }
        if (r == 0)
            failpoint("before_swap");           /* views durable, P not dropped yet */
    }
    if (r < 0 && in_txn)
        bstore_rollback(b->store);
    if (r == 0) {
        bool *was_next = calloc(nv ? nv : 1, sizeof(bool));
        for (size_t v = 0; was_next && v < nv; v++)
            was_next[v] = next[v] != NULL;
        /* The figures first: whoever sees the new answers sees their run. */
        int64_t dur = batch_now_ms() - t0;
        metrics_observe(&m_run, NULL, (double)dur / 1000.0);
        metrics_counter_add(&m_scanned, NULL, (uint64_t)scanned);
        pthread_mutex_lock(&b->mu);
        for (size_t v = 0; v < nv; v++) {
            batch_view_status *vs = &b->vst[v];
            vs->R = R;
            if (was_next && was_next[v] && (w[v].full || nstarts[v] > 0)) {
                vs->last_run_at = at;
                vs->last_duration_ms = dur;
                vs->last_rows_scanned = w[v].rows_scanned;
                vs->last_partitions = (int64_t)nstarts[v];
                vs->last_full = w[v].full;
                vs->recomputes++;
                vs->rows_scanned_total += w[v].rows_scanned;
                vs->partitions_total += (int64_t)nstarts[v];
                if (w[v].full) {
                    vs->full_recomputes++;
                    b->needs_full[v] = false;
                    vs->needs_full = false;
                }
            }
        }
        b->st.runs++;
        b->st.last_run_at = at;
        b->st.last_duration_ms = dur;
        b->st.last_rows_scanned = scanned;
        b->st.last_R = R;
        b->st.last_error[0] = '\0';
        pthread_mutex_unlock(&b->mu);
        vstate_swap(b->vs, next, R, at, old);   /* takes next[] */
        for (size_t v = 0; v < nv; v++) {
            bversion_unref(old[v]);   /* shared segments keep their other references */
            done_repairs(b, v, taken[v], repaired[v]);
        }
        /* The dropped P and replaced partitions can be most of the heap:
         * give it back to the system, or RSS stays at its high mark. */
        malloc_trim(0);

        free(was_next);
        log_info("Batch run: R=%lld, %lld archived event(s) recomputed in %lld ms",
                 (long long)R, (long long)scanned, (long long)dur);
    } else {
        for (size_t v = 0; next && v < nv; v++)
            bversion_unref(next[v]);   /* drops only its own references */
        if (errmsg && !*errmsg)
            *errmsg = strdup(r == -ECANCELED ? "stopped" : r == -ENOMEM ? "out of memory" : strerror(-r));
    }
    for (size_t v = 0; w && v < nv; v++)
        work_clear(&w[v]);
    free(w);
    free(next);
    free(old);
    free(nstarts);
    free(taken);
    free(repaired);
    return r;
}
