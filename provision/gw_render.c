/* The gateway's `gateway` section and the HAProxy files made from it. Pure
 * functions: tests/unit/test_gw_render.c runs them without a kernel. */
#include "netagent/util.h"
#include "netagent/validate.h"
#include "provision/gw.h"

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The 8 bytes a PostgreSQL client that wants TLS opens with: length 8,
 * code 80877103. */
#define SSL_REQUEST_HEX "0000000804d2162f"

static int parse_port(const json_t *v, const char *field, int def, int *out, na_err_t *err)
{
	if (!v) {
		if (def)
			*out = def;
		else
			return na_err_set(err, 422, "missing_field", field, "%s is required",
					  field);
		return 0;
	}
	if (!json_is_integer(v))
		return na_err_set(err, 422, "invalid_field", field, "%s must be an integer", field);
	json_int_t p = json_integer_value(v);
	if (p < 1 || p > 65535)
		return na_err_set(err, 422, "out_of_range", field,
				  "%s must be between 1 and 65535, got %lld", field, (long long)p);
	*out = (int)p;
	return 0;
}

static void nets_text(const na_addr_t *nets, size_t n, char *buf, size_t len)
{
	buf[0] = 0;
	for (size_t i = 0; i < n; i++) {
		char a[NA_ADDR_STRLEN];
		na_addr_fmt(&nets[i], a, sizeof(a));
		snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", i ? ", " : "", a);
	}
	if (!n)
		snprintf(buf, len, "none: a gateway needs a network");
}

static int in_nets(const na_addr_t *a, const na_addr_t *nets, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (a->family == nets[i].family && na_addr_in(a, &nets[i]) &&
		    (a->plen < 0 || a->plen >= nets[i].plen))
			return 1;
	return 0;
}

static int is_loopback(const na_addr_t *a)
{
	if (a->family == AF_INET)
		return a->plen >= 8 && a->u.b[0] == 127;
	return a->plen == 128 && IN6_IS_ADDR_LOOPBACK(&a->u.v6);
}

static int host_bits_zero(const na_addr_t *a)
{
	size_t len = na_addr_len(a);
	for (size_t bit = (size_t)a->plen; bit < len * 8; bit++)
		if (a->u.b[bit / 8] & (0x80 >> (bit % 8)))
			return 0;
	return 1;
}

static int parse_backends(const json_t *arr, const na_addr_t *nets, size_t nnets, int known,
			  gw_conf_t *c, na_err_t *err)
{
	static const na_field_t f[] = {
	    {"address", NA_F_STRING, 1, 0, 0},
	    {"port", NA_F_INT, 0, 0, 0},
	    {"check_port", NA_F_INT, 0, 0, 0},
	};
	size_t i, n = json_array_size(arr);
	json_t *v;
	char pre[40], field[64], nt[256];
	if (!n)
		return na_err_set(err, 422, "invalid_field", "gateway.backends",
				  "gateway.backends must list at least one backend");
	if (n > GW_MAX_BACKENDS)
		return na_err_set(err, 422, "invalid_field", "gateway.backends",
				  "gateway.backends has %zu entries (at most %d)", n,
				  GW_MAX_BACKENDS);
	json_array_foreach(arr, i, v)
	{
		gw_backend_t *b = &c->be[i];
		snprintf(pre, sizeof(pre), "gateway.backends[%zu].", i);
		if (na_fields_check(v, f, NA_ARRAY_SIZE(f), pre, err) < 0)
			return -1;
		snprintf(field, sizeof(field), "%saddress", pre);
		const char *s = json_string_value(json_object_get(v, "address"));
		if (na_addr_parse(s, 0, &b->addr) < 0 || !na_addr_unicast(&b->addr))
			return na_err_set(err, 422, "invalid_field", field,
					  "%s must be a unicast IP address like 198.18.1.2", field);
		if (known && !in_nets(&b->addr, nets, nnets)) {
			nets_text(nets, nnets, nt, sizeof(nt));
			return na_err_set(err, 422, "invalid_field", field,
					  "%s %s is outside the container's networks (%s)", field,
					  s, nt);
		}
		snprintf(field, sizeof(field), "%sport", pre);
		if (parse_port(json_object_get(v, "port"), field, 5432, &b->port, err) < 0)
			return -1;
		snprintf(field, sizeof(field), "%scheck_port", pre);
		if (parse_port(json_object_get(v, "check_port"), field, 8008, &b->check_port, err) <
		    0)
			return -1;
		for (size_t k = 0; k < i; k++)
			if (na_addr_eq(&c->be[k].addr, &b->addr) && c->be[k].port == b->port)
				return na_err_set(err, 422, "invalid_field", "gateway.backends",
						  "gateway.backends[%zu] repeats backends[%zu] "
						  "(%s port %d)",
						  i, k, s, b->port);
		c->nbe++;
	}
	return 0;
}

