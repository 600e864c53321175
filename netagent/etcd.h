/* The agent's one etcd v3 session (SPEC §3), shared by every module through
 * ag->etcd. It speaks etcd's JSON gateway (/v3/...) with libcurl's multi
 * interface driven by the libuv loop: nothing here blocks, every answer
 * arrives on the loop thread, and a call's callback never runs inside the
 * call that queued it.
 *
 * Endpoints: "https://a:2379,https://b:2379" (a bare host:port means http).
 * The session prefers one endpoint and moves to the next one when a call or
 * a watch fails there with a transport error or an "unavailable" answer
 * (no leader, timeout). Requests carry gRPC metadata "hasleader=true", so a
 * member cut off from its cluster refuses (and ends watches) instead of
 * serving stale data. With https:// endpoints, the CA, client certificate
 * and key are read once at open (PEM files) and kept in memory.
 *
 * Retries: within a call's deadline a failed attempt is repeated on the next
 * endpoints. Reads, puts, deletes, keepalives and revokes are idempotent. A
 * transaction or a lease grant that may have been applied before its answer
 * was lost is retried too, and the result says so (retried = 1): a claim then
 * reads its outcome from the else branch (a get of its own key), which is
 * how "an interrupted claim is resolved by re-reading its key".
 *
 * Errors (na_err_t): 503 "etcd_unavailable" when no endpoint could answer
 * before the deadline; 500 "etcd_error" with etcd's message otherwise; 404
 * "lease_not_found" when a lease is gone; 503 "cancelled" for calls still
 * pending when the session closes. */
#ifndef NA_ETCD_H
#define NA_ETCD_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include <jansson.h>

#include "netagent/err.h"

#define NA_ETCD_EUNAVAILABLE "etcd_unavailable" /* 503 */
#define NA_ETCD_EERROR	     "etcd_error"	/* 500 */
#define NA_ETCD_ELEASE	     "lease_not_found"	/* 404 */
#define NA_ETCD_ECANCELLED   "cancelled"	/* 503, session closed */

typedef struct na_etcd na_etcd_t;

typedef struct na_etcd_config {
	const char *endpoints;	     /* comma-separated URLs */
	const char *ca, *cert, *key; /* PEM files for https://, any may be NULL */
	long connect_ms;	     /* per connection attempt; 0 = 1000 */
	long request_ms;	     /* default deadline of a call; 0 = 5000 */
} na_etcd_config_t;

/* Parses the endpoints (422 "invalid_field", field "etcd"), reads the TLS
 * files (422, field "etcd-ca"/"etcd-cert"/"etcd-key"), contacts nobody yet. */
int na_etcd_open(uv_loop_t *loop, const na_etcd_config_t *cfg, na_etcd_t **out, na_err_t *err);
/* Ends every watch and lease keeper without callbacks, completes every
 * pending call with 503 "cancelled", and frees the session once libcurl
 * and libuv let go of their handles (the loop must run afterwards). */
void na_etcd_close(na_etcd_t *e);

/* Per-call options; NULL means all defaults. */
typedef struct na_etcd_opts {
	/* Who is asking ("vxlan", "vip"): GET /v1/host shows reachability per
	 * user. NULL = "core". Must outlive the call (a string literal). */
	const char *user;
	/* Whole call, across retries and endpoints; 0 = the session's
	 * request_ms. When it passes the call fails with 503. */
	long deadline_ms;
	/* Cap of a single attempt on one endpoint (0 = up to the deadline): a
	 * small one moves a keepalive to the next member fast when one hangs. */
	long attempt_ms;
} na_etcd_opts_t;

typedef struct na_etcd_kv {
	char *key; /* NUL-terminated */
	size_t key_len;
	char *value; /* binary; value[value_len] == '\0' */
	size_t value_len;
	int64_t create_revision, mod_revision, version;
	int64_t lease; /* 0 when not attached to a lease */
} na_etcd_kv_t;

