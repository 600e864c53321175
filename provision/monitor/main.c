/* netagent-monitor: started by the agent for one container run.
 *
 *   netagent-monitor --spare [--root DIR] --sync-fd FD [PAD]
 *   netagent-monitor --id ID --runtime RUNC --root DIR --bundle DIR --dir DIR
 *                    [--cgroup PATH] [--stop-timeout S] [--restarts N] [--tag T]
 *                    [--log-max BYTES] [--log-files N] [--sync-fd FD]
 *
 * It forks once more and the first process exits, so the monitor is
 * reparented away from the agent (the agent is nobody's parent and may be
 * killed at any moment). It becomes a child subreaper and tells the agent
 * {"monitor":PID} over the sync socket, then waits for one line: the
 * container to start, as a JSON object of the options above (they override
 * the command line's), sent once the agent holds a pidfd of it. EOF instead
 * means the agent is gone: start nothing. The agent spawns monitors ahead of
 * need (--spare, no container yet, no time limit), so that a start costs no
 * fork, exec or round trip of the monitor; a spare takes its container's
 * --id and --dir into its command line (adoption checks it) by rewriting
 * its own argument area, which PAD makes large enough.
 * Then it runs `runc run -d`, and the container's init, orphaned when runc
 * exits, is reparented to it: it alone can wait for the init's exit status.
 * The agent gets {"pid":PID} or {"error":MSG}. In --dir it keeps
 * monitor.json (who runs), exit.json (how it ended), ctr.log* (the output)
 * and runc.log. SIGTERM stops the container: SIGTERM to the init, SIGKILL
 * after --stop-timeout. After the exit: `runc delete`, exit.json, exit. */
#include "netagent/log.h"
#include "provision/monitor/mon.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* Where a start's time goes, for monitor.log (µs): the start line, runc
 * spawned, runc's exit, the container's first output relayed (0: none). */
static struct {
	unsigned long long go, spawned, runc_done, first;
} tm;

/* posix_spawn (vfork-like: no copy of the monitor's page tables, and the
 * child execs before the parent runs on), every signal at its default and
 * unblocked, stdin /dev/null; out and err, when < 0, /dev/null too. */
static pid_t spawn(char *const *argv, int out, int err)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, all;
	pid_t pid;
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (out >= 0)
		posix_spawn_file_actions_adddup2(&fa, out, 1);
	else
		posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	if (err >= 0)
		posix_spawn_file_actions_adddup2(&fa, err, 2);
	else
		posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &all);
	int rc = posix_spawn(&pid, argv[0], &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (rc) {
		errno = rc;
		return -1;
	}
	return pid;
}

static int wait_pid(pid_t p)
{
	int st = 0;
	while (waitpid(p, &st, 0) < 0 && errno == EINTR)
		;
	return st;
}

/* Waits for `runc run -d` while already logging what the container writes: the process
 * runs (and may print) before runc returns, and its first bytes should not wait for
 * runc's own exit. A pidfd says when runc is done without touching SIGCHLD, which
 * supervise() owns (the container's init is reaped there). */
