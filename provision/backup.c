/* Backups of postgres containers (SPEC §4 backups): on-demand dumps as
 * asynchronous jobs in the member the order names (the controller sends
 * it to a follower), their files, and the preset's limits.
 *
 * A backup is a record, durable in the state store under
 * "backups/<container>" (one file per backup: O(1) per change), and for a
 * dump a file <state>/dumps/<container>/<id>.sql. The dump is
 * `pg_dumpall` run by `runc exec` in the member (pv_exec): pg_dump of
 * every database, plain SQL, with the roles first, so that one `psql -f`
 * restores it into an empty server. The job never touches the loop: runc's
 * output goes straight to the file, whose size is read on a worker.
 *
 * Records survive the container's DELETE (a member recreated under the
 * same name finds its dumps); a dump that was running when the agent
 * stopped is failed at the next start and its partial file removed. */
#include "netagent/events.h"
#include "netagent/log.h"
#include "netagent/metrics.h"
#include "netagent/nsworker.h"
#include "netagent/state.h"
#include "netagent/util.h"
#include "netagent/validate.h"
#include "provision/pg_backrest.h"
#include "provision/pv_int.h"
#include "provision/role.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BK_MAX_PER_CT	 512 /* records kept per container, whatever `keep` says */
#define BK_DUMP_TIMEOUT	 (6u * 3600 * 1000)
#define BK_DEFAULT_KEEP	 15
#define BK_DEFAULT_DAILY 5

typedef struct bk {
	char ct[64], id[64], type[8], state[8];
	char started[32], finished[32], error[256];
	char day[11]; /* UTC date the backup was requested: per_day counts these */
	char label[64], wal_start[32], wal_stop[32]; /* pgBackRest's */
	unsigned long long size;
	unsigned long long t0_ms;
	struct bk *next;
} bk_t;

/* Dumps requested per container in the current UTC day: counted apart
 * from the records, which rotation and DELETE remove. */
typedef struct quota {
	char ct[64], day[11];
	unsigned n;
	struct quota *next;
} quota_t;

static struct {
	bk_t *list; /* newest first */
	quota_t *quota;
	unsigned long long seq;
	unsigned long long done_total, failed_total, rotated_total, refused_total;
	double last_seconds;
} B;

static void kind_of(const char *ct, char *buf, size_t n)
{
	snprintf(buf, n, "backups/%s", ct);
}

static void file_of(const char *ct, const char *id, char *buf, size_t n)
{
	snprintf(buf, n, "%s/dumps/%s/%s.sql", na_state_dir(pv.ag->state), ct, id);
}

static json_t *bk_json(const bk_t *b)
{
	char url[256];
	snprintf(url, sizeof(url), "/v1/containers/%s/backups/%s/file", b->ct, b->id);
	int done = !strcmp(b->state, "done");
	int dump = !strcmp(b->type, "dump");
	if (!dump) {
		json_t *o = json_pack(
		    "{s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o}", "id", b->id,
		    "container", b->ct, "type", b->type, "state", b->state, "started", b->started,
		    "finished", b->finished[0] ? json_string(b->finished) : json_null(), "size",
		    done ? json_integer((json_int_t)b->size) : json_null(), "label",
		    b->label[0] ? json_string(b->label) : json_null(), "wal_start",
		    b->wal_start[0] ? json_string(b->wal_start) : json_null(), "wal_stop",
		    b->wal_stop[0] ? json_string(b->wal_stop) : json_null(), "error",
		    b->error[0] ? json_string(b->error) : json_null());
		return o;
	}
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o}", "id", b->id, "container",
			 b->ct, "type", b->type, "state", b->state, "started", b->started,
			 "finished", b->finished[0] ? json_string(b->finished) : json_null(),
			 "size", done ? json_integer((json_int_t)b->size) : json_null(), "file",
			 done ? json_string(url) : json_null(), "error",
			 b->error[0] ? json_string(b->error) : json_null());
}

static bk_t *bk_find(const char *ct, const char *id)
{
	for (bk_t *b = B.list; b; b = b->next)
		if (!strcmp(b->ct, ct) && !strcmp(b->id, id))
			return b;
	return NULL;
}

static void bk_unlink(bk_t *gone)
{
	for (bk_t **p = &B.list; *p; p = &(*p)->next)
		if (*p == gone) {
			*p = gone->next;
			return;
		}
}

