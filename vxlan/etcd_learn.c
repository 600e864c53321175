/* Learning (loop thread): what the watch thread found in etcd, kept in a
 * cache and applied to the local networks of the same name and VNI.
 *
 * Learned endpoints are vx_ep_t with src VX_LEARNED named "<endpoint>.<host>"
 * (unique across hosts, and on purpose not a valid API name: they only show
 * up in lists). Their addresses are reserved in the network's IPAM so local
 * allocation avoids them. They are not persisted; see vx_etcd_start for how
 * a restart keeps their FDB entries. Also the codec of the endpoint records
 * (pure functions, used by the etcd threads too). */
#include "netagent/events.h"
#include "netagent/log.h"
#include "netagent/util.h"
#include "netagent/validate.h"
#include "vxlan/etcd_sync.h"

#define NBUCKET 1024

/* An endpoint published by another agent, as etcd has it. Kept even when no
 * local network matches (yet), so a network created later learns at once. */
struct lent {
	struct lent *next;
	struct vx_erec r;
	int warned; /* a clash was logged: do not repeat it every resync */
};

static struct lent *cache[NBUCKET];

/* ---- records <-> values -------------------------------------------------- */

/* The value of an endpoint key; sorted keys so equal records compare equal. */
char *vx_erec_value(const struct vx_erec *r)
{
	char cidr[24], mac[18], vtep[16];
	na_cidr_fmt(r->ip, r->plen, cidr, sizeof(cidr));
	na_mac_fmt(r->mac, mac, sizeof(mac));
	na_ipv4_fmt(r->vtep, vtep, sizeof(vtep));
	cleanup_json json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:s}", "vni", (json_int_t)r->vni,
					   "ip", cidr, "mac", mac, "vtep", vtep, "host", r->host);
	return o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
}

/* "…/endpoints/<net>/<host>/<ep>": three non-empty segments, no more. */
int vx_erec_parse_key(const char *key, struct vx_erec *r)
{
	size_t pl = strlen(VX_ETCD_EPS);
	memset(r, 0, sizeof(*r));
	if (strncmp(key, VX_ETCD_EPS, pl) != 0)
		return -1;
	char *seg[3] = {r->net, r->host, r->ep};
	const char *p = key + pl;
	for (int i = 0; i < 3; i++) {
		size_t l = strcspn(p, "/");
		if (l == 0 || l >= 64 || (i < 2 && p[l] != '/') || (i == 2 && p[l]))
			return -1;
		memcpy(seg[i], p, l);
		seg[i][l] = 0;
		p += l + 1;
	}
	return 0;
}

int vx_erec_parse_value(const char *val, size_t len, struct vx_erec *r)
{
	cleanup_json json_t *o = json_loadb(val, len, 0, NULL);
	json_t *vni = json_object_get(o, "vni");
	const char *ip = json_string_value(json_object_get(o, "ip"));
	const char *mac = json_string_value(json_object_get(o, "mac"));
	const char *vtep = json_string_value(json_object_get(o, "vtep"));
	if (!json_is_integer(vni) || json_integer_value(vni) < 1 ||
	    json_integer_value(vni) > 16777215 || !ip || na_cidr_parse(ip, &r->ip, &r->plen) < 0 ||
	    !mac || na_mac_parse(mac, r->mac) < 0 || !vtep || na_ipv4_parse(vtep, &r->vtep) < 0 ||
	    !na_ipv4_unicast(r->vtep))
		return -1;
	r->vni = (uint32_t)json_integer_value(vni);
	return 0;
}

/* ---- the cache ------------------------------------------------------------ */

static unsigned bucket(const char *net, const char *host, const char *ep)
{
	uint32_t h = 2166136261u;
	for (const char *s[3] = {net, host, ep}, **p = s; p < s + 3; p++) {
		for (const char *c = *p; *c; c++)
			h = (h ^ (uint8_t)*c) * 16777619u;
		h = (h ^ '/') * 16777619u;
	}
	return h % NBUCKET;
}

