/* test_metrics.c - the Prometheus registry: exact exposition text for
 * every kind (HELP/TYPE, escaping, cumulative buckets, +Inf, sums,
 * sorting), definition checks, the series cap, invalid UTF-8 in label
 * values, and concurrent updates from several threads adding up. */
#include "core/metrics.h"
#include "tests/unit/check.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>

/* Renders r and compares with the exact text. */
#define CHECK_RENDER(r, expected) do { \
    char *_t = NULL; size_t _n = 0; \
    CHECK_INT(metrics_render(r, &_t, &_n), 0); \
    CHECK_STR(_t, expected); \
    if (_t) CHECK_INT(_n, strlen(_t)); \
    free(_t); } while (0)

static const double small_buckets[] = {0.1, 1, 2.5};

static void test_kinds(void)
{
    metrics_registry *r = NULL;
    CHECK_INT(metrics_registry_new(&r), 0);
    metric req = METRIC_COUNTER_INIT("lambdad_requests_total", "Requests, by route and code.",
                                     "route", "code");
    metric up = METRIC_GAUGE_INIT("lambdad_up_seconds", "Seconds \\ since\nstart.");
    metric lat = METRIC_HISTOGRAM_INIT("lambdad_latency_seconds", "Latency.", small_buckets, 3,
                                       "route");
    metric never = METRIC_HISTOGRAM_INIT("lambdad_idle_seconds", "Never observed.",
                                         small_buckets, 3);
    metric empty = METRIC_GAUGE_INIT("lambdad_lag", "Lag, by partition.", "partition");
    CHECK_INT(metrics_register(r, &req), 0);
    CHECK_INT(metrics_register(r, &up), 0);
    CHECK_INT(metrics_register(r, &lat), 0);
    CHECK_INT(metrics_register(r, &never), 0);
    CHECK_INT(metrics_register(r, &empty), 0);

    /* nothing updated yet: unlabeled metrics read 0, labeled ones have no sample */
    CHECK_RENDER(r,
        "# HELP lambdad_idle_seconds Never observed.\n"
        "# TYPE lambdad_idle_seconds histogram\n"
        "lambdad_idle_seconds_bucket{le=\"0.1\"} 0\n"
        "lambdad_idle_seconds_bucket{le=\"1\"} 0\n"
        "lambdad_idle_seconds_bucket{le=\"2.5\"} 0\n"
        "lambdad_idle_seconds_bucket{le=\"+Inf\"} 0\n"
        "lambdad_idle_seconds_sum 0\n"
        "lambdad_idle_seconds_count 0\n"
        "# HELP lambdad_lag Lag, by partition.\n"
        "# TYPE lambdad_lag gauge\n"
        "# HELP lambdad_latency_seconds Latency.\n"
        "# TYPE lambdad_latency_seconds histogram\n"
        "# HELP lambdad_requests_total Requests, by route and code.\n"
        "# TYPE lambdad_requests_total counter\n"
        "# HELP lambdad_up_seconds Seconds \\\\ since\\nstart.\n"
        "# TYPE lambdad_up_seconds gauge\n"
        "lambdad_up_seconds 0\n");

    metrics_counter_add(&req, METRIC_LABELS("/v1/views", "200"), 1);
    metrics_counter_add(&req, METRIC_LABELS("/v1/views", "200"), 2);
    metrics_counter_add(&req, METRIC_LABELS("/a\"b\\c\nd", "404"), 1);
    metrics_counter_add(&req, METRIC_LABELS("/healthz", "200"), 5);
    metrics_counter_add(&req, METRIC_LABELS("/healthz", NULL), 1);   /* NULL: "" */
    metrics_counter_set(&req, METRIC_LABELS("/metrics", "200"), 18446744073709551615ULL);
    metrics_gauge_set(&up, NULL, 12.5);
    metrics_gauge_add(&up, NULL, 0.25);
    metrics_gauge_add(&up, NULL, -20);
    metrics_observe(&lat, METRIC_LABELS("/q"), 0.1);    /* on a bound: that bucket */
    metrics_observe(&lat, METRIC_LABELS("/q"), 0.5);
    metrics_observe(&lat, METRIC_LABELS("/q"), 3);      /* past the last bound: +Inf only */
    metrics_observe(&lat, METRIC_LABELS("/q"), 0.0001);
    metrics_observe(&lat, METRIC_LABELS("/b"), 2);
    metrics_gauge_set(&empty, METRIC_LABELS("10"), 1e21);
    metrics_gauge_set(&empty, METRIC_LABELS("2"), -INFINITY);
    metrics_gauge_set(&empty, METRIC_LABELS("3"), NAN);
    metrics_gauge_set(&empty, METRIC_LABELS("4"), 1.0 / 3);

    CHECK_RENDER(r,
        "# HELP lambdad_idle_seconds Never observed.\n"
        "# TYPE lambdad_idle_seconds histogram\n"
        "lambdad_idle_seconds_bucket{le=\"0.1\"} 0\n"
        "lambdad_idle_seconds_bucket{le=\"1\"} 0\n"
        "lambdad_idle_seconds_bucket{le=\"2.5\"} 0\n"
        "lambdad_idle_seconds_bucket{le=\"+Inf\"} 0\n"
        "lambdad_idle_seconds_sum 0\n"
        "lambdad_idle_seconds_count 0\n"
        "# HELP lambdad_lag Lag, by partition.\n"
        "# TYPE lambdad_lag gauge\n"
        "lambdad_lag{partition=\"10\"} 1e+21\n"
        "lambdad_lag{partition=\"2\"} -Inf\n"
        "lambdad_lag{partition=\"3\"} NaN\n"
        "lambdad_lag{partition=\"4\"} 0.3333333333333333\n"
        "# HELP lambdad_latency_seconds Latency.\n"
        "# TYPE lambdad_latency_seconds histogram\n"
        "lambdad_latency_seconds_bucket{route=\"/b\",le=\"0.1\"} 0\n"
        "lambdad_latency_seconds_bucket{route=\"/b\",le=\"1\"} 0\n"
        "lambdad_latency_seconds_bucket{route=\"/b\",le=\"2.5\"} 1\n"
        "lambdad_latency_seconds_bucket{route=\"/b\",le=\"+Inf\"} 1\n"
        "lambdad_latency_seconds_sum{route=\"/b\"} 2\n"
        "lambdad_latency_seconds_count{route=\"/b\"} 1\n"
        "lambdad_latency_seconds_bucket{route=\"/q\",le=\"0.1\"} 2\n"
        "lambdad_latency_seconds_bucket{route=\"/q\",le=\"1\"} 3\n"
        "lambdad_latency_seconds_bucket{route=\"/q\",le=\"2.5\"} 3\n"
        "lambdad_latency_seconds_bucket{route=\"/q\",le=\"+Inf\"} 4\n"
        "lambdad_latency_seconds_sum{route=\"/q\"} 3.6001000000000003\n"
        "lambdad_latency_seconds_count{route=\"/q\"} 4\n"
        "# HELP lambdad_requests_total Requests, by route and code.\n"
        "# TYPE lambdad_requests_total counter\n"
        "lambdad_requests_total{route=\"/a\\\"b\\\\c\\nd\",code=\"404\"} 1\n"
        "lambdad_requests_total{route=\"/healthz\",code=\"\"} 1\n"
        "lambdad_requests_total{route=\"/healthz\",code=\"200\"} 5\n"
        "lambdad_requests_total{route=\"/metrics\",code=\"200\"} 18446744073709551615\n"
        "lambdad_requests_total{route=\"/v1/views\",code=\"200\"} 3\n"
        "# HELP lambdad_up_seconds Seconds \\\\ since\\nstart.\n"
        "# TYPE lambdad_up_seconds gauge\n"
        "lambdad_up_seconds -7.25\n");

    metrics_registry_free(r);
    /* freed: the metrics are unregistered and empty, and may join another */
    CHECK(atomic_load(&req.series) == NULL);
    CHECK(req.reg == NULL);
    CHECK_INT(metrics_registry_new(&r), 0);
    CHECK_INT(metrics_register(r, &up), 0);
    CHECK_RENDER(r, "# HELP lambdad_up_seconds Seconds \\\\ since\\nstart.\n"
                    "# TYPE lambdad_up_seconds gauge\n"
                    "lambdad_up_seconds 0\n");
    metrics_registry_free(r);
    metrics_registry_free(NULL);
}

