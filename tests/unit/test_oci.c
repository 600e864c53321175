/* config.json from a spec: namespaces, mounts, security defaults, limits. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "provision/oci.h"
#include "provision/spec.h"

static pv_oci_ctx_t ctx(void)
{
	pv_oci_ctx_t c = {
	    .hostname = "web",
	    .netns = "/run/na/ctns/a1-web",
	    .cgroups_path = "/netagent/a1/web",
	    .root = "rootfs",
	    .volume_dir = "/var/lib/na/volumes/web",
	    .hosts_file = "/run/na/containers/web/hosts",
	    .rro = 1,
	    .memsw = 1,
	    .host_dirs = {"/lib32"},
	    .nhost_dirs = 1,
	};
	return c;
}

static json_t *build(const char *js, const pv_oci_ctx_t *c)
{
	static const pv_limits_t lim = {4096, 1, 1, 1, NULL, NULL, NULL};
	pv_spec_t s;
	na_err_t e = NA_ERR_INIT;
	json_t *b = json_loads(js, 0, NULL);
	assert_non_null(b);
	if (pv_spec_parse(b, &lim, &s, &e) < 0)
		fail_msg("spec refused: %s", e.msg);
	json_t *cfg = pv_oci_config(&s, c, &e);
	assert_non_null(cfg);
	pv_spec_free(&s);
	json_decref(b);
	return cfg;
}

static json_t *mount_at(json_t *cfg, const char *dest)
{
	size_t i;
	json_t *m;
	json_array_foreach(
	    json_object_get(cfg, "mounts"), i,
	    m) if (!strcmp(json_string_value(json_object_get(m, "destination")), dest)) return m;
	return NULL;
}

static int has_str(json_t *arr, const char *s)
{
	size_t i;
	json_t *v;
	json_array_foreach(arr, i,
			   v) if (json_is_string(v) && !strcmp(json_string_value(v), s)) return 1;
	return 0;
}

static void test_host_image(void **state)
{
	(void)state;
	pv_oci_ctx_t c = ctx();
	json_t *cfg = build("{\"command\":[\"/bin/sh\",\"-c\",\"echo hi\"],"
			    "\"volumes\":[{\"name\":\"data\",\"mount\":\"/var/lib/x\"}]}",
			    &c);
	json_t *root = json_object_get(cfg, "root"), *lx = json_object_get(cfg, "linux");
	assert_string_equal(json_string_value(json_object_get(root, "path")), "rootfs");
	assert_true(json_is_true(json_object_get(root, "readonly")));
	assert_string_equal(json_string_value(json_object_get(cfg, "hostname")), "web");
	assert_string_equal(json_string_value(json_object_get(lx, "cgroupsPath")),
			    "/netagent/a1/web");
	/* The network namespace is joined, the others are new. */
	size_t i;
	json_t *ns;
	int seen = 0;
	json_array_foreach(json_object_get(lx, "namespaces"), i, ns)
	{
		const char *t = json_string_value(json_object_get(ns, "type"));
		json_t *p = json_object_get(ns, "path");
		if (!strcmp(t, "network")) {
			assert_string_equal(json_string_value(p), "/run/na/ctns/a1-web");
		} else {
			assert_null(p);
		}
		seen++;
	}
	assert_int_equal(seen, 6);
	json_t *usr = mount_at(cfg, "/usr"), *etc = mount_at(cfg, "/etc");
	assert_non_null(usr);
	assert_true(has_str(json_object_get(usr, "options"), "rro"));
	assert_true(has_str(json_object_get(etc, "options"), "rro"));
	assert_true(has_str(json_object_get(etc, "options"), "nosuid"));
	assert_non_null(mount_at(cfg, "/lib32"));
	json_t *tmp = mount_at(cfg, "/tmp");
	assert_string_equal(json_string_value(json_object_get(tmp, "type")), "tmpfs");
	assert_true(has_str(json_object_get(tmp, "options"), "mode=1777"));
	assert_non_null(mount_at(cfg, "/var"));
	assert_non_null(mount_at(cfg, "/run"));
	assert_non_null(mount_at(cfg, "/proc"));
	json_t *shm = mount_at(cfg, "/dev/shm");
	assert_true(has_str(json_object_get(shm, "options"), "size=64m"));
	json_t *hosts = mount_at(cfg, "/etc/hosts");
	assert_string_equal(json_string_value(json_object_get(hosts, "source")),
			    "/run/na/containers/web/hosts");
	assert_true(has_str(json_object_get(hosts, "options"), "ro"));
	json_t *vol = mount_at(cfg, "/var/lib/x");
	assert_string_equal(json_string_value(json_object_get(vol, "source")),
			    "/var/lib/na/volumes/web/data");
	assert_true(has_str(json_object_get(vol, "options"), "rw"));
	/* A volume comes after the tmpfs /var it lands in. */
	json_t *ms = json_object_get(cfg, "mounts");
	size_t ivar = 0, ivol = 0;
	json_t *m;
	json_array_foreach(ms, i, m)
	{
		const char *d = json_string_value(json_object_get(m, "destination"));
		if (!strcmp(d, "/var"))
			ivar = i;
		if (!strcmp(d, "/var/lib/x"))
			ivol = i;
	}
	assert_true(ivar < ivol);
	json_decref(cfg);
}

