/* Addresses over rtnetlink (RTM_NEWADDR / RTM_DELADDR / RTM_GETADDR), the
 * way iproute2's `ip addr` builds them: IFA_LOCAL and IFA_ADDRESS both carry
 * the address (no peer), IFA_FLAGS carries the flags that do not fit the
 * 8-bit ifa_flags, lifetimes travel as IFA_CACHEINFO. */
#include "netagent/nl.h"
#include "netagent/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <string.h>

#ifndef INFINITY_LIFE_TIME
#define INFINITY_LIFE_TIME 0xFFFFFFFFu
#endif

struct ifindex_q {
	const char *name;
	int ifindex;
};

static int link_cb(const struct nlmsghdr *nlh, void *data)
{
	struct ifindex_q *q = data;
	const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);

	if (nlh->nlmsg_type != RTM_NEWLINK || mnl_nlmsg_get_payload_len(nlh) < sizeof(*ifi))
		return MNL_CB_OK;
	q->ifindex = ifi->ifi_index;
	return MNL_CB_OK;
}

int na_nl_ifindex(na_nl_t *nl, const char *ifname, na_err_t *err)
{
	struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
	struct ifindex_q q = {ifname, 0};
	struct nlmsghdr *nlh;
	int rc;

	if (!ifname || !*ifname || strlen(ifname) >= IFNAMSIZ)
		return na_err_set(err, 422, "invalid_field", "interface",
				  "interface name must have 1..15 characters"),
		       -EINVAL;
	nlh = na_nl_req(nl, RTM_GETLINK, 0, &ifi, sizeof(ifi));
	mnl_attr_put_strz(nlh, IFLA_IFNAME, ifname);
	/* Only the index is wanted: skip the per-VF and stats blobs. */
	mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
	rc = na_nl_call(nl, nlh, link_cb, &q, err, "look up interface %s", ifname);
	if (rc == -ENODEV) {
		na_err_clear(err);
		return 0;
	}
	return rc < 0 ? rc : q.ifindex;
}

static struct ifaddrmsg ifa_hdr(int ifindex, const na_addr_t *a)
{
	struct ifaddrmsg ifm = {
	    .ifa_family = (unsigned char)a->family,
	    .ifa_prefixlen =
		(unsigned char)(a->plen >= 0 ? a->plen : (a->family == AF_INET ? 32 : 128)),
	    .ifa_scope = RT_SCOPE_UNIVERSE,
	    .ifa_index = (unsigned)ifindex,
	};
	return ifm;
}

static int addr_check(const na_addr_t *a, na_err_t *err)
{
	if (a->family != AF_INET && a->family != AF_INET6)
		return na_err_set(err, 500, "internal_error", NULL, "address family unset");
	return 0;
}

int na_nl_addr_add(na_nl_t *nl, int ifindex, const na_addr_t *a, const na_nl_addr_opts_t *o,
		   na_err_t *err)
{
	static const na_nl_addr_opts_t none = {0};
	char txt[NA_ADDR_STRLEN];
	struct ifaddrmsg ifm = ifa_hdr(ifindex, a);
	struct ifa_cacheinfo ci = {0};
	struct nlmsghdr *nlh;
	size_t len = na_addr_len(a);

	if (addr_check(a, err) < 0)
		return -EINVAL;
	if (!o)
		o = &none;
	ifm.ifa_flags = (unsigned char)(o->flags & 0xff);
	nlh = na_nl_req(nl, RTM_NEWADDR, NLM_F_CREATE | (o->replace ? NLM_F_REPLACE : NLM_F_EXCL),
			&ifm, sizeof(ifm));
	mnl_attr_put(nlh, IFA_LOCAL, len, a->u.b);
	mnl_attr_put(nlh, IFA_ADDRESS, len, a->u.b);
	mnl_attr_put_u32(nlh, IFA_FLAGS, o->flags);
	/* Always sent, also for "forever": a renewal of a finite address
	 * to forever must say so, the kernel keeps old lifetimes otherwise. */
	ci.ifa_valid = o->valid_lft ? o->valid_lft : INFINITY_LIFE_TIME;
	ci.ifa_prefered = o->preferred_lft ? o->preferred_lft : ci.ifa_valid;
	if (ci.ifa_prefered > ci.ifa_valid)
		ci.ifa_prefered = ci.ifa_valid;
	mnl_attr_put(nlh, IFA_CACHEINFO, sizeof(ci), &ci);
	na_addr_fmt(a, txt, sizeof(txt));
	return na_nl_call(nl, nlh, NULL, NULL, err, "%s address %s on ifindex %d",
			  o->replace ? "renew" : "add", txt, ifindex);
}

