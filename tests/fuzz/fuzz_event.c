/* fuzz_event.c - libFuzzer target: the event decoder (core/event.c and the
 * JSON scanner core/jscan.c under it) and event_apply.
 *
 * The input is one Kafka message value. It is decoded for four streams
 * (each time format) that read a few fields, and:
 *   - the decoder must agree with jansson on whether it is a JSON object,
 *     and on the value of every field it extracts (jscan.h: acceptance
 *     matches json_loadb(JSON_ALLOW_NUL) but for jansson's own limits,
 *     which are skipped, as in tests/unit/test_event.c);
 *   - an accepted event is applied to a view (two dimensions, every
 *     aggregator), and each state of the row must survive its canonical
 *     encoding (encode, decode, encode gives the same bytes) and render.
 * Any disagreement aborts, so libFuzzer keeps the input as a crash.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/agg.h"
#include "core/bytes.h"
#include "core/event.h"
#include "core/jbuf.h"
#include "core/vtable.h"
#include "tests/fuzz/fuzz.h"

/* Top-level fields, and nested ones (dotted: read inside objects). */
static char *fields[] = {"page", "country", "bytes", "ms", "nested", "geo.country", "a.b.c"};
#define NFIELDS 7
#define STREAM(n, tf, fmt) {.name = n, .topic = n, .time_field = tf, .tfmt = fmt, \
                            .fields = fields, .nfields = NFIELDS}
static stream_def streams[] = {
    STREAM("s", "ts", TF_EPOCH_S),
    STREAM("ms", "ts", TF_EPOCH_MS),
    STREAM("rfc", "time", TF_RFC3339),
    STREAM("k", NULL, TF_KAFKA),
};
#define KAFKA_STREAM 3

static char *dims[] = {"page", "country"};
static int dim_idx[] = {0, 1};
static metric_def metrics[] = {
    {.name = "n", .type = MT_COUNT, .field_idx = -1},
    {.name = "bytes", .type = MT_SUM, .field = "bytes", .field_idx = 2},
    {.name = "lo", .type = MT_MIN, .field = "ms", .field_idx = 3},
    {.name = "hi", .type = MT_MAX, .field = "ms", .field_idx = 3},
    {.name = "avg", .type = MT_AVG, .field = "ms", .field_idx = 3},
    {.name = "odd", .type = MT_SUM, .field = "nested", .field_idx = 4},
    {.name = "users", .type = MT_DISTINCT, .field = "geo.country", .field_idx = 5},
    {.name = "lat", .type = MT_QUANTILES, .field = "a.b.c", .field_idx = 6},
};
static view_def view = {.name = "v", .stream = "s", .gran = GRAN_MINUTE, .dims = dims,
                        .dim_idx = dim_idx, .ndims = 2, .metrics = metrics, .nmetrics = 8};

static event_decoder *dec;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    dec = event_decoder_new();
    view.layout = agg_layout_new(metrics, NULL, view.nmetrics);
    FUZZ_ASSERT(dec && view.layout);
    return 0;
}

/* jansson's limits, where it rejects valid JSON (jscan.h). */
static bool jansson_limit(const char *text)
{
    return strstr(text, "too big") || strstr(text, "real number overflow") ||
           strstr(text, "NUL byte in object key") || strstr(text, "maximum parsing depth");
}

static bool same_value(const field_value *v, json_t *j)
{
    if (!j)
        return v->kind == FV_MISSING;
    if (json_is_string(j))
        return v->kind == FV_STRING && v->len == json_string_length(j) &&
               memcmp(v->str, json_string_value(j), v->len) == 0;
    if (json_is_integer(j))
        return v->kind == FV_NUMBER && v->num == (double)json_integer_value(j);
    if (json_is_real(j))
        return v->kind == FV_NUMBER && v->num == json_real_value(j);
    if (json_is_boolean(j))
        return v->kind == FV_BOOL && v->len == (json_is_true(j) ? 4u : 5u) &&
               memcmp(v->str, json_is_true(j) ? "true" : "false", v->len) == 0;
    if (json_is_null(j))
        return v->kind == FV_NULL;
    /* an object or array: our raw text must be JSON equal to jansson's */
    json_t *sub = v->kind == FV_OTHER ? json_loadb(v->str, v->len, JSON_ALLOW_NUL, NULL) : NULL;
    bool ok = sub && json_equal(sub, j);
    json_decref(sub);
    return ok;
}

/* What a dotted name reads in jansson's tree: NULL when a step is absent
 * or not an object. */
