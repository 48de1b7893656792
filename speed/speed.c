/* speed.c - the speed layer: Kafka consumer loop and live view tables.
 *
 * Threads and locks:
 * - The speed thread (speed_main) owns the Kafka consumer, the archive
 *   writer and the open transaction. It decodes each message once, adds it
 *   to the transaction (archive chunk or reject) and to per-view staging
 *   tables, and every archive.commit_interval_ms (or commit_max_events)
 *   commits the transaction.
 * - Only after COMMIT are the staging tables handed to the live runs L
 *   (core/vstate.h: a pointer append under its mutex; readers never make
 *   this thread wait, and a merger thread combines runs in the background). So the answer state holds exactly
 *   the archived events with seq <= last_seq, which is what makes answers
 *   exact across crashes (DESIGN.md, "The exactness protocol", step 1).
 * - Query threads read the tables through vstate_scan().
 * - An import thread hands its transactions to the speed thread, which
 *   commits and applies each at the top of its loop (imports.c).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/strutil.h"
#include "core/failpoint.h"
#include "core/metrics.h"
#include "speed/speed_int.h"
#include "speed/kafka_conf.h"

METRIC_COUNTER(m_rejects, "lambdad_rejects_total",
               "Messages rejected (stored in the archive's rejects table), by topic and reason.",
               "topic", "reason");
METRIC_HISTOGRAM(m_commit, "lambdad_archive_commit_duration_seconds",
                 "Duration of archive transactions (write and COMMIT).", metrics_buckets_latency);
METRIC_GAUGE(m_newest, "lambdad_newest_event_timestamp_seconds",
             "Event time of the newest archived event, by topic (freshness = now - this).",
             "topic");
METRIC_COUNTER(m_kafka_errors, "lambdad_kafka_errors_total",
               "Errors reported by the Kafka client, by error name.", "error");

/* The reject reasons, in the order of speed.reject_tally's columns. */
const char *const speed_reject_reasons[SPEED_REJECT_REASONS] = {
    REJECT_INVALID_JSON, REJECT_NOT_OBJECT, REJECT_MISSING_TIME, REJECT_BAD_TIME, REJECT_RETENTION,
};

#define BATCH_MAX 4096            /* messages taken from the queue per call */
#define POLL_MAX_MS 100           /* longest wait for messages */
#define COMMIT_RETRY_MS 1000      /* pause after a failed archive commit */

int speed_new(const config *cfg, vstate *vs, arch *w, speed **out, char **errmsg)
{
    speed *s = calloc(1, sizeof(*s));
    if (!s) {
        arch_close(w);
        *errmsg = strdup("out of memory");
        return -ENOMEM;
    }
    s->cfg = cfg;
    s->vs = vs;
    s->w = w;   /* owned from here on */
    pthread_mutex_init(&s->parts_lock, NULL);
    pthread_mutex_init(&s->err_lock, NULL);
    pthread_mutex_init(&s->call_lock, NULL);
    pthread_cond_init(&s->call_cond, NULL);

    size_t maxfields = 1;
    for (size_t i = 0; i < cfg->nstreams; i++)
        if (stream_nvals(&cfg->streams[i]) > maxfields)
            maxfields = stream_nvals(&cfg->streams[i]);
    s->stage = vtables_new_per_view(cfg->views, cfg->nviews);
    s->txn = arch_txn_new();
    s->dec = event_decoder_new();
    s->vals = calloc(maxfields, sizeof(*s->vals));
    s->topic_problem = calloc(cfg->nstreams ? cfg->nstreams : 1, sizeof(char *));
    s->reject_tally = calloc(cfg->nstreams ? cfg->nstreams : 1, sizeof(*s->reject_tally));
    s->stream_newest_ms = calloc(cfg->nstreams ? cfg->nstreams : 1, sizeof(int64_t));
    s->view_cut = calloc(cfg->nviews ? cfg->nviews : 1, sizeof(int64_t));
    if (!s->view_cut || !s->stage || !s->reject_tally || !s->stream_newest_ms || !s->txn || !s->dec || !s->vals || !s->topic_problem) {
        speed_free(s);
        *errmsg = strdup("out of memory");
        return -ENOMEM;
    }
    config_retention_cuts(cfg, (int64_t)time(NULL), &s->arch_cut, s->view_cut);
    arch_stats st;
    if (arch_get_stats(w, &st) == 0) {
        s->archived_events = st.events;
        s->rejects = st.rejects;
        s->archive_bytes = st.file_bytes;
        s->archive_chunks = st.chunks;
    }
    *out = s;
    return 0;
}

