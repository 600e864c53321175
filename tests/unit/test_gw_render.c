/* Gateway role: the `gateway` section's checks (every refusal names its
 * field), the haproxy.cfg rendered from it, and the server-state file
 * carried across reloads. Pure functions, no kernel. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "provision/gw.h"

static na_addr_t nets[1];

static void setup_nets(void)
{
	na_addr_parse("198.18.1.0/24", 1, &nets[0]);
}

static int parse(const char *js, gw_conf_t *c, na_err_t *err, json_t **keep)
{
	json_error_t je;
	json_t *b = json_loads(js, JSON_REJECT_DUPLICATES, &je);
	if (!b)
		fail_msg("test JSON does not parse: %s: %s", js, je.text);
	na_err_clear(err);
	setup_nets();
	int rc = gw_parse(b, nets, 1, 1, c, err);
	*keep = b;
	return rc;
}

static void refused(const char *js, const char *code, const char *field)
{
	gw_conf_t c;
	na_err_t e;
	json_t *b;
	if (parse(js, &c, &e, &b) == 0)
		fail_msg("accepted: %s", js);
	if (e.status != 422 || strcmp(e.code, code) || strcmp(e.field, field))
		fail_msg("%s: got %d %s field '%s' (%s), want 422 %s field '%s'", js, e.status,
			 e.code, e.field, e.msg, code, field);
	json_decref(b);
}

#define BE                                                                                         \
	"\"backends\":[{\"address\":\"198.18.1.2\"},{\"address\":\"198.18.1.3\",\"port\":6432,"    \
	"\"check_port\":9008}]"

static void test_refusals(void **st)
{
	(void)st;
	refused("{\"backends\":[{\"address\":\"198.18.1.2\"}]}", "missing_field", "gateway.port");
	refused("{\"port\":0," BE "}", "out_of_range", "gateway.port");
	refused("{\"port\":65536," BE "}", "out_of_range", "gateway.port");
	refused("{\"port\":5432,\"replica_port\":5432," BE "}", "invalid_field",
		"gateway.replica_port");
	refused("{\"port\":5432}", "missing_field", "gateway.backends");
	refused("{\"port\":5432,\"backends\":[]}", "invalid_field", "gateway.backends");
	refused("{\"port\":5432,\"backends\":[{\"address\":\"198.18.2.2\"}]}", "invalid_field",
		"gateway.backends[0].address");
	refused("{\"port\":5432,\"backends\":[{\"address\":\"nope\"}]}", "invalid_field",
		"gateway.backends[0].address");
	refused("{\"port\":5432,\"backends\":[{\"address\":\"198.18.1.2\",\"check_port\":0}]}",
		"out_of_range", "gateway.backends[0].check_port");
	refused("{\"port\":5432,\"backends\":[{\"address\":\"198.18.1.2\"},{\"address\":\"198.18."
		"1.2\",\"port\":5432}]}",
		"invalid_field", "gateway.backends");
	refused("{\"port\":5432," BE ",\"allow\":[\"0.0.0.0/0\"]}", "tls_required",
		"gateway.allow[0]");
	refused("{\"port\":5432," BE ",\"allow\":[\"198.18.1.0/25\",\"198.18.0.0/16\"]}",
		"tls_required", "gateway.allow[1]");
	refused("{\"port\":5432," BE ",\"allow\":[]}", "invalid_field", "gateway.allow");
	refused("{\"port\":5432," BE ",\"allow\":[\"198.18.1.1/24\"]}", "invalid_field",
		"gateway.allow[0]");
	refused("{\"port\":5432," BE ",\"allow\":[5]}", "invalid_field", "gateway.allow[0]");
	refused("{\"port\":5432," BE ",\"check_tls\":{\"ca\":\"x\"}}", "invalid_field",
		"gateway.check_tls.ca");
	refused("{\"port\":5432," BE ",\"check_tls\":{}}", "missing_field", "gateway.check_tls.ca");
	refused("{\"port\":5432," BE ",\"uplink\":\"a/b\"}", "invalid_field", "gateway.uplink");
	refused("{\"port\":5432," BE ",\"uplink\":\"0123456789abcdef\"}", "invalid_field",
		"gateway.uplink");
	refused("{\"port\":5432," BE ",\"extra\":1}", "unknown_field", "gateway.extra");
}

static void test_defaults(void **st)
{
	(void)st;
	gw_conf_t c;
	na_err_t e;
	json_t *b;
	assert_int_equal(parse("{\"port\":5432," BE "}", &c, &e, &b), 0);
	assert_int_equal(c.nbe, 2);
	assert_int_equal(c.be[0].port, 5432);
	assert_int_equal(c.be[0].check_port, 8008);
	assert_int_equal(c.be[1].port, 6432);
	assert_int_equal(c.be[1].check_port, 9008);
	assert_int_equal(c.replica_port, 0);
	assert_int_equal(c.force_tls, 0);
	/* Default allow: the overlay subnet and loopback. */
	assert_int_equal(c.nallow, 2);
	char *cfg = gw_render(&c);
	assert_non_null(cfg);
	assert_non_null(strstr(cfg, "\tbind 0.0.0.0:5432\n"));
	assert_non_null(
	    strstr(cfg, "tcp-request connection reject unless { src 198.18.1.0/24 127.0.0.0/8 }"));
	assert_non_null(
	    strstr(cfg, "option httpchk HEAD /primary\n\thttp-check expect status 200"));
	assert_non_null(
	    strstr(cfg, "default-server inter 1s fastinter 250ms downinter 250ms fall 2 rise 1 "
			"on-marked-down shutdown-sessions observe layer4 error-limit 1 "
			"on-error mark-down\n\tretries 2\n\toption redispatch 1\n"));
	assert_non_null(strstr(cfg, "server pg-198.18.1.2-5432 198.18.1.2:5432 check port 8008\n"));
	assert_non_null(strstr(cfg, "server pg-198.18.1.3-6432 198.18.1.3:6432 check port 9008\n"));
	assert_non_null(strstr(cfg, "server-state-file " GW_ADMIN_DIR "/servers.state"));
	assert_non_null(strstr(cfg, "load-server-state-from-file global"));
	assert_non_null(strstr(cfg, "hard-stop-after"));
	assert_non_null(strstr(cfg, "stats socket " GW_ADMIN_DIR "/admin.sock"));
	assert_null(strstr(cfg, "fe_replica"));
	assert_null(strstr(cfg, "req.payload"));
	assert_null(strstr(cfg, "check-ssl"));
	free(cfg);
	json_decref(b);
}

