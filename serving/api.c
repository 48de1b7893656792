/* api.c - the endpoints of the HTTP API and the route table.
 *
 * Runs on HTTP threads, concurrently, and the routes marked pooled (the
 * query) on query pool threads: it reads the immutable config and calls
 * the serving_source, the answer cache and the query pool (each locks
 * what it owns); no state and no lock of its own. Routes are a table
 * ending in a catch-all 404 entry, as libmicrohttpd's examples do. Only the
 * query and values routes read parameters; the others ignore them (so
 * probes may add cache busters). The dashboard routes (values, web UI,
 * Grafana) live in their own files (dash.h).
 */
#include "serving/api.h"
#include "serving/cluster.h"
#include "serving/dash.h"
#include "serving/partial.h"
#include "serving/qcache.h"
#include "serving/qpool.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/agg.h"
#include "core/metrics.h"
#include "core/jbuf.h"

/* Read from the answer cache and the query pool at scrape time. */
METRIC_GAUGE(m_cache_bytes, "lambdad_query_cache_bytes",
             "Bytes of the cached answers (keys, bodies and result tables).");
METRIC_GAUGE(m_cache_budget, "lambdad_query_cache_budget_bytes",
             "serving.answer_cache_mb in bytes (0: the answer cache is off).");
METRIC_GAUGE(m_cache_entries, "lambdad_query_cache_entries", "Cached answers.");
METRIC_GAUGE(m_pool_threads, "lambdad_query_pool_threads",
             "Threads running queries (serving.query_threads).");
METRIC_GAUGE(m_pool_queued, "lambdad_query_pool_queued", "Queries waiting for a query thread.");
METRIC_GAUGE(m_pool_running, "lambdad_query_pool_running", "Queries running.");

int64_t api_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void api_reply_clear(api_reply *r)
{
    free(r->body);
    free(r->missing_shards);
    *r = (api_reply){0};
}

static void reply_take(api_reply *r, int status, jbuf *b)
{
    free(r->body);
    r->status = status;
    r->body = jb_take(b, &r->len);
    if (!r->body)
        r->status = 500;   /* the HTTP layer sends its static out-of-memory body */
}

void api_error(api_reply *r, int status, const char *msg, size_t len)
{
    jbuf b;
    jb_init(&b);
    jb_error(&b, status, msg, len);
    reply_take(r, status, &b);
}

/* An error whose message is the concatenation of the C strings given,
 * up to a NULL. */
static void error_cat(api_reply *r, int status, ...)
{
    jbuf m;
    jb_init(&m);
    va_list ap;
    va_start(ap, status);
    for (const char *part; (part = va_arg(ap, const char *));)
        jb_lit(&m, part);
    va_end(ap);
    if (m.oom || !m.p)
        api_error(r, 500, "out of memory", strlen("out of memory"));
    else
        api_error(r, status, m.p, m.len);
    jb_free(&m);
}

/* GET /v1/views */
static void h_views(const api_ctx *ctx, const api_request *rq, api_reply *r)
{
    const config *cfg = ctx->cfg;
    jbuf b;
    jb_init(&b);
    jb_lit(&b, "{\"views\":[");
    for (size_t i = 0; i < cfg->nviews; i++) {
        const view_def *v = &cfg->views[i];
        if (i)
            jb_lit(&b, ",");
        jb_lit(&b, "{\"name\":");
        jb_cstr(&b, v->name);
        jb_lit(&b, ",\"stream\":");
        jb_cstr(&b, v->stream);
        jb_lit(&b, ",\"granularity\":");
        jb_cstr(&b, gran_name(v->gran));
        jb_lit(&b, ",\"dimensions\":[");
        for (size_t d = 0; d < v->ndims; d++) {
            if (d)
                jb_lit(&b, ",");
            jb_cstr(&b, v->dims[d]);
        }
        jb_lit(&b, "],\"metrics\":[");
        for (size_t m = 0; m < v->nmetrics; m++) {
            const metric_def *md = &v->metrics[m];
            if (m)
                jb_lit(&b, ",");
            jb_lit(&b, "{\"name\":");
            jb_cstr(&b, md->name);
            jb_lit(&b, ",\"type\":");
            jb_cstr(&b, metric_type_name(md->type));
            if (md->field) {
                jb_lit(&b, ",\"field\":");
                jb_cstr(&b, md->field);
            }
            if (md->where) {
                jb_lit(&b, ",\"where\":");
                jb_cstr(&b, md->where);
            }
            if (md->type == MT_DISTINCT) {
                int p = md->precision ? md->precision : AGG_DEFAULT_PRECISION;
                jb_lit(&b, ",\"precision\":");
                jb_int(&b, p);
                jb_lit(&b, ",\"exact_up_to\":");
                jb_int(&b, agg_distinct_exact_limit(p));
            } else if (md->type == MT_QUANTILES) {
                jb_lit(&b, ",\"accuracy\":");
                jb_num(&b, md->accuracy > 0 ? md->accuracy : AGG_DEFAULT_ACCURACY);
            }
            jb_lit(&b, "}");
        }
        jb_lit(&b, "]}");
    }
    jb_lit(&b, "]}");
    reply_take(r, 200, &b);
}

