/* Operations on a container, each a sequence of asynchronous steps, one
 * operation at a time per container (requests arriving meanwhile wait for
 * it), and the restart policy.
 *
 * Acknowledged means on disk: every operation a client waits for ends
 * with the state file written (or removed), after the kernel and the
 * runtime did their part. A crash before that leaves objects that the
 * next start adopts (the state file says so) or collects (it does not). */
#include "netagent/events.h"
#include "netagent/log.h"
#include "netagent/util.h"
#include "provision/pv_int.h"
#include "provision/role.h"

#include <string.h>

#define BACKOFF_BASE_MS 250
#define BACKOFF_MAX_MS	30000

enum step {
	S_END,
	S_CHECK,      /* the new spec's file-system checks */
	S_STOP,	      /* the running container, if any */
	S_SETSPEC,    /* the new spec becomes the container's */
	S_WANT_RUN,   /* desired: running */
	S_WANT_STOP,  /* desired: stopped */
	S_PREPARE,    /* bundle, volumes, netns */
	S_NET,	      /* overlay interfaces */
	S_SPAWN,      /* monitor + runc, if it should run */
	S_PERSIST,    /* state file */
	S_DETACH_ALL, /* every overlay interface */
	S_CLEANUP,    /* runtime, run dir, netns, cgroups (volumes: op->purge) */
	S_UNPERSIST,
	S_ADOPT,	 /* what a previous agent left running or exited */
	S_RENDER,	 /* live update: the role's files, container running */
	S_APPLY,	 /* live update: the role makes the process take them */
	S_CHECK_PREPARE, /* S_CHECK then S_PREPARE in one worker job */
};

static const enum step seq_create[] = {S_CHECK_PREPARE, S_NET, S_SPAWN, S_PERSIST, S_END};
static const enum step seq_update[] = {S_CHECK, S_STOP,	 S_SETSPEC, S_PREPARE,
				       S_NET,	S_SPAWN, S_PERSIST, S_END};
static const enum step seq_start[] = {S_WANT_RUN, S_PREPARE, S_NET, S_SPAWN, S_PERSIST, S_END};
static const enum step seq_stop[] = {S_WANT_STOP, S_PERSIST, S_STOP, S_END};
static const enum step seq_restart[] = {S_WANT_RUN, S_STOP,    S_PREPARE, S_NET,
					S_SPAWN,    S_PERSIST, S_END};
static const enum step seq_delete[] = {S_STOP, S_DETACH_ALL, S_CLEANUP, S_UNPERSIST, S_END};
static const enum step seq_autostart[] = {S_PREPARE, S_NET, S_SPAWN, S_END};
static const enum step seq_adopt[] = {S_ADOPT, S_END};
static const enum step seq_live[] = {S_CHECK, S_SETSPEC, S_RENDER, S_APPLY, S_PERSIST, S_END};
/* A create that failed after the first kernel or disk work. */
static const enum step seq_rollback[] = {S_STOP, S_DETACH_ALL, S_CLEANUP, S_END};

typedef struct pv_op {
	pv_ct_t *c;
	enum pv_op_kind kind;
	na_req_t *req;
	const enum step *seq;
	size_t i;
	pv_spec_t newspec, oldspec;
	int has_new, has_old, purge, rolling_back;
	int touched;		   /* a step past the checks ran */
	na_err_t err;		   /* the failure a rollback replies with */
	unsigned long long t0, ts; /* op start, step start (ns): the debug log's step times */
} pv_op_t;

static void run_step(pv_op_t *op);
static void schedule_restart(pv_ct_t *c);

/* Reconcile's decision for one container, soon (never inside op_end: the
 * waiters go first). Through pv.decide: reconcile.c is above this file. */
static void decide_now(void *ud)
{
	char *name = ud;
	pv_ct_t *c = pv_ct_find(name);
	if (c && !c->op && pv.decide)
		pv.decide(c);
	free(name);
}

static void decide_soon(pv_ct_t *c)
{
	char *name = strdup(c->name);
	if (name && na_defer(pv.ag, decide_now, name) < 0)
		free(name);
}
static int policy_restarts(const pv_ct_t *c);

static void publish(pv_ct_t *c, const char *action)
{
	json_t *o = pv_ct_json(c);
	na_events_publish("container", action, c->name, o);
	json_decref(o);
}

static void op_free(pv_op_t *op)
{
	if (op->has_new)
		pv_spec_free(&op->newspec);
	if (op->has_old)
		pv_spec_free(&op->oldspec);
	free(op);
}

static const char *kind_name(enum pv_op_kind k)
{
	static const char *const n[] = {"create", "update",    "start", "stop", "restart",
					"delete", "autostart", "adopt", "live"};
	return n[k];
}

/* The end of an operation, successful or not: the reply, the state the
 * container settles in, and the requests that waited. */
