/* Containers in memory: lookup, paths, the GET view, state files. */
#include "netagent/events.h"
#include "netagent/log.h"
#include "netagent/nsworker.h"
#include "netagent/util.h"
#include "netagent/validate.h"
#include "provision/pv_int.h"
#include "provision/role.h"

#include <stdio.h>
#include <string.h>

struct pv_global pv;

const char *const pv_state_names[PV_S_COUNT] = {
    "unknown", "creating", "starting",	 "running",  "stopping",
    "exited",  "stopped",  "restarting", "deleting",
};

const double pv_lat_bounds[12] = {0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10, 30};

void pv_observe_start(double s)
{
	for (size_t i = 0; i < NA_ARRAY_SIZE(pv_lat_bounds); i++)
		if (s <= pv_lat_bounds[i])
			pv.lat_buckets[i]++;
	pv.lat_count++;
	pv.lat_sum += s;
}

pv_ct_t *pv_ct_find(const char *name)
{
	for (pv_ct_t *c = pv.cts; c; c = c->next)
		if (!strcmp(c->name, name))
			return c;
	return NULL;
}

pv_ct_t *pv_ct_new(const char *name, pv_spec_t *spec, na_err_t *err)
{
	pv_ct_t *c = calloc(1, sizeof(*c));
	if (!c) {
		pv_spec_free(spec);
		na_err_errno(err, ENOMEM, "container %s", name);
		return NULL;
	}
	snprintf(c->name, sizeof(c->name), "%s", name);
	snprintf(c->id, sizeof(c->id), "%s-%s", pv.ag->cfg.name, name);
	c->mon_fd = -1;
	c->want_run = 1;
	pv_ct_set_spec(c, spec);
	c->next = pv.cts;
	pv.cts = c;
	pv.n++;
	return c;
}

void pv_ct_set_spec(pv_ct_t *c, pv_spec_t *spec)
{
	if (c->spec.role)
		pv_spec_free(&c->spec);
	c->spec = *spec;
	memset(spec, 0, sizeof(*spec));
	json_decref(c->canon);
	c->canon = pv_spec_json(&c->spec);
	if (c->spec.role->live_fields) {
		/* What a live update changes is not part of the tag. */
		json_t *t = json_deep_copy(c->canon);
		if (t)
			c->spec.role->live_fields(t);
		pv_spec_tag(t ? t : c->canon, c->tag);
		json_decref(t);
	} else {
		pv_spec_tag(c->canon, c->tag);
	}
}

void pv_ct_unlink_free(pv_ct_t *c)
{
	for (pv_ct_t **p = &pv.cts; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			pv.n--;
			break;
		}
	na_timer_free(c->timer);
	if (!pv.closing && c->spec.role && c->spec.role->state)
		c->spec.role->state(c->name, NULL, "deleted");
	pv_spec_free(&c->spec);
	json_decref(c->canon);
	free(c);
}

void pv_ct_path(const pv_ct_t *c, const char *file, char *buf, size_t n)
{
	snprintf(buf, n, "%s/%s%s%s", pv.ct_dir, c->name, file ? "/" : "", file ? file : "");
}

void pv_ct_netns(const pv_ct_t *c, char *buf, size_t n)
{
	snprintf(buf, n, "%s/%s-%s", pv.ns_dir, pv.ag->cfg.name, c->name);
}

void pv_ct_cgroup(const pv_ct_t *c, char *buf, size_t n)
{
	snprintf(buf, n, "/netagent/%s/%s", pv.ag->cfg.name, c->name);
}

const pv_iface_t *pv_ct_iface(const pv_ct_t *c, const char *network)
{
	for (size_t i = 0; i < c->nifs; i++)
		if (!strcmp(c->ifs[i].network, network))
			return &c->ifs[i];
	return NULL;
}

