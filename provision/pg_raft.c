/* Raft membership of a postgres cluster, changed explicitly (SPEC §4): a
 * member that has Raft data keeps the membership it recorded and ignores
 * a new partner list (notes/pitr-field-notes.md), so growing or shrinking
 * a cluster asks the running Raft to add or remove voters. pysyncobj's
 * own admin tool does it (`syncobj_admin -add/-remove`, forwarded to the
 * Raft leader by pysyncobj), run by `runc exec` in a running member, so
 * it reaches the Raft port on the overlay from inside. Stateless: each
 * sync reads `-status` and sends only the difference, so it can be
 * repeated after any failure. */
#include "provision/pg_raft.h"
#include "netagent/log.h"
#include "provision/provision.h"

#include <errno.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RAFT_TIMEOUT_MS 30000
#define RAFT_ATTEMPTS	30

typedef struct rsync {
	char ct[64], self[64], pass[160];
	char want[PG_RAFT_MAX][64]; /* "ip:port" */
	size_t nwant;
	char todo[2 * PG_RAFT_MAX][72]; /* "-add"/"-remove" NUL node */
	size_t ntodo, next;
	int attempts;
	pv_role_cb cb;
	void *ud;
} rsync_t;

static void run_next(rsync_t *s);
static void status_read(void *ud, int rc, const na_err_t *err, int status, const char *out,
			size_t len);

static void finish(rsync_t *s, int rc, const na_err_t *err)
{
	s->cb(s->ud, rc, err);
	free(s);
}

static int exec_admin(rsync_t *s, const char *cmd, const char *node, pv_exec_cb cb)
{
	const char *argv[10];
	size_t k = 0;
	argv[k++] = "syncobj_admin";
	argv[k++] = "-conn";
	argv[k++] = s->self;
	if (s->pass[0]) {
		argv[k++] = "-pass";
		argv[k++] = s->pass;
	}
	argv[k++] = cmd;
	if (node)
		argv[k++] = node;
	argv[k] = NULL;
	pv_exec_req_t x = {
	    .container = s->ct, .argv = argv, .timeout_ms = RAFT_TIMEOUT_MS, .capture_max = 16384};
	na_err_t e = NA_ERR_INIT;
	if (pv_exec(&x, cb, s, &e) < 0) {
		finish(s, -1, &e);
		return -1;
	}
	return 0;
}

static void changed(void *ud, int rc, const na_err_t *err, int status, const char *out, size_t len)
{
	rsync_t *s = ud;
	const char *what = s->todo[s->next - 1];
	if (rc < 0) {
		finish(s, -1, err);
		return;
	}
	/* pysyncobj answers "SUCCESS" or "FAIL" on stdout. Its leader
	 * refuses a change while the previous one or a new term's no-op is
	 * not committed yet: read the membership again and retry. Each
	 * round is two runc execs (~0.3 s). */
	if (status == 0 && !strstr(out, "SUCCESS") && s->attempts < RAFT_ATTEMPTS) {
		s->attempts++;
		s->ntodo = s->next = 0;
		exec_admin(s, "-status", NULL, status_read);
		return;
	}
	if (status != 0 || !strstr(out, "SUCCESS")) {
		na_err_t e = NA_ERR_INIT;
		na_err_set(&e, 502, "raft_error", "postgres.members", "Raft refused %s %s: %.*s",
			   what, what + strlen(what) + 1, (int)(len > 200 ? 200 : len), out);
		finish(s, -1, &e);
		return;
	}
	na_info("raft membership changed", "container=%s change=%s node=%s", s->ct, what,
		what + strlen(what) + 1);
	run_next(s);
}

static void run_next(rsync_t *s)
{
	if (s->next == s->ntodo) {
		finish(s, 0, NULL);
		return;
	}
	const char *cmd = s->todo[s->next++];
	exec_admin(s, cmd, cmd + strlen(cmd) + 1, changed);
}

static int in_list(char (*list)[64], size_t n, const char *v)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(list[i], v))
			return 1;
	return 0;
}

static void todo_add(rsync_t *s, const char *cmd, const char *node)
{
	if (s->ntodo >= 2 * PG_RAFT_MAX)
		return;
	char *t = s->todo[s->ntodo++];
	size_t cl = strlen(cmd);
	memcpy(t, cmd, cl + 1);
	snprintf(t + cl + 1, sizeof(s->todo[0]) - cl - 1, "%s", node);
}

static void status_read(void *ud, int rc, const na_err_t *err, int status, const char *out,
			size_t len)
{
	rsync_t *s = ud;
	(void)len;
	if (rc < 0) {
		finish(s, -1, err);
		return;
	}
	if (status != 0) {
		na_err_t e = NA_ERR_INIT;
		na_err_set(&e, 503, "raft_unavailable", NULL,
			   "the Raft node of %s does not answer (exit %d): %.200s", s->ct, status,
			   out);
		finish(s, -1, &e);
		return;
	}
	char have[2 * PG_RAFT_MAX][64];
	size_t nhave = 0;
	static const char key[] = "partner_node_status_server_";
	for (const char *p = strstr(out, key); p && nhave < 2 * PG_RAFT_MAX;
	     p = strstr(p + 1, key)) {
		const char *a = p + sizeof(key) - 1, *e = strchr(a, ':');
		/* "ip:port: 2" — the node id holds one ':' itself. */
		e = e ? strchr(e + 1, ':') : NULL;
		if (!e)
			break;
		snprintf(have[nhave++], sizeof(have[0]), "%.*s", (int)(e - a), a);
	}
	/* Adds first: removing before adding could leave the cluster without
	 * a majority of the voters that remain. */
	for (size_t i = 0; i < s->nwant; i++)
		if (strcmp(s->want[i], s->self) && !in_list(have, nhave, s->want[i]))
			todo_add(s, "-add", s->want[i]);
	for (size_t i = 0; i < nhave; i++)
		if (!in_list(s->want, s->nwant, have[i]))
			todo_add(s, "-remove", have[i]);
	run_next(s);
}

int pg_raft_sync(const pg_raft_req_t *r, pv_role_cb cb, void *ud, na_err_t *err)
{
	if (r->nmembers > PG_RAFT_MAX)
		return na_err_set(err, 422, "invalid_field", "postgres.members",
				  "at most %d Raft voters", PG_RAFT_MAX);
	rsync_t *s = calloc(1, sizeof(*s));
	if (!s)
		return na_err_errno(err, ENOMEM, "raft sync");
	snprintf(s->ct, sizeof(s->ct), "%s", r->container);
	snprintf(s->self, sizeof(s->self), "%s:%d", r->self_ip, r->port);
	snprintf(s->pass, sizeof(s->pass), "%s", r->password ? r->password : "");
	for (size_t i = 0; i < r->nmembers; i++)
		snprintf(s->want[s->nwant++], sizeof(s->want[0]), "%s:%d", r->members[i], r->port);
	s->cb = cb;
	s->ud = ud;
	return exec_admin(s, "-status", NULL, status_read);
}
