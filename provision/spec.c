/* PUT /v1/containers/{name} bodies: parsing, validation and the canonical
 * form. Pure functions (unit-tested in tests/unit/test_pv_spec.c): what
 * needs the file system or another module (rootfs existence, networks)
 * is checked by the caller. */
#include "provision/spec.h"
#include "netagent/addr.h"
#include "netagent/util.h"
#include "netagent/validate.h"
#include "provision/role.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static const na_field_t common_fields[] = {
    {"role", NA_F_STRING, 0, 0, 0},	     {"image", NA_F_OBJECT, 0, 0, 0},
    {"command", NA_F_ARRAY, 0, 0, 0},	     {"env", NA_F_OBJECT, 0, 0, 0},
    {"networks", NA_F_ARRAY, 0, 0, 0},	     {"volumes", NA_F_ARRAY, 0, 0, 0},
    {"resources", NA_F_OBJECT, 0, 0, 0},     {"restart", NA_F_STRING, 0, 0, 0},
    {"stop_timeout_s", NA_F_INT, 0, 0, 300},
};
#define NCOMMON NA_ARRAY_SIZE(common_fields)

static const char *const restart_names[] = {"never", "on-failure", "always"};

int pv_env_name_valid(const char *k)
{
	if (!k || !(isalpha((unsigned char)*k) || *k == '_'))
		return 0;
	for (const char *p = k; *p; p++)
		if (!(isalnum((unsigned char)*p) || *p == '_'))
			return 0;
	return strlen(k) <= 255;
}

