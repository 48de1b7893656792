/* query_int.h - what query.c, query_expr.c and query_run.c share
 * (serving/ private). */
#pragma once
#include "core/expr.h"
#include "serving/query.h"

#define QUERY_MAX_DIMS 16   /* dimensions of a view: the config's limit */

/* err = pre + val + post with the status; returns -EINVAL, or -ENOMEM
 * (status 500) when the message cannot be built. */
int query_fail(qerror *err, int status, const char *pre, const char *val, size_t vlen,
               const char *post);
int query_fail_oom(qerror *err);

/* Parse time (query.c calls them in the fixed parameter order). */
int qexpr_where(query *q, const char *s, size_t len, qerror *err);
/* metrics=...,name=<expression>: one post-aggregation. */
int qexpr_post(query *q, const char *name, size_t nlen, const char *src, size_t slen,
               qerror *err);
int qexpr_having(query *q, const char *s, size_t len, qerror *err);
void qexpr_clear(query *q);

/* Run time, on the query's thread. Whether a row with these values of
 * the view's dimensions passes the where (true without one). */
bool qexpr_where_row(const query *q, const dimval *dims, expr_scratch *sc);
/* Whether the where keeps rows whose value of its only dimension
 * (where_dims[0]) is d. */
bool qexpr_where_value(const query *q, const dimval *d, expr_scratch *sc);
/* Computes the post-aggregations of a result row into post[nposts] (NaN:
 * null) and returns whether having keeps it. cells NULL: every metric is
 * null (a row of fill=null). vals: nslots entries of scratch. */
bool qexpr_row(const query *q, const void *cells, double *post, field_value *vals,
               expr_scratch *sc);
