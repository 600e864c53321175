/* Endpoint routes: local attachments (…/endpoints) and the lists; the
 * controller-pushed remote endpoints live in remotes.c. */
#include "netagent/util.h"
#include "netagent/validate.h"
#include "vxlan/endpoints.h"

static const na_field_t ep_fields[] = {
    {"netns", NA_F_STRING, 1, 0, 0},
    {"ip", NA_F_STRING, 0, 0, 0},
    {"mac", NA_F_STRING, 0, 0, 0},
    {"ifname", NA_F_STRING, 0, 0, 0},
};

/* "198.18.1.5/24" or "198.18.1.5"; must sit inside n's subnet as a host. */
int vx_parse_ep_ip(const vx_net_t *n, const char *s, const char *field, uint32_t *ip, na_err_t *err)
{
	int plen = n->plen;
	if (!s || (na_cidr_parse(s, ip, &plen) < 0 && na_ipv4_parse(s, ip) < 0))
		return na_err_set(err, 422, "invalid_field", field,
				  "%s must be an IPv4 address like 198.18.1.5/24, got '%s'", field,
				  s ? s : "");
	uint32_t mask = 0xffffffffu << (32 - n->plen);
	char sub[16];
	na_ipv4_fmt(n->subnet, sub, sizeof(sub));
	if (plen != n->plen)
		return na_err_set(err, 422, "invalid_field", field,
				  "%s has prefix /%d but network %s is %s/%d", field, plen, n->name,
				  sub, n->plen);
	if ((*ip & mask) != n->subnet)
		return na_err_set(err, 422, "invalid_field", field,
				  "%s %s is outside network %s's subnet %s/%d", field, s, n->name,
				  sub, n->plen);
	if (n->plen < 31 && (*ip == n->subnet || *ip == (n->subnet | ~mask)))
		return na_err_set(err, 422, "invalid_field", field,
				  "%s is the network or broadcast address of %s/%d", field, sub,
				  n->plen);
	return 0;
}

int vx_check_ifname(const char *s, na_err_t *err)
{
	size_t l = strlen(s);
	if (l == 0 || l > 15 || !strcmp(s, ".") || !strcmp(s, ".."))
		return na_err_set(err, 422, "invalid_field", "ifname",
				  "ifname must have 1..15 characters");
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.'))
			return na_err_set(err, 422, "invalid_field", "ifname",
					  "ifname may only use letters, digits, '-', '_' and '.'");
	return 0;
}

/* Syntax only: what the path points to is checked off the loop thread
 * (vx_job_probe_netns), since opening it may block or have side effects. */
