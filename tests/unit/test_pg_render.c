/* Postgres role: the `postgres` section's checks (every refusal names its
 * field) and Patroni's configuration rendered from it. Pure functions, no
 * kernel: the rendered document is compared key by key with what Patroni
 * needs (a lost `bootstrap` section once left every member "waiting for
 * leader to bootstrap"). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provision/pg.h"
#include "provision/pg_raft.h"

#define MEMBERS "\"members\":[\"198.18.1.2\",\"198.18.1.3\",\"198.18.1.4\"]"
#define BASE                                                                                       \
	"\"cluster\":\"db1\",\"node\":\"db1-0\"," MEMBERS ",\"superuser_password\":\"su\","        \
	"\"replication_password\":\"rp\""

static int parse(const char *js, pg_conf_t *c, na_err_t *err, json_t **keep)
{
	json_error_t je;
	json_t *b = json_loads(js, JSON_REJECT_DUPLICATES, &je);
	if (!b)
		fail_msg("test JSON does not parse: %s: %s", js, je.text);
	na_err_clear(err);
	*keep = b;
	return pg_parse(b, "198.18.1.2/24", "198.18.1.0/24", c, err);
}

static void refused(const char *js, const char *field)
{
	pg_conf_t c;
	na_err_t e;
	json_t *b;
	if (parse(js, &c, &e, &b) == 0)
		fail_msg("accepted: %s", js);
	if (e.status != 422 || strcmp(e.field, field))
		fail_msg("%s: got %d %s field '%s' (%s), want 422 field '%s'", js, e.status, e.code,
			 e.field, e.msg, field);
	json_decref(b);
}

static void test_refusals(void **st)
{
	(void)st;
	refused("{\"node\":\"n\"," MEMBERS ",\"superuser_password\":\"s\","
		"\"replication_password\":\"r\"}",
		"postgres.cluster");
	refused("{" BASE ",\"speed\":1}", "postgres.speed");
	refused("{\"cluster\":\"../x\",\"node\":\"n\"," MEMBERS ",\"superuser_password\":\"s\","
		"\"replication_password\":\"r\"}",
		"postgres.cluster");
	refused("{\"cluster\":\"c\",\"node\":\"n\",\"members\":[\"198.18.1.3\"],"
		"\"superuser_password\":\"s\",\"replication_password\":\"r\"}",
		"postgres.members");
	refused("{\"cluster\":\"c\",\"node\":\"n\",\"members\":[\"198.18.1.2\",\"198.18.9.3\"],"
		"\"superuser_password\":\"s\",\"replication_password\":\"r\"}",
		"postgres.members[1]");
	refused("{\"cluster\":\"c\",\"node\":\"n\",\"members\":[\"198.18.1.2\",\"198.18.1.2\"],"
		"\"superuser_password\":\"s\",\"replication_password\":\"r\"}",
		"postgres.members[1]");
	refused("{\"cluster\":\"c\",\"node\":\"n\",\"members\":[\"198.18.1.2/24\"],"
		"\"superuser_password\":\"s\",\"replication_password\":\"r\"}",
		"postgres.members[0]");
	refused("{\"cluster\":\"c\",\"node\":\"n\"," MEMBERS ",\"superuser_password\":\"\","
		"\"replication_password\":\"r\"}",
		"postgres.superuser_password");
	refused("{" BASE ",\"parameters\":{\"port\":\"1\"}}", "postgres.parameters.port");
	refused("{" BASE ",\"parameters\":{\"work_mem\":64}}", "postgres.parameters.work_mem");
	refused("{" BASE ",\"parameters\":{\"a;b\":\"1\"}}", "postgres.parameters");
	refused("{" BASE ",\"patroni\":{\"ttl\":6}}", "postgres.patroni.ttl");
	refused("{" BASE ",\"tls\":{\"cert\":\"x\",\"key\":\"y\",\"ca\":\"z\"}}",
		"postgres.tls.cert");
	refused("{" BASE ",\"tls\":{\"cert\":\"x\"}}", "postgres.tls.key");
}

static json_t *at(json_t *o, const char *path)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *save = NULL, *k = strtok_r(buf, ".", &save); k && o;
	     k = strtok_r(NULL, ".", &save))
		o = json_object_get(o, k);
	if (!o)
		fail_msg("rendered configuration has no %s", path);
	return o;
}

static const char *str_at(json_t *o, const char *path)
{
	const char *s = json_string_value(at(o, path));
	if (!s)
		fail_msg("%s is not a string", path);
	return s;
}

static void test_render(void **st)
{
	(void)st;
	pg_conf_t c;
	na_err_t e;
	json_t *b;
	assert_int_equal(parse("{" BASE ",\"parameters\":{\"work_mem\":\"8MB\"}}", &c, &e, &b), 0);
	json_t *r = pg_render(&c);
	assert_non_null(r);
	assert_string_equal(str_at(r, "scope"), "db1");
	assert_string_equal(str_at(r, "name"), "db1-0");
	assert_string_equal(str_at(r, "restapi.listen"), "198.18.1.2:8008");
	assert_string_equal(str_at(r, "raft.self_addr"), "198.18.1.2:5010");
	json_t *p = at(r, "raft.partner_addrs");
	assert_int_equal(json_array_size(p), 2);
	assert_string_equal(json_string_value(json_array_get(p, 0)), "198.18.1.3:5010");
	/* The section a cluster is born from, with the field notes' timings
	 * and synchronous mode on for three members. */
	assert_int_equal(json_integer_value(at(r, "bootstrap.dcs.ttl")), 10);
	assert_int_equal(json_integer_value(at(r, "bootstrap.dcs.loop_wait")), 2);
	assert_int_equal(json_integer_value(at(r, "bootstrap.dcs.retry_timeout")), 3);
	assert_true(json_is_true(at(r, "bootstrap.dcs.synchronous_mode")));
	assert_true(json_is_true(at(r, "bootstrap.dcs.postgresql.use_pg_rewind")));
	json_t *initdb = at(r, "bootstrap.initdb");
	assert_int_equal(json_array_size(initdb), 2);
	assert_string_equal(json_string_value(json_array_get(initdb, 1)), "data-checksums");
	/* The caller's settings are cluster-wide (Patroni's dynamic
	 * configuration), beside the role's. */
	assert_string_equal(str_at(r, "bootstrap.dcs.postgresql.parameters.work_mem"), "8MB");
	assert_string_equal(str_at(r, "bootstrap.dcs.postgresql.parameters.wal_level"), "replica");
	assert_null(json_object_get(at(r, "postgresql.parameters"), "work_mem"));
	assert_string_equal(str_at(r, "postgresql.listen"), "198.18.1.2,127.0.0.1:5432");
	/* Replication from the subnet only, and Patroni's own check over
	 * loopback. */
	json_t *hba = at(r, "postgresql.pg_hba");
	int subnet = 0, lo = 0;
	size_t i;
	json_t *v;
	json_array_foreach(hba, i, v)
	{
		subnet |= !strcmp(json_string_value(v),
				  "host replication replicator 198.18.1.0/24 scram-sha-256");
		lo |= !strcmp(json_string_value(v),
			      "host replication replicator 127.0.0.1/32 scram-sha-256");
	}
	assert_true(subnet);
	assert_true(lo);
	/* No TLS: no raft password, plain REST API. */
	assert_null(json_object_get(at(r, "raft"), "password"));
	assert_null(json_object_get(at(r, "restapi"), "certfile"));
	json_decref(r);
	json_decref(b);
}

