/* Container specs: every refusal names its field, defaults are filled in,
 * equivalent bodies have one canonical form. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "provision/role.h"
#include "provision/spec.h"

static const pv_limits_t lim = {
    .mem_total_mb = 4096, .have_memory = 1, .have_cpu = 1, .have_pids = 1};

static int parse(const char *js, pv_spec_t *s, na_err_t *err, const pv_limits_t *l)
{
	json_error_t je;
	json_t *b = json_loads(js, JSON_REJECT_DUPLICATES, &je);
	if (!b)
		fail_msg("test JSON does not parse: %s: %s", js, je.text);
	na_err_clear(err);
	int rc = pv_spec_parse(b, l ? l : &lim, s, err);
	json_decref(b);
	return rc;
}

/* body must be refused with status/code and field. */
static void refused(const char *js, int status, const char *code, const char *field)
{
	pv_spec_t s;
	na_err_t e;
	if (parse(js, &s, &e, NULL) == 0)
		fail_msg("accepted: %s", js);
	if (e.status != status || strcmp(e.code, code) || strcmp(e.field, field))
		fail_msg("%s: got %d %s field '%s' (%s), want %d %s field '%s'", js, e.status,
			 e.code, e.field, e.msg, status, code, field);
	assert_true(e.msg[0] != 0);
	pv_spec_free(&s);
}

static void test_defaults(void **state)
{
	(void)state;
	pv_spec_t s;
	na_err_t e;
	assert_int_equal(parse("{\"command\":[\"/bin/true\"]}", &s, &e, NULL), 0);
	assert_string_equal(s.role->name, "generic");
	assert_int_equal(s.rootfs_image, 0);
	assert_int_equal(s.argc, 1);
	assert_string_equal(s.argv[0], "/bin/true");
	assert_null(s.argv[1]);
	assert_int_equal(s.uid, 65534);
	assert_int_equal(s.gid, 65534);
	assert_int_equal(s.caps, 0);
	assert_int_equal(s.restart, PV_RESTART_NEVER);
	assert_int_equal(s.stop_timeout_s, 10);
	assert_int_equal(s.shm_mb, 64);
	json_t *c = pv_spec_json(&s);
	assert_string_equal(json_string_value(json_object_get(c, "restart")), "never");
	assert_string_equal(json_string_value(json_object_get(json_object_get(c, "image"), "type")),
			    "host");
	assert_int_equal(json_integer_value(json_object_get(c, "stop_timeout_s")), 10);
	json_decref(c);
	pv_spec_free(&s);
}

static void test_full(void **state)
{
	(void)state;
	pv_spec_t s;
	na_err_t e;
	const char *js =
	    "{\"role\":\"generic\",\"image\":{\"type\":\"rootfs\",\"path\":\"/srv/img\"},"
	    "\"command\":[\"sh\",\"-c\",\"\"],\"env\":{\"B\":\"2\",\"A\":\"1\"},"
	    "\"networks\":[{\"network\":\"n1\",\"ip\":\"198.18.1.2/24\"},{\"network\":\"n2\"}],"
	    "\"volumes\":[{\"name\":\"data\",\"mount\":\"/var/lib/x\"}],"
	    "\"resources\":{\"memory_mb\":64,\"cpu_shares\":512,\"pids_max\":100},"
	    "\"restart\":\"on-failure\",\"stop_timeout_s\":0,"
	    "\"user\":{\"uid\":0},\"capabilities\":[\"NET_BIND_SERVICE\",\"CAP_CHOWN\"]}";
	assert_int_equal(parse(js, &s, &e, NULL), 0);
	assert_int_equal(s.rootfs_image, 1);
	assert_string_equal(s.rootfs, "/srv/img");
	assert_int_equal(s.argc, 3);
	assert_string_equal(s.argv[2], "");
	assert_int_equal(s.nenv, 2);
	assert_string_equal(s.env[0], "A=1"); /* sorted */
	assert_int_equal(s.nnets, 2);
	assert_string_equal(s.nets[0].ip, "198.18.1.2/24");
	assert_string_equal(s.nets[1].ip, "");
	assert_int_equal(s.nvols, 1);
	assert_int_equal(s.memory_mb, 64);
	assert_int_equal(s.cpu_shares, 512);
	assert_int_equal(s.pids_max, 100);
	assert_int_equal(s.restart, PV_RESTART_ON_FAILURE);
	assert_int_equal(s.stop_timeout_s, 0);
	assert_int_equal(s.uid, 0);
	assert_int_equal(s.gid, 0);
	assert_int_equal(s.caps, (1ULL << 10) | (1ULL << 0));
	/* /dev/shm is never more than half the memory limit. */
	assert_int_equal(s.shm_mb, 32);
	pv_spec_free(&s);
}

