/* The role table, and capability names for roles and the OCI builder. */
#include "provision/role.h"
#include "netagent/util.h"

#include <linux/capability.h>
#include <string.h>

extern const pv_role_t pv_role_generic;

/* One row per role; a preset adds its own (extern above, row below). */
const pv_role_t *const pv_roles[] = {
    &pv_role_generic,
    NULL,
};

const pv_role_t *pv_role_find(const char *name)
{
	for (size_t i = 0; name && pv_roles[i]; i++)
		if (!strcmp(pv_roles[i]->name, name))
			return pv_roles[i];
	return NULL;
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