/* One operation's answer inside a result. */
enum na_etcd_optype { NA_ETCD_OP_RANGE, NA_ETCD_OP_PUT, NA_ETCD_OP_DELETE };
typedef struct na_etcd_resp {
	enum na_etcd_optype type;
	na_etcd_kv_t *kvs; /* range: sorted by key */
	size_t nkvs;
	int64_t deleted; /* delete: how many keys went */
} na_etcd_resp_t;

typedef struct na_etcd_result {
	int64_t revision; /* header revision (watch from revision + 1) */
	/* get/range/put/delete: one response; txn: one per op of the branch
	 * that ran, in the order they were added. */
	na_etcd_resp_t *resps;
	size_t nresps;
	int succeeded;	  /* txn: the compares held (then branch ran) */
	int64_t lease_id; /* lease grant */
	int64_t ttl;	  /* lease grant / keepalive: TTL in seconds as granted */
	int retried;	  /* sent more than once: it may have been applied before */
	/* status */
	char endpoint[256];
	char version[32];
	uint64_t member_id, leader;
	int64_t raft_term, db_size;
} na_etcd_result_t;

/* The first range answer's kvs (get/range shortcut), or NULL/0. */
const na_etcd_kv_t *na_etcd_result_kvs(const na_etcd_result_t *r, size_t *n);

/* rc is 0 or < 0 with err; res is NULL on failure and valid during the
 * callback only. Runs on the loop thread, exactly once, never from inside
 * the call that queued it. */
typedef void (*na_etcd_cb)(void *ud, int rc, const na_err_t *err, const na_etcd_result_t *res);

/* Every call returns 0 when queued (cb will run) or < 0 with err when not
 * (cb will not run). */
int na_etcd_get(na_etcd_t *e, const char *key, const na_etcd_opts_t *opts, na_etcd_cb cb, void *ud,
		na_err_t *err);
int na_etcd_range(na_etcd_t *e, const char *prefix, const na_etcd_opts_t *opts, na_etcd_cb cb,
		  void *ud, na_err_t *err);
/* lease 0: no lease. */
int na_etcd_put(na_etcd_t *e, const char *key, const void *value, size_t len, int64_t lease,
		const na_etcd_opts_t *opts, na_etcd_cb cb, void *ud, na_err_t *err);
int na_etcd_delete(na_etcd_t *e, const char *key, const na_etcd_opts_t *opts, na_etcd_cb cb,
		   void *ud, na_err_t *err);
int na_etcd_delete_prefix(na_etcd_t *e, const char *prefix, const na_etcd_opts_t *opts,
			  na_etcd_cb cb, void *ud, na_err_t *err);
int na_etcd_lease_grant(na_etcd_t *e, int64_t ttl_s, const na_etcd_opts_t *opts, na_etcd_cb cb,
			void *ud, na_err_t *err);
/* A lease etcd no longer knows fails with 404 "lease_not_found". */
int na_etcd_lease_keepalive(na_etcd_t *e, int64_t id, const na_etcd_opts_t *opts, na_etcd_cb cb,
			    void *ud, na_err_t *err);
/* Deletes every key attached to the lease; an unknown lease is success. */
int na_etcd_lease_revoke(na_etcd_t *e, int64_t id, const na_etcd_opts_t *opts, na_etcd_cb cb,
			 void *ud, na_err_t *err);
int na_etcd_status(na_etcd_t *e, const na_etcd_opts_t *opts, na_etcd_cb cb, void *ud,
		   na_err_t *err);
/* Drops history up to revision (tests, operators); physical. */
int na_etcd_compact(na_etcd_t *e, int64_t revision, const na_etcd_opts_t *opts, na_etcd_cb cb,
		    void *ud, na_err_t *err);
/* Cancels every pending call queued with this ud: their callbacks will not
 * run. For an owner that goes away while its calls are out. */
void na_etcd_cancel(na_etcd_t *e, void *ud);

