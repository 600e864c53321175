#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "netagent/validate.h"

static void expect_err(const na_err_t *e, int status, const char *code, const char *field)
{
	assert_int_equal(e->status, status);
	assert_string_equal(e->code, code);
	if (field)
		assert_string_equal(e->field, field);
	assert_true(e->msg[0] != 0);
}

static void test_name_valid(void **state)
{
	(void)state;
	char n63[64], n64[65];
	memset(n63, 'a', 63);
	n63[63] = 0;
	memset(n64, 'a', 64);
	n64[64] = 0;

	assert_true(na_name_valid("a"));
	assert_true(na_name_valid("0"));
	assert_true(na_name_valid("n1"));
	assert_true(na_name_valid("web-1-db"));
	assert_true(na_name_valid("a-"));
	assert_true(na_name_valid(n63));
	assert_false(na_name_valid(n64));
	assert_false(na_name_valid(""));
	assert_false(na_name_valid(NULL));
	assert_false(na_name_valid("-a"));
	assert_false(na_name_valid("A"));
	assert_false(na_name_valid("aB"));
	assert_false(na_name_valid("a/b"));
	assert_false(na_name_valid(".."));
	assert_false(na_name_valid("a..b"));
	assert_false(na_name_valid("../etc"));
	assert_false(na_name_valid("."));
	assert_false(na_name_valid("a.b"));
	assert_false(na_name_valid("a_b"));
	assert_false(na_name_valid("a b"));
	assert_false(na_name_valid("a\n"));
	assert_false(na_name_valid("\xc3\xa9"));
}

static void test_name_check(void **state)
{
	(void)state;
	na_err_t e = NA_ERR_INIT;
	char n63[64], n64[65];
	memset(n63, 'z', 63);
	n63[63] = 0;
	memset(n64, 'z', 64);
	n64[64] = 0;

	assert_int_equal(na_name_check("ok-1", "name", &e), 0);
	assert_int_equal(e.status, 0);
	assert_int_equal(na_name_check(n63, "name", &e), 0);

	assert_int_equal(na_name_check(n64, "name", &e), -1);
	expect_err(&e, 422, "invalid_name", "name");
	assert_non_null(strstr(e.msg, "too long"));

	na_err_clear(&e);
	assert_int_equal(na_name_check("Web", "target.container", &e), -1);
	expect_err(&e, 422, "invalid_name", "target.container");
	assert_non_null(strstr(e.msg, "lower case"));

	na_err_clear(&e);
	assert_int_equal(na_name_check("a/b", "network", &e), -1);
	expect_err(&e, 422, "invalid_name", "network");
	assert_non_null(strstr(e.msg, "'/'"));

	na_err_clear(&e);
	assert_int_equal(na_name_check("..", "name", &e), -1);
	expect_err(&e, 422, "invalid_name", "name");
	assert_non_null(strstr(e.msg, "'..'"));

	na_err_clear(&e);
	assert_int_equal(na_name_check("", "name", &e), -1);
	expect_err(&e, 422, "invalid_name", "name");
	assert_non_null(strstr(e.msg, "empty"));

	na_err_clear(&e);
	assert_int_equal(na_name_check(NULL, "name", &e), -1);
	expect_err(&e, 422, "invalid_name", "name");

	na_err_clear(&e);
	assert_int_equal(na_name_check("-x", "name", &e), -1);
	expect_err(&e, 422, "invalid_name", "name");
	assert_non_null(strstr(e.msg, "start"));

	na_err_clear(&e);
	assert_int_equal(na_name_check("a_b", "name", &e), -1);
	expect_err(&e, 422, "invalid_name", "name");
	assert_non_null(strstr(e.msg, "'_'"));

	/* NULL err must not crash */
	assert_int_equal(na_name_check("BAD", "name", NULL), -1);
}

