/* segment_build.c - building a segment from view tables (see segment.h for
 * the format).
 *
 * 1. collect: every row of the tables, its dimension values interned into
 *    one dictionary per dimension (temporary ids in order of appearance),
 *    its states by pointer (the tables are only read, and live until the
 *    call returns);
 * 2. sort each dictionary and renumber the ids, so ids compare like values;
 * 3. level 0: the rows sorted by (bucket, ids), rows of equal keys (from
 *    several tables) merged; each roll-up: the previous level's rows
 *    re-keyed to the coarser bucket, sorted and merged the same way. A row
 *    that nothing merges with points to its source states, so one table
 *    and a level-0 of its rows share their states; an hour roll-up that
 *    does not halve the rows is built (the next roll-up comes from it) but
 *    not written;
 * 4. encode the dictionaries and each level as a part: ids delta-coded,
 *    each column in byte planes (core/bytes.h bw_ints) or its aggregator's
 *    column encoding; compress each part, a zstd block per column; write
 *    the header with the parts' sizes and checksums.
 * Pure; any thread.
 */
#include "core/segment.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "core/bytes.h"
#include "core/checksum.h"
#include "core/segment_int.h"

void seg_blob_free(seg_blob *b)
{
    free(b->p);
    *b = (seg_blob){0};
}

/* ---- dictionaries being built ------------------------------------------ */

typedef struct {
    size_t off;        /* into bytes */
    uint32_t len;
    bool null;
} dentry;

typedef struct {
    char *bytes;
    size_t blen, bcap;
    dentry *v;         /* by temporary id */
    size_t n, cap;
    uint32_t *slot;    /* temporary id + 1, 0: empty; scap slots, a power of 2 */
    size_t scap;
    uint32_t null_id;  /* UINT32_MAX: no null seen */
    uint32_t *rank;    /* after sorting: final id of each temporary id */
} bdict;

static void bdict_free(bdict *d)
{
    free(d->bytes);
    free(d->v);
    free(d->slot);
    free(d->rank);
}

static uint64_t hash_value(const char *s, size_t len)
{
    return checksum64(s, len, 0x5e6d1c7);
}

static int bdict_grow_slots(bdict *d)
{
    size_t ncap = d->scap ? d->scap * 2 : 64;
    uint32_t *ns = calloc(ncap, sizeof(*ns));
    if (!ns)
        return -ENOMEM;
    for (size_t i = 0; i < d->n; i++) {
        if (d->v[i].null)
            continue;
        size_t j = hash_value(d->bytes + d->v[i].off, d->v[i].len) & (ncap - 1);
        while (ns[j])
            j = (j + 1) & (ncap - 1);
        ns[j] = (uint32_t)i + 1;
    }
    free(d->slot);
    d->slot = ns;
    d->scap = ncap;
    return 0;
}

static int bdict_push(bdict *d, dentry e, uint32_t *id)
{
    if (d->n >= UINT32_MAX - 1)
        return -EFBIG;
    if (d->n == d->cap) {
        size_t ncap = d->cap ? d->cap * 2 : 64;
        dentry *nv = realloc(d->v, ncap * sizeof(*nv));
        if (!nv)
            return -ENOMEM;
        d->v = nv;
        d->cap = ncap;
    }
    *id = (uint32_t)d->n;
    d->v[d->n++] = e;
    return 0;
}

/* The temporary id of a value, added when new. */
static int bdict_intern(bdict *d, const dimval *dv, uint32_t *id)
{
    if (dv->null) {
        if (d->null_id == UINT32_MAX) {
            int r = bdict_push(d, (dentry){.null = true}, &d->null_id);
            if (r < 0)
                return r;
        }
        *id = d->null_id;
        return 0;
    }
    if ((d->n + 1) * 2 > d->scap && bdict_grow_slots(d) < 0)
        return -ENOMEM;
    size_t mask = d->scap - 1;
    size_t j = hash_value(dv->s, dv->len) & mask;
    for (; d->slot[j]; j = (j + 1) & mask) {
        const dentry *e = &d->v[d->slot[j] - 1];
        /* (no memcmp of empty values: the bytes may not exist yet) */
        if (!e->null && e->len == dv->len &&
            (dv->len == 0 || memcmp(d->bytes + e->off, dv->s, dv->len) == 0)) {
            *id = d->slot[j] - 1;
            return 0;
        }
    }
    if (d->bcap - d->blen < dv->len) {
        size_t ncap = d->bcap ? d->bcap : 4096;
        while (ncap - d->blen < dv->len)
            ncap *= 2;
        char *nb = realloc(d->bytes, ncap);
        if (!nb)
            return -ENOMEM;
        d->bytes = nb;
        d->bcap = ncap;
    }
    if (dv->len)
        memcpy(d->bytes + d->blen, dv->s, dv->len);
    int r = bdict_push(d, (dentry){.off = d->blen, .len = dv->len}, id);
    if (r < 0)
        return r;
    d->blen += dv->len;
    d->slot[j] = *id + 1;
    return 0;
}

