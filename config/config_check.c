/* config_check.c - the generic part of config validation: walking a JSON
 * object with its key table (config_int.h), checking values by kind,
 * filling defaults, building JSON paths and collecting problems.
 *
 * Nothing here stops at the first problem: every check reports and goes on,
 * so one load lists everything that is wrong with the file.
 *
 * Runs on the thread that loads the config; no shared state, no locks.
 */
#include "config/config_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN 64
#define TOPIC_MAX_LEN 249

/* ---- problems and paths ---- */

/* Copies s, writing control bytes as \xNN so a name with a newline in it
 * cannot break the one-problem-per-line output. */
static char *escape_controls(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        n += (*p < 0x20 || *p == 0x7f) ? 4 : 1;
    char *out = malloc(n + 1), *o = out;
    if (!out)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            o += sprintf(o, "\\x%02x", *p);
        else
            *o++ = (char)*p;
    }
    *o = '\0';
    return out;
}

void cfg_err(cfg_ctx *ctx, const char *path, const char *fmt, ...)
{
    char *msg = NULL, *raw = NULL, *line = NULL;
    va_list ap;
    va_start(ap, fmt);
    int r = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (r < 0) {
        msg = NULL;
        goto fail;
    }
    if (asprintf(&raw, "%s: %s", path, msg) < 0) {
        raw = NULL;
        goto fail;
    }
    if (!(line = escape_controls(raw)))
        goto fail;
    char **items = realloc(ctx->errs->items, (ctx->errs->n + 1) * sizeof(*items));
    if (!items)
        goto fail;
    ctx->errs->items = items;
    items[ctx->errs->n++] = line;   /* the list owns line now */
    free(msg);
    free(raw);
    return;
fail:
    ctx->oom = true;
    free(msg);
    free(raw);
    free(line);
}

int config_error_at(config_errors *errs, const char *parent, const char *key, const char *fmt, ...)
{
    cfg_ctx ctx = { .errs = errs };
    char *path = cfg_path_key(&ctx, parent, key), *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    if (path && msg)
        cfg_err(&ctx, path, "%s", msg);
    free(path);
    free(msg);
    return path && msg && !ctx.oom ? 0 : -ENOMEM;
}

char *cfg_strdup(cfg_ctx *ctx, const char *s)
{
    char *d = strdup(s);
    if (!d)
        ctx->oom = true;
    return d;
}

static bool is_identifier(const char *s)
{
    if (!*s || (*s >= '0' && *s <= '9'))
        return false;
    for (; *s; s++)
        if (!(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9')))
            return false;
    return true;
}

char *cfg_path_key(cfg_ctx *ctx, const char *parent, const char *key)
{
    char *p = NULL;
    int r;
    if (is_identifier(key)) {
        r = parent ? asprintf(&p, "%s.%s", parent, key) : asprintf(&p, "%s", key);
    } else {
        /* kafka.options["fetch.wait.max.ms"]: quote keys that are not
         * identifiers, escaping the quote and the backslash. */
        size_t n = strlen(key);
        char *q = malloc(2 * n + 1), *o = q;
        if (!q) {
            ctx->oom = true;
            return NULL;
        }
        for (const char *s = key; *s; s++) {
            if (*s == '"' || *s == '\\')
                *o++ = '\\';
            *o++ = *s;
        }
        *o = '\0';
        r = asprintf(&p, "%s[\"%s\"]", parent ? parent : "", q);
        free(q);
    }
    if (r < 0) {
        ctx->oom = true;
        return NULL;
    }
    return p;
}

char *cfg_path_idx(cfg_ctx *ctx, const char *parent, size_t i)
{
    char *p;
    if (asprintf(&p, "%s[%zu]", parent, i) < 0) {
        ctx->oom = true;
        return NULL;
    }
    return p;
}

/* ---- value checks ---- */

bool cfg_check_string(cfg_ctx *ctx, const char *path, json_t *v)
{
    if (!json_is_string(v)) {
        cfg_err(ctx, path, "must be a string");
        return false;
    }
    if (json_string_length(v) == 0) {
        cfg_err(ctx, path, "must not be empty");
        return false;
    }
    return true;
}

/* 1..max characters of [A-Za-z0-9] and extra. */
static bool charset_ok(json_t *v, size_t max, const char *extra)
{
    size_t n = json_string_length(v);
    const char *s = json_string_value(v);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              (c && strchr(extra, c))))
            return false;
    }
    return true;
}

bool cfg_check_name(cfg_ctx *ctx, const char *path, json_t *v)
{
    if (!json_is_string(v)) {
        cfg_err(ctx, path, "must be a string");
        return false;
    }
    if (!charset_ok(v, NAME_MAX_LEN, "_.-")) {
        cfg_err(ctx, path, "must be 1 to %d characters of A-Z a-z 0-9 _ . -", NAME_MAX_LEN);
        return false;
    }
    return true;
}

/* Kafka's own rule (kafka.common.internals.Topic): legal characters, at
 * most 249 of them, and not "." or "..". */
bool cfg_check_topic(cfg_ctx *ctx, const char *path, json_t *v)
{
    if (!json_is_string(v)) {
        cfg_err(ctx, path, "must be a string");
        return false;
    }
    const char *s = json_string_value(v);
    if (!charset_ok(v, TOPIC_MAX_LEN, "._-") || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) {
        cfg_err(ctx, path, "must be a Kafka topic name: 1 to %d characters of A-Z a-z 0-9 . _ -, "
                "not '.' or '..'", TOPIC_MAX_LEN);
        return false;
    }
    return true;
}

