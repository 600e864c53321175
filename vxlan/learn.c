/* Learning the other agents' endpoints (SPEC §3): one managed watch of the
 * core's session on endpoints/ (a full range, then every change; resumed
 * after a broken stream, reset after a compaction). The records live in a
 * cache, indexed by key and chained per network, so an event costs O(1)
 * whatever the number of endpoints and a reset O(n); a network created later
 * learns its entries from its own chain.
 *
 * A learned endpoint is a vx_ep_t of src VX_LEARNED named "<endpoint>.<host>"
 * (unique across hosts, and on purpose not a valid API name); its address is
 * reserved in the network's IPAM so local allocation avoids it. Kernel
 * changes are collected per network and programmed in one job once the
 * current batch of etcd news is applied. Learned entries are not persisted:
 * until the first reset arrives, reconcile removes no remote entry it does
 * not know (vx_etcd_learned_once). Our own keys are indexed too: publish.c
 * compares them with what it must publish. */
#include "netagent/events.h"
#include "netagent/log.h"
#include "netagent/util.h"
#include "netagent/validate.h"
#include "vxlan/vx_etcd.h"

#define NBUCKET 8192
#define NNETB	512

struct lent {
	struct lent *next;	    /* hash chain */
	struct lent *nnext, *nprev; /* its network's chain */
	struct vx_erec r;
	int warned; /* a clash was logged: do not repeat it */
};

/* A network name's chain of entries, and its kernel changes not yet queued. */
struct lnet {
	struct lnet *next;
	char net[64];
	struct lent *head;
	vx_ep_t *set, *del; /* copies of endpoint values */
	size_t nset, ndel, capset, capdel;
	int queued; /* in the flush list */
	struct lnet *qnext;
};

static struct {
	na_etcd_watch_t *watch;
	struct lent *cache[NBUCKET], *own[NBUCKET];
	struct lnet *nets[NNETB];
	struct lnet *flushq;
	int flush_armed, synced;
} L;

/* ---- tables ------------------------------------------------------------- */

static unsigned h3(const char *net, const char *host, const char *ep)
{
	uint32_t h = 2166136261u;
	for (const char *s[3] = {net, host, ep}, **p = s; p < s + 3; p++) {
		for (const char *c = *p; *c; c++)
			h = (h ^ (uint8_t)*c) * 16777619u;
		h = (h ^ '/') * 16777619u;
	}
	return h;
}

static struct lent **slot(struct lent **tab, const struct vx_erec *r)
{
	struct lent **p = &tab[h3(r->net, r->host, r->ep) % NBUCKET];
	for (; *p; p = &(*p)->next)
		if (!strcmp((*p)->r.ep, r->ep) && !strcmp((*p)->r.host, r->host) &&
		    !strcmp((*p)->r.net, r->net))
			break;
	return p;
}

static struct lnet *lnet_of(const char *net, int create)
{
	struct lnet **p = &L.nets[h3(net, "", "") % NNETB];
	for (; *p; p = &(*p)->next)
		if (!strcmp((*p)->net, net))
			return *p;
	if (!create || !(*p = calloc(1, sizeof(**p))))
		return NULL;
	snprintf((*p)->net, sizeof((*p)->net), "%s", net);
	return *p;
}

static void chain_add(struct lent *l)
{
	struct lnet *ln = lnet_of(l->r.net, 1);
	if (!ln)
		return;
	l->nprev = NULL;
	l->nnext = ln->head;
	if (ln->head)
		ln->head->nprev = l;
	ln->head = l;
}

static void chain_del(struct lent *l)
{
	struct lnet *ln = lnet_of(l->r.net, 0);
	if (!ln)
		return;
	if (l->nprev)
		l->nprev->nnext = l->nnext;
	else if (ln->head == l)
		ln->head = l->nnext;
	if (l->nnext)
		l->nnext->nprev = l->nprev;
	l->nnext = l->nprev = NULL;
}

/* ---- kernel changes, batched per network ------------------------------ */

static int push_copy(vx_ep_t **v, size_t *n, size_t *cap, const vx_ep_t *e)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 16;
		vx_ep_t *nv = realloc(*v, c * sizeof(*nv));
		if (!nv)
			return -1;
		*v = nv;
		*cap = c;
	}
	memcpy(&(*v)[(*n)++], e, sizeof(*e));
	return 0;
}

static void programmed(void *ud, int rc, const na_err_t *err)
{
	if (rc < 0)
		na_warn("cannot program learned endpoints, reconcile will retry",
			"network=%s error=\"%s\"", (char *)ud, err->msg);
	free(ud);
}

