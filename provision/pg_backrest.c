/* pgBackRest for the postgres role: see pg_backrest.h. Facts this file
 * builds on (notes/pitr-field-notes.md): archive_command runs as the
 * postmaster's user, so every path pgBackRest writes belongs to postgres;
 * the config path must be absolute; Patroni's custom bootstrap needs
 * `no_params` and `keep_existing_recovery_conf`, and `--type=time` with
 * `--target-action=promote` (else recovery pauses with hot_standby off);
 * a restored cluster must never archive into the stanza it came from. */
#include "provision/pg_backrest.h"
#include "netagent/file.h"
#include "netagent/util.h"
#include "netagent/validate.h"

#include <errno.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *pgbr_root(void)
{
	const char *r = getenv("NETAGENT_PGBACKREST_ROOT");
	return r && r[0] == '/' ? r : "/srv/pgbackrest";
}

static int under_root(const char *p)
{
	const char *r = pgbr_root();
	size_t n = strlen(r);
	return !strncmp(p, r, n) && p[n] == '/' && p[n + 1];
}

int pgbr_parse_time(const char *s, time_t *out)
{
	struct tm tm = {0};
	const char *e = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!e)
		return -1;
	if (*e == '.')
		for (e++; *e >= '0' && *e <= '9'; e++)
			;
	long off = 0;
	if (*e == 'Z' || *e == 'z') {
		e++;
	} else if (*e == '+' || *e == '-') {
		int hh, mm;
		if (sscanf(e + 1, "%2d:%2d", &hh, &mm) != 2 || hh > 23 || mm > 59)
			return -1;
		off = (hh * 3600L + mm * 60L) * (*e == '-' ? -1 : 1);
		e += 6;
	} else {
		return -1;
	}
	if (*e)
		return -1;
	*out = timegm(&tm) - off;
	return 0;
}

static int repo_check(const json_t *sec, const char *field, na_err_t *err)
{
	const char *repo = json_string_value(json_object_get(sec, "repo"));
	char f[64];
	snprintf(f, sizeof(f), "%s.repo", field);
	if (!repo)
		return na_err_set(err, 422, "missing_field", f, "%s is required", f);
	if (pv_check_host_path(repo, f, err) < 0)
		return -1;
	if (!under_root(repo))
		return na_err_set(err, 422, "invalid_field", f,
				  "%s must be a directory below %s (the agent's repository root, "
				  "NETAGENT_PGBACKREST_ROOT)",
				  f, pgbr_root());
	return 0;
}

int pgbr_validate(const json_t *pg, const char *cluster, na_err_t *err)
{
	static const na_field_t pitr_f[] = {
	    {"repo", NA_F_STRING, 1, 0, 0},
	    {"retention_full", NA_F_INT, 0, 1, 100},
	};
	static const na_field_t restore_f[] = {
	    {"repo", NA_F_STRING, 1, 0, 0},
	    {"stanza", NA_F_STRING, 1, 0, 0},
	    {"target_time", NA_F_STRING, 1, 0, 0},
	};
	json_t *pitr = json_object_get(pg, "pitr"), *rs = json_object_get(pg, "restore");
	if (pitr &&
	    (na_fields_check(pitr, pitr_f, NA_ARRAY_SIZE(pitr_f), "postgres.pitr.", err) < 0 ||
	     repo_check(pitr, "postgres.pitr", err) < 0))
		return -1;
	if (!rs)
		return 0;
	if (na_fields_check(rs, restore_f, NA_ARRAY_SIZE(restore_f), "postgres.restore.", err) <
		0 ||
	    repo_check(rs, "postgres.restore", err) < 0)
		return -1;
	const char *stanza = json_string_value(json_object_get(rs, "stanza"));
	if (na_name_check(stanza, "postgres.restore.stanza", err) < 0)
		return -1;
	time_t t;
	const char *ts = json_string_value(json_object_get(rs, "target_time"));
	if (pgbr_parse_time(ts, &t) < 0)
		return na_err_set(err, 422, "invalid_field", "postgres.restore.target_time",
				  "postgres.restore.target_time must be RFC 3339, e.g. "
				  "2026-12-02T10:00:00Z");
	if (t > time(NULL))
		return na_err_set(err, 422, "invalid_field", "postgres.restore.target_time",
				  "postgres.restore.target_time %s is in the future", ts);
	/* Two clusters on one timeline history corrupt both (field notes). */
	if (!strcmp(stanza, cluster))
		return na_err_set(err, 422, "invalid_field", "postgres.restore.stanza",
				  "the restored cluster needs its own name: cluster %s is the "
				  "stanza it restores from, and it would archive into it",
				  cluster);
	return 0;
}

