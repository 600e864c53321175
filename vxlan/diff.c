/* Desired vs kernel: the differences `net inspect` shows and reconcile
 * repairs. Runs on a worker thread on a snapshot and a fresh dump. */
#include "netagent/util.h"
#include "netagent/validate.h"
#include "vxlan/diff.h"

static void add(json_t *diffs, const char *kind, const char *object, const char *problem,
		const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void add(json_t *diffs, const char *kind, const char *object, const char *problem,
		const char *fmt, ...)
{
	char detail[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	json_array_append_new(diffs, json_pack("{s:s, s:s, s:s, s:s}", "kind", kind, "object",
					       object, "problem", problem, "detail", detail));
}

static void check_link(json_t *d, const struct vx_k_link *l, const char *name, int mtu, int master)
{
	if (!l) {
		add(d, "link", name, "missing", "%s does not exist", name);
		return;
	}
	if (l->mtu != mtu)
		add(d, "mtu", name, "mismatch", "mtu %d, want %d", l->mtu, mtu);
	if (!l->up)
		add(d, "link", name, "mismatch", "%s is down", name);
	if (master >= 0 && l->master != master)
		add(d, "link", name, "mismatch", "%s is not a port of %s", name, VX_K_BRIDGE);
}

static int cmp_mac(const void *a, const void *b)
{
	return memcmp(a, b, 6);
}

static int cmp_u32(uint32_t a, uint32_t b)
{
	return a < b ? -1 : a > b;
}

static int cmp_rem_mac(const void *a, const void *b)
{
	return memcmp(((const struct vx_k_remote *)a)->mac, ((const struct vx_k_remote *)b)->mac,
		      6);
}
static int cmp_rem_ip(const void *a, const void *b)
{
	return cmp_u32(((const struct vx_k_remote *)a)->ip, ((const struct vx_k_remote *)b)->ip);
}
static int cmp_fdb(const void *a, const void *b)
{
	return cmp_mac(((const struct vx_k_fdb *)a)->mac, ((const struct vx_k_fdb *)b)->mac);
}
static int cmp_neigh(const void *a, const void *b)
{
	return cmp_u32(((const struct vx_k_neigh *)a)->ip, ((const struct vx_k_neigh *)b)->ip);
}

/* The keep lists, sorted once per diff for lookups by mac and by ip. */
struct keep {
	struct vx_k_remote *by_mac, *by_ip;
	size_t n;
};

static int keep_init(struct keep *kp, const struct vx_snap *s)
{
	kp->n = s->nkeep_remote;
	kp->by_mac = malloc((kp->n + 1) * sizeof(*kp->by_mac));
	kp->by_ip = malloc((kp->n + 1) * sizeof(*kp->by_ip));
	if (!kp->by_mac || !kp->by_ip) {
		free(kp->by_mac);
		free(kp->by_ip);
		return -1;
	}
	if (kp->n) {
		memcpy(kp->by_mac, s->keep_remote, kp->n * sizeof(*kp->by_mac));
		memcpy(kp->by_ip, s->keep_remote, kp->n * sizeof(*kp->by_ip));
		qsort(kp->by_mac, kp->n, sizeof(*kp->by_mac), cmp_rem_mac);
		qsort(kp->by_ip, kp->n, sizeof(*kp->by_ip), cmp_rem_ip);
	}
	return 0;
}

static int keep_mac(const struct keep *kp, const uint8_t mac[6])
{
	struct vx_k_remote key = {0};
	memcpy(key.mac, mac, 6);
	return kp->n && bsearch(&key, kp->by_mac, kp->n, sizeof(key), cmp_rem_mac);
}

static int keep_ip(const struct keep *kp, uint32_t ip)
{
	struct vx_k_remote key = {.ip = ip};
	return kp->n && bsearch(&key, kp->by_ip, kp->n, sizeof(key), cmp_rem_ip);
}

static int push(struct vx_k_remote **v, size_t *n, const struct vx_k_remote *r)
{
	struct vx_k_remote *nv = realloc(*v, (*n + 1) * sizeof(**v));
	if (!nv)
		return -1;
	nv[(*n)++] = *r;
	*v = nv;
	return 0;
}

/* Merge of two sorted lists: desired remotes and what the kernel has in one
 * FDB table (vxlan0's own, MAC -> VTEP, or the bridge's static entries on
 * the vxlan0 port, where only the MAC counts). */
static void diff_fdb(json_t *d, const struct vx_snap *s, struct vx_k_fdb *fdb, size_t nfdb,
		     int bridge, const struct keep *kp, struct vx_repair *rep)
{
	const char *kind = bridge ? "bridge_fdb" : "fdb";
	struct vx_k_remote *want = malloc((s->nremote + 1) * sizeof(*want));
	if (!want)
		return;
	if (s->nremote)
		memcpy(want, s->remote, s->nremote * sizeof(*want));
	qsort(want, s->nremote, sizeof(*want), cmp_rem_mac);
	if (nfdb) /* qsort wants a valid pointer even for 0 elements */
		qsort(fdb, nfdb, sizeof(*fdb), cmp_fdb);
	size_t i = 0, j = 0;
	char m[18], a[16], b[16];
	while (i < s->nremote || j < nfdb) {
		int c = i == s->nremote ? 1 : j == nfdb ? -1 : cmp_mac(want[i].mac, fdb[j].mac);
		if (c < 0) {
			na_mac_fmt(want[i].mac, m, sizeof(m));
			add(d, kind, m, "missing", "no %s entry for %s", bridge ? "bridge" : "FDB",
			    m);
			if (rep)
				push(&rep->set, &rep->nset, &want[i]);
			i++;
		} else if (c > 0) {
			if (!keep_mac(kp, fdb[j].mac)) {
				struct vx_k_remote r = {0};
				memcpy(r.mac, fdb[j].mac, 6);
				na_mac_fmt(r.mac, m, sizeof(m));
				na_ipv4_fmt(fdb[j].dst, a, sizeof(a));
				if (bridge)
					add(d, kind, m, "extra", "bridge entry %s is not wanted",
					    m);
				else
					add(d, kind, m, "extra", "%s -> %s is not wanted", m, a);
				if (rep)
					push(&rep->del, &rep->ndel, &r);
			}
			j++;
		} else {
			if (!bridge && fdb[j].dst != want[i].vtep) {
				na_mac_fmt(want[i].mac, m, sizeof(m));
				na_ipv4_fmt(fdb[j].dst, a, sizeof(a));
				na_ipv4_fmt(want[i].vtep, b, sizeof(b));
				add(d, kind, m, "mismatch", "%s -> %s, want %s", m, a, b);
				if (rep)
					push(&rep->set, &rep->nset, &want[i]);
			}
			i++, j++;
		}
	}
	free(want);
}

static void diff_neigh(json_t *d, const struct vx_snap *s, struct vx_k_state *k,
		       const struct keep *kp, struct vx_repair *rep)
{
	struct vx_k_remote *want = malloc((s->nremote + 1) * sizeof(*want));
	if (!want)
		return;
	if (s->nremote)
		memcpy(want, s->remote, s->nremote * sizeof(*want));
	qsort(want, s->nremote, sizeof(*want), cmp_rem_ip);
	if (k->nneigh)
		qsort(k->neigh, k->nneigh, sizeof(*k->neigh), cmp_neigh);
	size_t i = 0, j = 0;
	char a[16], m[18], m2[18];
	while (i < s->nremote || j < k->nneigh) {
		int c = i == s->nremote	 ? 1
			: j == k->nneigh ? -1
					 : cmp_u32(want[i].ip, k->neigh[j].ip);
		if (c < 0) {
			na_ipv4_fmt(want[i].ip, a, sizeof(a));
			add(d, "neighbour", a, "missing", "no neighbour entry for %s", a);
			if (rep)
				push(&rep->set, &rep->nset, &want[i]);
			i++;
		} else if (c > 0) {
			if (!keep_ip(kp, k->neigh[j].ip)) {
				struct vx_k_remote r = {0};
				r.ip = k->neigh[j].ip;
				na_ipv4_fmt(r.ip, a, sizeof(a));
				add(d, "neighbour", a, "extra", "%s is not wanted", a);
				if (rep)
					push(&rep->del, &rep->ndel, &r);
			}
			j++;
		} else {
			if (memcmp(k->neigh[j].mac, want[i].mac, 6) != 0) {
				na_ipv4_fmt(want[i].ip, a, sizeof(a));
				na_mac_fmt(k->neigh[j].mac, m, sizeof(m));
				na_mac_fmt(want[i].mac, m2, sizeof(m2));
				add(d, "neighbour", a, "mismatch", "%s -> %s, want %s", a, m, m2);
				if (rep)
					push(&rep->set, &rep->nset, &want[i]);
			}
			i++, j++;
		}
	}
	free(want);
}

/* Host-side veths of ours (group, "ve-" name) that neither a committed
 * endpoint nor a change in flight owns: left by an attach that was never
 * acknowledged (a lost claim, a crash before the state file). */
static void diff_owners(json_t *d, const struct vx_snap *s, const struct vx_k_state *k,
			struct vx_repair *rep)
{
	for (size_t i = 0; i < k->nlinks; i++) {
		const struct vx_k_link *l = &k->links[i];
		if (strcmp(l->kind, "veth") || l->group != VX_K_GROUP || strncmp(l->name, "ve-", 3))
			continue;
		int owned = 0;
		char v[16];
		for (size_t e = 0; e < s->nlocal && !owned; e++) {
			vx_k_veth_name(s->local[e].name, v);
			owned = !strcmp(v, l->name);
		}
		for (size_t e = 0; e < s->nkeep_local && !owned; e++) {
			vx_k_veth_name(s->keep_local[e], v);
			owned = !strcmp(v, l->name);
		}
		if (owned)
			continue;
		add(d, "link", l->name, "extra", "veth %s belongs to no endpoint", l->name);
		if (!rep)
			continue;
		char(*nv)[16] = realloc(rep->del_links, (rep->ndel_links + 1) * sizeof(*nv));
		if (!nv)
			continue;
		rep->del_links = nv;
		snprintf(rep->del_links[rep->ndel_links++], 16, "%s", l->name);
	}
}

json_t *vx_diff(const struct vx_snap *s, struct vx_k_state *k, const struct vx_k_ep_state *eps,
		struct vx_repair *rep)
{
	json_t *d = json_array();
	if (!k->exists) {
		add(d, "link", "netns", "missing", "namespace %s does not exist", s->netns);
		return d;
	}
	const struct vx_k_link *br = vx_k_state_link(k, VX_K_BRIDGE);
	const struct vx_k_link *vxl = vx_k_state_link(k, VX_K_VXLAN);
	int brix = br ? br->ifindex : -1;
	check_link(d, br, VX_K_BRIDGE, s->mtu, -1);
	check_link(d, vxl, VX_K_VXLAN, s->mtu, brix);
	if (vxl) {
		if (vxl->vni != s->vni)
			add(d, "link", VX_K_VXLAN, "mismatch", "vni %u, want %u", vxl->vni, s->vni);
		if (vxl->vx_learning)
			add(d, "link", VX_K_VXLAN, "mismatch", "learning is on");
		if (!vxl->vx_proxy)
			add(d, "link", VX_K_VXLAN, "mismatch", "proxy ARP is off");
	}
	for (size_t i = 0; i < s->nlocal; i++) {
		const struct vx_snap_ep *e = &s->local[i];
		char veth[16], obj[96];
		vx_k_veth_name(e->name, veth);
		check_link(d, vx_k_state_link(k, veth), veth, s->mtu, brix);
		snprintf(obj, sizeof(obj), "%s:%s", e->name, e->ifname);
		const struct vx_k_ep_state *es = &eps[i];
		if (!es->exists) {
			add(d, "link", obj, "missing", "%s missing in %s", e->ifname, e->netns);
			continue;
		}
		check_link(d, &es->link, obj, s->mtu, -1);
		int has = 0;
		for (size_t a = 0; a < es->naddrs; a++)
			has |= es->addrs[a].ip == e->ip && es->addrs[a].plen == e->plen;
		if (!has) {
			char ip[16];
			na_ipv4_fmt(e->ip, ip, sizeof(ip));
			add(d, "address", obj, "missing", "%s/%d not on %s", ip, e->plen,
			    e->ifname);
		}
		if (memcmp(es->link.mac, e->mac, 6) != 0)
			add(d, "link", obj, "mismatch", "MAC differs from the desired one");
	}
	diff_owners(d, s, k, rep);
	struct keep kp;
	if (keep_init(&kp, s) < 0)
		return d;
	diff_fdb(d, s, k->fdb, k->nfdb, 0, &kp, rep);
	diff_fdb(d, s, k->brfdb, k->nbrfdb, 1, &kp, rep);
	diff_neigh(d, s, k, &kp, rep);
	free(kp.by_mac);
	free(kp.by_ip);
	return d;
}

json_t *vx_kernel_json(const struct vx_k_state *k, const struct vx_snap *s,
		       const struct vx_k_ep_state *eps)
{
	char a[16], m[18];
	json_t *links = json_array(), *fdb = json_array(), *neigh = json_array(),
	       *epj = json_array();
	for (size_t i = 0; i < k->nlinks; i++) {
		const struct vx_k_link *l = &k->links[i];
		json_t *o = json_pack("{s:s, s:s, s:i, s:b}", "name", l->name, "kind", l->kind,
				      "mtu", l->mtu, "up", l->up);
		for (size_t j = 0; j < k->nlinks; j++)
			if (l->master && k->links[j].ifindex == l->master)
				json_object_set_new(o, "master", json_string(k->links[j].name));
		if (!strcmp(l->kind, "vxlan"))
			json_object_set_new(o, "vni", json_integer(l->vni));
		json_array_append_new(links, o);
	}
	for (size_t i = 0; i < k->nfdb; i++) {
		na_mac_fmt(k->fdb[i].mac, m, sizeof(m));
		na_ipv4_fmt(k->fdb[i].dst, a, sizeof(a));
		json_array_append_new(fdb, json_pack("{s:s, s:s}", "mac", m, "dst", a));
	}
	for (size_t i = 0; i < k->nneigh; i++) {
		na_mac_fmt(k->neigh[i].mac, m, sizeof(m));
		na_ipv4_fmt(k->neigh[i].ip, a, sizeof(a));
		json_array_append_new(neigh,
				      json_pack("{s:s, s:s, s:s}", "ip", a, "mac", m, "state",
						k->neigh[i].state & 0x80 ? "permanent" : "other"));
	}
	for (size_t i = 0; i < s->nlocal; i++) {
		json_t *ad = json_array();
		for (size_t j = 0; j < eps[i].naddrs; j++) {
			char c[24];
			na_cidr_fmt(eps[i].addrs[j].ip, eps[i].addrs[j].plen, c, sizeof(c));
			json_array_append_new(ad, json_string(c));
		}
		json_array_append_new(epj, json_pack("{s:s, s:s, s:s, s:b, s:i, s:b, s:o}", "name",
						     s->local[i].name, "netns", s->local[i].netns,
						     "ifname", s->local[i].ifname, "exists",
						     eps[i].exists, "mtu", eps[i].link.mtu, "up",
						     eps[i].link.up, "addresses", ad));
	}
	return json_pack("{s:s, s:b, s:o, s:o, s:o, s:o}", "netns", s->netns, "exists", k->exists,
			 "links", links, "fdb", fdb, "neighbours", neigh, "endpoints", epj);
}

void vx_repair_free(struct vx_repair *r)
{
	free(r->set);
	free(r->del);
	free(r->del_links);
	memset(r, 0, sizeof(*r));
}
