/* main.c - lambdad: wires the layers together and runs the lifecycle.
 *
 * Start: load and validate the config, open the archive, load the
 * persisted batch views, start the HTTP server (so /healthz answers and
 * /readyz says "recovering"), replay the archive after the batch views' R
 * into the live tables, then start the batch thread and consume Kafka.
 * Signals are blocked in every thread and taken here with sigtimedwait:
 * SIGTERM/SIGINT stop cleanly (the speed thread finishes its transaction),
 * SIGHUP is reserved for config reload.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "archive/archive.h"
#include "config/config.h"
#include "core/log.h"
#include "daemon/source.h"
#include "serving/serving.h"
#include "speed/speed.h"
#include "batch/batch.h"
#include "core/vstate.h"

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: lambdad -c FILE [--check-config] [-v]\n"
            "       lambdad --version | --help\n"
            "\n"
            "Lambda-architecture aggregation daemon: consumes JSON events from Kafka,\n"
            "archives every event in SQLite and serves exact aggregates over HTTP.\n"
            "\n"
            "  -c, --config FILE   the JSON config (see config/lambdad.example.json)\n"
            "      --check-config  validate the config, print every problem, and exit\n"
            "  -v, --verbose       debug logging (repeatable has no further effect)\n"
            "      --version       print the version and exit\n"
            "  -h, --help          this text\n");
}

static int print_config_errors(const char *path, const config_errors *errs)
{
    for (size_t i = 0; i < errs->n; i++)
        fprintf(stderr, "%s: %s\n", path, errs->items[i]);
    return 1;
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

int main(int argc, char **argv)
{
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
    if (config_load(path, &cfg, &errs) < 0) {
        int rc = print_config_errors(path, &errs);
        config_errors_clear(&errs);
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

    int exit_code = 1;
    vstate *vs = NULL;
    batch *bt = NULL;
    speed *sp = NULL;
    serving *srv = NULL;
    daemon_source ds = {.cfg = cfg};
    char *err = NULL;
    arch *w = NULL;

    log_info("lambdad %s starting: %zu stream(s), %zu view(s), config %s (fingerprint %s)",
             LAMBDAD_VERSION, cfg->nstreams, cfg->nviews, path, cfg->fingerprint);
    int r = arch_open(cfg->archive_path, 0, cfg->compression_level, &w, &err);
    if (r < 0) {
        log_error("Failed to open archive %s: %s", cfg->archive_path, err ? err : strerror(-r));
        goto out;
    }
    r = check_partition_unit(cfg, w, &err);
    if (r < 0) {
        log_error("Failed to open archive %s: %s", cfg->archive_path, err);
        arch_close(w);
        goto out;
    }
    arch_stats ast;
    r = arch_get_stats(w, &ast);
    if (r < 0) {
        log_error("Failed to read archive %s", cfg->archive_path);
        arch_close(w);
        goto out;
    }
    vs = vstate_new(cfg->views, cfg->nviews);
    if (!vs) {
        log_error("Out of memory");
        arch_close(w);
        r = -ENOMEM;
        goto out;
    }
    r = batch_new(cfg, vs, &bt, &err);
    int64_t R = 0;
    if (r == 0)
        r = batch_load(bt, ast.last_seq, &R, &err);
    if (r < 0) {
        log_error("Failed to load the batch views: %s", err);
        arch_close(w);
        goto out;
    }
    r = speed_new(cfg, vs, w, &sp, &err);   /* takes w, also on failure */
    if (r < 0) {
        log_error("Failed to set up the speed layer: %s", err);
        goto out;
    }
    ds.sp = sp;
    ds.vs = vs;
    ds.b = bt;
    serving_source src;
    daemon_source_init(&ds, &src);
    r = serving_start(cfg, &src, &srv, &err);
    if (r < 0) {
        log_error("Failed to start the HTTP server: %s", err);
        goto out;
    }
    log_notice("Listening on http://%s:%d/", cfg->http_host, serving_port(srv));

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    r = speed_recover(sp, R, &err);
    if (r < 0) {
        log_error("Recovery failed: %s", err);
        goto out;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    atomic_store(&ds.recovered, true);
    log_info("Recovery done in %.3f s",
             (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);

    r = batch_start(bt, &err);
    if (r < 0) {
        log_error("Failed to start the batch layer: %s", err);
        goto out;
    }
    r = speed_start(sp, &err);
    if (r < 0) {
        log_error("Failed to start consuming Kafka: %s", err);
        goto out;
    }
    log_notice("Ready: consuming %s", cfg->brokers);

    for (;;) {
        struct timespec tick = {.tv_sec = 0, .tv_nsec = 200 * 1000000L};
        int sig = sigtimedwait(&sigs, NULL, &tick);
        if (sig == SIGTERM || sig == SIGINT) {
            log_notice("Received %s, stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
            exit_code = 0;
            break;
        }
        if (sig == SIGHUP)
            log_warn("SIGHUP: config reload is not implemented yet; restart to apply changes");
        if (speed_failed(sp) || batch_failed(bt)) {
            log_error("The %s layer stopped after a fatal error; exiting (a restart recovers "
                      "from the archive)", speed_failed(sp) ? "speed" : "batch");
            break;
        }
    }

out:
    serving_stop(srv);   /* no more queries, then stop consuming */
    batch_free(bt);      /* abandons a run in progress: nothing of it is kept */
    speed_free(sp);      /* commits the open transaction */
    vstate_free(vs);
    free(err);
    config_free(cfg);
    if (exit_code == 0)
        log_info("Stopped cleanly");
    return exit_code;
}
