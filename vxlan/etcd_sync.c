/* Cross-host coordination through etcd (SPEC §3), loop-thread side: the
 * public hooks, address claims, publishing, and the queue the etcd threads
 * (etcd_sync2.c) answer through, drained by a uv_async_t so that every vx_*
 * structure is only ever touched on the loop thread. Learning lives in
 * etcd_learn.c.
 *
 * Learned endpoints are not persisted: at start the first full range is
 * awaited (a few seconds at most) before the first reconcile, so a restarted
 * agent keeps the FDB entries it programmed before instead of removing and
 * re-adding them. */
#include <pthread.h>
#include <time.h>

#include "netagent/events.h"
#include "netagent/log.h"
#include "netagent/util.h"
#include "netagent/validate.h"
#include "vxlan/etcd_sync.h"

#define RESYNC_MS     30000 /* full range as a backstop to the watch */
#define START_WAIT_MS 3000  /* for the first range, before the first reconcile */
#define LOST_HOLD_MS  10000 /* lost addresses stay out of local allocation */

struct pub {
	struct pub *next;
	struct vx_erec r;
};

/* One claim in flight; the net/ep names guard against the network or the
 * endpoint going away meanwhile. */
struct claim {
	struct claim *next;
	char net[64], epname[64];
	vx_net_t *n;
	vx_ep_t *ep;
	vx_done_fn done;
	void *ud;
	int may_move, tries;
};

/* An address a claim of ours lost: kept reserved in the local IPAM for a
 * while, so that the next allocations (of any request) skip it until the
 * winner is learned (its learned endpoint then shares the reservation). */
struct lost {
	struct lost *next;
	char net[64];
	uint32_t ip;
	unsigned long long until;
};

static struct {
	int on;
	char us[64];
	uv_async_t async;
	uv_timer_t timer;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct vx_eres *head, **tail;
	int first_done;
	struct pub *pubs; /* what we published (or will once etcd is back) */
	struct lost *lost;
	struct claim *claims; /* in flight */
	int learned_once;     /* loop thread: a full learned set was applied */
} S = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

/* ---- results queue (any thread → loop) ----------------------------------- */

void vx_eres_free(struct vx_eres *r)
{
	if (!r)
		return;
	free(r->claim);
	free(r->recs);
	free(r);
}

void vx_etcd_post(struct vx_eres *r)
{
	r->next = NULL;
	pthread_mutex_lock(&S.lock);
	*S.tail = r;
	S.tail = &r->next;
	if (r->type == VX_ERES_RESYNC || r->type == VX_ERES_FIRST) {
		S.first_done = 1;
		pthread_cond_broadcast(&S.cond);
	}
	pthread_mutex_unlock(&S.lock);
	uv_async_send(&S.async);
}

int vx_etcd_learned_once(void)
{
	return !S.on || S.learned_once;
}

/* ---- claims -------------------------------------------------------------- */

/* Its address may still move (a claim in flight): a clash is not news. */
int vx_etcd_claiming(const vx_ep_t *e)
{
	for (struct claim *c = S.claims; c; c = c->next)
		if (c->ep == e)
			return 1;
	return 0;
}

