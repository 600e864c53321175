/* Reading the kernel's view of an overlay network: links, FDB, neighbours. */
#include "netagent/util.h"
#include "netagent/validate.h"
#include "vxlan/kernel_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_addr.h>
#include <linux/if_bridge.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <net/if.h>
#include <stdbool.h>
#include <string.h>

/* A dump that races with a change is retried; more than this means the
 * namespace is being changed under us all the time. */
#define DUMP_TRIES 5

int vx_k_net_mtu(const struct vx_k_net *n)
{
	if (n->mtu > 0)
		return n->mtu;
	return (n->underlay ? n->underlay->mtu : 1500) - VX_K_OVERHEAD;
}

int vx_k_netns_path(char *buf, size_t n, const char *run_dir, const char *prefix, const char *name,
		    na_err_t *err)
{
	int l = snprintf(buf, n, "%s/netns/%s-%s", run_dir, prefix, name);
	if (l < 0 || (size_t)l >= n)
		return na_err_set(err, 500, "system_error", NULL, "namespace path too long: %s",
				  run_dir);
	return 0;
}

void vx_k_veth_name(const char *ep_name, char *out)
{
	uint64_t h = 14695981039346656037ull;
	for (const char *p = ep_name; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	/* FNV-1a barely stirs the low bits for names that differ in their
	 * last character; a murmur3 finalizer spreads them. */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	/* 3 + 12 = 15 characters: the most IFNAMSIZ allows. */
	snprintf(out, 16, "ve-%012llx", (unsigned long long)(h & 0xffffffffffffull));
}

void vx_k_mac_from_ip(uint32_t ip, uint8_t mac[6])
{
	mac[0] = 0x02;
	mac[1] = 0x84;
	mac[2] = (uint8_t)(ip >> 24);
	mac[3] = (uint8_t)(ip >> 16);
	mac[4] = (uint8_t)(ip >> 8);
	mac[5] = (uint8_t)ip;
}

int vxk_open(const char *path, na_nl_t **nl, int *nsfd, na_err_t *err)
{
	cleanup_close int fd = na_netns_open(path, NULL, err);
	int rc;

	if (fd < 0)
		return fd;
	rc = na_nl_open_in(fd, nl, err);
	if (rc < 0)
		return rc;
	if (nsfd)
		*nsfd = NA_STEAL_FD(fd);
	return 0;
}

static uint8_t get_u8(const struct nlattr *a, uint8_t def)
{
	return a && mnl_attr_get_payload_len(a) >= 1 ? mnl_attr_get_u8(a) : def;
}

static uint32_t get_be32(const struct nlattr *a)
{
	uint32_t be = 0;
	if (a && mnl_attr_get_payload_len(a) == 4)
		memcpy(&be, mnl_attr_get_payload(a), 4);
	return ntohl(be);
}

static void parse_linkinfo(const struct nlattr *info, struct vx_k_link *l)
{
	const struct nlattr *li[IFLA_INFO_MAX + 1];

	na_nl_parse_nested(info, li, IFLA_INFO_MAX);
	if (li[IFLA_INFO_KIND])
		snprintf(l->kind, sizeof(l->kind), "%s", mnl_attr_get_str(li[IFLA_INFO_KIND]));
	if (li[IFLA_INFO_DATA] && strcmp(l->kind, "vxlan") == 0) {
		const struct nlattr *vx[IFLA_VXLAN_MAX + 1];
		na_nl_parse_nested(li[IFLA_INFO_DATA], vx, IFLA_VXLAN_MAX);
		if (vx[IFLA_VXLAN_ID])
			l->vni = mnl_attr_get_u32(vx[IFLA_VXLAN_ID]);
		if (vx[IFLA_VXLAN_LINK])
			l->vx_link = (int)mnl_attr_get_u32(vx[IFLA_VXLAN_LINK]);
		if (vx[IFLA_VXLAN_PORT])
			l->port = ntohs(mnl_attr_get_u16(vx[IFLA_VXLAN_PORT]));
		l->local = get_be32(vx[IFLA_VXLAN_LOCAL]);
		l->vx_learning = get_u8(vx[IFLA_VXLAN_LEARNING], 1);
		l->vx_proxy = get_u8(vx[IFLA_VXLAN_PROXY], 0);
	}
	if (li[IFLA_INFO_SLAVE_KIND] &&
	    strcmp(mnl_attr_get_str(li[IFLA_INFO_SLAVE_KIND]), "bridge") == 0) {
		l->brport = 1;
		l->br_learning = 1;
		if (li[IFLA_INFO_SLAVE_DATA]) {
			const struct nlattr *bp[IFLA_BRPORT_MAX + 1];
			na_nl_parse_nested(li[IFLA_INFO_SLAVE_DATA], bp, IFLA_BRPORT_MAX);
			l->br_learning = get_u8(bp[IFLA_BRPORT_LEARNING], 1);
			l->br_neigh_suppress = get_u8(bp[IFLA_BRPORT_NEIGH_SUPPRESS], 0);
		}
	}
}

void vxk_parse_link(const struct nlmsghdr *nlh, struct vx_k_link *l)
{
	const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *tb[IFLA_MAX + 1];

	memset(l, 0, sizeof(*l));
	l->ifindex = ifi->ifi_index;
	l->up = !!(ifi->ifi_flags & IFF_UP);
	na_nl_parse(nlh, sizeof(*ifi), tb, IFLA_MAX);
	if (tb[IFLA_IFNAME])
		snprintf(l->name, sizeof(l->name), "%s", mnl_attr_get_str(tb[IFLA_IFNAME]));
	if (tb[IFLA_MTU])
		l->mtu = (int)mnl_attr_get_u32(tb[IFLA_MTU]);
	if (tb[IFLA_MASTER])
		l->master = (int)mnl_attr_get_u32(tb[IFLA_MASTER]);
	if (tb[IFLA_GROUP])
		l->group = mnl_attr_get_u32(tb[IFLA_GROUP]);
	if (tb[IFLA_LINK])
		l->peer = (int)mnl_attr_get_u32(tb[IFLA_LINK]);
	if (tb[IFLA_ADDRESS] && mnl_attr_get_payload_len(tb[IFLA_ADDRESS]) == 6)
		memcpy(l->mac, mnl_attr_get_payload(tb[IFLA_ADDRESS]), 6);
	if (tb[IFLA_LINKINFO])
		parse_linkinfo(tb[IFLA_LINKINFO], l);
}

static int links_cb(const struct nlmsghdr *nlh, void *data)
{
	struct vxk_links *ls = data;

	if (nlh->nlmsg_type != RTM_NEWLINK)
		return MNL_CB_OK;
	if (ls->n == ls->cap) {
		size_t cap = ls->cap ? ls->cap * 2 : 8;
		struct vx_k_link *v = realloc(ls->v, cap * sizeof(*v));
		if (!v)
			return MNL_CB_ERROR;
		ls->v = v;
		ls->cap = cap;
	}
	vxk_parse_link(nlh, &ls->v[ls->n++]);
	return MNL_CB_OK;
}

int vxk_dump_links(na_nl_t *nl, struct vxk_links *out, na_err_t *err)
{
	struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
	int rc = -EAGAIN;

	for (int i = 0; i < DUMP_TRIES && rc == -EAGAIN; i++) {
		out->n = 0;
		struct nlmsghdr *nlh = na_nl_req(nl, RTM_GETLINK, NLM_F_DUMP, &ifi, sizeof(ifi));
		mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
		rc = na_nl_call(nl, nlh, links_cb, out, err, "list links");
	}
	return rc < 0 ? -1 : 0;
}

const struct vx_k_link *vxk_find(const struct vxk_links *ls, const char *name)
{
	for (size_t i = 0; i < ls->n; i++)
		if (strcmp(ls->v[i].name, name) == 0)
			return &ls->v[i];
	return NULL;
}

static int link_cb(const struct nlmsghdr *nlh, void *data)
{
	if (nlh->nlmsg_type == RTM_NEWLINK)
		vxk_parse_link(nlh, data);
	return MNL_CB_OK;
}

int vxk_get_link(na_nl_t *nl, const char *name, struct vx_k_link *out, int *found, na_err_t *err)
{
	struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
	struct nlmsghdr *nlh = na_nl_req(nl, RTM_GETLINK, 0, &ifi, sizeof(ifi));
	int rc;

	if (found)
		*found = 0;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
	memset(out, 0, sizeof(*out));
	rc = na_nl_call(nl, nlh, link_cb, out, err, "get link %s", name);
	if (rc == -ENODEV) {
		na_err_clear(err);
		return 0;
	}
	if (rc < 0)
		return -1;
	if (found)
		*found = 1;
	return 0;
}

int vxk_fix_link(na_nl_t *nl, const struct vx_k_link *cur, int mtu, int master, int up,
		 int *changed, na_err_t *err)
{
	struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC, .ifi_index = cur->ifindex};
	bool mtu_bad = mtu > 0 && cur->mtu != mtu;
	bool master_bad = master >= 0 && cur->master != master;
	bool up_bad = up >= 0 && cur->up != !!up;
	struct nlmsghdr *nlh;

	if (changed)
		*changed = 0;
	if (!mtu_bad && !master_bad && !up_bad)
		return 0;
	if (up_bad) {
		ifi.ifi_change = IFF_UP;
		ifi.ifi_flags = up ? IFF_UP : 0;
	}
	nlh = na_nl_req(nl, RTM_NEWLINK, 0, &ifi, sizeof(ifi));
	if (mtu_bad)
		mnl_attr_put_u32(nlh, IFLA_MTU, (uint32_t)mtu);
	if (master_bad)
		mnl_attr_put_u32(nlh, IFLA_MASTER, (uint32_t)master);
	if (na_nl_call(nl, nlh, NULL, NULL, err, "set link %s", cur->name) < 0)
		return -1;
	if (changed)
		*changed = 1;
	return 0;
}

