/* The postgres role's actions on a running member, through Patroni's REST
 * API (pg_rest.c): the switchover and reinit routes, proxied so that the
 * controller never needs a route into the overlay, and the live update
 * of a member (reload, Raft voters, dynamic configuration). */
#include "netagent/log.h"
#include "netagent/nsworker.h"
#include "netagent/util.h"
#include "netagent/validate.h"
#include "provision/pg.h"
#include "provision/pg_raft.h"
#include "provision/pv_int.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define ACT_TIMEOUT_MS 40000 /* Patroni answers a switchover once it is done */

static na_agent_t *agent;

/* ---- actions: switchover, reinit, reload ------------------------------------------- */

enum act { ACT_SWITCHOVER, ACT_REINIT, ACT_RELOAD, ACT_CONFIG };

struct act_job {
	enum act kind;
	char name[64], netns[512], to[64], leader[64];
	json_t *dcs; /* ACT_CONFIG: the dynamic configuration wanted (owned) */
	pg_target_t t;
	na_req_t *req; /* or, for a reload or a configuration: */
	pv_role_cb cb;
	void *ud;
	long status;
	char *answer;
};

static int refused(struct act_job *j, const char *path, na_err_t *err)
{
	/* Patroni says why in a line of text ("candidate name does not
	 * match with sync_standby", "I am the leader, can not reinitialize"). */
	size_t l = strlen(j->answer);
	while (l && (j->answer[l - 1] == '\n' || j->answer[l - 1] == '\r'))
		j->answer[--l] = 0;
	return na_err_set(err, 503, "patroni_refused", NULL,
			  "Patroni refused %s (HTTP %ld): %.300s", path, j->status, j->answer);
}

/* The dynamic configuration becomes the one wanted: PATCH merges, so a
 * parameter the spec no longer names is set to null (removed). */
static int w_config_once(struct act_job *j, na_err_t *err)
{
	char *cur = NULL;
	if (pg_http(&j->t, "GET", "/config", NULL, 5000, &j->status, &cur, err) < 0)
		return -1;
	json_t *have = json_loads(cur, 0, NULL);
	free(cur);
	json_t *want = json_object_get(json_object_get(j->dcs, "postgresql"), "parameters");
	const char *k;
	json_t *v;
	json_object_foreach(json_object_get(json_object_get(have, "postgresql"), "parameters"), k,
			    v)
	{
		if (want && !json_object_get(want, k))
			json_object_set_new(want, k, json_null());
	}
	json_decref(have);
	char *body = json_dumps(j->dcs, JSON_COMPACT);
	if (!body)
		return na_err_errno(err, ENOMEM, "/config");
	int rc = pg_http(&j->t, "PATCH", "/config", body, 5000, &j->status, &j->answer, err);
	free(body);
	if (rc < 0)
		return -1;
	return j->status >= 200 && j->status < 300 ? 0 : refused(j, "/config", err);
}

/* Patroni writes /config with a compare-and-set on its index and answers
 * 409 when the write lost, also when its Raft could not commit it (a
 * membership change in progress: members joining); 503 while it has no
 * configuration yet. Read and PATCH again, CONFIG_TRY_MS in all. */
#define CONFIG_TRY_MS 10000
static int w_config(struct act_job *j, na_err_t *err)
{
	unsigned long long end = na_now_ms() + CONFIG_TRY_MS;
	for (;;) {
		j->status = 0;
		int rc = w_config_once(j, err);
		if (rc == 0 || (j->status != 409 && j->status != 503) || na_now_ms() > end)
			return rc;
		free(j->answer);
		j->answer = NULL;
		na_err_clear(err);
		usleep(500 * 1000);
	}
}

static int w_act(void *arg, na_err_t *err)
{
	struct act_job *j = arg;
	char body[256];
	const char *path;
	long timeout = ACT_TIMEOUT_MS;
	switch (j->kind) {
	case ACT_SWITCHOVER:
		if (pg_cluster_leader(&j->t, j->leader, sizeof(j->leader), err) < 0)
			return -1;
		if (j->to[0])
			snprintf(body, sizeof(body), "{\"leader\":\"%s\",\"candidate\":\"%s\"}",
				 j->leader, j->to);
		else
			snprintf(body, sizeof(body), "{\"leader\":\"%s\"}", j->leader);
		path = "/switchover";
		break;
	case ACT_REINIT:
		snprintf(body, sizeof(body), "{}");
		path = "/reinitialize";
		break;
	case ACT_CONFIG:
		return w_config(j, err);
	default:
		snprintf(body, sizeof(body), "{}");
		path = "/reload";
		timeout = 5000;
	}
	if (pg_http(&j->t, "POST", path, body, timeout, &j->status, &j->answer, err) < 0)
		return -1;
	if (j->status >= 200 && j->status < 300)
		return 0;
	return refused(j, path, err);
}

