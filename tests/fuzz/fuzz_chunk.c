/* fuzz_chunk.c - libFuzzer target: archive chunks (archive/chunk.c).
 *
 * The first byte picks a mode (its low bit):
 *
 * 0, decoding what is stored: the bytes are a chunks row and its blob,
 *      1  codec (its low bit)      2  raw_bytes (u32)
 *      6  tpart, first_offset, last_offset, n, min_ts, max_ts (int64 each)
 *     54  the blob
 *    checked as archive/scan.c's chunk_load does once the checksum has
 *    passed (the checksum is what keeps random damage out; this is what
 *    stands between a blob that passes it and memory): raw size in range,
 *    decompression, then every event. Each event handed out must lie
 *    inside the raw bytes and the row's offset and time ranges, offsets
 *    never going back; a chunk read to its end holds exactly n events.
 *
 * 1, the round trip: the bytes are a partition and events,
 *      1  part (i32)   5  tpart (int64)
 *     13  per event: offset (int64), ts_ms (int64), len (u16), payload
 *    built into chunks as archive/txn.c does (a new chunk when one does
 *    not fit), compressed, decompressed and read back: the same events,
 *    in order, and the builder's row fields.
 */
#include <errno.h>
#include <string.h>

#include "archive/chunk.h"
#include "tests/fuzz/fuzz.h"

/* Larger raw sizes are valid (CHUNK_RAW_MAX) but only cost the fuzzer
 * time and memory, without new paths. */
#define FUZZ_RAW_MAX ((size_t)64 << 20)

static ZSTD_CCtx *cctx;
static ZSTD_DCtx *dctx;
static uint8_t *zbuf, *rbuf;
static size_t zcap, rcap;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    cctx = ZSTD_createCCtx();
    dctx = ZSTD_createDCtx();
    FUZZ_ASSERT(cctx && dctx);
    return 0;
}

static void decode_stored(const uint8_t *d, size_t size)
{
    if (size < 54)
        return;
    int codec = d[1] & 1;
    size_t raw_bytes = (size_t)fuzz_le(d + 2, 4);
    chunk_meta m = {
        .tpart = (int64_t)fuzz_le(d + 6, 8), .first_offset = (int64_t)fuzz_le(d + 14, 8),
        .last_offset = (int64_t)fuzz_le(d + 22, 8), .n = (int64_t)fuzz_le(d + 30, 8),
        .min_ts = (int64_t)fuzz_le(d + 38, 8), .max_ts = (int64_t)fuzz_le(d + 46, 8),
    };
    if (raw_bytes < 1 || raw_bytes > FUZZ_RAW_MAX)   /* chunk_load: "raw size out of range" */
        return;
    const void *raw = NULL;
    const char *err = NULL;
    int r = chunk_decompress(dctx, codec, d + 54, size - 54, raw_bytes, &rbuf, &rcap, &raw, &err);
    FUZZ_ASSERT(r == 0 || (r == -EBADMSG && err));
    if (r < 0)
        return;
    chunk_reader rd;
    chunk_event ev;
    chunk_reader_init(&rd, raw, raw_bytes, &m);
    const char *lo = raw, *hi = lo + raw_bytes;
    int64_t prev = m.first_offset, n = 0;
    while ((r = chunk_reader_next(&rd, &ev)) > 0) {
        FUZZ_ASSERT(ev.payload >= lo && ev.len <= (size_t)(hi - ev.payload));
        FUZZ_ASSERT(ev.offset >= prev && ev.offset <= m.last_offset);
        FUZZ_ASSERT(ev.ts_ms >= m.min_ts && ev.ts_ms <= m.max_ts);
        FUZZ_ASSERT(n > 0 || ev.offset == m.first_offset);
        prev = ev.offset;
        n++;
    }
    FUZZ_ASSERT(r == 0 || (r == -EBADMSG && rd.err));
    if (r == 0)
        FUZZ_ASSERT(n == m.n && prev == m.last_offset);
}

typedef struct {
    int64_t offset, ts;
    const uint8_t *payload;
    size_t len;
} fev;

/* Compresses the built chunk, reads it back and compares with ev[0..n). */
static void check_built(const chunk_builder *b, const fev *ev, size_t n)
{
    if (n == 0)
        return;
    FUZZ_ASSERT(b->n == n && b->first_offset == ev[0].offset &&
                b->last_offset == ev[n - 1].offset);
    const void *stored, *raw;
    size_t slen;
    int codec;
    const char *err = NULL;
    FUZZ_ASSERT(chunk_compress(cctx, 1, b->buf, b->len, &zbuf, &zcap, &stored, &slen, &codec,
                               &err) == 0);
    FUZZ_ASSERT(chunk_decompress(dctx, codec, stored, slen, b->len, &rbuf, &rcap, &raw, &err) ==
                0);
    FUZZ_ASSERT(memcmp(raw, b->buf, b->len) == 0);
    chunk_meta m = {.tpart = b->tpart, .first_offset = b->first_offset,
                    .last_offset = b->last_offset, .n = (int64_t)b->n, .min_ts = b->min_ts,
                    .max_ts = b->max_ts};
    chunk_reader rd;
    chunk_event ce;
    chunk_reader_init(&rd, raw, b->len, &m);
    int64_t payload = 0;
    for (size_t i = 0; i < n; i++) {
        int r = chunk_reader_next(&rd, &ce);
        if (r != 1)
            fprintf(stderr, "event %zu of %zu: %d %s\n", i, n, r, rd.err ? rd.err : "");
        FUZZ_ASSERT(r == 1);
        FUZZ_ASSERT(ce.offset == ev[i].offset && ce.ts_ms == ev[i].ts && ce.len == ev[i].len);
        FUZZ_ASSERT(ce.len == 0 || memcmp(ce.payload, ev[i].payload, ce.len) == 0);
        payload += (int64_t)ce.len;
    }
    FUZZ_ASSERT(chunk_reader_next(&rd, &ce) == 0);
    FUZZ_ASSERT(payload == b->payload_bytes);
}

static void round_trip(const uint8_t *d, size_t size)
{
    if (size < 13)
        return;
    int32_t part = (int32_t)fuzz_le(d + 1, 4);
    int64_t tpart = (int64_t)fuzz_le(d + 5, 8);
    fev *ev = malloc((size / 18 + 1) * sizeof(*ev));
    FUZZ_ASSERT(ev);
    size_t n = 0;
    chunk_builder b = {0};
    chunk_builder_clear(&b, part, tpart);
    for (size_t at = 13; at + 18 <= size;) {
        fev e = {.offset = (int64_t)fuzz_le(d + at, 8), .ts = (int64_t)fuzz_le(d + at + 8, 8),
                 .len = (size_t)fuzz_le(d + at + 16, 2)};
        at += 18;
        if (e.len > size - at)
            e.len = size - at;
        e.payload = d + at;
        at += e.len;
        if (!chunk_builder_fits(&b, e.offset, e.len)) {
            check_built(&b, ev, n);
            chunk_builder_clear(&b, part, tpart);
            n = 0;
        }
        FUZZ_ASSERT(chunk_builder_add(&b, e.offset, e.ts, e.payload, e.len) == 0);
        ev[n++] = e;
    }
    check_built(&b, ev, n);
    chunk_builder_release(&b);
    free(ev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    /* an exact-size copy: a read past the end is an ASan report */
    uint8_t *d = malloc(size);
    FUZZ_ASSERT(d);
    memcpy(d, data, size);
    if (d[0] & 1)
        round_trip(d, size);
    else
        decode_stored(d, size);
    free(d);
    return 0;
}
