/* Network namespaces kept as bind mounts of nsfs files, as `ip netns` does,
 * but under a directory of the agent's choosing (its --run-dir). */
#include "netagent/log.h"
#include "netagent/nl.h"
#include "netagent/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif

static int mkdir_p(const char *dir, na_err_t *err)
{
	char buf[PATH_MAX];

	if (snprintf(buf, sizeof(buf), "%s", dir) >= (int)sizeof(buf))
		return na_err_set(err, 500, "system_error", NULL, "path too long: %s", dir);
	for (char *p = buf + 1;; p++) {
		if (*p != '/' && *p)
			continue;
		char c = *p;
		*p = 0;
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return na_err_errno(err, errno, "mkdir %s", buf);
		if (!c)
			return 0;
		*p = c;
	}
}

/* Like iproute2 for /run/netns: the directory becomes a shared mount point
 * so that mounts and unmounts of namespace files propagate to other mount
 * namespaces (containers, `ip netns exec` shells) and an unmounted namespace
 * is not kept alive by a stale copy of its mount elsewhere. */
static int prepare_dir(const char *dir, na_err_t *err)
{
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	static char done[PATH_MAX];
	bool made = false;
	int rc = 0;

	pthread_mutex_lock(&mu);
	if (strcmp(done, dir) == 0)
		goto out;
	rc = mkdir_p(dir, err);
	if (rc < 0)
		goto out;
	while (mount("", dir, "none", MS_SHARED | MS_REC, NULL) < 0) {
		/* EINVAL: not a mount point yet; make it one by binding it
		 * onto itself, once. */
		if (errno != EINVAL || made) {
			rc = na_err_errno(err, errno, "make %s a shared mount", dir);
			goto out;
		}
		if (mount(dir, dir, "none", MS_BIND | MS_REC, NULL) < 0) {
			rc = na_err_errno(err, errno, "bind mount %s", dir);
			goto out;
		}
		made = true;
	}
	snprintf(done, sizeof(done), "%s", dir);
out:
	pthread_mutex_unlock(&mu);
	return rc;
}

static int fd_is_netns(int fd)
{
	int t = ioctl(fd, NS_GET_NSTYPE);
	if (t >= 0)
		return t == CLONE_NEWNET;
	/* Kernels before 4.11: any nsfs file; setns() will tell the rest. */
	struct statfs sfs;
	return errno == ENOTTY && fstatfs(fd, &sfs) == 0 && sfs.f_type == NSFS_MAGIC;
}

int na_netns_is_netns(const char *path)
{
	na_err_t err = NA_ERR_INIT;
	cleanup_close int fd = na_netns_open(path, NULL, &err);
	return fd >= 0;
}

int na_netns_fd_id(int fd, na_ns_id_t *id, na_err_t *err)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return na_err_errno(err, errno, "stat network namespace");
	id->dev = (unsigned long long)st.st_dev;
	id->ino = (unsigned long long)st.st_ino;
	return 0;
}

int na_netns_open(const char *path, na_ns_id_t *id, na_err_t *err)
{
	char proc[64];
	struct statfs sfs;
	/* O_PATH opens nothing: no FIFO blocks, no device driver's open runs.
	 * O_NOFOLLOW refuses a symlink at the last component, which also
	 * refuses /proc/PID/ns/net (a magic link into the agent's or the
	 * host's namespace); namespaces come as bind-mounted files. */
	cleanup_close int pfd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (pfd < 0) {
		int e = errno;
		if (e == ENOENT || e == ENOTDIR) {
			na_err_set(err, 404, "not_found", NULL,
				   "network namespace %s does not exist", path);
			return -ENOENT;
		}
		if (e == ELOOP) {
			na_err_set(err, 422, "invalid_netns", NULL,
				   "%s is a symlink, not a network namespace file", path);
			return -EINVAL;
		}
		na_err_errno(err, e, "open network namespace %s", path);
		return -e;
	}
	if (fstatfs(pfd, &sfs) < 0 || sfs.f_type != NSFS_MAGIC) {
		na_err_set(err, 422, "invalid_netns", NULL, "%s is not a namespace file", path);
		return -EINVAL;
	}
	/* On nsfs, re-opening through the O_PATH descriptor is safe and gives
	 * the real descriptor setns() and IFLA_NET_NS_FD need. */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pfd);
	int fd = open(proc, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		na_err_errno(err, e, "open network namespace %s", path);
		return -e;
	}
	if (!fd_is_netns(fd)) {
		close(fd);
		na_err_set(err, 422, "invalid_netns", NULL, "%s is not a network namespace", path);
		return -EINVAL;
	}
	if (id && na_netns_fd_id(fd, id, err) < 0) {
		close(fd);
		return -EIO;
	}
	return fd;
}