static struct lent **cache_slot(struct lent **tab, const char *net, const char *host,
				const char *ep)
{
	struct lent **p = &tab[bucket(net, host, ep)];
	for (; *p; p = &(*p)->next)
		if (!strcmp((*p)->r.ep, ep) && !strcmp((*p)->r.host, host) &&
		    !strcmp((*p)->r.net, net))
			break;
	return p;
}

static int same_rec(const struct vx_erec *a, const struct vx_erec *b)
{
	return a->vni == b->vni && a->ip == b->ip && a->plen == b->plen && a->vtep == b->vtep &&
	       !memcmp(a->mac, b->mac, 6);
}

static void cache_put(const struct vx_erec *r)
{
	struct lent **p = cache_slot(cache, r->net, r->host, r->ep);
	if (*p) {
		if (!same_rec(&(*p)->r, r))
			(*p)->warned = 0;
		(*p)->r = *r;
		return;
	}
	struct lent *l = calloc(1, sizeof(*l));
	if (!l)
		return; /* the next resync brings it back */
	l->r = *r;
	*p = l;
}

static void cache_del(const struct vx_erec *r)
{
	struct lent **p = cache_slot(cache, r->net, r->host, r->ep), *l = *p;
	if (l) {
		*p = l->next;
		free(l);
	}
}

static void cache_clear(struct lent **tab)
{
	for (size_t i = 0; i < NBUCKET; i++)
		while (tab[i]) {
			struct lent *l = tab[i];
			tab[i] = l->next;
			free(l);
		}
}

/* ---- applying the cache to a network ------------------------------------- */

static void learned_name(const struct vx_erec *r, char *buf, size_t len)
{
	snprintf(buf, len, "%s.%s", r->ep, r->host);
}

/* The cache entry behind a learned endpoint ("<endpoint>.<host>"). */
static struct lent *cache_of(const vx_net_t *n, const vx_ep_t *e)
{
	char ep[64];
	size_t l = strcspn(e->name, ".");
	if (l >= sizeof(ep))
		return NULL;
	memcpy(ep, e->name, l);
	ep[l] = 0;
	return *cache_slot(cache, n->name, e->host, ep);
}

static void remotes_done(void *ud, int rc, const na_err_t *err)
{
	if (rc < 0)
		na_warn("cannot program learned endpoints, reconcile will retry",
			"network=%s error=\"%s\"", (char *)ud, err->msg);
	free(ud);
}

static void program(vx_net_t *n, const vx_ep_t *const *eps, size_t k, int del)
{
	char *name = k ? strdup(n->name) : NULL;
	if (name && vx_job_remotes(n, eps, k, del, 0, remotes_done, name) < 0) {
		na_warn("cannot queue learned endpoints, reconcile will retry", "network=%s",
			n->name);
		free(name);
	}
}