static int cmp_dentry(const void *pa, const void *pb, void *ud)
{
    const bdict *d = ud;
    const dentry *a = &d->v[*(const uint32_t *)pa], *b = &d->v[*(const uint32_t *)pb];
    return seg_cmp_value(d->bytes + a->off, a->len, a->null, d->bytes + b->off, b->len,
                         b->null);
}

/* Sorts the values: d->rank maps temporary ids to final ones, and *order
 * (malloc'd) lists temporary ids in final order. */
static int bdict_sort(bdict *d, uint32_t **order)
{
    uint32_t *o = malloc((d->n ? d->n : 1) * sizeof(*o));
    d->rank = malloc((d->n ? d->n : 1) * sizeof(*d->rank));
    if (!o || !d->rank) {
        free(o);
        return -ENOMEM;
    }
    for (size_t i = 0; i < d->n; i++)
        o[i] = (uint32_t)i;
    qsort_r(o, d->n, sizeof(*o), cmp_dentry, d);
    for (size_t i = 0; i < d->n; i++)
        d->rank[o[i]] = (uint32_t)i;
    *order = o;
    return 0;
}

/* ---- levels being built ------------------------------------------------ */

typedef struct {
    gran_t unit;
    size_t n, cap;
    int64_t *bucket;      /* per row */
    uint32_t *ids;        /* n * ndims */
    const void **st;      /* per row: its states (a table's, or in owned) */
    unsigned char *owned; /* nown rows of merged states */
    size_t nown;
} blevel;

typedef struct {
    size_t ndims;
    const agg_layout *layout;
    int64_t part_start, part_end;
    gran_t gran;
    bdict *dict;          /* ndims */
    blevel lv[SEG_MAX_LEVELS];
    size_t nlevels;
    blevel in;            /* the collected rows, before level 0 */
    int err;
} builder;

static void blevel_free(const agg_layout *l, blevel *b)
{
    for (size_t i = 0; i < b->nown; i++)
        agg_row_destroy(l, b->owned + i * l->size);
    free(b->bucket);
    free(b->ids);
    free(b->st);
    free(b->owned);
}

/* Room for n rows (bucket, ids, st). */
static int blevel_alloc(blevel *b, size_t n, size_t ndims)
{
    size_t m = n ? n : 1;
    b->bucket = malloc(m * sizeof(*b->bucket));
    b->ids = malloc(m * (ndims ? ndims : 1) * sizeof(*b->ids));
    b->st = malloc(m * sizeof(*b->st));
    b->cap = n;
    return b->bucket && b->ids && b->st ? 0 : -ENOMEM;
}

static int collect_row(const vrow *r, void *ud)
{
    builder *c = ud;
    blevel *in = &c->in;
    if (r->bucket < c->part_start || r->bucket >= c->part_end ||
        gran_floor(c->gran, r->bucket) != r->bucket)
        return c->err = -EINVAL;
    if (in->n == in->cap)
        return c->err = -EINVAL;   /* more rows than vtable_rows() said */
    for (size_t d = 0; d < c->ndims; d++) {
        int e = bdict_intern(&c->dict[d], &r->dims[d], &in->ids[in->n * c->ndims + d]);
        if (e < 0)
            return c->err = e;
    }
    in->bucket[in->n] = r->bucket;
    in->st[in->n] = r->cells;
    in->n++;
    return 0;
}

