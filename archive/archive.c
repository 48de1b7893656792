/* archive.c - opening the archive: schema, pragmas, totals, small reads.
 *
 * The archive is one SQLite database in WAL mode, so readers (recovery,
 * batch runs; each with its own ARCH_READONLY handle) never block the
 * writer (the speed thread) and see only committed transactions. Schema
 * (version 1, in PRAGMA user_version):
 *
 *   chunks(seq INTEGER PRIMARY KEY AUTOINCREMENT, stream, part, tpart,
 *          first_offset, last_offset, n, min_ts_ms, max_ts_ms,
 *          raw_bytes, payload_bytes, codec)
 *       One row per (stream, Kafka partition, time partition) per commit
 *       (chunk.h has the format). seq is the rowid; AUTOINCREMENT keeps it
 *       strictly increasing in commit order and never reused. first/last
 *       offset are the smallest and largest (events are in offset order),
 *       raw_bytes the size before compression, payload_bytes the sum of
 *       the events' lengths, codec 0 raw or 1 zstd.
 *   chunks_stream_tpart ON chunks(stream, tpart, seq)
 *       so a batch run reads only the time partitions it recomputes.
 *   chunk_data(seq INTEGER PRIMARY KEY, data BLOB)
 *       The compressed bytes, apart from the metadata: a blob stored in
 *       chunks would fill its leaf pages, and reading the totals at open,
 *       or the metadata of a scan, would read ~2 KB per chunk instead of
 *       ~60 bytes.
 *   offsets(topic, part, next_offset, PRIMARY KEY(topic, part))
 *       The next Kafka offset of every partition, written in the same
 *       transaction as its events (DESIGN.md, "The exactness protocol").
 *   rejects(id INTEGER PRIMARY KEY AUTOINCREMENT, topic, part,
 *           kafka_offset, reason, detail, raw, at_ms)
 *   meta(key TEXT PRIMARY KEY, value)   reserved (batch watermark, ...).
 *
 * synchronous=NORMAL: in WAL mode a commit is then not fsync'd, and a
 * power loss may roll back the last transactions. Exactness still holds
 * because the stored offsets roll back with their events: the consumer
 * resumes at the older offset and reads those events from Kafka again.
 * Anything derived from the archive and kept in another file (a batch
 * view and its seq R) must not outlive what it was derived from: keep it
 * in this file, whose WAL replays in order, or sync this WAL first.
 *
 * A handle is one connection used by one thread at a time; nothing here
 * locks. SQLite's busy timeout covers a second connection holding the
 * write lock briefly (a reader's checkpoint, an admin tool).
 */
#include "archive/archive_int.h"

#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define BUSY_TIMEOUT_MS 5000

static const char SCHEMA[] =
    "CREATE TABLE chunks ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " stream TEXT NOT NULL, part INTEGER NOT NULL, tpart INTEGER NOT NULL,"
    " first_offset INTEGER NOT NULL, last_offset INTEGER NOT NULL, n INTEGER NOT NULL,"
    " min_ts_ms INTEGER NOT NULL, max_ts_ms INTEGER NOT NULL,"
    " raw_bytes INTEGER NOT NULL, payload_bytes INTEGER NOT NULL, codec INTEGER NOT NULL);"
    "CREATE INDEX chunks_stream_tpart ON chunks(stream, tpart, seq);"
    "CREATE TABLE chunk_data (seq INTEGER PRIMARY KEY, data BLOB NOT NULL);"
    "CREATE TABLE offsets (topic TEXT NOT NULL, part INTEGER NOT NULL,"
    " next_offset INTEGER NOT NULL, PRIMARY KEY (topic, part)) WITHOUT ROWID;"
    "CREATE TABLE rejects ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, part INTEGER NOT NULL,"
    " kafka_offset INTEGER NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL,"
    " raw BLOB NOT NULL, at_ms INTEGER NOT NULL);"
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
    "PRAGMA user_version = 1;";

int arch_fail(char **errmsg, int rc, const char *fmt, ...)
{
    if (errmsg) {
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(errmsg, fmt, ap) < 0)
            *errmsg = NULL;
        va_end(ap);
    }
    return rc;
}

