/* segment.c - decoding a segment (format: segment.h) and reading it.
 *
 * The decoder trusts nothing: it checks magic, checksum and version first,
 * then every size against the bytes left before allocating for it, every
 * id against its dictionary, the order of dictionaries, buckets and rows,
 * and that nothing follows. Sizes are bounded by SEG_MAX_RAW (so row and
 * bucket counts fit in 32 bits) and products are overflow-checked. Every
 * error path frees what it built through seg_free, which accepts a
 * half-built segment (it knows how many states were decoded).
 * Pure; any thread. A decoded segment is immutable.
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

typedef struct {
    gran_t unit;
    uint32_t nrows, nbuckets;
    int64_t *bstart;         /* nbuckets bucket starts, ascending */
    uint32_t *bfirst;        /* nbuckets + 1: bucket i's rows are [bfirst[i], bfirst[i+1]) */
    void **ids;              /* per dimension: nrows ids of the dictionary's width */
    unsigned char *states;   /* nrows rows of layout->size bytes */
    /* decoding progress: states of metrics [0, mdone) are decoded for every
     * row, those of metric mdone for rows [0, rdone) */
    size_t mdone, rdone;
} slevel;

typedef struct {
    uint32_t n;
    uint8_t width;           /* bytes of an id in a level's id array: 1, 2 or 4 */
    bool has_null;           /* id 0 is null */
    uint32_t *off;           /* n + 1 offsets into bytes */
    char *bytes;
} sdict;

struct segment {
    agg_layout *layout;
    size_t ndims;
    gran_t gran;
    int64_t part_start, part_end;
    size_t nlevels;
    slevel level[SEG_MAX_LEVELS];
    sdict *dict;             /* ndims */
    size_t bytes;
};

static void level_free(const segment *s, slevel *lv)
{
    const agg_layout *l = s->layout;
    if (lv->states && l->destroy) {
        for (size_t m = 0; m < l->n && m <= lv->mdone; m++) {
            void (*destroy)(void *) = l->slot[m].ops->destroy;
            size_t rows = m < lv->mdone ? lv->nrows : lv->rdone;
            for (size_t i = 0; destroy && i < rows; i++)
                destroy(lv->states + i * l->size + l->slot[m].off);
        }
    }
    free(lv->states);
    if (lv->ids)
        for (size_t d = 0; d < s->ndims; d++)
            free(lv->ids[d]);
    free(lv->ids);
    free(lv->bstart);
    free(lv->bfirst);
}

void seg_free(segment *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nlevels; i++)
        level_free(s, &s->level[i]);
    for (size_t d = 0; s->dict && d < s->ndims; d++) {
        free(s->dict[d].off);
        free(s->dict[d].bytes);
    }
    free(s->dict);
    free(s->layout);
    free(s);
}

/* ---- decoding ---------------------------------------------------------- */

static void *alloc_n(size_t n, size_t size, size_t *bytes)
{
    size_t b;
    if (__builtin_mul_overflow(n ? n : 1, size ? size : 1, &b))
        return NULL;
    *bytes += b;
    return calloc(1, b);
}

/* A sub-reader over the next column: varint L, then L bytes. */
static bytes_r take_column(bytes_r *r)
{
    uint64_t l = br_varint(r);
    const unsigned char *p = l <= br_left(r) ? br_take(r, (size_t)l) : NULL;
    if (!p) {
        r->bad = true;
        return (bytes_r){.bad = true};
    }
    return br_init(p, (size_t)l);
}

static int decode_metrics(const segment *s, bytes_r *r)
{
    for (size_t m = 0; m < s->layout->n && !r->bad; m++) {
        uint64_t n = br_varint(r);
        const unsigned char *name = n <= br_left(r) ? br_take(r, (size_t)n) : NULL;
        uint64_t np = br_varint(r);
        if (!name || r->bad || np != 0)
            return -EBADMSG;
        const char *want = s->layout->slot[m].ops->name;
        if (n != strlen(want) || memcmp(name, want, n) != 0)
            return -EINVAL;   /* sound, but another metric: the view changed */
    }
    return r->bad ? -EBADMSG : 0;
}