/* GET /v1/views/{view}/query: path is "/v1/views/" + view + "/query" */
static void h_query(const api_ctx *ctx, const api_request *rq, api_reply *r)
{
    const char *view = rq->path + strlen("/v1/views/");
    size_t view_len = strlen(view) - strlen("/query");
    query_opts o = {.no_cache = rq->no_cache, .deadline_ms = rq->deadline_ms,
                    .stop = ctx->stopping, .cluster = ctx->cluster};
    free(r->body);
    r->body = NULL;
    r->status = query_handle_cached(ctx->cfg, ctx->src, ctx->cache, view, view_len, rq->p,
                                    rq->np, &o, &r->body, &r->len);
    if (o.expired && ctx->query_timeouts)
        atomic_fetch_add(ctx->query_timeouts, 1);
    if (!r->body)
        r->status = 500;
    if (r->status == 200) {   /* errors stay JSON */
        r->has_wm = true;
        r->wm = o.wm;
        r->missing_shards = o.missing_shards;
        o.missing_shards = NULL;
        if (o.csv)
            r->content_type = "text/csv; charset=utf-8";
    }
    free(o.missing_shards);
}

/* GET /v1/internal/views/{view}/partial: this shard's part of a fan-out
 * query (serving/partial.h), for the instance that fans out. */
static void h_partial(const api_ctx *ctx, const api_request *rq, api_reply *r)
{
    const char *view = rq->path + strlen("/v1/internal/views/");
    size_t view_len = strlen(view) - strlen("/partial");
    if (!ctx->cfg->cluster_shard) {
        error_cat(r, 404, "this instance is not part of a cluster (no cluster.shard)",
                  (char *)NULL);
        return;
    }
    query_opts o = {.deadline_ms = rq->deadline_ms, .stop = ctx->stopping};
    free(r->body);
    r->body = NULL;
    r->status = query_handle_partial(ctx->cfg, ctx->src, ctx->cfg->cluster_shard, view,
                                     view_len, rq->p, rq->np, &o, &r->body, &r->len);
    if (o.expired && ctx->query_timeouts)
        atomic_fetch_add(ctx->query_timeouts, 1);
    if (!r->body)
        r->status = 500;
    if (r->status == 200)
        r->content_type = PARTIAL_CONTENT_TYPE;
}

/* The "serving" part of /v1/status: the answer cache and the query pool
 * (added to what the source put there, if anything). */
static void status_serving(const api_ctx *ctx, json_t *obj)
{
    json_t *sv = json_object_get(obj, "serving");
    if (!json_is_object(sv)) {
        sv = json_object();
        if (!sv)
            return;
        json_object_set_new(obj, "serving", sv);
    }
    if (ctx->cache) {
        qcache_stats cs;
        qcache_get_stats(ctx->cache, &cs);
        json_object_set_new(sv, "answer_cache",
                            json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
                                      "entries", (json_int_t)cs.entries,
                                      "bytes", (json_int_t)cs.bytes,
                                      "budget_bytes", (json_int_t)cs.budget,
                                      "hits", (json_int_t)cs.hits,
                                      "advances", (json_int_t)cs.advances,
                                      "misses", (json_int_t)cs.misses,
                                      "evictions", (json_int_t)cs.evictions));
    }
    if (ctx->pool) {
        qpool_stats ps;
        qpool_get_stats(ctx->pool, &ps);
        uint64_t timeouts = ctx->query_timeouts ? atomic_load(ctx->query_timeouts) : 0;
        json_object_set_new(sv, "query_pool",
                            json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}",
                                      "threads", (json_int_t)ps.threads,
                                      "queued", (json_int_t)ps.queued,
                                      "running", (json_int_t)ps.running,
                                      "done", (json_int_t)ps.done,
                                      "rejected", (json_int_t)ps.rejected,
                                      "timeouts", (json_int_t)timeouts));
    }
}

