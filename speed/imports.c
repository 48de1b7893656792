/* imports.c - imports through the speed thread (POST /v1/admin/import).
 *
 * The speed thread owns the archive writer and decides the order of
 * commits and of their application to the live views, so an import thread
 * does not write the archive itself: it builds a transaction (and the
 * per-view tables of its events) and hands it over here. The speed thread
 * serves one call at a time, at the top of its loop, between two of its
 * own transactions: it commits the import's transaction (a seq of its own)
 * and only after COMMIT applies its tables to L, exactly as it does for
 * Kafka transactions, so the exactness protocol holds unchanged, and the
 * next batch run recomputes the partitions the import touched like those
 * of late events.
 *
 * Locks: call_lock guards s->call and s->calls_open; the caller waits on
 * call_cond for its call to be done (and for another caller's to end).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/strutil.h"
#include "speed/speed_int.h"

enum { CALL_BEGIN, CALL_COMMIT };

struct speed_call {
    int kind;
    const char *stream, *hash, *name;
    arch_import *out;
    arch_txn *t;
    vtable **stage;
    int64_t events;
    int result;
    char *errmsg;
    bool done;
};

/* Any thread: posts c and waits until the speed thread did it. */
static int submit(speed *s, speed_call *c, char **errmsg)
{
    pthread_mutex_lock(&s->call_lock);
    while (s->calls_open && s->call)
        pthread_cond_wait(&s->call_cond, &s->call_lock);
    if (!s->calls_open) {
        pthread_mutex_unlock(&s->call_lock);
        *errmsg = strdup("the speed layer is not running (stopping, or stopped after an error)");
        return -ECANCELED;
    }
    s->call = c;
    pthread_mutex_unlock(&s->call_lock);
    if (s->queue)
        rd_kafka_queue_yield(s->queue);   /* out of its wait for messages */
    pthread_mutex_lock(&s->call_lock);
    while (!c->done)
        pthread_cond_wait(&s->call_cond, &s->call_lock);
    pthread_mutex_unlock(&s->call_lock);
    *errmsg = c->errmsg;
    return c->result;
}

int speed_import_begin(speed *s, const char *stream, const char *hash, const char *name,
                       arch_import *out, char **errmsg)
{
    speed_call c = {.kind = CALL_BEGIN, .stream = stream, .hash = hash, .name = name, .out = out};
    return submit(s, &c, errmsg);
}

int speed_import_commit(speed *s, arch_txn *t, vtable **stage, int64_t events, char **errmsg)
{
    speed_call c = {.kind = CALL_COMMIT, .t = t, .stage = stage, .events = events};
    return submit(s, &c, errmsg);
}

/* Speed thread: commits the import's transaction, then applies it. */
static int run_commit(speed *s, speed_call *c)
{
    int64_t last_seq = 0;
    int r = arch_commit(s->w, c->t, &last_seq, &c->errmsg);
    if (r < 0)
        return r;
    if (vstate_apply(s->vs, c->stage, c->events, last_seq, true) < 0) {
        /* archived: a restart rebuilds the live views from the archive */
        log_error("Out of memory applying an imported transaction; stopping (a restart "
                  "recovers it from the archive)");
        s->failed = true;
        c->errmsg = strdup("out of memory applying the transaction (the daemon stops; its "
                           "restart recovers it)");
        return -ENOMEM;
    }
    speed_count_commit(s, c->t);
    return 0;
}

void speed_serve_call(speed *s)
{
    pthread_mutex_lock(&s->call_lock);
    speed_call *c = s->call;
    pthread_mutex_unlock(&s->call_lock);
    if (!c)
        return;
    if (c->kind == CALL_BEGIN)
        c->result = arch_import_begin(s->w, c->stream, c->hash, c->name, c->out, &c->errmsg);
    else
        c->result = run_commit(s, c);
    pthread_mutex_lock(&s->call_lock);
    c->done = true;
    s->call = NULL;
    pthread_cond_broadcast(&s->call_cond);
    pthread_mutex_unlock(&s->call_lock);
}

void speed_calls_open(speed *s, bool open)
{
    pthread_mutex_lock(&s->call_lock);
    s->calls_open = open;
    if (!open && s->call) {
        s->call->result = -ECANCELED;
        s->call->errmsg = strdup("the speed layer stopped");
        s->call->done = true;
        s->call = NULL;
    }
    pthread_cond_broadcast(&s->call_cond);
    pthread_mutex_unlock(&s->call_lock);
}
