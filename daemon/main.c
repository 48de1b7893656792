/* main.c - lambdad: the command line and the main thread's loop.
 *
 * daemon/runtime.c starts the layers and the HTTP server, reloads and
 * stops them. Signals are blocked in every thread and taken here with
 * sigtimedwait:
 * SIGTERM/SIGINT stop cleanly, SIGHUP reloads. This thread also feeds
 * systemd (READY, STATUS, WATCHDOG while the consumer and batch threads
 * are alive, STOPPING).
 */
#include <errno.h>
#include <curl/curl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batch/batch.h"
#include "config/config.h"
#include "core/log.h"
#include "daemon/archlock.h"
#include "daemon/cli.h"
#include "daemon/notify.h"
#include "daemon/runtime.h"
#include "speed/speed.h"

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: lambdad -c FILE [--check-config] [-v]\n"
            "       lambdad import -c FILE --stream NAME [--format jsonl|csv] FILE...\n"
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

/* Refuses a second instance on the same archive: the archive's lock,
 * exclusive, held until exit. */
static int lock_archive(const char *archive_path, archlock *l)
{
    int r = archlock_take(archive_path, true, l);
    if (r == -EWOULDBLOCK)
        log_error("Archive %s is in use by another lambdad%s%s%s; refusing to start",
                  archive_path, l->holder[0] ? " (pid " : "", l->holder, l->holder[0] ? ")" : "");
    else if (r < 0 && l->open_failed)
        log_error("Failed to open archive %s: cannot create its lock file %s: %s", archive_path,
                  l->path, strerror(-r));
    else if (r < 0)
        log_error("Failed to lock %s: %s", l->path, strerror(-r));
    else if (l->pid_err < 0)
        log_warn("Failed to write the pid into %s", l->path);
    return r;
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

static void feed_systemd(lambdad *d, feeder *f)
{
    int64_t now = mono_ms();
    speed_stats st;
    speed_get_stats(lambdad_speed(d), &st);
    if (now - f->last_status_ms >= 5000) {
        double rate = f->last_consumed_ms ? (double)(st.consumed - f->last_consumed) * 1000.0 /
                                                (double)(now - f->last_consumed_ms) : 0;
        batch_status bs;
        batch_get_status(lambdad_batch(d), &bs);
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
    int64_t batch_ms = batch_since_heartbeat_ms(lambdad_batch(d));
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
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, 'C'},
        {"verbose", no_argument, NULL, 'v'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {0, 0, 0, 0},
    };
    if (argc > 1 && strcmp(argv[1], "import") == 0)
        return import_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "export") == 0)
        return export_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "backup") == 0)
        return backup_main(argc - 1, argv + 1);
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
    if (config_load(path, &cfg, &errs) < 0 || lambdad_check_outside(cfg, &errs) < 0) {
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
    /* before any thread: the fan-out to peers (serving/cluster.c) uses libcurl */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error("Cannot initialize libcurl");
        config_free(cfg);
        return 1;
    }
    int nr = notify_init();
    if (nr < 0)
        log_warn("NOTIFY_SOCKET is set but unusable (%s); not notifying systemd", strerror(-nr));

    log_info("lambdad %s starting: %zu stream(s), %zu view(s), config %s (fingerprint %s)",
             LAMBDAD_VERSION, cfg->nstreams, cfg->nviews, path, cfg->fingerprint);
    int exit_code = 1;
    lambdad *d = NULL;
    archlock lock;
    if (lock_archive(cfg->archive_path, &lock) < 0) {
        config_free(cfg);
        notify_close();
        curl_global_cleanup();
        return 1;
    }
    const char *brokers = cfg->brokers;
    if (lambdad_start(cfg, &d) < 0)   /* takes cfg */
        goto out;
    log_notice("Ready: consuming %s", brokers);
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
        if (sig == SIGHUP && !lambdad_reload(d, path)) {
            log_error("Could not restart with either config; exiting");
            break;
        }
        if (speed_failed(lambdad_speed(d)) || batch_failed(lambdad_batch(d))) {
            log_error("The %s layer stopped after a fatal error; exiting (a restart recovers "
                      "from the archive)", speed_failed(lambdad_speed(d)) ? "speed" : "batch");
            break;
        }
        feed_systemd(d, &f);
    }
    lambdad_stop(d);
out:
    archlock_release(&lock);
    notify_close();
    curl_global_cleanup();
    if (exit_code == 0)
        log_info("Stopped cleanly");
    return exit_code;
}
