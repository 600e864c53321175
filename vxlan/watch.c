/* Event-driven drift detection. Polling every namespace (a full netlink dump
 * of links, FDB and neighbours every 2 s) cost 15% of a core at 1,000 idle
 * networks. Instead each network's namespace, and each local endpoint's
 * target namespace, has a netlink socket subscribed to the notifications
 * that matter (links, neighbours and FDB, IPv4 addresses); a notification
 * marks the network dirty, and a reconcile of that network follows within
 * ~0.2 s. The periodic round only sweeps each network every vx.sweep_ms as
 * a backstop (and networks whose watch could not be opened, every round).
 *
 * Our own changes notify us too: a notification waits until the network's
 * own jobs are done and quiet for QUIET_MS, then costs one (idle) diff; a
 * stream of 5,000 PUTs is diffed once, after it. Real drift in the middle of
 * such a stream is repaired right after it. The sockets
 * are opened inside the namespaces on a worker and then only read,
 * non-blocking, on the loop thread. A socket holds its namespace alive, so
 * every watch is closed when its network or endpoint goes. */
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include "netagent/log.h"
#include "netagent/nl.h"
#include "netagent/nsworker.h"
#include "netagent/util.h"
#include "vxlan/vx_int.h"

#define DIRTY_TICK_MS 50
#define DIRTY_GAP_MS  200
#define QUIET_MS      300 /* after our own last write to the network */

struct vx_watch {
	uv_poll_t poll;
	struct mnl_socket *sock;
	char net[64], ep[64]; /* ep "" for the network's own namespace */
	char ifname[16];      /* target side: the endpoint's interface */
};

static void closed(uv_handle_t *h)
{
	struct vx_watch *w = h->data;
	mnl_socket_close(w->sock);
	free(w);
}

static void watch_close(struct vx_watch *w)
{
	if (!w)
		return;
	uv_poll_stop(&w->poll);
	uv_close((uv_handle_t *)&w->poll, closed);
}

/* A target namespace carries more than our endpoint (a gateway's uplink
 * renews its VIP every few hundred ms): only its own interface counts. */
static int relevant(const struct vx_watch *w, const struct nlmsghdr *nlh)
{
	if (!w->ep[0]) {
		/* The network's namespace: links, vxlan0's and the bridge's FDB and
		 * vxlan0's IPv4 neighbours. IPv6 neighbour churn (link-local
		 * discovery on br0) is none of ours. */
		if (nlh->nlmsg_type == RTM_NEWNEIGH || nlh->nlmsg_type == RTM_DELNEIGH) {
			const struct ndmsg *nd = mnl_nlmsg_get_payload(nlh);
			return nd->ndm_family == AF_INET || nd->ndm_family == AF_BRIDGE;
		}
		return 1;
	}
	const struct nlattr *tb[IFLA_MAX + 1 > IFA_MAX + 1 ? IFLA_MAX + 1 : IFA_MAX + 1];
	const struct nlattr *a = NULL;
	if (nlh->nlmsg_type == RTM_NEWLINK || nlh->nlmsg_type == RTM_DELLINK) {
		na_nl_parse(nlh, sizeof(struct ifinfomsg), tb, IFLA_MAX);
		a = tb[IFLA_IFNAME];
	} else if (nlh->nlmsg_type == RTM_NEWADDR || nlh->nlmsg_type == RTM_DELADDR) {
		na_nl_parse(nlh, sizeof(struct ifaddrmsg), tb, IFA_MAX);
		a = tb[IFA_LABEL];
	}
	return !a || mnl_attr_validate(a, MNL_TYPE_STRING) < 0 ||
	       !strcmp(mnl_attr_get_str(a), w->ifname);
}

static void on_readable(uv_poll_t *p, int status, int events)
{
	(void)events;
	struct vx_watch *w = p->data;
	char buf[16384] __attribute__((aligned(NLMSG_ALIGNTO)));
	int dirty = status < 0;
	for (int i = 0; i < 64; i++) { /* a burst is read in slices */
		ssize_t got = recv(mnl_socket_get_fd(w->sock), buf, sizeof(buf), MSG_DONTWAIT);
		if (got < 0) {
			/* ENOBUFS: we missed notifications, so assume the worst. */
			dirty |= errno == ENOBUFS;
			break;
		}
		int len = (int)got;
		for (struct nlmsghdr *nlh = (struct nlmsghdr *)buf; mnl_nlmsg_ok(nlh, len);
		     nlh = mnl_nlmsg_next(nlh, &len))
			dirty |= relevant(w, nlh);
	}
	if (!dirty)
		return;
	vx.watch_events++;
	vx_net_t *net = vx_net_find(w->net);
	if (net)
		vx_net_dirty(net);
}

/* ---- opening, on a worker --------------------------------------------- */

struct wopen {
	char net[64], ep[64], ifname[16];
	char path[400];
	na_ns_id_t expect; /* target side: the pinned namespace */
	struct mnl_socket *sock;
};

static int w_open(void *arg, na_err_t *err)
{
	struct wopen *o = arg;
	na_ns_id_t id;
	cleanup_close int fd = na_netns_open(o->path, &id, err);
	if (fd < 0)
		return -1;
	if (o->expect.ino && !na_ns_id_eq(&id, &o->expect))
		return na_err_set(err, 409, "netns_changed", "netns", "%s changed", o->path);
	unsigned groups = o->ep[0] ? RTMGRP_LINK | RTMGRP_IPV4_IFADDR : RTMGRP_LINK | RTMGRP_NEIGH;
	return na_nl_monitor_open(fd, groups, &o->sock, err);
}

