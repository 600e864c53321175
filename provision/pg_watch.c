/* The postgres role's view of each running member: a poller per member
 * asks Patroni's REST API for /patroni and /cluster every 2 s on the
 * diagnostics lane (never the loop thread), and GET shows the cached
 * answer; the backups read which members run. */
#include "netagent/log.h"
#include "netagent/nsworker.h"
#include "netagent/util.h"
#include "provision/pg.h"
#include "provision/pv_int.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define POLL_MS		2000
#define POLL_TIMEOUT_MS 1500

static na_agent_t *agent;
static int closing;

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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
	if (pg_http(&j->t, "GET", "/patroni", NULL, POLL_TIMEOUT_MS, &st, &j->patroni, err) < 0)
		return -1;
	/* /patroni answers 503 while PostgreSQL is not running, with the
	 * same body: still the state to show. */
	na_err_t e = NA_ERR_INIT;
	pg_http(&j->t, "GET", "/cluster", NULL, POLL_TIMEOUT_MS, &st, &j->cluster, &e);
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
	if (!c || pg_target_of(spec, &t, &err) < 0) {
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

void pg_watch_init(na_agent_t *ag)
{
	agent = ag;
	closing = 0;
}

void pg_watch_fini(void)
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
