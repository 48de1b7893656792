/* query_run.c - executing a parsed query and rendering its answer.
 *
 * Runs on a query pool thread (serving/qpool.h), on a pinned snapshot,
 * outside any lock. The batch segments come to scan_segment (dictionaries,
 * levels, row ranges; rows gathered per answer group first), the rows of
 * the pending and live runs to scan_row (range check, filter, one
 * vtable_upsert into the query's private result table and a merge per
 * selected metric). Rows with equal keys from several layers merge in
 * that table; a where is checked per row (per dictionary value when it
 * reads one dimension). After the scan: fill, post-aggregations and
 * having (query_expr.c), ordering, limit and rendering.
 *
 * The time budget (query.deadline_ms) is checked by query_expired(): every
 * 1024 rows in the scan callback (a clock read per row would cost more
 * than the row) and between stages. A query past it stops where it is and
 * is answered 503; nothing of it is cached.
 */
#include "serving/query_int.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/agg.h"
#include "core/failpoint.h"
#include "core/vtable.h"
#include "serving/cluster.h"
#include "serving/partial.h"
#include "serving/qcache.h"
#include "core/metrics.h"

METRIC_COUNTER(m_qcache, "lambdad_query_cache_total",
               "Queries by how the answer cache served them: hit (unchanged since), advance "
               "(moved forward by the transactions since), miss (computed afresh).", "result");
METRIC_COUNTER(m_timeouts, "lambdad_query_timeouts_total",
               "Queries abandoned past http.limits.query_timeout_ms (answered 503).");

typedef struct {
    const query *q;
    vtable *t;
    dimval *key;          /* q->ngroup values, scratch for the upsert */
    size_t cap;           /* more result rows than this: stop, the answer is too big; 0: none */
    uint32_t rows;        /* rows seen, for the time budget's checks */
    bucket_spec bk;       /* the query's, with this scan's memo */
    bool calendar;        /* zoned days, weeks or months: rows may straddle buckets */
    int64_t cut_at;       /* SCAN_UNALIGNED: the bucket start that cuts a row */
    expr_scratch sc;      /* the where's strings */
} scan_ctx;

#define SCAN_TOO_MANY 1   /* scan_row's "stop": over http.limits.max_rows */
#define SCAN_EXPIRED 2    /* scan_row's "stop": past the deadline, or the server stops */
#define SCAN_UNALIGNED 3  /* a stored bucket spans two answer buckets (zoned days) */
#define EXPIRY_CHECK_ROWS 1024   /* a power of two */

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Whether q must be abandoned: past its deadline, or the server stops.
 * Reads the clock: call it between stages, and from a scan callback
 * every EXPIRY_CHECK_ROWS rows (scan_expired). */
static bool query_expired(const query *q)
{
    if (q->stop && atomic_load_explicit(q->stop, memory_order_relaxed))
        return true;
    return q->deadline_ms && now_ms() >= q->deadline_ms;
}

/* In a scan callback, once per row. */
static bool scan_expired(scan_ctx *c)
{
    return (++c->rows & (EXPIRY_CHECK_ROWS - 1)) == 0 && query_expired(c->q);
}

static bool dim_matches(const dimval *d, const qfilter *f)
{
    if (d->null)
        return false;   /* filtering on null is not supported */
    for (size_t i = 0; i < f->nvals; i++)
        if (f->vals[i].len == d->len && memcmp(f->vals[i].s, d->s, d->len) == 0)
            return true;
    return false;
}

/* The answer bucket of the stored bucket [b, end), or INT64_MIN (and
 * c->cut_at set) when an answer bucket starts inside it: zoned days of a
 * zone whose offset is not a multiple of the stored unit (a view of hours
 * asked for days in Asia/Kolkata) cannot be answered exactly. */
static int64_t answer_bucket(scan_ctx *c, int64_t b, int64_t end)
{
    int64_t qb = bucket_floor(&c->bk, b);
    if (c->calendar && end - 1 >= c->bk.memo_end) {
        c->cut_at = c->bk.memo_end;
        return INT64_MIN;
    }
    return qb;
}

static int64_t qfloor_fn(int64_t ts, const void *ud)
{
    return bucket_floor((bucket_spec *)ud, ts);   /* the scan's own copy: its memo */
}

/* Once per source row: keep it cheap. */
static int scan_row(const vrow *r, void *ud)
{
    scan_ctx *c = ud;
    const query *q = c->q;
    if (scan_expired(c))
        return SCAN_EXPIRED;   /* stop early: the scan ends here */
    if ((q->has_from && r->bucket < q->from) || (q->has_to && r->bucket >= q->to))
        return 0;
    for (size_t f = 0; f < q->nfilters; f++)
        if (!dim_matches(&r->dims[q->filters[f].dim], &q->filters[f]))
            return 0;
    if (q->where && !qexpr_where_row(q, r->dims, &c->sc))
        return 0;
    int64_t qb = answer_bucket(c, r->bucket, gran_next(q->view->gran, r->bucket));
    if (qb == INT64_MIN)
        return SCAN_UNALIGNED;
    for (size_t g = 0; g < q->ngroup; g++)
        c->key[g] = r->dims[q->group[g]];
    void *cells = vtable_upsert(c->t, qb, c->key);
    if (!cells)
        return -ENOMEM;
    if (c->cap && vtable_rows(c->t) > c->cap)
        return SCAN_TOO_MANY;   /* stop early: the lock is released, the memory bounded */
    for (size_t m = 0; m < q->nmetrics; m++)
        if (agg_merge_one(q->layout, cells, m, q->view->layout, r->cells, q->metrics[m]) < 0)
            return -ENOMEM;
    return 0;
}

/* ---- batch segments (core/segment.h) ---- */

