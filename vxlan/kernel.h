/* Kernel objects of overlay networks (SPEC §2), through netlink only.
 *
 * Network N with VNI v lives in its own network namespace (netns_path,
 * normally <run_dir>/netns/<agent name>-<N>) holding bridge "br0" and VXLAN
 * device "vxlan0". vxlan0 is created by a request made from the agent's
 * namespace, so its UDP socket (and VNI reservation) lives on the underlay,
 * and placed into N's namespace by that same request (IFLA_NET_NS_FD): the
 * kernel's "create here, then move" in one atomic step, with no temporary
 * name that a crash could leave behind.
 *
 * Every function runs on a namespace worker thread that is in the agent's
 * namespace (submit with netns_path NULL); it enters other namespaces by
 * itself. Functions return 0 on success, or < 0 and fill err (always the
 * last parameter) on failure; no other value. What else a caller may need
 * to know comes back through an out-parameter just before err, which may be
 * NULL: the ones that make things so (create/attach) set *changed to 1 when
 * they changed something in the kernel and 0 when everything already was as
 * asked (idempotent PUT), which makes them the repair path of reconcile as
 * well; the deletes set *removed, and deleting what is absent succeeds. */
#ifndef VX_KERNEL_H
#define VX_KERNEL_H

#include <stddef.h>
#include <stdint.h>

#include "netagent/agent.h"
#include "netagent/err.h"
#include "netagent/nl.h"

#define VX_K_BRIDGE	"br0"
#define VX_K_VXLAN	"vxlan0"
#define VX_K_PORT	4789
#define VX_K_OVERHEAD	50 /* IPv4 + UDP + VXLAN + inner Ethernet */
#define VX_K_DEF_IFNAME "eth0"
/* Link group of every device the agent makes in a network's namespace
 * (br0, vxlan0, host-side veths): one group RTM_DELLINK removes them all in a
 * single unregister batch, i.e. one RCU grace period instead of one each. */
#define VX_K_GROUP 0x7678

struct vx_k_net {
	const char *netns_path;	       /* N's namespace file */
	uint32_t vni;		       /* 1..16777215 */
	uint16_t port;		       /* UDP destination port; 0 = 4789 */
	int mtu;		       /* 0 = underlay MTU - 50 */
	const na_underlay_t *underlay; /* ifindex, IPv4 address, MTU */
};

/* MTU of vxlan0, br0 and every veth of the network. */
int vx_k_net_mtu(const struct vx_k_net *n);
/* "<run_dir>/netns/<prefix>-<name>"; < 0 when it does not fit. */
int vx_k_netns_path(char *buf, size_t n, const char *run_dir, const char *prefix, const char *name,
		    na_err_t *err);

/* Namespace, lo up, br0, vxlan0 (VNI, port, local = underlay address, dev =
 * underlay, learning off, proxy ARP on; bridge port neigh_suppress on,
 * learning off), MTUs, all up. Creates what is missing and repairs what
 * drifted; recreates vxlan0 if its port/local/underlay changed (its FDB and
 * neighbours are lost then: reprogram remotes whenever *changed is 1).
 * vxlan0 with another VNI: 409 "conflict"; VNI used by another device of
 * this agent's namespace: 409 "vni_in_use". */
int vx_k_network_create(const struct vx_k_net *n, int *changed, na_err_t *err);
/* Deletes every link of the namespace (so vxlan0 releases its VNI and UDP
 * port now, not when the kernel gets round to destroying the namespace;
 * veth peers in containers go too), unmounts and unlinks it. *removed: 0
 * when it did not exist. */
int vx_k_network_delete(const char *netns_path, int *removed, na_err_t *err);

struct vx_k_ep {
	const char *name;	/* endpoint name: the host-side veth is named from it */
	const char *netns_path; /* target (container) namespace */
	const char *ifname;	/* NULL = "eth0" */
	uint32_t ip;		/* IPv4, host byte order */
	int plen;		/* prefix length of the subnet */
	const uint8_t *mac;	/* NULL = derived from ip (vx_k_mac_from_ip) */
	/* Non-NULL: the target must still be this namespace (pinned when the
	 * endpoint was validated), else 409 "netns_changed". */
	const na_ns_id_t *nsid;
};

/* Host-side veth name: "ve-" + 12 hex digits of a hash of the endpoint
 * name; only needs to be unique inside N's namespace. out: >= 16 bytes. */
