/* defs.c - stream and view definitions: names of the enums, field
 * resolution and view fingerprints.
 *
 * defs_resolve() runs once per config load, on the loading thread, before
 * the definitions are shared; afterwards they are read-only and need no
 * lock. Everything else here is a pure function.
 *
 * A view's fingerprint hashes everything that determines its results and
 * nothing else (not its name), so the batch layer can tell a changed view
 * definition from a renamed or untouched one and recompute only the former.
 */
#include "core/defs.h"
#include "core/agg.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const time_format_names[] = {
    [TF_EPOCH_S] = "epoch_s",
    [TF_EPOCH_MS] = "epoch_ms",
    [TF_RFC3339] = "rfc3339",
    [TF_KAFKA] = "kafka",
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

const char *time_format_name(time_format f)
{
    if ((unsigned)f >= NELEM(time_format_names))
        return "unknown";
    return time_format_names[f];
}

int time_format_parse(const char *s, time_format *out)
{
    for (size_t i = 0; s && i < NELEM(time_format_names); i++) {
        if (strcmp(s, time_format_names[i]) == 0) {
            *out = (time_format)i;
            return 0;
        }
    }
    return -EINVAL;
}

/* The names are the aggregators' (core/agg.h). */
const char *metric_type_name(metric_type t)
{
    const agg_ops *ops = (unsigned)t <= MT_LAST ? agg_ops_of(t) : NULL;
    return ops ? ops->name : "unknown";
}

int metric_type_parse(const char *s, metric_type *out)
{
    for (int t = 0; s && t <= MT_LAST; t++) {
        if (strcmp(s, agg_ops_of((metric_type)t)->name) == 0) {
            *out = (metric_type)t;
            return 0;
        }
    }
    return -EINVAL;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

void stream_def_clear(stream_def *s)
{
    if (!s)
        return;
    free(s->name);
    free(s->topic);
    free(s->time_field);
    free_strv(s->fields, s->nfields);
    memset(s, 0, sizeof(*s));
}

void view_def_clear(view_def *v)
{
    if (!v)
        return;
    free(v->name);
    free(v->stream);
    free_strv(v->dims, v->ndims);
    free(v->dim_idx);
    for (size_t i = 0; v->metrics && i < v->nmetrics; i++) {
        free(v->metrics[i].name);
        free(v->metrics[i].field);
    }
    free(v->metrics);
    free(v->layout);
    memset(v, 0, sizeof(*v));
}

/* ---- field resolution ---- */

/* Index of field in s->fields, appending it when new. -ENOMEM on failure.
 * Linear search: a stream has a handful of fields, and this runs once per
 * config load. */
static int stream_field_index(stream_def *s, const char *field)
{
    for (size_t i = 0; i < s->nfields; i++)
        if (strcmp(s->fields[i], field) == 0)
            return (int)i;
    char **nf = realloc(s->fields, (s->nfields + 1) * sizeof(*nf));
    if (!nf)
        return -ENOMEM;
    s->fields = nf;
    if (!(nf[s->nfields] = strdup(field)))
        return -ENOMEM;
    return (int)s->nfields++;
}

/* ---- fingerprints: FNV-1a 64 over a length-prefixed canonical text ---- */

#define FNV_OFFSET UINT64_C(0xcbf29ce484222325)
#define FNV_PRIME UINT64_C(0x100000001b3)

static uint64_t fnv_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= FNV_PRIME;
    }
    return h;
}

/* "len:bytes", or "~" for NULL: the length prefix keeps ("ab","c") and
 * ("a","bc") apart, the marker keeps NULL and "" apart. */
static uint64_t fnv_str(uint64_t h, const char *s)
{
    if (!s)
        return fnv_bytes(h, "~", 1);
    char len[24];
    int n = snprintf(len, sizeof(len), "%zu:", strlen(s));
    h = fnv_bytes(h, len, (size_t)n);
    return fnv_bytes(h, s, strlen(s));
}

static void view_fingerprint(view_def *v, const stream_def *s)
{
    uint64_t h = FNV_OFFSET;
    /* A version tag, so a future change of this canonical form changes
     * every fingerprint (and so recomputes every view) on purpose. */
    h = fnv_str(h, "lambdad-view-1");
    h = fnv_str(h, s->topic);
    h = fnv_str(h, s->time_field);
    h = fnv_str(h, time_format_name(s->tfmt));
    h = fnv_str(h, gran_name(v->gran));
    char n[24];
    snprintf(n, sizeof(n), "%zu", v->ndims);
    h = fnv_str(h, n);
    for (size_t i = 0; i < v->ndims; i++)
        h = fnv_str(h, v->dims[i]);
    snprintf(n, sizeof(n), "%zu", v->nmetrics);
    h = fnv_str(h, n);
    for (size_t i = 0; i < v->nmetrics; i++) {
        h = fnv_str(h, v->metrics[i].name);
        h = fnv_str(h, metric_type_name(v->metrics[i].type));
        h = fnv_str(h, v->metrics[i].field);
        /* sketch parameters, only for the types that have them (so the
         * fingerprints of other views stay as they were) */
        char param[48] = "";
        agg_params ap = agg_params_of(&v->metrics[i]);
        if (v->metrics[i].type == MT_DISTINCT)
            snprintf(param, sizeof(param), "precision=%d", (int)ap.precision);
        else if (v->metrics[i].type == MT_QUANTILES)
            snprintf(param, sizeof(param), "accuracy=%.17g", ap.accuracy);
        if (param[0])
            h = fnv_str(h, param);
    }
    snprintf(v->fingerprint, sizeof(v->fingerprint), "%016" PRIx64, h);
}

int defs_resolve(stream_def *streams, size_t nstreams, view_def *views, size_t nviews)
{
    /* Start over, so resolving twice gives the same result. */
    for (size_t i = 0; i < nstreams; i++) {
        free_strv(streams[i].fields, streams[i].nfields);
        streams[i].fields = NULL;
        streams[i].nfields = 0;
    }
    for (size_t i = 0; i < nviews; i++) {
        view_def *v = &views[i];
        if (v->stream_idx >= nstreams)
            return -EINVAL;
        stream_def *s = &streams[v->stream_idx];
        free(v->dim_idx);
        v->dim_idx = NULL;
        if (v->ndims) {
            v->dim_idx = calloc(v->ndims, sizeof(*v->dim_idx));
            if (!v->dim_idx)
                return -ENOMEM;
        }
        for (size_t d = 0; d < v->ndims; d++) {
            int idx = stream_field_index(s, v->dims[d]);
            if (idx < 0)
                return idx;
            v->dim_idx[d] = idx;
        }
        for (size_t m = 0; m < v->nmetrics; m++) {
            metric_def *md = &v->metrics[m];
            md->field_idx = -1;
            if (md->type == MT_COUNT || !md->field)
                continue;
            int idx = stream_field_index(s, md->field);
            if (idx < 0)
                return idx;
            md->field_idx = idx;
        }
        view_fingerprint(v, s);
        free(v->layout);
        v->layout = agg_layout_new(v->metrics, NULL, v->nmetrics);
        if (!v->layout)
            return -ENOMEM;
    }
    return 0;
}
