/* The postgres role's running side: Patroni's REST API (<overlay ip>:8008),
 * reached from a worker thread inside the container's network namespace
 * (the agent has no route into the overlay, by design). A poller per
 * running member caches GET /patroni and /cluster for GET's view; the
 * switchover and reinit routes and a live parameter change (POST /reload)
 * are proxied. Unsafe calls carry the REST password the role rendered. */
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
#include <time.h>

#define POLL_MS		2000
#define POLL_TIMEOUT_MS 1500
#define ACT_TIMEOUT_MS	40000 /* Patroni answers a switchover once it is done */
#define MAX_ANSWER	(256 * 1024)

static na_agent_t *agent;
static int closing;

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- one HTTP call (worker, inside the member's namespace) ------------------------- */

typedef struct pg_target {
	char ip[NA_ADDR_STRLEN], node[64], pw[65];
	char *ca; /* PEM, NULL: plain HTTP */
} pg_target_t;

static int target_of(const pv_spec_t *s, pg_target_t *t, na_err_t *err)
{
	pg_conf_t c;
	memset(t, 0, sizeof(*t));
	if (pg_spec_conf(s, &c, err) < 0)
		return -1;
	snprintf(t->ip, sizeof(t->ip), "%s", c.ip);
	snprintf(t->node, sizeof(t->node), "%s", c.node);
	snprintf(t->pw, sizeof(t->pw), "%s", c.api_pw);
	if (c.ca && !(t->ca = strdup(c.ca)))
		return na_err_errno(err, ENOMEM, "ca");
	return 0;
}

struct buf {
	char *p;
	size_t n;
};

static size_t on_data(char *d, size_t sz, size_t nm, void *ud)
{
	struct buf *b = ud;
	size_t len = sz * nm;
	if (b->n + len > MAX_ANSWER)
		return 0;
	char *np = realloc(b->p, b->n + len + 1);
	if (!np)
		return 0;
	memcpy(np + b->n, d, len);
	b->p = np;
	b->n += len;
	b->p[b->n] = 0;
	return len;
}

/* status and the answer (malloc'd, NUL-terminated), or -1 with 502
 * patroni_unreachable. */
static int http(const pg_target_t *t, const char *method, const char *path, const char *body,
		long timeout_ms, long *status, char **out, na_err_t *err)
{
	char url[160], auth[96];
	snprintf(url, sizeof(url), "%s://%s:%d%s", t->ca ? "https" : "http", t->ip, PG_API_PORT,
		 path);
	struct buf b = {NULL, 0};
	CURL *h = curl_easy_init();
	if (!h)
		return na_err_errno(err, ENOMEM, "curl");
	struct curl_slist *hdr = NULL;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 1000 ? timeout_ms : 1000L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	if (t->ca) {
		struct curl_blob blob = {t->ca, strlen(t->ca), CURL_BLOB_COPY};
		curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
		/* verify-ca, like replication: the member is the address we
		 * dialled, its certificate need not name it. */
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (strcmp(method, "GET")) {
		snprintf(auth, sizeof(auth), "%s:%s", PG_API_USER, t->pw);
		curl_easy_setopt(h, CURLOPT_USERPWD, auth);
		hdr = curl_slist_append(hdr, "Content-Type: application/json");
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
	}
	CURLcode rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
	if (rc != CURLE_OK) {
		free(b.p);
		return na_err_set(err, 502, "patroni_unreachable", NULL,
				  "Patroni's REST API at %s did not answer %s %s: %s", url, method,
				  path, curl_easy_strerror(rc));
	}
	*out = b.p ? b.p : strdup("");
	return 0;
}

/* The member Patroni names leader in /cluster, or -1. */
static int cluster_leader(const pg_target_t *t, char *leader, size_t n, na_err_t *err)
{
	long st = 0;
	char *out = NULL;
	if (http(t, "GET", "/cluster", NULL, 3000, &st, &out, err) < 0)
		return -1;
	json_t *j = json_loads(out, 0, NULL);
	free(out);
	size_t i;
	json_t *m;
	leader[0] = 0;
	json_array_foreach(json_object_get(j, "members"), i, m)
	{
		if (!strcmp(json_string_value(json_object_get(m, "role")) ?: "", "leader"))
			snprintf(leader, n, "%s",
				 json_string_value(json_object_get(m, "name")) ?: "");
	}
	json_decref(j);
	if (!leader[0])
		return na_err_set(err, 503, "patroni_refused", NULL,
				  "Patroni's cluster has no leader now");
	return 0;
}

/* ---- the poller ------------------------------------------------------------------ */

typedef struct pgw {
	char name[64], netns[512];
	pg_target_t t;
	na_timer_t *timer;
	int busy, gone;
	/* the view */
	long long updated;
	char role[24], state[32], error[200];
	long long timeline;
	double lag; /* bytes behind the leader, -1 unknown */
	int pending_restart, have;
	/* Members /cluster shows running, by address (pg_members_up). */
	char up[PG_MAX_MEMBERS][NA_ADDR_STRLEN];
	size_t nup;
	int have_up; /* the last poll read /cluster */
	struct pgw *next;
} pgw_t;

static pgw_t *watchers;

static pgw_t *w_find(const char *name)
{
	for (pgw_t *w = watchers; w; w = w->next)
		if (!strcmp(w->name, name))
			return w;
	return NULL;
}

static void w_free(pgw_t *w)
{
	na_timer_free(w->timer);
	free(w->t.ca);
	free(w);
}

static void w_unlink(pgw_t *w)
{
	for (pgw_t **p = &watchers; *p; p = &(*p)->next)
		if (*p == w) {
			*p = w->next;
			break;
		}
	w->gone = 1;
	na_timer_stop(w->timer);
	if (!w->busy)
		w_free(w);
}

struct poll_job {
	pgw_t *w;
	pg_target_t t; /* a copy: the watcher may change while the job runs */
	char *patroni, *cluster;
};

static int w_poll(void *arg, na_err_t *err)
{
	struct poll_job *j = arg;
	long st = 0;
	if (http(&j->t, "GET", "/patroni", NULL, POLL_TIMEOUT_MS, &st, &j->patroni, err) < 0)
		return -1;
	/* /patroni answers 503 while PostgreSQL is not running, with the
	 * same body: still the state to show. */
	na_err_t e = NA_ERR_INIT;
	http(&j->t, "GET", "/cluster", NULL, POLL_TIMEOUT_MS, &st, &j->cluster, &e);
	return 0;
}

static void poll_apply(pgw_t *w, const char *patroni, const char *cluster)
{
	json_t *p = json_loads(patroni, 0, NULL),
	       *c = cluster ? json_loads(cluster, 0, NULL) : NULL;
	const char *role = json_string_value(json_object_get(p, "role"));
	/* Patroni 3.0 says "master" here; /cluster's names are the view's. */
	snprintf(w->role, sizeof(w->role), "%s",
		 role && (!strcmp(role, "master") || !strcmp(role, "primary"))
		     ? "leader"
		     : (role ?: "unknown"));
	snprintf(w->state, sizeof(w->state), "%s",
		 json_string_value(json_object_get(p, "state")) ?: "unknown");
	w->timeline = json_integer_value(json_object_get(p, "timeline"));
	w->pending_restart = json_is_true(json_object_get(p, "pending_restart"));
	w->lag = -1;
	size_t i;
	json_t *m;
	w->nup = 0;
	w->have_up = json_is_array(json_object_get(c, "members"));
	json_array_foreach(json_object_get(c, "members"), i, m)
	{
		const char *st = json_string_value(json_object_get(m, "state")) ?: "";
		const char *host = json_string_value(json_object_get(m, "host"));
		if (host && w->nup < PG_MAX_MEMBERS &&
		    (!strcmp(st, "running") || !strcmp(st, "streaming")))
			snprintf(w->up[w->nup++], sizeof(w->up[0]), "%s", host);
		if (strcmp(json_string_value(json_object_get(m, "name")) ?: "", w->t.node))
			continue;
		const char *r = json_string_value(json_object_get(m, "role"));
		if (r)
			snprintf(w->role, sizeof(w->role), "%s", r);
		json_t *lag = json_object_get(m, "lag");
		w->lag = json_is_number(lag) ? json_number_value(lag)
					     : (!strcmp(w->role, "leader") ? 0 : -1);
		if (!w->timeline)
			w->timeline = json_integer_value(json_object_get(m, "timeline"));
	}
	w->error[0] = 0;
	w->have = 1;
	w->updated = mono_ms();
	json_decref(p);
	json_decref(c);
}

static void poll_done(void *arg, int rc, const na_err_t *err)
{
	struct poll_job *j = arg;
	pgw_t *w = j->w;
	w->busy = 0;
	if (w->gone || closing)
		w_free(w);
	else if (rc == 0)
		poll_apply(w, j->patroni, j->cluster);
	else {
		snprintf(w->error, sizeof(w->error), "%.199s", err->msg);
		w->updated = mono_ms();
	}
	free(j->patroni);
	free(j->cluster);
	free(j->t.ca);
	free(j);
}

static void tick(void *ud)
{
	pgw_t *w = ud;
	if (w->busy || w->gone || closing)
		return;
	struct poll_job *j = calloc(1, sizeof(*j));
	if (!j)
		return;
	j->w = w;
	j->t = w->t;
	j->t.ca = w->t.ca ? strdup(w->t.ca) : NULL;
	char key[80];
	snprintf(key, sizeof(key), "pgpoll/%s", w->name);
	w->busy = 1;
	if (na_ns_submit_lane(NA_LANE_DIAG, key, w->netns, w_poll, poll_done, j) < 0) {
		/* The diagnostics lane is full: the next tick tries again. */
		w->busy = 0;
		free(j->t.ca);
		free(j);
	}
}

void pg_state(const char *name, const pv_spec_t *spec, const char *state)
{
	pgw_t *w = w_find(name);
	if (!spec || !strcmp(state, "deleted")) {
		if (w)
			w_unlink(w);
		return;
	}
	if (strcmp(state, "running")) {
		if (w)
			na_timer_stop(w->timer);
		return;
	}
	pv_ct_t *c = pv_ct_find(name);
	na_err_t err = NA_ERR_INIT;
	pg_target_t t;
	if (!c || target_of(spec, &t, &err) < 0) {
		na_warn("patroni poller not started", "container=%s error=%s", name, err.msg);
		return;
	}
	if (!w) {
		if (!(w = calloc(1, sizeof(*w))) || !(w->timer = na_timer_new(agent, tick, w))) {
			free(w);
			free(t.ca);
			return;
		}
		snprintf(w->name, sizeof(w->name), "%s", name);
		w->next = watchers;
		watchers = w;
	}
	free(w->t.ca);
	w->t = t;
	pv_ct_netns(c, w->netns, sizeof(w->netns));
	na_timer_start(w->timer, 300, POLL_MS);
}

int pg_members_up(const char *name, char (*up)[NA_ADDR_STRLEN], size_t max)
{
	pgw_t *w = w_find(name);
	if (!w || !w->have || !w->have_up || mono_ms() - w->updated > 10000)
		return -1;
	size_t n = 0;
	for (; n < w->nup && n < max; n++)
		snprintf(up[n], sizeof(up[0]), "%s", w->up[n]);
	return (int)n;
}

void pg_view(const char *name, json_t *obj)
{
	pgw_t *w = w_find(name);
	if (!w)
		return;
	json_t *v = json_object();
	if (w->have) {
		json_object_set_new(v, "role", json_string(w->role));
		json_object_set_new(v, "state", json_string(w->state));
		json_object_set_new(v, "timeline", json_integer(w->timeline));
		json_object_set_new(v, "lag",
				    w->lag >= 0 ? json_integer((json_int_t)w->lag) : json_null());
		json_object_set_new(v, "pending_restart", json_boolean(w->pending_restart));
	} else
		json_object_set_new(v, "state", json_string("unknown"));
	if (w->error[0])
		json_object_set_new(v, "error", json_string(w->error));
	json_object_set_new(v, "updated_ms_ago",
			    w->updated ? json_integer(mono_ms() - w->updated) : json_null());
	json_object_set_new(obj, "patroni", v);
}

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
static int w_config(struct act_job *j, na_err_t *err)
{
	char *cur = NULL;
	if (http(&j->t, "GET", "/config", NULL, 5000, &j->status, &cur, err) < 0)
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
	int rc = http(&j->t, "PATCH", "/config", body, 5000, &j->status, &j->answer, err);
	free(body);
	if (rc < 0)
		return -1;
	return j->status >= 200 && j->status < 300 ? 0 : refused(j, "/config", err);
}

static int w_act(void *arg, na_err_t *err)
{
	struct act_job *j = arg;
	char body[256];
	const char *path;
	long timeout = ACT_TIMEOUT_MS;
	switch (j->kind) {
	case ACT_SWITCHOVER:
		if (cluster_leader(&j->t, j->leader, sizeof(j->leader), err) < 0)
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
	if (http(&j->t, "POST", path, body, timeout, &j->status, &j->answer, err) < 0)
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
	if (target_of(&c->spec, &j->t, err) < 0) {
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
	closing = 0;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	return na_api_register(ag->api, routes, NA_ARRAY_SIZE(routes), err);
}

void pg_fini(void)
{
	closing = 1;
	while (watchers) {
		pgw_t *w = watchers;
		watchers = w->next;
		w->gone = 1;
		na_timer_stop(w->timer);
		if (!w->busy)
			w_free(w);
	}
}
