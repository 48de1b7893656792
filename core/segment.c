/* segment.c - decoding a segment (format: segment.h) and reading it.
 *
 * The decoder trusts nothing: it checks magic, header checksum and version
 * first, then every header field, each part's checksum before
 * decompressing it, every size against the bytes left before allocating
 * for it, every id against its dictionary, the order of dictionaries,
 * buckets and rows, and that nothing follows. Sizes are bounded by
 * SEG_MAX_RAW (so row and bucket counts fit in 32 bits) and products are
 * overflow-checked. Every error path frees what it built through
 * seg_free, which accepts a half-built segment (it knows how many states
 * were decoded). The level chooser reads the header only.
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
    bool loaded;             /* decoded (levels >= the segment's min_level) */
    uint32_t nrows, nbuckets;
    int64_t *bstart;         /* nbuckets bucket starts, ascending */
    uint32_t *bfirst;        /* nbuckets + 1: bucket i's rows are [bfirst[i], bfirst[i+1]) */
    void **ids;              /* per dimension: nrows ids of the dictionary's width */
    unsigned char *states;   /* nrows rows of layout->size bytes */
    size_t mdone;            /* metrics [0, mdone) decoded (or initialized) for every row */
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
    seg_info info;
    size_t ndims;            /* info's, for short */
    gran_t gran;             /* level 0's unit */
    int64_t part_start, part_end;
    size_t nlevels, min_level;
    slevel level[SEG_MAX_LEVELS];
    sdict *dict;             /* ndims */
    size_t bytes;
};

