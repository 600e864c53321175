/* vxlan.h's calls for other modules: the same validation and path as the
 * endpoint routes, with a callback instead of a reply. */
#include "netagent/util.h"
#include "netagent/validate.h"
#include "vxlan/endpoints.h"
#include "vxlan/vxlan.h"

static vx_net_t *find_net(const char *network, na_err_t *err)
{
	vx_net_t *n = network ? vx_net_find(network) : NULL;
	if (!n)
		na_err_set(err, 404, "not_found", "network", "network %s not found",
			   network ? network : "");
	return n;
}

int vx_network_info(const char *network, vx_net_info_t *out, na_err_t *err)
{
	vx_net_t *n = find_net(network, err);
	if (!n)
		return -1;
	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s", n->name);
	out->vni = n->vni;
	na_addr_from_v4(n->subnet, n->plen, &out->subnet);
	out->mtu = n->mtu;
	out->ready = n->ready;
	return 0;
}

int vx_ip_check(const char *network, const char *ep, const char *ip, const char *field,
		na_err_t *err)
{
	uint32_t a;
	vx_net_t *n = find_net(network, err);
	if (!n || vx_parse_ep_ip(n, ip, field, &a, err) < 0)
		return -1;
	vx_ep_t *o = vx_ep_find_ip(n, a);
	if (o && (o->src != VX_LOCAL || !ep || strcmp(o->name, ep)))
		return na_err_set(err, 409, "ip_in_use", field, "%s is used by endpoint %s of %s",
				  ip, o->name, n->name);
	return 0;
}

struct attach {
	vx_attach_cb cb;
	vx_detach_cb dcb;
	void *ud;
};

static void attached(void *ud, int status, const na_err_t *err, vx_net_t *n, const vx_ep_t *ep)
{
	struct attach *a = ud;
	if (status < 0) {
		if (a->cb)
			a->cb(a->ud, -1, err, NULL);
		else
			a->dcb(a->ud, -1, err);
		free(a);
		return;
	}
	if (a->dcb) {
		a->dcb(a->ud, 0, NULL);
		free(a);
		return;
	}
	vx_attachment_t out = {0};
	snprintf(out.network, sizeof(out.network), "%s", n->name);
	snprintf(out.name, sizeof(out.name), "%s", ep->name);
	snprintf(out.ifname, sizeof(out.ifname), "%s", ep->ifname);
	na_addr_from_v4(ep->ip, ep->plen, &out.ip);
	memcpy(out.mac, ep->mac, 6);
	out.mtu = n->mtu;
	a->cb(a->ud, 0, NULL, &out);
	free(a);
}

int vx_attach(const vx_attach_req_t *req, vx_attach_cb cb, void *ud, na_err_t *err)
{
	vx_net_t *n = find_net(req->network, err);
	vx_ep_t want = {0};
	if (!n || na_name_check(req->name, "name", err) < 0 ||
	    vx_check_netns_path(req->netns ? req->netns : "", err) < 0 ||
	    (req->ifname && vx_check_ifname(req->ifname, err) < 0) ||
	    (req->ip && vx_parse_ep_ip(n, req->ip, "ip", &want.ip, err) < 0))
		return -1;
	if (req->mac && na_mac_parse(req->mac, want.mac) < 0)
		return na_err_set(err, 422, "invalid_field", "mac", "mac must be a unicast MAC");
	snprintf(want.name, sizeof(want.name), "%s", req->name);
	snprintf(want.netns, sizeof(want.netns), "%s", req->netns);
	snprintf(want.ifname, sizeof(want.ifname), "%s", req->ifname ? req->ifname : "eth0");
	struct attach *a = calloc(1, sizeof(*a));
	if (!a)
		return na_err_errno(err, ENOMEM, "attach");
	a->cb = cb;
	a->ud = ud;
	if (vx_ep_put_local(n, &want, req->mac != NULL, attached, a, err) < 0) {
		free(a);
		return -1;
	}
	return 0;
}

static void detach_absent(void *ud)
{
	struct attach *a = ud;
	a->dcb(a->ud, 0, NULL);
	free(a);
}

int vx_detach(const char *network, const char *name, vx_detach_cb cb, void *ud, na_err_t *err)
{
	vx_net_t *n = network ? vx_net_find(network) : NULL;
	vx_ep_t *e = n && name ? vx_ep_find(n, name) : NULL;
	struct attach *a = calloc(1, sizeof(*a));
	if (!a)
		return na_err_errno(err, ENOMEM, "detach");
	a->dcb = cb;
	a->ud = ud;
	/* Absent (or its network gone) is what the caller wants: success,
	 * still called back later, never from inside this call. */
	if (!e || e->src != VX_LOCAL) {
		if (na_defer(vx.ag, detach_absent, a) < 0) {
			free(a);
			return na_err_errno(err, ENOMEM, "detach");
		}
		return 0;
	}
	if (vx_ep_del_local(n, e, attached, a, err) < 0) {
		free(a);
		return -1;
	}
	return 0;
}
