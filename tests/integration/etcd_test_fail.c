/* The session under failures, against a 3-member cluster: kill -9 of the
 * member in use, an applied-but-unanswered claim, a member cut from its
 * peers (hasleader), a frozen member (SIGSTOP), the lease keeper through a
 * kill and its at_risk timing; then TLS and closing with work pending. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netagent/util.h"
#include "tests/integration/etcd_test.h"

/* Every URL, a follower first: the member the session starts on is one
 * whose death costs no election (the leader's is a separate matter). */
static const char *follower_first(int *first)
{
	static char list[1024];
	uint64_t ids[8] = {0}, leader = 0;
	na_err_t err = NA_ERR_INIT;
	for (int i = 0; i < nurls; i++) {
		na_etcd_t *e = session(urls[i], NULL, NULL, NULL);
		res_t r = {0};
		wait_res(&r, na_etcd_status(e, NULL, res_cb, &r, &err), &err);
		ids[i] = r.member_id;
		if (r.leader)
			leader = r.leader;
		session_end(e);
	}
	int f = 0;
	while (f < nurls - 1 && ids[f] == leader)
		f++;
	snprintf(list, sizeof(list), "%s", urls[f]);
	for (int i = 0; i < nurls; i++)
		if (i != f)
			snprintf(list + strlen(list), sizeof(list) - strlen(list), ",%s", urls[i]);
	*first = f + 1;
	return list;
}

static void wait_caught_up(na_etcd_watch_t *w, const writer_t *wr)
{
	for (int i = 0; i < 150 && na_etcd_watch_revision(w) < wr->last_rev; i++)
		run_for(100);
}

typedef struct claimer {
	na_etcd_t *e;
	int running, inflight, n, won, ours_after_retry, wrong, failed, retried;
} claimer_t;

static void claim_next(claimer_t *c);

static void on_claimed(void *ud, int rc, const na_err_t *err, const na_etcd_result_t *r)
{
	claimer_t *c = ud;
	size_t n;
	c->inflight = 0;
	if (rc < 0) {
		c->failed++;
		diag("claim failed: %s", err->msg);
	} else if (r->succeeded) {
		c->won++;
	} else {
		const na_etcd_kv_t *kv = na_etcd_result_kvs(r, &n);
		if (n == 1 && !strcmp(kv[0].value, "me") && r->retried)
			c->ours_after_retry++;
		else
			c->wrong++;
	}
	c->retried += rc == 0 && r->retried;
	if (c->running)
		claim_next(c);
}

static void claim_next(claimer_t *c)
{
	char key[64];
	na_err_t err = NA_ERR_INIT;
	snprintf(key, sizeof(key), "/T/fc/%06d", c->n++);
	na_etcd_txn_t *t = na_etcd_txn_new();
	na_etcd_txn_cmp_create(t, key, NA_ETCD_EQUAL, 0);
	na_etcd_txn_put(t, NA_ETCD_THEN, key, "me", 2, 0);
	na_etcd_txn_get(t, NA_ETCD_ELSE, key, 0);
	c->inflight = 1;
	na_etcd_opts_t o = {.user = "vip"};
	if (na_etcd_txn(c->e, t, &o, on_claimed, c, &err) < 0) {
		c->inflight = 0;
		c->failed++;
	}
}

