/* query.c - parsing the parameters of GET /v1/views/{view}/query.
 *
 * Runs on an HTTP pool thread; touches only the immutable config and the
 * request's own memory, so it takes no lock. Every bad parameter is a 400
 * whose message names it exactly; parameters are checked in a fixed order
 * (view, unknown/duplicate/empty names in request order, then from, to,
 * tz, granularity, max_points, fill, group_by, filter, where, metrics,
 * quantiles, having, order_by, order, limit, format), so the
 * first problem reported does not depend on the parameters' order.
 *
 * Values arrive URL-decoded (libmicrohttpd decodes %XX and '+'). List
 * values are split on every ',' (commas inside values are not supported;
 * metrics splits only outside parentheses and quotes, for its expressions);
 * a filter item is split on its first ':'. Values are compared as exact
 * bytes.
 */
#include "serving/query_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The epoch range of RFC 3339 years 0001..9999, so every bound renders. */
#define EPOCH_MIN (-62135596800LL)
#define EPOCH_MAX 253402300799LL
#define EPOCH_MS_FROM 100000000000LL   /* integers this large are milliseconds */

enum {
    P_FROM, P_TO, P_TZ, P_GRAN, P_MAX_POINTS, P_FILL, P_GROUP_BY, P_FILTER, P_WHERE, P_METRICS,
    P_QUANTILES, P_HAVING, P_ORDER_BY, P_ORDER, P_LIMIT, P_FORMAT, P_PARTIAL, P_N
};

static const char *const param_names[P_N] = {
    "from", "to", "tz", "granularity", "max_points", "fill", "group_by", "filter", "where",
    "metrics", "quantiles", "having", "order_by", "order", "limit", "format", "partial",
};

/* granularity=auto: the finest of these (that the view allows) giving at
 * most max_points buckets over [from, to); month when none does. */
static const char *const auto_ladder[] = {
    "second", "5s", "10s", "15s", "30s", "minute", "5m", "10m", "15m", "30m", "hour", "2h",
    "3h", "6h", "12h", "day", "week", "month",
};

#define MAX_QUANTILES 32
#define MAX_QUANTILE_DECIMALS 9

void qerror_clear(qerror *e)
{
    free(e->msg);
    *e = (qerror){0};
}

/* err = pre + val + post (val: client bytes, may be any bytes). Always
 * returns -EINVAL, or -ENOMEM (status 500) when the message cannot be built. */
int query_fail(qerror *err, int status, const char *pre, const char *val, size_t vlen,
               const char *post)
{
    jbuf b;
    jb_init(&b);
    jb_lit(&b, pre);
    if (val)
        jb_raw(&b, val, vlen);
    if (post)
        jb_lit(&b, post);
    qerror_clear(err);
    err->msg = jb_take(&b, &err->len);
    if (!err->msg) {
        err->status = 500;
        return -ENOMEM;
    }
    err->status = status;
    return -EINVAL;
}

int query_fail_oom(qerror *err)
{
    qerror_clear(err);
    err->status = 500;
    return -ENOMEM;
}

#define fail query_fail
#define fail_oom query_fail_oom

static bool eq(const char *s, size_t len, const char *lit)
{
    return strlen(lit) == len && memcmp(s, lit, len) == 0;
}

/* The next comma-separated item of [*pos, len): 0 when the list is done. */
static bool next_item(const char *s, size_t len, size_t *pos, qstr *item)
{
    if (*pos > len)
        return false;
    const char *comma = memchr(s + *pos, ',', len - *pos);
    size_t end = comma ? (size_t)(comma - s) : len;
    item->s = s + *pos;
    item->len = end - *pos;
    *pos = end + 1;
    return true;
}

static size_t count_items(const char *s, size_t len)
{
    size_t n = 1;
    for (size_t i = 0; i < len; i++)
        n += s[i] == ',';
    return n;
}

static int find_dim(const view_def *v, const qstr *name)
{
    for (size_t i = 0; i < v->ndims; i++)
        if (eq(name->s, name->len, v->dims[i]))
            return (int)i;
    return -1;
}