static void publish(const bk_t *b, const char *action)
{
	json_t *o = bk_json(b);
	na_events_publish("backup", action, b->id, o);
	json_decref(o);
}

/* ---- worker jobs: the record, the file ----------------------------------- */

struct wjob {
	char ct[64], id[64], kind[80], path[600];
	json_t *obj;	/* record to write, or NULL */
	json_t *quota;	/* the container's day count to write, or NULL */
	int del_record; /* remove the record */
	int del_file;	/* remove the dump file */
	int mkdirs;	/* make <state>/dumps/<ct> */
	unsigned long long size;
	void (*done)(struct wjob *j, int rc, const na_err_t *err);
	na_req_t *req;
};

static int w_job(void *arg, na_err_t *err)
{
	struct wjob *j = arg;
	if (j->mkdirs) {
		char d[600];
		snprintf(d, sizeof(d), "%s/dumps", na_state_dir(pv.ag->state));
		if (mkdir(d, 0700) < 0 && errno != EEXIST)
			return na_err_errno(err, errno, "mkdir %s", d);
		snprintf(d, sizeof(d), "%s/dumps/%s", na_state_dir(pv.ag->state), j->ct);
		if (mkdir(d, 0700) < 0 && errno != EEXIST)
			return na_err_errno(err, errno, "mkdir %s", d);
	}
	if (j->del_file && unlink(j->path) < 0 && errno != ENOENT)
		return na_err_errno(err, errno, "unlink %s", j->path);
	if (!j->del_file && j->path[0] && !j->mkdirs) {
		struct stat st;
		if (lstat(j->path, &st) == 0 && S_ISREG(st.st_mode))
			j->size = (unsigned long long)st.st_size;
	}
	if (j->quota && na_state_put(pv.ag->state, "backupquota", j->ct, j->quota, err) < 0)
		return -1;
	if (j->obj && na_state_put(pv.ag->state, j->kind, j->id, j->obj, err) < 0)
		return -1;
	if (j->del_record && na_state_del(pv.ag->state, j->kind, j->id, err) < 0)
		return -1;
	return 0;
}

static void w_done(void *arg, int rc, const na_err_t *err)
{
	struct wjob *j = arg;
	if (j->done)
		j->done(j, rc, err);
	json_decref(j->obj);
	json_decref(j->quota);
	free(j);
}

static struct wjob *wjob_new(const bk_t *b)
{
	struct wjob *j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	snprintf(j->ct, sizeof(j->ct), "%s", b->ct);
	snprintf(j->id, sizeof(j->id), "%s", b->id);
	kind_of(b->ct, j->kind, sizeof(j->kind));
	file_of(b->ct, b->id, j->path, sizeof(j->path));
	return j;
}

static int wjob_submit(struct wjob *j)
{
	char key[80];
	snprintf(key, sizeof(key), "bk/%s", j->ct);
	if (na_ns_submit(key, NULL, w_job, w_done, j) < 0) {
		json_decref(j->obj);
		json_decref(j->quota);
		free(j);
		return -1;
	}
	return 0;
}

/* Writes b's record (and nothing else), fire and forget: a failure is
 * logged; the record on disk then says what it said before. */
static void bk_save(const bk_t *b)
{
	struct wjob *j = wjob_new(b);
	if (!j)
		return;
	j->path[0] = 0;
	j->obj = bk_json(b);
	json_object_set_new(j->obj, "day", json_string(b->day));
	if (wjob_submit(j) < 0)
		na_warn("cannot queue a backup record", "container=%s id=%s", b->ct, b->id);
}

/* ---- limits ---------------------------------------------------------------- */

static void limits(const pv_ct_t *c, long long *keep, long long *per_day)
{
	json_t *bk = json_object_get(json_object_get(c->spec.body, "postgres"), "backups");
	json_t *k = json_object_get(bk, "keep"), *d = json_object_get(bk, "per_day");
	*keep = json_is_integer(k) ? json_integer_value(k) : BK_DEFAULT_KEEP;
	*per_day = json_is_integer(d) ? json_integer_value(d) : BK_DEFAULT_DAILY;
}

