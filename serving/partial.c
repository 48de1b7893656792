/* partial.c - see partial.h. */
#include "serving/partial.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/checksum.h"

static const unsigned char magic[4] = {'L', 'D', 'P', 1};

/* Each part with its length, so that no two layouts hash the same bytes. */
static uint64_t hash_str(const char *s, uint64_t h)
{
    uint64_t len = strlen(s);
    h = checksum64(&len, sizeof(len), h);
    return checksum64(s, len, h);
}

uint64_t partial_layout_hash(const query *q)
{
    const view_def *v = q->view;
    uint64_t h = hash_str(v->name, 0);
    h = hash_str(gran_name(v->gran), h);
    for (size_t g = 0; g < q->ngroup; g++)
        h = hash_str(v->dims[q->group[g]], h);
    bytes_w w = {0};
    for (size_t m = 0; m < q->nmetrics; m++) {
        const metric_def *md = &v->metrics[q->metrics[m]];
        h = hash_str(md->name, h);
        h = hash_str(q->layout->slot[m].ops->name, h);
        w.len = 0;
        agg_params_encode(&q->layout->slot[m], &w);
        h = checksum64(w.p, w.oom ? 0 : w.len, h);
    }
    bw_free(&w);
    return h;
}

/* One row to encode: the table's states and its key. */
typedef struct {
    int64_t bucket;
    const dimval *dims;
    const void *cells;
} enc_row;

typedef struct {
    const query *q;
    enc_row *rows;
    dimval *dims;      /* ngroup per row: the callback's are scratch */
    size_t n;
} enc_ctx;

static int collect(const vrow *r, void *ud)
{
    enc_ctx *c = ud;
    size_t ng = c->q->ngroup;
    if (ng)
        memcpy(c->dims + c->n * ng, r->dims, ng * sizeof(dimval));
    c->rows[c->n] = (enc_row){.bucket = r->bucket, .dims = c->dims + c->n * ng,
                              .cells = r->cells};
    c->n++;
    return 0;
}

static int cmp_rows(const void *pa, const void *pb, void *ud)
{
    const enc_row *a = pa, *b = pb;
    size_t ng = *(const size_t *)ud;
    if (a->bucket != b->bucket)
        return a->bucket < b->bucket ? -1 : 1;
    for (size_t g = 0; g < ng; g++) {
        const dimval *x = &a->dims[g], *y = &b->dims[g];
        if (x->null || y->null) {
            if (x->null != y->null)
                return x->null ? -1 : 1;
            continue;
        }
        size_t n = x->len < y->len ? x->len : y->len;
        int c = n ? memcmp(x->s, y->s, n) : 0;
        if (c || x->len != y->len)
            return c ? c : (x->len < y->len ? -1 : 1);
    }
    return 0;
}

/* Rows in key order, so that replicas holding the same events send the
 * same bytes after the header (test_cluster compares them). */
void partial_encode(const query *q, const vtable *t, const char *shard,
                    const serving_watermark *wm, bytes_w *w)
{
    size_t n = vtable_rows(t), ng = q->ngroup;
    enc_ctx c = {.q = q, .rows = malloc((n ? n : 1) * sizeof(enc_row)),
                 .dims = malloc((n && ng ? n * ng : 1) * sizeof(dimval))};
    if (!c.rows || !c.dims) {
        w->oom = true;
        goto out;
    }
    vtable_foreach(t, collect, &c);
    size_t start = w->len;
    qsort_r(c.rows, c.n, sizeof(enc_row), cmp_rows, &ng);
    bw_put(w, magic, sizeof(magic));
    bw_u64(w, partial_layout_hash(q));
    bw_varint(w, strlen(shard));
    bw_put(w, shard, strlen(shard));
    bw_svarint(w, wm->batch_seq);
    bw_svarint(w, wm->batch_at);
    bw_svarint(w, wm->live_events);
    bw_svarint(w, wm->unreadable_events);
    bw_varint(w, c.n);
    for (size_t i = 0; i < c.n; i++) {
        const enc_row *r = &c.rows[i];
        bw_svarint(w, r->bucket);
        for (size_t g = 0; g < ng; g++) {
            const dimval *d = &r->dims[g];
            bw_varint(w, d->null ? 0 : (uint64_t)d->len + 1);
            if (!d->null)
                bw_put(w, d->s, d->len);
        }
        agg_row_encode(q->layout, r->cells, w);
    }
    if (!w->oom)
        bw_u64(w, checksum64(w->p + start, w->len - start, 0));
out:
    free(c.rows);
    free(c.dims);
}