static void claim_finish(struct claim *c, int rc, const na_err_t *err)
{
	for (struct claim **p = &S.claims; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	c->done(c->ud, rc, rc < 0 ? err : NULL);
	/* Learned endpoints that clashed with the address are due now. */
	vx_net_t *n = vx_net_find(c->net);
	if (n)
		vx_elearn_apply(n, 0);
	free(c);
}

static void claim_push(struct claim *c)
{
	struct vx_eop *op = calloc(1, sizeof(*op));
	if (!op) {
		na_err_t err = NA_ERR_INIT;
		na_err_errno(&err, ENOMEM, "claim");
		claim_finish(c, -1, &err);
		return;
	}
	op->type = VX_EOP_CLAIM;
	snprintf(op->rec.net, sizeof(op->rec.net), "%s", c->net);
	snprintf(op->rec.ep, sizeof(op->rec.ep), "%s", c->epname);
	snprintf(op->rec.host, sizeof(op->rec.host), "%s", S.us);
	op->rec.ip = c->ep->ip;
	op->claim = c;
	vx_ethreads_push(op);
}

/* Ends the reservations of lost addresses that are due (all: every one). */
static void lost_sweep(int all)
{
	unsigned long long now = na_now_ms();
	for (struct lost **p = &S.lost, *l; (l = *p);) {
		if (!all && l->until > now) {
			p = &l->next;
			continue;
		}
		vx_net_t *n = vx_net_find(l->net);
		if (n && !vx_ep_find_ip(n, l->ip))
			vx_ipam_release(n->ipam, l->ip);
		*p = l->next;
		free(l);
	}
}

/* After a lost claim: a random free address. Every host allocates the
 * lowest free one first, so under concurrent creation the lowest are exactly
 * what the others are claiming too; random picks spread the retries. */
static int pick_free(vx_net_t *n, uint32_t *out, na_err_t *err)
{
	static uint64_t x;
	uint32_t size = n->plen >= 32 ? 1 : 1u << (32 - n->plen);
	if (!x)
		x = na_now_ns() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ull;
	for (int i = 0; i < 32; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
		uint32_t cand = n->subnet | (uint32_t)(x % size);
		na_err_t e = NA_ERR_INIT;
		if (vx_ipam_reserve(n->ipam, cand, &e) == 0) {
			*out = cand;
			return 0;
		}
	}
	return vx_ipam_alloc(n->ipam, out, err); /* nearly full: scan */
}

/* A claim of an address we picked ourselves lost: keep that one out of the
 * local IPAM for a while (struct lost) and try the next free one. */
static void claim_result(struct claim *c, int rc, const na_err_t *err)
{
	vx_net_t *n = c->n;
	if (rc == 0 || !c->may_move || err->status != 409 || strcmp(err->code, "ip_in_use") ||
	    c->tries + 1 >= VX_ETCD_MAX_TRIES || vx_net_find(c->net) != n ||
	    vx_ep_find(n, c->epname) != c->ep || c->ep->src != VX_LOCAL) {
		claim_finish(c, rc, err);
		return;
	}
	vx_ep_t *ep = c->ep;
	uint32_t next;
	uint8_t mac[6];
	na_err_t e = NA_ERR_INIT;
	if (pick_free(n, &next, &e) < 0) {
		na_err_prefix(&e, "every free address tried is claimed on other hosts");
		claim_finish(c, -1, &e);
		return;
	}
	vx_mac_from_ip(ep->ip, mac);
	if (!memcmp(ep->mac, mac, 6)) { /* derived from the address: follows it */
		vx_mac_from_ip(next, mac);
		const vx_ep_t *o = vx_ep_find_mac(n, mac);
		if (o && o != ep) {
			vx_ipam_release(n->ipam, next);
			na_err_set(&e, 409, "mac_in_use", "mac", "MAC is used by endpoint %s",
				   o->name);
			claim_finish(c, -1, &e);
			return;
		}
		vx_ep_t moved = *ep;
		memcpy(moved.mac, mac, 6);
		vx_ep_set(n, ep, &moved); /* through the model: its indexes follow */
	}
	char a[16], b[16];
	na_ipv4_fmt(ep->ip, a, sizeof(a));
	na_ipv4_fmt(next, b, sizeof(b));
	na_info("address claimed elsewhere, trying the next one",
		"network=%s endpoint=%s ip=%s next=%s error=\"%s\"", n->name, ep->name, a, b,
		err->msg);
	struct lost *l = calloc(1, sizeof(*l));
	if (l) {
		snprintf(l->net, sizeof(l->net), "%s", n->name);
		l->ip = ep->ip; /* the endpoint's reservation becomes the hold's */
		l->until = na_now_ms() + LOST_HOLD_MS;
		l->next = S.lost;
		S.lost = l;
	} else {
		vx_ipam_release(n->ipam, ep->ip);
	}
	vx_ep_t moved = *ep;
	moved.ip = next;
	vx_ep_set(n, ep, &moved);
	c->tries++;
	claim_push(c);
	vx_elearn_apply(n, 0); /* the winner may be waiting for the address */
}

static int claim_start(vx_net_t *n, vx_ep_t *ep, int may_move, vx_done_fn done, void *ud)
{
	if (!S.on) {
		done(ud, 0, NULL);
		return 0;
	}
	struct claim *c = calloc(1, sizeof(*c));
	if (!c)
		return -1;
	snprintf(c->net, sizeof(c->net), "%s", n->name);
	snprintf(c->epname, sizeof(c->epname), "%s", ep->name);
	c->n = n;
	c->ep = ep;
	c->done = done;
	c->ud = ud;
	c->may_move = may_move;
	c->next = S.claims;
	S.claims = c;
	claim_push(c);
	return 0;
}

int vx_etcd_claim(const vx_net_t *n, const vx_ep_t *ep, vx_done_fn done, void *ud)
{
	/* Never moved: the pointers are only compared and read. */
	return claim_start((vx_net_t *)n, (vx_ep_t *)ep, 0, done, ud);
}

int vx_etcd_claim_any(vx_net_t *n, vx_ep_t *ep, vx_done_fn done, void *ud)
{
	return claim_start(n, ep, 1, done, ud);
}

/* ---- publishing ---------------------------------------------------------- */

static void rec_of(const vx_net_t *n, const vx_ep_t *e, struct vx_erec *r)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->net, sizeof(r->net), "%s", n->name);
	snprintf(r->host, sizeof(r->host), "%s", S.us);
	snprintf(r->ep, sizeof(r->ep), "%s", e->name);
	r->vni = n->vni;
	r->ip = e->ip;
	r->plen = e->plen;
	memcpy(r->mac, e->mac, 6);
	r->vtep = e->vtep ? e->vtep : vx.ag->underlay.addr;
}

