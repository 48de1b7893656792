/* grafana.c - the Grafana JSON datasource protocol (simpod-json-datasource)
 * under /grafana.
 *
 * Grafana's plugin forwards its resource calls as POSTs with JSON bodies
 * to the datasource URL + "/metrics", "/metric-payload-options",
 * "/variable", "/tag-keys", "/tag-values", its panels' data as POST
 * "/query", and its health check as a GET of the URL itself (/grafana,
 * no slash). A target is "view.metric"; its payload may hold group_by
 * (a list or "d1,d2"), filter ("d:v,d2:w" or {"d":"v"} / {"d":["v","w"]}),
 * where (an expression, passed to the query as it is), granularity (a
 * query granularity; default: granularity=auto&max_points=maxDataPoints
 * over the range, in epoch milliseconds) and format ("table"); time
 * series ask fill=null, so empty buckets are gaps. Ad hoc filters
 * ("adhocFilters", or "filters" in newer Grafanas) with operator "="
 * become filters of every target whose view has that dimension.
 *
 * Every number comes from the query engine (dash_query), so a panel shows
 * what /v1/views/{view}/query answers. Runs on HTTP threads, and query,
 * variable and tag-values on the query pool; no state, no lock.
 */
#include "serving/dash.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/agg.h"
#include "core/gran.h"
#include "core/jbuf.h"

#define GF_DEFAULT_POINTS 1000   /* when the request names no maxDataPoints */
#define GF_MAX_POINTS 1000000    /* the query's largest max_points */
#define GF_VARIABLE_LIMIT 1000   /* values offered for a variable or an ad hoc filter */

/* The request body as a JSON object ({} when empty); NULL with r set. */
static json_t *body_object(const api_request *rq, api_reply *r)
{
    if (!rq->body || rq->body_len == 0)
        return json_object();
    json_error_t e;
    json_t *b = json_loadb(rq->body, rq->body_len, 0, &e);
    if (!b || !json_is_object(b)) {
        char msg[256];
        if (b)
            snprintf(msg, sizeof(msg), "request body must be a JSON object");
        else
            snprintf(msg, sizeof(msg), "request body is not valid JSON: %s at %d:%d", e.text,
                     e.line, e.column);
        json_decref(b);
        api_error(r, 400, msg, strlen(msg));
        return NULL;
    }
    return b;
}

static const view_def *find_view(const config *cfg, const char *s, size_t len)
{
    for (size_t i = 0; i < cfg->nviews; i++)
        if (strlen(cfg->views[i].name) == len && memcmp(cfg->views[i].name, s, len) == 0)
            return &cfg->views[i];
    return NULL;
}

static int find_dim(const view_def *v, const char *name)
{
    for (size_t d = 0; d < v->ndims; d++)
        if (strcmp(v->dims[d], name) == 0)
            return (int)d;
    return -1;
}

/* "view.metric" (names may hold dots: every split is tried): the view and
 * the metric's index, or NULL. */
static const view_def *split_target(const config *cfg, const char *t, int *metric)
{
    for (const char *dot = strchr(t, '.'); dot; dot = strchr(dot + 1, '.')) {
        const view_def *v = find_view(cfg, t, (size_t)(dot - t));
        for (size_t m = 0; v && m < v->nmetrics; m++)
            if (strcmp(v->metrics[m].name, dot + 1) == 0) {
                *metric = (int)m;
                return v;
            }
    }
    return NULL;
}

/* "view.dimension": the view and the dimension's index, or NULL. */
static const view_def *split_dim(const config *cfg, const char *t, int *dim)
{
    for (const char *dot = strchr(t, '.'); dot; dot = strchr(dot + 1, '.')) {
        const view_def *v = find_view(cfg, t, (size_t)(dot - t));
        if (v && (*dim = find_dim(v, dot + 1)) >= 0)
            return v;
    }
    return NULL;
}

