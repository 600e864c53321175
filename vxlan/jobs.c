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
	char kind[96];
	json_t *persist; /* one object written to kind/sname when non-NULL */
	char sname[64];
	int del_state; /* delete kind/sname instead */
	/* a batch of one kind: written (objs) or deleted (objs NULL) */
	char (*names)[64];
	json_t **objs;
	size_t nnames;
	struct vx_snap_ep ep, old;
	int has_old;
	struct vx_k_remote *rem;
	size_t nrem;
	int del;
	na_ns_id_t netns_id; /* the network's namespace, seen by the job */
	vx_done_fn done;
	void *ud;
};

static struct vx_snap *snap_head(const vx_net_t *n)
{
	struct vx_snap *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	snprintf(s->name, sizeof(s->name), "%s", n->name);
	snprintf(s->netns, sizeof(s->netns), "%s", n->netns);
	s->vni = n->vni;
	s->mtu = n->mtu;
	s->underlay = vx.ag->underlay;
	return s;
}

struct vx_snap *vx_snap_take_net(const vx_net_t *n)
{
	return snap_head(n);
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
	d->nsid = e->nsid;
}

static void remote_from(struct vx_k_remote *r, const vx_ep_t *e)
{
	r->ip = e->ip;
	memcpy(r->mac, e->mac, 6);
	r->vtep = e->vtep;
}

