/* metrics.h - Prometheus metrics: counters, gauges and histograms with
 * optional labels, updated from any thread, rendered as the text
 * exposition format 0.0.4 for GET /metrics.
 *
 * A metric is a static object defined where it is updated; the definition
 * registers it in the process-wide registry before main() runs, so adding
 * one is two lines:
 *
 *     METRIC_COUNTER(m_rejects, "lambdad_events_rejected_total",
 *                    "Messages rejected, by topic and reason.", "topic", "reason");
 *     ...
 *     metrics_counter_add(&m_rejects, METRIC_LABELS(topic, reason), 1);
 *
 * Names follow Prometheus' conventions: the "lambdad_" prefix, base units
 * in the name ("_seconds", "_bytes"), counters end in "_total". Label values
 * are given in the order of the label names; a metric without labels takes
 * NULL. Registration checks every name and aborts with a message on a bad
 * definition (a programming error, caught by the first run of any test).
 *
 * Threads: updates are lock-free once a label combination exists (atomic
 * adds on the value; the series list is read without a lock). Creating a
 * new combination takes the metric's mutex once. Rendering reads the same
 * atomics, so a scrape never blocks an update. A metric holds at most
 * METRICS_MAX_SERIES label combinations; updates of further ones are
 * dropped and counted in lambdad_metrics_dropped_updates_total.
 */
#pragma once
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define METRICS_MAX_LABELS 4
#define METRICS_MAX_SERIES 1000

typedef enum { METRICS_COUNTER, METRICS_GAUGE, METRICS_HISTOGRAM } metrics_kind;

typedef struct metrics_series metrics_series;     /* private */
typedef struct metrics_registry metrics_registry;

typedef struct metric {
    /* the definition, constant after registration */
    const char *name;
    const char *help;
    metrics_kind kind;
    const char *labels[METRICS_MAX_LABELS + 1];   /* label names, NULL-terminated */
    const double *buckets;    /* histograms: upper bounds, increasing, without +Inf */
    size_t nbuckets;

    /* private: the label combinations seen, newest first; prepended under
     * lock, read without one (nodes are never freed while registered) */
    _Atomic(metrics_series *) series;
    size_t nseries;                  /* under lock */
    atomic_uint_fast64_t dropped;    /* updates refused: series cap or out of memory */
    pthread_mutex_t lock;
    struct metric *next;             /* in its registry, under the registry's lock */
    metrics_registry *reg;
} metric;

/* Label values for an update, in the order of the metric's label names. */
#define METRIC_LABELS(...) ((const char *const[]){__VA_ARGS__})

#define METRIC_INIT_(k, n, h, b, nb, ...) { \
    .name = n, .help = h, .kind = k, .labels = {__VA_ARGS__}, .buckets = b, .nbuckets = nb, \
    .lock = PTHREAD_MUTEX_INITIALIZER }

/* Defines a file-local metric registered in the global registry at start.
 * The trailing _Static_assert takes the caller's semicolon. */
#define METRIC_DEFINE_(var, k, n, h, b, nb, ...) \
    static metric var = METRIC_INIT_(k, n, h, b, nb, __VA_ARGS__); \
    __attribute__((constructor)) static void var##_register_(void) \
    { metrics_register_or_die(NULL, &var); } \
    _Static_assert(sizeof(n) > 1, "a metric needs a name")

/* METRIC_COUNTER(var, "name_total", "help", "label", ...) */
#define METRIC_COUNTER(var, n, h, ...) \
    METRIC_DEFINE_(var, METRICS_COUNTER, n, h, NULL, 0, __VA_ARGS__)
#define METRIC_GAUGE(var, n, h, ...) \
    METRIC_DEFINE_(var, METRICS_GAUGE, n, h, NULL, 0, __VA_ARGS__)
/* buckets: an array (not a pointer) of upper bounds, e.g. metrics_buckets_latency */
#define METRIC_HISTOGRAM(var, n, h, buckets, ...) \
    METRIC_DEFINE_(var, METRICS_HISTOGRAM, n, h, buckets, \
                   sizeof(buckets) / sizeof((buckets)[0]), __VA_ARGS__)

/* Initializers for metrics kept elsewhere than in a file-scope static
 * (tests); register them with metrics_register(). */
#define METRIC_COUNTER_INIT(n, h, ...) METRIC_INIT_(METRICS_COUNTER, n, h, NULL, 0, __VA_ARGS__)
#define METRIC_GAUGE_INIT(n, h, ...) METRIC_INIT_(METRICS_GAUGE, n, h, NULL, 0, __VA_ARGS__)
#define METRIC_HISTOGRAM_INIT(n, h, b, nb, ...) \
    METRIC_INIT_(METRICS_HISTOGRAM, n, h, b, nb, __VA_ARGS__)

/* Bucket sets: durations from 100 us to 10 s, for HTTP requests and
 * archive commits; from 10 ms to 1 h, for batch runs. */
#define METRICS_BUCKETS_LATENCY_N 16
extern const double metrics_buckets_latency[METRICS_BUCKETS_LATENCY_N];
#define METRICS_BUCKETS_LONG_N 14
extern const double metrics_buckets_long[METRICS_BUCKETS_LONG_N];

/* ---- updates: any thread, never blocking for long ---- */

void metrics_counter_add(metric *m, const char *const *labels, uint64_t n);
/* Mirrors a count kept elsewhere (it must only grow, as a counter does). */
void metrics_counter_set(metric *m, const char *const *labels, uint64_t v);
void metrics_gauge_set(metric *m, const char *const *labels, double v);
void metrics_gauge_add(metric *m, const char *const *labels, double d);
void metrics_observe(metric *m, const char *const *labels, double v);

/* ---- registries ---- */

/* The process-wide registry the METRIC_* definitions join. */
metrics_registry *metrics_global(void);
/* A private registry (tests); free it when its metrics are no longer
 * updated: that forgets their series and unregisters them. */
int metrics_registry_new(metrics_registry **out);
void metrics_registry_free(metrics_registry *r);   /* accepts NULL */

/* Adds m to r (NULL: the global one). Returns 0, -EINVAL for a bad
 * definition (name, label names, buckets, a counter without "_total"),
 * -EEXIST when the name is taken or m is registered already. */
int metrics_register(metrics_registry *r, metric *m);
/* The same for the METRIC_* definitions: prints the problem and aborts. */
void metrics_register_or_die(metrics_registry *r, metric *m);

/* The whole registry in the text exposition format 0.0.4, metrics sorted by
 * name and series by label values. *text is malloc'd (NUL-terminated,
 * *len bytes). Returns 0 or -ENOMEM. */
int metrics_render(metrics_registry *r, char **text, size_t *len);

/* The content type of that text, for the HTTP answer. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
