/* Lease keeper. The proof it gives its owner: a keepalive (or grant) SENT
 * at s and answered with TTL T shows the lease lives until at least s + T
 * (etcd restarts the TTL when it handles the request, which is after s;
 * leader changes and restarts only lengthen leases). "until" is the best
 * such proof; the keeper never extends it on hope.
 *
 * Timing: a keepalive goes out every interval. Its deadline is clipped to
 * until - margin, and each attempt to interval / 2, so a frozen member
 * costs one attempt and the next member is asked in time. Independently, a
 * uv timer armed at until - margin fires at_risk then, on time, whatever a
 * keepalive in flight is doing: the owner fences on it. A later success
 * gives renewed() again; etcd answering "no such lease" gives lost() and a
 * new grant. */
#include <stdio.h>
#include <string.h>

#include "netagent/etcd_int.h"
#include "netagent/log.h"
#include "netagent/util.h"

#define RETRY_MS 100 /* after a failed keepalive round, ask again this soon */

enum lstate { L_ADOPT, L_GRANT, L_KEEP, L_STOPPING };

struct na_etcd_lease {
	na_etcd_t *e;
	struct na_etcd_lease *prev, *next;
	na_etcd_lease_cfg_t cfg;
	na_etcd_lease_ops_t ops;
	void *ud;
	enum lstate st;
	int64_t id, ttl;
	unsigned long long until, sent;
	int at_risk, out, stopped, dead, done_pending;
	uv_timer_t tick, risk;
	int open; /* handles not closed yet */
	void (*done)(void *ud);
	void *done_ud;
};
typedef struct na_etcd_lease lease_t;

static void send_next(lease_t *l);
static void release(lease_t *l);

static void on_tick(uv_timer_t *t)
{
	lease_t *l = t->data;
	if (l->dead)
		return;
	if (l->st == L_STOPPING) {
		/* the deferred done() of a stop without revoke */
		if (l->done_pending) {
			l->done_pending = 0;
			if (l->done)
				l->done(l->done_ud);
			release(l);
		}
		return;
	}
	if (!l->stopped)
		send_next(l);
}

static void tick_in(lease_t *l, long ms)
{
	uv_timer_start(&l->tick, on_tick, (uint64_t)(ms > 0 ? ms : 0), 0);
}

static long interval(const lease_t *l)
{
	if (l->cfg.interval_ms > 0)
		return l->cfg.interval_ms;
	int64_t ttl = l->ttl ? l->ttl : l->cfg.ttl_s;
	return (long)(ttl * 1000 / 3);
}

static void on_risk(uv_timer_t *t);

/* Arms at_risk for until - margin on the loop's fresh clock: a stale loop
 * time would make it fire late by the time the loop was busy. */
static void arm_risk(lease_t *l)
{
	uv_timer_stop(&l->risk);
	if (!l->until || l->at_risk)
		return;
	uv_update_time(l->e->loop);
	unsigned long long now = na_now_ms(), at = l->until - (unsigned long long)l->cfg.margin_ms;
	uv_timer_start(&l->risk, on_risk, at > now ? at - now : 0, 0);
}

static void on_risk(uv_timer_t *t)
{
	lease_t *l = t->data;
	if (l->stopped || l->dead || l->at_risk || !l->until)
		return;
	unsigned long long now = na_now_ms(), at = l->until - (unsigned long long)l->cfg.margin_ms;
	if (now + 1 < at) {
		/* woke early (coarse loop clock): wait out the rest */
		uv_timer_start(&l->risk, on_risk, at - now, 0);
		return;
	}
	l->at_risk = 1;
	na_warn("etcd lease at risk", "lease=%llx until_in_ms=%lld", (unsigned long long)l->id,
		(long long)l->until - (long long)now);
	if (l->ops.at_risk)
		l->ops.at_risk(l->ud, l->id);
}

static void grant(lease_t *l);

static void lost(lease_t *l)
{
	int64_t id = l->id;
	na_warn("etcd lease lost", "lease=%llx", (unsigned long long)id);
	l->id = 0;
	l->until = 0;
	l->at_risk = 0;
	uv_timer_stop(&l->risk);
	if (l->ops.lost && id)
		l->ops.lost(l->ud, id);
	if (!l->stopped && !l->dead)
		grant(l);
}

/* A proof: sent at l->sent, TTL ttl. */
static void proven(lease_t *l, int64_t ttl)
{
	unsigned long long until = l->sent + (unsigned long long)ttl * 1000ULL;
	l->ttl = ttl;
	if (until > l->until || l->at_risk) {
		l->until = until > l->until ? until : l->until;
		l->at_risk = 0;
		arm_risk(l);
		if (l->ops.renewed)
			l->ops.renewed(l->ud, l->id, l->until);
	}
}

