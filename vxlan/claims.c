/* Cluster-wide address claims (SPEC §3): before a local endpoint uses an
 * address, the key ipam/<net>/<ip> must hold "<agent>/<endpoint>". One etcd
 * transaction decides: compare create_revision == 0 → put our value, else
 * get the key. When the session had to retry it (a member died with the
 * answer in flight), the else branch reads our own earlier write and the
 * claim is ours: "an interrupted claim is resolved by re-reading its key".
 *
 * An address the agent picked itself and lost moves on to another free one
 * (and its derived MAC), up to VX_ETCD_MAX_TRIES; the lost one stays out of
 * local allocation for LOST_HOLD_MS, until the winner is learned. */
#include "netagent/log.h"
#include "netagent/util.h"
#include "netagent/validate.h"
#include "vxlan/vx_etcd.h"

#define LOST_HOLD_MS 10000

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
	uint32_t ip; /* what this attempt claims */
};

struct lost {
	struct lost *next;
	char net[64];
	uint32_t ip;
	unsigned long long until;
};

static struct claim *claims;
static struct lost *losts;

int vx_etcd_claiming(const vx_ep_t *e)
{
	for (struct claim *c = claims; c; c = c->next)
		if (c->ep == e)
			return 1;
	return 0;
}

static void claim_finish(struct claim *c, int rc, const na_err_t *err)
{
	for (struct claim **p = &claims; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	c->done(c->ud, rc, rc < 0 ? err : NULL);
	/* Learned endpoints that clashed with the address are due now. */
	vx_net_t *n = vx_net_find(c->net);
	if (n)
		vx_learn_apply(n, 0);
	free(c);
}

void vx_claims_sweep(int all)
{
	unsigned long long now = na_now_ms();
	for (struct lost **p = &losts, *l; (l = *p);) {
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

static void claim_push(struct claim *c);

/* Lost to another agent: a given address fails with 409; a picked one
 * moves to another free address (and its derived MAC, if it had one). */
static void claim_lost(struct claim *c, const char *owner)
{
	vx_net_t *n = c->n;
	vx_ep_t *ep = c->ep;
	char ip[16], who[160];
	na_err_t e = NA_ERR_INIT;
	na_ipv4_fmt(c->ip, ip, sizeof(ip));
	snprintf(who, sizeof(who), "%s", owner[0] ? owner : "?/?");
	char *slash = strchr(who, '/');
	if (slash)
		*slash = 0;
	na_err_set(&e, 409, "ip_in_use", "ip",
		   "%s is claimed in network %s by endpoint %s on host %s", ip, c->net,
		   slash ? slash + 1 : "?", who);
	if (!c->may_move || c->tries + 1 >= VX_ETCD_MAX_TRIES || vx_net_find(c->net) != n ||
	    vx_ep_find(n, c->epname) != ep || ep->src != VX_LOCAL) {
		claim_finish(c, -1, &e);
		return;
	}
	uint32_t next;
	na_err_t pe = NA_ERR_INIT;
	if (pick_free(n, &next, &pe) < 0) {
		na_err_prefix(&pe, "every free address tried is claimed on other hosts");
		claim_finish(c, -1, &pe);
		return;
	}
	vx_ep_t moved = *ep;
	uint8_t mac[6];
	vx_mac_from_ip(ep->ip, mac);
	if (!memcmp(ep->mac, mac, 6)) { /* derived from the address: follows it */
		vx_mac_from_ip(next, moved.mac);
		const vx_ep_t *o = vx_ep_find_mac(n, moved.mac);
		if (o && o != ep) {
			vx_ipam_release(n->ipam, next);
			na_err_set(&pe, 409, "mac_in_use", "mac", "MAC is used by endpoint %s",
				   o->name);
			claim_finish(c, -1, &pe);
			return;
		}
	}
	char b[16];
	na_ipv4_fmt(next, b, sizeof(b));
	na_info("address claimed elsewhere, trying the next one",
		"network=%s endpoint=%s ip=%s next=%s error=\"%s\"", n->name, ep->name, ip, b,
		e.msg);
	struct lost *l = calloc(1, sizeof(*l));
	if (l) {
		snprintf(l->net, sizeof(l->net), "%s", n->name);
		l->ip = ep->ip; /* the endpoint's reservation becomes the hold's */
		l->until = na_now_ms() + LOST_HOLD_MS;
		l->next = losts;
		losts = l;
	} else {
		vx_ipam_release(n->ipam, ep->ip);
	}
	moved.ip = next;
	vx_ep_set(n, ep, &moved); /* through the model: its indexes follow */
	c->tries++;
	claim_push(c);
	vx_learn_apply(n, 0); /* the winner may be waiting for the address */
}

static void claim_answer(void *ud, int rc, const na_err_t *err, const na_etcd_result_t *res)
{
	struct claim *c = ud;
	char mine[140], owner[160], ip[16];
	if (rc < 0) {
		na_err_t e = NA_ERR_INIT;
		na_ipv4_fmt(c->ip, ip, sizeof(ip));
		/* The session tried every member within the deadline. */
		na_err_set(&e, 503, NA_ETCD_EUNAVAILABLE, NULL,
			   "cannot claim %s in network %s cluster-wide, etcd is unreachable (%s); "
			   "retry later",
			   ip, c->net, err->msg);
		claim_finish(c, -1, &e);
		return;
	}
	vx_claim_value(mine, sizeof(mine), vx_etcd_us(), c->epname);
	if (vx_claim_judge(res, mine, owner, sizeof(owner)) == VX_CLAIM_OURS) {
		if (res->retried)
			na_info("claim answer lost and retried; the key says it is ours",
				"network=%s endpoint=%s", c->net, c->epname);
		claim_finish(c, 0, NULL);
		return;
	}
	claim_lost(c, owner);
}

static void claim_push(struct claim *c)
{
	char key[200], mine[140];
	na_err_t err = NA_ERR_INIT;
	c->ip = c->ep->ip;
	vx_claim_key(key, sizeof(key), c->net, c->ip);
	vx_claim_value(mine, sizeof(mine), vx_etcd_us(), c->epname);
	na_etcd_txn_t *t = na_etcd_txn_new();
	if (t) {
		na_etcd_txn_cmp_create(t, key, NA_ETCD_EQUAL, 0);
		na_etcd_txn_put(t, NA_ETCD_THEN, key, mine, strlen(mine), 0);
		na_etcd_txn_get(t, NA_ETCD_ELSE, key, 0);
	}
	if (!t) {
		na_err_errno(&err, ENOMEM, "claim");
		claim_finish(c, -1, &err);
	} else if (na_etcd_txn(vx_etcd(), t, &vx_etcd_opts, claim_answer, c, &err) < 0) {
		claim_finish(c, -1, &err);
	}
}

static int claim_start(vx_net_t *n, vx_ep_t *ep, int may_move, vx_done_fn done, void *ud)
{
	if (!vx_etcd()) {
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
	c->next = claims;
	claims = c;
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

/* ---- release ------------------------------------------------------------- */

struct rel {
	void (*done)(void *ud, int rc, const na_err_t *err);
	void *ud;
};

static void released(void *ud, int rc, const na_err_t *err, const na_etcd_result_t *res)
{
	(void)res;
	struct rel *r = ud;
	if (r->done)
		r->done(r->ud, rc, err);
	free(r);
}

void vx_claim_release(const char *net, const char *ep, uint32_t ip,
		      void (*done)(void *ud, int rc, const na_err_t *err), void *ud)
{
	char key[200], mine[140];
	na_err_t err = NA_ERR_INIT;
	struct rel *r = calloc(1, sizeof(*r));
	na_etcd_txn_t *t = r ? na_etcd_txn_new() : NULL;
	if (!t) {
		free(r);
		na_err_errno(&err, ENOMEM, "release");
		if (done)
			done(ud, -1, &err);
		return;
	}
	r->done = done;
	r->ud = ud;
	vx_claim_key(key, sizeof(key), net, ip);
	vx_claim_value(mine, sizeof(mine), vx_etcd_us(), ep);
	/* A VALUE compare on an absent key is false: only what is still ours. */
	na_etcd_txn_cmp_value(t, key, NA_ETCD_EQUAL, mine, strlen(mine));
	na_etcd_txn_delete(t, NA_ETCD_THEN, key, 0);
	if (na_etcd_txn(vx_etcd(), t, &vx_etcd_opts, released, r, &err) < 0) {
		free(r);
		if (done)
			done(ud, -1, &err);
	}
}

void vx_claims_stop(void)
{
	/* The session completes or cancels the calls in flight; their claims
	 * answer with an error then. */
	vx_claims_sweep(1);
}
