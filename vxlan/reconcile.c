/* Periodic reconcile: for each network, make the kernel match the desired
 * state (create/repair links and endpoints, program missing remote entries,
 * remove extra ones), and remove networks this agent owns but no longer
 * wants. Everything is idempotent, so running it at start adopts what a
 * previous run left without flapping the datapath. */
#include <dirent.h>

#include "netagent/events.h"
#include "netagent/log.h"
#include "netagent/nsworker.h"
#include "netagent/util.h"
#include "vxlan/diff.h"

struct rjob {
	struct vx_snap *snap;
	int in_round;
	int keep_extra; /* learned set not known yet: remove nothing */
	unsigned repairs;
	char error[256];
	char what[256]; /* the first differences found, for the log */
};

static int w_reconcile(void *arg, na_err_t *err)
{
	struct rjob *j = arg;
	struct vx_snap *s = j->snap;
	struct vx_k_net kn;
	vx_snap_knet(s, &kn);
	int changed;
	if (vx_k_network_create(&kn, &changed, err) < 0)
		return -1;
	j->repairs += (unsigned)changed;
	/* A recreated vxlan0 or br0 lost its FDB (the bridge's static entries
	 * too, which the diff below does not see): program every remote. */
	if (changed && s->nremote && vx_k_remote_set_many(s->netns, s->remote, s->nremote, err) < 0)
		return -1;
	for (size_t i = 0; i < s->nlocal; i++) {
		struct vx_k_ep ke;
		na_err_t e = NA_ERR_INIT;
		vx_snap_kep(&s->local[i], &ke);
		if (vx_k_endpoint_attach(&kn, &ke, &changed, &e) < 0) {
			if (!j->error[0]) {
				na_err_prefix(&e, "endpoint %s", ke.name);
				size_t l = strnlen(e.msg, sizeof(j->error) - 1);
				memcpy(j->error, e.msg, l);
				j->error[l] = 0;
			}
		} else if (changed)
			j->repairs++;
	}
	struct vx_k_state k = {0};
	struct vx_repair rep = {0};
	if (vx_k_network_dump(s->netns, &k, err) < 0)
		return -1;
	/* Only the remote entries come from the diff; links were handled above. */
	struct vx_k_ep_state *eps = calloc(s->nlocal + 1, sizeof(*eps));
	json_t *d = eps ? vx_diff(s, &k, eps, &rep) : NULL;
	size_t off = 0;
	for (size_t i = 0; i < json_array_size(d) && off < sizeof(j->what) - 1; i++) {
		json_t *x = json_array_get(d, i);
		int w = snprintf(j->what + off, sizeof(j->what) - off, "%s%s %s %s", i ? "; " : "",
				 json_string_value(json_object_get(x, "kind")),
				 json_string_value(json_object_get(x, "object")),
				 json_string_value(json_object_get(x, "problem")));
		if (w < 0)
			break;
		off += (size_t)w;
	}
	json_decref(d);
	free(eps);
	vx_k_state_free(&k);
	int rc = 0;
	if (j->keep_extra)
		rep.ndel = 0;
	for (size_t i = 0; i < rep.ndel_links; i++) {
		na_err_t e = NA_ERR_INIT;
		int removed;
		if (vx_k_link_delete(s->netns, rep.del_links[i], &removed, &e) == 0 && removed)
			j->repairs++;
	}
	if (rep.ndel && vx_k_remote_del_many(s->netns, rep.del, rep.ndel, err) < 0)
		rc = -1;
	if (rc == 0 && rep.nset && vx_k_remote_set_many(s->netns, rep.set, rep.nset, err) < 0)
		rc = -1;
	j->repairs += (unsigned)(rep.ndel + rep.nset);
	vx_repair_free(&rep);
	return rc;
}

/* The next sweep of a network just reconciled: vx.sweep_ms on average,
 * drawn from half to one and a half of it. A fixed period kept networks
 * reconciled together (created in one burst, or adopted at start) sweeping
 * together: 1,000 reconciles in one round every 5 minutes and none between. */
static unsigned long long sweep_due(unsigned long long now)
{
	return now + (unsigned long long)(vx.sweep_ms / 2 + rand() % vx.sweep_ms);
}

/* The round's last job calls the core back. */
static void round_job_done(void)
{
	if (--vx.reconciling > 0 || !vx.round_done)
		return;
	na_done_fn done = vx.round_done;
	vx.round_done = NULL;
	done(vx.round_ud);
}

static void reconciled(void *arg, int rc, const na_err_t *err)
{
	struct rjob *j = arg;
	vx_net_t *n = vx_net_find(j->snap->name);
	if (n) {
		n->rq_queued = 0;
		n->next_sweep_ms = sweep_due(na_now_ms());
		const char *msg = rc < 0 ? err->msg : j->error;
		if (strcmp(n->error, msg) != 0 && *msg)
			na_warn("network reconcile failed", "network=%s error=\"%s\"", n->name,
				msg);
		size_t l = strnlen(msg, sizeof(n->error) - 1);
		memcpy(n->error, msg, l);
		n->error[l] = 0;
		if (rc == 0)
			n->ready = 1;
		if (j->repairs) {
			n->repairs += j->repairs;
			vx.repairs += j->repairs;
			na_info("network repaired", "network=%s repairs=%u what=\"%s\"", n->name,
				j->repairs, j->what[0] ? j->what : "links or endpoints");
			json_t *o = json_pack("{s:I}", "repairs", (json_int_t)j->repairs);
			na_events_publish("network", "repaired", n->name, o);
			json_decref(o);
		}
	}
	int in_round = j->in_round;
	vx_snap_free(j->snap);
	free(j);
	if (n)
		vx_watch_ensure(n); /* e.g. the network was just created by this job */
	if (in_round)
		round_job_done();
}