/* GET /v1/status */
static void h_status(const api_ctx *ctx, const api_request *rq, api_reply *r)
{
    json_t *obj = json_object();
    char *text = NULL;
    if (obj) {
        json_object_set_new(obj, "version", json_string(LAMBDAD_VERSION));
        json_object_set_new(obj, "config_fingerprint", json_string(ctx->cfg->fingerprint));
        json_object_set_new(obj, "uptime_s",
                            json_integer((api_now_ms() - ctx->started_ms) / 1000));
        if (ctx->src->status)
            ctx->src->status(ctx->src->ud, obj);
        status_serving(ctx, obj);
        if (ctx->cluster)
            cluster_status(ctx->cluster, obj);
        text = json_dumps(obj, JSON_COMPACT);
        json_decref(obj);
    }
    if (!text) {
        api_error(r, 500, "cannot render status", strlen("cannot render status"));
        return;
    }
    jbuf b;
    jb_init(&b);
    jb_lit(&b, text);   /* copied so that every body is ours to free() */
    free(text);
    reply_take(r, 200, &b);
}

/* GET /healthz: the process is up and answering */
static void h_healthz(const api_ctx *ctx, const api_request *rq, api_reply *r)
{
    jbuf b;
    jb_init(&b);
    jb_lit(&b, "{\"status\":\"ok\"}");
    reply_take(r, 200, &b);
}

/* GET /readyz: recovery done and consuming */
static void h_readyz(const api_ctx *ctx, const api_request *rq, api_reply *r)
{
    const char *reason = NULL;
    if (ctx->src->ready && !ctx->src->ready(ctx->src->ud, &reason)) {
        if (!reason)
            reason = "not ready";
        api_error(r, 503, reason, strlen(reason));
        return;
    }
    jbuf b;
    jb_init(&b);
    jb_lit(&b, "{\"status\":\"ready\"}");
    reply_take(r, 200, &b);
}

/* GET /metrics: the Prometheus text of the process-wide registry, after
 * the source has set the figures it reads at scrape time. */
static void h_metrics(const api_ctx *ctx, const api_request *rq, api_reply *r)
{
    if (ctx->src->metrics)
        ctx->src->metrics(ctx->src->ud);
    if (ctx->cache) {
        qcache_stats cs;
        qcache_get_stats(ctx->cache, &cs);
        metrics_gauge_set(&m_cache_bytes, NULL, (double)cs.bytes);
        metrics_gauge_set(&m_cache_budget, NULL, (double)cs.budget);
        metrics_gauge_set(&m_cache_entries, NULL, (double)cs.entries);
    }
    if (ctx->pool) {
        qpool_stats ps;
        qpool_get_stats(ctx->pool, &ps);
        metrics_gauge_set(&m_pool_threads, NULL, (double)ps.threads);
        metrics_gauge_set(&m_pool_queued, NULL, (double)ps.queued);
        metrics_gauge_set(&m_pool_running, NULL, (double)ps.running);
    }
    char *text = NULL;
    size_t len = 0;
    if (metrics_render(NULL, &text, &len) < 0) {
        api_error(r, 500, "cannot render metrics", strlen("cannot render metrics"));
        return;
    }
    free(r->body);
    r->status = 200;
    r->body = text;   /* ownership moves to the reply */
    r->len = len;
    r->content_type = METRICS_CONTENT_TYPE;
}

static void h_not_found(const api_ctx *ctx, const api_request *rq, api_reply *r)
{
    error_cat(r, 404, "no such endpoint: ", rq->path, (char *)NULL);
}

/* POST /v1/admin/recompute[?view=NAME]: starts a batch run now; with a
 * view, that view is recomputed in full from the archive. */
