/* query.h - the view query engine behind GET /v1/views/{view}/query
 * (serving/ private).
 *
 * query_parse() turns the request's decoded parameters into a query (every
 * bad parameter is a 400 with an exact message), query_run() scans the
 * view through the serving_source, rolls the rows up into a private result
 * table, orders, limits and renders the JSON answer. Both run on the
 * calling thread (a query pool thread, serving/qpool.h) and hold no lock
 * of their own; the source's scan callback runs on a pinned snapshot of
 * the views, outside any lock, and only
 * filters and merges.
 */
#pragma once
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "config/config.h"
#include "core/agg.h"
#include "core/bucket.h"
#include "core/expr.h"
#include "core/jbuf.h"
#include "serving/serving.h"

#define QUERY_MAX_LIMIT 1000000

/* One decoded query parameter; bytes with lengths (values may hold NUL).
 * A parameter written without '=' has val == NULL. */
typedef struct {
    const char *key;
    size_t klen;
    const char *val;
    size_t vlen;
} qparam;

typedef struct {
    const char *s;
    size_t len;
} qstr;

/* filter on one dimension: the row matches when its value equals any of vals */
typedef struct {
    size_t dim;          /* index into the view's dimensions */
    qstr *vals;
    size_t nvals;
} qfilter;

typedef enum { FILL_NONE, FILL_ZERO, FILL_NULL } qfill;

/* A post-aggregation of metrics=...,name=<expression>: computed per answer
 * row from its metrics, rendered like a metric. */
typedef struct {
    char *name;          /* owned */
    expr *e;
} qpost;

/* A value that an expression over metrics (post-aggregation, having)
 * reads: a metric's state (metrics[m]; of a quantiles metric, quantile q:
 * "latency.p99") or a post-aggregation's value (post >= 0). */
typedef struct {
    int post;
    size_t m;
    double q;
} qslot;

/* What the answer renders, in request order: metrics[i] or posts[i]. */
typedef struct {
    bool post;
    size_t i;
} qitem;

typedef struct {
    const view_def *view;
    size_t view_idx;
    bool has_from, has_to;
    int64_t from, to;    /* epoch s; rows with from <= bucket < to */
    gran_t gran;         /* the unit segments are read at: the answer's unit, the
                            coarsest one nesting in its buckets (15m: minute); for
                            zoned days, weeks and months the hour or minute every
                            bucket start in [from, to) is a multiple of, else the
                            view's (query.c, zoned_read_gran; each level is checked) */
    bucket_spec bk;      /* the answer's buckets (granularity, tz) */
    char gran_text[16];  /* their name in the answer: "15m" ("auto" resolved) */
    tz *zone;            /* tz=...; NULL: UTC */
    const char *zone_name;   /* as given (points into the parameters) */
    size_t zone_len;
    qfill fill;
    /* where=: over dimensions, its field slots the dimensions' indexes */
    expr *where;
    size_t *where_dims;  /* the dimensions it reads */
    size_t nwhere_dims;
    size_t *group;       /* indexes into the view's dimensions, in group_by order */
    size_t ngroup;
    qfilter *filters;    /* one per distinct filtered dimension */
    size_t nfilters;
    size_t *metrics;     /* indexes into the view's metrics: the rendered ones, then
                            those only expressions read */
    size_t nmetrics;
    qpost *posts;        /* post-aggregations */
    size_t nposts;
    qitem *items;        /* what is rendered, in order */
    size_t nitems;
    qslot *slots;        /* the values expressions over metrics read */
    size_t nslots;
    expr *having;
    struct agg_layout *layout;   /* the result rows' states: the selected metrics */
    int order_by;        /* index into metrics[] (not the view's), -1: none */
    int order_post;      /* or index into posts[], -1: none */
    /* quantiles=0.5,0.99: what quantiles metrics render, and (pick) the
     * one an order_by of "metric.p99" reads; over qs and qnames (owned)
     * or the default 0.5,0.9,0.99 */
    agg_render_ctx rctx;
    double *qs;
    char **qnames;       /* nqnames entries, NULL or owned */
    size_t nqnames;
    bool asc;
    size_t limit;        /* 0: none */
    bool csv;            /* format=csv: the answer is CSV (serving/query_csv.c) */
    bool allow_partial;  /* partial=true: a fan-out answers without a shard that has no
                            healthy replica (serving/cluster.h) */
    size_t max_rows;     /* http.limits.max_rows: a larger answer is a 413; 0: none */
    /* The time budget: past deadline_ms (CLOCK_MONOTONIC ms; 0: none) the
     * query is abandoned with a 503 naming timeout_ms
     * (http.limits.query_timeout_ms); when *stop is set (the server stops)
     * too. Checked by query_run every 1024 rows scanned and between stages. */
    int timeout_ms;
    int64_t deadline_ms;
    const atomic_bool *stop;   /* NULL: never */
} query;