static quota_t *quota_of(const char *ct, int make)
{
	for (quota_t *q = B.quota; q; q = q->next)
		if (!strcmp(q->ct, ct))
			return q;
	quota_t *q = make ? calloc(1, sizeof(*q)) : NULL;
	if (q) {
		snprintf(q->ct, sizeof(q->ct), "%s", ct);
		q->next = B.quota;
		B.quota = q;
	}
	return q;
}

static void today(char out[11])
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 11, "%Y-%m-%d", &tm);
}

static void removed(struct wjob *j, int rc, const na_err_t *err)
{
	if (rc < 0)
		na_warn("cannot remove a backup", "container=%s id=%s error=\"%s\"", j->ct, j->id,
			err->msg);
}

/* The preset's `keep`: the oldest finished dumps beyond it go. */
static void rotate(const char *ct, long long keep)
{
	long long n = 0;
	for (bk_t *b = B.list, *next; b; b = next) {
		next = b->next;
		if (strcmp(b->ct, ct) || strcmp(b->type, "dump") || strcmp(b->state, "done"))
			continue;
		if (++n <= keep)
			continue;
		struct wjob *j = wjob_new(b);
		if (!j)
			continue;
		j->del_file = j->del_record = 1;
		j->done = removed;
		na_info("backup rotated out", "container=%s id=%s keep=%lld", ct, b->id, keep);
		publish(b, "rotated");
		B.rotated_total++;
		bk_unlink(b);
		free(b);
		wjob_submit(j);
	}
}

/* ---- the dump job ------------------------------------------------------------ */

