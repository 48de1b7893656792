/* genev.h - the event synthesis of lambdad-gen: a seeded PRNG and realistic,
 * reproducible page-view events (plus malformed ones on request).
 *
 * Pure functions over caller-owned state, no I/O, no globals: one genev_t
 * per thread. The same seed and options give byte-identical events on the
 * same machine (bytes and latencies go through libm's log/exp/cos).
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* xoshiro256** seeded through splitmix64. */
typedef struct {
    uint64_t s[4];
} genrng_t;
void genrng_seed(genrng_t *r, uint64_t seed);
uint64_t genrng_next(genrng_t *r);
double genrng_double(genrng_t *r);              /* [0, 1), 53 bits */
uint64_t genrng_below(genrng_t *r, uint64_t n); /* [0, n), n > 0, unbiased */

typedef enum { GENEV_EPOCH_S, GENEV_EPOCH_MS, GENEV_RFC3339 } genev_tsfmt_t;
/* "epoch_s", "epoch_ms", "rfc3339": 0 or -EINVAL. */
int genev_tsfmt_parse(const char *s, genev_tsfmt_t *out);

/* What an event is; the bad kinds are what lambdad rejects. */
typedef enum {
    GENEV_GOOD,
    GENEV_BAD_JSON,       /* not valid JSON (a truncated object) */
    GENEV_BAD_NOT_OBJECT, /* valid JSON, not an object: [..], "..", 42, null */
    GENEV_BAD_NO_TIME,    /* an object without "ts" */
    GENEV_BAD_TIME,       /* an object whose "ts" is an unparseable string */
} genev_kind_t;

enum { GENEV_MAX_PAYLOAD = 256, GENEV_MAX_KEY = 16 };

typedef struct {
    char payload[GENEV_MAX_PAYLOAD]; /* never contains '\n' */
    size_t len;
    char key[GENEV_MAX_KEY]; /* the user id, e.g. "u18273" */
    size_t keylen;
    genev_kind_t kind;
    bool late;
    int64_t time_ms; /* the event time written (good events) */
} genev_event_t;

typedef struct {
    genrng_t rng;
    genev_tsfmt_t fmt;
    double bad_share, late_share; /* each in [0, 1], sum <= 1 */
    int64_t late_max_ms;          /* late events are 1..late_max_ms older */
    uint64_t nbad;                /* bad events so far: cycles the kinds */
} genev_t;

/* Sets g up; shares and late_max_ms as above (checked by the caller). */
void genev_init(genev_t *g, uint64_t seed, genev_tsfmt_t fmt, double bad_share, double late_share,
                int64_t late_max_ms);

/* The next event, with time time_ms before any lateness. Every call draws
 * the same number of random values, so the good events of one seed do not
 * change with the shares. */
void genev_next(genev_t *g, int64_t time_ms, genev_event_t *ev);

/* "2026-11-23T10:00:00.123Z" into buf (at least 32 bytes); years 0..9999. */
void genev_format_rfc3339_ms(int64_t ms, char *buf, size_t bufsz);
