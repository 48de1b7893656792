/* Unit tests: the partial answers of a fan-out (serving/partial.h). A
 * table of every metric type (sketches too) split between two "shards"
 * at random: merging their partials in either order gives the bytes of
 * the whole table's partial (the states merge exactly and the encoding is
 * canonical); a partial of another query's layout, another version,
 * every truncation and every flipped bit are refused with their reason;
 * the shard's name and watermark come through. */
#include "serving/partial.h"
#include "config/config.h"
#include "tests/unit/check.h"
#include "tests/unit/xorshift.h"

#include <errno.h>
#include <string.h>

#define T 1795428000   /* 2026-11-23T10:00:00Z */

static const char config_text[] =
    "{\"streams\": [{\"name\": \"s\", \"topic\": \"t\", \"time_field\": \"ts\"}],"
    " \"views\": [{\"name\": \"v\", \"stream\": \"s\", \"granularity\": \"minute\","
    "   \"dimensions\": [\"page\", \"country\"],"
    "   \"metrics\": [{\"name\": \"n\", \"type\": \"count\"},"
    "                {\"name\": \"bytes\", \"type\": \"sum\", \"field\": \"bytes\"},"
    "                {\"name\": \"lo\", \"type\": \"min\", \"field\": \"ms\"},"
    "                {\"name\": \"hi\", \"type\": \"max\", \"field\": \"ms\"},"
    "                {\"name\": \"avg\", \"type\": \"avg\", \"field\": \"ms\"},"
    "                {\"name\": \"users\", \"type\": \"distinct\", \"field\": \"user\"},"
    "                {\"name\": \"lat\", \"type\": \"quantiles\", \"field\": \"ms\"}]}]}";

static config *cfg;

static int parse(query *q, const char *group_by)
{
    qparam p[] = {{"granularity", 11, "hour", 4}, {"group_by", 8, group_by, strlen(group_by)}};
    qerror err = {0};
    int rc = query_parse(cfg, "v", 1, p, 2, q, &err);
    CHECK_INT(rc, 0);
    qerror_clear(&err);
    return rc;
}

static const char *pages[] = {"/a", "/b", "/c", NULL};
static const char *countries[] = {"DE", "US", NULL};

/* n events into the whole table w and, at random, into a or b */
static void fill(const query *q, vtable *w, vtable *a, vtable *b, int n)
{
    xorshift_seed(42);
    const agg_layout *l = q->layout;
    for (int i = 0; i < n; i++) {
        const char *pg = pages[next_rand() % 4], *co = countries[next_rand() % 3];
        dimval d[2] = {{.s = pg, .len = pg ? (uint32_t)strlen(pg) : 0, .null = !pg},
                       {.s = co, .len = co ? (uint32_t)strlen(co) : 0, .null = !co}};
        int64_t bucket = T + (int64_t)(next_rand() % 5) * 3600;
        double v = (double)(next_rand() % 100000) / 8;   /* exact in binary */
        vtable *half = next_rand() % 2 ? a : b;
        for (vtable **t = (vtable *[]){w, half, NULL}; *t; t++) {
            void *row = vtable_upsert(*t, bucket, d);
            CHECK(row != NULL);
            for (size_t m = 0; row && m < l->n; m++) {
                field_value fv = {.kind = FV_NUMBER, .num = v + (double)m, .str = "", .len = 0};
                l->slot[m].ops->add(agg_state(l, row, m), &l->slot[m].params, &fv);
            }
        }
    }
}

static const serving_watermark wm = {.batch_seq = 77, .batch_at = T, .live_events = 12,
                                     .unreadable_events = 3};

static void encode(const query *q, const vtable *t, bytes_w *w)
{
    *w = (bytes_w){0};
    partial_encode(q, t, "shard-1", &wm, w);
    CHECK(!w->oom);
}

/* Merges the partials of x then y into a new table; its encoding in *out. */
static void merge_two(const query *q, const bytes_w *x, const bytes_w *y, bytes_w *out)
{
    vtable *t = vtable_new(q->ngroup, q->layout);
    partial_info info;
    const char *why = NULL;
    CHECK_INT(partial_merge(q, x->p, x->len, t, &info, &why), 0);
    CHECK_INT(partial_merge(q, y->p, y->len, t, &info, &why), 0);
    CHECK_STR(info.shard, "shard-1");
    CHECK_INT(info.wm.batch_seq, 77);
    CHECK_INT(info.wm.batch_at, T);
    CHECK_INT(info.wm.live_events, 12);
    CHECK_INT(info.wm.unreadable_events, 3);
    encode(q, t, out);
    vtable_free(t);
}