int vxk_del_link(na_nl_t *nl, const char *name, int *removed, na_err_t *err)
{
	struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
	struct nlmsghdr *nlh = na_nl_req(nl, RTM_DELLINK, 0, &ifi, sizeof(ifi));
	int rc;

	if (removed)
		*removed = 0;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	rc = na_nl_call(nl, nlh, NULL, NULL, err, "delete link %s", name);
	if (rc == -ENODEV) {
		na_err_clear(err);
		return 0;
	}
	if (rc < 0)
		return -1;
	if (removed)
		*removed = 1;
	return 0;
}

/* ---- vx_k_network_dump ---- */

struct grow {
	void **v;
	size_t *n, cap, size;
};

static void *grow_push(struct grow *g)
{
	if (*g->n == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 64;
		void *v = realloc(*g->v, cap * g->size);
		if (!v)
			return NULL;
		*g->v = v;
		g->cap = cap;
	}
	return (char *)*g->v + (*g->n)++ * g->size;
}

struct neigh_ctx {
	int ifindex;
	struct grow g, br; /* br: the bridge's entries on the port (AF_BRIDGE) */
};

static int fdb_cb(const struct nlmsghdr *nlh, void *data)
{
	struct neigh_ctx *c = data;
	const struct ndmsg *nd = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *tb[NDA_MAX + 1];
	struct vx_k_fdb *f;

	if (nlh->nlmsg_type != RTM_NEWNEIGH || nd->ndm_family != AF_BRIDGE ||
	    nd->ndm_ifindex != c->ifindex)
		return MNL_CB_OK;
	/* One dump, two tables: vxlan0's own (NTF_SELF: MAC -> VTEP) and the
	 * bridge's entries on the vxlan0 port (no flag, an NDA_MASTER attribute:
	 * the bridge does not set NTF_MASTER in dumps), minus the port's own
	 * address, which the bridge keeps as a permanent local entry. */
	int self = nd->ndm_flags & NTF_SELF;
	if (!self && (nd->ndm_state & NUD_PERMANENT))
		return MNL_CB_OK;
	na_nl_parse(nlh, sizeof(*nd), tb, NDA_MAX);
	if (!tb[NDA_LLADDR] || mnl_attr_get_payload_len(tb[NDA_LLADDR]) != 6 ||
	    (!self && !tb[NDA_MASTER]))
		return MNL_CB_OK;
	if (!(f = grow_push(self ? &c->g : &c->br)))
		return MNL_CB_ERROR;
	memcpy(f->mac, mnl_attr_get_payload(tb[NDA_LLADDR]), 6);
	f->dst = get_be32(tb[NDA_DST]);
	f->state = nd->ndm_state;
	return MNL_CB_OK;
}

