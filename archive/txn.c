/* txn.c - building an archive transaction in memory.
 *
 * Each event is encoded straight into the raw chunk of its (stream,
 * partition, tpart) (chunk.c), so a commit only has to compress and insert.
 * Events of one Kafka partition mostly arrive in runs of the same time
 * partition, so the builder used last is tried before the hash table.
 * Runs on the thread that owns the transaction (the speed thread); no locks.
 */
#include "archive/txn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Builders keep their buffers across resets unless one grew beyond this,
 * so one huge transaction does not pin its memory forever. */
#define KEEP_BUF_MAX ((size_t)4 << 20)

arch_txn *arch_txn_new(void)
{
    return calloc(1, sizeof(arch_txn));
}

static void free_rejects_offsets(arch_txn *t)
{
    for (size_t i = 0; i < t->nrejects; i++)
        free(t->rejects[i].topic);
    t->nrejects = 0;
    for (size_t i = 0; i < t->noffsets; i++)
        free(t->offsets[i].topic);
    t->noffsets = 0;
}

void arch_txn_free(arch_txn *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->ninit; i++)
        chunk_builder_release(&t->chunks[i]);
    free(t->chunks);
    free(t->slots);
    free_rejects_offsets(t);
    free(t->rejects);
    free(t->offsets);
    free(t);
}

void arch_txn_reset(arch_txn *t)
{
    for (size_t i = 0; i < t->nchunks; i++) {
        chunk_builder *b = &t->chunks[i];
        if (b->cap > KEEP_BUF_MAX) {
            free(b->buf);
            b->buf = NULL;
            b->cap = 0;
        }
        b->len = 0;
        b->n = 0;
    }
    t->nchunks = 0;
    if (t->slots)
        memset(t->slots, 0, t->nslots * sizeof *t->slots);
    t->nkeys = 0;
    t->last = 0;
    t->nevents = 0;
    free_rejects_offsets(t);
    t->imp = (txn_import){0};
}

void arch_txn_set_import(arch_txn *t, int64_t id, int64_t from_records, int64_t records,
                         int64_t lines, bool done)
{
    t->imp = (txn_import){.set = true, .done = done, .id = id, .from_records = from_records,
                          .records = records, .lines = lines};
}

size_t arch_txn_events(const arch_txn *t) { return t->nevents; }
size_t arch_txn_rejects(const arch_txn *t) { return t->nrejects; }

static uint64_t key_hash(const char *stream, int32_t part, int64_t tpart)
{
    uint64_t h = 1469598103934665603ull;             /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)stream; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    h ^= (uint64_t)(uint32_t)part * 0x9e3779b97f4a7c15ull;
    h ^= (uint64_t)tpart * 0xc2b2ae3d27d4eb4full;
    return h ^ (h >> 29);
}

static bool key_eq(const chunk_builder *b, const char *stream, int32_t part, int64_t tpart)
{
    return b->part == part && b->tpart == tpart && strcmp(b->stream, stream) == 0;
}

/* Points the slot of builder idx's key at idx (replacing an older builder
 * of the same key). The table has room (see grow_slots). */
static void slot_put(arch_txn *t, size_t idx)
{
    const chunk_builder *b = &t->chunks[idx];
    size_t mask = t->nslots - 1;
    for (size_t i = key_hash(b->stream, b->part, b->tpart) & mask;; i = (i + 1) & mask) {
        if (!t->slots[i]) {
            t->slots[i] = (uint32_t)idx + 1;
            t->nkeys++;
            return;
        }
        if (key_eq(&t->chunks[t->slots[i] - 1], b->stream, b->part, b->tpart)) {
            t->slots[i] = (uint32_t)idx + 1;
            return;
        }
    }
}

static int grow_slots(arch_txn *t)
{
    if (t->nslots && (t->nkeys + 1) * 2 <= t->nslots)
        return 0;
    size_t n = t->nslots ? t->nslots * 2 : 64;
    uint32_t *s = calloc(n, sizeof *s);
    if (!s)
        return -ENOMEM;
    free(t->slots);
    t->slots = s;
    t->nslots = n;
    t->nkeys = 0;
    /* later builders of a key replace earlier ones: the open one wins */
    for (size_t i = 0; i < t->nchunks; i++)
        slot_put(t, i);
    return 0;
}