static void sized(struct wjob *j, int rc, const na_err_t *err)
{
	(void)err;
	bk_t *b = bk_find(j->ct, j->id);
	if (!b)
		return;
	if (rc == 0)
		b->size = j->size;
	bk_save(b);
	publish(b, !strcmp(b->state, "done") ? "done" : "failed");
	pv_ct_t *c = pv_ct_find(b->ct);
	if (c && !strcmp(b->state, "done")) {
		long long keep, per_day;
		limits(c, &keep, &per_day);
		rotate(b->ct, keep);
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
	na_time_rfc3339(b->finished, sizeof(b->finished));
	B.last_seconds = (double)(na_now_ms() - b->t0_ms) / 1000.0;
	if (rc < 0 || status != 0) {
		snprintf(b->state, sizeof(b->state), "failed");
		if (rc < 0)
			snprintf(b->error, sizeof(b->error), "%.255s", err->msg);
		else
			snprintf(b->error, sizeof(b->error), "pg_dumpall exited with %d: %.*s",
				 status, (int)(len > 200 ? 200 : len),
				 out + (len > 200 ? len - 200 : 0));
		B.failed_total++;
		na_warn("backup failed", "container=%s id=%s error=\"%s\"", b->ct, b->id, b->error);
	} else {
		snprintf(b->state, sizeof(b->state), "done");
		B.done_total++;
		na_info("backup done", "container=%s id=%s seconds=%.2f", b->ct, b->id,
			B.last_seconds);
	}
	struct wjob *j = wjob_new(b);
	if (!j) {
		bk_save(b);
		return;
	}
	j->del_file = rc < 0 || status != 0; /* a partial dump restores nothing */
	j->done = sized;
	if (wjob_submit(j) < 0)
		bk_save(b);
}

static void dump_start(struct wjob *j, int rc, const na_err_t *err)
{
	na_req_t *req = j->req;
	bk_t *b = bk_find(j->ct, j->id);
	if (!b) {
		na_err_t e = NA_ERR_INIT;
		na_err_set(&e, 503, "unavailable", NULL, "backup %s vanished", j->id);
		na_reply_err(req, &e);
		return;
	}
	if (rc < 0) {
		bk_unlink(b);
		free(b);
		na_reply_err(req, err);
		return;
	}
	pv_ct_t *c = pv_ct_find(b->ct);
	json_t *pw =
	    c ? json_object_get(json_object_get(c->spec.body, "postgres"), "superuser_password")
	      : NULL;
	char pgpw[PV_MAX_ARG + 16];
	snprintf(pgpw, sizeof(pgpw), "PGPASSWORD=%s",
		 json_string_value(pw) ? json_string_value(pw) : "");
	const char *argv[] = {
	    "pg_dumpall", "-h",		 "/var/run/postgresql",	    "-U", "postgres",
	    "--clean",	  "--if-exists", "--quote-all-identifiers", NULL};
	const char *env[] = {pgpw, NULL};
	pv_exec_req_t x = {.container = b->ct,
			   .argv = argv,
			   .env = env,
			   .stdout_path = j->path,
			   .timeout_ms = BK_DUMP_TIMEOUT,
			   .capture_max = 4096};
	size_t kl = strlen(b->ct) + strlen(b->id) + 2;
	char *key = malloc(kl);
	na_err_t e = NA_ERR_INIT;
	if (!key) {
		na_err_set(&e, 503, "unavailable", NULL, "out of memory");
	} else {
		snprintf(key, kl, "%s/%s", b->ct, b->id);
		if (pv_exec(&x, dump_exited, key, &e) == 0) {
			publish(b, "started");
			na_reply_json(req, 202, bk_json(b));
			return;
		}
		free(key);
	}
	/* Refused at once (the container stopped meanwhile): nothing stays. */
	struct wjob *u = wjob_new(b);
	if (u) {
		u->del_record = 1;
		wjob_submit(u);
	}
	bk_unlink(b);
	free(b);
	na_reply_err(req, &e);
}

/* ---- pgBackRest backups: stanza-create, backup, info ------------------------ */

enum { PB_STANZA, PB_BACKUP, PB_INFO, PB_DONE };

typedef struct pbjob {
	char ct[64], id[64], stanza[64], type[8];
	int step;
} pbjob_t;

static void pb_step(pbjob_t *p);

/* The newest backup of `pgbackrest info --output=json`: its label, WAL
 * range and size, which GET shows beside the record. */
static void pb_info(bk_t *b, const char *out, size_t len)
{
	json_t *root = json_loadb(out, len, 0, NULL);
	json_t *list = json_object_get(json_array_get(root, 0), "backup");
	json_t *last = json_array_get(list, json_array_size(list) ? json_array_size(list) - 1 : 0);
	const char *s;
	if ((s = json_string_value(json_object_get(last, "label"))))
		snprintf(b->label, sizeof(b->label), "%s", s);
	json_t *arch = json_object_get(last, "archive");
	if ((s = json_string_value(json_object_get(arch, "start"))))
		snprintf(b->wal_start, sizeof(b->wal_start), "%s", s);
	if ((s = json_string_value(json_object_get(arch, "stop"))))
		snprintf(b->wal_stop, sizeof(b->wal_stop), "%s", s);
	json_t *repo = json_object_get(json_object_get(last, "info"), "repository");
	b->size = (unsigned long long)json_integer_value(json_object_get(repo, "delta"));
	json_decref(root);
}

static void pb_exited(void *ud, int rc, const na_err_t *err, int status, const char *out,
		      size_t len)
{
	pbjob_t *p = ud;
	bk_t *b = bk_find(p->ct, p->id);
	if (!b) {
		free(p);
		return;
	}
	static const char *const what[] = {"stanza-create", "backup", "info"};
	if (rc < 0 || status != 0) {
		snprintf(b->state, sizeof(b->state), "failed");
		if (rc < 0)
			snprintf(b->error, sizeof(b->error), "%.255s", err->msg);
		else /* pgBackRest says why on its last lines ("unable to find primary") */
			snprintf(b->error, sizeof(b->error), "pgbackrest %s exited with %d: %.*s",
				 what[p->step], status, (int)(len > 180 ? 180 : len),
				 out + (len > 180 ? len - 180 : 0));
		na_time_rfc3339(b->finished, sizeof(b->finished));
		B.failed_total++;
		na_warn("backup failed", "container=%s id=%s error=\"%s\"", b->ct, b->id, b->error);
		bk_save(b);
		publish(b, "failed");
		free(p);
		return;
	}
	if (p->step == PB_INFO) {
		pb_info(b, out, len);
		snprintf(b->state, sizeof(b->state), "done");
		na_time_rfc3339(b->finished, sizeof(b->finished));
		B.last_seconds = (double)(na_now_ms() - b->t0_ms) / 1000.0;
		B.done_total++;
		na_info("backup done", "container=%s id=%s label=%s seconds=%.2f", b->ct, b->id,
			b->label, B.last_seconds);
		bk_save(b);
		publish(b, "done");
		free(p);
		return;
	}
	p->step++;
	pb_step(p);
}

static void pb_step(pbjob_t *p)
{
	static const char *const cmd[] = {"stanza-create", "backup", "info"};
	const char *argv[10];
	char buf[600], type[16];
	snprintf(type, sizeof(type), "%s", p->type);
	pgbr_argv(p->stanza, cmd[p->step], p->step == PB_BACKUP ? type : NULL, argv, buf,
		  sizeof(buf));
	if (p->step == PB_INFO) {
		/* argv ends with the command: add the output format after it. */
		size_t k = 0;
		while (argv[k])
			k++;
		argv[k++] = "--output=json";
		argv[k] = NULL;
	}
	pv_exec_req_t x = {.container = p->ct,
			   .argv = argv,
			   .timeout_ms = BK_DUMP_TIMEOUT,
			   .capture_max = 256 * 1024};
	na_err_t e = NA_ERR_INIT;
	if (pv_exec(&x, pb_exited, p, &e) < 0)
		pb_exited(p, -1, &e, 0, "", 0);
}

static void pitr_start(struct wjob *j, int rc, const na_err_t *err)
{
	na_req_t *req = j->req;
	bk_t *b = bk_find(j->ct, j->id);
	if (!b || rc < 0) {
		if (b) {
			bk_unlink(b);
			free(b);
		}
		na_err_t e = NA_ERR_INIT;
		if (!err)
			na_err_set(&e, 503, "unavailable", NULL, "backup %s vanished", j->id);
		na_reply_err(req, err ? err : &e);
		return;
	}
	pbjob_t *p = calloc(1, sizeof(*p));
	if (!p) {
		na_err_t e = NA_ERR_INIT;
		na_err_errno(&e, ENOMEM, "backup");
		bk_unlink(b);
		free(b);
		na_reply_err(req, &e);
		return;
	}
	snprintf(p->ct, sizeof(p->ct), "%s", b->ct);
	snprintf(p->id, sizeof(p->id), "%s", b->id);
	snprintf(p->type, sizeof(p->type), "%s", b->type);
	pv_ct_t *c = pv_ct_find(b->ct);
	const char *cl = c ? json_string_value(json_object_get(
				 json_object_get(c->spec.body, "postgres"), "cluster"))
			   : NULL;
	snprintf(p->stanza, sizeof(p->stanza), "%s", cl ? cl : "");
	publish(b, "started");
	na_reply_json(req, 202, bk_json(b));
	pb_step(p);
}

/* ---- routes ------------------------------------------------------------------ */

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

static void h_post(na_req_t *req, void *ud)
{
	(void)ud;
	na_err_t err = NA_ERR_INIT;
	static const na_field_t f[] = {{"type", NA_F_STRING, 1, 0, 0}};
	cleanup_json json_t *body = NULL;
	pv_ct_t *c = pg_ct(req, &err);
	if (!c)
		goto fail;
	body = na_body_parse(req->body, req->body_len, &err);
	if (!body || na_fields_check(body, f, NA_ARRAY_SIZE(f), "", &err) < 0)
		goto fail;
	const char *type = json_string_value(json_object_get(body, "type"));
	if (!strcmp(type, "full") || !strcmp(type, "diff") || !strcmp(type, "incr")) {
		json_t *pitr = json_object_get(json_object_get(c->spec.body, "postgres"), "pitr");
		if (!pitr) {
			na_err_set(&err, 422, "invalid_field", "type",
				   "a %s backup needs the preset's pitr section (pgBackRest "
				   "repository); container %s has none",
				   type, c->name);
			goto fail;
		}
	} else if (strcmp(type, "dump")) {
		na_err_set(&err, 422, "invalid_field", "type",
			   "type must be one of dump, full, diff, incr");
		goto fail;
	}
	if (c->state != PV_S_RUNNING) {
		na_err_set(&err, 409, "not_running", NULL,
			   "container %s is %s: a dump needs the member running", c->name,
			   pv_state_names[c->state]);
		goto fail;
	}
	unsigned n = 0, today_n = 0;
	char day[11];
	today(day);
	long long keep, per_day;
	limits(c, &keep, &per_day);
	for (bk_t *b = B.list; b; b = b->next) {
		if (strcmp(b->ct, c->name))
			continue;
		n++;
		if (!strcmp(b->state, "running")) {
			na_err_set(&err, 409, "busy", NULL,
				   "backup %s of container %s is still running", b->id, c->name);
			goto fail;
		}
	}
	int dump = !strcmp(type, "dump");
	quota_t *q = quota_of(c->name, 0);
	today_n = q && !strcmp(q->day, day) ? q->n : 0;
	if (dump && today_n >= per_day) {
		B.refused_total++;
		na_err_set(
		    &err, 429, "rate_limited", NULL,
		    "container %s already had %u dumps today (UTC %s); the plan allows %lld a "
		    "day",
		    c->name, today_n, day, per_day);
		goto fail;
	}
	if (n >= BK_MAX_PER_CT) {
		na_err_set(&err, 409, "limit_reached", NULL,
			   "container %s has %u backup records; delete some first", c->name, n);
		goto fail;
	}
	bk_t *b = calloc(1, sizeof(*b));
	if (!b) {
		na_err_errno(&err, ENOMEM, "backup");
		goto fail;
	}
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	char stamp[32];
	strftime(stamp, sizeof(stamp), "%Y%m%dt%H%M%Sz", &tm);
	snprintf(b->ct, sizeof(b->ct), "%s", c->name);
	snprintf(b->id, sizeof(b->id), "%s-%s-%llu", type, stamp, ++B.seq % 1000000);
	snprintf(b->type, sizeof(b->type), "%s", type);
	snprintf(b->state, sizeof(b->state), "running");
	snprintf(b->day, sizeof(b->day), "%s", day);
	na_time_rfc3339(b->started, sizeof(b->started));
	b->t0_ms = na_now_ms();
	b->next = B.list;
	B.list = b;
	/* Durable before the job starts: a crash mid-dump leaves a record the
	 * next start fails, not a file nobody knows. */
	struct wjob *j = wjob_new(b);
	if (!j) {
		bk_unlink(b);
		free(b);
		na_err_errno(&err, ENOMEM, "backup");
		goto fail;
	}
	j->mkdirs = dump;
	if (dump && (q = quota_of(c->name, 1))) {
		if (strcmp(q->day, day)) {
			snprintf(q->day, sizeof(q->day), "%s", day);
			q->n = 0;
		}
		q->n++;
		j->quota = json_pack("{s:s, s:i}", "day", q->day, "count", (int)q->n);
	}
	j->obj = bk_json(b);
	json_object_set_new(j->obj, "day", json_string(b->day));
	j->req = req;
	j->done = dump ? dump_start : pitr_start;
	if (wjob_submit(j) < 0) {
		bk_unlink(b);
		free(b);
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
	for (bk_t *b = B.list; b; b = b->next)
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

static void deleted(struct wjob *j, int rc, const na_err_t *err)
{
	if (rc < 0) {
		na_reply_err(j->req, err);
		return;
	}
	bk_t *b = bk_find(j->ct, j->id);
	if (b) {
		publish(b, "deleted");
		bk_unlink(b);
		free(b);
	}
	na_reply_empty(j->req, 204);
}

static void h_delete(na_req_t *req, void *ud)
{
	(void)ud;
	na_err_t err = NA_ERR_INIT;
	bk_t *b = req_bk(req, &err);
	if (b && !strcmp(b->state, "running"))
		na_err_set(&err, 409, "busy", NULL, "backup %s is running", b->id);
	struct wjob *j = b && !err.code[0] ? wjob_new(b) : NULL;
	if (!j) {
		if (!err.code[0])
			na_err_set(&err, 503, "unavailable", NULL, "out of memory");
		na_reply_err(req, &err);
		return;
	}
	j->del_file = j->del_record = 1;
	j->req = req;
	j->done = deleted;
	if (wjob_submit(j) < 0) {
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
	if (b && strcmp(b->state, "done"))
		na_err_set(&err, 409, "not_ready", NULL, "backup %s is %s: no file", b->id,
			   b->state);
	struct fjob *j = b && !err.code[0] ? calloc(1, sizeof(*j)) : NULL;
	if (!j) {
		if (!err.code[0])
			na_err_set(&err, 503, "unavailable", NULL, "out of memory");
		na_reply_err(req, &err);
		return;
	}
	file_of(b->ct, b->id, j->path, sizeof(j->path));
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

/* ---- start-up, metrics ----------------------------------------------------- */

static int load_one(const char *name, json_t *o, void *ud, na_err_t *err)
{
	(void)err;
	const char *ct = ud;
	bk_t *b = calloc(1, sizeof(*b));
	if (!b)
		return na_err_errno(err, ENOMEM, "backup");
	const char *s;
	snprintf(b->ct, sizeof(b->ct), "%s", ct);
	snprintf(b->id, sizeof(b->id), "%s", name);
#define STR(f, k)                                                                                  \
	s = json_string_value(json_object_get(o, k));                                              \
	snprintf(b->f, sizeof(b->f), "%s", s ? s : "")
	STR(type, "type");
	STR(state, "state");
	STR(started, "started");
	STR(finished, "finished");
	STR(error, "error");
	STR(day, "day");
	STR(label, "label");
	STR(wal_start, "wal_start");
	STR(wal_stop, "wal_stop");
#undef STR
	b->size = (unsigned long long)json_integer_value(json_object_get(o, "size"));
	if (!strcmp(b->state, "running")) {
		/* Its job died with the previous agent. */
		snprintf(b->state, sizeof(b->state), "failed");
		snprintf(b->error, sizeof(b->error), "the agent stopped during the backup");
		char path[600];
		file_of(b->ct, b->id, path, sizeof(path));
		unlink(path);
		json_t *r = bk_json(b);
		json_object_set_new(r, "day", json_string(b->day));
		char kind[80];
		kind_of(b->ct, kind, sizeof(kind));
		if (na_state_put(pv.ag->state, kind, b->id, r, err) < 0)
			na_warn("cannot fail a stale backup", "id=%s", b->id);
		json_decref(r);
	}
	/* Newest first: ids sort by time, and the load comes in name order. */
	b->next = B.list;
	B.list = b;
	return 0;
}

static int load_kind(const char *ct, json_t *o, void *ud, na_err_t *err)
{
	(void)o;
	(void)ud;
	char kind[80];
	kind_of(ct, kind, sizeof(kind));
	return na_state_load(pv.ag->state, kind, load_one, (void *)ct, err);
}

static void collect(FILE *out, void *ud)
{
	(void)ud;
	unsigned running = 0;
	for (bk_t *b = B.list; b; b = b->next)
		running += !strcmp(b->state, "running");
	fprintf(out,
		"# HELP netagent_backups_running Backups running now.\n"
		"# TYPE netagent_backups_running gauge\nnetagent_backups_running %u\n"
		"# HELP netagent_backups_total Backups finished, by result.\n"
		"# TYPE netagent_backups_total counter\n"
		"netagent_backups_total{result=\"done\"} %llu\n"
		"netagent_backups_total{result=\"failed\"} %llu\n"
		"netagent_backups_total{result=\"rotated\"} %llu\n"
		"netagent_backups_total{result=\"refused\"} %llu\n"
		"# HELP netagent_backup_last_seconds Duration of the last finished backup.\n"
		"# TYPE netagent_backup_last_seconds gauge\nnetagent_backup_last_seconds %.3f\n",
		running, B.done_total, B.failed_total, B.rotated_total, B.refused_total,
		B.last_seconds);
}

static int load_quota(const char *ct, json_t *o, void *ud, na_err_t *err)
{
	(void)ud;
	quota_t *q = quota_of(ct, 1);
	if (!q)
		return na_err_errno(err, ENOMEM, "backup quota");
	const char *d = json_string_value(json_object_get(o, "day"));
	snprintf(q->day, sizeof(q->day), "%s", d ? d : "");
	q->n = (unsigned)json_integer_value(json_object_get(o, "count"));
	return 0;
}

int pv_backups_init(na_agent_t *ag, na_err_t *err)
{
	if (na_state_list_kinds(ag->state, "backups", load_kind, NULL, err) < 0 ||
	    na_state_load(ag->state, "backupquota", load_quota, NULL, err) < 0)
		return -1;
	if (na_api_register(ag->api, routes, NA_ARRAY_SIZE(routes), err) < 0)
		return -1;
	na_metrics_add_collector(collect, NULL);
	return 0;
}

void pv_backups_fini(void)
{
	while (B.quota) {
		quota_t *q = B.quota;
		B.quota = q->next;
		free(q);
	}
	while (B.list) {
		bk_t *b = B.list;
		B.list = b->next;
		free(b);
	}
}