/* The ids of one filter's values in a segment's dictionary, as a bitmap
 * over the dictionary; false when none of them is in it. */
static bool filter_ids(const segment *s, const qfilter *f, uint64_t **bits)
{
    uint32_t n = seg_dict_size(s, f->dim);
    *bits = calloc((n + 63) / 64 ? (n + 63) / 64 : 1, sizeof(uint64_t));
    if (!*bits)
        return false;
    bool any = false;
    for (size_t i = 0; i < f->nvals; i++) {
        int64_t id = seg_dict_find(s, f->dim, f->vals[i].s, f->vals[i].len, false);
        if (id >= 0) {
            (*bits)[id / 64] |= UINT64_C(1) << (id % 64);
            any = true;
        }
    }
    return any;
}

/* A where over one dimension, decided once per value of the segment's
 * dictionary; false when no value passes (the segment is skipped). */
static bool where_ids(scan_ctx *c, const segment *s, uint64_t **bits)
{
    size_t dim = c->q->where_dims[0];
    uint32_t n = seg_dict_size(s, dim);
    *bits = calloc((n + 63) / 64 ? (n + 63) / 64 : 1, sizeof(uint64_t));
    if (!*bits)
        return false;
    bool any = false;
    for (uint32_t id = 0; id < n; id++) {
        dimval v = seg_dict_value(s, dim, id);
        if (qexpr_where_value(c->q, &v, &c->sc)) {
            (*bits)[id / 64] |= UINT64_C(1) << (id % 64);
            any = true;
        }
    }
    return any;
}

/* Dense accumulation: when the answer groups by dimensions whose
 * dictionaries in this segment are small (their product at most
 * DENSE_MAX), the states of each answer bucket are gathered in an array
 * indexed by the groups' ids and go into the result table once per group
 * and answer bucket (grouping an hour level by country: one lookup per
 * country and hour, not per page and country). */
#define DENSE_MAX 4096

typedef struct {
    size_t nslots;
    size_t radix[16];        /* dictionary size of each group dimension */
    unsigned char *used;     /* per slot */
    uint32_t *touched;       /* slots in use, in first-use order */
    size_t ntouched;
    int64_t qbucket;
    void *states;            /* nslots rows of q->layout->size bytes */
} dense_acc;

static void dense_free(const query *q, dense_acc *d)
{
    for (size_t i = 0; i < d->ntouched; i++)
        agg_row_destroy(q->layout, (char *)d->states + (size_t)d->touched[i] * q->layout->size);
    free(d->used);
    free(d->touched);
    free(d->states);
}

/* true and *d set up when the segment's group dictionaries are small. */
static bool dense_init(const query *q, const segment *s, dense_acc *d)
{
    *d = (dense_acc){.nslots = 1};
    if (q->ngroup == 0)
        return false;
    for (size_t g = 0; g < q->ngroup; g++) {
        d->radix[g] = seg_dict_size(s, q->group[g]);
        if (d->radix[g] == 0 || d->nslots * d->radix[g] > DENSE_MAX)
            return false;
        d->nslots *= d->radix[g];
    }
    d->used = calloc(d->nslots, 1);
    d->touched = malloc(d->nslots * sizeof(*d->touched));
    d->states = malloc(d->nslots * (q->layout->size ? q->layout->size : 8));
    if (!d->used || !d->touched || !d->states) {
        free(d->used);
        free(d->touched);
        free(d->states);
        *d = (dense_acc){0};
        return false;   /* out of memory: the run-by-run path needs none */
    }
    return true;
}

static int dense_flush(scan_ctx *c, const segment *s, dense_acc *d)
{
    const query *q = c->q;
    int rc = 0;
    for (size_t i = 0; i < d->ntouched; i++) {
        size_t slot = d->touched[i], rest = slot;
        void *st = (char *)d->states + slot * q->layout->size;
        for (size_t g = q->ngroup; g-- > 0;) {
            c->key[g] = seg_dict_value(s, q->group[g], (uint32_t)(rest % d->radix[g]));
            rest /= d->radix[g];
        }
        void *cells = rc ? NULL : vtable_upsert(c->t, d->qbucket, c->key);
        if (!rc && !cells)
            rc = -ENOMEM;
        else if (!rc && c->cap && vtable_rows(c->t) > c->cap)
            rc = SCAN_TOO_MANY;
        if (!rc)
            rc = agg_row_merge(q->layout, cells, st);
        agg_row_destroy(q->layout, st);
        d->used[slot] = 0;
    }
    d->ntouched = 0;
    return rc;
}

/* Rows of one answer group met in a row: their states are merged here
 * and go into the result table once (a hash lookup per run of rows, not
 * per row). Rows are sorted by bucket then ids, so runs are long when the
 * answer groups by few or leading dimensions (all of a segment's rows
 * when it groups by none). */
typedef struct {
    bool open;
    int64_t qbucket;
    uint32_t ids[16];        /* the group's dictionary ids */
    uint64_t states[];       /* q->layout->size bytes */
} run_acc;

static int flush_run(scan_ctx *c, const segment *s, run_acc *acc)
{
    const query *q = c->q;
    if (!acc->open)
        return 0;
    acc->open = false;
    for (size_t g = 0; g < q->ngroup; g++)
        c->key[g] = seg_dict_value(s, q->group[g], acc->ids[g]);
    void *cells = vtable_upsert(c->t, acc->qbucket, c->key);
    int rc = 0;
    if (!cells)
        rc = -ENOMEM;
    else if (c->cap && vtable_rows(c->t) > c->cap)
        rc = SCAN_TOO_MANY;
    else
        rc = agg_row_merge(q->layout, cells, acc->states);
    agg_row_destroy(q->layout, acc->states);
    return rc;
}

