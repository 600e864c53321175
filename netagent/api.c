#include "netagent/api.h"
#include "netagent/http_msg.h"
#include "netagent/log.h"
#include "netagent/util.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_SEGS 12

struct na_api {
	na_route_t *routes;
	size_t n, cap;
};

static const struct na_reply_ops *ops;
static na_api_observer_fn observer;

void na_api_set_reply_ops(const struct na_reply_ops *o)
{
	ops = o;
}

void na_api_set_observer(na_api_observer_fn fn)
{
	observer = fn;
}

na_api_t *na_api_new(void)
{
	return calloc(1, sizeof(na_api_t));
}

void na_api_free(na_api_t *api)
{
	if (!api)
		return;
	free(api->routes);
	free(api);
}

int na_api_register(na_api_t *api, const na_route_t *routes, size_t n, na_err_t *err)
{
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < api->n; j++)
			if (strcmp(api->routes[j].method, routes[i].method) == 0 &&
			    strcmp(api->routes[j].pattern, routes[i].pattern) == 0)
				return na_err_set(err, 500, "internal_error", NULL,
						  "route %s %s registered twice", routes[i].method,
						  routes[i].pattern);
		if (api->n == api->cap) {
			size_t cap = api->cap ? api->cap * 2 : 32;
			na_route_t *r = realloc(api->routes, cap * sizeof(*r));
			if (!r)
				return na_err_errno(err, ENOMEM, "register routes");
			api->routes = r;
			api->cap = cap;
		}
		api->routes[api->n++] = routes[i];
	}
	return 0;
}

/* Splits "/a/b/c" into segments in place (buf is a copy); "" segments from
 * doubled or trailing slashes are kept so that "/v1//health" does not match. */
static int split(char *buf, char **segs)
{
	int n = 0;
	if (*buf != '/')
		return -1;
	char *p = buf + 1;
	for (;;) {
		if (n == MAX_SEGS)
			return -1;
		segs[n++] = p;
		char *s = strchr(p, '/');
		if (!s)
			break;
		*s = 0;
		p = s + 1;
	}
	return n;
}

static int match_one(const char *pattern, char **psegs, int np, char **caps, int *ncaps)
{
	char pbuf[256];
	char *segs[MAX_SEGS];
	snprintf(pbuf, sizeof(pbuf), "%s", pattern);
	int n = split(pbuf, segs);
	if (n != np)
		return 0;
	*ncaps = 0;
	for (int i = 0; i < n; i++) {
		if (segs[i][0] == '{') {
			if (!psegs[i][0] || *ncaps == NA_API_MAX_PARAMS)
				return 0;
			caps[(*ncaps)++] = psegs[i];
		} else if (strcmp(segs[i], psegs[i]) != 0) {
			return 0;
		}
	}
	return 1;
}

int na_api_match(na_api_t *api, na_req_t *req, const na_route_t **route, na_err_t *err)
{
	char *psegs[MAX_SEGS], *caps[NA_API_MAX_PARAMS];
	char allow[128] = "";
	int ncaps = 0;

	char *copy = strdup(req->path);
	if (!copy)
		return na_err_errno(err, ENOMEM, "match route");
	int np = split(copy, psegs);
	if (np < 0) {
		free(copy);
		return na_err_set(err, 404, "not_found", NULL, "no such route: %s", req->path);
	}
	const na_route_t *found = NULL;
	for (size_t i = 0; i < api->n; i++) {
		int nc = 0;
		if (!match_one(api->routes[i].pattern, psegs, np, caps, &nc))
			continue;
		if (strcmp(api->routes[i].method, req->method) != 0) {
			if (!strstr(allow, api->routes[i].method)) {
				size_t l = strlen(allow);
				snprintf(allow + l, sizeof(allow) - l, "%s%s", l ? ", " : "",
					 api->routes[i].method);
			}
			continue;
		}
		found = &api->routes[i];
		ncaps = nc;
		break;
	}
	if (!found) {
		free(copy);
		if (*allow)
			return na_err_set(err, 405, "method_not_allowed", NULL,
					  "method %s not allowed on %s (allowed: %s)", req->method,
					  req->path, allow);
		return na_err_set(err, 404, "not_found", NULL, "no such route: %s", req->path);
	}
	size_t off = 0;
	for (int i = 0; i < ncaps; i++) {
		size_t l = strlen(caps[i]);
		if (off + l + 1 > sizeof(req->pstore)) {
			free(copy);
			return na_err_set(
			    err, 422, "invalid_name", NULL,
			    "path segment too long (names have at most 63 characters)");
		}
		memcpy(req->pstore + off, caps[i], l + 1);
		if (na_pct_decode(req->pstore + off, 0) < 0) {
			free(copy);
			return na_err_set(err, 400, "bad_request", NULL,
					  "malformed percent-encoding in path");
		}
		req->params[i] = req->pstore + off;
		off += l + 1;
	}
	req->nparams = ncaps;
	free(copy);
	*route = found;
	req->route = found->pattern;
	return 0;
}

