/* client.h - talking to the running lambdad of a config through its HTTP
 * API (libcurl), for the commands that work through it (lambdad import,
 * lambdad export): the address of its http.listen, its bearer token, and
 * for HTTPS its own certificate as the trusted one. The caller's thread;
 * the caller brackets its use with curl_global_init/curl_global_cleanup. */
#pragma once
#include <stdint.h>
#include <stdio.h>

#include "config/config.h"

typedef struct client client;

typedef struct {
    long status;             /* the HTTP status */
    char *body;              /* malloc'd, NUL-terminated */
    size_t len;
    char *batch_seq, *batch_at, *live_events;   /* the X-Lambdad-* headers (malloc'd) or NULL */
} client_answer;

/* A client of the daemon that cfg (borrowed) describes. A wildcard listen
 * address is reached on loopback. -EINVAL when its address cannot be known
 * (http.listen on port 0), -ENOMEM; both with *errmsg (malloc'd). */
int client_new(const config *cfg, client **out, char **errmsg);
void client_free(client *c);   /* accepts NULL */
/* "http://127.0.0.1:8080" */
const char *client_base(const client *c);

/* GETs path_and_query ("/v1/status"). 0 and *a; or a negative code with
 * *errmsg (malloc'd: could not connect, timed out, ...). */
int client_get(client *c, const char *path, client_answer *a, char **errmsg);
/* POSTs the open file f (size bytes, from its position) as
 * application/octet-stream, calling progress (when not NULL) as it goes.
 * Returns as client_get; no time limit but the connect's. */
int client_post_file(client *c, const char *path, FILE *f, uint64_t size,
                     void (*progress)(void *ud, uint64_t sent, uint64_t total), void *ud,
                     client_answer *a, char **errmsg);
void client_answer_clear(client_answer *a);

/* Whether the daemon answering serves cfg's archive: its /v1/status names
 * the path (compared after resolving links), so a daemon of another config
 * listening there is not taken for it. 0: it does. 1: it does not; then
 * either st->status is not 200 (st holds the error answer) or *theirs
 * (malloc'd, NULL when the status names none) is the archive it serves.
 * Negative with *errmsg: no answer. The caller clears st. */
int client_serves_archive(client *c, client_answer *st, char **theirs, char **errmsg);

/* path segment or query value, %-escaped (malloc'd; NULL when out of memory) */
char *client_escape(const char *s);
