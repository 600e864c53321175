/* The desired state of the overlay: networks and their endpoints, their
 * JSON shapes (API and state files) and loading them at start. */
#include "vxlan/kernel.h"
#include "vxlan/vx_int.h"
#include "netagent/log.h"
#include "netagent/util.h"
#include "netagent/validate.h"

vx_t vx;

vx_net_t *vx_net_find(const char *name)
{
	for (vx_net_t *n = vx.nets; n; n = n->next)
		if (!n->deleted && !strcmp(n->name, name))
			return n;
	return NULL;
}

vx_net_t *vx_net_find_vni(uint32_t vni)
{
	for (vx_net_t *n = vx.nets; n; n = n->next)
		if (!n->deleted && n->vni == vni)
			return n;
	return NULL;
}

vx_ep_t *vx_ep_find(vx_net_t *n, const char *name)
{
	for (vx_ep_t *e = n->eps; e; e = e->next)
		if (!strcmp(e->name, name))
			return e;
	return NULL;
}

vx_ep_t *vx_ep_find_ip(vx_net_t *n, uint32_t ip)
{
	for (vx_ep_t *e = n->eps; e; e = e->next)
		if (e->ip == ip)
			return e;
	return NULL;
}

vx_ep_t *vx_ep_find_mac(vx_net_t *n, const uint8_t mac[6])
{
	for (vx_ep_t *e = n->eps; e; e = e->next)
		if (!memcmp(e->mac, mac, 6))
			return e;
	return NULL;
}

vx_net_t *vx_net_new(const char *name, uint32_t vni, uint32_t subnet, int plen, int mtu,
		     na_err_t *err)
{
	vx_net_t *n = calloc(1, sizeof(*n));
	if (!n) {
		na_err_errno(err, ENOMEM, "network %s", name);
		return NULL;
	}
	if (vx_ipam_new(subnet, plen, &n->ipam, err) < 0) {
		free(n);
		return NULL;
	}
	snprintf(n->name, sizeof(n->name), "%s", name);
	n->vni = vni;
	n->subnet = subnet;
	n->plen = plen;
	n->mtu_set = mtu > 0;
	n->mtu = mtu > 0 ? mtu : vx.ag->underlay.mtu - 50;
	/* Per-agent namespace names, so several agents can share a machine. */
	snprintf(n->netns, sizeof(n->netns), "%s/%s-%s", vx.netns_dir, vx.ag->cfg.name, name);
	n->next = vx.nets;
	vx.nets = n;
	vx.nnets++;
	return n;
}

void vx_net_unlink_free(vx_net_t *n)
{
	for (vx_net_t **p = &vx.nets; *p; p = &(*p)->next) {
		if (*p == n) {
			*p = n->next;
			vx.nnets--;
			break;
		}
	}
	while (n->eps) {
		vx_ep_t *e = n->eps;
		n->eps = e->next;
		free(e);
	}
	vx_ipam_free(n->ipam);
	free(n);
}

static unsigned *counter(vx_net_t *n, enum vx_src src)
{
	return src == VX_LOCAL ? &n->nlocal : src == VX_PUSHED ? &n->npushed : &n->nlearned;
}

vx_ep_t *vx_ep_add(vx_net_t *n, const vx_ep_t *tmpl)
{
	vx_ep_t *e = malloc(sizeof(*e));
	if (!e)
		return NULL;
	*e = *tmpl;
	e->next = n->eps;
	n->eps = e;
	(*counter(n, e->src))++;
	return e;
}

void vx_ep_remove(vx_net_t *n, vx_ep_t *ep)
{
	for (vx_ep_t **p = &n->eps; *p; p = &(*p)->next) {
		if (*p == ep) {
			*p = ep->next;
			(*counter(n, ep->src))--;
			vx_ipam_release(n->ipam, ep->ip);
			free(ep);
			return;
		}
	}
}

void vx_mac_from_ip(uint32_t ip, uint8_t mac[6])
{
	/* One scheme for the API and the kernel layer (SAND's 02:84:a:b:c:d). */
	vx_k_mac_from_ip(ip, mac);
}