/* ---- retention -------------------------------------------------------- */

/* Brings the retention cuts up to the current second (speed thread). */
static void refresh_cuts(speed *s)
{
    int64_t now = (int64_t)time(NULL);
    if (now != s->cuts_at) {
        config_retention_cuts(s->cfg, now, &s->arch_cut, s->view_cut);
        s->cuts_at = now;
    }
}

/* Whether view v keeps an event of time ts_ms (its partition is not older
 * than the view's retention). */
static bool view_keeps(const speed *s, size_t v, int64_t ts_ms)
{
    return s->view_cut[v] == INT64_MIN ||
           gran_floor(config_view_unit(s->cfg, v), floor_div(ts_ms, 1000)) >= s->view_cut[v];
}

/* ---- recovery -------------------------------------------------------- */

typedef struct {
    speed *s;
    size_t stream_idx;
    int64_t events, undecodable;
    int64_t damaged, unreadable;   /* chunks skipped as damaged, their events */
} recover_ctx;

/* A damaged archive chunk: its events are missing from the live views.
 * The archive records it for /v1/status and the query watermark; the log
 * names it the first time it is found. */
static int recover_damage(const arch_damage *d, void *ud)
{
    recover_ctx *rc = ud;
    rc->damaged++;
    rc->unreadable += d->events;
    if (!d->known) {
        char what[512];
        log_error("Recovery: damaged archive %s; its events are left out of the views",
                  arch_damage_describe(d, what, sizeof(what)));
    }
    return 0;
}

static int recover_event(const arch_event *ev, void *ud)
{
    recover_ctx *rc = ud;
    speed *s = rc->s;
    const config *cfg = s->cfg;
    const stream_def *st = &cfg->streams[rc->stream_idx];
    int64_t ts_ms;
    const char *reason, *detail;
    int r = event_decode(s->dec, st, ev->payload, ev->len, ev->ts_ms, &ts_ms, s->vals, &reason,
                         &detail);
    if (r == -ENOMEM)
        return -ENOMEM;
    if (r < 0) {
        /* Accepted at ingest but not decodable now: only a changed decoder
         * can do that. Counted and logged once by the caller. */
        rc->undecodable++;
        return 0;
    }
    for (size_t v = 0; v < cfg->nviews; v++)
        if (cfg->views[v].stream_idx == rc->stream_idx && view_keeps(s, v, ts_ms) &&
            event_apply(&cfg->views[v], s->stage[v], ts_ms, s->vals, s->dec) < 0)
            return -ENOMEM;
    rc->events++;
    return 0;
}

int speed_recover(speed *s, int64_t after_seq, char **errmsg)
{
    const config *cfg = s->cfg;
    arch_stats st;
    int r = arch_get_stats(s->w, &st);
    if (r < 0) {
        *errmsg = strdup("cannot read archive statistics");
        return r;
    }
    int64_t total = 0;
    refresh_cuts(s);
    for (size_t si = 0; si < cfg->nstreams; si++) {
        recover_ctx rc = {.s = s, .stream_idx = si};
        char *err = NULL;
        /* Replayed into the staging tables, published below in one step;
         * queries answer 503 until recovery is done anyway. */
        r = arch_scan(s->w, cfg->streams[si].name, after_seq, st.last_seq, 0, -1, recover_event,
                      recover_damage, &rc, &err);
        if (r != 0) {
            *errmsg = str_printf("replaying stream '%s' from the archive: %s",
                                 cfg->streams[si].name,
                                 err ? err : r == -ENOMEM ? "out of memory" : "failed");
            free(err);
            return r < 0 ? r : -EIO;
        }
        if (rc.undecodable)
            log_warn("Recovery: %lld archived event(s) of stream '%s' no longer decode and "
                     "were skipped", (long long)rc.undecodable, cfg->streams[si].name);
        if (rc.damaged)
            log_warn("Recovery: %lld damaged archive chunk(s) of stream '%s' skipped, %lld "
                     "event(s) unreadable (see /v1/status)", (long long)rc.damaged,
                     cfg->streams[si].name, (long long)rc.unreadable);
        total += rc.events;
    }
    r = vstate_apply(s->vs, s->stage, total, st.last_seq, false);   /* takes the tables */
    vtables_free(s->stage, cfg->nviews);                      /* only what it did not take */
    s->stage = r == 0 ? vtables_new_per_view(cfg->views, cfg->nviews) : NULL;
    if (!s->stage) {
        *errmsg = strdup("out of memory publishing the replayed events");
        return -ENOMEM;
    }
    log_info("Recovery: replayed %lld archived event(s) after seq %lld up to seq %lld",
             (long long)total, (long long)after_seq, (long long)st.last_seq);
    return 0;
}

