/* test_archtool_move.c - unit tests of lambdad-archive extract and drop
 * (tools/archtool_move.c, archive/move.c): what a partition's extract
 * holds (events with fresh seqs, rejects with their time, next offsets,
 * the partition unit), what a drop leaves, both checked by verify and
 * dump; a damaged chunk, a stream without a recorded topic, the lock of a
 * running daemon, and every error's exact text and exit status. */
#include "tools/test_archtool.h"

#include <dirent.h>
#include <errno.h>
#include <unistd.h>

#include "archive/archive.h"
#include "daemon/archlock.h"

#define DAY_MS 86400000LL

static int add(arch_txn *t, const char *stream, int32_t part, int64_t off, int64_t ts_ms)
{
    char ev[64];
    int n = snprintf(ev, sizeof ev, "{\"s\":\"%s\",\"p\":%d,\"o\":%d}", stream, (int)part,
                     (int)off);
    return arch_txn_add_event(t, stream, part, ts_ms >= DAY_MS ? 86400 : 0, off, ts_ms, ev,
                              (size_t)n);
}

/* Streams web (topic web) and clk (topic clicks, recorded when topics):
 *   commit 1: web p0 o0,o1; web p3 o0; clk p3 o0                 (seq 1-3)
 *   commit 2: web p3 o1 (day 0), o2 (day 1); web p1 o0; rejects web:3 o3
 *             and web:0 o2; offsets web:0=3 web:1=1 web:3=4 clicks:3=1 (seq 4-6)
 *   commit 3: one imported event of web (partition -1)           (seq 7) */
static int make_archive(const char *path, bool topics)
{
    arch *a = NULL;
    char *err = NULL;
    int r = arch_open(path, 0, 3, &a, &err);
    arch_txn *t = arch_txn_new();
    if (r < 0 || !t)
        goto done;
    if ((r = arch_meta_set(a, "partition", "day", &err)) < 0 ||
        (topics && (r = arch_record_stream_topic(a, "web", "web", &err)) < 0) ||
        (topics && (r = arch_record_stream_topic(a, "clk", "clicks", &err)) < 0))
        goto done;
    if ((r = add(t, "web", 0, 0, 1000)) < 0 || (r = add(t, "web", 0, 1, 2000)) < 0 ||
        (r = add(t, "web", 3, 0, 3000)) < 0 || (r = add(t, "clk", 3, 0, 4000)) < 0 ||
        (r = arch_commit(a, t, NULL, &err)) < 0)
        goto done;
    arch_txn_reset(t);
    if ((r = add(t, "web", 3, 1, 5000)) < 0 || (r = add(t, "web", 3, 2, DAY_MS + 6000)) < 0 ||
        (r = add(t, "web", 1, 0, 7000)) < 0 ||
        (r = arch_txn_add_reject(t, "web", 3, 3, "invalid_json", "at byte 1", "{", 1)) < 0 ||
        (r = arch_txn_add_reject(t, "web", 0, 2, "not_an_object", "", "[]", 2)) < 0 ||
        (r = arch_txn_set_offset(t, "web", 0, 3)) < 0 ||
        (r = arch_txn_set_offset(t, "web", 1, 1)) < 0 ||
        (r = arch_txn_set_offset(t, "web", 3, 4)) < 0 ||
        (r = arch_txn_set_offset(t, "clicks", 3, 1)) < 0 ||
        (r = arch_commit(a, t, NULL, &err)) < 0)
        goto done;
    arch_txn_reset(t);
    if ((r = add(t, "web", -1, 0, 8000)) < 0 || (r = arch_commit(a, t, NULL, &err)) < 0)
        goto done;
done:
    if (err)
        fprintf(stderr, "make_archive: %s\n", err);
    free(err);
    arch_txn_free(t);
    arch_close(a);
    return r;
}

static char *path_in(const char *dir, const char *name)
{
    char *p = NULL;
    CHECK(asprintf(&p, "%s/%s", dir, name) > 0);
    return p;
}

static int64_t offset_of(const char *path, const char *topic, int32_t part)
{
    arch *a = NULL;
    char *err = NULL;
    int64_t next = -1;
    CHECK_INT(arch_open(path, ARCH_READONLY, 3, &a, &err), 0);
    if (a && arch_get_offset(a, topic, part, &next) < 0)
        next = -1;
    arch_close(a);
    free(err);
    return next;
}

