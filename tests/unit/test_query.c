/* Unit tests: query parameters (every error with its exact message), and
 * execution against a fake serving_source over hand-built view tables,
 * compared as exact JSON. Also the JSON writer's escaping and numbers. */
#include "serving/query.h"
#include "core/jbuf.h"
#include "tests/unit/check.h"
#include "tests/unit/aggtest.h"

#include <errno.h>
#include <math.h>

#define T 1795428000   /* 2026-11-23T10:00:00Z */

/* ---- the config: two views, built by hand ---- */

static char *pages_dims[] = {"page", "country"};
static metric_def pages_metrics[] = {
    {.name = "views", .type = MT_COUNT, .field = NULL, .field_idx = -1},
    {.name = "bytes", .type = MT_SUM, .field = "bytes", .field_idx = 2},
    {.name = "fastest", .type = MT_MIN, .field = "ms", .field_idx = 3},
    {.name = "slowest", .type = MT_MAX, .field = "ms", .field_idx = 3},
    {.name = "avg_ms", .type = MT_AVG, .field = "ms", .field_idx = 3},
};
static char *raw_dims[] = {"k"};
static metric_def raw_metrics[] = {
    {.name = "n", .type = MT_COUNT, .field = NULL, .field_idx = -1},
};
static view_def views[] = {
    {.name = "pages", .stream = "pageviews", .gran = GRAN_MINUTE, .dims = pages_dims,
     .ndims = 2, .metrics = pages_metrics, .nmetrics = 5},
    {.name = "raw", .stream = "pageviews", .gran = GRAN_SECOND, .dims = raw_dims, .ndims = 1,
     .metrics = raw_metrics, .nmetrics = 1},
};
static config cfg = {.views = views, .nviews = 2, .fingerprint = "0123456789abcdef"};

/* ---- the fake source: a batch and a live table per view ---- */

typedef struct {
    vtable *batch[2], *live[2];
    int fail;            /* scan_view returns this when non-zero */
    int scans;
} fake;

/* The batch table is served as a segment (core/segment.h) of its day, as
 * the daemon serves batch views, so every expected answer below also
 * checks the segment path (dictionaries, levels, roll-ups); the live table
 * as rows. */
static int serve_as_segment(const vtable *t, const view_def *v,
                            int (*seg_fn)(const segment *, void *), void *fnud)
{
    if (vtable_rows(t) == 0)
        return 0;
    int64_t day = T - T % 86400;
    seg_blob blob = {0};
    segment *seg = NULL;
    int rc = seg_build(t, day, day + 86400, v->gran, &blob);
    CHECK_INT(rc, 0);
    if (rc == 0)
        rc = seg_decode(blob.p, blob.len, v->layout, v->ndims, &seg);
    CHECK_INT(rc, 0);
    if (rc == 0)
        rc = seg_fn(seg, fnud);
    seg_free(seg);
    seg_blob_free(&blob);
    return rc;
}

static int fake_scan(void *ud, size_t view_idx, int64_t from, int64_t to, gran_t gran,
                     int (*seg_fn)(const segment *, void *),
                     int (*fn)(const vrow *, void *), void *fnud, serving_watermark *wm)
{
    fake *f = ud;
    f->scans++;
    if (f->fail)
        return f->fail;
    if (view_idx == 0)
        *wm = (serving_watermark){.batch_seq = 42, .batch_at = T + 3600, .live_events = 7};
    else
        *wm = (serving_watermark){.batch_seq = 0, .batch_at = 0, .live_events = 3};
    int rc = serve_as_segment(f->batch[view_idx], &views[view_idx], seg_fn, fnud);
    if (rc)
        return rc;
    return vtable_foreach(f->live[view_idx], fn, fnud);
}

static dimval dv(const char *s)
{
    if (!s)
        return (dimval){.null = true};
    return (dimval){.s = s, .len = (uint32_t)strlen(s)};
}

/* One event into a pages table: ms < 0 means the field is missing. */
static void page_event(vtable *t, int64_t ts, const char *page, const char *country,
                       double bytes, double ms)
{
    dimval d[2] = {dv(page), dv(country)};
    const agg_layout *l = vtable_layout(t);
    void *c = vtable_upsert(t, ts, d);
    CHECK(c != NULL);
    if (!c)
        return;
    row_add(l, c, 0, 0);
    if (!isnan(bytes))
        row_add(l, c, 1, bytes);
    if (ms >= 0) {
        row_add(l, c, 2, ms);
        row_add(l, c, 3, ms);
        row_add(l, c, 4, ms);
    }
}

static void raw_event(vtable *t, int64_t ts, const char *k, size_t klen)
{
    dimval d = k ? (dimval){.s = k, .len = (uint32_t)klen} : (dimval){.null = true};
    void *c = vtable_upsert(t, ts, &d);
    CHECK(c != NULL);
    if (c)
        row_add(vtable_layout(t), c, 0, 0);
}

static void fake_fill(fake *f)
{
    for (int v = 0; v < 2; v++) {
        f->batch[v] = vtable_new(views[v].ndims, views[v].layout);
        f->live[v] = vtable_new(views[v].ndims, views[v].layout);
    }
    vtable *b = f->batch[0], *l = f->live[0];
    page_event(b, T, "/a", "us", 100, 10);
    page_event(b, T, "/a", "us", 200, 20);
    page_event(b, T, "/a", "us", 300, 30);
    page_event(b, T, "/b", "de", 50, 5);
    page_event(b, T + 60, "/a", "us", 1.5, -1);
    page_event(b, T + 60, "/a", "us", 2, -1);
    page_event(b, T + 3600, "/a", NULL, 7, 100);
    page_event(l, T, "/a", "us", 400, 40);          /* same key as in batch: merged */
    page_event(l, T + 60, "/c", "fr", NAN, -1);     /* no numeric fields */
    page_event(l, T - 60, "/b", "de", 10, 1);
    page_event(l, T - 60, "/b", "de", 20, 2);

    /* raw: odd bytes, empty and null values, two layers */
    raw_event(f->batch[1], T, "b", 1);
    raw_event(f->batch[1], T, "", 0);
    raw_event(f->batch[1], T, NULL, 0);
    raw_event(f->live[1], T, "ab", 2);
    raw_event(f->live[1], T, "a", 1);
    raw_event(f->live[1], T, "q\"\\\x01\n\xff\xc3\xa9", 8);
    raw_event(f->live[1], T, "nul\0byte", 8);
    raw_event(f->live[1], T + 1, "b", 1);
}

static void fake_free(fake *f)
{
    for (int v = 0; v < 2; v++) {
        vtable_free(f->batch[v]);
        vtable_free(f->live[v]);
    }
}

static fake F;
static serving_source src = {.ud = &F, .scan_view = fake_scan};

/* ---- running a query from a query string (no URL decoding) ---- */

/* Splits "a=1&b=2" into params pointing into buf (a mutable copy). */
static size_t split_qs(char *buf, qparam *p, size_t max)
{
    size_t n = 0;
    if (!*buf)
        return 0;
    for (char *item = buf; item && n < max;) {
        char *amp = strchr(item, '&');
        if (amp)
            *amp = '\0';
        char *eq = strchr(item, '=');
        p[n].key = item;
        if (eq) {
            *eq = '\0';
            p[n].val = eq + 1;
            p[n].vlen = strlen(eq + 1);
        } else {
            p[n].val = NULL;
            p[n].vlen = 0;
        }
        p[n].klen = strlen(item);
        n++;
        item = amp ? amp + 1 : NULL;
    }
    return n;
}

static char *body;

/* Runs a query; returns the status, the body is in `body` until the next call. */
static int run(const char *view, const char *qs)
{
    char buf[1024];
    qparam p[32];
    snprintf(buf, sizeof(buf), "%s", qs);
    size_t n = split_qs(buf, p, 32);
    free(body);
    size_t len = 0;
    int status = query_handle(&cfg, &src, view, strlen(view), p, n, &body, &len);
    CHECK(body != NULL);
    if (body)
        CHECK_INT(strlen(body), len);
    return status;
}

#define Q_OK(qs, expected) do { \
    CHECK_INT(run("pages", qs), 200); CHECK_STR(body, expected); } while (0)