static void fail_kill(void)
{
	int f;
	const char *eps = follower_first(&f);
	na_etcd_t *e = session(eps, NULL, NULL, NULL);
	wcol_t c = {0};
	na_err_t err = NA_ERR_INIT;
	na_etcd_watch_cfg_t wc = {.user = "vxlan", .prefix = 1};
	na_etcd_watch_t *w = na_etcd_watch(e, "/T/f/", &wc, &wcol_ops, &c, &err);
	run_until(&c.ups, 5000);
	writer_t wr = {.e = e, .prefix = "/T/f/", .opts = {.user = "vxlan"}};
	claimer_t cl = {.e = e, .running = 1};
	writer_start(&wr);
	claim_next(&cl);
	run_for(1500);
	int victim = member_of(preferred(e));
	ctl("kill %d", victim);
	run_for(2000);
	writer_stop(&wr);
	cl.running = 0;
	for (int i = 0; i < 100 && cl.inflight; i++)
		run_for(50);
	wait_caught_up(w, &wr);
	ok(victim && wr.okc > 50 && wr.failc == 0 && member_of(preferred(e)) != victim,
	   "kill -9 of the member in use (#%d): %d puts, none failed (slowest %llu ms), session "
	   "moved to #%d %s",
	   victim, wr.okc, wr.max_ms, member_of(preferred(e)), wr.last_err);
	check_sequence("kill -9", &wr, &c);
	ok(cl.failed == 0 && cl.wrong == 0 && cl.won + cl.ours_after_retry == cl.n,
	   "%d claims across the kill: %d won, %d resolved as ours after a retry, none lost "
	   "(%d retried)",
	   cl.n, cl.won, cl.ours_after_retry, cl.retried);
	na_etcd_watch_stop(w);
	session_end(e);
	wcol_free(&c);
	ctl("start %d", victim);
}

/* The claim reaches etcd through the proxy, is applied, and its answer is
 * lost: the retry on the next member fails its compare on our own write. */
static void fail_lost_answer(void)
{
	int f;
	follower_first(&f);
	proxy_t *p = proxy_new(urls[f - 1]);
	char eps[1024];
	snprintf(eps, sizeof(eps), "http://127.0.0.1:%d", proxy_port(p));
	for (int i = 0; i < nurls; i++)
		if (i != f - 1)
			snprintf(eps + strlen(eps), sizeof(eps) - strlen(eps), ",%s", urls[i]);
	na_etcd_t *e = session(eps, NULL, NULL, NULL);
	res_t r = {0}, o = {0};
	na_err_t err = NA_ERR_INIT;
	proxy_drop_next_txn_reply(p);
	na_etcd_txn_t *t = na_etcd_txn_new();
	na_etcd_txn_cmp_create(t, "/T/ic", NA_ETCD_EQUAL, 0);
	na_etcd_txn_put(t, NA_ETCD_THEN, "/T/ic", "me", 2, 0);
	na_etcd_txn_get(t, NA_ETCD_ELSE, "/T/ic", 0);
	wait_res(&r, na_etcd_txn(e, t, NULL, res_cb, &r, &err), &err);
	ok(proxy_dropped(p) == 1 && r.rc == 0 && r.retried && !r.succeeded && r.nkvs == 1 &&
	       !strcmp(res_val(&r), "me"),
	   "interrupted claim: answer lost after etcd applied it; the retry says retried, the "
	   "else-branch read says it is ours (%s)",
	   r.rc < 0 ? r.err.msg : res_val(&r));
	t = na_etcd_txn_new();
	na_etcd_txn_cmp_create(t, "/T/ic", NA_ETCD_EQUAL, 0);
	na_etcd_txn_put(t, NA_ETCD_THEN, "/T/ic", "rival", 5, 0);
	na_etcd_txn_get(t, NA_ETCD_ELSE, "/T/ic", 0);
	wait_res(&o, na_etcd_txn(e, t, NULL, res_cb, &o, &err), &err);
	ok(o.rc == 0 && !o.succeeded && !o.retried && !strcmp(res_val(&o), "me"),
	   "a rival's claim afterwards loses to it");
	session_end(e);
	res_clear(&r), res_clear(&o);
}

/* The member in use is cut from its peers (client port still open): with
 * hasleader it refuses and ends the watch itself; idle_ms is 30 s, so only
 * that can explain a prompt move. */