static void test_canonical(void **state)
{
	(void)state;
	pv_spec_t a, b, c;
	na_err_t e;
	char ta[17], tb[17], tc[17];
	assert_int_equal(parse("{\"command\":[\"x\"]}", &a, &e, NULL), 0);
	assert_int_equal(parse("{\"restart\":\"never\",\"image\":{\"type\":\"host\"},\"role\":"
			       "\"generic\",\"command\":[\"x\"],\"env\":{},\"stop_timeout_s\":10}",
			       &b, &e, NULL),
			 0);
	assert_int_equal(parse("{\"command\":[\"y\"]}", &c, &e, NULL), 0);
	json_t *ja = pv_spec_json(&a), *jb = pv_spec_json(&b), *jc = pv_spec_json(&c);
	assert_true(json_equal(ja, jb));
	assert_false(json_equal(ja, jc));
	pv_spec_tag(ja, ta);
	pv_spec_tag(jb, tb);
	pv_spec_tag(jc, tc);
	assert_string_equal(ta, tb);
	assert_string_not_equal(ta, tc);
	assert_int_equal(strlen(ta), 16);
	/* The canonical form parses back to itself. */
	pv_spec_t d;
	na_err_clear(&e);
	assert_int_equal(pv_spec_parse(ja, &lim, &d, &e), 0);
	json_t *jd = pv_spec_json(&d);
	assert_true(json_equal(ja, jd));
	json_decref(ja), json_decref(jb), json_decref(jc), json_decref(jd);
	pv_spec_free(&a), pv_spec_free(&b), pv_spec_free(&c), pv_spec_free(&d);
}

static void test_bad_common(void **state)
{
	(void)state;
	refused("{\"role\":\"db\",\"command\":[\"x\"]}", 422, "invalid_field", "role");
	refused("{\"role\":1,\"command\":[\"x\"]}", 422, "invalid_field", "role");
	refused("{\"command\":[\"x\"],\"colour\":1}", 422, "unknown_field", "colour");
	refused("{\"command\":[\"x\"],\"postgres\":{}}", 422, "unknown_field", "postgres");
	refused("{}", 422, "missing_field", "command");
	refused("{\"command\":\"/bin/true\"}", 422, "invalid_field", "command");
	refused("{\"command\":[]}", 422, "invalid_field", "command");
	refused("{\"command\":[\"\"]}", 422, "invalid_field", "command[0]");
	refused("{\"command\":[\"a\",2]}", 422, "invalid_field", "command[1]");
	refused("{\"command\":[\"x\"],\"env\":{\"A-B\":\"1\"}}", 422, "invalid_field", "env");
	refused("{\"command\":[\"x\"],\"env\":{\"1A\":\"1\"}}", 422, "invalid_field", "env");
	refused("{\"command\":[\"x\"],\"env\":{\"A\":1}}", 422, "invalid_field", "env.A");
	refused("{\"command\":[\"x\"],\"env\":[\"A=1\"]}", 422, "invalid_field", "env");
	refused("{\"command\":[\"x\"],\"restart\":\"sometimes\"}", 422, "invalid_field", "restart");
	refused("{\"command\":[\"x\"],\"stop_timeout_s\":-1}", 422, "out_of_range",
		"stop_timeout_s");
	refused("{\"command\":[\"x\"],\"stop_timeout_s\":1.5}", 422, "invalid_field",
		"stop_timeout_s");
}

