/* Monitors, seen from the agent: starting one (which starts the
 * container), asking it to stop the container, learning of the exit, and
 * finding the monitors a previous agent left (adoption).
 *
 * The agent holds a pidfd of each monitor and polls it on the loop: it
 * turns readable when the monitor exits, which it does right after
 * recording the container's exit, so exits are learnt at once and never
 * by polling files. A restarted agent opens the pidfds again. */
#include "netagent/events.h"
#include "netagent/log.h"
#include "netagent/nsworker.h"
#include "netagent/util.h"
#include "provision/pv_int.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

extern char **environ;

#define LOG_MAX	  (1 << 20) /* bytes per log file */
#define LOG_FILES 3

static void on_monitor_exit(uv_poll_t *h, int status, int events);

static void poll_closed(uv_handle_t *h)
{
	free(h);
}

/* Starts watching the monitor behind pidfd fd (taken). */
static int watch(pv_ct_t *c, int fd, int pid)
{
	uv_poll_t *p = calloc(1, sizeof(*p));
	if (!p || uv_poll_init(pv.ag->loop, p, fd) < 0) {
		free(p);
		close(fd);
		return -1;
	}
	p->data = c;
	c->poll = p;
	c->mon_fd = fd;
	c->mon_pid = pid;
	uv_poll_start(p, UV_READABLE, on_monitor_exit);
	return 0;
}

void pv_unwatch(pv_ct_t *c)
{
	if (c->poll) {
		uv_poll_stop(c->poll);
		uv_close((uv_handle_t *)c->poll, poll_closed);
		c->poll = NULL;
	}
	if (c->mon_fd >= 0)
		close(c->mon_fd);
	c->mon_fd = -1;
	c->mon_pid = 0;
}

/* ---- exit records ---------------------------------------------------------- */

struct xjob {
	pv_ct_t *c;
	char dir[512], id[80];
	int found, code, sig, oom, stopped;
	long long ran_ms, restarts;
	char finished[32], error[256];
};

static int w_read_exit(void *arg, na_err_t *err)
{
	struct xjob *j = arg;
	char path[600];
	(void)err;
	snprintf(path, sizeof(path), "%s/exit.json", j->dir);
	json_t *x = json_load_file(path, 0, NULL);
	if (!x) {
		/* The monitor died without recording an exit (SIGKILL): the
		 * container may run on, unsupervised and with its output pipe
		 * broken. It is killed, and then it is an exit like another. */
		pv_runtime_delete(j->id);
		j->code = -1;
		snprintf(j->error, sizeof(j->error),
			 "the monitor died without recording the exit; the container was killed");
		return 0;
	}
	j->found = 1;
	json_t *code = json_object_get(x, "exit_code");
	j->code = json_is_integer(code) ? (int)json_integer_value(code) : -1;
	j->sig = (int)json_integer_value(json_object_get(x, "signal"));
	j->oom = json_is_true(json_object_get(x, "oom_killed"));
	j->stopped = json_is_true(json_object_get(x, "stop_requested"));
	j->ran_ms = json_integer_value(json_object_get(x, "ran_ms"));
	j->restarts = json_integer_value(json_object_get(x, "restarts"));
	const char *f = json_string_value(json_object_get(x, "finished"));
	const char *e = json_string_value(json_object_get(x, "error"));
	snprintf(j->finished, sizeof(j->finished), "%s", f ? f : "");
	snprintf(j->error, sizeof(j->error), "%s", e ? e : "");
	json_decref(x);
	return 0;
}

