/* VIP routes: PUT/GET/DELETE /v1/vips[/{name}], POST …/failover, GET
 * …/history. A PUT is reserved in the model at once (a concurrent request
 * for the same name sees it), written to the state file on a worker, and
 * only then applied and answered: acknowledged means on disk. */
#include "netagent/events.h"
#include "netagent/log.h"
#include "netagent/nsworker.h"
#include "netagent/util.h"
#include "netagent/validate.h"
#include "vip/vip_int.h"

#include <string.h>

struct pjob {
	na_req_t *req;
	vip_t *v;
	na_state_t *st;
	char name[64];
	json_t *obj; /* NULL: delete the state file */
	vip_spec_t spec;
	int created;
};

static int p_run(void *arg, na_err_t *err)
{
	struct pjob *p = arg;
	if (p->obj)
		return na_state_put(p->st, "vips", p->name, p->obj, err);
	return na_state_del(p->st, "vips", p->name, err);
}

static int p_submit(struct pjob *p, na_ns_done_fn done)
{
	char key[80];
	p->st = vm.ag->state;
	snprintf(p->name, sizeof(p->name), "%s", p->v->name);
	snprintf(key, sizeof(key), "vip:%s", p->v->name);
	return na_ns_submit(key, NULL, p_run, done, p);
}

static void p_free(struct pjob *p)
{
	json_decref(p->obj);
	free(p);
}

static int busy_err(na_err_t *err, const vip_t *v)
{
	return na_err_set(err, 409, "busy", NULL, "vip %s is being changed; retry", v->name);
}

static vip_t *req_vip(na_req_t *req)
{
	na_err_t err = NA_ERR_INIT;
	vip_t *v = NULL;
	if (na_name_check(req->params[0], "name", &err) == 0) {
		v = vip_find(req->params[0]);
		if (!v)
			na_err_set(&err, 404, "not_found", NULL, "vip %s not found",
				   req->params[0]);
	}
	if (!v)
		na_reply_err(req, &err);
	return v;
}

/* Spec changes that move the address: the old one goes first. */
static int moves_address(const vip_spec_t *a, const vip_spec_t *b)
{
	return !na_addr_eq(&a->addr, &b->addr) || a->addr.plen != b->addr.plen ||
	       a->target_kind != b->target_kind || strcmp(a->target, b->target);
}

static void put_done(void *arg, int rc, const na_err_t *err)
{
	struct pjob *p = arg;
	vip_t *v = p->v;
	v->busy = 0;
	if (rc < 0) {
		na_err_t e = *err;
		if (p->created)
			vip_unlink_free(v);
		na_reply_err(p->req, &e);
		p_free(p);
		return;
	}
	if (!p->created) {
		if (moves_address(&v->spec, &p->spec)) {
			if (v->addr_present || v->state == VIP_MASTER)
				vip_k_remove(v, NULL, NULL);
			/* its rules name the old address: built anew at the
			 * next take */
			if (vip_etcd_mode())
				vip_k_fence_delete(v, NULL, NULL);
			if (v->state == VIP_MASTER) {
				vip_set_state(v, VIP_BACKUP, "", "address or target changed");
				if (vip_etcd_mode())
					vip_elect_release(v);
			}
			v->addr_present = 0;
		}
		v->spec = p->spec;
		vip_resolve(v);
	}
	vip_checks_start(v);
	vip_elect_added(v);
	json_t *j = vip_json(v);
	na_events_publish("vip", p->created ? "created" : "updated", v->name, j);
	na_info(p->created ? "vip created" : "vip updated", "vip=%s", v->name);
	na_reply_json(p->req, p->created ? 201 : 200, j);
	p_free(p);
	vip_evaluate(v);
}

static void h_put(na_req_t *req, void *ud)
{
	(void)ud;
	na_err_t err = NA_ERR_INIT;
	const char *name = req->params[0];
	vip_spec_t s;
	vip_t *v;
	struct pjob *p;

	if (na_name_check(name, "name", &err) < 0 ||
	    vip_spec_parse(req->body, req->body_len, &s, &err) < 0)
		goto fail;
	if (vm.stopping) {
		na_err_set(&err, 503, "shutting_down", NULL, "agent is shutting down");
		goto fail;
	}
	v = vip_find(name);
	if (v && v->busy) {
		busy_err(&err, v);
		goto fail;
	}
	for (vip_t *o = vm.vips; o; o = o->next) {
		if (o != v && !o->deleting && na_addr_eq(&o->spec.addr, &s.addr)) {
			na_err_set(&err, 409, "address_in_use", "address",
				   "address is already the VIP %s", o->name);
			goto fail;
		}
	}
	if (v && vip_spec_eq(&v->spec, &s)) {
		na_reply_json(req, 200, vip_json(v));
		return;
	}
	p = calloc(1, sizeof(*p));
	if (!p || !(p->obj = vip_spec_json(&s))) {
		free(p);
		na_err_errno(&err, ENOMEM, "vip %s", name);
		goto fail;
	}
	p->req = req;
	p->spec = s;
	if (!v) {
		v = vip_new(name, &s);
		if (!v) {
			p_free(p);
			na_err_errno(&err, ENOMEM, "vip %s", name);
			goto fail;
		}
		p->created = 1;
	}
	p->v = v;
	v->busy = 1;
	if (p_submit(p, put_done) < 0) {
		na_err_set(&err, 503, "unavailable", NULL, "cannot queue work for vip %s", name);
		put_done(p, -1, &err);
	}
	return;
fail:
	na_reply_err(req, &err);
}

