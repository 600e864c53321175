/* Managed watches. A watch is a loop of three states:
 *   range   a full read of the key/prefix, delivered as reset(kvs, rev)
 *   stream  POST /v3/watch from rev + 1 (one HTTP/1.1 response that never
 *           ends: one {"result":WatchResponse} per line), events delivered
 *           in order, rev advanced by events and progress notifications
 *   backoff 200 ms doubling to 2 s after a failure, then stream again from
 *           rev + 1 (nothing lost, nothing twice) or range if none held
 * A compacted start revision or any cancel from etcd means history has a
 * hole for us: range again (reset). A stream silent for idle_ms is probed
 * with a read at its member; unanswered (a frozen member, one cut from its
 * quorum) the stream is given up and resumed elsewhere; a member that
 * loses its leader ends the stream itself (hasleader). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "netagent/etcd_int.h"
#include "netagent/log.h"
#include "netagent/util.h"

#define BACKOFF_MIN_MS	200
#define BACKOFF_MAX_MS	2000
#define IDLE_DEFAULT_MS 30000
#define PROBE_MAX_MS	3000

enum tmode { T_NONE, T_BACKOFF, T_IDLE };

struct na_etcd_watch {
	na_etcd_t *e;
	struct na_etcd_watch *prev, *next;
	char *key;
	int prefix;
	const char *user;
	long idle_ms;
	na_etcd_watch_ops_t ops;
	void *ud;
	int64_t rev;  /* last revision delivered */
	int64_t from; /* start_revision of the current stream */
	etcd_xfer_t *x;
	etcd_xfer_t *probe; /* a read asking whether a quiet stream's member lives */
	size_t ep;
	int ranging, resync_again, need_range;
	int up; /* last state told: -1 none yet */
	long backoff_ms;
	unsigned long long last_data;
	uv_timer_t timer;
	enum tmode tmode;
	int stopped, dead;
};
typedef struct na_etcd_watch watch_t;

static void start_range(watch_t *w);
static void start_stream(watch_t *w);
static void on_timer(uv_timer_t *t);

static int gone(const watch_t *w)
{
	return w->stopped || w->dead;
}

static void set_state(watch_t *w, int up, const na_err_t *err)
{
	if (w->up == up)
		return;
	w->up = up;
	if (w->ops.state)
		w->ops.state(w->ud, up, up ? NULL : err);
}

static void arm(watch_t *w, enum tmode m, long ms)
{
	w->tmode = m;
	uv_timer_start(&w->timer, on_timer, (uint64_t)(ms > 0 ? ms : 0), 0);
}

static void backoff(watch_t *w)
{
	arm(w, T_BACKOFF, w->backoff_ms);
	w->backoff_ms *= 2;
	if (w->backoff_ms > BACKOFF_MAX_MS)
		w->backoff_ms = BACKOFF_MAX_MS;
}

static void end_stream(watch_t *w)
{
	if (w->x)
		etcd_xfer_abort(w->x);
	w->x = NULL;
	if (w->probe)
		etcd_xfer_abort(w->probe);
	w->probe = NULL;
	uv_timer_stop(&w->timer);
	w->tmode = T_NONE;
}

/* The stream broke (or could not start): resume from rev + 1 later. */
static void stream_failed(watch_t *w, enum etcd_fail cls, const na_err_t *err)
{
	end_stream(w);
	if (cls == ETCD_UNAVAILABLE)
		etcd_ep_fail(w->e, w->ep, err->msg);
	etcd_user_note(w->e, w->user, 0, err);
	na_debug("etcd watch broke", "key=%s rev=%lld error=\"%s\"", w->key, (long long)w->rev,
		 err->msg);
	set_state(w, 0, err);
	if (!gone(w))
		backoff(w);
}

/* ---- range ---- */

static void on_range(void *ud, int rc, const na_err_t *err, const na_etcd_result_t *res)
{
	watch_t *w = ud;
	w->ranging = 0;
	if (gone(w))
		return;
	if (rc < 0) {
		w->need_range = 1;
		set_state(w, 0, err);
		if (!gone(w))
			backoff(w);
		return;
	}
	if (w->resync_again) {
		/* asked for while this range was out: the answer may predate it */
		w->resync_again = 0;
		start_range(w);
		return;
	}
	size_t n;
	const na_etcd_kv_t *kvs = na_etcd_result_kvs(res, &n);
	w->need_range = 0;
	w->rev = res->revision;
	w->ops.reset(w->ud, kvs, n, res->revision);
	if (gone(w) || w->ranging)
		return; /* stopped, or resynced from inside reset */
	start_stream(w);
}

