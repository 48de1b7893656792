/* query_expr.c - the expressions of a query (core/expr.h): where over
 * dimensions, post-aggregations (metrics=name=<expression>) and having
 * over metrics; compiled by query_parse, evaluated by query_run.
 *
 * Runs on the query's thread; a compiled expression is read-only, string
 * results live in the caller's expr_scratch. Dimension values are text:
 * in a where one that reads as a JSON number is a number (status >= 500),
 * "true" and "false" are booleans, null is null, anything else a string.
 * An expression over metrics reads a metric's value as its answer renders
 * it (a count, a sum, an average ...; a quantiles metric through one
 * quantile: latency.p99), or a post-aggregation by name (having only).
 */
#include "serving/query_int.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/jscan.h"

/* ---- where: dimensions ---- */

static int resolve_dim(void *ud, const char *name, size_t len, expr_type *type)
{
    const view_def *v = ud;
    for (size_t i = 0; i < v->ndims; i++)
        if (strlen(v->dims[i]) == len && memcmp(v->dims[i], name, len) == 0)
            return (int)i;
    return -1;
}

/* Compiles (s, len) with resolver r into *out: 0, or the 400
 * "<what><message at l:c>" (what: "where: ", "having: ", "metrics.x: ").
 * *bare, when set by r's resolve: a quantiles metric named without a
 * quantile, which gets its own message. */
static int compile(qerror *err, const char *what, const char *s, size_t len,
                   const expr_resolver *r, const char *const *bare, expr **out)
{
    static const char nul[] = "the expression holds a NUL byte";
    char *src = strndup(s, len), *msg = NULL;
    if (!src)
        return query_fail_oom(err);
    if (strlen(src) != len) {
        free(src);
        return query_fail(err, 400, what, nul, sizeof(nul) - 1, NULL);
    }
    int rc = expr_compile(src, r, out, &msg);
    free(src);
    if (rc == 0)
        return 0;
    if (rc == -EINVAL && bare && *bare) {
        free(msg);
        jbuf b;
        jb_init(&b);
        jb_lit(&b, "metric '");
        jb_lit(&b, *bare);
        jb_lit(&b, "' has quantiles: name one, such as '");
        jb_lit(&b, *bare);
        jb_lit(&b, ".p99'");
        msg = jb_take(&b, NULL);
    }
    if (rc == -ENOMEM || !msg) {
        free(msg);
        return query_fail_oom(err);
    }
    rc = query_fail(err, 400, what, msg, strlen(msg), NULL);
    free(msg);
    return rc;
}

static void add_dim(int slot, void *ud)
{
    query *q = ud;
    for (size_t i = 0; i < q->nwhere_dims; i++)
        if (q->where_dims[i] == (size_t)slot)
            return;
    q->where_dims[q->nwhere_dims++] = (size_t)slot;
}

static bool condition_type(expr_type t)
{
    return t == ET_BOOL || t == ET_ANY || t == ET_NULL;
}

int qexpr_where(query *q, const char *s, size_t len, qerror *err)
{
    expr_resolver r = {resolve_dim, (void *)q->view, "dimension"};
    int rc = compile(err, "where: ", s, len, &r, NULL, &q->where);
    if (rc < 0)
        return rc;
    if (!condition_type(expr_result_type(q->where)))
        return query_fail(err, 400, "where: not a condition (true or false)", NULL, 0, NULL);
    q->where_dims = calloc(q->view->ndims ? q->view->ndims : 1, sizeof(*q->where_dims));
    if (!q->where_dims)
        return query_fail_oom(err);
    expr_foreach_slot(q->where, add_dim, q);
    return 0;
}

/* A dimension's text as a where reads it. */
static void dim_value(const dimval *d, field_value *fv)
{
    *fv = (field_value){.kind = FV_STRING, .str = d->s, .len = d->len};
    if (d->null) {
        fv->kind = FV_NULL;
        return;
    }
    if ((d->len == 4 && memcmp(d->s, "true", 4) == 0) ||
        (d->len == 5 && memcmp(d->s, "false", 5) == 0)) {
        fv->kind = FV_BOOL;
        return;
    }
    char buf[64];
    size_t pos = 0;
    jscan_error e;
    if (d->len == 0 || d->len >= sizeof(buf) || !(d->s[0] == '-' || (d->s[0] >= '0' && d->s[0] <= '9')))
        return;
    if (jscan_number((const unsigned char *)d->s, d->len, &pos, &e) < 0 || pos != d->len)
        return;
    memcpy(buf, d->s, d->len);
    buf[d->len] = '\0';
    double v = strtod(buf, NULL);
    if (isfinite(v)) {
        fv->kind = FV_NUMBER;
        fv->num = v;
    }
}

