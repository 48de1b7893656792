/* segment.h - a view's rows for one batch partition, immutable: the
 * segment format, its builder and its decoder.
 *
 * A segment holds every row of one view in one batch partition
 * [part_start, part_end): dimension values dictionary-encoded (ids compare
 * like values), rows sorted by time bucket then dimension ids, one column
 * per metric encoded by its aggregator (core/agg.h), and pre-aggregated
 * roll-ups at coarser units, so a query at a coarse granularity reads few
 * rows. The batch layer builds one per partition and stores the blob in the
 * views file; the serving layer decodes blobs on demand into its cache and
 * scans them (DESIGN.md, "Storage of views").
 *
 * Levels. Level 0 holds the rows at the view's granularity. A v2 writer
 * adds, when they differ from the levels before them:
 *   - hour: when the view is finer than an hour and the partition, which
 *     starts on an hour, is longer than one, and the hour roll-up has at
 *     most half the rows of level 0 (a sparse view, with about one event
 *     per key and bucket, has nearly as many hour rows as minute rows: a
 *     query reads level 0 instead, at most twice the rows, and the bytes
 *     are saved);
 *   - the whole partition: one bucket, part_start, when the partition is
 *     longer than one bucket of the view.
 * So a minute view has minute, hour (when dense enough) and partition
 * levels on a day partition; an hour view hour and partition; a day view
 * on a day partition only day.
 *
 * ======================================================================
 * SEGMENT FORMAT, VERSION 2
 *
 * (Version 1, views file format 3, stored ids and states as varints one
 * after another; version 2 stores columns the way zstd compresses best:
 * integers in byte planes. A reader of version 2 refuses version 1 with
 * -EPROTONOSUPPORT: rebuilt from the archive.)
 * ======================================================================
 *
 * A segment is one byte string: a header, then parts, each one zstd frame
 * (declaring its content size) with its own checksum in the header:
 *
 *     header                 64 + 32 * nlevels bytes, not compressed
 *     dictionary part        the metrics' names and the dictionaries
 *     level part nlevels-1   the coarsest level
 *     ...
 *     level part 0           the view's own rows
 *
 * Coarsest first, so a prefix of the segment holds the header, the
 * dictionaries and every level from some level on: a reader that needs
 * only the partition roll-up reads (and decompresses) a few kilobytes of a
 * day's segment (seg_read_info says how many; SQLite's incremental blob
 * I/O reads a prefix). Damage in a part is found when that part is
 * decoded. The writer ends a zstd block at each column of a part, so that
 * each column gets entropy tables of its own; the reader does not care.
 *
 * Fixed in every version, so that a reader tells damage from a version it
 * does not know: bytes 0..7 are the magic, bytes 8..9 the version, bytes
 * 12..15 the header's length, and the header's last 8 bytes are
 * checksum64(the header's bytes before them, seed 0) (core/checksum.h). A
 * reader checks the magic and the header checksum (either wrong: damaged,
 * -EBADMSG), then the version (another: -EPROTONOSUPPORT).
 *
 * Header. Integers little-endian, unsigned unless int64 (two's complement).
 *
 *   offset size  field
 *    0      8    magic: 'L' 'D' 'S' 'E' 'G' 0x0d 0x0a 0x1a
 *    8      2    version: 2
 *   10      2    flags: 0 (none defined in version 2; a set bit is damage)
 *   12      4    header length: 64 + 32 * nlevels
 *   16      2    ndims: the view's dimensions
 *   18      2    nmetrics: the view's metrics
 *   20      1    nlevels: 1 .. SEG_MAX_LEVELS
 *   21      3    zero
 *   24      8    part_start (int64): first second of the partition
 *   32      8    part_end (int64): first second after it; > part_start;
 *                both within +-2^40
 *   40      4    dictionary part: compressed bytes
 *   44      4    dictionary part: bytes once decompressed
 *   48      8    dictionary part: checksum64 of its compressed bytes
 *   56           the level table, level 0 first, 32 bytes a level:
 *     +0    1    unit: 0 second, 1 minute, 2 hour, 3 day, 4 month,
 *                15 the whole partition
 *     +1    3    zero
 *     +4    4    nbuckets: distinct buckets of the level
 *     +8    4    nrows: rows of the level
 *     +12   4    zero
 *     +16   4    level part: compressed bytes
 *     +20   4    level part: bytes once decompressed
 *     +24   8    level part: checksum64 of its compressed bytes
 *   56 + 32 * nlevels
 *           8    checksum64 of the header's bytes before this field
 *
 *   Parts follow the header in the order above, nothing after the last;
 *   a part decompresses to at most SEG_MAX_RAW bytes. Level 0's unit is
 *   the view's granularity (second .. month); each further level has a
 *   strictly coarser unit (the whole partition only last); part_start is
 *   a bucket start of every level's unit. A reader accepts any such
 *   sequence, not only the levels a v2 writer emits. The buckets of a
 *   level of unit u are u-bucket starts (gran_floor(u, b) == b) in
 *   [part_start, part_end); the whole partition level has at most one
 *   bucket, part_start. nbuckets <= nrows, and nrows == nbuckets without
 *   dimensions.
 *
 * Parts, once decompressed; "varint" is an unsigned LEB128 of at most 64
 * bits (core/bytes.h).
 *
 *   Dictionary part:
 *   1. Metrics, nmetrics times, in the view's order:
 *        varint n, n bytes   the aggregator's name ("count", "sum", ...)
 *        varint p, p bytes   its parameters: none (p = 0) for count, sum,
 *                            min, max and avg; distinct: varint precision;
 *                            quantiles: the accuracy's double, 8 bytes LE
 *   2. Dictionaries, ndims times, in the view's dimension order:
 *        varint n            distinct values; their ids are 0 .. n-1
 *        n values            varint (len + 1), then len bytes; a 0 is null
 *      Strictly ascending in the order of query answers: null first, then
 *      bytewise (memcmp over the shorter length, then shorter first). So
 *      ids compare like the values they stand for.
 *   Nothing follows.
 *
 *   Level part:
 *   1. Bucket index, nbuckets entries, ascending:
 *        varint delta     bucket start minus the previous bucket's (the
 *                         first: minus part_start); > 0 after the first
 *        varint rows      rows of this bucket, > 0; the sum is nrows
 *   2. Dimension columns, ndims times:
 *        varint L, then L bytes: an integer column (below) of nrows
 *        values with W >= 1 (so a row takes a byte at least, and nrows
 *        is at most the part's bytes). Value i is the row's id minus the
 *        previous row's id of this dimension when both rows lie in one
 *        bucket and have the same ids of the dimensions before this one
 *        (rows sort by them: a small delta, >= 0), else the id itself.
 *        Each id is below its dictionary's n.
 *   3. Metric columns, nmetrics times:
 *        varint L, then L bytes: nrows states in the column encoding of
 *        the metric's aggregator (below)
 *   Nothing follows. Rows are sorted by bucket, then by the ids of
 *   dimension 0, 1, ...; no two rows share a bucket and ids. Row i of
 *   every column is the same row; the bucket index says its bucket.
 *
 *   Integer column of n values (core/bytes.h, bw_ints): svarint base (the
 *   smallest value; zigzag, then varint), one byte W (0..8), then W planes
 *   of n bytes: plane k holds byte k (least significant first) of every
 *   value minus base, as an unsigned 64-bit number (value = base + the
 *   bytes, wrapping). W is the fewest bytes that hold the largest value
 *   minus base (0 when all are equal) or more.
 *
 *   Column encodings, by aggregator ("form" and "k" are varints; k says
 *   that the numbers are integers times 2^-k: 0 for integral values, 1
 *   for halves):
 *     count  an integer column of the counts, each >= 0.
 *     sum    form 0, k (0..64), an integer column of every sum times 2^k
 *            (each an int64 exactly); or form 1 and the states'
 *            canonical encodings one after another (agg_ops.encode: a
 *            sum with finer fractions, too large, or overflowed).
 *     min,   form 0, k (0..63), an integer column of every value times
 *     max    2^k, each of magnitude below 2^53; or form 1 and the
 *            canonical encodings (an empty state among them, say).
 *     avg    form 0, k (0..64), an integer column of the counts (>= 0),
 *            an integer column of the sums times 2^k (0 where the count
 *            is 0); or form 1 and the canonical encodings.
 *   Another aggregator (sketches, later) stores its canonical encodings
 *   one after another. Any form decodes to the same states; a writer
 *   picks form 0 when it can.
 *
 * A roll-up row is the merge of the level-0 rows of its bucket with the
 * same ids; a reader does not check that (the checksums guard the bytes,
 * the builder the meaning).
 * ======================================================================
 *
 * In memory (seg_decode), a level keeps its bucket index, one fixed-width
 * id array per dimension (1, 2 or 4 bytes an id, from the dictionary's
 * size) and its states as rows of layout->size bytes, so a scan reads
 * columns without decoding anything. A segment may hold only the levels
 * from some level on (seg_decode_from).
 *
 * Threads: building and decoding are pure functions (any thread). A decoded
 * segment is immutable: any number of threads may read it at once; whoever
 * frees it must know no reader is left (the serving cache refcounts).
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/agg.h"
#include "core/gran.h"
#include "core/vtable.h"

#define SEG_VERSION 2
#define SEG_MAX_LEVELS 4
#define SEG_HEADER_MAX (64 + 32 * SEG_MAX_LEVELS)   /* bytes of a v2 header, at most */
#define SEG_MAX_RAW ((uint32_t)1 << 30)             /* a part decompressed, bytes */

