/* Blocking etcd v3 client over etcd's JSON gRPC gateway (/v3/...), built on
 * libcurl. Every call may block for seconds: call it from a worker thread or
 * the dedicated etcd thread, never from the libuv loop thread.
 *
 * Thread safety: a na_etcdl_t may be shared by any number of threads; each
 * call borrows its own CURL easy handle from a small locked pool.
 *
 * Endpoints: "http://host:port[,http://host:port…]" (a bare host:port means
 * http). A connection failure moves the client to the next endpoint; calls
 * that cannot have reached etcd (connect refused/timed out) are retried on
 * the next endpoints at once, other calls only when they are idempotent.
 * Timeouts: connect 2 s, whole request 5 s (watch: connect only).
 *
 * Errors (na_err_t): 503 "etcd_unavailable" when no endpoint answers or etcd
 * says it is unavailable (no leader, timeouts); 500 "etcd_error" with etcd's
 * message otherwise; 409 "exists" when put_if_absent loses; 409 "conflict"
 * when a compare-and-swap loses; 404 "lease_not_found" when a lease is gone.
 * A 503 from a transaction or lease grant may come after etcd applied it
 * (answer lost): the outcome is unknown, re-read the key before deciding.
 *
 * Keys are C strings; values are binary-safe (pointer + length). Values
 * returned to the caller are also NUL-terminated for convenience. */
#ifndef NA_ETCDL_LEGACY_H
#define NA_ETCDL_LEGACY_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "netagent/err.h"

#define NA_ETCDL_EUNAVAILABLE "etcd_unavailable" /* 503 */
#define NA_ETCDL_EERROR	     "etcd_error"	/* 500 */
#define NA_ETCDL_EEXISTS	     "exists"		/* 409, put_if_absent lost */
#define NA_ETCDL_ECONFLICT    "conflict"		/* 409, compare-and-swap lost */
#define NA_ETCDL_ELEASE	     "lease_not_found"	/* 404, lease expired/revoked */

typedef struct na_etcdl na_etcdl_t;

typedef struct na_etcdl_kv {
	char *key; /* NUL-terminated */
	size_t key_len;
	char *value; /* binary; value[value_len] == '\0' */
	size_t value_len;
	int64_t create_revision, mod_revision, version;
	int64_t lease; /* 0 when not attached to a lease */
} na_etcdl_kv_t;

typedef struct na_etcdl_range {
	na_etcdl_kv_t *items;
	size_t n;
	int64_t revision; /* header revision: watch from revision + 1 */
} na_etcdl_range_t;

typedef struct na_etcdl_status {
	char endpoint[256]; /* the endpoint that answered */
	char version[32];
	uint64_t member_id, leader; /* leader 0: no leader */
	int64_t revision, raft_term;
	int64_t db_size;
} na_etcdl_status_t;

/* Parses the endpoint list. Fails with 422 "invalid_field" (field "etcd"). */
na_etcdl_t *na_etcdl_new(const char *endpoints, na_err_t *err);
void na_etcdl_free(na_etcdl_t *e);
/* Optional TLS for https:// endpoints (PEM paths; any may be NULL).
 * Call before sharing the client between threads. */
int na_etcdl_set_tls(na_etcdl_t *e, const char *ca, const char *cert, const char *key, na_err_t *err);
/* Overrides the 2 s / 5 s defaults (tests). Call before sharing. */
void na_etcdl_set_timeouts(na_etcdl_t *e, long connect_ms, long request_ms);
/* The endpoint currently preferred (for logs); valid until na_etcdl_free. */
const char *na_etcdl_endpoint(na_etcdl_t *e);

void na_etcdl_kv_clear(na_etcdl_kv_t *kv);
void na_etcdl_range_clear(na_etcdl_range_t *r);

/* Key range covering every key that starts with prefix[0..len): the prefix
 * with its last byte below 0xff incremented and what follows dropped; "\0"
 * (= to the end of the keyspace) when there is no such byte. Returns a
 * malloc'd buffer and its length in *out_len, or NULL on ENOMEM. */
char *na_etcdl_prefix_end(const char *prefix, size_t len, size_t *out_len);

/* ---- kv ---- */
/* 1 and *out filled when the key exists, 0 when absent (*out zeroed), < 0 on
 * error. revision (nullable) receives the header revision either way. */
int na_etcdl_get(na_etcdl_t *e, const char *key, na_etcdl_kv_t *out, int64_t *revision, na_err_t *err);
/* Every key under prefix, sorted by key; out->revision is the snapshot's. */
int na_etcdl_range(na_etcdl_t *e, const char *prefix, na_etcdl_range_t *out, na_err_t *err);
/* lease 0: no lease. revision (nullable) receives the put's revision. */
int na_etcdl_put(na_etcdl_t *e, const char *key, const void *value, size_t len, int64_t lease,
		int64_t *revision, na_err_t *err);
/* deleted (nullable) receives how many keys went away (0 is not an error). */
int na_etcdl_delete(na_etcdl_t *e, const char *key, int64_t *deleted, int64_t *revision,
		   na_err_t *err);