/* ---- the transaction ------------------------------------------------- */

static void commit_offsets_to_kafka(speed *s)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)s->nparts);
    for (size_t i = 0; i < s->nparts; i++) {
        speed_part *p = &s->parts[i];
        if (!p->dirty)
            continue;
        p->dirty = false;
        rd_kafka_topic_partition_list_add(l, s->cfg->streams[p->stream_idx].topic, p->partition)
            ->offset = p->next_offset;
    }
    /* Only for lag tools: lambdad itself restarts from the archive. */
    if (l->cnt > 0)
        rd_kafka_commit(s->rk, l, 1);
    rd_kafka_topic_partition_list_destroy(l);
}

/* Records the outcome of an archive commit for /readyz, /v1/status and
 * /metrics (err NULL: it worked). The first failure in a row is an ERROR
 * line, repeats while it lasts are not logged again (the commit is retried
 * every COMMIT_RETRY_MS), and the recovery is logged with how long it took. */
static void note_write_error(speed *s, const char *err)
{
    pthread_mutex_lock(&s->err_lock);
    int64_t since = s->write_error_since;
    if (err) {
        snprintf(s->write_error, sizeof(s->write_error), "%s", err);
        if (!since)
            s->write_error_since = (int64_t)time(NULL);
    } else if (since) {
        s->write_error[0] = '\0';
        s->write_error_since = 0;
    }
    pthread_mutex_unlock(&s->err_lock);
    if (err) {
        s->write_failures++;
        if (!since)
            log_error("Archive commit of %zu event(s) and %zu reject(s) failed: %s; ingestion "
                      "pauses (nothing is lost) and the commit is retried every %d ms",
                      arch_txn_events(s->txn), arch_txn_rejects(s->txn), err, COMMIT_RETRY_MS);
    } else if (since) {
        log_notice("Archive writes work again after %lld s; ingestion resumes",
                 (long long)((int64_t)time(NULL) - since));
    }
}

void speed_count_commit(speed *s, const arch_txn *t)
{
    s->archived_events += (long long)arch_txn_events(t);
    s->rejects += (long long)arch_txn_rejects(t);
    s->commits++;
    arch_stats st;
    if (arch_get_stats(s->w, &st) == 0) {
        s->archive_bytes = st.file_bytes;
        s->archive_chunks = st.chunks;
    }
}

/* Commits the open transaction; on success applies it to the live tables.
 * Returns 0, or a negative code after logging (the transaction is kept and
 * retried: nothing is lost). */
