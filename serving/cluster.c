/* cluster.c - see cluster.h. libcurl (its multi interface) rather than a
 * hand-written client: parallel requests on one thread, connect and total
 * timeouts, HTTPS, keep-alive connections. Each query pool thread keeps
 * one multi handle for its life, so its connections to the peers stay
 * open from one query to the next (libcurl's shared connection cache is
 * not safe across threads, per its KNOWN_BUGS). */
#include "serving/cluster.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/bytes.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/strutil.h"
#include "core/gran.h"
#include "serving/api.h"
#include "serving/partial.h"

METRIC_COUNTER(m_peer_requests, "lambdad_peer_requests_total",
               "Partial answers asked of peers by fan-out queries, by outcome (ok, error).",
               "peer", "result");
METRIC_GAUGE(m_peer_up, "lambdad_peer_up",
             "1 when the last request to the peer succeeded (or none was made yet), 0 when "
             "it failed: the peer is skipped for cluster.retry_after_ms.", "peer", "shard");
METRIC_HISTOGRAM(m_fanout_seconds, "lambdad_fanout_seconds",
                 "Time a fan-out query waited for the other shards after its own scan.",
                 metrics_buckets_latency);
METRIC_COUNTER(m_fanout_queries, "lambdad_fanout_queries_total",
               "Fan-out queries by outcome: complete, partial (partial=true, a shard missing), "
               "failed (a shard missing: 503; or a peer's 413).", "result");

#define MAX_PARTIAL_BYTES ((size_t)1 << 30)
#define MAX_ERROR_TEXT 300

typedef struct {
    char *url, *shard;
    bool own_shard;                  /* a replica of this instance: never asked */
    atomic_int_fast64_t down_until;  /* CLOCK_MONOTONIC ms; <= now: try it */
    atomic_uint_fast64_t requests, failures;
    atomic_int_fast64_t last_ms;     /* the last answer's time */
    pthread_mutex_t lock;
    char *last_error;                /* under lock; NULL: the last request succeeded */
} peer;

typedef struct {
    const char *name;
    size_t *replicas;                /* indexes into peers */
    size_t nreplicas;
    atomic_uint next;                /* where the next query starts: spreads the load */
} shard;

struct cluster {
    char *self;                      /* this instance's shard */
    char *auth;                      /* "Authorization: Bearer ..." or NULL */
    char *ca_file;                   /* cluster.ca_file, or NULL: the system's CAs */
    long connect_ms, retry_ms;
    peer *peers;
    size_t npeers;
    shard *shards;                   /* the other shards */
    size_t nshards;
};

/* This thread's multi handle (and with it its connections), made on
 * first use and cleaned up when the thread ends. */
static pthread_key_t multi_key;
static pthread_once_t multi_once = PTHREAD_ONCE_INIT;

static void multi_destroy(void *m)
{
    curl_multi_cleanup(m);
}

static void multi_key_make(void)
{
    if (pthread_key_create(&multi_key, multi_destroy) != 0)
        abort();   /* only when the process is out of keys: nothing can go on */
}

static CURLM *thread_multi(void)
{
    pthread_once(&multi_once, multi_key_make);
    CURLM *m = pthread_getspecific(multi_key);
    if (!m && (m = curl_multi_init()) && pthread_setspecific(multi_key, m) != 0) {
        curl_multi_cleanup(m);
        m = NULL;
    }
    return m;
}

void cluster_free(cluster *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->npeers; i++) {
        free(c->peers[i].url);
        free(c->peers[i].shard);
        free(c->peers[i].last_error);
        pthread_mutex_destroy(&c->peers[i].lock);
    }
    for (size_t i = 0; i < c->nshards; i++)
        free(c->shards[i].replicas);
    free(c->shards);
    free(c->peers);
    if (c->auth)
        explicit_bzero(c->auth, strlen(c->auth));
    free(c->auth);
    free(c->self);
    free(c->ca_file);
    free(c);
}

static shard *shard_of(cluster *c, const char *name)
{
    for (size_t i = 0; i < c->nshards; i++)
        if (strcmp(c->shards[i].name, name) == 0)
            return &c->shards[i];
    return NULL;
}

