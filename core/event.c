/* event.c - the event decoder: one pass over a Kafka message value that
 * validates it as JSON, requires an object, and extracts the stream's time
 * and the fields its views read (see event.h).
 *
 * Threads: a decoder belongs to one thread (the speed consumer, the batch
 * recompute, recovery each own one); nothing here is shared or locked. The
 * stream_defs are read-only and must outlive their use by a decoder.
 *
 * Hot path: no allocation once the decoder has warmed up. jscan.c does the
 * validating; this file walks the top-level object itself so it can look
 * each key up as it passes. Work that only accepted events need (unescaping
 * strings, converting numbers) waits until the whole payload has validated,
 * and is done once per field even if a key repeats (the last one wins, as
 * in jansson).
 *
 * Per stream the decoder caches a small open-addressing table of the names
 * it looks for (the time field and stream->fields), keyed by the stream_def
 * pointer and checked against the stream's fields/time_field pointers, so a
 * key costs one hash and usually one length compare.
 *
 * Nested fields (dotted names, "geo.country"): the decoder looks for the
 * top-level key ("geo") as it passes, keeps where its value is, and once
 * the payload has validated walks that object for the rest of the path.
 * Derived fields are then computed from the values, in order (core/expr.h),
 * with their strings in the decoder's expression scratch.
 *
 * Scratch: unescaped strings go to one buffer that is sized, before the
 * first string is written, to the sum of the escaped lengths (unescaping
 * never lengthens), so it never moves while pointers into it are handed
 * out; they stay valid until the next call.
 */
#include "core/event.h"

#include <errno.h>
#include <locale.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/expr.h"
#include "core/gran.h"
#include "core/jscan.h"
#include "core/strutil.h"

/* Event times must fall in years 0001..9999 (what RFC 3339 can write). */
#define MIN_TS_MS (-62135596800000LL)   /* 0001-01-01T00:00:00Z */
#define MAX_TS_MS 253402300799999LL     /* 9999-12-31T23:59:59.999Z */

/* A name the decoder looks for in the top-level object. */
typedef struct {
    const char *name;
    size_t len;
    int field;      /* index into stream->fields, or -1 */
    int parent;     /* index into the cache's parents (nested fields start here), or -1 */
    bool is_time;   /* the stream's time field (may also be a field) */
} key_entry;

/* A dotted field: the value of path (dotted, relative) inside the
 * top-level object parents[parent]. */
typedef struct {
    int field;
    int parent;
    const char *path;
    size_t len;
} nested_field;

/* Where a parent's value is in the payload of the current event. */
typedef struct {
    size_t start, end;   /* end == 0: not in this event */
} parent_span;

typedef struct {
    /* Identity of the stream this was built for. */
    const stream_def *s;
    char **fields;
    size_t nfields;
    const char *time_field;
    time_format tfmt;

    key_entry *ents;
    size_t nents;
    unsigned *table;       /* entry index + 1, 0 = empty; mask + 1 slots */
    unsigned mask;
    size_t minlen, maxlen;
    unsigned char *pending; /* per field: a string that still needs unescaping */
    nested_field *nested;
    size_t nnested;
    parent_span *spans;     /* per parent */
    size_t nparents;
    char (*numtext)[32];    /* per derived field: a number's text, for dimensions */
} stream_cache;

/* The time field's raw value, converted after validation. */
typedef struct {
    fv_kind kind;
    const unsigned char *str;
    size_t len;
    bool escaped;
} raw_time;

struct event_decoder {
    stream_cache *caches;
    size_t ncaches;
    unsigned char *scratch;   /* unescaped string values */
    size_t scratch_cap;
    unsigned char *keybuf;    /* one unescaped key at a time */
    size_t keybuf_cap;
    unsigned char *numbuf;    /* NUL-terminated copy of a number for strtod */
    size_t numbuf_cap;
    locale_t c_locale;        /* strtod must read '.' whatever the locale */
    expr_scratch xs;          /* derived fields' and conditions' strings */
    char detail[256];
};

static int grow(unsigned char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 256;
    while (n < need)
        n = n > SIZE_MAX / 2 ? need : n * 2;
    unsigned char *p = realloc(*buf, n);
    if (!p)
        return -ENOMEM;
    *buf = p;
    *cap = n;
    return 0;
}