/* Adds one row's states to the dense array or the current run. */
static int accumulate(scan_ctx *c, const segment *s, size_t level, size_t row, int64_t qbucket,
                      dense_acc *d, bool dense, run_acc *acc)
{
    const query *q = c->q;
    void *st;
    if (dense) {
        if (d->ntouched && d->qbucket != qbucket) {
            int rc = dense_flush(c, s, d);
            if (rc)
                return rc;
        }
        d->qbucket = qbucket;
        size_t slot = 0;
        for (size_t g = 0; g < q->ngroup; g++)
            slot = slot * d->radix[g] + seg_row_id(s, level, row, q->group[g]);
        st = (char *)d->states + slot * q->layout->size;
        if (!d->used[slot]) {
            d->used[slot] = 1;
            d->touched[d->ntouched++] = (uint32_t)slot;
            agg_row_init(q->layout, st);
        }
    } else {
        bool same = acc->open && acc->qbucket == qbucket;
        for (size_t g = 0; g < q->ngroup && same; g++)
            same = acc->ids[g] == seg_row_id(s, level, row, q->group[g]);
        if (!same) {
            int rc = flush_run(c, s, acc);
            if (rc)
                return rc;
            acc->open = true;
            acc->qbucket = qbucket;
            for (size_t g = 0; g < q->ngroup; g++)
                acc->ids[g] = seg_row_id(s, level, row, q->group[g]);
            agg_row_init(q->layout, acc->states);
        }
        st = acc->states;
    }
    const agg_layout *sl = seg_layout(s);
    const void *states = seg_row_states(s, level, row);
    for (size_t m = 0; m < q->nmetrics; m++)
        if (agg_merge_one(q->layout, st, m, sl, states, q->metrics[m]) < 0)
            return -ENOMEM;
    return 0;
}

/* One batch segment: filters are resolved against its dictionaries first
 * (a segment without any of a filter's values is skipped), the coarsest
 * level the granularity and range allow is read (a roll-up when it
 * can), the time range selects a row range through the sort order, and
 * rows are gathered per answer group before the result table is touched. */
static int scan_segment(const segment *s, void *ud)
{
    scan_ctx *c = ud;
    const query *q = c->q;
    int rc = 0;
    uint64_t *bits[16] = {0};   /* per filter; a view has at most 16 dimensions */
    uint64_t *wbits = NULL;     /* a where over one dimension: per dictionary id */
    dense_acc d;
    bool dense = dense_init(q, s, &d);
    run_acc *acc = calloc(1, sizeof(run_acc) + q->layout->size);
    if (!acc) {
        dense_free(q, &d);
        return -ENOMEM;
    }
    for (size_t f = 0; f < q->nfilters; f++)
        if (!filter_ids(s, &q->filters[f], &bits[f])) {
            rc = bits[f] ? 0 : -ENOMEM;
            goto out;
        }
    if (q->where && q->nwhere_dims == 1 && !where_ids(c, s, &wbits)) {
        rc = wbits ? 0 : -ENOMEM;
        goto out;
    }
    const seg_info *info = seg_info_of(s);
    int64_t from = q->has_from ? q->from : INT64_MIN, to = q->has_to ? q->to : INT64_MAX;
    /* zoned days: the coarsest level whose every bucket lands in one answer
     * bucket (hours for Europe/Berlin). The source decoded at least the
     * levels q->gran reads, which such buckets can read too (query.c,
     * zoned_read_gran): a finer pick would be a bug, not a wrong answer. */
    size_t level = c->calendar ? seg_info_pick_level_fn(info, qfloor_fn, &c->bk, from, to)
                               : seg_pick_level(s, q->gran, from, to);
    if (level < seg_min_level(s)) {
        rc = -EPROTO;
        goto out;
    }
    gran_t unit = info->unit[level];
    size_t row, end;
    seg_level_rows(s, level, from, to, &row, &end);
    dimval wdims[QUERY_MAX_DIMS];
    while (row < end && rc == 0) {
        int64_t bucket;
        size_t bend = seg_bucket_end(s, level, row, &bucket);
        if (bend > end)
            bend = end;
        int64_t bucket_end = unit == GRAN_ALL ? info->part_end : gran_next(unit, bucket);
        if (bucket_end > info->part_end)
            bucket_end = info->part_end;
        int64_t qbucket = answer_bucket(c, bucket, bucket_end);
        if (qbucket == INT64_MIN) {
            rc = SCAN_UNALIGNED;
            break;
        }
        for (; row < bend && rc == 0; row++) {
            if (scan_expired(c)) {
                rc = SCAN_EXPIRED;
                break;
            }
            bool keep = true;
            for (size_t f = 0; f < q->nfilters && keep; f++) {
                uint32_t id = seg_row_id(s, level, row, q->filters[f].dim);
                keep = (bits[f][id / 64] >> (id % 64)) & 1;
            }
            if (keep && wbits) {
                uint32_t id = seg_row_id(s, level, row, q->where_dims[0]);
                keep = (wbits[id / 64] >> (id % 64)) & 1;
            } else if (keep && q->where) {
                for (size_t k = 0; k < q->nwhere_dims; k++) {
                    size_t dim = q->where_dims[k];
                    wdims[dim] = seg_dict_value(s, dim, seg_row_id(s, level, row, dim));
                }
                keep = qexpr_where_row(q, wdims, &c->sc);
            }
            if (keep)
                rc = accumulate(c, s, level, row, qbucket, &d, dense, acc);
        }
    }
    if (rc == 0)
        rc = dense ? dense_flush(c, s, &d) : flush_run(c, s, acc);
    else if (acc->open)
        agg_row_destroy(q->layout, acc->states);
out:
    for (size_t f = 0; f < q->nfilters; f++)
        free(bits[f]);
    free(wbits);
    dense_free(q, &d);
    free(acc);
    return rc;
}

