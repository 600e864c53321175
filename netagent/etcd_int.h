/* Internals of the etcd session (netagent/etcd.h), core-private. Layers, each
 * calling only the ones below it:
 *   etcd_session.c   open/close, GET /v1/host info
 *   etcd_watch.c     managed watches      etcd_lease.c  lease keeper
 *   etcd_txn.c       transaction builder
 *   etcd_call.c      unary calls: deadlines, failover, retries, cancel
 *   etcd_transport.c libcurl multi on the libuv loop, endpoint/user health
 *   etcd_codec.c     the gateway's JSON (pure, unit-tested)
 * Nothing here blocks and nothing runs on another thread. */
#ifndef NA_ETCD_INT_H
#define NA_ETCD_INT_H

#include <curl/curl.h>

#include "netagent/etcd.h"

#define ETCD_MAX_EPS   16
#define ETCD_MAX_USERS 16
/* A gateway answer (or one watch message) larger than this is a bug or an
 * attack, not data: the transfer fails instead of allocating. */
#define ETCD_MAX_BODY (64u << 20)

/* ---- codec (etcd_codec.c) ---- */

typedef struct etcd_buf {
	char *p;
	size_t len, cap;
} etcd_buf_t;
/* Appends, keeping p NUL-terminated; -1 past ETCD_MAX_BODY or on ENOMEM. */
int etcd_buf_append(etcd_buf_t *b, const void *data, size_t n);
/* Drops the first n bytes. */
void etcd_buf_consume(etcd_buf_t *b, size_t n);
void etcd_buf_free(etcd_buf_t *b);

/* bytes travel base64 (standard alphabet, padded); decoding returns a
 * NUL-terminated buffer, NULL on malformed input or ENOMEM. */
char *etcd_b64enc(const void *buf, size_t len);
char *etcd_b64dec(const char *s, size_t *out_len);
/* int64 fields arrive as JSON strings and are absent when zero. */
int64_t etcd_jint(json_t *obj, const char *field);
uint64_t etcd_juint(json_t *obj, const char *field);
json_t *etcd_jint64(int64_t v);
json_t *etcd_jb64(const void *p, size_t len);

/* {"key": b64} plus, for a prefix, its range_end. An empty prefix is the
 * whole keyspace (key "\0", range_end "\0"). NULL on ENOMEM. */
json_t *etcd_key_req(const char *key, int prefix);
json_t *etcd_put_req(const char *key, const void *value, size_t len, int64_t lease);
/* Fills kv from a mvccpb.KeyValue; absent fields are zero/empty. */
int etcd_parse_kv(json_t *j, na_etcd_kv_t *kv, na_err_t *err);

/* What a failed answer means for retrying it elsewhere. */
enum etcd_fail {
	ETCD_FINAL = 0,	      /* etcd decided: another member says the same */
	ETCD_UNAVAILABLE = 1, /* this member cannot serve now: try the next */
};
/* Maps a gateway error body (unary {"error","code"} or streamed
 * {"error":{"grpc_code","message"}}; j may be NULL) to err. Returns the
 * class; err is always set. */
enum etcd_fail etcd_map_error(json_t *j, long http_code, const char *ep, na_err_t *err);

enum etcd_kind {
	ETCD_K_RANGE,
	ETCD_K_PUT,
	ETCD_K_DELETE,
	ETCD_K_TXN,
	ETCD_K_GRANT,
	ETCD_K_KEEPALIVE,
	ETCD_K_REVOKE,
	ETCD_K_STATUS,
	ETCD_K_COMPACT,
};
/* Fills r from a successful (HTTP 200) answer of kind k. A keepalive
 * answered without TTL (the lease is gone) fails with 404 lease_not_found.
 * On failure r is cleared. */
int etcd_parse_result(enum etcd_kind k, json_t *j, na_etcd_result_t *r, na_err_t *err);
void etcd_result_clear(na_etcd_result_t *r);

/* One line of a /v3/watch stream. events is borrowed from j. */
typedef struct etcd_wmsg {
	int created, canceled, progress;
	int64_t header_rev, compact_rev;
	const char *cancel_reason;
	json_t *events;
} etcd_wmsg_t;
/* < 0 with err (and *fail) when the line is an error object or unparsable. */
int etcd_parse_wmsg(json_t *j, const char *ep, etcd_wmsg_t *m, enum etcd_fail *fail, na_err_t *err);
/* One mvccpb.Event: PUT (type absent, enum 0) or DELETE. */
int etcd_parse_event(json_t *ev, na_etcd_kv_t *kv, int *is_delete, na_err_t *err);

/* ---- transport (etcd_transport.c) ---- */

typedef struct etcd_ep {
	char *url;
	int state; /* -1 never tried, 0 last attempt failed, 1 answered */
	unsigned long long last_ok_ms;
	char last_error[512]; /* na_err_t.msg sized */
} etcd_ep_t;