static void cache_clear(stream_cache *c)
{
    free(c->ents);
    free(c->table);
    free(c->pending);
    free(c->nested);
    free(c->spans);
    free(c->numtext);
    memset(c, 0, sizeof(*c));
}

event_decoder *event_decoder_new(void)
{
    event_decoder *d = calloc(1, sizeof(*d));
    if (!d)
        goto fail;
    d->c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (d->c_locale == (locale_t)0)
        goto fail;
    return d;
fail:
    event_decoder_free(d);
    return NULL;
}

void event_decoder_free(event_decoder *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->ncaches; i++)
        cache_clear(&d->caches[i]);
    free(d->caches);
    free(d->scratch);
    free(d->keybuf);
    free(d->numbuf);
    expr_scratch_free(&d->xs);
    if (d->c_locale != (locale_t)0)
        freelocale(d->c_locale);
    free(d);
}

/* ---- field name lookup ---- */

static inline unsigned key_hash(const unsigned char *k, size_t len)
{
    if (!len)
        return 0;
    return (unsigned)len * 0x9e5u ^ (unsigned)k[0] * 0x3b1u ^ (unsigned)k[len - 1] * 0x61u;
}

/* The entry for the top-level key name[0..len), added if new. */
static key_entry *cache_add(stream_cache *c, const char *name, size_t len)
{
    for (size_t i = 0; i < c->nents; i++)
        if (c->ents[i].len == len && memcmp(c->ents[i].name, name, len) == 0)
            return &c->ents[i];   /* e.g. the time field named again as a field */
    c->ents[c->nents] = (key_entry){name, len, -1, -1, false};
    return &c->ents[c->nents++];
}

/* A dotted field i: its first part becomes a parent key. */
static void cache_add_nested(stream_cache *c, const char *name, size_t dot, int field)
{
    key_entry *e = cache_add(c, name, dot);
    if (e->parent < 0)
        e->parent = (int)c->nparents++;
    c->nested[c->nnested++] = (nested_field){field, e->parent, name + dot + 1,
                                             strlen(name + dot + 1)};
}

static int cache_build(stream_cache *c, const stream_def *s)
{
    size_t max = s->nfields + 1, slots = 16;
    c->s = s;
    c->fields = s->fields;
    c->nfields = s->nfields;
    c->time_field = s->time_field;
    c->tfmt = s->tfmt;
    c->ents = calloc(max, sizeof(*c->ents));
    c->pending = calloc(s->nfields ? s->nfields : 1, 1);
    c->nested = calloc(s->nfields ? s->nfields : 1, sizeof(*c->nested));
    c->spans = calloc(s->nfields ? s->nfields : 1, sizeof(*c->spans));
    c->numtext = calloc(s->nderived ? s->nderived : 1, sizeof(*c->numtext));
    if (!c->ents || !c->pending || !c->nested || !c->spans || !c->numtext)
        return -ENOMEM;
    if (s->tfmt != TF_KAFKA && s->time_field)
        cache_add(c, s->time_field, strlen(s->time_field))->is_time = true;
    for (size_t i = 0; i < s->nfields; i++) {
        const char *dot = strchr(s->fields[i], '.');
        if (dot)
            cache_add_nested(c, s->fields[i], (size_t)(dot - s->fields[i]), (int)i);
        else
            cache_add(c, s->fields[i], strlen(s->fields[i]))->field = (int)i;
    }

    while (slots < 4 * c->nents)
        slots *= 2;
    c->table = calloc(slots, sizeof(*c->table));
    if (!c->table)
        return -ENOMEM;
    c->mask = (unsigned)slots - 1;
    c->minlen = SIZE_MAX;
    c->maxlen = 0;
    for (size_t i = 0; i < c->nents; i++) {
        const key_entry *e = &c->ents[i];
        unsigned h = key_hash((const unsigned char *)e->name, e->len) & c->mask;
        while (c->table[h])
            h = (h + 1) & c->mask;
        c->table[h] = (unsigned)i + 1;
        if (e->len < c->minlen)
            c->minlen = e->len;
        if (e->len > c->maxlen)
            c->maxlen = e->len;
    }
    return 0;
}

/* The lookup data for s, built on first use (or rebuilt if the stream at
 * this address changed). NULL if out of memory. */
