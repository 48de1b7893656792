/* metrics.c - the Prometheus metrics registry and its text rendering.
 *
 * Threads: any thread updates; the HTTP pool renders. A metric's series
 * (one per label combination) form a singly linked list that only ever
 * grows at its head: a lookup walks it from an acquire-load of the head
 * without a lock, and a new series is built and published with a release
 * store under the metric's mutex (which also stops two threads from
 * adding the same combination). Values are atomics; doubles live in
 * 64-bit atomics as their bit patterns and are added with a CAS loop.
 * The registry's mutex guards only its list of metrics (registration and
 * rendering); it is never taken by an update.
 *
 * Series are freed only with a private registry (tests), when nobody
 * updates any more; the global registry lives as long as the process.
 */
#include "core/metrics.h"
#include "core/bytes.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct metrics_series {
    metrics_series *next;
    uint64_t hash;
    char *values[METRICS_MAX_LABELS];   /* label values (valid UTF-8), in one block with this */
    atomic_uint_fast64_t value;         /* counter: the count; gauge: double bits;
                                           histogram: the sum's double bits */
    atomic_uint_fast64_t counts[];      /* histogram: per bucket (not cumulative), then +Inf */
};

struct metrics_registry {
    pthread_mutex_t lock;
    metric *head;
};

static metrics_registry global_registry = {.lock = PTHREAD_MUTEX_INITIALIZER};

const double metrics_buckets_latency[METRICS_BUCKETS_LATENCY_N] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};
const double metrics_buckets_long[METRICS_BUCKETS_LONG_N] = {
    0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600,
};

metrics_registry *metrics_global(void)
{
    return &global_registry;
}

/* ---- doubles in atomics ---- */

