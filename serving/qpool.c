/* qpool.c - a bounded pool of threads for heavy requests (see qpool.h).
 *
 * Threads: `threads` workers take jobs from a FIFO queue; p->mu guards the
 * queue, the counts and `stopping`, and is never held while a job runs or
 * while its done callback runs. qpool_stop joins the workers, so it
 * returns only after every done callback (which, in the HTTP layer,
 * resumes a suspended connection) has returned.
 */
#include "serving/qpool.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

struct qpool {
    pthread_mutex_t mu;
    pthread_cond_t work;      /* a job was queued, or the pool stops */
    qjob *head, *tail;
    size_t threads, max_queued, queued, running;
    uint64_t done, rejected;
    bool stopping, joined;
    pthread_t *tids;
    size_t started;           /* threads created */
};

static void *worker(void *arg)
{
    qpool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->head && !p->stopping)
            pthread_cond_wait(&p->work, &p->mu);
        if (p->stopping)
            break;   /* queued jobs are cancelled by qpool_stop */
        qjob *j = p->head;
        p->head = j->next;
        if (!p->head)
            p->tail = NULL;
        p->queued--;
        p->running++;
        pthread_mutex_unlock(&p->mu);

        j->run(j);
        pthread_mutex_lock(&p->mu);
        p->running--;   /* counted before done: whatever done wakes sees a free thread */
        p->done++;
        pthread_mutex_unlock(&p->mu);
        j->done(j, true);   /* j may be gone from here on */
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int qpool_new(size_t threads, size_t max_queued, qpool **out)
{
    *out = NULL;
    if (threads == 0)
        return -EINVAL;
    qpool *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->threads = threads;
    p->max_queued = max_queued;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    if (!(p->tids = calloc(threads, sizeof(*p->tids)))) {
        qpool_free(p);
        return -ENOMEM;
    }
    for (; p->started < threads; p->started++) {
        int rc = pthread_create(&p->tids[p->started], NULL, worker, p);
        if (rc) {
            qpool_free(p);   /* stops and joins the ones started */
            return -rc;
        }
    }
    *out = p;
    return 0;
}

int qpool_submit(qpool *p, qjob *j)
{
    int rc = 0;
    pthread_mutex_lock(&p->mu);
    if (p->stopping) {
        rc = -ESHUTDOWN;
    } else if (p->queued + p->running >= p->threads + p->max_queued) {
        /* every thread busy and max_queued waiting already */
        p->rejected++;
        rc = -EAGAIN;
    } else {
        j->next = NULL;
        if (p->tail)
            p->tail->next = j;
        else
            p->head = j;
        p->tail = j;
        p->queued++;
        pthread_cond_signal(&p->work);
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

void qpool_stop(qpool *p)
{
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    qjob *cancelled = p->head;
    p->head = p->tail = NULL;
    p->queued = 0;
    bool join = !p->joined;
    p->joined = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);

    for (qjob *j = cancelled, *next; j; j = next) {
        next = j->next;   /* read first: done may free j */
        j->done(j, false);
    }
    /* the running jobs end (their done callbacks run) before this returns */
    for (size_t i = 0; join && i < p->started; i++)
        pthread_join(p->tids[i], NULL);
}

void qpool_free(qpool *p)
{
    if (!p)
        return;
    qpool_stop(p);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work);
    free(p->tids);
    free(p);
}

void qpool_get_stats(qpool *p, qpool_stats *st)
{
    pthread_mutex_lock(&p->mu);
    *st = (qpool_stats){.threads = p->threads, .queued = p->queued, .running = p->running,
                        .done = p->done, .rejected = p->rejected};
    pthread_mutex_unlock(&p->mu);
}
