/* Route table, error contract and HTTP request assembly, without sockets. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "netagent/api.h"
#include "netagent/http_msg.h"
#include "netagent/util.h"

static int last_status;
static char last_body[4096];
static char last_extra[256];
static int handled;
static char captured[2][128];

static void t_send(na_req_t *req, int status, const char *ctype, const char *extra,
		   const char *body, size_t len)
{
	(void)req, (void)ctype;
	last_status = status;
	snprintf(last_body, sizeof(last_body), "%.*s", (int)len, body);
	snprintf(last_extra, sizeof(last_extra), "%s", extra ? extra : "");
}
static const struct na_reply_ops ops = {t_send, NULL, NULL, NULL, NULL};

static void h_ok(na_req_t *req, void *ud)
{
	(void)ud;
	handled++;
	for (int i = 0; i < req->nparams && i < 2; i++)
		snprintf(captured[i], sizeof(captured[i]), "%s", req->params[i]);
	na_reply_empty(req, 204);
}

static const na_route_t routes[] = {
    {"GET", "/v1/health", h_ok, NULL},
    {"PUT", "/v1/networks/{name}", h_ok, NULL},
    {"DELETE", "/v1/networks/{name}", h_ok, NULL},
    {"GET", "/v1/networks/{net}/endpoints/{name}", h_ok, NULL},
};

static na_api_t *mkapi(void)
{
	na_err_t err = NA_ERR_INIT;
	na_api_t *api = na_api_new();
	assert_int_equal(na_api_register(api, routes, NA_ARRAY_SIZE(routes), &err), 0);
	na_api_set_reply_ops(&ops);
	return api;
}

static void run(na_api_t *api, const char *method, const char *path, const char *query)
{
	na_req_t req = {0};
	req.method = method;
	req.path = path;
	req.query = query ? query : "";
	req.body = "";
	handled = 0;
	last_status = 0;
	captured[0][0] = captured[1][0] = 0;
	na_api_dispatch(api, &req);
}

static void test_match_and_params(void **s)
{
	(void)s;
	na_api_t *api = mkapi();
	run(api, "GET", "/v1/networks/n1/endpoints/e%2D1", NULL);
	assert_int_equal(handled, 1);
	assert_int_equal(last_status, 204);
	assert_string_equal(captured[0], "n1");
	assert_string_equal(captured[1], "e-1");
	run(api, "PUT", "/v1/networks/a%2Fb", NULL);
	assert_int_equal(handled, 1);
	assert_string_equal(captured[0], "a/b"); /* decoded, for the name check to refuse */
	na_api_free(api);
}

static void test_not_found(void **s)
{
	(void)s;
	na_api_t *api = mkapi();
	const char *paths[] = {"/v1/nope",	"/v1/health/", "/v1//health",
			       "/v1/networks/", "v1/health",   "/"};
	for (size_t i = 0; i < NA_ARRAY_SIZE(paths); i++) {
		run(api, "GET", paths[i], NULL);
		assert_int_equal(handled, 0);
		assert_int_equal(last_status, 404);
		assert_non_null(strstr(last_body, "\"code\":\"not_found\""));
	}
	na_api_free(api);
}

static void test_method_not_allowed(void **s)
{
	(void)s;
	na_api_t *api = mkapi();
	run(api, "POST", "/v1/networks/n1", NULL);
	assert_int_equal(handled, 0);
	assert_int_equal(last_status, 405);
	assert_non_null(strstr(last_body, "method_not_allowed"));
	assert_non_null(strstr(last_extra, "Allow: PUT, DELETE"));
	na_api_free(api);
}

static void test_bad_escape(void **s)
{
	(void)s;
	na_api_t *api = mkapi();
	run(api, "PUT", "/v1/networks/a%zz", NULL);
	assert_int_equal(last_status, 400);
	run(api, "PUT", "/v1/networks/a%00b", NULL);
	assert_int_equal(last_status, 400);
	na_api_free(api);
}

