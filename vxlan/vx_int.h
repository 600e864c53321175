/* Internals of the vxlan module, shared by its files only. The loop thread
 * owns every structure here; worker jobs get copies (snapshots). */
#ifndef VX_INT_H
#define VX_INT_H

#include <stdint.h>

#include "netagent/agent.h"
#include "netagent/api.h"
#include "netagent/nl.h"
#include "vxlan/ipam.h"

enum vx_src { VX_LOCAL, VX_PUSHED, VX_LEARNED };

typedef struct vx_ep {
	/* ---- the value: what a PUT sets (vx_ep_set copies up to `deleting`) */
	char name[64];
	enum vx_src src;
	uint32_t ip; /* host byte order */
	int plen;
	uint8_t mac[6];
	char ifname[16];
	char netns[256]; /* local: target namespace path */
	na_ns_id_t nsid; /* local: that namespace, pinned when it was validated */
	uint32_t vtep;	 /* remote: its host's VTEP; local: ours */
	char host[64];	 /* learned: the publishing agent */
	/* ---- state */
	/* A delete job is queued: snapshots leave it out, or a reconcile
	 * queued behind the delete would plug it back in. */
	int deleting;
	/* A change is queued and not acknowledged yet (claim, kernel work,
	 * state file): reconcile neither programs it nor removes what the
	 * kernel has for it. Committed state only reaches the kernel by
	 * reconcile and the state files. */
	int pending;
	/* local: drift of the target side is noticed through this (watch.c) */
	struct vx_watch *watch;
	int watch_opening;
	/* ---- model links (model.c) */
	struct vx_ep *next, *prev;	     /* n->eps, in insertion order */
	struct vx_ep *h_name, *h_ip, *h_mac; /* hash chains */
} vx_ep_t;

/* Hash index of a network's endpoints (model.c): O(1) lookups by name, IP
 * and MAC at any size, so a PUT or a watch event costs the same with 5 or
 * 5,000 endpoints. */
typedef struct vx_index {
	vx_ep_t **name, **ip, **mac;
	size_t nb; /* buckets of each, a power of two */
	size_t n;
} vx_index_t;

typedef struct vx_net {
	char name[64];
	uint32_t vni, subnet;
	int plen;
	int mtu, mtu_set; /* mtu_set: given by the user, else underlay − 50 */
	char netns[400];
	vx_ipam_t *ipam;
	vx_ep_t *eps, *eps_tail;
	vx_index_t idx;
	na_ns_id_t nsid; /* its namespace, once a job has seen it */
	/* Drift detection (watch.c, reconcile.c): netlink notifications of
	 * the namespace mark the network dirty; a slow sweep is the backstop. */
	struct vx_watch *watch;
	int watch_opening;
	int dirty;     /* a notification asked for a reconcile */
	int rq_queued; /* a reconcile job of this network is queued */
	unsigned long long next_sweep_ms, last_event_rq_ms;
	/* Our own writes notify us too: while they run, and QUIET_MS after the
	 * last one, a notification waits instead of diffing the network again
	 * and again under a stream of PUTs (watch.c). */
	unsigned own_jobs;
	unsigned long long last_own_ms;
	unsigned nlocal, npushed, nlearned;
	int ready;   /* kernel objects exist (create job succeeded once) */
	int busy;    /* a create/delete job is queued: requests wait for it */
	int deleted; /* removed from desired state, waiting to be freed */
	char error[256];
	unsigned long long repairs;
	struct vx_net *next;
} vx_net_t;

typedef struct vx {
	na_agent_t *ag;
	vx_net_t *nets;
	unsigned nnets;
	unsigned long long repairs, reconciles;
	unsigned long long watch_events, event_reconciles, sweep_reconciles;
	int sweep_ms;
	unsigned long long next_gc_ms;
	na_timer_t *dirty_timer;
	int reconciling;       /* jobs of the current round still out */
	na_done_fn round_done; /* the core's completion of the round */
	void *round_ud;
	char netns_dir[200];
	/* Never endpoint targets: the agent's own namespace, the host's. */
	na_ns_id_t self_nsid, init_nsid;
} vx_t;

