/* The vxlan module: registration with the core. */
#include "vxlan/vxlan.h"
#include "netagent/metrics.h"
#include "netagent/nl.h"
#include "netagent/util.h"
#include "netagent/validate.h"
#include "vxlan/vx_int.h"

static void collect(FILE *out, void *ud)
{
	(void)ud;
	unsigned long long local = 0, pushed = 0, learned = 0, bad = 0;
	for (vx_net_t *n = vx.nets; n; n = n->next) {
		local += n->nlocal;
		pushed += n->npushed;
		learned += n->nlearned;
		bad += n->error[0] != 0;
	}
	fprintf(out,
		"# HELP netagent_networks Overlay networks desired on this host.\n"
		"# TYPE netagent_networks gauge\nnetagent_networks %u\n"
		"# HELP netagent_networks_failing Networks whose last reconcile failed.\n"
		"# TYPE netagent_networks_failing gauge\nnetagent_networks_failing %llu\n"
		"# HELP netagent_endpoints Endpoints by source.\n"
		"# TYPE netagent_endpoints gauge\n"
		"netagent_endpoints{source=\"local\"} %llu\n"
		"netagent_endpoints{source=\"controller\"} %llu\n"
		"netagent_endpoints{source=\"etcd\"} %llu\n"
		"# HELP netagent_reconcile_repairs_total Kernel drift repaired by reconcile.\n"
		"# TYPE netagent_reconcile_repairs_total counter\n"
		"netagent_reconcile_repairs_total %llu\n"
		"# HELP netagent_reconcile_rounds_total Reconcile rounds started.\n"
		"# TYPE netagent_reconcile_rounds_total counter\n"
		"netagent_reconcile_rounds_total %llu\n"
		"# HELP netagent_network_reconciles_total Network diffs run, by cause: a netlink\n"
		"# notification of the network's namespaces, or the periodic sweep.\n"
		"# TYPE netagent_network_reconciles_total counter\n"
		"netagent_network_reconciles_total{cause=\"event\"} %llu\n"
		"netagent_network_reconciles_total{cause=\"sweep\"} %llu\n",
		vx.nnets, bad, local, pushed, learned, vx.repairs, vx.reconciles,
		vx.event_reconciles, vx.sweep_reconciles);
}

static int init(na_agent_t *ag, na_err_t *err)
{
	vx.ag = ag;
	if (na_env_int("NETAGENT_VX_SWEEP_MS", VX_SWEEP_MS, 1000, 86400000, &vx.sweep_ms, err) < 0)
		return -1;
	snprintf(vx.netns_dir, sizeof(vx.netns_dir), "%s/netns", ag->cfg.run_dir);
	if (na_netns_self_ids(&vx.self_nsid, &vx.init_nsid, err) < 0)
		return -1;
	if (vx_load_state(err) < 0 || vx_routes_init(ag->api, err) < 0 ||
	    vx_etcd_start(ag, err) < 0)
		return -1;
	/* Our networks' namespaces are never endpoint targets: know them from
	 * the start (startup, before the API serves; our own mounts). */
	for (vx_net_t *n = vx.nets; n; n = n->next) {
		na_err_t e = NA_ERR_INIT;
		int fd = na_netns_open(n->netns, &n->nsid, &e);
		if (fd >= 0)
			close(fd);
	}
	na_metrics_add_collector(collect, NULL);
	return 0;
}

static void host_info(na_agent_t *ag, json_t *host)
{
	(void)ag;
	json_t *counts = json_object_get(host, "counts");
	unsigned long long local = 0, remote = 0;
	for (vx_net_t *n = vx.nets; n; n = n->next) {
		local += n->nlocal;
		remote += n->npushed + n->nlearned;
	}
	json_object_set_new(counts, "networks", json_integer(vx.nnets));
	json_object_set_new(counts, "endpoints", json_integer((json_int_t)local));
	json_object_set_new(counts, "remote_endpoints", json_integer((json_int_t)remote));
}

static void fini(na_agent_t *ag)
{
	(void)ag;
	vx_etcd_stop();
	vx_watch_fini();
	while (vx.nets)
		vx_net_unlink_free(vx.nets);
}

const na_module_t vx_module = {
    .name = "vxlan",
    .init = init,
    .reconcile = vx_reconcile,
    .host_info = host_info,
    .fini = fini,
};