struct vx_snap *vx_snap_take(const vx_net_t *n)
{
	struct vx_snap *s = snap_head(n);
	if (!s)
		return NULL;
	size_t nr = n->npushed + n->nlearned;
	s->local = calloc(n->nlocal + 1, sizeof(*s->local));
	s->remote = calloc(nr + 1, sizeof(*s->remote));
	s->remote_name = calloc(nr + 1, sizeof(*s->remote_name));
	s->keep_local = calloc(n->nlocal + 1, sizeof(*s->keep_local));
	s->keep_remote = calloc(nr + 1, sizeof(*s->keep_remote));
	if (!s->local || !s->remote || !s->remote_name || !s->keep_local || !s->keep_remote) {
		vx_snap_free(s);
		return NULL;
	}
	for (const vx_ep_t *e = n->eps; e; e = e->next) {
		int inflight = e->deleting || e->pending;
		if (e->src == VX_LOCAL) {
			if (inflight && s->nkeep_local < n->nlocal)
				snprintf(s->keep_local[s->nkeep_local++], 64, "%s", e->name);
			else if (!inflight && s->nlocal < n->nlocal)
				snap_ep_from(&s->local[s->nlocal++], e);
		} else if (inflight && s->nkeep_remote < nr) {
			remote_from(&s->keep_remote[s->nkeep_remote++], e);
		} else if (!inflight && s->nremote < nr) {
			snprintf(s->remote_name[s->nremote], 64, "%s", e->name);
			remote_from(&s->remote[s->nremote++], e);
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
	free(s->keep_local);
	free(s->keep_remote);
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
	ke->nsid = e->nsid.ino ? &e->nsid : NULL;
}

static void job_free(struct job *j)
{
	vx_snap_free(j->snap);
	json_decref(j->persist);
	for (size_t i = 0; j->objs && i < j->nnames; i++)
		json_decref(j->objs[i]);
	free(j->objs);
	free(j->names);
	free(j->rem);
	free(j);
}

static void job_done(void *arg, int rc, const na_err_t *err)
{
	struct job *j = arg;
	vx_net_t *n = j->snap ? vx_net_find(j->snap->name) : NULL;
	if (n && j->netns_id.ino)
		n->nsid = j->netns_id;
	if (n && n->own_jobs > 0) {
		n->own_jobs--;
		n->last_own_ms = na_now_ms();
	}
	j->done(j->ud, rc, err);
	job_free(j);
}

static int persist(struct job *j, na_err_t *err)
{
	if (j->del_state)
		return na_state_del(j->state, j->kind, j->sname, err);
	if (j->persist)
		return na_state_put(j->state, j->kind, j->sname, j->persist, err);
	if (!j->nnames)
		return 0;
	/* A batch: one directory sync for all of them (na_state_put_many). */
	const char **names = calloc(j->nnames, sizeof(*names));
	if (!names)
		return na_err_errno(err, ENOMEM, "state batch");
	for (size_t i = 0; i < j->nnames; i++)
		names[i] = j->names[i];
	int r = j->objs ? na_state_put_many(j->state, j->kind, names, j->objs, j->nnames, err)
			: na_state_del_many(j->state, j->kind, names, j->nnames, err);
	free(names);
	if (r < 0)
		return -1;
	return 0;
}

/* full: every committed endpoint (network create/repair); else the network
 * alone, so that a job about one endpoint costs O(1). */
static struct job *job_new(vx_net_t *n, int full, vx_done_fn done, void *ud)
{
	struct job *j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	if (!(j->snap = full ? vx_snap_take(n) : vx_snap_take_net(n))) {
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
	n->own_jobs++; /* its netlink notifications are ours, not drift */
	return 0;
}

/* The network namespace's identity, so endpoint targets can be checked
 * against it (an endpoint must never bridge a network into itself). */
static void learn_netns_id(struct job *j)
{
	na_err_t e = NA_ERR_INIT;
	int fd = na_netns_open(j->snap->netns, &j->netns_id, &e);
	if (fd >= 0)
		close(fd);
}

/* ---- network ------------------------------------------------------------- */

static int w_net_apply(void *arg, na_err_t *err)
{
	struct job *j = arg;
	struct vx_k_net kn;
	vx_snap_knet(j->snap, &kn);
	int changed;
	if (vx_k_network_create(&kn, &changed, err) < 0)
		return -1;
	learn_netns_id(j);
	/* A recreated vxlan0 lost its FDB: put the remotes back. MTU changes
	 * reach the veths through attach, which repairs drift. */
	if (changed && j->snap->nremote &&
	    vx_k_remote_set_many(j->snap->netns, j->snap->remote, j->snap->nremote, err) < 0)
		return -1;
	for (size_t i = 0; i < j->snap->nlocal; i++) {
		struct vx_k_ep ke;
		vx_snap_kep(&j->snap->local[i], &ke);
		if (vx_k_endpoint_attach(&kn, &ke, NULL, err) < 0) {
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
		if (vx_k_endpoint_detach(j->snap->netns, j->snap->local[i].name, NULL, err) < 0)
			return -1;
	for (size_t i = 0; i < j->snap->nkeep_local; i++)
		if (vx_k_endpoint_detach(j->snap->netns, j->snap->keep_local[i], NULL, err) < 0)
			return -1;
	if (vx_k_network_delete(j->snap->netns, NULL, err) < 0)
		return -1;
	/* Endpoints and remotes first: a crash in between leaves a network
	 * file, and reconcile recreates the network the client saw undeleted. */
	char kind[96];
	snprintf(kind, sizeof(kind), "endpoints/%s", j->snap->name);
	if (na_state_del_kind(j->state, kind, err) < 0)
		return -1;
	snprintf(kind, sizeof(kind), "remotes/%s", j->snap->name);
	if (na_state_del_kind(j->state, kind, err) < 0 ||
	    na_state_del(j->state, "remotes", j->snap->name, err) < 0) /* pre-1.1 layout */
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
	if (j->has_old && vx_k_endpoint_detach(j->snap->netns, j->old.name, NULL, err) < 0)
		return -1;
	vx_snap_kep(&j->ep, &ke);
	if (vx_k_endpoint_attach(&kn, &ke, NULL, err) < 0)
		return -1;
	return persist(j, err);
}

int vx_job_ep_apply(vx_net_t *n, const vx_ep_t *ep, const vx_ep_t *old, json_t *state,
		    vx_done_fn done, void *ud)
{
	struct job *j = job_new(n, 0, done, ud);
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
	if (vx_k_endpoint_detach(j->snap->netns, j->ep.name, NULL, err) < 0)
		return -1;
	return persist(j, err);
}

int vx_job_ep_delete(vx_net_t *n, const vx_ep_t *ep, vx_done_fn done, void *ud)
{
	struct job *j = job_new(n, 0, done, ud);
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

int vx_job_remotes(vx_net_t *n, const vx_ep_t *const *eps, size_t neps, int del, int persist_them,
		   vx_done_fn done, void *ud)
{
	struct job *j = job_new(n, 0, done, ud);
	if (!j || !(j->rem = calloc(neps + 1, sizeof(*j->rem))) ||
	    (persist_them && !(j->names = calloc(neps + 1, sizeof(*j->names)))) ||
	    (persist_them && !del && !(j->objs = calloc(neps + 1, sizeof(*j->objs))))) {
		if (j)
			job_free(j);
		return -1;
	}
	for (size_t i = 0; i < neps; i++) {
		remote_from(&j->rem[i], eps[i]);
		if (!persist_them)
			continue;
		snprintf(j->names[i], 64, "%s", eps[i]->name);
		if (j->objs && !(j->objs[i] = vx_remote_state_json(eps[i]))) {
			j->nnames = i;
			job_free(j);
			return -1;
		}
	}
	j->nrem = neps;
	j->nnames = persist_them ? neps : 0;
	j->del = del;
	vx_remote_kind(n, j->kind, sizeof(j->kind));
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

/* ---- probing a client's namespace path ----------------------------------- */

struct probe {
	char path[256];
	na_ns_id_t id;
	vx_probe_fn done;
	void *ud;
};

static int w_probe(void *arg, na_err_t *err)
{
	struct probe *p = arg;
	int fd = na_netns_open(p->path, &p->id, err);
	if (fd < 0) {
		/* The API says which field; a missing file is an invalid value
		 * here, not a missing resource. */
		err->status = 422;
		snprintf(err->code, sizeof(err->code), "invalid_field");
		snprintf(err->field, sizeof(err->field), "netns");
		return -1;
	}
	close(fd);
	return 0;
}

static void probe_done(void *arg, int rc, const na_err_t *err)
{
	struct probe *p = arg;
	p->done(p->ud, rc, err, &p->id);
	free(p);
}

int vx_job_probe_netns(vx_net_t *n, const char *path, vx_probe_fn done, void *ud)
{
	struct probe *p = calloc(1, sizeof(*p));
	if (!p)
		return -1;
	snprintf(p->path, sizeof(p->path), "%s", path);
	p->done = done;
	p->ud = ud;
	/* Keyed by the network: PUTs of one network keep their order. */
	if (na_ns_submit(n->name, NULL, w_probe, probe_done, p) < 0) {
		free(p);
		return -1;
	}
	return 0;
}
