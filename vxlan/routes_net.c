/* Network routes: PUT/GET/DELETE /v1/networks[/{name}], inspect and check. */
#include "netagent/events.h"
#include "netagent/log.h"
#include "netagent/util.h"
#include "netagent/validate.h"
#include "vxlan/vx_int.h"

static const na_field_t net_fields[] = {
    {"vni", NA_F_INT, 1, 1, 16777215},
    {"subnet", NA_F_STRING, 1, 0, 0},
    {"mtu", NA_F_INT, 0, 576, 9000},
};

int vx_err_queue(na_err_t *err, const vx_net_t *n)
{
	return na_err_set(err, 503, "unavailable", NULL,
			  "cannot queue work for network %s (shutting down or out of memory)",
			  n->name);
}

vx_net_t *vx_req_net(na_req_t *req)
{
	na_err_t err = NA_ERR_INIT;
	const char *name = req->params[0];
	if (na_name_check(name, "network", &err) < 0) {
		na_reply_err(req, &err);
		return NULL;
	}
	vx_net_t *n = vx_net_find(name);
	if (!n) {
		na_err_set(&err, 404, "not_found", NULL, "network %s not found", name);
		na_reply_err(req, &err);
	}
	return n;
}

struct after {
	void (*fn)(void *ud);
	void *ud;
};

static void after_done(void *ud, int rc, const na_err_t *err)
{
	(void)rc, (void)err;
	struct after *a = ud;
	a->fn(a->ud);
	free(a);
}

int vx_after_idle(vx_net_t *n, void (*fn)(void *ud), void *ud, int *deferred)
{
	*deferred = 0;
	if (!n->busy)
		return 0;
	struct after *a = malloc(sizeof(*a));
	if (!a)
		return -1;
	a->fn = fn;
	a->ud = ud;
	if (vx_job_barrier(n, after_done, a) < 0) {
		free(a);
		return -1;
	}
	*deferred = 1;
	return 0;
}

struct rerun {
	na_req_t *req;
	na_handler_fn fn;
};

static void rerun(void *ud)
{
	struct rerun *r = ud;
	r->fn(r->req, NULL);
	free(r);
}

int vx_wait_idle(vx_net_t *n, na_req_t *req, na_handler_fn fn)
{
	if (!n->busy)
		return 0;
	struct rerun *r = malloc(sizeof(*r));
	if (r) {
		r->req = req;
		r->fn = fn;
	}
	int deferred;
	if (!r || vx_after_idle(n, rerun, r, &deferred) < 0) {
		free(r);
		na_err_t err = NA_ERR_INIT;
		vx_err_queue(&err, n);
		na_reply_err(req, &err);
	}
	return 1;
}

/* Parses and checks a PUT body; fills vni/subnet/plen/mtu (0 = default). */
static int parse_net(na_req_t *req, uint32_t *vni, uint32_t *subnet, int *plen, int *mtu,
		     na_err_t *err)
{
	cleanup_json json_t *b = na_body_parse(req->body, req->body_len, err);
	if (!b || na_fields_check(b, net_fields, NA_ARRAY_SIZE(net_fields), NULL, err) < 0)
		return -1;
	*vni = (uint32_t)json_integer_value(json_object_get(b, "vni"));
	const char *s = json_string_value(json_object_get(b, "subnet"));
	if (na_cidr_parse(s, subnet, plen) < 0)
		return na_err_set(err, 422, "invalid_field", "subnet",
				  "subnet must be an IPv4 CIDR like 198.18.1.0/24, got '%s'", s);
	if (*plen < 8 || *plen > 30)
		return na_err_set(err, 422, "invalid_field", "subnet",
				  "subnet prefix length must be 8..30, got /%d", *plen);
	uint32_t mask = *plen ? 0xffffffffu << (32 - *plen) : 0;
	if (*subnet & ~mask) {
		char a[16];
		na_ipv4_fmt(*subnet & mask, a, sizeof(a));
		return na_err_set(err, 422, "invalid_field", "subnet",
				  "subnet has host bits set (did you mean %s/%d?)", a, *plen);
	}
	if (!na_ipv4_unicast(*subnet))
		return na_err_set(err, 422, "invalid_field", "subnet",
				  "subnet must be a unicast range");
	json_t *m = json_object_get(b, "mtu");
	*mtu = m ? (int)json_integer_value(m) : 0;
	int max = vx.ag->underlay.mtu - 50;
	if (*mtu > max)
		return na_err_set(err, 422, "invalid_field", "mtu",
				  "mtu %d exceeds the underlay's %d minus 50 bytes of VXLAN "
				  "overhead (%d)",
				  *mtu, vx.ag->underlay.mtu, max);
	return 0;
}

