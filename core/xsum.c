/* xsum.c - exact sums of doubles in 192-bit fixed point (see xsum.h). */
#include "core/xsum.h"

#include <math.h>
#include <string.h>

static void negate(uint64_t w[3])
{
    uint64_t carry = 1;
    for (int i = 0; i < 3; i++) {
        w[i] = ~w[i] + carry;
        carry = carry && w[i] == 0;
    }
}

/* d += s; false when the signed result does not fit (d is then wrapped). */
static bool add3(uint64_t d[3], const uint64_t s[3])
{
    bool neg_d = d[2] >> 63, neg_s = s[2] >> 63;
    uint64_t carry = 0;
    for (int i = 0; i < 3; i++) {
        uint64_t a = d[i], t = a + s[i];
        uint64_t c1 = t < a;
        d[i] = t + carry;
        carry = c1 | (d[i] < t);
    }
    return neg_d != neg_s || (bool)(d[2] >> 63) == neg_d;
}

static void set_overflowed(xsum *s)
{
    s->w[0] = s->w[1] = 0;
    s->w[2] = UINT64_C(1) << 63;
}

void xsum_add_double(xsum *s, double v)
{
    if (xsum_overflowed(s))
        return;
    if (!(fabs(v) < XSUM_LIMIT)) {
        set_overflowed(s);
        return;
    }
    if (v == 0)
        return;
    uint64_t u;
    memcpy(&u, &v, 8);
    int exp = (int)((u >> 52) & 0x7ff);
    uint64_t m = u & ((UINT64_C(1) << 52) - 1);
    int e;   /* |v| = m * 2^e */
    if (exp == 0) {
        e = -1074;
    } else {
        m |= UINT64_C(1) << 52;
        e = exp - 1075;
    }
    int shift = e + 64;   /* the fixed-point value is m * 2^shift */
    uint64_t f[3] = {0, 0, 0};
    if (shift >= 0) {
        /* shift <= 91 because |v| < 2^80, and m < 2^53: no spill past f[2] */
        int word = shift / 64, bit = shift % 64;
        f[word] = m << bit;
        if (bit && word < 2)
            f[word + 1] = m >> (64 - bit);
    } else if (-shift < 64) {
        int k = -shift;
        uint64_t q = m >> k, rem = m & ((UINT64_C(1) << k) - 1), half = UINT64_C(1) << (k - 1);
        if (rem > half || (rem == half && (q & 1)))
            q++;
        f[0] = q;
    }   /* else: below half of 2^-64, rounds to zero */
    if (u >> 63)
        negate(f);
    if (!add3(s->w, f) || xsum_overflowed(s))
        set_overflowed(s);
}

void xsum_add(xsum *dst, const xsum *src)
{
    if (xsum_overflowed(dst))
        return;
    if (xsum_overflowed(src) || !add3(dst->w, src->w) || xsum_overflowed(dst))
        set_overflowed(dst);
}

/* The low 64 bits of m >> sh (sh < 192). */
static uint64_t shr64(const uint64_t m[3], unsigned sh)
{
    unsigned word = sh / 64, bit = sh % 64;
    uint64_t lo = m[word] >> bit;
    if (bit && word < 2)
        lo |= m[word + 1] << (64 - bit);
    return lo;
}

/* Any bit of m below bit n set? */
static bool any_below(const uint64_t m[3], unsigned n)
{
    for (unsigned i = 0; i < 3 && n > 0; i++, n = n > 64 ? n - 64 : 0) {
        uint64_t mask = n >= 64 ? ~UINT64_C(0) : (UINT64_C(1) << n) - 1;
        if (m[i] & mask)
            return true;
    }
    return false;
}

