/* csv.h - CSV records, one at a time (RFC 4180 and what spreadsheets and
 * pandas' to_csv write).
 *
 * Fields are separated by ',' and records by '\n' or "\r\n". A field that
 * starts with '"' is quoted: it runs to the next '"' not doubled ("" is one
 * quote) and may hold ',', '\r' and newlines; bytes between its closing
 * quote and the next separator are kept as they are (as Python's csv
 * module does), and so is a '"' inside an unquoted field. The parser is a
 * pure function of the bytes it is given, so a reader can hand it a buffer
 * and read more when it says the record is not complete. Any thread; a
 * record belongs to its caller.
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char *buf;            /* the fields' unescaped bytes, each followed by a NUL */
    size_t len, cap;
    size_t *start;        /* field i is buf + start[i], csv_field_len(rec, i) bytes */
    size_t nfields, capfields;
    size_t lines;         /* line breaks the record spans, its own included */
} csv_record;

void csv_record_free(csv_record *rec);   /* accepts a zeroed record */

static inline size_t csv_field_len(const csv_record *rec, size_t i)
{
    size_t end = i + 1 < rec->nfields ? rec->start[i + 1] : rec->len;
    return end - rec->start[i] - 1;
}
static inline const char *csv_field(const csv_record *rec, size_t i)
{
    return rec->buf + rec->start[i];
}

/* Parses the record at the start of in[0, len). eof: nothing follows
 * in. Returns 1 with the record in rec and its length (separator
 * included) in *consumed; 0 when in holds no complete record (read more;
 * never when eof, except for len == 0); -EBADMSG when eof comes inside a
 * quoted field; -ENOMEM. */
int csv_parse(const char *in, size_t len, bool eof, csv_record *rec, size_t *consumed);

/* Whether s[0, len) is a number as JSON writes one (RFC 8259: -?int frac?
 * exp?), so it can go into a JSON object as it is: "42", "-0.5", "1e-05";
 * not "01", "+1", ".5", "1.", "NaN" or "inf". */
bool csv_is_number(const char *s, size_t len);
