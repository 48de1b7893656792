/* vtable.c - view table: open addressing over rows kept in an arena.
 *
 * A row is one arena allocation: header, states, then the encoded key (for
 * each dimension a u32 length, UINT32_MAX for null, then the bytes). Slots
 * hold the row's hash and pointer, so probing compares hashes before keys.
 * Rows are never removed; the whole table is freed at once (the speed layer
 * drops a table when the batch layer has absorbed it). Not thread-safe while
 * written; once published a table is immutable and shared by reference
 * counting (atomic), see vtable.h.
 */
#include "core/vtable.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define NULL_LEN UINT32_MAX
#define MAX_DIMS 64
/* Arena blocks double from the first to the last size: a small table (one
 * commit's staged rows, a cached answer of a few rows) holds a few KiB,
 * a large one allocates in large steps. */
#define ARENA_FIRST (4 * 1024)
#define ARENA_BLOCK (256 * 1024)

typedef struct row {
    uint64_t hash;
    int64_t bucket;
    uint32_t keylen;
    uint32_t pad;
    uint64_t cells[];  /* layout->size bytes of states, then keylen key bytes */
} row;

typedef struct {
    uint64_t hash;
    row *r;
} slot;

typedef struct block {
    struct block *next;
    size_t used, size;
    char data[];
} block;

struct vtable {
    atomic_int refs;        /* owners; the last vtable_free frees */
    size_t ndims;
    agg_layout *layout;     /* owned copy */
    slot *slots;
    size_t cap, rows;       /* cap is a power of two */
    block *arena;
    size_t arena_bytes;
    char *scratch;          /* key being built by vtable_upsert */
    size_t scratch_cap;
    /* Heap bytes the states own (sketches), counted on demand:
     * HEAP_UNKNOWN after a write. Written tables have one owner and
     * published ones are immutable, so only concurrent readers of a
     * published table may both count, and they store the same number. */
    atomic_size_t heap;
};

#define HEAP_UNKNOWN SIZE_MAX

static inline char *row_key(const vtable *t, row *r)
{
    return (char *)r->cells + t->layout->size;
}

/* A fast 64-bit hash (multiply-xorshift over 8-byte words). */
static uint64_t hash_bytes(const void *p, size_t n, uint64_t seed)
{
    const unsigned char *s = p;
    uint64_t h = seed ^ (n * 0x9E3779B97F4A7C15ull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ (w * 0xBF58476D1CE4E5B9ull)) * 0x94D049BB133111EBull;
        h ^= h >> 29;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    h = (h ^ (w * 0xBF58476D1CE4E5B9ull)) * 0x94D049BB133111EBull;
    h ^= h >> 31;
    h *= 0xD6E8FEB86659FD93ull;
    h ^= h >> 32;
    return h;
}

vtable *vtable_new(size_t ndims, const agg_layout *layout)
{
    if (ndims > MAX_DIMS)
        return NULL;
    vtable *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    atomic_init(&t->refs, 1);
    atomic_init(&t->heap, 0);
    t->ndims = ndims;
    t->layout = agg_layout_dup(layout);
    t->cap = 64;
    t->slots = calloc(t->cap, sizeof(slot));
    t->scratch_cap = 256;
    t->scratch = malloc(t->scratch_cap);
    if (!t->layout || !t->slots || !t->scratch) {
        vtable_free(t);
        return NULL;
    }
    return t;
}

vtable *vtable_ref(vtable *t)
{
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
    return t;
}

void vtable_free(vtable *t)
{
    if (!t || atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (t->layout && t->layout->destroy)
        for (size_t i = 0; i < t->cap; i++)
            if (t->slots[i].r)
                agg_row_destroy(t->layout, t->slots[i].r->cells);
    for (block *b = t->arena, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    free(t->slots);
    free(t->scratch);
    free(t->layout);
    free(t);
}

size_t vtable_ndims(const vtable *t) { return t->ndims; }
const agg_layout *vtable_layout(const vtable *t) { return t->layout; }
size_t vtable_rows(const vtable *t) { return t->rows; }

/* The states' heap bytes: a pass over the rows once per write, so a
 * table of sketches is sized in bytes like any other. */
static size_t heap_bytes(const vtable *t)
{
    if (!t->layout->destroy)
        return 0;
    vtable *w = (vtable *)t;   /* the count is a cache, not the table's contents */
    size_t n = atomic_load_explicit(&w->heap, memory_order_relaxed);
    if (n != HEAP_UNKNOWN)
        return n;
    n = 0;
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i].r)
            n += agg_row_heap_bytes(t->layout, t->slots[i].r->cells);
    atomic_store_explicit(&w->heap, n, memory_order_relaxed);
    return n;
}

size_t vtable_bytes(const vtable *t)
{
    return sizeof(*t) + t->cap * sizeof(slot) + t->arena_bytes + t->scratch_cap +
           heap_bytes(t);
}

static void *arena_alloc(vtable *t, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    block *b = t->arena;
    if (!b || b->size - b->used < n) {
        size_t size = b ? b->size * 2 : ARENA_FIRST;
        if (size > ARENA_BLOCK)
            size = ARENA_BLOCK;
        if (size < n)
            size = n;
        b = malloc(sizeof(block) + size);
        if (!b)
            return NULL;
        b->next = t->arena;
        b->used = 0;
        b->size = size;
        t->arena = b;
        t->arena_bytes += sizeof(block) + size;
    }
    void *p = b->data + b->used;
    b->used += n;
    return p;
}