static struct pub **pub_slot(const char *net, const char *ep)
{
	struct pub **p = &S.pubs;
	for (; *p; p = &(*p)->next)
		if (!strcmp((*p)->r.net, net) && !strcmp((*p)->r.ep, ep))
			break;
	return p;
}

static void push_rec(enum vx_eop_type type, const struct vx_erec *r)
{
	struct vx_eop *op = calloc(1, sizeof(*op));
	if (!op)
		return; /* the periodic full sync repairs it */
	op->type = type;
	op->rec = *r;
	vx_ethreads_push(op);
}

static void pub_remember(const struct vx_erec *r)
{
	struct pub **p = pub_slot(r->net, r->ep);
	if (!*p && !(*p = calloc(1, sizeof(**p))))
		return;
	(*p)->r = *r;
}

void vx_etcd_publish(const vx_net_t *n, const vx_ep_t *ep)
{
	if (!S.on)
		return;
	struct vx_erec r;
	rec_of(n, ep, &r);
	pub_remember(&r);
	push_rec(VX_EOP_PUBLISH, &r);
}

void vx_etcd_unpublish(const vx_net_t *n, const vx_ep_t *ep)
{
	if (!S.on)
		return;
	struct vx_erec r;
	rec_of(n, ep, &r);
	struct pub **p = pub_slot(r.net, r.ep), *x = *p;
	if (x) {
		*p = x->next;
		free(x);
	}
	push_rec(VX_EOP_UNPUBLISH, &r);
}

/* The ops thread (re)connected: everything we publish, and every local
 * endpoint, including those still being attached, whose claim must stay. */
static void send_snapshot(void)
{
	struct vx_eop *op = calloc(1, sizeof(*op));
	size_t np = 0, nk = 0;
	for (struct pub *p = S.pubs; p; p = p->next)
		np++;
	for (vx_net_t *n = vx.nets; n; n = n->next)
		nk += n->nlocal;
	if (!op || !(op->pub = calloc(np + 1, sizeof(*op->pub))) ||
	    !(op->keep = calloc(nk + 1, sizeof(*op->keep)))) {
		vx_eop_free(op);
		return; /* the ops thread asks again within a second */
	}
	op->type = VX_EOP_SNAPSHOT;
	for (struct pub *p = S.pubs; p; p = p->next)
		op->pub[op->npub++] = p->r;
	for (vx_net_t *n = vx.nets; n; n = n->next)
		for (vx_ep_t *e = n->eps; e; e = e->next)
			if (e->src == VX_LOCAL && op->nkeep < nk)
				rec_of(n, e, &op->keep[op->nkeep++]);
	vx_ethreads_push(op);
}

