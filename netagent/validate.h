/* Validation of names and request bodies. Every failure is a 4xx na_err_t
 * with the offending field, and a validator never has side effects, so a bad
 * request changes nothing. */
#ifndef NA_VALIDATE_H
#define NA_VALIDATE_H

#include <jansson.h>
#include <stdint.h>

#include "netagent/err.h"

/* [a-z0-9][a-z0-9-]{0,62}: rejects '/', "..", upper case, > 63 chars. */
int na_name_valid(const char *name);
int na_name_check(const char *name, const char *field, na_err_t *err);

/* Parses a request body: 400 invalid_json unless it is one JSON object. */
json_t *na_body_parse(const char *body, size_t len, na_err_t *err);

/* Schema-driven field checks. A field spec lists every allowed key:
 * unknown keys → 422 unknown_field; wrong JSON type → 422 invalid_field. */
enum na_ftype { NA_F_STRING, NA_F_INT, NA_F_BOOL, NA_F_OBJECT, NA_F_ARRAY };
typedef struct na_field {
	const char *name;
	enum na_ftype type;
	int required;
	long long min, max; /* for NA_F_INT when min < max */
} na_field_t;
int na_fields_check(json_t *obj, const na_field_t *spec, size_t n, const char *prefix,
		    na_err_t *err);

/* IPv4 helpers (host byte order). */
int na_ipv4_parse(const char *s, uint32_t *addr);	     /* dotted quad only */
int na_cidr_parse(const char *s, uint32_t *addr, int *plen); /* a.b.c.d/n */
void na_ipv4_fmt(uint32_t addr, char *buf, size_t n);
void na_cidr_fmt(uint32_t addr, int plen, char *buf, size_t n);
/* "a.b.c.d/n", buf >= 20 */	    /* buf >= 16 */
int na_ipv4_unicast(uint32_t addr); /* not 0/8, 127/8, multicast, broadcast, class E */
/* "aa:bb:cc:dd:ee:ff" → 6 bytes; rejects multicast (bit 0 of first byte) and zero. */
int na_mac_parse(const char *s, uint8_t mac[6]);
void na_mac_fmt(const uint8_t mac[6], char *buf, size_t n); /* buf >= 18 */

/* A decimal integer in [min, max], the whole string: no blanks, no '+', no
 * suffix. 0, or -1 (out untouched). */
int na_int_parse(const char *s, int min, int max, int *out);
/* A tuning knob from the environment: NAME unset or empty gives def; an
 * integer in [min, max] is taken; anything else is a usage error (status 2)
 * naming the variable and its range, so a typo stops the agent at start. */
int na_env_int(const char *name, int def, int min, int max, int *out, na_err_t *err);

#endif