struct op {
	na_req_t *req;
	vx_net_t *n;
	int status;
	int old_mtu, old_mtu_set;
};

static void net_applied(void *ud, int rc, const na_err_t *err)
{
	struct op *op = ud;
	vx_net_t *n = op->n;
	n->busy = 0;
	if (rc < 0) {
		na_err_t e = *err;
		if (op->status == 201) {
			n->deleted = 1; /* nothing acknowledged: forget it */
			vx_net_unlink_free(n);
		} else {
			n->mtu = op->old_mtu;
			n->mtu_set = op->old_mtu_set;
		}
		na_reply_err(op->req, &e);
		free(op);
		return;
	}
	n->ready = 1;
	n->error[0] = 0;
	vx_etcd_net_changed(n);
	json_t *j = vx_net_json(n);
	na_events_publish("network", op->status == 201 ? "created" : "updated", n->name, j);
	na_info(op->status == 201 ? "network created" : "network updated",
		"network=%s vni=%u mtu=%d", n->name, n->vni, n->mtu);
	na_reply_json(op->req, op->status, j);
	free(op);
}

static void h_net_put(na_req_t *req, void *ud)
{
	(void)ud;
	na_err_t err = NA_ERR_INIT;
	const char *name = req->params[0];
	uint32_t vni = 0, subnet = 0;
	int plen = 0, mtu = 0;
	if (na_name_check(name, "name", &err) < 0 ||
	    parse_net(req, &vni, &subnet, &plen, &mtu, &err) < 0)
		goto fail;
	vx_net_t *n = vx_net_find(name);
	if (n && vx_wait_idle(n, req, h_net_put))
		return;
	struct op *op = calloc(1, sizeof(*op));
	if (!op) {
		na_err_errno(&err, ENOMEM, "network %s", name);
		goto fail;
	}
	op->req = req;
	if (n) {
		if (n->vni != vni) {
			free(op);
			na_err_set(&err, 409, "immutable_field", "vni",
				   "network %s has vni %u; vni cannot change (delete and recreate)",
				   name, n->vni);
			goto fail;
		}
		if (n->subnet != subnet || n->plen != plen) {
			free(op);
			na_err_set(&err, 409, "immutable_field", "subnet",
				   "network %s's subnet cannot change (delete and recreate)", name);
			goto fail;
		}
		int want = mtu ? mtu : vx.ag->underlay.mtu - 50;
		if (want == n->mtu && (mtu != 0) == n->mtu_set && n->ready) {
			free(op);
			na_reply_json(req, 200, vx_net_json(n));
			return;
		}
		op->status = 200;
		op->old_mtu = n->mtu;
		op->old_mtu_set = n->mtu_set;
		n->mtu = want;
		n->mtu_set = mtu != 0;
	} else {
		vx_net_t *other = vx_net_find_vni(vni);
		if (other) {
			free(op);
			na_err_set(&err, 409, "vni_in_use", "vni", "vni %u is used by network %s",
				   vni, other->name);
			goto fail;
		}
		n = vx_net_new(name, vni, subnet, plen, mtu, &err);
		if (!n) {
			free(op);
			goto fail;
		}
		op->status = 201;
	}
	op->n = n;
	n->busy = 1;
	if (vx_job_net_apply(n, vx_net_state_json(n), net_applied, op) < 0) {
		vx_err_queue(&err, n);
		net_applied(op, -1, &err);
	}
	return;
fail:
	na_reply_err(req, &err);
}

static void h_net_get(na_req_t *req, void *ud)
{
	(void)ud;
	vx_net_t *n = vx_req_net(req);
	if (n)
		na_reply_json(req, 200, vx_net_json(n));
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(json_string_value(json_object_get(*(json_t *const *)a, "name")),
		      json_string_value(json_object_get(*(json_t *const *)b, "name")));
}

