/* partial.h - a shard's part of a query's answer, as a peer sends it for
 * a fan-out (serving/ private; README "Running several instances").
 *
 * The rows of the query's result table before anything is rendered:
 * (answer bucket, group values) and each selected metric's exact state in
 * its canonical encoding (core/agg.h), so the instance that asked merges
 * them with its own rows exactly as it merges layers (a sum stays exact,
 * a sketch keeps its registers). Byte by byte, after the 4 bytes
 * "LDP" 0x01 (the format's version in the last byte):
 *
 *   u64      partial_layout_hash of the query on the peer's config
 *   varint   length of the peer's shard name, then its bytes
 *   svarint  watermark: batch_seq, batch_at, live_events, unreadable_events
 *   varint   number of rows, then per row:
 *              svarint bucket (epoch s; 0 for granularity=all)
 *              per group_by dimension: varint 0 (null) or length + 1, bytes
 *              per selected metric: its state's canonical encoding
 *   u64      checksum64 (core/checksum.h) of every byte before it
 *
 * TCP's own checksum lets corruptions through often enough at scale, and a
 * flipped bit in a state would be a wrong number, not an error.
 * Pure code on the calling thread; the encoder reads a table nobody
 * writes, the decoder writes the caller's table.
 */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "core/bytes.h"
#include "core/vtable.h"
#include "serving/query.h"
#include "serving/serving.h"

#define PARTIAL_CONTENT_TYPE "application/x-lambdad-partial"
#define PARTIAL_MAX_SHARD 64

/* What the rows mean: the view's name and granularity, the group_by
 * dimensions and the selected metrics (names, types, parameters) of q.
 * Two instances whose configs give the same hash for a query merge
 * their rows; others would mix different things. */
uint64_t partial_layout_hash(const query *q);

/* Appends q's result table t with the shard's name and watermark to w. */
void partial_encode(const query *q, const vtable *t, const char *shard,
                    const serving_watermark *wm, bytes_w *w);

typedef struct {
    char shard[PARTIAL_MAX_SHARD + 1];
    serving_watermark wm;
    size_t rows;
} partial_info;

/* Merges the rows of a partial answer for q into t (in q's layout) and
 * fills *info. 0; -EBADMSG with *why (static text) when the bytes are
 * not a partial answer of this query (malformed, damaged, another
 * version, or another view layout); -ENOMEM. Rows merged before a failure stay in t:
 * the caller drops t then. */
int partial_merge(const query *q, const void *body, size_t len, vtable *t, partial_info *info,
                  const char **why);
