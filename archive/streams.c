/* streams.c - arch_list_streams: the streams the archive holds events of
 * (lambdad-archive dump without --stream). Any thread that owns the
 * handle. */
#include <errno.h>

#include "archive/archive_int.h"

int arch_list_streams(arch *a, int (*fn)(const char *stream, void *ud), void *ud, char **errmsg)
{
    sqlite3_stmt *st = NULL;
    /* DISTINCT over the (stream, tpart, seq) index: one step per stream */
    int rc = sqlite3_prepare_v2(a->db, "SELECT DISTINCT stream FROM chunks ORDER BY stream", -1,
                                &st, NULL);
    if (rc != SQLITE_OK)
        return arch_sqlfail(a, errmsg, rc, "list streams");
    int r = 0;
    while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW)
        r = fn((const char *)sqlite3_column_text(st, 0), ud);
    if (r == 0 && rc != SQLITE_DONE)
        r = arch_sqlfail(a, errmsg, rc, "list streams");
    sqlite3_finalize(st);
    return r;
}
