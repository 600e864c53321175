/* provision/ internals, loop thread unless a function says "worker".
 *
 * Layers, each calling only the ones above it (completions travel back
 * as callbacks, never as calls into a higher file):
 *   spec.c oci.c roles.c role_*.c   pure: validation, config.json
 *   model.c                          containers in memory, views, state files
 *   probe.c                          which runtime, what the host supports
 *   bundle.c cleanup.c               worker jobs: bundle, volumes, netns; removal
 *   net.c                            overlay attachments (vxlan/vxlan.h)
 *   spawn.c supervise.c              monitors: spares, start; stop, exits,
 *                                    adoption
 *   ops.c                            operations (create, update, start, stop,
 *                                    restart, delete) and restart policy
 *   routes.c logs.c exec.c reconcile.c provision.c */
#ifndef PV_INT_H
#define PV_INT_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "netagent/agent.h"
#include "netagent/api.h"
#include "provision/provision.h"
#include "provision/spec.h"

typedef void (*pv_cb)(void *ud, int rc, const na_err_t *err);

/* ---- probe.c: the runtime and the host ---- */
typedef struct pv_probe {
	int done;	  /* the probe job finished */
	char error[256];  /* non-empty: containers cannot run here, and why */
	char runtime[16]; /* "runc" */
	char path[256];	  /* its binary */
	char version[64];
	char why[256];	   /* why this runtime and not the other */
	char cgroup[48];   /* "v1 (hybrid: cgroup2 at /sys/fs/cgroup/unified)" ... */
	char monitor[512]; /* bin/netagent-monitor next to our executable */
	int rro, seccomp, memsw;
	unsigned long nofile; /* min(65536, the agent's hard RLIMIT_NOFILE) */
	pv_limits_t lim;
	char why_mem[96], why_cpu[96], why_pids[96];
	/* Host image layout: real top-level directories to bind, symlinks to
	 * recreate in the bundle's rootfs (merged /usr). */
	char host_dirs[8][16];
	size_t nhost_dirs;
	char link_name[8][16], link_target[8][64];
	size_t nlinks;
} pv_probe_t;

int pv_probe_start(na_err_t *err); /* queues the probe job */
/* Runs fn(req) once the probe is done (now if it is). */
void pv_probe_wait(na_req_t *req, na_handler_fn fn);
json_t *pv_probe_json(void);
/* Worker: `runc --root <ours> delete --force id` and its wait (the
 * runtime container of id is gone afterwards, whatever its state). */
void pv_runtime_delete(const char *id);

/* ---- model.c ---- */
enum pv_state {
	PV_S_UNKNOWN, /* loaded from the state dir, not adopted yet */
	PV_S_CREATING,
	PV_S_STARTING,
	PV_S_RUNNING,
	PV_S_STOPPING,
	PV_S_EXITED,
	PV_S_STOPPED,
	PV_S_RESTARTING, /* waiting out the backoff */
	PV_S_DELETING,
	PV_S_COUNT
};
extern const char *const pv_state_names[PV_S_COUNT];

typedef struct pv_iface {
	char network[64], ifname[16], ip[48], mac[18];
} pv_iface_t;

typedef struct pv_wait {
	na_req_t *req;
	na_handler_fn fn;
	struct pv_wait *next;
} pv_wait_t;

typedef struct pv_ct {
	char name[64];
	char id[80]; /* runc id: <agent>-<name> */
	pv_spec_t spec;
	json_t *canon; /* pv_spec_json(&spec) */
	char tag[17];
	int want_run; /* desired: running (POST stop clears it) */
	pv_iface_t ifs[PV_MAX_NETS];
	size_t nifs;
	enum pv_state state;
	/* the current run */
	int pid, mon_pid, mon_fd;
	uv_poll_t *poll;
	char run_tag[17]; /* the tag it was started with */
	int has_exit, exit_code, exit_signal, oom, stop_requested;
	char error[256];
	unsigned restarts, failures; /* failures: consecutive, for the backoff */
	unsigned long long backoff_ms, next_start_ms;
	char started[32], finished[32];
	unsigned long long started_mono;
	na_timer_t *timer;
	struct pv_op *op; /* the operation holding the container */
	pv_wait_t *waiters;
	int handshake; /* a monitor is being started */
	int exit_pending;
	pv_cb exit_cb; /* an operation waiting for the exit */
	void *exit_ud;
	struct pv_ct *next;
} pv_ct_t;

