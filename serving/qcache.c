/* qcache.c - the exact answer cache (see qcache.h). */
#include "serving/qcache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *key;
    size_t klen;
    char *body;
    size_t len;
    uint64_t version;
} slot;

struct qcache {
    pthread_mutex_t mu;
    slot *slots;
    size_t n, max_body;
    uint64_t hits, misses;
};

static uint64_t hash(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

qcache *qcache_new(size_t slots, size_t max_body)
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
    c->max_body = max_body;
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

void qcache_free(qcache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        free(c->slots[i].key);
        free(c->slots[i].body);
    }
    free(c->slots);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

bool qcache_get(qcache *c, const void *key, size_t klen, uint64_t version, char **body,
                size_t *len)
{
    slot *s = &c->slots[hash(key, klen) % c->n];
    bool hit = false;
    pthread_mutex_lock(&c->mu);
    if (s->key && s->version == version && s->klen == klen && memcmp(s->key, key, klen) == 0) {
        char *copy = malloc(s->len ? s->len : 1);
        if (copy) {
            memcpy(copy, s->body, s->len);
            *body = copy;
            *len = s->len;
            hit = true;
        }
    }
    if (hit)
        c->hits++;
    else
        c->misses++;
    pthread_mutex_unlock(&c->mu);
    return hit;
}

void qcache_put(qcache *c, const void *key, size_t klen, uint64_t version, const char *body,
                size_t len)
{
    if (len > c->max_body)
        return;
    /* Copies are made outside the lock. */
    char *k = malloc(klen ? klen : 1), *b = malloc(len ? len : 1);
    if (!k || !b) {
        free(k);
        free(b);
        return;
    }
    memcpy(k, key, klen);
    memcpy(b, body, len);
    slot *s = &c->slots[hash(key, klen) % c->n];
    pthread_mutex_lock(&c->mu);
    char *old_k = s->key, *old_b = s->body;
    *s = (slot){.key = k, .klen = klen, .body = b, .len = len, .version = version};
    pthread_mutex_unlock(&c->mu);
    free(old_k);
    free(old_b);
}

void qcache_get_stats(qcache *c, qcache_stats *st)
{
    pthread_mutex_lock(&c->mu);
    st->hits = c->hits;
    st->misses = c->misses;
    pthread_mutex_unlock(&c->mu);
}
