/* Roles: what a container is for. The common part of a container (image,
 * networks, volumes, resources, restart policy) is the same for every
 * role; a role decides the rest: which extra fields it takes, the user
 * and capabilities its process runs with, its command, extra mounts, the
 * files it renders, and what GET adds. Adding a role ("postgres",
 * "gateway") is a file that defines a pv_role_t and a row in
 * provision/roles.c. */
#ifndef PV_ROLE_H
#define PV_ROLE_H

#include <jansson.h>
#include <stdint.h>

#include "netagent/addr.h"
#include "netagent/agent.h"
#include "netagent/validate.h"
#include "provision/spec.h"

typedef struct pv_role pv_role_t;
typedef void (*pv_role_cb)(void *ud, int rc, const na_err_t *err);

/* What a role's prepare step gets (on a worker thread). */
typedef struct pv_prep_ctx {
	const char *name;	/* container name */
	const char *dir;	/* the container's run dir: free for the role's files */
	const char *bundle;	/* the OCI bundle dir */
	const char *volume_dir; /* <state>/volumes/<container>: one dir per volume */
	const char *netns;	/* the container's network namespace file (it exists) */
	int render_only;	/* 1: a live update re-renders while the container runs */
} pv_prep_ctx_t;

struct pv_role {
	const char *name;
	/* Top-level fields this role accepts beyond the common ones (the
	 * role's own section, e.g. {"postgres", NA_F_OBJECT, 1}). */
	const na_field_t *fields;
	size_t nfields;
	/* Loop thread, no side effects: checks the role's fields in body and
	 * fills what the role decides into spec (user, capabilities, argv when
	 * the role builds the command, restart default, extra tmpfs mounts,
	 * shm size). Errors are 422 with the field. */
	int (*validate)(const json_t *body, pv_spec_t *spec, na_err_t *err);
	/* Worker thread, before a create or an update changes anything: the
	 * file-system half of validation (a repository, a path the body
	 * names). 422 with the field. NULL: nothing to check. */
	int (*check_fs)(const pv_spec_t *spec, na_err_t *err);
	/* Worker thread, before every start: renders the role's files (e.g.
	 * patroni.yml into ctx->dir). NULL: nothing to render. */
	int (*prepare)(const pv_spec_t *spec, const pv_prep_ctx_t *ctx, na_err_t *err);
	/* Module init: the role's own routes (switchover, backups). NULL: none. */
	int (*init)(na_agent_t *ag, na_err_t *err);

	/* Live updates. live_fields removes from a copy of the canonical
	 * JSON what apply can change in a running container (gateway
	 * backends, postgres parameters): the rest makes the container's tag,
	 * and a PUT that leaves the tag alone on a running container is
	 * applied live: prepare again (render_only), then apply, then the
	 * state file. No restart, and a restarted agent adopts the container
	 * as matching. Both NULL: every change restarts. */
	void (*live_fields)(json_t *canon);
	/* Loop thread; cb once the running process took the new files (a
	 * reload, a REST call). Returns < 0 with err when it cannot start. */
	int (*apply)(const char *name, const pv_spec_t *spec, pv_role_cb cb, void *ud,
		     na_err_t *err);
	/* Loop thread, never blocking: what GET adds for this container (a
	 * cached view, e.g. Patroni's) into obj. NULL: nothing. */
	void (*view)(const char *name, json_t *obj);
	/* Loop thread: the container's state changed ("running", "exited",
	 * "stopped", ..., "deleted" last). spec is the container's (borrowed
	 * for the call; NULL with "deleted"). Roles start and stop their
	 * watchers here. */
	void (*state)(const char *name, const pv_spec_t *spec, const char *state);
	/* Module stop: the role's timers and jobs end (containers run on). */
	void (*fini)(void);
};

/* The table (roles.c). NULL-terminated. */
extern const pv_role_t *const pv_roles[];
const pv_role_t *pv_role_find(const char *name);

/* The subnets of a container's overlay networks for renders on worker
 * threads, which cannot ask vxlan (loop thread only). Roles note them on
 * the loop thread when they validate a spec and when a container starts
 * (a restarted agent validated before its networks loaded); a network's
 * subnet never changes while it exists. roles.c. */
void pv_role_note_subnets(const pv_spec_t *s);
/* Any thread: 1 and *out when the network's subnet was noted, else 0. */
int pv_role_subnet(const char *network, na_addr_t *out);

/* For roles that build their command: argv (n strings) becomes s's
 * command. A command in the body is refused (422 on "command", saying the
 * role runs `what`) unless it is that very argv: the canonical form (a
 * state file, a GET sent back) carries the command the role made. */
int pv_role_set_argv(pv_spec_t *s, const char *const *argv, size_t n, const char *what,
		     na_err_t *err);

/* Capability names ("CHOWN", no CAP_ prefix) and bits, for roles and the
 * OCI builder. -1 when unknown. */
int pv_cap_from_name(const char *name);
const char *pv_cap_name(int cap);

#endif
