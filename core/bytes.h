/* bytes.h - binary encoding helpers: a growable write buffer and a bounded
 * reader, with LEB128 varints, zigzag for signed values and fixed 8-byte
 * little-endian words. The one home of varints in lambdad (segments,
 * aggregator states). Errors are sticky: after a failed allocation every
 * write is a no-op (w->oom), after a short or malformed read every read
 * returns 0 (r->bad), so callers check once at the end. One buffer per
 * thread; no locks.
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A double's IEEE 754 bits, and back (memcpy: no aliasing tricks). */
static inline uint64_t f64_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof(u));
    return u;
}
static inline double f64_of_bits(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof(d));
    return d;
}

typedef struct {
    unsigned char *p;
    size_t len, cap;
    bool oom;
} bytes_w;

typedef struct {
    const unsigned char *p, *end;
    bool bad;
} bytes_r;

void bw_free(bytes_w *w);                       /* accepts a zeroed buffer */
void bw_put(bytes_w *w, const void *src, size_t n);
void bw_varint(bytes_w *w, uint64_t v);
void bw_svarint(bytes_w *w, int64_t v);         /* zigzag, then varint */
void bw_u64(bytes_w *w, uint64_t v);            /* 8 bytes, little-endian */
void bw_f64(bytes_w *w, double v);              /* the double's bits as bw_u64 */
/* A column of n integers, frame of reference and byte planes: svarint
 * base (the smallest value), one byte W (the bytes of the largest
 * v[i] - base, at least min_width, at most 8), then W planes of n bytes,
 * plane k holding byte k (little end first) of every v[i] - base. Planes
 * of similar bytes are what zstd compresses best; with min_width 0, equal
 * values take no plane at all. */
void bw_ints(bytes_w *w, const int64_t *v, size_t n, unsigned min_width);

/* p may be NULL when len is 0 (NULL + 0 is undefined in C, so it is
 * not computed). */
static inline bytes_r br_init(const void *p, size_t len)
{
    const unsigned char *b = p;
    return (bytes_r){.p = b, .end = len ? b + len : b, .bad = false};
}
uint64_t br_varint(bytes_r *r);
int64_t br_svarint(bytes_r *r);
uint64_t br_u64(bytes_r *r);
double br_f64(bytes_r *r);
/* Reads a bw_ints column of n values into the int64 at dst + i * stride
 * (i < n), so a column decodes straight into rows of states. Values are
 * base + offset in two's complement (wrapping), as bw_ints wrote them. */
void br_ints(bytes_r *r, void *dst, size_t stride, size_t n);
/* n bytes in place (NULL and r->bad when fewer are left). */
const unsigned char *br_take(bytes_r *r, size_t n);
static inline size_t br_left(const bytes_r *r) { return (size_t)(r->end - r->p); }

static inline uint64_t zigzag(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }
static inline int64_t unzigzag(uint64_t v) { return (int64_t)(v >> 1) ^ -(int64_t)(v & 1); }
