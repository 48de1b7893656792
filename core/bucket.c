/* bucket.c - answer buckets: units, multiples, ISO weeks, months, zones
 * (see bucket.h). Pure arithmetic on epoch seconds and local days, plus
 * core/tz.h for a zone's offsets and midnights. One bucket_spec per
 * thread (its memo).
 */
#include "core/bucket.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define MONDAY_DAY 4   /* 1970-01-05, the first Monday after the epoch */

static const int64_t unit_seconds[] = {1, 60, 3600, 86400};

int bucket_parse(const char *s, size_t len, bucket_spec *out)
{
    *out = (bucket_spec){.mult = 1};
    char name[16];
    if (len == 0 || len >= sizeof(name))
        return -EINVAL;
    memcpy(name, s, len);
    name[len] = '\0';
    if (strcmp(name, "week") == 0) {
        out->unit = GRAN_DAY;
        out->week = true;
        return 0;
    }
    if (gran_parse(name, &out->unit) == 0)
        return 0;
    int64_t n, unit;
    if (count_unit_parse(s, len, &n, &unit) < 0 || n > BUCKET_MAX_MULT)
        return -EINVAL;
    out->week = unit == 7 * 86400;
    while (unit_seconds[out->unit] != (out->week ? 86400 : unit))
        out->unit++;   /* starts at GRAN_SECOND; unit is one of unit_seconds */
    out->mult = (uint32_t)n;
    return 0;
}

void bucket_name(const bucket_spec *b, char *buf, size_t size)
{
    if (b->mult == 1)
        snprintf(buf, size, "%s", b->week ? "week" : gran_name(b->unit));
    else
        snprintf(buf, size, "%u%c", b->mult, b->week ? 'w' : "smhd"[b->unit]);
}

/* Fixed-length buckets: their length and the start of one of them. */
static bool fixed(const bucket_spec *b, int64_t *width, int64_t *origin)
{
    if (b->unit > GRAN_DAY || (b->unit == GRAN_DAY && b->zone))
        return false;
    *width = unit_seconds[b->unit] * b->mult * (b->week ? 7 : 1);
    *origin = b->week ? MONDAY_DAY * 86400 : 0;
    return true;
}

int64_t bucket_width(const bucket_spec *b)
{
    int64_t w, o;
    return fixed(b, &w, &o) ? w : 0;
}

/* A local day's first instant: UTC days without a zone. */
static int64_t day_start(const bucket_spec *b, int64_t day)
{
    return b->zone ? tz_day_start(b->zone, day) : day * 86400;
}

static int64_t local_day(const bucket_spec *b, int64_t ts)
{
    return b->zone ? tz_local_day(b->zone, ts) : floor_div(ts, 86400);
}

/* Calendar buckets (months, zoned days, weeks and their multiples) are
 * numbered: months by year * 12 + month, the others by how many of them
 * lie between the origin and the local day that starts them. Floor, next
 * and count are then the number of a time and the start of a number, and
 * counting needs two lookups, not a walk over the range. */
static int64_t calendar_index(bucket_spec *b, int64_t ts)
{
    int64_t day = local_day(b, ts);
    if (b->unit == GRAN_MONTH) {
        int64_t y;
        unsigned m, d;
        civil_from_days(day, &y, &m, &d);
        return y * 12 + (int64_t)m - 1;
    }
    int64_t n = (int64_t)b->mult * (b->week ? 7 : 1), origin = b->week ? MONDAY_DAY : 0;
    return floor_div(day - origin, n);
}

static int64_t calendar_start(bucket_spec *b, int64_t index)
{
    if (b->unit == GRAN_MONTH) {
        int64_t y = floor_div(index, 12);
        return day_start(b, days_from_civil(y, (unsigned)(index - y * 12) + 1, 1));
    }
    int64_t n = (int64_t)b->mult * (b->week ? 7 : 1), origin = b->week ? MONDAY_DAY : 0;
    return day_start(b, index * n + origin);
}

int64_t bucket_next(bucket_spec *b, int64_t start)
{
    int64_t w, o;
    if (b->unit == GRAN_ALL)
        return INT64_MAX;
    if (fixed(b, &w, &o))
        return start + w;
    return calendar_start(b, calendar_index(b, start) + 1);
}

int64_t bucket_floor(bucket_spec *b, int64_t ts)
{
    if (ts >= b->memo_start && ts < b->memo_end)
        return b->memo_start;
    int64_t w, o, start;
    if (b->unit == GRAN_ALL)
        start = 0;
    else if (fixed(b, &w, &o))
        start = floor_div(ts - o, w) * w + o;
    else
        start = calendar_start(b, calendar_index(b, ts));
    b->memo_start = start;
    b->memo_end = bucket_next(b, start);
    return start;
}

uint64_t bucket_count(bucket_spec *b, int64_t from, int64_t to, uint64_t cap)
{
    if (from >= to)
        return 0;
    int64_t w, o;
    uint64_t n;
    if (b->unit == GRAN_ALL)
        n = 1;
    else if (fixed(b, &w, &o))
        n = (uint64_t)((to - 1 - bucket_floor(b, from)) / w) + 1;
    else
        n = (uint64_t)(calendar_index(b, to - 1) - calendar_index(b, from)) + 1;
    return n > cap ? cap + 1 : n;
}

gran_t bucket_read_gran(const bucket_spec *b, gran_t finest)
{
    int64_t w, o;
    if (b->unit == GRAN_ALL || (b->unit == GRAN_MONTH && !b->zone))
        return b->unit;
    if (!fixed(b, &w, &o))
        return finest;
    for (int g = GRAN_DAY; g > GRAN_SECOND; g--)
        if (w % unit_seconds[g] == 0 && o % unit_seconds[g] == 0)
            return (gran_t)g;
    return GRAN_SECOND;
}
