/* fuzz.h - what the libFuzzer targets of tests/fuzz/ share.
 *
 * Each target defines LLVMFuzzerTestOneInput (and LLVMFuzzerInitialize for
 * its set-up); libFuzzer's main runs it. A broken expectation aborts with
 * the line, so libFuzzer saves the input as a crash like any ASan or UBSan
 * report (an assert() would vanish under NDEBUG).
 */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_ASSERT(cond) do { \
    if (!(cond)) { \
        fprintf(stderr, "%s:%d: expectation failed: %s\n", __FILE__, __LINE__, #cond); \
        abort(); \
    } } while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Little-endian integers from the fuzzer's bytes (the targets that read
 * a structured input take their fields this way). */
static inline uint64_t fuzz_le(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}
