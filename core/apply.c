/* apply.c - applying one decoded event to a view table.
 * Runs on whichever thread owns the table (speed thread, recovery, batch). */
#include "core/event.h"

#include <errno.h>
#include <math.h>

int event_apply(const view_def *v, vtable *t, int64_t ts_ms, const field_value *vals)
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
    cell *cells = vtable_upsert(t, bucket, dims);
    if (!cells)
        return -ENOMEM;
    for (size_t m = 0; m < v->nmetrics; m++) {
        const metric_def *md = &v->metrics[m];
        if (md->type == MT_COUNT) {
            cell_count(&cells[m]);
            continue;
        }
        const field_value *fv = &vals[md->field_idx];
        if (fv->kind == FV_NUMBER && isfinite(fv->num))
            cell_add(&cells[m], fv->num);
    }
    return 0;
}
