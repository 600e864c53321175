/* Raft membership of a postgres cluster, changed explicitly (SPEC §4): a
 * member that has Raft data keeps the membership it recorded and ignores
 * a new partner list (notes/pitr-field-notes.md), so growing or shrinking
 * a cluster asks the running Raft to add or remove voters. pysyncobj's
 * own admin tool does it (`syncobj_admin`, whose protocol is pickled and,
 * with a password, encrypted by pysyncobj), run by `runc exec` in a
 * running member so that it reaches the Raft ports on the overlay.
 *
 * One voter at a time, and only a voter that answers: Raft needs a
 * majority of the new membership to commit anything, so a single-member
 * cluster that added a voter whose node is still starting would stall
 * its own DCS (and Patroni demotes a leader without DCS). So each round
 * reads this member's view (`-status`), waits while a voter it has is not
 * connected, probes the next new voter's own node, adds it, and starts
 * over; removals come after every add. Stateless: a repeated sync sends
 * only the difference. */
#include "provision/pg_raft.h"
#include "netagent/log.h"
#include "netagent/util.h"
#include "provision/provision.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RAFT_CALL_MS  10000 /* one status or probe */
#define RAFT_ADD_MS   30000 /* a change answers once committed */
#define RAFT_WAIT_MS  1000  /* between rounds while something is not ready */
#define RAFT_TOTAL_MS 120000

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

static int admin(rsync_t *s, const char *conn, const char *cmd, const char *node, unsigned tmo,
		 pv_exec_cb cb)
{
	const char *argv[10];
	size_t k = 0;
	argv[k++] = "syncobj_admin";
	argv[k++] = "-conn";
	argv[k++] = conn;
	if (s->pass[0]) {
		argv[k++] = "-pass";
		argv[k++] = s->pass;
	}
	argv[k++] = cmd;
	if (node)
		argv[k++] = node;
	argv[k] = NULL;
	pv_exec_req_t x = {
	    .container = s->ct, .argv = argv, .timeout_ms = tmo, .capture_max = 16384};
	na_err_t e = NA_ERR_INIT;
	if (pv_exec(&x, cb, s, &e) < 0) {
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

static void probed(void *ud, int rc, const na_err_t *err, int status, const char *out, size_t len)
{
	rsync_t *s = ud;
	char why[200];
	(void)len;
	if (rc < 0) {
		finish(s, -1, err);
		return;
	}
	/* A node that answers its status runs, even if no cluster has it. */
	if (status != 0 || !strstr(out, "raft_term")) {
		snprintf(why, sizeof(why), "the new voter %s does not answer yet", s->target);
		wait_round(s, why);
		return;
	}
	snprintf(s->change, sizeof(s->change), "-add");
	admin(s, s->self, "-add", s->target, RAFT_ADD_MS, changed);
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
	for (size_t i = 0; i < nhave; i++)
		if (in_want(s, have[i].node) && !have[i].up) {
			snprintf(why, sizeof(why), "voter %.63s is not connected yet", have[i].node);
			wait_round(s, why);
			return;
		}
	for (size_t i = 0; i < s->nwant; i++) {
		int known = !strcmp(s->want[i], s->self);
		for (size_t k = 0; k < nhave && !known; k++)
			known = !strcmp(have[k].node, s->want[i]);
		if (!known) {
			snprintf(s->target, sizeof(s->target), "%s", s->want[i]);
			admin(s, s->target, "-status", NULL, RAFT_CALL_MS, probed);
			return;
		}
	}
	for (size_t k = 0; k < nhave; k++)
		if (!in_want(s, have[k].node)) {
			snprintf(s->target, sizeof(s->target), "%.63s", have[k].node);
			snprintf(s->change, sizeof(s->change), "-remove");
			admin(s, s->self, "-remove", s->target, RAFT_ADD_MS, changed);
			return;
		}
	finish(s, 0, NULL);
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
