/* Raft voters of a postgres cluster (pg_raft.c): provision-internal, for
 * the postgres role's live update of `members`. */
#ifndef PV_PG_RAFT_H
#define PV_PG_RAFT_H

#include <stddef.h>

#include "netagent/agent.h"
#include "netagent/err.h"
#include "provision/role.h"

#define PG_RAFT_MAX 16

typedef struct pg_raft_req {
	na_agent_t *agent;	    /* for the timer between rounds */
	const char *container;	    /* a running member */
	const char *self_ip;	    /* its overlay address (the Raft port listens there) */
	int port;		    /* Raft port (5010) */
	const char *password;	    /* Raft password, or NULL */
	const char *const *members; /* every voter wanted, addresses without port */
	size_t nmembers;
} pg_raft_req_t;

/* One member's view, from pysyncobj's `syncobj_admin -status` ("key: value"
 * lines; node ids are "ip:port"). */
typedef struct pg_raft_status {
	char leader[64]; /* "" while it follows no leader */
	struct {
		char node[64];
		int up; /* connected */
	} partner[2 * PG_RAFT_MAX];
	size_t npartner;
} pg_raft_status_t;

/* -1 when OUT is not a status answer (no raft_term line). */
int pg_raft_status_parse(const char *out, pg_raft_status_t *st);
/* 1 when NODE is one of the partners, i.e. a voter in this member's view. */
int pg_raft_status_has(const pg_raft_status_t *st, const char *node);

/* Loop thread: removes the voters no longer wanted, one at a time, each
 * once every voter that stays is connected (a new member adds itself, or
 * pg_raft_join has it added); cb once done, or with 503 raft_unavailable after 2 minutes
 * of waiting (the reason in the message). A repeat changes nothing.
 * Witnesses (voters without PostgreSQL) are members like the others. */
int pg_raft_sync(const pg_raft_req_t *r, pv_role_cb cb, void *ud, na_err_t *err);

/* Loop thread: a member that started watches its own join (pg_raft.c):
 * when it follows no Raft leader after 10 s it asks the leader to add
 * it, until it does (10 minutes at most). Replaces the container's
 * previous watch; nothing for a single member. */
int pg_raft_join(const pg_raft_req_t *r, na_err_t *err);
/* Loop thread: the container stopped or went away. */
void pg_raft_join_stop(const char *container);
/* Module stop. */
void pg_raft_fini(void);

#endif
