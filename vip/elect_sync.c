/* The election's view of etcd (SPEC §3): one watch on the whole VIP prefix
 * (owner keys and candidacies of every VIP) and the agent's lease from the
 * core's lease keeper, whose proofs renew the holder's address lifetime and
 * whose loss or risk fences it. Decisions are elect.c's. */
#include "netagent/log.h"
#include "netagent/nsworker.h"
#include "netagent/util.h"
#include "netagent/validate.h"
#include "vip/vip_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* ---- watch ---------------------------------------------------------------- */

/* "<prefix><vip>/owner" or "<prefix><vip>/cand/<agent>". */
static vip_t *parse_key(const char *key, size_t len, int *is_owner, char *agent, size_t an)
{
	char buf[256], *slash;
	size_t pl = strlen(VIP_ETCD_PREFIX);
	if (len <= pl || len >= sizeof(buf) || strncmp(key, VIP_ETCD_PREFIX, pl))
		return NULL;
	memcpy(buf, key + pl, len - pl);
	buf[len - pl] = 0;
	slash = strchr(buf, '/');
	if (!slash)
		return NULL;
	*slash++ = 0;
	vip_t *v = vip_find(buf);
	if (!v)
		return NULL;
	*is_owner = !strcmp(slash, "owner");
	if (!*is_owner) {
		if (strncmp(slash, "cand/", 5) || !na_name_valid(slash + 5))
			return NULL;
		snprintf(agent, an, "%s", slash + 5);
	}
	return v;
}

static void apply_cand(vip_t *v, const char *agent, const char *val, size_t len)
{
	json_error_t je;
	cleanup_json json_t *o = json_loadb(val, len, 0, &je);
	vip_cand_t *c = vip_el_cand_get(v, agent, 1);
	if (!c)
		return;
	c->priority = (int)json_integer_value(json_object_get(o, "priority"));
	c->healthy = json_is_true(json_object_get(o, "healthy"));
	c->preempt = json_is_true(json_object_get(o, "preempt"));
}

/* The master hands over to a healthier-ranked candidate that asked for
 * preemption: address first, then the key, and it stays away a while. */
static void maybe_preempted(vip_t *v)
{
	const vip_cand_t *c;
	if (v->state != VIP_MASTER || v->dropping || !(c = vip_el_better(v, 1)))
		return;
	char reason[128];
	snprintf(reason, sizeof(reason), "preempted by %s (priority %d)", c->agent, c->priority);
	v->holdoff_until_ms = na_now_ms() + 3000;
	vip_drop(v, VIP_BACKUP, reason, vip_el_stepped_down, NULL);
}

static void w_reset(void *ud, const na_etcd_kv_t *kvs, size_t n, int64_t rev)
{
	(void)ud;
	/* authoritative as of rev: what is not listed is absent */
	for (vip_t *v = vm.vips; v; v = v->next) {
		v->owner_rev = 0;
		vip_el_learn_owner(v, NULL, rev);
		v->ncands = 0;
	}
	for (size_t i = 0; i < n; i++) {
		int is_owner = 0;
		char agent[64];
		vip_t *v = parse_key(kvs[i].key, kvs[i].key_len, &is_owner, agent, sizeof(agent));
		if (v && is_owner)
			vip_el_learn_owner(v, &kvs[i], rev);
		else if (v)
			apply_cand(v, agent, kvs[i].value, kvs[i].value_len);
	}
	vip_el.reset_seen = 1;
	vip_live_follow();
	for (vip_t *v = vm.vips; v; v = v->next) {
		if (vip_el_owns(v))
			vip_live_kick();
		maybe_preempted(v);
		vip_elect_kick(v);
	}
}

