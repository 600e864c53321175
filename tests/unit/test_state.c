#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "netagent/state.h"
#include "netagent/state_int.h" /* white box: the temp-file mark of this process */
#include "netagent/util.h"

typedef struct {
	char root[64]; /* mkdtemp dir, removed after */
	char dir[128]; /* state dir inside it */
	na_state_t *st;
} fx_t;

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static int setup(void **state)
{
	fx_t *fx = calloc(1, sizeof(*fx));
	na_err_t e = NA_ERR_INIT;

	snprintf(fx->root, sizeof(fx->root), "/tmp/na-test-state-XXXXXX");
	if (!mkdtemp(fx->root))
		return -1;
	/* nested and absent: open must create it */
	snprintf(fx->dir, sizeof(fx->dir), "%s/var/state", fx->root);
	if (na_state_open(fx->dir, &fx->st, &e) < 0) {
		fprintf(stderr, "open: %s\n", e.msg);
		return -1;
	}
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	fx_t *fx = *state;
	na_state_close(fx->st);
	nftw(fx->root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

static void write_file(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
}

static char *read_text(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	char *buf = calloc(1, 65536);
	size_t n = fread(buf, 1, 65535, f);
	buf[n] = 0;
	fclose(f);
	return buf;
}

static int count_entries(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;
	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    strncmp(de->d_name, prefix, strlen(prefix)) == 0)
			n++;
	closedir(d);
	return n;
}

/* Returns the first entry of dir starting with prefix (malloc'd), or NULL. */
static char *find_entry(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char *r = NULL;
	if (!d)
		return NULL;
	while ((de = readdir(d)))
		if (!r && strncmp(de->d_name, prefix, strlen(prefix)) == 0)
			r = strdup(de->d_name);
	closedir(d);
	return r;
}

typedef struct {
	char names[16][64];
	json_t *objs[16];
	int n;
	int fail_at;
} seen_t;

static int collect(const char *name, json_t *obj, void *ud, na_err_t *err)
{
	seen_t *s = ud;
	if (s->fail_at && s->n + 1 == s->fail_at)
		return na_err_set(err, 409, "conflict", NULL, "callback refused %s", name);
	assert_true(s->n < 16);
	snprintf(s->names[s->n], sizeof(s->names[0]), "%s", name);
	s->objs[s->n] = obj ? json_incref(obj) : NULL;
	s->n++;
	return 0;
}

static void seen_free(seen_t *s)
{
	for (int i = 0; i < s->n; i++)
		json_decref(s->objs[i]);
}

static void test_open_and_round_trip(void **state)
{
	fx_t *fx = *state;
	na_err_t e = NA_ERR_INIT;
	char path[256];
	struct stat sb;
	json_t *got = NULL;

	assert_string_equal(na_state_dir(fx->st), fx->dir);
	assert_int_equal(stat(fx->dir, &sb), 0);
	assert_true(S_ISDIR(sb.st_mode));
	assert_int_equal(sb.st_mode & 0777, 0700);

	json_t *o =
	    json_pack("{s:i, s:s, s:{s:b}}", "vni", 42, "subnet", "198.18.1.0/24", "z", "a", 1);
	assert_int_equal(na_state_put(fx->st, "networks", "n1", o, &e), 0);
	assert_int_equal(na_state_get(fx->st, "networks", "n1", &got, &e), 0);
	assert_true(json_equal(o, got));
	json_decref(got);

	snprintf(path, sizeof(path), "%s/networks/n1.json", fx->dir);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	char *text = read_text(path);
	assert_non_null(text);
	/* sorted keys, 2-space indent */
	assert_string_equal(text, "{\n  \"subnet\": \"198.18.1.0/24\",\n  \"vni\": 42,\n"
				  "  \"z\": {\n    \"a\": true\n  }\n}\n");
	free(text);
	snprintf(path, sizeof(path), "%s/networks", fx->dir);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0700);
	/* no temp file left behind */
	assert_int_equal(count_entries(path, "."), 0);
	assert_int_equal(count_entries(path, ""), 1);

	/* nested kinds */
	assert_int_equal(na_state_put(fx->st, "endpoints/n1", "e1", o, &e), 0);
	assert_int_equal(na_state_get(fx->st, "endpoints/n1", "e1", &got, &e), 0);
	assert_true(json_equal(o, got));
	json_decref(got);

	/* only objects are stored */
	json_t *arr = json_array();
	assert_int_equal(na_state_put(fx->st, "networks", "n2", arr, &e), -1);
	assert_int_equal(e.status, 500);
	json_decref(arr);
	na_err_clear(&e);
	assert_int_equal(na_state_get(fx->st, "networks", "n2", &got, &e), -1);
	assert_int_equal(e.status, 404);
	json_decref(o);
}

