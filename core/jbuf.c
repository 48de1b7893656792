/* jbuf.c - JSON writing into a growable buffer (see jbuf.h).
 * Pure; any thread, one buffer per caller. */
#include "core/jbuf.h"
#include "core/strutil.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void jb_init(jbuf *b)
{
    *b = (jbuf){0};
}

void jb_free(jbuf *b)
{
    free(b->p);
    *b = (jbuf){0};
}

/* Room for n more bytes plus a NUL. */
static bool reserve(jbuf *b, size_t n)
{
    if (b->oom)
        return false;
    if (n < b->cap - b->len)
        return true;
    if (n > SIZE_MAX / 2 - b->len) {
        b->oom = true;
        return false;
    }
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap - b->len <= n)
        ncap *= 2;
    char *np = realloc(b->p, ncap);
    if (!np) {
        b->oom = true;
        return false;
    }
    b->p = np;
    b->cap = ncap;
    return true;
}

void jb_raw(jbuf *b, const char *s, size_t len)
{
    if (!reserve(b, len))
        return;
    if (len)
        memcpy(b->p + b->len, s, len);
    b->len += len;
    b->p[b->len] = '\0';
}

void jb_lit(jbuf *b, const char *s)
{
    jb_raw(b, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when the bytes there
 * are not one (overlong forms, surrogates and code points past U+10FFFF
 * are invalid, as RFC 3629 says). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return len;
}

size_t jb_utf8_len(const char *s, size_t n)
{
    return utf8_seq((const unsigned char *)s, n);
}

void jb_str(jbuf *b, const char *str, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    jb_raw(b, "\"", 1);
    size_t i = 0;
    while (i < len) {
        /* copy the longest run that needs no escaping in one go */
        size_t run = i;
        while (run < len && s[run] >= 0x20 && s[run] < 0x80 && s[run] != '"' && s[run] != '\\')
            run++;
        if (run > i) {
            jb_raw(b, (const char *)s + i, run - i);
            i = run;
            continue;
        }
        unsigned char c = s[i];
        if (c >= 0x80) {
            size_t n = utf8_seq(s + i, len - i);
            if (n) {
                jb_raw(b, (const char *)s + i, n);
                i += n;
            } else {
                jb_raw(b, "\\ufffd", 6);
                i++;
            }
            continue;
        }
        char esc[6] = {'\\', 0};
        size_t elen = 2;
        switch (c) {
        case '"':  esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
        }
        jb_raw(b, esc, elen);
        i++;
    }
    jb_raw(b, "\"", 1);
}

void jb_cstr(jbuf *b, const char *s)
{
    if (s)
        jb_str(b, s, strlen(s));
    else
        jb_raw(b, "null", 4);
}

void jb_int(jbuf *b, int64_t v)
{
    char buf[24];
    int n = snprintf(buf, sizeof(buf), "%" PRId64, v);
    jb_raw(b, buf, (size_t)n);
}

void jb_num(jbuf *b, double v)
{
    if (!isfinite(v)) {
        jb_raw(b, "null", 4);
        return;
    }
    char buf[32];
    jb_raw(b, buf, str_number(v, buf));
}

char *jb_take(jbuf *b, size_t *len)
{
    if (b->oom || !reserve(b, 0)) {
        jb_free(b);
        return NULL;
    }
    char *p = b->p;
    if (len)
        *len = b->len;
    *b = (jbuf){0};
    return p;
}

void jb_error(jbuf *b, int status, const char *msg, size_t len)
{
    jb_lit(b, "{\"error\":{\"status\":");
    jb_int(b, status);
    jb_lit(b, ",\"message\":");
    jb_str(b, msg, len);
    jb_lit(b, "}}");
}