static void w_event(void *ud, const na_etcd_event_t *ev)
{
	(void)ud;
	int is_owner = 0;
	char agent[64];
	vip_t *v = parse_key(ev->key, ev->key_len, &is_owner, agent, sizeof(agent));
	if (!v)
		return;
	if (!is_owner) {
		if (ev->type == NA_ETCD_PUT)
			apply_cand(v, agent, ev->value, ev->value_len);
		else
			vip_el_cand_del(v, agent);
		maybe_preempted(v);
		if (!v->owner[0])
			vip_elect_kick(v);
		return;
	}
	if (ev->type == NA_ETCD_PUT) {
		na_etcd_kv_t kv = {.value = (char *)ev->value,
				   .value_len = ev->value_len,
				   .lease = ev->lease,
				   .mod_revision = ev->mod_revision};
		if (!vip_el_learn_owner(v, &kv, ev->mod_revision))
			return;
	} else {
		if (!vip_el_learn_owner(v, NULL, ev->mod_revision))
			return;
		/* The takeover clock starts when we learn the holder went. */
		if (v->state != VIP_MASTER)
			v->take_t0_ms = na_now_ms();
	}
	vip_live_follow();
	vip_elect_kick(v);
}

static void w_state(void *ud, int up, const na_err_t *err)
{
	(void)ud;
	if (up)
		na_info("vip watch up", "prefix=%s", VIP_ETCD_PREFIX);
	else
		na_warn("vip watch down", "error=\"%s\"", err ? err->msg : "-");
}

static const na_etcd_watch_ops_t wops = {w_reset, w_event, w_state};

/* ---- lease ---------------------------------------------------------------- */

struct save {
	na_state_t *st;
	int64_t id;
};

static int save_run(void *arg, na_err_t *err)
{
	struct save *s = arg;
	cleanup_json json_t *o = json_pack("{s:I}", "id", (json_int_t)s->id);
	return na_state_put(s->st, "vipmeta", "lease", o, err);
}

static void save_done(void *arg, int rc, const na_err_t *err)
{
	struct save *s = arg;
	if (rc < 0)
		na_warn("vip lease id not saved", "error=\"%s\"", err->msg);
	else
		vip_el.saved_id = s->id;
	free(s);
}

static void l_up(void *ud, int64_t id)
{
	(void)ud;
	na_info("vip lease up", "lease=%" PRIx64 " adopted=%s", id,
		id == vip_el.saved_id ? "yes" : "no");
	vip_el.id = id;
	vip_el.at_risk = 0;
	if (id != vip_el.saved_id) {
		struct save *s = calloc(1, sizeof(*s));
		if (s) {
			s->st = vm.ag->state;
			s->id = id;
			if (na_ns_submit("vip-lease", NULL, save_run, save_done, s) < 0)
				free(s);
		}
	}
	for (vip_t *v = vm.vips; v; v = v->next)
		vip_el_publish(v, 1);
}

static void renewed_done(vip_t *v, int rc, int added, const na_err_t *err, void *ud)
{
	(void)ud;
	v->renewing = 0;
	if (rc < 0) {
		na_warn("vip renewal failed", "vip=%s error=\"%s\"", v->name, err->msg);
	} else if (rc == 1 && v->state == VIP_MASTER) {
		vip_set_state(v, VIP_FAULT, "", "fenced: lease proof too old to renew the address");
	} else if (added) {
		na_info("vip address re-added", "vip=%s", v->name);
		vip_garp_schedule(v);
	}
}

static void l_renewed(void *ud, int64_t id, unsigned long long until)
{
	(void)ud;
	if (id != vip_el.id)
		return;
	vip_el.until = until;
	vip_el.at_risk = 0;
	for (vip_t *v = vm.vips; v; v = v->next) {
		if (v->deleting || v->dropping || v->taking)
			continue;
		vip_el_publish(v, 0); /* a no-op unless a put failed */
		if (v->state == VIP_MASTER && vip_el_owns(v) && !v->renewing) {
			unsigned long long u = vip_elect_until();
			if (!u)
				continue;
			v->renewing = 1;
			if (vip_k_ensure(v, vm.addr_lft_s, u, 1, VIP_FENCE_KEEP, 0, renewed_done,
					 NULL) < 0)
				v->renewing = 0;
		} else {
			vip_elect_kick(v);
		}
	}
}

