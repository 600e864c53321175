/* Raft membership of a postgres cluster (SPEC §4). Patroni's Raft adds a
 * new node by itself: a node that starts asks the partners it was given
 * for the membership and, when it is not a voter yet, asks the cluster to
 * add it. Nothing removes a voter that is gone, and a member that has
 * Raft data keeps the membership it recorded, so shrinking a cluster asks
 * the running Raft to remove voters explicitly. pysyncobj's own admin
 * tool does it (`syncobj_admin`, whose protocol is pickled and, with a
 * password, encrypted by pysyncobj), run by `runc exec` in a running
 * member so that it reaches the Raft ports on the overlay.
 *
 * One voter at a time, and only while every voter that stays is
 * connected: Raft needs a majority of the new membership to commit, and
 * a cluster that removed a live voter while another was down would stall
 * its own DCS (Patroni demotes a leader without DCS). Each round reads
 * this member's view (`-status`) and sends at most one change, then
 * starts over. Stateless: a repeated sync sends only the difference.
 * (Adding a voter by hand as well raced with the node's own request:
 * pysyncobj refused one as "already a member" and then stopped answering
 * status calls for minutes. A node whose own request failed is added by
 * its agent, well after that request: the join below.) */
#include "provision/pg_raft.h"
#include "netagent/log.h"
#include "netagent/util.h"
#include "provision/provision.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RAFT_CALL_MS   10000 /* one status or probe */
#define RAFT_CHANGE_MS 30000 /* a change answers once committed */
#define RAFT_WAIT_MS   1000  /* between rounds while something is not ready */
#define RAFT_TOTAL_MS  120000

typedef struct rsync {
	char ct[64], self[64], pass[160];
	char want[PG_RAFT_MAX][64]; /* "ip:port" */
	size_t nwant;
	char target[64], change[8];
	char why[240]; /* what the last round waited for */
	unsigned long long deadline;
	na_timer_t *timer;
	pv_role_cb cb;
	void *ud;
} rsync_t;

static void round_start(void *ud);

static void finish(rsync_t *s, int rc, const na_err_t *err)
{
	na_timer_free(s->timer);
	s->cb(s->ud, rc, err);
	free(s);
}

static void wait_round(rsync_t *s, const char *why)
{
	snprintf(s->why, sizeof(s->why), "%s", why);
	if (na_now_ms() + RAFT_WAIT_MS > s->deadline) {
		na_err_t e = NA_ERR_INIT;
		na_err_set(&e, 503, "raft_unavailable", "postgres.members",
			   "Raft membership of %s not changed within %d s: %s; retry", s->ct,
			   RAFT_TOTAL_MS / 1000, s->why);
		finish(s, -1, &e);
		return;
	}
	na_timer_start(s->timer, RAFT_WAIT_MS, 0);
}

/* syncobj_admin -conn CONN [-pass P] CMD [NODE], run in container ct. */
static int raft_admin(const char *ct, const char *pass, const char *conn, const char *cmd,
		      const char *node, unsigned tmo, pv_exec_cb cb, void *ud, na_err_t *err)
{
	const char *argv[10];
	size_t k = 0;
	argv[k++] = "syncobj_admin";
	argv[k++] = "-conn";
	argv[k++] = conn;
	if (pass[0]) {
		argv[k++] = "-pass";
		argv[k++] = pass;
	}
	argv[k++] = cmd;
	if (node)
		argv[k++] = node;
	argv[k] = NULL;
	pv_exec_req_t x = {.container = ct, .argv = argv, .timeout_ms = tmo, .capture_max = 16384};
	return pv_exec(&x, cb, ud, err);
}

static int admin(rsync_t *s, const char *conn, const char *cmd, const char *node, unsigned tmo,
		 pv_exec_cb cb)
{
	na_err_t e = NA_ERR_INIT;
	if (raft_admin(s->ct, s->pass, conn, cmd, node, tmo, cb, s, &e) < 0) {
		finish(s, -1, &e);
		return -1;
	}
	return 0;
}

