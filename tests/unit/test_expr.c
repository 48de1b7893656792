/* Unit tests: the expression language (core/expr.h).
 * - every operator and function, with nulls and values of the wrong type;
 * - three-valued and/or, in lists with nulls, like with % _ and escapes
 *   over UTF-8;
 * - compile errors: exact messages with line:column;
 * - no allocation per evaluation once the scratch has grown;
 * - a hostile input: deep nesting is refused, not a stack overflow. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/expr.h"
#include "core/strutil.h"
#include "tests/unit/check.h"

/* The fields of the test events, by slot. */
static const char *const field_names[] = {"page", "status", "bytes", "geo.country", "ts",
                                          "missing", "flag", "user agent", "when",
                                          "obj", "nul", "off"};
enum { NFIELDS = sizeof(field_names) / sizeof(field_names[0]) };

static int resolve(void *ud, const char *name, size_t len, expr_type *type)
{
    (void)ud;
    (void)type;
    for (int i = 0; i < NFIELDS; i++)
        if (strlen(field_names[i]) == len && memcmp(field_names[i], name, len) == 0)
            return i;
    return -1;
}

static const expr_resolver resolver = {resolve, NULL, NULL};
static field_value vals[NFIELDS];
static expr_scratch scratch;

static field_value str_field(const char *s)
{
    return (field_value){.kind = FV_STRING, .str = s, .len = strlen(s)};
}

static void set_event(void)
{
    vals[0] = str_field("/shop/cart/Ünïcode");
    vals[1] = (field_value){.kind = FV_NUMBER, .str = "503", .len = 3, .num = 503};
    vals[2] = (field_value){.kind = FV_NUMBER, .str = "2048", .len = 4, .num = 2048};
    vals[3] = str_field("DE");
    vals[4] = (field_value){.kind = FV_NUMBER, .num = 1763892000 + 13 * 3600 + 59};   /* Sun 2025-11-23 23:00:59 */
    vals[5] = (field_value){.kind = FV_MISSING};
    vals[6] = (field_value){.kind = FV_BOOL, .str = "true", .len = 4};
    vals[7] = str_field("curl");
    vals[8] = str_field("2026-12-02T23:30:00+01:00");
    vals[9] = (field_value){.kind = FV_OTHER, .str = "{\"a\": [1]}", .len = 10};
    vals[10] = (field_value){.kind = FV_NULL, .str = "null", .len = 4};
    vals[11] = (field_value){.kind = FV_BOOL, .str = "false", .len = 5};
}

/* The value as text: null, true, 12.5, 'string'. */
static char *render(const expr_val *v)
{
    char num[32];
    switch (v->kind) {
    case EV_NULL: return strdup("null");
    case EV_BOOL: return strdup(v->b ? "true" : "false");
    case EV_NUM: str_number(v->num, num); return strdup(num);
    default: return str_printf("'%.*s'", (int)v->len, v->str);
    }
}

#define EVAL(src, want) check_eval(__FILE__, __LINE__, src, want)
static void check_eval(const char *file, int line, const char *src, const char *want)
{
    expr *e = NULL;
    char *err = NULL;
    if (expr_compile(src, &resolver, &e, &err) != 0) {
        fprintf(stderr, "%s:%d: %s: compile error: %s\n", file, line, src, err);
        check_failures++;
        free(err);
        return;
    }
    expr_val v;
    expr_scratch_reset(&scratch);
    expr_eval(e, vals, &scratch, &v);
    char *got = render(&v);
    if (strcmp(got, want) != 0) {
        fprintf(stderr, "%s:%d: %s\n  got:      %s\n  expected: %s\n", file, line, src, got, want);
        check_failures++;
    }
    free(got);
    expr_free(e);
}

#define ERR(src, want) check_err(__FILE__, __LINE__, src, want)
static void check_err(const char *file, int line, const char *src, const char *want)
{
    expr *e = NULL;
    char *err = NULL;
    int r = expr_compile(src, &resolver, &e, &err);
    if (r != -EINVAL || !err || strcmp(err, want) != 0) {
        fprintf(stderr, "%s:%d: %s\n  got:      %d %s\n  expected: %s\n", file, line, src, r,
                err ? err : "(no error)", want);
        check_failures++;
    }
    CHECK(!e);
    free(err);
    expr_free(e);
}

