/* dash.h - the routes that feed dashboards (serving/ private): the values
 * endpoint (values.c), the Grafana JSON datasource protocol (grafana.c)
 * and the web UI's assets (ui.c). Each handler has the route table's
 * signature (api.c); the ones that read views run on the query pool and
 * answer through the query engine, so their numbers are the query
 * route's, to the bit.
 */
#pragma once
#include <jansson.h>
#include "serving/api.h"

/* Runs a query on the view named (view, view_len) with the parameters p
 * (as the query route would get them), through the answer cache, within
 * the request's time budget. 0 and *answer (the parsed answer, the
 * caller's reference), or -1 with r set to the error answer. */
int dash_query(const api_ctx *ctx, const api_request *rq, const char *view, size_t view_len,
               const qparam *p, size_t np, json_t **answer, api_reply *r);

/* The view's metric that counts every event (a count without a where), or
 * -1 when it has none. */
int dash_count_metric(const view_def *v);

/* The values of one dimension, most frequent first: the answer's "values"
 * array of {"value","count"} and its watermark, in *values and *wm (new
 * references). from, to, prefix (NULL: none), filter (NULL: none) and
 * limit (0: none) as the values route takes them. 0, or -1 with r set. */
typedef struct {
    const char *from, *to, *filter;   /* NULL: not given */
    const char *prefix;
    size_t prefix_len;
    size_t limit;
} dash_values_opts;
int dash_values(const api_ctx *ctx, const api_request *rq, const view_def *v, size_t dim,
                const dash_values_opts *o, json_t **values, json_t **wm, api_reply *r);

/* Puts a rendered JSON body into the reply (200 unless status says so). */
void dash_reply_json(api_reply *r, int status, json_t *body);
/* An error whose message is the C strings given, concatenated. */
void dash_error(api_reply *r, int status, const char *a, const char *b, const char *c);

/* GET /v1/views/{view}/values/{dimension} */
void dash_h_values(const api_ctx *ctx, const api_request *rq, api_reply *r);

/* /grafana/...: GET /grafana and /grafana/ (the "Test connection"), and
 * POST metrics, metric-payload-options, query, variable, tag-keys,
 * tag-values (and search, the older plugins' name for metrics). */
void grafana_h_root(const api_ctx *ctx, const api_request *rq, api_reply *r);
void grafana_h_metrics(const api_ctx *ctx, const api_request *rq, api_reply *r);
void grafana_h_payload_options(const api_ctx *ctx, const api_request *rq, api_reply *r);
void grafana_h_query(const api_ctx *ctx, const api_request *rq, api_reply *r);
void grafana_h_variable(const api_ctx *ctx, const api_request *rq, api_reply *r);
void grafana_h_tag_keys(const api_ctx *ctx, const api_request *rq, api_reply *r);
void grafana_h_tag_values(const api_ctx *ctx, const api_request *rq, api_reply *r);
void grafana_h_search(const api_ctx *ctx, const api_request *rq, api_reply *r);

/* GET / and GET /ui/{asset}: the web UI, built into the binary. */
void ui_h_index(const api_ctx *ctx, const api_request *rq, api_reply *r);
void ui_h_asset(const api_ctx *ctx, const api_request *rq, api_reply *r);
