/* http.c - the libmicrohttpd server: listening socket, TLS, request
 * plumbing, auth, CORS, limits, HTTP metrics, and handing each request to
 * api_dispatch(), directly or through the query pool.
 *
 * Threads: serving_start/serving_swap/serving_stop run on the daemon's
 * main thread; requests run on libmicrohttpd's threads (cfg->http_threads
 * epoll threads, each serving many connections, so a slow client holds a
 * connection but never a thread). Each request owns a small req_state
 * (freed by on_completed) and each connection a conn_slot (conns.c, which
 * locks its counts).
 *
 * Generations (a reload without a gap): what a request reads (the config
 * of the moment, the source, the answer cache) is one generation. A
 * request takes a reference to the current one when its headers arrive
 * and drops it when it completes, so it sees one config and one source
 * from start to end. serving_swap makes a new generation current and
 * waits until no request holds the old one; the listening socket, the
 * threads and the connections stay. The settings fixed at start (listen
 * address, TLS, threads, connection limits, query pool) are the ones
 * serving_swap_blocker names.
 *
 * Queries (api_pooled) run on the query pool (qpool.h,
 * serving.query_threads), never on these threads, so however many heavy
 * queries run, /healthz, /readyz, /metrics and /v1/status answer at once.
 * The peers' partial answers (/v1/internal/...) run on a pool of their
 * own of the same size: a fan-out query holds its pool thread while it
 * waits for its peers, so two instances fanning out to each other with
 * one pool would wait for each other's threads until their deadlines.
 * The last call of a query's request suspends its connection and submits
 * a job (a copy of the request); a pool thread runs it, stores the reply
 * in the job, sets job->finished and resumes the connection, which makes
 * libmicrohttpd call on_request again on one of its threads: that call
 * queues the reply. The job belongs to the req_state from then on and is
 * freed with it. libmicrohttpd does not notice a client that hangs up
 * while its connection is suspended: the query runs (within its time
 * budget), and the reply fails to send. Stopping: the stopping flag makes
 * running queries end at their next check, qpool_stop answers the queued
 * ones 503 and waits for every job's resume, and only then does
 * MHD_stop_daemon run (libmicrohttpd must not stop with a connection
 * still suspended).
 *
 * Checks, in order, before anything is buffered (http.limits.* in the
 * config):
 *  - a connection over max_connections (503) or max_connections_per_ip
 *    (429) gets a JSON error to its first request and is closed.
 *    libmicrohttpd itself refuses connections from one address a quarter
 *    (at least 8) beyond max_connections_per_ip, so a client that never
 *    sends a request holds at most that many; its total limit is as much
 *    beyond max_connections, times the threads (it splits the total among
 *    them, and one thread may get most connections);
 *  - a query string over max_query_bytes is a 413 (seen in the URI
 *    callback, before arguments are parsed);
 *  - with CORS on, OPTIONS is a preflight: 204 with the allowed methods
 *    and headers, no auth (browsers send no credentials in a preflight);
 *  - a route that needs the bearer token (auth.c) without it: 401;
 *  - a body over max_body_bytes is a 413 when its Content-Length says so,
 *    and a chunked body that grows past it closes the connection. Smaller
 *    bodies are kept for the routes that take one (api_takes_body: POST
 *    routes, such as the Grafana routes' JSON) and discarded otherwise.
 *    An import's body (api_spools_body) goes to a spool file instead,
 *    bounded by the disk (see below).
 * Request lines and headers beyond the connection memory limit are refused
 * by libmicrohttpd itself (414/431, its own body). A connection idle for
 * connection_timeout_s is closed.
 *
 * We bind the socket ourselves and pass it with MHD_OPTION_LISTEN_SOCKET:
 * that way a failure to listen reports the real errno ("Address already in
 * use") instead of a NULL daemon.
 */
#include "serving/serving.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <libgen.h>
#include <time.h>
#include <netinet/in.h>
#include <unistd.h>
#include <microhttpd.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/strutil.h"
#include "serving/qcache.h"
#include "serving/qpool.h"
#include "serving/api.h"
#include "serving/cluster.h"
#include "serving/auth.h"
#include "serving/conns.h"

#define CONN_MEMORY_BASE   (32 * 1024)   /* request line and headers, plus the query string */
#define LISTEN_BACKLOG     1024
#define QCACHE_MAX_ROWS    50000         /* answers with more rows are not cached */
#define TLS_PRIORITIES     "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

METRIC_COUNTER(m_requests, "lambdad_http_requests_total",
               "HTTP requests answered, by route pattern and status code.", "route", "code");
METRIC_HISTOGRAM(m_duration, "lambdad_http_request_duration_seconds",
                 "Time from a request's headers to its answer, by route pattern.",
                 metrics_buckets_latency, "route");
METRIC_GAUGE(m_in_flight, "lambdad_http_requests_in_flight",
             "HTTP requests whose headers are read and whose answer is not sent yet.");
METRIC_GAUGE(m_connections, "lambdad_http_connections", "Open HTTP connections.");
METRIC_COUNTER(m_refused, "lambdad_http_connections_refused_total",
               "Connections answered with an error for being over a connection limit, by limit.",
               "limit");
METRIC_COUNTER(m_query_rejected, "lambdad_query_rejected_total",
               "Queries answered 503 because serving.query_queue queries were waiting already.");