static void h_recompute(const api_ctx *ctx, const api_request *rq, api_reply *r)
{
    const qparam *p = rq->p, *view = NULL;
    for (size_t i = 0; i < rq->np; i++) {
        if (p[i].klen == 4 && memcmp(p[i].key, "view", 4) == 0 && !view) {
            view = &p[i];
            continue;
        }
        char *k = strndup(p[i].key, p[i].klen);
        error_cat(r, 400, view && p[i].klen == 4 && memcmp(p[i].key, "view", 4) == 0
                              ? "duplicate parameter '" : "unknown parameter '",
                  k ? k : "", "'", (char *)NULL);
        free(k);
        return;
    }
    long idx = -1;
    if (view) {
        for (size_t v = 0; v < ctx->cfg->nviews && idx < 0; v++)
            if (strlen(ctx->cfg->views[v].name) == view->vlen &&
                memcmp(ctx->cfg->views[v].name, view->val, view->vlen) == 0)
                idx = (long)v;
        if (idx < 0) {
            char *name = strndup(view->val, view->vlen);
            error_cat(r, 404, "unknown view '", name ? name : "", "'", (char *)NULL);
            free(name);
            return;
        }
    }
    if (!ctx->src->recompute || ctx->src->recompute(ctx->src->ud, idx) < 0) {
        api_error(r, 503, "the batch layer is not running", strlen("the batch layer is not running"));
        return;
    }
    jbuf b;
    jb_init(&b);
    jb_lit(&b, "{\"status\":\"accepted\",\"view\":");
    if (idx >= 0) {
        jb_lit(&b, "\"");
        jb_lit(&b, ctx->cfg->views[idx].name);   /* config names are [A-Za-z0-9_.-] */
        jb_lit(&b, "\",\"full\":true}");
    } else {
        jb_lit(&b, "null,\"full\":false}");
    }
    reply_take(r, 202, &b);
}

/* The value of parameter key ("" when given without a value), NULL when
 * absent; *dup set when it is given twice. */
static const qparam *param(const api_request *rq, const char *key, bool *dup)
{
    const qparam *found = NULL;
    size_t n = strlen(key);
    for (size_t i = 0; i < rq->np; i++)
        if (rq->p[i].klen == n && memcmp(rq->p[i].key, key, n) == 0) {
            if (found)
                *dup = true;
            found = &rq->p[i];
        }
    return found;
}

/* POST /v1/admin/import?stream=NAME&format=jsonl|csv[&name=FILE]
 * [&commit_every=N] with the file (plain, gzip or zstd) as the body:
 * imports it through the speed thread and answers when it is done. */
