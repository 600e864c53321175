/* The VIP resource as PUT takes it: validation of every field (422 with
 * `field`, nothing changed) and its JSON shape for GET and state files. */
#include "netagent/util.h"
#include "netagent/validate.h"
#include "vip/vip_int.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>

#define DEF_INTERVAL_MS	     1000
#define DEF_RISE	     2
#define DEF_FALL	     2
#define DEF_PRIORITY	     100
#define DEF_GARP_COUNT	     3
#define DEF_GARP_INTERVAL_MS 200

static const na_field_t vip_fields[] = {
    {"address", NA_F_STRING, 1, 0, 0},	{"target", NA_F_OBJECT, 1, 0, 0},
    {"checks", NA_F_ARRAY, 0, 0, 0},	{"interval_ms", NA_F_INT, 0, 100, 60000},
    {"rise", NA_F_INT, 0, 1, 100},	{"fall", NA_F_INT, 0, 1, 100},
    {"priority", NA_F_INT, 0, 0, 255},	{"preempt", NA_F_BOOL, 0, 0, 0},
    {"garp_count", NA_F_INT, 0, 1, 20}, {"garp_interval_ms", NA_F_INT, 0, 20, 5000},
};

static const na_field_t target_fields[] = {
    {"interface", NA_F_STRING, 0, 0, 0},
    {"container", NA_F_STRING, 0, 0, 0},
};

static const na_field_t check_fields[] = {
    {"type", NA_F_STRING, 1, 0, 0},    {"port", NA_F_INT, 1, 1, 65535},
    {"path", NA_F_STRING, 0, 0, 0},    {"timeout_ms", NA_F_INT, 0, 50, 60000},
    {"address", NA_F_STRING, 0, 0, 0},
};

/* The kernel's dev_valid_name(): what it refuses we refuse with a field. */
static int ifname_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n >= IFNAMSIZ || !strcmp(s, ".") || !strcmp(s, ".."))
		return 0;
	for (; *s; s++)
		if (*s == '/' || *s == ':' || isspace((unsigned char)*s) ||
		    !isprint((unsigned char)*s))
			return 0;
	return 1;
}

