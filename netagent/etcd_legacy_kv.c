/* etcd kv, transaction and lease calls (etcdserverpb KV and Lease services
 * through the JSON gateway). bytes fields travel base64-encoded; int64
 * fields are sent as strings so that 64-bit lease ids survive any JSON
 * number handling on the way. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "netagent/etcd_legacy_priv.h"
#include "netagent/util.h"

static json_t *jint64(int64_t v)
{
	char buf[24];
	snprintf(buf, sizeof(buf), "%lld", (long long)v);
	return json_string(buf);
}

/* json_string_nocheck: base64 is ASCII, no need to validate UTF-8 */
static json_t *jb64(const void *p, size_t len)
{
	cleanup_free char *s = na_etcdl_b64enc(p, len);
	return s ? json_string_nocheck(s) : NULL;
}

/* {"key": b64(key)} plus, for a prefix, the matching range_end. An empty
 * prefix means the whole keyspace: key "\0", range_end "\0". */
static json_t *key_req(const char *key, bool prefix)
{
	size_t len = strlen(key);
	json_t *req = json_object();
	if (!req)
		return NULL;
	if (prefix) {
		size_t end_len;
		cleanup_free char *end = na_etcdl_prefix_end(key, len, &end_len);
		if (!end || json_object_set_new(req, "range_end", jb64(end, end_len)) < 0)
			goto fail;
		if (!len) {
			key = "";
			len = 1; /* the NUL byte */
		}
	}
	if (json_object_set_new(req, "key", jb64(key, len)) < 0)
		goto fail;
	return req;
fail:
	json_decref(req);
	return NULL;
}

static json_t *put_req(const char *key, const void *value, size_t len, int64_t lease)
{
	json_t *req = key_req(key, false);
	if (!req || json_object_set_new(req, "value", jb64(value, len)) < 0 ||
	    (lease && json_object_set_new(req, "lease", jint64(lease)) < 0)) {
		json_decref(req);
		return NULL;
	}
	return req;
}

static int64_t header_rev(json_t *resp)
{
	return na_etcdl_jint(json_object_get(resp, "header"), "revision");
}

#define ENOMEM_IF_NULL(p, what)                                                                    \
	do {                                                                                       \
		if (!(p))                                                                          \
			return na_err_errno(err, ENOMEM, "%s", what);                              \
	} while (0)

static int parse_kvs(json_t *resp, na_etcdl_kv_t **items, size_t *n, na_err_t *err)
{
	json_t *kvs = json_object_get(resp, "kvs");
	size_t cnt = json_is_array(kvs) ? json_array_size(kvs) : 0;

	*items = NULL;
	*n = 0;
	if (!cnt)
		return 0;
	na_etcdl_kv_t *arr = calloc(cnt, sizeof(*arr));
	ENOMEM_IF_NULL(arr, "etcd range");
	for (size_t i = 0; i < cnt; i++) {
		if (na_etcdl_parse_kv(json_array_get(kvs, i), &arr[i], err) < 0) {
			for (size_t k = 0; k < i; k++)
				na_etcdl_kv_clear(&arr[k]);
			free(arr);
			return -1;
		}
	}
	*items = arr;
	*n = cnt;
	return 0;
}

int na_etcdl_get(na_etcdl_t *e, const char *key, na_etcdl_kv_t *out, int64_t *revision, na_err_t *err)
{
	cleanup_json json_t *req = key_req(key, false);
	cleanup_json json_t *resp = NULL;

	memset(out, 0, sizeof(*out));
	ENOMEM_IF_NULL(req, "etcd get");
	if (na_etcdl_call(e, "/v3/kv/range", req, true, &resp, err) < 0) {
		na_err_prefix(err, "get %s", key);
		return -1;
	}
	if (revision)
		*revision = header_rev(resp);
	json_t *kv = json_array_get(json_object_get(resp, "kvs"), 0);
	if (!kv)
		return 0;
	return na_etcdl_parse_kv(kv, out, err) < 0 ? -1 : 1;
}

int na_etcdl_range(na_etcdl_t *e, const char *prefix, na_etcdl_range_t *out, na_err_t *err)
{
	cleanup_json json_t *req = key_req(prefix, true);
	cleanup_json json_t *resp = NULL;

	memset(out, 0, sizeof(*out));
	ENOMEM_IF_NULL(req, "etcd range");
	if (na_etcdl_call(e, "/v3/kv/range", req, true, &resp, err) < 0) {
		na_err_prefix(err, "range %s", prefix);
		return -1;
	}
	out->revision = header_rev(resp);
	return parse_kvs(resp, &out->items, &out->n, err);
}

