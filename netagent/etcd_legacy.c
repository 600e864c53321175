/* etcd client: endpoints, transport over libcurl, error mapping, encoding
 * helpers and maintenance calls. kv/txn/lease calls live in etcd_kv.c,
 * watch streams in etcd_watch.c. */
#include "netagent/etcd_legacy_priv.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netagent/util.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

/* curl_global_init is not thread-safe on every libcurl; run it once. */
static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int add_endpoint(na_etcdl_t *e, const char *s, size_t len, na_err_t *err)
{
	while (len && isspace((unsigned char)*s))
		s++, len--;
	while (len && (isspace((unsigned char)s[len - 1]) || s[len - 1] == '/'))
		len--;
	if (!len)
		return 0;
	if (e->n_eps == NA_ETCDL_MAX_ENDPOINTS)
		return na_err_set(err, 422, "invalid_field", "etcd", "more than %d etcd endpoints",
				  NA_ETCDL_MAX_ENDPOINTS);
	for (size_t i = 0; i < len; i++)
		if (isspace((unsigned char)s[i]) || !isprint((unsigned char)s[i]))
			return na_err_set(err, 422, "invalid_field", "etcd",
					  "invalid etcd endpoint '%.*s'", (int)len, s);
	bool has_scheme = memmem(s, len, "://", 3) != NULL;
	if (has_scheme && strncmp(s, "http://", 7) && strncmp(s, "https://", 8))
		return na_err_set(err, 422, "invalid_field", "etcd",
				  "etcd endpoint '%.*s': only http:// and https:// are supported",
				  (int)len, s);
	size_t host = has_scheme ? (size_t)(strstr(s, "://") - s) + 3 : 0;
	if (host >= len || len > 256)
		return na_err_set(err, 422, "invalid_field", "etcd", "invalid etcd endpoint '%.*s'",
				  (int)len, s);
	char *ep = NULL;
	if (asprintf(&ep, "%s%.*s", has_scheme ? "" : "http://", (int)len, s) < 0)
		return na_err_errno(err, ENOMEM, "etcd endpoint");
	e->eps[e->n_eps++] = ep;
	return 0;
}

na_etcdl_t *na_etcdl_new(const char *endpoints, na_err_t *err)
{
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK) {
		na_err_set(err, 500, "system_error", NULL, "libcurl init: %s",
			   curl_easy_strerror(curl_init_rc));
		return NULL;
	}
	na_etcdl_t *e = calloc(1, sizeof(*e));
	if (!e) {
		na_err_errno(err, ENOMEM, "etcd client");
		return NULL;
	}
	pthread_mutex_init(&e->lock, NULL);
	e->connect_ms = 2000;
	e->request_ms = 5000;
	const char *p = endpoints ? endpoints : "";
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		if (add_endpoint(e, p, len, err) < 0)
			goto fail;
		if (!comma)
			break;
		p = comma + 1;
	}
	if (!e->n_eps) {
		na_err_set(err, 422, "invalid_field", "etcd", "no etcd endpoint given");
		goto fail;
	}
	return e;
fail:
	na_etcdl_free(e);
	return NULL;
}

void na_etcdl_free(na_etcdl_t *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->n_eps; i++)
		free(e->eps[i]);
	for (size_t i = 0; i < e->n_pool; i++)
		curl_easy_cleanup(e->pool[i]);
	free(e->ca);
	free(e->cert);
	free(e->key);
	pthread_mutex_destroy(&e->lock);
	free(e);
}

static int dup_opt(char **dst, const char *src, na_err_t *err)
{
	free(*dst);
	*dst = NULL;
	if (src && !(*dst = strdup(src)))
		return na_err_errno(err, ENOMEM, "etcd tls");
	return 0;
}

int na_etcdl_set_tls(na_etcdl_t *e, const char *ca, const char *cert, const char *key, na_err_t *err)
{
	if (dup_opt(&e->ca, ca, err) < 0 || dup_opt(&e->cert, cert, err) < 0 ||
	    dup_opt(&e->key, key, err) < 0)
		return -1;
	return 0;
}

void na_etcdl_set_timeouts(na_etcdl_t *e, long connect_ms, long request_ms)
{
	if (connect_ms > 0)
		e->connect_ms = connect_ms;
	if (request_ms > 0)
		e->request_ms = request_ms;
}