static void test_overwrite_and_delete(void **state)
{
	fx_t *fx = *state;
	na_err_t e = NA_ERR_INIT;
	json_t *got = NULL;
	char path[256];

	json_t *a = json_pack("{s:i}", "v", 1), *b = json_pack("{s:i, s:s}", "v", 2, "x", "y");
	assert_int_equal(na_state_put(fx->st, "vips", "v1", a, &e), 0);
	assert_int_equal(na_state_put(fx->st, "vips", "v1", b, &e), 0);
	assert_int_equal(na_state_get(fx->st, "vips", "v1", &got, &e), 0);
	assert_true(json_equal(got, b));
	json_decref(got);
	snprintf(path, sizeof(path), "%s/vips", fx->dir);
	assert_int_equal(count_entries(path, ""), 1);

	assert_int_equal(na_state_del(fx->st, "vips", "v1", &e), 0);
	assert_int_equal(na_state_get(fx->st, "vips", "v1", &got, &e), -1);
	assert_int_equal(e.status, 404);
	assert_string_equal(e.code, "not_found");
	/* absent object, absent kind */
	na_err_clear(&e);
	assert_int_equal(na_state_del(fx->st, "vips", "v1", &e), 0);
	assert_int_equal(na_state_del(fx->st, "nothing/here", "v1", &e), 0);
	assert_int_equal(e.status, 0);
	json_decref(a);
	json_decref(b);
}

static void test_del_kind(void **state)
{
	fx_t *fx = *state;
	na_err_t e = NA_ERR_INIT;
	char path[256];
	struct stat st;

	json_t *a = json_pack("{s:i}", "v", 1);
	assert_int_equal(na_state_put(fx->st, "endpoints/n1", "e1", a, &e), 0);
	assert_int_equal(na_state_put(fx->st, "endpoints/n1", "e2", a, &e), 0);
	assert_int_equal(na_state_put(fx->st, "endpoints/n2", "e1", a, &e), 0);
	assert_int_equal(na_state_del_kind(fx->st, "endpoints/n1", &e), 0);
	snprintf(path, sizeof(path), "%s/endpoints/n1", fx->dir);
	assert_int_equal(stat(path, &st), -1); /* files and directory gone */
	snprintf(path, sizeof(path), "%s/endpoints/n2/e1.json", fx->dir);
	assert_int_equal(stat(path, &st), 0); /* the neighbour kind is untouched */
	/* absent kind: fine; invalid kind: refused, nothing removed */
	assert_int_equal(na_state_del_kind(fx->st, "endpoints/n1", &e), 0);
	assert_int_equal(na_state_del_kind(fx->st, "endpoints/..", &e), -1);
	assert_int_equal(e.status, 422);
	assert_int_equal(stat(path, &st), 0);
	json_decref(a);
}

static void test_load_order_and_missing(void **state)
{
	fx_t *fx = *state;
	na_err_t e = NA_ERR_INIT;
	seen_t s = {0};
	const char *names[] = {"c", "a-2", "b", "a", "a-10"};

	for (size_t i = 0; i < NA_ARRAY_SIZE(names); i++) {
		json_t *o = json_pack("{s:s}", "name", names[i]);
		assert_int_equal(na_state_put(fx->st, "networks", names[i], o, &e), 0);
		json_decref(o);
	}
	assert_int_equal(na_state_load(fx->st, "networks", collect, &s, &e), 0);
	assert_int_equal(s.n, 5);
	const char *want[] = {"a", "a-10", "a-2", "b", "c"};
	for (int i = 0; i < 5; i++) {
		assert_string_equal(s.names[i], want[i]);
		assert_string_equal(json_string_value(json_object_get(s.objs[i], "name")), want[i]);
	}
	seen_free(&s);

	/* missing kind dir is empty, not an error */
	memset(&s, 0, sizeof(s));
	assert_int_equal(na_state_load(fx->st, "containers", collect, &s, &e), 0);
	assert_int_equal(s.n, 0);

	/* callback failure stops the load and is returned */
	memset(&s, 0, sizeof(s));
	s.fail_at = 3;
	assert_int_equal(na_state_load(fx->st, "networks", collect, &s, &e), -1);
	assert_int_equal(s.n, 2);
	assert_int_equal(e.status, 409);
	assert_string_equal(e.code, "conflict");
	assert_non_null(strstr(e.msg, "callback refused a-2"));
	seen_free(&s);
	assert_int_equal(na_state_quarantined(fx->st), 0);
}