/* What a request reads, from its headers to its completion. */
typedef struct generation {
    api_ctx api;             /* its cfg, source and answer cache */
    char *msg_body;          /* the 413 message for its body limit */
    int refs;                /* requests holding it; under gen_mu */
} generation;

/* The settings read when the server starts, fixed for its life: a copy,
 * because the config they came from goes at the next reload. */
typedef struct {
    char *host, *tls_cert, *tls_key;
    int port, threads, max_connections, max_connections_per_ip, max_query_bytes,
        connection_timeout_s, query_threads, query_queue;
} fixed_settings;

struct serving {
    struct MHD_Daemon *mhd;
    fixed_settings fixed;
    pthread_mutex_t gen_mu;
    pthread_cond_t gen_cv;   /* a generation's last request completed */
    generation *gen;         /* the current one */
    conns *conns;
    qpool *pool;
    qpool *peer_pool;                      /* the peers' partial answers */
    atomic_bool stopping;                  /* serving_stop began: queries end */
    atomic_uint_fast64_t query_timeouts;   /* for /v1/status */
    int64_t started_ms;                    /* for uptime_s */
    int port;
    /* the fixed limits' error messages, written once */
    char *msg_query, *msg_total, *msg_per_ip, *msg_queue;
};

/* A query on the pool: a copy of the request, and its reply. */
typedef struct {
    qjob base;                   /* first: the pool's part */
    serving *s;
    const api_ctx *api;          /* the request's generation's */
    struct MHD_Connection *con;  /* suspended while the job is in the pool */
    api_request rq;              /* points into buf and params */
    qparam *params;
    char *buf;
    api_reply reply;
    atomic_bool finished;        /* reply set; the connection is being resumed */
} http_job;

typedef struct {
    uint64_t body_bytes;     /* request body read so far */
    bool takes_body;         /* api_takes_body(), asked once: the body is kept in body */
    char *body;              /* NUL-terminated; NULL until the first piece */
    size_t body_cap;
    bool spooled;            /* api_spools_body: the body goes to spool_fd */
    int spool_fd;            /* -1 until the first piece */
    int spool_errno;         /* the spool file could not be written: why */
    struct timespec t0;      /* when the headers were in */
    const char *route;       /* api_route(): the metrics' label */
    http_job *job;           /* the query handed to the pool, freed with this */
    generation *gen;         /* referenced until on_completed */
} req_state;

static generation *gen_acquire(serving *s);
static void gen_release(serving *s, generation *g);

/* The URI callback returns this marker when the query string is over the
 * limit: it allocates nothing, because libmicrohttpd calls on_completed
 * only for requests that reached on_request, which replaces the marker
 * with a req_state. */
static char uri_too_long;

static const char oom_body[] = "{\"error\":{\"status\":500,\"message\":\"out of memory\"}}";

static double seconds_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Counts the answer in the HTTP metrics. */
static void count_reply(const req_state *st, unsigned status)
{
    char code[16];
    snprintf(code, sizeof(code), "%u", status);
    metrics_counter_add(&m_requests, METRIC_LABELS(st->route, code), 1);
    metrics_observe(&m_duration, METRIC_LABELS(st->route), seconds_since(&st->t0));
}

static void add_cors(const req_state *st, struct MHD_Response *resp)
{
    const char *origin = st && st->gen ? st->gen->api.cfg->http_cors_origin : NULL;
    if (!origin)
        return;
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", origin);
    /* A fixed origin is a per-origin answer to caches; "*" is the same for all. */
    if (strcmp(origin, "*") != 0)
        MHD_add_response_header(resp, "Vary", "Origin");
}

static enum MHD_Result queue(const serving *s, struct MHD_Connection *con, const req_state *st,
                             unsigned status, struct MHD_Response *resp)
{
    add_cors(st, resp);
    enum MHD_Result ret = MHD_queue_response(con, status, resp);
    MHD_destroy_response(resp);
    if (ret == MHD_YES && st)
        count_reply(st, status);
    return ret;
}

/* A query answer's watermark, also in headers: a CSV answer has no other
 * place for it, and a client can read it without parsing the body. */
static void add_watermark_headers(struct MHD_Response *resp, const serving_watermark *wm)
{
    char v[48];
    snprintf(v, sizeof(v), "%lld", (long long)wm->batch_seq);
    MHD_add_response_header(resp, "X-Lambdad-Batch-Seq", v);
    if (wm->batch_at) {
        time_format_rfc3339(wm->batch_at, v, sizeof(v));
        MHD_add_response_header(resp, "X-Lambdad-Batch-At", v);
    }
    snprintf(v, sizeof(v), "%lld", (long long)wm->live_events);
    MHD_add_response_header(resp, "X-Lambdad-Live-Events", v);
    if (wm->unreadable_events > 0) {
        snprintf(v, sizeof(v), "%lld", (long long)wm->unreadable_events);
        MHD_add_response_header(resp, "X-Lambdad-Unreadable-Events", v);
    }
}

/* Sends r (freeing its body); close asks for the connection to be closed
 * after the answer. */
