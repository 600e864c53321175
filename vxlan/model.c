/* The desired state of the overlay: networks and their endpoints, their
 * JSON shapes (API and state files) and loading them at start. */
#include "vxlan/kernel.h"
#include "vxlan/vx_int.h"
#include "netagent/log.h"
#include "netagent/util.h"
#include "netagent/validate.h"

#include <stddef.h>

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

/* ---- the per-network index ------------------------------------------- */

static size_t h_str(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

static size_t h_u32(uint32_t v)
{
	v ^= v >> 16;
	v *= 0x7feb352du;
	v ^= v >> 15;
	v *= 0x846ca68bu;
	return v ^ (v >> 16);
}

static size_t h_mac(const uint8_t m[6])
{
	uint32_t a = (uint32_t)m[0] << 8 | m[1], b;
	memcpy(&b, m + 2, 4);
	return h_u32(a ^ h_u32(b));
}

#define BUCKET(idx, h) ((h) & ((idx)->nb - 1))

static void idx_link(vx_index_t *x, vx_ep_t *e)
{
	size_t bn = BUCKET(x, h_str(e->name)), bi = BUCKET(x, h_u32(e->ip)),
	       bm = BUCKET(x, h_mac(e->mac));
	e->h_name = x->name[bn];
	x->name[bn] = e;
	e->h_ip = x->ip[bi];
	x->ip[bi] = e;
	e->h_mac = x->mac[bm];
	x->mac[bm] = e;
}

static void idx_unlink(vx_index_t *x, vx_ep_t *e)
{
	vx_ep_t **p;
	for (p = &x->name[BUCKET(x, h_str(e->name))]; *p; p = &(*p)->h_name)
		if (*p == e) {
			*p = e->h_name;
			break;
		}
	for (p = &x->ip[BUCKET(x, h_u32(e->ip))]; *p; p = &(*p)->h_ip)
		if (*p == e) {
			*p = e->h_ip;
			break;
		}
	for (p = &x->mac[BUCKET(x, h_mac(e->mac))]; *p; p = &(*p)->h_mac)
		if (*p == e) {
			*p = e->h_mac;
			break;
		}
}

/* Doubles the buckets when the load passes 1 (never shrinks: a network
 * that had 5,000 endpoints keeps 64 KiB of buckets). */
static int idx_grow(vx_net_t *n)
{
	vx_index_t *x = &n->idx, nx = {0};
	if (x->nb && x->n < x->nb)
		return 0;
	nx.nb = x->nb ? x->nb * 2 : 16;
	nx.name = calloc(nx.nb, sizeof(*nx.name));
	nx.ip = calloc(nx.nb, sizeof(*nx.ip));
	nx.mac = calloc(nx.nb, sizeof(*nx.mac));
	if (!nx.name || !nx.ip || !nx.mac) {
		free(nx.name);
		free(nx.ip);
		free(nx.mac);
		return x->nb ? 0 : -1; /* an old table still works, only slower */
	}
	nx.n = x->n;
	for (vx_ep_t *e = n->eps; e; e = e->next)
		idx_link(&nx, e);
	free(x->name);
	free(x->ip);
	free(x->mac);
	*x = nx;
	return 0;
}

vx_ep_t *vx_ep_find(vx_net_t *n, const char *name)
{
	if (!n->idx.nb)
		return NULL;
	for (vx_ep_t *e = n->idx.name[BUCKET(&n->idx, h_str(name))]; e; e = e->h_name)
		if (!strcmp(e->name, name))
			return e;
	return NULL;
}

vx_ep_t *vx_ep_find_ip(vx_net_t *n, uint32_t ip)
{
	if (!n->idx.nb)
		return NULL;
	for (vx_ep_t *e = n->idx.ip[BUCKET(&n->idx, h_u32(ip))]; e; e = e->h_ip)
		if (e->ip == ip)
			return e;
	return NULL;
}

vx_ep_t *vx_ep_find_mac(vx_net_t *n, const uint8_t mac[6])
{
	if (!n->idx.nb)
		return NULL;
	for (vx_ep_t *e = n->idx.mac[BUCKET(&n->idx, h_mac(mac))]; e; e = e->h_mac)
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
	vx_watch_net_gone(n);
	while (n->eps) {
		vx_ep_t *e = n->eps;
		n->eps = e->next;
		free(e);
	}
	free(n->idx.name);
	free(n->idx.ip);
	free(n->idx.mac);
	vx_ipam_free(n->ipam);
	free(n);
}

static unsigned *counter(vx_net_t *n, enum vx_src src)
{
	return src == VX_LOCAL ? &n->nlocal : src == VX_PUSHED ? &n->npushed : &n->nlearned;
}

vx_ep_t *vx_ep_add(vx_net_t *n, const vx_ep_t *tmpl)
{
	if (idx_grow(n) < 0)
		return NULL;
	vx_ep_t *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	memcpy(e, tmpl, offsetof(vx_ep_t, deleting));
	e->prev = n->eps_tail;
	if (n->eps_tail)
		n->eps_tail->next = e;
	else
		n->eps = e;
	n->eps_tail = e;
	idx_link(&n->idx, e);
	n->idx.n++;
	(*counter(n, e->src))++;
	return e;
}

void vx_ep_set(vx_net_t *n, vx_ep_t *ep, const vx_ep_t *val)
{
	/* Watching another namespace or interface now: reopened by the next round. */
	if (strcmp(ep->netns, val->netns) || strcmp(ep->ifname, val->ifname) ||
	    !na_ns_id_eq(&ep->nsid, &val->nsid))
		vx_watch_ep_gone(ep);
	idx_unlink(&n->idx, ep);
	(*counter(n, ep->src))--;
	memcpy(ep, val, offsetof(vx_ep_t, deleting));
	(*counter(n, ep->src))++;
	idx_link(&n->idx, ep);
}

void vx_ep_remove(vx_net_t *n, vx_ep_t *ep)
{
	vx_watch_ep_gone(ep);
	idx_unlink(&n->idx, ep);
	n->idx.n--;
	if (ep->prev)
		ep->prev->next = ep->next;
	else
		n->eps = ep->next;
	if (ep->next)
		ep->next->prev = ep->prev;
	else
		n->eps_tail = ep->prev;
	(*counter(n, ep->src))--;
	vx_ipam_release(n->ipam, ep->ip);
	free(ep);
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
	json_t *o = json_pack("{s:o, s:o, s:s, s:s}", "ip", cidr_json(e->ip, e->plen), "mac",
			      mac_json(e->mac), "ifname", e->ifname, "netns", e->netns);
	/* The pin: after a restart the path must still be this namespace. */
	if (o && e->nsid.ino)
		json_object_set_new(o, "netns_id",
				    json_pack("{s:I, s:I}", "dev", (json_int_t)e->nsid.dev, "ino",
					      (json_int_t)e->nsid.ino));
	return o;
}

json_t *vx_remote_state_json(const vx_ep_t *e)
{
	return json_pack("{s:o, s:o, s:o}", "ip", cidr_json(e->ip, e->plen), "mac",
			 mac_json(e->mac), "vtep", ip_json(e->vtep));
}

void vx_ep_kind(const vx_net_t *n, char *buf, size_t len)
{
	snprintf(buf, len, "endpoints/%s", n->name);
}

void vx_remote_kind(const vx_net_t *n, char *buf, size_t len)
{
	snprintf(buf, len, "remotes/%s", n->name);
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
		json_t *id = json_object_get(o, "netns_id");
		e->nsid.dev = (unsigned long long)json_integer_value(json_object_get(id, "dev"));
		e->nsid.ino = (unsigned long long)json_integer_value(json_object_get(id, "ino"));
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

static int load_remote(const char *name, json_t *o, void *ud, na_err_t *err)
{
	vx_net_t *n = ud;
	vx_ep_t e;
	if (parse_ep(n, name, o, VX_PUSHED, &e, err) < 0 ||
	    vx_ipam_reserve(n->ipam, e.ip, err) < 0) {
		na_error("remote endpoint state skipped", "network=%s endpoint=%s error=\"%s\"",
			 n->name, name, err->msg);
		na_err_clear(err);
		return 0;
	}
	return vx_ep_add(n, &e) ? 0 : na_err_errno(err, ENOMEM, "load remote endpoint");
}

/* Before per-endpoint files, a network's remotes lived in one file
 * remotes/<net>.json ({"items":{name:{…}}}), rewritten whole on every
 * change. An upgraded agent moves them into remotes/<net>/<name>.json once,
 * at start, and then removes the old file. */
static int migrate_remotes(vx_net_t *n, na_err_t *err)
{
	json_t *o = NULL;
	if (na_state_get(vx.ag->state, "remotes", n->name, &o, err) < 0) {
		if (err->status == 404) {
			na_err_clear(err);
			return 0;
		}
		return -1;
	}
	char kind[96];
	vx_remote_kind(n, kind, sizeof(kind));
	const char *name;
	json_t *v;
	int rc = 0;
	json_object_foreach(json_object_get(o, "items"), name, v)
	{
		if (!vx_ep_find(n, name) && load_remote(name, v, n, err) < 0) {
			rc = -1;
			break;
		}
		vx_ep_t *e = vx_ep_find(n, name);
		if (e && e->src == VX_PUSHED &&
		    (rc = na_state_put(vx.ag->state, kind, name, vx_remote_state_json(e), err)) < 0)
			break;
	}
	json_decref(o);
	if (rc == 0 && (rc = na_state_del(vx.ag->state, "remotes", n->name, err)) == 0)
		na_info("remote endpoints moved to per-endpoint state files", "network=%s count=%u",
			n->name, n->npushed);
	return rc;
}

static int load_remotes(vx_net_t *n, na_err_t *err)
{
	char kind[96];
	vx_remote_kind(n, kind, sizeof(kind));
	if (na_state_load(vx.ag->state, kind, load_remote, n, err) < 0)
		return -1;
	return migrate_remotes(n, err);
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
