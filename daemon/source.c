/* source.c - answers the HTTP layer's questions from the views' state and
 * the layers. Called on libmicrohttpd's pool threads; everything it reads
 * is guarded by the owners' locks (vstate's snapshot mutex, the speed and batch
 * layers' mutexes). */
#include "daemon/source.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "archive/archive.h"
#include "core/jbuf.h"
#include "import/import.h"
#include "core/log.h"
#include "core/metrics.h"

METRIC_COUNTER(m_damaged, "lambdad_segments_damaged_total",
               "Batch segments found damaged (or of another format) when read; each makes its "
               "partition rebuilt from the archive.");

typedef struct {
    daemon_source *ds;
    size_t view;
    int64_t from, to;
    gran_t gran;
    int (*seg_fn)(const segment *seg, void *fnud);
    int (*fn)(const vrow *row, void *fnud);
    void *fnud;
} scan_ctx;

/* A segment that cannot be read back (damaged, another format or shape):
 * its partition is rebuilt from the archive, and queries over it answer
 * 503 until then (the view's other partitions keep answering). The first
 * query to find it logs it and asks for the rebuild. */
static void segment_damaged(daemon_source *ds, size_t v, const bseg *bs, int r)
{
    if (!vstate_mark_damaged(ds->vs, v, bs->id))
        return;   /* found already, or replaced meanwhile */
    char start[32];
    time_format_rfc3339(bs->start, start, sizeof(start));
    log_error("Segment %lld of view '%s' (partition %s) cannot be read (%s); rebuilding that "
              "partition from the archive, queries over it answer 503 until then",
              (long long)bs->id, ds->cfg->views[v].name, start,
              r == -EPROTONOSUPPORT ? "another format version" : r == -EINVAL ? "another shape" :
              r == -ENOENT ? "missing" : "damaged");
    metrics_counter_add(&m_damaged, NULL, 1);
    batch_request_partition(ds->b, v, bs->start);
}

static int with_segment(const bseg *bs, void *ud)
{
    scan_ctx *c = ud;
    segcache_ref *ref = NULL;
    int r = segcache_get(c->ds->cache, bs->id, &c->ds->cfg->views[c->view], c->gran, c->from,
                         c->to, &ref);
    if (r == -ENOENT && atomic_load(&c->ds->frozen))
        return -EAGAIN;   /* superseded, and deleted by the next runtime's start */
    if (r == -EBADMSG || r == -EPROTONOSUPPORT || r == -EINVAL || r == -ENOENT) {
        segment_damaged(c->ds, c->view, bs, r);
        return -EAGAIN;
    }
    if (r < 0)
        return r;
    r = c->seg_fn(segcache_segment(ref), c->fnud);
    segcache_put(c->ds->cache, ref);
    return r;
}

static int with_row(const vrow *row, void *ud)
{
    scan_ctx *c = ud;
    return c->fn(row, c->fnud);
}

void source_watermark(const config *cfg, size_t view_idx, const vstate_watermark *w,
                      serving_watermark *wm)
{
    arch_damage_count dmg;
    arch_damage_totals(cfg->archive_path, cfg->streams[cfg->views[view_idx].stream_idx].name,
                       &dmg);
    *wm = (serving_watermark){.version = w->version, .epoch = w->epoch,
                              .batch_seq = w->batch_seq, .batch_at = w->batch_at,
                              .live_events = w->pending_events + w->live_events,
                              .unreadable_events = dmg.events};
}

static int scan_view(void *ud, size_t view_idx, int64_t from, int64_t to, gran_t gran,
                     int (*seg_fn)(const segment *seg, void *fnud),
                     int (*fn)(const vrow *row, void *fnud), void *fnud, serving_watermark *wm)
{
    daemon_source *ds = ud;
    if (!atomic_load(&ds->recovered))
        return -EAGAIN;   /* partial live tables would give wrong answers */
    vstate_watermark w;
    scan_ctx c = {.ds = ds, .view = view_idx, .from = from, .to = to, .gran = gran,
                  .seg_fn = seg_fn, .fn = fn, .fnud = fnud};
    /* -EAGAIN: being recomputed */
    int r = vstate_scan(ds->vs, view_idx, from, to, with_segment, with_row, &c, &w);
    if (wm)
        source_watermark(ds->cfg, view_idx, &w, wm);
    return r;
}

static json_t *time_or_null(int64_t t)
{
    if (t <= 0)
        return json_null();
    char buf[32];
    time_format_rfc3339(t, buf, sizeof(buf));
    return json_string(buf);
}

