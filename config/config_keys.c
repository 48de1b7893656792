/* config_keys.c - the key tables of every object in the config file, with
 * their defaults and bounds, and the custom checks that a table entry
 * cannot express: arrays of streams, views and metrics, kafka.options,
 * kafka.partitions, and the rules that tie keys together
 * (a metric's field and type, a stream's time field and format, unique
 * names, a view's stream, an owned partition's topic).
 *
 * The defaults written here are the ones documented in
 * config/lambdad.example.json; change both together.
 *
 * Runs on the thread that loads the config; no shared state, no locks.
 */
#include "config/config_int.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DIMENSIONS 16
#define MAX_METRICS 64

/* The KEY_* table helpers live in config_int.h. */

/* ---- names of enum values, as the tables want them ---- */

static const char *gran_name_of(int v) { return gran_name((gran_t)v); }
static const char *tfmt_name_of(int v) { return time_format_name((time_format)v); }
static const char *mtype_name_of(int v) { return metric_type_name((metric_type)v); }
static const char *start_name_of(int v) { return v == 0 ? "earliest" : "latest"; }

/* ---- cross-references into the document ---- */

/* Index of the element of the top-level "streams" array whose key equals
 * value; -1 when there is none; -2 when that cannot be told, because
 * "streams" is not an array or one of its elements has no string under key
 * (that element has its own error, and a second one here would be noise). */
static long raw_stream_with(cfg_ctx *ctx, const char *key, const char *value)
{
    json_t *streams = json_object_get(ctx->root, "streams");
    if (!json_is_array(streams))
        return -2;
    cfg_stream_index *ix = strcmp(key, "name") == 0 ? &ctx->by_name : &ctx->by_topic;
    if (!ix->built) {
        ix->built = true;
        if (!(ix->first = strmap_new())) {
            ctx->oom = true;
            return -2;
        }
        size_t i, j;
        json_t *s;
        json_array_foreach(streams, i, s) {
            const char *v = json_string_value(json_object_get(s, key));
            if (!v)
                ix->incomplete = true;
            else if (!strmap_get(ix->first, v, strlen(v), &j) &&
                     strmap_put(ix->first, v, strlen(v), i) < 0)
                ctx->oom = true;
        }
    }
    size_t found;
    if (ix->first && strmap_get(ix->first, value, strlen(value), &found))
        return (long)found;
    return ix->incomplete || !ix->first ? -2 : -1;
}

void cfg_ctx_clear(cfg_ctx *ctx)
{
    strmap_free(ctx->by_name.first);
    strmap_free(ctx->by_topic.first);
    ctx->by_name = ctx->by_topic = (cfg_stream_index){0};
}

/* "path[j]" of the first earlier element of arr equal to arr[i], or NULL. */
static char *earlier_duplicate(cfg_ctx *ctx, const char *path, json_t *arr, size_t i)
{
    json_t *v = json_array_get(arr, i);
    for (size_t j = 0; j < i; j++)
        if (json_equal(json_array_get(arr, j), v))
            return cfg_path_idx(ctx, path, j);
    return NULL;
}

/* Reports names[i] equal to an earlier names[j] (both set):
 * "<path>[i].<key>: duplicate <what> '<name>' (also <path>[j])", j being
 * the first element with that name. A map of the names seen, not a
 * comparison of every pair: configs have tens of thousands of views. */
static void check_unique(cfg_ctx *ctx, const char *path, const char *key, const char *what,
                         char *const *names, size_t stride, size_t n)
{
#define NAME_AT(k) (*(char *const *)((const char *)names + (k) * stride))
    strmap *seen = strmap_new();
    if (!seen) {
        ctx->oom = true;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        size_t j;
        if (!NAME_AT(i))
            continue;
        size_t len = strlen(NAME_AT(i));
        if (!strmap_get(seen, NAME_AT(i), len, &j)) {
            if (strmap_put(seen, NAME_AT(i), len, i) < 0) {
                ctx->oom = true;
                break;
            }
            continue;
        }
        char *ipath = cfg_path_idx(ctx, path, i);
        char *kpath = ipath ? cfg_path_key(ctx, ipath, key) : NULL;
        if (kpath)
            cfg_err(ctx, kpath, "duplicate %s '%s' (also %s[%zu])", what, NAME_AT(i), path, j);
        free(ipath);
        free(kpath);
    }
    strmap_free(seen);
#undef NAME_AT
}