/* A row to sort: its bucket at the level being built, its index in the
 * source level, its ids. Sorting these records themselves (not indexes
 * into other arrays) keeps comparisons within two cache lines. */
typedef struct {
    int64_t key;
    uint32_t idx;
    uint32_t ids[];
} srec;

static int cmp_srec(const void *pa, const void *pb, void *ud)
{
    const srec *a = pa, *b = pb;
    size_t nd = *(const size_t *)ud;
    if (a->key != b->key)
        return a->key < b->key ? -1 : 1;
    for (size_t d = 0; d < nd; d++)
        if (a->ids[d] != b->ids[d])
            return a->ids[d] < b->ids[d] ? -1 : 1;
    return 0;
}

/* dst = the rows of src keyed by their bucket at unit (src's own bucket
 * for level 0), sorted, equal keys merged. */
static int rollup(builder *c, const blevel *src, gran_t unit, bool same_bucket, blevel *dst)
{
    size_t n = src->n, nd = c->ndims;
    size_t rs = (sizeof(srec) + nd * sizeof(uint32_t) + 7) & ~(size_t)7;
    const agg_layout *l = c->layout;
    dst->unit = unit;
    size_t bytes;
    unsigned char *recs = NULL;
    if (!__builtin_mul_overflow(n ? n : 1, rs, &bytes))
        recs = malloc(bytes);
    int r = recs ? 0 : -ENOMEM;
    for (size_t i = 0; r == 0 && i < n; i++) {
        srec *e = (srec *)(recs + i * rs);
        e->key = same_bucket ? src->bucket[i] : seg_rollup_bucket(unit, c->part_start, src->bucket[i]);
        e->idx = (uint32_t)i;
        if (nd)
            memcpy(e->ids, src->ids + i * nd, nd * sizeof(uint32_t));
    }
    if (r == 0)
        qsort_r(recs, n, rs, cmp_srec, &nd);
#define REC(i) ((const srec *)(recs + (i) * rs))
    /* count the distinct keys, and the rows that merge several */
    size_t nout = 0, nmerged = 0;
    for (size_t i = 0, j; r == 0 && i < n; i = j) {
        for (j = i + 1; j < n && cmp_srec(REC(i), REC(j), &nd) == 0; j++)
            ;
        nout++;
        nmerged += j - i > 1;
    }
    if (r == 0)
        r = blevel_alloc(dst, nout, nd);
    if (r == 0 && nmerged) {
        if (__builtin_mul_overflow(nmerged, l->size ? l->size : 1, &bytes) ||
            !(dst->owned = malloc(bytes)))
            r = -ENOMEM;
    }
    for (size_t i = 0, j; r == 0 && i < n; i = j) {
        for (j = i + 1; j < n && cmp_srec(REC(i), REC(j), &nd) == 0; j++)
            ;
        size_t o = dst->n++;
        dst->bucket[o] = REC(i)->key;
        if (nd)
            memcpy(dst->ids + o * nd, REC(i)->ids, nd * sizeof(*dst->ids));
        if (j - i == 1) {
            dst->st[o] = src->st[REC(i)->idx];
            continue;
        }
        unsigned char *row = dst->owned + dst->nown++ * l->size;
        agg_row_init(l, row);
        dst->st[o] = row;   /* owned: destroyed with dst, also when a merge fails */
        for (size_t k = i; k < j && r == 0; k++)
            r = agg_row_merge(l, row, src->st[REC(k)->idx]);
    }
#undef REC
    free(recs);
    return r;
}

/* ---- encoding ---------------------------------------------------------- */

/* Where the columns of a part start, so that each gets its own zstd block
 * (and so its own entropy tables: ids, counts and sums have little in
 * common). At most 1 + ndims + nmetrics. */
typedef struct {
    size_t *at;
    size_t n;
} cuts;

static void put_column(bytes_w *w, bytes_w *col, cuts *cu)
{
    bw_varint(w, col->len);
    cu->at[cu->n++] = w->len;
    bw_put(w, col->p, col->len);
    col->len = 0;
}

/* The ids of dimension d, delta-coded where the rows sort by it: a row's
 * id minus the previous row's when both lie in one bucket and agree on
 * dimensions 0..d-1, else the id itself (segment.h). */
