/* Remote endpoints: static FDB and neighbour entries on vxlan0. */
#include "netagent/util.h"
#include "netagent/validate.h"
#include "vxlan/kernel_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/neighbour.h>
#include <stdbool.h>
#include <string.h>

enum req_kind { RK_FDB, RK_BRFDB, RK_NEIGH };

/* What each pipelined request was, for error messages. */
struct batch {
	const struct vx_k_remote *r;
	bool del;
	struct {
		uint32_t ri;
		uint8_t kind;
	} * map;
	size_t nmap;
};

static void describe(void *ud, size_t idx, char *buf, size_t n)
{
	const struct batch *b = ud;
	if (idx >= b->nmap) {
		snprintf(buf, n, "request %zu", idx);
		return;
	}
	const struct vx_k_remote *r = &b->r[b->map[idx].ri];
	char mac[18], ip[INET_ADDRSTRLEN], vtep[INET_ADDRSTRLEN];
	const char *op = b->del ? "delete" : "set";

	na_mac_fmt(r->mac, mac, sizeof(mac));
	na_ipv4_fmt(r->ip, ip, sizeof(ip));
	na_ipv4_fmt(r->vtep, vtep, sizeof(vtep));
	switch (b->map[idx].kind) {
	case RK_FDB:
		snprintf(buf, n, "%s fdb %s%s%s", op, mac, b->del ? "" : " dst ",
			 b->del ? "" : vtep);
		break;
	case RK_BRFDB:
		snprintf(buf, n, "%s bridge fdb %s", op, mac);
		break;
	default:
		snprintf(buf, n, "%s neighbour %s%s%s", op, ip, b->del ? "" : " lladdr ",
			 b->del ? "" : mac);
	}
}

static void note(struct batch *b, size_t ri, enum req_kind kind)
{
	b->map[b->nmap].ri = (uint32_t)ri;
	b->map[b->nmap].kind = (uint8_t)kind;
	b->nmap++;
}

/* Up to three requests per remote: vxlan0's own FDB entry (MAC -> VTEP),
 * the bridge's static entry for the MAC on the vxlan0 port (learning is off
 * there, so without it every frame to a remote MAC would be flooded to the
 * local endpoints too), and the neighbour entry (IP -> MAC). */
static void add_pair(na_nl_t *nl, int ifindex, struct batch *b, size_t ri)
{
	const struct vx_k_remote *r = &b->r[ri];
	bool del = b->del;
	uint16_t type = del ? RTM_DELNEIGH : RTM_NEWNEIGH;
	uint16_t flags = del ? 0 : NLM_F_CREATE | NLM_F_REPLACE;
	uint32_t vtep = htonl(r->vtep), ip = htonl(r->ip);
	static const uint8_t zero[6];
	struct nlmsghdr *nlh;
	struct ndmsg nd;

	/* Reconcile deletes an extra FDB entry or an extra neighbour on its
	 * own: a zero MAC or IP means "not this half" (a zero MAC would
	 * otherwise name vxlan's default destination). */
	if (!del || memcmp(r->mac, zero, 6) != 0) {
		nd = (struct ndmsg){
		    .ndm_family = AF_BRIDGE,
		    .ndm_ifindex = ifindex,
		    /* The device's own table: `bridge fdb replace ... self permanent`. */
		    .ndm_flags = NTF_SELF,
		    .ndm_state = del ? 0 : NUD_PERMANENT | NUD_NOARP,
		};
		nlh = na_nl_batch_add(nl, type, flags, &nd, sizeof(nd));
		mnl_attr_put(nlh, NDA_LLADDR, 6, r->mac);
		if (!del)
			mnl_attr_put(nlh, NDA_DST, 4, &vtep);
		note(b, ri, RK_FDB);
		/* The bridge's table: `bridge fdb replace ... master static`. */
		nd.ndm_flags = NTF_MASTER;
		nd.ndm_state = del ? 0 : NUD_NOARP;
		nlh = na_nl_batch_add(nl, type, flags, &nd, sizeof(nd));
		mnl_attr_put(nlh, NDA_LLADDR, 6, r->mac);
		note(b, ri, RK_BRFDB);
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
	note(b, ri, RK_NEIGH);
}

static int remotes(const char *netns_path, const struct vx_k_remote *r, size_t n, bool del,
		   na_err_t *err)
{
	cleanup_nl na_nl_t *nl = NULL;
	struct batch b = {r, del, NULL, 0};
	struct vx_k_link vx;
	int found, rc;

	rc = vxk_open(netns_path, &nl, NULL, err);
	if (rc == -ENOENT && del) {
		na_err_clear(err);
		return 0;
	}
	if (rc < 0)
		return -1;
	if (vxk_get_link(nl, VX_K_VXLAN, &vx, &found, err) < 0)
		return -1;
	if (!found) {
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
			char mac[18];
			na_mac_fmt(r[i].mac, mac, sizeof(mac));
			return na_err_set(err, 422, "invalid_field", NULL,
					  "set remote %s: need a unicast MAC, an IP and a VTEP",
					  mac);
		}
	}
	b.map = malloc(3 * n * sizeof(*b.map));
	if (!b.map)
		return na_err_errno(err, ENOMEM, "remote endpoints");
	for (size_t i = 0; i < n; i++)
		add_pair(nl, vx.ifindex, &b, i);
	/* ENOENT on delete: already gone, which is what was asked. */
	rc = na_nl_batch_send(nl, del ? ENOENT : 0, describe, &b, NULL, err);
	free(b.map);
	if (rc < 0) {
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
