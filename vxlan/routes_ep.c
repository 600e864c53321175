/* Endpoint routes: local attachments (endpoints) and controller-pushed
 * remote endpoints (remote-endpoints), one by one or in bulk. */
#include <sys/stat.h>

#include "netagent/events.h"
#include "netagent/log.h"
#include "netagent/nl.h"
#include "netagent/util.h"
#include "netagent/validate.h"
#include "vxlan/vx_int.h"

static const na_field_t ep_fields[] = {
    {"netns", NA_F_STRING, 1, 0, 0},
    {"ip", NA_F_STRING, 0, 0, 0},
    {"mac", NA_F_STRING, 0, 0, 0},
    {"ifname", NA_F_STRING, 0, 0, 0},
};
static const na_field_t remote_fields[] = {
    {"name", NA_F_STRING, 0, 0, 0}, /* bulk items only */
    {"ip", NA_F_STRING, 1, 0, 0},
    {"mac", NA_F_STRING, 1, 0, 0},
    {"vtep", NA_F_STRING, 1, 0, 0},
};

/* "198.18.1.5/24" or "198.18.1.5"; must sit inside n's subnet as a host. */
static int parse_ep_ip(vx_net_t *n, const char *s, const char *field, uint32_t *ip, na_err_t *err)
{
	int plen = n->plen;
	if (na_cidr_parse(s, ip, &plen) < 0 && na_ipv4_parse(s, ip) < 0)
		return na_err_set(err, 422, "invalid_field", field,
				  "%s must be an IPv4 address like 198.18.1.5/24, got '%s'", field,
				  s);
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

static int check_ifname(const char *s, na_err_t *err)
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

static int check_netns(const char *p, na_err_t *err)
{
	struct stat st;
	if (p[0] != '/' || strstr(p, "/../") || strstr(p, "/./") ||
	    (strlen(p) >= 3 && !strcmp(p + strlen(p) - 3, "/..")) || strlen(p) >= 256)
		return na_err_set(err, 422, "invalid_field", "netns",
				  "netns must be an absolute path without '..' (under 256 chars)");
	if (stat(p, &st) < 0)
		return na_err_set(err, 422, "invalid_field", "netns", "netns %s does not exist", p);
	if (!na_netns_is_netns(p))
		return na_err_set(err, 422, "invalid_field", "netns",
				  "%s is not a network namespace", p);
	return 0;
}

/* The (netns, ifname) pair of another local endpoint, in any network. */
static const vx_ep_t *ifname_user(const char *netns, const char *ifname, const vx_ep_t *self)
{
	for (vx_net_t *n = vx.nets; n; n = n->next)
		for (vx_ep_t *e = n->eps; e; e = e->next)
			if (e != self && e->src == VX_LOCAL && !strcmp(e->netns, netns) &&
			    !strcmp(e->ifname, ifname))
				return e;
	return NULL;
}

struct op {
	na_req_t *req;
	vx_net_t *n;
	vx_ep_t *ep;
	vx_ep_t old;
	int has_old, status;
	vx_ep_t **batch; /* bulk remote: the new entries */
	vx_ep_t *olds;	 /* bulk remote: previous values of updated entries */
	int *was_new;
	size_t nbatch;
	int remote_del;
};

static void op_free(struct op *op)
{
	free(op->batch);
	free(op->olds);
	free(op->was_new);
	free(op);
}

static void ep_applied(void *ud, int rc, const na_err_t *err)
{
	struct op *op = ud;
	vx_net_t *n = op->n;
	if (rc < 0) {
		na_err_t e = *err;
		vx_ipam_release(n->ipam, op->ep->ip);
		if (op->has_old) {
			vx_ep_t *next = op->ep->next;
			*op->ep = op->old; /* roll back to what was there */
			op->ep->next = next;
			vx_ipam_reserve(n->ipam, op->ep->ip, &e);
			e = *err;
		} else {
			vx_ep_remove(n, op->ep);
		}
		na_reply_err(op->req, &e);
		op_free(op);
		return;
	}
	json_t *j = vx_ep_json(n, op->ep);
	if (op->ep->src == VX_LOCAL)
		vx_etcd_publish(n, op->ep);
	na_events_publish("endpoint", op->status == 201 ? "created" : "updated", op->ep->name, j);
	na_reply_json(op->req, op->status, j);
	op_free(op);
}

static void ep_claimed(void *ud, int rc, const na_err_t *err)
{
	struct op *op = ud;
	if (rc < 0) {
		ep_applied(op, rc, err);
		return;
	}
	if (vx_job_ep_apply(op->n, op->ep, op->has_old ? &op->old : NULL, vx_ep_state_json(op->ep),
			    ep_applied, op) < 0) {
		na_err_t e = NA_ERR_INIT;
		vx_err_queue(&e, op->n);
		ep_applied(op, -1, &e);
	}
}

static int same_ep(const vx_ep_t *a, const vx_ep_t *b)
{
	return a->ip == b->ip && a->plen == b->plen && !memcmp(a->mac, b->mac, 6) &&
	       !strcmp(a->ifname, b->ifname) && !strcmp(a->netns, b->netns) && a->vtep == b->vtep;
}

/* Applies the validated endpoint want (name, ip or 0 to allocate, …) to n. */
static void ep_commit(na_req_t *req, vx_net_t *n, vx_ep_t *want, int mac_given)
{
	na_err_t err = NA_ERR_INIT;
	vx_ep_t *cur = vx_ep_find(n, want->name);
	if (cur && cur->deleting) {
		na_err_set(&err, 409, "busy", NULL, "endpoint %s is being deleted; retry",
			   want->name);
		goto fail;
	}
	if (cur && vx_etcd_claiming(cur)) {
		na_err_set(&err, 409, "busy", NULL, "endpoint %s is being claimed in etcd; retry",
			   want->name);
		goto fail;
	}
	if (cur && cur->src != want->src) {
		na_err_set(&err, 409, "conflict", NULL, "%s is already a %s endpoint of %s",
			   want->name, cur->src == VX_LOCAL ? "local" : "remote", n->name);
		goto fail;
	}
	if (!want->ip && cur)
		want->ip = cur->ip; /* re-PUT without ip keeps the allocated one */
	int picked = !want->ip;	    /* ours to choose: a lost claim may move it */
	if (want->ip) {
		vx_ep_t *o = vx_ep_find_ip(n, want->ip);
		if (o && o != cur) {
			char a[16];
			na_ipv4_fmt(want->ip, a, sizeof(a));
			na_err_set(&err, 409, "ip_in_use", "ip", "%s is used by endpoint %s", a,
				   o->name);
			goto fail;
		}
	}
	if (cur && !mac_given && want->ip == cur->ip)
		memcpy(want->mac, cur->mac, 6);
	if (cur && same_ep(cur, want)) {
		na_reply_json(req, 200, vx_ep_json(n, cur));
		return;
	}
	struct op *op = calloc(1, sizeof(*op));
	if (!op) {
		na_err_errno(&err, ENOMEM, "endpoint");
		goto fail;
	}
	op->req = req;
	op->n = n;
	if (cur) {
		op->old = *cur;
		op->has_old = 1;
		vx_ipam_release(n->ipam, cur->ip);
	}
	if (want->ip ? vx_ipam_reserve(n->ipam, want->ip, &err) < 0
		     : vx_ipam_alloc(n->ipam, &want->ip, &err) < 0) {
		if (cur)
			vx_ipam_reserve(n->ipam, cur->ip, &err);
		free(op);
		goto fail;
	}
	if (!mac_given && (!cur || cur->ip != want->ip))
		vx_mac_from_ip(want->ip, want->mac);
	vx_ep_t *m = vx_ep_find_mac(n, want->mac);
	if (m && m != cur) {
		vx_ipam_release(n->ipam, want->ip);
		if (cur)
			vx_ipam_reserve(n->ipam, cur->ip, &err);
		free(op);
		na_err_set(&err, 409, "mac_in_use", "mac", "MAC is used by endpoint %s", m->name);
		goto fail;
	}
	if (cur) {
		vx_ep_t *next = cur->next;
		*cur = *want;
		cur->next = next;
		op->ep = cur;
		op->status = 200;
	} else {
		op->ep = vx_ep_add(n, want);
		op->status = 201;
		if (!op->ep) {
			vx_ipam_release(n->ipam, want->ip);
			free(op);
			na_err_errno(&err, ENOMEM, "endpoint");
			goto fail;
		}
	}
	int r;
	if (want->src == VX_LOCAL) {
		/* With etcd the address must be ours cluster-wide before it is used. */
		r = picked ? vx_etcd_claim_any(n, op->ep, ep_claimed, op)
			   : vx_etcd_claim(n, op->ep, ep_claimed, op);
	} else {
		const vx_ep_t *list[2] = {op->ep};
		r = vx_job_remotes(n, list, 1, 0, vx_remotes_state_json(n), ep_applied, op);
		/* A changed MAC leaves a stale FDB entry behind: reconcile removes
		 * extras within one round. */
	}
	if (r < 0) {
		vx_err_queue(&err, n);
		ep_applied(op, -1, &err);
	}
	return;
fail:
	na_reply_err(req, &err);
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
	want.src = VX_LOCAL;
	want.plen = n->plen;
	want.vtep = vx.ag->underlay.addr;
	const char *ns = json_string_value(json_object_get(b, "netns"));
	const char *ip = json_string_value(json_object_get(b, "ip"));
	const char *mac = json_string_value(json_object_get(b, "mac"));
	const char *ifn = json_string_value(json_object_get(b, "ifname"));
	if (check_netns(ns, &err) < 0)
		goto fail;
	snprintf(want.netns, sizeof(want.netns), "%s", ns);
	if (ip && parse_ep_ip(n, ip, "ip", &want.ip, &err) < 0)
		goto fail;
	if (mac && na_mac_parse(mac, want.mac) < 0) {
		na_err_set(&err, 422, "invalid_field", "mac",
			   "mac must be a unicast MAC like 02:84:c6:12:01:05, got '%s'", mac);
		goto fail;
	}
	if (ifn && check_ifname(ifn, &err) < 0)
		goto fail;
	snprintf(want.ifname, sizeof(want.ifname), "%s", ifn ? ifn : "eth0");
	const vx_ep_t *cur = vx_ep_find(n, want.name);
	const vx_ep_t *u = ifname_user(want.netns, want.ifname, cur);
	if (u) {
		na_err_set(&err, 409, "ifname_in_use", "ifname", "%s in %s is used by endpoint %s",
			   want.ifname, want.netns, u->name);
		goto fail;
	}
	ep_commit(req, n, &want, mac != NULL);
	return;
fail:
	na_reply_err(req, &err);
}

static int parse_remote(vx_net_t *n, json_t *o, const char *prefix, vx_ep_t *want, na_err_t *err)
{
	char f[48];
	if (na_fields_check(o, remote_fields, NA_ARRAY_SIZE(remote_fields), prefix, err) < 0)
		return -1;
	want->src = VX_PUSHED;
	want->plen = n->plen;
	snprintf(f, sizeof(f), "%sip", prefix);
	if (parse_ep_ip(n, json_string_value(json_object_get(o, "ip")), f, &want->ip, err) < 0)
		return -1;
	snprintf(f, sizeof(f), "%smac", prefix);
	const char *mac = json_string_value(json_object_get(o, "mac"));
	if (na_mac_parse(mac, want->mac) < 0)
		return na_err_set(err, 422, "invalid_field", f,
				  "mac must be a unicast MAC like 02:84:c6:12:01:05, got '%s'",
				  mac);
	snprintf(f, sizeof(f), "%svtep", prefix);
	const char *vt = json_string_value(json_object_get(o, "vtep"));
	if (na_ipv4_parse(vt, &want->vtep) < 0 || !na_ipv4_unicast(want->vtep))
		return na_err_set(err, 422, "invalid_field", f,
				  "vtep must be a unicast IPv4 address, got '%s'", vt);
	if (want->vtep == vx.ag->underlay.addr)
		return na_err_set(err, 422, "invalid_field", f,
				  "vtep %s is this host: attach local endpoints under endpoints/",
				  vt);
	return 0;
}

static void h_remote_put(na_req_t *req, void *ud)
{
	(void)ud;
	na_err_t err = NA_ERR_INIT;
	vx_net_t *n = vx_req_net(req);
	if (!n || vx_wait_idle(n, req, h_remote_put))
		return;
	vx_ep_t want = {0};
	cleanup_json json_t *b = NULL;
	if (na_name_check(req->params[1], "name", &err) < 0)
		goto fail;
	b = na_body_parse(req->body, req->body_len, &err);
	if (!b || parse_remote(n, b, "", &want, &err) < 0)
		goto fail;
	if (json_object_get(b, "name")) {
		na_err_set(&err, 422, "unknown_field", "name", "name comes from the URL");
		goto fail;
	}
	snprintf(want.name, sizeof(want.name), "%s", req->params[1]);
	ep_commit(req, n, &want, 1);
	return;
fail:
	na_reply_err(req, &err);
}

/* POST /v1/networks/{net}/remote-endpoints {"items":[{name, ip, mac, vtep}…]}:
 * upserts many remote endpoints in one netlink batch and one state write.
 * All-or-nothing: one bad item and nothing changes. */
static void bulk_done(void *ud, int rc, const na_err_t *err)
{
	struct op *op = ud;
	vx_net_t *n = op->n;
	if (rc < 0) {
		na_err_t e = *err;
		for (size_t i = op->nbatch; i-- > 0;) {
			vx_ep_t *ep = op->batch[i];
			vx_ipam_release(n->ipam, ep->ip);
			if (op->was_new[i]) {
				vx_ep_remove(n, ep);
			} else {
				vx_ep_t *next = ep->next;
				*ep = op->olds[i];
				ep->next = next;
				vx_ipam_reserve(n->ipam, ep->ip, &e);
			}
		}
		e = *err;
		na_reply_err(op->req, &e);
		op_free(op);
		return;
	}
	json_t *ev = json_pack("{s:I}", "count", (json_int_t)op->nbatch);
	na_events_publish("endpoint", "bulk", n->name, ev); /* borrows */
	json_decref(ev);
	na_reply_json(op->req, 200,
		      json_pack("{s:s, s:I, s:I}", "network", n->name, "applied",
				(json_int_t)op->nbatch, "remote",
				(json_int_t)(n->npushed + n->nlearned)));
	op_free(op);
}

static void h_remote_bulk(na_req_t *req, void *ud)
{
	(void)ud;
	na_err_t err = NA_ERR_INIT;
	vx_net_t *n = vx_req_net(req);
	if (!n || vx_wait_idle(n, req, h_remote_bulk))
		return;
	static const na_field_t top[] = {{"items", NA_F_ARRAY, 1, 0, 0}};
	cleanup_json json_t *b = na_body_parse(req->body, req->body_len, &err);
	if (!b || na_fields_check(b, top, 1, NULL, &err) < 0) {
		na_reply_err(req, &err);
		return;
	}
	json_t *items = json_object_get(b, "items");
	size_t cnt = json_array_size(items);
	vx_ep_t *want = calloc(cnt + 1, sizeof(*want));
	struct op *op = calloc(1, sizeof(*op));
	if (op) {
		op->batch = calloc(cnt + 1, sizeof(*op->batch));
		op->olds = calloc(cnt + 1, sizeof(*op->olds));
		op->was_new = calloc(cnt + 1, sizeof(*op->was_new));
	}
	if (!want || !op || !op->batch || !op->olds || !op->was_new) {
		na_err_errno(&err, ENOMEM, "bulk");
		goto fail;
	}
	/* Validate everything before touching anything. */
	for (size_t i = 0; i < cnt; i++) {
		char prefix[32];
		snprintf(prefix, sizeof(prefix), "items[%zu].", i);
		json_t *it = json_array_get(items, i);
		const char *nm = json_string_value(json_object_get(it, "name"));
		if (parse_remote(n, it, prefix, &want[i], &err) < 0)
			goto fail;
		char f[48];
		snprintf(f, sizeof(f), "%sname", prefix);
		if (!nm) {
			na_err_set(&err, 422, "missing_field", f, "%s is required", f);
			goto fail;
		}
		if (na_name_check(nm, f, &err) < 0)
			goto fail;
		for (size_t k = 0; k < i; k++)
			if (!strcmp(want[k].name, nm)) {
				na_err_set(&err, 422, "duplicate_name", f,
					   "%s appears twice in items", nm);
				goto fail;
			}
		snprintf(want[i].name, sizeof(want[i].name), "%s", nm);
		vx_ep_t *cur = vx_ep_find(n, nm);
		if (cur && cur->src != VX_PUSHED) {
			na_err_set(&err, 409, "conflict", f, "%s is already a %s endpoint", nm,
				   cur->src == VX_LOCAL ? "local" : "learned");
			goto fail;
		}
		vx_ep_t *o = vx_ep_find_ip(n, want[i].ip);
		snprintf(f, sizeof(f), "%sip", prefix);
		if (o && o != cur) {
			na_err_set(&err, 409, "ip_in_use", f, "%s: ip is used by endpoint %s", nm,
				   o->name);
			goto fail;
		}
		o = vx_ep_find_mac(n, want[i].mac);
		snprintf(f, sizeof(f), "%smac", prefix);
		if (o && o != cur) {
			na_err_set(&err, 409, "mac_in_use", f, "%s: mac is used by endpoint %s", nm,
				   o->name);
			goto fail;
		}
		/* The IPAM catches an ip repeated inside the batch; nothing else
		 * would catch a repeated mac (two FDB entries for one MAC). */
		for (size_t k = 0; k < i; k++)
			if (!memcmp(want[k].mac, want[i].mac, 6)) {
				na_err_set(&err, 409, "mac_in_use", f,
					   "%s: mac is also given to %s", nm, want[k].name);
				goto fail;
			}
	}
	/* Duplicates inside the batch: sort-free check with the IPAM itself. */
	for (size_t i = 0; i < cnt; i++) {
		vx_ep_t *cur = vx_ep_find(n, want[i].name);
		op->was_new[i] = cur == NULL;
		if (cur) {
			op->olds[i] = *cur;
			vx_ipam_release(n->ipam, cur->ip);
			vx_ep_t *next = cur->next;
			*cur = want[i];
			cur->next = next;
			op->batch[i] = cur;
		} else {
			op->batch[i] = vx_ep_add(n, &want[i]);
		}
		op->nbatch = i + 1;
		if (!op->batch[i] || vx_ipam_reserve(n->ipam, want[i].ip, &err) < 0) {
			if (op->batch[i])
				op->batch[i]->ip = 0; /* not reserved: nothing to release */
			if (!err.status)
				na_err_errno(&err, ENOMEM, "bulk");
			else
				snprintf(err.field, sizeof(err.field), "items[%zu].ip", i);
			op->req = req;
			op->n = n;
			free(want);
			bulk_done(op, -1, &err);
			return;
		}
	}
	free(want);
	want = NULL;
	op->req = req;
	op->n = n;
	if (vx_job_remotes(n, (const vx_ep_t *const *)op->batch, op->nbatch, 0,
			   vx_remotes_state_json(n), bulk_done, op) < 0) {
		vx_err_queue(&err, n);
		bulk_done(op, -1, &err);
	}
	return;
fail:
	free(want);
	if (op)
		op_free(op);
	na_reply_err(req, &err);
}

static vx_ep_t *req_ep(na_req_t *req, vx_net_t *n, int want_local)
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
	vx_ep_t *e = n ? req_ep(req, n, -1) : NULL;
	if (e)
		na_reply_json(req, 200, vx_ep_json(n, e));
}