static void apply_exit(pv_ct_t *c, const struct xjob *j)
{
	c->has_exit = 1;
	c->exit_code = j->code;
	c->exit_signal = j->sig;
	c->oom = j->oom;
	c->stop_requested = j->stopped;
	c->pid = 0;
	snprintf(c->finished, sizeof(c->finished), "%s", j->finished);
	if (!c->finished[0])
		na_time_rfc3339(c->finished, sizeof(c->finished));
	snprintf(c->error, sizeof(c->error), "%s", j->error);
	if (c->oom && !c->error[0])
		snprintf(c->error, sizeof(c->error), "killed by the kernel: out of memory");
	if ((unsigned long long)j->restarts > c->restarts)
		c->restarts = (unsigned)j->restarts;
	/* The backoff starts over after a run long enough to count as up. */
	if (j->ran_ms >= 10000)
		c->failures = 0;
}

static void exit_read(void *arg, int rc, const na_err_t *err)
{
	struct xjob *j = arg;
	pv_ct_t *c = j->c;
	(void)rc, (void)err;
	apply_exit(c, j);
	free(j);
	pv.exits_total++;
	na_info("container exited", "container=%s exit_code=%d signal=%d oom=%d", c->name,
		c->exit_code, c->exit_signal, c->oom);
	json_t *o = pv_ct_json(c);
	na_events_publish("container", "exited", c->name, o);
	json_decref(o);
	if (c->exit_cb) {
		pv_cb cb = c->exit_cb;
		c->exit_cb = NULL;
		cb(c->exit_ud, 0, NULL);
	} else if (pv.on_exit) {
		pv.on_exit(c);
	}
}

static void read_exit(pv_ct_t *c)
{
	struct xjob *j = calloc(1, sizeof(*j));
	char key[80];
	if (!j)
		return;
	j->c = c;
	pv_ct_path(c, NULL, j->dir, sizeof(j->dir));
	snprintf(j->id, sizeof(j->id), "%s", c->id);
	snprintf(key, sizeof(key), "ct/%s", c->name);
	if (na_ns_submit(key, NULL, w_read_exit, exit_read, j) < 0) {
		free(j);
		na_error("cannot queue the exit read", "container=%s", c->name);
	}
}

static void on_monitor_exit(uv_poll_t *h, int status, int events)
{
	pv_ct_t *c = h->data;
	(void)status, (void)events;
	pv_unwatch(c);
	if (c->handshake)
		c->exit_pending = 1; /* after the monitor's last message */
	else
		read_exit(c);
}

/* ---- starting a monitor ---------------------------------------------------- */

struct hs {
	pv_ct_t *c;
	pid_t child; /* the monitor's first process, which exits at once */
	uv_poll_t child_poll;
	uv_pipe_t pipe;
	char buf[4096];
	size_t len;
	int handles, done, acked;
	unsigned long long t0;
	pv_cb cb;
	void *ud;
};

static void hs_closed(uv_handle_t *h)
{
	struct hs *s = h->data;
	if (--s->handles == 0)
		free(s);
}

static void hs_finish(struct hs *s, int rc, const na_err_t *err)
{
	pv_ct_t *c = s->c;
	if (s->done)
		return;
	s->done = 1;
	uv_read_stop((uv_stream_t *)&s->pipe);
	if (!uv_is_closing((uv_handle_t *)&s->pipe))
		uv_close((uv_handle_t *)&s->pipe, hs_closed);
	c->handshake = 0;
	if (rc == 0) {
		double secs = (double)(na_now_ns() - s->t0) / 1e9;
		pv_observe_start(secs);
		pv.starts_total++;
		c->started_mono = na_now_ms();
		na_info("container started", "container=%s pid=%d start_ms=%.1f", c->name, c->pid,
			secs * 1000);
	} else {
		pv.start_failures++;
	}
	pv_cb cb = s->cb;
	void *ud = s->ud;
	cb(ud, rc, err);
	if (c->exit_pending) {
		c->exit_pending = 0;
		read_exit(c);
	}
}