/* Runs a load with stderr captured into *log (malloc'd). */
static int load_capture(fx_t *fx, const char *kind, seen_t *s, char **log, na_err_t *e)
{
	char lp[128];
	snprintf(lp, sizeof(lp), "%s/stderr.log", fx->root);
	fflush(stderr);
	int saved = dup(2);
	int fd = open(lp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(saved >= 0 && fd >= 0);
	dup2(fd, 2);
	close(fd);
	int r = na_state_load(fx->st, kind, collect, s, e);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	*log = read_text(lp);
	unlink(lp);
	return r;
}

static void test_corrupt_quarantined(void **state)
{
	fx_t *fx = *state;
	na_err_t e = NA_ERR_INIT;
	seen_t s = {0};
	char path[256], qdir[256], *log = NULL;
	const char garbage[] = "{\"vni\": 1, oops";

	json_t *o = json_pack("{s:i}", "vni", 7);
	assert_int_equal(na_state_put(fx->st, "networks", "good1", o, &e), 0);
	assert_int_equal(na_state_put(fx->st, "networks", "good2", o, &e), 0);
	snprintf(path, sizeof(path), "%s/networks/bad.json", fx->dir);
	write_file(path, garbage, strlen(garbage));

	/* get reports the parse error without moving anything */
	assert_int_equal(na_state_get(fx->st, "networks", "bad", &(json_t *){NULL}, &e), -1);
	assert_int_equal(e.status, 500);
	assert_string_equal(e.code, "state_corrupt");
	assert_int_equal(access(path, F_OK), 0);

	na_err_clear(&e);
	assert_int_equal(load_capture(fx, "networks", &s, &log, &e), 0);
	assert_int_equal(s.n, 2);
	assert_string_equal(s.names[0], "good1");
	assert_string_equal(s.names[1], "good2");
	assert_int_equal(na_state_quarantined(fx->st), 1);
	assert_non_null(log);
	assert_non_null(strstr(log, "level=error"));
	assert_non_null(strstr(log, "msg=\"state file corrupt, quarantined\""));
	assert_non_null(strstr(log, "file="));
	assert_non_null(strstr(log, "bad.json"));
	assert_non_null(strstr(log, "error=\""));
	free(log);
	seen_free(&s);

	/* gone from the kind dir, present (byte for byte) in quarantine */
	assert_int_equal(access(path, F_OK), -1);
	snprintf(qdir, sizeof(qdir), "%s/quarantine", fx->dir);
	char *q = find_entry(qdir, "networks-bad.json.");
	assert_non_null(q);
	char *end;
	long ts = strtol(q + strlen("networks-bad.json."), &end, 10);
	assert_true(ts > 1600000000L);
	assert_int_equal(*end, 0);
	char qpath[512];
	snprintf(qpath, sizeof(qpath), "%s/%s", qdir, q);
	char *content = read_text(qpath);
	assert_string_equal(content, garbage);
	free(content);
	free(q);

	/* the same object going bad again in the same second keeps both copies */
	write_file(path, "x", 1);
	memset(&s, 0, sizeof(s));
	assert_int_equal(load_capture(fx, "networks", &s, &log, &e), 0);
	free(log);
	seen_free(&s);
	assert_int_equal(na_state_quarantined(fx->st), 2);
	assert_int_equal(count_entries(qdir, "networks-bad.json."), 2);

	/* a second load finds nothing new */
	memset(&s, 0, sizeof(s));
	assert_int_equal(na_state_load(fx->st, "networks", collect, &s, &e), 0);
	assert_int_equal(s.n, 2);
	seen_free(&s);
	assert_int_equal(na_state_quarantined(fx->st), 2);
	json_decref(o);
}

static void test_truncated_and_non_object(void **state)
{
	fx_t *fx = *state;
	na_err_t e = NA_ERR_INIT;
	seen_t s = {0};
	char path[256], qdir[256], *log = NULL;

	json_t *o =
	    json_pack("{s:i, s:s, s:[i,i]}", "vni", 9, "subnet", "198.18.9.0/24", "l", 1, 2);
	assert_int_equal(na_state_put(fx->st, "endpoints/n9", "ok", o, &e), 0);
	assert_int_equal(na_state_put(fx->st, "endpoints/n9", "trunc", o, &e), 0);
	snprintf(path, sizeof(path), "%s/endpoints/n9/trunc.json", fx->dir);
	char *full = read_text(path);
	write_file(path, full, strlen(full) / 2);
	free(full);
	snprintf(path, sizeof(path), "%s/endpoints/n9/arr.json", fx->dir);
	write_file(path, "[1, 2]\n", 7);
	snprintf(path, sizeof(path), "%s/endpoints/n9/empty.json", fx->dir);
	write_file(path, "", 0);
	snprintf(path, sizeof(path), "%s/endpoints/n9/dup.json", fx->dir);
	write_file(path, "{\"a\":1,\"a\":2}", 13);

	assert_int_equal(load_capture(fx, "endpoints/n9", &s, &log, &e), 0);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.names[0], "ok");
	assert_int_equal(na_state_quarantined(fx->st), 4);
	free(log);
	seen_free(&s);

	snprintf(qdir, sizeof(qdir), "%s/quarantine", fx->dir);
	assert_int_equal(count_entries(qdir, "endpoints-n9-trunc.json."), 1);
	assert_int_equal(count_entries(qdir, "endpoints-n9-arr.json."), 1);
	assert_int_equal(count_entries(qdir, "endpoints-n9-empty.json."), 1);
	assert_int_equal(count_entries(qdir, "endpoints-n9-dup.json."), 1);
	snprintf(path, sizeof(path), "%s/endpoints/n9", fx->dir);
	assert_int_equal(count_entries(path, ""), 1);
	json_decref(o);
}

