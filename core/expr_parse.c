/* expr_parse.c - compiling an expression (see expr.h): a hand-written
 * recursive-descent parser over a small lexer, one function per precedence
 * level, checking types as it builds the nodes. The first error stops the
 * compile and says where it is. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/expr_int.h"
#include "core/strutil.h"

typedef enum {
    T_END, T_NUM, T_STR, T_IDENT, T_QIDENT, T_LPAREN, T_RPAREN, T_COMMA,
    T_PLUS, T_MINUS, T_STAR, T_SLASH, T_PERCENT,
    T_EQ, T_NE, T_LT, T_LE, T_GT, T_GE,
} tok_kind;

typedef struct {
    tok_kind kind;
    size_t at, len;     /* the token's bytes in the source */
} token;

typedef struct {
    const char *src;
    size_t pos;         /* where the lexer is */
    token tok;          /* the current token */
    const expr_resolver *res;
    expr *e;
    int depth;
    char *err;          /* the first error, malloc'd */
    bool oom;
} parser;

/* ---- errors ----------------------------------------------------------- */

static void position(const char *src, size_t at, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < at && src[i]; i++) {
        if (src[i] == '\n') {
            (*line)++;
            *col = 1;
        } else if (((unsigned char)src[i] & 0xC0) != 0x80) {
            (*col)++;   /* characters, not bytes */
        }
    }
}

__attribute__((format(printf, 3, 4)))
static int fail(parser *p, size_t at, const char *fmt, ...)
{
    if (p->err || p->oom)
        return -1;
    char *what = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&what, fmt, ap) < 0)
        what = NULL;
    va_end(ap);
    int line, col;
    position(p->src, at, &line, &col);
    p->err = what ? str_printf("%s at %d:%d", what, line, col) : NULL;
    free(what);
    if (!p->err)
        p->oom = true;
    return -1;
}

static int fail_oom(parser *p)
{
    p->oom = true;
    return -1;
}

/* ---- lexer ------------------------------------------------------------ */

static bool ident_start(char c) { return isalpha((unsigned char)c) || c == '_'; }
static bool ident_char(char c) { return isalnum((unsigned char)c) || c == '_'; }

