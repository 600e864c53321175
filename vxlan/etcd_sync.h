/* Private to the etcd files of the vxlan module: etcd_sync.c (loop thread:
 * hooks, claims, publishing), etcd_learn.c (loop thread: learned endpoints)
 * and etcd_sync2.c (the two etcd threads), and the messages they exchange.
 * The threads never see a vx_net_t or vx_ep_t; they work on records (copies)
 * and hand results back through a queue drained on the loop thread.
 *
 * Keys (SPEC §3):
 *   /netagent/v1/endpoints/<network>/<agent>/<endpoint> → {"vni","ip","mac","vtep","host"}
 *     written by the owning agent, no lease: an agent that dies keeps its
 *     endpoints reachable; they go only when the endpoint is deleted.
 *   /netagent/v1/ipam/<network>/<ip> → "<agent>/<endpoint>"
 *     created with put-if-absent: the cluster-wide claim of an address. */
#ifndef VX_ETCD_SYNC_H
#define VX_ETCD_SYNC_H

#include <stdint.h>

#include "netagent/err.h"
#include "vxlan/vx_int.h"

#define VX_ETCD_PREFIX	  "/netagent/v1/"
#define VX_ETCD_EPS	  VX_ETCD_PREFIX "endpoints/"
#define VX_ETCD_IPAM	  VX_ETCD_PREFIX "ipam/"
#define VX_ETCD_MAX_TRIES 16 /* claims of an allocated address before giving up */

/* One endpoint as published in etcd. */
struct vx_erec {
	char net[64], host[64], ep[64];
	uint32_t vni, ip, vtep;
	int plen;
	uint8_t mac[6];
};

enum vx_eop_type {
	VX_EOP_CLAIM,
	VX_EOP_PUBLISH,
	VX_EOP_UNPUBLISH,
	VX_EOP_SNAPSHOT,
	VX_EOP_GONE, /* (watch thread) one of our keys was deleted: rec net, ep */
};

/* Loop thread → ops thread. */
struct vx_eop {
	struct vx_eop *next;
	enum vx_eop_type type;
	struct vx_erec rec; /* claim: net, ep, ip; unpublish: net, ep, ip */
	void *claim;	    /* VX_EOP_CLAIM: the loop side's context, handed back */
	/* VX_EOP_SNAPSHOT: what must be published, and every local endpoint
	 * (published or still being set up) whose claim must stay. */
	struct vx_erec *pub, *keep;
	size_t npub, nkeep;
};

enum vx_eres_type {
	VX_ERES_CLAIM,	  /* claim, rc, err */
	VX_ERES_SNAPSHOT, /* the ops thread wants a VX_EOP_SNAPSHOT */
	VX_ERES_RESYNC,	  /* recs/nrecs: every endpoint published by others */
	VX_ERES_PUT,	  /* rec */
	VX_ERES_DEL,	  /* rec (net, host, ep) */
	VX_ERES_FIRST,	  /* the watch thread's first range finished (failed) */
};

/* etcd threads → loop thread. */
struct vx_eres {
	struct vx_eres *next;
	enum vx_eres_type type;
	void *claim;
	int rc;
	na_err_t err;
	struct vx_erec rec;
	struct vx_erec *recs;
	size_t nrecs;
};

/* etcd_sync2.c */
int vx_ethreads_start(const char *endpoints, const char *us, na_err_t *err);
void vx_ethreads_stop(void);
/* Queues op for the ops thread (takes ownership). */
void vx_ethreads_push(struct vx_eop *op);
/* Makes the watch thread do a full range now. Any thread. */
void vx_ethreads_kick(void);
void vx_eop_free(struct vx_eop *op);

/* etcd_learn.c (loop thread, except the codec) */
/* The value of an endpoint key (malloc'd JSON, keys sorted: equal records
 * give equal strings). */
char *vx_erec_value(const struct vx_erec *r);
/* net/host/ep from an endpoint key; vni/ip/mac/vtep from its value. */
int vx_erec_parse_key(const char *key, struct vx_erec *r);
int vx_erec_parse_value(const char *val, size_t len, struct vx_erec *r);
void vx_elearn_put(const struct vx_erec *r);
void vx_elearn_del(const struct vx_erec *r);
void vx_elearn_resync(const struct vx_erec *recs, size_t nrecs);
/* Makes n's learned endpoints match the cache; all: reprograms every one. */
void vx_elearn_apply(vx_net_t *n, int all);
void vx_elearn_clear(void);

/* etcd_sync.c: hands a result to the loop thread (takes ownership). Any thread. */
void vx_etcd_post(struct vx_eres *r);
void vx_eres_free(struct vx_eres *r);
/* vx_etcd_claiming and vx_etcd_claim_any are declared in vx_int.h. */

#endif