/* format=csv (query_csv.c): the header line, and one row's line (scratch:
 * a buffer for a metric's rendered JSON). query_csv_field writes one
 * field, quoted as RFC 4180 needs. */
void query_csv_header(jbuf *b, const query *q);
void query_csv_row(jbuf *b, const query *q, int64_t bucket, const dimval *dims,
                   const void *cells, jbuf *scratch);
void query_csv_field(jbuf *b, const char *s, size_t len);

/* An error for the client: HTTP status and message bytes (malloc'd). */
typedef struct {
    int status;
    char *msg;
    size_t len;
} qerror;

void qerror_clear(qerror *e);

/* Parses the parameters of a query on the view named (view, view_len).
 * q borrows from p (filter values point into it): keep p alive while q is
 * used. Returns 0, -EINVAL (err: 400 or 404) or -ENOMEM (err: 500). */
int query_parse(const config *cfg, const char *view, size_t view_len, const qparam *p,
                size_t np, query *q, qerror *err);
void query_clear(query *q);      /* accepts a zeroed query */

/* Runs q against src and appends the JSON answer to out. Returns 0, or a
 * negative code with err filled (500). */
int query_run(const query *q, const serving_source *src, jbuf *out, qerror *err);

/* Both steps: returns the HTTP status and sets *body (malloc'd JSON, the
 * answer or the error) and *len; *body is NULL only when out of memory.
 * The time budget starts now. */
int query_handle(const config *cfg, const serving_source *src, const char *view,
                 size_t view_len, const qparam *p, size_t np, char **body, size_t *len);

/* How one request runs (set by the HTTP layer). */
typedef struct {
    bool no_cache;             /* Cache-Control: no-cache: compute afresh, never
                                  read the cache (the answer may be stored) */
    int64_t deadline_ms;       /* CLOCK_MONOTONIC ms (the request's arrival +
                                  http.limits.query_timeout_ms); 0: from now */
    const atomic_bool *stop;   /* set when the server stops; NULL: never */
    struct cluster *cluster;   /* the other shards to ask (serving/cluster.h); NULL:
                                  this instance answers alone */
    bool expired;              /* out: abandoned past its deadline (a 503) */
    bool csv;                  /* out: the answer is CSV (format=csv) */
    serving_watermark wm;      /* out: the answer's watermark (status 200) */
    char *missing_shards;      /* out: of a partial=true answer, the shards missing
                                  (comma-separated, malloc'd; the caller frees) */
} query_opts;

/* The partial answer of this instance's shard (named shard) for a fan-out
 * (GET /v1/internal/views/{view}/partial, serving/partial.h): the result
 * table's rows and states before anything is rendered. Errors as
 * query_handle (JSON); a 200's body is binary. Never cached, never fans
 * out further. */
int query_handle_partial(const config *cfg, const serving_source *src, const char *shard,
                         const char *view, size_t view_len, const qparam *p, size_t np,
                         query_opts *o, char **body, size_t *len);

/* The same, with the exact answer cache (serving/qcache.h; NULL: none) and
 * the request's options (NULL: defaults). */
struct qcache;
int query_handle_cached(const config *cfg, const serving_source *src, struct qcache *cache,
                        const char *view, size_t view_len, const qparam *p, size_t np,
                        query_opts *o, char **body, size_t *len);
