/* Unit tests: answer buckets (core/bucket.h) and time zones (core/tz.h):
 * multiples, ISO weeks, months, days across daylight-saving changes in
 * Europe/Berlin, America/New_York and a midnight that does not exist
 * (America/Sao_Paulo 2018), offsets that are not whole hours. Expected
 * instants were computed independently (Python's zoneinfo). */
#include "core/bucket.h"
#include "tests/unit/check.h"

#include <errno.h>

/* RFC 3339 to epoch seconds */
static int64_t T(const char *s)
{
    int64_t ms = 0;
    CHECK_INT(time_parse_rfc3339(s, strlen(s), &ms), 0);
    return ms / 1000;
}

static bucket_spec spec(const char *name, tz *z)
{
    bucket_spec b;
    CHECK_INT(bucket_parse(name, strlen(name), &b), 0);
    b.zone = z;
    return b;
}

static tz *zone(const char *name)
{
    tz *z = NULL;
    CHECK_INT(tz_open(name, strlen(name), &z), 0);
    CHECK(z != NULL);
    return z;
}

/* the bucket holding at starts at start and the next one at next */
#define CHECK_BUCKET(b, at, start, next) do { \
        CHECK_INT(bucket_floor(&(b), T(at)), T(start)); \
        CHECK_INT(bucket_next(&(b), T(start)), T(next)); } while (0)

static void test_parse(void)
{
    static const char *const bad[] = {"", "0m", "05m", "100001s", "5x", "m", "5", "5mm",
                                      "-5m", "Week", "auto", "1.5h", "5 m"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        bucket_spec b;
        if (bucket_parse(bad[i], strlen(bad[i]), &b) != -EINVAL) {
            fprintf(stderr, "accepted bad granularity '%s'\n", bad[i]);
            check_failures++;
        }
    }
    static const char *const names[][2] = {
        {"15m", "15m"}, {"1h", "hour"}, {"hour", "hour"}, {"week", "week"}, {"1w", "week"},
        {"2w", "2w"}, {"7d", "7d"}, {"month", "month"}, {"all", "all"}, {"100000s", "100000s"}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        bucket_spec b = spec(names[i][0], NULL);
        char buf[16];
        bucket_name(&b, buf, sizeof(buf));
        CHECK_STR(buf, names[i][1]);
    }
    bucket_spec b = spec("6h", NULL);
    CHECK_INT(b.unit, GRAN_HOUR);
    CHECK_INT(b.mult, 6);
    CHECK_INT(bucket_width(&b), 21600);
    b = spec("month", NULL);
    CHECK_INT(bucket_width(&b), 0);
}

