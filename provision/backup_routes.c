/* The backup routes (SPEC §4, docs/backups.md): POST starts a job once its
 * record is durable, GET lists and shows records, DELETE removes one, and
 * …/file streams a dump from libuv's threadpool at the client's pace
 * (na_reply_file). Every refusal comes before anything is made: a refused
 * request leaves no record, no file and no quota used. */
#include "netagent/log.h"
#include "netagent/nsworker.h"
#include "netagent/util.h"
#include "netagent/validate.h"
#include "provision/backup.h"
#include "provision/role.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BK_MAX_PER_CT 512 /* records kept per container, whatever `keep` says */

static pv_ct_t *pg_ct(na_req_t *req, na_err_t *err)
{
	const char *name = req->params[0];
	if (na_name_check(name, "name", err) < 0)
		return NULL;
	pv_ct_t *c = pv_ct_find(name);
	if (!c) {
		na_err_set(err, 404, "not_found", NULL, "container %s not found", name);
		return NULL;
	}
	if (strcmp(c->spec.role->name, "postgres")) {
		na_err_set(err, 409, "wrong_role", "role",
			   "container %s has role %s; backups are for role postgres", name,
			   c->spec.role->name);
		return NULL;
	}
	return c;
}

/* Everything that can refuse the request, in the order a caller fixes
 * them: the body, the preset, the member's state, the running job, the
 * quota. 0 when a backup of this type may start now. */
static int admit(pv_ct_t *c, const char *type, const char *day, na_err_t *err)
{
	int dump = !strcmp(type, "dump");
	if (!dump && strcmp(type, "full") && strcmp(type, "diff") && strcmp(type, "incr"))
		return na_err_set(err, 422, "invalid_field", "type",
				  "type must be one of dump, full, diff, incr");
	if (!dump && !json_object_get(json_object_get(c->spec.body, "postgres"), "pitr"))
		return na_err_set(err, 422, "invalid_field", "type",
				  "a %s backup needs the preset's pitr section (pgBackRest "
				  "repository); container %s has none",
				  type, c->name);
	if (c->state != PV_S_RUNNING)
		return na_err_set(err, 409, "not_running", NULL,
				  "container %s is %s: a backup needs the member running", c->name,
				  pv_state_names[c->state]);
	unsigned n = 0;
	for (bk_t *b = bk_first(); b; b = b->next) {
		if (strcmp(b->ct, c->name))
			continue;
		n++;
		if (!strcmp(b->state, "running"))
			return na_err_set(err, 409, "busy", NULL,
					  "backup %s of container %s is still running", b->id,
					  c->name);
	}
	if (!dump && bk_pgbr_check(c, err) < 0)
		return -1;
	long long keep, per_day;
	bk_limits(c, &keep, &per_day);
	unsigned used = bk_quota_used(c->name, day);
	if (dump && used >= per_day) {
		bk_count_refused();
		return na_err_set(err, 429, "rate_limited", NULL,
				  "container %s already had %u dumps today (UTC %s) and its plan "
				  "allows %lld a day (backups.per_day); the next one can be "
				  "requested after midnight UTC",
				  c->name, used, day, per_day);
	}
	if (n >= BK_MAX_PER_CT)
		return na_err_set(err, 409, "limit_reached", NULL,
				  "container %s has %u backup records; delete some first", c->name,
				  n);
	return 0;
}

/* The record is on disk (or not): start the job, which answers. */
static void created(bk_wjob_t *j, int rc, const na_err_t *err)
{
	bk_t *b = bk_find(j->ct, j->id);
	if (!b || rc < 0) {
		na_err_t e = NA_ERR_INIT;
		if (!err)
			na_err_set(&e, 503, "unavailable", NULL, "backup %s vanished", j->id);
		if (b)
			bk_forget(b);
		na_reply_err(j->req, err ? err : &e);
		return;
	}
	if (!strcmp(b->type, "dump"))
		bk_dump_run(b, j->req);
	else
		bk_pgbr_run(b, j->req);
}

static void h_post(na_req_t *req, void *ud)
{
	(void)ud;
	na_err_t err = NA_ERR_INIT;
	static const na_field_t f[] = {{"type", NA_F_STRING, 1, 0, 0}};
	cleanup_json json_t *body = NULL;
	char day[11];
	pv_ct_t *c = pg_ct(req, &err);
	if (!c)
		goto fail;
	body = na_body_parse(req->body, req->body_len, &err);
	if (!body || na_fields_check(body, f, NA_ARRAY_SIZE(f), "", &err) < 0)
		goto fail;
	const char *type = json_string_value(json_object_get(body, "type"));
	bk_today(day);
	if (admit(c, type, day, &err) < 0)
		goto fail;
	bk_t *b = bk_new(c->name, type, day);
	bk_wjob_t *j = b ? bk_wjob_new(b) : NULL;
	if (!j) {
		if (b)
			bk_forget(b);
		na_err_errno(&err, ENOMEM, "backup");
		goto fail;
	}
	/* Durable before the job starts: a crash mid-dump leaves a record the
	 * next start fails, not a file nobody knows. */
	int dump = !strcmp(type, "dump");
	j->mkdirs = dump;
	if (dump)
		bk_wjob_quota(j, c->name, day);
	bk_wjob_record(j, b);
	j->req = req;
	j->done = created;
	if (bk_wjob_submit(j) < 0) {
		bk_forget(b);
		na_err_set(&err, 503, "unavailable", NULL, "cannot queue the backup");
		goto fail;
	}
	return;
fail:
	na_reply_err(req, &err);
}