static void test_literals_and_arithmetic(void)
{
    EVAL("12", "12");
    EVAL("1.5e3", "1500");
    EVAL(".25", "0.25");
    EVAL("'it''s'", "'it's'");
    EVAL("''", "''");
    EVAL("true", "true");
    EVAL("FALSE", "false");
    EVAL("null", "null");
    EVAL("1 + 2 * 3", "7");
    EVAL("(1 + 2) * 3", "9");
    EVAL("10 - 4 - 3", "3");          /* left to right */
    EVAL("-2 * -3", "6");
    EVAL("- (1 + 1)", "-2");
    EVAL("7 / 2", "3.5");
    EVAL("7 % 3", "1");
    EVAL("-7 % 3", "-1");
    EVAL("5.5 % 2", "1.5");
    EVAL("1 / 0", "null");            /* division by zero: null, not an error */
    EVAL("1 % 0", "null");
    EVAL("1e308 * 10", "null");       /* overflow: null, never inf */
    EVAL("bytes / 1024", "2");
    EVAL("bytes + null", "null");
    EVAL("page + 1", "null");         /* a string field where a number is needed */
    EVAL("0.1 + 0.2", "0.30000000000000004");
}

static void test_comparisons_and_logic(void)
{
    EVAL("status >= 500", "true");
    EVAL("status = 503", "true");
    EVAL("status == 503", "true");
    EVAL("status != 503", "false");
    EVAL("status <> 404", "true");
    EVAL("status < 500", "false");
    EVAL("status <= 503", "true");
    EVAL("status > 503", "false");
    EVAL("'abc' < 'abd'", "true");
    EVAL("'ab' < 'abc'", "true");
    EVAL("'b' > 'abc'", "true");
    EVAL("geo.country = 'DE'", "true");
    EVAL("status = '503'", "null");   /* a number field against a string: unknown */
    EVAL("missing = 1", "null");
    EVAL("null = null", "null");
    EVAL("flag = true", "true");
    EVAL("off", "false");
    EVAL("nul is null", "true");                  /* JSON null */
    EVAL("obj = '{\"a\": [1]}'", "true");       /* objects read as their JSON text */
    EVAL("false < true", "true");
    /* three-valued logic */
    EVAL("true and null", "null");
    EVAL("false and null", "false");
    EVAL("null and false", "false");
    EVAL("true or null", "true");
    EVAL("null or true", "true");
    EVAL("false or null", "null");
    EVAL("not null", "null");
    EVAL("not status = 503", "false");
    EVAL("not not flag", "true");
    EVAL("status >= 500 and status < 600 or missing = 1", "true");
    EVAL("false and true or true", "true");       /* and binds tighter than or */
    EVAL("false and (true or true)", "false");
    EVAL("page and true", "null");                /* a string field: not a boolean */
    /* is null */
    EVAL("missing is null", "true");
    EVAL("missing is not null", "false");
    EVAL("page is null", "false");
    EVAL("null is null", "true");
    EVAL("1 / 0 is null", "true");
}

static void test_in_and_like(void)
{
    EVAL("geo.country in ('FR', 'DE')", "true");
    EVAL("geo.country in ('FR', 'IT')", "false");
    EVAL("geo.country not in ('FR', 'IT')", "true");
    EVAL("geo.country not in ('DE')", "false");
    EVAL("status in (500, 502 + 1)", "true");
    EVAL("status in (404, null)", "null");        /* maybe the null one */
    EVAL("status in (503, null)", "true");
    EVAL("missing in (1, 2)", "null");
    EVAL("status in ('503')", "null");
    EVAL("page like '/shop/%'", "true");
    EVAL("page like '/SHOP/%'", "false");         /* case-sensitive */
    EVAL("lower(page) like '/shop/%'", "true");
    EVAL("page like '%cart%'", "true");
    EVAL("page like '%/_nïcode'", "true");        /* _ is one character, two bytes here */
    EVAL("page like '%/__code'", "false");
    EVAL("page like '%/___code'", "true");
    EVAL("page not like '/shop%'", "false");
    EVAL("'a%b' like 'a\\%b'", "true");           /* \ takes % literally */
    EVAL("'axb' like 'a\\%b'", "false");
    EVAL("'a_b' like 'a\\_b'", "true");
    EVAL("'' like '%'", "true");
    EVAL("'' like '_'", "false");
    EVAL("'abc' like 'abc'", "true");
    EVAL("'abc' like 'ab'", "false");
    EVAL("'aaa' like '%a%a%a%'", "true");
    EVAL("'aab' like '%a%a%a%'", "false");
    EVAL("missing like '%'", "null");
    EVAL("'a\\' like 'a\\'", "true");             /* a trailing \ is itself */
}

