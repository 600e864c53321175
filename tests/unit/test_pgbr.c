/* pgBackRest pieces of the postgres role: every refusal names its field,
 * the rendered settings are what the field notes say works, and the
 * repository checks read a real backup.info layout. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <ftw.h>
#include <unistd.h>

#include "provision/pg_backrest.h"

static char root[256];

static json_t *pg(const char *js)
{
	json_error_t je;
	json_t *b = json_loads(js, JSON_REJECT_DUPLICATES, &je);
	if (!b)
		fail_msg("test JSON does not parse: %s: %s", js, je.text);
	return b;
}

static void refused(const char *js, const char *code, const char *field)
{
	na_err_t e = NA_ERR_INIT;
	json_t *b = pg(js);
	if (pgbr_validate(b, "db2", &e) == 0)
		fail_msg("accepted: %s", js);
	if (e.status != 422 || strcmp(e.code, code) || strcmp(e.field, field))
		fail_msg("%s: got %d %s '%s' (%s), want 422 %s '%s'", js, e.status, e.code, e.field,
			 e.msg, code, field);
	json_decref(b);
}

static void test_validate(void **state)
{
	(void)state;
	char js[1024];
	na_err_t e = NA_ERR_INIT;
	snprintf(js, sizeof(js), "{\"pitr\":{\"repo\":\"%s/db2\",\"retention_full\":2}}", root);
	json_t *ok = pg(js);
	assert_int_equal(pgbr_validate(ok, "db2", &e), 0);
	json_decref(ok);
	refused("{\"pitr\":{}}", "missing_field", "postgres.pitr.repo");
	refused("{\"pitr\":{\"repo\":\"relative/x\"}}", "invalid_field", "postgres.pitr.repo");
	refused("{\"pitr\":{\"repo\":\"/etc/x\"}}", "invalid_field", "postgres.pitr.repo");
	snprintf(js, sizeof(js), "{\"pitr\":{\"repo\":\"%s/../x\"}}", root);
	refused(js, "invalid_field", "postgres.pitr.repo");
	snprintf(js, sizeof(js), "{\"pitr\":{\"repo\":\"%s\"}}", root);
	refused(js, "invalid_field", "postgres.pitr.repo"); /* the root itself */
	snprintf(js, sizeof(js), "{\"pitr\":{\"repo\":\"%s/a\",\"retention_full\":0}}", root);
	refused(js, "out_of_range", "postgres.pitr.retention_full");
	snprintf(js, sizeof(js), "{\"pitr\":{\"repo\":\"%s/a\",\"bogus\":1}}", root);
	refused(js, "unknown_field", "postgres.pitr.bogus");
	snprintf(
	    js, sizeof(js),
	    "{\"restore\":{\"repo\":\"%s/a\",\"stanza\":\"db1\",\"target_time\":\"2099-01-01T00:"
	    "00:00Z\"}}",
	    root);
	refused(js, "invalid_field", "postgres.restore.target_time");
	snprintf(
	    js, sizeof(js),
	    "{\"restore\":{\"repo\":\"%s/a\",\"stanza\":\"db1\",\"target_time\":\"yesterday\"}}",
	    root);
	refused(js, "invalid_field", "postgres.restore.target_time");
	snprintf(
	    js, sizeof(js),
	    "{\"restore\":{\"repo\":\"%s/a\",\"stanza\":\"../x\",\"target_time\":\"2026-01-01T00:"
	    "00:00Z\"}}",
	    root);
	refused(js, "invalid_name", "postgres.restore.stanza");
	snprintf(
	    js, sizeof(js),
	    "{\"restore\":{\"repo\":\"%s/a\",\"stanza\":\"db2\",\"target_time\":\"2026-01-01T00:"
	    "00:00Z\"}}",
	    root);
	refused(js, "invalid_field", "postgres.restore.stanza"); /* its own name */
	snprintf(js, sizeof(js), "{\"restore\":{\"repo\":\"%s/a\",\"stanza\":\"db1\"}}", root);
	refused(js, "missing_field", "postgres.restore.target_time");
}