static void h_list(na_req_t *req, void *ud)
{
	(void)ud;
	na_err_t err = NA_ERR_INIT;
	pv_ct_t *c = pg_ct(req, &err);
	if (!c) {
		na_reply_err(req, &err);
		return;
	}
	json_t *items = json_array();
	for (bk_t *b = bk_first(); b; b = b->next)
		if (!strcmp(b->ct, c->name))
			json_array_append_new(items, bk_json(b));
	na_reply_json(req, 200, json_pack("{s:o}", "items", items));
}

static bk_t *req_bk(na_req_t *req, na_err_t *err)
{
	pv_ct_t *c = pg_ct(req, err);
	if (!c || na_name_check(req->params[1], "id", err) < 0)
		return NULL;
	bk_t *b = bk_find(c->name, req->params[1]);
	if (!b)
		na_err_set(err, 404, "not_found", NULL, "backup %s of container %s not found",
			   req->params[1], c->name);
	return b;
}

static void h_get(na_req_t *req, void *ud)
{
	(void)ud;
	na_err_t err = NA_ERR_INIT;
	bk_t *b = req_bk(req, &err);
	if (b)
		na_reply_json(req, 200, bk_json(b));
	else
		na_reply_err(req, &err);
}

static void deleted(bk_wjob_t *j, int rc, const na_err_t *err)
{
	if (rc < 0) {
		na_reply_err(j->req, err);
		return;
	}
	bk_t *b = bk_find(j->ct, j->id);
	if (b) {
		bk_publish(b, "deleted");
		bk_forget(b);
	}
	na_reply_empty(j->req, 204);
}

/* A dump goes with its file; a pgBackRest record goes alone (the
 * repository keeps its backups until retention expires them). */
static void h_delete(na_req_t *req, void *ud)
{
	(void)ud;
	na_err_t err = NA_ERR_INIT;
	bk_t *b = req_bk(req, &err);
	if (b && !strcmp(b->state, "running"))
		na_err_set(&err, 409, "busy", NULL, "backup %s is running", b->id);
	bk_wjob_t *j = b && !err.code[0] ? bk_wjob_new(b) : NULL;
	if (!j) {
		if (!err.code[0])
			na_err_set(&err, 503, "unavailable", NULL, "out of memory");
		na_reply_err(req, &err);
		return;
	}
	j->del_file = !strcmp(b->type, "dump");
	j->del_record = 1;
	j->req = req;
	j->done = deleted;
	if (bk_wjob_submit(j) < 0) {
		na_err_set(&err, 503, "unavailable", NULL, "cannot queue the removal");
		na_reply_err(req, &err);
	}
}

struct fjob {
	char path[600];
	int fd;
	unsigned long long size;
	na_req_t *req;
};

/* Never follows a link, never blocks on a FIFO or device: the dump dir is
 * ours, but a file in it is still checked before its bytes go out. */
static int w_open(void *arg, na_err_t *err)
{
	struct fjob *j = arg;
	j->fd = open(j->path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (j->fd < 0)
		return errno == ENOENT ? na_err_set(err, 404, "not_found", NULL,
						    "the file of this backup is gone")
				       : na_err_errno(err, errno, "open %s", j->path);
	struct stat st;
	if (fstat(j->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(j->fd);
		j->fd = -1;
		return na_err_set(err, 500, "internal_error", NULL,
				  "the file of this backup is not a regular file");
	}
	j->size = (unsigned long long)st.st_size;
	return 0;
}

static void opened(void *arg, int rc, const na_err_t *err)
{
	struct fjob *j = arg;
	if (rc < 0)
		na_reply_err(j->req, err);
	else
		na_reply_file(j->req, 200, "application/sql", j->fd, j->size);
	free(j);
}

static void h_file(na_req_t *req, void *ud)
{
	(void)ud;
	na_err_t err = NA_ERR_INIT;
	bk_t *b = req_bk(req, &err);
	if (b && strcmp(b->type, "dump"))
		na_err_set(&err, 404, "not_found", NULL,
			   "backup %s is a pgBackRest backup: it lives in the repository, "
			   "there is no file to download",
			   b->id);
	else if (b && strcmp(b->state, "done"))
		na_err_set(&err, 409, "not_ready", NULL, "backup %s is %s: no file", b->id,
			   b->state);
	struct fjob *j = b && !err.code[0] ? calloc(1, sizeof(*j)) : NULL;
	if (!j) {
		if (!err.code[0])
			na_err_set(&err, 503, "unavailable", NULL, "out of memory");
		na_reply_err(req, &err);
		return;
	}
	bk_file(b->ct, b->id, j->path, sizeof(j->path));
	j->fd = -1;
	j->req = req;
	char key[80];
	snprintf(key, sizeof(key), "bk/%s", b->ct);
	if (na_ns_submit(key, NULL, w_open, opened, j) < 0) {
		free(j);
		na_err_set(&err, 503, "unavailable", NULL, "cannot queue the read");
		na_reply_err(req, &err);
	}
}

static const na_route_t routes[] = {
    {"POST", "/v1/containers/{name}/backups", h_post, NULL},
    {"GET", "/v1/containers/{name}/backups", h_list, NULL},
    {"GET", "/v1/containers/{name}/backups/{id}", h_get, NULL},
    {"DELETE", "/v1/containers/{name}/backups/{id}", h_delete, NULL},
    {"GET", "/v1/containers/{name}/backups/{id}/file", h_file, NULL},
};

int pv_backups_init(na_agent_t *ag, na_err_t *err)
{
	if (bk_store_init(ag, err) < 0)
		return -1;
	return na_api_register(ag->api, routes, NA_ARRAY_SIZE(routes), err);
}

void pv_backups_fini(void)
{
	bk_server_fini();
	bk_store_fini();
}
