/* The module's reconcile round: adopt what a previous agent left, start
 * what should run and does not (per its restart policy), stop what should
 * not run, restart what runs with a spec it no longer has, and collect
 * what is ours but not wanted (a crash in the middle of a create leaves a
 * runtime container, a run dir, a netns, endpoints). */
#include "netagent/log.h"
#include "netagent/util.h"
#include "provision/pv_int.h"

#include <string.h>

/* Names being collected: a GC is queued once per name. */
static char (*collecting)[64];
static size_t ncollecting;

static int is_collecting(const char *name)
{
	for (size_t i = 0; i < ncollecting; i++)
		if (!strcmp(collecting[i], name))
			return 1;
	return 0;
}

static void collect_end(const char *name)
{
	for (size_t i = 0; i < ncollecting; i++)
		if (!strcmp(collecting[i], name)) {
			memmove(collecting[i], collecting[i + 1], (ncollecting - i - 1) * 64);
			ncollecting--;
			return;
		}
}

struct gc {
	char name[64];
};

static void cleaned(void *ud, int rc, const na_err_t *err)
{
	struct gc *g = ud;
	if (rc < 0)
		na_warn("cannot collect container leftovers", "container=%s error=\"%s\"", g->name,
			err->msg);
	else
		na_info("collected leftovers of an unwanted container", "container=%s", g->name);
	collect_end(g->name);
	free(g);
}

static void detached(void *ud, int rc, const na_err_t *err)
{
	struct gc *g = ud;
	if (rc < 0)
		na_warn("cannot detach an unwanted container", "container=%s error=\"%s\"", g->name,
			err->msg);
	/* A new container of that name may have come meanwhile: its
	 * prepare is queued behind this cleanup (same worker key) only if
	 * it came after; if it exists now, leave everything to it. */
	if (pv_ct_find(g->name) || pv_cleanup(g->name, 0, cleaned, g) < 0) {
		collect_end(g->name);
		free(g);
	}
}

static void gc_listed(void *ud, pv_orphan_t *list, size_t n)
{
	(void)ud;
	for (size_t i = 0; i < n; i++) {
		pv_orphan_t *o = &list[i];
		if (pv_ct_find(o->name) || is_collecting(o->name))
			continue;
		struct gc *g = calloc(1, sizeof(*g));
		char(*nc)[64] = realloc(collecting, (ncollecting + 1) * 64);
		if (!g || !nc) {
			free(g);
			if (nc)
				collecting = nc;
			continue;
		}
		collecting = nc;
		snprintf(collecting[ncollecting++], 64, "%s", o->name);
		snprintf(g->name, sizeof(g->name), "%s", o->name);
		na_info("collecting an unwanted container", "container=%s networks=%zu", o->name,
			o->nnets);
		if (pv_net_detach_names(o->name, o->nets, o->nnets, detached, g) < 0) {
			collect_end(g->name);
			free(g);
		}
	}
}

static void decide(pv_ct_t *c)
{
	if (c->op)
		return;
	if (c->state == PV_S_UNKNOWN) {
		pv_op_run(c, PV_OP_ADOPT, NULL, NULL, 0);
	} else if (c->state == PV_S_RUNNING && !c->want_run) {
		na_info("stopping a container that should not run", "container=%s", c->name);
		pv_op_run(c, PV_OP_STOP, NULL, NULL, 0);
	} else if (c->state == PV_S_RUNNING && c->run_tag[0] && strcmp(c->run_tag, c->tag)) {
		na_info("restarting a container that runs an older spec",
			"container=%s running=%s wanted=%s", c->name, c->run_tag, c->tag);
		pv_op_run(c, PV_OP_RESTART, NULL, NULL, 0);
	} else if (!pv.probe.error[0] && pv_should_start(c)) {
		pv_policy_kick(c);
	}
}

static void full_round(void)
{
	for (pv_ct_t *c = pv.cts, *next; c; c = next) {
		next = c->next;
		decide(c);
	}
	pv_gc_list(gc_listed, NULL);
}

void pv_reconcile_init(void)
{
	pv.decide = decide;
	pv.round = full_round;
}

void pv_reconcile(na_agent_t *ag, na_done_fn done, void *ud)
{
	(void)ag;
	if (pv.probe.done && pv.probe.runtime[0])
		full_round();
	done(ud);
}
