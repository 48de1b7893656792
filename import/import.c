/* import.c - see import.h: reading records, CSV to JSON, the two passes. */
#include "import/import.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "core/event.h"
#include "core/failpoint.h"
#include "core/gran.h"
#include "core/jbuf.h"
#include "core/strutil.h"
#include "import/csv.h"
#include "import/isrc.h"

#define READ_SIZE (256 * 1024)
#define PROGRESS_EVERY 4096   /* records between progress calls */

int import_format_parse(const char *s, import_format *out)
{
    if (strcmp(s, "jsonl") == 0 || strcmp(s, "ndjson") == 0)
        *out = IMPORT_JSONL;
    else if (strcmp(s, "csv") == 0)
        *out = IMPORT_CSV;
    else
        return -EINVAL;
    return 0;
}

const char *import_format_name(import_format f)
{
    return f == IMPORT_CSV ? "csv" : "jsonl";
}

static bool ends_with(const char *s, size_t len, const char *suf)
{
    size_t n = strlen(suf);
    return len >= n && strncasecmp(s + len - n, suf, n) == 0;
}

int import_format_of_name(const char *name, import_format *out)
{
    size_t len = strlen(name);
    static const char *const zext[] = {".gz", ".zst", ".zstd"};
    for (size_t i = 0; i < 3; i++)
        if (ends_with(name, len, zext[i])) {
            len -= strlen(zext[i]);
            break;
        }
    if (ends_with(name, len, ".jsonl") || ends_with(name, len, ".ndjson") ||
        ends_with(name, len, ".json"))
        *out = IMPORT_JSONL;
    else if (ends_with(name, len, ".csv"))
        *out = IMPORT_CSV;
    else
        return -EINVAL;
    return 0;
}

/* ---- reading records ------------------------------------------------- */

typedef struct {
    isrc *src;
    const char *name;
    import_format fmt;
    char *buf;
    size_t pos, len, cap;
    bool eof, started;
    XXH3_state_t *hash;       /* pass 1: every byte read goes through it */
    uint64_t data_bytes;
    int64_t line;             /* 1-based line of the next record */
    csv_record rec;
    /* the record last read */
    const char *raw;          /* its bytes in buf (JSON lines: without the line break) */
    size_t rawlen;
    int64_t rec_line;
} reader;

/* A record over IMPORT_MAX_RECORD bytes (its line break not counted). */
static int too_long(const reader *r, int64_t line, char **errmsg)
{
    *errmsg = str_printf("%s:%lld: a record longer than %zu MiB", r->name, (long long)line,
                         IMPORT_MAX_RECORD >> 20);
    return -E2BIG;
}

/* Reads more bytes, keeping buf[pos, len). 0 or a negative code. */
static int more(reader *r, char **errmsg)
{
    if (r->pos > 0) {
        memmove(r->buf, r->buf + r->pos, r->len - r->pos);
        r->len -= r->pos;
        r->pos = 0;
    }
    /* buf now holds only the record not complete yet */
    if (r->len > IMPORT_MAX_RECORD)
        return too_long(r, r->line, errmsg);
    if (r->cap - r->len < READ_SIZE) {
        /* at most the longest record and two reads: room for one after it */
        size_t ncap = r->cap ? r->cap * 2 : 2 * READ_SIZE;
        if (ncap > IMPORT_MAX_RECORD + 2 * READ_SIZE)
            ncap = IMPORT_MAX_RECORD + 2 * READ_SIZE;
        char *nb = realloc(r->buf, ncap);
        if (!nb)
            return -ENOMEM;
        r->buf = nb;
        r->cap = ncap;
    }
    char *err = NULL;
    ssize_t n = isrc_read(r->src, r->buf + r->len, r->cap - r->len, &err);
    if (n < 0) {
        *errmsg = str_printf("%s: %s", r->name, err ? err : strerror((int)-n));
        free(err);
        return (int)n;
    }
    if (n == 0)
        r->eof = true;
    if (r->hash)
        XXH3_128bits_update(r->hash, r->buf + r->len, (size_t)n);
    r->data_bytes += (uint64_t)n;
    r->len += (size_t)n;
    if (!r->started && (r->len >= 3 || r->eof)) {
        r->started = true;
        if (r->len >= 3 && memcmp(r->buf, "\xef\xbb\xbf", 3) == 0)
            r->pos = 3;   /* UTF-8 byte order mark */
    }
    return 0;
}

