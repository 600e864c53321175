/* Internals of the vip module, shared by its files only. The loop thread
 * owns every structure here; worker jobs get copies. */
#ifndef VIP_INT_H
#define VIP_INT_H

#include <stdint.h>

#include "netagent/addr.h"
#include "netagent/agent.h"
#include "netagent/err.h"

#define VIP_MAX_CHECKS	8
#define VIP_HISTORY	64
#define VIP_MAX_CANDS	16
#define VIP_PATH_MAX	256
#define VIP_ETCD_PREFIX "/netagent/v1/vips/"
/* one liveness record per agent holding a VIP (live.c) */
#define VIP_LIVE_PREFIX "/netagent/v1/vips-live/"
/* fence.c / kernel.c: what a job does with the nftables fence */
#define VIP_FENCE_KEEP 0 /* leave it alone */
#define VIP_FENCE_ARM  1 /* arm it until the liveness proof (etcd mode) */
#define VIP_FENCE_OFF  2 /* remove it (local mode: nothing fences) */
/* A fence renewal slower than this is undone (its expiry could pass the
 * proof by the stall); one with less than VIP_FENCE_MIN_MS left is not
 * made. Both count in the takeover margin (vip.c). */
#define VIP_FENCE_GUARD_MS 20
#define VIP_FENCE_MIN_MS   10

enum vip_state { VIP_BACKUP, VIP_MASTER, VIP_FAULT };
enum vip_health { VIP_H_UNKNOWN, VIP_H_UP, VIP_H_DOWN };
enum vip_check_type { VIP_CHECK_TCP, VIP_CHECK_HTTP };
enum vip_target_kind { VIP_T_INTERFACE, VIP_T_CONTAINER };

typedef struct vip_check_spec {
	enum vip_check_type type;
	int port;
	int timeout_ms;
	na_addr_t addr; /* family 0: the loopback of the VIP's family */
	char path[VIP_PATH_MAX];
} vip_check_spec_t;

/* What PUT accepted, normalized (defaults filled in). */
typedef struct vip_spec {
	na_addr_t addr;
	enum vip_target_kind target_kind;
	char target[64]; /* interface (<= 15 chars) or container name */
	vip_check_spec_t checks[VIP_MAX_CHECKS];
	int nchecks;
	int interval_ms, rise, fall, priority, preempt;
	int garp_count, garp_interval_ms;
} vip_spec_t;

typedef struct vip_hist {
	char ts[40];
	enum vip_state from, to;
	char holder[64];
	char reason[128];
} vip_hist_t;

typedef struct vip_cand {
	char agent[64];
	int priority, healthy, preempt;
} vip_cand_t;

struct vip_check_run;

typedef struct vip {
	char name[64];
	vip_spec_t spec;
	/* resolved target: netns "" = the agent's own namespace */
	char netns[VIP_PATH_MAX];
	char ifname[16];
	int resolved;
	char target_err[160];

	/* health (check.c) */
	enum vip_health health;
	int ok_run, fail_run;	 /* consecutive passing / failing rounds */
	int round_out, round_ok; /* checks of the current round still out / all passed */
	char health_reason[160];
	struct vip_check_run *runs;
	na_timer_t *check_timer;

	/* what the outside sees (model.c) */
	enum vip_state state;
	char holder[64]; /* agent holding it, "" unknown/none */
	char since[40];
	unsigned long long since_ms, transitions;
	vip_hist_t hist[VIP_HISTORY];
	unsigned nhist; /* total recorded; ring index nhist % VIP_HISTORY */
	double last_failover_s;
	int has_failover;

	/* kernel (kernel.c): address believed present, jobs out */
	int addr_present;
	int kjobs;
	int taking, dropping; /* an add / a removal is out */
	int renewing;	      /* a lifetime renewal is out */
	na_timer_t *garp_timer;
	int garp_left;
	unsigned long long take_t0_ms; /* when the takeover decision was made */
	/* a failed take is retried after a backoff, not at once */
	unsigned long long retry_at_ms;
	unsigned retry_ms;
	na_timer_t *retry_timer;
	char last_error[160]; /* why the last take failed, "" after a success */

	/* election (elect.c) */
	int owner_known;		  /* the watch told us whether the key exists */
	char owner[64];			  /* holder's agent name from the key, "" none */
	int64_t owner_lease;		  /* lease of the owner key */
	int64_t owner_mod;		  /* its mod_revision (0: absent) */
	int64_t owner_rev;		  /* revision of what we know of it (older news ignored) */
	unsigned long long owner_seen_ms; /* when we learnt of its last change */

	/* liveness (live.c): the fence is proven until live_until (monotonic
	 * ms): s + fence_ms for the last claim or renewal sent at s that
	 * etcd applied while the key was ours */
	unsigned long long live_until;
	int fencing;			     /* a fence renewal is out */
	unsigned long long fence_sent_until; /* the proof it carries */
	int acquiring;			     /* txn out */
	unsigned long long claim_sent_ms;    /* when the claim out was sent */
	char claim_from[64];		     /* holder it takes over from, "" none */
	int releasing;			     /* delete out */
	unsigned long long holdoff_until_ms;
	unsigned long long yield_until_ms; /* a better candidate goes first until then */
	na_timer_t *elect_timer;
	vip_cand_t cands[VIP_MAX_CANDS];
	int ncands;
	char published[160];	/* candidate value last put */
	int pub_out, pub_again; /* one put at a time, so they land in order */

	int busy;     /* a PUT is being written */
	int deleting; /* 1: going (hidden), 2: freed once kjobs is 0 */
	struct vip *next;
} vip_t;

