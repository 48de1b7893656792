/* meta.c - small named settings stored in the archive itself (table meta),
 * for facts that must never change for an existing archive, such as the
 * time-partition unit its chunks were cut by. Any thread that owns the
 * handle; arch_meta_set writes in its own short transaction. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "archive/archive_int.h"

int arch_meta_get(arch *a, const char *key, char **value, char **errmsg)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(a->db, "SELECT value FROM meta WHERE key = ?", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return arch_sqlfail(a, errmsg, rc, "read meta");
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    int r = 0;
    if (rc == SQLITE_ROW) {
        const unsigned char *v = sqlite3_column_text(st, 0);
        *value = strdup(v ? (const char *)v : "");
        if (!*value)
            r = arch_fail(errmsg, -ENOMEM, "read meta: out of memory");
    } else if (rc == SQLITE_DONE) {
        r = -ENOENT;
    } else {
        r = arch_sqlfail(a, errmsg, rc, "read meta");
    }
    sqlite3_finalize(st);
    return r;
}

int arch_meta_set(arch *a, const char *key, const char *value, char **errmsg)
{
    if (a->readonly)
        return arch_fail(errmsg, -EROFS, "archive %s is open read-only", a->path);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(a->db, "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", -1,
                                &st, NULL);
    if (rc != SQLITE_OK)
        return arch_sqlfail(a, errmsg, rc, "write meta");
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : arch_sqlfail(a, errmsg, rc, "write meta");
}