const char *na_etcdl_endpoint(na_etcdl_t *e)
{
	return e->eps[atomic_load(&e->cur) % e->n_eps];
}

/* ---- handles ---- */

static CURL *pool_get(na_etcdl_t *e)
{
	CURL *h = NULL;
	pthread_mutex_lock(&e->lock);
	if (e->n_pool)
		h = e->pool[--e->n_pool];
	pthread_mutex_unlock(&e->lock);
	if (h) {
		/* reset keeps the handle's live connections: keepalives reuse them */
		curl_easy_reset(h);
		return h;
	}
	return curl_easy_init();
}

static void pool_put(na_etcdl_t *e, CURL *h)
{
	pthread_mutex_lock(&e->lock);
	if (e->n_pool < NA_ETCDL_POOL) {
		e->pool[e->n_pool++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&e->lock);
	if (h)
		curl_easy_cleanup(h);
}

void na_etcdl_setup_handle(na_etcdl_t *e, CURL *h, const char *url, const char *body,
			  struct curl_slist *hdrs)
{
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, e->connect_ms);
	/* the default SIGALRM-based resolver timeout is unsafe in threads */
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	/* a watch sits idle for minutes: keepalive notices a vanished peer */
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 5L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 2L);
	if (e->ca)
		curl_easy_setopt(h, CURLOPT_CAINFO, e->ca);
	if (e->cert)
		curl_easy_setopt(h, CURLOPT_SSLCERT, e->cert);
	if (e->key)
		curl_easy_setopt(h, CURLOPT_SSLKEY, e->key);
}

bool na_etcdl_not_sent(CURL *h, CURLcode rc)
{
	long sent = 0;

	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
	case CURLE_SSL_CONNECT_ERROR:
		return true;
	default:
		/* e.g. a connect timeout: nothing left the socket */
		if (curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &sent) != CURLE_OK)
			return false;
		return sent == 0;
	}
}

/* ---- outcome bookkeeping ---- */

void na_etcdl_note_ok(na_etcdl_t *e)
{
	pthread_mutex_lock(&e->lock);
	e->reachable = true;
	e->last_ok_ms = na_now_ms();
	pthread_mutex_unlock(&e->lock);
}

void na_etcdl_note_fail(na_etcdl_t *e, size_t idx, const char *msg)
{
	size_t expect = idx;
	/* only the first thread to see idx fail moves on; others keep its choice */
	atomic_compare_exchange_strong(&e->cur, &expect, (idx + 1) % e->n_eps);
	pthread_mutex_lock(&e->lock);
	e->reachable = false;
	snprintf(e->last_error, sizeof(e->last_error), "%s", msg);
	pthread_mutex_unlock(&e->lock);
}

void na_etcdl_snapshot(na_etcdl_t *e, json_t *obj)
{
	json_t *eps = json_array();
	for (size_t i = 0; i < e->n_eps; i++)
		json_array_append_new(eps, json_string(e->eps[i]));
	json_object_set_new(obj, "endpoints", eps);
	json_object_set_new(obj, "endpoint", json_string(na_etcdl_endpoint(e)));
	pthread_mutex_lock(&e->lock);
	json_object_set_new(obj, "reachable", json_boolean(e->reachable));
	if (e->last_ok_ms)
		json_object_set_new(obj, "last_ok_ms_ago",
				    json_integer((json_int_t)(na_now_ms() - e->last_ok_ms)));
	if (e->last_error[0])
		json_object_set_new(obj, "last_error", json_string(e->last_error));
	pthread_mutex_unlock(&e->lock);
}

/* ---- errors ---- */

int na_etcdl_curl_error(CURLcode rc, const char *ep, na_err_t *err)
{
	return na_err_set(err, 503, NA_ETCDL_EUNAVAILABLE, NULL, "etcd at %s: %s", ep,
			  curl_easy_strerror(rc));
}

