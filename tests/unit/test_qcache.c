/* Unit tests of the answer cache: entries move out and back (take, put,
 * release); a request for a question being computed waits for it, also
 * for a question asked the first time; a newer answer is never replaced
 * by an older one; oversized answers stay out; the byte budget holds and
 * the least recently used entries go first; a checked-out entry is never
 * evicted; a budget of 0 turns the cache off.
 *
 * Threads are ordered by events (qcache_wait_for_waiters: the other thread
 * is waiting in qcache_take), never by sleeping; the take wait is made
 * long so a loaded machine cannot turn a wait into a timeout. */
#include <pthread.h>
#include <stdlib.h>

#include "serving/qcache.h"
#include "tests/unit/check.h"
#include "tests/unit/aggtest.h"

#define LONG_WAIT_MS 600000
/* A table with a row holds a 256 KiB arena block (core/vtable.c): room
 * for a quarter of the budget each. */
#define BUDGET ((size_t)64 << 20)

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
    const char *key;
    bool found;
    uint64_t version, ticket;
} taker;

/* Takes t->key; gives back what it found (or its reservation). */
static void *take_in_thread(void *arg)
{
    taker *t = arg;
    qcache_entry e = {0};
    t->found = qcache_take(t->c, t->key, strlen(t->key), &e);
    t->version = e.version;
    t->ticket = e.ticket;
    if (t->found)
        qcache_put(t->c, t->key, strlen(t->key), &e);
    else
        qcache_release(t->c, t->key, strlen(t->key), &e);
    return NULL;
}

static void put(qcache *c, const char *key, qcache_entry e)
{
    qcache_put(c, key, strlen(key), &e);
}

/* Is key stored? (takes it and puts it back, which makes it the most
 * recently used) */
static bool has(qcache *c, const char *key)
{
    qcache_entry e;
    bool found = qcache_take(c, key, strlen(key), &e);
    if (found)
        qcache_put(c, key, strlen(key), &e);
    else
        qcache_release(c, key, strlen(key), &e);
    return found;
}

static void test_checkout(void)
{
    qcache *c = qcache_new(BUDGET, 100);
    qcache_set_wait_ms(c, LONG_WAIT_MS);
    qcache_entry e;
    /* nothing stored: the question is reserved for the asker */
    CHECK(!qcache_take(c, "q", 1, &e));
    CHECK(e.ticket != 0);
    qcache_release(c, "q", 1, &e);

    qcache_entry a = entry(1, 5, 3, "five");
    qcache_put(c, "q", 1, &a);
    CHECK(a.table == NULL && a.body == NULL);          /* ownership moved */
    CHECK(qcache_take(c, "q", 1, &e));
    CHECK(e.ticket != 0);
    CHECK_INT(e.version, 5);
    CHECK_MEM(e.body, e.len, "five", 4);
    CHECK_INT(vtable_rows(e.table), 3);
    qcache_stats st;
    qcache_get_stats(c, &st);
    CHECK_INT(st.entries, 0);      /* checked out: not counted as stored */
    CHECK_INT(st.bytes, 0);
    CHECK_INT(st.checked_out, 1);

    /* while it is checked out, another request waits for it to come back */
    taker t = {.c = c, .key = "q"};
    pthread_t th;
    pthread_create(&th, NULL, take_in_thread, &t);
    qcache_wait_for_waiters(c, 1);
    e.version = 6;
    qcache_put(c, "q", 1, &e);
    pthread_join(th, NULL);
    CHECK(t.found);
    CHECK_INT(t.version, 6);

    /* given back without an answer: the waiter gets nothing (and the
     * question, to compute), rather than waiting for ever */
    CHECK(qcache_take(c, "q", 1, &e));
    taker t2 = {.c = c, .key = "q"};
    pthread_create(&th, NULL, take_in_thread, &t2);
    qcache_wait_for_waiters(c, 1);
    qcache_release(c, "q", 1, &e);
    CHECK(e.table == NULL && e.ticket == 0);
    pthread_join(th, NULL);
    CHECK(!t2.found);
    CHECK(t2.ticket != 0);

    /* a question asked the first time: the second asker waits for the
     * first one's answer instead of computing it too */
    CHECK(!qcache_take(c, "new", 3, &e));
    taker t3 = {.c = c, .key = "new"};
    pthread_create(&th, NULL, take_in_thread, &t3);
    qcache_wait_for_waiters(c, 1);
    qcache_entry fresh = entry(1, 7, 1, "seven");
    fresh.ticket = e.ticket;
    qcache_put(c, "new", 3, &fresh);
    pthread_join(th, NULL);
    CHECK(t3.found);
    CHECK_INT(t3.version, 7);

    qcache_get_stats(c, &st);
    CHECK_INT(st.checked_out, 0);
    CHECK_INT(st.entries, 1);   /* "new"; "q" was given back empty */
    qcache_free(c);
}