static void program(vx_net_t *n, vx_ep_t *v, size_t k, int del)
{
	if (!k)
		return;
	const vx_ep_t **p = calloc(k, sizeof(*p));
	char *name = strdup(n->name);
	for (size_t i = 0; p && i < k; i++)
		p[i] = &v[i];
	if (!p || !name || vx_job_remotes(n, p, k, del, 0, programmed, name) < 0) {
		na_warn("cannot queue learned endpoints, reconcile will retry", "network=%s",
			n->name);
		free(name);
	}
	free(p);
}

static void flush(void *ud)
{
	(void)ud;
	L.flush_armed = 0;
	for (struct lnet *ln = L.flushq, *next; ln; ln = next) {
		next = ln->qnext;
		ln->queued = 0;
		vx_net_t *n = vx_net_find(ln->net);
		/* Not ready: the create job or the first reconcile programs every
		 * remote from the desired state, which includes these. */
		if (n && n->ready) {
			program(n, ln->del, ln->ndel, 1);
			program(n, ln->set, ln->nset, 0);
		}
		ln->ndel = ln->nset = 0;
	}
	L.flushq = NULL;
}

static struct lnet *changes_of(vx_net_t *n)
{
	struct lnet *ln = lnet_of(n->name, 1);
	if (!ln)
		return NULL;
	if (!ln->queued) {
		ln->queued = 1;
		ln->qnext = L.flushq;
		L.flushq = ln;
	}
	if (!L.flush_armed && na_defer(vx.ag, flush, NULL) == 0)
		L.flush_armed = 1;
	return ln;
}

/* ---- applying one record to a network ------------------------------------ */

static void learned_name(const struct vx_erec *r, char *buf, size_t len)
{
	snprintf(buf, len, "%s.%s", r->ep, r->host);
}

static void publish_event(const vx_net_t *n, const vx_ep_t *e, const char *action)
{
	json_t *j = vx_ep_json(n, e);
	na_events_publish("endpoint", action, e->name, j);
	json_decref(j);
}

static void forget(vx_net_t *n, vx_ep_t *e, int quiet)
{
	struct lnet *ln = changes_of(n);
	if (!ln || push_copy(&ln->del, &ln->ndel, &ln->capdel, e) < 0)
		vx_net_dirty(n); /* the reconcile removes it */
	if (!quiet) {
		na_info("forgot endpoint", "network=%s endpoint=%s", n->name, e->name);
		publish_event(n, e, "forgotten");
	}
	vx_ep_remove(n, e);
}

/* Why r cannot join n, or NULL. */
static const char *unfit(vx_net_t *n, const struct vx_erec *r, const vx_ep_t **other)
{
	uint32_t mask = 0xffffffffu << (32 - n->plen);
	*other = NULL;
	if (r->plen != n->plen || (r->ip & mask) != n->subnet)
		return "address outside the local subnet";
	if ((*other = vx_ep_find_ip(n, r->ip)))
		return "address used by another endpoint";
	if ((*other = vx_ep_find_mac(n, r->mac)))
		return "MAC used by another endpoint";
	return NULL;
}

/* Makes n's learned endpoint for r match l (NULL: r is gone); all: also
 * reprogram it when nothing changed (a network that got its kernel objects). */
static void apply_one(vx_net_t *n, const struct vx_erec *r, struct lent *l, int all)
{
	char name[160];
	learned_name(r, name, sizeof(name));
	vx_ep_t *cur = strlen(name) < 64 ? vx_ep_find(n, name) : NULL;
	if (cur && cur->src != VX_LEARNED)
		cur = NULL; /* a local or pushed endpoint with that name: not ours to touch */
	int want = l && l->r.vni == n->vni;
	if (cur && want && l->r.ip == cur->ip && l->r.plen == cur->plen && l->r.vtep == cur->vtep &&
	    !memcmp(l->r.mac, cur->mac, 6)) {
		struct lnet *ln = all ? changes_of(n) : NULL;
		if (ln)
			push_copy(&ln->set, &ln->nset, &ln->capset, cur);
		return;
	}
	if (cur)
		forget(n, cur, want); /* changed ones come back below */
	if (!want)
		return;
	const vx_ep_t *o = NULL;
	const char *why = strlen(name) >= 64 ? "name too long" : unfit(n, &l->r, &o);
	na_err_t err = NA_ERR_INIT;
	/* In use without an endpoint: an address a local claim lost to exactly
	 * this endpoint, held meanwhile: share it. */
	int reserve = !why && !vx_ipam_in_use(n->ipam, l->r.ip);
	if (reserve && vx_ipam_reserve(n->ipam, l->r.ip, &err) < 0)
		why = err.msg;
	if (why) {
		if (o && vx_etcd_claiming(o))
			return; /* applied again when the claim ends */
		if (!l->warned) {
			char ip[16];
			na_ipv4_fmt(l->r.ip, ip, sizeof(ip));
			na_warn("not learning endpoint",
				"network=%s endpoint=%s ip=%s reason=\"%s\" other=%s", n->name,
				name, ip, why, o ? o->name : "-");
		}
		l->warned = 1;
		return;
	}
	vx_ep_t t = {.src = VX_LEARNED, .ip = l->r.ip, .plen = l->r.plen, .vtep = l->r.vtep};
	memcpy(t.mac, l->r.mac, 6);
	memcpy(t.name, name, strlen(name) + 1); /* < 64: checked */
	snprintf(t.host, sizeof(t.host), "%s", l->r.host);
	vx_ep_t *e = vx_ep_add(n, &t);
	if (!e) {
		if (reserve)
			vx_ipam_release(n->ipam, t.ip);
		return;
	}
	l->warned = 0;
	struct lnet *ln = changes_of(n);
	if (!ln || push_copy(&ln->set, &ln->nset, &ln->capset, e) < 0)
		vx_net_dirty(n);
	na_debug("learned endpoint", "network=%s endpoint=%s host=%s", n->name, e->name, e->host);
	publish_event(n, e, "learned");
}

