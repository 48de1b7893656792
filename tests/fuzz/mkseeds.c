/* mkseeds.c - writes the binary seed inputs of fuzz_segment, fuzz_chunk
 * and fuzz_partial
 * from the project's own builders, so the fuzzers start from real
 * segments and chunks. Run once (`build-fuzz/tests/fuzz/mkseeds
 * tests/fuzz`); its output is committed, and it runs again only when a
 * format changes. The text seeds (events, queries, configs) are written
 * by hand.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zstd.h>

#include "archive/chunk.h"
#include "core/agg.h"
#include "core/segment.h"
#include "core/vtable.h"
#include "tests/fuzz/fuzz_partial.h"
#include "tests/fuzz/fuzz_seg.h"
#include "serving/partial.h"

static const char *outdir;

static void write_file(const char *target, const char *name, const void *p, size_t len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s/%s", outdir, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "mkseeds: cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

/* mode byte + bytes */
static void write_mode(const char *target, const char *name, int mode, const void *p,
                       size_t len)
{
    uint8_t *b = malloc(len + 1);
    FUZZ_ASSERT(b);
    b[0] = (uint8_t)mode;
    memcpy(b + 1, p, len);
    write_file(target, name, b, len + 1);
    free(b);
}

/* ---- segments ---- */

/* The layout fuzz_segment uses for n metrics. */
static agg_layout *cycle_layout(size_t n)
{
    static const metric_type cycle[7] = {MT_COUNT, MT_SUM, MT_MIN, MT_MAX, MT_AVG, MT_DISTINCT,
                                         MT_QUANTILES};
    metric_def defs[8];
    for (size_t m = 0; m < n; m++)
        defs[m] = (metric_def){.type = cycle[m % 7], .field_idx = m % 7 ? 0 : -1};
    return agg_layout_new(defs, NULL, n);
}

static void add(vtable *t, int64_t bucket, const char *d0, const char *d1, double v)
{
    dimval d[2] = {{.s = d0, .len = d0 ? (uint32_t)strlen(d0) : 0, .null = !d0},
                   {.s = d1, .len = d1 ? (uint32_t)strlen(d1) : 0, .null = !d1}};
    const agg_layout *l = vtable_layout(t);
    void *row = vtable_upsert(t, bucket, d);
    FUZZ_ASSERT(row);
    field_value fv = {.kind = FV_NUMBER, .num = v, .str = "", .len = 0};
    for (size_t m = 0; m < l->n; m++)
        l->slot[m].ops->add(agg_state(l, row, m), &l->slot[m].params, &fv);
}

/* The segment as stored (modes 0 and 1) and unpacked (mode 2: the header,
 * then each part decompressed, in file order). */
static void write_segment(const char *name, const vtable *t, int64_t ps, int64_t pe, gran_t g)
{
    seg_blob b = {0};
    FUZZ_ASSERT(seg_build(t, ps, pe, g, &b) == 0);
    char fn[256];
    snprintf(fn, sizeof(fn), "%s-stored", name);
    write_mode("fuzz_segment", fn, 0, b.p, b.len);
    snprintf(fn, sizeof(fn), "%s-fixsums", name);
    write_mode("fuzz_segment", fn, 1, b.p, b.len);

    size_t nl, hl = header_len(b.p, b.len, &nl);
    FUZZ_ASSERT(hl);
    size_t cap = hl, len = hl, off = hl;
    for (size_t i = 0; i <= nl; i++)
        cap += (size_t)fuzz_le(b.p + part_fields(i) + 4, 4);
    uint8_t *u = malloc(cap);
    FUZZ_ASSERT(u);
    memcpy(u, b.p, hl);
    for (size_t k = 0; k <= nl; k++) {
        size_t i = k == 0 ? 0 : 1 + nl - k;
        size_t z = (size_t)fuzz_le(b.p + part_fields(i), 4);
        size_t raw = ZSTD_decompress(u + len, cap - len, b.p + off, z);
        FUZZ_ASSERT(!ZSTD_isError(raw));
        len += raw;
        off += z;
    }
    snprintf(fn, sizeof(fn), "%s-unpacked", name);
    write_mode("fuzz_segment", fn, 2, u, len);
    free(u);
    seg_blob_free(&b);
}

