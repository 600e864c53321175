/* Integration test of netagent/etcd.c against a real etcd (started by
 * test_etcd.sh). Usage: etcd_test http://127.0.0.1:PORT. Prints TAP. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "netagent/etcd_legacy.h"
#include "netagent/util.h"

static int n_tests, n_failed;
static const char *live;

static void ok(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ok(int cond, const char *fmt, ...)
{
	va_list ap;
	printf("%s %d - ", cond ? "ok" : "not ok", ++n_tests);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	if (!cond)
		n_failed++;
}

static void diag(const char *what, const na_err_t *err)
{
	printf("# %s: %d %s: %s\n", what, err->status, err->code, err->msg);
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* A port on which nothing listens (bound then closed). */
static int dead_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	bind(fd, (struct sockaddr *)&a, sizeof(a));
	getsockname(fd, (struct sockaddr *)&a, &l);
	close(fd);
	return ntohs(a.sin_port);
}

/* A listener that never accepts: connects succeed (kernel backlog), the
 * request goes out, and no answer ever comes back. */
static int silent_server(int *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 16) < 0)
		return -1;
	getsockname(fd, (struct sockaddr *)&a, &l);
	*port = ntohs(a.sin_port);
	return fd;
}

static na_etcdl_t *client(const char *eps)
{
	na_err_t err = NA_ERR_INIT;
	na_etcdl_t *e = na_etcdl_new(eps, &err);
	if (!e) {
		diag("na_etcdl_new", &err);
		exit(2);
	}
	return e;
}

static void test_prefix_end(void)
{
	size_t n;
	char *p;
	p = na_etcdl_prefix_end("abc", 3, &n);
	ok(n == 3 && !memcmp(p, "abd", 3), "prefix_end(abc) = abd");
	free(p);
	p = na_etcdl_prefix_end("a\xff\xff", 3, &n);
	ok(n == 1 && p[0] == 'b', "prefix_end(a\\xff\\xff) = b");
	free(p);
	p = na_etcdl_prefix_end("\xff", 1, &n);
	ok(n == 1 && p[0] == 0, "prefix_end(\\xff) = \\0 (to the end)");
	free(p);
	p = na_etcdl_prefix_end("", 0, &n);
	ok(n == 1 && p[0] == 0, "prefix_end('') = \\0");
	free(p);
}

static void test_kv(na_etcdl_t *e)
{
	na_err_t err = NA_ERR_INIT;
	na_etcdl_kv_t kv;
	na_etcdl_range_t r;
	int64_t rev = 0, rev2 = 0, del = -1;

	int rc = na_etcdl_put(e, "/t/a", "1", 1, 0, &rev, &err);
	rc |= na_etcdl_put(e, "/t/b", "22", 2, 0, NULL, &err);
	rc |= na_etcdl_put(e, "/t/c/d", "333", 3, 0, NULL, &err);
	rc |= na_etcdl_put(e, "/u/x", "x", 1, 0, NULL, &err);
	rc |= na_etcdl_put(e, "/t", "parent", 6, 0, NULL, &err);
	if (rc)
		diag("put", &err);
	ok(rc == 0 && rev > 0, "put returns the revision (%lld)", (long long)rev);

	rc = na_etcdl_get(e, "/t/a", &kv, &rev2, &err);
	ok(rc == 1 && kv.value_len == 1 && !strcmp(kv.value, "1") && !strcmp(kv.key, "/t/a") &&
	       kv.mod_revision == rev && kv.create_revision == rev && kv.version == 1 &&
	       kv.lease == 0 && rev2 >= rev,
	   "get returns value and revisions");
	na_etcdl_kv_clear(&kv);
	ok(na_etcdl_get(e, "/t/nope", &kv, NULL, &err) == 0 && !kv.key, "get of absent key = 0");

	rc = na_etcdl_range(e, "/t/", &r, &err);
	ok(rc == 0 && r.n == 3 && !strcmp(r.items[0].key, "/t/a") &&
	       !strcmp(r.items[1].key, "/t/b") && !strcmp(r.items[2].key, "/t/c/d") &&
	       !strcmp(r.items[2].value, "333") && r.revision >= rev,
	   "range /t/ returns 3 keys sorted, not /t or /u");
	na_etcdl_range_clear(&r);

	rc = na_etcdl_range(e, "/nothing/", &r, &err);
	ok(rc == 0 && r.n == 0 && r.revision > 0, "empty range still carries the revision");
	na_etcdl_range_clear(&r);

	rc = na_etcdl_delete(e, "/t/a", &del, NULL, &err);
	ok(rc == 0 && del == 1, "delete removes one key");
	rc = na_etcdl_delete(e, "/t/a", &del, NULL, &err);
	ok(rc == 0 && del == 0, "delete of absent key deletes 0, no error");
	rc = na_etcdl_delete_prefix(e, "/t/", &del, NULL, &err);
	ok(rc == 0 && del == 2, "delete_prefix /t/ removes 2 keys");
	ok(na_etcdl_get(e, "/t", &kv, NULL, &err) == 1, "delete_prefix /t/ kept /t");
	na_etcdl_kv_clear(&kv);

	/* whole keyspace */
	rc = na_etcdl_range(e, "", &r, &err);
	ok(rc == 0 && r.n == 2, "range '' lists the whole keyspace (%zu)", r.n);
	na_etcdl_range_clear(&r);
	na_etcdl_delete(e, "/t", NULL, NULL, &err);
	na_etcdl_delete(e, "/u/x", NULL, NULL, &err);
}

