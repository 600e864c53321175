#include "netagent/state.h"
#include "netagent/log.h"
#include "netagent/util.h"
#include "netagent/validate.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Temp files are ".<name>.json.tmp-<pid>-XXXXXX": the leading '.' can never
 * start a valid name, so they cannot be mistaken for objects, and the pid
 * tells a crashed run's leftovers from a put in flight in this process. */
#define TMP_MARK       ".json.tmp-"
#define QUARANTINE_DIR "quarantine"

struct na_state {
	char *dir;
	size_t quarantined;
};

static int fsync_dir(const char *path, na_err_t *err)
{
	cleanup_close int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return na_err_errno(err, errno, "open directory %s", path);
	/* Some filesystems refuse fsync on a directory; the rename is still
	 * as durable as that filesystem can make it. */
	if (fsync(fd) < 0 && errno != EINVAL && errno != EROFS)
		return na_err_errno(err, errno, "fsync directory %s", path);
	return 0;
}

/* mkdir -p with mode 0700; each directory created is made durable in its
 * parent, so an object written below it survives a crash too. */
static int mkdir_p(const char *path, na_err_t *err)
{
	cleanup_free char *p = strdup(path);
	size_t len;

	if (!p)
		return na_err_errno(err, ENOMEM, "mkdir %s", path);
	len = strlen(p);
	while (len > 1 && p[len - 1] == '/')
		p[--len] = 0;
	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s != 0)
			continue;
		char saved = *s;
		*s = 0;
		if (mkdir(p, 0700) == 0) {
			char *slash = strrchr(p, '/');
			const char *parent = ".";
			if (slash == p)
				parent = "/";
			else if (slash) {
				*slash = 0;
				parent = p;
			}
			int r = fsync_dir(parent, err);
			if (slash && slash != p)
				*slash = '/';
			if (r < 0)
				return r;
		} else if (errno != EEXIST) {
			return na_err_errno(err, errno, "mkdir %s", p);
		} else {
			struct stat sb;
			if (stat(p, &sb) < 0)
				return na_err_errno(err, errno, "stat %s", p);
			if (!S_ISDIR(sb.st_mode))
				return na_err_set(err, 500, "system_error", NULL,
						  "%s exists and is not a directory", p);
		}
		*s = saved;
		if (!saved)
			break;
	}
	return 0;
}

/* kind and name end up in paths: every component must be a valid name, so
 * neither "..", '/', nor an absolute path can leave the state dir. */
static int check_kind(const char *kind, na_err_t *err)
{
	const char *p = kind;

	if (!kind || !*kind)
		return na_err_set(err, 422, "invalid_name", "kind", "kind must not be empty");
	while (*p) {
		char comp[64];
		size_t n = strcspn(p, "/");
		if (n == 0 || n >= sizeof(comp))
			return na_err_set(err, 422, "invalid_name", "kind",
					  "kind \"%s\" is not a '/'-separated list of valid names",
					  kind);
		memcpy(comp, p, n);
		comp[n] = 0;
		if (!na_name_valid(comp))
			return na_err_set(err, 422, "invalid_name", "kind",
					  "kind \"%s\" has an invalid component \"%s\"", kind,
					  comp);
		if (p == kind && strcmp(comp, QUARANTINE_DIR) == 0)
			return na_err_set(err, 422, "invalid_name", "kind",
					  "kind \"%s\" is reserved", QUARANTINE_DIR);
		p += n;
		if (*p == '/' && !*++p)
			return na_err_set(err, 422, "invalid_name", "kind",
					  "kind \"%s\" ends with '/'", kind);
	}
	return 0;
}

static int check_kind_name(const char *kind, const char *name, na_err_t *err)
{
	if (check_kind(kind, err) < 0)
		return -1;
	return na_name_check(name, "name", err);
}

int na_state_open(const char *dir, na_state_t **out, na_err_t *err)
{
	na_state_t *st;

	if (!dir || !*dir)
		return na_err_set(err, 500, "system_error", NULL, "state dir not set");
	if (mkdir_p(dir, err) < 0) {
		na_err_prefix(err, "state dir");
		return -1;
	}
	st = calloc(1, sizeof(*st));
	if (!st || !(st->dir = strdup(dir))) {
		free(st);
		return na_err_errno(err, ENOMEM, "state open");
	}
	*out = st;
	return 0;
}

void na_state_close(na_state_t *st)
{
	if (!st)
		return;
	free(st->dir);
	free(st);
}

const char *na_state_dir(const na_state_t *st)
{
	return st->dir;
}

