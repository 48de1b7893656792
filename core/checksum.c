/* checksum.c - checksum64 (see checksum.h): a thin wrapper, so that one
 * place names the algorithm and the rest of lambdad does not include
 * xxhash.h. Pure, any thread. */
#include "core/checksum.h"

#include <xxhash.h>

uint64_t checksum64(const void *data, size_t len, uint64_t seed)
{
    /* XXH3 accepts NULL with a zero length, but say so explicitly */
    static const char empty[1];
    return XXH3_64bits_withSeed(len ? data : empty, len, seed);
}
