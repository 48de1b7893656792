/* conns.c - open connections per client address.
 *
 * A chained hash table of addresses (IPv4 as v4-mapped IPv6, so one key
 * type) with their count; an entry lives while its address has an open
 * connection. Each connection holds a slot pointing at its entry. One
 * mutex guards the table and the total: connections come and go far less
 * often than requests, and the critical section is a short chain walk.
 */
#include "serving/conns.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NBUCKETS 1024

typedef struct entry {
    struct entry *next;
    unsigned char addr[16];
    size_t count;
} entry;

struct conn_slot {
    entry *e;
    conn_verdict verdict;
};

struct conns {
    pthread_mutex_t lock;
    size_t max_total, max_per_ip;
    size_t total;
    entry *buckets[NBUCKETS];
};

int conns_new(size_t max_total, size_t max_per_ip, conns **out)
{
    conns *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    pthread_mutex_init(&c->lock, NULL);
    c->max_total = max_total;
    c->max_per_ip = max_per_ip;
    *out = c;
    return 0;
}

void conns_free(conns *c)
{
    if (!c)
        return;
    for (size_t b = 0; b < NBUCKETS; b++)
        for (entry *e = c->buckets[b], *n; e; e = n) {
            n = e->next;
            free(e);
        }
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static void addr_key(const struct sockaddr *sa, unsigned char key[16])
{
    memset(key, 0, 16);
    if (sa && sa->sa_family == AF_INET) {
        key[10] = key[11] = 0xff;   /* ::ffff:a.b.c.d */
        memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else if (sa && sa->sa_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    }
}

static size_t bucket_of(const unsigned char key[16])
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (int i = 0; i < 16; i++)
        h = (h ^ key[i]) * UINT64_C(0x100000001b3);
    return (size_t)(h % NBUCKETS);
}

conn_verdict conns_open(conns *c, const struct sockaddr *addr, conn_slot **slot)
{
    unsigned char key[16];
    addr_key(addr, key);
    size_t b = bucket_of(key);
    *slot = malloc(sizeof(**slot));
    if (!*slot)
        return CONN_OK;
    conn_verdict v = CONN_OK;
    pthread_mutex_lock(&c->lock);
    entry *e = c->buckets[b];
    while (e && memcmp(e->addr, key, 16) != 0)
        e = e->next;
    if (!e && (e = calloc(1, sizeof(*e)))) {
        memcpy(e->addr, key, 16);
        e->next = c->buckets[b];
        c->buckets[b] = e;
    }
    if (!e) {
        pthread_mutex_unlock(&c->lock);
        free(*slot);
        *slot = NULL;
        return CONN_OK;
    }
    e->count++;
    c->total++;
    if (c->total > c->max_total)
        v = CONN_OVER_TOTAL;
    else if (e->count > c->max_per_ip)
        v = CONN_OVER_IP;
    (*slot)->e = e;
    (*slot)->verdict = v;
    pthread_mutex_unlock(&c->lock);
    return v;
}

void conns_close(conns *c, conn_slot *slot)
{
    if (!slot)
        return;
    entry *e = slot->e;
    pthread_mutex_lock(&c->lock);
    c->total--;
    if (--e->count == 0) {
        entry **pp = &c->buckets[bucket_of(e->addr)];
        while (*pp != e)
            pp = &(*pp)->next;
        *pp = e->next;
        free(e);
    }
    pthread_mutex_unlock(&c->lock);
    free(slot);
}

conn_verdict conns_verdict(const conn_slot *slot)
{
    return slot ? slot->verdict : CONN_OK;
}

size_t conns_count(conns *c)
{
    pthread_mutex_lock(&c->lock);
    size_t n = c->total;
    pthread_mutex_unlock(&c->lock);
    return n;
}
