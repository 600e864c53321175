/* The "basic" scenario of etcd_test (one member): kv, txn builder, leases,
 * the lease keeper, watches (prefix, key, resync, progress), a 5,000-key
 * reset, cancellation, unreachable and silent endpoints, per-user info;
 * and "compaction" (three members): a watch resumed past a compaction. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "netagent/util.h"
#include "tests/integration/etcd_test.h"

#define OPT(u) (&(na_etcd_opts_t){.user = (u)})

static res_t *put(na_etcd_t *e, const char *k, const char *v, int64_t lease)
{
	static res_t r;
	na_err_t err = NA_ERR_INIT;
	res_clear(&r);
	return wait_res(&r, na_etcd_put(e, k, v, strlen(v), lease, NULL, res_cb, &r, &err), &err);
}

static res_t *get(na_etcd_t *e, const char *k)
{
	static res_t r;
	na_err_t err = NA_ERR_INIT;
	res_clear(&r);
	return wait_res(&r, na_etcd_get(e, k, OPT("vip"), res_cb, &r, &err), &err);
}

/* A claim: put-if-absent, the else branch reads the holder. */
static res_t *claim(na_etcd_t *e, const char *k, const char *me, res_t *r)
{
	na_err_t err = NA_ERR_INIT;
	na_etcd_txn_t *t = na_etcd_txn_new();
	na_etcd_txn_cmp_create(t, k, NA_ETCD_EQUAL, 0);
	na_etcd_txn_put(t, NA_ETCD_THEN, k, me, strlen(me), 0);
	na_etcd_txn_get(t, NA_ETCD_ELSE, k, 0);
	res_clear(r);
	return wait_res(r, na_etcd_txn(e, t, OPT("vip"), res_cb, r, &err), &err);
}

static void basic_kv(na_etcd_t *e)
{
	res_t r = {0}, *p;
	na_err_t err = NA_ERR_INIT;

	wait_res(&r, na_etcd_status(e, NULL, res_cb, &r, &err), &err);
	ok(r.rc == 0 && !strncmp(r.version, "3.4", 3) && r.member_id && r.leader,
	   "status: version %s, member %llx, leader %llx (%s)", r.version,
	   (unsigned long long)r.member_id, (unsigned long long)r.leader, r.err.msg);
	ok(put(e, "/T/kv/a", "1", 0)->rc == 0, "put");
	p = get(e, "/T/kv/a");
	ok(p->rc == 0 && p->nkvs == 1 && !strcmp(res_val(p), "1") && p->kvs[0].version == 1,
	   "get returns the value, version 1");
	const char bin[] = {'x', 0, (char)0xff, 'y'};
	res_clear(&r);
	wait_res(&r, na_etcd_put(e, "/T/kv/bin", bin, sizeof(bin), 0, NULL, res_cb, &r, &err),
		 &err);
	p = get(e, "/T/kv/bin");
	ok(p->nkvs == 1 && p->kvs[0].value_len == 4 && !memcmp(p->kvs[0].value, bin, 4),
	   "binary value round trip (NUL and 0xff bytes)");
	p = get(e, "/T/kv/none");
	ok(p->rc == 0 && p->nkvs == 0 && p->revision > 0, "get of an absent key: no kv, revision");
	put(e, "/T/kv/c", "3", 0);
	put(e, "/T/kvx", "not under the prefix", 0);
	res_clear(&r);
	wait_res(&r, na_etcd_range(e, "/T/kv/", NULL, res_cb, &r, &err), &err);
	ok(r.rc == 0 && r.nkvs == 3 && !strcmp(r.kvs[0].key, "/T/kv/a") &&
	       !strcmp(r.kvs[2].key, "/T/kv/c"),
	   "range of a prefix: 3 keys sorted, /T/kvx not included (got %zu)", r.nkvs);
	res_clear(&r);
	wait_res(&r, na_etcd_delete(e, "/T/kv/a", NULL, res_cb, &r, &err), &err);
	ok(r.rc == 0 && r.deleted == 1, "delete: 1 key");
	res_clear(&r);
	wait_res(&r, na_etcd_delete(e, "/T/kv/a", NULL, res_cb, &r, &err), &err);
	ok(r.rc == 0 && r.deleted == 0, "delete again: 0 keys, not an error");
	res_clear(&r);
	wait_res(&r, na_etcd_delete_prefix(e, "/T/kv/", NULL, res_cb, &r, &err), &err);
	ok(r.rc == 0 && r.deleted == 2 && get(e, "/T/kvx")->nkvs == 1,
	   "delete_prefix: 2 keys, the neighbour stays");
	res_clear(&r);
}

