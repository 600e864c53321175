/* Helper of test_state_crash.sh: drives the state store so that the script
 * can kill -9 it at random moments and check what survived.
 *
 *   state_crash run DIR SEED LOG   two writer threads, forever: each logs
 *                                  "op T I TYPE KIND ARGS…" before an operation
 *                                  and "ack T I" once it returned 0
 *   state_crash dump DIR           loads the two kinds, prints them as one JSON
 *                                  object (+ "quarantined"), exit 1 on error
 *   state_crash bench DIR N        times N single puts, one put_many of N,
 *                                  N single dels, one del_many of N
 *
 * An object is {"op":I,"t":T,"slot":S,"pad":"x"×P}: the log line carries
 * NAME:S:P, so the checker rebuilds the exact content it expects. Log lines
 * are single write(2)s on an O_APPEND fd: kill -9 leaves whole lines (a last
 * line without its newline is an op never started). */
#include "netagent/state.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NAMES	 40
#define MAXBATCH 48
#define MAXPAD	 3000

static const char *const kinds[2] = {"flat", "remotes/net1"};
static na_state_t *st;
static int logfd;
static unsigned seed;

static void die(const char *what, const na_err_t *e)
{
	fprintf(stderr, "state_crash: %s: %s\n", what, e ? e->msg : strerror(errno));
	exit(1);
}

static void logline(const char *s, size_t n)
{
	if (write(logfd, s, n) != (ssize_t)n)
		die("write log", NULL);
}

static json_t *make_obj(int t, unsigned long i, int slot, int pad)
{
	static char xs[MAXPAD + 1];
	if (!xs[0])
		memset(xs, 'x', MAXPAD);
	return json_pack("{s:I, s:i, s:i, s:s%}", "op", (json_int_t)i, "t", t, "slot", slot, "pad",
			 xs, (size_t)pad);
}

static void *writer(void *arg)
{
	int t = (int)(long)arg;
	unsigned r = seed * 2654435761u + (unsigned)t * 40503u + 1;
	const char *kind = kinds[t];
	static __thread char line[MAXBATCH * 24 + 128];
	char names[MAXBATCH][16];
	const char *np[MAXBATCH];
	json_t *objs[MAXBATCH];
	na_err_t e = NA_ERR_INIT;

	for (unsigned long i = 0;; i++) {
		int type = (int)(rand_r(&r) % 10), n = 1, len, rc;
		int batch = type >= 6, del = type == 4 || type == 5 || type == 9;
		if (batch)
			n = 2 + (int)(rand_r(&r) % (MAXBATCH - 1));
		/* distinct names in a batch: start at a random slot, walk on */
		int first = (int)(rand_r(&r) % NAMES);
		len = snprintf(line, sizeof(line), "op %d %lu %s %s", t, i,
			       del ? (batch ? "del_many" : "del") : (batch ? "put_many" : "put"),
			       kind);
		for (int k = 0; k < n && k < NAMES; k++) {
			int slot = (first + k) % NAMES, pad = (int)(rand_r(&r) % MAXPAD);
			snprintf(names[k], sizeof(names[k]), "o%d", slot);
			np[k] = names[k];
			if (del)
				len += snprintf(line + len, sizeof(line) - (size_t)len, " %s",
						names[k]);
			else
				len += snprintf(line + len, sizeof(line) - (size_t)len, " %s:%d:%d",
						names[k], slot, pad);
			objs[k] = del ? NULL : make_obj(t, i, slot, pad);
		}
		if (n > NAMES)
			n = NAMES;
		line[len++] = '\n';
		logline(line, (size_t)len);
		if (del)
			rc = batch ? na_state_del_many(st, kind, np, (size_t)n, &e)
				   : na_state_del(st, kind, np[0], &e);
		else
			rc = batch ? na_state_put_many(st, kind, np, objs, (size_t)n, &e)
				   : na_state_put(st, kind, np[0], objs[0], &e);
		if (rc < 0)
			die("operation", &e);
		len = snprintf(line, sizeof(line), "ack %d %lu\n", t, i);
		logline(line, (size_t)len);
		for (int k = 0; k < n; k++)
			json_decref(objs[k]);
	}
	return NULL;
}

