/* gran.c - UTC time buckets and RFC 3339 parsing/formatting.
 * Pure functions; any thread. Civil-date arithmetic follows Howard
 * Hinnant's days_from_civil algorithm, valid over the whole int64 range we
 * accept (years 0001..9999 for parsed input). */
#include "core/gran.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *const gran_names[] = {"second", "minute", "hour", "day", "month", "all"};

const char *gran_name(gran_t g)
{
    return (unsigned)g <= GRAN_ALL ? gran_names[g] : "?";
}

int gran_parse(const char *s, gran_t *out)
{
    for (unsigned i = 0; i <= GRAN_ALL; i++)
        if (strcmp(s, gran_names[i]) == 0) {
            *out = (gran_t)i;
            return 0;
        }
    return -EINVAL;
}

int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = floor_div(z, 146097);
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

int64_t gran_floor(gran_t g, int64_t ts)
{
    switch (g) {
    case GRAN_SECOND: return ts;
    case GRAN_MINUTE: return floor_div(ts, 60) * 60;
    case GRAN_HOUR:   return floor_div(ts, 3600) * 3600;
    case GRAN_DAY:    return floor_div(ts, 86400) * 86400;
    case GRAN_MONTH: {
        int64_t y;
        unsigned m, d;
        civil_from_days(floor_div(ts, 86400), &y, &m, &d);
        return days_from_civil(y, m, 1) * 86400;
    }
    case GRAN_ALL:
    default:          return 0;
    }
}

int64_t gran_next(gran_t g, int64_t start)
{
    switch (g) {
    case GRAN_SECOND: return start + 1;
    case GRAN_MINUTE: return start + 60;
    case GRAN_HOUR:   return start + 3600;
    case GRAN_DAY:    return start + 86400;
    case GRAN_MONTH: {
        int64_t y;
        unsigned m, d;
        civil_from_days(floor_div(start, 86400), &y, &m, &d);
        if (++m > 12) {
            m = 1;
            y++;
        }
        return days_from_civil(y, m, 1) * 86400;
    }
    case GRAN_ALL:
    default:          return INT64_MAX;
    }
}

/* Reads exactly n digits at s[*i]. */
static int digits(const char *s, size_t len, size_t *i, int n, int *out)
{
    int v = 0;
    for (int k = 0; k < n; k++, (*i)++) {
        if (*i >= len || s[*i] < '0' || s[*i] > '9')
            return -EINVAL;
        v = v * 10 + (s[*i] - '0');
    }
    *out = v;
    return 0;
}

static int expect(const char *s, size_t len, size_t *i, char c)
{
    if (*i >= len || s[*i] != c)
        return -EINVAL;
    (*i)++;
    return 0;
}

static unsigned days_in_month(int y, int m)
{
    static const unsigned dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return dm[m - 1] + (m == 2 && leap);
}

int time_parse_rfc3339(const char *s, size_t len, int64_t *ms)
{
    size_t i = 0;
    int Y, M, D, h, mi, sec, frac_ms = 0;
    if (digits(s, len, &i, 4, &Y) || expect(s, len, &i, '-') || digits(s, len, &i, 2, &M) ||
        expect(s, len, &i, '-') || digits(s, len, &i, 2, &D))
        return -EINVAL;
    if (i >= len || (s[i] != 'T' && s[i] != 't' && s[i] != ' '))
        return -EINVAL;
    i++;
    if (digits(s, len, &i, 2, &h) || expect(s, len, &i, ':') || digits(s, len, &i, 2, &mi) ||
        expect(s, len, &i, ':') || digits(s, len, &i, 2, &sec))
        return -EINVAL;
    if (i < len && s[i] == '.') {
        i++;
        size_t start = i;
        int scale = 100;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            frac_ms += (s[i] - '0') * scale;
            scale /= 10;
            i++;
        }
        if (i == start)
            return -EINVAL;
    }
    int offset_min = 0;
    if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < len && (s[i] == '+' || s[i] == '-')) {
        int sign = s[i] == '-' ? -1 : 1, oh, om;
        i++;
        if (digits(s, len, &i, 2, &oh) || expect(s, len, &i, ':') || digits(s, len, &i, 2, &om))
            return -EINVAL;
        if (oh > 23 || om > 59)
            return -EINVAL;
        offset_min = sign * (oh * 60 + om);
    } else {
        return -EINVAL;
    }
    if (i != len)
        return -EINVAL;
    /* sec == 60 is a leap second: RFC 3339 allows it; count it as :59.999 of
     * the same minute would break ordering, so fold it into the next second. */
    if (Y < 1 || M < 1 || M > 12 || D < 1 || (unsigned)D > days_in_month(Y, M) || h > 23 ||
        mi > 59 || sec > 60)
        return -EINVAL;
    int64_t days = days_from_civil(Y, (unsigned)M, (unsigned)D);
    int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - (int64_t)offset_min * 60;
    *ms = secs * 1000 + frac_ms;
    return 0;
}

void time_format_rfc3339(int64_t ts, char *buf, size_t bufsz)
{
    int64_t days = floor_div(ts, 86400), rem = ts - days * 86400, y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    snprintf(buf, bufsz, "%04lld-%02u-%02uT%02d:%02d:%02dZ", (long long)y, m, d,
             (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60));
}

int count_unit_parse(const char *s, size_t len, int64_t *n, int64_t *unit_s)
{
    if (len == 0 || s[0] < '1' || s[0] > '9')
        return -EINVAL;
    size_t i = 0;
    int64_t v = 0;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        v = v * 10 + (s[i] - '0');
        if (v > COUNT_UNIT_MAX)
            return -EINVAL;
    }
    if (i + 1 != len)
        return -EINVAL;
    switch (s[i]) {
    case 's': *unit_s = 1; break;
    case 'm': *unit_s = 60; break;
    case 'h': *unit_s = 3600; break;
    case 'd': *unit_s = 86400; break;
    case 'w': *unit_s = 7 * 86400; break;
    default: return -EINVAL;
    }
    *n = v;
    return 0;
}

int duration_parse(const char *s, int64_t *secs)
{
    const int64_t max = 100LL * 366 * 86400;
    int64_t n, unit;
    if (!s || count_unit_parse(s, strlen(s), &n, &unit) < 0 || n > max / unit)
        return -EINVAL;
    *secs = n * unit;
    return 0;
}

void time_format_rfc3339_offset(int64_t ts, int32_t off_s, char *buf, size_t bufsz)
{
    if (off_s % 60 != 0) {
        time_format_rfc3339(ts, buf, bufsz);
        return;
    }
    char local[32];
    time_format_rfc3339(ts + off_s, local, sizeof(local));
    int a = off_s < 0 ? -off_s : off_s;
    /* the local time without its 'Z', then the offset */
    snprintf(buf, bufsz, "%.*s%c%02d:%02d", (int)strlen(local) - 1, local, off_s < 0 ? '-' : '+',
             a / 3600, a / 60 % 60);
}
