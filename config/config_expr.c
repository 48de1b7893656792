/* config_expr.c - the config's expressions (core/expr.h): a stream's
 * derived fields ("fields": {"name": "expression"}) and a metric's
 * condition ("where"). Each is compiled here only to report its problems
 * with their paths; defs_resolve() compiles them for use once every field
 * is known.
 *
 * Runs on the thread that loads the config; no shared state, no locks.
 */
#include "config/config_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/expr.h"

/* A derived field may use raw fields and the derived fields before it, so
 * they are computed in one pass with no cycles: the compile of derived
 * field number self notes the first name it uses that is itself or one
 * defined after it (any other name is a field the events may have). */
typedef struct {
    json_t *fields;   /* the stream's "fields" object */
    size_t self;
    const char *bad;  /* the first such name (a key of fields), or NULL */
    bool bad_is_self;
} order_check;

static int accept_any(void *ud, const char *name, size_t len, expr_type *type)
{
    (void)type;
    order_check *oc = ud;
    if (!oc || oc->bad)
        return 0;
    size_t j = 0;
    const char *other;
    json_t *ignored;
    json_object_foreach(oc->fields, other, ignored) {
        (void)ignored;
        if (j++ >= oc->self && strlen(other) == len && memcmp(other, name, len) == 0) {
            oc->bad = other;
            oc->bad_is_self = j - 1 == oc->self;
            break;
        }
    }
    return 0;
}

/* Compiles src, reporting its errors at path; NULL if it does not compile. */
static expr *compile_at(cfg_ctx *ctx, const char *path, const char *src, order_check *oc)
{
    expr_resolver r = {accept_any, oc, NULL};
    expr *e = NULL;
    char *err = NULL;
    int rv = expr_compile(src, &r, &e, &err);
    if (rv == -ENOMEM)
        ctx->oom = true;
    else if (rv < 0)
        cfg_err(ctx, path, "%s", err);
    free(err);
    return e;
}

static bool plain_name(const char *s)
{
    if (!*s || strlen(s) > 64 || !(isalpha((unsigned char)*s) || *s == '_'))
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_')
            return false;
    return true;
}

void cfg_check_derived(cfg_ctx *ctx, const char *path, json_t *v, void *target)
{
    stream_def *s = target;
    if (!v)
        return;   /* default: none */
    if (!json_is_object(v)) {
        cfg_err(ctx, path, "must be an object of \"name\": \"expression\"");
        return;
    }
    size_t n = json_object_size(v);
    if (n > DEFS_MAX_DERIVED) {
        cfg_err(ctx, path, "must have at most %d derived fields", DEFS_MAX_DERIVED);
        return;
    }
    if (n == 0)
        return;
    if (!(s->derived = calloc(n, sizeof(*s->derived)))) {
        ctx->oom = true;
        return;
    }
    s->nderived = n;
    size_t k = 0;
    const char *name;
    json_t *src;
    json_object_foreach(v, name, src) {
        derived_field *f = &s->derived[k++];
        char *kpath = cfg_path_key(ctx, path, name);
        if (!kpath)
            continue;
        if (!plain_name(name))
            cfg_err(ctx, kpath, "a derived field's name must be 1..64 letters, digits or '_', "
                    "not starting with a digit");
        if (!json_is_string(src) || !*json_string_value(src)) {
            cfg_err(ctx, kpath, "must be an expression (a non-empty string)");
            free(kpath);
            continue;
        }
        order_check oc = {.fields = v, .self = k - 1};
        expr *e = compile_at(ctx, kpath, json_string_value(src), &oc);
        if (e && oc.bad_is_self)
            cfg_err(ctx, kpath, "uses itself");
        else if (e && oc.bad)
            cfg_err(ctx, kpath, "uses '%s', which is derived after it (a derived field "
                    "can use raw fields and the derived fields before it)", oc.bad);
        expr_free(e);
        f->name = cfg_strdup(ctx, name);
        f->src = cfg_strdup(ctx, json_string_value(src));
        free(kpath);
    }
}

void cfg_check_where(cfg_ctx *ctx, const char *path, json_t *v, void *target)
{
    metric_def *md = target;
    if (!v)
        return;   /* default: every event */
    if (!json_is_string(v) || !*json_string_value(v)) {
        cfg_err(ctx, path, "must be a condition (a non-empty string)");
        return;
    }
    expr *e = compile_at(ctx, path, json_string_value(v), NULL);
    if (!e)
        return;
    expr_type t = expr_result_type(e);
    if (t == ET_NUM || t == ET_STR)
        cfg_err(ctx, path, "must be a condition (true or false), not %s",
                t == ET_NUM ? "a number" : "a string");
    expr_free(e);
    md->where = cfg_strdup(ctx, json_string_value(v));
}
