/* One HTTP connection: TLS over memory BIOs, request timeouts, dispatch,
 * replies and SSE streams. Parsing lives in http_msg.c, listeners and
 * accept in http_server.c. */
#include "netagent/http_int.h"
#include "netagent/log.h"
#include "netagent/util.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

static void conn_close(struct conn *c);
static void conn_process(struct conn *c);

/* ---- writes ------------------------------------------------------------ */

struct wreq {
	uv_write_t w;
	struct conn *c;
	char data[];
};

static void linger_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf);
static void arm_timer(struct conn *c, int ms);
static void file_pump(struct conn *c);
static void reply_done(struct conn *c, int keep);

/* Lingering close, as HTTP/1.1 servers must (RFC 9112 §9.6): a client that is still sending
 * a body we refused (413 without Expect) would get an RST from close() with unread data in
 * our receive buffer, and the RST can destroy our reply before the client reads it. So after
 * our FIN we read and discard until the client's FIN, a byte cap or a short timer. */
static void after_shutdown(uv_shutdown_t *r, int status)
{
	struct conn *c = r->data;
	free(r);
	if (status < 0 || c->closing) {
		conn_close(c);
		return;
	}
	c->lingering = 1;
	c->linger_bytes = 0;
	arm_timer(c, LINGER_MS);
	if (uv_read_start(&c->u.s, on_alloc, linger_read) < 0)
		conn_close(c);
}

static void linger_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	(void)buf;
	struct conn *c = s->data;
	if (nread < 0 || (c->linger_bytes += (size_t)nread) > LINGER_MAX_BYTES)
		conn_close(c);
}

static void after_write(uv_write_t *w, int status)
{
	struct wreq *r = (struct wreq *)w;
	struct conn *c = r->c;
	free(r);
	if (status < 0 || c->closing)
		return;
	if (c->state == C_FILE) {
		file_pump(c);
		return;
	}
	if (c->state == C_READING && c->pending_len > 0 &&
	    uv_stream_get_write_queue_size(&c->u.s) <= WRITE_HIGHWATER)
		conn_process(c); /* resume pipelined requests held back by unread replies */
	if (c->shutdown_after_write && uv_stream_get_write_queue_size(&c->u.s) == 0) {
		c->shutdown_after_write = 0;
		uv_shutdown_t *s = malloc(sizeof(*s));
		if (!s || (s->data = c, uv_shutdown(s, &c->u.s, after_shutdown) < 0)) {
			free(s);
			conn_close(c);
		}
	}
}

static int raw_write(struct conn *c, const char *data, size_t len)
{
	if (c->closing || len == 0)
		return c->closing ? -1 : 0;
	struct wreq *r = malloc(sizeof(*r) + len);
	if (!r)
		return -1;
	memcpy(r->data, data, len);
	r->c = c;
	uv_buf_t b = uv_buf_init(r->data, (unsigned)len);
	if (uv_write(&r->w, &c->u.s, &b, 1, after_write) < 0) {
		free(r);
		conn_close(c);
		return -1;
	}
	return 0;
}

/* Moves whatever OpenSSL produced (handshake records, data, alerts) to the socket. */
static int flush_tls(struct conn *c)
{
	char buf[16384];
	int n;
	while ((n = BIO_read(c->wbio, buf, sizeof(buf))) > 0)
		if (raw_write(c, buf, (size_t)n) < 0)
			return -1;
	return 0;
}

static int conn_write(struct conn *c, const char *data, size_t len)
{
	if (!c->ssl)
		return raw_write(c, data, len);
	while (len > 0) {
		int n = SSL_write(c->ssl, data, len > INT_MAX ? INT_MAX : (int)len);
		if (n <= 0)
			return -1;
		data += n;
		len -= (size_t)n;
	}
	return flush_tls(c);
}

/* ---- lifecycle --------------------------------------------------------- */

/* Here, not in http_server.c: the last connection freed is what usually completes a drain,
 * and the server layer calls down into this one, never the other way. */
void na_http_check_drained(na_http_t *h)
{
	if (h->draining && h->nconns == 0 && h->ls_open == 0 && h->drain_done) {
		void (*done)(void *) = h->drain_done;
		h->drain_done = NULL;
		done(h->drain_ud);
	}
}

static void conn_free_if_done(struct conn *c)
{
	if (!c->closing || c->handles_open > 0 || c->state == C_HANDLING || c->file)
		return;
	na_http_t *h = c->srv;
	if (c->prev)
		c->prev->next = c->next;
	else
		h->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	h->nconns--;
	if (c->ssl)
		SSL_free(c->ssl); /* frees both BIOs */
	na_msg_reset(&c->msg);
	free(c->pending);
	free(c);
	na_http_check_drained(h);
}