static int decode_dict(segment *s, sdict *d, bytes_r *r)
{
    uint64_t n = br_varint(r);
    if (r->bad || n > br_left(r) || n > UINT32_MAX - 1)   /* a value takes a byte at least */
        return -EBADMSG;
    /* pass 1: check the order, add up the bytes */
    bytes_r p1 = *r;
    const unsigned char *prev = NULL;
    uint64_t prevlen = 0, total = 0;
    bool prevnull = false;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t l = br_varint(&p1);
        const unsigned char *v = l != 0 && l - 1 <= br_left(&p1) ? br_take(&p1, (size_t)(l - 1)) : NULL;
        if (p1.bad || (l != 0 && !v))
            return -EBADMSG;
        bool null = l == 0;
        size_t len = null ? 0 : (size_t)(l - 1);
        if (i > 0 && seg_cmp_value((const char *)prev, prevlen, prevnull, (const char *)v, len,
                                   null) >= 0)
            return -EBADMSG;
        prev = v;
        prevlen = len;
        prevnull = null;
        total += len;
    }
    d->n = (uint32_t)n;
    d->width = n <= 256 ? 1 : n <= 65536 ? 2 : 4;
    d->off = alloc_n(n + 1, sizeof(*d->off), &s->bytes);
    d->bytes = alloc_n(total, 1, &s->bytes);
    if (!d->off || !d->bytes)
        return -ENOMEM;
    /* pass 2: copy (total <= raw_len < 2^32, so offsets fit) */
    uint32_t off = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t l = br_varint(r);
        if (l == 0) {
            d->has_null = true;   /* only id 0: null sorts first, and the order is strict */
        } else {
            memcpy(d->bytes + off, br_take(r, (size_t)(l - 1)), (size_t)(l - 1));
            off += (uint32_t)(l - 1);
        }
        d->off[i + 1] = off;
    }
    return r->bad ? -EBADMSG : 0;
}

static inline uint32_t get_id(const void *a, unsigned width, size_t i)
{
    switch (width) {
    case 1: return ((const uint8_t *)a)[i];
    case 2: return ((const uint16_t *)a)[i];
    default: return ((const uint32_t *)a)[i];
    }
}

static inline void set_id(void *a, unsigned width, size_t i, uint32_t v)
{
    switch (width) {
    case 1: ((uint8_t *)a)[i] = (uint8_t)v; break;
    case 2: ((uint16_t *)a)[i] = (uint16_t)v; break;
    default: ((uint32_t *)a)[i] = v; break;
    }
}

static int decode_buckets(segment *s, slevel *lv, bytes_r *r)
{
    /* an entry takes two bytes at least */
    if (lv->nbuckets > br_left(r) / 2)
        return -EBADMSG;
    lv->bstart = alloc_n(lv->nbuckets, sizeof(*lv->bstart), &s->bytes);
    lv->bfirst = alloc_n((size_t)lv->nbuckets + 1, sizeof(*lv->bfirst), &s->bytes);
    if (!lv->bstart || !lv->bfirst)
        return -ENOMEM;
    int64_t prev = s->part_start;
    uint64_t rows = 0;
    for (uint32_t i = 0; i < lv->nbuckets; i++) {
        uint64_t delta = br_varint(r), n = br_varint(r);
        /* prev < part_end, both within SEG_TIME_LIMIT: no overflow */
        if (r->bad || (i > 0 && delta == 0) || delta >= (uint64_t)(s->part_end - prev) || n == 0 ||
            n > lv->nrows - rows)
            return -EBADMSG;
        int64_t b = prev + (int64_t)delta;
        if (lv->unit == GRAN_ALL ? b != s->part_start : gran_floor(lv->unit, b) != b)
            return -EBADMSG;
        lv->bstart[i] = b;
        lv->bfirst[i] = (uint32_t)rows;
        rows += n;
        prev = b;
    }
    lv->bfirst[lv->nbuckets] = (uint32_t)rows;
    return rows == lv->nrows ? 0 : -EBADMSG;
}

/* Rows strictly ascending by ids within each bucket. */
static bool rows_sorted(const segment *s, const slevel *lv)
{
    for (uint32_t b = 0; b < lv->nbuckets; b++) {
        for (uint32_t i = lv->bfirst[b] + 1; i < lv->bfirst[b + 1]; i++) {
            int c = 0;
            for (size_t d = 0; d < s->ndims && c == 0; d++) {
                uint32_t x = get_id(lv->ids[d], s->dict[d].width, i - 1);
                uint32_t y = get_id(lv->ids[d], s->dict[d].width, i);
                c = (x > y) - (x < y);
            }
            if (c >= 0)
                return false;
        }
    }
    return true;
}

