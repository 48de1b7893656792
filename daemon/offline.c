/* offline.c - answering one view from the files, without a daemon (see
 * offline.h). The caller holds the archive's lock (shared), so no daemon
 * starts and changes the files meanwhile; everything is opened for
 * reading. Queries run on the caller's thread.
 */
#include "daemon/offline.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "archive/archive.h"
#include "batch/batch.h"
#include "core/strutil.h"
#include "core/vstate.h"
#include "daemon/source.h"
#include "serving/segcache.h"
#include "speed/speed.h"

struct offline {
    config one;          /* a shallow copy of the caller's config, one view */
    vstate *vs;
    speed *sp;           /* only for its replay of the archive; never started */
    segcache *cache;     /* NULL when no segments were loaded */
    serving_source src;
};

typedef struct {
    offline *o;
    int64_t from, to;
    gran_t gran;
    int (*seg_fn)(const segment *seg, void *fnud);
    int (*fn)(const vrow *row, void *fnud);
    void *fnud;
} scan_ctx;

static int with_segment(const bseg *bs, void *ud)
{
    scan_ctx *c = ud;
    segcache_ref *ref = NULL;
    int r = segcache_get(c->o->cache, bs->id, &c->o->one.views[0], c->gran, c->from, c->to, &ref);
    if (r < 0)
        return r;   /* a damaged segment: -EBADMSG and the like (the caller says so) */
    r = c->seg_fn(segcache_segment(ref), c->fnud);
    segcache_put(c->o->cache, ref);
    return r;
}

static int with_row(const vrow *row, void *ud)
{
    scan_ctx *c = ud;
    return c->fn(row, c->fnud);
}

static int scan_view(void *ud, size_t view_idx, int64_t from, int64_t to, gran_t gran,
                     int (*seg_fn)(const segment *seg, void *fnud),
                     int (*fn)(const vrow *row, void *fnud), void *fnud, serving_watermark *wm)
{
    offline *o = ud;
    scan_ctx c = {.o = o, .from = from, .to = to, .gran = gran, .seg_fn = seg_fn, .fn = fn,
                  .fnud = fnud};
    vstate_watermark w;
    int r = vstate_scan(o->vs, view_idx, from, to, with_segment, with_row, &c, &w);
    if (wm)
        source_watermark(&o->one, view_idx, &w, wm);
    return r;
}

static int fail(offline *o, char **errmsg, int r, char *msg)
{
    *errmsg = msg ? msg : strdup("out of memory");
    offline_close(o);
    return r;
}

int offline_open(const config *cfg, const char *view, offline **out, char **errmsg)
{
    size_t v = 0;
    while (v < cfg->nviews && strcmp(cfg->views[v].name, view) != 0)
        v++;
    if (v == cfg->nviews)
        return fail(NULL, errmsg, -ENOENT, str_printf("unknown view '%s'", view));
    if (access(cfg->archive_path, F_OK) < 0)
        return fail(NULL, errmsg, -ENOENT,
                    str_printf("no archive at %s (lambdad has not run with this config)",
                               cfg->archive_path));
    offline *o = calloc(1, sizeof(*o));
    if (!o)
        return fail(NULL, errmsg, -ENOMEM, NULL);
    o->one = *cfg;
    o->one.views = &cfg->views[v];
    o->one.nviews = 1;
    o->one.http_query_timeout_ms = 0;   /* an export takes the time it needs */

    char *err = NULL;
    arch *w = NULL;
    int r = arch_open(cfg->archive_path, ARCH_READONLY, cfg->compression_level, &w, &err);
    arch_stats st;
    if (r == 0 && (r = arch_get_stats(w, &st)) < 0)
        err = strdup("cannot read its statistics");
    if (r < 0) {
        arch_close(w);
        char *msg = str_printf("cannot open archive %s: %s", cfg->archive_path,
                               err ? err : strerror(-r));
        free(err);
        return fail(o, errmsg, r, msg);
    }
    o->vs = vstate_new(o->one.views, 1);
    if (!o->vs) {
        arch_close(w);
        return fail(o, errmsg, -ENOMEM, NULL);
    }
    int64_t R = 0;
    r = batch_load_view_readonly(&o->one, o->vs, 0, st.last_seq, &R, &err);
    if (r < 0) {
        arch_close(w);
        return fail(o, errmsg, r, err);
    }
    if (R > 0) {
        char *views_path = str_printf("%s-views", cfg->archive_path);
        r = views_path ? segcache_new(views_path, (size_t)cfg->serving_cache_mb << 20, &o->cache,
                                      &err) : -ENOMEM;
        free(views_path);
        if (r < 0) {
            arch_close(w);
            return fail(o, errmsg, r, err);
        }
    }
    r = speed_new(&o->one, o->vs, w, &o->sp, &err);   /* takes w, also on failure */
    if (r == 0)
        r = speed_recover(o->sp, R, &err);
    if (r < 0)
        return fail(o, errmsg, r, err);
    o->src = (serving_source){.ud = o, .scan_view = scan_view};
    *out = o;
    return 0;
}

const config *offline_config(const offline *o)
{
    return &o->one;
}

const serving_source *offline_source(offline *o)
{
    return &o->src;
}

void offline_close(offline *o)
{
    if (!o)
        return;
    speed_free(o->sp);
    segcache_free(o->cache);
    vstate_free(o->vs);
    free(o);
}