static int wait_runc(pid_t runc, mon_stream_t *st, mon_log_t *lg)
{
	int pfd = (int)syscall(SYS_pidfd_open, runc, 0);
	if (pfd < 0)
		return wait_pid(runc);
	char buf[65536];
	int fds[2] = {st[0].fd, st[1].fd}; /* -1 once at EOF: supervise() closes them */
	for (;;) {
		struct pollfd p[3] = {{pfd, POLLIN, 0}, {fds[0], POLLIN, 0}, {fds[1], POLLIN, 0}};
		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 0; i < 2; i++) {
			if (fds[i] < 0 || !(p[i + 1].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			ssize_t r = read(fds[i], buf, sizeof(buf));
			if (r > 0) {
				mon_stream_feed(lg, &st[i], buf, (size_t)r);
				if (!tm.first)
					tm.first = mono_us();
			} else if (r == 0 || errno != EINTR) {
				fds[i] = -1;
			}
		}
		if (p[0].revents & POLLIN)
			break;
	}
	close(pfd);
	int rs = wait_pid(runc);
	tm.runc_done = mono_us();
	return rs;
}

/* What the container wrote meanwhile, logged now: the steps between runc's
 * exit and supervise() (pid file, monitor.json, the agent's message) would
 * otherwise hold up its first output. EOF is left to supervise(). */
static void relay_ready(mon_stream_t *st, mon_log_t *lg)
{
	char buf[65536];
	struct pollfd p[2] = {{st[0].fd, POLLIN, 0}, {st[1].fd, POLLIN, 0}};
	if (poll(p, 2, 0) <= 0)
		return;
	for (int i = 0; i < 2; i++) {
		ssize_t r = p[i].revents & POLLIN ? read(st[i].fd, buf, sizeof(buf)) : 0;
		if (r > 0) {
			mon_stream_feed(lg, &st[i], buf, (size_t)r);
			if (!tm.first)
				tm.first = mono_us();
		}
	}
}

static void runc_delete(void)
{
	char *argv[] = {(char *)cfg.runtime, "--root", (char *)cfg.root, "delete", "--force",
			(char *)cfg.id,	     NULL};
	pid_t p = spawn(argv, -1, -1);
	if (p > 0)
		wait_pid(p);
}

/* runc's own error, from its JSON log: the last error-level message. */
static void runc_error(char *out, size_t n)
{
	char p[600], line[4096];
	snprintf(out, n, "runc failed (no message in runc.log)");
	snprintf(p, sizeof(p), "%s/runc.log", cfg.dir);
	FILE *f = fopen(p, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		json_t *j = json_loads(line, 0, NULL);
		const char *lvl = json_string_value(json_object_get(j, "level"));
		const char *msg = json_string_value(json_object_get(j, "msg"));
		if (lvl && msg && (!strcmp(lvl, "error") || !strcmp(lvl, "fatal")))
			snprintf(out, n, "%s", msg);
		json_decref(j);
	}
	fclose(f);
}

static int read_pid(void)
{
	char p[600], buf[32] = "";
	snprintf(p, sizeof(p), "%s/pid", cfg.dir);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t r = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (r <= 0)
		return -1;
	buf[r] = 0;
	return atoi(buf);
}

/* The memory cgroup's OOM kill counter, v1 or v2. */
static int oom_killed(void)
{
	char p[700], line[128];
	const char *files[] = {"/sys/fs/cgroup/memory%s/memory.oom_control",
			       "/sys/fs/cgroup/unified%s/memory.events",
			       "/sys/fs/cgroup%s/memory.events"};
	if (!cfg.cgroup)
		return 0;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(p, sizeof(p), files[i], cfg.cgroup);
		FILE *f = fopen(p, "re");
		if (!f)
			continue;
		long n = 0;
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "oom_kill %ld", &n) == 1)
				break;
		fclose(f);
		if (n > 0)
			return 1;
	}
	return 0;
}

static void write_json(const char *name, json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(j);
	if (!s)
		return;
	int r = mon_write_atomic(cfg.dir, name, s, strlen(s));
	if (r < 0)
		na_error("cannot write state", "file=%s error=\"%s\"", name, strerror(-r));
	free(s);
}

static void fail(const char *msg)
{
	char ts[32];
	mon_timestamp(ts, sizeof(ts));
	na_error("container did not start", "id=%s error=\"%s\"", cfg.id ? cfg.id : "-", msg);
	if (!cfg.dir) { /* a spare: no container yet */
		mon_sync_send(json_pack("{s:s}", "error", msg));
		exit(1);
	}
	write_json("exit.json",
		   json_pack("{s:n, s:n, s:s, s:s, s:b, s:b, s:I, s:s}", "exit_code", "signal",
			     "finished", ts, "error", msg, "oom_killed", 0, "stop_requested", 0,
			     "restarts", (json_int_t)cfg.restarts, "tag", cfg.tag));
	mon_sync_send(json_pack("{s:s}", "error", msg));
	runc_delete();
	exit(1);
}

/* Everything after the init is known: log the pipes, wait for the exit,
 * stop it when asked. */
