/* strmap.h - a map from strings to indexes, for looking names up while a
 * config loads: duplicate view, stream and metric names, and the fields a
 * stream's views read. A config may define tens of thousands of views, so
 * these lookups must not compare every name with every other (a 60k-view
 * config took 12 s to check that way).
 *
 * Open addressing with linear probing over a power-of-two table kept at
 * most half full; keys hashed with XXH3 (core/checksum.h). Keys are
 * borrowed: the caller keeps each one alive and unchanged while the map
 * lives. No removal. One owner, no locks.
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>

typedef struct strmap strmap;

strmap *strmap_new(void);        /* NULL when out of memory */
void strmap_free(strmap *m);     /* accepts NULL */

/* Keys are len bytes at key (names in expressions are not
 * NUL-terminated). */

/* true, with its value in *val, when key is in the map. */
bool strmap_get(const strmap *m, const char *key, size_t len, size_t *val);
/* Adds key (not in the map yet) with val. 0 or -ENOMEM. */
int strmap_put(strmap *m, const char *key, size_t len, size_t val);