/* pysyncobj answers "SUCCESS" or "FAIL": its leader refuses a change while
 * the previous one or a new term's no-op is not committed yet. */
static void changed(void *ud, int rc, const na_err_t *err, int status, const char *out, size_t len)
{
	rsync_t *s = ud;
	char why[200];
	if (rc < 0) {
		finish(s, -1, err);
		return;
	}
	if (status != 0 || !strstr(out, "SUCCESS")) {
		snprintf(why, sizeof(why), "%s %s not done (exit %d): %.*s", s->change, s->target,
			 status, (int)(len > 120 ? 120 : len), out);
		wait_round(s, why);
		return;
	}
	na_info("raft membership changed", "container=%s change=%s node=%s", s->ct, s->change,
		s->target);
	round_start(s);
}

static int in_want(const rsync_t *s, const char *v)
{
	for (size_t i = 0; i < s->nwant; i++)
		if (!strcmp(s->want[i], v))
			return 1;
	return 0;
}

static void status_read(void *ud, int rc, const na_err_t *err, int status, const char *out,
			size_t len)
{
	rsync_t *s = ud;
	char why[200];
	(void)len;
	if (rc < 0) {
		finish(s, -1, err);
		return;
	}
	if (status != 0 || !strstr(out, "raft_term")) {
		snprintf(why, sizeof(why), "the Raft node of %s does not answer (exit %d)", s->ct,
			 status);
		wait_round(s, why);
		return;
	}
	struct {
		char node[64];
		int up;
	} have[2 * PG_RAFT_MAX];
	size_t nhave = 0;
	static const char key[] = "partner_node_status_server_";
	for (const char *p = strstr(out, key); p && nhave < NA_ARRAY_SIZE(have);
	     p = strstr(p + 1, key)) {
		/* "ip:port: 2" — the node id holds one ':' itself; 2 is
		 * connected, 0 not. */
		const char *a = p + sizeof(key) - 1, *e = strchr(a, ':');
		e = e ? strchr(e + 1, ':') : NULL;
		if (!e)
			break;
		snprintf(have[nhave].node, sizeof(have[0].node), "%.*s", (int)(e - a), a);
		have[nhave++].up = atoi(e + 1) == 2;
	}
	size_t gone = nhave;
	for (size_t k = 0; k < nhave && gone == nhave; k++)
		if (!in_want(s, have[k].node))
			gone = k;
	if (gone == nhave) {
		finish(s, 0, NULL);
		return;
	}
	for (size_t i = 0; i < nhave; i++)
		if (i != gone && in_want(s, have[i].node) && !have[i].up) {
			snprintf(why, sizeof(why), "voter %.63s is not connected yet",
				 have[i].node);
			wait_round(s, why);
			return;
		}
	snprintf(s->target, sizeof(s->target), "%.63s", have[gone].node);
	snprintf(s->change, sizeof(s->change), "-remove");
	admin(s, s->self, "-remove", s->target, RAFT_CHANGE_MS, changed);
}

static void round_start(void *ud)
{
	rsync_t *s = ud;
	admin(s, s->self, "-status", NULL, RAFT_CALL_MS, status_read);
}

int pg_raft_sync(const pg_raft_req_t *r, pv_role_cb cb, void *ud, na_err_t *err)
{
	if (r->nmembers > PG_RAFT_MAX)
		return na_err_set(err, 422, "invalid_field", "postgres.members",
				  "at most %d Raft voters", PG_RAFT_MAX);
	rsync_t *s = calloc(1, sizeof(*s));
	if (!s)
		return na_err_errno(err, ENOMEM, "raft sync");
	if (!(s->timer = na_timer_new(r->agent, round_start, s))) {
		free(s);
		return na_err_errno(err, ENOMEM, "raft sync");
	}
	snprintf(s->ct, sizeof(s->ct), "%s", r->container);
	snprintf(s->self, sizeof(s->self), "%s:%d", r->self_ip, r->port);
	snprintf(s->pass, sizeof(s->pass), "%s", r->password ? r->password : "");
	for (size_t i = 0; i < r->nmembers; i++)
		snprintf(s->want[s->nwant++], sizeof(s->want[0]), "%s:%d", r->members[i], r->port);
	s->deadline = na_now_ms() + RAFT_TOTAL_MS;
	s->cb = cb;
	s->ud = ud;
	na_timer_start(s->timer, 0, 0); /* cb never runs inside this call */
	return 0;
}

