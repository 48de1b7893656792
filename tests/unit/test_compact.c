/* test_compact.c - archive compaction and retention: merges keep every
 * event, offset, time and payload, keep seqs at or below R, leave damaged
 * chunks and chunks above R alone; a pass stopped halfway loses nothing;
 * retention drops exactly the time partitions asked for; the totals always equal the rows (arch_verify);
 * vacuum gives the pages back.
 *
 * The expectation is a model kept by the test itself: every event it
 * committed, with the seq range it was committed in.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive/archive.h"
#include "tests/unit/check.h"
#include "tests/unit/xorshift.h"

static char tmpdir[64], dbpath[128];

typedef struct {
    int stream;          /* 0 or 1 */
    int32_t part;
    int64_t offset, ts_ms, tpart, seq;
    char payload[48];
    size_t len;
    bool seen;
} mev;

static mev *model;
static size_t nmodel, capmodel;
static const char *streams[2] = { "pv", "clicks" };
static int64_t next_off[2][3];

enum { DAY = 86400, T0 = 1763856000 };   /* 2025-11-23T00:00:00Z */

/* One commit: n events spread over streams, partitions and 3 days. */
static int64_t commit_some(arch *a, arch_txn *t, int n)
{
    arch_txn_reset(t);
    for (int i = 0; i < n; i++) {
        if (nmodel == capmodel) {
            capmodel = capmodel ? capmodel * 2 : 1024;
            model = realloc(model, capmodel * sizeof *model);
        }
        mev *e = &model[nmodel++];
        memset(e, 0, sizeof *e);
        e->stream = (int)(next_rand() % 2);
        e->part = (int32_t)(next_rand() % 3);
        e->offset = next_off[e->stream][e->part]++;
        int day = (int)(next_rand() % 3);
        e->tpart = T0 + (int64_t)day * DAY;
        e->ts_ms = e->tpart * 1000 + (int64_t)(next_rand() % (DAY * 1000));
        e->len = (size_t)snprintf(e->payload, sizeof e->payload,
                                  "{\"ts\":%lld,\"page\":\"/p%d\"}",
                                  (long long)(e->ts_ms / 1000), (int)(next_rand() % 7));
        CHECK_INT(arch_txn_add_event(t, streams[e->stream], e->part, e->tpart, e->offset,
                                     e->ts_ms, e->payload, e->len), 0);
    }
    for (int s = 0; s < 2; s++)
        for (int p = 0; p < 3; p++)
            arch_txn_set_offset(t, streams[s], p, next_off[s][p]);
    int64_t last = 0;
    char *err = NULL;
    CHECK_INT(arch_commit(a, t, &last, &err), 0);
    free(err);
    /* each event's seq is read back by record_seqs */
    return last;
}

static int cmp_key(int s, int32_t p, int64_t off, const mev *e)
{
    if (s != e->stream)
        return s < e->stream ? -1 : 1;
    if (p != e->part)
        return p < e->part ? -1 : 1;
    return off < e->offset ? -1 : off > e->offset;
}

static int cmp_mev(const void *x, const void *y)
{
    const mev *a = x;
    return cmp_key(a->stream, a->part, a->offset, y);
}

typedef struct {
    int stream;
    int64_t R;             /* events at or below R must still be <= R; above, unchanged */
    int64_t found, wrong;
    bool record;           /* only note each event's seq in the model */
} scan_chk;

static int check_event(const arch_event *ev, void *ud)
{
    scan_chk *c = ud;
    mev key = { .stream = c->stream, .part = ev->partition, .offset = ev->offset };
    mev *e = bsearch(&key, model, nmodel, sizeof *model, cmp_mev);
    c->found++;
    if (!e || e->seen || e->ts_ms != ev->ts_ms || e->tpart != ev->tpart || e->len != ev->len ||
        memcmp(e->payload, ev->payload, ev->len) != 0) {
        c->wrong++;
        return 0;
    }
    e->seen = true;
    if (c->record) {
        e->seq = ev->seq;
        return 0;
    }
    /* a seq above R is the commit's own; at or below R it may be any seq
     * of the merged run, but never above R */
    if (e->seq > c->R ? ev->seq != e->seq : ev->seq > c->R)
        c->wrong++;
    return 0;
}