static void publish_event(const vx_net_t *n, const vx_ep_t *e, const char *action)
{
	json_t *j = vx_ep_json(n, e);
	na_events_publish("endpoint", action, e->name, j);
	json_decref(j);
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

/* Makes n's learned endpoints match the cache (entries for n's name and
 * vni), programs the differences, and with all every learned entry (a
 * network that just got its kernel objects). */
void vx_elearn_apply(vx_net_t *n, int all)
{
	if (n->deleted)
		return;
	size_t cap = n->nlearned + 1, ndel = 0, nset = 0;
	for (size_t i = 0; i < NBUCKET; i++)
		for (struct lent *l = cache[i]; l; l = l->next)
			cap++;
	vx_ep_t *dels = calloc(cap, sizeof(*dels));
	const vx_ep_t **dptr = calloc(cap, sizeof(*dptr)), **sets = calloc(cap, sizeof(*sets));
	if (!dels || !dptr || !sets)
		goto out; /* the next resync tries again */
	for (vx_ep_t *e = n->eps, *next; e; e = next) {
		next = e->next;
		if (e->src != VX_LEARNED)
			continue;
		struct lent *l = cache_of(n, e);
		if (l && l->r.vni == n->vni && l->r.ip == e->ip && l->r.plen == e->plen &&
		    l->r.vtep == e->vtep && !memcmp(l->r.mac, e->mac, 6))
			continue;
		dels[ndel] = *e;
		dptr[ndel] = &dels[ndel];
		ndel++;
		if (!l || l->r.vni != n->vni) {
			na_info("forgot endpoint", "network=%s endpoint=%s", n->name, e->name);
			publish_event(n, e, "forgotten");
		}
		vx_ep_remove(n, e); /* changed ones come back below */
	}
	for (size_t i = 0; i < NBUCKET; i++) {
		for (struct lent *l = cache[i]; l; l = l->next) {
			if (l->r.vni != n->vni || strcmp(l->r.net, n->name) != 0)
				continue;
			char name[160], ip[16];
			learned_name(&l->r, name, sizeof(name));
			vx_ep_t *cur = strlen(name) < 64 ? vx_ep_find(n, name) : NULL;
			if (cur) {
				if (all && cur->src == VX_LEARNED)
					sets[nset++] = cur;
				continue;
			}
			const vx_ep_t *o = NULL;
			const char *why =
			    strlen(name) >= 64 ? "name too long" : unfit(n, &l->r, &o);
			/* In use without an endpoint: an address a local claim lost
			 * to exactly this endpoint, held meanwhile: share it. */
			na_err_t err = NA_ERR_INIT;
			int reserve = !why && !vx_ipam_in_use(n->ipam, l->r.ip);
			if (reserve && vx_ipam_reserve(n->ipam, l->r.ip, &err) < 0)
				why = err.msg;
			if (why) {
				na_ipv4_fmt(l->r.ip, ip, sizeof(ip));
				if (o && vx_etcd_claiming(o))
					continue; /* applied again when the claim ends */
				if (!l->warned)
					na_warn(
					    "not learning endpoint",
					    "network=%s endpoint=%s ip=%s reason=\"%s\" other=%s",
					    n->name, name, ip, why, o ? o->name : "-");
				l->warned = 1;
				continue;
			}
			vx_ep_t t = {
			    .src = VX_LEARNED, .ip = l->r.ip, .plen = l->r.plen, .vtep = l->r.vtep};
			memcpy(t.mac, l->r.mac, 6);
			memcpy(t.name, name, strlen(name) + 1); /* < 64: checked */
			snprintf(t.host, sizeof(t.host), "%s", l->r.host);
			vx_ep_t *e = vx_ep_add(n, &t);
			if (!e) {
				if (reserve)
					vx_ipam_release(n->ipam, t.ip);
				continue;
			}
			l->warned = 0;
			sets[nset++] = e;
			na_ipv4_fmt(e->ip, ip, sizeof(ip));
			na_info("learned endpoint", "network=%s endpoint=%s ip=%s host=%s", n->name,
				e->name, ip, e->host);
			publish_event(n, e, "learned");
		}
	}
	/* Not ready: the network's create job or the first reconcile programs
	 * every remote from the desired state, which now includes these. */
	if (n->ready) {
		program(n, dptr, ndel, 1);
		program(n, sets, nset, 0);
	}
out:
	free(dels);
	free(dptr);
	free(sets);
}

static void apply_all(void)
{
	for (vx_net_t *n = vx.nets; n; n = n->next)
		vx_elearn_apply(n, 0);
}

/* A full range replaces the cache: learned entries absent from it go. */
void vx_elearn_resync(const struct vx_erec *recs, size_t nrecs)
{
	struct lent *old[NBUCKET];
	memcpy(old, cache, sizeof(old));
	memset(cache, 0, sizeof(cache));
	for (size_t i = 0; i < nrecs; i++) {
		const struct vx_erec *x = &recs[i];
		cache_put(x);
		struct lent *was = *cache_slot(old, x->net, x->host, x->ep);
		struct lent *now = *cache_slot(cache, x->net, x->host, x->ep);
		if (was && now && same_rec(&was->r, x))
			now->warned = was->warned;
	}
	cache_clear(old);
	apply_all();
}

void vx_elearn_put(const struct vx_erec *r)
{
	cache_put(r);
	vx_net_t *n = vx_net_find(r->net);
	if (n)
		vx_elearn_apply(n, 0);
}

void vx_elearn_del(const struct vx_erec *r)
{
	cache_del(r);
	vx_net_t *n = vx_net_find(r->net);
	if (n)
		vx_elearn_apply(n, 0);
}

void vx_elearn_clear(void)
{
	cache_clear(cache);
}