static void add_batch(daemon_source *ds, json_t *obj)
{
    batch_status bs;
    batch_get_status(ds->b, &bs);
    vstate_watermark w;
    vstate_get_watermark(ds->vs, &w);
    json_t *b = json_object();
    json_object_set_new(b, "R", json_integer(w.batch_seq));
    json_object_set_new(b, "batch_at", time_or_null(w.batch_at));
    json_object_set_new(b, "interval_s", json_integer(ds->cfg->batch_interval_s));
    json_object_set_new(b, "running", json_boolean(bs.running));
    json_object_set_new(b, "runs", json_integer(bs.runs));
    json_object_set_new(b, "failures", json_integer(bs.failures));
    json_object_set_new(b, "last_run_at", time_or_null(bs.last_run_at));
    json_object_set_new(b, "last_duration_ms", json_integer(bs.last_duration_ms));
    json_object_set_new(b, "last_rows_scanned", json_integer(bs.last_rows_scanned));
    json_object_set_new(b, "next_run_at", time_or_null(bs.next_run_at));
    json_object_set_new(b, "last_error", bs.last_error[0] ? json_string(bs.last_error) : json_null());
    json_object_set_new(obj, "batch", b);

    json_t *views = json_object();
    for (size_t v = 0; v < ds->cfg->nviews; v++) {
        batch_view_status s;
        vstate_view_stats st;
        /* The state first: a run updates its figures before it swaps, so
         * a view seen available is seen with the run that made it so. */
        vstate_get_view_stats(ds->vs, v, &st);
        batch_get_view_status(ds->b, v, &s);
        json_t *o = json_object();
        json_object_set_new(o, "available", json_boolean(st.available));
        json_object_set_new(o, "fingerprint", json_string(ds->cfg->views[v].fingerprint));
        json_object_set_new(o, "R", json_integer(s.R));
        json_object_set_new(o, "last_run_at", time_or_null(s.last_run_at));
        json_object_set_new(o, "last_duration_ms", json_integer(s.last_duration_ms));
        json_object_set_new(o, "last_rows_scanned", json_integer(s.last_rows_scanned));
        json_object_set_new(o, "last_partitions", json_integer(s.last_partitions));
        json_object_set_new(o, "last_full", json_boolean(s.last_full));
        json_object_set_new(o, "recomputes", json_integer(s.recomputes));
        json_object_set_new(o, "full_recomputes", json_integer(s.full_recomputes));
        json_object_set_new(o, "rows_scanned_total", json_integer(s.rows_scanned_total));
        json_object_set_new(o, "partitions_total", json_integer(s.partitions_total));
        json_object_set_new(o, "needs_full", json_boolean(s.needs_full));
        json_t *dmg = json_array();
        for (size_t i = 0; i < s.damaged_waiting && i < BATCH_DAMAGED_LIST; i++)
            json_array_append_new(dmg, time_or_null(s.damaged_starts[i]));
        json_object_set_new(o, "damaged_partitions", dmg);
        json_object_set_new(o, "damaged_rebuilt", json_integer(s.damaged_rebuilt));
        json_object_set_new(o, "next_run_at", time_or_null(bs.next_run_at));
        json_object_set_new(o, "batch_partitions", json_integer(st.batch_parts));
        json_object_set_new(o, "batch_rows", json_integer(st.batch_rows));
        json_object_set_new(o, "batch_bytes", json_integer(st.batch_bytes));
        json_object_set_new(o, "oldest_partition", s.oldest == INT64_MIN ? json_null()
                                                                        : time_or_null(s.oldest));
        json_object_set_new(o, "retention_s", json_integer(ds->cfg->views[v].retention_s));
        json_object_set_new(o, "pending_rows", json_integer(st.pending_rows));
        json_object_set_new(o, "live_rows", json_integer(st.live_rows));
        json_object_set_new(o, "live_bytes", json_integer(st.live_bytes + st.pending_bytes));
        json_object_set_new(views, ds->cfg->views[v].name, o);
    }
    json_object_set_new(obj, "views", views);
}

static void add_partitions(daemon_source *ds, json_t *speed_obj)
{
    json_t *topics = json_object();
    for (size_t i = 0; i < ds->cfg->nstreams; i++) {
        const char *topic = ds->cfg->streams[i].topic;
        speed_partition parts[1024];
        size_t n = speed_get_partitions(ds->sp, topic, parts, 1024);
        json_t *arr = json_array();
        for (size_t k = 0; k < n; k++) {
            json_t *p = json_object();
            json_object_set_new(p, "partition", json_integer(parts[k].partition));
            json_object_set_new(p, "next_offset", parts[k].next_offset >= 0
                                                      ? json_integer(parts[k].next_offset)
                                                      : json_null());
            json_object_set_new(p, "high_watermark", parts[k].high_watermark >= 0
                                                         ? json_integer(parts[k].high_watermark)
                                                         : json_null());
            int64_t lag = -1;
            if (parts[k].high_watermark >= 0)
                lag = parts[k].high_watermark - (parts[k].next_offset >= 0 ? parts[k].next_offset : 0);
            json_object_set_new(p, "lag", lag >= 0 ? json_integer(lag) : json_null());
            json_object_set_new(p, "offsets_lost", json_integer(parts[k].lost_offsets));
            json_array_append_new(arr, p);
        }
        json_object_set_new(topics, topic, arr);
    }
    json_object_set_new(speed_obj, "partitions", topics);
}