void na_api_dispatch(na_api_t *api, na_req_t *req)
{
	na_err_t err = NA_ERR_INIT;
	const na_route_t *route = NULL;

	if (na_api_match(api, req, &route, &err) < 0) {
		na_reply_err(req, &err);
		return;
	}
	route->fn(req, route->ud);
}

static void finish(na_req_t *req, int status)
{
	double secs = (double)(na_now_ns() - req->t0ns) / 1e9;
	na_debug("request", "method=%s path=%s status=%d ms=%.3f peer=%s", req->method, req->path,
		 status, secs * 1000, req->peer ? req->peer : "-");
	if (observer)
		observer(req, status, secs);
}

void na_reply_text(na_req_t *req, int status, const char *ctype, const char *text, size_t len)
{
	finish(req, status);
	ops->send(req, status, ctype, NULL, text, len);
}

void na_reply_json(na_req_t *req, int status, json_t *body)
{
	char *s = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(body);
	if (!s) {
		na_reply_text(req, 500, "application/json",
			      "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}",
			      57);
		return;
	}
	size_t n = strlen(s);
	s[n] = 0;
	finish(req, status);
	/* A trailing newline keeps curl output readable. */
	char *withnl = realloc(s, n + 2);
	if (withnl) {
		s = withnl;
		s[n++] = '\n';
		s[n] = 0;
	}
	ops->send(req, status, "application/json", NULL, s, n);
	free(s);
}

void na_reply_err(na_req_t *req, const na_err_t *err)
{
	int status = err->status ? err->status : 500;
	json_t *e = json_pack("{s:s, s:s}", "code", err->code[0] ? err->code : "internal_error",
			      "message", err->msg[0] ? err->msg : "internal error");
	if (err->field[0])
		json_object_set_new(e, "field", json_string(err->field));
	if (status >= 500)
		na_warn("request failed", "method=%s path=%s status=%d code=%s error=\"%s\"",
			req->method, req->path, status, err->code, err->msg);
	char allow[160] = "";
	if (status == 405) {
		const char *a = strstr(err->msg, "(allowed: ");
		if (a) {
			snprintf(allow, sizeof(allow), "Allow: %.*s\r\n",
				 (int)(strlen(a) - 11 > 120 ? 120 : strlen(a) - 11), a + 10);
		}
	}
	json_t *wrap = json_pack("{s:o}", "error", e);
	char *s = json_dumps(wrap, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(wrap);
	finish(req, status);
	ops->send(req, status, "application/json", *allow ? allow : NULL, s ? s : "{}",
		  s ? strlen(s) : 2);
	free(s);
}

void na_reply_empty(na_req_t *req, int status)
{
	finish(req, status);
	ops->send(req, status, NULL, NULL, "", 0);
}

void na_stream_begin(na_req_t *req, na_stream_close_fn on_close, void *ud)
{
	finish(req, 200);
	ops->stream_begin(req, on_close, ud);
}

void na_reply_file(na_req_t *req, int status, const char *ctype, int fd, uint64_t size)
{
	if (!ops->file) {
		close(fd);
		na_err_t err = NA_ERR_INIT;
		na_err_set(&err, 500, "internal_error", NULL, "this transport cannot send files");
		na_reply_err(req, &err);
		return;
	}
	finish(req, status);
	ops->file(req, status, ctype, fd, size);
}

int na_stream_send(na_req_t *req, const char *data, size_t len)
{
	return ops->stream_send(req, data, len);
}

const char *na_req_header(na_req_t *req, const char *name)
{
	return ops->header ? ops->header(req, name) : NULL;
}

const char *na_req_query(na_req_t *req, const char *key, char *buf, size_t n)
{
	size_t kl = strlen(key);
	const char *p = req->query;
	while (p && *p) {
		const char *amp = strchr(p, '&');
		size_t seg = amp ? (size_t)(amp - p) : strlen(p);
		if (seg > kl && strncmp(p, key, kl) == 0 && p[kl] == '=') {
			size_t vl = seg - kl - 1;
			if (vl >= n)
				return NULL;
			memcpy(buf, p + kl + 1, vl);
			buf[vl] = 0;
			return na_pct_decode(buf, 1) < 0 ? NULL : buf;
		}
		if (seg == kl && strncmp(p, key, kl) == 0) {
			buf[0] = 0;
			return buf;
		}
		p = amp ? amp + 1 : NULL;
	}
	return NULL;
}

int na_req_query_bool(na_req_t *req, const char *key, int *out, na_err_t *err)
{
	char buf[16];
	const char *v = na_req_query(req, key, buf, sizeof(buf));
	*out = 0;
	if (!v)
		return 0;
	if (!strcmp(v, "true") || !strcmp(v, "1") || !*v)
		*out = 1;
	else if (strcmp(v, "false") != 0 && strcmp(v, "0") != 0)
		return na_err_set(err, 422, "invalid_field", key,
				  "query parameter %s must be true or false", key);
	return 0;
}
