/* runtime.c - the running daemon's layers and their lifecycle.
 *
 * A runtime is one config and the layers built from it (archive writer,
 * speed, batch, segment cache, views' state) with the serving_source that
 * reads them. The HTTP server outlives runtimes: a reload builds the next
 * runtime beside the running one and swaps the server over to it
 * (serving_swap), so queries are answered throughout. While the next one
 * opens and replays the archive, the running one is frozen: its consumer
 * and batch threads are stopped (everything consumed is committed, so the
 * replay sees it) and its state stays readable, answering as of the
 * moment it stopped. Nothing is consumed during that replay, as before a
 * restart; the speed layer of the next runtime goes on from the offsets
 * in the archive.
 */
#include "daemon/runtime.h"
#include "daemon/cli.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "archive/archive.h"
#include "core/failpoint.h"
#include "core/log.h"
#include "core/strutil.h"
#include "core/vstate.h"
#include "daemon/notify.h"
#include "daemon/source.h"
#include "serving/segcache.h"
#include "serving/serving.h"

/* One config and the layers built from it. Not moved once opened: the
 * layers keep pointers to ds and src. */
typedef struct {
    config *cfg;             /* borrowed: the lambdad owns the configs */
    vstate *vs;
    batch *bt;
    speed *sp;
    segcache *cache;
    daemon_source ds;
    serving_source src;
} runtime;

struct lambdad {
    serving *srv;
    runtime *rt;
    char restart_required[256];   /* settings a reload changed that need a restart */
};

int lambdad_check_outside(const config *cfg, config_errors *errs)
{
    size_t n0 = errs->n;
    int r = speed_check_config(cfg, errs);
    if (r == -ENOMEM)
        return r;
    char *why = NULL;
    if (arch_check_path(cfg->archive_path, &why) < 0) {
        r = config_error_at(errs, "archive", "path", "%s", why ? why : "out of memory");
        free(why);
        if (r < 0)
            return r;
    }
    return errs->n > n0 ? -EINVAL : 0;
}

/* The archive's chunks are cut by batch.partition; that unit is fixed for
 * the archive's lifetime (batch runs scan partitions by it). */
int check_partition_unit(const config *cfg, arch *w, char **err)
{
    char *stored = NULL;
    const char *want = gran_name(cfg->batch_partition);
    int r = arch_meta_get(w, "partition", &stored, err);
    if (r == -ENOENT)
        return arch_meta_set(w, "partition", want, err);
    if (r < 0)
        return r;
    if (strcmp(stored, want) != 0) {
        if (asprintf(err, "it partitions events by '%s', but batch.partition is '%s' (the unit "
                          "cannot change for an existing archive)", stored, want) < 0)
            *err = NULL;
        r = -EINVAL;
    }
    free(stored);
    return r;
}

/* Stops and frees the layers (the open transaction commits); not the
 * config. Accepts NULL. */
static void runtime_free(runtime *rt)
{
    if (!rt)
        return;
    batch_free(rt->bt);      /* abandons a run in progress: nothing of it is kept */
    segcache_free(rt->cache);   /* after the batch thread, which tells it what it deleted */
    speed_free(rt->sp);      /* commits the open transaction */
    vstate_free(rt->vs);
    free(rt);
}

/* The batch layer deleted superseded segments: the cache drops them. */
static void forget_segments(const int64_t *ids, size_t n, void *cache)
{
    segcache_forget(cache, ids, n);
}

/* Opens the archive and builds the layers from cfg, not started yet; *R:
 * the archive seq the loaded batch views cover. Logs its own failure. */
