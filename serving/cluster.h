/* cluster.h - fan-out of a query to the other shards (serving/ private;
 * README "Running several instances").
 *
 * A cluster is the peers of cluster.peers grouped by shard, with their
 * health: a peer whose request failed is skipped for
 * cluster.retry_after_ms. A query's fan-out asks one replica of each
 * other shard for its partial answer (GET /v1/internal/views/{view}/
 * partial with the query's parameters, serving/partial.h), all in
 * parallel with libcurl's multi interface on the query's own thread,
 * while the local scan runs; a replica that fails is replaced by the
 * next one within the query's time budget. Peers of this instance's own
 * shard are its replicas: listed, never asked.
 *
 * The cluster is shared by the query pool threads (health and counters
 * are atomics, the last error under a mutex, connections in a libcurl
 * share handle); a fanout belongs to one query.
 */
#pragma once
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include "config/config.h"
#include "core/jbuf.h"
#include "core/vtable.h"
#include "serving/query.h"
#include "serving/serving.h"

typedef struct cluster cluster;
typedef struct fanout fanout;

/* The peers of cfg (copied). *out is NULL when cfg has none. 0 or -ENOMEM. */
int cluster_new(const config *cfg, cluster **out);
void cluster_free(cluster *c);   /* accepts NULL */
/* Whether queries fan out: some peer serves another shard. */
bool cluster_fans_out(const cluster *c);
/* Adds "cluster": {"shard", "peers": [...]} to /v1/status. */
void cluster_status(cluster *c, json_t *obj);

/* Sends the query (view, parameters p as the client gave them) to one
 * replica of every other shard; the answers are awaited by fanout_finish.
 * deadline_ms: CLOCK_MONOTONIC ms (0: none). 0 or -ENOMEM. */
int fanout_start(cluster *c, const char *view, size_t view_len, const qparam *p, size_t np,
                 int64_t deadline_ms, fanout **out);
/* Waits for every shard's part (failing over to other replicas) and
 * merges it into t, q's result table. *wm: this instance's watermark in,
 * the whole answer's out (live and unreadable events summed over the
 * shards, batch_at the oldest). A shard without an answer is a 503
 * naming it and what its replicas said, unless q->allow_partial (then it
 * is listed as missing). A peer's 413 is the answer's 413. 0, or a
 * negative code with err set. */
int fanout_finish(fanout *f, const query *q, vtable *t, serving_watermark *wm, qerror *err);
/* The answer's ,"shards":[...] (inside "watermark"), and after it
 * ,"partial":true,"missing_shards":[...] when a shard is missing. */
void fanout_render_shards(const fanout *f, jbuf *b);
void fanout_render_partial(const fanout *f, jbuf *b);
/* The missing shards' names, comma-separated, or NULL (none). */
const char *fanout_missing(const fanout *f);
void fanout_free(fanout *f);     /* accepts NULL; abandons requests still running */