static int decode_level(segment *s, slevel *lv, bytes_r *r)
{
    int e = decode_buckets(s, lv, r);
    if (e < 0)
        return e;
    lv->ids = alloc_n(s->ndims, sizeof(*lv->ids), &s->bytes);
    if (!lv->ids)
        return -ENOMEM;
    for (size_t d = 0; d < s->ndims; d++) {
        const sdict *dict = &s->dict[d];
        bytes_r c = take_column(r);
        if (c.bad || lv->nrows > br_left(&c))   /* an id takes a byte at least */
            return -EBADMSG;
        lv->ids[d] = alloc_n(lv->nrows, dict->width, &s->bytes);
        if (!lv->ids[d])
            return -ENOMEM;
        for (uint32_t i = 0; i < lv->nrows; i++) {
            uint64_t id = br_varint(&c);
            if (c.bad || id >= dict->n)
                return -EBADMSG;
            set_id(lv->ids[d], dict->width, i, (uint32_t)id);
        }
        if (br_left(&c) != 0)
            return -EBADMSG;
    }
    if (!rows_sorted(s, lv))
        return -EBADMSG;
    const agg_layout *l = s->layout;
    lv->states = alloc_n(lv->nrows, l->size, &s->bytes);
    if (!lv->states)
        return -ENOMEM;
    for (lv->mdone = 0; lv->mdone < l->n; lv->mdone++) {
        const agg_slot *sl = &l->slot[lv->mdone];
        bytes_r c = take_column(r);
        for (lv->rdone = 0; lv->rdone < lv->nrows;) {
            /* decode leaves an initialized state even when it fails */
            sl->ops->decode(lv->states + lv->rdone * l->size + sl->off, &sl->params, &c);
            lv->rdone++;
            if (c.bad)
                return -EBADMSG;
        }
        if (c.bad || br_left(&c) != 0)
            return -EBADMSG;
        lv->rdone = 0;
    }
    return 0;
}

/* Checks the header (the checksum is already checked) and sets up s. */
static int decode_header(segment *s, const unsigned char *p, size_t len, size_t ndims,
                         uint64_t *raw_len, size_t *hlen)
{
    if (len < SEG_HDR_FIXED + SEG_CHECKSUM_LEN)
        return -EBADMSG;
    uint64_t flags = seg_get_le(p + 10, 2), nd = seg_get_le(p + 12, 2), nm = seg_get_le(p + 14, 2);
    int64_t ps = (int64_t)seg_get_le(p + 16, 8), pe = (int64_t)seg_get_le(p + 24, 8);
    uint64_t raw = seg_get_le(p + 32, 8), body = seg_get_le(p + 40, 8);
    unsigned nl = p[48];
    if (flags != 0 || seg_get_le(p + 49, 7) != 0 || nl < 1 || nl > SEG_MAX_LEVELS)
        return -EBADMSG;
    size_t h = SEG_HDR_FIXED + SEG_HDR_LEVEL * (size_t)nl;
    if (len < h + SEG_CHECKSUM_LEN || body != len - h - SEG_CHECKSUM_LEN || raw > SEG_MAX_RAW ||
        ps < -SEG_TIME_LIMIT || pe > SEG_TIME_LIMIT || ps >= pe)
        return -EBADMSG;
    s->part_start = ps;
    s->part_end = pe;
    for (unsigned i = 0; i < nl; i++) {
        const unsigned char *e = p + SEG_HDR_FIXED + SEG_HDR_LEVEL * i;
        slevel *lv = &s->level[i];
        uint64_t nb = seg_get_le(e + 4, 4), nr = seg_get_le(e + 8, 8);
        if (!seg_unit_of_code(e[0], &lv->unit) || seg_get_le(e + 1, 3) != 0)
            return -EBADMSG;
        if (i == 0 ? lv->unit == GRAN_ALL || gran_floor(lv->unit, ps) != ps
                   : seg_unit_code(lv->unit) <= seg_unit_code(s->level[i - 1].unit))
            return -EBADMSG;
        /* rows: ids take a byte each; without dimensions one row a bucket */
        if (nr > raw || nb > nr || (nr > 0) != (nb > 0) || (nd == 0 && nr != nb) ||
            (lv->unit == GRAN_ALL && nb > 1))
            return -EBADMSG;
        lv->nrows = (uint32_t)nr;
        lv->nbuckets = (uint32_t)nb;
    }
    s->gran = s->level[0].unit;
    s->nlevels = nl;
    if (nd != ndims || nm != s->layout->n)
        return -EINVAL;   /* sound, but of another view definition */
    *raw_len = raw;
    *hlen = h;
    return 0;
}

