/* Removing a container for good (worker jobs): the runtime container, an
 * orphaned monitor, the run dir, the network namespace, the cgroups, and
 * the volumes when asked. Also lists what of ours exists, for the garbage
 * collection of containers nobody wants (a crash in the middle of a
 * create leaves those). */
#include "netagent/log.h"
#include "netagent/nl.h"
#include "netagent/nsworker.h"
#include "netagent/util.h"
#include "netagent/validate.h"
#include "provision/pv_int.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/syscall.h>

/* Deletes everything under dirfd's entry `name`, never following a
 * symlink and never crossing into another file system (a volume may hold
 * anything a container wrote). */
static int rm_tree_at(int dirfd, const char *name, dev_t dev, int depth)
{
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(dirfd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
	if (st.st_dev != dev || depth > 256)
		return -EXDEV;
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	int rc = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		int r = rm_tree_at(fd, de->d_name, dev, depth + 1);
		if (r < 0 && !rc)
			rc = r;
	}
	closedir(d);
	if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT && !rc)
		rc = -errno;
	return rc;
}

static int rm_tree(const char *path, na_err_t *err)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : na_err_errno(err, errno, "stat %s", path);
	int r = rm_tree_at(AT_FDCWD, path, st.st_dev, 0);
	return r < 0 ? na_err_errno(err, -r, "remove %s", path) : 0;
}

int pv_monitor_pidfd(const char *dir, const char *id)
{
	char path[700], buf[4096];
	snprintf(path, sizeof(path), "%s/monitor.json", dir);
	json_t *j = json_load_file(path, 0, NULL);
	int pid = (int)json_integer_value(json_object_get(j, "monitor"));
	json_decref(j);
	if (pid <= 1)
		return -1;
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pfd < 0)
		return -1;
	/* Opened first, checked after: the pidfd pins the process, so the
	 * command line read below is this process's. */
	snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (fd >= 0)
		close(fd);
	int ours = 0;
	if (n > 0)
		buf[n] = 0;
	for (ssize_t i = 0; n > 0 && i < n; i += (ssize_t)strlen(buf + i) + 1) {
		if (!strcmp(buf + i, "--id") && i + 5 < n && !strcmp(buf + i + 5, id))
			ours = 1;
	}
	if (!ours) {
		close(pfd);
		return -1;
	}
	return pfd;
}

/* Only the container's own leaf: runc removes no parent, and neither do
 * we. Removing an empty parent (netagent/<agent>, or the netagent dir all
 * agents of a machine share) races with a runc creating a sibling below
 * it, which then fails reading the vanished parent's cpuset.cpus. */
static void rm_cgroups(const char *agent, const char *name)
{
	char path[700];
	DIR *d = opendir("/sys/fs/cgroup");
	struct dirent *de;
	/* v1 hierarchies, the hybrid's cgroup2 mount, and a v2 root. */
	snprintf(path, sizeof(path), "/sys/fs/cgroup/netagent/%s/%s", agent, name);
	rmdir(path);
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/fs/cgroup/%s/netagent/%s/%s", de->d_name, agent,
			 name);
		rmdir(path);
	}
	if (d)
		closedir(d);
}

struct cjob {
	char name[64];
	int purge;
	pv_cb cb;
	void *ud;
};

