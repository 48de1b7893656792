/* jbuf.h - a growable byte buffer that writes JSON (any layer).
 *
 * Errors are sticky: after a failed allocation every write is a no-op and
 * jb_take() returns NULL, so renderers check once at the end. Strings are
 * escaped byte-exactly: valid UTF-8 passes through, control characters, '"'
 * and '\\' are escaped, and every byte that is not part of a valid UTF-8
 * sequence becomes U+FFFD, so any dimension value renders as valid JSON.
 * Numbers render in the shortest form that reads back to the same double;
 * NaN and infinities render as null. One buffer per thread; no locks.
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *p;
    size_t len, cap;
    bool oom;
} jbuf;

void jb_init(jbuf *b);
void jb_free(jbuf *b);                 /* accepts a zeroed buffer */
void jb_raw(jbuf *b, const char *s, size_t len);
void jb_lit(jbuf *b, const char *s);   /* a NUL-terminated literal, as is */
void jb_str(jbuf *b, const char *s, size_t len);  /* quoted, escaped */
void jb_cstr(jbuf *b, const char *s);
/* Length of the valid UTF-8 sequence at s (1..4; n > 0 bytes there), or 0
 * when it is not one: what jb_str writes as U+FFFD (for other text
 * formats that must show the same characters, serving/query_csv.c). */
size_t jb_utf8_len(const char *s, size_t n);  /* jb_str of a C string; NULL renders null */
void jb_int(jbuf *b, int64_t v);
void jb_num(jbuf *b, double v);
/* Hands the NUL-terminated text to the caller (free()), *len without the
 * NUL; the buffer is left empty. NULL after an allocation failure. */
char *jb_take(jbuf *b, size_t *len);

/* {"error":{"status":N,"message":"..."}} */
void jb_error(jbuf *b, int status, const char *msg, size_t len);