bool cfg_check_int(cfg_ctx *ctx, const char *path, json_t *v, long long min, long long max)
{
    /* One message for a wrong type and a wrong value: it says what to write. */
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        cfg_err(ctx, path, "must be an integer between %lld and %lld", min, max);
        return false;
    }
    return true;
}

/* The value in k's range whose name is v's text, or -1 (reported). */
static int enum_value(cfg_ctx *ctx, const char *path, const cfg_key *k, json_t *v)
{
    const char *s = json_string_value(v);   /* NULL when not a string */
    for (long long i = k->min; s && i <= k->max; i++)
        if (strcmp(s, k->name_of((int)i)) == 0)
            return (int)i;

    /* "must be one of second, minute, hour, day" */
    size_t len = 0;
    for (long long i = k->min; i <= k->max; i++)
        len += strlen(k->name_of((int)i)) + 2;
    char *list = malloc(len + 1), *o = list;
    if (!list) {
        ctx->oom = true;
        return -1;
    }
    *o = '\0';
    for (long long i = k->min; i <= k->max; i++)
        o += sprintf(o, "%s%s", i > k->min ? ", " : "", k->name_of((int)i));
    cfg_err(ctx, path, "must be one of %s", list);
    free(list);
    return -1;
}

/* ---- the walker ---- */

static void *field_at(void *target, const cfg_key *k)
{
    return (char *)target + k->offset;
}

/* Every enum of the config is int-sized; the value goes in through memcpy
 * so the enum's own integer type does not matter. */
static void store_enum(void *target, const cfg_key *k, int value)
{
    _Static_assert(sizeof(gran_t) == sizeof(int), "enum size");
    _Static_assert(sizeof(time_format) == sizeof(int), "enum size");
    _Static_assert(sizeof(metric_type) == sizeof(int), "enum size");
    memcpy(field_at(target, k), &value, sizeof(value));
}

static void store_string(cfg_ctx *ctx, void *target, const cfg_key *k, const char *s)
{
    char **dst = field_at(target, k);
    free(*dst);
    *dst = s ? cfg_strdup(ctx, s) : NULL;
}

/* Checks and stores one present value. */
static void key_value(cfg_ctx *ctx, const char *path, const cfg_key *k, json_t *v, void *target)
{
    int e;
    switch (k->kind) {
    case CK_OBJECT:
        cfg_object(ctx, path, v, k->sub, target);
        break;
    case CK_STRING:
        if (cfg_check_string(ctx, path, v))
            store_string(ctx, target, k, json_string_value(v));
        break;
    case CK_NAME:
        if (cfg_check_name(ctx, path, v))
            store_string(ctx, target, k, json_string_value(v));
        break;
    case CK_TOPIC:
        if (cfg_check_topic(ctx, path, v))
            store_string(ctx, target, k, json_string_value(v));
        break;
    case CK_INT:
        if (cfg_check_int(ctx, path, v, k->min, k->max))
            *(int *)field_at(target, k) = (int)json_integer_value(v);
        break;
    case CK_ENUM:
        if ((e = enum_value(ctx, path, k, v)) >= 0)
            store_enum(target, k, e);
        break;
    case CK_ENUM_STR:
        if ((e = enum_value(ctx, path, k, v)) >= 0)
            store_string(ctx, target, k, k->name_of(e));
        break;
    case CK_CUSTOM:
        k->custom(ctx, path, v, target);
        break;
    }
}

/* Fills the default of an absent key. */
static void key_default(cfg_ctx *ctx, const char *path, const cfg_key *k, void *target)
{
    switch (k->kind) {
    case CK_OBJECT:
        cfg_object(ctx, path, NULL, k->sub, target);
        break;
    case CK_STRING:
    case CK_NAME:
    case CK_TOPIC:
        store_string(ctx, target, k, k->def_str);
        break;
    case CK_INT:
        *(int *)field_at(target, k) = (int)k->def_int;
        break;
    case CK_ENUM:
        store_enum(target, k, (int)k->def_int);
        break;
    case CK_ENUM_STR:
        store_string(ctx, target, k, k->name_of((int)k->def_int));
        break;
    case CK_CUSTOM:
        k->custom(ctx, path, NULL, target);
        break;
    }
}

static const cfg_key *find_key(const cfg_key *keys, const char *name)
{
    for (const cfg_key *k = keys; k->name; k++)
        if (strcmp(k->name, name) == 0)
            return k;
    return NULL;
}

void cfg_object(cfg_ctx *ctx, const char *path, json_t *obj, const cfg_key *keys, void *target)
{
    if (obj && !json_is_object(obj)) {
        cfg_err(ctx, path ? path : "(root)", "must be an object");
        return;
    }
    /* The keys as written, in the file's order (jansson keeps it). */
    const char *name;
    json_t *v;
    json_object_foreach(obj, name, v) {
        char *kpath = cfg_path_key(ctx, path, name);
        if (!kpath)
            continue;
        const cfg_key *k = find_key(keys, name);
        if (k)
            key_value(ctx, kpath, k, v, target);
        else
            cfg_err(ctx, kpath, "unknown key");
        free(kpath);
    }
    /* Then what is missing: an error if required, else the default. */
    for (const cfg_key *k = keys; k->name; k++) {
        if (obj && json_object_get(obj, k->name))
            continue;
        char *kpath = cfg_path_key(ctx, path, k->name);
        if (!kpath)
            continue;
        if (k->required)
            cfg_err(ctx, kpath, "required");
        else
            key_default(ctx, kpath, k, target);
        free(kpath);
    }
}
