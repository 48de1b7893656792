/* qcache.c - the exact answer cache (see qcache.h). */
#include "serving/qcache.h"

#include <pthread.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *key;
    size_t klen;
    qcache_entry e;
    bool busy;        /* checked out: another request is moving it forward */
} slot;

/* How long a request waits for an entry another request has checked out
 * (moving an answer forward takes well under a millisecond; computing it
 * afresh can take a few hundred on a large view, and duplicating that
 * work is what made the slowest answers slow). */
#define TAKE_WAIT_MS 250

struct qcache {
    pthread_mutex_t mu;
    pthread_cond_t returned;
    slot *slots;
    size_t n, max_rows;
    uint64_t counts[3];
};

static uint64_t hash(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

qcache *qcache_new(size_t slots, size_t max_rows)
{
    qcache *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->slots = calloc(slots ? slots : 1, sizeof(slot));
    if (!c->slots) {
        free(c);
        return NULL;
    }
    c->n = slots ? slots : 1;
    c->max_rows = max_rows;
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->returned, &ca);
    pthread_condattr_destroy(&ca);
    return c;
}

void qcache_entry_clear(qcache_entry *e)
{
    vtable_free(e->table);
    free(e->body);
    memset(e, 0, sizeof(*e));
}

void qcache_free(qcache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        free(c->slots[i].key);
        qcache_entry_clear(&c->slots[i].e);
    }
    free(c->slots);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->returned);
    free(c);
}

size_t qcache_max_rows(const qcache *c)
{
    return c->max_rows;
}

static bool same_key(const slot *s, const void *key, size_t klen)
{
    return s->key && s->klen == klen && memcmp(s->key, key, klen) == 0;
}

bool qcache_take(qcache *c, const void *key, size_t klen, qcache_entry *out)
{
    slot *s = &c->slots[hash(key, klen) % c->n];
    bool found = false;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += TAKE_WAIT_MS * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&c->mu);
    /* The same question being moved forward by another request: wait for
     * it rather than compute it afresh. */
    while (same_key(s, key, klen) && s->busy &&
           pthread_cond_timedwait(&c->returned, &c->mu, &until) == 0)
        ;
    if (same_key(s, key, klen) && !s->busy && s->e.table) {
        *out = s->e;
        memset(&s->e, 0, sizeof(s->e));   /* checked out: the slot keeps the key */
        s->busy = true;
        found = true;
    }
    pthread_mutex_unlock(&c->mu);
    return found;
}

void qcache_release(qcache *c, const void *key, size_t klen)
{
    slot *s = &c->slots[hash(key, klen) % c->n];
    pthread_mutex_lock(&c->mu);
    if (same_key(s, key, klen) && s->busy) {
        s->busy = false;
        pthread_cond_broadcast(&c->returned);
    }
    pthread_mutex_unlock(&c->mu);
}

void qcache_put(qcache *c, const void *key, size_t klen, qcache_entry *e)
{
    char *k = malloc(klen ? klen : 1);
    if (!k || !e->table || vtable_rows(e->table) > c->max_rows) {
        free(k);
        qcache_entry_clear(e);
        qcache_release(c, key, klen);
        return;
    }
    memcpy(k, key, klen);
    slot *s = &c->slots[hash(key, klen) % c->n];
    qcache_entry drop = {0};
    char *drop_key = NULL;
    pthread_mutex_lock(&c->mu);
    bool same = same_key(s, key, klen);
    if (same && s->e.table &&
        (s->e.epoch > e->epoch || (s->e.epoch == e->epoch && s->e.version >= e->version))) {
        drop = *e;      /* another request stored a newer answer meanwhile */
        drop_key = k;
    } else {
        drop = s->e;
        drop_key = s->key;
        s->key = k;
        s->klen = klen;
        s->e = *e;
    }
    s->busy = false;   /* whoever had this question checked out has put it back */
    pthread_cond_broadcast(&c->returned);
    pthread_mutex_unlock(&c->mu);
    memset(e, 0, sizeof(*e));
    qcache_entry_clear(&drop);   /* freed outside the lock */
    free(drop_key);
}

void qcache_count(qcache *c, int kind)
{
    pthread_mutex_lock(&c->mu);
    c->counts[kind]++;
    pthread_mutex_unlock(&c->mu);
}

void qcache_get_stats(qcache *c, qcache_stats *st)
{
    pthread_mutex_lock(&c->mu);
    st->hits = c->counts[0];
    st->advances = c->counts[1];
    st->misses = c->counts[2];
    pthread_mutex_unlock(&c->mu);
}