/* The lexical rules every path we take shares. */
static int path_lexical(const char *p, const char *field, const char *what, na_err_t *err)
{
	size_t n = strlen(p);
	if (p[0] != '/')
		return na_err_set(err, 422, "invalid_field", field, "%s must be an absolute path",
				  what);
	if (n >= PV_PATH_MAX)
		return na_err_set(err, 422, "invalid_field", field,
				  "%s is too long (at most %d bytes)", what, PV_PATH_MAX - 1);
	if (n == 1)
		return na_err_set(err, 422, "invalid_field", field, "%s must not be \"/\"", what);
	for (const char *c = p; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			return na_err_set(err, 422, "invalid_field", field,
					  "%s must not contain control characters", what);
	if (p[n - 1] == '/')
		return na_err_set(err, 422, "invalid_field", field,
				  "%s must not end with '/' (normalised form)", what);
	/* Component by component: "..", "." and empty components ("//")
	 * make two spellings of one path, and ".." escapes. */
	for (const char *c = p; *c;) {
		const char *s = c + 1, *e = strchr(s, '/');
		size_t l = e ? (size_t)(e - s) : strlen(s);
		if (l == 2 && s[0] == '.' && s[1] == '.')
			return na_err_set(err, 422, "invalid_field", field,
					  "%s must not contain '..'", what);
		if (l == 0 || (l == 1 && s[0] == '.'))
			return na_err_set(err, 422, "invalid_field", field,
					  "%s must be normalised (no '//' or '/./')", what);
		c = s + l;
	}
	return 0;
}

int pv_check_host_path(const char *path, const char *field, na_err_t *err)
{
	return path_lexical(path, field, field, err);
}

static int under(const char *p, const char *top)
{
	size_t n = strlen(top);
	return !strncmp(p, top, n) && (p[n] == 0 || p[n] == '/');
}

int pv_check_mount_target(const char *path, const char *field, na_err_t *err)
{
	static const char *const kernel[] = {"/proc", "/sys", "/dev"};
	if (path_lexical(path, field, field, err) < 0)
		return -1;
	/* The runtime's own mounts: a volume over them would hide /proc's
	 * masking or give the container a writable /sys. */
	for (size_t i = 0; i < NA_ARRAY_SIZE(kernel); i++)
		if (under(path, kernel[i]))
			return na_err_set(err, 422, "invalid_field", field,
					  "%s must not be %s or below it", field, kernel[i]);
	return 0;
}

static char *dup_or_fail(const char *s, na_err_t *err)
{
	char *d = strdup(s);
	if (!d)
		na_err_errno(err, ENOMEM, "copy");
	return d;
}

static int parse_image(json_t *img, pv_spec_t *s, na_err_t *err)
{
	static const na_field_t f[] = {{"type", NA_F_STRING, 1, 0, 0},
				       {"path", NA_F_STRING, 0, 0, 0}};
	if (!img)
		return 0;
	if (na_fields_check(img, f, NA_ARRAY_SIZE(f), "image.", err) < 0)
		return -1;
	const char *type = json_string_value(json_object_get(img, "type"));
	json_t *path = json_object_get(img, "path");
	if (!strcmp(type, "host")) {
		if (path)
			return na_err_set(err, 422, "unknown_field", "image.path",
					  "image.path is only for type \"rootfs\"");
		return 0;
	}
	if (strcmp(type, "rootfs"))
		return na_err_set(err, 422, "invalid_field", "image.type",
				  "image.type must be \"host\" or \"rootfs\", got \"%.64s\"", type);
	if (!path)
		return na_err_set(err, 422, "missing_field", "image.path",
				  "image.path is required for type \"rootfs\"");
	const char *p = json_string_value(path);
	if (pv_check_host_path(p, "image.path", err) < 0)
		return -1;
	s->rootfs_image = 1;
	snprintf(s->rootfs, sizeof(s->rootfs), "%s", p);
	return 0;
}

static int parse_command(json_t *cmd, pv_spec_t *s, na_err_t *err)
{
	size_t i, n = json_array_size(cmd);
	json_t *v;
	char field[32];
	if (!cmd)
		return 0;
	if (n == 0)
		return na_err_set(err, 422, "invalid_field", "command",
				  "command must have at least one element");
	if (n > PV_MAX_ARGS)
		return na_err_set(err, 422, "invalid_field", "command",
				  "command has %zu elements (at most %d)", n, PV_MAX_ARGS);
	s->argv = calloc(n + 1, sizeof(char *));
	if (!s->argv)
		return na_err_errno(err, ENOMEM, "command");
	json_array_foreach(cmd, i, v)
	{
		snprintf(field, sizeof(field), "command[%zu]", i);
		if (!json_is_string(v))
			return na_err_set(err, 422, "invalid_field", field, "%s must be a string",
					  field);
		if (json_string_length(v) > PV_MAX_ARG)
			return na_err_set(err, 422, "invalid_field", field,
					  "%s is too long (at most %d bytes)", field, PV_MAX_ARG);
		if (i == 0 && !json_string_length(v))
			return na_err_set(err, 422, "invalid_field", field,
					  "command[0] must not be empty");
		if (!(s->argv[i] = dup_or_fail(json_string_value(v), err)))
			return -1;
		s->argc++;
	}
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int parse_env(json_t *env, pv_spec_t *s, na_err_t *err)
{
	const char *k;
	json_t *v;
	char field[300];
	size_t n = json_object_size(env);
	if (!env)
		return 0;
	if (n > PV_MAX_ENV)
		return na_err_set(err, 422, "invalid_field", "env",
				  "env has %zu variables (at most %d)", n, PV_MAX_ENV);
	s->env = calloc(n + 1, sizeof(char *));
	if (!s->env)
		return na_err_errno(err, ENOMEM, "env");
	json_object_foreach(env, k, v)
	{
		snprintf(field, sizeof(field), "env.%.255s", k);
		if (!pv_env_name_valid(k))
			return na_err_set(err, 422, "invalid_field", "env",
					  "env name \"%.64s\" must match [A-Za-z_][A-Za-z0-9_]*",
					  k);
		if (!json_is_string(v))
			return na_err_set(err, 422, "invalid_field", field, "%s must be a string",
					  field);
		if (json_string_length(v) > PV_MAX_ARG)
			return na_err_set(err, 422, "invalid_field", field,
					  "%s is too long (at most %d bytes)", field, PV_MAX_ARG);
		if (asprintf(&s->env[s->nenv], "%s=%s", k, json_string_value(v)) < 0)
			return na_err_errno(err, ENOMEM, "env");
		s->nenv++;
	}
	qsort(s->env, s->nenv, sizeof(char *), cmp_str);
	return 0;
}

static int parse_networks(json_t *nets, pv_spec_t *s, na_err_t *err)
{
	static const na_field_t f[] = {{"network", NA_F_STRING, 1, 0, 0},
				       {"ip", NA_F_STRING, 0, 0, 0}};
	size_t i, n = json_array_size(nets);
	json_t *v;
	char pre[32], field[48];
	if (n > PV_MAX_NETS)
		return na_err_set(err, 422, "invalid_field", "networks",
				  "at most %d networks (eth0..eth%d), got %zu", PV_MAX_NETS,
				  PV_MAX_NETS - 1, n);
	json_array_foreach(nets, i, v)
	{
		snprintf(pre, sizeof(pre), "networks[%zu].", i);
		if (na_fields_check(v, f, NA_ARRAY_SIZE(f), pre, err) < 0)
			return -1;
		const char *net = json_string_value(json_object_get(v, "network"));
		snprintf(field, sizeof(field), "%snetwork", pre);
		if (na_name_check(net, field, err) < 0)
			return -1;
		for (size_t j = 0; j < s->nnets; j++)
			if (!strcmp(s->nets[j].network, net))
				return na_err_set(err, 422, "invalid_field", field,
						  "network %s is listed twice", net);
		pv_netreq_t *r = &s->nets[s->nnets];
		snprintf(r->network, sizeof(r->network), "%s", net);
		json_t *ip = json_object_get(v, "ip");
		if (ip) {
			na_addr_t a;
			snprintf(field, sizeof(field), "%sip", pre);
			const char *t = json_string_value(ip);
			if (strlen(t) >= sizeof(r->ip) || na_addr_parse(t, -1, &a) < 0 ||
			    a.family != AF_INET)
				return na_err_set(err, 422, "invalid_field", field,
						  "%s must be an IPv4 address like 198.18.1.2/24",
						  field);
			snprintf(r->ip, sizeof(r->ip), "%s", t);
		}
		s->nnets++;
	}
	return 0;
}

static int parse_volumes(json_t *vols, pv_spec_t *s, na_err_t *err)
{
	static const na_field_t f[] = {{"name", NA_F_STRING, 1, 0, 0},
				       {"mount", NA_F_STRING, 1, 0, 0}};
	size_t i, n = json_array_size(vols);
	json_t *v;
	char pre[32], field[48];
	if (n > PV_MAX_VOLS)
		return na_err_set(err, 422, "invalid_field", "volumes",
				  "at most %d volumes, got %zu", PV_MAX_VOLS, n);
	json_array_foreach(vols, i, v)
	{
		snprintf(pre, sizeof(pre), "volumes[%zu].", i);
		if (na_fields_check(v, f, NA_ARRAY_SIZE(f), pre, err) < 0)
			return -1;
		const char *name = json_string_value(json_object_get(v, "name"));
		const char *mnt = json_string_value(json_object_get(v, "mount"));
		snprintf(field, sizeof(field), "%sname", pre);
		if (na_name_check(name, field, err) < 0)
			return -1;
		for (size_t j = 0; j < s->nvols; j++)
			if (!strcmp(s->vols[j].name, name))
				return na_err_set(err, 422, "invalid_field", field,
						  "volume %s is listed twice", name);
		snprintf(field, sizeof(field), "%smount", pre);
		if (pv_check_mount_target(mnt, field, err) < 0)
			return -1;
		for (size_t j = 0; j < s->nvols; j++)
			if (!strcmp(s->vols[j].mount, mnt))
				return na_err_set(err, 422, "invalid_field", field,
						  "two volumes are mounted at %s", mnt);
		snprintf(s->vols[s->nvols].name, sizeof(s->vols[0].name), "%s", name);
		snprintf(s->vols[s->nvols].mount, sizeof(s->vols[0].mount), "%s", mnt);
		s->nvols++;
	}
	return 0;
}

static int parse_resources(json_t *r, const pv_limits_t *lim, pv_spec_t *s, na_err_t *err)
{
	long long memmax = lim && lim->mem_total_mb > PV_MEM_MIN_MB ? lim->mem_total_mb : 1 << 22;
	/* The memory floor covers runc's own init and a small /dev/shm: below
	 * it a container is OOM-killed before its process does anything. */
	const na_field_t f[] = {
	    {"memory_mb", NA_F_INT, 0, PV_MEM_MIN_MB, memmax},
	    {"cpu_shares", NA_F_INT, 0, 2, 262144},
	    {"pids_max", NA_F_INT, 0, 8, 4194304},
	};
	if (!r)
		return 0;
	if (na_fields_check(r, f, NA_ARRAY_SIZE(f), "resources.", err) < 0) {
		if (!strcmp(err->field, "resources.memory_mb") &&
		    !strcmp(err->code, "out_of_range"))
			na_err_set(err, 422, "out_of_range", "resources.memory_mb",
				   "resources.memory_mb must be between %d (the floor: runc, the "
				   "process and /dev/shm all count) and %lld (this host's memory)",
				   PV_MEM_MIN_MB, memmax);
		return -1;
	}
	json_t *m = json_object_get(r, "memory_mb"), *c = json_object_get(r, "cpu_shares"),
	       *p = json_object_get(r, "pids_max");
	/* Refused rather than run unlimited: the caller asked for a limit. */
	if (m && lim && !lim->have_memory)
		return na_err_set(err, 422, "unsupported", "resources.memory_mb",
				  "this host cannot limit memory: %s", lim->why_memory);
	if (c && lim && !lim->have_cpu)
		return na_err_set(err, 422, "unsupported", "resources.cpu_shares",
				  "this host cannot set cpu shares: %s", lim->why_cpu);
	if (p && lim && !lim->have_pids)
		return na_err_set(err, 422, "unsupported", "resources.pids_max",
				  "this host cannot limit pids: %s", lim->why_pids);
	s->memory_mb = m ? json_integer_value(m) : 0;
	s->cpu_shares = c ? json_integer_value(c) : 0;
	s->pids_max = p ? json_integer_value(p) : 0;
	return 0;
}

static int parse_restart(json_t *r, pv_spec_t *s, na_err_t *err)
{
	if (!r)
		return 0;
	const char *v = json_string_value(r);
	for (size_t i = 0; i < NA_ARRAY_SIZE(restart_names); i++)
		if (!strcmp(v, restart_names[i])) {
			s->restart = (enum pv_restart)i;
			s->restart_set = 1;
			return 0;
		}
	return na_err_set(err, 422, "invalid_field", "restart",
			  "restart must be \"always\", \"on-failure\" or \"never\", got \"%.32s\"",
			  v);
}

int pv_spec_parse(json_t *body, const pv_limits_t *lim, pv_spec_t *s, na_err_t *err)
{
	memset(s, 0, sizeof(*s));
	s->stop_timeout_s = 10;
	json_t *role = json_object_get(body, "role");
	if (role && !json_is_string(role))
		return na_err_set(err, 422, "invalid_field", "role", "role must be a string");
	const char *rname = role ? json_string_value(role) : "generic";
	s->role = pv_role_find(rname);
	if (!s->role) {
		char known[128] = "";
		for (size_t i = 0; pv_roles[i]; i++)
			snprintf(known + strlen(known), sizeof(known) - strlen(known), "%s%s",
				 i ? ", " : "", pv_roles[i]->name);
		return na_err_set(err, 422, "invalid_field", "role",
				  "unknown role \"%.32s\" (known: %s)", rname, known);
	}
	/* One field table: the common fields and the role's own, so an
	 * unknown key is reported whatever it is. */
	na_field_t f[NCOMMON + 16];
	size_t nf = NCOMMON;
	memcpy(f, common_fields, sizeof(common_fields));
	for (size_t i = 0; i < s->role->nfields && nf < NA_ARRAY_SIZE(f); i++)
		f[nf++] = s->role->fields[i];
	s->body = json_incref(body);
	if (na_fields_check(body, f, nf, NULL, err) < 0 ||
	    parse_image(json_object_get(body, "image"), s, err) < 0 ||
	    parse_command(json_object_get(body, "command"), s, err) < 0 ||
	    parse_env(json_object_get(body, "env"), s, err) < 0 ||
	    parse_networks(json_object_get(body, "networks"), s, err) < 0 ||
	    parse_volumes(json_object_get(body, "volumes"), s, err) < 0 ||
	    parse_resources(json_object_get(body, "resources"), lim, s, err) < 0 ||
	    parse_restart(json_object_get(body, "restart"), s, err) < 0)
		return -1;
	json_t *st = json_object_get(body, "stop_timeout_s");
	if (st)
		s->stop_timeout_s = (int)json_integer_value(st);
	if (s->role->validate(body, s, err) < 0)
		return -1;
	/* /dev/shm is tmpfs and charged to the memory cgroup: never more than
	 * half the limit, so a full /dev/shm alone cannot OOM the container. */
	if (s->memory_mb && s->shm_mb > s->memory_mb / 2)
		s->shm_mb = (unsigned)(s->memory_mb / 2);
	return 0;
}

void pv_spec_free(pv_spec_t *s)
{
	for (size_t i = 0; s->argv && s->argv[i]; i++)
		free(s->argv[i]);
	for (size_t i = 0; s->env && s->env[i]; i++)
		free(s->env[i]);
	free(s->argv);
	free(s->env);
	json_decref(s->body);
	memset(s, 0, sizeof(*s));
}

json_t *pv_spec_json(const pv_spec_t *s)
{
	json_t *o = json_object(), *cmd = json_array(), *env = json_object(), *nets = json_array(),
	       *vols = json_array(), *res = json_object();
	json_object_set_new(o, "role", json_string(s->role->name));
	json_object_set_new(o, "image",
			    s->rootfs_image
				? json_pack("{s:s, s:s}", "type", "rootfs", "path", s->rootfs)
				: json_pack("{s:s}", "type", "host"));
	for (size_t i = 0; i < s->argc; i++)
		json_array_append_new(cmd, json_string(s->argv[i]));
	json_object_set_new(o, "command", cmd);
	for (size_t i = 0; i < s->nenv; i++) {
		const char *eq = strchr(s->env[i], '=');
		char k[256];
		snprintf(k, sizeof(k), "%.*s", (int)(eq - s->env[i]), s->env[i]);
		json_object_set_new(env, k, json_string(eq + 1));
	}
	json_object_set_new(o, "env", env);
	for (size_t i = 0; i < s->nnets; i++) {
		json_t *n = json_pack("{s:s}", "network", s->nets[i].network);
		if (s->nets[i].ip[0])
			json_object_set_new(n, "ip", json_string(s->nets[i].ip));
		json_array_append_new(nets, n);
	}
	json_object_set_new(o, "networks", nets);
	for (size_t i = 0; i < s->nvols; i++)
		json_array_append_new(vols, json_pack("{s:s, s:s}", "name", s->vols[i].name,
						      "mount", s->vols[i].mount));
	json_object_set_new(o, "volumes", vols);
	if (s->memory_mb)
		json_object_set_new(res, "memory_mb", json_integer(s->memory_mb));
	if (s->cpu_shares)
		json_object_set_new(res, "cpu_shares", json_integer(s->cpu_shares));
	if (s->pids_max)
		json_object_set_new(res, "pids_max", json_integer(s->pids_max));
	json_object_set_new(o, "resources", res);
	json_object_set_new(o, "restart", json_string(restart_names[s->restart]));
	json_object_set_new(o, "stop_timeout_s", json_integer(s->stop_timeout_s));
	/* The role's own fields, as given. */
	for (size_t i = 0; i < s->role->nfields; i++) {
		json_t *v = json_object_get(s->body, s->role->fields[i].name);
		if (v)
			json_object_set_new(o, s->role->fields[i].name, json_deep_copy(v));
	}
	return o;
}

void pv_spec_tag(const json_t *canon, char out[17])
{
	char *s = json_dumps(canon, JSON_COMPACT | JSON_SORT_KEYS);
	uint64_t h = 1469598103934665603ULL;
	for (const char *p = s ? s : ""; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	free(s);
	snprintf(out, 17, "%016llx", (unsigned long long)h);
}
