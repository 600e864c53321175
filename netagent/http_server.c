/* Listening side of the HTTP server: unix and TCP listeners, accept with a
 * connection cap, and drain on shutdown. */
#include "netagent/http_int.h"
#include "netagent/log.h"
#include "netagent/util.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

/* ---- accept ------------------------------------------------------------ */

static void on_reject_closed(uv_handle_t *hd)
{
	free(hd);
}

static void on_connection(uv_stream_t *ls, int status)
{
	struct listener *l = ls->data;
	na_http_t *h = l->srv;
	if (status < 0)
		return;
	struct conn *c = calloc(1, sizeof(*c));
	if (!c)
		return;
	if (l->is_unix)
		uv_pipe_init(h->loop, &c->u.pipe, 0);
	else
		uv_tcp_init(h->loop, &c->u.tcp);
	c->u.h.data = c;
	if (uv_accept(ls, &c->u.s) < 0) {
		uv_close(&c->u.h, on_reject_closed);
		return;
	}
	if (h->draining || h->nconns >= (unsigned)h->opts.max_conns) {
		/* Over the cap: close at once rather than queue, so the cap bounds memory. */
		na_warn("connection refused: limit reached", "conns=%u max=%d", h->nconns,
			h->opts.max_conns);
		uv_close(&c->u.h, on_reject_closed);
		return;
	}
	c->srv = h;
	c->handles_open = 2;
	uv_timer_init(h->loop, &c->timer);
	c->timer.data = c;
	na_msg_init(&c->msg);
	na_msg_set_budget(&c->msg, &h->body_used, BODY_BUDGET);
	snprintf(c->peer, sizeof(c->peer), "%s", l->is_unix ? "unix" : "tls");
	if (l->ctx) {
		c->ssl = SSL_new(l->ctx);
		c->rbio = BIO_new(BIO_s_mem());
		c->wbio = BIO_new(BIO_s_mem());
		if (!c->ssl || !c->rbio || !c->wbio) {
			BIO_free(c->rbio);
			BIO_free(c->wbio);
			SSL_free(c->ssl);
			c->ssl = NULL;
			uv_close(&c->u.h, on_reject_closed);
			uv_close((uv_handle_t *)&c->timer, NULL);
			return;
		}
		SSL_set_bio(c->ssl, c->rbio, c->wbio);
		SSL_set_accept_state(c->ssl);
	}
	c->next = h->conns;
	if (h->conns)
		h->conns->prev = c;
	h->conns = c;
	h->nconns++;
	if (!l->is_unix)
		uv_tcp_nodelay(&c->u.tcp, 1);
	na_conn_start(c);
}

int na_http_new(uv_loop_t *loop, na_api_t *api, const na_http_opts_t *opts, na_http_t **out,
		na_err_t *err)
{
	na_http_t *h = calloc(1, sizeof(*h));
	if (!h)
		return na_err_errno(err, ENOMEM, "http server");
	h->loop = loop;
	h->api = api;
	h->opts = *opts;
	if (h->opts.max_conns <= 0)
		h->opts.max_conns = 512;
	if (h->opts.header_timeout_ms <= 0)
		h->opts.header_timeout_ms = 10000;
	if (h->opts.idle_timeout_ms <= 0)
		h->opts.idle_timeout_ms = 60000;
	na_api_set_reply_ops(&na_http_sock_ops);
	*out = h;
	return 0;
}

static struct listener *new_listener(na_http_t *h, na_err_t *err)
{
	if (h->nls == MAX_LISTENERS) {
		na_err_set(err, 500, "internal_error", NULL, "too many listeners");
		return NULL;
	}
	struct listener *l = &h->ls[h->nls];
	memset(l, 0, sizeof(*l));
	l->srv = h;
	return l;
}