static void test_body_parse(void **state)
{
	(void)state;
	na_err_t e = NA_ERR_INIT;
	json_t *j;

	const char ok[] = "{\"vni\": 5, \"subnet\": \"198.18.1.0/24\"}";
	j = na_body_parse(ok, strlen(ok), &e);
	assert_non_null(j);
	assert_int_equal(json_integer_value(json_object_get(j, "vni")), 5);
	json_decref(j);

	/* length is honoured: trailing bytes beyond len are ignored */
	const char padded[] = "{}garbage";
	j = na_body_parse(padded, 2, &e);
	assert_non_null(j);
	json_decref(j);

	j = na_body_parse("", 0, &e);
	assert_null(j);
	expect_err(&e, 400, "invalid_json", "");

	na_err_clear(&e);
	j = na_body_parse(NULL, 0, &e);
	assert_null(j);
	expect_err(&e, 400, "invalid_json", "");

	const char *bad[] = {
	    "{",
	    "{\"a\":}",
	    "{\"a\":1,}",
	    "{'a':1}",
	    "   ",
	    "{} {}",
	    "{\"a\":1} x",
	    "nul",
	    "{\"a\":01}",
	    "{\"a\":\"\\u0000\"}",
	    "[1,2,3]",
	    "\"str\"",
	    "42",
	    "null",
	    "true",
	    "{\"a\":1,\"a\":2}",
	    "{\"a\":{\"b\":1,\"b\":1}}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		na_err_clear(&e);
		j = na_body_parse(bad[i], strlen(bad[i]), &e);
		if (j)
			fail_msg("accepted bad body %s", bad[i]);
		expect_err(&e, 400, "invalid_json", "");
	}

	/* parse errors carry jansson's text and the position */
	na_err_clear(&e);
	const char trunc[] = "{\"a\":\n";
	assert_null(na_body_parse(trunc, strlen(trunc), &e));
	assert_non_null(strstr(e.msg, "line"));
	assert_non_null(strstr(e.msg, "position"));

	/* duplicate keys are named as such */
	na_err_clear(&e);
	const char dup[] = "{\"vni\":1,\"vni\":2}";
	assert_null(na_body_parse(dup, strlen(dup), &e));
	assert_non_null(strstr(e.msg, "duplicate"));

	/* an array is valid JSON but not an object */
	na_err_clear(&e);
	assert_null(na_body_parse("[]", 2, &e));
	assert_non_null(strstr(e.msg, "object"));

	/* embedded NUL: inside the object, and after a complete object */
	const char nul1[] = "{\"a\":\"x\0y\"}";
	na_err_clear(&e);
	assert_null(na_body_parse(nul1, sizeof(nul1) - 1, &e));
	expect_err(&e, 400, "invalid_json", "");
	assert_non_null(strstr(e.msg, "NUL"));
	const char nul2[] = "{}\0";
	na_err_clear(&e);
	assert_null(na_body_parse(nul2, sizeof(nul2) - 1, &e));
	expect_err(&e, 400, "invalid_json", "");
}

static const na_field_t net_spec[] = {
    {"vni", NA_F_INT, 1, 1, 16777215}, {"subnet", NA_F_STRING, 1, 0, 0},
    {"mtu", NA_F_INT, 0, 0, 0},	       {"force", NA_F_BOOL, 0, 0, 0},
    {"target", NA_F_OBJECT, 0, 0, 0},  {"checks", NA_F_ARRAY, 0, 0, 0},
};
#define NSPEC (sizeof(net_spec) / sizeof(net_spec[0]))

static int check_str(const char *body, const char *prefix, na_err_t *e)
{
	json_error_t jerr;
	json_t *j = json_loads(body, 0, &jerr);
	if (!j)
		fail_msg("test body does not parse: %s", body);
	int r = na_fields_check(j, net_spec, NSPEC, prefix, e);
	json_decref(j);
	return r;
}

