/* test_archive.c - the SQLite master dataset: exact round trips, filters,
 * offsets, rejects, failures, corruption, crash safety under SIGKILL, and
 * the size and speed figures (printed).
 *
 * Runs in a private directory under /tmp, removed at the end. Uses SQLite
 * directly only to damage an archive or to make a commit fail.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "archive/archive.h"
#include "archive/archive_int.h"   /* the scan queries, to check their plans */
#include "tests/unit/check.h"
#include "tests/unit/xorshift.h"

static char tmpdir[64];

static char *tpath(const char *name)
{
    static char buf[8][256];
    static int i;
    char *p = buf[i++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", tmpdir, name);
    return p;
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
    static char buf[4][512];
    static int i;
    char *p = buf[i++ % 4];
    va_list ap;
    va_start(ap, f);
    vsnprintf(p, sizeof buf[0], f, ap);
    va_end(ap);
    return p;
}

static void rm_tmpdir(void)
{
    DIR *d = opendir(tmpdir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            unlink(tpath(e->d_name));
    closedir(d);
    rmdir(tmpdir);
}

static void sql(const char *path, const char *stmt)
{
    sqlite3 *db;
    CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
    char *err = NULL;
    int rc = sqlite3_exec(db, stmt, NULL, NULL, &err);
    if (rc != SQLITE_OK)
        fprintf(stderr, "sql(%s): %s\n", stmt, err);
    CHECK_INT(rc, SQLITE_OK);
    sqlite3_free(err);
    sqlite3_close(db);
}

static int64_t sql_int(const char *path, const char *query)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    int64_t v = -1;
    CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
    CHECK_INT(sqlite3_prepare_v2(db, query, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static arch *open_ok(const char *path, int flags)
{
    arch *a = NULL;
    char *err = NULL;
    int r = arch_open(path, flags, 3, &a, &err);
    if (r)
        fprintf(stderr, "arch_open(%s): %d %s\n", path, r, err);
    CHECK_INT(r, 0);
    CHECK(err == NULL);
    free(err);
    return a;
}

static int64_t commit_ok(arch *a, arch_txn *t)
{
    int64_t seq = -1;
    char *err = NULL;
    int r = arch_commit(a, t, &seq, &err);
    if (r)
        fprintf(stderr, "arch_commit: %d %s\n", r, err);
    CHECK_INT(r, 0);
    free(err);
    arch_txn_reset(t);
    return seq;
}

/* ---- collecting a scan ------------------------------------------------ */

typedef struct {
    char *desc;        /* "seq:part/tpart/offset@ts=payload;" for each event */
    size_t len, cap;
    int n;
    int stop_after;    /* return 42 after this many events, 0: never */
    bool payload;      /* include the payload in desc */
} scan_log;

static void log_add(scan_log *l, const char *s, size_t n)
{
    if (l->len + n + 1 > l->cap) {
        l->cap = (l->len + n + 1) * 2;
        l->desc = realloc(l->desc, l->cap);
    }
    memcpy(l->desc + l->len, s, n);
    l->len += n;
    l->desc[l->len] = 0;
}

static int collect(const arch_event *ev, void *ud)
{
    scan_log *l = ud;
    char head[128];
    int n = snprintf(head, sizeof head, "%lld:%d/%lld/%lld@%lld", (long long)ev->seq,
                     ev->partition, (long long)ev->tpart, (long long)ev->offset,
                     (long long)ev->ts_ms);
    log_add(l, head, (size_t)n);
    if (l->payload) {
        log_add(l, "=", 1);
        log_add(l, ev->payload, ev->len);
    }
    log_add(l, ";", 1);
    l->n++;
    return l->stop_after && l->n == l->stop_after ? 42 : 0;
}

/* The scan as one string; "" when empty, "ERROR: ..." on failure. */
static char *scan_str(arch *a, const char *stream, int64_t lo, int64_t hi, int64_t tlo,
                      int64_t thi, bool payload)
{
    scan_log l = { .payload = payload };
    log_add(&l, "", 0);
    char *err = NULL;
    int r = arch_scan(a, stream, lo, hi, tlo, thi, collect, NULL, &l, &err);
    if (r) {
        free(l.desc);
        char *s = NULL;
        if (asprintf(&s, "ERROR %d: %s", r, err ? err : "(null)") < 0)
            abort();
        free(err);
        return s;
    }
    CHECK(err == NULL);
    return l.desc;
}

#define CHECK_SCAN(a, stream, lo, hi, tlo, thi, expected) do { \
    char *_s = scan_str(a, stream, lo, hi, tlo, thi, false); \
    CHECK_STR(_s, expected); free(_s); } while (0)

/* ---- open errors ------------------------------------------------------ */

static void check_open_fails(const char *path, int flags, int level, int code, const char *msg)
{
    arch *a = (arch *)1;
    char *err = NULL;
    CHECK_INT(arch_open(path, flags, level, &a, &err), code);
    CHECK(a == NULL);
    CHECK_STR(err, msg);
    free(err);
}

static void test_open_errors(void)
{
    const char *p = tpath("missing.db");
    check_open_fails(p, ARCH_READONLY, 3, -ENOENT, fmt("archive %s does not exist", p));
    CHECK(access(p, F_OK) != 0);

    p = tpath("nodir/a.db");
    check_open_fails(p, 0, 3, -ENOENT,
                     fmt("cannot create archive %s: directory %s: No such file or directory", p,
                         tpath("nodir")));

    check_open_fails(tmpdir, 0, 3, -EISDIR, fmt("archive %s is a directory", tmpdir));

    p = tpath("text.db");
    FILE *f = fopen(p, "w");
    for (int i = 0; i < 100; i++)
        fputs("this is not an SQLite database at all\n", f);
    fclose(f);
    check_open_fails(p, 0, 3, -EINVAL, fmt("%s is not an SQLite database", p));
    check_open_fails(p, ARCH_READONLY, 3, -EINVAL, fmt("%s is not an SQLite database", p));

    p = tpath("other.db");
    sql(p, "CREATE TABLE t (x)");
    check_open_fails(p, 0, 3, -EINVAL, fmt("%s is an SQLite database but not a lambdad archive", p));
    CHECK_INT(sql_int(p, "SELECT count(*) FROM sqlite_master"), 1);   /* left alone */

    p = tpath("empty.db");
    sql(p, "PRAGMA user_version = 0");
    check_open_fails(p, ARCH_READONLY, 3, -EINVAL, fmt("%s is not a lambdad archive (no schema)", p));

    p = tpath("newer.db");
    arch_close(open_ok(p, 0));
    sql(p, "PRAGMA user_version = 3");
    check_open_fails(p, 0, 3, -ENOTSUP,
                     fmt("archive %s has schema version 3, newer than this lambdad supports (2)", p));
    check_open_fails(p, ARCH_READONLY, 3, -ENOTSUP,
                     fmt("archive %s has schema version 3, newer than this lambdad supports (2)", p));

    check_open_fails(tpath("level.db"), 0, 99, -EINVAL,
                     "archive compression level 99 is not in [-131072, 22]");
    check_open_fails(tpath("flags.db"), 4, 3, -EINVAL, "arch_open: unknown flags 0x4");
    CHECK(access(tpath("level.db"), F_OK) != 0);

    arch_close(NULL);
    arch_txn_free(NULL);
}

/* ---- round trips ------------------------------------------------------ */

static void test_roundtrip(void)
{
    const char *p = tpath("rt.db");
    arch *a = open_ok(p, 0);
    arch_txn *t = arch_txn_new();

    arch_stats st;
    CHECK_INT(arch_get_stats(a, &st), 0);
    CHECK_INT(st.events, 0);
    CHECK_INT(st.chunks, 0);
    CHECK_INT(st.last_seq, 0);
    CHECK(st.file_bytes > 0);

    /* payloads of every kind */
    static const char binary[] = { 0, 1, 2, (char)0xff, (char)0x80, 0, 'x', 0 };
    const char *unicode = "{\"city\":\"Zürich\",\"emoji\":\"😀\",\"jp\":\"東京\"}";
    size_t big_len = 1 << 20;
    char *big = malloc(big_len);
    for (size_t i = 0; i < big_len; i++)
        big[i] = (char)("abcdefghij"[i % 10] ^ (i >> 12 & 7));

    /* interleaved adds: chunks are made per (stream, partition, tpart) in
     * the order each first appears */
    CHECK_INT(arch_txn_add_event(t, "pv", 0, 1000, 5, 1000500, "A", 1), 0);
    CHECK_INT(arch_txn_add_event(t, "pv", 1, 1000, 0, 1000100, "", 0), 0);
    CHECK_INT(arch_txn_add_event(t, "pv", 0, 1000, 6, 1000400, binary, sizeof binary), 0);
    CHECK_INT(arch_txn_add_event(t, "clicks", 0, 1000, 9, 999000, unicode, strlen(unicode)), 0);
    CHECK_INT(arch_txn_add_event(t, "pv", 0, 2000, 7, 2000000, big, big_len), 0);
    CHECK_INT(arch_txn_add_event(t, "pv", 0, 1000, 8, -5, "neg ts", 6), 0);
    CHECK_INT(arch_txn_add_event(t, "pv", 1, 1000, 1, INT64_MAX, "max ts", 6), 0);
    CHECK_INT(arch_txn_add_event(t, "pv", 1, 1000, 1, INT64_MIN, "same offset", 11), 0);
    CHECK_INT(arch_txn_add_event(t, "clicks", 3, -86400, INT64_MAX, 0, "far", 3), 0);
    CHECK_INT(arch_txn_add_event(NULL, 0, 0, 0, 0, 0, "x", 1), -EINVAL);
    CHECK_INT(arch_txn_add_event(t, "pv", 0, 0, 0, 0, NULL, 1), -EINVAL);
    CHECK_INT(arch_txn_events(t), 9);
    CHECK_INT(arch_txn_rejects(t), 0);
    CHECK_INT(commit_ok(a, t), 5);

    CHECK_SCAN(a, "pv", 0, 100, 0, -1,
               "1:0/1000/5@1000500;1:0/1000/6@1000400;1:0/1000/8@-5;"
               "2:1/1000/0@1000100;2:1/1000/1@9223372036854775807;"
               "2:1/1000/1@-9223372036854775808;"
               "4:0/2000/7@2000000;");
    CHECK_SCAN(a, "clicks", 0, 100, 0, -1,
               "3:0/1000/9@999000;5:3/-86400/9223372036854775807@0;");
    CHECK_SCAN(a, "nosuch", 0, 100, 0, -1, "");

    /* payloads come back byte for byte */
    scan_log pl = { .payload = true };
    CHECK_INT(arch_scan(a, "pv", 0, 1, 0, -1, collect, NULL, &pl, NULL), 0);
    char expect[128];
    size_t n = (size_t)sprintf(expect, "1:0/1000/5@1000500=A;1:0/1000/6@1000400=");
    memcpy(expect + n, binary, sizeof binary);
    n += sizeof binary;
    n += (size_t)sprintf(expect + n, ";1:0/1000/8@-5=neg ts;");
    CHECK_MEM(pl.desc, pl.len, expect, n);
    free(pl.desc);
    char *s;
    s = scan_str(a, "pv", 3, 4, 0, -1, true);
    const char *eq = strchr(s, '=');
    CHECK(eq != NULL);
    CHECK_INT(strlen(s), (size_t)(eq + 1 - s) + big_len + 1);
    CHECK(memcmp(eq + 1, big, big_len) == 0);
    free(s);
    s = scan_str(a, "clicks", 0, 3, 0, -1, true);
    CHECK_STR(s, fmt("3:0/1000/9@999000=%s;", unicode));
    free(s);
    s = scan_str(a, "pv", 1, 2, 0, -1, true);
    CHECK_STR(s, "2:1/1000/0@1000100=;2:1/1000/1@9223372036854775807=max ts;"
                 "2:1/1000/1@-9223372036854775808=same offset;");
    free(s);

    size_t payload = 1 + sizeof binary + strlen(unicode) + big_len + 6 + 6 + 11 + 3;
    CHECK_INT(arch_get_stats(a, &st), 0);
    CHECK_INT(st.events, 9);
    CHECK_INT(st.chunks, 5);
    CHECK_INT(st.last_seq, 5);
    CHECK_INT(st.rejects, 0);
    CHECK_INT(st.payload_bytes, payload);
    CHECK(st.file_bytes > 4096);
    /* the 1 MB payload compresses: it is not stored raw */
    CHECK_INT(sql_int(p, "SELECT codec FROM chunks WHERE seq = 4"), 1);
    CHECK(sql_int(p, "SELECT length(data) FROM chunk_data WHERE seq = 4") < 300000);
    /* a tiny chunk is stored raw when zstd would not shrink it */
    CHECK_INT(sql_int(p, "SELECT codec FROM chunks WHERE seq = 3"), 0);
    CHECK_INT(sql_int(p, "SELECT n FROM chunks WHERE seq = 2"), 3);
    CHECK_INT(sql_int(p, "SELECT first_offset FROM chunks WHERE seq = 1"), 5);
    CHECK_INT(sql_int(p, "SELECT last_offset FROM chunks WHERE seq = 1"), 8);
    CHECK_INT(sql_int(p, "SELECT min_ts_ms FROM chunks WHERE seq = 1"), -5);
    CHECK_INT(sql_int(p, "SELECT max_ts_ms FROM chunks WHERE seq = 1"), 1000500);

    /* offsets going back start a new chunk, so each chunk is in offset
     * order; so does a chunk reaching 16 MiB */
    CHECK_INT(arch_txn_add_event(t, "pv", 0, 1000, 20, 1, "a", 1), 0);
    CHECK_INT(arch_txn_add_event(t, "pv", 0, 1000, 21, 2, "b", 1), 0);
    CHECK_INT(arch_txn_add_event(t, "pv", 0, 1000, 10, 3, "c", 1), 0);
    CHECK_INT(arch_txn_add_event(t, "pv", 0, 1000, 11, 4, "d", 1), 0);
    CHECK_INT(arch_txn_add_event(t, "pv", 0, 1000, 22, 5, "e", 1), 0);
    CHECK_INT(commit_ok(a, t), 7);
    CHECK_SCAN(a, "pv", 5, 100, 0, -1,
               "6:0/1000/20@1;6:0/1000/21@2;7:0/1000/10@3;7:0/1000/11@4;7:0/1000/22@5;");
    for (int i = 0; i < 17; i++)
        CHECK_INT(arch_txn_add_event(t, "big", 0, 0, i, i, big, big_len), 0);
    CHECK_INT(commit_ok(a, t), 9);
    CHECK_INT(sql_int(p, "SELECT n FROM chunks WHERE seq = 8"), 15);
    CHECK_INT(sql_int(p, "SELECT n FROM chunks WHERE seq = 9"), 2);
    scan_log l = { 0 };
    CHECK_INT(arch_scan(a, "big", 0, 100, 0, -1, collect, NULL, &l, NULL), 0);
    CHECK_INT(l.n, 17);
    free(l.desc);

    /* reopening gives the same totals, and seq goes on from there */
    arch_stats before, after;
    CHECK_INT(arch_get_stats(a, &before), 0);
    arch_close(a);
    a = open_ok(p, 0);
    CHECK_INT(arch_get_stats(a, &after), 0);
    CHECK_INT(after.events, before.events);
    CHECK_INT(after.events, 9 + 5 + 17);
    CHECK_INT(after.rejects, before.rejects);
    CHECK_INT(after.chunks, before.chunks);
    CHECK_INT(after.last_seq, before.last_seq);
    CHECK_INT(after.payload_bytes, before.payload_bytes);
    CHECK_INT(arch_txn_add_event(t, "pv", 2, 0, 0, 0, "z", 1), 0);
    CHECK_INT(commit_ok(a, t), 10);

    /* an empty transaction commits and leaves everything as it was */
    int64_t seq = -1;
    char *err = (char *)1;
    CHECK_INT(arch_commit(a, t, &seq, &err), 0);
    CHECK(err == NULL);
    CHECK_INT(seq, 10);
    CHECK_INT(arch_get_stats(a, &st), 0);
    CHECK_INT(st.chunks, 10);
    CHECK_INT(st.events, 32);

    free(big);
    arch_txn_free(t);
    arch_close(a);
}

/* ---- scan filters ----------------------------------------------------- */

static char *query_plan(const char *path, const char *query)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    char *plan = strdup(""), *q = NULL;
    CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
    CHECK(asprintf(&q, "EXPLAIN QUERY PLAN %s", query) > 0);
    CHECK_INT(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        char *p = NULL;
        CHECK(asprintf(&p, "%s%s;", plan, (const char *)sqlite3_column_text(st, 3)) > 0);
        free(plan);
        plan = p;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    free(q);
    return plan;
}

static void test_filters(void)
{
    arch *a = open_ok(tpath("filters.db"), 0);
    arch_txn *t = arch_txn_new();
    /* seq 1: tpart 0, seq 2: tpart 60, seq 3: tpart 120, seq 4: tpart 60,
     * seq 5: tpart 0 of another stream, seq 6: tpart 180 */
    int64_t off = 0;
    const int64_t tparts[] = { 0, 60, 120, 60, -1, 180 };
    for (int i = 0; i < 6; i++) {
        for (int j = 0; j < 2; j++, off++)
            CHECK_INT(arch_txn_add_event(t, tparts[i] < 0 ? "other" : "s", 0,
                                         tparts[i] < 0 ? 0 : tparts[i], off,
                                         (tparts[i] < 0 ? 0 : tparts[i]) * 1000 + j, "x", 1), 0);
        CHECK_INT(commit_ok(a, t), i + 1);
    }
    const char *all = "1:0/0/0@0;1:0/0/1@1;2:0/60/2@60000;2:0/60/3@60001;"
                      "3:0/120/4@120000;3:0/120/5@120001;4:0/60/6@60000;4:0/60/7@60001;"
                      "6:0/180/10@180000;6:0/180/11@180001;";
    CHECK_SCAN(a, "s", 0, INT64_MAX, 0, -1, all);
    CHECK_SCAN(a, "s", INT64_MIN, INT64_MAX, INT64_MIN, INT64_MAX, all);
    /* seq_lo exclusive, seq_hi inclusive */
    CHECK_SCAN(a, "s", 1, 3, 0, -1, "2:0/60/2@60000;2:0/60/3@60001;3:0/120/4@120000;3:0/120/5@120001;");
    CHECK_SCAN(a, "s", 3, 3, 0, -1, "");
    CHECK_SCAN(a, "s", 4, 5, 0, -1, "");
    CHECK_SCAN(a, "s", 6, 100, 0, -1, "");
    /* tpart range, inclusive at both ends, in seq order */
    CHECK_SCAN(a, "s", 0, 100, 60, 60, "2:0/60/2@60000;2:0/60/3@60001;4:0/60/6@60000;4:0/60/7@60001;");
    CHECK_SCAN(a, "s", 0, 100, 60, 180,
               "2:0/60/2@60000;2:0/60/3@60001;3:0/120/4@120000;3:0/120/5@120001;"
               "4:0/60/6@60000;4:0/60/7@60001;6:0/180/10@180000;6:0/180/11@180001;");
    CHECK_SCAN(a, "s", 2, 4, 0, 60, "4:0/60/6@60000;4:0/60/7@60001;");
    CHECK_SCAN(a, "s", 0, 100, 61, 119, "");
    CHECK_SCAN(a, "other", 0, 100, 0, 0, "5:0/0/8@0;5:0/0/9@1;");
    CHECK_SCAN(a, "other", 0, 4, 0, 0, "");

    /* the callback's value stops the scan and is returned */
    scan_log l = { .stop_after = 3 };
    char *err = (char *)1;
    CHECK_INT(arch_scan(a, "s", 0, 100, 0, -1, collect, NULL, &l, &err), 42);
    CHECK(err == NULL);
    CHECK_STR(l.desc, "1:0/0/0@0;1:0/0/1@1;2:0/60/2@60000;");
    free(l.desc);

    /* the plans: a seq range reads the rowid range, a tpart range the
     * index; neither sorts the data blobs */
    char *plan = query_plan(tpath("filters.db"), arch_sql_scan_by_seq);
    CHECK_STR(plan, "SEARCH chunks USING INTEGER PRIMARY KEY (rowid>? AND rowid<?);");
    free(plan);
    plan = query_plan(tpath("filters.db"), arch_sql_scan_by_tpart);
    CHECK_STR(plan, "SEARCH chunks USING INDEX chunks_stream_tpart (stream=? AND tpart>? AND tpart<?);"
                    "USE TEMP B-TREE FOR ORDER BY;");
    free(plan);

    arch_txn_free(t);
    arch_close(a);
}

/* ---- offsets and rejects ---------------------------------------------- */

static void test_offsets(void)
{
    arch *a = open_ok(tpath("offsets.db"), 0);
    arch_txn *t = arch_txn_new();
    int64_t next = -1;
    CHECK_INT(arch_get_offset(a, "pv", 0, &next), -ENOENT);
    CHECK_INT(next, -1);

    CHECK_INT(arch_txn_set_offset(t, "pv", 0, 10), 0);
    CHECK_INT(arch_txn_set_offset(t, "pv", 1, 20), 0);
    CHECK_INT(arch_txn_set_offset(t, "clicks", 0, 30), 0);
    CHECK_INT(arch_txn_set_offset(t, "pv", 0, 11), 0);    /* the last one counts */
    CHECK_INT(arch_txn_set_offset(t, NULL, 0, 11), -EINVAL);
    CHECK_INT(commit_ok(a, t), 0);                         /* no events: no seq */
    CHECK_INT(arch_get_offset(a, "pv", 0, &next), 0);
    CHECK_INT(next, 11);
    CHECK_INT(arch_get_offset(a, "pv", 1, &next), 0);
    CHECK_INT(next, 20);
    CHECK_INT(arch_get_offset(a, "clicks", 0, &next), 0);
    CHECK_INT(next, 30);
    CHECK_INT(arch_get_offset(a, "clicks", 1, &next), -ENOENT);
    CHECK_INT(arch_get_offset(a, "p", 0, &next), -ENOENT);

    CHECK_INT(arch_txn_set_offset(t, "pv", 1, 25), 0);
    CHECK_INT(commit_ok(a, t), 0);
    CHECK_INT(arch_get_offset(a, "pv", 1, &next), 0);
    CHECK_INT(next, 25);
    CHECK_INT(arch_get_offset(a, "pv", 0, &next), 0);
    CHECK_INT(next, 11);
    arch_close(a);

    a = open_ok(tpath("offsets.db"), ARCH_READONLY);
    CHECK_INT(arch_get_offset(a, "pv", 1, &next), 0);
    CHECK_INT(next, 25);
    arch_close(a);
    arch_txn_free(t);
}

typedef struct {
    char desc[1024];
    int n, stop_after;
} reject_log;

static int collect_reject(const arch_reject *r, void *ud)
{
    reject_log *l = ud;
    size_t n = strlen(l->desc);
    n += (size_t)snprintf(l->desc + n, sizeof l->desc - n, "%lld %s/%d@%lld %s (%s) [",
                          (long long)r->id, r->topic, r->partition, (long long)r->offset,
                          r->reason, r->detail);
    for (size_t i = 0; i < r->len && n + 4 < sizeof l->desc; i++)
        n += (size_t)snprintf(l->desc + n, sizeof l->desc - n, "%02x",
                              ((const unsigned char *)r->payload)[i]);
    snprintf(l->desc + n, sizeof l->desc - n, "];");
    l->n++;
    return l->stop_after && l->n == l->stop_after ? 7 : 0;
}

static void test_rejects(void)
{
    const char *p = tpath("rejects.db");
    arch *a = open_ok(p, 0);
    arch_txn *t = arch_txn_new();
    CHECK_INT(arch_txn_add_reject(t, "pv", 0, 5, "invalid JSON", "line 1: end of file", "{", 1), 0);
    CHECK_INT(arch_txn_add_reject(t, "pv", 1, 6, "no time", NULL, "\0\xff", 2), 0);
    CHECK_INT(arch_txn_add_reject(t, "pv", 2, 7, "not an object", "", "", 0), 0);
    CHECK_INT(arch_txn_add_reject(t, NULL, 2, 7, "x", "", "", 0), -EINVAL);
    CHECK_INT(arch_txn_add_reject(t, "pv", 2, 7, "x", "", NULL, 3), -EINVAL);
    CHECK_INT(arch_txn_rejects(t), 3);
    CHECK_INT(arch_txn_events(t), 0);
    CHECK_INT(commit_ok(a, t), 0);
    CHECK_INT(arch_txn_add_reject(t, "clicks", 3, 1 << 30, "bad time", "ts: \"x\"", "{\"ts\":\"x\"}", 10), 0);
    CHECK_INT(commit_ok(a, t), 0);

    reject_log l = { 0 };
    char *err = (char *)1;
    CHECK_INT(arch_list_rejects(a, 10, collect_reject, &l, &err), 0);
    CHECK(err == NULL);
    CHECK_STR(l.desc, "4 clicks/3@1073741824 bad time (ts: \"x\") [7b227473223a2278227d];"
                      "3 pv/2@7 not an object () [];"
                      "2 pv/1@6 no time () [00ff];"
                      "1 pv/0@5 invalid JSON (line 1: end of file) [7b];");
    reject_log l2 = { 0 };
    CHECK_INT(arch_list_rejects(a, 2, collect_reject, &l2, NULL), 0);
    CHECK_INT(l2.n, 2);
    reject_log l3 = { .stop_after = 1 };
    CHECK_INT(arch_list_rejects(a, 10, collect_reject, &l3, NULL), 7);
    CHECK_INT(l3.n, 1);
    reject_log l4 = { 0 };
    CHECK_INT(arch_list_rejects(a, 0, collect_reject, &l4, NULL), 0);
    CHECK_INT(l4.n, 0);
    CHECK_INT(arch_list_rejects(a, -1, collect_reject, &l4, &err), -EINVAL);
    CHECK_STR(err, "list rejects: negative limit -1");
    free(err);
    /* an empty raw payload is an empty blob, not NULL */
    CHECK_INT(sql_int(p, "SELECT count(*) FROM rejects WHERE raw IS NULL"), 0);
    CHECK(sql_int(p, "SELECT at_ms FROM rejects WHERE id = 1") > 1700000000000);

    arch_stats st;
    CHECK_INT(arch_get_stats(a, &st), 0);
    CHECK_INT(st.rejects, 4);
    CHECK_INT(st.events, 0);
    CHECK_INT(st.last_seq, 0);
    arch_close(a);
    a = open_ok(p, 0);
    CHECK_INT(arch_get_stats(a, &st), 0);
    CHECK_INT(st.rejects, 4);
    arch_close(a);
    arch_txn_free(t);
}

/* ---- readers, failures, corruption ------------------------------------ */

static void test_readonly(void)
{
    const char *p = tpath("ro.db");
    arch *w = open_ok(p, 0);
    arch_txn *t = arch_txn_new();
    CHECK_INT(arch_txn_add_event(t, "s", 0, 0, 0, 0, "a", 1), 0);
    CHECK_INT(arch_txn_set_offset(t, "s", 0, 1), 0);
    CHECK_INT(commit_ok(w, t), 1);

    arch *r = open_ok(p, ARCH_READONLY);
    arch_stats st;
    CHECK_INT(arch_get_stats(r, &st), 0);
    CHECK_INT(st.events, 1);
    CHECK_INT(st.last_seq, 1);
    CHECK_SCAN(r, "s", 0, 100, 0, -1, "1:0/0/0@0;");

    /* the writer goes on; the reader sees each commit */
    CHECK_INT(arch_txn_add_event(t, "s", 0, 0, 1, 1, "b", 1), 0);
    CHECK_INT(arch_txn_add_reject(t, "s", 0, 2, "why", "", "", 0), 0);
    CHECK_INT(arch_txn_set_offset(t, "s", 0, 3), 0);
    CHECK_INT(commit_ok(w, t), 2);
    CHECK_INT(arch_get_stats(r, &st), 0);
    CHECK_INT(st.events, 2);
    CHECK_INT(st.rejects, 1);
    CHECK_INT(st.chunks, 2);
    CHECK_INT(st.last_seq, 2);
    CHECK_INT(st.payload_bytes, 2);
    int64_t next;
    CHECK_INT(arch_get_offset(r, "s", 0, &next), 0);
    CHECK_INT(next, 3);
    CHECK_SCAN(r, "s", 0, 100, 0, -1, "1:0/0/0@0;2:0/0/1@1;");

    /* a reader cannot commit, and stores nothing when it tries */
    CHECK_INT(arch_txn_add_event(t, "s", 0, 0, 3, 3, "c", 1), 0);
    CHECK_INT(arch_txn_set_offset(t, "s", 0, 4), 0);
    int64_t seq = -1;
    char *err = NULL;
    CHECK_INT(arch_commit(r, t, &seq, &err), -EROFS);
    CHECK_STR(err, fmt("archive %s is open read-only", p));
    free(err);
    CHECK_INT(seq, -1);
    arch_txn_reset(t);
    CHECK_INT(arch_get_offset(w, "s", 0, &next), 0);
    CHECK_INT(next, 3);
    CHECK_INT(arch_get_stats(w, &st), 0);
    CHECK_INT(st.events, 2);
    CHECK_SCAN(w, "s", 0, 100, 0, -1, "1:0/0/0@0;2:0/0/1@1;");
    arch_close(r);

    /* with the writer gone (and its WAL checkpointed away) */
    arch_close(w);
    CHECK(access(fmt("%s-wal", p), F_OK) != 0);
    r = open_ok(p, ARCH_READONLY);
    CHECK_SCAN(r, "s", 0, 100, 0, -1, "1:0/0/0@0;2:0/0/1@1;");
    CHECK_INT(arch_get_stats(r, &st), 0);
    CHECK_INT(st.events, 2);
    CHECK_INT(st.file_bytes, sql_int(p, "PRAGMA page_count") * 4096);
    arch_close(r);
    arch_txn_free(t);
}

static void test_commit_failure(void)
{
    const char *p = tpath("fail.db");
    arch *a = open_ok(p, 0);
    arch_txn *t = arch_txn_new();
    CHECK_INT(arch_txn_add_event(t, "s", 0, 0, 0, 0, "a", 1), 0);
    CHECK_INT(arch_txn_set_offset(t, "t", 0, 1), 0);
    CHECK_INT(commit_ok(a, t), 1);
    arch_stats before, after;
    CHECK_INT(arch_get_stats(a, &before), 0);

    /* a trigger makes the last statement of the next commit fail, after
     * its chunks and rejects went in: all of it must roll back */
    sql(p, "CREATE TRIGGER boom BEFORE INSERT ON offsets WHEN NEW.topic = 'boom'"
           " BEGIN SELECT RAISE(ABORT, 'the boom trigger'); END");
    for (int i = 1; i < 100; i++)
        CHECK_INT(arch_txn_add_event(t, "s", 0, i % 3, i, i, "b", 1), 0);
    CHECK_INT(arch_txn_add_reject(t, "t", 0, 100, "r", "", "", 0), 0);
    CHECK_INT(arch_txn_set_offset(t, "t", 0, 101), 0);
    CHECK_INT(arch_txn_set_offset(t, "boom", 0, 1), 0);
    int64_t seq = -1;
    char *err = NULL;
    CHECK_INT(arch_commit(a, t, &seq, &err), -EIO);
    CHECK_STR(err, "store offset: the boom trigger");
    free(err);
    CHECK_INT(seq, -1);
    CHECK_INT(arch_get_stats(a, &after), 0);
    CHECK_INT(after.events, before.events);
    CHECK_INT(after.chunks, before.chunks);
    CHECK_INT(after.rejects, before.rejects);
    CHECK_INT(after.last_seq, 1);
    int64_t next;
    CHECK_INT(arch_get_offset(a, "t", 0, &next), 0);
    CHECK_INT(next, 1);
    CHECK_SCAN(a, "s", 0, 100, 0, -1, "1:0/0/0@0;");
    CHECK_INT(sql_int(p, "SELECT count(*) FROM chunk_data"), 1);
    CHECK_INT(sql_int(p, "SELECT count(*) FROM rejects"), 0);

    /* the handle still works, and seq goes on without a gap */
    arch_txn_reset(t);
    CHECK_INT(arch_txn_add_event(t, "s", 0, 0, 1, 1, "c", 1), 0);
    CHECK_INT(arch_txn_set_offset(t, "t", 0, 2), 0);
    CHECK_INT(commit_ok(a, t), 2);
    CHECK_SCAN(a, "s", 0, 100, 0, -1, "1:0/0/0@0;2:0/0/1@1;");

    /* another connection holding the write lock: busy, then an error */
    sqlite3 *db;
    CHECK_INT(sqlite3_open(p, &db), SQLITE_OK);
    CHECK_INT(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    CHECK_INT(arch_txn_add_event(t, "s", 0, 0, 2, 2, "d", 1), 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_INT(arch_commit(a, t, &seq, &err), -EBUSY);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK_STR(err, "begin: database is locked");
    free(err);
    CHECK(t1.tv_sec - t0.tv_sec >= 4);    /* waited for the busy timeout */
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(db);
    CHECK_INT(commit_ok(a, t), 3);

    arch_txn_free(t);
    arch_close(a);
}

static void test_corruption(void)
{
    const char *p = tpath("corrupt.db");
    arch *a = open_ok(p, 0);
    arch_txn *t = arch_txn_new();
    char ev[100];
    for (int c = 0; c < 3; c++) {
        for (int i = 0; i < 50; i++) {
            int n = snprintf(ev, sizeof ev, "{\"ts\":%d,\"page\":\"/p/%d\"}", i, i % 7);
            CHECK_INT(arch_txn_add_event(t, "s", 0, 0, c * 50 + i, i * 1000, ev, (size_t)n), 0);
        }
        CHECK_INT(commit_ok(a, t), c + 1);
    }
    CHECK_INT(arch_txn_add_event(t, "s", 0, 0, 150, 0, "tiny", 4), 0);
    CHECK_INT(commit_ok(a, t), 4);
    arch_close(a);
    CHECK_INT(sql_int(p, "SELECT codec FROM chunks WHERE seq = 2"), 1);
    CHECK_INT(sql_int(p, "SELECT codec FROM chunks WHERE seq = 4"), 0);

    /* each damage is undone by restoring the tables; a message ending in
     * '*' is a prefix (the rest is zstd's text) */
    struct { const char *damage, *msg; } cases[] = {
        { "UPDATE chunk_data SET data = substr(data, 1, length(data) - 3) WHERE seq = 2",
          "archive chunk 2 is corrupt: *" },
        { "UPDATE chunk_data SET data = x'00112233445566778899' WHERE seq = 2",
          "archive chunk 2 is corrupt: not a zstd frame" },
        { "UPDATE chunks SET raw_bytes = raw_bytes + 1 WHERE seq = 2",
          "archive chunk 2 is corrupt: zstd frame size differs from raw_bytes" },
        { "UPDATE chunks SET raw_bytes = 1 << 40 WHERE seq = 2",
          "archive chunk 2 is corrupt: raw size out of range" },
        { "UPDATE chunks SET codec = 7 WHERE seq = 2",
          "archive chunk 2 is corrupt: unknown codec" },
        { "UPDATE chunks SET n = n + 1 WHERE seq = 2",
          "archive chunk 2 is corrupt: truncated event header" },
        { "UPDATE chunks SET n = n - 1 WHERE seq = 2",
          "archive chunk 2 is corrupt: bytes after the last event" },
        { "UPDATE chunks SET last_offset = 98 WHERE seq = 2",
          "archive chunk 2 is corrupt: offset beyond the chunk's last offset" },
        { "UPDATE chunks SET last_offset = 100 WHERE seq = 2",
          "archive chunk 2 is corrupt: last offset differs from the chunk row" },
        { "UPDATE chunks SET first_offset = 49 WHERE seq = 2",
          "archive chunk 2 is corrupt: last offset differs from the chunk row" },
        { "UPDATE chunks SET max_ts_ms = 48000 WHERE seq = 2",
          "archive chunk 2 is corrupt: event time outside the chunk's range" },
        { "UPDATE chunks SET tpart = 1 WHERE seq = 2",
          "archive chunk 2 is corrupt: event time outside the chunk's range" },
        { "UPDATE chunks SET first_offset = 200 WHERE seq = 2",
          "archive chunk 2 is corrupt: inconsistent chunk row" },
        { "UPDATE chunks SET part = 1 << 40 WHERE seq = 2",
          "archive chunk 2 is corrupt: partition out of range" },
        { "DELETE FROM chunk_data WHERE seq = 2",
          "archive chunk 2 is corrupt: no data" },
        { "UPDATE chunk_data SET data = x'04' WHERE seq = 4",
          "archive chunk 4 is corrupt: stored size differs from raw_bytes" },
        { "UPDATE chunk_data SET data = x'0000ff7f000000' WHERE seq = 4",
          "archive chunk 4 is corrupt: event length beyond the chunk" },
        { "UPDATE chunk_data SET data = x'ffffffffffffff' WHERE seq = 4",
          "archive chunk 4 is corrupt: truncated event header" },
    };
    /* Each damage twice: on checksummed chunks, where the checksum catches
     * everything but what is checked before the data is read; and on
     * chunks without one (as written before checksums existed), where the
     * structure checks must catch it alone. */
    static const char *const before_data[] = {
        "partition out of range", "raw size out of range", "unknown codec", "no data",
    };
    sql(p, "CREATE TABLE keep_data AS SELECT * FROM chunk_data;"
           "CREATE TABLE keep_chunks AS SELECT * FROM chunks");
    for (size_t i = 0; i < 2 * sizeof cases / sizeof cases[0]; i++) {
        bool legacy = i % 2;
        const char *msg = cases[i / 2].msg;
        bool checked_first = false;
        for (size_t k = 0; k < sizeof before_data / sizeof before_data[0]; k++)
            checked_first |= strstr(msg, before_data[k]) != NULL;
        char want_msg[128];
        if (!legacy && !checked_first)
            snprintf(want_msg, sizeof want_msg, "%.*s checksum mismatch",
                     (int)(strchr(msg, ':') - msg + 1), msg);
        else
            snprintf(want_msg, sizeof want_msg, "%s", msg);
        if (legacy)
            sql(p, "UPDATE chunk_data SET checksum = NULL");
        sql(p, cases[i / 2].damage);
        a = open_ok(p, ARCH_READONLY);
        scan_log l = { 0 };
        char *err = NULL;
        int r = arch_scan(a, "s", 0, 100, 0, -1, collect, NULL, &l, &err);
        CHECK_INT(r, -EBADMSG);
        size_t ml = strlen(want_msg);
        if (want_msg[ml - 1] == '*') {
            CHECK(err && strncmp(err, want_msg, ml - 1) == 0 && strlen(err) > ml);
            printf("zstd damage: %s\n", err ? err : "(null)");
        } else {
            CHECK_STR(err, want_msg);
        }
        /* chunk 1 went through, nothing of the damaged chunk did */
        int want = strstr(msg, "chunk 4") ? 150 : 50;
        if (l.n != want)
            fprintf(stderr, "case %zu\n", i);
        CHECK_INT(l.n, want);
        free(err);
        free(l.desc);
        arch_close(a);
        sql(p, "DELETE FROM chunk_data; INSERT INTO chunk_data SELECT * FROM keep_data;"
               "DELETE FROM chunks; INSERT INTO chunks SELECT * FROM keep_chunks");
        a = open_ok(p, ARCH_READONLY);
        scan_log ok = { 0 };
        CHECK_INT(arch_scan(a, "s", 0, 100, 0, -1, collect, NULL, &ok, NULL), 0);
        CHECK_INT(ok.n, 151);
        free(ok.desc);
        arch_close(a);
    }
    arch_txn_free(t);
}

/* ---- checksums and damaged chunks ------------------------------------ */

/* Flips one bit in the middle of chunk seq's stored blob, as a disk would. */
static void flip_blob_bit(const char *path, int64_t seq)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
    CHECK_INT(sqlite3_prepare_v2(db, "SELECT data FROM chunk_data WHERE seq = ?1", -1, &st, NULL),
              SQLITE_OK);
    sqlite3_bind_int64(st, 1, seq);
    CHECK_INT(sqlite3_step(st), SQLITE_ROW);
    int n = sqlite3_column_bytes(st, 0);
    unsigned char *b = malloc((size_t)n);
    memcpy(b, sqlite3_column_blob(st, 0), (size_t)n);
    sqlite3_finalize(st);
    b[n / 2] ^= 0x08;
    CHECK_INT(sqlite3_prepare_v2(db, "UPDATE chunk_data SET data = ?1 WHERE seq = ?2", -1, &st,
                                 NULL), SQLITE_OK);
    sqlite3_bind_blob(st, 1, b, n, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, seq);
    CHECK_INT(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    sqlite3_close(db);
    free(b);
}

/* The checksum of chunk seq recomputed from its row and blob (chunk.h). */
static uint64_t recompute_checksum(const char *path, int64_t seq)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
    CHECK_INT(sqlite3_prepare_v2(db, "SELECT " CHUNK_ROW_COLUMNS ", stream, data FROM chunks"
                                     " JOIN chunk_data USING (seq) WHERE seq = ?1", -1, &st, NULL),
              SQLITE_OK);
    sqlite3_bind_int64(st, 1, seq);
    CHECK_INT(sqlite3_step(st), SQLITE_ROW);
    chunk_header h = { .stream = (const char *)sqlite3_column_text(st, CHUNK_ROW_NCOLS) };
    chunk_row_read(st, &h);
    uint64_t sum = chunk_checksum(&h, sqlite3_column_blob(st, CHUNK_ROW_NCOLS + 1),
                                  (size_t)sqlite3_column_bytes(st, CHUNK_ROW_NCOLS + 1));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return sum;
}

/* A scan's events (first member: collect() takes it) and damage reports. */
typedef struct {
    scan_log l;
    int nd;
    arch_damage d[8];
    char what[8][256];
    int stop;          /* on_damage returns this */
} scan_dmg;

static int collect_damage(const arch_damage *d, void *ud)
{
    scan_dmg *s = ud;
    if (s->nd < 8) {
        s->d[s->nd] = *d;
        arch_damage_describe(d, s->what[s->nd], sizeof s->what[0]);
        s->d[s->nd].stream = s->d[s->nd].reason = NULL;   /* valid in the callback only */
        s->nd++;
    }
    return s->stop;
}

static int list_damage(const arch_damage *d, void *ud)
{
    char what[256];
    arch_damage_describe(d, what, sizeof what);
    log_add(ud, what, strlen(what));
    log_add(ud, d->known ? " [known];" : ";", d->known ? 9 : 1);
    return 0;
}

static void test_damage(void)
{
    const char *p = tpath("damage.db");
    arch *w = open_ok(p, 0);
    arch_txn *t = arch_txn_new();
    char ev[64];
    /* seq 1..3: stream s, partition 0, offsets 0..9, 10..19, 20..29;
     * seq 4: stream other */
    for (int c = 0; c < 3; c++) {
        for (int i = 0; i < 10; i++) {
            int o = c * 10 + i;
            int n = snprintf(ev, sizeof ev, "{\"ts\":%d,\"page\":\"/p/%d\",\"pad\":\"xxxxxxxx\"}",
                             o, o % 3);
            CHECK_INT(arch_txn_add_event(t, "s", 0, 0, o, o * 1000, ev, (size_t)n), 0);
        }
        CHECK_INT(commit_ok(w, t), c + 1);
    }
    CHECK_INT(arch_txn_add_event(t, "other", 3, 0, 0, 0, "{}", 2), 0);
    CHECK_INT(commit_ok(w, t), 4);

    /* every chunk carries its checksum: the one chunk.h describes */
    CHECK_INT(sql_int(p, "SELECT count(*) FROM chunk_data WHERE checksum IS NULL"), 0);
    for (int64_t seq = 1; seq <= 4; seq++)
        CHECK_INT(sql_int(p, fmt("SELECT checksum FROM chunk_data WHERE seq = %lld",
                                 (long long)seq)), (int64_t)recompute_checksum(p, seq));

    /* one bit flipped in the middle of chunk 2's blob: reported with its
     * details, and chunks 1 and 3 are still read in full */
    flip_blob_bit(p, 2);
    arch *r = open_ok(p, ARCH_READONLY);
    scan_dmg sd = { 0 };
    CHECK_INT(arch_scan(r, "s", 0, 100, 0, -1, collect, collect_damage, &sd, NULL), 0);
    CHECK_INT(sd.l.n, 20);
    CHECK(sd.l.desc && strncmp(sd.l.desc, "1:0/0/0@0;", 10) == 0);
    CHECK(sd.l.desc && strstr(sd.l.desc, "1:0/0/9@9000;3:0/0/20@20000;") != NULL);
    CHECK(sd.l.desc && strstr(sd.l.desc, "2:") == NULL);
    CHECK_INT(sd.nd, 1);
    CHECK_INT(sd.d[0].seq, 2);
    CHECK_INT(sd.d[0].partition, 0);
    CHECK_INT(sd.d[0].tpart, 0);
    CHECK_INT(sd.d[0].first_offset, 10);
    CHECK_INT(sd.d[0].last_offset, 19);
    CHECK_INT(sd.d[0].events, 10);
    CHECK(!sd.d[0].known);
    CHECK(sd.d[0].found_at > 0);
    CHECK_STR(sd.what[0], "chunk 2 (stream 's', partition 0, offsets 10..19, 10 events, time "
                          "partition 1970-01-01T00:00:00Z): checksum mismatch");
    free(sd.l.desc);

    /* the registry of this archive: per stream and in all */
    arch_damage_count c;
    arch_damage_totals(p, "s", &c);
    CHECK_INT(c.chunks, 1);
    CHECK_INT(c.events, 10);
    arch_damage_totals(p, "other", &c);
    CHECK_INT(c.chunks, 0);
    arch_damage_totals(p, NULL, &c);
    CHECK_INT(c.events, 10);
    arch_damage_totals(tpath("nosuch.db"), NULL, &c);
    CHECK_INT(c.chunks, 0);

    /* found again (a second scan, a time-partition scan): known now */
    scan_dmg again = { 0 };
    CHECK_INT(arch_scan(r, "s", 0, 100, 0, 0, collect, collect_damage, &again, NULL), 0);
    CHECK_INT(again.l.n, 20);
    CHECK_INT(again.nd, 1);
    CHECK(again.d[0].known);
    CHECK_INT(again.d[0].found_at, sd.d[0].found_at);
    free(again.l.desc);
    arch_damage_totals(p, NULL, &c);
    CHECK_INT(c.chunks, 1);   /* counted once */

    /* a header field changed so that every structure check still passes
     * (the events stay within min/max): only the checksum tells */
    sql(p, "UPDATE chunks SET min_ts_ms = min_ts_ms - 1 WHERE seq = 3");
    scan_dmg two = { 0 };
    CHECK_INT(arch_scan(r, "s", 1, 100, 0, -1, collect, collect_damage, &two, NULL), 0);
    CHECK_INT(two.l.n, 0);
    CHECK_INT(two.nd, 2);
    CHECK_INT(two.d[1].seq, 3);
    CHECK(!two.d[1].known);
    free(two.l.desc);

    /* on_damage can stop the scan; without it damage is an error */
    scan_dmg stop = { .stop = 7 };
    CHECK_INT(arch_scan(r, "s", 0, 100, 0, -1, collect, collect_damage, &stop, NULL), 7);
    CHECK_INT(stop.l.n, 10);
    free(stop.l.desc);
    CHECK_SCAN(r, "s", 0, 100, 0, -1, "ERROR -74: archive chunk 2 is corrupt: checksum mismatch");

    /* newest first */
    scan_log ls = { 0 };
    log_add(&ls, "", 0);
    CHECK_INT(arch_damage_list(p, 10, list_damage, &ls), 0);
    CHECK_STR(ls.desc, "chunk 3 (stream 's', partition 0, offsets 20..29, 10 events, time "
                       "partition 1970-01-01T00:00:00Z): checksum mismatch [known];"
                       "chunk 2 (stream 's', partition 0, offsets 10..19, 10 events, time "
                       "partition 1970-01-01T00:00:00Z): checksum mismatch [known];");
    free(ls.desc);
    ls = (scan_log){ 0 };
    log_add(&ls, "", 0);
    CHECK_INT(arch_damage_list(p, 1, list_damage, &ls), 0);
    CHECK(strncmp(ls.desc, "chunk 3 ", 8) == 0 && !strstr(ls.desc, "chunk 2"));
    free(ls.desc);
    arch_close(r);

    /* the writer stores what scans found with its next commit ... */
    CHECK_INT(sql_int(p, "SELECT count(*) FROM damaged_chunks"), 0);
    CHECK_INT(arch_txn_add_event(t, "other", 3, 0, 1, 0, "{}", 2), 0);
    CHECK_INT(commit_ok(w, t), 5);
    CHECK_INT(sql_int(p, "SELECT count(*) FROM damaged_chunks"), 2);
    CHECK_INT(sql_int(p, "SELECT n FROM damaged_chunks WHERE seq = 2 AND stream = 's' AND"
                         " first_offset = 10 AND last_offset = 19 AND reason = 'checksum mismatch'"),
              10);
    CHECK_INT(sql_int(p, "SELECT found_at FROM damaged_chunks WHERE seq = 2"), sd.d[0].found_at);
    arch_close(w);

    /* ... so a new process knows them at open (another spelling of the
     * path is another registry, as a new process would start with) */
    const char *p2 = tpath("./damage.db");
    arch_damage_totals(p2, NULL, &c);
    CHECK_INT(c.chunks, 0);
    w = open_ok(p2, 0);
    arch_damage_totals(p2, "s", &c);
    CHECK_INT(c.chunks, 2);
    CHECK_INT(c.events, 20);
    scan_dmg known = { 0 };
    CHECK_INT(arch_scan(w, "s", 0, 100, 0, -1, collect, collect_damage, &known, NULL), 0);
    CHECK_INT(known.nd, 2);
    CHECK(known.d[0].known && known.d[1].known);
    CHECK_INT(known.d[0].found_at, sd.d[0].found_at);
    free(known.l.desc);
    arch_close(w);
    CHECK_INT(sql_int(p, "SELECT count(*) FROM damaged_chunks"), 2);

    /* damage found with no commit after it is stored at close */
    flip_blob_bit(p, 1);
    w = open_ok(p2, 0);
    CHECK_SCAN(w, "s", 0, 100, 0, -1, "ERROR -74: archive chunk 1 is corrupt: checksum mismatch");
    arch_close(w);
    CHECK_INT(sql_int(p, "SELECT count(*) FROM damaged_chunks"), 3);
    arch_txn_free(t);
}

/* ---- totals ----------------------------------------------------------- */

static int64_t meta_int(const char *path, const char *key)
{
    return sql_int(path, fmt("SELECT value FROM meta WHERE key = '%s'", key));
}

static void check_totals_stored(const char *p)
{
    CHECK_INT(meta_int(p, "total_events"), sql_int(p, "SELECT sum(n) FROM chunks"));
    CHECK_INT(meta_int(p, "total_chunks"), sql_int(p, "SELECT count(*) FROM chunks"));
    CHECK_INT(meta_int(p, "total_payload_bytes"), sql_int(p, "SELECT sum(payload_bytes) FROM chunks"));
    CHECK_INT(meta_int(p, "total_rejects"), sql_int(p, "SELECT count(*) FROM rejects"));
}

static void test_totals(void)
{
    const char *p = tpath("totals.db");
    arch *w = open_ok(p, 0);
    CHECK(arch_open_note(w) == NULL);   /* a new archive: nothing to say */
    CHECK_INT(meta_int(p, "total_events"), 0);
    arch_txn *t = arch_txn_new();
    for (int c = 0; c < 5; c++) {
        for (int i = 0; i < 7; i++)
            CHECK_INT(arch_txn_add_event(t, c % 2 ? "a" : "b", i % 2, i % 3 * 60, c * 7 + i, i,
                                         "{\"x\":1}", 7), 0);
        CHECK_INT(arch_txn_add_reject(t, "a", 0, 100 + c, "invalid_json", "", "{", 1), 0);
        CHECK_INT(arch_txn_set_offset(t, "a", 0, 200 + c), 0);
        commit_ok(w, t);
        check_totals_stored(p);   /* in the same transaction as the events */
    }
    CHECK_INT(arch_txn_set_offset(t, "a", 0, 300), 0);   /* offsets only */
    commit_ok(w, t);
    CHECK_INT(meta_int(p, "total_events"), 35);
    CHECK_INT(meta_int(p, "total_rejects"), 5);
    check_totals_stored(p);
    arch_stats before, after;
    CHECK_INT(arch_get_stats(w, &before), 0);
    arch_close(w);

    /* reopened: exact, read from meta, not counted (a planted value shows) */
    w = open_ok(p, 0);
    CHECK_INT(arch_get_stats(w, &after), 0);
    CHECK_INT(after.events, before.events);
    CHECK_INT(after.rejects, before.rejects);
    CHECK_INT(after.chunks, before.chunks);
    CHECK_INT(after.payload_bytes, before.payload_bytes);
    CHECK_INT(after.last_seq, before.last_seq);
    arch_close(w);
    sql(p, "UPDATE meta SET value = 123456 WHERE key = 'total_events'");
    arch *r = open_ok(p, ARCH_READONLY);
    CHECK_INT(arch_get_stats(r, &after), 0);
    CHECK_INT(after.events, 123456);
    arch_close(r);
    sql(p, "UPDATE meta SET value = 35 WHERE key = 'total_events'");

    /* totals gone (by hand): the writer counts and stores them again */
    sql(p, "DELETE FROM meta WHERE key = 'total_chunks'");
    w = open_ok(p, 0);
    CHECK(arch_open_note(w) && strstr(arch_open_note(w), "counted the totals of ") ==
                                   arch_open_note(w));
    CHECK_INT(arch_get_stats(w, &after), 0);
    CHECK_INT(after.chunks, before.chunks);
    check_totals_stored(p);
    arch_close(w);
    arch_txn_free(t);
}

/* An archive as lambdad wrote it before checksums and stored totals
 * (schema version 1), made by taking them out of a new one. */
static void make_v1(const char *p)
{
    sql(p, "ALTER TABLE chunk_data DROP COLUMN checksum;"
           "DROP TABLE damaged_chunks;"
           "DELETE FROM meta WHERE key LIKE 'total_%';"
           "PRAGMA user_version = 1;");
}

static void test_legacy(void)
{
    const char *p = tpath("legacy.db");
    arch *w = open_ok(p, 0);
    arch_txn *t = arch_txn_new();
    CHECK_INT(arch_txn_add_event(t, "s", 0, 0, 0, 0, "{\"a\":1}", 7), 0);
    CHECK_INT(arch_txn_add_event(t, "s", 1, 0, 0, 5, "{\"a\":2}", 7), 0);
    CHECK_INT(arch_txn_add_reject(t, "s", 0, 1, "invalid_json", "", "x", 1), 0);
    CHECK_INT(commit_ok(w, t), 2);
    arch_close(w);
    make_v1(p);
    CHECK_INT(sql_int(p, "SELECT count(*) FROM pragma_table_info('chunk_data')"), 2);

    /* read as it is: counted totals, every event */
    arch *r = open_ok(p, ARCH_READONLY);
    CHECK(arch_open_note(r) == NULL);
    arch_stats st;
    CHECK_INT(arch_get_stats(r, &st), 0);
    CHECK_INT(st.events, 2);
    CHECK_INT(st.chunks, 2);
    CHECK_INT(st.rejects, 1);
    CHECK_INT(st.payload_bytes, 14);
    CHECK_SCAN(r, "s", 0, 100, 0, -1, "1:0/0/0@0;2:1/0/0@5;");
    arch_close(r);
    CHECK_INT(sql_int(p, "PRAGMA user_version"), 1);

    /* the writer upgrades it: the column, the totals, the table */
    w = open_ok(p, 0);
    const char *note = arch_open_note(w);
    CHECK(note && strncmp(note, "upgraded from schema version 1 to 2: chunks written from now "
                                "on carry a checksum (older ones are still read, checked for "
                                "structure only); counted the totals of 2 chunk(s) (2 event(s), "
                                "1 reject(s)) in ", 186) == 0);
    CHECK_INT(sql_int(p, "PRAGMA user_version"), 2);
    CHECK_INT(sql_int(p, "SELECT count(*) FROM chunk_data WHERE checksum IS NULL"), 2);
    CHECK_INT(sql_int(p, "SELECT count(*) FROM damaged_chunks"), 0);
    check_totals_stored(p);
    CHECK_INT(arch_txn_add_event(t, "s", 0, 0, 1, 10, "{\"a\":3}", 7), 0);
    CHECK_INT(commit_ok(w, t), 3);
    CHECK(sql_int(p, "SELECT checksum FROM chunk_data WHERE seq = 3") != 0);
    CHECK_INT(sql_int(p, "SELECT count(*) FROM chunk_data WHERE checksum IS NULL"), 2);
    CHECK_INT((uint64_t)sql_int(p, "SELECT checksum FROM chunk_data WHERE seq = 3"),
              recompute_checksum(p, 3));
    CHECK_SCAN(w, "s", 0, 100, 0, -1, "1:0/0/0@0;2:1/0/0@5;3:0/0/1@10;");
    check_totals_stored(p);
    arch_close(w);

    /* and once is enough */
    w = open_ok(p, 0);
    CHECK(arch_open_note(w) == NULL);
    CHECK_INT(arch_get_stats(w, &st), 0);
    CHECK_INT(st.events, 3);
    CHECK_INT(st.rejects, 1);
    arch_close(w);

    /* a reader opened on version 1 sees the writer's upgrade and checksums */
    const char *q = tpath("legacy2.db");
    w = open_ok(q, 0);
    CHECK_INT(arch_txn_add_event(t, "s", 0, 0, 0, 0, "{\"a\":1}", 7), 0);
    CHECK_INT(commit_ok(w, t), 1);
    arch_close(w);
    make_v1(q);
    r = open_ok(q, ARCH_READONLY);
    w = open_ok(q, 0);
    CHECK_INT(arch_txn_add_event(t, "s", 0, 0, 1, 1, "{\"a\":2}", 7), 0);
    CHECK_INT(commit_ok(w, t), 2);
    CHECK_INT(arch_get_stats(r, &st), 0);
    CHECK_INT(st.events, 2);
    flip_blob_bit(q, 2);
    scan_dmg sd = { 0 };
    CHECK_INT(arch_scan(r, "s", 0, 100, 0, -1, collect, collect_damage, &sd, NULL), 0);
    CHECK_INT(sd.l.n, 1);
    CHECK_INT(sd.nd, 1);
    free(sd.l.desc);
    arch_close(r);
    arch_close(w);
    arch_txn_free(t);
}

/* ---- crash safety ----------------------------------------------------- */

/* Commits [k, k+m) and next offset k+m, forever, from the stored offset. */
/* Writes one byte to progress_fd after each commit, so the parent kills
 * it after a chosen number of commits (plus a random delay within the
 * next one) instead of after a guessed time. */
static void crash_child(const char *path, unsigned seed, int progress_fd)
{
    arch *a;
    if (arch_open(path, 0, 3, &a, NULL))
        _exit(2);
    int64_t k = 0;
    if (arch_get_offset(a, "t", 0, &k) == -ENOENT)
        k = 0;
    arch_txn *t = arch_txn_new();
    srand(seed);
    char ev[64];
    for (;;) {
        int m = 1 + rand() % 400;
        for (int j = 0; j < m; j++) {
            int64_t off = k + j;
            int n = snprintf(ev, sizeof ev, "{\"o\":%lld}", (long long)off);
            if (arch_txn_add_event(t, "s", 0, off / 1000 * 60, off, off * 10, ev, (size_t)n))
                _exit(3);
        }
        if (arch_txn_set_offset(t, "t", 0, k + m) || arch_commit(a, t, NULL, NULL))
            _exit(4);
        arch_txn_reset(t);
        k += m;
        if (write(progress_fd, "c", 1) != 1)
            _exit(5);
    }
}

typedef struct {
    int64_t expect;    /* next offset expected */
    int64_t last_seq;
    int bad;
} crash_check;

static int check_crash_event(const arch_event *ev, void *ud)
{
    crash_check *c = ud;
    char want[64];
    int n = snprintf(want, sizeof want, "{\"o\":%lld}", (long long)c->expect);
    if (ev->offset != c->expect || ev->ts_ms != ev->offset * 10 ||
        ev->tpart != ev->offset / 1000 * 60 || ev->len != (size_t)n ||
        memcmp(ev->payload, want, (size_t)n) != 0 || ev->seq < c->last_seq) {
        if (c->bad++ < 5)
            fprintf(stderr, "crash test: got offset %lld (seq %lld), expected %lld\n",
                    (long long)ev->offset, (long long)ev->seq, (long long)c->expect);
    }
    c->expect = ev->offset + 1;
    c->last_seq = ev->seq;
    return 0;
}

static void test_crash(void)
{
    const char *p = tpath("crash.db");
    arch_close(open_ok(p, 0));
    srand(12345);
    int64_t prev = 0;
    int progressed = 0;
    for (int round = 0; round < 20; round++) {
        int fds[2];
        CHECK_INT(pipe(fds), 0);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            crash_child(p, (unsigned)round, fds[1]);
        }
        close(fds[1]);
        /* Kill after 1 to 5 commits, at a random moment of the next one. */
        int commits = 1 + rand() % 5;
        char b;
        for (int i = 0; i < commits; i++)
            CHECK_INT(read(fds[0], &b, 1), 1);
        usleep((useconds_t)(rand() % 5000));
        kill(pid, SIGKILL);
        close(fds[0]);
        int status = 0;
        CHECK_INT(waitpid(pid, &status, 0), pid);
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

        arch *a = open_ok(p, ARCH_READONLY);
        int64_t next = 0;
        int r = arch_get_offset(a, "t", 0, &next);
        CHECK(r == 0 || (r == -ENOENT && prev == 0));
        CHECK(next >= prev);
        progressed += next > prev;
        prev = next;
        crash_check c = { 0 };
        CHECK_INT(arch_scan(a, "s", 0, INT64_MAX, 0, -1, check_crash_event, NULL, &c, NULL), 0);
        CHECK_INT(c.bad, 0);
        CHECK_INT(c.expect, next);       /* everything below next, nothing above */
        arch_stats st;
        CHECK_INT(arch_get_stats(a, &st), 0);
        CHECK_INT(st.events, next);
        arch_close(a);
    }
    CHECK_INT(progressed, 20);   /* every child committed at least once */
    printf("crash test: 20 SIGKILLs, %lld events, each offset exactly once\n", (long long)prev);
}

/* ---- size and speed --------------------------------------------------- */


static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int count_event(const arch_event *ev, void *ud)
{
    (void)ev;
    ++*(int64_t *)ud;
    return 0;
}

static void test_size_and_speed(void)
{
    static const char *pages[] = {
        "/", "/products/42", "/products/7", "/products/1337", "/cart", "/checkout", "/search",
        "/about", "/blog/post-1", "/blog/post-2", "/login", "/account", "/products/99",
        "/products/100", "/help", "/contact",
    };
    static const char *countries[] = {
        "DE", "US", "FR", "GB", "NL", "IT", "ES", "PL", "SE", "JP", "BR", "IN", "CA", "AU",
    };
    const char *p = tpath("size.db");
    arch *a = open_ok(p, 0);
    arch_txn *t = arch_txn_new();
    enum { COMMITS = 100, PER_COMMIT = 5000, PARTS = 2 };
    int64_t ts = 1763892000, json_bytes = 0, off[PARTS] = { 0 };
    double t_add = 0, t_commit = 0;
    char ev[256];
    for (int c = 0; c < COMMITS; c++) {
        double t0 = now_s();
        for (int i = 0; i < PER_COMMIT; i++) {
            if (next_rand() % 4 == 0)
                ts++;     /* ~4 events per second per partition: about 5k/s overall */
            int n = snprintf(ev, sizeof ev,
                             "{\"ts\":%lld,\"page\":\"%s\",\"country\":\"%s\",\"user\":\"u%05u\","
                             "\"bytes\":%u,\"ms\":%u}", (long long)ts, pages[next_rand() % 16],
                             countries[next_rand() % 14], (unsigned)(next_rand() % 100000),
                             (unsigned)(next_rand() % 100000), (unsigned)(next_rand() % 2000));
            json_bytes += n;
            int part = (int)(next_rand() % PARTS);
            CHECK_INT(arch_txn_add_event(t, "pageviews", part, ts - ts % 86400, off[part]++,
                                         ts * 1000, ev, (size_t)n), 0);
        }
        double t1 = now_s();
        for (int part = 0; part < PARTS; part++)
            CHECK_INT(arch_txn_set_offset(t, "pageviews", part, off[part]), 0);
        commit_ok(a, t);
        t_add += t1 - t0;
        t_commit += now_s() - t1;
    }
    int64_t events = (int64_t)COMMITS * PER_COMMIT;
    arch_stats st;
    CHECK_INT(arch_get_stats(a, &st), 0);
    CHECK_INT(st.events, events);
    CHECK_INT(st.payload_bytes, json_bytes);

    double t0 = now_s();
    int64_t scanned = 0;
    CHECK_INT(arch_scan(a, "pageviews", 0, INT64_MAX, 0, -1, count_event, NULL, &scanned, NULL), 0);
    double t_scan = now_s() - t0;
    CHECK_INT(scanned, events);
    arch_close(a);    /* checkpoints the WAL into the file */

    int64_t data = sql_int(p, "SELECT sum(length(data)) FROM chunk_data");
    struct stat sb;
    CHECK_INT(stat(p, &sb), 0);
    double per_event = (double)sb.st_size / (double)events;
    printf("archive size: %lld events of %.1f bytes (JSON): compressed chunks %.1f bytes/event, "
           "file %.1f bytes/event (zstd level 3, %d events per chunk)\n",
           (long long)events, (double)json_bytes / (double)events, (double)data / (double)events,
           per_event, PER_COMMIT / PARTS);
    printf("archive speed: add %.0f events/s, commit %.0f events/s (%d-event commits, %.2f ms each), "
           "scan %.0f events/s\n", (double)events / t_add, (double)events / t_commit, PER_COMMIT,
           t_commit / COMMITS * 1000, (double)events / t_scan);
    CHECK(per_event < 60);
    arch_txn_free(t);
}

int main(void)
{
    xorshift_seed(88172645463325252ull);   /* the sequence these tests were written with */
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_archive.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_open_errors();
    test_roundtrip();
    test_filters();
    test_offsets();
    test_rejects();
    test_readonly();
    test_commit_failure();
    test_corruption();
    test_damage();
    test_totals();
    test_legacy();
    test_crash();
    test_size_and_speed();
    rm_tmpdir();
    CHECK_DONE();
}
