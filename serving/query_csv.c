/* query_csv.c - the CSV form of a query answer (format=csv).
 *
 * RFC 4180: a header line, then one line per row, each ended by CRLF. A
 * field is quoted when it holds a quote (doubled), a comma, CR or LF, or
 * begins or ends with a space or tab (which many readers would trim), and
 * an empty string is quoted too: an unquoted empty field is null (as
 * PostgreSQL's COPY reads it). Text shows the characters the JSON answer
 * shows (bytes that are not UTF-8 become U+FFFD, as in jbuf.h); numbers
 * are the JSON answer's text, byte for byte, because they come from the
 * same renderer (agg_render). A quantiles metric is one column per
 * requested quantile, named metric.p50 and so on.
 *
 * Runs on the query's thread; pure functions of the query and its rows.
 */
#include "serving/query.h"

#include <string.h>

#include "core/gran.h"

static bool needs_quotes(const char *s, size_t len)
{
    if (len == 0)
        return true;
    if (s[0] == ' ' || s[0] == '\t' || s[len - 1] == ' ' || s[len - 1] == '\t')
        return true;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '"' || s[i] == ',' || s[i] == '\n' || s[i] == '\r')
            return true;
    return false;
}

void query_csv_field(jbuf *b, const char *s, size_t len)
{
    bool quote = needs_quotes(s, len);
    if (quote)
        jb_raw(b, "\"", 1);
    size_t i = 0;
    while (i < len) {
        size_t run = i;   /* bytes copied as they are */
        while (run < len && s[run] != '"' && (unsigned char)s[run] < 0x80)
            run++;
        jb_raw(b, s + i, run - i);
        i = run;
        if (i == len)
            break;
        if (s[i] == '"') {
            jb_raw(b, "\"\"", 2);
            i++;
            continue;
        }
        size_t n = jb_utf8_len(s + i, len - i);
        if (n) {
            jb_raw(b, s + i, n);
            i += n;
        } else {
            jb_raw(b, "\xef\xbf\xbd", 3);   /* U+FFFD, as the JSON answer shows it */
            i++;
        }
    }
    if (quote)
        jb_raw(b, "\"", 1);
}

/* A rendered JSON number or null as CSV fields: null is an empty field; an
 * object of numbers (a quantiles metric: {"p50":1.5,"p99":null}) is one
 * field per member, in its order. Only what agg_render writes comes here:
 * no strings inside, so a comma always separates members. */
static void json_value_fields(jbuf *b, const char *s, size_t len)
{
    if (len && s[0] == '{') {
        size_t i = 1, k = 0;
        while (i < len && s[i] != '}') {
            const char *colon = memchr(s + i, ':', len - i);
            if (!colon)
                return;
            size_t start = (size_t)(colon - s) + 1, end = start;
            while (end < len && s[end] != ',' && s[end] != '}')
                end++;
            if (k++)
                jb_raw(b, ",", 1);
            json_value_fields(b, s + start, end - start);
            i = end < len && s[end] == ',' ? end + 1 : end;
        }
        return;
    }
    if (len == 4 && memcmp(s, "null", 4) == 0)
        return;
    jb_raw(b, s, len);
}

void query_csv_header(jbuf *b, const query *q)
{
    const view_def *v = q->view;
    bool first = true;
    if (q->gran != GRAN_ALL) {
        jb_lit(b, "time,ts");
        first = false;
    }
    for (size_t g = 0; g < q->ngroup; g++) {
        if (!first)
            jb_raw(b, ",", 1);
        first = false;
        query_csv_field(b, v->dims[q->group[g]], strlen(v->dims[q->group[g]]));
    }
    for (size_t m = 0; m < q->nmetrics; m++) {
        const metric_def *md = &v->metrics[q->metrics[m]];
        size_t nq = md->type == MT_QUANTILES ? q->rctx.nq : 1;
        for (size_t k = 0; k < nq; k++) {
            if (!first)
                jb_raw(b, ",", 1);
            first = false;
            jbuf name;
            jb_init(&name);
            jb_lit(&name, md->name);
            if (md->type == MT_QUANTILES) {
                jb_raw(&name, ".", 1);
                jb_lit(&name, q->rctx.names[k]);
            }
            if (name.oom)
                b->oom = true;
            else
                query_csv_field(b, name.p, name.len);
            jb_free(&name);
        }
    }
    jb_raw(b, "\r\n", 2);
}

void query_csv_row(jbuf *b, const query *q, int64_t bucket, const dimval *dims,
                   const void *cells, jbuf *scratch)
{
    bool first = true;
    if (q->gran != GRAN_ALL) {
        char t[48];
        time_format_rfc3339(bucket, t, sizeof(t));
        jb_lit(b, t);
        jb_raw(b, ",", 1);
        jb_int(b, bucket);
        first = false;
    }
    for (size_t g = 0; g < q->ngroup; g++) {
        if (!first)
            jb_raw(b, ",", 1);
        first = false;
        if (!dims[g].null)
            query_csv_field(b, dims[g].s, dims[g].len);
    }
    for (size_t m = 0; m < q->nmetrics; m++) {
        if (!first)
            jb_raw(b, ",", 1);
        first = false;
        scratch->len = 0;
        agg_render(q->layout, m, cells, &q->rctx, scratch);
        if (scratch->oom)
            b->oom = true;
        else
            json_value_fields(b, scratch->p, scratch->len);
    }
    jb_raw(b, "\r\n", 2);
}