/* The query reads integers below this as epoch seconds, so a range
 * before 1973-03 goes as seconds (serving/query.c's EPOCH_MS_FROM). */
#define GF_EPOCH_MS_FROM 100000000000LL

/* range.from/to (RFC 3339, as Grafana sends them, with milliseconds) as
 * from/to parameters of the query: epoch milliseconds. 0 when absent, 1
 * when read, -1 with r set when malformed. */
static int read_range(json_t *range, char from[24], char to[24], api_reply *r)
{
    if (!json_is_object(range))
        return 0;
    const char *names[2] = {"from", "to"};
    char *out[2] = {from, to};
    for (int k = 0; k < 2; k++) {
        json_t *s = json_object_get(range, names[k]);
        int64_t ms;
        if (!json_is_string(s) ||
            time_parse_rfc3339(json_string_value(s), json_string_length(s), &ms) < 0) {
            dash_error(r, 400, "invalid range.", names[k],
                       ": expected an RFC 3339 time such as 2026-11-23T10:00:00.000Z");
            return -1;
        }
        if (llabs(ms) < GF_EPOCH_MS_FROM)
            ms = floor_div(ms, 1000);
        snprintf(out[k], 24, "%lld", (long long)ms);
    }
    return 1;
}

/* Without a range granularity=auto cannot divide one: the finest of the
 * view's units whose buckets are at least interval_ms long (Grafana's
 * resolution), or the view's own. */
static gran_t interval_gran(const view_def *v, int64_t interval_ms)
{
    static const int64_t secs[] = {1, 60, 3600, 86400, 28 * 86400};
    for (gran_t g = v->gran; g < GRAN_ALL; g++)
        if (secs[g] * 1000 >= interval_ms)
            return g;
    return GRAN_MONTH;
}

/* Appends "a,b" from a JSON list of strings or a string; false when
 * neither. */
static bool list_param(json_t *j, jbuf *out)
{
    if (json_is_string(j)) {
        jb_raw(out, json_string_value(j), json_string_length(j));
        return true;
    }
    if (!json_is_array(j))
        return false;
    size_t i;
    json_t *e;
    json_array_foreach(j, i, e) {
        if (!json_is_string(e))
            return false;
        if (i)
            jb_lit(out, ",");
        jb_raw(out, json_string_value(e), json_string_length(e));
    }
    return true;
}

static void filter_item(jbuf *f, const char *dim, const char *val, size_t len)
{
    if (f->len)
        jb_lit(f, ",");
    jb_lit(f, dim);
    jb_lit(f, ":");
    jb_raw(f, val, len);
}

/* payload.filter: "d:v,d2:w" or {"d":"v","d2":["w","x"]}. false when
 * malformed. */
static bool payload_filter(json_t *j, jbuf *f)
{
    if (!j || json_is_null(j))
        return true;
    if (json_is_string(j)) {
        if (json_string_length(j) == 0)
            return true;
        if (f->len)
            jb_lit(f, ",");
        jb_raw(f, json_string_value(j), json_string_length(j));
        return true;
    }
    if (!json_is_object(j))
        return false;
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v) {
        if (json_is_string(v)) {
            filter_item(f, k, json_string_value(v), json_string_length(v));
            continue;
        }
        if (!json_is_array(v))
            return false;
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) {
            if (!json_is_string(e))
                return false;
            filter_item(f, k, json_string_value(e), json_string_length(e));
        }
    }
    return true;
}

/* Ad hoc filters that apply to v (its dimensions) added to f. 0, or -1
 * with r set (an operator other than "="). */
static int adhoc_filters(json_t *list, const view_def *v, jbuf *f, api_reply *r)
{
    size_t i;
    json_t *a;
    json_array_foreach(list, i, a) {
        const char *key = json_string_value(json_object_get(a, "key"));
        const char *op = json_string_value(json_object_get(a, "operator"));
        json_t *val = json_object_get(a, "value");
        if (!key || !json_is_string(val))
            continue;
        if (op && strcmp(op, "=") != 0) {
            dash_error(r, 400, "ad hoc filter operator '", op, "' is not supported (only =)");
            return -1;
        }
        if (find_dim(v, key) >= 0)
            filter_item(f, key, json_string_value(val), json_string_length(val));
    }
    return 0;
}

