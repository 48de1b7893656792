/* txn.h - the in-memory archive transaction (private to archive/).
 *
 * arch_txn collects what one arch_commit() writes: chunk builders (one open
 * builder per (stream, partition, tpart), found through a small hash
 * table), rejects and next offsets. It belongs to the thread that fills and
 * commits it; no locks. arch_txn_reset() keeps the builders' buffers so a
 * steady stream of transactions does not reallocate.
 */
#pragma once
#include "archive/archive.h"
#include "archive/chunk.h"

typedef struct {
    char *topic;          /* one allocation: topic, reason, detail, raw */
    const char *reason, *detail;
    const void *raw;
    size_t len;
    int32_t part;
    int64_t offset;
    int64_t at_ms;        /* when it was rejected; 0: the commit's time */
} txn_reject;

typedef struct {
    char *topic;
    int32_t part;
    int64_t next;
} txn_offset;

/* The progress of an import stored with the transaction (imports.c). */
typedef struct {
    bool set;
    bool done;
    int64_t id, from_records, records, lines;
} txn_import;

struct arch_txn {
    chunk_builder *chunks;    /* in creation order; [0, nchunks) in use */
    size_t nchunks, ninit, capchunks;   /* ninit: entries holding buffers */
    uint32_t *slots;          /* open builder index + 1, 0 = empty */
    size_t nslots, nkeys;
    size_t last;              /* index of the builder used last */
    size_t nevents;

    txn_reject *rejects;
    size_t nrejects, caprejects;

    txn_offset *offsets;
    size_t noffsets, capoffsets;

    txn_import imp;
};

/* Gives the reject added last its original time (a partition's rejects
 * copied to another archive keep theirs, move.c). */
void txn_reject_set_time(arch_txn *t, int64_t at_ms);

/* imports.c: stores t->imp in arch_commit's open transaction; -ESTALE when
 * the stored progress is not t->imp.from_records. */
int arch_import_store(arch *a, const arch_txn *t, char **errmsg);