/* Damaged archive chunks (archive/damage.c): totals, and the latest few. */
enum { STATUS_DAMAGED_MAX = 10 };

static int add_damaged_chunk(const arch_damage *d, void *ud)
{
    json_t *o = json_object();
    json_object_set_new(o, "seq", json_integer(d->seq));
    json_object_set_new(o, "stream", json_string(d->stream));
    json_object_set_new(o, "partition", json_integer(d->partition));
    json_object_set_new(o, "first_offset", json_integer(d->first_offset));
    json_object_set_new(o, "last_offset", json_integer(d->last_offset));
    json_object_set_new(o, "events", json_integer(d->events));
    char tp[32];
    time_format_rfc3339(d->tpart, tp, sizeof(tp));
    json_object_set_new(o, "time_partition", json_string(tp));
    json_object_set_new(o, "reason", json_string(d->reason));
    json_object_set_new(o, "found_at", time_or_null(d->found_at));
    json_array_append_new(ud, o);
    return 0;
}

static void add_damage(daemon_source *ds, json_t *a)
{
    arch_damage_count c;
    arch_damage_totals(ds->cfg->archive_path, NULL, &c);
    json_object_set_new(a, "damaged_chunks", json_integer(c.chunks));
    json_object_set_new(a, "unreadable_events", json_integer(c.events));
    json_t *list = json_array();
    arch_damage_list(ds->cfg->archive_path, STATUS_DAMAGED_MAX, add_damaged_chunk, list);
    json_object_set_new(a, "damaged", list);
}

/* Compaction, retention and vacuum (batch/maint.c), into the archive's
 * status. */
static void add_maintenance(daemon_source *ds, json_t *a)
{
    batch_status bs;
    batch_get_status(ds->b, &bs);
    json_object_set_new(a, "oldest_partition", bs.archive_oldest == INT64_MIN
                                                   ? json_null() : time_or_null(bs.archive_oldest));
    json_object_set_new(a, "retention_s", json_integer(ds->cfg->archive_retention_s));
    json_t *c = json_object();
    json_object_set_new(c, "merges", json_integer(bs.compact_merges));
    json_object_set_new(c, "chunks_compacted", json_integer(bs.compact_chunks));
    json_object_set_new(c, "bytes_before", json_integer(bs.compact_bytes_before));
    json_object_set_new(c, "bytes_after", json_integer(bs.compact_bytes_after));
    json_object_set_new(c, "longest_txn_ms", json_real(bs.compact_longest_txn_ms));
    json_object_set_new(c, "mean_txn_ms", json_real(bs.compact_merges ? bs.compact_txn_ms /
                                                                       (double)bs.compact_merges
                                                                     : 0.0));
    json_object_set_new(a, "compaction", c);
    json_t *r = json_object();
    json_object_set_new(r, "dropped_chunks", json_integer(bs.retention_chunks));
    json_object_set_new(r, "dropped_events", json_integer(bs.retention_events));
    json_object_set_new(a, "retention", r);
    json_object_set_new(a, "vacuumed_pages", json_integer(bs.vacuum_pages));
    json_object_set_new(a, "vacuum_longest_txn_ms", json_real(bs.vacuum_longest_txn_ms));
    json_object_set_new(a, "auto_vacuum", json_boolean(!bs.vacuum_off));
    json_object_set_new(a, "maintenance_error", bs.maint_error[0] ? json_string(bs.maint_error)
                                                                  : json_null());
}

/* speed.rejects_by_reason and speed.latest_rejects: since start, from the
 * speed layer's memory (the archive's rejects table holds them all). */
static void add_rejects(daemon_source *ds, json_t *s)
{
    int64_t by[SPEED_REJECT_REASONS];
    speed_reject latest[SPEED_LATEST_REJECTS];
    size_t n;
    speed_get_rejects(ds->sp, by, latest, &n);
    json_t *o = json_object(), *list = json_array();
    for (int k = 0; k < SPEED_REJECT_REASONS; k++)
        json_object_set_new(o, speed_reject_reasons[k], json_integer(by[k]));
    for (size_t i = 0; i < n; i++) {
        const speed_reject *r = &latest[i];
        json_t *j = json_object();
        json_object_set_new(j, "topic", json_string(r->topic));
        json_object_set_new(j, "partition", json_integer(r->partition));
        json_object_set_new(j, "offset", json_integer(r->offset));
        json_object_set_new(j, "reason", json_string(r->reason));
        json_object_set_new(j, "detail", json_string(r->detail));
        /* the payload may be any bytes: shown as text, invalid UTF-8 as U+FFFD */
        jbuf pb;
        jb_init(&pb);
        jb_str(&pb, r->payload, strlen(r->payload));
        json_t *ps = pb.p ? json_loads(pb.p, JSON_DECODE_ANY, NULL) : NULL;
        jb_free(&pb);
        json_object_set_new(j, "payload", ps ? ps : json_string(""));
        json_object_set_new(j, "payload_bytes", json_integer((json_int_t)r->payload_len));
        json_array_append_new(list, j);
    }
    json_object_set_new(s, "rejects_by_reason", o);
    json_object_set_new(s, "latest_rejects", list);
}

