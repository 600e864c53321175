/* pgBackRest repositories on disk (pg_backrest.h: pgbr_check_fs), on a
 * worker: the pitr repository made below the root, the restore's stanza
 * read from its backup.info. Every path is walked from the root without
 * following a link. */
#include "netagent/util.h"
#include "provision/pg_backrest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Opens the directory p (below the root) component by component, never
 * following a link: a symlink planted in the repository root, or a FIFO
 * or file where a directory should be, cannot send us elsewhere. create:
 * missing components are made (0750, uid:gid). The fd, or -1 with err
 * (422 on field when the path is not a plain directory). */
static int open_dir(const char *p, const char *field, int create, unsigned uid, unsigned gid,
		    na_err_t *err)
{
	const char *root = pgbr_root();
	int fd = open(root, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return na_err_set(err, 422, "invalid_field", field,
				  "the repository root %s does not exist on this host (%s)", root,
				  strerror(errno));
	char comp[256];
	for (const char *c = p + strlen(root) + 1; *c;) {
		size_t l = strcspn(c, "/");
		snprintf(comp, sizeof(comp), "%.*s", (int)l, c);
		if (create && mkdirat(fd, comp, 0750) == 0) {
			if (fchownat(fd, comp, uid, gid, AT_SYMLINK_NOFOLLOW) < 0) {
				int e = errno;
				close(fd);
				return na_err_errno(err, e, "chown %s", p);
			}
		} else if (create && errno != EEXIST) {
			int e = errno;
			close(fd);
			return na_err_errno(err, e, "mkdir %s", p);
		}
		int nfd = openat(fd, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int e = errno;
		close(fd);
		if (nfd < 0)
			return e == ENOENT ? na_err_set(err, 422, "invalid_field", field,
							"%s: %s does not exist", p, comp)
					   : na_err_set(err, 422, "invalid_field", field,
							"%s: %s is not a directory (a symlink, a "
							"FIFO or a file)",
							p, comp);
		fd = nfd;
		c += l;
		if (*c == '/')
			c++;
	}
	return fd;
}

/* backup.info: an INI file whose [backup:current] values are JSON, one per
 * backup label (with its stop time and db-id); [db:history] maps a db-id
 * to the PostgreSQL version that wrote it; [db] is the stanza's current. */
#define INFO_HIST 32
typedef struct info {
	int found;
	char version[16]; /* [db] db-version */
	long long oldest_stop;
	long long best_stop; /* the newest backup ended at or before the target, 0: none */
	int best_db;	     /* its db-id */
	struct {
		int id;
		char version[16];
	} hist[INFO_HIST];
	size_t nhist;
} info_t;

static void json_version(const char *v, char *out, size_t n)
{
	snprintf(out, n, "%.*s", (int)strcspn(v + (*v == '"'), "\""), v + (*v == '"'));
}

static void info_line(info_t *in, const char *sect, char *line, time_t target)
{
	char *eq = strchr(line, '=');
	if (!eq)
		return;
	*eq = 0;
	const char *v = eq + 1;
	if (!strcmp(sect, "[db]") && !strcmp(line, "db-version")) {
		json_version(v, in->version, sizeof(in->version));
	} else if (!strcmp(sect, "[db:history]") && in->nhist < INFO_HIST) {
		json_t *h = json_loads(v, 0, NULL);
		const char *ver = json_string_value(json_object_get(h, "db-version"));
		if (ver) {
			in->hist[in->nhist].id = atoi(line);
			snprintf(in->hist[in->nhist].version, sizeof(in->hist[0].version), "%s",
				 ver);
			in->nhist++;
		}
		json_decref(h);
	} else if (!strcmp(sect, "[backup:current]")) {
		json_t *b = json_loads(v, 0, NULL);
		json_t *stop = json_object_get(b, "backup-timestamp-stop");
		if (json_is_integer(stop)) {
			long long s = json_integer_value(stop);
			if (!in->oldest_stop || s < in->oldest_stop)
				in->oldest_stop = s;
			if (s <= (long long)target && s >= in->best_stop) {
				in->best_stop = s;
				in->best_db = (int)json_integer_value(json_object_get(b, "db-id"));
			}
		}
		json_decref(b);
	}
}

/* The version that wrote the backup chosen for the target: its db-id in
 * the history, or the stanza's current version when it has none. */
static const char *best_version(const info_t *in)
{
	for (size_t i = 0; i < in->nhist; i++)
		if (in->hist[i].id == in->best_db)
			return in->hist[i].version;
	return in->version;
}

static int read_info(const char *repo, const char *stanza, time_t target, info_t *in, na_err_t *err)
{
	memset(in, 0, sizeof(*in));
	int dfd = open_dir(repo, "postgres.restore.repo", 0, 0, 0, err);
	if (dfd < 0)
		return -1;
	char rel[128];
	int fd = -1;
	snprintf(rel, sizeof(rel), "backup/%s", stanza);
	int bfd = openat(dfd, "backup", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int sfd = bfd < 0 ? -1 : openat(bfd, stanza, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	/* pgBackRest writes backup.info and its .copy; either serves. */
	static const char *const names[] = {"backup.info", "backup.info.copy"};
	for (size_t i = 0; sfd >= 0 && fd < 0 && i < NA_ARRAY_SIZE(names); i++)
		fd = openat(sfd, names[i], O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	int e = errno;
	close(dfd);
	if (bfd >= 0)
		close(bfd);
	if (sfd >= 0)
		close(sfd);
	if (fd < 0)
		return e == ENOENT || e == ENOTDIR || e == ELOOP
			   ? 0
			   : na_err_errno(err, e, "open %s/%s/backup.info", repo, rel);
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > (16 << 20)) {
		close(fd);
		return na_err_set(err, 422, "invalid_field", "postgres.restore.stanza",
				  "%s/%s/backup.info is not a pgBackRest backup.info file", repo,
				  rel);
	}
	FILE *f = fdopen(fd, "re");
	if (!f) {
		close(fd);
		return na_err_errno(err, errno, "fdopen %s/%s/backup.info", repo, rel);
	}
	in->found = 1;
	char line[8192], sect[64] = "";
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\r\n")] = 0;
		if (line[0] == '[')
			snprintf(sect, sizeof(sect), "%.63s", line);
		else
			info_line(in, sect, line, target);
	}
	fclose(f);
	return 0;
}

static void fmt_time(long long t, char *buf, size_t n)
{
	time_t o = (time_t)t;
	struct tm tm;
	gmtime_r(&o, &tm);
	strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int pgbr_check_fs(const json_t *pg, unsigned uid, unsigned gid, na_err_t *err)
{
	json_t *pitr = json_object_get(pg, "pitr"), *rs = json_object_get(pg, "restore");
	if (pitr) {
		const char *p = json_string_value(json_object_get(pitr, "repo"));
		int fd = open_dir(p, "postgres.pitr.repo", 1, uid, gid, err);
		if (fd < 0)
			return -1;
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
	}
	if (!rs)
		return 0;
	const char *repo = json_string_value(json_object_get(rs, "repo"));
	const char *stanza = json_string_value(json_object_get(rs, "stanza"));
	time_t t = 0;
	pgbr_parse_time(json_string_value(json_object_get(rs, "target_time")), &t);
	info_t in;
	if (read_info(repo, stanza, t, &in, err) < 0)
		return -1;
	if (!in.found)
		return na_err_set(err, 422, "invalid_field", "postgres.restore.stanza",
				  "no stanza %s in repository %s", stanza, repo);
	char when[32] = "no backup yet";
	if (in.oldest_stop)
		fmt_time(in.oldest_stop, when, sizeof(when));
	if (!in.best_stop)
		return na_err_set(
		    err, 422, "invalid_field", "postgres.restore.target_time",
		    "no backup of stanza %s ended before the target time (oldest: %s)", stanza,
		    when);
	const char *v = best_version(&in);
	if (strcmp(v, PGBR_PG_MAJOR)) {
		char at[32];
		fmt_time(in.best_stop, at, sizeof(at));
		return na_err_set(
		    err, 422, "invalid_field", "postgres.restore.stanza",
		    "the backup of stanza %s that would serve this target (ended %s) was taken by "
		    "PostgreSQL %s and this host runs %s: a backup taken before a major upgrade "
		    "cannot restore after it; choose a target after the first backup of version %s",
		    stanza, at, v[0] ? v : "(unknown)", PGBR_PG_MAJOR, PGBR_PG_MAJOR);
	}
	return 0;
}