static chunk_builder *find_open(arch_txn *t, const char *stream, int32_t part, int64_t tpart)
{
    if (t->nchunks && key_eq(&t->chunks[t->last], stream, part, tpart))
        return &t->chunks[t->last];
    if (!t->nslots)
        return NULL;
    size_t mask = t->nslots - 1;
    for (size_t i = key_hash(stream, part, tpart) & mask; t->slots[i]; i = (i + 1) & mask) {
        size_t idx = t->slots[i] - 1;
        if (key_eq(&t->chunks[idx], stream, part, tpart)) {
            t->last = idx;
            return &t->chunks[idx];
        }
    }
    return NULL;
}

static chunk_builder *open_builder(arch_txn *t, const char *stream, int32_t part, int64_t tpart)
{
    if (t->nchunks >= UINT32_MAX - 1 || grow_slots(t) < 0)
        return NULL;
    if (t->nchunks == t->capchunks) {
        size_t cap = t->capchunks ? t->capchunks * 2 : 16;
        chunk_builder *c = realloc(t->chunks, cap * sizeof *c);
        if (!c)
            return NULL;
        t->chunks = c;
        t->capchunks = cap;
    }
    chunk_builder *b = &t->chunks[t->nchunks];
    if (t->nchunks == t->ninit) {
        memset(b, 0, sizeof *b);
        t->ninit++;
    }
    if (!b->stream || strcmp(b->stream, stream) != 0) {
        char *s = strdup(stream);
        if (!s)
            return NULL;
        free(b->stream);
        b->stream = s;
    }
    chunk_builder_clear(b, part, tpart);
    t->last = t->nchunks++;
    slot_put(t, t->last);
    return b;
}

int arch_txn_add_event(arch_txn *t, const char *stream, int32_t partition, int64_t tpart,
                       int64_t offset, int64_t ts_ms, const void *payload, size_t len)
{
    if (!stream || (!payload && len))
        return -EINVAL;
    chunk_builder *b = find_open(t, stream, partition, tpart);
    if (!b || !chunk_builder_fits(b, offset, len))
        b = open_builder(t, stream, partition, tpart);
    if (!b)
        return -ENOMEM;
    int r = chunk_builder_add(b, offset, ts_ms, payload, len);
    if (r < 0)
        return r;   /* an empty builder left behind is skipped at commit */
    t->nevents++;
    return 0;
}

static char *dupstr(char **p, const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = memcpy(*p, s, n);
    *p += n;
    return d;
}

int arch_txn_add_reject(arch_txn *t, const char *topic, int32_t partition, int64_t offset,
                        const char *reason, const char *detail, const void *payload, size_t len)
{
    if (!topic || (!payload && len))
        return -EINVAL;
    if (!reason)
        reason = "";
    if (!detail)
        detail = "";
    size_t strs = strlen(topic) + strlen(reason) + strlen(detail) + 3;
    if (len > SIZE_MAX - strs)
        return -ENOMEM;
    if (t->nrejects == t->caprejects) {
        size_t cap = t->caprejects ? t->caprejects * 2 : 8;
        txn_reject *r = realloc(t->rejects, cap * sizeof *r);
        if (!r)
            return -ENOMEM;
        t->rejects = r;
        t->caprejects = cap;
    }
    char *mem = malloc(strs + len);
    if (!mem)
        return -ENOMEM;
    txn_reject *r = &t->rejects[t->nrejects++];
    char *p = mem;
    r->topic = dupstr(&p, topic);
    r->reason = dupstr(&p, reason);
    r->detail = dupstr(&p, detail);
    if (len)
        memcpy(p, payload, len);
    r->raw = p;
    r->len = len;
    r->part = partition;
    r->offset = offset;
    r->at_ms = 0;
    return 0;
}

void txn_reject_set_time(arch_txn *t, int64_t at_ms)
{
    if (t->nrejects)
        t->rejects[t->nrejects - 1].at_ms = at_ms;
}

int arch_txn_set_offset(arch_txn *t, const char *topic, int32_t partition, int64_t next_offset)
{
    if (!topic)
        return -EINVAL;
    /* a transaction covers a handful of partitions: a linear search is fine */
    for (size_t i = 0; i < t->noffsets; i++) {
        txn_offset *o = &t->offsets[i];
        if (o->part == partition && strcmp(o->topic, topic) == 0) {
            o->next = next_offset;
            return 0;
        }
    }
    if (t->noffsets == t->capoffsets) {
        size_t cap = t->capoffsets ? t->capoffsets * 2 : 8;
        txn_offset *o = realloc(t->offsets, cap * sizeof *o);
        if (!o)
            return -ENOMEM;
        t->offsets = o;
        t->capoffsets = cap;
    }
    char *s = strdup(topic);
    if (!s)
        return -ENOMEM;
    t->offsets[t->noffsets++] = (txn_offset){ .topic = s, .part = partition, .next = next_offset };
    return 0;
}