static void status(void *ud, json_t *obj)
{
    daemon_source *ds = ud;
    speed_stats st;
    speed_get_stats(ds->sp, &st);

    json_t *a = json_object();
    json_object_set_new(a, "path", json_string(ds->cfg->archive_path));
    json_object_set_new(a, "events", json_integer(st.archived_events));
    json_object_set_new(a, "rejects", json_integer(st.rejects));
    json_object_set_new(a, "bytes", json_integer(st.archive_bytes));
    json_object_set_new(a, "chunks", json_integer(st.archive_chunks));
    vstate_watermark aw;
    vstate_get_watermark(ds->vs, &aw);
    json_object_set_new(a, "last_seq", json_integer(aw.last_seq));   /* applied = committed */
    add_damage(ds, a);
    json_object_set_new(a, "writable", json_boolean(!st.write_error_since));
    json_t *we = json_null();
    if (st.write_error_since) {
        we = json_object();
        json_object_set_new(we, "message", json_string(st.write_error));
        json_object_set_new(we, "since", time_or_null(st.write_error_since));
    }
    json_object_set_new(a, "write_error", we);
    json_object_set_new(a, "write_failures", json_integer(st.write_failures));
    add_maintenance(ds, a);
    json_object_set_new(obj, "archive", a);
    json_t *rr = json_array();
    for (const char *p = ds->restart_required; *p;) {
        size_t n = strcspn(p, ",");
        json_array_append_new(rr, json_stringn(p, n));
        p += n + (p[n] == ',');
    }
    json_object_set_new(obj, "restart_required", rr);
    json_object_set_new(obj, "reloading", json_boolean(atomic_load(&ds->frozen)));

    json_t *s = json_object();
    json_object_set_new(s, "recovered", json_boolean(atomic_load(&ds->recovered)));
    json_object_set_new(s, "consuming", json_boolean(st.consuming));
    json_object_set_new(s, "consumed", json_integer(st.consumed));
    json_object_set_new(s, "commits", json_integer(st.commits));
    json_object_set_new(s, "lag", json_integer(st.lag));
    json_object_set_new(s, "newest_event_at",
                        st.newest_event_ms > 0 ? time_or_null(st.newest_event_ms / 1000) : json_null());
    json_object_set_new(s, "since_message_ms", json_integer(st.since_message_ms));
    json_object_set_new(s, "since_broker_contact_ms", json_integer(st.since_contact_ms));
    vstate_watermark w;
    vstate_get_watermark(ds->vs, &w);
    int64_t rows = 0, bytes = 0;
    for (size_t v = 0; v < ds->cfg->nviews; v++) {
        vstate_view_stats vst;
        vstate_get_view_stats(ds->vs, v, &vst);
        rows += vst.live_rows + vst.pending_rows;
        bytes += vst.live_bytes + vst.pending_bytes;
    }
    add_rejects(ds, s);
    json_object_set_new(s, "pending_events", json_integer(w.pending_events));
    json_object_set_new(s, "live_events", json_integer(w.live_events));
    json_object_set_new(s, "live_rows", json_integer(rows));
    json_object_set_new(s, "live_bytes", json_integer(bytes));
    add_partitions(ds, s);
    json_object_set_new(obj, "speed", s);
    add_batch(ds, obj);
    segcache_stats sc;
    segcache_get_stats(ds->cache, &sc);
    json_t *seg = json_object();
    json_object_set_new(seg, "cache_bytes", json_integer((json_int_t)sc.bytes));
    json_object_set_new(seg, "cache_budget_bytes", json_integer((json_int_t)sc.budget));
    json_object_set_new(seg, "cache_entries", json_integer((json_int_t)sc.entries));
    json_object_set_new(seg, "hits", json_integer((json_int_t)sc.hits));
    json_object_set_new(seg, "misses", json_integer((json_int_t)sc.misses));
    json_object_set_new(seg, "evictions", json_integer((json_int_t)sc.evictions));
    json_object_set_new(seg, "damaged", json_integer((json_int_t)sc.damaged));
    json_object_set_new(seg, "read_bytes", json_integer((json_int_t)sc.read_bytes));
    json_object_set_new(obj, "segments", seg);
}