static int parse_allow(const json_t *arr, const na_addr_t *nets, size_t nnets, int known,
		       gw_conf_t *c, na_err_t *err)
{
	size_t i, n = json_array_size(arr);
	json_t *v;
	char field[40], nt[256];
	if (!arr) {
		/* The container's own networks, and loopback (the VIP's checks
		 * and netagentctl exec inside the container). */
		for (i = 0; i < nnets && c->nallow < GW_MAX_ALLOW; i++)
			c->allow[c->nallow++] = nets[i];
		na_addr_parse("127.0.0.0/8", 1, &c->allow[c->nallow++]);
		return 0;
	}
	if (!n)
		return na_err_set(err, 422, "invalid_field", "gateway.allow",
				  "gateway.allow must list at least one CIDR (omit it for the "
				  "container's networks)");
	if (n > GW_MAX_ALLOW)
		return na_err_set(err, 422, "invalid_field", "gateway.allow",
				  "gateway.allow has %zu entries (at most %d)", n, GW_MAX_ALLOW);
	c->allow_given = 1;
	json_array_foreach(arr, i, v)
	{
		na_addr_t *a = &c->allow[i];
		snprintf(field, sizeof(field), "gateway.allow[%zu]", i);
		const char *s = json_string_value(v);
		if (!s || na_addr_parse(s, -1, a) < 0)
			return na_err_set(err, 422, "invalid_field", field,
					  "%s must be a CIDR like 198.51.100.0/24", field);
		if (a->plen < 0)
			a->plen = (int)na_addr_len(a) * 8;
		if (!host_bits_zero(a))
			return na_err_set(err, 422, "invalid_field", field,
					  "%s %s has host bits set (give the network address)",
					  field, s);
		if (known && !c->force_tls && !is_loopback(a) && !in_nets(a, nets, nnets)) {
			nets_text(nets, nnets, nt, sizeof(nt));
			return na_err_set(err, 422, "tls_required", field,
					  "%s %s reaches beyond the container's networks (%s): "
					  "TLS must be forced to be reachable from outside (set "
					  "gateway.force_tls)",
					  field, s, nt);
		}
		c->nallow++;
	}
	/* Loopback stays: checks and `netagentctl exec` inside the container. */
	na_addr_parse("127.0.0.0/8", 1, &c->allow[c->nallow++]);
	return 0;
}

static int parse_ca(const json_t *t, gw_conf_t *c, na_err_t *err)
{
	static const na_field_t f[] = {{"ca", NA_F_STRING, 1, 0, 0}};
	if (!t)
		return 0;
	if (na_fields_check((json_t *)t, f, NA_ARRAY_SIZE(f), "gateway.check_tls.", err) < 0)
		return -1;
	const char *pem = json_string_value(json_object_get(t, "ca"));
	BIO *bio = BIO_new_mem_buf(pem, (int)strlen(pem));
	X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	int good = x != NULL;
	X509_free(x);
	BIO_free(bio);
	if (!good)
		return na_err_set(err, 422, "invalid_field", "gateway.check_tls.ca",
				  "gateway.check_tls.ca must be a PEM certificate");
	c->ca = pem;
	return 0;
}

