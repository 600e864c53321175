/* The gateway's running side: a live update reloads HAProxy (the running
 * servers' state saved for the new process first, so that no new
 * connection lands on a follower while the new worker's checks warm up),
 * and VIPs with target {"container": gw} resolve to its uplink. */
#include "netagent/file.h"
#include "netagent/log.h"
#include "netagent/nsworker.h"
#include "netagent/util.h"
#include "provision/gw.h"
#include "provision/pv_int.h"
#include "vip/vip.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define ADMIN_TIMEOUT_MS  2000
#define RELOAD_TIMEOUT_MS 10000

/* ---- the admin socket (worker) ---------------------------------------------- */

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *gw_admin_cmd(const char *dir, const char *cmd, na_err_t *err)
{
	/* Through /proc/self/fd: a run dir may be longer than sun_path. */
	cleanup_close int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return na_err_errno(err, errno, "open %s", dir), NULL;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/admin.sock", dfd);
	cleanup_close int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return na_err_errno(err, errno, "socket"), NULL;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return na_err_set(err, 503, "unavailable", NULL,
				  "HAProxy's admin socket in %s does not answer: %s", dir,
				  strerror(errno)),
		       NULL;
	long long deadline = mono_ms() + ADMIN_TIMEOUT_MS;
	size_t len = strlen(cmd), off = 0, cap = 8192, n = 0;
	char *out = malloc(cap);
	if (!out)
		return na_err_errno(err, ENOMEM, "admin answer"), NULL;
	/* Unix stream sockets connect at once; only the I/O waits. */
	while (1) {
		int wantw = off < len + 1;
		struct pollfd p = {fd, wantw ? POLLOUT : POLLIN, 0};
		long long left = deadline - mono_ms();
		int pr = left > 0 ? poll(&p, 1, (int)left) : 0;
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0) {
			free(out);
			return na_err_set(
				   err, 503, "unavailable", NULL,
				   "HAProxy's admin socket did not answer \"%s\" within %d ms", cmd,
				   ADMIN_TIMEOUT_MS),
			       NULL;
		}
		if (wantw) {
			/* The command and its newline. */
			const char *src = off < len ? cmd + off : "\n";
			size_t l = off < len ? len - off : 1;
			ssize_t w = send(fd, src, l, MSG_NOSIGNAL);
			if (w < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (w < 0)
				break;
			off += (size_t)w;
			continue;
		}
		if (n + 4096 > cap) {
			char *np = realloc(out, cap * 2);
			if (!np)
				break;
			out = np;
			cap *= 2;
		}
		ssize_t r = read(fd, out + n, cap - n - 1);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r <= 0) {
			if (r == 0) {
				out[n] = 0;
				return out;
			}
			break;
		}
		n += (size_t)r;
	}
	na_err_errno(err, errno, "HAProxy admin socket");
	free(out);
	return NULL;
}

/* The pid of the worker answering on the socket, or -1. */
static int worker_pid(const char *dir, na_err_t *err)
{
	char *info = gw_admin_cmd(dir, "show info", err);
	if (!info)
		return -1;
	const char *p = strstr(info, "\nPid: ");
	int pid = p ? atoi(p + 6) : -1;
	free(info);
	if (pid <= 0)
		return na_err_set(err, 503, "unavailable", NULL, "HAProxy's show info has no Pid");
	return pid;
}

static int write_state(const char *dir, const char *text, na_err_t *err)
{
	char path[700];
	snprintf(path, sizeof(path), "%s/servers.state", dir);
	return na_file_put(path, text, strlen(text), 0644, (uid_t)-1, (gid_t)-1, err);
}

/* ---- reload ----------------------------------------------------------------------- */

struct reload {
	char name[64], dir[600];
	int master;
	gw_conf_t conf; /* the new spec's, for the servers the saved state lacks */
	json_t *body;	/* holds conf.ca */
	pv_role_cb cb;
	void *ud;
	long long ms;
};