/* Reads both streams through check_event (settings from proto), each
 * model event marked seen at most once; returns the events read. */
static int64_t scan_both(arch *a, scan_chk proto)
{
    for (size_t i = 0; i < nmodel; i++)
        model[i].seen = false;
    int64_t found = 0;
    for (int s = 0; s < 2; s++) {
        scan_chk c = proto;
        c.stream = s;
        char *err = NULL;
        CHECK_INT(arch_scan(a, streams[s], 0, INT64_MAX, 0, -1, check_event, NULL, &c, &err), 0);
        free(err);
        CHECK_INT(c.wrong, 0);
        found += c.found;
    }
    return found;
}

/* Every event of the model comes back exactly once, unchanged, except
 * those retention dropped (tpart < lo_tpart and seq <= drop_upto);
 * returns the number of events read. */
static int64_t check_all(arch *a, int64_t R, int64_t lo_tpart, int64_t drop_upto)
{
    int64_t found = scan_both(a, (scan_chk){ .R = R });
    int64_t expected = 0;
    for (size_t i = 0; i < nmodel; i++) {
        bool kept = model[i].tpart >= lo_tpart || model[i].seq > drop_upto;
        expected += kept;
        if (kept != model[i].seen) {
            fprintf(stderr, "event %s/%d@%lld (tpart %lld, seq %lld): %s\n",
                    streams[model[i].stream], (int)model[i].part, (long long)model[i].offset,
                    (long long)model[i].tpart, (long long)model[i].seq,
                    kept ? "missing" : "should be dropped");
            CHECK(kept == model[i].seen);
            break;
        }
    }
    CHECK_INT(found, expected);
    return found;
}

static int verify_fn(const arch_problem *p, void *ud)
{
    (void)ud;
    fprintf(stderr, "verify found: %s\n", p->what);   /* expected for a damaged chunk */
    return 0;
}

static void check_verify(arch *a, int64_t damaged)
{
    arch_verify_summary sum;
    char *err = NULL;
    CHECK_INT(arch_verify(a, verify_fn, NULL, &sum, &err), 0);
    free(err);
    CHECK_INT(sum.problems, damaged);
    CHECK_INT(sum.damaged_chunks, damaged);
}

/* The first column of the first row of the query (printf format), read
 * through a connection of its own; -1 (and a message) when it fails. */
