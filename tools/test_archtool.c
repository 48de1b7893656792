/* test_archtool.c - unit tests of lambdad-archive (tools/archtool.c): an
 * archive written through archive.h is dumped back exactly (line breaks in
 * events, seq ranges, --meta), stats, verify (clean, damaged, inconsistent),
 * and every usage error's exact message and exit status. */
#include "tools/archtool.h"
#include "tests/unit/check.h"
#include "tools/test_archtool.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <unistd.h>

#include "archive/archive.h"

static int add(arch_txn *t, const char *stream, int32_t part, int64_t off, int64_t ts_ms,
               const char *payload)
{
    return arch_txn_add_event(t, stream, part, 0, off, ts_ms, payload, strlen(payload));
}

static const char EV1[] = "{\"ts\":1,\"a\":\"x\"}";
static const char EV2[] = "{\n\"ts\":2,\r\n\"a\":\"y\"}";           /* CR LF as whitespace */
static const char EV3[] = "{\"ts\":3,\"s\":\"q\\\"\n\",\"b\":\"\\\\\"}"; /* LF inside a string */
static const char EV4[] = "{\"ts\":4}";

/* seq 1: pv p0 (EV1, EV2); seq 2: other (EV4) and a reject; seq 3: pv p1 (EV3) */
static int make_archive(const char *path)
{
    arch *a = NULL;
    char *err = NULL;
    int64_t seq = 0;
    int r = arch_open(path, 0, 3, &a, &err);
    arch_txn *t = arch_txn_new();
    if (r < 0 || !t)
        goto done;
    if ((r = add(t, "pv", 0, 5, 1000, EV1)) < 0 || (r = add(t, "pv", 0, 6, 2000, EV2)) < 0 ||
        (r = arch_commit(a, t, &seq, &err)) < 0)
        goto done;
    arch_txn_reset(t);
    if ((r = add(t, "other", 0, 0, 4000, EV4)) < 0 ||
        (r = arch_txn_add_reject(t, "pv", 0, 7, "invalid_json", "x", "{", 1)) < 0 ||
        (r = arch_commit(a, t, &seq, &err)) < 0)
        goto done;
    arch_txn_reset(t);
    if ((r = add(t, "pv", 1, 0, 3000, EV3)) < 0 || (r = arch_commit(a, t, &seq, &err)) < 0)
        goto done;
    r = seq == 3 ? 0 : -EPROTO;
done:
    if (err)
        fprintf(stderr, "make_archive: %s\n", err);
    free(err);
    arch_txn_free(t);
    arch_close(a);
    return r;
}

static const char LINE1[] = "{\"ts\":1,\"a\":\"x\"}\n";
static const char LINE2[] = "{ \"ts\":2,  \"a\":\"y\"}\n";
static const char LINE3[] = "{\"ts\":3,\"s\":\"q\\\"\\n\",\"b\":\"\\\\\"}\n";

static void test_verify(const char *dir)
{
    char db[256], want[1024];
    snprintf(db, sizeof db, "%s/v.db", dir);
    CHECK_INT(make_archive(db), 0);

    struct run r = run_tool("verify", db, NULL);
    snprintf(want, sizeof want, "%s: 3 chunks (3 with a checksum), 4 events, 1 reject: ok\n", db);
    CHECK_INT(r.rc, 0);
    CHECK_STR(r.out, want);
    CHECK_STR(r.err, "");
    run_free(&r);

    /* one bit flipped in chunk 1: named, exit 1; dump skips it and says so */
    flip_bit(db, 1);
    r = run_tool("verify", db, NULL);
    snprintf(want, sizeof want,
             "damaged chunk 1 (stream 'pv', partition 0, offsets 5..6, 2 events, time partition "
             "1970-01-01T00:00:00Z): checksum mismatch\n"
             "%s: 3 chunks (3 with a checksum), 4 events, 1 reject: 1 damaged chunk (2 events "
             "unreadable)\n", db);
    CHECK_INT(r.rc, 1);
    CHECK_STR(r.out, want);
    CHECK_STR(r.err, "");
    run_free(&r);
    r = run_tool("dump", "-s", "pv", db, NULL);
    CHECK_INT(r.rc, 1);
    CHECK_STR(r.out, LINE3);
    snprintf(want, sizeof want,
             "lambdad-archive: %s: skipped damaged chunk 1 (stream 'pv', partition 0, offsets "
             "5..6, 2 events, time partition 1970-01-01T00:00:00Z): checksum mismatch\n"
             "lambdad-archive: %s: 1 damaged chunk(s) skipped (see lambdad-archive verify)\n",
             db, db);
    CHECK_STR(r.err, want);
    run_free(&r);

    /* readable but inconsistent: an event outside its chunk's time
     * partition (under the archive's unit), totals that disagree, and a
     * chunk written before checksums (counted, not a problem) */
    flip_bit(db, 1);   /* back as it was */
    arch *a = NULL;
    arch_txn *t = arch_txn_new();
    int64_t seq = 0;
    CHECK_INT(arch_open(db, 0, 3, &a, NULL), 0);
    CHECK_INT(arch_txn_add_event(t, "late", 0, 86400, 9, 5000, "{}", 2), 0);
    CHECK_INT(arch_commit(a, t, &seq, NULL), 0);
    CHECK_INT(seq, 4);
    arch_txn_free(t);
    arch_close(a);
    sql(db, "INSERT INTO meta (key, value) VALUES ('partition', 'day');"
            "UPDATE meta SET value = value + 1 WHERE key = 'total_events';"
            "UPDATE chunk_data SET checksum = NULL WHERE seq = 2;");
    r = run_tool("verify", db, NULL);
    snprintf(want, sizeof want,
             "inconsistent chunk 4 (stream 'late', partition 0, offsets 9..9, 1 event, time "
             "partition 1970-01-02T00:00:00Z): an event's time lies outside the chunk's time "
             "partition\n"
             "problem: stored totals: total_events is 6, the tables hold 5\n"
             "%s: 4 chunks (3 with a checksum, 1 older without), 5 events, 1 reject: "
             "2 problems\n", db);
    CHECK_INT(r.rc, 1);
    CHECK_STR(r.out, want);
    run_free(&r);

    r = run_tool("verify", NULL);
    CHECK_INT(r.rc, 2);
    CHECK_STR(r.err, "lambdad-archive: verify: expected one ARCHIVE\n");
    run_free(&r);
    snprintf(want, sizeof want, "%s/none.db", dir);
    r = run_tool("verify", want, NULL);
    CHECK_INT(r.rc, 1);
    CHECK(r.err && strstr(r.err, "does not exist"));
    run_free(&r);

    unlink(db);
}