int seg_decode(const void *blob, size_t len, const agg_layout *layout, size_t ndims,
               segment **out)
{
    const unsigned char *p = blob;
    *out = NULL;
    if (len < SEG_MAGIC_LEN + 2 + SEG_CHECKSUM_LEN || memcmp(p, SEG_MAGIC, SEG_MAGIC_LEN) != 0 ||
        checksum64(p, len - SEG_CHECKSUM_LEN, 0) != seg_get_le(p + len - SEG_CHECKSUM_LEN, 8))
        return -EBADMSG;
    if (seg_get_le(p + SEG_MAGIC_LEN, 2) != SEG_VERSION)
        return -EPROTONOSUPPORT;
    segment *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->bytes = sizeof(*s);
    s->ndims = ndims;
    s->layout = agg_layout_dup(layout);
    if (!s->layout) {
        free(s);
        return -ENOMEM;
    }
    s->bytes += sizeof(agg_layout) + layout->n * sizeof(agg_slot);
    uint64_t raw_len = 0;
    size_t hlen = 0;
    int r = decode_header(s, p, len, ndims, &raw_len, &hlen);
    if (r < 0) {
        seg_free(s);   /* no level holds anything yet */
        return r;
    }
    const unsigned char *body = p + hlen;
    size_t body_len = len - hlen - SEG_CHECKSUM_LEN;
    unsigned long long fsize = ZSTD_getFrameContentSize(body, body_len);
    size_t fz = ZSTD_findFrameCompressedSize(body, body_len);
    unsigned char *raw = NULL;
    if (fsize != raw_len || ZSTD_isError(fz) || fz != body_len)
        r = -EBADMSG;
    else if (!(raw = malloc(raw_len ? raw_len : 1)))
        r = -ENOMEM;
    if (r == 0) {
        size_t got = ZSTD_decompress(raw, raw_len ? raw_len : 1, body, body_len);
        if (ZSTD_isError(got))
            r = ZSTD_getErrorCode(got) == ZSTD_error_memory_allocation ? -ENOMEM : -EBADMSG;
        else if (got != raw_len)
            r = -EBADMSG;
    }
    bytes_r br = br_init(raw, r == 0 ? raw_len : 0);
    if (r == 0)
        r = decode_metrics(s, &br);
    if (r == 0) {
        s->dict = alloc_n(ndims, sizeof(*s->dict), &s->bytes);
        if (!s->dict)
            r = -ENOMEM;
    }
    for (size_t d = 0; r == 0 && d < ndims; d++)
        r = decode_dict(s, &s->dict[d], &br);
    for (size_t i = 0; r == 0 && i < s->nlevels; i++)
        r = decode_level(s, &s->level[i], &br);
    if (r == 0 && (br.bad || br_left(&br) != 0))
        r = -EBADMSG;
    free(raw);
    if (r < 0) {
        seg_free(s);
        return r;
    }
    *out = s;
    return 0;
}

size_t seg_bytes(const segment *s) { return s->bytes; }

/* ---- reading ----------------------------------------------------------- */

int64_t seg_part_start(const segment *s) { return s->part_start; }
int64_t seg_part_end(const segment *s) { return s->part_end; }
gran_t seg_gran(const segment *s) { return s->gran; }
size_t seg_ndims(const segment *s) { return s->ndims; }
const agg_layout *seg_layout(const segment *s) { return s->layout; }
size_t seg_nlevels(const segment *s) { return s->nlevels; }
gran_t seg_level_unit(const segment *s, size_t level) { return s->level[level].unit; }
size_t seg_level_nrows(const segment *s, size_t level) { return s->level[level].nrows; }