static int find_metric(const view_def *v, const char *s, size_t len)
{
    for (size_t i = 0; i < v->nmetrics; i++)
        if (eq(s, len, v->metrics[i].name))
            return (int)i;
    return -1;
}

/* Epoch seconds ("-?[0-9]+"), epoch milliseconds (such an integer of
 * absolute value 10^11 or more: 10^11 s is in year 5138, 10^11 ms in
 * 1973) or RFC 3339, floored to seconds. libmicrohttpd
 * turns '+' into ' ' in query strings, so an unescaped "+01:00" offset
 * arrives as " 01:00"; it is read back as '+' (it cannot mean anything
 * else there). 0 or -EINVAL. */
static int parse_time(const char *s, size_t len, int64_t *out)
{
    size_t i = s[0] == '-';
    size_t ndigits = 0;
    while (i + ndigits < len && s[i + ndigits] >= '0' && s[i + ndigits] <= '9')
        ndigits++;
    if (ndigits && i + ndigits == len) {
        int64_t v = 0;
        for (; i < len; i++) {
            if (v > EPOCH_MAX * 1000)
                return -EINVAL;   /* also stops overflow: at most 16 digits get here */
            v = v * 10 + (s[i] - '0');
        }
        if (v >= EPOCH_MS_FROM)
            v = s[0] == '-' ? floor_div(-v, 1000) : v / 1000;
        else if (s[0] == '-')
            v = -v;
        if (v < EPOCH_MIN || v > EPOCH_MAX)
            return -EINVAL;
        *out = v;
        return 0;
    }
    char buf[64];
    if (len >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, s, len);
    if (len >= 6 && buf[len - 6] == ' ' && buf[len - 3] == ':')
        buf[len - 6] = '+';
    int64_t ms;
    if (time_parse_rfc3339(buf, len, &ms) < 0)
        return -EINVAL;
    *out = floor_div(ms, 1000);
    return 0;
}


static int parse_group_by(query *q, const char *s, size_t len, qerror *err)
{
    const view_def *v = q->view;
    size_t n = count_items(s, len);
    if (n > v->ndims)
        n = v->ndims + 1;   /* one past: enough to find the unknown or duplicate */
    q->group = calloc(n, sizeof(*q->group));
    if (!q->group)
        return fail_oom(err);
    size_t pos = 0;
    qstr it;
    while (next_item(s, len, &pos, &it)) {
        if (it.len == 0)
            return fail(err, 400, "empty item in group_by", NULL, 0, NULL);
        int d = find_dim(v, &it);
        if (d < 0)
            return fail(err, 400, "unknown dimension '", it.s, it.len, "' in group_by");
        for (size_t k = 0; k < q->ngroup; k++)
            if (q->group[k] == (size_t)d)
                return fail(err, 400, "duplicate dimension '", it.s, it.len, "' in group_by");
        q->group[q->ngroup++] = (size_t)d;
    }
    return 0;
}

/* Splits a filter item on its first ':'; false when malformed. */
static bool split_filter(const qstr *it, qstr *dim, qstr *val)
{
    const char *colon = memchr(it->s, ':', it->len);
    if (!colon || colon == it->s)
        return false;
    dim->s = it->s;
    dim->len = (size_t)(colon - it->s);
    val->s = colon + 1;
    val->len = it->len - dim->len - 1;
    return true;
}