static void test_definitions(void)
{
    metrics_registry *r = NULL;
    CHECK_INT(metrics_registry_new(&r), 0);
    static const double bad_order[] = {1, 0.5};
    static const double inf_bound[] = {1, INFINITY};
    metric bad[] = {
        METRIC_COUNTER_INIT("lambdad_requests", "A counter without _total."),
        METRIC_GAUGE_INIT("lambdad_x_total", "A gauge with _total."),
        METRIC_GAUGE_INIT("9lambdad", "Starts with a digit."),
        METRIC_GAUGE_INIT("lambdad-x", "A dash."),
        METRIC_GAUGE_INIT("", "Empty."),
        METRIC_GAUGE_INIT("lambdad_x", NULL),
        METRIC_GAUGE_INIT("lambdad_x", "Bad label.", "a-b"),
        METRIC_GAUGE_INIT("lambdad_x", "Reserved label.", "__name"),
        METRIC_GAUGE_INIT("lambdad_x", "Label with a colon.", "a:b"),
        METRIC_GAUGE_INIT("lambdad_x", "Duplicate labels.", "a", "b", "a"),
        METRIC_HISTOGRAM_INIT("lambdad_h", "le label.", small_buckets, 3, "le"),
        METRIC_HISTOGRAM_INIT("lambdad_h", "No buckets.", NULL, 0),
        METRIC_HISTOGRAM_INIT("lambdad_h", "Decreasing.", bad_order, 2),
        METRIC_HISTOGRAM_INIT("lambdad_h", "Infinite bound.", inf_bound, 2),
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = metrics_register(r, &bad[i]);
        if (rc != -EINVAL)
            fprintf(stderr, "bad definition %zu (%s) registered: %d\n", i, bad[i].help, rc);
        CHECK_INT(rc, -EINVAL);
    }
    metric ok = METRIC_GAUGE_INIT("lambdad:x_bytes", "Colons are allowed in names.", "a", "b",
                                  "c", "d");
    metric same = METRIC_COUNTER_INIT("lambdad:x_bytes_total", "Another name.");
    metric clash = METRIC_GAUGE_INIT("lambdad:x_bytes", "The same name again.");
    CHECK_INT(metrics_register(r, &ok), 0);
    CHECK_INT(metrics_register(r, &ok), -EEXIST);     /* twice */
    CHECK_INT(metrics_register(r, &clash), -EEXIST);  /* a taken name */
    CHECK_INT(metrics_register(r, &same), 0);
    metrics_gauge_set(&ok, METRIC_LABELS("1", "2", "3", "4"), 5);
    metrics_counter_add(&same, METRIC_LABELS("ignored"), 2);   /* no label names: values ignored */
    CHECK_RENDER(r,
        "# HELP lambdad:x_bytes Colons are allowed in names.\n"
        "# TYPE lambdad:x_bytes gauge\n"
        "lambdad:x_bytes{a=\"1\",b=\"2\",c=\"3\",d=\"4\"} 5\n"
        "# HELP lambdad:x_bytes_total Another name.\n"
        "# TYPE lambdad:x_bytes_total counter\n"
        "lambdad:x_bytes_total 2\n");
    metrics_registry_free(r);
}