size_t na_state_quarantined(const na_state_t *st)
{
	return st->quarantined;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int na_state_put(na_state_t *st, const char *kind, const char *name, json_t *obj, na_err_t *err)
{
	cleanup_free char *kdir = NULL, *path = NULL, *tmp = NULL, *text = NULL;
	cleanup_close int fd = -1;
	size_t len;

	if (check_kind_name(kind, name, err) < 0)
		return -1;
	/* load() treats anything but an object as corrupt: refuse to write it. */
	if (!json_is_object(obj))
		return na_err_set(err, 500, "internal_error", NULL,
				  "state %s/%s: only JSON objects can be stored", kind, name);
	if (asprintf(&kdir, "%s/%s", st->dir, kind) < 0 ||
	    asprintf(&path, "%s/%s.json", kdir, name) < 0 ||
	    asprintf(&tmp, "%s/.%s" TMP_MARK "%ld-XXXXXX", kdir, name, (long)getpid()) < 0)
		return na_err_errno(err, ENOMEM, "state put");
	text = json_dumps(obj, JSON_SORT_KEYS | JSON_INDENT(2));
	if (!text)
		return na_err_set(err, 500, "internal_error", NULL,
				  "state %s/%s: cannot serialize object", kind, name);
	len = strlen(text);
	if (mkdir_p(kdir, err) < 0) {
		na_err_prefix(err, "state put %s/%s", kind, name);
		return -1;
	}
	/* mkostemp creates with 0600 */
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return na_err_errno(err, errno, "state put: create %s", tmp);
	if (write_all(fd, text, len) < 0 || write_all(fd, "\n", 1) < 0) {
		na_err_errno(err, errno, "state put: write %s", tmp);
		goto fail;
	}
	/* The data must be on disk before the rename publishes it, or a crash
	 * could leave the new name pointing at an empty file. */
	if (fsync(fd) < 0) {
		na_err_errno(err, errno, "state put: fsync %s", tmp);
		goto fail;
	}
	if (close(NA_STEAL_FD(fd)) < 0) {
		na_err_errno(err, errno, "state put: close %s", tmp);
		goto fail;
	}
	if (rename(tmp, path) < 0) {
		na_err_errno(err, errno, "state put: rename to %s", path);
		goto fail;
	}
	/* The rename is only durable once the directory entry is. */
	if (fsync_dir(kdir, err) < 0) {
		na_err_prefix(err, "state put %s/%s", kind, name);
		return -1;
	}
	return 0;
fail:
	unlink(tmp);
	return -1;
}

int na_state_del(na_state_t *st, const char *kind, const char *name, na_err_t *err)
{
	cleanup_free char *kdir = NULL, *path = NULL;

	if (check_kind_name(kind, name, err) < 0)
		return -1;
	if (asprintf(&kdir, "%s/%s", st->dir, kind) < 0 ||
	    asprintf(&path, "%s/%s.json", kdir, name) < 0)
		return na_err_errno(err, ENOMEM, "state del");
	if (unlink(path) < 0) {
		if (errno == ENOENT)
			return 0;
		return na_err_errno(err, errno, "state del: unlink %s", path);
	}
	if (fsync_dir(kdir, err) < 0) {
		na_err_prefix(err, "state del %s/%s", kind, name);
		return -1;
	}
	return 0;
}

int na_state_del_kind(na_state_t *st, const char *kind, na_err_t *err)
{
	cleanup_free char *kdir = NULL;

	if (check_kind(kind, err) < 0)
		return -1;
	if (asprintf(&kdir, "%s/%s", st->dir, kind) < 0)
		return na_err_errno(err, ENOMEM, "state del kind");
	DIR *d = opendir(kdir);
	if (!d)
		return errno == ENOENT ? 0 : na_err_errno(err, errno, "open %s", kdir);
	struct dirent *de;
	while ((de = readdir(d))) {
		/* Only files: a sub-kind below it would be another owner's. */
		if (de->d_type == DT_DIR)
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT) {
			na_err_errno(err, errno, "unlink %s/%s", kdir, de->d_name);
			closedir(d);
			return -1;
		}
	}
	closedir(d);
	if (rmdir(kdir) < 0 && errno != ENOENT && errno != ENOTEMPTY)
		return na_err_errno(err, errno, "rmdir %s", kdir);
	char *slash = strrchr(kdir, '/');
	*slash = 0;
	return fsync_dir(kdir, err);
}

/* Reads one file. Returns 0 with *out, -1 with a system error in err, -2
 * when the file exists but is not a JSON object (reason in why), or -3 when
 * it does not exist. */
