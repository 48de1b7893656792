/* segcache.c - the segment cache (see segcache.h).
 *
 * Entries live in a chained hash table by id and in an LRU list (most
 * recent first). An entry's refs count the cache's own reference (while it
 * is in the table) and each query's pin; the last reference frees the
 * segment. `mu` guards the table, the list, the counters and every refs;
 * `db_mu` guards the read connection (one at a time reads a blob; decoding
 * happens outside both). Two queries missing the same segment at once both
 * decode it; the second to finish finds the first's entry and uses it.
 *
 * A query at a coarse granularity needs only a segment's coarse levels,
 * which the format stores first (core/segment.h): the cache reads the
 * header, lets the level chooser say which levels the query reads, and
 * reads just that prefix of the blob (SQLite incremental blob I/O). An
 * entry decoded from level L serves every query that reads level L or a
 * coarser one; a finer query decodes the segment again from its level and
 * the new entry replaces the old.
 */
#include "serving/segcache.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/strutil.h"

struct segcache_ref {
    int64_t id;
    segment *seg;
    size_t bytes;
    int refs;                       /* under mu */
    bool cached;                    /* in the table and the list */
    struct segcache_ref *next_in_bucket, *newer, *older;
};

struct segcache {
    pthread_mutex_t mu, db_mu;
    sqlite3 *db;                    /* under db_mu */
    segcache_ref **buckets;
    size_t nbuckets, entries, bytes, budget;
    segcache_ref *newest, *oldest;
    segcache_stats st;
};

int segcache_new(const char *views_path, size_t budget_bytes, segcache **out, char **errmsg)
{
    segcache *c = calloc(1, sizeof(*c));
    if (!c) {
        *errmsg = strdup("out of memory");
        return -ENOMEM;
    }
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->db_mu, NULL);
    c->budget = budget_bytes;
    c->nbuckets = 256;
    c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
    int r = c->buckets ? 0 : -ENOMEM;
    if (r == 0 && sqlite3_open_v2(views_path, &c->db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        *errmsg = str_printf("cannot open views file %s for reading segments: %s", views_path,
                             c->db ? sqlite3_errmsg(c->db) : "out of memory");
        r = -EIO;
    } else if (r < 0) {
        *errmsg = strdup("out of memory");
    }
    if (r < 0) {
        segcache_free(c);
        return r;
    }
    sqlite3_busy_timeout(c->db, 5000);
    *out = c;
    return 0;
}

static void ref_free(segcache_ref *e)
{
    seg_free(e->seg);
    free(e);
}

void segcache_free(segcache *c)
{
    if (!c)
        return;
    for (segcache_ref *e = c->newest, *older; e; e = older) {
        older = e->older;
        ref_free(e);
    }
    free(c->buckets);
    sqlite3_close(c->db);
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->db_mu);
    free(c);
}

static size_t bucket_of(const segcache *c, int64_t id)
{
    uint64_t h = (uint64_t)id * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 32) & (c->nbuckets - 1);
}

/* ---- under mu ---- */

static segcache_ref *lookup(segcache *c, int64_t id)
{
    for (segcache_ref *e = c->buckets[bucket_of(c, id)]; e; e = e->next_in_bucket)
        if (e->id == id)
            return e;
    return NULL;
}

