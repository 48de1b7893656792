/* defs.h - the shared vocabulary of streams and views.
 *
 * config/ builds these from the JSON config; every layer reads them.
 * After defs_resolve() each stream knows the distinct event fields that its
 * views need (stream_def.fields) and each view refers to them by index, so
 * the event decoder extracts each field once per event, whatever the number
 * of views. Immutable once resolved; shared read-only by all threads.
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include "core/gran.h"

typedef enum { TF_EPOCH_S, TF_EPOCH_MS, TF_RFC3339, TF_KAFKA } time_format;
/* Each metric type has an aggregator (core/agg.h). */
typedef enum { MT_COUNT, MT_SUM, MT_MIN, MT_MAX, MT_AVG, MT_DISTINCT, MT_QUANTILES } metric_type;
#define MT_LAST MT_QUANTILES

typedef struct expr expr;   /* core/expr.h */

typedef struct {
    char *name;
    metric_type type;
    char *field;      /* NULL for count */
    int field_idx;    /* index into an event's values, -1 for count */
    int precision;    /* distinct: 10..18; 0: the default */
    double accuracy;  /* quantiles: 0.0001..0.5; 0: the default */
    char *where;      /* NULL, or a condition: only events for which it is true count */
    expr *where_expr; /* compiled by defs_resolve() */
} metric_def;

/* A field computed from each event by an expression ("fields" of a
 * stream); it may use raw fields and the derived fields before it. A
 * stream has at most DEFS_MAX_DERIVED (the config loader checks). */
#define DEFS_MAX_DERIVED 64
typedef struct {
    char *name;
    char *src;        /* the expression as written */
    expr *expr;       /* compiled by defs_resolve() */
    bool needs_text;  /* read as text (a dimension, a distinct): a number needs its text too */
} derived_field;

typedef struct {
    char *name;
    char *topic;
    char *time_field; /* NULL for TF_KAFKA */
    time_format tfmt;
    /* Filled by defs_resolve(): the distinct raw fields the decoder reads
     * (dimensions, metric fields and what expressions use; dotted names
     * read nested objects; not the time field unless used as such). An
     * event's values are these, then the derived fields, then the event
     * time in epoch seconds (what the time field's name means in an
     * expression): stream_nvals() in all. */
    char **fields;
    size_t nfields;
    derived_field *derived;
    size_t nderived;
} stream_def;

static inline size_t stream_nvals(const stream_def *s)
{
    return s->nfields + s->nderived + 1;
}

typedef struct {
    char *name;
    char *stream;        /* stream name as written in the config */
    size_t stream_idx;   /* resolved index into the streams array */
    gran_t gran;         /* second, minute, hour or day */
    char **dims;
    int *dim_idx;        /* per dimension: index into an event's values (stream_nvals) */
    size_t ndims;
    metric_def *metrics;
    size_t nmetrics;
    char fingerprint[17]; /* 16 hex digits of a hash of the definition */
    int64_t retention_s;  /* "retention": partitions older are dropped; 0 = keep forever
                           * (not part of the fingerprint: changing it drops, never rebuilds) */
    /* Filled by defs_resolve(): the row layout of all its metrics'
     * states (core/agg.h), owned. */
    struct agg_layout *layout;
} view_def;

/* Fills stream.fields, compiles the derived fields and the metrics'
 * conditions, and sets the views' field indexes and fingerprints. Views
 * must already have a valid stream_idx, and the expressions must compile
 * (the config loader checks them with their paths); -EINVAL if one does
 * not (logged), -ENOMEM. */
int defs_resolve(stream_def *streams, size_t nstreams, view_def *views, size_t nviews);

const char *time_format_name(time_format f);
int time_format_parse(const char *s, time_format *out);   /* 0 or -EINVAL */
const char *metric_type_name(metric_type t);
int metric_type_parse(const char *s, metric_type *out);    /* 0 or -EINVAL */

void stream_def_clear(stream_def *s);
void view_def_clear(view_def *v);
