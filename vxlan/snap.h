/* Snapshots: copies of a network's desired state handed to worker jobs, so
 * that workers never read the loop thread's structures. */
#ifndef VX_SNAP_H
#define VX_SNAP_H

#include "vxlan/kernel.h"
#include "vxlan/vx_int.h"

struct vx_snap_ep {
	char name[64];
	char netns[256];
	char ifname[16];
	uint32_t ip;
	int plen;
	uint8_t mac[6];
	na_ns_id_t nsid;
};

struct vx_snap {
	char name[64];
	char netns[400];
	uint32_t vni;
	int mtu;
	na_underlay_t underlay;
	struct vx_snap_ep *local;
	size_t nlocal;
	struct vx_k_remote *remote;
	char (*remote_name)[64];
	size_t nremote;
	/* Changes in flight (pending or being deleted): reconcile programs
	 * none of them and removes nothing the kernel has for them. */
	char (*keep_local)[64]; /* endpoint names */
	size_t nkeep_local;
	struct vx_k_remote *keep_remote; /* their ip and mac */
	size_t nkeep_remote;
};

/* Copies n's committed endpoints (local ones and every remote, pushed or
 * learned) and what is in flight (the keep lists). */
struct vx_snap *vx_snap_take(const vx_net_t *n);
/* The network alone (namespace, vni, mtu, underlay), no endpoint: what a
 * job about one endpoint needs, O(1) whatever the network's size. */
struct vx_snap *vx_snap_take_net(const vx_net_t *n);
void vx_snap_free(struct vx_snap *s);
/* The kernel layer's view of the snapshot. */
void vx_snap_knet(const struct vx_snap *s, struct vx_k_net *kn);
void vx_snap_kep(const struct vx_snap_ep *e, struct vx_k_ep *ke);

#endif