void vx_k_veth_name(const char *ep_name, char *out);
/* 02:84:a:b:c:d from a.b.c.d, as SAND does. */
void vx_k_mac_from_ip(uint32_t ip, uint8_t mac[6]);

/* veth pair: host side in N's namespace enslaved to br0, peer in the target
 * namespace named ifname with the MAC, MTU and ip/plen (the kernel adds the
 * connected route with it), both up. Repairs each of those when drifted. An
 * ifname in the target that is not this endpoint's peer: 409 "conflict". */
int vx_k_endpoint_attach(const struct vx_k_net *n, const struct vx_k_ep *ep, int *changed,
			 na_err_t *err);
/* Deletes the veth pair (both ends). *removed: 0 when it did not exist. */
int vx_k_endpoint_detach(const char *netns_path, const char *ep_name, int *removed, na_err_t *err);
/* Deletes link ifname of N's namespace. *removed: 1 deleted, 0 absent. */
int vx_k_link_delete(const char *netns_path, const char *ifname, int *removed, na_err_t *err);

struct vx_k_remote {
	uint32_t ip;	/* overlay IPv4, host byte order */
	uint8_t mac[6]; /* endpoint MAC */
	uint32_t vtep;	/* underlay IPv4 of its host, host byte order */
};

/* Permanent FDB entry mac -> vtep and permanent neighbour ip -> mac on
 * vxlan0, replacing what was there (proxy ARP answers local endpoints from
 * that neighbour table, so their ARP never leaves the host). The _many
 * variants pipeline every request over one socket; every entry is tried,
 * the first failure is reported. Deleting an absent entry is no error (vtep
 * is ignored by deletes). */
int vx_k_remote_set(const char *netns_path, const struct vx_k_remote *r, na_err_t *err);
int vx_k_remote_del(const char *netns_path, const struct vx_k_remote *r, na_err_t *err);
int vx_k_remote_set_many(const char *netns_path, const struct vx_k_remote *r, size_t n,
			 na_err_t *err);
int vx_k_remote_del_many(const char *netns_path, const struct vx_k_remote *r, size_t n,
			 na_err_t *err);

/* ---- kernel view, for `net inspect` and reconcile diffs ---- */

struct vx_k_link {
	char name[16];
	char kind[16]; /* "bridge", "vxlan", "veth", "" for lo */
	int ifindex;
	int mtu;
	int up;	    /* IFF_UP */
	int master; /* ifindex of the bridge, 0 when none */
	uint32_t group;
	int peer; /* IFLA_LINK: veth peer's ifindex (in its namespace) */
	uint8_t mac[6];
	/* kind "vxlan" */
	uint32_t vni, local; /* local: host byte order */
	uint16_t port;
	int vx_link; /* underlay ifindex (in the agent's namespace) */
	int vx_learning, vx_proxy;
	/* bridge ports */
	int brport, br_learning, br_neigh_suppress;
};

struct vx_k_fdb {
	uint8_t mac[6];
	uint32_t dst; /* VTEP, host byte order; 0 when none */
	uint16_t state;
};

struct vx_k_neigh {
	uint32_t ip; /* host byte order */
	uint8_t mac[6];
	uint16_t state;
};

struct vx_k_state {
	int exists; /* the namespace exists; everything else empty when 0 */
	struct vx_k_link *links;
	size_t nlinks;
	struct vx_k_fdb *fdb; /* vxlan0's own entries (NTF_SELF) */
	size_t nfdb;
	struct vx_k_fdb *brfdb; /* the bridge's static entries on the vxlan0 port */
	size_t nbrfdb;
	struct vx_k_neigh *neigh; /* IPv4 neighbours of vxlan0 */
	size_t nneigh;
};

int vx_k_network_dump(const char *netns_path, struct vx_k_state *out, na_err_t *err);
void vx_k_state_free(struct vx_k_state *s);
const struct vx_k_link *vx_k_state_link(const struct vx_k_state *s, const char *name);

struct vx_k_ep_state {
	int exists; /* ifname exists in the target namespace */
	struct vx_k_link link;
	struct {
		uint32_t ip; /* host byte order */
		int plen;
	} addrs[8];
	size_t naddrs; /* IPv4 addresses, first 8 */
};

/* The container side of an endpoint. exists = 0 when the namespace or the
 * interface is missing (not an error). */
int vx_k_endpoint_dump(const char *target_netns, const char *ifname, struct vx_k_ep_state *out,
		       na_err_t *err);

#endif
