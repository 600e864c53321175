/* The pgBackRest job (backup.h): `pgbackrest stanza-create` (idempotent),
 * `pgbackrest backup --type=full|diff|incr`, then `pgbackrest info
 * --output=json`, each run by `runc exec` in the member the order names,
 * as postgres, with the member's rendered config (pg_backrest.c). The
 * record gets the backup's label, WAL range and stored size.
 *
 * Where it runs: pgBackRest needs the primary for both commands. With
 * the TLS server (pitr + tls + more than one member, backup_server.c) any
 * member will do: on a follower `--backup-standby` copies the data from
 * that follower and only pg_control and the configuration from the
 * primary's server; on the leader `--no-backup-standby` copies from the
 * leader (the controller chose it). Without the server a follower cannot
 * run it, which the route refuses up front (bk_pgbr_check). */
#include "netagent/log.h"
#include "netagent/util.h"
#include "provision/backup.h"
#include "provision/pg.h"
#include "provision/pg_backrest.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define PB_TIMEOUT_MS (6u * 3600 * 1000)

enum { PB_STANZA, PB_BACKUP, PB_INFO };
#define PGBR_LOCK_EXIT 50 /* pgBackRest's LockAcquireError */
static const char *const step_cmd[] = {"stanza-create", "backup", "info"};

#define MAX_RESETS (PG_MAX_MEMBERS * PGBR_PEER_OPTS)

typedef struct pbjob {
	char ct[64], id[64], stanza[64], type[8], label[64];
	int step, standby, tls;
	char resets[MAX_RESETS][PGBR_OPT_LEN];
	size_t nresets;
} pbjob_t;

/* Patroni's role of the member as the poller last saw it ("leader",
 * "replica", "sync_standby"), "" when unknown. */
static void member_role(const char *ct, char *out, size_t n)
{
	json_t *o = json_object();
	pg_view(ct, o);
	const char *r = json_string_value(json_object_get(json_object_get(o, "patroni"), "role"));
	snprintf(out, n, "%s", r ? r : "");
	json_decref(o);
}

int bk_pgbr_check(const pv_ct_t *c, na_err_t *err)
{
	char role[32];
	member_role(c->name, role, sizeof(role));
	return pgbr_can_backup(json_object_get(c->spec.body, "postgres"), c->name, role, err);
}

/* The line of pgBackRest's output that says why ("ERROR: [056]: unable
 * to find primary cluster - cannot proceed"), else its last bytes. */
static void why(const char *out, size_t len, char *buf, size_t n)
{
	const char *e = NULL;
	for (const char *p = out; (p = memmem(p, len - (size_t)(p - out), "ERROR:", 6)); p += 6)
		e = p;
	if (e) {
		size_t l = strcspn(e, "\n");
		snprintf(buf, n, "%.*s", (int)(l > 200 ? 200 : l), e);
		return;
	}
	size_t l = len > 200 ? 200 : len;
	snprintf(buf, n, "%.*s", (int)l, out + len - l);
}

/* The record of this backup in `pgbackrest info --output=json`: the one
 * with the label the backup printed, else the newest. */
static void read_info(bk_t *b, const char *label, const char *out, size_t len)
{
	json_t *root = json_loadb(out, len, 0, NULL);
	json_t *list = json_object_get(json_array_get(root, 0), "backup"), *it, *mine = NULL;
	size_t i;
	json_array_foreach(list, i, it)
	{
		const char *l = json_string_value(json_object_get(it, "label"));
		if (l && label[0] && !strcmp(l, label))
			mine = it;
	}
	if (!mine)
		mine = json_array_get(list, json_array_size(list) ? json_array_size(list) - 1 : 0);
	const char *s;
	if ((s = json_string_value(json_object_get(mine, "label"))))
		snprintf(b->label, sizeof(b->label), "%s", s);
	json_t *arch = json_object_get(mine, "archive");
	if ((s = json_string_value(json_object_get(arch, "start"))))
		snprintf(b->wal_start, sizeof(b->wal_start), "%s", s);
	if ((s = json_string_value(json_object_get(arch, "stop"))))
		snprintf(b->wal_stop, sizeof(b->wal_stop), "%s", s);
	json_t *repo = json_object_get(json_object_get(mine, "info"), "repository");
	b->size = (unsigned long long)json_integer_value(json_object_get(repo, "delta"));
	json_decref(root);
}

static void step(pbjob_t *p);