static void test_string_functions(void)
{
    EVAL("upper('abc')", "'ABC'");
    EVAL("LOWER(geo.country)", "'de'");
    EVAL("lower(missing)", "null");
    EVAL("length(page)", "18");                   /* characters, not bytes (20) */
    EVAL("length('')", "0");
    EVAL("substr('hello', 2)", "'ello'");
    EVAL("substr('hello', 2, 3)", "'ell'");
    EVAL("substr('hello', 0, 3)", "'he'");        /* SQL: position 0 counts toward 3 */
    EVAL("substr('hello', -5, 3)", "''");
    EVAL("substr('hello', 4, 100)", "'lo'");
    EVAL("substr('hello', 9)", "''");
    EVAL("substr('hello', 2, -1)", "null");
    EVAL("substr(page, 12, 2)", "'Ün'");
    EVAL("split_part(page, '/', 2)", "'shop'");
    EVAL("split_part(page, '/', 1)", "''");
    EVAL("split_part(page, '/', 4)", "'Ünïcode'");
    EVAL("split_part(page, '/', 5)", "''");
    EVAL("split_part(page, '/', -1)", "'Ünïcode'");
    EVAL("split_part(page, '/', -4)", "''");
    EVAL("split_part(page, '/', -5)", "''");
    EVAL("split_part(page, '/', 0)", "null");
    EVAL("split_part('a::b::c', '::', 2)", "'b'");
    EVAL("split_part('abc', '', 1)", "'abc'");
    EVAL("split_part('abc', '', 2)", "''");
    EVAL("concat(page, '?', status, '&', flag, missing, 0.5)", "'/shop/cart/Ünïcode?503&true0.5'");
    EVAL("concat(missing)", "''");
    EVAL("coalesce(missing, null, geo.country, 'x')", "'DE'");
    EVAL("coalesce(missing, null)", "null");
    EVAL("if(status >= 500, 'error', 'ok')", "'error'");
    EVAL("if(missing = 1, 'a', 'b')", "'b'");     /* a null condition takes the else */
    EVAL("if(flag, 1, 'x')", "1");
}

static void test_number_and_time_functions(void)
{
    EVAL("abs(-2.5)", "2.5");
    EVAL("abs(page)", "null");
    EVAL("floor(-2.5)", "-3");
    EVAL("ceil(-2.5)", "-2");
    EVAL("ceil(2.1)", "3");
    EVAL("round(2.5)", "3");
    EVAL("round(-2.5)", "-3");                    /* half away from zero */
    EVAL("round(1234.5678, 2)", "1234.57");
    EVAL("round(1234.5678, -2)", "1200");
    EVAL("round(1, 16)", "null");
    EVAL("hour(ts)", "23");
    EVAL("weekday(ts)", "7");                     /* 2025-11-23 was a Sunday */
    EVAL("weekday(0)", "4");                      /* 1970-01-01, a Thursday */
    EVAL("weekday(-1)", "3");
    EVAL("hour(-1)", "23");
    EVAL("hour(when)", "22");                     /* 23:30+01:00 is 22:30 UTC */
    EVAL("weekday(when)", "3");                   /* Wednesday */
    EVAL("hour('yesterday')", "null");
    EVAL("hour(missing)", "null");
    EVAL("\"user agent\" = 'curl'", "true");      /* a quoted field name */
}

