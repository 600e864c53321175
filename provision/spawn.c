/* Starting monitors, which start the containers.
 *
 * A monitor is spawned ahead of need, as a spare: it forks away from the
 * agent, becomes a child subreaper, sends {"monitor":PID} and waits. The
 * agent opens a pidfd of it (its pid cannot be recycled under the agent
 * from then on) and keeps it. A start hands the spare its container in one
 * line (id, bundle, dir, ...) and the monitor runs `runc run -d` at once:
 * no spawn, exec and dynamic linking of the monitor, no double fork and no
 * round trip on the start's critical path (2-8 ms on a loaded 2-core host;
 * runc itself takes 20-100 ms). Monitors are spawned on a worker:
 * posix_spawn holds its thread until the child has exec'd.
 *
 * One spare is kept. It is made again SPARE_DELAY_MS after a start has
 * finished (not while runc runs, nor while the new process makes its first
 * output: on two cores it would take CPU from them), or at once when an
 * operation that will start something begins (pv_spare),
 * so that even the first start after the agent's own start overlaps the
 * monitor's start-up with the bundle and the netns. A start that finds no
 * spare (a burst) takes the one on its way, or spawns its own: the same
 * handshake, with the line sent when the monitor says hello.
 *
 * A spare costs a process of ~1.5 MiB RSS and no CPU; it exits when the
 * agent's end of its socket closes (agent stopped or killed). */
#include "netagent/log.h"
#include "netagent/nsworker.h"
#include "netagent/util.h"
#include "provision/pv_int.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

extern char **environ;

#define LOG_MAX	  (1 << 20) /* bytes per log file */
#define LOG_FILES 3
/* Room in a spare's argument area for "--id ID --dir DIR" (monitor/main.c):
 * ids are < 80 bytes, run dirs < 512. */
#define CMDLINE_ROOM   640
#define SPARE_DELAY_MS 100

struct mon {
	pv_ct_t *c;  /* the container it starts; NULL while spare */
	pid_t child; /* the monitor's first process, which exits at once */
	uv_poll_t child_poll;
	uv_pipe_t pipe;
	char buf[4096];
	size_t len;
	int handles, done;
	int pidfd, pid;	    /* the monitor, once it said hello */
	int sv0, child_pfd; /* w_spawn's, for spawned() */
	unsigned long long t0;
	pv_cb cb;
	void *ud;
};

static struct mon *spare;
static na_timer_t *later; /* the next spare, SPARE_DELAY_MS after a start */
static char pad[CMDLINE_ROOM + 1];

static void spare_later(void *ud)
{
	(void)ud;
	pv_spare();
}

static void mon_closed(uv_handle_t *h)
{
	struct mon *m = h->data;
	if (--m->handles == 0)
		free(m);
}

/* Lets go of m's pipe and, unless a container took it, its pidfd. */
static void mon_close(struct mon *m)
{
	m->done = 1;
	if (spare == m)
		spare = NULL;
	if (m->pidfd >= 0)
		close(m->pidfd);
	m->pidfd = -1;
	uv_read_stop((uv_stream_t *)&m->pipe);
	if (!uv_is_closing((uv_handle_t *)&m->pipe))
		uv_close((uv_handle_t *)&m->pipe, mon_closed);
}

/* The end of a start, either way. */
static void finish(struct mon *m, int rc, const na_err_t *err)
{
	pv_ct_t *c = m->c;
	if (m->done)
		return;
	mon_close(m);
	c->handshake = 0;
	if (rc == 0) {
		double secs = (double)(na_now_ns() - m->t0) / 1e9;
		pv_observe_start(secs);
		pv.starts_total++;
		c->started_mono = na_now_ms();
		na_info("container started", "container=%s pid=%d start_ms=%.1f", c->name, c->pid,
			secs * 1000);
	} else {
		pv.start_failures++;
	}
	m->cb(m->ud, rc, err);
	if (c->exit_pending) {
		c->exit_pending = 0;
		pv_read_exit(c);
	}
	if (!spare && (later || (later = na_timer_new(pv.ag, spare_later, NULL))))
		na_timer_start(later, SPARE_DELAY_MS, 0);
}