static int commit_txn(speed *s)
{
    for (size_t i = 0; i < s->nparts; i++) {
        speed_part *p = &s->parts[i];
        if (p->dirty && arch_txn_set_offset(s->txn, s->cfg->streams[p->stream_idx].topic,
                                            p->partition, p->taken_offset) < 0)
            return -ENOMEM;
    }
    int64_t last_seq = 0;
    char *err = NULL;
    int64_t t0 = speed_now_ms();
    int r = arch_commit(s->w, s->txn, &last_seq, &err);
    if (r < 0) {
        note_write_error(s, err ? err : "unknown error");
        free(err);
        return r;
    }
    note_write_error(s, NULL);
    int64_t t1 = speed_now_ms();
    failpoint("after_archive_commit");   /* archived, not yet applied */
    metrics_observe(&m_commit, NULL, (double)(t1 - t0) / 1000.0);
    pthread_mutex_lock(&s->err_lock);
    for (size_t si = 0; si < s->cfg->nstreams; si++)
        for (int k = 0; k < SPEED_REJECT_REASONS; k++)
            s->rejects_by_reason[k] += s->reject_tally[si][k];
    pthread_mutex_unlock(&s->err_lock);
    for (size_t si = 0; si < s->cfg->nstreams; si++) {
        for (int k = 0; k < SPEED_REJECT_REASONS; k++) {
            if (s->reject_tally[si][k])
                metrics_counter_add(&m_rejects,
                                    METRIC_LABELS(s->cfg->streams[si].topic, speed_reject_reasons[k]),
                                    (uint64_t)s->reject_tally[si][k]);
            s->reject_tally[si][k] = 0;
        }
        int64_t newest = s->stream_newest_ms[si];
        if (newest > 0) {
            metrics_gauge_set(&m_newest, METRIC_LABELS(s->cfg->streams[si].topic),
                              (double)newest / 1000.0);
            if (newest > s->newest_event_ms)
                s->newest_event_ms = newest;
        }
    }

    /* Apply: the staged tables become new runs of L (pointer moves);
     * fresh ones take their place. */
    if (vstate_apply(s->vs, s->stage, s->stage_events, last_seq, true) < 0) {
        /* The archive has the events; a restart rebuilds the live tables
         * from it. Stop rather than answer inexactly. */
        log_error("Out of memory applying a committed transaction; stopping (a restart "
                  "recovers it from the archive)");
        s->failed = true;
        return -ENOMEM;
    }
    vtables_free(s->stage, s->cfg->nviews);   /* emptied by vstate_apply */
    s->stage = vtables_new_per_view(s->cfg->views, s->cfg->nviews);
    if (!s->stage) {
        log_error("Out of memory resetting staging tables; stopping");
        s->failed = true;
        return -ENOMEM;
    }

    speed_count_commit(s, s->txn);
    if (t1 - t0 > 1000)
        log_warn("Archive commit took %lld ms", (long long)(t1 - t0));
    log_debug("Committed %zu event(s), %zu reject(s), seq %lld in %lld ms",
              arch_txn_events(s->txn), arch_txn_rejects(s->txn), (long long)last_seq,
              (long long)(t1 - t0));

    arch_txn_reset(s->txn);
    s->stage_events = 0;
    s->txn_started_ms = 0;

    pthread_mutex_lock(&s->parts_lock);
    for (size_t i = 0; i < s->nparts; i++) {
        speed_part *p = &s->parts[i];
        if (p->dirty)
            p->next_offset = p->taken_offset;   /* archived now */
        int64_t lo, hi;
        if (rd_kafka_get_watermark_offsets(s->rk, s->cfg->streams[p->stream_idx].topic,
                                           p->partition, &lo, &hi) == 0)
            p->high_watermark = hi;
    }
    pthread_mutex_unlock(&s->parts_lock);
    commit_offsets_to_kafka(s);
    return 0;
}

static size_t stream_of_topic(const config *cfg, const char *topic)
{
    for (size_t i = 0; i < cfg->nstreams; i++)
        if (strcmp(cfg->streams[i].topic, topic) == 0)
            return i;
    return SIZE_MAX;
}

/* Offsets below `upto` that p still needs were not delivered. Kafka skips
 * offsets of its own (transaction markers, records removed by compaction),
 * so only those below the partition's log start offset `lo` are lost:
 * deleted by retention (or DeleteRecords) before lambdad archived them.
 * Counts and logs them once, and moves the partition's position past them
 * so the archive records that they will never come. Speed thread. */
static void note_lost_offsets(speed *s, speed_part *p, int64_t upto, int64_t lo)
{
    int64_t end = lo < upto ? lo : upto;
    if (p->taken_offset < 0 || end <= p->taken_offset)
        return;
    int64_t first = p->taken_offset, n = end - first;
    log_error("Kafka no longer holds offsets %lld..%lld of %s [%d] (deleted by retention before "
              "lambdad archived them): %lld message(s) lost",
              (long long)first, (long long)(end - 1), s->cfg->streams[p->stream_idx].topic,
              (int)p->partition, (long long)n);
    pthread_mutex_lock(&s->parts_lock);
    p->lost_offsets += n;
    pthread_mutex_unlock(&s->parts_lock);
    p->taken_offset = end;
    p->dirty = true;
    if (!s->txn_started_ms)
        s->txn_started_ms = speed_now_ms();
}

/* A message beyond the next offset p needs: are the offsets between gone?
 * The log start offset librdkafka caches from fetch responses answers at
 * once; only when it has none does this ask the broker (a round trip on
 * the speed thread, at most 1 s; jumps are rare: transaction markers,
 * compaction, retention). */
