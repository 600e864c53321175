#include "vxlan/ipam.h"
#include "netagent/validate.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* /8 is 16 Mi addresses, a 2 MiB bitmap: the largest we are willing to hold
 * per network. */
#define VX_IPAM_MIN_PLEN 8

struct vx_ipam {
	uint32_t net, mask;
	int plen;
	uint32_t first; /* first usable address */
	uint64_t size;	/* number of usable addresses, bit i = first + i */
	size_t used;
	uint64_t hint; /* no free bit below this index */
	uint64_t *bits;
};

int vx_ipam_new(uint32_t net, int plen, vx_ipam_t **out, na_err_t *err)
{
	char a[16];
	vx_ipam_t *ip;

	if (plen < 0 || plen > 32)
		return na_err_set(err, 422, "invalid_field", "subnet", "invalid prefix length /%d",
				  plen);
	if (plen < VX_IPAM_MIN_PLEN)
		return na_err_set(err, 422, "invalid_field", "subnet",
				  "subnet larger than /%d is not supported", VX_IPAM_MIN_PLEN);
	/* 64-bit shift: plen 32 would be an undefined 32-bit shift */
	uint32_t mask = (uint32_t)(0xffffffff00000000ULL >> plen);
	if (net & ~mask) {
		na_ipv4_fmt(net, a, sizeof(a));
		return na_err_set(err, 422, "invalid_field", "subnet",
				  "subnet %s/%d has host bits set", a, plen);
	}
	ip = calloc(1, sizeof(*ip));
	if (!ip)
		return na_err_errno(err, ENOMEM, "ipam");
	ip->net = net;
	ip->mask = mask;
	ip->plen = plen;
	uint64_t total = 1ULL << (32 - plen);
	if (plen >= 31) {
		/* /32 is a single host; /31 is a point-to-point link with no
		 * network or broadcast address (RFC 3021). */
		ip->first = net;
		ip->size = total;
	} else {
		ip->first = net + 1;
		ip->size = total - 2;
	}
	ip->bits = calloc((size_t)((ip->size + 63) / 64), sizeof(uint64_t));
	if (!ip->bits) {
		free(ip);
		return na_err_errno(err, ENOMEM, "ipam");
	}
	*out = ip;
	return 0;
}

void vx_ipam_free(vx_ipam_t *ip)
{
	if (!ip)
		return;
	free(ip->bits);
	free(ip);
}

/* Index of addr in the bitmap, or -1 if it is not a usable host address. */
static int64_t index_of(const vx_ipam_t *ip, uint32_t addr)
{
	if ((addr & ip->mask) != ip->net)
		return -1;
	uint64_t i = (uint64_t)(addr - ip->first);
	if (addr < ip->first || i >= ip->size)
		return -1;
	return (int64_t)i;
}

static int bit_get(const vx_ipam_t *ip, uint64_t i)
{
	return (ip->bits[i / 64] >> (i % 64)) & 1;
}

int vx_ipam_reserve(vx_ipam_t *ip, uint32_t addr, na_err_t *err)
{
	char a[16], n[16];
	int64_t i = index_of(ip, addr);

	if (i < 0) {
		na_ipv4_fmt(addr, a, sizeof(a));
		na_ipv4_fmt(ip->net, n, sizeof(n));
		if ((addr & ip->mask) != ip->net)
			return na_err_set(err, 422, "invalid_field", "ip",
					  "%s is outside subnet %s/%d", a, n, ip->plen);
		return na_err_set(err, 422, "invalid_field", "ip",
				  "%s is the %s address of subnet %s/%d", a,
				  addr == ip->net ? "network" : "broadcast", n, ip->plen);
	}
	if (bit_get(ip, (uint64_t)i)) {
		na_ipv4_fmt(addr, a, sizeof(a));
		return na_err_set(err, 409, "ip_in_use", "ip", "%s is already in use", a);
	}
	ip->bits[i / 64] |= 1ULL << (i % 64);
	ip->used++;
	return 0;
}

int vx_ipam_alloc(vx_ipam_t *ip, uint32_t *out, na_err_t *err)
{
	uint64_t words = (ip->size + 63) / 64;

	for (uint64_t w = ip->hint / 64; w < words; w++) {
		uint64_t freebits = ~ip->bits[w];
		if (!freebits)
			continue;
		uint64_t i = w * 64 + (uint64_t)__builtin_ctzll(freebits);
		if (i >= ip->size)
			break; /* padding bits past the last address */
		ip->bits[w] |= 1ULL << (i % 64);
		ip->used++;
		ip->hint = i + 1;
		*out = ip->first + (uint32_t)i;
		return 0;
	}
	ip->hint = ip->size;
	char n[16];
	na_ipv4_fmt(ip->net, n, sizeof(n));
	return na_err_set(err, 409, "subnet_exhausted", NULL,
			  "no free address left in subnet %s/%d", n, ip->plen);
}

void vx_ipam_release(vx_ipam_t *ip, uint32_t addr)
{
	int64_t i = index_of(ip, addr);

	if (i < 0 || !bit_get(ip, (uint64_t)i))
		return;
	ip->bits[i / 64] &= ~(1ULL << (i % 64));
	ip->used--;
	if ((uint64_t)i < ip->hint)
		ip->hint = (uint64_t)i;
}

int vx_ipam_in_use(const vx_ipam_t *ip, uint32_t addr)
{
	int64_t i = index_of(ip, addr);

	return i >= 0 && bit_get(ip, (uint64_t)i);
}

size_t vx_ipam_used(const vx_ipam_t *ip)
{
	return ip->used;
}
