/* Remote endpoints: static FDB and neighbour entries on vxlan0. */
#include "netagent/util.h"
#include "vxlan/kernel_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/neighbour.h>
#include <stdbool.h>
#include <string.h>

struct batch {
	const struct vx_k_remote *r;
	bool del;
};

/* Requests go in pairs per remote: FDB entry, then neighbour. */
static void describe(void *ud, size_t idx, char *buf, size_t n)
{
	const struct batch *b = ud;
	const struct vx_k_remote *r = &b->r[idx / 2];
	char mac[18], ip[INET_ADDRSTRLEN], vtep[INET_ADDRSTRLEN];

	vxk_mac_str(r->mac, mac, sizeof(mac));
	vxk_ip_str(r->ip, ip, sizeof(ip));
	vxk_ip_str(r->vtep, vtep, sizeof(vtep));
	if (idx % 2 == 0)
		snprintf(buf, n, "%s fdb %s%s%s", b->del ? "delete" : "set", mac,
			 b->del ? "" : " dst ", b->del ? "" : vtep);
	else
		snprintf(buf, n, "%s neighbour %s%s%s", b->del ? "delete" : "set", ip,
			 b->del ? "" : " lladdr ", b->del ? "" : mac);
}

static void add_pair(na_nl_t *nl, int ifindex, const struct vx_k_remote *r, bool del)
{
	uint16_t type = del ? RTM_DELNEIGH : RTM_NEWNEIGH;
	uint16_t flags = del ? 0 : NLM_F_CREATE | NLM_F_REPLACE;
	uint32_t vtep = htonl(r->vtep), ip = htonl(r->ip);
	struct ndmsg nd = {
	    .ndm_family = AF_BRIDGE,
	    .ndm_ifindex = ifindex,
	    /* The device's own table (not the bridge's); what `bridge fdb
	     * replace ... self permanent` sends. */
	    .ndm_flags = NTF_SELF,
	    .ndm_state = del ? 0 : NUD_PERMANENT | NUD_NOARP,
	};
	static const uint8_t zero[6];
	struct nlmsghdr *nlh;

	/* Reconcile deletes an extra FDB entry or an extra neighbour on its
	 * own: a zero MAC or IP means "not this half" (a zero MAC would
	 * otherwise name vxlan's default destination). */
	if (!del || memcmp(r->mac, zero, 6) != 0) {
		nlh = na_nl_batch_add(nl, type, flags, &nd, sizeof(nd));
		mnl_attr_put(nlh, NDA_LLADDR, 6, r->mac);
		if (!del)
			mnl_attr_put(nlh, NDA_DST, 4, &vtep);
	}
	if (del && !r->ip)
		return;

	nd = (struct ndmsg){
	    .ndm_family = AF_INET,
	    .ndm_ifindex = ifindex,
	    .ndm_state = del ? 0 : NUD_PERMANENT,
	};
	nlh = na_nl_batch_add(nl, type, flags, &nd, sizeof(nd));
	mnl_attr_put(nlh, NDA_DST, 4, &ip);
	if (!del)
		mnl_attr_put(nlh, NDA_LLADDR, 6, r->mac);
}

static int remotes(const char *netns_path, const struct vx_k_remote *r, size_t n, bool del,
		   na_err_t *err)
{
	cleanup_nl na_nl_t *nl = NULL;
	struct batch b = {r, del};
	struct vx_k_link vx;
	int rc;

	rc = vxk_open(netns_path, &nl, NULL, err);
	if (rc == -ENOENT && del) {
		na_err_clear(err);
		return 0;
	}
	if (rc < 0)
		return -1;
	if ((rc = vxk_get_link(nl, VX_K_VXLAN, &vx, err)) < 0)
		return -1;
	if (rc == 0) {
		if (del)
			return 0;
		return na_err_set(err, 500, "netlink_error", NULL, "%s has no " VX_K_VXLAN,
				  netns_path);
	}
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n && !del; i++) {
		/* An all-zero MAC is vxlan's default destination: every unknown
		 * frame would be flooded to that VTEP. */
		static const uint8_t zero[6];
		if ((r[i].mac[0] & 1) || !memcmp(r[i].mac, zero, 6) || !r[i].ip || !r[i].vtep) {
			char buf[128];
			describe(&b, 2 * i, buf, sizeof(buf));
			return na_err_set(err, 422, "invalid_field", NULL,
					  "%s: need a unicast MAC, an IP and a VTEP", buf);
		}
	}
	for (size_t i = 0; i < n; i++)
		add_pair(nl, vx.ifindex, &r[i], del);
	/* ENOENT on delete: already gone, which is what was asked. */
	if (na_nl_batch_send(nl, del ? ENOENT : 0, describe, &b, NULL, err) < 0) {
		na_err_prefix(err, "%s", netns_path);
		return -1;
	}
	return 0;
}

int vx_k_remote_set(const char *netns_path, const struct vx_k_remote *r, na_err_t *err)
{
	return remotes(netns_path, r, 1, false, err);
}

int vx_k_remote_del(const char *netns_path, const struct vx_k_remote *r, na_err_t *err)
{
	return remotes(netns_path, r, 1, true, err);
}

int vx_k_remote_set_many(const char *netns_path, const struct vx_k_remote *r, size_t n,
			 na_err_t *err)
{
	return remotes(netns_path, r, n, false, err);
}

int vx_k_remote_del_many(const char *netns_path, const struct vx_k_remote *r, size_t n,
			 na_err_t *err)
{
	return remotes(netns_path, r, n, true, err);
}