void pv_ct_set_state(pv_ct_t *c, enum pv_state s)
{
	int changed = c->state != s;
	c->state = s;
	if (changed && !pv.closing && c->spec.role && c->spec.role->state)
		c->spec.role->state(c->name, &c->spec, pv_state_names[s]);
}

void pv_ct_wait(pv_ct_t *c, na_req_t *req, na_handler_fn fn)
{
	pv_wait_t *w = calloc(1, sizeof(*w)), **p = &c->waiters;
	if (!w) {
		na_err_t err = NA_ERR_INIT;
		na_err_set(&err, 409, "busy", NULL, "container %s is busy, retry", c->name);
		na_reply_err(req, &err);
		return;
	}
	w->req = req;
	w->fn = fn;
	while (*p)
		p = &(*p)->next;
	*p = w;
}

/* In arrival order: the first starts an operation, the others queue again
 * behind it, still in order. */
void pv_ct_release_waiters(pv_ct_t *c)
{
	pv_wait_t *w = c->waiters;
	c->waiters = NULL;
	while (w) {
		pv_wait_t *next = w->next;
		w->fn(w->req, NULL);
		free(w);
		w = next;
	}
}

static json_t *ifaces_json(const pv_ct_t *c)
{
	json_t *a = json_array();
	for (size_t i = 0; i < c->nifs; i++)
		json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:s}", "network",
						   c->ifs[i].network, "ifname", c->ifs[i].ifname,
						   "ip", c->ifs[i].ip, "mac", c->ifs[i].mac));
	return a;
}

static json_t *caps_names(uint64_t caps)
{
	json_t *a = json_array();
	for (int i = 0; i < 64; i++)
		if (caps & (1ULL << i) && pv_cap_name(i))
			json_array_append_new(a, json_string(pv_cap_name(i)));
	return a;
}

json_t *pv_ct_json(const pv_ct_t *c)
{
	json_t *o = json_deep_copy(c->canon);
	char ns[512], bundle[512];
	int running = c->state == PV_S_RUNNING || c->state == PV_S_STOPPING;
	pv_ct_netns(c, ns, sizeof(ns));
	pv_ct_path(c, "bundle", bundle, sizeof(bundle));
	json_object_set_new(o, "name", json_string(c->name));
	json_object_set_new(o, "state", json_string(pv_state_names[c->state]));
	json_object_set_new(o, "desired", json_string(c->want_run ? "running" : "stopped"));
	json_object_set_new(o, "pid", running && c->pid ? json_integer(c->pid) : json_null());
	json_object_set_new(o, "netns", json_string(ns));
	json_object_set_new(o, "interfaces", ifaces_json(c));
	json_object_set_new(o, "exit_code",
			    c->has_exit && c->exit_code >= 0 ? json_integer(c->exit_code)
							     : json_null());
	json_object_set_new(o, "signal",
			    c->has_exit && c->exit_signal ? json_integer(c->exit_signal)
							  : json_null());
	json_object_set_new(o, "oom_killed", json_boolean(c->has_exit && c->oom));
	json_object_set_new(o, "restarts", json_integer(c->restarts));
	json_object_set_new(o, "started", c->started[0] ? json_string(c->started) : json_null());
	json_object_set_new(o, "finished", c->finished[0] ? json_string(c->finished) : json_null());
	json_object_set_new(o, "error", c->error[0] ? json_string(c->error) : json_null());
	if (c->state == PV_S_RESTARTING) {
		unsigned long long now = na_now_ms();
		json_object_set_new(
		    o, "next_restart_ms",
		    json_integer(
			(json_int_t)(c->next_start_ms > now ? c->next_start_ms - now : 0)));
	}
	json_object_set_new(o, "process",
			    json_pack("{s:i, s:i, s:o}", "uid", (int)c->spec.uid, "gid",
				      (int)c->spec.gid, "capabilities", caps_names(c->spec.caps)));
	json_object_set_new(o, "runtime",
			    json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", pv.probe.runtime, "path",
				      pv.probe.path, "root", pv.runc_root, "id", c->id, "bundle",
				      bundle));
	if (c->spec.role->view)
		c->spec.role->view(c->name, o);
	return o;
}

