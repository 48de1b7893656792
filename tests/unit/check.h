/* check.h - the assertions of the unit tests.
 * Each failing check prints file:line, the expression and both values, and
 * the test exits 1 at the end (checks go on after a failure so one run shows
 * every broken case). Exit code 77 means skipped. */
#pragma once
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failures;

#define CHECK(expr) do { if (!(expr)) { \
    fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #expr); \
    check_failures++; } } while (0)

#define CHECK_INT(a, b) do { long long _a = (long long)(a), _b = (long long)(b); \
    if (_a != _b) { fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", \
        __FILE__, __LINE__, #a, #b, _a, _b); check_failures++; } } while (0)

#define CHECK_DBL(a, b) do { double _a = (a), _b = (b); \
    if (!(_a == _b)) { fprintf(stderr, "%s:%d: %s == %s failed: %.17g != %.17g\n", \
        __FILE__, __LINE__, #a, #b, _a, _b); check_failures++; } } while (0)

#define CHECK_STR(a, b) do { const char *_a = (a), *_b = (b); \
    if (!_a || !_b || strcmp(_a, _b) != 0) { \
        fprintf(stderr, "%s:%d: %s == %s failed:\n  got:      \"%s\"\n  expected: \"%s\"\n", \
        __FILE__, __LINE__, #a, #b, _a ? _a : "(null)", _b ? _b : "(null)"); \
        check_failures++; } } while (0)

#define CHECK_MEM(a, alen, b, blen) do { size_t _al = (alen), _bl = (blen); \
    if (_al != _bl || memcmp((a), (b), _al) != 0) { \
        fprintf(stderr, "%s:%d: %s == %s failed: \"%.*s\" != \"%.*s\"\n", __FILE__, __LINE__, \
        #a, #b, (int)_al, (const char *)(a), (int)_bl, (const char *)(b)); \
        check_failures++; } } while (0)

#define CHECK_DONE() do { if (check_failures) { \
    fprintf(stderr, "%d check(s) failed\n", check_failures); return 1; } \
    return 0; } while (0)