static void atomic_add_dbl(atomic_uint_fast64_t *a, double d)
{
    uint_fast64_t old = atomic_load_explicit(a, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(a, &old, f64_bits(f64_of_bits(old) + d),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

/* ---- series lookup ---- */

static size_t nlabels(const metric *m)
{
    size_t n = 0;
    while (n < METRICS_MAX_LABELS && m->labels[n])
        n++;
    return n;
}

/* A missing label value is the empty string. */
static const char *label_at(const char *const *labels, size_t i)
{
    return labels && labels[i] ? labels[i] : "";
}

static uint64_t labels_hash(const char *const *labels, size_t n)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < n; i++) {
        for (const unsigned char *s = (const unsigned char *)label_at(labels, i); *s; s++)
            h = (h ^ *s) * UINT64_C(0x100000001b3);
        h = (h ^ 0xff) * UINT64_C(0x100000001b3);   /* separator: ("ab","") != ("a","b") */
    }
    return h;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when s does not
 * start one. */
static size_t utf8_seq(const unsigned char *s)
{
    if (s[0] < 0x80)
        return 1;
    size_t n;
    uint32_t cp;
    if ((s[0] & 0xe0) == 0xc0) {
        n = 2;
        cp = s[0] & 0x1f;
    } else if ((s[0] & 0xf0) == 0xe0) {
        n = 3;
        cp = s[0] & 0x0f;
    } else if ((s[0] & 0xf8) == 0xf0) {
        n = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    static const uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* Copies s to out (when not NULL) with every invalid UTF-8 byte replaced
 * by U+FFFD, as the exposition format wants UTF-8; returns the length. */
static size_t utf8_clean(const char *s, char *out)
{
    static const char repl[] = "\xef\xbf\xbd";
    size_t len = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t n = utf8_seq(p);
        if (n) {
            if (out)
                memcpy(out + len, p, n);
            len += n;
            p += n;
        } else {
            if (out)
                memcpy(out + len, repl, 3);
            len += 3;
            p++;
        }
    }
    return len;
}

static bool series_matches(const metrics_series *s, uint64_t h, const char *const *labels,
                           size_t n)
{
    if (s->hash != h)
        return false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(label_at(labels, i), s->values[i]) != 0)
            return false;
    return true;
}

static metrics_series *find(metrics_series *head, uint64_t h, const char *const *labels, size_t n)
{
    for (metrics_series *s = head; s; s = s->next)
        if (series_matches(s, h, labels, n))
            return s;
    return NULL;
}

static metrics_series *series_new(const metric *m, uint64_t h, const char *const *labels,
                                  size_t n)
{
    size_t ncounts = m->kind == METRICS_HISTOGRAM ? m->nbuckets + 1 : 0;
    size_t head = sizeof(metrics_series) + ncounts * sizeof(atomic_uint_fast64_t);
    size_t total = head;
    for (size_t i = 0; i < n; i++)
        total += strlen(label_at(labels, i)) + 1;
    metrics_series *s = calloc(1, total);
    if (!s)
        return NULL;
    s->hash = h;
    char *p = (char *)s + head;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(label_at(labels, i));
        memcpy(p, label_at(labels, i), len + 1);
        s->values[i] = p;
        p += len + 1;
    }
    atomic_init(&s->value, m->kind == METRICS_COUNTER ? 0 : f64_bits(0.0));
    for (size_t i = 0; i < ncounts; i++)
        atomic_init(&s->counts[i], 0);
    return s;
}

/* Label values with every invalid UTF-8 byte replaced (the rare case of a
 * value from data): *buf holds the copies, free it after the lookup. */
static int clean_labels(const char *const **labels, size_t n, const char **tmp, char **buf)
{
    size_t total = 0;
    bool dirty = false;
    for (size_t i = 0; i < n; i++) {
        size_t len = utf8_clean(label_at(*labels, i), NULL);
        dirty |= len != strlen(label_at(*labels, i));
        total += len + 1;
    }
    *buf = NULL;
    if (!dirty)
        return 0;
    if (!(*buf = malloc(total)))
        return -ENOMEM;
    char *p = *buf;
    for (size_t i = 0; i < n; i++) {
        size_t len = utf8_clean(label_at(*labels, i), p);
        p[len] = '\0';
        tmp[i] = p;
        p += len + 1;
    }
    *labels = tmp;
    return 0;
}

/* The series of these label values, created on first use; NULL (and the
 * update dropped) at the series cap or when out of memory. */
static metrics_series *series_get(metric *m, const char *const *labels)
{
    size_t n = nlabels(m);
    const char *tmp[METRICS_MAX_LABELS];
    char *buf = NULL;
    metrics_series *s = NULL;
    if (clean_labels(&labels, n, tmp, &buf) < 0)
        goto out;
    uint64_t h = labels_hash(labels, n);
    s = find(atomic_load_explicit(&m->series, memory_order_acquire), h, labels, n);
    if (s)
        goto out;
    pthread_mutex_lock(&m->lock);
    metrics_series *head = atomic_load_explicit(&m->series, memory_order_acquire);
    s = find(head, h, labels, n);   /* another thread may have added it meanwhile */
    if (!s && m->nseries < METRICS_MAX_SERIES && (s = series_new(m, h, labels, n))) {
        s->next = head;
        atomic_store_explicit(&m->series, s, memory_order_release);
        m->nseries++;
    }
    pthread_mutex_unlock(&m->lock);
out:
    free(buf);
    if (!s)
        atomic_fetch_add_explicit(&m->dropped, 1, memory_order_relaxed);
    return s;
}

/* ---- updates ---- */

void metrics_counter_add(metric *m, const char *const *labels, uint64_t n)
{
    metrics_series *s = series_get(m, labels);
    if (s)
        atomic_fetch_add_explicit(&s->value, n, memory_order_relaxed);
}

void metrics_counter_set(metric *m, const char *const *labels, uint64_t v)
{
    metrics_series *s = series_get(m, labels);
    if (s)
        atomic_store_explicit(&s->value, v, memory_order_relaxed);
}

void metrics_gauge_set(metric *m, const char *const *labels, double v)
{
    metrics_series *s = series_get(m, labels);
    if (s)
        atomic_store_explicit(&s->value, f64_bits(v), memory_order_relaxed);
}

void metrics_gauge_add(metric *m, const char *const *labels, double d)
{
    metrics_series *s = series_get(m, labels);
    if (s)
        atomic_add_dbl(&s->value, d);
}

void metrics_observe(metric *m, const char *const *labels, double v)
{
    metrics_series *s = series_get(m, labels);
    if (!s)
        return;
    size_t b = 0;   /* the first bucket whose bound holds v; NaN lands in +Inf */
    while (b < m->nbuckets && !(v <= m->buckets[b]))
        b++;
    atomic_fetch_add_explicit(&s->counts[b], 1, memory_order_relaxed);
    atomic_add_dbl(&s->value, v);
}

/* ---- registration ---- */

static bool valid_name(const char *s, bool colon)
{
    if (!s || !*s || (*s >= '0' && *s <= '9'))
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || (colon && *s == ':')))
            return false;
    return true;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* NULL when m is a good definition, else what is wrong with it. */