static enum MHD_Result send_reply(const serving *s, struct MHD_Connection *con,
                                  const req_state *st, api_reply *r, bool close)
{
    struct MHD_Response *resp;
    if (r->body) {
        /* ownership of the body moves to the response (freed with free()) */
        resp = MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_FREE);
        if (resp)
            r->body = NULL;
    } else {
        r->status = 500;
        r->content_type = NULL;
        resp = MHD_create_response_from_buffer(strlen(oom_body), (void *)oom_body,
                                               MHD_RESPMEM_PERSISTENT);
    }
    if (!resp) {
        api_reply_clear(r);
        return MHD_NO;     /* closes the connection */
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            r->content_type ? r->content_type : "application/json");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
                            r->cache_control ? r->cache_control : "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (r->etag)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, r->etag);
    if (r->html) {
        /* the web UI: its own scripts only, no framing, and the API on the
         * same origin; inline styles because dygraphs colours its legend
         * with style attributes */
        MHD_add_response_header(resp, "Content-Security-Policy",
                                "default-src 'none'; script-src 'self'; "
                                "style-src 'self' 'unsafe-inline'; "
                                "img-src 'self' data:; connect-src 'self'; "
                                "frame-ancestors 'none'; base-uri 'none'; form-action 'none'");
        MHD_add_response_header(resp, "X-Frame-Options", "DENY");
        MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    }
    if (r->allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    if (r->has_wm)
        add_watermark_headers(resp, &r->wm);
    if (r->missing_shards)
        MHD_add_response_header(resp, "X-Lambdad-Missing-Shards", r->missing_shards);
    if (r->status == 503 || r->status == 429)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (r->status == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (close)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    unsigned status = (unsigned)r->status;
    api_reply_clear(r);
    return queue(s, con, st, status, resp);
}

static enum MHD_Result send_error(const serving *s, struct MHD_Connection *con,
                                  const req_state *st, int status, const char *msg, bool close)
{
    api_reply r = {0};
    if (!msg)
        msg = "out of memory";
    api_error(&r, status, msg, strlen(msg));
    return send_reply(s, con, st, &r, close);
}

/* The answer to a CORS preflight: who may call, with what. */
static enum MHD_Result send_preflight(const serving *s, struct MHD_Connection *con,
                                      const req_state *st)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, (void *)"",
                                                                MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, HEAD, POST, OPTIONS");
    MHD_add_response_header(resp, "Access-Control-Allow-Headers", "Authorization, Content-Type");
    MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    return queue(s, con, st, MHD_HTTP_NO_CONTENT, resp);
}

typedef struct {
    qparam *p;
    size_t n, cap;
    bool oom;
} param_list;

static enum MHD_Result collect_param(void *cls, enum MHD_ValueKind kind, const char *key,
                                     size_t key_size, const char *value, size_t value_size)
{
    param_list *l = cls;
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 16;
        qparam *np = realloc(l->p, ncap * sizeof(*np));
        if (!np) {
            l->oom = true;
            return MHD_NO;
        }
        l->p = np;
        l->cap = ncap;
    }
    l->p[l->n++] = (qparam){.key = key, .klen = key_size, .val = value, .vlen = value_size};
    return MHD_YES;
}

/* The absolute form "http://host/path" (RFC 9112 3.2.2) names /path. */
static const char *path_of(const char *url)
{
    if (strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0) {
        const char *path = strchr(strstr(url, "//") + 2, '/');
        return path ? path : "/";
    }
    return url;
}

/* ---- queries on the pool ---- */

static void job_free(http_job *j)
{
    if (!j)
        return;
    api_reply_clear(&j->reply);
    free(j->params);
    free(j->buf);
    free(j);
}

/* A pool thread. */
static void job_run(qjob *qj)
{
    http_job *j = (http_job *)qj;
    api_dispatch(j->api, &j->rq, &j->reply);
}

/* A pool thread (or the one stopping the pool, ran false): hands the
 * reply to on_request by resuming the connection. */
static void job_done(qjob *qj, bool ran)
{
    http_job *j = (http_job *)qj;
    if (!ran) {
        static const char msg[] = "the server is stopping; retry shortly";
        api_error(&j->reply, 503, msg, strlen(msg));
    }
    struct MHD_Connection *con = j->con;
    /* From here on the MHD thread that resumes the connection reads the
     * reply and frees the job: nothing below may touch j. */
    atomic_store_explicit(&j->finished, true, memory_order_release);
    MHD_resume_connection(con);
}

/* Whether Cache-Control lists no-cache (a comma-separated list of
 * directives, case-insensitive). */
static bool wants_no_cache(struct MHD_Connection *con)
{
    const char *v = MHD_lookup_connection_value(con, MHD_HEADER_KIND,
                                                MHD_HTTP_HEADER_CACHE_CONTROL);
    for (const char *p = v; p && *p;) {
        p += strspn(p, " \t,");
        size_t n = strcspn(p, " \t,=");
        if (n == 8 && strncasecmp(p, "no-cache", 8) == 0)
            return true;
        p += strcspn(p, ",");
    }
    return false;
}

/* X-Lambdad-Budget-Ms of a peer's request (serving/cluster.c): the ms
 * its query has left, so that this part ends when nobody waits for it
 * any more. 0: none or not a number. */
static int64_t peer_budget_ms(struct MHD_Connection *con, const char *path)
{
    const char *v = auth_internal(path) ? MHD_lookup_connection_value(con, MHD_HEADER_KIND,
                                                                       "X-Lambdad-Budget-Ms")
                                        : NULL;
    char *end;
    long long ms = v ? strtoll(v, &end, 10) : 0;
    return v && *v && !*end && ms > 0 && ms <= 3600000 ? ms : 0;
}

/* A copy of the request for a pool thread: libmicrohttpd's strings belong
 * to the connection, the job's to the job. NULL when out of memory. */
