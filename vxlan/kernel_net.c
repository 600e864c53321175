/* Network namespace, bridge and VXLAN device of an overlay network. */
#include "netagent/util.h"
#include "vxlan/kernel_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_bridge.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <stdbool.h>
#include <string.h>

static int create_bridge(na_nl_t *nl, int mtu, na_err_t *err)
{
	struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC, .ifi_flags = IFF_UP, .ifi_change = IFF_UP};
	struct nlmsghdr *nlh =
	    na_nl_req(nl, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof(ifi));
	struct nlattr *info, *data;

	mnl_attr_put_strz(nlh, IFLA_IFNAME, VX_K_BRIDGE);
	mnl_attr_put_u32(nlh, IFLA_MTU, (uint32_t)mtu);
	mnl_attr_put_u32(nlh, IFLA_GROUP, VX_K_GROUP);
	info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "bridge");
	data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
	/* Nobody on the overlay runs STP, and with only static FDB entries on
	 * the VXLAN port IGMP snooping would just filter multicast. */
	mnl_attr_put_u32(nlh, IFLA_BR_STP_STATE, 0);
	mnl_attr_put_u8(nlh, IFLA_BR_MCAST_SNOOPING, 0);
	mnl_attr_nest_end(nlh, data);
	mnl_attr_nest_end(nlh, info);
	return na_nl_call(nl, nlh, NULL, NULL, err, "create " VX_K_BRIDGE) < 0 ? -1 : 0;
}

/* Sent from the agent's namespace (the calling thread's): the device is
 * registered in N's namespace (IFLA_NET_NS_FD) while its UDP socket is
 * opened in the namespace the request came from, i.e. on the underlay. */
static int create_vxlan(const struct vx_k_net *n, int nsfd, int master, na_err_t *err)
{
	cleanup_nl na_nl_t *ag = NULL;
	struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
	struct nlmsghdr *nlh;
	struct nlattr *info, *data;
	uint16_t port = n->port ? n->port : VX_K_PORT;
	uint32_t local = htonl(n->underlay->addr);
	int rc;

	if (na_nl_open(&ag, err) < 0)
		return -1;
	nlh = na_nl_req(ag, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof(ifi));
	mnl_attr_put_strz(nlh, IFLA_IFNAME, VX_K_VXLAN);
	mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, (uint32_t)nsfd);
	mnl_attr_put_u32(nlh, IFLA_MTU, (uint32_t)vx_k_net_mtu(n));
	mnl_attr_put_u32(nlh, IFLA_GROUP, VX_K_GROUP);
	/* Resolved in the namespace the device is created in: N's br0. */
	mnl_attr_put_u32(nlh, IFLA_MASTER, (uint32_t)master);
	info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "vxlan");
	data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
	mnl_attr_put_u32(nlh, IFLA_VXLAN_ID, n->vni);
	mnl_attr_put_u32(nlh, IFLA_VXLAN_LINK, (uint32_t)n->underlay->ifindex);
	mnl_attr_put(nlh, IFLA_VXLAN_LOCAL, sizeof(local), &local);
	mnl_attr_put_u16(nlh, IFLA_VXLAN_PORT, htons(port));
	/* Static FDB only: no learning from received frames (a container
	 * cannot spoof its way in); proxy: vxlan0 answers ARP itself from its
	 * neighbour table, so no ARP request crosses the underlay. */
	mnl_attr_put_u8(nlh, IFLA_VXLAN_LEARNING, 0);
	mnl_attr_put_u8(nlh, IFLA_VXLAN_PROXY, 1);
	mnl_attr_nest_end(nlh, data);
	mnl_attr_nest_end(nlh, info);
	rc = na_nl_call(ag, nlh, NULL, NULL, err, "create " VX_K_VXLAN " (VNI %u)", n->vni);
	if (rc == -EEXIST) {
		/* The name is free in N's namespace (we looked): the VNI (with
		 * this port) is taken by another device of the agent. */
		err->status = 409;
		snprintf(err->code, sizeof(err->code), "vni_in_use");
	}
	return rc < 0 ? -1 : 0;
}