static void test_fields(void **state)
{
	(void)state;
	na_err_t e = NA_ERR_INIT;

	assert_int_equal(check_str("{\"vni\":1,\"subnet\":\"x\"}", NULL, &e), 0);
	assert_int_equal(check_str("{\"vni\":16777215,\"subnet\":\"x\",\"mtu\":-5,\"force\":"
				   "false,\"target\":{},\"checks\":[]}",
				   "", &e),
			 0);
	assert_int_equal(e.status, 0);

	/* unknown */
	assert_int_equal(check_str("{\"vni\":1,\"subnet\":\"x\",\"bogus\":1}", NULL, &e), -1);
	expect_err(&e, 422, "unknown_field", "bogus");
	na_err_clear(&e);
	assert_int_equal(check_str("{\"vni\":1,\"subnet\":\"x\",\"bogus\":1}", "target.", &e), -1);
	expect_err(&e, 422, "unknown_field", "target.bogus");

	/* missing */
	na_err_clear(&e);
	assert_int_equal(check_str("{\"vni\":1}", NULL, &e), -1);
	expect_err(&e, 422, "missing_field", "subnet");
	na_err_clear(&e);
	assert_int_equal(check_str("{\"subnet\":\"x\"}", "spec.", &e), -1);
	expect_err(&e, 422, "missing_field", "spec.vni");

	/* wrong types */
	struct {
		const char *body, *field;
	} wrong[] = {
	    {"{\"vni\":\"1\",\"subnet\":\"x\"}", "vni"},
	    {"{\"vni\":1.0,\"subnet\":\"x\"}", "vni"},
	    {"{\"vni\":true,\"subnet\":\"x\"}", "vni"},
	    {"{\"vni\":null,\"subnet\":\"x\"}", "vni"},
	    {"{\"vni\":1,\"subnet\":5}", "subnet"},
	    {"{\"vni\":1,\"subnet\":null}", "subnet"},
	    {"{\"vni\":1,\"subnet\":\"x\",\"force\":1}", "force"},
	    {"{\"vni\":1,\"subnet\":\"x\",\"force\":\"true\"}", "force"},
	    {"{\"vni\":1,\"subnet\":\"x\",\"target\":[]}", "target"},
	    {"{\"vni\":1,\"subnet\":\"x\",\"checks\":{}}", "checks"},
	    {"{\"vni\":1,\"subnet\":\"x\",\"mtu\":1500.5}", "mtu"},
	};
	for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
		na_err_clear(&e);
		if (check_str(wrong[i].body, NULL, &e) != -1)
			fail_msg("accepted %s", wrong[i].body);
		expect_err(&e, 422, "invalid_field", wrong[i].field);
	}
	na_err_clear(&e);
	check_str("{\"vni\":\"5\",\"subnet\":\"x\"}", NULL, &e);
	assert_string_equal(e.msg, "vni must be an integer");
	na_err_clear(&e);
	check_str("{\"vni\":1,\"subnet\":\"x\",\"force\":0}", "vip.", &e);
	expect_err(&e, 422, "invalid_field", "vip.force");
	assert_string_equal(e.msg, "vip.force must be a boolean");

	/* ranges: both bounds inclusive */
	na_err_clear(&e);
	assert_int_equal(check_str("{\"vni\":0,\"subnet\":\"x\"}", NULL, &e), -1);
	expect_err(&e, 422, "out_of_range", "vni");
	na_err_clear(&e);
	assert_int_equal(check_str("{\"vni\":16777216,\"subnet\":\"x\"}", NULL, &e), -1);
	expect_err(&e, 422, "out_of_range", "vni");
	na_err_clear(&e);
	assert_int_equal(check_str("{\"vni\":-1,\"subnet\":\"x\"}", NULL, &e), -1);
	expect_err(&e, 422, "out_of_range", "vni");
	assert_int_equal(check_str("{\"vni\":1,\"subnet\":\"x\",\"mtu\":99999999999}", NULL, &e),
			 0);

	/* not an object at all */
	na_err_clear(&e);
	json_t *arr = json_array();
	assert_int_equal(na_fields_check(arr, net_spec, NSPEC, "target.", &e), -1);
	expect_err(&e, 422, "invalid_field", "target");
	json_decref(arr);
	na_err_clear(&e);
	assert_int_equal(na_fields_check(NULL, net_spec, NSPEC, NULL, &e), -1);
	expect_err(&e, 422, "invalid_field", NULL);

	/* an empty spec allows only the empty object */
	json_t *empty = json_object();
	assert_int_equal(na_fields_check(empty, NULL, 0, NULL, &e), 0);
	json_decref(empty);
}

