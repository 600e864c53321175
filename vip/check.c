/* Health checks: every interval, each check of a VIP runs once; the round
 * passes when all pass; `rise` passing rounds make the VIP healthy, `fall`
 * failing ones unhealthy. The socket is created inside the target's network
 * namespace on a worker (a socket belongs to the namespace it was made in
 * for its whole life), then connect and I/O run on the loop through libuv,
 * so a check never blocks the loop and never moves the loop thread. HTTP
 * answers are parsed by http-parser. */
#include <http_parser.h>

#include "netagent/log.h"
#include "netagent/nsworker.h"
#include "netagent/util.h"
#include "vip/vip_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

struct vip_check_run {
	vip_t *v; /* NULL once the VIP stopped its checks */
	struct vip_check_run *next;
	vip_check_spec_t c;
	struct sockaddr_storage sa;
	int family, fd;
	int handles, finished;
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_connect_t conn;
	uv_write_t wr;
	http_parser parser;
	int status;
	char req[VIP_PATH_MAX + 160];
	char rbuf[2048];
};

static void run_unlink(struct vip_check_run *r)
{
	if (!r->v)
		return;
	for (struct vip_check_run **p = &r->v->runs; *p; p = &(*p)->next) {
		if (*p == r) {
			*p = r->next;
			break;
		}
	}
}

static void round_end(vip_t *v)
{
	enum vip_health before = v->health;
	if (v->round_ok) {
		v->ok_run++;
		v->fail_run = 0;
		if (v->health != VIP_H_UP && v->ok_run >= v->spec.rise) {
			v->health = VIP_H_UP;
			snprintf(v->health_reason, sizeof(v->health_reason), "%d check%s pass",
				 v->spec.nchecks, v->spec.nchecks == 1 ? "" : "s");
		}
	} else {
		v->fail_run++;
		v->ok_run = 0;
		if (v->health != VIP_H_DOWN && v->fail_run >= v->spec.fall)
			v->health = VIP_H_DOWN;
	}
	if (v->health != before) {
		na_info("vip health", "vip=%s health=%s reason=\"%s\"", v->name,
			v->health == VIP_H_UP ? "up" : "down", v->health_reason);
		vip_health_changed(v);
	}
}

static void on_closed(uv_handle_t *h)
{
	struct vip_check_run *r = h->data;
	if (--r->handles == 0)
		free(r);
}

static void finish(struct vip_check_run *r, int ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void finish(struct vip_check_run *r, int ok, const char *fmt, ...)
{
	vip_t *v = r->v;
	if (r->finished)
		return;
	r->finished = 1;
	if (v) {
		run_unlink(r);
		r->v = NULL;
		if (!ok && v->round_ok) {
			char msg[128];
			va_list ap;
			va_start(ap, fmt);
			vsnprintf(msg, sizeof(msg), fmt, ap);
			va_end(ap);
			v->round_ok = 0;
			snprintf(v->health_reason, sizeof(v->health_reason), "%s check :%d: %s",
				 r->c.type == VIP_CHECK_HTTP ? "http" : "tcp", r->c.port, msg);
		}
		if (--v->round_out == 0)
			round_end(v);
	}
	if (r->handles) {
		uv_close((uv_handle_t *)&r->timer, on_closed);
		uv_close((uv_handle_t *)&r->tcp, on_closed);
	} else {
		if (r->fd >= 0)
			close(r->fd);
		free(r);
	}
}

static int on_headers(http_parser *p)
{
	struct vip_check_run *r = p->data;
	r->status = (int)p->status_code;
	return 1; /* the body does not matter */
}

static const http_parser_settings settings = {.on_headers_complete = on_headers};

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct vip_check_run *r = h->data;
	(void)hint;
	*buf = uv_buf_init(r->rbuf, sizeof(r->rbuf));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct vip_check_run *r = s->data;
	if (n == 0)
		return;
	if (n < 0) {
		finish(r, 0, "connection closed before the status line");
		return;
	}
	size_t used = http_parser_execute(&r->parser, &settings, buf->base, (size_t)n);
	if (r->status)
		finish(r, r->status >= 200 && r->status < 300, "status %d", r->status);
	else if (HTTP_PARSER_ERRNO(&r->parser) != HPE_OK || used != (size_t)n)
		finish(r, 0, "bad HTTP response (%s)",
		       http_errno_name(HTTP_PARSER_ERRNO(&r->parser)));
}

static void on_written(uv_write_t *w, int status)
{
	struct vip_check_run *r = w->data;
	if (status < 0)
		finish(r, 0, "send: %s", uv_strerror(status));
}