static stream_cache *cache_get(event_decoder *d, const stream_def *s)
{
    stream_cache *c = NULL, *free_slot = NULL;
    for (size_t i = 0; i < d->ncaches; i++) {
        if (d->caches[i].s == s) {
            c = &d->caches[i];
            break;
        }
        if (!d->caches[i].s)
            free_slot = &d->caches[i];
    }
    if (!c)
        c = free_slot;
    if (c && c->s == s && c->fields == s->fields && c->nfields == s->nfields &&
        c->time_field == s->time_field && c->tfmt == s->tfmt)
        return c;
    if (c) {
        cache_clear(c);
    } else {
        stream_cache *n = realloc(d->caches, (d->ncaches + 1) * sizeof(*n));
        if (!n)
            return NULL;
        d->caches = n;
        c = &d->caches[d->ncaches++];
        memset(c, 0, sizeof(*c));
    }
    if (cache_build(c, s) < 0) {
        cache_clear(c);   /* leaves a free slot (s == NULL) */
        return NULL;
    }
    return c;
}

/* memcmp(...) == 0 for the short names of fields, without a call. */
static inline bool same_bytes(const char *a, const unsigned char *b, size_t n)
{
    if (n > 16)
        return memcmp(a, b, n) == 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)a[i] != b[i])
            return false;
    return true;
}

static inline const key_entry *cache_find(const stream_cache *c, const unsigned char *k,
                                          size_t len)
{
    if (len < c->minlen || len > c->maxlen)
        return NULL;
    unsigned h = key_hash(k, len) & c->mask, i;
    while ((i = c->table[h]) != 0) {
        const key_entry *e = &c->ents[i - 1];
        if (e->len == len && same_bytes(e->name, k, len))
            return e;
        h = (h + 1) & c->mask;
    }
    return NULL;
}

/* ---- numbers ---- */

static inline bool isdig(unsigned char c)
{
    return (unsigned)(c - '0') < 10;
}

static const double pow10_exact[] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/* The value of a validated JSON number t[0..n), as strtod would give it.
 * Most numbers in events have few digits: then mantissa and power of ten
 * are exact doubles and one multiply or divide rounds correctly (Clinger's
 * fast path); anything else goes to strtod_l on a NUL-terminated copy. */
static int number_value(event_decoder *d, const unsigned char *t, size_t n, double *out)
{
    size_t i = 0;
    bool neg = false;
    uint64_t m = 0;
    int ndig = 0, e10 = 0;
    if (t[0] == '-') {
        neg = true;
        i++;
    }
    for (; i < n && isdig(t[i]); i++, ndig++)
        m = m * 10 + (t[i] - '0');
    if (i < n && t[i] == '.') {
        for (i++; i < n && isdig(t[i]); i++, ndig++, e10--)
            m = m * 10 + (t[i] - '0');
    }
    if (i < n) {   /* exponent */
        int x = 0, xdig = 0;
        bool xneg = false;
        i++;
        if (t[i] == '+' || t[i] == '-')
            xneg = t[i++] == '-';
        for (; i < n; i++, xdig++)
            if (xdig < 4)
                x = x * 10 + (t[i] - '0');
        if (xdig > 3)
            ndig = 99;   /* not worth it: take the slow path */
        e10 += xneg ? -x : x;
    }
    if (ndig <= 15 && e10 >= -22 && e10 <= 22) {
        double v = (double)m;
        v = e10 < 0 ? v / pow10_exact[-e10] : v * pow10_exact[e10];
        *out = neg ? -v : v;
        return 0;
    }
    if (grow(&d->numbuf, &d->numbuf_cap, n + 1) < 0)
        return -ENOMEM;
    memcpy(d->numbuf, t, n);
    d->numbuf[n] = '\0';
    *out = strtod_l((const char *)d->numbuf, NULL, d->c_locale);   /* overflow gives +-HUGE_VAL */
    return 0;
}

/* An epoch time t[0..n), a JSON number or the contents of a string
 * ("plain decimal": -?digits(.digits)?, leading zeros allowed, when
 * !allow_exp), into milliseconds: value * 10^scale, floored. Done in
 * decimal, not in double, so "1763892000.123" is exactly ...123 ms.
 * 0, -EINVAL (not a number) or -ERANGE (outside years 0001..9999). */
