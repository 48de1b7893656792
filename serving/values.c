/* values.c - GET /v1/views/{view}/values/{dimension}: a dimension's
 * values in a time range, most frequent first, for filter pickers and
 * dashboard variables; and the helpers the dashboard routes share
 * (dash.h).
 *
 * Runs on a query pool thread. A values question is a query: group_by
 * the dimension, granularity=all, the view's count metric, ordered by it
 * (ties by value, as the query route orders equal rows), so it is exact
 * over segments + pending + live and goes through the answer cache like
 * any query. A view without a count metric answers its values in value
 * order with "count": null. No state, no lock.
 */
#include "serving/dash.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jbuf.h"

#define VALUES_DEFAULT_LIMIT 100
#define VALUES_MAX_LIMIT 100000

void dash_reply_json(api_reply *r, int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    free(r->body);
    r->body = NULL;
    if (!text) {
        api_error(r, 500, "out of memory", strlen("out of memory"));
        return;
    }
    r->status = status;
    r->body = text;   /* json_dumps allocates with malloc: ours to free() */
    r->len = strlen(text);
}

void dash_error(api_reply *r, int status, const char *a, const char *b, const char *c)
{
    jbuf m;
    jb_init(&m);
    jb_lit(&m, a);
    if (b)
        jb_lit(&m, b);
    if (c)
        jb_lit(&m, c);
    if (m.oom || !m.p)
        api_error(r, 500, "out of memory", strlen("out of memory"));
    else
        api_error(r, status, m.p, m.len);
    jb_free(&m);
}

int dash_count_metric(const view_def *v)
{
    for (size_t m = 0; m < v->nmetrics; m++)
        if (v->metrics[m].type == MT_COUNT && !v->metrics[m].where)
            return (int)m;
    return -1;
}

int dash_query(const api_ctx *ctx, const api_request *rq, const char *view, size_t view_len,
               const qparam *p, size_t np, json_t **answer, api_reply *r)
{
    query_opts o = {.no_cache = rq->no_cache, .deadline_ms = rq->deadline_ms,
                    .stop = ctx->stopping, .cluster = ctx->cluster};
    char *body = NULL;
    size_t len = 0;
    *answer = NULL;
    int status = query_handle_cached(ctx->cfg, ctx->src, ctx->cache, view, view_len, p, np, &o,
                                     &body, &len);
    if (o.expired && ctx->query_timeouts)
        atomic_fetch_add(ctx->query_timeouts, 1);
    if (!body) {
        api_error(r, 500, "out of memory", strlen("out of memory"));
        return -1;
    }
    if (status != 200) {   /* the query's own error answer, as it is */
        free(r->body);
        r->status = status;
        r->body = body;
        r->len = len;
        return -1;
    }
    *answer = json_loadb(body, len, JSON_ALLOW_NUL, NULL);
    free(body);
    if (!*answer) {
        api_error(r, 500, "cannot read a query answer", strlen("cannot read a query answer"));
        return -1;
    }
    return 0;
}

static qparam param(const char *key, const char *val)
{
    return (qparam){.key = key, .klen = strlen(key), .val = val, .vlen = strlen(val)};
}

static bool has_prefix(const char *s, size_t len, const dash_values_opts *o)
{
    return len >= o->prefix_len && memcmp(s, o->prefix, o->prefix_len) == 0;
}

int dash_values(const api_ctx *ctx, const api_request *rq, const view_def *v, size_t dim,
                const dash_values_opts *o, json_t **values, json_t **wm, api_reply *r)
{
    *values = *wm = NULL;
    qparam p[8];
    size_t np = 0;
    char limit[24];
    int cm = dash_count_metric(v);
    p[np++] = param("granularity", "all");
    p[np++] = param("group_by", v->dims[dim]);
    if (cm >= 0) {
        p[np++] = param("metrics", v->metrics[cm].name);
        p[np++] = param("order_by", v->metrics[cm].name);
    } else if (v->nmetrics > 0) {
        p[np++] = param("metrics", v->metrics[0].name);   /* some metric: only the groups count */
    }
    if (o->from)
        p[np++] = param("from", o->from);
    if (o->to)
        p[np++] = param("to", o->to);
    if (o->filter)
        p[np++] = param("filter", o->filter);
    /* With a prefix the query cannot limit (the prefix is applied to its
     * answer); without one the query keeps only the top `limit`. */
    if (!o->prefix && o->limit) {
        snprintf(limit, sizeof(limit), "%zu", o->limit);
        p[np++] = param("limit", limit);
    }
    json_t *ans;
    if (dash_query(ctx, rq, v->name, strlen(v->name), p, np, &ans, r) < 0)
        return -1;
    json_t *out = json_array();
    json_t *rows = json_object_get(ans, "rows");
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        if (o->limit && json_array_size(out) >= o->limit)
            break;
        json_t *val = json_object_get(json_object_get(row, "dims"), v->dims[dim]);
        if (o->prefix && !(json_is_string(val) &&
                           has_prefix(json_string_value(val), json_string_length(val), o)))
            continue;
        json_t *count = cm >= 0 ? json_object_get(json_object_get(row, "metrics"),
                                                  v->metrics[cm].name) : NULL;
        json_array_append_new(out, json_pack("{s:O,s:O}", "value", val ? val : json_null(),
                                             "count", count ? count : json_null()));
    }
    *wm = json_incref(json_object_get(ans, "watermark"));
    *values = out;
    json_decref(ans);
    return 0;
}