int na_etcdl_map_error(json_t *j, long http_code, const char *ep, na_err_t *err)
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

	/* gRPC 14 UNAVAILABLE ("no leader") and 4 DEADLINE_EXCEEDED ("request
	 * timed out") mean the cluster cannot serve now: the caller retries */
	bool unavailable = grpc == 14 || grpc == 4;
	if (grpc < 0 && (http_code == 502 || http_code == 503 || http_code == 504))
		unavailable = true;
	if (unavailable)
		return na_err_set(err, 503, NA_ETCDL_EUNAVAILABLE, NULL, "etcd at %s: %s", ep, msg);
	if (grpc == 5 && strstr(msg, "lease not found"))
		return na_err_set(err, 404, NA_ETCDL_ELEASE, NULL, "etcd: %s", msg);
	return na_err_set(err, 500, NA_ETCDL_EERROR, NULL, "etcd at %s: %s (HTTP %ld)", ep, msg,
			  http_code);
}

/* ---- transport ---- */

int na_etcdl_buf_append(na_etcdl_buf_t *b, const void *data, size_t n)
{
	if (b->len + n + 1 > NA_ETCDL_MAX_BODY)
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

static size_t body_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
	/* returning less than given aborts the transfer (CURLE_WRITE_ERROR) */
	return na_etcdl_buf_append(ud, ptr, size * nmemb) < 0 ? 0 : size * nmemb;
}

static int call_one(na_etcdl_t *e, size_t idx, const char *path, const char *payload,
		    struct curl_slist *hdrs, json_t **out, bool *retry_ok, na_err_t *err)
{
	const char *ep = e->eps[idx];
	cleanup_free char *url = NULL;
	na_etcdl_buf_t resp = {0};
	long code = 0;

	*retry_ok = false;
	if (asprintf(&url, "%s%s", ep, path) < 0)
		return na_err_errno(err, ENOMEM, "etcd url");
	CURL *h = pool_get(e);
	if (!h)
		return na_err_set(err, 500, "system_error", NULL, "curl_easy_init failed");
	na_etcdl_setup_handle(e, h, url, payload, hdrs);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, e->request_ms);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, body_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
	CURLcode rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	if (rc != CURLE_OK)
		*retry_ok = na_etcdl_not_sent(h, rc);
	pool_put(e, h);
	cleanup_free char *body = resp.p;
	if (rc == CURLE_WRITE_ERROR)
		return na_err_set(err, 500, NA_ETCDL_EERROR, NULL,
				  "etcd at %s: answer larger than %u bytes", ep, NA_ETCDL_MAX_BODY);
	if (rc != CURLE_OK)
		return na_etcdl_curl_error(rc, ep, err);

	cleanup_json json_t *j = json_loadb(body ? body : "", resp.len, 0, NULL);
	if (code != 200 || !json_is_object(j) || json_object_get(j, "error"))
		return na_etcdl_map_error(j, code, ep, err);
	/* server-streaming routes (lease/keepalive) wrap each message */
	json_t *res = json_object_get(j, "result");
	if (json_is_object(res) && !json_object_get(j, "header")) {
		*out = json_incref(res);
		return 0;
	}
	*out = NA_STEAL(j);
	return 0;
}

int na_etcdl_call(na_etcdl_t *e, const char *path, json_t *body, bool idempotent, json_t **out,
		 na_err_t *err)
{
	na_err_t last = NA_ERR_INIT;
	cleanup_free char *payload = json_dumps(body, JSON_COMPACT);
	if (!payload)
		return na_err_set(err, 500, NA_ETCDL_EERROR, NULL, "cannot encode request for %s",
				  path);
	/* "Expect:" stops curl from waiting for 100-continue on larger bodies */
	struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	struct curl_slist *h2 = hdrs ? curl_slist_append(hdrs, "Expect:") : NULL;
	if (!h2) {
		curl_slist_free_all(hdrs);
		return na_err_errno(err, ENOMEM, "etcd request");
	}
	hdrs = h2;

	int ret = -1;
	size_t start = atomic_load(&e->cur);
	for (size_t i = 0; i < e->n_eps; i++) {
		size_t idx = (start + i) % e->n_eps;
		bool not_sent = false;
		na_err_clear(&last);
		if (call_one(e, idx, path, payload, hdrs, out, &not_sent, &last) == 0) {
			na_etcdl_note_ok(e);
			ret = 0;
			break;
		}
		if (last.status != 503)
			break; /* etcd answered: another member would say the same */
		na_etcdl_note_fail(e, idx, last.msg);
		if (!not_sent && !idempotent)
			break; /* it may have been applied: let the caller decide */
	}
	curl_slist_free_all(hdrs);
	if (ret < 0 && err)
		*err = last;
	return ret;
}