/* ---- a new member's join ------------------------------------------------
 * Patroni's self-add is one request, sent once when Patroni starts, and
 * pysyncobj's leader refuses a membership change while the previous one
 * is not committed: two members that start together (a cluster growing
 * from one to three) can leave one of them out for good, its Patroni
 * "waiting on raft". A running member that still knows no Raft leader
 * after JOIN_GRACE_MS (the self-add has long been answered by then: no
 * race with it) asks its partners who leads and, when the leader does not
 * count it as a voter, asks the leader to add it; again every
 * JOIN_RETRY_MS until it follows a leader or JOIN_TOTAL_MS pass. */
#define JOIN_GRACE_MS 10000
#define JOIN_RETRY_MS 3000
#define JOIN_TOTAL_MS 600000

typedef struct rjoin {
	struct rjoin *next;
	char ct[64], self[64], pass[160];
	char others[PG_RAFT_MAX][64];
	size_t nothers, ask;
	char leader[64];
	unsigned long long deadline;
	na_timer_t *timer;
	int busy, gone;
} rjoin_t;

static rjoin_t *joins;

static void j_free(rjoin_t *j)
{
	for (rjoin_t **p = &joins; *p; p = &(*p)->next)
		if (*p == j) {
			*p = j->next;
			break;
		}
	na_timer_free(j->timer);
	free(j);
}