int main(void)
{
    char dir[] = "/tmp/test_archtool.XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char db[sizeof dir + 16];
    snprintf(db, sizeof db, "%s/a.db", dir);
    CHECK_INT(make_archive(db), 0);

    char want[512];
    struct run r = run_tool("dump", "--stream", "pv", db, NULL);
    snprintf(want, sizeof want, "%s%s%s", LINE1, LINE2, LINE3);
    CHECK_INT(r.rc, 0);
    CHECK_STR(r.out, want);
    CHECK_STR(r.err, "");
    run_free(&r);

    r = run_tool("dump", "-s", "pv", "--from-seq", "1", db, NULL);
    CHECK_INT(r.rc, 0);
    CHECK_STR(r.out, LINE3);
    run_free(&r);

    r = run_tool("dump", "-s", "pv", "--to-seq", "2", db, NULL);
    snprintf(want, sizeof want, "%s%s", LINE1, LINE2);
    CHECK_INT(r.rc, 0);
    CHECK_STR(r.out, want);
    run_free(&r);

    r = run_tool("dump", "-s", "pv", "--from-seq", "3", db, NULL);
    CHECK_INT(r.rc, 0);
    CHECK_STR(r.out, "");
    run_free(&r);

    r = run_tool("dump", "--meta", "--stream", "other", db, NULL);
    CHECK_INT(r.rc, 0);
    CHECK_STR(r.out, "{\"seq\":2,\"partition\":0,\"offset\":0,\"ts_ms\":4000,\"event\":{\"ts\":4}}\n");
    run_free(&r);

    r = run_tool("dump", "--meta", "--stream", "pv", "--to-seq", "1", db, NULL);
    CHECK_INT(r.rc, 0);
    CHECK_STR(r.out, "{\"seq\":1,\"partition\":0,\"offset\":5,\"ts_ms\":1000,\"event\":{\"ts\":1,\"a\":\"x\"}}\n"
                     "{\"seq\":1,\"partition\":0,\"offset\":6,\"ts_ms\":2000,\"event\":{ \"ts\":2,  \"a\":\"y\"}}\n");
    run_free(&r);

    /* event-time filters: [from, to), in seconds, milliseconds or RFC 3339 */
    r = run_tool("dump", "-s", "pv", "--from", "2", "--to", "3", db, NULL);
    CHECK_INT(r.rc, 0);
    CHECK_STR(r.out, LINE2);
    run_free(&r);
    r = run_tool("dump", "-s", "pv", "--from", "1970-01-01T00:00:03Z", db, NULL);
    CHECK_INT(r.rc, 0);
    CHECK_STR(r.out, LINE3);
    run_free(&r);
    r = run_tool("dump", "-s", "pv", "--to", "2", db, NULL);
    CHECK_INT(r.rc, 0);
    CHECK_STR(r.out, LINE1);
    run_free(&r);
    r = run_tool("dump", "-s", "pv", "--from", "2", "--to", "2", db, NULL);
    CHECK_INT(r.rc, 0);
    CHECK_STR(r.out, "");
    run_free(&r);

    /* without --stream: every stream, by name; --meta then names it */
    r = run_tool("dump", db, NULL);
    snprintf(want, sizeof want, "%s\n%s%s%s", EV4, LINE1, LINE2, LINE3);
    CHECK_INT(r.rc, 0);
    CHECK_STR(r.out, want);
    run_free(&r);
    r = run_tool("dump", "--meta", "--from", "1970-01-01T00:00:03.5Z", "--to", "100000000000",
                 db, NULL);
    CHECK_INT(r.rc, 0);
    CHECK_STR(r.out, "{\"stream\":\"other\",\"seq\":2,\"partition\":0,\"offset\":0,\"ts_ms\":4000,"
                     "\"event\":{\"ts\":4}}\n");
    run_free(&r);

    r = run_tool("dump", "--stream", "nope", db, NULL);
    CHECK_INT(r.rc, 0);
    CHECK_STR(r.out, "");
    run_free(&r);

    r = run_tool("stats", db, NULL);
    size_t payload = strlen(EV1) + strlen(EV2) + strlen(EV3) + strlen(EV4);
    long long bytes = -1;
    CHECK_INT(r.rc, 0);
    CHECK(r.out && strstr(r.out, "\"file_bytes\":"));
    if (r.out && strstr(r.out, "\"file_bytes\":"))
        bytes = atoll(strstr(r.out, "\"file_bytes\":") + 13);
    CHECK(bytes > 0);
    snprintf(want, sizeof want,
             "{\"events\":4,\"rejects\":1,\"chunks\":3,\"last_seq\":3,\"file_bytes\":%lld,"
             "\"payload_bytes\":%zu}\n",
             bytes, payload);
    CHECK_STR(r.out, want);
    run_free(&r);

    /* usage errors: exit 2, one exact line */
    r = run_tool(NULL);
    CHECK_INT(r.rc, 2);
    CHECK(r.err && !strncmp(r.err, "Usage: lambdad-archive dump", 27));
    run_free(&r);
    r = run_tool("frob", db, NULL);
    CHECK_INT(r.rc, 2);
    CHECK_STR(r.err, "lambdad-archive: unknown command 'frob' (dump, stats, verify, extract, drop)\n");
    run_free(&r);
    r = run_tool("dump", "-s", "pv", "--from", "yesterday", db, NULL);
    CHECK_INT(r.rc, 2);
    CHECK_STR(r.err, "lambdad-archive: --from: expected epoch seconds, epoch milliseconds or "
                     "RFC 3339, got 'yesterday'\n");
    run_free(&r);
    r = run_tool("dump", "--from", "3", "--to", "2", db, NULL);
    CHECK_INT(r.rc, 2);
    CHECK_STR(r.err, "lambdad-archive: dump: --from is after --to\n");
    run_free(&r);
    r = run_tool("dump", "-s", "pv", NULL);
    CHECK_INT(r.rc, 2);
    CHECK_STR(r.err, "lambdad-archive: dump: expected one ARCHIVE\n");
    run_free(&r);
    r = run_tool("dump", "-s", "pv", db, db, NULL);
    CHECK_INT(r.rc, 2);
    CHECK_STR(r.err, "lambdad-archive: dump: expected one ARCHIVE\n");
    run_free(&r);
    r = run_tool("dump", "-s", "pv", "--from-seq", "-1", db, NULL);
    CHECK_INT(r.rc, 2);
    CHECK_STR(r.err, "lambdad-archive: --from-seq: expected a seq (integer >= 0), got '-1'\n");
    run_free(&r);
    r = run_tool("dump", "-s", "pv", "--to-seq", "1x", db, NULL);
    CHECK_INT(r.rc, 2);
    CHECK_STR(r.err, "lambdad-archive: --to-seq: expected a seq (integer >= 0), got '1x'\n");
    run_free(&r);
    r = run_tool("dump", "--bogus", "-s", "pv", db, NULL);
    CHECK_INT(r.rc, 2);
    CHECK_STR(r.err, "lambdad-archive: dump: bad option '--bogus' (see --help)\n");
    run_free(&r);
    r = run_tool("stats", NULL);
    CHECK_INT(r.rc, 2);
    CHECK_STR(r.err, "lambdad-archive: stats: expected one ARCHIVE\n");
    run_free(&r);
    r = run_tool("--help", NULL);
    CHECK_INT(r.rc, 0);
    CHECK(r.out && !strncmp(r.out, "Usage: lambdad-archive dump", 27));
    CHECK_STR(r.err, "");
    run_free(&r);

    /* a missing archive: exit 1, named, and never created (read-only) */
    char missing[sizeof dir + 16];
    snprintf(missing, sizeof missing, "%s/none.db", dir);
    r = run_tool("dump", "-s", "pv", missing, NULL);
    CHECK_INT(r.rc, 1);
    snprintf(want, sizeof want, "lambdad-archive: %s: ", missing);
    CHECK(r.err && !strncmp(r.err, want, strlen(want)));
    CHECK_STR(r.out, "");
    CHECK(access(missing, F_OK) != 0);
    run_free(&r);

    /* a write error is reported, not ignored */
    FILE *full = fopen("/dev/full", "w");
    if (full) {
        setvbuf(full, NULL, _IONBF, 0);
        CHECK_INT(archtool_write_line(full, "{}", 2), -EIO);
        fclose(full);
    }

    test_verify(dir);

    unlink(db);
    char side[sizeof dir + 32];
    snprintf(side, sizeof side, "%s-wal", db);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", db);
    unlink(side);
    rmdir(dir);
    CHECK_DONE();
}
