/* test_config.c - config loading and validation: every class of problem
 * with its exact message, defaults, comments, field resolution, view and
 * config fingerprints, and the example configs shipped in the tree. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "config/config.h"
#include "core/agg.h"

#ifndef SOURCE_ROOT
#error "SOURCE_ROOT must be defined by the build"
#endif

/* A minimal valid document's required parts. */
#define STREAMS "\"streams\":[{\"name\":\"s\",\"topic\":\"t\",\"time_field\":\"ts\"}]"
#define VIEWS "\"views\":[{\"name\":\"v\",\"stream\":\"s\",\"metrics\":[{\"name\":\"n\",\"type\":\"count\"}]}]"
#define MIN STREAMS "," VIEWS

/* Loads text and checks that it fails with exactly the given problems, in
 * order (NULL-terminated). */
static void expect_errors_at(int line, const char *text, ...)
{
    config *c = (config *)1;
    config_errors e = { 0 };
    int r = config_load_string(text, &c, &e);
    if (r != -EINVAL || c != NULL) {
        fprintf(stderr, "%s:%d: load returned %d\n", __FILE__, line, r);
        check_failures++;
    }
    va_list ap;
    va_start(ap, text);
    size_t i = 0;
    for (const char *want; (want = va_arg(ap, const char *)); i++) {
        const char *got = i < e.n ? e.items[i] : "(none)";
        if (strcmp(got, want) != 0) {
            fprintf(stderr, "%s:%d: problem %zu:\n  got:      \"%s\"\n  expected: \"%s\"\n",
                    __FILE__, line, i, got, want);
            check_failures++;
        }
    }
    va_end(ap);
    for (; i < e.n; i++) {
        fprintf(stderr, "%s:%d: unexpected problem \"%s\"\n", __FILE__, line, e.items[i]);
        check_failures++;
    }
    config_free(c == (config *)1 ? NULL : c);
    config_errors_clear(&e);
}
#define EXPECT_ERRORS(text, ...) expect_errors_at(__LINE__, text, __VA_ARGS__, (const char *)NULL)

/* Loads text that must be valid; prints its problems otherwise. */
static config *load_ok_at(int line, const char *text)
{
    config *c = NULL;
    config_errors e = { 0 };
    int r = config_load_string(text, &c, &e);
    if (r != 0 || !c) {
        fprintf(stderr, "%s:%d: load failed (%d)\n", __FILE__, line, r);
        for (size_t i = 0; i < e.n; i++)
            fprintf(stderr, "  %s\n", e.items[i]);
        check_failures++;
    }
    config_errors_clear(&e);
    return c;
}
#define LOAD_OK(text) load_ok_at(__LINE__, text)

static void test_defaults(void)
{
    config *c = LOAD_OK("{" MIN "}");
    if (!c)
        return;
    CHECK_STR(c->brokers, "127.0.0.1:9092");
    CHECK_STR(c->group_id, "lambdad");
    CHECK_STR(c->start, "earliest");
    CHECK_INT(c->noptions, 0);
    CHECK(c->options == NULL);
    CHECK_INT(c->nowned, 0);
    CHECK(c->owned == NULL);
    CHECK_INT(c->metadata_refresh_ms, 5000);
    CHECK_INT(c->unreachable_after_ms, 30000);
    CHECK_INT(c->stall_after_ms, 60000);
    CHECK_STR(c->archive_path, "/var/lib/lambdad/archive.db");
    CHECK_INT(c->commit_interval_ms, 50);
    CHECK_INT(c->commit_max_events, 100000);
    CHECK_INT(c->compression_level, 1);
    CHECK_INT(c->batch_interval_s, 300);
    CHECK_INT(c->batch_partition, GRAN_DAY);
    CHECK_STR(c->http_host, "127.0.0.1");
    CHECK_INT(c->http_port, 8080);
    CHECK_INT(c->http_threads, 2);
    CHECK(c->http_auth_token_file == NULL);
    CHECK(c->http_auth_token == NULL);
    CHECK_INT(c->http_auth_protect, CFG_PROTECT_ADMIN);
    CHECK(c->http_tls_cert_file == NULL && c->http_tls_key_file == NULL);
    CHECK(c->cluster_shard == NULL && c->npeers == 0 && c->cluster_token == NULL);
    CHECK_INT(c->cluster_connect_timeout_ms, 1000);
    CHECK_INT(c->cluster_retry_after_ms, 5000);
    CHECK(c->http_tls_cert == NULL && c->http_tls_key == NULL);
    CHECK(c->http_cors_origin == NULL);
    CHECK_INT(c->http_max_body_bytes, 1048576);
    CHECK_INT(c->http_max_query_bytes, 8192);
    CHECK_INT(c->http_max_rows, 100000);
    CHECK_INT(c->http_max_connections, 1024);
    CHECK_INT(c->http_max_connections_per_ip, 64);
    CHECK_INT(c->http_connection_timeout_s, 30);
    CHECK_INT(c->http_query_timeout_ms, 10000);
    CHECK_INT(c->serving_cache_mb, 256);
    CHECK_INT(c->serving_answer_cache_mb, 64);
    CHECK_INT(c->serving_query_threads, 2);
    CHECK_INT(c->serving_query_queue, 64);
    CHECK_INT(c->nstreams, 1);
    CHECK_STR(c->streams[0].name, "s");
    CHECK_STR(c->streams[0].topic, "t");
    CHECK_STR(c->streams[0].time_field, "ts");
    CHECK_INT(c->streams[0].tfmt, TF_EPOCH_S);
    CHECK_INT(c->streams[0].nfields, 0);
    CHECK_INT(c->nviews, 1);
    const view_def *v = &c->views[0];
    CHECK_STR(v->name, "v");
    CHECK_STR(v->stream, "s");
    CHECK_INT(v->stream_idx, 0);
    CHECK_INT(v->gran, GRAN_MINUTE);
    CHECK_INT(v->ndims, 0);
    CHECK_INT(v->nmetrics, 1);
    CHECK_STR(v->metrics[0].name, "n");
    CHECK_INT(v->metrics[0].type, MT_COUNT);
    CHECK(v->metrics[0].field == NULL);
    CHECK_INT(v->metrics[0].field_idx, -1);
    CHECK_INT(strlen(v->fingerprint), 16);
    CHECK_INT(strspn(v->fingerprint, "0123456789abcdef"), 16);
    CHECK_INT(strlen(c->fingerprint), 16);
    CHECK_INT(strspn(c->fingerprint, "0123456789abcdef"), 16);
    config_free(c);
}

static void test_explicit_values(void)
{
    config *c = LOAD_OK("{\"kafka\":{\"brokers\":\"k1:9092,k2:9092\",\"group_id\":\"g\","
                        "\"start\":\"latest\",\"metadata_refresh_ms\":100,"
                        "\"options\":{\"fetch.wait.max.ms\":\"10\",\"queued.min.messages\":1000000,"
                        "\"enable.idempotence\":true,\"check.crcs\":false,\"x.ratio\":0.5,"
                        "\"y\":-3,\"z\":1e300},"
                        "\"partitions\":{\"t\":[3,0,7],\"t2\":[1]}},"
                        "\"archive\":{\"path\":\"/tmp/a.db\",\"commit_interval_ms\":60000,"
                        "\"commit_max_events\":1,\"compression_level\":19},"
                        "\"batch\":{\"interval_s\":604800,\"partition\":\"month\"},"
                        "\"http\":{\"listen\":\"0.0.0.0:0\",\"threads\":64},"
                        "\"streams\":[{\"name\":\"s\",\"topic\":\"t\",\"time_format\":\"kafka\"},"
                        "{\"name\":\"s.2-x\",\"topic\":\"t2\",\"time_field\":\"at\",\"time_format\":\"rfc3339\"}],"
                        "\"views\":[{\"name\":\"v\",\"stream\":\"s.2-x\",\"granularity\":\"day\","
                        "\"dimensions\":[],\"metrics\":[{\"name\":\"m\",\"type\":\"avg\",\"field\":\"f\"}]}]}");
    if (!c)
        return;
    CHECK_STR(c->brokers, "k1:9092,k2:9092");
    CHECK_STR(c->group_id, "g");
    CHECK_STR(c->start, "latest");
    CHECK_INT(c->metadata_refresh_ms, 100);
    CHECK_INT(c->noptions, 7);
    if (c->noptions == 7) {
        /* in the file's order, numbers and booleans as text */
        const char *want[][2] = {
            {"fetch.wait.max.ms", "10"}, {"queued.min.messages", "1000000"},
            {"enable.idempotence", "true"}, {"check.crcs", "false"}, {"x.ratio", "0.5"},
            {"y", "-3"}, {"z", "1e+300"},
        };
        for (size_t i = 0; i < 7; i++) {
            CHECK_STR(c->options[i].key, want[i][0]);
            CHECK_STR(c->options[i].value, want[i][1]);
        }
    }
    CHECK_INT(c->nowned, 2);
    if (c->nowned == 2) {
        CHECK_STR(c->owned[0].topic, "t");
        CHECK_INT(c->owned[0].npartitions, 3);
        CHECK_INT(c->owned[0].partitions[0], 3);
        CHECK_INT(c->owned[0].partitions[1], 0);
        CHECK_INT(c->owned[0].partitions[2], 7);
    }
    CHECK_STR(c->archive_path, "/tmp/a.db");
    CHECK_INT(c->commit_interval_ms, 60000);
    CHECK_INT(c->commit_max_events, 1);
    CHECK_INT(c->compression_level, 19);
    CHECK_INT(c->batch_interval_s, 604800);
    CHECK_INT(c->batch_partition, GRAN_MONTH);
    CHECK_STR(c->http_host, "0.0.0.0");
    CHECK_INT(c->http_port, 0);
    CHECK_INT(c->http_threads, 64);
    CHECK_INT(c->nstreams, 2);
    CHECK_INT(c->streams[0].tfmt, TF_KAFKA);
    CHECK(c->streams[0].time_field == NULL);
    CHECK_INT(c->streams[0].nfields, 0);
    CHECK_INT(c->streams[1].tfmt, TF_RFC3339);
    CHECK_STR(c->streams[1].time_field, "at");
    CHECK_INT(c->views[0].stream_idx, 1);
    CHECK_INT(c->views[0].gran, GRAN_DAY);
    CHECK_INT(c->views[0].ndims, 0);
    CHECK_INT(c->views[0].metrics[0].type, MT_AVG);
    CHECK_STR(c->views[0].metrics[0].field, "f");
    CHECK_INT(c->views[0].metrics[0].field_idx, 0);
    CHECK_INT(c->streams[1].nfields, 1);
    CHECK_STR(c->streams[1].fields[0], "f");
    config_free(c);

    c = LOAD_OK("{\"http\":{\"listen\":\"localhost:65535\"}," MIN "}");
    if (c) {
        CHECK_STR(c->http_host, "127.0.0.1");
        CHECK_INT(c->http_port, 65535);
    }
    config_free(c);
}