/* ---- encoding ---- */

char *na_etcdl_b64enc(const void *buf, size_t len)
{
	if (len > (size_t)INT_MAX / 4 * 3 - 3)
		return NULL;
	char *out = malloc(4 * ((len + 2) / 3) + 1);
	if (!out)
		return NULL;
	EVP_EncodeBlock((unsigned char *)out, buf, (int)len);
	return out;
}

char *na_etcdl_b64dec(const char *s, size_t *out_len)
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

int64_t na_etcdl_jint(json_t *obj, const char *field)
{
	json_t *v = json_object_get(obj, field);
	if (json_is_integer(v))
		return (int64_t)json_integer_value(v);
	if (json_is_string(v))
		return (int64_t)strtoll(json_string_value(v), NULL, 10);
	return 0;
}

static uint64_t juint(json_t *obj, const char *field)
{
	json_t *v = json_object_get(obj, field);
	if (json_is_integer(v))
		return (uint64_t)json_integer_value(v);
	if (json_is_string(v))
		return (uint64_t)strtoull(json_string_value(v), NULL, 10);
	return 0;
}

int na_etcdl_parse_kv(json_t *j, na_etcdl_kv_t *kv, na_err_t *err)
{
	const char *k = json_string_value(json_object_get(j, "key"));
	const char *v = json_string_value(json_object_get(j, "value"));

	memset(kv, 0, sizeof(*kv));
	if (!k || !(kv->key = na_etcdl_b64dec(k, &kv->key_len)))
		return na_err_set(err, 500, NA_ETCDL_EERROR, NULL, "etcd sent a malformed key");
	if (!(kv->value = na_etcdl_b64dec(v ? v : "", &kv->value_len))) {
		na_etcdl_kv_clear(kv);
		return na_err_set(err, 500, NA_ETCDL_EERROR, NULL, "etcd sent a malformed value");
	}
	kv->create_revision = na_etcdl_jint(j, "create_revision");
	kv->mod_revision = na_etcdl_jint(j, "mod_revision");
	kv->version = na_etcdl_jint(j, "version");
	kv->lease = na_etcdl_jint(j, "lease");
	return 0;
}

void na_etcdl_kv_clear(na_etcdl_kv_t *kv)
{
	if (!kv)
		return;
	free(kv->key);
	free(kv->value);
	memset(kv, 0, sizeof(*kv));
}

void na_etcdl_range_clear(na_etcdl_range_t *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		na_etcdl_kv_clear(&r->items[i]);
	free(r->items);
	memset(r, 0, sizeof(*r));
}

char *na_etcdl_prefix_end(const char *prefix, size_t len, size_t *out_len)
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

/* ---- maintenance ---- */

int na_etcdl_status(na_etcdl_t *e, na_etcdl_status_t *out, na_err_t *err)
{
	cleanup_json json_t *req = json_object();
	cleanup_json json_t *resp = NULL;

	memset(out, 0, sizeof(*out));
	if (na_etcdl_call(e, "/v3/maintenance/status", req, true, &resp, err) < 0)
		return -1;
	json_t *hdr = json_object_get(resp, "header");
	snprintf(out->endpoint, sizeof(out->endpoint), "%s", na_etcdl_endpoint(e));
	snprintf(out->version, sizeof(out->version), "%s",
		 json_string_value(json_object_get(resp, "version")) ?: "");
	out->member_id = juint(hdr, "member_id");
	out->leader = juint(resp, "leader");
	out->revision = na_etcdl_jint(hdr, "revision");
	out->raft_term = na_etcdl_jint(hdr, "raft_term");
	out->db_size = na_etcdl_jint(resp, "dbSize");
	return 0;
}

int na_etcdl_compact(na_etcdl_t *e, int64_t revision, na_err_t *err)
{
	char rev[24];
	snprintf(rev, sizeof(rev), "%lld", (long long)revision);
	/* physical: answer only once the history is really gone */
	cleanup_json json_t *req = json_pack("{s:s,s:b}", "revision", rev, "physical", 1);
	cleanup_json json_t *resp = NULL;
	if (!req)
		return na_err_errno(err, ENOMEM, "etcd compact");
	return na_etcdl_call(e, "/v3/kv/compaction", req, false, &resp, err);
}
