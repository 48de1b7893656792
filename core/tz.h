/* tz.h - IANA time zones (Europe/Berlin) through ICU's calendar API
 * (libicu's ucal), for answer buckets aligned to a zone's days, weeks and
 * months and for rendering times with their offset.
 *
 * ICU rather than a hand-written zoneinfo reader or the C library's
 * localtime_r: the C library reads the zone from the process-wide TZ,
 * which a server answering many zones at once cannot switch per request.
 * A tz wraps one UCalendar, which is not thread-safe: it is used by one
 * thread at a time (each query opens its own). Times are epoch seconds;
 * dates are proleptic Gregorian, as in core/gran.h.
 */
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct tz tz;

/* Opens the zone named (name, len), an IANA zone id such as
 * "Europe/Berlin" or "UTC". 0; -EINVAL when no such zone is known (custom
 * ids such as "GMT+1" are refused too); -ENOMEM. */
int tz_open(const char *name, size_t len, tz **out);
void tz_free(tz *z);   /* accepts NULL */

/* Seconds east of UTC in effect at ts (daylight saving included). */
int32_t tz_offset(tz *z, int64_t ts);
/* The first instant of local civil day `day` (days since 1970-01-01 in the
 * zone): its midnight, or the end of a daylight-saving gap that skips
 * midnight; the first midnight when one repeats. */
int64_t tz_day_start(tz *z, int64_t day);
/* The local civil day holding ts. */
int64_t tz_local_day(tz *z, int64_t ts);