typedef struct vip_mod {
	na_agent_t *ag;
	vip_t *vips;
	unsigned nvips;
	/* tunables, from the environment (vip.c) */
	int lease_ttl_s, keepalive_ms, fence_margin_ms, addr_lft_s, lft_slack_ms;
	int preempt_defer_ms;
	int live_ms, fence_ms, takeover_ms; /* liveness period, F_h, F (live.c) */
	unsigned long long fence_late;	    /* arms that stalled past the guard */
	unsigned long long transitions_total;
	int stopping;
	/* reconcile round */
	int round_out;
	na_done_fn round_done;
	void *round_ud;
} vip_mod_t;

extern vip_mod_t vm;

/* spec.c: request body → spec (422 with field), spec → JSON. */
int vip_spec_parse(const char *body, size_t len, vip_spec_t *out, na_err_t *err);
json_t *vip_spec_json(const vip_spec_t *s);
int vip_spec_from_json(json_t *o, vip_spec_t *out, na_err_t *err);
int vip_spec_eq(const vip_spec_t *a, const vip_spec_t *b);

/* model.c */
vip_t *vip_find(const char *name);
vip_t *vip_new(const char *name, const vip_spec_t *spec);
void vip_unlink_free(vip_t *v);
json_t *vip_json(const vip_t *v);
json_t *vip_history_json(const vip_t *v);
/* The one place a state changes: history, event, metrics, log. */
void vip_set_state(vip_t *v, enum vip_state to, const char *holder, const char *reason);
const char *vip_state_name(enum vip_state s);
int vip_load_state(na_err_t *err);
void vip_metrics_collect(FILE *out, void *ud);
/* Re-resolves the target (container targets through provision's hook). */
void vip_resolve(vip_t *v);

/* routes.c */
int vip_routes_init(na_api_t *api, na_err_t *err);

/* check.c: health checks; calls vip_health_changed on a flip. */
void vip_checks_start(vip_t *v);
void vip_checks_stop(vip_t *v);

/* decide.c: what to do with the VIP given health and ownership. */
void vip_health_changed(vip_t *v);
/* Local mode, and etcd mode's "we own it now / no longer" decisions. */
void vip_evaluate(vip_t *v);
/* Becomes master: adds the address (with etcd: a lifetime, only under a
 * fresh lease proof) and announces; a failed take backs off. */
void vip_take(vip_t *v, const char *reason);
/* Removes the address first, then calls done (may be NULL). */
void vip_drop(vip_t *v, enum vip_state to, const char *reason, void (*done)(vip_t *v, void *ud),
	      void *ud);
int vip_etcd_mode(void);

/* kernel.c: jobs on the namespace workers, keyed by VIP. */
typedef void (*vip_kdone_fn)(vip_t *v, int rc, int added, const na_err_t *err, void *ud);
/* Adds or renews the address (lifetime lft_s, 0 = forever). With until_ms,
 * only while now + lft + slack <= until_ms, checked right before and after
 * the netlink call; otherwise the address is removed (rc 1). announce:
 * sends the first gratuitous ARP / NA right after adding it. */
int vip_k_ensure(vip_t *v, int lft_s, unsigned long long until_ms, int announce, int fence,
		 unsigned long long fence_until, vip_kdone_fn done, void *ud);
/* Re-arms the fence until fence_until (rc 1: too late, left disarmed);
 * builds it if missing. */
