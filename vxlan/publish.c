/* Our local endpoints in etcd, for the other agents to learn (SPEC §3).
 *
 * What must be published lives here (pubs); changes go out one by one in
 * the order they were made (a publish, then its withdrawal, must not swap).
 * When a write fails, or the watch shows our keys differ (deleted behind our
 * back, an old snapshot restored, a crash between a claim and its use), a
 * full sync repairs everything from pubs: it compares with our keys as the
 * watch sees them (no extra range of the whole endpoint tree), writes what
 * is missing, deletes what nobody wants, and releases claims no local
 * endpoint holds. It also runs every FULL_SYNC_MS as a backstop. */
#include "netagent/log.h"
#include "netagent/util.h"
#include "netagent/validate.h"
#include "vxlan/vx_etcd.h"

#define FULL_SYNC_MS   60000
#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 5000
#define TXN_OPS	       64 /* etcd's default --max-txn-ops is 128 */

struct pub {
	struct pub *next;
	struct vx_erec r;
};

enum op_type { OP_PUT, OP_DEL, OP_RELEASE };
struct op {
	struct op *next;
	enum op_type type;
	struct vx_erec r;
};

static struct {
	struct pub *pubs[1024];
	size_t npubs;
	struct op *head, **tail;
	int in_flight;	  /* the head op is at etcd */
	int need_full;	  /* a full sync is due */
	int syncing;	  /* calls of a full sync still out */
	int sync_failed;  /* one of them failed */
	unsigned backoff; /* after a failed sync */
	na_timer_t *timer;
	int up;
} P = {.tail = &P.head};

/* ---- what we publish ------------------------------------------------------ */

static unsigned bucket(const char *net, const char *ep)
{
	uint32_t h = 2166136261u;
	for (const char *s[2] = {net, ep}, **p = s; p < s + 2; p++) {
		for (const char *c = *p; *c; c++)
			h = (h ^ (uint8_t)*c) * 16777619u;
		h = (h ^ '/') * 16777619u;
	}
	return h % NA_ARRAY_SIZE(P.pubs);
}

static struct pub **pub_slot(const char *net, const char *ep)
{
	struct pub **p = &P.pubs[bucket(net, ep)];
	for (; *p; p = &(*p)->next)
		if (!strcmp((*p)->r.net, net) && !strcmp((*p)->r.ep, ep))
			break;
	return p;
}

static void rec_of(const vx_net_t *n, const vx_ep_t *e, struct vx_erec *r)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->net, sizeof(r->net), "%s", n->name);
	snprintf(r->host, sizeof(r->host), "%s", vx_etcd_us());
	snprintf(r->ep, sizeof(r->ep), "%s", e->name);
	r->vni = n->vni;
	r->ip = e->ip;
	r->plen = e->plen;
	memcpy(r->mac, e->mac, 6);
	r->vtep = e->vtep ? e->vtep : vx.ag->underlay.addr;
}

/* ---- the ordered queue ---------------------------------------------------- */

static void pump(void);
static void full_sync_soon(unsigned delay_ms);

static void push(enum op_type type, const struct vx_erec *r)
{
	struct op *o = calloc(1, sizeof(*o));
	if (!o) {
		full_sync_soon(BACKOFF_MIN_MS); /* it repairs what this would have done */
		return;
	}
	o->type = type;
	o->r = *r;
	*P.tail = o;
	P.tail = &o->next;
	pump();
}

static void drop_queue(void)
{
	while (P.head) {
		struct op *o = P.head;
		P.head = o->next;
		free(o);
	}
	P.tail = &P.head;
}

static void op_done(void *ud, int rc, const na_err_t *err, const na_etcd_result_t *res)
{
	(void)ud, (void)res;
	struct op *o = P.head;
	P.in_flight = 0;
	if (!o)
		return; /* stopped meanwhile */
	P.head = o->next;
	if (!P.head)
		P.tail = &P.head;
	free(o);
	if (rc < 0) {
		/* The full sync redoes everything from pubs: the queue behind
		 * this op is obsolete then. */
		na_warn("etcd publish failed, full sync follows", "error=\"%s\"", err->msg);
		drop_queue();
		full_sync_soon(P.backoff);
		return;
	}
	pump();
}