/* Reports a problem at the key below path. */
static void err_at(cfg_ctx *ctx, const char *path, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void err_at(cfg_ctx *ctx, const char *path, const char *key, const char *fmt, ...)
{
    char *kpath = cfg_path_key(ctx, path, key), *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    int r = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (r < 0) {
        msg = NULL;
        ctx->oom = true;
    }
    if (kpath && msg)
        cfg_err(ctx, kpath, "%s", msg);
    free(kpath);
    free(msg);
}

/* Allocates *items for the n elements of array v, reporting a wrong type,
 * an empty array (unless allow_empty) or more than max elements (what
 * names them). Returns false when the elements should not be walked. */
static bool array_of(cfg_ctx *ctx, const char *path, json_t *v, size_t max, const char *what,
                     bool allow_empty, void **items, size_t size, size_t *n)
{
    if (!json_is_array(v)) {
        cfg_err(ctx, path, "must be an array");
        return false;
    }
    size_t len = json_array_size(v);
    if (len == 0 && !allow_empty) {
        cfg_err(ctx, path, "must not be empty");
        return false;
    }
    if (len > max) {
        cfg_err(ctx, path, "must have at most %zu %s", max, what);
        return false;
    }
    if (len == 0)
        return true;
    if (!(*items = calloc(len, size))) {
        ctx->oom = true;
        return false;
    }
    /* Counted at once, so config_free frees whatever gets filled. */
    *n = len;
    return true;
}

/* ---- streams ---- */

static const cfg_key stream_keys[] = {
    KEY_NAME("name", stream_def, name, REQUIRED),
    KEY_TOPIC("topic", stream_def, topic, REQUIRED),
    KEY_ENUM("time_format", stream_def, tfmt, tfmt_name_of, TF_EPOCH_S, TF_KAFKA, TF_EPOCH_S),
    /* Required unless time_format is kafka: see stream_rules(). */
    KEY_STR("time_field", stream_def, time_field, NULL),
    KEY_CUSTOM("fields", cfg_check_derived),
    { 0 },
};

static void stream_rules(cfg_ctx *ctx, const char *path, json_t *obj)
{
    json_t *tfj = json_object_get(obj, "time_format");
    time_format tf = TF_EPOCH_S;
    if (tfj && time_format_parse(json_string_value(tfj), &tf) < 0)
        return;   /* reported by the table; the rule depends on a valid format */
    bool has_field = json_object_get(obj, "time_field") != NULL;
    if (tf == TF_KAFKA && has_field)
        err_at(ctx, path, "time_field", "not used with time_format '%s'", time_format_name(tf));
    else if (tf != TF_KAFKA && !has_field)
        err_at(ctx, path, "time_field", "required for time_format '%s'", time_format_name(tf));
    /* In an expression the time field's name is the event time: a derived
     * field of that name could never be read. */
    const char *time_field = json_string_value(json_object_get(obj, "time_field"));
    json_t *derived = json_object_get(obj, "fields");
    if (time_field && json_is_object(derived) && json_object_get(derived, time_field)) {
        char *fpath = cfg_path_key(ctx, path, "fields");
        if (fpath)
            err_at(ctx, fpath, time_field, "the time field cannot be derived");
        free(fpath);
    }
}

static void check_streams(cfg_ctx *ctx, const char *path, json_t *v, void *target)
{
    config *c = target;
    if (!v || !array_of(ctx, path, v, SIZE_MAX, "streams", false, (void **)&c->streams,
                        sizeof(*c->streams), &c->nstreams))
        return;
    for (size_t i = 0; i < c->nstreams; i++) {
        char *ipath = cfg_path_idx(ctx, path, i);
        if (!ipath)
            continue;
        json_t *el = json_array_get(v, i);
        cfg_object(ctx, ipath, el, stream_keys, &c->streams[i]);
        if (json_is_object(el))
            stream_rules(ctx, ipath, el);
        free(ipath);
    }
    /* One topic feeds one stream: two streams on a topic would archive
     * every message twice. */
    check_unique(ctx, path, "name", "stream name", &c->streams[0].name, sizeof(stream_def),
                 c->nstreams);
    check_unique(ctx, path, "topic", "topic", &c->streams[0].topic, sizeof(stream_def),
                 c->nstreams);
}

/* ---- durations (retention) ---- */

/* A "retention" duration at path into *secs (absent: 0, keep forever). */
static void check_duration(cfg_ctx *ctx, const char *path, json_t *v, int64_t *secs)
{
    *secs = 0;
    if (!v)
        return;
    if (!json_is_string(v) || duration_parse(json_string_value(v), secs) < 0)
        cfg_err(ctx, path, "must be a duration such as \"90d\", \"400d\" or \"12h\" "
                "(a positive whole number and one of s, m, h, d, w; at most 36600d)");
}

static void check_archive_retention(cfg_ctx *ctx, const char *path, json_t *v, void *target)
{
    check_duration(ctx, path, v, &((config *)target)->archive_retention_s);
}

static void check_view_retention(cfg_ctx *ctx, const char *path, json_t *v, void *target)
{
    check_duration(ctx, path, v, &((view_def *)target)->retention_s);
}

/* ---- views and their metrics ---- */

/* A quantiles metric's relative accuracy (0: absent, the default). */
static void check_accuracy(cfg_ctx *ctx, const char *path, json_t *v, void *target)
{
    if (!v)
        return;
    double a = json_number_value(v);   /* 0 when not a number */
    if (!json_is_number(v) || !(a >= 0.0001 && a <= 0.5))
        cfg_err(ctx, path, "must be a number between 0.0001 and 0.5");
    else
        ((metric_def *)target)->accuracy = a;
}

static const cfg_key metric_keys[] = {
    KEY_NAME("name", metric_def, name, REQUIRED),
    KEY_ENUM("type", metric_def, type, mtype_name_of, MT_COUNT, MT_LAST, MT_COUNT, REQUIRED),
    /* Required for every type but count, which must not have one. */
    KEY_STR("field", metric_def, field, NULL),
    /* distinct only (default 14, see core/agg.h); quantiles only (0.01) */
    KEY_INT("precision", metric_def, precision, 10, 18, 0),
    KEY_CUSTOM("accuracy", check_accuracy),
    KEY_CUSTOM("where", cfg_check_where),
    { 0 },
};

static void metric_rules(cfg_ctx *ctx, const char *path, json_t *obj)
{
    metric_type t;
    if (metric_type_parse(json_string_value(json_object_get(obj, "type")), &t) < 0)
        return;   /* missing or bad type: reported by the table */
    bool has_field = json_object_get(obj, "field") != NULL;
    if (t == MT_COUNT && has_field)
        err_at(ctx, path, "field", "not used with metric type '%s'", metric_type_name(t));
    else if (t != MT_COUNT && !has_field)
        err_at(ctx, path, "field", "required for metric type '%s'", metric_type_name(t));
    if (t != MT_DISTINCT && json_object_get(obj, "precision"))
        err_at(ctx, path, "precision", "only for metric type 'distinct', not '%s'",
               metric_type_name(t));
    if (t != MT_QUANTILES && json_object_get(obj, "accuracy"))
        err_at(ctx, path, "accuracy", "only for metric type 'quantiles', not '%s'",
               metric_type_name(t));
}

static void check_metrics(cfg_ctx *ctx, const char *path, json_t *v, void *target)
{
    view_def *vd = target;
    if (!v || !array_of(ctx, path, v, MAX_METRICS, "metrics", false, (void **)&vd->metrics,
                        sizeof(*vd->metrics), &vd->nmetrics))
        return;
    for (size_t i = 0; i < vd->nmetrics; i++) {
        vd->metrics[i].field_idx = -1;
        char *ipath = cfg_path_idx(ctx, path, i);
        if (!ipath)
            continue;
        json_t *el = json_array_get(v, i);
        cfg_object(ctx, ipath, el, metric_keys, &vd->metrics[i]);
        if (json_is_object(el))
            metric_rules(ctx, ipath, el);
        free(ipath);
    }
    check_unique(ctx, path, "name", "metric name", &vd->metrics[0].name, sizeof(metric_def),
                 vd->nmetrics);
}

static void check_dimensions(cfg_ctx *ctx, const char *path, json_t *v, void *target)
{
    view_def *vd = target;
    if (!v)
        return;   /* default: no dimensions */
    if (!array_of(ctx, path, v, MAX_DIMENSIONS, "dimensions", true, (void **)&vd->dims,
                  sizeof(*vd->dims), &vd->ndims))
        return;
    for (size_t i = 0; i < vd->ndims; i++) {
        char *ipath = cfg_path_idx(ctx, path, i);
        if (!ipath)
            continue;
        json_t *el = json_array_get(v, i);
        if (cfg_check_string(ctx, ipath, el)) {
            char *dup = earlier_duplicate(ctx, path, v, i);
            if (dup)
                cfg_err(ctx, ipath, "duplicate dimension '%s' (also %s)", json_string_value(el), dup);
            free(dup);
            vd->dims[i] = cfg_strdup(ctx, json_string_value(el));
        }
        free(ipath);
    }
}

static const cfg_key view_keys[] = {
    KEY_NAME("name", view_def, name, REQUIRED),
    /* Must name a stream: see view_rules(). */
    KEY_STR("stream", view_def, stream, NULL, REQUIRED),
    KEY_ENUM("granularity", view_def, gran, gran_name_of, GRAN_SECOND, GRAN_DAY, GRAN_MINUTE),
    KEY_CUSTOM("dimensions", check_dimensions),
    KEY_CUSTOM("metrics", check_metrics, REQUIRED),
    KEY_CUSTOM("retention", check_view_retention),
    { 0 },
};

static void view_rules(cfg_ctx *ctx, const char *path, json_t *obj, view_def *vd)
{
    const char *stream = json_string_value(json_object_get(obj, "stream"));
    if (!stream || !*stream)
        return;   /* missing or bad: reported by the table */
    long idx = raw_stream_with(ctx, "name", stream);
    if (idx == -1)
        err_at(ctx, path, "stream", "unknown stream '%s'", stream);
    else if (idx >= 0)
        vd->stream_idx = (size_t)idx;
}

static void check_views(cfg_ctx *ctx, const char *path, json_t *v, void *target)
{
    config *c = target;
    if (!v || !array_of(ctx, path, v, SIZE_MAX, "views", false, (void **)&c->views,
                        sizeof(*c->views), &c->nviews))
        return;
    for (size_t i = 0; i < c->nviews; i++) {
        char *ipath = cfg_path_idx(ctx, path, i);
        if (!ipath)
            continue;
        json_t *el = json_array_get(v, i);
        cfg_object(ctx, ipath, el, view_keys, &c->views[i]);
        if (json_is_object(el))
            view_rules(ctx, ipath, el, &c->views[i]);
        free(ipath);
    }
    check_unique(ctx, path, "name", "view name", &c->views[0].name, sizeof(view_def), c->nviews);
}

/* ---- kafka ---- */

/* The text librdkafka gets for a number or a boolean. Reals take the
 * shortest form that reads back the same ("0.5", not "0.50000000000000000"). */
static char *option_text(json_t *v)
{
    char buf[64];
    if (json_is_string(v))
        return strdup(json_string_value(v));
    if (json_is_integer(v)) {
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return strdup(buf);
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(buf, sizeof(buf), "%.*g", prec, d);
            if (strtod(buf, NULL) == d)
                break;
        }
        return strdup(buf);
    }
    return strdup(json_is_true(v) ? "true" : "false");
}

