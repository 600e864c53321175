/* Liveness of VIP holders (etcd mode), the sub-second half of the election
 * (docs/vip.md, "Fencing"):
 *
 * Holder: while this agent owns at least one VIP's key, it rewrites its one
 * record VIP_LIVE_PREFIX<agent> (on its lease) every live_ms with a
 * transaction that holds only if every owner key it counts on is unchanged
 * (mod_revision as it knows it). Success of the one sent at s proves to any
 * standby that it must wait until after s + takeover_ms (below), so each
 * held VIP's fence element is re-armed to expire at s + fence_ms. A failed
 * compare means a key changed: the else branch reads them and the holder
 * steps down where it lost. Without success the element expires by itself,
 * also when this agent is dead, and the VIP is dropped at live_until.
 *
 * Standby: watches the record of each holder it is a candidate beside and
 * notes, on its own clock, when it received the record's (or the owner
 * key's) last change. After takeover_ms of silence it claims with a
 * transaction comparing both mod_revisions with the ones it saw (elect.c):
 * a renewal it has not seen yet makes the claim fail. */
#include "netagent/log.h"
#include "netagent/util.h"
#include "netagent/validate.h"
#include "vip/vip_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define MAX_CMPS 100 /* etcd's default --max-txn-ops is 128 */

struct peer {
	struct peer *next;
	char agent[64];
	na_etcd_watch_t *w;
	int known, keep;
	int64_t mod;
	unsigned long long seen_ms;
};

struct renewal;

static struct {
	na_timer_t *tick, *expiry;
	int out, again;
	struct renewal *cur; /* the one out */
	unsigned long long seq, ok, failed, lost;
	unsigned long long last_ok_ms;
	struct peer *peers;
} L;

struct renewal {
	unsigned long long sent;
	int n;
	char names[][64];
};

void vip_live_key(const char *agent, char *buf, size_t n)
{
	snprintf(buf, n, VIP_LIVE_PREFIX "%s", agent);
}

/* ---- holder side ----------------------------------------------------------- */

static int owned(const vip_t *v)
{
	return !v->deleting && vip_el_owns(v);
}

static void arm_expiry(void);

static void proven(vip_t *v, unsigned long long until, int kick);

static void fenced_done(vip_t *v, int rc, int added, const na_err_t *err, void *ud)
{
	(void)added, (void)ud;
	v->fencing = 0;
	if (rc < 0)
		na_warn("vip fence renewal failed", "vip=%s error=\"%s\"", v->name, err->msg);
	else if (rc == 1)
		na_debug("vip fence renewal too late: disarmed", "vip=%s", v->name);
	/* A newer proof came while this job was out (a slow worker): arm
	 * it now rather than at the next renewal. */
	if (v->live_until > v->fence_sent_until && !v->deleting)
		proven(v, v->live_until, 0);
}

/* A proof until `until` for v: the element follows it; a VIP we own but do
 * not hold yet may be taken now. */
static void proven(vip_t *v, unsigned long long until, int kick)
{
	if (until > v->live_until)
		v->live_until = until;
	if (v->state == VIP_MASTER && !v->dropping && !v->taking && !v->fencing) {
		v->fencing = 1;
		v->fence_sent_until = v->live_until;
		if (vip_k_fence(v, v->live_until, fenced_done, NULL) < 0)
			v->fencing = 0;
	} else if (v->state != VIP_MASTER && kick) {
		vip_elect_kick(v);
	}
}

/* The claim's caller takes the VIP itself. */
void vip_live_proven(vip_t *v, unsigned long long sent)
{
	proven(v, sent + (unsigned long long)vm.fence_ms, 0);
	arm_expiry();
}

static void send_renewal(void);

static void renewed(void *ud, int rc, const na_err_t *err, const na_etcd_result_t *res)
{
	struct renewal *r = ud;
	unsigned long long took = na_now_ms() - r->sent;
	L.out = 0;
	L.cur = NULL;
	if (took > (unsigned long long)vm.fence_ms / 2)
		na_info("vip liveness renewal slow", "ms=%llu ok=%s", took,
			rc == 0 && res->succeeded ? "yes" : "no");
	if (rc < 0) {
		L.failed++;
		na_debug("vip liveness not renewed", "error=\"%s\"", err->msg);
	} else if (res->succeeded) {
		L.ok++;
		L.last_ok_ms = na_now_ms();
		for (int i = 0; i < r->n; i++) {
			vip_t *v = vip_find(r->names[i]);
			if (v && owned(v))
				proven(v, r->sent + (unsigned long long)vm.fence_ms, 1);
		}
		arm_expiry();
	} else {
		/* An owner key changed under us: learn how (one get per VIP,
		 * in order), then each VIP decides (steps down if lost). */
		L.lost++;
		for (int i = 0; i < r->n && (size_t)i < res->nresps; i++) {
			vip_t *v = vip_find(r->names[i]);
			if (!v)
				continue;
			const na_etcd_resp_t *g = &res->resps[i];
			vip_el_learn_owner(v, g->nkvs ? &g->kvs[0] : NULL, res->revision);
		}
		vip_live_follow();
		for (int i = 0; i < r->n; i++) {
			vip_t *v = vip_find(r->names[i]);
			if (v)
				vip_elect_kick(v);
		}
	}
	free(r);
	if (L.again) {
		L.again = 0;
		send_renewal();
	}
}

