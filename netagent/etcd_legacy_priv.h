/* Internals shared by etcd.c (unary calls) and etcd_watch.c (streams). */
#ifndef NA_ETCDL_PRIV_H
#define NA_ETCDL_PRIV_H

#include <curl/curl.h>
#include <pthread.h>

#include "netagent/etcd_legacy.h"

#define NA_ETCDL_MAX_ENDPOINTS 16
#define NA_ETCDL_POOL	      8
/* A gateway answer larger than this is a bug or an attack, not data. */
#define NA_ETCDL_MAX_BODY (64u << 20)

struct na_etcdl {
	char *eps[NA_ETCDL_MAX_ENDPOINTS];
	size_t n_eps;
	atomic_size_t cur; /* preferred endpoint */
	long connect_ms, request_ms;
	char *ca, *cert, *key;

	pthread_mutex_t lock; /* guards everything below */
	CURL *pool[NA_ETCDL_POOL];
	size_t n_pool;
	bool reachable;
	unsigned long long last_ok_ms;
	char last_error[512]; /* na_err_t.msg sized */
};

/* Growable byte buffer for response bodies. */
typedef struct na_etcdl_buf {
	char *p;
	size_t len, cap;
} na_etcdl_buf_t;

/* One unary POST of body (JSON) to path on the preferred endpoint, moving on
 * to the next endpoints when the request cannot have been sent (or always,
 * when idempotent). *out receives the answer, unwrapped from the stream form
 * {"result":{…}} that /v3/lease/keepalive uses. */
int na_etcdl_call(na_etcdl_t *e, const char *path, json_t *body, bool idempotent, json_t **out,
		 na_err_t *err);

int na_etcdl_buf_append(na_etcdl_buf_t *b, const void *data, size_t n);

/* Applies the options every request shares: URL, POST body, JSON header,
 * connect timeout, no signals (threads), TCP keepalive, TLS files. */
void na_etcdl_setup_handle(na_etcdl_t *e, CURL *h, const char *url, const char *body,
			  struct curl_slist *hdrs);

/* True when a failed transfer cannot have delivered the request to etcd, so
 * retrying it elsewhere cannot apply it twice. */
bool na_etcdl_not_sent(CURL *h, CURLcode rc);

/* Records the outcome for na_etcdl_snapshot; a failure also moves the
 * preferred endpoint past idx (if no other thread moved it already). */
void na_etcdl_note_ok(na_etcdl_t *e);
void na_etcdl_note_fail(na_etcdl_t *e, size_t idx, const char *msg);

/* Maps an error body of the gateway (unary {"error":"…","code":N} or
 * streamed {"error":{"grpc_code":N,"message":"…"}}) to err. Returns -1. */
int na_etcdl_map_error(json_t *j, long http_code, const char *ep, na_err_t *err);
/* Sets 503 etcd_unavailable for a curl failure. Returns -1. */
int na_etcdl_curl_error(CURLcode rc, const char *ep, na_err_t *err);

/* base64 (standard alphabet, padded) as used by the gateway for bytes. */
char *na_etcdl_b64enc(const void *buf, size_t len);
/* Returns a NUL-terminated malloc'd buffer, NULL on malformed input/ENOMEM. */
char *na_etcdl_b64dec(const char *s, size_t *out_len);

/* int64 fields arrive as JSON strings ("12") and absent when zero. */
int64_t na_etcdl_jint(json_t *obj, const char *field);
/* Fills kv from a mvccpb.KeyValue object; fields absent when zero. */
int na_etcdl_parse_kv(json_t *j, na_etcdl_kv_t *kv, na_err_t *err);

#endif