static void act_done(void *arg, int rc, const na_err_t *err)
{
	struct act_job *j = arg;
	if (j->kind == ACT_RELOAD || j->kind == ACT_CONFIG) {
		if (rc == 0)
			na_info(j->kind == ACT_RELOAD ? "patroni reloaded" : "patroni configured",
				"container=%s", j->name);
		j->cb(j->ud, rc, err);
	} else if (rc < 0)
		na_reply_err(j->req, err);
	else {
		json_t *o = json_pack("{s:s, s:s}", "container", j->name, "message",
				      j->answer ? j->answer : "");
		if (j->kind == ACT_SWITCHOVER)
			json_object_set_new(o, "from", json_string(j->leader));
		if (j->to[0])
			json_object_set_new(o, "to", json_string(j->to));
		na_info(j->kind == ACT_SWITCHOVER ? "patroni switchover" : "patroni reinit",
			"container=%s", j->name);
		na_reply_json(j->req, 200, o);
	}
	free(j->answer);
	free(j->t.ca);
	json_decref(j->dcs);
	free(j);
}

static struct act_job *act_new(pv_ct_t *c, const char *what, na_err_t *err)
{
	if (c->state != PV_S_RUNNING)
		return na_err_set(err, 409, "not_running", NULL,
				  "container %s is not running, "
				  "cannot %s",
				  c->name, what),
		       NULL;
	struct act_job *j = calloc(1, sizeof(*j));
	if (!j)
		return na_err_errno(err, ENOMEM, "%s", what), NULL;
	if (pg_target_of(&c->spec, &j->t, err) < 0) {
		free(j);
		return NULL;
	}
	snprintf(j->name, sizeof(j->name), "%s", c->name);
	pv_ct_netns(c, j->netns, sizeof(j->netns));
	return j;
}

static int act_submit(struct act_job *j, na_err_t *err)
{
	char key[80];
	snprintf(key, sizeof(key), "pgact/%s", j->name);
	if (na_ns_submit(key, j->netns, w_act, act_done, j) == 0)
		return 0;
	free(j->t.ca);
	json_decref(j->dcs);
	free(j);
	return na_err_set(err, 503, "unavailable", NULL, "cannot queue the Patroni call");
}

static pv_ct_t *pg_ct(na_req_t *req, na_err_t *err)
{
	pv_ct_t *c = pv_ct_find(req->params[0]);
	if (!c)
		return na_err_set(err, 404, "not_found", NULL, "no container %s", req->params[0]),
		       NULL;
	if (strcmp(c->spec.role->name, "postgres"))
		return na_err_set(err, 409, "wrong_role", NULL,
				  "container %s has role %s; this action is for role postgres",
				  c->name, c->spec.role->name),
		       NULL;
	return c;
}

static void h_switchover(na_req_t *req, void *ud)
{
	(void)ud;
	static const na_field_t f[] = {{"to", NA_F_STRING, 0, 0, 0}};
	na_err_t err = NA_ERR_INIT;
	json_t *body = NULL;
	struct act_job *j = NULL;
	pv_ct_t *c = pg_ct(req, &err);
	if (!c)
		goto fail;
	if (req->body_len && (!(body = na_body_parse(req->body, req->body_len, &err)) ||
			      na_fields_check(body, f, NA_ARRAY_SIZE(f), NULL, &err) < 0))
		goto fail;
	const char *to = json_string_value(json_object_get(body, "to"));
	if (to && na_name_check(to, "to", &err) < 0)
		goto fail;
	if (!(j = act_new(c, "switch over", &err)))
		goto fail;
	j->kind = ACT_SWITCHOVER;
	j->req = req;
	snprintf(j->to, sizeof(j->to), "%s", to ? to : "");
	json_decref(body);
	if (act_submit(j, &err) < 0)
		na_reply_err(req, &err);
	return;
fail:
	json_decref(body);
	na_reply_err(req, &err);
}

static void h_reinit(na_req_t *req, void *ud)
{
	(void)ud;
	na_err_t err = NA_ERR_INIT;
	pv_ct_t *c = pg_ct(req, &err);
	struct act_job *j = c ? act_new(c, "reinitialize", &err) : NULL;
	if (!j) {
		na_reply_err(req, &err);
		return;
	}
	j->kind = ACT_REINIT;
	j->req = req;
	if (act_submit(j, &err) < 0)
		na_reply_err(req, &err);
}

