/* jscan.h - a strict, allocation-free JSON (RFC 8259) validating scanner.
 *
 * Private to core/: event.c drives the top-level object itself and uses
 * these pieces to validate and skip everything else. The scanner never
 * builds a tree and never allocates; it reads only buf[0..len) (buf need not
 * be NUL-terminated). Nesting is tracked in a bit stack, not by recursion,
 * and capped at JSCAN_MAX_DEPTH. Pure functions on caller-owned state; any
 * thread.
 *
 * Acceptance matches jansson's json_loadb(JSON_ALLOW_NUL) except for
 * jansson's own limits (integers beyond int64, doubles that overflow, NUL
 * in object keys): here those are valid JSON. Depth is the exception the
 * other way: an event is a record, so nesting deeper than JSCAN_MAX_DEPTH
 * (the top-level object counts as one) is refused, where jansson allows
 * 2048 levels. The README's "Limits" documents it.
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSCAN_MAX_DEPTH 512

typedef enum {
    JS_OK = 0,
    JS_UNEXPECTED_CHAR,   /* a byte that cannot start/continue a token here */
    JS_UNEXPECTED_END,    /* input ends where more was needed */
    JS_UNTERMINATED_STRING,
    JS_BAD_UTF8,
    JS_CONTROL_CHAR,      /* raw byte < 0x20 inside a string */
    JS_BAD_ESCAPE,        /* backslash followed by an unknown character */
    JS_BAD_UNICODE_ESCAPE, /* \u not followed by 4 hex digits */
    JS_BAD_SURROGATE,     /* lone or mismatched UTF-16 surrogate */
    JS_BAD_NUMBER,
    JS_BAD_LITERAL,
    JS_TOO_DEEP,
    JS_TRAILING,          /* something after the top-level value */
} jscan_err;

/* Where scanning stopped and why. pos is a byte offset into the input. */
typedef struct {
    jscan_err err;
    size_t pos;
} jscan_error;

/* First offset >= pos that is not JSON whitespace (may be len). */
static inline size_t jscan_ws(const unsigned char *b, size_t len, size_t pos)
{
    while (pos < len && (b[pos] == ' ' || b[pos] == '\n' || b[pos] == '\r' || b[pos] == '\t'))
        pos++;
    return pos;
}

/* b[*pos] is '"'. Validates the string (UTF-8, escapes, surrogate pairs,
 * control characters) and sets *pos just past the closing quote. The
 * content is b[start+1 .. *pos-1); *escaped tells whether it holds a
 * backslash (so it must be unescaped before use). 0 or -1 with *e set. */
int jscan_string(const unsigned char *b, size_t len, size_t *pos, bool *escaped, jscan_error *e);

/* b[*pos] is '-' or a digit. Validates a number per the RFC grammar and sets
 * *pos past it. 0 or -1. */
int jscan_number(const unsigned char *b, size_t len, size_t *pos, jscan_error *e);

/* Validates one value of any type starting exactly at *pos (no leading
 * whitespace) and sets *pos past it. depth is the number of containers
 * already open around it (0 for a top-level value). 0 or -1. */
int jscan_value(const unsigned char *b, size_t len, size_t *pos, unsigned depth, jscan_error *e);

/* Writes the unescaped form of a validated string content src[0..n) (the
 * bytes between the quotes) to dst, which needs at most n bytes: unescaping
 * never lengthens a string. Returns the length written. */
size_t jscan_unescape(const unsigned char *src, size_t n, unsigned char *dst);

/* "unexpected character 'x' at byte 17" and the like, for error e on b. */
void jscan_error_format(const jscan_error *e, const unsigned char *b, size_t len, char *out,
                        size_t outsz);