static int group_by_shard(cluster *c)
{
    for (size_t i = 0; i < c->npeers; i++) {
        peer *p = &c->peers[i];
        if (p->own_shard)
            continue;
        shard *s = shard_of(c, p->shard);
        if (!s) {
            s = &c->shards[c->nshards++];
            s->name = p->shard;
        }
        size_t *r = realloc(s->replicas, (s->nreplicas + 1) * sizeof(*r));
        if (!r)
            return -ENOMEM;
        s->replicas = r;
        r[s->nreplicas++] = i;
    }
    return 0;
}

int cluster_new(const config *cfg, cluster **out)
{
    *out = NULL;
    if (!cfg->npeers)
        return 0;
    cluster *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->connect_ms = cfg->cluster_connect_timeout_ms;
    c->retry_ms = cfg->cluster_retry_after_ms;
    const char *token = cfg->cluster_token ? cfg->cluster_token : cfg->http_auth_token;
    bool ok = (c->self = strdup(cfg->cluster_shard)) &&
              (!cfg->cluster_ca_file || (c->ca_file = strdup(cfg->cluster_ca_file))) &&
              (!token || (c->auth = str_printf("Authorization: Bearer %s", token))) &&
              (c->peers = calloc(cfg->npeers, sizeof(*c->peers))) &&
              (c->shards = calloc(cfg->npeers, sizeof(*c->shards)));
    for (size_t i = 0; ok && i < cfg->npeers; i++) {
        peer *p = &c->peers[i];
        pthread_mutex_init(&p->lock, NULL);
        c->npeers++;
        ok = (p->url = strdup(cfg->peers[i].url)) && (p->shard = strdup(cfg->peers[i].shard));
        if (ok) {
            p->own_shard = strcmp(p->shard, c->self) == 0;
            metrics_gauge_set(&m_peer_up, METRIC_LABELS(p->url, p->shard), 1);
        }
    }
    ok = ok && group_by_shard(c) == 0;
    if (!ok) {
        cluster_free(c);
        return -ENOMEM;
    }
    *out = c;
    return 0;
}

bool cluster_fans_out(const cluster *c)
{
    return c && c->nshards > 0;
}

static void peer_outcome(peer *p, const char *error, int64_t ms, long retry_ms)
{
    atomic_fetch_add(&p->requests, 1);
    atomic_store(&p->last_ms, ms);
    char *copy = error ? strdup(error) : NULL;
    pthread_mutex_lock(&p->lock);
    bool was_up = p->last_error == NULL;
    free(p->last_error);
    p->last_error = copy;
    pthread_mutex_unlock(&p->lock);
    if (error) {
        atomic_fetch_add(&p->failures, 1);
        atomic_store(&p->down_until, api_now_ms() + retry_ms);
        if (was_up)   /* once per change, not per query */
            log_warn("Cluster: peer %s (shard '%s') failed: %s; skipped for %ld ms", p->url,
                     p->shard, error, retry_ms);
    } else {
        atomic_store(&p->down_until, 0);
        if (!was_up)
            log_notice("Cluster: peer %s (shard '%s') answers again", p->url, p->shard);
    }
    metrics_counter_add(&m_peer_requests, METRIC_LABELS(p->url, error ? "error" : "ok"), 1);
    metrics_gauge_set(&m_peer_up, METRIC_LABELS(p->url, p->shard), error ? 0 : 1);
}

void cluster_status(cluster *c, json_t *obj)
{
    json_t *peers = json_array();
    int64_t now = api_now_ms();
    for (size_t i = 0; peers && i < c->npeers; i++) {
        peer *p = &c->peers[i];
        pthread_mutex_lock(&p->lock);
        json_t *err = p->last_error ? json_string(p->last_error) : json_null();
        pthread_mutex_unlock(&p->lock);
        json_array_append_new(
            peers, json_pack("{s:s,s:s,s:b,s:b,s:I,s:I,s:I,s:o}", "url", p->url, "shard",
                             p->shard, "replica_of_this", p->own_shard, "up",
                             atomic_load(&p->down_until) <= now, "requests",
                             (json_int_t)atomic_load(&p->requests), "failures",
                             (json_int_t)atomic_load(&p->failures), "last_ms",
                             (json_int_t)atomic_load(&p->last_ms), "last_error", err));
    }
    json_object_set_new(obj, "cluster", json_pack("{s:s,s:o*}", "shard", c->self, "peers", peers));
}

