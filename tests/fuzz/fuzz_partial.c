/* fuzz_partial.c - libFuzzer target: the partial answers a peer sends
 * for a fan-out (serving/partial.c), the only bytes lambdad reads from
 * another machine. The input's layout is in fuzz_partial.h. Whatever the
 * bytes, partial_merge returns 0 or -EBADMSG with a reason, and a merged
 * table encodes to a partial that merges back to the same bytes (the
 * encoding is canonical).
 */
#include <errno.h>
#include <string.h>

#include "core/checksum.h"
#include "serving/partial.h"
#include "tests/fuzz/fuzz_partial.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    partial_setup();
    return 0;
}

static int merge(const query *q, const uint8_t *p, size_t len, vtable *t, partial_info *info)
{
    const char *why = NULL;
    int rc = partial_merge(q, p, len, t, info, &why);
    FUZZ_ASSERT(rc == 0 || (rc == -EBADMSG && why && *why) || rc == -ENOMEM);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const query *q = &partial_q[data[0] % PARTIAL_QUERIES];
    bytes_w w = {0};
    bw_put(&w, "LDP\x01", 4);
    bw_u64(&w, partial_layout_hash(q));
    bw_put(&w, data + 1, size - 1);
    bw_u64(&w, checksum64(w.p, w.len, 0));
    FUZZ_ASSERT(!w.oom);

    vtable *t = vtable_new(q->ngroup, q->layout);
    FUZZ_ASSERT(t);
    partial_info info;
    if (merge(q, w.p, w.len, t, &info) == 0) {
        bytes_w e1 = {0}, e2 = {0};
        serving_watermark wm = info.wm;
        partial_encode(q, t, info.shard, &wm, &e1);
        vtable *t2 = vtable_new(q->ngroup, q->layout);
        FUZZ_ASSERT(t2 && !e1.oom);
        partial_info info2;
        FUZZ_ASSERT(merge(q, e1.p, e1.len, t2, &info2) == 0);
        FUZZ_ASSERT(strcmp(info2.shard, info.shard) == 0);
        partial_encode(q, t2, info2.shard, &info2.wm, &e2);
        FUZZ_ASSERT(e1.len == e2.len && memcmp(e1.p, e2.p, e1.len) == 0);
        vtable_free(t2);
        bw_free(&e1);
        bw_free(&e2);
    }
    vtable_free(t);
    bw_free(&w);
    return 0;
}