static void test_temp_leftovers(void **state)
{
	fx_t *fx = *state;
	na_err_t e = NA_ERR_INIT;
	seen_t s = {0};
	char path[512], kdir[256];

	json_t *o = json_pack("{s:i}", "v", 1);
	assert_int_equal(na_state_put(fx->st, "vips", "v1", o, &e), 0);
	snprintf(kdir, sizeof(kdir), "%s/vips", fx->dir);
	/* a crashed writer (other pid) left a half-written temp file */
	char same_pid[512];
	/* the same pid with another token: a previous run that had our pid
	 * (pid 1 in a container) is a crashed run too */
	snprintf(same_pid, sizeof(same_pid), "%s/.v4.json.tmp-%ld-deadbeef-AbC", kdir,
		 (long)getpid());
	write_file(same_pid, "{", 1);
	snprintf(path, sizeof(path), "%s/.v2.json.tmp-999999999-AbC123", kdir);
	write_file(path, "{\"v\":", 5);
	/* one of this process's own, i.e. a put in flight, is left alone */
	char own[512];
	snprintf(own, sizeof(own), "%s/.v3%sXyZ789", kdir, fx->st->own_mark);
	write_file(own, "{}", 2);
	/* unrelated files are ignored, not quarantined */
	char other[512];
	snprintf(other, sizeof(other), "%s/README.txt", kdir);
	write_file(other, "hello", 5);

	assert_int_equal(na_state_load(fx->st, "vips", collect, &s, &e), 0);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.names[0], "v1");
	seen_free(&s);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(access(same_pid, F_OK), -1);
	assert_int_equal(access(own, F_OK), 0);
	assert_int_equal(access(other, F_OK), 0);
	assert_int_equal(na_state_quarantined(fx->st), 0);
	json_decref(o);
}

static void test_list_kinds(void **state)
{
	fx_t *fx = *state;
	na_err_t e = NA_ERR_INIT;
	seen_t s = {0};
	char path[256];

	json_t *o = json_object();
	assert_int_equal(na_state_put(fx->st, "endpoints/n2", "e", o, &e), 0);
	assert_int_equal(na_state_put(fx->st, "endpoints/n1", "e", o, &e), 0);
	assert_int_equal(na_state_put(fx->st, "endpoints/n10", "e", o, &e), 0);
	/* files and invalid directory names are not kinds */
	snprintf(path, sizeof(path), "%s/endpoints/stray.json", fx->dir);
	write_file(path, "{}", 2);
	snprintf(path, sizeof(path), "%s/endpoints/Bad", fx->dir);
	assert_int_equal(mkdir(path, 0700), 0);

	assert_int_equal(na_state_list_kinds(fx->st, "endpoints", collect, &s, &e), 0);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.names[0], "n1");
	assert_string_equal(s.names[1], "n10");
	assert_string_equal(s.names[2], "n2");
	assert_null(s.objs[0]);

	memset(&s, 0, sizeof(s));
	assert_int_equal(na_state_list_kinds(fx->st, "nothing", collect, &s, &e), 0);
	assert_int_equal(s.n, 0);
	json_decref(o);
}