static http_job *job_new(serving *s, struct MHD_Connection *con, const api_request *rq,
                         const req_state *st)
{
    http_job *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    size_t size = strlen(rq->method) + strlen(rq->path) + 2 +
                  (rq->body ? rq->body_len + 1 : 0) +
                  (rq->if_none_match ? strlen(rq->if_none_match) + 1 : 0);
    for (size_t i = 0; i < rq->np; i++)
        size += rq->p[i].klen + 1 + (rq->p[i].val ? rq->p[i].vlen + 1 : 0);
    j->buf = malloc(size);
    j->params = calloc(rq->np ? rq->np : 1, sizeof(*j->params));
    if (!j->buf || !j->params) {
        job_free(j);
        return NULL;
    }
    char *p = j->buf;
#define COPY(dst, src, n) do { memcpy(p, (src), (n)); p[(n)] = '\0'; (dst) = p; p += (n) + 1; } while (0)
    COPY(j->rq.method, rq->method, strlen(rq->method));
    COPY(j->rq.path, rq->path, strlen(rq->path));
    for (size_t i = 0; i < rq->np; i++) {
        qparam *q = &j->params[i];
        q->klen = rq->p[i].klen;
        COPY(q->key, rq->p[i].key, q->klen);
        if (rq->p[i].val) {   /* a parameter without '=' keeps its NULL value */
            q->vlen = rq->p[i].vlen;
            COPY(q->val, rq->p[i].val, q->vlen);
        }
    }
    if (rq->body) {
        COPY(j->rq.body, rq->body, rq->body_len);
        j->rq.body_len = rq->body_len;
    }
    if (rq->if_none_match)
        COPY(j->rq.if_none_match, rq->if_none_match, strlen(rq->if_none_match));
#undef COPY
    j->rq.p = j->params;
    j->rq.np = rq->np;
    j->rq.no_cache = rq->no_cache;
    j->rq.has_body_fd = rq->has_body_fd;
    j->rq.body_fd = rq->body_fd;   /* the req_state's, closed after the job */
    int64_t budget = st->gen->api.cfg->http_query_timeout_ms;
    if (rq->budget_ms && rq->budget_ms < budget)
        budget = rq->budget_ms;
    j->rq.deadline_ms = (int64_t)st->t0.tv_sec * 1000 + st->t0.tv_nsec / 1000000 + budget;
    j->s = s;
    j->api = &st->gen->api;
    j->con = con;
    j->base.run = job_run;
    j->base.done = job_done;
    return j;
}

/* The last call of a query's request: hands it to the pool, or answers
 * 503 when too many wait. */
static enum MHD_Result submit_query(serving *s, struct MHD_Connection *con, req_state *st,
                                    const api_request *rq)
{
    http_job *j = job_new(s, con, rq, st);
    if (!j)
        return send_error(s, con, st, 500, "out of memory", false);
    /* Suspended before the job is visible to a pool thread, so that its
     * resume always comes after. */
    MHD_suspend_connection(con);
    int rc = qpool_submit(auth_internal(rq->path) ? s->peer_pool : s->pool, &j->base);
    if (rc < 0) {
        /* Not queued: answered by the call that follows the resume, like
         * any job, so every reply to a suspended connection takes one path. */
        if (rc == -EAGAIN) {
            metrics_counter_add(&m_query_rejected, NULL, 1);
            api_error(&j->reply, 503, s->msg_queue, strlen(s->msg_queue));
        } else {
            static const char msg[] = "the server is stopping; retry shortly";
            api_error(&j->reply, 503, msg, strlen(msg));
        }
        atomic_store_explicit(&j->finished, true, memory_order_release);
        st->job = j;
        MHD_resume_connection(con);
        return MHD_YES;
    }
    st->job = j;   /* read by on_request after the resume; freed by on_completed */
    return MHD_YES;
}

/* The call after a query's job resumed the connection: its reply. */
static enum MHD_Result send_job_reply(serving *s, struct MHD_Connection *con, req_state *st)
{
    http_job *j = st->job;
    if (!atomic_load_explicit(&j->finished, memory_order_acquire)) {
        /* libmicrohttpd calls again only after the resume, which follows
         * finished: never reached; closing is the safe answer */
        log_error("HTTP: query reply asked for before its job finished");
        return MHD_NO;
    }
    api_reply *r = &j->reply;
    if (r->status >= 500 && r->status != 503)
        log_warn("HTTP %s %s: %d %.*s", j->rq.method, j->rq.path, r->status,
                 r->body ? (int)r->len : 0, r->body ? r->body : "");
    return send_reply(s, con, st, r, false);
}

/* ---- request bodies kept on disk (imports) ----
 *
 * An import's body may be far larger than memory, so it is not buffered:
 * each piece is written to an unlinked file in the archive's directory as
 * it arrives (the file vanishes with its descriptor, also on a crash),
 * and the import reads that file twice (import/import.h). Its bound is the
 * disk, not http.limits.max_body_bytes: an announced length that does not
 * fit in the free space (keeping 1% or 64 MiB for the archive) is a 413
 * before a byte is read, a body that fills the disk anyway a 503. */

static char *spool_dir(const req_state *st)
{
    char *copy = strdup(st->gen->api.cfg->archive_path);
    char *dir = copy ? strdup(dirname(copy)) : NULL;
    free(copy);
    return dir;
}

