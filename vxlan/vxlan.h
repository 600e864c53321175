/* Overlay networks: per-cluster VXLAN private networks (SPEC §2, §3, §4).
 * The module's public face: its descriptor for main(), and the calls other
 * modules (provision/) make to wire a namespace into a network. Loop thread
 * only, like everything of the module. */
#ifndef VX_VXLAN_H
#define VX_VXLAN_H

#include "netagent/addr.h"
#include "netagent/agent.h"

extern const na_module_t vx_module;

/* What a network is, for another module's validation. */
typedef struct vx_net_info {
	char name[64];
	uint32_t vni;
	na_addr_t subnet; /* with plen */
	int mtu;
	int ready; /* its kernel objects exist */
} vx_net_info_t;

/* 0 and *out, or -1 with 404 "not_found" (field "network"). */
int vx_network_info(const char *network, vx_net_info_t *out, na_err_t *err);

/* Would ip ("198.18.1.2/24" or "198.18.1.2") be accepted for endpoint ep of
 * network? 0, or 422 (outside the subnet, network/broadcast address; field
 * `field`) or 409 "ip_in_use" (used by another endpoint than ep). A check at
 * validation time: the attach itself decides (etcd claims). */
int vx_ip_check(const char *network, const char *ep, const char *ip, const char *field,
		na_err_t *err);

typedef struct vx_attach_req {
	const char *network; /* network name */
	const char *name;    /* endpoint name, unique in the network */
	const char *netns;   /* target namespace file (a container's) */
	const char *ifname;  /* NULL: "eth0" */
	const char *ip;	     /* "198.18.1.2/24", or NULL to allocate */
	const char *mac;     /* NULL: derived from the address */
} vx_attach_req_t;

typedef struct vx_attachment {
	char network[64], name[64], ifname[16];
	na_addr_t ip; /* with the subnet's plen */
	uint8_t mac[6];
	int mtu;
} vx_attachment_t;

/* The same path as PUT /v1/networks/{net}/endpoints/{name}: validated
 * (namespace checks included), address claimed cluster-wide when etcd is
 * on, veth attached, persisted, published, an event. Idempotent. cb runs
 * once on the loop thread (a is NULL on failure). Returns < 0 with err when
 * the request is refused at once (cb does not run then). */
typedef void (*vx_attach_cb)(void *ud, int rc, const na_err_t *err, const vx_attachment_t *a);
int vx_attach(const vx_attach_req_t *req, vx_attach_cb cb, void *ud, na_err_t *err);

/* DELETE …/endpoints/{name}: detaches and forgets it. Absent is success. */
typedef void (*vx_detach_cb)(void *ud, int rc, const na_err_t *err);
int vx_detach(const char *network, const char *name, vx_detach_cb cb, void *ud, na_err_t *err);

#endif