static void test_invalid_kind_name(void **state)
{
	fx_t *fx = *state;
	na_err_t e = NA_ERR_INIT;
	seen_t s = {0};
	json_t *o = json_object(), *got = NULL;

	const char *kinds[] = {"",	 "/",	 "/etc",       "..",	    "../x",
			       "a/../b", "a//b", "a/",	       "Networks",  "a b",
			       "a/.",	 ".",	 "quarantine", "net.works", "-x"};
	for (size_t i = 0; i < NA_ARRAY_SIZE(kinds); i++) {
		na_err_clear(&e);
		if (na_state_put(fx->st, kinds[i], "ok", o, &e) != -1)
			fail_msg("put accepted kind \"%s\"", kinds[i]);
		assert_int_equal(e.status, 422);
		assert_string_equal(e.code, "invalid_name");
		na_err_clear(&e);
		assert_int_equal(na_state_get(fx->st, kinds[i], "ok", &got, &e), -1);
		assert_int_equal(e.status, 422);
		na_err_clear(&e);
		assert_int_equal(na_state_del(fx->st, kinds[i], "ok", &e), -1);
		assert_int_equal(e.status, 422);
		na_err_clear(&e);
		assert_int_equal(na_state_load(fx->st, kinds[i], collect, &s, &e), -1);
		assert_int_equal(e.status, 422);
		na_err_clear(&e);
		assert_int_equal(na_state_list_kinds(fx->st, kinds[i], collect, &s, &e), -1);
		assert_int_equal(e.status, 422);
	}
	assert_int_equal(na_state_put(fx->st, NULL, "ok", o, &e), -1);
	assert_int_equal(e.status, 422);

	const char *names[] = {"", "..", ".", "../../x", "a/b", "UP", "-a", ".hidden", "a.json"};
	for (size_t i = 0; i < NA_ARRAY_SIZE(names); i++) {
		na_err_clear(&e);
		if (na_state_put(fx->st, "networks", names[i], o, &e) != -1)
			fail_msg("put accepted name \"%s\"", names[i]);
		assert_int_equal(e.status, 422);
		assert_string_equal(e.code, "invalid_name");
		assert_string_equal(e.field, "name");
		na_err_clear(&e);
		assert_int_equal(na_state_get(fx->st, "networks", names[i], &got, &e), -1);
		assert_int_equal(e.status, 422);
		na_err_clear(&e);
		assert_int_equal(na_state_del(fx->st, "networks", names[i], &e), -1);
		assert_int_equal(e.status, 422);
	}
	assert_int_equal(na_state_put(fx->st, "networks", NULL, o, &e), -1);
	/* nothing at all was written anywhere */
	assert_int_equal(count_entries(fx->dir, ""), 0);
	assert_int_equal(count_entries(fx->root, ""), 1);
	assert_int_equal(s.n, 0);
	json_decref(o);
}