static void test_utc(void)
{
    bucket_spec b = spec("15m", NULL);
    CHECK_BUCKET(b, "2026-11-23T10:44:59Z", "2026-11-23T10:30:00Z", "2026-11-23T10:45:00Z");
    CHECK_BUCKET(b, "1969-12-31T23:59:59Z", "1969-12-31T23:45:00Z", "1970-01-01T00:00:00Z");
    b = spec("6h", NULL);
    CHECK_BUCKET(b, "2026-11-23T05:59:59Z", "2026-11-23T00:00:00Z", "2026-11-23T06:00:00Z");
    /* 7d counts from Thursday 1970-01-01; week from a Monday */
    b = spec("7d", NULL);
    CHECK_BUCKET(b, "2026-11-23T12:00:00Z", "2026-11-19T00:00:00Z", "2026-11-26T00:00:00Z");
    b = spec("week", NULL);
    CHECK_BUCKET(b, "2026-11-25T12:00:00Z", "2026-11-23T00:00:00Z", "2026-11-30T00:00:00Z");
    CHECK_BUCKET(b, "2026-11-29T23:59:59Z", "2026-11-23T00:00:00Z", "2026-11-30T00:00:00Z");
    CHECK_BUCKET(b, "2026-11-30T00:00:00Z", "2026-11-30T00:00:00Z", "2026-12-07T00:00:00Z");
    CHECK_BUCKET(b, "1969-12-31T12:00:00Z", "1969-12-29T00:00:00Z", "1970-01-05T00:00:00Z");
    b = spec("2w", NULL);
    CHECK_BUCKET(b, "1970-01-18T12:00:00Z", "1970-01-05T00:00:00Z", "1970-01-19T00:00:00Z");
    b = spec("month", NULL);
    CHECK_BUCKET(b, "2024-02-29T23:59:59Z", "2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z");
    CHECK_BUCKET(b, "2025-12-31T00:00:00Z", "2025-12-01T00:00:00Z", "2026-01-01T00:00:00Z");
    b = spec("all", NULL);
    CHECK_INT(bucket_floor(&b, 12345), 0);
    CHECK_INT(bucket_next(&b, 0), INT64_MAX);

    /* counts: from the bucket holding from, up to to (exclusive) */
    b = spec("15m", NULL);
    CHECK_INT(bucket_count(&b, T("2026-11-23T10:07:00Z"), T("2026-11-23T11:00:00Z"), 100), 4);
    CHECK_INT(bucket_count(&b, T("2026-11-23T10:07:00Z"), T("2026-11-23T11:00:01Z"), 100), 5);
    CHECK_INT(bucket_count(&b, T("2026-11-23T10:00:00Z"), T("2026-11-24T10:00:00Z"), 10), 11);
    CHECK_INT(bucket_count(&b, 5, 5, 10), 0);
    b = spec("month", NULL);
    CHECK_INT(bucket_count(&b, T("2026-01-15T00:00:00Z"), T("2027-01-01T00:00:00Z"), 100), 12);
    CHECK_INT(bucket_count(&b, T("2025-11-30T23:59:59Z"), T("2026-01-01T00:00:01Z"), 100), 3);
    CHECK_BUCKET(b, "1969-12-15T00:00:00Z", "1969-12-01T00:00:00Z", "1970-01-01T00:00:00Z");
    CHECK_BUCKET(b, "0001-01-31T23:59:59Z", "0001-01-01T00:00:00Z", "0001-02-01T00:00:00Z");

    /* the unit segments may be read at */
    CHECK_INT(bucket_read_gran(&(bucket_spec){.unit = GRAN_MINUTE, .mult = 15}, GRAN_SECOND),
              GRAN_MINUTE);
    b = spec("120m", NULL);
    CHECK_INT(bucket_read_gran(&b, GRAN_SECOND), GRAN_HOUR);
    b = spec("90s", NULL);
    CHECK_INT(bucket_read_gran(&b, GRAN_SECOND), GRAN_SECOND);
    b = spec("7d", NULL);
    CHECK_INT(bucket_read_gran(&b, GRAN_MINUTE), GRAN_DAY);
    b = spec("week", NULL);
    CHECK_INT(bucket_read_gran(&b, GRAN_MINUTE), GRAN_DAY);
    b = spec("month", NULL);
    CHECK_INT(bucket_read_gran(&b, GRAN_MINUTE), GRAN_MONTH);
}

