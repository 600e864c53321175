/* Role "postgres" (SPEC §4): PostgreSQL 15 managed by Patroni, Patroni as
 * the container's PID 1 (so the PID namespace, postmaster included, dies
 * with it: Patroni starts the postmaster detached), Raft among the members
 * as its DCS over the overlay. This file: validation and the defaults of
 * the container, the files rendered before a start, and what a live
 * update may change. The configuration is pg_render.c's and pg_conf.c's,
 * the running side pg_watch.c's and pg_patroni.c's. */
#include "netagent/file.h"
#include "netagent/util.h"
#include "provision/backup.h"
#include "provision/pg.h"
#include "provision/pg_backrest.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const na_field_t fields[] = {
    {"postgres", NA_F_OBJECT, 1, 0, 0},
};

static const char *const patroni_argv[] = {"/usr/bin/python3", "/usr/bin/patroni",
					   PG_CONF_DIR "/patroni.yml"};

/* ---- validate ------------------------------------------------------------------- */

/* HOME, USER, PATH (with PostgreSQL's bin dir), a UTF-8 locale for
 * initdb: runc passes only what the spec lists. The caller's own values
 * win. */
static int set_env(pv_spec_t *s, na_err_t *err)
{
	static const char *const defs[] = {
	    "HOME=" PG_HOME,
	    "USER=postgres",
	    "PATH=" PG_BIN_DIR ":/usr/local/bin:/usr/bin:/bin",
	    "LC_ALL=C.UTF-8",
	};
	char **env = realloc(s->env, (s->nenv + NA_ARRAY_SIZE(defs) + 1) * sizeof(char *));
	if (!env)
		return na_err_errno(err, ENOMEM, "env");
	s->env = env;
	for (size_t i = 0; i < NA_ARRAY_SIZE(defs); i++) {
		size_t kl = (size_t)(strchr(defs[i], '=') - defs[i]) + 1;
		int have = 0;
		for (size_t k = 0; k < s->nenv; k++)
			have |= !strncmp(s->env[k], defs[i], kl);
		if (have)
			continue;
		if (!(s->env[s->nenv] = strdup(defs[i])))
			return na_err_errno(err, ENOMEM, "env");
		s->nenv++;
	}
	s->env[s->nenv] = NULL;
	return 0;
}

static int set_volume(pv_spec_t *s, na_err_t *err)
{
	int named_data = 0;
	for (size_t i = 0; i < s->nvols; i++) {
		if (!strcmp(s->vols[i].mount, PG_HOME))
			return 0;
		named_data |= !strcmp(s->vols[i].name, "data");
	}
	if (s->nvols >= PV_MAX_VOLS)
		return na_err_set(err, 422, "invalid_field", "volumes",
				  "role postgres needs a volume at " PG_HOME
				  " and volumes has no room for it");
	pv_volume_t *v = &s->vols[s->nvols++];
	snprintf(v->name, sizeof(v->name), "%s", named_data ? "pgdata" : "data");
	snprintf(v->mount, sizeof(v->mount), PG_HOME);
	return 0;
}

static int validate(const json_t *body, pv_spec_t *s, na_err_t *err)
{
	pg_conf_t c;
	if (s->nnets != 1)
		return na_err_set(err, 422, "invalid_field", "networks",
				  "role postgres takes exactly one network (the cluster's "
				  "overlay), got %zu",
				  s->nnets);
	if (!s->nets[0].ip[0])
		return na_err_set(err, 422, "missing_field", "networks[0].ip",
				  "role postgres needs its overlay address in networks[0].ip "
				  "(the members list names it)");
	char subnet[NA_ADDR_STRLEN] = "";
	na_addr_t a;
	pv_role_note_subnets(s);
	if (pv_role_subnet(s->nets[0].network, &a))
		na_addr_fmt(&a, subnet, sizeof(subnet));
	const json_t *pg = json_object_get(body, "postgres");
	if (pg_parse(pg, s->nets[0].ip, subnet, &c, err) < 0 ||
	    pgbr_validate(pg, c.cluster, err) < 0 ||
	    pv_role_set_argv(s, patroni_argv, NA_ARRAY_SIZE(patroni_argv), "Patroni", err) < 0 ||
	    set_env(s, err) < 0 || set_volume(s, err) < 0)
		return -1;
	pg_ids(&s->uid, &s->gid);
	s->caps = 0; /* initdb, postgres and Patroni need none (runc field notes) */
	s->shm_mb = 256;
	/* Restarted at once, a crashed leader finds its own Raft lock still
	 * valid: Patroni starts PostgreSQL as a replica, then promotes it
	 * again (measured: commits back after ~20 s, two PostgreSQL starts).
	 * Waiting out the lock lets Patroni promote the synchronous standby
	 * (~ttl) and the old leader rejoins as a follower. One member: no
	 * one else can lead, restart at once. */
	if (c.nmembers > 1)
		s->restart_floor_ms = (unsigned)c.ttl * 1000;
	if (!s->restart_set)
		s->restart = PV_RESTART_ALWAYS;
	if (s->ntmpfs >= PV_MAX_TMPFS)
		return na_err_set(err, 500, "internal_error", NULL, "no tmpfs slot left");
	pv_tmpfs_t *t = &s->tmpfs[s->ntmpfs++];
	snprintf(t->dest, sizeof(t->dest), PG_SOCKET_DIR);
	t->mode = 02775;
	t->uid = s->uid;
	t->gid = s->gid;
	t->size_mb = 4;
	/* Rendered files (passwords, the TLS key) for postgres alone. */
	pv_bind_t *b = &s->binds[s->nbinds++];
	snprintf(b->sub, sizeof(b->sub), "conf");
	snprintf(b->dest, sizeof(b->dest), PG_CONF_DIR);
	b->uid = s->uid;
	b->gid = s->gid;
	b->mode = 0700;
	return pgbr_binds(pg, s, s->uid, s->gid, err);
}

