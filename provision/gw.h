/* The gateway role's pieces (role_gateway.c, gw_render.c, gw_reload.c):
 * the parsed `gateway` section, HAProxy's configuration rendered from it
 * (pure, unit-tested in tests/unit/test_gw_render.c), the server-state
 * file carried across reloads, and the reload itself. */
#ifndef PV_GW_H
#define PV_GW_H

#include <jansson.h>
#include <stddef.h>

#include "netagent/addr.h"
#include "netagent/err.h"
#include "provision/role.h"

#define GW_MAX_BACKENDS 16
#define GW_MAX_ALLOW	32
#define GW_MAX_NETS	8
#define GW_UPLINK_IF	"uplink0"
/* Inside the container: rendered files (read-only) and the admin socket
 * with the server-state file (read-write, the agent's side of it is
 * <run dir>/admin). */
#define GW_CONF_DIR  "/run/haproxy"
#define GW_ADMIN_DIR "/run/haproxy-admin"
#define GW_UID	     65534 /* nobody: HAProxy needs no privilege above port 1023 */

typedef struct gw_backend {
	na_addr_t addr; /* no plen */
	int port, check_port;
} gw_backend_t;

typedef struct gw_conf {
	int port, replica_port; /* replica_port 0: none */
	gw_backend_t be[GW_MAX_BACKENDS];
	size_t nbe;
	/* effective: given or the overlay subnets, and loopback */
	na_addr_t allow[GW_MAX_ALLOW + GW_MAX_NETS + 1];
	size_t nallow;
	int allow_given;
	int force_tls;
	char uplink[16]; /* "" : none */
	const char *ca;	 /* check_tls.ca PEM (borrowed from the body), NULL: plain checks */
} gw_conf_t;

/* Parses and checks body's `gateway` section. nets: the container's
 * overlay subnets; known: 1 when every network of the container was
 * found (otherwise the checks that need the subnets are left to the
 * network check, which refuses an unknown network). Pure. 422 with the
 * field on any problem. */
int gw_parse(const json_t *gw, const na_addr_t *nets, size_t nnets, int known, gw_conf_t *out,
	     na_err_t *err);

/* haproxy.cfg for c, malloc'd text. Pure. */
char *gw_render(const gw_conf_t *c);
/* The server name of a backend in both HAProxy backends: derived from the
 * address, so a backends change keeps the saved state of those that stay. */
void gw_server_name(const gw_backend_t *b, char *buf, size_t n);
/* The server-state file the next HAProxy process loads: saved (the
 * output of `show servers state`, may be NULL) plus a "down" line for
 * every server of c it does not list, so a server new to the process
 * takes no connection before its first check passes. malloc'd. Pure. */
char *gw_state_file(const gw_conf_t *c, const char *saved);

/* gw_reload.c: the role's runtime side (role.h): apply, state, init
 * (the VIP target resolver), fini. Loop thread. */
int gw_init(na_agent_t *ag, na_err_t *err);
void gw_state(const char *name, const pv_spec_t *spec, const char *state);
void gw_fini(void);
int gw_apply(const char *name, const pv_spec_t *spec, pv_role_cb cb, void *ud, na_err_t *err);
/* Worker: one command on the admin socket in dir (<run dir>/admin);
 * malloc'd answer or NULL with err. */
char *gw_admin_cmd(const char *dir, const char *cmd, na_err_t *err);

#endif
