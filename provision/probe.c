/* Which OCI runtime runs containers here, and what the host lets it do.
 * Probed once at start on a worker (it runs `runc --version` and `runc
 * features` and looks at the cgroup mounts); requests that need the answer
 * wait for it. */
#include "netagent/log.h"
#include "netagent/nsworker.h"
#include "netagent/util.h"
#include "provision/pv_int.h"

#include <fcntl.h>
#include <libgen.h>
#include <linux/magic.h>
#include <spawn.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <sys/wait.h>

extern char **environ;

static pv_wait_t *waiters;

/* First executable `name` on PATH (and the usual sbin dirs, which a
 * non-login root shell may lack). */
static int find_bin(const char *name, char *out, size_t n)
{
	const char *path = getenv("PATH");
	char dirs[2048];
	snprintf(dirs, sizeof(dirs),
		 "%s:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		 path ? path : "");
	char *save = NULL;
	for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		if (d[0] != '/')
			continue;
		snprintf(out, n, "%s/%s", d, name);
		if (access(out, X_OK) == 0)
			return 0;
	}
	out[0] = 0;
	return -1;
}

/* Runs argv (worker thread) and keeps up to n-1 bytes of its stdout. */
static int capture(char *const argv[], char *buf, size_t n)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	pid_t pid;
	int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	size_t got = 0;
	if (rc == 0) {
		ssize_t r;
		while ((r = read(p[0], buf + got, n - 1 - got)) > 0 && got + 1 < n)
			got += (size_t)r;
		int st;
		waitpid(pid, &st, 0);
		rc = WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
	}
	close(p[0]);
	buf[got] = 0;
	return rc;
}

static int fs_type(const char *path, long type)
{
	struct statfs s;
	return statfs(path, &s) == 0 && (long)s.f_type == type;
}

static void controllers(pv_probe_t *p, int v2)
{
	const char *names[] = {"memory", "cpu", "pids"};
	int *have[] = {&p->lim.have_memory, &p->lim.have_cpu, &p->lim.have_pids};
	char *why[] = {p->why_mem, p->why_cpu, p->why_pids};
	char ctl[512] = "";
	if (v2) {
		int fd = open("/sys/fs/cgroup/cgroup.controllers", O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			ssize_t r = read(fd, ctl, sizeof(ctl) - 1);
			ctl[r > 0 ? r : 0] = 0;
			close(fd);
		}
	}
	for (size_t i = 0; i < 3; i++) {
		char path[64];
		snprintf(path, sizeof(path), "/sys/fs/cgroup/%s", names[i]);
		*have[i] = v2 ? strstr(ctl, names[i]) != NULL : fs_type(path, CGROUP_SUPER_MAGIC);
		if (!*have[i])
			snprintf(why[i], 96, "no %s cgroup controller is mounted", names[i]);
	}
	p->lim.why_memory = p->why_mem;
	p->lim.why_cpu = p->why_cpu;
	p->lim.why_pids = p->why_pids;
	p->memsw = !v2 && access("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes", F_OK) == 0;
}

static void host_layout(pv_probe_t *p)
{
	static const char *const tops[] = {"bin", "sbin", "lib", "lib32", "lib64", "libx32"};
	for (size_t i = 0; i < NA_ARRAY_SIZE(tops); i++) {
		char path[32], target[64];
		struct stat st;
		snprintf(path, sizeof(path), "/%s", tops[i]);
		if (lstat(path, &st) < 0)
			continue;
		if (S_ISLNK(st.st_mode)) {
			ssize_t r = readlink(path, target, sizeof(target) - 1);
			if (r <= 0 || p->nlinks >= 8)
				continue;
			target[r] = 0;
			snprintf(p->link_name[p->nlinks], 16, "%s", tops[i]);
			snprintf(p->link_target[p->nlinks++], 64, "%s", target);
		} else if (S_ISDIR(st.st_mode) && p->nhost_dirs < 8) {
			snprintf(p->host_dirs[p->nhost_dirs++], 16, "/%s", tops[i]);
		}
	}
}

