#include "netagent/agent.h"
#include "netagent/validate.h"
#include "netagent/util.h"

static struct {
	na_agent_t *ag;
	const na_module_t *const *mods;
	size_t nmods;
} host;

static void h_health(na_req_t *req, void *ud)
{
	(void)ud;
	na_reply_json(req, 200,
		      json_pack("{s:s, s:s, s:s}", "status", "ok", "version", NA_VERSION, "name",
				host.ag->cfg.name));
}

/* etcd as the shared session sees it: per endpoint and per user (module). */
static json_t *etcd_json(void)
{
	na_agent_t *ag = host.ag;
	json_t *o = json_pack("{s:b}", "configured", ag->cfg.etcd != NULL);
	if (ag->etcd)
		na_etcd_info(ag->etcd, o);
	else
		json_object_set_new(o, "reachable", json_false());
	return o;
}

static void h_host(na_req_t *req, void *ud)
{
	(void)ud;
	na_agent_t *ag = host.ag;
	char addr[16] = "";
	if (ag->underlay.addr)
		na_ipv4_fmt(ag->underlay.addr, addr, sizeof(addr));
	json_t *o = json_pack(
	    "{s:s, s:s, s:{s:s, s:s, s:i}, s:o, s:I, s:{}, s:{s:s, s:I}}", "name", ag->cfg.name,
	    "version", NA_VERSION, "underlay", "interface", ag->underlay.ifname, "address", addr,
	    "mtu", ag->underlay.mtu, "etcd", etcd_json(), "uptime_s",
	    (json_int_t)((na_now_ms() - ag->started_ms) / 1000), "counts", "state", "dir",
	    ag->cfg.state_dir, "quarantined", (json_int_t)na_state_quarantined(ag->state));
	for (size_t i = 0; o && i < host.nmods; i++)
		if (host.mods[i]->host_info)
			host.mods[i]->host_info(ag, o);
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