static int parse_filter(query *q, const char *s, size_t len, qerror *err)
{
    const view_def *v = q->view;
    size_t n = count_items(s, len);
    size_t *per_dim = calloc(v->ndims ? v->ndims : 1, sizeof(*per_dim));
    if (!per_dim)
        return fail_oom(err);
    int rc = 0;
    size_t pos = 0;
    qstr it, dim = {0}, val = {0};
    /* pass 1: validate and count the values of each dimension */
    while (next_item(s, len, &pos, &it)) {
        if (!split_filter(&it, &dim, &val)) {
            rc = fail(err, 400, "malformed filter item '", it.s, it.len,
                      "' (expected dimension:value)");
            goto out;
        }
        int d = find_dim(v, &dim);
        if (d < 0) {
            rc = fail(err, 400, "unknown dimension '", dim.s, dim.len, "' in filter");
            goto out;
        }
        if (per_dim[d]++ == 0)
            q->nfilters++;
    }
    q->filters = calloc(q->nfilters, sizeof(*q->filters));
    qstr *vals = calloc(n, sizeof(*vals));
    if (!q->filters || !vals) {
        free(vals);
        rc = fail_oom(err);
        goto out;
    }
    /* pass 2: one filter per dimension, in view order, values in request
     * order; filters[0].vals owns the shared array */
    size_t f = 0, off = 0;
    for (size_t d = 0; d < v->ndims; d++) {
        if (!per_dim[d])
            continue;
        q->filters[f] = (qfilter){.dim = d, .vals = vals + off};
        off += per_dim[d];
        f++;
    }
    pos = 0;
    while (next_item(s, len, &pos, &it)) {
        split_filter(&it, &dim, &val);
        size_t d = (size_t)find_dim(v, &dim);
        for (f = 0; q->filters[f].dim != d; f++)
            ;
        q->filters[f].vals[q->filters[f].nvals++] = val;
    }
out:
    free(per_dim);
    return rc;
}

/* The next item of metrics: up to a ',' outside parentheses and quoted
 * strings, so a post-aggregation may call round(x, 2). */
static bool next_expr_item(const char *s, size_t len, size_t *pos, qstr *item)
{
    if (*pos > len)
        return false;
    size_t i = *pos;
    int depth = 0;
    char quote = 0;
    for (; i < len; i++) {
        char c = s[i];
        if (quote)
            quote = c == quote ? 0 : quote;   /* '' inside a string: closes, reopens */
        else if (c == '\'' || c == '"')
            quote = c;
        else if (c == '(')
            depth++;
        else if (c == ')' && depth > 0)
            depth--;
        else if (c == ',' && depth == 0)
            break;
    }
    item->s = s + *pos;
    item->len = i - *pos;
    *pos = i + 1;
    return true;
}

/* metrics=m1,m2,name=<expression over metrics>: view metrics and
 * post-aggregations, rendered in this order. */
static int parse_metrics(query *q, const char *s, size_t len, qerror *err)
{
    const view_def *v = q->view;
    size_t pos = 0, n = 0;
    qstr it;
    while (next_expr_item(s, len, &pos, &it))
        n++;
    q->items = calloc(n, sizeof(*q->items));
    if (!q->items)
        return fail_oom(err);
    pos = 0;
    while (next_expr_item(s, len, &pos, &it)) {
        if (it.len == 0)
            return fail(err, 400, "empty item in metrics", NULL, 0, NULL);
        const char *eqs = memchr(it.s, '=', it.len);
        if (eqs) {
            size_t nlen = (size_t)(eqs - it.s);
            int rc = qexpr_post(q, it.s, nlen, eqs + 1, it.len - nlen - 1, err);
            if (rc < 0)
                return rc;
            q->items[q->nitems++] = (qitem){.post = true, .i = q->nposts - 1};
            continue;
        }
        int m = find_metric(v, it.s, it.len);
        if (m < 0)
            return fail(err, 400, "unknown metric '", it.s, it.len, "' in metrics");
        for (size_t k = 0; k < q->nitems; k++)
            if (!q->items[k].post && q->metrics[q->items[k].i] == (size_t)m)
                return fail(err, 400, "duplicate metric '", it.s, it.len, "' in metrics");
        size_t k = 0;   /* a post-aggregation before it may have added it, unrendered */
        while (k < q->nmetrics && q->metrics[k] != (size_t)m)
            k++;
        if (k == q->nmetrics)
            q->metrics[q->nmetrics++] = (size_t)m;
        q->items[q->nitems++] = (qitem){.i = k};
    }
    return 0;
}

/* One quantile as written: "0", "1", or "0." / "1." and 1..9 digits, at
 * most 1. Its name is "p" and the number times 100, written from the
 * digits (no binary rounding): 0.5 -> p50, 0.999 -> p99.9, 1 -> p100. */
