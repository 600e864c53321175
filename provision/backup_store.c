/* The backup records (backup.h): in memory newest first, durable in the
 * state store under "backups/<container>" (one file per backup: O(1) per
 * change), the day's dump count per container under "backupquota", the
 * preset's limits, rotation, the load at start and the metrics.
 *
 * Records survive the container's DELETE (a member recreated under the
 * same name finds its dumps); a backup that was running when the agent
 * stopped is failed at the next start and its partial file removed. */
#include "netagent/events.h"
#include "netagent/log.h"
#include "netagent/metrics.h"
#include "netagent/nsworker.h"
#include "netagent/state.h"
#include "netagent/util.h"
#include "provision/backup.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BK_DEFAULT_KEEP	 15
#define BK_DEFAULT_DAILY 5

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

void bk_file(const char *ct, const char *id, char *buf, size_t n)
{
	snprintf(buf, n, "%s/dumps/%s/%s.sql", na_state_dir(pv.ag->state), ct, id);
}

void bk_today(char out[11])
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 11, "%Y-%m-%d", &tm);
}

static json_t *str_or_null(const char *s)
{
	return s[0] ? json_string(s) : json_null();
}

json_t *bk_json(const bk_t *b)
{
	int done = !strcmp(b->state, "done");
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o}", "id", b->id, "container",
			      b->ct, "type", b->type, "state", b->state, "started", b->started,
			      "finished", str_or_null(b->finished), "size",
			      done ? json_integer((json_int_t)b->size) : json_null(), "error",
			      str_or_null(b->error));
	if (!strcmp(b->type, "dump")) {
		char url[256];
		snprintf(url, sizeof(url), "/v1/containers/%s/backups/%s/file", b->ct, b->id);
		json_object_set_new(o, "file", done ? json_string(url) : json_null());
	} else {
		json_object_set_new(o, "label", str_or_null(b->label));
		json_object_set_new(o, "wal_start", str_or_null(b->wal_start));
		json_object_set_new(o, "wal_stop", str_or_null(b->wal_stop));
		json_object_set_new(o, "from", str_or_null(b->from));
	}
	return o;
}

bk_t *bk_first(void)
{
	return B.list;
}

bk_t *bk_find(const char *ct, const char *id)
{
	for (bk_t *b = B.list; b; b = b->next)
		if (!strcmp(b->ct, ct) && !strcmp(b->id, id))
			return b;
	return NULL;
}

bk_t *bk_new(const char *ct, const char *type, const char *day)
{
	bk_t *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	char stamp[32];
	strftime(stamp, sizeof(stamp), "%Y%m%dt%H%M%Sz", &tm);
	snprintf(b->ct, sizeof(b->ct), "%s", ct);
	/* Ids sort by time: the load rebuilds newest-first from name order. */
	snprintf(b->id, sizeof(b->id), "%s-%s-%llu", type, stamp, ++B.seq % 1000000);
	snprintf(b->type, sizeof(b->type), "%s", type);
	snprintf(b->state, sizeof(b->state), "running");
	snprintf(b->day, sizeof(b->day), "%s", day);
	na_time_rfc3339(b->started, sizeof(b->started));
	b->t0_ms = na_now_ms();
	b->next = B.list;
	B.list = b;
	return b;
}

void bk_forget(bk_t *gone)
{
	for (bk_t **p = &B.list; *p; p = &(*p)->next)
		if (*p == gone) {
			*p = gone->next;
			free(gone);
			return;
		}
}

void bk_publish(const bk_t *b, const char *action)
{
	json_t *o = bk_json(b);
	na_events_publish("backup", action, b->id, o);
	json_decref(o);
}

/* ---- worker jobs: the record, the file ----------------------------------- */

static int w_job(void *arg, na_err_t *err)
{
	bk_wjob_t *j = arg;
	char kind[80];
	kind_of(j->ct, kind, sizeof(kind));
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
	if (j->stat_file) {
		struct stat st;
		if (lstat(j->path, &st) == 0 && S_ISREG(st.st_mode))
			j->size = (unsigned long long)st.st_size;
	}
	if (j->quota && na_state_put(pv.ag->state, "backupquota", j->ct, j->quota, err) < 0)
		return -1;
	if (j->obj && na_state_put(pv.ag->state, kind, j->id, j->obj, err) < 0)
		return -1;
	if (j->del_record && na_state_del(pv.ag->state, kind, j->id, err) < 0)
		return -1;
	return 0;
}

static void w_done(void *arg, int rc, const na_err_t *err)
{
	bk_wjob_t *j = arg;
	if (j->done)
		j->done(j, rc, err);
	json_decref(j->obj);
	json_decref(j->quota);
	free(j);
}

bk_wjob_t *bk_wjob_new(const bk_t *b)
{
	bk_wjob_t *j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	snprintf(j->ct, sizeof(j->ct), "%s", b->ct);
	snprintf(j->id, sizeof(j->id), "%s", b->id);
	bk_file(b->ct, b->id, j->path, sizeof(j->path));
	return j;
}