static void id_column(const builder *c, const blevel *b, size_t d, const uint32_t *bfirst_of,
                      int64_t *v)
{
    size_t nd = c->ndims;
    for (size_t i = 0; i < b->n; i++) {
        const uint32_t *ids = b->ids + i * nd, *prev = ids - nd;
        bool run = i > 0 && !bfirst_of[i];
        for (size_t k = 0; run && k < d; k++)
            run = ids[k] == prev[k];
        v[i] = run ? (int64_t)ids[d] - prev[d] : ids[d];
    }
}

/* col: one scratch buffer (at least); tmp: room for b->n integers and
 * flags. */
static void encode_level(const builder *c, const blevel *b, bytes_w *w, bytes_w *col,
                         int64_t *tmp, uint32_t *first, size_t *nbuckets, cuts *cu)
{
    size_t nd = c->ndims, nb = 0;
    int64_t prev = c->part_start;
    for (size_t i = 0, j; i < b->n; i = j) {
        for (j = i + 1; j < b->n && b->bucket[j] == b->bucket[i]; j++)
            first[j] = 0;
        first[i] = 1;
        bw_varint(w, (uint64_t)(b->bucket[i] - prev));
        bw_varint(w, j - i);
        prev = b->bucket[i];
        nb++;
    }
    *nbuckets = nb;
    for (size_t d = 0; d < nd; d++) {
        id_column(c, b, d, first, tmp);
        bw_ints(col, tmp, b->n, 1);   /* a byte a row at least (segment.h) */
        put_column(w, col, cu);
    }
    const agg_layout *l = c->layout;
    for (size_t m = 0; m < l->n; m++) {
        agg_column_encode(l, m, b->st, b->n, col);
        put_column(w, col, cu);
    }
}

/* A part: its bytes compressed, and what the header says of it. */
typedef struct {
    unsigned char *z;
    size_t zlen, rawlen;
    uint64_t sum;
} bpart;

static int zstd_err(size_t r)
{
    return ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation ? -ENOMEM : -EIO;
}

/* Compresses w's bytes into a part (one frame declaring its size, a block
 * ending at each cut) and empties w. */
static int seal_part(ZSTD_CCtx *cc, bytes_w *w, const cuts *cu, bpart *p)
{
    if (w->oom)
        return -ENOMEM;
    if (w->len > SEG_MAX_RAW)
        return -EFBIG;
    /* a flush adds at most a block header and a few bytes of tables */
    size_t bound = ZSTD_compressBound(w->len) + 64 * (cu->n + 1);
    p->z = malloc(bound);
    if (!p->z)
        return -ENOMEM;
    size_t e = ZSTD_CCtx_reset(cc, ZSTD_reset_session_and_parameters);
    if (!ZSTD_isError(e))
        e = ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, SEG_ZSTD_LEVEL);
    if (!ZSTD_isError(e))
        e = ZSTD_CCtx_setPledgedSrcSize(cc, w->len);
    ZSTD_outBuffer out = {p->z, bound, 0};
    ZSTD_inBuffer in = {w->p ? (const void *)w->p : "", 0, 0};
    for (size_t k = 0; !ZSTD_isError(e) && k <= cu->n; k++) {
        bool last = k == cu->n;
        in.size = last ? w->len : cu->at[k];
        if (!last && in.size == in.pos)
            continue;
        do
            e = ZSTD_compressStream2(cc, &out, &in, last ? ZSTD_e_end : ZSTD_e_flush);
        while (!ZSTD_isError(e) && e != 0 && out.pos < out.size);
        if (!ZSTD_isError(e) && e != 0)
            return -EFBIG;   /* beyond the bound: cannot happen */
    }
    if (ZSTD_isError(e))
        return zstd_err(e);
    if (out.pos > UINT32_MAX)
        return -EFBIG;
    p->zlen = out.pos;
    p->rawlen = w->len;
    p->sum = checksum64(p->z, out.pos, 0);
    w->len = 0;
    return 0;
}

