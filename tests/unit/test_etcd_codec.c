/* The etcd session's pure logic: the transaction builder's JSON, prefix
 * ranges, base64 of binary keys, and parsing of the gateway's answers
 * (kvs, txn responses, events, both error shapes, a dead lease's keepalive). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "netagent/etcd_int.h"
#include "netagent/util.h"

/* "compare": [i] as a compact string, for exact comparisons. */
static char *dump(json_t *j)
{
	return json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
}

static json_t *load(const char *s)
{
	json_error_t je;
	json_t *j = json_loads(s, 0, &je);
	if (!j)
		fail_msg("bad test JSON: %s: %s", je.text, s);
	return j;
}

static void test_prefix_end(void **state)
{
	(void)state;
	size_t n;
	cleanup_free char *a = na_etcd_prefix_end("/vx/", 4, &n);
	assert_int_equal(n, 4);
	assert_memory_equal(a, "/vx0", 4);
	/* trailing 0xff bytes are dropped, the byte before goes up */
	cleanup_free char *b = na_etcd_prefix_end("a\xff\xff", 3, &n);
	assert_int_equal(n, 1);
	assert_int_equal((unsigned char)b[0], 'b');
	/* all 0xff or empty: "\0", etcd's "to the end of the keyspace" */
	cleanup_free char *c = na_etcd_prefix_end("\xff", 1, &n);
	assert_int_equal(n, 1);
	assert_int_equal(c[0], 0);
	cleanup_free char *d = na_etcd_prefix_end("", 0, &n);
	assert_int_equal(n, 1);
	assert_int_equal(d[0], 0);
}

static void test_base64_binary(void **state)
{
	(void)state;
	const char bin[] = {'k', 0, (char)0xff, (char)0x80, '\n'};
	cleanup_free char *enc = etcd_b64enc(bin, sizeof(bin));
	assert_string_equal(enc, "awD/gAo=");
	size_t n;
	cleanup_free char *dec = etcd_b64dec(enc, &n);
	assert_int_equal(n, sizeof(bin));
	assert_memory_equal(dec, bin, sizeof(bin));
	assert_int_equal(dec[n], 0);
	cleanup_free char *empty = etcd_b64dec("", &n);
	assert_int_equal(n, 0);
	assert_null(etcd_b64dec("abc", &n));  /* not padded */
	assert_null(etcd_b64dec("a*c=", &n)); /* not the alphabet */
}

static void test_key_req(void **state)
{
	(void)state;
	cleanup_json json_t *one = etcd_key_req("/a/b", 0);
	cleanup_free char *s1 = dump(one);
	assert_string_equal(s1, "{\"key\":\"L2EvYg==\"}");
	cleanup_json json_t *pre = etcd_key_req("/a/", 1);
	cleanup_free char *s2 = dump(pre);
	assert_string_equal(s2, "{\"key\":\"L2Ev\",\"range_end\":\"L2Ew\"}"); /* "/a/".."/a0" */
	/* the whole keyspace: key "\0", range_end "\0" */
	cleanup_json json_t *all = etcd_key_req("", 1);
	cleanup_free char *s3 = dump(all);
	assert_string_equal(s3, "{\"key\":\"AA==\",\"range_end\":\"AA==\"}");
	cleanup_json json_t *put = etcd_put_req("/k", "v", 1, 0x7fffffffffffffffLL);
	cleanup_free char *s4 = dump(put);
	/* 63-bit lease ids travel as strings */
	assert_string_equal(
	    s4, "{\"key\":\"L2s=\",\"lease\":\"9223372036854775807\",\"value\":\"dg==\"}");
}

