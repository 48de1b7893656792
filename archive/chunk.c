/* chunk.c - encoding, decoding and compression of archive chunks.
 *
 * The format is described in chunk.h. The builder runs on the thread that
 * fills an arch_txn (the speed thread); readers run on whichever thread
 * scans. No shared state, no locks.
 */
#include "archive/chunk.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/checksum.h"

enum { VARINT_MAX = 10, EVENT_HDR_MAX = 3 * VARINT_MAX };

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* 0 on success, -1 when truncated or longer than 64 bits. */
static int get_varint(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
    const uint8_t *p = *pp;
    uint64_t r = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (p == end)
            return -1;
        uint8_t b = *p++;
        if (shift == 63 && b > 1)
            return -1;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *pp = p;
            *v = r;
            return 0;
        }
    }
    return -1;
}

/* Two's complement difference to a small unsigned number; unsigned math
 * throughout so that no value can overflow. */
static uint64_t zigzag(uint64_t d) { return (d << 1) ^ (0 - (d >> 63)); }
static uint64_t unzigzag(uint64_t z) { return (z >> 1) ^ (0 - (z & 1)); }

void chunk_builder_clear(chunk_builder *b, int32_t part, int64_t tpart)
{
    b->part = part;
    b->tpart = tpart;
    b->first_offset = b->last_offset = 0;
    b->min_ts = b->max_ts = 0;
    b->prev_ts = (uint64_t)tpart * 1000u;
    b->n = 0;
    b->payload_bytes = 0;
    b->len = 0;
}

bool chunk_builder_fits(const chunk_builder *b, int64_t offset, size_t len)
{
    if (b->n == 0)
        return true;
    if (offset < b->last_offset)
        return false;
    return len <= CHUNK_SPLIT_BYTES && b->len + EVENT_HDR_MAX + len <= CHUNK_SPLIT_BYTES;
}

int chunk_builder_add(chunk_builder *b, int64_t offset, int64_t ts_ms, const void *payload,
                      size_t len)
{
    if (len > SIZE_MAX / 2 - EVENT_HDR_MAX - b->len)
        return -ENOMEM;
    size_t need = b->len + EVENT_HDR_MAX + len;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < need)
            cap *= 2;
        uint8_t *nb = realloc(b->buf, cap);
        if (!nb)
            return -ENOMEM;
        b->buf = nb;
        b->cap = cap;
    }
    uint64_t doff = b->n ? (uint64_t)offset - (uint64_t)b->last_offset : 0;
    uint8_t *p = b->buf + b->len;
    p += put_varint(p, doff);
    p += put_varint(p, zigzag((uint64_t)ts_ms - b->prev_ts));
    p += put_varint(p, len);
    if (len)
        memcpy(p, payload, len);
    b->len = (size_t)(p - b->buf) + len;

    if (b->n == 0) {
        b->first_offset = offset;
        b->min_ts = b->max_ts = ts_ms;
    }
    b->last_offset = offset;
    if (ts_ms < b->min_ts)
        b->min_ts = ts_ms;
    if (ts_ms > b->max_ts)
        b->max_ts = ts_ms;
    b->prev_ts = (uint64_t)ts_ms;
    b->n++;
    b->payload_bytes += (int64_t)len;
    return 0;
}

void chunk_builder_release(chunk_builder *b)
{
    free(b->buf);
    free(b->stream);
    b->buf = NULL;
    b->stream = NULL;
    b->len = b->cap = 0;
}

void chunk_reader_init(chunk_reader *r, const void *raw, size_t len, const chunk_meta *m)
{
    r->p = raw;
    r->end = r->p + len;
    r->m = *m;
    r->off = (uint64_t)m->first_offset;
    r->ts = (uint64_t)m->tpart * 1000u;
    r->done = 0;
    r->err = NULL;
}

static int corrupt(chunk_reader *r, const char *why)
{
    r->err = why;
    return -EBADMSG;
}