static void send_renewal(void)
{
	na_err_t err = NA_ERR_INIT;
	char key[200], val[96];
	int n = 0;
	struct renewal *r;

	if (L.out) {
		L.again = 1;
		return;
	}
	if (!vip_el.id || vm.stopping)
		return;
	for (vip_t *v = vm.vips; v; v = v->next)
		n += owned(v);
	if (!n) {
		/* no key of ours: nothing to prove, no writes */
		na_timer_stop(L.tick);
		return;
	}
	if (n > MAX_CMPS)
		n = MAX_CMPS;
	r = calloc(1, sizeof(*r) + (size_t)n * sizeof(r->names[0]));
	if (!r)
		return;
	na_etcd_txn_t *t = na_etcd_txn_new();
	for (vip_t *v = vm.vips; v && r->n < n; v = v->next) {
		if (!owned(v))
			continue;
		snprintf(r->names[r->n++], sizeof(r->names[0]), "%s", v->name);
		snprintf(key, sizeof(key), VIP_ETCD_PREFIX "%s/owner", v->name);
		na_etcd_txn_cmp_mod(t, key, NA_ETCD_EQUAL, v->owner_mod);
		na_etcd_txn_get(t, NA_ETCD_ELSE, key, 0);
	}
	vip_live_key(vip_el_me(), key, sizeof(key));
	snprintf(val, sizeof(val), "{\"seq\":%llu}", ++L.seq);
	na_etcd_txn_put(t, NA_ETCD_THEN, key, val, strlen(val), vip_el.id);
	/* No answer is of use after the proof it would give has run out; an
	 * attempt on a hung member gives up in time for the next member. */
	na_etcd_opts_t o = {
	    .user = "vip", .deadline_ms = vm.fence_ms, .attempt_ms = vm.fence_ms / 2};
	r->sent = na_now_ms();
	L.out = 1;
	L.cur = r;
	if (na_etcd_txn(vm.ag->etcd, t, &o, renewed, r, &err) < 0) {
		L.out = 0;
		L.cur = NULL;
		free(r);
		na_debug("vip liveness renewal not sent", "error=\"%s\"", err.msg);
	}
}

static void on_tick(void *ud)
{
	(void)ud;
	send_renewal();
}

void vip_live_kick(void)
{
	if (!L.tick)
		return;
	if (!na_timer_active(L.tick))
		na_timer_start(L.tick, 0, (unsigned long long)vm.live_ms);
	else
		send_renewal();
}

/* The agent's view follows the kernel's: a VIP whose proof ran out is
 * dropped (the element has expired or is about to). */
static void on_expiry(void *ud)
{
	(void)ud;
	unsigned long long now = na_now_ms();
	for (vip_t *v = vm.vips; v; v = v->next)
		if (v->state == VIP_MASTER && !v->dropping && !v->deleting && v->live_until <= now)
			vip_drop(v, VIP_FAULT, "fenced: liveness not renewed in time", NULL, NULL);
	arm_expiry();
}

static void arm_expiry(void)
{
	unsigned long long next = 0, now = na_now_ms();
	int any = 0;
	for (vip_t *v = vm.vips; v; v = v->next) {
		if (v->state != VIP_MASTER || v->dropping || v->deleting)
			continue;
		any = 1;
		if (!next || v->live_until < next)
			next = v->live_until;
	}
	if (!L.expiry)
		return;
	if (!any) {
		na_timer_stop(L.expiry);
		/* nothing held: renewals go on only while we own a key */
		return;
	}
	na_timer_start(L.expiry, next > now ? next - now : 0, 0);
}

void vip_live_held(void)
{
	arm_expiry();
}

/* ---- standby side: the holders' records ------------------------------------ */

static struct peer *peer_find(const char *agent)
{
	for (struct peer *p = L.peers; p; p = p->next)
		if (!strcmp(p->agent, agent))
			return p;
	return NULL;
}

static void kick_held_by(const char *agent)
{
	for (vip_t *v = vm.vips; v; v = v->next)
		if (!v->deleting && !strcmp(v->owner, agent))
			vip_elect_kick(v);
}

