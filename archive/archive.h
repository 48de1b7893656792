/* archive.h - the SQLite master dataset.
 *
 * One SQLite file in WAL mode holds every accepted event, in compressed
 * chunks: one row per (stream, Kafka partition, time partition) per archive
 * transaction. A chunk's rowid is its seq, strictly increasing in commit
 * order. The same transaction stores the rejects and the next Kafka offset
 * of every partition it covers, so a crash at any moment neither loses nor
 * duplicates an event (DESIGN.md, "The exactness protocol").
 *
 * An arch handle is one connection; use it from one thread at a time. The
 * writer (the speed thread) owns one; readers (recovery, batch runs) open
 * their own with ARCH_READONLY.
 */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

typedef struct arch arch;

enum { ARCH_READONLY = 1 };

/* Opens (creating when absent, unless ARCH_READONLY) the archive at path.
 * compression_level: zstd level used for new chunks. On failure returns
 * -errno-style code and sets *errmsg to a static or malloc'd text that the
 * caller frees with free() (always malloc'd). */
int arch_open(const char *path, int flags, int compression_level, arch **out, char **errmsg);
void arch_close(arch *a);   /* accepts NULL */

/* ---- writing: one transaction at a time ---------------------------- */

/* One transaction under construction (in memory until arch_commit). */
typedef struct arch_txn arch_txn;

arch_txn *arch_txn_new(void);
void arch_txn_free(arch_txn *t);          /* accepts NULL */
void arch_txn_reset(arch_txn *t);         /* empty it for reuse */
size_t arch_txn_events(const arch_txn *t);   /* accepted events in it */
size_t arch_txn_rejects(const arch_txn *t);

/* Adds an accepted event: stream name, Kafka partition, the time partition
 * start (epoch s) it belongs to, its Kafka offset, its event time (ms) and
 * its raw payload (copied). 0 or -ENOMEM. */
int arch_txn_add_event(arch_txn *t, const char *stream, int32_t partition, int64_t tpart,
                       int64_t offset, int64_t ts_ms, const void *payload, size_t len);
/* Adds a rejected message (payload copied). 0 or -ENOMEM. */
int arch_txn_add_reject(arch_txn *t, const char *topic, int32_t partition, int64_t offset,
                        const char *reason, const char *detail, const void *payload, size_t len);
/* Records the next offset to consume for topic/partition. 0 or -ENOMEM. */
int arch_txn_set_offset(arch_txn *t, const char *topic, int32_t partition, int64_t next_offset);

/* Writes the transaction: its chunks (compressed), rejects and offsets, in
 * one SQLite transaction. On success returns 0 and sets *last_seq to the
 * highest seq committed so far (unchanged if the transaction held no
 * events). On failure nothing of it is stored; returns a negative code and
 * sets *errmsg (malloc'd). */
int arch_commit(arch *a, arch_txn *t, int64_t *last_seq, char **errmsg);

/* ---- reading ------------------------------------------------------- */

/* The stored next offset of topic/partition: 0 and *next_offset, or
 * -ENOENT when none is stored. */
int arch_get_offset(arch *a, const char *topic, int32_t partition, int64_t *next_offset);

typedef struct {
    int64_t events;        /* accepted events archived */
    int64_t rejects;       /* rejected messages */
    int64_t chunks;
    int64_t last_seq;      /* 0 when empty */
    int64_t file_bytes;    /* database + WAL on disk */
    int64_t payload_bytes; /* uncompressed payload bytes archived */
} arch_stats;

int arch_get_stats(arch *a, arch_stats *st);

/* One archived event, as handed to a scan callback. payload is valid during
 * the callback only. */
typedef struct {
    int64_t seq;
    int32_t partition;
    int64_t offset;
    int64_t ts_ms;
    int64_t tpart;
    const char *payload;
    size_t len;
} arch_event;

/* Calls fn for every event of stream with seq_lo < seq <= seq_hi and, when
 * tpart_lo <= tpart_hi, tpart_lo <= tpart <= tpart_hi; in seq order, and in
 * offset order within a chunk. fn returning non-zero stops the scan with
 * that value. Returns 0, fn's value, or a negative code with *errmsg. */
int arch_scan(arch *a, const char *stream, int64_t seq_lo, int64_t seq_hi,
              int64_t tpart_lo, int64_t tpart_hi,
              int (*fn)(const arch_event *ev, void *ud), void *ud, char **errmsg);

/* The lowest and highest time partition holding events of stream with
 * seq <= seq_hi: 0 and *lo, *hi, or -ENOENT when there are none. */
int arch_tpart_range(arch *a, const char *stream, int64_t seq_hi, int64_t *lo, int64_t *hi,
                     char **errmsg);

/* Reject rows, newest first, for /v1/status and tests: calls fn for at most
 * limit rows. */
typedef struct {
    int64_t id;
    const char *topic;
    int32_t partition;
    int64_t offset;
    const char *reason;
    const char *detail;
    const void *payload;
    size_t len;
} arch_reject;

int arch_list_rejects(arch *a, int limit, int (*fn)(const arch_reject *r, void *ud), void *ud,
                      char **errmsg);

/* ---- settings fixed for the archive's lifetime (table meta) ---------- */

/* The value stored under key: 0 and *value (malloc'd), -ENOENT when none,
 * or a negative code with *errmsg. */
int arch_meta_get(arch *a, const char *key, char **value, char **errmsg);
/* Stores value under key in its own transaction (writer only). */
int arch_meta_set(arch *a, const char *key, const char *value, char **errmsg);
