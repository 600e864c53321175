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
/* *out and *found = 1 when the link exists; *found = 0 (and *out zeroed)
 * when not, which is no error: callers create or skip what is missing. */
int vxk_get_link(na_nl_t *nl, const char *name, struct vx_k_link *out, int *found, na_err_t *err);
/* Brings cur to mtu (> 0), master (>= 0) and up (>= 0) in one request when
 * anything differs; a negative value leaves that property alone. *changed
 * (may be NULL): 1 when a request was needed, which reconcile counts as a
 * repair. */
int vxk_fix_link(na_nl_t *nl, const struct vx_k_link *cur, int mtu, int master, int up,
		 int *changed, na_err_t *err);
/* ifname's link and IPv4 addresses in the socket's namespace. A missing
 * ifname is no error: out->exists says whether it was found. */
int vxk_dump_ep(na_nl_t *nl, const char *ifname, struct vx_k_ep_state *out, na_err_t *err);
/* Deletes a link by name; an absent link is success. *removed (may be
 * NULL): 1 when it was deleted, 0 when it did not exist. */
int vxk_del_link(na_nl_t *nl, const char *name, int *removed, na_err_t *err);

#endif
