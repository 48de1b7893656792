/* defs.h - the shared vocabulary of streams and views.
 *
 * config/ builds these from the JSON config; every layer reads them.
 * After defs_resolve() each stream knows the distinct event fields that its
 * views need (stream_def.fields) and each view refers to them by index, so
 * the event decoder extracts each field once per event, whatever the number
 * of views. Immutable once resolved; shared read-only by all threads.
 */
#pragma once
#include <stddef.h>
#include "core/gran.h"

typedef enum { TF_EPOCH_S, TF_EPOCH_MS, TF_RFC3339, TF_KAFKA } time_format;
/* Each metric type has an aggregator (core/agg.h). */
typedef enum { MT_COUNT, MT_SUM, MT_MIN, MT_MAX, MT_AVG, MT_DISTINCT, MT_QUANTILES } metric_type;
#define MT_LAST MT_QUANTILES

typedef struct {
    char *name;
    metric_type type;
    char *field;      /* NULL for count */
    int field_idx;    /* index into the stream's fields, -1 for count */
    int precision;    /* distinct: 10..18; 0: the default */
    double accuracy;  /* quantiles: 0.0001..0.5; 0: the default */
} metric_def;

typedef struct {
    char *name;
    char *topic;
    char *time_field; /* NULL for TF_KAFKA */
    time_format tfmt;
    /* Filled by defs_resolve(): the distinct fields the views of this
     * stream read (dimensions and metric fields, not the time field). */
    char **fields;
    size_t nfields;
} stream_def;

typedef struct {
    char *name;
    char *stream;        /* stream name as written in the config */
    size_t stream_idx;   /* resolved index into the streams array */
    gran_t gran;         /* second, minute, hour or day */
    char **dims;
    int *dim_idx;        /* per dimension: index into the stream's fields */
    size_t ndims;
    metric_def *metrics;
    size_t nmetrics;
    char fingerprint[17]; /* 16 hex digits of a hash of the definition */
    /* Filled by defs_resolve(): the row layout of all its metrics'
     * states (core/agg.h), owned. */
    struct agg_layout *layout;
} view_def;

/* Fills stream.fields and the views' field indexes and fingerprints.
 * Views must already have a valid stream_idx. 0 or -ENOMEM. */
int defs_resolve(stream_def *streams, size_t nstreams, view_def *views, size_t nviews);

const char *time_format_name(time_format f);
int time_format_parse(const char *s, time_format *out);   /* 0 or -EINVAL */
const char *metric_type_name(metric_type t);
int metric_type_parse(const char *s, metric_type *out);    /* 0 or -EINVAL */

void stream_def_clear(stream_def *s);
void view_def_clear(view_def *v);