static void exited(void *ud, int rc, const na_err_t *err, int status, const char *out, size_t len)
{
	pbjob_t *p = ud;
	bk_t *b = bk_find(p->ct, p->id);
	if (!b) {
		free(p);
		return;
	}
	/* stanza-create takes the archive lock too: a leader busy pushing
	 * WAL (right after a failover: the history file, the old timeline's
	 * partial segment) holds it, and pgBackRest answers 50 at once. Its
	 * archiver works only with a stanza, which then exists: go on, the
	 * backup says so if it does not. */
	if (rc == 0 && status == PGBR_LOCK_EXIT && p->step == PB_STANZA)
		status = 0;
	if (rc < 0 || status != 0) {
		char msg[256], w[210];
		if (rc < 0)
			snprintf(msg, sizeof(msg), "%.255s", err->msg);
		else {
			why(out, len, w, sizeof(w));
			snprintf(msg, sizeof(msg), "pgbackrest %s exited with %d: %s",
				 step_cmd[p->step], status, w);
		}
		bk_finish(b, msg);
		free(p);
		return;
	}
	if (p->step == PB_BACKUP) {
		static const char tag[] = "new backup label = ";
		const char *l = memmem(out, len, tag, sizeof(tag) - 1);
		if (l)
			snprintf(p->label, sizeof(p->label), "%.*s",
				 (int)strcspn(l + sizeof(tag) - 1, " \r\n"), l + sizeof(tag) - 1);
	}
	if (p->step == PB_INFO) {
		read_info(b, p->label, out, len);
		bk_finish(b, NULL);
		free(p);
		return;
	}
	p->step++;
	step(p);
}

/* Peers Patroni does not show running leave the command line: pgBackRest
 * would retry a dead peer's server until its io-timeout, several times
 * (minutes), and then fail where a missing standby is only a warning. */
static void skip_down_peers(pbjob_t *p, const json_t *pg, const char *self_ip)
{
	char up[PG_MAX_MEMBERS][NA_ADDR_STRLEN];
	const char *upp[PG_MAX_MEMBERS];
	int nup = pg_members_up(p->ct, up, PG_MAX_MEMBERS);
	if (nup < 0 || !p->tls)
		return; /* unknown: every peer stays */
	for (int i = 0; i < nup; i++)
		upp[i] = up[i];
	p->nresets = pgbr_skip_peers(pg, self_ip, upp, (size_t)nup, p->resets, MAX_RESETS);
	if (p->nresets)
		na_info("backup leaves out members that are down", "container=%s id=%s down=%zu",
			p->ct, p->id, p->nresets / PGBR_PEER_OPTS);
}

static void step(pbjob_t *p)
{
	const char *argv[MAX_RESETS + 16], *opts[MAX_RESETS + 4] = {NULL};
	char buf[600], type[16];
	size_t k = 0;
	if (p->step != PB_INFO)
		for (size_t i = 0; i < p->nresets; i++)
			opts[k++] = p->resets[i];
	if (p->step == PB_BACKUP) {
		snprintf(type, sizeof(type), "--type=%s", p->type);
		opts[k++] = type;
		if (p->tls)
			opts[k++] = p->standby ? "--backup-standby" : "--no-backup-standby";
		/* The label comes on the console at info level. */
		opts[k++] = "--log-level-console=info";
	} else if (p->step == PB_INFO) {
		opts[k++] = "--output=json";
	}
	na_err_t e = NA_ERR_INIT;
	if (pgbr_argv(p->stanza, step_cmd[p->step], opts, argv, NA_ARRAY_SIZE(argv), buf,
		      sizeof(buf)) < 0) {
		na_err_set(&e, 500, "internal_error", NULL, "pgbackrest arguments too long");
		exited(p, -1, &e, 0, "", 0);
		return;
	}
	pv_exec_req_t x = {.container = p->ct,
			   .argv = argv,
			   .timeout_ms = PB_TIMEOUT_MS,
			   .capture_max = 256 * 1024};
	if (pv_exec(&x, exited, p, &e) < 0)
		exited(p, -1, &e, 0, "", 0);
}

void bk_pgbr_run(bk_t *b, na_req_t *req)
{
	pbjob_t *p = calloc(1, sizeof(*p));
	pv_ct_t *c = pv_ct_find(b->ct);
	if (!p || !c) {
		na_err_t e = NA_ERR_INIT;
		if (!p)
			na_err_errno(&e, ENOMEM, "backup");
		else
			na_err_set(&e, 404, "not_found", NULL, "container %s not found", b->ct);
		bk_wjob_t *u = bk_wjob_new(b);
		if (u) {
			u->del_record = 1;
			bk_wjob_submit(u);
		}
		bk_forget(b);
		free(p);
		na_reply_err(req, &e);
		return;
	}
	const json_t *pg = json_object_get(c->spec.body, "postgres");
	const char *cl = json_string_value(json_object_get(pg, "cluster"));
	char role[32];
	member_role(b->ct, role, sizeof(role));
	snprintf(p->ct, sizeof(p->ct), "%s", b->ct);
	snprintf(p->id, sizeof(p->id), "%s", b->id);
	snprintf(p->type, sizeof(p->type), "%s", b->type);
	snprintf(p->stanza, sizeof(p->stanza), "%s", cl ? cl : "");
	p->tls = pgbr_tls_server(pg);
	p->standby = role[0] && strcmp(role, "leader");
	char ip[NA_ADDR_STRLEN] = "";
	if (c->spec.nnets) /* "198.18.1.2/24" */
		snprintf(ip, sizeof(ip), "%.*s", (int)strcspn(c->spec.nets[0].ip, "/"),
			 c->spec.nets[0].ip);
	skip_down_peers(p, pg, ip);
	snprintf(b->from, sizeof(b->from), "%s", !role[0] ? "" : p->standby ? "replica" : "leader");
	bk_publish(b, "started");
	na_reply_json(req, 202, bk_json(b));
	step(p);
}