static int w_cleanup(void *arg, na_err_t *err)
{
	struct cjob *j = arg;
	const char *agent = pv.ag->cfg.name;
	char id[80], dir[600], ns[600], vol[600];
	snprintf(id, sizeof(id), "%s-%s", agent, j->name);
	snprintf(dir, sizeof(dir), "%s/%s", pv.ct_dir, j->name);
	snprintf(ns, sizeof(ns), "%s/%s-%s", pv.ns_dir, agent, j->name);
	int mon = pv_monitor_pidfd(dir, id);
	pv_runtime_delete(id);
	if (mon >= 0) {
		/* Killing the init made the monitor finish: wait for it, so it
		 * writes nothing into a directory removed below. */
		struct pollfd p = {mon, POLLIN, 0};
		if (poll(&p, 1, 3000) <= 0)
			syscall(SYS_pidfd_send_signal, mon, SIGKILL, NULL, 0);
		close(mon);
	}
	if (rm_tree(dir, err) < 0)
		return -1;
	if (na_netns_delete(ns, NULL, err) < 0)
		return -1;
	rm_cgroups(agent, j->name);
	snprintf(vol, sizeof(vol), "%s/%s", pv.vol_dir, j->name);
	if (j->purge == 1 && rm_tree(vol, err) < 0)
		return -1;
	if (j->purge == 2) {
		/* rmdir only: a volume that holds data was not ours to drop. */
		DIR *d = opendir(vol);
		struct dirent *de;
		char p[900];
		while (d && (de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			snprintf(p, sizeof(p), "%s/%s", vol, de->d_name);
			rmdir(p);
		}
		if (d)
			closedir(d);
		rmdir(vol);
	}
	return 0;
}

static void cjob_done(void *arg, int rc, const na_err_t *err)
{
	struct cjob *j = arg;
	j->cb(j->ud, rc, err);
	free(j);
}

int pv_cleanup(const char *name, int purge, pv_cb cb, void *ud)
{
	struct cjob *j = calloc(1, sizeof(*j));
	char key[80];
	if (!j)
		return -1;
	snprintf(j->name, sizeof(j->name), "%s", name);
	j->purge = purge;
	j->cb = cb;
	j->ud = ud;
	snprintf(key, sizeof(key), "ct/%s", name);
	if (na_ns_submit(key, NULL, w_cleanup, cjob_done, j) < 0) {
		free(j);
		return -1;
	}
	return 0;
}

/* ---- what exists ---------------------------------------------------------------- */

struct gjob {
	pv_orphan_t *list;
	size_t n, cap;
	pv_gc_cb cb;
	void *ud;
};

static pv_orphan_t *entry(struct gjob *g, const char *name)
{
	if (!na_name_valid(name))
		return NULL;
	for (size_t i = 0; i < g->n; i++)
		if (!strcmp(g->list[i].name, name))
			return &g->list[i];
	if (g->n == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 16;
		pv_orphan_t *nl = realloc(g->list, cap * sizeof(*nl));
		if (!nl)
			return NULL;
		g->list = nl;
		g->cap = cap;
	}
	pv_orphan_t *o = &g->list[g->n++];
	memset(o, 0, sizeof(*o));
	snprintf(o->name, sizeof(o->name), "%s", name);
	return o;
}

static void scan(struct gjob *g, const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t pl = strlen(prefix);
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.' && !strncmp(de->d_name, prefix, pl))
			entry(g, de->d_name + pl);
	if (d)
		closedir(d);
}

static int w_gc_list(void *arg, na_err_t *err)
{
	struct gjob *g = arg;
	char prefix[80], path[700], line[128];
	(void)err;
	snprintf(prefix, sizeof(prefix), "%s-", pv.ag->cfg.name);
	scan(g, pv.ct_dir, "");
	scan(g, pv.runc_root, prefix);
	scan(g, pv.ns_dir, prefix);
	for (size_t i = 0; i < g->n; i++) {
		pv_orphan_t *o = &g->list[i];
		snprintf(path, sizeof(path), "%s/%s/networks", pv.ct_dir, o->name);
		FILE *f = fopen(path, "re");
		while (f && fgets(line, sizeof(line), f) && o->nnets < NA_ARRAY_SIZE(o->nets)) {
			line[strcspn(line, "\n")] = 0;
			if (na_name_valid(line))
				snprintf(o->nets[o->nnets++], 64, "%.63s", line);
		}
		if (f)
			fclose(f);
	}
	return 0;
}

static void gc_listed(void *arg, int rc, const na_err_t *err)
{
	struct gjob *g = arg;
	(void)err;
	g->cb(g->ud, g->list, rc < 0 ? 0 : g->n);
	free(g->list);
	free(g);
}

int pv_gc_list(pv_gc_cb cb, void *ud)
{
	struct gjob *g = calloc(1, sizeof(*g));
	if (!g)
		return -1;
	g->cb = cb;
	g->ud = ud;
	if (na_ns_submit("ct-gc", NULL, w_gc_list, gc_listed, g) < 0) {
		free(g);
		return -1;
	}
	return 0;
}