static void h_net_list(na_req_t *req, void *ud)
{
	(void)ud;
	size_t k = 0;
	json_t **v = calloc(vx.nnets + 1, sizeof(*v));
	for (vx_net_t *n = vx.nets; n && v; n = n->next)
		if (!n->deleted && k < vx.nnets)
			v[k++] = vx_net_json(n);
	if (v)
		qsort(v, k, sizeof(*v), cmp_name);
	json_t *items = json_array();
	for (size_t i = 0; i < k; i++)
		json_array_append_new(items, v[i]);
	free(v);
	na_reply_json(req, 200, json_pack("{s:o}", "items", items));
}

static void net_deleted(void *ud, int rc, const na_err_t *err)
{
	struct op *op = ud;
	vx_net_t *n = op->n;
	n->busy = 0;
	if (rc < 0) {
		na_err_t e = *err;
		n->deleted = 0;
		na_reply_err(op->req, &e);
		free(op);
		return;
	}
	for (vx_ep_t *e = n->eps; e; e = e->next)
		if (e->src == VX_LOCAL)
			vx_etcd_unpublish(n, e);
	na_events_publish("network", "deleted", n->name, NULL);
	na_info("network deleted", "network=%s vni=%u", n->name, n->vni);
	vx_net_unlink_free(n);
	na_reply_empty(op->req, 204);
	free(op);
}

static void h_net_delete(na_req_t *req, void *ud)
{
	(void)ud;
	na_err_t err = NA_ERR_INIT;
	int force;
	if (na_req_query_bool(req, "force", &force, &err) < 0) {
		na_reply_err(req, &err);
		return;
	}
	vx_net_t *n = vx_req_net(req);
	if (!n || vx_wait_idle(n, req, h_net_delete))
		return;
	for (vx_ep_t *e = n->eps; e; e = e->next) {
		if (vx_etcd_claiming(e)) {
			na_err_set(&err, 409, "busy", NULL,
				   "endpoint %s of %s is being claimed in etcd; retry", e->name,
				   n->name);
			na_reply_err(req, &err);
			return;
		}
	}
	if (n->nlocal > 0 && !force) {
		na_err_set(&err, 409, "has_endpoints", NULL,
			   "network %s has %u local endpoint(s); delete them or use ?force=true",
			   n->name, n->nlocal);
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
	n->busy = 1;
	n->deleted = 1; /* invisible from now on; a new PUT queues behind this job */
	if (vx_job_net_delete(n, net_deleted, op) < 0) {
		vx_err_queue(&err, n);
		net_deleted(op, -1, &err);
	}
}

static void h_net_inspect(na_req_t *req, void *ud)
{
	(void)ud;
	vx_net_t *n = vx_req_net(req);
	if (!n || vx_wait_idle(n, req, h_net_inspect))
		return;
	if (vx_job_inspect(n, req) < 0) {
		na_err_t err = NA_ERR_INIT;
		vx_err_queue(&err, n);
		na_reply_err(req, &err);
	}
}

static void h_net_check(na_req_t *req, void *ud)
{
	(void)ud;
	vx_net_t *n = vx_req_net(req);
	if (!n || vx_wait_idle(n, req, h_net_check))
		return;
	if (vx_job_check(n, req) < 0) {
		na_err_t err = NA_ERR_INIT;
		vx_err_queue(&err, n);
		na_reply_err(req, &err);
	}
}

static const na_route_t routes[] = {
    {"GET", "/v1/networks", h_net_list, NULL},
    {"PUT", "/v1/networks/{name}", h_net_put, NULL},
    {"GET", "/v1/networks/{name}", h_net_get, NULL},
    {"DELETE", "/v1/networks/{name}", h_net_delete, NULL},
    {"GET", "/v1/networks/{name}/inspect", h_net_inspect, NULL},
    {"POST", "/v1/networks/{name}/check", h_net_check, NULL},
};

int vx_routes_init(na_api_t *api, na_err_t *err)
{
	if (na_api_register(api, routes, NA_ARRAY_SIZE(routes), err) < 0)
		return -1;
	return vx_routes_ep_init(api, err);
}