/* 422 invalid_field for member `name` of the check at `prefix`. */
static int check_err(na_err_t *err, const char *prefix, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int check_err(na_err_t *err, const char *prefix, const char *name, const char *fmt, ...)
{
	char f[48], msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(f, sizeof(f), "%s%s", prefix, name);
	return na_err_set(err, 422, "invalid_field", f, "%s: %s", f, msg);
}

static int int_or(json_t *o, const char *k, int def)
{
	json_t *v = json_object_get(o, k);
	return v ? (int)json_integer_value(v) : def;
}

static int parse_check(json_t *c, size_t i, const vip_spec_t *s, vip_check_spec_t *out,
		       na_err_t *err)
{
	char prefix[32];
	const char *type, *path, *addr;

	snprintf(prefix, sizeof(prefix), "checks.%zu.", i);
	if (na_fields_check(c, check_fields, NA_ARRAY_SIZE(check_fields), prefix, err) < 0)
		return -1;
	memset(out, 0, sizeof(*out));
	type = json_string_value(json_object_get(c, "type"));
	if (!strcmp(type, "tcp"))
		out->type = VIP_CHECK_TCP;
	else if (!strcmp(type, "http"))
		out->type = VIP_CHECK_HTTP;
	else
		return check_err(err, prefix, "type",
				 "check type must be \"tcp\" or \"http\", got \"%.40s\"", type);
	out->port = int_or(c, "port", 0);
	out->timeout_ms = int_or(c, "timeout_ms", s->interval_ms < 5000 ? s->interval_ms : 5000);
	path = json_string_value(json_object_get(c, "path"));
	if (path && out->type != VIP_CHECK_HTTP)
		return check_err(err, prefix, "path", "path is only for http checks");
	if (out->type == VIP_CHECK_HTTP) {
		if (!path)
			path = "/";
		size_t n = strlen(path);
		int bad = path[0] != '/' || n >= sizeof(out->path);
		for (const char *p = path; !bad && *p; p++)
			bad = !isgraph((unsigned char)*p);
		if (bad)
			return check_err(err, prefix, "path",
					 "path must start with '/', have no spaces or control "
					 "characters and fewer than %zu characters",
					 sizeof(out->path));
		snprintf(out->path, sizeof(out->path), "%s", path);
	}
	addr = json_string_value(json_object_get(c, "address"));
	if (addr) {
		if (na_addr_parse(addr, 0, &out->addr) < 0 ||
		    (!na_addr_unicast(&out->addr) &&
		     !(out->addr.family == AF_INET &&
		       (ntohl(out->addr.u.v4.s_addr) >> 24) == 127) &&
		     !(out->addr.family == AF_INET6 && IN6_IS_ADDR_LOOPBACK(&out->addr.u.v6))))
			return check_err(err, prefix, "address",
					 "check address must be a unicast or loopback IP without "
					 "prefix length");
	}
	return 0;
}

static int parse_obj(json_t *b, vip_spec_t *s, na_err_t *err)
{
	const char *addr, *ifn, *ctr;
	json_t *t, *checks;

	memset(s, 0, sizeof(*s));
	if (na_fields_check(b, vip_fields, NA_ARRAY_SIZE(vip_fields), NULL, err) < 0)
		return -1;
	addr = json_string_value(json_object_get(b, "address"));
	if (na_addr_parse(addr, -1, &s->addr) < 0)
		return na_err_set(err, 422, "invalid_field", "address",
				  "address must be an IPv4 or IPv6 address with a prefix length, "
				  "like 192.0.2.100/24 or 2001:db8::100/64");
	if (s->addr.plen < 0)
		return na_err_set(err, 422, "invalid_field", "address",
				  "address needs a prefix length (e.g. %s/24): it decides the "
				  "subnet the VIP answers in",
				  addr);
	if (s->addr.plen == 0)
		return na_err_set(err, 422, "invalid_field", "address",
				  "prefix length 0 would claim every address");
	if (!na_addr_unicast(&s->addr))
		return na_err_set(err, 422, "invalid_field", "address",
				  "address must be a unicast address a host may own (not "
				  "loopback, multicast, link-local, broadcast or unspecified)");
	if (s->addr.family == AF_INET && s->addr.plen < 31) {
		uint32_t v = ntohl(s->addr.u.v4.s_addr),
			 host = ~(0xffffffffu << (32 - s->addr.plen));
		if ((v & host) == 0 || (v & host) == host)
			return na_err_set(err, 422, "invalid_field", "address",
					  "address is the network or broadcast address of its "
					  "subnet");
	}
	t = json_object_get(b, "target");
	if (na_fields_check(t, target_fields, NA_ARRAY_SIZE(target_fields), "target.", err) < 0)
		return -1;
	ifn = json_string_value(json_object_get(t, "interface"));
	ctr = json_string_value(json_object_get(t, "container"));
	if (!!ifn == !!ctr)
		return na_err_set(err, 422, "invalid_field", "target",
				  "target must have exactly one of \"interface\" or \"container\"");
	if (ifn) {
		if (!ifname_valid(ifn))
			return na_err_set(err, 422, "invalid_field", "target.interface",
					  "interface name must have 1..15 printable characters "
					  "without '/', ':' or spaces, and not be . or ..");
		s->target_kind = VIP_T_INTERFACE;
		snprintf(s->target, sizeof(s->target), "%s", ifn);
	} else {
		if (na_name_check(ctr, "target.container", err) < 0)
			return -1;
		s->target_kind = VIP_T_CONTAINER;
		snprintf(s->target, sizeof(s->target), "%s", ctr);
	}
	s->interval_ms = int_or(b, "interval_ms", DEF_INTERVAL_MS);
	s->rise = int_or(b, "rise", DEF_RISE);
	s->fall = int_or(b, "fall", DEF_FALL);
	s->priority = int_or(b, "priority", DEF_PRIORITY);
	s->preempt = json_is_true(json_object_get(b, "preempt"));
	s->garp_count = int_or(b, "garp_count", DEF_GARP_COUNT);
	s->garp_interval_ms = int_or(b, "garp_interval_ms", DEF_GARP_INTERVAL_MS);
	checks = json_object_get(b, "checks");
	if (json_array_size(checks) > VIP_MAX_CHECKS)
		return na_err_set(err, 422, "invalid_field", "checks", "at most %d checks",
				  VIP_MAX_CHECKS);
	for (size_t i = 0; i < json_array_size(checks); i++) {
		if (parse_check(json_array_get(checks, i), i, s, &s->checks[i], err) < 0)
			return -1;
		s->nchecks++;
	}
	return 0;
}

int vip_spec_parse(const char *body, size_t len, vip_spec_t *out, na_err_t *err)
{
	cleanup_json json_t *b = na_body_parse(body, len, err);
	vip_spec_t s;

	if (!b || parse_obj(b, &s, err) < 0)
		return -1;
	*out = s;
	return 0;
}

int vip_spec_from_json(json_t *o, vip_spec_t *out, na_err_t *err)
{
	vip_spec_t s;
	if (parse_obj(o, &s, err) < 0)
		return -1;
	*out = s;
	return 0;
}

json_t *vip_spec_json(const vip_spec_t *s)
{
	char a[NA_ADDR_STRLEN];
	json_t *checks = json_array();

	na_addr_fmt(&s->addr, a, sizeof(a));
	for (int i = 0; i < s->nchecks; i++) {
		const vip_check_spec_t *c = &s->checks[i];
		json_t *o =
		    json_pack("{s:s, s:i, s:i}", "type", c->type == VIP_CHECK_HTTP ? "http" : "tcp",
			      "port", c->port, "timeout_ms", c->timeout_ms);
		if (c->type == VIP_CHECK_HTTP)
			json_object_set_new(o, "path", json_string(c->path));
		if (c->addr.family) {
			char ca[NA_ADDR_STRLEN];
			na_addr_fmt_ip(&c->addr, ca, sizeof(ca));
			json_object_set_new(o, "address", json_string(ca));
		}
		json_array_append_new(checks, o);
	}
	return json_pack("{s:s, s:{s:s}, s:o, s:i, s:i, s:i, s:i, s:b, s:i, s:i}", "address", a,
			 "target", s->target_kind == VIP_T_INTERFACE ? "interface" : "container",
			 s->target, "checks", checks, "interval_ms", s->interval_ms, "rise",
			 s->rise, "fall", s->fall, "priority", s->priority, "preempt", s->preempt,
			 "garp_count", s->garp_count, "garp_interval_ms", s->garp_interval_ms);
}

int vip_spec_eq(const vip_spec_t *a, const vip_spec_t *b)
{
	cleanup_json json_t *ja = vip_spec_json(a);
	cleanup_json json_t *jb = vip_spec_json(b);
	return json_equal(ja, jb);
}