static enum MHD_Result check_spool_room(serving *s, struct MHD_Connection *con,
                                        const req_state *st, unsigned long long len)
{
    char *dir = spool_dir(st);
    struct statvfs vfs;
    if (!dir || statvfs(dir, &vfs) < 0) {
        free(dir);
        return MHD_YES;   /* cannot tell: writing will */
    }
    free(dir);
    unsigned long long avail = (unsigned long long)vfs.f_bavail * vfs.f_frsize;
    unsigned long long keep = (unsigned long long)vfs.f_blocks * vfs.f_frsize / 100;
    if (keep < (64ull << 20))
        keep = 64ull << 20;
    if (len + keep <= avail)
        return MHD_YES;
    char msg[200];
    snprintf(msg, sizeof(msg), "an import body of %llu bytes does not fit on the archive's disk "
             "(%llu bytes free)", len, avail);
    return send_error(s, con, st, 413, msg, false);
}

/* Appends a piece of the body to the spool file (created at the first). */
static void spool_write(serving *s, req_state *st, const char *data, size_t len)
{
    if (st->spool_errno)
        return;   /* read and dropped: the answer is the error */
    if (st->spool_fd < 0) {
        char *dir = spool_dir(st);
        st->spool_fd = dir ? open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600) : -1;
        if (st->spool_fd < 0 && dir) {
            /* a file system without O_TMPFILE: a named file, unlinked at once */
            char *tmpl = str_printf("%s/.lambdad-import-XXXXXX", dir);
            st->spool_fd = tmpl ? mkostemp(tmpl, O_CLOEXEC) : -1;
            if (st->spool_fd >= 0)
                unlink(tmpl);
            free(tmpl);
        }
        if (st->spool_fd < 0)
            st->spool_errno = dir ? errno : ENOMEM;
        free(dir);
        if (st->spool_fd < 0)
            return;
    }
    while (len > 0) {
        ssize_t n = write(st->spool_fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            st->spool_errno = errno;
            return;
        }
        data += n;
        len -= (size_t)n;
    }
}

/* First call of a request, with its headers: the checks that come before
 * reading a body. */
static enum MHD_Result on_headers(serving *s, struct MHD_Connection *con, const char *path,
                                  const char *method, bool query_too_long, req_state *st)
{
    const config *cfg = st->gen->api.cfg;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(con, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    conn_verdict v = conns_verdict(ci ? ci->socket_context : NULL);
    if (v == CONN_OVER_TOTAL)
        return send_error(s, con, st, 503, s->msg_total, true);
    if (v == CONN_OVER_IP)
        return send_error(s, con, st, 429, s->msg_per_ip, true);
    if (query_too_long)
        return send_error(s, con, st, 413, s->msg_query, false);
    if (cfg->http_cors_origin && strcmp(method, "OPTIONS") == 0)
        return send_preflight(s, con, st);
    const char *authz = MHD_lookup_connection_value(con, MHD_HEADER_KIND,
                                                    MHD_HTTP_HEADER_AUTHORIZATION);
    /* The peers' route takes the cluster's token when there is one
     * (serving/cluster.h), else what the other query routes take. */
    bool internal = auth_internal(path) && cfg->cluster_token;
    if (internal ? !auth_header_ok(authz, cfg->cluster_token)
                 : cfg->http_auth_token && auth_required(path, cfg->http_auth_protect) &&
                       !auth_header_ok(authz, cfg->http_auth_token))
        return send_error(s, con, st, 401, "missing or invalid bearer token", false);
    /* refuse an announced oversized body before reading it */
    const char *cl = MHD_lookup_connection_value(con, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (st->takes_body && api_spools_body(method, path)) {   /* a POST route */
        st->spooled = true;
        return cl ? check_spool_room(s, con, st, strtoull(cl, NULL, 10)) : MHD_YES;
    }
    if (cl && strtoull(cl, NULL, 10) > (unsigned long long)cfg->http_max_body_bytes)
        return send_error(s, con, st, 413, st->gen->msg_body, false);
    return MHD_YES;
}

/* A pool thread: called once with the headers, once per body piece, then
 * once more with *upload_data_size == 0 when the request is complete. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *con, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **req_cls)
{
    serving *s = cls;
    const char *path = path_of(url);
    req_state *st = *req_cls;
    if (!st || *req_cls == &uri_too_long) {
        bool too_long = *req_cls == &uri_too_long;
        if (!(st = calloc(1, sizeof(*st))))
            return MHD_NO;
        st->spool_fd = -1;
        clock_gettime(CLOCK_MONOTONIC, &st->t0);
        st->route = api_route(path);
        /* only POST routes take a body: a GET costs no route lookup */
        st->takes_body = strcmp(method, "POST") == 0 && api_takes_body(method, path);
        st->gen = gen_acquire(s);
        *req_cls = st;   /* freed by on_completed */
        metrics_gauge_add(&m_in_flight, NULL, 1);
        return on_headers(s, con, path, method, too_long, st);
    }
    if (*upload_data_size && st->spooled) {
        spool_write(s, st, upload_data, *upload_data_size);
        st->body_bytes += *upload_data_size;
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (st->body_bytes + n > (uint64_t)st->gen->api.cfg->http_max_body_bytes)
            return MHD_NO;       /* a chunked body past the limit: close */
        if (st->takes_body) {
            size_t need = (size_t)st->body_bytes + n + 1;   /* at most max_body_bytes + 1 */
            if (need > st->body_cap) {
                size_t cap = st->body_cap ? st->body_cap * 2 : 4096;
                char *nb = realloc(st->body, cap > need ? cap : need);
                if (!nb)
                    return MHD_NO;
                st->body = nb;
                st->body_cap = cap > need ? cap : need;
            }
            memcpy(st->body + st->body_bytes, upload_data, n);
            st->body[st->body_bytes + n] = '\0';
        }                        /* else discarded: the route takes no body */
        st->body_bytes += n;
        return MHD_YES;
    }

    if (st->job)
        return send_job_reply(s, con, st);

    param_list params = {0};
    MHD_get_connection_values_n(con, MHD_GET_ARGUMENT_KIND, collect_param, &params);
    api_request rq = {.method = method, .path = path, .p = params.p, .np = params.n,
                      .no_cache = wants_no_cache(con),
                      .budget_ms = peer_budget_ms(con, path),
                      .body = st->body ? st->body : (st->takes_body ? "" : NULL),
                      .body_len = st->body ? (size_t)st->body_bytes : 0,
                      .if_none_match = MHD_lookup_connection_value(con, MHD_HEADER_KIND,
                                                                   MHD_HTTP_HEADER_IF_NONE_MATCH)};
    api_reply r = {0};
    if (st->spooled) {
        /* the body is on disk: an import runs as long as it takes, on the
         * query pool, never on this thread */
        if (st->spool_errno || (st->spool_fd >= 0 && lseek(st->spool_fd, 0, SEEK_SET) < 0)) {
            int e = st->spool_errno ? st->spool_errno : errno;
            char msg[200];
            snprintf(msg, sizeof(msg), "cannot keep the import body on the archive's disk: %s",
                     strerror(e));
            free(params.p);
            return send_error(s, con, st, 503, msg, false);
        }
        if (st->spool_fd < 0)
            st->spool_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);   /* an empty body */
        rq.has_body_fd = st->spool_fd >= 0;
        rq.body_fd = st->spool_fd;
    }
    if (params.oom) {
        api_error(&r, 500, "out of memory", strlen("out of memory"));
    } else if (s->pool && (api_pooled(method, path) || st->spooled)) {
        enum MHD_Result ret = submit_query(s, con, st, &rq);
        free(params.p);
        return ret;
    } else {
        api_dispatch(&st->gen->api, &rq, &r);
    }
    free(params.p);
    if (r.status >= 500 && r.status != 503)
        log_warn("HTTP %s %s: %d %.*s", method, path, r.status, r.body ? (int)r.len : 0,
                 r.body ? r.body : "");
    return send_reply(s, con, st, &r, false);
}

