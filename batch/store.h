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
/* Opens an existing views file for reading only (lambdad export while no
 * daemon runs): nothing is created, emptied or deleted. -ENOENT when there
 * is none; -EPROTONOSUPPORT when it has another format. */
int bstore_open_existing(const char *path, bstore **out, char **errmsg);
/* The format of a views file that open found and emptied (its views are
 * rebuilt from the archive), or 0. */
int bstore_reset_from(const bstore *s);

/* The persisted watermark: R and the time of the run (0, 0 when none). */
int bstore_get_watermark(bstore *s, int64_t *R, int64_t *at, char **errmsg);
/* The persisted fingerprint and recompute unit of a view: 0, or -ENOENT. */
int bstore_get_view(bstore *s, const char *name, char fingerprint[17], gran_t *unit,
                    char **errmsg);
/* The index of view v's current segments (no segment bytes are read). */
int bstore_load_index(bstore *s, const view_def *v, bversion **out, char **errmsg);

/* One transaction: begin, put views and the watermark, commit (or
 * rollback on any failure). */
int bstore_begin(bstore *s, char **errmsg);
/* Adds a current segment of view v for [start, end) (blob: core/segment.h)
 * and sets *id. */
int bstore_put_segment(bstore *s, const view_def *v, int64_t start, int64_t end,
                       const void *blob, size_t len, int64_t nrows, int64_t *id, char **errmsg);
/* Marks segments replaced by this transaction's ones as not current. */
int bstore_retire(bstore *s, const int64_t *ids, size_t n, char **errmsg);
/* Records view v's fingerprint and recompute unit. */
int bstore_put_view(bstore *s, const view_def *v, gran_t unit, char **errmsg);
/* Removes views that are no longer configured. */
int bstore_drop_unknown_views(bstore *s, const view_def *views, size_t nviews, char **errmsg);
int bstore_put_watermark(bstore *s, int64_t R, int64_t at, char **errmsg);
int bstore_commit(bstore *s, char **errmsg);
void bstore_rollback(bstore *s);
/* Deletes segments nothing holds any more (own transaction). */
int bstore_delete_segments(bstore *s, const int64_t *ids, size_t n, char **errmsg);
