/* The daemon context handed to every module, and the module interface.
 * The core knows no module: main() composes the module table. */
#ifndef NA_AGENT_H
#define NA_AGENT_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "netagent/api.h"
#include "netagent/err.h"
#include "netagent/state.h"

typedef struct na_config {
	const char *name;	 /* --name, prefixes every kernel object and file */
	const char *underlay_if; /* --underlay-if, default: the default route's dev */
	const char *state_dir;	 /* --state-dir */
	const char *run_dir;	 /* --run-dir (netns mounts, pid files) */
	const char *socket;	 /* --socket, unix socket path */
	const char *listen;	 /* --listen ADDR:PORT (mTLS) or NULL */
	const char *tls_cert, *tls_key, *tls_ca;
	const char *etcd;      /* --etcd URL[,URL…] or NULL */
	const char *log_level; /* --log-level */
	int max_conns;	       /* concurrent connection cap */
	int header_timeout_ms; /* a request must be complete within this */
	int idle_timeout_ms;   /* keep-alive idle cut-off */
	int reconcile_ms;      /* periodic reconcile interval */
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
	unsigned long long started_ms;
	int draining;
} na_agent_t;

typedef struct na_module {
	const char *name;
	/* Registers routes, loads desired state. Runs before the listeners open. */
	int (*init)(na_agent_t *ag, na_err_t *err);
	/* Periodic and at start: diff kernel vs desired, repair. Async is fine. */
	void (*reconcile)(na_agent_t *ag);
	/* Adds the module's counts to GET /v1/host ("counts" object). */
	void (*host_info)(na_agent_t *ag, json_t *counts);
	void (*fini)(na_agent_t *ag);
} na_module_t;

/* Underlay discovery over netlink (netagent/underlay.c): the interface of
 * the default route unless ifname is given, its first IPv4 address and MTU. */
int na_underlay_detect(const char *ifname, na_underlay_t *out, na_err_t *err);

#define NA_VERSION "0.1.0"

/* GET /v1/health and GET /v1/host (netagent/host.c). mods is the table
 * main() composed; each module's host_info adds its counts. */
int na_host_init(na_agent_t *ag, const na_module_t *const *mods, size_t nmods, na_err_t *err);
/* etcd reachability as last seen by whoever talks to etcd (worker side). */
void na_host_set_etcd(int reachable, const char *detail);

#endif