static void op_end(pv_op_t *op, int rc, const na_err_t *err)
{
	pv_ct_t *c = op->c;
	c->op = NULL;
	if (op->kind == PV_OP_DELETE && rc == 0) {
		publish(c, "deleted");
		na_info("container deleted", "container=%s purge=%d", c->name, op->purge);
		if (op->req)
			na_reply_empty(op->req, 204);
		pv_logs_close_all(c->name);
		pv_ct_t *gone = c;
		pv_ct_release_waiters(gone); /* they find it absent: 404 */
		pv_ct_unlink_free(gone);
		op_free(op);
		return;
	}
	if (op->kind == PV_OP_CREATE && rc < 0) {
		/* Nothing was acknowledged: the container never existed. */
		if (op->req)
			na_reply_err(op->req, err);
		pv_ct_release_waiters(c);
		pv_ct_unlink_free(c);
		op_free(op);
		return;
	}
	if (rc < 0 && !op->touched) {
		/* Refused before anything changed (a bad rootfs). */
		if (op->req)
			na_reply_err(op->req, err);
	} else if (rc < 0) {
		na_warn("container operation failed", "container=%s op=%s error=\"%s\"", c->name,
			kind_name(op->kind), err->msg);
		if (op->has_old) {
			/* The old spec stays the desired one; reconcile brings it
			 * back (the new one may be half applied). */
			pv_ct_set_spec(c, &op->oldspec);
			op->has_old = 0;
			decide_soon(c);
		}
		if (c->state != PV_S_RUNNING && c->state != PV_S_RESTARTING)
			pv_ct_set_state(c, c->want_run ? PV_S_EXITED : PV_S_STOPPED);
		if (!c->error[0])
			snprintf(c->error, sizeof(c->error), "%.255s", err->msg);
		if (op->kind == PV_OP_AUTOSTART && c->want_run && policy_restarts(c))
			schedule_restart(c);
		if (op->req)
			na_reply_err(op->req, err);
	} else if (op->req) {
		int status = op->kind == PV_OP_CREATE ? 201 : 200;
		if (op->kind == PV_OP_CREATE || op->kind == PV_OP_UPDATE ||
		    op->kind == PV_OP_LIVE) {
			publish(c, op->kind == PV_OP_CREATE ? "created" : "updated");
			if (op->kind == PV_OP_CREATE && c->started[0])
				publish(c, "started");
			na_info(op->kind == PV_OP_CREATE ? "container created"
							 : "container updated",
				"container=%s state=%s", c->name, pv_state_names[c->state]);
		}
		na_reply_json(op->req, status, pv_ct_json(c));
	}
	if (op->kind == PV_OP_ADOPT)
		decide_soon(c); /* what it needs now, not at the next round */
	op_free(op);
	pv_ct_release_waiters(c);
}

static const char *const step_names[] = {
    "end",	 "check", "stop",   "setspec", "want_run",	"want_stop",
    "prepare",	 "net",	  "spawn",  "persist", "detach_all",	"cleanup",
    "unpersist", "adopt", "render", "apply",   "check_prepare",
};

static void step_done(void *ud, int rc, const na_err_t *err)
{
	pv_op_t *op = ud;
	pv_ct_t *c = op->c;
	enum step s = op->seq[op->i];
	unsigned long long now = na_now_ns();
	/* Where an operation's time goes (start latency is a goal). */
	na_debug("container step", "container=%s op=%s step=%s rc=%d step_ms=%.2f op_ms=%.2f",
		 c->name, kind_name(op->kind), step_names[s], rc, (double)(now - op->ts) / 1e6,
		 (double)(now - op->t0) / 1e6);
	op->ts = now;
	if (rc == PV_REFUSED && s == S_CHECK_PREPARE)
		op->touched = 0; /* refused by the checks: nothing was made */
	if (rc < 0) {
		na_err_t e = *err;
		if (s == S_SPAWN)
			publish(c, "start_failed");
		if (op->kind == PV_OP_CREATE && !op->rolling_back && s != S_CHECK &&
		    rc != PV_REFUSED) {
			/* Undo what exists, then answer with the first error. */
			op->err = e;
			op->rolling_back = 1;
			op->seq = seq_rollback;
			op->i = 0;
			run_step(op);
			return;
		}
		if (op->rolling_back) {
			na_warn("create rollback incomplete; reconcile collects the rest",
				"container=%s error=\"%s\"", c->name, e.msg);
			e = op->err;
		}
		op_end(op, -1, &e);
		return;
	}
	if (s == S_SPAWN && c->pid && c->state == PV_S_STARTING) {
		pv_ct_set_state(c, PV_S_RUNNING);
		if (op->kind != PV_OP_CREATE) /* "created" first (op_end) */
			publish(c, "started");
	}
	if (s == S_STOP && !c->pid)
		pv_ct_set_state(c, c->want_run ? PV_S_EXITED : PV_S_STOPPED);
	op->i++;
	if (op->seq[op->i] == S_END) {
		if (op->rolling_back)
			op_end(op, -1, &op->err);
		else
			op_end(op, 0, NULL);
		return;
	}
	run_step(op);
}

