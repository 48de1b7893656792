/* xsum.h - exact, order-independent sums of doubles.
 *
 * A sum is a 192-bit two's complement fixed-point number with 64 fractional
 * bits: every double of magnitude below 2^80 (1.2e24) whose lowest set bit is at
 * least 2^-64 (every integer, every value with at most 19 decimal places of
 * a practical size) is added exactly, smaller fractions are rounded to the
 * nearest 2^-64 (half to even) when added. Integer additions are associative,
 * so a sum is the same bits whatever the order in which values and partial
 * sums were added: batch segments, speed tables and answers computed by
 * several instances agree exactly. 2^47 values below 2^80 still fit, so
 * in practice a sum never wraps (if it did, it would overflow as below); a
 * value of 2^80 or more cannot be kept exactly and turns the sum into the
 * *overflowed* state, which absorbs everything added to it and reads as
 * null. Reading it as a double rounds once
 * (half to even): the correctly rounded exact sum, what Python's
 * math.fsum() returns. Pure functions; any thread.
 */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "core/bytes.h"

typedef struct {
    uint64_t w[3];   /* little-endian words; the value is (w2:w1:w0) / 2^64 */
} xsum;

/* Values of this magnitude or more overflow a sum. */
#define XSUM_LIMIT 0x1p80

static inline void xsum_zero(xsum *s) { s->w[0] = s->w[1] = s->w[2] = 0; }
/* The overflowed state: -2^191 (-2^127 as a value), which no sum reaches
 * without overflowing first. */
static inline bool xsum_overflowed(const xsum *s)
{
    return s->w[0] == 0 && s->w[1] == 0 && s->w[2] == UINT64_C(1) << 63;
}
/* Adds v (finite); a value of magnitude XSUM_LIMIT or more overflows s. */
void xsum_add_double(xsum *s, double v);
void xsum_add(xsum *dst, const xsum *src);
/* The sum rounded to the nearest double (half to even); not for an
 * overflowed sum. */
double xsum_double(const xsum *s);
/* true, with the value, when the sum is an integer an int64 holds. */
bool xsum_int64(const xsum *s, int64_t *out);
int xsum_cmp(const xsum *a, const xsum *b);   /* -1, 0, 1 */

/* A compact canonical encoding (a few bytes for integer sums). */
void xsum_encode(const xsum *s, bytes_w *w);
void xsum_decode(xsum *s, bytes_r *r);   /* r->bad on malformed input */

/* Scaled integers, for columns of sums (core/segment.h): the fraction bits
 * a sum needs (0 for an integer, at most 64), the sum times 2^k as an
 * int64 (false when that is not exact or does not fit, or the sum
 * overflowed), and back. k is 0..64. */
int xsum_frac_bits(const xsum *s);
bool xsum_to_scaled(const xsum *s, int k, int64_t *x);
void xsum_from_scaled(xsum *s, int64_t x, int k);
