/* source.h - the daemon's serving_source: what the HTTP layer reads,
 * wired to the views' state (batch + pending + live), the speed layer and
 * the batch layer. */
#pragma once
#include <stdatomic.h>
#include <stdbool.h>

#include "config/config.h"
#include "serving/serving.h"
#include "speed/speed.h"
#include "batch/batch.h"
#include "core/vstate.h"
#include "serving/segcache.h"

typedef struct {
    const config *cfg;
    speed *sp;
    vstate *vs;
    batch *b;
    segcache *cache;        /* decoded batch segments, read on demand */
    atomic_bool recovered;
    atomic_bool frozen;     /* a reload stopped its threads: it answers as of then
                             * until the server swaps to the next runtime */
    char restart_required[256]; /* settings changed by a reload that need a restart */
    int64_t started_at;     /* epoch s, set by daemon_source_init (for /metrics) */
} daemon_source;

void daemon_source_init(daemon_source *ds, serving_source *src);

/* A scan's serving watermark: w, with the events of the view's stream that
 * damaged archive chunks hold (missing from every answer; archive/damage.c
 * keeps the count). For every serving_source over a vstate (offline.c). */
void source_watermark(const config *cfg, size_t view_idx, const vstate_watermark *w,
                      serving_watermark *wm);
