/* Unit tests: the real libmicrohttpd server on 127.0.0.1 (port 0) with a
 * fake source, spoken to in raw HTTP/1.1 over sockets: every route, exact
 * error bodies and headers, size limits, idle clients, readyz flipping;
 * queries on the query pool: slow queries (a view whose scan goes on until
 * released) leave the cheap routes answering, a full queue and the time
 * budget give their exact 503s, Cache-Control: no-cache computes afresh,
 * and the server stops with queries running and queued; serving_swap
 * moves requests to a new config and source while a query finishes on
 * the old ones.
 * Sockets have receive timeouts, so a hung server fails the test instead
 * of hanging it; nothing asserts on speed, and threads are ordered by
 * events (a scan has started, the pool reports a queued query), never by
 * sleeping. */
#include "serving/serving.h"
#include "core/metrics.h"
#include "tests/unit/check.h"
#include "tests/unit/aggtest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define T 1795428000   /* 2026-11-23T10:00:00Z */

static char *dims[] = {"page"};
static metric_def metrics[] = {
    {.name = "views", .type = MT_COUNT, .field = NULL, .field_idx = -1},
    {.name = "bytes", .type = MT_SUM, .field = "bytes", .field_idx = 1},
};
static view_def views[] = {
    {.name = "pages", .stream = "pageviews", .gran = GRAN_MINUTE, .dims = dims, .ndims = 1,
     .metrics = metrics, .nmetrics = 2},
    /* only in the pool tests' config: its scan goes on until released */
    {.name = "slow", .stream = "pageviews", .gran = GRAN_MINUTE, .dims = dims, .ndims = 1,
     .metrics = metrics, .nmetrics = 2},
};
static config cfg = {.http_host = "127.0.0.1", .http_port = 0, .http_threads = 2,
                     .http_max_body_bytes = 1048576, .http_max_query_bytes = 8192,
                     .http_max_rows = 100000, .http_max_connections = 1024,
                     .http_max_connections_per_ip = 64, .http_connection_timeout_s = 30,
                     .http_query_timeout_ms = 10000, .serving_answer_cache_mb = 64,
                     .serving_query_threads = 2, .serving_query_queue = 64,
                     .views = views, .nviews = 1, .fingerprint = "0123456789abcdef"};

/* ---- the fake source ---- */

static vtable *table;
static atomic_bool is_ready;

static atomic_ulong state_version = 1, scans;

/* The slow view's scans: how many started, and whether they may end. */
static pthread_mutex_t slow_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t slow_changed = PTHREAD_COND_INITIALIZER;
static int slow_started;
static bool slow_release;

/* Visits one row again and again, 1024 at a time with a pause between,
 * until released (then the answer is complete) or until fn stops it (the
 * time budget, or the server stopping). */
static int slow_scan(int (*fn)(const vrow *, void *), void *fnud)
{
    dimval d = {.s = "/a", .len = 2};
    max_align_t cells[32];   /* one row's states in the view's layout */
    CHECK(views[1].layout->size <= sizeof(cells));
    agg_row_init(views[1].layout, cells);
    row_add(views[1].layout, cells, 0, 0);
    vrow row = {.bucket = T, .dims = &d, .cells = cells};
    pthread_mutex_lock(&slow_mu);
    slow_started++;
    pthread_cond_broadcast(&slow_changed);
    pthread_mutex_unlock(&slow_mu);
    for (;;) {
        for (int i = 0; i < 1024; i++) {
            int rc = fn(&row, fnud);
            if (rc)
                return rc;
        }
        pthread_mutex_lock(&slow_mu);
        bool released = slow_release;
        if (!released) {
            struct timespec t;
            clock_gettime(CLOCK_REALTIME, &t);
            t.tv_nsec += 1000000;   /* pacing, so the query threads do not spin */
            if (t.tv_nsec >= 1000000000L) {
                t.tv_sec++;
                t.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&slow_changed, &slow_mu, &t);
        }
        pthread_mutex_unlock(&slow_mu);
        if (released)
            return 0;
    }
}

static void slow_reset(bool release)
{
    pthread_mutex_lock(&slow_mu);
    slow_started = 0;
    slow_release = release;
    pthread_cond_broadcast(&slow_changed);
    pthread_mutex_unlock(&slow_mu);
}

/* Waits until n slow scans have started (false after 30 s: the test fails
 * instead of hanging). */
static bool slow_wait_started(int n)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += 30;
    pthread_mutex_lock(&slow_mu);
    int rc = 0;
    while (slow_started < n && rc == 0)
        rc = pthread_cond_timedwait(&slow_changed, &slow_mu, &t);
    bool ok = slow_started >= n;
    pthread_mutex_unlock(&slow_mu);
    return ok;
}

static int fake_scan(void *ud, size_t view_idx, int64_t from, int64_t to, gran_t gran,
                     int (*seg_fn)(const segment *, void *),
                     int (*fn)(const vrow *, void *), void *fnud, serving_watermark *wm)
{
    atomic_fetch_add(&scans, 1);
    *wm = (serving_watermark){.version = atomic_load(&state_version), .batch_seq = 9,
                              .batch_at = 0, .live_events = 4};
    if (view_idx == 1)
        return slow_scan(fn, fnud);
    return vtable_foreach(table, fn, fnud);
}

static uint64_t fake_version(void *ud)
{
    return atomic_load(&state_version);
}

static void fake_status(void *ud, json_t *obj)
{
    json_object_set_new(obj, "speed", json_pack("{s:i}", "events", 4));
}

static bool fake_ready(void *ud, const char **reason)
{
    if (atomic_load(&is_ready))
        return true;
    *reason = "recovering: 3 of 10 chunks";
    return false;
}

static atomic_long recompute_calls, recompute_last = -2;

static int fake_recompute(void *ud, long view_idx)
{
    atomic_fetch_add(&recompute_calls, 1);
    atomic_store(&recompute_last, view_idx);
    return 0;
}

METRIC_COUNTER(m_scrapes, "lambdad_test_scrapes_total", "Calls of the source's metrics callback.");

static void fake_metrics(void *ud)
{
    metrics_counter_add(&m_scrapes, NULL, 1);
}

static const serving_source src = {
    .scan_view = fake_scan, .status = fake_status, .ready = fake_ready,
    .recompute = fake_recompute, .metrics = fake_metrics, .version = fake_version,
};

static void add(int64_t ts, const char *page, double bytes)
{
    dimval d = {.s = page, .len = (uint32_t)strlen(page)};
    void *c = vtable_upsert(table, ts, &d);
    row_add(views[0].layout, c, 0, 0);
    row_add(views[0].layout, c, 1, bytes);
}

/* ---- a raw HTTP/1.1 client ---- */

static int port;

