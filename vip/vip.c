/* The vip module: registration with the core, tunables, the reconcile round
 * (re-add a deleted address, remove one we should not hold) and the
 * SIGTERM step-down. */
#include "vip/vip.h"
#include "netagent/log.h"
#include "netagent/metrics.h"
#include "netagent/util.h"
#include "netagent/validate.h"
#include "vip/vip_int.h"

#include <stdlib.h>
#include <string.h>

vip_mod_t vm;

/* NETAGENT_VIP_<NAME> in [min, max], else def; out of range is an error. */
static int tunable(const char *name, int def, int min, int max, int *out, na_err_t *err)
{
	char env[64];
	snprintf(env, sizeof(env), "NETAGENT_VIP_%s", name);
	return na_env_int(env, def, min, max, out, err);
}

/* Defaults and the timing argument behind them: docs/vip.md. */
static int tunables(na_err_t *err)
{
	if (tunable("LEASE_TTL", 2, 1, 60, &vm.lease_ttl_s, err) < 0 ||
	    tunable("KEEPALIVE_MS", 300, 50, 20000, &vm.keepalive_ms, err) < 0 ||
	    tunable("FENCE_MARGIN_MS", 300, 0, 20000, &vm.fence_margin_ms, err) < 0 ||
	    tunable("ADDR_LFT", 1, 1, 60, &vm.addr_lft_s, err) < 0 ||
	    tunable("LFT_SLACK_MS", 500, 0, 5000, &vm.lft_slack_ms, err) < 0 ||
	    tunable("PREEMPT_DEFER_MS", 500, 0, 60000, &vm.preempt_defer_ms, err) < 0 ||
	    tunable("LIVE_MS", 100, 20, 10000, &vm.live_ms, err) < 0 ||
	    tunable("FENCE_MS", 500, 50, 30000, &vm.fence_ms, err) < 0 ||
	    tunable("TAKEOVER_MS", 700, 100, 60000, &vm.takeover_ms, err) < 0)
		return -1;
	/* One lost renewal must not let the fence run out. */
	if (vm.live_ms * 2 > vm.fence_ms)
		return na_err_set(err, 2, "usage", NULL,
				  "NETAGENT_VIP_LIVE_MS (%d) must be at most half of "
				  "NETAGENT_VIP_FENCE_MS (%d)",
				  vm.live_ms, vm.fence_ms);
	/* A standby adds the VIP at the earliest takeover_ms after it received
	 * the holder's last renewal, which the holder sent earlier; the
	 * holder's element expires by fence_ms after sending, + the stall
	 * guard, + a jiffy (4 ms at HZ=250, 10 at HZ=100), + room for clock
	 * rates: docs/vip.md. */
	if (vm.takeover_ms < vm.fence_ms + VIP_FENCE_GUARD_MS + 30)
		return na_err_set(err, 2, "usage", NULL,
				  "NETAGENT_VIP_TAKEOVER_MS (%d) must be at least "
				  "NETAGENT_VIP_FENCE_MS (%d) + %d",
				  vm.takeover_ms, vm.fence_ms, VIP_FENCE_GUARD_MS + 30);
	/* The address must be able to outlive nothing: a fresh renewal gives
	 * it lft + slack, which has to end before the lease can. */
	if (vm.addr_lft_s * 1000 + vm.lft_slack_ms >= vm.lease_ttl_s * 1000)
		return na_err_set(err, 2, "usage", NULL,
				  "NETAGENT_VIP_ADDR_LFT (%d s) + NETAGENT_VIP_LFT_SLACK_MS (%d) "
				  "must stay below NETAGENT_VIP_LEASE_TTL (%d s)",
				  vm.addr_lft_s, vm.lft_slack_ms, vm.lease_ttl_s);
	return 0;
}

static int init(na_agent_t *ag, na_err_t *err)
{
	memset(&vm, 0, sizeof(vm));
	vm.ag = ag;
	if (tunables(err) < 0 || vip_load_state(err) < 0 || vip_routes_init(ag->api, err) < 0)
		return -1;
	if (vip_etcd_mode() && vip_elect_init(err) < 0)
		return -1;
	na_metrics_add_collector(vip_metrics_collect, NULL);
	for (vip_t *v = vm.vips; v; v = v->next) {
		vip_checks_start(v);
		vip_elect_added(v);
	}
	return 0;
}

/* ---- reconcile ---------------------------------------------------------- */

static void round_job_done(void)
{
	if (--vm.round_out == 0 && vm.round_done) {
		na_done_fn d = vm.round_done;
		vm.round_done = NULL;
		d(vm.round_ud);
	}
}

static void rec_ensured(vip_t *v, int rc, int added, const na_err_t *err, void *ud)
{
	(void)ud;
	if (rc < 0)
		na_warn("vip repair failed", "vip=%s error=\"%s\"", v->name, err->msg);
	else if (added) {
		/* Someone removed it: back, and the clients told again. */
		na_info("vip address re-added", "vip=%s", v->name);
		vip_garp_schedule(v);
	}
	round_job_done();
}

