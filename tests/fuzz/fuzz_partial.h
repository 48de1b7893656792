/* fuzz_partial.h - the view and the queries whose partial answers
 * (serving/partial.h) fuzz_partial.c decodes and mkseeds.c writes as
 * seeds: every metric type, sketches too, and three groupings.
 *
 * An input is a partial answer without the parts a fuzzer could not
 * guess: byte 0 picks the query, the rest is the answer after its magic
 * and layout hash and before its checksum (the target puts those around
 * it), so the fuzzer reaches the rows.
 */
#pragma once
#include <string.h>

#include "config/config.h"
#include "serving/query.h"
#include "tests/fuzz/fuzz.h"

static const char partial_config[] =
    "{\"streams\": [{\"name\": \"s\", \"topic\": \"t\", \"time_field\": \"ts\"}],"
    " \"views\": [{\"name\": \"v\", \"stream\": \"s\", \"granularity\": \"minute\","
    "   \"dimensions\": [\"page\", \"country\"],"
    "   \"metrics\": [{\"name\": \"n\", \"type\": \"count\"},"
    "                {\"name\": \"bytes\", \"type\": \"sum\", \"field\": \"bytes\"},"
    "                {\"name\": \"lo\", \"type\": \"min\", \"field\": \"ms\"},"
    "                {\"name\": \"hi\", \"type\": \"max\", \"field\": \"ms\"},"
    "                {\"name\": \"avg\", \"type\": \"avg\", \"field\": \"ms\"},"
    "                {\"name\": \"users\", \"type\": \"distinct\", \"field\": \"user\","
    "                 \"precision\": 10},"
    "                {\"name\": \"lat\", \"type\": \"quantiles\", \"field\": \"ms\"}]}]}";

#define PARTIAL_QUERIES 3
static const char *const partial_group_by[PARTIAL_QUERIES] = {"page,country", "country", ""};

static config *partial_cfg;
static query partial_q[PARTIAL_QUERIES];

static inline void partial_setup(void)
{
    config_errors errs = {0};
    FUZZ_ASSERT(config_load_string(partial_config, &partial_cfg, &errs) == 0);
    for (int i = 0; i < PARTIAL_QUERIES; i++) {
        const char *g = partial_group_by[i];
        qparam p[] = {{"granularity", 11, "hour", 4}, {"group_by", 8, g, strlen(g)}};
        qerror err = {0};
        FUZZ_ASSERT(query_parse(partial_cfg, "v", 1, p, *g ? 2 : 1, &partial_q[i], &err) == 0);
    }
}