static int neigh_cb(const struct nlmsghdr *nlh, void *data)
{
	struct neigh_ctx *c = data;
	const struct ndmsg *nd = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *tb[NDA_MAX + 1];
	struct vx_k_neigh *e;

	if (nlh->nlmsg_type != RTM_NEWNEIGH || nd->ndm_family != AF_INET ||
	    nd->ndm_ifindex != c->ifindex)
		return MNL_CB_OK;
	na_nl_parse(nlh, sizeof(*nd), tb, NDA_MAX);
	if (!tb[NDA_DST])
		return MNL_CB_OK;
	if (!(e = grow_push(&c->g)))
		return MNL_CB_ERROR;
	memset(e, 0, sizeof(*e));
	e->ip = get_be32(tb[NDA_DST]);
	if (tb[NDA_LLADDR] && mnl_attr_get_payload_len(tb[NDA_LLADDR]) == 6)
		memcpy(e->mac, mnl_attr_get_payload(tb[NDA_LLADDR]), 6);
	e->state = nd->ndm_state;
	return MNL_CB_OK;
}

static int dump_neigh(na_nl_t *nl, int family, int ifindex, struct vx_k_state *s, na_err_t *err)
{
	struct ndmsg nd = {.ndm_family = (uint8_t)family};
	struct neigh_ctx c = {.ifindex = ifindex};
	int rc = -EAGAIN;

	if (family == AF_BRIDGE) {
		c.g = (struct grow){(void **)&s->fdb, &s->nfdb, 0, sizeof(*s->fdb)};
		c.br = (struct grow){(void **)&s->brfdb, &s->nbrfdb, 0, sizeof(*s->brfdb)};
		nd.ndm_ifindex = ifindex; /* strict dumps: only this port */
	} else {
		c.g = (struct grow){(void **)&s->neigh, &s->nneigh, 0, sizeof(*s->neigh)};
	}
	for (int i = 0; i < DUMP_TRIES && rc == -EAGAIN; i++) {
		*c.g.n = 0;
		if (c.br.n)
			*c.br.n = 0;
		struct nlmsghdr *nlh = na_nl_req(nl, RTM_GETNEIGH, NLM_F_DUMP, &nd, sizeof(nd));
		if (family != AF_BRIDGE)
			mnl_attr_put_u32(nlh, NDA_IFINDEX, (uint32_t)ifindex);
		rc = na_nl_call(nl, nlh, family == AF_BRIDGE ? fdb_cb : neigh_cb, &c, err,
				"list %s of " VX_K_VXLAN,
				family == AF_BRIDGE ? "fdb" : "neighbours");
	}
	return rc < 0 ? -1 : 0;
}

