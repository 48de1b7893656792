/* Unit tests: the answer cache's entries move out and back (take, put,
 * release); a request for a question being computed waits for it; a newer
 * answer is never replaced by an older one; oversized answers stay out. */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "serving/qcache.h"
#include "tests/unit/check.h"
#include "tests/unit/aggtest.h"

static vtable *rows(int n)
{
    agg_layout *l = layout_of(1, MT_COUNT);
    vtable *t = vtable_new(0, l);
    free(l);   /* the table keeps its own copy */
    for (int i = 0; i < n; i++)
        row_add(vtable_layout(t), vtable_upsert(t, i, NULL), 0, 0);
    return t;
}

static qcache_entry entry(uint64_t epoch, uint64_t version, int nrows, const char *body)
{
    qcache_entry e = {.epoch = epoch, .version = version, .table = rows(nrows),
                      .body = strdup(body), .len = strlen(body)};
    return e;
}

typedef struct {
    qcache *c;
    bool found;
    uint64_t version;
} taker;

static void *take_in_thread(void *arg)
{
    taker *t = arg;
    qcache_entry e = {0};
    t->found = qcache_take(t->c, "q", 1, &e);
    t->version = e.version;
    if (t->found)
        qcache_put(t->c, "q", 1, &e);
    return NULL;
}

int main(void)
{
    qcache *c = qcache_new(16, 100);
    qcache_entry e = {0};
    CHECK(!qcache_take(c, "q", 1, &e));

    qcache_entry a = entry(1, 5, 3, "five");
    qcache_put(c, "q", 1, &a);
    CHECK(a.table == NULL && a.body == NULL);          /* ownership moved */
    CHECK(qcache_take(c, "q", 1, &e));
    CHECK_INT(e.version, 5);
    CHECK_MEM(e.body, e.len, "five", 4);
    CHECK_INT(vtable_rows(e.table), 3);

    /* while it is checked out, another request waits for it to come back */
    taker t = {.c = c};
    pthread_t th;
    pthread_create(&th, NULL, take_in_thread, &t);
    usleep(20000);
    e.version = 6;
    qcache_put(c, "q", 1, &e);
    pthread_join(th, NULL);
    CHECK(t.found);
    CHECK_INT(t.version, 6);

    /* a taken entry given back without an answer: the waiter gets nothing
     * (no entry left), rather than waiting for ever */
    CHECK(qcache_take(c, "q", 1, &e));
    taker t2 = {.c = c};
    pthread_create(&th, NULL, take_in_thread, &t2);
    usleep(20000);
    qcache_entry_clear(&e);
    qcache_release(c, "q", 1);
    pthread_join(th, NULL);
    CHECK(!t2.found);

    /* a newer answer is kept; an older one is dropped */
    qcache_entry newer = entry(2, 9, 1, "nine"), older = entry(2, 8, 1, "eight");
    qcache_put(c, "q", 1, &newer);
    qcache_put(c, "q", 1, &older);
    CHECK(qcache_take(c, "q", 1, &e));
    CHECK_INT(e.version, 9);
    qcache_put(c, "q", 1, &e);
    /* a later epoch wins whatever its version */
    qcache_entry next_epoch = entry(3, 1, 1, "one");
    qcache_put(c, "q", 1, &next_epoch);
    CHECK(qcache_take(c, "q", 1, &e));
    CHECK_INT(e.epoch, 3);
    qcache_put(c, "q", 1, &e);

    /* answers over max_rows are not kept (and the key is not left busy) */
    qcache_entry big = entry(1, 1, 101, "big");
    qcache_put(c, "big", 3, &big);
    CHECK(!qcache_take(c, "big", 3, &e));

    /* different keys never share an entry */
    CHECK(!qcache_take(c, "r", 1, &e));
    qcache_free(c);
    CHECK_DONE();
}
