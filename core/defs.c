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
#include "core/expr.h"
#include "core/log.h"
#include "core/strmap.h"

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
    for (size_t i = 0; i < s->nderived; i++) {
        free(s->derived[i].name);
        free(s->derived[i].src);
        expr_free(s->derived[i].expr);
    }
    free(s->derived);
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
        free(v->metrics[i].where);
        expr_free(v->metrics[i].where_expr);
    }
    free(v->metrics);
    free(v->layout);
    memset(v, 0, sizeof(*v));
}

/* ---- field resolution ----
 *
 * Two passes: the first collects every raw field name (dimensions, metric
 * fields, names expressions use that are not derived), which fixes where
 * the derived values start; the second compiles the expressions against
 * the final indexes. */

/* Index of field in s->fields, appending it when new; known maps the
 * stream's fields to their indexes (a config with thousands of views on one
 * stream may read thousands of fields). -ENOMEM on failure. */
static int stream_field_index(stream_def *s, strmap *known, const char *field, size_t len)
{
    size_t idx;
    if (strmap_get(known, field, len, &idx))
        return (int)idx;
    /* The array doubles when nfields reaches a power of two (0, 1, 2, 4,
     * ...), so adding n fields copies O(n) pointers, not O(n^2). */
    char **nf = s->fields;
    size_t n = s->nfields;
    if ((n & (n - 1)) == 0) {
        if (!(nf = realloc(s->fields, (n ? 2 * n : 1) * sizeof(*nf))))
            return -ENOMEM;
        s->fields = nf;
    }
    if (!(nf[n] = strndup(field, len)))
        return -ENOMEM;
    /* the map borrows the stream's own copy of the name */
    if (strmap_put(known, nf[n], len, n) < 0) {
        free(nf[n]);
        return -ENOMEM;
    }
    return (int)s->nfields++;
}

static int derived_index(const stream_def *s, const char *name, size_t len, size_t before)
{
    for (size_t i = 0; i < before && i < s->nderived; i++)
        if (strlen(s->derived[i].name) == len && memcmp(s->derived[i].name, name, len) == 0)
            return (int)i;
    return -1;
}

typedef struct {
    stream_def *s;
    strmap *known;        /* s's raw fields by name */
    size_t before;        /* derived fields usable: [0, before) */
    bool final;           /* second pass: raw fields are all known */
} resolve_ctx;

/* Where a name an expression uses is in an event's values. */
static int resolve_name(void *ud, const char *name, size_t len, expr_type *type)
{
    (void)type;
    resolve_ctx *rc = ud;
    stream_def *s = rc->s;
    int d = derived_index(s, name, len, rc->before);
    if (d >= 0)
        return rc->final ? (int)s->nfields + d : 0;
    if (s->time_field && strlen(s->time_field) == len && memcmp(s->time_field, name, len) == 0)
        return rc->final ? (int)(s->nfields + s->nderived) : 0;
    if (!rc->final)
        return stream_field_index(s, rc->known, name, len);
    size_t i;
    if (strmap_get(rc->known, name, len, &i))
        return (int)i;
    return -1;   /* cannot happen: the first pass added it */
}

/* Compiles src (the first pass throws the result away). */
static int compile(const char *what, const char *src, resolve_ctx *rc, expr **out)
{
    expr_resolver r = {resolve_name, rc, NULL};
    char *err = NULL;
    expr *e = NULL;
    int rv = expr_compile(src, &r, &e, &err);
    if (rv == -EINVAL)
        log_error("%s: %s", what, err);   /* the config check reports these first */
    free(err);
    if (rv < 0)
        return rv;
    if (out)
        *out = e;
    else
        expr_free(e);
    return 0;
}

/* The index of a dimension or metric field named name in an event's
 * values (pass 2), after adding raw names (pass 1). */
static int field_slot(stream_def *s, strmap *known, const char *name, bool needs_text)
{
    int d = derived_index(s, name, strlen(name), s->nderived);
    if (d >= 0) {
        s->derived[d].needs_text |= needs_text;
        return (int)s->nfields + d;
    }
    /* found in pass 2: added in pass 1 */
    return stream_field_index(s, known, name, strlen(name));
}

