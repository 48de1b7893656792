/* source.c - answers the HTTP layer's questions from the speed layer.
 * Called on libmicrohttpd's pool threads; everything it reads is guarded
 * by the speed layer's own locks. */
#include "daemon/source.h"

#include <errno.h>

static int scan_view(void *ud, size_t view_idx, int (*fn)(const vrow *row, void *fnud),
                     void *fnud, serving_watermark *wm)
{
    daemon_source *ds = ud;
    if (!atomic_load(&ds->recovered))
        return -EAGAIN;   /* partial live tables would give wrong answers */
    speed_watermark sw;
    int r = speed_scan_view(ds->sp, view_idx, fn, fnud, &sw);
    if (wm) {
        wm->batch_seq = 0;        /* no batch layer yet: everything is live */
        wm->batch_at = 0;
        wm->live_events = sw.live_events;
    }
    return r;
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
    json_object_set_new(a, "last_seq", json_integer(st.last_seq));
    json_object_set_new(obj, "archive", a);

    json_t *s = json_object();
    json_object_set_new(s, "recovered", json_boolean(atomic_load(&ds->recovered)));
    json_object_set_new(s, "consuming", json_boolean(st.consuming));
    json_object_set_new(s, "consumed", json_integer(st.consumed));
    json_object_set_new(s, "commits", json_integer(st.commits));
    json_object_set_new(s, "live_events", json_integer(st.live_events));
    json_object_set_new(s, "live_rows", json_integer(st.live_rows));
    json_object_set_new(s, "live_bytes", json_integer(st.live_bytes));
    add_partitions(ds, s);
    json_object_set_new(obj, "speed", s);
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

void daemon_source_init(daemon_source *ds, serving_source *src)
{
    src->ud = ds;
    src->scan_view = scan_view;
    src->status = status;
    src->ready = ready;
}