static void test_binary(na_etcdl_t *e)
{
	na_err_t err = NA_ERR_INIT;
	unsigned char all[256];
	int good = 1;

	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char)(255 - i);
	/* lengths 0..5 cover every base64 padding case */
	for (size_t len = 0; len <= 256; len = len < 5 ? len + 1 : len + 83) {
		na_etcdl_kv_t kv;
		if (na_etcdl_put(e, "/bin/v", all + 256 - len, len, 0, NULL, &err) < 0 ||
		    na_etcdl_get(e, "/bin/v", &kv, NULL, &err) != 1) {
			diag("binary", &err);
			good = 0;
			break;
		}
		if (kv.value_len != len || memcmp(kv.value, all + 256 - len, len) ||
		    kv.value[len] != 0)
			good = 0;
		na_etcdl_kv_clear(&kv);
	}
	ok(good, "binary values (NUL, 0xff, every padding length) round-trip");

	const char raw[] = {'a', 0, 'b', 0, (char)0xff};
	na_etcdl_kv_t kv;
	good = na_etcdl_put(e, "/bin/w", raw, sizeof(raw), 0, NULL, &err) == 0 &&
	       na_etcdl_get(e, "/bin/w", &kv, NULL, &err) == 1 && kv.value_len == sizeof(raw) &&
	       !memcmp(kv.value, raw, sizeof(raw));
	na_etcdl_kv_clear(&kv);
	ok(good, "embedded NUL bytes preserved");
	na_etcdl_delete_prefix(e, "/bin/", NULL, NULL, &err);
}

struct racer {
	na_etcdl_t *e;
	pthread_barrier_t *bar;
	const char *key, *val;
	int rc;
	na_err_t err;
	na_etcdl_kv_t cur;
};

static void *race(void *arg)
{
	struct racer *r = arg;
	pthread_barrier_wait(r->bar);
	r->rc =
	    na_etcdl_put_if_absent(r->e, r->key, r->val, strlen(r->val), 0, &r->cur, NULL, &r->err);
	return NULL;
}