static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return false;
    return true;
}

/* The next record: 1 (r->raw, r->rec for CSV, r->rec_line), 0 at the end,
 * or a negative code with *errmsg. Blank lines are passed over. */
static int next_record(reader *r, char **errmsg)
{
    for (;;) {
        while (!r->started) {
            int e = more(r, errmsg);
            if (e < 0)
                return e;
        }
        const char *p = r->buf + r->pos;
        size_t avail = r->len - r->pos;
        if (r->fmt == IMPORT_JSONL) {
            const char *nl = memchr(p, '\n', avail);
            if (!nl && !r->eof) {
                int e = more(r, errmsg);
                if (e < 0)
                    return e;
                continue;
            }
            if (!nl && avail == 0)
                return 0;
            size_t n = nl ? (size_t)(nl - p) : avail;
            if (n > IMPORT_MAX_RECORD)
                return too_long(r, r->line, errmsg);
            r->rec_line = r->line++;
            r->pos += nl ? n + 1 : n;
            if (n > 0 && p[n - 1] == '\r')
                n--;
            if (blank(p, n))
                continue;
            r->raw = p;
            r->rawlen = n;
            return 1;
        }
        size_t used = 0;
        int c = csv_parse(p, avail, r->eof, &r->rec, &used);
        if (c == -EBADMSG) {
            *errmsg = str_printf("%s:%lld: a quoted field is not closed before the end of the "
                                 "file", r->name, (long long)r->line);
            return c;
        }
        if (c < 0)
            return c;
        if (c == 0) {
            if (r->eof)
                return 0;
            int e = more(r, errmsg);
            if (e < 0)
                return e;
            continue;
        }
        if (used - (p[used - 1] == '\n') > IMPORT_MAX_RECORD)
            return too_long(r, r->line, errmsg);
        r->rec_line = r->line;
        r->line += (int64_t)(r->rec.lines ? r->rec.lines : 1);
        r->pos += used;
        r->raw = p;
        r->rawlen = used;
        if (r->rec.nfields == 1 && csv_field_len(&r->rec, 0) == 0)
            continue;   /* a blank line */
        return 1;
    }
}

static void reader_release(reader *r)
{
    free(r->buf);
    csv_record_free(&r->rec);
    if (r->hash)
        XXH3_freeState(r->hash);
}

/* ---- CSV columns ------------------------------------------------------ */

typedef struct {
    char **names;        /* NULL: a column left out (an empty header: pandas' index) */
    bool *numeric;       /* every non-empty value is a JSON number */
    bool *seen;          /* some non-empty value */
    size_t n;
} columns;

static void columns_free(columns *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->names[i]);
    free(c->names);
    free(c->numeric);
    free(c->seen);
    *c = (columns){0};
}

static int columns_from_header(columns *c, const csv_record *h, const char *name, char **errmsg)
{
    c->n = h->nfields;
    c->names = calloc(c->n, sizeof(*c->names));
    c->numeric = calloc(c->n, sizeof(*c->numeric));
    c->seen = calloc(c->n, sizeof(*c->seen));
    if (!c->names || !c->numeric || !c->seen)
        return -ENOMEM;
    for (size_t i = 0; i < c->n; i++) {
        c->numeric[i] = true;
        size_t len = csv_field_len(h, i);
        if (len == 0)
            continue;
        for (size_t j = 0; j < i; j++)
            if (c->names[j] && strlen(c->names[j]) == len &&
                memcmp(c->names[j], csv_field(h, i), len) == 0) {
                *errmsg = str_printf("%s:1: column '%s' appears twice in the header", name,
                                     c->names[j]);
                return -EINVAL;
            }
        if (!(c->names[i] = strndup(csv_field(h, i), len)))
            return -ENOMEM;
    }
    return 0;
}