static void basic_txn(na_etcd_t *e)
{
	res_t a = {0}, b = {0}, r = {0};
	na_err_t err = NA_ERR_INIT;
	claim(e, "/T/claim", "A", &a);
	ok(a.rc == 0 && a.succeeded && !a.retried, "claim put-if-absent: the first one wins");
	claim(e, "/T/claim", "B", &b);
	ok(b.rc == 0 && !b.succeeded && b.nkvs == 1 && !strcmp(res_val(&b), "A"),
	   "the second loses, its else-get names the owner '%s'", res_val(&b));
	int64_t mod = b.nkvs ? b.kvs[0].mod_revision : 0;
	na_etcd_txn_t *t = na_etcd_txn_new();
	na_etcd_txn_cmp_value(t, "/T/claim", NA_ETCD_EQUAL, "A", 1);
	na_etcd_txn_cmp_version(t, "/T/claim", NA_ETCD_EQUAL, 1);
	na_etcd_txn_cmp_mod(t, "/T/claim", NA_ETCD_EQUAL, mod);
	na_etcd_txn_cmp_lease(t, "/T/claim", NA_ETCD_EQUAL, 0);
	na_etcd_txn_put(t, NA_ETCD_THEN, "/T/claim", "A2", 2, 0);
	na_etcd_txn_delete(t, NA_ETCD_THEN, "/T/kvx", 0);
	wait_res(&r, na_etcd_txn(e, t, NULL, res_cb, &r, &err), &err);
	ok(r.rc == 0 && r.succeeded && r.nresps == 2 && r.deleted == 1,
	   "compares on value, version, mod_revision, lease hold; then put + delete ran");
	res_clear(&r);
	t = na_etcd_txn_new();
	na_etcd_txn_cmp_mod(t, "/T/claim", NA_ETCD_LESS, mod);
	na_etcd_txn_put(t, NA_ETCD_THEN, "/T/claim", "no", 2, 0);
	na_etcd_txn_get(t, NA_ETCD_ELSE, "/T/", 1);
	wait_res(&r, na_etcd_txn(e, t, NULL, res_cb, &r, &err), &err);
	ok(r.rc == 0 && !r.succeeded && r.nkvs >= 1 && get(e, "/T/claim")->nkvs == 1 &&
	       !strcmp(res_val(get(e, "/T/claim")), "A2"),
	   "a failed compare runs the else branch (prefix get), then nothing changed");
	res_clear(&a), res_clear(&b), res_clear(&r);
}

static void basic_leases(na_etcd_t *e)
{
	res_t g = {0}, r = {0};
	na_err_t err = NA_ERR_INIT;
	wait_res(&g, na_etcd_lease_grant(e, 5, NULL, res_cb, &g, &err), &err);
	ok(g.rc == 0 && g.lease_id && g.ttl == 5, "lease grant: id %llx, TTL %lld",
	   (unsigned long long)g.lease_id, (long long)g.ttl);
	ok(put(e, "/T/l/k", "v", g.lease_id)->rc == 0 &&
	       get(e, "/T/l/k")->kvs[0].lease == g.lease_id,
	   "put with the lease");
	wait_res(&r, na_etcd_lease_keepalive(e, g.lease_id, NULL, res_cb, &r, &err), &err);
	ok(r.rc == 0 && r.ttl == 5, "keepalive: TTL %lld", (long long)r.ttl);
	res_clear(&r);
	wait_res(&r, na_etcd_lease_revoke(e, g.lease_id, NULL, res_cb, &r, &err), &err);
	ok(r.rc == 0 && get(e, "/T/l/k")->nkvs == 0, "revoke: its key is gone");
	res_clear(&r);
	wait_res(&r, na_etcd_lease_keepalive(e, g.lease_id, NULL, res_cb, &r, &err), &err);
	ok(r.rc < 0 && r.err.status == 404 && !strcmp(r.err.code, NA_ETCD_ELEASE),
	   "keepalive of the revoked lease (TTL absent): 404 lease_not_found (%s)", r.err.msg);
	res_t *p = put(e, "/T/l/k2", "v", g.lease_id);
	ok(p->rc < 0 && p->err.status == 404, "put with a dead lease: 404 (%s)", p->err.msg);
	res_clear(&r);
	wait_res(&r, na_etcd_lease_revoke(e, g.lease_id, NULL, res_cb, &r, &err), &err);
	ok(r.rc == 0, "revoking an unknown lease is success");
	res_clear(&g), res_clear(&r);
}

