/* Local endpoints: a veth pair from N's bridge into a container namespace. */
#include "netagent/util.h"
#include "netagent/validate.h"
#include "vxlan/kernel_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_link.h>
#include <linux/veth.h>
#include <net/if.h>
#include <stdbool.h>
#include <string.h>

/* One request from N's namespace makes both ends: the host side enslaved to
 * br0 and up, the peer created directly in the target namespace under its
 * final name with its MAC and MTU. */
static int create_veth(na_nl_t *nl, const char *host, int master, int tfd, const char *ifname,
		       const uint8_t *mac, int mtu, na_err_t *err)
{
	struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC, .ifi_flags = IFF_UP, .ifi_change = IFF_UP};
	struct nlmsghdr *nlh =
	    na_nl_req(nl, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof(ifi));
	struct nlattr *info, *data, *peer;
	struct ifinfomsg *pifi;

	mnl_attr_put_strz(nlh, IFLA_IFNAME, host);
	mnl_attr_put_u32(nlh, IFLA_MTU, (uint32_t)mtu);
	mnl_attr_put_u32(nlh, IFLA_MASTER, (uint32_t)master);
	mnl_attr_put_u32(nlh, IFLA_GROUP, VX_K_GROUP);
	info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "veth");
	data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
	peer = mnl_attr_nest_start(nlh, VETH_INFO_PEER);
	/* The peer's attributes follow its own struct ifinfomsg. */
	pifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*pifi));
	/* No IFF_UP here: veth opens the peer before linking the pair and
	 * refuses with ENOTCONN; fix_target brings it up. */
	pifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, ifname);
	mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, (uint32_t)tfd);
	mnl_attr_put(nlh, IFLA_ADDRESS, 6, mac);
	mnl_attr_put_u32(nlh, IFLA_MTU, (uint32_t)mtu);
	mnl_attr_nest_end(nlh, peer);
	mnl_attr_nest_end(nlh, data);
	mnl_attr_nest_end(nlh, info);
	return na_nl_call(nl, nlh, NULL, NULL, err, "create veth %s/%s", host, ifname) < 0 ? -1 : 0;
}

static int set_mac(na_nl_t *nl, const struct vx_k_link *l, const uint8_t *mac, na_err_t *err)
{
	struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC, .ifi_index = l->ifindex};
	struct nlmsghdr *nlh = na_nl_req(nl, RTM_NEWLINK, 0, &ifi, sizeof(ifi));

	mnl_attr_put(nlh, IFLA_ADDRESS, 6, mac);
	return na_nl_call(nl, nlh, NULL, NULL, err, "set MAC of %s", l->name) < 0 ? -1 : 0;
}

static int add_addr(na_nl_t *nl, int ifindex, uint32_t ip, int plen, na_err_t *err)
{
	struct ifaddrmsg ifa = {
	    .ifa_family = AF_INET, .ifa_prefixlen = (uint8_t)plen, .ifa_index = (unsigned)ifindex};
	struct nlmsghdr *nlh =
	    na_nl_req(nl, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, &ifa, sizeof(ifa));
	uint32_t be = htonl(ip);
	char s[INET_ADDRSTRLEN];

	mnl_attr_put(nlh, IFA_LOCAL, 4, &be);
	mnl_attr_put(nlh, IFA_ADDRESS, 4, &be);
	if (na_nl_call(nl, nlh, NULL, NULL, err, "add address") < 0) {
		na_ipv4_fmt(ip, s, sizeof(s));
		na_err_prefix(err, "%s/%d", s, plen);
		return -1;
	}
	return 0;
}

/* The container side: name, MAC, MTU, up, address. */
static int fix_target(na_nl_t *tnl, const struct vx_k_ep *ep, const char *ifname,
		      const uint8_t *mac, int mtu, int *changed, na_err_t *err)
{
	struct vx_k_ep_state st;
	int c;

	*changed = 0;
	if (vxk_dump_ep(tnl, ifname, &st, err) < 0)
		return -1;
	if (!st.exists)
		return na_err_set(err, 500, "netlink_error", NULL, "%s vanished from %s", ifname,
				  ep->netns_path);
	if (memcmp(st.link.mac, mac, 6) != 0) {
		if (set_mac(tnl, &st.link, mac, err) < 0)
			return -1;
		*changed = 1;
	}
	if (vxk_fix_link(tnl, &st.link, mtu, -1, 1, &c, err) < 0)
		return -1;
	*changed |= c;
	for (size_t i = 0; i < st.naddrs; i++)
		if (st.addrs[i].ip == ep->ip && st.addrs[i].plen == ep->plen)
			return 0;
	if (add_addr(tnl, st.link.ifindex, ep->ip, ep->plen, err) < 0)
		return -1;
	*changed = 1;
	return 0;
}

