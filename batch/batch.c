/* batch.c - the batch layer's lifecycle and scheduler (see batch.h).
 *
 * The batch thread sleeps on `cv` until batch.interval_s has passed since
 * the last run, a run is requested, or stop is asked; then it runs
 * (recompute.c). `mu` guards the requests and the status figures; the run
 * itself holds no lock of ours (vstate locks what it swaps).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batch/batch_int.h"
#include "core/log.h"
#include "core/strutil.h"

int batch_new(const config *cfg, vstate *vs, batch **out, char **errmsg)
{
    batch *b = calloc(1, sizeof(*b));
    if (!b) {
        *errmsg = strdup("out of memory");
        return -ENOMEM;
    }
    b->cfg = cfg;
    b->vs = vs;
    pthread_mutex_init(&b->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cv, &ca);
    pthread_condattr_destroy(&ca);

    size_t maxfields = 1, nv = cfg->nviews ? cfg->nviews : 1;
    for (size_t i = 0; i < cfg->nstreams; i++)
        if (stream_nvals(&cfg->streams[i]) > maxfields)
            maxfields = stream_nvals(&cfg->streams[i]);
    b->dec = event_decoder_new();
    b->vals = calloc(maxfields, sizeof(*b->vals));
    b->unit = calloc(nv, sizeof(*b->unit));
    b->needs_full = calloc(nv, sizeof(*b->needs_full));
    b->rebuild = calloc(nv, sizeof(*b->rebuild));
    b->vst = calloc(nv, sizeof(*b->vst));
    b->cut = calloc(nv, sizeof(*b->cut));
    b->store_path = str_printf("%s-views", cfg->archive_path);
    if (!b->dec || !b->vals || !b->unit || !b->needs_full || !b->rebuild || !b->vst || !b->cut || !b->store_path) {
        batch_free(b);
        *errmsg = strdup("out of memory");
        return -ENOMEM;
    }
    for (size_t v = 0; v < cfg->nviews; v++)
        b->unit[v] = config_view_unit(cfg, v);
    b->st.archive_oldest = INT64_MIN;
    char *err = NULL;
    int r = arch_open(cfg->archive_path, ARCH_READONLY, cfg->compression_level, &b->ro, &err);
    /* a writer of its own for compaction and retention: the speed
     * thread's connection stays free for ingestion */
    if (r == 0)
        r = arch_open(cfg->archive_path, 0, cfg->compression_level, &b->mw, &err);
    /* its checkpoints are explicit (maint.c), never inside a merge's COMMIT */
    if (r == 0)
        arch_set_autocheckpoint(b->mw, 0);
    if (r == 0)
        r = bstore_open(b->store_path, &b->store, &err);
    if (r < 0) {
        *errmsg = err ? err : strdup("cannot open the batch layer's files");
        batch_free(b);
        return r;
    }
    if (bstore_reset_from(b->store))
        log_notice("Views file %s was written in format %d by an older lambdad; it was emptied "
                   "and every view is rebuilt from the archive", b->store_path,
                   bstore_reset_from(b->store));
    *out = b;
    return 0;
}

/* Archived events that recovery replays into the live tables at most when
 * no batch view covers them yet; beyond, every view is rebuilt from the
 * archive by the first batch run instead, so that start-up time and memory
 * do not grow with history (about a second of replay). */
#define REPLAY_MAX_EVENTS 1000000

