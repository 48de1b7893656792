/* verify.c - arch_verify: checks a whole archive (lambdad-archive verify).
 *
 * Reads every chunk the way a scan does (chunk_load: checksum,
 * decompression, events against the row), then checks what a scan has no
 * need to: offsets strictly increasing (one Kafka message, one offset),
 * the row's min/max event times equal to the events' own, the payload
 * bytes, and each event's time partition under the archive's unit (meta
 * key "partition"). A chunk failing chunk_load is unreadable: scans skip
 * it. One failing only the extra checks is readable but inconsistent (a
 * batch run may put its events in the wrong partition). Then the stored
 * totals against the rows, and SQLite's own integrity check of every page.
 *
 * Reads only, in the caller's thread, on any handle (read-only is fine,
 * also while lambdad runs: each statement reads a consistent snapshot).
 * It does not record into the damage registry: that is the scans' record
 * of what the daemon's answers lack.
 */
#include "archive/archive_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/gran.h"

typedef struct {
    arch *a;
    int (*fn)(const arch_problem *p, void *ud);
    void *ud;
    arch_verify_summary *sum;
    bool has_unit;
    gran_t unit;
} verify_ctx;

static int problem(verify_ctx *v, const chunk_header *h, bool unreadable, const char *what)
{
    v->sum->problems++;
    arch_damage d = { 0 };
    if (h) {
        d = (arch_damage){
            .seq = h->seq, .stream = h->stream, .partition = (int32_t)h->part,
            .tpart = h->m.tpart, .first_offset = h->m.first_offset,
            .last_offset = h->m.last_offset, .events = h->m.n, .reason = what,
        };
        if (h->part < INT32_MIN || h->part > INT32_MAX)
            d.partition = -1;
    }
    arch_problem p = { .chunk = h ? &d : NULL, .unreadable = unreadable, .what = what };
    return v->fn(&p, v->ud);
}

/* The checks beyond chunk_load's, on a chunk that loaded: the first
 * inconsistency (static text), or NULL. */
static const char *check_events(const verify_ctx *v, const chunk_header *h, const void *raw)
{
    chunk_reader rd;
    chunk_event ev;
    chunk_reader_init(&rd, raw, (size_t)h->raw_bytes, &h->m);
    int64_t lo = INT64_MAX, hi = INT64_MIN, bytes = 0, prev = 0;
    for (int64_t i = 0; chunk_reader_next(&rd, &ev) > 0; i++) {
        if (i > 0 && ev.offset <= prev)
            return "offsets not strictly increasing";
        prev = ev.offset;
        lo = ev.ts_ms < lo ? ev.ts_ms : lo;
        hi = ev.ts_ms > hi ? ev.ts_ms : hi;
        bytes += (int64_t)ev.len;
        if (v->has_unit && gran_floor(v->unit, floor_div(ev.ts_ms, 1000)) != h->m.tpart)
            return "an event's time lies outside the chunk's time partition";
    }
    if (lo != h->m.min_ts || hi != h->m.max_ts)
        return "the row's min/max event time differs from the events'";
    if (bytes != h->payload_bytes)
        return "the row's payload_bytes differs from the events'";
    return NULL;
}

static int verify_chunks(verify_ctx *v, int64_t *payload, char **errmsg)
{
    chunk_loader ld;
    sqlite3_stmt *st = NULL;
    int r = chunk_loader_init(&ld, v->a, errmsg);
    if (r < 0)
        goto out;
    int rc = sqlite3_prepare_v2(v->a->db,
                                "SELECT " CHUNK_ROW_COLUMNS ", stream FROM chunks ORDER BY seq",
                                -1, &st, NULL);
    if (rc != SQLITE_OK) {
        r = arch_sqlfail(v->a, errmsg, rc, "verify: read chunks");
        goto out;
    }
    while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *stream = sqlite3_column_text(st, CHUNK_ROW_NCOLS);
        chunk_header h = { .stream = stream ? (const char *)stream : "" };
        chunk_row_read(st, &h);
        v->sum->chunks++;
        v->sum->events += h.m.n;
        *payload += h.payload_bytes;
        const void *raw;
        const char *why = NULL;
        bool checksummed;
        r = chunk_load(&ld, &h, &raw, &checksummed, &why, errmsg);
        v->sum->checksummed += checksummed;
        if (r == -EBADMSG) {
            v->sum->damaged_chunks++;
            v->sum->unreadable_events += h.m.n;
            r = problem(v, &h, true, why);
        } else if (r == 0 && (why = check_events(v, &h, raw))) {
            r = problem(v, &h, false, why);
        }
    }
    if (r == 0 && rc != SQLITE_DONE)
        r = arch_sqlfail(v->a, errmsg, rc, "verify: read chunks");
