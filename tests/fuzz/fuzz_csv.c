/* fuzz_csv.c - libFuzzer target: the CSV parser (import/csv.h) on
 * arbitrary bytes.
 *
 * The input is parsed twice: whole (eof), and as a reader sees it, one
 * more byte at a time until the parser says a record is complete.
 * Expectations:
 * - each record consumes at least one byte and at most what is left, and
 *   the records consume the input exactly (unless it ends inside quotes,
 *   -EBADMSG, at the same place both ways);
 * - both ways give the same records, field for field, byte for byte (a
 *   record reported complete before eof is not changed by what follows);
 * - every field is NUL-terminated within the record's buffer, and no
 *   field is longer than the bytes consumed;
 * - a field csv_is_number accepts is read whole by strtod.
 */
#include <errno.h>
#include <string.h>

#include "import/csv.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

static void check_record(const csv_record *rec, size_t used)
{
    FUZZ_ASSERT(rec->nfields >= 1);
    for (size_t i = 0; i < rec->nfields; i++) {
        size_t len = csv_field_len(rec, i);
        FUZZ_ASSERT(len <= used);
        FUZZ_ASSERT(rec->start[i] + len < rec->len);
        FUZZ_ASSERT(csv_field(rec, i)[len] == '\0');
        if (csv_is_number(csv_field(rec, i), len)) {
            char *end = NULL;
            strtod(csv_field(rec, i), &end);
            FUZZ_ASSERT(end == csv_field(rec, i) + len);
        }
    }
}

static bool same(const csv_record *a, const csv_record *b)
{
    if (a->nfields != b->nfields || a->lines != b->lines)
        return false;
    for (size_t i = 0; i < a->nfields; i++)
        if (csv_field_len(a, i) != csv_field_len(b, i) ||
            memcmp(csv_field(a, i), csv_field(b, i), csv_field_len(a, i)) != 0)
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;   /* the byte-at-a-time pass is quadratic */
    const char *in = (const char *)data;
    csv_record whole = {0}, piece = {0};
    size_t pos = 0;
    while (pos < size) {
        size_t used = 0;
        int r = csv_parse(in + pos, size - pos, true, &whole, &used);
        FUZZ_ASSERT(r == 1 || r == -EBADMSG);
        /* the same record as a reader gets it */
        size_t avail = 0, pused = 0;
        int pr;
        for (;;) {
            bool eof = pos + avail == size;
            pr = csv_parse(in + pos, avail, eof, &piece, &pused);
            if (pr != 0 || eof)
                break;
            avail++;
        }
        FUZZ_ASSERT(pr == r);
        if (r < 0)
            break;
        FUZZ_ASSERT(used >= 1 && used <= size - pos);
        FUZZ_ASSERT(pused == used);
        check_record(&whole, used);
        FUZZ_ASSERT(same(&whole, &piece));
        pos += used;
    }
    csv_record_free(&whole);
    csv_record_free(&piece);
    return 0;
}