static void fail_isolated(void)
{
	int f;
	const char *eps = follower_first(&f);
	na_etcd_t *e = session(eps, NULL, NULL, NULL);
	wcol_t c = {0};
	na_err_t err = NA_ERR_INIT;
	na_etcd_watch_cfg_t wc = {.prefix = 1, .idle_ms = 30000};
	na_etcd_watch_t *w = na_etcd_watch(e, "/T/h/", &wc, &wcol_ops, &c, &err);
	run_until(&c.ups, 5000);
	/* until the member notices it lost its leader, a proposal there hangs */
	writer_t wr = {
	    .e = e, .prefix = "/T/h/", .opts = {.deadline_ms = 10000, .attempt_ms = 2000}};
	writer_start(&wr);
	run_for(1000);
	int victim = member_of(preferred(e));
	unsigned long long t0 = na_now_ms();
	ctl("isolate %d", victim);
	for (int i = 0; i < 150 && !c.downs; i++)
		run_for(100);
	unsigned long long dt = c.downs ? c.last_down_ms - t0 : 0;
	run_for(2000);
	writer_stop(&wr);
	wait_caught_up(w, &wr);
	ok(c.downs >= 1 && strstr(c.last_down, "no leader") && dt < 10000,
	   "hasleader: the member cut from its peers (#%d) ended the watch with \"no leader\" "
	   "%llu ms after the cut (%s)",
	   victim, dt, c.last_down);
	ok(member_of(preferred(e)) != victim && c.ups >= 2, "the session moved on to #%d",
	   member_of(preferred(e)));
	ok(wr.failc == 0, "%d puts, none failed (slowest %llu ms) %s", wr.okc, wr.max_ms,
	   wr.last_err);
	check_sequence("isolated member", &wr, &c);
	na_etcd_watch_stop(w);
	session_end(e);
	wcol_free(&c);
	ctl("heal %d", victim);
}

/* A frozen member: the stream goes silent (progress every 1 s normally),
 * the watch gives it up after idle_ms and resumes elsewhere. */
static void fail_frozen(void)
{
	int f;
	const char *eps = follower_first(&f);
	na_etcd_t *e = session(eps, NULL, NULL, NULL);
	wcol_t c = {0};
	na_err_t err = NA_ERR_INIT;
	na_etcd_watch_cfg_t wc = {.prefix = 1, .idle_ms = 2500};
	na_etcd_watch_t *w = na_etcd_watch(e, "/T/s/", &wc, &wcol_ops, &c, &err);
	run_until(&c.ups, 5000);
	writer_t wr = {
	    .e = e, .prefix = "/T/s/", .opts = {.deadline_ms = 8000, .attempt_ms = 1000}};
	writer_start(&wr);
	run_for(1000);
	int victim = member_of(preferred(e));
	unsigned long long t0 = na_now_ms();
	ctl("pause %d", victim);
	for (int i = 0; i < 100 && !c.downs; i++)
		run_for(100);
	unsigned long long dt = c.downs ? c.last_down_ms - t0 : 0;
	run_for(2500);
	writer_stop(&wr);
	wait_caught_up(w, &wr);
	ok(c.downs >= 1 && strstr(c.last_down, "silent") && dt >= 2000 && dt < 5000,
	   "SIGSTOP of the member in use: the silent stream is given up after %llu ms "
	   "(idle_ms 2500)",
	   dt);
	ok(wr.failc == 0 && c.ups >= 2, "%d puts (attempt_ms 1000), none failed (slowest %llu ms)",
	   wr.okc, wr.max_ms);
	check_sequence("frozen member", &wr, &c);
	ctl("resume %d", victim);
	na_etcd_watch_stop(w);
	session_end(e);
	wcol_free(&c);
}

typedef struct keeper {
	int ups, renewals, risks, losts;
	unsigned long long until, risk_ms, risk_until;
} keeper_t;
static void k_up(void *ud, int64_t id)
{
	(void)id;
	((keeper_t *)ud)->ups++;
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
	k->risk_until = k->until;
}
static void k_lost(void *ud, int64_t id)
{
	(void)id;
	((keeper_t *)ud)->losts++;
}
static const na_etcd_lease_ops_t kops = {k_up, k_renewed, k_risk, k_lost};

