/* A TCP proxy on 127.0.0.1 in front of one etcd member, on the test's loop.
 * It passes bytes both ways, except that after proxy_drop_next_txn_reply()
 * the first connection that carries a POST /v3/kv/txn has its answer
 * swallowed and is hung up: etcd applied the transaction, the client never
 * hears of it. That is the "interrupted claim" on demand. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/integration/etcd_test.h"

struct proxy {
	uv_tcp_t srv;
	struct sockaddr_in up;
	int port, drop_armed, dropped;
};

typedef struct pconn {
	uv_tcp_t c, u;
	proxy_t *p;
	int drop_reply, closing, open;
} pconn_t;

typedef struct wreq {
	uv_write_t w;
	char data[];
} wreq_t;

static void on_closed(uv_handle_t *h)
{
	pconn_t *pc = h->data;
	if (--pc->open == 0)
		free(pc);
}

static void pc_close(pconn_t *pc)
{
	if (pc->closing)
		return;
	pc->closing = 1;
	uv_close((uv_handle_t *)&pc->c, on_closed);
	uv_close((uv_handle_t *)&pc->u, on_closed);
}

static void on_written(uv_write_t *w, int status)
{
	(void)status;
	free(w);
}

static void forward(uv_tcp_t *to, const char *data, size_t n)
{
	wreq_t *r = malloc(sizeof(*r) + n);
	memcpy(r->data, data, n);
	uv_buf_t b = uv_buf_init(r->data, (unsigned)n);
	if (uv_write(&r->w, (uv_stream_t *)to, &b, 1, on_written) < 0)
		free(r);
}

static void alloc_cb(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
	(void)h;
	b->base = malloc(sz);
	b->len = sz;
}

static void from_client(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	pconn_t *pc = s->data;
	if (n < 0) {
		pc_close(pc);
	} else if (n > 0 && !pc->closing) {
		if (pc->p->drop_armed && memmem(b->base, (size_t)n, "POST /v3/kv/txn", 15)) {
			pc->p->drop_armed = 0;
			pc->drop_reply = 1;
		}
		forward(&pc->u, b->base, (size_t)n);
	}
	free(b->base);
}

static void from_upstream(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	pconn_t *pc = s->data;
	if (n < 0) {
		pc_close(pc);
	} else if (n > 0 && !pc->closing) {
		if (pc->drop_reply) {
			pc->p->dropped++;
			pc_close(pc); /* applied; the answer dies here */
		} else {
			forward(&pc->c, b->base, (size_t)n);
		}
	}
	free(b->base);
}

static void on_up_connected(uv_connect_t *req, int status)
{
	pconn_t *pc = req->data;
	free(req);
	if (status < 0 || pc->closing) {
		pc_close(pc);
		return;
	}
	uv_read_start((uv_stream_t *)&pc->c, alloc_cb, from_client);
	uv_read_start((uv_stream_t *)&pc->u, alloc_cb, from_upstream);
}

static void on_accept(uv_stream_t *srv, int status)
{
	proxy_t *p = srv->data;
	if (status < 0)
		return;
	pconn_t *pc = calloc(1, sizeof(*pc));
	pc->p = p;
	uv_tcp_init(loop, &pc->c);
	uv_tcp_init(loop, &pc->u);
	pc->c.data = pc->u.data = pc;
	pc->open = 2;
	if (uv_accept(srv, (uv_stream_t *)&pc->c) < 0) {
		pc_close(pc);
		return;
	}
	uv_connect_t *req = malloc(sizeof(*req));
	req->data = pc;
	if (uv_tcp_connect(req, &pc->u, (struct sockaddr *)&p->up, on_up_connected) < 0) {
		free(req);
		pc_close(pc);
	}
}

proxy_t *proxy_new(const char *upstream_url)
{
	char host[64];
	int port;
	if (sscanf(upstream_url, "http://%63[0-9.]:%d", host, &port) != 2)
		return NULL;
	proxy_t *p = calloc(1, sizeof(*p));
	uv_ip4_addr(host, port, &p->up);
	struct sockaddr_in a;
	uv_ip4_addr("127.0.0.1", 0, &a);
	uv_tcp_init(loop, &p->srv);
	p->srv.data = p;
	if (uv_tcp_bind(&p->srv, (struct sockaddr *)&a, 0) < 0 ||
	    uv_listen((uv_stream_t *)&p->srv, 64, on_accept) < 0)
		return NULL;
	int len = sizeof(a);
	uv_tcp_getsockname(&p->srv, (struct sockaddr *)&a, &len);
	p->port = ntohs(a.sin_port);
	return p;
}

int proxy_port(const proxy_t *p)
{
	return p->port;
}

void proxy_drop_next_txn_reply(proxy_t *p)
{
	p->drop_armed = 1;
}

int proxy_dropped(const proxy_t *p)
{
	return p->dropped;
}
