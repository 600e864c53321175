/* Unary calls: one JSON POST per attempt, on the preferred endpoint first.
 * An attempt that fails with "unavailable" (transport error, 5xx without a
 * verdict, gRPC 14/4, no leader) is repeated on the next endpoint at once;
 * after a round over every endpoint the call waits (50 ms doubling to 1 s)
 * and goes round again, all within its deadline, each attempt capped by
 * attempt_ms and by what is left of the deadline. An answer from etcd that
 * is a verdict (lease not found, bad request, compacted) ends the call:
 * every member would say the same.
 *
 * Whether an attempt may have been applied is tracked (the request may have
 * left the socket): a later success then says retried = 1, and a claim
 * reads its outcome from its else branch. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "netagent/etcd_int.h"
#include "netagent/util.h"

struct etcd_call {
	na_etcd_t *e;
	struct etcd_call *prev, *next;
	enum etcd_kind kind;
	const char *path;
	char *body;
	na_etcd_cb cb;
	void *ud;
	const char *user;
	unsigned long long start, deadline; /* na_now_ms() */
	long attempt_ms;
	etcd_xfer_t *x;
	size_t ep;
	unsigned tries, rounds, config_fails;
	int maybe_applied, waiting;
	unsigned long long due;
	na_err_t last;
};
typedef struct etcd_call call_t;

static void link_call(na_etcd_t *e, call_t *c)
{
	c->prev = NULL;
	c->next = e->calls;
	if (e->calls)
		e->calls->prev = c;
	e->calls = c;
}