int na_netns_self_ids(na_ns_id_t *self, na_ns_id_t *init, na_err_t *err)
{
	/* Trusted paths: following the magic links is the point here. */
	cleanup_close int s = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	cleanup_close int i = open("/proc/1/ns/net", O_RDONLY | O_CLOEXEC);
	if (s < 0)
		return na_err_errno(err, errno, "open /proc/thread-self/ns/net");
	if (na_netns_fd_id(s, self, err) < 0)
		return -1;
	/* PID 1 in another PID namespace may be hidden: then there is no other
	 * root namespace visible to refuse. */
	if (i < 0) {
		*init = *self;
		return 0;
	}
	return na_netns_fd_id(i, init, err);
}

struct mkns {
	const char *path;
	const char *step;
	int errnum;
};

/* Runs on its own thread: unshare() moves only this thread into the new
 * namespace, and the thread ends right after pinning it with the mount. */
static void *mkns_thread(void *p)
{
	struct mkns *m = p;

	if (unshare(CLONE_NEWNET) < 0) {
		m->step = "unshare";
		m->errnum = errno;
	} else if (mount("/proc/thread-self/ns/net", m->path, "none", MS_BIND, NULL) < 0) {
		m->step = "bind mount";
		m->errnum = errno;
	}
	return NULL;
}

int na_netns_create(const char *path, int *created, na_err_t *err)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	struct mkns m = {.path = path};
	pthread_attr_t attr;
	pthread_t t;
	int fd, rc;

	if (created)
		*created = 0;
	if (!slash || slash == path || (size_t)(slash - path) >= sizeof(dir))
		return na_err_set(err, 500, "system_error", NULL, "bad namespace path %s", path);
	memcpy(dir, path, (size_t)(slash - path));
	dir[slash - path] = 0;
	if (prepare_dir(dir, err) < 0)
		return -1;
	if (na_netns_is_netns(path))
		return 0;
	/* A plain file left by a crash between create and mount is reused. */
	fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0444);
	if (fd < 0)
		return na_err_errno(err, errno, "create %s", path);
	close(fd);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	rc = pthread_create(&t, &attr, mkns_thread, &m);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		unlink(path);
		return na_err_errno(err, rc, "create network namespace %s: thread", path);
	}
	pthread_join(t, NULL);
	if (m.errnum) {
		unlink(path);
		return na_err_errno(err, m.errnum, "create network namespace %s: %s", path, m.step);
	}
	if (created)
		*created = 1;
	return 0;
}

int na_netns_delete(const char *path, int *removed, na_err_t *err)
{
	int gone = 0;

	if (removed)
		*removed = 0;
	/* Loop: a namespace mounted twice on the same file (racing creators)
	 * must not survive as the lower mount. EINVAL: no longer a mount. */
	for (int i = 0; i < 8; i++) {
		if (umount2(path, MNT_DETACH) == 0) {
			gone = 1;
			continue;
		}
		if (errno == EINVAL || errno == ENOENT)
			break;
		return na_err_errno(err, errno, "unmount %s", path);
	}
	if (unlink(path) == 0)
		gone = 1;
	else if (errno != ENOENT)
		return na_err_errno(err, errno, "remove %s", path);
	if (removed)
		*removed = gone;
	return 0;
}

int na_netns_run_fd(int nsfd, na_ns_fn fn, void *arg, na_err_t *err)
{
	cleanup_close int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	int rc;

	if (self < 0)
		return na_err_errno(err, errno, "open /proc/thread-self/ns/net");
	if (setns(nsfd, CLONE_NEWNET) < 0)
		return na_err_errno(err, errno, "enter network namespace");
	rc = fn(arg, err);
	if (setns(self, CLONE_NEWNET) < 0) {
		na_error("cannot return to the agent's network namespace", "errno=%d", errno);
		abort();
	}
	return rc;
}