static void release_done(void *ud, int rc, const na_err_t *err)
{
	op_done(ud, rc, err, NULL);
}

static void pump(void)
{
	na_err_t err = NA_ERR_INIT;
	char key[256];
	if (P.in_flight || !P.head || !P.up)
		return;
	struct op *o = P.head;
	P.in_flight = 1;
	vx_erec_key(key, sizeof(key), o->r.net, vx_etcd_us(), o->r.ep);
	int rc = 0;
	if (o->type == OP_PUT) {
		cleanup_free char *v = vx_erec_value(&o->r);
		rc = v ? na_etcd_put(vx_etcd(), key, v, strlen(v), 0, &vx_etcd_opts, op_done, NULL,
				     &err)
		       : na_err_errno(&err, ENOMEM, "publish");
	} else if (o->type == OP_DEL) {
		rc = na_etcd_delete(vx_etcd(), key, &vx_etcd_opts, op_done, NULL, &err);
	} else {
		vx_claim_release(o->r.net, o->r.ep, o->r.ip, release_done, NULL);
	}
	if (rc < 0) {
		P.in_flight = 0;
		na_warn("etcd publish failed, full sync follows", "error=\"%s\"", err.msg);
		drop_queue();
		full_sync_soon(P.backoff);
	}
}

/* ---- the module's hooks --------------------------------------------------- */

void vx_etcd_publish(const vx_net_t *n, const vx_ep_t *ep)
{
	if (!vx_etcd())
		return;
	struct vx_erec r;
	rec_of(n, ep, &r);
	struct pub **p = pub_slot(r.net, r.ep);
	uint32_t old = *p ? (*p)->r.ip : 0;
	if (!*p) {
		if (!(*p = calloc(1, sizeof(**p)))) {
			full_sync_soon(BACKOFF_MIN_MS);
			return;
		}
		P.npubs++;
	}
	(*p)->r = r;
	push(OP_PUT, &r);
	/* The endpoint moved: its old address is free for the others again. */
	if (old && old != r.ip) {
		struct vx_erec o = r;
		o.ip = old;
		push(OP_RELEASE, &o);
	}
}

void vx_etcd_unpublish(const vx_net_t *n, const vx_ep_t *ep)
{
	if (!vx_etcd())
		return;
	struct vx_erec r;
	rec_of(n, ep, &r);
	struct pub **p = pub_slot(r.net, r.ep), *x = *p;
	uint32_t was = x ? x->r.ip : 0;
	if (x) {
		*p = x->next;
		free(x);
		P.npubs--;
	}
	push(OP_DEL, &r);
	push(OP_RELEASE, &r);
	if (was && was != r.ip) {
		r.ip = was;
		push(OP_RELEASE, &r);
	}
}

/* ---- full sync ------------------------------------------------------------ */

static void sync_call_done(void *ud, int rc, const na_err_t *err, const na_etcd_result_t *res)
{
	(void)ud, (void)res;
	if (rc < 0) {
		if (!P.sync_failed)
			na_warn("etcd full sync failed, retrying", "retry_ms=%u error=\"%s\"",
				P.backoff, err->msg);
		P.sync_failed = 1;
	}
	if (--P.syncing > 0)
		return;
	if (P.sync_failed) {
		full_sync_soon(P.backoff);
		P.backoff = P.backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : P.backoff * 2;
		return;
	}
	P.backoff = BACKOFF_MIN_MS;
	if (P.timer && !P.need_full) /* the periodic backstop */
		na_timer_start(P.timer, FULL_SYNC_MS, 0);
	na_debug("local endpoints in sync with etcd", "endpoints=%zu", P.npubs);
}

static void release_call_done(void *ud, int rc, const na_err_t *err)
{
	sync_call_done(ud, rc, err, NULL);
}

/* Batches of puts and deletes, one transaction each (no compares). */
struct batch {
	na_etcd_txn_t *t;
	size_t n;
};

static void batch_flush(struct batch *b)
{
	na_err_t err = NA_ERR_INIT;
	if (!b->t)
		return;
	P.syncing++;
	if (na_etcd_txn(vx_etcd(), b->t, &vx_etcd_opts, sync_call_done, NULL, &err) < 0) {
		P.syncing--;
		P.sync_failed = 1;
	}
	b->t = NULL;
	b->n = 0;
}