/* The container's options, one line: the monitor starts it at once. */
static int send_start(struct mon *m)
{
	pv_ct_t *c = m->c;
	char dir[512], bundle[512], cg[200];
	pv_ct_path(c, NULL, dir, sizeof(dir));
	pv_ct_path(c, "bundle", bundle, sizeof(bundle));
	pv_ct_cgroup(c, cg, sizeof(cg));
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:I, s:s, s:i, s:i}", "id",
			      c->id, "runtime", pv.probe.path, "root", pv.runc_root, "bundle",
			      bundle, "dir", dir, "cgroup", cg, "stop_timeout",
			      c->spec.stop_timeout_s, "restarts", (json_int_t)c->restarts, "tag",
			      c->tag, "log_max", LOG_MAX, "log_files", LOG_FILES);
	char *line = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!line)
		return -1;
	size_t n = strlen(line);
	line[n] = '\n'; /* the NUL becomes the line end */
	uv_buf_t b = uv_buf_init(line, (unsigned)n + 1);
	/* The socket is empty and its buffer far larger than the line. */
	int w = uv_try_write((uv_stream_t *)&m->pipe, &b, 1);
	free(line);
	return w == (int)n + 1 ? 0 : -1;
}

/* m has said hello (pidfd held) and has its container: the agent watches
 * the monitor from now on, then tells it to start. */
static int go(struct mon *m)
{
	pv_ct_t *c = m->c;
	if (pv_watch(c, m->pidfd, m->pid) < 0) {
		m->pidfd = -1; /* closed by pv_watch */
		return -1;
	}
	m->pidfd = -1; /* c's now */
	if (send_start(m) < 0) {
		pv_unwatch(c);
		return -1;
	}
	return 0;
}

static void on_line(struct mon *m, const char *line)
{
	na_err_t err = NA_ERR_INIT;
	json_t *j = json_loads(line, 0, NULL);
	json_t *mon = json_object_get(j, "monitor"), *pid = json_object_get(j, "pid");
	const char *emsg = json_string_value(json_object_get(j, "error"));
	pv_ct_t *c = m->c;
	if (json_is_integer(mon) && m->pidfd < 0 && !m->pid) {
		m->pid = (int)json_integer_value(mon);
		/* The monitor waits for its start line before it does anything,
		 * so this pid is still it: no recycling race. */
		m->pidfd = (int)syscall(SYS_pidfd_open, m->pid, 0);
		if (m->pidfd < 0)
			na_err_errno(&err, errno, "pidfd of monitor %d", m->pid);
		if (m->pidfd < 0 || (c && go(m) < 0)) {
			if (!err.msg[0])
				na_err_set(&err, 500, "monitor_failed", NULL,
					   "cannot hand container %s to its monitor",
					   c ? c->name : "-");
			if (c)
				finish(m, -1, &err);
			else
				mon_close(m); /* a spare: EOF makes it exit */
		}
	} else if (c && json_is_integer(pid)) {
		const char *st = json_string_value(json_object_get(j, "started"));
		c->pid = (int)json_integer_value(pid);
		snprintf(c->started, sizeof(c->started), "%s", st ? st : "");
		snprintf(c->run_tag, sizeof(c->run_tag), "%s", c->tag);
		c->has_exit = 0;
		c->error[0] = 0;
		c->finished[0] = 0;
		finish(m, 0, NULL);
	} else if (c && emsg) {
		na_err_set(&err, 422, "start_failed", "command",
			   "the runtime could not start %s: %s", c->name, emsg);
		snprintf(c->error, sizeof(c->error), "%s", emsg);
		finish(m, -1, &err);
	}
	json_decref(j);
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct mon *m = h->data;
	(void)hint;
	*b = uv_buf_init(m->buf + m->len, (unsigned)(sizeof(m->buf) - 1 - m->len));
}

static void read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	struct mon *m = st->data;
	na_err_t err = NA_ERR_INIT;
	(void)b;
	if (n < 0) {
		if (!m->c) { /* a spare died (killed by hand?): the next start makes one */
			na_warn("spare monitor gone", "pid=%d", m->pid);
			mon_close(m);
			return;
		}
		na_err_set(
		    &err, 500, "monitor_failed", NULL,
		    "the monitor of %s ended before the container ran (see %s/%s/monitor.log)",
		    m->c->name, pv.ct_dir, m->c->name);
		finish(m, -1, &err);
		return;
	}
	m->len += (size_t)n;
	m->buf[m->len] = 0;
	char *nl;
	while (!m->done && (nl = strchr(m->buf, '\n'))) {
		*nl = 0;
		on_line(m, m->buf);
		size_t used = (size_t)(nl + 1 - m->buf);
		memmove(m->buf, nl + 1, m->len - used + 1);
		m->len -= used;
	}
	if (!m->done && m->len >= sizeof(m->buf) - 1) {
		na_err_set(&err, 500, "monitor_failed", NULL, "garbage from the monitor");
		if (m->c)
			finish(m, -1, &err);
		else
			mon_close(m);
	}
}

/* The first process exits as soon as it has forked the real monitor: it
 * is our child, reaped here (its pidfd turns readable when it is a zombie,
 * so waitpid does not block). */