/* The series name of one group: "view.metric" or
 * "view.metric{d1=v1,d2=v2}", with ".pNN" after a quantile's metric. */
static char *series_name(const char *target, json_t *dims, const char *sub)
{
    jbuf n;
    jb_init(&n);
    jb_lit(&n, target);
    if (sub) {
        jb_lit(&n, ".");
        jb_lit(&n, sub);
    }
    if (json_object_size(dims)) {
        jb_lit(&n, "{");
        const char *k;
        json_t *v;
        bool first = true;
        json_object_foreach(dims, k, v) {
            if (!first)
                jb_lit(&n, ",");
            first = false;
            jb_lit(&n, k);
            jb_lit(&n, "=");
            if (json_is_string(v))
                jb_raw(&n, json_string_value(v), json_string_length(v));
            else
                jb_lit(&n, "null");
        }
        jb_lit(&n, "}");
    }
    size_t len;
    return jb_take(&n, &len);
}

/* Adds the point (value, ms) to the series named name in out (series in
 * first-seen order; idx maps names to positions). */
static int add_point(json_t *out, json_t *idx, const char *name, json_t *value, json_int_t ms)
{
    json_t *pos = json_object_get(idx, name), *series;
    if (pos) {
        series = json_array_get(out, (size_t)json_integer_value(pos));
    } else {
        series = json_pack("{s:s,s:[]}", "target", name, "datapoints");
        if (!series)
            return -1;
        json_object_set_new(idx, name, json_integer((json_int_t)json_array_size(out)));
        json_array_append_new(out, series);
    }
    return json_array_append_new(json_object_get(series, "datapoints"),
                                 json_pack("[O,I]", value ? value : json_null(), ms));
}

/* One target's answer rows as time series (appended to out). */
static int to_series(json_t *ans, const char *target, const metric_def *md, json_t *out)
{
    const char *metric = md->name;
    json_t *idx = json_object(), *row;
    size_t i;
    int rc = idx ? 0 : -1;
    json_array_foreach(json_object_get(ans, "rows"), i, row) {
        if (rc)
            break;
        json_t *ts = json_object_get(row, "ts");
        json_int_t ms = ts ? json_integer_value(ts) * 1000 : 0;
        json_t *dims = json_object_get(row, "dims");
        json_t *val = json_object_get(json_object_get(row, "metrics"), metric);
        if (json_is_object(val)) {   /* quantiles: one series each */
            const char *q;
            json_t *qv;
            json_object_foreach(val, q, qv) {
                char *name = series_name(target, dims, q);
                rc = name ? add_point(out, idx, name, qv, ms) : -1;
                free(name);
                if (rc)
                    break;
            }
        } else if (md->type == MT_QUANTILES) {   /* a filled row: null in each */
            const agg_render_ctx *qc = &agg_render_default;
            for (size_t k = 0; k < qc->nq && !rc; k++) {
                char *name = series_name(target, dims, qc->names[k]);
                rc = name ? add_point(out, idx, name, NULL, ms) : -1;
                free(name);
            }
        } else {
            char *name = series_name(target, dims, NULL);
            rc = name ? add_point(out, idx, name, val, ms) : -1;
            free(name);
        }
    }
    json_decref(idx);
    return rc;
}

