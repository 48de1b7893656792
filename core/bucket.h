/* bucket.h - a query's answer buckets: a unit, a multiple and a time zone
 * (`granularity=15m`, `week`, `month&tz=Europe/Berlin`).
 *
 * Multiples are counted from the Unix epoch: `15m` buckets start at :00,
 * :15, :30 and :45, `6h` ones at 00, 06, 12 and 18 UTC, `7d` ones every
 * seventh day from Thursday 1970-01-01; `week` is the ISO week (Monday) and
 * `Nw` counts weeks from Monday 1970-01-05. A zone moves day, week and
 * month buckets (and multiples of days and weeks) to its local midnights,
 * so a day holds 23 or 25 hours across a daylight-saving change; seconds,
 * minutes and hours (and their multiples) are lengths of time and stay
 * where UTC puts them. A bucket_spec keeps the last bucket it found (a scan
 * floors sorted times): one per thread.
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/gran.h"
#include "core/tz.h"

#define BUCKET_MAX_MULT 100000

typedef struct {
    gran_t unit;       /* GRAN_SECOND..GRAN_DAY, GRAN_MONTH, or GRAN_ALL */
    bool week;         /* unit GRAN_DAY: weeks of 7 * mult days from a Monday */
    uint32_t mult;     /* >= 1; 1 for month and all */
    tz *zone;          /* NULL: UTC; borrowed */
    int64_t memo_start, memo_end;   /* the last bucket found; empty when equal */
} bucket_spec;

/* "second".."month", "all", "week", or a multiple: 1..100000 followed by
 * s, m, h, d or w ("15m"). mult 1 of a unit reads as the unit. 0 or
 * -EINVAL. The zone is left NULL. */
int bucket_parse(const char *s, size_t len, bucket_spec *out);
/* The canonical name: "minute", "15m", "week", "2w", "month", "all". */
void bucket_name(const bucket_spec *b, char *buf, size_t size);
/* The length of every bucket in seconds, or 0 when it depends on the
 * calendar (months, zoned days and weeks) or for all. */
int64_t bucket_width(const bucket_spec *b);
/* Start of the bucket holding ts (GRAN_ALL: 0), and of the one after the
 * bucket starting at start (GRAN_ALL: INT64_MAX). */
int64_t bucket_floor(bucket_spec *b, int64_t ts);
int64_t bucket_next(bucket_spec *b, int64_t start);
/* Buckets that [from, to) touches (from the one holding from), counting
 * at most cap + 1. */
uint64_t bucket_count(bucket_spec *b, int64_t from, int64_t to, uint64_t cap);
/* The coarsest UTC unit whose buckets nest in these ones (what a segment's
 * roll-ups may be read at); zoned calendar buckets give `finest`, the
 * caller then checks each level against bucket_floor. */
gran_t bucket_read_gran(const bucket_spec *b, gran_t finest);