static void on_line(struct hs *s, const char *line)
{
	pv_ct_t *c = s->c;
	na_err_t err = NA_ERR_INIT;
	json_t *m = json_loads(line, 0, NULL);
	json_t *mon = json_object_get(m, "monitor"), *pid = json_object_get(m, "pid");
	const char *emsg = json_string_value(json_object_get(m, "error"));
	if (json_is_integer(mon) && !s->acked) {
		int mp = (int)json_integer_value(mon);
		/* The monitor waits for "go" before it starts anything, so
		 * this pid is still it: no recycling race. */
		int fd = (int)syscall(SYS_pidfd_open, mp, 0);
		if (fd < 0 || watch(c, fd, mp) < 0) {
			na_err_errno(&err, errno, "pidfd of monitor %d", mp);
			json_decref(m);
			hs_finish(s, -1, &err);
			return;
		}
		s->acked = 1;
		static char go[] = "go\n";
		uv_buf_t b = uv_buf_init(go, 3);
		uv_try_write((uv_stream_t *)&s->pipe, &b, 1);
	} else if (json_is_integer(pid)) {
		const char *st = json_string_value(json_object_get(m, "started"));
		c->pid = (int)json_integer_value(pid);
		snprintf(c->started, sizeof(c->started), "%s", st ? st : "");
		snprintf(c->run_tag, sizeof(c->run_tag), "%s", c->tag);
		c->has_exit = 0;
		c->error[0] = 0;
		c->finished[0] = 0;
		json_decref(m);
		hs_finish(s, 0, NULL);
		return;
	} else if (emsg) {
		na_err_set(&err, 422, "start_failed", "command",
			   "the runtime could not start %s: %s", c->name, emsg);
		snprintf(c->error, sizeof(c->error), "%s", emsg);
		json_decref(m);
		hs_finish(s, -1, &err);
		return;
	}
	json_decref(m);
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct hs *s = h->data;
	(void)hint;
	*b = uv_buf_init(s->buf + s->len, (unsigned)(sizeof(s->buf) - 1 - s->len));
}

static void read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	struct hs *s = st->data;
	(void)b;
	if (n < 0) {
		na_err_t err = NA_ERR_INIT;
		na_err_set(
		    &err, 500, "monitor_failed", NULL,
		    "the monitor of %s ended before the container ran (see %s/%s/monitor.log)",
		    s->c->name, pv.ct_dir, s->c->name);
		hs_finish(s, -1, &err);
		return;
	}
	s->len += (size_t)n;
	s->buf[s->len] = 0;
	char *nl;
	while (!s->done && (nl = strchr(s->buf, '\n'))) {
		*nl = 0;
		on_line(s, s->buf);
		size_t used = (size_t)(nl + 1 - s->buf);
		memmove(s->buf, nl + 1, s->len - used + 1);
		s->len -= used;
	}
	if (!s->done && s->len >= sizeof(s->buf) - 1) {
		na_err_t err = NA_ERR_INIT;
		na_err_set(&err, 500, "monitor_failed", NULL, "garbage from the monitor");
		hs_finish(s, -1, &err);
	}
}

/* The first process exits as soon as it has forked the real monitor: it
 * is our child, reaped here (its pidfd turns readable when it is a zombie,
 * so waitpid does not block). */
static void on_child_exit(uv_poll_t *h, int status, int events)
{
	struct hs *s = h->data;
	int st;
	(void)status, (void)events;
	waitpid(s->child, &st, WNOHANG);
	int fd = -1;
	uv_fileno((uv_handle_t *)h, &fd);
	uv_poll_stop(h);
	uv_close((uv_handle_t *)h, hs_closed);
	close(fd);
}

/* posix_spawn (vfork-like: no copy of the agent's page tables on the loop
 * thread, unlike libuv's fork), in a session of its own, every signal at
 * its default and unblocked; the sync socket is its fd 3. */
static int spawn_monitor(char *const argv[], int sync_fd, pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, all;
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, sync_fd, 3);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
					  POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &all);
	int rc = posix_spawn(pid, argv[0], &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	return -rc;
}

static int w_reap(void *arg, na_err_t *err)
{
	int st;
	(void)err;
	waitpid((pid_t)(intptr_t)arg, &st, 0);
	return 0;
}