static void test_cap_and_utf8(void)
{
    metrics_registry *r = NULL;
    CHECK_INT(metrics_registry_new(&r), 0);
    metric m = METRIC_COUNTER_INIT("lambdad_things_total", "Things.", "id");
    CHECK_INT(metrics_register(r, &m), 0);
    char id[32];
    for (int i = 0; i < METRICS_MAX_SERIES + 5; i++) {
        snprintf(id, sizeof(id), "%d", i);
        metrics_counter_add(&m, METRIC_LABELS(id), 1);
    }
    metrics_counter_add(&m, METRIC_LABELS("0"), 1);   /* an existing series still counts */
    CHECK_INT(m.nseries, METRICS_MAX_SERIES);
    char *t = NULL;
    size_t n = 0;
    CHECK_INT(metrics_render(r, &t, &n), 0);
    CHECK(t && strstr(t, "lambdad_things_total{id=\"0\"} 2\n"));
    CHECK(t && strstr(t, "lambdad_things_total{id=\"999\"} 1\n"));
    CHECK(t && !strstr(t, "lambdad_things_total{id=\"1000\"}"));
    CHECK(t && strstr(t, "# TYPE lambdad_metrics_dropped_updates_total counter\n"
                         "lambdad_metrics_dropped_updates_total{metric=\"lambdad_things_total\"} 5\n"));
    free(t);
    metrics_registry_free(r);

    /* invalid UTF-8 in a value becomes U+FFFD; both spellings are one series */
    CHECK_INT(metrics_registry_new(&r), 0);
    metric u = METRIC_COUNTER_INIT("lambdad_topics_total", "Topics.", "topic");
    CHECK_INT(metrics_register(r, &u), 0);
    metrics_counter_add(&u, METRIC_LABELS("a\xff" "b"), 1);
    metrics_counter_add(&u, METRIC_LABELS("a\xef\xbf\xbd" "b"), 1);
    metrics_counter_add(&u, METRIC_LABELS("\xc3\xa9t\xc3\xa9"), 1);       /* valid: kept */
    metrics_counter_add(&u, METRIC_LABELS("\xc0\xaf\xed\xa0\x80"), 1);   /* overlong, surrogate */
    CHECK_RENDER(r,
        "# HELP lambdad_topics_total Topics.\n"
        "# TYPE lambdad_topics_total counter\n"
        "lambdad_topics_total{topic=\"a\xef\xbf\xbd" "b\"} 2\n"
        "lambdad_topics_total{topic=\"\xc3\xa9t\xc3\xa9\"} 1\n"
        "lambdad_topics_total{topic=\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"} 1\n");
    metrics_registry_free(r);
}

