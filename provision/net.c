/* A container's overlay interfaces, through vxlan's public header: one
 * endpoint per network, named like the container, eth0, eth1… in the
 * container's namespace, attached before its process starts. */
#include "netagent/log.h"
#include "netagent/util.h"
#include "netagent/validate.h"
#include "provision/pv_int.h"
#include "vxlan/vxlan.h"

#include <stdio.h>
#include <string.h>

/* The address part of "198.18.1.2/24" and "198.18.1.2" alike. */
static int same_ip(const char *a, const char *b)
{
	size_t la = strcspn(a, "/"), lb = strcspn(b, "/");
	return la && la == lb && !strncmp(a, b, la);
}

int pv_net_check(const pv_spec_t *spec, const char *name, na_err_t *err)
{
	char field[48];
	for (size_t i = 0; i < spec->nnets; i++) {
		const pv_netreq_t *r = &spec->nets[i];
		vx_net_info_t info;
		snprintf(field, sizeof(field), "networks[%zu].network", i);
		if (vx_network_info(r->network, &info, err) < 0) {
			snprintf(err->field, sizeof(err->field), "%s", field);
			return -1;
		}
		if (!r->ip[0])
			continue;
		snprintf(field, sizeof(field), "networks[%zu].ip", i);
		if (vx_ip_check(r->network, name, r->ip, field, err) < 0)
			return -1;
		/* Another container that claims the address but is not
		 * attached yet (in flight, or waiting for its start). */
		for (pv_ct_t *c = pv.cts; c; c = c->next) {
			if (!strcmp(c->name, name))
				continue;
			for (size_t k = 0; k < c->spec.nnets; k++)
				if (!strcmp(c->spec.nets[k].network, r->network) &&
				    same_ip(c->spec.nets[k].ip, r->ip))
					return na_err_set(err, 409, "ip_in_use", field,
							  "%s is wanted by container %s", r->ip,
							  c->name);
		}
	}
	return 0;
}

struct sync {
	pv_ct_t *c;
	size_t i; /* next spec network to attach */
	size_t d; /* next interface to look at for detaching */
	int detach_all;
	pv_cb cb;
	void *ud;
	char name[64]; /* pv_net_detach_names */
	char (*nets)[64];
	size_t nnets;
};

static void sync_step(struct sync *s);

static void finish(struct sync *s, int rc, const na_err_t *err)
{
	pv_cb cb = s->cb;
	void *ud = s->ud;
	free(s->nets);
	free(s);
	cb(ud, rc, err);
}

static void attached(void *ud, int rc, const na_err_t *err, const vx_attachment_t *a)
{
	struct sync *s = ud;
	pv_ct_t *c = s->c;
	if (rc < 0 || !a) {
		na_err_t e = *err;
		na_err_prefix(&e, "network %s", c->spec.nets[s->i].network);
		finish(s, -1, &e);
		return;
	}
	pv_iface_t *x = (pv_iface_t *)pv_ct_iface(c, a->network);
	if (!x && c->nifs < PV_MAX_NETS)
		x = &c->ifs[c->nifs++];
	if (x) {
		snprintf(x->network, sizeof(x->network), "%s", a->network);
		snprintf(x->ifname, sizeof(x->ifname), "%s", a->ifname);
		na_addr_fmt(&a->ip, x->ip, sizeof(x->ip));
		na_mac_fmt(a->mac, x->mac, sizeof(x->mac));
	}
	s->i++;
	sync_step(s);
}

static void detached(void *ud, int rc, const na_err_t *err)
{
	struct sync *s = ud;
	pv_ct_t *c = s->c;
	if (rc < 0) {
		finish(s, -1, err);
		return;
	}
	if (c) {
		/* Forget the interface just detached (index d). */
		memmove(&c->ifs[s->d], &c->ifs[s->d + 1], (c->nifs - s->d - 1) * sizeof(c->ifs[0]));
		c->nifs--;
	} else {
		s->d++;
	}
	sync_step(s);
}

static int wanted(const pv_ct_t *c, const char *net)
{
	for (size_t i = 0; i < c->spec.nnets; i++)
		if (!strcmp(c->spec.nets[i].network, net))
			return 1;
	return 0;
}

static void sync_step(struct sync *s)
{
	na_err_t err = NA_ERR_INIT;
	pv_ct_t *c = s->c;
	char ns[512], ifname[16];
	if (!c) { /* detach by name only */
		if (s->d >= s->nnets) {
			finish(s, 0, NULL);
			return;
		}
		if (vx_detach(s->nets[s->d], s->name, detached, s, &err) < 0)
			finish(s, -1, &err);
		return;
	}
	if (!s->detach_all && s->i < c->spec.nnets) {
		const pv_netreq_t *r = &c->spec.nets[s->i];
		const pv_iface_t *old = pv_ct_iface(c, r->network);
		pv_ct_netns(c, ns, sizeof(ns));
		snprintf(ifname, sizeof(ifname), "eth%zu", s->i);
		vx_attach_req_t req = {
		    .network = r->network,
		    .name = c->name,
		    .netns = ns,
		    .ifname = ifname,
		    /* An address allocated before is kept across restarts. */
		    .ip = r->ip[0]	      ? r->ip
			  : old && old->ip[0] ? old->ip
					      : NULL,
		};
		if (vx_attach(&req, attached, s, &err) < 0) {
			na_err_prefix(&err, "network %s", r->network);
			finish(s, -1, &err);
		}
		return;
	}
	while (s->d < c->nifs && !s->detach_all && wanted(c, c->ifs[s->d].network))
		s->d++;
	if (s->d >= c->nifs) {
		finish(s, 0, NULL);
		return;
	}
	if (vx_detach(c->ifs[s->d].network, c->name, detached, s, &err) < 0)
		finish(s, -1, &err);
}

static int start(pv_ct_t *c, int all, pv_cb cb, void *ud)
{
	struct sync *s = calloc(1, sizeof(*s));
	if (!s)
		return -1;
	s->c = c;
	s->detach_all = all;
	s->cb = cb;
	s->ud = ud;
	sync_step(s);
	return 0;
}

int pv_net_sync(pv_ct_t *c, pv_cb cb, void *ud)
{
	return start(c, 0, cb, ud);
}

int pv_net_detach_all(pv_ct_t *c, pv_cb cb, void *ud)
{
	return start(c, 1, cb, ud);
}

int pv_net_detach_names(const char *name, char (*nets)[64], size_t n, pv_cb cb, void *ud)
{
	struct sync *s = calloc(1, sizeof(*s));
	if (!s || (n && !(s->nets = calloc(n, 64)))) {
		free(s);
		return -1;
	}
	if (n)
		memcpy(s->nets, nets, n * 64);
	s->nnets = n;
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->cb = cb;
	s->ud = ud;
	sync_step(s);
	return 0;
}
