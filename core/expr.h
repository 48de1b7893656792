/* expr.h - the expression language (DESIGN.md, "Expressions"): derived
 * fields, filtered metrics, query where/having and post-aggregations.
 *
 * An expression is compiled once: parsed, its field references resolved to
 * slots by the caller, function calls and the types that are known before
 * any event (literals, results of operators and functions) checked. Then
 * it is evaluated once per event or row, with no allocation: string results
 * live in the caller's expr_scratch, whose memory is reused from one
 * evaluation to the next.
 *
 * Values are SQL-like. An operation on null gives null; so does one on a
 * value of the wrong type at run time (a field holding a string where a
 * number is needed) and a division by zero: an event whose expression fails
 * gets null for it, it is never rejected. `and`/`or` use three-valued logic
 * (false and null = false, true or null = true); a `where` keeps only rows
 * for which the expression is true.
 *
 * Syntax, loosest binding first:
 *   a or b | a and b | not a
 *   a = b, a != b (also <>), a < b, a <= b, a > b, a >= b,
 *   a [not] in (x, y, ...), a [not] like 'p%t_rn', a is [not] null
 *   a + b, a - b | a * b, a / b, a % b | -a
 *   literals: 12, 1.5e3, 'it''s', true, false, null; field names (dotted
 *   for nesting: geo.country); function calls: lower(page); ( ... )
 * Keywords and function names are case-insensitive; field names are not.
 * Functions: lower, upper (ASCII letters), length (characters), substr(s,
 * start[, count]) (1-based, characters), split_part(s, delimiter, n)
 * (n-th part, 1-based; negative counts from the end), concat(a, ...)
 * (nulls skipped, numbers and booleans as their text), coalesce(a, ...),
 * if(cond, a, b), abs, floor, ceil, round(x[, digits]) (half away from
 * zero), hour(t) (0..23, UTC) and weekday(t) (1 Monday .. 7 Sunday, UTC) of
 * a time: a number of epoch seconds or an RFC 3339 string.
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "core/event.h"

typedef enum { EV_NULL, EV_BOOL, EV_NUM, EV_STR } ev_kind;

typedef struct {
    ev_kind kind;
    bool b;            /* EV_BOOL */
    double num;        /* EV_NUM: always finite */
    const char *str;   /* EV_STR: UTF-8, not NUL-terminated */
    size_t len;
} expr_val;

/* What is known of a value before any event: a field's type only at run
 * time (ET_ANY). */
typedef enum { ET_ANY, ET_NULL, ET_BOOL, ET_NUM, ET_STR } expr_type;

typedef struct {
    /* Resolves a field name (dotted names kept whole) to the index of its
     * value in the array expr_eval gets, or returns -1 when no such field
     * exists here. May set *type when the field's type is known. */
    int (*resolve)(void *ud, const char *name, size_t len, expr_type *type);
    void *ud;
    /* What a field is called in errors: "unknown dimension 'x' at 1:1"
     * (a query's where); NULL: "field". */
    const char *noun;
} expr_resolver;

typedef struct expr expr;

/* Compiles src. On error returns -EINVAL with *errmsg (malloc'd) saying
 * what and where, "unknown function 'lowr' at 1:1" (line:column, 1-based),
 * or -ENOMEM. */
int expr_compile(const char *src, const expr_resolver *r, expr **out, char **errmsg);
void expr_free(expr *e);   /* accepts NULL */
expr_type expr_result_type(const expr *e);
/* Calls fn with the value index of each field reference of e. */
void expr_foreach_slot(const expr *e, void (*fn)(int slot, void *ud), void *ud);

/* Where string results live: zero it before first use. Results stay
 * valid until expr_scratch_reset, so the derived fields of one event can
 * refer to each other; reset it once per event or row. */
typedef struct expr_scratch {
    struct expr_block *blocks;   /* newest first */
    bool oom;                    /* an allocation failed: results were null */
} expr_scratch;

void expr_scratch_reset(expr_scratch *s);   /* keeps its memory for reuse */
void expr_scratch_free(expr_scratch *s);

/* Evaluates e with vals[i] the value of field slot i (missing and JSON
 * null read as null, objects and arrays as their JSON text). Sets sc->oom,
 * and gives null, only if memory for a string result could not be had. */
void expr_eval(const expr *e, const field_value *vals, expr_scratch *sc, expr_val *out);
/* Whether v is the boolean true (a where keeps only those). */
static inline bool expr_true(const expr_val *v) { return v->kind == EV_BOOL && v->b; }