int na_etcdl_delete_prefix(na_etcdl_t *e, const char *prefix, int64_t *deleted, int64_t *revision,
			  na_err_t *err);

/* ---- transactions ---- */
/* Creates key only if it does not exist (create_revision == 0). When it
 * exists: returns -1 with 409 "exists" and, if current is non-NULL, fills it
 * with the key as it is (value = owner, lease). Both branches run in one
 * etcd transaction, so current is what made the put fail. */
int na_etcdl_put_if_absent(na_etcdl_t *e, const char *key, const void *value, size_t len,
			  int64_t lease, na_etcdl_kv_t *current, int64_t *revision, na_err_t *err);
/* Puts only if key's mod_revision == expected (0: key must be absent).
 * Mismatch: -1 with 409 "conflict", current (nullable) filled with the key as
 * it is (zeroed if absent). */
int na_etcdl_cas(na_etcdl_t *e, const char *key, int64_t expected_mod_revision, const void *value,
		size_t len, int64_t lease, na_etcdl_kv_t *current, int64_t *revision, na_err_t *err);
/* Deletes key only if its value is exactly value[0..len). 1 deleted, 0 value
 * differs or key absent, < 0 error. For "release only what I still own". */
int na_etcdl_delete_if_value(na_etcdl_t *e, const char *key, const void *value, size_t len,
			    na_err_t *err);

/* ---- leases ---- */
/* ttl in seconds; *id receives the lease id chosen by etcd. */
int na_etcdl_lease_grant(na_etcdl_t *e, int64_t ttl, int64_t *id, na_err_t *err);
/* One keepalive round trip. *ttl receives the renewed TTL (s). A lease that
 * etcd no longer knows (expired, revoked) fails with 404 "lease_not_found". */
int na_etcdl_lease_keepalive(na_etcdl_t *e, int64_t id, int64_t *ttl, na_err_t *err);
/* Deletes every key attached to the lease. Unknown lease: 404
 * "lease_not_found" (callers releasing a lease may treat it as success). */
int na_etcdl_lease_revoke(na_etcdl_t *e, int64_t id, na_err_t *err);

/* ---- maintenance ---- */
/* Status of the first endpoint that answers (reachability, leader, revision). */
int na_etcdl_status(na_etcdl_t *e, na_etcdl_status_t *out, na_err_t *err);
/* Drops history up to revision (tests, operators). */
int na_etcdl_compact(na_etcdl_t *e, int64_t revision, na_err_t *err);
/* Non-blocking snapshot of what the client last saw, for GET /v1/host from
 * the loop thread: sets "endpoints", "endpoint", "reachable", and, when
 * known, "last_ok_ms_ago" and "last_error" on obj. */
void na_etcdl_snapshot(na_etcdl_t *e, json_t *obj);

/* ---- watch ---- */
enum na_etcdl_event_type { NA_ETCDL_PUT = 0, NA_ETCDL_DELETE = 1 };

typedef struct na_etcdl_event {
	enum na_etcdl_event_type type;
	const char *key; /* NUL-terminated, valid during the callback only */
	size_t key_len;
	const char *value; /* DELETE: "" */
	size_t value_len;
	int64_t mod_revision; /* resume a watch from mod_revision + 1 */
	int64_t create_revision, version, lease;
} na_etcdl_event_t;

/* Called for each event in revision order. Return 0 to go on, nonzero to end
 * the watch (na_etcdl_watch then returns NA_ETCDL_WATCH_STOPPED). */
typedef int (*na_etcdl_watch_cb)(const na_etcdl_event_t *ev, void *ud);

enum {
	NA_ETCDL_WATCH_STOPPED = 0,   /* *stop became nonzero or the callback asked */
	NA_ETCDL_WATCH_COMPACTED = 1, /* start_revision compacted / watch canceled:
				      * do a full na_etcdl_range, then watch from
				      * its revision + 1 */
};

/* Streams the events on every key under prefix from start_revision (0: from
 * now; resume: last seen mod_revision + 1) until *stop becomes nonzero
 * (noticed within ~100 ms), the callback asks to stop, etcd reports
 * compaction/cancel, or the stream fails. A stream that ends or breaks is an
 * error (< 0, 503 "etcd_unavailable"): re-watch from the last revision + 1.
 * On NA_ETCDL_WATCH_COMPACTED, err (if given) describes the cancel for logs.
 * Connection failures before the stream opens try the next endpoints. */
int na_etcdl_watch(na_etcdl_t *e, const char *prefix, int64_t start_revision, na_etcdl_watch_cb cb,
		  void *ud, const atomic_int *stop, na_err_t *err);
/* The same on exactly one key (VIP ownership keys). */
int na_etcdl_watch_key(na_etcdl_t *e, const char *key, int64_t start_revision, na_etcdl_watch_cb cb,
		      void *ud, const atomic_int *stop, na_err_t *err);

#endif