void vx_learn_apply(vx_net_t *n, int all)
{
	if (n->deleted || !vx_etcd())
		return;
	/* Learned endpoints whose record is gone or for another vni. */
	for (vx_ep_t *e = n->eps, *next; e; e = next) {
		next = e->next;
		if (e->src != VX_LEARNED)
			continue;
		struct vx_erec k = {0};
		size_t dot = strcspn(e->name, ".");
		snprintf(k.net, sizeof(k.net), "%s", n->name);
		snprintf(k.host, sizeof(k.host), "%s", e->host);
		snprintf(k.ep, sizeof(k.ep), "%.*s", (int)dot, e->name);
		struct lent *l = *slot(L.cache, &k);
		if (!l || l->r.vni != n->vni)
			apply_one(n, &k, NULL, 0);
	}
	struct lnet *ln = lnet_of(n->name, 0);
	for (struct lent *l = ln ? ln->head : NULL; l; l = l->nnext)
		apply_one(n, &l->r, l, all);
}

void vx_etcd_net_changed(const vx_net_t *n)
{
	vx_learn_apply((vx_net_t *)n, 1);
}

/* ---- the watch ------------------------------------------------------------- */

static void cache_put(struct lent **tab, const struct vx_erec *r, int chained)
{
	struct lent **p = slot(tab, r);
	if (*p) {
		if (!vx_erec_same(&(*p)->r, r))
			(*p)->warned = 0;
		(*p)->r = *r;
		return;
	}
	struct lent *l = calloc(1, sizeof(*l));
	if (!l)
		return; /* the next reset brings it back */
	l->r = *r;
	*p = l;
	if (chained)
		chain_add(l);
}

static void cache_del(struct lent **tab, const struct vx_erec *r, int chained)
{
	struct lent **p = slot(tab, r), *l = *p;
	if (!l)
		return;
	*p = l->next;
	if (chained)
		chain_del(l);
	free(l);
}

static void learn_put(const struct vx_erec *r)
{
	cache_put(L.cache, r, 1);
	vx_net_t *n = vx_net_find(r->net);
	if (n)
		apply_one(n, r, *slot(L.cache, r), 0);
}

static void learn_del(const struct vx_erec *r)
{
	cache_del(L.cache, r, 1);
	vx_net_t *n = vx_net_find(r->net);
	if (n)
		apply_one(n, r, NULL, 0);
}

static int parse(const char *key, const char *val, size_t len, struct vx_erec *r)
{
	if (vx_erec_parse_key(key, r) < 0)
		return -1;
	if (val && vx_erec_parse_value(val, len, r) < 0) {
		na_warn("ignoring malformed endpoint in etcd", "key=%s", key);
		return -2;
	}
	return 0;
}

static void on_event(void *ud, const na_etcd_event_t *ev)
{
	(void)ud;
	struct vx_erec r;
	int put = ev->type == NA_ETCD_PUT;
	int rc = parse(ev->key, put ? ev->value : NULL, ev->value_len, &r);
	if (rc == -1)
		return;
	if (rc == -2)
		put = 0; /* unusable: forget what we had rather than keep a stale entry */
	if (!strcmp(r.host, vx_etcd_us())) {
		if (put)
			cache_put(L.own, &r, 0);
		else
			cache_del(L.own, &r, 0);
		vx_publish_check(&r, put);
		return;
	}
	if (put)
		learn_put(&r);
	else
		learn_del(&r);
}