/* ---- one query's fan-out ---- */

typedef struct {
    fanout *f;
    shard *s;
    size_t tried;                    /* replicas asked so far */
    bool *asked;                     /* per replica of s */
    char **error;                    /* per replica of s: what it answered this time */
    peer *p;                         /* the one asked now (NULL: none left) */
    CURL *h;
    bytes_w body;
    int64_t started_ms;
    bool done, ok;
    partial_info info;
    size_t at;                       /* the replica asked now: index into s->replicas */
    struct curl_slist budget;        /* its X-Lambdad-Budget-Ms header, before f->headers */
    char budget_text[64];
} part;

struct fanout {
    cluster *c;
    CURLM *m;
    char *path;                      /* "/v1/internal/views/V/partial?..." */
    int64_t deadline_ms, started_ms;
    part *parts;                     /* one per other shard */
    size_t nparts;
    struct curl_slist *headers;
    serving_watermark local;
    char *missing;                   /* comma-separated, or NULL */
};

/* The parameters as the client sent them, %-escaped again. */
static char *build_path(const char *view, size_t view_len, const qparam *p, size_t np)
{
    jbuf b;
    jb_init(&b);
    char *v = curl_easy_escape(NULL, view, (int)view_len);
    jb_lit(&b, "/v1/internal/views/");
    jb_lit(&b, v ? v : "");
    jb_lit(&b, "/partial");
    curl_free(v);
    bool oom = !v;
    for (size_t i = 0; i < np && !oom; i++) {
        char *k = curl_easy_escape(NULL, p[i].key, (int)p[i].klen);
        char *val = p[i].val ? curl_easy_escape(NULL, p[i].val, (int)p[i].vlen) : NULL;
        oom = !k || (p[i].val && !val);
        jb_lit(&b, i ? "&" : "?");
        jb_lit(&b, k ? k : "");
        if (val) {
            jb_lit(&b, "=");
            jb_lit(&b, val);
        }
        curl_free(k);
        curl_free(val);
    }
    size_t len;
    char *s = jb_take(&b, &len);
    if (oom) {
        free(s);
        return NULL;
    }
    return s;
}

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    part *pt = ud;
    if (pt->body.len + n > MAX_PARTIAL_BYTES)
        return 0;   /* libcurl fails the transfer: CURLE_WRITE_ERROR */
    bw_put(&pt->body, data, n * size);
    return pt->body.oom ? 0 : n * size;
}

/* The next replica to ask: a healthy one not asked yet, starting where
 * the shard's rotation points; when none is healthy and none was asked,
 * the one that failed longest ago (it may be back). */
static peer *pick_replica(fanout *f, part *pt)
{
    shard *s = pt->s;
    int64_t now = api_now_ms();
    unsigned start = atomic_fetch_add(&s->next, 1);
    peer *oldest = NULL;
    size_t oldest_k = 0;
    for (size_t k = 0; k < s->nreplicas; k++) {
        size_t r = (start + k) % s->nreplicas;
        peer *p = &f->c->peers[s->replicas[r]];
        if (pt->asked[r])
            continue;
        if (atomic_load(&p->down_until) <= now) {
            pt->asked[r] = true;
            pt->at = r;
            return p;
        }
        if (!oldest || atomic_load(&p->down_until) < atomic_load(&oldest->down_until)) {
            oldest = p;
            oldest_k = r;
        }
    }
    if (pt->tried || !oldest)
        return NULL;
    pt->asked[oldest_k] = true;
    pt->at = oldest_k;
    return oldest;
}

/* What the replica asked now answered, for the 503 naming the shard. */
static void add_error(part *pt, const char *what)
{
    free(pt->error[pt->at]);
    pt->error[pt->at] = strdup(what);
}