static json_t *cidr_json(uint32_t ip, int plen)
{
	char buf[24];
	na_cidr_fmt(ip, plen, buf, sizeof(buf));
	return json_string(buf);
}

static json_t *ip_json(uint32_t ip)
{
	char a[16];
	na_ipv4_fmt(ip, a, sizeof(a));
	return json_string(a);
}

static json_t *mac_json(const uint8_t mac[6])
{
	char m[18];
	na_mac_fmt(mac, m, sizeof(m));
	return json_string(m);
}

json_t *vx_net_json(const vx_net_t *n)
{
	json_t *o =
	    json_pack("{s:s, s:I, s:o, s:i, s:s, s:{s:I, s:I}, s:s, s:I}", "name", n->name, "vni",
		      (json_int_t)n->vni, "subnet", cidr_json(n->subnet, n->plen), "mtu", n->mtu,
		      "netns", n->netns, "endpoints", "local", (json_int_t)n->nlocal, "remote",
		      (json_int_t)(n->npushed + n->nlearned), "status",
		      n->error[0] ? "error"
		      : n->ready  ? "ready"
				  : "pending",
		      "repairs", (json_int_t)n->repairs);
	if (n->error[0])
		json_object_set_new(o, "error", json_string(n->error));
	return o;
}

static const char *src_name(enum vx_src s)
{
	return s == VX_LOCAL ? "local" : s == VX_PUSHED ? "controller" : "etcd";
}

json_t *vx_ep_json(const vx_net_t *n, const vx_ep_t *e)
{
	json_t *o = json_pack("{s:s, s:s, s:o, s:o, s:b, s:s, s:o}", "name", e->name, "network",
			      n->name, "ip", cidr_json(e->ip, e->plen), "mac", mac_json(e->mac),
			      "local", e->src == VX_LOCAL, "source", src_name(e->src), "vtep",
			      e->vtep ? ip_json(e->vtep) : json_null());
	if (e->src == VX_LOCAL) {
		json_object_set_new(o, "ifname", json_string(e->ifname));
		json_object_set_new(o, "netns", json_string(e->netns));
	}
	if (e->host[0])
		json_object_set_new(o, "host", json_string(e->host));
	return o;
}

json_t *vx_net_state_json(const vx_net_t *n)
{
	json_t *o = json_pack("{s:I, s:o}", "vni", (json_int_t)n->vni, "subnet",
			      cidr_json(n->subnet, n->plen));
	if (n->mtu_set)
		json_object_set_new(o, "mtu", json_integer(n->mtu));
	return o;
}

json_t *vx_ep_state_json(const vx_ep_t *e)
{
	return json_pack("{s:o, s:o, s:s, s:s}", "ip", cidr_json(e->ip, e->plen), "mac",
			 mac_json(e->mac), "ifname", e->ifname, "netns", e->netns);
}

json_t *vx_remotes_state_json(const vx_net_t *n)
{
	json_t *items = json_object();
	for (const vx_ep_t *e = n->eps; e; e = e->next)
		if (e->src == VX_PUSHED)
			json_object_set_new(items, e->name,
					    json_pack("{s:o, s:o, s:o}", "ip",
						      cidr_json(e->ip, e->plen), "mac",
						      mac_json(e->mac), "vtep", ip_json(e->vtep)));
	return json_pack("{s:o}", "items", items);
}

void vx_ep_kind(const vx_net_t *n, char *buf, size_t len)
{
	snprintf(buf, len, "endpoints/%s", n->name);
}

/* ---- loading at start ---------------------------------------------------- */