int na_etcdl_put(na_etcdl_t *e, const char *key, const void *value, size_t len, int64_t lease,
		int64_t *revision, na_err_t *err)
{
	cleanup_json json_t *req = put_req(key, value, len, lease);
	cleanup_json json_t *resp = NULL;

	ENOMEM_IF_NULL(req, "etcd put");
	/* a put repeated after a lost answer writes the same value again */
	if (na_etcdl_call(e, "/v3/kv/put", req, true, &resp, err) < 0) {
		na_err_prefix(err, "put %s", key);
		return -1;
	}
	if (revision)
		*revision = header_rev(resp);
	return 0;
}

static int delete_range(na_etcdl_t *e, const char *key, bool prefix, int64_t *deleted,
			int64_t *revision, na_err_t *err)
{
	cleanup_json json_t *req = key_req(key, prefix);
	cleanup_json json_t *resp = NULL;

	ENOMEM_IF_NULL(req, "etcd delete");
	if (na_etcdl_call(e, "/v3/kv/deleterange", req, true, &resp, err) < 0) {
		na_err_prefix(err, "delete %s%s", key, prefix ? "*" : "");
		return -1;
	}
	if (deleted)
		*deleted = na_etcdl_jint(resp, "deleted");
	if (revision)
		*revision = header_rev(resp);
	return 0;
}

int na_etcdl_delete(na_etcdl_t *e, const char *key, int64_t *deleted, int64_t *revision,
		   na_err_t *err)
{
	return delete_range(e, key, false, deleted, revision, err);
}

int na_etcdl_delete_prefix(na_etcdl_t *e, const char *prefix, int64_t *deleted, int64_t *revision,
			  na_err_t *err)
{
	return delete_range(e, prefix, true, deleted, revision, err);
}

/* ---- transactions ---- */

/* One compare, one success op, and a range of the key on failure so that
 * the caller learns, from the same revision, why it lost. Returns 1 when the
 * compare held, 0 when it did not (current filled or zeroed), < 0 on error.
 * Never retried on another endpoint once sent: a txn that was applied but
 * whose answer was lost would then report a spurious failure. */
static int txn(na_etcdl_t *e, json_t *cmp, const char *op, json_t *op_req, const char *key,
	       na_etcdl_kv_t *current, int64_t *revision, json_t **succ_resp, na_err_t *err)
{
	cleanup_json json_t *fail_req = key_req(key, false);
	cleanup_json json_t *resp = NULL;
	cleanup_json json_t *req = NULL;

	if (current)
		memset(current, 0, sizeof(*current));
	if (!cmp || !op_req || !fail_req) {
		json_decref(cmp);
		json_decref(op_req);
		return na_err_errno(err, ENOMEM, "etcd txn");
	}
	req = json_pack("{s:[o],s:[{s:o}],s:[{s:O}]}", "compare", cmp, "success", op, op_req,
			"failure", "request_range", fail_req);
	ENOMEM_IF_NULL(req, "etcd txn");
	if (na_etcdl_call(e, "/v3/kv/txn", req, false, &resp, err) < 0) {
		na_err_prefix(err, "txn on %s", key);
		return -1;
	}
	if (revision)
		*revision = header_rev(resp);
	json_t *first = json_array_get(json_object_get(resp, "responses"), 0);
	if (json_is_true(json_object_get(resp, "succeeded"))) {
		if (succ_resp)
			*succ_resp = json_incref(first);
		return 1;
	}
	json_t *kv =
	    json_array_get(json_object_get(json_object_get(first, "response_range"), "kvs"), 0);
	if (current && kv && na_etcdl_parse_kv(kv, current, err) < 0)
		return -1;
	return 0;
}

static json_t *compare(const char *key, const char *target, const char *field, json_t *val)
{
	cleanup_free char *kb = na_etcdl_b64enc(key, strlen(key));
	if (!kb || !val) {
		json_decref(val);
		return NULL;
	}
	return json_pack("{s:s,s:s,s:s,s:o}", "key", kb, "target", target, "result", "EQUAL", field,
			 val);
}