/* known[i]: stream i's raw fields by name, filled by the first pass. */
static int resolve_pass(stream_def *streams, size_t nstreams, view_def *views, size_t nviews,
                        strmap **known, bool final)
{
    for (size_t si = 0; si < nstreams; si++) {
        stream_def *s = &streams[si];
        for (size_t k = 0; k < s->nderived; k++) {
            derived_field *f = &s->derived[k];
            resolve_ctx rc = {s, known[si], k, final};
            char what[300];
            snprintf(what, sizeof(what), "stream '%s', derived field '%s'", s->name, f->name);
            int r = compile(what, f->src, &rc, final ? &f->expr : NULL);
            if (r < 0)
                return r;
        }
    }
    for (size_t i = 0; i < nviews; i++) {
        view_def *v = &views[i];
        stream_def *s = &streams[v->stream_idx];
        strmap *k = known[v->stream_idx];
        for (size_t d = 0; d < v->ndims; d++) {
            int idx = field_slot(s, k, v->dims[d], true);
            if (idx < 0)
                return idx;
            v->dim_idx[d] = idx;
        }
        for (size_t m = 0; m < v->nmetrics; m++) {
            metric_def *md = &v->metrics[m];
            md->field_idx = -1;
            if (md->where) {
                resolve_ctx rc = {s, k, s->nderived, final};
                char what[300];
                snprintf(what, sizeof(what), "view '%s', metric '%s', where", v->name, md->name);
                int r = compile(what, md->where, &rc, final ? &md->where_expr : NULL);
                if (r < 0)
                    return r;
            }
            if (md->type == MT_COUNT || !md->field)
                continue;
            int idx = field_slot(s, k, md->field, md->type == MT_DISTINCT);   /* distinct counts texts */
            if (idx < 0)
                return idx;
            md->field_idx = idx;
        }
    }
    return 0;
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

typedef struct {
    const stream_def *s;
    bool *used;
} used_ctx;

/* Marks the derived field at value index idx, if it is one. */
static void mark_slot(int idx, void *ud)
{
    used_ctx *u = ud;
    if (idx >= (int)u->s->nfields && idx < (int)(u->s->nfields + u->s->nderived))
        u->used[idx - (int)u->s->nfields] = true;
}

/* Hashes the definitions of the derived fields v uses, directly or through
 * other derived fields (those only point back, so one backward sweep
 * closes the set), so changing one recomputes exactly the views that use
 * it. */
static uint64_t hash_derived_used(uint64_t h, const view_def *v, const stream_def *s)
{
    bool used[DEFS_MAX_DERIVED] = {false};   /* the config allows no more */
    if (!s->nderived || s->nderived > DEFS_MAX_DERIVED)
        return h;
    used_ctx u = {s, used};
    for (size_t d = 0; d < v->ndims; d++)
        mark_slot(v->dim_idx[d], &u);
    for (size_t m = 0; m < v->nmetrics; m++) {
        mark_slot(v->metrics[m].field_idx, &u);
        if (v->metrics[m].where_expr)
            expr_foreach_slot(v->metrics[m].where_expr, mark_slot, &u);
    }
    for (size_t k = s->nderived; k-- > 0;)
        if (used[k])
            expr_foreach_slot(s->derived[k].expr, mark_slot, &u);
    for (size_t k = 0; k < s->nderived; k++) {
        if (!used[k])
            continue;
        h = fnv_str(h, "derived");
        h = fnv_str(h, s->derived[k].name);
        h = fnv_str(h, s->derived[k].src);
    }
    return h;
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
        if (v->metrics[i].where) {   /* only then: older fingerprints stay as they were */
            h = fnv_str(h, "where");
            h = fnv_str(h, v->metrics[i].where);
        }
    }
    h = hash_derived_used(h, v, s);
    snprintf(v->fingerprint, sizeof(v->fingerprint), "%016" PRIx64, h);
}

int defs_resolve(stream_def *streams, size_t nstreams, view_def *views, size_t nviews)
{
    /* Start over, so resolving twice gives the same result. */
    for (size_t i = 0; i < nstreams; i++) {
        stream_def *s = &streams[i];
        free_strv(s->fields, s->nfields);
        s->fields = NULL;
        s->nfields = 0;
        for (size_t k = 0; k < s->nderived; k++) {
            expr_free(s->derived[k].expr);
            s->derived[k].expr = NULL;
            s->derived[k].needs_text = false;
        }
    }
    for (size_t i = 0; i < nviews; i++) {
        view_def *v = &views[i];
        if (v->stream_idx >= nstreams)
            return -EINVAL;
        free(v->dim_idx);
        v->dim_idx = NULL;
        if (v->ndims && !(v->dim_idx = calloc(v->ndims, sizeof(*v->dim_idx))))
            return -ENOMEM;
        for (size_t m = 0; m < v->nmetrics; m++) {
            expr_free(v->metrics[m].where_expr);
            v->metrics[m].where_expr = NULL;
        }
    }
    strmap **known = calloc(nstreams ? nstreams : 1, sizeof(*known));
    int r = known ? 0 : -ENOMEM;
    for (size_t i = 0; r == 0 && i < nstreams; i++)
        if (!(known[i] = strmap_new()))
            r = -ENOMEM;
    if (r == 0)
        r = resolve_pass(streams, nstreams, views, nviews, known, false);
    if (r == 0)
        r = resolve_pass(streams, nstreams, views, nviews, known, true);
    for (size_t i = 0; known && i < nstreams; i++)
        strmap_free(known[i]);
    free(known);
    if (r < 0)
        return r;
    for (size_t i = 0; i < nviews; i++) {
        view_def *v = &views[i];
        view_fingerprint(v, &streams[v->stream_idx]);
        free(v->layout);
        v->layout = agg_layout_new(v->metrics, NULL, v->nmetrics);
        if (!v->layout)
            return -ENOMEM;
    }
    return 0;
}