static runtime *runtime_open(config *cfg, const char *restart_required, int64_t *R)
{
    runtime *rt = calloc(1, sizeof(*rt));
    if (!rt) {
        log_error("Out of memory");
        return NULL;
    }
    rt->cfg = cfg;
    char *err = NULL;
    arch *w = NULL;
    int r = arch_open(cfg->archive_path, 0, cfg->compression_level, &w, &err);
    if (r < 0) {
        log_error("Failed to open archive %s: %s", cfg->archive_path, err ? err : strerror(-r));
        goto fail;
    }
    if (arch_open_note(w))
        log_notice("Archive %s: %s", cfg->archive_path, arch_open_note(w));
    /* The batch thread checkpoints the WAL every second (batch/maint.c):
     * the speed thread's commits checkpoint by themselves only past 64 MiB. */
    arch_set_autocheckpoint(w, 16384);
    arch_damage_count dmg;
    arch_damage_totals(cfg->archive_path, NULL, &dmg);
    if (dmg.chunks > 0)
        log_warn("Archive %s holds %lld damaged chunk(s) found earlier: %lld event(s) cannot be "
                 "read (see /v1/status; lambdad-archive verify checks the whole archive)",
                 cfg->archive_path, (long long)dmg.chunks, (long long)dmg.events);
    r = check_partition_unit(cfg, w, &err);
    /* which topic each stream reads: lambdad-archive extract and drop
     * find a Kafka partition's chunks by it */
    for (size_t i = 0; r == 0 && i < cfg->nstreams; i++)
        r = arch_record_stream_topic(w, cfg->streams[i].name, cfg->streams[i].topic, &err);
    arch_stats ast;
    if (r == 0 && (r = arch_get_stats(w, &ast)) < 0)
        err = strdup("cannot read its statistics");
    if (r < 0) {
        log_error("Failed to open archive %s: %s", cfg->archive_path, err ? err : "?");
        arch_close(w);
        goto fail;
    }
    rt->vs = vstate_new(cfg->views, cfg->nviews);
    if (!rt->vs) {
        log_error("Out of memory");
        arch_close(w);
        goto fail;
    }
    *R = 0;
    r = batch_new(cfg, rt->vs, &rt->bt, &err);
    if (r == 0)
        r = batch_load(rt->bt, ast.last_seq, ast.events, R, &err);
    if (r < 0) {
        log_error("Failed to load the batch views: %s", err ? err : "?");
        arch_close(w);
        goto fail;
    }
    char *views_path = str_printf("%s-views", cfg->archive_path);
    r = views_path ? segcache_new(views_path, (size_t)cfg->serving_cache_mb << 20, &rt->cache, &err) : -ENOMEM;
    free(views_path);
    if (r < 0) {
        log_error("Failed to open the segment cache: %s", err ? err : "out of memory");
        arch_close(w);
        goto fail;
    }
    batch_on_deleted_segments(rt->bt, forget_segments, rt->cache);
    r = speed_new(cfg, rt->vs, w, &rt->sp, &err);   /* takes w, also on failure */
    if (r < 0) {
        log_error("Failed to set up the speed layer: %s", err ? err : "?");
        goto fail;
    }
    rt->ds.cfg = cfg;
    rt->ds.sp = rt->sp;
    rt->ds.vs = rt->vs;
    rt->ds.b = rt->bt;
    rt->ds.cache = rt->cache;
    snprintf(rt->ds.restart_required, sizeof(rt->ds.restart_required), "%s", restart_required);
    daemon_source_init(&rt->ds, &rt->src);
    return rt;
fail:
    free(err);
    runtime_free(rt);
    return NULL;
}

/* Replays the archive after R into the live tables, then starts the batch
 * and speed layers. Logs its own failure. */