static void test_txn_builder(void **state)
{
	(void)state;
	na_etcd_txn_t *t = na_etcd_txn_new();
	assert_non_null(t);
	na_etcd_txn_cmp_create(t, "/c", NA_ETCD_EQUAL, 0);
	na_etcd_txn_cmp_value(t, "/v", NA_ETCD_NOT_EQUAL, "x", 1);
	na_etcd_txn_cmp_version(t, "/n", NA_ETCD_GREATER, 3);
	na_etcd_txn_cmp_mod(t, "/m", NA_ETCD_LESS, 42);
	na_etcd_txn_cmp_lease(t, "/l", NA_ETCD_EQUAL, 7);
	na_etcd_txn_put(t, NA_ETCD_THEN, "/c", "me", 2, 7);
	na_etcd_txn_delete(t, NA_ETCD_THEN, "/d/", 1);
	na_etcd_txn_get(t, NA_ETCD_ELSE, "/c", 0);
	na_etcd_txn_get(t, NA_ETCD_ELSE, "/p/", 1);
	cleanup_json json_t *j = na_etcd_txn_json(t);
	assert_non_null(j);

	json_t *cmp = json_object_get(j, "compare");
	assert_int_equal(json_array_size(cmp), 5);
	const char *want[] = {
	    "{\"create_revision\":\"0\",\"key\":\"L2M=\",\"result\":\"EQUAL\",\"target\":"
	    "\"CREATE\"}",
	    "{\"key\":\"L3Y=\",\"result\":\"NOT_EQUAL\",\"target\":\"VALUE\",\"value\":\"eA==\"}",
	    "{\"key\":\"L24=\",\"result\":\"GREATER\",\"target\":\"VERSION\",\"version\":\"3\"}",
	    "{\"key\":\"L20=\",\"mod_revision\":\"42\",\"result\":\"LESS\",\"target\":\"MOD\"}",
	    "{\"key\":\"L2w=\",\"lease\":\"7\",\"result\":\"EQUAL\",\"target\":\"LEASE\"}",
	};
	for (size_t i = 0; i < 5; i++) {
		cleanup_free char *s = dump(json_array_get(cmp, i));
		assert_string_equal(s, want[i]);
	}
	cleanup_free char *succ = dump(json_object_get(j, "success"));
	assert_string_equal(succ, "[{\"request_put\":{\"key\":\"L2M=\",\"lease\":\"7\",\"value\":"
				  "\"bWU=\"}},{\"request_delete_range\":{\"key\":\"L2Qv\","
				  "\"range_end\":\"L2Qw\"}}]");
	cleanup_free char *fail = dump(json_object_get(j, "failure"));
	assert_string_equal(fail, "[{\"request_range\":{\"key\":\"L2M=\"}},{\"request_range\":"
				  "{\"key\":\"L3Av\",\"range_end\":\"L3Aw\"}}]");
	na_etcd_txn_free(t);
}

static void test_txn_builder_errors(void **state)
{
	(void)state;
	na_err_t err = NA_ERR_INIT;
	na_etcd_txn_t *t = na_etcd_txn_new();
	na_etcd_txn_cmp_mod(t, NULL, NA_ETCD_EQUAL, 1);
	na_etcd_txn_put(t, NA_ETCD_THEN, "/ok", "v", 1, 0);
	/* remembered and reported at submit, which frees t (no session needed) */
	assert_int_equal(na_etcd_txn(NULL, t, NULL, NULL, NULL, &err), -1);
	assert_int_equal(err.status, 500);
	assert_non_null(strstr(err.msg, "without a key"));

	t = na_etcd_txn_new();
	na_etcd_txn_cmp_version(t, "/k", (enum na_etcd_cmp)9, 1);
	na_etcd_txn_get(t, (enum na_etcd_branch)5, "/k", 0);
	assert_int_equal(na_etcd_txn(NULL, t, NULL, NULL, NULL, &err), -1);
	assert_non_null(strstr(err.msg, "unknown compare"));
}

