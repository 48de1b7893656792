/* damage.c - what the process knows about damaged archive chunks.
 *
 * A chunk that fails its checks (scan.c) is never read, and must never be
 * forgotten either: the events in it are missing from every answer built
 * since. So each scan records it here, in one registry per archive path
 * shared by every handle of the process (the writer, the batch thread's
 * reader, recovery), where the daemon's /v1/status, /metrics and query
 * watermark read it. The writer also stores the records in the archive
 * itself (table damaged_chunks, in its next commit's transaction or at
 * close), and every open loads them back, so a restart still reports a
 * chunk that a batch run found damaged before it.
 *
 * Records are kept sorted by seq (scans go in seq order, so they are
 * mostly appended) with per-stream totals kept up to date, so the query
 * watermark reads a total without walking the records.
 *
 * Threads and locks: any thread. One mutex (reg_lock) guards every
 * registry; it is held for copies, for the writer's INSERTs of new records
 * and for arch_damage_list's callback (which must be quick and must not
 * call back into this file), never across a scan.
 */
#include "archive/archive_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/gran.h"

typedef struct {
    int64_t seq;
    char *stream;              /* one allocation with reason */
    const char *reason;
    int32_t part;
    int64_t tpart, first_offset, last_offset, n, found_at;
    uint64_t order;            /* recording order, for "latest first" */
    bool stored;               /* in the archive's damaged_chunks table */
    bool storing;              /* inserted in the writer's open transaction */
} dmg_rec;

typedef struct {
    char *stream;
    arch_damage_count c;
} dmg_stream;