static void lru_unlink(segcache *c, segcache_ref *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        c->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        c->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void lru_push(segcache *c, segcache_ref *e)
{
    e->older = c->newest;
    e->newer = NULL;
    if (c->newest)
        c->newest->newer = e;
    c->newest = e;
    if (!c->oldest)
        c->oldest = e;
}

/* Takes e out of the table and the list; returns true when nothing else
 * holds it (the caller frees it outside the lock). */
static bool evict(segcache *c, segcache_ref *e)
{
    segcache_ref **p = &c->buckets[bucket_of(c, e->id)];
    while (*p != e)
        p = &(*p)->next_in_bucket;
    *p = e->next_in_bucket;
    lru_unlink(c, e);
    e->cached = false;
    c->entries--;
    c->bytes -= e->bytes;
    return --e->refs == 0;   /* still pinned: its last put frees it */
}

/* Evicts the oldest unpinned entries while over budget; the freed ones are
 * chained on *dead (through next_in_bucket) for the caller to free. */
static void trim(segcache *c, segcache_ref **dead)
{
    segcache_ref *e = c->oldest;
    while (e && c->bytes > c->budget) {
        segcache_ref *newer = e->newer;
        if (e->refs == 1) {   /* only the cache holds it */
            c->st.evictions++;
            if (evict(c, e)) {
                e->next_in_bucket = *dead;
                *dead = e;
            }
        }
        e = newer;
    }
}

static void free_chain(segcache_ref *dead)
{
    for (segcache_ref *e = dead, *next; e; e = next) {
        next = e->next_in_bucket;
        ref_free(e);
    }
}

/* ---- reading a segment ---- */

/* Reads the part of segment id that levels min_level.. need (the header
 * first, then exactly the prefix it names) into a malloc'd buffer, with
 * SQLite's incremental blob I/O so the rest is never read. */
static int read_prefix(segcache *c, int64_t id, gran_t gran, int64_t from, int64_t to,
                       void **out, size_t *len, size_t *level)
{
    pthread_mutex_lock(&c->db_mu);
    sqlite3_blob *blob = NULL;
    int rc = sqlite3_blob_open(c->db, "main", "segdata", "data", id, 0, &blob);
    int r = 0;
    unsigned char head[SEG_HEADER_MAX];
    size_t total = 0, hlen = 0;
    seg_info info;
    if (rc != SQLITE_OK) {
        r = rc == SQLITE_ERROR ? -ENOENT : -EIO;   /* no such row */
        goto out;
    }
    total = (size_t)sqlite3_blob_bytes(blob);
    hlen = total < sizeof(head) ? total : sizeof(head);
    if (sqlite3_blob_read(blob, head, (int)hlen, 0) != SQLITE_OK) {
        r = -EIO;
        goto out;
    }
    r = seg_read_info(head, hlen, &info);
    if (r == -ENOBUFS)
        r = -EPROTONOSUPPORT;   /* a longer header: a later version */
    if (r < 0)
        goto out;
    *level = seg_info_pick_level(&info, gran, from, to);
    size_t need = info.need[*level];
    if (need > total) {
        r = -EBADMSG;
        goto out;
    }
    *out = malloc(need ? need : 1);
    if (!*out) {
        r = -ENOMEM;
        goto out;
    }
    if (sqlite3_blob_read(blob, *out, (int)need, 0) != SQLITE_OK) {
        free(*out);
        *out = NULL;
        r = -EIO;
        goto out;
    }
    *len = need;
out:
    sqlite3_blob_close(blob);
    pthread_mutex_unlock(&c->db_mu);
    return r;
}

int segcache_get(segcache *c, int64_t id, const view_def *v, gran_t gran, int64_t from,
                 int64_t to, segcache_ref **out)
{
    pthread_mutex_lock(&c->mu);
    segcache_ref *e = lookup(c, id);
    if (e && seg_pick_level(e->seg, gran, from, to) >= seg_min_level(e->seg)) {
        e->refs++;
        lru_unlink(c, e);
        lru_push(c, e);
        c->st.hits++;
        pthread_mutex_unlock(&c->mu);
        *out = e;
        return 0;
    }
    c->st.misses++;
    pthread_mutex_unlock(&c->mu);

    void *blob = NULL;
    size_t len = 0, level = 0;
    int r = read_prefix(c, id, gran, from, to, &blob, &len, &level);
    segment *seg = NULL;
    if (r == 0)
        r = seg_decode_from(blob, len, level, v->layout, v->ndims, &seg);
    free(blob);
    if (r < 0) {
        if (r != -ENOMEM && r != -EIO && r != -ENOENT) {
            pthread_mutex_lock(&c->mu);
            c->st.damaged++;
            pthread_mutex_unlock(&c->mu);
        }
        return r;
    }
    e = calloc(1, sizeof(*e));
    if (!e) {
        seg_free(seg);
        return -ENOMEM;
    }
    *e = (segcache_ref){.id = id, .seg = seg, .bytes = seg_bytes(seg) + sizeof(*e), .refs = 2,
                        .cached = true};
    segcache_ref *dead = NULL;
    pthread_mutex_lock(&c->mu);
    c->st.read_bytes += len;
    segcache_ref *other = lookup(c, id);
    if (other && seg_min_level(other->seg) <= level) {
        /* Decoded (as finely) by another query meanwhile: use that one. */
        other->refs++;
        pthread_mutex_unlock(&c->mu);
        ref_free(e);
        *out = other;
        return 0;
    }
    if (other && evict(c, other)) {   /* a coarser decoding: this one replaces it */
        other->next_in_bucket = dead;
        dead = other;
    }
    size_t b = bucket_of(c, id);
    e->next_in_bucket = c->buckets[b];
    c->buckets[b] = e;
    lru_push(c, e);
    c->entries++;
    c->bytes += e->bytes;
    trim(c, &dead);
    pthread_mutex_unlock(&c->mu);
    free_chain(dead);
    *out = e;
    return 0;
}

const segment *segcache_segment(const segcache_ref *r)
{
    return r->seg;
}

void segcache_put(segcache *c, segcache_ref *r)
{
    if (!r)
        return;
    segcache_ref *dead = NULL;
    pthread_mutex_lock(&c->mu);
    bool last = --r->refs == 0;   /* evicted while pinned, now unpinned */
    if (!last && r->cached)
        trim(c, &dead);           /* a pinned entry may have kept the cache over budget */
    pthread_mutex_unlock(&c->mu);
    if (last)
        ref_free(r);
    free_chain(dead);
}

void segcache_get_stats(segcache *c, segcache_stats *st)
{
    pthread_mutex_lock(&c->mu);
    *st = c->st;
    st->entries = c->entries;
    st->bytes = c->bytes;
    st->budget = c->budget;
    pthread_mutex_unlock(&c->mu);
}

void segcache_forget(segcache *c, const int64_t *ids, size_t n)
{
    segcache_ref *dead = NULL;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < n; i++) {
        segcache_ref *e = lookup(c, ids[i]);
        if (e && evict(c, e)) {
            e->next_in_bucket = dead;
            dead = e;
        }
    }
    pthread_mutex_unlock(&c->mu);
    free_chain(dead);
}