static void fail_keeper_kill(void)
{
	int f;
	const char *eps = follower_first(&f);
	na_etcd_t *e = session(eps, NULL, NULL, NULL);
	keeper_t k = {0};
	na_err_t err = NA_ERR_INIT;
	na_etcd_lease_cfg_t cfg = {.user = "vip", .ttl_s = 2, .margin_ms = 300};
	na_etcd_lease_t *l = na_etcd_lease_start(e, &cfg, &kops, &k, &err);
	run_for(2000);
	int r0 = k.renewals, victim = member_of(preferred(e));
	ctl("kill %d", victim);
	run_for(3000);
	ok(k.ups == 1 && k.risks == 0 && k.losts == 0 && k.renewals >= r0 + 3,
	   "keeper TTL 2 s, margin 300 ms: kill -9 of its member (#%d), renewed through #%d "
	   "(%d renewals in 3 s), never at risk",
	   victim, member_of(preferred(e)), k.renewals - r0);
	na_etcd_lease_stop(l, 1, NULL, NULL);
	run_for(300);
	session_end(e);
	ctl("start %d", victim);
}

void scenario_failover(void)
{
	fail_kill();
	fail_lost_answer();
	fail_isolated();
	fail_frozen();
	fail_keeper_kill();
}

/* One endpoint only, SIGSTOP it: nothing can renew, at_risk must come at
 * until - margin on the dot while the keepalive hangs. */
void scenario_lease_timing(void)
{
	na_etcd_t *e = session(urls[0], NULL, NULL, NULL);
	na_err_t err = NA_ERR_INIT;
	long worst = -100000, best = 100000;
	int on_time = 0, back = 0, n = 3;
	for (int i = 0; i < n; i++) {
		keeper_t k = {0};
		na_etcd_lease_cfg_t cfg = {.user = "vip", .ttl_s = 2, .margin_ms = 300};
		na_etcd_lease_t *l = na_etcd_lease_start(e, &cfg, &kops, &k, &err);
		run_for(1500 + 200 * i); /* a different phase of the keepalive cycle each time */
		ctl("pause 1");
		for (int j = 0; j < 50 && !k.risks; j++)
			run_for(100);
		long delta = k.risks ? (long)(k.risk_ms - (k.risk_until - 300)) : 99999;
		diag("at_risk %ld ms after until - margin (until was %llu ms after the pause's end "
		     "of proof)",
		     delta, k.risk_until ? k.risk_until - k.risk_ms : 0);
		on_time += k.risks == 1 && delta >= -5 && delta <= 100;
		worst = delta > worst ? delta : worst;
		best = delta < best ? delta : best;
		int r0 = k.renewals, l0 = k.losts;
		ctl("resume 1");
		for (int j = 0; j < 80 && k.renewals == r0 && k.losts == l0; j++)
			run_for(100);
		back += k.renewals > r0 || (k.losts > l0 && k.ups == 2);
		na_etcd_lease_stop(l, 1, NULL, NULL);
		run_for(300);
	}
	ok(on_time == n,
	   "SIGSTOP of the only member: at_risk fired %d/%d times at until - margin "
	   "(%ld..%ld ms off, bound -5..+100)",
	   on_time, n, best, worst);
	ok(back == n, "SIGCONT: renewed again (or lost and re-granted) %d/%d times", back, n);
	session_end(e);
}

void scenario_tls(const char *ca, const char *cert, const char *key, const char *other_ca,
		  const char *other_cert, const char *other_key)
{
	na_err_t err = NA_ERR_INIT;
	res_t r = {0};
	na_etcd_t *e = session(urls[0], ca, cert, key);
	wcol_t c = {0};
	na_etcd_watch_cfg_t wc = {.prefix = 1};
	na_etcd_watch_t *w = na_etcd_watch(e, "/T/tls/", &wc, &wcol_ops, &c, &err);
	run_until(&c.ups, 5000);
	wait_res(&r, na_etcd_put(e, "/T/tls/k", "v", 1, 0, NULL, res_cb, &r, &err), &err);
	for (int i = 0; i < 30 && !c.nev; i++)
		run_for(100);
	ok(r.rc == 0 && c.nev == 1, "https with the client certificate: put and watch work (%s)",
	   r.err.msg);
	na_etcd_watch_stop(w);
	session_end(e);
	struct {
		const char *what, *ca, *cert, *key;
	} bad[] = {
	    {"without a client certificate", ca, NULL, NULL},
	    {"with a client certificate of another CA", ca, other_cert, other_key},
	    {"trusting another CA", other_ca, cert, key},
	};
	for (size_t i = 0; i < NA_ARRAY_SIZE(bad); i++) {
		e = session(urls[0], bad[i].ca, bad[i].cert, bad[i].key);
		res_clear(&r);
		na_etcd_opts_t o = {.deadline_ms = 2000};
		wait_res(&r, na_etcd_get(e, "/T/tls/k", &o, res_cb, &r, &err), &err);
		ok(r.rc < 0 && r.err.status == 503 &&
		       (strstr(r.err.msg, "certificate") || strstr(r.err.msg, "alert")),
		   "https %s: fails with a clear error (%s)", bad[i].what, r.err.msg);
		session_end(e);
	}
	res_clear(&r);
	wcol_free(&c);
}

