/* The overlay's pure logic: the desired-vs-kernel diff that reconcile acts
 * on, the etcd record codec, and the verdict of a claim transaction. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "vxlan/diff.h"
#include "vxlan/erec.h"

#define IP(a, b, c, d) (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((uint32_t)(c) << 8) | (d))

static const uint8_t M1[6] = {2, 0x84, 198, 18, 1, 21}, M2[6] = {2, 0x84, 198, 18, 1, 22},
		     M3[6] = {2, 0x84, 198, 18, 1, 23};

/* ---- diff ----------------------------------------------------------------- */

static struct vx_snap *snap(size_t nremote, size_t nkeep)
{
	struct vx_snap *s = calloc(1, sizeof(*s));
	snprintf(s->name, sizeof(s->name), "n1");
	snprintf(s->netns, sizeof(s->netns), "/x/n1");
	s->vni = 7;
	s->mtu = 1450;
	s->remote = calloc(nremote + 1, sizeof(*s->remote));
	s->remote_name = calloc(nremote + 1, sizeof(*s->remote_name));
	s->keep_remote = calloc(nkeep + 1, sizeof(*s->keep_remote));
	s->keep_local = calloc(2, sizeof(*s->keep_local));
	return s;
}

static void free_snap(struct vx_snap *s)
{
	free(s->remote);
	free(s->remote_name);
	free(s->keep_remote);
	free(s->keep_local);
	free(s);
}

static void add_remote(struct vx_snap *s, uint32_t ip, const uint8_t *mac, uint32_t vtep)
{
	struct vx_k_remote *r = &s->remote[s->nremote++];
	r->ip = ip;
	memcpy(r->mac, mac, 6);
	r->vtep = vtep;
}

/* A namespace with br0 and vxlan0 as they should be. */
static void base_kernel(struct vx_k_state *k)
{
	memset(k, 0, sizeof(*k));
	k->exists = 1;
	k->links = calloc(8, sizeof(*k->links));
	struct vx_k_link *br = &k->links[k->nlinks++], *vx = &k->links[k->nlinks++];
	snprintf(br->name, 16, "br0");
	snprintf(br->kind, 16, "bridge");
	br->ifindex = 2, br->mtu = 1450, br->up = 1;
	snprintf(vx->name, 16, "vxlan0");
	snprintf(vx->kind, 16, "vxlan");
	vx->ifindex = 3, vx->mtu = 1450, vx->up = 1, vx->master = 2, vx->vni = 7, vx->vx_proxy = 1;
	k->fdb = calloc(8, sizeof(*k->fdb));
	k->brfdb = calloc(8, sizeof(*k->brfdb));
	k->neigh = calloc(8, sizeof(*k->neigh));
}

static void kern_remote(struct vx_k_state *k, uint32_t ip, const uint8_t *mac, uint32_t vtep,
			int bridge)
{
	memcpy(k->fdb[k->nfdb].mac, mac, 6);
	k->fdb[k->nfdb++].dst = vtep;
	if (bridge)
		memcpy(k->brfdb[k->nbrfdb++].mac, mac, 6);
	k->neigh[k->nneigh].ip = ip;
	memcpy(k->neigh[k->nneigh++].mac, mac, 6);
}

static int has(json_t *d, const char *kind, const char *problem)
{
	size_t i;
	json_t *x;
	json_array_foreach(
	    d, i,
	    x) if (!strcmp(json_string_value(json_object_get(x, "kind")), kind) &&
		   !strcmp(json_string_value(json_object_get(x, "problem")), problem)) return 1;
	return 0;
}

static void test_diff_in_sync(void **st)
{
	(void)st;
	struct vx_snap *s = snap(2, 0);
	struct vx_k_state k;
	struct vx_repair rep = {0};
	add_remote(s, IP(198, 18, 1, 21), M1, IP(192, 0, 2, 21));
	add_remote(s, IP(198, 18, 1, 22), M2, IP(192, 0, 2, 22));
	base_kernel(&k);
	kern_remote(&k, IP(198, 18, 1, 22), M2, IP(192, 0, 2, 22), 1);
	kern_remote(&k, IP(198, 18, 1, 21), M1, IP(192, 0, 2, 21), 1);
	json_t *d = vx_diff(s, &k, NULL, &rep);
	assert_int_equal(json_array_size(d), 0);
	assert_int_equal(rep.nset + rep.ndel + rep.ndel_links, 0);
	json_decref(d);
	vx_repair_free(&rep);
	vx_k_state_free(&k);
	free_snap(s);
}