static void test_wait_times_out(void)
{
    qcache *c = qcache_new(BUDGET, 100);
    qcache_set_wait_ms(c, 20);
    put(c, "q", entry(1, 1, 1, "one"));
    qcache_entry held;
    CHECK(qcache_take(c, "q", 1, &held));
    /* another request gives up waiting and computes without the cache:
     * no entry, no checkout */
    qcache_entry e;
    CHECK(!qcache_take(c, "q", 1, &e));
    CHECK_INT(e.ticket, 0);
    /* its answer does not replace the holder's, which comes back soon */
    qcache_entry other = entry(1, 9, 1, "nine");
    qcache_put(c, "q", 1, &other);
    held.version = 2;
    qcache_put(c, "q", 1, &held);
    CHECK(qcache_take(c, "q", 1, &e));
    CHECK_INT(e.version, 2);
    qcache_put(c, "q", 1, &e);
    qcache_free(c);
}

static void test_newer_wins(void)
{
    qcache *c = qcache_new(BUDGET, 100);
    qcache_entry e;
    /* a newer answer is kept; an older one is dropped */
    put(c, "q", entry(2, 9, 1, "nine"));
    put(c, "q", entry(2, 8, 1, "eight"));
    CHECK(qcache_take(c, "q", 1, &e));
    CHECK_INT(e.version, 9);
    qcache_put(c, "q", 1, &e);
    /* a later epoch wins whatever its version */
    put(c, "q", entry(3, 1, 1, "one"));
    CHECK(qcache_take(c, "q", 1, &e));
    CHECK_INT(e.epoch, 3);
    CHECK_MEM(e.body, e.len, "one", 3);
    qcache_put(c, "q", 1, &e);
    qcache_stats st;
    qcache_get_stats(c, &st);
    CHECK_INT(st.entries, 1);

    /* answers over max_rows are not kept (and the key is not left checked out) */
    put(c, "big", entry(1, 1, 101, "big"));
    CHECK(!has(c, "big"));
    CHECK(!has(c, "big"));
    /* nor is an answer without a table */
    qcache_entry none = {.epoch = 1, .version = 1, .body = strdup("x"), .len = 1};
    qcache_put(c, "none", 4, &none);
    CHECK(!has(c, "none"));
    /* different keys never share an entry */
    CHECK(!has(c, "r"));
    CHECK(has(c, "q"));
    qcache_get_stats(c, &st);
    CHECK_INT(st.entries, 1);
    CHECK_INT(st.checked_out, 0);
    qcache_free(c);
}

/* The byte budget: entries go least recently used first, as many as the
 * bytes of a new one need; the stored bytes never exceed the budget. */
static void test_lru(void)
{
    /* tables without rows: small, all of one size */
    qcache_entry probe = entry(1, 1, 0, "b0");
    size_t per = qcache_entry_bytes(2, &probe);   /* keys "k0".."k9", bodies "b0".. */
    qcache_entry_clear(&probe);
    size_t budget = 4 * per + per / 2;            /* room for four */
    qcache *c = qcache_new(budget, 1000000);
    char key[8], body[8];
    for (int i = 0; i < 4; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        snprintf(body, sizeof(body), "b%d", i);
        put(c, key, entry(1, 1, 0, body));
    }
    qcache_stats st;
    qcache_get_stats(c, &st);
    CHECK_INT(st.entries, 4);
    CHECK_INT(st.bytes, 4 * per);
    CHECK_INT(st.budget, budget);
    CHECK_INT(st.evictions, 0);

    /* k0 used again: k1 is now the least recently used, and goes first */
    CHECK(has(c, "k0"));
    put(c, "k4", entry(1, 1, 0, "b4"));
    qcache_get_stats(c, &st);
    CHECK_INT(st.entries, 4);
    CHECK_INT(st.evictions, 1);
    CHECK(st.bytes <= budget);
    CHECK(!has(c, "k1"));
    /* order now, least recent first: k2 k3 k0 k4 (the has() calls keep it) */
    CHECK(has(c, "k2"));
    CHECK(has(c, "k3"));
    CHECK(has(c, "k0"));
    CHECK(has(c, "k4"));

    /* a larger answer pushes out as many as its bytes need, oldest first */
    qcache_entry big = entry(1, 1, 0, "b5");
    size_t small_table = vtable_bytes(big.table);
    free(big.body);
    size_t blen = budget / 4 - 2 - small_table;   /* exactly the largest allowed */
    big.body = malloc(blen);
    memset(big.body, 'x', blen);
    big.len = blen;
    CHECK_INT(qcache_entry_bytes(2, &big), budget / 4);
    qcache_put(c, "k5", 2, &big);
    qcache_get_stats(c, &st);
    CHECK(st.bytes <= budget);
    CHECK_INT(st.bytes, 3 * per + budget / 4);   /* k3 k0 k4 k5 */
    CHECK_INT(st.evictions, 2);
    CHECK(!has(c, "k2"));
    CHECK(has(c, "k5"));
    CHECK(has(c, "k3") && has(c, "k0") && has(c, "k4"));

    /* one byte more than a quarter of the budget stays out, evicting nothing */
    qcache_entry huge = entry(1, 1, 0, "b6");
    free(huge.body);
    huge.body = malloc(blen + 1);
    memset(huge.body, 'y', blen + 1);
    huge.len = blen + 1;
    qcache_put(c, "k6", 2, &huge);
    CHECK(huge.body == NULL);   /* taken, and freed */
    qcache_get_stats(c, &st);
    CHECK_INT(st.evictions, 2);
    CHECK_INT(st.entries, 4);
    CHECK(!has(c, "k6"));
    qcache_free(c);
}