static void start_range(watch_t *w)
{
	na_err_t err = NA_ERR_INIT;
	na_etcd_opts_t o = {.user = w->user};
	end_stream(w);
	w->ranging = 1;
	int rc = w->prefix ? na_etcd_range(w->e, w->key, &o, on_range, w, &err)
			   : na_etcd_get(w->e, w->key, &o, on_range, w, &err);
	if (rc < 0) {
		w->ranging = 0;
		w->need_range = 1;
		set_state(w, 0, &err);
		if (!gone(w))
			backoff(w);
	}
}

/* ---- stream ---- */

static void deliver(watch_t *w, json_t *evs)
{
	etcd_xfer_t *x = w->x;
	for (size_t i = 0; i < json_array_size(evs); i++) {
		na_etcd_kv_t kv;
		na_err_t err = NA_ERR_INIT;
		int del;
		if (etcd_parse_event(json_array_get(evs, i), &kv, &del, &err) < 0) {
			stream_failed(w, ETCD_UNAVAILABLE, &err);
			return;
		}
		/* etcd starts at from; anything older would be a repeat */
		if (kv.mod_revision >= w->from) {
			na_etcd_event_t ev = {
			    .type = del ? NA_ETCD_DELETE : NA_ETCD_PUT,
			    .key = kv.key,
			    .key_len = kv.key_len,
			    .value = kv.value,
			    .value_len = kv.value_len,
			    .mod_revision = kv.mod_revision,
			    .create_revision = kv.create_revision,
			    .version = kv.version,
			    .lease = kv.lease,
			};
			if (kv.mod_revision > w->rev)
				w->rev = kv.mod_revision;
			w->ops.event(w->ud, &ev);
		}
		na_etcd_kv_clear(&kv);
		if (gone(w) || w->x != x)
			return; /* stopped or resynced from inside the callback */
	}
}

static void handle_line(watch_t *w, const char *s, size_t len)
{
	const char *url = w->e->eps[w->ep].url;
	na_err_t err = NA_ERR_INIT;
	enum etcd_fail cls;
	etcd_wmsg_t m;
	cleanup_json json_t *j = json_loadb(s, len, 0, NULL);

	if (etcd_parse_wmsg(j, url, &m, &cls, &err) < 0) {
		stream_failed(w, cls, &err);
		return;
	}
	if (m.canceled || m.compact_rev) {
		na_info("etcd watch canceled, reading again",
			"key=%s rev=%lld compact_revision=%lld "
			"reason=\"%s\"",
			w->key, (long long)w->rev, (long long)m.compact_rev,
			m.cancel_reason ? m.cancel_reason : "");
		start_range(w);
		return;
	}
	if (m.created) {
		w->backoff_ms = BACKOFF_MIN_MS;
		etcd_ep_ok(w->e, w->ep);
		etcd_user_note(w->e, w->user, 1, NULL);
		set_state(w, 1, NULL);
		if (gone(w))
			return;
	}
	if (m.events)
		deliver(w, m.events);
	else if (m.progress && m.header_rev > w->rev)
		w->rev = m.header_rev;
}

static void on_stream_data(void *ud, etcd_xfer_t *x)
{
	watch_t *w = ud;
	if (x != w->x)
		return;
	w->last_data = na_now_ms();
	/* an error answer (HTTP != 200) is one object, judged at the end */
	if (x->http_code != 200)
		return;
	size_t start = 0;
	char *nl;
	/* scanned: a long message arriving in many pieces is searched once */
	while ((nl = memchr(x->buf.p + x->scanned, '\n', x->buf.len - x->scanned))) {
		size_t end = (size_t)(nl - x->buf.p);
		if (end > start)
			handle_line(w, x->buf.p + start, end - start);
		if (w->x != x)
			return; /* ended, restarted or stopped: x is no longer ours */
		start = end + 1;
		x->scanned = start;
	}
	etcd_buf_consume(&x->buf, start);
	x->scanned = x->buf.len;
}

