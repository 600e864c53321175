/* A container's desired state as the API takes it (PUT /v1/containers/{n}),
 * parsed and validated without side effects, and its canonical JSON (every
 * default filled in): what GET shows, what the state file keeps, and what
 * two PUTs are compared by. */
#ifndef PV_SPEC_H
#define PV_SPEC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "netagent/err.h"

#define PV_MAX_NETS   8 /* eth0..eth7 */
#define PV_MAX_VOLS   16
#define PV_MAX_ARGS   256
#define PV_MAX_ARG    4096 /* bytes of one argument or env value */
#define PV_MAX_ENV    256
#define PV_MAX_TMPFS  8
#define PV_PATH_MAX   256 /* mount targets and rootfs paths */
#define PV_MEM_MIN_MB 32

enum pv_restart { PV_RESTART_NEVER, PV_RESTART_ON_FAILURE, PV_RESTART_ALWAYS };

typedef struct pv_netreq {
	char network[64];
	char ip[48]; /* as given ("198.18.1.2/24" or "198.18.1.2"), "" = allocate */
} pv_netreq_t;

typedef struct pv_volume {
	char name[64];
	char mount[PV_PATH_MAX];
} pv_volume_t;

/* A private tmpfs a role wants (e.g. /var/run/postgresql owned by postgres). */
typedef struct pv_tmpfs {
	char dest[PV_PATH_MAX];
	unsigned mode, uid, gid, size_mb;
} pv_tmpfs_t;

/* A directory of the container's run dir that a role binds into it: the
 * files the role renders (read-only) or sockets it shares with the agent
 * (read-write). sub is a plain name; w_prepare makes <run dir>/<sub>. */
#define PV_MAX_BINDS 4
typedef struct pv_bind {
	char sub[32];
	char src[PV_PATH_MAX]; /* instead of sub: a host directory (checked by the role) */
	char dest[PV_PATH_MAX];
	int rw;
	unsigned uid, gid, mode; /* of <run dir>/<sub> */
} pv_bind_t;

struct pv_role;

typedef struct pv_spec {
	const struct pv_role *role;
	int rootfs_image; /* 0: the host image */
	char rootfs[PV_PATH_MAX];
	char **argv; /* NULL-terminated; argc entries */
	size_t argc;
	char **env; /* "K=V", NULL-terminated */
	size_t nenv;
	pv_netreq_t nets[PV_MAX_NETS];
	size_t nnets;
	pv_volume_t vols[PV_MAX_VOLS];
	size_t nvols;
	long long memory_mb, cpu_shares, pids_max; /* 0: unlimited / default */
	enum pv_restart restart;
	int restart_set; /* given by the user (else the role's default applies) */
	int stop_timeout_s;
	/* Decided by the role: */
	unsigned uid, gid;
	unsigned gids[8];
	size_t ngids;
	uint64_t caps; /* bit n = capability n */
	unsigned shm_mb;
	/* The least wait before a restart after an exit nobody asked for
	 * (a crash): the postgres role lets a dead leader's lock expire so
	 * that Patroni promotes the synchronous standby. 0: the backoff. */
	unsigned restart_floor_ms;
	pv_tmpfs_t tmpfs[PV_MAX_TMPFS];
	size_t ntmpfs;
	pv_bind_t binds[PV_MAX_BINDS];
	size_t nbinds;
	json_t *body; /* the request body (a reference), for the role's section */
} pv_spec_t;

/* What the host can do, for validation (filled by the runtime probe). */
typedef struct pv_limits {
	long long mem_total_mb; /* physical memory */
	int have_memory, have_cpu, have_pids;
	const char *why_memory, *why_cpu, *why_pids; /* reason a controller is missing */
} pv_limits_t;

/* Parses body into spec (zeroed first) and runs the role's validate. Pure:
 * no file system, no kernel; rootfs existence is checked by the caller on
 * a worker. 422 with `field` on any problem. */
int pv_spec_parse(json_t *body, const pv_limits_t *lim, pv_spec_t *spec, na_err_t *err);
void pv_spec_free(pv_spec_t *spec);
/* The canonical form: defaults filled in, keys sorted when dumped. */
json_t *pv_spec_json(const pv_spec_t *spec);
/* FNV-1a of the canonical form's compact dump, 16 hex digits: the tag a
 * started container carries, so a restarted agent knows whether a running
 * container still matches its spec. */
void pv_spec_tag(const json_t *canon, char out[17]);

/* Validators shared with roles. */
/* Absolute, normalised (no "//", ".", "..", trailing '/'), printable, not
 * "/", not /proc, /sys, /dev or below. */
int pv_check_mount_target(const char *path, const char *field, na_err_t *err);
/* Absolute, normalised, printable, not "/": the lexical half of a rootfs
 * check (the worker lstat()s it). */
int pv_check_host_path(const char *path, const char *field, na_err_t *err);
int pv_env_name_valid(const char *k);

#endif
