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
/* Whether arch_open could open (or create) the archive at path, without
 * creating anything: the path must not be a directory, an existing file
 * must be readable and writable, and its directory must exist and be
 * writable (the -wal, -shm, -lock and -views files go there). 0, or a
 * negative errno and *errmsg (malloc'd) naming the path and the reason,
 * e.g. "cannot create /x/a.db: directory /x does not exist". */
int arch_check_path(const char *path, char **errmsg);
/* What arch_open changed that the operator should hear about (an older
 * archive upgraded, its totals counted), "; "-separated; NULL when
 * nothing. The caller logs it. Valid until arch_close. */
const char *arch_open_note(const arch *a);

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

/* The totals are kept in the archive (table meta) and updated in the
 * same transaction as each commit, so reading them costs the same
 * whatever the archive holds. */
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

/* A chunk that cannot be read back as it was written: its checksum does
 * not match, it does not decompress, or its events disagree with its row.
 * Its fields are what the chunk's row says (a damaged row may say wrong
 * things; the checksum tells that it is damaged, not what it held).
 * Pointers are valid during the callback only. */
typedef struct {
    int64_t seq;
    const char *stream;
    int32_t partition;
    int64_t tpart;             /* time partition start, epoch s */
    int64_t first_offset, last_offset;
    int64_t events;            /* the chunk's event count: all unreadable */
    const char *reason;        /* "checksum mismatch", "not a zstd frame", ... */
    int64_t found_at;          /* epoch s this chunk was first found damaged */
    bool known;                /* reported before (in this process, or recorded in
                                * the archive by an earlier run) */
} arch_damage;

/* Calls fn for every event of stream with seq_lo < seq <= seq_hi and, when
 * tpart_lo <= tpart_hi, tpart_lo <= tpart <= tpart_hi; in seq order, and in
 * offset order within a chunk. fn returning non-zero stops the scan with
 * that value.
 *
 * Each chunk is checked completely (checksum, decompression, events
 * against its row) before its first event is handed out. A damaged chunk
 * yields none of its events: it is recorded (see arch_damage_totals) and,
 * with on_damage, reported there and the scan goes on with the next chunk
 * (on_damage returning non-zero stops it with that value); without
 * on_damage it stops the scan with -EBADMSG and *errmsg. Returns 0, a
 * callback's value, or a negative code with *errmsg. */
int arch_scan(arch *a, const char *stream, int64_t seq_lo, int64_t seq_hi,
              int64_t tpart_lo, int64_t tpart_hi,
              int (*fn)(const arch_event *ev, void *ud),
              int (*on_damage)(const arch_damage *d, void *ud), void *ud, char **errmsg);

/* Calls fn with the name of each stream that has chunks, in name order
 * (fn returning non-zero stops with that value). 0, fn's value, or a
 * negative code with *errmsg. */
int arch_list_streams(arch *a, int (*fn)(const char *stream, void *ud), void *ud, char **errmsg);

/* "chunk 17 (stream 'pv', partition 1, offsets 100..199, 100 events,
 * time partition 2026-11-23T00:00:00Z): checksum mismatch" into buf
 * (truncated to size), for log lines and tools. Returns buf. */
const char *arch_damage_describe(const arch_damage *d, char *buf, size_t size);

/* ---- damaged chunks found so far ------------------------------------ *
 *
 * Damage is a fact about the archive file, not about a connection: every
 * scan records the damaged chunks it meets in one registry per archive
 * path (the path as given to arch_open) shared by all the handles of the
 * process, so the daemon's status sees what its batch thread and its
 * recovery found. The writer also stores them in the archive (table
 * damaged_chunks, with its next commit or at arch_close), and every open
 * loads what earlier runs stored: a restart does not forget them. Any
 * thread; a mutex guards the registry. */
typedef struct {
    int64_t chunks;            /* damaged chunks */
    int64_t events;            /* events in them: unreadable */
} arch_damage_count;

/* Totals for the archive at path, of stream (NULL: all streams). Zero
 * when nothing is known. */
void arch_damage_totals(const char *path, const char *stream, arch_damage_count *out);
/* Calls fn for at most max damaged chunks of the archive at path, the most
 * recently found first. Returns 0 or fn's non-zero value. */
int arch_damage_list(const char *path, size_t max, int (*fn)(const arch_damage *d, void *ud),
                     void *ud);