out:
    chunk_loader_release(&ld);
    sqlite3_finalize(st);
    return r;
}

/* The stored totals (version 2) against the rows just counted. */
static int verify_totals(verify_ctx *v, int64_t payload, char **errmsg)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(v->a->db,
                                "SELECT key, value FROM meta WHERE key IN ('total_events',"
                                " 'total_rejects', 'total_chunks', 'total_payload_bytes')"
                                " ORDER BY key", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return arch_sqlfail(v->a, errmsg, rc, "verify: read totals");
    int r = 0, found = 0;
    while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *key = (const char *)sqlite3_column_text(st, 0);
        int64_t stored = sqlite3_column_int64(st, 1), actual;
        found++;
        if (!strcmp(key, "total_events"))
            actual = v->sum->events;
        else if (!strcmp(key, "total_rejects"))
            actual = v->sum->rejects;
        else if (!strcmp(key, "total_chunks"))
            actual = v->sum->chunks;
        else
            actual = payload;
        if (stored != actual || sqlite3_column_type(st, 1) != SQLITE_INTEGER) {
            char what[160];
            snprintf(what, sizeof what, "stored totals: %s is %lld, the tables hold %lld", key,
                     (long long)stored, (long long)actual);
            r = problem(v, NULL, false, what);
        }
    }
    if (r == 0 && rc != SQLITE_DONE)
        r = arch_sqlfail(v->a, errmsg, rc, "verify: read totals");
    sqlite3_finalize(st);
    if (r == 0 && found < 4)
        r = problem(v, NULL, false, "stored totals: missing (the next lambdad start counts them)");
    return r;
}

/* SQLite's own check of every page and index: "ok", or one row per
 * problem. */
static int verify_sqlite(verify_ctx *v, char **errmsg)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(v->a->db, "PRAGMA integrity_check", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return arch_sqlfail(v->a, errmsg, rc, "verify: integrity check");
    int r = 0;
    while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *row = (const char *)sqlite3_column_text(st, 0);
        if (row && strcmp(row, "ok") != 0) {
            char what[512];
            snprintf(what, sizeof what, "SQLite integrity check: %s", row);
            r = problem(v, NULL, false, what);
        }
    }
    if (r == 0 && rc != SQLITE_DONE)
        r = arch_sqlfail(v->a, errmsg, rc, "verify: integrity check");
    sqlite3_finalize(st);
    return r;
}

int arch_verify(arch *a, int (*fn)(const arch_problem *p, void *ud), void *ud,
                arch_verify_summary *sum, char **errmsg)
{
    if (errmsg)
        *errmsg = NULL;
    *sum = (arch_verify_summary){ 0 };
    verify_ctx v = { .a = a, .fn = fn, .ud = ud, .sum = sum };
    char *unit = NULL;
    int r = arch_meta_get(a, "partition", &unit, errmsg);
    if (r == 0)
        v.has_unit = gran_parse(unit, &v.unit) == 0 && v.unit >= GRAN_HOUR && v.unit <= GRAN_MONTH;
    free(unit);
    if (r < 0 && r != -ENOENT)
        return r;
    if (r == 0 && !v.has_unit && (r = problem(&v, NULL, false, "meta: unknown partition unit")))
        return r;

    int64_t payload = 0;
    if ((r = verify_chunks(&v, &payload, errmsg)) != 0)
        return r;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(a->db, "SELECT count(*) FROM rejects", -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        sum->rejects = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK)
        return arch_sqlfail(a, errmsg, rc, "verify: count rejects");
    if (a->version >= 2 && (r = verify_totals(&v, payload, errmsg)) != 0)
        return r;
    return verify_sqlite(&v, errmsg);
}
