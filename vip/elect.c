/* Election through the core's etcd session (ag->etcd), SPEC §3:
 *   <prefix><vip>/owner          {"holder","priority"}, on the holder's lease
 *   <prefix><vip>/cand/<agent>   {"priority","healthy","preempt"}, on each
 *                                candidate's lease
 * One lease per agent from the core's lease keeper, one watch on the whole
 * prefix. A candidate takes the VIP with a put-if-absent transaction on the
 * owner key and adds the address only while the lease is proven alive
 * (renewed(): proof until s + TTL); the address gets a lifetime of
 * addr_lft_s, renewed with each keepalive, so the kernel removes it before
 * the lease can expire at etcd even when this agent is dead. The timing
 * argument is in docs/vip.md. */
#include "netagent/log.h"
#include "netagent/nsworker.h"
#include "netagent/util.h"
#include "netagent/validate.h"
#include "vip/vip_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

vip_el_t vip_el;

const na_etcd_opts_t vip_el_opts = {.user = "vip", .deadline_ms = 2000};

const char *vip_el_me(void)
{
	return vm.ag->cfg.name;
}

static void owner_key(const vip_t *v, char *buf, size_t n)
{
	snprintf(buf, n, VIP_ETCD_PREFIX "%s/owner", v->name);
}

int vip_el_owns(const vip_t *v)
{
	return vip_el.id && v->owner_known && !strcmp(v->owner, vip_el_me()) &&
	       v->owner_lease == vip_el.id;
}

int vip_elect_not_ours(const vip_t *v)
{
	return vip_el.reset_seen && v->owner_known && !vip_el_owns(v);
}

unsigned long long vip_elect_until(void)
{
	if (!vip_el.id || vip_el.at_risk)
		return 0;
	/* Fresh enough to give the address its whole lifetime. */
	if (na_now_ms() + (unsigned long long)vm.addr_lft_s * 1000 + (unsigned)vm.lft_slack_ms >
	    vip_el.until)
		return 0;
	return vip_el.until;
}

/* Backup or fault for a VIP we do not hold, with the holder we know of. */
static void settle(vip_t *v, const char *reason)
{
	if (v->state == VIP_MASTER || v->taking || v->dropping || v->deleting)
		return;
	enum vip_state s = (!v->resolved || v->health == VIP_H_DOWN) ? VIP_FAULT : VIP_BACKUP;
	vip_set_state(v, s, v->owner, reason);
}

/* ---- candidacy ------------------------------------------------------------ */

static void ignore_cb(void *ud, int rc, const na_err_t *err, const na_etcd_result_t *res)
{
	(void)res;
	if (rc < 0)
		na_debug("vip etcd call failed", "what=%s error=\"%s\"", (const char *)ud,
			 err->msg);
}

void vip_el_publish(vip_t *v, int force);

static void published(void *ud, int rc, const na_err_t *err, const na_etcd_result_t *res)
{
	vip_t *v = ud;
	(void)res;
	v->pub_out = 0;
	if (rc < 0) {
		na_debug("vip candidacy not published", "vip=%s error=\"%s\"", v->name, err->msg);
		v->published[0] = 0; /* the next renewal tries again */
	}
	if (v->pub_again) {
		v->pub_again = 0;
		vip_el_publish(v, 0);
	}
}

/* Puts may travel on parallel connections: one at a time per VIP, else an
 * older value could land last. */
void vip_el_publish(vip_t *v, int force)
{
	na_err_t err = NA_ERR_INIT;
	char key[200], val[160];
	if (!vip_el.id || v->deleting || vm.stopping)
		return;
	if (v->pub_out) {
		v->pub_again = 1;
		return;
	}
	snprintf(val, sizeof(val), "{\"priority\":%d,\"healthy\":%s,\"preempt\":%s}",
		 v->spec.priority, v->health == VIP_H_UP ? "true" : "false",
		 v->spec.preempt ? "true" : "false");
	if (!force && !strcmp(val, v->published))
		return;
	snprintf(key, sizeof(key), VIP_ETCD_PREFIX "%s/cand/%s", v->name, vip_el_me());
	if (na_etcd_put(vm.ag->etcd, key, val, strlen(val), vip_el.id, &vip_el_opts, published, v,
			&err) == 0) {
		v->pub_out = 1;
		snprintf(v->published, sizeof(v->published), "%s", val);
	}
}