int na_nl_addr_del(na_nl_t *nl, int ifindex, const na_addr_t *a, int *removed, na_err_t *err)
{
	char txt[NA_ADDR_STRLEN];
	struct ifaddrmsg ifm = ifa_hdr(ifindex, a);
	struct nlmsghdr *nlh;
	size_t len = na_addr_len(a);
	int rc;

	if (addr_check(a, err) < 0)
		return -EINVAL;
	nlh = na_nl_req(nl, RTM_DELADDR, 0, &ifm, sizeof(ifm));
	mnl_attr_put(nlh, IFA_LOCAL, len, a->u.b);
	/* IPv4 matches IFA_ADDRESS against the prefix length too; without a
	 * known length match on the local address alone. */
	if (a->family == AF_INET6 || a->plen >= 0)
		mnl_attr_put(nlh, IFA_ADDRESS, len, a->u.b);
	na_addr_fmt(a, txt, sizeof(txt));
	rc =
	    na_nl_call(nl, nlh, NULL, NULL, err, "remove address %s from ifindex %d", txt, ifindex);
	if (removed)
		*removed = rc == 0;
	if (rc == -EADDRNOTAVAIL) {
		na_err_clear(err);
		return 0;
	}
	return rc < 0 ? rc : 0;
}

struct addr_list {
	int ifindex, family;
	na_nl_addr_info_t *out;
	size_t max, n;
};

/* Attributes come from the kernel, but their lengths are still checked:
 * a short IFA_CACHEINFO would be read past its end otherwise. */
static int addr_cb(const struct nlmsghdr *nlh, void *data)
{
	struct addr_list *l = data;
	const struct ifaddrmsg *ifm = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *tb[IFA_MAX + 1], *ad;
	na_nl_addr_info_t info;
	size_t alen;

	if (nlh->nlmsg_type != RTM_NEWADDR || mnl_nlmsg_get_payload_len(nlh) < sizeof(*ifm))
		return MNL_CB_OK;
	if ((ifm->ifa_family != AF_INET && ifm->ifa_family != AF_INET6) ||
	    (l->family && ifm->ifa_family != l->family) ||
	    (l->ifindex && (int)ifm->ifa_index != l->ifindex))
		return MNL_CB_OK;
	na_nl_parse(nlh, sizeof(*ifm), tb, IFA_MAX);
	alen = ifm->ifa_family == AF_INET ? 4 : 16;
	ad = tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
	if (!ad || mnl_attr_get_payload_len(ad) != alen)
		return MNL_CB_OK;
	memset(&info, 0, sizeof(info));
	info.addr.family = ifm->ifa_family;
	info.addr.plen = ifm->ifa_prefixlen;
	memcpy(info.addr.u.b, mnl_attr_get_payload(ad), alen);
	info.ifindex = (int)ifm->ifa_index;
	info.flags = ifm->ifa_flags;
	if (tb[IFA_FLAGS] && mnl_attr_validate(tb[IFA_FLAGS], MNL_TYPE_U32) == 0)
		info.flags = mnl_attr_get_u32(tb[IFA_FLAGS]);
	info.valid_lft = info.preferred_lft = INFINITY_LIFE_TIME;
	if (tb[IFA_CACHEINFO] &&
	    mnl_attr_get_payload_len(tb[IFA_CACHEINFO]) >= sizeof(struct ifa_cacheinfo)) {
		const struct ifa_cacheinfo *ci = mnl_attr_get_payload(tb[IFA_CACHEINFO]);
		info.valid_lft = ci->ifa_valid;
		info.preferred_lft = ci->ifa_prefered;
	}
	if (l->n < l->max)
		l->out[l->n] = info;
	l->n++;
	return MNL_CB_OK;
}

int na_nl_addr_list(na_nl_t *nl, int ifindex, int family, na_nl_addr_info_t *out, size_t max,
		    size_t *n, na_err_t *err)
{
	struct ifaddrmsg ifm = {.ifa_family = (unsigned char)family,
				.ifa_index = (unsigned)(ifindex > 0 ? ifindex : 0)};
	struct addr_list l = {ifindex, family, out, max, 0};
	int rc;

	for (int tries = 0; tries < 5; tries++) {
		struct nlmsghdr *nlh = na_nl_req(nl, RTM_GETADDR, NLM_F_DUMP, &ifm, sizeof(ifm));
		l.n = 0;
		rc = na_nl_call(nl, nlh, addr_cb, &l, err, "list addresses");
		if (rc != -EAGAIN)
			break;
		na_err_clear(err);
	}
	if (rc < 0)
		return rc;
	if (n)
		*n = l.n;
	return 0;
}