static int add_obj(const char *name, json_t *obj, void *ud, na_err_t *err)
{
	(void)err;
	return json_object_set(ud, name, obj);
}

static int dump(void)
{
	na_err_t e = NA_ERR_INIT;
	json_t *all = json_object();
	for (int t = 0; t < 2; t++) {
		json_t *k = json_object();
		if (na_state_load(st, kinds[t], add_obj, k, &e) < 0)
			die("load", &e);
		json_object_set_new(all, kinds[t], k);
	}
	json_object_set_new(all, "quarantined", json_integer((json_int_t)na_state_quarantined(st)));
	char *s = json_dumps(all, JSON_COMPACT | JSON_SORT_KEYS);
	puts(s);
	free(s);
	json_decref(all);
	return 0;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int bench(size_t n)
{
	na_err_t e = NA_ERR_INIT;
	char(*names)[24] = calloc(n, sizeof(*names));
	const char **np = calloc(n, sizeof(*np));
	json_t **objs = calloc(n, sizeof(*objs));
	for (size_t i = 0; i < n; i++) {
		snprintf(names[i], sizeof(names[i]), "r%zu", i);
		np[i] = names[i];
		objs[i] = json_pack("{s:s, s:s, s:s}", "ip", "198.18.1.2/24", "mac",
				    "02:84:c6:12:01:02", "vtep", "192.0.2.12");
	}
	double t0 = now_s();
	for (size_t i = 0; i < n; i++)
		if (na_state_put(st, "bench/single", np[i], objs[i], &e) < 0)
			die("put", &e);
	double t1 = now_s();
	if (na_state_put_many(st, "bench/batch", np, objs, n, &e) < 0)
		die("put_many", &e);
	double t2 = now_s();
	for (size_t i = 0; i < n; i++)
		if (na_state_del(st, "bench/single", np[i], &e) < 0)
			die("del", &e);
	double t3 = now_s();
	if (na_state_del_many(st, "bench/batch", np, n, &e) < 0)
		die("del_many", &e);
	double t4 = now_s();
	printf("n=%zu put: %.3f s (%.3f ms each)  put_many: %.3f s (%.3f ms/object)  "
	       "del: %.3f s  del_many: %.3f s\n",
	       n, t1 - t0, (t1 - t0) * 1e3 / (double)n, t2 - t1, (t2 - t1) * 1e3 / (double)n,
	       t3 - t2, t4 - t3);
	for (size_t i = 0; i < n; i++)
		json_decref(objs[i]);
	free(objs);
	free(np);
	free(names);
	return 0;
}

int main(int argc, char **argv)
{
	na_err_t e = NA_ERR_INIT;
	if (argc < 3) {
		fprintf(stderr, "usage: state_crash run DIR SEED LOG | dump DIR | bench DIR N\n");
		return 2;
	}
	if (na_state_open(argv[2], &st, &e) < 0)
		die("open", &e);
	if (strcmp(argv[1], "dump") == 0)
		return dump();
	if (strcmp(argv[1], "bench") == 0 && argc == 4)
		return bench((size_t)strtoul(argv[3], NULL, 10));
	if (strcmp(argv[1], "run") != 0 || argc != 5)
		return 2;
	seed = (unsigned)strtoul(argv[3], NULL, 10);
	logfd = open(argv[4], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (logfd < 0)
		die("open log", NULL);
	pthread_t th[2];
	for (long t = 0; t < 2; t++)
		pthread_create(&th[t], NULL, writer, (void *)t);
	pthread_join(th[0], NULL);
	return 0;
}
