/* The provision module: registration with the core, GET /v1/host's
 * "runtime", metrics, and what other modules may ask (provision.h). */
#include "provision/provision.h"
#include "netagent/log.h"
#include "netagent/metrics.h"
#include "netagent/util.h"
#include "provision/pv_int.h"
#include "provision/role.h"

#include <stdio.h>
#include <string.h>

static void collect(FILE *out, void *ud)
{
	(void)ud;
	unsigned long long by[PV_S_COUNT] = {0};
	for (pv_ct_t *c = pv.cts; c; c = c->next)
		by[c->state]++;
	fprintf(out, "# HELP netagent_containers Containers on this host by state.\n"
		     "# TYPE netagent_containers gauge\n");
	for (int s = 0; s < PV_S_COUNT; s++)
		fprintf(out, "netagent_containers{state=\"%s\"} %llu\n", pv_state_names[s], by[s]);
	fprintf(out,
		"# HELP netagent_container_restarts_total Restarts by the restart policy.\n"
		"# TYPE netagent_container_restarts_total counter\n"
		"netagent_container_restarts_total %llu\n"
		"# HELP netagent_container_starts_total Container processes started.\n"
		"# TYPE netagent_container_starts_total counter\n"
		"netagent_container_starts_total %llu\n"
		"# HELP netagent_container_start_failures_total Starts the runtime refused.\n"
		"# TYPE netagent_container_start_failures_total counter\n"
		"netagent_container_start_failures_total %llu\n"
		"# HELP netagent_container_exits_total Container exits seen.\n"
		"# TYPE netagent_container_exits_total counter\n"
		"netagent_container_exits_total %llu\n"
		"# HELP netagent_container_start_seconds From starting the monitor to the "
		"container's process running.\n"
		"# TYPE netagent_container_start_seconds histogram\n",
		pv.restarts_total, pv.starts_total, pv.start_failures, pv.exits_total);
	for (size_t i = 0; i < NA_ARRAY_SIZE(pv_lat_bounds); i++)
		fprintf(out, "netagent_container_start_seconds_bucket{le=\"%g\"} %llu\n",
			pv_lat_bounds[i], pv.lat_buckets[i]);
	fprintf(out,
		"netagent_container_start_seconds_bucket{le=\"+Inf\"} %llu\n"
		"netagent_container_start_seconds_sum %.6f\n"
		"netagent_container_start_seconds_count %llu\n",
		pv.lat_count, pv.lat_sum, pv.lat_count);
}

static int init(na_agent_t *ag, na_err_t *err)
{
	pv.ag = ag;
	snprintf(pv.ct_dir, sizeof(pv.ct_dir), "%s/containers", ag->cfg.run_dir);
	snprintf(pv.runc_root, sizeof(pv.runc_root), "%s/runc", ag->cfg.run_dir);
	snprintf(pv.ns_dir, sizeof(pv.ns_dir), "%s/ctns", ag->cfg.run_dir);
	snprintf(pv.vol_dir, sizeof(pv.vol_dir), "%s/volumes", na_state_dir(ag->state));
	pv_ops_init();
	pv_reconcile_init();
	if (pv_load_state(err) < 0 || pv_routes_init(ag->api, err) < 0 ||
	    pv_backups_init(ag, err) < 0 || pv_probe_start(err) < 0)
		return -1;
	for (size_t i = 0; pv_roles[i]; i++)
		if (pv_roles[i]->init && pv_roles[i]->init(ag, err) < 0) {
			na_err_prefix(err, "role %s", pv_roles[i]->name);
			return -1;
		}
	na_metrics_add_collector(collect, NULL);
	if (pv.n)
		na_info("containers loaded", "count=%u", pv.n);
	return 0;
}

static void host_info(na_agent_t *ag, json_t *host)
{
	(void)ag;
	unsigned running = 0;
	for (pv_ct_t *c = pv.cts; c; c = c->next)
		running += c->state == PV_S_RUNNING;
	json_t *counts = json_object_get(host, "counts");
	json_object_set_new(counts, "containers", json_integer(pv.n));
	json_object_set_new(counts, "containers_running", json_integer(running));
	json_object_set_new(host, "runtime", pv_probe_json());
}

/* The containers are the point of the monitors: they keep running while
 * the agent stops. Nothing to do. */
static void stop(na_agent_t *ag, na_done_fn done, void *ud)
{
	(void)ag;
	done(ud);
}

static void fini(na_agent_t *ag)
{
	(void)ag;
	pv.closing = 1; /* the containers are not deleted: roles hear nothing more */
	for (size_t i = 0; pv_roles[i]; i++)
		if (pv_roles[i]->fini)
			pv_roles[i]->fini();
	while (pv.cts) {
		pv_ct_t *c = pv.cts;
		pv_unwatch(c);
		for (pv_wait_t *w = c->waiters, *n; w; w = n) {
			n = w->next;
			free(w);
		}
		c->waiters = NULL;
		pv_ct_unlink_free(c);
	}
	pv_backups_fini();
}

int pv_container_info(const char *name, pv_info_t *out, na_err_t *err)
{
	pv_ct_t *c = name ? pv_ct_find(name) : NULL;
	if (!c)
		return na_err_set(err, 404, "not_found", NULL, "container %s not found",
				  name ? name : "(null)");
	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s", c->name);
	snprintf(out->role, sizeof(out->role), "%s", c->spec.role->name);
	snprintf(out->state, sizeof(out->state), "%s", pv_state_names[c->state]);
	out->pid = c->state == PV_S_RUNNING ? c->pid : 0;
	pv_ct_netns(c, out->netns, sizeof(out->netns));
	for (size_t i = 0; i < c->nifs && i < NA_ARRAY_SIZE(out->ifs); i++) {
		snprintf(out->ifs[i].network, sizeof(out->ifs[i].network), "%s", c->ifs[i].network);
		snprintf(out->ifs[i].ifname, sizeof(out->ifs[i].ifname), "%s", c->ifs[i].ifname);
		snprintf(out->ifs[i].ip, sizeof(out->ifs[i].ip), "%s", c->ifs[i].ip);
		out->nifs++;
	}
	return 0;
}

const na_module_t pv_module = {
    .name = "provision",
    .init = init,
    .reconcile = pv_reconcile,
    .host_info = host_info,
    .stop = stop,
    .fini = fini,
};