extern vx_t vx;

/* model.c */
vx_net_t *vx_net_find(const char *name);
vx_net_t *vx_net_find_vni(uint32_t vni);
vx_ep_t *vx_ep_find(vx_net_t *n, const char *name);
vx_ep_t *vx_ep_find_ip(vx_net_t *n, uint32_t ip);
vx_ep_t *vx_ep_find_mac(vx_net_t *n, const uint8_t mac[6]);
vx_net_t *vx_net_new(const char *name, uint32_t vni, uint32_t subnet, int plen, int mtu,
		     na_err_t *err);
void vx_net_unlink_free(vx_net_t *n);
/* Adds a copy of tmpl's value; NULL on ENOMEM. */
vx_ep_t *vx_ep_add(vx_net_t *n, const vx_ep_t *tmpl);
/* Replaces ep's value (name, addresses, …) with val's, keeping its state
 * and place; the indexes follow. */
void vx_ep_set(vx_net_t *n, vx_ep_t *ep, const vx_ep_t *val);
/* Unlinks, releases its address in the IPAM and frees. */
void vx_ep_remove(vx_net_t *n, vx_ep_t *ep);
void vx_mac_from_ip(uint32_t ip, uint8_t mac[6]);
json_t *vx_net_json(const vx_net_t *n);
json_t *vx_ep_json(const vx_net_t *n, const vx_ep_t *ep);
json_t *vx_net_state_json(const vx_net_t *n);
json_t *vx_ep_state_json(const vx_ep_t *ep);
json_t *vx_remote_state_json(const vx_ep_t *ep);
int vx_load_state(na_err_t *err);
/* State kinds: "endpoints/<net>" (local), "remotes/<net>" (pushed), one
 * file per endpoint so that one change writes one file. */
void vx_ep_kind(const vx_net_t *n, char *buf, size_t len);
void vx_remote_kind(const vx_net_t *n, char *buf, size_t len);

/* routes_net.c / routes_ep.c / remotes.c */
int vx_routes_init(na_api_t *api, na_err_t *err);
int vx_routes_ep_init(na_api_t *api, na_err_t *err);
int vx_routes_remote_init(na_api_t *api, na_err_t *err);
/* Looks up the {net} parameter; replies 404 and returns NULL when absent. */
vx_net_t *vx_req_net(na_req_t *req);
/* The {name} endpoint of n (want_local: 1 local, 0 pushed, -1 any); replies
 * 404 and returns NULL when absent. */
vx_ep_t *vx_req_ep(na_req_t *req, vx_net_t *n, int want_local);
/* When n has a create/delete job in flight, runs fn(ud) once it is done and sets
 * *deferred (fn gets ud even if the barrier cannot be queued: it re-checks). */
int vx_after_idle(vx_net_t *n, void (*fn)(void *ud), void *ud, int *deferred);
/* The same for a request: re-runs the handler fn(req) afterwards. */
int vx_wait_idle(vx_net_t *n, na_req_t *req, na_handler_fn fn);
/* 503 "unavailable": a job for n could not be queued (out of memory,
 * shutting down). 409 "busy" is a conflicting change in flight. */
int vx_err_queue(na_err_t *err, const vx_net_t *n);

/* jobs.c: kernel work on nsworker threads, keyed by network name. */
typedef void (*vx_done_fn)(void *ud, int rc, const na_err_t *err);
int vx_job_net_apply(vx_net_t *n, json_t *persist, vx_done_fn done, void *ud);
int vx_job_net_delete(vx_net_t *n, vx_done_fn done, void *ud);
int vx_job_ep_apply(vx_net_t *n, const vx_ep_t *ep, const vx_ep_t *old, json_t *persist,
		    vx_done_fn done, void *ud);
