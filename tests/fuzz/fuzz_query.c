/* fuzz_query.c - libFuzzer target: the query parameters of
 * GET /v1/views/{view}/query (serving/query.c) and the query run over a
 * small view (serving/query_run.c).
 *
 * The input reads like the URL's tail: "VIEW?k=v&k=v...", split on the
 * first '?', then on '&' and each item's first '=' (an item without '='
 * is a parameter without value). No URL decoding: libmicrohttpd does that
 * before query_parse sees the bytes, so any byte (NUL too) may reach it.
 * The config is loaded from text (two views, as in tests/unit/test_query.c);
 * the source serves a batch table as a segment and a live table as rows.
 * Every answer, 200 or an error, must be one valid JSON object with the
 * length query_handle reports; but a 200 with format=csv, which must be
 * well-formed RFC 4180 CSV (every record CRLF-ended, every field as many
 * as the header's) with one record per row of the same query's JSON
 * answer. The seeds (tests/fuzz/fuzz_query/) use every parameter: tz,
 * fill, auto and max_points, multiples, where, having and
 * post-aggregations too.
 */
#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "config/config.h"
#include "core/segment.h"
#include "core/vtable.h"
#include "serving/query.h"
#include "tests/fuzz/fuzz.h"

#define T 1795428000   /* 2026-11-23T10:00:00Z */

static const char config_text[] =
    "{\"streams\": [{\"name\": \"pageviews\", \"topic\": \"pageviews\", \"time_field\": \"ts\"}],"
    " \"views\": ["
    "  {\"name\": \"pages\", \"stream\": \"pageviews\", \"granularity\": \"minute\","
    "   \"dimensions\": [\"page\", \"country\"],"
    "   \"metrics\": [{\"name\": \"views\", \"type\": \"count\"},"
    "                {\"name\": \"bytes\", \"type\": \"sum\", \"field\": \"bytes\"},"
    "                {\"name\": \"fastest\", \"type\": \"min\", \"field\": \"ms\"},"
    "                {\"name\": \"slowest\", \"type\": \"max\", \"field\": \"ms\"},"
    "                {\"name\": \"avg_ms\", \"type\": \"avg\", \"field\": \"ms\"}]},"
    "  {\"name\": \"raw\", \"stream\": \"pageviews\", \"granularity\": \"second\","
    "   \"dimensions\": [\"k\"], \"metrics\": [{\"name\": \"n\", \"type\": \"count\"}]}],"
    " \"http\": {\"limits\": {\"max_rows\": 50}}}";

static config *cfg;
static vtable *batch[2], *live[2];

static void add(vtable *t, int64_t ts, const char *d0, const char *d1, double v)
{
    dimval d[2] = {{.s = d0, .len = d0 ? (uint32_t)strlen(d0) : 0, .null = !d0},
                   {.s = d1, .len = d1 ? (uint32_t)strlen(d1) : 0, .null = !d1}};
    const agg_layout *l = vtable_layout(t);
    void *row = vtable_upsert(t, ts, d);
    FUZZ_ASSERT(row);
    field_value fv = {.kind = FV_NUMBER, .num = v, .str = "", .len = 0};
    for (size_t m = 0; m < l->n; m++)
        l->slot[m].ops->add(agg_state(l, row, m), &l->slot[m].params, &fv);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    config_errors errs = {0};
    FUZZ_ASSERT(config_load_string(config_text, &cfg, &errs) == 0);
    for (int v = 0; v < 2; v++) {
        batch[v] = vtable_new(cfg->views[v].ndims, cfg->views[v].layout);
        live[v] = vtable_new(cfg->views[v].ndims, cfg->views[v].layout);
        FUZZ_ASSERT(batch[v] && live[v]);
    }
    add(batch[0], T, "/a", "us", 100);
    add(batch[0], T, "/b", "de", -5.5);
    add(batch[0], T + 60, "/a", NULL, 1e300);
    add(batch[0], T + 3600, "", "fr", 0);
    add(live[0], T, "/a", "us", 400);
    add(live[0], T - 60, "/c", "us", 2);
    add(batch[1], T, "b", NULL, 1);
    add(batch[1], T + 1, NULL, NULL, 1);
    add(live[1], T, "q\"\\\x01\n\xff", NULL, 1);
    add(live[1], T + 86400, "b", NULL, 1);
    return 0;
}

/* The batch table as a segment of its day, as the daemon serves it, so
 * the level chooser and the segment scan see the query too. */