/* One integer from plain SQL. */
static int64_t sql_int(const char *path, const char *q)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    int64_t v = -1;
    CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
    CHECK_INT(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* Hidden files in dir: extract's temporaries. */
static int count_hidden(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] == '.' && strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    if (d)
        closedir(d);
    return n;
}

static void expect(struct run r, int rc, const char *out, const char *err)
{
    CHECK_INT(r.rc, rc);
    CHECK_STR(r.out, out);
    CHECK_STR(r.err, err);
    run_free(&r);
}

static void test_extract(const char *dir, const char *src)
{
    char *dst = path_in(dir, "c.db"), want[1024], err[1024];
    snprintf(want, sizeof want, "%s: web:3 from %s: 3 events in 2 chunks, 1 reject; next "
             "offsets web:3=4\n", dst, src);
    expect(run_tool("extract", "--partition", "web:3", src, dst, NULL), 0, want, "");

    /* fresh seqs, in the source's order; the day-1 event in a chunk of its own */
    expect(run_tool("dump", "--meta", dst, NULL), 0,
           "{\"stream\":\"web\",\"seq\":1,\"partition\":3,\"offset\":0,\"ts_ms\":3000,"
           "\"event\":{\"s\":\"web\",\"p\":3,\"o\":0}}\n"
           "{\"stream\":\"web\",\"seq\":1,\"partition\":3,\"offset\":1,\"ts_ms\":5000,"
           "\"event\":{\"s\":\"web\",\"p\":3,\"o\":1}}\n"
           "{\"stream\":\"web\",\"seq\":2,\"partition\":3,\"offset\":2,\"ts_ms\":86406000,"
           "\"event\":{\"s\":\"web\",\"p\":3,\"o\":2}}\n", "");
    snprintf(want, sizeof want, "%s: 2 chunks (2 with a checksum), 3 events, 1 reject: ok\n",
             dst);
    expect(run_tool("verify", dst, NULL), 0, want, "");
    CHECK_INT(offset_of(dst, "web", 3), 4);
    CHECK_INT(offset_of(dst, "web", 0), -1);
    CHECK_INT(offset_of(dst, "clicks", 3), -1);
    CHECK_INT(sql_int(dst, "SELECT count(*) FROM meta WHERE key = 'partition' AND value = 'day'"),
              1);
    CHECK_INT(sql_int(dst, "SELECT count(*) FROM meta WHERE key = 'topic.web' AND value = 'web'"),
              1);
    CHECK_INT(sql_int(dst, "SELECT count(*) FROM meta WHERE key = 'topic.clk'"), 0);
    /* the reject as it was, with its original time */
    CHECK_INT(sql_int(dst, "SELECT count(*) FROM rejects WHERE topic = 'web' AND part = 3 AND"
                           " kafka_offset = 3 AND reason = 'invalid_json' AND detail = "
                           "'at byte 1' AND raw = X'7B'"), 1);
    int64_t at_src = sql_int(src, "SELECT at_ms FROM rejects WHERE part = 3");
    CHECK(at_src > 0);
    CHECK_INT(sql_int(dst, "SELECT at_ms FROM rejects"), at_src);

    /* two topics at once, the same partition number */
    char *both = path_in(dir, "both.db");
    snprintf(want, sizeof want, "%s: web:3; clicks:3 from %s: 4 events in 3 chunks, 1 reject; "
             "next offsets web:3=4 clicks:3=1\n", both, src);
    expect(run_tool("extract", "-p", "web:3", "-p", "clicks:3", src, both, NULL), 0, want, "");
    snprintf(want, sizeof want, "%s: 3 chunks (3 with a checksum), 4 events, 1 reject: ok\n",
             both);
    expect(run_tool("verify", both, NULL), 0, want, "");

    /* errors: nothing is created, no temporary is left */
    char *none = path_in(dir, "none.db");
    snprintf(err, sizeof err, "lambdad-archive: extract: archive %s holds no partition web:7 "
             "(it holds clicks:3; web:0,1,3)\n", src);
    expect(run_tool("extract", "-p", "web:3,7", src, none, NULL), 1, "", err);
    snprintf(err, sizeof err, "lambdad-archive: extract: archive %s holds no partition pv:0 "
             "(it holds clicks:3; web:0,1,3)\n", src);
    expect(run_tool("extract", "-p", "pv:0", src, none, NULL), 1, "", err);
    snprintf(err, sizeof err, "lambdad-archive: extract: %s already exists (extract makes a new "
             "archive: give a path where none is)\n", dst);
    expect(run_tool("extract", "-p", "web:3", src, dst, NULL), 1, "", err);
    char *views = path_in(dir, "none.db-views");
    FILE *f = fopen(views, "w");
    fclose(f);
    snprintf(err, sizeof err, "lambdad-archive: extract: %s already exists (extract makes a new "
             "archive: give a path where none is)\n", views);
    expect(run_tool("extract", "-p", "web:3", src, none, NULL), 1, "", err);
    unlink(views);
    free(views);
    CHECK_INT(count_hidden(dir), 0);
    CHECK(access(none, F_OK) != 0);

    expect(run_tool("extract", "-p", "web", src, none, NULL), 2, "",
           "lambdad-archive: --partition: expected TOPIC:P[,P...] (a Kafka topic, then "
           "partition numbers >= 0), got 'web'\n");
    expect(run_tool("extract", "-p", "web:1,-2", src, none, NULL), 2, "",
           "lambdad-archive: --partition: expected TOPIC:P[,P...] (a Kafka topic, then "
           "partition numbers >= 0), got 'web:1,-2'\n");
    expect(run_tool("extract", "-p", "w/b:1", src, none, NULL), 2, "",
           "lambdad-archive: --partition: expected TOPIC:P[,P...] (a Kafka topic, then "
           "partition numbers >= 0), got 'w/b:1'\n");
    expect(run_tool("extract", src, none, NULL), 2, "",
           "lambdad-archive: extract: --partition is required\n");
    expect(run_tool("extract", "-p", "web:3", src, NULL), 2, "",
           "lambdad-archive: extract: expected SRC and DST\n");
    expect(run_tool("extract", "--frob", src, none, NULL), 2, "",
           "lambdad-archive: extract: bad option '--frob' (see --help)\n");
    snprintf(err, sizeof err, "lambdad-archive: %s: archive %s does not exist\n", none, none);
    expect(run_tool("extract", "-p", "web:3", none, none, NULL), 1, "", err);
    free(none);
    free(both);
    free(dst);
}