static void l_at_risk(void *ud, int64_t id)
{
	(void)ud;
	na_warn("vip lease at risk: fencing", "lease=%" PRIx64, id);
	vip_el.at_risk = 1;
	for (vip_t *v = vm.vips; v; v = v->next)
		if (v->state == VIP_MASTER || v->taking)
			vip_drop(v, VIP_FAULT, "fenced: etcd keepalive overdue", NULL, NULL);
}

static void l_lost(void *ud, int64_t id)
{
	(void)ud;
	na_warn("vip lease lost", "lease=%" PRIx64, id);
	vip_el.id = 0;
	vip_el.until = 0;
	for (vip_t *v = vm.vips; v; v = v->next) {
		v->published[0] = 0;
		if (v->state == VIP_MASTER)
			vip_drop(v, VIP_FAULT, "lease lost", NULL, NULL);
	}
}

static const na_etcd_lease_ops_t lops = {l_up, l_renewed, l_at_risk, l_lost};

int vip_elect_init(na_err_t *err)
{
	json_t *o = NULL;
	na_err_t e = NA_ERR_INIT;
	memset(&vip_el, 0, sizeof(vip_el));
	/* At start, before the loop runs: a small synchronous read is fine. */
	if (na_state_get(vm.ag->state, "vipmeta", "lease", &o, &e) == 0) {
		vip_el.saved_id = (int64_t)json_integer_value(json_object_get(o, "id"));
		json_decref(o);
	}
	if (vip_live_init(err) < 0)
		return -1;
	na_etcd_lease_cfg_t lc = {.user = "vip",
				  .ttl_s = vm.lease_ttl_s,
				  .margin_ms = vm.fence_margin_ms,
				  .interval_ms = vm.keepalive_ms,
				  .adopt_id = vip_el.saved_id};
	vip_el.lease = na_etcd_lease_start(vm.ag->etcd, &lc, &lops, NULL, err);
	if (!vip_el.lease) {
		vip_live_fini();
		return -1;
	}
	na_etcd_watch_cfg_t wc = {.user = "vip", .prefix = 1, .idle_ms = 10000};
	vip_el.watch = na_etcd_watch(vm.ag->etcd, VIP_ETCD_PREFIX, &wc, &wops, NULL, err);
	if (!vip_el.watch) {
		na_etcd_lease_stop(vip_el.lease, 0, NULL, NULL);
		vip_el.lease = NULL;
		vip_live_fini();
		return -1;
	}
	return 0;
}

static void lease_stopped(void *ud)
{
	(void)ud;
	vip_el.lease = NULL;
	vip_el.id = 0;
	if (vip_el.stop_done)
		vip_el.stop_done(vip_el.stop_ud);
}

void vip_elect_stop(void (*done)(void *ud), void *ud)
{
	vip_live_fini();
	if (vip_el.watch) {
		na_etcd_watch_stop(vip_el.watch);
		vip_el.watch = NULL;
	}
	if (!vip_el.lease) {
		done(ud);
		return;
	}
	vip_el.stop_done = done;
	vip_el.stop_ud = ud;
	/* Revoking deletes our owner keys and candidacies in one go. */
	na_etcd_lease_stop(vip_el.lease, 1, lease_stopped, NULL);
}

void vip_elect_fini(void)
{
	vip_live_fini();
	if (vip_el.watch)
		na_etcd_watch_stop(vip_el.watch);
	if (vip_el.lease)
		na_etcd_lease_stop(vip_el.lease, 0, NULL, NULL);
	vip_el.watch = NULL;
	vip_el.lease = NULL;
}

void vip_elect_info(json_t *o)
{
	unsigned long long now = na_now_ms();
	char id[24];
	snprintf(id, sizeof(id), "%" PRIx64, vip_el.id);
	json_object_set_new(o, "lease", vip_el.id ? json_string(id) : json_null());
	json_object_set_new(
	    o, "lease_proof_ms",
	    json_integer(vip_el.until > now ? (json_int_t)(vip_el.until - now) : 0));
	json_object_set_new(o, "fenced", json_boolean(vip_el.at_risk));
	vip_live_info(o);
}
