/* Overlay networks: per-cluster VXLAN private networks (SPEC §2, §3, §4).
 * The module's public face: its module descriptor for main(), and what
 * provision/ will use to wire containers. */
#ifndef VX_VXLAN_H
#define VX_VXLAN_H

#include "netagent/agent.h"

extern const na_module_t vx_module;

#endif