static int w_reload(void *arg, na_err_t *err)
{
	struct reload *r = arg;
	long long t0 = mono_ms();
	int old = worker_pid(r->dir, err);
	if (old < 0)
		return -1;
	char *saved = gw_admin_cmd(r->dir, "show servers state", err);
	if (!saved)
		return -1;
	char *st = gw_state_file(&r->conf, saved);
	free(saved);
	if (!st)
		return na_err_errno(err, ENOMEM, "servers.state");
	int rc = write_state(r->dir, st, err);
	free(st);
	if (rc < 0)
		return -1;
	/* The master re-executes itself with the new file; the old worker
	 * hands its listeners over and finishes its sessions. */
	if (kill(r->master, SIGUSR2) < 0)
		return na_err_errno(err, errno, "signal HAProxy's master (pid %d)", r->master);
	while (mono_ms() - t0 < RELOAD_TIMEOUT_MS) {
		usleep(20000);
		na_err_t e = NA_ERR_INIT;
		int pid = worker_pid(r->dir, &e);
		if (pid > 0 && pid != old) {
			r->ms = mono_ms() - t0;
			return 0;
		}
	}
	return na_err_set(err, 503, "reload_failed", NULL,
			  "HAProxy did not start a new worker within %d ms of the reload (its log "
			  "says why)",
			  RELOAD_TIMEOUT_MS);
}

static void reload_done(void *arg, int rc, const na_err_t *err)
{
	struct reload *r = arg;
	if (rc == 0)
		na_info("gateway reloaded", "container=%s ms=%lld", r->name, r->ms);
	r->cb(r->ud, rc, err);
	json_decref(r->body);
	free(r);
}

int gw_apply(const char *name, const pv_spec_t *spec, pv_role_cb cb, void *ud, na_err_t *err)
{
	pv_info_t info;
	pv_ct_t *c = pv_ct_find(name);
	if (!c || pv_container_info(name, &info, err) < 0)
		return c ? -1 : na_err_set(err, 404, "not_found", NULL, "no container %s", name);
	if (!info.pid)
		return na_err_set(err, 409, "not_running", NULL, "gateway %s is not running", name);
	struct reload *r = calloc(1, sizeof(*r));
	if (!r)
		return na_err_errno(err, ENOMEM, "reload");
	na_addr_t nets[GW_MAX_NETS];
	size_t n = 0;
	for (size_t i = 0; i < spec->nnets && n < GW_MAX_NETS; i++)
		n += (size_t)pv_role_subnet(spec->nets[i].network, &nets[n]);
	if (gw_parse(json_object_get(spec->body, "gateway"), nets, n, 0, &r->conf, err) < 0) {
		free(r);
		return -1;
	}
	snprintf(r->name, sizeof(r->name), "%s", name);
	pv_ct_path(c, "admin", r->dir, sizeof(r->dir));
	r->master = info.pid;
	r->body = json_incref(spec->body);
	r->cb = cb;
	r->ud = ud;
	char key[80];
	snprintf(key, sizeof(key), "gw/%s", name);
	if (na_ns_submit(key, NULL, w_reload, reload_done, r) < 0) {
		json_decref(r->body);
		free(r);
		return na_err_set(err, 503, "unavailable", NULL, "cannot queue the reload of %s",
				  name);
	}
	return 0;
}

/* ---- VIP targets -------------------------------------------------------------------- */

static int resolve(void *ud, const char *container, char *netns, size_t netns_len, char *ifname,
		   size_t ifname_len, na_err_t *err)
{
	(void)ud;
	pv_ct_t *c = pv_ct_find(container);
	if (!c)
		return 0; /* not (yet) created */
	if (strcmp(c->spec.role->name, "gateway"))
		return na_err_set(err, 422, "invalid_field", "target.container",
				  "container %s is a %s container, not a gateway", container,
				  c->spec.role->name);
	if (!json_object_get(json_object_get(c->spec.body, "gateway"), "uplink"))
		return na_err_set(err, 422, "invalid_field", "target.container",
				  "gateway %s has no uplink for a VIP", container);
	/* Resolved while its namespace (with uplink0) exists, not only while
	 * HAProxy runs: a stopped gateway fails the VIP's checks, and the VIP
	 * is then removed from uplink0 rather than left behind on a target
	 * that no longer resolves. */
	if (c->state == PV_S_UNKNOWN || c->state == PV_S_CREATING || c->state == PV_S_DELETING)
		return 0;
	pv_ct_netns(c, netns, netns_len);
	snprintf(ifname, ifname_len, "%s", GW_UPLINK_IF);
	return 1;
}

void gw_state(const char *name, const pv_spec_t *spec, const char *state)
{
	(void)state;
	/* "starting" comes before every prepare, which renders from them. */
	if (spec)
		pv_role_note_subnets(spec);
	vip_container_changed(name);
}

int gw_init(na_agent_t *ag, na_err_t *err)
{
	(void)ag;
	(void)err;
	vip_set_container_resolver(resolve, NULL);
	return 0;
}

void gw_fini(void)
{
	vip_set_container_resolver(NULL, NULL);
}
