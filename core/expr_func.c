/* expr_func.c - the functions of the expression language (see expr.h for
 * what each does). Each gets its evaluated arguments; a null or mistyped
 * argument gives null unless the function says otherwise (concat,
 * coalesce, if). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/expr_int.h"
#include "core/gran.h"
#include "core/strutil.h"

static bool all_kind(const expr_val *a, int n, ev_kind k)
{
    for (int i = 0; i < n; i++)
        if (a[i].kind != k)
            return false;
    return true;
}

static void f_case(const expr_val *a, expr_val *out, expr_scratch *sc, bool upper)
{
    if (a[0].kind != EV_STR) {
        ev_null(out);
        return;
    }
    char *s = expr_scratch_alloc(sc, a[0].len ? a[0].len : 1);
    if (!s) {
        ev_null(out);
        return;
    }
    for (size_t i = 0; i < a[0].len; i++) {
        char c = a[0].str[i];
        if (upper && c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        else if (!upper && c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        s[i] = c;
    }
    ev_str(out, s, a[0].len);
}

static void f_lower(const expr_val *a, int n, expr_scratch *sc, expr_val *out)
{
    (void)n;
    f_case(a, out, sc, false);
}

static void f_upper(const expr_val *a, int n, expr_scratch *sc, expr_val *out)
{
    (void)n;
    f_case(a, out, sc, true);
}

static size_t utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i += utf8_step(s + i, len - i))
        n++;
    return n;
}

/* The byte offset of character number k (0-based) of s, or len. */
static size_t utf8_offset(const char *s, size_t len, size_t k)
{
    size_t i = 0;
    while (k-- && i < len)
        i += utf8_step(s + i, len - i);
    return i;
}

static void f_length(const expr_val *a, int n, expr_scratch *sc, expr_val *out)
{
    (void)n;
    (void)sc;
    if (a[0].kind == EV_STR)
        ev_num(out, (double)utf8_chars(a[0].str, a[0].len));
    else
        ev_null(out);
}

/* substr(s, start[, count]) as in SQL: characters start .. start+count-1
 * (1-based) that exist; a start before 1 still counts toward count. */
static void f_substr(const expr_val *a, int n, expr_scratch *sc, expr_val *out)
{
    (void)sc;
    if (!all_kind(a + 1, n - 1, EV_NUM) || a[0].kind != EV_STR ||
        (n == 3 && a[2].num < 0)) {
        ev_null(out);
        return;
    }
    double start = floor(a[1].num);
    double end = n == 3 ? start + floor(a[2].num) : INFINITY;   /* exclusive */
    size_t chars = utf8_chars(a[0].str, a[0].len);
    double from = start < 1 ? 1 : start;
    double to = end > (double)chars + 1 ? (double)chars + 1 : end;
    if (to <= from) {
        ev_str(out, "", 0);
        return;
    }
    size_t b0 = utf8_offset(a[0].str, a[0].len, (size_t)from - 1);
    size_t b1 = b0 + utf8_offset(a[0].str + b0, a[0].len - b0, (size_t)(to - from));
    ev_str(out, a[0].str + b0, b1 - b0);
}

/* split_part(s, delimiter, n): the n-th field (1-based; negative counts
 * from the end), '' when there are fewer; n = 0 is null. */
static void f_split_part(const expr_val *a, int n, expr_scratch *sc, expr_val *out)
{
    (void)n;
    (void)sc;
    if (a[0].kind != EV_STR || a[1].kind != EV_STR || a[2].kind != EV_NUM || a[2].num == 0 ||
        fabs(a[2].num) > 1e9) {
        ev_null(out);
        return;
    }
    const char *s = a[0].str, *d = a[1].str;
    size_t sl = a[0].len, dl = a[1].len;
    long long want = (long long)a[2].num;
    if (!dl) {   /* no delimiter: the string is the only field */
        if (want == 1 || want == -1)
            ev_str(out, s, sl);
        else
            ev_str(out, "", 0);
        return;
    }
    /* Count the fields to turn a negative n into a positive one. */
    long long fields = 1;
    for (size_t i = 0; i + dl <= sl;) {
        if (memcmp(s + i, d, dl) == 0) {
            fields++;
            i += dl;
        } else {
            i++;
        }
    }
    if (want < 0)
        want = fields + 1 + want;
    if (want < 1 || want > fields) {
        ev_str(out, "", 0);
        return;
    }
    size_t start = 0;
    long long field = 1;
    for (size_t i = 0; i + dl <= sl;) {
        if (memcmp(s + i, d, dl) == 0) {
            if (field == want) {
                ev_str(out, s + start, i - start);
                return;
            }
            field++;
            i += dl;
            start = i;
        } else {
            i++;
        }
    }
    ev_str(out, s + start, sl - start);
}

/* The text concat gives a value (numbers in their shortest round-trip
 * form, like query answers). */
static size_t text_of(const expr_val *v, char num[32], const char **s)
{
    switch (v->kind) {
    case EV_STR: *s = v->str; return v->len;
    case EV_NUM: *s = num; return str_number(v->num, num);
    case EV_BOOL: *s = v->b ? "true" : "false"; return v->b ? 4 : 5;
    default: *s = ""; return 0;
    }
}

