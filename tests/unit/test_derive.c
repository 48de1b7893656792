/* test_derive.c - derived fields, nested fields and filtered metrics, from
 * the config through the decoder (core/event.c) to a view table
 * (core/apply.c): each event's row and metric values against the
 * expectation written out by hand; config errors with their paths; the
 * view fingerprint changes exactly when a definition the view uses does. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "config/config.h"
#include "core/agg.h"
#include "core/event.h"
#include "core/vtable.h"

#define STREAM_HEAD "\"streams\":[{\"name\":\"web\",\"topic\":\"web\",\"time_field\":\"ts\","

static config *load(const char *text)
{
    config *c = NULL;
    config_errors e = {0};
    if (config_load_string(text, &c, &e) != 0) {
        for (size_t i = 0; i < e.n; i++)
            fprintf(stderr, "config: %s\n", e.items[i]);
        check_failures++;
    }
    config_errors_clear(&e);
    return c;
}

static void expect_error(int line, const char *text, const char *want)
{
    config *c = NULL;
    config_errors e = {0};
    int r = config_load_string(text, &c, &e);
    if (!want ? r != 0 : r != -EINVAL || e.n != 1 || strcmp(e.items[0], want) != 0) {
        fprintf(stderr, "%s:%d: load returned %d with %zu problem(s): %s\n  expected: %s\n",
                __FILE__, line, r, e.n, e.n ? e.items[0] : "(none)", want ? want : "(valid)");
        check_failures++;
    }
    config_free(c);
    config_errors_clear(&e);
}
#define EXPECT_ERROR(text, want) expect_error(__LINE__, text, want)

/* Renders every row of t as "bucket|dim|dim|metric|metric\n", sorted. */
typedef struct {
    const agg_layout *l;
    size_t ndims;
    char lines[64][256];
    size_t n;
} dump;

static int dump_row(const vrow *row, void *ud)
{
    dump *d = ud;
    if (d->n == 64)
        return 0;
    char *line = d->lines[d->n++];
    int at = snprintf(line, 256, "%lld", (long long)row->bucket);
    for (size_t i = 0; i < d->ndims; i++) {
        if (row->dims[i].null)
            at += snprintf(line + at, 256 - (size_t)at, "|null");
        else
            at += snprintf(line + at, 256 - (size_t)at, "|%.*s", (int)row->dims[i].len,
                           row->dims[i].s);
    }
    for (size_t m = 0; m < d->l->n; m++) {
        jbuf b;
        jb_init(&b);
        d->l->slot[m].ops->render(agg_cstate(d->l, row->cells, m), &d->l->slot[m].params,
                                  &agg_render_default, &b);
        size_t len;
        char *s = jb_take(&b, &len);
        at += snprintf(line + at, 256 - (size_t)at, "|%s", s ? s : "?");
        free(s);
    }
    return 0;
}

static int cmp_lines(const void *a, const void *b)
{
    return strcmp(a, b);
}

static char *render_table(const view_def *v, vtable *t)
{
    dump d = {.l = v->layout, .ndims = v->ndims};
    vtable_foreach(t, dump_row, &d);
    qsort(d.lines, d.n, sizeof(d.lines[0]), cmp_lines);
    static char out[64 * 256];
    out[0] = '\0';
    for (size_t i = 0; i < d.n; i++) {
        strcat(out, d.lines[i]);
        strcat(out, "\n");
    }
    return out;
}

