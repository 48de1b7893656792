/* genev.c - realistic, seeded page-view events for lambdad-gen.
 *
 * An event looks like
 *   {"ts":1763892000,"page":"/products/42","country":"DE","user":"u18273","bytes":5120,"ms":87}
 * page: Zipf (s = 1.1) over 200 paths in six families, ranked by a fixed
 * shuffle so the popular pages span families; country: weighted over 20 ISO
 * codes; user: 100k ids, skewed towards low ids (regulars); bytes: log-normal
 * (median ~4 KB, clamped to 120 B..1 MiB); ms: log-normal (median ~45 ms,
 * clamped to 1..60000), 2% of them with a ".5" fraction.
 *
 * Any thread, caller-owned state; the page table is built once under
 * pthread_once.
 */
#include "tools/genev.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* ---- PRNG ---- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void genrng_seed(genrng_t *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t genrng_next(genrng_t *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double genrng_double(genrng_t *r)
{
    return (double)(genrng_next(r) >> 11) * 0x1.0p-53;
}

uint64_t genrng_below(genrng_t *r, uint64_t n)
{
    /* Lemire's multiply-shift with rejection: unbiased. */
    unsigned __int128 m = (unsigned __int128)genrng_next(r) * n;
    uint64_t lo = (uint64_t)m;
    if (lo < n) {
        uint64_t threshold = -n % n;
        while (lo < threshold) {
            m = (unsigned __int128)genrng_next(r) * n;
            lo = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

/* A standard normal by Box-Muller (one of the pair; one draw pair each). */
static double normal(double u1, double u2)
{
    return sqrt(-2.0 * log(1.0 - u1)) * cos(2.0 * M_PI * u2);
}

/* ---- tables ---- */

enum { NPAGES = 200, NUSERS = 100000 };

static const char *const categories[] = {
    "shoes",  "shirts",  "jackets", "bags",   "watches", "books", "toys",
    "garden", "kitchen", "sports",  "phones", "laptops", "audio", "cameras",
    "games",  "beauty",  "health",  "pets",   "office",  "tools",
};
static const char *const search_words[] = {
    "red+shoes", "laptop", "gift",   "sale",     "headphones", "coffee",   "tent",
    "lego",      "desk",   "lamp",   "running",  "usb-c",      "backpack", "sunglasses",
    "blender",   "jeans",  "kindle", "yoga+mat", "drone",      "socks",
};
static const char *const account_pages[] = {
    "settings",      "orders",   "profile",  "addresses", "payment",
    "notifications", "security", "wishlist", "returns",   "invoices",
};
static const char *const top_pages[] = {
    "/",      "/cart",    "/checkout", "/login", "/signup",
    "/about", "/contact", "/pricing",  "/faq",   "/terms",
};

static struct {
    char path[NPAGES][40];
    double cdf[NPAGES];
} pages;
static pthread_once_t pages_once = PTHREAD_ONCE_INIT;

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static void pages_build(void)
{
    char tmp[NPAGES][40];
    size_t n = 0;
    for (size_t i = 0; i < NELEM(top_pages); i++)
        snprintf(tmp[n++], 40, "%s", top_pages[i]);
    for (int i = 1; i <= 100; i++)
        snprintf(tmp[n++], 40, "/products/%d", i);
    for (size_t i = 0; i < NELEM(categories); i++)
        snprintf(tmp[n++], 40, "/category/%s", categories[i]);
    for (int i = 1; i <= 40; i++)
        snprintf(tmp[n++], 40, "/blog/post-%d", i);
    for (size_t i = 0; i < NELEM(search_words); i++)
        snprintf(tmp[n++], 40, "/search?q=%s", search_words[i]);
    for (size_t i = 0; i < NELEM(account_pages); i++)
        snprintf(tmp[n++], 40, "/account/%s", account_pages[i]);
    /* n == NPAGES. Rank order: "/" first, the rest by a fixed shuffle that
   * does not depend on --seed, so page popularity is the same in every run. */
    genrng_t r;
    genrng_seed(&r, 0x1a4bdadULL);
    for (size_t i = n - 1; i > 1; i--) {
        size_t j = 1 + (size_t)genrng_below(&r, i); /* in [1, i] */
        char t[40];
        memcpy(t, tmp[i], 40);
        memcpy(tmp[i], tmp[j], 40);
        memcpy(tmp[j], t, 40);
    }
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(pages.path[i], tmp[i], 40);
        sum += 1.0 / pow((double)(i + 1), 1.1);
        pages.cdf[i] = sum;
    }
    for (size_t i = 0; i < n; i++)
        pages.cdf[i] /= sum;
    pages.cdf[n - 1] = 1.0;
}

static const char *page_pick(double u)
{
    size_t lo = 0, hi = NPAGES - 1; /* first i with cdf[i] > u */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (pages.cdf[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return pages.path[lo];
}

static const struct {
    char code[3];
    unsigned weight;
} countries[] = {
    {"US", 220}, {"DE", 120}, {"GB", 90}, {"FR", 70}, {"IN", 70}, {"BR", 50}, {"JP", 50},
    {"CA", 40},  {"NL", 30},  {"ES", 30}, {"IT", 30}, {"PL", 30}, {"SE", 20}, {"AU", 20},
    {"MX", 20},  {"KR", 20},  {"CH", 20}, {"AT", 20}, {"BE", 10}, {"NG", 10},
};

/* v in [0, total weight) */
static const char *country_pick(uint64_t v)
{
    for (size_t i = 0; i < NELEM(countries); i++) {
        if (v < countries[i].weight)
            return countries[i].code;
        v -= countries[i].weight;
    }
    return countries[NELEM(countries) - 1].code;
}

static uint64_t country_total(void)
{
    uint64_t t = 0;
    for (size_t i = 0; i < NELEM(countries); i++)
        t += countries[i].weight;
    return t;
}

/* ---- time ---- */

int genev_tsfmt_parse(const char *s, genev_tsfmt_t *out)
{
    if (!strcmp(s, "epoch_s"))
        *out = GENEV_EPOCH_S;
    else if (!strcmp(s, "epoch_ms"))
        *out = GENEV_EPOCH_MS;
    else if (!strcmp(s, "rfc3339"))
        *out = GENEV_RFC3339;
    else
        return -EINVAL;
    return 0;
}

static int64_t floor_div64(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

void genev_format_rfc3339_ms(int64_t ms, char *buf, size_t bufsz)
{
    int64_t secs = floor_div64(ms, 1000), days = floor_div64(secs, 86400);
    int64_t sod = secs - days * 86400, frac = ms - secs * 1000;
    /* Howard Hinnant's civil_from_days. */
    int64_t z = days + 719468;
    int64_t era = floor_div64(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    if (m <= 2)
        y++;
    snprintf(buf, bufsz, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld.%03lldZ", (long long)y,
             (long long)m, (long long)d, (long long)(sod / 3600), (long long)(sod / 60 % 60),
             (long long)(sod % 60), (long long)frac);
}

/* The "ts" value as JSON text. */
static void format_ts(genev_tsfmt_t fmt, int64_t ms, char *buf, size_t bufsz)
{
    switch (fmt) {
    case GENEV_EPOCH_S: snprintf(buf, bufsz, "%lld", (long long)floor_div64(ms, 1000)); break;
    case GENEV_EPOCH_MS: snprintf(buf, bufsz, "%lld", (long long)ms); break;
    case GENEV_RFC3339: {
        char t[40];
        genev_format_rfc3339_ms(ms, t, sizeof t);
        snprintf(buf, bufsz, "\"%s\"", t);
        break;
    }
    }
}

/* ---- events ---- */

void genev_init(genev_t *g, uint64_t seed, genev_tsfmt_t fmt, double bad_share, double late_share,
                int64_t late_max_ms)
{
    pthread_once(&pages_once, pages_build);
    *g = (genev_t){.fmt = fmt,
                   .bad_share = bad_share,
                   .late_share = late_share,
                   .late_max_ms = late_max_ms > 0 ? late_max_ms : 1};
    genrng_seed(&g->rng, seed);
}

static double clampd(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

void genev_next(genev_t *g, int64_t time_ms, genev_event_t *ev)
{
    genrng_t *r = &g->rng;
    /* Always the same draws, in this order (see genev.h). */
    double u_kind = genrng_double(r);
    uint64_t late_by = 1 + genrng_below(r, (uint64_t)g->late_max_ms);
    const char *page = page_pick(genrng_double(r));
    const char *country = country_pick(genrng_below(r, country_total()));
    double uu = genrng_double(r);
    uint64_t user = (uint64_t)(uu * uu * NUSERS); /* regulars: low ids are frequent */
    double b1 = genrng_double(r), b2 = genrng_double(r);
    double m1 = genrng_double(r), m2 = genrng_double(r);
    bool half_ms = genrng_double(r) < 0.02;
    uint64_t variant = genrng_next(r);

    long long bytes = llround(clampd(exp(log(4000.0) + 1.4 * normal(b1, b2)), 120, 1048576));
    long long ms = llround(clampd(exp(log(45.0) + 0.9 * normal(m1, m2)), 1, 60000));

    ev->kind = GENEV_GOOD;
    ev->late = false;
    if (u_kind < g->bad_share) {
        ev->kind = (genev_kind_t)(GENEV_BAD_JSON + g->nbad++ % 4);
    } else if (u_kind < g->bad_share + g->late_share) {
        ev->late = true;
        time_ms -= (int64_t)late_by;
        if (time_ms < 0)
            time_ms = 0;
    }
    ev->time_ms = time_ms;
    ev->keylen = (size_t)snprintf(ev->key, sizeof ev->key, "u%llu", (unsigned long long)user);

    char ts[48];
    format_ts(g->fmt, time_ms, ts, sizeof ts);
    char msbuf[32];
    snprintf(msbuf, sizeof msbuf, half_ms ? "%lld.5" : "%lld", ms);
    static const char *const bad_times[] = {"\"yesterday\"", "\"n/a\"", "\"10:00 tomorrow\""};

    int n;
    char *p = ev->payload;
    size_t cap = sizeof ev->payload;
    switch (ev->kind) {
    case GENEV_GOOD:
    case GENEV_BAD_JSON: /* a good event, cut below */
    case GENEV_BAD_TIME:
        n = snprintf(p, cap,
                     "{\"ts\":%s,\"page\":\"%s\",\"country\":\"%s\",\"user\":\"%s\","
                     "\"bytes\":%lld,\"ms\":%s}",
                     ev->kind == GENEV_BAD_TIME ? bad_times[variant % NELEM(bad_times)] : ts, page,
                     country, ev->key, bytes, msbuf);
        break;
    case GENEV_BAD_NO_TIME:
        n = snprintf(p, cap,
                     "{\"page\":\"%s\",\"country\":\"%s\",\"user\":\"%s\","
                     "\"bytes\":%lld,\"ms\":%s}",
                     page, country, ev->key, bytes, msbuf);
        break;
    case GENEV_BAD_NOT_OBJECT:
    default:
        switch (variant % 4) {
        case 0: n = snprintf(p, cap, "[%s,\"%s\"]", ts, page); break;
        case 1: n = snprintf(p, cap, "\"%s\"", page); break;
        case 2: n = snprintf(p, cap, "%lld", bytes); break;
        default: n = snprintf(p, cap, "null"); break;
        }
        break;
    }
    /* Every field above is bounded (paths < 40, numbers < 21 digits), so the
   * payload always fits; n is checked anyway. */
    ev->len = n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
    if (ev->kind == GENEV_BAD_JSON) /* keep 1..len-1 bytes: "{" is never closed */
        ev->len = 1 + (size_t)((variant >> 8) % (ev->len - 1));
    ev->payload[ev->len] = '\0';
}