static int parse_uplink(const json_t *u, gw_conf_t *c, na_err_t *err)
{
	const char *s = json_string_value(u);
	if (!u)
		return 0;
	size_t n = strlen(s);
	int bad = n == 0 || n >= sizeof(c->uplink) || !strcmp(s, ".") || !strcmp(s, "..");
	for (const char *p = s; !bad && *p; p++)
		bad = *p == '/' || *p == ':' || (unsigned char)*p <= ' ' || *p == 0x7f;
	if (bad)
		return na_err_set(err, 422, "invalid_field", "gateway.uplink",
				  "gateway.uplink must be an interface name (1-15 characters, "
				  "no '/', ':' or spaces)");
	snprintf(c->uplink, sizeof(c->uplink), "%s", s);
	return 0;
}

int gw_parse(const json_t *gw, const na_addr_t *nets, size_t nnets, int known, gw_conf_t *c,
	     na_err_t *err)
{
	static const na_field_t f[] = {
	    {"port", NA_F_INT, 1, 0, 0},	 {"replica_port", NA_F_INT, 0, 0, 0},
	    {"backends", NA_F_ARRAY, 1, 0, 0},	 {"allow", NA_F_ARRAY, 0, 0, 0},
	    {"force_tls", NA_F_BOOL, 0, 0, 0},	 {"uplink", NA_F_STRING, 0, 0, 0},
	    {"check_tls", NA_F_OBJECT, 0, 0, 0},
	};
	memset(c, 0, sizeof(*c));
	if (!gw)
		return na_err_set(err, 422, "missing_field", "gateway",
				  "gateway is required for role gateway");
	if (!json_is_object(gw))
		return na_err_set(err, 422, "invalid_field", "gateway",
				  "gateway must be an object");
	if (na_fields_check((json_t *)gw, f, NA_ARRAY_SIZE(f), "gateway.", err) < 0 ||
	    parse_port(json_object_get(gw, "port"), "gateway.port", 0, &c->port, err) < 0)
		return -1;
	json_t *rp = json_object_get(gw, "replica_port");
	if (rp && parse_port(rp, "gateway.replica_port", 0, &c->replica_port, err) < 0)
		return -1;
	if (c->replica_port == c->port)
		return na_err_set(err, 422, "invalid_field", "gateway.replica_port",
				  "gateway.replica_port must differ from gateway.port (%d)",
				  c->port);
	c->force_tls = json_is_true(json_object_get(gw, "force_tls"));
	if (parse_backends(json_object_get(gw, "backends"), nets, nnets, known, c, err) < 0 ||
	    parse_allow(json_object_get(gw, "allow"), nets, nnets, known, c, err) < 0 ||
	    parse_ca(json_object_get(gw, "check_tls"), c, err) < 0 ||
	    parse_uplink(json_object_get(gw, "uplink"), c, err) < 0)
		return -1;
	return 0;
}

/* ---- rendering ------------------------------------------------------------ */

typedef struct sbuf {
	char *p;
	size_t len, cap;
	int oom;
} sbuf_t;

__attribute__((format(printf, 2, 3))) static void put(sbuf_t *b, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		size_t room = b->cap - b->len;
		va_start(ap, fmt);
		int n = b->oom ? 0 : vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (b->oom || n < 0)
			return;
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = (b->cap ? b->cap : 1024) * 2 + (size_t)n;
		char *np = realloc(b->p, cap);
		if (!np) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
}

static char *done(sbuf_t *b)
{
	if (b->oom) {
		free(b->p);
		return NULL;
	}
	return b->p;
}