static void test_query(void **s)
{
	(void)s;
	na_req_t req = {0};
	char buf[32];
	int b;
	na_err_t err = NA_ERR_INIT;
	req.query = "force=true&tail=10&x=a%20b&flag";
	assert_string_equal(na_req_query(&req, "tail", buf, sizeof(buf)), "10");
	assert_string_equal(na_req_query(&req, "x", buf, sizeof(buf)), "a b");
	assert_string_equal(na_req_query(&req, "flag", buf, sizeof(buf)), "");
	assert_null(na_req_query(&req, "for", buf, sizeof(buf)));
	assert_int_equal(na_req_query_bool(&req, "force", &b, &err), 0);
	assert_int_equal(b, 1);
	req.query = "force=maybe";
	assert_int_equal(na_req_query_bool(&req, "force", &b, &err), -1);
	assert_int_equal(err.status, 422);
	assert_string_equal(err.field, "force");
}

static void feed_all(na_msg_t *m, const char *s)
{
	na_msg_init(m);
	na_msg_feed(m, s, strlen(s));
}

static void test_msg_basic_and_pipelined(void **s)
{
	(void)s;
	na_msg_t m;
	na_req_t req;
	const char *two = "PUT /v1/networks/n1?force=1 HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"
			  "GET /v1/health HTTP/1.1\r\n\r\n";
	na_msg_init(&m);
	size_t n = na_msg_feed(&m, two, strlen(two));
	assert_true(m.complete);
	assert_int_equal(m.err_status, 0);
	assert_int_equal(na_msg_to_req(&m, &req), 0);
	assert_string_equal(req.method, "PUT");
	assert_string_equal(req.path, "/v1/networks/n1");
	assert_string_equal(req.query, "force=1");
	assert_string_equal(req.body, "{}");
	na_msg_reset(&m);
	n = na_msg_feed(&m, two + n, strlen(two) - n);
	assert_true(m.complete);
	assert_int_equal(na_msg_to_req(&m, &req), 0);
	assert_string_equal(req.method, "GET");
	na_msg_reset(&m);
}

static void test_msg_byte_by_byte(void **s)
{
	(void)s;
	const char *r = "GET /v1/health HTTP/1.1\r\nHost: a\r\nX-Long-Header: abcdef\r\n\r\n";
	na_msg_t m;
	na_msg_init(&m);
	for (size_t i = 0; i < strlen(r); i++) {
		assert_false(m.complete);
		assert_int_equal(na_msg_feed(&m, r + i, 1), 1);
	}
	assert_true(m.complete);
	assert_string_equal(na_msg_header(&m, "x-long-header"), "abcdef");
	na_msg_reset(&m);
}

static void test_msg_limits(void **s)
{
	(void)s;
	na_msg_t m;
	feed_all(&m, "PUT /x HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n");
	assert_int_equal(m.err_status, 413);
	na_msg_reset(&m);
	/* Chunked bodies have no declared length: the cap applies while reading. */
	size_t big = 1100 * 1024;
	char *buf = malloc(big + 200);
	int h = sprintf(buf, "PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n%zx\r\n", big);
	memset(buf + h, 'a', big);
	na_msg_init(&m);
	na_msg_feed(&m, buf, (size_t)h + big);
	assert_int_equal(m.err_status, 413);
	na_msg_reset(&m);
	char *hdrs = malloc(40000);
	int k = sprintf(hdrs, "GET /x HTTP/1.1\r\nX: ");
	memset(hdrs + k, 'b', 33000);
	hdrs[k + 33000] = 0;
	feed_all(&m, hdrs);
	assert_int_equal(m.err_status, 431);
	na_msg_reset(&m);
	feed_all(&m, "GARBAGE\r\n\r\n");
	assert_int_equal(m.err_status, 400);
	na_msg_reset(&m);
	free(buf);
	free(hdrs);
}

static void test_msg_nul_body(void **s)
{
	(void)s;
	na_msg_t m;
	na_req_t req;
	const char r[] = "PUT /x HTTP/1.1\r\nContent-Length: 3\r\n\r\n{\0}";
	na_msg_init(&m);
	na_msg_feed(&m, r, sizeof(r) - 1);
	assert_true(m.complete);
	assert_int_equal(na_msg_to_req(&m, &req), -1);
	na_msg_reset(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_match_and_params),
	    cmocka_unit_test(test_not_found),
	    cmocka_unit_test(test_method_not_allowed),
	    cmocka_unit_test(test_bad_escape),
	    cmocka_unit_test(test_query),
	    cmocka_unit_test(test_msg_basic_and_pipelined),
	    cmocka_unit_test(test_msg_byte_by_byte),
	    cmocka_unit_test(test_msg_limits),
	    cmocka_unit_test(test_msg_nul_body),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