/* ---- result rows, copied out of the table so they can be sorted ---- */

typedef struct {
    int64_t bucket;
    dimval *dims;
    const void *cells;   /* in the query's layout; owned by the result table, or
                            empty states (a filled row); NULL: fill=null */
    double *post;        /* the post-aggregations' values; NaN: null */
} rrow;

typedef struct ablock {
    struct ablock *next;
    size_t used, size;
    max_align_t data[];
} ablock;

typedef struct {
    const query *q;
    rrow *rows;
    size_t nrows, cap;
    ablock *arena;
} result;

static void *arena_alloc(result *res, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
    ablock *b = res->arena;
    if (!b || b->size - b->used < n) {
        size_t size = n > 64 * 1024 ? n : 64 * 1024;
        b = malloc(sizeof(*b) + size);
        if (!b)
            return NULL;
        b->next = res->arena;
        b->used = 0;
        b->size = size;
        res->arena = b;
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    return p;
}

static void result_clear(result *res)
{
    for (ablock *b = res->arena, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    free(res->rows);
}

/* Room for one more row at the end. */
static rrow *add_row(result *res)
{
    if (res->nrows == res->cap) {
        size_t ncap = res->cap ? res->cap * 2 : 64;
        rrow *nr = realloc(res->rows, ncap * sizeof(*nr));
        if (!nr)
            return NULL;
        res->rows = nr;
        res->cap = ncap;
    }
    rrow *row = &res->rows[res->nrows++];
    *row = (rrow){0};
    return row;
}

static int collect_row(const vrow *r, void *ud)
{
    result *res = ud;
    size_t ng = res->q->ngroup;
    dimval *dims = arena_alloc(res, ng * sizeof(dimval));
    if (!dims)
        return -ENOMEM;
    rrow *row = add_row(res);
    if (!row)
        return -ENOMEM;
    row->bucket = r->bucket;
    /* States and dimension bytes stay in the result table, which outlives
     * the rows; only the dimval array is the callback's scratch. */
    row->cells = r->cells;
    row->dims = dims;
    memcpy(dims, r->dims, ng * sizeof(dimval));
    return 0;
}

static int cmp_dimval(const dimval *a, const dimval *b)
{
    if (a->null || b->null)
        return (int)b->null - (int)a->null;   /* null first */
    size_t n = a->len < b->len ? a->len : b->len;
    int c = n ? memcmp(a->s, b->s, n) : 0;
    if (c)
        return c;
    return (a->len > b->len) - (a->len < b->len);
}

/* time, then the group_by values */
static int cmp_key(const rrow *a, const rrow *b, size_t ng)
{
    if (a->bucket != b->bucket)
        return a->bucket < b->bucket ? -1 : 1;
    for (size_t g = 0; g < ng; g++) {
        int c = cmp_dimval(&a->dims[g], &b->dims[g]);
        if (c)
            return c;
    }
    return 0;
}

static int cmp_rows(const void *pa, const void *pb, void *ud)
{
    const query *q = ud;
    const rrow *a = pa, *b = pb;
    if (q->order_post >= 0) {
        double x = a->post[q->order_post], y = b->post[q->order_post];
        if (isnan(x) != isnan(y))
            return isnan(x) ? 1 : -1;   /* null last, whatever the order */
        int c = isnan(x) ? 0 : (x > y) - (x < y);
        if (c)
            return q->asc ? c : -c;
    }
    if (q->order_by >= 0) {
        bool na = !a->cells, nb = !b->cells;   /* fill=null rows: every metric null */
        int c = 0;
        if (a->cells && b->cells)
            c = agg_compare(q->layout, (size_t)q->order_by, a->cells, b->cells, &q->rctx, &na,
                            &nb);
        else if (a->cells)
            na = agg_read(q->layout, (size_t)q->order_by, a->cells, &q->rctx).kind == AV_NULL;
        else if (b->cells)
            nb = agg_read(q->layout, (size_t)q->order_by, b->cells, &q->rctx).kind == AV_NULL;
        if (na != nb)
            return na ? 1 : -1;   /* null last, whatever the order */
        if (c)
            return q->asc ? c : -c;
    }
    return cmp_key(a, b, q->ngroup);
}

/* ---- rendering ---- */

static void render_time(jbuf *b, int64_t ts)
{
    char buf[48];
    time_format_rfc3339(ts, buf, sizeof(buf));
    jb_cstr(b, buf);
}

/* A bucket's start: with tz, in local time with its offset. */
static void render_bucket(jbuf *b, const query *q, int64_t ts)
{
    if (!q->zone) {
        render_time(b, ts);
        return;
    }
    char buf[48];
    time_format_rfc3339_offset(ts, tz_offset(q->zone, ts), buf, sizeof(buf));
    jb_cstr(b, buf);
}

static void render_row(jbuf *b, const query *q, const rrow *r)
{
    const view_def *v = q->view;
    jb_lit(b, "{");
    if (q->bk.unit != GRAN_ALL) {
        jb_lit(b, "\"time\":");
        render_bucket(b, q, r->bucket);
        jb_lit(b, ",\"ts\":");
        jb_int(b, r->bucket);
        jb_lit(b, ",");
    }
    jb_lit(b, "\"dims\":{");
    for (size_t g = 0; g < q->ngroup; g++) {
        if (g)
            jb_lit(b, ",");
        jb_cstr(b, v->dims[q->group[g]]);
        jb_lit(b, ":");
        if (r->dims[g].null)
            jb_lit(b, "null");
        else
            jb_str(b, r->dims[g].s, r->dims[g].len);
    }
    jb_lit(b, "},\"metrics\":{");
    for (size_t k = 0; k < q->nitems; k++) {
        const qitem *it = &q->items[k];
        if (k)
            jb_lit(b, ",");
        jb_cstr(b, it->post ? q->posts[it->i].name : v->metrics[q->metrics[it->i]].name);
        jb_lit(b, ":");
        if (it->post)
            jb_num(b, r->post[it->i]);   /* NaN (null) renders null */
        else if (r->cells)
            agg_render(q->layout, it->i, r->cells, &q->rctx, b);
        else
            jb_lit(b, "null");
    }
    jb_lit(b, "}}");
}

/* format=csv: the watermark goes into the response's headers instead. */
static void render_csv(jbuf *b, const query *q, const result *res, size_t n)
{
    jbuf scratch;
    jb_init(&scratch);
    query_csv_header(b, q);
    for (size_t i = 0; i < n; i++)
        query_csv_row(b, q, res->rows[i].bucket, res->rows[i].dims, res->rows[i].cells, &scratch);
    if (scratch.oom)
        b->oom = true;
    jb_free(&scratch);
}

static void render(jbuf *b, const query *q, const result *res, const serving_watermark *wm,
                   const fanout *fo)
{
    if (q->csv) {
        render_csv(b, q, res, q->limit && q->limit < res->nrows ? q->limit : res->nrows);
        return;
    }
    jb_lit(b, "{\"view\":");
    jb_cstr(b, q->view->name);
    jb_lit(b, ",\"granularity\":");
    jb_cstr(b, q->gran_text);
    jb_lit(b, ",\"rows\":[");
    size_t n = res->nrows;
    if (q->limit && q->limit < n)
        n = q->limit;
    for (size_t i = 0; i < n; i++) {
        if (i)
            jb_lit(b, ",");
        render_row(b, q, &res->rows[i]);
    }
    jb_lit(b, "],\"watermark\":{\"batch_seq\":");
    jb_int(b, wm->batch_seq);
    jb_lit(b, ",\"batch_at\":");
    if (wm->batch_at)
        render_time(b, wm->batch_at);
    else
        jb_lit(b, "null");
    jb_lit(b, ",\"live_events\":");
    jb_int(b, wm->live_events);
    if (wm->unreadable_events > 0) {   /* damaged archive chunks: the answer lacks them */
        jb_lit(b, ",\"unreadable_events\":");
        jb_int(b, wm->unreadable_events);
    }
    if (fo)
        fanout_render_shards(fo, b);
    jb_lit(b, "}");
    if (fo)
        fanout_render_partial(fo, b);
    jb_lit(b, "}");
}

/* The 503 of a query abandoned past its deadline (-ETIME) or because the
 * server stops (-ECANCELED). */
static int fail_expired(const query *q, qerror *err)
{
    bool stopping = q->stop && atomic_load(q->stop);
    qerror_clear(err);
    err->status = 503;
    jbuf b;
    jb_init(&b);
    if (stopping) {
        jb_lit(&b, "the server is stopping; retry shortly");
    } else {
        jb_lit(&b, "query exceeded http.limits.query_timeout_ms (");
        jb_int(&b, q->timeout_ms);
        jb_lit(&b, " ms); narrow it (from/to, filter, group_by or a coarser granularity)");
        metrics_counter_add(&m_timeouts, NULL, 1);
    }
    err->msg = jb_take(&b, &err->len);
    return stopping ? -ECANCELED : -ETIME;
}

static int fail_run(qerror *err, int rc, const char *what);

/* Group, then time: fill walks each group's buckets in order. */
static int cmp_group_time(const void *pa, const void *pb, void *ud)
{
    const query *q = ud;
    const rrow *a = pa, *b = pb;
    for (size_t g = 0; g < q->ngroup; g++) {
        int c = cmp_dimval(&a->dims[g], &b->dims[g]);
        if (c)
            return c;
    }
    return (a->bucket > b->bucket) - (a->bucket < b->bucket);
}

/* More rows than fill may make when http.limits.max_rows sets none. */
#define FILL_MAX_ROWS 10000000

static int fail_fill(qerror *err, size_t cap)
{
    qerror_clear(err);
    err->status = 413;
    jbuf b;
    jb_init(&b);
    jb_lit(&b, "fill would give more than ");
    jb_int(&b, (int64_t)cap);
    jb_lit(&b, " rows; narrow from/to or group_by, or use a coarser granularity");
    err->msg = jb_take(&b, &err->len);
    return -E2BIG;
}

static bool same_group(const query *q, const rrow *a, const rrow *b)
{
    for (size_t g = 0; g < q->ngroup; g++)
        if (cmp_dimval(&a->dims[g], &b->dims[g]))
            return false;
    return true;
}

/* fill=zero|null: every bucket of [from, to) (the one of granularity=all)
 * for every group of the answer; with no group_by the one group exists
 * even without rows. A filled row has empty states (count and sum 0,
 * distinct 0, the others null) or, for fill=null, none at all. */
static int fill_rows(const query *q, result *res, qerror *err)
{
    bucket_spec bk = q->bk;
    size_t n = res->nrows, cap = q->max_rows ? q->max_rows : FILL_MAX_ROWS;
    if (n > 1)
        qsort_r(res->rows, n, sizeof(*res->rows), cmp_group_time, (void *)q);
    size_t ngroups = n == 0 ? q->ngroup == 0 : 1;
    for (size_t i = 1; i < n; i++)
        ngroups += !same_group(q, &res->rows[i - 1], &res->rows[i]);
    if (ngroups == 0)
        return 0;
    int64_t from = bk.unit == GRAN_ALL ? 0 : q->from, to = bk.unit == GRAN_ALL ? 1 : q->to;
    if (bucket_count(&bk, from, to, cap) > cap / ngroups)
        return fail_fill(err, cap);
    void *empty = NULL;
    if (q->fill == FILL_ZERO) {
        if (!(empty = arena_alloc(res, q->layout->size ? q->layout->size : 8)))
            return fail_run(err, -ENOMEM, "cannot fill");
        agg_row_init(q->layout, empty);   /* empty states own nothing: never destroyed */
    }
    size_t gs = 0;
    do {   /* each group: rows [gs, ge), sorted by time */
        size_t ge = gs + (n > 0);
        while (ge < n && same_group(q, &res->rows[gs], &res->rows[ge]))
            ge++;
        dimval *dims = n ? res->rows[gs].dims : NULL;
        size_t j = gs;
        for (int64_t t = bucket_floor(&bk, from); t < to; t = bucket_next(&bk, t)) {
            if (j < ge && res->rows[j].bucket == t) {
                j++;
                continue;
            }
            rrow *r = add_row(res);   /* may move res->rows: indexes only */
            if (!r)
                return fail_run(err, -ENOMEM, "cannot fill");
            *r = (rrow){.bucket = t, .dims = dims, .cells = empty};
        }
        gs = ge;
    } while (gs < n);
    return 0;
}

/* The post-aggregations of every row, then having. */
static int eval_rows(const query *q, result *res, qerror *err)
{
    if (!q->nposts && !q->having)
        return 0;
    field_value *vals = calloc(q->nslots ? q->nslots : 1, sizeof(*vals));
    if (!vals)
        return fail_run(err, -ENOMEM, "cannot compute metrics");
    expr_scratch sc = {0};
    size_t k = 0;
    int rc = 0;
    for (size_t i = 0; i < res->nrows; i++) {
        rrow *r = &res->rows[i];
        if (q->nposts && !(r->post = arena_alloc(res, q->nposts * sizeof(double)))) {
            rc = fail_run(err, -ENOMEM, "cannot compute metrics");
            break;
        }
        if (qexpr_row(q, r->cells, r->post, vals, &sc))
            res->rows[k++] = *r;
    }
    if (rc == 0)
        res->nrows = k;
    free(vals);
    expr_scratch_free(&sc);
    return rc;
}

/* The 400 of zoned buckets that cut the view's stored ones. */
static int fail_unaligned(const query *q, int64_t at, qerror *err)
{
    qerror_clear(err);
    err->status = 400;
    jbuf b;
    char t[48];
    jb_init(&b);
    jb_lit(&b, "granularity '");
    jb_lit(&b, q->gran_text);
    jb_lit(&b, "' in tz '");
    jb_raw(&b, q->zone_name, q->zone_len);
    jb_lit(&b, "' starts a bucket inside one of the view's '");
    jb_lit(&b, gran_name(q->view->gran));
    jb_lit(&b, "' buckets (at ");
    time_format_rfc3339(at, t, sizeof(t));
    jb_lit(&b, t);
    jb_lit(&b, "); ask a view of a finer granularity");
    err->msg = jb_take(&b, &err->len);
    return -EINVAL;
}

/* Max-heap by cmp_rows (the root orders last), for the top-N below. */
static void sift_down(rrow *h, size_t n, size_t i, const query *q)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && cmp_rows(&h[l], &h[m], (void *)q) > 0)
            m = l;
        if (r < n && cmp_rows(&h[r], &h[m], (void *)q) > 0)
            m = r;
        if (m == i)
            return;
        rrow t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* Orders the result rows. With order_by and a limit smaller than the
 * answer, only the first `limit` rows are needed: a heap of that many
 * keeps them in one pass (O(n log limit)), then they are sorted; the
 * order is the full sort's, because cmp_rows is a total order. */
static void order_rows(const query *q, result *res)
{
    size_t n = res->nrows, k = q->limit;
    if (q->order_by >= 0 && k > 0 && k < n) {
        rrow *h = res->rows;   /* h[0..k) becomes the heap of the best k */
        for (size_t i = k / 2; i-- > 0;)
            sift_down(h, k, i, q);
        for (size_t i = k; i < n; i++) {
            if (cmp_rows(&h[i], &h[0], (void *)q) < 0) {
                h[0] = h[i];
                sift_down(h, k, 0, q);
            }
        }
        res->nrows = k;
        n = k;
    }
    if (n > 1)
        qsort_r(res->rows, n, sizeof(*res->rows), cmp_rows, (void *)q);
}

static int fail_run(qerror *err, int rc, const char *what)
{
    qerror_clear(err);
    err->status = 500;
    jbuf b;
    jb_init(&b);
    jb_lit(&b, what);
    jb_lit(&b, ": ");
    jb_lit(&b, strerror(-rc));
    err->msg = jb_take(&b, &err->len);
    return rc;
}

/* Runs q. With a cache entry `e` (its table, epoch and version), the
 * answer moves forward from it by the deltas since; otherwise, or when the
 * source cannot say what changed, every row is scanned. On success the
 * result table and the watermark are left in *e for the caller to cache
 * (e->body is not touched). */
/* What a run takes and gives besides the query: all optional. */
typedef struct {
    qcache_entry *e;            /* move this cached answer forward (see run_from) */
    bool *advanced;             /* out: it was moved forward */
    serving_watermark *wm_out;  /* out: the answer's watermark */
    fanout *fo;                 /* the other shards' parts, merged after the scan */
    const char *partial_shard;  /* set: answer this shard's partial (serving/partial.h)
                                   into partial_out instead of rendering */
    bytes_w *partial_out;
} run_io;

static int fail_too_many(const query *q, qerror *err)
{
    qerror_clear(err);
    err->status = 413;
    jbuf b;
    jb_init(&b);
    jb_lit(&b, "answer has more than ");
    jb_int(&b, (int64_t)q->max_rows);
    jb_lit(&b, " rows (http.limits.max_rows); add a limit or narrow the query "
               "(from/to, filter, group_by or a coarser granularity)");
    err->msg = jb_take(&b, &err->len);
    return -E2BIG;
}

static int run_from(const query *q, const serving_source *src, jbuf *out, qerror *err,
                    const run_io *io)
{
    qcache_entry *e = io->e;
    serving_watermark wm = {0};
    result res = {.q = q};
    scan_ctx ctx = {.q = q, .bk = q->bk, .calendar = q->zone && bucket_width(&q->bk) == 0 &&
                                                    q->bk.unit != GRAN_ALL};
    int rc = -ESTALE;

    ctx.key = calloc(q->ngroup ? q->ngroup : 1, sizeof(*ctx.key));
    if (!ctx.key) {
        rc = fail_run(err, -ENOMEM, "cannot run query");
        goto out;
    }
    /* Only a limit above max_rows (or none) can let the answer grow past it. */
    if (q->max_rows && (q->limit == 0 || q->limit > q->max_rows))
        ctx.cap = q->max_rows;
    if (query_expired(q)) {   /* e.g. it waited in the queue past its budget */
        rc = fail_expired(q, err);
        goto out;
    }
    if (e && e->table && src->scan_since) {
        ctx.t = e->table;
        e->table = NULL;
        rc = src->scan_since(src->ud, q->view_idx, e->epoch, e->version, scan_row, &ctx, &wm);
        if (rc == -ESTALE) {
            vtable_free(ctx.t);
            ctx.t = NULL;
        } else if (io->advanced) {
            *io->advanced = true;
        }
    }
    if (rc == -ESTALE) {
        ctx.t = vtable_new(q->ngroup, q->layout);
        if (!ctx.t) {
            rc = fail_run(err, -ENOMEM, "cannot run query");
            goto out;
        }
        rc = src->scan_view(src->ud, q->view_idx, q->has_from ? q->from : INT64_MIN,
                            q->has_to ? q->to : INT64_MAX, q->gran, scan_segment, scan_row, &ctx,
                            &wm);
    }
    if (rc == SCAN_EXPIRED || (rc == 0 && query_expired(q))) {
        rc = fail_expired(q, err);
        goto out;
    }
    if (rc == SCAN_UNALIGNED) {
        rc = fail_unaligned(q, ctx.cut_at, err);
        goto out;
    }
    if (rc == SCAN_TOO_MANY) {
        rc = fail_too_many(q, err);
        goto out;
    }
    if (rc == -EAGAIN) {
        /* The source cannot answer exactly yet (recovery or a recompute of
         * this view is running): say so instead of a partial answer. */
        qerror_clear(err);
        err->status = 503;
        jbuf b;
        jb_init(&b);
        jb_lit(&b, "view is not available yet (recovering or recomputing); retry shortly");
        err->msg = jb_take(&b, &err->len);
        goto out;
    }
    if (rc) {
        rc = fail_run(err, rc < 0 ? rc : -EIO, "cannot scan view");
        goto out;
    }
    if (io->partial_out) {
        partial_encode(q, ctx.t, io->partial_shard, &wm, io->partial_out);
        if (io->partial_out->oom)
            rc = fail_run(err, -ENOMEM, "cannot encode the partial answer");
        goto out;
    }
    if (io->fo) {
        rc = fanout_finish(io->fo, q, ctx.t, &wm, err);
        if (rc == -ECANCELED || (rc == -EAGAIN && query_expired(q))) {
            rc = fail_expired(q, err);
            goto out;
        }
        if (rc < 0)
            goto out;
        if (ctx.cap && vtable_rows(ctx.t) > ctx.cap) {
            rc = fail_too_many(q, err);
            goto out;
        }
    }
    rc = vtable_foreach(ctx.t, collect_row, &res);
    if (rc) {
        rc = fail_run(err, rc, "cannot collect rows");
        goto out;
    }
    if (q->fill && (rc = fill_rows(q, &res, err)) < 0)
        goto out;
    if ((rc = eval_rows(q, &res, err)) < 0)
        goto out;
    order_rows(q, &res);
    if (query_expired(q)) {
        rc = fail_expired(q, err);
        goto out;
    }
    render(out, q, &res, &wm, io->fo);
    if (out->oom)
        rc = fail_run(err, -ENOMEM, "cannot render answer");
    if (rc == 0 && io->wm_out)
        *io->wm_out = wm;
    if (rc == 0 && e) {
        e->wm = wm;
        vtable_free(e->table);   /* a cached table not moved forward (no scan_since) */
        e->table = ctx.t;        /* handed back for the cache */
        ctx.t = NULL;
        e->epoch = wm.epoch;
        e->version = wm.version;
    }
out:
    vtable_free(ctx.t);
    expr_scratch_free(&ctx.sc);
    free(ctx.key);
    result_clear(&res);
    return rc;
}

int query_run(const query *q, const serving_source *src, jbuf *out, qerror *err)
{
    run_io io = {0};
    return run_from(q, src, out, err, &io);
}

int query_handle(const config *cfg, const serving_source *src, const char *view,
                 size_t view_len, const qparam *p, size_t np, char **body, size_t *len)
{
    return query_handle_cached(cfg, src, NULL, view, view_len, p, np, NULL, body, len);
}

/* The cache key: the view and every parameter as received, each with its
 * length, so that no two different requests share one. */
static void cache_key(jbuf *key, const char *view, size_t view_len, const qparam *p, size_t np)
{
    jb_raw(key, view, view_len);
    jb_raw(key, "", 1);
    for (size_t i = 0; i < np; i++) {
        uint32_t kl = (uint32_t)p[i].klen, vl = (uint32_t)p[i].vlen;
        jb_raw(key, (const char *)&kl, 4);
        jb_raw(key, p[i].key, kl);
        jb_raw(key, (const char *)&vl, 4);
        jb_raw(key, p[i].val, vl);
    }
}

/* The error answer of err (or "out of memory"): its status. */
static int error_body(qerror *err, char **body, size_t *len)
{
    jbuf b;
    jb_init(&b);
    int status = err->status ? err->status : 500;
    if (err->msg)
        jb_error(&b, status, err->msg, err->len);
    else
        jb_error(&b, status, "out of memory", strlen("out of memory"));
    *body = jb_take(&b, len);
    return status;
}

int query_handle_cached(const config *cfg, const serving_source *src, qcache *cache,
                        const char *view, size_t view_len, const qparam *p, size_t np,
                        query_opts *o, char **body, size_t *len)
{
    query q;
    qerror err = {0};
    jbuf b, key;
    jb_init(&b);
    jb_init(&key);
    int status = 200, rc;
    qcache_entry e = {0};   /* e.ticket != 0: this request has the question checked out */
    fanout *fo = NULL;
    bool advanced = false, use_cache = false;
    if (query_parse(cfg, view, view_len, p, np, &q, &err) < 0)
        goto fail;
    q.deadline_ms = o && o->deadline_ms ? o->deadline_ms
                                        : q.timeout_ms > 0 ? now_ms() + q.timeout_ms : 0;
    q.stop = o ? o->stop : NULL;
    /* A fan-out's answer depends on the peers' states too: not cached. */
    if (o && cluster_fans_out(o->cluster)) {
        if (fanout_start(o->cluster, view, view_len, p, np, q.deadline_ms, &fo) < 0) {
            err.status = 500;
            goto fail;
        }
        failpoint_pause("fanout_sent");   /* test_cluster: two fan-outs waiting at once */
    } else if (cache && src->version) {
        cache_key(&key, view, view_len, p, np);
        use_cache = !key.oom;
    }
    /* no-cache: computed afresh whatever is stored (the answer is still
     * offered to the cache, which keeps the newer one) */
    if (use_cache && !(o && o->no_cache) && qcache_take(cache, key.p, key.len, &e) &&
        e.body && e.version == src->version(src->ud)) {
        /* Nothing changed since: the same bytes. */
        char *copy = malloc(e.len ? e.len : 1);
        if (copy) {
            memcpy(copy, e.body, e.len);
            *body = copy;
            *len = e.len;
            qcache_count(cache, 0);
            metrics_counter_add(&m_qcache, METRIC_LABELS("hit"), 1);
            if (o) {
                o->csv = q.csv;
                o->wm = e.wm;
            }
            qcache_put(cache, key.p, key.len, &e);   /* given back as it was */
            goto done;
        }
    }
    serving_watermark wm = {0};
    run_io io = {.e = use_cache ? &e : NULL, .advanced = &advanced, .wm_out = &wm, .fo = fo};
    rc = run_from(&q, src, &b, &err, &io);
    if (rc < 0) {
        if (rc == -ETIME && o)
            o->expired = true;
        goto fail;
    }
    *body = jb_take(&b, len);
    if (o) {
        o->csv = q.csv;
        o->wm = wm;
        if (fo && fanout_missing(fo))
            o->missing_shards = strdup(fanout_missing(fo));
    }
    if (use_cache) {
        qcache_count(cache, advanced ? 1 : 2);
        metrics_counter_add(&m_qcache, METRIC_LABELS(advanced ? "advance" : "miss"), 1);
        free(e.body);
        e.body = NULL;
        e.len = 0;
        if (*body && (e.body = malloc(*len ? *len : 1))) {
            memcpy(e.body, *body, *len);
            e.len = *len;
        }
        if (!e.body) {
            vtable_free(e.table);   /* an answer without its body is not kept */
            e.table = NULL;
        }
        qcache_put(cache, key.p, key.len, &e);   /* stored, or given back */
    }
    goto done;
fail:
    jb_free(&b);
    status = error_body(&err, body, len);
done:
    if (use_cache)
        qcache_release(cache, key.p, key.len, &e);   /* still checked out: let others in */
    qcache_entry_clear(&e);
    fanout_free(fo);
    jb_free(&key);
    query_clear(&q);
    qerror_clear(&err);
    return status;
}

int query_handle_partial(const config *cfg, const serving_source *src, const char *shard,
                         const char *view, size_t view_len, const qparam *p, size_t np,
                         query_opts *o, char **body, size_t *len)
{
    query q;
    qerror err = {0};
    jbuf unused;
    jb_init(&unused);
    bytes_w w = {0};
    int status = 200;
    if (query_parse(cfg, view, view_len, p, np, &q, &err) < 0) {
        status = error_body(&err, body, len);
        goto out;
    }
    q.deadline_ms = o && o->deadline_ms ? o->deadline_ms
                                        : q.timeout_ms > 0 ? now_ms() + q.timeout_ms : 0;
    q.stop = o ? o->stop : NULL;
    run_io io = {.partial_shard = shard, .partial_out = &w};
    int rc = run_from(&q, src, &unused, &err, &io);
    if (rc < 0) {
        if (rc == -ETIME && o)
            o->expired = true;
        status = error_body(&err, body, len);
        goto out;
    }
    *body = (char *)w.p;   /* handed over: bytes_w's buffer is malloc'd */
    *len = w.len;
    w = (bytes_w){0};
out:
    bw_free(&w);
    jb_free(&unused);
    query_clear(&q);
    qerror_clear(&err);
    return status;
}