static const char *definition_problem(const metric *m)
{
    if (!valid_name(m->name, true))
        return "the name must match [a-zA-Z_:][a-zA-Z0-9_:]*";
    if (!m->help)
        return "no help text";
    if (m->kind == METRICS_COUNTER && !ends_with(m->name, "_total"))
        return "a counter's name must end in _total";
    if (m->kind != METRICS_COUNTER && ends_with(m->name, "_total"))
        return "only a counter's name ends in _total";
    if (m->kind > METRICS_HISTOGRAM)
        return "unknown kind";
    if (m->labels[METRICS_MAX_LABELS])
        return "too many labels";
    size_t n = nlabels(m);
    for (size_t i = 0; i < n; i++) {
        if (!valid_name(m->labels[i], false) || strncmp(m->labels[i], "__", 2) == 0)
            return "a label name must match [a-zA-Z_][a-zA-Z0-9_]* and not start with __";
        if (m->kind == METRICS_HISTOGRAM && strcmp(m->labels[i], "le") == 0)
            return "a histogram cannot have a label named le";
        for (size_t j = 0; j < i; j++)
            if (strcmp(m->labels[i], m->labels[j]) == 0)
                return "duplicate label name";
    }
    if (m->kind == METRICS_HISTOGRAM) {
        if (!m->buckets || m->nbuckets == 0)
            return "a histogram needs buckets";
        for (size_t i = 0; i < m->nbuckets; i++)
            if (!isfinite(m->buckets[i]) || (i && !(m->buckets[i] > m->buckets[i - 1])))
                return "bucket bounds must be finite and increasing";
    }
    return NULL;
}

int metrics_register(metrics_registry *r, metric *m)
{
    if (!r)
        r = &global_registry;
    if (definition_problem(m))
        return -EINVAL;
    int rc = 0;
    pthread_mutex_lock(&r->lock);
    if (m->reg) {
        rc = -EEXIST;
        goto out;
    }
    for (metric *o = r->head; o; o = o->next)
        if (strcmp(o->name, m->name) == 0) {
            rc = -EEXIST;
            goto out;
        }
    m->reg = r;
    m->next = r->head;
    r->head = m;
out:
    pthread_mutex_unlock(&r->lock);
    return rc;
}

void metrics_register_or_die(metrics_registry *r, metric *m)
{
    int rc = metrics_register(r, m);
    if (rc == 0)
        return;
    /* A bad definition in the source: say which before stopping. */
    const char *why = definition_problem(m);
    fprintf(stderr, "lambdad: bad metric definition '%s': %s\n", m->name ? m->name : "(null)",
            why ? why : "the name is registered twice");
    abort();
}

int metrics_registry_new(metrics_registry **out)
{
    metrics_registry *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    pthread_mutex_init(&r->lock, NULL);
    *out = r;
    return 0;
}

