/* Local endpoints: a namespace attached to a network, whoever asks (the
 * API routes or another module through vxlan.h). One path for both:
 *
 *   validate (loop) → probe the namespace path (worker: O_PATH|O_NOFOLLOW,
 *   nsfs, identity) → refuse the agent's, the host's and the networks' own
 *   namespaces → reserve in the model (pending) → claim the address
 *   cluster-wide (etcd) → attach + state file (worker) → committed, reply.
 *
 * While pending, the endpoint is visible to conflict checks but not to
 * reconcile or to snapshots, so nothing unacknowledged reaches the kernel or
 * the state files through another job. */
#include "netagent/events.h"
#include "netagent/log.h"
#include "netagent/util.h"
#include "netagent/validate.h"
#include "vxlan/endpoints.h"

struct op {
	char net[64];
	vx_ep_t want;
	int mac_given;
	vx_net_t *n;
	vx_ep_t *ep;
	vx_ep_t old;
	int has_old, status;
	vx_ep_cb cb;
	void *ud;
};

static void finish(struct op *op, int status, const na_err_t *err)
{
	op->cb(op->ud, status, err, op->n, status > 0 ? op->ep : NULL);
	free(op);
}

static void fail(struct op *op, const na_err_t *err)
{
	finish(op, -1, err);
}

/* ---- identity checks ------------------------------------------------------ */

/* Why id may not be an endpoint's target, or NULL. The agent's own
 * namespace would bridge the host (underlay, management) into a tenant
 * network; a network's namespace would loop the network into itself. */
static const char *forbidden(const na_ns_id_t *id, char *buf, size_t len)
{
	if (na_ns_id_eq(id, &vx.self_nsid))
		return "is the agent's own network namespace";
	if (na_ns_id_eq(id, &vx.init_nsid))
		return "is the host's root network namespace";
	for (vx_net_t *n = vx.nets; n; n = n->next)
		if (na_ns_id_eq(id, &n->nsid)) {
			snprintf(buf, len, "is the namespace of network %s", n->name);
			return buf;
		}
	return NULL;
}

/* The (namespace, ifname) pair of another local endpoint, in any network:
 * compared by identity, so two paths to one namespace are one namespace. */
static const vx_ep_t *ifname_user(const vx_ep_t *want, const vx_ep_t *self)
{
	for (vx_net_t *n = vx.nets; n; n = n->next)
		for (vx_ep_t *e = n->eps; e; e = e->next)
			if (e != self && e->src == VX_LOCAL && !strcmp(e->ifname, want->ifname) &&
			    (na_ns_id_eq(&e->nsid, &want->nsid) || !strcmp(e->netns, want->netns)))
				return e;
	return NULL;
}

/* ---- completion ----------------------------------------------------------- */

static void applied(void *ud, int rc, const na_err_t *err)
{
	struct op *op = ud;
	vx_net_t *n = op->n;
	vx_ep_t *ep = op->ep;
	ep->pending = 0;
	if (rc < 0) {
		na_err_t e = *err, scratch = NA_ERR_INIT;
		vx_ipam_release(n->ipam, ep->ip);
		if (op->has_old) {
			vx_ep_set(n, ep, &op->old); /* roll back to what was acknowledged */
			vx_ipam_reserve(n->ipam, ep->ip, &scratch);
		} else {
			vx_ep_remove(n, ep);
			op->ep = NULL;
		}
		fail(op, &e);
		return;
	}
	vx_etcd_publish(n, ep);
	json_t *j = vx_ep_json(n, ep);
	na_events_publish("endpoint", op->status == 201 ? "created" : "updated", ep->name, j);
	json_decref(j);
	finish(op, op->status, NULL);
}

static void claimed(void *ud, int rc, const na_err_t *err)
{
	struct op *op = ud;
	if (rc < 0) {
		applied(op, rc, err);
		return;
	}
	if (vx_job_ep_apply(op->n, op->ep, op->has_old ? &op->old : NULL, vx_ep_state_json(op->ep),
			    applied, op) < 0) {
		na_err_t e = NA_ERR_INIT;
		vx_err_queue(&e, op->n);
		applied(op, -1, &e);
	}
}

static int same_ep(const vx_ep_t *a, const vx_ep_t *b)
{
	return a->ip == b->ip && a->plen == b->plen && !memcmp(a->mac, b->mac, 6) &&
	       !strcmp(a->ifname, b->ifname) && !strcmp(a->netns, b->netns) && a->vtep == b->vtep &&
	       na_ns_id_eq(&a->nsid, &b->nsid);
}

/* ---- the model change ----------------------------------------------------- */