int vx_k_network_dump(const char *netns_path, struct vx_k_state *out, na_err_t *err)
{
	cleanup_nl na_nl_t *nl = NULL;
	struct vxk_links ls = {0};
	const struct vx_k_link *vx;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = vxk_open(netns_path, &nl, NULL, err);
	if (rc == -ENOENT) {
		na_err_clear(err);
		return 0;
	}
	if (rc < 0)
		return -1;
	out->exists = 1;
	if (vxk_dump_links(nl, &ls, err) < 0) {
		free(ls.v);
		return -1;
	}
	out->links = ls.v;
	out->nlinks = ls.n;
	vx = vxk_find(&ls, VX_K_VXLAN);
	if (vx && (dump_neigh(nl, AF_BRIDGE, vx->ifindex, out, err) < 0 ||
		   dump_neigh(nl, AF_INET, vx->ifindex, out, err) < 0)) {
		vx_k_state_free(out);
		return -1;
	}
	return 0;
}

void vx_k_state_free(struct vx_k_state *s)
{
	free(s->links);
	free(s->fdb);
	free(s->brfdb);
	free(s->neigh);
	memset(s, 0, sizeof(*s));
}

const struct vx_k_link *vx_k_state_link(const struct vx_k_state *s, const char *name)
{
	struct vxk_links ls = {.v = s->links, .n = s->nlinks};
	return vxk_find(&ls, name);
}

static int addr_cb(const struct nlmsghdr *nlh, void *data)
{
	struct vx_k_ep_state *st = data;
	const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *tb[IFA_MAX + 1];

	if (nlh->nlmsg_type != RTM_NEWADDR || ifa->ifa_family != AF_INET ||
	    (int)ifa->ifa_index != st->link.ifindex || st->naddrs >= NA_ARRAY_SIZE(st->addrs))
		return MNL_CB_OK;
	na_nl_parse(nlh, sizeof(*ifa), tb, IFA_MAX);
	const struct nlattr *a = tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
	if (!a)
		return MNL_CB_OK;
	st->addrs[st->naddrs].ip = get_be32(a);
	st->addrs[st->naddrs].plen = ifa->ifa_prefixlen;
	st->naddrs++;
	return MNL_CB_OK;
}

int vxk_dump_ep(na_nl_t *nl, const char *ifname, struct vx_k_ep_state *out, na_err_t *err)
{
	struct ifaddrmsg ifa = {.ifa_family = AF_INET};
	int rc;

	memset(out, 0, sizeof(*out));
	if (vxk_get_link(nl, ifname, &out->link, &out->exists, err) < 0)
		return -1;
	if (!out->exists)
		return 0;
	ifa.ifa_index = (unsigned)out->link.ifindex;
	rc = -EAGAIN;
	for (int i = 0; i < DUMP_TRIES && rc == -EAGAIN; i++) {
		out->naddrs = 0;
		struct nlmsghdr *nlh = na_nl_req(nl, RTM_GETADDR, NLM_F_DUMP, &ifa, sizeof(ifa));
		rc = na_nl_call(nl, nlh, addr_cb, out, err, "list addresses of %s", ifname);
	}
	return rc < 0 ? -1 : 0;
}

int vx_k_endpoint_dump(const char *target_netns, const char *ifname, struct vx_k_ep_state *out,
		       na_err_t *err)
{
	cleanup_nl na_nl_t *nl = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = vxk_open(target_netns, &nl, NULL, err);
	if (rc == -ENOENT) {
		na_err_clear(err);
		return 0;
	}
	if (rc < 0)
		return -1;
	return vxk_dump_ep(nl, ifname ? ifname : VX_K_DEF_IFNAME, out, err);
}
