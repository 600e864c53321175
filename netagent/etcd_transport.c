/* libcurl's multi *socket* interface on the libuv loop (the pattern of
 * curl's multi-uv.c example): one uv_poll_t per socket curl asks us to
 * watch, one uv_timer_t for curl's timeout, curl_multi_socket_action when
 * either fires. No threads of ours, no blocking: names resolve on curl's
 * threaded resolver, TLS material is in memory (read at open).
 *
 * libcurl refuses re-entrant API calls from inside its callbacks
 * (CURLM_RECURSIVE_API_CALL), and our owners' callbacks start and abort
 * transfers. So curl's write callback only buffers; streamed data and
 * finished transfers are handed to their owners afterwards, in dispatch(),
 * outside libcurl. An abort during dispatch only marks the transfer; it is
 * removed from curl at the end of the dispatch. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "netagent/etcd_int.h"
#include "netagent/log.h"
#include "netagent/util.h"

typedef struct etcd_sock {
	uv_poll_t poll;
	curl_socket_t fd;
	na_etcd_t *e;
	struct etcd_sock *prev, *next;
} etcd_sock_t;

#define LINK(head, x)                                                                              \
	do {                                                                                       \
		(x)->prev = NULL;                                                                  \
		(x)->next = (head);                                                                \
		if (head)                                                                          \
			(head)->prev = (x);                                                        \
		(head) = (x);                                                                      \
	} while (0)
#define UNLINK(head, x)                                                                            \
	do {                                                                                       \
		if ((x)->prev)                                                                     \
			(x)->prev->next = (x)->next;                                               \
		else                                                                               \
			(head) = (x)->next;                                                        \
		if ((x)->next)                                                                     \
			(x)->next->prev = (x)->prev;                                               \
		(x)->prev = (x)->next = NULL;                                                      \
	} while (0)

void etcd_handle_closed(na_etcd_t *e)
{
	if (--e->handles == 0 && e->torn_down && e->release)
		e->release(e);
}

static void on_handle_closed(uv_handle_t *h)
{
	etcd_handle_closed(h->data);
}

static void on_sock_closed(uv_handle_t *h)
{
	etcd_sock_t *s = h->data;
	na_etcd_t *e = s->e;
	free(s);
	etcd_handle_closed(e);
}

static void sock_close(na_etcd_t *e, etcd_sock_t *s)
{
	UNLINK(e->socks, s);
	uv_poll_stop(&s->poll);
	uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

static void dispatch(na_etcd_t *e);

static void on_poll(uv_poll_t *p, int status, int events)
{
	etcd_sock_t *s = p->data;
	na_etcd_t *e = s->e;
	int flags = 0, running;

	if (status < 0)
		flags = CURL_CSELECT_ERR;
	else
		flags = (events & UV_READABLE ? CURL_CSELECT_IN : 0) |
			(events & UV_WRITABLE ? CURL_CSELECT_OUT : 0);
	curl_multi_socket_action(e->multi, s->fd, flags, &running);
	dispatch(e);
}

static int sock_cb(CURL *h, curl_socket_t fd, int what, void *userp, void *socketp)
{
	na_etcd_t *e = userp;
	etcd_sock_t *s = socketp;
	(void)h;

	if (what == CURL_POLL_REMOVE) {
		if (s) {
			curl_multi_assign(e->multi, fd, NULL);
			sock_close(e, s);
		}
		return 0;
	}
	if (!s) {
		if (!(s = calloc(1, sizeof(*s))))
			return -1;
		if (uv_poll_init_socket(e->loop, &s->poll, fd) < 0) {
			free(s);
			return -1;
		}
		s->fd = fd;
		s->e = e;
		s->poll.data = s;
		e->handles++;
		LINK(e->socks, s);
		curl_multi_assign(e->multi, fd, s);
	}
	int ev = (what & CURL_POLL_IN ? UV_READABLE : 0) | (what & CURL_POLL_OUT ? UV_WRITABLE : 0);
	uv_poll_start(&s->poll, ev, on_poll);
	return 0;
}

static void on_curl_timer(uv_timer_t *t)
{
	na_etcd_t *e = t->data;
	int running;
	curl_multi_socket_action(e->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	dispatch(e);
}

/* curl forbids calling socket_action from here: arm the uv timer only. */
static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	na_etcd_t *e = userp;
	(void)m;
	if (timeout_ms < 0)
		uv_timer_stop(&e->curl_timer);
	else
		uv_timer_start(&e->curl_timer, on_curl_timer, (uint64_t)timeout_ms, 0);
	return 0;
}

