/* State store, read side: one object, a whole kind in name order, the
 * sub-kinds of a kind; what cannot be an object we wrote is quarantined.
 * Every file is reached through the symlink-free kind directory fd. */
#include "netagent/state_int.h"
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

static const char *ftype(mode_t m)
{
	if (S_ISLNK(m))
		return "a symbolic link";
	if (S_ISDIR(m))
		return "a directory";
	if (S_ISFIFO(m))
		return "a FIFO";
	if (S_ISCHR(m) || S_ISBLK(m))
		return "a device";
	if (S_ISSOCK(m))
		return "a socket";
	return "not a regular file";
}

/* Reads kfd/fname. Returns 0 with *out, -1 with a system error in err, -2
 * when the entry exists but is not a JSON object in a regular file (reason
 * in why), or -3 when it does not exist. */
static int read_obj(int kfd, const char *fname, json_t **out, char *why, size_t whylen,
		    na_err_t *err)
{
	cleanup_close int fd = -1;
	json_error_t jerr;
	struct stat sb;
	json_t *obj;

	/* lstat first: opening a device node can have side effects, and the
	 * store never writes anything but regular files. */
	if (fstatat(kfd, fname, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return -3;
		return na_err_errno(err, errno, "stat %s", fname);
	}
	if (!S_ISREG(sb.st_mode)) {
		snprintf(why, whylen, "is %s", ftype(sb.st_mode));
		return -2;
	}
	/* The entry may have been swapped since: O_NOFOLLOW refuses a symlink,
	 * O_NONBLOCK keeps a FIFO from blocking, fstat checks again. */
	fd = openat(kfd, fname, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOENT)
			return -3;
		if (errno == ELOOP) {
			snprintf(why, whylen, "is a symbolic link");
			return -2;
		}
		return na_err_errno(err, errno, "open %s", fname);
	}
	if (fstat(fd, &sb) < 0)
		return na_err_errno(err, errno, "stat %s", fname);
	if (!S_ISREG(sb.st_mode)) {
		snprintf(why, whylen, "is %s", ftype(sb.st_mode));
		return -2;
	}
	if ((unsigned long long)sb.st_size > NA_STATE_MAX_FILE) {
		snprintf(why, whylen, "is %lld bytes, more than any object", (long long)sb.st_size);
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
	cleanup_close int kfd = -1;
	char why[256], fname[96];
	int r;

	if (na_state_check_kind(kind, err) < 0 || na_name_check(name, "name", err) < 0)
		return -1;
	kfd = na_state_open_kind(st, kind, 0, err);
	if (kfd == -3)
		return na_err_set(err, 404, "not_found", NULL, "%s/%s not found", kind, name);
	if (kfd < 0)
		return -1;
	snprintf(fname, sizeof(fname), "%s.json", name);
	r = read_obj(kfd, fname, out, why, sizeof(why), err);
	if (r == -2)
		return na_err_set(err, 500, "state_corrupt", NULL,
				  "state file %s/%s/%s is corrupt: %s", st->dir, kind, fname, why);
	if (r == -3)
		return na_err_set(err, 404, "not_found", NULL, "%s/%s not found", kind, name);
	if (r < 0) {
		na_err_prefix(err, "state get %s", kind);
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

static int quarantine(na_state_t *st, const char *kind, int kfd, const char *fname,
		      const char *why, na_err_t *err)
{
	cleanup_close int qfd = -1;
	char dst[400], flat[160], qwhy[512], qfname[128];
	long ts = (long)time(NULL);

	/* The reserved kind is opened directly (check_kind refuses it). */
	qfd = na_state_open_kind(st, NA_STATE_QUARANTINE, 1, err);
	if (qfd < 0)
		return -1;
	snprintf(flat, sizeof(flat), "%s", kind);
	for (char *p = flat; *p; p++)
		if (*p == '/')
			*p = '-';
	quote_into(qfname, sizeof(qfname), fname);
	/* Never overwrite an earlier quarantined copy: the same object can go
	 * bad twice within a second, or two threads quarantine at once. */
	for (int i = 0;; i++) {
		if (i == 0)
			snprintf(dst, sizeof(dst), "%s-%s.%ld", flat, fname, ts);
		else
			snprintf(dst, sizeof(dst), "%s-%s.%ld.%d", flat, fname, ts, i);
		if (renameat2(kfd, fname, qfd, dst, RENAME_NOREPLACE) == 0)
			break;
		if (errno == EEXIST && i < 1000)
			continue;
		if (errno == EINVAL || errno == ENOSYS) {
			/* filesystem without RENAME_NOREPLACE */
			if (faccessat(qfd, dst, F_OK, AT_SYMLINK_NOFOLLOW) == 0 && i < 1000)
				continue;
			if (renameat(kfd, fname, qfd, dst) == 0)
				break;
		}
		if (errno == ENOENT)
			return 0; /* removed meanwhile: nothing left to keep aside */
		return na_err_errno(err, errno, "quarantine %s/%s/%s", st->dir, kind, qfname);
	}
	if (na_state_fsync_dir(qfd, NA_STATE_QUARANTINE, err) < 0 ||
	    na_state_fsync_dir(kfd, kind, err) < 0)
		return -1;
	atomic_fetch_add(&st->quarantined, 1);
	quote_into(qwhy, sizeof(qwhy), why);
	na_error("state file corrupt, quarantined", "file=%s/%s/%s error=\"%s\" quarantine=%s/%s/%s",
		 st->dir, kind, qfname, qwhy, st->dir, NA_STATE_QUARANTINE, dst);
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

/* Reads the entries of kfd: object names (entries "<valid name>.json",
 * whatever their type: load decides, sorted) when dirs is 0, sub-kind names
 * (real directories) when dirs is 1. Temp files of other runs are removed on
 * the way; "*.json" entries with an invalid name go to *bad. */
static int scan(na_state_t *st, int kfd, const char *kind, int dirs, strvec_t *names,
		strvec_t *bad, na_err_t *err)
{
	int dfd = fcntl(kfd, F_DUPFD_CLOEXEC, 0);
	DIR *d = dfd < 0 ? NULL : fdopendir(dfd);
	struct dirent *de;

	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return na_err_errno(err, errno, "open state dir %s/%s", st->dir, kind);
	}
	errno = 0;
	while ((de = readdir(d))) {
		const char *n = de->d_name;
		size_t len = strlen(n);
		struct stat sb;

		if (n[0] == '.') {
			if (!dirs && strstr(n, NA_STATE_TMP_MARK) && !strstr(n, st->own_mark) &&
			    unlinkat(kfd, n, 0) == 0)
				na_warn("removed leftover state temp file", "dir=%s/%s file=%s",
					st->dir, kind, n);
			errno = 0;
			continue;
		}
		if (dirs) {
			if (fstatat(kfd, n, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(sb.st_mode) &&
			    na_name_valid(n) && strvec_add(names, n, len) < 0)
				goto nomem;
			errno = 0;
			continue;
		}
		if (len <= 5 || strcmp(n + len - 5, ".json") != 0)
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
		errno = 0;
	}
	if (errno) {
		int e = errno;
		closedir(d);
		return na_err_errno(err, e, "read state dir %s/%s", st->dir, kind);
	}
	closedir(d);
	if (names->n > 1)
		qsort(names->v, names->n, sizeof(char *), cmp_str);
	return 0;
nomem:
	closedir(d);
	return na_err_errno(err, ENOMEM, "read state dir %s/%s", st->dir, kind);
}

int na_state_load(na_state_t *st, const char *kind, na_state_load_fn fn, void *ud, na_err_t *err)
{
	cleanup_close int kfd = -1;
	strvec_t names = {0}, bad = {0};
	int ret = -1;

	if (na_state_check_kind(kind, err) < 0)
		return -1;
	kfd = na_state_open_kind(st, kind, 0, err);
	if (kfd == -3)
		return 0;
	if (kfd < 0)
		return -1;
	if (scan(st, kfd, kind, 0, &names, &bad, err) < 0)
		goto out;
	for (size_t i = 0; i < bad.n; i++)
		if (quarantine(st, kind, kfd, bad.v[i], "invalid object name", err) < 0)
			goto out;
	for (size_t i = 0; i < names.n; i++) {
		cleanup_json json_t *obj = NULL;
		char why[256], fname[96];
		int r;

		snprintf(fname, sizeof(fname), "%s.json", names.v[i]);
		r = read_obj(kfd, fname, &obj, why, sizeof(why), err);
		if (r == -2) {
			if (quarantine(st, kind, kfd, fname, why, err) < 0)
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
	cleanup_close int kfd = -1;
	strvec_t names = {0};
	int ret = -1;

	if (na_state_check_kind(kind, err) < 0)
		return -1;
	kfd = na_state_open_kind(st, kind, 0, err);
	if (kfd == -3)
		return 0;
	if (kfd < 0)
		return -1;
	if (scan(st, kfd, kind, 1, &names, NULL, err) < 0)
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