void gw_server_name(const gw_backend_t *b, char *buf, size_t n)
{
	char a[NA_ADDR_STRLEN];
	na_addr_fmt_ip(&b->addr, a, sizeof(a));
	for (char *p = a; *p; p++)
		if (*p == ':')
			*p = '_';
	snprintf(buf, n, "pg-%s-%d", a, b->port);
}

static void frontend(sbuf_t *b, const gw_conf_t *c, const char *name, int port)
{
	put(b, "\nfrontend %s\n", name);
	/* Every address of the container: overlay IP, the VIP on the uplink,
	 * loopback. */
	put(b, "\tbind 0.0.0.0:%d\n", port);
	put(b, "\ttcp-request connection reject unless { src");
	for (size_t i = 0; i < c->nallow; i++) {
		char a[NA_ADDR_STRLEN];
		na_addr_fmt(&c->allow[i], a, sizeof(a));
		put(b, " %s", a);
	}
	put(b, " }\n");
	if (c->force_tls) {
		/* A client that does not open with the SSLRequest would go on
		 * in clear text: refused before a byte reaches a server. */
		put(b, "\ttcp-request inspect-delay 2s\n");
		put(b, "\ttcp-request content accept if { req.payload(0,8) -m bin " SSL_REQUEST_HEX
		       " }\n");
		put(b, "\ttcp-request content reject\n");
	}
}

static void backend(sbuf_t *b, const gw_conf_t *c, const char *name, const char *path,
		    const char *balance)
{
	put(b, "\nbackend %s\n", name);
	put(b, "\tbalance %s\n", balance);
	/* HEAD: Patroni answers with the same status as GET and logs no
	 * traceback per check. */
	put(b, "\toption httpchk HEAD %s\n", path);
	put(b, "\thttp-check expect status 200\n");
	/* Patroni keeps answering 200 on /primary while it demotes (its role
	 * changes once PostgreSQL runs as a replica, seconds after it stopped
	 * accepting): a connection the old leader refuses marks it down at
	 * once, and the retry goes to a server still up. A server that is down
	 * is checked every 250 ms, so a new leader takes connections a quarter
	 * of a second after Patroni calls it primary. */
	put(b,
	    "\tdefault-server inter 1s fastinter 250ms downinter 250ms fall 2 rise 1 "
	    "on-marked-down shutdown-sessions observe layer4 error-limit 1 on-error mark-down\n");
	put(b, "\tretries 2\n");
	put(b, "\toption redispatch 1\n");
	for (size_t i = 0; i < c->nbe; i++) {
		char sn[80], a[NA_ADDR_STRLEN];
		gw_server_name(&c->be[i], sn, sizeof(sn));
		na_addr_fmt_ip(&c->be[i].addr, a, sizeof(a));
		put(b, "\tserver %s %s%s%s:%d check port %d", sn,
		    c->be[i].addr.family == AF_INET6 ? "[" : "", a,
		    c->be[i].addr.family == AF_INET6 ? "]" : "", c->be[i].port,
		    c->be[i].check_port);
		if (c->ca)
			put(b, " check-ssl verify required ca-file " GW_CONF_DIR "/check-ca.pem");
		put(b, "\n");
	}
}