/* A live update, in order: Patroni rereads its files (parameters, partner
 * list), Raft's voters become the members (a member with Raft data
 * ignores a new partner list), then the cluster-wide synchronous mode
 * and the failover timings follow (bootstrap.dcs counts only at the
 * cluster's birth). Each step
 * is idempotent, so a PUT repeated after a failure finishes the job. */
typedef struct live {
	char name[64];
	int step;
	pv_role_cb cb;
	void *ud;
} live_t;

static void live_next(void *ud, int rc, const na_err_t *err)
{
	live_t *l = ud;
	na_err_t e = NA_ERR_INIT;
	pv_ct_t *c = rc < 0 ? NULL : pv_ct_find(l->name);
	pg_conf_t conf;
	if (rc < 0 || !c || pg_spec_conf(&c->spec, &conf, &e) < 0) {
		if (rc == 0 && !c)
			na_err_set(&e, 404, "not_found", NULL, "no container %s", l->name);
		l->cb(l->ud, -1, rc < 0 ? err : &e);
		free(l);
		return;
	}
	switch (l->step++) {
	case 0: {
		struct act_job *j = act_new(c, "reload", &e);
		if (!j)
			break;
		j->kind = ACT_RELOAD;
		j->cb = live_next;
		j->ud = l;
		if (act_submit(j, &e) < 0)
			break;
		return;
	}
	case 1: {
		const char *m[PG_MAX_MEMBERS];
		for (size_t i = 0; i < conf.nmembers; i++)
			m[i] = conf.members[i];
		pg_raft_req_t r = {.agent = agent,
				   .container = l->name,
				   .self_ip = conf.ip,
				   .port = PG_RAFT_PORT,
				   .password = conf.cert ? conf.raft_pw : NULL,
				   .members = m,
				   .nmembers = conf.nmembers};
		if (pg_raft_sync(&r, live_next, l, &e) < 0)
			break;
		return;
	}
	case 2: {
		struct act_job *j = act_new(c, "configure", &e);
		if (!j)
			break;
		char *pgbr = NULL;
		json_t *root = pg_spec_render(&c->spec, &conf, &pgbr, &e);
		free(pgbr);
		if (!root) {
			free(j->t.ca);
			free(j);
			break;
		}
		j->kind = ACT_CONFIG;
		j->dcs = json_incref(json_object_get(json_object_get(root, "bootstrap"), "dcs"));
		json_decref(root);
		j->cb = live_next;
		j->ud = l;
		if (act_submit(j, &e) < 0)
			break;
		return;
	}
	default:
		l->cb(l->ud, 0, NULL);
		free(l);
		return;
	}
	l->cb(l->ud, -1, &e);
	free(l);
}

int pg_apply(const char *name, const pv_spec_t *spec, pv_role_cb cb, void *ud, na_err_t *err)
{
	(void)spec; /* the files are rendered; each step reads the container's spec */
	if (!pv_ct_find(name))
		return na_err_set(err, 404, "not_found", NULL, "no container %s", name);
	live_t *l = calloc(1, sizeof(*l));
	if (!l)
		return na_err_errno(err, ENOMEM, "live update of %s", name);
	snprintf(l->name, sizeof(l->name), "%s", name);
	l->cb = cb;
	l->ud = ud;
	live_next(l, 0, NULL);
	return 0;
}

static const na_route_t routes[] = {
    {"POST", "/v1/containers/{name}/switchover", h_switchover, NULL},
    {"POST", "/v1/containers/{name}/reinit", h_reinit, NULL},
};

int pg_init(na_agent_t *ag, na_err_t *err)
{
	agent = ag;
	pg_watch_init(ag);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	return na_api_register(ag->api, routes, NA_ARRAY_SIZE(routes), err);
}

void pg_join_state(const char *name, const pv_spec_t *spec, const char *state)
{
	if (!spec || strcmp(state, "running")) {
		pg_raft_join_stop(name);
		return;
	}
	pg_conf_t conf;
	na_err_t e = NA_ERR_INIT;
	const char *m[PG_MAX_MEMBERS];
	if (pg_spec_conf(spec, &conf, &e) < 0) {
		na_warn("raft join not watched", "container=%s error=%s", name, e.msg);
		return;
	}
	for (size_t i = 0; i < conf.nmembers; i++)
		m[i] = conf.members[i];
	pg_raft_req_t r = {.agent = agent,
			   .container = name,
			   .self_ip = conf.ip,
			   .port = PG_RAFT_PORT,
			   .password = conf.cert ? conf.raft_pw : NULL,
			   .members = m,
			   .nmembers = conf.nmembers};
	if (pg_raft_join(&r, &e) < 0)
		na_warn("raft join not watched", "container=%s error=%s", name, e.msg);
}

void pg_fini(void)
{
	pg_raft_fini();
	pg_watch_fini();
}