int na_etcdl_put_if_absent(na_etcdl_t *e, const char *key, const void *value, size_t len,
			  int64_t lease, na_etcdl_kv_t *current, int64_t *revision, na_err_t *err)
{
	/* create_revision == 0 is how etcd says "no such key" in a compare */
	json_t *cmp = compare(key, "CREATE", "create_revision", jint64(0));
	int r = txn(e, cmp, "request_put", put_req(key, value, len, lease), key, current, revision,
		    NULL, err);
	if (r < 0)
		return -1;
	if (!r)
		return na_err_set(err, 409, NA_ETCDL_EEXISTS, NULL, "etcd key %s already exists",
				  key);
	return 0;
}

int na_etcdl_cas(na_etcdl_t *e, const char *key, int64_t expected_mod_revision, const void *value,
		size_t len, int64_t lease, na_etcdl_kv_t *current, int64_t *revision, na_err_t *err)
{
	/* an absent key compares as mod_revision 0 */
	json_t *cmp = compare(key, "MOD", "mod_revision", jint64(expected_mod_revision));
	int r = txn(e, cmp, "request_put", put_req(key, value, len, lease), key, current, revision,
		    NULL, err);
	if (r < 0)
		return -1;
	if (!r)
		return na_err_set(err, 409, NA_ETCDL_ECONFLICT, NULL,
				  "etcd key %s changed (expected mod_revision %lld)", key,
				  (long long)expected_mod_revision);
	return 0;
}

int na_etcdl_delete_if_value(na_etcdl_t *e, const char *key, const void *value, size_t len,
			    na_err_t *err)
{
	/* a VALUE compare on an absent key is false, so "absent" lands here too */
	json_t *cmp = compare(key, "VALUE", "value", jb64(value, len));
	cleanup_json json_t *succ = NULL;
	int r =
	    txn(e, cmp, "request_delete_range", key_req(key, false), key, NULL, NULL, &succ, err);
	if (r <= 0)
		return r;
	return na_etcdl_jint(json_object_get(succ, "response_delete_range"), "deleted") > 0;
}

/* ---- leases ---- */

int na_etcdl_lease_grant(na_etcdl_t *e, int64_t ttl, int64_t *id, na_err_t *err)
{
	cleanup_json json_t *req = json_pack("{s:o,s:o}", "TTL", jint64(ttl), "ID", jint64(0));
	cleanup_json json_t *resp = NULL;

	ENOMEM_IF_NULL(req, "etcd lease grant");
	if (na_etcdl_call(e, "/v3/lease/grant", req, false, &resp, err) < 0) {
		na_err_prefix(err, "lease grant");
		return -1;
	}
	*id = na_etcdl_jint(resp, "ID");
	if (!*id)
		return na_err_set(err, 500, NA_ETCDL_EERROR, NULL, "etcd granted no lease id");
	return 0;
}

int na_etcdl_lease_keepalive(na_etcdl_t *e, int64_t id, int64_t *ttl, na_err_t *err)
{
	cleanup_json json_t *req = json_pack("{s:o}", "ID", jint64(id));
	cleanup_json json_t *resp = NULL;

	ENOMEM_IF_NULL(req, "etcd lease keepalive");
	if (na_etcdl_call(e, "/v3/lease/keepalive", req, true, &resp, err) < 0) {
		na_err_prefix(err, "lease %llx keepalive", (long long)id);
		return -1;
	}
	/* etcd answers a keepalive on an unknown lease with TTL 0 (omitted) */
	*ttl = na_etcdl_jint(resp, "TTL");
	if (*ttl <= 0)
		return na_err_set(err, 404, NA_ETCDL_ELEASE, NULL, "etcd lease %llx expired",
				  (long long)id);
	return 0;
}

int na_etcdl_lease_revoke(na_etcdl_t *e, int64_t id, na_err_t *err)
{
	cleanup_json json_t *req = json_pack("{s:o}", "ID", jint64(id));
	cleanup_json json_t *resp = NULL;

	ENOMEM_IF_NULL(req, "etcd lease revoke");
	/* a repeated revoke answers lease_not_found, which callers accept */
	if (na_etcdl_call(e, "/v3/lease/revoke", req, true, &resp, err) < 0) {
		na_err_prefix(err, "lease %llx revoke", (long long)id);
		return -1;
	}
	return 0;
}
