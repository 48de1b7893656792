/* aggtest.h - helpers for unit tests that fill view tables by hand: a row
 * layout from a list of metric types, and adding values to a row's states
 * the way core/apply.c does. */
#pragma once
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/agg.h"

/* The layout of metrics of the given types, e.g. layout_of(3, MT_COUNT,
 * MT_SUM, MT_MAX). Free with free(). */
static inline agg_layout *layout_of(size_t n, ...)
{
    metric_def defs[64];
    va_list ap;
    va_start(ap, n);
    for (size_t i = 0; i < n && i < 64; i++)
        defs[i] = (metric_def){.type = (metric_type)va_arg(ap, int), .field_idx = -1};
    va_end(ap);
    return agg_layout_new(defs, NULL, n);
}

/* Adds a number to state i of row (a count state counts one event). */
static inline void row_add(const agg_layout *l, void *row, size_t i, double v)
{
    field_value fv = {.kind = FV_NUMBER, .num = v, .str = "", .len = 0};
    l->slot[i].ops->add(agg_state(l, row, i), &l->slot[i].params, &fv);
}

/* The value of state i of a row as a double (count and integral sums too);
 * NAN when null. */
static inline double row_value(const agg_layout *l, const void *row, size_t i)
{
    agg_value v = agg_read(l, i, row, &agg_render_default);
    return v.kind == AV_NULL ? NAN : v.kind == AV_INT ? (double)v.i : v.d;
}

/* The count state of a row (slot i must be a count). */
static inline int64_t row_count(const agg_layout *l, const void *row, size_t i)
{
    int64_t n;
    memcpy(&n, agg_cstate(l, row, i), sizeof(n));
    return n;
}