void vx_reconcile_net(vx_net_t *n, int in_round)
{
	if (n->busy || n->deleted || n->rq_queued)
		return;
	struct rjob *j = calloc(1, sizeof(*j));
	if (!j || !(j->snap = vx_snap_take(n))) {
		free(j);
		return;
	}
	j->keep_extra = !vx_etcd_learned_once();
	j->in_round = in_round;
	if (in_round)
		vx.reconciling++;
	n->rq_queued = 1;
	if (na_ns_submit(n->name, NULL, w_reconcile, reconciled, j) < 0) {
		n->rq_queued = 0;
		if (in_round)
			vx.reconciling--;
		vx_snap_free(j->snap);
		free(j);
	}
}

/* ---- garbage: namespaces of this agent that no network wants ------------- */

struct gjob {
	char **names;
	size_t n;
	char dir[200], prefix[80];
	char path[600];
};

static int w_gc_list(void *arg, na_err_t *err)
{
	struct gjob *g = arg;
	DIR *d = opendir(g->dir);
	if (!d)
		return errno == ENOENT ? 0 : na_err_errno(err, errno, "open %s", g->dir);
	struct dirent *de;
	size_t pl = strlen(g->prefix);
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, g->prefix, pl) != 0 || !de->d_name[pl])
			continue;
		char **nv = realloc(g->names, (g->n + 1) * sizeof(*nv));
		if (!nv)
			break;
		g->names = nv;
		g->names[g->n++] = strdup(de->d_name + pl);
	}
	closedir(d);
	return 0;
}

static int w_gc_delete(void *arg, na_err_t *err)
{
	struct gjob *g = arg;
	return vx_k_network_delete(g->path, NULL, err);
}

static void gc_deleted(void *arg, int rc, const na_err_t *err)
{
	struct gjob *g = arg;
	if (rc < 0)
		na_warn("cannot remove unwanted network", "netns=%s error=\"%s\"", g->path,
			err->msg);
	else
		na_info("removed unwanted network", "netns=%s", g->path);
	free(g);
}

static void gc_listed(void *arg, int rc, const na_err_t *err)
{
	struct gjob *g = arg;
	(void)err;
	for (size_t i = 0; rc == 0 && i < g->n; i++) {
		const char *name = g->names[i];
		if (!name)
			continue;
		int wanted = 0;
		for (vx_net_t *n = vx.nets; n; n = n->next)
			wanted |= !strcmp(n->name, name); /* also busy and deleting ones */
		if (wanted)
			continue;
		struct gjob *d = calloc(1, sizeof(*d));
		if (!d)
			break;
		snprintf(d->path, sizeof(d->path), "%s/%s%s", g->dir, g->prefix, name);
		/* Keyed by the name: a PUT arriving now queues its create behind this. */
		if (na_ns_submit(name, NULL, w_gc_delete, gc_deleted, d) < 0)
			free(d);
	}
	for (size_t i = 0; i < g->n; i++)
		free(g->names[i]);
	free(g->names);
	free(g);
	round_job_done();
}

void vx_reconcile(na_agent_t *ag, na_done_fn done, void *ud)
{
	(void)ag;
	if (vx.reconciling > 0) {
		done(ud); /* the previous round is still out */
		return;
	}
	vx.reconciles++;
	vx.round_done = done;
	vx.round_ud = ud;
	vx.reconciling = 1; /* held until every job is queued */
	vx_etcd_tick();
	unsigned long long now = na_now_ms();
	for (vx_net_t *n = vx.nets; n; n = n->next) {
		if (n->busy || n->deleted)
			continue;
		vx_watch_ensure(n);
		/* Watched networks are repaired on notifications; the round
		 * only sweeps each one now and then, spread over vx.sweep_ms. */
		if (!n->next_sweep_ms)
			n->next_sweep_ms = now + (unsigned long long)(rand() % vx.sweep_ms);
		if (n->ready && vx_watch_complete(n) && now < n->next_sweep_ms)
			continue;
		vx.sweep_reconciles++;
		vx_reconcile_net(n, 1);
	}
	if (now < vx.next_gc_ms) {
		round_job_done();
		return;
	}
	vx.next_gc_ms = now + VX_GC_MS;
	struct gjob *g = calloc(1, sizeof(*g));
	if (g) {
		snprintf(g->dir, sizeof(g->dir), "%s", vx.netns_dir);
		snprintf(g->prefix, sizeof(g->prefix), "%s-", vx.ag->cfg.name);
		vx.reconciling++;
		if (na_ns_submit(NULL, NULL, w_gc_list, gc_listed, g) < 0) {
			vx.reconciling--;
			free(g);
		}
	}
	round_job_done();
}
