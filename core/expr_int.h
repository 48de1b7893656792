/* expr_int.h - the compiled form of an expression, shared by the compiler
 * (expr_parse.c), the evaluator (expr_eval.c) and the functions
 * (expr_func.c). Not for other files. */
#pragma once
#include "core/expr.h"

enum { EXPR_MAX_ARGS = 16, EXPR_MAX_DEPTH = 200 };

typedef enum {
    N_LIT, N_FIELD, N_CALL,
    N_NEG, N_NOT, N_AND, N_OR,
    N_ADD, N_SUB, N_MUL, N_DIV, N_MOD,
    N_EQ, N_NE, N_LT, N_LE, N_GT, N_GE,
    N_IN, N_LIKE, N_IS_NULL,
} node_op;

typedef struct expr_func {
    const char *name;
    int min_args, max_args;
    /* Static type each argument must have ('n' number, 's' string, 'b'
     * boolean, '*' any), one letter per position; the last one repeats. */
    const char *arg_types;
    expr_type result;
    /* args are evaluated (never null-checked here: each function says
     * what null gives). */
    void (*eval)(const expr_val *args, int nargs, expr_scratch *sc, expr_val *out);
} expr_func;

typedef struct {
    node_op op;
    bool negate;        /* N_IN, N_LIKE, N_IS_NULL: the `not` form */
    expr_type type;     /* what is known before any event */
    int a, b;           /* operand nodes; -1 = none */
    int args, nargs;    /* N_CALL arguments, N_IN items: a run of e->args */
    int slot;           /* N_FIELD */
    const expr_func *fn;/* N_CALL */
    expr_val lit;       /* N_LIT (its string owned by the expr) */
} expr_node;

struct expr {
    expr_node *nodes;
    size_t nnodes, nodes_cap;
    int *args;
    size_t nargs, args_cap;
    char **strs;        /* the string literals' bytes */
    size_t nstrs, strs_cap;
    int root;
};

/* The function called name (case-insensitive), or NULL. */
const expr_func *expr_find_func(const char *name, size_t len);

/* n bytes that stay valid until the scratch is reset; NULL (and sc->oom)
 * when out of memory. */
char *expr_scratch_alloc(expr_scratch *sc, size_t n);

/* Value helpers for the evaluator and the functions. */
static inline void ev_null(expr_val *v) { *v = (expr_val){.kind = EV_NULL}; }
static inline void ev_bool(expr_val *v, bool b) { *v = (expr_val){.kind = EV_BOOL, .b = b}; }
void ev_num(expr_val *v, double d);   /* null unless finite */
static inline void ev_str(expr_val *v, const char *s, size_t len)
{
    *v = (expr_val){.kind = EV_STR, .str = s, .len = len};
}
/* Bytes of the UTF-8 character starting at s (1 for a stray byte). */
size_t utf8_step(const char *s, size_t left);