static void check_offset_jump(speed *s, speed_part *p, int64_t offset)
{
    const char *topic = s->cfg->streams[p->stream_idx].topic;
    int64_t lo = -1, hi = -1;
    rd_kafka_get_watermark_offsets(s->rk, topic, p->partition, &lo, &hi);
    if (lo < 0 && rd_kafka_query_watermark_offsets(s->rk, topic, p->partition, &lo, &hi,
                                                   1000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;   /* cannot tell: a later jump or refresh_lag looks again */
    note_lost_offsets(s, p, offset, lo);
}

/* Keeps a reject's particulars for /v1/status (speed_get_rejects). Speed
 * thread; takes err_lock briefly. Rejects are rare: the copy costs
 * nothing that matters. */
static void note_reject(speed *s, const char *topic, const rd_kafka_message_t *m,
                        const char *reason, const char *detail, const char *payload)
{
    speed_reject r = {.partition = m->partition, .offset = m->offset, .reason = reason,
                      .payload_len = m->len};
    snprintf(r.topic, sizeof(r.topic), "%s", topic);
    snprintf(r.detail, sizeof(r.detail), "%s", detail ? detail : "");
    size_t n = m->len < sizeof(r.payload) - 1 ? m->len : sizeof(r.payload) - 1;
    memcpy(r.payload, payload, n);
    r.payload[n] = '\0';
    pthread_mutex_lock(&s->err_lock);
    s->latest[s->nlatest++ % SPEED_LATEST_REJECTS] = r;
    pthread_mutex_unlock(&s->err_lock);
}

/* Adds one Kafka message to the open transaction. Returns 0 or -ENOMEM. */
static int take_message(speed *s, const rd_kafka_message_t *m)
{
    const config *cfg = s->cfg;
    const char *topic = rd_kafka_topic_name(m->rkt);
    size_t si = stream_of_topic(cfg, topic);
    speed_part *p = si == SIZE_MAX ? NULL : speed_find_part(s, si, m->partition);
    if (!p)
        return 0;   /* not ours (cannot happen with explicit assignment) */
    if (p->taken_offset >= 0 && m->offset < p->taken_offset)
        return 0;   /* already taken: a re-delivery must not count twice */
    if (p->taken_offset >= 0 && m->offset > p->taken_offset)
        check_offset_jump(s, p, m->offset);

    const stream_def *st = &cfg->streams[si];
    rd_kafka_timestamp_type_t tstype;
    int64_t kafka_ts = rd_kafka_message_timestamp(m, &tstype);
    int64_t ts_ms;
    const char *reason = NULL, *detail = NULL;
    const char *payload = m->payload ? m->payload : "";
    int r = event_decode(s->dec, st, payload, m->len, kafka_ts, &ts_ms, s->vals, &reason, &detail);
    if (r == -ENOMEM)
        return r;
    int64_t tpart = r == 0 ? gran_floor(cfg->batch_partition, floor_div(ts_ms, 1000)) : 0;
    if (r == 0 && tpart < s->arch_cut) {
        /* its partition is gone from the archive and every view: keeping
         * it would bring back a sliver of a dropped partition */
        r = -EINVAL;
        reason = REJECT_RETENTION;
        detail = "its time partition is older than archive.retention";
    }
    if (r < 0) {
        r = arch_txn_add_reject(s->txn, topic, m->partition, m->offset, reason, detail, payload,
                                m->len);
        for (int k = 0; k < SPEED_REJECT_REASONS; k++)
            if (reason == speed_reject_reasons[k] || strcmp(reason, speed_reject_reasons[k]) == 0) {
                s->reject_tally[si][k]++;
                note_reject(s, topic, m, speed_reject_reasons[k], detail, payload);
                break;
            }
    } else {
        if (ts_ms > s->stream_newest_ms[si])
            s->stream_newest_ms[si] = ts_ms;
        r = arch_txn_add_event(s->txn, st->name, m->partition, tpart, m->offset, ts_ms, payload,
                               m->len);
        for (size_t v = 0; r == 0 && v < cfg->nviews; v++)
            if (cfg->views[v].stream_idx == si && view_keeps(s, v, ts_ms))
                r = event_apply(&cfg->views[v], s->stage[v], ts_ms, s->vals, s->dec);
        s->stage_events++;
    }
    if (r < 0)
        return r;
    p->taken_offset = m->offset + 1;   /* published as next_offset at COMMIT */
    p->dirty = true;
    if (!s->txn_started_ms)
        s->txn_started_ms = speed_now_ms();
    return 0;
}

/* Logs a consumer error, at most once per 10 s per error code. */
static void log_consumer_error(const rd_kafka_message_t *m)
{
    static rd_kafka_resp_err_t last_err;
    static int64_t last_ms;
    int64_t now = speed_now_ms();
    if (m->err == last_err && now - last_ms < 10000)
        return;
    last_err = m->err;
    last_ms = now;
    if (m->rkt)
        log_warn("Kafka: %s [%d]: %s", rd_kafka_topic_name(m->rkt), (int)m->partition,
                 rd_kafka_message_errstr(m));
    else
        log_warn("Kafka: %s", rd_kafka_message_errstr(m));
}

/* Refreshes every partition's high watermark (librdkafka's cached value,
 * updated by fetch responses: no request is sent) and the total lag. */
static void refresh_lag(speed *s)
{
    int64_t lag = 0;
    /* Offsets deleted while no message came after them (the parts array
     * is only changed by this thread: no lock to read it). */
    for (size_t i = 0; i < s->nparts; i++) {
        speed_part *p = &s->parts[i];
        int64_t lo, hi;
        if (rd_kafka_get_watermark_offsets(s->rk, s->cfg->streams[p->stream_idx].topic,
                                           p->partition, &lo, &hi) == 0 && lo >= 0)
            note_lost_offsets(s, p, INT64_MAX, lo);
    }
    pthread_mutex_lock(&s->parts_lock);
    for (size_t i = 0; i < s->nparts; i++) {
        speed_part *p = &s->parts[i];
        int64_t lo, hi;
        if (rd_kafka_get_watermark_offsets(s->rk, s->cfg->streams[p->stream_idx].topic,
                                           p->partition, &lo, &hi) == 0 && hi >= 0)
            p->high_watermark = hi;
        if (p->high_watermark >= 0)
            lag += p->high_watermark - (p->next_offset >= 0 ? p->next_offset : 0);
    }
    pthread_mutex_unlock(&s->parts_lock);
    s->lag = lag > 0 ? lag : 0;
}

static void *speed_main(void *arg)
{
    speed *s = arg;
    const config *cfg = s->cfg;
    rd_kafka_message_t *msgs[BATCH_MAX];
    int64_t retry_at = 0;

    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);   /* signals go to the main thread */
    speed_calls_open(s, true);   /* served once the loop turns */

    /* Contact and progress count from the start: a broker that never
     * answers makes the daemon unready after kafka.unreachable_after_ms. */
    s->last_loop_ms = s->last_message_ms = s->last_contact_ms = speed_now_ms();
    speed_refresh_assignment(s, 2000);
    s->next_metadata_ms = speed_now_ms() + cfg->metadata_refresh_ms;
    s->consuming = true;

    while (!s->stop_requested && !s->failed) {
        speed_serve_call(s);   /* an import's transaction, between two of ours */
        int64_t now = speed_now_ms();
        s->last_loop_ms = now;
        if (now >= s->next_watermarks_ms) {
            refresh_lag(s);
            s->next_watermarks_ms = now + 1000;
        }
        if (now >= s->next_metadata_ms) {
            speed_refresh_assignment(s, 1000);
            s->next_metadata_ms = speed_now_ms() + cfg->metadata_refresh_ms;
        }
        if (retry_at) {
            /* The last commit failed: hold the transaction, read nothing
             * more, and retry until the archive takes it. */
            if (now < retry_at) {
                usleep(20000);
                continue;
            }
            retry_at = commit_txn(s) < 0 ? speed_now_ms() + COMMIT_RETRY_MS : 0;
            continue;
        }
        int timeout = POLL_MAX_MS;
        if (s->txn_started_ms) {
            int64_t left = s->txn_started_ms + cfg->commit_interval_ms - now;
            timeout = left < 0 ? 0 : left < timeout ? (int)left : timeout;
        }
        size_t room = (size_t)cfg->commit_max_events - (size_t)s->stage_events;
        if (room > BATCH_MAX)
            room = BATCH_MAX;
        ssize_t n;
        if (!s->txn_started_ms) {
            /* An empty transaction: take the first message the moment it
             * arrives (consume_batch_queue would wait for a full batch or
             * the whole timeout), so the commit interval starts with it. */
            msgs[0] = rd_kafka_consume_queue(s->queue, timeout);
            n = msgs[0] ? 1 : 0;
        } else {
            /* Collect until the transaction's interval ends (or a full batch). */
            n = rd_kafka_consume_batch_queue(s->queue, timeout, msgs, room ? room : 1);
        }
        if (n > 0) {
            s->last_message_ms = s->last_contact_ms = speed_now_ms();
            refresh_cuts(s);
        }
        for (ssize_t i = 0; i < n; i++) {
            rd_kafka_message_t *m = msgs[i];
            if (!m->err) {
                s->consumed++;
                if (take_message(s, m) < 0) {
                    log_error("Out of memory taking a Kafka message; stopping (nothing "
                              "uncommitted was acknowledged)");
                    s->failed = true;
                }
            } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                log_consumer_error(m);
            }
            rd_kafka_message_destroy(m);
        }
        now = speed_now_ms();
        if (s->txn_started_ms && !s->failed &&
            (now - s->txn_started_ms >= cfg->commit_interval_ms ||
             s->stage_events >= cfg->commit_max_events))
            retry_at = commit_txn(s) < 0 ? now + COMMIT_RETRY_MS : 0;
    }

    /* Stop: finish the current transaction (bounded retries). */
    for (int tries = 0; s->txn_started_ms && !s->failed && tries < 5; tries++) {
        if (commit_txn(s) == 0)
            break;
        usleep(200000);
    }
    if (s->txn_started_ms)
        log_error("Stopping with %zu uncommitted event(s): not archived, so they will be read "
                  "from Kafka again at the next start", arch_txn_events(s->txn));
    speed_calls_open(s, false);
    s->consuming = false;
    return NULL;
}

