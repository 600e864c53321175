/* One-off jobs in a running container (provision.h: pv_exec): `runc exec`
 * with the agent's runtime root, so the job gets the container's
 * namespaces, cgroup, user, capabilities and seccomp profile. runc exec
 * is the agent's child for the job's length only and is reaped by libuv;
 * the container itself stays the monitor's. */
#include "netagent/log.h"
#include "netagent/nsworker.h"
#include "netagent/util.h"
#include "provision/pv_int.h"

#include <fcntl.h>
#include <signal.h>

#define CAPTURE_DEFAULT (64 * 1024)
#define TIMEOUT_DEFAULT (10 * 60 * 1000)
#define KILL_GRACE_MS	5000

typedef struct ex {
	pv_exec_cb cb;
	void *ud;
	char **argv, **env, *user;
	char id[80], name[64], path[PV_PATH_MAX];
	int fd; /* stdout file, or -1 */
	uv_process_t proc;
	uv_pipe_t out, err;
	int handles, exited, killed, failed;
	int64_t status;
	int sig;
	char *buf;
	size_t len, max;
	na_timer_t *timer;
} ex_t;

static void ex_free(ex_t *x)
{
	for (size_t i = 0; x->argv && x->argv[i]; i++)
		free(x->argv[i]);
	for (size_t i = 0; x->env && x->env[i]; i++)
		free(x->env[i]);
	free(x->argv);
	free(x->env);
	free(x->user);
	free(x->buf);
	if (x->fd >= 0)
		close(x->fd);
	na_timer_free(x->timer);
	free(x);
}

static void closed(uv_handle_t *h)
{
	ex_t *x = h->data;
	if (--x->handles > 0)
		return;
	if (x->failed) { /* the spawn failed: the caller got the error */
		ex_free(x);
		return;
	}
	int st = x->sig ? 128 + x->sig : (int)x->status;
	x->buf[x->len] = 0;
	x->cb(x->ud, 0, NULL, st, x->buf, x->len);
	ex_free(x);
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	ex_t *x = h->data;
	(void)hint;
	/* Keep the last max bytes: make room by dropping the oldest half. */
	if (x->len + 4096 > 2 * x->max) {
		size_t drop = x->len - x->max / 2;
		memmove(x->buf, x->buf + drop, x->len - drop);
		x->len -= drop;
	}
	*b = uv_buf_init(x->buf + x->len, (unsigned)(2 * x->max - x->len));
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	ex_t *x = s->data;
	(void)b;
	if (n > 0) {
		x->len += (size_t)n;
		return;
	}
	if (n < 0 && !uv_is_closing((uv_handle_t *)s))
		uv_close((uv_handle_t *)s, closed);
}

static void exec_exited(uv_process_t *p, int64_t status, int sig)
{
	ex_t *x = p->data;
	x->exited = 1;
	x->status = status;
	x->sig = sig;
	na_timer_stop(x->timer);
	uv_close((uv_handle_t *)p, closed);
}

static void on_timeout(void *ud)
{
	ex_t *x = ud;
	if (x->exited)
		return;
	/* runc exec forwards SIGTERM to the job; SIGKILL would only kill
	 * runc itself, so it comes last. */
	uv_process_kill(&x->proc, x->killed ? SIGKILL : SIGTERM);
	if (!x->killed++)
		na_timer_start(x->timer, KILL_GRACE_MS, 0);
}

static int spawn(ex_t *x, const pv_exec_req_t *r, na_err_t *err)
{
	size_t n = 0, na = 0;
	while (r->argv[na])
		na++;
	for (size_t i = 0; r->env && r->env[i]; i++)
		n++;
	const char **args = calloc(8 + 2 * n + na + 1, sizeof(char *));
	if (!args)
		return na_err_errno(err, ENOMEM, "exec");
	size_t k = 0;
	args[k++] = pv.probe.path;
	args[k++] = "--root";
	args[k++] = pv.runc_root;
	args[k++] = "exec";
	if (r->user) {
		args[k++] = "--user";
		args[k++] = r->user;
	}
	for (size_t i = 0; i < n; i++) {
		args[k++] = "--env";
		args[k++] = r->env[i];
	}
	args[k++] = x->id;
	for (size_t i = 0; i < na; i++)
		args[k++] = r->argv[i];
	uv_stdio_container_t stdio[3] = {
	    {.flags = UV_IGNORE},
	    {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&x->out},
	    {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&x->err},
	};
	if (x->fd >= 0) {
		stdio[1].flags = UV_INHERIT_FD;
		stdio[1].data.fd = x->fd;
	}
	uv_process_options_t o = {.exit_cb = exec_exited,
				  .file = pv.probe.path,
				  .args = (char **)args,
				  .stdio_count = 3,
				  .stdio = stdio};
	uv_pipe_init(pv.ag->loop, &x->out, 0);
	uv_pipe_init(pv.ag->loop, &x->err, 0);
	x->out.data = x->err.data = x->proc.data = x;
	int rc = uv_spawn(pv.ag->loop, &x->proc, &o);
	free(args);
	if (rc < 0) {
		na_err_set(err, 500, "exec_failed", NULL, "cannot run %s exec: %s", pv.probe.path,
			   uv_strerror(rc));
		x->handles = 2;
		x->failed = 1;
		uv_close((uv_handle_t *)&x->out, closed);
		uv_close((uv_handle_t *)&x->err, closed);
		return -1;
	}
	x->handles = 3;
	if (x->fd >= 0) {
		close(x->fd);
		x->fd = -1;
		uv_close((uv_handle_t *)&x->out, closed);
	} else {
		uv_read_start((uv_stream_t *)&x->out, alloc_cb, read_cb);
	}
	uv_read_start((uv_stream_t *)&x->err, alloc_cb, read_cb);
	x->timer = na_timer_new(pv.ag, on_timeout, x);
	if (x->timer)
		na_timer_start(x->timer, r->timeout_ms ? r->timeout_ms : TIMEOUT_DEFAULT, 0);
	return 0;
}

