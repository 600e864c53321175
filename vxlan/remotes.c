/* Controller-pushed remote endpoints (…/remote-endpoints): one by one or in
 * bulk. Each is a permanent FDB + neighbour entry on vxlan0 (and a static
 * bridge entry), and one state file: a PUT costs the same with 5 or 5,000
 * remotes in the network, and is on disk before it is acknowledged. */
#include "netagent/events.h"
#include "netagent/util.h"
#include "netagent/validate.h"
#include "vxlan/endpoints.h"

static const na_field_t remote_fields[] = {
    {"name", NA_F_STRING, 0, 0, 0}, /* bulk items only */
    {"ip", NA_F_STRING, 1, 0, 0},
    {"mac", NA_F_STRING, 1, 0, 0},
    {"vtep", NA_F_STRING, 1, 0, 0},
};

struct op {
	na_req_t *req;
	vx_net_t *n;
	vx_ep_t *ep;
	vx_ep_t old;
	int has_old, status;
	vx_ep_t **batch; /* bulk: the entries */
	vx_ep_t *olds;	 /* bulk: previous values of updated entries */
	int *was_new;
	size_t nbatch;
};

static void op_free(struct op *op)
{
	free(op->batch);
	free(op->olds);
	free(op->was_new);
	free(op);
}