static void test_bad_image(void **state)
{
	(void)state;
	refused("{\"command\":[\"x\"],\"image\":{\"type\":\"docker\"}}", 422, "invalid_field",
		"image.type");
	refused("{\"command\":[\"x\"],\"image\":{}}", 422, "missing_field", "image.type");
	refused("{\"command\":[\"x\"],\"image\":{\"type\":\"rootfs\"}}", 422, "missing_field",
		"image.path");
	refused("{\"command\":[\"x\"],\"image\":{\"type\":\"host\",\"path\":\"/x\"}}", 422,
		"unknown_field", "image.path");
	const char *bad[] = {"srv/img",	   "/",		"/srv/../etc",	"/srv/..", "/srv//img",
			     "/srv/./img", "/srv/img/", "/srv/\x01img", ""};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char js[200];
		snprintf(js, sizeof(js),
			 "{\"command\":[\"x\"],\"image\":{\"type\":\"rootfs\",\"path\":\"%s\"}}",
			 bad[i][0] == 1 ? "" : bad[i]);
		if (strchr(bad[i], '\x01'))
			snprintf(js, sizeof(js),
				 "{\"command\":[\"x\"],\"image\":{\"type\":\"rootfs\",\"path\":"
				 "\"/srv/\\u0001img\"}}");
		refused(js, 422, "invalid_field", "image.path");
	}
}

static void test_bad_volumes(void **state)
{
	(void)state;
	const char *names[] = {"a/b", "..", "../x", "A", "", "-a"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char js[200];
		snprintf(js, sizeof(js),
			 "{\"command\":[\"x\"],\"volumes\":[{\"name\":\"%s\",\"mount\":\"/d\"}]}",
			 names[i]);
		refused(js, 422, "invalid_name", "volumes[0].name");
	}
	const char *mounts[] = {"d",	   "/",	   "/a/../b",  "/proc", "/proc/sys",
				"/sys/fs", "/dev", "/dev/shm", "/a//b", "/a/"};
	for (size_t i = 0; i < sizeof(mounts) / sizeof(mounts[0]); i++) {
		char js[200];
		snprintf(js, sizeof(js),
			 "{\"command\":[\"x\"],\"volumes\":[{\"name\":\"v\",\"mount\":\"%s\"}]}",
			 mounts[i]);
		refused(js, 422, "invalid_field", "volumes[0].mount");
	}
	/* Not below /proc: /procfs is fine. */
	pv_spec_t s;
	na_err_t e;
	assert_int_equal(
	    parse("{\"command\":[\"x\"],\"volumes\":[{\"name\":\"v\",\"mount\":\"/procfs\"}]}", &s,
		  &e, NULL),
	    0);
	pv_spec_free(&s);
	refused("{\"command\":[\"x\"],\"volumes\":[{\"name\":\"v\",\"mount\":\"/a\"},"
		"{\"name\":\"v\",\"mount\":\"/b\"}]}",
		422, "invalid_field", "volumes[1].name");
	refused("{\"command\":[\"x\"],\"volumes\":[{\"name\":\"v\",\"mount\":\"/a\"},"
		"{\"name\":\"w\",\"mount\":\"/a\"}]}",
		422, "invalid_field", "volumes[1].mount");
	refused("{\"command\":[\"x\"],\"volumes\":[{\"name\":\"v\"}]}", 422, "missing_field",
		"volumes[0].mount");
	refused("{\"command\":[\"x\"],\"volumes\":[\"v\"]}", 422, "invalid_field", "volumes[0]");
}

static void test_bad_networks(void **state)
{
	(void)state;
	refused("{\"command\":[\"x\"],\"networks\":[{\"network\":\"N1\"}]}", 422, "invalid_name",
		"networks[0].network");
	refused("{\"command\":[\"x\"],\"networks\":[{\"network\":\"n1\"},{\"network\":\"n1\"}]}",
		422, "invalid_field", "networks[1].network");
	refused("{\"command\":[\"x\"],\"networks\":[{\"network\":\"n1\",\"ip\":\"198.18.1\"}]}",
		422, "invalid_field", "networks[0].ip");
	refused("{\"command\":[\"x\"],\"networks\":[{\"network\":\"n1\",\"ip\":\"2001:db8::1\"}]}",
		422, "invalid_field", "networks[0].ip");
	refused("{\"command\":[\"x\"],\"networks\":[{\"network\":\"n1\",\"mac\":\"x\"}]}", 422,
		"unknown_field", "networks[0].mac");
	refused("{\"command\":[\"x\"],\"networks\":[{\"network\":\"a\"},{\"network\":\"b\"},"
		"{\"network\":\"c\"},{\"network\":\"d\"},{\"network\":\"e\"},{\"network\":\"f\"},"
		"{\"network\":\"g\"},{\"network\":\"h\"},{\"network\":\"i\"}]}",
		422, "invalid_field", "networks");
}

