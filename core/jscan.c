/* jscan.c - strict JSON validation without a tree (see jscan.h).
 *
 * Runs on whichever thread decodes events (the speed consumer, the batch
 * recompute, recovery); no shared state, no locks, no allocation.
 *
 * Speed matters here more than anywhere else in the daemon: every byte of
 * every event passes through jscan_string or jscan_value. Strings, the bulk
 * of a typical event, are skipped 8 bytes at a time (SWAR) until a byte
 * that needs a look: a quote, a backslash, a control character or a
 * non-ASCII byte. Containers are tracked with one bit per level, so deep
 * input costs no stack.
 */
#include "core/jscan.h"

#include <stdio.h>
#include <string.h>

/* Bytes inside a string that need no attention (0x20..0x7f except '"' and
 * '\\'). */
static const unsigned char plain[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

/* Nonzero if one of the 8 bytes of w (little-endian) is '"', '\\', < 0x20
 * or >= 0x80: bit 7 of each such byte is set. The has-zero-byte tests can
 * also flag a byte above (after) a true hit, never below one, so the lowest
 * set bit marks the first byte that needs a look. */
static inline uint64_t attention8(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    uint64_t q = w ^ (ones * '"'), bs = w ^ (ones * '\\');
    return (((q - ones) & ~q) | ((bs - ones) & ~bs) | ((w - ones * 0x20) & ~w) | w) & high;
}

/* Length of the valid UTF-8 sequence starting with the non-ASCII byte at
 * b[p], or 0 if it is invalid (overlong, surrogate, beyond U+10FFFF, bad or
 * missing continuation bytes). */
static size_t utf8_seq(const unsigned char *b, size_t len, size_t p)
{
    unsigned c = b[p], lo = 0x80, hi = 0xbf;
    size_t n;
    if (c < 0xc2)
        return 0;
    if (c < 0xe0) {
        n = 2;
    } else if (c < 0xf0) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0;   /* overlong */
        else if (c == 0xed)
            hi = 0x9f;   /* UTF-16 surrogates */
    } else if (c < 0xf5) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90;   /* overlong */
        else if (c == 0xf4)
            hi = 0x8f;   /* beyond U+10FFFF */
    } else {
        return 0;
    }
    if (len - p < n)
        return 0;
    if (b[p + 1] < lo || b[p + 1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (b[p + i] < 0x80 || b[p + i] > 0xbf)
            return 0;
    return n;
}

static inline int hexval(unsigned c)
{
    if (c - '0' < 10)
        return (int)(c - '0');
    c |= 0x20;
    if (c - 'a' < 6)
        return (int)(c - 'a' + 10);
    return -1;
}

/* Four hex digits at b[p..p+4): 0 and *cp, -1 if the input ends first, -2
 * if one is not a hex digit. */
static int hex4(const unsigned char *b, size_t len, size_t p, unsigned *cp)
{
    unsigned v = 0;
    for (size_t i = 0; i < 4; i++) {
        if (p + i >= len)
            return -1;
        int h = hexval(b[p + i]);
        if (h < 0)
            return -2;
        v = v << 4 | (unsigned)h;
    }
    *cp = v;
    return 0;
}

static int fail(jscan_error *e, jscan_err err, size_t pos)
{
    e->err = err;
    e->pos = pos;
    return -1;
}

/* A \u escape at b[q] ('\\'); returns the offset just past it (and its low
 * surrogate partner if any), or 0 with *e set. */
static size_t scan_u_escape(const unsigned char *b, size_t len, size_t q, size_t start,
                            jscan_error *e)
{
    unsigned cp, lo;
    int r = hex4(b, len, q + 2, &cp);
    if (r == -1) {
        fail(e, JS_UNTERMINATED_STRING, start);
        return 0;
    }
    if (r == -2) {
        fail(e, JS_BAD_UNICODE_ESCAPE, q);
        return 0;
    }
    if (cp >= 0xdc00 && cp <= 0xdfff) {
        fail(e, JS_BAD_SURROGATE, q);
        return 0;
    }
    if (cp < 0xd800 || cp > 0xdbff)
        return q + 6;
    /* A high surrogate must be followed at once by a low one. */
    for (size_t i = 6; i < 8; i++) {
        if (q + i >= len) {
            fail(e, JS_UNTERMINATED_STRING, start);
            return 0;
        }
        if (b[q + i] != "\\u"[i - 6]) {
            fail(e, JS_BAD_SURROGATE, q);
            return 0;
        }
    }
    r = hex4(b, len, q + 8, &lo);
    if (r == -1) {
        fail(e, JS_UNTERMINATED_STRING, start);
        return 0;
    }
    if (r == -2) {
        fail(e, JS_BAD_UNICODE_ESCAPE, q + 6);
        return 0;
    }
    if (lo < 0xdc00 || lo > 0xdfff) {
        fail(e, JS_BAD_SURROGATE, q);
        return 0;
    }
    return q + 12;
}

int jscan_string(const unsigned char *b, size_t len, size_t *pos, bool *escaped, jscan_error *e)
{
    size_t start = *pos, p = start + 1;
    bool esc = false;
    for (;;) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        while (p + 8 <= len) {
            uint64_t w, m;
            memcpy(&w, b + p, 8);
            m = attention8(w);
            if (m) {
                /* The lowest flagged byte is always a true hit (false
                 * positives only appear above a true one). */
                p += (size_t)__builtin_ctzll(m) >> 3;
                break;
            }
            p += 8;
        }
#endif
        while (p < len && plain[b[p]])
            p++;
        if (p >= len)
            return fail(e, JS_UNTERMINATED_STRING, start);
        unsigned c = b[p];
        if (c == '"') {
            *pos = p + 1;
            *escaped = esc;
            return 0;
        }
        if (c >= 0x80) {
            size_t n = utf8_seq(b, len, p);
            if (!n)
                return fail(e, JS_BAD_UTF8, p);
            p += n;
        } else if (c == '\\') {
            esc = true;
            if (p + 1 >= len)
                return fail(e, JS_UNTERMINATED_STRING, start);
            switch (b[p + 1]) {
            case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
                p += 2;
                break;
            case 'u':
                p = scan_u_escape(b, len, p, start, e);
                if (!p)
                    return -1;
                break;
            default:
                return fail(e, JS_BAD_ESCAPE, p);
            }
        } else {
            return fail(e, JS_CONTROL_CHAR, p);
        }
    }
}