static void test_merge_is_exact_in_any_order(void)
{
    query q;
    if (parse(&q, "page,country") < 0)
        return;
    vtable *w = vtable_new(2, q.layout), *a = vtable_new(2, q.layout),
           *b = vtable_new(2, q.layout);
    fill(&q, w, a, b, 5000);
    CHECK(vtable_rows(w) == 60);   /* 5 hours x 4 pages x 3 countries */
    bytes_w ew, ea, eb, ab, ba;
    encode(&q, w, &ew);
    encode(&q, a, &ea);
    encode(&q, b, &eb);
    merge_two(&q, &ea, &eb, &ab);
    merge_two(&q, &eb, &ea, &ba);
    CHECK_MEM(ab.p, ab.len, ew.p, ew.len);
    CHECK_MEM(ba.p, ba.len, ew.p, ew.len);

    /* a partial with no rows merges as nothing */
    vtable *empty = vtable_new(2, q.layout);
    bytes_w ee, we;
    encode(&q, empty, &ee);
    merge_two(&q, &ew, &ee, &we);
    CHECK_MEM(we.p, we.len, ew.p, ew.len);

    /* every truncation and every flipped bit is refused, nothing crashes */
    size_t refused = 0;
    for (size_t n = 0; n < ew.len; n++) {
        partial_info info;
        const char *why = NULL;
        vtable *t = vtable_new(2, q.layout);
        refused += partial_merge(&q, ew.p, n, t, &info, &why) == -EBADMSG;
        vtable_free(t);
    }
    CHECK_INT(refused, ew.len);
    refused = 0;
    size_t flips = 0;
    for (size_t i = 0; i < ew.len; i += 7)
        for (int bit = 0; bit < 8; bit++, flips++) {
            ew.p[i] ^= (unsigned char)(1u << bit);
            partial_info info;
            const char *why = NULL;
            vtable *t = vtable_new(2, q.layout);
            refused += partial_merge(&q, ew.p, ew.len, t, &info, &why) == -EBADMSG;
            vtable_free(t);
            ew.p[i] ^= (unsigned char)(1u << bit);
        }
    CHECK_INT(refused, flips);
    for (bytes_w *x = (bytes_w[]){ew, ea, eb, ab, ba, ee, we}, *end = x + 7; x < end; x++)
        bw_free(x);
    vtable_free(w);
    vtable_free(a);
    vtable_free(b);
    vtable_free(empty);
    query_clear(&q);
}

static void expect_refused(const query *q, const bytes_w *w, const char *reason)
{
    partial_info info;
    const char *why = NULL;
    vtable *t = vtable_new(q->ngroup, q->layout);
    CHECK_INT(partial_merge(q, w->p, w->len, t, &info, &why), -EBADMSG);
    CHECK_STR(why, reason);
    vtable_free(t);
}

static void test_refusals(void)
{
    query q, other;
    if (parse(&q, "page,country") < 0 || parse(&other, "country") < 0)
        return;
    vtable *t = vtable_new(2, q.layout);
    dimval d[2] = {{.s = "/a", .len = 2}, {.null = true}};
    CHECK(vtable_upsert(t, T, d) != NULL);
    bytes_w w;
    encode(&q, t, &w);
    expect_refused(&other, &w,
                   "its view differs (name, granularity, dimensions or metrics): the "
                   "instances' configs disagree");
    w.p[3] = 2;
    expect_refused(&q, &w, "a partial answer of another version of lambdad");
    w.p[3] = 1;
    w.p[w.len - 1] ^= 1;
    expect_refused(&q, &w, "damaged in transit (checksum mismatch)");
    w.p[0] = '{';
    expect_refused(&q, &w, "not a partial answer");
    bw_free(&w);
    vtable_free(t);
    query_clear(&q);
    query_clear(&other);
}

int main(void)
{
    config_errors errs = {0};
    CHECK_INT(config_load_string(config_text, &cfg, &errs), 0);
    config_errors_clear(&errs);
    if (!cfg)
        CHECK_DONE();
    test_merge_is_exact_in_any_order();
    test_refusals();
    config_free(cfg);
    CHECK_DONE();
}
