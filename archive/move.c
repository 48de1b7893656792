/* move.c - moving Kafka partitions from one archive to another
 * (lambdad-archive extract and drop; README "Moving a partition to a new
 * instance").
 *
 * A partition's history is its chunks (kept by stream and partition), its
 * rejects and its next offset (kept by topic and partition). Which streams
 * read a topic is recorded in meta ("topic.<stream>", written by the
 * daemon at every start), so a partition of topic web is the chunks of
 * the streams recorded for web with that partition number.
 *
 * arch_extract reads the source in one read transaction (a snapshot: the
 * daemon may go on committing) and writes the destination through the
 * commit path (arch_txn, arch_commit): fresh seqs, new checksums and the
 * totals come from the same code as the daemon's own commits. Each source
 * chunk is checked completely before its events are copied (arch_scan);
 * a damaged one stops the copy. Destination seqs follow the source's seq
 * order, so a partition's events keep their offset order within every
 * (stream, partition, time partition).
 *
 * arch_drop_parts deletes in one write transaction: a partition is either
 * still whole or gone, never half dropped (the caller holds the archive
 * lock; nothing else writes). Runs on the caller's thread.
 */
#include "archive/archive_int.h"
#include "archive/txn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/jbuf.h"
#include "core/strutil.h"

#define TOPIC_KEY "topic."
/* events per destination transaction (the daemon commits up to 100000) */
#define EXTRACT_BATCH 50000

int arch_record_stream_topic(arch *a, const char *stream, const char *topic, char **errmsg)
{
    if (errmsg)
        *errmsg = NULL;
    char *key = str_printf(TOPIC_KEY "%s", stream);
    if (!key)
        return arch_fail(errmsg, -ENOMEM, "out of memory");
    char *old = NULL;
    int r = arch_meta_get(a, key, &old, errmsg);
    if (r == 0 && strcmp(old, topic) == 0)
        r = 1;   /* already recorded */
    else if (r == 0 || r == -ENOENT)
        r = arch_meta_set(a, key, topic, errmsg);
    free(old);
    free(key);
    return r < 0 ? r : 0;
}

/* ---- which streams read a topic ---------------------------------------- */

typedef struct {
    char **streams, **topics;  /* recorded pairs */
    size_t n;
} topic_map;

static void topic_map_free(topic_map *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->streams[i]);
        free(m->topics[i]);
    }
    free(m->streams);
    free(m->topics);
    *m = (topic_map){0};
}

static int topic_map_load(arch *a, topic_map *m, char **errmsg)
{
    *m = (topic_map){0};
    sqlite3_stmt *st;
    /* the keys of the prefix, by the meta table's primary key */
    int rc = sqlite3_prepare_v2(a->db, "SELECT substr(key, 7), value FROM meta"
                                " WHERE key >= 'topic.' AND key < 'topic/' ORDER BY key",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return arch_sqlfail(a, errmsg, rc, "read the streams' topics");
    int r = 0;
    size_t cap = 0;
    while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (m->n == cap) {
            cap = cap ? 2 * cap : 8;
            char **s = realloc(m->streams, cap * sizeof *s);
            if (s)
                m->streams = s;
            char **t = s ? realloc(m->topics, cap * sizeof *t) : NULL;
            if (t)
                m->topics = t;
            if (!s || !t) {
                r = arch_fail(errmsg, -ENOMEM, "out of memory");
                break;
            }
        }
        const char *sv = (const char *)sqlite3_column_text(st, 0);
        const char *tv = (const char *)sqlite3_column_text(st, 1);
        m->streams[m->n] = strdup(sv ? sv : "");
        m->topics[m->n] = strdup(tv ? tv : "");
        m->n++;
        if (!m->streams[m->n - 1] || !m->topics[m->n - 1])
            r = arch_fail(errmsg, -ENOMEM, "out of memory");
    }
    if (r == 0 && rc != SQLITE_DONE)
        r = arch_sqlfail(a, errmsg, rc, "read the streams' topics");
    sqlite3_finalize(st);
    if (r < 0)
        topic_map_free(m);
    return r;
}