static void test_ipv4(void **state)
{
	(void)state;
	uint32_t a = 0;
	char buf[16];

	assert_int_equal(na_ipv4_parse("192.0.2.1", &a), 0);
	assert_int_equal(a, 0xc0000201u);
	assert_int_equal(na_ipv4_parse("0.0.0.0", &a), 0);
	assert_int_equal(a, 0);
	assert_int_equal(na_ipv4_parse("255.255.255.255", &a), 0);
	assert_int_equal(a, 0xffffffffu);

	const char *bad[] = {"",	 "1.2.3",      "1.2.3.4.5", "256.1.1.1", "1.2.3.4 ",
			     " 1.2.3.4", "1.2.3.4/24", "0x1.2.3.4", "1.2.3.-4",	 "01.2.3.4",
			     "1..2.3",	 "a.b.c.d",    "1.2.3.4\n", "16909060",	 "1.2.3.04",
			     "::1",	 "1.2.3.4.",   "1.2.3.1000"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (na_ipv4_parse(bad[i], &a) == 0)
			fail_msg("accepted ipv4 \"%s\"", bad[i]);
	assert_int_equal(na_ipv4_parse(NULL, &a), -1);

	na_ipv4_fmt(0xc6120105u, buf, sizeof(buf));
	assert_string_equal(buf, "198.18.1.5");
	na_ipv4_fmt(0xffffffffu, buf, sizeof(buf));
	assert_string_equal(buf, "255.255.255.255");
	na_ipv4_fmt(0, buf, sizeof(buf));
	assert_string_equal(buf, "0.0.0.0");
	char cidr[24];
	na_cidr_fmt(0xc6120105u, 24, cidr, sizeof(cidr));
	assert_string_equal(cidr, "198.18.1.5/24");
	uint32_t back;
	int plen;
	assert_int_equal(na_cidr_parse(cidr, &back, &plen), 0); /* round trip */
	assert_true(back == 0xc6120105u && plen == 24);

	assert_true(na_ipv4_unicast(0xc0000201u));  /* 192.0.2.1 */
	assert_true(na_ipv4_unicast(0x01000000u));  /* 1.0.0.0 */
	assert_true(na_ipv4_unicast(0xdfffffffu));  /* 223.255.255.255 */
	assert_true(na_ipv4_unicast(0x7effffffu));  /* 126.255.255.255 */
	assert_true(na_ipv4_unicast(0x80000000u));  /* 128.0.0.0 */
	assert_false(na_ipv4_unicast(0));	    /* 0.0.0.0 */
	assert_false(na_ipv4_unicast(0x00ffffffu)); /* 0.255.255.255 */
	assert_false(na_ipv4_unicast(0x7f000001u)); /* 127.0.0.1 */
	assert_false(na_ipv4_unicast(0x7fffffffu));
	assert_false(na_ipv4_unicast(0xe0000001u)); /* 224.0.0.1 */
	assert_false(na_ipv4_unicast(0xefffffffu));
	assert_false(na_ipv4_unicast(0xf0000000u)); /* 240.0.0.0 */
	assert_false(na_ipv4_unicast(0xffffffffu));
}

static void test_cidr(void **state)
{
	(void)state;
	uint32_t a = 0;
	int p = -1;

	assert_int_equal(na_cidr_parse("198.18.1.0/24", &a, &p), 0);
	assert_int_equal(a, 0xc6120100u);
	assert_int_equal(p, 24);
	/* host bits are kept: callers decide whether they matter */
	assert_int_equal(na_cidr_parse("198.18.1.5/24", &a, &p), 0);
	assert_int_equal(a, 0xc6120105u);
	assert_int_equal(na_cidr_parse("0.0.0.0/0", &a, &p), 0);
	assert_int_equal(p, 0);
	assert_int_equal(na_cidr_parse("192.0.2.1/32", &a, &p), 0);
	assert_int_equal(p, 32);
	assert_int_equal(na_cidr_parse("192.0.2.1/8", &a, &p), 0);
	assert_int_equal(p, 8);

	const char *bad[] = {"198.18.1.0",	"198.18.1.0/",	  "198.18.1.0/33",
			     "198.18.1.0/-1",	"198.18.1.0/+24", "198.18.1.0/ 24",
			     "198.18.1.0/24 ",	"198.18.1.0/024", "198.18.1.0/00",
			     "198.18.1.0/2a",	"198.18.1.0/100", "/24",
			     "198.18.1/24",	"198.18.1.0//24", "198.18.1.0/24/24",
			     "1.2.3.4.5/24",	"x/24",		  "",
			     "198.18.1.0/0x10", "198.18.1.256/24"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (na_cidr_parse(bad[i], &a, &p) == 0)
			fail_msg("accepted cidr \"%s\"", bad[i]);
	assert_int_equal(na_cidr_parse(NULL, &a, &p), -1);
}

static void test_mac(void **state)
{
	(void)state;
	uint8_t m[6];
	char buf[18];
	const uint8_t want[6] = {0x02, 0xab, 0xcd, 0xef, 0x01, 0x23};

	assert_int_equal(na_mac_parse("02:ab:cd:ef:01:23", m), 0);
	assert_memory_equal(m, want, 6);
	assert_int_equal(na_mac_parse("02:AB:Cd:eF:01:23", m), 0);
	assert_memory_equal(m, want, 6);
	na_mac_fmt(m, buf, sizeof(buf));
	assert_string_equal(buf, "02:ab:cd:ef:01:23");
	assert_int_equal(na_mac_parse("fe:ff:ff:ff:ff:ff", m), 0);
	assert_int_equal(na_mac_parse("00:00:00:00:00:01", m), 0);

	const char *bad[] = {
	    "00:00:00:00:00:00", /* zero */
	    "01:00:5e:00:00:01", /* multicast */
	    "ff:ff:ff:ff:ff:ff", /* broadcast */
	    "03:00:00:00:00:01", /* group bit with local bit */
	    "02:ab:cd:ef:01",
	    "02:ab:cd:ef:01:23:45",
	    "02-ab-cd-ef-01-23",
	    "02:ab:cd:ef:01:2",
	    "2:ab:cd:ef:01:23",
	    "02:ab:cd:ef:01:2g",
	    "02abcdef0123",
	    "02:ab:cd:ef:01:23 ",
	    " 2:ab:cd:ef:01:23",
	    "02:ab:cd:ef:01:23:",
	    "",
	    "02:ab:cd:ef:0123:",
	    "02.ab.cd.ef.01.23",
	    "0x:ab:cd:ef:01:23",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (na_mac_parse(bad[i], m) == 0)
			fail_msg("accepted mac \"%s\"", bad[i]);
	assert_int_equal(na_mac_parse(NULL, m), -1);
}

static void test_int_parse(void **state)
{
	(void)state;
	int out = 7;
	assert_int_equal(na_int_parse("0", 0, 10, &out), 0);
	assert_int_equal(out, 0);
	assert_int_equal(na_int_parse("-5", -10, 10, &out), 0);
	assert_int_equal(out, -5);
	assert_int_equal(na_int_parse("2147483647", 0, 2147483647, &out), 0);
	assert_int_equal(out, 2147483647);
	static const char *const bad[] = {
	    "", "-", "11", "-11", "1x", " 1", "+1", "1 ", "0x1", "99999999999999999999", "--1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		out = 7;
		if (na_int_parse(bad[i], -10, 10, &out) == 0)
			fail_msg("accepted \"%s\"", bad[i]);
		assert_int_equal(out, 7);
	}
}

static void test_env_int(void **state)
{
	(void)state;
	const char *v = "NA_TEST_KNOB";
	int out = -1;
	na_err_t err = NA_ERR_INIT;
	unsetenv(v);
	assert_int_equal(na_env_int(v, 300, 1, 1000, &out, &err), 0);
	assert_int_equal(out, 300);
	setenv(v, "", 1);
	assert_int_equal(na_env_int(v, 300, 1, 1000, &out, &err), 0);
	assert_int_equal(out, 300);
	setenv(v, "1000", 1);
	assert_int_equal(na_env_int(v, 300, 1, 1000, &out, &err), 0);
	assert_int_equal(out, 1000);
	static const char *const bad[] = {"0", "1001", "12ms", " 5", "0x10", "-3", "99999999999"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		out = 7;
		na_err_clear(&err);
		setenv(v, bad[i], 1);
		if (na_env_int(v, 300, 1, 1000, &out, &err) == 0)
			fail_msg("accepted %s=\"%s\"", v, bad[i]);
		assert_int_equal(err.status, 2);
		assert_non_null(strstr(err.msg, "NA_TEST_KNOB must be an integer in 1..1000"));
		assert_int_equal(out, 7);
	}
	unsetenv(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_name_valid), cmocka_unit_test(test_name_check),
	    cmocka_unit_test(test_body_parse), cmocka_unit_test(test_fields),
	    cmocka_unit_test(test_ipv4),       cmocka_unit_test(test_cidr),
	    cmocka_unit_test(test_mac),	       cmocka_unit_test(test_env_int),
	    cmocka_unit_test(test_int_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