struct dmg_file {
    struct dmg_file *next;
    char *path;
    dmg_rec *recs;
    size_t n, cap;
    dmg_stream *streams;
    size_t nstreams;
    arch_damage_count all;
    size_t unstored;
    uint64_t order;
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static dmg_file *reg_files;   /* reachable until exit: never a leak report */

static dmg_file *find_file(const char *path)
{
    for (dmg_file *f = reg_files; f; f = f->next)
        if (strcmp(f->path, path) == 0)
            return f;
    return NULL;
}

dmg_file *dmg_file_get(const char *path)
{
    pthread_mutex_lock(&reg_lock);
    dmg_file *f = find_file(path);
    if (!f && (f = calloc(1, sizeof *f))) {
        if ((f->path = strdup(path))) {
            f->next = reg_files;
            reg_files = f;
        } else {
            free(f);
            f = NULL;
        }
    }
    pthread_mutex_unlock(&reg_lock);
    return f;
}

/* Index of seq, or -(insertion point) - 1. Under reg_lock. */
static long find_rec(const dmg_file *f, int64_t seq)
{
    size_t lo = 0, hi = f->n;
    if (f->n && f->recs[f->n - 1].seq < seq)
        lo = f->n;   /* the common case: after every known one */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (f->recs[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < f->n && f->recs[lo].seq == seq ? (long)lo : -(long)lo - 1;
}

static dmg_stream *stream_totals(dmg_file *f, const char *stream)
{
    for (size_t i = 0; i < f->nstreams; i++)
        if (strcmp(f->streams[i].stream, stream) == 0)
            return &f->streams[i];
    return NULL;
}

static void rec_to_damage(const dmg_rec *r, arch_damage *d)
{
    *d = (arch_damage){
        .seq = r->seq, .stream = r->stream, .partition = r->part, .tpart = r->tpart,
        .first_offset = r->first_offset, .last_offset = r->last_offset, .events = r->n,
        .reason = r->reason, .found_at = r->found_at, .known = true,
    };
}

/* Adds d as a new record at index at. Under reg_lock. 0 or -ENOMEM. */
static int insert_rec(dmg_file *f, size_t at, const arch_damage *d, bool stored)
{
    dmg_stream *s = stream_totals(f, d->stream);
    if (!s) {
        dmg_stream *ns = realloc(f->streams, (f->nstreams + 1) * sizeof *ns);
        if (!ns)
            return -ENOMEM;
        f->streams = ns;
        s = &f->streams[f->nstreams];
        *s = (dmg_stream){ .stream = strdup(d->stream) };
        if (!s->stream)
            return -ENOMEM;
        f->nstreams++;
    }
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        dmg_rec *nr = realloc(f->recs, cap * sizeof *nr);
        if (!nr)
            return -ENOMEM;
        f->recs = nr;
        f->cap = cap;
    }
    size_t sl = strlen(d->stream) + 1, rl = strlen(d->reason) + 1;
    char *mem = malloc(sl + rl);
    if (!mem)
        return -ENOMEM;
    memcpy(mem, d->stream, sl);
    memcpy(mem + sl, d->reason, rl);
    memmove(&f->recs[at + 1], &f->recs[at], (f->n - at) * sizeof *f->recs);
    f->recs[at] = (dmg_rec){
        .seq = d->seq, .stream = mem, .reason = mem + sl, .part = d->partition,
        .tpart = d->tpart, .first_offset = d->first_offset, .last_offset = d->last_offset,
        .n = d->events, .found_at = d->found_at, .order = ++f->order, .stored = stored,
    };
    f->n++;
    s->c.chunks++;
    s->c.events += d->events;
    f->all.chunks++;
    f->all.events += d->events;
    f->unstored += !stored;
    return 0;
}

int dmg_record(dmg_file *f, arch_damage *d)
{
    if (!f)
        return -ENOMEM;
    pthread_mutex_lock(&reg_lock);
    long i = find_rec(f, d->seq);
    int r = 0;
    if (i >= 0) {
        d->known = true;
        d->found_at = f->recs[i].found_at;
    } else {
        d->known = false;
        d->found_at = (int64_t)time(NULL);
        r = insert_rec(f, (size_t)(-i - 1), d, false);
    }
    pthread_mutex_unlock(&reg_lock);
    return r;
}

void arch_damage_totals(const char *path, const char *stream, arch_damage_count *out)
{
    *out = (arch_damage_count){ 0 };
    pthread_mutex_lock(&reg_lock);
    dmg_file *f = find_file(path);
    if (f && !stream) {
        *out = f->all;
    } else if (f) {
        dmg_stream *s = stream_totals(f, stream);
        if (s)
            *out = s->c;
    }
    pthread_mutex_unlock(&reg_lock);
}

int arch_damage_list(const char *path, size_t max, int (*fn)(const arch_damage *d, void *ud),
                     void *ud)
{
    int r = 0;
    pthread_mutex_lock(&reg_lock);
    dmg_file *f = find_file(path);
    /* newest first: a selection by order, max times over the records;
     * max is a handful (the status shows the latest few) */
    uint64_t below = UINT64_MAX;
    for (size_t k = 0; f && k < max && r == 0; k++) {
        const dmg_rec *best = NULL;
        for (size_t i = 0; i < f->n; i++)
            if (f->recs[i].order < below && (!best || f->recs[i].order > best->order))
                best = &f->recs[i];
        if (!best)
            break;
        below = best->order;
        arch_damage d;
        rec_to_damage(best, &d);
        r = fn(&d, ud);
    }
    pthread_mutex_unlock(&reg_lock);
    return r;
}

const char *arch_damage_describe(const arch_damage *d, char *buf, size_t size)
{
    char tp[32];
    time_format_rfc3339(d->tpart, tp, sizeof tp);
    snprintf(buf, size, "chunk %lld (stream '%s', partition %d, offsets %lld..%lld, %lld event%s, "
             "time partition %s): %s", (long long)d->seq, d->stream, (int)d->partition,
             (long long)d->first_offset, (long long)d->last_offset, (long long)d->events,
             d->events == 1 ? "" : "s", tp, d->reason);
    return buf;
}

/* ---- stored in the archive ------------------------------------------ */

int dmg_load(arch *a, int64_t *count)
{
    *count = 0;
    if (a->version < 2 || !a->dmg)
        return 0;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(a->db,
                                "SELECT seq, stream, part, tpart, first_offset, last_offset, n,"
                                " reason, found_at FROM damaged_chunks ORDER BY seq", -1, &st,
                                NULL);
    if (rc != SQLITE_OK)
        return arch_errno(rc);
    int r = 0;
    pthread_mutex_lock(&reg_lock);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *stream = sqlite3_column_text(st, 1);
        const unsigned char *reason = sqlite3_column_text(st, 7);
        arch_damage d = {
            .seq = sqlite3_column_int64(st, 0),
            .stream = stream ? (const char *)stream : "",
            .partition = sqlite3_column_int(st, 2),
            .tpart = sqlite3_column_int64(st, 3),
            .first_offset = sqlite3_column_int64(st, 4),
            .last_offset = sqlite3_column_int64(st, 5),
            .events = sqlite3_column_int64(st, 6),
            .reason = reason ? (const char *)reason : "",
            .found_at = sqlite3_column_int64(st, 8),
        };
        (*count)++;
        long i = find_rec(a->dmg, d.seq);
        if (i >= 0) {
            dmg_rec *known = &a->dmg->recs[i];   /* found by this process too */
            if (!known->stored) {
                known->stored = true;
                a->dmg->unstored--;
            }
        } else if ((r = insert_rec(a->dmg, (size_t)(-i - 1), &d, true)) < 0)
            break;
    }
    pthread_mutex_unlock(&reg_lock);
    if (r == 0 && rc != SQLITE_DONE)
        r = arch_errno(rc);
    sqlite3_finalize(st);
    return r;
}

bool dmg_unstored(arch *a)
{
    if (a->readonly || a->version < 2 || !a->dmg)
        return false;
    pthread_mutex_lock(&reg_lock);
    bool any = a->dmg->unstored > 0;
    pthread_mutex_unlock(&reg_lock);
    return any;
}

int dmg_store(arch *a, char **errmsg)
{
    if (!dmg_unstored(a))
        return 0;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(a->db,
                                "INSERT OR IGNORE INTO damaged_chunks (seq, stream, part, tpart,"
                                " first_offset, last_offset, n, reason, found_at)"
                                " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return arch_sqlfail(a, errmsg, rc, "store damaged chunks");
    int r = 0;
    pthread_mutex_lock(&reg_lock);
    for (size_t i = 0; i < a->dmg->n && r == 0; i++) {
        dmg_rec *d = &a->dmg->recs[i];
        if (d->stored)
            continue;
        sqlite3_bind_int64(st, 1, d->seq);
        sqlite3_bind_text(st, 2, d->stream, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 3, d->part);
        sqlite3_bind_int64(st, 4, d->tpart);
        sqlite3_bind_int64(st, 5, d->first_offset);
        sqlite3_bind_int64(st, 6, d->last_offset);
        sqlite3_bind_int64(st, 7, d->n);
        sqlite3_bind_text(st, 8, d->reason, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 9, d->found_at);
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
            d->storing = true;
        else
            r = arch_sqlfail(a, errmsg, rc, "store damaged chunks");
        sqlite3_reset(st);
    }
    pthread_mutex_unlock(&reg_lock);
    sqlite3_finalize(st);
    return r;
}

void dmg_store_done(arch *a, bool ok)
{
    if (a->readonly || !a->dmg)
        return;
    pthread_mutex_lock(&reg_lock);
    for (size_t i = 0; i < a->dmg->n; i++) {
        dmg_rec *d = &a->dmg->recs[i];
        if (!d->storing)
            continue;
        d->storing = false;
        if (ok && !d->stored) {
            d->stored = true;
            a->dmg->unstored--;
        }
    }
    pthread_mutex_unlock(&reg_lock);
}