/* ---- rendering (pure) --------------------------------------------------------- */

static json_t *obj_at(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	if (!json_is_object(v)) {
		v = json_object();
		json_object_set_new(o, k, v);
	}
	return v;
}

int pgbr_tls_server(const json_t *pg)
{
	return json_object_get(pg, "pitr") && json_object_get(pg, "tls") &&
	       json_array_size(json_object_get(pg, "members")) > 1;
}

int pgbr_can_backup(const json_t *pg, const char *name, const char *role, na_err_t *err)
{
	if (pgbr_tls_server(pg) || !role || !role[0] || !strcmp(role, "leader"))
		return 0;
	return na_err_set(err, 409, "not_leader", NULL,
			  "container %s is a %s and its cluster runs no pgBackRest TLS server "
			  "(postgres.tls with more than one member): pgBackRest backs up from a "
			  "follower only through the primary's server; order it on the leader",
			  name, role);
}

/* The CN of a PEM certificate, "" when it has none. */
static void cert_cn(const char *pem, char *out, size_t n)
{
	out[0] = 0;
	BIO *b = pem ? BIO_new_mem_buf(pem, -1) : NULL;
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	if (x &&
	    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, out, (int)n) < 0)
		out[0] = 0;
	X509_free(x);
}

/* The TLS server and the peers (notes/pitr-field-notes.md): a backup on a
 * follower asks the primary's server to start and stop the backup and
 * for its pg_control and configuration files; libpq alone is not enough,
 * and there is no SSH. The same file serves every role: pgBackRest finds
 * which pgN is the primary. Clients are authorised by their certificate's
 * CN (no wildcard exists): the members' certificates carry their overlay
 * address as CN (and as a DNS-type SAN: pgBackRest checks the host name
 * it dialled against those); this member's own CN is added whatever it
 * is. */
static void render_tls(FILE *f, const json_t *pg, const char *cluster, const pgbr_paths_t *p,
		       int global)
{
	json_t *members = json_object_get(pg, "members"), *m;
	size_t i;
	if (global) {
		char cn[256];
		cert_cn(json_string_value(json_object_get(json_object_get(pg, "tls"), "cert")), cn,
			sizeof(cn));
		fprintf(f,
			"tls-server-address=%s\ntls-server-port=%d\ntls-server-cert-file=%s/"
			"server.crt\ntls-server-key-file=%s/server.key\ntls-server-ca-file=%s/"
			"ca.crt\n",
			p->ip, PGBR_TLS_PORT, p->tls_dir, p->tls_dir, p->tls_dir);
		int own = 0;
		json_array_foreach(members, i, m)
		{
			fprintf(f, "tls-server-auth=%s=%s\n", json_string_value(m), cluster);
			own |= !strcmp(json_string_value(m), cn);
		}
		if (cn[0] && !own)
			fprintf(f, "tls-server-auth=%s=%s\n", cn, cluster);
		return;
	}
	int k = 2;
	json_array_foreach(members, i, m)
	{
		const char *ip = json_string_value(m);
		if (!strcmp(ip, p->ip))
			continue;
		fprintf(f,
			"pg%d-host=%s\npg%d-host-type=tls\npg%d-host-port=%d\n"
			"pg%d-host-cert-file=%s/server.crt\npg%d-host-key-file=%s/server.key\n"
			"pg%d-host-ca-file=%s/ca.crt\npg%d-path=%s\npg%d-port=5432\n"
			"pg%d-socket-path=%s\n",
			k, ip, k, k, PGBR_TLS_PORT, k, p->tls_dir, k, p->tls_dir, k, p->tls_dir, k,
			p->data_dir, k, k, p->socket_dir);
		k++;
	}
}