/* A pool thread: the request is over (answered, failed or timed out). */
static void on_completed(void *cls, struct MHD_Connection *con, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    serving *s = cls;
    if (*req_cls && *req_cls != &uri_too_long) {
        req_state *st = *req_cls;
        metrics_gauge_add(&m_in_flight, NULL, -1);
        if (st->spool_fd >= 0)
            close(st->spool_fd);   /* after the job: it reads the file */
        /* A job is always finished here: libmicrohttpd ends a request only
         * once its connection runs again, and only the job's done resumes
         * it (serving_stop stops the pool before the daemon). */
        job_free(st->job);
        free(st->body);
        gen_release(s, st->gen);
        free(st);
    }
    *req_cls = NULL;
}

/* A pool thread, before the URI is parsed: the raw request target. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *con)
{
    const serving *s = cls;
    const char *q = strchr(uri, '?');
    if (q && strlen(q + 1) > (size_t)s->fixed.max_query_bytes)
        return &uri_too_long;
    return NULL;
}

/* A pool thread: a connection was accepted or closed. */
static void on_connection(void *cls, struct MHD_Connection *con, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    serving *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(con, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        conn_slot *slot = NULL;
        conn_verdict v = conns_open(s->conns, ci ? ci->client_addr : NULL, &slot);
        *socket_context = slot;   /* released below, when the connection closes */
        metrics_gauge_add(&m_connections, NULL, 1);
        if (v != CONN_OK)
            metrics_counter_add(&m_refused, METRIC_LABELS(v == CONN_OVER_TOTAL
                                                              ? "max_connections"
                                                              : "max_connections_per_ip"), 1);
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        conns_close(s->conns, *socket_context);
        *socket_context = NULL;
        metrics_gauge_add(&m_connections, NULL, -1);
    }
}

/* libmicrohttpd's own lines. Refusing connections over a limit, it says
 * so once per connection (and "connection limit" for the per-address one
 * too): a burst of refusals is one line per 10 s with a count, and the
 * refusals by limit are counted exactly in
 * lambdad_http_connections_refused_total. */
__attribute__((format(printf, 2, 0)))
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == ' '))
        line[--n] = '\0';
    int held = 0;
    if (log_flood("libmicrohttpd", line, &held))
        return;
    if (held)
        log_warn("libmicrohttpd: %s (%d similar line(s) held back)", line, held);
    else
        log_warn("libmicrohttpd: %s", line);
}

static char *addr_text(const char *host, int port)
{
    char *s = NULL;
    if (asprintf(&s, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port) < 0)
        return NULL;
    return s;
}

static char *listen_error(const char *host, int port, const char *why)
{
    char *addr = addr_text(host, port), *s = NULL;
    if (asprintf(&s, "cannot listen on %s: %s", addr ? addr : host, why) < 0)
        s = NULL;
    free(addr);
    return s;
}

