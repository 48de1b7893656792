/* xorshift.h - the unit tests' pseudo-random numbers (Marsaglia's
 * xorshift64): the same sequence on every machine, so a failing case can
 * be run again. A test that wants its own sequence seeds it first. */
#pragma once
#include <stdint.h>

static uint64_t xorshift_state = 0x9E3779B97F4A7C15ull;

static inline void xorshift_seed(uint64_t seed)
{
    xorshift_state = seed;
}

static inline uint64_t next_rand(void)
{
    uint64_t x = xorshift_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return xorshift_state = x;
}

static inline double unit_rand(void)   /* [0, 1) */
{
    return (double)(next_rand() >> 11) * 0x1p-53;
}