/* What render_tls gives each peer pgN, in the same order. */
static const char *const peer_opts[PGBR_PEER_OPTS] = {
    "host",	    "host-type", "host-port", "host-cert-file", "host-key-file",
    "host-ca-file", "path",	 "port",      "socket-path"};

size_t pgbr_skip_peers(const json_t *pg, const char *self_ip, const char *const *up, size_t nup,
		       char (*out)[PGBR_OPT_LEN], size_t max)
{
	size_t i, n = 0;
	json_t *m;
	int k = 2;
	json_array_foreach(json_object_get(pg, "members"), i, m)
	{
		const char *ip = json_string_value(m);
		if (!ip || !strcmp(ip, self_ip))
			continue;
		int alive = 0;
		for (size_t u = 0; u < nup; u++)
			alive |= !strcmp(up[u], ip);
		for (size_t o = 0; !alive && o < PGBR_PEER_OPTS && n < max; o++)
			snprintf(out[n++], PGBR_OPT_LEN, "--reset-pg%d-%s", k, peer_opts[o]);
		k++;
	}
	return n;
}

int pgbr_render(const json_t *pg, const char *cluster, const pgbr_paths_t *p, json_t *patroni,
		char **conf, na_err_t *err)
{
	json_t *pitr = json_object_get(pg, "pitr"), *rs = json_object_get(pg, "restore");
	int tls = pgbr_tls_server(pg) && p->ip && p->tls_dir;
	*conf = NULL;
	if (!pitr && !rs)
		return 0;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return na_err_errno(err, errno, "pgbackrest.conf");
	/* archive-async: archive_command hands the segment to a background
	 * push and returns (the spool is the container's own /tmp). */
	fprintf(f,
		"# Rendered by netagent for this member; edits are overwritten.\n"
		"[global]\nlog-path=%s/log\nlock-path=%s/lock\nspool-path=%s/spool\n"
		"log-level-console=warn\nlog-level-file=info\nstart-fast=y\nprocess-max=2\n"
		"compress-type=lz4\narchive-async=y\n",
		p->scratch, p->scratch, p->scratch);
	if (tls)
		render_tls(f, pg, cluster, p, 1);
	/* This member's own stanza, the cluster's name, with its repository:
	 * per stanza, so the source of a restore keeps its own. */
	fprintf(f, "\n[%s]\npg1-path=%s\npg1-port=5432\npg1-socket-path=%s\n", cluster, p->data_dir,
		p->socket_dir);
	if (pitr) {
		json_t *rf = json_object_get(pitr, "retention_full");
		fprintf(f, "repo1-path=%s\nrepo1-retention-full=%lld\n",
			json_string_value(json_object_get(pitr, "repo")),
			json_is_integer(rf) ? json_integer_value(rf) : 4);
	}
	if (tls)
		render_tls(f, pg, cluster, p, 0);
	if (rs) {
		/* The source stanza, only read from here. */
		fprintf(f,
			"\n[%s]\nrepo1-path=%s\npg1-path=%s\npg1-port=5432\npg1-socket-path=%s\n",
			json_string_value(json_object_get(rs, "stanza")),
			json_string_value(json_object_get(rs, "repo")), p->data_dir, p->socket_dir);
	}
	fclose(f);

	json_t *postgresql = obj_at(patroni, "postgresql");
	json_t *params = obj_at(postgresql, "parameters");
	json_t *dcsp =
	    obj_at(obj_at(obj_at(obj_at(patroni, "bootstrap"), "dcs"), "postgresql"), "parameters");
	char cmd[1024];
	if (pitr) {
		json_object_set_new(dcsp, "archive_mode", json_string("on"));
		json_object_set_new(dcsp, "archive_timeout", json_integer(60));
		/* Local parameters override the DCS ones: each member names
		 * its own config file. */
		json_object_set_new(params, "archive_mode", json_string("on"));
		snprintf(cmd, sizeof(cmd), "pgbackrest --config=%s --stanza=%s archive-push %%p",
			 PGBR_CONF_IN_CT, cluster);
		json_object_set_new(params, "archive_command", json_string(cmd));
	}
	if (rs) {
		const char *ts = json_string_value(json_object_get(rs, "target_time"));
		time_t t = 0;
		pgbr_parse_time(ts, &t);
		struct tm tm;
		gmtime_r(&t, &tm);
		char target[40];
		strftime(target, sizeof(target), "%Y-%m-%d %H:%M:%S+00", &tm);
		snprintf(cmd, sizeof(cmd),
			 "pgbackrest --config=%s --stanza=%s --type=time \"--target=%s\" "
			 "--target-action=promote restore",
			 PGBR_CONF_IN_CT, json_string_value(json_object_get(rs, "stanza")), target);
		json_t *bs = obj_at(patroni, "bootstrap");
		json_object_set_new(bs, "method", json_string("pgbackrest"));
		json_object_set_new(bs, "pgbackrest",
				    json_pack("{s:s, s:b, s:b}", "command", cmd,
					      "keep_existing_recovery_conf", 1, "no_params", 1));
	}
	*conf = buf;
	return 0;
}