static int parse_ep(vx_net_t *n, const char *name, json_t *o, enum vx_src src, vx_ep_t *e,
		    na_err_t *err)
{
	const char *ip = json_string_value(json_object_get(o, "ip"));
	const char *mac = json_string_value(json_object_get(o, "mac"));
	memset(e, 0, sizeof(*e));
	snprintf(e->name, sizeof(e->name), "%s", name);
	e->src = src;
	if (!ip || na_cidr_parse(ip, &e->ip, &e->plen) < 0 || !mac || na_mac_parse(mac, e->mac) < 0)
		return na_err_set(err, 500, "state_corrupt", NULL, "endpoint %s/%s: bad ip or mac",
				  n->name, name);
	if (src == VX_LOCAL) {
		const char *ns = json_string_value(json_object_get(o, "netns"));
		const char *ifn = json_string_value(json_object_get(o, "ifname"));
		if (!ns || !ifn)
			return na_err_set(err, 500, "state_corrupt", NULL,
					  "endpoint %s/%s: missing netns or ifname", n->name, name);
		snprintf(e->netns, sizeof(e->netns), "%s", ns);
		snprintf(e->ifname, sizeof(e->ifname), "%s", ifn);
		e->vtep = vx.ag->underlay.addr;
	} else {
		const char *vt = json_string_value(json_object_get(o, "vtep"));
		if (!vt || na_ipv4_parse(vt, &e->vtep) < 0)
			return na_err_set(err, 500, "state_corrupt", NULL,
					  "remote endpoint %s/%s: bad vtep", n->name, name);
	}
	return 0;
}

static int load_ep(const char *name, json_t *o, void *ud, na_err_t *err)
{
	vx_net_t *n = ud;
	vx_ep_t e;
	if (parse_ep(n, name, o, VX_LOCAL, &e, err) < 0 ||
	    vx_ipam_reserve(n->ipam, e.ip, err) < 0) {
		/* One bad endpoint must not take the others down with it. */
		na_error("endpoint state skipped", "network=%s endpoint=%s error=\"%s\"", n->name,
			 name, err->msg);
		na_err_clear(err);
		return 0;
	}
	return vx_ep_add(n, &e) ? 0 : na_err_errno(err, ENOMEM, "load endpoint");
}

static int load_remotes(vx_net_t *n, na_err_t *err)
{
	json_t *o = NULL;
	if (na_state_get(vx.ag->state, "remotes", n->name, &o, err) < 0) {
		if (err->status == 404) {
			na_err_clear(err);
			return 0;
		}
		return -1;
	}
	const char *name;
	json_t *v;
	json_object_foreach(json_object_get(o, "items"), name, v)
	{
		vx_ep_t e;
		if (parse_ep(n, name, v, VX_PUSHED, &e, err) < 0 ||
		    vx_ipam_reserve(n->ipam, e.ip, err) < 0) {
			na_error("remote endpoint state skipped",
				 "network=%s endpoint=%s error=\"%s\"", n->name, name, err->msg);
			na_err_clear(err);
			continue;
		}
		vx_ep_add(n, &e);
	}
	json_decref(o);
	return 0;
}

static int load_net(const char *name, json_t *o, void *ud, na_err_t *err)
{
	(void)ud;
	json_t *vni = json_object_get(o, "vni"), *mtu = json_object_get(o, "mtu");
	const char *subnet = json_string_value(json_object_get(o, "subnet"));
	uint32_t net;
	int plen;
	if (!json_is_integer(vni) || !subnet || na_cidr_parse(subnet, &net, &plen) < 0) {
		na_error("network state skipped", "network=%s error=\"bad vni or subnet\"", name);
		return 0;
	}
	vx_net_t *n = vx_net_new(name, (uint32_t)json_integer_value(vni), net, plen,
				 json_is_integer(mtu) ? (int)json_integer_value(mtu) : 0, err);
	if (!n)
		return -1;
	char kind[96];
	vx_ep_kind(n, kind, sizeof(kind));
	if (na_state_load(vx.ag->state, kind, load_ep, n, err) < 0 || load_remotes(n, err) < 0)
		return -1;
	return 0;
}

int vx_load_state(na_err_t *err)
{
	if (na_state_load(vx.ag->state, "networks", load_net, NULL, err) < 0)
		return -1;
	na_info("overlay state loaded", "networks=%u", vx.nnets);
	return 0;
}