vip_cand_t *vip_el_cand_get(vip_t *v, const char *agent, int create)
{
	for (int i = 0; i < v->ncands; i++)
		if (!strcmp(v->cands[i].agent, agent))
			return &v->cands[i];
	if (!create || v->ncands >= VIP_MAX_CANDS)
		return NULL;
	vip_cand_t *c = &v->cands[v->ncands++];
	memset(c, 0, sizeof(*c));
	snprintf(c->agent, sizeof(c->agent), "%s", agent);
	return c;
}

void vip_el_cand_del(vip_t *v, const char *agent)
{
	vip_cand_t *c = vip_el_cand_get(v, agent, 0);
	if (c)
		*c = v->cands[--v->ncands];
}

const vip_cand_t *vip_el_better(const vip_t *v, int need_preempt)
{
	const vip_cand_t *best = NULL;
	for (int i = 0; i < v->ncands; i++) {
		const vip_cand_t *c = &v->cands[i];
		/* the holder is never "better": when we would take over, it
		 * is the one gone silent (its candidacy outlives it) */
		if (!strcmp(c->agent, vip_el_me()) || !strcmp(c->agent, v->owner) || !c->healthy ||
		    c->priority <= v->spec.priority || (need_preempt && !c->preempt))
			continue;
		if (!best || c->priority > best->priority)
			best = c;
	}
	return best;
}

/* ---- acquire / release ---------------------------------------------------- */

int vip_el_learn_owner(vip_t *v, const na_etcd_kv_t *kv, int64_t rev)
{
	int64_t mod = kv ? kv->mod_revision : 0;
	if (v->owner_known && rev && rev < v->owner_rev)
		return 0;
	/* the standby's silence clock starts again at any change it learns */
	if (!v->owner_known || mod != v->owner_mod || !kv != !v->owner[0])
		v->owner_seen_ms = na_now_ms();
	v->owner_known = 1;
	v->owner_rev = rev;
	v->owner_mod = mod;
	v->yield_until_ms = 0;
	v->owner[0] = 0;
	v->owner_lease = 0;
	if (!kv)
		return 1;
	json_error_t je;
	cleanup_json json_t *o = json_loadb(kv->value, kv->value_len, 0, &je);
	const char *h = json_string_value(json_object_get(o, "holder"));
	snprintf(v->owner, sizeof(v->owner), "%s", h && na_name_valid(h) ? h : "?");
	v->owner_lease = kv->lease;
	return 1;
}

static void acquired(void *ud, int rc, const na_err_t *err, const na_etcd_result_t *res)
{
	vip_t *v = ud;
	v->acquiring = 0;
	if (rc < 0) {
		na_warn("vip claim failed", "vip=%s error=\"%s\"", v->name, err->msg);
		v->take_t0_ms = 0;
		return;
	}
	if (res->succeeded) {
		na_etcd_kv_t kv = {.mod_revision = res->revision, .lease = vip_el.id};
		char val[100];
		snprintf(val, sizeof(val), "{\"holder\":\"%s\"}", vip_el_me());
		kv.value = val;
		kv.value_len = strlen(val);
		vip_el_learn_owner(v, &kv, res->revision);
		/* Any standby learns of this claim after etcd applied it, which
		 * is after we sent it: that is our first fence proof. */
		vip_live_proven(v, v->claim_sent_ms);
		vip_live_kick();
	} else {
		/* else branch: a get of the key (ours if a retried txn had
		 * been applied before its answer was lost), and for a takeover
		 * the holder's record (it renewed: its silence starts again). */
		const na_etcd_kv_t *kv = NULL;
		if (res->nresps && res->resps[0].nkvs)
			kv = &res->resps[0].kvs[0];
		vip_el_learn_owner(v, kv, res->revision);
		if (v->claim_from[0] && res->nresps > 1)
			vip_live_learn(v->claim_from,
				       res->resps[1].nkvs ? res->resps[1].kvs[0].mod_revision : 0);
		if (vip_el_owns(v))
			vip_live_kick(); /* proof first, then the take */
	}
	vip_live_follow();
	if (vip_el_owns(v) && !v->deleting && !vm.stopping) {
		vip_take(v, v->claim_from[0] ? "took over: holder silent" : "elected");
	} else {
		v->take_t0_ms = 0;
		settle(v, "another agent holds it");
	}
}

