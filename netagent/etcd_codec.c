/* The JSON of etcd's gRPC gateway (/v3/...), both ways. Its quirks: bytes
 * are base64, int64 are strings, and every field equal to its zero value is
 * omitted (a PUT event has no "type", an empty value no "value", a dead
 * lease's keepalive no "TTL", a failed txn no "succeeded"). Pure functions:
 * tests/unit/test_etcd_codec.c covers them. */
#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netagent/etcd_int.h"
#include "netagent/util.h"

int etcd_buf_append(etcd_buf_t *b, const void *data, size_t n)
{
	if (n > ETCD_MAX_BODY || b->len + n + 1 > ETCD_MAX_BODY)
		return -1;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p)
			return -1;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

void etcd_buf_consume(etcd_buf_t *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
	} else {
		memmove(b->p, b->p + n, b->len - n);
		b->len -= n;
	}
	if (b->p)
		b->p[b->len] = '\0';
}

void etcd_buf_free(etcd_buf_t *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

char *etcd_b64enc(const void *buf, size_t len)
{
	if (len > (size_t)INT_MAX / 4 * 3 - 3)
		return NULL;
	char *out = malloc(4 * ((len + 2) / 3) + 1);
	if (!out)
		return NULL;
	EVP_EncodeBlock((unsigned char *)out, buf, (int)len);
	return out;
}

char *etcd_b64dec(const char *s, size_t *out_len)
{
	size_t len = strlen(s);
	/* the gateway always pads; EVP_DecodeBlock rejects anything else */
	if (len % 4 || len > INT_MAX)
		return NULL;
	unsigned char *out = malloc(len / 4 * 3 + 1);
	if (!out)
		return NULL;
	int n = EVP_DecodeBlock(out, (const unsigned char *)s, (int)len);
	if (n < 0) {
		free(out);
		return NULL;
	}
	/* EVP_DecodeBlock counts padding as decoded zero bytes: drop them */
	if (len && s[len - 1] == '=')
		n--;
	if (len > 1 && s[len - 2] == '=')
		n--;
	out[n] = '\0';
	*out_len = (size_t)n;
	return (char *)out;
}

int64_t etcd_jint(json_t *obj, const char *field)
{
	json_t *v = json_object_get(obj, field);
	if (json_is_integer(v))
		return (int64_t)json_integer_value(v);
	if (json_is_string(v))
		return (int64_t)strtoll(json_string_value(v), NULL, 10);
	return 0;
}

uint64_t etcd_juint(json_t *obj, const char *field)
{
	json_t *v = json_object_get(obj, field);
	if (json_is_integer(v))
		return (uint64_t)json_integer_value(v);
	if (json_is_string(v))
		return (uint64_t)strtoull(json_string_value(v), NULL, 10);
	return 0;
}

/* int64 as a string: lease ids use all 63 bits, beyond a double's 53. */
json_t *etcd_jint64(int64_t v)
{
	char buf[24];
	snprintf(buf, sizeof(buf), "%lld", (long long)v);
	return json_string(buf);
}

/* json_string_nocheck: base64 is ASCII, no need to validate UTF-8 */
json_t *etcd_jb64(const void *p, size_t len)
{
	cleanup_free char *s = etcd_b64enc(p, len);
	return s ? json_string_nocheck(s) : NULL;
}

char *na_etcd_prefix_end(const char *prefix, size_t len, size_t *out_len)
{
	char *end = malloc(len ? len : 1);
	if (!end)
		return NULL;
	memcpy(end, prefix, len);
	for (size_t i = len; i-- > 0;) {
		if ((unsigned char)end[i] < 0xff) {
			end[i]++;
			*out_len = i + 1;
			return end;
		}
	}
	/* all 0xff (or empty): etcd reads range_end "\0" as "to the end" */
	end[0] = '\0';
	*out_len = 1;
	return end;
}

json_t *etcd_key_req(const char *key, int prefix)
{
	size_t len = strlen(key);
	json_t *req = json_object();
	if (!req)
		return NULL;
	if (prefix) {
		size_t end_len;
		cleanup_free char *end = na_etcd_prefix_end(key, len, &end_len);
		if (!end || json_object_set_new(req, "range_end", etcd_jb64(end, end_len)) < 0)
			goto fail;
		if (!len)
			len = 1; /* key "\0": from the first key on */
	}
	if (json_object_set_new(req, "key", etcd_jb64(len ? key : "", len)) < 0)
		goto fail;
	return req;
fail:
	json_decref(req);
	return NULL;
}

json_t *etcd_put_req(const char *key, const void *value, size_t len, int64_t lease)
{
	json_t *req = etcd_key_req(key, 0);
	if (!req || json_object_set_new(req, "value", etcd_jb64(value ? value : "", len)) < 0 ||
	    (lease && json_object_set_new(req, "lease", etcd_jint64(lease)) < 0)) {
		json_decref(req);
		return NULL;
	}
	return req;
}

void na_etcd_kv_clear(na_etcd_kv_t *kv)
{
	if (!kv)
		return;
	free(kv->key);
	free(kv->value);
	memset(kv, 0, sizeof(*kv));
}

int etcd_parse_kv(json_t *j, na_etcd_kv_t *kv, na_err_t *err)
{
	const char *k = json_string_value(json_object_get(j, "key"));
	const char *v = json_string_value(json_object_get(j, "value"));

	memset(kv, 0, sizeof(*kv));
	if (!json_is_object(j) || !k || !(kv->key = etcd_b64dec(k, &kv->key_len)))
		return na_err_set(err, 500, NA_ETCD_EERROR, NULL, "etcd sent a malformed key");
	if (!(kv->value = etcd_b64dec(v ? v : "", &kv->value_len))) {
		na_etcd_kv_clear(kv);
		return na_err_set(err, 500, NA_ETCD_EERROR, NULL, "etcd sent a malformed value");
	}
	kv->create_revision = etcd_jint(j, "create_revision");
	kv->mod_revision = etcd_jint(j, "mod_revision");
	kv->version = etcd_jint(j, "version");
	kv->lease = etcd_jint(j, "lease");
	return 0;
}

/* ---- errors ---- */

/* Words etcd uses when a member cannot serve right now; another member (or
 * the same one a moment later) may. "context deadline exceeded" comes with
 * gRPC code 2 when a member without a leader times a proposal out. */
static int unavailable_msg(const char *m)
{
	static const char *const words[] = {
	    "no leader",	 "leader changed",     "timed out",
	    "deadline exceeded", "too many requests",  "not capable",
	    "stopped",		 "connection refused", "transport is closing"};
	for (size_t i = 0; i < NA_ARRAY_SIZE(words); i++)
		if (strstr(m, words[i]))
			return 1;
	return 0;
}

enum etcd_fail etcd_map_error(json_t *j, long http_code, const char *ep, na_err_t *err)
{
	json_t *ej = json_object_get(j, "error");
	const char *msg = NULL;
	json_int_t grpc = -1;

	if (json_is_string(ej)) {
		/* unary: {"error":"…","message":"…","code":5} */
		msg = json_string_value(ej);
		if (json_is_integer(json_object_get(j, "code")))
			grpc = json_integer_value(json_object_get(j, "code"));
	} else if (json_is_object(ej)) {
		/* streamed: {"error":{"grpc_code":5,"http_code":404,"message":"…"}} */
		msg = json_string_value(json_object_get(ej, "message"));
		if (json_is_integer(json_object_get(ej, "grpc_code")))
			grpc = json_integer_value(json_object_get(ej, "grpc_code"));
	} else if (json_is_string(json_object_get(j, "message"))) {
		msg = json_string_value(json_object_get(j, "message"));
		if (json_is_integer(json_object_get(j, "code")))
			grpc = json_integer_value(json_object_get(j, "code"));
	}
	if (!msg || !*msg)
		msg = j ? "unexpected answer" : "unparsable answer";

	/* gRPC 14 UNAVAILABLE ("no leader"), 4 DEADLINE_EXCEEDED ("request
	 * timed out"); a proxy's 502/503/504 without a gRPC body. */
	int unavailable = grpc == 14 || grpc == 4 || (grpc == 2 && unavailable_msg(msg)) ||
			  (grpc < 0 && (http_code == 502 || http_code == 503 || http_code == 504));
	if (unavailable) {
		na_err_set(err, 503, NA_ETCD_EUNAVAILABLE, NULL, "etcd at %s: %s", ep, msg);
		return ETCD_UNAVAILABLE;
	}
	if (grpc == 5 && strstr(msg, "lease not found")) {
		na_err_set(err, 404, NA_ETCD_ELEASE, NULL, "etcd: %s", msg);
		return ETCD_FINAL;
	}
	na_err_set(err, 500, NA_ETCD_EERROR, NULL, "etcd at %s: %s (HTTP %ld)", ep, msg, http_code);
	return ETCD_FINAL;
}

/* ---- answers ---- */

void etcd_result_clear(na_etcd_result_t *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nresps; i++) {
		for (size_t k = 0; k < r->resps[i].nkvs; k++)
			na_etcd_kv_clear(&r->resps[i].kvs[k]);
		free(r->resps[i].kvs);
	}
	free(r->resps);
	memset(r, 0, sizeof(*r));
}