static void columns_infer(columns *c, const csv_record *rec)
{
    for (size_t i = 0; i < c->n; i++) {
        size_t len = csv_field_len(rec, i);
        if (len == 0)
            continue;
        c->seen[i] = true;
        if (c->numeric[i] && !csv_is_number(csv_field(rec, i), len))
            c->numeric[i] = false;
    }
}

/* The record as a JSON object: an empty value is null, a numeric
 * column's values numbers, others strings. */
static void csv_to_json(const columns *c, const csv_record *rec, jbuf *out)
{
    out->len = 0;
    jb_raw(out, "{", 1);
    bool first = true;
    for (size_t i = 0; i < c->n; i++) {
        if (!c->names[i])
            continue;
        if (!first)
            jb_raw(out, ",", 1);
        first = false;
        jb_cstr(out, c->names[i]);
        jb_raw(out, ":", 1);
        size_t len = csv_field_len(rec, i);
        if (len == 0)
            jb_raw(out, "null", 4);
        else if (c->numeric[i] && c->seen[i])
            jb_raw(out, csv_field(rec, i), len);
        else
            jb_str(out, csv_field(rec, i), len);
    }
    jb_raw(out, "}", 1);
}

/* ---- the import -------------------------------------------------------- */

typedef struct {
    const import_opts *o;
    const stream_def *st;
    arch_txn *txn;
    vtable **stage;
    int64_t stage_events;
    event_decoder *dec;
    field_value *vals;
    jbuf json;
    char *detail;
    size_t detail_cap;
} feeder;

/* Adds one record (payload: its JSON event) to the transaction, as an
 * event or a reject. 0 or -ENOMEM. */
static int feed(feeder *f, int32_t part, int64_t recno, int64_t line, const char *payload,
                size_t len, const char *reason, const char *detail)
{
    const config *cfg = f->o->cfg;
    int64_t ts_ms = 0;
    int r = 0;
    if (!reason) {
        r = event_decode(f->dec, f->st, payload, len, -1, &ts_ms, f->vals, &reason, &detail);
        if (r == -ENOMEM)
            return r;
    }
    if (reason) {
        char *d = str_printf("%s:%lld: %s", f->o->name, (long long)line, detail ? detail : "");
        if (!d)
            return -ENOMEM;
        r = arch_txn_add_reject(f->txn, f->st->topic, part, recno, reason, d, payload, len);
        free(d);
        return r;
    }
    int64_t tpart = gran_floor(cfg->batch_partition, floor_div(ts_ms, 1000));
    r = arch_txn_add_event(f->txn, f->st->name, part, tpart, recno, ts_ms, payload, len);
    for (size_t v = 0; r == 0 && f->stage && v < cfg->nviews; v++)
        if (cfg->views[v].stream_idx == f->o->stream_idx)
            r = event_apply(&cfg->views[v], f->stage[v], ts_ms, f->vals, f->dec);
    f->stage_events++;
    return r;
}

static int commit(feeder *f, const arch_import *imp, int64_t from, int64_t to, int64_t lines,
                  bool done, import_result *res, char **errmsg)
{
    const config *cfg = f->o->cfg;
    arch_txn_set_import(f->txn, imp->id, from, to, lines, done);
    size_t ev = arch_txn_events(f->txn), rj = arch_txn_rejects(f->txn);
    int r = f->o->sink.commit(f->o->sink.ud, f->txn, f->stage, f->stage_events, errmsg);
    if (r < 0)
        return r;
    res->imported += (int64_t)ev;
    res->rejected += (int64_t)rj;
    arch_txn_reset(f->txn);
    f->stage_events = 0;
    if (f->stage) {
        vtables_free(f->stage, cfg->nviews);   /* the tables the sink did not take */
        if (!(f->stage = vtables_new_per_view(cfg->views, cfg->nviews)))
            return -ENOMEM;
    }
    if (!done)
        failpoint("import_after_commit");   /* tests: a crash between two transactions */
    return 0;
}