static void on_stream_done(void *ud, etcd_xfer_t *x)
{
	watch_t *w = ud;
	na_err_t err = NA_ERR_INIT;
	enum etcd_fail cls = ETCD_UNAVAILABLE;
	const char *url = w->e->eps[x->ep].url;

	if (x != w->x)
		return;
	w->x = NULL;
	if (x->rc != CURLE_OK) {
		etcd_xfer_error(x, &err);
	} else {
		/* the last message may lack its newline: {"error":…} then EOF */
		cleanup_json json_t *j = json_loadb(x->buf.p ? x->buf.p : "", x->buf.len, 0, NULL);
		etcd_wmsg_t m;
		if (x->http_code != 200)
			cls = etcd_map_error(j, x->http_code, url, &err);
		else if (!j || etcd_parse_wmsg(j, url, &m, &cls, &err) == 0)
			na_err_set(&err, 503, NA_ETCD_EUNAVAILABLE, NULL,
				   "etcd at %s closed the watch stream", url);
	}
	stream_failed(w, cls, &err);
}

static void start_stream(watch_t *w)
{
	na_err_t err = NA_ERR_INIT;
	json_t *cr = etcd_key_req(w->key, w->prefix);
	cleanup_json json_t *req = NULL;
	char *body = NULL;

	end_stream(w);
	w->from = w->rev + 1;
	if (cr && (json_object_set_new(cr, "start_revision", etcd_jint64(w->from)) < 0 ||
		   json_object_set_new(cr, "progress_notify", json_true()) < 0)) {
		json_decref(cr);
		cr = NULL;
	}
	if (cr)
		req = json_pack("{s:o}", "create_request", cr);
	if (!req || !(body = json_dumps(req, JSON_COMPACT))) {
		na_err_errno(&err, ENOMEM, "etcd watch");
		stream_failed(w, ETCD_FINAL, &err);
		return;
	}
	w->ep = w->e->pref;
	if (etcd_xfer_start(w->e, w->ep, "/v3/watch", body, 0, on_stream_done, on_stream_data, w,
			    &w->x, &err) < 0) {
		w->x = NULL;
		stream_failed(w, ETCD_FINAL, &err);
		return;
	}
	w->last_data = na_now_ms();
	arm(w, T_IDLE, w->idle_ms);
}

/* A quiet prefix sends nothing, and etcd's progress notifications come
 * every 10 minutes by default: silence alone does not tell a quiet stream
 * from a frozen member or a stalled stream. A linearizable read of the
 * watched key at the stream's member does: it answers only from a member
 * that lives and is part of a quorum. Answered, the stream stays; not
 * answered within its deadline, the stream is given up and resumed
 * elsewhere. */
static void on_probe_done(void *ud, etcd_xfer_t *x)
{
	watch_t *w = ud;
	if (x != w->probe)
		return;
	w->probe = NULL;
	if (gone(w) || !w->x)
		return;
	if (x->rc == CURLE_OK && x->http_code == 200) {
		w->last_data = na_now_ms();
		arm(w, T_IDLE, w->idle_ms);
		return;
	}
	na_err_t err = NA_ERR_INIT;
	if (x->rc != CURLE_OK)
		etcd_xfer_error(x, &err);
	else
		na_err_set(&err, 503, NA_ETCD_EUNAVAILABLE, NULL, "HTTP %ld", x->http_code);
	char msg[sizeof(err.msg)];
	snprintf(msg, sizeof(msg), "%s", err.msg);
	na_err_set(&err, 503, NA_ETCD_EUNAVAILABLE, NULL,
		   "etcd at %s: watch stream silent and the member does not answer a read: %s",
		   w->e->eps[w->ep].url, msg);
	stream_failed(w, ETCD_UNAVAILABLE, &err);
}

