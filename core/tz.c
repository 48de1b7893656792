/* tz.c - IANA time zones through ICU's ucal API (see tz.h).
 *
 * Only two questions are asked of ICU: the offset in effect at an instant,
 * and the instant a local date begins. Everything else (which day, week or
 * month a time falls in) is civil-date arithmetic on local days
 * (core/gran.h), so bucket alignment does not depend on ICU's locale data
 * (first day of week and the like). Any thread, one tz per thread.
 *
 * An ICU lookup costs microseconds, a query may ask millions of times (a
 * live table's rows come in no time order), and the answers change
 * rarely: a tz remembers the span between two of the zone's transitions
 * that the last offset came from, and the last local midnights it found.
 */
#include "core/tz.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unicode/ucal.h>

#include "core/gran.h"

#define TZ_MAX_NAME 64

#define TZ_DAY_CACHE 16   /* a power of two */

struct tz {
    UCalendar *cal;
    int64_t lo, hi;      /* off is in effect over [lo, hi); empty when equal */
    int32_t off;
    struct {
        bool set;
        int64_t day, start;
    } days[TZ_DAY_CACHE];   /* tz_day_start's answers, by day modulo the size */
};

static bool name_ok(const char *name, size_t len)
{
    if (len == 0 || len >= TZ_MAX_NAME)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '/' || c == '_' || c == '-' || c == '+'))
            return false;
    }
    return true;
}

int tz_open(const char *name, size_t len, tz **out)
{
    *out = NULL;
    if (!name_ok(name, len))
        return -EINVAL;
    UChar id[TZ_MAX_NAME], canon[TZ_MAX_NAME * 2];
    for (size_t i = 0; i < len; i++)
        id[i] = (UChar)name[i];   /* ASCII, checked above */
    UErrorCode st = U_ZERO_ERROR;
    UBool system = 0;
    /* ucal_open takes any id (an unknown one reads as GMT): ask first */
    ucal_getCanonicalTimeZoneID(id, (int32_t)len, canon, TZ_MAX_NAME * 2, &system, &st);
    if (U_FAILURE(st) || !system)
        return -EINVAL;
    tz *z = calloc(1, sizeof(*z));
    if (!z)
        return -ENOMEM;
    z->cal = ucal_open(id, (int32_t)len, "en_US_POSIX", UCAL_GREGORIAN, &st);
    if (U_FAILURE(st)) {
        free(z);
        return st == U_MEMORY_ALLOCATION_ERROR ? -ENOMEM : -EINVAL;
    }
    /* proleptic Gregorian, as days_from_civil: no Julian dates before 1582 */
    ucal_setGregorianChange(z->cal, -8.64e15, &st);
    /* a day starts at its first instant: a repeated midnight's first
     * occurrence, or the end of a gap that skips midnight */
    ucal_setAttribute(z->cal, UCAL_REPEATED_WALL_TIME, UCAL_WALLTIME_FIRST);
    ucal_setAttribute(z->cal, UCAL_SKIPPED_WALL_TIME, UCAL_WALLTIME_NEXT_VALID);
    if (U_FAILURE(st)) {
        tz_free(z);
        return -EINVAL;
    }
    *out = z;
    return 0;
}

void tz_free(tz *z)
{
    if (!z)
        return;
    if (z->cal)
        ucal_close(z->cal);
    free(z);
}

/* A transition next to the calendar's time (UCAL_TZ_TRANSITION_*), in
 * seconds; dflt when the zone has none that way. */
static int64_t transition(tz *z, UTimeZoneTransitionType type, int64_t dflt)
{
    UErrorCode st = U_ZERO_ERROR;
    UDate d;
    if (!ucal_getTimeZoneTransitionDate(z->cal, type, &d, &st) || U_FAILURE(st))
        return dflt;
    return (int64_t)floor(d / 1000.0);
}

int32_t tz_offset(tz *z, int64_t ts)
{
    if (ts >= z->lo && ts < z->hi)
        return z->off;
    UErrorCode st = U_ZERO_ERROR;
    ucal_setMillis(z->cal, (UDate)ts * 1000.0, &st);
    int32_t ms = ucal_get(z->cal, UCAL_ZONE_OFFSET, &st) + ucal_get(z->cal, UCAL_DST_OFFSET, &st);
    if (U_FAILURE(st))
        return 0;
    z->off = (int32_t)floor_div(ms, 1000);
    z->lo = transition(z, UCAL_TZ_TRANSITION_PREVIOUS_INCLUSIVE, INT64_MIN);
    z->hi = transition(z, UCAL_TZ_TRANSITION_NEXT, INT64_MAX);
    if (!(ts >= z->lo && ts < z->hi))
        z->lo = z->hi = 0;   /* not what ICU promises: remember nothing */
    return z->off;
}

int64_t tz_local_day(tz *z, int64_t ts)
{
    return floor_div(ts + tz_offset(z, ts), 86400);
}

int64_t tz_day_start(tz *z, int64_t day)
{
    size_t slot = (size_t)day & (TZ_DAY_CACHE - 1);
    if (z->days[slot].set && z->days[slot].day == day)
        return z->days[slot].start;
    int64_t y;
    unsigned m, d;
    civil_from_days(day, &y, &m, &d);
    UErrorCode st = U_ZERO_ERROR;
    ucal_clear(z->cal);
    ucal_setDateTime(z->cal, (int32_t)y, (int32_t)m - 1, (int32_t)d, 0, 0, 0, &st);
    UDate ms = ucal_getMillis(z->cal, &st);
    if (U_FAILURE(st))
        return day * 86400;   /* cannot happen for years 1..9999; UTC then */
    int64_t start = (int64_t)floor(ms / 1000.0);
    z->days[slot].set = true;
    z->days[slot].day = day;
    z->days[slot].start = start;
    return start;
}