static void h_import(const api_ctx *ctx, const api_request *rq, api_reply *r)
{
    static const char *const known[] = {"stream", "format", "name", "commit_every"};
    for (size_t i = 0; i < rq->np; i++) {
        bool ok = false;
        for (size_t k = 0; k < 4 && !ok; k++)
            ok = rq->p[i].klen == strlen(known[k]) && !memcmp(rq->p[i].key, known[k], rq->p[i].klen);
        if (!ok) {
            char *k = strndup(rq->p[i].key, rq->p[i].klen);
            error_cat(r, 400, "unknown parameter '", k ? k : "", "' (stream, format, name, "
                      "commit_every)", (char *)NULL);
            free(k);
            return;
        }
    }
    bool dup = false;
    const qparam *stream = param(rq, "stream", &dup), *format = param(rq, "format", &dup);
    const qparam *name = param(rq, "name", &dup), *every = param(rq, "commit_every", &dup);
    if (dup) {
        error_cat(r, 400, "a parameter is given twice", (char *)NULL);
        return;
    }
    if (!stream || !stream->val || !format || !format->val) {
        error_cat(r, 400, "stream= and format= (jsonl or csv) are required", (char *)NULL);
        return;
    }
    serving_import im = {.fd = rq->body_fd, .stop = ctx->stopping, .name = "upload"};
    for (im.stream_idx = 0; im.stream_idx < ctx->cfg->nstreams; im.stream_idx++) {
        const char *sn = ctx->cfg->streams[im.stream_idx].name;
        if (strlen(sn) == stream->vlen && memcmp(sn, stream->val, stream->vlen) == 0)
            break;
    }
    if (im.stream_idx == ctx->cfg->nstreams) {
        char *sn = strndup(stream->val, stream->vlen);
        error_cat(r, 404, "unknown stream '", sn ? sn : "", "'", (char *)NULL);
        free(sn);
        return;
    }
    if (format->vlen == 3 && memcmp(format->val, "csv", 3) == 0)
        im.csv = true;
    else if (!(format->vlen == 5 && memcmp(format->val, "jsonl", 5) == 0)) {
        error_cat(r, 400, "format must be jsonl or csv", (char *)NULL);
        return;
    }
    char *namebuf = name && name->val && name->vlen ? strndup(name->val, name->vlen) : NULL;
    if (namebuf)
        im.name = namebuf;
    if (every) {
        char *end = NULL;
        char *v = every->val ? strndup(every->val, every->vlen) : NULL;
        long long n = v ? strtoll(v, &end, 10) : 0;
        bool bad = !v || *end || n < 1 || n > 10000000;
        free(v);
        if (bad) {
            free(namebuf);
            error_cat(r, 400, "commit_every must be a number of records from 1 to 10000000",
                      (char *)NULL);
            return;
        }
        im.commit_records = n;
    }
    if (!rq->has_body_fd || !ctx->src->import) {
        free(namebuf);
        error_cat(r, rq->has_body_fd ? 503 : 400, rq->has_body_fd ? "imports are not available"
                  : "the file goes in the request body", (char *)NULL);
        return;
    }
    serving_import_result res = {0};
    char *err = NULL;
    int rc = ctx->src->import(ctx->src->ud, &im, &res, &err);
    if (rc < 0) {
        int status = rc == -EBUSY ? 429
                   : rc == -EAGAIN || rc == -ECANCELED ? 503
                   : rc == -EINVAL || rc == -EBADMSG || rc == -E2BIG ? 400 : 500;
        error_cat(r, status, err ? err : strerror(-rc), (char *)NULL);
        free(err);
        free(namebuf);
        return;
    }
    jbuf b;
    jb_init(&b);
    jb_lit(&b, "{\"stream\":");
    jb_cstr(&b, ctx->cfg->streams[im.stream_idx].name);
    jb_lit(&b, ",\"file\":");
    jb_cstr(&b, im.name);
    jb_lit(&b, im.csv ? ",\"format\":\"csv\",\"hash\":" : ",\"format\":\"jsonl\",\"hash\":");
    jb_cstr(&b, res.hash);
    jb_lit(&b, ",\"records\":");
    jb_int(&b, res.records);
    jb_lit(&b, ",\"imported\":");
    jb_int(&b, res.imported);
    jb_lit(&b, ",\"rejected\":");
    jb_int(&b, res.rejected);
    jb_lit(&b, ",\"skipped\":");
    jb_int(&b, res.skipped);
    jb_lit(&b, ",\"seconds\":");
    jb_num(&b, res.seconds);
    jb_lit(&b, "}");
    free(namebuf);
    reply_take(r, 200, &b);
}

typedef enum {
    M_EXACT,     /* path equals pattern */
    M_QUERY,     /* "/v1/views/" + one non-empty segment + "/query" */
    M_VALUES,    /* "/v1/views/" + segment + "/values/" + segment (non-empty) */
    M_PARTIAL,   /* "/v1/internal/views/" + one non-empty segment + "/partial" */
    M_UI,        /* "/ui/" + one non-empty segment */
    M_ANY,       /* the final catch-all */
} match_kind;

typedef struct {
    const char *pattern;
    match_kind kind;
    void (*fn)(const api_ctx *ctx, const api_request *rq, api_reply *r);
    bool post;     /* POST only (else GET and HEAD) */
    bool pooled;   /* heavy: runs on the query pool (api_pooled); POST routes
                      take their body (api_takes_body) */
} route;