/* One target's answer rows as a table (appended to out). */
static int to_table(json_t *ans, const char *metric, json_t *group, bool timed, json_t *out)
{
    json_t *cols = json_array(), *rows = json_array(), *row;
    if (timed)
        json_array_append_new(cols, json_pack("{s:s,s:s}", "text", "Time", "type", "time"));
    size_t i;
    json_t *g;
    json_array_foreach(group, i, g)
        json_array_append_new(cols, json_pack("{s:O,s:s}", "text", g, "type", "string"));
    json_array_append_new(cols, json_pack("{s:s,s:s}", "text", metric, "type", "number"));
    json_array_foreach(json_object_get(ans, "rows"), i, row) {
        json_t *cells = json_array();
        if (timed)
            json_array_append_new(cells, json_integer(
                                             json_integer_value(json_object_get(row, "ts")) * 1000));
        size_t k;
        json_array_foreach(group, k, g)
            json_array_append(cells, json_object_get(json_object_get(row, "dims"),
                                                     json_string_value(g)));
        json_t *val = json_object_get(json_object_get(row, "metrics"), metric);
        json_array_append(cells, val ? val : json_null());
        json_array_append_new(rows, cells);
    }
    return json_array_append_new(out, json_pack("{s:s,s:o,s:o}", "type", "table", "columns", cols,
                                                "rows", rows));
}

/* A target's query parameters, as strings the query route takes. */
typedef struct {
    jbuf group, filter;
    const char *gran, *where;
    char max_points[24];
} gf_params;