#define Q_ERR(qs, status, msg) do { \
    CHECK_INT(run("pages", qs), status); \
    CHECK_STR(body, "{\"error\":{\"status\":" #status ",\"message\":\"" msg "\"}}"); } while (0)

#define WM "\"watermark\":{\"batch_seq\":42,\"batch_at\":\"2026-11-23T11:00:00Z\",\"live_events\":7}}"

static void test_errors(void)
{
    CHECK_INT(run("nope", ""), 404);
    CHECK_STR(body, "{\"error\":{\"status\":404,\"message\":\"unknown view 'nope'\"}}");
    /* a prefix of a view's name is not that view */
    CHECK_INT(run("page", ""), 404);
    CHECK_INT(run("pagesx", ""), 404);

    Q_ERR("x=1", 400, "unknown parameter 'x'");
    Q_ERR("from=1&x", 400, "unknown parameter 'x'");
    Q_ERR("FROM=1", 400, "unknown parameter 'FROM'");
    Q_ERR("from=1&from=2", 400, "duplicate parameter 'from'");
    Q_ERR("=1", 400, "unknown parameter ''");
    /* empty segments give nothing */
    CHECK_INT(run("pages", "="), 200);
    Q_ERR("&&limit=0&", 400, "invalid limit '0' (expected an integer from 1 to 1000000)");
    Q_ERR("from=", 400, "empty value for parameter 'from'");
    Q_ERR("limit", 400, "empty value for parameter 'limit'");
    /* unknown names win over bad values: names are checked first */
    Q_ERR("from=zz&y=1", 400, "unknown parameter 'y'");

    Q_ERR("from=abc", 400, "invalid 'from': expected epoch seconds, epoch milliseconds or RFC 3339");
    Q_ERR("from=12x", 400, "invalid 'from': expected epoch seconds, epoch milliseconds or RFC 3339");
    Q_ERR("from=-", 400, "invalid 'from': expected epoch seconds, epoch milliseconds or RFC 3339");
    Q_ERR("from=1.5", 400, "invalid 'from': expected epoch seconds, epoch milliseconds or RFC 3339");
    Q_ERR("from=99999999999999999999999", 400,
          "invalid 'from': expected epoch seconds, epoch milliseconds or RFC 3339");
    /* 10^11 and more: milliseconds; up to year 9999 either way */
    Q_ERR("from=253402300800000", 400,
          "invalid 'from': expected epoch seconds, epoch milliseconds or RFC 3339");
    Q_ERR("from=-62135596801000", 400,
          "invalid 'from': expected epoch seconds, epoch milliseconds or RFC 3339");
    Q_ERR("from=2026-11-23T10:00:00", 400, "invalid 'from': expected epoch seconds, epoch milliseconds or RFC 3339");
    Q_ERR("from=2026-02-30T10:00:00Z", 400, "invalid 'from': expected epoch seconds, epoch milliseconds or RFC 3339");
    Q_ERR("to=tomorrow", 400, "invalid 'to': expected epoch seconds, epoch milliseconds or RFC 3339");
    Q_ERR("from=10&to=5", 400, "'from' is after 'to'");

    Q_ERR("granularity=fortnight", 400,
          "unknown granularity 'fortnight' (expected second, minute, hour, day, week, month, all, "
          "a multiple such as 15m, 6h or 7d, or auto)");
    Q_ERR("granularity=Minute", 400,
          "unknown granularity 'Minute' (expected second, minute, hour, day, week, month, all, "
          "a multiple such as 15m, 6h or 7d, or auto)");
    Q_ERR("granularity=second", 400, "granularity 'second' is finer than the view's 'minute'");

    Q_ERR("group_by=nope", 400, "unknown dimension 'nope' in group_by");
    Q_ERR("group_by=page,page", 400, "duplicate dimension 'page' in group_by");
    Q_ERR("group_by=page,country,page", 400, "duplicate dimension 'page' in group_by");
    Q_ERR("group_by=page,,country", 400, "empty item in group_by");
    Q_ERR("group_by=page,", 400, "empty item in group_by");

    Q_ERR("filter=page", 400, "malformed filter item 'page' (expected dimension:value)");
    Q_ERR("filter=:x", 400, "malformed filter item ':x' (expected dimension:value)");
    Q_ERR("filter=page:/a,,page:/b", 400, "malformed filter item '' (expected dimension:value)");
    Q_ERR("filter=nope:x", 400, "unknown dimension 'nope' in filter");

    Q_ERR("metrics=nope", 400, "unknown metric 'nope' in metrics");
    Q_ERR("metrics=views,views", 400, "duplicate metric 'views' in metrics");
    Q_ERR("metrics=views,", 400, "empty item in metrics");

    Q_ERR("order_by=nope", 400, "unknown metric 'nope' in order_by");
    Q_ERR("order_by=bytes&metrics=views", 400,
          "order_by metric 'bytes' is not among the selected metrics");
    Q_ERR("order_by=views&order=up", 400, "invalid order 'up' (expected asc or desc)");
    Q_ERR("order=asc", 400, "order requires order_by");

    Q_ERR("limit=0", 400, "invalid limit '0' (expected an integer from 1 to 1000000)");
    Q_ERR("limit=1000001", 400, "invalid limit '1000001' (expected an integer from 1 to 1000000)");
    Q_ERR("limit=-1", 400, "invalid limit '-1' (expected an integer from 1 to 1000000)");
    Q_ERR("limit=5x", 400, "invalid limit '5x' (expected an integer from 1 to 1000000)");
    Q_ERR("limit=99999999999999999999", 400,
          "invalid limit '99999999999999999999' (expected an integer from 1 to 1000000)");

    /* client bytes in messages are escaped, invalid UTF-8 included */
    Q_ERR("\xff\"=1", 400, "unknown parameter '\\ufffd\\\"'");

    /* parameters with NUL bytes (possible after %00 decoding) */
    qparam p[1] = {{.key = "from\0x", .klen = 6, .val = "1", .vlen = 1}};
    size_t len;
    free(body);
    CHECK_INT(query_handle(&cfg, &src, "pages", 5, p, 1, &body, &len), 400);
    CHECK_STR(body, "{\"error\":{\"status\":400,\"message\":\"unknown parameter 'from\\u0000x'\"}}");
    p[0] = (qparam){.key = "limit", .klen = 5, .val = "5\0", .vlen = 2};
    free(body);
    CHECK_INT(query_handle(&cfg, &src, "pages", 5, p, 1, &body, &len), 400);
    CHECK_STR(body, "{\"error\":{\"status\":400,\"message\":\"invalid limit '5\\u0000' "
                    "(expected an integer from 1 to 1000000)\"}}");

    /* the source fails */
    int scans = F.scans;
    F.fail = -EIO;
    Q_ERR("", 500, "cannot scan view: Input/output error");
    /* the source cannot answer exactly yet: 503, never a partial answer */
    F.fail = -EAGAIN;
    Q_ERR("", 503, "view is not available yet (recovering or recomputing); retry shortly");
    F.fail = 0;
    CHECK_INT(F.scans, scans + 2);
    /* a bad query never reaches the source */
    Q_ERR("limit=0", 400, "invalid limit '0' (expected an integer from 1 to 1000000)");
    CHECK_INT(F.scans, scans + 2);
}

static void test_parse(void)
{
    qparam p[4];
    char buf[256];
    query q;
    qerror err = {0};

    snprintf(buf, sizeof(buf), "from=2026-11-23T11:00:00.999+01:00&to=-61&group_by=country");
    size_t n = split_qs(buf, p, 4);
    CHECK_INT(query_parse(&cfg, "pages", 5, p, n, &q, &err), -EINVAL);
    CHECK_INT(err.status, 400);
    CHECK_MEM(err.msg, err.len, "'from' is after 'to'", strlen("'from' is after 'to'"));
    query_clear(&q);
    qerror_clear(&err);

    /* an unescaped '+' of an offset arrives as ' ' (form decoding): read back as '+' */
    snprintf(buf, sizeof(buf), "from=2026-11-23T11:00:00.999 01:00&to=-61.&granularity=hour");
    n = split_qs(buf, p, 4);
    CHECK_INT(query_parse(&cfg, "pages", 5, p, n, &q, &err), -EINVAL);
    CHECK_MEM(err.msg, err.len, "invalid 'to': expected epoch seconds, epoch milliseconds or RFC 3339",
              strlen("invalid 'to': expected epoch seconds, epoch milliseconds or RFC 3339"));
    query_clear(&q);
    qerror_clear(&err);

    snprintf(buf, sizeof(buf), "from=2026-11-23T11:00:00.999 01:00&to=1795431600&granularity=hour"
                               "&filter=country:us,page:/a,country:,country:x:y");
    n = split_qs(buf, p, 4);
    CHECK_INT(query_parse(&cfg, "pages", 5, p, n, &q, &err), 0);
    CHECK(q.has_from && q.has_to);
    CHECK_INT(q.from, T);
    CHECK_INT(q.to, T + 3600);
    CHECK_INT(q.gran, GRAN_HOUR);
    CHECK_INT(q.ngroup, 0);
    CHECK_INT(q.nmetrics, 5);
    CHECK_INT(q.order_by, -1);
    CHECK_INT(q.limit, 0);
    /* one filter per dimension, in view order; values in request order */
    CHECK_INT(q.nfilters, 2);
    if (q.nfilters == 2) {
        CHECK_INT(q.filters[0].dim, 0);
        CHECK_INT(q.filters[0].nvals, 1);
        CHECK_MEM(q.filters[0].vals[0].s, q.filters[0].vals[0].len, "/a", 2);
        CHECK_INT(q.filters[1].dim, 1);
        CHECK_INT(q.filters[1].nvals, 3);
        if (q.filters[1].nvals == 3) {
            CHECK_MEM(q.filters[1].vals[0].s, q.filters[1].vals[0].len, "us", 2);
            CHECK_MEM(q.filters[1].vals[1].s, q.filters[1].vals[1].len, "", 0);
            CHECK_MEM(q.filters[1].vals[2].s, q.filters[1].vals[2].len, "x:y", 3);
        }
    }
    query_clear(&q);

    snprintf(buf, sizeof(buf), "metrics=slowest,views&order_by=views&order=asc&limit=1000000");
    n = split_qs(buf, p, 4);
    CHECK_INT(query_parse(&cfg, "raw", 3, p, n, &q, &err), -EINVAL);
    CHECK_INT(err.status, 400);
    CHECK_MEM(err.msg, err.len, "unknown metric 'slowest' in metrics",
              strlen("unknown metric 'slowest' in metrics"));
    query_clear(&q);
    qerror_clear(&err);
    CHECK_INT(query_parse(&cfg, "pages", 5, p, n, &q, &err), 0);
    CHECK_INT(q.gran, GRAN_MINUTE);
    CHECK(!q.has_from && !q.has_to);
    CHECK_INT(q.nmetrics, 2);
    if (q.nmetrics == 2) {
        CHECK_INT(q.metrics[0], 3);
        CHECK_INT(q.metrics[1], 0);
    }
    CHECK_INT(q.order_by, 1);
    CHECK(q.asc);
    CHECK_INT(q.limit, 1000000);
    query_clear(&q);
    query_clear(&q);   /* idempotent */
}

static void test_rollup(void)
{
    /* default: the view's granularity, everything rolled up per bucket;
     * the duplicate (T, /a, us) of batch and live merges */
    Q_OK("", "{\"view\":\"pages\",\"granularity\":\"minute\",\"rows\":["
         "{\"time\":\"2026-11-23T09:59:00Z\",\"ts\":1795427940,\"dims\":{},\"metrics\":"
         "{\"views\":2,\"bytes\":30,\"fastest\":1,\"slowest\":2,\"avg_ms\":1.5}},"
         "{\"time\":\"2026-11-23T10:00:00Z\",\"ts\":1795428000,\"dims\":{},\"metrics\":"
         "{\"views\":5,\"bytes\":1050,\"fastest\":5,\"slowest\":40,\"avg_ms\":21}},"
         "{\"time\":\"2026-11-23T10:01:00Z\",\"ts\":1795428060,\"dims\":{},\"metrics\":"
         "{\"views\":3,\"bytes\":3.5,\"fastest\":null,\"slowest\":null,\"avg_ms\":null}},"
         "{\"time\":\"2026-11-23T11:00:00Z\",\"ts\":1795431600,\"dims\":{},\"metrics\":"
         "{\"views\":1,\"bytes\":7,\"fastest\":100,\"slowest\":100,\"avg_ms\":100}}"
         "]," WM);
    /* the view's own granularity named explicitly: same answer */
    char *same = strdup(body);
    Q_OK("granularity=minute", same);
    free(same);

    Q_OK("granularity=hour",
         "{\"view\":\"pages\",\"granularity\":\"hour\",\"rows\":["
         "{\"time\":\"2026-11-23T09:00:00Z\",\"ts\":1795424400,\"dims\":{},\"metrics\":"
         "{\"views\":2,\"bytes\":30,\"fastest\":1,\"slowest\":2,\"avg_ms\":1.5}},"
         "{\"time\":\"2026-11-23T10:00:00Z\",\"ts\":1795428000,\"dims\":{},\"metrics\":"
         "{\"views\":8,\"bytes\":1053.5,\"fastest\":5,\"slowest\":40,\"avg_ms\":21}},"
         "{\"time\":\"2026-11-23T11:00:00Z\",\"ts\":1795431600,\"dims\":{},\"metrics\":"
         "{\"views\":1,\"bytes\":7,\"fastest\":100,\"slowest\":100,\"avg_ms\":100}}"
         "]," WM);
    Q_OK("granularity=month",
         "{\"view\":\"pages\",\"granularity\":\"month\",\"rows\":["
         "{\"time\":\"2026-11-01T00:00:00Z\",\"ts\":1793491200,\"dims\":{},\"metrics\":"
         "{\"views\":11,\"bytes\":1090.5,\"fastest\":1,\"slowest\":100,\"avg_ms\":26}}"
         "]," WM);
    Q_OK("granularity=all",
         "{\"view\":\"pages\",\"granularity\":\"all\",\"rows\":["
         "{\"dims\":{},\"metrics\":"
         "{\"views\":11,\"bytes\":1090.5,\"fastest\":1,\"slowest\":100,\"avg_ms\":26}}"
         "]," WM);
}

static void test_group_filter(void)
{
    /* group_by order is the dims order; null sorts first */
    Q_OK("granularity=all&group_by=country,page&metrics=views",
         "{\"view\":\"pages\",\"granularity\":\"all\",\"rows\":["
         "{\"dims\":{\"country\":null,\"page\":\"/a\"},\"metrics\":{\"views\":1}},"
         "{\"dims\":{\"country\":\"de\",\"page\":\"/b\"},\"metrics\":{\"views\":3}},"
         "{\"dims\":{\"country\":\"fr\",\"page\":\"/c\"},\"metrics\":{\"views\":1}},"
         "{\"dims\":{\"country\":\"us\",\"page\":\"/a\"},\"metrics\":{\"views\":6}}"
         "]," WM);
    Q_OK("granularity=hour&group_by=page&metrics=views,bytes",
         "{\"view\":\"pages\",\"granularity\":\"hour\",\"rows\":["
         "{\"time\":\"2026-11-23T09:00:00Z\",\"ts\":1795424400,\"dims\":{\"page\":\"/b\"},"
         "\"metrics\":{\"views\":2,\"bytes\":30}},"
         "{\"time\":\"2026-11-23T10:00:00Z\",\"ts\":1795428000,\"dims\":{\"page\":\"/a\"},"
         "\"metrics\":{\"views\":6,\"bytes\":1003.5}},"
         "{\"time\":\"2026-11-23T10:00:00Z\",\"ts\":1795428000,\"dims\":{\"page\":\"/b\"},"
         "\"metrics\":{\"views\":1,\"bytes\":50}},"
         "{\"time\":\"2026-11-23T10:00:00Z\",\"ts\":1795428000,\"dims\":{\"page\":\"/c\"},"
         "\"metrics\":{\"views\":1,\"bytes\":0}},"
         "{\"time\":\"2026-11-23T11:00:00Z\",\"ts\":1795431600,\"dims\":{\"page\":\"/a\"},"
         "\"metrics\":{\"views\":1,\"bytes\":7}}"
         "]," WM);
    /* values of one dimension OR-ed; a filtered dimension need not be grouped */
    Q_OK("granularity=all&filter=page:/b,page:/c&metrics=views",
         "{\"view\":\"pages\",\"granularity\":\"all\",\"rows\":["
         "{\"dims\":{},\"metrics\":{\"views\":4}}]," WM);
    /* different dimensions AND-ed */
    Q_OK("granularity=all&filter=page:/a,country:us&group_by=page&metrics=views",
         "{\"view\":\"pages\",\"granularity\":\"all\",\"rows\":["
         "{\"dims\":{\"page\":\"/a\"},\"metrics\":{\"views\":6}}]," WM);
    Q_OK("granularity=all&filter=page:/b,country:us&metrics=views",
         "{\"view\":\"pages\",\"granularity\":\"all\",\"rows\":[]," WM);
    /* values are exact bytes: no prefix or case folding; null never matches */
    Q_OK("granularity=all&filter=page:/A,page:/,country:null&metrics=views",
         "{\"view\":\"pages\",\"granularity\":\"all\",\"rows\":[]," WM);
}

static void test_range(void)
{
    /* from inclusive, to exclusive, both at bucket starts */
    Q_OK("from=1795428000&to=1795428060&metrics=views",
         "{\"view\":\"pages\",\"granularity\":\"minute\",\"rows\":["
         "{\"time\":\"2026-11-23T10:00:00Z\",\"ts\":1795428000,\"dims\":{},"
         "\"metrics\":{\"views\":5}}]," WM);
    char *same = strdup(body);
    Q_OK("from=2026-11-23T10:00:00Z&to=2026-11-23T10:01:00Z&metrics=views", same);
    Q_OK("from=2026-11-23T11:00:00.5 01:00&to=2026-11-23t10:00:59.999z&metrics=views", same);
    free(same);
    /* a bucket is in when its start is: from inside a bucket skips it */
    Q_OK("from=1795428001&to=1795431600&metrics=views",
         "{\"view\":\"pages\",\"granularity\":\"minute\",\"rows\":["
         "{\"time\":\"2026-11-23T10:01:00Z\",\"ts\":1795428060,\"dims\":{},"
         "\"metrics\":{\"views\":3}}]," WM);
    /* the range applies to stored buckets, before the roll-up */
    Q_OK("from=1795428060&granularity=hour&metrics=views",
         "{\"view\":\"pages\",\"granularity\":\"hour\",\"rows\":["
         "{\"time\":\"2026-11-23T10:00:00Z\",\"ts\":1795428000,\"dims\":{},"
         "\"metrics\":{\"views\":3}},"
         "{\"time\":\"2026-11-23T11:00:00Z\",\"ts\":1795431600,\"dims\":{},"
         "\"metrics\":{\"views\":1}}]," WM);
    Q_OK("to=1795428000&metrics=views",
         "{\"view\":\"pages\",\"granularity\":\"minute\",\"rows\":["
         "{\"time\":\"2026-11-23T09:59:00Z\",\"ts\":1795427940,\"dims\":{},"
         "\"metrics\":{\"views\":2}}]," WM);
    Q_OK("from=1795428000&to=1795428000",
         "{\"view\":\"pages\",\"granularity\":\"minute\",\"rows\":[]," WM);
    Q_OK("from=-62135596800&to=-1",
         "{\"view\":\"pages\",\"granularity\":\"minute\",\"rows\":[]," WM);
}

static void test_order_limit(void)
{
    /* pages: /a has 7 views, /b 3, /c 1 */
    Q_OK("granularity=all&group_by=page&metrics=views&order_by=views",
         "{\"view\":\"pages\",\"granularity\":\"all\",\"rows\":["
         "{\"dims\":{\"page\":\"/a\"},\"metrics\":{\"views\":7}},"
         "{\"dims\":{\"page\":\"/b\"},\"metrics\":{\"views\":3}},"
         "{\"dims\":{\"page\":\"/c\"},\"metrics\":{\"views\":1}}]," WM);
    Q_OK("granularity=all&group_by=page&metrics=views&order_by=views&order=asc&limit=2",
         "{\"view\":\"pages\",\"granularity\":\"all\",\"rows\":["
         "{\"dims\":{\"page\":\"/c\"},\"metrics\":{\"views\":1}},"
         "{\"dims\":{\"page\":\"/b\"},\"metrics\":{\"views\":3}}]," WM);
    /* a null metric comes last in both orders */
    Q_OK("granularity=all&group_by=page&metrics=fastest,views&order_by=fastest&order=asc",
         "{\"view\":\"pages\",\"granularity\":\"all\",\"rows\":["
         "{\"dims\":{\"page\":\"/b\"},\"metrics\":{\"fastest\":1,\"views\":3}},"
         "{\"dims\":{\"page\":\"/a\"},\"metrics\":{\"fastest\":10,\"views\":7}},"
         "{\"dims\":{\"page\":\"/c\"},\"metrics\":{\"fastest\":null,\"views\":1}}]," WM);
    Q_OK("granularity=all&group_by=page&metrics=fastest&order_by=fastest&order=desc",
         "{\"view\":\"pages\",\"granularity\":\"all\",\"rows\":["
         "{\"dims\":{\"page\":\"/a\"},\"metrics\":{\"fastest\":10}},"
         "{\"dims\":{\"page\":\"/b\"},\"metrics\":{\"fastest\":1}},"
         "{\"dims\":{\"page\":\"/c\"},\"metrics\":{\"fastest\":null}}]," WM);
    /* ties broken by time, then dimensions */
    Q_OK("group_by=page&metrics=views&order_by=views&limit=4",
         "{\"view\":\"pages\",\"granularity\":\"minute\",\"rows\":["
         "{\"time\":\"2026-11-23T10:00:00Z\",\"ts\":1795428000,\"dims\":{\"page\":\"/a\"},"
         "\"metrics\":{\"views\":4}},"
         "{\"time\":\"2026-11-23T09:59:00Z\",\"ts\":1795427940,\"dims\":{\"page\":\"/b\"},"
         "\"metrics\":{\"views\":2}},"
         "{\"time\":\"2026-11-23T10:01:00Z\",\"ts\":1795428060,\"dims\":{\"page\":\"/a\"},"
         "\"metrics\":{\"views\":2}},"
         "{\"time\":\"2026-11-23T10:00:00Z\",\"ts\":1795428000,\"dims\":{\"page\":\"/b\"},"
         "\"metrics\":{\"views\":1}}]," WM);
    /* order by a fractional sum and by avg */
    Q_OK("granularity=hour&metrics=bytes,avg_ms&order_by=bytes&order=asc",
         "{\"view\":\"pages\",\"granularity\":\"hour\",\"rows\":["
         "{\"time\":\"2026-11-23T11:00:00Z\",\"ts\":1795431600,\"dims\":{},"
         "\"metrics\":{\"bytes\":7,\"avg_ms\":100}},"
         "{\"time\":\"2026-11-23T09:00:00Z\",\"ts\":1795424400,\"dims\":{},"
         "\"metrics\":{\"bytes\":30,\"avg_ms\":1.5}},"
         "{\"time\":\"2026-11-23T10:00:00Z\",\"ts\":1795428000,\"dims\":{},"
         "\"metrics\":{\"bytes\":1053.5,\"avg_ms\":21}}]," WM);
    Q_OK("metrics=avg_ms&order_by=avg_ms&limit=3",
         "{\"view\":\"pages\",\"granularity\":\"minute\",\"rows\":["
         "{\"time\":\"2026-11-23T11:00:00Z\",\"ts\":1795431600,\"dims\":{},"
         "\"metrics\":{\"avg_ms\":100}},"
         "{\"time\":\"2026-11-23T10:00:00Z\",\"ts\":1795428000,\"dims\":{},"
         "\"metrics\":{\"avg_ms\":21}},"
         "{\"time\":\"2026-11-23T09:59:00Z\",\"ts\":1795427940,\"dims\":{},"
         "\"metrics\":{\"avg_ms\":1.5}}]," WM);
    /* limit without order_by: the first rows in time order */
    Q_OK("limit=1&metrics=views",
         "{\"view\":\"pages\",\"granularity\":\"minute\",\"rows\":["
         "{\"time\":\"2026-11-23T09:59:00Z\",\"ts\":1795427940,\"dims\":{},"
         "\"metrics\":{\"views\":2}}]," WM);
}

/* http.limits.max_rows: an answer that would hold more rows is a 413 */
static void test_max_rows(void)
{
    cfg.http_max_rows = 2;   /* pages: /a, /b and /c */
    Q_ERR("granularity=all&group_by=page&metrics=views", 413,
          "answer has more than 2 rows (http.limits.max_rows); add a limit or narrow the query "
          "(from/to, filter, group_by or a coarser granularity)");
    Q_ERR("granularity=all&group_by=page&metrics=views&limit=3", 413,
          "answer has more than 2 rows (http.limits.max_rows); add a limit or narrow the query "
          "(from/to, filter, group_by or a coarser granularity)");
    /* a limit within max_rows is never refused, whatever the table holds */
    Q_OK("granularity=all&group_by=page&metrics=views&order_by=views&limit=2",
         "{\"view\":\"pages\",\"granularity\":\"all\",\"rows\":["
         "{\"dims\":{\"page\":\"/a\"},\"metrics\":{\"views\":7}},"
         "{\"dims\":{\"page\":\"/b\"},\"metrics\":{\"views\":3}}]," WM);
    Q_OK("granularity=all&group_by=page&metrics=views&filter=page:/a,page:/c",
         "{\"view\":\"pages\",\"granularity\":\"all\",\"rows\":["
         "{\"dims\":{\"page\":\"/a\"},\"metrics\":{\"views\":7}},"
         "{\"dims\":{\"page\":\"/c\"},\"metrics\":{\"views\":1}}]," WM);
    cfg.http_max_rows = 3;   /* exactly max_rows rows: fine */
    CHECK_INT(run("pages", "granularity=all&group_by=page&metrics=views"), 200);
    cfg.http_max_rows = 0;
}

/* A segment whose group dictionary is too large for the dense array
 * (5000 keys > DENSE_MAX): rows are gathered run by run instead. Key i
 * has 1 + i % 7 events, spread over the seconds of one minute. */
static void test_large_dictionary(void)
{
    vtable *saved = F.batch[1], *big = vtable_new(1, views[1].layout);
    char key[16];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "k%04d", i);
        for (int e = 0; e < 1 + i % 7; e++)
            raw_event(big, T + (i + e) % 60, key, strlen(key));
    }
    F.batch[1] = big;
    CHECK_INT(run("raw", "granularity=all&group_by=k&order_by=n&limit=3"), 200);
    CHECK_STR(body, "{\"view\":\"raw\",\"granularity\":\"all\",\"rows\":["
                    "{\"dims\":{\"k\":\"k0006\"},\"metrics\":{\"n\":7}},"
                    "{\"dims\":{\"k\":\"k0013\"},\"metrics\":{\"n\":7}},"
                    "{\"dims\":{\"k\":\"k0020\"},\"metrics\":{\"n\":7}}],"
                    "\"watermark\":{\"batch_seq\":0,\"batch_at\":null,\"live_events\":3}}");
    /* no group: every row of the segment is one run; k4999 has 2 events */
    CHECK_INT(run("raw", "granularity=minute&filter=k:k4999"), 200);
    CHECK_STR(body, "{\"view\":\"raw\",\"granularity\":\"minute\",\"rows\":["
                    "{\"time\":\"2026-11-23T10:00:00Z\",\"ts\":1795428000,\"dims\":{},"
                    "\"metrics\":{\"n\":2}}],"
                    "\"watermark\":{\"batch_seq\":0,\"batch_at\":null,\"live_events\":3}}");
    F.batch[1] = saved;
    vtable_free(big);
}