int batch_load(batch *b, int64_t archive_last_seq, int64_t archive_events, int64_t *R,
               char **errmsg)
{
    const config *cfg = b->cfg;
    int64_t pR = 0, at = 0;
    int r = bstore_get_watermark(b->store, &pR, &at, errmsg);
    if (r < 0)
        return r;
    if (pR > archive_last_seq) {
        /* The views claim events the archive does not have (restored from
         * another copy, or lost its newest commits): trust the archive. */
        log_warn("Batch views in %s cover seq %lld but the archive ends at %lld; "
                 "recomputing every view from the archive", b->store_path, (long long)pR,
                 (long long)archive_last_seq);
        pR = 0;
        at = 0;
    }
    if (pR == 0 && archive_events > REPLAY_MAX_EVENTS) {
        /* No batch view yet over a long history: rather than replay it all
         * into memory, answer 503 until the first batch run has built every
         * view's segments, and replay nothing (the run covers seq <= R). */
        log_notice("No batch views cover the archive's %lld event(s); every view is built from "
                   "the archive by the first batch run and answers 503 until then",
                   (long long)archive_events);
        for (size_t v = 0; v < cfg->nviews; v++) {
            b->needs_full[v] = true;
            b->vst[v].needs_full = true;
            vstate_set_available(b->vs, v, false);
        }
        vstate_set_batch_watermark(b->vs, archive_last_seq, 0);
        *R = archive_last_seq;
        return 0;
    }
    size_t loaded = 0;
    for (size_t v = 0; v < cfg->nviews; v++) {
        const view_def *vd = &cfg->views[v];
        char fp[17] = "";
        gran_t unit;
        int g = pR > 0 ? bstore_get_view(b->store, vd->name, fp, &unit, errmsg) : -ENOENT;
        if (g < 0 && g != -ENOENT)
            return g;
        bool valid = g == 0 && strcmp(fp, vd->fingerprint) == 0 && unit == b->unit[v];
        if (valid) {
            bversion *ver = NULL;   /* the index only: segments are read on demand */
            r = bstore_load_index(b->store, vd, &ver, errmsg);
            if (r < 0)
                return r;
            bversion **next = calloc(cfg->nviews, sizeof(*next));
            bversion **old = calloc(cfg->nviews, sizeof(*old));
            if (!next || !old) {
                bversion_unref(ver);
                free(next);
                free(old);
                *errmsg = strdup("out of memory");
                return -ENOMEM;
            }
            next[v] = ver;
            vstate_swap(b->vs, next, pR, at, old);
            for (size_t k = 0; k < cfg->nviews; k++)
                bversion_unref(old[k]);   /* the empty initial versions */
            free(next);
            free(old);
            b->vst[v].R = pR;
            loaded++;
        } else if (pR > 0) {
            /* Its persisted rows are missing or stale, and recovery only
             * replays events after R: unanswerable until recomputed. */
            log_notice("View '%s' %s; recomputing it in full from the archive", vd->name,
                       g == -ENOENT ? "is new" : "changed definition");
            b->needs_full[v] = true;
            b->vst[v].needs_full = true;
            vstate_set_available(b->vs, v, false);
        }
    }
    vstate_set_batch_watermark(b->vs, pR, at);
    batch_note_oldest(b);
    if (pR > 0)
        log_info("Loaded %zu persisted batch view(s) covering seq <= %lld", loaded, (long long)pR);
    *R = pR;
    return 0;
}

int64_t batch_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Deletes from the views file the superseded segments that no query holds
 * any more. Batch thread; a failure is logged and the rows are deleted at
 * the next start instead. */
static void collect_garbage(batch *b)
{
    int64_t *ids;
    size_t n;
    vstate_take_garbage(b->vs, &ids, &n);
    if (n == 0)
        return;
    char *err = NULL;
    if (bstore_delete_segments(b->store, ids, n, &err) < 0)
        log_warn("Cannot delete %zu superseded segment(s) from %s (they go at the next start): %s",
                 n, b->store_path, err ? err : "unknown error");
    if (b->on_deleted)   /* nothing reads them any more, deleted or not */
        b->on_deleted(ids, n, b->on_deleted_ud);
    free(err);
    free(ids);
}

void batch_on_deleted_segments(batch *b, void (*fn)(const int64_t *ids, size_t n, void *ud),
                               void *ud)
{
    b->on_deleted = fn;
    b->on_deleted_ud = ud;
}

