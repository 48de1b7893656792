/* api.h - the HTTP API's endpoints and routing, without HTTP plumbing
 * (serving/ private): a request is (method, path, decoded parameters, a
 * few header facts) and the answer a status and a JSON body, so tests
 * drive every route without a socket. Runs on HTTP threads, and the query
 * route on query pool threads (api_pooled); reads only the immutable
 * config and calls the source, the cache and the pool, which lock what
 * they own.
 */
#pragma once
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "config/config.h"
#include "serving/query.h"
#include "serving/serving.h"

typedef struct {
    const config *cfg;
    const serving_source *src;
    int64_t started_ms;       /* CLOCK_MONOTONIC ms at start, for uptime_s */
    struct qcache *cache;     /* exact answers per state version; NULL: none */
    struct qpool *pool;       /* the query pool, for its figures; NULL: none */
    struct cluster *cluster;  /* the other shards (serving/cluster.h); NULL: none */
    const atomic_bool *stopping;           /* set when the server stops; NULL: never */
    atomic_uint_fast64_t *query_timeouts;  /* queries abandoned past their deadline */
} api_ctx;

typedef struct {
    const char *method, *path;   /* C strings; path decoded, without the query string */
    const qparam *p;             /* decoded parameters, borrowed for the call */
    size_t np;
    bool no_cache;               /* Cache-Control: no-cache */
    int64_t deadline_ms;         /* CLOCK_MONOTONIC ms past which a query is abandoned;
                                    0: http.limits.query_timeout_ms from now */
    int64_t budget_ms;           /* a peer's request: the ms its query has left (the
                                    deadline is the earlier); 0: none */
    const char *body;            /* the request body of a route that takes one
                                    (api_takes_body), NUL-terminated; else NULL */
    size_t body_len;
    const char *if_none_match;   /* the If-None-Match header, or NULL */
    bool has_body_fd;            /* body_fd holds the body (api_spools_body routes) */
    int body_fd;                 /* borrowed for the call */
} api_request;

typedef struct {
    int status;
    char *body;               /* malloc'd JSON; NULL only when out of memory */
    size_t len;
    const char *allow;        /* the Allow header of a 405, else NULL */
    const char *content_type; /* NULL: application/json */
    bool has_wm;              /* a query's answer: wm goes into X-Lambdad-* headers */
    serving_watermark wm;
    char *missing_shards;     /* malloc'd: X-Lambdad-Missing-Shards of a partial answer */
    /* The web UI's assets: Cache-Control (NULL: no-store), an ETag, and
     * whether the answer is an HTML page (it gets the page's security
     * headers: Content-Security-Policy, X-Frame-Options, Referrer-Policy). */
    const char *cache_control;
    const char *etag;
    bool html;
} api_reply;

int64_t api_now_ms(void);     /* CLOCK_MONOTONIC in ms */

/* Answers one request. */
void api_dispatch(const api_ctx *ctx, const api_request *rq, api_reply *r);

/* Whether the request runs on the query pool (heavy: the query and
 * values routes, the Grafana routes that query) rather than on the HTTP
 * thread that read it. */
bool api_pooled(const char *method, const char *path);

/* Whether the request's body is read and handed to the route: a POST
 * route's (the Grafana routes' JSON); other bodies are discarded. */
bool api_takes_body(const char *method, const char *path);
/* Whether the request's body goes to a spool file on disk instead, not
 * bounded by http.limits.max_body_bytes (POST /v1/admin/import); the
 * route runs on the query pool with the file as body_fd. */
bool api_spools_body(const char *method, const char *path);

/* The pattern of the route that path matches ("/v1/views/{view}/query"),
 * or "other": the label of the HTTP metrics, whose values must not grow
 * with what clients send. */
const char *api_route(const char *path);

/* An error reply: {"error":{"status":N,"message":"..."}}. */
void api_error(api_reply *r, int status, const char *msg, size_t len);
void api_reply_clear(api_reply *r);