static int read_obj(const char *path, json_t **out, char *why, size_t whylen, na_err_t *err)
{
	cleanup_close int fd = -1;
	json_error_t jerr;
	struct stat sb;
	json_t *obj;

	/* O_NOFOLLOW: the store never writes symlinks, so one found here was
	 * planted and is treated as corrupt rather than followed. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT)
			return -3;
		if (errno == ELOOP) {
			snprintf(why, whylen, "is a symbolic link");
			return -2;
		}
		return na_err_errno(err, errno, "open %s", path);
	}
	if (fstat(fd, &sb) < 0)
		return na_err_errno(err, errno, "stat %s", path);
	if (!S_ISREG(sb.st_mode)) {
		snprintf(why, whylen, "not a regular file");
		return -2;
	}
	obj = json_loadfd(fd, JSON_REJECT_DUPLICATES, &jerr);
	if (!obj) {
		snprintf(why, whylen, "%s at line %d column %d", jerr.text, jerr.line, jerr.column);
		return -2;
	}
	if (!json_is_object(obj)) {
		json_decref(obj);
		snprintf(why, whylen, "top-level value is not an object");
		return -2;
	}
	*out = obj;
	return 0;
}

int na_state_get(na_state_t *st, const char *kind, const char *name, json_t **out, na_err_t *err)
{
	cleanup_free char *path = NULL;
	char why[256];
	int r;

	if (check_kind_name(kind, name, err) < 0)
		return -1;
	if (asprintf(&path, "%s/%s/%s.json", st->dir, kind, name) < 0)
		return na_err_errno(err, ENOMEM, "state get");
	r = read_obj(path, out, why, sizeof(why), err);
	if (r == -2)
		return na_err_set(err, 500, "state_corrupt", NULL, "state file %s is corrupt: %s",
				  path, why);
	if (r == -3)
		return na_err_set(err, 404, "not_found", NULL, "%s/%s not found", kind, name);
	if (r < 0) {
		na_err_prefix(err, "state get");
		return -1;
	}
	return 0;
}

/* For the logfmt value inside double quotes. */
static void quote_into(char *dst, size_t n, const char *src)
{
	size_t j = 0;
	for (; *src && j + 3 < n; src++) {
		if (*src == '"' || *src == '\\')
			dst[j++] = '\\';
		dst[j++] = (*src == '\n' || *src == '\r') ? ' ' : *src;
	}
	dst[j] = 0;
}

static int quarantine(na_state_t *st, const char *kind, const char *kdir, const char *fname,
		      const char *why, na_err_t *err)
{
	cleanup_free char *qdir = NULL, *src = NULL, *flat = NULL;
	char dst[4096], qwhy[512];
	long ts = (long)time(NULL);

	if (asprintf(&qdir, "%s/" QUARANTINE_DIR, st->dir) < 0 ||
	    asprintf(&src, "%s/%s", kdir, fname) < 0 || !(flat = strdup(kind)))
		return na_err_errno(err, ENOMEM, "quarantine");
	for (char *p = flat; *p; p++)
		if (*p == '/')
			*p = '-';
	if (mkdir_p(qdir, err) < 0)
		return -1;
	/* Never overwrite an earlier quarantined copy: the same object can go
	 * bad twice within a second. */
	for (int i = 0;; i++) {
		if (i == 0)
			snprintf(dst, sizeof(dst), "%s/%s-%s.%ld", qdir, flat, fname, ts);
		else
			snprintf(dst, sizeof(dst), "%s/%s-%s.%ld.%d", qdir, flat, fname, ts, i);
		if (renameat2(AT_FDCWD, src, AT_FDCWD, dst, RENAME_NOREPLACE) == 0)
			break;
		if (errno == EEXIST && i < 1000)
			continue;
		if (errno == EINVAL || errno == ENOSYS) {
			/* filesystem without RENAME_NOREPLACE */
			if (access(dst, F_OK) == 0 && i < 1000)
				continue;
			if (rename(src, dst) == 0)
				break;
		}
		return na_err_errno(err, errno, "quarantine %s to %s", src, dst);
	}
	if (fsync_dir(qdir, err) < 0 || fsync_dir(kdir, err) < 0)
		return -1;
	st->quarantined++;
	quote_into(qwhy, sizeof(qwhy), why);
	na_error("state file corrupt, quarantined", "file=%s error=\"%s\" quarantine=%s", src, qwhy,
		 dst);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct {
	char **v;
	size_t n, cap;
} strvec_t;

static void strvec_free(strvec_t *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
}

static int strvec_add(strvec_t *sv, const char *s, size_t len)
{
	if (sv->n == sv->cap) {
		size_t cap = sv->cap ? sv->cap * 2 : 16;
		char **v = realloc(sv->v, cap * sizeof(*v));
		if (!v)
			return -1;
		sv->v = v;
		sv->cap = cap;
	}
	if (!(sv->v[sv->n] = strndup(s, len)))
		return -1;
	sv->n++;
	return 0;
}

/* Reads the entries of kdir: object names (files "<valid name>.json",
 * sorted) when dirs is 0, sub-kind names (directories) when dirs is 1.
 * Stale temp files from a crashed run are removed on the way; files that
 * look like objects but have an invalid name go to *bad for quarantine. */
static int scan(const char *kdir, int dirs, strvec_t *names, strvec_t *bad, na_err_t *err)
{
	DIR *d = opendir(kdir);
	struct dirent *de;
	char pidmark[32];

	if (!d) {
		if (errno == ENOENT)
			return 0;
		return na_err_errno(err, errno, "open state dir %s", kdir);
	}
	snprintf(pidmark, sizeof(pidmark), TMP_MARK "%ld-", (long)getpid());
	errno = 0;
	while ((de = readdir(d))) {
		const char *n = de->d_name;
		size_t len = strlen(n);
		struct stat sb;

		if (n[0] == '.') {
			if (!dirs && strstr(n, TMP_MARK) && !strstr(n, pidmark)) {
				if (unlinkat(dirfd(d), n, 0) == 0)
					na_warn("removed leftover state temp file",
						"dir=%s file=%s", kdir, n);
			}
			continue;
		}
		if (fstatat(dirfd(d), n, &sb, AT_SYMLINK_NOFOLLOW) < 0)
			continue; /* vanished */
		if (dirs) {
			if (S_ISDIR(sb.st_mode) && na_name_valid(n) &&
			    strvec_add(names, n, len) < 0)
				goto nomem;
			continue;
		}
		if (len <= 5 || strcmp(n + len - 5, ".json") != 0 || S_ISDIR(sb.st_mode))
			continue;
		char stem[64];
		int valid = len - 5 < sizeof(stem);
		if (valid) {
			memcpy(stem, n, len - 5);
			stem[len - 5] = 0;
			valid = na_name_valid(stem);
		}
		if (strvec_add(valid ? names : bad, valid ? stem : n, valid ? len - 5 : len) < 0)
			goto nomem;
	}
	if (errno) {
		int e = errno;
		closedir(d);
		return na_err_errno(err, e, "read state dir %s", kdir);
	}
	closedir(d);
	if (names->n > 1)
		qsort(names->v, names->n, sizeof(char *), cmp_str);
	return 0;
nomem:
	closedir(d);
	return na_err_errno(err, ENOMEM, "read state dir %s", kdir);
}

int na_state_load(na_state_t *st, const char *kind, na_state_load_fn fn, void *ud, na_err_t *err)
{
	cleanup_free char *kdir = NULL;
	strvec_t names = {0}, bad = {0};
	int ret = -1;

	if (check_kind(kind, err) < 0)
		return -1;
	if (asprintf(&kdir, "%s/%s", st->dir, kind) < 0)
		return na_err_errno(err, ENOMEM, "state load");
	if (scan(kdir, 0, &names, &bad, err) < 0)
		goto out;
	for (size_t i = 0; i < bad.n; i++)
		if (quarantine(st, kind, kdir, bad.v[i], "invalid object name", err) < 0)
			goto out;
	for (size_t i = 0; i < names.n; i++) {
		cleanup_free char *path = NULL, *fname = NULL;
		cleanup_json json_t *obj = NULL;
		char why[256];
		int r;

		if (asprintf(&fname, "%s.json", names.v[i]) < 0 ||
		    asprintf(&path, "%s/%s", kdir, fname) < 0) {
			na_err_errno(err, ENOMEM, "state load");
			goto out;
		}
		r = read_obj(path, &obj, why, sizeof(why), err);
		if (r == -2) {
			if (quarantine(st, kind, kdir, fname, why, err) < 0)
				goto out;
			continue;
		}
		if (r == -3)
			continue; /* deleted between readdir and open */
		if (r < 0) {
			na_err_prefix(err, "state load %s", kind);
			goto out;
		}
		if (fn(names.v[i], obj, ud, err) < 0) {
			na_err_prefix(err, "state load %s/%s", kind, names.v[i]);
			goto out;
		}
	}
	ret = 0;
out:
	strvec_free(&names);
	strvec_free(&bad);
	return ret;
}

int na_state_list_kinds(na_state_t *st, const char *kind, na_state_load_fn fn, void *ud,
			na_err_t *err)
{
	cleanup_free char *kdir = NULL;
	strvec_t names = {0};
	int ret = -1;

	if (check_kind(kind, err) < 0)
		return -1;
	if (asprintf(&kdir, "%s/%s", st->dir, kind) < 0)
		return na_err_errno(err, ENOMEM, "state list");
	if (scan(kdir, 1, &names, NULL, err) < 0)
		goto out;
	for (size_t i = 0; i < names.n; i++) {
		if (fn(names.v[i], NULL, ud, err) < 0) {
			na_err_prefix(err, "state list %s/%s", kind, names.v[i]);
			goto out;
		}
	}
	ret = 0;
out:
	strvec_free(&names);
	return ret;
}