static bool topic_map_has(const topic_map *m, const char *stream)
{
    for (size_t i = 0; i < m->n; i++)
        if (!strcmp(m->streams[i], stream))
            return true;
    return false;
}

/* Whether stream has Kafka events (imported ones have partitions < 0). */
static int has_kafka_events(arch *a, const char *stream, bool *yes, char **errmsg)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(a->db, "SELECT 1 FROM chunks WHERE stream = ?1 AND part >= 0"
                                " LIMIT 1", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return arch_sqlfail(a, errmsg, rc, "list streams");
    sqlite3_bind_text(st, 1, stream, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    *yes = rc == SQLITE_ROW;
    int r = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : arch_sqlfail(a, errmsg, rc, "list streams");
    sqlite3_finalize(st);
    return r;
}

/* Every stream with Kafka events must have its topic recorded: otherwise
 * its chunks could be any topic's. The streams come from the index; only
 * one without a record has its chunks looked at. */
static int check_streams_recorded(arch *a, const topic_map *m, char **errmsg)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(a->db, "SELECT DISTINCT stream FROM chunks ORDER BY stream", -1,
                                &st, NULL);
    if (rc != SQLITE_OK)
        return arch_sqlfail(a, errmsg, rc, "list streams");
    int r = 0;
    while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *s = (const char *)sqlite3_column_text(st, 0);
        bool kafka = false;
        if (!s || topic_map_has(m, s) || (r = has_kafka_events(a, s, &kafka, errmsg)) < 0 ||
            !kafka)
            continue;
        r = arch_fail(errmsg, -ENOKEY,
                      "archive %s does not record which Kafka topic stream '%s' reads (it "
                      "was last written by an older lambdad): start this lambdad on it "
                      "once, then run this again", a->path, s);
    }
    if (r == 0 && rc != SQLITE_DONE)
        r = arch_sqlfail(a, errmsg, rc, "list streams");
    sqlite3_finalize(st);
    return r;
}

/* "web:0,1,2,3; clicks:0": the partitions a holds, for error messages. */
static char *held_partitions(arch *a)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(a->db, "SELECT topic, part FROM offsets WHERE part >= 0"
                           " ORDER BY topic, part", -1, &st, NULL) != SQLITE_OK)
        return NULL;
    jbuf b;
    jb_init(&b);
    char *prev = NULL;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        t = t ? t : "";
        if (!prev || strcmp(prev, t) != 0) {
            if (prev)
                jb_lit(&b, "; ");
            jb_lit(&b, t);
            jb_lit(&b, ":");
            free(prev);
            prev = strdup(t);
        } else {
            jb_lit(&b, ",");
        }
        jb_int(&b, sqlite3_column_int64(st, 1));
    }
    sqlite3_finalize(st);
    free(prev);
    if (!b.len)
        jb_lit(&b, "no Kafka partition");
    return jb_take(&b, NULL);
}

int arch_parts_check(arch *a, const arch_part *parts, size_t n, char **errmsg)
{
    if (errmsg)
        *errmsg = NULL;
    for (size_t i = 0; i < n; i++) {
        int64_t next;
        int r = arch_get_offset(a, parts[i].topic, parts[i].partition, &next);
        if (r == -ENOENT) {
            char *held = held_partitions(a);
            r = arch_fail(errmsg, -ENOENT, "archive %s holds no partition %s:%d (it holds %s)",
                          a->path, parts[i].topic, (int)parts[i].partition,
                          held ? held : "?");
            free(held);
            return r;
        }
        if (r < 0)
            return arch_fail(errmsg, r, "archive %s: cannot read the offset of %s:%d: %s",
                             a->path, parts[i].topic, (int)parts[i].partition,
                             sqlite3_errmsg(a->db));
    }
    topic_map m;
    int r = topic_map_load(a, &m, errmsg);
    if (r == 0)
        r = check_streams_recorded(a, &m, errmsg);
    topic_map_free(&m);
    return r;
}

