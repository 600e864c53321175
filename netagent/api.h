/* The route table and the request/response contract every module uses.
 *
 * A handler is called on the loop thread with a parsed request. It answers
 * now or later (after work on a namespace worker) with exactly one na_reply_*
 * call; the request stays valid until then even if the client went away. */
#ifndef NA_API_H
#define NA_API_H

#include <jansson.h>
#include <stdint.h>
#include <stddef.h>

#include "netagent/err.h"

#define NA_API_MAX_PARAMS 4
#define NA_API_MAX_BODY	  (1024 * 1024)

typedef struct na_req na_req_t;

struct na_req {
	const char *method; /* "GET", "PUT", ... */
	const char *path;   /* decoded path, no query */
	const char *query;  /* raw query string after '?', or "" */
	const char *body;   /* NUL-terminated copy of the body, or "" */
	size_t body_len;
	const char *params[NA_API_MAX_PARAMS]; /* captures of {x} segments, in order */
	int nparams;
	const char *peer;	 /* "unix" or the client certificate subject CN */
	const char *route;	 /* pattern that matched, for metrics */
	unsigned long long t0ns; /* when the request was complete */
	void *priv;		 /* owned by the transport */
	char pstore[1024];	 /* decoded captures live here, as long as req */
};

typedef void (*na_handler_fn)(na_req_t *req, void *ud);

typedef struct na_route {
	const char *method;  /* "GET", "PUT", "POST", "DELETE" */
	const char *pattern; /* "/v1/networks/{name}/endpoints/{ep}" */
	na_handler_fn fn;
	void *ud;
} na_route_t;

typedef struct na_api na_api_t;

na_api_t *na_api_new(void);
void na_api_free(na_api_t *api);
/* Registers every route of a table; modules call this once at start. */
int na_api_register(na_api_t *api, const na_route_t *routes, size_t n, na_err_t *err);
/* Matches method+path: 0 and *route on success, or -1 with a 404/405 err. */
int na_api_match(na_api_t *api, na_req_t *req, const na_route_t **route, na_err_t *err);
/* Dispatches a complete request: matches, validates, calls the handler or
 * replies with the matching error. Used by the transport and the fuzzer. */
void na_api_dispatch(na_api_t *api, na_req_t *req);

/* Exactly one of these ends a request. na_reply_json steals `body`. */
void na_reply_json(na_req_t *req, int status, json_t *body);
void na_reply_err(na_req_t *req, const na_err_t *err);
void na_reply_empty(na_req_t *req, int status);
void na_reply_text(na_req_t *req, int status, const char *ctype, const char *text, size_t len);

/* Server-sent events: switches the request into a long-lived stream. After
 * it, na_stream_send() may be called until on_close fires (client gone or
 * server draining); no na_reply_* follows. */
typedef void (*na_stream_close_fn)(na_req_t *req, void *ud);
void na_stream_begin(na_req_t *req, na_stream_close_fn on_close, void *ud);
int na_stream_send(na_req_t *req, const char *data, size_t len);
/* A reply whose body is `size` bytes of an open regular file (a backup):
 * read on libuv's threadpool and sent no faster than the client reads, so
 * a large file costs 64 KiB plus the write high-water mark, never its
 * size. Takes fd. A file shorter than size ends in a cut connection. */
void na_reply_file(na_req_t *req, int status, const char *ctype, int fd, uint64_t size);
const char *na_req_header(na_req_t *req, const char *name); /* case-insensitive, or NULL */

/* Query helpers: value of key (decoded) or NULL; bool accepts true/1/false/0. */
const char *na_req_query(na_req_t *req, const char *key, char *buf, size_t n);
int na_req_query_bool(na_req_t *req, const char *key, int *out, na_err_t *err);

/* Transport hooks (implemented by http.c; the fuzzer provides stubs). */
struct na_reply_ops {
	/* extra_headers: NULL or complete "Name: value\r\n" lines. */
	void (*send)(na_req_t *req, int status, const char *ctype, const char *extra_headers,
		     const char *body, size_t len);
	void (*stream_begin)(na_req_t *req, na_stream_close_fn on_close, void *ud);
	int (*stream_send)(na_req_t *req, const char *data, size_t len);
	const char *(*header)(na_req_t *req, const char *name);
	void (*file)(na_req_t *req, int status, const char *ctype, int fd, uint64_t size);
};
void na_api_set_reply_ops(const struct na_reply_ops *ops);

/* Called by the transport once per finished request (metrics). */
typedef void (*na_api_observer_fn)(const na_req_t *req, int status, double seconds);
void na_api_set_observer(na_api_observer_fn fn);

#endif