static void on_grant(void *ud, int rc, const na_err_t *err, const na_etcd_result_t *res)
{
	lease_t *l = ud;
	l->out = 0;
	if (l->stopped || l->dead)
		return;
	if (rc < 0) {
		na_warn("etcd lease grant failed", "error=\"%s\"", err->msg);
		tick_in(l, 500);
		return;
	}
	/* a retried grant may have left an orphan lease: it has no keys and
	 * expires by itself */
	l->id = res->lease_id;
	l->st = L_KEEP;
	l->until = 0;
	if (l->ops.up)
		l->ops.up(l->ud, l->id);
	if (l->stopped || l->dead)
		return;
	proven(l, res->ttl);
	if (!l->stopped && !l->dead)
		tick_in(l, interval(l) - (long)(na_now_ms() - l->sent));
}

static void grant(lease_t *l)
{
	na_err_t err = NA_ERR_INIT;
	na_etcd_opts_t o = {.user = l->cfg.user};
	l->st = L_GRANT;
	l->sent = na_now_ms();
	if (na_etcd_lease_grant(l->e, l->cfg.ttl_s, &o, on_grant, l, &err) < 0) {
		na_warn("etcd lease grant failed", "error=\"%s\"", err.msg);
		tick_in(l, 500);
		return;
	}
	l->out = 1;
}

static void on_keepalive(void *ud, int rc, const na_err_t *err, const na_etcd_result_t *res)
{
	lease_t *l = ud;
	l->out = 0;
	if (l->stopped || l->dead)
		return;
	if (rc < 0 && !strcmp(err->code, NA_ETCD_ELEASE)) {
		if (l->st == L_ADOPT)
			na_info("etcd lease to adopt is gone", "lease=%llx",
				(unsigned long long)l->id);
		if (l->st == L_ADOPT) {
			l->id = 0;
			grant(l);
		} else {
			lost(l);
		}
		return;
	}
	if (rc < 0) {
		na_debug("etcd lease keepalive failed", "lease=%llx error=\"%s\"",
			 (unsigned long long)l->id, err->msg);
		long iv = interval(l);
		tick_in(l, iv / 2 < RETRY_MS ? iv / 2 : RETRY_MS);
		return;
	}
	if (l->st == L_ADOPT) {
		l->st = L_KEEP;
		if (l->ops.up)
			l->ops.up(l->ud, l->id);
		if (l->stopped || l->dead)
			return;
	}
	proven(l, res->ttl);
	if (!l->stopped && !l->dead)
		tick_in(l, interval(l) - (long)(na_now_ms() - l->sent));
}

static void send_next(lease_t *l)
{
	if (l->out)
		return;
	if (l->st == L_GRANT || !l->id) {
		grant(l);
		return;
	}
	na_err_t err = NA_ERR_INIT;
	unsigned long long now = na_now_ms();
	long iv = interval(l);
	long dl = (long)(l->ttl ? l->ttl : l->cfg.ttl_s) * 1000;
	/* while the proof holds, no answer may count after until - margin */
	if (l->until && !l->at_risk) {
		long left = (long)((long long)l->until - l->cfg.margin_ms - (long long)now);
		if (left > 10)
			dl = left;
	}
	na_etcd_opts_t o = {
	    .user = l->cfg.user, .deadline_ms = dl, .attempt_ms = iv / 2 > 250 ? iv / 2 : 250};
	l->sent = now;
	if (na_etcd_lease_keepalive(l->e, l->id, &o, on_keepalive, l, &err) < 0) {
		tick_in(l, RETRY_MS);
		return;
	}
	l->out = 1;
}

na_etcd_lease_t *na_etcd_lease_start(na_etcd_t *e, const na_etcd_lease_cfg_t *cfg,
				     const na_etcd_lease_ops_t *ops, void *ud, na_err_t *err)
{
	if (!e || !cfg || !ops) {
		na_err_set(err, 500, "internal_error", NULL, "etcd lease keeper without config");
		return NULL;
	}
	if (cfg->ttl_s < 1 || cfg->ttl_s > 86400 || cfg->margin_ms < 0 ||
	    cfg->margin_ms >= cfg->ttl_s * 1000 || cfg->interval_ms < 0 ||
	    cfg->interval_ms >= cfg->ttl_s * 1000) {
		na_err_set(err, 422, "invalid_field", "ttl",
			   "lease keeper: need 1 <= ttl_s <= 86400 and margin, interval below "
			   "the TTL");
		return NULL;
	}
	if (e->closing) {
		na_err_set(err, 503, NA_ETCD_ECANCELLED, NULL, "etcd session closed");
		return NULL;
	}
	lease_t *l = calloc(1, sizeof(*l));
	if (!l) {
		na_err_set(err, 500, "system_error", NULL, "etcd lease keeper: out of memory");
		return NULL;
	}
	l->e = e;
	l->cfg = *cfg;
	l->cfg.user = cfg->user ? cfg->user : "core";
	l->ops = *ops;
	l->ud = ud;
	uv_timer_init(e->loop, &l->tick);
	uv_timer_init(e->loop, &l->risk);
	l->tick.data = l->risk.data = l;
	l->open = 2;
	e->handles += 2;
	l->next = e->leases;
	if (e->leases)
		e->leases->prev = l;
	e->leases = l;
	if (cfg->adopt_id) {
		/* keep the previous run's lease (and its keys) if etcd still has it */
		l->st = L_ADOPT;
		l->id = cfg->adopt_id;
	} else {
		l->st = L_GRANT;
	}
	tick_in(l, 0); /* first request from the loop, never inside this call */
	return l;
}