static bool ready(void *ud, const char **reason)
{
    daemon_source *ds = ud;
    if (!atomic_load(&ds->recovered)) {
        *reason = "recovering: rebuilding live views from the archive";
        return false;
    }
    if (atomic_load(&ds->frozen))
        return true;   /* reloading: answering from the previous config meanwhile */
    speed_stats st;
    speed_get_stats(ds->sp, &st);
    if (!st.consuming) {
        *reason = "not consuming Kafka";
        return false;
    }
    /* The reason is formatted per calling thread (HTTP pool threads). */
    static __thread char why[400];
    if (st.since_loop_ms > 10000) {
        snprintf(why, sizeof(why), "the consumer loop has not turned for %lld s",
                 (long long)(st.since_loop_ms / 1000));
        *reason = why;
        return false;
    }
    if (st.write_error_since) {
        snprintf(why, sizeof(why), "archive writes failing for %lld s (ingestion paused): %s",
                 (long long)((int64_t)time(NULL) - st.write_error_since), st.write_error);
        *reason = why;
        return false;
    }
    if (st.since_contact_ms > ds->cfg->unreachable_after_ms) {
        snprintf(why, sizeof(why), "Kafka brokers unreachable for %lld s",
                 (long long)(st.since_contact_ms / 1000));
        *reason = why;
        return false;
    }
    if (st.lag > 0 && st.since_message_ms > ds->cfg->stall_after_ms) {
        snprintf(why, sizeof(why), "consumption stalled: lag of %lld message(s), none consumed "
                 "for %lld s", (long long)st.lag, (long long)(st.since_message_ms / 1000));
        *reason = why;
        return false;
    }
    return true;
}

static uint64_t state_version(void *ud)
{
    daemon_source *ds = ud;
    return vstate_version(ds->vs);   /* before recovery scans answer 503: never cached */
}

static int scan_since(void *ud, size_t view_idx, uint64_t epoch, uint64_t since,
                      int (*fn)(const vrow *row, void *fnud), void *fnud, serving_watermark *wm)
{
    daemon_source *ds = ud;
    if (!atomic_load(&ds->recovered))
        return -EAGAIN;
    vstate_watermark w;
    int r = vstate_scan_since(ds->vs, view_idx, epoch, since, fn, fnud, &w);
    if (wm)
        source_watermark(ds->cfg, view_idx, &w, wm);
    return r;
}

static int recompute(void *ud, long view_idx)
{
    daemon_source *ds = ud;
    if (!ds->b || !atomic_load(&ds->recovered))
        return -EAGAIN;
    batch_request(ds->b, view_idx);
    return 0;
}

/* ---- GET /metrics: the figures read from the layers at scrape time ----
 *
 * Counters here mirror counts the layers keep (they only grow, as
 * Prometheus counters must); the metrics that need a hook at the moment
 * something happens (rejects by reason, commit latency, freshness, batch
 * run durations) are defined where that happens, with core/metrics.h. */

METRIC_GAUGE(m_build, "lambdad_build_info", "Always 1; the version is the label.", "version");
/* The process: under the names every Prometheus client library uses, so
 * stock dashboards and alerts find them. */
METRIC_GAUGE(m_started, "process_start_time_seconds", "When the process started, epoch seconds.");
METRIC_GAUGE(m_rss, "process_resident_memory_bytes", "Resident memory size in bytes.");
METRIC_GAUGE(m_fds, "process_open_fds", "Number of open file descriptors.");
METRIC_GAUGE(m_max_fds, "process_max_fds", "Maximum number of open file descriptors.");
METRIC_GAUGE(m_recovered, "lambdad_recovered",
             "1 once the live views are rebuilt from the archive, else 0.");
METRIC_GAUGE(m_consuming, "lambdad_consuming", "1 while Kafka is being consumed, else 0.");
METRIC_GAUGE(m_ready, "lambdad_ready", "1 when /readyz answers 200, else 0.");
METRIC_COUNTER(m_consumed, "lambdad_events_consumed_total",
               "Kafka messages read since the process started.");
METRIC_COUNTER(m_archived, "lambdad_events_archived_total",
               "Accepted events in the archive (all time, across restarts).");
METRIC_COUNTER(m_rejected, "lambdad_events_rejected_total",
               "Rejected messages in the archive (all time, across restarts).");
METRIC_COUNTER(m_commits, "lambdad_archive_commits_total",
               "Archive transactions committed since the process started.");
METRIC_GAUGE(m_archive_bytes, "lambdad_archive_size_bytes", "The archive database and its WAL on disk.");
METRIC_COUNTER(m_arch_damaged, "lambdad_archive_damaged_chunks_total",
               "Archive chunks found damaged (checksum, decompression or consistency): their "
               "events cannot be read (all time, across restarts).");
METRIC_GAUGE(m_unreadable, "lambdad_archive_unreadable_events",
             "Events in damaged archive chunks, missing from the views' answers.");
METRIC_GAUGE(m_last_seq, "lambdad_archive_last_seq",
             "Seq of the last archive chunk applied to the live views.");
METRIC_GAUGE(m_lag, "lambdad_kafka_consumer_lag_messages",
             "Messages in Kafka not archived yet (high watermark minus next offset).",
             "topic", "partition");