json_t *pv_ct_state_json(const pv_ct_t *c)
{
	return json_pack("{s:O, s:b, s:o}", "spec", c->canon, "run", c->want_run, "interfaces",
			 ifaces_json(c));
}

/* ---- state files ---- */

static int load_one(const char *name, json_t *obj, void *ud, na_err_t *err)
{
	(void)ud;
	pv_spec_t spec = {0};
	na_err_t e = NA_ERR_INIT;
	json_t *s = json_object_get(obj, "spec");
	/* A spec the current rules refuse (an older agent's) is kept out of
	 * the model but not deleted: an operator decides. */
	if (!na_name_valid(name) || !json_is_object(s) || pv_spec_parse(s, NULL, &spec, &e) < 0) {
		na_error("container state refused", "container=%s error=\"%s\"", name,
			 e.msg[0] ? e.msg : "not a container state");
		pv_spec_free(&spec);
		return 0;
	}
	pv_ct_t *c = pv_ct_new(name, &spec, err);
	if (!c)
		return -1;
	c->want_run = !json_is_false(json_object_get(obj, "run"));
	size_t i;
	json_t *f;
	json_array_foreach(json_object_get(obj, "interfaces"), i, f)
	{
		if (c->nifs >= PV_MAX_NETS)
			break;
		pv_iface_t *x = &c->ifs[c->nifs++];
		const char *v[4] = {json_string_value(json_object_get(f, "network")),
				    json_string_value(json_object_get(f, "ifname")),
				    json_string_value(json_object_get(f, "ip")),
				    json_string_value(json_object_get(f, "mac"))};
		snprintf(x->network, sizeof(x->network), "%s", v[0] ? v[0] : "");
		snprintf(x->ifname, sizeof(x->ifname), "%s", v[1] ? v[1] : "");
		snprintf(x->ip, sizeof(x->ip), "%s", v[2] ? v[2] : "");
		snprintf(x->mac, sizeof(x->mac), "%s", v[3] ? v[3] : "");
	}
	c->state = PV_S_UNKNOWN;
	return 0;
}

int pv_load_state(na_err_t *err)
{
	return na_state_load(pv.ag->state, "containers", load_one, NULL, err);
}

struct pjob {
	char name[64];
	json_t *obj; /* NULL: delete */
	pv_cb cb;
	void *ud;
};

static int w_persist(void *arg, na_err_t *err)
{
	struct pjob *j = arg;
	if (j->obj)
		return na_state_put(pv.ag->state, "containers", j->name, j->obj, err);
	return na_state_del(pv.ag->state, "containers", j->name, err);
}

static void persisted(void *arg, int rc, const na_err_t *err)
{
	struct pjob *j = arg;
	json_decref(j->obj);
	j->cb(j->ud, rc, err);
	free(j);
}

static int submit_state(pv_ct_t *c, json_t *obj, pv_cb cb, void *ud)
{
	struct pjob *j = calloc(1, sizeof(*j));
	if (!j) {
		json_decref(obj);
		return -1;
	}
	snprintf(j->name, sizeof(j->name), "%s", c->name);
	j->obj = obj;
	j->cb = cb;
	j->ud = ud;
	/* Keyed by the container: its jobs run in order. */
	char key[80];
	snprintf(key, sizeof(key), "ct/%s", c->name);
	if (na_ns_submit(key, NULL, w_persist, persisted, j) < 0) {
		json_decref(obj);
		free(j);
		return -1;
	}
	return 0;
}

int pv_persist(pv_ct_t *c, pv_cb cb, void *ud)
{
	return submit_state(c, pv_ct_state_json(c), cb, ud);
}

int pv_unpersist(pv_ct_t *c, pv_cb cb, void *ud)
{
	return submit_state(c, NULL, cb, ud);
}