static void *batch_main(void *arg)
{
    batch *b = arg;
    const config *cfg = b->cfg;
    size_t nv = cfg->nviews;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    bool *full = calloc(nv ? nv : 1, sizeof(bool));
    if (!full) {
        log_error("Batch: out of memory; the batch layer is stopped");
        b->failed = true;
        return NULL;
    }
    int64_t interval = (int64_t)cfg->batch_interval_s * 1000;
    int64_t next = batch_now_ms() + interval;

    pthread_mutex_lock(&b->mu);
    for (size_t v = 0; v < nv; v++)
        if (b->needs_full[v])
            b->run_requested = true;
    while (!b->stop) {
        b->heartbeat_ms = batch_now_ms();
        b->st.next_run_at = (int64_t)time(NULL) + (next - batch_now_ms() + 999) / 1000;
        if (!b->run_requested && batch_now_ms() < next) {
            pthread_mutex_unlock(&b->mu);
            collect_garbage(b);   /* segments the last queries let go of */
            batch_checkpoint(b);
            pthread_mutex_lock(&b->mu);
            if (b->stop || b->run_requested)
                continue;
            /* Wake at least every second to show the thread is alive. */
            int64_t wake = next < batch_now_ms() + 1000 ? next : batch_now_ms() + 1000;
            struct timespec until = {.tv_sec = wake / 1000, .tv_nsec = (wake % 1000) * 1000000};
            pthread_cond_timedwait(&b->cv, &b->mu, &until);
            continue;
        }
        b->run_requested = false;
        for (size_t v = 0; v < nv; v++)
            full[v] = b->needs_full[v];
        b->st.running = true;
        pthread_mutex_unlock(&b->mu);

        char *err = NULL;
        int r = batch_run(b, full, &err);
        collect_garbage(b);
        if (r == 0)
            batch_maintain(b, b->st.last_R);   /* last_R: written by this thread only */

        pthread_mutex_lock(&b->mu);
        b->st.running = false;
        if (r < 0 && r != -ECANCELED) {
            b->st.failures++;
            snprintf(b->st.last_error, sizeof(b->st.last_error), "%s", err ? err : "failed");
            log_error("Batch run failed (the pending events stay live and the next run retries "
                      "them): %s", err ? err : "unknown error");
        }
        free(err);
        if (b->failed)
            break;
        next = batch_now_ms() + interval;
    }
    pthread_mutex_unlock(&b->mu);
    free(full);
    return NULL;
}

int batch_start(batch *b, char **errmsg)
{
    int r = pthread_create(&b->thread, NULL, batch_main, b);
    if (r != 0) {
        *errmsg = str_printf("cannot start the batch thread: %s", strerror(r));
        return -r;
    }
    b->started = true;
    return 0;
}

void batch_request(batch *b, long view_idx)
{
    pthread_mutex_lock(&b->mu);
    if (view_idx >= 0 && (size_t)view_idx < b->cfg->nviews) {
        b->needs_full[view_idx] = true;
        b->vst[view_idx].needs_full = true;
    }
    b->run_requested = true;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

void batch_request_partition(batch *b, size_t view_idx, int64_t start)
{
    pthread_mutex_lock(&b->mu);
    struct rebuild_list *l = view_idx < b->cfg->nviews ? &b->rebuild[view_idx] : NULL;
    bool known = false;
    for (size_t i = 0; l && i < l->n && !known; i++)
        known = l->starts[i] == start;
    if (l && !known && l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 4;
        int64_t *ns = realloc(l->starts, ncap * sizeof(*ns));
        if (ns) {
            l->starts = ns;
            l->cap = ncap;
        }
    }
    if (l && !known && l->n < l->cap)
        l->starts[l->n++] = start;
    else if (l && !known)   /* out of memory: the whole view is rebuilt instead */
        b->needs_full[view_idx] = b->vst[view_idx].needs_full = true;
    b->run_requested = true;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

void batch_stop(batch *b)
{
    if (!b || !b->started)
        return;
    pthread_mutex_lock(&b->mu);
    b->stop = true;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
    pthread_join(b->thread, NULL);
    b->started = false;
}

bool batch_failed(batch *b)
{
    return b->failed;
}

int64_t batch_since_heartbeat_ms(batch *b)
{
    return b->started ? batch_now_ms() - b->heartbeat_ms : 0;
}

void batch_free(batch *b)
{
    if (!b)
        return;
    batch_stop(b);
    bstore_close(b->store);
    arch_close(b->ro);
    arch_close(b->mw);
    event_decoder_free(b->dec);
    free(b->vals);
    free(b->unit);
    free(b->needs_full);
    for (size_t v = 0; b->rebuild && v < b->cfg->nviews; v++)
        free(b->rebuild[v].starts);
    free(b->rebuild);
    free(b->vst);
    free(b->cut);
    free(b->store_path);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    free(b);
}

void batch_get_status(batch *b, batch_status *st)
{
    pthread_mutex_lock(&b->mu);
    *st = b->st;
    pthread_mutex_unlock(&b->mu);
}

void batch_get_view_status(batch *b, size_t v, batch_view_status *st)
{
    pthread_mutex_lock(&b->mu);
    *st = b->vst[v];
    st->needs_full = b->needs_full[v];
    st->damaged_waiting = b->rebuild[v].n;
    for (size_t i = 0; i < b->rebuild[v].n && i < BATCH_DAMAGED_LIST; i++)
        st->damaged_starts[i] = b->rebuild[v].starts[i];
    pthread_mutex_unlock(&b->mu);
}
