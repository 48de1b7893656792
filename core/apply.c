/* apply.c - applying one decoded event to a view table.
 * Runs on whichever thread owns the table (speed thread, recovery, batch). */
#include "core/event.h"

#include <errno.h>

#include "core/agg.h"
#include "core/expr.h"
#include "core/vtable.h"

int event_apply(const view_def *v, vtable *t, int64_t ts_ms, const field_value *vals,
                event_decoder *d)
{
    dimval dims[64];
    for (size_t i = 0; i < v->ndims; i++) {
        const field_value *fv = &vals[v->dim_idx[i]];
        if (fv->kind == FV_MISSING || fv->kind == FV_NULL)
            dims[i] = (dimval){.s = NULL, .len = 0, .null = true};
        else
            dims[i] = (dimval){.s = fv->str, .len = (uint32_t)fv->len, .null = false};
    }
    int64_t bucket = gran_floor(v->gran, floor_div(ts_ms, 1000));
    void *row = vtable_upsert(t, bucket, dims);
    if (!row)
        return -ENOMEM;
    const agg_layout *l = v->layout;
    for (size_t m = 0; m < l->n; m++) {
        const metric_def *md = &v->metrics[m];
        if (md->where_expr) {
            expr_scratch *sc = event_decoder_scratch(d);
            expr_val keep;
            expr_eval(md->where_expr, vals, sc, &keep);
            if (sc->oom)
                return -ENOMEM;
            if (!expr_true(&keep))
                continue;
        }
        if (l->slot[m].ops->add(agg_state(l, row, m), &l->slot[m].params,
                                md->field_idx >= 0 ? &vals[md->field_idx] : NULL) < 0)
            return -ENOMEM;   /* a sketch could not grow */
    }
    return 0;
}