static bool parse_quantile(const qstr *it, double *q, char *name, size_t size)
{
    const char *s = it->s;
    size_t len = it->len;
    if (len == 0 || (s[0] != '0' && s[0] != '1'))
        return false;
    const char *frac = "";
    size_t nfrac = 0;
    if (len > 1) {
        if (s[1] != '.' || len == 2 || len - 2 > MAX_QUANTILE_DECIMALS)
            return false;
        frac = s + 2;
        nfrac = len - 2;
    }
    for (size_t i = 0; i < nfrac; i++)
        if (frac[i] < '0' || frac[i] > '9' || (s[0] == '1' && frac[i] != '0'))
            return false;
    char buf[16];
    memcpy(buf, s, len);
    buf[len] = '\0';
    *q = strtod(buf, NULL);
    int pct = (s[0] - '0') * 100 + (nfrac > 0 ? frac[0] - '0' : 0) * 10 +
              (nfrac > 1 ? frac[1] - '0' : 0);
    size_t rest = nfrac > 2 ? nfrac - 2 : 0;
    while (rest > 0 && frac[2 + rest - 1] == '0')
        rest--;
    if (rest)
        snprintf(name, size, "p%d.%.*s", pct, (int)rest, frac + 2);
    else
        snprintf(name, size, "p%d", pct);
    return true;
}

static int parse_quantiles(query *q, const char *s, size_t len, qerror *err)
{
    size_t n = count_items(s, len);
    if (n > MAX_QUANTILES)
        return fail(err, 400, "too many quantiles (at most 32)", NULL, 0, NULL);
    q->qs = calloc(n, sizeof(*q->qs));
    q->qnames = calloc(n, sizeof(*q->qnames));
    if (!q->qs || !q->qnames)
        return fail_oom(err);
    q->nqnames = n;
    size_t pos = 0, k = 0;
    qstr it;
    while (next_item(s, len, &pos, &it)) {
        char name[24];
        if (!parse_quantile(&it, &q->qs[k], name, sizeof(name)))
            return fail(err, 400, "invalid quantile '", it.s, it.len,
                        "' in quantiles (expected a number from 0 to 1, such as 0.99)");
        for (size_t j = 0; j < k; j++)
            if (strcmp(q->qnames[j], name) == 0)
                return fail(err, 400, "duplicate quantile '", it.s, it.len, "' in quantiles");
        if (!(q->qnames[k++] = strdup(name)))
            return fail_oom(err);
    }
    q->rctx = (agg_render_ctx){
        .q = q->qs, .names = (const char *const *)q->qnames, .nq = k, .pick = 0};
    return 0;
}

/* order_by: a metric of the answer, or "metric.pNN", one of the requested
 * quantiles of a quantiles metric. */
static int parse_order_by(query *q, const char *s, size_t len, qerror *err)
{
    const view_def *v = q->view;
    for (size_t i = 0; i < q->nposts; i++)
        if (eq(s, len, q->posts[i].name)) {
            q->order_post = (int)i;
            return 0;
        }
    int m = find_metric(v, s, len);
    const char *dot = NULL;
    for (size_t i = len; m < 0 && i-- > 0;)   /* the longest metric name before a '.' */
        if (s[i] == '.' && (m = find_metric(v, s, i)) >= 0)
            dot = s + i;
    if (m < 0)
        return fail(err, 400, "unknown metric '", s, len, "' in order_by");
    for (size_t k = 0; k < q->nitems; k++)
        if (!q->items[k].post && q->metrics[q->items[k].i] == (size_t)m)
            q->order_by = (int)q->items[k].i;
    if (q->order_by < 0)
        return fail(err, 400, "order_by metric '", s, dot ? (size_t)(dot - s) : len,
                    "' is not among the selected metrics");
    metric_type t = v->metrics[m].type;
    if (!dot && t == MT_QUANTILES)
        return fail(err, 400, "order_by metric '", s, len,
                    "' has quantiles: name one, such as 'latency.p99'");
    if (!dot)
        return 0;
    if (t != MT_QUANTILES) {
        char msg[96];
        snprintf(msg, sizeof(msg), "' is a %s metric; only quantiles metrics have quantiles",
                 metric_type_name(t));
        return fail(err, 400, "invalid order_by '", s, len, msg);
    }
    const char *qn = dot + 1;
    size_t qlen = len - (size_t)(qn - s);
    for (size_t i = 0; i < q->rctx.nq; i++)
        if (eq(qn, qlen, q->rctx.names[i])) {
            q->rctx.pick = i;
            return 0;
        }
    return fail(err, 400, "invalid order_by '", s, len,
                "': that quantile is not among the requested ones (see quantiles)");
}

