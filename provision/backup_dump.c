/* The dump job (backup.h): `pg_dumpall` run by `runc exec` in the member
 * the order names (pv_exec: the member's namespaces, user, cgroup and
 * seccomp profile), over its unix socket. pg_dump of every database in
 * plain SQL with the roles first, so that one `psql -f` restores it into
 * an empty server. runc's stdout goes straight to the file (created by a
 * worker, exclusively, never through a link); the loop thread never reads
 * it, and its size is read on a worker. */
#include "netagent/log.h"
#include "netagent/util.h"
#include "provision/backup.h"

#include <stdio.h>
#include <string.h>

#define DUMP_TIMEOUT_MS (6u * 3600 * 1000)

/* The file's size is known: the record is final, and `keep` applies. */
static void sized(bk_wjob_t *j, int rc, const na_err_t *err)
{
	(void)err;
	bk_t *b = bk_find(j->ct, j->id);
	if (!b)
		return; /* deleted meanwhile */
	if (rc == 0)
		b->size = j->size;
	bk_finish(b, b->error[0] ? b->error : NULL);
	pv_ct_t *c = pv_ct_find(b->ct);
	if (c && !strcmp(b->state, "done")) {
		long long keep, per_day;
		bk_limits(c, &keep, &per_day);
		bk_rotate(b->ct, keep);
	}
}

static void dump_exited(void *ud, int rc, const na_err_t *err, int status, const char *out,
			size_t len)
{
	char *key = ud; /* "<ct>/<id>" */
	char *slash = strchr(key, '/');
	*slash = 0;
	bk_t *b = bk_find(key, slash + 1);
	free(key);
	if (!b)
		return; /* deleted meanwhile */
	int failed = rc < 0 || status != 0;
	if (rc < 0)
		snprintf(b->error, sizeof(b->error), "%.255s", err->msg);
	else if (status != 0) /* pg_dumpall's last words say why */
		snprintf(b->error, sizeof(b->error), "pg_dumpall exited with %d: %.*s", status,
			 (int)(len > 200 ? 200 : len), out + (len > 200 ? len - 200 : 0));
	if (failed && !b->error[0]) /* the record must say failed, and why */
		snprintf(b->error, sizeof(b->error), "pg_dumpall failed (status %d)", status);
	bk_wjob_t *j = bk_wjob_new(b);
	if (!j) {
		bk_finish(b, failed ? b->error : NULL);
		return;
	}
	j->del_file = failed; /* a partial dump restores nothing */
	j->stat_file = !failed;
	j->done = sized;
	if (bk_wjob_submit(j) < 0)
		bk_finish(b, failed ? b->error : NULL);
}

void bk_dump_run(bk_t *b, na_req_t *req)
{
	pv_ct_t *c = pv_ct_find(b->ct);
	json_t *pw =
	    c ? json_object_get(json_object_get(c->spec.body, "postgres"), "superuser_password")
	      : NULL;
	char pgpw[PV_MAX_ARG + 16], path[600];
	snprintf(pgpw, sizeof(pgpw), "PGPASSWORD=%s",
		 json_string_value(pw) ? json_string_value(pw) : "");
	bk_file(b->ct, b->id, path, sizeof(path));
	/* At the lowest CPU and I/O priority (nice 19, idle class; pg_dump
	 * inherits both): a follower shares its host with other clusters'
	 * leaders, and a dump is worth waiting for, their commits are not.
	 * runc 1.1's exec has no field for either, hence the two wrappers from
	 * the host's /usr; lowering one's own priority needs no capability. */
	const char *argv[] = {
	    "nice",	   "--adjustment=19",	      "ionice", "--class=idle", "pg_dumpall",
	    "-h",	   "/var/run/postgresql",     "-U",	"postgres",	"--clean",
	    "--if-exists", "--quote-all-identifiers", NULL};
	const char *env[] = {pgpw, NULL};
	pv_exec_req_t x = {.container = b->ct,
			   .argv = argv,
			   .env = env,
			   .stdout_path = path,
			   .timeout_ms = DUMP_TIMEOUT_MS,
			   .capture_max = 4096};
	size_t kl = strlen(b->ct) + strlen(b->id) + 2;
	char *key = malloc(kl);
	na_err_t e = NA_ERR_INIT;
	if (!key) {
		na_err_set(&e, 503, "unavailable", NULL, "out of memory");
	} else {
		snprintf(key, kl, "%s/%s", b->ct, b->id);
		if (pv_exec(&x, dump_exited, key, &e) == 0) {
			bk_publish(b, "started");
			na_reply_json(req, 202, bk_json(b));
			return;
		}
		free(key);
	}
	/* Refused at once (the container stopped meanwhile): nothing stays. */
	bk_wjob_t *u = bk_wjob_new(b);
	if (u) {
		u->del_record = 1;
		bk_wjob_submit(u);
	}
	bk_forget(b);
	na_reply_err(req, &e);
}