static void check_options(cfg_ctx *ctx, const char *path, json_t *v, void *target)
{
    config *c = target;
    if (!v)
        return;   /* default: none */
    if (!json_is_object(v)) {
        cfg_err(ctx, path, "must be an object");
        return;
    }
    size_t n = json_object_size(v);
    if (n == 0)
        return;
    if (!(c->options = calloc(n, sizeof(*c->options)))) {
        ctx->oom = true;
        return;
    }
    c->noptions = n;
    size_t i = 0;
    const char *key;
    json_t *val;
    json_object_foreach(v, key, val) {
        config_kv *kv = &c->options[i++];
        if (!json_is_string(val) && !json_is_number(val) && !json_is_boolean(val)) {
            char *kpath = cfg_path_key(ctx, path, key);
            if (kpath)
                cfg_err(ctx, kpath, "must be a string, number or boolean");
            free(kpath);
            continue;
        }
        kv->key = cfg_strdup(ctx, key);
        if (!(kv->value = option_text(val)))
            ctx->oom = true;
    }
}

/* kafka.partitions: {"topic": [0, 2, 5]}: this instance owns only these
 * partitions of that topic (scale-out). */
static void check_partitions(cfg_ctx *ctx, const char *path, json_t *v, void *target)
{
    config *c = target;
    if (!v)
        return;   /* default: all partitions */
    if (!json_is_object(v)) {
        cfg_err(ctx, path, "must be an object");
        return;
    }
    size_t n = json_object_size(v);
    if (n == 0)
        return;
    if (!(c->owned = calloc(n, sizeof(*c->owned)))) {
        ctx->oom = true;
        return;
    }
    c->nowned = n;
    size_t i = 0;
    const char *topic;
    json_t *arr;
    json_object_foreach(v, topic, arr) {
        config_owned *o = &c->owned[i++];
        char *tpath = cfg_path_key(ctx, path, topic);
        if (!tpath)
            continue;
        o->topic = cfg_strdup(ctx, topic);
        if (raw_stream_with(ctx, "topic", topic) == -1)
            cfg_err(ctx, tpath, "no stream reads topic '%s'", topic);
        if (array_of(ctx, tpath, arr, SIZE_MAX, "partitions", false, (void **)&o->partitions,
                     sizeof(*o->partitions), &o->npartitions)) {
            for (size_t k = 0; k < o->npartitions; k++) {
                char *ppath = cfg_path_idx(ctx, tpath, k);
                if (!ppath)
                    continue;
                json_t *p = json_array_get(arr, k);
                if (cfg_check_int(ctx, ppath, p, 0, INT32_MAX)) {
                    o->partitions[k] = (int32_t)json_integer_value(p);
                    char *dup = earlier_duplicate(ctx, tpath, arr, k);
                    if (dup)
                        cfg_err(ctx, ppath, "duplicate partition %d (also %s)",
                                (int)o->partitions[k], dup);
                    free(dup);
                }
                free(ppath);
            }
        }
        free(tpath);
    }
    /* A topic left out would mean all its partitions, on every shard: each
     * of its events counted once per instance. */
    json_t *streams = json_object_get(ctx->root, "streams");
    size_t si;
    json_t *st;
    json_array_foreach(streams, si, st) {
        const char *t = json_string_value(json_object_get(st, "topic"));
        if (t && !json_object_get(v, t))
            cfg_err(ctx, path, "lists no partitions of topic '%s' (stream '%s'): when "
                    "kafka.partitions is set, it must list every stream's topic",
                    t, json_string_value(json_object_get(st, "name")) ?: "?");
    }
}