static int epoch_to_ms(const unsigned char *t, size_t n, int scale, bool allow_exp, int64_t *out)
{
    const uint64_t limit = 1000000000000000ull;   /* > every valid |ms| */
    size_t i = 0, is, ie, fs, fe;
    long x10 = 0;
    bool neg = false, frac = false;
    if (i < n && t[i] == '-') {
        neg = true;
        i++;
    }
    for (is = i; i < n && isdig(t[i]); i++)
        ;
    ie = fs = fe = i;
    if (ie == is)
        return -EINVAL;
    if (i < n && t[i] == '.') {
        for (fs = ++i; i < n && isdig(t[i]); i++)
            ;
        fe = i;
        if (fe == fs)
            return -EINVAL;
    }
    if (allow_exp && i < n && (t[i] == 'e' || t[i] == 'E')) {
        bool xneg = false;
        i++;
        if (i < n && (t[i] == '+' || t[i] == '-'))
            xneg = t[i++] == '-';
        if (i >= n || !isdig(t[i]))
            return -EINVAL;
        for (; i < n && isdig(t[i]); i++)
            if (x10 < 100000000)
                x10 = x10 * 10 + (t[i] - '0');
        if (xneg)
            x10 = -x10;
    }
    if (i != n)
        return -EINVAL;

    /* The usual case: a plain integer of at most 15 digits. */
    if (ie == n && ie - is <= 15) {
        int64_t v = 0;
        for (size_t k = is; k < ie; k++)
            v = v * 10 + (t[k] - '0');
        v *= scale ? 1000 : 1;
        v = neg ? -v : v;
        if (v < MIN_TS_MS || v > MAX_TS_MS)
            return -ERANGE;
        *out = v;
        return 0;
    }

    /* Digits D = int part then fraction part; the scaled value's decimal
     * point sits after pos digits of D. */
    size_t ni = ie - is, nd = ni + (fe - fs);
    long pos = (long)ni + x10 + scale;
    uint64_t acc = 0;
    for (size_t k = 0; k < nd; k++) {
        unsigned dg = (unsigned)((k < ni ? t[is + k] : t[fs + k - ni]) - '0');
        if ((long)k < pos) {
            acc = acc * 10 + dg;
            if (acc > limit)
                return -ERANGE;
        } else if (dg) {
            frac = true;
            break;
        }
    }
    for (long k = (long)nd; k < pos && acc; k++) {
        acc *= 10;
        if (acc > limit)
            return -ERANGE;
    }
    int64_t ms = neg ? -(int64_t)acc - frac : (int64_t)acc;
    if (ms < MIN_TS_MS || ms > MAX_TS_MS)
        return -ERANGE;
    *out = ms;
    return 0;
}

/* ---- rejects ---- */

static int reject(event_decoder *d, const char *reason, const char **preason,
                  const char **pdetail)
{
    *preason = reason;
    *pdetail = d->detail;
    return -EINVAL;
}

static int reject_json(event_decoder *d, const jscan_error *e, const unsigned char *b,
                       size_t len, const char **reason, const char **detail)
{
    jscan_error_format(e, b, len, d->detail, sizeof(d->detail));
    return reject(d, REJECT_INVALID_JSON, reason, detail);
}

static const char *value_kind_name(unsigned char first)
{
    switch (first) {
    case '[': return "an array";
    case '"': return "a string";
    case 't': case 'f': return "a boolean";
    case 'n': return "null";
    default: return "a number";
    }
}

/* ---- the time ---- */