static void unlink_call(na_etcd_t *e, call_t *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		e->calls = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

static void call_free(call_t *c)
{
	if (c->x)
		etcd_xfer_abort(c->x);
	free(c->body);
	free(c);
}

/* Ends c: its callback runs once (unlinked first, so a cancel from inside
 * it cannot find c), then c is gone. */
static void complete(call_t *c, int rc, const na_err_t *err, na_etcd_result_t *res)
{
	unlink_call(c->e, c);
	if (res)
		res->retried = c->maybe_applied;
	c->cb(c->ud, rc, rc < 0 ? err : NULL, rc < 0 ? NULL : res);
	call_free(c);
}

static void on_retry_timer(uv_timer_t *t);

static void arm_retry_timer(na_etcd_t *e)
{
	unsigned long long min = 0, now = na_now_ms();
	for (call_t *c = e->calls; c; c = c->next)
		if (c->waiting && (!min || c->due < min))
			min = c->due;
	if (!min)
		uv_timer_stop(&e->retry_timer);
	else
		uv_timer_start(&e->retry_timer, on_retry_timer, min > now ? min - now : 0, 0);
}

static void on_done(void *ud, etcd_xfer_t *x);

/* One attempt on c->ep. Returns < 0 (err set) when none could start. */
static int attempt(call_t *c, na_err_t *err)
{
	na_etcd_t *e = c->e;
	unsigned long long now = na_now_ms();
	if (now >= c->deadline) {
		if (c->last.status)
			*err = c->last;
		else
			na_err_set(err, 503, NA_ETCD_EUNAVAILABLE, NULL, "etcd: deadline passed");
		na_err_prefix(err, "no etcd endpoint answered within %llu ms",
			      c->deadline - c->start);
		return -1;
	}
	long left = (long)(c->deadline - now);
	long tmo = c->attempt_ms > 0 && c->attempt_ms < left ? c->attempt_ms : left;
	char *body = strdup(c->body);
	if (!body)
		return na_err_errno(err, ENOMEM, "etcd call");
	c->tries++;
	return etcd_xfer_start(e, c->ep, c->path, body, tmo, on_done, NULL, c, &c->x, err);
}

/* Starts the next attempt now, or after a pause once every endpoint failed
 * in this round. Completes c when the deadline leaves no room. */
static void next_attempt(call_t *c)
{
	na_etcd_t *e = c->e;
	na_err_t err = NA_ERR_INIT;
	/* the preferred endpoint moved (someone saw ours fail): follow it */
	c->ep = e->pref != c->ep ? e->pref : (c->ep + 1) % e->neps;
	if (c->tries % e->neps == 0) {
		/* TLS trust or certificate problems will not heal by waiting */
		if (c->config_fails >= e->neps) {
			complete(c, -1, &c->last, NULL);
			return;
		}
		c->config_fails = 0;
		unsigned long long pause = 50ULL << (c->rounds < 5 ? c->rounds : 5);
		c->rounds++;
		if (pause > 1000)
			pause = 1000;
		c->waiting = 1;
		c->due = na_now_ms() + pause;
		if (c->due > c->deadline)
			c->due = c->deadline;
		arm_retry_timer(e);
		return;
	}
	if (attempt(c, &err) < 0)
		complete(c, -1, &err, NULL);
}

static void on_retry_timer(uv_timer_t *t)
{
	na_etcd_t *e = t->data;
	/* one at a time: a completion may cancel or add other calls */
	for (;;) {
		unsigned long long now = na_now_ms();
		call_t *c = e->calls;
		while (c && !(c->waiting && c->due <= now + 1))
			c = c->next;
		if (!c)
			break;
		c->waiting = 0;
		na_err_t err = NA_ERR_INIT;
		if (attempt(c, &err) < 0)
			complete(c, -1, &err, NULL);
	}
	if (!e->closing)
		arm_retry_timer(e);
}

static int tls_config_error(CURLcode rc)
{
	return rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CERTPROBLEM ||
	       rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_SSL_CIPHER;
}

static void on_done(void *ud, etcd_xfer_t *x)
{
	call_t *c = ud;
	na_etcd_t *e = c->e;
	const char *url = e->eps[x->ep].url;
	na_err_t err = NA_ERR_INIT;
	enum etcd_fail cls = ETCD_UNAVAILABLE;
	na_etcd_result_t res;

	c->x = NULL;
	if (x->rc != CURLE_OK) {
		etcd_xfer_error(x, &err);
		cls = x->too_big ? ETCD_FINAL : ETCD_UNAVAILABLE;
		if (tls_config_error(x->rc))
			c->config_fails++;
	} else {
		cleanup_json json_t *j = json_loadb(x->buf.p ? x->buf.p : "", x->buf.len, 0, NULL);
		if (x->http_code == 200 && json_is_object(j) && !json_object_get(j, "error")) {
			if (etcd_parse_result(c->kind, j, &res, &err) == 0) {
				if (c->kind == ETCD_K_STATUS)
					snprintf(res.endpoint, sizeof(res.endpoint), "%s", url);
				etcd_ep_ok(e, x->ep);
				etcd_user_note(e, c->user, 1, NULL);
				complete(c, 0, NULL, &res);
				etcd_result_clear(&res);
				return;
			}
			cls = ETCD_FINAL;
		} else {
			cls = etcd_map_error(j, x->http_code, url, &err);
		}
		/* revoking a lease etcd no longer knows is what was asked */
		if (c->kind == ETCD_K_REVOKE && !strcmp(err.code, NA_ETCD_ELEASE)) {
			memset(&res, 0, sizeof(res));
			etcd_ep_ok(e, x->ep);
			etcd_user_note(e, c->user, 1, NULL);
			complete(c, 0, NULL, &res);
			return;
		}
	}
	if (x->maybe_sent)
		c->maybe_applied = 1;
	if (cls == ETCD_FINAL) {
		if (x->rc == CURLE_OK)
			etcd_ep_ok(e, x->ep);
		etcd_user_note(e, c->user, x->rc == CURLE_OK, &err);
		complete(c, -1, &err, NULL);
		return;
	}
	etcd_ep_fail(e, x->ep, err.msg);
	/* an attempt the deadline cut to a few ms says only "timed out": the
	 * caller learns more from what the previous attempt met (a refused
	 * certificate, a member without a leader) */
	if (!(x->rc == CURLE_OPERATION_TIMEDOUT && c->last.status && na_now_ms() >= c->deadline))
		c->last = err;
	else
		err = c->last;
	if (na_now_ms() >= c->deadline) {
		na_err_prefix(&err, "no etcd endpoint answered within %llu ms",
			      c->deadline - c->start);
		etcd_user_note(e, c->user, 0, &err);
		complete(c, -1, &err, NULL);
		return;
	}
	next_attempt(c);
}

int etcd_call_start(na_etcd_t *e, enum etcd_kind k, const char *path, json_t *req,
		    const na_etcd_opts_t *opts, na_etcd_cb cb, void *ud, na_err_t *err)
{
	cleanup_json json_t *j = req;
	if (!e || !cb)
		return na_err_set(err, 500, "internal_error", NULL,
				  "etcd call without session/callback");
	if (e->closing)
		return na_err_set(err, 503, NA_ETCD_ECANCELLED, NULL, "etcd session closed");
	if (!j)
		return na_err_errno(err, ENOMEM, "etcd request");
	call_t *c = calloc(1, sizeof(*c));
	if (!c || !(c->body = json_dumps(j, JSON_COMPACT))) {
		free(c);
		return na_err_errno(err, ENOMEM, "etcd request");
	}
	long dl = opts && opts->deadline_ms > 0 ? opts->deadline_ms : e->request_ms;
	c->e = e;
	c->kind = k;
	c->path = path;
	c->cb = cb;
	c->ud = ud;
	c->user = opts && opts->user ? opts->user : "core";
	c->attempt_ms = opts ? opts->attempt_ms : 0;
	c->start = na_now_ms();
	c->deadline = c->start + (unsigned long long)dl;
	c->ep = e->pref;
	link_call(e, c);
	if (attempt(c, err) < 0) {
		unlink_call(e, c);
		call_free(c);
		return -1;
	}
	return 0;
}

void etcd_calls_cancel_all(na_etcd_t *e)
{
	na_err_t err = NA_ERR_INIT;
	na_err_set(&err, 503, NA_ETCD_ECANCELLED, NULL, "etcd session closed");
	/* head first, every time: a callback may cancel or end other calls */
	while (e->calls)
		complete(e->calls, -1, &err, NULL);
	uv_timer_stop(&e->retry_timer);
}

void na_etcd_cancel(na_etcd_t *e, void *ud)
{
	if (!e)
		return;
	for (call_t *c = e->calls, *next; c; c = next) {
		next = c->next;
		if (c->ud == ud) {
			unlink_call(e, c);
			call_free(c);
		}
	}
	if (!e->closing)
		arm_retry_timer(e);
}

/* ---- the calls ---- */

static int need_key(const char *key, na_err_t *err)
{
	if (!key)
		return na_err_set(err, 500, "internal_error", NULL, "etcd call without a key");
	return 0;
}

int na_etcd_get(na_etcd_t *e, const char *key, const na_etcd_opts_t *opts, na_etcd_cb cb, void *ud,
		na_err_t *err)
{
	if (need_key(key, err) < 0)
		return -1;
	return etcd_call_start(e, ETCD_K_RANGE, "/v3/kv/range", etcd_key_req(key, 0), opts, cb, ud,
			       err);
}

int na_etcd_range(na_etcd_t *e, const char *prefix, const na_etcd_opts_t *opts, na_etcd_cb cb,
		  void *ud, na_err_t *err)
{
	if (need_key(prefix, err) < 0)
		return -1;
	return etcd_call_start(e, ETCD_K_RANGE, "/v3/kv/range", etcd_key_req(prefix, 1), opts, cb,
			       ud, err);
}

int na_etcd_put(na_etcd_t *e, const char *key, const void *value, size_t len, int64_t lease,
		const na_etcd_opts_t *opts, na_etcd_cb cb, void *ud, na_err_t *err)
{
	if (need_key(key, err) < 0)
		return -1;
	/* a put repeated after a lost answer writes the same value again */
	return etcd_call_start(e, ETCD_K_PUT, "/v3/kv/put", etcd_put_req(key, value, len, lease),
			       opts, cb, ud, err);
}

int na_etcd_delete(na_etcd_t *e, const char *key, const na_etcd_opts_t *opts, na_etcd_cb cb,
		   void *ud, na_err_t *err)
{
	if (need_key(key, err) < 0)
		return -1;
	return etcd_call_start(e, ETCD_K_DELETE, "/v3/kv/deleterange", etcd_key_req(key, 0), opts,
			       cb, ud, err);
}

int na_etcd_delete_prefix(na_etcd_t *e, const char *prefix, const na_etcd_opts_t *opts,
			  na_etcd_cb cb, void *ud, na_err_t *err)
{
	if (need_key(prefix, err) < 0)
		return -1;
	return etcd_call_start(e, ETCD_K_DELETE, "/v3/kv/deleterange", etcd_key_req(prefix, 1),
			       opts, cb, ud, err);
}

int na_etcd_lease_grant(na_etcd_t *e, int64_t ttl_s, const na_etcd_opts_t *opts, na_etcd_cb cb,
			void *ud, na_err_t *err)
{
	if (ttl_s <= 0 || ttl_s > 9000000000LL)
		return na_err_set(err, 422, "invalid_field", "ttl", "lease TTL %lld out of range",
				  (long long)ttl_s);
	return etcd_call_start(
	    e, ETCD_K_GRANT, "/v3/lease/grant",
	    json_pack("{s:o,s:o}", "TTL", etcd_jint64(ttl_s), "ID", etcd_jint64(0)), opts, cb, ud,
	    err);
}

int na_etcd_lease_keepalive(na_etcd_t *e, int64_t id, const na_etcd_opts_t *opts, na_etcd_cb cb,
			    void *ud, na_err_t *err)
{
	return etcd_call_start(e, ETCD_K_KEEPALIVE, "/v3/lease/keepalive",
			       json_pack("{s:o}", "ID", etcd_jint64(id)), opts, cb, ud, err);
}

int na_etcd_lease_revoke(na_etcd_t *e, int64_t id, const na_etcd_opts_t *opts, na_etcd_cb cb,
			 void *ud, na_err_t *err)
{
	return etcd_call_start(e, ETCD_K_REVOKE, "/v3/lease/revoke",
			       json_pack("{s:o}", "ID", etcd_jint64(id)), opts, cb, ud, err);
}

int na_etcd_status(na_etcd_t *e, const na_etcd_opts_t *opts, na_etcd_cb cb, void *ud, na_err_t *err)
{
	return etcd_call_start(e, ETCD_K_STATUS, "/v3/maintenance/status", json_object(), opts, cb,
			       ud, err);
}

int na_etcd_compact(na_etcd_t *e, int64_t revision, const na_etcd_opts_t *opts, na_etcd_cb cb,
		    void *ud, na_err_t *err)
{
	/* physical: answer only once the history is really gone */
	return etcd_call_start(
	    e, ETCD_K_COMPACT, "/v3/kv/compaction",
	    json_pack("{s:o,s:b}", "revision", etcd_jint64(revision), "physical", 1), opts, cb, ud,
	    err);
}