METRIC_GAUGE(m_next_offset, "lambdad_kafka_next_offset",
             "Next Kafka offset to archive (the offset stored in the archive).", "topic", "partition");
METRIC_COUNTER(m_lost, "lambdad_kafka_offsets_lost_total",
               "Offsets Kafka no longer held when lambdad needed them (deleted by retention "
               "before they were archived): messages lost, since the process started.",
               "topic", "partition");
METRIC_GAUGE(m_writable, "lambdad_archive_writable",
             "1 while archive commits succeed, 0 while they fail (disk full, I/O error): "
             "ingestion is paused until they work again.");
METRIC_COUNTER(m_write_failures, "lambdad_archive_write_failures_total",
               "Failed archive commits (each retried until it works) since the process started.");
METRIC_GAUGE(m_hwm, "lambdad_kafka_high_watermark",
             "Kafka's end of log as last seen by the consumer.", "topic", "partition");
METRIC_GAUGE(m_pending_events, "lambdad_pending_events",
             "Events sealed for the running batch run (P).");
METRIC_GAUGE(m_live_events, "lambdad_live_events", "Events in the live tables (L).");
METRIC_GAUGE(m_view_rows, "lambdad_view_rows",
             "Rows (a time bucket and dimension values) held, by view and layer.", "view", "layer");
METRIC_GAUGE(m_view_bytes, "lambdad_view_bytes", "Memory held, by view and layer.", "view", "layer");
METRIC_GAUGE(m_view_available, "lambdad_view_available",
             "1 when the view can be queried, 0 while it waits for a full recompute.", "view");
METRIC_GAUGE(m_view_damaged, "lambdad_view_damaged_partitions",
             "Partitions whose segment was found damaged, answering 503 until their rebuild "
             "from the archive.", "view");
METRIC_GAUGE(m_freshness, "lambdad_freshness_seconds",
             "Now minus the event time of the newest archived event (-1 before the first).");
METRIC_GAUGE(m_batch_seq, "lambdad_batch_seq", "R: the archive seq the batch views cover.");
METRIC_GAUGE(m_batch_at, "lambdad_batch_swap_timestamp_seconds",
             "When the batch views were last swapped in, epoch seconds (0: never).");
METRIC_COUNTER(m_batch_runs, "lambdad_batch_runs_total", "Batch runs since the process started.");
METRIC_COUNTER(m_batch_failures, "lambdad_batch_failures_total",
               "Failed batch runs since the process started.");
METRIC_GAUGE(m_batch_running, "lambdad_batch_running", "1 while a batch run is in progress.");
METRIC_GAUGE(m_batch_success, "lambdad_batch_last_success_timestamp_seconds",
             "When the last successful batch run ended, epoch seconds (0: none since start).");
METRIC_GAUGE(m_batch_since, "lambdad_batch_seconds_since_success",
             "Seconds since the last successful batch run ended, or since the process started "
             "when none has.");
METRIC_GAUGE(m_batch_duration, "lambdad_batch_last_duration_seconds",
             "How long the last successful batch run took.");
METRIC_GAUGE(m_batch_rows, "lambdad_batch_last_rows_scanned",
             "Archived events the last successful batch run decoded.");
METRIC_GAUGE(m_batch_next, "lambdad_batch_next_run_timestamp_seconds",
             "When the next batch run is due, epoch seconds.");

static void metrics_partitions(daemon_source *ds)
{
    for (size_t i = 0; i < ds->cfg->nstreams; i++) {
        const char *topic = ds->cfg->streams[i].topic;
        speed_partition parts[1024];
        size_t n = speed_get_partitions(ds->sp, topic, parts, 1024);
        for (size_t k = 0; k < n; k++) {
            char pnum[16];
            snprintf(pnum, sizeof(pnum), "%d", (int)parts[k].partition);
            const char *const *labels = METRIC_LABELS(topic, pnum);
            int64_t next = parts[k].next_offset >= 0 ? parts[k].next_offset : 0;
            if (parts[k].next_offset >= 0)
                metrics_gauge_set(&m_next_offset, labels, (double)parts[k].next_offset);
            metrics_counter_set(&m_lost, labels, (uint64_t)parts[k].lost_offsets);
            if (parts[k].high_watermark >= 0) {   /* unknown until the first fetch */
                metrics_gauge_set(&m_hwm, labels, (double)parts[k].high_watermark);
                int64_t lag = parts[k].high_watermark - next;
                metrics_gauge_set(&m_lag, labels, (double)(lag > 0 ? lag : 0));
            }
        }
    }
}

