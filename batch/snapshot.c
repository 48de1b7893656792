/* snapshot.c - the persisted batch view of one view, loaded read-only
 * (lambdad export while no daemon runs; see batch.h).
 *
 * What a daemon starting on these files would answer once its batch layer
 * caught up: a view whose persisted segments match its definition is
 * served from them plus the archive after their R; any other view (new,
 * changed, or no views file) from the whole archive, which is what the
 * daemon's full recompute would build. Runs on the calling thread; opens
 * its own connection and closes it before returning.
 */
#include "batch/batch.h"
#include "batch/store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/strutil.h"

int batch_load_view_readonly(const config *cfg, vstate *vs, size_t v, int64_t archive_last_seq,
                             int64_t *R, char **errmsg)
{
    const view_def *vd = &cfg->views[v];
    gran_t unit = vd->gran > cfg->batch_partition ? vd->gran : cfg->batch_partition;
    *R = 0;
    char *path = str_printf("%s-views", cfg->archive_path);
    if (!path) {
        *errmsg = strdup("out of memory");
        return -ENOMEM;
    }
    bstore *s = NULL;
    char *err = NULL;
    int r = bstore_open_existing(path, &s, &err);
    free(path);
    if (r == -ENOENT || r == -EPROTONOSUPPORT) {   /* nothing usable persisted */
        free(err);
        return 0;
    }
    int64_t pR = 0, at = 0;
    char fp[17] = "";
    gran_t punit;
    if (r == 0)
        r = bstore_get_watermark(s, &pR, &at, &err);
    if (r == 0 && pR > 0 && pR <= archive_last_seq) {
        int g = bstore_get_view(s, vd->name, fp, &punit, &err);
        if (g < 0 && g != -ENOENT)
            r = g;
        else if (g == 0 && strcmp(fp, vd->fingerprint) == 0 && punit == unit) {
            bversion *ver = NULL;   /* the index only: segments are read on demand */
            r = bstore_load_index(s, vd, &ver, &err);
            bversion **next = calloc(cfg->nviews, sizeof(*next));
            bversion **old = calloc(cfg->nviews, sizeof(*old));
            if (r == 0 && (!next || !old)) {
                bversion_unref(ver);
                r = -ENOMEM;
                err = strdup("out of memory");
            } else if (r == 0) {
                next[v] = ver;   /* the swap takes the reference */
                vstate_swap(vs, next, pR, at, old);
                for (size_t k = 0; k < cfg->nviews; k++)
                    bversion_unref(old[k]);
                *R = pR;
            }
            free(next);
            free(old);
        }
    }
    bstore_close(s);
    if (r < 0)
        *errmsg = err ? err : strdup("cannot read the views file");
    else
        free(err);
    return r;
}