static void test_unknown_keys(void)
{
    EXPECT_ERRORS("{\"brokers\":\"x\"," MIN "}", "brokers: unknown key");
    EXPECT_ERRORS("{\"kafka\":{\"brokerz\":\"x\"}," MIN "}", "kafka.brokerz: unknown key");
    EXPECT_ERRORS("{\"archive\":{\"commit_ms\":1}," MIN "}", "archive.commit_ms: unknown key");
    EXPECT_ERRORS("{\"batch\":{\"every\":1}," MIN "}", "batch.every: unknown key");
    EXPECT_ERRORS("{\"http\":{\"port\":80}," MIN "}", "http.port: unknown key");
    EXPECT_ERRORS("{\"serving\":{\"threads\":2}," MIN "}", "serving.threads: unknown key");
    EXPECT_ERRORS("{\"streams\":[{\"name\":\"s\",\"topic\":\"t\",\"time_field\":\"ts\",\"tz\":\"UTC\"}],"
                  VIEWS "}", "streams[0].tz: unknown key");
    EXPECT_ERRORS("{" STREAMS ",\"views\":[{\"name\":\"v\",\"stream\":\"s\",\"filter\":{},"
                  "\"metrics\":[{\"name\":\"n\",\"type\":\"count\",\"as\":\"x\"}]}]}",
                  "views[0].filter: unknown key", "views[0].metrics[0].as: unknown key");
    /* keys that are not identifiers are quoted in the path */
    EXPECT_ERRORS("{\"kafka\":{\"fetch.wait.max.ms\":5,\"a\\\"b\":1}," MIN "}",
                  "kafka[\"fetch.wait.max.ms\"]: unknown key", "kafka[\"a\\\"b\"]: unknown key");
}

static void test_wrong_types(void)
{
    EXPECT_ERRORS("[1]", "(root): must be an object");
    EXPECT_ERRORS("{\"kafka\":[]," MIN "}", "kafka: must be an object");
    EXPECT_ERRORS("{\"kafka\":{\"brokers\":5,\"group_id\":null}," MIN "}",
                  "kafka.brokers: must be a string", "kafka.group_id: must be a string");
    EXPECT_ERRORS("{\"kafka\":{\"brokers\":\"\"}," MIN "}", "kafka.brokers: must not be empty");
    EXPECT_ERRORS("{\"kafka\":{\"options\":[\"a\"]}," MIN "}", "kafka.options: must be an object");
    EXPECT_ERRORS("{\"kafka\":{\"options\":{\"ok\":1,\"fetch.wait.max.ms\":null,\"b\":[1],\"c\":{}}}," MIN "}",
                  "kafka.options[\"fetch.wait.max.ms\"]: must be a string, number or boolean",
                  "kafka.options.b: must be a string, number or boolean",
                  "kafka.options.c: must be a string, number or boolean");
    EXPECT_ERRORS("{\"kafka\":{\"partitions\":[0]}," MIN "}", "kafka.partitions: must be an object");
    EXPECT_ERRORS("{\"archive\":{\"commit_interval_ms\":\"50\"}," MIN "}",
                  "archive.commit_interval_ms: must be an integer between 1 and 60000");
    EXPECT_ERRORS("{\"archive\":{\"compression_level\":3.0}," MIN "}",
                  "archive.compression_level: must be an integer between 1 and 19");
    EXPECT_ERRORS("{\"http\":{\"listen\":8080}," MIN "}", "http.listen: must be a string");
    EXPECT_ERRORS("{\"streams\":{}," VIEWS "}", "streams: must be an array");
    EXPECT_ERRORS("{\"streams\":[\"s\"]," VIEWS "}", "streams[0]: must be an object");
    EXPECT_ERRORS("{" STREAMS ",\"views\":{\"v\":1}}", "views: must be an array");
    EXPECT_ERRORS("{" STREAMS ",\"views\":[{\"name\":\"v\",\"stream\":\"s\",\"dimensions\":\"page\","
                  "\"metrics\":{\"n\":\"count\"}}]}",
                  "views[0].dimensions: must be an array", "views[0].metrics: must be an array");
    EXPECT_ERRORS("{" STREAMS ",\"views\":[{\"name\":\"v\",\"stream\":\"s\",\"dimensions\":[\"a\",1,\"\"],"
                  "\"metrics\":[[\"n\"],{\"name\":\"m\",\"type\":\"sum\",\"field\":false}]}]}",
                  "views[0].dimensions[1]: must be a string",
                  "views[0].dimensions[2]: must not be empty",
                  "views[0].metrics[0]: must be an object",
                  "views[0].metrics[1].field: must be a string");
    EXPECT_ERRORS("{\"streams\":[{\"name\":1,\"topic\":[],\"time_field\":{}}]," VIEWS "}",
                  "streams[0].name: must be a string", "streams[0].topic: must be a string",
                  "streams[0].time_field: must be a string");
}

static void test_ranges(void)
{
    EXPECT_ERRORS("{\"kafka\":{\"unreachable_after_ms\":99,\"stall_after_ms\":3600001}," MIN "}",
                  "kafka.unreachable_after_ms: must be an integer between 100 and 3600000",
                  "kafka.stall_after_ms: must be an integer between 100 and 3600000");
    EXPECT_ERRORS("{\"kafka\":{\"metadata_refresh_ms\":99},"
                  "\"archive\":{\"commit_interval_ms\":0,\"commit_max_events\":10000001,\"compression_level\":20},"
                  "\"batch\":{\"interval_s\":604801},\"http\":{\"threads\":0}," MIN "}",
                  "kafka.metadata_refresh_ms: must be an integer between 100 and 3600000",
                  "archive.commit_interval_ms: must be an integer between 1 and 60000",
                  "archive.commit_max_events: must be an integer between 1 and 10000000",
                  "archive.compression_level: must be an integer between 1 and 19",
                  "batch.interval_s: must be an integer between 1 and 604800",
                  "http.threads: must be an integer between 1 and 64");
    EXPECT_ERRORS("{\"archive\":{\"commit_interval_ms\":60001}," MIN "}",
                  "archive.commit_interval_ms: must be an integer between 1 and 60000");
    EXPECT_ERRORS("{\"archive\":{\"commit_interval_ms\":-9223372036854775807}," MIN "}",
                  "archive.commit_interval_ms: must be an integer between 1 and 60000");
}

static void test_enums(void)
{
    EXPECT_ERRORS("{\"kafka\":{\"start\":\"middle\"},\"batch\":{\"partition\":\"minute\"}," MIN "}",
                  "kafka.start: must be one of earliest, latest",
                  "batch.partition: must be one of hour, day, month");
    EXPECT_ERRORS("{\"kafka\":{\"start\":0}," MIN "}", "kafka.start: must be one of earliest, latest");
    EXPECT_ERRORS("{\"streams\":[{\"name\":\"s\",\"topic\":\"t\",\"time_field\":\"ts\",\"time_format\":\"iso\"}],"
                  VIEWS "}", "streams[0].time_format: must be one of epoch_s, epoch_ms, rfc3339, kafka");
    EXPECT_ERRORS("{" STREAMS ",\"views\":[{\"name\":\"v\",\"stream\":\"s\",\"granularity\":\"month\","
                  "\"metrics\":[{\"name\":\"n\",\"type\":\"median\",\"field\":\"x\"}]}]}",
                  "views[0].granularity: must be one of second, minute, hour, day",
                  "views[0].metrics[0].type: must be one of count, sum, min, max, avg, distinct, "
                  "quantiles");
}

static void test_required(void)
{
    EXPECT_ERRORS("{}", "streams: required", "views: required");
    EXPECT_ERRORS("{\"streams\":[],\"views\":[]}", "streams: must not be empty", "views: must not be empty");
    EXPECT_ERRORS("{\"streams\":[{}]," VIEWS "}", "streams[0].name: required",
                  "streams[0].topic: required", "streams[0].time_field: required for time_format 'epoch_s'");
    EXPECT_ERRORS("{\"streams\":[{\"name\":\"s\",\"topic\":\"t\",\"time_format\":\"epoch_ms\"}]," VIEWS "}",
                  "streams[0].time_field: required for time_format 'epoch_ms'");
    EXPECT_ERRORS("{" STREAMS ",\"views\":[{}]}", "views[0].name: required", "views[0].stream: required",
                  "views[0].metrics: required");
    EXPECT_ERRORS("{" STREAMS ",\"views\":[{\"name\":\"v\",\"stream\":\"s\",\"metrics\":[]}]}",
                  "views[0].metrics: must not be empty");
    EXPECT_ERRORS("{" STREAMS ",\"views\":[{\"name\":\"v\",\"stream\":\"s\",\"metrics\":[{}]}]}",
                  "views[0].metrics[0].name: required", "views[0].metrics[0].type: required");
}