char *gw_render(const gw_conf_t *c)
{
	sbuf_t b = {0};
	put(&b, "# Rendered by netagent (role gateway); rewritten on every change.\n");
	put(&b, "global\n");
	put(&b, "\tmaster-worker\n");
	/* expose-fd listeners: the new worker of a reload takes the listening
	 * sockets over, so no connection is refused while it starts. */
	put(&b, "\tstats socket " GW_ADMIN_DIR "/admin.sock mode 600 level admin expose-fd "
		"listeners\n");
	put(&b, "\tserver-state-file " GW_ADMIN_DIR "/servers.state\n");
	/* A pre-reload process runs no checks, so shutdown-sessions does not
	 * cover its sessions: they end at the latest with the idle timeout. */
	put(&b, "\thard-stop-after 30m\n");
	put(&b, "\ndefaults\n");
	put(&b, "\tmode tcp\n");
	put(&b, "\ttimeout connect 2s\n");
	put(&b, "\ttimeout client 30m\n");
	put(&b, "\ttimeout server 30m\n");
	put(&b, "\ttimeout check 1s\n");
	/* Right after a start or reload a server counts as up until its
	 * checks fail: the saved state keeps a follower down instead. */
	put(&b, "\tload-server-state-from-file global\n");
	frontend(&b, c, "fe_primary", c->port);
	put(&b, "\tdefault_backend primary\n");
	backend(&b, c, "primary", "/primary", "first");
	if (c->replica_port) {
		frontend(&b, c, "fe_replica", c->replica_port);
		/* Reads go to the leader while no follower is healthy. */
		put(&b, "\tuse_backend replica if { nbsrv(replica) gt 0 }\n");
		put(&b, "\tdefault_backend primary\n");
		backend(&b, c, "replica", "/replica", "leastconn");
	}
	return done(&b);
}

/* ---- server state ----------------------------------------------------------- */

static int saved_has(const char *saved, const char *be, const char *srv)
{
	size_t lb = strlen(be), ls = strlen(srv);
	for (const char *l = saved; l && *l;) {
		const char *e = strchr(l, '\n');
		size_t n = e ? (size_t)(e - l) : strlen(l);
		/* "<be_id> <be_name> <srv_id> <srv_name> ..." */
		const char *p = memchr(l, ' ', n);
		if (p && (size_t)(l + n - p) > lb + 1 && !strncmp(p + 1, be, lb) &&
		    p[1 + lb] == ' ') {
			const char *q = memchr(p + 2 + lb, ' ', (size_t)(l + n - (p + 2 + lb)));
			if (q && (size_t)(l + n - q) > ls + 1 && !strncmp(q + 1, srv, ls) &&
			    (q[1 + ls] == ' ' || q + 1 + ls == l + n))
				return 1;
		}
		l = e ? e + 1 : l + n;
	}
	return 0;
}

char *gw_state_file(const gw_conf_t *c, const char *saved)
{
	sbuf_t b = {0};
	static const char *const names[] = {"primary", "replica"};
	if (saved && !strncmp(saved, "1\n", 2)) {
		/* Line by line, without the empty line that ends the answer,
		 * and with srv_agent_port (the last field) 0: HAProxy reports
		 * the check port there and then warns that agent checks are
		 * off when loading it. */
		for (const char *l = saved; *l;) {
			const char *e = strchr(l, '\n');
			int n = e ? (int)(e - l) : (int)strlen(l);
			const char *sp = memrchr(l, ' ', (size_t)n);
			if (n && (*l == '#' || n < 2 || !sp))
				put(&b, "%.*s\n", n, l);
			else if (n)
				put(&b, "%.*s 0\n", (int)(sp - l), l);
			l = e ? e + 1 : l + n;
		}
	} else {
		saved = NULL;
		put(&b, "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state "
			"srv_uweight srv_iweight srv_time_since_last_change srv_check_status "
			"srv_check_result srv_check_health srv_check_state srv_agent_state "
			"bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl "
			"srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n");
	}
	for (size_t k = 0; k < (c->replica_port ? 2u : 1u); k++)
		for (size_t i = 0; i < c->nbe; i++) {
			char sn[80], a[NA_ADDR_STRLEN];
			gw_server_name(&c->be[i], sn, sizeof(sn));
			if (saved_has(saved, names[k], sn))
				continue;
			na_addr_fmt_ip(&c->be[i].addr, a, sizeof(a));
			/* ids 0 (not forced): matched by backend and server name;
			 * op_state 0 = stopped, check health 0: down until the
			 * first check passes (rise 1). */
			put(&b, "0 %s 0 %s %s 0 0 1 1 0 8 2 0 6 0 0 0 - %d - 0 %d - - 0\n",
			    names[k], sn, a, c->be[i].port, c->be[i].check_port);
		}
	return done(&b);
}