int chunk_reader_next(chunk_reader *r, chunk_event *ev)
{
    if (r->done == 0 && (r->m.n < 1 || r->m.last_offset < r->m.first_offset ||
                         r->m.max_ts < r->m.min_ts))
        return corrupt(r, "inconsistent chunk row");
    if (r->done == r->m.n) {
        if (r->p != r->end)
            return corrupt(r, "bytes after the last event");
        if ((int64_t)r->off != r->m.last_offset)
            return corrupt(r, "last offset differs from the chunk row");
        return 0;
    }
    uint64_t doff, zts, len;
    if (get_varint(&r->p, r->end, &doff) || get_varint(&r->p, r->end, &zts) ||
        get_varint(&r->p, r->end, &len))
        return corrupt(r, "truncated event header");
    if (len > (uint64_t)(r->end - r->p))
        return corrupt(r, "event length beyond the chunk");
    if (r->done == 0 && doff != 0)
        return corrupt(r, "first offset differs from the chunk row");
    /* last_offset >= off holds here, so the room left cannot wrap */
    if (doff > (uint64_t)r->m.last_offset - r->off)
        return corrupt(r, "offset beyond the chunk's last offset");
    r->off += doff;
    r->ts += unzigzag(zts);
    int64_t ts = (int64_t)r->ts;
    if (ts < r->m.min_ts || ts > r->m.max_ts)
        return corrupt(r, "event time outside the chunk's range");
    ev->offset = (int64_t)r->off;
    ev->ts_ms = ts;
    ev->payload = (const char *)r->p;
    ev->len = (size_t)len;
    r->p += len;
    r->done++;
    return 1;
}

static int grow(uint8_t **buf, size_t *cap, size_t need)
{
    if (need <= *cap && *buf)
        return 0;
    uint8_t *nb = realloc(*buf, need ? need : 1);
    if (!nb)
        return -ENOMEM;
    *buf = nb;
    *cap = need;
    return 0;
}

int chunk_compress(ZSTD_CCtx *cctx, int level, const uint8_t *raw, size_t len,
                   uint8_t **buf, size_t *cap, const void **out, size_t *outlen, int *codec,
                   const char **err)
{
    size_t bound = ZSTD_compressBound(len);
    if (ZSTD_isError(bound)) {
        *err = ZSTD_getErrorName(bound);
        return -EIO;
    }
    if (grow(buf, cap, bound) < 0)
        return -ENOMEM;
    size_t r = ZSTD_compressCCtx(cctx, *buf, bound, raw, len, level);
    if (ZSTD_isError(r)) {
        *err = ZSTD_getErrorName(r);
        return -EIO;
    }
    if (r >= len) {
        *out = raw;
        *outlen = len;
        *codec = CHUNK_CODEC_RAW;
    } else {
        *out = *buf;
        *outlen = r;
        *codec = CHUNK_CODEC_ZSTD;
    }
    return 0;
}

int chunk_decompress(ZSTD_DCtx *dctx, int codec, const void *src, size_t srclen, size_t raw_bytes,
                     uint8_t **buf, size_t *cap, const void **out, const char **err)
{
    if (codec == CHUNK_CODEC_RAW) {
        if (srclen != raw_bytes) {
            *err = "stored size differs from raw_bytes";
            return -EBADMSG;
        }
        *out = src;
        return 0;
    }
    unsigned long long fcs = ZSTD_getFrameContentSize(src, srclen);
    if (fcs == ZSTD_CONTENTSIZE_ERROR) {
        *err = "not a zstd frame";
        return -EBADMSG;
    }
    /* ZSTD_CONTENTSIZE_UNKNOWN is never written by ZSTD_compressCCtx */
    if (fcs != raw_bytes) {
        *err = "zstd frame size differs from raw_bytes";
        return -EBADMSG;
    }
    if (grow(buf, cap, raw_bytes) < 0)
        return -ENOMEM;
    size_t r = ZSTD_decompressDCtx(dctx, *buf, raw_bytes, src, srclen);
    if (ZSTD_isError(r)) {
        *err = ZSTD_getErrorName(r);
        return -EBADMSG;
    }
    if (r != raw_bytes) {
        *err = "zstd frame shorter than raw_bytes";
        return -EBADMSG;
    }
    *out = *buf;
    return 0;
}

static uint8_t *put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        *p++ = (uint8_t)(v >> (8 * i));
    return p;
}

uint64_t chunk_checksum(const chunk_header *h, const void *blob, size_t len)
{
    static const char tag[] = "lambdad-chunk-1";
    uint8_t hdr[sizeof tag - 1 + 13 * 8], *p = hdr;
    memcpy(p, tag, sizeof tag - 1);
    p += sizeof tag - 1;
    size_t slen = strlen(h->stream);
    const int64_t f[13] = {
        h->seq, h->part, h->m.tpart, h->m.first_offset, h->m.last_offset, h->m.n, h->m.min_ts,
        h->m.max_ts, h->raw_bytes, h->payload_bytes, h->codec, (int64_t)slen, (int64_t)len,
    };
    for (int i = 0; i < 13; i++)
        p = put_le64(p, (uint64_t)f[i]);
    uint64_t sum = checksum64(hdr, sizeof hdr, 0);
    sum = checksum64(h->stream, slen, sum);
    return checksum64(blob, len, sum);
}
