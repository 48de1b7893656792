/* cell.c - the mergeable aggregate cell (see cell.h). Pure; any thread. */
#include "core/cell.h"

#include <math.h>

void cell_count(cell *c)
{
    c->n++;
}

/* 2^53: every integer of smaller magnitude is exact in a double. */
#define EXACT_INT_LIMIT 9007199254740992.0

static void add_int(cell *c, int64_t v)
{
    int64_t r;
    if (__builtin_add_overflow(c->isum, v, &r))
        c->fsum += (double)v;   /* keep isum exact; the excess goes to the double */
    else
        c->isum = r;
}

void cell_add(cell *c, double v)
{
    if (c->n == 0) {
        c->min = v;
        c->max = v;
    } else {
        if (v < c->min) c->min = v;
        if (v > c->max) c->max = v;
    }
    c->n++;
    if (v == floor(v) && fabs(v) < EXACT_INT_LIMIT)
        add_int(c, (int64_t)v);
    else
        c->fsum += v;
}

void cell_merge(cell *dst, const cell *src)
{
    if (src->n == 0)
        return;
    if (dst->n == 0) {
        dst->min = src->min;
        dst->max = src->max;
    } else {
        if (src->min < dst->min) dst->min = src->min;
        if (src->max > dst->max) dst->max = src->max;
    }
    dst->n += src->n;
    add_int(dst, src->isum);
    dst->fsum += src->fsum;
}

double cell_sum(const cell *c)
{
    return (double)c->isum + c->fsum;
}

bool cell_sum_is_int(const cell *c, int64_t *out)
{
    if (c->fsum == 0) {
        *out = c->isum;
        return true;
    }
    double s = cell_sum(c);
    if (s == floor(s) && fabs(s) < EXACT_INT_LIMIT) {
        *out = (int64_t)s;
        return true;
    }
    return false;
}
