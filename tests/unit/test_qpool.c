/* Unit tests of the query pool: a full queue refuses at once, every job
 * runs once, and stopping answers the queued jobs (done without run) and
 * waits for the running ones. Jobs free themselves in done, so the
 * sanitizer build catches the pool touching a job afterwards.
 *
 * Threads are ordered by events (counts under a mutex and a condition),
 * never by sleeping. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "serving/qpool.h"
#include "tests/unit/check.h"

/* What the jobs did, and a gate that holds them in run until opened. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static int started, ran, cancelled, freed;
static bool gate_open;

typedef struct {
    qjob base;
    bool wait_at_gate;
    int runs;
} job;

static void reset(void)
{
    pthread_mutex_lock(&mu);
    started = ran = cancelled = freed = 0;
    gate_open = false;
    pthread_mutex_unlock(&mu);
}

static void job_run(qjob *qj)
{
    job *j = (job *)qj;
    j->runs++;
    pthread_mutex_lock(&mu);
    started++;
    pthread_cond_broadcast(&changed);
    while (j->wait_at_gate && !gate_open)
        pthread_cond_wait(&changed, &mu);
    pthread_mutex_unlock(&mu);
}

static void job_done(qjob *qj, bool did_run)
{
    job *j = (job *)qj;
    pthread_mutex_lock(&mu);
    if (did_run) {
        if (j->runs == 1)
            ran++;
    } else if (j->runs == 0) {
        cancelled++;
    }
    freed++;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&mu);
    free(j);   /* the pool must not touch it any more */
}

static job *new_job(bool wait_at_gate)
{
    job *j = calloc(1, sizeof(*j));
    j->base.run = job_run;
    j->base.done = job_done;
    j->wait_at_gate = wait_at_gate;
    return j;
}

/* Blocks until *v >= n. */
static void wait_for(const int *v, int n)
{
    pthread_mutex_lock(&mu);
    while (*v < n)
        pthread_cond_wait(&changed, &mu);
    pthread_mutex_unlock(&mu);
}

static void open_gate(void)
{
    pthread_mutex_lock(&mu);
    gate_open = true;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&mu);
}

static void test_queue_full(void)
{
    reset();
    qpool *p = NULL;
    CHECK_INT(qpool_new(2, 3, &p), 0);
    job *j[6];
    for (int i = 0; i < 6; i++)
        j[i] = new_job(true);
    CHECK_INT(qpool_submit(p, &j[0]->base), 0);
    CHECK_INT(qpool_submit(p, &j[1]->base), 0);
    wait_for(&started, 2);   /* both threads busy */
    for (int i = 2; i < 5; i++)
        CHECK_INT(qpool_submit(p, &j[i]->base), 0);
    qpool_stats st;
    qpool_get_stats(p, &st);
    CHECK_INT(st.threads, 2);
    CHECK_INT(st.running, 2);
    CHECK_INT(st.queued, 3);
    /* three wait already: refused at once, the job untouched */
    CHECK_INT(qpool_submit(p, &j[5]->base), -EAGAIN);
    CHECK_INT(j[5]->runs, 0);
    free(j[5]);
    qpool_get_stats(p, &st);
    CHECK_INT(st.rejected, 1);

    open_gate();
    wait_for(&freed, 5);
    CHECK_INT(ran, 5);
    CHECK_INT(cancelled, 0);
    qpool_get_stats(p, &st);
    CHECK_INT(st.queued, 0);
    qpool_free(p);   /* workers are idle: joins at once */
}

static void test_no_queue(void)
{
    reset();
    qpool *p = NULL;
    CHECK_INT(qpool_new(1, 0, &p), 0);
    job *a = new_job(true), *b = new_job(false);
    CHECK_INT(qpool_submit(p, &a->base), 0);
    wait_for(&started, 1);
    /* max_queued 0: nothing waits, a busy pool refuses */
    CHECK_INT(qpool_submit(p, &b->base), -EAGAIN);
    open_gate();
    wait_for(&freed, 1);
    /* the thread is free again */
    CHECK_INT(qpool_submit(p, &b->base), 0);
    wait_for(&freed, 2);
    CHECK_INT(ran, 2);
    qpool_free(p);
}

typedef struct {
    qpool *p;
    int submitted;
} submitter;

static void *submit_many(void *arg)
{
    submitter *s = arg;
    for (int i = 0; i < 250; i++)
        if (qpool_submit(s->p, &new_job(false)->base) == 0)
            s->submitted++;
    return NULL;
}

static void test_all_run(void)
{
    reset();
    qpool *p = NULL;
    CHECK_INT(qpool_new(3, 1000, &p), 0);
    submitter s[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        s[i] = (submitter){.p = p};
        pthread_create(&th[i], NULL, submit_many, &s[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_INT(s[i].submitted, 250);
    }
    wait_for(&freed, 1000);
    CHECK_INT(ran, 1000);
    qpool_stats st;
    qpool_get_stats(p, &st);
    CHECK_INT(st.done, 1000);
    CHECK_INT(st.rejected, 0);
    qpool_free(p);
}

static void *stop_in_thread(void *arg)
{
    qpool_stop(arg);
    return NULL;
}

/* Stopping with jobs running and queued: the queued ones are done without
 * running, at once; qpool_stop returns once the running ones ended. */
static void test_stop(void)
{
    reset();
    qpool *p = NULL;
    CHECK_INT(qpool_new(2, 10, &p), 0);
    for (int i = 0; i < 2; i++)
        CHECK_INT(qpool_submit(p, &new_job(true)->base), 0);
    wait_for(&started, 2);
    for (int i = 0; i < 3; i++)
        CHECK_INT(qpool_submit(p, &new_job(true)->base), 0);
    pthread_t th;
    pthread_create(&th, NULL, stop_in_thread, p);
    wait_for(&cancelled, 3);   /* before the running ones end */
    pthread_mutex_lock(&mu);
    CHECK_INT(ran, 0);
    pthread_mutex_unlock(&mu);
    job *late = new_job(false);
    CHECK_INT(qpool_submit(p, &late->base), -ESHUTDOWN);
    free(late);
    open_gate();
    pthread_join(th, NULL);   /* returned: the running ones are done */
    CHECK_INT(ran, 2);
    CHECK_INT(cancelled, 3);
    CHECK_INT(freed, 5);
    qpool_stop(p);   /* again: nothing to do */
    qpool_free(p);
    qpool_free(NULL);
}

int main(void)
{
    qpool *p = (qpool *)1;
    CHECK_INT(qpool_new(0, 1, &p), -EINVAL);
    CHECK(p == NULL);
    test_queue_full();
    test_no_queue();
    test_all_run();
    test_stop();
    CHECK_DONE();
}