/* ---- loop side of the queue ---------------------------------------------- */

static void drain(void)
{
	lost_sweep(0);
	pthread_mutex_lock(&S.lock);
	struct vx_eres *r = S.head;
	S.head = NULL;
	S.tail = &S.head;
	pthread_mutex_unlock(&S.lock);
	while (r) {
		struct vx_eres *next = r->next;
		switch (r->type) {
		case VX_ERES_CLAIM:
			claim_result(NA_STEAL(r->claim), r->rc, &r->err);
			break;
		case VX_ERES_SNAPSHOT:
			send_snapshot();
			break;
		case VX_ERES_RESYNC:
			vx_elearn_resync(r->recs, r->nrecs);
			S.learned_once = 1;
			break;
		case VX_ERES_PUT:
			vx_elearn_put(&r->rec);
			break;
		case VX_ERES_DEL:
			vx_elearn_del(&r->rec);
			break;
		case VX_ERES_FIRST:
			break;
		}
		vx_eres_free(r);
		r = next;
	}
}

static void on_async(uv_async_t *h)
{
	(void)h;
	drain();
}

static void on_timer(uv_timer_t *t)
{
	(void)t;
	lost_sweep(0);
	vx_ethreads_kick();
}

void vx_etcd_net_changed(const vx_net_t *n)
{
	if (S.on)
		vx_elearn_apply((vx_net_t *)n, 1);
}

int vx_etcd_enabled(void)
{
	return S.on;
}

int vx_etcd_start(na_agent_t *ag, na_err_t *err)
{
	if (!ag->cfg.etcd)
		return 0;
	snprintf(S.us, sizeof(S.us), "%s", ag->cfg.name);
	S.head = NULL;
	S.tail = &S.head;
	S.first_done = 0;
	if (uv_async_init(ag->loop, &S.async, on_async) < 0)
		return na_err_set(err, 500, "system_error", NULL, "uv_async_init failed");
	uv_timer_init(ag->loop, &S.timer);
	uv_timer_start(&S.timer, on_timer, RESYNC_MS, RESYNC_MS);
	uv_unref((uv_handle_t *)&S.timer);
	/* What the state holds was acknowledged, hence published (or due). */
	for (vx_net_t *n = vx.nets; n; n = n->next)
		for (vx_ep_t *e = n->eps; e; e = e->next)
			if (e->src == VX_LOCAL) {
				struct vx_erec r;
				rec_of(n, e, &r);
				pub_remember(&r);
			}
	S.on = 1;
	if (vx_ethreads_start(ag->cfg.etcd, S.us, err) < 0) {
		S.on = 0;
		uv_close((uv_handle_t *)&S.async, NULL);
		uv_close((uv_handle_t *)&S.timer, NULL);
		return -1;
	}
	/* Learned entries are not persisted: wait (briefly) for the first
	 * range so the first reconcile keeps the FDB entries programmed by
	 * our previous run instead of removing and re-adding them. */
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += START_WAIT_MS / 1000;
	pthread_mutex_lock(&S.lock);
	while (!S.first_done)
		if (pthread_cond_timedwait(&S.cond, &S.lock, &ts) != 0)
			break;
	int got = S.first_done;
	pthread_mutex_unlock(&S.lock);
	drain();
	na_info("etcd sync started", "endpoints=%s first_range=%s", ag->cfg.etcd,
		got ? "done" : "pending");
	return 0;
}

void vx_etcd_stop(void)
{
	if (!S.on)
		return;
	vx_ethreads_stop();
	S.on = 0;
	uv_timer_stop(&S.timer);
	uv_close((uv_handle_t *)&S.timer, NULL);
	uv_close((uv_handle_t *)&S.async, NULL);
	/* Results nobody will read; a claim's request dies with the loop. */
	while (S.head) {
		struct vx_eres *r = S.head;
		S.head = r->next;
		vx_eres_free(r);
	}
	S.tail = &S.head;
	vx_elearn_clear();
	lost_sweep(1);
	S.claims = NULL; /* freed with the queues */
	while (S.pubs) {
		struct pub *p = S.pubs;
		S.pubs = p->next;
		free(p);
	}
}