static int kernel_at_least(int maj, int min)
{
	struct utsname u;
	int a = 0, b = 0;
	return uname(&u) == 0 && sscanf(u.release, "%d.%d", &a, &b) == 2 &&
	       (a > maj || (a == maj && b >= min));
}

static int w_probe(void *arg, na_err_t *err)
{
	pv_probe_t *p = arg;
	(void)err;
	char crun[256], out[65536], self[512];
	int v2 = fs_type("/sys/fs/cgroup", CGROUP2_SUPER_MAGIC);
	int hybrid = !v2 && fs_type("/sys/fs/cgroup/unified", CGROUP2_SUPER_MAGIC);
	snprintf(p->cgroup, sizeof(p->cgroup), "%s",
		 v2	  ? "v2"
		 : hybrid ? "v1 (hybrid: cgroup2 at /sys/fs/cgroup/unified)"
			  : "v1");
	controllers(p, v2);
	host_layout(p);
	struct rlimit rl;
	p->nofile = 65536;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max < p->nofile)
		p->nofile = (unsigned long)rl.rlim_max;
	struct sysinfo si;
	if (sysinfo(&si) == 0)
		p->lim.mem_total_mb = (long long)(si.totalram * si.mem_unit >> 20);

	ssize_t r = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (r > 0) {
		self[r] = 0;
		snprintf(p->monitor, sizeof(p->monitor), "%s/netagent-monitor", dirname(self));
	}
	if (!p->monitor[0] || access(p->monitor, X_OK) < 0)
		snprintf(p->error, sizeof(p->error), "%.200s is missing (build it: make all)",
			 p->monitor[0] ? p->monitor : "netagent-monitor");

	int have_crun = find_bin("crun", crun, sizeof(crun)) == 0;
	int have_runc = find_bin("runc", p->path, sizeof(p->path)) == 0;
	/* crun refuses the hybrid layout ("cgroups in hybrid mode not
	 * supported"), even with its cgroup manager disabled; on a pure v2
	 * host it is the lighter runtime. */
	if (have_crun && v2) {
		snprintf(p->runtime, sizeof(p->runtime), "crun");
		snprintf(p->path, sizeof(p->path), "%s", crun);
		snprintf(p->why, sizeof(p->why), "cgroup v2 host and crun is installed");
	} else if (have_runc) {
		snprintf(p->runtime, sizeof(p->runtime), "runc");
		snprintf(p->why, sizeof(p->why), "%s",
			 !have_crun ? "crun is not installed"
			 : hybrid   ? "crun refuses the hybrid cgroup layout (v1 controllers with "
				      "cgroup2 at /sys/fs/cgroup/unified)"
				    : "crun needs cgroup v2; this host has cgroup v1");
	} else {
		snprintf(p->error, sizeof(p->error),
			 "no OCI runtime: neither runc nor crun is installed");
		return 0;
	}
	char *ver[] = {p->path, "--version", NULL};
	if (capture(ver, out, sizeof(out)) == 0) {
		char *nl = strchr(out, '\n');
		if (nl)
			*nl = 0;
		const char *v = strstr(out, "version ");
		snprintf(p->version, sizeof(p->version), "%.63s", v ? v + 8 : out);
	}
	char *feat[] = {p->path, "features", NULL};
	json_t *f = capture(feat, out, sizeof(out)) == 0 ? json_loads(out, 0, NULL) : NULL;
	size_t i;
	json_t *o;
	json_array_foreach(json_object_get(f, "mountOptions"), i, o)
	{
		/* rro is mount_setattr(MOUNT_ATTR_RDONLY, AT_RECURSIVE): 5.12. */
		if (json_is_string(o) && !strcmp(json_string_value(o), "rro"))
			p->rro = kernel_at_least(5, 12);
	}
	json_t *sc =
	    json_object_get(json_object_get(json_object_get(f, "linux"), "seccomp"), "enabled");
	/* runc 1.1 always builds with seccomp on Debian; an old runc without
	 * `features` is assumed to have it, and fails the start if not. */
	p->seccomp = f ? json_is_true(sc) : 1;
	json_decref(f);
	if (!p->seccomp)
		snprintf(p->error, sizeof(p->error),
			 "%.150s was built without seccomp: containers would run without "
			 "their syscall filter",
			 p->path);
	return 0;
}

