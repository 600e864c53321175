/* Containers (SPEC §2 "Container", §4 containers routes, §5): the module's
 * public face. provision/ runs each container with an OCI runtime (runc)
 * under a per-container monitor (bin/netagent-monitor), in a network
 * namespace the agent made and wired to overlay networks through vxlan's
 * public header. Loop thread only, like everything of the module.
 *
 * Role presets (postgres, gateway) plug in through provision/role.h: a
 * role is one file and one row of the table in provision/roles.c. */
#ifndef PV_PROVISION_H
#define PV_PROVISION_H

#include <stddef.h>

#include "netagent/agent.h"

extern const na_module_t pv_module;

/* A container as another module sees it (vip/ resolving a target, a role's
 * route proxying to Patroni). */
typedef struct pv_info {
	char name[64];
	char role[32];
	char state[16];	 /* "running", "exited", ... as GET shows it */
	int pid;	 /* init's pid in the agent's PID namespace, 0 if not running */
	char netns[512]; /* its network namespace file */
	struct {
		char network[64], ifname[16], ip[48]; /* ip with "/plen" */
	} ifs[8];
	size_t nifs;
} pv_info_t;

/* 0 and *out, or -1 with 404 "not_found". */
int pv_container_info(const char *name, pv_info_t *out, na_err_t *err);

/* One-off job inside a running container's namespaces (`runc exec`, so the
 * same user, capabilities, seccomp profile and cgroup apply): pg_dump,
 * pgbackrest, patronictl. stdout goes to stdout_path when it is set (a
 * host path, created exclusively, mode 0600, never following a symlink),
 * else it is captured with stderr; capture keeps the last `capture_max`
 * bytes (default 64 KiB). The job is killed after timeout_ms (0: 10 min).
 * cb runs once on the loop thread: rc 0 and the exit status (128+N for
 * signal N), or rc < 0 with err when it could not run at all. output is
 * NUL-terminated and borrowed for the call. Returns < 0 with err when the
 * request is refused at once (not running, bad argv); cb does not run. */
typedef struct pv_exec_req {
	const char *container;
	const char *const *argv; /* NULL-terminated, argv[0] looked up in the container's PATH */
	const char *const *env;	 /* extra "K=V", NULL-terminated, or NULL */
	const char *stdout_path; /* or NULL */
	const char *user;	 /* "uid[:gid]" or NULL: the container's user */
	unsigned timeout_ms;
	size_t capture_max;
} pv_exec_req_t;
typedef void (*pv_exec_cb)(void *ud, int rc, const na_err_t *err, int status, const char *output,
			   size_t len);
int pv_exec(const pv_exec_req_t *req, pv_exec_cb cb, void *ud, na_err_t *err);

#endif