bool qexpr_where_row(const query *q, const dimval *dims, expr_scratch *sc)
{
    if (!q->where)
        return true;
    field_value vals[QUERY_MAX_DIMS];
    for (size_t i = 0; i < q->nwhere_dims; i++)
        dim_value(&dims[q->where_dims[i]], &vals[q->where_dims[i]]);
    expr_val out;
    expr_scratch_reset(sc);
    expr_eval(q->where, vals, sc, &out);
    return expr_true(&out);
}

bool qexpr_where_value(const query *q, const dimval *d, expr_scratch *sc)
{
    field_value vals[QUERY_MAX_DIMS];
    dim_value(d, &vals[q->where_dims[0]]);
    expr_val out;
    expr_scratch_reset(sc);
    expr_eval(q->where, vals, sc, &out);
    return expr_true(&out);
}

/* ---- post-aggregations and having: metrics ---- */

typedef struct {
    query *q;
    bool posts;            /* post-aggregations' names resolve too (having) */
    const char *bare_quantiles;   /* a quantiles metric named without a quantile */
} mres;

static bool same(const char *a, const char *s, size_t len)
{
    return strlen(a) == len && memcmp(a, s, len) == 0;
}

/* "p99" or "p99.9": the quantile (0.99, 0.999); false otherwise. */
static bool quantile_of(const char *s, size_t len, double *q)
{
    char buf[24];
    if (len < 2 || len >= sizeof(buf) || s[0] != 'p' || s[1] < '0' || s[1] > '9')
        return false;
    memcpy(buf, s + 1, len - 1);
    buf[len - 1] = '\0';
    char *end;
    double pct = strtod(buf, &end);
    for (size_t i = 0; i < len - 1; i++)
        if (!((buf[i] >= '0' && buf[i] <= '9') || buf[i] == '.'))
            return false;
    if (*end || pct < 0 || pct > 100)
        return false;
    *q = pct / 100;
    return true;
}

static int add_slot(query *q, qslot s)
{
    for (size_t i = 0; i < q->nslots; i++)
        if (q->slots[i].post == s.post && q->slots[i].m == s.m && q->slots[i].q == s.q)
            return (int)i;
    qslot *n = realloc(q->slots, (q->nslots + 1) * sizeof(*n));
    if (!n)
        return -ENOMEM;
    q->slots = n;
    q->slots[q->nslots] = s;
    return (int)q->nslots++;
}

/* The index of view metric vm in q->metrics, appended (not rendered)
 * when the answer does not select it. */
static size_t metric_index(query *q, size_t vm)
{
    for (size_t i = 0; i < q->nmetrics; i++)
        if (q->metrics[i] == vm)
            return i;
    q->metrics[q->nmetrics] = vm;   /* room for every view metric: query.c */
    return q->nmetrics++;
}

static int resolve_metric(void *ud, const char *name, size_t len, expr_type *type)
{
    mres *r = ud;
    query *q = r->q;
    const view_def *v = q->view;
    *type = ET_NUM;
    if (r->posts)
        for (size_t i = 0; i < q->nposts; i++)
            if (same(q->posts[i].name, name, len)) {
                *type = ET_ANY;
                return add_slot(q, (qslot){.post = (int)i});
            }
    for (size_t i = 0; i < v->nmetrics; i++) {
        const metric_def *m = &v->metrics[i];
        size_t n = strlen(m->name);
        if (same(m->name, name, len)) {
            if (m->type == MT_QUANTILES) {
                r->bare_quantiles = m->name;
                return -1;
            }
            return add_slot(q, (qslot){.post = -1, .m = metric_index(q, i)});
        }
        double qv;
        if (m->type == MT_QUANTILES && len > n + 1 && memcmp(m->name, name, n) == 0 &&
            name[n] == '.' && quantile_of(name + n + 1, len - n - 1, &qv))
            return add_slot(q, (qslot){.post = -1, .m = metric_index(q, i), .q = qv});
    }
    return -1;
}

