/* The overlay's records in etcd (SPEC §3): key layout and value codec.
 * Pure functions, shared by claims, publishing and learning, unit-tested.
 *
 *   /netagent/v1/endpoints/<network>/<agent>/<endpoint>
 *       → {"host","ip","mac","vni","vtep"} (sorted keys)
 *     written by the owning agent, no lease: an agent that dies keeps its
 *     endpoints reachable; they go when the endpoint is deleted.
 *   /netagent/v1/ipam/<network>/<ip> → "<agent>/<endpoint>"
 *     created by a put-if-absent transaction: the cluster-wide claim of an
 *     address. */
#ifndef VX_EREC_H
#define VX_EREC_H

#include <stddef.h>
#include <stdint.h>

#include "netagent/etcd.h"

#define VX_ETCD_PREFIX	  "/netagent/v1/"
#define VX_ETCD_EPS	  VX_ETCD_PREFIX "endpoints/"
#define VX_ETCD_IPAM	  VX_ETCD_PREFIX "ipam/"
#define VX_ETCD_MAX_TRIES 16 /* claims of an allocated address before giving up */
#define VX_ETCD_USER	  "vxlan"

/* One endpoint as published in etcd. */
struct vx_erec {
	char net[64], host[64], ep[64];
	uint32_t vni, ip, vtep;
	int plen;
	uint8_t mac[6];
};

/* The value of an endpoint key (malloc'd JSON, keys sorted: equal records
 * give equal strings). */
char *vx_erec_value(const struct vx_erec *r);
/* net/host/ep from an endpoint key (three non-empty segments of < 64). */
int vx_erec_parse_key(const char *key, struct vx_erec *r);
/* vni/ip/plen/mac/vtep from its value. */
int vx_erec_parse_value(const char *val, size_t len, struct vx_erec *r);
int vx_erec_same(const struct vx_erec *a, const struct vx_erec *b);
void vx_erec_key(char *buf, size_t len, const char *net, const char *host, const char *ep);

void vx_claim_key(char *buf, size_t len, const char *net, uint32_t ip);
void vx_claim_value(char *buf, size_t len, const char *host, const char *ep);
/* net and ip of a claim key; < 0 when it is not one. */
int vx_claim_parse_key(const char *key, char net[64], uint32_t *ip);

/* The verdict on a claim transaction (compare create_revision == 0, then
 * put our value, else get the key): ours when the put ran, or when the key
 * holds our own value (the answer to an earlier attempt was lost and the
 * session retried: the else branch then reads our own write). Otherwise
 * taken, and owner gets "<agent>/<endpoint>" of the winner. */
enum vx_claim_verdict { VX_CLAIM_OURS, VX_CLAIM_TAKEN };
enum vx_claim_verdict vx_claim_judge(const na_etcd_result_t *res, const char *mine, char *owner,
				     size_t owner_len);

#endif