/* ---- verification (lambdad-archive verify) --------------------------- */

typedef struct {
    int64_t chunks;            /* chunk rows */
    int64_t checksummed;       /* chunks with a checksum (the others predate them) */
    int64_t events;            /* events in the chunk rows */
    int64_t rejects;
    int64_t damaged_chunks;    /* chunks that cannot be read back */
    int64_t unreadable_events; /* events in them */
    int64_t problems;          /* every problem reported, damaged chunks included */
} arch_verify_summary;

/* One problem found by arch_verify: about one chunk (chunk not NULL; the
 * chunk's events are unreadable when unreadable is true, else readable but
 * inconsistent, e.g. in the wrong time partition) or about the archive as
 * a whole (what says it: SQLite's integrity check, the stored totals). */
typedef struct {
    const arch_damage *chunk;
    bool unreadable;
    const char *what;
} arch_problem;

/* Checks the whole archive: every chunk (checksum when it has one,
 * decompression, events against the row: count, offsets strictly
 * increasing, times within the row's min/max and equal to them, payload
 * bytes, time partition consistent with each event's time under the
 * archive's partition unit), the stored totals against the rows, and
 * SQLite's own integrity check. Calls fn for each problem (fn returning
 * non-zero stops with that value) and fills *sum. Reads only: safe on a
 * read-only handle while lambdad runs; does not record into the damage
 * registry. Returns 0 (whether or not problems were found), fn's value,
 * or a negative code with *errmsg. */
int arch_verify(arch *a, int (*fn)(const arch_problem *p, void *ud), void *ud,
                arch_verify_summary *sum, char **errmsg);

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

/* ---- imported files (lambdad import; imports.c) ---------------------- */

/* One file imported into a stream, found by its content hash. Its events
 * are archived under partition -id, offset = the record's number. */
typedef struct {
    int64_t id;
    int64_t records;    /* records of the file archived so far (events and rejects) */
    int64_t lines;      /* lines of the file they span */
    int64_t events, rejects;
    bool done;          /* every record archived */
} arch_import;

/* The import of the file with content hash `hash` into stream, registered
 * (in its own transaction) when new. Writer only. 0 and *out, or a
 * negative code with *errmsg. */
int arch_import_begin(arch *a, const char *stream, const char *hash, const char *name,
                      arch_import *out, char **errmsg);
/* Makes t (which holds records from_records..records-1 of import id and
 * nothing else) move the import's progress to records and lines, and mark
 * it done, in the same SQLite transaction as its events and rejects.
 * arch_commit then fails with -ESTALE, storing nothing, when the stored
 * progress is not from_records (the same file imported twice at once). */
void arch_txn_set_import(arch_txn *t, int64_t id, int64_t from_records, int64_t records,
                         int64_t lines, bool done);

/* ---- moving Kafka partitions between archives (move.c) --------------- *
 *
 * Chunks are kept by stream and Kafka partition, offsets and rejects by
 * topic and partition: the daemon records which topic each stream reads
 * (arch_record_stream_topic, meta key "topic.<stream>") so that a
 * partition's chunks can be told from another topic's. Imported events
 * (partition -id) belong to no Kafka partition and are never selected. */

typedef struct {
    const char *topic;
    int32_t partition;         /* >= 0 */
} arch_part;

typedef struct {
    int64_t chunks, events, rejects, offsets;   /* copied or deleted */
    int64_t damage_records;    /* drop: damaged-chunk records deleted with their chunks */
} arch_move_stats;

/* Records that stream reads topic (writer; its own short transaction, and
 * only when the record differs). 0 or a negative code with *errmsg. */
int arch_record_stream_topic(arch *a, const char *stream, const char *topic, char **errmsg);

/* Whether a holds each of parts (a stored next offset: every partition
 * lambdad consumed has one) and records the topic of every stream with
 * Kafka events. 0, or -ENOENT and *errmsg naming the first missing
 * partition and listing those a holds ("archive a.db holds no partition
 * web:7 (it holds web:0,1,2,3)"), or -ENOKEY when a stream's topic is not
 * recorded. Reads only. */
int arch_parts_check(arch *a, const arch_part *parts, size_t n, char **errmsg);

