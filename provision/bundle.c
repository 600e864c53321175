/* What a container needs on disk and in the kernel before runc runs it,
 * made on a worker: the OCI bundle, its volumes, its network namespace. */
#include "netagent/log.h"
#include "netagent/nl.h"
#include "netagent/nsworker.h"
#include "netagent/util.h"
#include "provision/oci.h"
#include "provision/pv_int.h"
#include "provision/role.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/stat.h>

struct bjob {
	char name[64], id[80], dir[512], bundle[512], netns[512], voldir[512];
	char cgroup[200], hosts[600], hostname[600];
	char *config; /* config.json text */
	int rootfs_image, creating, refused;
	int ns_rc; /* make_netns, on its thread */
	na_err_t ns_err;
	char rootfs[PV_PATH_MAX];
	pv_volume_t vols[PV_MAX_VOLS];
	size_t nvols;
	char nets[2 * PV_MAX_NETS][64]; /* wanted and still attached */
	size_t nnets;
	unsigned uid, gid;
	const pv_spec_t *spec; /* for the role's prepare: the op holds the container */
	pv_cb cb;
	void *ud;
};

static void bjob_free(struct bjob *j)
{
	free(j->config);
	free(j);
}

static void key_of(const char *name, char *key, size_t n)
{
	snprintf(key, n, "ct/%s", name);
}

/* ---- checks before anything is made ---------------------------------------- */

/* A running runtime container with the id a new container would get, that
 * no monitor of ours supervises (made by hand in our root, or left by a
 * crash and not collected yet): refused, never killed on a create. */
static int runtime_clash(const struct bjob *j, na_err_t *err)
{
	char p[700];
	snprintf(p, sizeof(p), "%s/%s/state.json", pv.runc_root, j->id);
	json_t *s = json_load_file(p, 0, NULL);
	int pid = (int)json_integer_value(json_object_get(s, "init_process_pid"));
	json_decref(s);
	if (pid <= 0 || kill(pid, 0) < 0)
		return 0;
	char st[64], buf[512] = "";
	snprintf(st, sizeof(st), "/proc/%d/stat", pid);
	FILE *f = fopen(st, "re");
	if (f) {
		if (!fgets(buf, sizeof(buf), f))
			buf[0] = 0;
		fclose(f);
	}
	const char *rp = strrchr(buf, ')');
	if (rp && rp[1] == ' ' && rp[2] == 'Z')
		return 0;
	return na_err_set(err, 409, "name_conflict", "name",
			  "runtime container %s is running in this agent's runtime root but is "
			  "not one of its containers (reconcile removes it)",
			  j->id);
}

/* Walks the path one component at a time without following anything: a
 * symlink anywhere (/proc/1/root included) is refused, not resolved. */