/* Is `host` (in N) the veth whose other end is `t` (in the target)? Each
 * end's IFLA_LINK is the other's ifindex; checking both ways makes a
 * coincidence of indexes across namespaces practically impossible. */
static bool paired(const struct vx_k_link *host, const struct vx_k_link *t)
{
	return strcmp(host->kind, "veth") == 0 && strcmp(t->kind, "veth") == 0 &&
	       host->peer == t->ifindex && t->peer == host->ifindex;
}

int vx_k_endpoint_attach(const struct vx_k_net *n, const struct vx_k_ep *ep, int *changed,
			 na_err_t *err)
{
	cleanup_nl na_nl_t *nl = NULL, *tnl = NULL;
	cleanup_close int tfd = -1;
	const char *ifname = ep->ifname && *ep->ifname ? ep->ifname : VX_K_DEF_IFNAME;
	struct vx_k_link br, host, t;
	char hname[16];
	uint8_t mac[6];
	int mtu = vx_k_net_mtu(n), any = 0, found, have_host, have_t, c;

	if (changed)
		*changed = 0;
	if (strlen(ifname) >= IFNAMSIZ)
		return na_err_set(err, 422, "invalid_field", "ifname",
				  "interface name %s is longer than %d characters", ifname,
				  IFNAMSIZ - 1);
	if (ep->plen < 1 || ep->plen > 32)
		return na_err_set(err, 422, "invalid_field", "ip", "bad prefix length %d",
				  ep->plen);
	vx_k_veth_name(ep->name, hname);
	if (ep->mac)
		memcpy(mac, ep->mac, 6);
	else
		vx_k_mac_from_ip(ep->ip, mac);
	if (vxk_open(n->netns_path, &nl, NULL, err) < 0)
		goto fail;
	if (vxk_open(ep->netns_path, &tnl, &tfd, err) < 0)
		goto fail;
	if (ep->nsid) {
		na_ns_id_t now;
		if (na_netns_fd_id(tfd, &now, err) < 0)
			goto fail;
		if (!na_ns_id_eq(&now, ep->nsid)) {
			/* Someone mounted another namespace on the path: attaching
			 * there would wire the network into whatever it is now. */
			na_err_set(err, 409, "netns_changed", "netns",
				   "%s is no longer the namespace the endpoint was given",
				   ep->netns_path);
			goto fail;
		}
	}
	if (vxk_get_link(nl, VX_K_BRIDGE, &br, &found, err) < 0)
		goto fail;
	if (!found) {
		na_err_set(err, 500, "netlink_error", NULL, "%s has no " VX_K_BRIDGE,
			   n->netns_path);
		goto fail;
	}
	if (vxk_get_link(nl, hname, &host, &have_host, err) < 0 ||
	    vxk_get_link(tnl, ifname, &t, &have_t, err) < 0)
		goto fail;
	if (!(have_host && have_t && paired(&host, &t))) {
		if (have_t) {
			na_err_set(err, 409, "conflict", "ifname", "%s already has an interface %s",
				   ep->netns_path, ifname);
			goto fail;
		}
		/* A host side whose peer is elsewhere (container namespace
		 * replaced): start over. */
		if (have_host && vxk_del_link(nl, hname, NULL, err) < 0)
			goto fail;
		if (create_veth(nl, hname, br.ifindex, tfd, ifname, mac, mtu, err) < 0)
			goto fail;
		any = 1;
	} else {
		if (vxk_fix_link(nl, &host, mtu, br.ifindex, 1, &c, err) < 0)
			goto fail;
		any |= c;
	}
	if (fix_target(tnl, ep, ifname, mac, mtu, &c, err) < 0)
		goto fail;
	if (changed)
		*changed = any | c;
	return 0;
fail:
	na_err_prefix(err, "endpoint %s", ep->name);
	return -1;
}

int vx_k_endpoint_detach(const char *netns_path, const char *ep_name, int *removed, na_err_t *err)
{
	cleanup_nl na_nl_t *nl = NULL;
	char hname[16];
	int rc;

	if (removed)
		*removed = 0;
	vx_k_veth_name(ep_name, hname);
	rc = vxk_open(netns_path, &nl, NULL, err);
	if (rc == -ENOENT) {
		na_err_clear(err);
		return 0;
	}
	if (rc < 0 || vxk_del_link(nl, hname, removed, err) < 0) {
		na_err_prefix(err, "endpoint %s", ep_name);
		return -1;
	}
	return 0;
}

int vx_k_link_delete(const char *netns_path, const char *ifname, int *removed, na_err_t *err)
{
	cleanup_nl na_nl_t *nl = NULL;
	int rc;

	if (removed)
		*removed = 0;
	rc = vxk_open(netns_path, &nl, NULL, err);
	if (rc == -ENOENT) {
		na_err_clear(err);
		return 0;
	}
	return rc < 0 ? -1 : vxk_del_link(nl, ifname, removed, err);
}
