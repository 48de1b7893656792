/* qcache.c - the exact answer cache (see qcache.h): a hash map of
 * questions with a byte budget and an LRU list.
 *
 * A node is one question's key in one of two states:
 *  - stored: holder == 0, its entry present, on the LRU list, its bytes
 *    counted in c->bytes;
 *  - checked out: holder != 0 (the ticket of the request working on it),
 *    no entry (the holder has it), not on the LRU list, so eviction never
 *    takes it from under its holder.
 * A node in neither state (given back without an answer) is removed at
 * once. Any thread: c->mu guards every field; it is held only to move
 * pointers, and memory is allocated or freed outside it where possible
 * (evicted and replaced entries are freed after unlocking).
 */
#include "serving/qcache.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/checksum.h"
#include "core/metrics.h"

METRIC_COUNTER(m_evictions, "lambdad_query_cache_evictions_total",
               "Cached answers dropped to keep serving.answer_cache_mb.");

/* How long a request waits for a question another request has checked
 * out (moving an answer forward takes well under a millisecond; computing
 * it afresh can take a few hundred on a large view, and duplicating that
 * work is what made the slowest answers slow). */
#define TAKE_WAIT_MS 250
#define MIN_BUCKETS 64

typedef struct node {
    struct node *hnext;          /* hash chain */
    struct node *prev, *next;    /* LRU list, most recent first (stored only) */
    uint64_t hash;
    uint64_t holder;             /* ticket of the request holding it; 0: stored */
    qcache_entry e;              /* the stored answer (empty while checked out) */
    size_t bytes;                /* counted against the budget (0 while checked out) */
    size_t klen;
    char key[];
} node;

struct qcache {
    pthread_mutex_t mu;
    pthread_cond_t returned;     /* a checked-out key was given back */
    pthread_cond_t waiting;      /* the number of waiters changed (tests) */
    node **buckets;
    size_t nbuckets;             /* a power of two */
    size_t nnodes;
    size_t budget, max_rows, bytes, entries, checked_out, waiters;
    int wait_ms;
    uint64_t next_ticket;
    uint64_t counts[3], evictions;
    uint64_t seed;               /* of the key hash */
    /* sentinel: lru.next most recent, lru.prev least; last, as a node
     * ends in its flexible key[] */
    node lru;
};

/* Keys are the clients' query strings: hashed with a seed chosen at
 * random per cache, so no one can craft keys that share a chain. */
static uint64_t hash_key(const qcache *c, const void *p, size_t n)
{
    return checksum64(p, n, c->seed);
}

qcache *qcache_new(size_t budget_bytes, size_t max_rows)
{
    qcache *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->buckets = calloc(MIN_BUCKETS, sizeof(*c->buckets));
    if (!c->buckets) {
        free(c);
        return NULL;
    }
    c->nbuckets = MIN_BUCKETS;
    if (getrandom(&c->seed, sizeof(c->seed), 0) != (ssize_t)sizeof(c->seed))
        c->seed = (uint64_t)(uintptr_t)c ^ (uint64_t)time(NULL);   /* no entropy: still varies */
    c->lru.next = c->lru.prev = &c->lru;
    c->budget = budget_bytes;
    c->max_rows = max_rows;
    c->wait_ms = TAKE_WAIT_MS;
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->returned, &ca);
    pthread_cond_init(&c->waiting, &ca);
    pthread_condattr_destroy(&ca);
    return c;
}

void qcache_entry_clear(qcache_entry *e)
{
    vtable_free(e->table);
    free(e->body);
    memset(e, 0, sizeof(*e));
}

size_t qcache_entry_bytes(size_t klen, const qcache_entry *e)
{
    return klen + e->len + (e->table ? vtable_bytes(e->table) : 0);
}

static void node_free(node *n)
{
    if (n)
        qcache_entry_clear(&n->e);
    free(n);
}

void qcache_free(qcache *c)
{
    if (!c)
        return;
    for (size_t b = 0; b < c->nbuckets; b++)
        for (node *n = c->buckets[b], *next; n; n = next) {
            next = n->hnext;
            node_free(n);
        }
    free(c->buckets);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->returned);
    pthread_cond_destroy(&c->waiting);
    free(c);
}

size_t qcache_max_rows(const qcache *c)
{
    return c->max_rows;
}

/* ---- the map and the list; all under c->mu ---- */

