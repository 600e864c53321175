#include "netagent/validate.h"
#include "netagent/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NA_NAME_MAX 63

int na_name_valid(const char *name)
{
	size_t i;

	if (!name || !name[0])
		return 0;
	for (i = 0; name[i]; i++) {
		char c = name[i];
		if (i >= NA_NAME_MAX)
			return 0;
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
			continue;
		if (c == '-' && i > 0)
			continue;
		return 0;
	}
	return 1;
}

int na_name_check(const char *name, const char *field, na_err_t *err)
{
	const char *f = (field && *field) ? field : "name";
	size_t len;

	if (na_name_valid(name))
		return 0;
	if (!name || !name[0])
		return na_err_set(err, 422, "invalid_name", f, "%s must not be empty", f);
	len = strlen(name);
	/* Names become file and kernel object names: say the path-ish reasons
	 * first so a traversal attempt is reported as such. */
	if (strchr(name, '/') || strstr(name, ".."))
		return na_err_set(err, 422, "invalid_name", f, "%s must not contain '/' or '..'",
				  f);
	if (len > NA_NAME_MAX)
		return na_err_set(err, 422, "invalid_name", f,
				  "%s is too long (%zu characters, at most %d)", f, len,
				  NA_NAME_MAX);
	for (size_t i = 0; i < len; i++) {
		if (name[i] >= 'A' && name[i] <= 'Z')
			return na_err_set(err, 422, "invalid_name", f,
					  "%s must be lower case (upper case '%c' at position %zu)",
					  f, name[i], i);
	}
	if (name[0] == '-')
		return na_err_set(err, 422, "invalid_name", f,
				  "%s must start with a lower case letter or a digit", f);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
			if (c >= 0x21 && c < 0x7f)
				return na_err_set(err, 422, "invalid_name", f,
						  "%s contains invalid character '%c' at position "
						  "%zu (allowed: a-z, 0-9, '-')",
						  f, c, i);
			return na_err_set(
			    err, 422, "invalid_name", f,
			    "%s contains invalid byte 0x%02x at position %zu (allowed: "
			    "a-z, 0-9, '-')",
			    f, c, i);
		}
	}
	/* Unreachable unless the two checks above disagree. */
	return na_err_set(err, 422, "invalid_name", f, "%s must match [a-z0-9][a-z0-9-]{0,62}", f);
}

json_t *na_body_parse(const char *body, size_t len, na_err_t *err)
{
	json_error_t jerr;
	json_t *obj;

	if (!body || len == 0) {
		na_err_set(err, 400, "invalid_json", NULL, "request body is empty");
		return NULL;
	}
	/* json_loadb works on the length, so a raw NUL would otherwise reach the
	 * tokenizer; reject it outright rather than rely on its error text. */
	const char *nul = memchr(body, '\0', len);
	if (nul) {
		na_err_set(err, 400, "invalid_json", NULL,
			   "invalid JSON: NUL byte in request body at position %zu",
			   (size_t)(nul - body));
		return NULL;
	}
	/* Duplicate keys are ambiguous (which one wins differs between
	 * parsers), so a body carrying them is refused. */
	obj = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!obj) {
		na_err_set(err, 400, "invalid_json", NULL,
			   "invalid JSON: %s at line %d column %d (position %d)", jerr.text,
			   jerr.line, jerr.column, jerr.position);
		return NULL;
	}
	if (!json_is_object(obj)) {
		json_decref(obj);
		na_err_set(err, 400, "invalid_json", NULL, "request body must be a JSON object");
		return NULL;
	}
	return obj;
}

static const char *type_phrase(enum na_ftype t)
{
	switch (t) {
	case NA_F_STRING:
		return "a string";
	case NA_F_INT:
		return "an integer";
	case NA_F_BOOL:
		return "a boolean";
	case NA_F_OBJECT:
		return "an object";
	case NA_F_ARRAY:
		return "an array";
	}
	return "a valid value";
}

static int type_ok(const json_t *v, enum na_ftype t)
{
	switch (t) {
	case NA_F_STRING:
		return json_is_string(v);
	case NA_F_INT:
		/* json_is_integer is false for 1.0 and for "1": a real or a
		 * quoted number is a type error, not something to coerce. */
		return json_is_integer(v);
	case NA_F_BOOL:
		return json_is_boolean(v);
	case NA_F_OBJECT:
		return json_is_object(v);
	case NA_F_ARRAY:
		return json_is_array(v);
	}
	return 0;
}

