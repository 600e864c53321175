/* Underlay discovery: which interface, address and MTU VXLAN traffic uses. */
#include "netagent/agent.h"
#include "netagent/nl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <string.h>

struct defroute {
	int ifindex;
	uint32_t prio;
};

static int route_cb(const struct nlmsghdr *nlh, void *data)
{
	struct defroute *d = data;
	const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *tb[RTA_MAX + 1];
	uint32_t table, prio = 0;
	int oif = 0;

	if (nlh->nlmsg_type != RTM_NEWROUTE || rtm->rtm_family != AF_INET ||
	    rtm->rtm_dst_len != 0 || rtm->rtm_type != RTN_UNICAST)
		return MNL_CB_OK;
	na_nl_parse(nlh, sizeof(*rtm), tb, RTA_MAX);
	table = tb[RTA_TABLE] ? mnl_attr_get_u32(tb[RTA_TABLE]) : rtm->rtm_table;
	if (table != RT_TABLE_MAIN)
		return MNL_CB_OK;
	if (tb[RTA_PRIORITY])
		prio = mnl_attr_get_u32(tb[RTA_PRIORITY]);
	if (tb[RTA_OIF]) {
		oif = (int)mnl_attr_get_u32(tb[RTA_OIF]);
	} else if (tb[RTA_MULTIPATH] &&
		   mnl_attr_get_payload_len(tb[RTA_MULTIPATH]) >= sizeof(struct rtnexthop)) {
		/* ECMP default: the first hop's device carries our traffic as
		 * well as any, and the address we pick stays stable. */
		const struct rtnexthop *nh = mnl_attr_get_payload(tb[RTA_MULTIPATH]);
		oif = nh->rtnh_ifindex;
	}
	if (oif > 0 && (!d->ifindex || prio < d->prio)) {
		d->ifindex = oif;
		d->prio = prio;
	}
	return MNL_CB_OK;
}

static int link_cb(const struct nlmsghdr *nlh, void *data)
{
	na_underlay_t *u = data;
	const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *tb[IFLA_MAX + 1];

	if (nlh->nlmsg_type != RTM_NEWLINK)
		return MNL_CB_OK;
	na_nl_parse(nlh, sizeof(*ifi), tb, IFLA_MAX);
	u->ifindex = ifi->ifi_index;
	if (tb[IFLA_IFNAME])
		snprintf(u->ifname, sizeof(u->ifname), "%s", mnl_attr_get_str(tb[IFLA_IFNAME]));
	if (tb[IFLA_MTU])
		u->mtu = (int)mnl_attr_get_u32(tb[IFLA_MTU]);
	return MNL_CB_OK;
}

static int addr_cb(const struct nlmsghdr *nlh, void *data)
{
	na_underlay_t *u = data;
	const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *tb[IFA_MAX + 1], *a;

	if (nlh->nlmsg_type != RTM_NEWADDR || ifa->ifa_family != AF_INET ||
	    (int)ifa->ifa_index != u->ifindex || (ifa->ifa_flags & IFA_F_SECONDARY) || u->addr)
		return MNL_CB_OK;
	na_nl_parse(nlh, sizeof(*ifa), tb, IFA_MAX);
	a = tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
	if (a && mnl_attr_get_payload_len(a) == 4) {
		uint32_t be;
		memcpy(&be, mnl_attr_get_payload(a), 4);
		u->addr = ntohl(be);
	}
	return MNL_CB_OK;
}

int na_underlay_detect(const char *ifname, na_underlay_t *out, na_err_t *err)
{
	cleanup_nl na_nl_t *nl = NULL;
	struct nlmsghdr *nlh;
	struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
	int rc;

	memset(out, 0, sizeof(*out));
	if (na_nl_open(&nl, err) < 0)
		return -1;
	if (!ifname) {
		struct defroute d = {0};
		struct rtmsg rtm = {.rtm_family = AF_INET};
		nlh = na_nl_req(nl, RTM_GETROUTE, NLM_F_DUMP, &rtm, sizeof(rtm));
		if (na_nl_call(nl, nlh, route_cb, &d, err, "list routes") < 0)
			return -1;
		if (!d.ifindex)
			return na_err_set(err, 503, "no_underlay", "underlay_if",
					  "no default route: pass --underlay-if");
		ifi.ifi_index = d.ifindex;
	}
	nlh = na_nl_req(nl, RTM_GETLINK, 0, &ifi, sizeof(ifi));
	if (ifname)
		mnl_attr_put_strz(nlh, IFLA_IFNAME, ifname);
	mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
	rc = na_nl_call(nl, nlh, link_cb, out, err, "underlay interface %s",
			ifname ? ifname : "of the default route");
	if (rc == -ENODEV) {
		err->status = 503;
		snprintf(err->code, sizeof(err->code), "no_underlay");
		snprintf(err->field, sizeof(err->field), "underlay_if");
	}
	if (rc < 0)
		return -1;
	struct ifaddrmsg ifa = {.ifa_family = AF_INET, .ifa_index = (unsigned)out->ifindex};
	nlh = na_nl_req(nl, RTM_GETADDR, NLM_F_DUMP, &ifa, sizeof(ifa));
	if (na_nl_call(nl, nlh, addr_cb, out, err, "addresses of %s", out->ifname) < 0)
		return -1;
	return 0;
}