/* Starts the request of pt to its next replica. false: none left. */
static bool ask_next(fanout *f, part *pt)
{
    peer *p = pick_replica(f, pt);
    if (!p)
        return false;
    pt->p = p;
    pt->tried++;
    pt->body.len = 0;
    pt->body.oom = false;
    pt->started_ms = api_now_ms();
    char *url = str_printf("%s%s", p->url, f->path);
    CURL *h = url ? curl_easy_init() : NULL;
    if (!h) {
        free(url);
        add_error(pt, "out of memory");
        return ask_next(f, pt);
    }
    long left = 0;
    if (f->deadline_ms) {
        left = (long)(f->deadline_ms - pt->started_ms);
        if (left < 1)
            left = 1;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     left && left < f->c->connect_ms ? left : f->c->connect_ms);
    if (left)
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, left);
    /* the peer stops at our deadline too: nobody waits for it after */
    struct curl_slist *headers = f->headers;
    if (left) {
        snprintf(pt->budget_text, sizeof(pt->budget_text), "X-Lambdad-Budget-Ms: %ld", left);
        pt->budget = (struct curl_slist){.data = pt->budget_text, .next = f->headers};
        headers = &pt->budget;
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    if (f->c->ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, f->c->ca_file);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, pt);
    curl_easy_setopt(h, CURLOPT_PRIVATE, pt);
    free(url);   /* libcurl copies CURLOPT_URL */
    pt->h = h;
    if (curl_multi_add_handle(f->m, h) != CURLM_OK) {
        curl_easy_cleanup(h);
        pt->h = NULL;
        add_error(pt, "cannot start the request");
        return ask_next(f, pt);
    }
    return true;
}

int fanout_start(cluster *c, const char *view, size_t view_len, const qparam *p, size_t np,
                 int64_t deadline_ms, fanout **out)
{
    fanout *f = calloc(1, sizeof(*f));
    *out = NULL;
    if (!f)
        return -ENOMEM;
    f->c = c;
    f->deadline_ms = deadline_ms;
    f->started_ms = api_now_ms();
    struct curl_slist *h = curl_slist_append(NULL, "Accept: " PARTIAL_CONTENT_TYPE);
    f->headers = h;
    if (h && c->auth)
        f->headers = h = curl_slist_append(h, c->auth);
    if (!h || !(f->path = build_path(view, view_len, p, np)) || !(f->m = thread_multi()) ||
        !(f->parts = calloc(c->nshards, sizeof(*f->parts)))) {
        fanout_free(f);
        return -ENOMEM;
    }
    f->nparts = c->nshards;
    for (size_t i = 0; i < f->nparts; i++) {
        part *pt = &f->parts[i];
        pt->f = f;
        pt->s = &c->shards[i];
        if (!(pt->asked = calloc(pt->s->nreplicas, sizeof(*pt->asked))) ||
            !(pt->error = calloc(pt->s->nreplicas, sizeof(*pt->error)))) {
            fanout_free(f);
            return -ENOMEM;
        }
        if (!ask_next(f, pt))
            pt->done = true;
    }
    int running;
    curl_multi_perform(f->m, &running);   /* sends what can go now; the scan runs meanwhile */
    *out = f;
    return 0;
}

/* What an error answer says ({"error":{"message":...}}), after its status. */
static void answer_error(const part *pt, long status, char *what, size_t size)
{
    json_t *j = json_loadb((const char *)pt->body.p, pt->body.oom ? 0 : pt->body.len, 0, NULL);
    const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    snprintf(what, size, "HTTP %ld%s%.200s", status, msg ? ": " : "", msg ? msg : "");
    json_decref(j);
}

/* err = "shard 'S' <text> (url: what)" with status. */
static void shard_error(qerror *err, int status, const part *pt, const char *text,
                        const char *what)
{
    qerror_clear(err);
    err->status = status;
    jbuf b;
    jb_init(&b);
    jb_lit(&b, "shard '");
    jb_lit(&b, pt->s->name);
    jb_lit(&b, "'");
    jb_lit(&b, text);
    jb_lit(&b, " (");
    jb_lit(&b, pt->p->url);
    jb_lit(&b, ": ");
    jb_lit(&b, what);
    jb_lit(&b, ")");
    err->msg = jb_take(&b, &err->len);
}

/* A finished transfer: merged into t, or its error recorded and the next
 * replica asked. Returns a negative code for the failures of the whole
 * query (err set): out of memory, a peer's 413, an answer that cannot be
 * merged (t may hold part of its rows). */