static void ok(pv_op_t *op)
{
	step_done(op, 0, NULL);
}

static void queue_fail(pv_op_t *op, const char *what)
{
	na_err_t err = NA_ERR_INIT;
	na_err_set(&err, 503, "unavailable", NULL, "cannot queue %s for container %s", what,
		   op->c->name);
	step_done(op, -1, &err);
}

static void run_step(pv_op_t *op)
{
	pv_ct_t *c = op->c;
	if (op->seq[op->i] != S_CHECK)
		op->touched = 1;
	switch (op->seq[op->i]) {
	case S_END:
		ok(op);
		return;
	case S_CHECK:
		if (pv_check_fs(c, op->has_new ? &op->newspec : &c->spec, step_done, op) < 0)
			queue_fail(op, "the rootfs check");
		return;
	case S_STOP:
		if (c->mon_fd < 0) {
			ok(op);
			return;
		}
		pv_ct_set_state(c, PV_S_STOPPING);
		pv_stop(c, step_done, op);
		return;
	case S_SETSPEC:
		op->oldspec = c->spec;
		memset(&c->spec, 0, sizeof(c->spec));
		op->has_old = 1;
		pv_ct_set_spec(c, &op->newspec);
		op->has_new = 0;
		ok(op);
		return;
	case S_WANT_RUN:
		c->want_run = 1;
		ok(op);
		return;
	case S_WANT_STOP:
		c->want_run = 0;
		ok(op);
		return;
	case S_CHECK_PREPARE:
		if (pv_check_prepare(c, step_done, op) < 0) {
			/* Nothing was made, nothing checked: no rollback (it
			 * would remove a runtime container the check refuses). */
			na_err_t err = NA_ERR_INIT;
			na_err_set(&err, 503, "unavailable", NULL, "cannot queue the bundle of %s",
				   c->name);
			step_done(op, PV_REFUSED, &err);
		}
		return;
	case S_PREPARE:
		if (c->state != PV_S_CREATING)
			pv_ct_set_state(c, PV_S_STARTING);
		if (pv_prepare(c, step_done, op) < 0)
			queue_fail(op, "the bundle");
		return;
	case S_NET:
		if (pv_net_sync(c, step_done, op) < 0)
			queue_fail(op, "the networks");
		return;
	case S_SPAWN:
		if (!c->want_run) {
			pv_ct_set_state(c, PV_S_STOPPED);
			ok(op);
			return;
		}
		if (pv.probe.error[0]) {
			na_err_t err = NA_ERR_INIT;
			na_err_set(&err, 503, "runtime_unavailable", NULL, "%s", pv.probe.error);
			step_done(op, -1, &err);
			return;
		}
		pv_ct_set_state(c, PV_S_STARTING);
		if (pv_spawn(c, step_done, op) < 0) {
			na_err_t err = NA_ERR_INIT;
			na_err_set(&err, 500, "monitor_failed", NULL, "cannot start %s",
				   pv.probe.monitor);
			step_done(op, -1, &err);
		}
		return;
	case S_PERSIST:
		if (pv_persist(c, step_done, op) < 0)
			queue_fail(op, "the state file");
		return;
	case S_DETACH_ALL:
		if (pv_net_detach_all(c, step_done, op) < 0)
			queue_fail(op, "the detach");
		return;
	case S_CLEANUP:
		pv_ct_set_state(c, op->kind == PV_OP_DELETE ? PV_S_DELETING : c->state);
		/* A failed create removes only the volumes it left empty. */
		if (pv_cleanup(c->name, op->rolling_back ? 2 : op->purge, step_done, op) < 0)
			queue_fail(op, "the cleanup");
		return;
	case S_UNPERSIST:
		if (pv_unpersist(c, step_done, op) < 0)
			queue_fail(op, "the state file");
		return;
	case S_ADOPT:
		if (pv_adopt(c, step_done, op) < 0)
			queue_fail(op, "the adoption");
		return;
	case S_RENDER:
		if (pv_render(c, step_done, op) < 0)
			queue_fail(op, "the rendering");
		return;
	case S_APPLY: {
		na_err_t err = NA_ERR_INIT;
		if (!c->spec.role->apply) {
			ok(op);
			return;
		}
		if (c->spec.role->apply(c->name, &c->spec, step_done, op, &err) < 0)
			step_done(op, -1, &err);
		return;
	}
	}
}