static void p_reset(void *ud, const na_etcd_kv_t *kvs, size_t n, int64_t rev)
{
	struct peer *p = ud;
	int64_t mod = n ? kvs[0].mod_revision : 0;
	(void)rev;
	/* a reset shows the record now: silence goes on only if unchanged */
	if (!p->known || mod != p->mod)
		p->seen_ms = na_now_ms();
	p->mod = mod;
	p->known = 1;
	kick_held_by(p->agent);
}

static void p_event(void *ud, const na_etcd_event_t *ev)
{
	struct peer *p = ud;
	p->mod = ev->type == NA_ETCD_PUT ? ev->mod_revision : 0;
	p->seen_ms = na_now_ms();
}

static const na_etcd_watch_ops_t pops = {p_reset, p_event, NULL};

/* Watches the record of every other agent that holds one of our VIPs, and
 * only those (O(holders) events, not O(agents)). */
void vip_live_follow(void)
{
	na_err_t err = NA_ERR_INIT;
	char key[200];
	if (!vip_etcd_mode() || vm.stopping)
		return;
	for (struct peer *p = L.peers; p; p = p->next)
		p->keep = 0;
	for (vip_t *v = vm.vips; v; v = v->next) {
		if (v->deleting || !v->owner[0] || !strcmp(v->owner, vip_el_me()) ||
		    !na_name_valid(v->owner))
			continue;
		struct peer *p = peer_find(v->owner);
		if (!p) {
			p = calloc(1, sizeof(*p));
			if (!p)
				continue;
			snprintf(p->agent, sizeof(p->agent), "%s", v->owner);
			vip_live_key(p->agent, key, sizeof(key));
			na_etcd_watch_cfg_t wc = {.user = "vip", .idle_ms = 10000};
			p->w = na_etcd_watch(vm.ag->etcd, key, &wc, &pops, p, &err);
			if (!p->w) {
				na_warn("vip liveness watch not started", "agent=%s error=\"%s\"",
					p->agent, err.msg);
				free(p);
				continue;
			}
			p->next = L.peers;
			L.peers = p;
		}
		p->keep = 1;
	}
	for (struct peer **pp = &L.peers; *pp;) {
		struct peer *p = *pp;
		if (p->keep) {
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		na_etcd_watch_stop(p->w);
		free(p);
	}
}

int vip_live_peer(const char *agent, int64_t *mod, unsigned long long *seen_ms)
{
	struct peer *p = peer_find(agent);
	if (!p || !p->known)
		return 0;
	*mod = p->mod;
	*seen_ms = p->seen_ms;
	return 1;
}

/* A failed claim read the record: if it moved, it is news. */
void vip_live_learn(const char *agent, int64_t mod)
{
	struct peer *p = peer_find(agent);
	if (p && (mod != p->mod || !p->known)) {
		p->mod = mod;
		p->known = 1;
		p->seen_ms = na_now_ms();
	}
}

/* ---- lifecycle ------------------------------------------------------------- */

int vip_live_init(na_err_t *err)
{
	memset(&L, 0, sizeof(L));
	L.tick = na_timer_new(vm.ag, on_tick, NULL);
	L.expiry = na_timer_new(vm.ag, on_expiry, NULL);
	if (!L.tick || !L.expiry)
		return na_err_errno(err, ENOMEM, "vip liveness timers");
	return 0;
}

void vip_live_fini(void)
{
	if (L.cur) {
		na_etcd_cancel(vm.ag->etcd, L.cur);
		free(L.cur);
		L.cur = NULL;
		L.out = 0;
	}
	while (L.peers) {
		struct peer *p = L.peers;
		L.peers = p->next;
		na_etcd_watch_stop(p->w);
		free(p);
	}
	if (L.tick)
		na_timer_free(L.tick);
	if (L.expiry)
		na_timer_free(L.expiry);
	L.tick = L.expiry = NULL;
}

void vip_live_info(json_t *o)
{
	unsigned long long now = na_now_ms();
	json_t *peers = json_array();
	for (struct peer *p = L.peers; p; p = p->next)
		json_array_append_new(
		    peers, json_pack("{s:s, s:b, s:I}", "agent", p->agent, "known", p->known,
				     "silent_ms", (json_int_t)(p->known ? now - p->seen_ms : 0)));
	json_object_set_new(
	    o, "liveness",
	    json_pack("{s:I, s:I, s:I, s:I, s:o, s:o}", "renewals_ok", (json_int_t)L.ok,
		      "renewals_failed", (json_int_t)L.failed, "renewals_lost_key",
		      (json_int_t)L.lost, "fence_stalls", (json_int_t)vm.fence_late,
		      "last_ok_ms_ago",
		      L.last_ok_ms ? json_integer((json_int_t)(now - L.last_ok_ms)) : json_null(),
		      "following", peers));
}