int na_fields_check(json_t *obj, const na_field_t *spec, size_t n, const char *prefix,
		    na_err_t *err)
{
	char fname[256];
	const char *key;
	json_t *v;

	if (!prefix)
		prefix = "";
	if (!json_is_object(obj)) {
		/* The object itself is the bad field: name it without the
		 * trailing '.' of the prefix. */
		size_t pl = strlen(prefix);
		if (pl && prefix[pl - 1] == '.')
			pl--;
		snprintf(fname, sizeof(fname), "%.*s", (int)pl, prefix);
		return na_err_set(err, 422, "invalid_field", fname, "%s must be an object",
				  pl ? fname : "body");
	}
	json_object_foreach(obj, key, v)
	{
		size_t i;
		for (i = 0; i < n; i++)
			if (strcmp(spec[i].name, key) == 0)
				break;
		if (i == n) {
			snprintf(fname, sizeof(fname), "%s%s", prefix, key);
			return na_err_set(err, 422, "unknown_field", fname, "unknown field %s",
					  fname);
		}
	}
	for (size_t i = 0; i < n; i++) {
		const na_field_t *f = &spec[i];
		snprintf(fname, sizeof(fname), "%s%s", prefix, f->name);
		v = json_object_get(obj, f->name);
		if (!v) {
			if (f->required)
				return na_err_set(err, 422, "missing_field", fname,
						  "%s is required", fname);
			continue;
		}
		/* null is not "absent": callers read values with json_*_value,
		 * which would silently turn null into 0/"" for them. */
		if (!type_ok(v, f->type))
			return na_err_set(err, 422, "invalid_field", fname, "%s must be %s", fname,
					  type_phrase(f->type));
		if (f->type == NA_F_INT && f->min < f->max) {
			json_int_t x = json_integer_value(v);
			if (x < f->min || x > f->max)
				return na_err_set(err, 422, "out_of_range", fname,
						  "%s must be between %lld and %lld (got %lld)",
						  fname, f->min, f->max, (long long)x);
		}
	}
	return 0;
}

int na_ipv4_parse(const char *s, uint32_t *addr)
{
	struct in_addr in;

	/* inet_pton (unlike inet_aton) takes only four decimal octets: no
	 * hex, octal, short forms or trailing junk. */
	if (!s || strlen(s) > 15 || inet_pton(AF_INET, s, &in) != 1)
		return -1;
	if (addr)
		*addr = ntohl(in.s_addr);
	return 0;
}

int na_cidr_parse(const char *s, uint32_t *addr, int *plen)
{
	char ip[16];
	const char *slash, *p;
	size_t iplen;
	int n = 0;

	if (!s)
		return -1;
	slash = strchr(s, '/');
	if (!slash)
		return -1;
	iplen = (size_t)(slash - s);
	if (iplen == 0 || iplen >= sizeof(ip))
		return -1;
	memcpy(ip, s, iplen);
	ip[iplen] = 0;
	p = slash + 1;
	/* 1 or 2 decimal digits, no sign, space or leading zero ("/024"). */
	if (!p[0] || strlen(p) > 2 || (p[0] == '0' && p[1]))
		return -1;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		n = n * 10 + (*p - '0');
	}
	if (n > 32)
		return -1;
	uint32_t a;
	if (na_ipv4_parse(ip, &a) < 0)
		return -1;
	if (addr)
		*addr = a;
	if (plen)
		*plen = n;
	return 0;
}

void na_ipv4_fmt(uint32_t addr, char *buf, size_t n)
{
	snprintf(buf, n, "%u.%u.%u.%u", (addr >> 24) & 0xff, (addr >> 16) & 0xff,
		 (addr >> 8) & 0xff, addr & 0xff);
}

void na_cidr_fmt(uint32_t addr, int plen, char *buf, size_t n)
{
	char a[16];
	na_ipv4_fmt(addr, a, sizeof(a));
	snprintf(buf, n, "%s/%d", a, plen);
}

int na_ipv4_unicast(uint32_t addr)
{
	uint32_t o = addr >> 24;

	/* 0/8 "this network", 127/8 loopback, 224/4 multicast and 240/4
	 * reserved (which includes 255.255.255.255). */
	if (o == 0 || o == 127 || o >= 224)
		return 0;
	return 1;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int na_mac_parse(const char *s, uint8_t mac[6])
{
	uint8_t m[6];

	if (!s || strlen(s) != 17)
		return -1;
	for (int i = 0; i < 6; i++) {
		const char *p = s + i * 3;
		int hi = hexval(p[0]), lo = hexval(p[1]);
		if (hi < 0 || lo < 0)
			return -1;
		if (i < 5 && p[2] != ':')
			return -1;
		m[i] = (uint8_t)(hi << 4 | lo);
	}
	/* A multicast (group) bit set or an all-zero address can never be a
	 * unicast interface address: the kernel refuses both on a veth. */
	if (m[0] & 1)
		return -1;
	if (!(m[0] | m[1] | m[2] | m[3] | m[4] | m[5]))
		return -1;
	memcpy(mac, m, 6);
	return 0;
}

void na_mac_fmt(const uint8_t mac[6], char *buf, size_t n)
{
	snprintf(buf, n, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
		 mac[5]);
}

int na_int_parse(const char *s, int min, int max, int *out)
{
	const char *d = s + (s[0] == '-');
	if (*d < '0' || *d > '9') /* strtol would also take blanks and a '+' */
		return -1;
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (*end || errno || v < min || v > max)
		return -1;
	*out = (int)v;
	return 0;
}

int na_env_int(const char *name, int def, int min, int max, int *out, na_err_t *err)
{
	const char *s = getenv(name);
	if (!s || !*s) {
		*out = def;
		return 0;
	}
	if (na_int_parse(s, min, max, out) < 0)
		return na_err_set(err, 2, "usage", NULL, "%s must be an integer in %d..%d", name,
				  min, max);
	return 0;
}
