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
 * Levels. Level 0 holds the rows at the view's granularity. A v1 writer
 * adds, when they differ from the levels before them:
 *   - hour: when the view is finer than an hour and the partition, which
 *     starts on an hour, is longer than one;
 *   - the whole partition: one bucket, part_start, when the partition is
 *     longer than one bucket of the view.
 * So a minute view has minute, hour and partition levels on a day
 * partition; an hour view hour and partition; a day view on a day
 * partition only day.
 *
 * ======================================================================
 * SEGMENT FORMAT, VERSION 1
 * ======================================================================
 *
 * A segment is one byte string:
 *
 *     header     56 + 16 * nlevels bytes, not compressed
 *     body       body_len bytes: one zstd frame that declares its size
 *     checksum   8 bytes
 *
 * Fixed in every version, so that a reader tells damage from a version it
 * does not know: bytes 0..7 are the magic, bytes 8..9 the version, and the
 * last 8 bytes are checksum64(every byte before them, seed 0)
 * (core/checksum.h), little-endian. A reader checks the magic, then the
 * checksum (either wrong: damaged, -EBADMSG), then the version (another
 * one: -EPROTONOSUPPORT); everything else may change with the version.
 *
 * Header. Integers little-endian; int64 two's complement.
 *
 *   offset size  field
 *    0      8    magic: 'L' 'D' 'S' 'E' 'G' 0x0d 0x0a 0x1a
 *    8      2    version: 1
 *   10      2    flags: 0 (none defined in version 1; a set bit is damage)
 *   12      2    ndims: the view's dimensions
 *   14      2    nmetrics: the view's metrics
 *   16      8    part_start (int64): first second of the partition
 *   24      8    part_end (int64): first second after it; > part_start
 *   32      8    raw_len: bytes of the body once decompressed
 *                (at most SEG_MAX_RAW)
 *   40      8    body_len: bytes of the compressed body; header + body +
 *                checksum is the whole segment, nothing may follow
 *   48      1    nlevels: 1 .. SEG_MAX_LEVELS
 *   49      7    zero
 *   56           the level table, level 0 first, 16 bytes a level:
 *     +0    1    unit: 0 second, 1 minute, 2 hour, 3 day, 4 month,
 *                15 the whole partition
 *     +1    3    zero
 *     +4    4    nbuckets: distinct buckets of the level
 *     +8    8    nrows: rows of the level (at most 2^32 - 1)
 *
 *   Level 0's unit is the view's granularity (second .. month) and
 *   part_start is a bucket start of that unit. Each further level has a
 *   strictly coarser unit (the whole partition only last). A reader
 *   accepts any such sequence, not only the levels a v1 writer emits.
 *   The buckets of a level of unit u are u-bucket starts
 *   (gran_floor(u, b) == b) in [part_start, part_end); the whole
 *   partition level has at most one bucket, part_start.
 *
 * Body, once decompressed; "varint" is an unsigned LEB128 of at most 64
 * bits (core/bytes.h). In this order:
 *
 *   1. Metrics, nmetrics times, in the view's order:
 *        varint n, n bytes   the aggregator's name ("count", "sum", ...)
 *        varint p, p bytes   its parameters (p = 0 in version 1)
 *   2. Dictionaries, ndims times, in the view's dimension order:
 *        varint n            distinct values; their ids are 0 .. n-1
 *        n values            varint (len + 1), then len bytes; a 0 is null
 *      Strictly ascending in the order of query answers: null first, then
 *      bytewise (memcmp over the shorter length, then shorter first). So
 *      ids compare like the values they stand for.
 *   3. Levels, nlevels times, in level-table order; for each:
 *      a. Bucket index, nbuckets entries, ascending:
 *           varint delta     bucket start minus the previous bucket's (the
 *                            first: minus part_start); > 0 after the first
 *           varint rows      rows of this bucket, > 0; the sum is nrows
 *      b. Dimension columns, ndims times:
 *           varint L, then L bytes: nrows varint ids, each below its
 *           dictionary's n
 *      c. Metric columns, nmetrics times:
 *           varint L, then L bytes: nrows states, each in its aggregator's
 *           canonical encoding (agg_ops.encode)
 *      Rows are sorted by bucket, then by the ids of dimension 0, 1, ...;
 *      no two rows of a level share a bucket and ids. Row i of every
 *      column is the same row; the bucket index says which bucket it is in.
 *   Nothing follows the last level.
 *
 * A roll-up row is the merge of the level-0 rows of its bucket with the
 * same ids; a reader does not check that (the checksum guards the bytes,
 * the builder the meaning).
 * ======================================================================
 *
 * In memory (seg_decode), a level keeps its bucket index, one fixed-width
 * id array per dimension (1, 2 or 4 bytes an id, from the dictionary's
 * size) and its states as rows of layout->size bytes, so a scan reads
 * columns without decoding anything.
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