static int on_done(fanout *f, part *pt, CURLcode res, const query *q, vtable *t, qerror *err)
{
    peer *p = pt->p;
    long status = 0;
    curl_easy_getinfo(pt->h, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(f->m, pt->h);
    curl_easy_cleanup(pt->h);
    pt->h = NULL;
    int64_t ms = api_now_ms() - pt->started_ms;
    char what[MAX_ERROR_TEXT] = "";
    int rc = 0;
    if (res != CURLE_OK) {
        snprintf(what, sizeof(what), "%s", res == CURLE_WRITE_ERROR
                                               ? "answer too large or out of memory"
                                               : curl_easy_strerror(res));
    } else if (status != 200) {
        answer_error(pt, status, what, sizeof(what));
        if (status == 413) {   /* every replica would say the same */
            shard_error(err, 413, pt, "", what);
            rc = -E2BIG;
        }
    } else {
        const char *why = NULL;
        rc = partial_merge(q, pt->body.p, pt->body.oom ? 0 : pt->body.len, t, &pt->info, &why);
        if (rc == -EBADMSG)
            snprintf(what, sizeof(what), "%s", why);
        else if (rc == 0 && strcmp(pt->info.shard, pt->s->name) != 0)
            snprintf(what, sizeof(what), "says it serves shard '%s', cluster.peers says '%s'",
                     pt->info.shard, pt->s->name);
        if (what[0]) {
            shard_error(err, 502, pt, " sent an answer that cannot be merged", what);
            rc = -EPROTO;
        } else if (rc < 0) {
            qerror_clear(err);
            err->status = 500;
        }
    }
    peer_outcome(p, what[0] ? what : NULL, ms, f->c->retry_ms);
    if (rc < 0)
        return rc;
    pt->ok = !what[0];
    if (what[0]) {
        add_error(pt, what);
        if (ask_next(f, pt))
            return 0;
    }
    pt->done = true;
    return 0;
}

static bool all_done(const fanout *f)
{
    for (size_t i = 0; i < f->nparts; i++)
        if (!f->parts[i].done)
            return false;
    return true;
}

/* The 503 of a missing shard: each of its replicas, in cluster.peers'
 * order, with what it answered this time or, when it was skipped (it
 * failed within cluster.retry_after_ms), what it answered last. */
static int fail_missing(fanout *f, qerror *err)
{
    qerror_clear(err);
    err->status = 503;
    jbuf b;
    jb_init(&b);
    size_t n = 0;
    for (size_t i = 0; i < f->nparts; i++) {
        part *pt = &f->parts[i];
        if (pt->ok)
            continue;
        jb_lit(&b, n++ ? "; shard '" : "shard '");
        jb_lit(&b, pt->s->name);
        jb_lit(&b, "' has no healthy replica (");
        for (size_t r = 0; r < pt->s->nreplicas; r++) {
            peer *p = &f->c->peers[pt->s->replicas[r]];
            jb_lit(&b, r ? "; " : "");
            jb_lit(&b, p->url);
            jb_lit(&b, ": ");
            if (pt->error[r]) {
                jb_lit(&b, pt->error[r]);
                continue;
            }
            pthread_mutex_lock(&p->lock);
            jb_lit(&b, p->last_error ? p->last_error : "not asked");
            pthread_mutex_unlock(&p->lock);
        }
        jb_lit(&b, ")");
    }
    jb_lit(&b, "; add partial=true for an answer without it");
    err->msg = jb_take(&b, &err->len);
    return -EAGAIN;
}

/* The watermark of the answer as a whole. */
static void combine(const fanout *f, serving_watermark *wm)
{
    for (size_t i = 0; i < f->nparts; i++) {
        const part *pt = &f->parts[i];
        if (!pt->ok)
            continue;
        wm->live_events += pt->info.wm.live_events;
        wm->unreadable_events += pt->info.wm.unreadable_events;
        if (wm->batch_at && (!pt->info.wm.batch_at || pt->info.wm.batch_at < wm->batch_at))
            wm->batch_at = pt->info.wm.batch_at;
    }
}

int fanout_finish(fanout *f, const query *q, vtable *t, serving_watermark *wm, qerror *err)
{
    int rc = 0;
    while (rc == 0 && !all_done(f)) {
        if (q->stop && atomic_load(q->stop))
            return -ECANCELED;
        int running, queued;
        curl_multi_perform(f->m, &running);
        CURLMsg *msg;
        while (rc == 0 && (msg = curl_multi_info_read(f->m, &queued)))
            if (msg->msg == CURLMSG_DONE) {
                part *pt;
                curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&pt);
                rc = on_done(f, pt, msg->data.result, q, t, err);
            }
        if (rc == 0 && !all_done(f))
            curl_multi_poll(f->m, NULL, 0, 100, NULL);
    }
    metrics_observe(&m_fanout_seconds, NULL, (double)(api_now_ms() - f->started_ms) / 1000.0);
    if (rc < 0) {
        metrics_counter_add(&m_fanout_queries, METRIC_LABELS("failed"), 1);
        return rc;
    }
    jbuf miss;
    jb_init(&miss);
    for (size_t i = 0; i < f->nparts; i++)
        if (!f->parts[i].ok) {
            if (miss.len)
                jb_lit(&miss, ",");
            jb_lit(&miss, f->parts[i].s->name);
        }
    size_t len;
    f->missing = miss.len ? jb_take(&miss, &len) : NULL;
    jb_free(&miss);
    if (f->missing && !q->allow_partial) {
        metrics_counter_add(&m_fanout_queries, METRIC_LABELS("failed"), 1);
        return fail_missing(f, err);
    }
    metrics_counter_add(&m_fanout_queries, METRIC_LABELS(f->missing ? "partial" : "complete"),
                        1);
    f->local = *wm;
    combine(f, wm);
    return 0;
}