static node *find(const qcache *c, uint64_t h, const void *key, size_t klen)
{
    for (node *n = c->buckets[h & (c->nbuckets - 1)]; n; n = n->hnext)
        if (n->hash == h && n->klen == klen && memcmp(n->key, key, klen) == 0)
            return n;
    return NULL;
}

/* Doubles the buckets when the map is full; a failed allocation keeps the
 * old ones (longer chains, nothing lost). */
static void maybe_grow(qcache *c)
{
    if (c->nnodes < c->nbuckets)
        return;
    size_t nb = c->nbuckets * 2;
    node **b = calloc(nb, sizeof(*b));
    if (!b)
        return;
    for (size_t i = 0; i < c->nbuckets; i++)
        for (node *n = c->buckets[i], *next; n; n = next) {
            next = n->hnext;
            n->hnext = b[n->hash & (nb - 1)];
            b[n->hash & (nb - 1)] = n;
        }
    free(c->buckets);
    c->buckets = b;
    c->nbuckets = nb;
}

/* A new node for key (checked-out or stored by the caller), in the map. */
static node *insert(qcache *c, uint64_t h, const void *key, size_t klen)
{
    node *n = calloc(1, sizeof(*n) + (klen ? klen : 1));
    if (!n)
        return NULL;
    n->hash = h;
    n->klen = klen;
    memcpy(n->key, key, klen);
    maybe_grow(c);
    node **head = &c->buckets[h & (c->nbuckets - 1)];
    n->hnext = *head;
    *head = n;
    c->nnodes++;
    return n;
}

static void unmap(qcache *c, node *n)
{
    node **p = &c->buckets[n->hash & (c->nbuckets - 1)];
    while (*p != n)
        p = &(*p)->hnext;
    *p = n->hnext;
    c->nnodes--;
}

static void lru_unlink(node *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = NULL;
}

static void lru_push(qcache *c, node *n)
{
    n->next = c->lru.next;
    n->prev = &c->lru;
    c->lru.next->prev = n;
    c->lru.next = n;
}

/* Makes n a stored entry holding e (most recently used). */
static void store(qcache *c, node *n, qcache_entry *e, size_t bytes)
{
    n->e = *e;
    n->e.ticket = 0;
    n->bytes = bytes;
    c->bytes += bytes;
    c->entries++;
    lru_push(c, n);
}

/* Takes a stored entry's answer out of the accounting and the list. */
static void unstore(qcache *c, node *n)
{
    lru_unlink(n);
    c->bytes -= n->bytes;
    c->entries--;
    n->bytes = 0;
}

/* Evicts least recently used entries until the budget holds; they are
 * chained on *out (through hnext) for the caller to free unlocked. */
static void evict(qcache *c, node **out)
{
    while (c->bytes > c->budget && c->lru.prev != &c->lru) {
        node *n = c->lru.prev;
        unstore(c, n);
        unmap(c, n);
        n->hnext = *out;
        *out = n;
        c->evictions++;
    }
}

static struct timespec deadline_in(int ms)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

/* ---- checkout ---- */

bool qcache_take(qcache *c, const void *key, size_t klen, qcache_entry *out)
{
    memset(out, 0, sizeof(*out));
    if (!c->budget)
        return false;
    uint64_t h = hash_key(c, key, klen);
    pthread_mutex_lock(&c->mu);
    struct timespec until = deadline_in(c->wait_ms);
    node *n;
    /* The same question being computed or moved forward by another
     * request: wait for it rather than compute it a second time. */
    while ((n = find(c, h, key, klen)) && n->holder) {
        c->waiters++;
        pthread_cond_broadcast(&c->waiting);
        int rc = pthread_cond_timedwait(&c->returned, &c->mu, &until);
        c->waiters--;
        if (rc == ETIMEDOUT && (n = find(c, h, key, klen)) && n->holder) {
            pthread_mutex_unlock(&c->mu);
            return false;   /* still out: compute it without the cache */
        }
    }
    bool found = false;
    if (n) {
        unstore(c, n);
        *out = n->e;            /* checked out: the node keeps the key */
        memset(&n->e, 0, sizeof(n->e));
        found = true;
    } else if (!(n = insert(c, h, key, klen))) {
        pthread_mutex_unlock(&c->mu);
        return false;           /* out of memory: compute it without the cache */
    }
    n->holder = out->ticket = ++c->next_ticket;
    c->checked_out++;
    pthread_mutex_unlock(&c->mu);
    return found;
}

