/* expr_eval.c - evaluating a compiled expression (see expr.h): a walk of
 * its nodes, recursive (the compiler bounds the depth), with strings made
 * by functions placed in the caller's scratch blocks. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/expr_int.h"

/* ---- scratch memory --------------------------------------------------- */

struct expr_block {
    struct expr_block *next;   /* older, smaller */
    size_t cap, used;
    char data[];
};

/* Keeps only the newest (largest) block, emptied: after the first few
 * events one block holds what an event needs and nothing more is
 * allocated. */
void expr_scratch_reset(expr_scratch *sc)
{
    sc->oom = false;
    struct expr_block *b = sc->blocks;
    if (!b)
        return;
    for (struct expr_block *o = b->next, *n; o; o = n) {
        n = o->next;
        free(o);
    }
    b->next = NULL;
    b->used = 0;
}

char *expr_scratch_alloc(expr_scratch *sc, size_t n)
{
    struct expr_block *b = sc->blocks;
    if (!b || b->cap - b->used < n) {
        size_t cap = b ? b->cap * 2 : 256;
        while (cap < n)
            cap *= 2;
        struct expr_block *nb = malloc(sizeof(*nb) + cap);
        if (!nb) {
            sc->oom = true;
            return NULL;
        }
        *nb = (struct expr_block){.next = b, .cap = cap};
        sc->blocks = b = nb;
    }
    char *p = b->data + b->used;
    b->used += n;
    return p;
}

void expr_scratch_free(expr_scratch *sc)
{
    expr_scratch_reset(sc);
    free(sc->blocks);
    sc->blocks = NULL;
}

/* ---- values ----------------------------------------------------------- */

void ev_num(expr_val *v, double d)
{
    if (isfinite(d))
        *v = (expr_val){.kind = EV_NUM, .num = d};
    else
        ev_null(v);
}

