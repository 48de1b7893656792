/* Unit tests: import_run into a real archive. CSV as pandas writes it
 * (index column, BOM, CRLF, quoted fields with newlines, type inference),
 * rejects with file and line, gzip and zstd (same hash as the plain file:
 * importing them after it archives nothing), and a failed commit halfway
 * followed by a rerun that archives every record exactly once. */
#include "import/import.h"
#include "tests/unit/check.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

static char dir[] = "/tmp/test_importer.XXXXXX";
static char path_buf[256];

static const char *path(const char *name)
{
    snprintf(path_buf, sizeof(path_buf), "%s/%s", dir, name);
    return path_buf;
}

static void write_file(const char *name, const void *data, size_t len)
{
    FILE *f = fopen(path(name), "wb");
    CHECK(f && fwrite(data, 1, len, f) == len);
    if (f)
        fclose(f);
}

static const char CONFIG[] =
    "{\"archive\": {\"path\": \"/tmp/unused.db\"},"
    " \"streams\": [{\"name\": \"pv\", \"topic\": \"pv\", \"time_field\": \"ts\","
    "   \"time_format\": \"epoch_s\"},"
    "  {\"name\": \"other\", \"topic\": \"other\", \"time_field\": \"ts\"},"
    "  {\"name\": \"k\", \"topic\": \"k\", \"time_format\": \"kafka\"}],"
    " \"views\": [{\"name\": \"v\", \"stream\": \"pv\", \"granularity\": \"minute\","
    "   \"dimensions\": [\"page\"], \"metrics\": [{\"name\": \"n\", \"type\": \"count\"},"
    "   {\"name\": \"b\", \"type\": \"sum\", \"field\": \"bytes\"}]}]}";

/* A sink over the archive that fails the commit number fail_at (1-based;
 * 0: never), as a crash between two transactions would leave it. */
typedef struct {
    arch *a;
    int commits, fail_at;
} test_sink;

static int t_begin(void *ud, const char *stream, const char *hash, const char *name,
                   arch_import *out, char **errmsg)
{
    return arch_import_begin(((test_sink *)ud)->a, stream, hash, name, out, errmsg);
}

static int t_commit(void *ud, arch_txn *t, vtable **stage, int64_t events, char **errmsg)
{
    test_sink *s = ud;
    if (++s->commits == s->fail_at) {
        *errmsg = strdup("injected failure");
        return -EIO;
    }
    return arch_commit(s->a, t, NULL, errmsg);
}

/* Imports the open fd (closed here) into stream stream_idx; stop: set
 * before the import starts. */
static int run_fd(const config *cfg, arch *a, int fd, size_t stream_idx, const char *name,
                  import_format fmt, int64_t per, int fail_at, bool stop, import_result *res,
                  char **err)
{
    test_sink s = {.a = a, .fail_at = fail_at};
    atomic_bool stop_flag = stop;
    import_opts o = {.cfg = cfg, .stream_idx = stream_idx, .fmt = fmt, .name = name,
                     .commit_records = per, .stop = &stop_flag,
                     .sink = {.ud = &s, .begin = t_begin, .commit = t_commit}};
    CHECK(fd >= 0);
    *err = NULL;
    int r = import_run(&o, fd, res, err);
    close(fd);
    return r;
}

static int run(const config *cfg, arch *a, const char *name, import_format fmt, int64_t per,
               int fail_at, import_result *res, char **err)
{
    return run_fd(cfg, a, open(path(name), O_RDONLY), 0, name, fmt, per, fail_at, false, res,
                  err);
}

/* Writes the file name and checks that importing it fails with code and
 * exactly the message want. */
static void expect_error(const config *cfg, arch *a, const char *name, const void *data,
                         size_t len, import_format fmt, int code, const char *want)
{
    import_result res;
    char *err = NULL;
    write_file(name, data, len);
    CHECK_INT(run(cfg, a, name, fmt, 0, 0, &res, &err), code);
    CHECK_STR(err, want);
    free(err);
}

typedef struct {
    char text[4096];
    size_t len;
    int n;
} collected;

static int collect(const arch_event *ev, void *ud)
{
    collected *c = ud;
    c->len += (size_t)snprintf(c->text + c->len, sizeof(c->text) - c->len, "%d/%lld %.*s\n",
                               (int)ev->partition, (long long)ev->offset, (int)ev->len,
                               ev->payload);
    c->n++;
    return 0;
}