/* ---- transactions -------------------------------------------------------
 * t = na_etcd_txn_new(); compares; then/else ops; na_etcd_txn(e, t, …).
 * Builder failures (ENOMEM) are remembered and reported by na_etcd_txn. */
typedef struct na_etcd_txn na_etcd_txn_t;
enum na_etcd_cmp { NA_ETCD_EQUAL, NA_ETCD_NOT_EQUAL, NA_ETCD_GREATER, NA_ETCD_LESS };
enum na_etcd_branch { NA_ETCD_ELSE = 0, NA_ETCD_THEN = 1 };

na_etcd_txn_t *na_etcd_txn_new(void);
void na_etcd_txn_free(na_etcd_txn_t *t);
void na_etcd_txn_cmp_value(na_etcd_txn_t *t, const char *key, enum na_etcd_cmp op,
			   const void *value, size_t len);
void na_etcd_txn_cmp_version(na_etcd_txn_t *t, const char *key, enum na_etcd_cmp op, int64_t v);
/* create_revision 0 (EQUAL) is how etcd says "the key does not exist". */
void na_etcd_txn_cmp_create(na_etcd_txn_t *t, const char *key, enum na_etcd_cmp op, int64_t rev);
void na_etcd_txn_cmp_mod(na_etcd_txn_t *t, const char *key, enum na_etcd_cmp op, int64_t rev);
void na_etcd_txn_cmp_lease(na_etcd_txn_t *t, const char *key, enum na_etcd_cmp op, int64_t lease);
void na_etcd_txn_put(na_etcd_txn_t *t, enum na_etcd_branch b, const char *key, const void *value,
		     size_t len, int64_t lease);
void na_etcd_txn_delete(na_etcd_txn_t *t, enum na_etcd_branch b, const char *key, int prefix);
void na_etcd_txn_get(na_etcd_txn_t *t, enum na_etcd_branch b, const char *key, int prefix);
/* Submits and frees t (also on failure). */
int na_etcd_txn(na_etcd_t *e, na_etcd_txn_t *t, const na_etcd_opts_t *opts, na_etcd_cb cb, void *ud,
		na_err_t *err);
/* The JSON body of t as sent to /v3/kv/txn (unit tests of the builder). */
json_t *na_etcd_txn_json(const na_etcd_txn_t *t);

/* ---- managed watches ----------------------------------------------------
 * A prefix (or one key): a full range first, then a watch from its revision
 * + 1. A broken stream (endpoint died, network) resumes from the last seen
 * revision + 1 on the next endpoint, with backoff, losing no event; a
 * compacted start revision or a cancel starts over with a full range
 * (reset). Progress notifications are asked for and advance the revision;
 * a stream silent for longer than idle_ms is restarted from the last
 * revision, so a half-open connection is noticed. */
typedef struct na_etcd_event {
	enum { NA_ETCD_PUT = 0, NA_ETCD_DELETE = 1 } type;
	const char *key; /* NUL-terminated, valid during the callback only */
	size_t key_len;
	const char *value; /* DELETE: "" */
	size_t value_len;
	int64_t mod_revision, create_revision, version, lease;
} na_etcd_event_t;

typedef struct na_etcd_watch_ops {
	/* Everything under the key/prefix as of revision rev: replaces what
	 * the caller knew. At start and after a compaction or cancel. */
	void (*reset)(void *ud, const na_etcd_kv_t *kvs, size_t n, int64_t rev);
	/* One change after the last reset, in revision order. */
	void (*event)(void *ud, const na_etcd_event_t *ev);
	/* Optional: connected (up = 1) or not, with why. */
	void (*state)(void *ud, int up, const na_err_t *err);
} na_etcd_watch_ops_t;

typedef struct na_etcd_watch_cfg {
	const char *user; /* as in na_etcd_opts_t */
	int prefix;	  /* key is a prefix */
	long idle_ms;	  /* restart a silent stream; 0 = 30000 */
} na_etcd_watch_cfg_t;

