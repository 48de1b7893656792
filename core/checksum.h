/* checksum.h - the one checksum of the data lambdad stores: archive chunks
 * (archive/chunk.c) and persisted view segments.
 *
 * XXH3-64 from libxxhash: a well-kept, fast (tens of GB/s, so it costs
 * nothing next to zstd) non-cryptographic hash whose 64 bits make an
 * undetected random corruption a 1 in 2^64 event. It guards against bits
 * flipped on disk or in transit, not against someone who rewrites the data
 * on purpose (they could rewrite the checksum too).
 *
 * To cover several parts (a header and a blob), chain them through the
 * seed: h = checksum64(hdr, n, 0); h = checksum64(blob, m, h). A change in
 * any part changes the result. The value is stable across versions and
 * machines (XXH3's output is specified), so it can be stored.
 *
 * Pure function, any thread.
 */
#pragma once
#include <stddef.h>
#include <stdint.h>

/* XXH3-64 of len bytes at data (data may be NULL when len is 0), seeded. */
uint64_t checksum64(const void *data, size_t len, uint64_t seed);
