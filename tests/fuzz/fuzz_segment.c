/* fuzz_segment.c - libFuzzer target: the segment decoder and reader
 * (core/segment.c): seg_read_info, seg_decode_from at every level (from
 * the prefix the header says suffices, and from the whole), the level
 * chooser, and every accessor of a decoded segment.
 *
 * Checksums stop random bytes at the header, so the first byte picks how
 * the rest becomes a segment (its low two bits):
 *   0  as it is: what damage on disk looks like;
 *   1  as it is, then the header's and each part's checksum recomputed
 *      (where the header's offsets lie inside the bytes): damage behind
 *      valid checksums;
 *   2, 3  the header, then the parts *decompressed* (dictionaries, then
 *      the levels coarsest first, each as long as the header's raw length
 *      says, the last one taking the rest): the target compresses each
 *      part and writes lengths and checksums, so the fuzzer mutates the
 *      dictionaries, bucket indexes and columns themselves.
 * The view's layout follows the header: metric i has the type
 * count, sum, min, max, avg, count, ... (i mod 5), which the seeds use
 * (tests/fuzz/mkseeds.c).
 */
#include <errno.h>
#include <string.h>
#include <zstd.h>

#include "core/agg.h"
#include "core/checksum.h"
#include "core/segment.h"
#include "core/segment_int.h"
#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/fuzz_seg.h"

#define MAX_METRICS 256

static const metric_type cycle[7] = {MT_COUNT, MT_SUM, MT_MIN, MT_MAX, MT_AVG, MT_DISTINCT,
                                     MT_QUANTILES};

int LLVMFuzzerInitialize(int *argc, char ***argv) { return 0; }

static void fix_header_sum(uint8_t *p, size_t hl)
{
    put_le(p + hl - SEG_CHECKSUM_LEN, checksum64(p, hl - SEG_CHECKSUM_LEN, 0), 8);
}

/* Mode 1: recomputes what checksums it can over the bytes as they are. */
static void fix_checksums(uint8_t *p, size_t len)
{
    size_t nl, hl = header_len(p, len, &nl);
    if (!hl)
        return;
    uint64_t off = hl;
    for (size_t k = 0; k <= nl; k++) {
        size_t i = k == 0 ? 0 : 1 + nl - k;   /* file order: dictionaries, level nl-1, ... */
        uint8_t *f = p + part_fields(i);
        uint64_t zlen = fuzz_le(f, 4);
        if (off + zlen <= len)
            put_le(f + 8, checksum64(p + off, (size_t)zlen, 0), 8);
        off += zlen;
    }
    fix_header_sum(p, hl);
}

/* Modes 2 and 3: header + decompressed parts -> a segment. NULL when the
 * header is too broken to find the parts (the bytes are then used as
 * they are). */
static uint8_t *pack(const uint8_t *in, size_t len, size_t *outlen)
{
    size_t nl, hl = header_len(in, len, &nl);
    if (!hl)
        return NULL;
    const uint8_t *raw[1 + SEG_MAX_LEVELS];
    size_t rawlen[1 + SEG_MAX_LEVELS], bound = hl, at = hl;
    for (size_t k = 0; k <= nl; k++) {
        size_t i = k == 0 ? 0 : 1 + nl - k;
        size_t want = (size_t)fuzz_le(in + part_fields(i) + 4, 4);
        size_t left = len - at;
        rawlen[i] = k == nl || want > left ? left : want;
        raw[i] = in + at;
        at += rawlen[i];
        bound += ZSTD_compressBound(rawlen[i]);
    }
    uint8_t *out = malloc(bound);
    FUZZ_ASSERT(out);
    memcpy(out, in, hl);
    size_t off = hl;
    for (size_t k = 0; k <= nl; k++) {
        size_t i = k == 0 ? 0 : 1 + nl - k;
        size_t z = ZSTD_compress(out + off, bound - off, raw[i], rawlen[i], 1);
        FUZZ_ASSERT(!ZSTD_isError(z));
        uint8_t *f = out + part_fields(i);
        put_le(f, z, 4);
        put_le(f + 4, rawlen[i], 4);
        put_le(f + 8, checksum64(out + off, z, 0), 8);
        off += z;
    }
    fix_header_sum(out, hl);
    *outlen = off;
    return out;
}

static int64_t floor_15m_tz(int64_t ts, const void *ud)
{
    int64_t off = *(const int64_t *)ud, x = ts - off;
    return (x >= 0 ? x / 900 : -((-x + 899) / 900)) * 900 + off;
}

/* The level chooser on the header alone, for ranges around the partition. */
static void pick_levels(const seg_info *in)
{
    int64_t ps = in->part_start;
    const int64_t t[] = {INT64_MIN, ps - 1, ps, ps + 60, ps + 3600, ps + 86400,
                         in->part_end - 1, in->part_end, INT64_MAX};
    const size_t nt = sizeof(t) / sizeof(t[0]);
    int64_t tz = 5 * 3600 + 1800;
    for (size_t a = 0; a < nt; a++)
        for (size_t b = a; b < nt; b++) {
            for (int g = GRAN_SECOND; g <= GRAN_ALL; g++)
                FUZZ_ASSERT(seg_info_pick_level(in, (gran_t)g, t[a], t[b]) < in->nlevels);
            FUZZ_ASSERT(seg_info_pick_level_fn(in, floor_15m_tz, &tz, t[a], t[b]) < in->nlevels);
        }
}