typedef struct segment segment;

/* A persisted segment: malloc'd bytes, free with seg_blob_free. */
typedef struct {
    unsigned char *p;
    size_t len;
} seg_blob;

void seg_blob_free(seg_blob *b);   /* accepts a zeroed blob */

/* ---- building ---------------------------------------------------------- */

/* Builds the segment of the rows of tables[0..n) (same ndims and layout;
 * rows with the same bucket and dimension values in several tables are
 * merged) for the partition [part_start, part_end) of a view of
 * granularity gran (second .. month; part_start a bucket start of it).
 * The tables are only read. Returns 0, -EINVAL (tables that differ, a
 * bucket outside the partition or not a bucket start, a bad partition or
 * gran, more than 65535 dimensions or metrics), -EFBIG (a part over
 * SEG_MAX_RAW) or -ENOMEM. */
int seg_build_n(const vtable *const *tables, size_t n, int64_t part_start, int64_t part_end,
                gran_t gran, seg_blob *out);
static inline int seg_build(const vtable *t, int64_t part_start, int64_t part_end, gran_t gran,
                            seg_blob *out)
{
    return seg_build_n(&t, 1, part_start, part_end, gran, out);
}

/* ---- the header -------------------------------------------------------- */

/* What a segment's header says. */
typedef struct {
    int64_t part_start, part_end;
    size_t ndims, nmetrics, nlevels;
    gran_t unit[SEG_MAX_LEVELS];     /* level 0: the view's; GRAN_ALL: the whole partition */
    size_t nrows[SEG_MAX_LEVELS];
    /* Bytes from the start that hold the header, the dictionaries and
     * levels l .. nlevels-1: what seg_decode_from(l) reads. */
    size_t need[SEG_MAX_LEVELS];
    size_t len;                      /* bytes of the whole segment */
} seg_info;