static void test_single_and_overrides(void **st)
{
	(void)st;
	pg_conf_t c;
	na_err_t e;
	json_t *b;
	assert_int_equal(parse("{\"cluster\":\"c\",\"node\":\"n\",\"members\":[\"198.18.1.2\"],"
			       "\"superuser_password\":\"s\",\"replication_password\":\"r\","
			       "\"patroni\":{\"ttl\":30,\"loop_wait\":10,\"retry_timeout\":10}}",
			       &c, &e, &b),
			 0);
	json_t *r = pg_render(&c);
	assert_int_equal(json_array_size(at(r, "raft.partner_addrs")), 0);
	assert_true(json_is_false(at(r, "bootstrap.dcs.synchronous_mode")));
	assert_int_equal(json_integer_value(at(r, "bootstrap.dcs.ttl")), 30);
	json_decref(r);
	json_decref(b);
}

/* syncobj_admin -status, as pysyncobj 0.3 prints it (sorted "key: value"). */
static void test_raft_status(void **state)
{
	(void)state;
	pg_raft_status_t st;
	const char *follower = "commit_idx: 41\n"
			       "has_quorum: True\n"
			       "leader: 198.18.10.11:5010\n"
			       "leader_commit_idx: 41\n"
			       "partner_node_status_server_198.18.10.11:5010: 2\n"
			       "partner_node_status_server_198.18.10.13:5010: 0\n"
			       "partner_nodes_count: 2\n"
			       "raft_term: 3\n"
			       "readonly_nodes_count: 0\n"
			       "self: 198.18.10.12:5010\n"
			       "state: 0\n";
	assert_int_equal(pg_raft_status_parse(follower, &st), 0);
	assert_string_equal(st.leader, "198.18.10.11:5010");
	assert_int_equal(st.npartner, 2);
	assert_string_equal(st.partner[0].node, "198.18.10.11:5010");
	assert_int_equal(st.partner[0].up, 1);
	assert_string_equal(st.partner[1].node, "198.18.10.13:5010");
	assert_int_equal(st.partner[1].up, 0);
	assert_true(pg_raft_status_has(&st, "198.18.10.13:5010"));
	/* the member itself is no partner of its own; a prefix is not a node */
	assert_false(pg_raft_status_has(&st, "198.18.10.12:5010"));
	assert_false(pg_raft_status_has(&st, "198.18.10.1"));

	/* a node that follows nobody yet, without partners, CRLF lines */
	assert_int_equal(pg_raft_status_parse("leader: None\r\nraft_term: 0\r\n", &st), 0);
	assert_string_equal(st.leader, "");
	assert_int_equal(st.npartner, 0);
	/* not a status: an error text, or nothing */
	assert_int_equal(pg_raft_status_parse("Error: timeout\n", &st), -1);
	assert_int_equal(pg_raft_status_parse("", &st), -1);
	/* a key without its separator is skipped, not misread */
	assert_int_equal(pg_raft_status_parse("leader:198.18.10.11:5010\nraft_term: 1", &st), 0);
	assert_string_equal(st.leader, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_render),
	    cmocka_unit_test(test_single_and_overrides),
	    cmocka_unit_test(test_raft_status),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
