/* fuzz_seg.h - the segment header's layout (core/segment.h) as
 * fuzz_segment.c and the seed generator mkseeds.c need it: where each
 * part's fields are, and whether a header is whole enough to find them.
 */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "core/segment.h"
#include "core/segment_int.h"
#include "tests/fuzz/fuzz.h"

static inline void put_le(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Byte offset in the header of part i's (zlen, rawlen, checksum) fields:
 * 0 the dictionaries, 1 + l level l. */
static inline size_t part_fields(size_t i)
{
    return i == 0 ? 40 : SEG_HDR_FIXED + SEG_HDR_LEVEL * (i - 1) + 16;
}

/* The header length and level count when the header is well-formed
 * enough to find the parts; 0 otherwise. */
static inline size_t header_len(const uint8_t *p, size_t len, size_t *nl)
{
    if (len < SEG_HDR_LEN(1))
        return 0;
    *nl = p[20];
    size_t hl = (size_t)fuzz_le(p + 12, 4);
    if (*nl < 1 || *nl > SEG_MAX_LEVELS || hl != SEG_HDR_LEN(*nl) || hl > len)
        return 0;
    return hl;
}