/* A parameter's value as a C string (values hold no NUL: libmicrohttpd's
 * decoding stops at one), or NULL when absent. */
static int take(const qparam *q, const char **slot, char **owned, api_reply *r)
{
    if (*slot) {
        char *k = strndup(q->key, q->klen);
        dash_error(r, 400, "duplicate parameter '", k ? k : "", "'");
        free(k);
        return -1;
    }
    if (!q->val || q->vlen == 0) {
        char *k = strndup(q->key, q->klen);
        dash_error(r, 400, "empty value for parameter '", k ? k : "", "'");
        free(k);
        return -1;
    }
    if (!(*owned = strndup(q->val, q->vlen))) {
        api_error(r, 500, "out of memory", strlen("out of memory"));
        return -1;
    }
    *slot = *owned;
    return 0;
}

static bool key_is(const qparam *q, const char *k)
{
    return q->klen == strlen(k) && memcmp(q->key, k, q->klen) == 0;
}

/* GET /v1/views/{view}/values/{dimension}: the path is checked by the
 * route (api.c): "/v1/views/" + view + "/values/" + dimension. */
void dash_h_values(const api_ctx *ctx, const api_request *rq, api_reply *r)
{
    const char *view = rq->path + strlen("/v1/views/");
    const char *mid = strstr(view, "/values/");
    const char *dname = mid + strlen("/values/");
    size_t vlen = (size_t)(mid - view);
    const config *cfg = ctx->cfg;
    const view_def *v = NULL;
    for (size_t i = 0; i < cfg->nviews && !v; i++)
        if (strlen(cfg->views[i].name) == vlen && memcmp(cfg->views[i].name, view, vlen) == 0)
            v = &cfg->views[i];
    char *vname = strndup(view, vlen);
    if (!vname) {
        api_error(r, 500, "out of memory", strlen("out of memory"));
        return;
    }
    if (!v) {
        dash_error(r, 404, "unknown view '", vname, "'");
        free(vname);
        return;
    }
    free(vname);
    size_t dim = v->ndims;
    for (size_t d = 0; d < v->ndims; d++)
        if (strcmp(v->dims[d], dname) == 0)
            dim = d;
    if (dim == v->ndims) {
        jbuf m;
        jb_init(&m);
        jb_lit(&m, "unknown dimension '");
        jb_lit(&m, dname);
        jb_lit(&m, "' of view '");
        jb_lit(&m, v->name);
        jb_lit(&m, "'");
        if (m.oom)
            api_error(r, 500, "out of memory", strlen("out of memory"));
        else
            api_error(r, 404, m.p, m.len);
        jb_free(&m);
        return;
    }

    dash_values_opts o = {.limit = VALUES_DEFAULT_LIMIT};
    const char *limit = NULL;
    char *owned[5] = {0};
    size_t nowned = 0;
    json_t *values = NULL, *wm = NULL;
    for (size_t i = 0; i < rq->np; i++) {
        const qparam *q = &rq->p[i];
        if (q->klen == 0 && q->vlen == 0)
            continue;   /* an empty segment of the query string */
        const char **slot = key_is(q, "from") ? &o.from : key_is(q, "to") ? &o.to
                          : key_is(q, "prefix") ? &o.prefix : key_is(q, "limit") ? &limit
                          : key_is(q, "filter") ? &o.filter : NULL;
        if (!slot) {
            char *k = strndup(q->key, q->klen);
            dash_error(r, 400, "unknown parameter '", k ? k : "",
                       "' (expected from, to, prefix, filter or limit)");
            free(k);
            goto out;
        }
        if (take(q, slot, &owned[nowned], r) < 0)
            goto out;
        nowned++;
    }
    if (o.prefix)
        o.prefix_len = strlen(o.prefix);
    if (limit) {
        char *end;
        long n = strtol(limit, &end, 10);
        if (*end || limit[0] < '0' || limit[0] > '9' || n < 1 || n > VALUES_MAX_LIMIT) {
            dash_error(r, 400, "invalid limit '", limit,
                       "' (expected an integer from 1 to 100000)");
            goto out;
        }
        o.limit = (size_t)n;
    }
    if (dash_values(ctx, rq, v, dim, &o, &values, &wm, r) < 0)
        goto out;
    json_t *body = json_pack("{s:s,s:s,s:o,s:o}", "view", v->name, "dimension", v->dims[dim],
                             "values", values, "watermark", wm ? wm : json_object());
    values = wm = NULL;   /* json_pack's "o" took them */
    dash_reply_json(r, 200, body);
    json_decref(body);
out:
    json_decref(values);
    json_decref(wm);
    for (size_t i = 0; i < nowned; i++)
        free(owned[i]);
}
