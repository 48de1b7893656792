/* qpool.h - a bounded pool of threads for heavy requests (serving/
 * private).
 *
 * Queries run here rather than on the HTTP threads, so however many heavy
 * queries run, the cheap routes (/healthz, /readyz, /metrics, /v1/status)
 * keep answering: the HTTP layer suspends a query's connection, submits a
 * job, and the job's done callback resumes the connection. At most
 * `threads` jobs run and at most `max_queued` wait; beyond, qpool_submit
 * refuses at once (the caller answers 503), so waiting never grows without
 * bound.
 *
 * Threads: qpool_submit and qpool_get_stats from any thread; run and done
 * on a pool thread, except done(j, false) for jobs still queued when the
 * pool stops, which runs on the thread calling qpool_stop. One mutex guards
 * the queue and the counts, never held while a job runs.
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct qpool qpool;
typedef struct qjob qjob;

/* Embed as the first member of a job. */
struct qjob {
    void (*run)(qjob *j);
    /* After run (ran: true), or instead of it when the pool stops before
     * the job started (ran: false). The pool never touches j again once
     * done is called, so done may free j, or hand it to another thread
     * that frees it. */
    void (*done)(qjob *j, bool ran);
    qjob *next;   /* the pool's */
};

/* Starts `threads` threads (>= 1); at most max_queued jobs wait. 0 or a
 * negative errno. */
int qpool_new(size_t threads, size_t max_queued, qpool **out);
/* Queues j: 0; -EAGAIN when max_queued jobs wait already; -ESHUTDOWN once
 * the pool stops. On error j is not touched. */
int qpool_submit(qpool *p, qjob *j);
/* Refuses new jobs, calls done(j, false) for every queued job, waits for
 * the running ones to end and joins the threads. Idempotent. */
void qpool_stop(qpool *p);
void qpool_free(qpool *p);   /* stops first; accepts NULL */

typedef struct {
    size_t threads;
    size_t queued;      /* waiting for a thread */
    size_t running;
    uint64_t done;      /* jobs run to the end */
    uint64_t rejected;  /* refused for a full queue */
} qpool_stats;
void qpool_get_stats(qpool *p, qpool_stats *st);