/* ---- Kafka consumer --------------------------------------------------- */

/* librdkafka logs from its own threads; while a broker is down the same
 * line comes every second: each distinct line is logged at most once per
 * 10 s, with a count of what was held back (core/log.h, log_flood). */
static void kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    int held = 0;
    int lvl = level <= 3 ? LOG_LVL_ERR : level == 4 ? LOG_LVL_WARN : LOG_LVL_DEBUG;
    char source[64];
    snprintf(source, sizeof(source), "librdkafka %s", fac);
    if (lvl == LOG_LVL_DEBUG ? log_level() < LOG_LVL_DEBUG : log_flood(source, buf, &held))
        return;
    if (held)
        log_msg(lvl, "librdkafka %s: %s (%d similar line(s) held back)", fac, buf, held);
    else
        log_msg(lvl, "librdkafka %s: %s", fac, buf);
}

static void kafka_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    (void)opaque;
    static int last_err;
    static int64_t last_ms;
    metrics_counter_add(&m_kafka_errors, METRIC_LABELS(rd_kafka_err2name((rd_kafka_resp_err_t)err)), 1);
    int64_t now = speed_now_ms();
    if (err == last_err && now - last_ms < 10000)
        return;   /* no log flood while a broker is down */
    last_err = err;
    last_ms = now;
    log_warn("Kafka: %s: %s", rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static int create_consumer(speed *s, char **errmsg)
{
    rd_kafka_conf_t *conf = NULL;
    config_errors errs = {0};
    int r = kafka_conf_build(s->cfg, &conf, &errs);
    if (r < 0) {
        /* the daemon checked the config before starting: this is rare */
        *errmsg = errs.n ? str_printf("%s%s", errs.items[0], errs.n > 1 ? " (and more)" : "")
                         : NULL;
        config_errors_clear(&errs);
        return r;
    }
    rd_kafka_conf_set_log_cb(conf, kafka_log_cb);
    rd_kafka_conf_set_error_cb(conf, kafka_error_cb);

    char err[512];
    s->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!s->rk) {
        rd_kafka_conf_destroy(conf);
        *errmsg = str_printf("cannot create Kafka consumer: %s", err);
        return -EINVAL;
    }
    /* conf is owned by s->rk from here on. */
    rd_kafka_poll_set_consumer(s->rk);
    s->queue = rd_kafka_queue_get_consumer(s->rk);
    return 0;
}