static void set_flag(void *ud)
{
	(*(int *)ud)++;
}

void scenario_close(void)
{
	na_err_t err = NA_ERR_INIT;
	res_t r[8] = {0};
	wcol_t c = {0};
	keeper_t k = {0};
	/* everything pending before the loop ever ran */
	na_etcd_t *e = session(urls[0], NULL, NULL, NULL);
	for (int i = 0; i < 8; i++)
		na_etcd_get(e, "/T/x", NULL, res_cb, &r[i], &err);
	na_etcd_watch_cfg_t wc = {.prefix = 1};
	na_etcd_watch(e, "/T/", &wc, &wcol_ops, &c, &err);
	na_etcd_lease_cfg_t cfg = {.ttl_s = 5, .margin_ms = 300};
	na_etcd_lease_start(e, &cfg, &kops, &k, &err);
	na_etcd_close(e);
	int once = 0;
	for (int i = 0; i < 8; i++)
		once +=
		    r[i].calls == 1 && r[i].rc < 0 && !strcmp(r[i].err.code, NA_ETCD_ECANCELLED);
	run_for(1000);
	for (int i = 0; i < 8; i++)
		once -= r[i].calls != 1;
	ok(once == 8 && !c.resets && !k.ups,
	   "close with 8 calls pending: each called back once with \"cancelled\"; the watch and "
	   "keeper never called");

	/* and in full flight: streaming watch, live keeper, a revoke under way */
	e = session(urls[0], NULL, NULL, NULL);
	memset(&c, 0, sizeof(c));
	memset(&k, 0, sizeof(k));
	na_etcd_watch(e, "/T/", &wc, &wcol_ops, &c, &err);
	na_etcd_lease_t *l = na_etcd_lease_start(e, &cfg, &kops, &k, &err);
	keeper_t k2 = {0};
	na_etcd_lease_t *l2 = na_etcd_lease_start(e, &cfg, &kops, &k2, &err);
	run_until(&k2.ups, 5000);
	run_until(&c.ups, 5000);
	res_t p[4] = {0};
	for (int i = 0; i < 4; i++)
		na_etcd_put(e, "/T/x", "v", 1, 0, NULL, res_cb, &p[i], &err);
	int done = 0;
	na_etcd_lease_stop(l2, 1, set_flag, &done);
	int ups = k.ups, resets = c.resets;
	na_etcd_close(e);
	res_t late = {0};
	int q = na_etcd_get(e, "/T/x", NULL, res_cb, &late, &err);
	ok(q < 0 && !strcmp(err.code, NA_ETCD_ECANCELLED) && !late.calls,
	   "a call after close is refused (cb will not run)");
	run_for(1000);
	int cancelled = 0;
	for (int i = 0; i < 4; i++)
		cancelled += p[i].calls == 1;
	ok(cancelled == 4 && done == 1 && k.ups == ups && c.resets == resets && !c.nev,
	   "close in flight: pending puts called back once, the pending revoke's done() once, "
	   "nothing else");
	(void)l;
	ok(!uv_loop_alive(loop), "every handle of the session is closed afterwards");
	wcol_free(&c);
	for (int i = 0; i < 8; i++)
		res_clear(&r[i]);
}