/* The value of "key: value" in syncobj_admin's -status answer. */
static int status_field(const char *out, const char *key, char *v, size_t n)
{
	size_t kl = strlen(key);
	for (const char *l = out; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
		if (!strncmp(l, key, kl) && l[kl] == ':' && l[kl + 1] == ' ') {
			const char *a = l + kl + 2;
			size_t m = strcspn(a, "\r\n");
			snprintf(v, n, "%.*s", (int)m, a);
			return 1;
		}
	return 0;
}

static int leader_of(const char *out, char *v, size_t n)
{
	return status_field(out, "leader", v, n) && strcmp(v, "None") && v[0];
}

static void j_round(void *ud);

/* Called at the end of each exec: 1 when the join was cancelled meanwhile
 * (and is freed now). */
static int j_back(rjoin_t *j)
{
	j->busy = 0;
	if (!j->gone)
		return 0;
	j_free(j);
	return 1;
}

static void j_later(rjoin_t *j)
{
	if (na_now_ms() > j->deadline) {
		na_warn("raft: member still follows no leader, giving up",
			"container=%s after_s=%d", j->ct, JOIN_TOTAL_MS / 1000);
		j_free(j);
		return;
	}
	na_timer_start(j->timer, JOIN_RETRY_MS, 0);
}

static void j_exec(rjoin_t *j, const char *conn, const char *cmd, const char *node, pv_exec_cb cb)
{
	na_err_t e = NA_ERR_INIT;
	if (raft_admin(j->ct, j->pass, conn, cmd, node, RAFT_CALL_MS, cb, j, &e) < 0) {
		na_debug("raft join: exec failed", "container=%s error=%s", j->ct, e.msg);
		j_later(j);
		return;
	}
	j->busy = 1;
}

static void j_added(void *ud, int rc, const na_err_t *err, int status, const char *out, size_t len)
{
	rjoin_t *j = ud;
	(void)err;
	if (j_back(j))
		return;
	na_info("raft: asked the leader to add this member", "container=%s leader=%s answer=%.*s",
		j->ct, j->leader, rc < 0 || status != 0 ? 0 : (int)(len > 40 ? 40 : len),
		rc < 0 ? "" : out);
	j_later(j);
}

static void j_ask(rjoin_t *j);

static void j_asked(void *ud, int rc, const na_err_t *err, int status, const char *out, size_t len)
{
	rjoin_t *j = ud;
	char key[96];
	(void)err;
	(void)len;
	if (j_back(j))
		return;
	if (rc < 0 || status != 0 || !leader_of(out, j->leader, sizeof(j->leader))) {
		j->ask++;
		j_ask(j);
		return;
	}
	/* Every voter holds the same membership: is this member in it? */
	snprintf(key, sizeof(key), "partner_node_status_server_%s: ", j->self);
	if (strstr(out, key)) {
		j_later(j); /* a voter already, catching up */
		return;
	}
	j_exec(j, j->leader, "-add", j->self, j_added);
}

static void j_ask(rjoin_t *j)
{
	if (j->ask >= j->nothers) {
		j_later(j);
		return;
	}
	j_exec(j, j->others[j->ask], "-status", NULL, j_asked);
}

static void j_self(void *ud, int rc, const na_err_t *err, int status, const char *out, size_t len)
{
	rjoin_t *j = ud;
	char v[64];
	(void)err;
	(void)len;
	if (j_back(j))
		return;
	if (rc == 0 && status == 0 && leader_of(out, v, sizeof(v))) {
		na_debug("raft: member follows a leader", "container=%s leader=%s", j->ct, v);
		j_free(j);
		return;
	}
	j->ask = 0;
	j_ask(j);
}

static void j_round(void *ud)
{
	rjoin_t *j = ud;
	j_exec(j, j->self, "-status", NULL, j_self);
}

void pg_raft_join_stop(const char *container)
{
	for (rjoin_t *j = joins, *n; j; j = n) {
		n = j->next;
		if (strcmp(j->ct, container))
			continue;
		if (j->busy) {
			/* its exec's callback frees it */
			j->gone = 1;
			na_timer_stop(j->timer);
		} else {
			j_free(j);
		}
	}
}

int pg_raft_join(const pg_raft_req_t *r, na_err_t *err)
{
	pg_raft_join_stop(r->container);
	if (r->nmembers < 2)
		return 0;
	if (r->nmembers > PG_RAFT_MAX)
		return na_err_set(err, 422, "invalid_field", "postgres.members",
				  "at most %d Raft voters", PG_RAFT_MAX);
	rjoin_t *j = calloc(1, sizeof(*j));
	if (!j || !(j->timer = na_timer_new(r->agent, j_round, j))) {
		free(j);
		return na_err_errno(err, ENOMEM, "raft join");
	}
	snprintf(j->ct, sizeof(j->ct), "%s", r->container);
	snprintf(j->self, sizeof(j->self), "%s:%d", r->self_ip, r->port);
	snprintf(j->pass, sizeof(j->pass), "%s", r->password ? r->password : "");
	for (size_t i = 0; i < r->nmembers; i++)
		if (strcmp(r->members[i], r->self_ip))
			snprintf(j->others[j->nothers++], sizeof(j->others[0]), "%s:%d",
				 r->members[i], r->port);
	j->deadline = na_now_ms() + JOIN_TOTAL_MS;
	j->next = joins;
	joins = j;
	na_timer_start(j->timer, JOIN_GRACE_MS, 0);
	return 0;
}

void pg_raft_fini(void)
{
	while (joins) {
		rjoin_t *j = joins;
		if (j->busy) {
			/* the exec's callback frees it; take it off the list */
			joins = j->next;
			j->next = NULL;
			j->gone = 1;
			na_timer_stop(j->timer);
		} else {
			j_free(j);
		}
	}
}