int64_t na_etcd_lease_id(const na_etcd_lease_t *l)
{
	return l && l->st != L_ADOPT ? l->id : 0;
}

unsigned long long na_etcd_lease_until(const na_etcd_lease_t *l)
{
	return l ? l->until : 0;
}

int64_t na_etcd_lease_ttl(const na_etcd_lease_t *l)
{
	return l ? l->ttl : 0;
}

static void on_closed(uv_handle_t *h)
{
	lease_t *l = h->data;
	na_etcd_t *e = l->e;
	/* a keeper the session closed is freed with the session */
	if (--l->open == 0 && !l->dead)
		free(l);
	etcd_handle_closed(e);
}

static void release(lease_t *l)
{
	na_etcd_t *e = l->e;
	if (l->prev)
		l->prev->next = l->next;
	else
		e->leases = l->next;
	if (l->next)
		l->next->prev = l->prev;
	l->prev = l->next = NULL;
	uv_close((uv_handle_t *)&l->tick, on_closed);
	uv_close((uv_handle_t *)&l->risk, on_closed);
}

static void on_revoked(void *ud, int rc, const na_err_t *err, const na_etcd_result_t *res)
{
	lease_t *l = ud;
	(void)res;
	if (rc < 0)
		na_warn("etcd lease revoke failed", "lease=%llx error=\"%s\"",
			(unsigned long long)l->id, err->msg);
	if (l->done)
		l->done(l->done_ud);
	if (!l->dead)
		release(l);
}

void na_etcd_lease_stop(na_etcd_lease_t *l, int revoke, void (*done)(void *ud), void *ud)
{
	if (!l || l->stopped || l->dead)
		return;
	na_etcd_t *e = l->e;
	l->stopped = 1;
	l->done = done;
	l->done_ud = ud;
	uv_timer_stop(&l->tick);
	uv_timer_stop(&l->risk);
	na_etcd_cancel(e, l);
	l->out = 0;
	int64_t id = l->st == L_ADOPT || l->st == L_KEEP ? l->id : 0;
	l->st = L_STOPPING;
	if (revoke && id) {
		/* past the proven end etcd drops the keys anyway; a little longer
		 * covers a lease whose proof just lapsed */
		unsigned long long now = na_now_ms();
		long dl = l->until > now + 500 ? (long)(l->until - now) : 500;
		na_etcd_opts_t o = {.user = l->cfg.user, .deadline_ms = dl, .attempt_ms = dl / 2};
		na_err_t err = NA_ERR_INIT;
		if (na_etcd_lease_revoke(e, id, &o, on_revoked, l, &err) == 0)
			return;
		na_warn("etcd lease revoke failed", "lease=%llx error=\"%s\"",
			(unsigned long long)id, err.msg);
	}
	/* done() from the loop, not from inside this call: see on_tick */
	l->done_pending = 1;
	tick_in(l, 0);
}

void etcd_leases_close(na_etcd_t *e)
{
	for (lease_t *l = e->leases; l; l = l->next) {
		if (l->dead)
			continue;
		l->dead = 1;
		uv_close((uv_handle_t *)&l->tick, on_closed);
		uv_close((uv_handle_t *)&l->risk, on_closed);
	}
	/* stops whose done() was still to come run it now (a pending revoke's
	 * done runs when the session cancels the call); every keeper is dead
	 * first, so whatever done() does finds nothing alive */
	for (lease_t *l = e->leases; l; l = l->next) {
		if (l->done_pending) {
			l->done_pending = 0;
			if (l->done)
				l->done(l->done_ud);
		}
	}
}

void etcd_leases_free(na_etcd_t *e)
{
	while (e->leases) {
		lease_t *l = e->leases;
		e->leases = l->next;
		free(l);
	}
}
