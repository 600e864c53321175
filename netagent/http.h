/* HTTP/1.1 transport: libuv streams, http-parser, OpenSSL over memory BIOs.
 * Serves the route table on a unix socket (no TLS) and on TCP with mutual
 * TLS. Defends itself: a request must be complete within header_timeout,
 * an idle keep-alive connection is closed after idle_timeout, bodies are
 * capped at NA_API_MAX_BODY, and connections beyond max_conns are closed at
 * accept, so a slow or half-open client never stalls the others. */
#ifndef NA_HTTP_H
#define NA_HTTP_H

#include <openssl/ssl.h>
#include <uv.h>

#include "netagent/api.h"
#include "netagent/err.h"

typedef struct na_http na_http_t;

typedef struct na_http_opts {
	int max_conns;
	int header_timeout_ms;
	int idle_timeout_ms;
} na_http_opts_t;

int na_http_new(uv_loop_t *loop, na_api_t *api, const na_http_opts_t *opts, na_http_t **out,
		na_err_t *err);
/* Unix socket, created with mode 0600 (a stale socket file is replaced). */
int na_http_listen_unix(na_http_t *h, const char *path, na_err_t *err);
/* "ADDR:PORT" or "[V6]:PORT"; ctx from na_tls_server_ctx(). */
int na_http_listen_tcp(na_http_t *h, const char *addrport, SSL_CTX *ctx, na_err_t *err);
/* Stops accepting, closes idle connections and streams, lets in-flight
 * requests finish; done() runs once every connection is gone. */
void na_http_drain(na_http_t *h, void (*done)(void *ud), void *ud);
void na_http_free(na_http_t *h);
unsigned na_http_conns(const na_http_t *h);

/* TLS 1.2+ server context that REQUIRES a client certificate chaining to ca. */
SSL_CTX *na_tls_server_ctx(const char *cert, const char *key, const char *ca, na_err_t *err);

#endif
