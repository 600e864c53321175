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
};

/* Copies n (local endpoints and every remote, pushed or learned). */
struct vx_snap *vx_snap_take(const vx_net_t *n);
void vx_snap_free(struct vx_snap *s);
/* The kernel layer's view of the snapshot. */
void vx_snap_knet(const struct vx_snap *s, struct vx_k_net *kn);
void vx_snap_kep(const struct vx_snap_ep *e, struct vx_k_ep *ke);

#endif
