/* The OCI runtime configuration (config.json) of a container, built with
 * jansson from its spec. Pure: everything about the host comes in ctx. */
#ifndef PV_OCI_H
#define PV_OCI_H

#include <jansson.h>

#include "provision/spec.h"

typedef struct pv_oci_ctx {
	const char *hostname;	  /* the container's name */
	const char *netns;	  /* network namespace file runc joins */
	const char *cgroups_path; /* absolute: "/netagent/<agent>/<name>" */
	const char *root;	  /* root.path: "rootfs" (in the bundle) or the image dir */
	const char *volume_dir;	  /* <state>/volumes/<container> */
	const char *hosts_file;	  /* bound read-only over /etc/hosts, or NULL */
	const char *hostname_file;
	const char *run_dir; /* the container's run dir: source of the role's binds */
	int rro;	     /* recursive read-only binds ("rro": runc >= 1.1, kernel >= 5.12) */
	int memsw;	     /* the memory controller accounts swap (memory.memsw.*) */
	/* RLIMIT_NOFILE for the process: a container without CAP_SYS_RESOURCE
	 * cannot be given more than the agent's own hard limit. 0: 1024. */
	unsigned long nofile;
	/* Host image: top-level directories that are real directories on the
	 * host and get a read-only bind of their own (on a merged-/usr host
	 * they are symlinks and the bundle's rootfs carries the symlinks). */
	const char *host_dirs[8];
	size_t nhost_dirs;
} pv_oci_ctx_t;

/* NULL with err on allocation failure only: the spec is valid already. */
json_t *pv_oci_config(const pv_spec_t *spec, const pv_oci_ctx_t *ctx, na_err_t *err);

/* The seccomp profile (also for tests and docs). */
json_t *pv_oci_seccomp(void);

#endif