/* Reads and checks the header at p (len bytes: the segment, or at least
 * its first min(its length, SEG_HEADER_MAX) bytes). 0, -EBADMSG,
 * -EPROTONOSUPPORT, or -ENOBUFS when len is shorter than the header says
 * it is (a later version's header may be longer than SEG_HEADER_MAX). */
int seg_read_info(const void *p, size_t len, seg_info *info);

/* ---- decoding ---------------------------------------------------------- */

/* Decodes levels min_level .. nlevels-1 of a segment of a view with ndims
 * dimensions and the metrics of layout (copied). blob holds at least the
 * first info.need[min_level] bytes of the segment (the whole segment when
 * min_level is 0). Safe on any bytes. Returns 0, -EBADMSG (damaged: magic,
 * a checksum, sizes, order, ids, trailing bytes, ...), -EPROTONOSUPPORT
 * (a sound segment of another format version), -EINVAL (a sound segment
 * of other dimensions or metrics: the view changed; or min_level out of
 * range) or -ENOMEM. Every one but -ENOMEM means: rebuild it. */
int seg_decode_from(const void *blob, size_t len, size_t min_level, const agg_layout *layout,
                    size_t ndims, segment **out);
static inline int seg_decode(const void *blob, size_t len, const agg_layout *layout,
                             size_t ndims, segment **out)
{
    return seg_decode_from(blob, len, 0, layout, ndims, out);
}
void seg_free(segment *s);                 /* accepts NULL */
size_t seg_bytes(const segment *s);        /* memory held (for a cache budget) */

