/* etcd watch over the gateway: POST /v3/watch with one create_request; the
 * gateway keeps the response open and writes one JSON object per line,
 * {"result":{WatchResponse}}. Runs the transfer on a private curl multi
 * handle so the stop flag is polled every 100 ms even when etcd is silent
 * (libcurl's progress callback only fires about once a second when idle). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "netagent/etcd_legacy_priv.h"
#include "netagent/util.h"

#define POLL_MS 100

enum { W_RUNNING = -2, W_ERROR = -1 };

typedef struct wctx {
	na_etcdl_watch_cb cb;
	void *ud;
	CURL *h;
	const char *ep;
	na_etcdl_buf_t line; /* bytes after the last newline */
	long http_code;
	bool got_data;
	int state; /* W_RUNNING, W_ERROR or NA_ETCDL_WATCH_* */
	na_err_t *err;
} wctx_t;

static void deliver(wctx_t *w, json_t *ev)
{
	na_etcdl_kv_t kv;
	json_t *jkv = json_object_get(ev, "kv");
	const char *type = json_string_value(json_object_get(ev, "type"));

	if (na_etcdl_parse_kv(jkv, &kv, w->err) < 0) {
		w->state = W_ERROR;
		return;
	}
	/* PUT is enum value 0, which the gateway omits: absent type is a PUT */
	na_etcdl_event_t e = {
	    .type = type && !strcmp(type, "DELETE") ? NA_ETCDL_DELETE : NA_ETCDL_PUT,
	    .key = kv.key,
	    .key_len = kv.key_len,
	    .value = kv.value,
	    .value_len = kv.value_len,
	    .mod_revision = kv.mod_revision,
	    .create_revision = kv.create_revision,
	    .version = kv.version,
	    .lease = kv.lease,
	};
	if (w->cb(&e, w->ud))
		w->state = NA_ETCDL_WATCH_STOPPED;
	na_etcdl_kv_clear(&kv);
}

static void handle_message(wctx_t *w, const char *s, size_t len)
{
	cleanup_json json_t *j = json_loadb(s, len, 0, NULL);
	if (!json_is_object(j)) {
		w->state = W_ERROR;
		na_err_set(w->err, 500, NA_ETCDL_EERROR, NULL,
			   "etcd at %s: unparsable watch message", w->ep);
		return;
	}
	if (json_object_get(j, "error")) {
		w->state = W_ERROR;
		na_etcdl_map_error(j, w->http_code, w->ep, w->err);
		return;
	}
	json_t *r = json_object_get(j, "result");
	if (!json_is_object(r))
		r = j; /* tolerate an unwrapped WatchResponse */
	/* events come before a cancel in the same message: deliver them first */
	json_t *evs = json_object_get(r, "events");
	for (size_t i = 0; i < json_array_size(evs) && w->state == W_RUNNING; i++)
		deliver(w, json_array_get(evs, i));
	if (w->state != W_RUNNING)
		return;
	/* start_revision below the compacted revision: etcd cancels the watch
	 * with compact_revision set; any cancel means our view has a hole */
	int64_t compact = na_etcdl_jint(r, "compact_revision");
	if (compact > 0 || json_is_true(json_object_get(r, "canceled"))) {
		const char *why = json_string_value(json_object_get(r, "cancel_reason"));
		na_err_set(w->err, 500, NA_ETCDL_EERROR, NULL,
			   "etcd watch canceled (compact_revision %lld%s%s)", (long long)compact,
			   why ? ": " : "", why ? why : "");
		w->state = NA_ETCDL_WATCH_COMPACTED;
	}
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
	wctx_t *w = ud;
	size_t n = size * nmemb;

	if (!w->got_data) {
		w->got_data = true;
		curl_easy_getinfo(w->h, CURLINFO_RESPONSE_CODE, &w->http_code);
	}
	if (w->state != W_RUNNING)
		return n; /* finished: swallow what is in flight */
	if (na_etcdl_buf_append(&w->line, ptr, n) < 0) {
		w->state = W_ERROR;
		na_err_set(w->err, 500, NA_ETCDL_EERROR, NULL, "etcd at %s: watch message too large",
			   w->ep);
		return n;
	}
	/* an error answer (HTTP != 200) is one object, judged at the end */
	if (w->http_code != 200)
		return n;
	size_t start = 0;
	char *nl;
	while (w->state == W_RUNNING &&
	       (nl = memchr(w->line.p + start, '\n', w->line.len - start))) {
		size_t end = (size_t)(nl - w->line.p);
		if (end > start)
			handle_message(w, w->line.p + start, end - start);
		start = end + 1;
	}
	memmove(w->line.p, w->line.p + start, w->line.len - start);
	w->line.len -= start;
	return n;
}

/* Runs one stream against one endpoint. Returns the final state; *not_sent
 * tells whether a failure happened before etcd could see the request. */
