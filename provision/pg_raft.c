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

int pg_raft_status_parse(const char *out, pg_raft_status_t *st)
{
	static const char partner[] = "partner_node_status_server_";
	int term = 0;
	memset(st, 0, sizeof(*st));
	for (const char *l = out; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		/* the key ends at ": " (a node id holds a ':' of its own) */
		const char *sep = strstr(l, ": "), *eol = l + strcspn(l, "\r\n");
		if (!sep || sep > eol)
			continue;
		const char *v = sep + 2;
		int kl = (int)(sep - l), vl = (int)(eol - v);
		if (kl == 9 && !strncmp(l, "raft_term", 9)) {
			term = 1;
		} else if (kl == 6 && !strncmp(l, "leader", 6)) {
			if (vl > 0 && !(vl == 4 && !strncmp(v, "None", 4)))
				snprintf(st->leader, sizeof(st->leader), "%.*s", vl, v);
		} else if (kl > (int)sizeof(partner) - 1 &&
			   !strncmp(l, partner, sizeof(partner) - 1) &&
			   st->npartner < NA_ARRAY_SIZE(st->partner)) {
			/* 2 is connected, 0 not */
			snprintf(st->partner[st->npartner].node, sizeof(st->partner[0].node),
				 "%.*s", kl - (int)sizeof(partner) + 1, l + sizeof(partner) - 1);
			st->partner[st->npartner++].up = atoi(v) == 2;
		}
	}
	return term ? 0 : -1;
}

int pg_raft_status_has(const pg_raft_status_t *st, const char *node)
{
	for (size_t i = 0; i < st->npartner; i++)
		if (!strcmp(st->partner[i].node, node))
			return 1;
	return 0;
}

static void status_read(void *ud, int rc, const na_err_t *err, int status, const char *out,
			size_t len)
{
	rsync_t *s = ud;
	pg_raft_status_t st;
	char why[200];
	(void)len;
	if (rc < 0) {
		finish(s, -1, err);
		return;
	}
	if (status != 0 || pg_raft_status_parse(out, &st) < 0) {
		snprintf(why, sizeof(why), "the Raft node of %s does not answer (exit %d)", s->ct,
			 status);
		wait_round(s, why);
		return;
	}
	size_t gone = st.npartner;
	for (size_t k = 0; k < st.npartner && gone == st.npartner; k++)
		if (!in_want(s, st.partner[k].node))
			gone = k;
	if (gone == st.npartner) {
		finish(s, 0, NULL);
		return;
	}
	for (size_t i = 0; i < st.npartner; i++)
		if (i != gone && in_want(s, st.partner[i].node) && !st.partner[i].up) {
			snprintf(why, sizeof(why), "voter %.63s is not connected yet",
				 st.partner[i].node);
			wait_round(s, why);
			return;
		}
	snprintf(s->target, sizeof(s->target), "%.63s", st.partner[gone].node);
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
	pg_raft_status_t st;
	(void)err;
	(void)len;
	if (j_back(j))
		return;
	if (rc < 0 || status != 0 || pg_raft_status_parse(out, &st) < 0 || !st.leader[0]) {
		j->ask++;
		j_ask(j);
		return;
	}
	snprintf(j->leader, sizeof(j->leader), "%s", st.leader);
	/* Every voter holds the same membership: is this member in it? */
	if (pg_raft_status_has(&st, j->self)) {
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
	pg_raft_status_t st;
	(void)err;
	(void)len;
	if (j_back(j))
		return;
	if (rc == 0 && status == 0 && pg_raft_status_parse(out, &st) == 0 && st.leader[0]) {
		na_debug("raft: member follows a leader", "container=%s leader=%s", j->ct,
			 st.leader);
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