int etcd_transport_init(na_etcd_t *e, na_err_t *err)
{
	/* hasleader=true as gRPC metadata (the gateway forwards Grpc-Metadata-*
	 * headers): a member that lost its leader answers 14 "no leader" at
	 * once and ends its watches, as etcd's clientv3 asks for, instead of
	 * hanging for 7 s or streaming a stale view. "Expect:" stops curl
	 * from waiting for 100-continue on larger bodies. */
	const char *hdrs[] = {"Content-Type: application/json",
			      "Expect:", "Grpc-Metadata-hasleader: true"};
	for (size_t i = 0; i < NA_ARRAY_SIZE(hdrs); i++) {
		struct curl_slist *l = curl_slist_append(e->hdrs, hdrs[i]);
		if (!l)
			goto nomem;
		e->hdrs = l;
	}
	if (!(e->multi = curl_multi_init()))
		goto nomem;
	curl_multi_setopt(e->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
	curl_multi_setopt(e->multi, CURLMOPT_SOCKETDATA, e);
	curl_multi_setopt(e->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(e->multi, CURLMOPT_TIMERDATA, e);
	/* one request per connection: HTTP/1.1 without pipelining */
	curl_multi_setopt(e->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
	/* last, nothing fails after: from here on closing is asynchronous */
	uv_timer_init(e->loop, &e->curl_timer);
	uv_timer_init(e->loop, &e->retry_timer);
	e->curl_timer.data = e->retry_timer.data = e;
	e->handles += 2;
	return 0;
nomem:
	curl_slist_free_all(e->hdrs);
	e->hdrs = NULL;
	return na_err_set(err, 500, "system_error", NULL, "etcd: cannot set up libcurl");
}

/* ---- transfers ---- */

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
	etcd_xfer_t *x = ud;
	size_t n = size * nmemb;

	if (x->aborted)
		return 0; /* ends the transfer (CURLE_WRITE_ERROR) */
	if (!x->http_code)
		curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->http_code);
	if (etcd_buf_append(&x->buf, ptr, n) < 0) {
		x->too_big = 1;
		return 0;
	}
	if (x->data)
		x->data_pending = 1;
	return n;
}

/* The body through a read callback, not POSTFIELDS, to learn whether curl
 * ever handed it to a socket: on a reused connection that the peer closed
 * without answering (a member killed after applying), curl resends by
 * itself on a fresh connection; when that connect fails the transfer ends
 * with "couldn't connect" although the first copy may have been applied. */
static size_t read_cb(char *buf, size_t size, size_t nitems, void *ud)
{
	etcd_xfer_t *x = ud;
	size_t n = x->body_len - x->body_off;
	if (n > size * nitems)
		n = size * nitems;
	memcpy(buf, x->body + x->body_off, n);
	x->body_off += n;
	if (n)
		x->body_read = 1;
	return n;
}

/* curl rewinds the body for that resend */
static int seek_cb(void *ud, curl_off_t off, int origin)
{
	etcd_xfer_t *x = ud;
	if (origin != SEEK_SET || off < 0 || (size_t)off > x->body_len)
		return CURL_SEEKFUNC_CANTSEEK;
	x->body_off = (size_t)off;
	return CURL_SEEKFUNC_OK;
}

static void xfer_free(na_etcd_t *e, etcd_xfer_t *x)
{
	if (x->h) {
		curl_multi_remove_handle(e->multi, x->h);
		curl_easy_cleanup(x->h);
	}
	UNLINK(e->xfers, x);
	free(x->body);
	etcd_buf_free(&x->buf);
	free(x);
}

static void blob(CURL *h, CURLoption opt, char *data, size_t len)
{
	/* the session owns the PEM bytes and outlives every handle */
	struct curl_blob b = {.data = data, .len = len, .flags = CURL_BLOB_NOCOPY};
	if (data)
		curl_easy_setopt(h, opt, &b);
}

int etcd_xfer_start(na_etcd_t *e, size_t ep, const char *path, char *body, long timeout_ms,
		    etcd_xfer_done_fn done, etcd_xfer_data_fn data, void *ud, etcd_xfer_t **out,
		    na_err_t *err)
{
	char url[512];
	etcd_xfer_t *x = NULL;

	if (e->closing) {
		free(body);
		return na_err_set(err, 503, NA_ETCD_ECANCELLED, NULL, "etcd session closed");
	}
	if (!(x = calloc(1, sizeof(*x))) || !(x->h = curl_easy_init())) {
		free(x);
		free(body);
		return na_err_set(err, 500, "system_error", NULL,
				  "etcd: cannot allocate a transfer");
	}
	x->e = e;
	x->ep = ep;
	x->body = body;
	x->done = done;
	x->data = data;
	x->ud = ud;
	LINK(e->xfers, x);
	snprintf(url, sizeof(url), "%s%s", e->eps[ep].url, path);
	CURL *h = x->h;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PRIVATE, x);
	x->body_len = strlen(body);
	curl_easy_setopt(h, CURLOPT_POST, 1L);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body_len);
	curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
	curl_easy_setopt(h, CURLOPT_READDATA, x);
	curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, seek_cb);
	curl_easy_setopt(h, CURLOPT_SEEKDATA, x);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, e->hdrs);
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	long cto = e->connect_ms;
	if (timeout_ms > 0 && cto > timeout_ms)
		cto = timeout_ms;
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, cto);
	if (timeout_ms > 0)
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	if (!data)
		curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)ETCD_MAX_BODY);
	/* a watch sits idle for minutes: keepalive notices a vanished peer */
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 5L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 2L);
	blob(h, CURLOPT_CAINFO_BLOB, e->ca, e->ca_len);
	blob(h, CURLOPT_SSLCERT_BLOB, e->cert, e->cert_len);
	blob(h, CURLOPT_SSLKEY_BLOB, e->key, e->key_len);
	CURLMcode mc = curl_multi_add_handle(e->multi, h);
	if (mc != CURLM_OK) {
		xfer_free(e, x);
		return na_err_set(err, 500, "system_error", NULL, "curl_multi_add_handle: %s",
				  curl_multi_strerror(mc));
	}
	if (out)
		*out = x;
	return 0;
}

