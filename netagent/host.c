#include "netagent/agent.h"
#include "netagent/validate.h"
#include "netagent/util.h"

#include <pthread.h>

static struct {
	na_agent_t *ag;
	const na_module_t *const *mods;
	size_t nmods;
	pthread_mutex_t lock;
	int etcd_known, etcd_reachable;
	char etcd_detail[256];
} host = {.lock = PTHREAD_MUTEX_INITIALIZER};

void na_host_set_etcd(int reachable, const char *detail)
{
	pthread_mutex_lock(&host.lock);
	host.etcd_known = 1;
	host.etcd_reachable = reachable;
	snprintf(host.etcd_detail, sizeof(host.etcd_detail), "%s", detail ? detail : "");
	pthread_mutex_unlock(&host.lock);
}

static void h_health(na_req_t *req, void *ud)
{
	(void)ud;
	na_reply_json(req, 200,
		      json_pack("{s:s, s:s, s:s}", "status", "ok", "version", NA_VERSION, "name",
				host.ag->cfg.name));
}

static json_t *etcd_json(void)
{
	const char *eps = host.ag->cfg.etcd;
	json_t *list = json_array();
	if (eps) {
		char *copy = strdup(eps), *save = NULL;
		for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
			json_array_append_new(list, json_string(t));
		free(copy);
	}
	pthread_mutex_lock(&host.lock);
	json_t *o = json_pack("{s:b, s:o}", "configured", eps != NULL, "endpoints", list);
	if (eps && host.etcd_known) {
		json_object_set_new(o, "reachable", json_boolean(host.etcd_reachable));
		if (host.etcd_detail[0])
			json_object_set_new(o, "detail", json_string(host.etcd_detail));
	} else {
		json_object_set_new(o, "reachable", eps ? json_null() : json_false());
	}
	pthread_mutex_unlock(&host.lock);
	return o;
}

/* The OCI runtime containers will use (provision/): where it is, if anywhere. */
static json_t *runtime_json(void)
{
	static const char *const paths[] = {"/usr/sbin/runc", "/usr/bin/runc"};
	for (size_t i = 0; i < NA_ARRAY_SIZE(paths); i++)
		if (access(paths[i], X_OK) == 0)
			return json_pack("{s:s, s:s, s:b}", "name", "runc", "path", paths[i],
					 "available", 1);
	return json_pack("{s:s, s:b}", "name", "runc", "available", 0);
}

static void h_host(na_req_t *req, void *ud)
{
	(void)ud;
	na_agent_t *ag = host.ag;
	char addr[16] = "";
	if (ag->underlay.addr)
		na_ipv4_fmt(ag->underlay.addr, addr, sizeof(addr));
	json_t *counts = json_object();
	for (size_t i = 0; i < host.nmods; i++)
		if (host.mods[i]->host_info)
			host.mods[i]->host_info(ag, counts);
	json_t *o = json_pack(
	    "{s:s, s:s, s:{s:s, s:s, s:i}, s:o, s:o, s:I, s:o, s:{s:s, s:I}}", "name", ag->cfg.name,
	    "version", NA_VERSION, "underlay", "interface", ag->underlay.ifname, "address", addr,
	    "mtu", ag->underlay.mtu, "etcd", etcd_json(), "runtime", runtime_json(), "uptime_s",
	    (json_int_t)((na_now_ms() - ag->started_ms) / 1000), "counts", counts, "state", "dir",
	    ag->cfg.state_dir, "quarantined", (json_int_t)na_state_quarantined(ag->state));
	na_reply_json(req, 200, o);
}

static const na_route_t routes[] = {
    {"GET", "/v1/health", h_health, NULL},
    {"GET", "/v1/host", h_host, NULL},
};

int na_host_init(na_agent_t *ag, const na_module_t *const *mods, size_t nmods, na_err_t *err)
{
	host.ag = ag;
	host.mods = mods;
	host.nmods = nmods;
	return na_api_register(ag->api, routes, NA_ARRAY_SIZE(routes), err);
}