struct pv_global {
	na_agent_t *ag;
	pv_probe_t probe;
	char ct_dir[400];    /* <run>/containers */
	char runc_root[400]; /* <run>/runc */
	char ns_dir[400];    /* <run>/ctns: not <run>/netns, which vxlan collects */
	char vol_dir[400];   /* <state>/volumes */
	pv_ct_t *cts;
	unsigned n;
	/* metrics */
	unsigned long long restarts_total, starts_total, start_failures, exits_total;
	unsigned long long lat_buckets[12], lat_count;
	double lat_sum;
	/* ops.c registers what happens when a container exits on its own. */
	void (*on_exit)(pv_ct_t *c);
	/* reconcile.c registers its decision for one container, and a whole
	 * round (the probe runs one when it is done). */
	void (*decide)(pv_ct_t *c);
	void (*round)(void);
	int closing; /* the module's fini runs */
};
extern struct pv_global pv;
extern const double pv_lat_bounds[12];

pv_ct_t *pv_ct_find(const char *name);
pv_ct_t *pv_ct_new(const char *name, pv_spec_t *spec, na_err_t *err); /* takes spec */
void pv_ct_set_spec(pv_ct_t *c, pv_spec_t *spec); /* takes spec, frees the old one */
void pv_ct_unlink_free(pv_ct_t *c);
void pv_ct_path(const pv_ct_t *c, const char *file, char *buf, size_t n); /* in its run dir */
void pv_ct_netns(const pv_ct_t *c, char *buf, size_t n);
void pv_ct_cgroup(const pv_ct_t *c, char *buf, size_t n);
json_t *pv_ct_json(const pv_ct_t *c);
json_t *pv_ct_state_json(const pv_ct_t *c);
int pv_load_state(na_err_t *err);
const pv_iface_t *pv_ct_iface(const pv_ct_t *c, const char *network);
void pv_ct_set_state(pv_ct_t *c, enum pv_state s);
/* Queues fn(req) until the container's operation finishes. */
void pv_ct_wait(pv_ct_t *c, na_req_t *req, na_handler_fn fn);
void pv_ct_release_waiters(pv_ct_t *c);
/* Writes / removes the state file on a worker, then cb. */
int pv_persist(pv_ct_t *c, pv_cb cb, void *ud);
int pv_unpersist(pv_ct_t *c, pv_cb cb, void *ud);
void pv_observe_start(double seconds);

/* ---- bundle.c (worker jobs, submitted from the loop) ---- */
/* The file-system half of validation: rootfs exists, is a directory, is
 * not a symlink and not "/" (422 field image.path); for a new container,
 * no foreign runtime container of its id runs (409 name_conflict). */
int pv_check_fs(const pv_ct_t *c, const pv_spec_t *spec, pv_cb cb, void *ud);
/* Idempotent: run dir, bundle (config.json, rootfs skeleton, hosts files),
 * volumes owned by the container's user, netns with lo up, and no stale
 * runtime container of this id. */
int pv_prepare(pv_ct_t *c, pv_cb cb, void *ud);
/* pv_check_fs then pv_prepare in one worker job (a create). cb's rc is
 * PV_REFUSED when the checks refused (nothing was made), -1 when the
 * prepare failed. */
#define PV_REFUSED (-2)
int pv_check_prepare(pv_ct_t *c, pv_cb cb, void *ud);
/* A live update: only the role's prepare (render_only) on a worker, for a
 * running container whose bundle and namespace exist. */
int pv_render(pv_ct_t *c, pv_cb cb, void *ud);

/* ---- cleanup.c ---- */
/* Removes the runtime container, run dir, netns, cgroups of container
 * `name` (which may be unknown to the model); its volumes too when purge
 * is 1, only the empty ones when it is 2 (a create that failed). */