typedef struct keeper {
	int ups, renewals, risks, losts;
	int64_t id, lost_id;
	unsigned long long until, risk_ms;
} keeper_t;

static void k_up(void *ud, int64_t id)
{
	keeper_t *k = ud;
	k->ups++;
	k->id = id;
}
static void k_renewed(void *ud, int64_t id, unsigned long long until)
{
	keeper_t *k = ud;
	(void)id;
	k->renewals++;
	k->until = until;
}
static void k_risk(void *ud, int64_t id)
{
	keeper_t *k = ud;
	(void)id;
	k->risks++;
	k->risk_ms = na_now_ms();
}
static void k_lost(void *ud, int64_t id)
{
	keeper_t *k = ud;
	k->losts++;
	k->lost_id = id;
}
static const na_etcd_lease_ops_t keeper_ops = {k_up, k_renewed, k_risk, k_lost};

static void set_flag(void *ud)
{
	*(int *)ud = 1;
}

static void basic_keeper(na_etcd_t *e)
{
	keeper_t k = {0}, k2 = {0}, k3 = {0};
	na_err_t err = NA_ERR_INIT;
	na_etcd_lease_cfg_t cfg = {.user = "vip", .ttl_s = 3, .margin_ms = 300};
	na_etcd_lease_t *l = na_etcd_lease_start(e, &cfg, &keeper_ops, &k, &err);
	run_until(&k.ups, 5000);
	int64_t first = k.id;
	ok(l && k.ups == 1 && first && na_etcd_lease_id(l) == first && na_etcd_lease_ttl(l) == 3 &&
	       na_etcd_lease_until(l) > na_now_ms(),
	   "keeper: up with a lease, TTL 3, proven into the future");
	put(e, "/T/k/key", "v", first);
	int r0 = k.renewals;
	run_for(2600);
	ok(k.renewals >= r0 + 2 && !k.risks, "keeper renews every ttl/3 (%d renewals in 2.6 s)",
	   k.renewals - r0);
	/* etcd drops the lease behind its back: the next keepalive has no TTL */
	res_t r = {0};
	wait_res(&r, na_etcd_lease_revoke(e, first, NULL, res_cb, &r, &err), &err);
	for (int i = 0; i < 40 && k.ups < 2; i++)
		run_for(100);
	ok(k.losts == 1 && k.lost_id == first && k.ups == 2 && k.id != first && k.id,
	   "lease revoked outside: lost(old) then up(new %llx)", (unsigned long long)k.id);
	ok(get(e, "/T/k/key")->nkvs == 0, "the lost lease's key went with it");
	int64_t second = k.id;
	na_etcd_lease_stop(l, 0, NULL, NULL);
	run_for(100);
	cfg.adopt_id = second;
	l = na_etcd_lease_start(e, &cfg, &keeper_ops, &k2, &err);
	run_until(&k2.ups, 5000);
	ok(k2.ups == 1 && k2.id == second && k2.renewals >= 1,
	   "a new keeper adopts the previous run's lease");
	int stopped = 0;
	na_etcd_lease_stop(l, 1, set_flag, &stopped);
	run_until(&stopped, 5000);
	res_clear(&r);
	wait_res(&r, na_etcd_lease_keepalive(e, second, NULL, res_cb, &r, &err), &err);
	ok(stopped && r.err.status == 404, "stop with revoke: done() ran, the lease is gone");
	cfg.adopt_id = second;
	l = na_etcd_lease_start(e, &cfg, &keeper_ops, &k3, &err);
	run_until(&k3.ups, 5000);
	ok(k3.ups == 1 && k3.id && k3.id != second && !k3.losts,
	   "adopting a lease etcd no longer has grants a new one");
	na_etcd_lease_stop(l, 1, NULL, NULL);
	run_for(300);
	res_clear(&r);
}