static void reaped(void *arg, int rc, const na_err_t *err)
{
	(void)arg, (void)rc, (void)err;
}

int pv_spawn(pv_ct_t *c, pv_cb cb, void *ud)
{
	char dir[512], bundle[512], cg[200], st[16], rs[16], lm[24], lf[8];
	struct hs *s = calloc(1, sizeof(*s));
	int sv[2];
	if (!s)
		return -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		na_error("cannot start the monitor", "container=%s error=\"socketpair: %s\"",
			 c->name, strerror(errno));
		free(s);
		return -1;
	}
	pv_ct_path(c, NULL, dir, sizeof(dir));
	pv_ct_path(c, "bundle", bundle, sizeof(bundle));
	pv_ct_cgroup(c, cg, sizeof(cg));
	snprintf(st, sizeof(st), "%d", c->spec.stop_timeout_s);
	snprintf(rs, sizeof(rs), "%u", c->restarts);
	snprintf(lm, sizeof(lm), "%d", LOG_MAX);
	snprintf(lf, sizeof(lf), "%d", LOG_FILES);
	char *args[] = {pv.probe.monitor,
			"--id",
			c->id,
			"--runtime",
			pv.probe.path,
			"--root",
			pv.runc_root,
			"--bundle",
			bundle,
			"--dir",
			dir,
			"--cgroup",
			cg,
			"--stop-timeout",
			st,
			"--restarts",
			rs,
			"--tag",
			c->tag,
			"--log-max",
			lm,
			"--log-files",
			lf,
			"--sync-fd",
			"3",
			NULL};
	s->c = c;
	s->cb = cb;
	s->ud = ud;
	s->t0 = na_now_ns();
	int r = spawn_monitor(args, sv[1], &s->child);
	close(sv[1]);
	if (r < 0) {
		na_error("cannot start the monitor", "container=%s error=\"%s\"", c->name,
			 strerror(-r));
		close(sv[0]);
		free(s);
		return -1;
	}
	uv_pipe_init(pv.ag->loop, &s->pipe, 0);
	s->pipe.data = s;
	s->handles = 1;
	if (uv_pipe_open(&s->pipe, sv[0]) < 0)
		close(sv[0]); /* reads fail at once: the start fails */
	/* Our unreaped child: its pid cannot be recycled before the pidfd
	 * exists. */
	int pfd = (int)syscall(SYS_pidfd_open, s->child, 0);
	s->child_poll.data = s;
	if (pfd >= 0 && uv_poll_init(pv.ag->loop, &s->child_poll, pfd) == 0) {
		s->handles++;
		uv_poll_start(&s->child_poll, UV_READABLE, on_child_exit);
	} else {
		if (pfd >= 0)
			close(pfd);
		if (na_ns_submit(NULL, NULL, w_reap, reaped, (void *)(intptr_t)s->child) < 0)
			na_warn("cannot reap the monitor's first process", "pid=%d", s->child);
	}
	c->handshake = 1;
	c->exit_pending = 0;
	uv_read_start((uv_stream_t *)&s->pipe, alloc_cb, read_cb);
	return 0;
}

/* ---- stopping ---------------------------------------------------------------- */

int pv_stop(pv_ct_t *c, pv_cb cb, void *ud)
{
	if (c->mon_fd < 0) {
		cb(ud, 0, NULL);
		return 0;
	}
	c->exit_cb = cb;
	c->exit_ud = ud;
	/* The monitor turns it into SIGTERM for the init and SIGKILL after
	 * the stop timeout. ESRCH: it is exiting, the poll reports it. */
	if (syscall(SYS_pidfd_send_signal, c->mon_fd, SIGTERM, NULL, 0) < 0 && errno != ESRCH) {
		na_err_t err = NA_ERR_INIT;
		c->exit_cb = NULL;
		na_err_errno(&err, errno, "signal the monitor of %s", c->name);
		cb(ud, -1, &err);
	}
	return 0;
}

