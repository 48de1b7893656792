/* chunk.h - the byte format of one archive chunk (private to archive/).
 *
 * A chunk holds the events of one (stream, Kafka partition, time partition)
 * from one archive transaction. Before compression it is, per event:
 *
 *     varint  offset - previous offset      (first: offset - first_offset = 0)
 *     varint  zigzag(ts_ms - previous ts_ms) (first: relative to tpart*1000)
 *     varint  payload length
 *     bytes   payload
 *
 * Interleaving the small headers with the JSON payloads compresses as well
 * as a columnar layout (measured: 17.8 against 18.7 bytes per ~90-byte
 * event at zstd level 1) and lets the builder encode each event as it
 * arrives. Offsets never decrease inside a chunk: the transaction starts a
 * new chunk when they do (see txn.c), so a reader gets events in offset
 * order. All delta arithmetic is modulo 2^64, so any int64 round-trips.
 *
 * The stored blob is the raw bytes (codec 0, when compression does not
 * shrink them) or one zstd frame (codec 1). The chunks row keeps the
 * metadata that the reader checks the decoded events against.
 *
 * The checksum (chunk_checksum, stored beside the blob) is XXH3-64
 * (core/checksum.h) over, in this order:
 *
 *     "lambdad-chunk-1"  (15 bytes, the version of this layout)
 *     seq, part, tpart, first_offset, last_offset, n, min_ts, max_ts,
 *     raw_bytes, payload_bytes, codec, stream length, blob length
 *                        (13 little-endian 64-bit integers)
 *     stream             (its bytes, no terminator)
 *     blob               (the stored bytes, chained through the seed)
 *
 * so it covers everything a reader trusts: the stored bytes, and every
 * field of the row that says which events they are (a flipped bit in n or
 * in an offset is caught like one in the blob), and seq, so a blob cannot
 * pass for another chunk's. It is checked before decompression, so a
 * damaged blob never reaches zstd.
 *
 * Pure functions over caller-owned buffers; no locking, any thread.
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zstd.h>

enum { CHUNK_CODEC_RAW = 0, CHUNK_CODEC_ZSTD = 1 };

/* A builder stops taking events beyond this raw size (a lone larger event
 * still gets a chunk of its own), so readers never need huge buffers. */
#define CHUNK_SPLIT_BYTES ((size_t)16 << 20)
/* Readers refuse chunks that claim more (SQLite's own blob limit is 1e9). */
#define CHUNK_RAW_MAX ((size_t)1 << 30)

typedef struct {
    char *stream;
    int32_t part;
    int64_t tpart;
    int64_t first_offset, last_offset;
    int64_t min_ts, max_ts;
    uint64_t prev_ts;        /* ts of the last event, for the next delta */
    size_t n;                /* events */
    int64_t payload_bytes;   /* sum of the payload lengths */
    uint8_t *buf;            /* the raw chunk */
    size_t len, cap;
} chunk_builder;

/* Empties b for a new chunk of (part, tpart); keeps buf and stream. */
void chunk_builder_clear(chunk_builder *b, int32_t part, int64_t tpart);
/* Whether an event of this offset and length can join b, or must start
 * a new chunk (offsets going back, or b full). */
bool chunk_builder_fits(const chunk_builder *b, int64_t offset, size_t len);
/* Appends one event. 0 or -ENOMEM (b unchanged). */
int chunk_builder_add(chunk_builder *b, int64_t offset, int64_t ts_ms, const void *payload,
                      size_t len);
void chunk_builder_release(chunk_builder *b);   /* frees buf and stream */

/* What the chunks row says about a chunk; the reader checks against it. */
typedef struct {
    int64_t tpart;
    int64_t first_offset, last_offset;
    int64_t min_ts, max_ts;
    int64_t n;
} chunk_meta;

typedef struct {
    const uint8_t *p, *end;
    chunk_meta m;
    uint64_t off, ts;
    int64_t done;
    const char *err;         /* why the chunk is corrupt (static text) */
} chunk_reader;

typedef struct {
    int64_t offset, ts_ms;
    const char *payload;
    size_t len;
} chunk_event;

void chunk_reader_init(chunk_reader *r, const void *raw, size_t len, const chunk_meta *m);
/* 1 and *ev (payload points into raw), 0 at the end of a consistent chunk,
 * or -EBADMSG with r->err set. */
int chunk_reader_next(chunk_reader *r, chunk_event *ev);

/* Everything the checksum covers besides the blob. */
typedef struct {
    int64_t seq;
    const char *stream;
    int64_t part;
    chunk_meta m;
    int64_t raw_bytes, payload_bytes, codec;
} chunk_header;

/* The checksum of a chunk: its header fields and its stored blob. */
uint64_t chunk_checksum(const chunk_header *h, const void *blob, size_t len);

/* Compresses raw into *buf (grown as needed) unless that does not shrink
 * it: sets *out, *outlen, *codec (*out is raw itself for codec 0).
 * 0, -ENOMEM, or -EIO with *err (zstd's text). */
int chunk_compress(ZSTD_CCtx *cctx, int level, const uint8_t *raw, size_t len,
                   uint8_t **buf, size_t *cap, const void **out, size_t *outlen, int *codec,
                   const char **err);
/* Gives the raw_bytes raw bytes of a stored blob: src itself for codec 0,
 * else decompressed into *buf (grown as needed). The caller has checked
 * codec and raw_bytes <= CHUNK_RAW_MAX. 0, -ENOMEM or -EBADMSG with *err. */
int chunk_decompress(ZSTD_DCtx *dctx, int codec, const void *src, size_t srclen, size_t raw_bytes,
                     uint8_t **buf, size_t *cap, const void **out, const char **err);