static json_t *jpath(json_t *root, const char *dotted)
{
    char part[64];
    json_t *j = root;
    for (const char *p = dotted; j;) {
        size_t n = strcspn(p, ".");
        memcpy(part, p, n);
        part[n] = '\0';
        j = json_is_object(j) ? json_object_get(j, part) : NULL;
        if (!p[n])
            break;
        p += n + 1;
    }
    return j;
}

static void differential(const char *buf, size_t len)
{
    field_value vals[NFIELDS + 1];
    const char *reason = NULL, *detail = NULL;
    int64_t ts;
    int r = event_decode(dec, &streams[KAFKA_STREAM], buf, len, 0, &ts, vals, &reason, &detail);
    FUZZ_ASSERT(r == 0 || r == -EINVAL);
    json_error_t jerr;
    json_t *root = json_loadb(buf, len, JSON_ALLOW_NUL, &jerr);
    if (!root && jansson_limit(jerr.text))
        return;
    bool j_ok = root && json_is_object(root);
    /* jansson drops a raw NUL right after a literal or a number (it cannot
     * unget a 0), so it accepts "[true\0]"; RFC 8259 does not. */
    bool nul_quirk = j_ok && r != 0 && memchr(buf, 0, len) && strstr(detail, "byte 0x00");
    if (!nul_quirk && j_ok != (r == 0)) {
        fprintf(stderr, "jansson %s (%s), event_decode %s (%s: %s)\n",
                j_ok ? "accepts" : "rejects", root ? "ok" : jerr.text,
                r == 0 ? "accepts" : "rejects", reason ? reason : "-", detail ? detail : "-");
        abort();
    }
    if (j_ok && r == 0)
        for (size_t i = 0; i < NFIELDS; i++)
            if (!same_value(&vals[i], jpath(root, fields[i]))) {
                fprintf(stderr, "field '%s' (kind %d) differs from jansson\n", fields[i],
                        (int)vals[i].kind);
                abort();
            }
    json_decref(root);
}

/* Every state of the row: encode, decode, encode again gives the same
 * bytes; rendering works on both. */
static int check_row(const vrow *row, void *ud)
{
    const agg_layout *l = ud;
    char st[256];
    for (size_t m = 0; m < l->n; m++) {
        const agg_ops *ops = l->slot[m].ops;
        FUZZ_ASSERT(ops->size <= sizeof(st));
        bytes_w w1 = {0}, w2 = {0};
        ops->encode(agg_cstate(l, row->cells, m), &w1);
        FUZZ_ASSERT(!w1.oom);
        bytes_r r = br_init(w1.p, w1.len);
        FUZZ_ASSERT(ops->decode(st, &l->slot[m].params, &r) == 0);
        FUZZ_ASSERT(!r.bad && br_left(&r) == 0);
        ops->encode(st, &w2);
        FUZZ_ASSERT(w1.len == w2.len && memcmp(w1.p, w2.p, w1.len) == 0);
        jbuf b;
        jb_init(&b);
        ops->render(agg_cstate(l, row->cells, m), &l->slot[m].params, &agg_render_default, &b);
        ops->render(st, &l->slot[m].params, &agg_render_default, &b);
        FUZZ_ASSERT(!b.oom);
        jb_free(&b);
        if (ops->destroy)
            ops->destroy(st);
        bw_free(&w1);
        bw_free(&w2);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* an exact-size heap copy: ASan catches a read one byte past the end */
    char *buf = malloc(size ? size : 1);
    FUZZ_ASSERT(buf);
    memcpy(buf, data, size);
    differential(buf, size);

    vtable *t = vtable_new(view.ndims, view.layout);
    FUZZ_ASSERT(t);
    for (size_t s = 0; s < sizeof(streams) / sizeof(streams[0]); s++) {
        field_value vals[NFIELDS + 1];   /* and the event time */
        const char *reason = NULL, *detail = NULL;
        int64_t ts = 0;
        int r = event_decode(dec, &streams[s], buf, size, 1795428000123, &ts, vals, &reason,
                             &detail);
        FUZZ_ASSERT(r == 0 || r == -EINVAL);
        if (r < 0) {
            FUZZ_ASSERT(reason && detail);
            continue;
        }
        FUZZ_ASSERT(event_apply(&view, t, ts, vals, dec) == 0);
    }
    FUZZ_ASSERT(vtable_foreach(t, check_row, (void *)view.layout) == 0);
    vtable_free(t);
    free(buf);
    return 0;
}