void etcd_xfer_abort(etcd_xfer_t *x)
{
	na_etcd_t *e = x->e;
	x->aborted = 1;
	x->done = NULL;
	x->data = NULL;
	if (!e->dispatching)
		xfer_free(e, x);
}

/* Whether a failed transfer can have delivered its request: nothing left
 * when the connection (or TLS handshake) never came up. */
static int maybe_sent(CURL *h, CURLcode rc)
{
	long sent = 0;
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CACERT_BADFILE:
		return 0;
	default:
		if (curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &sent) != CURLE_OK)
			return 1;
		return sent > 0;
	}
}

static void finish(na_etcd_t *e, etcd_xfer_t *x, CURLcode rc)
{
	x->rc = rc;
	if (!x->http_code)
		curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->http_code);
	x->maybe_sent = rc == CURLE_OK || x->body_read || maybe_sent(x->h, rc);
	long nconn = 0;
	if (curl_easy_getinfo(x->h, CURLINFO_NUM_CONNECTS, &nconn) == CURLE_OK)
		x->new_conn = nconn > 0;
	curl_multi_remove_handle(e->multi, x->h);
	curl_easy_cleanup(x->h);
	x->h = NULL;
	if (!x->aborted && x->done)
		x->done(x->ud, x);
	xfer_free(e, x);
}

/* With TLS 1.3 a member checks our certificate after the handshake has
 * completed on our side: its refusal (an alert, then close) races with our
 * request and often surfaces as a bare send/receive error that names no
 * cause. Say what it probably is (on a fresh connection only: a reused
 * one that breaks is a member going away), or an operator chases the
 * network. */
static const char *tls_refusal_hint(const etcd_xfer_t *x)
{
	if (strncmp(x->e->eps[x->ep].url, "https:", 6) || x->http_code || !x->new_conn ||
	    (x->rc != CURLE_SEND_ERROR && x->rc != CURLE_RECV_ERROR))
		return "";
	return " (closed before any answer: the member may have refused our client certificate)";
}