static void h_get(na_req_t *req, void *ud)
{
	(void)ud;
	vip_t *v = req_vip(req);
	if (v)
		na_reply_json(req, 200, vip_json(v));
}

static void h_history(na_req_t *req, void *ud)
{
	(void)ud;
	vip_t *v = req_vip(req);
	if (v)
		na_reply_json(req, 200, vip_history_json(v));
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp((*(vip_t *const *)a)->name, (*(vip_t *const *)b)->name);
}

static void h_list(na_req_t *req, void *ud)
{
	(void)ud;
	size_t k = 0;
	cleanup_free vip_t **all = calloc(vm.nvips + 1, sizeof(*all));
	json_t *items = json_array();
	for (vip_t *v = vm.vips; v && all; v = v->next)
		if (!v->deleting && k < vm.nvips)
			all[k++] = v;
	if (all)
		qsort(all, k, sizeof(*all), cmp_name);
	for (size_t i = 0; i < k; i++)
		json_array_append_new(items, vip_json(all[i]));
	na_reply_json(req, 200, json_pack("{s:o}", "items", items));
}

static void del_done(void *arg, int rc, const na_err_t *err)
{
	struct pjob *p = arg;
	vip_t *v = p->v;
	if (rc < 0) {
		/* The address is gone already and the candidacy withdrawn;
		 * the state file stays: the VIP comes back at the next start. */
		na_err_t e = *err;
		na_reply_err(p->req, &e);
	} else {
		na_events_publish("vip", "deleted", v->name, NULL);
		na_info("vip deleted", "vip=%s", v->name);
		na_reply_empty(p->req, 204);
	}
	p_free(p);
	v->deleting = 2; /* freed once its last kernel job is back */
	if (v->kjobs == 0)
		vip_unlink_free(v);
}

static void del_dropped(vip_t *v, void *ud)
{
	struct pjob *p = ud;
	na_err_t err = NA_ERR_INIT;
	vip_elect_removed(v);
	/* the fence tables go before the answer (same worker key, in order) */
	if (vip_etcd_mode())
		vip_k_fence_delete(v, NULL, NULL);
	if (p_submit(p, del_done) < 0) {
		na_err_set(&err, 503, "unavailable", NULL, "cannot queue work for vip %s", v->name);
		del_done(p, -1, &err);
	}
}

static void h_delete(na_req_t *req, void *ud)
{
	(void)ud;
	na_err_t err = NA_ERR_INIT;
	vip_t *v = req_vip(req);
	struct pjob *p;
	if (!v)
		return;
	/* A claim in flight could land after the release: retry once it is back. */
	if (v->busy || v->taking || v->dropping || v->acquiring) {
		busy_err(&err, v);
		na_reply_err(req, &err);
		return;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		na_err_errno(&err, ENOMEM, "delete");
		na_reply_err(req, &err);
		return;
	}
	p->req = req;
	p->v = v;
	v->deleting = 1;
	vip_checks_stop(v);
	vip_drop(v, VIP_BACKUP, "deleted", del_dropped, p);
}

static void failover_done(vip_t *v, void *ud)
{
	na_req_t *req = ud;
	vip_elect_release(v);
	na_reply_json(req, 200, vip_json(v));
}

static void h_failover(na_req_t *req, void *ud)
{
	(void)ud;
	na_err_t err = NA_ERR_INIT;
	vip_t *v = req_vip(req);
	if (!v)
		return;
	if (v->state != VIP_MASTER || v->taking || v->dropping) {
		na_err_set(&err, 409, "not_master", NULL, "vip %s is %s here, not master", v->name,
			   vip_state_name(v->state));
		na_reply_err(req, &err);
		return;
	}
	if (!vip_etcd_mode()) {
		na_err_set(&err, 409, "no_candidate", NULL,
			   "no other candidate: without etcd this agent is the only one");
		na_reply_err(req, &err);
		return;
	}
	if (vip_elect_failover(v, &err) < 0) {
		na_reply_err(req, &err);
		return;
	}
	vip_drop(v, VIP_BACKUP, "failover requested", failover_done, req);
}

static const na_route_t routes[] = {
    {"GET", "/v1/vips", h_list, NULL},
    {"PUT", "/v1/vips/{name}", h_put, NULL},
    {"GET", "/v1/vips/{name}", h_get, NULL},
    {"DELETE", "/v1/vips/{name}", h_delete, NULL},
    {"POST", "/v1/vips/{name}/failover", h_failover, NULL},
    {"GET", "/v1/vips/{name}/history", h_history, NULL},
};

int vip_routes_init(na_api_t *api, na_err_t *err)
{
	return na_api_register(api, routes, NA_ARRAY_SIZE(routes), err);
}