static int runtime_run(runtime *rt, int64_t R)
{
    /* Replaying a long stretch of the archive can outlast the unit's start
     * timeout and the watchdog: ask systemd for time first. */
    notify_send("EXTEND_TIMEOUT_USEC=600000000\nWATCHDOG_USEC=600000000\n"
                "STATUS=Recovering: replaying the archive into the live views");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char *err = NULL;
    int r = speed_recover(rt->sp, R, &err);
    if (r < 0) {
        log_error("Recovery failed: %s", err ? err : "?");
        goto out;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    atomic_store(&rt->ds.recovered, true);
    if (notify_watchdog_usec() > 0) {
        char wd[64];
        snprintf(wd, sizeof(wd), "WATCHDOG_USEC=%lld", (long long)notify_watchdog_usec());
        notify_send(wd);   /* back to the unit's own watchdog */
    }
    log_info("Recovery done in %.3f s",
             (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    if ((r = batch_start(rt->bt, &err)) < 0) {
        log_error("Failed to start the batch layer: %s", err ? err : "?");
        goto out;
    }
    if ((r = speed_start(rt->sp, &err)) < 0)
        log_error("Failed to start consuming Kafka: %s", err ? err : "?");
out:
    free(err);
    return r;
}

/* A runtime built and running from cfg, with no server; NULL on failure
 * (logged). */
static runtime *runtime_up(config *cfg, const char *restart_required)
{
    int64_t R;
    runtime *rt = runtime_open(cfg, restart_required, &R);
    if (rt && runtime_run(rt, R) < 0) {
        runtime_free(rt);
        rt = NULL;
    }
    return rt;
}

/* Layers and server from cfg (borrowed): d->rt and d->srv, or both NULL. */
static int start_all(lambdad *d, config *cfg)
{
    int64_t R;
    d->rt = runtime_open(cfg, d->restart_required, &R);
    if (!d->rt)
        return -EIO;
    char *err = NULL;
    int r = serving_start(cfg, &d->rt->src, &d->srv, &err);
    if (r < 0) {
        log_error("Failed to start the HTTP server: %s", err ? err : "?");
        free(err);
    } else {
        log_notice("Listening on %s://%s:%d/", cfg->http_tls_cert_file ? "https" : "http",
                   cfg->http_host, serving_port(d->srv));
        r = runtime_run(d->rt, R);
    }
    if (r < 0) {
        serving_stop(d->srv);
        runtime_free(d->rt);
        d->srv = NULL;
        d->rt = NULL;
    }
    return r;
}

int lambdad_start(config *cfg, lambdad **out)
{
    *out = NULL;
    lambdad *d = calloc(1, sizeof(*d));
    if (!d) {
        log_error("Out of memory");
        config_free(cfg);
        return -ENOMEM;
    }
    int r = start_all(d, cfg);
    if (r < 0) {
        config_free(cfg);
        free(d);
        return r;
    }
    *out = d;
    return 0;
}

void lambdad_stop(lambdad *d)
{
    if (!d)
        return;
    serving_stop(d->srv);   /* no more queries, then stop the layers */
    config *cfg = d->rt ? d->rt->cfg : NULL;
    runtime_free(d->rt);
    config_free(cfg);
    free(d);
}

speed *lambdad_speed(lambdad *d)
{
    return d->rt->sp;
}

batch *lambdad_batch(lambdad *d)
{
    return d->rt->bt;
}

/* Keeps the running value of settings that cannot change while the
 * archive is open, and lists them in *changed (for the log and status). */
static void keep_restart_only(const config *old, config *next, char *changed, size_t size)
{
    changed[0] = '\0';
    if (strcmp(old->archive_path, next->archive_path) != 0) {
        char *keep = strdup(old->archive_path);
        if (keep) {
            free(next->archive_path);
            next->archive_path = keep;
        }
        snprintf(changed + strlen(changed), size - strlen(changed), "%sarchive.path",
                 changed[0] ? "," : "");
    }
    if (old->batch_partition != next->batch_partition) {
        next->batch_partition = old->batch_partition;
        snprintf(changed + strlen(changed), size - strlen(changed), "%sbatch.partition",
                 changed[0] ? "," : "");
    }
}

/* Waits until rt's consumer thread has its partitions assigned (its
 * metadata request takes at most about 2 s; this gives up after 10 s) or
 * failed, so that the swap does not turn /readyz to "not consuming Kafka"
 * for that moment. */
static void wait_consuming(runtime *rt)
{
    struct timespec tick = {.tv_sec = 0, .tv_nsec = 5 * 1000000L};
    for (int i = 0; i < 2000; i++) {   /* 10 s at most */
        speed_stats st;
        speed_get_stats(rt->sp, &st);
        if (st.consuming || speed_failed(rt->sp))
            return;
        nanosleep(&tick, NULL);
    }
}

/* The reload without a gap: the running runtime freezes and answers
 * until the next one (or, when that fails, a new one from the running
 * config) has recovered, then the server swaps over. */
static bool reload_beside(lambdad *d, config *next, const char *changed)
{
    runtime *old = d->rt;
    atomic_store(&old->ds.frozen, true);   /* first: ready while its consumer stops */
    speed_stop(old->sp);     /* commits: the next runtime's replay sees every event */
    batch_stop(old->bt);
    log_info("Reload: queries are answered from the previous config until the new one has "
             "recovered");
    failpoint_pause("reload_frozen");
    runtime *rt = runtime_up(next, changed);
    if (!rt) {
        log_error("Reload failed; going back to the previous config");
        config_free(next);
        next = NULL;
        rt = runtime_up(old->cfg, d->restart_required);
        if (!rt)
            return false;
        log_notice("Running the previous config again (fingerprint %s)", rt->cfg->fingerprint);
        notify_send("READY=1\nSTATUS=Config reload failed; running the previous config");
    }
    wait_consuming(rt);
    if (serving_swap(d->srv, rt->cfg, &rt->src) < 0) {
        log_error("Reload: out of memory switching the server to the new layers");
        runtime_free(rt);
        config_free(next);
        return false;
    }
    config *old_cfg = old->cfg;
    runtime_free(old);       /* no request reads it any more */
    if (next) {
        config_free(old_cfg);
        snprintf(d->restart_required, sizeof(d->restart_required), "%s", changed);
    }
    d->rt = rt;
    return true;
}

/* The reload of a setting the server reads at start only: server and
 * layers stop, then start from next (or again from the running config). */
static bool reload_restart(lambdad *d, config *next, const char *changed, const char *blocker)
{
    log_notice("Reload: %s changed: the HTTP server restarts too, refusing connections for a "
               "moment", blocker);
    config *old = d->rt->cfg;
    serving_stop(d->srv);
    runtime_free(d->rt);
    d->srv = NULL;
    d->rt = NULL;
    char keep[sizeof(d->restart_required)];
    snprintf(keep, sizeof(keep), "%s", d->restart_required);
    snprintf(d->restart_required, sizeof(d->restart_required), "%s", changed);
    if (start_all(d, next) == 0) {
        config_free(old);
        return true;
    }
    config_free(next);
    log_error("Reload failed; going back to the previous config");
    snprintf(d->restart_required, sizeof(d->restart_required), "%s", keep);
    if (start_all(d, old) == 0) {
        log_notice("Running the previous config again (fingerprint %s)", old->fingerprint);
        notify_send("READY=1\nSTATUS=Config reload failed; running the previous config");
        return true;
    }
    config_free(old);
    return false;
}

bool lambdad_reload(lambdad *d, const char *path)
{
    config *next = NULL;
    config_errors errs = {0};
    log_notice("SIGHUP: reloading %s", path);
    char changed[256];
    int r = config_load(path, &next, &errs);
    if (r == 0) {
        keep_restart_only(d->rt->cfg, next, changed, sizeof(changed));
        r = lambdad_check_outside(next, &errs);
    }
    if (r < 0) {
        for (size_t i = 0; i < errs.n; i++)
            log_error("Reload refused, %s: %s", path, errs.items[i]);
        if (errs.n == 0)
            log_error("Reload refused, %s: %s", path, strerror(-r));
        config_errors_clear(&errs);
        config_free(next);
        log_warn("Still running with the previous config (fingerprint %s)", d->rt->cfg->fingerprint);
        return true;
    }
    if (changed[0])
        log_warn("Reload: %s changed; that takes effect at the next restart (keeping the "
                 "running value)", changed);
    notify_send("RELOADING=1\nSTATUS=Reloading the config");
    const char *blocker = serving_swap_blocker(d->srv, next);
    const config *was = d->rt->cfg;
    bool ok = blocker ? reload_restart(d, next, changed, blocker) : reload_beside(d, next, changed);
    if (ok && d->rt->cfg != was) {
        log_notice("Reloaded %s: %zu stream(s), %zu view(s) (fingerprint %s)", path,
                   d->rt->cfg->nstreams, d->rt->cfg->nviews, d->rt->cfg->fingerprint);
        notify_send("READY=1\nSTATUS=Config reloaded");
    }
    return ok;
}