int pv_cleanup(const char *name, int purge, pv_cb cb, void *ud);
/* Worker: the monitor named in dir/monitor.json, if it still runs and is
 * the one of this container (its command line names the id): a pidfd,
 * else -1. */
int pv_monitor_pidfd(const char *dir, const char *id);
/* Every container name something of ours exists for (run dir, runtime
 * state, netns), with the networks its last prepare meant to attach. */
typedef struct pv_orphan {
	char name[64];
	char nets[2 * PV_MAX_NETS][64];
	size_t nnets;
} pv_orphan_t;
typedef void (*pv_gc_cb)(void *ud, pv_orphan_t *list, size_t n);
int pv_gc_list(pv_gc_cb cb, void *ud);

/* ---- net.c ---- */
/* Attaches every network of the spec (IP given, kept from before or
 * allocated) and detaches interfaces no longer in it; c->ifs follows. */
int pv_net_sync(pv_ct_t *c, pv_cb cb, void *ud);
int pv_net_detach_all(pv_ct_t *c, pv_cb cb, void *ud);
/* Detaches endpoints named `name` from the given networks (GC of a
 * container the model does not know). */
int pv_net_detach_names(const char *name, char (*nets)[64], size_t n, pv_cb cb, void *ud);
int pv_net_check(const pv_spec_t *spec, const char *name, na_err_t *err);

/* ---- spawn.c ---- */
/* Starts the container through a monitor (the spare, else a new one); cb
 * once it runs (pid) or failed to start (the runtime's message, 422
 * start_failed). */
int pv_spawn(pv_ct_t *c, pv_cb cb, void *ud);
/* Makes sure a spare monitor is ready or on its way (an operation that will
 * start a container begins; a start finished). */
void pv_spare(void);

/* ---- supervise.c ---- */
/* Starts watching the monitor behind pidfd fd (taken, closed on failure). */
int pv_watch(pv_ct_t *c, int fd, int pid);
/* The monitor exited: reads its exit record on a worker, then reports. */
void pv_read_exit(pv_ct_t *c);
/* Asks the monitor to stop the container; cb once it exited (at once when
 * nothing runs). */
int pv_stop(pv_ct_t *c, pv_cb cb, void *ud);
/* Reads what the last monitor left (running: holds a pidfd of it; exited:
 * the exit record); cb then. */
int pv_adopt(pv_ct_t *c, pv_cb cb, void *ud);
/* Stops watching c's monitor (the module's fini; the monitor runs on). */
void pv_unwatch(pv_ct_t *c);

/* ---- ops.c ---- */
enum pv_op_kind {
	PV_OP_CREATE,
	PV_OP_UPDATE,
	PV_OP_START,
	PV_OP_STOP,
	PV_OP_RESTART,
	PV_OP_DELETE,
	PV_OP_AUTOSTART,
	PV_OP_ADOPT,
	PV_OP_LIVE /* an update the role applies to the running container (role.h) */
};
/* Runs an operation on c (which must not hold one). req may be NULL (the
 * agent's own: policy, reconcile); with a req, the reply is the op's.
 * newspec (UPDATE/CREATE) is taken. */
void pv_op_run(pv_ct_t *c, enum pv_op_kind kind, na_req_t *req, pv_spec_t *newspec, int purge);
void pv_ops_init(void);
/* Reconcile: c should run, does not, and nothing is scheduled for it. */
int pv_should_start(const pv_ct_t *c);
/* Starts it now, or after the backoff when the policy restarts it. */
void pv_policy_kick(pv_ct_t *c);

/* ---- routes.c logs.c reconcile.c ---- */
int pv_routes_init(na_api_t *api, na_err_t *err);
void pv_logs_get(na_req_t *req, pv_ct_t *c);
void pv_logs_close_all(const char *name); /* container gone: end its followers */
void pv_reconcile(na_agent_t *ag, na_done_fn done, void *ud);
void pv_reconcile_init(void);

/* ---- backup_*.c: dumps and pgBackRest backups of postgres members (backup_routes.c) ---- */
int pv_backups_init(na_agent_t *ag, na_err_t *err);
void pv_backups_fini(void);

#endif