/* POST /grafana/query */
void grafana_h_query(const api_ctx *ctx, const api_request *rq, api_reply *r)
{
    json_t *b = body_object(rq, r);
    if (!b)
        return;
    json_t *out = json_array();
    char from[24], to[24];
    int has_range = read_range(json_object_get(b, "range"), from, to, r);
    if (has_range < 0)
        goto out;
    json_int_t max_points = json_integer_value(json_object_get(b, "maxDataPoints"));
    json_int_t interval_ms = json_integer_value(json_object_get(b, "intervalMs"));
    if (max_points <= 0)
        max_points = GF_DEFAULT_POINTS;
    if (max_points > GF_MAX_POINTS)
        max_points = GF_MAX_POINTS;
    json_t *adhoc = json_object_get(b, "adhocFilters");
    if (!json_is_array(adhoc))
        adhoc = json_object_get(b, "filters");
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(b, "targets"), i, t) {
        const char *target = json_string_value(json_object_get(t, "target"));
        if (!target || json_is_true(json_object_get(t, "hide")))
            continue;   /* a placeholder or hidden query: Grafana skips them too */
        int m;
        const view_def *v = split_target(ctx->cfg, target, &m);
        if (!v) {
            dash_error(r, 404, "unknown target '", target,
                       "' (expected view.metric, as POST /grafana/metrics lists them)");
            goto out;
        }
        json_t *payload = json_object_get(t, "payload");
        if (payload && !json_is_object(payload) &&
            !(json_is_string(payload) && json_string_length(payload) == 0)) {
            dash_error(r, 400, "payload of target '", target, "' must be a JSON object");
            goto out;
        }
        gf_params q = {0};
        jb_init(&q.group);
        jb_init(&q.filter);
        json_t *gb = json_object_get(payload, "group_by");
        bool ok = !gb || json_is_null(gb) || list_param(gb, &q.group);
        if (!ok || !payload_filter(json_object_get(payload, "filter"), &q.filter)) {
            dash_error(r, 400, ok ? "payload.filter of target '" : "payload.group_by of target '",
                       target, ok ? "' must be \"dim:value,...\" or {\"dim\": value or [values]}"
                                  : "' must be a list of dimensions or \"d1,d2\"");
            jb_free(&q.group);
            jb_free(&q.filter);
            goto out;
        }
        if (adhoc_filters(adhoc, v, &q.filter, r) < 0) {
            jb_free(&q.group);
            jb_free(&q.filter);
            goto out;
        }
        q.where = json_string_value(json_object_get(payload, "where"));
        q.gran = json_string_value(json_object_get(payload, "granularity"));
        bool table = json_is_string(json_object_get(payload, "format")) &&
                     strcmp(json_string_value(json_object_get(payload, "format")), "table") == 0;
        /* The query picks the granularity for the panel's width; only
         * without a range (nothing to divide) does intervalMs choose. */
        bool autog = !q.gran && has_range;
        if (!q.gran)
            q.gran = autog ? "auto" : gran_name(interval_gran(v, interval_ms));
        qparam p[10];
        size_t np = 0;
        p[np++] = (qparam){"metrics", 7, v->metrics[m].name, strlen(v->metrics[m].name)};
        p[np++] = (qparam){"granularity", 11, q.gran, strlen(q.gran)};
        if (autog) {
            snprintf(q.max_points, sizeof(q.max_points), "%lld", (long long)max_points);
            p[np++] = (qparam){"max_points", 10, q.max_points, strlen(q.max_points)};
        }
        if (has_range) {
            p[np++] = (qparam){"from", 4, from, strlen(from)};
            p[np++] = (qparam){"to", 2, to, strlen(to)};
        }
        if (q.group.len)
            p[np++] = (qparam){"group_by", 8, q.group.p, q.group.len};
        if (q.filter.len)
            p[np++] = (qparam){"filter", 6, q.filter.p, q.filter.len};
        if (q.where && *q.where)
            p[np++] = (qparam){"where", 5, q.where, strlen(q.where)};
        /* Every bucket of the range is a point; Grafana draws null as a
         * gap where an empty bucket would otherwise be bridged. (Last:
         * dropped again below.) */
        bool fill = has_range && !table && strcmp(q.gran, "all") != 0;
        if (fill)
            p[np++] = (qparam){"fill", 4, "null", 4};
        json_t *ans = NULL;
        int rc = q.group.oom || q.filter.oom ? -1
               : dash_query(ctx, rq, v->name, strlen(v->name), p, np, &ans, r);
        if (rc && fill && r->status == 413) {
            /* Filling every group's buckets passes http.limits.max_rows:
             * the rows there are, rather than no panel. */
            free(r->body);
            r->body = NULL;
            r->len = 0;
            r->status = 0;
            rc = dash_query(ctx, rq, v->name, strlen(v->name), p, np - 1, &ans, r);
        }
        if (rc == 0) {
            if (table) {
                json_t *group = json_array();
                size_t pos = 0;
                while (q.group.len && pos <= q.group.len) {
                    const char *c = memchr(q.group.p + pos, ',', q.group.len - pos);
                    size_t end = c ? (size_t)(c - q.group.p) : q.group.len;
                    json_array_append_new(group, json_stringn(q.group.p + pos, end - pos));
                    pos = end + 1;
                }
                rc = to_table(ans, v->metrics[m].name, group, strcmp(q.gran, "all") != 0, out);
                json_decref(group);
            } else {
                rc = to_series(ans, target, &v->metrics[m], out);
            }
            if (rc)
                api_error(r, 500, "out of memory", strlen("out of memory"));
        } else if (q.group.oom || q.filter.oom) {
            api_error(r, 500, "out of memory", strlen("out of memory"));
        }
        json_decref(ans);
        jb_free(&q.group);
        jb_free(&q.filter);
        if (rc)
            goto out;
    }
    dash_reply_json(r, 200, out);
out:
    json_decref(out);
    json_decref(b);
}

/* GET /grafana and /grafana/: "Test connection" */
void grafana_h_root(const api_ctx *ctx, const api_request *rq, api_reply *r)
{
    json_t *o = json_pack("{s:s,s:s}", "status", "ok", "datasource", "lambdad");
    dash_reply_json(r, 200, o);
    json_decref(o);
}

/* The payload options every target offers: group_by (the view's
 * dimensions), filter, where and format. */