int pgbr_binds(const json_t *pg, pv_spec_t *spec, unsigned uid, unsigned gid, na_err_t *err)
{
	const char *secs[] = {"pitr", "restore"};
	if (!json_object_get(pg, "pitr") && !json_object_get(pg, "restore"))
		return 0;
	if (spec->nbinds >= PV_MAX_BINDS)
		return na_err_set(err, 422, "invalid_field", "postgres", "too many binds");
	pv_bind_t *cb = &spec->binds[spec->nbinds++];
	snprintf(cb->sub, sizeof(cb->sub), "%s", PGBR_SUB);
	snprintf(cb->dest, sizeof(cb->dest), "%s", PGBR_DIR_IN_CT);
	cb->uid = uid;
	cb->gid = gid;
	cb->mode = 0750;
	for (size_t i = 0; i < NA_ARRAY_SIZE(secs); i++) {
		const char *repo =
		    json_string_value(json_object_get(json_object_get(pg, secs[i]), "repo"));
		if (!repo)
			continue;
		int dup = 0;
		for (size_t k = 0; k < spec->nbinds; k++)
			dup |= !strcmp(spec->binds[k].src, repo);
		if (dup)
			continue;
		if (spec->nbinds >= PV_MAX_BINDS)
			return na_err_set(err, 422, "invalid_field", "postgres", "too many binds");
		pv_bind_t *b = &spec->binds[spec->nbinds++];
		snprintf(b->src, sizeof(b->src), "%s", repo);
		snprintf(b->dest, sizeof(b->dest), "%s", repo);
		/* The source of a restore is read, never written. */
		b->rw = !strcmp(secs[i], "pitr");
	}
	return 0;
}

int pgbr_write(const char *run_dir, const char *conf, unsigned uid, unsigned gid, na_err_t *err)
{
	if (!conf)
		return 0;
	char path[600];
	snprintf(path, sizeof(path), "%s/%s/pgbackrest.conf", run_dir, PGBR_SUB);
	return na_file_put(path, conf, strlen(conf), 0600, uid, gid, err);
}

int pgbr_argv(const char *stanza, const char *command, const char *const *opts, const char **argv,
	      size_t max, char *buf, size_t n)
{
	size_t k = 0, no = 0;
	while (opts && opts[no])
		no++;
	if (no + 5 > max)
		return -1;
	int a = snprintf(buf, n, "--config=%s", PGBR_CONF_IN_CT);
	if (a < 0 || (size_t)a + 1 >= n ||
	    snprintf(buf + a + 1, n - (size_t)a - 1, "--stanza=%s", stanza) >= (int)(n - a - 1))
		return -1;
	argv[k++] = "pgbackrest";
	argv[k++] = buf;
	argv[k++] = buf + a + 1;
	for (size_t i = 0; i < no; i++)
		argv[k++] = opts[i];
	argv[k++] = command;
	argv[k] = NULL;
	return (int)k;
}
