/* The postgres role's pieces (role_postgres.c, pg_render.c, pg_conf.c,
 * pg_rest.c, pg_watch.c, pg_patroni.c): the parsed `postgres` section,
 * Patroni's configuration rendered from it (pure), a container's
 * configuration from its spec, the Patroni REST client, the poller behind
 * GET's view, and the actions and live updates. */
#ifndef PV_PG_H
#define PV_PG_H

#include <jansson.h>
#include <stddef.h>

#include "netagent/addr.h"
#include "netagent/err.h"
#include "provision/role.h"

#define PG_MAX_MEMBERS 16
/* Inside the container. */
#define PG_CONF_DIR   "/run/patroni" /* rendered files, read-only bind of <run dir>/conf */
#define PG_HOME	      "/var/lib/postgresql"
#define PG_DATA_DIR   PG_HOME "/data"
#define PG_RAFT_DIR   PG_HOME "/raft"
#define PG_SOCKET_DIR "/var/run/postgresql"
#define PG_BIN_DIR    "/usr/lib/postgresql/15/bin"
#define PG_PORT	      5432
#define PG_API_PORT   8008
#define PG_RAFT_PORT  5010
#define PG_API_USER   "netagent"

typedef struct pg_conf {
	const char *cluster, *node;
	char ip[NA_ADDR_STRLEN]; /* the container's overlay IP, no plen */
	char members[PG_MAX_MEMBERS][NA_ADDR_STRLEN];
	size_t nmembers;
	char subnet[NA_ADDR_STRLEN]; /* "198.18.1.0/24", "" when unknown */
	const char *su_pw, *repl_pw;
	const char *cert, *key, *ca; /* all three or none (tls) */
	int synchronous;
	const json_t *parameters; /* object of strings, or NULL */
	long long ttl, loop_wait, retry_timeout, max_lag;
	char raft_pw[65], api_pw[65]; /* given or derived */
} pg_conf_t;

/* pg_render.c. Parses body's `postgres` section with the container's one
 * network (ip as given, subnet "" when the network is unknown: the
 * network check refuses it then). Pure (OpenSSL parses the PEMs). 422
 * with the field on any problem. Strings point into pg. */
int pg_parse(const json_t *pg, const char *ip, const char *subnet, pg_conf_t *c, na_err_t *err);
/* Patroni's configuration (patroni.yml as JSON) for c. Pure. */
json_t *pg_render(const pg_conf_t *c);

/* pg_conf.c, any thread. The postgres user of the host image, looked up
 * once. */
void pg_ids(unsigned *uid, unsigned *gid);
/* The parsed section of a container's spec, with the subnet roles noted
 * (role.h). */
int pg_spec_conf(const pv_spec_t *s, pg_conf_t *c, na_err_t *err);
/* Patroni's whole configuration for the spec (pgBackRest's settings
 * included) and *pgbr, pgBackRest's file (malloc'd, NULL: none); c is
 * filled as by pg_spec_conf. NULL with err. */
json_t *pg_spec_render(const pv_spec_t *s, pg_conf_t *c, char **pgbr, na_err_t *err);

/* pg_rest.c: one call to a member's Patroni REST API, on a worker inside
 * the member's network namespace. */
typedef struct pg_target {
	char ip[NA_ADDR_STRLEN], node[64], pw[65];
	char *ca; /* PEM, NULL: plain HTTP */
} pg_target_t;
/* The member's address, node name, REST password and CA (t->ca malloc'd). */
int pg_target_of(const pv_spec_t *s, pg_target_t *t, na_err_t *err);
/* status and the answer (malloc'd, NUL-terminated), or -1 with 502
 * patroni_unreachable. */
int pg_http(const pg_target_t *t, const char *method, const char *path, const char *body,
	    long timeout_ms, long *status, char **out, na_err_t *err);
/* The member /cluster names leader, or -1 (503 patroni_refused: none). */
int pg_cluster_leader(const pg_target_t *t, char *leader, size_t n, na_err_t *err);

/* pg_watch.c: the poller behind GET's view. Loop thread. */
void pg_watch_init(na_agent_t *ag);
void pg_watch_fini(void);
void pg_state(const char *name, const pv_spec_t *spec, const char *state);
void pg_view(const char *name, json_t *obj);
/* The addresses of the members Patroni's /cluster showed running as the
 * poller last saw it (at most max), or -1 when that view is unknown or
 * older than 10 s. */
int pg_members_up(const char *name, char (*up)[NA_ADDR_STRLEN], size_t max);

/* pg_patroni.c: the role's actions and live updates (role.h). Loop thread. */
int pg_init(na_agent_t *ag, na_err_t *err);
/* pg_patroni.c, loop thread: a member that runs watches its Raft join
 * (pg_raft.h); any other state ends the watch. */
void pg_join_state(const char *name, const pv_spec_t *spec, const char *state);
void pg_fini(void);
int pg_apply(const char *name, const pv_spec_t *spec, pv_role_cb cb, void *ud, na_err_t *err);

#endif