static void test_full(void **st)
{
	(void)st;
	gw_conf_t c;
	na_err_t e;
	json_t *b;
	assert_int_equal(
	    parse("{\"port\":5432,\"replica_port\":5433," BE
		  ",\"force_tls\":true,\"allow\":[\"0.0.0.0/0\"],\"check_tls\":{\"ca\":"
		  "\"-----BEGIN CERTIFICATE-----\\n"
		  "MIIBfzCCASWgAwIBAgIUXfz5d3Cv8xLhkoCHn32s+96pySMwCgYIKoZIzj0EAwIw\\n"
		  "FTETMBEGA1UEAwwKdW5pdC10ZXN0czAeFw0yNjEyMDIxODI4MjhaFw0zNjExMjkx\\n"
		  "ODI4MjhaMBUxEzARBgNVBAMMCnVuaXQtdGVzdHMwWTATBgcqhkjOPQIBBggqhkjO\\n"
		  "PQMBBwNCAAR/uRt7IUr/OhL7ULiIK/8T6lNNP8ASkB9EX/4HjBT4SinjN7noEURO\\n"
		  "Q8ieWtjkrjqMxyi3sSlZ4hBD8D2A3ttao1MwUTAdBgNVHQ4EFgQUb2g9waqwLqSa\\n"
		  "xkSxpXLyfaWY9MAwHwYDVR0jBBgwFoAUb2g9waqwLqSaxkSxpXLyfaWY9MAwDwYD\\n"
		  "VR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiEAnfrXf5mYAdZozN0uYsI+\\n"
		  "rtmMzStqbkq+H/qkChdJT9sCIGYbDAXcwNYxdzi1ASRhY+DoeGLxDYm0mk8DUCoZ\\n"
		  "w5Sx\\n"
		  "-----END CERTIFICATE-----\\n\"},\"uplink\":\"eth0\"}",
		  &c, &e, &b),
	    0);
	assert_string_equal(c.uplink, "eth0");
	char *cfg = gw_render(&c);
	assert_non_null(cfg);
	assert_non_null(strstr(cfg, "reject unless { src 0.0.0.0/0 127.0.0.0/8 }"));
	assert_non_null(strstr(cfg,
			       "tcp-request inspect-delay 2s\n\ttcp-request content accept "
			       "if { req.payload(0,8) -m bin 0000000804d2162f }\n\ttcp-request "
			       "content reject\n"));
	assert_non_null(strstr(cfg, "\tbind 0.0.0.0:5433\n"));
	assert_non_null(strstr(cfg, "use_backend replica if { nbsrv(replica) gt 0 }\n\tdefault_"
				    "backend primary\n"));
	assert_non_null(strstr(cfg, "option httpchk HEAD /replica"));
	assert_non_null(strstr(cfg, "check port 8008 check-ssl verify required ca-file " GW_CONF_DIR
				    "/check-ca.pem\n"));
	/* force_tls in both frontends */
	char *p = strstr(cfg, "req.payload");
	assert_non_null(p);
	assert_non_null(strstr(p + 1, "req.payload"));
	free(cfg);

	/* A fresh process: every server of both backends down. */
	char *s0 = gw_state_file(&c, NULL);
	assert_non_null(s0);
	assert_int_equal(strncmp(s0, "1\n# be_id", 9), 0);
	assert_non_null(strstr(s0, "0 primary 0 pg-198.18.1.2-5432 198.18.1.2 0 0 "));
	assert_non_null(strstr(s0, "0 replica 0 pg-198.18.1.3-6432 198.18.1.3 0 0 "));
	free(s0);
	/* After a reload: the saved lines kept (agent port cleared), only
	 * the server new to the process added, down. */
	const char *saved = "1\n# be_id be_name srv_id srv_name ...\n"
			    "3 primary 1 pg-198.18.1.2-5432 198.18.1.2 2 0 1 1 5 6 3 4 6 0 0 0 - "
			    "5432 - 0 8008 - - 8008\n"
			    "4 replica 1 pg-198.18.1.2-5432 198.18.1.2 0 0 1 1 5 6 3 4 6 0 0 0 - "
			    "5432 - 0 8008 - - 8008\n\n";
	char *s1 = gw_state_file(&c, saved);
	assert_non_null(s1);
	assert_non_null(strstr(s1, "3 primary 1 pg-198.18.1.2-5432 198.18.1.2 2 0 1 1 5 6 3 4 6 0 "
				   "0 0 - 5432 - 0 8008 - - 0\n"));
	assert_null(strstr(s1, "0 primary 0 pg-198.18.1.2-5432"));
	assert_non_null(strstr(s1, "0 primary 0 pg-198.18.1.3-6432 198.18.1.3 0 0 "));
	assert_non_null(strstr(s1, "0 replica 0 pg-198.18.1.3-6432 198.18.1.3 0 0 "));
	assert_null(strstr(s1, "\n\n"));
	free(s1);
	json_decref(b);
}

static void test_allow_inside(void **st)
{
	(void)st;
	gw_conf_t c;
	na_err_t e;
	json_t *b;
	/* Inside the overlay (and loopback) needs no TLS. */
	assert_int_equal(parse("{\"port\":5432," BE
			       ",\"allow\":[\"198.18.1.0/25\",\"198.18.1.9\",\"127.0.0.1/32\"]}",
			       &c, &e, &b),
			 0);
	assert_int_equal(c.nallow, 4);
	char *cfg = gw_render(&c);
	assert_non_null(
	    strstr(cfg, "{ src 198.18.1.0/25 198.18.1.9/32 127.0.0.1/32 127.0.0.0/8 }"));
	free(cfg);
	json_decref(b);
	/* A client subnet outside it, with force_tls. */
	assert_int_equal(parse("{\"port\":5432," BE ",\"force_tls\":true,\"allow\":[\"198.51.100."
			       "0/24\"]}",
			       &c, &e, &b),
			 0);
	json_decref(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_full),
	    cmocka_unit_test(test_allow_inside),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