static void test_drop(const char *dir, const char *src)
{
    char want[1024], err[1024];
    char *views = path_in(dir, "a.db-views"), *views_wal = path_in(dir, "a.db-views-wal");
    FILE *f = fopen(views, "w");
    fputs("views", f);
    fclose(f);
    f = fopen(views_wal, "w");
    fclose(f);

    /* a running daemon holds the lock: refused, nothing touched */
    archlock lk;
    CHECK_INT(archlock_take(src, true, &lk), 0);
    snprintf(err, sizeof err, "lambdad-archive: drop: %s is in use by a running lambdad (pid %d "
             "holds %s-lock): stop it first\n", src, (int)getpid(), src);
    expect(run_tool("drop", "-p", "web:3", src, NULL), 1, "", err);
    archlock_release(&lk);
    CHECK(access(views, F_OK) == 0);

    /* an unknown partition: refused before the views go */
    snprintf(err, sizeof err, "lambdad-archive: drop: archive %s holds no partition web:2 "
             "(it holds clicks:3; web:0,1,3)\n", src);
    expect(run_tool("drop", "-p", "web:2,3", src, NULL), 1, "", err);
    CHECK(access(views, F_OK) == 0);

    snprintf(want, sizeof want, "%s: dropped web:3: 3 events in 3 chunks, 1 reject, 1 next "
             "offset; removed %s-views (lambdad rebuilds its views from the archive at its next "
             "start)\n", src, src);
    expect(run_tool("drop", "--partition", "web:3", src, NULL), 0, want, "");
    CHECK(access(views, F_OK) != 0);
    CHECK(access(views_wal, F_OK) != 0);
    /* what stays: web p0, p1, the imported event, clk p3 */
    snprintf(want, sizeof want, "%s: 4 chunks (4 with a checksum), 5 events, 1 reject: ok\n", src);
    expect(run_tool("verify", src, NULL), 0, want, "");
    expect(run_tool("dump", "--meta", "-s", "web", src, NULL), 0,
           "{\"seq\":1,\"partition\":0,\"offset\":0,\"ts_ms\":1000,"
           "\"event\":{\"s\":\"web\",\"p\":0,\"o\":0}}\n"
           "{\"seq\":1,\"partition\":0,\"offset\":1,\"ts_ms\":2000,"
           "\"event\":{\"s\":\"web\",\"p\":0,\"o\":1}}\n"
           "{\"seq\":6,\"partition\":1,\"offset\":0,\"ts_ms\":7000,"
           "\"event\":{\"s\":\"web\",\"p\":1,\"o\":0}}\n"
           "{\"seq\":7,\"partition\":-1,\"offset\":0,\"ts_ms\":8000,"
           "\"event\":{\"s\":\"web\",\"p\":-1,\"o\":0}}\n", "");
    expect(run_tool("dump", "-s", "clk", src, NULL), 0, "{\"s\":\"clk\",\"p\":3,\"o\":0}\n", "");
    CHECK_INT(offset_of(src, "web", 3), -1);
    CHECK_INT(offset_of(src, "clicks", 3), 1);
    CHECK_INT(offset_of(src, "web", 0), 3);
    CHECK_INT(sql_int(src, "SELECT value FROM meta WHERE key = 'total_events'"), 5);
    CHECK_INT(sql_int(src, "SELECT value FROM meta WHERE key = 'total_rejects'"), 1);
    CHECK_INT(sql_int(src, "SELECT value FROM meta WHERE key = 'total_chunks'"), 4);

    /* dropped twice: the partition is gone, and no views file to remove */
    snprintf(err, sizeof err, "lambdad-archive: drop: archive %s holds no partition web:3 "
             "(it holds clicks:3; web:0,1)\n", src);
    expect(run_tool("drop", "-p", "web:3", src, NULL), 1, "", err);
    snprintf(want, sizeof want, "%s: dropped web:1: 1 event in 1 chunk, 0 rejects, 1 next "
             "offset\n", src);
    expect(run_tool("drop", "-p", "web:1", src, NULL), 0, want, "");

    char *none = path_in(dir, "none.db");
    snprintf(err, sizeof err, "lambdad-archive: %s: archive does not exist\n", none);
    expect(run_tool("drop", "-p", "web:3", none, NULL), 1, "", err);
    CHECK(access(none, F_OK) != 0);
    expect(run_tool("drop", "-p", "web:3", NULL), 2, "",
           "lambdad-archive: drop: expected one ARCHIVE\n");
    expect(run_tool("drop", src, NULL), 2, "", "lambdad-archive: drop: --partition is required\n");
    free(none);
    free(views);
    free(views_wal);
}

