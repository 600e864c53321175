/* Key layout and record codec of the overlay's etcd records (erec.h). */
#include "netagent/util.h"
#include "netagent/validate.h"
#include "vxlan/erec.h"

char *vx_erec_value(const struct vx_erec *r)
{
	char cidr[24], mac[18], vtep[16];
	na_cidr_fmt(r->ip, r->plen, cidr, sizeof(cidr));
	na_mac_fmt(r->mac, mac, sizeof(mac));
	na_ipv4_fmt(r->vtep, vtep, sizeof(vtep));
	cleanup_json json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:s}", "vni", (json_int_t)r->vni,
					   "ip", cidr, "mac", mac, "vtep", vtep, "host", r->host);
	return o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
}

/* "…/endpoints/<net>/<host>/<ep>": three non-empty segments, no more. */
int vx_erec_parse_key(const char *key, struct vx_erec *r)
{
	size_t pl = strlen(VX_ETCD_EPS);
	memset(r, 0, sizeof(*r));
	if (strncmp(key, VX_ETCD_EPS, pl) != 0)
		return -1;
	char *seg[3] = {r->net, r->host, r->ep};
	const char *p = key + pl;
	for (int i = 0; i < 3; i++) {
		size_t l = strcspn(p, "/");
		if (l == 0 || l >= 64 || (i < 2 && p[l] != '/') || (i == 2 && p[l]))
			return -1;
		memcpy(seg[i], p, l);
		seg[i][l] = 0;
		p += l + 1;
	}
	return 0;
}

int vx_erec_parse_value(const char *val, size_t len, struct vx_erec *r)
{
	cleanup_json json_t *o = json_loadb(val, len, 0, NULL);
	json_t *vni = json_object_get(o, "vni");
	const char *ip = json_string_value(json_object_get(o, "ip"));
	const char *mac = json_string_value(json_object_get(o, "mac"));
	const char *vtep = json_string_value(json_object_get(o, "vtep"));
	if (!json_is_integer(vni) || json_integer_value(vni) < 1 ||
	    json_integer_value(vni) > 16777215 || !ip || na_cidr_parse(ip, &r->ip, &r->plen) < 0 ||
	    !mac || na_mac_parse(mac, r->mac) < 0 || !vtep || na_ipv4_parse(vtep, &r->vtep) < 0 ||
	    !na_ipv4_unicast(r->vtep))
		return -1;
	r->vni = (uint32_t)json_integer_value(vni);
	return 0;
}

int vx_erec_same(const struct vx_erec *a, const struct vx_erec *b)
{
	return a->vni == b->vni && a->ip == b->ip && a->plen == b->plen && a->vtep == b->vtep &&
	       !memcmp(a->mac, b->mac, 6);
}

void vx_erec_key(char *buf, size_t len, const char *net, const char *host, const char *ep)
{
	snprintf(buf, len, VX_ETCD_EPS "%s/%s/%s", net, host, ep);
}

void vx_claim_key(char *buf, size_t len, const char *net, uint32_t ip)
{
	char a[16];
	na_ipv4_fmt(ip, a, sizeof(a));
	snprintf(buf, len, VX_ETCD_IPAM "%s/%s", net, a);
}

void vx_claim_value(char *buf, size_t len, const char *host, const char *ep)
{
	snprintf(buf, len, "%s/%s", host, ep);
}

int vx_claim_parse_key(const char *key, char net[64], uint32_t *ip)
{
	size_t pl = strlen(VX_ETCD_IPAM);
	if (strncmp(key, VX_ETCD_IPAM, pl))
		return -1;
	const char *k = key + pl, *slash = strchr(k, '/');
	if (!slash || slash == k || (size_t)(slash - k) >= 64 || na_ipv4_parse(slash + 1, ip) < 0)
		return -1;
	memcpy(net, k, (size_t)(slash - k));
	net[slash - k] = 0;
	return 0;
}

enum vx_claim_verdict vx_claim_judge(const na_etcd_result_t *res, const char *mine, char *owner,
				     size_t owner_len)
{
	size_t n = 0, ml = strlen(mine);
	const na_etcd_kv_t *kv = res->succeeded ? NULL : na_etcd_result_kvs(res, &n);
	if (owner_len)
		owner[0] = 0;
	if (res->succeeded)
		return VX_CLAIM_OURS;
	if (n && kv->value_len == ml && !memcmp(kv->value, mine, ml))
		return VX_CLAIM_OURS;
	/* Absent in the else branch cannot happen (the compare said it exists),
	 * unless it went between the two: not ours either way. */
	if (n && owner_len)
		snprintf(owner, owner_len, "%.*s", (int)kv->value_len, kv->value);
	return VX_CLAIM_TAKEN;
}