static void test_raw_values(void)
{
    /* null first, then bytewise ("" < "a" < "ab" < "b"), two layers merged;
     * odd bytes are escaped, invalid UTF-8 becomes U+FFFD; no batch run yet */
    CHECK_INT(run("raw", "group_by=k&granularity=all"), 200);
    CHECK_STR(body, "{\"view\":\"raw\",\"granularity\":\"all\",\"rows\":["
                    "{\"dims\":{\"k\":null},\"metrics\":{\"n\":1}},"
                    "{\"dims\":{\"k\":\"\"},\"metrics\":{\"n\":1}},"
                    "{\"dims\":{\"k\":\"a\"},\"metrics\":{\"n\":1}},"
                    "{\"dims\":{\"k\":\"ab\"},\"metrics\":{\"n\":1}},"
                    "{\"dims\":{\"k\":\"b\"},\"metrics\":{\"n\":2}},"
                    "{\"dims\":{\"k\":\"nul\\u0000byte\"},\"metrics\":{\"n\":1}},"
                    "{\"dims\":{\"k\":\"q\\\"\\\\\\u0001\\n\\ufffd\xc3\xa9\"},\"metrics\":{\"n\":1}}"
                    "],\"watermark\":{\"batch_seq\":0,\"batch_at\":null,\"live_events\":3}}");
    /* an empty filter value matches the empty string only */
    CHECK_INT(run("raw", "group_by=k&filter=k:,k:b"), 200);
    CHECK_STR(body, "{\"view\":\"raw\",\"granularity\":\"second\",\"rows\":["
                    "{\"time\":\"2026-11-23T10:00:00Z\",\"ts\":1795428000,\"dims\":{\"k\":\"\"},"
                    "\"metrics\":{\"n\":1}},"
                    "{\"time\":\"2026-11-23T10:00:00Z\",\"ts\":1795428000,\"dims\":{\"k\":\"b\"},"
                    "\"metrics\":{\"n\":1}},"
                    "{\"time\":\"2026-11-23T10:00:01Z\",\"ts\":1795428001,\"dims\":{\"k\":\"b\"},"
                    "\"metrics\":{\"n\":1}}"
                    "],\"watermark\":{\"batch_seq\":0,\"batch_at\":null,\"live_events\":3}}");
}