static void level_free(const segment *s, slevel *lv)
{
    const agg_layout *l = s->layout;
    if (lv->states && l->destroy) {
        for (size_t m = 0; m < lv->mdone; m++) {
            void (*destroy)(void *) = l->slot[m].ops->destroy;
            for (size_t i = 0; destroy && i < lv->nrows; i++)
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
        const unsigned char *params = np <= br_left(r) ? br_take(r, (size_t)np) : NULL;
        if (!name || !params || r->bad)
            return -EBADMSG;
        const char *want = s->layout->slot[m].ops->name;
        if (n != strlen(want) || memcmp(name, want, n) != 0)
            return -EINVAL;   /* sound, but another metric: the view changed */
        bytes_w pw = {0};
        agg_params_encode(&s->layout->slot[m], &pw);
        bool same = !pw.oom && pw.len == np && (np == 0 || memcmp(pw.p, params, np) == 0);
        bool oom = pw.oom, none = pw.len == 0;
        bw_free(&pw);
        if (oom)
            return -ENOMEM;
        if (!same && none)
            return -EBADMSG;  /* parameters for a type that takes none */
        if (!same)
            return -EINVAL;   /* another precision or accuracy: the view changed */
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

/* Dimension d's ids from its column: delta-coded where the rows sort by
 * it (segment.h). run[i] says whether row i lies in row i-1's bucket with
 * the same ids of dimensions 0..d-1; it is updated for the next one. */
static int decode_ids(segment *s, slevel *lv, size_t d, bytes_r *col, int64_t *v, uint8_t *run)
{
    const sdict *dict = &s->dict[d];
    size_t n = lv->nrows;
    if (n > br_left(col))   /* at least one plane */
        return -EBADMSG;
    br_ints(col, v, sizeof(*v), n);
    if (col->bad || br_left(col) != 0)
        return -EBADMSG;
    /* in uint64: any value read is checked, none overflows */
    uint64_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t id = (uint64_t)v[i] + (run[i] ? prev : 0);
        if (id >= dict->n)
            return -EBADMSG;
        run[i] = run[i] && id == prev;
        v[i] = (int64_t)id;
        prev = id;
    }
    lv->ids[d] = alloc_n(n, dict->width, &s->bytes);
    if (!lv->ids[d])
        return -ENOMEM;
    switch (dict->width) {
    case 1: for (size_t i = 0; i < n; i++) ((uint8_t *)lv->ids[d])[i] = (uint8_t)v[i]; break;
    case 2: for (size_t i = 0; i < n; i++) ((uint16_t *)lv->ids[d])[i] = (uint16_t)v[i]; break;
    default: for (size_t i = 0; i < n; i++) ((uint32_t *)lv->ids[d])[i] = (uint32_t)v[i]; break;
    }
    return 0;
}

static int decode_level(segment *s, slevel *lv, bytes_r *r)
{
    int e = decode_buckets(s, lv, r);
    if (e < 0)
        return e;
    lv->ids = alloc_n(s->ndims, sizeof(*lv->ids), &s->bytes);
    if (!lv->ids)
        return -ENOMEM;
    if (s->ndims) {
        /* scratch (not counted in s->bytes); nrows <= the part's bytes */
        size_t tb = 0;
        int64_t *v = alloc_n(lv->nrows, sizeof(*v), &tb);
        uint8_t *run = alloc_n(lv->nrows, 1, &tb);
        if (!v || !run)
            e = -ENOMEM;
        /* dimension 0 continues a run within each bucket */
        for (uint32_t b = 0; e == 0 && b < lv->nbuckets; b++)
            for (uint32_t i = lv->bfirst[b] + 1; i < lv->bfirst[b + 1]; i++)
                run[i] = 1;
        for (size_t d = 0; e == 0 && d < s->ndims; d++) {
            bytes_r c = take_column(r);
            e = c.bad ? -EBADMSG : decode_ids(s, lv, d, &c, v, run);
        }
        free(v);
        free(run);
        if (e < 0)
            return e;
    }
    if (!rows_sorted(s, lv))
        return -EBADMSG;
    const agg_layout *l = s->layout;
    lv->states = alloc_n(lv->nrows, l->size, &s->bytes);
    if (!lv->states)
        return -ENOMEM;
    for (size_t m = 0; m < l->n; m++) {
        bytes_r c = take_column(r);
        /* every state of the column is initialized, even on error */
        int de = agg_column_decode(l, m, lv->states, lv->nrows, &c);
        lv->mdone = m + 1;
        if (de < 0)
            return de;
        const agg_slot *sl = &l->slot[m];
        for (size_t i = 0; sl->ops->heap_bytes && !c.bad && i < lv->nrows; i++)
            s->bytes += sl->ops->heap_bytes(lv->states + i * l->size + sl->off);   /* a sketch's own memory */
        if (c.bad || br_left(&c) != 0)
            return -EBADMSG;
    }
    return 0;
}

/* A part as the header describes it. */
typedef struct {
    size_t off, zlen, rawlen;
    uint64_t sum;
} part;

/* Reads and checks the header; parts[0] is the dictionary part,
 * parts[1 + l] level l's. */
static int read_header(const unsigned char *p, size_t len, seg_info *in, uint32_t *nbuckets,
                       part *parts)
{
    if (len < 16 || memcmp(p, SEG_MAGIC, SEG_MAGIC_LEN) != 0)
        return -EBADMSG;
    uint64_t hl = seg_get_le(p + 12, 4);
    if (hl < 16 + SEG_CHECKSUM_LEN)
        return -EBADMSG;
    if (hl > len)
        return -ENOBUFS;
    if (checksum64(p, hl - SEG_CHECKSUM_LEN, 0) != seg_get_le(p + hl - SEG_CHECKSUM_LEN, 8))
        return -EBADMSG;
    if (seg_get_le(p + 8, 2) != SEG_VERSION)
        return -EPROTONOSUPPORT;
    /* version 2 */
    unsigned nl = p[20];
    if (hl < SEG_HDR_LEN(1) || seg_get_le(p + 10, 2) != 0 || nl < 1 || nl > SEG_MAX_LEVELS ||
        hl != SEG_HDR_LEN(nl) || seg_get_le(p + 21, 3) != 0)
        return -EBADMSG;
    *in = (seg_info){.ndims = (size_t)seg_get_le(p + 16, 2), .nmetrics = (size_t)seg_get_le(p + 18, 2),
                     .nlevels = nl, .part_start = (int64_t)seg_get_le(p + 24, 8),
                     .part_end = (int64_t)seg_get_le(p + 32, 8)};
    int64_t ps = in->part_start, pe = in->part_end;
    if (ps < -SEG_TIME_LIMIT || pe > SEG_TIME_LIMIT || ps >= pe)
        return -EBADMSG;
    parts[0] = (part){.zlen = seg_get_le(p + 40, 4), .rawlen = seg_get_le(p + 44, 4),
                      .sum = seg_get_le(p + 48, 8)};
    for (unsigned i = 0; i < nl; i++) {
        const unsigned char *e = p + SEG_HDR_FIXED + SEG_HDR_LEVEL * i;
        gran_t u;
        uint64_t nb = seg_get_le(e + 4, 4), nr = seg_get_le(e + 8, 4);
        part *pt = &parts[1 + i];
        *pt = (part){.zlen = seg_get_le(e + 16, 4), .rawlen = seg_get_le(e + 20, 4),
                     .sum = seg_get_le(e + 24, 8)};
        if (!seg_unit_of_code(e[0], &u) || seg_get_le(e + 1, 3) != 0 || seg_get_le(e + 12, 4) != 0)
            return -EBADMSG;
        if (i == 0 ? u == GRAN_ALL : seg_unit_code(u) <= seg_unit_code(in->unit[i - 1]))
            return -EBADMSG;
        if (u != GRAN_ALL && gran_floor(u, ps) != ps)
            return -EBADMSG;
        /* an id takes a byte at least; without dimensions one row a bucket;
         * a bucket index entry two bytes at least */
        if (nr > pt->rawlen || nb > nr || (nr > 0) != (nb > 0) || nb > pt->rawlen / 2 ||
            (in->ndims == 0 && nr != nb) || (u == GRAN_ALL && nb > 1))
            return -EBADMSG;
        in->unit[i] = u;
        in->nrows[i] = (size_t)nr;
        nbuckets[i] = (uint32_t)nb;
    }
    for (unsigned i = 0; i <= nl; i++)
        if (parts[i].rawlen > SEG_MAX_RAW)
            return -EBADMSG;
    /* offsets: the dictionaries, then the levels coarsest first; each
     * length is below 2^32 and there are at most 5, so no overflow */
    uint64_t off = hl;
    parts[0].off = (size_t)off;
    off += parts[0].zlen;
    for (unsigned i = nl; i-- > 0;) {
        parts[1 + i].off = (size_t)off;
        off += parts[1 + i].zlen;
        in->need[i] = (size_t)off;
    }
    if (off > SIZE_MAX)
        return -EBADMSG;
    in->len = (size_t)off;
    return 0;
}

int seg_read_info(const void *p, size_t len, seg_info *info)
{
    uint32_t nb[SEG_MAX_LEVELS];
    part parts[1 + SEG_MAX_LEVELS];
    return read_header(p, len, info, nb, parts);
}

/* The bytes of a part, decompressed (malloc'd in *raw). */
static int unpack(const unsigned char *p, const part *pt, unsigned char **raw)
{
    const unsigned char *z = p + pt->off;
    if (checksum64(z, pt->zlen, 0) != pt->sum)
        return -EBADMSG;
    unsigned long long fsize = ZSTD_getFrameContentSize(z, pt->zlen);
    size_t fz = ZSTD_findFrameCompressedSize(z, pt->zlen);
    if (fsize != pt->rawlen || ZSTD_isError(fz) || fz != pt->zlen)
        return -EBADMSG;
    *raw = malloc(pt->rawlen ? pt->rawlen : 1);
    if (!*raw)
        return -ENOMEM;
    size_t got = ZSTD_decompress(*raw, pt->rawlen ? pt->rawlen : 1, z, pt->zlen);
    if (ZSTD_isError(got))
        return ZSTD_getErrorCode(got) == ZSTD_error_memory_allocation ? -ENOMEM : -EBADMSG;
    return got == pt->rawlen ? 0 : -EBADMSG;
}

static int decode_dict_part(segment *s, const unsigned char *p, const part *pt)
{
    unsigned char *raw = NULL;
    int r = unpack(p, pt, &raw);
    bytes_r br = br_init(raw, r == 0 ? pt->rawlen : 0);
    if (r == 0)
        r = decode_metrics(s, &br);
    if (r == 0) {
        s->dict = alloc_n(s->ndims, sizeof(*s->dict), &s->bytes);
        if (!s->dict)
            r = -ENOMEM;
    }
    for (size_t d = 0; r == 0 && d < s->ndims; d++)
        r = decode_dict(s, &s->dict[d], &br);
    if (r == 0 && (br.bad || br_left(&br) != 0))
        r = -EBADMSG;
    free(raw);
    return r;
}

static int decode_level_part(segment *s, slevel *lv, const unsigned char *p, const part *pt)
{
    unsigned char *raw = NULL;
    int r = unpack(p, pt, &raw);
    bytes_r br = br_init(raw, r == 0 ? pt->rawlen : 0);
    if (r == 0)
        r = decode_level(s, lv, &br);
    if (r == 0 && (br.bad || br_left(&br) != 0))
        r = -EBADMSG;
    free(raw);
    return r;
}

int seg_decode_from(const void *blob, size_t len, size_t min_level, const agg_layout *layout,
                    size_t ndims, segment **out)
{
    const unsigned char *p = blob;
    *out = NULL;
    seg_info info;
    uint32_t nbuckets[SEG_MAX_LEVELS];
    part parts[1 + SEG_MAX_LEVELS];
    int r = read_header(p, len, &info, nbuckets, parts);
    if (r == -ENOBUFS)
        r = -EBADMSG;   /* shorter than its own header */
    if (r < 0)
        return r;
    if (info.ndims != ndims || info.nmetrics != layout->n || min_level >= info.nlevels)
        return -EINVAL;   /* sound, but of another view definition */
    if (len < info.need[min_level] || len > info.len)
        return -EBADMSG;
    segment *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->bytes = sizeof(*s);
    s->info = info;
    s->ndims = ndims;
    s->gran = info.unit[0];
    s->part_start = info.part_start;
    s->part_end = info.part_end;
    s->nlevels = info.nlevels;
    s->min_level = min_level;
    for (size_t i = 0; i < info.nlevels; i++)
        s->level[i] = (slevel){.unit = info.unit[i], .nrows = (uint32_t)info.nrows[i],
                               .nbuckets = nbuckets[i]};
    s->layout = agg_layout_dup(layout);
    if (!s->layout) {
        free(s);
        return -ENOMEM;
    }
    s->bytes += sizeof(agg_layout) + layout->n * sizeof(agg_slot);
    r = decode_dict_part(s, p, &parts[0]);
    for (size_t i = info.nlevels; r == 0 && i-- > min_level;) {
        s->level[i].loaded = true;   /* (seg_free frees what it holds, even half-built) */
        r = decode_level_part(s, &s->level[i], p, &parts[1 + i]);
    }
    if (r < 0) {
        seg_free(s);
        return r;
    }
    *out = s;
    return 0;
}

size_t seg_bytes(const segment *s) { return s->bytes; }

/* ---- reading ----------------------------------------------------------- */

const seg_info *seg_info_of(const segment *s) { return &s->info; }
const agg_layout *seg_layout(const segment *s) { return s->layout; }
size_t seg_min_level(const segment *s) { return s->min_level; }

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
    if (!lv->loaded) {
        *first = *end = 0;
        return;
    }
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

/* Whether bucket b of a level of unit u covers view buckets all outside
 * [from, to), or all inside and in one answer bucket. */
static bool bucket_ok(const seg_info *in, gran_t u, int64_t b,
                      int64_t (*qfloor)(int64_t ts, const void *ud), const void *ud, int64_t from,
                      int64_t to)
{
    int64_t end = u == GRAN_ALL ? in->part_end : gran_next(u, b);
    if (end > in->part_end)
        end = in->part_end;
    int64_t first = b;   /* part_start and every bucket of u are view bucket starts */
    int64_t last = gran_floor(in->unit[0], end - 1);
    if (last < from || first >= to)
        return true;
    return first >= from && last < to && qfloor(first, ud) == qfloor(last, ud);
}

/* The bucket of a level of unit u holding t, part_start <= t < part_end. */
static int64_t bucket_at(const seg_info *in, gran_t u, int64_t t)
{
    return u == GRAN_ALL ? in->part_start : gran_floor(u, t);
}

/* Buckets level_usable checks one by one, at most: a month partition has
 * 744 hours, but a header may describe any partition up to 2^41 s long
 * with minute buckets (segment.h: a reader accepts any sequence of
 * levels), and checking billions of them would hang the query. Beyond
 * the cap the level counts as unusable: a finer one, in the end level 0,
 * answers the same. */
#define PICK_MAX_BUCKETS 65536

static bool level_usable(const seg_info *in, size_t l,
                         int64_t (*qfloor)(int64_t ts, const void *ud), const void *ud,
                         int64_t from, int64_t to, bool edges_only)
{
    gran_t u = in->unit[l];
    int64_t ps = in->part_start, pe = in->part_end;
    if (edges_only) {
        /* answer buckets nest: only a bucket cut by from or to can fail */
        const int64_t at[2] = {from, to};
        for (int k = 0; k < 2; k++)
            if (at[k] > ps && at[k] < pe && !bucket_ok(in, u, bucket_at(in, u, at[k]), qfloor, ud, from, to))
                return false;
        return u != GRAN_ALL || bucket_ok(in, u, ps, qfloor, ud, from, to);
    }
    int64_t lo = from > ps ? from : ps, hi = to < pe ? to : pe;
    size_t checked = 0;
    for (int64_t b = lo < hi ? bucket_at(in, u, lo) : pe; b < hi;
         b = u == GRAN_ALL ? pe : gran_next(u, b))
        if (++checked > PICK_MAX_BUCKETS || !bucket_ok(in, u, b, qfloor, ud, from, to))
            return false;
    return true;
}

size_t seg_info_pick_level_fn(const seg_info *info,
                              int64_t (*qfloor)(int64_t ts, const void *ud), const void *ud,
                              int64_t from, int64_t to)
{
    if (from >= to)
        return info->nlevels - 1;   /* nothing counts: any level will do */
    for (size_t l = info->nlevels; l-- > 1;)
        if (level_usable(info, l, qfloor, ud, from, to, false))
            return l;
    return 0;
}

static int64_t floor_gran(int64_t ts, const void *ud)
{
    return gran_floor(*(const gran_t *)ud, ts);
}

size_t seg_info_pick_level(const seg_info *info, gran_t qgran, int64_t from, int64_t to)
{
    if (from >= to)
        return info->nlevels - 1;
    for (size_t l = info->nlevels; l-- > 1;) {
        gran_t u = info->unit[l];
        if (u != GRAN_ALL && qgran != GRAN_ALL && seg_unit_code(qgran) < seg_unit_code(u))
            continue;   /* answer buckets finer than the level's */
        if (level_usable(info, l, floor_gran, &qgran, from, to, true))
            return l;
    }
    return 0;
}

size_t seg_pick_level(const segment *s, gran_t qgran, int64_t from, int64_t to)
{
    return seg_info_pick_level(&s->info, qgran, from, to);
}