static int pass1(reader *rd, const import_opts *o, columns *cols, uint64_t size,
                 import_result *res, char **errmsg)
{
    int r;
    bool header = o->fmt == IMPORT_CSV;
    while ((r = next_record(rd, errmsg)) > 0) {
        if (header) {
            if ((r = columns_from_header(cols, &rd->rec, o->name, errmsg)) < 0)
                return r;
            header = false;
            continue;
        }
        res->records++;
        if (o->fmt == IMPORT_CSV && rd->rec.nfields == cols->n)
            columns_infer(cols, &rd->rec);
        if (res->records % PROGRESS_EVERY != 0)
            continue;
        if (o->progress)
            o->progress(o->progress_ud, 1, isrc_file_bytes(rd->src), size, res);
        if (o->stop && atomic_load(o->stop)) {
            *errmsg = str_printf("%s: stopped before importing anything", o->name);
            return -ECANCELED;
        }
    }
    if (r < 0)
        return r;
    if (header) {
        *errmsg = str_printf("%s: no header line (a CSV file starts with the column names)",
                             o->name);
        return -EINVAL;
    }
    return 0;
}

static int pass2(reader *rd, feeder *f, const columns *cols, const arch_import *imp,
                 uint64_t size, import_result *res, char **errmsg)
{
    const import_opts *o = f->o;
    int64_t per = o->commit_records > 0 ? o->commit_records : IMPORT_COMMIT_RECORDS;
    int32_t part = (int32_t)-imp->id;
    int64_t recno = -1, from = imp->records;
    int r;
    bool header = o->fmt == IMPORT_CSV;
    while ((r = next_record(rd, errmsg)) > 0) {
        if (header) {
            header = false;
            continue;
        }
        if (++recno < imp->records)
            continue;   /* archived by an earlier run */
        if (o->fmt == IMPORT_JSONL) {
            r = feed(f, part, recno, rd->rec_line, rd->raw, rd->rawlen, NULL, NULL);
        } else if (rd->rec.nfields != cols->n) {
            char d[96];
            snprintf(d, sizeof(d), "%zu field(s), the header has %zu", rd->rec.nfields, cols->n);
            r = feed(f, part, recno, rd->rec_line, rd->raw, rd->rawlen, REJECT_INVALID_CSV, d);
        } else {
            csv_to_json(cols, &rd->rec, &f->json);
            r = f->json.oom ? -ENOMEM
                            : feed(f, part, recno, rd->rec_line, f->json.p, f->json.len, NULL, NULL);
        }
        if (r < 0)
            return r;
        if (recno + 1 - from >= per) {
            if ((r = commit(f, imp, from, recno + 1, rd->line - 1, false, res, errmsg)) < 0)
                return r;
            from = recno + 1;
            if (o->progress)
                o->progress(o->progress_ud, 2, isrc_file_bytes(rd->src), size, res);
            if (o->stop && atomic_load(o->stop)) {
                *errmsg = str_printf("%s: stopped after record %lld; importing it again resumes "
                                     "there", o->name, (long long)from);
                return -ECANCELED;
            }
        }
    }
    if (r < 0)
        return r;
    return commit(f, imp, from, recno + 1, rd->line - 1, true, res, errmsg);
}

