/* Kernel work for the API, queued on the namespace workers with the
 * network's name as key: everything touching one network runs in order,
 * different networks in parallel. State files are written by the job right
 * after the kernel work succeeded and before the reply (acknowledged means
 * on disk), so the loop thread never waits on fsync. */
#include "netagent/log.h"
#include "netagent/nsworker.h"
#include "netagent/util.h"
#include "vxlan/snap.h"

struct job {
	struct vx_snap *snap;
	na_state_t *state;
	json_t *persist; /* written to kind/name when non-NULL */
	char kind[96], sname[64];
	int del_state; /* delete kind/name instead */
	struct vx_snap_ep ep, old;
	int has_ep, has_old;
	struct vx_k_remote *rem;
	size_t nrem;
	int del;
	vx_done_fn done;
	void *ud;
};

struct vx_snap *vx_snap_take(const vx_net_t *n)
{
	struct vx_snap *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	snprintf(s->name, sizeof(s->name), "%s", n->name);
	snprintf(s->netns, sizeof(s->netns), "%s", n->netns);
	s->vni = n->vni;
	s->mtu = n->mtu;
	s->underlay = vx.ag->underlay;
	size_t nr = n->npushed + n->nlearned;
	s->local = calloc(n->nlocal + 1, sizeof(*s->local));
	s->remote = calloc(nr + 1, sizeof(*s->remote));
	s->remote_name = calloc(nr + 1, sizeof(*s->remote_name));
	if (!s->local || !s->remote || !s->remote_name) {
		vx_snap_free(s);
		return NULL;
	}
	for (const vx_ep_t *e = n->eps; e; e = e->next) {
		if (e->deleting)
			continue;
		if (e->src == VX_LOCAL && s->nlocal < n->nlocal) {
			struct vx_snap_ep *l = &s->local[s->nlocal++];
			snprintf(l->name, sizeof(l->name), "%s", e->name);
			snprintf(l->netns, sizeof(l->netns), "%s", e->netns);
			snprintf(l->ifname, sizeof(l->ifname), "%s", e->ifname);
			l->ip = e->ip;
			l->plen = e->plen;
			memcpy(l->mac, e->mac, 6);
		} else if (e->src != VX_LOCAL && s->nremote < nr) {
			struct vx_k_remote *r = &s->remote[s->nremote];
			snprintf(s->remote_name[s->nremote], 64, "%s", e->name);
			r->ip = e->ip;
			memcpy(r->mac, e->mac, 6);
			r->vtep = e->vtep;
			s->nremote++;
		}
	}
	return s;
}

void vx_snap_free(struct vx_snap *s)
{
	if (!s)
		return;
	free(s->local);
	free(s->remote);
	free(s->remote_name);
	free(s);
}

void vx_snap_knet(const struct vx_snap *s, struct vx_k_net *kn)
{
	memset(kn, 0, sizeof(*kn));
	kn->netns_path = s->netns;
	kn->vni = s->vni;
	kn->mtu = s->mtu;
	kn->underlay = &s->underlay;
}

void vx_snap_kep(const struct vx_snap_ep *e, struct vx_k_ep *ke)
{
	memset(ke, 0, sizeof(*ke));
	ke->name = e->name;
	ke->netns_path = e->netns;
	ke->ifname = e->ifname;
	ke->ip = e->ip;
	ke->plen = e->plen;
	ke->mac = e->mac;
}

static void snap_ep_from(struct vx_snap_ep *d, const vx_ep_t *e)
{
	memset(d, 0, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "%s", e->name);
	snprintf(d->netns, sizeof(d->netns), "%s", e->netns);
	snprintf(d->ifname, sizeof(d->ifname), "%s", e->ifname);
	d->ip = e->ip;
	d->plen = e->plen;
	memcpy(d->mac, e->mac, 6);
}

static void job_free(struct job *j)
{
	vx_snap_free(j->snap);
	json_decref(j->persist);
	free(j->rem);
	free(j);
}

static void job_done(void *arg, int rc, const na_err_t *err)
{
	struct job *j = arg;
	j->done(j->ud, rc, err);
	job_free(j);
}

static int persist(struct job *j, na_err_t *err)
{
	if (j->del_state)
		return na_state_del(j->state, j->kind, j->sname, err);
	if (j->persist)
		return na_state_put(j->state, j->kind, j->sname, j->persist, err);
	return 0;
}

static struct job *job_new(vx_net_t *n, int want_snap, vx_done_fn done, void *ud)
{
	struct job *j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	if (want_snap && !(j->snap = vx_snap_take(n))) {
		free(j);
		return NULL;
	}
	j->state = vx.ag->state;
	j->done = done;
	j->ud = ud;
	return j;
}

static int submit(vx_net_t *n, struct job *j, na_ns_fn fn)
{
	if (na_ns_submit(n->name, NULL, fn, job_done, j) < 0) {
		job_free(j);
		return -1;
	}
	return 0;
}

/* ---- network ------------------------------------------------------------- */

static int w_net_apply(void *arg, na_err_t *err)
{
	struct job *j = arg;
	struct vx_k_net kn;
	vx_snap_knet(j->snap, &kn);
	int r = vx_k_network_create(&kn, err);
	if (r < 0)
		return -1;
	/* A recreated vxlan0 lost its FDB: put the remotes back. MTU changes
	 * reach the veths through attach, which repairs drift. */
	if (r > 0 && j->snap->nremote &&
	    vx_k_remote_set_many(j->snap->netns, j->snap->remote, j->snap->nremote, err) < 0)
		return -1;
	for (size_t i = 0; i < j->snap->nlocal; i++) {
		struct vx_k_ep ke;
		vx_snap_kep(&j->snap->local[i], &ke);
		if (vx_k_endpoint_attach(&kn, &ke, err) < 0) {
			na_err_prefix(err, "endpoint %s", ke.name);
			return -1;
		}
	}
	return persist(j, err);
}