static void clear(struct lent **tab, int chained)
{
	for (size_t i = 0; i < NBUCKET; i++)
		while (tab[i]) {
			struct lent *l = tab[i];
			tab[i] = l->next;
			if (chained)
				chain_del(l);
			free(l);
		}
}

/* A full range replaces the cache: entries absent from it go, changed ones
 * are reapplied, unchanged ones cost a lookup. */
static void on_reset(void *ud, const na_etcd_kv_t *kvs, size_t n, int64_t rev)
{
	(void)ud;
	struct lent *old[NBUCKET];
	memcpy(old, L.cache, sizeof(old));
	memset(L.cache, 0, sizeof(L.cache));
	for (size_t i = 0; i < NNETB; i++)
		for (struct lnet *ln = L.nets[i]; ln; ln = ln->next)
			ln->head = NULL; /* the chains are rebuilt from the new cache */
	clear(L.own, 0);
	for (size_t i = 0; i < n; i++) {
		struct vx_erec r;
		if (parse(kvs[i].key, kvs[i].value, kvs[i].value_len, &r) < 0)
			continue;
		if (!strcmp(r.host, vx_etcd_us())) {
			cache_put(L.own, &r, 0);
			continue;
		}
		cache_put(L.cache, &r, 1);
		struct lent *was = *slot(old, &r), *now = *slot(L.cache, &r);
		if (was && now && vx_erec_same(&was->r, &r))
			now->warned = was->warned;
		vx_net_t *nw = vx_net_find(r.net);
		if (nw && (!was || !vx_erec_same(&was->r, &r)))
			apply_one(nw, &r, now, 0);
	}
	/* What the old cache had and the new one has not. */
	for (size_t i = 0; i < NBUCKET; i++)
		for (struct lent *l = old[i]; l; l = l->next) {
			if (*slot(L.cache, &l->r))
				continue;
			vx_net_t *nw = vx_net_find(l->r.net);
			if (nw)
				apply_one(nw, &l->r, NULL, 0);
		}
	clear(old, 0);
	int first = !L.synced;
	L.synced = 1;
	na_log(first ? NA_LOG_INFO : NA_LOG_DEBUG, "endpoints read from etcd",
	       "keys=%zu revision=%lld", n, (long long)rev);
	if (first) /* learned entries could block nothing before: every network */
		for (vx_net_t *nw = vx.nets; nw; nw = nw->next)
			vx_learn_apply(nw, 0);
	vx_publish_resync();
}

static void on_state(void *ud, int up, const na_err_t *err)
{
	(void)ud;
	if (up)
		na_info("etcd watch of endpoints up", "revision=%lld",
			(long long)na_etcd_watch_revision(L.watch));
	else
		na_warn("etcd watch of endpoints down, it resumes by itself", "error=\"%s\"",
			err ? err->msg : "");
}

static const na_etcd_watch_ops_t watch_ops = {on_reset, on_event, on_state};

int vx_learn_start(na_err_t *err)
{
	na_etcd_watch_cfg_t cfg = {.user = VX_ETCD_USER, .prefix = 1};
	L.watch = na_etcd_watch(vx_etcd(), VX_ETCD_EPS, &cfg, &watch_ops, NULL, err);
	return L.watch ? 0 : -1;
}

void vx_learn_stop(void)
{
	if (L.watch)
		na_etcd_watch_stop(L.watch);
	L.watch = NULL;
	clear(L.cache, 0);
	clear(L.own, 0);
	for (size_t i = 0; i < NNETB; i++)
		while (L.nets[i]) {
			struct lnet *ln = L.nets[i];
			L.nets[i] = ln->next;
			free(ln->set);
			free(ln->del);
			free(ln);
		}
	L.flushq = NULL;
	L.synced = 0;
}

int vx_learn_synced(void)
{
	return L.synced;
}

int vx_etcd_learned_once(void)
{
	return !vx_etcd() || L.synced;
}

void vx_learn_own_foreach(void (*fn)(const struct vx_erec *r, void *ud), void *ud)
{
	for (size_t i = 0; i < NBUCKET; i++)
		for (struct lent *l = L.own[i]; l; l = l->next)
			fn(&l->r, ud);
}

const struct vx_erec *vx_learn_own_find(const char *net, const char *ep)
{
	struct vx_erec k = {0};
	snprintf(k.net, sizeof(k.net), "%s", net);
	snprintf(k.host, sizeof(k.host), "%s", vx_etcd_us());
	snprintf(k.ep, sizeof(k.ep), "%s", ep);
	struct lent *l = *slot(L.own, &k);
	return l ? &l->r : NULL;
}