const na_etcd_kv_t *na_etcd_result_kvs(const na_etcd_result_t *r, size_t *n)
{
	for (size_t i = 0; r && i < r->nresps; i++) {
		if (r->resps[i].type == NA_ETCD_OP_RANGE) {
			*n = r->resps[i].nkvs;
			return r->resps[i].kvs;
		}
	}
	*n = 0;
	return NULL;
}

/* One RangeResponse / PutResponse / DeleteRangeResponse into resp. */
static int parse_resp(enum na_etcd_optype t, json_t *j, na_etcd_resp_t *resp, na_err_t *err)
{
	resp->type = t;
	if (t == NA_ETCD_OP_DELETE) {
		resp->deleted = etcd_jint(j, "deleted");
		return 0;
	}
	if (t != NA_ETCD_OP_RANGE)
		return 0;
	json_t *kvs = json_object_get(j, "kvs");
	size_t cnt = json_is_array(kvs) ? json_array_size(kvs) : 0;
	if (!cnt)
		return 0;
	if (!(resp->kvs = calloc(cnt, sizeof(*resp->kvs))))
		return na_err_errno(err, ENOMEM, "etcd range of %zu keys", cnt);
	for (size_t i = 0; i < cnt; i++) {
		if (etcd_parse_kv(json_array_get(kvs, i), &resp->kvs[i], err) < 0)
			return -1;
		resp->nkvs = i + 1;
	}
	return 0;
}