static void opened(void *arg, int rc, const na_err_t *err)
{
	struct wopen *o = arg;
	vx_net_t *n = vx_net_find(o->net);
	vx_ep_t *e = n && o->ep[0] ? vx_ep_find(n, o->ep) : NULL;
	struct vx_watch **slot = !n ? NULL : o->ep[0] ? (e ? &e->watch : NULL) : &n->watch;
	int *opening = !n ? NULL : o->ep[0] ? (e ? &e->watch_opening : NULL) : &n->watch_opening;
	if (opening)
		*opening = 0;
	if (rc < 0 || !slot || *slot) {
		if (rc < 0)
			na_debug("cannot watch namespace, reconcile polls it",
				 "network=%s endpoint=%s "
				 "error=\"%s\"",
				 o->net, o->ep[0] ? o->ep : "-", err->msg);
		if (o->sock)
			mnl_socket_close(o->sock);
		free(o);
		return;
	}
	struct vx_watch *w = calloc(1, sizeof(*w));
	if (!w || uv_poll_init(vx.ag->loop, &w->poll, mnl_socket_get_fd(o->sock)) < 0) {
		free(w);
		mnl_socket_close(o->sock);
		free(o);
		return;
	}
	w->poll.data = w;
	w->sock = o->sock;
	memcpy(w->net, o->net, sizeof(w->net));
	memcpy(w->ep, o->ep, sizeof(w->ep));
	memcpy(w->ifname, o->ifname, sizeof(w->ifname));
	uv_poll_start(&w->poll, UV_READABLE, on_readable);
	*slot = w;
	free(o);
	/* Anything that changed before the socket existed was not seen. */
	vx_net_dirty(n);
}

static void open_one(vx_net_t *n, const vx_ep_t *e, int *opening)
{
	struct wopen *o = calloc(1, sizeof(*o));
	if (!o)
		return;
	snprintf(o->net, sizeof(o->net), "%s", n->name);
	if (e) {
		snprintf(o->ep, sizeof(o->ep), "%s", e->name);
		snprintf(o->ifname, sizeof(o->ifname), "%s", e->ifname);
		snprintf(o->path, sizeof(o->path), "%s", e->netns);
		o->expect = e->nsid;
	} else {
		snprintf(o->path, sizeof(o->path), "%s", n->netns);
	}
	*opening = 1;
	if (na_ns_submit(n->name, NULL, w_open, opened, o) < 0) {
		*opening = 0;
		free(o);
	}
}

void vx_watch_ensure(vx_net_t *n)
{
	if (n->deleted || !n->ready)
		return;
	if (!n->watch && !n->watch_opening)
		open_one(n, NULL, &n->watch_opening);
	for (vx_ep_t *e = n->eps; e; e = e->next)
		if (e->src == VX_LOCAL && !e->pending && !e->deleting && !e->watch &&
		    !e->watch_opening)
			open_one(n, e, &e->watch_opening);
}

int vx_watch_complete(const vx_net_t *n)
{
	if (!n->watch)
		return 0;
	for (const vx_ep_t *e = n->eps; e; e = e->next)
		if (e->src == VX_LOCAL && !e->watch)
			return 0;
	return 1;
}

void vx_watch_ep_gone(vx_ep_t *e)
{
	watch_close(e->watch);
	e->watch = NULL;
}

void vx_watch_net_gone(vx_net_t *n)
{
	watch_close(n->watch);
	n->watch = NULL;
	for (vx_ep_t *e = n->eps; e; e = e->next)
		vx_watch_ep_gone(e);
}

/* ---- dirty networks ------------------------------------------------------ */

static void on_dirty_tick(void *ud)
{
	(void)ud;
	unsigned long long now = na_now_ms();
	int left = 0;
	for (vx_net_t *n = vx.nets; n; n = n->next) {
		if (!n->dirty)
			continue;
		if (n->busy || n->rq_queued || now - n->last_event_rq_ms < DIRTY_GAP_MS ||
		    n->own_jobs || now - n->last_own_ms < QUIET_MS) {
			left = 1; /* after the job in flight, or the gap */
			continue;
		}
		n->dirty = 0;
		n->last_event_rq_ms = now;
		vx.event_reconciles++;
		vx_reconcile_net(n, 0);
	}
	if (!left)
		na_timer_stop(vx.dirty_timer);
}

void vx_net_dirty(vx_net_t *n)
{
	n->dirty = 1;
	if (!vx.dirty_timer && !(vx.dirty_timer = na_timer_new(vx.ag, on_dirty_tick, NULL)))
		return; /* the sweep catches it */
	if (!na_timer_active(vx.dirty_timer))
		na_timer_start(vx.dirty_timer, DIRTY_TICK_MS, DIRTY_TICK_MS);
}

void vx_watch_fini(void)
{
	for (vx_net_t *n = vx.nets; n; n = n->next)
		vx_watch_net_gone(n);
	na_timer_free(vx.dirty_timer);
	vx.dirty_timer = NULL;
}