/* stdout_path: opened off the loop (it may be on any file system). */
struct ojob {
	ex_t *x;
	pv_exec_req_t req;
};

static int w_open(void *arg, na_err_t *err)
{
	struct ojob *j = arg;
	j->x->fd = open(j->x->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	return j->x->fd < 0 ? na_err_errno(err, errno, "create %s", j->x->path) : 0;
}

static void opened(void *arg, int rc, const na_err_t *err)
{
	struct ojob *j = arg;
	ex_t *x = j->x;
	na_err_t e = NA_ERR_INIT;
	j->req.argv = (const char *const *)x->argv;
	j->req.env = (const char *const *)x->env;
	j->req.user = x->user;
	pv_ct_t *c = pv_ct_find(x->name);
	j->req.container = x->name;
	if (rc == 0 && (!c || c->state != PV_S_RUNNING)) {
		na_err_set(&e, 409, "not_running", NULL, "container %s is not running", x->name);
		rc = -1;
		err = &e;
	}
	if (rc == 0 && spawn(x, &j->req, &e) < 0) {
		rc = -1;
		err = &e;
	}
	if (rc < 0) {
		x->cb(x->ud, -1, err, -1, "", 0);
		if (!x->failed)
			ex_free(x); /* else its pipes' close frees it */
	}
	free(j);
}

int pv_exec(const pv_exec_req_t *r, pv_exec_cb cb, void *ud, na_err_t *err)
{
	pv_ct_t *c = r->container ? pv_ct_find(r->container) : NULL;
	if (!c)
		return na_err_set(err, 404, "not_found", NULL, "container %s not found",
				  r->container ? r->container : "(null)");
	if (c->state != PV_S_RUNNING)
		return na_err_set(err, 409, "not_running", NULL, "container %s is %s", c->name,
				  pv_state_names[c->state]);
	if (!r->argv || !r->argv[0] || !r->argv[0][0])
		return na_err_set(err, 422, "invalid_field", "argv", "exec needs a command");
	if (r->stdout_path && pv_check_host_path(r->stdout_path, "stdout_path", err) < 0)
		return -1;
	ex_t *x = calloc(1, sizeof(*x));
	size_t na = 0;
	while (r->argv[na])
		na++;
	if (!x || !(x->argv = calloc(na + 1, sizeof(char *))))
		goto nomem;
	for (size_t i = 0; i < na; i++)
		if (!(x->argv[i] = strdup(r->argv[i])))
			goto nomem;
	size_t ne = 0;
	while (r->env && r->env[ne])
		ne++;
	if (!(x->env = calloc(ne + 1, sizeof(char *))) || (r->user && !(x->user = strdup(r->user))))
		goto nomem;
	for (size_t i = 0; i < ne; i++)
		if (!(x->env[i] = strdup(r->env[i])))
			goto nomem;
	x->max = r->capture_max ? r->capture_max : CAPTURE_DEFAULT;
	if (!(x->buf = malloc(2 * x->max + 1)))
		goto nomem;
	x->cb = cb;
	x->ud = ud;
	x->fd = -1;
	snprintf(x->id, sizeof(x->id), "%s", c->id);
	snprintf(x->name, sizeof(x->name), "%s", c->name);
	pv_exec_req_t copy = *r;
	copy.argv = (const char *const *)x->argv;
	copy.env = (const char *const *)x->env;
	copy.user = x->user;
	if (!r->stdout_path) {
		if (spawn(x, &copy, err) < 0) {
			if (!x->failed)
				ex_free(x);
			return -1;
		}
		return 0;
	}
	snprintf(x->path, sizeof(x->path), "%s", r->stdout_path);
	struct ojob *j = calloc(1, sizeof(*j));
	if (!j)
		goto nomem;
	j->x = x;
	j->req = copy;
	j->req.stdout_path = x->path;
	if (na_ns_submit(NULL, NULL, w_open, opened, j) < 0) {
		free(j);
		ex_free(x);
		return na_err_set(err, 503, "unavailable", NULL, "cannot queue the exec");
	}
	return 0;
nomem:
	if (x)
		ex_free(x);
	return na_err_errno(err, ENOMEM, "exec");
}