int speed_start(speed *s, char **errmsg)
{
    int r = create_consumer(s, errmsg);
    if (r < 0)
        return r;
    r = pthread_create(&s->thread, NULL, speed_main, s);
    if (r != 0) {
        *errmsg = str_printf("cannot start the speed thread: %s", strerror(r));
        return -r;
    }
    s->thread_started = true;
    return 0;
}

void speed_stop(speed *s)
{
    if (!s || !s->thread_started)
        return;
    s->stop_requested = true;
    pthread_join(s->thread, NULL);
    s->thread_started = false;
}

bool speed_failed(const speed *s)
{
    return s->failed;
}

typedef struct {
    rd_kafka_t *rk;
    atomic_bool done;
} destroyer;

static void *destroy_main(void *arg)
{
    destroyer *d = arg;
    /* No consumer close: with explicit assignment there is no group
     * membership to leave, and rd_kafka_consumer_close() waits forever for
     * an unreachable coordinator. */
    rd_kafka_destroy_flags(d->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    atomic_store(&d->done, true);
    return NULL;
}

/* librdkafka 2.0.2 can deadlock in rd_kafka_destroy() after a broker
 * outage (a lock-order inversion between its main and broker threads;
 * upstream issues 4519 and 5476). Everything is archived by now, so the
 * handle is destroyed on a helper thread, and given up on (leaked, and
 * said so) if that takes more than DESTROY_WAIT_MS: a stop never hangs. */
#define DESTROY_WAIT_MS 10000

static void destroy_consumer(rd_kafka_t *rk)
{
    destroyer *d = calloc(1, sizeof(*d));
    pthread_t t;
    if (d)
        d->rk = rk;
    if (!d || pthread_create(&t, NULL, destroy_main, d) != 0) {
        free(d);
        rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
        return;
    }
    for (int waited = 0; waited < DESTROY_WAIT_MS && !atomic_load(&d->done); waited += 10)
        usleep(10000);
    if (atomic_load(&d->done)) {
        pthread_join(t, NULL);
        free(d);
        return;
    }
    pthread_detach(t);   /* d stays with the stuck thread */
    log_warn("The Kafka client did not shut down within %d s (a known librdkafka deadlock "
             "after a broker outage); leaving it behind. Every consumed event is archived.",
             DESTROY_WAIT_MS / 1000);
}

void speed_free(speed *s)
{
    if (!s)
        return;
    speed_stop(s);
    if (s->queue)
        rd_kafka_queue_destroy(s->queue);
    if (s->rk)
        destroy_consumer(s->rk);
    vtables_free(s->stage, s->cfg->nviews);
    arch_txn_free(s->txn);
    event_decoder_free(s->dec);
    free(s->vals);
    if (s->topic_problem)
        for (size_t i = 0; i < s->cfg->nstreams; i++)
            free(s->topic_problem[i]);
    free(s->topic_problem);
    free(s->parts);
    free(s->reject_tally);
    free(s->view_cut);
    free(s->stream_newest_ms);
    arch_close(s->w);
    pthread_mutex_destroy(&s->parts_lock);
    pthread_mutex_destroy(&s->err_lock);
    pthread_mutex_destroy(&s->call_lock);
    pthread_cond_destroy(&s->call_cond);
    free(s);
}

/* ---- readers (any thread) --------------------------------------------- */

void speed_get_rejects(speed *s, int64_t by_reason[SPEED_REJECT_REASONS],
                       speed_reject latest[SPEED_LATEST_REJECTS], size_t *nlatest)
{
    pthread_mutex_lock(&s->err_lock);
    memcpy(by_reason, s->rejects_by_reason, sizeof(s->rejects_by_reason));
    size_t n = s->nlatest < SPEED_LATEST_REJECTS ? (size_t)s->nlatest : SPEED_LATEST_REJECTS;
    for (size_t i = 0; i < n; i++)   /* newest first */
        latest[i] = s->latest[(s->nlatest - 1 - i) % SPEED_LATEST_REJECTS];
    *nlatest = n;
    pthread_mutex_unlock(&s->err_lock);
}

void speed_get_stats(speed *s, speed_stats *st)
{
    memset(st, 0, sizeof(*st));
    st->consuming = s->consuming;
    st->consumed = s->consumed;
    st->archived_events = s->archived_events;
    st->rejects = s->rejects;
    st->commits = s->commits;
    st->archive_bytes = s->archive_bytes;
    st->archive_chunks = s->archive_chunks;
    st->lag = s->lag;
    st->newest_event_ms = s->newest_event_ms;
    int64_t now = speed_now_ms();
    st->since_loop_ms = s->consuming ? now - s->last_loop_ms : 0;
    st->since_contact_ms = s->consuming ? now - s->last_contact_ms : 0;
    st->since_message_ms = now - s->last_message_ms;
    st->write_failures = s->write_failures;
    pthread_mutex_lock(&s->err_lock);
    memcpy(st->write_error, s->write_error, sizeof(st->write_error));
    st->write_error_since = s->write_error_since;
    pthread_mutex_unlock(&s->err_lock);
}

size_t speed_get_partitions(speed *s, const char *topic, speed_partition *out, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&s->parts_lock);
    for (size_t i = 0; i < s->nparts && n < max; i++) {
        const speed_part *p = &s->parts[i];
        if (strcmp(s->cfg->streams[p->stream_idx].topic, topic) != 0)
            continue;
        out[n++] = (speed_partition){.partition = p->partition, .next_offset = p->next_offset,
                                     .high_watermark = p->high_watermark,
                                     .lost_offsets = p->lost_offsets};
    }
    pthread_mutex_unlock(&s->parts_lock);
    return n;
}