static void rec_probed(vip_t *v, int rc, int added, const na_err_t *err, void *ud)
{
	(void)ud, (void)err;
	if (rc == 0 && added && !vip_etcd_mode() && v->state != VIP_MASTER &&
	    v->health == VIP_H_UNKNOWN && !v->taking && !v->dropping && !v->deleting &&
	    !vm.stopping) {
		/* Our previous run held it: keep holding it while the checks
		 * decide, instead of removing and re-adding it. */
		vip_set_state(v, VIP_MASTER, vm.ag->cfg.name, "adopted from the previous run");
	} else if (rc == 0 && added && v->state != VIP_MASTER && !v->taking && !v->deleting) {
		if (vip_k_remove(v, NULL, NULL) == 0)
			na_info("vip address removed", "vip=%s reason=\"not master\"", v->name);
	}
	round_job_done();
}

static void reconcile(na_agent_t *ag, na_done_fn done, void *ud)
{
	(void)ag;
	vm.round_out = 1;
	vm.round_done = done;
	vm.round_ud = ud;
	for (vip_t *v = vm.vips; v; v = v->next) {
		if (v->deleting || v->busy || v->taking || v->dropping || vm.stopping)
			continue;
		if (v->spec.target_kind == VIP_T_CONTAINER) {
			int was = v->resolved;
			vip_resolve(v);
			if (was != v->resolved)
				vip_evaluate(v);
		}
		if (!v->resolved)
			continue;
		int rc = 1;
		if (v->state == VIP_MASTER && !vip_etcd_mode())
			rc = vip_k_ensure(v, 0, 0, 1, VIP_FENCE_KEEP, 0, rec_ensured, NULL);
		else if (v->state != VIP_MASTER && (!vip_etcd_mode() || vip_elect_not_ours(v)))
			rc = vip_k_probe(v, rec_probed, NULL);
		if (rc == 0)
			vm.round_out++;
	}
	round_job_done();
}

/* ---- SIGTERM -------------------------------------------------------------- */

static struct {
	na_done_fn done;
	void *ud;
	int out, fences;
} stop_st;

static void stop_one_done(vip_t *v, void *ud);

static void stop_fence_done(vip_t *v, int rc, int added, const na_err_t *err, void *ud)
{
	(void)added;
	if (rc < 0)
		na_warn("vip fence not removed", "vip=%s error=\"%s\"", v->name, err->msg);
	stop_one_done(v, ud);
}

static void stop_finished(void *ud)
{
	(void)ud;
	na_info("vip stopped", "vips=%u", vm.nvips);
	if (stop_st.done)
		stop_st.done(stop_st.ud);
}

static void stop_one_done(vip_t *v, void *ud)
{
	(void)v, (void)ud;
	if (--stop_st.out > 0)
		return;
	/* the fences go with the agent when it stops on purpose (a killed
	 * one leaves them: they keep its host from answering) */
	if (vip_etcd_mode() && !stop_st.fences) {
		stop_st.fences = 1;
		stop_st.out = 1;
		for (vip_t *w = vm.vips; w; w = w->next)
			if (!w->deleting && w->resolved &&
			    vip_k_fence_delete(w, stop_fence_done, NULL) == 0)
				stop_st.out++;
		if (--stop_st.out > 0)
			return;
	}
	if (vip_etcd_mode())
		vip_elect_stop(stop_finished, NULL);
	else
		stop_finished(NULL);
}

static void stop(na_agent_t *ag, na_done_fn done, void *ud)
{
	(void)ag;
	vm.stopping = 1;
	stop_st.done = done;
	stop_st.ud = ud;
	stop_st.out = 1;
	/* Address first, everywhere; then the lease goes (revoke), which
	 * deletes every key of ours at once so the standbys take over now. */
	for (vip_t *v = vm.vips; v; v = v->next) {
		vip_checks_stop(v);
		if (!v->deleting && (v->state == VIP_MASTER || v->addr_present || v->taking)) {
			stop_st.out++;
			vip_drop(v, VIP_BACKUP, "agent stopping", stop_one_done, NULL);
		}
	}
	stop_one_done(NULL, NULL);
}

static void host_info(na_agent_t *ag, json_t *host)
{
	(void)ag;
	json_t *counts = json_object_get(host, "counts");
	unsigned masters = 0;
	for (vip_t *v = vm.vips; v; v = v->next)
		masters += v->state == VIP_MASTER;
	json_object_set_new(counts, "vips", json_integer(vm.nvips));
	json_object_set_new(counts, "vips_master", json_integer(masters));
	json_t *o = json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i}", "mode",
			      vip_etcd_mode() ? "etcd" : "local", "lease_ttl_s", vm.lease_ttl_s,
			      "keepalive_ms", vm.keepalive_ms, "addr_lft_s", vm.addr_lft_s,
			      "fence_margin_ms", vm.fence_margin_ms, "live_ms", vm.live_ms,
			      "fence_ms", vm.fence_ms, "takeover_ms", vm.takeover_ms);
	if (vip_etcd_mode())
		vip_elect_info(o);
	json_object_set_new(host, "vip", o);
}

static void fini(na_agent_t *ag)
{
	(void)ag;
	if (vip_etcd_mode())
		vip_elect_fini();
	while (vm.vips)
		vip_unlink_free(vm.vips);
}

const na_module_t vip_module = {
    .name = "vip",
    .init = init,
    .reconcile = reconcile,
    .host_info = host_info,
    .stop = stop,
    .fini = fini,
};
