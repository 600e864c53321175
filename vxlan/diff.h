/* Desired-vs-kernel comparison for inspect and reconcile (worker side). */
#ifndef VX_DIFF_H
#define VX_DIFF_H

#include <jansson.h>

#include "vxlan/snap.h"

/* Remote entries to (re)program and to remove, and host-side veths that
 * no endpoint owns (an attach whose endpoint was never acknowledged). */
struct vx_repair {
	struct vx_k_remote *set, *del;
	size_t nset, ndel;
	char (*del_links)[16];
	size_t ndel_links;
};

/* Differences as [{"kind","object","problem","detail"}]; eps holds the
 * container-side dump of each s->local[i]. Sorts k's FDB and neighbours.
 * When rep is non-NULL it receives the remote entries to repair. What the
 * snapshot's keep lists name (changes in flight) is neither missing nor
 * extra. Pure: unit-tested on hand-made snapshots and kernel states. */
json_t *vx_diff(const struct vx_snap *s, struct vx_k_state *k, const struct vx_k_ep_state *eps,
		struct vx_repair *rep);
json_t *vx_kernel_json(const struct vx_k_state *k, const struct vx_snap *s,
		       const struct vx_k_ep_state *eps);
void vx_repair_free(struct vx_repair *r);

#endif