static int watch_one(na_etcdl_t *e, size_t idx, const char *payload, struct curl_slist *hdrs,
		     wctx_t *w, const atomic_int *stop, bool *not_sent)
{
	cleanup_free char *url = NULL;
	CURLcode rc = CURLE_OK;
	int running = 1;

	*not_sent = false;
	w->ep = e->eps[idx];
	if (asprintf(&url, "%s/v3/watch", w->ep) < 0)
		return na_err_errno(w->err, ENOMEM, "etcd watch url");
	CURL *h = curl_easy_init();
	CURLM *m = curl_multi_init();
	if (!h || !m) {
		curl_easy_cleanup(h);
		curl_multi_cleanup(m);
		return na_err_set(w->err, 500, "system_error", NULL, "curl init failed");
	}
	w->h = h;
	na_etcdl_setup_handle(e, h, url, payload, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, w);
	curl_multi_add_handle(m, h);

	while (w->state == W_RUNNING) {
		if (stop && atomic_load(stop)) {
			w->state = NA_ETCDL_WATCH_STOPPED;
			break;
		}
		CURLMcode mc = curl_multi_perform(m, &running);
		if (mc != CURLM_OK) {
			w->state = W_ERROR;
			na_err_set(w->err, 500, "system_error", NULL, "curl_multi_perform: %s",
				   curl_multi_strerror(mc));
			break;
		}
		if (!running) {
			CURLMsg *msg;
			int left;
			while ((msg = curl_multi_info_read(m, &left)))
				if (msg->msg == CURLMSG_DONE)
					rc = msg->data.result;
			break;
		}
		curl_multi_poll(m, NULL, 0, POLL_MS, NULL);
	}

	if (w->state == W_RUNNING) {
		/* the transfer ended without a verdict */
		long code = 0;
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
		if (rc != CURLE_OK) {
			*not_sent = !w->got_data && na_etcdl_not_sent(h, rc);
			na_etcdl_curl_error(rc, w->ep, w->err);
		} else if (code != 200) {
			cleanup_json json_t *j =
			    json_loadb(w->line.p ? w->line.p : "", w->line.len, 0, NULL);
			na_etcdl_map_error(j, code, w->ep, w->err);
		} else {
			na_err_set(w->err, 503, NA_ETCDL_EUNAVAILABLE, NULL,
				   "etcd at %s closed the watch stream", w->ep);
		}
		w->state = W_ERROR;
	}
	curl_multi_remove_handle(m, h);
	curl_easy_cleanup(h);
	curl_multi_cleanup(m);
	return w->state;
}

static int watch(na_etcdl_t *e, const char *key, bool prefix, int64_t start_revision,
		 na_etcdl_watch_cb cb, void *ud, const atomic_int *stop, na_err_t *err)
{
	size_t len = strlen(key), end_len = 0;
	na_err_t local = NA_ERR_INIT;
	cleanup_free char *kb = NULL, *endb = NULL, *end = NULL, *payload = NULL;
	cleanup_json json_t *req = NULL;
	char rev[24];

	if (prefix) {
		if (!(end = na_etcdl_prefix_end(key, len, &end_len)))
			return na_err_errno(err, ENOMEM, "etcd watch");
		if (!len) {
			key = "";
			len = 1; /* whole keyspace: key "\0" */
		}
		endb = na_etcdl_b64enc(end, end_len);
	}
	kb = na_etcdl_b64enc(key, len);
	snprintf(rev, sizeof(rev), "%lld", (long long)start_revision);
	req = json_pack("{s:{s:s,s:s*,s:s}}", "create_request", "key", kb, "range_end", endb,
			"start_revision", rev);
	if (!kb || (prefix && !endb) || !req || !(payload = json_dumps(req, JSON_COMPACT)))
		return na_err_errno(err, ENOMEM, "etcd watch");

	/* "Expect:": curl would otherwise wait for 100-continue on long keys */
	struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	struct curl_slist *h2 = hdrs ? curl_slist_append(hdrs, "Expect:") : NULL;
	if (!h2) {
		curl_slist_free_all(hdrs);
		return na_err_errno(err, ENOMEM, "etcd watch");
	}
	hdrs = h2;
	int ret = W_ERROR;
	size_t first = atomic_load(&e->cur);
	for (size_t i = 0; i < e->n_eps; i++) {
		size_t idx = (first + i) % e->n_eps;
		wctx_t w = {.cb = cb, .ud = ud, .state = W_RUNNING, .err = &local};
		bool not_sent;
		na_err_clear(&local);
		ret = watch_one(e, idx, payload, hdrs, &w, stop, &not_sent);
		free(w.line.p);
		if (w.got_data && w.http_code == 200)
			na_etcdl_note_ok(e);
		if (ret != W_ERROR)
			break;
		if (local.status == 503)
			na_etcdl_note_fail(e, idx, local.msg);
		/* once etcd saw the watch, the caller resumes from its last revision */
		if (!not_sent)
			break;
	}
	curl_slist_free_all(hdrs);
	if (ret == NA_ETCDL_WATCH_COMPACTED && err)
		*err = local; /* not a failure, but the caller may log why */
	if (ret == W_ERROR) {
		if (err)
			*err = local;
		na_err_prefix(err, "watch %s%s", key, prefix ? "*" : "");
		return -1;
	}
	return ret;
}

int na_etcdl_watch(na_etcdl_t *e, const char *prefix, int64_t start_revision, na_etcdl_watch_cb cb,
		  void *ud, const atomic_int *stop, na_err_t *err)
{
	return watch(e, prefix, true, start_revision, cb, ud, stop, err);
}

int na_etcdl_watch_key(na_etcdl_t *e, const char *key, int64_t start_revision, na_etcdl_watch_cb cb,
		      void *ud, const atomic_int *stop, na_err_t *err)
{
	return watch(e, key, false, start_revision, cb, ud, stop, err);
}