static int64_t __attribute__((format(printf, 1, 2))) sql_int(const char *fmt, ...)
{
    char q[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q, sizeof q, fmt, ap);
    va_end(ap);
    sqlite3 *db;
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    sqlite3_open(dbpath, &db);
    if (sqlite3_prepare_v2(db, q, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    else
        fprintf(stderr, "sql_int(%s): %s\n", q, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* Notes the seq every event has now. */
static void record_seqs(arch *a)
{
    qsort(model, nmodel, sizeof *model, cmp_mev);
    scan_both(a, (scan_chk){ .record = true });
}

/* What a pass up to R must do, from the rows before it: every (stream,
 * partition, tpart) with two chunks or more at or below R becomes one
 * chunk (no group here has more than 128 chunks, checked, nor nears
 * the 4 MiB target). */
typedef struct {
    int64_t groups, merges, chunks_merged, events, bytes_before, single_bytes;
} compact_want;

#define GROUPS_LE(R) "SELECT count(*) c, sum(n) ev, sum(length(data)) b FROM chunks" \
                     " JOIN chunk_data USING (seq) WHERE seq <= %lld GROUP BY stream, part, tpart"

static compact_want want_compaction(int64_t R)
{
    long long r = (long long)R;
    compact_want w = {
        .groups = sql_int("SELECT count(*) FROM (" GROUPS_LE(R) ")", r),
        .merges = sql_int("SELECT count(*) FROM (" GROUPS_LE(R) ") WHERE c >= 2", r),
        .chunks_merged = sql_int("SELECT total(c) FROM (" GROUPS_LE(R) ") WHERE c >= 2", r),
        .events = sql_int("SELECT total(ev) FROM (" GROUPS_LE(R) ") WHERE c >= 2", r),
        .bytes_before = sql_int("SELECT total(b) FROM (" GROUPS_LE(R) ") WHERE c >= 2", r),
        .single_bytes = sql_int("SELECT total(b) FROM (" GROUPS_LE(R) ") WHERE c = 1", r),
    };
    CHECK(sql_int("SELECT max(c) FROM (" GROUPS_LE(R) ")", r) <= 128);
    CHECK(w.merges > 0);
    return w;
}

/* cs against w, and the chunks at or below R afterwards. */
static void check_compaction(const arch_compact_stats *cs, const compact_want *w, int64_t R)
{
    CHECK_INT(cs->merges, w->merges);
    CHECK_INT(cs->chunks_merged, w->chunks_merged);
    CHECK_INT(cs->events, w->events);
    CHECK_INT(cs->bytes_before, w->bytes_before);
    CHECK_INT(cs->damaged, 0);
    CHECK_INT(sql_int("SELECT count(*) FROM chunks WHERE seq <= %lld", (long long)R), w->groups);
    CHECK_INT(sql_int("SELECT total(length(data)) FROM chunk_data WHERE seq <= %lld",
                      (long long)R), w->single_bytes + cs->bytes_after);
    CHECK(cs->bytes_after < cs->bytes_before);
}

static void test_compact(void)
{
    arch *a = NULL;
    char *err = NULL;
    CHECK_INT(arch_open(dbpath, 0, 1, &a, &err), 0);
    arch_txn *t = arch_txn_new();
    for (int i = 0; i < 200; i++)
        commit_some(a, t, 1 + (int)(next_rand() % 12));
    arch_stats st0;
    arch_get_stats(a, &st0);
    int64_t R = st0.last_seq * 2 / 3;   /* a batch watermark inside the history */
    int64_t above = sql_int("SELECT count(*) FROM chunks WHERE seq > %lld", (long long)R);
    record_seqs(a);
    check_all(a, R, 0, 0);
    int64_t offs_before = sql_int("SELECT sum(next_offset * (part + 1)) FROM offsets");
    compact_want w = want_compaction(R);

    arch_compact_stats cs = { 0 };
    CHECK_INT(arch_compact(a, R, 9, NULL, NULL, &cs, &err), 0);
    free(err);
    arch_stats st1;
    arch_get_stats(a, &st1);
    check_compaction(&cs, &w, R);
    CHECK_INT(sql_int("SELECT count(*) FROM chunks WHERE seq > %lld", (long long)R), above);
    CHECK_INT(sql_int("SELECT value FROM meta WHERE key = 'compacted_seq'"), R);
    CHECK_INT(st1.chunks, st0.chunks - cs.chunks_merged + cs.merges);
    CHECK_INT(st1.events, st0.events);
    CHECK_INT(st1.payload_bytes, st0.payload_bytes);
    CHECK_INT(st1.last_seq, st0.last_seq);
    printf("compaction: %lld chunks -> %lld, %lld stored bytes -> %lld for %lld events\n",
           (long long)cs.chunks_merged, (long long)cs.merges, (long long)cs.bytes_before,
           (long long)cs.bytes_after, (long long)cs.events);
    CHECK_INT(sql_int("SELECT sum(next_offset * (part + 1)) FROM offsets"), offs_before);
    check_all(a, R, 0, 0);
    check_verify(a, 0);

    /* nothing new: a second pass merges nothing */
    arch_compact_stats cs2 = { 0 };
    CHECK_INT(arch_compact(a, R, 9, NULL, NULL, &cs2, &err), 0);
    CHECK_INT(cs2.merges, 0);

    /* more commits, a later R: the merged chunks grow by the new ones */
    for (int i = 0; i < 50; i++)
        commit_some(a, t, 1 + (int)(next_rand() % 12));
    record_seqs(a);
    arch_get_stats(a, &st0);
    R = st0.last_seq;
    w = want_compaction(R);
    CHECK_INT(arch_compact(a, R, 9, NULL, NULL, &cs2, &err), 0);
    check_compaction(&cs2, &w, R);
    arch_get_stats(a, &st1);
    CHECK_INT(st1.events, st0.events);
    CHECK_INT(st1.last_seq, st0.last_seq);
    check_all(a, R, 0, 0);
    check_verify(a, 0);
    arch_txn_free(t);
    arch_close(a);
    /* survives a reopen: the stored totals equal the rows */
    CHECK_INT(arch_open(dbpath, 0, 1, &a, &err), 0);
    arch_get_stats(a, &st0);
    CHECK_INT(st0.events, st1.events);
    CHECK_INT(st0.chunks, st1.chunks);
    CHECK_INT(st0.last_seq, st1.last_seq);
    arch_close(a);
}

/* A damaged chunk is never merged (its bytes stay as they are); the runs
 * before and after it are. Offsets going back start a new merged chunk. */
static void test_damaged_and_offsets(void)
{
    unlink(dbpath);
    nmodel = 0;
    memset(next_off, 0, sizeof next_off);
    arch *a = NULL;
    char *err = NULL;
    CHECK_INT(arch_open(dbpath, 0, 1, &a, &err), 0);
    arch_txn *t = arch_txn_new();
    int64_t seqs[12];
    for (int i = 0; i < 12; i++) {
        arch_txn_reset(t);
        /* chunks 0-5 offsets 100.., chunks 6-11 offsets 0.. (going back) */
        int64_t off = i < 6 ? 100 + i * 2 : i * 2;
        for (int k = 0; k < 2; k++)
            arch_txn_add_event(t, "pv", 0, T0, off + k, (int64_t)T0 * 1000 + i, "{\"x\":1}", 7);
        CHECK_INT(arch_commit(a, t, &seqs[i], &err), 0);
    }
    arch_txn_free(t);
    arch_close(a);
    char q[128];
    snprintf(q, sizeof q, "UPDATE chunk_data SET checksum = checksum + 1 WHERE seq = %lld",
             (long long)seqs[3]);
    sqlite3 *db;
    sqlite3_open(dbpath, &db);
    CHECK_INT(sqlite3_exec(db, q, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    CHECK_INT(arch_open(dbpath, 0, 1, &a, &err), 0);
    arch_compact_stats cs = { 0 };
    CHECK_INT(arch_compact(a, seqs[11], 9, NULL, NULL, &cs, &err), 0);
    free(err);
    /* runs: [0,3) merged, 3 damaged, [4,6) merged, [6,12) merged */
    CHECK_INT(cs.damaged, 1);
    CHECK_INT(cs.merges, 3);
    CHECK_INT(cs.chunks_merged, 11);
    CHECK_INT(sql_int("SELECT count(*) FROM chunks"), 4);
    CHECK_INT(sql_int("SELECT count(*) FROM chunks WHERE seq = %lld AND n = 2",
                      (long long)seqs[3]), 1);
    CHECK_INT(sql_int("SELECT first_offset * 1000 + last_offset FROM chunks WHERE seq = %lld",
                      (long long)seqs[11]), 12 * 1000 + 23);
    CHECK_INT(sql_int("SELECT n FROM chunks WHERE seq = %lld", (long long)seqs[2]), 6);
    check_verify(a, 1);
    arch_close(a);
}

/* A group of more small chunks than one merge takes (128) is merged in
 * rounds, down to one chunk. */
static void test_rounds(void)
{
    unlink(dbpath);
    arch *a = NULL;
    char *err = NULL;
    CHECK_INT(arch_open(dbpath, 0, 1, &a, &err), 0);
    arch_txn *t = arch_txn_new();
    int64_t last = 0;
    for (int i = 0; i < 1200; i++) {
        arch_txn_reset(t);
        arch_txn_add_event(t, "pv", 0, T0, i, (int64_t)T0 * 1000 + i, "{\"x\":1}", 7);
        CHECK_INT(arch_commit(a, t, &last, &err), 0);
    }
    arch_txn_free(t);
    arch_compact_stats cs = { 0 };
    CHECK_INT(arch_compact(a, last, 9, NULL, NULL, &cs, &err), 0);
    free(err);
    /* round 1: 9 x 128 + 48 sources; round 2: those 10 */
    CHECK_INT(cs.merges, 11);
    CHECK_INT(cs.chunks_merged, 1210);
    CHECK(cs.longest_txn_ms > 0);
    CHECK_INT(sql_int("SELECT count(*) FROM chunks"), 1);
    CHECK_INT(sql_int("SELECT n * 1000000 + last_offset FROM chunks WHERE seq = %lld",
                      (long long)last), 1200 * 1000000LL + 1199);
    check_verify(a, 0);
    arch_close(a);
}

/* go_on: true for the first *left calls, then false. */
static bool calls_left(void *ud)
{
    int *left = ud;
    return (*left)-- > 0;
}

/* A pass stopped by go_on (the daemon stopping) keeps what it merged and
 * loses nothing, does not note itself done, and the next pass finishes. */
static void test_cancel(void)
{
    unlink(dbpath);
    nmodel = 0;
    memset(next_off, 0, sizeof next_off);
    xorshift_seed(11);
    arch *a = NULL;
    char *err = NULL;
    CHECK_INT(arch_open(dbpath, 0, 1, &a, &err), 0);
    arch_txn *t = arch_txn_new();
    for (int i = 0; i < 100; i++)
        commit_some(a, t, 8);
    arch_txn_free(t);
    arch_stats st0;
    arch_get_stats(a, &st0);
    int64_t R = st0.last_seq;
    record_seqs(a);
    compact_want w = want_compaction(R);
    /* about half of the chunks: some groups merged, one cut short */
    int left = (int)(st0.chunks / 2);
    arch_compact_stats cs = { 0 };
    CHECK_INT(arch_compact(a, R, 9, calls_left, &left, &cs, &err), -ECANCELED);
    CHECK(err == NULL);
    CHECK(cs.merges > 0 && cs.merges < w.merges);
    CHECK_INT(sql_int("SELECT count(*) FROM meta WHERE key = 'compacted_seq'"), 0);
    arch_stats st1;
    arch_get_stats(a, &st1);
    CHECK_INT(st1.chunks, st0.chunks - cs.chunks_merged + cs.merges);
    CHECK_INT(st1.events, st0.events);
    check_all(a, R, 0, 0);
    check_verify(a, 0);

    w = want_compaction(R);   /* what is left to do */
    arch_compact_stats cs2 = { 0 };
    CHECK_INT(arch_compact(a, R, 9, NULL, NULL, &cs2, &err), 0);
    check_compaction(&cs2, &w, R);
    CHECK_INT(sql_int("SELECT value FROM meta WHERE key = 'compacted_seq'"), R);
    check_all(a, R, 0, 0);
    check_verify(a, 0);
    arch_close(a);
}

/* Retention drops exactly the partitions before the cutoff (at or below
 * upto), totals follow, vacuum gives the pages back. */
static void test_retention(void)
{
    unlink(dbpath);
    nmodel = 0;
    memset(next_off, 0, sizeof next_off);
    xorshift_seed(7);
    arch *a = NULL;
    char *err = NULL;
    CHECK_INT(arch_open(dbpath, 0, 1, &a, &err), 0);
    CHECK_INT(sql_int("PRAGMA auto_vacuum"), 2);
    arch_txn *t = arch_txn_new();
    for (int i = 0; i < 300; i++)
        commit_some(a, t, 20);
    arch_stats st0;
    arch_get_stats(a, &st0);
    int64_t upto = st0.last_seq - 5;   /* the last commits are above R: kept */
    record_seqs(a);
    arch_drop_stats ds = { 0 };
    int64_t cut = T0 + 2 * DAY;   /* drops days 0 and 1 */
    /* stopped between transactions: the first one (512 chunks) is done */
    int left = 0;
    CHECK(sql_int("SELECT count(*) FROM chunks WHERE stream = 'pv' AND tpart < %lld"
                  " AND seq <= %lld", (long long)cut, (long long)upto) > 512);
    CHECK_INT(arch_drop_before(a, "pv", cut, upto, calls_left, &left, &ds, &err), -ECANCELED);
    CHECK_INT(ds.chunks, 512);
    for (int s = 0; s < 2; s++)
        CHECK_INT(arch_drop_before(a, streams[s], cut, upto, NULL, NULL, &ds, &err), 0);
    int64_t expect_dropped = 0;
    for (size_t i = 0; i < nmodel; i++)
        expect_dropped += model[i].tpart < cut && model[i].seq <= upto;
    CHECK_INT(ds.events, expect_dropped);
    arch_stats st1;
    arch_get_stats(a, &st1);
    CHECK_INT(st1.events, st0.events - expect_dropped);
    CHECK_INT(st1.chunks, st0.chunks - ds.chunks);
    CHECK_INT(st1.last_seq, st0.last_seq);
    check_all(a, INT64_MAX, cut, upto);
    check_verify(a, 0);

    struct stat sb0, sb1;
    int ck = 0;
    CHECK_INT(arch_checkpoint(a, NULL, &ck), 0);
    stat(dbpath, &sb0);
    CHECK(sql_int("PRAGMA freelist_count") > 0);
    int64_t freed = 0, free_pages = sql_int("PRAGMA freelist_count");
    double vac_ms = 0;
    left = 0;
    CHECK_INT(arch_vacuum(a, calls_left, &left, &freed, &vac_ms, &err), -ECANCELED);
    CHECK_INT(freed, 0);
    CHECK_INT(sql_int("PRAGMA freelist_count"), free_pages);
    CHECK_INT(arch_vacuum(a, NULL, NULL, &freed, &vac_ms, &err), 0);
    CHECK_INT(freed, free_pages);
    CHECK_INT(sql_int("PRAGMA freelist_count"), 0);
    CHECK_INT(arch_checkpoint(a, NULL, &ck), 0);
    stat(dbpath, &sb1);
    CHECK(sb1.st_size < sb0.st_size);
    check_all(a, INT64_MAX, cut, upto);
    arch_txn_free(t);
    arch_close(a);

    /* an archive made without auto_vacuum says so */
    unlink(dbpath);
    sqlite3 *db;
    sqlite3_open(dbpath, &db);
    CHECK_INT(sqlite3_exec(db, "PRAGMA auto_vacuum=NONE; CREATE TABLE x(y); DROP TABLE x;", NULL,
                           NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    CHECK_INT(arch_open(dbpath, 0, 1, &a, &err), 0);
    CHECK_INT(arch_vacuum(a, NULL, NULL, &freed, &vac_ms, &err), -ENOTSUP);
    arch_close(a);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lambdad-test-compact-XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    snprintf(dbpath, sizeof dbpath, "%s/a.db", tmpdir);
    test_compact();
    test_damaged_and_offsets();
    test_rounds();
    test_cancel();
    test_retention();
    free(model);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", tmpdir);
    CHECK_DONE();
}