static void test_security(void **state)
{
	(void)state;
	pv_oci_ctx_t c = ctx();
	json_t *cfg = build("{\"command\":[\"x\"]}", &c);
	json_t *p = json_object_get(cfg, "process"), *lx = json_object_get(cfg, "linux");
	assert_true(json_is_true(json_object_get(p, "noNewPrivileges")));
	assert_false(json_is_true(json_object_get(p, "terminal")));
	json_t *u = json_object_get(p, "user");
	assert_int_equal(json_integer_value(json_object_get(u, "uid")), 65534);
	json_t *caps = json_object_get(p, "capabilities");
	const char *sets[] = {"bounding", "effective", "permitted", "inheritable", "ambient"};
	for (size_t i = 0; i < 5; i++)
		assert_int_equal(json_array_size(json_object_get(caps, sets[i])), 0);
	assert_true(has_str(json_object_get(lx, "maskedPaths"), "/proc/kcore"));
	assert_true(has_str(json_object_get(lx, "maskedPaths"), "/proc/keys"));
	assert_true(has_str(json_object_get(lx, "readonlyPaths"), "/proc/sys"));
	assert_true(has_str(json_object_get(lx, "readonlyPaths"), "/proc/sysrq-trigger"));
	json_t *sc = json_object_get(lx, "seccomp");
	assert_string_equal(json_string_value(json_object_get(sc, "defaultAction")),
			    "SCMP_ACT_ALLOW");
	json_t *rules = json_object_get(sc, "syscalls");
	json_t *deny = json_object_get(json_array_get(rules, 0), "names");
	const char *must[] = {"mount",	     "umount2",	     "unshare",		  "setns",
			      "init_module", "finit_module", "kexec_load",	  "bpf",
			      "keyctl",	     "ptrace",	     "open_by_handle_at", "pivot_root"};
	for (size_t i = 0; i < sizeof(must) / sizeof(must[0]); i++)
		if (!has_str(deny, must[i]))
			fail_msg("seccomp does not deny %s", must[i]);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(rules, 0), "errnoRet")),
			 1);
	json_t *clone = json_array_get(rules, 1),
	       *arg = json_array_get(json_object_get(clone, "args"), 0);
	assert_true(has_str(json_object_get(clone, "names"), "clone"));
	assert_int_equal(json_integer_value(json_object_get(arg, "value")), 0x10000000);
	assert_string_equal(json_string_value(json_object_get(arg, "op")), "SCMP_CMP_MASKED_EQ");
	json_t *c3 = json_array_get(rules, 2);
	assert_true(has_str(json_object_get(c3, "names"), "clone3"));
	assert_int_equal(json_integer_value(json_object_get(c3, "errnoRet")), 38);
	/* Devices: deny-all cgroup rule (runc adds the standard ones). */
	json_t *dev =
	    json_array_get(json_object_get(json_object_get(lx, "resources"), "devices"), 0);
	assert_false(json_is_true(json_object_get(dev, "allow")));
	json_decref(cfg);
}