static void test_metric_and_time_rules(void)
{
    EXPECT_ERRORS("{" STREAMS ",\"views\":[{\"name\":\"v\",\"stream\":\"s\",\"metrics\":["
                  "{\"name\":\"a\",\"type\":\"sum\"},{\"name\":\"b\",\"type\":\"min\"},"
                  "{\"name\":\"c\",\"type\":\"max\"},{\"name\":\"d\",\"type\":\"avg\"},"
                  "{\"name\":\"e\",\"type\":\"count\",\"field\":\"x\"}]}]}",
                  "views[0].metrics[0].field: required for metric type 'sum'",
                  "views[0].metrics[1].field: required for metric type 'min'",
                  "views[0].metrics[2].field: required for metric type 'max'",
                  "views[0].metrics[3].field: required for metric type 'avg'",
                  "views[0].metrics[4].field: not used with metric type 'count'");
    EXPECT_ERRORS("{\"streams\":[{\"name\":\"s\",\"topic\":\"t\",\"time_format\":\"kafka\",\"time_field\":\"ts\"}],"
                  VIEWS "}", "streams[0].time_field: not used with time_format 'kafka'");
    /* the sketches' parameters: their bounds, and only on their own type */
    EXPECT_ERRORS("{" STREAMS ",\"views\":[{\"name\":\"v\",\"stream\":\"s\",\"metrics\":["
                  "{\"name\":\"a\",\"type\":\"distinct\",\"field\":\"u\",\"precision\":9},"
                  "{\"name\":\"b\",\"type\":\"distinct\",\"field\":\"u\",\"precision\":19},"
                  "{\"name\":\"c\",\"type\":\"quantiles\",\"field\":\"x\",\"accuracy\":0.6},"
                  "{\"name\":\"d\",\"type\":\"quantiles\",\"field\":\"x\",\"accuracy\":\"1%\"},"
                  "{\"name\":\"e\",\"type\":\"quantiles\",\"field\":\"x\",\"accuracy\":0.00001},"
                  "{\"name\":\"f\",\"type\":\"sum\",\"field\":\"x\",\"precision\":12},"
                  "{\"name\":\"g\",\"type\":\"distinct\",\"field\":\"x\",\"accuracy\":0.1},"
                  "{\"name\":\"h\",\"type\":\"quantiles\"}]}]}",
                  "views[0].metrics[0].precision: must be an integer between 10 and 18",
                  "views[0].metrics[1].precision: must be an integer between 10 and 18",
                  "views[0].metrics[2].accuracy: must be a number between 0.0001 and 0.5",
                  "views[0].metrics[3].accuracy: must be a number between 0.0001 and 0.5",
                  "views[0].metrics[4].accuracy: must be a number between 0.0001 and 0.5",
                  "views[0].metrics[5].precision: only for metric type 'distinct', not 'sum'",
                  "views[0].metrics[6].accuracy: only for metric type 'quantiles', not 'distinct'",
                  "views[0].metrics[7].field: required for metric type 'quantiles'");
    config *c = load_ok_at(__LINE__, "{" STREAMS ",\"views\":[{\"name\":\"v\",\"stream\":\"s\",\"metrics\":["
                           "{\"name\":\"a\",\"type\":\"distinct\",\"field\":\"u\",\"precision\":12},"
                           "{\"name\":\"b\",\"type\":\"quantiles\",\"field\":\"x\",\"accuracy\":0.05},"
                           "{\"name\":\"c\",\"type\":\"distinct\",\"field\":\"u\"}]}]}");
    if (c) {
        const agg_layout *l = c->views[0].layout;
        CHECK_INT(l->slot[0].params.precision, 12);
        CHECK_DBL(l->slot[1].params.accuracy, 0.05);
        CHECK_INT(l->slot[2].params.precision, 14);
        CHECK_INT(c->views[0].metrics[2].field_idx, c->views[0].metrics[0].field_idx);
        config_free(c);
    }
}

static void test_names(void)
{
    char long_name[66], long_topic[251], buf[1024];
    memset(long_name, 'a', 65);
    long_name[65] = '\0';
    memset(long_topic, 'b', 250);
    long_topic[250] = '\0';
    snprintf(buf, sizeof(buf), "{\"streams\":[{\"name\":\"%s\",\"topic\":\"%s\",\"time_field\":\"ts\"},"
             "{\"name\":\"a b\",\"topic\":\"..\",\"time_field\":\"ts\"},"
             "{\"name\":\"\",\"topic\":\"x/y\",\"time_field\":\"ts\"}]," VIEWS "}",
             long_name, long_topic);
    const char *name_msg = "must be 1 to 64 characters of A-Z a-z 0-9 _ . -";
    const char *topic_msg = "must be a Kafka topic name: 1 to 249 characters of A-Z a-z 0-9 . _ -, "
                            "not '.' or '..'";
    char e[6][200];
    snprintf(e[0], sizeof(e[0]), "streams[0].name: %s", name_msg);
    snprintf(e[1], sizeof(e[1]), "streams[0].topic: %s", topic_msg);
    snprintf(e[2], sizeof(e[2]), "streams[1].name: %s", name_msg);
    snprintf(e[3], sizeof(e[3]), "streams[1].topic: %s", topic_msg);
    snprintf(e[4], sizeof(e[4]), "streams[2].name: %s", name_msg);
    snprintf(e[5], sizeof(e[5]), "streams[2].topic: %s", topic_msg);
    /* the view's stream "s" is not among them */
    EXPECT_ERRORS(buf, e[0], e[1], e[2], e[3], e[4], e[5], "views[0].stream: unknown stream 's'");

    /* the longest legal names load */
    long_name[64] = '\0';
    long_topic[249] = '\0';
    snprintf(buf, sizeof(buf), "{\"streams\":[{\"name\":\"%s\",\"topic\":\"%s\",\"time_field\":\"ts\"}],"
             "\"views\":[{\"name\":\"Az09_.-\",\"stream\":\"%s\",\"metrics\":[{\"name\":\"n\",\"type\":\"count\"}]}]}",
             long_name, long_topic, long_name);
    config_free(LOAD_OK(buf));

    EXPECT_ERRORS("{" STREAMS ",\"views\":[{\"name\":\"v/1\",\"stream\":\"s\","
                  "\"metrics\":[{\"name\":\"n n\",\"type\":\"count\"}]}]}",
                  "views[0].name: must be 1 to 64 characters of A-Z a-z 0-9 _ . -",
                  "views[0].metrics[0].name: must be 1 to 64 characters of A-Z a-z 0-9 _ . -");
}

static void test_duplicates(void)
{
    EXPECT_ERRORS("{\"streams\":[{\"name\":\"a\",\"topic\":\"t\",\"time_field\":\"ts\"},"
                  "{\"name\":\"b\",\"topic\":\"u\",\"time_field\":\"ts\"},"
                  "{\"name\":\"a\",\"topic\":\"t\",\"time_field\":\"ts\"},"
                  "{\"name\":\"c\",\"topic\":\"u\",\"time_field\":\"ts\"}],"
                  "\"views\":[{\"name\":\"a\",\"stream\":\"a\",\"metrics\":[{\"name\":\"n\",\"type\":\"count\"}]},"
                  "{\"name\":\"b\",\"stream\":\"b\",\"dimensions\":[\"x\",\"y\",\"x\"],"
                  "\"metrics\":[{\"name\":\"n\",\"type\":\"count\"},{\"name\":\"n\",\"type\":\"sum\",\"field\":\"z\"}]},"
                  "{\"name\":\"c\",\"stream\":\"c\",\"metrics\":[{\"name\":\"n\",\"type\":\"count\"}]},"
                  "{\"name\":\"a\",\"stream\":\"a\",\"metrics\":[{\"name\":\"n\",\"type\":\"count\"}]}]}",
                  "streams[2].name: duplicate stream name 'a' (also streams[0])",
                  "streams[2].topic: duplicate topic 't' (also streams[0])",
                  "streams[3].topic: duplicate topic 'u' (also streams[1])",
                  "views[1].dimensions[2]: duplicate dimension 'x' (also views[1].dimensions[0])",
                  "views[1].metrics[1].name: duplicate metric name 'n' (also views[1].metrics[0])",
                  "views[3].name: duplicate view name 'a' (also views[0])");
    /* JSON objects with a key twice are refused by the parser */
    EXPECT_ERRORS("{\"kafka\":{\"brokers\":\"a\",\"brokers\":\"b\"}," MIN "}",
                  "line 1, column 33: duplicate object key near '\"brokers\"'");
}

static void test_view_stream(void)
{
    EXPECT_ERRORS("{" STREAMS ",\"views\":[{\"name\":\"a\",\"stream\":\"s\",\"metrics\":[{\"name\":\"n\",\"type\":\"count\"}]},"
                  "{\"name\":\"b\",\"stream\":\"clicks\",\"metrics\":[{\"name\":\"n\",\"type\":\"count\"}]},"
                  "{\"name\":\"c\",\"stream\":\"a\\nb\",\"metrics\":[{\"name\":\"n\",\"type\":\"count\"}]}]}",
                  "views[1].stream: unknown stream 'clicks'",
                  /* control characters in messages are escaped */
                  "views[2].stream: unknown stream 'a\\x0ab'");
    /* with no usable streams, the reference is not checked again */
    EXPECT_ERRORS("{\"streams\":5," VIEWS "}", "streams: must be an array");
}

static void test_listen(void)
{
    static const char *const bad[] = {
        "127.0.0.1", "127.0.0.1:", ":80", "1.2.3:80", "1.2.3.4.5:80", "host:80", "256.0.0.1:80",
        "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:8o", "127.0.0.1:123456", "[::1]:80",
        "localhost", "0127.0.0.1:80", "",
    };
    char buf[512];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(buf, sizeof(buf), "{\"http\":{\"listen\":\"%s\"}," MIN "}", bad[i]);
        EXPECT_ERRORS(buf, "http.listen: must be HOST:PORT with an IPv4 address or localhost "
                      "and a port from 0 to 65535 (0: any free port)");
    }
    config *c = LOAD_OK("{\"http\":{\"listen\":\"10.1.2.3:00080\"}," MIN "}");
    if (c) {
        CHECK_STR(c->http_host, "10.1.2.3");
        CHECK_INT(c->http_port, 80);
    }
    config_free(c);
}

static void test_partitions(void)
{
    EXPECT_ERRORS("{\"kafka\":{\"partitions\":{\"clicks\":[0],\"page-views\":[1],\"t\":[0,-1,2,\"3\",2,0,2147483648],"
                  "\"u\":[],\"w\":{}}},"
                  "\"streams\":[{\"name\":\"s\",\"topic\":\"t\",\"time_field\":\"ts\"},"
                  "{\"name\":\"s2\",\"topic\":\"u\",\"time_field\":\"ts\"},"
                  "{\"name\":\"s3\",\"topic\":\"w\",\"time_field\":\"ts\"}]," VIEWS "}",
                  "kafka.partitions.clicks: no stream reads topic 'clicks'",
                  "kafka.partitions[\"page-views\"]: no stream reads topic 'page-views'",
                  "kafka.partitions.t[1]: must be an integer between 0 and 2147483647",
                  "kafka.partitions.t[3]: must be an integer between 0 and 2147483647",
                  "kafka.partitions.t[4]: duplicate partition 2 (also kafka.partitions.t[2])",
                  "kafka.partitions.t[5]: duplicate partition 0 (also kafka.partitions.t[0])",
                  "kafka.partitions.t[6]: must be an integer between 0 and 2147483647",
                  "kafka.partitions.u: must not be empty",
                  "kafka.partitions.w: must be an array");
    /* sharding with topics left out */
    EXPECT_ERRORS("{\"kafka\":{\"partitions\":{\"t\":[0]}},"
                  "\"streams\":[{\"name\":\"s\",\"topic\":\"t\",\"time_field\":\"ts\"},"
                  "{\"name\":\"s2\",\"topic\":\"x\",\"time_field\":\"ts\"},"
                  "{\"name\":\"s3\",\"topic\":\"y\",\"time_field\":\"ts\"}]," VIEWS "}",
                  "kafka.partitions: lists no partitions of topic 'x' (stream 's2'): when "
                  "kafka.partitions is set, it must list every stream's topic",
                  "kafka.partitions: lists no partitions of topic 'y' (stream 's3'): when "
                  "kafka.partitions is set, it must list every stream's topic");
}