static void render_wm(jbuf *b, const char *name, const char *url, const serving_watermark *wm)
{
    jb_lit(b, "{\"shard\":");
    jb_cstr(b, name);
    jb_lit(b, ",\"peer\":");
    if (url)
        jb_cstr(b, url);
    else
        jb_lit(b, "null");
    jb_lit(b, ",\"batch_seq\":");
    jb_int(b, wm->batch_seq);
    jb_lit(b, ",\"batch_at\":");
    if (wm->batch_at) {
        char buf[48];
        time_format_rfc3339(wm->batch_at, buf, sizeof(buf));
        jb_cstr(b, buf);
    } else {
        jb_lit(b, "null");
    }
    jb_lit(b, ",\"live_events\":");
    jb_int(b, wm->live_events);
    if (wm->unreadable_events > 0) {
        jb_lit(b, ",\"unreadable_events\":");
        jb_int(b, wm->unreadable_events);
    }
    jb_lit(b, "}");
}

void fanout_render_shards(const fanout *f, jbuf *b)
{
    jb_lit(b, ",\"shards\":[");
    render_wm(b, f->c->self, NULL, &f->local);
    for (size_t i = 0; i < f->nparts; i++)
        if (f->parts[i].ok) {
            jb_lit(b, ",");
            render_wm(b, f->parts[i].s->name, f->parts[i].p->url, &f->parts[i].info.wm);
        }
    jb_lit(b, "]");
}

void fanout_render_partial(const fanout *f, jbuf *b)
{
    if (!f->missing)
        return;
    jb_lit(b, ",\"partial\":true,\"missing_shards\":[");
    for (size_t i = 0, n = 0; i < f->nparts; i++)
        if (!f->parts[i].ok) {
            if (n++)
                jb_lit(b, ",");
            jb_cstr(b, f->parts[i].s->name);
        }
    jb_lit(b, "]");
}

const char *fanout_missing(const fanout *f)
{
    return f->missing;
}

void fanout_free(fanout *f)
{
    if (!f)
        return;
    for (size_t i = 0; f->parts && i < f->nparts; i++) {
        part *pt = &f->parts[i];
        if (pt->h) {
            curl_multi_remove_handle(f->m, pt->h);
            curl_easy_cleanup(pt->h);
        }
        bw_free(&pt->body);
        for (size_t r = 0; pt->error && r < pt->s->nreplicas; r++)
            free(pt->error[r]);
        free(pt->error);
        free(pt->asked);
    }
    free(f->parts);   /* f->m is the thread's: kept with its connections */
    curl_slist_free_all(f->headers);
    free(f->path);
    free(f->missing);
    free(f);
}