static int parse_limit(const char *s, size_t len, size_t *out)
{
    if (len == 0 || len > 7)
        return -EINVAL;
    size_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        v = v * 10 + (size_t)(s[i] - '0');
    }
    if (v < 1 || v > QUERY_MAX_LIMIT)
        return -EINVAL;
    *out = v;
    return 0;
}

/* Whether the view's rows divide into buckets b exactly: fixed-length
 * buckets a whole multiple of the view's; calendar ones (months, zoned
 * days) are checked row by row when the query runs. */
static bool view_divides(const view_def *v, const bucket_spec *b)
{
    int64_t w = bucket_width(b);
    return w == 0 || w % gran_next(v->gran, 0) == 0;
}

/* 0, or the 400 of buckets b that the view's rows do not divide into. */
static int check_gran(const query *q, const bucket_spec *b, const char *s, size_t len,
                      qerror *err)
{
    const view_def *v = q->view;
    if (view_divides(v, b))
        return 0;
    char post[96];
    snprintf(post, sizeof(post), "' is %s the view's '%s'",
             bucket_width(b) < gran_next(v->gran, 0) ? "finer than" : "not a whole multiple of",
             gran_name(v->gran));
    return fail(err, 400, "granularity '", s, len, post);
}

static int parse_max_points(const char *s, size_t len, uint64_t *out)
{
    size_t v;
    if (parse_limit(s, len, &v) < 0)
        return -EINVAL;
    *out = v;
    return 0;
}

/* Zoned days, weeks and months: the coarsest UTC unit (hour, minute, not
 * finer than the view's) that every bucket start inside (from, to)
 * is a multiple of. Segments are then read from their hour roll-ups
 * (Europe/Berlin) instead of the view's rows: a level that UTC hours can
 * read, zoned buckets made of whole hours can too. Without both bounds,
 * or past ZONED_CHECK_MAX buckets, the view's own unit (every level
 * decoded; query_run checks each against the buckets). */
#define ZONED_CHECK_MAX 1000

static gran_t zoned_read_gran(const query *q)
{
    gran_t finest = q->view->gran;
    if (!q->has_from || !q->has_to || finest >= GRAN_HOUR)
        return finest;
    bucket_spec b = q->bk;
    bool hours = true, minutes = true;   /* every start so far a whole hour, minute */
    size_t n = 0;
    for (int64_t t = bucket_next(&b, bucket_floor(&b, q->from)); minutes && t < q->to;
         t = bucket_next(&b, t)) {
        if (++n > ZONED_CHECK_MAX)
            return finest;
        hours = hours && t % 3600 == 0;
        minutes = t % 60 == 0;
    }
    return hours ? GRAN_HOUR : minutes ? GRAN_MINUTE : finest;   /* finest < GRAN_HOUR */
}

/* granularity (and tz, max_points): the answer's buckets, their name,
 * and the unit segments are read at. */