static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -errno;
    }
    return fd;
}

static int send_all(int fd, const char *p, size_t len)
{
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

typedef struct {
    int status;            /* 0: no response (closed or timed out) */
    char *head;            /* status line and headers */
    char *body;
    size_t body_len;
} response;

static void response_clear(response *r)
{
    free(r->head);
    free(r->body);
    *r = (response){0};
}

/* The value of header name in r->head (a static copy), or NULL. */
static const char *header(const response *r, const char *name)
{
    static char val[256];
    size_t nl = strlen(name);
    for (const char *line = r->head ? strstr(r->head, "\r\n") : NULL; line;
         line = strstr(line, "\r\n")) {
        line += 2;
        if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ')
                v++;
            size_t vl = strcspn(v, "\r");
            if (vl >= sizeof(val))
                vl = sizeof(val) - 1;
            memcpy(val, v, vl);
            val[vl] = '\0';
            return val;
        }
    }
    return NULL;
}

/* Reads one response; head_only for answers to HEAD. */
static response read_response(int fd, bool head_only)
{
    response r = {0};
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap + 1);
    char *end = NULL;
    while (!end) {
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
        ssize_t n = recv(fd, buf + len, 1, 0);   /* byte by byte: never read past the head */
        if (n <= 0) {
            free(buf);
            return r;
        }
        len += (size_t)n;
        buf[len] = '\0';
        end = len >= 4 ? strstr(buf + len - 4, "\r\n\r\n") : NULL;
    }
    *end = '\0';
    r.head = buf;
    if (sscanf(buf, "HTTP/1.1 %d", &r.status) != 1)
        r.status = -1;
    const char *cl = header(&r, "Content-Length");
    size_t want = cl && !head_only ? strtoul(cl, NULL, 10) : 0;
    r.body = malloc(want + 1);
    while (r.body_len < want) {
        ssize_t n = recv(fd, r.body + r.body_len, want - r.body_len, 0);
        if (n <= 0)
            break;
        r.body_len += (size_t)n;
    }
    r.body[r.body_len] = '\0';
    return r;
}

static response request(const char *raw, size_t len)
{
    response r = {0};
    int fd = dial();
    CHECK(fd >= 0);
    if (fd < 0)
        return r;
    if (send_all(fd, raw, len) == 0)
        r = read_response(fd, strncmp(raw, "HEAD ", 5) == 0);
    close(fd);
    return r;
}

static response get(const char *target)
{
    char *raw = NULL;
    int n = asprintf(&raw, "GET %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n", target);
    response r = request(raw, (size_t)n);
    free(raw);
    return r;
}

/* Checks status, JSON headers and the exact body. */
#define CHECK_RESP(r, st, expected) do { \
    CHECK_INT((r).status, st); \
    CHECK_STR(header(&(r), "Content-Type"), "application/json"); \
    CHECK_STR(header(&(r), "Cache-Control"), "no-store"); \
    CHECK_STR((r).body, expected); } while (0)

#define CHECK_GET(target, st, expected) do { \
    response _r = get(target); CHECK_RESP(_r, st, expected); response_clear(&_r); } while (0)

#define ERR(st, msg) "{\"error\":{\"status\":" #st ",\"message\":\"" msg "\"}}"