static int fail(const char **why, const char *text)
{
    *why = text;
    return -EBADMSG;
}

static int merge_rows(const query *q, bytes_r *r, uint64_t n, vtable *t, const char **why)
{
    const agg_layout *l = q->layout;
    dimval *dims = calloc(q->ngroup ? q->ngroup : 1, sizeof(*dims));
    unsigned char *cells = malloc(l->size ? l->size : 1);
    int rc = 0;
    if (!dims || !cells) {
        rc = -ENOMEM;
        goto out;
    }
    for (uint64_t i = 0; i < n && rc == 0; i++) {
        int64_t bucket = br_svarint(r);
        for (size_t g = 0; g < q->ngroup; g++) {
            uint64_t len = br_varint(r);
            const char *s = len > 1 ? (const char *)br_take(r, len - 1) : "";
            dims[g] = (dimval){.s = s ? s : "", .len = len ? (uint32_t)(len - 1) : 0,
                               .null = len == 0};
            if (len > UINT32_MAX)
                r->bad = true;
        }
        rc = agg_row_decode(l, cells, r);
        if (rc == 0 && r->bad)
            rc = fail(why, "malformed row");
        void *dst = rc == 0 ? vtable_upsert(t, bucket, dims) : NULL;
        if (rc == 0 && !dst)
            rc = -ENOMEM;
        if (rc == 0)
            rc = agg_row_merge(l, dst, cells);
        agg_row_destroy(l, cells);
    }
out:
    free(cells);
    free(dims);
    return rc;
}

int partial_merge(const query *q, const void *body, size_t len, vtable *t, partial_info *info,
                  const char **why)
{
    const unsigned char *b = body;
    *info = (partial_info){0};
    if (len < sizeof(magic) + 8 + 8 || memcmp(b, magic, 3) != 0)
        return fail(why, "not a partial answer");
    if (b[3] != magic[3])
        return fail(why, "a partial answer of another version of lambdad");
    len -= 8;
    bytes_r tail = br_init(b + len, 8);
    if (br_u64(&tail) != checksum64(b, len, 0))
        return fail(why, "damaged in transit (checksum mismatch)");
    bytes_r r = br_init(b + sizeof(magic), len - sizeof(magic));
    if (br_u64(&r) != partial_layout_hash(q))
        return fail(why, "its view differs (name, granularity, dimensions or metrics): the "
                         "instances' configs disagree");
    uint64_t slen = br_varint(&r);
    const unsigned char *s = slen <= PARTIAL_MAX_SHARD ? br_take(&r, slen) : NULL;
    if (!s && slen)
        return fail(why, "malformed shard name");
    memcpy(info->shard, s ? (const char *)s : "", slen);
    info->wm.batch_seq = br_svarint(&r);
    info->wm.batch_at = br_svarint(&r);
    info->wm.live_events = br_svarint(&r);
    info->wm.unreadable_events = br_svarint(&r);
    uint64_t n = br_varint(&r);
    if (r.bad || n > br_left(&r))   /* a row takes at least a byte */
        return fail(why, "malformed header");
    int rc = merge_rows(q, &r, n, t, why);
    if (rc == 0 && br_left(&r))
        rc = fail(why, "bytes after the last row");
    info->rows = (size_t)n;
    return rc;
}