int vx_job_ep_delete(vx_net_t *n, const vx_ep_t *ep, vx_done_fn done, void *ud);
/* Programs (or removes, when del) remote entries; with persist, writes (or
 * deletes) each one's state file after the kernel took it. */
int vx_job_remotes(vx_net_t *n, const vx_ep_t *const *eps, size_t neps, int del, int persist,
		   vx_done_fn done, void *ud);
/* Opens a client-given namespace path off the loop (O_PATH|O_NOFOLLOW,
 * nsfs, type net) and hands back its identity; 422 field "netns" when it is
 * not a network namespace file. */
typedef void (*vx_probe_fn)(void *ud, int rc, const na_err_t *err, const na_ns_id_t *id);
int vx_job_probe_netns(vx_net_t *n, const char *path, vx_probe_fn done, void *ud);
/* Runs after every job queued so far for the network. */
int vx_job_barrier(vx_net_t *n, vx_done_fn done, void *ud);
int vx_job_inspect(vx_net_t *n, na_req_t *req);
int vx_job_check(vx_net_t *n, na_req_t *req);

/* etcd.c, claims.c, publish.c, learn.c: cross-host coordination through
 * the core's etcd session (SPEC §3). Every function is a no-op (claims
 * succeed at once) without --etcd. Loop thread. */
int vx_etcd_start(na_agent_t *ag, na_err_t *err);
void vx_etcd_stop(void);
int vx_etcd_enabled(void);
void vx_etcd_tick(void); /* each reconcile round: ends address holds */
/* Claims ep's ip cluster-wide with an etcd transaction; done runs on the
 * loop thread: rc 0 claimed (or already ours), < 0 with 409 "ip_in_use"
 * when another agent's endpoint holds it, 503 when etcd is unreachable. */
int vx_etcd_claim(const vx_net_t *n, const vx_ep_t *ep, vx_done_fn done, void *ud);
/* The same for an address the agent picked itself: a lost claim moves the
 * endpoint to another free address (and its derived MAC), up to 16 tries. */
int vx_etcd_claim_any(vx_net_t *n, vx_ep_t *ep, vx_done_fn done, void *ud);
/* 0 until the learned endpoints were read from etcd once (always 1 without
 * etcd): until then reconcile must not remove remote entries it does not
 * know, they may be learned ones programmed by our previous run. */
int vx_etcd_learned_once(void);
/* 1 while a claim for e is in flight: e must not change or go meanwhile. */
int vx_etcd_claiming(const vx_ep_t *e);
/* Publishes / withdraws a local endpoint (and its ip claim) for the others. */
void vx_etcd_publish(const vx_net_t *n, const vx_ep_t *ep);
void vx_etcd_unpublish(const vx_net_t *n, const vx_ep_t *ep);
/* A network appeared or changed: learn the endpoints already published for it. */
void vx_etcd_net_changed(const vx_net_t *n);

/* reconcile.c */
/* Every network is fully checked this often on average (vx.sweep_ms,
 * NETAGENT_VX_SWEEP_MS), as a backstop to the netlink notifications: a
 * sweep of one idle network costs ~0.25 ms of CPU, so 1,000 networks
 * ~0.1% of a core at 5 min. */
#define VX_SWEEP_MS 300000
#define VX_GC_MS    30000 /* namespaces of ours no network wants */
void vx_reconcile(na_agent_t *ag, na_done_fn done, void *ud);
/* Queues a reconcile job for n now (unless one is queued); in_round: it
 * counts towards the core's round. */
void vx_reconcile_net(vx_net_t *n, int in_round);

/* watch.c: netlink notifications of a network's namespace and of its local
 * endpoints' targets. */
void vx_watch_ensure(vx_net_t *n);	  /* open what is missing (loop; async) */
int vx_watch_complete(const vx_net_t *n); /* every watch of n is open */
void vx_watch_net_gone(vx_net_t *n);
void vx_watch_ep_gone(vx_ep_t *e);
void vx_net_dirty(vx_net_t *n); /* a reconcile of n soon, throttled */
void vx_watch_fini(void);

#endif
