/* pgBackRest's TLS server beside Patroni (backup.h). A backup on a
 * follower needs the primary's pgBackRest (it starts and stops the backup
 * there and copies pg_control and the configuration files), and a backup
 * on the leader copies from a follower's: without SSH that is `pgbackrest
 * server` on every member, since roles swap (notes/pitr-field-notes.md).
 *
 * Patroni is the container's PID 1 and starts nothing else, and its
 * callbacks are killed with their children when the next one runs, so
 * the agent runs the server in each member it keeps, as a pv_exec job
 * (runc exec: the member's namespaces, user and seccomp profile) that
 * lasts as long as the server, and starts it again when it exits while
 * the member runs. The server dies with the member's PID namespace.
 *
 * An agent that died leaves its server running (runc exec is not killed
 * with its parent); the next agent's server cannot bind and exits at
 * once, so that restarts back off to one try a minute. */
#include "netagent/log.h"
#include "netagent/util.h"
#include "provision/backup.h"
#include "provision/pg_backrest.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 60000
#define RAN_LONG_MS    60000 /* a server that ran this long starts again at once */

typedef struct srv {
	char name[64];
	int running; /* a job is out */
	int wanted;  /* the member runs with a preset that wants it */
	int gone;    /* the container was deleted: free once the job is back */
	unsigned backoff_ms, fails;
	unsigned long long t0_ms;
	na_timer_t *timer;
	struct srv *next;
} srv_t;

static srv_t *servers;
static int closing;

static srv_t *find(const char *name)
{
	for (srv_t *s = servers; s; s = s->next)
		if (!strcmp(s->name, name))
			return s;
	return NULL;
}

static void unlink_free(srv_t *gone)
{
	for (srv_t **p = &servers; *p; p = &(*p)->next)
		if (*p == gone) {
			*p = gone->next;
			break;
		}
	na_timer_free(gone->timer);
	free(gone);
}

/* The preset runs the server: pitr, tls, more than one member. */
static int wanted(const pv_spec_t *spec)
{
	return spec && pgbr_tls_server(json_object_get(spec->body, "postgres"));
}

static void start(srv_t *s);

static void exited(void *ud, int rc, const na_err_t *err, int status, const char *out, size_t len)
{
	srv_t *s = ud;
	s->running = 0;
	if (closing || s->gone) {
		unlink_free(s);
		return;
	}
	unsigned long long ran = na_now_ms() - s->t0_ms;
	if (ran >= RAN_LONG_MS) {
		s->backoff_ms = BACKOFF_MIN_MS;
		s->fails = 0;
	} else {
		s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : BACKOFF_MIN_MS;
		if (s->backoff_ms > BACKOFF_MAX_MS)
			s->backoff_ms = BACKOFF_MAX_MS;
		s->fails++;
	}
	/* The first exits say why; an agent restarted beside a server it
	 * left behind sees "address in use" every minute: debug. */
	const char *tail = out + (len > 200 ? len - 200 : 0);
	if (s->fails <= 3)
		na_warn("pgbackrest server exited",
			"container=%s status=%d error=\"%s\" retry_ms=%u", s->name, status,
			rc < 0 ? err->msg : tail, s->backoff_ms);
	else
		na_debug("pgbackrest server exited", "container=%s status=%d retry_ms=%u", s->name,
			 status, s->backoff_ms);
	pv_ct_t *c = pv_ct_find(s->name);
	if (s->wanted && c && c->state == PV_S_RUNNING)
		na_timer_start(s->timer, s->backoff_ms, 0);
}

static void start(srv_t *s)
{
	pv_ct_t *c = pv_ct_find(s->name);
	if (s->running || !s->wanted || !c || c->state != PV_S_RUNNING)
		return;
	/* Its log goes to the agent (the output of an exit), not to a file
	 * in a log-path nothing made yet. */
	const char *argv[] = {"pgbackrest", "--config=" PGBR_CONF_IN_CT, "--log-level-file=off",
			      "server", NULL};
	pv_exec_req_t x = {.container = s->name,
			   .argv = argv,
			   .timeout_ms = UINT_MAX, /* ~49 days, then a restart */
			   .capture_max = 4096};
	na_err_t e = NA_ERR_INIT;
	s->t0_ms = na_now_ms();
	if (pv_exec(&x, exited, s, &e) < 0) {
		na_warn("pgbackrest server not started", "container=%s error=\"%s\"", s->name,
			e.msg);
		na_timer_start(s->timer, BACKOFF_MAX_MS, 0);
		return;
	}
	s->running = 1;
	na_debug("pgbackrest server started", "container=%s", s->name);
}

static void tick(void *ud)
{
	start(ud);
}

void bk_server_state(const char *name, const pv_spec_t *spec, const char *state)
{
	srv_t *s = find(name);
	if (!spec || !strcmp(state, "deleted")) {
		if (s && s->running) {
			s->gone = 1; /* its job still refers to it */
			s->wanted = 0;
			na_timer_stop(s->timer);
		} else if (s) {
			unlink_free(s);
		}
		return;
	}
	int want = wanted(spec);
	if (!s && !want)
		return;
	if (!s) {
		if (!(s = calloc(1, sizeof(*s))) || !(s->timer = na_timer_new(pv.ag, tick, s))) {
			free(s);
			na_warn("pgbackrest server not started",
				"container=%s error=\"out of memory\"", name);
			return;
		}
		snprintf(s->name, sizeof(s->name), "%s", name);
		s->next = servers;
		servers = s;
	}
	s->wanted = want;
	if (strcmp(state, "running")) {
		/* It dies with the member; its job's end starts nothing. */
		na_timer_stop(s->timer);
		return;
	}
	s->backoff_ms = 0;
	s->fails = 0;
	start(s);
}

void bk_server_fini(void)
{
	closing = 1;
	/* Servers run on with their members; a job still out frees its
	 * entry when runc exec returns (never, when the loop is gone). */
	for (srv_t *s = servers, *n; s; s = n) {
		n = s->next;
		na_timer_stop(s->timer);
		if (!s->running)
			unlink_free(s);
	}
}