static void test_caps_and_env(void **state)
{
	(void)state;
	pv_oci_ctx_t c = ctx();
	json_t *cfg = build("{\"command\":[\"x\"],\"capabilities\":[\"NET_BIND_SERVICE\"],"
			    "\"env\":{\"PATH\":\"/opt/bin\",\"X\":\"1\"}}",
			    &c);
	json_t *p = json_object_get(cfg, "process");
	json_t *caps = json_object_get(p, "capabilities");
	/* Non-root: ambient is what survives execve. */
	assert_true(has_str(json_object_get(caps, "ambient"), "CAP_NET_BIND_SERVICE"));
	assert_true(has_str(json_object_get(caps, "bounding"), "CAP_NET_BIND_SERVICE"));
	assert_int_equal(json_array_size(json_object_get(caps, "bounding")), 1);
	json_t *env = json_object_get(p, "env");
	assert_true(has_str(env, "PATH=/opt/bin"));
	assert_true(has_str(env, "X=1"));
	assert_true(has_str(env, "HOSTNAME=web"));
	assert_true(has_str(env, "HOME=/tmp"));
	size_t i;
	json_t *v;
	int paths = 0;
	json_array_foreach(env, i, v) paths += !strncmp(json_string_value(v), "PATH=", 5);
	assert_int_equal(paths, 1);
	json_decref(cfg);
}

static void test_resources(void **state)
{
	(void)state;
	pv_oci_ctx_t c = ctx();
	json_t *cfg = build("{\"command\":[\"x\"],\"resources\":{\"memory_mb\":64,\"cpu_shares\":"
			    "256,\"pids_max\":50}}",
			    &c);
	json_t *r = json_object_get(json_object_get(cfg, "linux"), "resources");
	json_t *mem = json_object_get(r, "memory");
	assert_int_equal(json_integer_value(json_object_get(mem, "limit")), 64 << 20);
	assert_int_equal(json_integer_value(json_object_get(mem, "swap")), 64 << 20);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "cpu"), "shares")),
			 256);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "pids"), "limit")),
			 50);
	/* /dev/shm and the tmpfs mounts stay within the limit. */
	assert_true(has_str(json_object_get(mount_at(cfg, "/dev/shm"), "options"), "size=32m"));
	assert_true(has_str(json_object_get(mount_at(cfg, "/tmp"), "options"), "size=64m"));
	json_decref(cfg);
	c.memsw = 0;
	c.rro = 0;
	cfg = build("{\"command\":[\"x\"],\"resources\":{\"memory_mb\":64}}", &c);
	r = json_object_get(json_object_get(cfg, "linux"), "resources");
	assert_null(json_object_get(json_object_get(r, "memory"), "swap"));
	assert_true(has_str(json_object_get(mount_at(cfg, "/usr"), "options"), "ro"));
	assert_false(has_str(json_object_get(mount_at(cfg, "/usr"), "options"), "rro"));
	assert_null(json_object_get(r, "cpu"));
	json_decref(cfg);
}

static void test_rootfs_image(void **state)
{
	(void)state;
	pv_oci_ctx_t c = ctx();
	c.root = "/srv/img";
	json_t *cfg = build("{\"command\":[\"x\"],\"image\":{\"type\":\"rootfs\",\"path\":"
			    "\"/srv/img\"}}",
			    &c);
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(cfg, "root"), "path")), "/srv/img");
	assert_null(mount_at(cfg, "/usr"));
	assert_null(mount_at(cfg, "/etc"));
	assert_null(mount_at(cfg, "/var"));
	assert_non_null(mount_at(cfg, "/tmp"));
	json_decref(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_host_image),	 cmocka_unit_test(test_security),
	    cmocka_unit_test(test_caps_and_env), cmocka_unit_test(test_resources),
	    cmocka_unit_test(test_rootfs_image),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
