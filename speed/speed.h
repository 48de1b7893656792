/* speed.h - the speed layer: the Kafka consumer loop and the live views.
 *
 * The speed thread owns the archive writer. It reads messages of every
 * partition of the configured topics (assigned explicitly, started at the
 * offsets stored in the archive), decodes them, appends them to the archive
 * in one transaction every commit interval, and only after COMMIT applies
 * them to the live tables (runs of core/vstate.h, which queries read from
 * snapshots). Other threads read its figures: speed_get_stats(),
 * speed_get_partitions().
 */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include "config/config.h"
#include "archive/archive.h"
#include "core/vstate.h"

typedef struct speed speed;

/* Checks what config_load cannot: that librdkafka takes kafka.brokers,
 * kafka.group_id and every kafka.options entry (on a scratch
 * configuration; nothing is contacted). 0, or -EINVAL with each refusal
 * appended to errs under its JSON path, or -ENOMEM. */
int speed_check_config(const config *cfg, config_errors *errs);

/* Creates the speed layer for cfg and the views' state vs (both borrowed;
 * they must outlive it). Takes ownership of the archive writer w, also on
 * failure. Does not contact Kafka yet. */
int speed_new(const config *cfg, vstate *vs, arch *w, speed **out, char **errmsg);
/* Rebuilds the live tables from every archived event with seq > after_seq
 * (the persisted batch views cover the rest; reads through the writer
 * connection; call before speed_start). */
int speed_recover(speed *s, int64_t after_seq, char **errmsg);
/* Creates the Kafka consumer and starts the speed thread. */
int speed_start(speed *s, char **errmsg);
/* Asks the thread to finish its current transaction and stop; joins it. */
void speed_stop(speed *s);
void speed_free(speed *s);   /* stops first if running; accepts NULL */
/* true when a fatal error (out of memory) stopped the speed thread; the
 * daemon then exits and a restart recovers from the archive. */
bool speed_failed(const speed *s);

/* Imports (import/import.h's sink in the daemon), from any thread: the
 * speed thread, which owns the archive writer, does each between two of
 * its transactions while the caller waits. -ECANCELED (with *errmsg)
 * when it is not running. */
int speed_import_begin(speed *s, const char *stream, const char *hash, const char *name,
                       arch_import *out, char **errmsg);
/* Commits t, then applies stage (per view: the events of t; the tables
 * are taken) to the live views like a Kafka transaction. */
int speed_import_commit(speed *s, arch_txn *t, vtable **stage, int64_t events, char **errmsg);

typedef struct {
    int32_t partition;
    int64_t next_offset;   /* next offset to archive */
    int64_t high_watermark;/* Kafka's end of log, -1 unknown */
    int64_t lost_offsets;  /* offsets gone from Kafka before they were archived (since start) */
} speed_partition;

typedef struct {
    bool consuming;            /* recovery done, consumer assigned */
    int64_t consumed;          /* messages read from Kafka since start */
    int64_t archived_events;   /* accepted events in the archive (all time) */
    int64_t rejects;           /* rejected messages in the archive (all time) */
    int64_t commits;           /* archive transactions since start */
    int64_t archive_bytes;     /* database + WAL on disk */
    int64_t archive_chunks;    /* chunk rows in the archive (compaction merges them) */
    int64_t lag;               /* messages in Kafka not archived yet, all partitions */
    int64_t newest_event_ms;   /* newest event time archived since start (epoch ms), 0 = none */
    int64_t since_loop_ms;     /* since the speed thread's loop last turned */
    int64_t since_contact_ms;  /* since a broker last answered */
    int64_t since_message_ms;  /* since the last message was consumed */
    /* Archive writes failing (disk full, I/O error): the error of the last
     * failed commit and since when commits fail ("" and 0 while they work;
     * ingestion pauses meanwhile and resumes by itself). */
    char write_error[256];
    int64_t write_error_since;      /* epoch s */
    int64_t write_failures;         /* failed commits since start */
} speed_stats;

void speed_get_stats(speed *s, speed_stats *st);

/* Rejects for /v1/status: by reason since start (in speed_reject_reasons'
 * order), and the latest ones with their detail and the start of their
 * bytes (newest first; since start, so that status never reads the
 * archive). */
#define SPEED_REJECT_REASONS 5
#define SPEED_LATEST_REJECTS 5
typedef struct {
    char topic[128];
    int32_t partition;
    int64_t offset;
    const char *reason;        /* static */
    char detail[160];
    char payload[200];         /* the first bytes, NUL-terminated (may cut a character) */
    size_t payload_len;        /* the whole payload's length */
} speed_reject;
extern const char *const speed_reject_reasons[SPEED_REJECT_REASONS];
void speed_get_rejects(speed *s, int64_t by_reason[SPEED_REJECT_REASONS],
                       speed_reject latest[SPEED_LATEST_REJECTS], size_t *nlatest);

/* Per-partition positions of topic: fills up to max entries, returns the
 * count. Any thread. */
size_t speed_get_partitions(speed *s, const char *topic, speed_partition *out, size_t max);