void pv_op_run(pv_ct_t *c, enum pv_op_kind kind, na_req_t *req, pv_spec_t *newspec, int purge)
{
	pv_op_t *op = calloc(1, sizeof(*op));
	if (!op) {
		if (newspec)
			pv_spec_free(newspec);
		if (req) {
			na_err_t err = NA_ERR_INIT;
			na_err_errno(&err, ENOMEM, "container %s", c->name);
			na_reply_err(req, &err);
		}
		return;
	}
	op->c = c;
	op->kind = kind;
	op->req = req;
	op->purge = purge;
	if (newspec) {
		op->newspec = *newspec;
		memset(newspec, 0, sizeof(*newspec));
		op->has_new = 1;
	}
	static const enum step *const seqs[] = {seq_create,    seq_update,  seq_start,
						seq_stop,      seq_restart, seq_delete,
						seq_autostart, seq_adopt,   seq_live};
	op->seq = seqs[kind];
	op->t0 = op->ts = na_now_ns();
	c->op = op;
	/* An operation decides what runs next: no restart of the backoff
	 * fires into it. */
	if (c->timer && kind != PV_OP_AUTOSTART)
		na_timer_stop(c->timer);
	if (kind == PV_OP_CREATE)
		pv_ct_set_state(c, PV_S_CREATING);
	/* A monitor for the start at the end, starting up while the bundle
	 * and the netns are made (spawn.c; usually one is ready already). */
	if (kind == PV_OP_CREATE || kind == PV_OP_UPDATE || kind == PV_OP_START ||
	    kind == PV_OP_RESTART || kind == PV_OP_AUTOSTART)
		pv_spare();
	if (kind == PV_OP_AUTOSTART && (c->has_exit || c->started[0])) {
		c->restarts++;
		pv.restarts_total++;
		publish(c, "restarted");
	}
	run_step(op);
}

/* ---- restart policy ---------------------------------------------------------- */

static void backoff_fire(void *ud)
{
	pv_ct_t *c = ud;
	if (c->op) { /* busy: look again soon */
		na_timer_start(c->timer, 200, 0);
		return;
	}
	if (c->state != PV_S_RESTARTING || !c->want_run)
		return;
	pv_op_run(c, PV_OP_AUTOSTART, NULL, NULL, 0);
}

static void schedule_restart(pv_ct_t *c)
{
	if (!c->timer && !(c->timer = na_timer_new(pv.ag, backoff_fire, c))) {
		na_error("cannot schedule a restart", "container=%s", c->name);
		return;
	}
	/* 250 ms, doubling per consecutive failure, at most 30 s; a run of
	 * 10 s or more starts the sequence over (supervise.c). */
	unsigned long long d = BACKOFF_BASE_MS;
	for (unsigned i = 0; i < c->failures && d < BACKOFF_MAX_MS; i++)
		d *= 2;
	if (d > BACKOFF_MAX_MS)
		d = BACKOFF_MAX_MS;
	if (d < c->spec.restart_floor_ms)
		d = c->spec.restart_floor_ms;
	c->failures++;
	c->backoff_ms = d;
	c->next_start_ms = na_now_ms() + d;
	pv_ct_set_state(c, PV_S_RESTARTING);
	na_timer_start(c->timer, d, 0);
	na_info("container restart scheduled", "container=%s in_ms=%llu restarts=%u", c->name, d,
		c->restarts);
	publish(c, "restarting");
}

static int failed(const pv_ct_t *c)
{
	return c->exit_code != 0 || c->exit_signal || c->oom || c->error[0];
}

/* Whether the policy restarts c after its last exit. */
static int policy_restarts(const pv_ct_t *c)
{
	switch (c->spec.restart) {
	case PV_RESTART_ALWAYS:
		return 1;
	case PV_RESTART_ON_FAILURE:
		return failed(c);
	case PV_RESTART_NEVER:
		return 0;
	}
	return 0;
}

/* An exit nobody asked for. */
static void exited_unasked(pv_ct_t *c)
{
	if (!c->want_run) {
		pv_ct_set_state(c, PV_S_STOPPED);
		return;
	}
	if (policy_restarts(c))
		schedule_restart(c);
	else
		pv_ct_set_state(c, PV_S_EXITED);
}

/* Reconcile asks: c should run, does not, and nothing is scheduled. */
int pv_should_start(const pv_ct_t *c)
{
	if (c->op || !c->want_run || c->state == PV_S_RUNNING || c->state == PV_S_RESTARTING)
		return 0;
	/* Never ran in this boot (no record), or the policy wants it back. */
	return !c->has_exit || policy_restarts(c);
}

void pv_policy_kick(pv_ct_t *c)
{
	if (c->has_exit && policy_restarts(c))
		schedule_restart(c);
	else
		pv_op_run(c, PV_OP_AUTOSTART, NULL, NULL, 0);
}

void pv_ops_init(void)
{
	pv.on_exit = exited_unasked;
}