static void f_concat(const expr_val *a, int n, expr_scratch *sc, expr_val *out)
{
    char nums[EXPR_MAX_ARGS][32];
    const char *parts[EXPR_MAX_ARGS];
    size_t lens[EXPR_MAX_ARGS], total = 0;
    for (int i = 0; i < n; i++) {
        lens[i] = text_of(&a[i], nums[i], &parts[i]);
        total += lens[i];
    }
    char *s = expr_scratch_alloc(sc, total ? total : 1);
    if (!s) {
        ev_null(out);
        return;
    }
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        if (lens[i])
            memcpy(s + at, parts[i], lens[i]);
        at += lens[i];
    }
    ev_str(out, s, total);
}

static void f_coalesce(const expr_val *a, int n, expr_scratch *sc, expr_val *out)
{
    (void)sc;
    for (int i = 0; i < n; i++)
        if (a[i].kind != EV_NULL) {
            *out = a[i];
            return;
        }
    ev_null(out);
}

static void f_if(const expr_val *a, int n, expr_scratch *sc, expr_val *out)
{
    (void)n;
    (void)sc;
    *out = a[0].kind == EV_BOOL && a[0].b ? a[1] : a[2];
}

static void f_abs(const expr_val *a, int n, expr_scratch *sc, expr_val *out)
{
    (void)n;
    (void)sc;
    if (a[0].kind == EV_NUM)
        ev_num(out, fabs(a[0].num));
    else
        ev_null(out);
}

static void f_floor(const expr_val *a, int n, expr_scratch *sc, expr_val *out)
{
    (void)n;
    (void)sc;
    if (a[0].kind == EV_NUM)
        ev_num(out, floor(a[0].num));
    else
        ev_null(out);
}

static void f_ceil(const expr_val *a, int n, expr_scratch *sc, expr_val *out)
{
    (void)n;
    (void)sc;
    if (a[0].kind == EV_NUM)
        ev_num(out, ceil(a[0].num));
    else
        ev_null(out);
}

/* round(x[, digits]): half away from zero; digits -15..15. */
static void f_round(const expr_val *a, int n, expr_scratch *sc, expr_val *out)
{
    (void)sc;
    if (!all_kind(a, n, EV_NUM) || (n == 2 && fabs(a[1].num) > 15)) {
        ev_null(out);
        return;
    }
    int digits = n == 2 ? (int)a[1].num : 0;
    if (!digits) {
        ev_num(out, round(a[0].num));
        return;
    }
    double scale = pow(10, abs(digits));
    if (digits > 0)
        ev_num(out, round(a[0].num * scale) / scale);
    else
        ev_num(out, round(a[0].num / scale) * scale);
}

/* A time argument in epoch seconds: a number as it is, a string parsed as
 * RFC 3339. false when it is neither. */
static bool time_arg(const expr_val *v, int64_t *sec)
{
    if (v->kind == EV_NUM && fabs(v->num) < 1e15) {
        *sec = (int64_t)floor(v->num);
        return true;
    }
    int64_t ms;
    if (v->kind == EV_STR && time_parse_rfc3339(v->str, v->len, &ms) == 0) {
        *sec = floor_div(ms, 1000);
        return true;
    }
    return false;
}

static void f_hour(const expr_val *a, int n, expr_scratch *sc, expr_val *out)
{
    (void)n;
    (void)sc;
    int64_t t;
    if (time_arg(&a[0], &t))
        ev_num(out, (double)((t - floor_div(t, 86400) * 86400) / 3600));
    else
        ev_null(out);
}

static void f_weekday(const expr_val *a, int n, expr_scratch *sc, expr_val *out)
{
    (void)n;
    (void)sc;
    int64_t t;
    if (!time_arg(&a[0], &t)) {
        ev_null(out);
        return;
    }
    int64_t days = floor_div(t, 86400);   /* day 0, 1970-01-01, was a Thursday (4) */
    ev_num(out, (double)(days + 3 - floor_div(days + 3, 7) * 7 + 1));
}

static const expr_func funcs[] = {
    {"lower", 1, 1, "s", ET_STR, f_lower},
    {"upper", 1, 1, "s", ET_STR, f_upper},
    {"length", 1, 1, "s", ET_NUM, f_length},
    {"substr", 2, 3, "snn", ET_STR, f_substr},
    {"split_part", 3, 3, "ssn", ET_STR, f_split_part},
    {"concat", 1, EXPR_MAX_ARGS, "*", ET_STR, f_concat},
    {"coalesce", 1, EXPR_MAX_ARGS, "*", ET_ANY, f_coalesce},
    {"if", 3, 3, "b*", ET_ANY, f_if},
    {"abs", 1, 1, "n", ET_NUM, f_abs},
    {"floor", 1, 1, "n", ET_NUM, f_floor},
    {"ceil", 1, 1, "n", ET_NUM, f_ceil},
    {"round", 1, 2, "n", ET_NUM, f_round},
    {"hour", 1, 1, "*", ET_NUM, f_hour},
    {"weekday", 1, 1, "*", ET_NUM, f_weekday},
};

const expr_func *expr_find_func(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(funcs) / sizeof(funcs[0]); i++)
        if (strlen(funcs[i].name) == len && strncasecmp(funcs[i].name, name, len) == 0)
            return &funcs[i];
    return NULL;
}