static void metrics_views(daemon_source *ds)
{
    for (size_t v = 0; v < ds->cfg->nviews; v++) {
        const char *name = ds->cfg->views[v].name;
        vstate_view_stats st;
        vstate_get_view_stats(ds->vs, v, &st);
        metrics_gauge_set(&m_view_rows, METRIC_LABELS(name, "batch"), (double)st.batch_rows);
        metrics_gauge_set(&m_view_rows, METRIC_LABELS(name, "pending"), (double)st.pending_rows);
        metrics_gauge_set(&m_view_rows, METRIC_LABELS(name, "live"), (double)st.live_rows);
        metrics_gauge_set(&m_view_bytes, METRIC_LABELS(name, "batch"), (double)st.batch_bytes);
        metrics_gauge_set(&m_view_bytes, METRIC_LABELS(name, "pending"), (double)st.pending_bytes);
        metrics_gauge_set(&m_view_bytes, METRIC_LABELS(name, "live"), (double)st.live_bytes);
        metrics_gauge_set(&m_view_available, METRIC_LABELS(name), st.available ? 1 : 0);
        metrics_gauge_set(&m_view_damaged, METRIC_LABELS(name), (double)st.damaged_parts);
    }
}

METRIC_GAUGE(m_segcache_bytes, "lambdad_segment_cache_bytes",
             "Memory held by decoded batch segments in the segment cache.");
METRIC_GAUGE(m_segcache_budget, "lambdad_segment_cache_budget_bytes",
             "The segment cache's budget (segments a query reads may exceed it meanwhile).");
METRIC_GAUGE(m_segcache_entries, "lambdad_segment_cache_entries", "Segments in the segment cache.");
METRIC_COUNTER(m_segcache_total, "lambdad_segment_cache_total",
               "Segments asked for by queries, by whether the cache had them (hit) or they were "
               "read from the views file and decoded (miss).", "result");
METRIC_COUNTER(m_segcache_evictions, "lambdad_segment_cache_evictions_total",
               "Segments evicted from the segment cache to stay within its budget.");
METRIC_COUNTER(m_segcache_read, "lambdad_segment_read_bytes_total",
               "Segment bytes read from the views file.");

static void metrics_segments(daemon_source *ds)
{
    segcache_stats st;
    segcache_get_stats(ds->cache, &st);
    metrics_gauge_set(&m_segcache_bytes, NULL, (double)st.bytes);
    metrics_gauge_set(&m_segcache_budget, NULL, (double)st.budget);
    metrics_gauge_set(&m_segcache_entries, NULL, (double)st.entries);
    metrics_counter_set(&m_segcache_total, METRIC_LABELS("hit"), st.hits);
    metrics_counter_set(&m_segcache_total, METRIC_LABELS("miss"), st.misses);
    metrics_counter_set(&m_segcache_evictions, NULL, st.evictions);
    metrics_counter_set(&m_segcache_read, NULL, st.read_bytes);
}

static void metrics_batch(daemon_source *ds, int64_t now)
{
    if (!ds->b)
        return;
    batch_status bs;
    batch_get_status(ds->b, &bs);
    metrics_counter_set(&m_batch_runs, NULL, (uint64_t)bs.runs);
    metrics_counter_set(&m_batch_failures, NULL, (uint64_t)bs.failures);
    metrics_gauge_set(&m_batch_running, NULL, bs.running ? 1 : 0);
    metrics_gauge_set(&m_batch_success, NULL, (double)bs.last_run_at);
    metrics_gauge_set(&m_batch_since, NULL,
                      (double)(now - (bs.last_run_at > 0 ? bs.last_run_at : ds->started_at)));
    metrics_gauge_set(&m_batch_duration, NULL, (double)bs.last_duration_ms / 1000.0);
    metrics_gauge_set(&m_batch_rows, NULL, (double)bs.last_rows_scanned);
    metrics_gauge_set(&m_batch_next, NULL, (double)bs.next_run_at);
}

static void metrics_process(void)
{
    long pages = 0;
    FILE *f = fopen("/proc/self/statm", "re");
    if (f) {
        if (fscanf(f, "%*d %ld", &pages) == 1)   /* size, then resident pages */
            metrics_gauge_set(&m_rss, NULL, (double)pages * (double)sysconf(_SC_PAGESIZE));
        fclose(f);
    }
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        long n = 0;
        for (struct dirent *e; (e = readdir(d));)
            n += e->d_name[0] != '.';
        closedir(d);
        metrics_gauge_set(&m_fds, NULL, (double)(n - 1));   /* without opendir's own */
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        metrics_gauge_set(&m_max_fds, NULL, rl.rlim_cur == RLIM_INFINITY ? -1 : (double)rl.rlim_cur);
}