/* Cells rendered as count/sum/min/max/avg, including fractions and sums
 * past 2^53, through a one-row source. */
static uint64_t one_cells[64];   /* a row of pages' states */
static int one_scan(void *ud, size_t view_idx, int64_t from, int64_t to, gran_t gran,
                    int (*seg_fn)(const segment *, void *),
                    int (*fn)(const vrow *, void *), void *fnud, serving_watermark *wm)
{
    dimval d[2] = {dv("/x"), dv(NULL)};
    vrow r = {.bucket = T, .dims = d, .cells = one_cells};
    return fn(&r, fnud);
}

static void test_numbers(void)
{
    serving_source one = {.scan_view = one_scan};
    size_t len;
    const agg_layout *l = views[0].layout;
    CHECK(l->size <= sizeof(one_cells));
    agg_row_init(l, one_cells);
    row_add(l, one_cells, 0, 0);
    row_add(l, one_cells, 1, 0.1);
    row_add(l, one_cells, 1, 0.2);
    row_add(l, one_cells, 2, 1e300);
    row_add(l, one_cells, 3, -2.5);
    row_add(l, one_cells, 4, 1.0 / 3);
    free(body);
    CHECK_INT(query_handle(&cfg, &one, "pages", 5, NULL, 0, &body, &len), 200);
    CHECK_STR(body, "{\"view\":\"pages\",\"granularity\":\"minute\",\"rows\":["
                    "{\"time\":\"2026-11-23T10:00:00Z\",\"ts\":1795428000,\"dims\":{},\"metrics\":"
                    "{\"views\":1,\"bytes\":0.30000000000000004,\"fastest\":1e+300,"
                    "\"slowest\":-2.5,\"avg_ms\":0.3333333333333333}}],"
                    "\"watermark\":{\"batch_seq\":0,\"batch_at\":null,\"live_events\":0}}");

    /* a sum that is only exact as an integer: 2^53 + 1 */
    agg_row_init(l, one_cells);
    row_add(l, one_cells, 1, 4503599627370496.0);
    row_add(l, one_cells, 1, 4503599627370496.0);
    row_add(l, one_cells, 1, 1);
    qparam p = {.key = "metrics", .klen = 7, .val = "bytes", .vlen = 5};
    free(body);
    CHECK_INT(query_handle(&cfg, &one, "pages", 5, &p, 1, &body, &len), 200);
    CHECK_STR(body, "{\"view\":\"pages\",\"granularity\":\"minute\",\"rows\":["
                    "{\"time\":\"2026-11-23T10:00:00Z\",\"ts\":1795428000,\"dims\":{},\"metrics\":"
                    "{\"bytes\":9007199254740993}}],"
                    "\"watermark\":{\"batch_seq\":0,\"batch_at\":null,\"live_events\":0}}");

    /* a sum that cannot be exact (a value of 2^80 or more) renders null,
     * never "inf" */
    agg_row_init(l, one_cells);
    row_add(l, one_cells, 1, 1e308);
    row_add(l, one_cells, 1, 1e308);
    free(body);
    CHECK_INT(query_handle(&cfg, &one, "pages", 5, &p, 1, &body, &len), 200);
    CHECK_STR(body, "{\"view\":\"pages\",\"granularity\":\"minute\",\"rows\":["
                    "{\"time\":\"2026-11-23T10:00:00Z\",\"ts\":1795428000,\"dims\":{},\"metrics\":"
                    "{\"bytes\":null}}],"
                    "\"watermark\":{\"batch_seq\":0,\"batch_at\":null,\"live_events\":0}}");
}

