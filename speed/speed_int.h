/* speed_int.h - private state of the speed layer, shared by speed.c (the
 * consumer loop, live tables) and assign.c (partition discovery and
 * assignment). Not for other folders. */
#pragma once
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "core/event.h"
#include "core/log.h"
#include "core/vstate.h"
#include "speed/speed.h"

/* imports.c: an import's request to the speed thread. */
typedef struct speed_call speed_call;

/* One owned Kafka partition. Written by the speed thread; next_offset and
 * high_watermark are also read by other threads under parts_lock. */
typedef struct {
    size_t stream_idx;
    int32_t partition;
    int64_t next_offset;      /* next offset archived (as of the last commit); -1 = none */
    int64_t taken_offset;     /* speed thread: next offset to take; -1 = any */
    int64_t high_watermark;   /* -1 = unknown */
    int64_t lost_offsets;     /* offsets Kafka no longer held when we needed them */
    bool dirty;               /* next_offset changed in the current transaction */
} speed_part;

struct speed {
    const config *cfg;
    arch *w;                  /* archive writer: speed thread only (recovery before) */
    rd_kafka_t *rk;
    rd_kafka_queue_t *queue;  /* the consumer queue */

    pthread_t thread;
    bool thread_started;
    atomic_bool stop_requested;
    atomic_bool consuming;
    atomic_bool failed;       /* a fatal error stopped the thread */

    vstate *vs;               /* the live tables L live there (borrowed) */

    /* Speed thread only: the transaction being built. */
    arch_txn *txn;
    vtable **stage;           /* per view: events of the open transaction */
    int64_t stage_events;
    int64_t txn_started_ms;   /* monotonic; 0 = empty transaction */
    event_decoder *dec;
    field_value *vals;        /* room for the widest stream */

    /* Owned partitions: array grown by assign.c, guarded by parts_lock for
     * readers on other threads. */
    pthread_mutex_t parts_lock;
    speed_part *parts;
    size_t nparts, parts_cap;
    int64_t next_metadata_ms;
    char **topic_problem;     /* per stream: last metadata problem logged */

    /* Figures for status (written by the speed thread). */
    atomic_llong consumed, commits, archived_events, rejects, archive_bytes;
    atomic_llong archive_chunks;
    atomic_llong last_loop_ms;     /* monotonic: the loop's heartbeat (watchdog) */
    atomic_llong last_contact_ms;  /* monotonic: last answer from a broker */
    atomic_llong last_message_ms;  /* monotonic: last message consumed */
    atomic_llong lag;              /* sum over partitions, as of the last refresh */
    atomic_llong newest_event_ms;  /* newest event time archived (epoch ms) */
    int64_t next_watermarks_ms;    /* speed thread: next lag refresh */
    /* Speed thread: rejects of the open transaction by stream and reason,
     * counted in metrics after COMMIT. */
    int64_t (*reject_tally)[SPEED_REJECT_REASONS];
    /* Speed thread: retention's cuts as of cuts_at (config_retention_cuts):
     * events of an older archive partition are rejected (reason
     * retention), those of an older view partition not applied to it. */
    int64_t arch_cut, *view_cut, cuts_at;
    int64_t *stream_newest_ms;     /* speed thread: per stream, newest event time taken */

    /* The archive refusing writes (disk full, I/O error): set by the speed
     * thread when a commit fails, cleared when one succeeds; under err_lock. */
    pthread_mutex_t err_lock;
    char write_error[256];
    int64_t write_error_since;     /* epoch s of the first failure in a row; 0 = writing fine */
    atomic_llong write_failures;   /* failed commits since start */

    /* For /v1/status (the web UI's status strip), under err_lock: rejects
     * by reason committed since start, and the latest rejects taken, the
     * newest at latest[(nlatest - 1) % SPEED_LATEST_REJECTS]. */
    int64_t rejects_by_reason[SPEED_REJECT_REASONS];
    speed_reject latest[SPEED_LATEST_REJECTS];
    uint64_t nlatest;

    /* Imports handed to the speed thread (imports.c), under call_lock. */
    pthread_mutex_t call_lock;
    pthread_cond_t call_cond;
    speed_call *call;              /* waiting to be done; NULL: none */
    bool calls_open;               /* the speed thread takes calls */
};

/* Speed thread: does the pending call, if any. */
void speed_serve_call(speed *s);
/* Speed thread: starts (true) or stops (false) taking calls; stopping
 * fails a pending one. */
void speed_calls_open(speed *s, bool open);

/* Speed thread, after a transaction t committed (Kafka's or an
 * import's): the status figures. */
void speed_count_commit(speed *s, const arch_txn *t);

int64_t speed_now_ms(void);
/* Looks up partitions of every stream's topic in the cluster metadata and
 * assigns the new ones (at their archived offset, or per kafka.start).
 * Speed thread. Logs its own problems (topic missing, metadata timeout). */
void speed_refresh_assignment(speed *s, int timeout_ms);
/* The partition entry, or NULL if not owned. */
speed_part *speed_find_part(speed *s, size_t stream_idx, int32_t partition);