static void test_parse_range(void **state)
{
	(void)state;
	na_err_t err = NA_ERR_INIT;
	na_etcd_result_t r;
	/* an empty value has no "value"; a key without lease no "lease" */
	cleanup_json json_t *j =
	    load("{\"header\":{\"revision\":\"12\"},\"kvs\":[{\"key\":\"L2EvMQ==\","
		 "\"create_revision\":\"2\",\"mod_revision\":\"9\",\"version\":\"3\",\"value\":"
		 "\"djE=\",\"lease\":\"7587935117543604236\"},{\"key\":\"L2EvMg==\",\"create_"
		 "revision\":\"5\","
		 "\"mod_revision\":\"5\",\"version\":\"1\"}],\"count\":\"2\"}");
	assert_int_equal(etcd_parse_result(ETCD_K_RANGE, j, &r, &err), 0);
	assert_int_equal(r.revision, 12);
	size_t n;
	const na_etcd_kv_t *kv = na_etcd_result_kvs(&r, &n);
	assert_int_equal(n, 2);
	assert_string_equal(kv[0].key, "/a/1");
	assert_string_equal(kv[0].value, "v1");
	assert_int_equal(kv[0].create_revision, 2);
	assert_int_equal(kv[0].mod_revision, 9);
	assert_int_equal(kv[0].version, 3);
	assert_int_equal(kv[0].lease, 7587935117543604236LL);
	assert_string_equal(kv[1].value, "");
	assert_int_equal(kv[1].value_len, 0);
	assert_int_equal(kv[1].lease, 0);
	etcd_result_clear(&r);

	cleanup_json json_t *bad = load("{\"kvs\":[{\"key\":\"!!\"}]}");
	assert_int_equal(etcd_parse_result(ETCD_K_RANGE, bad, &r, &err), -1);
	assert_int_equal(err.status, 500);
	assert_int_equal(r.nresps, 0);
}

static void test_parse_txn(void **state)
{
	(void)state;
	na_err_t err = NA_ERR_INIT;
	na_etcd_result_t r;
	/* succeeded is absent when false (the else branch ran) */
	cleanup_json json_t *j =
	    load("{\"header\":{\"revision\":\"5\"},\"responses\":[{\"response_range\":{\"header\":{"
		 "\"revision\":\"4\"},\"kvs\":[{\"key\":\"L2MvazE=\",\"create_revision\":\"2\","
		 "\"mod_revision\":\"2\",\"version\":\"1\",\"value\":\"djE=\"}],\"count\":\"1\"}},"
		 "{\"response_delete_range\":{\"header\":{\"revision\":\"5\"},\"deleted\":\"1\"}},"
		 "{\"response_put\":{\"header\":{\"revision\":\"5\"}}}]}");
	assert_int_equal(etcd_parse_result(ETCD_K_TXN, j, &r, &err), 0);
	assert_false(r.succeeded);
	assert_int_equal(r.revision, 5);
	assert_int_equal(r.nresps, 3);
	assert_int_equal(r.resps[0].type, NA_ETCD_OP_RANGE);
	assert_int_equal(r.resps[0].nkvs, 1);
	assert_string_equal(r.resps[0].kvs[0].value, "v1");
	assert_int_equal(r.resps[1].type, NA_ETCD_OP_DELETE);
	assert_int_equal(r.resps[1].deleted, 1);
	assert_int_equal(r.resps[2].type, NA_ETCD_OP_PUT);
	etcd_result_clear(&r);

	cleanup_json json_t *ok = load("{\"header\":{\"revision\":\"6\"},\"succeeded\":true,"
				       "\"responses\":[{\"response_put\":{\"header\":{}}}]}");
	assert_int_equal(etcd_parse_result(ETCD_K_TXN, ok, &r, &err), 0);
	assert_true(r.succeeded);
	etcd_result_clear(&r);
}

