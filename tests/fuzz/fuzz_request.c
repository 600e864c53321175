/* libFuzzer target for the request path: raw bytes → http-parser (possibly
 * several pipelined requests) → route table → JSON body → field validation,
 * exactly as the daemon runs them, with the socket replaced by a sink. */
#include "netagent/api.h"
#include "netagent/http_msg.h"
#include "netagent/validate.h"
#include "netagent/util.h"

#include <stdint.h>
#include <stdlib.h>

static na_api_t *api;
static int replies;

static void sink_send(na_req_t *req, int status, const char *ctype, const char *extra,
		      const char *body, size_t len)
{
	(void)req, (void)ctype, (void)extra, (void)body, (void)len;
	if (status < 100 || status > 599)
		abort();
	replies++;
}
static void sink_stream_begin(na_req_t *req, na_stream_close_fn fn, void *ud)
{
	fn(req, ud);
}
static int sink_stream_send(na_req_t *req, const char *d, size_t n)
{
	(void)req, (void)d, (void)n;
	return 0;
}
static const na_msg_t *cur;
static const char *sink_header(na_req_t *req, const char *name)
{
	(void)req;
	return na_msg_header(cur, name);
}
static const struct na_reply_ops ops = {sink_send, sink_stream_begin, sink_stream_send,
					sink_header, NULL};

static const na_field_t net_spec[] = {
    {"vni", NA_F_INT, 1, 1, 16777215},
    {"subnet", NA_F_STRING, 1, 0, 0},
    {"mtu", NA_F_INT, 0, 576, 9000},
};
static const na_field_t ep_spec[] = {
    {"netns", NA_F_STRING, 1, 0, 0},
    {"ip", NA_F_STRING, 0, 0, 0},
    {"mac", NA_F_STRING, 0, 0, 0},
    {"ifname", NA_F_STRING, 0, 0, 0},
};

static void h_put(na_req_t *req, void *ud)
{
	na_err_t err = NA_ERR_INIT;
	const na_field_t *spec = ud ? ep_spec : net_spec;
	size_t n = ud ? NA_ARRAY_SIZE(ep_spec) : NA_ARRAY_SIZE(net_spec);
	for (int i = 0; i < req->nparams; i++)
		if (na_name_check(req->params[i], "name", &err) < 0)
			goto fail;
	json_t *b = na_body_parse(req->body, req->body_len, &err);
	if (!b)
		goto fail;
	if (na_fields_check(b, spec, n, NULL, &err) < 0) {
		json_decref(b);
		goto fail;
	}
	json_t *s = json_object_get(b, ud ? "ip" : "subnet");
	uint32_t a;
	int plen;
	if (s)
		na_cidr_parse(json_string_value(s), &a, &plen);
	json_t *m = json_object_get(b, "mac");
	uint8_t mac[6];
	if (m)
		na_mac_parse(json_string_value(m), mac);
	na_reply_json(req, 200, b);
	return;
fail:
	na_reply_err(req, &err);
}

static void h_get(na_req_t *req, void *ud)
{
	(void)ud;
	char buf[64];
	int force;
	na_err_t err = NA_ERR_INIT;
	na_req_query(req, "tail", buf, sizeof(buf));
	if (na_req_query_bool(req, "force", &force, &err) < 0) {
		na_reply_err(req, &err);
		return;
	}
	na_req_header(req, "Last-Event-ID");
	na_reply_empty(req, 204);
}

static const na_route_t routes[] = {
    {"GET", "/v1/health", h_get, NULL},
    {"PUT", "/v1/networks/{name}", h_put, NULL},
    {"DELETE", "/v1/networks/{name}", h_get, NULL},
    {"PUT", "/v1/networks/{net}/endpoints/{name}", h_put, (void *)1},
    {"GET", "/v1/networks/{net}/endpoints/{name}", h_get, NULL},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!api) {
		na_err_t err = NA_ERR_INIT;
		api = na_api_new();
		if (na_api_register(api, routes, NA_ARRAY_SIZE(routes), &err) < 0)
			abort();
		na_api_set_reply_ops(&ops);
	}
	na_msg_t m;
	na_msg_init(&m);
	cur = &m;
	const char *p = (const char *)data;
	size_t left = size;
	for (int guard = 0; left > 0 && guard < 64; guard++) {
		size_t n = na_msg_feed(&m, p, left);
		p += n;
		left -= n;
		if (m.err_status)
			break;
		if (!m.complete)
			break;
		na_req_t *req = calloc(1, sizeof(*req));
		if (na_msg_to_req(&m, req) == 0) {
			req->t0ns = na_now_ns();
			req->peer = "fuzz";
			na_api_dispatch(api, req);
		}
		free(req);
		na_msg_reset(&m);
	}
	na_msg_reset(&m);
	return 0;
}