/* ---- adoption ------------------------------------------------------------------ */

struct ajob {
	pv_ct_t *c;
	char dir[512], id[80];
	int pidfd, mon_pid, pid;
	long long restarts;
	char started[32], tag[17];
	struct xjob exit;
	pv_cb cb;
	void *ud;
};

static int w_adopt(void *arg, na_err_t *err)
{
	struct ajob *j = arg;
	char path[600];
	j->pidfd = pv_monitor_pidfd(j->dir, j->id);
	snprintf(path, sizeof(path), "%s/monitor.json", j->dir);
	json_t *m = json_load_file(path, 0, NULL);
	if (j->pidfd >= 0 && m) {
		const char *st = json_string_value(json_object_get(m, "started"));
		const char *tag = json_string_value(json_object_get(m, "tag"));
		j->mon_pid = (int)json_integer_value(json_object_get(m, "monitor"));
		j->pid = (int)json_integer_value(json_object_get(m, "pid"));
		j->restarts = json_integer_value(json_object_get(m, "restarts"));
		snprintf(j->started, sizeof(j->started), "%s", st ? st : "");
		snprintf(j->tag, sizeof(j->tag), "%s", tag ? tag : "");
		json_decref(m);
		return 0;
	}
	json_decref(m);
	snprintf(path, sizeof(path), "%s/exit.json", j->dir);
	int recorded = access(path, F_OK) == 0;
	/* No monitor and no record, but a runtime container: its monitor was
	 * killed; w_read_exit kills the orphan and says so. */
	snprintf(path, sizeof(path), "%s/%s/state.json", pv.runc_root, j->id);
	if (recorded || access(path, F_OK) == 0)
		return w_read_exit(&j->exit, err);
	return 0;
}

static void adopted(void *arg, int rc, const na_err_t *err)
{
	struct ajob *j = arg;
	pv_ct_t *c = j->c;
	if (rc == 0 && j->pidfd >= 0) {
		if (watch(c, j->pidfd, j->mon_pid) == 0) {
			c->pid = j->pid;
			c->restarts = (unsigned)j->restarts;
			snprintf(c->started, sizeof(c->started), "%s", j->started);
			snprintf(c->run_tag, sizeof(c->run_tag), "%s", j->tag);
			c->started_mono = na_now_ms();
			pv_ct_set_state(c, PV_S_RUNNING);
			na_info("container adopted", "container=%s pid=%d monitor=%d", c->name,
				c->pid, c->mon_pid);
		}
	} else if (rc == 0 && (j->exit.found || j->exit.error[0])) {
		apply_exit(c, &j->exit);
		pv_ct_set_state(c, c->want_run ? PV_S_EXITED : PV_S_STOPPED);
		na_info("container exited while the agent was away", "container=%s exit_code=%d",
			c->name, c->exit_code);
	} else {
		pv_ct_set_state(c, PV_S_STOPPED);
	}
	pv_cb cb = j->cb;
	void *ud = j->ud;
	free(j);
	cb(ud, rc, err);
}

int pv_adopt(pv_ct_t *c, pv_cb cb, void *ud)
{
	struct ajob *j = calloc(1, sizeof(*j));
	char key[80];
	if (!j)
		return -1;
	j->c = c;
	j->pidfd = -1;
	pv_ct_path(c, NULL, j->dir, sizeof(j->dir));
	snprintf(j->id, sizeof(j->id), "%s", c->id);
	memcpy(j->exit.dir, j->dir, sizeof(j->exit.dir));
	memcpy(j->exit.id, j->id, sizeof(j->exit.id));
	j->cb = cb;
	j->ud = ud;
	snprintf(key, sizeof(key), "ct/%s", c->name);
	if (na_ns_submit(key, NULL, w_adopt, adopted, j) < 0) {
		free(j);
		return -1;
	}
	return 0;
}