static void test_txn(na_etcdl_t *e)
{
	na_err_t err = NA_ERR_INIT;
	int exactly_one = 1, loser_sees_winner = 1;

	for (int i = 0; i < 20; i++) {
		char key[32];
		pthread_barrier_t bar;
		pthread_t t[2];
		struct racer r[2] = {{.e = e, .bar = &bar, .key = key, .val = "owner-a"},
				     {.e = e, .bar = &bar, .key = key, .val = "owner-b"}};
		snprintf(key, sizeof(key), "/race/%d", i);
		pthread_barrier_init(&bar, NULL, 2);
		for (int k = 0; k < 2; k++)
			pthread_create(&t[k], NULL, race, &r[k]);
		for (int k = 0; k < 2; k++)
			pthread_join(t[k], NULL);
		pthread_barrier_destroy(&bar);
		int wins = (r[0].rc == 0) + (r[1].rc == 0);
		if (wins != 1) {
			exactly_one = 0;
			diag("race", &r[0].err);
			diag("race", &r[1].err);
		} else {
			struct racer *w = r[0].rc == 0 ? &r[0] : &r[1];
			struct racer *l = r[0].rc == 0 ? &r[1] : &r[0];
			na_etcdl_kv_t kv;
			if (l->err.status != 409 || strcmp(l->err.code, "exists") ||
			    strcmp(l->cur.value, w->val) ||
			    na_etcdl_get(e, key, &kv, NULL, &err) != 1 || strcmp(kv.value, w->val))
				loser_sees_winner = 0;
			na_etcdl_kv_clear(&kv);
		}
		na_etcdl_kv_clear(&r[0].cur);
		na_etcdl_kv_clear(&r[1].cur);
	}
	ok(exactly_one, "put_if_absent race: exactly one of two threads wins (20 rounds)");
	ok(loser_sees_winner, "put_if_absent loser gets 409 exists + the winner's value");

	/* compare-and-swap */
	na_etcdl_kv_t kv, cur;
	int64_t rev;
	na_etcdl_put(e, "/cas", "v1", 2, 0, &rev, &err);
	int rc = na_etcdl_cas(e, "/cas", rev - 1, "bad", 3, 0, &cur, NULL, &err);
	ok(rc < 0 && err.status == 409 && !strcmp(err.code, "conflict") &&
	       cur.mod_revision == rev && !strcmp(cur.value, "v1"),
	   "cas with a stale mod_revision: 409 conflict + current");
	na_etcdl_kv_clear(&cur);
	rc = na_etcdl_cas(e, "/cas", rev, "v2", 2, 0, &cur, NULL, &err);
	ok(rc == 0 && na_etcdl_get(e, "/cas", &kv, NULL, &err) == 1 && !strcmp(kv.value, "v2"),
	   "cas with the current mod_revision swaps");
	na_etcdl_kv_clear(&kv);
	rc = na_etcdl_cas(e, "/cas-new", 0, "n", 1, 0, &cur, NULL, &err);
	ok(rc == 0 && !cur.key, "cas with mod_revision 0 creates an absent key");

	/* delete_if_value */
	ok(na_etcdl_delete_if_value(e, "/cas", "v1", 2, &err) == 0 &&
	       na_etcdl_get(e, "/cas", &kv, NULL, &err) == 1,
	   "delete_if_value with another value keeps the key");
	na_etcdl_kv_clear(&kv);
	ok(na_etcdl_delete_if_value(e, "/cas", "v2", 2, &err) == 1 &&
	       na_etcdl_get(e, "/cas", &kv, NULL, &err) == 0,
	   "delete_if_value with the value deletes");
	ok(na_etcdl_delete_if_value(e, "/cas", "v2", 2, &err) == 0,
	   "delete_if_value on an absent key = 0");
	na_etcdl_delete_prefix(e, "/race/", NULL, NULL, &err);
	na_etcdl_delete(e, "/cas-new", NULL, NULL, &err);
}