static void basic_watch(na_etcd_t *e, na_etcd_t *other)
{
	wcol_t c = {0}, one = {0};
	na_err_t err = NA_ERR_INIT;
	put(e, "/T/w/a", "1", 0);
	put(e, "/T/w/b", "2", 0);
	na_etcd_watch_cfg_t pc = {.user = "vxlan", .prefix = 1};
	na_etcd_watch_t *w = na_etcd_watch(e, "/T/w/", &pc, &wcol_ops, &c, &err);
	na_etcd_watch_cfg_t kc = {.user = "vip"};
	na_etcd_watch_t *w1 = na_etcd_watch(e, "/T/w/b", &kc, &wcol_ops, &one, &err);
	run_until(&c.ups, 5000);
	run_until(&one.ups, 5000);
	ok(c.resets == 1 && c.reset_n == 2 && !strcmp(c.reset_first, "/T/w/a") && c.ups == 1 &&
	       na_etcd_watch_revision(w) == c.reset_rev,
	   "prefix watch: reset with the 2 keys, then streaming");
	ok(one.resets == 1 && one.reset_n == 1, "single-key watch: reset with its one key");
	put(other, "/T/w/c", "3", 0);
	put(other, "/T/w/b", "22", 0);
	put(other, "/T/wx", "outside", 0);
	res_t r = {0};
	wait_res(&r, na_etcd_delete(other, "/T/w/a", NULL, res_cb, &r, &err), &err);
	for (int i = 0; i < 50 && (c.nev < 3 || na_etcd_watch_revision(w) < r.revision); i++)
		run_for(100);
	ok(c.nev == 3 && !strcmp(c.ev[0].key, "/T/w/c") && !c.ev[0].del &&
	       !strcmp(c.ev[1].value, "22") && c.ev[2].del && !strcmp(c.ev[2].key, "/T/w/a") &&
	       c.ev[0].rev < c.ev[1].rev && c.ev[1].rev < c.ev[2].rev &&
	       na_etcd_watch_revision(w) == r.revision,
	   "events in order: PUT c, PUT b=22, DELETE a; nothing from /T/wx (%zu events)", c.nev);
	ok(one.nev == 1 && !strcmp(one.ev[0].value, "22"),
	   "single-key watch: only its key's event");
	/* resync: a full range now, as the periodic backstop does */
	na_etcd_watch_resync(w);
	for (int i = 0; i < 50 && c.resets < 2; i++)
		run_for(100);
	put(other, "/T/w/d", "4", 0);
	for (int i = 0; i < 50 && c.nev < 4; i++)
		run_for(100);
	ok(c.resets == 2 && c.reset_n == 2 && c.nev == 4 && !strcmp(c.ev[3].key, "/T/w/d"),
	   "resync: reset with b and c, then events go on");
	na_etcd_watch_stop(w);
	na_etcd_watch_stop(w1);
	size_t before = c.nev;
	put(other, "/T/w/e", "5", 0);
	run_for(300);
	ok(c.nev == before, "no callback after na_etcd_watch_stop");
	wcol_free(&c), wcol_free(&one), res_clear(&r);
}

/* etcd started with --experimental-watch-progress-notify-interval=1s: a
 * watch that sees no events still learns the revision moved on. */