static void start_probe(watch_t *w, unsigned long long quiet)
{
	na_err_t err = NA_ERR_INIT;
	json_t *req = etcd_key_req(w->key, 0);
	char *body = NULL;
	if (req && json_object_set_new(req, "count_only", json_true()) == 0)
		body = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	long tmo = w->idle_ms / 2 < PROBE_MAX_MS ? w->idle_ms / 2 : PROBE_MAX_MS;
	if (!body || etcd_xfer_start(w->e, w->ep, "/v3/kv/range", body, tmo, on_probe_done, NULL, w,
				     &w->probe, &err) < 0) {
		w->probe = NULL;
		if (!body)
			na_err_errno(&err, ENOMEM, "etcd watch");
		na_debug("etcd watch probe not sent", "key=%s quiet_ms=%llu error=\"%s\"", w->key,
			 quiet, err.msg);
		stream_failed(w, ETCD_UNAVAILABLE, &err);
	}
}

static void on_timer(uv_timer_t *t)
{
	watch_t *w = t->data;
	if (gone(w))
		return;
	if (w->tmode == T_BACKOFF) {
		w->tmode = T_NONE;
		if (w->need_range || !w->rev)
			start_range(w);
		else
			start_stream(w);
		return;
	}
	if (w->tmode != T_IDLE || !w->x)
		return;
	unsigned long long quiet = na_now_ms() - w->last_data;
	if (quiet < (unsigned long long)w->idle_ms) {
		arm(w, T_IDLE, w->idle_ms - (long)quiet);
		return;
	}
	if (!w->probe)
		start_probe(w, quiet);
}

/* ---- API ---- */

na_etcd_watch_t *na_etcd_watch(na_etcd_t *e, const char *key, const na_etcd_watch_cfg_t *cfg,
			       const na_etcd_watch_ops_t *ops, void *ud, na_err_t *err)
{
	if (!e || !key || !ops || !ops->reset || !ops->event) {
		na_err_set(err, 500, "internal_error", NULL, "etcd watch without key or callbacks");
		return NULL;
	}
	if (e->closing) {
		na_err_set(err, 503, NA_ETCD_ECANCELLED, NULL, "etcd session closed");
		return NULL;
	}
	watch_t *w = calloc(1, sizeof(*w));
	if (!w || !(w->key = strdup(key))) {
		free(w);
		na_err_errno(err, ENOMEM, "etcd watch");
		return NULL;
	}
	w->e = e;
	w->prefix = cfg && cfg->prefix;
	w->user = cfg && cfg->user ? cfg->user : "core";
	w->idle_ms = cfg && cfg->idle_ms > 0 ? cfg->idle_ms : IDLE_DEFAULT_MS;
	w->ops = *ops;
	w->ud = ud;
	w->up = -1;
	w->backoff_ms = BACKOFF_MIN_MS;
	uv_timer_init(e->loop, &w->timer);
	w->timer.data = w;
	e->handles++;
	w->next = e->watches;
	if (e->watches)
		e->watches->prev = w;
	e->watches = w;
	start_range(w);
	return w;
}

static void on_closed(uv_handle_t *h)
{
	watch_t *w = h->data;
	na_etcd_t *e = w->e;
	/* a watch the session closed is freed with the session */
	if (!w->dead) {
		free(w->key);
		free(w);
	}
	etcd_handle_closed(e);
}

void na_etcd_watch_stop(na_etcd_watch_t *w)
{
	if (!w || gone(w))
		return;
	na_etcd_t *e = w->e;
	w->stopped = 1;
	end_stream(w);
	na_etcd_cancel(e, w);
	if (w->prev)
		w->prev->next = w->next;
	else
		e->watches = w->next;
	if (w->next)
		w->next->prev = w->prev;
	uv_close((uv_handle_t *)&w->timer, on_closed);
}

void na_etcd_watch_resync(na_etcd_watch_t *w)
{
	if (!w || gone(w))
		return;
	if (w->ranging) {
		w->resync_again = 1;
		return;
	}
	start_range(w);
}

int64_t na_etcd_watch_revision(const na_etcd_watch_t *w)
{
	return w ? w->rev : 0;
}

void etcd_watches_close(na_etcd_t *e)
{
	for (watch_t *w = e->watches; w; w = w->next) {
		if (w->dead)
			continue;
		w->dead = 1;
		end_stream(w);
		uv_close((uv_handle_t *)&w->timer, on_closed);
	}
}

void etcd_watches_free(na_etcd_t *e)
{
	while (e->watches) {
		watch_t *w = e->watches;
		e->watches = w->next;
		free(w->key);
		free(w);
	}
}