int vip_k_fence(vip_t *v, unsigned long long fence_until, vip_kdone_fn done, void *ud);
/* Deletes the VIP's fence tables (VIP deleted, agent stopping). */
int vip_k_fence_delete(vip_t *v, vip_kdone_fn done, void *ud);
int vip_k_remove(vip_t *v, vip_kdone_fn done, void *ud);
int vip_k_announce(vip_t *v);
/* Reports whether the address is there (added = 1) without changing it. */
int vip_k_probe(vip_t *v, vip_kdone_fn done, void *ud);
/* Starts the repeated announcements after the first one. */
void vip_garp_schedule(vip_t *v);

/* fence.c: worker side (nf_tables of the calling thread's netns). */
void vip_fence_table_name(const char *agent, const char *vip, char *buf, size_t n);
int vip_fence_create(const char *agent, const char *vip, const na_addr_t *a, unsigned timeout_ms,
		     na_err_t *err);
/* 1: table or set missing (nothing changed). */
int vip_fence_renew(const char *agent, const char *vip, const na_addr_t *a, unsigned timeout_ms,
		    na_err_t *err);
int vip_fence_disarm(const char *agent, const char *vip, const na_addr_t *a, na_err_t *err);
int vip_fence_delete(const char *agent, const char *vip, const na_addr_t *a, na_err_t *err);

/* announce.c: worker side (raw sockets in the calling thread's netns). */
int vip_announce_send(int ifindex, const char *ifname, const na_addr_t *a, na_err_t *err);

/* elect.c: etcd election (only with --etcd). */
int vip_elect_init(na_err_t *err);
void vip_elect_fini(void);
void vip_elect_added(vip_t *v);	  /* new VIP / spec changed: publish candidacy */
void vip_elect_removed(vip_t *v); /* VIP going: withdraw candidacy */
void vip_elect_health(vip_t *v);  /* health flipped: republish, maybe acquire */
void vip_elect_release(vip_t *v); /* after the address went: delete the key */
void vip_elect_kick(vip_t *v);	  /* try to acquire if eligible */
int vip_elect_failover(vip_t *v, na_err_t *err);
void vip_elect_stop(void (*done)(void *ud), void *ud);
unsigned long long vip_elect_until(void); /* proof deadline, 0 = none */

/* Election internals shared by elect.c (decisions) and elect_sync.c (watch,
 * lease). */
typedef struct vip_el {
	na_etcd_lease_t *lease;
	int64_t id; /* current lease, 0 none */
	unsigned long long until;
	int at_risk, reset_seen;
	na_etcd_watch_t *watch;
	int64_t saved_id;
	void (*stop_done)(void *ud);
	void *stop_ud;
} vip_el_t;
extern vip_el_t vip_el;
extern const na_etcd_opts_t vip_el_opts;
const char *vip_el_me(void);
int vip_el_owns(const vip_t *v);
void vip_el_publish(vip_t *v, int force);
vip_cand_t *vip_el_cand_get(vip_t *v, const char *agent, int create);
void vip_el_cand_del(vip_t *v, const char *agent);
/* A healthy candidate other than us that beats our priority (only ones
 * that preempt when need_preempt). */
const vip_cand_t *vip_el_better(const vip_t *v, int need_preempt);
/* What we know of v's owner key as of revision rev (kv NULL: absent);
 * news older than what we know is ignored (returns 0). */
int vip_el_learn_owner(vip_t *v, const na_etcd_kv_t *kv, int64_t rev);
void vip_el_stepped_down(vip_t *v, void *ud);
/* 1 when the key is known to belong to another agent (or to nobody). */
int vip_elect_not_ours(const vip_t *v);
void vip_elect_info(json_t *o);

/* live.c: holders' liveness records and the fence proofs they give. */
int vip_live_init(na_err_t *err);
void vip_live_fini(void);
void vip_live_key(const char *agent, char *buf, size_t n);
/* We own a key (claimed, adopted) or need a fresh proof: renew now and
 * every live_ms while we own one. */
void vip_live_kick(void);
/* A claim sent at `sent` succeeded: v's fence is proven until sent + F_h. */
void vip_live_proven(vip_t *v, unsigned long long sent);
/* A VIP became master or stopped being: re-arm the self-fence timer. */
void vip_live_held(void);
/* Watch the records of the agents holding our VIPs (after owner changes). */
void vip_live_follow(void);
/* 1 and the record's mod_revision (0: absent) and when we received its last
 * change, once its watch has reported; 0 before. */
int vip_live_peer(const char *agent, int64_t *mod, unsigned long long *seen_ms);
void vip_live_learn(const char *agent, int64_t mod);
void vip_live_info(json_t *o);

#endif