static void basic_progress(na_etcd_t *e, na_etcd_t *other)
{
	wcol_t c = {0};
	na_err_t err = NA_ERR_INIT;
	na_etcd_watch_cfg_t pc = {.prefix = 1, .idle_ms = 5000};
	na_etcd_watch_t *w = na_etcd_watch(e, "/T/quiet/", &pc, &wcol_ops, &c, &err);
	run_until(&c.ups, 5000);
	int64_t r0 = na_etcd_watch_revision(w);
	res_t *p = NULL;
	for (int i = 0; i < 3; i++)
		p = put(other, "/T/noise", "x", 0);
	int64_t target = p->revision;
	unsigned long long t0 = na_now_ms();
	for (int i = 0; i < 40 && na_etcd_watch_revision(w) < target; i++)
		run_for(100);
	ok(c.nev == 0 && na_etcd_watch_revision(w) >= target && c.resets == 1 && c.downs == 0,
	   "progress notifications advance the watch revision %lld -> %lld with no event "
	   "(after %llu ms)",
	   (long long)r0, (long long)na_etcd_watch_revision(w), na_now_ms() - t0);
	/* 3 idle periods of 5 s would restart it if progress did not count */
	na_etcd_watch_stop(w);
	wcol_free(&c);

	/* Silent for longer than idle_ms (600 ms, progress every 1 s): each
	 * time a read at the member answers, and the stream stays. */
	wcol_t q = {0};
	na_etcd_watch_cfg_t qc = {.prefix = 1, .idle_ms = 600};
	w = na_etcd_watch(e, "/T/quiet2/", &qc, &wcol_ops, &q, &err);
	run_until(&q.ups, 5000);
	run_for(4000);
	put(other, "/T/quiet2/k", "v", 0);
	for (int i = 0; i < 20 && q.nev < 1; i++)
		run_for(100);
	ok(q.ups == 1 && q.downs == 0 && q.resets == 1 && q.nev == 1,
	   "a stream silent past idle_ms whose member answers a read stays up (4 s at idle_ms "
	   "600: %d up, %d down), and its next event arrives",
	   q.ups, q.downs);
	na_etcd_watch_stop(w);
	wcol_free(&q);
}

/* 5,000 keys of ~250 bytes: the reset a vxlan learner gets at start. */
static void basic_big(na_etcd_t *e)
{
	char key[64], val[256];
	na_err_t err = NA_ERR_INIT;
	memset(val, 'v', sizeof(val) - 1);
	val[sizeof(val) - 1] = 0;
	int bad = 0;
	for (int b = 0; b < 50; b++) {
		na_etcd_txn_t *t = na_etcd_txn_new();
		for (int i = 0; i < 100; i++) {
			snprintf(key, sizeof(key), "/T/big/ep%05d", b * 100 + i);
			na_etcd_txn_put(t, NA_ETCD_THEN, key, val, strlen(val), 0);
		}
		res_t r = {0};
		wait_res(&r, na_etcd_txn(e, t, NULL, res_cb, &r, &err), &err);
		bad += r.rc < 0;
		res_clear(&r);
	}
	wcol_t c = {0};
	na_etcd_watch_cfg_t pc = {.prefix = 1};
	unsigned long long t0 = na_now_ms();
	na_etcd_watch_t *w = na_etcd_watch(e, "/T/big/", &pc, &wcol_ops, &c, &err);
	run_until(&c.resets, 20000);
	unsigned long long dt = na_now_ms() - t0;
	ok(!bad && c.reset_n == 5000,
	   "a watch over 5,000 keys (~1.5 MB JSON) resets with all of them");
	diag("5,000-key reset: %llu ms from na_etcd_watch to reset() (range, transfer, parse)", dt);
	na_etcd_watch_stop(w);
	wcol_free(&c);
	res_t r = {0};
	wait_res(&r, na_etcd_delete_prefix(e, "/T/big/", NULL, res_cb, &r, &err), &err);
}

/* Compaction under a watch (3 members): the watch's only member is killed,
 * history is written and compacted through the others, the member comes
 * back (it serves clients only once it applied the log, compaction
 * included): resuming from the last revision + 1 is refused as compacted,
 * and the watch resets with the current keys. */