static const cfg_key kafka_keys[] = {
    KEY_STR("brokers", config, brokers, "127.0.0.1:9092"),
    KEY_STR("group_id", config, group_id, "lambdad"),
    KEY_ENUM_STR("start", config, start, start_name_of, 0, 1, 0),
    KEY_CUSTOM("options", check_options),
    KEY_CUSTOM("partitions", check_partitions),
    KEY_INT("metadata_refresh_ms", config, metadata_refresh_ms, 100, 3600000, 5000),
    KEY_INT("unreachable_after_ms", config, unreachable_after_ms, 100, 3600000, 30000),
    KEY_INT("stall_after_ms", config, stall_after_ms, 100, 3600000, 60000),
    { 0 },
};

/* ---- archive, batch ---- */

static const cfg_key archive_keys[] = {
    KEY_STR("path", config, archive_path, "/var/lib/lambdad/archive.db"),
    KEY_INT("commit_interval_ms", config, commit_interval_ms, 1, 60000, 50),
    KEY_INT("commit_max_events", config, commit_max_events, 1, 10000000, 100000),
    KEY_INT("compression_level", config, compression_level, 1, 19, 1),
    KEY_CUSTOM("retention", check_archive_retention),
    KEY_INT("compaction_level", config, compact_level, 1, 19, 9),
    { 0 },
};

