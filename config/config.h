/* config.h - the daemon's configuration, loaded and validated completely
 * before anything starts.
 *
 * config_load() reads the JSON file, checks every key against the table of
 * known keys (type, bounds, allowed values), fills defaults and resolves the
 * streams and views (core/defs.h). Every problem is reported with its JSON
 * path, e.g. "views[2].metrics[0].field: required for metric type 'sum'".
 * The result is immutable and shared read-only by all threads.
 */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "core/defs.h"

typedef struct {
    char *key;
    char *value;
} config_kv;

typedef struct {
    char *topic;
    int32_t *partitions;   /* the partitions this instance owns */
    size_t npartitions;
} config_owned;

/* cluster.peers[i] */
typedef struct {
    char *url;     /* "http://host:port", no trailing '/' */
    char *shard;   /* the shard it serves; ours: a replica of this instance */
} config_peer;

/* http.auth.protect: which routes need the bearer token */
enum { CFG_PROTECT_ADMIN = 0, CFG_PROTECT_ALL = 1 };

typedef struct {
    /* kafka */
    char *brokers;              /* default "127.0.0.1:9092" */
    char *group_id;             /* default "lambdad" */
    char *start;                /* "earliest" (default) or "latest" */
    config_kv *options;         /* passed to librdkafka as is */
    size_t noptions;
    config_owned *owned;        /* kafka.partitions: empty = all partitions */
    size_t nowned;
    int metadata_refresh_ms;    /* default 5000: how often new partitions are looked for */
    int unreachable_after_ms;   /* default 30000: no broker answer this long -> not ready */
    int stall_after_ms;         /* default 60000: lag but no message this long -> not ready */

    /* archive */
    char *archive_path;         /* default "/var/lib/lambdad/archive.db" */
    int commit_interval_ms;     /* default 50, 1..60000 */
    int commit_max_events;      /* default 100000, 1..10000000 */
    int compression_level;      /* zstd level, default 1, 1..19 */
    int64_t archive_retention_s;   /* archive.retention, 0 (default): keep forever */
    int compact_level;          /* archive.compaction_level: zstd level of merged chunks, default 9 */

    /* batch */
    int batch_interval_s;       /* default 300 */
    gran_t batch_partition;     /* GRAN_HOUR, GRAN_DAY (default) or GRAN_MONTH */

    /* serving */
    int serving_cache_mb;          /* segment cache budget, default 256, 1..1048576 */
    int serving_answer_cache_mb;   /* answer cache budget, default 64, 0 (off)..1048576 */
    int serving_query_threads;     /* query pool threads, default 2, 1..64 */
    int serving_query_queue;       /* queries waiting for a pool thread, default 64, 0..100000 */

    /* http */
    char *http_host;            /* from http.listen, default "127.0.0.1" */
    int http_port;              /* default 8080; 0 = any free port */
    int http_threads;           /* default 2, 1..64 */
    /* http security (read at load; http_key and http_auth_token are
     * secrets: config_free wipes them) */
    char *http_auth_token_file; /* http.auth.token_file, NULL: no auth */
    char *http_auth_token;      /* the token in it, trailing newline stripped */
    int http_auth_protect;      /* CFG_PROTECT_ADMIN (default) or CFG_PROTECT_ALL */
    char *http_tls_cert_file;   /* http.tls.cert_file, NULL: plain HTTP */
    char *http_tls_key_file;
    char *http_tls_cert;        /* the PEM texts of both files */
    char *http_tls_key;
    char *http_cors_origin;     /* "*" or an origin; NULL (default): no CORS headers */
    /* http.limits */
    int http_max_body_bytes;    /* default 1048576 */
    int http_max_query_bytes;   /* default 8192 */
    int http_max_rows;          /* rows in one answer, default 100000 */
    int http_max_connections;   /* default 1024 */
    int http_max_connections_per_ip;   /* default 64 */
    int http_connection_timeout_s;     /* idle timeout, default 30 */
    int http_query_timeout_ms;  /* a query running longer is abandoned (503), default 10000 */

    /* cluster (scale-out) */
    char *cluster_shard;        /* cluster.shard: this instance's shard; NULL: none */
    config_peer *peers;         /* cluster.peers: empty = a single instance */
    size_t npeers;
    char *cluster_token_file;   /* cluster.token_file: the peers' shared bearer token */
    char *cluster_token;        /* its text (a secret: config_free wipes it); NULL: none */
    char *cluster_ca_file;      /* cluster.ca_file: CAs that sign https peers' certificates;
                                   NULL: the system's */
    int cluster_connect_timeout_ms;   /* default 1000 */
    int cluster_retry_after_ms;       /* a failed peer is skipped this long, default 5000 */

    stream_def *streams;
    size_t nstreams;
    view_def *views;
    size_t nviews;

    char fingerprint[17];       /* hash of the whole file's canonical JSON */
} config;

/* A list of problems found while loading; each "path: message". */
typedef struct {
    char **items;
    size_t n;
} config_errors;

/* Loads and validates path. On success returns 0 and *out (free with
 * config_free). On any problem returns -EINVAL (or -errno when the file
 * cannot be read, or -ENOMEM) and fills errs with every problem found. */
int config_load(const char *path, config **out, config_errors *errs);
/* Same, from a JSON text in memory (tests): len bytes that, like a
 * file's, may hold NUL bytes; or a NUL-terminated string. */
int config_load_buffer(const char *text, size_t len, config **out, config_errors *errs);
int config_load_string(const char *text, config **out, config_errors *errs);
void config_free(config *c);               /* accepts NULL */
void config_errors_clear(config_errors *e);
/* Appends a problem found outside config_load (librdkafka refusing an
 * option, an archive path that cannot be created) in the same form:
 * "<parent>.<key>: <message>", or <parent>["<key>"] when key is not a
 * plain identifier, control characters escaped. 0 or -ENOMEM. */
int config_error_at(config_errors *errs, const char *parent, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The recompute partition unit of view v: the coarser of its granularity
 * and batch.partition, so each of its buckets lies in one partition. */
gran_t config_view_unit(const config *c, size_t v);

/* Retention at time now (epoch s): the start of the oldest archive time
 * partition kept (*arch_cut) and, for each view, of its oldest partition
 * kept (view_cuts[v], the later of its own retention's and the archive's,
 * in the view's unit). A partition is dropped once it lies entirely
 * before now minus the retention. INT64_MIN: keep everything. */
void config_retention_cuts(const config *c, int64_t now, int64_t *arch_cut, int64_t *view_cuts);

/* The view named name, or NULL. */
const view_def *config_find_view(const config *c, const char *name, size_t *idx);