static void test_parse_leases(void **state)
{
	(void)state;
	na_err_t err = NA_ERR_INIT;
	na_etcd_result_t r;
	cleanup_json json_t *g = load("{\"header\":{\"revision\":\"5\"},\"ID\":"
				      "\"196929360772118282\",\"TTL\":\"2\"}");
	assert_int_equal(etcd_parse_result(ETCD_K_GRANT, g, &r, &err), 0);
	assert_int_equal(r.lease_id, 196929360772118282LL);
	assert_int_equal(r.ttl, 2);
	/* keepalive: the streaming wrapper, TTL kept */
	cleanup_json json_t *ka = load("{\"result\":{\"header\":{\"revision\":\"5\"},\"ID\":\"12\","
				       "\"TTL\":\"3\"}}");
	assert_int_equal(etcd_parse_result(ETCD_K_KEEPALIVE, ka, &r, &err), 0);
	assert_int_equal(r.ttl, 3);
	assert_int_equal(r.revision, 5);
	/* a dead lease: HTTP 200, no TTL → lost */
	cleanup_json json_t *dead = load("{\"result\":{\"header\":{\"revision\":\"5\"},\"ID\":"
					 "\"12345\"}}");
	assert_int_equal(etcd_parse_result(ETCD_K_KEEPALIVE, dead, &r, &err), -1);
	assert_int_equal(err.status, 404);
	assert_string_equal(err.code, NA_ETCD_ELEASE);
	cleanup_json json_t *st =
	    load("{\"header\":{\"member_id\":\"13875242703813525710\",\"revision\":\"2\","
		 "\"raft_term\":\"2\"},\"version\":\"3.4.23\",\"dbSize\":\"20480\",\"errors\":["
		 "\"etcdserver: no leader\"]}");
	assert_int_equal(etcd_parse_result(ETCD_K_STATUS, st, &r, &err), 0);
	assert_string_equal(r.version, "3.4.23");
	assert_true(r.member_id == 13875242703813525710ULL);
	assert_true(r.leader == 0); /* absent: no leader */
	assert_int_equal(r.db_size, 20480);
}

static void test_map_error(void **state)
{
	(void)state;
	na_err_t err = NA_ERR_INIT;
	/* unary shape */
	cleanup_json json_t *nl = load("{\"error\":\"etcdserver: no leader\",\"message\":"
				       "\"etcdserver: no leader\",\"code\":14}");
	assert_int_equal(etcd_map_error(nl, 503, "http://e1", &err), ETCD_UNAVAILABLE);
	assert_int_equal(err.status, 503);
	assert_string_equal(err.code, NA_ETCD_EUNAVAILABLE);
	assert_non_null(strstr(err.msg, "http://e1"));
	cleanup_json json_t *lnf = load("{\"error\":\"etcdserver: requested lease not found\","
					"\"code\":5}");
	assert_int_equal(etcd_map_error(lnf, 404, "e", &err), ETCD_FINAL);
	assert_int_equal(err.status, 404);
	assert_string_equal(err.code, NA_ETCD_ELEASE);
	cleanup_json json_t *cmp =
	    load("{\"error\":\"etcdserver: mvcc: required revision has been compacted\","
		 "\"code\":11}");
	assert_int_equal(etcd_map_error(cmp, 400, "e", &err), ETCD_FINAL);
	assert_int_equal(err.status, 500);
	assert_string_equal(err.code, NA_ETCD_EERROR);
	/* a leaderless member without hasleader: code 2 after 7 s */
	cleanup_json json_t *dl = load("{\"error\":\"context deadline exceeded\",\"code\":2}");
	assert_int_equal(etcd_map_error(dl, 500, "e", &err), ETCD_UNAVAILABLE);
	/* streamed shape */
	cleanup_json json_t *s =
	    load("{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"etcdserver: no "
		 "leader\",\"http_status\":\"Service Unavailable\"}}");
	assert_int_equal(etcd_map_error(s, 200, "e", &err), ETCD_UNAVAILABLE);
	assert_non_null(strstr(err.msg, "no leader"));
	/* no body at all: a proxy's 502 */
	assert_int_equal(etcd_map_error(NULL, 502, "e", &err), ETCD_UNAVAILABLE);
	assert_int_equal(etcd_map_error(NULL, 400, "e", &err), ETCD_FINAL);
	assert_non_null(strstr(err.msg, "unparsable"));
}