static int collect_reject(const arch_reject *j, void *ud)
{
    collected *c = ud;
    c->len += (size_t)snprintf(c->text + c->len, sizeof(c->text) - c->len, "%s %d/%lld %s|%s\n",
                               j->topic, (int)j->partition, (long long)j->offset, j->reason,
                               j->detail);
    c->n++;
    return 0;
}

int main(void)
{
    CHECK(mkdtemp(dir) != NULL);
    config *cfg = NULL;
    config_errors errs = {0};
    CHECK_INT(config_load_string(CONFIG, &cfg, &errs), 0);
    arch *a = NULL;
    char *err = NULL;
    CHECK_INT(arch_open(path("a.db"), 0, 3, &a, &err), 0);

    /* pandas: df.to_csv() writes the index as a first column without a
     * name; here also a BOM, CRLF, a quoted value with a newline and a
     * quote, an empty value, a zip-like "01" (not a number: the column
     * stays text) and a record with a field too many */
    static const char csv[] =
        "\xef\xbb\xbf,ts,page,bytes,zip\r\n"
        "0,1763892000,/a,100,01\r\n"
        "1,1763892030,\"/b,\"\"x\"\"\nnext\",2.5,10\r\n"
        "2,1763892090,/a,,10\r\n"
        "\r\n"
        "3,1763892100,/a,7,10,extra\r\n"
        "4,1e30,/c,1,10\r\n";
    write_file("h.csv", csv, sizeof(csv) - 1);
    import_result res;
    CHECK_INT(run(cfg, a, "h.csv", IMPORT_CSV, 2, 0, &res, &err), 0);
    CHECK_INT(res.records, 5);
    CHECK_INT(res.imported, 3);
    CHECK_INT(res.rejected, 2);
    CHECK_INT(res.skipped, 0);
    collected c = {0};
    CHECK_INT(arch_scan(a, "pv", 0, INT64_MAX, 0, -1, collect, NULL, &c, &err), 0);
    CHECK_STR(c.text,
              "-1/0 {\"ts\":1763892000,\"page\":\"/a\",\"bytes\":100,\"zip\":\"01\"}\n"
              "-1/1 {\"ts\":1763892030,\"page\":\"/b,\\\"x\\\"\\nnext\",\"bytes\":2.5,\"zip\":\"10\"}\n"
              "-1/2 {\"ts\":1763892090,\"page\":\"/a\",\"bytes\":null,\"zip\":\"10\"}\n");
    collected rj = {0};
    CHECK_INT(arch_list_rejects(a, 10, collect_reject, &rj, &err), 0);
    CHECK_STR(rj.text,
              "pv -1/4 bad_time|h.csv:8: field 'ts' is out of range (years 0001 to 9999)\n"
              "pv -1/3 invalid_csv|h.csv:7: 6 field(s), the header has 5\n");

    /* again: everything skipped, nothing archived */
    arch_stats before, after;
    CHECK_INT(arch_get_stats(a, &before), 0);
    CHECK_INT(run(cfg, a, "h.csv", IMPORT_CSV, 2, 0, &res, &err), 0);
    CHECK_INT(res.skipped, 5);
    CHECK_INT(res.imported + res.rejected, 0);
    CHECK_INT(arch_get_stats(a, &after), 0);
    CHECK_INT(after.events, before.events);
    CHECK_INT(after.rejects, before.rejects);

    /* JSON lines, the second commit fails (a crash would stop there too):
     * the first two records stay archived; the rerun adds the rest */
    char jl[2048];
    size_t jlen = 0;
    for (int i = 0; i < 7; i++)
        jlen += (size_t)snprintf(jl + jlen, sizeof(jl) - jlen,
                                 "{\"ts\":%d,\"page\":\"/p%d\",\"bytes\":%d}\n", 1763900000 + i,
                                 i % 2, i);
    jlen += (size_t)snprintf(jl + jlen, sizeof(jl) - jlen, "not json\n\n{\"ts\":1763900100}");
    write_file("e.jsonl", jl, jlen);
    CHECK_INT(run(cfg, a, "e.jsonl", IMPORT_JSONL, 2, 2, &res, &err), -EIO);
    CHECK_STR(err, "injected failure");
    free(err);
    CHECK_INT(res.imported, 2);
    CHECK_INT(run(cfg, a, "e.jsonl", IMPORT_JSONL, 2, 0, &res, &err), 0);
    CHECK_INT(res.skipped, 2);
    CHECK_INT(res.imported, 6);
    CHECK_INT(res.rejected, 1);
    CHECK_INT(res.records, 9);
    memset(&c, 0, sizeof(c));
    CHECK_INT(arch_scan(a, "pv", 0, INT64_MAX, 0, -1, collect, NULL, &c, &err), 0);
    CHECK_INT(c.n, 3 + 8);
    CHECK(strstr(c.text, "-2/0 {\"ts\":1763900000,") != NULL);
    CHECK(strstr(c.text, "-2/8 {\"ts\":1763900100}") != NULL);
    memset(&rj, 0, sizeof(rj));
    CHECK_INT(arch_list_rejects(a, 1, collect_reject, &rj, &err), 0);
    CHECK_STR(rj.text, "pv -2/7 invalid_json|e.jsonl:8: invalid literal at byte 0\n");

    /* the same bytes gzip'd (two members) and zstd'd: same hash, skipped */
    char hash_plain[33];
    memcpy(hash_plain, res.hash, sizeof(hash_plain));
    gzFile gz = gzopen(path("e.jsonl.gz"), "wb");
    CHECK(gz != NULL);
    CHECK_INT(gzwrite(gz, jl, 100), 100);
    gzclose(gz);
    gz = gzopen(path("e2.gz"), "wb");
    CHECK_INT(gzwrite(gz, jl + 100, (unsigned)(jlen - 100)), (int)(jlen - 100));
    gzclose(gz);
    FILE *f1 = fopen(path("e.jsonl.gz"), "ab"), *f2 = fopen(path("e2.gz"), "rb");
    char tmp[4096];
    size_t n = fread(tmp, 1, sizeof(tmp), f2);
    CHECK(fwrite(tmp, 1, n, f1) == n);
    fclose(f1);
    fclose(f2);
    CHECK_INT(run(cfg, a, "e.jsonl.gz", IMPORT_JSONL, 0, 0, &res, &err), 0);
    CHECK_STR(res.hash, hash_plain);
    CHECK_INT(res.skipped, 9);
    CHECK_INT(res.data_bytes, jlen);
    char z[4096];
    size_t zn = ZSTD_compress(z, sizeof(z), jl, jlen, 3);
    CHECK(!ZSTD_isError(zn));
    write_file("e.jsonl.zst", z, zn);
    CHECK_INT(run(cfg, a, "e.jsonl.zst", IMPORT_JSONL, 0, 0, &res, &err), 0);
    CHECK_STR(res.hash, hash_plain);
    CHECK_INT(res.skipped, 9);
    /* a truncated zstd file is an error, not a short import */
    write_file("cut.jsonl.zst", z, zn - 5);
    CHECK_INT(run(cfg, a, "cut.jsonl.zst", IMPORT_JSONL, 0, 0, &res, &err), -EBADMSG);
    CHECK_STR(err, "cut.jsonl.zst: zstd data ends early (the file is truncated)");
    free(err);

    /* errors: no header, a duplicate column, an open quote */
    expect_error(cfg, a, "empty.csv", "", 0, IMPORT_CSV, -EINVAL,
                 "empty.csv: no header line (a CSV file starts with the column names)");
    expect_error(cfg, a, "dup.csv", "ts,a,a\n1,2,3\n", 13, IMPORT_CSV, -EINVAL,
                 "dup.csv:1: column 'a' appears twice in the header");
    expect_error(cfg, a, "open.csv", "ts,a\n1,\"x\n2,3\n", 14, IMPORT_CSV, -EBADMSG,
                 "open.csv:2: a quoted field is not closed before the end of the file");

    /* damaged gzip: bytes after a member that are not another member
     * ("xx" is no zlib or gzip header), and a member cut short */
    gz = gzopen(path("g.jsonl.gz"), "wb");
    CHECK_INT(gzwrite(gz, jl, (unsigned)jlen), (int)jlen);
    gzclose(gz);
    FILE *gf = fopen(path("g.jsonl.gz"), "rb");
    size_t gn = fread(tmp, 1, sizeof(tmp), gf);
    fclose(gf);
    memcpy(tmp + gn, "xx", 2);
    expect_error(cfg, a, "junk.jsonl.gz", tmp, gn + 2, IMPORT_JSONL, -EBADMSG,
                 "junk.jsonl.gz: gzip data is damaged: incorrect header check");
    expect_error(cfg, a, "cut.jsonl.gz", tmp, gn - 9, IMPORT_JSONL, -EBADMSG,
                 "cut.jsonl.gz: gzip data ends early (the file is truncated)");

    /* the longest record: IMPORT_MAX_RECORD bytes (without its line
     * break) are imported, one more byte is an error naming its line */
    size_t big_len = IMPORT_MAX_RECORD + 8;
    char *big = malloc(big_len);
    CHECK(big != NULL);
    static const char head[] = "{}\n{\"ts\":1763899999,\"page\":\"";
    memcpy(big, head, sizeof(head) - 1);
    size_t rec_end = 3 + IMPORT_MAX_RECORD;   /* the big record is big[3, rec_end) */
    memset(big + sizeof(head) - 1, 'p', rec_end - 2 - (sizeof(head) - 1));
    memcpy(big + rec_end - 2, "\"}\n", 3);
    write_file("big.jsonl", big, rec_end + 1);
    CHECK_INT(run(cfg, a, "big.jsonl", IMPORT_JSONL, 0, 0, &res, &err), 0);
    CHECK_INT(res.imported, 1);   /* and "{}" rejected: no time */
    CHECK_INT(res.rejected, 1);
    memcpy(big + rec_end - 2, "p\"}\n", 4);
    expect_error(cfg, a, "bigger.jsonl", big, rec_end + 2, IMPORT_JSONL, -E2BIG,
                 "bigger.jsonl:2: a record longer than 16 MiB");
    /* CSV: a quoted field over the limit, also when the file ends in it */
    memcpy(big, "ts\n\"", 4);
    memset(big + 4, 'q', big_len - 4);
    expect_error(cfg, a, "big.csv", big, big_len, IMPORT_CSV, -E2BIG,
                 "big.csv:2: a record longer than 16 MiB");
    free(big);

    /* a stop set before the import: it stops after its first transaction,
     * and the next run resumes there */
    CHECK_INT(run_fd(cfg, a, open(path("e.jsonl"), O_RDONLY), 1, "e.jsonl", IMPORT_JSONL, 3, 0,
                     true, &res, &err), -ECANCELED);
    CHECK_STR(err, "e.jsonl: stopped after record 3; importing it again resumes there");
    free(err);
    CHECK_INT(res.imported, 3);
    CHECK_INT(run_fd(cfg, a, open(path("e.jsonl"), O_RDONLY), 1, "e.jsonl", IMPORT_JSONL, 3, 0,
                     false, &res, &err), 0);
    CHECK_INT(res.skipped, 3);
    CHECK_INT(res.imported + res.rejected, 6);

    /* a pipe cannot be read twice */
    int pfd[2];
    CHECK_INT(pipe(pfd), 0);
    static const char one[] = "{\"ts\":1763899000}\n";
    CHECK_INT(write(pfd[1], one, sizeof(one) - 1), (long long)sizeof(one) - 1);
    close(pfd[1]);
    CHECK_INT(run_fd(cfg, a, pfd[0], 0, "-", IMPORT_JSONL, 0, 0, false, &res, &err), -ESPIPE);
    CHECK_STR(err, "-: cannot read it a second time: Illegal seek");
    free(err);

    /* a stream timed by Kafka: nothing to import into */
    CHECK_INT(run_fd(cfg, a, open(path("e.jsonl"), O_RDONLY), 2, "e.jsonl", IMPORT_JSONL, 0, 0,
                     false, &res, &err), -EINVAL);
    CHECK_STR(err, "stream 'k' takes event times from Kafka message timestamps (time_format "
                   "\"kafka\"); imported events have none");
    free(err);

    import_format fmt;
    CHECK_INT(import_format_of_name("x/a.CSV.gz", &fmt), 0);
    CHECK_INT(fmt, IMPORT_CSV);
    CHECK_INT(import_format_of_name("a.ndjson.zst", &fmt), 0);
    CHECK_INT(fmt, IMPORT_JSONL);
    CHECK_INT(import_format_of_name("a.txt", &fmt), -EINVAL);
    CHECK_INT(import_format_parse("ndjson", &fmt), 0);
    CHECK_INT(fmt, IMPORT_JSONL);
    CHECK_INT(import_format_parse("csv", &fmt), 0);
    CHECK_INT(fmt, IMPORT_CSV);
    CHECK_INT(import_format_parse("tsv", &fmt), -EINVAL);
    CHECK_STR(import_format_name(IMPORT_CSV), "csv");

    arch_close(a);
    config_free(cfg);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK_INT(system(cmd), 0);
    CHECK_DONE();
}
