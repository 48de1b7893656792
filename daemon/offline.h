/* offline.h - a serving_source over the files alone, for lambdad export
 * while no daemon runs on the archive: one view's persisted segments (the
 * views file, read only) plus the archive's events after their R, replayed
 * into memory (or the whole archive when no segments match the view). That
 * is what a daemon started on these files answers. One thread. */
#pragma once
#include "config/config.h"
#include "serving/serving.h"

typedef struct offline offline;

/* Opens the files of cfg (borrowed; it must outlive o) for the view named
 * view. -ENOENT: no such view, or no archive; other negative codes; every
 * failure sets *errmsg (malloc'd). */
int offline_open(const config *cfg, const char *view, offline **out, char **errmsg);
/* The config to query with: cfg reduced to that one view (so only it is
 * replayed), without a query time budget. */
const config *offline_config(const offline *o);
const serving_source *offline_source(offline *o);
void offline_close(offline *o);   /* accepts NULL */