double xsum_double(const xsum *s)
{
    uint64_t m[3] = {s->w[0], s->w[1], s->w[2]};
    bool neg = m[2] >> 63;
    if (neg)
        negate(m);
    int top = -1;   /* highest set bit */
    for (int i = 2; i >= 0 && top < 0; i--)
        if (m[i])
            top = i * 64 + 63 - __builtin_clzll(m[i]);
    if (top < 0)
        return 0.0;
    double r;
    if (top <= 52) {
        r = ldexp((double)m[0], -64);   /* 53 bits or fewer: exact */
    } else {
        unsigned sh = (unsigned)top - 52;
        uint64_t q = shr64(m, sh);   /* the top 53 bits */
        bool round = (shr64(m, sh - 1) & 1) != 0;
        bool sticky = any_below(m, sh - 1);
        if (round && (sticky || (q & 1)))
            q++;   /* q may become 2^53: still exact as a double */
        r = ldexp((double)q, (int)sh - 64);
    }
    return neg ? -r : r;
}

bool xsum_int64(const xsum *s, int64_t *out)
{
    if (s->w[0] != 0 || xsum_overflowed(s))
        return false;
    uint64_t sign_ext = (s->w[1] >> 63) ? ~UINT64_C(0) : 0;
    if (s->w[2] != sign_ext)
        return false;
    *out = (int64_t)s->w[1];
    return true;
}

int xsum_cmp(const xsum *a, const xsum *b)
{
    int64_t ha = (int64_t)a->w[2], hb = (int64_t)b->w[2];
    if (ha != hb)
        return ha < hb ? -1 : 1;
    for (int i = 1; i >= 0; i--)
        if (a->w[i] != b->w[i])
            return a->w[i] < b->w[i] ? -1 : 1;
    return 0;
}

/* Encoding: varint(fraction word), then either a 0 byte and the integer
 * part as a zigzag varint (when it fits an int64), or a 1 byte and both
 * integer words as 8-byte words. */
void xsum_encode(const xsum *s, bytes_w *w)
{
    bw_varint(w, s->w[0]);
    uint64_t sign_ext = (s->w[1] >> 63) ? ~UINT64_C(0) : 0;
    if (s->w[2] == sign_ext) {
        bw_varint(w, 0);
        bw_svarint(w, (int64_t)s->w[1]);
    } else {
        bw_varint(w, 1);
        bw_u64(w, s->w[1]);
        bw_u64(w, s->w[2]);
    }
}

void xsum_decode(xsum *s, bytes_r *r)
{
    s->w[0] = br_varint(r);
    uint64_t form = br_varint(r);
    if (form == 0) {
        int64_t i = br_svarint(r);
        s->w[1] = (uint64_t)i;
        s->w[2] = i < 0 ? ~UINT64_C(0) : 0;
    } else if (form == 1) {
        s->w[1] = br_u64(r);
        s->w[2] = br_u64(r);
    } else {
        r->bad = true;
    }
    if (r->bad)
        xsum_zero(s);
}

int xsum_frac_bits(const xsum *s)
{
    return s->w[0] ? 64 - __builtin_ctzll(s->w[0]) : 0;
}

bool xsum_to_scaled(const xsum *s, int k, int64_t *x)
{
    uint64_t sign_ext = (s->w[1] >> 63) ? ~UINT64_C(0) : 0;
    if (k < 0 || k > 64 || s->w[2] != sign_ext || xsum_frac_bits(s) > k)
        return false;   /* (the overflowed state fails the first test) */
    /* the value times 2^64 fits 128 bits; shift the unused fraction out */
    __int128 v = (__int128)(((unsigned __int128)s->w[1] << 64) | s->w[0]);
    __int128 scaled = v >> (64 - k);   /* exact: those bits are zero */
    if (scaled < INT64_MIN || scaled > INT64_MAX)
        return false;
    *x = (int64_t)scaled;
    return true;
}

void xsum_from_scaled(xsum *s, int64_t x, int k)
{
    unsigned __int128 v = (unsigned __int128)(__int128)x << (64 - k);
    s->w[0] = (uint64_t)v;
    s->w[1] = (uint64_t)(v >> 64);
    s->w[2] = x < 0 ? ~UINT64_C(0) : 0;
}