size_t utf8_step(const char *s, size_t left)
{
    unsigned char c = (unsigned char)s[0];
    size_t n = c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (n > left)
        return 1;
    for (size_t i = 1; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            return 1;   /* not a sequence: a stray byte is one character */
    return n;
}

static void field_to_val(const field_value *f, expr_val *out)
{
    switch (f->kind) {
    case FV_STRING: case FV_OTHER: ev_str(out, f->str, f->len); break;
    case FV_NUMBER: ev_num(out, f->num); break;
    case FV_BOOL: ev_bool(out, f->len == 4); break;   /* "true" or "false" */
    default: ev_null(out); break;
    }
}

/* <0, 0, >0; *ok false when a and b cannot be compared (null, or kinds
 * that differ). */
static int compare(const expr_val *a, const expr_val *b, bool *ok)
{
    *ok = a->kind == b->kind && a->kind != EV_NULL;
    if (!*ok)
        return 0;
    switch (a->kind) {
    case EV_NUM: return (a->num > b->num) - (a->num < b->num);
    case EV_BOOL: return (int)a->b - (int)b->b;
    case EV_STR: {
        size_t n = a->len < b->len ? a->len : b->len;
        int c = n ? memcmp(a->str, b->str, n) : 0;
        return c ? c : (a->len > b->len) - (a->len < b->len);
    }
    default: return 0;
    }
}

/* SQL LIKE: % any run of characters, _ one character, \ takes the next
 * pattern character literally. Iterative, backtracking only to the last %,
 * so the time is at most the product of the lengths. */
static bool like(const char *s, size_t sl, const char *p, size_t pl)
{
    size_t si = 0, pi = 0, star_p = SIZE_MAX, star_s = 0;
    while (si < sl) {
        if (pi < pl && p[pi] == '%') {
            star_p = ++pi;
            star_s = si;
            continue;
        }
        if (pi < pl && p[pi] == '_') {
            si += utf8_step(s + si, sl - si);
            pi++;
            continue;
        }
        if (pi < pl) {
            size_t q = pi + (p[pi] == '\\' && pi + 1 < pl);
            size_t n = utf8_step(p + q, pl - q);
            if (n <= sl - si && memcmp(s + si, p + q, n) == 0) {
                si += n;
                pi = q + n;
                continue;
            }
        }
        if (star_p == SIZE_MAX)
            return false;
        pi = star_p;   /* let the last % take one more character */
        star_s += utf8_step(s + star_s, sl - star_s);
        si = star_s;
    }
    while (pi < pl && p[pi] == '%')
        pi++;
    return pi == pl;
}

/* ---- the walk --------------------------------------------------------- */

static void eval(const expr *e, int i, const field_value *vals, expr_scratch *sc, expr_val *out);

static void eval_call(const expr *e, const expr_node *n, const field_value *vals, expr_scratch *sc,
                      expr_val *out)
{
    expr_val args[EXPR_MAX_ARGS];
    for (int k = 0; k < n->nargs; k++)
        eval(e, e->args[n->args + k], vals, sc, &args[k]);
    n->fn->eval(args, n->nargs, sc, out);
}

static void eval_arith(node_op op, const expr_val *a, const expr_val *b, expr_val *out)
{
    if (a->kind != EV_NUM || b->kind != EV_NUM) {
        ev_null(out);
        return;
    }
    double x = a->num, y = b->num;
    switch (op) {
    case N_ADD: ev_num(out, x + y); break;
    case N_SUB: ev_num(out, x - y); break;
    case N_MUL: ev_num(out, x * y); break;
    case N_DIV: if (y == 0) ev_null(out); else ev_num(out, x / y); break;
    default: if (y == 0) ev_null(out); else ev_num(out, fmod(x, y)); break;
    }
}

/* and/or: false and anything is false, true or anything is true, else
 * null unless both are known. */
static void eval_logic(const expr *e, const expr_node *n, const field_value *vals, expr_scratch *sc,
                       expr_val *out)
{
    bool is_and = n->op == N_AND;
    expr_val a, b;
    eval(e, n->a, vals, sc, &a);
    if (a.kind == EV_BOOL && a.b != is_and) {
        ev_bool(out, !is_and);   /* decided by the left side alone */
        return;
    }
    eval(e, n->b, vals, sc, &b);
    if (b.kind == EV_BOOL && b.b != is_and)
        ev_bool(out, !is_and);
    else if (a.kind == EV_BOOL && b.kind == EV_BOOL)
        ev_bool(out, is_and);
    else
        ev_null(out);
}

static void eval_in(const expr *e, const expr_node *n, const field_value *vals, expr_scratch *sc,
                    expr_val *out)
{
    expr_val x, item;
    eval(e, n->a, vals, sc, &x);
    if (x.kind == EV_NULL) {
        ev_null(out);
        return;
    }
    bool unknown = false;
    for (int k = 0; k < n->nargs; k++) {
        eval(e, e->args[n->args + k], vals, sc, &item);
        bool ok;
        int c = compare(&x, &item, &ok);
        if (ok && c == 0) {
            ev_bool(out, !n->negate);
            return;
        }
        unknown |= !ok;
    }
    if (unknown)
        ev_null(out);   /* x = null or a value of another type: cannot say it is not there */
    else
        ev_bool(out, n->negate);
}

static void eval(const expr *e, int i, const field_value *vals, expr_scratch *sc, expr_val *out)
{
    const expr_node *n = &e->nodes[i];
    expr_val a, b;
    switch (n->op) {
    case N_LIT: *out = n->lit; return;
    case N_FIELD: field_to_val(&vals[n->slot], out); return;
    case N_CALL: eval_call(e, n, vals, sc, out); return;
    case N_AND: case N_OR: eval_logic(e, n, vals, sc, out); return;
    case N_IN: eval_in(e, n, vals, sc, out); return;
    case N_NEG:
        eval(e, n->a, vals, sc, &a);
        if (a.kind == EV_NUM)
            ev_num(out, -a.num);
        else
            ev_null(out);
        return;
    case N_NOT:
        eval(e, n->a, vals, sc, &a);
        if (a.kind == EV_BOOL)
            ev_bool(out, !a.b);
        else
            ev_null(out);
        return;
    case N_IS_NULL:
        eval(e, n->a, vals, sc, &a);
        ev_bool(out, (a.kind == EV_NULL) != n->negate);
        return;
    case N_LIKE:
        eval(e, n->a, vals, sc, &a);
        eval(e, n->b, vals, sc, &b);
        if (a.kind == EV_STR && b.kind == EV_STR)
            ev_bool(out, like(a.str, a.len, b.str, b.len) != n->negate);
        else
            ev_null(out);
        return;
    case N_ADD: case N_SUB: case N_MUL: case N_DIV: case N_MOD:
        eval(e, n->a, vals, sc, &a);
        eval(e, n->b, vals, sc, &b);
        eval_arith(n->op, &a, &b, out);
        return;
    default: {   /* comparisons */
        eval(e, n->a, vals, sc, &a);
        eval(e, n->b, vals, sc, &b);
        bool ok;
        int c = compare(&a, &b, &ok);
        if (!ok) {
            ev_null(out);
            return;
        }
        bool r = n->op == N_EQ ? c == 0 : n->op == N_NE ? c != 0 : n->op == N_LT ? c < 0
               : n->op == N_LE ? c <= 0 : n->op == N_GT ? c > 0 : c >= 0;
        ev_bool(out, r);
        return;
    }
    }
}

void expr_eval(const expr *e, const field_value *vals, expr_scratch *sc, expr_val *out)
{
    eval(e, e->root, vals, sc, out);
}