static void test_derived_nested_and_where(void)
{
    config *c = load("{" STREAM_HEAD
        "\"fields\":{\"section\":\"split_part(page, '/', 2)\","
        "            \"kb\":\"bytes / 1024\","
        "            \"is_error\":\"status >= 500\","
        "            \"label\":\"concat(upper(section), '-', geo.country)\","
        "            \"hour\":\"hour(ts)\"}}],"
        "\"views\":[{\"name\":\"v\",\"stream\":\"web\",\"granularity\":\"day\","
        "  \"dimensions\":[\"section\",\"geo.country\",\"is_error\",\"hour\"],"
        "  \"metrics\":[{\"name\":\"n\",\"type\":\"count\"},"
        "             {\"name\":\"errors\",\"type\":\"count\",\"where\":\"is_error\"},"
        "             {\"name\":\"kb\",\"type\":\"sum\",\"field\":\"kb\"},"
        "             {\"name\":\"big_kb\",\"type\":\"sum\",\"field\":\"kb\",\"where\":\"kb >= 2 and geo.city like 'B%'\"}]},"
        " {\"name\":\"w\",\"stream\":\"web\",\"dimensions\":[\"label\"],"
        "  \"metrics\":[{\"name\":\"n\",\"type\":\"count\"}]},"
        " {\"name\":\"x\",\"stream\":\"web\",\"granularity\":\"day\","
        "  \"metrics\":[{\"name\":\"kb_values\",\"type\":\"distinct\",\"field\":\"kb\"}]}]}");
    if (!c)
        return;
    const stream_def *s = &c->streams[0];
    /* raw fields: page, bytes, status, geo.country, geo.city; then 5 derived, then the time */
    CHECK_INT(s->nderived, 5);
    CHECK_INT(stream_nvals(s), s->nfields + 6);
    const view_def *v = &c->views[0];
    vtable *t = vtable_new(v->ndims, v->layout);
    vtable *tw = vtable_new(c->views[1].ndims, c->views[1].layout);
    vtable *tx = vtable_new(c->views[2].ndims, c->views[2].layout);
    event_decoder *dec = event_decoder_new();
    field_value vals[32];
    const char *events[] = {
        "{\"ts\":1763892000,\"page\":\"/shop/cart\",\"bytes\":4096,\"status\":200,"
        "\"geo\":{\"country\":\"DE\",\"city\":\"Berlin\"}}",
        "{\"ts\":1763892060,\"page\":\"/shop/pay\",\"bytes\":1024,\"status\":503,"
        "\"geo\":{\"city\":\"Bonn\",\"country\":\"DE\"}}",
        /* escaped key and value inside the nested object; a repeated key: the last wins */
        "{\"geo\":{\"c\\u006funtry\":\"F\\u0052\",\"city\":\"x\",\"city\":\"Brest\"},"
        "\"ts\":1763895600,\"page\":\"/blog/a\",\"bytes\":3072,\"status\":502}",
        /* no geo; a page with no second part; bytes not a number */
        "{\"ts\":1763895600,\"page\":\"home\",\"bytes\":\"big\",\"status\":404}",
        /* geo is not an object; nested deeper than the path */
        "{\"ts\":1763895601,\"page\":\"/shop\",\"bytes\":2048,\"status\":200,\"geo\":\"DE\"}",
        "{\"ts\":1763895602,\"page\":\"/shop\",\"bytes\":2048,\"status\":200,"
        "\"geo\":{\"country\":{\"code\":\"DE\"},\"city\":\"Bremen\"}}",
    };
    for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
        int64_t ts;
        const char *reason, *detail;
        int r = event_decode(dec, s, events[i], strlen(events[i]), -1, &ts, vals, &reason, &detail);
        CHECK_INT(r, 0);
        if (r == 0) {
            CHECK_INT(event_apply(v, t, ts, vals, dec), 0);
            CHECK_INT(event_apply(&c->views[1], tw, ts, vals, dec), 0);
            CHECK_INT(event_apply(&c->views[2], tx, ts, vals, dec), 0);
        }
    }
    /* day 1763856000; hours 10 and 11 UTC */
    /* day 1763856000; hours 10 and 11 UTC */
    CHECK_STR(render_table(v, t),
              "1763856000|blog|FR|true|11|1|1|3|3\n"
              "1763856000|shop|DE|false|10|1|0|4|4\n"
              "1763856000|shop|DE|true|10|1|1|1|0\n"
              "1763856000|shop|null|false|11|1|0|2|0\n"
              "1763856000|shop|{\"code\":\"DE\"}|false|11|1|0|2|2\n"
              "1763856000||null|false|11|1|0|0|0\n");       /* "home": split_part gives '' */
    CHECK_STR(render_table(&c->views[1], tw),
              "1763892000|SHOP-DE|1\n"
              "1763892060|SHOP-DE|1\n"
              "1763895600|-|1\n"                              /* concat skips nulls */
              "1763895600|BLOG-FR|1\n"
              "1763895600|SHOP-{\"code\":\"DE\"}|1\n"
              "1763895600|SHOP-|1\n");
    /* distinct counts a derived number by its text: 4, 1, 3 and 2 (twice) */
    CHECK_STR(render_table(&c->views[2], tx), "1763856000|4\n");
    event_decoder_free(dec);
    vtable_free(t);
    vtable_free(tw);
    vtable_free(tx);
    config_free(c);
}