static void test_routes(void)
{
    CHECK_GET("/healthz", 200, "{\"status\":\"ok\"}");
    CHECK_GET("/healthz?probe=1", 200, "{\"status\":\"ok\"}");   /* parameters ignored */

    response nr = get("/readyz");
    CHECK_RESP(nr, 503, ERR(503, "recovering: 3 of 10 chunks"));
    CHECK_STR(header(&nr, "Retry-After"), "1");   /* every 503 says when to retry */
    response_clear(&nr);
    atomic_store(&is_ready, true);
    CHECK_GET("/readyz", 200, "{\"status\":\"ready\"}");

    CHECK_GET("/v1/views", 200,
              "{\"views\":[{\"name\":\"pages\",\"stream\":\"pageviews\",\"granularity\":\"minute\","
              "\"dimensions\":[\"page\"],\"metrics\":[{\"name\":\"views\",\"type\":\"count\"},"
              "{\"name\":\"bytes\",\"type\":\"sum\",\"field\":\"bytes\"}]}]}");

    response r = get("/v1/status");
    CHECK_INT(r.status, 200);
    CHECK_STR(header(&r, "Content-Type"), "application/json");
    json_error_t jerr;
    json_t *st = json_loads(r.body ? r.body : "", 0, &jerr);
    CHECK(st != NULL);
    CHECK_STR(json_string_value(json_object_get(st, "version")), LAMBDAD_VERSION);
    CHECK_STR(json_string_value(json_object_get(st, "config_fingerprint")), "0123456789abcdef");
    CHECK(json_is_integer(json_object_get(st, "uptime_s")));
    CHECK(json_integer_value(json_object_get(st, "uptime_s")) >= 0);
    CHECK_INT(json_integer_value(json_object_get(json_object_get(st, "speed"), "events")), 4);
    json_decref(st);
    response_clear(&r);

    CHECK_GET("/v1/views/pages/query?granularity=all&group_by=page", 200,
              "{\"view\":\"pages\",\"granularity\":\"all\",\"rows\":["
              "{\"dims\":{\"page\":\"/a\"},\"metrics\":{\"views\":2,\"bytes\":30}},"
              "{\"dims\":{\"page\":\"/b c\"},\"metrics\":{\"views\":1,\"bytes\":2.5}}],"
              "\"watermark\":{\"batch_seq\":9,\"batch_at\":null,\"live_events\":4}}");
    /* percent-decoding of values; '+' is a space; a '+' offset arrives as one */
    CHECK_GET("/v1/views/pages/query?filter=page%3A%2Fb+c&from=2026-11-23T11:00:00+01:00", 200,
              "{\"view\":\"pages\",\"granularity\":\"minute\",\"rows\":["
              "{\"time\":\"2026-11-23T10:01:00Z\",\"ts\":1795428060,\"dims\":{},"
              "\"metrics\":{\"views\":1,\"bytes\":2.5}}],"
              "\"watermark\":{\"batch_seq\":9,\"batch_at\":null,\"live_events\":4}}");
    CHECK_GET("/v1/views/pages/query?from=2026-11-23T11:00:00%2B01:00&to=1795428060&metrics=bytes",
              200,
              "{\"view\":\"pages\",\"granularity\":\"minute\",\"rows\":["
              "{\"time\":\"2026-11-23T10:00:00Z\",\"ts\":1795428000,\"dims\":{},"
              "\"metrics\":{\"bytes\":30}}],"
              "\"watermark\":{\"batch_seq\":9,\"batch_at\":null,\"live_events\":4}}");
    /* a percent-encoded view name */
    CHECK_GET("/v1/views/pag%65s/query?metrics=views&granularity=all", 200,
              "{\"view\":\"pages\",\"granularity\":\"all\",\"rows\":["
              "{\"dims\":{},\"metrics\":{\"views\":3}}],"
              "\"watermark\":{\"batch_seq\":9,\"batch_at\":null,\"live_events\":4}}");

    /* 400 */
    /* empty segments are nothing given; an empty name with a value is unknown */
    CHECK_GET("/v1/views/pages/query?&metrics=views&&limit=1&", 200,
              "{\"view\":\"pages\",\"granularity\":\"minute\",\"rows\":["
              "{\"time\":\"2026-11-23T10:00:00Z\",\"ts\":1795428000,\"dims\":{},"
              "\"metrics\":{\"views\":2}}],"
              "\"watermark\":{\"batch_seq\":9,\"batch_at\":null,\"live_events\":4}}");
    CHECK_GET("/v1/views/pages/query?metrics=views&=1", 400, ERR(400, "unknown parameter ''"));
    CHECK_GET("/v1/views/pages/query?metrics=views&limit", 400,
              ERR(400, "empty value for parameter 'limit'"));
    /* %00 decodes to a NUL byte inside the value; a bad escape stays as is */
    CHECK_GET("/v1/views/pages/query?limit=1%002", 400,
              ERR(400, "invalid limit '1\\u00002' (expected an integer from 1 to 1000000)"));
    CHECK_GET("/v1/views/pages/query?limit=1%2", 400,
              ERR(400, "invalid limit '1%2' (expected an integer from 1 to 1000000)"));
    CHECK_GET("/v1/views/pages/query?x=1", 400, ERR(400, "unknown parameter 'x'"));
    CHECK_GET("/v1/views/pages/query?from=1&from=2", 400, ERR(400, "duplicate parameter 'from'"));
    CHECK_GET("/v1/views/pages/query?group_by=country", 400,
              ERR(400, "unknown dimension 'country' in group_by"));
    CHECK_GET("/v1/views/pages/query?from=soon", 400,
              ERR(400, "invalid 'from': expected epoch seconds, epoch milliseconds or RFC 3339"));
    CHECK_GET("/v1/views/pages/query?limit=%FF", 400,
              ERR(400, "invalid limit '\\ufffd' (expected an integer from 1 to 1000000)"));

    /* 404 */
    CHECK_GET("/nope", 404, ERR(404, "no such endpoint: /nope"));
    CHECK_GET("/ui/", 404, ERR(404, "no such endpoint: /ui/"));
    CHECK_GET("/v1/views/", 404, ERR(404, "no such endpoint: /v1/views/"));
    CHECK_GET("/v1/views/pages", 404, ERR(404, "no such endpoint: /v1/views/pages"));
    CHECK_GET("/v1/views//query", 404, ERR(404, "no such endpoint: /v1/views//query"));
    CHECK_GET("/v1/views/a/b/query", 404, ERR(404, "no such endpoint: /v1/views/a/b/query"));
    CHECK_GET("/v1/views/pages/query/x", 404,
              ERR(404, "no such endpoint: /v1/views/pages/query/x"));
    CHECK_GET("/v1/views/nope/query", 404, ERR(404, "unknown view 'nope'"));
    CHECK_GET("/v1/%00x", 404, ERR(404, "no such endpoint: /v1/"));
    /* the absolute form of a request target names the same resource */
    CHECK_GET("http://example.com/healthz", 200, "{\"status\":\"ok\"}");
    CHECK_GET("http://example.com/nope", 404, ERR(404, "no such endpoint: /nope"));
    CHECK_GET("/v1/views/%22q%22/query", 404, ERR(404, "unknown view '\\\"q\\\"'"));

    /* 405, with Allow */
    static const char post[] = "POST /v1/views HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                               "Content-Length: 5\r\n\r\nhello";
    r = request(post, strlen(post));
    CHECK_RESP(r, 405, ERR(405, "method POST not allowed on /v1/views"));
    CHECK_STR(header(&r, "Allow"), "GET, HEAD");
    response_clear(&r);
    static const char del[] = "DELETE /v1/views/pages/query?x=1 HTTP/1.1\r\nHost: t\r\n"
                              "Connection: close\r\n\r\n";
    r = request(del, strlen(del));
    CHECK_RESP(r, 405, ERR(405, "method DELETE not allowed on /v1/views/pages/query"));
    CHECK_STR(header(&r, "Allow"), "GET, HEAD");
    response_clear(&r);
    /* an unknown path is a 404 whatever the method */
    static const char put[] = "PUT /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                              "Content-Length: 0\r\n\r\n";
    r = request(put, strlen(put));
    CHECK_RESP(r, 404, ERR(404, "no such endpoint: /x"));
    response_clear(&r);

    /* POST routes get their body: chunked, in pieces, on an HTTP thread;
     * and with a Content-Length on the query pool (the job copies it) */
    static const char chunked[] = "POST /grafana/metric-payload-options HTTP/1.1\r\nHost: t\r\n"
                                  "Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  "17\r\n{\"metric\":\"pages.views\"\r\n"
                                  "13\r\n,\"name\":\"group_by\"}\r\n0\r\n\r\n";
    r = request(chunked, strlen(chunked));
    CHECK_RESP(r, 200, "[{\"label\":\"page\",\"value\":\"page\"}]");
    response_clear(&r);
    static const char pooled[] = "POST /grafana/query HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                                 "Content-Length: 37\r\n\r\n{\"targets\":[{\"target\":\"pages.nope\"}]}";
    r = request(pooled, strlen(pooled));
    CHECK_RESP(r, 404, ERR(404, "unknown target 'pages.nope' (expected view.metric, as POST "
                                "/grafana/metrics lists them)"));
    response_clear(&r);
    static const char empty[] = "POST /grafana/tag-keys HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                                "Content-Length: 0\r\n\r\n";
    r = request(empty, strlen(empty));
    CHECK_RESP(r, 200, "[{\"type\":\"string\",\"text\":\"page\"}]");
    response_clear(&r);

    /* HEAD: headers only */
    static const char head[] = "HEAD /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    r = request(head, strlen(head));
    CHECK_INT(r.status, 200);
    CHECK_STR(header(&r, "Content-Type"), "application/json");
    CHECK_STR(header(&r, "Content-Length"), "15");
    CHECK_INT(r.body_len, 0);
    response_clear(&r);
}

/* GET /metrics: the registry's text, after the source's callback; the
 * requests made so far are counted by route pattern and status. */
static void test_metrics(void)
{
    /* The requests before are answered, but the server may still be
     * ending them (in flight, connection open) when the next one arrives:
     * scrape until only this scrape's own request and connection remain. */
    response r = {0};
    int scrapes = 0;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        response_clear(&r);
        r = get("/metrics");
        scrapes++;
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while (r.body && !(strstr(r.body, "\nlambdad_http_requests_in_flight 1\n") &&
                         strstr(r.body, "\nlambdad_http_connections 1\n")) &&
             t.tv_sec - t0.tv_sec < 60);   /* a bound for a loaded machine, not an order */
    CHECK_INT(r.status, 200);
    CHECK_STR(header(&r, "Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
    char scraped[96];
    snprintf(scraped, sizeof(scraped),
             "# TYPE lambdad_test_scrapes_total counter\nlambdad_test_scrapes_total %d\n", scrapes);
    /* counted by pattern: 10 different unknown paths are one series */
    const char *const want[] = {
        scraped,
        "lambdad_http_requests_total{route=\"/healthz\",code=\"200\"} 4\n",   /* HEAD too */
        "lambdad_http_requests_total{route=\"/readyz\",code=\"503\"} 1\n",
        "lambdad_http_requests_total{route=\"/v1/admin/recompute\",code=\"202\"} 2\n",
        "lambdad_http_requests_total{route=\"/v1/views/{view}/query\",code=\"400\"} 9\n",
        "lambdad_http_requests_total{route=\"/v1/views/{view}/query\",code=\"404\"} 2\n",
        "lambdad_http_requests_total{route=\"other\",code=\"404\"} 10\n",
        "lambdad_http_request_duration_seconds_count{route=\"/healthz\"} 4\n",
        "lambdad_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"+Inf\"} 4\n",
        "lambdad_http_requests_in_flight 1\n",   /* this one */
        "lambdad_http_connections 1\n",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (!r.body || !strstr(r.body, want[i])) {
            fprintf(stderr, "/metrics lacks: %s", want[i]);
            check_failures++;
        }
    CHECK(r.body && !strstr(r.body, "/nope"));
    response_clear(&r);
    r = get("/metrics");
    snprintf(scraped, sizeof(scraped), "lambdad_test_scrapes_total %d\n", scrapes + 1);
    CHECK(r.body && strstr(r.body, scraped));
    snprintf(scraped, sizeof(scraped),
             "lambdad_http_requests_total{route=\"/metrics\",code=\"200\"} %d\n", scrapes);
    CHECK(r.body && strstr(r.body, scraped));
    response_clear(&r);
}

static void test_keepalive(void)
{
    /* two requests on one connection, the second sent before the first answer is read */
    int fd = dial();
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    static const char two[] = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
                              "GET /v1/views/nope/query HTTP/1.1\r\nHost: t\r\n\r\n";
    CHECK_INT(send_all(fd, two, strlen(two)), 0);
    response r = read_response(fd, false);
    CHECK_RESP(r, 200, "{\"status\":\"ok\"}");
    response_clear(&r);
    r = read_response(fd, false);
    CHECK_RESP(r, 404, ERR(404, "unknown view 'nope'"));
    response_clear(&r);
    close(fd);
}

static void test_limits(void)
{
    /* a query string just under and just over 8 KiB */
    size_t n = 8192;
    char *qs = malloc(n + 64);
    memcpy(qs, "/v1/views/pages/query?x=", 24);
    size_t plen = 24 + (n - strlen("x="));
    memset(qs + 24, 'a', plen - 24);
    qs[plen] = '\0';
    response r = get(qs);
    CHECK_INT(r.status, 400);   /* exactly 8192 bytes: accepted, then the unknown parameter */
    CHECK(r.body && strncmp(r.body, "{\"error\":{\"status\":400,\"message\":\"unknown parameter 'x'", 40) == 0);
    response_clear(&r);
    strcat(qs, "a");
    CHECK_GET(qs, 413, ERR(413, "query string too long (limit 8192 bytes)"));
    free(qs);

    /* a huge request line: libmicrohttpd refuses it itself; the server lives on */
    size_t huge = 200 * 1024;
    qs = malloc(huge + 64);
    strcpy(qs, "/v1/views/pages/query?x=");
    memset(qs + strlen(qs), 'b', huge);
    qs[24 + huge] = '\0';
    r = get(qs);
    CHECK(r.status == 0 || (r.status >= 400 && r.status < 500));
    response_clear(&r);
    free(qs);
    CHECK_GET("/healthz", 200, "{\"status\":\"ok\"}");

    /* an announced body over 1 MiB: 413 before it is sent */
    static const char big[] = "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                              "Content-Length: 1048577\r\n\r\n";
    r = request(big, strlen(big));
    CHECK_RESP(r, 413, ERR(413, "request body too large (limit 1048576 bytes)"));
    response_clear(&r);
    static const char bigger[] = "POST /v1/views HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                                 "Content-Length: 99999999999999\r\n\r\n";
    r = request(bigger, strlen(bigger));
    CHECK_RESP(r, 413, ERR(413, "request body too large (limit 1048576 bytes)"));
    response_clear(&r);

    /* a body within the limit on a GET route: read, discarded, answered */
    size_t blen = 1024 * 1024;
    char *raw = malloc(blen + 256);
    int hl = sprintf(raw, "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                          "Content-Length: %zu\r\n\r\n", blen);
    memset(raw + hl, 'z', blen);
    r = request(raw, (size_t)hl + blen);
    CHECK_RESP(r, 200, "{\"status\":\"ok\"}");
    response_clear(&r);
    free(raw);

    /* a chunked body that grows past 1 MiB: the connection is closed */
    int fd = dial();
    CHECK(fd >= 0);
    if (fd >= 0) {
        static const char ch[] = "GET /healthz HTTP/1.1\r\nHost: t\r\n"
                                 "Transfer-Encoding: chunked\r\n\r\n";
        send_all(fd, ch, strlen(ch));
        char chunk[64 * 1024 + 16];
        int cl = sprintf(chunk, "%x\r\n", 64 * 1024);
        memset(chunk + cl, 'c', 64 * 1024);
        memcpy(chunk + cl + 64 * 1024, "\r\n", 2);
        for (int i = 0; i < 40; i++)   /* 2.5 MiB, or until the server hangs up */
            if (send_all(fd, chunk, (size_t)cl + 64 * 1024 + 2) < 0)
                break;
        r = read_response(fd, false);
        CHECK_INT(r.status, 0);
        response_clear(&r);
        close(fd);
    }
    CHECK_GET("/healthz", 200, "{\"status\":\"ok\"}");
}

static void test_idle_client(void)
{
    /* one client connects and sends nothing, another sends half a request:
     * a third is still answered (the sockets' 10 s timeout fails a hang) */
    int idle = dial(), half = dial();
    CHECK(idle >= 0 && half >= 0);
    send_all(half, "GET /healthz HTTP/1.1\r\nHo", 25);
    CHECK_GET("/healthz", 200, "{\"status\":\"ok\"}");
    CHECK_GET("/v1/views/pages/query?metrics=views&granularity=all", 200,
              "{\"view\":\"pages\",\"granularity\":\"all\",\"rows\":["
              "{\"dims\":{},\"metrics\":{\"views\":3}}],"
              "\"watermark\":{\"batch_seq\":9,\"batch_at\":null,\"live_events\":4}}");
    /* the half request can still complete */
    send_all(half, "st: t\r\nConnection: close\r\n\r\n", 29);
    response r = read_response(half, false);
    CHECK_RESP(r, 200, "{\"status\":\"ok\"}");
    response_clear(&r);
    close(idle);
    close(half);
}

static void test_start_errors(serving *running)
{
    /* the port is taken */
    config busy = cfg;
    busy.http_port = port;
    serving *s = NULL;
    char *err = NULL;
    CHECK_INT(serving_start(&busy, &src, &s, &err), -EADDRINUSE);
    CHECK(s == NULL);
    char want[96];
    snprintf(want, sizeof(want), "cannot listen on 127.0.0.1:%d: Address already in use", port);
    CHECK_STR(err, want);
    free(err);

    /* an address that is not ours */
    busy.http_host = "192.0.2.1";
    busy.http_port = 0;
    err = NULL;
    CHECK_INT(serving_start(&busy, &src, &s, &err), -EADDRNOTAVAIL);
    CHECK_STR(err, "cannot listen on 192.0.2.1:0: Cannot assign requested address");
    free(err);

    /* not an address at all */
    busy.http_host = "no such host.invalid";
    err = NULL;
    CHECK(serving_start(&busy, &src, &s, &err) < 0);
    CHECK(err && strncmp(err, "cannot listen on no such host.invalid:0: ", 41) == 0);
    free(err);
    (void)running;
}

/* An IPv6 listener, where the machine has ::1 (skipped otherwise). */
static void test_ipv6(void)
{
    config v6 = cfg;
    v6.http_host = "::1";
    serving *s = NULL;
    char *err = NULL;
    int rc = serving_start(&v6, &src, &s, &err);
    if (rc == -EADDRNOTAVAIL || rc == -EAFNOSUPPORT) {
        fprintf(stderr, "no IPv6 loopback here: %s\n", err ? err : "?");
        free(err);
        return;
    }
    CHECK_INT(rc, 0);
    free(err);
    if (!s)
        return;
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6,
                              .sin6_port = htons((uint16_t)serving_port(s))};
    inet_pton(AF_INET6, "::1", &sa.sin6_addr);
    CHECK_INT(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    send_all(fd, req, strlen(req));
    response r = read_response(fd, false);
    CHECK_RESP(r, 200, "{\"status\":\"ok\"}");
    response_clear(&r);
    close(fd);

    /* the error names an IPv6 address in brackets */
    v6.http_port = serving_port(s);
    serving *s2 = NULL;
    err = NULL;
    CHECK_INT(serving_start(&v6, &src, &s2, &err), -EADDRINUSE);
    char want[96];
    snprintf(want, sizeof(want), "cannot listen on [::1]:%d: Address already in use", v6.http_port);
    CHECK_STR(err, want);
    free(err);
    serving_stop(s);
}

static response post(const char *target)
{
    char *raw = NULL;
    int n = asprintf(&raw, "POST %s HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n"
                           "Connection: close\r\n\r\n", target);
    response r = request(raw, (size_t)n);
    free(raw);
    return r;
}

/* The answer cache: a repeated question at an unchanged state version is
 * answered without reading the source; any change of version, or another
 * question, reads it again; the answers are byte-identical. */
static void test_answer_cache(void)
{
    unsigned long before = atomic_load(&scans);
    response a = get("/v1/views/pages/query?granularity=all");
    response b = get("/v1/views/pages/query?granularity=all");
    CHECK_INT(a.status, 200);
    CHECK_STR(b.body, a.body);
    CHECK_INT(atomic_load(&scans), before + 1);
    response c = get("/v1/views/pages/query?granularity=hour");
    CHECK_INT(atomic_load(&scans), before + 2);   /* another question */
    atomic_fetch_add(&state_version, 1);
    response d = get("/v1/views/pages/query?granularity=all");
    CHECK_INT(atomic_load(&scans), before + 3);   /* the state changed */
    CHECK_STR(d.body, a.body);
    /* errors are never cached: each is answered again */
    response e = get("/v1/views/pages/query?granularity=nope");
    response f = get("/v1/views/pages/query?granularity=nope");
    CHECK_INT(e.status, 400);
    CHECK_STR(f.body, e.body);
    response_clear(&a);
    response_clear(&b);
    response_clear(&c);
    response_clear(&d);
    response_clear(&e);
    response_clear(&f);
}

static void test_recompute(void)
{
    response r = post("/v1/admin/recompute");
    CHECK_RESP(r, 202, "{\"status\":\"accepted\",\"view\":null,\"full\":false}");
    response_clear(&r);
    CHECK_INT(atomic_load(&recompute_last), -1);
    r = post("/v1/admin/recompute?view=pages");
    CHECK_RESP(r, 202, "{\"status\":\"accepted\",\"view\":\"pages\",\"full\":true}");
    response_clear(&r);
    CHECK_INT(atomic_load(&recompute_last), 0);
    r = post("/v1/admin/recompute?view=nope");
    CHECK_RESP(r, 404, ERR(404, "unknown view 'nope'"));
    response_clear(&r);
    r = post("/v1/admin/recompute?views=pages");
    CHECK_RESP(r, 400, ERR(400, "unknown parameter 'views'"));
    response_clear(&r);
    r = post("/v1/admin/recompute?view=pages&view=pages");
    CHECK_RESP(r, 400, ERR(400, "duplicate parameter 'view'"));
    response_clear(&r);
    r = get("/v1/admin/recompute");
    CHECK_RESP(r, 405, ERR(405, "method GET not allowed on /v1/admin/recompute"));
    CHECK_STR(header(&r, "Allow"), "POST");
    response_clear(&r);
    CHECK_INT(atomic_load(&recompute_calls), 2);   /* bad requests never reach the source */
}

/* ---- the query pool ---- */

/* Sends GET target on a new connection and returns it, unread. */
static int send_get(const char *target, const char *extra_headers)
{
    int fd = dial();
    CHECK(fd >= 0);
    if (fd < 0)
        return -1;
    char *raw = NULL;
    int n = asprintf(&raw, "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n%s\r\n", target,
                     extra_headers ? extra_headers : "");
    CHECK_INT(send_all(fd, raw, (size_t)n), 0);
    free(raw);
    return fd;
}

static response recv_close(int fd)
{
    response r = fd >= 0 ? read_response(fd, false) : (response){0};
    if (fd >= 0)
        close(fd);
    return r;
}

/* The serving.query_pool object of /v1/status (a new reference), or NULL. */
static json_t *pool_status(void)
{
    response r = get("/v1/status");
    json_t *st = r.status == 200 ? json_loads(r.body, 0, NULL) : NULL;
    response_clear(&r);
    json_t *pool = json_incref(json_object_get(json_object_get(st, "serving"), "query_pool"));
    json_decref(st);
    return pool;
}

static json_int_t pool_figure(const char *name)
{
    json_t *p = pool_status();
    json_int_t v = json_integer_value(json_object_get(p, name));
    json_decref(p);
    return p ? v : -1;
}

/* Asks /v1/status until the pool's figure is n (false after 30 s). Each
 * look is a request: the event is observed, not slept for. */
static bool wait_figure(const char *name, json_int_t n)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        if (pool_figure(name) == n)
            return true;
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while (t.tv_sec - t0.tv_sec < 30);
    return false;
}

static bool wait_queued(json_int_t n)
{
    return wait_figure("queued", n);
}

static bool has_line(const response *r, const char *line)
{
    return r->body && strstr(r->body, line);
}

static serving *start_with(const config *c)
{
    serving *s = NULL;
    char *err = NULL;
    CHECK_INT(serving_start(c, &src, &s, &err), 0);
    if (err)
        fprintf(stderr, "serving_start: %s\n", err);
    free(err);
    if (s)
        port = serving_port(s);
    return s;
}

/* More slow queries than HTTP threads: two run (query_threads), one
 * waits (query_queue), a fourth is refused at once; meanwhile every cheap
 * route answers; released, the three are answered. */
static void test_pool_busy(void)
{
    config c = cfg;
    c.nviews = 2;
    c.serving_query_threads = 2;
    c.serving_query_queue = 1;
    c.http_query_timeout_ms = 600000;
    slow_reset(false);
    int main_port = port;
    serving *s = start_with(&c);
    if (!s)
        return;
    int q[3];
    char target[64];
    for (int i = 0; i < 3; i++) {   /* different questions: none waits for another's answer */
        snprintf(target, sizeof(target), "/v1/views/slow/query?limit=%d", i + 1);
        q[i] = send_get(target, NULL);
        if (i == 1)
            CHECK(slow_wait_started(2));   /* both query threads busy */
    }
    CHECK(wait_queued(1));

    response r = get("/v1/views/slow/query?limit=9");
    CHECK_RESP(r, 503, ERR(503, "too many queries waiting (serving.query_queue = 1); "
                                "retry shortly"));
    CHECK_STR(header(&r, "Retry-After"), "1");
    response_clear(&r);

    /* the cheap routes answer meanwhile */
    CHECK_GET("/healthz", 200, "{\"status\":\"ok\"}");
    CHECK_GET("/readyz", 200, "{\"status\":\"ready\"}");
    CHECK_GET("/v1/views", 200,
              "{\"views\":[{\"name\":\"pages\",\"stream\":\"pageviews\",\"granularity\":\"minute\","
              "\"dimensions\":[\"page\"],\"metrics\":[{\"name\":\"views\",\"type\":\"count\"},"
              "{\"name\":\"bytes\",\"type\":\"sum\",\"field\":\"bytes\"}]},"
              "{\"name\":\"slow\",\"stream\":\"pageviews\",\"granularity\":\"minute\","
              "\"dimensions\":[\"page\"],\"metrics\":[{\"name\":\"views\",\"type\":\"count\"},"
              "{\"name\":\"bytes\",\"type\":\"sum\",\"field\":\"bytes\"}]}]}");
    r = get("/metrics");
    CHECK_INT(r.status, 200);
    CHECK(has_line(&r, "\nlambdad_query_pool_threads 2\n"));
    CHECK(has_line(&r, "\nlambdad_query_pool_running 2\n"));
    CHECK(has_line(&r, "\nlambdad_query_pool_queued 1\n"));
    CHECK(has_line(&r, "\nlambdad_query_rejected_total 1\n"));
    response_clear(&r);
    json_t *pool = pool_status();
    CHECK_INT(json_integer_value(json_object_get(pool, "threads")), 2);
    CHECK_INT(json_integer_value(json_object_get(pool, "running")), 2);
    CHECK_INT(json_integer_value(json_object_get(pool, "queued")), 1);
    CHECK_INT(json_integer_value(json_object_get(pool, "rejected")), 1);
    CHECK_INT(json_integer_value(json_object_get(pool, "timeouts")), 0);
    json_decref(pool);

    slow_reset(true);
    for (int i = 0; i < 3; i++) {
        r = recv_close(q[i]);
        CHECK_INT(r.status, 200);
        snprintf(target, sizeof(target), "{\"view\":\"slow\",\"granularity\":\"minute\",\"rows\":[{");
        CHECK(r.body && strncmp(r.body, target, strlen(target)) == 0);
        response_clear(&r);
    }
    CHECK_INT(pool_figure("done"), 3);
    serving_stop(s);
    port = main_port;
}

/* A query past http.limits.query_timeout_ms: its exact 503, counted. */
static void test_pool_timeout(void)
{
    config c = cfg;
    c.nviews = 2;
    c.http_query_timeout_ms = 50;
    slow_reset(false);
    int main_port = port;
    serving *s = start_with(&c);
    if (!s)
        return;
    response r = get("/v1/views/slow/query");
    CHECK_RESP(r, 503, ERR(503, "query exceeded http.limits.query_timeout_ms (50 ms); narrow it "
                                "(from/to, filter, group_by or a coarser granularity)"));
    CHECK_STR(header(&r, "Retry-After"), "1");
    response_clear(&r);
    /* abandoned, not cached: asked again, it runs (and times out) again */
    r = get("/v1/views/slow/query");
    CHECK_INT(r.status, 503);
    response_clear(&r);
    CHECK(slow_wait_started(2));
    CHECK_INT(pool_figure("timeouts"), 2);
    r = get("/metrics");
    CHECK(r.body && strstr(r.body, "\nlambdad_query_timeouts_total "));
    response_clear(&r);
    /* quick queries still answer */
    CHECK_GET("/v1/views/pages/query?metrics=views&granularity=all", 200,
              "{\"view\":\"pages\",\"granularity\":\"all\",\"rows\":["
              "{\"dims\":{},\"metrics\":{\"views\":3}}],"
              "\"watermark\":{\"batch_seq\":9,\"batch_at\":null,\"live_events\":4}}");
    serving_stop(s);
    port = main_port;
}

/* Stopping with one query running, two queued and one whose client hung
 * up: serving_stop resumes every suspended connection first (else
 * libmicrohttpd would abort), the running query ends at its next check,
 * the queued ones are answered 503 (or closed, when the daemon stops
 * before the answer is out). */
static void test_pool_stop(void)
{
    config c = cfg;
    c.nviews = 2;
    c.serving_query_threads = 1;
    c.serving_query_queue = 8;
    c.http_query_timeout_ms = 600000;
    slow_reset(false);
    int main_port = port;
    serving *s = start_with(&c);
    if (!s)
        return;
    int q[4];
    char target[64];
    for (int i = 0; i < 4; i++) {
        snprintf(target, sizeof(target), "/v1/views/slow/query?limit=%d", i + 1);
        q[i] = send_get(target, NULL);
        if (i == 0)
            CHECK(slow_wait_started(1));
    }
    CHECK(wait_queued(3));
    close(q[3]);   /* a client that hangs up while its query waits */
    q[3] = -1;
    serving_stop(s);
    for (int i = 0; i < 3; i++) {
        response r = recv_close(q[i]);
        CHECK(r.status == 0 || r.status == 503);
        if (r.status == 503)
            CHECK_STR(r.body, ERR(503, "the server is stopping; retry shortly"));
        response_clear(&r);
    }
    CHECK_INT(dial(), -ECONNREFUSED);
    port = main_port;
}

/* A client that hangs up while its query runs: the query finishes, its
 * reply fails to send, and the request is cleaned up (the sanitizer build
 * would report the job otherwise); the server goes on. */
static void test_pool_client_gone(void)
{
    config c = cfg;
    c.nviews = 2;
    slow_reset(false);
    int main_port = port;
    serving *s = start_with(&c);
    if (!s)
        return;
    int fd = send_get("/v1/views/slow/query?limit=5", NULL);
    CHECK(slow_wait_started(1));
    close(fd);
    slow_reset(true);
    CHECK(wait_figure("done", 1));   /* the query ended, and its request with it */
    CHECK_GET("/healthz", 200, "{\"status\":\"ok\"}");
    serving_stop(s);
    port = main_port;
}

/* ---- serving_swap ---- */

/* The source a swap moves to: the same rows, another watermark. */
static int scan_next(void *ud, size_t view_idx, int64_t from, int64_t to, gran_t gran,
                     int (*seg_fn)(const segment *, void *),
                     int (*fn)(const vrow *, void *), void *fnud, serving_watermark *wm)
{
    int r = fake_scan(ud, view_idx, from, to, gran, seg_fn, fn, fnud, wm);
    wm->batch_seq = 10;
    wm->unreadable_events = 2;
    return r;
}

static const serving_source src_next = {
    .scan_view = scan_next, .status = fake_status, .ready = fake_ready,
    .recompute = fake_recompute, .metrics = fake_metrics, .version = fake_version,
};

typedef struct {
    serving *s;
    const config *c;
    atomic_bool done;
    int rc;
} swap_call;

static void *run_swap(void *p)
{
    swap_call *a = p;
    a->rc = serving_swap(a->s, a->c, &src_next);
    atomic_store(&a->done, true);
    return NULL;
}

/* Each setting the server reads at start only is named by
 * serving_swap_blocker when it changes; the others are not. */
static void test_swap_blockers(serving *s, const config *c)
{
    config n = *c;
    CHECK(serving_swap_blocker(s, &n) == NULL);
    n.http_cors_origin = "*";
    n.http_max_body_bytes = 10;
    n.http_max_rows = 5;
    n.http_query_timeout_ms = 1;
    n.serving_answer_cache_mb = 1;
    n.nviews = 1;
    CHECK(serving_swap_blocker(s, &n) == NULL);
#define BLOCKS(field, value, name) do { \
    config b = *c; b.field = value; CHECK_STR(serving_swap_blocker(s, &b), name); } while (0)
    BLOCKS(http_host, "::1", "http.listen");
    BLOCKS(http_port, 8080, "http.listen");
    BLOCKS(http_tls_cert, "PEM", "http.tls");
    BLOCKS(http_tls_key, "PEM", "http.tls");
    BLOCKS(http_threads, 3, "http.threads");
    BLOCKS(http_max_connections, 1, "http.limits.max_connections");
    BLOCKS(http_max_connections_per_ip, 1, "http.limits.max_connections_per_ip");
    BLOCKS(http_max_query_bytes, 1, "http.limits.max_query_bytes");
    BLOCKS(http_connection_timeout_s, 1, "http.limits.connection_timeout_s");
    BLOCKS(serving_query_threads, 1, "serving.query_threads");
    BLOCKS(serving_query_queue, 1, "serving.query_queue");
#undef BLOCKS
}

/* A swap while a query runs: requests from then on read the next config
 * (its views, body limit, CORS origin) and source (its watermark, also in
 * the headers), the running query ends on the previous ones, and
 * serving_swap returns only after it. */
static void test_swap(void)
{
    config c = cfg;
    c.nviews = 2;
    c.http_query_timeout_ms = 600000;
    slow_reset(false);
    int main_port = port;
    serving *s = start_with(&c);
    if (!s)
        return;
    test_swap_blockers(s, &c);
    config next = c;
    next.nviews = 1;   /* no "slow" view */
    next.http_max_body_bytes = 10;
    next.http_cors_origin = "https://dash.example";

    int q = send_get("/v1/views/slow/query?granularity=all", NULL);
    CHECK(slow_wait_started(1));
    swap_call a = {.s = s, .c = &next};
    pthread_t t;
    CHECK_INT(pthread_create(&t, NULL, run_swap, &a), 0);
    /* Wait until the swap made the next config current, looking at the
     * view list: it is answered on the HTTP thread, while a query of
     * "slow" sent before the swap would take the other pool thread. */
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    response r = {0};
    do {
        response_clear(&r);
        r = get("/v1/views");
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while ((!r.body || strstr(r.body, "\"slow\"")) && now.tv_sec - t0.tv_sec < 30);
    response_clear(&r);
    r = get("/v1/views/slow/query");
    CHECK_STR(r.body, ERR(404, "unknown view 'slow'"));
    CHECK_STR(header(&r, "Access-Control-Allow-Origin"), "https://dash.example");
    response_clear(&r);
    CHECK(!atomic_load(&a.done));   /* the slow query still reads the previous generation */

    r = get("/v1/views/pages/query?metrics=views&granularity=all");
    CHECK_RESP(r, 200, "{\"view\":\"pages\",\"granularity\":\"all\",\"rows\":["
                       "{\"dims\":{},\"metrics\":{\"views\":3}}],\"watermark\":{\"batch_seq\":10,"
                       "\"batch_at\":null,\"live_events\":4,\"unreadable_events\":2}}");
    CHECK_STR(header(&r, "X-Lambdad-Batch-Seq"), "10");
    CHECK_STR(header(&r, "X-Lambdad-Live-Events"), "4");
    CHECK_STR(header(&r, "X-Lambdad-Unreadable-Events"), "2");
    CHECK(header(&r, "X-Lambdad-Batch-At") == NULL);
    response_clear(&r);
    static const char big[] = "POST /grafana/tag-keys HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                              "Content-Length: 11\r\n\r\n";
    r = request(big, strlen(big));
    CHECK_RESP(r, 413, ERR(413, "request body too large (limit 10 bytes)"));
    response_clear(&r);

    slow_reset(true);
    r = recv_close(q);
    CHECK_INT(r.status, 200);
    static const char slow_head[] = "{\"view\":\"slow\",\"granularity\":\"all\",\"rows\":[{";
    CHECK(r.body && strncmp(r.body, slow_head, strlen(slow_head)) == 0);
    CHECK(r.body && strstr(r.body, "\"watermark\":{\"batch_seq\":9,\"batch_at\":null,"
                                   "\"live_events\":4}}"));
    CHECK_STR(header(&r, "X-Lambdad-Batch-Seq"), "9");
    CHECK(header(&r, "Access-Control-Allow-Origin") == NULL);
    response_clear(&r);
    CHECK_INT(pthread_join(t, NULL), 0);
    CHECK(atomic_load(&a.done));
    CHECK_INT(a.rc, 0);
    serving_stop(s);
    port = main_port;
}

/* Cache-Control: no-cache computes the answer afresh (a scan, counted as
 * a miss) although an answer at the current version is cached. */
static void test_no_cache(void)
{
    static const char q[] = "/v1/views/pages/query?group_by=page&granularity=all";
    response a = get(q);
    CHECK_INT(a.status, 200);
    unsigned long before = atomic_load(&scans);
    response m0 = get("/metrics");
    response b = get(q);                      /* a hit: no scan */
    CHECK_INT(atomic_load(&scans), before);
    int fd = send_get(q, "Cache-Control: no-cache\r\n");
    response c = recv_close(fd);
    CHECK_INT(atomic_load(&scans), before + 1);
    CHECK_INT(c.status, 200);
    CHECK_STR(c.body, a.body);
    /* directives in a list, any case; max-age=0 alone is no bypass */
    fd = send_get(q, "Cache-Control: max-age=0, No-Cache\r\n");
    response d = recv_close(fd);
    CHECK_INT(atomic_load(&scans), before + 2);
    fd = send_get(q, "Cache-Control: max-age=0\r\n");
    response e = recv_close(fd);
    CHECK_INT(atomic_load(&scans), before + 2);
    CHECK_STR(e.body, a.body);
    response m1 = get("/metrics");
    /* the cache's counters moved by 1 hit + 1 hit, and 2 misses */
    const char *mp0 = m0.body ? strstr(m0.body, "lambdad_query_cache_total{result=\"miss\"} ") : NULL;
    const char *mp1 = m1.body ? strstr(m1.body, "lambdad_query_cache_total{result=\"miss\"} ") : NULL;
    CHECK(mp0 && mp1);
    if (mp0 && mp1)
        CHECK_INT(atoll(mp1 + strlen("lambdad_query_cache_total{result=\"miss\"} ")) -
                  atoll(mp0 + strlen("lambdad_query_cache_total{result=\"miss\"} ")), 2);
    CHECK(m1.body && strstr(m1.body, "\nlambdad_query_cache_entries "));
    CHECK(m1.body && strstr(m1.body, "\nlambdad_query_cache_bytes "));
    CHECK(m1.body && strstr(m1.body, "\nlambdad_query_cache_budget_bytes 67108864\n"));

    /* /v1/status shows the cache */
    response st = get("/v1/status");
    json_t *j = json_loads(st.body ? st.body : "", 0, NULL);
    json_t *ac = json_object_get(json_object_get(j, "serving"), "answer_cache");
    CHECK(json_integer_value(json_object_get(ac, "entries")) >= 1);
    CHECK(json_integer_value(json_object_get(ac, "bytes")) > 0);
    CHECK_INT(json_integer_value(json_object_get(ac, "budget_bytes")), 67108864);
    CHECK(json_integer_value(json_object_get(ac, "hits")) >= 2);
    CHECK(json_integer_value(json_object_get(ac, "misses")) >= 3);
    CHECK(json_is_integer(json_object_get(ac, "advances")));
    CHECK_INT(json_integer_value(json_object_get(ac, "evictions")), 0);
    json_decref(j);
    response_clear(&st);

    /* HEAD of a query (on the pool too): the headers of the GET */
    static const char head[] = "HEAD /v1/views/pages/query?group_by=page&granularity=all HTTP/1.1\r\n"
                               "Host: t\r\nConnection: close\r\n\r\n";
    response h = request(head, strlen(head));
    CHECK_INT(h.status, 200);
    char len[32];
    snprintf(len, sizeof(len), "%zu", a.body_len);
    CHECK_STR(header(&h, "Content-Length"), len);
    CHECK_INT(h.body_len, 0);
    response_clear(&h);

    response_clear(&a);
    response_clear(&b);
    response_clear(&c);
    response_clear(&d);
    response_clear(&e);
    response_clear(&m0);
    response_clear(&m1);
}

int main(void)
{
    views[0].layout = agg_layout_new(views[0].metrics, NULL, views[0].nmetrics);
    views[1].layout = agg_layout_new(views[1].metrics, NULL, views[1].nmetrics);
    table = vtable_new(1, views[0].layout);
    add(T, "/a", 10);
    add(T, "/a", 20);
    add(T + 60, "/b c", 2.5);

    serving *s = NULL;
    char *err = NULL;
    CHECK_INT(serving_start(&cfg, &src, &s, &err), 0);
    CHECK(err == NULL);
    if (!s) {
        fprintf(stderr, "serving_start: %s\n", err ? err : "?");
        free(err);
        vtable_free(table);
        free(views[0].layout);
        free(views[1].layout);
        return 1;
    }
    port = serving_port(s);
    CHECK(port > 0);

    test_routes();
    test_recompute();
    test_metrics();      /* counts the requests so far exactly: keep it before the cache test */
    test_answer_cache();
    test_no_cache();
    test_keepalive();
    test_limits();
    test_idle_client();
    test_start_errors(s);
    test_ipv6();
    test_pool_busy();
    test_pool_timeout();
    test_pool_stop();
    test_pool_client_gone();
    test_swap();

    serving_stop(s);
    serving_stop(NULL);
    /* stopped: the port no longer answers */
    CHECK_INT(dial(), -ECONNREFUSED);

    vtable_free(table);
    free(views[0].layout);
    free(views[1].layout);
    CHECK_DONE();
}