int import_run(const import_opts *o, int fd, import_result *res, char **errmsg)
{
    *errmsg = NULL;
    memset(res, 0, sizeof(*res));
    const config *cfg = o->cfg;
    const stream_def *st = &cfg->streams[o->stream_idx];
    if (st->tfmt == TF_KAFKA) {
        *errmsg = str_printf("stream '%s' takes event times from Kafka message timestamps "
                             "(time_format \"kafka\"); imported events have none", st->name);
        return -EINVAL;
    }
    struct stat sb;
    uint64_t size = fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) ? (uint64_t)sb.st_size : 0;
    reader rd = {.name = o->name, .fmt = o->fmt, .line = 1};
    columns cols = {0};
    feeder f = {.o = o, .st = st};
    jb_init(&f.json);
    int r = isrc_open(fd, &rd.src, errmsg);
    if (r < 0)
        goto out;
    if (!(rd.hash = XXH3_createState()) || XXH3_128bits_reset(rd.hash) != XXH_OK) {
        r = -ENOMEM;
        goto out;
    }
    if ((r = pass1(&rd, o, &cols, size, res, errmsg)) < 0)
        goto out;
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, XXH3_128bits_digest(rd.hash));
    for (int i = 0; i < 16; i++)
        snprintf(res->hash + 2 * i, 3, "%02x", c.digest[i]);
    res->data_bytes = rd.data_bytes;
    XXH3_freeState(rd.hash);
    rd.hash = NULL;

    arch_import imp;
    if ((r = o->sink.begin(o->sink.ud, st->name, res->hash, o->name, &imp, errmsg)) < 0)
        goto out;
    if (imp.id > INT32_MAX) {
        *errmsg = str_printf("the archive has run out of import numbers");
        r = -EOVERFLOW;
        goto out;
    }
    res->skipped = imp.done ? res->records : imp.records;
    if (imp.done)
        goto out;
    if ((r = isrc_rewind(rd.src)) < 0) {
        *errmsg = str_printf("%s: cannot read it a second time: %s", o->name, strerror(-r));
        goto out;
    }
    rd.pos = rd.len = 0;
    rd.eof = rd.started = false;
    rd.line = 1;
    size_t maxvals = 1;
    for (size_t i = 0; i < cfg->nstreams; i++)
        if (stream_nvals(&cfg->streams[i]) > maxvals)
            maxvals = stream_nvals(&cfg->streams[i]);
    f.txn = arch_txn_new();
    f.dec = event_decoder_new();
    f.vals = calloc(maxvals, sizeof(*f.vals));
    f.stage = o->sink.views ? vtables_new_per_view(cfg->views, cfg->nviews) : NULL;
    if (!f.txn || !f.dec || !f.vals || (o->sink.views && !f.stage)) {
        r = -ENOMEM;
        goto out;
    }
    r = pass2(&rd, &f, &cols, &imp, size, res, errmsg);
    if (r == 0 && o->progress)
        o->progress(o->progress_ud, 2, isrc_file_bytes(rd.src), size, res);
out:
    if (r == -ENOMEM && !*errmsg)
        *errmsg = strdup("out of memory");
    vtables_free(f.stage, cfg->nviews);
    arch_txn_free(f.txn);
    event_decoder_free(f.dec);
    free(f.vals);
    jb_free(&f.json);
    columns_free(&cols);
    reader_release(&rd);
    isrc_free(rd.src);
    return r;
}

/* ---- the archive as the sink ------------------------------------------ */

static int arch_begin(void *ud, const char *stream, const char *hash, const char *name,
                      arch_import *out, char **errmsg)
{
    return arch_import_begin(ud, stream, hash, name, out, errmsg);
}

static int arch_commit_txn(void *ud, arch_txn *t, vtable **stage, int64_t events, char **errmsg)
{
    return arch_commit(ud, t, NULL, errmsg);
}

import_sink import_sink_archive(arch *w)
{
    return (import_sink){.ud = w, .begin = arch_begin, .commit = arch_commit_txn, .views = false};
}