static void test_invalid_file_names_quarantined(void **state)
{
	fx_t *fx = *state;
	na_err_t e = NA_ERR_INIT;
	seen_t s = {0};
	char path[256], qdir[256], *log = NULL;

	json_t *o = json_object();
	assert_int_equal(na_state_put(fx->st, "networks", "n1", o, &e), 0);
	/* parses fine but its name could never have been written by put */
	snprintf(path, sizeof(path), "%s/networks/Upper.json", fx->dir);
	write_file(path, "{}", 2);
	assert_int_equal(load_capture(fx, "networks", &s, &log, &e), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(na_state_quarantined(fx->st), 1);
	snprintf(qdir, sizeof(qdir), "%s/quarantine", fx->dir);
	assert_int_equal(count_entries(qdir, "networks-Upper.json."), 1);
	free(log);
	seen_free(&s);
	json_decref(o);
}


/* ---- batches ------------------------------------------------------------ */

#define NBATCH 300 /* more than one sync group */

static void make_batch(char names[][16], const char **np, json_t **objs, size_t n, int gen)
{
	for (size_t i = 0; i < n; i++) {
		snprintf(names[i], 16, "o%u", (unsigned)(i % 100000));
		np[i] = names[i];
		objs[i] = json_pack("{s:i, s:i}", "i", (int)i, "gen", gen);
	}
}

static void free_batch(json_t **objs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		json_decref(objs[i]);
}

static void test_put_many_del_many(void **state)
{
	fx_t *fx = *state;
	na_err_t e = NA_ERR_INIT;
	static char names[NBATCH][16];
	const char *np[NBATCH];
	json_t *objs[NBATCH], *got = NULL;
	char kdir[256];

	make_batch(names, np, objs, NBATCH, 1);
	assert_int_equal(na_state_put_many(fx->st, "remotes/n1", np, objs, NBATCH, &e), 0);
	snprintf(kdir, sizeof(kdir), "%s/remotes/n1", fx->dir);
	assert_int_equal(count_entries(kdir, ""), NBATCH);
	assert_int_equal(count_entries(kdir, "."), 0); /* no temp file left */
	for (size_t i = 0; i < NBATCH; i += 37) {
		assert_int_equal(na_state_get(fx->st, "remotes/n1", np[i], &got, &e), 0);
		assert_true(json_equal(got, objs[i]));
		json_decref(got);
	}
	free_batch(objs, NBATCH);

	/* overwrite half, with a repeated name: the last one wins */
	make_batch(names, np, objs, NBATCH / 2, 2);
	np[3] = "o0";
	assert_int_equal(na_state_put_many(fx->st, "remotes/n1", np, objs, NBATCH / 2, &e), 0);
	assert_int_equal(na_state_get(fx->st, "remotes/n1", "o0", &got, &e), 0);
	assert_true(json_equal(got, objs[3]));
	json_decref(got);
	assert_int_equal(na_state_get(fx->st, "remotes/n1", "o200", &got, &e), 0);
	assert_int_equal(json_integer_value(json_object_get(got, "gen")), 1);
	json_decref(got);
	free_batch(objs, NBATCH / 2);

	/* one invalid name or object anywhere: refused, nothing written */
	make_batch(names, np, objs, 10, 3);
	np[7] = "../evil";
	assert_int_equal(na_state_put_many(fx->st, "remotes/n2", np, objs, 10, &e), -1);
	assert_int_equal(e.status, 422);
	assert_string_equal(e.field, "name");
	np[7] = names[7];
	json_t *saved = objs[9];
	objs[9] = json_array();
	na_err_clear(&e);
	assert_int_equal(na_state_put_many(fx->st, "remotes/n2", np, objs, 10, &e), -1);
	assert_int_equal(e.status, 500);
	json_decref(objs[9]);
	objs[9] = saved;
	na_err_clear(&e);
	assert_int_equal(na_state_put_many(fx->st, "../x", np, objs, 10, &e), -1);
	assert_int_equal(e.status, 422);
	snprintf(kdir, sizeof(kdir), "%s/remotes/n2", fx->dir);
	assert_int_equal(access(kdir, F_OK), -1);
	free_batch(objs, 10);
	na_err_clear(&e);
	assert_int_equal(na_state_put_many(fx->st, "remotes/n2", NULL, NULL, 0, &e), 0);

	/* del_many: present, absent and repeated names; absent kind */
	const char *del[] = {"o1", "o2", "nope", "o1", "o299"};
	assert_int_equal(na_state_del_many(fx->st, "remotes/n1", del, 5, &e), 0);
	snprintf(kdir, sizeof(kdir), "%s/remotes/n1", fx->dir);
	assert_int_equal(count_entries(kdir, ""), NBATCH - 3);
	assert_int_equal(na_state_get(fx->st, "remotes/n1", "o2", &got, &e), -1);
	assert_int_equal(e.status, 404);
	na_err_clear(&e);
	assert_int_equal(na_state_del_many(fx->st, "remotes/none", del, 5, &e), 0);
	const char *bad[] = {"o3", "A"};
	assert_int_equal(na_state_del_many(fx->st, "remotes/n1", bad, 2, &e), -1);
	assert_int_equal(e.status, 422);
	assert_int_equal(count_entries(kdir, ""), NBATCH - 3); /* o3 still there */
}

/* ---- threads ------------------------------------------------------------ */

#define NTHREADS 4
#define PER_THREAD 60

typedef struct {
	na_state_t *st;
	int id;
	int failures;
	char msg[600];
} worker_t;

static void *writer_thread(void *arg)
{
	worker_t *w = arg;
	na_err_t e = NA_ERR_INIT;
	char name[32], kind[64];

	for (int i = 0; i < PER_THREAD; i++) {
		json_t *o = json_pack("{s:i, s:i}", "t", w->id, "i", i);
		/* every thread races to create the same nested kind first */
		snprintf(name, sizeof(name), "t%d-%d", w->id, i);
		if (na_state_put(w->st, "deep/a/b", name, o, &e) < 0)
			goto fail;
		/* and writes its own kind too, alternating single and batch */
		snprintf(kind, sizeof(kind), "own/t%d", w->id);
		if (i % 2 == 0) {
			if (na_state_put(w->st, kind, name, o, &e) < 0)
				goto fail;
		} else {
			const char *np[2] = {name, "same"};
			json_t *objs[2] = {o, o};
			if (na_state_put_many(w->st, kind, np, objs, 2, &e) < 0)
				goto fail;
		}
		if (i % 5 == 4 && na_state_del(w->st, "deep/a/b", name, &e) < 0)
			goto fail;
		json_decref(o);
		continue;
	fail:
		json_decref(o);
		w->failures++;
		snprintf(w->msg, sizeof(w->msg), "%s", e.msg);
		na_err_clear(&e);
	}
	return NULL;
}

static int count_cb(const char *name, json_t *obj, void *ud, na_err_t *err)
{
	(void)name, (void)err;
	if (!json_is_object(obj))
		return na_err_set(err, 500, "bad", NULL, "not an object");
	(*(int *)ud)++;
	return 0;
}

static volatile int loaders_stop;

static void *loader_thread(void *arg)
{
	worker_t *w = arg;
	na_err_t e = NA_ERR_INIT;
	while (!loaders_stop) {
		int n = 0;
		/* a load next to writes in flight must not remove their temp files */
		if (na_state_load(w->st, "deep/a/b", count_cb, &n, &e) < 0) {
			w->failures++;
			snprintf(w->msg, sizeof(w->msg), "%s", e.msg);
			na_err_clear(&e);
		}
	}
	return NULL;
}

static void test_concurrent_writers(void **state)
{
	fx_t *fx = *state;
	na_err_t e = NA_ERR_INIT;
	pthread_t th[NTHREADS + 1];
	worker_t w[NTHREADS + 1];
	char kdir[256];

	loaders_stop = 0;
	for (int i = 0; i <= NTHREADS; i++) {
		w[i] = (worker_t){.st = fx->st, .id = i};
		assert_int_equal(
		    pthread_create(&th[i], NULL, i < NTHREADS ? writer_thread : loader_thread, &w[i]),
		    0);
	}
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	loaders_stop = 1;
	pthread_join(th[NTHREADS], NULL);
	for (int i = 0; i <= NTHREADS; i++)
		if (w[i].failures)
			fail_msg("thread %d: %d failures, last: %s", i, w[i].failures, w[i].msg);

	int n = 0;
	assert_int_equal(na_state_load(fx->st, "deep/a/b", count_cb, &n, &e), 0);
	assert_int_equal(n, NTHREADS * (PER_THREAD - PER_THREAD / 5));
	for (int i = 0; i < NTHREADS; i++) {
		char kind[64];
		snprintf(kind, sizeof(kind), "own/t%d", i);
		n = 0;
		assert_int_equal(na_state_load(fx->st, kind, count_cb, &n, &e), 0);
		assert_int_equal(n, PER_THREAD + 1); /* + "same" */
	}
	snprintf(kdir, sizeof(kdir), "%s/deep/a/b", fx->dir);
	assert_int_equal(count_entries(kdir, "."), 0);
	assert_int_equal(na_state_quarantined(fx->st), 0);
}

static void *quarantine_thread(void *arg)
{
	worker_t *w = arg;
	na_err_t e = NA_ERR_INIT;
	char kind[32];
	int n = 0;
	snprintf(kind, sizeof(kind), "q%d", w->id);
	if (na_state_load(w->st, kind, count_cb, &n, &e) < 0 || n != 1) {
		w->failures++;
		snprintf(w->msg, sizeof(w->msg), "n=%d %s", n, e.msg);
	}
	return NULL;
}

static void test_concurrent_quarantine(void **state)
{
	fx_t *fx = *state;
	na_err_t e = NA_ERR_INIT;
	pthread_t th[NTHREADS];
	worker_t w[NTHREADS];
	char path[256], kind[32];
	json_t *o = json_object();

	/* every thread quarantines 5 files of the same name pattern at once */
	for (int i = 0; i < NTHREADS; i++) {
		snprintf(kind, sizeof(kind), "q%d", i);
		assert_int_equal(na_state_put(fx->st, kind, "good", o, &e), 0);
		for (int k = 0; k < 5; k++) {
			snprintf(path, sizeof(path), "%s/%s/bad%d.json", fx->dir, kind, k);
			write_file(path, "{", 1);
		}
	}
	char *log = NULL, lp[128];
	snprintf(lp, sizeof(lp), "%s/stderr.log", fx->root);
	fflush(stderr);
	int saved = dup(2), fd = open(lp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	dup2(fd, 2);
	close(fd);
	for (int i = 0; i < NTHREADS; i++) {
		w[i] = (worker_t){.st = fx->st, .id = i};
		pthread_create(&th[i], NULL, quarantine_thread, &w[i]);
	}
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	dup2(saved, 2);
	close(saved);
	log = read_text(lp);
	free(log);
	for (int i = 0; i < NTHREADS; i++)
		if (w[i].failures)
			fail_msg("thread %d: %s", i, w[i].msg);
	assert_int_equal(na_state_quarantined(fx->st), NTHREADS * 5);
	snprintf(path, sizeof(path), "%s/quarantine", fx->dir);
	assert_int_equal(count_entries(path, "q"), NTHREADS * 5);
	json_decref(o);
}

/* ---- hostile entries ---------------------------------------------------- */

static void on_alarm(int sig)
{
	(void)sig;
	static const char m[] = "state load blocked (FIFO opened blocking?)\n";
	if (write(2, m, sizeof(m) - 1) < 0)
		_exit(3);
	_exit(2);
}

static void test_hostile_entries(void **state)
{
	fx_t *fx = *state;
	na_err_t e = NA_ERR_INIT;
	seen_t s = {0};
	char path[256], target[256], qdir[256], *log = NULL;
	json_t *o = json_object(), *got = NULL;

	assert_int_equal(na_state_put(fx->st, "networks", "good", o, &e), 0);
	/* a symlink to a valid object elsewhere: never followed, the target untouched */
	snprintf(target, sizeof(target), "%s/outside.json", fx->root);
	write_file(target, "{\"planted\":true}", 16);
	snprintf(path, sizeof(path), "%s/networks/link.json", fx->dir);
	assert_int_equal(symlink(target, path), 0);
	/* a FIFO: opening it blocking would hang the load */
	snprintf(path, sizeof(path), "%s/networks/fifo.json", fx->dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	/* a device node (/dev/null's numbers) */
	snprintf(path, sizeof(path), "%s/networks/dev.json", fx->dir);
	assert_int_equal(mknod(path, S_IFCHR | 0600, makedev(1, 3)), 0);
	/* a directory where a file should be */
	snprintf(path, sizeof(path), "%s/networks/dir.json", fx->dir);
	assert_int_equal(mkdir(path, 0700), 0);
	/* a huge (sparse) file */
	snprintf(path, sizeof(path), "%s/networks/huge.json", fx->dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 9 * 1024 * 1024), 0);
	close(fd);

	/* get never blocks or follows either */
	signal(SIGALRM, on_alarm);
	alarm(10);
	assert_int_equal(na_state_get(fx->st, "networks", "fifo", &got, &e), -1);
	assert_string_equal(e.code, "state_corrupt");
	na_err_clear(&e);
	assert_int_equal(na_state_get(fx->st, "networks", "link", &got, &e), -1);
	assert_string_equal(e.code, "state_corrupt");
	assert_non_null(strstr(e.msg, "symbolic link"));
	na_err_clear(&e);

	assert_int_equal(load_capture(fx, "networks", &s, &log, &e), 0);
	alarm(0);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.names[0], "good");
	assert_int_equal(na_state_quarantined(fx->st), 5);
	assert_non_null(strstr(log, "FIFO"));
	assert_non_null(strstr(log, "a device"));
	assert_non_null(strstr(log, "a directory"));
	free(log);
	seen_free(&s);
	snprintf(qdir, sizeof(qdir), "%s/quarantine", fx->dir);
	assert_int_equal(count_entries(qdir, "networks-"), 5);
	char *t = read_text(target);
	assert_string_equal(t, "{\"planted\":true}");
	free(t);
	snprintf(path, sizeof(path), "%s/networks", fx->dir);
	assert_int_equal(count_entries(path, ""), 1);

	/* a kind directory that is a symlink: refused for reads and writes,
	 * nothing behind it read, moved or written */
	char other[256];
	snprintf(other, sizeof(other), "%s/elsewhere", fx->root);
	assert_int_equal(mkdir(other, 0700), 0);
	snprintf(path, sizeof(path), "%s/elsewhere/x.json", fx->root);
	write_file(path, "{", 1);
	snprintf(path, sizeof(path), "%s/vips", fx->dir);
	assert_int_equal(symlink(other, path), 0);
	memset(&s, 0, sizeof(s));
	assert_int_equal(na_state_load(fx->st, "vips", collect, &s, &e), -1);
	assert_string_equal(e.code, "state_corrupt");
	na_err_clear(&e);
	assert_int_equal(na_state_put(fx->st, "vips", "v1", o, &e), -1);
	assert_string_equal(e.code, "state_corrupt");
	na_err_clear(&e);
	assert_int_equal(na_state_put(fx->st, "vips/sub", "v1", o, &e), -1);
	assert_int_equal(count_entries(other, ""), 1);
	assert_int_equal(na_state_quarantined(fx->st), 5);
	/* and it is not a sub-kind */
	memset(&s, 0, sizeof(s));
	assert_int_equal(na_state_put(fx->st, "endpoints/n1", "e", o, &e), 0);
	snprintf(path, sizeof(path), "%s/endpoints/n2", fx->dir);
	assert_int_equal(symlink(other, path), 0);
	assert_int_equal(na_state_list_kinds(fx->st, "endpoints", collect, &s, &e), 0);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.names[0], "n1");
	json_decref(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_open_and_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_overwrite_and_delete, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_del_kind, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_load_order_and_missing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_corrupt_quarantined, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_truncated_and_non_object, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_temp_leftovers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_list_kinds, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_invalid_kind_name, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_invalid_file_names_quarantined, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_put_many_del_many, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_concurrent_writers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_concurrent_quarantine, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hostile_entries, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
