/* api.h - the HTTP API's endpoints and routing, without HTTP plumbing
 * (serving/ private): a request is (method, path, decoded parameters) and
 * the answer a status and a JSON body, so tests drive every route without
 * a socket. Runs on HTTP pool threads; reads only the immutable config
 * and calls the source, which locks what it owns.
 */
#pragma once
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
} api_ctx;

typedef struct {
    int status;
    char *body;               /* malloc'd JSON; NULL only when out of memory */
    size_t len;
    const char *allow;        /* the Allow header of a 405, else NULL */
    const char *content_type; /* NULL: application/json */
} api_reply;

int64_t api_now_ms(void);     /* CLOCK_MONOTONIC in ms */

/* Answers one request. method and path are C strings (path decoded, no
 * query string); the parameters are borrowed for the call only. */
void api_dispatch(const api_ctx *ctx, const char *method, const char *path, const qparam *p,
                  size_t np, api_reply *r);

/* The pattern of the route that path matches ("/v1/views/{view}/query"),
 * or "other": the label of the HTTP metrics, whose values must not grow
 * with what clients send. */
const char *api_route(const char *path);

/* An error reply: {"error":{"status":N,"message":"..."}}. */
void api_error(api_reply *r, int status, const char *msg, size_t len);
void api_reply_clear(api_reply *r);