static void test_diff_drift(void **st)
{
	(void)st;
	struct vx_snap *s = snap(2, 0);
	struct vx_k_state k;
	struct vx_repair rep = {0};
	add_remote(s, IP(198, 18, 1, 21), M1, IP(192, 0, 2, 21));
	add_remote(s, IP(198, 18, 1, 22), M2, IP(192, 0, 2, 22));
	base_kernel(&k);
	/* M1 lost its bridge entry only; M2 points at the wrong VTEP; M3 is
	 * not wanted at all. */
	kern_remote(&k, IP(198, 18, 1, 21), M1, IP(192, 0, 2, 21), 0);
	kern_remote(&k, IP(198, 18, 1, 22), M2, IP(192, 0, 2, 99), 1);
	kern_remote(&k, IP(198, 18, 1, 23), M3, IP(192, 0, 2, 23), 1);
	json_t *d = vx_diff(s, &k, NULL, &rep);
	assert_true(has(d, "bridge_fdb", "missing"));
	assert_true(has(d, "fdb", "mismatch"));
	assert_true(has(d, "fdb", "extra"));
	assert_true(has(d, "bridge_fdb", "extra"));
	assert_true(has(d, "neighbour", "extra"));
	/* repaired: M1 (bridge) and M2 (vtep) set; M3 deleted in every table */
	assert_int_equal(rep.nset, 2);
	assert_true(rep.ndel >= 1);
	for (size_t i = 0; i < rep.ndel; i++)
		assert_true(!memcmp(rep.del[i].mac, M3, 6) || rep.del[i].ip == IP(198, 18, 1, 23));
	json_decref(d);
	vx_repair_free(&rep);
	vx_k_state_free(&k);
	free_snap(s);
}

/* What is in flight is neither missing nor extra, and a veth belongs to a
 * committed endpoint or to one in flight; any other of ours goes. */
static void test_diff_keep_and_owners(void **st)
{
	(void)st;
	struct vx_snap *s = snap(0, 1);
	struct vx_k_state k;
	struct vx_repair rep = {0};
	s->keep_remote[0].ip = IP(198, 18, 1, 23);
	memcpy(s->keep_remote[0].mac, M3, 6);
	s->nkeep_remote = 1;
	snprintf(s->keep_local[0], 64, "pending-ep");
	s->nkeep_local = 1;
	base_kernel(&k);
	kern_remote(&k, IP(198, 18, 1, 23), M3, IP(192, 0, 2, 23), 1);
	struct vx_k_link *v1 = &k.links[k.nlinks++], *v2 = &k.links[k.nlinks++];
	vx_k_veth_name("pending-ep", v1->name);
	vx_k_veth_name("gone-ep", v2->name);
	for (struct vx_k_link *v = v1; v <= v2; v++) {
		snprintf(v->kind, 16, "veth");
		v->group = VX_K_GROUP, v->mtu = 1450, v->up = 1, v->master = 2;
	}
	json_t *d = vx_diff(s, &k, NULL, &rep);
	assert_int_equal(rep.nset, 0);
	assert_int_equal(rep.ndel, 0);
	assert_int_equal(rep.ndel_links, 1);
	assert_string_equal(rep.del_links[0], v2->name);
	assert_true(has(d, "link", "extra"));
	json_decref(d);
	vx_repair_free(&rep);
	vx_k_state_free(&k);
	free_snap(s);
}

/* ---- codec ---------------------------------------------------------------- */

static void test_erec_roundtrip(void **st)
{
	(void)st;
	struct vx_erec r = {.vni = 4001,
			    .ip = IP(198, 18, 1, 5),
			    .plen = 24,
			    .vtep = IP(192, 0, 2, 12)},
		       k, v;
	memcpy(r.mac, M1, 6);
	snprintf(r.net, 64, "db1");
	snprintf(r.host, 64, "h2");
	snprintf(r.ep, 64, "pg-1");
	char key[256];
	vx_erec_key(key, sizeof(key), r.net, r.host, r.ep);
	assert_string_equal(key, "/netagent/v1/endpoints/db1/h2/pg-1");
	assert_int_equal(vx_erec_parse_key(key, &k), 0);
	assert_string_equal(k.net, "db1");
	assert_string_equal(k.host, "h2");
	assert_string_equal(k.ep, "pg-1");
	char *val = vx_erec_value(&r);
	assert_string_equal(
	    val, "{\"host\":\"h2\",\"ip\":\"198.18.1.5/24\",\"mac\":\"02:84:c6:12:01:15\","
		 "\"vni\":4001,\"vtep\":\"192.0.2.12\"}");
	memset(&v, 0, sizeof(v));
	assert_int_equal(vx_erec_parse_value(val, strlen(val), &v), 0);
	assert_true(vx_erec_same(&v, &r));
	free(val);
}