static int one_resp(na_etcd_result_t *r, enum na_etcd_optype t, json_t *j, na_err_t *err)
{
	if (!(r->resps = calloc(1, sizeof(*r->resps))))
		return na_err_errno(err, ENOMEM, "etcd answer");
	r->nresps = 1;
	return parse_resp(t, j, &r->resps[0], err);
}

/* TxnResponse.responses: [{"response_range":{…}} | {"response_put":…} |
 * {"response_delete_range":…}], one per op of the branch that ran. */
static int parse_txn(json_t *j, na_etcd_result_t *r, na_err_t *err)
{
	json_t *arr = json_object_get(j, "responses");
	size_t n = json_is_array(arr) ? json_array_size(arr) : 0;

	r->succeeded = json_is_true(json_object_get(j, "succeeded"));
	if (!n)
		return 0;
	if (!(r->resps = calloc(n, sizeof(*r->resps))))
		return na_err_errno(err, ENOMEM, "etcd txn answer");
	r->nresps = n;
	for (size_t i = 0; i < n; i++) {
		json_t *op = json_array_get(arr, i), *v;
		int rc;
		if ((v = json_object_get(op, "response_range")))
			rc = parse_resp(NA_ETCD_OP_RANGE, v, &r->resps[i], err);
		else if ((v = json_object_get(op, "response_delete_range")))
			rc = parse_resp(NA_ETCD_OP_DELETE, v, &r->resps[i], err);
		else if ((v = json_object_get(op, "response_put")))
			rc = parse_resp(NA_ETCD_OP_PUT, v, &r->resps[i], err);
		else
			rc = na_err_set(err, 500, NA_ETCD_EERROR, NULL,
					"etcd txn answer %zu has no known response", i);
		if (rc < 0)
			return -1;
	}
	return 0;
}

static void parse_status(json_t *j, na_etcd_result_t *r)
{
	json_t *hdr = json_object_get(j, "header");
	snprintf(r->version, sizeof(r->version), "%s",
		 json_string_value(json_object_get(j, "version")) ?: "");
	r->member_id = etcd_juint(hdr, "member_id");
	r->leader = etcd_juint(j, "leader");
	r->raft_term = etcd_jint(hdr, "raft_term");
	r->db_size = etcd_jint(j, "dbSize");
}