#define SEG_VERSION 1
#define SEG_MAX_LEVELS 4
#define SEG_MAX_RAW ((uint64_t)1 << 30)   /* decompressed body, bytes */

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
 * gran, more than 65535 dimensions or metrics), -EFBIG (over SEG_MAX_RAW
 * or 2^32 - 1 rows) or -ENOMEM. */
int seg_build_n(const vtable *const *tables, size_t n, int64_t part_start, int64_t part_end,
                gran_t gran, seg_blob *out);
static inline int seg_build(const vtable *t, int64_t part_start, int64_t part_end, gran_t gran,
                            seg_blob *out)
{
    return seg_build_n(&t, 1, part_start, part_end, gran, out);
}

/* ---- decoding ---------------------------------------------------------- */

/* Decodes a segment of a view with ndims dimensions and the metrics of
 * layout (copied). Safe on any bytes. Returns 0, -EBADMSG (damaged:
 * magic, checksum, sizes, order, ids, trailing bytes, ...),
 * -EPROTONOSUPPORT (a sound segment of another format version), -EINVAL
 * (a sound segment of other dimensions or metrics: the view changed) or
 * -ENOMEM. Every one but -ENOMEM means: rebuild it from the archive. */
int seg_decode(const void *blob, size_t len, const agg_layout *layout, size_t ndims,
               segment **out);
void seg_free(segment *s);                 /* accepts NULL */
size_t seg_bytes(const segment *s);        /* memory held (for a cache budget) */

/* ---- reading ----------------------------------------------------------- */

int64_t seg_part_start(const segment *s);
int64_t seg_part_end(const segment *s);
gran_t seg_gran(const segment *s);         /* the view's: level 0's unit */
size_t seg_ndims(const segment *s);
const agg_layout *seg_layout(const segment *s);

size_t seg_nlevels(const segment *s);
/* A level's unit; GRAN_ALL for the whole partition (bucket part_start). */
gran_t seg_level_unit(const segment *s, size_t level);
size_t seg_level_nrows(const segment *s, size_t level);
/* The rows of a level whose bucket start b has from <= b < to: [*first,
 * *end) (empty: *first == *end). INT64_MIN / INT64_MAX for an open end. */
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

/* The coarsest level a query may read for the range [from, to) and
 * answer buckets given by qfloor (the start of the answer bucket holding a
 * view bucket start ts). A query counts a view bucket b when from <= b <
 * to and adds it to answer bucket qfloor(b); a level is usable when, for
 * each of its buckets with a row in range, the view buckets it covers lie
 * all inside or all outside [from, to) and in the same answer bucket.
 * Level 0 is always usable. Checks each bucket of a level in range
 * (cheap: 1 to 744 buckets a roll-up), so it holds for any answer
 * buckets: time zones, multiples such as 15m or 7d. */
size_t seg_pick_level_fn(const segment *s, int64_t (*qfloor)(int64_t ts, const void *ud),
                         const void *ud, int64_t from, int64_t to);
/* The same for UTC answer buckets of qgran (GRAN_ALL: one bucket). */
size_t seg_pick_level(const segment *s, gran_t qgran, int64_t from, int64_t to);