static void test_render(void **state)
{
	(void)state;
	char js[1024];
	na_err_t e = NA_ERR_INIT;
	snprintf(
	    js, sizeof(js),
	    "{\"pitr\":{\"repo\":\"%s/db2\"},\"restore\":{\"repo\":\"%s/db1\",\"stanza\":\"db1\","
	    "\"target_time\":\"2026-12-02T10:00:00+01:00\"}}",
	    root, root);
	json_t *b = pg(js), *pat = json_object();
	pgbr_paths_t p = {"/var/lib/postgresql/data", "/var/run/postgresql", "/tmp/pgbackrest"};
	char *conf = NULL;
	assert_int_equal(pgbr_render(b, "db2", &p, pat, &conf, &e), 0);
	assert_non_null(conf);
	assert_non_null(strstr(conf, "[db2]\npg1-path=/var/lib/postgresql/data\n"));
	assert_non_null(strstr(conf, "repo1-retention-full=4\n"));
	assert_non_null(strstr(conf, "[db1]\nrepo1-path="));
	assert_non_null(strstr(conf, "pg1-socket-path=/var/run/postgresql\n"));
	json_t *params = json_object_get(json_object_get(pat, "postgresql"), "parameters");
	assert_string_equal(json_string_value(json_object_get(params, "archive_command")),
			    "pgbackrest --config=" PGBR_CONF_IN_CT " --stanza=db2 archive-push %p");
	json_t *bs = json_object_get(pat, "bootstrap");
	assert_string_equal(json_string_value(json_object_get(bs, "method")), "pgbackrest");
	const char *cmd =
	    json_string_value(json_object_get(json_object_get(bs, "pgbackrest"), "command"));
	/* +01:00 is 09:00 UTC; the restore reads db1, never db2. */
	assert_non_null(strstr(cmd, "--stanza=db1 --type=time \"--target=2026-12-02 09:00:00+00\" "
				    "--target-action=promote restore"));
	assert_true(json_is_true(
	    json_object_get(json_object_get(bs, "pgbackrest"), "keep_existing_recovery_conf")));
	assert_string_equal(
	    json_string_value(json_object_get(
		json_object_get(json_object_get(json_object_get(bs, "dcs"), "postgresql"),
				"parameters"),
		"archive_mode")),
	    "on");
	free(conf);
	json_decref(pat);

	pv_spec_t s;
	memset(&s, 0, sizeof(s));
	assert_int_equal(pgbr_binds(b, &s, 104, 111, &e), 0);
	assert_int_equal(s.nbinds, 3);
	assert_string_equal(s.binds[0].dest, PGBR_DIR_IN_CT);
	assert_int_equal(s.binds[1].rw, 1); /* pitr */
	assert_int_equal(s.binds[2].rw, 0); /* the restore's source */
	json_decref(b);

	json_t *none = pg("{}");
	conf = (char *)1;
	pat = json_object();
	assert_int_equal(pgbr_render(none, "db2", &p, pat, &conf, &e), 0);
	assert_null(conf);
	assert_int_equal(json_object_size(pat), 0);
	json_decref(pat);
	json_decref(none);
}

static void write_info(const char *stanza, const char *version, long long stop)
{
	char d[512], f[600];
	snprintf(d, sizeof(d), "%s/db1/backup", root);
	mkdir(d, 0700);
	snprintf(d, sizeof(d), "%s/db1/backup/%s", root, stanza);
	mkdir(d, 0700);
	snprintf(f, sizeof(f), "%s/backup.info", d);
	FILE *fp = fopen(f, "w");
	assert_non_null(fp);
	fprintf(fp,
		"[backrest]\nbackrest-format=5\nbackrest-version=\"2.45\"\n\n[backup:current]\n"
		"20261202-100000F={\"backrest-format\":5,\"backup-timestamp-start\":%lld,"
		"\"backup-timestamp-stop\":%lld,\"backup-type\":\"full\"}\n\n[db]\n"
		"db-catalog-version=202209061\ndb-id=1\ndb-version=\"%s\"\n",
		stop - 5, stop, version);
	fclose(fp);
}