/* The node e has checked out, or NULL. Under c->mu. */
static node *held_by(qcache *c, uint64_t h, const void *key, size_t klen, const qcache_entry *e)
{
    node *n = e->ticket ? find(c, h, key, klen) : NULL;
    return n && n->holder == e->ticket ? n : NULL;
}

/* Ends n's checkout (under c->mu); waiters look again. */
static void give_back(qcache *c, node *n)
{
    n->holder = 0;
    c->checked_out--;
    pthread_cond_broadcast(&c->returned);
}

void qcache_release(qcache *c, const void *key, size_t klen, qcache_entry *e)
{
    node *drop = NULL;
    if (e->ticket) {
        uint64_t h = hash_key(c, key, klen);
        pthread_mutex_lock(&c->mu);
        node *n = held_by(c, h, key, klen, e);
        if (n) {
            give_back(c, n);
            unmap(c, n);   /* no answer: waiters find nothing and compute it */
            drop = n;
        }
        pthread_mutex_unlock(&c->mu);
    }
    node_free(drop);
    qcache_entry_clear(e);
}

/* true when a is at least as new as b */
static bool newer_or_same(const qcache_entry *a, const qcache_entry *b)
{
    return a->epoch > b->epoch || (a->epoch == b->epoch && a->version >= b->version);
}

void qcache_put(qcache *c, const void *key, size_t klen, qcache_entry *e)
{
    size_t bytes = qcache_entry_bytes(klen, e);
    bool fits = c->budget && e->table && vtable_rows(e->table) <= c->max_rows &&
                bytes <= c->budget / 4;
    uint64_t h = hash_key(c, key, klen);
    qcache_entry drop = *e;      /* what is freed after unlocking */
    node *gone = NULL;           /* nodes removed: evicted, or given back empty */
    memset(e, 0, sizeof(*e));
    if (!c->budget && !drop.ticket) {
        qcache_entry_clear(&drop);
        return;
    }
    pthread_mutex_lock(&c->mu);
    node *n = held_by(c, h, key, klen, &drop);
    if (n) {
        /* our own checkout comes back */
        give_back(c, n);
        if (fits) {
            store(c, n, &drop, bytes);
            memset(&drop, 0, sizeof(drop));
        } else {
            unmap(c, n);
            gone = n;
        }
    } else if ((n = find(c, h, key, klen))) {
        /* Checked out by another request: its answer comes back soon.
         * Stored: the newer answer stays (an older one, or one too large,
         * leaves the stored one in place). */
        if (!n->holder && fits && !newer_or_same(&n->e, &drop)) {
            unstore(c, n);
            qcache_entry old = n->e;
            store(c, n, &drop, bytes);
            drop = old;
        }
    } else if (fits && (n = insert(c, h, key, klen))) {
        store(c, n, &drop, bytes);
        memset(&drop, 0, sizeof(drop));
    }
    uint64_t before = c->evictions;
    node *evicted = NULL;
    evict(c, &evicted);
    uint64_t nevicted = c->evictions - before;
    pthread_mutex_unlock(&c->mu);

    drop.ticket = 0;
    qcache_entry_clear(&drop);
    node_free(gone);
    for (node *next; evicted; evicted = next) {
        next = evicted->hnext;
        node_free(evicted);
    }
    if (nevicted)
        metrics_counter_add(&m_evictions, NULL, nevicted);
}

/* ---- figures ---- */

void qcache_count(qcache *c, int kind)
{
    pthread_mutex_lock(&c->mu);
    c->counts[kind]++;
    pthread_mutex_unlock(&c->mu);
}

void qcache_get_stats(qcache *c, qcache_stats *st)
{
    pthread_mutex_lock(&c->mu);
    *st = (qcache_stats){.hits = c->counts[0], .advances = c->counts[1],
                         .misses = c->counts[2], .evictions = c->evictions,
                         .entries = c->entries, .bytes = c->bytes,
                         .checked_out = c->checked_out, .budget = c->budget};
    pthread_mutex_unlock(&c->mu);
}

void qcache_set_wait_ms(qcache *c, int ms)
{
    pthread_mutex_lock(&c->mu);
    c->wait_ms = ms;
    pthread_mutex_unlock(&c->mu);
}

void qcache_wait_for_waiters(qcache *c, size_t n)
{
    pthread_mutex_lock(&c->mu);
    while (c->waiters < n)
        pthread_cond_wait(&c->waiting, &c->mu);
    pthread_mutex_unlock(&c->mu);
}