static int grow(vtable *t)
{
    size_t ncap = t->cap * 2;
    slot *ns = calloc(ncap, sizeof(slot));
    if (!ns)
        return -ENOMEM;
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->slots[i].r)
            continue;
        size_t j = t->slots[i].hash & (ncap - 1);
        while (ns[j].r)
            j = (j + 1) & (ncap - 1);
        ns[j] = t->slots[i];
    }
    free(t->slots);
    t->slots = ns;
    t->cap = ncap;
    return 0;
}

/* The row for an encoded key, created when missing. */
static row *upsert_raw(vtable *t, uint64_t hash, int64_t bucket, const char *key, uint32_t keylen)
{
    size_t mask = t->cap - 1;
    for (size_t j = hash & mask;; j = (j + 1) & mask) {
        slot *s = &t->slots[j];
        if (!s->r)
            break;
        if (s->hash == hash && s->r->bucket == bucket && s->r->keylen == keylen &&
            memcmp(row_key(t, s->r), key, keylen) == 0)
            return s->r;
    }
    if ((t->rows + 1) * 10 > t->cap * 7 && grow(t) < 0)
        return NULL;
    row *r = arena_alloc(t, sizeof(row) + t->layout->size + keylen);
    if (!r)
        return NULL;
    r->hash = hash;
    r->bucket = bucket;
    r->keylen = keylen;
    r->pad = 0;
    agg_row_init(t->layout, r->cells);
    memcpy(row_key(t, r), key, keylen);
    mask = t->cap - 1;
    size_t j = hash & mask;
    while (t->slots[j].r)
        j = (j + 1) & mask;
    t->slots[j].hash = hash;
    t->slots[j].r = r;
    t->rows++;
    return r;
}

void *vtable_upsert(vtable *t, int64_t bucket, const dimval *dims)
{
    size_t need = 0;
    for (size_t i = 0; i < t->ndims; i++)
        need += 4 + (dims[i].null ? 0 : dims[i].len);
    if (need > UINT32_MAX)
        return NULL;
    if (need > t->scratch_cap) {
        size_t ncap = need < 256 ? 256 : need * 2;
        char *ns = realloc(t->scratch, ncap);
        if (!ns)
            return NULL;
        t->scratch = ns;
        t->scratch_cap = ncap;
    }
    char *p = t->scratch;
    for (size_t i = 0; i < t->ndims; i++) {
        uint32_t len = dims[i].null ? NULL_LEN : dims[i].len;
        memcpy(p, &len, 4);
        p += 4;
        if (!dims[i].null) {
            memcpy(p, dims[i].s, dims[i].len);
            p += dims[i].len;
        }
    }
    if (t->layout->destroy)   /* the caller is about to change the row's states */
        atomic_store_explicit(&t->heap, HEAP_UNKNOWN, memory_order_relaxed);
    uint64_t hash = hash_bytes(t->scratch, need, (uint64_t)bucket);
    row *r = upsert_raw(t, hash, bucket, t->scratch, (uint32_t)need);
    return r ? r->cells : NULL;
}

int vtable_merge(vtable *dst, const vtable *src)
{
    if (dst->ndims != src->ndims || !agg_layout_equal(dst->layout, src->layout))
        return -EINVAL;
    if (dst->layout->destroy)
        atomic_store_explicit(&dst->heap, HEAP_UNKNOWN, memory_order_relaxed);
    for (size_t i = 0; i < src->cap; i++) {
        row *s = src->slots[i].r;
        if (!s)
            continue;
        row *d = upsert_raw(dst, s->hash, s->bucket, row_key(src, s), s->keylen);
        if (!d)
            return -ENOMEM;
        if (agg_row_merge(dst->layout, d->cells, s->cells) < 0)
            return -ENOMEM;
    }
    return 0;
}

int vtable_foreach(const vtable *t, int (*fn)(const vrow *row, void *ud), void *ud)
{
    dimval dims[MAX_DIMS];
    for (size_t i = 0; i < t->cap; i++) {
        row *r = t->slots[i].r;
        if (!r)
            continue;
        const char *p = row_key(t, r);
        for (size_t d = 0; d < t->ndims; d++) {
            uint32_t len;
            memcpy(&len, p, 4);
            p += 4;
            if (len == NULL_LEN) {
                dims[d] = (dimval){.s = NULL, .len = 0, .null = true};
            } else {
                dims[d] = (dimval){.s = p, .len = len, .null = false};
                p += len;
            }
        }
        vrow vr = {.bucket = r->bucket, .dims = dims, .cells = r->cells};
        int rc = fn(&vr, ud);
        if (rc)
            return rc;
    }
    return 0;
}

vtable **vtables_new_per_view(const view_def *views, size_t nviews)
{
    vtable **t = calloc(nviews ? nviews : 1, sizeof(*t));
    for (size_t v = 0; t && v < nviews; v++)
        if (!(t[v] = vtable_new(views[v].ndims, views[v].layout))) {
            vtables_free(t, nviews);
            return NULL;
        }
    return t;
}

void vtables_free(vtable **t, size_t nviews)
{
    if (!t)
        return;
    for (size_t v = 0; v < nviews; v++)
        vtable_free(t[v]);
    free(t);
}