static inline bool isdig(unsigned c)
{
    return c - '0' < 10;
}

int jscan_number(const unsigned char *b, size_t len, size_t *pos, jscan_error *e)
{
    size_t s = *pos, p = s;
    if (b[p] == '-')
        p++;
    if (p >= len || !isdig(b[p]))
        return fail(e, JS_BAD_NUMBER, s);
    if (b[p] == '0') {
        p++;
        if (p < len && isdig(b[p]))
            return fail(e, JS_BAD_NUMBER, s);   /* leading zero */
    } else {
        while (p < len && isdig(b[p]))
            p++;
    }
    if (p < len && b[p] == '.') {
        p++;
        if (p >= len || !isdig(b[p]))
            return fail(e, JS_BAD_NUMBER, s);
        while (p < len && isdig(b[p]))
            p++;
    }
    if (p < len && (b[p] == 'e' || b[p] == 'E')) {
        p++;
        if (p < len && (b[p] == '+' || b[p] == '-'))
            p++;
        if (p >= len || !isdig(b[p]))
            return fail(e, JS_BAD_NUMBER, s);
        while (p < len && isdig(b[p]))
            p++;
    }
    *pos = p;
    return 0;
}

static int scan_literal(const unsigned char *b, size_t len, size_t *pos, const char *lit,
                        size_t n, jscan_error *e)
{
    size_t p = *pos, avail = len - p < n ? len - p : n;
    if (memcmp(b + p, lit, avail) != 0)
        return fail(e, JS_BAD_LITERAL, p);
    if (avail < n)
        return fail(e, JS_UNEXPECTED_END, len);
    *pos = p + n;
    return 0;
}

int jscan_value(const unsigned char *b, size_t len, size_t *pos, unsigned depth, jscan_error *e)
{
    /* Bit i set: the i-th container opened by this call is an object.
     * Bits are written when a level opens, before they are read, so the
     * array needs no clearing (scalars, the common case, never touch it). */
    uint64_t objbits[JSCAN_MAX_DEPTH / 64];
    unsigned d = 0;
    size_t p = *pos;
    bool esc;

value:
    if (p >= len)
        return fail(e, JS_UNEXPECTED_END, len);
    switch (b[p]) {
    case '{':
        if (depth + d >= JSCAN_MAX_DEPTH)
            return fail(e, JS_TOO_DEEP, p);
        if (d % 64 == 0)
            objbits[d / 64] = 0;
        objbits[d / 64] |= 1ull << (d % 64);
        d++;
        p = jscan_ws(b, len, p + 1);
        if (p < len && b[p] == '}') {
            p++;
            d--;
            goto after;
        }
        goto key;
    case '[':
        if (depth + d >= JSCAN_MAX_DEPTH)
            return fail(e, JS_TOO_DEEP, p);
        if (d % 64 == 0)
            objbits[d / 64] = 0;
        objbits[d / 64] &= ~(1ull << (d % 64));
        d++;
        p = jscan_ws(b, len, p + 1);
        if (p < len && b[p] == ']') {
            p++;
            d--;
            goto after;
        }
        goto value;
    case '"':
        if (jscan_string(b, len, &p, &esc, e))
            return -1;
        goto after;
    case '-': case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
        if (jscan_number(b, len, &p, e))
            return -1;
        goto after;
    case 't':
        if (scan_literal(b, len, &p, "true", 4, e))
            return -1;
        goto after;
    case 'f':
        if (scan_literal(b, len, &p, "false", 5, e))
            return -1;
        goto after;
    case 'n':
        if (scan_literal(b, len, &p, "null", 4, e))
            return -1;
        goto after;
    default:
        return fail(e, JS_UNEXPECTED_CHAR, p);
    }

key:
    if (p >= len)
        return fail(e, JS_UNEXPECTED_END, len);
    if (b[p] != '"')
        return fail(e, JS_UNEXPECTED_CHAR, p);
    if (jscan_string(b, len, &p, &esc, e))
        return -1;
    p = jscan_ws(b, len, p);
    if (p >= len)
        return fail(e, JS_UNEXPECTED_END, len);
    if (b[p] != ':')
        return fail(e, JS_UNEXPECTED_CHAR, p);
    p = jscan_ws(b, len, p + 1);
    goto value;

after:
    if (d == 0) {
        *pos = p;
        return 0;
    }
    p = jscan_ws(b, len, p);
    if (p >= len)
        return fail(e, JS_UNEXPECTED_END, len);
    {
        bool obj = objbits[(d - 1) / 64] >> ((d - 1) % 64) & 1;
        if (b[p] == ',') {
            p = jscan_ws(b, len, p + 1);
            if (obj)
                goto key;
            goto value;
        }
        if (b[p] == (obj ? '}' : ']')) {
            p++;
            d--;
            goto after;
        }
    }
    return fail(e, JS_UNEXPECTED_CHAR, p);
}