static int fake_scan(void *ud, size_t view_idx, int64_t from, int64_t to, gran_t gran,
                     int (*seg_fn)(const segment *, void *),
                     int (*fn)(const vrow *, void *), void *fnud, serving_watermark *wm)
{
    const view_def *v = &cfg->views[view_idx];
    *wm = (serving_watermark){.batch_seq = 42, .batch_at = T + 3600, .live_events = 7};
    int64_t day = T - T % 86400;
    seg_blob blob = {0};
    segment *seg = NULL;
    FUZZ_ASSERT(seg_build(batch[view_idx], day, day + 86400, v->gran, &blob) == 0);
    FUZZ_ASSERT(seg_decode(blob.p, blob.len, v->layout, v->ndims, &seg) == 0);
    int rc = seg_fn(seg, fnud);
    seg_free(seg);
    seg_blob_free(&blob);
    return rc ? rc : vtable_foreach(live[view_idx], fn, fnud);
}

static const serving_source src = {.scan_view = fake_scan};

#define MAX_PARAMS 64

/* Records of an RFC 4180 body as query_csv.c writes it; every record must
 * have `fields` fields (0: take the first record's). -1 when malformed. */
static long csv_records(const char *s, size_t len)
{
    long records = 0;
    size_t fields = 0, want = 0, i = 0;
    while (i < len) {
        if (s[i] == '"') {   /* quoted: "" is a quote, the field ends at a lone quote */
            for (i++;; i++) {
                if (i >= len)
                    return -1;
                if (s[i] == '"' && (i + 1 >= len || s[i + 1] != '"'))
                    break;
                if (s[i] == '"')
                    i++;
            }
            i++;
        } else {
            while (i < len && s[i] != ',' && s[i] != '\r' && s[i] != '\n' && s[i] != '"')
                i++;
        }
        fields++;
        if (i < len && s[i] == ',') {
            i++;
            continue;
        }
        if (i + 1 >= len || s[i] != '\r' || s[i + 1] != '\n')
            return -1;
        i += 2;
        if (records++ == 0)
            want = fields;
        else if (fields != want)
            return -1;
        fields = 0;
    }
    return records;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data, *end = s + size;
    const char *q = memchr(s, '?', size);
    size_t view_len = q ? (size_t)(q - s) : size;
    qparam p[MAX_PARAMS];
    size_t np = 0;
    for (const char *it = q ? q + 1 : end; q && np < MAX_PARAMS;) {
        const char *amp = memchr(it, '&', (size_t)(end - it));
        const char *iend = amp ? amp : end;
        const char *eq = memchr(it, '=', (size_t)(iend - it));
        /* empty items are dropped, as libmicrohttpd does */
        if (iend > it)
            p[np++] = (qparam){.key = it, .klen = (size_t)((eq ? eq : iend) - it),
                               .val = eq ? eq + 1 : NULL,
                               .vlen = eq ? (size_t)(iend - eq - 1) : 0};
        if (!amp)
            break;
        it = amp + 1;
    }
    char *body = NULL;
    size_t len = 0;
    int status = query_handle(cfg, &src, s, view_len, p, np, &body, &len);
    FUZZ_ASSERT(body);
    FUZZ_ASSERT(status == 200 || status == 400 || status == 404 || status == 413);
    size_t csv_at = np;
    for (size_t i = 0; i < np; i++)
        if (p[i].klen == 6 && memcmp(p[i].key, "format", 6) == 0 && p[i].vlen == 3 &&
            memcmp(p[i].val, "csv", 3) == 0)
            csv_at = i;
    if (status == 200 && csv_at < np) {
        long records = csv_records(body, len);
        if (records < 1) {
            fprintf(stderr, "not well-formed CSV: %.*s\n", (int)len, body);
            abort();
        }
        /* the same query as JSON: one CSV record per row, after the header */
        memmove(&p[csv_at], &p[csv_at + 1], (np - csv_at - 1) * sizeof(*p));
        free(body);
        body = NULL;
        status = query_handle(cfg, &src, s, view_len, p, np - 1, &body, &len);
        FUZZ_ASSERT(body && status == 200);
        json_t *j = json_loadb(body, len, JSON_ALLOW_NUL, NULL);
        FUZZ_ASSERT(j && json_array_size(json_object_get(j, "rows")) == (size_t)records - 1);
        json_decref(j);
        free(body);
        return 0;
    }
    json_error_t jerr;
    json_t *j = json_loadb(body, len, JSON_ALLOW_NUL, &jerr);
    if (!j || !json_is_object(j)) {
        fprintf(stderr, "status %d, not a JSON object (%s): %.*s\n", status, jerr.text,
                (int)len, body);
        abort();
    }
    FUZZ_ASSERT(status == 200 ? json_object_get(j, "rows") != NULL
                              : json_object_get(j, "error") != NULL);
    json_decref(j);
    free(body);
    return 0;
}