static void test_watch_messages(void **state)
{
	(void)state;
	na_err_t err = NA_ERR_INIT;
	enum etcd_fail cls;
	etcd_wmsg_t m;
	cleanup_json json_t *cr =
	    load("{\"result\":{\"header\":{\"revision\":\"4\"},\"created\":true}}");
	assert_int_equal(etcd_parse_wmsg(cr, "e", &m, &cls, &err), 0);
	assert_true(m.created);
	assert_false(m.progress); /* the creation's revision proves nothing */
	cleanup_json json_t *pr = load("{\"result\":{\"header\":{\"revision\":\"9\"}}}");
	assert_int_equal(etcd_parse_wmsg(pr, "e", &m, &cls, &err), 0);
	assert_true(m.progress);
	assert_int_equal(m.header_rev, 9);
	cleanup_json json_t *cc = load(
	    "{\"result\":{\"header\":{\"raft_term\":\"2\"},\"canceled\":true,\"compact_revision\""
	    ":\"3\"}}");
	assert_int_equal(etcd_parse_wmsg(cc, "e", &m, &cls, &err), 0);
	assert_true(m.canceled);
	assert_int_equal(m.compact_rev, 3);
	assert_false(m.progress);
	cleanup_json json_t *er = load("{\"error\":{\"grpc_code\":14,\"http_code\":503,"
				       "\"message\":\"etcdserver: no leader\"}}");
	assert_int_equal(etcd_parse_wmsg(er, "e", &m, &cls, &err), -1);
	assert_int_equal(cls, ETCD_UNAVAILABLE);
	assert_int_equal(etcd_parse_wmsg(NULL, "e", &m, &cls, &err), -1);

	/* events: PUT has no "type" (enum 0); DELETE has no value */
	cleanup_json json_t *ev =
	    load("{\"result\":{\"header\":{\"revision\":\"8\"},\"events\":[{\"kv\":{\"key\":"
		 "\"L3gvYQ==\",\"create_revision\":\"7\",\"mod_revision\":\"7\",\"version\":\"1\","
		 "\"value\":\"MQ==\"}},{\"type\":\"DELETE\",\"kv\":{\"key\":\"L3gvYg==\","
		 "\"mod_revision\":\"8\"}}]}}");
	assert_int_equal(etcd_parse_wmsg(ev, "e", &m, &cls, &err), 0);
	assert_false(m.progress);
	assert_int_equal(json_array_size(m.events), 2);
	na_etcd_kv_t kv;
	int del;
	assert_int_equal(etcd_parse_event(json_array_get(m.events, 0), &kv, &del, &err), 0);
	assert_false(del);
	assert_string_equal(kv.key, "/x/a");
	assert_string_equal(kv.value, "1");
	na_etcd_kv_clear(&kv);
	assert_int_equal(etcd_parse_event(json_array_get(m.events, 1), &kv, &del, &err), 0);
	assert_true(del);
	assert_string_equal(kv.value, "");
	assert_int_equal(kv.mod_revision, 8);
	na_etcd_kv_clear(&kv);
}

/* 5,000 keys in one answer: one parse, linear; a regression to a quadratic
 * parse would take seconds here, not milliseconds. */
static void test_big_range(void **state)
{
	(void)state;
	json_t *kvs = json_array();
	char key[64], val[300];
	memset(val, 'v', sizeof(val) - 1);
	val[sizeof(val) - 1] = 0;
	for (int i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "/vx/nets/n%d/ep/e%05d", i % 50, i);
		json_array_append_new(kvs, json_pack("{s:o,s:o,s:s,s:s}", "key",
						     etcd_jb64(key, strlen(key)), "value",
						     etcd_jb64(val, strlen(val)), "mod_revision",
						     "5", "create_revision", "5"));
	}
	cleanup_json json_t *j = json_pack("{s:{s:s},s:o}", "header", "revision", "77", "kvs", kvs);
	cleanup_free char *s = json_dumps(j, JSON_COMPACT);
	assert_true(strlen(s) > 1000000);
	unsigned long long t0 = na_now_ms();
	cleanup_json json_t *back = json_loads(s, 0, NULL);
	na_etcd_result_t r;
	na_err_t err = NA_ERR_INIT;
	assert_int_equal(etcd_parse_result(ETCD_K_RANGE, back, &r, &err), 0);
	unsigned long long dt = na_now_ms() - t0;
	assert_int_equal(r.resps[0].nkvs, 5000);
	assert_string_equal(r.resps[0].kvs[4999].key, "/vx/nets/n49/ep/e04999");
	print_message("# 5000 keys, %zu bytes of JSON parsed in %llu ms\n", strlen(s), dt);
	assert_true(dt < 2000);
	etcd_result_clear(&r);
}