static void on_elect_timer(void *ud)
{
	vip_elect_kick(ud);
}

static void defer(vip_t *v, unsigned long long ms)
{
	if (!v->elect_timer && !(v->elect_timer = na_timer_new(vm.ag, on_elect_timer, v)))
		return;
	if (!na_timer_active(v->elect_timer))
		na_timer_start(v->elect_timer, ms, 0);
}

void vip_elect_kick(vip_t *v)
{
	na_err_t err = NA_ERR_INIT;
	char key[200], val[160];
	unsigned long long now = na_now_ms(), until;

	if (v->deleting || vm.stopping || v->acquiring || v->taking || v->dropping)
		return;
	if (vip_el_owns(v)) {
		/* Ours (claimed, or adopted from our previous run): hold it
		 * unless the checks say no. */
		if (v->state != VIP_MASTER && v->health != VIP_H_DOWN && v->resolved)
			vip_take(v, v->state == VIP_BACKUP && !v->transitions
					? "adopted (same lease as the previous run)"
					: "elected");
		else if (v->state != VIP_MASTER)
			vip_elect_release(v); /* fenced meanwhile, and now unhealthy */
		return;
	}
	if (v->state == VIP_MASTER) {
		/* The key is not ours any more: another holder or nobody. */
		vip_drop(v, VIP_BACKUP, v->owner[0] ? "another agent holds the key" : "key gone",
			 NULL, NULL);
		return;
	}
	settle(v, v->owner[0] ? "another agent holds it" : "waiting");
	if (!vip_el.reset_seen || !v->owner_known || v->health != VIP_H_UP || !v->resolved)
		return;
	int64_t live_mod = 0;
	if (v->owner[0]) {
		/* Held by another agent: take over only once its record and
		 * the owner key have both been silent for takeover_ms, counted
		 * from when we received their last change. */
		unsigned long long seen = 0, last;
		if (!strcmp(v->owner, vip_el_me()) || !na_name_valid(v->owner) ||
		    !vip_live_peer(v->owner, &live_mod, &seen))
			return;
		last = seen > v->owner_seen_ms ? seen : v->owner_seen_ms;
		if (now < last + (unsigned long long)vm.takeover_ms) {
			defer(v, last + (unsigned long long)vm.takeover_ms - now);
			return;
		}
	}
	if (now < v->holdoff_until_ms) {
		defer(v, v->holdoff_until_ms - now);
		return;
	}
	if (now < v->retry_at_ms) {
		/* our last take failed: no claim we could not honour */
		defer(v, v->retry_at_ms - now);
		return;
	}
	if (vip_el_better(v, 0)) {
		/* A better candidate goes first; we try after a while in case
		 * it is unable to (its candidacy outlives it by a lease). */
		if (!v->yield_until_ms)
			v->yield_until_ms = now + (unsigned long long)vm.preempt_defer_ms;
		if (now < v->yield_until_ms) {
			defer(v, v->yield_until_ms - now);
			return;
		}
	}
	until = vip_elect_until();
	if (!until)
		return; /* no fresh proof: a standby cut off from etcd never takes it */
	na_etcd_opts_t o = vip_el_opts;
	o.deadline_ms = (long)(until - now) - vm.addr_lft_s * 1000 - vm.lft_slack_ms;
	if (o.deadline_ms > 1000)
		o.deadline_ms = 1000;
	if (o.deadline_ms < 50)
		return;
	owner_key(v, key, sizeof(key));
	snprintf(val, sizeof(val), "{\"holder\":\"%s\",\"priority\":%d}", vip_el_me(),
		 v->spec.priority);
	na_etcd_txn_t *t = na_etcd_txn_new();
	if (v->owner[0]) {
		/* Nothing of the holder's may have changed since we looked:
		 * a renewal we have not received yet fails the claim. */
		char lkey[200];
		vip_live_key(v->owner, lkey, sizeof(lkey));
		na_etcd_txn_cmp_mod(t, key, NA_ETCD_EQUAL, v->owner_mod);
		na_etcd_txn_cmp_mod(t, lkey, NA_ETCD_EQUAL, live_mod);
		na_etcd_txn_get(t, NA_ETCD_ELSE, key, 0);
		na_etcd_txn_get(t, NA_ETCD_ELSE, lkey, 0);
		na_info("vip holder silent: claiming", "vip=%s holder=%s", v->name, v->owner);
	} else {
		na_etcd_txn_cmp_create(t, key, NA_ETCD_EQUAL, 0);
		na_etcd_txn_get(t, NA_ETCD_ELSE, key, 0);
	}
	na_etcd_txn_put(t, NA_ETCD_THEN, key, val, strlen(val), vip_el.id);
	snprintf(v->claim_from, sizeof(v->claim_from), "%s", v->owner);
	v->claim_sent_ms = na_now_ms();
	if (!v->take_t0_ms)
		v->take_t0_ms = now;
	v->acquiring = 1;
	if (na_etcd_txn(vm.ag->etcd, t, &o, acquired, v, &err) < 0) {
		v->acquiring = 0;
		v->take_t0_ms = 0;
		na_warn("vip claim not sent", "vip=%s error=\"%s\"", v->name, err.msg);
	}
}