static int parse_remote(vx_net_t *n, json_t *o, const char *prefix, vx_ep_t *want, na_err_t *err)
{
	char f[48];
	if (na_fields_check(o, remote_fields, NA_ARRAY_SIZE(remote_fields), prefix, err) < 0)
		return -1;
	want->src = VX_PUSHED;
	want->plen = n->plen;
	snprintf(f, sizeof(f), "%sip", prefix);
	if (vx_parse_ep_ip(n, json_string_value(json_object_get(o, "ip")), f, &want->ip, err) < 0)
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

/* Conflicts of want (item prefix for fields) with the network's endpoints. */
static int check_conflicts(vx_net_t *n, const vx_ep_t *want, const char *prefix, na_err_t *err)
{
	char f[48];
	vx_ep_t *cur = vx_ep_find(n, want->name);
	snprintf(f, sizeof(f), "%sname", prefix);
	if (cur && cur->src != VX_PUSHED)
		return na_err_set(err, 409, "conflict", *prefix ? f : "",
				  "%s is already a %s endpoint of %s", want->name,
				  cur->src == VX_LOCAL ? "local" : "learned", n->name);
	if (cur && (cur->pending || cur->deleting))
		return na_err_set(err, 409, "busy", *prefix ? f : "",
				  "a change of endpoint %s is in flight; retry", want->name);
	vx_ep_t *o = vx_ep_find_ip(n, want->ip);
	snprintf(f, sizeof(f), "%sip", prefix);
	if (o && o != cur)
		return na_err_set(err, 409, "ip_in_use", f, "%s: ip is used by endpoint %s",
				  want->name, o->name);
	o = vx_ep_find_mac(n, want->mac);
	snprintf(f, sizeof(f), "%smac", prefix);
	if (o && o != cur)
		return na_err_set(err, 409, "mac_in_use", f, "%s: mac is used by endpoint %s",
				  want->name, o->name);
	return 0;
}

static int same_remote(const vx_ep_t *a, const vx_ep_t *b)
{
	return a->ip == b->ip && a->plen == b->plen && !memcmp(a->mac, b->mac, 6) &&
	       a->vtep == b->vtep;
}

/* ---- single PUT ----------------------------------------------------------- */

static void put_done(void *ud, int rc, const na_err_t *err)
{
	struct op *op = ud;
	vx_net_t *n = op->n;
	vx_ep_t *ep = op->ep;
	ep->pending = 0;
	if (rc < 0) {
		na_err_t e = *err, scratch = NA_ERR_INIT;
		vx_ipam_release(n->ipam, ep->ip);
		if (op->has_old) {
			vx_ep_set(n, ep, &op->old);
			vx_ipam_reserve(n->ipam, ep->ip, &scratch);
		} else {
			vx_ep_remove(n, ep);
		}
		na_reply_err(op->req, &e);
		op_free(op);
		return;
	}
	json_t *j = vx_ep_json(n, ep);
	na_events_publish("endpoint", op->status == 201 ? "created" : "updated", ep->name, j);
	na_reply_json(op->req, op->status, j);
	op_free(op);
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
	struct op *op = NULL;
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
	if (check_conflicts(n, &want, "", &err) < 0)
		goto fail;
	vx_ep_t *cur = vx_ep_find(n, want.name);
	if (cur && same_remote(cur, &want)) {
		na_reply_json(req, 200, vx_ep_json(n, cur));
		return;
	}
	if (!(op = calloc(1, sizeof(*op)))) {
		na_err_errno(&err, ENOMEM, "remote endpoint");
		goto fail;
	}
	if (cur) {
		op->old = *cur;
		op->has_old = 1;
		vx_ipam_release(n->ipam, cur->ip);
	}
	if (vx_ipam_reserve(n->ipam, want.ip, &err) < 0) {
		if (cur)
			vx_ipam_reserve(n->ipam, cur->ip, &err);
		goto fail;
	}
	if (cur) {
		vx_ep_set(n, cur, &want);
		op->ep = cur;
		op->status = 200;
	} else if (!(op->ep = vx_ep_add(n, &want))) {
		vx_ipam_release(n->ipam, want.ip);
		na_err_errno(&err, ENOMEM, "remote endpoint");
		goto fail;
	} else {
		op->status = 201;
	}
	op->req = req;
	op->n = n;
	op->ep->pending = 1;
	/* A changed MAC leaves the old FDB entry behind: it is not wanted any
	 * more, so the next reconcile removes it. */
	const vx_ep_t *list[1] = {op->ep};
	if (vx_job_remotes(n, list, 1, 0, 1, put_done, op) < 0) {
		vx_err_queue(&err, n);
		put_done(op, -1, &err);
	}
	return;
fail:
	free(op);
	na_reply_err(req, &err);
}

/* ---- bulk POST {"items":[{name, ip, mac, vtep}…]} ------------------------
 * Upserts many in one netlink batch and one batch of state files.
 * All-or-nothing: one bad item and nothing changes. */

static void bulk_done(void *ud, int rc, const na_err_t *err)
{
	struct op *op = ud;
	vx_net_t *n = op->n;
	for (size_t i = 0; i < op->nbatch; i++)
		if (op->batch[i])
			op->batch[i]->pending = 0;
	if (rc < 0) {
		na_err_t e = *err, scratch = NA_ERR_INIT;
		for (size_t i = op->nbatch; i-- > 0;) {
			vx_ep_t *ep = op->batch[i];
			if (!ep)
				continue;
			vx_ipam_release(n->ipam, ep->ip);
			if (op->was_new[i]) {
				vx_ep_remove(n, ep);
			} else {
				vx_ep_set(n, ep, &op->olds[i]);
				vx_ipam_reserve(n->ipam, ep->ip, &scratch);
			}
		}
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

/* Every item is checked before anything changes. */
static int bulk_validate(vx_net_t *n, json_t *items, vx_ep_t *want, size_t cnt, na_err_t *err)
{
	for (size_t i = 0; i < cnt; i++) {
		char prefix[32], f[48];
		snprintf(prefix, sizeof(prefix), "items[%zu].", i);
		json_t *it = json_array_get(items, i);
		if (parse_remote(n, it, prefix, &want[i], err) < 0)
			return -1;
		const char *nm = json_string_value(json_object_get(it, "name"));
		snprintf(f, sizeof(f), "%sname", prefix);
		if (!nm)
			return na_err_set(err, 422, "missing_field", f, "%s is required", f);
		if (na_name_check(nm, f, err) < 0)
			return -1;
		snprintf(want[i].name, sizeof(want[i].name), "%s", nm);
		if (check_conflicts(n, &want[i], prefix, err) < 0)
			return -1;
		/* Repeats inside the batch: the model cannot see those yet. */
		for (size_t k = 0; k < i; k++) {
			if (!strcmp(want[k].name, nm))
				return na_err_set(err, 422, "duplicate_name", f,
						  "%s appears twice in items", nm);
			if (want[k].ip == want[i].ip) {
				snprintf(f, sizeof(f), "%sip", prefix);
				return na_err_set(err, 409, "ip_in_use", f,
						  "%s: ip is also given to %s", nm, want[k].name);
			}
			if (!memcmp(want[k].mac, want[i].mac, 6)) {
				snprintf(f, sizeof(f), "%smac", prefix);
				return na_err_set(err, 409, "mac_in_use", f,
						  "%s: mac is also given to %s", nm, want[k].name);
			}
		}
	}
	return 0;
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
	cleanup_free vx_ep_t *want = calloc(cnt + 1, sizeof(*want));
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
	if (bulk_validate(n, items, want, cnt, &err) < 0)
		goto fail;
	op->req = req;
	op->n = n;
	for (size_t i = 0; i < cnt; i++) {
		vx_ep_t *cur = vx_ep_find(n, want[i].name);
		na_err_t e = NA_ERR_INIT;
		op->was_new[i] = cur == NULL;
		if (cur) {
			op->olds[i] = *cur;
			vx_ipam_release(n->ipam, cur->ip);
			vx_ep_set(n, cur, &want[i]);
			op->batch[i] = cur;
		} else {
			op->batch[i] = vx_ep_add(n, &want[i]);
		}
		op->nbatch = i + 1;
		if (!op->batch[i] || vx_ipam_reserve(n->ipam, want[i].ip, &e) < 0) {
			if (op->batch[i]) {
				/* not reserved: nothing to release */
				vx_ep_t unreserved = *op->batch[i];
				unreserved.ip = 0;
				vx_ep_set(n, op->batch[i], &unreserved);
			}
			if (!e.status)
				na_err_errno(&e, ENOMEM, "bulk");
			bulk_done(op, -1, &e);
			return;
		}
		op->batch[i]->pending = 1;
	}
	if (vx_job_remotes(n, (const vx_ep_t *const *)op->batch, op->nbatch, 0, 1, bulk_done, op) <
	    0) {
		vx_err_queue(&err, n);
		bulk_done(op, -1, &err);
	}
	return;
fail:
	if (op)
		op_free(op);
	na_reply_err(req, &err);
}

/* ---- DELETE --------------------------------------------------------------- */

static void del_done(void *ud, int rc, const na_err_t *err)
{
	struct op *op = ud;
	vx_net_t *n = op->n;
	vx_ep_t *e = vx_ep_find(n, op->old.name);
	if (rc < 0) {
		if (e)
			e->deleting = 0; /* the kernel and the state file still have it */
		na_reply_err(op->req, err);
		op_free(op);
		return;
	}
	if (e)
		vx_ep_remove(n, e);
	na_events_publish("endpoint", "deleted", op->old.name, NULL);
	na_reply_empty(op->req, 204);
	op_free(op);
}

static void h_remote_delete(na_req_t *req, void *ud)
{
	(void)ud;
	na_err_t err = NA_ERR_INIT;
	vx_net_t *n = vx_req_net(req);
	if (!n || vx_wait_idle(n, req, h_remote_delete))
		return;
	vx_ep_t *e = vx_req_ep(req, n, 0);
	if (!e)
		return;
	if (e->deleting || e->pending) {
		na_err_set(&err, 409, "busy", NULL, "a change of endpoint %s is in flight; retry",
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
	e->deleting = 1;
	const vx_ep_t *list[1] = {e};
	if (vx_job_remotes(n, list, 1, 1, 1, del_done, op) < 0) {
		vx_err_queue(&err, n);
		del_done(op, -1, &err);
	}
}

static const na_route_t routes[] = {
    {"POST", "/v1/networks/{net}/remote-endpoints", h_remote_bulk, NULL},
    {"PUT", "/v1/networks/{net}/remote-endpoints/{name}", h_remote_put, NULL},
    {"DELETE", "/v1/networks/{net}/remote-endpoints/{name}", h_remote_delete, NULL},
};

int vx_routes_remote_init(na_api_t *api, na_err_t *err)
{
	return na_api_register(api, routes, NA_ARRAY_SIZE(routes), err);
}