static int cmp_ep(const void *a, const void *b)
{
	return strcmp((*(vx_ep_t *const *)a)->name, (*(vx_ep_t *const *)b)->name);
}

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

static void ep_deleted(void *ud, int rc, const na_err_t *err)
{
	struct op *op = ud;
	vx_net_t *n = op->n;
	if (rc < 0) {
		na_err_t e = *err;
		vx_ep_t *still = vx_ep_find(n, op->old.name);
		if (still)
			still->deleting = 0; /* it stays: snapshots must see it again */
		if (op->remote_del && !vx_ep_find(n, op->old.name) &&
		    vx_ipam_reserve(n->ipam, op->old.ip, &e) == 0)
			vx_ep_add(n, &op->old); /* the kernel still has it: keep it desired */
		e = *err;
		na_reply_err(op->req, &e);
		op_free(op);
		return;
	}
	vx_ep_t *e = vx_ep_find(n, op->old.name);
	if (e)
		vx_ep_remove(n, e);
	if (op->old.src == VX_LOCAL)
		vx_etcd_unpublish(n, &op->old);
	na_events_publish("endpoint", "deleted", op->old.name, NULL);
	na_reply_empty(op->req, 204);
	op_free(op);
}

static void ep_delete(na_req_t *req, int local, na_handler_fn self)
{
	na_err_t err = NA_ERR_INIT;
	vx_net_t *n = vx_req_net(req);
	if (!n || vx_wait_idle(n, req, self))
		return;
	vx_ep_t *e = req_ep(req, n, local);
	if (!e)
		return;
	if (e->deleting) {
		na_err_set(&err, 409, "busy", NULL, "endpoint %s is already being deleted",
			   e->name);
		na_reply_err(req, &err);
		return;
	}
	if (vx_etcd_claiming(e)) {
		/* The claim's completion still holds e: it must not go now. */
		na_err_set(&err, 409, "busy", NULL, "endpoint %s is being claimed in etcd; retry",
			   e->name);
		na_reply_err(req, &err);
		return;
	}
	struct op *op = calloc(1, sizeof(*op));
	if (!op) {
		na_err_errno(&err, ENOMEM, "delete");
		na_reply_err(req, &err);
		return;
	}
	op->req = req;
	op->n = n;
	op->old = *e;
	int r;
	if (local) {
		e->deleting = 1;
		r = vx_job_ep_delete(n, e, ep_deleted, op);
	} else {
		/* The state file is written without the entry; the job removes the
		 * kernel entries and persists. */
		const vx_ep_t *list[1] = {&op->old};
		op->remote_del = 1;
		vx_ep_remove(n, e);
		r = vx_job_remotes(n, list, 1, 1, vx_remotes_state_json(n), ep_deleted, op);
	}
	if (r < 0) {
		vx_err_queue(&err, n);
		ep_deleted(op, -1, &err);
	}
}