/* The partitions of parts that belong to topic: into out (room for n). */
static size_t parts_of(const arch_part *parts, size_t n, const char *topic, int32_t *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(parts[i].topic, topic))
            out[k++] = parts[i].partition;
    return k;
}

/* ---- extract ------------------------------------------------------------ */

typedef struct {
    arch *dst;
    arch_txn *t;
    const char *stream;
    char *msg;                 /* a failure's text (malloc'd) */
} extract_ctx;

static int flush(extract_ctx *x)
{
    int r = arch_commit(x->dst, x->t, NULL, &x->msg);
    arch_txn_reset(x->t);
    return r;
}

static int copy_event(const arch_event *ev, void *ud)
{
    extract_ctx *x = ud;
    int r = arch_txn_add_event(x->t, x->stream, ev->partition, ev->tpart, ev->offset, ev->ts_ms,
                               ev->payload, ev->len);
    if (r < 0)
        return arch_fail(&x->msg, r, "out of memory");
    return arch_txn_events(x->t) >= EXTRACT_BATCH ? flush(x) : 0;
}

static int refuse_damage(const arch_damage *d, void *ud)
{
    extract_ctx *x = ud;
    char what[512];
    return arch_fail(&x->msg, -EBADMSG, "%s: its events cannot be copied (lambdad-archive "
                     "verify lists every damaged chunk)",
                     arch_damage_describe(d, what, sizeof what));
}

static int copy_rejects(arch *src, extract_ctx *x, const arch_part *p)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(src->db, "SELECT kafka_offset, reason, detail, raw, at_ms"
                                " FROM rejects WHERE topic = ?1 AND part = ?2 ORDER BY id",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return arch_sqlfail(src, &x->msg, rc, "read rejects");
    sqlite3_bind_text(st, 1, p->topic, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, p->partition);
    int r = 0;
    while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const void *raw = sqlite3_column_blob(st, 3);   /* before _bytes */
        size_t len = (size_t)sqlite3_column_bytes(st, 3);
        r = arch_txn_add_reject(x->t, p->topic, p->partition, sqlite3_column_int64(st, 0),
                                (const char *)sqlite3_column_text(st, 1),
                                (const char *)sqlite3_column_text(st, 2), raw ? raw : "", len);
        if (r < 0) {
            r = arch_fail(&x->msg, r, "out of memory");
            break;
        }
        txn_reject_set_time(x->t, sqlite3_column_int64(st, 4));
        if (arch_txn_rejects(x->t) >= EXTRACT_BATCH)
            r = flush(x);
    }
    if (r == 0 && rc != SQLITE_DONE)
        r = arch_sqlfail(src, &x->msg, rc, "read rejects");
    sqlite3_finalize(st);
    return r;
}

/* The archive-wide settings dst needs from src: the time-partition unit
 * (chunks are cut by it) and the topic records of the streams copied. */
static int copy_meta(arch *src, extract_ctx *x, const topic_map *m, const arch_part *parts,
                     size_t n)
{
    char *unit = NULL;
    int r = arch_meta_get(src, "partition", &unit, &x->msg);
    if (r == 0)
        r = arch_meta_set(x->dst, "partition", unit, &x->msg);
    free(unit);
    if (r < 0 && r != -ENOENT)
        return r;
    for (size_t i = 0; i < m->n; i++)
        for (size_t j = 0; j < n; j++)
            if (!strcmp(m->topics[i], parts[j].topic)) {
                if ((r = arch_record_stream_topic(x->dst, m->streams[i], m->topics[i],
                                                  &x->msg)) < 0)
                    return r;
                break;
            }
    return 0;
}