/* A damaged chunk stops an extract of its partition (and only of its
 * partition); a drop deletes it with its record. */
static void test_damage(const char *dir)
{
    char *db = path_in(dir, "d.db"), *out = path_in(dir, "d-out.db"), want[1024], err[1024];
    CHECK_INT(make_archive(db, true), 0);
    flip_bit(db, 2);   /* web p3 o0 */
    sql(db, "INSERT INTO damaged_chunks VALUES (2, 'web', 3, 0, 0, 0, 1, 'checksum mismatch', 1)");
    snprintf(err, sizeof err, "lambdad-archive: extract: chunk 2 (stream 'web', partition 3, "
             "offsets 0..0, 1 event, time partition 1970-01-01T00:00:00Z): checksum mismatch: "
             "its events cannot be copied (lambdad-archive verify lists every damaged chunk)\n");
    expect(run_tool("extract", "-p", "web:3", db, out, NULL), 1, "", err);
    CHECK_INT(count_hidden(dir), 0);
    CHECK(access(out, F_OK) != 0);
    snprintf(want, sizeof want, "%s: web:0 from %s: 2 events in 1 chunk, 1 reject; next "
             "offsets web:0=3\n", out, db);
    expect(run_tool("extract", "-p", "web:0", db, out, NULL), 0, want, "");
    snprintf(want, sizeof want, "%s: dropped web:3: 3 events in 3 chunks, 1 reject, 1 next "
             "offset, 1 damaged-chunk record\n", db);
    expect(run_tool("drop", "-p", "web:3", db, NULL), 0, want, "");
    snprintf(want, sizeof want, "%s: 4 chunks (4 with a checksum), 5 events, 1 reject: ok\n", db);
    expect(run_tool("verify", db, NULL), 0, want, "");
    CHECK_INT(sql_int(db, "SELECT count(*) FROM damaged_chunks"), 0);
    free(db);
    free(out);
}

/* An archive whose streams' topics are not recorded (written before
 * lambdad recorded them): its partitions cannot be told apart. */