static void test_lease(na_etcdl_t *e)
{
	na_err_t err = NA_ERR_INIT;
	na_etcdl_kv_t kv;
	int64_t id = 0, ttl = 0;

	int rc = na_etcdl_lease_grant(e, 2, &id, &err);
	ok(rc == 0 && id != 0, "lease grant returns an id (%llx)", (long long)id);
	rc = na_etcdl_put_if_absent(e, "/lease/k", "me", 2, id, NULL, NULL, &err);
	ok(rc == 0 && na_etcdl_get(e, "/lease/k", &kv, NULL, &err) == 1 && kv.lease == id,
	   "put with lease attaches it");
	na_etcdl_kv_clear(&kv);

	/* keepalive keeps the key past its TTL */
	int alive = 1;
	for (int i = 0; i < 8; i++) {
		if (na_etcdl_lease_keepalive(e, id, &ttl, &err) < 0 || ttl < 1) {
			diag("keepalive", &err);
			alive = 0;
		}
		sleep_ms(500);
	}
	ok(alive && na_etcdl_get(e, "/lease/k", &kv, NULL, &err) == 1,
	   "keepalive renews (ttl %lld) and the key survives 4 s on a 2 s lease", (long long)ttl);
	na_etcdl_kv_clear(&kv);

	/* then let it expire */
	unsigned long long t0 = na_now_ms();
	while (na_etcdl_get(e, "/lease/k", &kv, NULL, &err) == 1 && na_now_ms() - t0 < 10000) {
		na_etcdl_kv_clear(&kv);
		sleep_ms(100);
	}
	na_etcdl_kv_clear(&kv);
	unsigned long long took = na_now_ms() - t0;
	ok(took < 10000, "lease expiry removes the key (after %llu ms)", took);
	rc = na_etcdl_lease_keepalive(e, id, &ttl, &err);
	ok(rc < 0 && err.status == 404 && !strcmp(err.code, "lease_not_found"),
	   "keepalive of an expired lease: 404 lease_not_found (%s)", err.msg);

	/* revoke */
	rc = na_etcdl_lease_grant(e, 60, &id, &err);
	rc |= na_etcdl_put(e, "/lease/r", "x", 1, id, NULL, &err);
	rc |= na_etcdl_lease_revoke(e, id, &err);
	ok(rc == 0 && na_etcdl_get(e, "/lease/r", &kv, NULL, &err) == 0,
	   "revoke deletes the lease's keys at once");
	rc = na_etcdl_lease_revoke(e, id, &err);
	ok(rc < 0 && err.status == 404 && !strcmp(err.code, "lease_not_found"),
	   "revoke of a gone lease: 404 lease_not_found");
	rc = na_etcdl_lease_keepalive(e, id, &ttl, &err);
	ok(rc < 0 && err.status == 404, "keepalive of a revoked lease: 404");
	rc = na_etcdl_put(e, "/lease/r", "x", 1, id, NULL, &err);
	ok(rc < 0 && err.status == 404, "put on a gone lease fails with 404 (%s)", err.msg);
}

/* ---- watch ---- */

#define MAX_EV 64
struct rec {
	atomic_int n; /* read by the test thread while the watcher appends */
	int want;
	struct {
		int type;
		char key[64], val[64];
		int64_t rev;
	} ev[MAX_EV];
	atomic_int stop;
	na_etcdl_t *e;
	const char *prefix;
	int64_t start;
	int rc;
	na_err_t err;
	_Atomic unsigned long long ended_ms;
};

static int on_event(const na_etcdl_event_t *ev, void *ud)
{
	struct rec *r = ud;
	int n = atomic_load(&r->n);
	if (n < MAX_EV) {
		r->ev[n].type = ev->type;
		snprintf(r->ev[n].key, 64, "%s", ev->key);
		snprintf(r->ev[n].val, 64, "%.*s", (int)ev->value_len, ev->value);
		r->ev[n].rev = ev->mod_revision;
		atomic_store(&r->n, ++n);
	}
	return r->want && n >= r->want;
}

static void *watcher(void *arg)
{
	struct rec *r = arg;
	r->rc = na_etcdl_watch(r->e, r->prefix, r->start, on_event, r, &r->stop, &r->err);
	r->ended_ms = na_now_ms();
	return NULL;
}

static int check_seq(struct rec *r, int64_t *revs)
{
	static const struct {
		int type;
		const char *key, *val;
	} want[] = {{NA_ETCDL_PUT, "/w/a", "1"},
		    {NA_ETCDL_PUT, "/w/b", "2"},
		    {NA_ETCDL_DELETE, "/w/a", ""},
		    {NA_ETCDL_PUT, "/w/a", "3"}};
	if (r->n != 4)
		return 0;
	for (int i = 0; i < 4; i++)
		if (r->ev[i].type != want[i].type || strcmp(r->ev[i].key, want[i].key) ||
		    strcmp(r->ev[i].val, want[i].val) || r->ev[i].rev != revs[i])
			return 0;
	return 1;
}

static void do_ops(na_etcdl_t *e, int64_t *revs)
{
	na_err_t err = NA_ERR_INIT;
	na_etcdl_put(e, "/w/a", "1", 1, 0, &revs[0], &err);
	na_etcdl_put(e, "/w/b", "2", 1, 0, &revs[1], &err);
	na_etcdl_put(e, "/wx", "outside", 7, 0, NULL, &err);
	na_etcdl_delete(e, "/w/a", NULL, &revs[2], &err);
	na_etcdl_put(e, "/w/a", "3", 1, 0, &revs[3], &err);
}