static const route routes[] = {
    /* pattern, match, handler, POST only, on the query pool */
    {"/v1/views", M_EXACT, h_views, false, false},
    {"/v1/views/{view}/query", M_QUERY, h_query, false, true},
    {"/v1/status", M_EXACT, h_status, false, false},
    {"/healthz", M_EXACT, h_healthz, false, false},
    {"/readyz", M_EXACT, h_readyz, false, false},
    {"/v1/admin/recompute", M_EXACT, h_recompute, true, false},
    {"/v1/admin/import", M_EXACT, h_import, true, true},
    {"/metrics", M_EXACT, h_metrics, false, false},
    {"/v1/views/{view}/values/{dimension}", M_VALUES, dash_h_values, false, true},
    /* a shard's part of a fan-out query (cluster.c asks it of peers) */
    {"/v1/internal/views/{view}/partial", M_PARTIAL, h_partial, false, true},
    /* the web UI (ui.c) */
    {"/", M_EXACT, ui_h_index, false, false},
    {"/ui/{asset}", M_UI, ui_h_asset, false, false},
    /* the Grafana JSON datasource protocol (grafana.c) */
    {"/grafana", M_EXACT, grafana_h_root, false, false},
    {"/grafana/", M_EXACT, grafana_h_root, false, false},
    {"/grafana/metrics", M_EXACT, grafana_h_metrics, true, false},
    {"/grafana/search", M_EXACT, grafana_h_search, true, false},
    {"/grafana/metric-payload-options", M_EXACT, grafana_h_payload_options, true, false},
    {"/grafana/query", M_EXACT, grafana_h_query, true, true},
    {"/grafana/variable", M_EXACT, grafana_h_variable, true, true},
    {"/grafana/tag-keys", M_EXACT, grafana_h_tag_keys, true, false},
    {"/grafana/tag-values", M_EXACT, grafana_h_tag_values, true, true},
    {NULL, M_ANY, h_not_found, false, false},
};

/* path is pre + a non-empty name without '/' + suf */
static bool one_name_between(const char *path, const char *pre, const char *suf)
{
    size_t len = strlen(path), lp = strlen(pre), ls = strlen(suf);
    if (len <= lp + ls || strncmp(path, pre, lp) != 0 || strcmp(path + len - ls, suf) != 0)
        return false;
    return memchr(path + lp, '/', len - lp - ls) == NULL;
}

static bool matches(const route *rt, const char *path)
{
    static const char pre[] = "/v1/views/";
    switch (rt->kind) {
    case M_EXACT:
        return strcmp(path, rt->pattern) == 0;
    case M_QUERY:
        return one_name_between(path, pre, "/query");
    case M_PARTIAL:
        return one_name_between(path, "/v1/internal/views/", "/partial");
    case M_VALUES: {
        static const char mid[] = "/values/";
        if (strncmp(path, pre, strlen(pre)) != 0)
            return false;
        const char *view = path + strlen(pre), *m = strstr(view, mid);
        if (!m || m == view || memchr(view, '/', (size_t)(m - view)))
            return false;
        const char *dim = m + strlen(mid);
        return *dim && !strchr(dim, '/');
    }
    case M_UI:
        return strncmp(path, "/ui/", 4) == 0 && path[4] && !strchr(path + 4, '/');
    case M_ANY:
        return true;
    }
    return false;
}

static const route *find_route(const char *path)
{
    const route *rt = routes;
    while (!matches(rt, path))
        rt++;
    return rt;
}

const char *api_route(const char *path)
{
    const route *rt = find_route(path);
    return rt->pattern ? rt->pattern : "other";
}

/* Whether the route answers this method (others get a 405). */
static bool method_ok(const route *rt, const char *method)
{
    if (rt->post)
        return strcmp(method, "POST") == 0;
    return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
}

bool api_pooled(const char *method, const char *path)
{
    /* other methods get their 405 at once */
    const route *rt = find_route(path);
    return rt->pooled && method_ok(rt, method);
}

bool api_takes_body(const char *method, const char *path)
{
    const route *rt = find_route(path);
    return rt->post && method_ok(rt, method);
}

bool api_spools_body(const char *method, const char *path)
{
    const route *rt = find_route(path);
    return rt->fn == h_import && method_ok(rt, method);
}

void api_dispatch(const api_ctx *ctx, const api_request *rq, api_reply *r)
{
    const char *method = rq->method, *path = rq->path;
    const route *rt = find_route(path);
    *r = (api_reply){0};
    if (rt->post && strcmp(method, "POST") != 0) {
        r->allow = "POST";
        error_cat(r, 405, "method ", method, " not allowed on ", path, (char *)NULL);
        return;
    }
    if (!rt->post && rt->kind != M_ANY && strcmp(method, "GET") != 0 &&
        strcmp(method, "HEAD") != 0) {
        r->allow = "GET, HEAD";
        error_cat(r, 405, "method ", method, " not allowed on ", path, (char *)NULL);
        return;
    }
    rt->fn(ctx, rq, r);
}