static json_t *payload_configs(const view_def *v)
{
    json_t *dims = json_array();
    for (size_t d = 0; d < v->ndims; d++)
        json_array_append_new(dims, json_pack("{s:s,s:s}", "label", v->dims[d], "value",
                                              v->dims[d]));
    return json_pack(
        "[{s:s,s:s,s:s,s:s,s:o},{s:s,s:s,s:s,s:s},{s:s,s:s,s:s,s:s},"
        "{s:s,s:s,s:s,s:[{s:s,s:s},{s:s,s:s}]}]",
        "label", "Group by", "name", "group_by", "type", "multi-select", "placeholder",
        "dimensions", "options", dims,
        "label", "Filter", "name", "filter", "type", "input", "placeholder", "dim:value,dim:value",
        "label", "Where", "name", "where", "type", "input", "placeholder", "expression",
        "label", "Format", "name", "format", "type", "select", "options",
        "label", "Time series", "value", "timeseries", "label", "Table", "value", "table");
}

/* Every view.metric: as metric configs with their payload options
 * (POST /grafana/metrics), or as names containing the body's "target"
 * (POST /grafana/search, the older plugins' list). */
static void list_metrics(const api_ctx *ctx, const api_request *rq, api_reply *r, bool names)
{
    json_t *b = body_object(rq, r);
    if (!b)
        return;
    const char *want = names ? json_string_value(json_object_get(b, "target")) : NULL;
    json_t *out = json_array();
    for (size_t i = 0; i < ctx->cfg->nviews; i++) {
        const view_def *v = &ctx->cfg->views[i];
        for (size_t m = 0; m < v->nmetrics; m++) {
            char *name = NULL;
            if (asprintf(&name, "%s.%s", v->name, v->metrics[m].name) < 0)
                name = NULL;
            if (names && name && (!want || strstr(name, want)))
                json_array_append_new(out, json_string(name));
            else if (!names)
                json_array_append_new(out, json_pack("{s:s?,s:s?,s:o}", "label", name, "value",
                                                     name, "payloads", payload_configs(v)));
            free(name);
        }
    }
    dash_reply_json(r, 200, out);
    json_decref(out);
    json_decref(b);
}

void grafana_h_metrics(const api_ctx *ctx, const api_request *rq, api_reply *r)
{
    list_metrics(ctx, rq, r, false);
}

void grafana_h_search(const api_ctx *ctx, const api_request *rq, api_reply *r)
{
    list_metrics(ctx, rq, r, true);
}

/* POST /grafana/metric-payload-options {"metric","payload","name"}: the
 * options of a select payload (group_by: the view's dimensions). */
void grafana_h_payload_options(const api_ctx *ctx, const api_request *rq, api_reply *r)
{
    json_t *b = body_object(rq, r);
    if (!b)
        return;
    const char *metric = json_string_value(json_object_get(b, "metric"));
    const char *name = json_string_value(json_object_get(b, "name"));
    int m;
    const view_def *v = metric ? split_target(ctx->cfg, metric, &m) : NULL;
    if (!v) {
        dash_error(r, 404, "unknown metric '", metric ? metric : "",
                   "' (expected view.metric, as POST /grafana/metrics lists them)");
        json_decref(b);
        return;
    }
    json_t *out = json_array();
    if (name && strcmp(name, "group_by") == 0)
        for (size_t d = 0; d < v->ndims; d++)
            json_array_append_new(out, json_pack("{s:s,s:s}", "label", v->dims[d], "value",
                                                 v->dims[d]));
    dash_reply_json(r, 200, out);
    json_decref(out);
    json_decref(b);
}

/* The values of v's dimension d in the body's range (range or
 * timeRange), most frequent first, as {key: value} objects. */
