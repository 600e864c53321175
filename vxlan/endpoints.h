/* Local endpoint operations shared by the API routes (routes_ep.c) and the
 * public attach/detach calls (attach.c). Loop thread. */
#ifndef VX_ENDPOINTS_H
#define VX_ENDPOINTS_H

#include "vxlan/vx_int.h"

/* status: 201 created, 200 updated or unchanged, 204 deleted, -1 with err.
 * ep is valid during the callback only (NULL on failure). */
typedef void (*vx_ep_cb)(void *ud, int status, const na_err_t *err, vx_net_t *n, const vx_ep_t *ep);

/* want: name, netns, ifname, ip (0: allocate) and mac (when mac_given)
 * checked for syntax by the caller; everything else is decided here. cb
 * runs once, later; < 0 when it cannot even be queued (cb will not run). */
int vx_ep_put_local(vx_net_t *n, const vx_ep_t *want, int mac_given, vx_ep_cb cb, void *ud,
		    na_err_t *err);
int vx_ep_del_local(vx_net_t *n, vx_ep_t *e, vx_ep_cb cb, void *ud, na_err_t *err);

/* Syntax of the endpoint fields (shared with attach.c). */
int vx_parse_ep_ip(const vx_net_t *n, const char *s, const char *field, uint32_t *ip,
		   na_err_t *err);
int vx_check_ifname(const char *s, na_err_t *err);
int vx_check_netns_path(const char *p, na_err_t *err);

#endif