/* ---- reading ----------------------------------------------------------- */

/* Its header: partition, levels, their units and row counts. */
const seg_info *seg_info_of(const segment *s);
const agg_layout *seg_layout(const segment *s);
/* The finest level decoded; levels below it have no rows to read. */
size_t seg_min_level(const segment *s);

/* The rows of a decoded level whose bucket start b has from <= b < to:
 * [*first, *end) (empty: *first == *end). INT64_MIN / INT64_MAX for an
 * open end. */
void seg_level_rows(const segment *s, size_t level, int64_t from, int64_t to, size_t *first,
                    size_t *end);
/* The bucket of a row (O(log buckets)). */
int64_t seg_row_bucket(const segment *s, size_t level, size_t row);
/* The end of the run of rows sharing row's bucket, and that bucket in
 * *bucket: walk a range bucket by bucket with one call per bucket. */
size_t seg_bucket_end(const segment *s, size_t level, size_t row, int64_t *bucket);
/* The dictionary id of a row's value of dimension dim. */
uint32_t seg_row_id(const segment *s, size_t level, size_t row, size_t dim);
/* The row's states, in seg_layout()'s layout; valid while s lives. */
const void *seg_row_states(const segment *s, size_t level, size_t row);

/* Dictionary of a dimension: size, the id of a value (-1: not in this
 * segment; binary search) and the value of an id (bytes valid while s
 * lives). */
uint32_t seg_dict_size(const segment *s, size_t dim);
int64_t seg_dict_find(const segment *s, size_t dim, const char *str, size_t len, bool null);
dimval seg_dict_value(const segment *s, size_t dim, uint32_t id);

/* ---- choosing a level -------------------------------------------------- */

/* The coarsest level a query may read for the range [from, to) and
 * answer buckets given by qfloor (the start of the answer bucket holding a
 * view bucket start ts), from the header alone (so before reading the
 * rest). A query counts a view bucket b when from <= b < to and adds it
 * to answer bucket qfloor(b); a level is usable when each of its buckets
 * covers view buckets that lie all inside or all outside [from, to), and
 * those inside in one answer bucket. Level 0 is always usable. Checks
 * each bucket of a level that the range touches (a day partition has 24
 * hours, a month 744), so it holds for any answer buckets: time zones,
 * multiples such as 15m or 7d. INT64_MIN / INT64_MAX for an open end.
 * A level with more than 65536 buckets in the range (never one a v1
 * writer emits) is not checked but passed over. */
size_t seg_info_pick_level_fn(const seg_info *info,
                              int64_t (*qfloor)(int64_t ts, const void *ud), const void *ud,
                              int64_t from, int64_t to);
/* The same for UTC answer buckets of qgran (GRAN_ALL: one bucket); only
 * the buckets at from and to are checked (UTC units nest). */
size_t seg_info_pick_level(const seg_info *info, gran_t qgran, int64_t from, int64_t to);
/* seg_info_pick_level of a decoded segment. The level may be below
 * seg_min_level(s): then decode the segment from that level. */
size_t seg_pick_level(const segment *s, gran_t qgran, int64_t from, int64_t to);