static void test_config_errors(void)
{
    const char *views = ",\"views\":[{\"name\":\"v\",\"stream\":\"web\",\"metrics\":[{\"name\":\"n\",\"type\":\"count\"}]}]}";
    char buf[4096];
#define WITH_FIELDS(f) (snprintf(buf, sizeof(buf), "{" STREAM_HEAD "\"fields\":" f "}]%s", views), buf)
#define WITH_FIELDS_TEXT(f) (snprintf(buf, sizeof(buf), "{" STREAM_HEAD "\"fields\":%s}]%s", f, views), buf)
    EXPECT_ERROR(WITH_FIELDS("{\"a\":\"lowr(page)\"}"),
                 "streams[0].fields.a: unknown function 'lowr' at 1:1");
    EXPECT_ERROR(WITH_FIELDS("{\"a\":\"b + 1\",\"b\":\"2\"}"),
                 "streams[0].fields.a: uses 'b', which is derived after it (a derived field can "
                 "use raw fields and the derived fields before it)");
    EXPECT_ERROR(WITH_FIELDS("{\"a\":\"a + 1\"}"), "streams[0].fields.a: uses itself");
    /* however many names come before the one that breaks the order */
    char many[1024] = "{\"a\":\"";
    for (int i = 0; i < 80; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "f%d + ", i);
    strcat(many, "b\",\"b\":\"1\"}");
    EXPECT_ERROR(WITH_FIELDS_TEXT(many),
                 "streams[0].fields.a: uses 'b', which is derived after it (a derived field can "
                 "use raw fields and the derived fields before it)");
    EXPECT_ERROR(WITH_FIELDS("{\"1a\":\"1\"}"),
                 "streams[0].fields[\"1a\"]: a derived field's name must be 1..64 letters, digits "
                 "or '_', not starting with a digit");
    EXPECT_ERROR(WITH_FIELDS("{\"ts\":\"1\"}"), "streams[0].fields.ts: the time field cannot be derived");
    char lots[2048] = "{";
    for (int i = 0; i <= 64; i++)
        snprintf(lots + strlen(lots), sizeof(lots) - strlen(lots), "%s\"d%d\":\"1\"", i ? "," : "", i);
    strcat(lots, "}");
    EXPECT_ERROR(WITH_FIELDS_TEXT(lots), "streams[0].fields: must have at most 64 derived fields");
    EXPECT_ERROR(WITH_FIELDS("{\"a\":5}"), "streams[0].fields.a: must be an expression (a non-empty string)");
    EXPECT_ERROR(WITH_FIELDS("[\"a\"]"), "streams[0].fields: must be an object of \"name\": \"expression\"");
    const char *head = "{" STREAM_HEAD "\"fields\":{\"kb\":\"bytes / 1024\"}}],\"views\":[{\"name\":\"v\","
                       "\"stream\":\"web\",\"metrics\":[{\"name\":\"m\",\"type\":\"count\",\"where\":";
#define WITH_WHERE(w) (snprintf(buf, sizeof(buf), "%s%s}]}]}", head, w), buf)
    EXPECT_ERROR(WITH_WHERE("\"kb\""), NULL);
    EXPECT_ERROR(WITH_WHERE("\"kb + 1\""),
                 "views[0].metrics[0].where: must be a condition (true or false), not a number");
    EXPECT_ERROR(WITH_WHERE("\"status >= \""),
                 "views[0].metrics[0].where: unexpected end of expression at 1:11");
    EXPECT_ERROR(WITH_WHERE("\"\""), "views[0].metrics[0].where: must be a condition (a non-empty string)");
    EXPECT_ERROR(WITH_WHERE("true"), "views[0].metrics[0].where: must be a condition (a non-empty string)");
}

/* A view's fingerprint covers the derived fields and conditions it uses,
 * and nothing else. */
static void test_fingerprints(void)
{
#define FP_CONFIG "{" STREAM_HEAD "\"fields\":{\"a\":\"%s\",\"b\":\"a * 2\",\"c\":\"%s\"}}]," \
                  "\"views\":[{\"name\":\"v\",\"stream\":\"web\",\"dimensions\":[\"b\"]," \
                  "\"metrics\":[{\"name\":\"n\",\"type\":\"count\"%s}]}," \
                  "{\"name\":\"plain\",\"stream\":\"web\",\"dimensions\":[\"page\"]," \
                  "\"metrics\":[{\"name\":\"n\",\"type\":\"count\"}]}]}"
    char buf[1024];
    const char *variants[][3] = {
        {"x + 1", "y", ""},
        {"x + 2", "y", ""},                            /* a, used through b: v changes */
        {"x + 2", "z", ""},                            /* c, unused: nothing changes */
        {"x + 2", "z", ",\"where\":\"page = 'a'\""},   /* a condition: v changes */
    };
    char fp[4][2][17];
    for (int i = 0; i < 4; i++) {
        snprintf(buf, sizeof(buf), FP_CONFIG, variants[i][0], variants[i][1], variants[i][2]);
        config *c = load(buf);
        if (!c)
            return;
        memcpy(fp[i][0], c->views[0].fingerprint, 17);
        memcpy(fp[i][1], c->views[1].fingerprint, 17);
        config_free(c);
    }
    CHECK(strcmp(fp[0][0], fp[1][0]) != 0);
    CHECK_STR(fp[1][0], fp[2][0]);
    CHECK(strcmp(fp[2][0], fp[3][0]) != 0);
    for (int i = 1; i < 4; i++)
        CHECK_STR(fp[i][1], fp[0][1]);
    /* A view with neither keeps the fingerprint it had before expressions
     * existed (no recompute after an upgrade). */
    config *c = load("{" STREAM_HEAD "\"fields\":{\"a\":\"1\"}}],\"views\":[{\"name\":\"plain\","
                     "\"stream\":\"web\",\"dimensions\":[\"page\"],\"metrics\":[{\"name\":\"n\","
                     "\"type\":\"count\"}]}]}");
    config *c0 = load("{" STREAM_HEAD "\"time_format\":\"epoch_s\"}],\"views\":[{\"name\":\"plain\","
                      "\"stream\":\"web\",\"dimensions\":[\"page\"],\"metrics\":[{\"name\":\"n\","
                      "\"type\":\"count\"}]}]}");
    if (c && c0)
        CHECK_STR(c->views[0].fingerprint, c0->views[0].fingerprint);
    config_free(c);
    config_free(c0);
}

int main(void)
{
    test_derived_nested_and_where();
    test_config_errors();
    test_fingerprints();
    CHECK_DONE();
}