static void collect_metrics(void *ud)
{
    daemon_source *ds = ud;
    int64_t now = (int64_t)time(NULL);
    metrics_gauge_set(&m_build, METRIC_LABELS(LAMBDAD_VERSION), 1);
    metrics_gauge_set(&m_started, NULL, (double)ds->started_at);
    const char *why;
    metrics_gauge_set(&m_ready, NULL, ready(ds, &why) ? 1 : 0);
    metrics_gauge_set(&m_recovered, NULL, atomic_load(&ds->recovered) ? 1 : 0);
    metrics_segments(ds);

    speed_stats st;
    speed_get_stats(ds->sp, &st);
    metrics_gauge_set(&m_consuming, NULL, st.consuming ? 1 : 0);
    metrics_counter_set(&m_consumed, NULL, (uint64_t)st.consumed);
    metrics_counter_set(&m_archived, NULL, (uint64_t)st.archived_events);
    metrics_counter_set(&m_rejected, NULL, (uint64_t)st.rejects);
    metrics_counter_set(&m_commits, NULL, (uint64_t)st.commits);
    metrics_gauge_set(&m_archive_bytes, NULL, (double)st.archive_bytes);
    metrics_gauge_set(&m_writable, NULL, st.write_error_since ? 0 : 1);
    metrics_counter_set(&m_write_failures, NULL, (uint64_t)st.write_failures);
    arch_damage_count dmg;
    arch_damage_totals(ds->cfg->archive_path, NULL, &dmg);
    metrics_counter_set(&m_arch_damaged, NULL, (uint64_t)dmg.chunks);
    metrics_gauge_set(&m_unreadable, NULL, (double)dmg.events);
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    double now_s = (double)rt.tv_sec + (double)rt.tv_nsec / 1e9;
    metrics_gauge_set(&m_freshness, NULL,
                      st.newest_event_ms > 0 ? now_s - (double)st.newest_event_ms / 1000.0 : -1);

    vstate_watermark w;
    vstate_get_watermark(ds->vs, &w);
    metrics_gauge_set(&m_last_seq, NULL, (double)w.last_seq);
    metrics_gauge_set(&m_batch_seq, NULL, (double)w.batch_seq);
    metrics_gauge_set(&m_batch_at, NULL, (double)w.batch_at);
    metrics_gauge_set(&m_pending_events, NULL, (double)w.pending_events);
    metrics_gauge_set(&m_live_events, NULL, (double)w.live_events);

    metrics_partitions(ds);
    metrics_views(ds);
    metrics_batch(ds, now);
    metrics_process();
}

/* ---- POST /v1/admin/import: the importer with the speed thread as sink -- */

static int sink_begin(void *ud, const char *stream, const char *hash, const char *name,
                      arch_import *out, char **errmsg)
{
    return speed_import_begin(ud, stream, hash, name, out, errmsg);
}

static int sink_commit(void *ud, arch_txn *t, vtable **stage, int64_t events, char **errmsg)
{
    return speed_import_commit(ud, t, stage, events, errmsg);
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A query pool thread; one import at a time (another answers 429). */
static int import_file(void *ud, const serving_import *rq, serving_import_result *res,
                       char **errmsg)
{
    static pthread_mutex_t one = PTHREAD_MUTEX_INITIALIZER;
    daemon_source *ds = ud;
    if (!atomic_load(&ds->recovered)) {
        *errmsg = strdup("recovering; retry when /readyz answers 200");
        return -EAGAIN;
    }
    if (pthread_mutex_trylock(&one) != 0) {
        *errmsg = strdup("another import is running; retry when it is done");
        return -EBUSY;
    }
    import_opts o = {.cfg = ds->cfg, .stream_idx = rq->stream_idx,
                     .fmt = rq->csv ? IMPORT_CSV : IMPORT_JSONL, .name = rq->name,
                     .commit_records = rq->commit_records, .stop = rq->stop,
                     .sink = {.ud = ds->sp, .begin = sink_begin, .commit = sink_commit,
                              .views = true}};
    import_result r;
    double t0 = mono_s();
    log_info("Import of %s into stream '%s' started", rq->name, ds->cfg->streams[rq->stream_idx].name);
    int rc = import_run(&o, rq->fd, &r, errmsg);
    pthread_mutex_unlock(&one);
    if (rc < 0) {
        log_warn("Import of %s failed after %lld event(s) and %lld reject(s): %s", rq->name,
                 (long long)r.imported, (long long)r.rejected, *errmsg ? *errmsg : strerror(-rc));
        return rc;
    }
    memcpy(res->hash, r.hash, sizeof(res->hash));
    res->records = r.records;
    res->imported = r.imported;
    res->rejected = r.rejected;
    res->skipped = r.skipped;
    res->seconds = mono_s() - t0;
    log_notice("Imported %s into stream '%s': %lld event(s), %lld reject(s), %lld skipped "
               "(already imported) in %.2f s", rq->name, ds->cfg->streams[rq->stream_idx].name,
               (long long)r.imported, (long long)r.rejected, (long long)r.skipped, res->seconds);
    return 0;
}

void daemon_source_init(daemon_source *ds, serving_source *src)
{
    src->ud = ds;
    src->scan_view = scan_view;
    src->status = status;
    src->ready = ready;
    src->recompute = recompute;
    src->version = state_version;
    src->scan_since = scan_since;
    src->metrics = collect_metrics;
    src->import = import_file;
    ds->started_at = (int64_t)time(NULL);
}