static int check_fs(const pv_spec_t *s, na_err_t *err)
{
	return pgbr_check_fs(json_object_get(s->body, "postgres"), s->uid, s->gid, err);
}

/* ---- prepare (worker) ------------------------------------------------------------- */

static int write_owned(const char *dir, const char *name, const char *data, mode_t mode,
		       unsigned uid, unsigned gid, na_err_t *err)
{
	char path[700];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return na_file_put(path, data, strlen(data), mode, uid, gid, err);
}

/* Raft's journal on the data volume (pysyncobj does not make its dir). */
static int raft_dir(const pv_spec_t *s, const pv_prep_ctx_t *ctx, na_err_t *err)
{
	for (size_t i = 0; i < s->nvols; i++) {
		if (strcmp(s->vols[i].mount, PG_HOME))
			continue;
		char path[700];
		snprintf(path, sizeof(path), "%s/%s/raft", ctx->volume_dir, s->vols[i].name);
		if (mkdir(path, 0700) < 0 && errno != EEXIST)
			return na_err_errno(err, errno, "mkdir %s", path);
		struct stat st;
		if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode))
			return na_err_set(err, 500, "system_error", NULL, "%s is not a directory",
					  path);
		if (lchown(path, s->uid, s->gid) < 0)
			return na_err_errno(err, errno, "chown %s", path);
	}
	return 0;
}

static int prepare(const pv_spec_t *s, const pv_prep_ctx_t *ctx, na_err_t *err)
{
	pg_conf_t c;
	char conf[600], *pgbr = NULL;
	json_t *root = pg_spec_render(s, &c, &pgbr, err);
	if (!root)
		return -1;
	snprintf(conf, sizeof(conf), "%s/conf", ctx->dir);
	char *text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(root);
	int rc = text ? write_owned(conf, "patroni.yml", text, 0600, s->uid, s->gid, err)
		      : na_err_errno(err, ENOMEM, "patroni.yml");
	free(text);
	if (rc == 0 && c.cert)
		rc = (write_owned(conf, "server.crt", c.cert, 0644, s->uid, s->gid, err) < 0 ||
		      write_owned(conf, "server.key", c.key, 0600, s->uid, s->gid, err) < 0 ||
		      write_owned(conf, "ca.crt", c.ca, 0644, s->uid, s->gid, err) < 0)
			 ? -1
			 : 0;
	if (rc == 0)
		rc = pgbr_write(ctx->dir, pgbr, s->uid, s->gid, err);
	free(pgbr);
	if (rc < 0 || ctx->render_only)
		return rc;
	return raft_dir(s, ctx, err);
}

/* ---- live updates ----------------------------------------------------------------- */

/* PostgreSQL settings go through Patroni's reload, the members through
 * Raft's membership, the synchronous mode and the failover timings through
 * Patroni's dynamic configuration (pg_apply); the rest restarts. */
static void live_fields(json_t *canon)
{
	json_t *pg = json_object_get(canon, "postgres");
	json_object_del(pg, "parameters");
	json_object_del(pg, "members");
	json_object_del(pg, "synchronous");
	json_object_del(pg, "patroni");
}

static void state(const char *name, const pv_spec_t *spec, const char *st)
{
	/* "starting" comes before every prepare, which renders from the
	 * subnet (a restarted agent validated before its networks loaded). */
	if (spec)
		pv_role_note_subnets(spec);
	pg_state(name, spec, st);
	pg_join_state(name, spec, st);
	/* pgBackRest's TLS server beside Patroni: a backup can run on any
	 * member (docs/backups.md). */
	bk_server_state(name, spec, st);
}

const pv_role_t pv_role_postgres = {
    .name = "postgres",
    .fields = fields,
    .nfields = NA_ARRAY_SIZE(fields),
    .validate = validate,
    .check_fs = check_fs,
    .prepare = prepare,
    .init = pg_init,
    .live_fields = live_fields,
    .apply = pg_apply,
    .view = pg_view,
    .state = state,
    .fini = pg_fini,
};