static na_etcd_txn_t *batch_txn(struct batch *b)
{
	if (b->n == TXN_OPS)
		batch_flush(b);
	if (!b->t && !(b->t = na_etcd_txn_new()))
		P.sync_failed = 1;
	if (b->t)
		b->n++;
	return b->t;
}

static void stale_own(const struct vx_erec *seen, void *ud)
{
	struct batch *b = ud;
	if (*pub_slot(seen->net, seen->ep))
		return;
	char key[256];
	na_etcd_txn_t *t = batch_txn(b);
	vx_erec_key(key, sizeof(key), seen->net, vx_etcd_us(), seen->ep);
	na_info("withdrawing stale endpoint from etcd", "key=%s", key);
	if (t)
		na_etcd_txn_delete(t, NA_ETCD_THEN, key, 0);
}

/* Claims: ours that no local endpoint uses go (crash between claim and
 * attach, a release lost while etcd was away); published endpoints get
 * theirs back if etcd lost it. */
static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void reclaimed(void *ud, int rc, const na_err_t *err, const na_etcd_result_t *res)
{
	char mine[140], owner[160];
	if (rc == 0) {
		struct vx_erec *r = ud;
		vx_claim_value(mine, sizeof(mine), vx_etcd_us(), r->ep);
		if (vx_claim_judge(res, mine, owner, sizeof(owner)) == VX_CLAIM_TAKEN)
			/* Both hosts use the address: nothing safe to do alone. */
			na_warn("address of a local endpoint is claimed by another host",
				"network=%s endpoint=%s owner=%s", r->net, r->ep, owner);
	}
	free(ud);
	sync_call_done(NULL, rc, err, res);
}

/* A published endpoint whose claim etcd lost (restored from an old
 * snapshot, deleted by hand) gets it back, if nobody took it meanwhile. */
static void reclaim(const struct vx_erec *r)
{
	char key[200], mine[140];
	na_err_t err = NA_ERR_INIT;
	struct vx_erec *copy = malloc(sizeof(*copy));
	na_etcd_txn_t *t = copy ? na_etcd_txn_new() : NULL;
	if (!t) {
		free(copy);
		P.sync_failed = 1;
		return;
	}
	*copy = *r;
	vx_claim_key(key, sizeof(key), r->net, r->ip);
	vx_claim_value(mine, sizeof(mine), vx_etcd_us(), r->ep);
	na_etcd_txn_cmp_create(t, key, NA_ETCD_EQUAL, 0);
	na_etcd_txn_put(t, NA_ETCD_THEN, key, mine, strlen(mine), 0);
	na_etcd_txn_get(t, NA_ETCD_ELSE, key, 0);
	P.syncing++;
	if (na_etcd_txn(vx_etcd(), t, &vx_etcd_opts, reclaimed, copy, &err) < 0) {
		P.syncing--;
		P.sync_failed = 1;
		free(copy);
	}
}

static void claims_ranged(void *ud, int rc, const na_err_t *err, const na_etcd_result_t *res)
{
	size_t n = 0, ul = strlen(vx_etcd_us()), nheld = 0;
	const na_etcd_kv_t *kvs = rc == 0 ? na_etcd_result_kvs(res, &n) : NULL;
	/* Keys of the claims that are ours, sorted, to find the pubs without. */
	cleanup_free const char **held = calloc(n + 1, sizeof(*held));
	for (size_t i = 0; held && i < n; i++) {
		char net[64];
		uint32_t ip;
		const na_etcd_kv_t *kv = &kvs[i];
		if (vx_claim_parse_key(kv->key, net, &ip) < 0 || kv->value_len <= ul + 1 ||
		    strncmp(kv->value, vx_etcd_us(), ul) || kv->value[ul] != '/')
			continue; /* another agent's */
		const char *ep = kv->value + ul + 1;
		held[nheld++] = kv->key;
		vx_net_t *nw = vx_net_find(net);
		vx_ep_t *e = nw ? vx_ep_find(nw, ep) : NULL;
		if (e && e->src == VX_LOCAL && e->ip == ip)
			continue; /* in use (published or being set up) */
		na_info("releasing stale address claim", "key=%s owner=%s", kv->key, kv->value);
		P.syncing++;
		vx_claim_release(net, ep, ip, release_call_done, NULL);
	}
	if (held && rc == 0) {
		qsort(held, nheld, sizeof(*held), cmp_str);
		for (size_t i = 0; i < NA_ARRAY_SIZE(P.pubs); i++)
			for (struct pub *p = P.pubs[i]; p; p = p->next) {
				char key[200];
				const char *k = key;
				vx_claim_key(key, sizeof(key), p->r.net, p->r.ip);
				if (!nheld || !bsearch(&k, held, nheld, sizeof(*held), cmp_str))
					reclaim(&p->r);
			}
	}
	sync_call_done(ud, rc, err, res);
}