int etcd_parse_result(enum etcd_kind k, json_t *j, na_etcd_result_t *r, na_err_t *err)
{
	int rc = 0;

	memset(r, 0, sizeof(*r));
	if (!json_is_object(j))
		return na_err_set(err, 500, NA_ETCD_EERROR, NULL, "etcd answer is not an object");
	/* server-streaming routes (lease keepalive) wrap the message */
	json_t *res = json_object_get(j, "result");
	if (json_is_object(res) && !json_object_get(j, "header"))
		j = res;
	r->revision = etcd_jint(json_object_get(j, "header"), "revision");
	switch (k) {
	case ETCD_K_RANGE:
		rc = one_resp(r, NA_ETCD_OP_RANGE, j, err);
		break;
	case ETCD_K_PUT:
		rc = one_resp(r, NA_ETCD_OP_PUT, j, err);
		break;
	case ETCD_K_DELETE:
		rc = one_resp(r, NA_ETCD_OP_DELETE, j, err);
		break;
	case ETCD_K_TXN:
		rc = parse_txn(j, r, err);
		break;
	case ETCD_K_GRANT:
		r->lease_id = etcd_jint(j, "ID");
		r->ttl = etcd_jint(j, "TTL");
		if (!r->lease_id || r->ttl <= 0)
			rc = na_err_set(err, 500, NA_ETCD_EERROR, NULL,
					"etcd granted no lease (ID %lld, TTL %lld)",
					(long long)r->lease_id, (long long)r->ttl);
		break;
	case ETCD_K_KEEPALIVE:
		r->lease_id = etcd_jint(j, "ID");
		r->ttl = etcd_jint(j, "TTL");
		/* a lease etcd no longer knows answers 200 with TTL 0 (omitted) */
		if (r->ttl <= 0)
			rc = na_err_set(err, 404, NA_ETCD_ELEASE, NULL, "etcd lease %llx expired",
					(unsigned long long)r->lease_id);
		break;
	case ETCD_K_STATUS:
		parse_status(j, r);
		break;
	case ETCD_K_REVOKE:
	case ETCD_K_COMPACT:
		break;
	}
	if (rc < 0)
		etcd_result_clear(r);
	return rc;
}

/* ---- watch stream ---- */

int etcd_parse_wmsg(json_t *j, const char *ep, etcd_wmsg_t *m, enum etcd_fail *fail, na_err_t *err)
{
	memset(m, 0, sizeof(*m));
	if (!json_is_object(j)) {
		*fail = ETCD_UNAVAILABLE;
		return na_err_set(err, 503, NA_ETCD_EUNAVAILABLE, NULL,
				  "etcd at %s: unparsable watch message", ep);
	}
	if (json_object_get(j, "error")) {
		/* e.g. {"error":{"grpc_code":14,"message":"etcdserver: no leader"}}:
		 * the member lost its leader (hasleader metadata) */
		*fail = etcd_map_error(j, 200, ep, err);
		return -1;
	}
	json_t *r = json_object_get(j, "result");
	if (!json_is_object(r))
		r = j;
	m->header_rev = etcd_jint(json_object_get(r, "header"), "revision");
	m->created = json_is_true(json_object_get(r, "created"));
	m->canceled = json_is_true(json_object_get(r, "canceled"));
	m->compact_rev = etcd_jint(r, "compact_revision");
	m->cancel_reason = json_string_value(json_object_get(r, "cancel_reason"));
	json_t *evs = json_object_get(r, "events");
	m->events = json_is_array(evs) && json_array_size(evs) ? evs : NULL;
	/* A message that is neither the creation, a cancel nor events is a
	 * progress notification: etcd sends it only to a watcher that is
	 * synced, so every event up to header_rev has been delivered. */
	m->progress = !m->created && !m->canceled && !m->compact_rev && !m->events;
	return 0;
}

int etcd_parse_event(json_t *ev, na_etcd_kv_t *kv, int *is_delete, na_err_t *err)
{
	const char *type = json_string_value(json_object_get(ev, "type"));
	*is_delete = type && !strcmp(type, "DELETE");
	return etcd_parse_kv(json_object_get(ev, "kv"), kv, err);
}