int vx_job_net_apply(vx_net_t *n, json_t *state, vx_done_fn done, void *ud)
{
	struct job *j = job_new(n, 1, done, ud);
	if (!j) {
		json_decref(state);
		return -1;
	}
	j->persist = state;
	snprintf(j->kind, sizeof(j->kind), "networks");
	snprintf(j->sname, sizeof(j->sname), "%s", n->name);
	return submit(n, j, w_net_apply);
}

static int w_net_delete(void *arg, na_err_t *err)
{
	struct job *j = arg;
	for (size_t i = 0; i < j->snap->nlocal; i++)
		if (vx_k_endpoint_detach(j->snap->netns, j->snap->local[i].name, err) < 0)
			return -1;
	if (vx_k_network_delete(j->snap->netns, err) < 0)
		return -1;
	/* Endpoints and remotes first: a crash in between leaves a network
	 * file, and reconcile recreates the network the client saw undeleted. */
	char kind[96];
	snprintf(kind, sizeof(kind), "endpoints/%s", j->snap->name);
	if (na_state_del_kind(j->state, kind, err) < 0)
		return -1;
	if (na_state_del(j->state, "remotes", j->snap->name, err) < 0)
		return -1;
	return na_state_del(j->state, "networks", j->snap->name, err);
}

int vx_job_net_delete(vx_net_t *n, vx_done_fn done, void *ud)
{
	struct job *j = job_new(n, 1, done, ud);
	return j ? submit(n, j, w_net_delete) : -1;
}

/* ---- local endpoints ----------------------------------------------------- */

static int w_ep_apply(void *arg, na_err_t *err)
{
	struct job *j = arg;
	struct vx_k_net kn;
	struct vx_k_ep ke;
	vx_snap_knet(j->snap, &kn);
	/* A changed endpoint is re-plumbed whole: the old address, MAC or
	 * interface must not linger next to the new one. */
	if (j->has_old && vx_k_endpoint_detach(j->snap->netns, j->old.name, err) < 0)
		return -1;
	vx_snap_kep(&j->ep, &ke);
	if (vx_k_endpoint_attach(&kn, &ke, err) < 0)
		return -1;
	return persist(j, err);
}

int vx_job_ep_apply(vx_net_t *n, const vx_ep_t *ep, const vx_ep_t *old, json_t *state,
		    vx_done_fn done, void *ud)
{
	struct job *j = job_new(n, 1, done, ud);
	if (!j) {
		json_decref(state);
		return -1;
	}
	snap_ep_from(&j->ep, ep);
	if (old) {
		snap_ep_from(&j->old, old);
		j->has_old = 1;
	}
	j->persist = state;
	vx_ep_kind(n, j->kind, sizeof(j->kind));
	snprintf(j->sname, sizeof(j->sname), "%s", ep->name);
	return submit(n, j, w_ep_apply);
}

static int w_ep_delete(void *arg, na_err_t *err)
{
	struct job *j = arg;
	if (vx_k_endpoint_detach(j->snap->netns, j->ep.name, err) < 0)
		return -1;
	return persist(j, err);
}

int vx_job_ep_delete(vx_net_t *n, const vx_ep_t *ep, vx_done_fn done, void *ud)
{
	struct job *j = job_new(n, 1, done, ud);
	if (!j)
		return -1;
	snap_ep_from(&j->ep, ep);
	j->del_state = 1;
	vx_ep_kind(n, j->kind, sizeof(j->kind));
	snprintf(j->sname, sizeof(j->sname), "%s", ep->name);
	return submit(n, j, w_ep_delete);
}

/* ---- remote endpoints ---------------------------------------------------- */

static int w_remotes(void *arg, na_err_t *err)
{
	struct job *j = arg;
	int r = j->del ? vx_k_remote_del_many(j->snap->netns, j->rem, j->nrem, err)
		       : vx_k_remote_set_many(j->snap->netns, j->rem, j->nrem, err);
	if (r < 0)
		return -1;
	return persist(j, err);
}

int vx_job_remotes(vx_net_t *n, const vx_ep_t *const *eps, size_t neps, int del, json_t *state,
		   vx_done_fn done, void *ud)
{
	struct job *j = job_new(n, 1, done, ud);
	if (!j || !(j->rem = calloc(neps + 1, sizeof(*j->rem)))) {
		if (j)
			job_free(j);
		json_decref(state);
		return -1;
	}
	for (size_t i = 0; i < neps; i++) {
		j->rem[i].ip = eps[i]->ip;
		memcpy(j->rem[i].mac, eps[i]->mac, 6);
		j->rem[i].vtep = eps[i]->vtep;
	}
	j->nrem = neps;
	j->del = del;
	j->persist = state;
	snprintf(j->kind, sizeof(j->kind), "remotes");
	snprintf(j->sname, sizeof(j->sname), "%s", n->name);
	return submit(n, j, w_remotes);
}

static int w_noop(void *arg, na_err_t *err)
{
	(void)arg, (void)err;
	return 0;
}

int vx_job_barrier(vx_net_t *n, vx_done_fn done, void *ud)
{
	struct job *j = job_new(n, 0, done, ud);
	return j ? submit(n, j, w_noop) : -1;
}
