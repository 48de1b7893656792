/* event.h - decoding one event (a Kafka message value) for a stream.
 *
 * The decoder validates the whole payload as JSON (RFC 8259), requires a
 * top-level object, finds the stream's time field and the fields its views
 * read, in one pass and without building a tree. Values point into the
 * payload or into the decoder's scratch buffer (strings with escapes), valid
 * until the next call. One decoder per thread.
 */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "core/defs.h"

typedef struct vtable vtable;   /* core/vtable.h */
struct expr_scratch;            /* core/expr.h */

typedef enum {
    FV_MISSING,   /* field absent */
    FV_NULL,      /* JSON null */
    FV_STRING,    /* str/len: the unescaped UTF-8 string */
    FV_NUMBER,    /* str/len: the JSON text as written; num: its value */
    FV_BOOL,      /* str/len: "true" or "false" */
    FV_OTHER,     /* object or array; str/len: its JSON text as written */
} fv_kind;

typedef struct {
    fv_kind kind;
    const char *str;
    size_t len;
    double num;
} field_value;

/* Reject reasons (stable strings: they appear in the archive and metrics). */
#define REJECT_INVALID_JSON  "invalid_json"
#define REJECT_NOT_OBJECT    "not_an_object"
#define REJECT_MISSING_TIME  "missing_time"
#define REJECT_BAD_TIME      "bad_time"
/* Not the decoder's: the speed layer's, for an event whose time partition
 * archive.retention has dropped already. */
#define REJECT_RETENTION     "retention"

typedef struct event_decoder event_decoder;

event_decoder *event_decoder_new(void);
void event_decoder_free(event_decoder *d);   /* accepts NULL */

/* Decodes buf for stream s. On success returns 0, sets *ts_ms (event time;
 * for TF_KAFKA it is kafka_ts_ms) and fills vals[0..stream_nvals(s)): the
 * raw fields, the derived fields, the event time in seconds. On a
 * reject returns -EINVAL and sets *reason to one of REJECT_* and *detail to
 * a short human explanation (static or in the decoder, valid until the next
 * call). -ENOMEM if out of memory. */
int event_decode(event_decoder *d, const stream_def *s, const char *buf, size_t len,
                 int64_t kafka_ts_ms, int64_t *ts_ms, field_value *vals,
                 const char **reason, const char **detail);

/* Where the derived fields of the last decoded event keep their strings;
 * conditions evaluated on that event use it too (event_apply). */
struct expr_scratch *event_decoder_scratch(event_decoder *d);

/* Applies one event decoded by d to a table of view v: the row of its time
 * bucket and dimension values (missing and null fields are null; other
 * values their text) counts the event, and each metric whose field is a
 * JSON number takes its value (other metrics skip it), if the metric's
 * condition (where) is true for the event. 0 or -ENOMEM. */
int event_apply(const view_def *v, vtable *t, int64_t ts_ms, const field_value *vals,
                event_decoder *d);
