/* gran.h - UTC time buckets and time parsing/formatting.
 * Pure functions, any thread. Times are int64 epoch seconds unless a name
 * says _ms. Floors round toward minus infinity, so times before 1970 bucket
 * correctly. */
#pragma once
#include <stdint.h>
#include <stddef.h>

typedef enum { GRAN_SECOND, GRAN_MINUTE, GRAN_HOUR, GRAN_DAY, GRAN_MONTH, GRAN_ALL } gran_t;

const char *gran_name(gran_t g);
int gran_parse(const char *s, gran_t *out);       /* 0 or -EINVAL */
/* Start of the bucket holding ts. GRAN_ALL returns 0. */
int64_t gran_floor(gran_t g, int64_t ts);
/* Start of the bucket after the one starting at start (GRAN_ALL: INT64_MAX). */
int64_t gran_next(gran_t g, int64_t start);

int64_t floor_div(int64_t a, int64_t b);

/* "<n><unit>" as in "15m" or "90d": a positive integer without leading
 * zeros (at most COUNT_UNIT_MAX) and one of s, m, h, d, w, nothing else.
 * 0 with *n and the unit's seconds (w: 604800), or -EINVAL. Durations
 * and multiples of answer buckets (core/bucket.h). */
#define COUNT_UNIT_MAX 1000000000000LL
int count_unit_parse(const char *s, size_t len, int64_t *n, int64_t *unit_s);
/* A duration such as "90d", "12h", "30m", "45s" or "2w": a positive
 * integer and one unit, nothing else. 0 and *secs, or -EINVAL (also when
 * it exceeds 100 years). */
int duration_parse(const char *s, int64_t *secs);

/* Days since 1970-01-01 of a proleptic Gregorian date, and back. */
int64_t days_from_civil(int64_t y, unsigned m, unsigned d);
void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d);

/* Parses RFC 3339 ("2026-11-23T10:00:00Z", "...T10:00:00.123+01:00";
 * 't'/' ' separators and 'z' accepted) into epoch milliseconds; fractions
 * beyond milliseconds are truncated toward minus infinity. 0 or -EINVAL. */
int time_parse_rfc3339(const char *s, size_t len, int64_t *ms);
/* "2026-11-23T10:00:00Z" into buf (at least 32 bytes). */
void time_format_rfc3339(int64_t ts, char *buf, size_t bufsz);
/* The local time at offset off_s seconds east of UTC, with that offset:
 * "2026-03-29T00:00:00+01:00" (at least 32 bytes). An offset that is not
 * whole minutes (local mean times before ~1900) cannot be written in RFC
 * 3339: the time is written in UTC then. */
void time_format_rfc3339_offset(int64_t ts, int32_t off_s, char *buf, size_t bufsz);