static int w_check(void *arg, na_err_t *err)
{
	struct bjob *j = arg;
	const char *f = "image.path";
	if (j->creating && runtime_clash(j, err) < 0)
		return -1;
	if (j->spec && j->spec->role->check_fs && j->spec->role->check_fs(j->spec, err) < 0)
		return -1;
	if (!j->rootfs[0])
		return 0;
	char comp[PV_PATH_MAX];
	cleanup_close int fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	for (const char *p = j->rootfs + 1; fd >= 0 && *p;) {
		const char *e = strchr(p, '/');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		snprintf(comp, sizeof(comp), "%.*s", (int)l, p);
		int nfd = openat(fd, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (nfd < 0) {
			if (errno == ENOENT || errno == ENOTDIR)
				return na_err_set(err, 422, "invalid_field", f,
						  "image.path %s does not exist", j->rootfs);
			return na_err_errno(err, errno, "image.path %s", j->rootfs);
		}
		struct stat st;
		if (fstat(nfd, &st) < 0 || S_ISLNK(st.st_mode)) {
			close(nfd);
			return na_err_set(err, 422, "invalid_field", f,
					  "image.path %s: %s is a symlink (give the real path)",
					  j->rootfs, comp);
		}
		close(fd);
		fd = nfd;
		p += l;
		if (*p == '/')
			p++;
	}
	struct stat st, root;
	if (fd < 0 || fstat(fd, &st) < 0)
		return na_err_errno(err, errno, "image.path %s", j->rootfs);
	if (!S_ISDIR(st.st_mode))
		return na_err_set(err, 422, "invalid_field", f,
				  "image.path %s is not a directory (%s)", j->rootfs,
				  S_ISREG(st.st_mode)			       ? "a regular file"
				  : S_ISFIFO(st.st_mode)		       ? "a FIFO"
				  : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device"
									       : "not a directory");
	if (stat("/", &root) == 0 && root.st_dev == st.st_dev && root.st_ino == st.st_ino)
		return na_err_set(err, 422, "invalid_field", f,
				  "image.path %s is the host's root directory", j->rootfs);
	return 0;
}

static void bjob_done(void *arg, int rc, const na_err_t *err)
{
	struct bjob *j = arg;
	j->cb(j->ud, rc, err);
	bjob_free(j);
}

int pv_check_fs(const pv_ct_t *c, const pv_spec_t *spec, pv_cb cb, void *ud)
{
	struct bjob *j = calloc(1, sizeof(*j));
	char key[80];
	if (!j)
		return -1;
	if (spec->rootfs_image)
		snprintf(j->rootfs, sizeof(j->rootfs), "%s", spec->rootfs);
	snprintf(j->id, sizeof(j->id), "%s", c->id);
	j->creating = c->state == PV_S_CREATING;
	j->spec = spec; /* the operation holds it until the job is done */
	j->cb = cb;
	j->ud = ud;
	key_of(c->name, key, sizeof(key));
	if (na_ns_submit(key, NULL, w_check, bjob_done, j) < 0) {
		bjob_free(j);
		return -1;
	}
	return 0;
}

/* ---- prepare ----------------------------------------------------------------- */

static int mkdir_mode(const char *p, mode_t mode, na_err_t *err)
{
	if (mkdir(p, mode) < 0 && errno != EEXIST)
		return na_err_errno(err, errno, "mkdir %s", p);
	struct stat st;
	if (lstat(p, &st) < 0 || !S_ISDIR(st.st_mode))
		return na_err_set(err, 500, "system_error", NULL, "%s is not a directory", p);
	/* Always: runc gives a tmpfs the mode of an existing mountpoint, over
	 * its mode= option (rootfs/tmp 0755 would make /tmp unwritable). */
	if ((st.st_mode & 07777) != mode && chmod(p, mode) < 0)
		return na_err_errno(err, errno, "chmod %s", p);
	return 0;
}

static int write_file(const char *path, const char *data, mode_t mode, na_err_t *err)
{
	char tmp[600];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	cleanup_close int fd =
	    open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return na_err_errno(err, errno, "create %s", tmp);
	size_t n = strlen(data), off = 0;
	while (off < n) {
		ssize_t w = write(fd, data + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return na_err_errno(err, errno, "write %s", tmp);
		off += (size_t)w;
	}
	if (rename(tmp, path) < 0)
		return na_err_errno(err, errno, "rename %s", path);
	return 0;
}

static int skeleton(const char *rootfs, na_err_t *err)
{
	const pv_probe_t *p = &pv.probe;
	char path[1024];
	if (mkdir_mode(rootfs, 0755, err) < 0)
		return -1;
	for (size_t i = 0; i < p->nlinks; i++) {
		snprintf(path, sizeof(path), "%s/%s", rootfs, p->link_name[i]);
		if (symlink(p->link_target[i], path) < 0 && errno != EEXIST)
			return na_err_errno(err, errno, "symlink %s", path);
	}
	static const struct {
		const char *d;
		mode_t m;
	} dirs[] = {{"tmp", 01777}, {"run", 0755},  {"var", 0755}, {"usr", 0755},
		    {"etc", 0755},  {"proc", 0555}, {"sys", 0555}, {"dev", 0755}};
	for (size_t i = 0; i < NA_ARRAY_SIZE(dirs); i++) {
		snprintf(path, sizeof(path), "%s/%s", rootfs, dirs[i].d);
		if (mkdir_mode(path, dirs[i].m, err) < 0)
			return -1;
	}
	for (size_t i = 0; i < p->nhost_dirs; i++) {
		snprintf(path, sizeof(path), "%s%s", rootfs, p->host_dirs[i]);
		if (mkdir_mode(path, 0755, err) < 0)
			return -1;
	}
	return 0;
}

/* Owned by the container's user, 0700; an existing one keeps its content
 * and gets the owner again (the user may have changed). Never follows a
 * symlink: the volume's parent is ours, its content the container's. */
static int volumes(struct bjob *j, na_err_t *err)
{
	char path[700];
	if (!j->nvols)
		return 0;
	if (mkdir_mode(pv.vol_dir, 0700, err) < 0 || mkdir_mode(j->voldir, 0700, err) < 0)
		return -1;
	for (size_t i = 0; i < j->nvols; i++) {
		snprintf(path, sizeof(path), "%s/%s", j->voldir, j->vols[i].name);
		if (mkdir(path, 0700) < 0 && errno != EEXIST)
			return na_err_errno(err, errno, "create volume %s", path);
		cleanup_close int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return na_err_errno(err, errno, "open volume %s", path);
		if (fchown(fd, j->uid, j->gid) < 0 || fchmod(fd, 0700) < 0)
			return na_err_errno(err, errno, "chown volume %s", path);
	}
	return 0;
}

static int lo_up(void *arg, na_err_t *err)
{
	(void)arg;
	cleanup_nl na_nl_t *nl = NULL;
	if (na_nl_open(&nl, err) < 0)
		return -1;
	/* By name: one request, no lookup of its index first. */
	struct ifinfomsg ifi = {
	    .ifi_family = AF_UNSPEC, .ifi_index = 0, .ifi_flags = IFF_UP, .ifi_change = IFF_UP};
	struct nlmsghdr *nlh = na_nl_req(nl, RTM_NEWLINK, 0, &ifi, sizeof(ifi));
	mnl_attr_put_strz(nlh, IFLA_IFNAME, "lo");
	return na_nl_call(nl, nlh, NULL, NULL, err, "set lo up") < 0 ? -1 : 0;
}

/* A runtime container of this id that no monitor supervises (a crash in
 * the middle of a start): removed before the new one is created. */
static void stale_runtime(struct bjob *j)
{
	char st[700];
	snprintf(st, sizeof(st), "%s/%s/state.json", pv.runc_root, j->id);
	if (access(st, F_OK) < 0)
		return;
	pv_runtime_delete(j->id);
	na_warn("removed a stale runtime container", "id=%s", j->id);
}

/* Worker: config.json's text. */
static int build_config(struct bjob *j, na_err_t *err)
{
	const pv_spec_t *s = j->spec;
	pv_oci_ctx_t ctx = {
	    .hostname = j->name,
	    .netns = j->netns,
	    .cgroups_path = j->cgroup,
	    .root = s->rootfs_image ? s->rootfs : "rootfs",
	    .volume_dir = j->voldir,
	    .hosts_file = j->hosts,
	    .hostname_file = j->hostname,
	    .run_dir = j->dir,
	    .rro = pv.probe.rro,
	    .memsw = pv.probe.memsw,
	    .nofile = pv.probe.nofile,
	};
	for (size_t i = 0; !s->rootfs_image && i < pv.probe.nhost_dirs; i++)
		ctx.host_dirs[ctx.nhost_dirs++] = pv.probe.host_dirs[i];
	json_t *cfg = pv_oci_config(s, &ctx, err);
	j->config = cfg ? json_dumps(cfg, JSON_INDENT(1)) : NULL;
	json_decref(cfg);
	if (!j->config && cfg)
		return na_err_errno(err, ENOMEM, "config.json");
	return j->config ? 0 : -1;
}

/* The run dir's files: bundle (config.json built here), hosts files, the
 * networks to collect, volumes. */
static int files(struct bjob *j, na_err_t *err)
{
	char path[700];
	if (build_config(j, err) < 0)
		return -1;
	if (mkdir_mode(pv.ct_dir, 0700, err) < 0 || mkdir_mode(pv.runc_root, 0700, err) < 0 ||
	    mkdir_mode(j->dir, 0700, err) < 0 || mkdir_mode(j->bundle, 0700, err) < 0)
		return -1;
	if (!j->rootfs_image) {
		snprintf(path, sizeof(path), "%s/rootfs", j->bundle);
		if (skeleton(path, err) < 0)
			return -1;
	}
	snprintf(path, sizeof(path), "%s/config.json", j->bundle);
	if (write_file(path, j->config, 0600, err) < 0)
		return -1;
	char hosts[400];
	snprintf(hosts, sizeof(hosts),
		 "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
		 "127.0.1.1\t%s\n",
		 j->name);
	snprintf(path, sizeof(path), "%s/hosts", j->dir);
	if (write_file(path, hosts, 0644, err) < 0)
		return -1;
	snprintf(hosts, sizeof(hosts), "%s\n", j->name);
	snprintf(path, sizeof(path), "%s/hostname", j->dir);
	if (write_file(path, hosts, 0644, err) < 0)
		return -1;
	/* Before anything is attached: what the garbage collection detaches
	 * if this container is never acknowledged. */
	char nets[2 * PV_MAX_NETS * 65 + 1] = "";
	for (size_t i = 0; i < j->nnets; i++)
		snprintf(nets + strlen(nets), sizeof(nets) - strlen(nets), "%s\n", j->nets[i]);
	snprintf(path, sizeof(path), "%s/networks", j->dir);
	if (write_file(path, nets, 0600, err) < 0)
		return -1;
	return volumes(j, err);
}

/* The container's network namespace, lo up. */
static void *make_netns(void *arg)
{
	struct bjob *j = arg;
	int made = 0;
	j->ns_rc = -1;
	if (mkdir_mode(pv.ns_dir, 0755, &j->ns_err) < 0 ||
	    na_netns_create(j->netns, &made, &j->ns_err) < 0)
		return NULL;
	/* runc leaves lo down in a namespace it joins (it brings lo up only
	 * in one it creates). */
	if (made && na_ns_run(j->netns, lo_up, NULL, &j->ns_err) < 0)
		return NULL;
	j->ns_rc = 0;
	return NULL;
}

static int w_prepare(void *arg, na_err_t *err)
{
	struct bjob *j = arg;
	char path[700];
	/* A new namespace (unshare, mount, lo up: 1-4 ms) is made on a thread
	 * of its own while config.json is built and the files are written: the
	 * start waits for the longer of the two, not their sum. */
	pthread_t t;
	int threaded = !na_netns_is_netns(j->netns) && pthread_create(&t, NULL, make_netns, j) == 0;
	int rc = files(j, err);
	if (threaded)
		pthread_join(t, NULL);
	else
		make_netns(j);
	if (rc < 0)
		return -1;
	if (j->ns_rc < 0) {
		*err = j->ns_err;
		return -1;
	}
	stale_runtime(j);
	for (size_t i = 0; i < j->spec->nbinds; i++) {
		const pv_bind_t *b = &j->spec->binds[i];
		if (b->src[0])
			continue; /* the role's check_fs vouched for it */
		snprintf(path, sizeof(path), "%s/%s", j->dir, b->sub);
		if (mkdir_mode(path, b->mode ? b->mode : 0755, err) < 0)
			return -1;
		if (lchown(path, b->uid, b->gid) < 0)
			return na_err_errno(err, errno, "chown %s", path);
	}
	if (j->spec->role->prepare) {
		pv_prep_ctx_t ctx = {j->name, j->dir, j->bundle, j->voldir, j->netns, 0};
		if (j->spec->role->prepare(j->spec, &ctx, err) < 0)
			return -1;
	}
	return 0;
}

static int w_render(void *arg, na_err_t *err)
{
	struct bjob *j = arg;
	pv_prep_ctx_t ctx = {j->name, j->dir, j->bundle, j->voldir, j->netns, 1};
	return j->spec->role->prepare ? j->spec->role->prepare(j->spec, &ctx, err) : 0;
}

int pv_render(pv_ct_t *c, pv_cb cb, void *ud)
{
	struct bjob *j = calloc(1, sizeof(*j));
	char key[80];
	if (!j)
		return -1;
	snprintf(j->name, sizeof(j->name), "%s", c->name);
	pv_ct_path(c, NULL, j->dir, sizeof(j->dir));
	pv_ct_path(c, "bundle", j->bundle, sizeof(j->bundle));
	pv_ct_netns(c, j->netns, sizeof(j->netns));
	snprintf(j->voldir, sizeof(j->voldir), "%s/%s", pv.vol_dir, c->name);
	j->spec = &c->spec;
	j->cb = cb;
	j->ud = ud;
	key_of(c->name, key, sizeof(key));
	if (na_ns_submit(key, NULL, w_render, bjob_done, j) < 0) {
		bjob_free(j);
		return -1;
	}
	return 0;
}

/* The prepare job for c (its config.json is built on the worker: pure,
 * from the spec the operation holds, while the netns is being made). */
static struct bjob *prepare_job(pv_ct_t *c, pv_cb cb, void *ud)
{
	struct bjob *j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	snprintf(j->name, sizeof(j->name), "%s", c->name);
	snprintf(j->id, sizeof(j->id), "%s", c->id);
	pv_ct_path(c, NULL, j->dir, sizeof(j->dir));
	pv_ct_path(c, "bundle", j->bundle, sizeof(j->bundle));
	pv_ct_netns(c, j->netns, sizeof(j->netns));
	pv_ct_cgroup(c, j->cgroup, sizeof(j->cgroup));
	pv_ct_path(c, "hosts", j->hosts, sizeof(j->hosts));
	pv_ct_path(c, "hostname", j->hostname, sizeof(j->hostname));
	snprintf(j->voldir, sizeof(j->voldir), "%s/%s", pv.vol_dir, c->name);
	j->rootfs_image = c->spec.rootfs_image;
	memcpy(j->vols, c->spec.vols, sizeof(j->vols));
	j->nvols = c->spec.nvols;
	for (size_t i = 0; i < c->spec.nnets; i++)
		snprintf(j->nets[j->nnets++], 64, "%s", c->spec.nets[i].network);
	for (size_t i = 0; i < c->nifs; i++) {
		size_t k;
		for (k = 0; k < j->nnets; k++)
			if (!strcmp(j->nets[k], c->ifs[i].network))
				break;
		if (k == j->nnets)
			snprintf(j->nets[j->nnets++], 64, "%s", c->ifs[i].network);
	}
	j->uid = c->spec.uid;
	j->gid = c->spec.gid;
	j->spec = &c->spec;
	j->cb = cb;
	j->ud = ud;
	return j;
}

static int submit(struct bjob *j, na_ns_fn fn, na_ns_done_fn done)
{
	char key[80];
	key_of(j->name, key, sizeof(key));
	if (na_ns_submit(key, NULL, fn, done, j) < 0) {
		bjob_free(j);
		return -1;
	}
	return 0;
}

int pv_prepare(pv_ct_t *c, pv_cb cb, void *ud)
{
	struct bjob *j = prepare_job(c, cb, ud);
	return j ? submit(j, w_prepare, bjob_done) : -1;
}

/* Checks, then prepare, in one job: a create's first two steps without a
 * trip back to the loop between them. */
static int w_check_prepare(void *arg, na_err_t *err)
{
	struct bjob *j = arg;
	if (w_check(j, err) < 0) {
		j->refused = 1;
		return -1;
	}
	return w_prepare(j, err);
}

static void check_prepare_done(void *arg, int rc, const na_err_t *err)
{
	struct bjob *j = arg;
	j->cb(j->ud, rc < 0 && j->refused ? PV_REFUSED : rc, err);
	bjob_free(j);
}

int pv_check_prepare(pv_ct_t *c, pv_cb cb, void *ud)
{
	struct bjob *j = prepare_job(c, cb, ud);
	if (!j)
		return -1;
	if (c->spec.rootfs_image)
		snprintf(j->rootfs, sizeof(j->rootfs), "%s", c->spec.rootfs);
	j->creating = c->state == PV_S_CREATING;
	return submit(j, w_check_prepare, check_prepare_done);
}
