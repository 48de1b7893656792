/* archive.c - opening the archive: schema, pragmas, totals, small reads.
 *
 * The archive is one SQLite database in WAL mode, so readers (recovery,
 * batch runs; each with its own ARCH_READONLY handle) never block the
 * writer (the speed thread) and see only committed transactions. Schema
 * (version 2, in PRAGMA user_version):
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
 *   chunk_data(seq INTEGER PRIMARY KEY, data BLOB, checksum INTEGER)
 *       The compressed bytes, apart from the metadata: a blob stored in
 *       chunks would fill its leaf pages, and reading the metadata of a
 *       scan would read ~2 KB per chunk instead of ~60 bytes. checksum
 *       (chunk.h says what it covers: the blob and every field of the
 *       chunk's row) is written with every chunk; NULL for chunks written
 *       before version 2, which are still read, checked for structure only.
 *   offsets(topic, part, next_offset, PRIMARY KEY(topic, part))
 *       The next Kafka offset of every partition, written in the same
 *       transaction as its events (DESIGN.md, "The exactness protocol").
 *   rejects(id INTEGER PRIMARY KEY AUTOINCREMENT, topic, part,
 *           kafka_offset, reason, detail, raw, at_ms)
 *   meta(key TEXT PRIMARY KEY, value)
 *       Settings fixed for the archive's lifetime (meta.c), and the running
 *       totals total_events, total_rejects, total_chunks and
 *       total_payload_bytes, updated in the same transaction as every
 *       commit, so opening the archive reads four rows instead of
 *       counting every chunk.
 *       "topic.<stream>": the Kafka topic the stream reads, recorded by
 *       the daemon at start (move.c: a partition's chunks by topic).
 *   damaged_chunks(seq INTEGER PRIMARY KEY, stream, part, tpart,
 *                  first_offset, last_offset, n, reason, found_at)
 *       Chunks that a scan found damaged (damage.c), so a restart still
 *       reports them.
 *   imports(...)
 *       The files imported (imports.c has the table): created by the
 *       writer when absent, so it needs no schema version of its own.
 *
 * Upgrade from version 1 (the writer, at open, in one transaction): the
 * checksum column is added (ALTER TABLE ADD COLUMN: a change of the schema
 * only, instant whatever the size), the totals are counted once and
 * stored, damaged_chunks is created. A read-only handle reads a version 1
 * archive as it is: no checksums, totals counted at open.
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
 * locks. A busy handler (busy_wait: retry every millisecond for up to
 * 5 s) covers a second connection holding the write lock briefly (the
 * batch thread's compaction and retention, a checkpoint, an admin tool).
 */
#include "archive/archive_int.h"

#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define BUSY_TIMEOUT_MS 5000

#define DAMAGED_CHUNKS \
    "CREATE TABLE damaged_chunks (seq INTEGER PRIMARY KEY, stream TEXT NOT NULL," \
    " part INTEGER NOT NULL, tpart INTEGER NOT NULL, first_offset INTEGER NOT NULL," \
    " last_offset INTEGER NOT NULL, n INTEGER NOT NULL, reason TEXT NOT NULL," \
    " found_at INTEGER NOT NULL);"

static const char SCHEMA[] =
    "CREATE TABLE chunks ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " stream TEXT NOT NULL, part INTEGER NOT NULL, tpart INTEGER NOT NULL,"
    " first_offset INTEGER NOT NULL, last_offset INTEGER NOT NULL, n INTEGER NOT NULL,"
    " min_ts_ms INTEGER NOT NULL, max_ts_ms INTEGER NOT NULL,"
    " raw_bytes INTEGER NOT NULL, payload_bytes INTEGER NOT NULL, codec INTEGER NOT NULL);"
    "CREATE INDEX chunks_stream_tpart ON chunks(stream, tpart, seq);"
    "CREATE TABLE chunk_data (seq INTEGER PRIMARY KEY, data BLOB NOT NULL, checksum INTEGER);"
    "CREATE TABLE offsets (topic TEXT NOT NULL, part INTEGER NOT NULL,"
    " next_offset INTEGER NOT NULL, PRIMARY KEY (topic, part)) WITHOUT ROWID;"
    "CREATE TABLE rejects ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, part INTEGER NOT NULL,"
    " kafka_offset INTEGER NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL,"
    " raw BLOB NOT NULL, at_ms INTEGER NOT NULL);"
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
    DAMAGED_CHUNKS
    "INSERT INTO meta (key, value) VALUES ('total_events', 0), ('total_rejects', 0),"
    " ('total_chunks', 0), ('total_payload_bytes', 0);"
    "PRAGMA user_version = 2;";

/* From version 1 to 2; the totals are stored by store_totals after. */
static const char UPGRADE_1_2[] =
    "ALTER TABLE chunk_data ADD COLUMN checksum INTEGER;"
    DAMAGED_CHUNKS
    "PRAGMA user_version = 2;";

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