int arch_errno(int sqlite_rc)
{
    switch (sqlite_rc & 0xff) {
    case SQLITE_NOMEM: return -ENOMEM;
    case SQLITE_FULL: return -ENOSPC;
    case SQLITE_READONLY: return -EROFS;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return -EBUSY;
    case SQLITE_PERM:
    case SQLITE_AUTH: return -EACCES;
    case SQLITE_CANTOPEN: return -ENOENT;
    case SQLITE_CORRUPT: return -EBADMSG;
    case SQLITE_NOTADB: return -EINVAL;
    case SQLITE_TOOBIG: return -E2BIG;
    default: return -EIO;
    }
}

int arch_sqlfail(arch *a, char **errmsg, int rc, const char *what)
{
    return arch_fail(errmsg, arch_errno(rc), "%s: %s", what, sqlite3_errmsg(a->db));
}

/* Runs a statement that returns one integer row. SQLite result code. */
static int query_int(sqlite3 *db, const char *sql, int64_t *v)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *v = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

/* Reloads the totals from the tables, in one read transaction. */
static int load_totals(arch *a)
{
    int rc = sqlite3_step(a->st_data_version);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(a->st_data_version);
        return arch_errno(rc);
    }
    int64_t dv = sqlite3_column_int64(a->st_data_version, 0);
    sqlite3_reset(a->st_data_version);

    sqlite3_stmt *st;
    rc = sqlite3_prepare_v2(a->db,
                            "SELECT count(*), coalesce(sum(n), 0), coalesce(max(seq), 0),"
                            " coalesce(sum(payload_bytes), 0), (SELECT count(*) FROM rejects)"
                            " FROM chunks", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return arch_errno(rc);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        a->tot.chunks = sqlite3_column_int64(st, 0);
        a->tot.events = sqlite3_column_int64(st, 1);
        a->tot.last_seq = sqlite3_column_int64(st, 2);
        a->tot.payload_bytes = sqlite3_column_int64(st, 3);
        a->tot.rejects = sqlite3_column_int64(st, 4);
        a->data_version = dv;
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? 0 : arch_errno(rc);
}

/* Creates the schema in an empty database, under the write lock so two
 * writers opening a new file at once cannot both create it. */