void bk_wjob_record(bk_wjob_t *j, const bk_t *b)
{
	json_decref(j->obj);
	j->obj = bk_json(b);
	json_object_set_new(j->obj, "day", json_string(b->day));
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

unsigned bk_quota_used(const char *ct, const char *day)
{
	quota_t *q = quota_of(ct, 0);
	return q && !strcmp(q->day, day) ? q->n : 0;
}

void bk_wjob_quota(bk_wjob_t *j, const char *ct, const char *day)
{
	quota_t *q = quota_of(ct, 1);
	if (!q)
		return;
	if (strcmp(q->day, day)) {
		snprintf(q->day, sizeof(q->day), "%s", day);
		q->n = 0;
	}
	q->n++;
	json_decref(j->quota);
	j->quota = json_pack("{s:s, s:i}", "day", q->day, "count", (int)q->n);
}

int bk_wjob_submit(bk_wjob_t *j)
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

void bk_save(const bk_t *b)
{
	bk_wjob_t *j = bk_wjob_new(b);
	if (!j)
		return;
	bk_wjob_record(j, b);
	if (bk_wjob_submit(j) < 0)
		na_warn("cannot queue a backup record", "container=%s id=%s", b->ct, b->id);
}

/* ---- outcome, limits, rotation ----------------------------------------------- */

void bk_finish(bk_t *b, const char *error)
{
	na_time_rfc3339(b->finished, sizeof(b->finished));
	B.last_seconds = (double)(na_now_ms() - b->t0_ms) / 1000.0;
	if (error) {
		snprintf(b->state, sizeof(b->state), "failed");
		if (error != b->error)
			snprintf(b->error, sizeof(b->error), "%s", error);
		B.failed_total++;
		na_warn("backup failed", "container=%s id=%s error=\"%s\"", b->ct, b->id, b->error);
	} else {
		snprintf(b->state, sizeof(b->state), "done");
		B.done_total++;
		na_info("backup done", "container=%s id=%s type=%s label=%s size=%llu seconds=%.2f",
			b->ct, b->id, b->type, b->label, b->size, B.last_seconds);
	}
	bk_save(b);
	bk_publish(b, error ? "failed" : "done");
}

void bk_count_refused(void)
{
	B.refused_total++;
}

void bk_limits(const pv_ct_t *c, long long *keep, long long *per_day)
{
	json_t *bk = json_object_get(json_object_get(c->spec.body, "postgres"), "backups");
	json_t *k = json_object_get(bk, "keep"), *d = json_object_get(bk, "per_day");
	*keep = json_is_integer(k) ? json_integer_value(k) : BK_DEFAULT_KEEP;
	*per_day = json_is_integer(d) ? json_integer_value(d) : BK_DEFAULT_DAILY;
}

static void removed(bk_wjob_t *j, int rc, const na_err_t *err)
{
	if (rc < 0)
		na_warn("cannot remove a backup", "container=%s id=%s error=\"%s\"", j->ct, j->id,
			err->msg);
}

void bk_rotate(const char *ct, long long keep)
{
	long long n = 0;
	for (bk_t *b = B.list, *next; b; b = next) {
		next = b->next;
		if (strcmp(b->ct, ct) || strcmp(b->type, "dump") || strcmp(b->state, "done"))
			continue;
		if (++n <= keep)
			continue;
		bk_wjob_t *j = bk_wjob_new(b);
		if (!j)
			continue;
		j->del_file = j->del_record = 1;
		j->done = removed;
		na_info("backup rotated out", "container=%s id=%s keep=%lld", ct, b->id, keep);
		bk_publish(b, "rotated");
		B.rotated_total++;
		bk_forget(b);
		bk_wjob_submit(j);
	}
}

/* ---- start-up, metrics ----------------------------------------------------- */

/* Order of requests: the start time, then the per-agent sequence that
 * ends the id (two requests in one second). */
static int newer(const bk_t *a, const bk_t *b)
{
	int c = strcmp(a->started, b->started);
	if (c)
		return c > 0;
	const char *sa = strrchr(a->id, '-'), *sb = strrchr(b->id, '-');
	return strtoull(sa ? sa + 1 : "0", NULL, 10) > strtoull(sb ? sb + 1 : "0", NULL, 10);
}

/* The load comes in name order, which is not time order across types. */
static void bk_insert_sorted(bk_t *b)
{
	bk_t **p = &B.list;
	while (*p && !newer(b, *p))
		p = &(*p)->next;
	b->next = *p;
	*p = b;
}

static int load_one(const char *name, json_t *o, void *ud, na_err_t *err)
{
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
	STR(from, "from");
#undef STR
	b->size = (unsigned long long)json_integer_value(json_object_get(o, "size"));
	if (!strcmp(b->state, "running")) {
		/* Its job died with the previous agent (start-up: the load
		 * runs before the loop serves anything). */
		snprintf(b->state, sizeof(b->state), "failed");
		snprintf(b->error, sizeof(b->error), "the agent stopped during the backup");
		na_time_rfc3339(b->finished, sizeof(b->finished));
		char path[600];
		bk_file(b->ct, b->id, path, sizeof(path));
		unlink(path);
		json_t *r = bk_json(b);
		json_object_set_new(r, "day", json_string(b->day));
		char kind[80];
		kind_of(b->ct, kind, sizeof(kind));
		na_err_t e = NA_ERR_INIT;
		if (na_state_put(pv.ag->state, kind, b->id, r, &e) < 0)
			na_warn("cannot fail a stale backup", "id=%s error=\"%s\"", b->id, e.msg);
		json_decref(r);
	}
	bk_insert_sorted(b);
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

static void collect(FILE *out, void *ud)
{
	(void)ud;
	unsigned running = 0;
	for (bk_t *b = B.list; b; b = b->next)
		running += !strcmp(b->state, "running");
	fprintf(out,
		"# HELP netagent_backups_running Backups running now.\n"
		"# TYPE netagent_backups_running gauge\nnetagent_backups_running %u\n"
		"# HELP netagent_backups_total Backups by outcome (refused: per_day quota).\n"
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

int bk_store_init(na_agent_t *ag, na_err_t *err)
{
	if (na_state_list_kinds(ag->state, "backups", load_kind, NULL, err) < 0 ||
	    na_state_load(ag->state, "backupquota", load_quota, NULL, err) < 0)
		return -1;
	na_metrics_add_collector(collect, NULL);
	return 0;
}

void bk_store_fini(void)
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