static void test_limits(void)
{
    /* 16 dimensions and 64 metrics are allowed; one more of either is not */
    char buf[8192];
    for (int extra = 0; extra <= 1; extra++) {
        int n = snprintf(buf, sizeof(buf), "{" STREAMS ",\"views\":[{\"name\":\"v\",\"stream\":\"s\",\"dimensions\":[");
        for (int i = 0; i < 16 + extra; i++)
            n += snprintf(buf + n, sizeof(buf) - (size_t)n, "%s\"d%d\"", i ? "," : "", i);
        n += snprintf(buf + n, sizeof(buf) - (size_t)n, "],\"metrics\":[");
        for (int i = 0; i < 64 + extra; i++)
            n += snprintf(buf + n, sizeof(buf) - (size_t)n, "%s{\"name\":\"m%d\",\"type\":\"count\"}",
                          i ? "," : "", i);
        snprintf(buf + n, sizeof(buf) - (size_t)n, "]}]}");
        if (extra) {
            EXPECT_ERRORS(buf, "views[0].dimensions: must have at most 16 dimensions",
                          "views[0].metrics: must have at most 64 metrics");
        } else {
            config *c = LOAD_OK(buf);
            if (c) {
                CHECK_INT(c->views[0].ndims, 16);
                CHECK_INT(c->views[0].nmetrics, 64);
                CHECK_INT(c->streams[0].nfields, 16);
            }
            config_free(c);
        }
    }
}

static void test_syntax_and_comments(void)
{
    EXPECT_ERRORS("{\n  \"streams\": x}", "line 2, column 14: invalid token near 'x'");
    EXPECT_ERRORS("", "line 1, column 0: '[' or '{' expected near end of file");
    EXPECT_ERRORS("{" MIN "} {}", "line 1, column 134: end of file expected near '{'");
    /* comments become blanks: the error keeps its line and column */
    EXPECT_ERRORS("// first line\n/* a\n   b */ {\n  \"streams\": x}",
                  "line 4, column 14: invalid token near 'x'");
    /* a multi-byte character in a comment is one column, as jansson counts */
    EXPECT_ERRORS("/* é */ x", "line 1, column 9: '[' or '{' expected near 'x'");
    EXPECT_ERRORS("{\n  /* oops\n", "line 2, column 3: unterminated comment");
    EXPECT_ERRORS("{\"a\":1}/", "line 1, column 8: end of file expected near '/'");

    /* comment markers inside strings are text */
    config *c = LOAD_OK("// a comment\n{\"streams\":[{\"name\":\"s\",\"topic\":\"t\", /* here */ "
                        "\"time_field\":\"a//b\"}], // there\n"
                        "\"views\":[{\"name\":\"v\",\"stream\":\"s\",\"dimensions\":[\"/*x*/\",\"q\\\"//\"],"
                        "\"metrics\":[{\"name\":\"n\",\"type\":\"count\"}]}]} /* end */");
    if (c) {
        CHECK_STR(c->streams[0].time_field, "a//b");
        CHECK_STR(c->views[0].dims[0], "/*x*/");
        CHECK_STR(c->views[0].dims[1], "q\"//");
    }
    config_free(c);
}

/* {"streams":[[...]]}: levels of nesting in all, the root object included. */
static char *nested_config(size_t levels)
{
    size_t n = levels - 1;
    char *t = malloc(16 + 2 * n);
    if (!t)
        return NULL;
    char *o = t + sprintf(t, "{\"streams\":");
    memset(o, '[', n);
    memset(o + n, ']', n);
    strcpy(o + 2 * n, "}");
    return t;
}

/* jansson parses 2048 levels (JSON_PARSER_MAX_DEPTH, compiled in); the
 * error names the limit. */
static void test_depth(void)
{
    char *t = nested_config(2048);
    if (t)
        EXPECT_ERRORS(t, "streams[0]: must be an object", "views: required");
    free(t);
    t = nested_config(2049);
    if (t)
        EXPECT_ERRORS(t, "line 1, column 2059: nested deeper than 2048 levels");
    free(t);
    t = nested_config(10000);
    if (t)
        EXPECT_ERRORS(t, "line 1, column 2059: nested deeper than 2048 levels");
    free(t);
}

static void test_many_problems(void)
{
    EXPECT_ERRORS("{\"kafka\":{\"brokerz\":\"x\",\"start\":\"now\"},\"archive\":{\"commit_interval_ms\":0},"
                  "\"streams\":[{\"name\":\"s\",\"topic\":\"t\",\"time_format\":\"kafka\"}],"
                  "\"views\":[{\"name\":\"a\",\"stream\":\"s\",\"metrics\":[{\"name\":\"n\",\"type\":\"count\"}]},"
                  "{\"name\":\"b\",\"stream\":\"clicks\",\"metrics\":[{\"name\":\"n\",\"type\":\"count\"}]},"
                  "{\"name\":\"c\",\"stream\":\"s\",\"metrics\":[{\"name\":\"n\",\"type\":\"sum\"}]},"
                  "{\"name\":\"a\",\"stream\":\"s\",\"granularity\":\"week\","
                  "\"metrics\":[{\"name\":\"n\",\"type\":\"count\"}]}],\"extra\":1}",
                  "kafka.brokerz: unknown key",
                  "kafka.start: must be one of earliest, latest",
                  "archive.commit_interval_ms: must be an integer between 1 and 60000",
                  "views[1].stream: unknown stream 'clicks'",
                  "views[2].metrics[0].field: required for metric type 'sum'",
                  "views[3].granularity: must be one of second, minute, hour, day",
                  "views[3].name: duplicate view name 'a' (also views[0])",
                  "extra: unknown key");
}

static char *write_temp(const char *text)
{
    char *path = strdup("/tmp/test_config_XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0) {
        free(path);
        return NULL;
    }
    size_t len = strlen(text);
    if (write(fd, text, len) != (ssize_t)len) {
        close(fd);
        unlink(path);
        free(path);
        return NULL;
    }
    close(fd);
    return path;
}

static void test_files(void)
{
    config *c = (config *)1;
    config_errors e = { 0 };
    CHECK_INT(config_load("/nonexistent/lambdad.json", &c, &e), -ENOENT);
    CHECK(c == NULL);
    CHECK_INT(e.n, 1);
    if (e.n == 1)
        CHECK_STR(e.items[0], "/nonexistent/lambdad.json: No such file or directory");
    config_errors_clear(&e);
    CHECK_INT(e.n, 0);
    CHECK(e.items == NULL);

    CHECK_INT(config_load("/tmp", &c, &e), -EISDIR);
    CHECK_INT(e.n, 1);
    if (e.n == 1)
        CHECK_STR(e.items[0], "/tmp: Is a directory");
    config_errors_clear(&e);

    char *path = write_temp("/* a config */\n{\n" MIN ",\n  \"http\": {\"threads\": 0}\n}\n");
    CHECK(path != NULL);
    if (path) {
        CHECK_INT(config_load(path, &c, &e), -EINVAL);
        CHECK_INT(e.n, 1);
        if (e.n == 1)
            CHECK_STR(e.items[0], "http.threads: must be an integer between 1 and 64");
        config_errors_clear(&e);
        unlink(path);
        free(path);
    }
    path = write_temp("// comment\n{" MIN "}\n");
    CHECK(path != NULL);
    if (path) {
        CHECK_INT(config_load(path, &c, &e), 0);
        CHECK_INT(e.n, 0);
        CHECK(c != NULL);
        if (c)
            CHECK_STR(c->views[0].name, "v");
        config_free(c);
        unlink(path);
        free(path);
    }
}