int arch_note(arch *a, const char *fmt, ...)
{
    char *line = NULL, *all = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -ENOMEM;
    if (!a->note) {
        a->note = line;
        return 0;
    }
    n = asprintf(&all, "%s; %s", a->note, line);
    free(line);
    if (n < 0)
        return -ENOMEM;
    free(a->note);
    a->note = all;
    return 0;
}

const char *arch_open_note(const arch *a)
{
    return a->note;
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

/* Counts the totals from the tables: every chunk row is read, so this
 * is for archives that do not store them (version 1). SQLite result code. */
static int count_totals(arch *a, arch_stats *t)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(a->db,
                                "SELECT count(*), coalesce(sum(n), 0), coalesce(max(seq), 0),"
                                " coalesce(sum(payload_bytes), 0), (SELECT count(*) FROM rejects)"
                                " FROM chunks", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        t->chunks = sqlite3_column_int64(st, 0);
        t->events = sqlite3_column_int64(st, 1);
        t->last_seq = sqlite3_column_int64(st, 2);
        t->payload_bytes = sqlite3_column_int64(st, 3);
        t->rejects = sqlite3_column_int64(st, 4);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

/* Reads the stored totals (and the last seq, from AUTOINCREMENT's
 * sqlite_sequence row). SQLITE_OK, SQLITE_NOTFOUND when some are not stored,
 * or another result code. */
static int read_totals(arch *a, arch_stats *t)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(a->db,
                                "SELECT (SELECT value FROM meta WHERE key = 'total_chunks'),"
                                " (SELECT value FROM meta WHERE key = 'total_events'),"
                                /* the highest seq ever given: compaction and
                                 * retention delete rows, never move it back */
                                " (SELECT coalesce(max(seq), 0) FROM sqlite_sequence"
                                "  WHERE name = 'chunks'),"
                                " (SELECT value FROM meta WHERE key = 'total_payload_bytes'),"
                                " (SELECT value FROM meta WHERE key = 'total_rejects')",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        rc = SQLITE_OK;
        for (int i = 0; i < 5; i++)
            if (sqlite3_column_type(st, i) != SQLITE_INTEGER)
                rc = SQLITE_NOTFOUND;
        t->chunks = sqlite3_column_int64(st, 0);
        t->events = sqlite3_column_int64(st, 1);
        t->last_seq = sqlite3_column_int64(st, 2);
        t->payload_bytes = sqlite3_column_int64(st, 3);
        t->rejects = sqlite3_column_int64(st, 4);
    }
    sqlite3_finalize(st);
    return rc;
}

/* Reloads the totals: the stored ones, or (a version 1 archive on a
 * read-only handle) counted. Each is one statement, so one consistent
 * read; data_version is read first, so a commit in between only makes the
 * next arch_get_stats read them again. */
static int load_totals(arch *a)
{
    int rc = sqlite3_step(a->st_data_version);
    int64_t dv = sqlite3_column_int64(a->st_data_version, 0);
    sqlite3_reset(a->st_data_version);
    if (rc != SQLITE_ROW)
        return arch_errno(rc);
    arch_stats t = { 0 };
    int64_t version = a->version;
    if (version < 2 && query_int(a->db, "PRAGMA user_version", &version) == SQLITE_OK)
        a->version = (int)version;   /* a writer may have upgraded it since */
    rc = a->version >= 2 ? read_totals(a, &t) : SQLITE_NOTFOUND;
    if (rc == SQLITE_NOTFOUND)
        rc = count_totals(a, &t);
    if (rc != SQLITE_OK)
        return arch_errno(rc);
    a->tot = t;
    a->data_version = dv;
    return 0;
}

/* Writer, in its open write transaction: stores t as the totals. */
static int store_totals(arch *a, const arch_stats *t)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(a->db,
                                "INSERT OR REPLACE INTO meta (key, value) VALUES"
                                " ('total_events', ?1), ('total_rejects', ?2),"
                                " ('total_chunks', ?3), ('total_payload_bytes', ?4)",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_int64(st, 1, t->events);
    sqlite3_bind_int64(st, 2, t->rejects);
    sqlite3_bind_int64(st, 3, t->chunks);
    sqlite3_bind_int64(st, 4, t->payload_bytes);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

double arch_mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Writer, in its open write transaction: an archive of version 1, or one
 * whose totals are missing, gets them counted once and stored. */
static int upgrade(arch *a, int64_t version)
{
    int rc = SQLITE_OK;
    if (version == 1) {
        rc = sqlite3_exec(a->db, UPGRADE_1_2, NULL, NULL, NULL);
        if (rc != SQLITE_OK)
            return rc;
        if (arch_note(a, "upgraded from schema version 1 to 2: chunks written from now on "
                         "carry a checksum (older ones are still read, checked for "
                         "structure only)") < 0)
            return SQLITE_NOMEM;
    }
    arch_stats t = { 0 };
    rc = read_totals(a, &t);
    if (rc != SQLITE_NOTFOUND)
        return rc;
    double t0 = arch_mono_s();
    if ((rc = count_totals(a, &t)) != SQLITE_OK || (rc = store_totals(a, &t)) != SQLITE_OK)
        return rc;
    if (arch_note(a, "counted the totals of %lld chunk(s) (%lld event(s), %lld reject(s)) "
                     "in %.3f s and stored them; later opens read them at once",
                  (long long)t.chunks, (long long)t.events, (long long)t.rejects,
                  arch_mono_s() - t0) < 0)
        return SQLITE_NOMEM;
    return SQLITE_OK;
}

/* Creates the schema in an empty database, or upgrades an older one,
 * under the write lock so two writers opening a file at once cannot both
 * do it. */
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
    else if (rc == SQLITE_OK)
        rc = upgrade(a, version);   /* the version was checked by arch_open */
    /* a table that only lambdad import writes: added to any version 2
     * archive when absent (older lambdads ignore it) */
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(a->db, arch_sql_imports, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(a->db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        int r = arch_fail(errmsg, arch_errno(rc), "cannot %s the schema of archive %s: %s",
                          version ? "upgrade" : "create", a->path,
                          rc == SQLITE_NOMEM ? "out of memory" : sqlite3_errmsg(a->db));
        sqlite3_exec(a->db, "ROLLBACK", NULL, NULL, NULL);
        return r;
    }
    a->version = ARCH_SCHEMA_VERSION;
    return 0;
}

static int set_wal(arch *a, char **errmsg)
{
    /* Only a new, empty file takes it (before its first table): freed
     * pages can then be handed back by arch_vacuum (retain.c). An older
     * archive keeps auto_vacuum=NONE until a VACUUM (README, "Retention"). */
    sqlite3_exec(a->db, "PRAGMA auto_vacuum=INCREMENTAL", NULL, NULL, NULL);
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

/* SQLite's busy handler for a lock another connection holds: retry every
 * millisecond, for up to BUSY_TIMEOUT_MS. sqlite3_busy_timeout's own
 * handler backs off to 100 ms sleeps, so a commit of the speed thread that
 * met one of compaction's short transactions (archive/compact.c) slept
 * far longer than the lock was held, and could miss the gaps between
 * merges again and again (measured: 250-500 ms commits while compacting). */
static int busy_wait(void *ud, int count)
{
    arch *a = ud;
    double now = arch_mono_s();
    if (count == 0)
        a->busy_since = now;
    if ((now - a->busy_since) * 1000 >= BUSY_TIMEOUT_MS)
        return 0;
    struct timespec ms = { .tv_sec = 0, .tv_nsec = 1000000 };
    nanosleep(&ms, NULL);
    return 1;
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
        r = prepare(a, &a->st_data,
                    "INSERT INTO chunk_data (seq, data, checksum) VALUES (?1, ?2, ?3)", errmsg);
    if (r == 0)
        r = prepare(a, &a->st_totals,
                    "UPDATE meta SET value = value + CASE key WHEN 'total_events' THEN ?1"
                    " WHEN 'total_rejects' THEN ?2 WHEN 'total_chunks' THEN ?3 ELSE ?4 END"
                    " WHERE key IN ('total_events', 'total_rejects', 'total_chunks',"
                    " 'total_payload_bytes')", errmsg);
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
    sqlite3_busy_handler(a->db, busy_wait, a);

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
    a->version = (int)version;
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
    a->dmg = dmg_file_get(path);
    int64_t ndamaged = 0;   /* arch_damage_totals tells them to whom it may concern */
    if (!a->dmg) {
        r = arch_fail(errmsg, -ENOMEM, "out of memory");
        goto fail;
    }
    if ((r = dmg_load(a, &ndamaged)) < 0) {
        r = arch_fail(errmsg, r, "cannot read the damaged chunks recorded in archive %s: %s",
                      path, sqlite3_errmsg(a->db));
        goto fail;
    }
    *out = a;
    return 0;
fail:
    arch_close(a);
    return r;
}

/* The writer keeps damage found since its last commit (arch_commit stores
 * it with the events). Best effort: anything left unstored is found again
 * by the next scan that meets it. */
static void store_damage_now(arch *a)
{
    if (!dmg_unstored(a) || sqlite3_exec(a->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return;
    bool ok = dmg_store(a, NULL) == 0 &&
              sqlite3_exec(a->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
    if (!ok)
        sqlite3_exec(a->db, "ROLLBACK", NULL, NULL, NULL);
    dmg_store_done(a, ok);
}

void arch_close(arch *a)
{
    if (!a)
        return;
    if (a->db && !a->readonly)
        store_damage_now(a);
    sqlite3_finalize(a->st_begin);
    sqlite3_finalize(a->st_commit);
    sqlite3_finalize(a->st_rollback);
    sqlite3_finalize(a->st_chunk);
    sqlite3_finalize(a->st_data);
    sqlite3_finalize(a->st_reject);
    sqlite3_finalize(a->st_offset);
    sqlite3_finalize(a->st_totals);
    sqlite3_finalize(a->st_get_offset);
    sqlite3_finalize(a->st_data_version);
    /* the last connection checkpoints and removes the WAL */
    sqlite3_close(a->db);
    ZSTD_freeCCtx(a->cctx);
    free(a->zbuf);
    free(a->path);
    free(a->wal_path);
    free(a->note);
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