static void full_sync(void)
{
	struct batch b = {0};
	na_err_t err = NA_ERR_INIT;
	P.need_full = 0;
	P.sync_failed = 0;
	P.syncing = 1; /* held until every call is out */
	for (size_t i = 0; i < NA_ARRAY_SIZE(P.pubs); i++)
		for (struct pub *p = P.pubs[i]; p; p = p->next) {
			const struct vx_erec *seen = vx_learn_own_find(p->r.net, p->r.ep);
			if (seen && vx_erec_same(seen, &p->r))
				continue;
			char key[256];
			cleanup_free char *v = vx_erec_value(&p->r);
			na_etcd_txn_t *t = v ? batch_txn(&b) : NULL;
			vx_erec_key(key, sizeof(key), p->r.net, vx_etcd_us(), p->r.ep);
			if (t)
				na_etcd_txn_put(t, NA_ETCD_THEN, key, v, strlen(v), 0);
		}
	vx_learn_own_foreach(stale_own, &b);
	batch_flush(&b);
	P.syncing++;
	if (na_etcd_range(vx_etcd(), VX_ETCD_IPAM, &vx_etcd_opts, claims_ranged, NULL, &err) < 0) {
		P.syncing--;
		P.sync_failed = 1;
	}
	sync_call_done(NULL, 0, NULL, NULL); /* the hold */
}

static void on_timer(void *ud)
{
	(void)ud;
	vx_claims_sweep(0);
	/* Our keys as etcd has them come from the watch: wait for it. */
	if (!vx_learn_synced() || P.syncing) {
		na_timer_start(P.timer, 500, 0);
		return;
	}
	full_sync();
}

static void full_sync_soon(unsigned delay_ms)
{
	P.need_full = 1;
	if (P.timer)
		na_timer_start(P.timer, delay_ms, 0);
}

void vx_publish_resync(void)
{
	full_sync_soon(0);
}

void vx_publish_check(const struct vx_erec *seen, int present)
{
	struct pub *p = *pub_slot(seen->net, seen->ep);
	if (!p && present) {
		full_sync_soon(0); /* a stale key of ours: the sync withdraws it */
		return;
	}
	if (p && (!present || !vx_erec_same(seen, &p->r)) && !P.head && !P.need_full) {
		/* Not a write of ours still on its way: someone else's. */
		na_warn("endpoint changed in etcd behind our back, re-publishing",
			"network=%s endpoint=%s", seen->net, seen->ep);
		push(OP_PUT, &p->r);
	}
}

void vx_publish_start(void)
{
	P.backoff = BACKOFF_MIN_MS;
	P.up = 1;
	P.timer = na_timer_new(vx.ag, on_timer, NULL);
	/* What the state holds was acknowledged, hence published (or due). */
	for (vx_net_t *n = vx.nets; n; n = n->next)
		for (vx_ep_t *e = n->eps; e; e = e->next)
			if (e->src == VX_LOCAL) {
				struct vx_erec r;
				rec_of(n, e, &r);
				struct pub **p = pub_slot(r.net, r.ep);
				if (!*p && (*p = calloc(1, sizeof(**p))))
					P.npubs++;
				if (*p)
					(*p)->r = r;
			}
	full_sync_soon(0);
}

void vx_publish_stop(void)
{
	P.up = 0;
	drop_queue();
	P.in_flight = 0;
	na_timer_free(P.timer);
	P.timer = NULL;
	for (size_t i = 0; i < NA_ARRAY_SIZE(P.pubs); i++)
		while (P.pubs[i]) {
			struct pub *p = P.pubs[i];
			P.pubs[i] = p->next;
			free(p);
		}
	P.npubs = 0;
}
