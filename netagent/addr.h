/* One address type for IPv4 and IPv6, with an optional prefix length, as
 * the API spells them ("192.0.2.100/24", "2001:db8::10/64", "198.18.1.5"). */
#ifndef NA_ADDR_H
#define NA_ADDR_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

typedef struct na_addr {
	int family; /* AF_INET or AF_INET6; 0 = unset */
	int plen;   /* prefix length; -1 when the text had none */
	union {
		uint8_t b[16];
		struct in_addr v4; /* network byte order */
		struct in6_addr v6;
	} u;
} na_addr_t;

#define NA_ADDR_STRLEN (INET6_ADDRSTRLEN + 4) /* "…/128" */

/* "a.b.c.d", "a.b.c.d/n", "x::y", "x::y/n"; no zone ids, no spaces, no
 * leading zeros in IPv4 octets. want_plen: 1 required, 0 refused, -1 either.
 * Returns 0, or -1 (nothing written) on anything else. */
int na_addr_parse(const char *s, int want_plen, na_addr_t *out);
/* With "/plen" when plen >= 0. buf >= NA_ADDR_STRLEN. */
void na_addr_fmt(const na_addr_t *a, char *buf, size_t n);
/* Without the prefix length. */
void na_addr_fmt_ip(const na_addr_t *a, char *buf, size_t n);
size_t na_addr_len(const na_addr_t *a);			/* 4 or 16, 0 when unset */
int na_addr_eq(const na_addr_t *a, const na_addr_t *b); /* same address, plen ignored */
/* Unicast a host may own: not unspecified, loopback, multicast, link-local
 * (fe80::/10, 169.254/16), IPv4 broadcast or class E. */
int na_addr_unicast(const na_addr_t *a);
/* a inside net/net->plen (same family). */
int na_addr_in(const na_addr_t *a, const na_addr_t *net);
/* From / to the IPv4 host-order integers the overlay code uses. */
void na_addr_from_v4(uint32_t host_order, int plen, na_addr_t *out);
uint32_t na_addr_v4(const na_addr_t *a);

#endif