static int parse_granularity(query *q, const qparam *g, const qparam *mp, qerror *err)
{
    const view_def *v = q->view;
    int rc;
    q->bk = (bucket_spec){.unit = v->gran, .mult = 1};
    if (g && eq(g->val, g->vlen, "auto")) {
        uint64_t max;
        if (!mp)
            return fail(err, 400, "granularity=auto requires max_points", NULL, 0, NULL);
        if (parse_max_points(mp->val, mp->vlen, &max) < 0)
            return fail(err, 400, "invalid max_points '", mp->val, mp->vlen,
                        "' (expected an integer from 1 to 1000000)");
        if (!q->has_from || !q->has_to)
            return fail(err, 400, "granularity=auto requires from and to (the range it divides)",
                        NULL, 0, NULL);
        size_t n = sizeof(auto_ladder) / sizeof(auto_ladder[0]);
        for (size_t i = 0; i < n; i++) {
            bucket_spec b;
            bucket_parse(auto_ladder[i], strlen(auto_ladder[i]), &b);
            b.zone = q->zone;
            if (!view_divides(v, &b))
                continue;   /* finer than the view, or not a multiple of it */
            q->bk = b;
            if (bucket_count(&b, q->from, q->to, max) <= max)
                break;
        }
    } else if (g) {
        if (bucket_parse(g->val, g->vlen, &q->bk) < 0)
            return fail(err, 400, "unknown granularity '", g->val, g->vlen,
                        "' (expected second, minute, hour, day, week, month, all, a multiple "
                        "such as 15m, 6h or 7d, or auto)");
        if ((rc = check_gran(q, &q->bk, g->val, g->vlen, err)) < 0)
            return rc;
        if (mp)
            return fail(err, 400, "max_points requires granularity=auto", NULL, 0, NULL);
    } else if (mp) {
        return fail(err, 400, "max_points requires granularity=auto", NULL, 0, NULL);
    }
    q->bk.zone = q->zone;
    q->bk.memo_start = q->bk.memo_end = 0;
    bucket_name(&q->bk, q->gran_text, sizeof(q->gran_text));
    q->gran = bucket_read_gran(&q->bk, v->gran);
    if (q->zone && bucket_width(&q->bk) == 0 && q->bk.unit != GRAN_ALL)
        q->gran = zoned_read_gran(q);
    return 0;
}