static int extract_all(arch *src, extract_ctx *x, const topic_map *m, const arch_part *parts,
                       size_t n, int32_t *sel)
{
    int r = copy_meta(src, x, m, parts, n);
    /* a stream at a time, its partitions' chunks in seq order */
    for (size_t i = 0; r == 0 && i < m->n; i++) {
        size_t k = parts_of(parts, n, m->topics[i], sel);
        x->stream = m->streams[i];
        char *msg = NULL;
        r = arch_scan_parts(src, m->streams[i], sel, k, copy_event, refuse_damage, x, &msg);
        if (r < 0 && !x->msg) {
            x->msg = msg;
            msg = NULL;
        }
        free(msg);
    }
    for (size_t i = 0; r == 0 && i < n; i++) {
        const arch_part *p = &parts[i];
        int64_t next;
        if ((r = copy_rejects(src, x, p)) < 0)
            break;
        if ((r = arch_get_offset(src, p->topic, p->partition, &next)) < 0)
            r = arch_fail(&x->msg, r, "cannot read the offset of %s:%d: %s", p->topic,
                          (int)p->partition, sqlite3_errmsg(src->db));
        else if ((r = arch_txn_set_offset(x->t, p->topic, p->partition, next)) < 0)
            r = arch_fail(&x->msg, r, "out of memory");
    }
    return r == 0 ? flush(x) : r;
}

int arch_extract(arch *src, arch *dst, const arch_part *parts, size_t n, arch_move_stats *st,
                 char **errmsg)
{
    if (errmsg)
        *errmsg = NULL;
    *st = (arch_move_stats){0};
    arch_stats before;
    int r = arch_get_stats(dst, &before);
    if (r < 0)
        return arch_fail(errmsg, r, "archive %s: cannot read its totals", dst->path);
    if (before.chunks || before.rejects || before.last_seq)
        return arch_fail(errmsg, -EEXIST, "archive %s is not empty", dst->path);
    /* one read transaction for everything read from src: a snapshot */
    int rc = sqlite3_exec(src->db, "BEGIN", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return arch_sqlfail(src, errmsg, rc, "begin reading");
    extract_ctx x = { .dst = dst, .t = arch_txn_new() };
    topic_map m = {0};
    int32_t *sel = calloc(n ? n : 1, sizeof *sel);
    if (!x.t || !sel)
        r = arch_fail(errmsg, -ENOMEM, "out of memory");
    else if ((r = arch_parts_check(src, parts, n, errmsg)) == 0 &&
             (r = topic_map_load(src, &m, errmsg)) == 0)
        r = extract_all(src, &x, &m, parts, n, sel);
    if (r < 0 && errmsg && !*errmsg) {
        *errmsg = x.msg;
        x.msg = NULL;
    }
    sqlite3_exec(src->db, "COMMIT", NULL, NULL, NULL);   /* ends the read */
    free(x.msg);
    free(sel);
    topic_map_free(&m);
    arch_txn_free(x.t);
    arch_stats after;
    if (r == 0 && (r = arch_get_stats(dst, &after)) < 0)
        return arch_fail(errmsg, r, "archive %s: cannot read its totals", dst->path);
    if (r == 0)
        *st = (arch_move_stats){ .chunks = after.chunks, .events = after.events,
                                 .rejects = after.rejects, .offsets = (int64_t)n };
    return r;
}

/* ---- drop --------------------------------------------------------------- */

/* Runs a DELETE (or UPDATE) with topic-or-stream ?1 and partition ?2;
 * *changed: the rows it changed. */
static int delete_rows(arch *a, const char *sql, const char *key, int32_t part,
                       int64_t *changed, char **errmsg)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(a->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return arch_sqlfail(a, errmsg, rc, "drop partition");
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, part);
    int r = arch_step(a, st, "drop partition", errmsg);
    sqlite3_finalize(st);
    if (r == 0)
        *changed += sqlite3_changes(a->db);
    return r;
}