static void test_errors(void)
{
    ERR("lowr(page)", "unknown function 'lowr' at 1:1");
    ERR("status >= 500 and nope = 1", "unknown field 'nope' at 1:19");
    ERR("status >=", "unexpected end of expression at 1:10");
    ERR("(status", "expected ')' at 1:8");
    ERR("status 500", "unexpected '500' after the expression at 1:8");
    ERR("'abc", "unterminated string at 1:1");
    ERR("\"user agent", "unterminated quoted name at 1:1");
    ERR("status # 2", "unexpected character '#' at 1:8");
    ERR("1.2.3", "malformed number at 1:1");
    ERR("12abc", "malformed number at 1:1");
    ERR("'a' + 1", "'+' needs numbers, not a string at 1:5");
    ERR("1 - 'a'", "'-' needs numbers, not a string at 1:3");
    ERR("-'a'", "'-' needs a number, not a string at 1:1");
    ERR("not 1", "'not' needs a boolean, not a number at 1:1");
    ERR("1 and true", "'and' needs booleans, not a number at 1:3");
    ERR("status = 1 or 'x'", "'or' needs booleans, not a string at 1:12");
    ERR("1 = 'a'", "cannot compare a number with a string at 1:3");
    ERR("1 in ('a')", "cannot compare a number with a string at 1:7");
    ERR("1 like 'a'", "'like' needs strings, not a number at 1:3");
    ERR("lower(1)", "argument 1 of lower must be a string, not a number at 1:7");
    ERR("substr('a', 'b')", "argument 2 of substr must be a number, not a string at 1:13");
    ERR("if(1, 2, 3)", "argument 1 of if must be a boolean, not a number at 1:4");
    ERR("lower()", "lower takes 1 argument, not 0 at 1:1");
    ERR("substr('a')", "substr takes 2 to 3 arguments, not 1 at 1:1");
    ERR("concat()", "concat takes at least 1 argument at 1:1");
    ERR("lower(page, page)", "lower takes 1 argument, not 2 at 1:1");
    ERR("lower(page", "expected ',' or ')' in the arguments of lower at 1:11");
    ERR("status in 1", "expected '(' after in at 1:11");
    ERR("status not 1", "expected in or like after not at 1:8");
    ERR("status is 1", "expected null after is at 1:11");
    ERR("status is not 1", "expected null after is not at 1:15");
    ERR("and", "unexpected 'and' at 1:1");
    ERR("", "unexpected end of expression at 1:1");
    ERR("status = 1\n  and pge = 'x'", "unknown field 'pge' at 2:7");
    ERR("'Ü' = ü", "unexpected character 'ü' at 1:7");   /* columns count characters */
}

static void test_limits(void)
{
    /* Deep nesting is refused with an error, never a stack overflow. */
    size_t n = 100000;
    char *src = malloc(2 * n + 2);
    memset(src, '(', n);
    src[n] = '1';
    memset(src + n + 1, ')', n);
    src[2 * n + 1] = '\0';
    expr *e = NULL;
    char *err = NULL;
    CHECK_INT(expr_compile(src, &resolver, &e, &err), -EINVAL);
    CHECK_STR(err, "expression nested too deeply (more than 200 levels) at 1:201");
    free(err);
    /* A long chain of one operator is nesting too (the evaluator recurses). */
    size_t len = 0;
    for (int i = 0; i < 300; i++)
        len += (size_t)sprintf(src + len, "%s1", i ? "+" : "");
    err = NULL;
    CHECK_INT(expr_compile(src, &resolver, &e, &err), -EINVAL);
    CHECK(err && strstr(err, "nested too deeply"));
    free(err);
    /* ... but 150 terms, or 150 levels of parentheses, are fine. */
    len = 0;
    for (int i = 0; i < 150; i++)
        len += (size_t)sprintf(src + len, "%s1", i ? "+" : "");
    EVAL(src, "150");
    memset(src, '(', 150);
    src[150] = '7';
    memset(src + 151, ')', 150);
    src[301] = '\0';
    EVAL(src, "7");
    free(src);
    ERR("concat(1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17)",
        "too many arguments to concat (at most 16) at 1:47");
}

/* Evaluations reuse the scratch: once it has grown, no new block. */
static void test_scratch_reuse(void)
{
    expr *e = NULL;
    char *err = NULL;
    CHECK_INT(expr_compile("concat(upper(page), lower(page), page, status)", &resolver, &e, &err), 0);
    expr_scratch sc = {0};
    expr_val v;
    expr_eval(e, vals, &sc, &v);
    void *first = sc.blocks;
    for (int i = 0; i < 1000; i++) {
        expr_scratch_reset(&sc);
        expr_eval(e, vals, &sc, &v);
    }
    CHECK(sc.blocks == first);
    CHECK(!sc.oom);
    CHECK_MEM(v.str, v.len, "/SHOP/CART/ÜNïCODE/shop/cart/Ünïcode/shop/cart/Ünïcode503",
              strlen("/SHOP/CART/ÜNïCODE/shop/cart/Ünïcode/shop/cart/Ünïcode503"));
    expr_scratch_free(&sc);
    expr_free(e);
    CHECK(expr_compile("status >= 500", &resolver, &e, &err) == 0 &&
          expr_result_type(e) == ET_BOOL);
    expr_free(e);
    CHECK(expr_compile("coalesce(page, 1)", &resolver, &e, &err) == 0 &&
          expr_result_type(e) == ET_ANY);
    expr_free(e);
}

int main(void)
{
    set_event();
    test_literals_and_arithmetic();
    test_comparisons_and_logic();
    test_in_and_like();
    test_string_functions();
    test_number_and_time_functions();
    test_errors();
    test_limits();
    test_scratch_reuse();
    expr_scratch_free(&scratch);
    CHECK_DONE();
}