static void test_zones(void)
{
    tz *z = NULL;
    CHECK_INT(tz_open("Mars/Olympus", 12, &z), -EINVAL);
    CHECK_INT(tz_open("GMT+1", 5, &z), -EINVAL);          /* a custom id, not a zone */
    CHECK_INT(tz_open("Europe/Berlin\n", 14, &z), -EINVAL);
    CHECK_INT(tz_open("", 0, &z), -EINVAL);
    CHECK(z == NULL);
    tz *utc = zone("UTC");
    CHECK_INT(tz_offset(utc, T("2026-07-01T00:00:00Z")), 0);
    tz_free(utc);

    /* Europe/Berlin: 2026-03-29 has 23 hours, 2026-10-25 has 25 */
    tz *be = zone("Europe/Berlin");
    CHECK_INT(tz_offset(be, T("2026-03-29T00:59:59Z")), 3600);
    CHECK_INT(tz_offset(be, T("2026-03-29T01:00:00Z")), 7200);
    /* out of time order, at and around both changes (the remembered span
     * between transitions, and local midnights sharing a cache slot) */
    static const struct { const char *at; int off; } offs[] = {
        {"2026-07-01T00:00:00Z", 7200}, {"2026-01-01T00:00:00Z", 3600},
        {"2026-10-25T01:00:00Z", 3600}, {"2026-10-25T00:59:59Z", 7200},
        {"2026-03-29T01:00:00Z", 7200}, {"1980-07-01T00:00:00Z", 7200},
        {"1970-07-01T00:00:00Z", 3600}, {"2026-03-29T00:59:59Z", 3600}};
    for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++)
        CHECK_INT(tz_offset(be, T(offs[i].at)), offs[i].off);
    int64_t d0 = days_from_civil(2026, 3, 29);
    CHECK_INT(tz_day_start(be, d0), T("2026-03-28T23:00:00Z"));
    CHECK_INT(tz_day_start(be, d0 + 16), T("2026-04-13T22:00:00Z"));
    CHECK_INT(tz_day_start(be, d0), T("2026-03-28T23:00:00Z"));
    CHECK_INT(tz_local_day(be, T("2026-03-28T23:00:00Z")), d0);
    CHECK_INT(tz_local_day(be, T("2026-03-28T22:59:59Z")), d0 - 1);
    bucket_spec b = spec("day", be);
    CHECK_BUCKET(b, "2026-03-29T12:00:00Z", "2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z");
    CHECK_BUCKET(b, "2026-03-28T23:00:00Z", "2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z");
    CHECK_BUCKET(b, "2026-03-28T22:59:59Z", "2026-03-27T23:00:00Z", "2026-03-28T23:00:00Z");
    CHECK_BUCKET(b, "2026-10-25T22:59:59Z", "2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z");
    CHECK_BUCKET(b, "2026-10-25T23:00:00Z", "2026-10-25T23:00:00Z", "2026-10-26T23:00:00Z");
    CHECK_INT(bucket_next(&b, T("2026-10-24T22:00:00Z")) - T("2026-10-24T22:00:00Z"), 25 * 3600);
    CHECK_INT(bucket_count(&b, T("2026-03-28T23:00:00Z"), T("2026-03-30T22:00:00Z"), 10), 2);
    b = spec("week", be);
    CHECK_BUCKET(b, "2026-03-29T21:59:59Z", "2026-03-22T23:00:00Z", "2026-03-29T22:00:00Z");
    /* counts of calendar buckets: by the local day (or month) starting them */
    CHECK_INT(bucket_count(&b, T("2026-03-22T23:00:00Z"), T("2026-04-12T22:00:00Z"), 10), 3);
    CHECK_INT(bucket_count(&b, T("2026-03-22T23:00:00Z"), T("2026-04-12T22:00:01Z"), 10), 4);
    CHECK_INT(bucket_count(&b, T("2026-03-22T22:59:59Z"), T("2026-04-12T22:00:00Z"), 10), 4);
    CHECK_INT(bucket_count(&b, T("2026-03-22T22:59:59Z"), T("2026-04-12T22:00:00Z"), 2), 3);
    b = spec("month", be);
    CHECK_INT(bucket_count(&b, T("2025-12-31T23:00:00Z"), T("2026-12-31T23:00:00Z"), 100), 12);
    CHECK_INT(bucket_count(&b, T("2025-12-31T22:59:59Z"), T("2026-12-31T23:00:01Z"), 100), 14);
    CHECK_BUCKET(b, "2026-03-31T21:59:59Z", "2026-02-28T23:00:00Z", "2026-03-31T22:00:00Z");
    CHECK_BUCKET(b, "2026-12-31T23:00:00Z", "2026-12-31T23:00:00Z", "2027-01-31T23:00:00Z");
    CHECK_BUCKET(b, "2026-03-31T22:00:00Z", "2026-03-31T22:00:00Z", "2026-04-30T22:00:00Z");
    b = spec("2d", be);   /* pairs of local days from 1970-01-01: 03-28 and 03-29 */
    CHECK_BUCKET(b, "2026-03-29T12:00:00Z", "2026-03-27T23:00:00Z", "2026-03-29T22:00:00Z");
    /* hours stay lengths of time: a zone does not move them */
    b = spec("6h", be);
    CHECK_BUCKET(b, "2026-03-29T05:00:00Z", "2026-03-29T00:00:00Z", "2026-03-29T06:00:00Z");
    CHECK_INT(bucket_read_gran(&b, GRAN_MINUTE), GRAN_HOUR);
    b = spec("day", be);
    CHECK_INT(bucket_read_gran(&b, GRAN_MINUTE), GRAN_MINUTE);
    tz_free(be);

    /* America/New_York: 2026-03-08 has 23 hours, 2026-11-01 has 25 */
    tz *ny = zone("America/New_York");
    b = spec("day", ny);
    CHECK_BUCKET(b, "2026-03-08T12:00:00Z", "2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z");
    CHECK_BUCKET(b, "2026-11-01T12:00:00Z", "2026-11-01T04:00:00Z", "2026-11-02T05:00:00Z");
    CHECK_BUCKET(b, "2026-11-02T04:59:59Z", "2026-11-01T04:00:00Z", "2026-11-02T05:00:00Z");
    tz_free(ny);

    /* America/Sao_Paulo 2018-11-04: clocks went from 00:00 to 01:00, so
     * that day began at 01:00 local (03:00Z) and had 23 hours */
    tz *sp = zone("America/Sao_Paulo");
    b = spec("day", sp);
    CHECK_BUCKET(b, "2018-11-04T12:00:00Z", "2018-11-04T03:00:00Z", "2018-11-05T02:00:00Z");
    CHECK_BUCKET(b, "2018-11-04T02:59:59Z", "2018-11-03T03:00:00Z", "2018-11-04T03:00:00Z");
    tz_free(sp);

    /* Asia/Kolkata (+05:30): days start at half past the UTC hour */
    tz *in = zone("Asia/Kolkata");
    b = spec("day", in);
    CHECK_BUCKET(b, "2026-11-23T10:00:00Z", "2026-11-22T18:30:00Z", "2026-11-23T18:30:00Z");
    tz_free(in);
}

