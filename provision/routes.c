/* Container routes: PUT/GET/DELETE /v1/containers[/{name}], POST
 * …/{start,stop,restart}, GET …/logs. Validation happens here, on the loop
 * and without side effects; the work is an operation (ops.c). */
#include "netagent/log.h"
#include "netagent/util.h"
#include "netagent/validate.h"
#include "provision/pv_int.h"
#include "provision/role.h"

#include <string.h>

#define PV_MAX_CONTAINERS 1024

/* The container named by the path, or a reply (404, bad name) and NULL. */
static pv_ct_t *req_ct(na_req_t *req)
{
	na_err_t err = NA_ERR_INIT;
	const char *name = req->params[0];
	if (na_name_check(name, "name", &err) < 0) {
		na_reply_err(req, &err);
		return NULL;
	}
	pv_ct_t *c = pv_ct_find(name);
	if (!c) {
		na_err_set(&err, 404, "not_found", NULL, "container %s not found", name);
		na_reply_err(req, &err);
	}
	return c;
}

/* 1 when the request waits (probe, another operation, adoption). */
static int must_wait(pv_ct_t *c, na_req_t *req, na_handler_fn fn)
{
	if (!pv.probe.done) {
		pv_probe_wait(req, fn);
		return 1;
	}
	if (c && (c->op || c->state == PV_S_UNKNOWN)) {
		pv_ct_wait(c, req, fn);
		return 1;
	}
	return 0;
}

static int runtime_ok(na_req_t *req)
{
	if (!pv.probe.error[0])
		return 1;
	na_err_t err = NA_ERR_INIT;
	na_err_set(&err, 503, "runtime_unavailable", NULL, "containers cannot run here: %s",
		   pv.probe.error);
	na_reply_err(req, &err);
	return 0;
}

static int live_same_tag(const pv_ct_t *c, const pv_spec_t *spec)
{
	char tag[17];
	json_t *t = pv_spec_json(spec);
	if (!t)
		return 0;
	spec->role->live_fields(t);
	pv_spec_tag(t, tag);
	json_decref(t);
	return !strcmp(tag, c->tag) && !strcmp(c->run_tag, c->tag);
}

static void h_put(na_req_t *req, void *ud)
{
	(void)ud;
	na_err_t err = NA_ERR_INIT;
	const char *name = req->params[0];
	pv_spec_t spec = {0};
	cleanup_json json_t *body = NULL;
	if (na_name_check(name, "name", &err) < 0)
		goto fail;
	pv_ct_t *c = pv_ct_find(name);
	if (must_wait(c, req, h_put))
		return;
	if (!runtime_ok(req))
		return;
	body = na_body_parse(req->body, req->body_len, &err);
	if (!body || pv_spec_parse(body, &pv.probe.lim, &spec, &err) < 0 ||
	    pv_net_check(&spec, name, &err) < 0)
		goto fail;
	if (!c) {
		if (pv.n >= PV_MAX_CONTAINERS) {
			na_err_set(&err, 409, "limit_reached", NULL,
				   "this agent runs at most %d containers", PV_MAX_CONTAINERS);
			goto fail;
		}
		c = pv_ct_new(name, &spec, &err);
		if (!c)
			goto fail;
		pv_op_run(c, PV_OP_CREATE, req, NULL, 0);
		return;
	}
	if (c->spec.role != spec.role) {
		na_err_set(&err, 409, "immutable_field", "role",
			   "container %s has role %s; the role cannot change (delete and recreate)",
			   name, c->spec.role->name);
		goto fail;
	}
	json_t *canon = pv_spec_json(&spec);
	int same = json_equal(canon, c->canon);
	json_decref(canon);
	if (same) {
		/* Identical: nothing changes, in the kernel or the runtime. */
		pv_spec_free(&spec);
		na_reply_json(req, 200, pv_ct_json(c));
		return;
	}
	/* Same tag: only what the role applies live differs (role.h). */
	if (spec.role->apply && c->state == PV_S_RUNNING && live_same_tag(c, &spec)) {
		pv_op_run(c, PV_OP_LIVE, req, &spec, 0);
		return;
	}
	pv_op_run(c, PV_OP_UPDATE, req, &spec, 0);
	return;
fail:
	pv_spec_free(&spec);
	na_reply_err(req, &err);
}

static void h_get(na_req_t *req, void *ud)
{
	(void)ud;
	pv_ct_t *c = req_ct(req);
	if (c)
		na_reply_json(req, 200, pv_ct_json(c));
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp((*(pv_ct_t *const *)a)->name, (*(pv_ct_t *const *)b)->name);
}

static void h_list(na_req_t *req, void *ud)
{
	(void)ud;
	size_t k = 0;
	pv_ct_t **v = calloc(pv.n + 1, sizeof(*v));
	for (pv_ct_t *c = pv.cts; c && v && k < pv.n; c = c->next)
		v[k++] = c;
	if (v)
		qsort(v, k, sizeof(*v), cmp_name);
	json_t *items = json_array();
	for (size_t i = 0; i < k; i++)
		json_array_append_new(items, pv_ct_json(v[i]));
	free(v);
	na_reply_json(req, 200, json_pack("{s:o}", "items", items));
}

static void h_delete(na_req_t *req, void *ud)
{
	(void)ud;
	na_err_t err = NA_ERR_INIT;
	int purge = 0;
	pv_ct_t *c = req_ct(req);
	if (!c || must_wait(c, req, h_delete))
		return;
	if (na_req_query_bool(req, "purge", &purge, &err) < 0) {
		na_reply_err(req, &err);
		return;
	}
	pv_op_run(c, PV_OP_DELETE, req, NULL, purge);
}

static void h_action(na_req_t *req, enum pv_op_kind kind, na_handler_fn self)
{
	pv_ct_t *c = req_ct(req);
	if (!c || must_wait(c, req, self))
		return;
	int running = c->state == PV_S_RUNNING;
	if ((kind == PV_OP_START && running && c->want_run) ||
	    (kind == PV_OP_STOP && !running && !c->want_run && c->state != PV_S_RESTARTING)) {
		na_reply_json(req, 200, pv_ct_json(c));
		return;
	}
	if (kind != PV_OP_STOP && !runtime_ok(req))
		return;
	pv_op_run(c, kind, req, NULL, 0);
}

static void h_start(na_req_t *req, void *ud)
{
	(void)ud;
	h_action(req, PV_OP_START, h_start);
}

static void h_stop(na_req_t *req, void *ud)
{
	(void)ud;
	h_action(req, PV_OP_STOP, h_stop);
}

static void h_restart(na_req_t *req, void *ud)
{
	(void)ud;
	h_action(req, PV_OP_RESTART, h_restart);
}

static void h_logs(na_req_t *req, void *ud)
{
	(void)ud;
	pv_ct_t *c = req_ct(req);
	if (c)
		pv_logs_get(req, c);
}

static const na_route_t routes[] = {
    {"GET", "/v1/containers", h_list, NULL},
    {"GET", "/v1/containers/{name}", h_get, NULL},
    {"PUT", "/v1/containers/{name}", h_put, NULL},
    {"DELETE", "/v1/containers/{name}", h_delete, NULL},
    {"POST", "/v1/containers/{name}/start", h_start, NULL},
    {"POST", "/v1/containers/{name}/stop", h_stop, NULL},
    {"POST", "/v1/containers/{name}/restart", h_restart, NULL},
    {"GET", "/v1/containers/{name}/logs", h_logs, NULL},
};

int pv_routes_init(na_api_t *api, na_err_t *err)
{
	return na_api_register(api, routes, NA_ARRAY_SIZE(routes), err);
}
