/* Shared internals of vxlan/kernel_*.c: link parsing and small requests. */
#ifndef VX_KERNEL_INT_H
#define VX_KERNEL_INT_H

#include "netagent/nl.h"
#include "vxlan/kernel.h"

#include <linux/rtnetlink.h>

struct vxk_links {
	struct vx_k_link *v;
	size_t n, cap;
};

/* A socket inside the namespace at path; *nsfd (may be NULL) keeps it open. */
int vxk_open(const char *path, na_nl_t **nl, int *nsfd, na_err_t *err);
void vxk_parse_link(const struct nlmsghdr *nlh, struct vx_k_link *l);
/* Every link of the socket's namespace. */
int vxk_dump_links(na_nl_t *nl, struct vxk_links *out, na_err_t *err);
const struct vx_k_link *vxk_find(const struct vxk_links *ls, const char *name);
/* 1 and *out when the link exists, 0 when not. */
int vxk_get_link(na_nl_t *nl, const char *name, struct vx_k_link *out, na_err_t *err);
/* Brings cur to mtu (> 0), master (>= 0) and up (>= 0) in one request when
 * anything differs; a negative value leaves that property alone. Returns 1
 * when a request was needed. */
int vxk_fix_link(na_nl_t *nl, const struct vx_k_link *cur, int mtu, int master, int up,
		 na_err_t *err);
/* ifname's link and IPv4 addresses in the socket's namespace: 1, or 0 when
 * ifname does not exist. */
int vxk_dump_ep(na_nl_t *nl, const char *ifname, struct vx_k_ep_state *out, na_err_t *err);
/* Deletes a link by name; 0 when it did not exist. */
int vxk_del_link(na_nl_t *nl, const char *name, na_err_t *err);

#endif
