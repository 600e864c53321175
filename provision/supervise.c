/* Monitors, seen from the agent: asking one to stop the container,
 * learning of the exit, and finding the monitors a previous agent left
 * (adoption). Starting them: spawn.c.
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

#include <signal.h>
#include <sys/syscall.h>

static void on_monitor_exit(uv_poll_t *h, int status, int events);

static void poll_closed(uv_handle_t *h)
{
	free(h);
}

int pv_watch(pv_ct_t *c, int fd, int pid)
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

void pv_read_exit(pv_ct_t *c)
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
		pv_read_exit(c);
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
		if (pv_watch(c, j->pidfd, j->mon_pid) == 0) {
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