static void encode_dicts(builder *c, bytes_w *w, int *r)
{
    const agg_layout *l = c->layout;
    for (size_t m = 0; m < l->n; m++) {
        const char *name = l->slot[m].ops->name;
        bw_varint(w, strlen(name));
        bw_put(w, name, strlen(name));
        bytes_w pw = {0};
        agg_params_encode(&l->slot[m], &pw);
        if (pw.oom)
            *r = -ENOMEM;
        bw_varint(w, pw.len);
        bw_put(w, pw.p, pw.len);
        bw_free(&pw);
    }
    for (size_t d = 0; *r == 0 && d < c->ndims; d++) {
        bdict *dd = &c->dict[d];
        uint32_t *order = NULL;
        *r = bdict_sort(dd, &order);
        if (*r < 0)
            break;
        bw_varint(w, dd->n);
        for (size_t i = 0; i < dd->n; i++) {
            const dentry *e = &dd->v[order[i]];
            bw_varint(w, e->null ? 0 : (uint64_t)e->len + 1);
            if (!e->null)
                bw_put(w, dd->bytes + e->off, e->len);
        }
        free(order);
        /* temporary ids to final ones */
        for (size_t i = 0; i < c->in.n; i++)
            c->in.ids[i * c->ndims + d] = dd->rank[c->in.ids[i * c->ndims + d]];
    }
}

static int encode(builder *c, seg_blob *out)
{
    /* the levels: level 0 from the collected rows, each roll-up from the
     * level before it (merging is associative, so it is the same) */
    gran_t units[SEG_MAX_LEVELS];
    size_t nu = 0;
    units[nu++] = c->gran;
    if (seg_unit_code(c->gran) < seg_unit_code(GRAN_HOUR) && c->part_end - c->part_start > 3600 &&
        gran_floor(GRAN_HOUR, c->part_start) == c->part_start)
        units[nu++] = GRAN_HOUR;
    if (gran_next(c->gran, c->part_start) < c->part_end)
        units[nu++] = GRAN_ALL;

    size_t nd = c->ndims, nm = c->layout->n;
    bytes_w w = {0}, col = {0};
    bpart parts[1 + SEG_MAX_LEVELS] = {{0}};   /* the dictionary part, then level 0, 1, ... */
    size_t nbuckets[SEG_MAX_LEVELS] = {0};
    size_t keep[SEG_MAX_LEVELS], nl = 0;       /* the levels written: indexes into c->lv */
    size_t most = c->in.n ? c->in.n : 1;       /* no level has more rows than the input */
    int64_t *tmp = malloc(most * sizeof(*tmp));
    uint32_t *first = malloc(most * sizeof(*first));
    cuts cu = {.at = malloc((1 + nd + nm) * sizeof(*cu.at))};
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    int r = cc && tmp && first && cu.at ? 0 : -ENOMEM;
    if (r == 0)
        encode_dicts(c, &w, &r);
    if (r == 0)
        r = seal_part(cc, &w, &cu, &parts[0]);
    for (size_t i = 0; r == 0 && i < nu; i++) {
        r = rollup(c, i ? &c->lv[i - 1] : &c->in, units[i], i == 0, &c->lv[i]);
        c->nlevels = i + 1;
        if (r == 0 && c->lv[i].n > UINT32_MAX)
            r = -EFBIG;
        /* An hour roll-up that does not halve the rows of the level below
         * is not worth its bytes: a query reads that level instead, at
         * most twice the rows. (Sparse views: a minute view with about one
         * event per key and minute has as many hour rows as minute rows.)
         * The next roll-up is still built from it. */
        if (r < 0 || (i > 0 && units[i] != GRAN_ALL && c->lv[i].n * 2 > c->lv[keep[nl - 1]].n))
            continue;
        cu.n = 0;
        size_t o = nl++;
        keep[o] = i;
        encode_level(c, &c->lv[i], &w, &col, tmp, first, &nbuckets[o], &cu);
        r = col.oom ? -ENOMEM : seal_part(cc, &w, &cu, &parts[1 + o]);
    }
    ZSTD_freeCCtx(cc);
    bw_free(&col);
    bw_free(&w);
    free(tmp);
    free(first);
    free(cu.at);
    size_t hlen = SEG_HDR_LEN(nl), len = hlen;
    for (size_t i = 0; i <= nl; i++)
        len += parts[i].zlen;
    unsigned char *p = r == 0 ? calloc(1, len) : NULL;
    if (r == 0 && !p)
        r = -ENOMEM;
    if (r == 0) {
        memcpy(p, SEG_MAGIC, SEG_MAGIC_LEN);
        seg_put_le(p + 8, SEG_VERSION, 2);
        seg_put_le(p + 10, 0, 2);
        seg_put_le(p + 12, hlen, 4);
        seg_put_le(p + 16, c->ndims, 2);
        seg_put_le(p + 18, c->layout->n, 2);
        p[20] = (unsigned char)nl;
        seg_put_le(p + 24, (uint64_t)c->part_start, 8);
        seg_put_le(p + 32, (uint64_t)c->part_end, 8);
        seg_put_le(p + 40, parts[0].zlen, 4);
        seg_put_le(p + 44, parts[0].rawlen, 4);
        seg_put_le(p + 48, parts[0].sum, 8);
        for (size_t i = 0; i < nl; i++) {
            unsigned char *e = p + SEG_HDR_FIXED + SEG_HDR_LEVEL * i;
            const bpart *pt = &parts[1 + i];
            e[0] = (unsigned char)seg_unit_code(c->lv[keep[i]].unit);
            seg_put_le(e + 4, nbuckets[i], 4);
            seg_put_le(e + 8, c->lv[keep[i]].n, 4);
            seg_put_le(e + 16, pt->zlen, 4);
            seg_put_le(e + 20, pt->rawlen, 4);
            seg_put_le(e + 24, pt->sum, 8);
        }
        seg_put_le(p + hlen - SEG_CHECKSUM_LEN, checksum64(p, hlen - SEG_CHECKSUM_LEN, 0), 8);
        /* the parts: dictionaries, then the levels coarsest first */
        size_t off = hlen;
        memcpy(p + off, parts[0].z, parts[0].zlen);
        off += parts[0].zlen;
        for (size_t i = nl; i-- > 0;) {
            memcpy(p + off, parts[1 + i].z, parts[1 + i].zlen);
            off += parts[1 + i].zlen;
        }
        out->p = p;
        out->len = len;
    }
    for (size_t i = 0; i <= SEG_MAX_LEVELS; i++)
        free(parts[i].z);
    return r;
}