/* The first bucket of a level whose start is >= t. */
static uint32_t bucket_lower_bound(const slevel *lv, int64_t t)
{
    uint32_t lo = 0, hi = lv->nbuckets;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (lv->bstart[mid] < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void seg_level_rows(const segment *s, size_t level, int64_t from, int64_t to, size_t *first,
                    size_t *end)
{
    const slevel *lv = &s->level[level];
    uint32_t a = bucket_lower_bound(lv, from), b = from < to ? bucket_lower_bound(lv, to) : a;
    *first = lv->bfirst[a];
    *end = lv->bfirst[b];
}

/* The bucket holding row: the last one whose first row is <= row. */
static uint32_t bucket_of_row(const slevel *lv, size_t row)
{
    uint32_t lo = 0, hi = lv->nbuckets;   /* answer in [lo, hi) */
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (lv->bfirst[mid] <= row)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

int64_t seg_row_bucket(const segment *s, size_t level, size_t row)
{
    const slevel *lv = &s->level[level];
    return lv->bstart[bucket_of_row(lv, row)];
}

size_t seg_bucket_end(const segment *s, size_t level, size_t row, int64_t *bucket)
{
    const slevel *lv = &s->level[level];
    uint32_t b = bucket_of_row(lv, row);
    *bucket = lv->bstart[b];
    return lv->bfirst[b + 1];
}

uint32_t seg_row_id(const segment *s, size_t level, size_t row, size_t dim)
{
    return get_id(s->level[level].ids[dim], s->dict[dim].width, row);
}

const void *seg_row_states(const segment *s, size_t level, size_t row)
{
    return s->level[level].states + row * s->layout->size;
}

uint32_t seg_dict_size(const segment *s, size_t dim) { return s->dict[dim].n; }

dimval seg_dict_value(const segment *s, size_t dim, uint32_t id)
{
    const sdict *d = &s->dict[dim];
    if (id == 0 && d->has_null)
        return (dimval){.s = NULL, .len = 0, .null = true};
    return (dimval){.s = d->bytes + d->off[id], .len = d->off[id + 1] - d->off[id], .null = false};
}

int64_t seg_dict_find(const segment *s, size_t dim, const char *str, size_t len, bool null)
{
    const sdict *d = &s->dict[dim];
    if (null)
        return d->has_null ? 0 : -1;
    uint32_t lo = d->has_null, hi = d->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = seg_cmp_value(d->bytes + d->off[mid], d->off[mid + 1] - d->off[mid], false, str,
                              len, false);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* ---- choosing a level -------------------------------------------------- */

static bool level_usable(const segment *s, const slevel *lv,
                         int64_t (*qfloor)(int64_t ts, const void *ud), const void *ud,
                         int64_t from, int64_t to)
{
    uint32_t i = bucket_lower_bound(lv, from);
    if (i > 0)
        i--;   /* the bucket before may reach into the range */
    for (; i < lv->nbuckets && lv->bstart[i] < to; i++) {
        int64_t first = lv->bstart[i];   /* a view bucket start: units nest */
        int64_t end = lv->unit == GRAN_ALL ? s->part_end : gran_next(lv->unit, first);
        if (end > s->part_end)
            end = s->part_end;
        int64_t last = gran_floor(s->gran, end - 1);   /* the last view bucket it covers */
        if (last < from)
            continue;   /* all outside */
        if (first < from || last >= to || qfloor(first, ud) != qfloor(last, ud))
            return false;
    }
    return true;
}

size_t seg_pick_level_fn(const segment *s, int64_t (*qfloor)(int64_t ts, const void *ud),
                         const void *ud, int64_t from, int64_t to)
{
    for (size_t l = s->nlevels; l-- > 1;)
        if (level_usable(s, &s->level[l], qfloor, ud, from, to))
            return l;
    return 0;
}

static int64_t floor_gran(int64_t ts, const void *ud)
{
    return gran_floor(*(const gran_t *)ud, ts);
}

size_t seg_pick_level(const segment *s, gran_t qgran, int64_t from, int64_t to)
{
    return seg_pick_level_fn(s, floor_gran, &qgran, from, to);
}