static void test_erec_hostile(void **st)
{
	(void)st;
	struct vx_erec r;
	const char *keys[] = {"/netagent/v1/endpoints/db1/h2", "/netagent/v1/endpoints/db1/h2/pg/x",
			      "/netagent/v1/endpoints//h2/pg", "/netagent/v1/ipam/db1/198.18.1.5",
			      "/netagent/v1/endpoints/db1/h2/"};
	for (size_t i = 0; i < sizeof(keys) / sizeof(*keys); i++)
		assert_int_equal(vx_erec_parse_key(keys[i], &r), -1);
	const char *vals[] = {"",
			      "{",
			      "[]",
			      "{\"vni\":0,\"ip\":\"198.18.1.5/"
			      "24\",\"mac\":\"02:84:c6:12:01:15\",\"vtep\":\"192.0.2.12\"}",
			      "{\"vni\":5,\"ip\":\"198.18.1.5\",\"mac\":\"02:84:c6:12:01:15\","
			      "\"vtep\":\"192.0.2.12\"}",
			      "{\"vni\":5,\"ip\":\"198.18.1.5/"
			      "24\",\"mac\":\"01:00:5e:00:00:01\",\"vtep\":\"192.0.2.12\"}",
			      "{\"vni\":5,\"ip\":\"198.18.1.5/"
			      "24\",\"mac\":\"02:84:c6:12:01:15\",\"vtep\":\"127.0.0.1\"}",
			      "{\"vni\":\"5\",\"ip\":\"198.18.1.5/"
			      "24\",\"mac\":\"02:84:c6:12:01:15\",\"vtep\":\"192.0.2.12\"}"};
	for (size_t i = 0; i < sizeof(vals) / sizeof(*vals); i++)
		assert_int_equal(vx_erec_parse_value(vals[i], strlen(vals[i]), &r), -1);
	char net[64];
	uint32_t ip;
	assert_int_equal(vx_claim_parse_key("/netagent/v1/ipam/db1/198.18.1.5", net, &ip), 0);
	assert_string_equal(net, "db1");
	assert_int_equal(ip, IP(198, 18, 1, 5));
	assert_int_equal(vx_claim_parse_key("/netagent/v1/ipam/db1/x", net, &ip), -1);
	assert_int_equal(vx_claim_parse_key("/netagent/v1/ipam//198.18.1.5", net, &ip), -1);
}

/* ---- claim verdicts --------------------------------------------------------- */

static na_etcd_result_t with_value(const char *v, na_etcd_kv_t *kv, na_etcd_resp_t *resp)
{
	memset(kv, 0, sizeof(*kv));
	memset(resp, 0, sizeof(*resp));
	kv->key = (char *)"/netagent/v1/ipam/db1/198.18.1.5";
	kv->value = (char *)v;
	kv->value_len = strlen(v);
	resp->type = NA_ETCD_OP_RANGE;
	resp->kvs = kv;
	resp->nkvs = 1;
	na_etcd_result_t r = {.resps = resp, .nresps = 1};
	return r;
}

static void test_claim_judge(void **st)
{
	(void)st;
	char owner[160];
	na_etcd_kv_t kv;
	na_etcd_resp_t resp;
	na_etcd_result_t won = {.succeeded = 1};
	assert_int_equal(vx_claim_judge(&won, "h1/e1", owner, sizeof(owner)), VX_CLAIM_OURS);
	/* the session retried after a lost answer: our own write is there */
	na_etcd_result_t again = with_value("h1/e1", &kv, &resp);
	again.retried = 1;
	assert_int_equal(vx_claim_judge(&again, "h1/e1", owner, sizeof(owner)), VX_CLAIM_OURS);
	na_etcd_result_t lost = with_value("h2/e7", &kv, &resp);
	assert_int_equal(vx_claim_judge(&lost, "h1/e1", owner, sizeof(owner)), VX_CLAIM_TAKEN);
	assert_string_equal(owner, "h2/e7");
	/* a prefix of ours is not ours */
	na_etcd_result_t pre = with_value("h1/e1x", &kv, &resp);
	assert_int_equal(vx_claim_judge(&pre, "h1/e1", owner, sizeof(owner)), VX_CLAIM_TAKEN);
	na_etcd_result_t gone = {.succeeded = 0};
	assert_int_equal(vx_claim_judge(&gone, "h1/e1", owner, sizeof(owner)), VX_CLAIM_TAKEN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_diff_in_sync),	 cmocka_unit_test(test_diff_drift),
	    cmocka_unit_test(test_diff_keep_and_owners), cmocka_unit_test(test_erec_roundtrip),
	    cmocka_unit_test(test_erec_hostile),	 cmocka_unit_test(test_claim_judge),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