void scenario_compaction(void)
{
	wcol_t c = {0};
	na_err_t err = NA_ERR_INIT;
	na_etcd_t *solo = session(urls[0], NULL, NULL, NULL);
	char rest[1024] = "";
	for (int i = 1; i < nurls; i++)
		snprintf(rest + strlen(rest), sizeof(rest) - strlen(rest), "%s%s", i > 1 ? "," : "",
			 urls[i]);
	/* writes and compaction through the members that stay up */
	na_etcd_t *other = session(rest, NULL, NULL, NULL);
	res_t r = {0};
	wait_res(&r, na_etcd_delete_prefix(other, "/T/c/", NULL, res_cb, &r, &err), &err);
	put(other, "/T/c/a", "1", 0);
	na_etcd_watch_cfg_t pc = {.prefix = 1};
	na_etcd_watch_t *w = na_etcd_watch(solo, "/T/c/", &pc, &wcol_ops, &c, &err);
	run_until(&c.ups, 5000);
	int64_t seen = na_etcd_watch_revision(w);
	ctl("kill 1");
	res_t *p = NULL;
	for (int i = 0; i < 3; i++)
		p = put(other, "/T/c/b", "2", 0);
	int64_t upto = p->revision;
	res_clear(&r);
	wait_res(&r, na_etcd_compact(other, upto, NULL, res_cb, &r, &err), &err);
	ok(r.rc == 0 && upto > seen + 1,
	   "compaction to revision %lld while the watch (at %lld) is cut off (%s)", (long long)upto,
	   (long long)seen, r.err.msg);
	ctl("start 1");
	for (int i = 0; i < 150 && c.resets < 2; i++)
		run_for(100);
	ok(c.resets == 2 && c.reset_n == 2 && c.reset_rev >= upto && c.nev == 0 && c.downs >= 1,
	   "resuming from a compacted revision resets the watch with the current keys "
	   "(resets %d, keys %zu at rev %lld, events %zu)",
	   c.resets, c.reset_n, (long long)c.reset_rev, c.nev);
	put(other, "/T/c/c", "3", 0);
	for (int i = 0; i < 50 && c.nev < 1; i++)
		run_for(100);
	ok(c.nev == 1 && !strcmp(c.ev[0].key, "/T/c/c"), "and streams on after the reset");
	na_etcd_watch_stop(w);
	session_end(solo);
	session_end(other);
	wcol_free(&c);
	res_clear(&r);
}

static void basic_cancel(na_etcd_t *e)
{
	res_t keep[3] = {0}, gone[3] = {0};
	na_err_t err = NA_ERR_INIT;
	for (int i = 0; i < 3; i++) {
		na_etcd_get(e, "/T/claim", NULL, res_cb, &keep[i], &err);
		na_etcd_get(e, "/T/claim", NULL, res_cb, &gone[i], &err);
	}
	for (int i = 0; i < 3; i++)
		na_etcd_cancel(e, &gone[i]);
	run_for(1000);
	int kept = 0, cancelled = 0;
	for (int i = 0; i < 3; i++) {
		kept += keep[i].calls == 1 && keep[i].rc == 0;
		cancelled += gone[i].calls;
		res_clear(&keep[i]);
	}
	ok(kept == 3 && cancelled == 0,
	   "na_etcd_cancel(ud): those calls never call back, others do");
}

