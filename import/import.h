/* import.h - importing a file of history (JSON lines or CSV, plain, gzip or
 * zstd) into the archive: `lambdad import` and POST /v1/admin/import.
 *
 * Two passes over the file. The first reads it whole: the XXH3-128 hash of
 * its decompressed bytes (what identifies the file: the archive keeps one
 * import per stream and hash, see archive.h), the number of records, and
 * for CSV the type of each column (a number when every non-empty value of
 * the column is a JSON number). The second turns each record into a JSON
 * event, decodes it with the stream's decoder (derived fields included)
 * and adds it, or its reject with file and line, to an archive
 * transaction; every commit_records records a transaction is committed
 * with the import's progress, so a rerun after a crash resumes at the
 * first record not archived, and a rerun of a finished import archives
 * nothing. Where the transactions go is the sink's affair: the archive
 * directly, or the daemon's speed thread (which also applies them to the
 * live views, like Kafka events). One thread; an import reads nothing
 * shared but the immutable config.
 */
#pragma once
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "archive/archive.h"
#include "config/config.h"
#include "core/vtable.h"

typedef enum { IMPORT_JSONL, IMPORT_CSV } import_format;

/* "jsonl" (also "ndjson") or "csv". 0 or -EINVAL. */
int import_format_parse(const char *s, import_format *out);
/* The format a file name says: .jsonl, .ndjson or .json, .csv, also with
 * .gz, .zst or .zstd after. 0 or -EINVAL. */
int import_format_of_name(const char *name, import_format *out);
const char *import_format_name(import_format f);

/* Where the transactions go. */
typedef struct {
    void *ud;
    /* The import of (stream, hash), registered when new (arch_import_begin). */
    int (*begin)(void *ud, const char *stream, const char *hash, const char *name,
                 arch_import *out, char **errmsg);
    /* Commits t. stage (with views set): per view of the config, the
     * events of t applied to a table; the sink may take tables (setting
     * the entry to NULL). */
    int (*commit)(void *ud, arch_txn *t, vtable **stage, int64_t events, char **errmsg);
    bool views;   /* build the stage tables */
} import_sink;

/* The archive writer w itself (lambdad import with no daemon running;
 * the views see the events when the daemon next starts and replays the
 * archive). */
import_sink import_sink_archive(arch *w);

typedef struct {
    char hash[33];            /* XXH3-128 of the decompressed bytes, 32 hex digits */
    int64_t records;          /* records in the file (CSV: without the header) */
    int64_t imported;         /* events archived by this run */
    int64_t rejected;         /* records rejected by this run */
    int64_t skipped;          /* records archived by an earlier run */
    uint64_t data_bytes;      /* decompressed bytes */
} import_result;

typedef struct {
    const config *cfg;
    size_t stream_idx;
    import_format fmt;
    const char *name;         /* the file as rejects name it */
    int64_t commit_records;   /* records per transaction; 0: IMPORT_COMMIT_RECORDS */
    import_sink sink;
    /* Called now and then: pass 1 ("reading") or 2 ("importing"), file
     * bytes consumed and the file's size (0: unknown). May be NULL. */
    void (*progress)(void *ud, int pass, uint64_t done, uint64_t total, const import_result *r);
    void *progress_ud;
    const atomic_bool *stop;  /* set: stop after the current transaction; NULL: never */
} import_opts;

#define IMPORT_COMMIT_RECORDS 20000
#define IMPORT_MAX_RECORD ((size_t)16 << 20)   /* a longer line or CSV record is an error */

/* The reject reason of a CSV record whose field count is not the header's
 * (decoder rejects keep their own reasons). */
#define REJECT_INVALID_CSV "invalid_csv"

/* Imports the file open at fd (seekable; read from its current position)
 * into o->stream_idx. 0 and *res, or a negative code with *errmsg
 * (malloc'd): the file cannot be read or is not the format (a CSV without
 * a header, an unterminated quote, a record over IMPORT_MAX_RECORD), the
 * stream takes its time from Kafka, a commit failed, or -ECANCELED when
 * o->stop was set. What was committed before a failure stays, with its
 * progress: the next import of the file resumes after it. */
int import_run(const import_opts *o, int fd, import_result *res, char **errmsg);
