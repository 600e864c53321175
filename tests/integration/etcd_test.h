/* Harness of etcd_test (tests/integration/test_etcd.sh): sequential tests
 * written over the asynchronous session by running the libuv loop until a
 * callback has happened. Output is TAP lines without numbers ("ok - …",
 * "not ok - …", "# …") that the script renumbers, and "CTL <verb> <args>"
 * requests that the script carries out on the etcd members (kill, pause,
 * isolate…) before it answers one line on our stdin. */
#ifndef ETCD_TEST_H
#define ETCD_TEST_H

#include <stdint.h>
#include <uv.h>

#include "netagent/etcd.h"

extern uv_loop_t *loop;
extern char *urls[8]; /* the members, in the script's order (1-based in CTL) */
extern int nurls;

void ok(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Runs the loop for ms / until *flag != 0 (returns it) or ms passed. */
void run_for(long ms);
int run_until(const int *flag, long ms);
/* Asks the script to do something and runs the loop until it answered. */
void ctl(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* 1-based index of url in urls[], 0 if not there. */
int member_of(const char *url);
/* The endpoint a session prefers now. */
const char *preferred(na_etcd_t *e);

na_etcd_t *session(const char *eps, const char *ca, const char *cert, const char *key);
/* Closes and runs the loop until the session's handles are gone. */
void session_end(na_etcd_t *e);

/* A call's outcome, copied out of the callback. */
typedef struct res {
	int done, calls, rc;
	na_err_t err;
	int64_t revision, deleted, lease_id, ttl;
	int succeeded, retried, nresps;
	na_etcd_kv_t *kvs; /* copy of the first range answer */
	size_t nkvs;
	char version[32], endpoint[256];
	uint64_t member_id, leader;
	unsigned long long at_ms;
} res_t;
void res_cb(void *ud, int rc, const na_err_t *err, const na_etcd_result_t *r);
void res_clear(res_t *r);
/* Waits for r after queueing returned qrc; r->rc = qrc when not queued. */
res_t *wait_res(res_t *r, int qrc, na_err_t *qerr);
/* value of the first kv as a string ("" when none) */
const char *res_val(const res_t *r);

/* Watch collector: every reset and event, kept. */
typedef struct wev {
	int del;
	char key[96];
	char value[64];
	int64_t rev;
} wev_t;
typedef struct wcol {
	int resets, ups, downs;
	size_t reset_n;
	int64_t reset_rev;
	char reset_first[96];
	wev_t *ev;
	size_t nev, cap;
	char last_down[512];
	unsigned long long last_up_ms, last_down_ms;
} wcol_t;
extern const na_etcd_watch_ops_t wcol_ops;
void wcol_free(wcol_t *c);

/* A writer: sequential puts of prefix%06d (value = the number) while
 * running; every outcome counted. A put answered with retried = 1 may have
 * been applied twice (its first answer was lost): etcd then has two
 * revisions of that key, and a watch rightly sees both. */
#define WRITER_MAX_RETRIED 64
typedef struct writer {
	na_etcd_t *e;
	char prefix[64];
	na_etcd_opts_t opts;
	int running, inflight, next, okc, failc;
	int retried[WRITER_MAX_RETRIED], nretried;
	char last_err[512];
	unsigned long long sent_at, max_ms;
	int64_t last_rev;
} writer_t;
void writer_start(writer_t *w);
/* Stops issuing and waits for the one in flight. */
void writer_stop(writer_t *w);
/* Checks a collector against what w wrote: every acknowledged put seen, in
 * order, revisions strictly increasing (no event delivered twice); a key
 * twice in a row only when its put was retried. */
void check_sequence(const char *what, const writer_t *w, const wcol_t *c);

/* Scenarios (etcd_test_fail.c) */
void scenario_failover(void);
void scenario_lease_timing(void);
void scenario_tls(const char *ca, const char *cert, const char *key, const char *other_ca,
		  const char *other_cert, const char *other_key);
void scenario_close(void);
void scenario_basic(void);
void scenario_compaction(void);

/* A TCP proxy in front of a member that can swallow the answer of the next
 * /v3/kv/txn and hang up: "applied, answer lost", on demand. */
typedef struct proxy proxy_t;
proxy_t *proxy_new(const char *upstream_url);
int proxy_port(const proxy_t *p);
void proxy_drop_next_txn_reply(proxy_t *p);
int proxy_dropped(const proxy_t *p);

#endif
