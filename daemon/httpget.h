/* httpget.h - one GET to a running lambdad's API (libcurl), for the
 * commands that work through it (lambdad export). */
#pragma once
#include <stddef.h>

#include "config/config.h"

typedef struct {
    long status;             /* the HTTP status */
    char *body;              /* malloc'd, NUL-terminated */
    size_t len;
    char *batch_seq, *batch_at, *live_events;   /* the X-Lambdad-* headers (malloc'd) or NULL */
} http_answer;

/* The base URL of the daemon that cfg describes ("http://127.0.0.1:8080"),
 * malloc'd; NULL with *errmsg when it cannot be known (http.listen on
 * port 0). A wildcard listen address is reached on 127.0.0.1. */
char *http_base_url(const config *cfg, char **errmsg);

/* GETs base + path_and_query with cfg's bearer token (when configured) and,
 * for HTTPS, cfg's own certificate as the trusted one. 0 and *a; or a
 * negative code with *errmsg (malloc'd: could not connect, timed out, ...). */
int http_get(const config *cfg, const char *url, http_answer *a, char **errmsg);
void http_answer_clear(http_answer *a);

/* path segment or query value, %-escaped (malloc'd; NULL when out of memory) */
char *http_escape(const char *s);