static const cfg_key batch_keys[] = {
    KEY_INT("interval_s", config, batch_interval_s, 1, 604800, 300),
    KEY_ENUM("partition", config, batch_partition, gran_name_of, GRAN_HOUR, GRAN_MONTH, GRAN_DAY),
    { 0 },
};

/* ---- serving ---- */

static const cfg_key serving_keys[] = {
    KEY_INT("cache_mb", config, serving_cache_mb, 1, 1048576, 256),
    KEY_INT("answer_cache_mb", config, serving_answer_cache_mb, 0, 1048576, 64),
    KEY_INT("query_threads", config, serving_query_threads, 1, 64, 2),
    KEY_INT("query_queue", config, serving_query_queue, 0, 100000, 64),
    { 0 },
};

/* ---- http: config_http.c ---- */

/* ---- the top level ---- */

const cfg_key cfg_top_keys[] = {
    KEY_SECTION("kafka", kafka_keys),
    KEY_SECTION("archive", archive_keys),
    KEY_SECTION("batch", batch_keys),
    KEY_SECTION("serving", serving_keys),
    KEY_SECTION("http", cfg_http_keys),
    KEY_SECTION("cluster", cfg_cluster_keys),
    KEY_CUSTOM("streams", check_streams, REQUIRED),
    KEY_CUSTOM("views", check_views, REQUIRED),
    { 0 },
};
