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
	pgbr_paths_t p = {"/var/lib/postgresql/data", "/var/run/postgresql", "/tmp/pgbackrest",
			  NULL, NULL};
	char *conf = NULL;
	assert_int_equal(pgbr_render(b, "db2", &p, pat, &conf, &e), 0);
	assert_non_null(conf);
	assert_non_null(strstr(conf, "[db2]\npg1-path=/var/lib/postgresql/data\n"));
	assert_non_null(strstr(conf, "repo1-retention-full=4\n"));
	assert_non_null(strstr(conf, "[db1]\nrepo1-path="));
	assert_non_null(strstr(conf, "pg1-socket-path=/var/run/postgresql\n"));
	assert_non_null(strstr(conf, "archive-async=y\n"));
	assert_null(strstr(conf, "tls-server")); /* no tls: no server */
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

/* A self-signed certificate whose CN is "db2-node-a" (not an address). */
static const char cert_pem[] = "-----BEGIN CERTIFICATE-----\n"
			       "MIIBgTCCASegAwIBAgIUJYrPH6n9NgAe+QRp8Xw0TXY+K4EwCgYIKoZIzj0EAwIw\n"
			       "FTETMBEGA1UEAwwKZGIyLW5vZGUtYTAgFw0yNjEyMDcxMzA1MjZaGA8yMTI2MTEx\n"
			       "MzEzMDUyNlowFTETMBEGA1UEAwwKZGIyLW5vZGUtYTBZMBMGByqGSM49AgEGCCqG\n"
			       "SM49AwEHA0IABOITEMoIYzpC3VoUj0UyUYCVx5lr0OzuQi/pn5+tcg6IxIf286SA\n"
			       "0c+uiw5u+g6i9n7LaARNmy4iHOL2QKGhL9KjUzBRMB0GA1UdDgQWBBRSfEAtVb5c\n"
			       "/JnjKAz6RM1/1+mYNjAfBgNVHSMEGDAWgBRSfEAtVb5c/JnjKAz6RM1/1+mYNjAP\n"
			       "BgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIEyvdVpongNItliUJ4KK\n"
			       "pne+QgnLqpE45wZxO+mII3sLAiEAyfOWVQUn5LGRhBiODCgTug9lx+ZAJeDtqVYw\n"
			       "+ILPW60=\n"
			       "-----END CERTIFICATE-----\n";

/* pitr + tls + three members: the TLS server for every member's address
 * and this member's own CN, and the two others as pg2/pg3 over TLS. */