/* An entry checked out belongs to its holder: pressure on the budget
 * evicts only stored entries, and it comes back afterwards. */
static void test_checked_out_not_evicted(void)
{
    qcache_entry probe = entry(1, 1, 0, "b0");
    size_t per = qcache_entry_bytes(2, &probe);
    qcache_entry_clear(&probe);
    size_t budget = 4 * per;
    qcache *c = qcache_new(budget, 1000000);
    qcache_set_wait_ms(c, 1);
    put(c, "k0", entry(1, 1, 0, "b0"));
    qcache_entry held;
    CHECK(qcache_take(c, "k0", 2, &held));
    char key[8], body[8];
    for (int i = 1; i <= 12; i++) {   /* three budgets' worth */
        snprintf(key, sizeof(key), "k%d", i);
        snprintf(body, sizeof(body), "b%d", i);
        put(c, key, entry(1, 1, 0, body));
        qcache_stats st;
        qcache_get_stats(c, &st);
        CHECK(st.bytes <= budget);
        CHECK_INT(st.checked_out, 1);
    }
    /* still checked out: another request gives up waiting (ticket 0)
     * instead of finding the key free */
    qcache_entry e;
    CHECK(!qcache_take(c, "k0", 2, &e));
    CHECK_INT(e.ticket, 0);
    CHECK_MEM(held.body, held.len, "b0", 2);
    CHECK(held.table != NULL);
    held.version = 2;
    qcache_put(c, "k0", 2, &held);
    CHECK(qcache_take(c, "k0", 2, &e));
    CHECK_INT(e.version, 2);
    qcache_put(c, "k0", 2, &e);
    qcache_stats st;
    qcache_get_stats(c, &st);
    CHECK(st.bytes <= budget);
    CHECK_INT(st.entries, 4);
    CHECK_INT(st.checked_out, 0);
    qcache_free(c);
}

static void test_disabled(void)
{
    qcache *c = qcache_new(0, 1000000);
    put(c, "q", entry(1, 1, 1, "one"));
    qcache_entry e;
    CHECK(!qcache_take(c, "q", 1, &e));
    CHECK_INT(e.ticket, 0);          /* nothing reserved: nobody waits */
    CHECK(!qcache_take(c, "q", 1, &e));
    CHECK_INT(e.ticket, 0);
    qcache_release(c, "q", 1, &e);
    qcache_stats st;
    qcache_get_stats(c, &st);
    CHECK_INT(st.entries, 0);
    CHECK_INT(st.bytes, 0);
    CHECK_INT(st.budget, 0);
    qcache_free(c);
    qcache_free(NULL);
}

/* Many keys: the map grows and finds every one. */
static void test_many_keys(void)
{
    qcache *c = qcache_new((size_t)1 << 30, 1000000);
    char key[16];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "key%d", i);
        put(c, key, entry(1, (uint64_t)i, 0, "x"));
    }
    int found = 0;
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "key%d", i);
        qcache_entry e;
        if (qcache_take(c, key, strlen(key), &e) && e.version == (uint64_t)i)
            found++;
        qcache_put(c, key, strlen(key), &e);
    }
    CHECK_INT(found, 5000);
    qcache_stats st;
    qcache_get_stats(c, &st);
    CHECK_INT(st.entries, 5000);
    qcache_free(c);
}

int main(void)
{
    test_checkout();
    test_wait_times_out();
    test_newer_wins();
    test_lru();
    test_checked_out_not_evicted();
    test_disabled();
    test_many_keys();
    CHECK_DONE();
}