static void test_watch(na_etcdl_t *e)
{
	na_err_t err = NA_ERR_INIT;
	int64_t revs[4];
	pthread_t t;

	/* history replay from a start revision */
	do_ops(e, revs);
	struct rec *r = calloc(1, sizeof(*r));
	*r = (struct rec){.want = 4, .e = e, .prefix = "/w/", .start = revs[0]};
	pthread_create(&t, NULL, watcher, r);
	pthread_join(t, NULL);
	ok(r->rc == NA_ETCDL_WATCH_STOPPED && check_seq(r, revs),
	   "watch from a start revision replays puts and deletes in order (%d events)", r->n);
	if (r->rc < 0)
		diag("watch", &r->err);

	/* resume: last seen + 1 skips what was seen */
	memset(r, 0, sizeof(*r));
	*r = (struct rec){.want = 2, .e = e, .prefix = "/w/", .start = revs[1] + 1};
	pthread_create(&t, NULL, watcher, r);
	pthread_join(t, NULL);
	ok(r->rc == 0 && r->n == 2 && r->ev[0].rev == revs[2] && r->ev[1].rev == revs[3],
	   "watch resumed from last revision + 1 starts at the next event");

	/* live events, then stop promptly */
	na_etcdl_delete_prefix(e, "/w/", NULL, NULL, &err);
	memset(r, 0, sizeof(*r));
	*r = (struct rec){.e = e, .prefix = "/w/", .start = 0};
	pthread_create(&t, NULL, watcher, r);
	sleep_ms(300);
	do_ops(e, revs);
	for (int i = 0; i < 50 && r->n < 4; i++)
		sleep_ms(50);
	ok(check_seq(r, revs), "live watch sees puts and deletes in order");
	sleep_ms(500);
	unsigned long long t0 = na_now_ms();
	atomic_store(&r->stop, 1);
	pthread_join(t, NULL);
	ok(r->rc == NA_ETCDL_WATCH_STOPPED && r->ended_ms - t0 < 300,
	   "watch returns within %llu ms of the stop flag", r->ended_ms - t0);

	/* compaction */
	int64_t now;
	na_etcdl_put(e, "/w/c", "c", 1, 0, &now, &err);
	int rc = na_etcdl_compact(e, now, &err);
	if (rc < 0)
		diag("compact", &err);
	memset(r, 0, sizeof(*r));
	*r = (struct rec){.e = e, .prefix = "/w/", .start = revs[0]};
	pthread_create(&t, NULL, watcher, r);
	for (int i = 0; i < 40 && !r->ended_ms; i++)
		sleep_ms(50);
	atomic_store(&r->stop, 1);
	pthread_join(t, NULL);
	ok(rc == 0 && r->rc == NA_ETCDL_WATCH_COMPACTED,
	   "watch from a compacted revision reports compaction (rc %d: %s)", r->rc, r->err.msg);

	/* an exact-key watch ignores keys that merely share the prefix */
	memset(r, 0, sizeof(*r));
	*r = (struct rec){.want = 1, .e = e, .start = now + 1};
	na_etcdl_put(e, "/w/ab", "no", 2, 0, NULL, &err);
	na_etcdl_put(e, "/w/a", "yes", 3, 0, NULL, &err);
	r->rc = na_etcdl_watch_key(e, "/w/a", now + 1, on_event, r, &r->stop, &r->err);
	ok(r->rc == 0 && r->n == 1 && !strcmp(r->ev[0].val, "yes"), "watch_key sees only its key");
	free(r);
	na_etcdl_delete_prefix(e, "/w", NULL, NULL, &err);
}

