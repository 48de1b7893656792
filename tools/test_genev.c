/* test_genev.c - unit tests of lambdad-gen's event synthesis: PRNG known
 * answers (computed by an independent Python implementation of splitmix64 +
 * xoshiro256**), RFC 3339 formatting, reproducibility, the malformed kinds
 * and lateness. */
#include "tools/genev.h"
#include "tests/unit/check.h"

#include <errno.h>

static void check_rfc3339(int64_t ms, const char *want)
{
    char buf[40];
    genev_format_rfc3339_ms(ms, buf, sizeof buf);
    CHECK_STR(buf, want);
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool all_printable(const genev_event_t *ev)
{
    for (size_t i = 0; i < ev->len; i++)
        if (ev->payload[i] < 0x20 || ev->payload[i] > 0x7e)
            return false;
    return ev->len > 0 && ev->payload[ev->len] == '\0';
}

int main(void)
{
    genrng_t r;
    genrng_seed(&r, 0);
    CHECK(genrng_next(&r) == 0x99ec5f36cb75f2b4ULL);
    CHECK(genrng_next(&r) == 0xbf6e1f784956452aULL);
    CHECK(genrng_next(&r) == 0x1a5f849d4933e6e0ULL);
    genrng_seed(&r, 7);
    CHECK(genrng_next(&r) == 0xb358faf74ef9765aULL);
    CHECK(genrng_next(&r) == 0x475c3d964f482cd2ULL);
    CHECK(genrng_next(&r) == 0xd6f1d349952c7996ULL);

    /* bounds */
    int bad_below = 0, bad_double = 0, hits[7] = {0};
    for (int i = 0; i < 70000; i++) {
        uint64_t v = genrng_below(&r, 7);
        if (v >= 7)
            bad_below++;
        else
            hits[v]++;
        double d = genrng_double(&r);
        if (!(d >= 0 && d < 1))
            bad_double++;
    }
    CHECK_INT(bad_below, 0);
    CHECK_INT(bad_double, 0);
    for (int i = 0; i < 7; i++) /* 10000 expected, sd ~93 */
        CHECK(hits[i] > 9500 && hits[i] < 10500);
    CHECK_INT(genrng_below(&r, 1), 0);

    /* time formats */
    genev_tsfmt_t f = GENEV_EPOCH_MS;
    CHECK_INT(genev_tsfmt_parse("epoch_s", &f), 0);
    CHECK_INT(f, GENEV_EPOCH_S);
    CHECK_INT(genev_tsfmt_parse("rfc3339", &f), 0);
    CHECK_INT(f, GENEV_RFC3339);
    CHECK_INT(genev_tsfmt_parse("epoch_ms", &f), 0);
    CHECK_INT(f, GENEV_EPOCH_MS);
    CHECK_INT(genev_tsfmt_parse("kafka", &f), -EINVAL);
    CHECK_INT(genev_tsfmt_parse("", &f), -EINVAL);
    check_rfc3339(1763892000123LL, "2025-11-23T10:00:00.123Z");
    check_rfc3339(0, "1970-01-01T00:00:00.000Z");
    check_rfc3339(-1, "1969-12-31T23:59:59.999Z");
    check_rfc3339(951782400000LL, "2000-02-29T00:00:00.000Z");
    check_rfc3339(951868799999LL, "2000-02-29T23:59:59.999Z");
    check_rfc3339(253402300799999LL, "9999-12-31T23:59:59.999Z");

    /* a known first event pins the format and the distributions' draws */
    genev_t g, h;
    genev_event_t ev, ev2;
    genev_init(&g, 7, GENEV_EPOCH_S, 0.02, 0, 3 * 86400000LL);
    genev_next(&g, 1763892000000LL, &ev);
    CHECK_STR(ev.payload, "{\"ts\":1763892000,\"page\":\"/products/83\",\"country\":\"BE\","
                          "\"user\":\"u98180\",\"bytes\":55958,\"ms\":32}");
    CHECK_INT(ev.len, strlen(ev.payload));
    CHECK_STR(ev.key, "u98180");
    CHECK_INT(ev.keylen, 6);
    CHECK_INT(ev.kind, GENEV_GOOD);

    genev_init(&g, 7, GENEV_RFC3339, 0, 0, 1);
    genev_next(&g, 1763892000123LL, &ev);
    CHECK(starts_with(ev.payload, "{\"ts\":\"2025-11-23T10:00:00.123Z\",\"page\":"));
    genev_init(&g, 7, GENEV_EPOCH_MS, 0, 0, 1);
    genev_next(&g, 1763892000123LL, &ev);
    CHECK(starts_with(ev.payload, "{\"ts\":1763892000123,\"page\":"));
    genev_init(&g, 7, GENEV_EPOCH_S, 0, 0, 1);
    genev_next(&g, -1, &ev); /* floors, not truncates */
    CHECK(starts_with(ev.payload, "{\"ts\":-1,"));

    /* same seed, same events; the good events do not depend on the shares */
    genev_init(&g, 99, GENEV_EPOCH_S, 0.3, 0.2, 86400000);
    genev_init(&h, 99, GENEV_EPOCH_S, 0, 0, 86400000);
    genev_t g2;
    genev_init(&g2, 99, GENEV_EPOCH_S, 0.3, 0.2, 86400000);
    int mismatches = 0, differ = 0, not_printable = 0, bad = 0, late = 0, late_range = 0;
    for (int i = 0; i < 20000; i++) {
        int64_t t = 1763892000000LL + i;
        genev_next(&g, t, &ev);
        genev_next(&h, t, &ev2);
        genev_event_t ev3;
        genev_next(&g2, t, &ev3);
        if (ev.len != ev3.len || memcmp(ev.payload, ev3.payload, ev.len) != 0)
            mismatches++;
        if (ev.kind == GENEV_GOOD && !ev.late && strcmp(ev.payload, ev2.payload) != 0)
            differ++;
        if (!all_printable(&ev))
            not_printable++;
        bad += ev.kind != GENEV_GOOD;
        late += ev.late;
        if (ev.late && !(ev.time_ms < t && ev.time_ms >= t - 86400000))
            late_range++;
        CHECK(strcmp(ev.key, ev2.key) == 0); /* the key is drawn for bad events too */
    }
    CHECK_INT(mismatches, 0);
    CHECK_INT(differ, 0);
    CHECK_INT(not_printable, 0);
    CHECK_INT(late_range, 0);
    CHECK(bad > 5700 && bad < 6300);   /* 6000 expected, sd ~65 */
    CHECK(late > 3700 && late < 4300); /* 4000 expected, sd ~57 */

    /* bad events cycle through the four kinds, each of the right shape */
    genev_init(&g, 5, GENEV_EPOCH_S, 1, 0, 1);
    for (int i = 0; i < 40; i++) {
        genev_next(&g, 1763892000000LL, &ev);
        CHECK_INT(ev.kind, GENEV_BAD_JSON + i % 4);
        const char *p = ev.payload;
        switch (ev.kind) {
        case GENEV_BAD_JSON: /* a strict prefix of an object */
            CHECK(p[0] == '{' && ev.len >= 1 && strchr(p, '}') == NULL);
            break;
        case GENEV_BAD_NOT_OBJECT:
            CHECK(p[0] == '[' || p[0] == '"' || (p[0] >= '0' && p[0] <= '9') ||
                  strcmp(p, "null") == 0);
            break;
        case GENEV_BAD_NO_TIME:
            CHECK(starts_with(p, "{\"page\":") && strstr(p, "\"ts\"") == NULL);
            break;
        case GENEV_BAD_TIME:
            CHECK(starts_with(p, "{\"ts\":\"yesterday\",") ||
                  starts_with(p, "{\"ts\":\"n/a\",") ||
                  starts_with(p, "{\"ts\":\"10:00 tomorrow\","));
            break;
        default:
            CHECK(0);
        }
    }
    CHECK_DONE();
}