static int drop_stream_part(arch *a, chunk_deleter *d, const char *stream, int32_t part,
                            arch_move_stats *st, int64_t *payload, char **errmsg)
{
    /* in seq (rowid) order from the last batch's end: no index has the
     * partition, and each batch starting over would read the whole table */
    sqlite3_stmt *sel;
    int rc = sqlite3_prepare_v2(a->db, "SELECT seq, n, payload_bytes FROM chunks"
                                " WHERE seq > ?4 AND stream = ?1 AND part = ?2"
                                " ORDER BY seq LIMIT ?3", -1, &sel, NULL);
    if (rc != SQLITE_OK)
        return arch_sqlfail(a, errmsg, rc, "drop partition");
    sqlite3_bind_text(sel, 1, stream, -1, SQLITE_STATIC);
    sqlite3_bind_int(sel, 2, part);
    sqlite3_bind_int(sel, 3, CHUNK_DELETE_BATCH);
    d->last_seq = 0;
    arch_drop_stats ds = {0};
    int r = 0;
    for (bool more = true; r == 0 && more;) {
        sqlite3_bind_int64(sel, 4, d->last_seq);
        r = chunk_delete_rows(a, d, sel, &ds, payload, &more, errmsg);
    }
    sqlite3_finalize(sel);
    st->chunks += ds.chunks;
    st->events += ds.events;
    return r < 0 ? r : delete_rows(a, "DELETE FROM damaged_chunks WHERE stream = ?1 AND part = ?2",
                                   stream, part, &st->damage_records, errmsg);
}

static int drop_all(arch *a, const topic_map *m, const arch_part *parts, size_t n,
                    arch_move_stats *st, int64_t *payload, char **errmsg)
{
    chunk_deleter d;
    int r = chunk_deleter_init(a, &d, errmsg);
    for (size_t i = 0; r == 0 && i < n; i++) {
        for (size_t j = 0; r == 0 && j < m->n; j++)
            if (!strcmp(m->topics[j], parts[i].topic))
                r = drop_stream_part(a, &d, m->streams[j], parts[i].partition, st, payload,
                                     errmsg);
        if (r == 0)
            r = delete_rows(a, "DELETE FROM rejects WHERE topic = ?1 AND part = ?2",
                            parts[i].topic, parts[i].partition, &st->rejects, errmsg);
        if (r == 0)
            r = delete_rows(a, "DELETE FROM offsets WHERE topic = ?1 AND part = ?2",
                            parts[i].topic, parts[i].partition, &st->offsets, errmsg);
    }
    chunk_deleter_release(&d);
    if (r < 0 || !st->rejects)
        return r;
    sqlite3_stmt *tot;
    int rc = sqlite3_prepare_v2(a->db, "UPDATE meta SET value = value - ?1"
                                " WHERE key = 'total_rejects'", -1, &tot, NULL);
    if (rc != SQLITE_OK)
        return arch_sqlfail(a, errmsg, rc, "update totals");
    sqlite3_bind_int64(tot, 1, st->rejects);
    r = arch_step(a, tot, "update totals", errmsg);
    sqlite3_finalize(tot);
    return r;
}

int arch_drop_parts(arch *a, const arch_part *parts, size_t n, arch_move_stats *st,
                    char **errmsg)
{
    if (errmsg)
        *errmsg = NULL;
    *st = (arch_move_stats){0};
    if (a->readonly)
        return arch_fail(errmsg, -EROFS, "archive %s is open read-only", a->path);
    int r = arch_step(a, a->st_begin, "drop partition: begin", errmsg);
    if (r < 0)
        return r;
    topic_map m = {0};
    int64_t payload = 0;
    if ((r = arch_parts_check(a, parts, n, errmsg)) == 0 &&
        (r = topic_map_load(a, &m, errmsg)) == 0 &&
        (r = drop_all(a, &m, parts, n, st, &payload, errmsg)) == 0)
        r = arch_step(a, a->st_commit, "drop partition: commit", errmsg);
    topic_map_free(&m);
    if (r < 0) {
        arch_rollback(a);
        *st = (arch_move_stats){0};
        return r;
    }
    a->tot.chunks -= st->chunks;
    a->tot.events -= st->events;
    a->tot.payload_bytes -= payload;
    a->tot.rejects -= st->rejects;
    return 0;
}