static int create_schema(arch *a, char **errmsg)
{
    int rc = sqlite3_exec(a->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return arch_fail(errmsg, arch_errno(rc), "cannot create the schema of archive %s: %s",
                         a->path, sqlite3_errmsg(a->db));
    int64_t version = 0, ntables = 0;
    rc = query_int(a->db, "PRAGMA user_version", &version);
    if (rc == SQLITE_OK)
        rc = query_int(a->db, "SELECT count(*) FROM sqlite_master", &ntables);
    if (rc == SQLITE_OK && version == 0 && ntables > 0) {
        sqlite3_exec(a->db, "ROLLBACK", NULL, NULL, NULL);
        return arch_fail(errmsg, -EINVAL, "%s is an SQLite database but not a lambdad archive",
                         a->path);
    }
    if (rc == SQLITE_OK && version == 0)
        rc = sqlite3_exec(a->db, SCHEMA, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(a->db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        int r = arch_fail(errmsg, arch_errno(rc), "cannot create the schema of archive %s: %s",
                          a->path, sqlite3_errmsg(a->db));
        sqlite3_exec(a->db, "ROLLBACK", NULL, NULL, NULL);
        return r;
    }
    return 0;
}

static int set_wal(arch *a, char **errmsg)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(a->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    const unsigned char *mode = rc == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
    int r = 0;
    if (rc != SQLITE_ROW)
        r = arch_fail(errmsg, arch_errno(rc), "cannot set WAL mode on archive %s: %s", a->path,
                      sqlite3_errmsg(a->db));
    else if (!mode || strcmp((const char *)mode, "wal") != 0)
        r = arch_fail(errmsg, -ENOTSUP, "archive %s cannot use WAL mode (journal mode is %s)",
                      a->path, mode ? (const char *)mode : "unknown");
    sqlite3_finalize(st);
    if (r < 0)
        return r;
    rc = sqlite3_exec(a->db,
                      "PRAGMA synchronous=NORMAL;"
                      /* truncate the WAL after checkpoints beyond 64 MiB */
                      "PRAGMA journal_size_limit=67108864;", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return arch_fail(errmsg, arch_errno(rc), "cannot set up archive %s: %s", a->path,
                         sqlite3_errmsg(a->db));
    return 0;
}

static int prepare(arch *a, sqlite3_stmt **st, const char *sql, char **errmsg)
{
    int rc = sqlite3_prepare_v3(a->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
    if (rc != SQLITE_OK)
        return arch_fail(errmsg, arch_errno(rc), "archive %s: cannot prepare \"%s\": %s", a->path,
                         sql, sqlite3_errmsg(a->db));
    return 0;
}

static int prepare_all(arch *a, char **errmsg)
{
    int r = prepare(a, &a->st_get_offset,
                    "SELECT next_offset FROM offsets WHERE topic = ?1 AND part = ?2", errmsg);
    if (r == 0)
        r = prepare(a, &a->st_data_version, "PRAGMA data_version", errmsg);
    if (a->readonly || r < 0)
        return r;
    if (r == 0)
        r = prepare(a, &a->st_begin, "BEGIN IMMEDIATE", errmsg);
    if (r == 0)
        r = prepare(a, &a->st_commit, "COMMIT", errmsg);
    if (r == 0)
        r = prepare(a, &a->st_rollback, "ROLLBACK", errmsg);
    if (r == 0)
        r = prepare(a, &a->st_chunk,
                    "INSERT INTO chunks (stream, part, tpart, first_offset, last_offset, n,"
                    " min_ts_ms, max_ts_ms, raw_bytes, payload_bytes, codec)"
                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)", errmsg);
    if (r == 0)
        r = prepare(a, &a->st_data, "INSERT INTO chunk_data (seq, data) VALUES (?1, ?2)", errmsg);
    if (r == 0)
        r = prepare(a, &a->st_reject,
                    "INSERT INTO rejects (topic, part, kafka_offset, reason, detail, raw, at_ms)"
                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)", errmsg);
    if (r == 0)
        r = prepare(a, &a->st_offset,
                    "INSERT INTO offsets (topic, part, next_offset) VALUES (?1, ?2, ?3)"
                    " ON CONFLICT (topic, part) DO UPDATE SET next_offset = excluded.next_offset",
                    errmsg);
    return r;
}

/* A clear message for a path that cannot be opened, before SQLite gives
 * its generic "unable to open database file". */
static int check_path(const char *path, bool readonly, char **errmsg)
{
    struct stat st;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return arch_fail(errmsg, -EISDIR, "archive %s is a directory", path);
        return 0;
    }
    if (errno != ENOENT)
        return arch_fail(errmsg, -errno, "cannot open archive %s: %s", path, strerror(errno));
    if (readonly)
        return arch_fail(errmsg, -ENOENT, "archive %s does not exist", path);
    char *copy = strdup(path);
    if (!copy)
        return arch_fail(errmsg, -ENOMEM, "out of memory");
    const char *dir = dirname(copy);
    int r = 0;
    if (stat(dir, &st) != 0)
        r = arch_fail(errmsg, -errno, "cannot create archive %s: directory %s: %s", path, dir,
                      strerror(errno));
    else if (!S_ISDIR(st.st_mode))
        r = arch_fail(errmsg, -ENOTDIR, "cannot create archive %s: %s is not a directory", path,
                      dir);
    free(copy);
    return r;
}

int arch_open(const char *path, int flags, int compression_level, arch **out, char **errmsg)
{
    *out = NULL;
    if (errmsg)
        *errmsg = NULL;
    if (flags & ~ARCH_READONLY)
        return arch_fail(errmsg, -EINVAL, "arch_open: unknown flags %#x", (unsigned)flags);
    bool ro = flags & ARCH_READONLY;
    if (!ro && (compression_level < ZSTD_minCLevel() || compression_level > ZSTD_maxCLevel()))
        return arch_fail(errmsg, -EINVAL, "archive compression level %d is not in [%d, %d]",
                         compression_level, ZSTD_minCLevel(), ZSTD_maxCLevel());
    int r = check_path(path, ro, errmsg);
    if (r < 0)
        return r;

    arch *a = calloc(1, sizeof *a);
    if (!a)
        return arch_fail(errmsg, -ENOMEM, "out of memory");
    a->readonly = ro;
    a->level = compression_level;
    a->path = strdup(path);
    if (!a->path || asprintf(&a->wal_path, "%s-wal", path) < 0) {
        a->wal_path = NULL;
        r = arch_fail(errmsg, -ENOMEM, "out of memory");
        goto fail;
    }
    int oflags = SQLITE_OPEN_NOMUTEX |
                 (ro ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    int rc = sqlite3_open_v2(path, &a->db, oflags, NULL);
    if (rc != SQLITE_OK) {
        int sys = a->db ? sqlite3_system_errno(a->db) : 0;
        if (sys)
            r = arch_fail(errmsg, -sys, "cannot open archive %s: %s", path, strerror(sys));
        else
            r = arch_fail(errmsg, arch_errno(rc), "cannot open archive %s: %s", path,
                          a->db ? sqlite3_errmsg(a->db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_busy_timeout(a->db, BUSY_TIMEOUT_MS);

    /* the first read: tells a file that is not SQLite at all */
    int64_t version = 0;
    rc = query_int(a->db, "PRAGMA user_version", &version);
    if (rc == SQLITE_NOTADB) {
        r = arch_fail(errmsg, -EINVAL, "%s is not an SQLite database", path);
        goto fail;
    }
    if (rc != SQLITE_OK) {
        r = arch_fail(errmsg, arch_errno(rc), "cannot read archive %s: %s", path,
                      sqlite3_errmsg(a->db));
        goto fail;
    }
    if (version > ARCH_SCHEMA_VERSION) {
        r = arch_fail(errmsg, -ENOTSUP,
                      "archive %s has schema version %lld, newer than this lambdad supports (%d)",
                      path, (long long)version, ARCH_SCHEMA_VERSION);
        goto fail;
    }
    if (ro && version == 0) {
        r = arch_fail(errmsg, -EINVAL, "%s is not a lambdad archive (no schema)", path);
        goto fail;
    }
    if (!ro) {
        if ((r = set_wal(a, errmsg)) < 0 || (r = create_schema(a, errmsg)) < 0)
            goto fail;
        a->cctx = ZSTD_createCCtx();
        if (!a->cctx) {
            r = arch_fail(errmsg, -ENOMEM, "out of memory");
            goto fail;
        }
    }
    if ((r = prepare_all(a, errmsg)) < 0)
        goto fail;
    if ((r = load_totals(a)) < 0) {
        r = arch_fail(errmsg, r, "cannot read the totals of archive %s: %s", path,
                      sqlite3_errmsg(a->db));
        goto fail;
    }
    *out = a;
    return 0;
fail:
    arch_close(a);
    return r;
}

void arch_close(arch *a)
{
    if (!a)
        return;
    sqlite3_finalize(a->st_begin);
    sqlite3_finalize(a->st_commit);
    sqlite3_finalize(a->st_rollback);
    sqlite3_finalize(a->st_chunk);
    sqlite3_finalize(a->st_data);
    sqlite3_finalize(a->st_reject);
    sqlite3_finalize(a->st_offset);
    sqlite3_finalize(a->st_get_offset);
    sqlite3_finalize(a->st_data_version);
    /* the last connection checkpoints and removes the WAL */
    sqlite3_close(a->db);
    ZSTD_freeCCtx(a->cctx);
    free(a->zbuf);
    free(a->path);
    free(a->wal_path);
    free(a);
}

int arch_get_offset(arch *a, const char *topic, int32_t partition, int64_t *next_offset)
{
    sqlite3_stmt *st = a->st_get_offset;
    sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, partition);
    int rc = sqlite3_step(st);
    int r;
    if (rc == SQLITE_ROW) {
        *next_offset = sqlite3_column_int64(st, 0);
        r = 0;
    } else {
        r = rc == SQLITE_DONE ? -ENOENT : arch_errno(rc);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return r;
}

static int64_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_size : 0;
}

int arch_get_stats(arch *a, arch_stats *st)
{
    /* data_version changes only when another connection committed (a
     * reader watching the writer, or a second writer): then recount */
    int rc = sqlite3_step(a->st_data_version);
    int64_t dv = rc == SQLITE_ROW ? sqlite3_column_int64(a->st_data_version, 0) : 0;
    sqlite3_reset(a->st_data_version);
    if (rc != SQLITE_ROW)
        return arch_errno(rc);
    if (dv != a->data_version) {
        int r = load_totals(a);
        if (r < 0)
            return r;
    }
    *st = a->tot;
    st->file_bytes = file_size(a->path) + file_size(a->wal_path);
    return 0;
}