static int decode_time(event_decoder *d, const stream_def *s, const raw_time *rt,
                       int64_t kafka_ts_ms, unsigned char **scratch_next, int64_t *ts_ms,
                       const char **reason, const char **detail)
{
    int64_t ms = 0;
    int r;
    const char *tf = s->time_field ? s->time_field : "";
    if (s->tfmt == TF_KAFKA) {
        if (kafka_ts_ms < 0) {
            snprintf(d->detail, sizeof(d->detail), "message has no timestamp");
            return reject(d, REJECT_BAD_TIME, reason, detail);
        }
        if (kafka_ts_ms > MAX_TS_MS) {
            snprintf(d->detail, sizeof(d->detail), "message timestamp is out of range");
            return reject(d, REJECT_BAD_TIME, reason, detail);
        }
        *ts_ms = kafka_ts_ms;
        return 0;
    }
    if (rt->kind == FV_MISSING || rt->kind == FV_NULL) {
        snprintf(d->detail, sizeof(d->detail), "field '%.100s' is %s", tf,
                 rt->kind == FV_NULL ? "null" : "missing");
        return reject(d, REJECT_MISSING_TIME, reason, detail);
    }
    const unsigned char *t = rt->str;
    size_t n = rt->len;
    if (rt->kind == FV_STRING && rt->escaped) {
        t = *scratch_next;
        n = jscan_unescape(rt->str, rt->len, *scratch_next);
        *scratch_next += n;
    }
    int scale = s->tfmt == TF_EPOCH_S ? 3 : 0;
    if (s->tfmt == TF_RFC3339)
        r = rt->kind == FV_STRING ? time_parse_rfc3339((const char *)t, n, &ms) : -EINVAL;
    else if (rt->kind == FV_NUMBER)
        r = epoch_to_ms(t, n, scale, true, &ms);
    else if (rt->kind == FV_STRING)
        r = epoch_to_ms(t, n, scale, false, &ms);
    else
        r = -EINVAL;
    if (r == 0 && (ms < MIN_TS_MS || ms > MAX_TS_MS))
        r = -ERANGE;
    if (r == -ERANGE) {
        snprintf(d->detail, sizeof(d->detail),
                 "field '%.100s' is out of range (years 0001 to 9999)", tf);
        return reject(d, REJECT_BAD_TIME, reason, detail);
    }
    if (r < 0) {
        snprintf(d->detail, sizeof(d->detail), "field '%.100s' is not a valid %s time", tf,
                 time_format_name(s->tfmt));
        return reject(d, REJECT_BAD_TIME, reason, detail);
    }
    *ts_ms = ms;
    return 0;
}

/* ---- nested and derived fields ---- */

/* The value of key k[0..klen) in the validated object b[o.start, o.end),
 * the last one if repeated; false when absent or not an object. */
static bool object_get(event_decoder *d, const unsigned char *b, parent_span o,
                       const char *k, size_t klen, size_t *vs, size_t *ve, int *err)
{
    bool found = false;
    size_t p = o.start;
    jscan_error e;
    if (b[p] != '{')
        return false;
    p = jscan_ws(b, o.end, p + 1);
    while (p < o.end && b[p] == '"') {
        size_t ks = p;
        bool esc;
        jscan_string(b, o.end, &p, &esc, &e);
        const unsigned char *key = b + ks + 1;
        size_t n = p - ks - 2;
        if (esc) {
            if (grow(&d->keybuf, &d->keybuf_cap, n) < 0) {
                *err = -ENOMEM;
                return false;
            }
            n = jscan_unescape(key, n, d->keybuf);
            key = d->keybuf;
        }
        p = jscan_ws(b, o.end, jscan_ws(b, o.end, p) + 1);   /* past ':' */
        size_t start = p;
        jscan_value(b, o.end, &p, 1, &e);
        if (n == klen && memcmp(key, k, n) == 0) {
            *vs = start;
            *ve = p;
            found = true;
        }
        p = jscan_ws(b, o.end, p);
        if (p < o.end && b[p] == ',')
            p = jscan_ws(b, o.end, p + 1);
    }
    return found;
}

/* Follows a nested field's path from its top-level object; leaves *v
 * missing when a step is absent or not an object. */
static int find_nested(event_decoder *d, const unsigned char *b, const parent_span *top,
                       const nested_field *nf, field_value *v, unsigned char *pending)
{
    parent_span o = *top;
    const char *path = nf->path, *end = nf->path + nf->len;
    int err = 0;
    size_t vs = 0, ve = 0;
    while (path < end) {
        const char *dot = memchr(path, '.', (size_t)(end - path));
        size_t klen = dot ? (size_t)(dot - path) : (size_t)(end - path);
        if (!object_get(d, b, o, path, klen, &vs, &ve, &err))
            return err;
        o = (parent_span){vs, ve};
        path += klen + (dot != NULL);
    }
    *v = (field_value){FV_OTHER, (const char *)b + vs, ve - vs, 0};
    switch (b[vs]) {
    case '"': {
        size_t p = vs;
        bool esc = false;
        jscan_error e;
        jscan_string(b, ve, &p, &esc, &e);
        *v = (field_value){FV_STRING, (const char *)b + vs + 1, ve - vs - 2, 0};
        *pending = esc;
        break;
    }
    case 'n': v->kind = FV_NULL; break;
    case 't': case 'f': v->kind = FV_BOOL; break;
    case '{': case '[': break;
    default: v->kind = FV_NUMBER; break;
    }
    return 0;
}