static void on_handle_closed(uv_handle_t *hd)
{
	struct conn *c = hd->data;
	c->handles_open--;
	conn_free_if_done(c);
}

static void conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = 1;
	if (c->state == C_STREAMING && c->on_close) {
		na_stream_close_fn fn = c->on_close;
		c->on_close = NULL;
		fn(&c->req, c->on_close_ud);
	}
	if (c->file && !c->file->inflight) {
		close(c->file->fd);
		free(c->file);
		c->file = NULL;
	}
	uv_close(&c->u.h, on_handle_closed);
	uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

/* Graceful end: TLS close_notify, then FIN once queued writes are out. */
static void conn_end(struct conn *c)
{
	if (c->closing || c->ending)
		return;
	c->ending = 1; /* no more requests on this connection: what follows is discarded */
	if (c->ssl && c->handshaken) {
		SSL_shutdown(c->ssl);
		flush_tls(c);
	}
	uv_read_stop(&c->u.s);
	c->reading = 0;
	if (uv_stream_get_write_queue_size(&c->u.s) == 0) {
		uv_shutdown_t *s = malloc(sizeof(*s));
		if (!s || (s->data = c, uv_shutdown(s, &c->u.s, after_shutdown) < 0)) {
			free(s);
			conn_close(c);
		}
	} else {
		c->shutdown_after_write = 1;
	}
}

static void on_timeout(uv_timer_t *t)
{
	struct conn *c = t->data;
	if (c->lingering) {
		conn_close(c);
		return;
	}
	if (c->state == C_READING || c->state == C_FILE) {
		na_debug("connection timed out", "peer=%s begun=%d", c->peer, c->msg.begun);
		conn_close(c);
	}
}

static void arm_timer(struct conn *c, int ms)
{
	if (!c->closing)
		uv_timer_start(&c->timer, on_timeout, (uint64_t)ms, 0);
}

/* ---- reads ------------------------------------------------------------- */

static void on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf)
{
	(void)hd;
	(void)suggested;
	static char slab[65536]; /* loop thread only; consumed before the next read */
	*buf = uv_buf_init(slab, sizeof(slab));
}

static int pending_append(struct conn *c, const char *d, size_t n)
{
	char *p = realloc(c->pending, c->pending_len + n);
	if (!p)
		return -1;
	memcpy(p + c->pending_len, d, n);
	c->pending = p;
	c->pending_len += n;
	return 0;
}

static void set_peer_from_cert(struct conn *c)
{
	X509 *cert = SSL_get1_peer_certificate(c->ssl);
	if (!cert)
		return;
	char cn[96] = "";
	X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn));
	snprintf(c->peer, sizeof(c->peer), "%s", cn[0] ? cn : "tls");
	X509_free(cert);
}

static int tls_input(struct conn *c, const char *d, size_t n)
{
	if (BIO_write(c->rbio, d, (int)n) != (int)n)
		return -1;
	if (!c->handshaken) {
		int r = SSL_do_handshake(c->ssl);
		flush_tls(c);
		if (r != 1) {
			int e = SSL_get_error(c->ssl, r);
			if (e == SSL_ERROR_WANT_READ)
				return 0;
			char ebuf[256];
			ERR_error_string_n(ERR_get_error(), ebuf, sizeof(ebuf));
			na_info("tls handshake rejected", "peer=%s error=\"%s\"", c->peer, ebuf);
			ERR_clear_error();
			return -1;
		}
		c->handshaken = 1;
		set_peer_from_cert(c);
	}
	char buf[16384];
	for (;;) {
		int r = SSL_read(c->ssl, buf, sizeof(buf));
		if (r > 0) {
			if (pending_append(c, buf, (size_t)r) < 0)
				return -1;
			continue;
		}
		int e = SSL_get_error(c->ssl, r);
		flush_tls(c);
		if (e == SSL_ERROR_WANT_READ)
			return 0;
		ERR_clear_error();
		return -1; /* close_notify or a protocol error */
	}
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = s->data;
	if (nread < 0) {
		conn_close(c);
		return;
	}
	if (nread == 0)
		return;
	int r = c->ssl ? tls_input(c, buf->base, (size_t)nread)
		       : pending_append(c, buf->base, (size_t)nread);
	if (r < 0) {
		conn_close(c);
		return;
	}
	if (c->pending_len > READ_HIGHWATER && c->reading) {
		uv_read_stop(&c->u.s);
		c->reading = 0;
	}
	conn_process(c);
}

