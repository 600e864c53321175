/* Namespace work off the loop thread. setns() changes the calling thread's
 * namespace, so it must never run on the libuv loop thread: jobs run on a
 * pool of worker threads that enter the target network namespace, run, and
 * return to the agent's namespace before taking the next job.
 *
 * Jobs that share a non-NULL key run one after another in submission order
 * (e.g. everything touching one network); other jobs run in parallel. */
#ifndef NA_NSWORKER_H
#define NA_NSWORKER_H

#include <uv.h>

#include "netagent/err.h"

/* Runs on a worker thread; inside netns_path when it is non-NULL. */
typedef int (*na_ns_fn)(void *arg, na_err_t *err);
/* Runs on the loop thread afterwards with the job's result. */
typedef void (*na_ns_done_fn)(void *arg, int rc, const na_err_t *err);

/* Lanes: the default one (nthreads, unbounded) for writes and reconcile,
 * and a diagnostics lane (NA_DIAG_THREADS, at most NA_DIAG_MAX_JOBS queued
 * or running) so that long checks never hold up writes. */
enum na_ns_lane { NA_LANE_DEFAULT, NA_LANE_DIAG, NA_LANES };
#define NA_DIAG_THREADS	 2
#define NA_DIAG_MAX_JOBS 4

int na_nsworker_init(uv_loop_t *loop, int nthreads, na_err_t *err);
void na_nsworker_fini(void);
int na_ns_submit(const char *key, const char *netns_path, na_ns_fn fn, na_ns_done_fn done,
		 void *arg);
/* The same on a lane; -1 with errno EBUSY when a bounded lane is full. */
int na_ns_submit_lane(enum na_ns_lane lane, const char *key, const char *netns_path, na_ns_fn fn,
		      na_ns_done_fn done, void *arg);
/* For code already on a worker thread: enters netns_path, runs fn, returns
 * to the previous namespace (the thread's namespace is restored on every
 * path). Never call it from the loop thread. */
int na_ns_run(const char *netns_path, na_ns_fn fn, void *arg, na_err_t *err);
/* Number of jobs queued or running (for drain and metrics). */
unsigned na_nsworker_pending(void);

#endif
