/* config_int.h - private to config/: the key tables and the generic walker
 * that checks a JSON object against one.
 *
 * Each JSON object of the config (the top level, each section, each stream,
 * view and metric) has a table of cfg_key, in the manner of redis
 * config.c's static_configs[]: its name, its kind, where it is stored, its
 * bounds, default and allowed values. cfg_object() walks an object with its
 * table, reports unknown keys, bad values and missing required keys, stores
 * the good values and fills defaults. What a table cannot say (rules that
 * involve two keys, or other parts of the document) is checked by the
 * CK_CUSTOM functions in config_keys.c.
 *
 * Runs on the thread that loads the config; no shared state, no locks.
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "config/config.h"
#include "core/strmap.h"

/* The elements of the document's "streams" array by their name or topic,
 * built on first use: every view looks its stream up, and a config may
 * have thousands of each. */
typedef struct {
    bool built;
    bool incomplete;   /* an element has no string under the key */
    strmap *first;     /* value -> index of the first element with it */
} cfg_stream_index;

/* One load: where problems go, and the whole document for the checks that
 * look across it (a view's stream, kafka.partitions' topics). */
typedef struct {
    config_errors *errs;
    json_t *root;
    bool oom;   /* an allocation failed: the load returns -ENOMEM */
    cfg_stream_index by_name, by_topic;   /* config_keys.c; keys borrowed from root */
} cfg_ctx;

/* Frees what the checks built in ctx (not errs, not root). */
void cfg_ctx_clear(cfg_ctx *ctx);

typedef enum {
    CK_OBJECT,   /* a section whose keys (sub) fill the same target */
    CK_STRING,   /* char *, non-empty */
    CK_NAME,     /* char *, 1..64 characters of [A-Za-z0-9_.-] */
    CK_TOPIC,    /* char *, a Kafka topic name */
    CK_INT,      /* int, min..max */
    CK_ENUM,     /* an enum field: one of name_of(min..max) */
    CK_ENUM_STR, /* char *: one of name_of(min..max), stored as its name */
    CK_CUSTOM,   /* custom() parses, checks and stores */
} cfg_kind;

typedef struct cfg_key cfg_key;

/* Checks and stores v at path into target; v is NULL when the key is
 * absent (then it fills the default). */
typedef void (*cfg_custom_fn)(cfg_ctx *ctx, const char *path, json_t *v, void *target);

struct cfg_key {
    const char *name;               /* NULL ends a table */
    cfg_kind kind;
    bool required;
    size_t offset;                  /* of the field in the target struct */
    long long min, max;             /* CK_INT bounds; CK_ENUM* value range */
    long long def_int;              /* CK_INT, CK_ENUM* default */
    const char *def_str;            /* CK_STRING default (NULL: none) */
    const char *(*name_of)(int);    /* CK_ENUM*: the name of each value */
    const cfg_key *sub;             /* CK_OBJECT */
    cfg_custom_fn custom;           /* CK_CUSTOM */
};

/* Table entries: name, struct and field, then what the kind needs. */
#define KEY_STR(n, st, f, d, ...) \
    { .name = n, .kind = CK_STRING, .offset = offsetof(st, f), .def_str = d, __VA_ARGS__ }
#define KEY_NAME(n, st, f, ...) \
    { .name = n, .kind = CK_NAME, .offset = offsetof(st, f), __VA_ARGS__ }
#define KEY_TOPIC(n, st, f, ...) \
    { .name = n, .kind = CK_TOPIC, .offset = offsetof(st, f), __VA_ARGS__ }
#define KEY_INT(n, st, f, lo, hi, d) \
    { .name = n, .kind = CK_INT, .offset = offsetof(st, f), .min = lo, .max = hi, .def_int = d }
#define KEY_ENUM(n, st, f, names, lo, hi, d, ...) \
    { .name = n, .kind = CK_ENUM, .offset = offsetof(st, f), .name_of = names, \
      .min = lo, .max = hi, .def_int = d, __VA_ARGS__ }
#define KEY_ENUM_STR(n, st, f, names, lo, hi, d) \
    { .name = n, .kind = CK_ENUM_STR, .offset = offsetof(st, f), .name_of = names, \
      .min = lo, .max = hi, .def_int = d }
#define KEY_SECTION(n, keys) { .name = n, .kind = CK_OBJECT, .sub = keys }
#define KEY_CUSTOM(n, fn, ...) { .name = n, .kind = CK_CUSTOM, .custom = fn, __VA_ARGS__ }
#define REQUIRED .required = true

/* Expressions (config_expr.c): a stream's "fields" (derived fields) and a
 * metric's "where". */
void cfg_check_derived(cfg_ctx *ctx, const char *path, json_t *v, void *target);
void cfg_check_where(cfg_ctx *ctx, const char *path, json_t *v, void *target);

/* The top-level table (config_keys.c) and the http section's (config_http.c). */
extern const cfg_key cfg_top_keys[];
extern const cfg_key cfg_http_keys[];

/* Walks obj (NULL: absent, fill defaults) with keys into target. */
void cfg_object(cfg_ctx *ctx, const char *path, json_t *obj, const cfg_key *keys, void *target);

/* Appends "path: message" to the load's problems. */
void cfg_err(cfg_ctx *ctx, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Child paths: "parent.key" (or parent["key"] when key is not a plain
 * identifier; just "key" at the top level) and "parent[i]". Both return a
 * malloc'd string, or NULL after flagging ctx->oom; the walkers then skip
 * the child, and the load fails with -ENOMEM. */
char *cfg_path_key(cfg_ctx *ctx, const char *parent, const char *key);
char *cfg_path_idx(cfg_ctx *ctx, const char *parent, size_t i);

/* The bearer token in the file fpath (config_http.c): malloc'd, or NULL
 * after reporting at kpath. The caller wipes it when freeing it. */
char *cfg_load_token(cfg_ctx *ctx, const char *kpath, const char *fpath);

/* The cluster section's table (config_cluster.c) and its rule that
 * needs kafka.partitions, checked once the whole document is read. */
extern const cfg_key cfg_cluster_keys[];
void cfg_cluster_rules(cfg_ctx *ctx, config *c);

/* strdup that flags ctx->oom. */
char *cfg_strdup(cfg_ctx *ctx, const char *s);

/* Value checks shared by the table walker and the custom checks: each
 * returns true when v is good, and reports at path otherwise. */
bool cfg_check_string(cfg_ctx *ctx, const char *path, json_t *v);   /* non-empty string */
bool cfg_check_name(cfg_ctx *ctx, const char *path, json_t *v);
bool cfg_check_topic(cfg_ctx *ctx, const char *path, json_t *v);
bool cfg_check_int(cfg_ctx *ctx, const char *path, json_t *v, long long min, long long max);
