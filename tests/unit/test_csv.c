/* Unit tests: the CSV parser (quoting, doubled quotes, embedded newlines,
 * CRLF, a record split across reads) and the JSON number test behind
 * type inference. */
#include "import/csv.h"
#include "tests/unit/check.h"

#include <errno.h>

/* Parses all of in (as one buffer) and renders the records as
 * "a|b\n" lines, fields separated by '|'. */
static void render(const char *in, size_t len, char *out, size_t size)
{
    csv_record rec = {0};
    size_t pos = 0, o = 0;
    out[0] = '\0';
    for (;;) {
        size_t used = 0;
        int r = csv_parse(in + pos, len - pos, true, &rec, &used);
        if (r <= 0) {
            if (r < 0)
                o += (size_t)snprintf(out + o, size - o, "ERR%d", r);
            break;
        }
        for (size_t i = 0; i < rec.nfields; i++)
            o += (size_t)snprintf(out + o, size - o, "%s%.*s", i ? "|" : "",
                                  (int)csv_field_len(&rec, i), csv_field(&rec, i));
        o += (size_t)snprintf(out + o, size - o, "\n");
        pos += used;
    }
    csv_record_free(&rec);
}

static void check_csv(const char *in, const char *want)
{
    char got[1024];
    render(in, strlen(in), got, sizeof(got));
    CHECK_STR(got, want);
}

/* The same bytes handed over one more byte at a time (as a reader that
 * reads more when told the record is not complete) give the same records. */
static void check_incremental(const char *in)
{
    char whole[1024], pieces[1024];
    render(in, strlen(in), whole, sizeof(whole));
    csv_record rec = {0};
    size_t len = strlen(in), pos = 0, avail = 0, o = 0;
    pieces[0] = '\0';
    for (;;) {
        size_t used = 0;
        bool eof = pos + avail >= len;
        int r = csv_parse(in + pos, avail, eof, &rec, &used);
        if (r == 0 && !eof) {
            avail++;
            continue;
        }
        if (r <= 0) {
            if (r < 0)
                o += (size_t)snprintf(pieces + o, sizeof(pieces) - o, "ERR%d", r);
            break;
        }
        for (size_t i = 0; i < rec.nfields; i++)
            o += (size_t)snprintf(pieces + o, sizeof(pieces) - o, "%s%.*s", i ? "|" : "",
                                  (int)csv_field_len(&rec, i), csv_field(&rec, i));
        o += (size_t)snprintf(pieces + o, sizeof(pieces) - o, "\n");
        pos += used;
        avail -= used;
    }
    csv_record_free(&rec);
    CHECK_STR(pieces, whole);
}

int main(void)
{
    check_csv("a,b,c\n1,2,3\n", "a|b|c\n1|2|3\n");
    check_csv("a,b\n1,2", "a|b\n1|2\n");                       /* no final newline */
    check_csv("a,b\r\n1,2\r\n", "a|b\n1|2\n");                 /* CRLF */
    check_csv("\"x,y\",z\n", "x,y|z\n");                       /* quoted separator */
    check_csv("\"say \"\"hi\"\"\",2\n", "say \"hi\"|2\n");       /* doubled quotes */
    check_csv("\"two\nlines\",2\nnext,3\n", "two\nlines|2\nnext|3\n");   /* embedded newline */
    check_csv("\"keep\r\n\",2\r\n", "keep\r\n|2\n");           /* CRLF inside quotes stays */
    check_csv(",,\n", "||\n");                                 /* empty fields */
    check_csv("\"\",x\n", "|x\n");                             /* quoted empty field */
    check_csv("ab\"c,d\n", "ab\"c|d\n");                       /* a quote inside a field */
    check_csv("\"ab\"c,d\n", "abc|d\n");                       /* bytes after the closing quote */
    check_csv("\n\na\n", "\n\na\n");                           /* blank lines: one empty field */
    check_csv("\"open,1\n2\n", "ERR-74");                      /* unterminated quote: -EBADMSG */
    check_csv("", "");

    /* the lines a record spans, its own break included */
    csv_record rec = {0};
    size_t used = 0;
    CHECK_INT(csv_parse("\"a\nb\nc\",1\nx", 11, true, &rec, &used), 1);
    CHECK_INT(rec.lines, 3);
    CHECK_INT(used, 10);
    CHECK_INT(csv_parse("x", 1, true, &rec, &used), 1);
    CHECK_INT(rec.lines, 0);
    /* not complete without eof: ask for more */
    CHECK_INT(csv_parse("a,\"b", 4, false, &rec, &used), 0);
    CHECK_INT(csv_parse("a,b", 3, false, &rec, &used), 0);
    CHECK_INT(csv_parse("a,\"b\"", 5, false, &rec, &used), 0);   /* "" or the end? */
    csv_record_free(&rec);

    check_incremental("a,b,c\r\n\"1\"\",\n2\",x,\"\"\n\"q\"\"\"\r\nlast,\"\",");
    check_incremental("\"\"\"\"\"\",\"\n\"\n,\r\n\r\n");

    /* JSON numbers */
    static const char *const yes[] = {"0", "42", "-3", "1.5", "-0.25", "1e5", "1E-05", "2.5e+3",
                                      "123456789012345678901234567890"};
    static const char *const no[] = {"", "-", "01", "+1", ".5", "1.", "1e", "1e+", "NaN", "nan",
                                     "inf", "-inf", "1,5", " 1", "1 ", "0x10", "1.2.3", "--1"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(*yes); i++)
        if (!csv_is_number(yes[i], strlen(yes[i]))) {
            fprintf(stderr, "'%s' is a number\n", yes[i]);
            check_failures++;
        }
    for (size_t i = 0; i < sizeof(no) / sizeof(*no); i++)
        if (csv_is_number(no[i], strlen(no[i]))) {
            fprintf(stderr, "'%s' is not a number\n", no[i]);
            check_failures++;
        }
    CHECK_DONE();
}
