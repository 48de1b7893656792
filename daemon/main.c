/* main.c - lambdad: wires the layers together and runs the lifecycle.
 *
 * A runtime is one config and the layers built from it. Start: open the
 * archive, load the persisted batch views, start the HTTP server (so
 * /healthz answers and /readyz says "recovering"), replay the archive after
 * the batch views' R into the live tables, then start the batch thread and
 * consume Kafka. SIGHUP reloads: the new config is validated first (a bad
 * one is refused and the old one keeps running), then the runtime is
 * stopped (the open transaction commits) and started again from it; new or
 * changed views are recomputed from the archive. Settings fixed for the
 * archive's lifetime keep their running value and are reported.
 * Signals are blocked in every thread and taken here with sigtimedwait:
 * SIGTERM/SIGINT stop cleanly, SIGHUP reloads. This thread also feeds
 * systemd (READY, STATUS, WATCHDOG while the consumer and batch threads
 * are alive, STOPPING).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "archive/archive.h"
#include "batch/batch.h"
#include "config/config.h"
#include "core/log.h"
#include "core/strutil.h"
#include "core/vstate.h"
#include "daemon/export.h"
#include "daemon/notify.h"
#include "daemon/source.h"
#include "serving/serving.h"
#include "speed/speed.h"

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: lambdad -c FILE [--check-config] [-v]\n"
            "       lambdad export -c FILE --view NAME [--format csv|jsonl] [--output FILE]\n"
            "                      [--PARAMETER VALUE]...   (lambdad export --help)\n"
            "       lambdad backup -c FILE DEST\n"
            "       lambdad --version | --help\n"
            "\n"
            "Lambda-architecture aggregation daemon: consumes JSON events from Kafka,\n"
            "archives every event in SQLite and serves exact aggregates over HTTP.\n"
            "\n"
            "  -c, --config FILE   the JSON config (see config/lambdad.example.json)\n"
            "      --check-config  validate the config, print every problem, and exit\n"
            "  -v, --verbose       debug logging\n"
            "      --version       print the version and exit\n"
            "  -h, --help          this text\n"
            "\n"
            "Signals: SIGTERM/SIGINT stop cleanly, SIGHUP reloads the config.\n");
}

static int print_config_errors(const char *path, const config_errors *errs)
{
    for (size_t i = 0; i < errs->n; i++)
        fprintf(stderr, "%s: %s\n", path, errs->items[i]);
    return 1;
}

/* What config_load cannot check, config/ touching neither librdkafka nor
 * the disk: that librdkafka takes the kafka settings, and that the archive
 * can be opened or created at archive.path. Creates nothing. Appends each
 * problem to errs in config_load's form; 0, -EINVAL or -ENOMEM. */
static int check_config_outside(const config *cfg, config_errors *errs)
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
static int check_partition_unit(const config *cfg, arch *w, char **err)
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

/* Refuses a second instance on the same archive: an exclusive flock on
 * <archive>-lock, held until exit (the kernel drops it even on kill -9). */
static int lock_archive(const char *archive_path, int *fd_out)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s-lock", archive_path);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        log_error("Failed to open archive %s: cannot create its lock file %s: %s", archive_path,
                  path, strerror(errno));
        return -errno;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        if (e == EWOULDBLOCK)
            log_error("Archive %s is in use by another lambdad%s%s%s; refusing to start",
                      archive_path, pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "");
        else
            log_error("Failed to lock %s: %s", path, strerror(e));
        close(fd);
        return -e;
    }
    char pid[32];
    int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
    if (ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)n, 0) != n)
        log_warn("Failed to write the pid into %s", path);
    *fd_out = fd;
    return 0;
}

/* One config and the layers built from it. Not moved once started: the
 * layers keep pointers to cfg, ds and src. */
typedef struct {
    config *cfg;
    vstate *vs;
    batch *bt;
    speed *sp;
    segcache *cache;
    serving *srv;
    daemon_source ds;
    serving_source src;
} runtime;

static void runtime_stop(runtime *rt)
{
    serving_stop(rt->srv);   /* no more queries, then stop the layers */
    batch_free(rt->bt);      /* abandons a run in progress: nothing of it is kept */
    segcache_free(rt->cache);   /* after the batch thread, which tells it what it deleted */
    speed_free(rt->sp);      /* commits the open transaction */
    vstate_free(rt->vs);
    config *cfg = rt->cfg;
    memset(rt, 0, sizeof(*rt));
    rt->cfg = cfg;           /* the caller decides about the config */
}

/* The batch layer deleted superseded segments: the cache drops them. */
static void forget_segments(const int64_t *ids, size_t n, void *cache)
{
    segcache_forget(cache, ids, n);
}

/* Builds and starts every layer from cfg (borrowed until runtime_stop).
 * Logs its own failure once; on failure everything started is stopped. */

