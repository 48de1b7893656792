/* qcache.h - the exact answer cache (serving/ private).
 *
 * Dashboards ask the same questions over and over. An answer depends only
 * on the query and on the source's state version (serving_source.version),
 * which changes with every archive commit, batch swap or recovery step.
 * So an answer stored with the version it was computed at is served again
 * only while that version is still current: never stale, never inexact.
 * Direct-mapped slots under one mutex, held only to copy bytes. Any thread.
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct qcache qcache;

/* slots: how many answers are kept; max_body: larger answers are not. */
qcache *qcache_new(size_t slots, size_t max_body);
void qcache_free(qcache *c);   /* accepts NULL */

/* A malloc'd copy of the answer stored for key at version, or false. */
bool qcache_get(qcache *c, const void *key, size_t klen, uint64_t version, char **body,
                size_t *len);
/* Stores an answer (copied), replacing the slot's previous one. */
void qcache_put(qcache *c, const void *key, size_t klen, uint64_t version, const char *body,
                size_t len);

typedef struct {
    uint64_t hits, misses;
} qcache_stats;
void qcache_get_stats(qcache *c, qcache_stats *st);
