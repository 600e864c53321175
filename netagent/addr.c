/* IPv4/IPv6 addresses with prefix lengths: parsing is strict (inet_pton
 * for the address, digits only for the length) because every address here
 * comes from a request body. */
#include "netagent/addr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

int na_addr_parse(const char *s, int want_plen, na_addr_t *out)
{
	char buf[INET6_ADDRSTRLEN + 1];
	na_addr_t a;
	const char *slash;
	size_t alen;

	if (!s)
		return -1;
	memset(&a, 0, sizeof(a));
	a.plen = -1;
	slash = strchr(s, '/');
	alen = slash ? (size_t)(slash - s) : strlen(s);
	if (alen == 0 || alen >= sizeof(buf))
		return -1;
	memcpy(buf, s, alen);
	buf[alen] = 0;
	if (inet_pton(AF_INET, buf, &a.u.v4) == 1)
		a.family = AF_INET;
	else if (inet_pton(AF_INET6, buf, &a.u.v6) == 1)
		a.family = AF_INET6;
	else
		return -1;
	if (slash) {
		const char *p = slash + 1;
		int max = a.family == AF_INET ? 32 : 128, v = 0;
		/* digits only, no sign, no leading zero ("/024"), at most 3 */
		if (!*p || strlen(p) > 3 || (p[0] == '0' && p[1]))
			return -1;
		for (; *p; p++) {
			if (*p < '0' || *p > '9')
				return -1;
			v = v * 10 + (*p - '0');
		}
		if (v > max)
			return -1;
		a.plen = v;
	}
	if ((want_plen == 1 && a.plen < 0) || (want_plen == 0 && a.plen >= 0))
		return -1;
	*out = a;
	return 0;
}

void na_addr_fmt_ip(const na_addr_t *a, char *buf, size_t n)
{
	if (!n)
		return;
	if (!a->family || !inet_ntop(a->family, a->u.b, buf, (socklen_t)n))
		buf[0] = 0;
}

void na_addr_fmt(const na_addr_t *a, char *buf, size_t n)
{
	char ip[INET6_ADDRSTRLEN];
	na_addr_fmt_ip(a, ip, sizeof(ip));
	if (a->plen >= 0)
		snprintf(buf, n, "%s/%d", ip, a->plen);
	else
		snprintf(buf, n, "%s", ip);
}

size_t na_addr_len(const na_addr_t *a)
{
	return a->family == AF_INET ? 4 : a->family == AF_INET6 ? 16 : 0;
}

int na_addr_eq(const na_addr_t *a, const na_addr_t *b)
{
	return a->family && a->family == b->family && !memcmp(a->u.b, b->u.b, na_addr_len(a));
}

int na_addr_unicast(const na_addr_t *a)
{
	if (a->family == AF_INET) {
		uint32_t v = ntohl(a->u.v4.s_addr);
		uint8_t top = (uint8_t)(v >> 24);
		return top != 0 && top != 127 && top < 224 && (v >> 16) != 0xa9fe;
	}
	if (a->family == AF_INET6) {
		const struct in6_addr *x = &a->u.v6;
		return !IN6_IS_ADDR_UNSPECIFIED(x) && !IN6_IS_ADDR_LOOPBACK(x) &&
		       !IN6_IS_ADDR_MULTICAST(x) && !IN6_IS_ADDR_LINKLOCAL(x) &&
		       !IN6_IS_ADDR_V4MAPPED(x);
	}
	return 0;
}

int na_addr_in(const na_addr_t *a, const na_addr_t *net)
{
	if (a->family != net->family || net->plen < 0)
		return 0;
	int full = net->plen / 8, rest = net->plen % 8;
	if (memcmp(a->u.b, net->u.b, (size_t)full))
		return 0;
	if (!rest)
		return 1;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (a->u.b[full] & mask) == (net->u.b[full] & mask);
}

void na_addr_from_v4(uint32_t host_order, int plen, na_addr_t *out)
{
	memset(out, 0, sizeof(*out));
	out->family = AF_INET;
	out->plen = plen;
	out->u.v4.s_addr = htonl(host_order);
}

uint32_t na_addr_v4(const na_addr_t *a)
{
	return a->family == AF_INET ? ntohl(a->u.v4.s_addr) : 0;
}