int query_parse(const config *cfg, const char *view, size_t view_len, const qparam *p,
                size_t np, query *q, qerror *err)
{
    int rc;
    *q = (query){.order_by = -1, .order_post = -1,
                 .max_rows = cfg->http_max_rows > 0 ? (size_t)cfg->http_max_rows : 0,
                 .timeout_ms = cfg->http_query_timeout_ms};

    for (size_t i = 0; i < cfg->nviews && !q->view; i++)
        if (eq(view, view_len, cfg->views[i].name)) {
            q->view = &cfg->views[i];
            q->view_idx = i;
        }
    if (!q->view)
        return fail(err, 404, "unknown view '", view, view_len, "'");
    const view_def *v = q->view;

    const qparam *given[P_N] = {0};
    for (size_t i = 0; i < np; i++) {
        if (p[i].klen == 0 && p[i].vlen == 0)
            continue;   /* an empty segment ("a=1&&b=2", "?&a=1"): nothing given */
        int k = 0;
        while (k < P_N && !eq(p[i].key, p[i].klen, param_names[k]))
            k++;
        if (k == P_N)
            return fail(err, 400, "unknown parameter '", p[i].key, p[i].klen, "'");
        if (given[k])
            return fail(err, 400, "duplicate parameter '", p[i].key, p[i].klen, "'");
        if (!p[i].val || p[i].vlen == 0)
            return fail(err, 400, "empty value for parameter '", p[i].key, p[i].klen, "'");
        given[k] = &p[i];
    }
#define VAL(k) given[k]->val, given[k]->vlen

    if (given[P_FROM]) {
        if (parse_time(VAL(P_FROM), &q->from) < 0)
            return fail(err, 400,
                        "invalid 'from': expected epoch seconds, epoch milliseconds or RFC 3339",
                        NULL, 0, NULL);
        q->has_from = true;
    }
    if (given[P_TO]) {
        if (parse_time(VAL(P_TO), &q->to) < 0)
            return fail(err, 400,
                        "invalid 'to': expected epoch seconds, epoch milliseconds or RFC 3339",
                        NULL, 0, NULL);
        q->has_to = true;
    }
    if (q->has_from && q->has_to && q->from > q->to)
        return fail(err, 400, "'from' is after 'to'", NULL, 0, NULL);

    if (given[P_TZ]) {
        rc = tz_open(VAL(P_TZ), &q->zone);
        if (rc == -ENOMEM)
            return fail_oom(err);
        if (rc < 0)
            return fail(err, 400, "unknown time zone '", VAL(P_TZ),
                        "' in tz (expected an IANA zone such as Europe/Berlin)");
        q->zone_name = given[P_TZ]->val;
        q->zone_len = given[P_TZ]->vlen;
    }
    if ((rc = parse_granularity(q, given[P_GRAN], given[P_MAX_POINTS], err)) < 0)
        return rc;
    if (given[P_FILL]) {
        if (eq(VAL(P_FILL), "zero"))
            q->fill = FILL_ZERO;
        else if (eq(VAL(P_FILL), "null"))
            q->fill = FILL_NULL;
        else
            return fail(err, 400, "invalid fill '", VAL(P_FILL), "' (expected zero or null)");
        if (q->bk.unit != GRAN_ALL && !(q->has_from && q->has_to))
            return fail(err, 400, "fill requires from and to (the buckets it fills)", NULL, 0,
                        NULL);
    }

    if (given[P_GROUP_BY] && (rc = parse_group_by(q, VAL(P_GROUP_BY), err)) < 0)
        return rc;
    if (given[P_FILTER] && (rc = parse_filter(q, VAL(P_FILTER), err)) < 0)
        return rc;
    if (given[P_WHERE] && (rc = qexpr_where(q, VAL(P_WHERE), err)) < 0)
        return rc;

    /* room for every view metric: expressions add the ones they read */
    q->metrics = calloc(v->nmetrics ? v->nmetrics : 1, sizeof(*q->metrics));
    if (!q->metrics)
        return fail_oom(err);
    if (given[P_METRICS]) {
        if ((rc = parse_metrics(q, VAL(P_METRICS), err)) < 0)
            return rc;
    } else {
        q->items = calloc(v->nmetrics ? v->nmetrics : 1, sizeof(*q->items));
        if (!q->items)
            return fail_oom(err);
        for (size_t m = 0; m < v->nmetrics; m++) {
            q->metrics[q->nmetrics++] = m;
            q->items[q->nitems++] = (qitem){.i = m};
        }
    }

    q->rctx = agg_render_default;
    if (given[P_QUANTILES] && (rc = parse_quantiles(q, VAL(P_QUANTILES), err)) < 0)
        return rc;
    if (given[P_HAVING] && (rc = qexpr_having(q, VAL(P_HAVING), err)) < 0)
        return rc;
    if (given[P_ORDER_BY] && (rc = parse_order_by(q, VAL(P_ORDER_BY), err)) < 0)
        return rc;
    if (given[P_ORDER]) {
        if (eq(VAL(P_ORDER), "asc"))
            q->asc = true;
        else if (!eq(VAL(P_ORDER), "desc"))
            return fail(err, 400, "invalid order '", VAL(P_ORDER), "' (expected asc or desc)");
        if (!given[P_ORDER_BY])
            return fail(err, 400, "order requires order_by", NULL, 0, NULL);
    }
    if (given[P_LIMIT] && parse_limit(VAL(P_LIMIT), &q->limit) < 0)
        return fail(err, 400, "invalid limit '", VAL(P_LIMIT),
                    "' (expected an integer from 1 to 1000000)");
    if (given[P_FORMAT]) {
        if (eq(VAL(P_FORMAT), "csv"))
            q->csv = true;
        else if (!eq(VAL(P_FORMAT), "json"))
            return fail(err, 400, "invalid format '", VAL(P_FORMAT), "' (expected json or csv)");
    }
    if (given[P_PARTIAL]) {
        if (eq(VAL(P_PARTIAL), "true"))
            q->allow_partial = true;
        else if (!eq(VAL(P_PARTIAL), "false"))
            return fail(err, 400, "invalid partial '", VAL(P_PARTIAL),
                        "' (expected true or false)");
    }
#undef VAL
    q->layout = agg_layout_new(v->metrics, q->metrics, q->nmetrics);
    return q->layout ? 0 : fail_oom(err);
}

void query_clear(query *q)
{
    free(q->group);
    if (q->filters)
        free(q->filters[0].vals);
    free(q->filters);
    free(q->metrics);
    free(q->layout);
    for (size_t i = 0; q->qnames && i < q->nqnames; i++)
        free(q->qnames[i]);
    free(q->qnames);
    free(q->qs);
    free(q->items);
    qexpr_clear(q);
    tz_free(q->zone);
    *q = (query){.order_by = -1, .order_post = -1};
}
