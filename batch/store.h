/* store.h - the views file: persisted batch views and their watermark R
 * (batch/ private). Used by the batch thread only (and at start). */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "core/defs.h"
#include "core/vstate.h"

typedef struct bstore bstore;

int bstore_open(const char *path, bstore **out, char **errmsg);
void bstore_close(bstore *s);   /* accepts NULL */
/* The format of a views file that open found and emptied (its views are
 * rebuilt from the archive), or 0. */
int bstore_reset_from(const bstore *s);

/* The persisted watermark: R and the time of the run (0, 0 when none). */
int bstore_get_watermark(bstore *s, int64_t *R, int64_t *at, char **errmsg);
/* The persisted fingerprint and recompute unit of a view: 0, or -ENOENT. */
int bstore_get_view(bstore *s, const char *name, char fingerprint[17], gran_t *unit,
                    char **errmsg);
/* Loads every persisted partition of view v. */
int bstore_load_view(bstore *s, const view_def *v, bversion **out, char **errmsg);

/* One transaction: begin, put views and the watermark, commit (or
 * rollback on any failure). */
int bstore_begin(bstore *s, char **errmsg);
/* Stores the partitions of ver whose start is in starts[0..n) (or all of
 * them when full, replacing whatever was stored for the view). */
int bstore_put_view(bstore *s, const view_def *v, gran_t unit, const bversion *ver,
                    const int64_t *starts, size_t n, bool full, char **errmsg);
/* Removes views that are no longer configured. */
int bstore_drop_unknown_views(bstore *s, const view_def *views, size_t nviews, char **errmsg);
int bstore_put_watermark(bstore *s, int64_t R, int64_t at, char **errmsg);
int bstore_commit(bstore *s, char **errmsg);
void bstore_rollback(bstore *s);

/* Partition (de)serialization, exposed for the unit test. */
int bpart_encode(const vtable *t, int64_t start, unsigned char **out, size_t *len);
int bpart_decode(const unsigned char *buf, size_t len, int64_t start, size_t ndims,
                 const agg_layout *layout, vtable **out);