/* The event time (what the time field's name means in an expression), then
 * the derived fields in order. */
static int derive(event_decoder *d, stream_cache *c, const stream_def *s, int64_t ts_ms,
                  field_value *vals)
{
    vals[s->nfields + s->nderived] = (field_value){FV_NUMBER, NULL, 0, (double)ts_ms / 1000.0};
    if (!s->nderived)
        return 0;
    expr_scratch_reset(&d->xs);
    for (size_t k = 0; k < s->nderived; k++) {
        const derived_field *f = &s->derived[k];
        field_value *v = &vals[s->nfields + k];
        expr_val r;
        expr_eval(f->expr, vals, &d->xs, &r);
        switch (r.kind) {
        case EV_STR: *v = (field_value){FV_STRING, r.str, r.len, 0}; break;
        case EV_BOOL:
            *v = (field_value){FV_BOOL, r.b ? "true" : "false", r.b ? 4 : 5, 0};
            break;
        case EV_NUM:
            *v = (field_value){FV_NUMBER, c->numtext[k], 0, r.num};
            if (f->needs_text)   /* what a dimension keeps and a distinct counts */
                v->len = str_number(r.num, c->numtext[k]);
            break;
        default: *v = (field_value){FV_NULL, "null", 4, 0}; break;
        }
    }
    return d->xs.oom ? -ENOMEM : 0;
}

/* ---- the decoder ---- */

