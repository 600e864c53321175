/* Virtual IPs of gateways (SPEC §2, §3, §4 vips): the module's public face. */
#ifndef VIP_VIP_H
#define VIP_VIP_H

#include <stddef.h>

#include "netagent/agent.h"

extern const na_module_t vip_module;

/* A VIP whose target is {"container": NAME} lives on that container's
 * uplink. vip/ does not know containers: provision/ registers how to find
 * one. fn returns 1 and fills netns (the container's network namespace
 * file) and ifname (its uplink interface there) when the container runs
 * with an uplink, 0 when it does not (yet), < 0 with err on failure. */
typedef int (*vip_container_resolver_fn)(void *ud, const char *container, char *netns,
					 size_t netns_len, char *ifname, size_t ifname_len,
					 na_err_t *err);
void vip_set_container_resolver(vip_container_resolver_fn fn, void *ud);
/* provision/ tells vip/ that a container's uplink appeared, changed or
 * went: VIPs targeting it re-resolve now instead of at the next check. */
void vip_container_changed(const char *container);

#endif