typedef struct na_etcd_watch na_etcd_watch_t;
na_etcd_watch_t *na_etcd_watch(na_etcd_t *e, const char *key, const na_etcd_watch_cfg_t *cfg,
			       const na_etcd_watch_ops_t *ops, void *ud, na_err_t *err);
/* No callback runs after it returns. */
void na_etcd_watch_stop(na_etcd_watch_t *w);
/* Full range (reset) now, then watch on: the periodic backstop. */
void na_etcd_watch_resync(na_etcd_watch_t *w);
/* Last revision delivered (reset, event or progress); 0 before the first. */
int64_t na_etcd_watch_revision(const na_etcd_watch_t *w);

/* ---- lease keeper -------------------------------------------------------
 * Grants a lease (or adopts one from a previous run), keeps it alive every
 * interval, and tells its owner, on the keeper's own monotonic clock, how
 * long the lease is proven to live: a keepalive SENT at s and answered with
 * TTL T proves the lease until s + T (etcd counts from when it handles it,
 * which is later). Every keepalive's deadline is clipped to that proof minus
 * the margin, so a hung member cannot hold a renewal past it. */
typedef struct na_etcd_lease_ops {
	/* The lease is ours: granted, or the adopted one answered a keepalive. */
	void (*up)(void *ud, int64_t id);
	/* A keepalive succeeded: the lease lives at least until until_ms
	 * (CLOCK_MONOTONIC, as na_now_ms()). */
	void (*renewed)(void *ud, int64_t id, unsigned long long until_ms);
	/* now >= until - margin and no newer proof: behave as if the lease were
	 * gone (fence). Once per outage; renewed() follows if etcd comes back
	 * in time, lost() if the lease is gone. */
	void (*at_risk)(void *ud, int64_t id);
	/* etcd says the lease is gone (expired, revoked): every key on it went.
	 * The keeper grants a new one (up() again). */
	void (*lost)(void *ud, int64_t id);
} na_etcd_lease_ops_t;

typedef struct na_etcd_lease_cfg {
	const char *user;
	int64_t ttl_s;	  /* asked for; the granted TTL counts */
	long margin_ms;	  /* at_risk this long before the proven end */
	long interval_ms; /* keepalive period; 0 = ttl / 3 */
	int64_t adopt_id; /* lease of a previous run to keep, 0 = grant */
} na_etcd_lease_cfg_t;

typedef struct na_etcd_lease na_etcd_lease_t;
na_etcd_lease_t *na_etcd_lease_start(na_etcd_t *e, const na_etcd_lease_cfg_t *cfg,
				     const na_etcd_lease_ops_t *ops, void *ud, na_err_t *err);
int64_t na_etcd_lease_id(const na_etcd_lease_t *l);		  /* 0: none yet */
unsigned long long na_etcd_lease_until(const na_etcd_lease_t *l); /* 0: not proven */
int64_t na_etcd_lease_ttl(const na_etcd_lease_t *l);		  /* granted, seconds */
/* Stops keeping it alive; with revoke, revokes it (its keys go at once)
 * within the lease's own deadline. done (may be NULL) runs once etcd
 * answered or the deadline passed; no lease callback runs after this. */
void na_etcd_lease_stop(na_etcd_lease_t *l, int revoke, void (*done)(void *ud), void *ud);

/* ---- introspection (loop thread) ---- */
/* Fills obj for GET /v1/host: "endpoints" [{url, healthy, last_error?}],
 * "endpoint" (preferred), "reachable", and "users" {user: {reachable,
 * last_ok_ms_ago?, last_error?, calls, failures}}. */
void na_etcd_info(na_etcd_t *e, json_t *obj);
/* 1 when the last call of any user succeeded. */
int na_etcd_reachable(const na_etcd_t *e);

/* Key range covering every key that starts with prefix[0..len) (exposed for
 * tests): malloc'd, length in *out_len; "\0" for "to the end". */
char *na_etcd_prefix_end(const char *prefix, size_t len, size_t *out_len);
void na_etcd_kv_clear(na_etcd_kv_t *kv);

#endif