int event_decode(event_decoder *d, const stream_def *s, const char *buf, size_t len,
                 int64_t kafka_ts_ms, int64_t *ts_ms, field_value *vals,
                 const char **reason, const char **detail)
{
    const unsigned char *b = (const unsigned char *)buf;
    raw_time rt = {FV_MISSING, NULL, 0, false};
    jscan_error e;
    size_t p, vs, escaped_bytes = 0;
    bool esc;

    *reason = NULL;
    *detail = NULL;
    stream_cache *c = cache_get(d, s);
    if (!c)
        return -ENOMEM;
    for (size_t i = 0; i < s->nfields; i++)
        vals[i] = (field_value){FV_MISSING, NULL, 0, 0};
    memset(c->pending, 0, s->nfields);
    memset(c->spans, 0, c->nparents * sizeof(*c->spans));

    p = jscan_ws(b, len, 0);
    if (p >= len) {
        snprintf(d->detail, sizeof(d->detail), "empty input");
        return reject(d, REJECT_INVALID_JSON, reason, detail);
    }
    if (b[p] != '{') {
        /* Validate first: invalid JSON is the more useful reason. */
        vs = p;
        if (jscan_value(b, len, &p, 0, &e))
            return reject_json(d, &e, b, len, reason, detail);
        p = jscan_ws(b, len, p);
        if (p < len)
            return reject_json(d, &(jscan_error){JS_TRAILING, p}, b, len, reason, detail);
        snprintf(d->detail, sizeof(d->detail), "top-level value is %s", value_kind_name(b[vs]));
        return reject(d, REJECT_NOT_OBJECT, reason, detail);
    }

    p = jscan_ws(b, len, p + 1);
    if (p < len && b[p] == '}') {
        p++;
        goto end;
    }
    for (;;) {
        /* key */
        if (p >= len)
            return reject_json(d, &(jscan_error){JS_UNEXPECTED_END, len}, b, len, reason,
                               detail);
        if (b[p] != '"')
            return reject_json(d, &(jscan_error){JS_UNEXPECTED_CHAR, p}, b, len, reason,
                               detail);
        size_t ks = p;
        if (jscan_string(b, len, &p, &esc, &e))
            return reject_json(d, &e, b, len, reason, detail);
        const unsigned char *k = b + ks + 1;
        size_t klen = p - ks - 2;
        if (esc && klen >= c->minlen) {
            if (grow(&d->keybuf, &d->keybuf_cap, klen) < 0)
                return -ENOMEM;
            klen = jscan_unescape(k, klen, d->keybuf);
            k = d->keybuf;
        }
        const key_entry *ent = cache_find(c, k, klen);

        p = jscan_ws(b, len, p);
        if (p >= len)
            return reject_json(d, &(jscan_error){JS_UNEXPECTED_END, len}, b, len, reason,
                               detail);
        if (b[p] != ':')
            return reject_json(d, &(jscan_error){JS_UNEXPECTED_CHAR, p}, b, len, reason,
                               detail);
        p = jscan_ws(b, len, p + 1);
        if (p >= len)
            return reject_json(d, &(jscan_error){JS_UNEXPECTED_END, len}, b, len, reason,
                               detail);

        /* value */
        vs = p;
        if (!ent) {
            if (jscan_value(b, len, &p, 1, &e))
                return reject_json(d, &e, b, len, reason, detail);
        } else {
            field_value v = {FV_OTHER, (const char *)b + vs, 0, 0};
            esc = false;
            if (b[vs] == '"') {
                if (jscan_string(b, len, &p, &esc, &e))
                    return reject_json(d, &e, b, len, reason, detail);
                v.kind = FV_STRING;
                v.str++;
                v.len = p - vs - 2;
            } else {
                if (jscan_value(b, len, &p, 1, &e))
                    return reject_json(d, &e, b, len, reason, detail);
                v.len = p - vs;
                switch (b[vs]) {
                case 'n': v.kind = FV_NULL; break;
                case 't': case 'f': v.kind = FV_BOOL; break;
                case '{': case '[': v.kind = FV_OTHER; break;
                default: v.kind = FV_NUMBER; break;
                }
            }
            if (ent->field >= 0) {
                vals[ent->field] = v;
                c->pending[ent->field] = esc;
            }
            if (ent->parent >= 0)
                c->spans[ent->parent] = (parent_span){vs, p};
            if (ent->is_time)
                rt = (raw_time){v.kind, (const unsigned char *)v.str, v.len, esc};
        }

        p = jscan_ws(b, len, p);
        if (p >= len)
            return reject_json(d, &(jscan_error){JS_UNEXPECTED_END, len}, b, len, reason,
                               detail);
        if (b[p] == ',') {
            p = jscan_ws(b, len, p + 1);
            continue;
        }
        if (b[p] == '}') {
            p++;
            break;
        }
        return reject_json(d, &(jscan_error){JS_UNEXPECTED_CHAR, p}, b, len, reason, detail);
    }
end:
    p = jscan_ws(b, len, p);
    if (p < len)
        return reject_json(d, &(jscan_error){JS_TRAILING, p}, b, len, reason, detail);

    /* Valid. Nested fields, now that their objects are known to be JSON. */
    for (size_t i = 0; i < c->nnested; i++) {
        const parent_span *sp = &c->spans[c->nested[i].parent];
        if (sp->end && find_nested(d, b, sp, &c->nested[i], &vals[c->nested[i].field],
                                   &c->pending[c->nested[i].field]) < 0)
            return -ENOMEM;
    }
    /* Size the scratch once for every string that needs unescaping,
     * so it does not move while we hand out pointers into it. */
    for (size_t i = 0; i < s->nfields; i++)
        if (c->pending[i])
            escaped_bytes += vals[i].len;
    if (rt.kind == FV_STRING && rt.escaped)
        escaped_bytes += rt.len;
    if (escaped_bytes && grow(&d->scratch, &d->scratch_cap, escaped_bytes) < 0)
        return -ENOMEM;
    unsigned char *next = d->scratch;

    int r = decode_time(d, s, &rt, kafka_ts_ms, &next, ts_ms, reason, detail);
    if (r < 0)
        return r;
    for (size_t i = 0; i < s->nfields; i++) {
        field_value *v = &vals[i];
        if (c->pending[i]) {
            size_t n = jscan_unescape((const unsigned char *)v->str, v->len, next);
            v->str = (const char *)next;
            v->len = n;
            next += n;
        } else if (v->kind == FV_NUMBER) {
            if (number_value(d, (const unsigned char *)v->str, v->len, &v->num) < 0)
                return -ENOMEM;
        }
    }
    return derive(d, c, s, *ts_ms, vals);
}

expr_scratch *event_decoder_scratch(event_decoder *d)
{
    return &d->xs;
}
