/* IPv4 address allocator for one overlay subnet: a bitmap of the usable host
 * addresses, no kernel and no etcd. Addresses are in host byte order. Not
 * thread-safe; the owner serialises access. */
#ifndef VX_IPAM_H
#define VX_IPAM_H

#include <stddef.h>
#include <stdint.h>

#include "netagent/err.h"

typedef struct vx_ipam vx_ipam_t;

/* net must have its host bits clear and plen be 8..32; otherwise 422
 * invalid_field "subnet". */
int vx_ipam_new(uint32_t net, int plen, vx_ipam_t **out, na_err_t *err);
void vx_ipam_free(vx_ipam_t *ipam);
/* 409 "ip_in_use" if taken; 422 invalid_field "ip" outside the subnet or
 * for its network/broadcast address. */
int vx_ipam_reserve(vx_ipam_t *ipam, uint32_t addr, na_err_t *err);
/* Lowest free host address; 409 "subnet_exhausted" when none. */
int vx_ipam_alloc(vx_ipam_t *ipam, uint32_t *out, na_err_t *err);
/* Releasing a free or foreign address is a no-op. */
void vx_ipam_release(vx_ipam_t *ipam, uint32_t addr);
int vx_ipam_in_use(const vx_ipam_t *ipam, uint32_t addr);
size_t vx_ipam_used(const vx_ipam_t *ipam);

#endif