/* Reads the next token into p->tok. */
static int next(parser *p)
{
    const char *s = p->src;
    size_t i = p->pos;
    while (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')
        i++;
    token t = {.at = i};
    char c = s[i];
    if (!c) {
        t.kind = T_END;
    } else if (isdigit((unsigned char)c) || (c == '.' && isdigit((unsigned char)s[i + 1]))) {
        size_t j = i;
        while (isdigit((unsigned char)s[j]))
            j++;
        if (s[j] == '.')
            for (j++; isdigit((unsigned char)s[j]);)
                j++;
        if ((s[j] == 'e' || s[j] == 'E') &&
            (isdigit((unsigned char)s[j + 1]) ||
             ((s[j + 1] == '+' || s[j + 1] == '-') && isdigit((unsigned char)s[j + 2])))) {
            for (j += 2; isdigit((unsigned char)s[j]);)
                j++;
        }
        if (ident_char(s[j]) || s[j] == '.')
            return fail(p, i, "malformed number");
        t.kind = T_NUM;
        t.len = j - i;
    } else if (c == '\'' || c == '"') {
        /* 'string' or "field name"; the quote is doubled inside */
        size_t j = i + 1;
        for (;; j++) {
            if (!s[j])
                return fail(p, i, c == '\'' ? "unterminated string" : "unterminated quoted name");
            if (s[j] == c) {
                if (s[j + 1] != c)
                    break;
                j++;
            }
        }
        t.kind = c == '\'' ? T_STR : T_QIDENT;
        t.len = j + 1 - i;
    } else if (ident_start(c)) {
        size_t j = i;
        for (;;) {   /* a dotted name is one token: geo.country */
            while (ident_char(s[j]))
                j++;
            if (s[j] == '.' && ident_start(s[j + 1]))
                j++;
            else
                break;
        }
        t.kind = T_IDENT;
        t.len = j - i;
    } else {
        static const struct { const char *text; tok_kind kind; } ops[] = {
            {"<=", T_LE}, {">=", T_GE}, {"<>", T_NE}, {"!=", T_NE}, {"==", T_EQ},
            {"(", T_LPAREN}, {")", T_RPAREN}, {",", T_COMMA}, {"+", T_PLUS}, {"-", T_MINUS},
            {"*", T_STAR}, {"/", T_SLASH}, {"%", T_PERCENT}, {"=", T_EQ}, {"<", T_LT},
            {">", T_GT},
        };
        for (size_t k = 0; k < sizeof(ops) / sizeof(ops[0]); k++) {
            size_t n = strlen(ops[k].text);
            if (strncmp(s + i, ops[k].text, n) == 0) {
                t.kind = ops[k].kind;
                t.len = n;
                break;
            }
        }
        if (!t.len) {
            size_t n = utf8_step(s + i, strlen(s + i));
            return fail(p, i, "unexpected character '%.*s'", (int)n, s + i);
        }
    }
    p->tok = t;
    p->pos = t.at + t.len;
    return 0;
}

static bool is_keyword(const parser *p, const char *kw)
{
    return p->tok.kind == T_IDENT && p->tok.len == strlen(kw) &&
           strncasecmp(p->src + p->tok.at, kw, p->tok.len) == 0;
}

static bool reserved(const char *s, size_t len)
{
    static const char *const words[] = {"and", "or", "not", "in", "like", "is",
                                        "null", "true", "false"};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (len == strlen(words[i]) && strncasecmp(s, words[i], len) == 0)
            return true;
    return false;
}

/* ---- nodes ------------------------------------------------------------ */

static int add_node(parser *p, expr_node n)
{
    expr *e = p->e;
    if (e->nnodes == e->nodes_cap) {
        size_t cap = e->nodes_cap ? e->nodes_cap * 2 : 16;
        expr_node *nn = realloc(e->nodes, cap * sizeof(*nn));
        if (!nn)
            return fail_oom(p);
        e->nodes = nn;
        e->nodes_cap = cap;
    }
    e->nodes[e->nnodes] = n;
    return (int)e->nnodes++;
}

static expr_node *node(parser *p, int i) { return &p->e->nodes[i]; }

/* Appends the list items to e->args as one run; returns its start. */
static int add_args(parser *p, const int *items, int n)
{
    expr *e = p->e;
    if (e->nargs + (size_t)n > e->args_cap) {
        size_t cap = e->args_cap ? e->args_cap * 2 : 16;
        while (cap < e->nargs + (size_t)n)
            cap *= 2;
        int *na = realloc(e->args, cap * sizeof(*na));
        if (!na)
            return fail_oom(p);
        e->args = na;
        e->args_cap = cap;
    }
    memcpy(e->args + e->nargs, items, (size_t)n * sizeof(*items));
    e->nargs += (size_t)n;
    return (int)(e->nargs - (size_t)n);
}

/* The text of a quoted token without its quotes, doubled quotes undone;
 * owned by the expr. */
static char *unquote(parser *p, const token *t, size_t *len)
{
    expr *e = p->e;
    if (e->nstrs == e->strs_cap) {
        size_t cap = e->strs_cap ? e->strs_cap * 2 : 8;
        char **ns = realloc(e->strs, cap * sizeof(*ns));
        if (!ns) {
            fail_oom(p);
            return NULL;
        }
        e->strs = ns;
        e->strs_cap = cap;
    }
    const char *s = p->src + t->at;
    char q = s[0];
    char *out = malloc(t->len);
    if (!out) {
        fail_oom(p);
        return NULL;
    }
    size_t n = 0;
    for (size_t i = 1; i + 1 < t->len; i++) {
        out[n++] = s[i];
        if (s[i] == q)
            i++;   /* the second of a doubled quote */
    }
    out[n] = '\0';
    e->strs[e->nstrs++] = out;
    *len = n;
    return out;
}

static const char *type_name(expr_type t)
{
    switch (t) {
    case ET_NUM: return "a number";
    case ET_STR: return "a string";
    case ET_BOOL: return "a boolean";
    case ET_NULL: return "null";
    default: return "a value";
    }
}

/* Whether a value of static type have can be used where want is needed:
 * null and field values (known at run time only) always can. */
static bool fits(expr_type have, expr_type want)
{
    return want == ET_ANY || have == ET_ANY || have == ET_NULL || have == want;
}

/* ---- grammar ---------------------------------------------------------- */

static int parse_or(parser *p);

static int parse_call(parser *p, token name)
{
    const expr_func *fn = expr_find_func(p->src + name.at, name.len);
    if (!fn)
        return fail(p, name.at, "unknown function '%.*s'", (int)name.len, p->src + name.at);
    int items[EXPR_MAX_ARGS];
    int n = 0;
    if (next(p) < 0)   /* past '(' */
        return -1;
    if (p->tok.kind != T_RPAREN) {
        for (;;) {
            if (n == EXPR_MAX_ARGS)
                return fail(p, p->tok.at, "too many arguments to %s (at most %d)", fn->name,
                            EXPR_MAX_ARGS);
            size_t at = p->tok.at;
            int a = parse_or(p);
            if (a < 0)
                return -1;
            size_t k = strlen(fn->arg_types);
            char want = fn->arg_types[(size_t)n < k ? (size_t)n : k - 1];
            expr_type wt = want == 'n' ? ET_NUM : want == 's' ? ET_STR : want == 'b' ? ET_BOOL : ET_ANY;
            if (!fits(node(p, a)->type, wt))
                return fail(p, at, "argument %d of %s must be %s, not %s", n + 1, fn->name,
                            type_name(wt), type_name(node(p, a)->type));
            items[n++] = a;
            if (p->tok.kind == T_COMMA) {
                if (next(p) < 0)
                    return -1;
                continue;
            }
            if (p->tok.kind != T_RPAREN)
                return fail(p, p->tok.at, "expected ',' or ')' in the arguments of %s", fn->name);
            break;
        }
    }
    if (n < fn->min_args || n > fn->max_args) {
        if (fn->min_args == fn->max_args)
            return fail(p, name.at, "%s takes %d argument%s, not %d", fn->name, fn->min_args,
                        fn->min_args == 1 ? "" : "s", n);
        if (fn->max_args == EXPR_MAX_ARGS)
            return fail(p, name.at, "%s takes at least %d argument%s", fn->name, fn->min_args,
                        fn->min_args == 1 ? "" : "s");
        return fail(p, name.at, "%s takes %d to %d arguments, not %d", fn->name, fn->min_args,
                    fn->max_args, n);
    }
    if (next(p) < 0)   /* past ')' */
        return -1;
    int args = add_args(p, items, n);
    if (args < 0)
        return -1;
    return add_node(p, (expr_node){.op = N_CALL, .type = fn->result, .a = -1, .b = -1,
                                   .args = args, .nargs = n, .fn = fn});
}

static int parse_field(parser *p, token t)
{
    const char *name = p->src + t.at;
    size_t len = t.len;
    if (t.kind == T_QIDENT) {
        name = unquote(p, &t, &len);
        if (!name)
            return -1;
    }
    expr_type type = ET_ANY;
    int slot = p->res && p->res->resolve ? p->res->resolve(p->res->ud, name, len, &type) : -1;
    if (slot == -ENOMEM)
        return fail_oom(p);
    if (slot < 0)
        return fail(p, t.at, "unknown %s '%.*s'", p->res && p->res->noun ? p->res->noun : "field",
                    (int)len, name);
    return add_node(p, (expr_node){.op = N_FIELD, .type = type, .a = -1, .b = -1, .slot = slot});
}

static int parse_primary(parser *p)
{
    token t = p->tok;
    switch (t.kind) {
    case T_NUM: {
        char buf[64];
        if (t.len >= sizeof(buf))
            return fail(p, t.at, "number too long");
        memcpy(buf, p->src + t.at, t.len);
        buf[t.len] = '\0';
        expr_val v;
        ev_num(&v, strtod(buf, NULL));
        if (v.kind == EV_NULL)
            return fail(p, t.at, "number out of range");
        if (next(p) < 0)
            return -1;
        return add_node(p, (expr_node){.op = N_LIT, .type = ET_NUM, .a = -1, .b = -1, .lit = v});
    }
    case T_STR: {
        size_t len;
        const char *s = unquote(p, &t, &len);
        if (!s || next(p) < 0)
            return -1;
        expr_val v;
        ev_str(&v, s, len);
        return add_node(p, (expr_node){.op = N_LIT, .type = ET_STR, .a = -1, .b = -1, .lit = v});
    }
    case T_QIDENT:
        if (next(p) < 0)
            return -1;
        return parse_field(p, t);
    case T_IDENT: {
        expr_val v;
        expr_type type;
        if (is_keyword(p, "null")) {
            ev_null(&v);
            type = ET_NULL;
        } else if (is_keyword(p, "true") || is_keyword(p, "false")) {
            ev_bool(&v, is_keyword(p, "true"));
            type = ET_BOOL;
        } else if (reserved(p->src + t.at, t.len)) {
            return fail(p, t.at, "unexpected '%.*s'", (int)t.len, p->src + t.at);
        } else {
            if (next(p) < 0)
                return -1;
            if (p->tok.kind == T_LPAREN)
                return parse_call(p, t);
            return parse_field(p, t);
        }
        if (next(p) < 0)
            return -1;
        return add_node(p, (expr_node){.op = N_LIT, .type = type, .a = -1, .b = -1, .lit = v});
    }
    case T_LPAREN: {
        if (next(p) < 0)
            return -1;
        int a = parse_or(p);
        if (a < 0)
            return -1;
        if (p->tok.kind != T_RPAREN)
            return fail(p, p->tok.at, "expected ')'");
        if (next(p) < 0)
            return -1;
        return a;
    }
    case T_END:
        return fail(p, t.at, "unexpected end of expression");
    default:
        return fail(p, t.at, "unexpected '%.*s'", (int)t.len, p->src + t.at);
    }
}

/* Guards every level that recurses, so a hostile expression cannot exhaust
 * the stack (here or in the evaluator, which recurses as deep). */
static int enter(parser *p)
{
    if (++p->depth > EXPR_MAX_DEPTH)
        return fail(p, p->tok.at, "expression nested too deeply (more than %d levels)",
                    EXPR_MAX_DEPTH);
    return 0;
}

static int unary_node(parser *p, node_op op, int a, size_t at)
{
    expr_type want = op == N_NEG ? ET_NUM : ET_BOOL;
    if (!fits(node(p, a)->type, want))
        return fail(p, at, "'%s' needs %s, not %s", op == N_NEG ? "-" : "not", type_name(want),
                    type_name(node(p, a)->type));
    return add_node(p, (expr_node){.op = op, .type = want, .a = a, .b = -1});
}

static int parse_unary(parser *p)
{
    if (p->tok.kind != T_MINUS)
        return parse_primary(p);
    size_t at = p->tok.at;
    if (enter(p) < 0 || next(p) < 0)
        return -1;
    int a = parse_unary(p);
    p->depth--;
    return a < 0 ? -1 : unary_node(p, N_NEG, a, at);
}

/* A binary operator node, its operand types checked. */
static int binary_node(parser *p, node_op op, int a, int b, const token *optok)
{
    expr_type ta = node(p, a)->type, tb = node(p, b)->type;
    const char *text = p->src + optok->at;
    int tl = (int)optok->len;
    expr_type result;
    if (op == N_AND || op == N_OR) {
        if (!fits(ta, ET_BOOL) || !fits(tb, ET_BOOL))
            return fail(p, optok->at, "'%.*s' needs booleans, not %s", tl, text,
                        type_name(fits(ta, ET_BOOL) ? tb : ta));
        result = ET_BOOL;
    } else if (op >= N_ADD && op <= N_MOD) {
        if (!fits(ta, ET_NUM) || !fits(tb, ET_NUM))
            return fail(p, optok->at, "'%.*s' needs numbers, not %s", tl, text,
                        type_name(fits(ta, ET_NUM) ? tb : ta));
        result = ET_NUM;
    } else {   /* comparisons */
        if (ta != ET_ANY && tb != ET_ANY && ta != ET_NULL && tb != ET_NULL && ta != tb)
            return fail(p, optok->at, "cannot compare %s with %s", type_name(ta), type_name(tb));
        result = ET_BOOL;
    }
    return add_node(p, (expr_node){.op = op, .type = result, .a = a, .b = b});
}

static int parse_mul(parser *p)
{
    int base = p->depth;   /* each operator of a chain nests one level deeper */
    int a = parse_unary(p);
    while (a >= 0 && (p->tok.kind == T_STAR || p->tok.kind == T_SLASH || p->tok.kind == T_PERCENT)) {
        token op = p->tok;
        if (enter(p) < 0 || next(p) < 0)
            return -1;
        int b = parse_unary(p);
        if (b < 0)
            return -1;
        a = binary_node(p, op.kind == T_STAR ? N_MUL : op.kind == T_SLASH ? N_DIV : N_MOD, a, b, &op);
    }
    p->depth = base;
    return a;
}

static int parse_add(parser *p)
{
    int base = p->depth;   /* each operator of a chain nests one level deeper */
    int a = parse_mul(p);
    while (a >= 0 && (p->tok.kind == T_PLUS || p->tok.kind == T_MINUS)) {
        token op = p->tok;
        if (enter(p) < 0 || next(p) < 0)
            return -1;
        int b = parse_mul(p);
        if (b < 0)
            return -1;
        a = binary_node(p, op.kind == T_PLUS ? N_ADD : N_SUB, a, b, &op);
    }
    p->depth = base;
    return a;
}

/* a [not] in (x, ...), after the `in` */
static int parse_in(parser *p, int a, bool negate)
{
    if (next(p) < 0)
        return -1;
    if (p->tok.kind != T_LPAREN)
        return fail(p, p->tok.at, "expected '(' after in");
    int items[256];
    int n = 0;
    do {
        if (next(p) < 0)
            return -1;
        if (n == (int)(sizeof(items) / sizeof(items[0])))
            return fail(p, p->tok.at, "too many values in an in list (at most 256)");
        size_t at = p->tok.at;
        int it = parse_add(p);
        if (it < 0)
            return -1;
        expr_type ta = node(p, a)->type, ti = node(p, it)->type;
        if (ta != ET_ANY && ti != ET_ANY && ta != ET_NULL && ti != ET_NULL && ta != ti)
            return fail(p, at, "cannot compare %s with %s", type_name(ta), type_name(ti));
        items[n++] = it;
    } while (p->tok.kind == T_COMMA);
    if (p->tok.kind != T_RPAREN)
        return fail(p, p->tok.at, "expected ',' or ')' in the in list");
    if (next(p) < 0)
        return -1;
    int args = add_args(p, items, n);
    if (args < 0)
        return -1;
    return add_node(p, (expr_node){.op = N_IN, .negate = negate, .type = ET_BOOL, .a = a,
                                   .b = -1, .args = args, .nargs = n});
}

static int parse_cmp(parser *p)
{
    int a = parse_add(p);
    if (a < 0)
        return -1;
    static const struct { tok_kind t; node_op op; } cmps[] = {
        {T_EQ, N_EQ}, {T_NE, N_NE}, {T_LT, N_LT}, {T_LE, N_LE}, {T_GT, N_GT}, {T_GE, N_GE},
    };
    for (size_t i = 0; i < sizeof(cmps) / sizeof(cmps[0]); i++) {
        if (p->tok.kind != cmps[i].t)
            continue;
        token op = p->tok;
        if (next(p) < 0)
            return -1;
        int b = parse_add(p);
        return b < 0 ? -1 : binary_node(p, cmps[i].op, a, b, &op);
    }
    token first = p->tok;
    if (is_keyword(p, "is")) {
        if (next(p) < 0)
            return -1;
        bool negate = is_keyword(p, "not");
        if (negate && next(p) < 0)
            return -1;
        if (!is_keyword(p, "null"))
            return fail(p, p->tok.at, "expected null after is%s", negate ? " not" : "");
        if (next(p) < 0)
            return -1;
        return add_node(p, (expr_node){.op = N_IS_NULL, .negate = negate, .type = ET_BOOL,
                                       .a = a, .b = -1});
    }
    bool negate = is_keyword(p, "not");
    if (negate && next(p) < 0)
        return -1;
    if (is_keyword(p, "in"))
        return parse_in(p, a, negate);
    if (is_keyword(p, "like")) {
        token op = p->tok;
        if (next(p) < 0)
            return -1;
        int b = parse_add(p);
        if (b < 0)
            return -1;
        if (!fits(node(p, a)->type, ET_STR) || !fits(node(p, b)->type, ET_STR))
            return fail(p, op.at, "'like' needs strings, not %s",
                        type_name(fits(node(p, a)->type, ET_STR) ? node(p, b)->type
                                                                  : node(p, a)->type));
        return add_node(p, (expr_node){.op = N_LIKE, .negate = negate, .type = ET_BOOL, .a = a,
                                       .b = b});
    }
    if (negate)
        return fail(p, first.at, "expected in or like after not");
    return a;
}

static int parse_not(parser *p)
{
    if (!is_keyword(p, "not"))
        return parse_cmp(p);
    size_t at = p->tok.at;
    if (enter(p) < 0 || next(p) < 0)
        return -1;
    int a = parse_not(p);
    p->depth--;
    return a < 0 ? -1 : unary_node(p, N_NOT, a, at);
}

static int parse_and(parser *p)
{
    int base = p->depth;   /* each operator of a chain nests one level deeper */
    int a = parse_not(p);
    while (a >= 0 && is_keyword(p, "and")) {
        token op = p->tok;
        if (enter(p) < 0 || next(p) < 0)
            return -1;
        int b = parse_not(p);
        if (b < 0)
            return -1;
        a = binary_node(p, N_AND, a, b, &op);
    }
    p->depth = base;
    return a;
}

static int parse_or(parser *p)
{
    int base = p->depth;
    if (enter(p) < 0)
        return -1;
    int a = parse_and(p);
    while (a >= 0 && is_keyword(p, "or")) {
        token op = p->tok;
        if (enter(p) < 0 || next(p) < 0)
            return -1;
        int b = parse_and(p);
        if (b < 0)
            return -1;
        a = binary_node(p, N_OR, a, b, &op);
    }
    p->depth = base;
    return a;
}

/* ---- the entry points ------------------------------------------------- */

int expr_compile(const char *src, const expr_resolver *r, expr **out, char **errmsg)
{
    *out = NULL;
    *errmsg = NULL;
    expr *e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    parser p = {.src = src, .res = r, .e = e};
    int root = -1;
    if (next(&p) == 0) {
        root = parse_or(&p);
        if (root >= 0 && p.tok.kind != T_END)
            root = fail(&p, p.tok.at, "unexpected '%.*s' after the expression", (int)p.tok.len,
                        src + p.tok.at);
    }
    if (root < 0) {
        expr_free(e);
        if (p.oom) {
            free(p.err);
            return -ENOMEM;
        }
        *errmsg = p.err;
        return -EINVAL;
    }
    e->root = root;
    *out = e;
    return 0;
}

void expr_free(expr *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->nstrs; i++)
        free(e->strs[i]);
    free(e->strs);
    free(e->nodes);
    free(e->args);
    free(e);
}

expr_type expr_result_type(const expr *e)
{
    return e->nodes[e->root].type;
}

void expr_foreach_slot(const expr *e, void (*fn)(int slot, void *ud), void *ud)
{
    for (size_t i = 0; i < e->nnodes; i++)
        if (e->nodes[i].op == N_FIELD)
            fn(e->nodes[i].slot, ud);
}
