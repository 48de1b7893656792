/* fuzz_config.c - libFuzzer target: the config loader (config/), from the
 * bytes of a config file (comments, JSON, every key's checks, streams and
 * views resolved, the fingerprint).
 *
 * Expectations: a load succeeds with no problem listed, or fails with at
 * least one; a loaded config is consistent (every view's stream, field
 * indexes and layout resolved) and loading the same bytes again gives the
 * same fingerprint. The config may name files (http.auth.token_file,
 * http.tls.*): they are read as the daemon would; standard input is
 * /dev/null so that a path to it cannot block.
 */
#include <errno.h>
#include <string.h>

#include "config/config.h"
#include "core/agg.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    FUZZ_ASSERT(freopen("/dev/null", "r", stdin) != NULL);
    return 0;
}

static void check_config(const config *c)
{
    FUZZ_ASSERT(c->nstreams > 0 && c->nviews > 0);
    for (size_t i = 0; i < c->nviews; i++) {
        const view_def *v = &c->views[i];
        FUZZ_ASSERT(v->stream_idx < c->nstreams);
        const stream_def *s = &c->streams[v->stream_idx];
        FUZZ_ASSERT(v->layout && v->layout->n == v->nmetrics);
        for (size_t d = 0; d < v->ndims; d++)
            FUZZ_ASSERT(v->dim_idx[d] >= 0 && (size_t)v->dim_idx[d] < s->nfields);
        for (size_t m = 0; m < v->nmetrics; m++) {
            const metric_def *md = &v->metrics[m];
            FUZZ_ASSERT(md->field_idx >= -1 && md->field_idx < (int)s->nfields);
            FUZZ_ASSERT((md->field_idx >= 0) == (md->type != MT_COUNT));
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* an exact-size copy: a read past the end is an ASan report */
    char *text = malloc(size ? size : 1);
    FUZZ_ASSERT(text);
    memcpy(text, data, size);
    config *c = NULL, *again = NULL;
    config_errors errs = {0}, errs2 = {0};
    int r = config_load_buffer(text, size, &c, &errs);
    if (r == 0) {
        FUZZ_ASSERT(c && errs.n == 0);
        check_config(c);
        FUZZ_ASSERT(config_load_buffer(text, size, &again, &errs2) == 0);
        FUZZ_ASSERT(strcmp(c->fingerprint, again->fingerprint) == 0);
    } else {
        FUZZ_ASSERT(!c && (r == -ENOMEM || errs.n > 0));
        for (size_t i = 0; i < errs.n; i++)
            FUZZ_ASSERT(errs.items[i] && errs.items[i][0]);
    }
    config_free(c);
    config_free(again);
    config_errors_clear(&errs);
    config_errors_clear(&errs2);
    free(text);
    return 0;
}