int na_http_listen_unix(na_http_t *h, const char *path, na_err_t *err)
{
	struct sockaddr_un sun;
	struct stat st;
	struct listener *l = new_listener(h, err);
	if (!l)
		return -1;
	if (strlen(path) >= sizeof(sun.sun_path))
		return na_err_set(err, 422, "invalid_field", "socket", "socket path too long");
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return na_err_set(err, 409, "conflict", "socket",
					  "%s exists and is not a socket", path);
		/* A live agent answers on it: never steal its socket. */
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
		int live = fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0;
		if (fd >= 0)
			close(fd);
		if (live)
			return na_err_set(err, 409, "conflict", "socket",
					  "%s is in use by a running agent", path);
		unlink(path);
	}
	uv_pipe_init(h->loop, &l->u.pipe, 0);
	l->u.h.data = l;
	l->is_unix = 1;
	mode_t old = umask(0077); /* the socket is born 0600: no window for others */
	int r = uv_pipe_bind(&l->u.pipe, path);
	umask(old);
	if (r == 0)
		r = uv_listen(&l->u.s, 511, on_connection);
	if (r < 0) {
		uv_close(&l->u.h, NULL);
		return na_err_set(err, 500, "system_error", "socket", "listen on %s: %s", path,
				  uv_strerror(r));
	}
	chmod(path, 0600);
	l->open = 1;
	h->nls++;
	h->ls_open++;
	return 0;
}

int na_http_listen_tcp(na_http_t *h, const char *addrport, SSL_CTX *ctx, na_err_t *err)
{
	struct sockaddr_storage ss;
	char host[64];
	const char *colon = strrchr(addrport, ':');
	struct listener *l = new_listener(h, err);
	if (!l)
		return -1;
	if (!colon || colon == addrport || (size_t)(colon - addrport) >= sizeof(host))
		return na_err_set(err, 422, "invalid_field", "listen",
				  "--listen must be ADDR:PORT, got '%s'", addrport);
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (*end || port < 1 || port > 65535)
		return na_err_set(err, 422, "invalid_field", "listen", "invalid port in '%s'",
				  addrport);
	memcpy(host, addrport, (size_t)(colon - addrport));
	host[colon - addrport] = 0;
	int r;
	if (host[0] == '[') {
		host[strlen(host) - 1] = 0;
		r = uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)&ss);
	} else {
		r = uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&ss);
	}
	if (r < 0)
		return na_err_set(err, 422, "invalid_field", "listen", "invalid address in '%s'",
				  addrport);
	uv_tcp_init(h->loop, &l->u.tcp);
	l->u.h.data = l;
	l->ctx = ctx;
	r = uv_tcp_bind(&l->u.tcp, (struct sockaddr *)&ss, 0);
	if (r == 0)
		r = uv_listen(&l->u.s, 511, on_connection);
	if (r < 0) {
		uv_close(&l->u.h, NULL);
		return na_err_set(err, 500, "system_error", "listen", "listen on %s: %s", addrport,
				  uv_strerror(r));
	}
	l->open = 1;
	h->nls++;
	h->ls_open++;
	return 0;
}

static void on_listener_closed(uv_handle_t *hd)
{
	struct listener *l = hd->data;
	na_http_t *h = l->srv;
	h->ls_open--;
	na_http_check_drained(h);
}

void na_http_drain(na_http_t *h, void (*done)(void *ud), void *ud)
{
	h->draining = 1;
	h->drain_done = done;
	h->drain_ud = ud;
	for (int i = 0; i < h->nls; i++) {
		if (h->ls[i].open) {
			h->ls[i].open = 0;
			if (h->ls[i].is_unix) {
				char path[256];
				size_t n = sizeof(path);
				if (uv_pipe_getsockname(&h->ls[i].u.pipe, path, &n) == 0)
					unlink(path);
			}
			uv_close(&h->ls[i].u.h, on_listener_closed);
		}
	}
	for (struct conn *c = h->conns, *next; c; c = next) {
		next = c->next;
		if (c->state != C_HANDLING)
			na_conn_close(c);
	}
	na_http_check_drained(h);
}

void na_http_free(na_http_t *h)
{
	free(h);
}

unsigned na_http_conns(const na_http_t *h)
{
	return h->nconns;
}
