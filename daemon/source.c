/* source.c - answers the HTTP layer's questions from the views' state and
 * the layers. Called on libmicrohttpd's pool threads; everything it reads
 * is guarded by the owners' locks (vstate's rwlock, the speed and batch
 * layers' mutexes). */
#include "daemon/source.h"

#include <errno.h>

static int scan_view(void *ud, size_t view_idx, int (*fn)(const vrow *row, void *fnud),
                     void *fnud, serving_watermark *wm)
{
    daemon_source *ds = ud;
    if (!atomic_load(&ds->recovered))
        return -EAGAIN;   /* partial live tables would give wrong answers */
    vstate_watermark w;
    int r = vstate_scan(ds->vs, view_idx, fn, fnud, &w);   /* -EAGAIN: being recomputed */
    if (wm) {
        wm->batch_seq = w.batch_seq;
        wm->batch_at = w.batch_at;
        wm->live_events = w.pending_events + w.live_events;
    }
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
        batch_get_view_status(ds->b, v, &s);
        vstate_get_view_stats(ds->vs, v, &st);
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
        json_object_set_new(o, "next_run_at", time_or_null(bs.next_run_at));
        json_object_set_new(o, "batch_partitions", json_integer(st.batch_parts));
        json_object_set_new(o, "batch_rows", json_integer(st.batch_rows));
        json_object_set_new(o, "batch_bytes", json_integer(st.batch_bytes));
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
            json_array_append_new(arr, p);
        }
        json_object_set_new(topics, topic, arr);
    }
    json_object_set_new(speed_obj, "partitions", topics);
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
    vstate_watermark aw;
    vstate_get_watermark(ds->vs, &aw);
    json_object_set_new(a, "last_seq", json_integer(aw.last_seq));   /* applied = committed */
    json_object_set_new(obj, "archive", a);

    json_t *s = json_object();
    json_object_set_new(s, "recovered", json_boolean(atomic_load(&ds->recovered)));
    json_object_set_new(s, "consuming", json_boolean(st.consuming));
    json_object_set_new(s, "consumed", json_integer(st.consumed));
    json_object_set_new(s, "commits", json_integer(st.commits));
    vstate_watermark w;
    vstate_get_watermark(ds->vs, &w);
    int64_t rows = 0, bytes = 0;
    for (size_t v = 0; v < ds->cfg->nviews; v++) {
        vstate_view_stats vst;
        vstate_get_view_stats(ds->vs, v, &vst);
        rows += vst.live_rows + vst.pending_rows;
        bytes += vst.live_bytes + vst.pending_bytes;
    }
    json_object_set_new(s, "pending_events", json_integer(w.pending_events));
    json_object_set_new(s, "live_events", json_integer(w.live_events));
    json_object_set_new(s, "live_rows", json_integer(rows));
    json_object_set_new(s, "live_bytes", json_integer(bytes));
    add_partitions(ds, s);
    json_object_set_new(obj, "speed", s);
    add_batch(ds, obj);
}

static bool ready(void *ud, const char **reason)
{
    daemon_source *ds = ud;
    if (!atomic_load(&ds->recovered)) {
        *reason = "recovering: rebuilding live views from the archive";
        return false;
    }
    speed_stats st;
    speed_get_stats(ds->sp, &st);
    if (!st.consuming) {
        *reason = "not consuming Kafka";
        return false;
    }
    return true;
}

static int recompute(void *ud, long view_idx)
{
    daemon_source *ds = ud;
    if (!ds->b || !atomic_load(&ds->recovered))
        return -EAGAIN;
    batch_request(ds->b, view_idx);
    return 0;
}

void daemon_source_init(daemon_source *ds, serving_source *src)
{
    src->ud = ds;
    src->scan_view = scan_view;
    src->status = status;
    src->ready = ready;
    src->recompute = recompute;
}
