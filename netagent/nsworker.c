/* Worker pool for namespace work. Jobs sharing a key form a FIFO of which
 * only the head is runnable, so they run in submission order while jobs of
 * other keys run in parallel. Results go back to the loop thread through a
 * uv_async_t and a done-queue. */
#include "netagent/nsworker.h"
#include "netagent/log.h"
#include "netagent/nl.h"
#include "netagent/util.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>

#define NBUCKETS 256

struct keyq;

struct pool;

struct job {
	struct job *next;
	struct pool *pool;
	struct keyq *kq;
	char *netns;
	na_ns_fn fn;
	na_ns_done_fn done;
	void *arg;
	int rc;
	na_err_t err;
};

/* A key with a job queued or running: `waiting` holds the jobs behind it. */
struct keyq {
	struct keyq *next;
	struct job *wait_head, *wait_tail;
	unsigned hash;
	char key[];
};

struct fifo {
	struct job *head, *tail;
};

struct pool {
	const char *name;
	unsigned max_jobs; /* queued + running; 0: unbounded */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t *threads;
	int nthreads;
	struct fifo run, done;
	struct keyq *buckets[NBUCKETS];
	int stop;
	int inited;
	unsigned pending;
	uv_async_t async;
};

/* Two lanes: writes and reconcile on one, long diagnostics (`net check`
 * pings every endpoint, seconds each) on their own few threads with a
 * bound, so that checks can never freeze the writes. */
static struct pool lanes[NA_LANES] = {
    [NA_LANE_DEFAULT] = {.name = "ns",
			 .mu = PTHREAD_MUTEX_INITIALIZER,
			 .cv = PTHREAD_COND_INITIALIZER},
    [NA_LANE_DIAG] = {.name = "diag",
		      .max_jobs = NA_DIAG_MAX_JOBS,
		      .mu = PTHREAD_MUTEX_INITIALIZER,
		      .cv = PTHREAD_COND_INITIALIZER},
};

static void fifo_push(struct fifo *f, struct job *j)
{
	j->next = NULL;
	if (f->tail)
		f->tail->next = j;
	else
		f->head = j;
	f->tail = j;
}

static struct job *fifo_pop(struct fifo *f)
{
	struct job *j = f->head;
	if (j) {
		f->head = j->next;
		if (!f->head)
			f->tail = NULL;
		j->next = NULL;
	}
	return j;
}

