/* Internals shared by the HTTP transport's two halves: http.c (one
 * connection: TLS, parsing, replies, streams) and http_server.c (listeners,
 * accept, connection cap, drain). Core-private. */
#ifndef NA_HTTP_INT_H
#define NA_HTTP_INT_H

#include <openssl/ssl.h>
#include <uv.h>

#include "netagent/http.h"
#include "netagent/http_msg.h"

#define MAX_LISTENERS 4
/* Memory bound, per connection: unparsed input up to READ_HIGHWATER plus one 64 KiB read,
 * headers up to 32 KiB; unread replies pause pipelined requests past WRITE_HIGHWATER. Bodies
 * (up to 1 MiB each) share BODY_BUDGET across all connections, so 512 connections cost
 * about 512 * 160 KiB + 64 MiB + replies, not 512 * 3 MiB. */
#define READ_HIGHWATER	(64 * 1024)
#define WRITE_HIGHWATER (1024 * 1024)
#define BODY_BUDGET	(64 * 1024 * 1024)
/* After our FIN: how long and how much we discard before close() (see after_shutdown). */
#define LINGER_MS	 2000
#define LINGER_MAX_BYTES (8 * 1024 * 1024)
/* An SSE client that lets this much pile up is too slow to keep. */
#define STREAM_HIGHWATER (4 * 1024 * 1024)

enum cstate { C_READING, C_HANDLING, C_STREAMING, C_FILE };

/* A reply body read from a file (na_reply_file), FILE_CHUNK at a time on
 * libuv's threadpool, no further ahead than the client reads. */
#define FILE_CHUNK (64 * 1024)
struct fsend {
	uv_fs_t fs;
	int fd, inflight, keep;
	uint64_t off, left;
	char buf[FILE_CHUNK];
};

struct listener {
	union {
		uv_tcp_t tcp;
		uv_pipe_t pipe;
		uv_stream_t s;
		uv_handle_t h;
	} u;
	na_http_t *srv;
	SSL_CTX *ctx;
	int is_unix;
	int open;
};

struct conn {
	union {
		uv_tcp_t tcp;
		uv_pipe_t pipe;
		uv_stream_t s;
		uv_handle_t h;
	} u;
	uv_timer_t timer;
	na_http_t *srv;
	struct conn *prev, *next;
	SSL *ssl;
	BIO *rbio, *wbio;
	int handshaken;
	na_msg_t msg;
	char *pending;
	size_t pending_len;
	na_req_t req;
	char peer[128];
	enum cstate state;
	int closing, handles_open, in_process, reading, shutdown_after_write, ending, lingering;
	size_t linger_bytes;
	na_stream_close_fn on_close;
	void *on_close_ud;
	struct fsend *file;
};

struct na_http {
	uv_loop_t *loop;
	na_api_t *api;
	na_http_opts_t opts;
	struct listener ls[MAX_LISTENERS];
	int nls, ls_open;
	struct conn *conns;
	unsigned nconns;
	size_t body_used; /* see BODY_BUDGET */
	int draining;
	void (*drain_done)(void *);
	void *drain_ud;
};

/* http.c */
extern const struct na_reply_ops na_http_sock_ops;
/* A freshly accepted connection: arms the header timer and starts reading. */
void na_conn_start(struct conn *c);
void na_conn_close(struct conn *c);

/* http.c too: runs the drain callback once nothing is left open. */
void na_http_check_drained(na_http_t *h);

#endif