static void on_child_exit(uv_poll_t *h, int status, int events)
{
	struct mon *m = h->data;
	int st, fd = -1;
	(void)status, (void)events;
	waitpid(m->child, &st, WNOHANG);
	uv_fileno((uv_handle_t *)h, &fd);
	uv_poll_stop(h);
	uv_close((uv_handle_t *)h, mon_closed);
	close(fd);
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

/* Worker: the spawn itself. posix_spawn blocks the calling thread until the
 * child has exec'd (ms on a loaded host): never the loop's. */
static int w_spawn(void *arg, na_err_t *err)
{
	struct mon *m = arg;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return na_err_set(err, 500, "monitor_failed", NULL,
				  "cannot start a monitor: socketpair: %s", strerror(errno));
	/* --root: which agent a spare belongs to, in ps. */
	char *args[] = {pv.probe.monitor, "--spare", "--root", pv.runc_root,
			"--sync-fd",	  "3",	     pad,      NULL};
	int r = spawn_monitor(args, sv[1], &m->child);
	close(sv[1]);
	if (r < 0) {
		close(sv[0]);
		return na_err_set(err, 500, "monitor_failed", NULL, "cannot start %s: %s",
				  pv.probe.monitor, strerror(-r));
	}
	m->sv0 = sv[0];
	/* Our unreaped child: its pid cannot be recycled before the pidfd
	 * exists. */
	m->child_pfd = (int)syscall(SYS_pidfd_open, m->child, 0);
	return 0;
}

/* Loop: the monitor runs (or could not be started). */
static void spawned(void *arg, int rc, const na_err_t *err)
{
	struct mon *m = arg;
	if (rc < 0) {
		pv_ct_t *c = m->c;
		na_error("cannot start a monitor", "error=\"%s\"", err->msg);
		if (spare == m)
			spare = NULL;
		if (c) {
			c->handshake = 0;
			pv.start_failures++;
			m->cb(m->ud, -1, err);
		}
		free(m);
		return;
	}
	uv_pipe_init(pv.ag->loop, &m->pipe, 0);
	m->pipe.data = m;
	m->handles = 1;
	if (uv_pipe_open(&m->pipe, m->sv0) < 0)
		close(m->sv0); /* reads fail at once: the monitor is dropped */
	m->child_poll.data = m;
	if (m->child_pfd >= 0 && uv_poll_init(pv.ag->loop, &m->child_poll, m->child_pfd) == 0) {
		m->handles++;
		uv_poll_start(&m->child_poll, UV_READABLE, on_child_exit);
	} else {
		if (m->child_pfd >= 0)
			close(m->child_pfd);
		if (na_ns_submit(NULL, NULL, w_reap, reaped, (void *)(intptr_t)m->child) < 0)
			na_warn("cannot reap the monitor's first process", "pid=%d", m->child);
	}
	uv_read_start((uv_stream_t *)&m->pipe, alloc_cb, read_cb);
}

/* A new monitor, not handed a container yet, spawned on a worker. */
static struct mon *mon_new(void)
{
	struct mon *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->pidfd = m->sv0 = m->child_pfd = -1;
	if (!pad[0])
		memset(pad, ' ', CMDLINE_ROOM);
	if (na_ns_submit(NULL, NULL, w_spawn, spawned, m) < 0) {
		free(m);
		return NULL;
	}
	return m;
}

void pv_spare(void)
{
	if (later)
		na_timer_stop(later);
	if (spare || pv.closing || !pv.probe.done || pv.probe.error[0])
		return;
	spare = mon_new();
}

/* A spare that said hello and still runs (its pidfd is not readable). */
static int alive(const struct mon *m)
{
	struct pollfd p = {m->pidfd, POLLIN, 0};
	return m->pidfd >= 0 && poll(&p, 1, 0) == 0;
}

int pv_spawn(pv_ct_t *c, pv_cb cb, void *ud)
{
	struct mon *m = spare;
	spare = NULL;
	c->handshake = 1;
	c->exit_pending = 0;
	if (m && m->pidfd >= 0) {
		/* Ready: the start line goes now. */
		m->c = c;
		m->cb = cb;
		m->ud = ud;
		m->t0 = na_now_ns();
		if (alive(m) && go(m) == 0)
			return 0;
		na_warn("spare monitor unusable, spawning another", "pid=%d", m->pid);
		m->c = NULL;
		mon_close(m);
		m = NULL;
	}
	/* On its way (or a new one): the line goes when it says hello. */
	if (!m && !(m = mon_new())) {
		c->handshake = 0;
		return -1;
	}
	m->c = c;
	m->cb = cb;
	m->ud = ud;
	m->t0 = na_now_ns();
	return 0;
}