static void test_buf_limit(void **state)
{
	(void)state;
	etcd_buf_t b = {0};
	assert_int_equal(etcd_buf_append(&b, "abc\ndef", 7), 0);
	etcd_buf_consume(&b, 4);
	assert_string_equal(b.p, "def");
	/* a body past the cap is refused before anything is allocated */
	assert_int_equal(etcd_buf_append(&b, b.p, ETCD_MAX_BODY), -1);
	assert_int_equal(b.len, 3);
	etcd_buf_free(&b);
}

/* na_etcd_open parses and reads files only; hostile input is a 422 with
 * the flag's name, and a session that opened closes with the loop. */
static void test_open_validation(void **state)
{
	(void)state;
	uv_loop_t loop;
	uv_loop_init(&loop);
	const char *bad_eps[] = {"",
				 " , ",
				 "ftp://h:1",
				 "http://",
				 "http://h:1/path",
				 "http://h:1?x",
				 "h o:1",
				 "http://user@h:1",
				 ":2379",
				 "h:0",
				 "h:99999",
				 "h:12x",
				 "[::1:2379",
				 "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q"};
	for (size_t i = 0; i < NA_ARRAY_SIZE(bad_eps); i++) {
		na_err_t err = NA_ERR_INIT;
		na_etcd_t *e = NULL;
		na_etcd_config_t c = {.endpoints = bad_eps[i]};
		if (na_etcd_open(&loop, &c, &e, &err) == 0)
			fail_msg("accepted endpoints '%s'", bad_eps[i]);
		assert_int_equal(err.status, 422);
		assert_string_equal(err.field, "etcd");
		assert_null(e);
	}
	struct {
		const char *ca, *cert, *key, *field;
	} bad_tls[] = {
	    {"/nonexistent/ca.pem", NULL, NULL, "etcd-ca"},
	    {"/dev/null", NULL, NULL, "etcd-ca"},	  /* not a regular file */
	    {"/proc/self/status", NULL, NULL, "etcd-ca"}, /* no size, not PEM */
	    {"/etc/hostname", NULL, NULL, "etcd-ca"},	  /* not PEM */
	    {NULL, "/etc/hostname", NULL, "etcd-key"},	  /* cert without key */
	};
	for (size_t i = 0; i < NA_ARRAY_SIZE(bad_tls); i++) {
		na_err_t err = NA_ERR_INIT;
		na_etcd_t *e = NULL;
		na_etcd_config_t c = {.endpoints = "https://127.0.0.1:1",
				      .ca = bad_tls[i].ca,
				      .cert = bad_tls[i].cert,
				      .key = bad_tls[i].key};
		if (na_etcd_open(&loop, &c, &e, &err) == 0)
			fail_msg("accepted TLS case %zu", i);
		assert_int_equal(err.status, 422);
		assert_string_equal(err.field, bad_tls[i].field);
	}
	na_err_t err = NA_ERR_INIT;
	na_etcd_t *e = NULL;
	na_etcd_config_t c = {.endpoints = " 127.0.0.1:1 , https://[::1]:2/ "};
	assert_int_equal(na_etcd_open(&loop, &c, &e, &err), 0);
	cleanup_json json_t *info = json_object();
	na_etcd_info(e, info);
	assert_string_equal(json_string_value(json_object_get(info, "endpoint")),
			    "http://127.0.0.1:1");
	json_t *eps = json_object_get(info, "endpoints");
	assert_int_equal(json_array_size(eps), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(eps, 1), "url")),
			    "https://[::1]:2");
	assert_false(na_etcd_reachable(e));
	na_etcd_close(e);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_prefix_end),
	    cmocka_unit_test(test_base64_binary),
	    cmocka_unit_test(test_key_req),
	    cmocka_unit_test(test_txn_builder),
	    cmocka_unit_test(test_txn_builder_errors),
	    cmocka_unit_test(test_parse_range),
	    cmocka_unit_test(test_parse_txn),
	    cmocka_unit_test(test_parse_leases),
	    cmocka_unit_test(test_map_error),
	    cmocka_unit_test(test_watch_messages),
	    cmocka_unit_test(test_big_range),
	    cmocka_unit_test(test_buf_limit),
	    cmocka_unit_test(test_open_validation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