static size_t put_utf8(unsigned char *d, unsigned cp)
{
    if (cp < 0x80) {
        d[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (unsigned char)(0xc0 | cp >> 6);
        d[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (unsigned char)(0xe0 | cp >> 12);
        d[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        d[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    d[0] = (unsigned char)(0xf0 | cp >> 18);
    d[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
    d[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
    d[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Input already validated by jscan_string: every escape is complete. */
size_t jscan_unescape(const unsigned char *src, size_t n, unsigned char *dst)
{
    size_t i = 0, o = 0;
    while (i < n) {
        const unsigned char *bs = memchr(src + i, '\\', n - i);
        size_t run = bs ? (size_t)(bs - (src + i)) : n - i;
        memcpy(dst + o, src + i, run);
        i += run;
        o += run;
        if (!bs)
            break;
        unsigned c = src[i + 1], cp = 0;
        i += 2;
        switch (c) {
        case 'b': dst[o++] = '\b'; break;
        case 'f': dst[o++] = '\f'; break;
        case 'n': dst[o++] = '\n'; break;
        case 'r': dst[o++] = '\r'; break;
        case 't': dst[o++] = '\t'; break;
        case 'u':
            hex4(src, n, i, &cp);
            i += 4;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                unsigned lo = 0;
                hex4(src, n, i + 2, &lo);
                i += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            o += put_utf8(dst + o, cp);
            break;
        default:   /* '"', '\\', '/' stand for themselves */
            dst[o++] = (unsigned char)c;
            break;
        }
    }
    return o;
}

void jscan_error_format(const jscan_error *e, const unsigned char *b, size_t len, char *out,
                        size_t outsz)
{
    size_t at = e->pos;
    unsigned c = at < len ? b[at] : 0;
    switch (e->err) {
    case JS_UNEXPECTED_CHAR:
    case JS_TRAILING: {
        const char *what = e->err == JS_TRAILING ? "trailing" : "unexpected";
        if (c > 0x20 && c < 0x7f)
            snprintf(out, outsz, "%s character '%c' at byte %zu", what, (int)c, at);
        else
            snprintf(out, outsz, "%s byte 0x%02x at byte %zu", what, c, at);
        break;
    }
    case JS_UNEXPECTED_END:
        snprintf(out, outsz, "unexpected end of input at byte %zu", at);
        break;
    case JS_UNTERMINATED_STRING:
        snprintf(out, outsz, "unterminated string at byte %zu", at);
        break;
    case JS_BAD_UTF8:
        snprintf(out, outsz, "invalid UTF-8 at byte %zu", at);
        break;
    case JS_CONTROL_CHAR:
        snprintf(out, outsz, "control character 0x%02x in string at byte %zu", c, at);
        break;
    case JS_BAD_ESCAPE:
        snprintf(out, outsz, "invalid escape at byte %zu", at);
        break;
    case JS_BAD_UNICODE_ESCAPE:
        snprintf(out, outsz, "invalid \\u escape at byte %zu", at);
        break;
    case JS_BAD_SURROGATE:
        snprintf(out, outsz, "unpaired UTF-16 surrogate at byte %zu", at);
        break;
    case JS_BAD_NUMBER:
        snprintf(out, outsz, "invalid number at byte %zu", at);
        break;
    case JS_BAD_LITERAL:
        snprintf(out, outsz, "invalid literal at byte %zu", at);
        break;
    case JS_TOO_DEEP:
        snprintf(out, outsz, "nested deeper than %d levels at byte %zu", JSCAN_MAX_DEPTH, at);
        break;
    default:
        snprintf(out, outsz, "invalid JSON at byte %zu", at);
        break;
    }
}