void pv_runtime_delete(const char *id)
{
	char *argv[] = {pv.probe.path, "--root",   pv.runc_root, "delete",
			"--force",     (char *)id, NULL};
	posix_spawn_file_actions_t fa;
	pid_t pid;
	if (!pv.probe.path[0])
		return;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	if (posix_spawn(&pid, argv[0], &fa, NULL, argv, environ) == 0) {
		int st;
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
	}
	posix_spawn_file_actions_destroy(&fa);
}

static void probed(void *arg, int rc, const na_err_t *err)
{
	pv_probe_t *p = arg;
	if (rc < 0)
		snprintf(p->error, sizeof(p->error), "runtime probe failed: %.200s", err->msg);
	p->done = 1;
	if (p->error[0])
		na_error("containers unavailable", "error=\"%s\"", p->error);
	else
		na_info("container runtime",
			"runtime=%s version=%s cgroup=\"%s\" rro=%d why=\"%s\"", p->runtime,
			p->version, p->cgroup, p->rro, p->why);
	/* A round at once (the core's first one found the probe running):
	 * adoption first, so requests that waited for the probe then wait for
	 * it instead of acting on containers in an unknown state. */
	if (p->runtime[0] && pv.round)
		pv.round();
	pv_wait_t *w = waiters;
	waiters = NULL;
	while (w) {
		pv_wait_t *next = w->next;
		w->fn(w->req, NULL);
		free(w);
		w = next;
	}
}

int pv_probe_start(na_err_t *err)
{
	if (na_ns_submit("ct-probe", NULL, w_probe, probed, &pv.probe) < 0)
		return na_err_set(err, 500, "system_error", NULL, "cannot queue the runtime probe");
	return 0;
}

void pv_probe_wait(na_req_t *req, na_handler_fn fn)
{
	if (pv.probe.done) {
		fn(req, NULL);
		return;
	}
	pv_wait_t *w = calloc(1, sizeof(*w)), **p = &waiters;
	if (!w) {
		na_err_t e = NA_ERR_INIT;
		na_err_set(&e, 503, "unavailable", NULL, "the runtime probe is still running, retry");
		na_reply_err(req, &e);
		return;
	}
	w->req = req;
	w->fn = fn;
	while (*p)
		p = &(*p)->next;
	*p = w;
}

json_t *pv_probe_json(void)
{
	const pv_probe_t *p = &pv.probe;
	if (!p->done)
		return json_pack("{s:s}", "status", "probing");
	if (p->error[0] && !p->runtime[0])
		return json_pack("{s:s, s:s}", "status", "unavailable", "error", p->error);
	json_t *ctl = json_array();
	if (p->lim.have_memory)
		json_array_append_new(ctl, json_string("memory"));
	if (p->lim.have_cpu)
		json_array_append_new(ctl, json_string("cpu"));
	if (p->lim.have_pids)
		json_array_append_new(ctl, json_string("pids"));
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:b, s:b, s:s, s:s}", "status",
			      p->error[0] ? "unavailable" : "ok", "name", p->runtime, "path",
			      p->path, "version", p->version, "why", p->why, "cgroup", p->cgroup,
			      "controllers", ctl, "rro", p->rro, "seccomp", p->seccomp, "root",
			      pv.runc_root, "monitor", p->monitor);
	if (p->error[0])
		json_object_set_new(o, "error", json_string(p->error));
	return o;
}