/* neigh_suppress on, learning off on vxlan0's bridge port. */
static int fix_brport(na_nl_t *nl, const struct vx_k_link *vx, int *changed, na_err_t *err)
{
	struct ifinfomsg ifi = {.ifi_family = AF_BRIDGE, .ifi_index = vx->ifindex};
	struct nlmsghdr *nlh;
	struct nlattr *pi;

	*changed = 0;
	if (vx->brport && !vx->br_learning && vx->br_neigh_suppress)
		return 0;
	nlh = na_nl_req(nl, RTM_SETLINK, 0, &ifi, sizeof(ifi));
	pi = mnl_attr_nest_start(nlh, IFLA_PROTINFO);
	mnl_attr_put_u8(nlh, IFLA_BRPORT_LEARNING, 0);
	mnl_attr_put_u8(nlh, IFLA_BRPORT_NEIGH_SUPPRESS, 1);
	mnl_attr_nest_end(nlh, pi);
	if (na_nl_call(nl, nlh, NULL, NULL, err, "set bridge port flags of " VX_K_VXLAN) < 0)
		return -1;
	*changed = 1;
	return 0;
}

static bool vxlan_ok(const struct vx_k_net *n, const struct vx_k_link *vx)
{
	uint16_t port = n->port ? n->port : VX_K_PORT;
	return vx->port == port && vx->local == n->underlay->addr &&
	       vx->vx_link == n->underlay->ifindex && !vx->vx_learning && vx->vx_proxy;
}

static int ensure(const struct vx_k_net *n, int nsfd, na_nl_t *nl, int *changed, na_err_t *err)
{
	struct vxk_links ls = {0};
	struct vx_k_link br, vx;
	const struct vx_k_link *l;
	int mtu = vx_k_net_mtu(n), any = 0, c, rc = -1;

	*changed = 0;
	if (vxk_dump_links(nl, &ls, err) < 0)
		goto out;
	if ((l = vxk_find(&ls, "lo"))) {
		if (vxk_fix_link(nl, l, -1, -1, 1, &c, err) < 0)
			goto out;
		any |= c;
	}

	l = vxk_find(&ls, VX_K_BRIDGE);
	if (l && strcmp(l->kind, "bridge") != 0) {
		if (vxk_del_link(nl, VX_K_BRIDGE, NULL, err) < 0)
			goto out;
		l = NULL;
	}
	if (l) {
		br = *l;
		if (vxk_fix_link(nl, &br, mtu, -1, 1, &c, err) < 0)
			goto out;
		any |= c;
	} else {
		if (create_bridge(nl, mtu, err) < 0 ||
		    vxk_get_link(nl, VX_K_BRIDGE, &br, NULL, err) < 0)
			goto out;
		any = 1;
	}

	l = vxk_find(&ls, VX_K_VXLAN);
	if (l && strcmp(l->kind, "vxlan") == 0 && l->vni != n->vni) {
		na_err_set(err, 409, "conflict", "vni", VX_K_VXLAN " has VNI %u, not %u", l->vni,
			   n->vni);
		goto out;
	}
	if (l && (strcmp(l->kind, "vxlan") != 0 || !vxlan_ok(n, l))) {
		/* Underlay address or port changed (or someone else's device):
		 * the socket parameters of a VXLAN device cannot be changed. */
		if (vxk_del_link(nl, VX_K_VXLAN, NULL, err) < 0)
			goto out;
		l = NULL;
	}
	if (l) {
		vx = *l;
	} else {
		if (create_vxlan(n, nsfd, br.ifindex, err) < 0 ||
		    vxk_get_link(nl, VX_K_VXLAN, &vx, NULL, err) < 0)
			goto out;
		any = 1;
	}
	/* Master, then port flags (a new port starts with the defaults), then
	 * up: a new port never forwards with learning on. */
	if (vx.master != br.ifindex)
		vx.brport = 0;
	if (vxk_fix_link(nl, &vx, mtu, br.ifindex, -1, &c, err) < 0)
		goto out;
	any |= c;
	if (fix_brport(nl, &vx, &c, err) < 0)
		goto out;
	any |= c;
	if (vxk_fix_link(nl, &vx, -1, -1, 1, &c, err) < 0)
		goto out;
	any |= c;
	*changed = any;
	rc = 0;
out:
	free(ls.v);
	return rc;
}

