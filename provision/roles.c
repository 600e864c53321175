/* The role table, the subnets roles render from, and capability names for
 * roles and the OCI builder. */
#include "provision/role.h"
#include "netagent/util.h"
#include "vxlan/vxlan.h"

#include <linux/capability.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

extern const pv_role_t pv_role_generic;
extern const pv_role_t pv_role_gateway;
extern const pv_role_t pv_role_postgres;

/* One row per role; a preset adds its own (extern above, row below). */
const pv_role_t *const pv_roles[] = {
    &pv_role_generic,
    &pv_role_gateway,
    &pv_role_postgres,
    NULL,
};

const pv_role_t *pv_role_find(const char *name)
{
	for (size_t i = 0; name && pv_roles[i]; i++)
		if (!strcmp(pv_roles[i]->name, name))
			return pv_roles[i];
	return NULL;
}

int pv_role_set_argv(pv_spec_t *s, const char *const *argv, size_t n, const char *what,
		     na_err_t *err)
{
	int same = s->argc == n;
	for (size_t i = 0; same && i < n; i++)
		same = !strcmp(s->argv[i], argv[i]);
	if (s->argc && !same)
		return na_err_set(err, 422, "invalid_field", "command",
				  "role %s runs %s: command cannot be given", s->role->name, what);
	for (size_t i = 0; i < s->argc; i++)
		free(s->argv[i]);
	free(s->argv);
	s->argc = 0;
	if (!(s->argv = calloc(n + 1, sizeof(char *))))
		return na_err_errno(err, ENOMEM, "command");
	for (size_t i = 0; i < n; i++) {
		if (!(s->argv[i] = strdup(argv[i])))
			return na_err_errno(err, ENOMEM, "command");
		s->argc++;
	}
	return 0;
}

static struct {
	pthread_mutex_t mu;
	struct {
		char name[64];
		na_addr_t subnet;
	} e[256];
	size_t n;
} subnets = {.mu = PTHREAD_MUTEX_INITIALIZER};

void pv_role_note_subnets(const pv_spec_t *s)
{
	for (size_t k = 0; k < s->nnets; k++) {
		vx_net_info_t info;
		na_err_t e = NA_ERR_INIT;
		if (vx_network_info(s->nets[k].network, &info, &e) < 0)
			continue;
		pthread_mutex_lock(&subnets.mu);
		size_t i;
		for (i = 0; i < subnets.n; i++)
			if (!strcmp(subnets.e[i].name, s->nets[k].network))
				break;
		/* Full: the oldest entry goes (a deleted network's, most
		 * likely); a miss is re-noted at the next start. */
		if (i == NA_ARRAY_SIZE(subnets.e)) {
			memmove(&subnets.e[0], &subnets.e[1], sizeof(subnets.e[0]) * (i - 1));
			subnets.n = i = NA_ARRAY_SIZE(subnets.e) - 1;
		}
		if (i == subnets.n)
			snprintf(subnets.e[subnets.n++].name, sizeof(subnets.e[0].name), "%s",
				 s->nets[k].network);
		subnets.e[i].subnet = info.subnet;
		pthread_mutex_unlock(&subnets.mu);
	}
}

int pv_role_subnet(const char *network, na_addr_t *out)
{
	int found = 0;
	pthread_mutex_lock(&subnets.mu);
	for (size_t i = 0; i < subnets.n && !found; i++)
		if (!strcmp(subnets.e[i].name, network)) {
			*out = subnets.e[i].subnet;
			found = 1;
		}
	pthread_mutex_unlock(&subnets.mu);
	return found;
}

/* Index = capability number (linux/capability.h), up to CAP_LAST_CAP of
 * the headers we build with; runc knows the same set. */
static const char *const cap_names[] = {
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
};

int pv_cap_from_name(const char *name)
{
	if (!name)
		return -1;
	if (!strncmp(name, "CAP_", 4))
		name += 4;
	for (size_t i = 0; i < NA_ARRAY_SIZE(cap_names); i++)
		if (!strcmp(cap_names[i], name))
			return (int)i;
	return -1;
}

const char *pv_cap_name(int cap)
{
	if (cap < 0 || (size_t)cap >= NA_ARRAY_SIZE(cap_names))
		return NULL;
	return cap_names[cap];
}