static void on_connect(uv_connect_t *c, int status)
{
	struct vip_check_run *r = c->data;
	if (r->finished)
		return;
	if (status < 0) {
		finish(r, 0, "connect: %s", uv_strerror(status));
		return;
	}
	if (r->c.type == VIP_CHECK_TCP) {
		finish(r, 1, "connected");
		return;
	}
	char host[INET6_ADDRSTRLEN];
	inet_ntop(r->family,
		  r->family == AF_INET ? (void *)&((struct sockaddr_in *)&r->sa)->sin_addr
				       : (void *)&((struct sockaddr_in6 *)&r->sa)->sin6_addr,
		  host, sizeof(host));
	snprintf(r->req, sizeof(r->req),
		 "GET %s HTTP/1.1\r\nHost: %s%s%s:%d\r\nUser-Agent: netagent-vip-check\r\n"
		 "Connection: close\r\n\r\n",
		 r->c.path, r->family == AF_INET6 ? "[" : "", host,
		 r->family == AF_INET6 ? "]" : "", r->c.port);
	uv_buf_t b = uv_buf_init(r->req, (unsigned)strlen(r->req));
	http_parser_init(&r->parser, HTTP_RESPONSE);
	r->parser.data = r;
	r->wr.data = r;
	int rc = uv_write(&r->wr, (uv_stream_t *)&r->tcp, &b, 1, on_written);
	if (rc == 0)
		rc = uv_read_start((uv_stream_t *)&r->tcp, on_alloc, on_read);
	if (rc < 0)
		finish(r, 0, "%s", uv_strerror(rc));
}

static void on_timeout(uv_timer_t *t)
{
	struct vip_check_run *r = t->data;
	finish(r, 0, "no answer within %d ms", r->c.timeout_ms);
}

static int mksock(void *arg, na_err_t *err)
{
	struct vip_check_run *r = arg;
	r->fd = socket(r->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	return r->fd < 0 ? na_err_errno(err, errno, "check socket") : 0;
}

static void sock_made(void *arg, int rc, const na_err_t *err)
{
	struct vip_check_run *r = arg;
	uv_loop_t *loop = vm.ag->loop;
	if (!r->v) { /* the VIP went meanwhile */
		finish(r, 0, "cancelled");
		return;
	}
	if (rc < 0) {
		finish(r, 0, "%s", err->msg);
		return;
	}
	uv_tcp_init(loop, &r->tcp);
	uv_timer_init(loop, &r->timer);
	r->tcp.data = r->timer.data = r->conn.data = r;
	r->handles = 2;
	int fd = r->fd;
	r->fd = -1; /* the tcp handle owns it now */
	rc = uv_tcp_open(&r->tcp, fd);
	if (rc < 0) {
		close(fd);
		finish(r, 0, "%s", uv_strerror(rc));
		return;
	}
	uv_timer_start(&r->timer, on_timeout, (uint64_t)r->c.timeout_ms, 0);
	rc = uv_tcp_connect(&r->conn, &r->tcp, (struct sockaddr *)&r->sa, on_connect);
	if (rc < 0)
		finish(r, 0, "connect: %s", uv_strerror(rc));
}

static void run_start(vip_t *v, const vip_check_spec_t *c)
{
	struct vip_check_run *r = calloc(1, sizeof(*r));
	if (!r) {
		v->round_ok = 0;
		v->round_out--;
		return;
	}
	r->v = v;
	r->c = *c;
	r->fd = -1;
	na_addr_t a = c->addr;
	if (!a.family) {
		/* Where the checked service listens for its own host. */
		a.family = v->spec.addr.family;
		if (a.family == AF_INET)
			a.u.v4.s_addr = htonl(INADDR_LOOPBACK);
		else
			a.u.v6 = in6addr_loopback;
	}
	r->family = a.family;
	if (a.family == AF_INET) {
		struct sockaddr_in *s = (void *)&r->sa;
		s->sin_family = AF_INET;
		s->sin_port = htons((uint16_t)c->port);
		s->sin_addr = a.u.v4;
	} else {
		struct sockaddr_in6 *s = (void *)&r->sa;
		s->sin6_family = AF_INET6;
		s->sin6_port = htons((uint16_t)c->port);
		s->sin6_addr = a.u.v6;
	}
	r->next = v->runs;
	v->runs = r;
	if (na_ns_submit(NULL, v->netns[0] ? v->netns : NULL, mksock, sock_made, r) < 0)
		finish(r, 0, "cannot queue the check");
}

static void on_round(void *ud)
{
	vip_t *v = ud;
	if (v->round_out > 0 || v->deleting)
		return; /* the previous round is still out (timeouts > interval) */
	if (v->spec.target_kind == VIP_T_CONTAINER)
		vip_resolve(v);
	v->round_ok = 1;
	if (!v->resolved) {
		v->round_ok = 0;
		snprintf(v->health_reason, sizeof(v->health_reason), "target: %.140s",
			 v->target_err);
		round_end(v);
		return;
	}
	v->round_out = v->spec.nchecks;
	for (int i = 0; i < v->spec.nchecks; i++)
		run_start(v, &v->spec.checks[i]);
}

void vip_checks_start(vip_t *v)
{
	vip_checks_stop(v);
	v->ok_run = v->fail_run = 0;
	if (v->spec.nchecks == 0) {
		v->health = VIP_H_UP;
		snprintf(v->health_reason, sizeof(v->health_reason), "no checks");
		return;
	}
	v->check_timer = na_timer_new(vm.ag, on_round, v);
	if (v->check_timer)
		na_timer_start(v->check_timer, 0, (unsigned long long)v->spec.interval_ms);
}

void vip_checks_stop(vip_t *v)
{
	na_timer_free(v->check_timer);
	v->check_timer = NULL;
	while (v->runs) {
		struct vip_check_run *r = v->runs;
		v->runs = r->next;
		r->v = NULL;
		/* In flight on the loop: close now; still on a worker: the
		 * job's completion frees it. */
		if (r->handles)
			finish(r, 0, "cancelled");
	}
	v->round_out = 0;
}