int seg_build_n(const vtable *const *tables, size_t n, int64_t part_start, int64_t part_end,
                gran_t gran, seg_blob *out)
{
    *out = (seg_blob){0};
    if (n == 0 || !tables[0])
        return -EINVAL;
    size_t ndims = vtable_ndims(tables[0]);
    const agg_layout *l = vtable_layout(tables[0]);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (!tables[i] || vtable_ndims(tables[i]) != ndims ||
            !agg_layout_equal(vtable_layout(tables[i]), l))
            return -EINVAL;
        total += vtable_rows(tables[i]);
    }
    if (gran == GRAN_ALL || seg_unit_code(gran) < 0 || part_start < -SEG_TIME_LIMIT ||
        part_end > SEG_TIME_LIMIT || part_start >= part_end ||
        gran_floor(gran, part_start) != part_start || ndims > UINT16_MAX || l->n > UINT16_MAX)
        return -EINVAL;
    if (total > UINT32_MAX)
        return -EFBIG;   /* row counts are 32 bits (a part would be too large anyway) */
    builder c = {.ndims = ndims, .layout = l, .part_start = part_start, .part_end = part_end,
                 .gran = gran};
    c.dict = calloc(ndims ? ndims : 1, sizeof(*c.dict));
    int r = c.dict ? blevel_alloc(&c.in, total, ndims) : -ENOMEM;
    for (size_t d = 0; r == 0 && d < ndims; d++)
        c.dict[d].null_id = UINT32_MAX;
    for (size_t i = 0; r == 0 && i < n; i++)
        if (vtable_foreach(tables[i], collect_row, &c) != 0)
            r = c.err ? c.err : -EINVAL;
    if (r == 0)
        r = encode(&c, out);
    /* the collected rows only point to the tables' states: nothing owned */
    free(c.in.bucket);
    free(c.in.ids);
    free(c.in.st);
    for (size_t i = 0; i < c.nlevels; i++)
        blevel_free(l, &c.lv[i]);
    for (size_t d = 0; c.dict && d < ndims; d++)
        bdict_free(&c.dict[d]);
    free(c.dict);
    return r;
}
