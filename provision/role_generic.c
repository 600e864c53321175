/* Role "generic": the caller's own command, as an unprivileged user by
 * default, with no capabilities unless it asks for some of a short list.
 * Nothing a database host needs from an arbitrary process (SYS_ADMIN,
 * NET_ADMIN, SYS_PTRACE, SYS_MODULE...) can be asked for: those would undo
 * the namespace and seccomp isolation. */
#include "netagent/util.h"
#include "provision/role.h"

#include <stdio.h>
#include <string.h>

#define NOBODY 65534

static const na_field_t fields[] = {
    {"user", NA_F_OBJECT, 0, 0, 0},
    {"capabilities", NA_F_ARRAY, 0, 0, 0},
};

/* What a service may reasonably need: file ownership, dropping to another
 * user, binding low ports, raw sockets. Not SYS_CHROOT: chroot is refused
 * by the seccomp profile anyway. */
static const char *const allowed[] = {
    "CHOWN",  "DAC_OVERRIDE", "FOWNER",		  "FSETID",  "KILL",	    "SETGID",
    "SETUID", "SETPCAP",      "NET_BIND_SERVICE", "NET_RAW", "AUDIT_WRITE",
};

static int parse_user(const json_t *u, pv_spec_t *s, na_err_t *err)
{
	static const na_field_t f[] = {
	    {"uid", NA_F_INT, 1, 0, 2147483647},
	    {"gid", NA_F_INT, 0, 0, 2147483647},
	};
	s->uid = s->gid = NOBODY;
	if (!u)
		return 0;
	if (na_fields_check((json_t *)u, f, NA_ARRAY_SIZE(f), "user.", err) < 0)
		return -1;
	s->uid = (unsigned)json_integer_value(json_object_get(u, "uid"));
	json_t *g = json_object_get(u, "gid");
	s->gid = g ? (unsigned)json_integer_value(g) : s->uid;
	return 0;
}

static int parse_caps(const json_t *caps, pv_spec_t *s, na_err_t *err)
{
	size_t i;
	json_t *v;
	char field[48];
	json_array_foreach(caps, i, v)
	{
		snprintf(field, sizeof(field), "capabilities[%zu]", i);
		const char *n = json_string_value(v);
		int cap = n ? pv_cap_from_name(n) : -1;
		if (cap < 0)
			return na_err_set(err, 422, "invalid_field", field,
					  "%s must be a capability name like \"NET_BIND_SERVICE\"",
					  field);
		size_t k;
		for (k = 0; k < NA_ARRAY_SIZE(allowed); k++)
			if (!strcmp(allowed[k], pv_cap_name(cap)))
				break;
		if (k == NA_ARRAY_SIZE(allowed))
			return na_err_set(
			    err, 422, "invalid_field", field,
			    "capability %s is not allowed for role generic (allowed: "
			    "CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, SETGID, "
			    "SETUID, SETPCAP, NET_BIND_SERVICE, NET_RAW, AUDIT_WRITE)",
			    pv_cap_name(cap));
		s->caps |= 1ULL << cap;
	}
	return 0;
}

static int validate(const json_t *body, pv_spec_t *s, na_err_t *err)
{
	if (!s->argc)
		return na_err_set(err, 422, "missing_field", "command",
				  "command is required for role generic");
	if (parse_user(json_object_get(body, "user"), s, err) < 0 ||
	    parse_caps(json_object_get(body, "capabilities"), s, err) < 0)
		return -1;
	if (!s->restart_set)
		s->restart = PV_RESTART_NEVER;
	s->shm_mb = 64;
	return 0;
}

const pv_role_t pv_role_generic = {
    .name = "generic",
    .fields = fields,
    .nfields = NA_ARRAY_SIZE(fields),
    .validate = validate,
};