static int runtime_start(runtime *rt, config *cfg, const char *restart_required)
{
    memset(rt, 0, sizeof(*rt));
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
    arch_damage_count dmg;
    arch_damage_totals(cfg->archive_path, NULL, &dmg);
    if (dmg.chunks > 0)
        log_warn("Archive %s holds %lld damaged chunk(s) found earlier: %lld event(s) cannot be "
                 "read (see /v1/status; lambdad-archive verify checks the whole archive)",
                 cfg->archive_path, (long long)dmg.chunks, (long long)dmg.events);
    r = check_partition_unit(cfg, w, &err);
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
        r = -ENOMEM;
        goto fail;
    }
    int64_t R = 0;
    r = batch_new(cfg, rt->vs, &rt->bt, &err);
    if (r == 0)
        r = batch_load(rt->bt, ast.last_seq, ast.events, &R, &err);
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
    r = serving_start(cfg, &rt->src, &rt->srv, &err);
    if (r < 0) {
        log_error("Failed to start the HTTP server: %s", err ? err : "?");
        goto fail;
    }
    log_notice("Listening on %s://%s:%d/", cfg->http_tls_cert_file ? "https" : "http", cfg->http_host,
               serving_port(rt->srv));

    /* Replaying a long stretch of the archive can outlast the unit's start
     * timeout and the watchdog: ask systemd for time first. */
    notify_send("EXTEND_TIMEOUT_USEC=600000000\nWATCHDOG_USEC=600000000\n"
                "STATUS=Recovering: replaying the archive into the live views");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    r = speed_recover(rt->sp, R, &err);
    if (r < 0) {
        log_error("Recovery failed: %s", err ? err : "?");
        goto fail;
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
    r = batch_start(rt->bt, &err);
    if (r < 0) {
        log_error("Failed to start the batch layer: %s", err ? err : "?");
        goto fail;
    }
    r = speed_start(rt->sp, &err);
    if (r < 0) {
        log_error("Failed to start consuming Kafka: %s", err ? err : "?");
        goto fail;
    }
    return 0;
fail:
    free(err);
    runtime_stop(rt);
    return r < 0 ? r : -EIO;
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

static void reload(runtime *rt, const char *path, char *restart_required, size_t size)
{
    config *next = NULL;
    config_errors errs = {0};
    log_notice("SIGHUP: reloading %s", path);
    char changed[256];
    int r = config_load(path, &next, &errs);
    if (r == 0) {
        keep_restart_only(rt->cfg, next, changed, sizeof(changed));
        r = check_config_outside(next, &errs);
    }
    if (r < 0) {
        for (size_t i = 0; i < errs.n; i++)
            log_error("Reload refused, %s: %s", path, errs.items[i]);
        if (errs.n == 0)
            log_error("Reload refused, %s: %s", path, strerror(-r));
        config_errors_clear(&errs);
        config_free(next);
        log_warn("Still running with the previous config (fingerprint %s)", rt->cfg->fingerprint);
        return;
    }
    if (changed[0])
        log_warn("Reload: %s changed; that takes effect at the next restart (keeping the "
                 "running value)", changed);
    notify_send("RELOADING=1\nSTATUS=Reloading the config");
    config *old = rt->cfg;
    runtime_stop(rt);
    if (runtime_start(rt, next, changed) == 0) {
        config_free(old);
        snprintf(restart_required, size, "%s", changed);
        log_notice("Reloaded %s: %zu stream(s), %zu view(s) (fingerprint %s)", path,
                   next->nstreams, next->nviews, next->fingerprint);
        notify_send("READY=1\nSTATUS=Config reloaded");
        return;
    }
    config_free(next);
    log_error("Reload failed; going back to the previous config");
    if (runtime_start(rt, old, restart_required) == 0) {
        notify_send("READY=1\nSTATUS=Config reload failed; running the previous config");
        return;
    }
    rt->cfg = old;   /* runtime_stop left it; main frees it */
    rt->sp = NULL;
}

/* STATUS= for systemctl status, and WATCHDOG=1 only while the consumer
 * and batch threads are turning (a stalled one stops the pings, and
 * systemd restarts the service). */
typedef struct {
    int64_t last_status_ms, last_watchdog_ms, last_consumed, last_consumed_ms;
    bool withheld;
} feeder;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void feed_systemd(runtime *rt, feeder *f)
{
    int64_t now = mono_ms();
    speed_stats st;
    speed_get_stats(rt->sp, &st);
    if (now - f->last_status_ms >= 5000) {
        double rate = f->last_consumed_ms ? (double)(st.consumed - f->last_consumed) * 1000.0 /
                                                (double)(now - f->last_consumed_ms) : 0;
        batch_status bs;
        batch_get_status(rt->bt, &bs);
        char last[32] = "none yet";
        if (bs.last_run_at)
            time_format_rfc3339(bs.last_run_at, last, sizeof(last));
        char msg[256];
        snprintf(msg, sizeof(msg), "STATUS=%.0f events/s, lag %lld, %lld archived, last batch run %s",
                 rate, (long long)st.lag, (long long)st.archived_events, last);
        notify_send(msg);
        f->last_status_ms = now;
        f->last_consumed = st.consumed;
        f->last_consumed_ms = now;
    }
    int64_t wd_ms = notify_watchdog_usec() / 1000;
    if (wd_ms <= 0 || now - f->last_watchdog_ms < wd_ms / 2)
        return;
    int64_t batch_ms = batch_since_heartbeat_ms(rt->bt);
    if (st.since_loop_ms < wd_ms && batch_ms < wd_ms) {
        notify_send("WATCHDOG=1");
        f->last_watchdog_ms = now;
        if (f->withheld)
            log_notice("Consumer and batch threads are turning again; watchdog pings resumed");
        f->withheld = false;
    } else if (!f->withheld) {
        log_error("The %s thread has not turned for %lld s; withholding the watchdog ping",
                  st.since_loop_ms >= wd_ms ? "consumer" : "batch",
                  (long long)((st.since_loop_ms >= wd_ms ? st.since_loop_ms : batch_ms) / 1000));
        f->withheld = true;
    }
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "export") == 0)
        return export_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "backup") == 0)
        return backup_main(argc - 1, argv + 1);
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, 'C'},
        {"verbose", no_argument, NULL, 'v'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {0, 0, 0, 0},
    };
    const char *path = NULL;
    int check_only = 0, verbose = 0, c;
    while ((c = getopt_long(argc, argv, "c:vh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': path = optarg; break;
        case 'C': check_only = 1; break;
        case 'v': verbose = 1; break;
        case 'V': printf("lambdad %s\n", LAMBDAD_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!path || optind != argc) {
        fprintf(stderr, "lambdad: %s\n", path ? "unexpected argument" : "-c FILE is required");
        usage(stderr);
        return 2;
    }

    config *cfg = NULL;
    config_errors errs = {0};
    if (config_load(path, &cfg, &errs) < 0 || check_config_outside(cfg, &errs) < 0) {
        int rc = print_config_errors(path, &errs);
        if (errs.n == 0)
            fprintf(stderr, "%s: out of memory\n", path);
        config_errors_clear(&errs);
        config_free(cfg);
        return rc;
    }
    if (check_only) {
        printf("%s: OK (%zu stream(s), %zu view(s))\n", path, cfg->nstreams, cfg->nviews);
        config_free(cfg);
        return 0;
    }

    log_init("lambdad", verbose ? LOG_LVL_DEBUG : LOG_LVL_INFO);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);   /* inherited by every thread */
    signal(SIGPIPE, SIG_IGN);
    int nr = notify_init();
    if (nr < 0)
        log_warn("NOTIFY_SOCKET is set but unusable (%s); not notifying systemd", strerror(-nr));

    log_info("lambdad %s starting: %zu stream(s), %zu view(s), config %s (fingerprint %s)",
             LAMBDAD_VERSION, cfg->nstreams, cfg->nviews, path, cfg->fingerprint);
    int exit_code = 1, lock_fd = -1;
    static runtime rt;   /* static: the layers keep pointers into it */
    char restart_required[256] = "";
    if (lock_archive(cfg->archive_path, &lock_fd) < 0) {
        config_free(cfg);
        notify_close();
        return 1;
    }
    if (runtime_start(&rt, cfg, "") < 0) {
        config_free(cfg);
        goto out;
    }
    log_notice("Ready: consuming %s", cfg->brokers);
    notify_send("READY=1\nSTATUS=Recovered; consuming Kafka");

    feeder f = {0};
    for (;;) {
        struct timespec tick = {.tv_sec = 0, .tv_nsec = 200 * 1000000L};
        int sig = sigtimedwait(&sigs, NULL, &tick);
        if (sig == SIGTERM || sig == SIGINT) {
            log_notice("Received %s, stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
            notify_send("STOPPING=1\nSTATUS=Stopping: committing the open transaction");
            exit_code = 0;
            break;
        }
        if (sig == SIGHUP) {
            reload(&rt, path, restart_required, sizeof(restart_required));
            if (!rt.sp) {
                log_error("Could not restart with either config; exiting");
                break;
            }
        }
        if (speed_failed(rt.sp) || batch_failed(rt.bt)) {
            log_error("The %s layer stopped after a fatal error; exiting (a restart recovers "
                      "from the archive)", speed_failed(rt.sp) ? "speed" : "batch");
            break;
        }
        feed_systemd(&rt, &f);
    }
    runtime_stop(&rt);
    config_free(rt.cfg);
out:
    if (lock_fd >= 0)
        close(lock_fd);
    notify_close();
    if (exit_code == 0)
        log_info("Stopped cleanly");
    return exit_code;
}
