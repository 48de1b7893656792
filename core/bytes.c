/* bytes.c - binary encoding helpers (see bytes.h). Pure; any thread. */
#include "core/bytes.h"

#include <stdlib.h>
#include <string.h>

void bw_free(bytes_w *w)
{
    free(w->p);
    *w = (bytes_w){0};
}

static bool reserve(bytes_w *w, size_t n)
{
    if (w->oom)
        return false;
    if (w->cap - w->len >= n)
        return true;
    size_t ncap = w->cap ? w->cap * 2 : 256;
    while (ncap - w->len < n)
        ncap *= 2;
    unsigned char *np = realloc(w->p, ncap);
    if (!np) {
        w->oom = true;
        return false;
    }
    w->p = np;
    w->cap = ncap;
    return true;
}

void bw_put(bytes_w *w, const void *src, size_t n)
{
    if (n == 0 || !reserve(w, n))
        return;
    memcpy(w->p + w->len, src, n);
    w->len += n;
}

void bw_varint(bytes_w *w, uint64_t v)
{
    unsigned char tmp[10];
    size_t n = 0;
    do {
        tmp[n] = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v)
            tmp[n] |= 0x80;
        n++;
    } while (v);
    bw_put(w, tmp, n);
}

void bw_svarint(bytes_w *w, int64_t v)
{
    bw_varint(w, zigzag(v));
}

void bw_u64(bytes_w *w, uint64_t v)
{
    unsigned char b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    bw_put(w, b, 8);
}

void bw_f64(bytes_w *w, double v)
{
    bw_u64(w, f64_bits(v));
}

void bw_ints(bytes_w *w, const int64_t *v, size_t n, unsigned min_width)
{
    int64_t lo = n ? v[0] : 0, hi = lo;
    for (size_t i = 1; i < n; i++) {
        lo = v[i] < lo ? v[i] : lo;
        hi = v[i] > hi ? v[i] : hi;
    }
    uint64_t range = (uint64_t)hi - (uint64_t)lo;
    unsigned char width = min_width < 8 ? (unsigned char)min_width : 8;
    while (width < 8 && (range >> (8 * width)) != 0)
        width++;
    bw_svarint(w, lo);
    bw_put(w, &width, 1);
    if (!reserve(w, n * width))
        return;
    for (unsigned k = 0; k < width; k++)
        for (size_t i = 0; i < n; i++)
            w->p[w->len++] = (unsigned char)(((uint64_t)v[i] - (uint64_t)lo) >> (8 * k));
}

void br_ints(bytes_r *r, void *dst, size_t stride, size_t n)
{
    uint64_t base = (uint64_t)br_svarint(r);
    const unsigned char *wp = br_take(r, 1);
    unsigned width = wp ? *wp : 0;
    const unsigned char *planes = NULL;
    if (width > 8 || (width && n > br_left(r) / width))
        r->bad = true;
    else
        planes = br_take(r, n * width);
    if (r->bad)
        base = 0, width = 0;
    /* plane by plane, each a sequential pass: base, then each byte added
     * at its place (wrapping, as the sum of the bytes would) */
    char *d = dst;
    for (size_t i = 0; i < n; i++) {
        uint64_t v = base + (width ? planes[i] : 0);
        memcpy(d + i * stride, &v, sizeof(v));
    }
    for (unsigned k = 1; k < width; k++) {
        const unsigned char *pl = planes + k * n;
        for (size_t i = 0; i < n; i++) {
            uint64_t v;
            memcpy(&v, d + i * stride, sizeof(v));
            v += (uint64_t)pl[i] << (8 * k);
            memcpy(d + i * stride, &v, sizeof(v));
        }
    }
}

uint64_t br_varint(bytes_r *r)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && !r->bad; shift += 7) {
        if (r->p >= r->end)
            break;
        unsigned char c = *r->p++;
        if (shift == 63 && c > 1)
            break;   /* more than 64 bits */
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80))
            return v;
    }
    r->bad = true;
    return 0;
}

int64_t br_svarint(bytes_r *r)
{
    return unzigzag(br_varint(r));
}

const unsigned char *br_take(bytes_r *r, size_t n)
{
    if (r->bad || br_left(r) < n) {
        r->bad = true;
        return NULL;
    }
    const unsigned char *p = r->p;
    r->p += n;
    return p;
}

uint64_t br_u64(bytes_r *r)
{
    const unsigned char *b = br_take(r, 8);
    uint64_t v = 0;
    for (int i = 0; b && i < 8; i++)
        v |= (uint64_t)b[i] << (8 * i);
    return v;
}

double br_f64(bytes_r *r)
{
    return f64_of_bits(br_u64(r));
}
