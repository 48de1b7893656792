/* cell.h - the mergeable aggregate behind every metric.
 *
 * One cell type serves count, sum, min, max and avg: it counts the values
 * it saw and keeps their sum, min and max. Merging is associative and
 * commutative, so batch views, speed views and time buckets combine with
 * the same code. Integral values (|v| < 2^53) are summed in an int64, so sums
 * of integers are exact in any merge order; other values go to a double.
 */
#pragma once
#include <stdint.h>
#include <stdbool.h>

typedef struct {
    int64_t n;      /* events (count) or numeric values seen */
    int64_t isum;   /* exact sum of integral values */
    double fsum;    /* sum of the other values (and of isum overflow) */
    double min, max;
} cell;

static inline void cell_init(cell *c) { c->n = 0; c->isum = 0; c->fsum = 0; c->min = 0; c->max = 0; }
void cell_count(cell *c);
void cell_add(cell *c, double v);
void cell_merge(cell *dst, const cell *src);
double cell_sum(const cell *c);
/* true when the sum is an integer that an int64 holds exactly */
bool cell_sum_is_int(const cell *c, int64_t *out);