/* ---- concurrent updates ---- */

#define THREADS 4
#define ROUNDS 20000

static metric conc_c = METRIC_COUNTER_INIT("lambdad_conc_total", "Concurrent.", "k");
static metric conc_g = METRIC_GAUGE_INIT("lambdad_conc", "Concurrent gauge.");
static metric conc_h = METRIC_HISTOGRAM_INIT("lambdad_conc_seconds", "Concurrent histogram.",
                                             small_buckets, 3);

static void *hammer(void *arg)
{
    static const char *const keys[] = {"a", "b", "c", "d", "e", "f", "g", "h"};
    for (int i = 0; i < ROUNDS; i++) {
        metrics_counter_add(&conc_c, METRIC_LABELS(keys[i % 8]), 1);
        metrics_gauge_add(&conc_g, NULL, 0.5);
        metrics_observe(&conc_h, NULL, 0.25);
    }
    return arg;
}

static void test_threads(void)
{
    metrics_registry *r = NULL;
    CHECK_INT(metrics_registry_new(&r), 0);
    CHECK_INT(metrics_register(r, &conc_c), 0);
    CHECK_INT(metrics_register(r, &conc_g), 0);
    CHECK_INT(metrics_register(r, &conc_h), 0);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        CHECK_INT(pthread_create(&t[i], NULL, hammer, NULL), 0);
    for (int i = 0; i < 50; i++) {   /* scrapes meanwhile */
        char *text = NULL;
        size_t n;
        CHECK_INT(metrics_render(r, &text, &n), 0);
        free(text);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    CHECK_INT(conc_c.nseries, 8);
    char *text = NULL;
    size_t n;
    CHECK_INT(metrics_render(r, &text, &n), 0);
    /* 4 threads x 20000 rounds / 8 keys = 10000 each; 80000 x 0.5 = 40000 */
    CHECK(text && strstr(text, "lambdad_conc_total{k=\"a\"} 10000\n"));
    CHECK(text && strstr(text, "lambdad_conc_total{k=\"h\"} 10000\n"));
    CHECK(text && strstr(text, "lambdad_conc 40000\n"));
    CHECK(text && strstr(text, "lambdad_conc_seconds_bucket{le=\"0.1\"} 0\n"
                               "lambdad_conc_seconds_bucket{le=\"1\"} 80000\n"));
    CHECK(text && strstr(text, "lambdad_conc_seconds_sum 20000\n"
                               "lambdad_conc_seconds_count 80000\n"));
    free(text);
    metrics_registry_free(r);
}

/* ---- the global registry and the METRIC_* definitions ---- */

METRIC_COUNTER(m_defined, "lambdad_test_defined_total", "Defined at file scope.");
METRIC_HISTOGRAM(m_defined_h, "lambdad_test_defined_seconds", "With the latency buckets.",
                 metrics_buckets_latency, "route");

static void test_global(void)
{
    /* registered before main() */
    CHECK(m_defined.reg == metrics_global());
    CHECK(m_defined_h.reg == metrics_global());
    CHECK_INT(m_defined_h.nbuckets, METRICS_BUCKETS_LATENCY_N);
    metrics_counter_add(&m_defined, NULL, 7);
    metrics_observe(&m_defined_h, METRIC_LABELS("/x"), 0.003);
    CHECK_RENDER(NULL,
        "# HELP lambdad_test_defined_seconds With the latency buckets.\n"
        "# TYPE lambdad_test_defined_seconds histogram\n"
        "lambdad_test_defined_seconds_bucket{route=\"/x\",le=\"0.0001\"} 0\n"
        "lambdad_test_defined_seconds_bucket{route=\"/x\",le=\"0.00025\"} 0\n"
        "lambdad_test_defined_seconds_bucket{route=\"/x\",le=\"0.0005\"} 0\n"
        "lambdad_test_defined_seconds_bucket{route=\"/x\",le=\"0.001\"} 0\n"
        "lambdad_test_defined_seconds_bucket{route=\"/x\",le=\"0.0025\"} 0\n"
        "lambdad_test_defined_seconds_bucket{route=\"/x\",le=\"0.005\"} 1\n"
        "lambdad_test_defined_seconds_bucket{route=\"/x\",le=\"0.01\"} 1\n"
        "lambdad_test_defined_seconds_bucket{route=\"/x\",le=\"0.025\"} 1\n"
        "lambdad_test_defined_seconds_bucket{route=\"/x\",le=\"0.05\"} 1\n"
        "lambdad_test_defined_seconds_bucket{route=\"/x\",le=\"0.1\"} 1\n"
        "lambdad_test_defined_seconds_bucket{route=\"/x\",le=\"0.25\"} 1\n"
        "lambdad_test_defined_seconds_bucket{route=\"/x\",le=\"0.5\"} 1\n"
        "lambdad_test_defined_seconds_bucket{route=\"/x\",le=\"1\"} 1\n"
        "lambdad_test_defined_seconds_bucket{route=\"/x\",le=\"2.5\"} 1\n"
        "lambdad_test_defined_seconds_bucket{route=\"/x\",le=\"5\"} 1\n"
        "lambdad_test_defined_seconds_bucket{route=\"/x\",le=\"10\"} 1\n"
        "lambdad_test_defined_seconds_bucket{route=\"/x\",le=\"+Inf\"} 1\n"
        "lambdad_test_defined_seconds_sum{route=\"/x\"} 0.003\n"
        "lambdad_test_defined_seconds_count{route=\"/x\"} 1\n"
        "# HELP lambdad_test_defined_total Defined at file scope.\n"
        "# TYPE lambdad_test_defined_total counter\n"
        "lambdad_test_defined_total 7\n");
    metrics_registry_free(metrics_global());   /* refused: the global one lives on */
    CHECK(m_defined.reg == metrics_global());
}

int main(void)
{
    test_kinds();
    test_definitions();
    test_cap_and_utf8();
    test_threads();
    test_global();
    CHECK_DONE();
}