/* Binds and listens on host:port; returns the socket or a negative errno. */
static int open_listener(const char *host, int port, int *family, char **errmsg)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        *errmsg = listen_error(host, port, gai_strerror(rc));
        return rc == EAI_MEMORY ? -ENOMEM : -EINVAL;
    }
    int err = EADDRNOTAVAIL;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                        ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, LISTEN_BACKLOG) == 0) {
            *family = ai->ai_family;
            freeaddrinfo(res);
            return fd;
        }
        err = errno;
        close(fd);
    }
    freeaddrinfo(res);
    *errmsg = listen_error(host, port, strerror(err));
    return -err;
}

/* libmicrohttpd's own hard limit, past ours: room for the connections
 * that get our JSON error, bounded. */
static unsigned hard_limit(int limit)
{
    unsigned extra = (unsigned)limit / 4;
    return (unsigned)limit + (extra < 8 ? 8 : extra);
}

static int write_messages(serving *s, const config *c)
{
    if (asprintf(&s->msg_query, "query string too long (limit %d bytes)",
                 c->http_max_query_bytes) < 0)
        s->msg_query = NULL;
    if (asprintf(&s->msg_total, "too many open connections (http.limits.max_connections = %d)",
                 c->http_max_connections) < 0)
        s->msg_total = NULL;
    if (asprintf(&s->msg_per_ip, "too many open connections from your address "
                 "(http.limits.max_connections_per_ip = %d)", c->http_max_connections_per_ip) < 0)
        s->msg_per_ip = NULL;
    if (asprintf(&s->msg_queue, "too many queries waiting (serving.query_queue = %d); "
                 "retry shortly", c->serving_query_queue) < 0)
        s->msg_queue = NULL;
    return s->msg_query && s->msg_total && s->msg_per_ip && s->msg_queue ? 0 : -ENOMEM;
}

static int keep_fixed(fixed_settings *f, const config *c)
{
    *f = (fixed_settings){.port = c->http_port, .threads = c->http_threads,
                          .max_connections = c->http_max_connections,
                          .max_connections_per_ip = c->http_max_connections_per_ip,
                          .max_query_bytes = c->http_max_query_bytes,
                          .connection_timeout_s = c->http_connection_timeout_s,
                          .query_threads = c->serving_query_threads,
                          .query_queue = c->serving_query_queue,
                          .host = strdup(c->http_host),
                          .tls_cert = c->http_tls_cert ? strdup(c->http_tls_cert) : NULL,
                          .tls_key = c->http_tls_key ? strdup(c->http_tls_key) : NULL};
    if (!f->host || (c->http_tls_cert && !f->tls_cert) || (c->http_tls_key && !f->tls_key))
        return -ENOMEM;
    return 0;
}

static void gen_free(generation *g)
{
    if (!g)
        return;
    qcache_free(g->api.cache);
    cluster_free(g->api.cluster);
    free(g->msg_body);
    free(g);
}

/* A generation reading src under cfg; NULL when out of memory. */
static generation *gen_new(serving *s, const config *cfg, const serving_source *src)
{
    generation *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    g->api = (api_ctx){.cfg = cfg, .src = src, .started_ms = s->started_ms, .pool = s->pool,
                       .cache = qcache_new((size_t)cfg->serving_answer_cache_mb << 20,
                                           QCACHE_MAX_ROWS),
                       .stopping = &s->stopping, .query_timeouts = &s->query_timeouts};
    if (asprintf(&g->msg_body, "request body too large (limit %d bytes)",
                 cfg->http_max_body_bytes) < 0)
        g->msg_body = NULL;
    if (!g->api.cache || !g->msg_body || cluster_new(cfg, &g->api.cluster) < 0) {
        gen_free(g);
        return NULL;
    }
    return g;
}

static generation *gen_acquire(serving *s)
{
    pthread_mutex_lock(&s->gen_mu);
    generation *g = s->gen;
    g->refs++;
    pthread_mutex_unlock(&s->gen_mu);
    return g;
}

static void gen_release(serving *s, generation *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&s->gen_mu);
    if (--g->refs == 0 && g != s->gen)
        pthread_cond_broadcast(&s->gen_cv);   /* serving_swap waits for this */
    pthread_mutex_unlock(&s->gen_mu);
}

static void serving_free(serving *s)
{
    qpool_free(s->pool);
    qpool_free(s->peer_pool);
    gen_free(s->gen);
    pthread_mutex_destroy(&s->gen_mu);
    pthread_cond_destroy(&s->gen_cv);
    conns_free(s->conns);
    free(s->fixed.host);
    free(s->fixed.tls_cert);
    free(s->fixed.tls_key);
    free(s->msg_query);
    free(s->msg_total);
    free(s->msg_per_ip);
    free(s->msg_queue);
    free(s);
}