typedef struct etcd_user {
	const char *name;
	int state; /* as etcd_ep_t */
	unsigned long long last_ok_ms;
	unsigned long calls, failures;
	char last_error[512]; /* na_err_t.msg sized */
} etcd_user_t;

typedef struct etcd_xfer etcd_xfer_t;
/* The transfer ended (never after etcd_xfer_abort); x is freed after. */
typedef void (*etcd_xfer_done_fn)(void *ud, etcd_xfer_t *x);
/* Streamed bytes arrived: x->buf holds what was not consumed yet. Runs
 * outside libcurl's callbacks, so it may call any etcd function. */
typedef void (*etcd_xfer_data_fn)(void *ud, etcd_xfer_t *x);

struct etcd_xfer {
	na_etcd_t *e;
	CURL *h;
	size_t ep;
	char *body;
	etcd_buf_t buf;
	size_t scanned; /* stream: bytes of buf already searched for '\n' */
	long http_code;
	CURLcode rc;
	int maybe_sent; /* the request may have reached etcd */
	int too_big, aborted, data_pending;
	int new_conn; /* it opened its own connection (not a reused one) */
	size_t body_len, body_off;
	int body_read; /* curl took request bytes: they may have reached etcd */
	char errbuf[CURL_ERROR_SIZE];
	etcd_xfer_done_fn done;
	etcd_xfer_data_fn data;
	void *ud;
	etcd_xfer_t *prev, *next;
};

struct etcd_call;
struct etcd_sock;

struct na_etcd {
	uv_loop_t *loop;
	CURLM *multi;
	uv_timer_t curl_timer;	/* libcurl's single timeout */
	uv_timer_t retry_timer; /* etcd_call.c: calls waiting for their next round */
	struct curl_slist *hdrs;
	etcd_ep_t eps[ETCD_MAX_EPS];
	size_t neps, pref;
	char *ca, *cert, *key; /* PEM contents */
	size_t ca_len, cert_len, key_len;
	long connect_ms, request_ms;
	etcd_user_t users[ETCD_MAX_USERS];
	size_t nusers;
	int last_ok; /* the last finished call of any user succeeded */
	etcd_xfer_t *xfers;
	struct etcd_sock *socks;
	struct etcd_call *calls;
	struct na_etcd_watch *watches;
	struct na_etcd_lease *leases;
	int dispatching;	       /* inside the transport's processing of curl's news */
	int closing;		       /* na_etcd_close ran: nothing new starts */
	int torn_down;		       /* curl multi gone, handles closing */
	unsigned handles;	       /* uv handles (ours and watches'/leases') not closed yet */
	void (*release)(na_etcd_t *e); /* frees e once handles == 0 */
};

int etcd_transport_init(na_etcd_t *e, na_err_t *err);
/* Aborts every transfer, frees libcurl, closes the session's handles. */
void etcd_transport_teardown(na_etcd_t *e);
/* POSTs body (taken over, also on failure) to eps[ep]+path. timeout_ms 0:
 * none (streams). data NULL: the whole answer is in x->buf at done. */
int etcd_xfer_start(na_etcd_t *e, size_t ep, const char *path, char *body, long timeout_ms,
		    etcd_xfer_done_fn done, etcd_xfer_data_fn data, void *ud, etcd_xfer_t **out,
		    na_err_t *err);
/* No callback of x runs afterwards; freed now or after the current dispatch. */
void etcd_xfer_abort(etcd_xfer_t *x);
/* 503 etcd_unavailable for a failed transfer (curl's own words). */
void etcd_xfer_error(const etcd_xfer_t *x, na_err_t *err);

/* Health bookkeeping: a failure at ep moves the preferred endpoint on. */
void etcd_ep_ok(na_etcd_t *e, size_t ep);
void etcd_ep_fail(na_etcd_t *e, size_t ep, const char *msg);
/* A finished call (or watch connection) of user: reached = etcd answered,
 * err = how it failed (NULL: it succeeded). */
void etcd_user_note(na_etcd_t *e, const char *user, int reached, const na_err_t *err);
/* A uv handle of the session (or of one of its watches/leases) closed. */
void etcd_handle_closed(na_etcd_t *e);

/* ---- calls (etcd_call.c) ---- */

/* Queues a unary call; req is taken over. Retried on every failure that
 * says "unavailable", within the deadline. */
int etcd_call_start(na_etcd_t *e, enum etcd_kind k, const char *path, json_t *req,
		    const na_etcd_opts_t *opts, na_etcd_cb cb, void *ud, na_err_t *err);
/* Completes every pending call with 503 cancelled (session closing). */
void etcd_calls_cancel_all(na_etcd_t *e);

/* ---- watches and leases, for the session's close ---- */
void etcd_watches_close(na_etcd_t *e);
void etcd_watches_free(na_etcd_t *e);
/* Keepers end without callbacks; a pending stop's done() runs now. */
void etcd_leases_close(na_etcd_t *e);
void etcd_leases_free(na_etcd_t *e);

#endif