/* A sum that overflowed (a value of 2^80 or more: exact sums read it as
 * null) sorts last in both orders, like every null, also when it is the
 * merge of a segment and a live row, and in the top-N of a limit. */
static void test_overflow_order(void)
{
    fake g = {0};
    for (int v = 0; v < 2; v++) {
        g.batch[v] = vtable_new(views[v].ndims, views[v].layout);
        g.live[v] = vtable_new(views[v].ndims, views[v].layout);
    }
    page_event(g.batch[0], T, "/x", "us", 5, -1);
    page_event(g.batch[0], T, "/y", "us", 0x1p80, -1);   /* overflows */
    page_event(g.live[0], T, "/y", "us", 1, -1);         /* merged: still overflowed */
    page_event(g.live[0], T, "/z", "us", -3, -1);
    page_event(g.live[0], T, "/w", "us", 1e300, -1);     /* overflows on its own */
    page_event(g.batch[0], T, "/v", "us", 0x1p79, -1);   /* the largest kept exactly */
    serving_source gs = {.ud = &g, .scan_view = fake_scan};
    static const struct {
        const char *qs, *rows;
    } cases[] = {
        {"order=asc",
         "{\"dims\":{\"page\":\"/z\"},\"metrics\":{\"bytes\":-3}},"
         "{\"dims\":{\"page\":\"/x\"},\"metrics\":{\"bytes\":5}},"
         "{\"dims\":{\"page\":\"/v\"},\"metrics\":{\"bytes\":6.044629098073146e+23}},"
         "{\"dims\":{\"page\":\"/w\"},\"metrics\":{\"bytes\":null}},"
         "{\"dims\":{\"page\":\"/y\"},\"metrics\":{\"bytes\":null}}"},
        {"order=desc",
         "{\"dims\":{\"page\":\"/v\"},\"metrics\":{\"bytes\":6.044629098073146e+23}},"
         "{\"dims\":{\"page\":\"/x\"},\"metrics\":{\"bytes\":5}},"
         "{\"dims\":{\"page\":\"/z\"},\"metrics\":{\"bytes\":-3}},"
         "{\"dims\":{\"page\":\"/w\"},\"metrics\":{\"bytes\":null}},"
         "{\"dims\":{\"page\":\"/y\"},\"metrics\":{\"bytes\":null}}"},
        {"order=asc&limit=4",
         "{\"dims\":{\"page\":\"/z\"},\"metrics\":{\"bytes\":-3}},"
         "{\"dims\":{\"page\":\"/x\"},\"metrics\":{\"bytes\":5}},"
         "{\"dims\":{\"page\":\"/v\"},\"metrics\":{\"bytes\":6.044629098073146e+23}},"
         "{\"dims\":{\"page\":\"/w\"},\"metrics\":{\"bytes\":null}}"},
        {"order=desc&limit=3",
         "{\"dims\":{\"page\":\"/v\"},\"metrics\":{\"bytes\":6.044629098073146e+23}},"
         "{\"dims\":{\"page\":\"/x\"},\"metrics\":{\"bytes\":5}},"
         "{\"dims\":{\"page\":\"/z\"},\"metrics\":{\"bytes\":-3}}"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char qs[256], want[2048];
        snprintf(qs, sizeof(qs), "granularity=all&group_by=page&metrics=bytes&order_by=bytes&%s",
                 cases[i].qs);
        snprintf(want, sizeof(want),
                 "{\"view\":\"pages\",\"granularity\":\"all\",\"rows\":[%s]," WM, cases[i].rows);
        qparam p[8];
        size_t n = split_qs(qs, p, 8), len;
        free(body);
        CHECK_INT(query_handle(&cfg, &gs, "pages", 5, p, n, &body, &len), 200);
        CHECK_STR(body, want);
    }
    fake_free(&g);
}

static const char *jb_text(jbuf *b)
{
    return b->p ? b->p : "";
}

static void test_jbuf(void)
{
    jbuf b;
    jb_init(&b);
    jb_num(&b, 0.1);        jb_lit(&b, " ");
    jb_num(&b, 1e21);       jb_lit(&b, " ");
    jb_num(&b, -0.0);       jb_lit(&b, " ");
    jb_num(&b, 123456789012345678.0); jb_lit(&b, " ");
    jb_num(&b, 5e-324);     jb_lit(&b, " ");
    jb_num(&b, NAN);        jb_lit(&b, " ");
    jb_num(&b, -INFINITY);  jb_lit(&b, " ");
    jb_int(&b, INT64_MIN);
    CHECK_STR(jb_text(&b), "0.1 1e+21 -0 1.2345678901234568e+17 4.94065645841247e-324 "
                           "null null -9223372036854775808");
    jb_free(&b);

    /* escaping: controls, quotes, valid multibyte kept, invalid sequences
     * (stray continuation, overlong, surrogate, > U+10FFFF, truncated)
     * replaced byte by byte */
    static const char s[] = "a\"\\/\b\f\n\r\t\x1f\x7f"
                            "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
                            "\x80\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80\xe2\x82";
    jb_str(&b, s, sizeof(s) - 1);
    CHECK_STR(jb_text(&b), "\"a\\\"\\\\/\\b\\f\\n\\r\\t\\u001f\x7f"
                           "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
                           "\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd"
                           "\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\"");
    size_t len = 0;
    char *t = jb_take(&b, &len);
    CHECK(t != NULL);
    if (t)
        CHECK_INT(strlen(t), len);
    free(t);
    CHECK(b.p == NULL);

    jb_cstr(&b, NULL);
    jb_str(&b, "", 0);
    jb_error(&b, 404, "no such endpoint: /x", 20);
    CHECK_STR(jb_text(&b),
              "null\"\"{\"error\":{\"status\":404,\"message\":\"no such endpoint: /x\"}}");
    jb_free(&b);
    jb_free(&b);
}

/* ---- dashboards' parameters (issue 12): epoch ms, multiples, weeks,
 * zones, auto, fill, where, having, post-aggregations ---- */

#define ROW(time, ts, dims, metrics) \
    "{\"time\":\"" time "\",\"ts\":" #ts ",\"dims\":{" dims "},\"metrics\":{" metrics "}}"

static void test_buckets(void)
{
    /* epoch milliseconds: floored to seconds, like RFC 3339 fractions */
    CHECK_INT(run("pages", "from=1795428000&to=1795431600&granularity=hour"), 200);
    char *secs = strdup(body);
    Q_OK("from=1795428000999&to=1795431600000&granularity=hour", secs);
    free(secs);

    /* integers of absolute value 10^11 and more are milliseconds, floored */
    static const struct { const char *from; int64_t s; } epochs[] = {
        {"99999999999", 99999999999}, {"100000000000", 100000000},
        {"-100000000000", -100000000}, {"-100000000001", -100000001},
        {"-62135596800", -62135596800}, {"253402300799999", 253402300799}};
    for (size_t i = 0; i < sizeof(epochs) / sizeof(epochs[0]); i++) {
        char qs[64];
        qparam p[1];
        query q;
        qerror err = {0};
        snprintf(qs, sizeof(qs), "from=%s", epochs[i].from);
        CHECK_INT(query_parse(&cfg, "pages", 5, p, split_qs(qs, p, 1), &q, &err), 0);
        CHECK_INT(q.from, epochs[i].s);
        query_clear(&q);
        qerror_clear(&err);
    }

    /* the unit zoned days are read at (the raw view stores seconds): the
     * hour when every midnight in the range is a whole UTC hour, the
     * minute for Asia/Kolkata's :30, the view's own without a range or
     * past 1000 buckets */
    static const struct { const char *qs; gran_t read; } reads[] = {
        {"granularity=day&tz=Europe/Berlin&from=2026-03-01T00:00:00Z&to=2026-04-01T00:00:00Z",
         GRAN_HOUR},
        {"granularity=day&tz=Asia/Kolkata&from=2026-03-01T00:00:00Z&to=2026-04-01T00:00:00Z",
         GRAN_MINUTE},
        {"granularity=day&tz=Europe/Berlin&from=2026-03-01T00:00:00Z", GRAN_SECOND},
        {"granularity=day&tz=Europe/Berlin&from=2020-01-01T00:00:00Z&to=2022-09-27T00:00:00Z",
         GRAN_HOUR},   /* 1000 days */
        {"granularity=day&tz=Europe/Berlin&from=2020-01-01T00:00:00Z&to=2022-09-28T00:00:00Z",
         GRAN_SECOND},
        {"granularity=month&tz=Asia/Kolkata&from=2026-01-01T00:00:00Z&to=2027-01-01T00:00:00Z",
         GRAN_MINUTE},
        {"granularity=hour&tz=Asia/Kolkata&from=2026-01-01T00:00:00Z&to=2027-01-01T00:00:00Z",
         GRAN_HOUR}};
    for (size_t i = 0; i < sizeof(reads) / sizeof(reads[0]); i++) {
        char qs[160];
        qparam p[8];
        query q;
        qerror err = {0};
        snprintf(qs, sizeof(qs), "%s", reads[i].qs);
        CHECK_INT(query_parse(&cfg, "raw", 3, p, split_qs(qs, p, 8), &q, &err), 0);
        CHECK_INT(q.gran, reads[i].read);
        query_clear(&q);
        qerror_clear(&err);
    }

    Q_OK("granularity=30m&metrics=views",
         "{\"view\":\"pages\",\"granularity\":\"30m\",\"rows\":["
         ROW("2026-11-23T09:30:00Z", 1795426200, "", "\"views\":2") ","
         ROW("2026-11-23T10:00:00Z", 1795428000, "", "\"views\":8") ","
         ROW("2026-11-23T11:00:00Z", 1795431600, "", "\"views\":1") "]," WM);
    Q_OK("granularity=week&metrics=views",
         "{\"view\":\"pages\",\"granularity\":\"week\",\"rows\":["
         ROW("2026-11-23T00:00:00Z", 1795392000, "", "\"views\":11") "]," WM);
    Q_ERR("granularity=90s", 400, "granularity '90s' is not a whole multiple of the view's 'minute'");
    Q_ERR("granularity=30s", 400, "granularity '30s' is finer than the view's 'minute'");
    /* 2-hour buckets from the epoch: 08:00 holds 09:59, 10:00 the rest */
    Q_OK("granularity=120m&metrics=views",
         "{\"view\":\"pages\",\"granularity\":\"120m\",\"rows\":["
         ROW("2026-11-23T08:00:00Z", 1795420800, "", "\"views\":2") ","
         ROW("2026-11-23T10:00:00Z", 1795428000, "", "\"views\":9") "]," WM);

    /* Pacific/Honolulu (-10:00): its midnight is 10:00Z, so 09:59Z is the
     * day before; hours stay UTC hours, rendered in local time */
    Q_OK("granularity=day&tz=Pacific/Honolulu&metrics=views",
         "{\"view\":\"pages\",\"granularity\":\"day\",\"rows\":["
         ROW("2026-11-22T00:00:00-10:00", 1795341600, "", "\"views\":2") ","
         ROW("2026-11-23T00:00:00-10:00", 1795428000, "", "\"views\":9") "]," WM);
    Q_OK("granularity=hour&tz=Asia/Kolkata&metrics=views&from=2026-11-23T10:00:00Z",
         "{\"view\":\"pages\",\"granularity\":\"hour\",\"rows\":["
         ROW("2026-11-23T15:30:00+05:30", 1795428000, "", "\"views\":8") ","
         ROW("2026-11-23T16:30:00+05:30", 1795431600, "", "\"views\":1") "]," WM);
    Q_ERR("tz=Mars/Olympus", 400,
          "unknown time zone 'Mars/Olympus' in tz (expected an IANA zone such as Europe/Berlin)");

    /* auto: 10m is the finest giving at most 10 buckets over 09:59..11:01
     * (minute: 62, 5m: 14); one point: 3h (09:00..12:00; 2h: two) */
    Q_OK("from=1795427940&to=1795431660&granularity=auto&max_points=10&metrics=views",
         "{\"view\":\"pages\",\"granularity\":\"10m\",\"rows\":["
         ROW("2026-11-23T09:50:00Z", 1795427400, "", "\"views\":2") ","
         ROW("2026-11-23T10:00:00Z", 1795428000, "", "\"views\":8") ","
         ROW("2026-11-23T11:00:00Z", 1795431600, "", "\"views\":1") "]," WM);
    Q_OK("from=1795427940&to=1795431660&granularity=auto&max_points=1&metrics=views",
         "{\"view\":\"pages\",\"granularity\":\"3h\",\"rows\":["
         ROW("2026-11-23T09:00:00Z", 1795424400, "", "\"views\":11") "]," WM);
    Q_ERR("granularity=auto", 400, "granularity=auto requires max_points");
    Q_ERR("granularity=auto&max_points=5", 400,
          "granularity=auto requires from and to (the range it divides)");
    Q_ERR("max_points=5", 400, "max_points requires granularity=auto");
    Q_ERR("granularity=hour&max_points=5", 400, "max_points requires granularity=auto");
    Q_ERR("granularity=auto&max_points=0&from=1&to=2", 400,
          "invalid max_points '0' (expected an integer from 1 to 1000000)");
}

static void test_fill(void)
{
    /* every minute of [09:58, 10:03) per page; fastest of an empty bucket is null */
    Q_OK("from=1795427880&to=1795428180&fill=zero&group_by=page&filter=page:/b,page:/c"
         "&metrics=views,fastest",
         "{\"view\":\"pages\",\"granularity\":\"minute\",\"rows\":["
         ROW("2026-11-23T09:58:00Z", 1795427880, "\"page\":\"/b\"", "\"views\":0,\"fastest\":null") ","
         ROW("2026-11-23T09:58:00Z", 1795427880, "\"page\":\"/c\"", "\"views\":0,\"fastest\":null") ","
         ROW("2026-11-23T09:59:00Z", 1795427940, "\"page\":\"/b\"", "\"views\":2,\"fastest\":1") ","
         ROW("2026-11-23T09:59:00Z", 1795427940, "\"page\":\"/c\"", "\"views\":0,\"fastest\":null") ","
         ROW("2026-11-23T10:00:00Z", 1795428000, "\"page\":\"/b\"", "\"views\":1,\"fastest\":5") ","
         ROW("2026-11-23T10:00:00Z", 1795428000, "\"page\":\"/c\"", "\"views\":0,\"fastest\":null") ","
         ROW("2026-11-23T10:01:00Z", 1795428060, "\"page\":\"/b\"", "\"views\":0,\"fastest\":null") ","
         ROW("2026-11-23T10:01:00Z", 1795428060, "\"page\":\"/c\"", "\"views\":1,\"fastest\":null") ","
         ROW("2026-11-23T10:02:00Z", 1795428120, "\"page\":\"/b\"", "\"views\":0,\"fastest\":null") ","
         ROW("2026-11-23T10:02:00Z", 1795428120, "\"page\":\"/c\"", "\"views\":0,\"fastest\":null")
         "]," WM);
    /* no group_by: the one series exists without rows; fill=null: no values */
    Q_OK("from=1795428120&to=1795428240&fill=null&metrics=views,half=views/2",
         "{\"view\":\"pages\",\"granularity\":\"minute\",\"rows\":["
         ROW("2026-11-23T10:02:00Z", 1795428120, "", "\"views\":null,\"half\":null") ","
         ROW("2026-11-23T10:03:00Z", 1795428180, "", "\"views\":null,\"half\":null") "]," WM);
    /* ordered by a metric: the filled rows' nulls last, in either order */
    Q_OK("from=1795427940&to=1795428120&fill=null&filter=page:/c&metrics=views&order_by=views"
         "&order=asc",
         "{\"view\":\"pages\",\"granularity\":\"minute\",\"rows\":["
         ROW("2026-11-23T10:01:00Z", 1795428060, "", "\"views\":1") ","
         ROW("2026-11-23T09:59:00Z", 1795427940, "", "\"views\":null") ","
         ROW("2026-11-23T10:00:00Z", 1795428000, "", "\"views\":null") "]," WM);
    Q_OK("granularity=all&fill=zero&filter=page:/zz&metrics=views,bytes",
         "{\"view\":\"pages\",\"granularity\":\"all\",\"rows\":["
         "{\"dims\":{},\"metrics\":{\"views\":0,\"bytes\":0}}]," WM);
    /* with a zone: local days, the first one holding from */
    Q_OK("from=2026-11-22T12:00:00Z&to=2026-11-24T00:00:00Z&granularity=day&tz=Pacific/Honolulu"
         "&fill=zero&metrics=views",
         "{\"view\":\"pages\",\"granularity\":\"day\",\"rows\":["
         ROW("2026-11-22T00:00:00-10:00", 1795341600, "", "\"views\":2") ","
         ROW("2026-11-23T00:00:00-10:00", 1795428000, "", "\"views\":9") "]," WM);
    Q_ERR("fill=zero", 400, "fill requires from and to (the buckets it fills)");
    Q_ERR("fill=zero&from=1", 400, "fill requires from and to (the buckets it fills)");
    Q_ERR("fill=0&from=1&to=2", 400, "invalid fill '0' (expected zero or null)");
    Q_ERR("fill=zero&from=0&to=2026-01-01T00:00:00Z", 413,
          "fill would give more than 10000000 rows; narrow from/to or group_by, or use a "
          "coarser granularity");
}

static void test_expressions(void)
{
#define ALL_ROWS(rows) "{\"view\":\"pages\",\"granularity\":\"all\",\"rows\":[" rows "]," WM
#define PAGE(p, metrics) "{\"dims\":{\"page\":\"" p "\"},\"metrics\":{" metrics "}}"
    /* where over one dimension (decided per dictionary value), several
     * dimensions (per row), functions; a null country is not != 'us' */
    Q_OK("granularity=all&where=country = 'us'&metrics=views",
         ALL_ROWS("{\"dims\":{},\"metrics\":{\"views\":6}}"));
    Q_OK("granularity=all&where=page = '/a' and country is null&metrics=views",
         ALL_ROWS("{\"dims\":{},\"metrics\":{\"views\":1}}"));
    Q_OK("granularity=all&where=lower(page) like '/%' and country != 'us'&metrics=views",
         ALL_ROWS("{\"dims\":{},\"metrics\":{\"views\":4}}"));
    /* no dictionary value passes: the segment is skipped, no live row passes */
    Q_OK("granularity=all&where=country = 'zz'&metrics=views", ALL_ROWS(""));
    Q_OK("granularity=all&where=country = 'zz' or page = '/zz'&metrics=views", ALL_ROWS(""));
    Q_ERR("where=x = 1", 400, "where: unknown dimension 'x' at 1:1");
    Q_ERR("where=page = 'a' and nope", 400, "where: unknown dimension 'nope' at 1:16");
    Q_ERR("where=1 + 2", 400, "where: not a condition (true or false)");

    /* post-aggregations render in request order, null when an operand is */
    Q_OK("granularity=all&group_by=page&metrics=views,double_bytes=bytes*2,"
         "spread=slowest-fastest&order_by=spread",
         ALL_ROWS(PAGE("/a", "\"views\":7,\"double_bytes\":2021,\"spread\":90") ","
                  PAGE("/b", "\"views\":3,\"double_bytes\":160,\"spread\":4") ","
                  PAGE("/c", "\"views\":1,\"double_bytes\":0,\"spread\":null")));
    Q_OK("granularity=all&group_by=page&metrics=views,spread=slowest-fastest&order_by=spread"
         "&order=asc&limit=2",
         ALL_ROWS(PAGE("/b", "\"views\":3,\"spread\":4") ","
                  PAGE("/a", "\"views\":7,\"spread\":90")));
    /* commas inside a call; the metrics it reads are not rendered */
    Q_OK("granularity=all&group_by=page&filter=page:/b&metrics=per=round(bytes / views, 1)",
         ALL_ROWS(PAGE("/b", "\"per\":26.7")));
    /* having: over metrics, rendered or not, and post-aggregations */
    Q_OK("granularity=all&group_by=page&metrics=views&having=views > 2",
         ALL_ROWS(PAGE("/a", "\"views\":7") "," PAGE("/b", "\"views\":3")));
    Q_OK("granularity=all&group_by=page&metrics=views&having=bytes > 100",
         ALL_ROWS(PAGE("/a", "\"views\":7")));
    Q_OK("granularity=all&group_by=page&metrics=spread=slowest-fastest&having=spread > 50",
         ALL_ROWS(PAGE("/a", "\"spread\":90")));
    Q_OK("granularity=all&group_by=page&metrics=views&having=fastest is null",
         ALL_ROWS(PAGE("/c", "\"views\":1")));
    /* a post-aggregation that reads no metric: the rows still count */
    Q_OK("granularity=all&group_by=page&metrics=one=1",
         ALL_ROWS(PAGE("/a", "\"one\":1") "," PAGE("/b", "\"one\":1") ","
                  PAGE("/c", "\"one\":1")));
    Q_ERR("metrics=x=bites/2", 400, "metrics.x: unknown metric 'bites' at 1:1");
    Q_ERR("metrics=views=views", 400, "post-aggregation 'views' in metrics has the name of a metric");
    Q_ERR("metrics=a=views,a=bytes", 400, "duplicate post-aggregation 'a' in metrics");
    Q_ERR("metrics=1a=views", 400,
          "invalid post-aggregation name '1a' in metrics (letters, digits and _)");
    Q_ERR("metrics=a=views > 1", 400, "metrics.a: not a number");
    Q_ERR("metrics=a=views,views,views", 400, "duplicate metric 'views' in metrics");
    Q_ERR("having=views", 400, "having: not a condition (true or false)");
    Q_ERR("having=nope > 1", 400, "having: unknown metric 'nope' at 1:1");
    Q_ERR("order_by=nope&metrics=a=views", 400, "unknown metric 'nope' in order_by");
#undef PAGE
#undef ALL_ROWS
}

int main(void)
{
    for (size_t v = 0; v < 2; v++)
        views[v].layout = agg_layout_new(views[v].metrics, NULL, views[v].nmetrics);
    fake_fill(&F);
    test_jbuf();
    test_errors();
    test_parse();
    test_rollup();
    test_group_filter();
    test_range();
    test_order_limit();
    test_max_rows();
    test_raw_values();
    test_large_dictionary();
    test_numbers();
    test_overflow_order();
    test_buckets();
    test_fill();
    test_expressions();
    free(body);
    fake_free(&F);
    for (size_t v = 0; v < 2; v++)
        free(views[v].layout);
    CHECK_DONE();
}