int serving_start(const config *cfg, const serving_source *src, serving **out, char **errmsg)
{
    *out = NULL;
    *errmsg = NULL;
    int family = AF_INET, rc;
    bool tls = cfg->http_tls_cert && cfg->http_tls_key;
    if (tls && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        *errmsg = strdup("http.tls is set, but this libmicrohttpd was built without TLS support");
        return -ENOTSUP;
    }
    serving *s = calloc(1, sizeof(*s));
    if (!s) {
        *errmsg = strdup("out of memory");
        return -ENOMEM;
    }
    pthread_mutex_init(&s->gen_mu, NULL);   /* first: serving_free destroys them */
    pthread_cond_init(&s->gen_cv, NULL);
    if ((rc = keep_fixed(&s->fixed, cfg)) < 0) {
        *errmsg = strdup("out of memory");
        serving_free(s);
        return rc;
    }
    s->started_ms = api_now_ms();
    if ((rc = qpool_new((size_t)cfg->serving_query_threads, (size_t)cfg->serving_query_queue,
                        &s->pool)) < 0 ||
        (rc = qpool_new((size_t)cfg->serving_query_threads, (size_t)cfg->serving_query_queue,
                        &s->peer_pool)) < 0) {
        *errmsg = strdup("cannot start the query threads");
        serving_free(s);
        return rc;
    }
    if (!(s->gen = gen_new(s, cfg, src))) {
        *errmsg = strdup("cannot allocate the answer cache: out of memory");
        serving_free(s);
        return -ENOMEM;
    }
    if ((rc = write_messages(s, cfg)) < 0 ||
        (rc = conns_new((size_t)cfg->http_max_connections, (size_t)cfg->http_max_connections_per_ip,
                        &s->conns)) < 0) {
        *errmsg = strdup("out of memory");
        serving_free(s);
        return rc;
    }
    int fd = open_listener(cfg->http_host, cfg->http_port, &family, errmsg);
    if (fd < 0) {
        serving_free(s);
        return fd;
    }
    /* TLS options only with TLS: libmicrohttpd refuses them otherwise */
    struct MHD_OptionItem tls_opts[] = {
        {tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, (void *)s->fixed.tls_key},
        {MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)s->fixed.tls_cert},
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)TLS_PRIORITIES},
        {MHD_OPTION_END, 0, NULL},
    };
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL_LINUX_ONLY |
                     MHD_ALLOW_SUSPEND_RESUME |   /* queries wait for the pool suspended */
                     MHD_USE_ERROR_LOG | (family == AF_INET6 ? MHD_USE_IPv6 : 0) |
                     (tls ? MHD_USE_TLS : 0);
    s->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
        MHD_OPTION_LISTEN_SOCKET, fd,   /* the daemon closes it when it stops */
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->http_threads,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->http_connection_timeout_s,
        /* libmicrohttpd splits this among the pool's threads, each of which
         * may get most connections: each gets the whole */
        MHD_OPTION_CONNECTION_LIMIT,
        hard_limit(cfg->http_max_connections) * (unsigned)cfg->http_threads,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, hard_limit(cfg->http_max_connections_per_ip),
        MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)CONN_MEMORY_BASE + 2 * (size_t)cfg->http_max_query_bytes,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
        MHD_OPTION_ARRAY, tls_opts,
        MHD_OPTION_END);
    if (!s->mhd) {
        /* libmicrohttpd leaves the socket open when it rejects its options
         * and may close it when a later step fails: close it if still ours */
        if (fcntl(fd, F_GETFD) != -1)
            close(fd);
        *errmsg = listen_error(cfg->http_host, cfg->http_port,
                               tls ? "cannot start the HTTPS server (libmicrohttpd; does "
                                     "http.tls.key_file hold the key of http.tls.cert_file?)"
                                   : "cannot start the HTTP server (libmicrohttpd)");
        serving_free(s);
        return -EIO;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : 0;
    if (s->port == 0) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
            s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                     : ((struct sockaddr_in *)&ss)->sin_port);
    }
    *out = s;
    return 0;
}

int serving_port(const serving *s)
{
    return s->port;
}

void serving_stop(serving *s)
{
    if (!s)
        return;
    /* Running queries end at their next check; queued ones are answered
     * 503; every suspended connection is resumed before qpool_stop
     * returns. A query arriving meanwhile is refused by the stopped pool
     * (and its connection resumed at once). */
    atomic_store(&s->stopping, true);
    qpool_stop(s->pool);
    qpool_stop(s->peer_pool);
    if (s->mhd)
        MHD_stop_daemon(s->mhd);   /* closes every connection: the slots are released */
    serving_free(s);
}

/* Both NULL, or the same text. */
static bool same_text(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* The first setting serving_swap cannot change (it was read when the
 * server started), or NULL. */
const char *serving_swap_blocker(const serving *s, const config *next)
{
    const fixed_settings *f = &s->fixed;
    if (!same_text(f->host, next->http_host) || f->port != next->http_port)
        return "http.listen";
    if (!same_text(f->tls_cert, next->http_tls_cert) || !same_text(f->tls_key, next->http_tls_key))
        return "http.tls";
    if (f->threads != next->http_threads)
        return "http.threads";
    if (f->max_connections != next->http_max_connections)
        return "http.limits.max_connections";
    if (f->max_connections_per_ip != next->http_max_connections_per_ip)
        return "http.limits.max_connections_per_ip";
    if (f->max_query_bytes != next->http_max_query_bytes)
        return "http.limits.max_query_bytes";
    if (f->connection_timeout_s != next->http_connection_timeout_s)
        return "http.limits.connection_timeout_s";
    if (f->query_threads != next->serving_query_threads)
        return "serving.query_threads";
    if (f->query_queue != next->serving_query_queue)
        return "serving.query_queue";
    return NULL;
}

int serving_swap(serving *s, const config *cfg, const serving_source *src)
{
    generation *g = gen_new(s, cfg, src);
    if (!g)
        return -ENOMEM;
    pthread_mutex_lock(&s->gen_mu);
    generation *old = s->gen;
    s->gen = g;
    while (old->refs > 0)   /* queries end within http.limits.query_timeout_ms */
        pthread_cond_wait(&s->gen_cv, &s->gen_mu);
    pthread_mutex_unlock(&s->gen_mu);
    gen_free(old);
    return 0;
}