static void test_format(void)
{
    char buf[48];
    time_format_rfc3339_offset(T("2026-03-28T23:00:00Z"), 3600, buf, sizeof(buf));
    CHECK_STR(buf, "2026-03-29T00:00:00+01:00");
    time_format_rfc3339_offset(T("2026-03-08T05:00:00Z"), -5 * 3600, buf, sizeof(buf));
    CHECK_STR(buf, "2026-03-08T00:00:00-05:00");
    time_format_rfc3339_offset(T("2026-11-22T18:30:00Z"), 19800, buf, sizeof(buf));
    CHECK_STR(buf, "2026-11-23T00:00:00+05:30");
    time_format_rfc3339_offset(0, 0, buf, sizeof(buf));
    CHECK_STR(buf, "1970-01-01T00:00:00+00:00");
    time_format_rfc3339_offset(0, -34200, buf, sizeof(buf));   /* Pacific/Marquesas */
    CHECK_STR(buf, "1969-12-31T14:30:00-09:30");
    /* a buffer too small is cut short: never local time marked Z */
    char small[21];
    time_format_rfc3339_offset(T("2026-03-28T23:00:00Z"), 3600, small, sizeof(small));
    CHECK_STR(small, "2026-03-29T00:00:00+");
    /* local mean time (+00:53:28): not writable as an RFC 3339 offset */
    time_format_rfc3339_offset(0, 3208, buf, sizeof(buf));
    CHECK_STR(buf, "1970-01-01T00:00:00Z");
}

int main(void)
{
    test_parse();
    test_utc();
    test_zones();
    test_format();
    CHECK_DONE();
}
