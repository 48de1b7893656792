/* segment_int.h - what the segment builder (segment_build.c) and decoder
 * (segment.c) share: the constants of the format written down in
 * segment.h, and the ordering of dimension values. Private to core/. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "core/gran.h"
#include "core/vtable.h"

#define SEG_MAGIC "LDSEG\r\n\x1a"
#define SEG_MAGIC_LEN 8
#define SEG_HDR_FIXED 56          /* header bytes before the level table */
#define SEG_HDR_LEVEL 32          /* bytes of one level table entry */
#define SEG_CHECKSUM_LEN 8
#define SEG_HDR_LEN(nlevels) (SEG_HDR_FIXED + SEG_HDR_LEVEL * (size_t)(nlevels) + SEG_CHECKSUM_LEN)
#define SEG_UNIT_PARTITION 15     /* unit code of the whole partition level */
/* part_start and part_end lie in [-SEG_TIME_LIMIT, SEG_TIME_LIMIT]: years
 * 0001..9999 (the times events may have) and more, and no overflow in
 * bucket arithmetic. */
#define SEG_TIME_LIMIT ((int64_t)1 << 40)
#define SEG_ZSTD_LEVEL 3

/* The unit code of a level (segment.h, level table), -1 for none. Codes
 * grow with coarseness, and each unit nests in every coarser one (UTC), so
 * "coarser" is "a larger code". */
static inline int seg_unit_code(gran_t g)
{
    switch (g) {
    case GRAN_SECOND: return 0;
    case GRAN_MINUTE: return 1;
    case GRAN_HOUR:   return 2;
    case GRAN_DAY:    return 3;
    case GRAN_MONTH:  return 4;
    case GRAN_ALL:    return SEG_UNIT_PARTITION;
    }
    return -1;
}

/* The unit of a code; false for an unknown code. */
static inline bool seg_unit_of_code(unsigned code, gran_t *g)
{
    switch (code) {
    case 0: *g = GRAN_SECOND; return true;
    case 1: *g = GRAN_MINUTE; return true;
    case 2: *g = GRAN_HOUR; return true;
    case 3: *g = GRAN_DAY; return true;
    case 4: *g = GRAN_MONTH; return true;
    case SEG_UNIT_PARTITION: *g = GRAN_ALL; return true;
    }
    return false;
}

/* The order of query answers: null first, then bytewise, then shorter
 * first (serving/query_run.c cmp_dimval). */
static inline int seg_cmp_value(const char *a, size_t alen, bool anull, const char *b,
                                size_t blen, bool bnull)
{
    if (anull || bnull)
        return (int)bnull - (int)anull;
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c < 0 ? -1 : 1;
    return (alen > blen) - (alen < blen);
}

/* The bucket of a roll-up level of unit u (GRAN_ALL: the partition) that
 * holds the view bucket b. */
static inline int64_t seg_rollup_bucket(gran_t u, int64_t part_start, int64_t b)
{
    return u == GRAN_ALL ? part_start : gran_floor(u, b);
}

static inline void seg_put_le(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint64_t seg_get_le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}
