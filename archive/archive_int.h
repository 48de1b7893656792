/* archive_int.h - the arch handle, shared by the files of archive/.
 *
 * One handle is one SQLite connection, used by one thread at a time (the
 * caller's duty, see archive.h), so nothing in it is locked.
 */
#pragma once
#include <sqlite3.h>
#include <zstd.h>

#include "archive/archive.h"
#include "archive/chunk.h"

/* 1: the first layout; 2: chunk checksums (chunk_data.checksum), the
 * totals in meta, table damaged_chunks (archive.c has the schema). */
#define ARCH_SCHEMA_VERSION 2

typedef struct dmg_file dmg_file;

struct arch {
    sqlite3 *db;
    char *path;
    char *wal_path;            /* path-wal, for file_bytes */
    bool readonly;
    int level;                 /* zstd level of new chunks */

    /* writer only: the commit path, prepared once */
    ZSTD_CCtx *cctx;
    uint8_t *zbuf;             /* compressed chunk, reused */
    size_t zcap;
    sqlite3_stmt *st_begin, *st_commit, *st_rollback;
    sqlite3_stmt *st_chunk, *st_data, *st_reject, *st_offset, *st_totals;

    sqlite3_stmt *st_get_offset;
    sqlite3_stmt *st_data_version;

    /* Running totals (file_bytes unused), valid as of data_version: they
     * are reloaded from the tables when another connection committed. */
    arch_stats tot;
    int64_t data_version;

    int version;               /* PRAGMA user_version as of open (or the upgrade) */
    double busy_since;         /* monotonic s: the lock wait in progress began (busy_wait) */
    dmg_file *dmg;             /* the damage registry of this path (damage.c) */
    char *note;                /* arch_open_note */
};

/* CREATE TABLE IF NOT EXISTS imports (imports.c), run by the writer at open. */
extern const char arch_sql_imports[];

/* The chunk queries of arch_scan (scan.c), for the test of their plans. */
extern const char arch_sql_scan_by_seq[], arch_sql_scan_by_tpart[];

/* ---- scan.c: reading one chunk back, for arch_scan and arch_verify ---- */

/* What a reader of chunks keeps across chunks: the data statement, the
 * zstd context and the buffer of the decompressed bytes. */
typedef struct {
    arch *a;
    sqlite3_stmt *data;        /* SELECT data, checksum FROM chunk_data WHERE seq = ?1 */
    ZSTD_DCtx *dctx;
    uint8_t *buf;
    size_t cap;
} chunk_loader;

/* The row columns every chunk query selects first, in this order (see
 * chunk_row_read). */
#define CHUNK_ROW_COLUMNS \
    "seq, part, tpart, first_offset, last_offset, n, min_ts_ms, max_ts_ms, raw_bytes," \
    " payload_bytes, codec"
enum { CHUNK_ROW_NCOLS = 11 };

int chunk_loader_init(chunk_loader *l, arch *a, char **errmsg);
void chunk_loader_release(chunk_loader *l);   /* accepts a zeroed one */
/* Fills h from the CHUNK_ROW_COLUMNS of st's current row (stream: h's
 * own, set by the caller). */
void chunk_row_read(sqlite3_stmt *st, chunk_header *h);
/* Reads and checks chunk h completely: its row's fields, its data, the
 * checksum (when stored: *checksummed), decompression, every event against
 * the row. 0 and *raw (h->raw_bytes bytes, valid until the next call or
 * until l->data is reset),
 * -EBADMSG and *why (static text) when the chunk is damaged, or another
 * negative code (SQLite, memory) with *errmsg. */
int chunk_load(chunk_loader *l, const chunk_header *h, const void **raw, bool *checksummed,
               const char **why, char **errmsg);

/* arch_scan over every seq, limited to the chunks of the Kafka partitions
 * parts[0..nparts) of stream (the others are skipped on their row, their
 * data unread); nothing when nparts is 0. For partition moves (move.c). */
int arch_scan_parts(arch *a, const char *stream, const int32_t *parts, size_t nparts,
                    int (*fn)(const arch_event *ev, void *ud),
                    int (*on_damage)(const arch_damage *d, void *ud), void *ud, char **errmsg);

/* ---- retain.c: deleting chunks (retention, partition drops) ----------- */

/* The statements that delete a chunk, its data and its share of the
 * totals; prepared per use (maintenance is rare). */
typedef struct {
    sqlite3_stmt *del_chunk, *del_data, *totals;
    int64_t last_seq;          /* the seq of the last chunk deleted */
} chunk_deleter;

int chunk_deleter_init(arch *a, chunk_deleter *d, char **errmsg);
void chunk_deleter_release(chunk_deleter *d);   /* accepts a zeroed one */
/* Inside the caller's open write transaction: deletes the chunks named by
 * the first up to CHUNK_DELETE_BATCH rows of sel (columns seq, n,
 * payload_bytes; sel is reset after), with their data, and takes them off
 * the stored totals. Adds what it deleted to *st and *payload (the handle's
 * totals are the caller's, after its COMMIT); *more when the batch was
 * full (run sel again). 0 or a negative code with *errmsg. */
enum { CHUNK_DELETE_BATCH = 512 };
int chunk_delete_rows(arch *a, chunk_deleter *d, sqlite3_stmt *sel, arch_drop_stats *st,
                      int64_t *payload, bool *more, char **errmsg);

/* Sets *errmsg (when errmsg is not NULL) to a malloc'd formatted text
 * (NULL if even that fails) and returns rc. */
int arch_fail(char **errmsg, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* arch_fail with "<what>: <SQLite's message>" and rc mapped to an errno. */
int arch_sqlfail(arch *a, char **errmsg, int rc, const char *what);
/* A negative errno for an SQLite result code. */
int arch_errno(int sqlite_rc);

/* Writer transactions (commit.c; also compact.c, retain.c): arch_step
 * steps a statement that returns no rows and resets it, 0 or the failure
 * as arch_sqlfail(what) (the message is taken before the reset, which may
 * replace it); arch_rollback ends the open transaction, if any. */
int arch_step(arch *a, sqlite3_stmt *st, const char *what, char **errmsg);
void arch_rollback(arch *a);
/* CLOCK_MONOTONIC in seconds (lock waits, transaction times). */
double arch_mono_s(void);

/* Appends one fact to a->note ("; "-separated). 0 or -ENOMEM. */
int arch_note(arch *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- damage.c: the process-wide registry of damaged chunks ---------- */

/* The registry of the archive at path, created when absent; it lives as
 * long as the process (an archive's damage is never forgotten). NULL when
 * out of memory. */
dmg_file *dmg_file_get(const char *path);
/* Records d (copied): sets d->known and d->found_at from what was known
 * before. 0 or -ENOMEM (then d is reported but not kept). */
int dmg_record(dmg_file *f, arch_damage *d);
/* Loads the damaged chunks stored in the archive by earlier runs into the
 * registry (schema version 2). 0 or a negative code. */
int dmg_load(arch *a, int64_t *count);
/* Writer, inside its open transaction: stores what the registry holds
 * that the archive does not yet. dmg_store_done() after COMMIT (ok) or
 * ROLLBACK (!ok) marks them stored or not. */
int dmg_store(arch *a, char **errmsg);
void dmg_store_done(arch *a, bool ok);
/* Whether the registry holds damage the archive has not stored yet. */
bool dmg_unstored(arch *a);