int vx_k_network_create(const struct vx_k_net *n, int *changed, na_err_t *err)
{
	cleanup_nl na_nl_t *nl = NULL;
	cleanup_close int nsfd = -1;
	int mtu = vx_k_net_mtu(n), created, repaired;

	if (changed)
		*changed = 0;
	if (!n->underlay || !n->underlay->ifindex || !n->underlay->addr)
		return na_err_set(err, 503, "no_underlay", NULL,
				  "network %s: the underlay has no IPv4 address", n->netns_path);
	/* The kernel refuses a VXLAN MTU above the underlay's minus the
	 * encapsulation with a bare EINVAL; say why instead. */
	if (mtu < 68 || mtu > n->underlay->mtu - VX_K_OVERHEAD)
		return na_err_set(err, 422, "invalid_field", "mtu",
				  "MTU %d out of range 68..%d (underlay %s MTU %d - %d)", mtu,
				  n->underlay->mtu - VX_K_OVERHEAD, n->underlay->ifname,
				  n->underlay->mtu, VX_K_OVERHEAD);
	if (n->vni < 1 || n->vni > 0xffffff)
		return na_err_set(err, 422, "invalid_field", "vni", "VNI %u out of range", n->vni);
	if (na_netns_create(n->netns_path, &created, err) < 0 ||
	    vxk_open(n->netns_path, &nl, &nsfd, err) < 0)
		return -1;
	if (ensure(n, nsfd, nl, &repaired, err) < 0) {
		/* A namespace made by this call is not left half-built (e.g.
		 * VNI taken): the failed PUT leaves the kernel as it found it. */
		if (created) {
			na_err_t e2 = NA_ERR_INIT;
			vx_k_network_delete(n->netns_path, NULL, &e2);
		}
		na_err_prefix(err, "network %s", n->netns_path);
		return -1;
	}
	if (changed)
		*changed = repaired | created;
	return 0;
}

/* Everything but lo that the group delete did not catch (devices made by
 * someone else, or before groups were used), in one pipelined batch. */
static int del_rest(na_nl_t *nl, na_err_t *err)
{
	struct vxk_links ls = {0};
	int rc = vxk_dump_links(nl, &ls, err);

	for (size_t i = 0; rc == 0 && i < ls.n; i++) {
		if (strcmp(ls.v[i].name, "lo") == 0)
			continue;
		struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC, .ifi_index = ls.v[i].ifindex};
		na_nl_batch_add(nl, RTM_DELLINK, 0, &ifi, sizeof(ifi));
	}
	free(ls.v);
	/* ENODEV: a veth that went with its peer meanwhile. */
	if (rc == 0 && na_nl_batch_len(nl))
		rc = na_nl_batch_send(nl, ENODEV, NULL, NULL, NULL, err);
	return rc < 0 ? -1 : 0;
}

int vx_k_network_delete(const char *netns_path, int *removed, na_err_t *err)
{
	cleanup_nl na_nl_t *nl = NULL;
	struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
	struct nlmsghdr *nlh;
	int rc;

	if (removed)
		*removed = 0;
	rc = vxk_open(netns_path, &nl, NULL, err);
	if (rc == -ENOENT) {
		na_err_clear(err);
		return 0;
	}
	if (rc == -EINVAL) /* a stale file without a namespace mounted */
		return na_netns_delete(netns_path, removed, err);
	if (rc < 0)
		return -1;
	/* Explicitly and synchronously rather than leaving it to the
	 * namespace's teardown, which the kernel runs later from a work queue:
	 * until then vxlan0 would keep its VNI and UDP port (a re-create would
	 * fail) and veth peers would linger in the containers. */
	nlh = na_nl_req(nl, RTM_DELLINK, 0, &ifi, sizeof(ifi));
	mnl_attr_put_u32(nlh, IFLA_GROUP, VX_K_GROUP);
	rc = na_nl_call(nl, nlh, NULL, NULL, err, "delete links of %s", netns_path);
	if (rc < 0 && rc != -ENODEV)
		return -1;
	na_err_clear(err);
	if (del_rest(nl, err) < 0) {
		na_err_prefix(err, "delete links of %s", netns_path);
		return -1;
	}
	if (na_netns_delete(netns_path, NULL, err) < 0)
		return -1;
	if (removed)
		*removed = 1;
	return 0;
}