/* Reads every row of every decoded level through the accessors. */
static void walk(const segment *s, size_t ndims)
{
    const seg_info *in = seg_info_of(s);
    const agg_layout *l = seg_layout(s);
    for (size_t d = 0; d < ndims; d++) {
        uint32_t n = seg_dict_size(s, d);
        for (uint32_t id = 0; id < n; id++) {
            dimval v = seg_dict_value(s, d, id);
            FUZZ_ASSERT(seg_dict_find(s, d, v.s, v.len, v.null) == (int64_t)id);
        }
    }
    for (size_t lv = seg_min_level(s); lv < in->nlevels; lv++) {
        size_t first, end;
        seg_level_rows(s, lv, INT64_MIN, INT64_MAX, &first, &end);
        FUZZ_ASSERT(first == 0 && end == in->nrows[lv]);
        for (size_t row = 0; row < end;) {
            int64_t bucket;
            size_t next = seg_bucket_end(s, lv, row, &bucket);
            FUZZ_ASSERT(next > row && next <= end);
            FUZZ_ASSERT(bucket >= in->part_start && bucket < in->part_end);
            size_t f2, e2;
            seg_level_rows(s, lv, bucket, bucket + 1, &f2, &e2);
            FUZZ_ASSERT(f2 == row && e2 == next);
            for (; row < next; row++) {
                FUZZ_ASSERT(seg_row_bucket(s, lv, row) == bucket);
                for (size_t d = 0; d < ndims; d++)
                    FUZZ_ASSERT(seg_row_id(s, lv, row, d) < seg_dict_size(s, d));
                const void *st = seg_row_states(s, lv, row);
                for (size_t m = 0; m < l->n; m++) {
                    agg_value v = agg_read(l, m, st, &agg_render_default);
                    FUZZ_ASSERT(v.kind == AV_NULL || v.kind == AV_INT || v.kind == AV_NUM);
                }
            }
        }
    }
}

static void decode_all(const uint8_t *p, size_t len)
{
    seg_info in;
    int r = seg_read_info(p, len, &in);
    FUZZ_ASSERT(r == 0 || r == -EBADMSG || r == -EPROTONOSUPPORT || r == -ENOBUFS);
    if (r < 0) {
        agg_layout *one = agg_layout_new(&(metric_def){.type = MT_COUNT, .field_idx = -1}, NULL, 1);
        segment *s = NULL;
        FUZZ_ASSERT(one);
        r = seg_decode(p, len, one, 0, &s);
        FUZZ_ASSERT(r < 0 && !s);
        free(one);
        return;
    }
    FUZZ_ASSERT(in.nlevels >= 1 && in.nlevels <= SEG_MAX_LEVELS && in.part_start < in.part_end);
    for (size_t lv = 0; lv + 1 < in.nlevels; lv++)
        FUZZ_ASSERT(in.need[lv] >= in.need[lv + 1]);
    FUZZ_ASSERT(in.len == in.need[0]);
    pick_levels(&in);

    size_t nm = in.nmetrics < MAX_METRICS ? in.nmetrics : MAX_METRICS;
    metric_def defs[MAX_METRICS];
    for (size_t m = 0; m < nm; m++)
        defs[m] = (metric_def){.type = cycle[m % 7], .field_idx = m % 7 ? 0 : -1};
    agg_layout *l = agg_layout_new(defs, NULL, nm);
    FUZZ_ASSERT(l);
    for (size_t lv = 0; lv < in.nlevels; lv++) {
        /* the prefix that level needs, then the whole segment */
        for (int whole = 0; whole < 2; whole++) {
            size_t n = whole ? len : in.need[lv] < len ? in.need[lv] : len;
            segment *s = NULL;
            r = seg_decode_from(p, n, lv, l, in.ndims, &s);
            FUZZ_ASSERT(r == 0 || r == -EBADMSG || r == -EINVAL);
            FUZZ_ASSERT((r == 0) == (s != NULL));
            if (s) {
                FUZZ_ASSERT(seg_min_level(s) == lv && seg_bytes(s) > 0);
                FUZZ_ASSERT(seg_pick_level(s, GRAN_ALL, INT64_MIN, INT64_MAX) < in.nlevels);
                walk(s, in.ndims);
                seg_free(s);
            }
        }
    }
    free(l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    int mode = data[0] & 3;
    size_t len = size - 1;
    /* an exact-size copy: a read past the end is an ASan report */
    uint8_t *p = malloc(len ? len : 1);
    FUZZ_ASSERT(p);
    memcpy(p, data + 1, len);
    if (mode == 1)
        fix_checksums(p, len);
    if (mode >= 2) {
        size_t plen;
        uint8_t *packed = pack(p, len, &plen);
        if (packed) {
            free(p);
            p = packed;
            len = plen;
        }
    }
    decode_all(p, len);
    free(p);
    return 0;
}
