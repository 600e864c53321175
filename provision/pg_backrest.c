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
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PG_MAJOR "15"

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

/* RFC 3339 in UTC ("Z") or with an offset; seconds since the epoch. */
static int parse_time(const char *s, time_t *out)
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
	if (parse_time(ts, &t) < 0)
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

/* ---- the repository on disk (worker) ---------------------------------------- */

/* backup.info: an INI file whose [backup:current] values are JSON, one per
 * backup label; [db] names the PostgreSQL version that wrote the stanza. */
typedef struct info {
	int found;
	char version[16];
	long long oldest_stop, newest_stop; /* epoch seconds, 0: no backup */
	int usable;			    /* a backup ended at or before the target */
} info_t;

static int read_info(const char *repo, const char *stanza, time_t target, info_t *in, na_err_t *err)
{
	char path[600];
	memset(in, 0, sizeof(*in));
	snprintf(path, sizeof(path), "%s/backup/%s/backup.info", repo, stanza);
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ENOTDIR
			   ? 0
			   : na_err_errno(err, errno, "open %s", path);
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > (16 << 20)) {
		close(fd);
		return na_err_set(err, 422, "invalid_field", "postgres.restore.stanza",
				  "%s is not a pgBackRest backup.info file", path);
	}
	FILE *f = fdopen(fd, "re");
	if (!f) {
		close(fd);
		return na_err_errno(err, errno, "fdopen %s", path);
	}
	in->found = 1;
	char line[8192], sect[64] = "";
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\r\n")] = 0;
		if (line[0] == '[') {
			snprintf(sect, sizeof(sect), "%.63s", line);
			continue;
		}
		char *eq = strchr(line, '=');
		if (!eq)
			continue;
		*eq = 0;
		const char *v = eq + 1;
		if (!strcmp(sect, "[db]") && !strcmp(line, "db-version")) {
			snprintf(in->version, sizeof(in->version), "%.*s",
				 (int)strcspn(v + 1, "\""), v + (*v == '"'));
		} else if (!strcmp(sect, "[backup:current]")) {
			json_t *b = json_loads(v, 0, NULL);
			json_t *stop = json_object_get(b, "backup-timestamp-stop");
			if (json_is_integer(stop)) {
				long long s = json_integer_value(stop);
				if (!in->oldest_stop || s < in->oldest_stop)
					in->oldest_stop = s;
				if (s > in->newest_stop)
					in->newest_stop = s;
				if (s <= (long long)target)
					in->usable = 1;
			}
			json_decref(b);
		}
	}
	fclose(f);
	return 0;
}

static int mkdir_owned(const char *p, unsigned uid, unsigned gid, na_err_t *err)
{
	/* Component by component below the root, never following a link: a
	 * symlink planted in the repository root cannot point us elsewhere. */
	const char *root = pgbr_root();
	int fd = open(root, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return na_err_set(err, 422, "invalid_field", "postgres.pitr.repo",
				  "the repository root %s does not exist on this host (%s)", root,
				  strerror(errno));
	char comp[256];
	for (const char *c = p + strlen(root) + 1; *c;) {
		size_t l = strcspn(c, "/");
		snprintf(comp, sizeof(comp), "%.*s", (int)l, c);
		if (mkdirat(fd, comp, 0750) == 0) {
			if (fchownat(fd, comp, uid, gid, AT_SYMLINK_NOFOLLOW) < 0) {
				int e = errno;
				close(fd);
				return na_err_errno(err, e, "chown %s", p);
			}
		} else if (errno != EEXIST) {
			int e = errno;
			close(fd);
			return na_err_errno(err, e, "mkdir %s", p);
		}
		int nfd = openat(fd, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(fd);
		if (nfd < 0)
			return na_err_set(err, 422, "invalid_field", "postgres.pitr.repo",
					  "%s: %s is not a directory (or is a symlink)", p, comp);
		fd = nfd;
		c += l;
		if (*c == '/')
			c++;
	}
	struct stat st;
	int rc = fstat(fd, &st);
	close(fd);
	if (rc < 0)
		return na_err_errno(err, errno, "stat %s", p);
	if (st.st_uid != uid)
		return na_err_set(
		    err, 422, "invalid_field", "postgres.pitr.repo",
		    "repository %s belongs to uid %u, not to postgres (%u): pgBackRest "
		    "runs as postgres",
		    p, (unsigned)st.st_uid, uid);
	return 0;
}

int pgbr_check_fs(const json_t *pg, unsigned uid, unsigned gid, na_err_t *err)
{
	json_t *pitr = json_object_get(pg, "pitr"), *rs = json_object_get(pg, "restore");
	if (pitr &&
	    mkdir_owned(json_string_value(json_object_get(pitr, "repo")), uid, gid, err) < 0)
		return -1;
	if (!rs)
		return 0;
	const char *repo = json_string_value(json_object_get(rs, "repo"));
	const char *stanza = json_string_value(json_object_get(rs, "stanza"));
	time_t t = 0;
	parse_time(json_string_value(json_object_get(rs, "target_time")), &t);
	info_t in;
	if (read_info(repo, stanza, t, &in, err) < 0)
		return -1;
	if (!in.found)
		return na_err_set(err, 422, "invalid_field", "postgres.restore.stanza",
				  "no stanza %s in repository %s", stanza, repo);
	if (strcmp(in.version, PG_MAJOR))
		return na_err_set(
		    err, 422, "invalid_field", "postgres.restore.stanza",
		    "stanza %s holds PostgreSQL %s backups; this host runs %s: a backup "
		    "taken before a major upgrade cannot restore after it",
		    stanza, in.version[0] ? in.version : "(unknown)", PG_MAJOR);
	if (!in.usable) {
		char when[32] = "no backup yet";
		if (in.oldest_stop) {
			time_t o = (time_t)in.oldest_stop;
			struct tm tm;
			gmtime_r(&o, &tm);
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		}
		return na_err_set(
		    err, 422, "invalid_field", "postgres.restore.target_time",
		    "no backup of stanza %s ended before the target time (oldest: %s)", stanza,
		    when);
	}
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

int pgbr_render(const json_t *pg, const char *cluster, const pgbr_paths_t *p, json_t *patroni,
		char **conf, na_err_t *err)
{
	json_t *pitr = json_object_get(pg, "pitr"), *rs = json_object_get(pg, "restore");
	*conf = NULL;
	if (!pitr && !rs)
		return 0;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return na_err_errno(err, errno, "pgbackrest.conf");
	fprintf(f,
		"# Rendered by netagent for this member; edits are overwritten.\n"
		"[global]\nlog-path=%s/log\nlock-path=%s/lock\nspool-path=%s/spool\n"
		"log-level-console=warn\nlog-level-file=info\nstart-fast=y\nprocess-max=2\n"
		"compress-type=lz4\n",
		p->scratch, p->scratch, p->scratch);
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
		parse_time(ts, &t);
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

void pgbr_argv(const char *stanza, const char *command, const char *type, const char *argv[8],
	       char *buf, size_t n)
{
	size_t k = 0;
	int a = snprintf(buf, n, "--config=%s", PGBR_CONF_IN_CT);
	int b = snprintf(buf + a + 1, n - (size_t)a - 1, "--stanza=%s", stanza);
	argv[k++] = "pgbackrest";
	argv[k++] = buf;
	argv[k++] = buf + a + 1;
	if (type) {
		snprintf(buf + a + b + 2, n - (size_t)(a + b + 2), "--type=%s", type);
		argv[k++] = buf + a + b + 2;
	}
	argv[k++] = command;
	argv[k] = NULL;
}