/* Unreachable and silent endpoints; per-user reachability. */
static void basic_endpoints(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	int dead = socket(AF_INET, SOCK_STREAM, 0), silent = socket(AF_INET, SOCK_STREAM, 0);
	bind(dead, (struct sockaddr *)&a, sizeof(a));
	getsockname(dead, (struct sockaddr *)&a, &l);
	int dead_port = ntohs(a.sin_port);
	close(dead); /* nothing listens there now */
	a.sin_port = 0;
	bind(silent, (struct sockaddr *)&a, sizeof(a));
	listen(silent, 16); /* connects succeed, nobody ever answers */
	getsockname(silent, (struct sockaddr *)&a, &l);
	int silent_port = ntohs(a.sin_port);
	char eps[512];
	na_err_t err = NA_ERR_INIT;

	snprintf(eps, sizeof(eps), "http://127.0.0.1:%d,%s", dead_port, urls[0]);
	na_etcd_t *e = session(eps, NULL, NULL, NULL);
	res_t r = {0};
	unsigned long long t0 = na_now_ms();
	wait_res(&r, na_etcd_put(e, "/T/ep", "1", 1, 0, OPT("vxlan"), res_cb, &r, &err), &err);
	ok(r.rc == 0 && !strcmp(preferred(e), urls[0]) && r.at_ms - t0 < 1000,
	   "a refused endpoint: the call moves on at once (%llu ms)", r.at_ms - t0);
	cleanup_json json_t *info = json_object();
	na_etcd_info(e, info);
	json_t *ep0 = json_array_get(json_object_get(info, "endpoints"), 0);
	json_t *ep1 = json_array_get(json_object_get(info, "endpoints"), 1);
	ok(!json_is_true(json_object_get(ep0, "healthy")) && json_object_get(ep0, "last_error") &&
	       json_is_true(json_object_get(ep1, "healthy")),
	   "info: the dead endpoint is unhealthy with its error, the other healthy");
	session_end(e);

	snprintf(eps, sizeof(eps), "http://127.0.0.1:%d,%s", silent_port, urls[0]);
	e = session(eps, NULL, NULL, NULL);
	res_clear(&r);
	t0 = na_now_ms();
	na_etcd_opts_t o = {.user = "vip", .deadline_ms = 3000, .attempt_ms = 300};
	wait_res(&r, na_etcd_put(e, "/T/ep", "2", 1, 0, &o, res_cb, &r, &err), &err);
	ok(r.rc == 0 && r.at_ms - t0 >= 290 && r.at_ms - t0 < 1500,
	   "a silent endpoint costs one attempt_ms (300), then the next answers (%llu ms)",
	   r.at_ms - t0);
	session_end(e);

	snprintf(eps, sizeof(eps), "http://127.0.0.1:%d,http://127.0.0.1:%d", dead_port,
		 silent_port);
	e = session(eps, NULL, NULL, NULL);
	res_clear(&r);
	t0 = na_now_ms();
	o.deadline_ms = 1000;
	wait_res(&r, na_etcd_get(e, "/T/ep", &o, res_cb, &r, &err), &err);
	unsigned long long dt = r.at_ms - t0;
	ok(r.rc < 0 && r.err.status == 503 && !strcmp(r.err.code, NA_ETCD_EUNAVAILABLE) &&
	       dt >= 990 && dt < 1300,
	   "no endpoint answers: 503 etcd_unavailable at the deadline (%llu ms: %s)", dt,
	   r.err.msg);
	res_t v = {0};
	/* a second user failing too; short, or it waits out the default 5 s */
	na_etcd_opts_t vo = {.user = "vxlan", .deadline_ms = 300};
	wait_res(&v, na_etcd_get(e, "/T/ep", &vo, res_cb, &v, &err), &err);
	json_decref(info);
	info = json_object();
	na_etcd_info(e, info);
	json_t *users = json_object_get(info, "users");
	json_t *vip = json_object_get(users, "vip");
	ok(json_is_false(json_object_get(json_object_get(users, "vip"), "reachable")) &&
	       json_object_get(vip, "last_error") &&
	       json_integer_value(json_object_get(vip, "failures")) == 1 &&
	       json_object_get(users, "vxlan") && json_is_false(json_object_get(info, "reachable")),
	   "info: per-user reachability, calls, failures and last error");
	session_end(e);
	close(silent);
	res_clear(&r), res_clear(&v);
}

void scenario_basic(void)
{
	na_etcd_t *e = session(urls[0], NULL, NULL, NULL);
	char all[1024] = "";
	for (int i = 0; i < nurls; i++)
		snprintf(all + strlen(all), sizeof(all) - strlen(all), "%s%s", i ? "," : "",
			 urls[i]);
	na_etcd_t *other = session(all, NULL, NULL, NULL);
	res_t r = {0};
	na_err_t err = NA_ERR_INIT;
	wait_res(&r, na_etcd_delete_prefix(e, "/T/", NULL, res_cb, &r, &err), &err);
	basic_kv(e);
	basic_txn(e);
	basic_leases(e);
	basic_keeper(e);
	basic_watch(e, other);
	basic_progress(e, other);
	basic_big(other);
	basic_cancel(e);
	basic_endpoints();
	session_end(e);
	session_end(other);
	res_clear(&r);
}