static void test_bad_resources(void **state)
{
	(void)state;
	refused("{\"command\":[\"x\"],\"resources\":{\"memory_mb\":16}}", 422, "out_of_range",
		"resources.memory_mb");
	refused("{\"command\":[\"x\"],\"resources\":{\"memory_mb\":9999999}}", 422, "out_of_range",
		"resources.memory_mb");
	refused("{\"command\":[\"x\"],\"resources\":{\"memory_mb\":\"64\"}}", 422, "invalid_field",
		"resources.memory_mb");
	refused("{\"command\":[\"x\"],\"resources\":{\"cpu_shares\":-5}}", 422, "out_of_range",
		"resources.cpu_shares");
	refused("{\"command\":[\"x\"],\"resources\":{\"pids_max\":99999999999}}", 422,
		"out_of_range", "resources.pids_max");
	refused("{\"command\":[\"x\"],\"resources\":{\"swap\":1}}", 422, "unknown_field",
		"resources.swap");
	pv_limits_t nomem = lim;
	nomem.have_memory = 0;
	nomem.why_memory = "no memory cgroup controller is mounted";
	pv_spec_t s;
	na_err_t e;
	assert_int_equal(
	    parse("{\"command\":[\"x\"],\"resources\":{\"memory_mb\":64}}", &s, &e, &nomem), -1);
	assert_int_equal(e.status, 422);
	assert_string_equal(e.code, "unsupported");
	assert_string_equal(e.field, "resources.memory_mb");
	assert_non_null(strstr(e.msg, "no memory cgroup"));
	pv_spec_free(&s);
}

static void test_generic_fields(void **state)
{
	(void)state;
	refused("{\"command\":[\"x\"],\"capabilities\":[\"SYS_ADMIN\"]}", 422, "invalid_field",
		"capabilities[0]");
	refused("{\"command\":[\"x\"],\"capabilities\":[\"NET_ADMIN\"]}", 422, "invalid_field",
		"capabilities[0]");
	refused("{\"command\":[\"x\"],\"capabilities\":[\"FLY\"]}", 422, "invalid_field",
		"capabilities[0]");
	refused("{\"command\":[\"x\"],\"capabilities\":\"CHOWN\"}", 422, "invalid_field",
		"capabilities");
	refused("{\"command\":[\"x\"],\"user\":{\"uid\":-1}}", 422, "out_of_range", "user.uid");
	refused("{\"command\":[\"x\"],\"user\":{\"gid\":1}}", 422, "missing_field", "user.uid");
	refused("{\"command\":[\"x\"],\"user\":{\"uid\":1,\"name\":\"x\"}}", 422, "unknown_field",
		"user.name");
}

static void test_paths(void **state)
{
	(void)state;
	na_err_t e;
	assert_int_equal(pv_check_mount_target("/var/lib/postgresql", "m", &e), 0);
	assert_int_equal(pv_check_mount_target("/devices", "m", &e), 0);
	assert_int_equal(pv_check_mount_target("/dev", "m", &e), -1);
	assert_int_equal(pv_check_mount_target("/sys", "m", &e), -1);
	assert_int_equal(pv_check_host_path("/a/b", "p", &e), 0);
	assert_int_equal(pv_check_host_path("/a/b/..", "p", &e), -1);
	assert_int_equal(pv_check_host_path("/a/...", "p", &e), 0); /* a name, not ".." */
	assert_true(pv_env_name_valid("_X1"));
	assert_false(pv_env_name_valid("X Y"));
	assert_false(pv_env_name_valid(""));
	assert_int_equal(pv_cap_from_name("CAP_SYS_ADMIN"), 21);
	assert_string_equal(pv_cap_name(13), "NET_RAW");
	assert_null(pv_cap_name(200));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),	   cmocka_unit_test(test_full),
	    cmocka_unit_test(test_canonical),	   cmocka_unit_test(test_bad_common),
	    cmocka_unit_test(test_bad_image),	   cmocka_unit_test(test_bad_volumes),
	    cmocka_unit_test(test_bad_networks),   cmocka_unit_test(test_bad_resources),
	    cmocka_unit_test(test_generic_fields), cmocka_unit_test(test_paths),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