static int check(const char *stanza, const char *target, na_err_t *e)
{
	char js[1024];
	snprintf(js, sizeof(js),
		 "{\"restore\":{\"repo\":\"%s/db1\",\"stanza\":\"%s\",\"target_time\":\"%s\"}}",
		 root, stanza, target);
	json_t *b = pg(js);
	na_err_clear(e);
	int rc = pgbr_check_fs(b, getuid(), getgid(), e);
	json_decref(b);
	return rc;
}

static void test_check_fs(void **state)
{
	(void)state;
	na_err_t e = NA_ERR_INIT;
	char d[512];
	snprintf(d, sizeof(d), "%s/db1", root);
	mkdir(d, 0750);
	/* 1764669600 = 2025-12-02T10:00:00Z */
	assert_int_equal(check("db1", "2025-12-02T11:00:00Z", &e), -1);
	assert_string_equal(e.field, "postgres.restore.stanza"); /* no stanza yet */
	write_info("db1", "15", 1764669600);
	assert_int_equal(check("db1", "2025-12-02T11:00:00Z", &e), 0);
	assert_int_equal(check("db1", "2025-12-02T09:00:00Z", &e), -1);
	assert_string_equal(e.field, "postgres.restore.target_time");
	assert_non_null(strstr(e.msg, "2025-12-02T10:00:00Z"));
	write_info("old", "14", 1764669600);
	assert_int_equal(check("old", "2025-12-02T11:00:00Z", &e), -1);
	assert_non_null(strstr(e.msg, "major upgrade"));

	/* pitr: the repository is made below the root, never through a link. */
	char js[1024], link[600];
	snprintf(js, sizeof(js), "{\"pitr\":{\"repo\":\"%s/new/db3\"}}", root);
	json_t *b = pg(js);
	assert_int_equal(pgbr_check_fs(b, getuid(), getgid(), &e), 0);
	json_decref(b);
	snprintf(d, sizeof(d), "%s/new/db3", root);
	struct stat st;
	assert_int_equal(stat(d, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	snprintf(link, sizeof(link), "%s/evil", root);
	assert_int_equal(symlink("/tmp", link), 0);
	snprintf(js, sizeof(js), "{\"pitr\":{\"repo\":\"%s/evil/x\"}}", root);
	b = pg(js);
	na_err_clear(&e);
	assert_int_equal(pgbr_check_fs(b, getuid(), getgid(), &e), -1);
	assert_string_equal(e.field, "postgres.pitr.repo");
	json_decref(b);
	assert_int_equal(access("/tmp/x", F_OK), -1);
}

static void test_argv(void **state)
{
	(void)state;
	const char *argv[8];
	char buf[256];
	pgbr_argv("db1", "backup", "full", argv, buf, sizeof(buf));
	assert_string_equal(argv[0], "pgbackrest");
	assert_string_equal(argv[1], "--config=" PGBR_CONF_IN_CT);
	assert_string_equal(argv[2], "--stanza=db1");
	assert_string_equal(argv[3], "--type=full");
	assert_string_equal(argv[4], "backup");
	assert_null(argv[5]);
	pgbr_argv("db1", "stanza-create", NULL, argv, buf, sizeof(buf));
	assert_string_equal(argv[3], "stanza-create");
	assert_null(argv[4]);
}

static int setup(void **state)
{
	(void)state;
	snprintf(root, sizeof(root), "/tmp/pgbr-unit.XXXXXX");
	if (!mkdtemp(root))
		return -1;
	setenv("NETAGENT_PGBACKREST_ROOT", root, 1);
	return 0;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static int teardown(void **state)
{
	(void)state;
	return nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_validate),
	    cmocka_unit_test(test_render),
	    cmocka_unit_test(test_check_fs),
	    cmocka_unit_test(test_argv),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
