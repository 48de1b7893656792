/* csv.c - see csv.h. One pass over the record's bytes; fields are copied
 * unescaped into the record's buffer, which grows as needed and is reused
 * from record to record. */
#include "import/csv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void csv_record_free(csv_record *rec)
{
    free(rec->buf);
    free(rec->start);
    *rec = (csv_record){0};
}

static int put(csv_record *rec, char c)
{
    if (rec->len == rec->cap) {
        size_t ncap = rec->cap ? rec->cap * 2 : 256;
        char *nb = realloc(rec->buf, ncap);
        if (!nb)
            return -ENOMEM;
        rec->buf = nb;
        rec->cap = ncap;
    }
    rec->buf[rec->len++] = c;
    return 0;
}

static int begin_field(csv_record *rec)
{
    if (rec->nfields == rec->capfields) {
        size_t ncap = rec->capfields ? rec->capfields * 2 : 16;
        size_t *ns = realloc(rec->start, ncap * sizeof(*ns));
        if (!ns)
            return -ENOMEM;
        rec->start = ns;
        rec->capfields = ncap;
    }
    rec->start[rec->nfields++] = rec->len;
    return 0;
}

int csv_parse(const char *in, size_t len, bool eof, csv_record *rec, size_t *consumed)
{
    rec->len = rec->nfields = rec->lines = 0;
    if (len == 0)
        return 0;
    size_t i = 0;
    for (;;) {   /* one field per turn */
        if (begin_field(rec) < 0)
            return -ENOMEM;
        if (i < len && in[i] == '"') {
            i++;
            for (;;) {
                if (i == len)
                    return eof ? -EBADMSG : 0;
                if (in[i] == '"') {
                    if (i + 1 == len && !eof)
                        return 0;   /* "" or the closing quote: the next byte tells */
                    if (i + 1 < len && in[i + 1] == '"') {
                        if (put(rec, '"') < 0)
                            return -ENOMEM;
                        i += 2;
                        continue;
                    }
                    i++;
                    break;
                }
                if (in[i] == '\n')
                    rec->lines++;
                if (put(rec, in[i++]) < 0)
                    return -ENOMEM;
            }
        }
        /* unquoted bytes (or those after a closing quote) up to the separator */
        size_t unquoted = rec->len;
        while (i < len && in[i] != ',' && in[i] != '\n') {
            if (put(rec, in[i++]) < 0)
                return -ENOMEM;
        }
        if (i == len && !eof)
            return 0;
        bool end = i == len || in[i] == '\n';
        if (end && i < len && rec->len > unquoted && rec->buf[rec->len - 1] == '\r')
            rec->len--;   /* CRLF (a '\r' inside quotes stays) */
        if (put(rec, '\0') < 0)
            return -ENOMEM;
        if (end) {
            if (i < len) {
                i++;
                rec->lines++;
            }
            *consumed = i;
            return 1;
        }
        i++;   /* ',' */
    }
}

bool csv_is_number(const char *s, size_t len)
{
    size_t i = 0;
    if (i < len && s[i] == '-')
        i++;
    if (i == len || s[i] < '0' || s[i] > '9')
        return false;
    if (s[i] == '0')
        i++;
    else
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
    if (i < len && s[i] == '.') {
        i++;
        if (i == len || s[i] < '0' || s[i] > '9')
            return false;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i == len || s[i] < '0' || s[i] > '9')
            return false;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    return i == len;
}