static int supervise(pid_t init, int sfd, mon_stream_t *st, mon_log_t *lg, int *stopped)
{
	int status = -1, exited = 0;
	unsigned long long kill_at = 0, drain_until = 0;
	char buf[65536];
	/* A short-lived init may have exited while runc was still running; its SIGCHLD can
	 * have merged with runc's, so look once before waiting for signals. */
	int s0;
	pid_t w0;
	while ((w0 = waitpid(-1, &s0, WNOHANG)) > 0)
		if (w0 == init) {
			status = s0;
			exited = 1;
			drain_until = mono_ms() + 2000;
		}
	for (;;) {
		struct pollfd p[3] = {
		    {sfd, POLLIN, 0}, {st[0].fd, POLLIN, 0}, {st[1].fd, POLLIN, 0}};
		int timeout = -1;
		unsigned long long now = mono_ms(), at = exited ? drain_until : kill_at;
		if (exited && st[0].fd < 0 && st[1].fd < 0)
			break;
		if (at) {
			if (now >= at) {
				if (exited)
					break; /* a daemonized grandchild keeps a pipe open */
				kill(init, SIGKILL);
				kill_at = 0;
				continue;
			}
			timeout = (int)(at - now);
		}
		if (poll(p, 3, timeout) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < 2; i++) {
			if (st[i].fd < 0 || !(p[i + 1].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			ssize_t r = read(st[i].fd, buf, sizeof(buf));
			if (r > 0) {
				mon_stream_feed(lg, &st[i], buf, (size_t)r);
				if (!tm.first)
					tm.first = mono_us();
			} else if (r == 0 || errno != EINTR) {
				mon_stream_flush(lg, &st[i]);
				close(st[i].fd);
				st[i].fd = -1;
			}
		}
		if (!(p[0].revents & POLLIN))
			continue;
		struct signalfd_siginfo si;
		if (read(sfd, &si, sizeof(si)) != sizeof(si))
			continue;
		if (si.ssi_signo == SIGTERM && !exited && !*stopped) {
			*stopped = 1;
			/* The init cannot be a recycled pid: it is our
			 * unreaped child. */
			kill(init, cfg.stop_timeout > 0 ? SIGTERM : SIGKILL);
			kill_at = mono_ms() + (unsigned long long)cfg.stop_timeout * 1000ULL;
		} else if (si.ssi_signo == SIGCHLD) {
			int s;
			pid_t w;
			/* Orphans of the container are reparented to us too. */
			while ((w = waitpid(-1, &s, WNOHANG)) > 0)
				if (w == init) {
					status = s;
					exited = 1;
					kill_at = 0;
					drain_until = mono_ms() + 2000;
				}
		}
	}
	return status;
}

int main(int argc, char **argv)
{
	if (mon_parse(argc, argv) < 0) {
		fprintf(stderr, "usage: netagent-monitor --spare [--root DIR] --sync-fd FD | "
				"--id ID --runtime RUNC --root DIR --bundle DIR --dir DIR "
				"[--cgroup P] [--stop-timeout S] [--restarts N] [--tag T] "
				"[--log-max B] [--log-files N] [--sync-fd FD]\n");
		return 2;
	}
	cfg.argc = argc;
	cfg.argv = argv;
	/* Out of the agent's way: the first process exits at once (the agent
	 * reaps it), the second runs on with PID 1 (or the nearest subreaper)
	 * as its parent, in a session of its own. */
	pid_t p = fork();
	if (p < 0)
		return 1;
	if (p > 0)
		_exit(0);
	setsid();
	char path[600];
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	dup2(null, 0);
	dup2(null, 1);
	dup2(null, 2); /* monitor.log once the container's dir is known */
	if (cfg.sync_fd >= 0 && cfg.sync_fd != 3 && dup2(cfg.sync_fd, 3) == 3) {
		close(cfg.sync_fd);
		cfg.sync_fd = 3;
	}
	if (cfg.sync_fd == 3)
		fcntl(3, F_SETFD, FD_CLOEXEC);
	/* Nothing of the agent's leaks into runc or the container. */
	close_range(cfg.sync_fd == 3 ? 4 : 3, ~0U, 0);

	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0 || sfd < 0)
		fail("cannot become a child subreaper");

	mon_sync_send(json_pack("{s:i}", "monitor", (int)getpid()));
	if (mon_wait_go(sfd) < 0)
		return 1; /* nothing started, nothing to say */
	tm.go = mono_us();
	snprintf(path, sizeof(path), "%s/monitor.log", cfg.dir);
	int lfd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lfd >= 0) {
		dup2(lfd, 2);
		close(lfd);
	}
	if (cfg.spare)
		mon_set_cmdline();

	int out[2], err[2];
	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0)
		fail("cannot create the output pipes");
	mon_log_t lg;
	if (mon_log_open(&lg, cfg.dir, cfg.log_max, cfg.log_files) < 0)
		fail("cannot open the container log");
	snprintf(path, sizeof(path), "%s/exit.json", cfg.dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/pid", cfg.dir);
	unlink(path);
	char rlog[600];
	snprintf(rlog, sizeof(rlog), "%s/runc.log", cfg.dir);
	unlink(rlog);

	/* runc run -d hands its stdio to the container and returns once the
	 * process runs; its own errors go to --log (and to stderr, which is
	 * the container's: they show in the container log too). */
	char *rargv[] = {(char *)cfg.runtime,
			 "--root",
			 (char *)cfg.root,
			 "--log",
			 rlog,
			 "--log-format",
			 "json",
			 "run",
			 "-d",
			 "--pid-file",
			 path,
			 "--bundle",
			 (char *)cfg.bundle,
			 (char *)cfg.id,
			 NULL};
	pid_t runc = spawn(rargv, out[1], err[1]);
	tm.spawned = mono_us();
	close(out[1]);
	close(err[1]);
	if (runc < 0)
		fail("cannot fork runc");
	mon_stream_t st[2] = {{out[0], "stdout", {0}, 0}, {err[0], "stderr", {0}, 0}};
	int rs = wait_runc(runc, st, &lg);
	if (!WIFEXITED(rs) || WEXITSTATUS(rs) != 0) {
		char msg[1024];
		runc_error(msg, sizeof(msg));
		fail(msg);
	}
	relay_ready(st, &lg);
	pid_t init = read_pid();
	if (init <= 0)
		fail("runc did not write the container's pid file");
	char ts[32];
	mon_timestamp(ts, sizeof(ts));
	unsigned long long t0 = mono_ms();
	/* Before the agent hears of the pid: an acknowledged container can
	 * always be adopted. */
	write_json("monitor.json",
		   json_pack("{s:i, s:i, s:s, s:s, s:I, s:I, s:s}", "monitor", (int)getpid(), "pid",
			     (int)init, "id", cfg.id, "started", ts, "started_ms",
			     (json_int_t)mon_realtime_ms(), "restarts", (json_int_t)cfg.restarts,
			     "tag", cfg.tag));
	relay_ready(st, &lg);
	mon_sync_send(json_pack("{s:i, s:s}", "pid", (int)init, "started", ts));
	close(cfg.sync_fd);
	cfg.sync_fd = -1;
	/* spawn_ms: from the agent's start line to runc's exec; runc_ms:
	 * `runc run -d` itself. */
	na_info("container started", "id=%s pid=%d spawn_ms=%.2f runc_ms=%.2f", cfg.id, (int)init,
		(double)(tm.spawned - tm.go) / 1e3, (double)(tm.runc_done - tm.spawned) / 1e3);

	int stopped = 0;
	int status = supervise(init, sfd, st, &lg, &stopped);
	for (int i = 0; i < 2; i++)
		if (st[i].fd >= 0)
			mon_stream_flush(&lg, &st[i]);
	int oom = oom_killed();
	runc_delete();
	mon_timestamp(ts, sizeof(ts));
	json_t *code = json_null(), *sig = json_null();
	if (status >= 0 && WIFEXITED(status))
		code = json_integer(WEXITSTATUS(status));
	else if (status >= 0 && WIFSIGNALED(status)) {
		code = json_integer(128 + WTERMSIG(status));
		sig = json_integer(WTERMSIG(status));
	}
	write_json("exit.json",
		   json_pack("{s:o, s:o, s:s, s:b, s:b, s:i, s:I, s:I, s:s}", "exit_code", code,
			     "signal", sig, "finished", ts, "oom_killed", oom, "stop_requested",
			     stopped, "pid", (int)init, "ran_ms", (json_int_t)(mono_ms() - t0),
			     "restarts", (json_int_t)cfg.restarts, "tag", cfg.tag));
	/* first_output_ms: from the start line to the first output logged. */
	na_info("container exited", "id=%s status=%d oom=%d first_output_ms=%.2f", cfg.id, status,
		oom, tm.first ? (double)(tm.first - tm.go) / 1e3 : -1.0);
	return 0;
}