static unsigned hash_key(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static void job_free(struct job *j)
{
	free(j->netns);
	free(j);
}

static void deliver(struct job *j)
{
	struct pool *P = j->pool;
	if (j->done)
		j->done(j->arg, j->rc, &j->err);
	job_free(j);
	__atomic_sub_fetch(&P->pending, 1, __ATOMIC_RELAXED);
}

static void on_async(uv_async_t *h)
{
	struct pool *P = h->data;
	struct fifo done;

	pthread_mutex_lock(&P->mu);
	done = P->done;
	P->done.head = P->done.tail = NULL;
	pthread_mutex_unlock(&P->mu);
	for (struct job *j = fifo_pop(&done); j; j = fifo_pop(&done))
		deliver(j);
}

/* Called with P->mu held after j finished: the next job of its key, if any,
 * becomes runnable; otherwise the key is forgotten. */
static void key_release(struct job *j)
{
	struct pool *P = j->pool;
	struct keyq *kq = j->kq, **pp;
	struct job *next;

	if (!kq)
		return;
	next = kq->wait_head;
	if (next) {
		kq->wait_head = next->next;
		if (!kq->wait_head)
			kq->wait_tail = NULL;
		fifo_push(&P->run, next);
		pthread_cond_signal(&P->cv);
		return;
	}
	for (pp = &P->buckets[kq->hash % NBUCKETS]; *pp != kq; pp = &(*pp)->next)
		;
	*pp = kq->next;
	free(kq);
}

static void run_job(struct job *j)
{
	na_err_clear(&j->err);
	if (j->netns)
		j->rc = na_ns_run(j->netns, j->fn, j->arg, &j->err);
	else
		j->rc = j->fn(j->arg, &j->err);
	if (j->rc < 0 && j->err.status == 0)
		na_err_set(&j->err, 500, "internal_error", NULL, "namespace job failed");
}

static void *worker_main(void *p)
{
	struct pool *P = p;
	pthread_mutex_lock(&P->mu);
	for (;;) {
		while (!P->stop && !P->run.head)
			pthread_cond_wait(&P->cv, &P->mu);
		if (P->stop)
			break;
		struct job *j = fifo_pop(&P->run);
		pthread_mutex_unlock(&P->mu);
		run_job(j);
		pthread_mutex_lock(&P->mu);
		key_release(j);
		j->kq = NULL;
		fifo_push(&P->done, j);
		/* Sent under the lock so fini cannot close the handle between
		 * the push and the send. */
		uv_async_send(&P->async);
	}
	pthread_mutex_unlock(&P->mu);
	return NULL;
}

static void pool_fini(struct pool *P);

static int pool_start(struct pool *P, uv_loop_t *loop, int nthreads, na_err_t *err)
{
	sigset_t all, old;
	int rc;

	if (P->inited)
		return na_err_set(err, 500, "internal_error", NULL, "nsworker already started");
	rc = uv_async_init(loop, &P->async, on_async);
	if (rc < 0)
		return na_err_set(err, 500, "system_error", NULL, "uv_async_init: %s",
				  uv_strerror(rc));
	P->async.data = P;
	P->threads = calloc((size_t)nthreads, sizeof(*P->threads));
	if (!P->threads) {
		uv_close((uv_handle_t *)&P->async, NULL);
		return na_err_errno(err, ENOMEM, "nsworker");
	}
	P->stop = 0;
	P->inited = 1;
	/* Signals belong to the loop thread (libuv's signal handling). */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (P->nthreads = 0; P->nthreads < nthreads; P->nthreads++) {
		rc = pthread_create(&P->threads[P->nthreads], NULL, worker_main, P);
		if (rc != 0)
			break;
		char name[16];
		snprintf(name, sizeof(name), "na-%s%d", P->name, P->nthreads);
		pthread_setname_np(P->threads[P->nthreads], name);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		pool_fini(P);
		return na_err_errno(err, rc, "start namespace worker threads");
	}
	return 0;
}

int na_nsworker_init(uv_loop_t *loop, int nthreads, na_err_t *err)
{
	if (pool_start(&lanes[NA_LANE_DEFAULT], loop, nthreads > 0 ? nthreads : 4, err) < 0)
		return -1;
	if (pool_start(&lanes[NA_LANE_DIAG], loop, NA_DIAG_THREADS, err) < 0) {
		pool_fini(&lanes[NA_LANE_DEFAULT]);
		return -1;
	}
	return 0;
}

static void cancel(struct job *j)
{
	j->rc = -1;
	na_err_set(&j->err, 503, "shutting_down", NULL, "agent is shutting down");
	deliver(j);
}

static void pool_fini(struct pool *P)
{
	struct job *j;

	if (!P->inited)
		return;
	pthread_mutex_lock(&P->mu);
	P->stop = 1;
	pthread_cond_broadcast(&P->cv);
	pthread_mutex_unlock(&P->mu);
	for (int i = 0; i < P->nthreads; i++)
		pthread_join(P->threads[i], NULL);
	free(P->threads);
	P->threads = NULL;
	P->nthreads = 0;
	/* Finished jobs are delivered, queued ones cancelled: every submitted
	 * job gets exactly one done callback. */
	on_async(&P->async);
	while ((j = fifo_pop(&P->run)))
		cancel(j);
	for (int b = 0; b < NBUCKETS; b++) {
		while (P->buckets[b]) {
			struct keyq *kq = P->buckets[b];
			P->buckets[b] = kq->next;
			while ((j = kq->wait_head)) {
				kq->wait_head = j->next;
				cancel(j);
			}
			free(kq);
		}
	}
	uv_close((uv_handle_t *)&P->async, NULL);
	P->inited = 0;
}

void na_nsworker_fini(void)
{
	for (int i = NA_LANES; i-- > 0;)
		pool_fini(&lanes[i]);
}

int na_ns_submit_lane(enum na_ns_lane lane, const char *key, const char *netns_path, na_ns_fn fn,
		      na_ns_done_fn done, void *arg)
{
	struct pool *P = lane >= 0 && lane < NA_LANES ? &lanes[lane] : NULL;
	struct job *j;

	if (!P || !P->inited || !fn) {
		errno = EINVAL;
		return -1;
	}
	if (P->max_jobs && __atomic_load_n(&P->pending, __ATOMIC_RELAXED) >= P->max_jobs) {
		errno = EBUSY;
		return -1;
	}
	j = calloc(1, sizeof(*j));
	if (!j || (netns_path && !(j->netns = strdup(netns_path)))) {
		free(j);
		errno = ENOMEM;
		return -1;
	}
	j->pool = P;
	j->fn = fn;
	j->done = done;
	j->arg = arg;
	__atomic_add_fetch(&P->pending, 1, __ATOMIC_RELAXED);
	pthread_mutex_lock(&P->mu);
	if (key) {
		unsigned h = hash_key(key);
		struct keyq *kq;
		for (kq = P->buckets[h % NBUCKETS]; kq; kq = kq->next)
			if (kq->hash == h && strcmp(kq->key, key) == 0)
				break;
		if (kq) {
			/* Behind the key's running or runnable head. */
			j->kq = kq;
			if (kq->wait_tail)
				kq->wait_tail->next = j;
			else
				kq->wait_head = j;
			kq->wait_tail = j;
			pthread_mutex_unlock(&P->mu);
			return 0;
		}
		size_t n = strlen(key) + 1;
		kq = calloc(1, sizeof(*kq) + n);
		if (!kq) {
			pthread_mutex_unlock(&P->mu);
			__atomic_sub_fetch(&P->pending, 1, __ATOMIC_RELAXED);
			job_free(j);
			errno = ENOMEM;
			return -1;
		}
		memcpy(kq->key, key, n);
		kq->hash = h;
		kq->next = P->buckets[h % NBUCKETS];
		P->buckets[h % NBUCKETS] = kq;
		j->kq = kq;
	}
	fifo_push(&P->run, j);
	pthread_cond_signal(&P->cv);
	pthread_mutex_unlock(&P->mu);
	return 0;
}

int na_ns_run(const char *netns_path, na_ns_fn fn, void *arg, na_err_t *err)
{
	cleanup_close int fd = -1;
	int rc;

	if (!netns_path)
		return fn(arg, err);
	fd = na_netns_open(netns_path, NULL, err);
	if (fd < 0)
		return -1;
	rc = na_netns_run_fd(fd, fn, arg, err);
	if (rc < 0 && err && err->status == 0)
		na_err_set(err, 500, "internal_error", NULL, "namespace job failed");
	return rc;
}

int na_ns_submit(const char *key, const char *netns_path, na_ns_fn fn, na_ns_done_fn done,
		 void *arg)
{
	return na_ns_submit_lane(NA_LANE_DEFAULT, key, netns_path, fn, done, arg);
}

unsigned na_nsworker_pending(void)
{
	unsigned n = 0;
	for (int i = 0; i < NA_LANES; i++)
		n += __atomic_load_n(&lanes[i].pending, __ATOMIC_RELAXED);
	return n;
}
