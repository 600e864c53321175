/* config.json for runc: namespaces, mounts of the host or rootfs image,
 * the security defaults and the cgroup limits. Why each default is what it
 * is: docs/containers.md and /work/shared/notes/runc-field-notes.md. */
#include "provision/oci.h"
#include "netagent/util.h"
#include "provision/role.h"

#include <stdio.h>
#include <string.h>

/* runc spec's lists: /proc files that leak host information or let a
 * process poke the kernel. */
static const char *const masked[] = {
    "/proc/acpi",	   "/proc/asound",     "/proc/kcore",	    "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
    "/sys/firmware",	   "/proc/scsi",
};
static const char *const readonly[] = {
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

/* What a database host never needs and what containers have escaped
 * through: mounts, namespaces, module and kexec loading, keyrings, bpf,
 * ptrace and cross-process memory access, clocks, swap, reboot. EPERM, as
 * if the capability were missing. */
static const char *const denied[] = {
    "mount",
    "umount2",
    "mount_setattr",
    "fsopen",
    "fsmount",
    "fsconfig",
    "move_mount",
    "open_tree",
    "fspick",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "bpf",
    "keyctl",
    "add_key",
    "request_key",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "reboot",
    "swapon",
    "swapoff",
    "open_by_handle_at",
    "perf_event_open",
    "userfaultfd",
    "acct",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "iopl",
    "ioperm",
    "quotactl",
    "syslog",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "uselib",
    "lookup_dcookie",
};

static json_t *strv(const char *const *v, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

json_t *pv_oci_seccomp(void)
{
#if defined(__x86_64__)
	const char *const arches[] = {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"};
#elif defined(__aarch64__)
	const char *const arches[] = {"SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"};
#else
	const char *const arches[] = {"SCMP_ARCH_NATIVE"};
#endif
	json_t *rules = json_array();
	json_array_append_new(rules, json_pack("{s:o, s:s, s:i}", "names",
					       strv(denied, NA_ARRAY_SIZE(denied)), "action",
					       "SCMP_ACT_ERRNO", "errnoRet", 1));
	/* unshare is denied above, but clone() can make a user namespace too,
	 * where the child holds every capability of that namespace. The flag
	 * is in argument 0 on x86 and arm. */
	json_array_append_new(rules,
			      json_pack("{s:[s], s:s, s:i, s:[{s:i, s:I, s:I, s:s}]}", "names",
					"clone", "action", "SCMP_ACT_ERRNO", "errnoRet", 1, "args",
					"index", 0, "value", (json_int_t)0x10000000, "valueTwo",
					(json_int_t)0x10000000, "op", "SCMP_CMP_MASKED_EQ"));
	/* clone3 takes its flags in a struct seccomp cannot read: ENOSYS makes
	 * glibc fall back to clone(), where the rule above applies (EPERM
	 * would make every pthread_create fail). */
	json_array_append_new(rules, json_pack("{s:[s], s:s, s:i}", "names", "clone3", "action",
					       "SCMP_ACT_ERRNO", "errnoRet", 38));
	return json_pack("{s:s, s:o, s:o}", "defaultAction", "SCMP_ACT_ALLOW", "architectures",
			 strv(arches, NA_ARRAY_SIZE(arches)), "syscalls", rules);
}

static json_t *mnt(const char *dest, const char *type, const char *src, const char *const *opts,
		   size_t n)
{
	return json_pack("{s:s, s:s, s:s, s:o}", "destination", dest, "type", type, "source", src,
			 "options", strv(opts, n));
}

static json_t *tmpfs(const char *dest, unsigned mode, unsigned size_mb, unsigned uid, unsigned gid,
		     int noexec)
{
	char m[24], sz[32], u[24], g[24];
	snprintf(m, sizeof(m), "mode=%o", mode);
	snprintf(sz, sizeof(sz), "size=%um", size_mb);
	snprintf(u, sizeof(u), "uid=%u", uid);
	snprintf(g, sizeof(g), "gid=%u", gid);
	const char *o[] = {"nosuid", "nodev", m, sz, u, g, "noexec"};
	return mnt(dest, "tmpfs", "tmpfs", o, noexec ? 7 : 6);
}

static void add_system_mounts(json_t *ms, const pv_spec_t *s)
{
	char shm[32];
	static const char *const proc[] = {"nosuid", "noexec", "nodev"};
	static const char *const dev[] = {"nosuid", "strictatime", "mode=755", "size=65536k"};
	static const char *const pts[] = {"nosuid",	   "noexec",	"newinstance",
					  "ptmxmode=0666", "mode=0620", "gid=5"};
	static const char *const mq[] = {"nosuid", "noexec", "nodev"};
	static const char *const sys[] = {"nosuid", "noexec", "nodev", "ro"};
	static const char *const cg[] = {"nosuid", "noexec", "nodev", "relatime", "ro"};
	snprintf(shm, sizeof(shm), "size=%um", s->shm_mb ? s->shm_mb : 64);
	const char *shmo[] = {"nosuid", "noexec", "nodev", "mode=1777", shm};
	json_array_append_new(ms, mnt("/proc", "proc", "proc", proc, NA_ARRAY_SIZE(proc)));
	json_array_append_new(ms, mnt("/dev", "tmpfs", "tmpfs", dev, NA_ARRAY_SIZE(dev)));
	json_array_append_new(ms, mnt("/dev/pts", "devpts", "devpts", pts, NA_ARRAY_SIZE(pts)));
	json_array_append_new(ms, mnt("/dev/shm", "tmpfs", "shm", shmo, NA_ARRAY_SIZE(shmo)));
	json_array_append_new(ms, mnt("/dev/mqueue", "mqueue", "mqueue", mq, NA_ARRAY_SIZE(mq)));
	json_array_append_new(ms, mnt("/sys", "sysfs", "sysfs", sys, NA_ARRAY_SIZE(sys)));
	json_array_append_new(ms, mnt("/sys/fs/cgroup", "cgroup", "cgroup", cg, NA_ARRAY_SIZE(cg)));
}

static void add_image_mounts(json_t *ms, const pv_spec_t *s, const pv_oci_ctx_t *c)
{
	const char *ro = c->rro ? "rro" : "ro";
	/* tmpfs is charged to the memory cgroup: with a limit, no tmpfs is
	 * bigger than the limit (a full one then OOMs the container, not the
	 * host); without one, a cap keeps a runaway writer off the host's RAM. */
	unsigned big = 128, small = 16;
	if (s->memory_mb && s->memory_mb < big)
		big = (unsigned)s->memory_mb;
	if (!s->rootfs_image) {
		const char *usr[] = {"rbind", ro, "nodev"};
		const char *etc[] = {"rbind", ro, "nosuid", "nodev"};
		json_array_append_new(ms, mnt("/usr", "bind", "/usr", usr, 3));
		json_array_append_new(ms, mnt("/etc", "bind", "/etc", etc, 4));
		for (size_t i = 0; i < c->nhost_dirs; i++)
			json_array_append_new(
			    ms, mnt(c->host_dirs[i], "bind", c->host_dirs[i], usr, 3));
	}
	/* Writable scratch space on a read-only root. */
	json_array_append_new(ms, tmpfs("/tmp", 01777, big, 0, 0, 0));
	json_array_append_new(ms, tmpfs("/run", 0755, small, 0, 0, 0));
	if (!s->rootfs_image)
		json_array_append_new(ms, tmpfs("/var", 0755, big, 0, 0, 0));
	for (size_t i = 0; i < s->ntmpfs; i++) {
		const pv_tmpfs_t *t = &s->tmpfs[i];
		json_array_append_new(ms, tmpfs(t->dest, t->mode, t->size_mb ? t->size_mb : small,
						t->uid, t->gid, 1));
	}
	static const char *const fro[] = {"bind", "ro", "nosuid", "nodev", "noexec"};
	if (c->hosts_file)
		json_array_append_new(ms, mnt("/etc/hosts", "bind", c->hosts_file, fro, 5));
	if (c->hostname_file)
		json_array_append_new(ms, mnt("/etc/hostname", "bind", c->hostname_file, fro, 5));
	static const char *const vo[] = {"bind", "rw", "nosuid", "nodev"};
	static const char *const bro[] = {"bind", "ro", "nosuid", "nodev", "noexec"};
	static const char *const brw[] = {"bind", "rw", "nosuid", "nodev", "noexec"};
	for (size_t i = 0; c->run_dir && i < s->nbinds; i++) {
		char src[600];
		if (s->binds[i].src[0])
			snprintf(src, sizeof(src), "%s", s->binds[i].src);
		else
			snprintf(src, sizeof(src), "%s/%s", c->run_dir, s->binds[i].sub);
		json_array_append_new(
		    ms, mnt(s->binds[i].dest, "bind", src, s->binds[i].rw ? brw : bro, 5));
	}
	for (size_t i = 0; i < s->nvols; i++) {
		char src[600];
		snprintf(src, sizeof(src), "%s/%s", c->volume_dir, s->vols[i].name);
		json_array_append_new(ms, mnt(s->vols[i].mount, "bind", src, vo, 4));
	}
}

static json_t *caps_json(uint64_t caps)
{
	json_t *a = json_array();
	char n[40];
	for (int i = 0; i < 64; i++)
		if (caps & (1ULL << i) && pv_cap_name(i)) {
			snprintf(n, sizeof(n), "CAP_%s", pv_cap_name(i));
			json_array_append_new(a, json_string(n));
		}
	return a;
}

static json_t *process_json(const pv_spec_t *s, const pv_oci_ctx_t *c)
{
	json_t *args = json_array(), *env = json_array(), *gids = json_array();
	for (size_t i = 0; i < s->argc; i++)
		json_array_append_new(args, json_string(s->argv[i]));
	/* Defaults first; a user variable of the same name replaces it. */
	const char *defs[][2] = {
	    {"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
	    {"HOME", s->uid ? "/tmp" : "/root"},
	    {"HOSTNAME", c->hostname},
	    {"container", "netagent"},
	};
	for (size_t d = 0; d < NA_ARRAY_SIZE(defs); d++) {
		size_t kl = strlen(defs[d][0]), i;
		for (i = 0; i < s->nenv; i++)
			if (!strncmp(s->env[i], defs[d][0], kl) && s->env[i][kl] == '=')
				break;
		if (i == s->nenv) {
			char kv[512];
			snprintf(kv, sizeof(kv), "%s=%s", defs[d][0], defs[d][1]);
			json_array_append_new(env, json_string(kv));
		}
	}
	for (size_t i = 0; i < s->nenv; i++)
		json_array_append_new(env, json_string(s->env[i]));
	for (size_t i = 0; i < s->ngids; i++)
		json_array_append_new(gids, json_integer(s->gids[i]));
	json_t *user = json_pack("{s:i, s:i}", "uid", (int)s->uid, "gid", (int)s->gid);
	if (s->ngids)
		json_object_set_new(user, "additionalGids", gids);
	else
		json_decref(gids);
	/* Every set the same: for a non-root user the ambient set is what
	 * survives execve, and it must be a subset of permitted and
	 * inheritable. */
	json_t *caps = json_pack("{s:o, s:o, s:o, s:o, s:o}", "bounding", caps_json(s->caps),
				 "effective", caps_json(s->caps), "permitted", caps_json(s->caps),
				 "inheritable", caps_json(s->caps), "ambient", caps_json(s->caps));
	json_int_t nofile = c->nofile ? (json_int_t)c->nofile : 1024;
	return json_pack("{s:b, s:o, s:o, s:o, s:s, s:o, s:b, s:[{s:s, s:I, s:I}]}", "terminal", 0,
			 "user", user, "args", args, "env", env, "cwd", "/", "capabilities", caps,
			 "noNewPrivileges", 1, "rlimits", "type", "RLIMIT_NOFILE", "hard", nofile,
			 "soft", nofile);
}

static json_t *resources_json(const pv_spec_t *s, const pv_oci_ctx_t *c)
{
	json_t *r = json_pack("{s:[{s:b, s:s}]}", "devices", "allow", 0, "access", "rwm");
	if (s->memory_mb) {
		json_int_t b = (json_int_t)s->memory_mb << 20;
		json_t *m = json_pack("{s:I}", "limit", b);
		/* swap = limit: memory+swap capped at the limit, so the limit
		 * is not exceeded through swap. */
		if (c->memsw)
			json_object_set_new(m, "swap", json_integer(b));
		json_object_set_new(r, "memory", m);
	}
	if (s->cpu_shares)
		json_object_set_new(r, "cpu",
				    json_pack("{s:I}", "shares", (json_int_t)s->cpu_shares));
	if (s->pids_max)
		json_object_set_new(r, "pids",
				    json_pack("{s:I}", "limit", (json_int_t)s->pids_max));
	return r;
}

json_t *pv_oci_config(const pv_spec_t *s, const pv_oci_ctx_t *c, na_err_t *err)
{
	json_t *ms = json_array();
	add_system_mounts(ms, s);
	add_image_mounts(ms, s, c);
	json_t *ns = json_pack("[{s:s}, {s:s}, {s:s}, {s:s}, {s:s}, {s:s, s:s}]", "type", "pid",
			       "type", "ipc", "type", "uts", "type", "mount", "type", "cgroup",
			       "type", "network", "path", c->netns);
	json_t *lnx = json_pack("{s:o, s:s, s:o, s:o, s:o, s:o, s:{s:s}}", "namespaces", ns,
				"cgroupsPath", c->cgroups_path, "resources", resources_json(s, c),
				"maskedPaths", strv(masked, NA_ARRAY_SIZE(masked)), "readonlyPaths",
				strv(readonly, NA_ARRAY_SIZE(readonly)), "seccomp",
				pv_oci_seccomp(), "sysctl",
				/* Unprivileged ICMP sockets in the container's own network
				 * namespace: ping works without CAP_NET_RAW. */
				"net.ipv4.ping_group_range", "0 2147483647");
	json_t *cfg = json_pack("{s:s, s:o, s:{s:s, s:b}, s:s, s:o, s:o, s:{s:s}}", "ociVersion",
				"1.0.2-dev", "process", process_json(s, c), "root", "path", c->root,
				"readonly", 1, "hostname", c->hostname, "mounts", ms, "linux", lnx,
				"annotations", "org.netagent.container", c->hostname);
	if (!cfg)
		na_err_errno(err, ENOMEM, "config.json");
	return cfg;
}