static void test_unrecorded(const char *dir)
{
    char *db = path_in(dir, "u.db"), *out = path_in(dir, "u-out.db"), err[1024];
    CHECK_INT(make_archive(db, false), 0);
    snprintf(err, sizeof err, "lambdad-archive: extract: archive %s does not record which Kafka "
             "topic stream 'clk' reads (it was last written by an older lambdad): start this "
             "lambdad on it once, then run this again\n", db);
    expect(run_tool("extract", "-p", "web:3", db, out, NULL), 1, "", err);
    snprintf(err, sizeof err, "lambdad-archive: drop: archive %s does not record which Kafka "
             "topic stream 'clk' reads (it was last written by an older lambdad): start this "
             "lambdad on it once, then run this again\n", db);
    expect(run_tool("drop", "-p", "web:3", db, NULL), 1, "", err);
    free(db);
    free(out);
}

/* More than one destination transaction (extract commits every 50000
 * events) and more than one batch of deleted chunks (512): 600 commits of
 * one event of web:3 and one of web:0 each, then 50001 events of web:3. */
static void test_large(const char *dir)
{
    char *db = path_in(dir, "l.db"), *out = path_in(dir, "l-out.db"), want[1024];
    arch *a = NULL;
    char *err = NULL;
    arch_txn *t = arch_txn_new();
    CHECK_INT(arch_open(db, 0, 3, &a, &err), 0);
    CHECK_INT(arch_record_stream_topic(a, "web", "web", &err), 0);
    for (int i = 0; i < 600; i++) {
        CHECK_INT(add(t, "web", 3, i, 1000 + i), 0);
        CHECK_INT(add(t, "web", 0, i, 1000 + i), 0);
        CHECK_INT(arch_txn_set_offset(t, "web", 3, i + 1), 0);
        CHECK_INT(arch_txn_set_offset(t, "web", 0, i + 1), 0);
        CHECK_INT(arch_commit(a, t, NULL, &err), 0);
        arch_txn_reset(t);
    }
    for (int i = 600; i < 50601; i++)
        CHECK_INT(add(t, "web", 3, i, 5000), 0);
    CHECK_INT(arch_txn_set_offset(t, "web", 3, 50601), 0);
    CHECK_INT(arch_commit(a, t, NULL, &err), 0);
    arch_txn_free(t);
    arch_close(a);
    free(err);

    snprintf(want, sizeof want, "%s: web:3 from %s: 50601 events in 2 chunks, 0 rejects; next "
             "offsets web:3=50601\n", out, db);
    expect(run_tool("extract", "-p", "web:3", db, out, NULL), 0, want, "");
    snprintf(want, sizeof want, "%s: 2 chunks (2 with a checksum), 50601 events, 0 rejects: ok\n",
             out);
    expect(run_tool("verify", out, NULL), 0, want, "");
    CHECK_INT(sql_int(out, "SELECT n FROM chunks WHERE seq = 1"), 50000);
    CHECK_INT(sql_int(out, "SELECT first_offset FROM chunks WHERE seq = 2"), 50000);
    snprintf(want, sizeof want, "%s: dropped web:3: 50601 events in 601 chunks, 0 rejects, 1 "
             "next offset\n", db);
    expect(run_tool("drop", "-p", "web:3", db, NULL), 0, want, "");
    snprintf(want, sizeof want, "%s: 600 chunks (600 with a checksum), 600 events, 0 rejects: "
             "ok\n", db);
    expect(run_tool("verify", db, NULL), 0, want, "");
    free(db);
    free(out);
}

int main(void)
{
    char dir[] = "/tmp/test_archtool_move.XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char *src = path_in(dir, "a.db");
    CHECK_INT(make_archive(src, true), 0);
    test_extract(dir, src);
    test_drop(dir, src);
    test_damage(dir);
    test_unrecorded(dir);
    test_large(dir);
    struct run h = run_tool("extract", "--help", NULL);
    CHECK_INT(h.rc, 0);
    CHECK(h.out && strstr(h.out, "       lambdad-archive extract --partition TOPIC:P[,P...] SRC DST\n"
                                 "       lambdad-archive drop --partition TOPIC:P[,P...] ARCHIVE\n"));
    CHECK(h.out && strstr(h.out, "  extract  make the new archive DST"));
    run_free(&h);
    free(src);
    char *cmd = NULL;
    if (asprintf(&cmd, "rm -rf '%s'", dir) > 0 && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    free(cmd);
    CHECK_DONE();
}