/* Deletes the owner key if it is still on our lease: a standby sees the
 * DELETE on its watch and takes over at once. */
void vip_elect_release(vip_t *v)
{
	na_err_t err = NA_ERR_INIT;
	char key[200];
	if (!vip_el.id || !vip_el_owns(v))
		return;
	owner_key(v, key, sizeof(key));
	na_etcd_txn_t *t = na_etcd_txn_new();
	na_etcd_txn_cmp_lease(t, key, NA_ETCD_EQUAL, vip_el.id);
	na_etcd_txn_delete(t, NA_ETCD_THEN, key, 0);
	if (na_etcd_txn(vm.ag->etcd, t, &vip_el_opts, ignore_cb, "release", &err) < 0)
		na_warn("vip release not sent", "vip=%s error=\"%s\"", v->name, err.msg);
}

void vip_elect_added(vip_t *v)
{
	if (!vip_etcd_mode())
		return;
	vip_el_publish(v, 0);
	/* The watch drops events of VIPs it does not know: a new one learns
	 * its owner and candidates from a fresh range (a reset) before it may
	 * claim anything. */
	if (!v->owner_known && vip_el.watch)
		na_etcd_watch_resync(vip_el.watch);
}

void vip_elect_removed(vip_t *v)
{
	na_err_t err = NA_ERR_INIT;
	char key[200];
	if (!vip_etcd_mode())
		return;
	vip_elect_release(v);
	na_etcd_cancel(vm.ag->etcd, v);
	snprintf(key, sizeof(key), VIP_ETCD_PREFIX "%s/cand/%s", v->name, vip_el_me());
	na_etcd_delete(vm.ag->etcd, key, &vip_el_opts, ignore_cb, "withdraw candidacy", &err);
}

void vip_el_stepped_down(vip_t *v, void *ud)
{
	(void)ud;
	vip_elect_release(v);
}

void vip_elect_health(vip_t *v)
{
	vip_el_publish(v, 0);
	if (v->state == VIP_MASTER && (v->health == VIP_H_DOWN || !v->resolved))
		vip_drop(v, VIP_FAULT, v->health_reason, vip_el_stepped_down, NULL);
	else
		vip_elect_kick(v);
}

int vip_elect_failover(vip_t *v, na_err_t *err)
{
	for (int i = 0; i < v->ncands; i++) {
		if (strcmp(v->cands[i].agent, vip_el_me()) && v->cands[i].healthy) {
			/* Step aside long enough for another one to claim it. */
			v->holdoff_until_ms = na_now_ms() + 3000;
			return 0;
		}
	}
	return na_err_set(err, 409, "no_candidate", NULL, "no other healthy candidate for vip %s",
			  v->name);
}