static void test_failures(void)
{
	na_err_t err = NA_ERR_INIT;
	na_etcdl_kv_t kv;
	char eps[256];
	int dead = dead_port(), silent_port = 0;
	int sfd = silent_server(&silent_port);

	/* refused */
	snprintf(eps, sizeof(eps), "http://127.0.0.1:%d", dead);
	na_etcdl_t *e = client(eps);
	unsigned long long t0 = na_now_ms();
	int rc = na_etcdl_get(e, "/x", &kv, NULL, &err);
	ok(rc < 0 && err.status == 503 && !strcmp(err.code, "etcd_unavailable") &&
	       na_now_ms() - t0 < 2500,
	   "refused endpoint: 503 etcd_unavailable in %llu ms", na_now_ms() - t0);
	json_t *snap = json_object();
	na_etcdl_snapshot(e, snap);
	ok(json_is_false(json_object_get(snap, "reachable")) && json_object_get(snap, "last_error"),
	   "snapshot reports unreachable + last_error");
	json_decref(snap);
	struct rec r = {.e = e};
	t0 = na_now_ms();
	rc = na_etcdl_watch(e, "/", 0, on_event, &r, &r.stop, &err);
	ok(rc < 0 && err.status == 503, "watch on a refused endpoint: 503 in %llu ms",
	   na_now_ms() - t0);
	na_etcdl_free(e);

	/* answers never come: the 5 s request timeout applies */
	snprintf(eps, sizeof(eps), "http://127.0.0.1:%d", silent_port);
	e = client(eps);
	t0 = na_now_ms();
	rc = na_etcdl_put(e, "/x", "y", 1, 0, NULL, &err);
	unsigned long long took = na_now_ms() - t0;
	ok(rc < 0 && err.status == 503 && took >= 4500 && took < 6500,
	   "silent endpoint: 503 after the request timeout (%llu ms: %s)", took, err.msg);
	na_etcdl_free(e);

	/* failover: first dead, second alive */
	snprintf(eps, sizeof(eps), "http://127.0.0.1:%d,%s", dead, live);
	e = client(eps);
	rc = na_etcdl_put(e, "/fo", "1", 1, 0, NULL, &err);
	ok(rc == 0 && !strcmp(na_etcdl_endpoint(e), live),
	   "failover: dead first endpoint, put succeeds on the second (%s)", na_etcdl_endpoint(e));
	na_etcdl_free(e);
	e = client(eps);
	na_etcdl_t *writer = client(live);
	struct rec *w = calloc(1, sizeof(*w));
	pthread_t t;
	*w = (struct rec){.e = e, .prefix = "/fo", .want = 1};
	pthread_create(&t, NULL, watcher, w);
	sleep_ms(300);
	na_etcdl_put(writer, "/fo", "2", 1, 0, NULL, &err);
	for (int i = 0; i < 60 && w->n < 1; i++)
		sleep_ms(50);
	atomic_store(&w->stop, 1);
	pthread_join(t, NULL);
	ok(w->rc == 0 && w->n == 1 && !strcmp(w->ev[0].val, "2"),
	   "failover: watch with a dead first endpoint streams from the second");
	free(w);
	na_etcdl_put(writer, "/fo", "1", 1, 0, NULL, &err);
	na_etcdl_free(writer);
	na_etcdl_free(e);

	/* failover past a silent endpoint (shortened timeouts) */
	snprintf(eps, sizeof(eps), "http://127.0.0.1:%d,%s", silent_port, live);
	e = client(eps);
	na_etcdl_set_timeouts(e, 500, 1000);
	t0 = na_now_ms();
	rc = na_etcdl_get(e, "/fo", &kv, NULL, &err);
	ok(rc == 1 && !strcmp(kv.value, "1") && !strcmp(na_etcdl_endpoint(e), live),
	   "failover: a read past a silent endpoint succeeds (%llu ms)", na_now_ms() - t0);
	na_etcdl_kv_clear(&kv);
	na_etcdl_free(e);
	close(sfd);
}

static void test_status(na_etcdl_t *e)
{
	na_err_t err = NA_ERR_INIT;
	na_etcdl_status_t st;
	int rc = na_etcdl_status(e, &st, &err);
	ok(rc == 0 && st.leader != 0 && st.member_id == st.leader && st.revision > 0 &&
	       st.version[0],
	   "status: version %s leader %llx revision %lld", st.version,
	   (unsigned long long)st.leader, (long long)st.revision);
	json_t *snap = json_object();
	na_etcdl_snapshot(e, snap);
	ok(json_is_true(json_object_get(snap, "reachable")), "snapshot reports reachable");
	json_decref(snap);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s http://127.0.0.1:PORT\n", argv[0]);
		return 2;
	}
	live = argv[1];
	na_etcdl_t *e = client(live);
	test_prefix_end();
	test_status(e);
	test_kv(e);
	test_binary(e);
	test_txn(e);
	test_lease(e);
	test_watch(e);
	test_failures();
	na_etcdl_free(e);
	printf("1..%d\n", n_tests);
	return n_failed ? 1 : 0;
}