/* Copies everything of parts from src (any handle; read in one read
 * transaction, so a daemon may be writing it) into dst, a new empty
 * archive opened for writing: their events (fresh seqs, in src's seq
 * order; chunks cut anew, checksummed and counted in the totals), their
 * rejects (with their original time), their next offsets, the archive's
 * time-partition unit and the topic records of their streams. A damaged
 * chunk of parts stops it with -EBADMSG (its events cannot be copied, and
 * the copied offsets would claim them). dst may hold part of the copy
 * after a failure: the caller discards it. Fills *st from dst's totals. 0
 * or a negative code with *errmsg. */
int arch_extract(arch *src, arch *dst, const arch_part *parts, size_t n, arch_move_stats *st,
                 char **errmsg);

/* Deletes everything of parts from a (a writer handle; the caller makes
 * sure no daemon uses the archive): their chunks with their data and
 * damaged-chunk records, their rejects and their next offsets, and takes
 * them off the stored totals, in one transaction. Fills *st. 0 or a
 * negative code with *errmsg (then nothing is deleted). */
int arch_drop_parts(arch *a, const arch_part *parts, size_t n, arch_move_stats *st,
                    char **errmsg);

/* ---- settings fixed for the archive's lifetime (table meta) ---------- */

/* The value stored under key: 0 and *value (malloc'd), -ENOENT when none,
 * or a negative code with *errmsg. */
int arch_meta_get(arch *a, const char *key, char **value, char **errmsg);
/* Stores value under key in its own transaction (writer only). */
int arch_meta_set(arch *a, const char *key, const char *value, char **errmsg);

/* ---- maintenance (writer handles; compact.c, retain.c) --------------- */

typedef struct {
    int64_t merges;            /* merged chunks written */
    int64_t chunks_merged;     /* small chunks they replaced */
    int64_t events;            /* events moved into merged chunks */
    int64_t bytes_before;      /* stored bytes of the replaced chunks */
    int64_t bytes_after;       /* stored bytes of the merged chunks */
    int64_t damaged;           /* damaged chunks left alone */
    double longest_txn_ms;     /* the longest merge write transaction (what a
                                * commit of the speed thread may wait for) */
    double txn_ms;             /* all merge write transactions together */
} arch_compact_stats;

/* Merges runs of small chunks of one (stream, partition, time partition)
 * with seq <= upto into chunks of up to 4 MiB raw, compressed at zstd
 * level `level`, each merge in its own short write transaction; the
 * merged chunk takes the highest seq of its sources, so every event stays
 * at a seq <= upto (the exactness protocol's R). Only groups that gained
 * a chunk since the last pass are looked at (meta key compacted_seq).
 * go_on (may be NULL) is asked between chunks; false stops with
 * -ECANCELED (and no *errmsg): the merges written stay, and the next pass
 * looks at the same groups again. Adds to *st. 0 or a negative code with
 * *errmsg. */
int arch_compact(arch *a, int64_t upto, int level, bool (*go_on)(void *ud), void *ud,
                 arch_compact_stats *st, char **errmsg);

typedef struct {
    int64_t chunks, events;    /* dropped */
} arch_drop_stats;

/* Retention: deletes every chunk of stream with tpart < before and
 * seq <= upto, with the totals, in short transactions; go_on (may be
 * NULL) is asked between them (false: -ECANCELED). Adds to *st. */
int arch_drop_before(arch *a, const char *stream, int64_t before, int64_t upto,
                     bool (*go_on)(void *ud), void *ud, arch_drop_stats *st, char **errmsg);

/* Hands free pages back to the file system (PRAGMA incremental_vacuum, 64
 * pages per transaction; go_on as above), sets *freed_pages and raises
 * *longest_ms to its longest transaction. -ENOTSUP when the archive was
 * created without auto_vacuum=INCREMENTAL. */
int arch_vacuum(arch *a, bool (*go_on)(void *ud), void *ud, int64_t *freed_pages,
                double *longest_ms, char **errmsg);

/* A PASSIVE checkpoint: copies what it can of the WAL into the database
 * without waiting for anyone. Sets the WAL's frames and those copied
 * (either may be NULL). 0 or a negative errno. */
int arch_checkpoint(arch *a, int *wal_frames, int *done_frames);
/* The WAL size (pages) at which a commit on this handle checkpoints by
 * itself (sqlite3_wal_autocheckpoint; SQLite's default 1000). */
void arch_set_autocheckpoint(arch *a, int pages);