static json_t *values_as(const api_ctx *ctx, const api_request *rq, json_t *b,
                         const view_def *v, int d, const char *key, api_reply *r)
{
    json_t *range = json_object_get(b, "range");
    if (!range)
        range = json_object_get(b, "timeRange");
    char fs[24], ts[24];
    int has = read_range(range, fs, ts, r);
    if (has < 0)
        return NULL;
    dash_values_opts o = {.from = has ? fs : NULL, .to = has ? ts : NULL,
                          .limit = GF_VARIABLE_LIMIT};
    json_t *vals, *wm;
    if (dash_values(ctx, rq, v, (size_t)d, &o, &vals, &wm, r) < 0)
        return NULL;
    json_t *out = json_array(), *e;
    size_t i;
    json_array_foreach(vals, i, e) {
        json_t *val = json_object_get(e, "value");
        if (!json_is_string(val))
            continue;   /* null: no filter can select it */
        if (strcmp(key, "text") == 0)
            json_array_append_new(out, json_pack("{s:O}", "text", val));
        else
            json_array_append_new(out, json_pack("{s:O,s:O}", "__text", val, "__value", val));
    }
    json_decref(vals);
    json_decref(wm);
    return out;
}

/* POST /grafana/variable {"payload": {"target": "view.dimension"} (or the
 * target as a string), "range"}: the dimension's values, most frequent
 * first; target "views" (or empty) lists the views. */
void grafana_h_variable(const api_ctx *ctx, const api_request *rq, api_reply *r)
{
    json_t *b = body_object(rq, r);
    if (!b)
        return;
    json_t *payload = json_object_get(b, "payload");
    const char *target = json_is_string(payload) ? json_string_value(payload)
                                                 : json_string_value(json_object_get(payload, "target"));
    json_t *out = NULL;
    if (!target || !*target || strcmp(target, "views") == 0) {
        out = json_array();
        for (size_t i = 0; i < ctx->cfg->nviews; i++)
            json_array_append_new(out, json_pack("{s:s,s:s}", "__text", ctx->cfg->views[i].name,
                                                 "__value", ctx->cfg->views[i].name));
    } else {
        int d;
        const view_def *v = split_dim(ctx->cfg, target, &d);
        if (!v)
            dash_error(r, 404, "unknown variable target '", target,
                       "' (expected view.dimension, or views)");
        else
            out = values_as(ctx, rq, b, v, d, "__text", r);
    }
    if (out)
        dash_reply_json(r, 200, out);
    json_decref(out);
    json_decref(b);
}

/* POST /grafana/tag-keys: every view's dimensions, once each. */
void grafana_h_tag_keys(const api_ctx *ctx, const api_request *rq, api_reply *r)
{
    json_t *b = body_object(rq, r);
    if (!b)
        return;
    json_t *out = json_array(), *seen = json_object();
    for (size_t i = 0; i < ctx->cfg->nviews; i++)
        for (size_t d = 0; d < ctx->cfg->views[i].ndims; d++) {
            const char *name = ctx->cfg->views[i].dims[d];
            if (json_object_get(seen, name))
                continue;
            json_object_set_new(seen, name, json_true());
            json_array_append_new(out, json_pack("{s:s,s:s}", "type", "string", "text", name));
        }
    dash_reply_json(r, 200, out);
    json_decref(out);
    json_decref(seen);
    json_decref(b);
}

/* POST /grafana/tag-values {"key"}: the values of the dimension of that
 * name in the first view (config order) that has it. */
void grafana_h_tag_values(const api_ctx *ctx, const api_request *rq, api_reply *r)
{
    json_t *b = body_object(rq, r);
    if (!b)
        return;
    const char *key = json_string_value(json_object_get(b, "key"));
    const view_def *v = NULL;
    int d = -1;
    for (size_t i = 0; key && i < ctx->cfg->nviews && !v; i++)
        if ((d = find_dim(&ctx->cfg->views[i], key)) >= 0)
            v = &ctx->cfg->views[i];
    if (!v) {
        dash_error(r, 404, "unknown tag key '", key ? key : "",
                   "' (expected a dimension, as POST /grafana/tag-keys lists them)");
    } else {
        json_t *out = values_as(ctx, rq, b, v, d, "text", r);
        if (out)
            dash_reply_json(r, 200, out);
        json_decref(out);
    }
    json_decref(b);
}