static void segments(void)
{
    const int64_t day = 1795392000;   /* 2026-11-23T00:00:00Z */
    agg_layout *l1 = cycle_layout(1), *l5 = cycle_layout(5), *l2 = cycle_layout(2);
    FUZZ_ASSERT(l1 && l5 && l2);

    /* a minute view on a day partition: minute, hour and whole levels */
    vtable *t = vtable_new(1, l1);
    add(t, day + 600, "/a", NULL, 1);
    add(t, day + 600, "/b", NULL, 1);
    add(t, day + 660, NULL, NULL, 1);
    add(t, day + 7200, "/a", NULL, 1);
    add(t, day + 7200, "", NULL, 1);
    write_segment("minute-day-1dim", t, day, day + 86400, GRAN_MINUTE);
    vtable_free(t);

    /* two dimensions, every aggregator, a two-hour partition */
    t = vtable_new(2, l5);
    add(t, day + 3600, "/a", "us", 100);
    add(t, day + 3600, "/a", "de", -2.5);
    add(t, day + 3660, "/b", NULL, 1e300);
    add(t, day + 7140, "\xc3\xa9", "fr", 0);
    add(t, day + 7140, "/a", "us", 7);
    write_segment("minute-2h-5metrics", t, day + 3600, day + 3 * 3600, GRAN_MINUTE);
    vtable_free(t);

    /* no dimensions, second granularity, an hour partition */
    t = vtable_new(0, l2);
    add(t, day, NULL, NULL, 3);
    add(t, day + 1, NULL, NULL, 4);
    add(t, day + 3599, NULL, NULL, -1);
    write_segment("second-hour-0dim", t, day, day + 3600, GRAN_SECOND);
    vtable_free(t);

    /* a day view on a month partition */
    const int64_t nov = 1793491200;   /* 2026-11-01T00:00:00Z */
    t = vtable_new(1, l1);
    add(t, nov, "x", NULL, 1);
    add(t, nov + 29 * 86400, "y", NULL, 1);
    write_segment("day-month-1dim", t, nov, nov + 30 * 86400, GRAN_DAY);
    vtable_free(t);
    free(l1);
    free(l5);
    free(l2);
}

/* ---- chunks ---- */

static void put64(uint8_t *p, int64_t v) { put_le(p, (uint64_t)v, 8); }

/* Decode mode: codec, raw_bytes, the row's fields, the stored blob. */
static void write_stored_chunk(const char *name, const chunk_builder *b, int level)
{
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    uint8_t *zbuf = NULL;
    size_t zcap = 0, slen;
    const void *stored;
    int codec;
    const char *err;
    FUZZ_ASSERT(cctx && chunk_compress(cctx, level, b->buf, b->len, &zbuf, &zcap, &stored, &slen,
                                       &codec, &err) == 0);
    uint8_t *out = malloc(54 + slen);
    FUZZ_ASSERT(out);
    out[0] = 0;
    out[1] = (uint8_t)codec;
    put_le(out + 2, b->len, 4);
    const int64_t f[6] = {b->tpart, b->first_offset, b->last_offset, (int64_t)b->n, b->min_ts,
                          b->max_ts};
    for (int i = 0; i < 6; i++)
        put64(out + 6 + 8 * i, f[i]);
    memcpy(out + 54, stored, slen);
    write_file("fuzz_chunk", name, out, 54 + slen);
    free(out);
    free(zbuf);
    ZSTD_freeCCtx(cctx);
}