void metrics_registry_free(metrics_registry *r)
{
    if (!r || r == &global_registry)
        return;
    for (metric *m = r->head, *next; m; m = next) {
        next = m->next;
        for (metrics_series *s = atomic_load(&m->series), *sn; s; s = sn) {
            sn = s->next;
            free(s);
        }
        atomic_store(&m->series, NULL);
        m->nseries = 0;
        atomic_store(&m->dropped, 0);
        m->next = NULL;
        m->reg = NULL;
    }
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* ---- rendering ---- */

/* Prometheus' spelling of a float: shortest text that reads back the
 * same, "+Inf", "-Inf", "NaN". */
static void fmt_double(char buf[40], double v)
{
    if (isnan(v)) {
        strcpy(buf, "NaN");
        return;
    }
    if (isinf(v)) {
        strcpy(buf, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(buf, 40, "%.0f", v);   /* 10, not 1e+01 */
        if (strcmp(buf, "-0") == 0)
            strcpy(buf, "0");
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, 40, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

/* HELP text: backslash and newline escaped. */
static void put_help(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\\\", f);
        else if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

/* A label value: backslash, double quote and newline escaped. */
static void put_label_value(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\\\", f);
        else if (*s == '"')
            fputs("\\\"", f);
        else if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

/* name{l1="v1",...,extra="value"} (braces only when there is a label) */
static void put_sample_name(FILE *f, const metric *m, const char *suffix,
                            const metrics_series *s, const char *extra, const char *extra_val)
{
    fputs(m->name, f);
    fputs(suffix, f);
    size_t n = s ? nlabels(m) : 0;
    if (n == 0 && !extra)
        return;
    fputc('{', f);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%s%s=\"", i ? "," : "", m->labels[i]);
        put_label_value(f, s->values[i]);
        fputc('"', f);
    }
    if (extra)
        fprintf(f, "%s%s=\"%s\"", n ? "," : "", extra, extra_val);
    fputc('}', f);
}

static void put_series(FILE *f, const metric *m, const metrics_series *s)
{
    char num[40];
    if (m->kind == METRICS_COUNTER) {
        put_sample_name(f, m, "", s, NULL, NULL);
        fprintf(f, " %llu\n",
                s ? (unsigned long long)atomic_load_explicit(&s->value, memory_order_relaxed) : 0ULL);
        return;
    }
    if (m->kind == METRICS_GAUGE) {
        put_sample_name(f, m, "", s, NULL, NULL);
        fmt_double(num, s ? f64_of_bits(atomic_load_explicit(&s->value, memory_order_relaxed)) : 0);
        fprintf(f, " %s\n", num);
        return;
    }
    /* Buckets are cumulative, and _count is the +Inf bucket, so the three
     * agree even while observations land during the rendering. */
    uint64_t cum = 0;
    for (size_t b = 0; b <= m->nbuckets; b++) {
        cum += s ? atomic_load_explicit(&s->counts[b], memory_order_relaxed) : 0;
        if (b < m->nbuckets)
            fmt_double(num, m->buckets[b]);
        else
            strcpy(num, "+Inf");
        put_sample_name(f, m, "_bucket", s, "le", num);
        fprintf(f, " %llu\n", (unsigned long long)cum);
    }
    fmt_double(num, s ? f64_of_bits(atomic_load_explicit(&s->value, memory_order_relaxed)) : 0);
    put_sample_name(f, m, "_sum", s, NULL, NULL);
    fprintf(f, " %s\n", num);
    put_sample_name(f, m, "_count", s, NULL, NULL);
    fprintf(f, " %llu\n", (unsigned long long)cum);
}

static int cmp_metric(const void *a, const void *b)
{
    return strcmp((*(metric *const *)a)->name, (*(metric *const *)b)->name);
}

static int cmp_series(const void *a, const void *b, void *ud)
{
    const metrics_series *x = *(metrics_series *const *)a, *y = *(metrics_series *const *)b;
    size_t n = *(const size_t *)ud;
    for (size_t i = 0; i < n; i++) {
        int c = strcmp(x->values[i], y->values[i]);
        if (c)
            return c;
    }
    return 0;
}

static int render_metric(FILE *f, const metric *m)
{
    static const char *const kinds[] = {"counter", "gauge", "histogram"};
    fprintf(f, "# HELP %s ", m->name);
    put_help(f, m->help);
    fprintf(f, "\n# TYPE %s %s\n", m->name, kinds[m->kind]);

    metrics_series *head = atomic_load_explicit(&m->series, memory_order_acquire);
    size_t n = 0;
    for (metrics_series *s = head; s; s = s->next)
        n++;
    if (n == 0) {
        if (nlabels(m) == 0)
            put_series(f, m, NULL);   /* never updated: an unlabeled metric reads 0 */
        return 0;
    }
    metrics_series **v = malloc(n * sizeof(*v));
    if (!v)
        return -ENOMEM;
    size_t i = 0;
    for (metrics_series *s = head; s && i < n; s = s->next)
        v[i++] = s;
    size_t nl = nlabels(m);
    qsort_r(v, i, sizeof(*v), cmp_series, &nl);
    for (size_t k = 0; k < i; k++)
        put_series(f, m, v[k]);
    free(v);
    return 0;
}

int metrics_render(metrics_registry *r, char **text, size_t *len)
{
    if (!r)
        r = &global_registry;
    *text = NULL;
    *len = 0;
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f)
        return -ENOMEM;
    int rc = 0;
    metric **all = NULL;
    /* The lock keeps the list of metrics still; updates never take it. */
    pthread_mutex_lock(&r->lock);
    size_t n = 0;
    for (metric *m = r->head; m; m = m->next)
        n++;
    if (n && !(all = malloc(n * sizeof(*all)))) {
        rc = -ENOMEM;
        goto out;
    }
    n = 0;
    for (metric *m = r->head; m; m = m->next)
        all[n++] = m;
    qsort(all, n, sizeof(*all), cmp_metric);
    bool any_dropped = false;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = render_metric(f, all[i]);
        any_dropped |= atomic_load_explicit(&all[i]->dropped, memory_order_relaxed) != 0;
    }
    if (any_dropped && rc == 0) {
        fputs("# HELP lambdad_metrics_dropped_updates_total Metric updates dropped because a "
              "metric reached its limit of label combinations or memory ran out.\n"
              "# TYPE lambdad_metrics_dropped_updates_total counter\n", f);
        for (size_t i = 0; i < n; i++) {
            uint64_t d = atomic_load_explicit(&all[i]->dropped, memory_order_relaxed);
            if (d)
                fprintf(f, "lambdad_metrics_dropped_updates_total{metric=\"%s\"} %llu\n",
                        all[i]->name, (unsigned long long)d);
        }
    }
out:
    pthread_mutex_unlock(&r->lock);
    free(all);
    if (ferror(f))
        rc = -ENOMEM;
    if (fclose(f) != 0)
        rc = -ENOMEM;
    if (rc < 0) {
        free(buf);
        return rc;
    }
    *text = buf;   /* ownership moves to the caller */
    *len = size;
    return 0;
}