static void h_ep_delete(na_req_t *req, void *ud)
{
	(void)ud;
	ep_delete(req, 1, h_ep_delete);
}

static void h_remote_delete(na_req_t *req, void *ud)
{
	(void)ud;
	ep_delete(req, 0, h_remote_delete);
}

static const na_route_t routes[] = {
    {"GET", "/v1/networks/{net}/endpoints", h_ep_list, NULL},
    {"PUT", "/v1/networks/{net}/endpoints/{name}", h_ep_put, NULL},
    {"GET", "/v1/networks/{net}/endpoints/{name}", h_ep_get, NULL},
    {"DELETE", "/v1/networks/{net}/endpoints/{name}", h_ep_delete, NULL},
    {"POST", "/v1/networks/{net}/remote-endpoints", h_remote_bulk, NULL},
    {"GET", "/v1/networks/{net}/remote-endpoints", h_ep_list, NULL},
    {"PUT", "/v1/networks/{net}/remote-endpoints/{name}", h_remote_put, NULL},
    {"GET", "/v1/networks/{net}/remote-endpoints/{name}", h_ep_get, NULL},
    {"DELETE", "/v1/networks/{net}/remote-endpoints/{name}", h_remote_delete, NULL},
};

int vx_routes_ep_init(na_api_t *api, na_err_t *err)
{
	return na_api_register(api, routes, NA_ARRAY_SIZE(routes), err);
}