static void chunks(void)
{
    static const char *ev[] = {
        "{\"ts\":1795428000,\"page\":\"/a\",\"country\":\"us\",\"bytes\":512}",
        "{\"ts\":1795428001,\"page\":\"/b\",\"country\":\"de\",\"bytes\":1024}",
        "{\"ts\":1795427990,\"page\":\"/a\",\"country\":\"us\",\"bytes\":64}",
        "{\"ts\":1795428002,\"page\":\"/a\",\"country\":\"fr\",\"bytes\":512}",
    };
    const int64_t tpart = 1795392000;
    const int64_t off[] = {1000, 1001, 1005, 1005};
    const int64_t ts[] = {1795428000000, 1795428001000, 1795427990000, 1795428002000};
    chunk_builder b = {0};
    chunk_builder_clear(&b, 3, tpart);
    for (int i = 0; i < 4; i++)
        FUZZ_ASSERT(chunk_builder_add(&b, off[i], ts[i], ev[i], strlen(ev[i])) == 0);
    write_stored_chunk("stored-zstd", &b, 3);
    chunk_builder_clear(&b, 0, tpart);
    FUZZ_ASSERT(chunk_builder_add(&b, 7, tpart * 1000 + 5, "{}", 2) == 0);
    write_stored_chunk("stored-raw", &b, 3);   /* too small to shrink: codec 0 */
    chunk_builder_release(&b);

    /* round trip mode: part, tpart, then (offset, ts, len, payload) */
    uint8_t rt[1024], *p = rt;
    *p++ = 1;
    put_le(p, 3, 4);
    p += 4;
    put64(p, tpart);
    p += 8;
    for (int i = 0; i < 4; i++) {
        size_t n = strlen(ev[i]);
        put64(p, off[i]);
        put64(p + 8, ts[i]);
        put_le(p + 16, n, 2);
        memcpy(p + 18, ev[i], n);
        p += 18 + n;
    }
    write_file("fuzz_chunk", "roundtrip-4events", rt, (size_t)(p - rt));
    /* extremes: int64 limits and offsets going back (a second chunk) */
    p = rt;
    *p++ = 1;
    put_le(p, 0x7fffffff, 4);
    p += 4;
    put64(p, INT64_MIN / 1000);
    p += 8;
    const int64_t xo[] = {INT64_MAX, 0, INT64_MIN}, xt[] = {INT64_MIN, INT64_MAX, 0};
    for (int i = 0; i < 3; i++) {
        put64(p, xo[i]);
        put64(p + 8, xt[i]);
        put_le(p + 16, 1, 2);
        p[18] = 'x';
        p += 19;
    }
    write_file("fuzz_chunk", "roundtrip-extremes", rt, (size_t)(p - rt));
}

/* Partial answers of each fuzz_partial query over a few rows (a null
 * dimension, every metric with values), cut as fuzz_partial.h says. */
static void partials(void)
{
    partial_setup();
    for (int i = 0; i < PARTIAL_QUERIES; i++) {
        const query *q = &partial_q[i];
        vtable *t = vtable_new(q->ngroup, q->layout);
        FUZZ_ASSERT(t);
        const char *vals[] = {"/a", "DE", "/b", NULL};
        for (int r = 0; r < 6; r++) {
            dimval d[2];
            for (size_t g = 0; g < q->ngroup; g++) {
                const char *v = vals[(r + (int)g) % 4];
                d[g] = (dimval){.s = v, .len = v ? (uint32_t)strlen(v) : 0, .null = !v};
            }
            void *row = vtable_upsert(t, 1795428000 + 3600 * (r % 3), d);
            FUZZ_ASSERT(row);
            for (size_t m = 0; m < q->layout->n; m++) {
                field_value fv = {.kind = FV_NUMBER, .num = 1.5 * r + (double)m, .str = "", .len = 0};
                q->layout->slot[m].ops->add(agg_state(q->layout, row, m), &q->layout->slot[m].params,
                                            &fv);
            }
        }
        serving_watermark wm = {.batch_seq = 9, .batch_at = 1795428000, .live_events = 4};
        bytes_w w = {0};
        partial_encode(q, t, "shard-a", &wm, &w);
        FUZZ_ASSERT(!w.oom && w.len > 20);
        /* byte 0: the query; then the answer without magic, hash and checksum */
        uint8_t *b = malloc(w.len);
        FUZZ_ASSERT(b);
        b[0] = (uint8_t)i;
        memcpy(b + 1, w.p + 12, w.len - 12 - 8);
        char name[32];
        snprintf(name, sizeof(name), "rows-%zu-groups", q->ngroup);
        write_file("fuzz_partial", name, b, 1 + w.len - 12 - 8);
        free(b);
        bw_free(&w);
        vtable_free(t);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: mkseeds DIR (tests/fuzz)\n");
        return 2;
    }
    outdir = argv[1];
    segments();
    chunks();
    partials();
    return 0;
}
