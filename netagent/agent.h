/* The daemon context handed to every module, and the module interface.
 * The core knows no module: main() composes the module table. */
#ifndef NA_AGENT_H
#define NA_AGENT_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "netagent/api.h"
#include "netagent/err.h"
#include "netagent/etcd.h"
#include "netagent/state.h"

typedef struct na_config {
	const char *name;	 /* --name, prefixes every kernel object and file */
	const char *underlay_if; /* --underlay-if, default: the default route's dev */
	const char *state_dir;	 /* --state-dir */
	const char *run_dir;	 /* --run-dir (netns mounts, pid files) */
	const char *socket;	 /* --socket, unix socket path */
	const char *listen;	 /* --listen ADDR:PORT (mTLS) or NULL */
	const char *tls_cert, *tls_key, *tls_ca;
	const char *etcd;			    /* --etcd URL[,URL…] or NULL */
	const char *etcd_cert, *etcd_key, *etcd_ca; /* client TLS for https:// etcd */
	const char *log_level;			    /* --log-level */
	int max_conns;				    /* concurrent connection cap */
	int header_timeout_ms;			    /* a request must be complete within this */
	int idle_timeout_ms;			    /* keep-alive idle cut-off */
	int reconcile_ms;			    /* periodic reconcile interval */
} na_config_t;

typedef struct na_underlay {
	char ifname[16];
	int ifindex;
	uint32_t addr; /* IPv4, host byte order; 0 if none */
	int mtu;
} na_underlay_t;

typedef struct na_agent {
	na_config_t cfg;
	uv_loop_t *loop;
	na_api_t *api;
	na_state_t *state;
	na_underlay_t underlay;
	na_etcd_t *etcd; /* the one etcd session, NULL without --etcd */
	unsigned long long started_ms;
	int draining;
} na_agent_t;

typedef void (*na_done_fn)(void *ud);

/* A module: the core calls these on the loop thread. Modules run in the
 * order of main()'s table (vxlan, vip, provision): init, then the reconcile
 * rounds one module after the other, stop in reverse order. */
typedef struct na_module {
	const char *name;
	/* Registers routes, loads desired state. Runs before the listeners
	 * open, in table order, so a module may call the public header of a
	 * module before it. */
	int (*init)(na_agent_t *ag, na_err_t *err);
	/* One round (at start, then every --reconcile-ms): diff the world
	 * against desired state, repair. Calls done(ud) once finished; the
	 * next module's round starts then. NULL: nothing to reconcile. */
	void (*reconcile)(na_agent_t *ag, na_done_fn done, void *ud);
	/* Adds to GET /v1/host: counts into host["counts"], anything else
	 * (e.g. "runtime") as its own member of host. */
	void (*host_info)(na_agent_t *ag, json_t *host);
	/* SIGTERM: runs while the daemon drains, before the loop ends (a VIP
	 * holder steps down and revokes its lease here). Calls done(ud) when
	 * finished; the drain deadline bounds it. NULL: nothing to do. */
	void (*stop)(na_agent_t *ag, na_done_fn done, void *ud);
	/* After the loop: frees what the module holds. */
	void (*fini)(na_agent_t *ag);
} na_module_t;

/* Timers owned by the core (netagent/timer.c), for modules' periodic work:
 * every one is stopped when the daemon starts draining and freed at exit,
 * so no module timer fires into a module that is shutting down. */
typedef struct na_timer na_timer_t;
typedef void (*na_timer_fn)(void *ud);
na_timer_t *na_timer_new(na_agent_t *ag, na_timer_fn fn, void *ud);
/* after_ms from now, then every repeat_ms (0: once). Restarting moves it. */
void na_timer_start(na_timer_t *t, unsigned long long after_ms, unsigned long long repeat_ms);
void na_timer_stop(na_timer_t *t);
int na_timer_active(const na_timer_t *t);
/* Stops and frees (the libuv handle closes asynchronously). NULL is fine. */
void na_timer_free(na_timer_t *t);
/* Runs fn(ud) once on the loop thread soon, never inside the caller: for a
 * callback that an API promises to run later. < 0 on ENOMEM. */
int na_defer(na_agent_t *ag, na_timer_fn fn, void *ud);
/* main.c: drain stops every timer, exit frees what is left. */
void na_timer_stop_all(void);
void na_timer_free_all(void);
/* Asks for a reconcile round soon (coalesced with a round in progress). */
void na_agent_reconcile_soon(na_agent_t *ag);

/* Underlay discovery over netlink (netagent/underlay.c): the interface of
 * the default route unless ifname is given, its first IPv4 address and MTU. */
int na_underlay_detect(const char *ifname, na_underlay_t *out, na_err_t *err);

#define NA_VERSION "0.1.0"

/* GET /v1/health and GET /v1/host (netagent/host.c). mods is the table
 * main() composed; each module's host_info adds its counts. */
int na_host_init(na_agent_t *ag, const na_module_t *const *mods, size_t nmods, na_err_t *err);

#endif
