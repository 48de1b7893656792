/* strmap.c - see strmap.h. Runs on its owner's thread; no locks. */
#include "core/strmap.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/checksum.h"

#define MIN_CAP 16

typedef struct {
    const char *key;   /* NULL: empty slot */
    size_t len;
    uint64_t hash;
    size_t val;
} slot;

struct strmap {
    slot *slots;
    size_t cap;        /* a power of two */
    size_t n;
};

strmap *strmap_new(void)
{
    strmap *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    if (!(m->slots = calloc(MIN_CAP, sizeof(*m->slots)))) {
        free(m);
        return NULL;
    }
    m->cap = MIN_CAP;
    return m;
}

void strmap_free(strmap *m)
{
    if (!m)
        return;
    free(m->slots);
    free(m);
}

static uint64_t hash_of(const char *key, size_t len)
{
    /* The seed is fixed: names come from the operator's own config. */
    return checksum64(key, len, 0);
}

/* The slot holding key, or the empty slot where it would go. */
static slot *find(slot *slots, size_t cap, const char *key, size_t len, uint64_t h)
{
    for (size_t i = h & (cap - 1);; i = (i + 1) & (cap - 1)) {
        slot *s = &slots[i];
        if (!s->key || (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0))
            return s;
    }
}

bool strmap_get(const strmap *m, const char *key, size_t len, size_t *val)
{
    const slot *s = find(m->slots, m->cap, key, len, hash_of(key, len));
    if (!s->key)
        return false;
    *val = s->val;
    return true;
}

static int grow(strmap *m)
{
    size_t cap = m->cap * 2;
    slot *slots = calloc(cap, sizeof(*slots));
    if (!slots)
        return -ENOMEM;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key)
            *find(slots, cap, m->slots[i].key, m->slots[i].len, m->slots[i].hash) = m->slots[i];
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return 0;
}

int strmap_put(strmap *m, const char *key, size_t len, size_t val)
{
    if (2 * (m->n + 1) > m->cap && grow(m) < 0)
        return -ENOMEM;
    uint64_t h = hash_of(key, len);
    *find(m->slots, m->cap, key, len, h) = (slot){.key = key, .len = len, .hash = h, .val = val};
    m->n++;
    return 0;
}