/* Compiles (s, len) over the metrics (and, for having, the
 * post-aggregations). */
static int compile_metrics(query *q, const char *what, const char *s, size_t len, bool posts,
                           expr **out, qerror *err)
{
    mres r = {.q = q, .posts = posts};
    expr_resolver res = {resolve_metric, &r, "metric"};
    return compile(err, what, s, len, &res, &r.bare_quantiles, out);
}

static bool name_ok(const char *s, size_t len)
{
    if (len == 0 || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

int qexpr_post(query *q, const char *name, size_t nlen, const char *src, size_t slen,
               qerror *err)
{
    const view_def *v = q->view;
    if (!name_ok(name, nlen))
        return query_fail(err, 400, "invalid post-aggregation name '", name, nlen,
                          "' in metrics (letters, digits and _)");
    for (size_t i = 0; i < v->nmetrics; i++)
        if (same(v->metrics[i].name, name, nlen))
            return query_fail(err, 400, "post-aggregation '", name, nlen,
                              "' in metrics has the name of a metric");
    for (size_t i = 0; i < q->nposts; i++)
        if (same(q->posts[i].name, name, nlen))
            return query_fail(err, 400, "duplicate post-aggregation '", name, nlen,
                              "' in metrics");
    qpost *n = realloc(q->posts, (q->nposts + 1) * sizeof(*n));
    if (!n)
        return query_fail_oom(err);
    q->posts = n;
    qpost *p = &q->posts[q->nposts];
    *p = (qpost){.name = strndup(name, nlen)};
    if (!p->name)
        return query_fail_oom(err);
    q->nposts++;
    jbuf what;
    jb_init(&what);
    jb_lit(&what, "metrics.");
    jb_raw(&what, name, nlen);
    jb_lit(&what, ": ");
    char *w = jb_take(&what, NULL);
    if (!w)
        return query_fail_oom(err);
    int rc = compile_metrics(q, w, src, slen, false, &p->e, err);
    if (rc == 0 && (expr_result_type(p->e) == ET_BOOL || expr_result_type(p->e) == ET_STR))
        rc = query_fail(err, 400, w, NULL, 0, "not a number");
    free(w);
    return rc;
}

int qexpr_having(query *q, const char *s, size_t len, qerror *err)
{
    int rc = compile_metrics(q, "having: ", s, len, true, &q->having, err);
    if (rc == 0 && !condition_type(expr_result_type(q->having)))
        rc = query_fail(err, 400, "having: not a condition (true or false)", NULL, 0, NULL);
    return rc;
}

void qexpr_clear(query *q)
{
    expr_free(q->where);
    free(q->where_dims);
    for (size_t i = 0; i < q->nposts; i++) {
        free(q->posts[i].name);
        expr_free(q->posts[i].e);
    }
    free(q->posts);
    free(q->slots);
    expr_free(q->having);
}

static void num_value(field_value *fv, bool null, double v)
{
    *fv = null || !isfinite(v) ? (field_value){.kind = FV_NULL}
                               : (field_value){.kind = FV_NUMBER, .num = v, .str = "", .len = 0};
}

bool qexpr_row(const query *q, const void *cells, double *post, field_value *vals,
               expr_scratch *sc)
{
    for (size_t i = 0; i < q->nslots; i++) {
        const qslot *s = &q->slots[i];
        if (s->post >= 0)
            continue;
        agg_render_ctx c = {.q = &s->q, .nq = 1};
        agg_value av = cells ? agg_read(q->layout, s->m, cells, &c) : (agg_value){AV_NULL, 0, 0};
        num_value(&vals[i], av.kind == AV_NULL, av.kind == AV_INT ? (double)av.i : av.d);
    }
    for (size_t p = 0; p < q->nposts; p++) {
        expr_val out;
        expr_scratch_reset(sc);
        expr_eval(q->posts[p].e, vals, sc, &out);
        post[p] = out.kind == EV_NUM ? out.num : NAN;
    }
    if (!q->having)
        return true;
    for (size_t i = 0; i < q->nslots; i++)
        if (q->slots[i].post >= 0)
            num_value(&vals[i], isnan(post[q->slots[i].post]), post[q->slots[i].post]);
    expr_val out;
    expr_scratch_reset(sc);
    expr_eval(q->having, vals, sc, &out);
    return expr_true(&out);
}