static void start_reading(struct conn *c)
{
	if (!c->reading && !c->closing && !c->ending && c->pending_len < READ_HIGHWATER) {
		if (uv_read_start(&c->u.s, on_alloc, on_read) == 0)
			c->reading = 1;
	}
}

static const struct {
	int status;
	const char *phrase;
} reasons[] = {
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {409, "Conflict"},
    {413, "Content Too Large"},
    {422, "Unprocessable Content"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
};

static const char *reason(int status)
{
	for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (reasons[i].status == status)
			return reasons[i].phrase;
	return "Status";
}

static void send_early_error(struct conn *c, int status, const char *code, const char *msg)
{
	na_err_t err = NA_ERR_INIT;
	na_err_set(&err, status, code, NULL, "%s", msg);
	memset(&c->req, 0, sizeof(c->req));
	c->req.method = "?";
	c->req.path = "?";
	c->req.query = "";
	c->req.body = "";
	c->req.peer = c->peer;
	c->req.route = "unmatched";
	c->req.priv = c;
	c->req.t0ns = na_now_ns();
	c->msg.keepalive = 0;
	c->state = C_HANDLING;
	na_reply_err(&c->req, &err);
}

static void dispatch(struct conn *c)
{
	uv_timer_stop(&c->timer);
	c->state = C_HANDLING;
	if (na_msg_to_req(&c->msg, &c->req) < 0) {
		c->state = C_READING;
		send_early_error(c, 400, "bad_request", "malformed request target or body");
		return;
	}
	c->req.peer = c->peer;
	c->req.route = "unmatched";
	c->req.priv = c;
	c->req.t0ns = na_now_ns();
	if (c->srv->draining)
		c->msg.keepalive = 0;
	na_api_dispatch(c->srv->api, &c->req);
}

static void conn_process(struct conn *c)
{
	if (c->in_process)
		return;
	c->in_process = 1;
	if (c->state == C_STREAMING)
		c->pending_len = 0; /* an event stream is one-way: ignore what the client says */
	while (!c->closing && !c->ending && c->state == C_READING && c->pending_len > 0) {
		/* A client that pipelines requests without reading the replies waits for them. */
		if (uv_stream_get_write_queue_size(&c->u.s) > WRITE_HIGHWATER)
			break;
		int was_begun = c->msg.begun;
		size_t n = na_msg_feed(&c->msg, c->pending, c->pending_len);
		memmove(c->pending, c->pending + n, c->pending_len - n);
		c->pending_len -= n;
		if (!was_begun && c->msg.begun)
			arm_timer(c, c->srv->opts.header_timeout_ms);
		if (c->msg.err_status) {
			send_early_error(c, c->msg.err_status, c->msg.err_code, c->msg.err_msg);
			break;
		}
		if (!c->msg.complete)
			break;
		dispatch(c);
	}
	c->in_process = 0;
	if (c->state == C_READING || c->state == C_STREAMING)
		start_reading(c);
}

/* ---- reply ops --------------------------------------------------------- */

static void op_send(na_req_t *req, int status, const char *ctype, const char *extra,
		    const char *body, size_t len)
{
	struct conn *c = req->priv;
	int keep = c->msg.keepalive && !c->srv->draining;
	if (!c->closing) {
		char hdr[768];
		int n = snprintf(hdr, sizeof(hdr),
				 "HTTP/1.1 %d %s\r\n%s%s%sContent-Length: %zu\r\n%s"
				 "Connection: %s\r\n\r\n",
				 status, reason(status), ctype ? "Content-Type: " : "",
				 ctype ? ctype : "", ctype ? "\r\n" : "", len, extra ? extra : "",
				 keep ? "keep-alive" : "close");
		if (n > 0 && (size_t)n < sizeof(hdr))
			conn_write(c, hdr, (size_t)n);
		conn_write(c, body, len);
	}
	reply_done(c, keep);
}

/* The end of a reply: the next request on a keep-alive connection. */
static void reply_done(struct conn *c, int keep)
{
	c->state = C_READING;
	na_msg_reset(&c->msg);
	if (c->closing) {
		conn_free_if_done(c);
		return;
	}
	if (!keep) {
		conn_end(c);
		return;
	}
	arm_timer(c, c->srv->opts.idle_timeout_ms);
	conn_process(c);
}

static void on_file_read(uv_fs_t *fs)
{
	struct fsend *f = (struct fsend *)fs; /* fs is its first member */
	struct conn *c = uv_req_get_data((uv_req_t *)fs);
	ssize_t n = fs->result;
	uv_fs_req_cleanup(fs);
	f->inflight = 0;
	if (c->closing) {
		close(f->fd);
		free(f);
		c->file = NULL;
		conn_free_if_done(c);
		return;
	}
	if (n <= 0) {
		/* The file shrank or failed under us: the Content-Length sent
		 * cannot be met, so the client must see a cut connection. */
		na_warn("file reply cut short", "peer=%s left=%llu", c->peer,
			(unsigned long long)f->left);
		conn_close(c);
		return;
	}
	if ((uint64_t)n > f->left)
		n = (ssize_t)f->left;
	f->off += (uint64_t)n;
	f->left -= (uint64_t)n;
	conn_write(c, f->buf, (size_t)n);
	file_pump(c);
}

static void file_pump(struct conn *c)
{
	struct fsend *f = c->file;
	if (!f || f->inflight || c->closing)
		return;
	if (f->left == 0) {
		close(f->fd);
		c->file = NULL;
		int keep = f->keep;
		free(f);
		reply_done(c, keep);
		return;
	}
	if (uv_stream_get_write_queue_size(&c->u.s) > WRITE_HIGHWATER)
		return;				    /* after_write calls again */
	arm_timer(c, c->srv->opts.idle_timeout_ms); /* a reader that stalls is dropped */
	size_t want = f->left < FILE_CHUNK ? (size_t)f->left : FILE_CHUNK;
	uv_buf_t b = uv_buf_init(f->buf, (unsigned)want);
	uv_req_set_data((uv_req_t *)&f->fs, c);
	if (uv_fs_read(c->srv->loop, &f->fs, f->fd, &b, 1, (int64_t)f->off, on_file_read) < 0) {
		conn_close(c);
		return;
	}
	f->inflight = 1;
}

static void op_file(na_req_t *req, int status, const char *ctype, int fd, uint64_t size)
{
	struct conn *c = req->priv;
	struct fsend *f = c->closing ? NULL : calloc(1, sizeof(*f));
	if (!f) {
		close(fd);
		if (!c->closing)
			conn_close(c);
		c->state = C_READING;
		conn_free_if_done(c);
		return;
	}
	f->fd = fd;
	f->left = size;
	f->keep = c->msg.keepalive && !c->srv->draining;
	char hdr[512];
	int n = snprintf(hdr, sizeof(hdr),
			 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %llu\r\n"
			 "Connection: %s\r\n\r\n",
			 status, reason(status), ctype, (unsigned long long)size,
			 f->keep ? "keep-alive" : "close");
	c->state = C_FILE;
	c->file = f;
	if (n > 0 && (size_t)n < sizeof(hdr))
		conn_write(c, hdr, (size_t)n);
	file_pump(c);
}

static void op_stream_begin(na_req_t *req, na_stream_close_fn on_close, void *ud)
{
	struct conn *c = req->priv;
	static const char hdr[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
				  "Cache-Control: no-cache\r\nConnection: close\r\n\r\n";
	c->state = C_STREAMING;
	c->on_close = on_close;
	c->on_close_ud = ud;
	if (c->closing) {
		/* The client left while we were deciding: report it right away. */
		c->on_close = NULL;
		on_close(req, ud);
		return;
	}
	conn_write(c, hdr, sizeof(hdr) - 1);
	start_reading(c); /* only to notice the client going away */
}

static int op_stream_send(na_req_t *req, const char *data, size_t len)
{
	struct conn *c = req->priv;
	if (c->closing || c->state != C_STREAMING)
		return -1;
	if (uv_stream_get_write_queue_size(&c->u.s) > STREAM_HIGHWATER) {
		na_info("dropping slow event stream client", "peer=%s", c->peer);
		conn_close(c);
		return -1;
	}
	return conn_write(c, data, len);
}

static const char *op_header(na_req_t *req, const char *name)
{
	struct conn *c = req->priv;
	return na_msg_header(&c->msg, name);
}

const struct na_reply_ops na_http_sock_ops = {
    .send = op_send,
    .stream_begin = op_stream_begin,
    .stream_send = op_stream_send,
    .header = op_header,
    .file = op_file,
};

void na_conn_start(struct conn *c)
{
	/* Covers the TLS handshake and a client that never sends a byte. */
	arm_timer(c, c->srv->opts.header_timeout_ms);
	start_reading(c);
}

void na_conn_close(struct conn *c)
{
	conn_close(c);
}