int vx_check_netns_path(const char *p, na_err_t *err)
{
	size_t l = strlen(p);
	if (p[0] != '/' || strstr(p, "/../") || strstr(p, "/./") || strstr(p, "//") ||
	    (l >= 3 && !strcmp(p + l - 3, "/..")) || (l >= 2 && !strcmp(p + l - 2, "/.")) ||
	    l >= 256)
		return na_err_set(err, 422, "invalid_field", "netns",
				  "netns must be an absolute path without '..' (under 256 chars)");
	for (const char *c = p; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			return na_err_set(err, 422, "invalid_field", "netns",
					  "netns must not contain control characters");
	return 0;
}

static void ep_replied(void *ud, int status, const na_err_t *err, vx_net_t *n, const vx_ep_t *ep)
{
	na_req_t *req = ud;
	if (status < 0)
		na_reply_err(req, err);
	else if (status == 204)
		na_reply_empty(req, 204);
	else
		na_reply_json(req, status, vx_ep_json(n, ep));
}

static void h_ep_put(na_req_t *req, void *ud)
{
	(void)ud;
	na_err_t err = NA_ERR_INIT;
	vx_net_t *n = vx_req_net(req);
	if (!n || vx_wait_idle(n, req, h_ep_put))
		return;
	vx_ep_t want = {0};
	cleanup_json json_t *b = NULL;
	if (na_name_check(req->params[1], "name", &err) < 0)
		goto fail;
	b = na_body_parse(req->body, req->body_len, &err);
	if (!b || na_fields_check(b, ep_fields, NA_ARRAY_SIZE(ep_fields), NULL, &err) < 0)
		goto fail;
	snprintf(want.name, sizeof(want.name), "%s", req->params[1]);
	const char *ns = json_string_value(json_object_get(b, "netns"));
	const char *ip = json_string_value(json_object_get(b, "ip"));
	const char *mac = json_string_value(json_object_get(b, "mac"));
	const char *ifn = json_string_value(json_object_get(b, "ifname"));
	if (vx_check_netns_path(ns, &err) < 0)
		goto fail;
	snprintf(want.netns, sizeof(want.netns), "%s", ns);
	if (ip && vx_parse_ep_ip(n, ip, "ip", &want.ip, &err) < 0)
		goto fail;
	if (mac && na_mac_parse(mac, want.mac) < 0) {
		na_err_set(&err, 422, "invalid_field", "mac",
			   "mac must be a unicast MAC like 02:84:c6:12:01:05, got '%s'", mac);
		goto fail;
	}
	if (ifn && vx_check_ifname(ifn, &err) < 0)
		goto fail;
	snprintf(want.ifname, sizeof(want.ifname), "%s", ifn ? ifn : "eth0");
	if (vx_ep_put_local(n, &want, mac != NULL, ep_replied, req, &err) < 0)
		goto fail;
	return;
fail:
	na_reply_err(req, &err);
}

/* want_local: 1 local only, 0 remote (pushed) only, -1 any. */
vx_ep_t *vx_req_ep(na_req_t *req, vx_net_t *n, int want_local)
{
	na_err_t err = NA_ERR_INIT;
	if (na_name_check(req->params[1], "name", &err) < 0) {
		na_reply_err(req, &err);
		return NULL;
	}
	vx_ep_t *e = vx_ep_find(n, req->params[1]);
	if (!e || (want_local == 1 && e->src != VX_LOCAL) ||
	    (want_local == 0 && e->src != VX_PUSHED)) {
		na_err_set(&err, 404, "not_found", NULL, "%s endpoint %s not found in network %s",
			   want_local == 1   ? "local"
			   : want_local == 0 ? "remote"
					     : "",
			   req->params[1], n->name);
		na_reply_err(req, &err);
		return NULL;
	}
	return e;
}

static void h_ep_get(na_req_t *req, void *ud)
{
	(void)ud;
	vx_net_t *n = vx_req_net(req);
	vx_ep_t *e = n ? vx_req_ep(req, n, -1) : NULL;
	if (e)
		na_reply_json(req, 200, vx_ep_json(n, e));
}

static int cmp_ep(const void *a, const void *b)
{
	return strcmp((*(vx_ep_t *const *)a)->name, (*(vx_ep_t *const *)b)->name);
}

/* Lists show the model, pending changes included: what the agent is doing. */
static void h_ep_list(na_req_t *req, void *ud)
{
	(void)ud;
	vx_net_t *n = vx_req_net(req);
	if (!n)
		return;
	size_t k = 0, cnt = n->nlocal + n->npushed + n->nlearned;
	vx_ep_t **v = calloc(cnt + 1, sizeof(*v));
	for (vx_ep_t *e = n->eps; e && v && k < cnt; e = e->next)
		v[k++] = e;
	if (v)
		qsort(v, k, sizeof(*v), cmp_ep);
	json_t *items = json_array();
	for (size_t i = 0; i < k; i++)
		json_array_append_new(items, vx_ep_json(n, v[i]));
	free(v);
	na_reply_json(req, 200, json_pack("{s:o}", "items", items));
}

static void h_ep_delete(na_req_t *req, void *ud)
{
	(void)ud;
	na_err_t err = NA_ERR_INIT;
	vx_net_t *n = vx_req_net(req);
	if (!n || vx_wait_idle(n, req, h_ep_delete))
		return;
	vx_ep_t *e = vx_req_ep(req, n, 1);
	if (e && vx_ep_del_local(n, e, ep_replied, req, &err) < 0)
		na_reply_err(req, &err);
}

static const na_route_t routes[] = {
    {"GET", "/v1/networks/{net}/endpoints", h_ep_list, NULL},
    {"PUT", "/v1/networks/{net}/endpoints/{name}", h_ep_put, NULL},
    {"GET", "/v1/networks/{net}/endpoints/{name}", h_ep_get, NULL},
    {"DELETE", "/v1/networks/{net}/endpoints/{name}", h_ep_delete, NULL},
    {"GET", "/v1/networks/{net}/remote-endpoints", h_ep_list, NULL},
    {"GET", "/v1/networks/{net}/remote-endpoints/{name}", h_ep_get, NULL},
};

int vx_routes_ep_init(na_api_t *api, na_err_t *err)
{
	if (na_api_register(api, routes, NA_ARRAY_SIZE(routes), err) < 0)
		return -1;
	return vx_routes_remote_init(api, err);
}