void etcd_xfer_error(const etcd_xfer_t *x, na_err_t *err)
{
	const char *ep = x->e->eps[x->ep].url;
	if (x->too_big)
		na_err_set(err, 500, NA_ETCD_EERROR, NULL,
			   "etcd at %s: answer larger than %u bytes", ep, ETCD_MAX_BODY);
	else
		na_err_set(err, 503, NA_ETCD_EUNAVAILABLE, NULL, "etcd at %s: %s%s", ep,
			   x->errbuf[0] ? x->errbuf : curl_easy_strerror(x->rc),
			   tls_refusal_hint(x));
}

/* After every curl_multi_socket_action: streamed bytes first (in order with
 * the end of their transfer), then finished transfers, then the aborted
 * ones' removal. Owners' callbacks may start, abort or close anything. */
static void dispatch(na_etcd_t *e)
{
	e->dispatching++;
	for (etcd_xfer_t *x = e->xfers; x && !e->closing; x = x->next) {
		if (x->data_pending && !x->aborted && x->data) {
			x->data_pending = 0;
			x->data(x->ud, x);
		}
	}
	CURLMsg *msg;
	int left;
	while (!e->closing && (msg = curl_multi_info_read(e->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		etcd_xfer_t *x = NULL;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		if (x)
			finish(e, x, msg->data.result);
	}
	e->dispatching--;
	if (e->dispatching)
		return;
	for (etcd_xfer_t *x = e->xfers, *next; x; x = next) {
		next = x->next;
		if (x->aborted)
			xfer_free(e, x);
	}
	if (e->closing && !e->torn_down)
		etcd_transport_teardown(e);
}

void etcd_transport_teardown(na_etcd_t *e)
{
	if (e->dispatching || e->torn_down)
		return; /* dispatch() finishes it */
	e->torn_down = 1;
	while (e->xfers)
		xfer_free(e, e->xfers);
	if (e->multi)
		curl_multi_cleanup(e->multi);
	e->multi = NULL;
	/* cleanup closes cached connections; sockets it did not report gone */
	while (e->socks)
		sock_close(e, e->socks);
	curl_slist_free_all(e->hdrs);
	e->hdrs = NULL;
	uv_close((uv_handle_t *)&e->curl_timer, on_handle_closed);
	uv_close((uv_handle_t *)&e->retry_timer, on_handle_closed);
}

/* ---- health ---- */

void etcd_ep_ok(na_etcd_t *e, size_t ep)
{
	e->eps[ep].state = 1;
	e->eps[ep].last_ok_ms = na_now_ms();
}

void etcd_ep_fail(na_etcd_t *e, size_t ep, const char *msg)
{
	etcd_ep_t *p = &e->eps[ep];
	if (p->state != 0 || e->pref == ep)
		na_info("etcd endpoint failed", "endpoint=%s error=\"%s\"", p->url, msg);
	p->state = 0;
	snprintf(p->last_error, sizeof(p->last_error), "%s", msg);
	/* only the first to see ep fail moves on; others keep its choice */
	if (e->pref == ep && e->neps > 1) {
		e->pref = (ep + 1) % e->neps;
		na_info("etcd endpoint preferred", "endpoint=%s", e->eps[e->pref].url);
	}
}

void etcd_user_note(na_etcd_t *e, const char *user, int reached, const na_err_t *err)
{
	etcd_user_t *u = NULL;
	if (!user)
		user = "core";
	for (size_t i = 0; i < e->nusers && !u; i++)
		if (e->users[i].name == user || !strcmp(e->users[i].name, user))
			u = &e->users[i];
	if (!u && e->nusers < ETCD_MAX_USERS) {
		u = &e->users[e->nusers++];
		u->name = user;
	}
	e->last_ok = reached;
	if (!u)
		return; /* more users than slots: counted globally only */
	u->calls++;
	u->state = reached;
	if (reached)
		u->last_ok_ms = na_now_ms();
	if (err) {
		u->failures++;
		snprintf(u->last_error, sizeof(u->last_error), "%s", err->msg);
	}
}