static void commit(struct op *op)
{
	na_err_t err = NA_ERR_INIT;
	vx_net_t *n = op->n;
	vx_ep_t *want = &op->want;
	vx_ep_t *cur = vx_ep_find(n, want->name);
	char why[96];
	const char *bad = forbidden(&want->nsid, why, sizeof(why));

	if (bad) {
		na_err_set(&err, 422, "invalid_field", "netns", "netns %s %s", want->netns, bad);
		goto fail;
	}
	if (cur && (cur->deleting || cur->pending || vx_etcd_claiming(cur))) {
		na_err_set(&err, 409, "busy", NULL, "a change of endpoint %s is in flight; retry",
			   want->name);
		goto fail;
	}
	if (cur && cur->src != VX_LOCAL) {
		na_err_set(&err, 409, "conflict", NULL, "%s is already a remote endpoint of %s",
			   want->name, n->name);
		goto fail;
	}
	const vx_ep_t *u = ifname_user(want, cur);
	if (u) {
		na_err_set(&err, 409, "ifname_in_use", "ifname", "%s in %s is used by endpoint %s",
			   want->ifname, want->netns, u->name);
		goto fail;
	}
	if (!want->ip && cur)
		want->ip = cur->ip; /* re-PUT without ip keeps the allocated one */
	int picked = !want->ip;	    /* ours to choose: a lost claim may move it */
	if (want->ip) {
		vx_ep_t *o = vx_ep_find_ip(n, want->ip);
		if (o && o != cur) {
			char a[16];
			na_ipv4_fmt(want->ip, a, sizeof(a));
			na_err_set(&err, 409, "ip_in_use", "ip", "%s is used by endpoint %s", a,
				   o->name);
			goto fail;
		}
	}
	if (cur && !op->mac_given && want->ip == cur->ip)
		memcpy(want->mac, cur->mac, 6);
	if (cur && same_ep(cur, want)) {
		op->ep = cur;
		finish(op, 200, NULL);
		return;
	}
	if (cur) {
		op->old = *cur;
		op->has_old = 1;
		vx_ipam_release(n->ipam, cur->ip);
	}
	if (want->ip ? vx_ipam_reserve(n->ipam, want->ip, &err) < 0
		     : vx_ipam_alloc(n->ipam, &want->ip, &err) < 0) {
		if (cur)
			vx_ipam_reserve(n->ipam, cur->ip, &err);
		goto fail;
	}
	if (!op->mac_given && (!cur || cur->ip != want->ip))
		vx_mac_from_ip(want->ip, want->mac);
	vx_ep_t *m = vx_ep_find_mac(n, want->mac);
	if (m && m != cur) {
		vx_ipam_release(n->ipam, want->ip);
		if (cur)
			vx_ipam_reserve(n->ipam, cur->ip, &err);
		na_err_set(&err, 409, "mac_in_use", "mac", "MAC is used by endpoint %s", m->name);
		goto fail;
	}
	if (cur) {
		vx_ep_set(n, cur, want);
		op->ep = cur;
		op->status = 200;
	} else if (!(op->ep = vx_ep_add(n, want))) {
		vx_ipam_release(n->ipam, want->ip);
		na_err_errno(&err, ENOMEM, "endpoint");
		goto fail;
	} else {
		op->status = 201;
	}
	op->ep->pending = 1;
	/* With etcd the address must be ours cluster-wide before it is used. */
	int r = picked ? vx_etcd_claim_any(n, op->ep, claimed, op)
		       : vx_etcd_claim(n, op->ep, claimed, op);
	if (r < 0) {
		vx_err_queue(&err, n);
		applied(op, -1, &err);
	}
	return;
fail:
	fail(op, &err);
}

static void resume(void *ud)
{
	struct op *op = ud;
	na_err_t err = NA_ERR_INIT;
	/* The network may have gone or be busy while the probe ran. */
	op->n = vx_net_find(op->net);
	if (!op->n) {
		na_err_set(&err, 404, "not_found", NULL, "network %s not found", op->net);
		fail(op, &err);
		return;
	}
	int busy;
	if (vx_after_idle(op->n, resume, op, &busy) < 0) {
		vx_err_queue(&err, op->n);
		fail(op, &err);
		return;
	}
	if (!busy)
		commit(op);
}

static void probed(void *ud, int rc, const na_err_t *err, const na_ns_id_t *id)
{
	struct op *op = ud;
	if (rc < 0) {
		fail(op, err);
		return;
	}
	op->want.nsid = *id;
	resume(op);
}

int vx_ep_put_local(vx_net_t *n, const vx_ep_t *want, int mac_given, vx_ep_cb cb, void *ud,
		    na_err_t *err)
{
	struct op *op = calloc(1, sizeof(*op));
	if (!op)
		return na_err_errno(err, ENOMEM, "endpoint");
	snprintf(op->net, sizeof(op->net), "%s", n->name);
	op->want = *want;
	op->want.src = VX_LOCAL;
	op->want.plen = n->plen;
	op->want.vtep = vx.ag->underlay.addr;
	op->mac_given = mac_given;
	op->cb = cb;
	op->ud = ud;
	if (vx_job_probe_netns(n, want->netns, probed, op) < 0) {
		free(op);
		return vx_err_queue(err, n);
	}
	return 0;
}

/* ---- delete ----------------------------------------------------------- */

static void deleted(void *ud, int rc, const na_err_t *err)
{
	struct op *op = ud;
	vx_net_t *n = op->n;
	vx_ep_t *e = vx_ep_find(n, op->old.name);
	if (rc < 0) {
		if (e)
			e->deleting = 0; /* it stays: snapshots must see it again */
		fail(op, err);
		return;
	}
	if (e)
		vx_ep_remove(n, e);
	vx_etcd_unpublish(n, &op->old);
	na_events_publish("endpoint", "deleted", op->old.name, NULL);
	op->ep = &op->old;
	finish(op, 204, NULL);
}

int vx_ep_del_local(vx_net_t *n, vx_ep_t *e, vx_ep_cb cb, void *ud, na_err_t *err)
{
	if (e->deleting || e->pending || vx_etcd_claiming(e))
		return na_err_set(err, 409, "busy", NULL,
				  "a change of endpoint %s is in flight; retry", e->name);
	struct op *op = calloc(1, sizeof(*op));
	if (!op)
		return na_err_errno(err, ENOMEM, "delete");
	snprintf(op->net, sizeof(op->net), "%s", n->name);
	op->n = n;
	op->old = *e;
	op->cb = cb;
	op->ud = ud;
	e->deleting = 1;
	if (vx_job_ep_delete(n, e, deleted, op) < 0) {
		e->deleting = 0;
		free(op);
		return vx_err_queue(err, n);
	}
	return 0;
}