static void test_render_tls(void **state)
{
	(void)state;
	na_err_t e = NA_ERR_INIT;
	json_t *b = json_pack("{s:{s:s}, s:[s,s,s], s:{s:s, s:s, s:s}}", "pitr", "repo", "/x/db2",
			      "members", "198.18.9.2", "198.18.9.3", "198.18.9.4", "tls", "cert",
			      cert_pem, "key", "k", "ca", "c");
	json_t *pat = json_object();
	pgbr_paths_t p = {"/var/lib/postgresql/data", "/var/run/postgresql", "/tmp/pgbackrest",
			  "198.18.9.3", "/run/patroni"};
	char *conf = NULL;
	assert_true(pgbr_tls_server(b));
	assert_int_equal(pgbr_render(b, "db2", &p, pat, &conf, &e), 0);
	assert_non_null(conf);
	assert_non_null(strstr(conf, "tls-server-address=198.18.9.3\ntls-server-port=8432\n"));
	assert_non_null(strstr(conf, "tls-server-key-file=/run/patroni/server.key\n"));
	assert_non_null(strstr(conf, "tls-server-auth=198.18.9.2=db2\n"));
	assert_non_null(strstr(conf, "tls-server-auth=198.18.9.4=db2\n"));
	assert_non_null(strstr(conf, "tls-server-auth=db2-node-a=db2\n"));
	/* Every other member in order, never this one. */
	assert_non_null(strstr(conf, "pg2-host=198.18.9.2\npg2-host-type=tls\n"));
	assert_non_null(strstr(conf, "pg3-host=198.18.9.4\n"));
	assert_non_null(strstr(conf, "pg3-path=/var/lib/postgresql/data\n"));
	assert_null(strstr(conf, "pg4-"));
	assert_null(strstr(conf, "host=198.18.9.3"));
	/* Global keys before the stanza, pgN keys inside it. */
	assert_true(strstr(conf, "tls-server-address") < strstr(conf, "[db2]"));
	assert_true(strstr(conf, "[db2]") < strstr(conf, "pg2-host="));
	/* Peers down leave the command line by their pgN numbers: .2 is pg2,
	 * .4 is pg3 (this member, .3, is pg1). */
	char opts[32][PGBR_OPT_LEN];
	const char *up1[] = {"198.18.9.3", "198.18.9.4"};
	assert_int_equal(pgbr_skip_peers(b, "198.18.9.3", up1, 2, opts, 32), PGBR_PEER_OPTS);
	assert_string_equal(opts[0], "--reset-pg2-host");
	assert_string_equal(opts[PGBR_PEER_OPTS - 1], "--reset-pg2-socket-path");
	const char *up2[] = {"198.18.9.2"};
	assert_int_equal(pgbr_skip_peers(b, "198.18.9.3", up2, 1, opts, 32), PGBR_PEER_OPTS);
	assert_string_equal(opts[0], "--reset-pg3-host");
	assert_int_equal(pgbr_skip_peers(b, "198.18.9.3", up1, 0, opts, 32), 2 * PGBR_PEER_OPTS);
	assert_int_equal(pgbr_skip_peers(b, "198.18.9.3", up1, 0, opts, 5), 5); /* bounded */
	/* The resets name every option the render gives pg3. */
	assert_int_equal(pgbr_skip_peers(b, "198.18.9.3", up2, 1, opts, 32), PGBR_PEER_OPTS);
	for (size_t i = 0; i < PGBR_PEER_OPTS; i++) {
		char key[64];
		snprintf(key, sizeof(key), "\n%s=", opts[i] + strlen("--reset-"));
		if (!strstr(conf, key))
			fail_msg("%s resets nothing the render wrote", opts[i]);
	}
	free(conf);
	json_decref(pat);
	/* Where a backup may run: anywhere with the server. */
	assert_int_equal(pgbr_can_backup(b, "m1", "replica", &e), 0);
	/* One member: no peer to serve, no server. */
	json_object_set_new(b, "members", json_pack("[s]", "198.18.9.3"));
	assert_false(pgbr_tls_server(b));
	pat = json_object();
	assert_int_equal(pgbr_render(b, "db2", &p, pat, &conf, &e), 0);
	assert_null(strstr(conf, "tls-server"));
	assert_null(strstr(conf, "pg2-host"));
	free(conf);
	json_decref(pat);
	/* Without the server a follower cannot reach the primary's
	 * pgBackRest: refused up front; the leader, or an unknown role, is
	 * left to pgBackRest. */
	json_object_set_new(b, "members", json_pack("[s,s]", "198.18.9.3", "198.18.9.4"));
	json_object_del(b, "tls");
	assert_false(pgbr_tls_server(b));
	assert_int_equal(pgbr_can_backup(b, "m1", "leader", &e), 0);
	assert_int_equal(pgbr_can_backup(b, "m1", "", &e), 0);
	assert_int_equal(pgbr_can_backup(b, "m1", "sync_standby", &e), -1);
	assert_int_equal(e.status, 409);
	assert_string_equal(e.code, "not_leader");
	assert_non_null(strstr(e.msg, "order it on the leader"));
	json_decref(b);
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

	/* An upgraded stanza: a 14 backup (db-id 1) then a 15 one (db-id 2)
	 * an hour later. A target between them would restore the 14 one. */
	snprintf(d, sizeof(d), "%s/db1/backup/up", root);
	mkdir(d, 0700);
	char f[600];
	snprintf(f, sizeof(f), "%s/backup.info.copy", d); /* the copy serves too */
	FILE *fp = fopen(f, "w");
	assert_non_null(fp);
	fprintf(fp, "[backup:current]\n"
		    "20251202-100000F={\"backup-timestamp-start\":1764669590,"
		    "\"backup-timestamp-stop\":1764669600,\"db-id\":1}\n"
		    "20251202-110000F={\"backup-timestamp-start\":1764673190,"
		    "\"backup-timestamp-stop\":1764673200,\"db-id\":2}\n\n"
		    "[db]\ndb-id=2\ndb-version=\"15\"\n\n[db:history]\n"
		    "1={\"db-catalog-version\":202107181,\"db-version\":\"14\"}\n"
		    "2={\"db-catalog-version\":202209061,\"db-version\":\"15\"}\n");
	fclose(fp);
	assert_int_equal(check("up", "2025-12-02T10:30:00Z", &e), -1);
	assert_string_equal(e.field, "postgres.restore.stanza");
	assert_non_null(strstr(e.msg, "PostgreSQL 14"));
	assert_int_equal(check("up", "2025-12-02T11:30:00Z", &e), 0);

	/* A restore repository that is a link or a FIFO: refused by name. */
	char js0[1024], alias[600];
	snprintf(alias, sizeof(alias), "%s/alias", root);
	snprintf(d, sizeof(d), "%s/db1", root);
	assert_int_equal(symlink(d, alias), 0);
	snprintf(js0, sizeof(js0),
		 "{\"restore\":{\"repo\":\"%s\",\"stanza\":\"db1\",\"target_time\":"
		 "\"2025-12-02T11:00:00Z\"}}",
		 alias);
	json_t *b0 = pg(js0);
	na_err_clear(&e);
	assert_int_equal(pgbr_check_fs(b0, getuid(), getgid(), &e), -1);
	assert_string_equal(e.field, "postgres.restore.repo");
	json_decref(b0);
	snprintf(alias, sizeof(alias), "%s/fifo", root);
	assert_int_equal(mkfifo(alias, 0600), 0);
	snprintf(js0, sizeof(js0), "{\"pitr\":{\"repo\":\"%s\"}}", alias);
	b0 = pg(js0);
	na_err_clear(&e);
	assert_int_equal(pgbr_check_fs(b0, getuid(), getgid(), &e), -1);
	assert_string_equal(e.field, "postgres.pitr.repo");
	json_decref(b0);

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
	const char *argv[8], *opts[] = {"--type=full", "--backup-standby", NULL};
	char buf[256];
	assert_int_equal(pgbr_argv("db1", "backup", opts, argv, 8, buf, sizeof(buf)), 6);
	assert_string_equal(argv[0], "pgbackrest");
	assert_string_equal(argv[1], "--config=" PGBR_CONF_IN_CT);
	assert_string_equal(argv[2], "--stanza=db1");
	assert_string_equal(argv[3], "--type=full");
	assert_string_equal(argv[4], "--backup-standby");
	assert_string_equal(argv[5], "backup");
	assert_null(argv[6]);
	assert_int_equal(pgbr_argv("db1", "stanza-create", NULL, argv, 8, buf, sizeof(buf)), 4);
	assert_string_equal(argv[3], "stanza-create");
	assert_null(argv[4]);
	/* Too many options for the slots, or a stanza too long for buf. */
	assert_int_equal(pgbr_argv("db1", "backup", opts, argv, 6, buf, sizeof(buf)), -1);
	assert_int_equal(pgbr_argv("db1", "backup", NULL, argv, 8, buf, 40), -1);
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
	    cmocka_unit_test(test_validate),   cmocka_unit_test(test_render),
	    cmocka_unit_test(test_render_tls), cmocka_unit_test(test_check_fs),
	    cmocka_unit_test(test_argv),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
