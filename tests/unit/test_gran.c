/* Unit tests: time buckets around boundaries, civil dates, RFC 3339. */
#include "core/gran.h"
#include "tests/unit/check.h"

#include <errno.h>

static int64_t parse(const char *s)
{
    int64_t ms = -1;
    CHECK_INT(time_parse_rfc3339(s, strlen(s), &ms), 0);
    return ms;
}

static void check_bad(const char *s)
{
    int64_t ms;
    if (time_parse_rfc3339(s, strlen(s), &ms) != -EINVAL) {
        fprintf(stderr, "accepted bad time '%s'\n", s);
        check_failures++;
    }
}

int main(void)
{
    /* floors, including negative times (before 1970) */
    CHECK_INT(gran_floor(GRAN_MINUTE, 1763892059), 1763892000);
    CHECK_INT(gran_floor(GRAN_MINUTE, 1763892060), 1763892060);
    CHECK_INT(gran_floor(GRAN_MINUTE, -1), -60);
    CHECK_INT(gran_floor(GRAN_HOUR, -3600), -3600);
    CHECK_INT(gran_floor(GRAN_HOUR, -3601), -7200);
    CHECK_INT(gran_floor(GRAN_DAY, 1763942399), 1763856000);   /* 2025-11-23T23:59:59Z */
    CHECK_INT(gran_floor(GRAN_DAY, 1763942400), 1763942400);
    CHECK_INT(gran_floor(GRAN_SECOND, -5), -5);
    CHECK_INT(gran_floor(GRAN_ALL, 12345), 0);
    /* months: 2024-02-29T12:00:00Z -> 2024-02-01; Dec -> Jan of next year */
    CHECK_INT(gran_floor(GRAN_MONTH, 1709208000), 1706745600);
    CHECK_INT(gran_next(GRAN_MONTH, 1706745600), 1709251200);          /* 2024-03-01 */
    CHECK_INT(gran_next(GRAN_MONTH, parse("2025-12-01T00:00:00Z") / 1000),
              parse("2026-01-01T00:00:00Z") / 1000);
    CHECK_INT(gran_floor(GRAN_MONTH, -1), parse("1969-12-01T00:00:00Z") / 1000);
    CHECK_INT(gran_next(GRAN_DAY, 0), 86400);
    CHECK_INT(gran_next(GRAN_ALL, 0), INT64_MAX);

    /* names */
    gran_t g;
    CHECK_INT(gran_parse("hour", &g), 0);
    CHECK_INT(g, GRAN_HOUR);
    CHECK_INT(gran_parse("Hour", &g), -EINVAL);
    CHECK_STR(gran_name(GRAN_ALL), "all");

    /* civil dates round trip over four centuries and leap rules */
    for (int64_t d = -200000; d < 200000; d += 7) {
        int64_t y;
        unsigned m, dd;
        civil_from_days(d, &y, &m, &dd);
        if (days_from_civil(y, m, dd) != d) {
            CHECK_INT(days_from_civil(y, m, dd), d);
            break;
        }
    }
    CHECK_INT(days_from_civil(1970, 1, 1), 0);
    CHECK_INT(days_from_civil(2000, 3, 1), 11017);

    /* RFC 3339 */
    CHECK_INT(parse("2026-11-23T10:00:00Z"), 1795428000000LL);
    CHECK_INT(parse("2026-11-23t10:00:00z"), 1795428000000LL);
    CHECK_INT(parse("2026-11-23 10:00:00Z"), 1795428000000LL);
    CHECK_INT(parse("2026-11-23T10:00:00.123Z"), 1795428000123LL);
    CHECK_INT(parse("2026-11-23T10:00:00.1239999Z"), 1795428000123LL);
    CHECK_INT(parse("2026-11-23T11:30:00+01:30"), 1795428000000LL);
    CHECK_INT(parse("2026-11-23T08:00:00-02:00"), 1795428000000LL);
    CHECK_INT(parse("1969-12-31T23:59:59Z"), -1000);
    CHECK_INT(parse("2024-02-29T00:00:00Z"), 1709164800000LL);
    CHECK_INT(parse("0001-01-01T00:00:00Z"), -62135596800000LL);
    check_bad("");
    check_bad("2026-11-23");
    check_bad("2026-11-23T10:00:00");        /* no offset */
    check_bad("2026-11-23T10:00Z");
    check_bad("2025-02-29T00:00:00Z");       /* not a leap year */
    check_bad("2026-13-01T00:00:00Z");
    check_bad("2026-11-31T00:00:00Z");
    check_bad("2026-11-23T24:00:00Z");
    check_bad("2026-11-23T10:00:00.Z");
    check_bad("2026-11-23T10:00:00Zjunk");
    check_bad("2026-11-23T10:00:00+0100");
    check_bad("0000-01-01T00:00:00Z");
    check_bad("yesterday");

    /* durations: one positive integer and one unit, up to 100 years
     * (100 * 366 days = 3162240000 s) in every unit */
    static const struct { const char *s; int64_t secs; } durs[] = {
        {"45s", 45}, {"30m", 1800}, {"12h", 43200}, {"90d", 7776000}, {"2w", 1209600},
        {"3162240000s", 3162240000}, {"52704000m", 3162240000}, {"878400h", 3162240000},
        {"36600d", 3162240000}, {"5228w", 3161894400}};
    for (size_t i = 0; i < sizeof(durs) / sizeof(durs[0]); i++) {
        int64_t secs = -1;
        CHECK_INT(duration_parse(durs[i].s, &secs), 0);
        CHECK_INT(secs, durs[i].secs);
    }
    static const char *const bad_durs[] = {
        "3162240001s", "52704001m", "878401h", "36601d", "5229w", "99999999999999999999d",
        "", "0d", "05d", "d", "90", "90dd", "90 d", " 90d", "-1d", "1.5h", "90D", "90y"};
    for (size_t i = 0; i < sizeof(bad_durs) / sizeof(bad_durs[0]); i++) {
        int64_t secs = -1;
        if (duration_parse(bad_durs[i], &secs) != -EINVAL || secs != -1) {
            fprintf(stderr, "accepted bad duration '%s'\n", bad_durs[i]);
            check_failures++;
        }
    }
    CHECK_INT(duration_parse(NULL, &(int64_t){0}), -EINVAL);
    /* what both durations and bucket multiples are read with: len bytes */
    int64_t cn = 0, cu = 0;
    CHECK_INT(count_unit_parse("15mx", 3, &cn, &cu), 0);
    CHECK(cn == 15 && cu == 60);
    CHECK_INT(count_unit_parse("2w", 2, &cn, &cu), 0);
    CHECK(cn == 2 && cu == 604800);
    CHECK_INT(count_unit_parse("1000000000000s", 14, &cn, &cu), 0);
    CHECK_INT(cn, COUNT_UNIT_MAX);
    CHECK_INT(count_unit_parse("1000000000001s", 14, &cn, &cu), -EINVAL);
    CHECK_INT(count_unit_parse("15m", 2, &cn, &cu), -EINVAL);

    char buf[32];
    time_format_rfc3339(1795428000, buf, sizeof(buf));
    CHECK_STR(buf, "2026-11-23T10:00:00Z");
    time_format_rfc3339(-1, buf, sizeof(buf));
    CHECK_STR(buf, "1969-12-31T23:59:59Z");
    CHECK_DONE();
}
