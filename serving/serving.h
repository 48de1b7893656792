/* serving.h - the HTTP JSON API (libmicrohttpd, thread pool).
 *
 * The server reads the views through a serving_source that the daemon wires
 * to the speed (and later batch) layers, so this folder depends on neither.
 * Handlers run on libmicrohttpd's pool threads.
 */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include "config/config.h"
#include "core/segment.h"
#include "core/vtable.h"

typedef struct {
    uint64_t version;      /* the source's state version the rows were read at */
    uint64_t epoch;        /* changes when answers change other than by deltas */
    int64_t batch_seq;     /* R: archive seq the batch views cover (0: none) */
    int64_t batch_at;      /* epoch s of the last batch run, 0 = never */
    int64_t live_events;   /* events counted by the speed layer beyond R */
    int64_t unreadable_events; /* events of the view's stream in damaged archive
                                * chunks, missing from the answer (0: none) */
} serving_watermark;

typedef struct {
    void *ud;
    /* Visits the view's current answer set from one snapshot: seg_fn for
     * each batch segment that may hold a bucket in [from, to) (decoded;
     * valid during the call), then fn for every row of the pending and
     * live tables; rows with equal keys may repeat and are merged by the
     * caller, who also filters by time (the range is a hint). gran is the
     * answer's granularity: a segment needs to be read only from the
     * level such a query reads (its coarser levels come first). Returns 0,
     * a callback's non-zero value, or a negative code: -EAGAIN when the
     * view cannot be answered exactly now (recovering, recomputing, or a
     * damaged segment being rebuilt). */
    int (*scan_view)(void *ud, size_t view_idx, int64_t from, int64_t to, gran_t gran,
                     int (*seg_fn)(const segment *seg, void *fnud),
                     int (*fn)(const vrow *row, void *fnud), void *fnud, serving_watermark *wm);
    /* Adds the layers' figures to the /v1/status object. */
    void (*status)(void *ud, json_t *obj);
    /* true when recovery is done and consuming; else *reason says why not. */
    bool (*ready)(void *ud, const char **reason);
    /* Starts a batch run now (POST /v1/admin/recompute); view_idx >= 0 also
     * recomputes that view in full. 0, or a negative code. May be NULL. */
    int (*recompute)(void *ud, long view_idx);
    /* The state version: while it is unchanged every answer is unchanged,
     * so answers are cached per version. May be NULL (no caching). */
    uint64_t (*version)(void *ud);
    /* Visits the rows applied to the view after version `since` (epoch
     * unchanged): merged into an answer read at `since`, they give the
     * answer at wm's version. -ESTALE when that is not possible. May be
     * NULL. */
    int (*scan_since)(void *ud, size_t view_idx, uint64_t epoch, uint64_t since,
                      int (*fn)(const vrow *row, void *fnud), void *fnud, serving_watermark *wm);
    /* Called on an HTTP thread just before GET /metrics renders the
     * process-wide registry (core/metrics.h): sets the metrics that are
     * read from the layers at scrape time. May be NULL. */
    void (*metrics)(void *ud);
} serving_source;

typedef struct serving serving;

/* Starts listening on cfg->http_host:cfg->http_port (port 0: any free one)
 * with cfg->http_threads threads. cfg and src must outlive the server. */
int serving_start(const config *cfg, const serving_source *src, serving **out, char **errmsg);
int serving_port(const serving *s);    /* the bound port */
/* The first setting (its config name) that differs between the running
 * server's config and next and that only a new server can change, or
 * NULL when serving_swap can move the server to next. */
const char *serving_swap_blocker(const serving *s, const config *next);
/* Answers from cfg and src from now on: requests arriving from now read
 * them; waits until every request that started earlier has completed
 * (queries end within http.limits.query_timeout_ms), so the caller may
 * then free the previous config and source. The listening socket and
 * open connections stay. 0, or -ENOMEM (nothing changed). */
int serving_swap(serving *s, const config *cfg, const serving_source *src);
void serving_stop(serving *s);         /* accepts NULL */