/* http.auth, http.tls, http.cors_origin and http.limits (issue #4) */
static void test_http_security(void)
{
    char buf[2048];
    char *tok = write_temp("s3cr3t-T0ken_~+/=\r\n\n");
    char *empty = write_temp("\n");
    char *spaced = write_temp("two words\n");
    char *cert = write_temp("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
    char *key = write_temp("-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n");
    CHECK(tok && empty && spaced && cert && key);
    if (!tok || !empty || !spaced || !cert || !key)
        goto out;

    /* a token with its trailing newlines stripped; protect defaults to admin */
    snprintf(buf, sizeof(buf), "{\"http\":{\"auth\":{\"token_file\":\"%s\"}}," MIN "}", tok);
    config *c = LOAD_OK(buf);
    if (c) {
        CHECK_STR(c->http_auth_token, "s3cr3t-T0ken_~+/=");
        CHECK_STR(c->http_auth_token_file, tok);
        CHECK_INT(c->http_auth_protect, CFG_PROTECT_ADMIN);
    }
    config_free(c);
    snprintf(buf, sizeof(buf), "{\"http\":{\"auth\":{\"token_file\":\"%s\",\"protect\":\"all\"},"
             "\"tls\":{\"cert_file\":\"%s\",\"key_file\":\"%s\"},"
             "\"cors_origin\":\"https://dash.example.com:8443\"}," MIN "}", tok, cert, key);
    c = LOAD_OK(buf);
    if (c) {
        CHECK_INT(c->http_auth_protect, CFG_PROTECT_ALL);
        CHECK_STR(c->http_tls_cert, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
        CHECK_STR(c->http_tls_key, "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n");
        CHECK_STR(c->http_tls_cert_file, cert);
        CHECK_STR(c->http_cors_origin, "https://dash.example.com:8443");
    }
    config_free(c);

    /* auth problems, each with the file's path */
    char want[512];
    EXPECT_ERRORS("{\"http\":{\"auth\":{\"protect\":\"all\"}}," MIN "}",
                  "http.auth.token_file: required");
    EXPECT_ERRORS("{\"http\":{\"auth\":{\"token_file\":\"/nonexistent/token\",\"protect\":\"some\"}}," MIN "}",
                  "http.auth.protect: must be one of admin, all");
    EXPECT_ERRORS("{\"http\":{\"auth\":\"secret\"}," MIN "}", "http.auth: must be an object");
    EXPECT_ERRORS("{\"http\":{\"auth\":{\"token_file\":\"/nonexistent/token\",\"user\":\"x\"}}," MIN "}",
                  "http.auth.user: unknown key");
    EXPECT_ERRORS("{\"http\":{\"auth\":{\"token_file\":\"/nonexistent/token\"}}," MIN "}",
                  "http.auth.token_file: cannot read /nonexistent/token: No such file or directory");
    EXPECT_ERRORS("{\"http\":{\"auth\":{\"token_file\":\"/tmp\"}}," MIN "}",
                  "http.auth.token_file: cannot read /tmp: Is a directory");
    snprintf(buf, sizeof(buf), "{\"http\":{\"auth\":{\"token_file\":\"%s\"}}," MIN "}", empty);
    snprintf(want, sizeof(want), "http.auth.token_file: %s is empty", empty);
    EXPECT_ERRORS(buf, want);
    snprintf(buf, sizeof(buf), "{\"http\":{\"auth\":{\"token_file\":\"%s\"}}," MIN "}", spaced);
    snprintf(want, sizeof(want),
             "http.auth.token_file: %s must hold one token of printable ASCII characters without spaces",
             spaced);
    EXPECT_ERRORS(buf, want);
    /* a file that is far too big for a token */
    char *big = malloc(5000);
    memset(big, 'x', 4097);
    big[4097] = '\0';
    char *bigf = write_temp(big);
    free(big);
    snprintf(buf, sizeof(buf), "{\"http\":{\"auth\":{\"token_file\":\"%s\"}}," MIN "}", bigf);
    snprintf(want, sizeof(want), "http.auth.token_file: %s is larger than 4096 bytes", bigf);
    EXPECT_ERRORS(buf, want);
    unlink(bigf);
    free(bigf);

    /* tls: both files or neither, each PEM */
    snprintf(buf, sizeof(buf), "{\"http\":{\"tls\":{\"cert_file\":\"%s\"}}," MIN "}", cert);
    EXPECT_ERRORS(buf, "http.tls.key_file: required with http.tls.cert_file");
    snprintf(buf, sizeof(buf), "{\"http\":{\"tls\":{\"key_file\":\"%s\"}}," MIN "}", key);
    EXPECT_ERRORS(buf, "http.tls.cert_file: required with http.tls.key_file");
    snprintf(buf, sizeof(buf), "{\"http\":{\"tls\":{\"cert_file\":\"%s\",\"key_file\":\"%s\"}}," MIN "}",
             tok, "/nonexistent/key.pem");
    snprintf(want, sizeof(want), "http.tls.cert_file: %s is not PEM (no -----BEGIN line)", tok);
    EXPECT_ERRORS(buf, want, "http.tls.key_file: cannot read /nonexistent/key.pem: No such file or directory");
    snprintf(buf, sizeof(buf), "{\"http\":{\"tls\":{\"cert_file\":\"%s\",\"key_file\":\"%s\"}}," MIN "}",
             cert, empty);
    char want2[512];
    snprintf(want2, sizeof(want2), "http.tls.key_file: %s is not PEM (no -----BEGIN line)", empty);
    EXPECT_ERRORS(buf, want2);
    EXPECT_ERRORS("{\"http\":{\"tls\":{\"cert_file\":\"\",\"key_file\":7}}," MIN "}",
                  "http.tls.cert_file: must not be empty", "http.tls.key_file: must be a string");
    c = LOAD_OK("{\"http\":{\"tls\":{}}," MIN "}");   /* neither: plain HTTP */
    if (c)
        CHECK(c->http_tls_cert == NULL);
    config_free(c);

    /* cors */
    static const char *const good_origins[] = {
        "*", "http://localhost:3000", "https://dash.example.com", "https://10.0.0.1", "http://[::1]:8080",
    };
    for (size_t i = 0; i < sizeof(good_origins) / sizeof(good_origins[0]); i++) {
        snprintf(buf, sizeof(buf), "{\"http\":{\"cors_origin\":\"%s\"}," MIN "}", good_origins[i]);
        c = LOAD_OK(buf);
        if (c)
            CHECK_STR(c->http_cors_origin, good_origins[i]);
        config_free(c);
    }
    static const char *const bad_origins[] = {
        "", "**", "dash.example.com", "ftp://x", "https://", "https://dash.example.com/",
        "https://a.com/path", "https://a.com:", "https://a.com:123456", "https://a b",
        "https://a.com\\r\\nX-Injected: 1", "https://a.com,https://b.com", "https://[::1", "https://-a",
    };
    for (size_t i = 0; i < sizeof(bad_origins) / sizeof(bad_origins[0]); i++) {
        snprintf(buf, sizeof(buf), "{\"http\":{\"cors_origin\":\"%s\"}," MIN "}", bad_origins[i]);
        EXPECT_ERRORS(buf, "http.cors_origin: must be \"*\" or an origin such as "
                      "https://dash.example.com (scheme://host[:port], without a path)");
    }
    EXPECT_ERRORS("{\"http\":{\"cors_origin\":true}," MIN "}", "http.cors_origin: must be a string");
out:
    for (char **f = (char *[]){tok, empty, spaced, cert, key, NULL}; *f; f++)
        unlink(*f);
    free(tok);
    free(empty);
    free(spaced);
    free(cert);
    free(key);
}

#define OWN "\"kafka\":{\"partitions\":{\"t\":[0,1]}},"

static void test_cluster(void)
{
    char buf[2048];
    char *tok = write_temp("peer-token\n");
    CHECK(tok != NULL);
    if (!tok)
        return;
    /* a shard with two peers: a replica of itself and another shard */
    snprintf(buf, sizeof(buf),
             "{" OWN "\"cluster\":{\"shard\":\"a\",\"token_file\":\"%s\","
             "\"connect_timeout_ms\":250,\"retry_after_ms\":0,"
             "\"peers\":[{\"url\":\"http://10.0.0.2:8080/\",\"shard\":\"a\"},"
             "{\"url\":\"https://b.example:8443\",\"shard\":\"b\"}]}," MIN "}", tok);
    config *c = LOAD_OK(buf);
    if (c) {
        CHECK_STR(c->cluster_shard, "a");
        CHECK_INT(c->npeers, 2);
        CHECK_STR(c->peers[0].url, "http://10.0.0.2:8080");   /* its '/' dropped */
        CHECK_STR(c->peers[0].shard, "a");
        CHECK_STR(c->peers[1].url, "https://b.example:8443");
        CHECK_STR(c->cluster_token, "peer-token");
        CHECK_INT(c->cluster_connect_timeout_ms, 250);
        CHECK_INT(c->cluster_retry_after_ms, 0);
    }
    config_free(c);
    /* replicas of one shard may each read every partition */
    c = LOAD_OK("{\"cluster\":{\"shard\":\"all\",\"peers\":[{\"url\":\"http://h:1\","
                "\"shard\":\"all\"}]}," MIN "}");
    config_free(c);
    /* other shards need kafka.partitions; peers need a shard of our own */
    EXPECT_ERRORS("{\"cluster\":{\"shard\":\"a\",\"peers\":[{\"url\":\"http://h:1\","
                  "\"shard\":\"a\"},{\"url\":\"http://h:2\",\"shard\":\"b\"}]}," MIN "}",
                  "kafka.partitions: required when cluster.peers has another shard ('b' at "
                  "http://h:2): an instance that reads every partition would count its peers' "
                  "events again");
    EXPECT_ERRORS("{" OWN "\"cluster\":{\"peers\":[{\"url\":\"http://h:1\",\"shard\":\"b\"}]},"
                  MIN "}",
                  "cluster.shard: required when cluster.peers is set (the name of the shard "
                  "this instance serves)");
    EXPECT_ERRORS("{" OWN "\"cluster\":{\"shard\":\"a b\",\"peers\":{},\"port\":1,"
                  "\"connect_timeout_ms\":0,\"token_file\":\"/nonexistent/t\"}," MIN "}",
                  "cluster.shard: must be 1 to 64 characters of A-Z a-z 0-9 _ . -",
                  "cluster.peers: must be an array",
                  "cluster.port: unknown key",
                  "cluster.connect_timeout_ms: must be an integer between 1 and 600000",
                  "cluster.token_file: cannot read /nonexistent/t: No such file or directory");
    EXPECT_ERRORS("{\"cluster\":{\"ca_file\":\"/nonexistent/ca.pem\"}," MIN "}",
                  "cluster.ca_file: cannot read /nonexistent/ca.pem: No such file or directory");
    EXPECT_ERRORS("{" OWN "\"cluster\":{\"shard\":\"a\",\"peers\":["
                  "{\"url\":\"ftp://h:1\",\"shard\":\"b\"},"
                  "{\"url\":\"http://h:1/api\",\"shard\":\"b\"},"
                  "{\"url\":\"http://\",\"shard\":\"b\"},"
                  "{\"url\":\"http://h:2\"},"
                  "{\"url\":\"http://h:3\",\"shard\":\"c\"},"
                  "{\"url\":\"http://h:3/\",\"shard\":\"c\"}]}," MIN "}",
                  "cluster.peers[0].url: must be http://HOST[:PORT] or https://HOST[:PORT] "
                  "without a path",
                  "cluster.peers[1].url: must be http://HOST[:PORT] or https://HOST[:PORT] "
                  "without a path",
                  "cluster.peers[2].url: must be http://HOST[:PORT] or https://HOST[:PORT] "
                  "without a path",
                  "cluster.peers[3].shard: required",
                  "cluster.peers[5]: peer http://h:3 is listed twice (also cluster.peers[4])");
    unlink(tok);
    free(tok);
}

static void test_http_limits(void)
{
    config *c = LOAD_OK("{\"http\":{\"limits\":{\"max_body_bytes\":0,\"max_query_bytes\":65536,"
                        "\"max_rows\":1,\"max_connections\":100000,\"max_connections_per_ip\":1,"
                        "\"connection_timeout_s\":3600}}," MIN "}");
    if (c) {
        CHECK_INT(c->http_max_body_bytes, 0);
        CHECK_INT(c->http_max_query_bytes, 65536);
        CHECK_INT(c->http_max_rows, 1);
        CHECK_INT(c->http_max_connections, 100000);
        CHECK_INT(c->http_max_connections_per_ip, 1);
        CHECK_INT(c->http_connection_timeout_s, 3600);
    }
    config_free(c);
    EXPECT_ERRORS("{\"http\":{\"limits\":{\"max_body_bytes\":-1,\"max_query_bytes\":65537,"
                  "\"max_rows\":0,\"max_connections\":0,\"max_connections_per_ip\":100001,"
                  "\"connection_timeout_s\":0,\"max_header_bytes\":1}}," MIN "}",
                  "http.limits.max_body_bytes: must be an integer between 0 and 1073741824",
                  "http.limits.max_query_bytes: must be an integer between 1 and 65536",
                  "http.limits.max_rows: must be an integer between 1 and 10000000",
                  "http.limits.max_connections: must be an integer between 1 and 100000",
                  "http.limits.max_connections_per_ip: must be an integer between 1 and 100000",
                  "http.limits.connection_timeout_s: must be an integer between 1 and 3600",
                  "http.limits.max_header_bytes: unknown key");
    EXPECT_ERRORS("{\"http\":{\"limits\":[]}," MIN "}", "http.limits: must be an object");
    /* the query time budget */
    c = LOAD_OK("{\"http\":{\"limits\":{\"query_timeout_ms\":1}}," MIN "}");
    if (c)
        CHECK_INT(c->http_query_timeout_ms, 1);
    config_free(c);
    c = LOAD_OK("{\"http\":{\"limits\":{\"query_timeout_ms\":600000}}," MIN "}");
    if (c)
        CHECK_INT(c->http_query_timeout_ms, 600000);
    config_free(c);
    EXPECT_ERRORS("{\"http\":{\"limits\":{\"query_timeout_ms\":0}}," MIN "}",
                  "http.limits.query_timeout_ms: must be an integer between 1 and 600000");
    EXPECT_ERRORS("{\"http\":{\"limits\":{\"query_timeout_ms\":600001}}," MIN "}",
                  "http.limits.query_timeout_ms: must be an integer between 1 and 600000");
    EXPECT_ERRORS("{\"http\":{\"limits\":{\"query_timeout_ms\":\"5s\"}}," MIN "}",
                  "http.limits.query_timeout_ms: must be an integer between 1 and 600000");
}

/* archive.retention and views[].retention: durations, their errors with
 * the JSON path, and the partitions they keep. */
static void test_retention(void)
{
    config *c = LOAD_OK("{\"archive\":{\"retention\":\"400d\",\"compaction_level\":19},"
                        STREAMS ",\"views\":[{\"name\":\"v\",\"stream\":\"s\","
                        "\"granularity\":\"hour\",\"retention\":\"12h\","
                        "\"metrics\":[{\"name\":\"n\",\"type\":\"count\"}]},"
                        "{\"name\":\"w\",\"stream\":\"s\",\"retention\":\"2w\","
                        "\"metrics\":[{\"name\":\"n\",\"type\":\"count\"}]}]}");
    if (c) {
        CHECK_INT(c->archive_retention_s, 400 * 86400);
        CHECK_INT(c->compact_level, 19);
        CHECK_INT(c->views[0].retention_s, 12 * 3600);
        CHECK_INT(c->views[1].retention_s, 14 * 86400);
        /* 2025-11-23T10:30:00Z: the archive keeps day partitions from
         * 400 days before, view v (hour, under day partitions: unit day)
         * from the day holding 22:30 the day before, view w from the day
         * holding 14 days before */
        int64_t now = 1763893800, arch_cut, cuts[2];
        config_retention_cuts(c, now, &arch_cut, cuts);
        CHECK_INT(arch_cut, 1763856000 - 400 * 86400);
        CHECK_INT(cuts[0], 1763856000 - 86400);
        CHECK_INT(cuts[1], 1763856000 - 14 * 86400);
    }
    config_free(c);
    c = LOAD_OK("{" MIN "}");
    if (c) {
        CHECK_INT(c->archive_retention_s, 0);
        CHECK_INT(c->compact_level, 9);
        int64_t arch_cut, cut;
        config_retention_cuts(c, 1763893800, &arch_cut, &cut);
        CHECK(arch_cut == INT64_MIN && cut == INT64_MIN);
    }
    config_free(c);
    /* the archive's retention cuts the views too */
    c = LOAD_OK("{\"archive\":{\"retention\":\"3d\"}," STREAMS ",\"views\":[{\"name\":\"v\","
                "\"stream\":\"s\",\"retention\":\"30d\","
                "\"metrics\":[{\"name\":\"n\",\"type\":\"count\"}]}]}");
    if (c) {
        int64_t arch_cut, cut;
        config_retention_cuts(c, 1763893800, &arch_cut, &cut);
        CHECK_INT(arch_cut, 1763856000 - 3 * 86400);
        CHECK_INT(cut, arch_cut);
    }
    config_free(c);
#define DURATION_ERR ": must be a duration such as \"90d\", \"400d\" or \"12h\" " \
                     "(a positive whole number and one of s, m, h, d, w; at most 36600d)"
    EXPECT_ERRORS("{\"archive\":{\"retention\":\"90\"}," MIN "}",
                  "archive.retention" DURATION_ERR);
    EXPECT_ERRORS("{\"archive\":{\"retention\":90}," MIN "}", "archive.retention" DURATION_ERR);
    EXPECT_ERRORS("{\"archive\":{\"retention\":\"0d\"}," MIN "}",
                  "archive.retention" DURATION_ERR);
    EXPECT_ERRORS("{\"archive\":{\"retention\":\"99999999999d\"}," MIN "}",
                  "archive.retention" DURATION_ERR);
    /* the longest (100 years of 366 days) and shortest accepted, each unit */
    const char *ok[][2] = { { "36600d", "3162240000" }, { "1s", "1" }, { "90m", "5400" },
                            { "5227w", "3161289600" }, { "878400h", "3162240000" } };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char json[256];
        snprintf(json, sizeof json, "{\"archive\":{\"retention\":\"%s\"}," MIN "}", ok[i][0]);
        c = LOAD_OK(json);
        if (c)
            CHECK_INT(c->archive_retention_s, strtoll(ok[i][1], NULL, 10));
        config_free(c);
    }
    const char *bad[] = { "36601d", "5229w", "12x", "1.5d", "-1d", "d", "", "12hh", "1d1h" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char json[256];
        snprintf(json, sizeof json, "{\"archive\":{\"retention\":\"%s\"}," MIN "}", bad[i]);
        EXPECT_ERRORS(json, "archive.retention" DURATION_ERR);
    }
    EXPECT_ERRORS("{" STREAMS ",\"views\":[{\"name\":\"v\",\"stream\":\"s\","
                  "\"retention\":\"90 d\",\"metrics\":[{\"name\":\"n\",\"type\":\"count\"}]}]}",
                  "views[0].retention" DURATION_ERR);
    EXPECT_ERRORS("{\"archive\":{\"compaction_level\":20}," MIN "}",
                  "archive.compaction_level: must be an integer between 1 and 19");
#undef DURATION_ERR
}

/* serving: the memory budgets and the query pool */
static void test_serving(void)
{
    config *c = LOAD_OK("{\"serving\":{\"cache_mb\":1,\"answer_cache_mb\":0,"
                        "\"query_threads\":1,\"query_queue\":0}," MIN "}");
    if (c) {
        CHECK_INT(c->serving_cache_mb, 1);
        CHECK_INT(c->serving_answer_cache_mb, 0);   /* 0: no answer cache */
        CHECK_INT(c->serving_query_threads, 1);
        CHECK_INT(c->serving_query_queue, 0);
    }
    config_free(c);
    c = LOAD_OK("{\"serving\":{\"cache_mb\":1048576,\"answer_cache_mb\":1048576,"
                "\"query_threads\":64,\"query_queue\":100000}," MIN "}");
    if (c) {
        CHECK_INT(c->serving_cache_mb, 1048576);
        CHECK_INT(c->serving_answer_cache_mb, 1048576);
        CHECK_INT(c->serving_query_threads, 64);
        CHECK_INT(c->serving_query_queue, 100000);
    }
    config_free(c);
    /* an empty section gives every default */
    c = LOAD_OK("{\"serving\":{}," MIN "}");
    if (c) {
        CHECK_INT(c->serving_cache_mb, 256);
        CHECK_INT(c->serving_answer_cache_mb, 64);
        CHECK_INT(c->serving_query_threads, 2);
        CHECK_INT(c->serving_query_queue, 64);
    }
    config_free(c);
    EXPECT_ERRORS("{\"serving\":{\"cache_mb\":0,\"answer_cache_mb\":-1,"
                  "\"query_threads\":0,\"query_queue\":-1}," MIN "}",
                  "serving.cache_mb: must be an integer between 1 and 1048576",
                  "serving.answer_cache_mb: must be an integer between 0 and 1048576",
                  "serving.query_threads: must be an integer between 1 and 64",
                  "serving.query_queue: must be an integer between 0 and 100000");
    EXPECT_ERRORS("{\"serving\":{\"cache_mb\":1048577,\"answer_cache_mb\":1048577,"
                  "\"query_threads\":65,\"query_queue\":100001}," MIN "}",
                  "serving.cache_mb: must be an integer between 1 and 1048576",
                  "serving.answer_cache_mb: must be an integer between 0 and 1048576",
                  "serving.query_threads: must be an integer between 1 and 64",
                  "serving.query_queue: must be an integer between 0 and 100000");
    EXPECT_ERRORS("{\"serving\":{\"cache_mb\":\"256\",\"query_threads\":2.5}," MIN "}",
                  "serving.cache_mb: must be an integer between 1 and 1048576",
                  "serving.query_threads: must be an integer between 1 and 64");
    EXPECT_ERRORS("{\"serving\":{\"cache\":1}," MIN "}", "serving.cache: unknown key");
    EXPECT_ERRORS("{\"serving\":[]," MIN "}", "serving: must be an object");
}

static void test_resolution(void)
{
    config *c = LOAD_OK(
        "{\"streams\":[{\"name\":\"p\",\"topic\":\"p\",\"time_field\":\"ts\"},"
        "{\"name\":\"q\",\"topic\":\"q\",\"time_format\":\"kafka\"}],"
        "\"views\":["
        "{\"name\":\"v1\",\"stream\":\"p\",\"dimensions\":[\"page\",\"country\"],"
        " \"metrics\":[{\"name\":\"n\",\"type\":\"count\"},{\"name\":\"b\",\"type\":\"sum\",\"field\":\"bytes\"}]},"
        "{\"name\":\"w\",\"stream\":\"q\",\"dimensions\":[\"page\"],"
        " \"metrics\":[{\"name\":\"m\",\"type\":\"max\",\"field\":\"ms\"}]},"
        "{\"name\":\"v2\",\"stream\":\"p\",\"dimensions\":[\"country\",\"ua\"],"
        " \"metrics\":[{\"name\":\"slow\",\"type\":\"max\",\"field\":\"ms\"},"
        "             {\"name\":\"ab\",\"type\":\"avg\",\"field\":\"bytes\"},"
        "             {\"name\":\"t\",\"type\":\"min\",\"field\":\"ts\"}]}]}");
    if (!c)
        return;
    /* stream p: distinct fields in first-seen order; the time field only
     * because a metric reads it */
    const stream_def *p = &c->streams[0];
    CHECK_INT(p->nfields, 6);
    if (p->nfields == 6) {
        const char *want[] = {"page", "country", "bytes", "ua", "ms", "ts"};
        for (size_t i = 0; i < 6; i++)
            CHECK_STR(p->fields[i], want[i]);
    }
    const view_def *v1 = config_find_view(c, "v1", NULL);
    size_t idx = 99;
    const view_def *v2 = config_find_view(c, "v2", &idx);
    CHECK(v1 == &c->views[0]);
    CHECK(v2 == &c->views[2]);
    CHECK_INT(idx, 2);
    CHECK(config_find_view(c, "nope", &idx) == NULL);
    CHECK_INT(idx, 2);
    if (v1 && v2) {
        CHECK_INT(v1->stream_idx, 0);
        CHECK_INT(v1->dim_idx[0], 0);
        CHECK_INT(v1->dim_idx[1], 1);
        CHECK_INT(v1->metrics[0].field_idx, -1);
        CHECK_INT(v1->metrics[1].field_idx, 2);
        CHECK_INT(v2->stream_idx, 0);
        CHECK_INT(v2->dim_idx[0], 1);
        CHECK_INT(v2->dim_idx[1], 3);
        CHECK_INT(v2->metrics[0].field_idx, 4);
        CHECK_INT(v2->metrics[1].field_idx, 2);
        CHECK_INT(v2->metrics[2].field_idx, 5);
    }
    /* stream q has its own list */
    const stream_def *q = &c->streams[1];
    CHECK_INT(q->nfields, 2);
    if (q->nfields == 2) {
        CHECK_STR(q->fields[0], "page");
        CHECK_STR(q->fields[1], "ms");
    }
    CHECK_INT(c->views[1].stream_idx, 1);
    CHECK_INT(c->views[1].dim_idx[0], 0);
    CHECK_INT(c->views[1].metrics[0].field_idx, 1);

    /* resolving again gives the same result */
    CHECK_INT(defs_resolve(c->streams, c->nstreams, c->views, c->nviews), 0);
    CHECK_INT(p->nfields, 6);
    CHECK_INT(q->nfields, 2);
    CHECK_INT(v2->dim_idx[1], 3);
    config_free(c);
}

/* A config of n views over three streams: view i reads stream s<i%3>,
 * groups by "page" and sums its own field f<i>; names[k] / streams[k]
 * replace view k's name / stream when set (k < 2). */
static char *many_views(size_t n, const size_t *at, const char *const *names,
                        const char *const *streams)
{
    size_t cap = 128 + n * 160, len = 0;
    char *t = malloc(cap);
    if (!t)
        return NULL;
    len += (size_t)snprintf(t + len, cap - len, "{\"streams\":[");
    for (int k = 0; k < 3; k++)
        len += (size_t)snprintf(t + len, cap - len, "%s{\"name\":\"s%d\",\"topic\":\"t%d\","
                                "\"time_field\":\"ts\"}", k ? "," : "", k, k);
    len += (size_t)snprintf(t + len, cap - len, "],\"views\":[");
    for (size_t i = 0; i < n; i++) {
        char name[32], stream[32];
        snprintf(name, sizeof(name), "v%zu", i);
        snprintf(stream, sizeof(stream), "s%zu", i % 3);
        for (int k = 0; k < 2; k++) {
            if (at[k] == i && names[k])
                snprintf(name, sizeof(name), "%s", names[k]);
            if (at[k] == i && streams[k])
                snprintf(stream, sizeof(stream), "%s", streams[k]);
        }
        len += (size_t)snprintf(t + len, cap - len,
                                "%s{\"name\":\"%s\",\"stream\":\"%s\",\"dimensions\":[\"page\"],"
                                "\"metrics\":[{\"name\":\"n\",\"type\":\"count\"},"
                                "{\"name\":\"b\",\"type\":\"sum\",\"field\":\"f%zu\"}]}",
                                i ? "," : "", name, stream, i);
    }
    snprintf(t + len, cap - len, "]}");
    return t;
}

/* 60k views: checked right (names, streams and fields are looked up in
 * maps, not by comparing every pair: this took 12 s before). */
static void test_many_views(void)
{
    enum { N = 60000 };
    size_t none[2] = {SIZE_MAX, SIZE_MAX};
    char *text = many_views(N, none, (const char *const[]){NULL, NULL},
                            (const char *const[]){NULL, NULL});
    config *c = text ? LOAD_OK(text) : NULL;
    CHECK(c != NULL);
    if (c) {
        CHECK_INT(c->nviews, N);
        for (int k = 0; k < 3; k++) {
            /* "page", then one field per view of the stream, in order */
            CHECK_INT(c->streams[k].nfields, 1 + N / 3);
            CHECK_STR(c->streams[k].fields[0], "page");
        }
        size_t bad = 0;
        for (size_t i = 0; i < N; i++) {
            const view_def *v = &c->views[i];
            char f[32];
            snprintf(f, sizeof(f), "f%zu", i);
            const stream_def *s = &c->streams[i % 3];
            if (v->stream_idx != i % 3 || v->dim_idx[0] != 0 ||
                v->metrics[1].field_idx != (int)(1 + i / 3) ||
                strcmp(s->fields[v->metrics[1].field_idx], f) != 0)
                bad++;
        }
        CHECK_INT(bad, 0);
        size_t idx = 0;
        CHECK(config_find_view(c, "v59999", &idx) == &c->views[N - 1]);
        CHECK_INT(idx, N - 1);
    }
    config_free(c);
    free(text);

    /* a duplicate name and an unknown stream far apart are both found
     * (in fewer views: the sanitizer build loads slowly) */
    size_t at[2] = {4000, 5999};
    text = many_views(6000, at, (const char *const[]){NULL, "v1234"},
                      (const char *const[]){"nope", "s1"});
    if (text)
        EXPECT_ERRORS(text, "views[4000].stream: unknown stream 'nope'",
                      "views[5999].name: duplicate view name 'v1234' (also views[1234])");
    free(text);
}

/* Fingerprints of views a and b and of the whole config. */
typedef struct {
    char a[17], b[17], all[17];
} prints;

static prints fingerprints(const char *stream, const char *view_a, const char *view_b)
{
    char buf[2048];
    prints p = { "?", "?", "?" };
    snprintf(buf, sizeof(buf), "{\"streams\":[%s],\"views\":[%s,%s]}", stream, view_a, view_b);
    config *c = LOAD_OK(buf);
    if (c) {
        memcpy(p.a, c->views[0].fingerprint, 17);
        memcpy(p.b, c->views[1].fingerprint, 17);
        memcpy(p.all, c->fingerprint, 17);
    }
    config_free(c);
    return p;
}

static void test_fingerprints(void)
{
    const char *s = "{\"name\":\"s\",\"topic\":\"t\",\"time_field\":\"ts\"}";
    const char *a = "{\"name\":\"a\",\"stream\":\"s\",\"dimensions\":[\"x\",\"y\"],"
                    "\"metrics\":[{\"name\":\"n\",\"type\":\"count\"},{\"name\":\"m\",\"type\":\"sum\",\"field\":\"f\"}]}";
    const char *b = "{\"name\":\"b\",\"stream\":\"s\",\"granularity\":\"hour\","
                    "\"metrics\":[{\"name\":\"n\",\"type\":\"count\"}]}";
    prints base = fingerprints(s, a, b);
    prints again = fingerprints(s, a, b);
    CHECK_STR(base.a, again.a);
    CHECK_STR(base.b, again.b);
    CHECK_STR(base.all, again.all);
    CHECK(strcmp(base.a, base.b) != 0);
    /* the canonical form of the definition, pinned: a change of the hash or
     * of the canonical text would recompute every view of every user */
    CHECK_STR(base.a, "fbf7130d3d79723c");

    /* the same definitions written differently: same fingerprints */
    prints same = fingerprints("{\"topic\":\"t\", \"time_field\":\"ts\", \"name\":\"s\", \"time_format\":\"epoch_s\"}",
                               "{\"stream\":\"s\",\"name\":\"a\",\"granularity\":\"minute\",\"dimensions\":[\"x\",\"y\"],"
                               "\"metrics\":[{\"type\":\"count\",\"name\":\"n\"},{\"name\":\"m\",\"field\":\"f\",\"type\":\"sum\"}]}",
                               b);
    CHECK_STR(same.a, base.a);
    CHECK_STR(same.b, base.b);
    CHECK(strcmp(same.all, base.all) != 0);   /* the document did change */

    /* a changed view changes only its own fingerprint */
    const char *changed_a[] = {
        /* a dimension added, removed, reordered, renamed */
        "{\"name\":\"a\",\"stream\":\"s\",\"dimensions\":[\"x\",\"y\",\"z\"],"
        "\"metrics\":[{\"name\":\"n\",\"type\":\"count\"},{\"name\":\"m\",\"type\":\"sum\",\"field\":\"f\"}]}",
        "{\"name\":\"a\",\"stream\":\"s\",\"dimensions\":[\"x\"],"
        "\"metrics\":[{\"name\":\"n\",\"type\":\"count\"},{\"name\":\"m\",\"type\":\"sum\",\"field\":\"f\"}]}",
        "{\"name\":\"a\",\"stream\":\"s\",\"dimensions\":[\"y\",\"x\"],"
        "\"metrics\":[{\"name\":\"n\",\"type\":\"count\"},{\"name\":\"m\",\"type\":\"sum\",\"field\":\"f\"}]}",
        "{\"name\":\"a\",\"stream\":\"s\",\"dimensions\":[\"x\",\"yy\"],"
        "\"metrics\":[{\"name\":\"n\",\"type\":\"count\"},{\"name\":\"m\",\"type\":\"sum\",\"field\":\"f\"}]}",
        /* a metric's type, field, name; a metric removed */
        "{\"name\":\"a\",\"stream\":\"s\",\"dimensions\":[\"x\",\"y\"],"
        "\"metrics\":[{\"name\":\"n\",\"type\":\"count\"},{\"name\":\"m\",\"type\":\"max\",\"field\":\"f\"}]}",
        "{\"name\":\"a\",\"stream\":\"s\",\"dimensions\":[\"x\",\"y\"],"
        "\"metrics\":[{\"name\":\"n\",\"type\":\"count\"},{\"name\":\"m\",\"type\":\"sum\",\"field\":\"g\"}]}",
        "{\"name\":\"a\",\"stream\":\"s\",\"dimensions\":[\"x\",\"y\"],"
        "\"metrics\":[{\"name\":\"n\",\"type\":\"count\"},{\"name\":\"m2\",\"type\":\"sum\",\"field\":\"f\"}]}",
        "{\"name\":\"a\",\"stream\":\"s\",\"dimensions\":[\"x\",\"y\"],"
        "\"metrics\":[{\"name\":\"n\",\"type\":\"count\"}]}",
        /* the granularity */
        "{\"name\":\"a\",\"stream\":\"s\",\"granularity\":\"second\",\"dimensions\":[\"x\",\"y\"],"
        "\"metrics\":[{\"name\":\"n\",\"type\":\"count\"},{\"name\":\"m\",\"type\":\"sum\",\"field\":\"f\"}]}",
    };
    /* sketch parameters: the default written out is the same view, another
     * precision or accuracy is not */
#define SKETCH_VIEW(params_u, params_l)                                                        \
    "{\"name\":\"a\",\"stream\":\"s\",\"metrics\":[{\"name\":\"u\",\"type\":\"distinct\",\"field\":\"u\"" \
    params_u "},{\"name\":\"l\",\"type\":\"quantiles\",\"field\":\"ms\"" params_l "}]}"
    prints sk = fingerprints(s, SKETCH_VIEW("", ""), b);
    prints sk_same = fingerprints(s, SKETCH_VIEW(",\"precision\":14", ",\"accuracy\":0.01"), b);
    prints sk_p = fingerprints(s, SKETCH_VIEW(",\"precision\":12", ""), b);
    prints sk_a = fingerprints(s, SKETCH_VIEW("", ",\"accuracy\":0.02"), b);
#undef SKETCH_VIEW
    CHECK_STR(sk_same.a, sk.a);
    CHECK(strcmp(sk_p.a, sk.a) != 0);
    CHECK(strcmp(sk_a.a, sk.a) != 0);
    CHECK(strcmp(sk_a.a, sk_p.a) != 0);
    for (size_t i = 0; i < sizeof(changed_a) / sizeof(changed_a[0]); i++) {
        prints p = fingerprints(s, changed_a[i], b);
        if (strcmp(p.a, base.a) == 0) {
            fprintf(stderr, "%s:%d: change %zu kept view a's fingerprint\n", __FILE__, __LINE__, i);
            check_failures++;
        }
        CHECK_STR(p.b, base.b);
        CHECK(strcmp(p.all, base.all) != 0);
    }
    /* renaming a view does not change what it computes */
    prints renamed = fingerprints(s, a, "{\"name\":\"bb\",\"stream\":\"s\",\"granularity\":\"hour\","
                                  "\"metrics\":[{\"name\":\"n\",\"type\":\"count\"}]}");
    CHECK_STR(renamed.a, base.a);
    CHECK_STR(renamed.b, base.b);
    /* the stream's topic, time field and time format belong to every view */
    const char *changed_s[] = {
        "{\"name\":\"s\",\"topic\":\"t2\",\"time_field\":\"ts\"}",
        "{\"name\":\"s\",\"topic\":\"t\",\"time_field\":\"at\"}",
        "{\"name\":\"s\",\"topic\":\"t\",\"time_field\":\"ts\",\"time_format\":\"epoch_ms\"}",
        "{\"name\":\"s\",\"topic\":\"t\",\"time_format\":\"kafka\"}",
    };
    for (size_t i = 0; i < sizeof(changed_s) / sizeof(changed_s[0]); i++) {
        prints p = fingerprints(changed_s[i], a, b);
        CHECK(strcmp(p.a, base.a) != 0);
        CHECK(strcmp(p.b, base.b) != 0);
    }
    /* a stream's name is only a label */
    prints srenamed = fingerprints("{\"name\":\"s9\",\"topic\":\"t\",\"time_field\":\"ts\"}",
                                   "{\"name\":\"a\",\"stream\":\"s9\",\"dimensions\":[\"x\",\"y\"],"
                                   "\"metrics\":[{\"name\":\"n\",\"type\":\"count\"},{\"name\":\"m\",\"type\":\"sum\",\"field\":\"f\"}]}",
                                   "{\"name\":\"b\",\"stream\":\"s9\",\"granularity\":\"hour\","
                                   "\"metrics\":[{\"name\":\"n\",\"type\":\"count\"}]}");
    CHECK_STR(srenamed.a, base.a);

    /* whitespace and comments do not change the config's fingerprint */
    config *c1 = LOAD_OK("{" MIN "}");
    config *c2 = LOAD_OK("// hello\n{ " STREAMS " ,\n /* x */ " VIEWS " }\n");
    config *c3 = LOAD_OK("{\"http\":{\"threads\":2}," MIN "}");
    if (c1 && c2 && c3) {
        CHECK_STR(c1->fingerprint, c2->fingerprint);
        CHECK(strcmp(c1->fingerprint, c3->fingerprint) != 0);
    }
    config_free(c1);
    config_free(c2);
    config_free(c3);
}

static void test_defs_names(void)
{
    for (int i = TF_EPOCH_S; i <= TF_KAFKA; i++) {
        time_format f = TF_KAFKA;
        CHECK_INT(time_format_parse(time_format_name((time_format)i), &f), 0);
        CHECK_INT(f, i);
    }
    for (int i = MT_COUNT; i <= MT_AVG; i++) {
        metric_type t = MT_COUNT;
        CHECK_INT(metric_type_parse(metric_type_name((metric_type)i), &t), 0);
        CHECK_INT(t, i);
    }
    CHECK_STR(time_format_name(TF_RFC3339), "rfc3339");
    CHECK_STR(metric_type_name(MT_AVG), "avg");
    CHECK_STR(time_format_name((time_format)42), "unknown");
    CHECK_STR(metric_type_name((metric_type)42), "unknown");
    time_format f;
    metric_type t;
    CHECK_INT(time_format_parse("EPOCH_S", &f), -EINVAL);
    CHECK_INT(time_format_parse(NULL, &f), -EINVAL);
    CHECK_INT(metric_type_parse("median", &t), -EINVAL);
    stream_def_clear(NULL);
    view_def_clear(NULL);
    config_free(NULL);
    config_errors_clear(NULL);
}

static void test_examples(void)
{
    static const char *const files[] = {
        SOURCE_ROOT "/config/lambdad.example.json",
        SOURCE_ROOT "/deploy/lambdad.json",
    };
    for (size_t i = 0; i < 2; i++) {
        config *c = NULL;
        config_errors e = { 0 };
        int r = config_load(files[i], &c, &e);
        CHECK_INT(r, 0);
        for (size_t k = 0; k < e.n; k++)
            fprintf(stderr, "%s: %s\n", files[i], e.items[k]);
        config_errors_clear(&e);
        if (!c)
            continue;
        CHECK_INT(c->nstreams, 1);
        CHECK_STR(c->streams[0].name, "pageviews");
        CHECK_INT(c->nviews, 3);
        CHECK(config_find_view(c, "views_by_page", NULL) != NULL);
        CHECK(config_find_view(c, "traffic_by_country", NULL) != NULL);
        CHECK(config_find_view(c, "latency", NULL) != NULL);
        config_free(c);
    }

    /* the demo's config writes out every default: it equals the built-in ones */
    config *ex = NULL, *min = NULL;
    config_errors e = { 0 };
    config_load(files[0], &ex, &e);
    config_errors_clear(&e);
    min = LOAD_OK("{" MIN "}");
    if (ex && min) {
        CHECK_STR(ex->brokers, min->brokers);
        CHECK_STR(ex->group_id, min->group_id);
        CHECK_STR(ex->start, min->start);
        CHECK_INT(ex->metadata_refresh_ms, min->metadata_refresh_ms);
        CHECK_INT(ex->unreachable_after_ms, min->unreachable_after_ms);
        CHECK_INT(ex->stall_after_ms, min->stall_after_ms);
        CHECK_STR(ex->archive_path, min->archive_path);
        CHECK_INT(ex->commit_interval_ms, min->commit_interval_ms);
        CHECK_INT(ex->commit_max_events, min->commit_max_events);
        CHECK_INT(ex->compression_level, min->compression_level);
        CHECK_INT(ex->batch_interval_s, min->batch_interval_s);
        CHECK_INT(ex->batch_partition, min->batch_partition);
        CHECK_STR(ex->http_host, min->http_host);
        CHECK_INT(ex->http_port, min->http_port);
        CHECK_INT(ex->http_threads, min->http_threads);
        CHECK_INT(ex->http_max_body_bytes, min->http_max_body_bytes);
        CHECK_INT(ex->http_max_query_bytes, min->http_max_query_bytes);
        CHECK_INT(ex->http_max_rows, min->http_max_rows);
        CHECK_INT(ex->http_max_connections, min->http_max_connections);
        CHECK_INT(ex->http_max_connections_per_ip, min->http_max_connections_per_ip);
        CHECK_INT(ex->http_connection_timeout_s, min->http_connection_timeout_s);
        CHECK_INT(ex->http_query_timeout_ms, min->http_query_timeout_ms);
        CHECK_INT(ex->serving_cache_mb, min->serving_cache_mb);
        CHECK_INT(ex->serving_answer_cache_mb, min->serving_answer_cache_mb);
        CHECK_INT(ex->serving_query_threads, min->serving_query_threads);
        CHECK_INT(ex->serving_query_queue, min->serving_query_queue);
        const view_def *v = config_find_view(ex, "views_by_page", NULL);
        if (v) {
            CHECK_INT(v->gran, GRAN_MINUTE);
            CHECK_INT(v->ndims, 2);
            CHECK_INT(v->nmetrics, 3);
            CHECK_STR(v->metrics[2].name, "slowest");
            CHECK_INT(v->metrics[2].type, MT_MAX);
            CHECK_STR(v->metrics[2].field, "ms");
        }
        CHECK_INT(ex->streams[0].nfields, 4);   /* page, country, bytes, ms */
    }
    config_free(ex);
    config_free(min);
}

int main(void)
{
    test_defaults();
    test_explicit_values();
    test_unknown_keys();
    test_wrong_types();
    test_ranges();
    test_enums();
    test_required();
    test_metric_and_time_rules();
    test_names();
    test_duplicates();
    test_view_stream();
    test_listen();
    test_partitions();
    test_cluster();
    test_limits();
    test_http_security();
    test_http_limits();
    test_serving();
    test_retention();
    test_syntax_and_comments();
    test_many_problems();
    test_depth();
    test_files();
    test_resolution();
    test_many_views();
    test_fingerprints();
    test_defs_names();
    test_examples();
    CHECK_DONE();
}
