/* imports.c - the files imported into the archive (lambdad import).
 *
 * Table imports (created by the writer at open when absent; readers never
 * need it):
 *
 *   imports(id INTEGER PRIMARY KEY AUTOINCREMENT, stream, hash, name,
 *           records, lines, events, rejects, done, started_ms, finished_ms,
 *           UNIQUE(stream, hash))
 *
 * One row per file imported into a stream, found by the content hash of
 * its (decompressed) bytes. records and lines say how far it is archived:
 * they move in the same transaction as the events and rejects of those
 * records (arch_txn_set_import, stored by arch_commit), so after a crash
 * the next import of the same file resumes at exactly the first record
 * not archived, and an import that is done is skipped whole. The events of
 * import id are archived under Kafka partition -id (no Kafka partition is
 * negative) with the record's number in the file as offset, so every
 * imported event has its own (stream, partition, offset) like a Kafka one.
 * AUTOINCREMENT: an id is never reused.
 *
 * Writer connection only (one thread at a time, like every handle).
 */
#include "archive/archive_int.h"
#include "archive/txn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char arch_sql_imports[] =
    "CREATE TABLE IF NOT EXISTS imports ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, stream TEXT NOT NULL, hash TEXT NOT NULL,"
    " name TEXT NOT NULL, records INTEGER NOT NULL DEFAULT 0, lines INTEGER NOT NULL DEFAULT 0,"
    " events INTEGER NOT NULL DEFAULT 0, rejects INTEGER NOT NULL DEFAULT 0,"
    " done INTEGER NOT NULL DEFAULT 0, started_ms INTEGER NOT NULL, finished_ms INTEGER,"
    " UNIQUE (stream, hash));";

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int read_import(arch *a, const char *stream, const char *hash, arch_import *out,
                       char **errmsg)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(a->db,
                                "SELECT id, records, lines, events, rejects, done FROM imports"
                                " WHERE stream = ?1 AND hash = ?2", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return arch_sqlfail(a, errmsg, rc, "read imports");
    sqlite3_bind_text(st, 1, stream, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, hash, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    int r = 0;
    if (rc == SQLITE_ROW) {
        *out = (arch_import){.id = sqlite3_column_int64(st, 0),
                             .records = sqlite3_column_int64(st, 1),
                             .lines = sqlite3_column_int64(st, 2),
                             .events = sqlite3_column_int64(st, 3),
                             .rejects = sqlite3_column_int64(st, 4),
                             .done = sqlite3_column_int(st, 5) != 0};
    } else {
        r = rc == SQLITE_DONE ? -ENOENT : arch_sqlfail(a, errmsg, rc, "read imports");
    }
    sqlite3_finalize(st);
    return r;
}

int arch_import_begin(arch *a, const char *stream, const char *hash, const char *name,
                      arch_import *out, char **errmsg)
{
    if (errmsg)
        *errmsg = NULL;
    if (a->readonly)
        return arch_fail(errmsg, -EROFS, "archive %s is open read-only", a->path);
    int r = read_import(a, stream, hash, out, errmsg);
    if (r != -ENOENT)
        return r;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(a->db,
                                "INSERT INTO imports (stream, hash, name, started_ms)"
                                " VALUES (?1, ?2, ?3, ?4)", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return arch_sqlfail(a, errmsg, rc, "register import");
    sqlite3_bind_text(st, 1, stream, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, hash, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, now_ms());
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return arch_sqlfail(a, errmsg, rc, "register import");
    return read_import(a, stream, hash, out, errmsg);
}

/* arch_commit, in its open transaction: moves the import's progress. */
int arch_import_store(arch *a, const arch_txn *t, char **errmsg)
{
    const txn_import *im = &t->imp;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(a->db,
                                "UPDATE imports SET records = ?3, lines = ?4,"
                                " events = events + ?5, rejects = rejects + ?6, done = ?7,"
                                " finished_ms = CASE WHEN ?7 THEN ?8 END"
                                " WHERE id = ?1 AND records = ?2 AND NOT done", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return arch_sqlfail(a, errmsg, rc, "store import progress");
    sqlite3_bind_int64(st, 1, im->id);
    sqlite3_bind_int64(st, 2, im->from_records);
    sqlite3_bind_int64(st, 3, im->records);
    sqlite3_bind_int64(st, 4, im->lines);
    sqlite3_bind_int64(st, 5, (int64_t)t->nevents);
    sqlite3_bind_int64(st, 6, (int64_t)t->nrejects);
    sqlite3_bind_int(st, 7, im->done);
    sqlite3_bind_int64(st, 8, now_ms());
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return arch_sqlfail(a, errmsg, rc, "store import progress");
    /* another import of the same file moved it first: storing ours would
     * count its records twice */
    if (sqlite3_changes(a->db) != 1)
        return arch_fail(errmsg, -ESTALE, "import %lld is no longer at record %lld (another "
                         "import of the same file ran meanwhile)", (long long)im->id,
                         (long long)im->from_records);
    return 0;
}
