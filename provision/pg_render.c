/* The postgres role's `postgres` section and the Patroni configuration made
 * from it (pure: tests/unit/test_pg_render.c). JSON is YAML: Patroni reads
 * the dump as patroni.yml, and no YAML quoting can go wrong.
 *
 * Facts the settings build on (notes/postgres-gateway-field-notes.md):
 * ttl 10 / loop_wait 2 / retry_timeout 3 gives a new leader in ~9 s where
 * Patroni's defaults take ~30 s; pg_rewind (with wal_log_hints) lets a
 * failed leader rejoin as a follower; pgpass must be writable by postgres;
 * each member gets its own socket directory. */
#include "netagent/util.h"
#include "netagent/validate.h"
#include "provision/pg.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>

/* What the role sets itself: a parameter of these would fight it. */
static const char *const owned_params[] = {
    "listen_addresses", "port",	       "unix_socket_directories",
    "data_directory",	"hba_file",    "ident_file",
    "config_file",	"ssl",	       "ssl_cert_file",
    "ssl_key_file",	"ssl_ca_file", "wal_log_hints",
};

static int name_ok(const char *s)
{
	size_t n = strlen(s);
	if (!n || n > 63)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		int alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			    (ch >= '0' && ch <= '9');
		if (!alnum && (i == 0 || (ch != '-' && ch != '_' && ch != '.')))
			return 0;
	}
	return 1;
}

static int secret_ok(const char *s)
{
	size_t n = strlen(s);
	if (!n || n > 256)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

/* Hex SHA-256 of label and secret: a password derived for a channel
 * (Raft, the REST API) that the caller did not give its own. */
static void derive(const char *label, const char *secret, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned len = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	EVP_DigestUpdate(ctx, label, strlen(label));
	EVP_DigestUpdate(ctx, ":", 1);
	EVP_DigestUpdate(ctx, secret, strlen(secret));
	EVP_DigestFinal_ex(ctx, md, &len);
	EVP_MD_CTX_free(ctx);
	for (unsigned i = 0; i < len && i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static int no_pass(char *buf, int size, int rw, void *u)
{
	(void)buf, (void)size, (void)rw, (void)u;
	return -1; /* an encrypted key cannot be used unattended */
}

static X509 *pem_cert(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x = b ? PEM_read_bio_X509(b, NULL, no_pass, NULL) : NULL;
	BIO_free(b);
	return x;
}

static EVP_PKEY *pem_key(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, no_pass, NULL) : NULL;
	BIO_free(b);
	return k;
}

static int parse_tls(const json_t *tls, pg_conf_t *c, na_err_t *err)
{
	static const na_field_t f[] = {
	    {"cert", NA_F_STRING, 1, 0, 0},
	    {"key", NA_F_STRING, 1, 0, 0},
	    {"ca", NA_F_STRING, 1, 0, 0},
	};
	if (na_fields_check((json_t *)tls, f, NA_ARRAY_SIZE(f), "postgres.tls.", err) < 0)
		return -1;
	c->cert = json_string_value(json_object_get(tls, "cert"));
	c->key = json_string_value(json_object_get(tls, "key"));
	c->ca = json_string_value(json_object_get(tls, "ca"));
	int rc = -1;
	X509 *x = pem_cert(c->cert), *ca = NULL;
	EVP_PKEY *k = NULL;
	if (!x)
		return na_err_set(err, 422, "invalid_field", "postgres.tls.cert",
				  "postgres.tls.cert is not a PEM certificate");
	if (!(k = pem_key(c->key)))
		na_err_set(err, 422, "invalid_field", "postgres.tls.key",
			   "postgres.tls.key is not an unencrypted PEM private key");
	else if (X509_check_private_key(x, k) != 1)
		na_err_set(err, 422, "invalid_field", "postgres.tls.key",
			   "postgres.tls.key does not match postgres.tls.cert");
	else if (!(ca = pem_cert(c->ca)))
		na_err_set(err, 422, "invalid_field", "postgres.tls.ca",
			   "postgres.tls.ca is not a PEM certificate");
	else
		rc = 0;
	X509_free(ca);
	EVP_PKEY_free(k);
	X509_free(x);
	return rc;
}

static int parse_members(const json_t *m, const char *subnet, pg_conf_t *c, na_err_t *err)
{
	na_addr_t net, self;
	int have_net = subnet[0] && na_addr_parse(subnet, 1, &net) == 0;
	size_t i, n = json_array_size(m);
	json_t *v;
	char field[48];
	if (!n || n > PG_MAX_MEMBERS)
		return na_err_set(err, 422, "invalid_field", "postgres.members",
				  "postgres.members must list 1 to %d member addresses",
				  PG_MAX_MEMBERS);
	na_addr_parse(c->ip, 0, &self);
	int found = 0;
	json_array_foreach(m, i, v)
	{
		snprintf(field, sizeof(field), "postgres.members[%zu]", i);
		na_addr_t a;
		const char *s = json_string_value(v);
		if (!s || na_addr_parse(s, 0, &a) < 0 || a.family != AF_INET ||
		    !na_addr_unicast(&a))
			return na_err_set(err, 422, "invalid_field", field,
					  "%s must be an IPv4 address without a prefix length",
					  field);
		if (have_net && !na_addr_in(&a, &net))
			return na_err_set(err, 422, "invalid_field", field,
					  "%s (%s) is outside the network's subnet %s", field, s,
					  subnet);
		na_addr_fmt_ip(&a, c->members[c->nmembers], sizeof(c->members[0]));
		for (size_t k = 0; k < c->nmembers; k++)
			if (!strcmp(c->members[k], c->members[c->nmembers]))
				return na_err_set(err, 422, "invalid_field", field,
						  "%s repeats member %s", field, s);
		found |= na_addr_eq(&a, &self);
		c->nmembers++;
	}
	if (!found)
		return na_err_set(err, 422, "invalid_field", "postgres.members",
				  "postgres.members must include the container's own address %s",
				  c->ip);
	return 0;
}

static int parse_params(const json_t *p, pg_conf_t *c, na_err_t *err)
{
	const char *k;
	json_t *v;
	char field[96];
	if (!p)
		return 0;
	json_object_foreach((json_t *)p, k, v)
	{
		snprintf(field, sizeof(field), "postgres.parameters.%.60s", k);
		int ok = *k != 0;
		for (const char *q = k; *q; q++)
			ok &= (*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') || *q == '_' ||
			      *q == '.';
		if (!ok)
			return na_err_set(err, 422, "invalid_field", "postgres.parameters",
					  "postgres.parameters: \"%.60s\" is not a PostgreSQL "
					  "setting name",
					  k);
		if (!json_is_string(v))
			return na_err_set(err, 422, "invalid_field", field,
					  "%s must be a string (PostgreSQL's own syntax, e.g. "
					  "\"64MB\")",
					  field);
		for (size_t i = 0; i < NA_ARRAY_SIZE(owned_params); i++)
			if (!strcmp(k, owned_params[i]))
				return na_err_set(err, 422, "invalid_field", field,
						  "%s is set by the postgres role", field);
	}
	c->parameters = p;
	return 0;
}

static int parse_timing(const json_t *p, pg_conf_t *c, na_err_t *err)
{
	static const na_field_t f[] = {
	    {"ttl", NA_F_INT, 0, 5, 3600},
	    {"loop_wait", NA_F_INT, 0, 1, 600},
	    {"retry_timeout", NA_F_INT, 0, 1, 600},
	    {"maximum_lag_on_failover", NA_F_INT, 0, 0, 1LL << 40},
	};
	c->ttl = 10;
	c->loop_wait = 2;
	c->retry_timeout = 3;
	c->max_lag = 1048576;
	if (!p)
		return 0;
	if (na_fields_check((json_t *)p, f, NA_ARRAY_SIZE(f), "postgres.patroni.", err) < 0)
		return -1;
	json_t *v;
	if ((v = json_object_get(p, "ttl")))
		c->ttl = json_integer_value(v);
	if ((v = json_object_get(p, "loop_wait")))
		c->loop_wait = json_integer_value(v);
	if ((v = json_object_get(p, "retry_timeout")))
		c->retry_timeout = json_integer_value(v);
	if ((v = json_object_get(p, "maximum_lag_on_failover")))
		c->max_lag = json_integer_value(v);
	/* Patroni's own rule, else a leader can lose its lock while it is
	 * still retrying the DCS. */
	if (c->loop_wait + 2 * c->retry_timeout > c->ttl)
		return na_err_set(err, 422, "invalid_field", "postgres.patroni.ttl",
				  "postgres.patroni: loop_wait + 2 * retry_timeout (%lld) must not "
				  "exceed ttl (%lld)",
				  c->loop_wait + 2 * c->retry_timeout, c->ttl);
	return 0;
}

int pg_parse(const json_t *pg, const char *ip, const char *subnet, pg_conf_t *c, na_err_t *err)
{
	static const na_field_t f[] = {
	    {"cluster", NA_F_STRING, 1, 0, 0},
	    {"node", NA_F_STRING, 1, 0, 0},
	    {"members", NA_F_ARRAY, 1, 0, 0},
	    {"superuser_password", NA_F_STRING, 1, 0, 0},
	    {"replication_password", NA_F_STRING, 1, 0, 0},
	    {"raft_password", NA_F_STRING, 0, 0, 0},
	    {"tls", NA_F_OBJECT, 0, 0, 0},
	    {"synchronous", NA_F_BOOL, 0, 0, 0},
	    {"parameters", NA_F_OBJECT, 0, 0, 0},
	    {"patroni", NA_F_OBJECT, 0, 0, 0},
	    /* Kept for the backup side (backup_*.c, pg_backrest.c). */
	    {"backups", NA_F_OBJECT, 0, 0, 0},
	    {"pitr", NA_F_OBJECT, 0, 0, 0},
	    {"restore", NA_F_OBJECT, 0, 0, 0},
	};
	memset(c, 0, sizeof(*c));
	if (na_fields_check((json_t *)pg, f, NA_ARRAY_SIZE(f), "postgres.", err) < 0)
		return -1;
	c->cluster = json_string_value(json_object_get(pg, "cluster"));
	c->node = json_string_value(json_object_get(pg, "node"));
	c->su_pw = json_string_value(json_object_get(pg, "superuser_password"));
	c->repl_pw = json_string_value(json_object_get(pg, "replication_password"));
	if (!name_ok(c->cluster))
		return na_err_set(err, 422, "invalid_name", "postgres.cluster",
				  "postgres.cluster must be 1-63 of [A-Za-z0-9_.-], starting with "
				  "a letter or digit");
	if (!name_ok(c->node))
		return na_err_set(err, 422, "invalid_name", "postgres.node",
				  "postgres.node must be 1-63 of [A-Za-z0-9_.-], starting with a "
				  "letter or digit");
	if (!secret_ok(c->su_pw))
		return na_err_set(err, 422, "invalid_field", "postgres.superuser_password",
				  "postgres.superuser_password must be 1-256 printable characters");
	if (!secret_ok(c->repl_pw))
		return na_err_set(err, 422, "invalid_field", "postgres.replication_password",
				  "postgres.replication_password must be 1-256 printable "
				  "characters");
	const char *rp = json_string_value(json_object_get(pg, "raft_password"));
	if (rp && !secret_ok(rp))
		return na_err_set(err, 422, "invalid_field", "postgres.raft_password",
				  "postgres.raft_password must be 1-256 printable characters");
	na_addr_t self;
	if (!ip || na_addr_parse(ip, -1, &self) < 0)
		return na_err_set(err, 422, "missing_field", "networks[0].ip",
				  "role postgres needs its overlay address in networks[0].ip "
				  "(the members list names it)");
	na_addr_fmt_ip(&self, c->ip, sizeof(c->ip));
	snprintf(c->subnet, sizeof(c->subnet), "%s", subnet ? subnet : "");
	if (parse_members(json_object_get(pg, "members"), c->subnet, c, err) < 0 ||
	    parse_params(json_object_get(pg, "parameters"), c, err) < 0 ||
	    parse_timing(json_object_get(pg, "patroni"), c, err) < 0)
		return -1;
	json_t *tls = json_object_get(pg, "tls");
	if (tls && parse_tls(tls, c, err) < 0)
		return -1;
	json_t *sync = json_object_get(pg, "synchronous");
	c->synchronous = sync ? json_is_true(sync) : c->nmembers >= 3;
	if (rp)
		snprintf(c->raft_pw, sizeof(c->raft_pw), "%.64s", rp);
	else
		derive("raft", c->repl_pw, c->raft_pw);
	derive("restapi", c->su_pw, c->api_pw);
	return 0;
}

/* ---- render ------------------------------------------------------------------------ */

static json_t *hba(const pg_conf_t *c)
{
	const char *h = c->cert ? "hostssl" : "host";
	char line[160];
	json_t *a = json_array();
	/* The agent's jobs (pv_exec: pg_dumpall, psql) run as postgres on
	 * the socket; Patroni's own connections too. */
	json_array_append_new(a, json_string("local all all peer"));
	json_array_append_new(a, json_string("host all all 127.0.0.1/32 scram-sha-256"));
	/* Patroni reads its own timeline over a replication connection to
	 * localhost (pg_rewind's check); loopback never leaves the container. */
	json_array_append_new(
	    a, json_string("host replication replicator 127.0.0.1/32 scram-sha-256"));
	if (c->subnet[0]) {
		snprintf(line, sizeof(line), "%s replication replicator %s scram-sha-256", h,
			 c->subnet);
		json_array_append_new(a, json_string(line));
		snprintf(line, sizeof(line), "%s all all %s scram-sha-256", h, c->subnet);
		json_array_append_new(a, json_string(line));
	} else {
		/* The subnet is not known (cannot happen once validated):
		 * the members only. */
		for (size_t i = 0; i < c->nmembers; i++) {
			snprintf(line, sizeof(line),
				 "%s replication replicator %s/32 scram-sha-256", h, c->members[i]);
			json_array_append_new(a, json_string(line));
		}
	}
	return a;
}

static json_t *params(const pg_conf_t *c)
{
	json_t *p = json_pack("{s:s, s:s}", "unix_socket_directories", PG_SOCKET_DIR,
			      "wal_log_hints", "on");
	if (c->cert) {
		json_object_set_new(p, "ssl", json_string("on"));
		json_object_set_new(p, "ssl_cert_file", json_string(PG_CONF_DIR "/server.crt"));
		json_object_set_new(p, "ssl_key_file", json_string(PG_CONF_DIR "/server.key"));
		json_object_set_new(p, "ssl_ca_file", json_string(PG_CONF_DIR "/ca.crt"));
	}
	return p;
}

/* Cluster-wide settings: Patroni's dynamic configuration, where settings
 * that must agree across members (max_connections and the other command
 * line ones: Patroni takes those from there only) live and where a change
 * reaches every member, with pending_restart where PostgreSQL needs one.
 * The caller's parameters over the role's. */
static json_t *dcs_params(const pg_conf_t *c)
{
	json_t *p =
	    json_pack("{s:s, s:s, s:s, s:i, s:i}", "wal_level", "replica", "hot_standby", "on",
		      "wal_log_hints", "on", "max_wal_senders", 10, "max_replication_slots", 10);
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)c->parameters, k, v) json_object_set(p, k, v);
	return p;
}

json_t *pg_render(const pg_conf_t *c)
{
	char buf[128];
	json_t *root = json_object();
	json_object_set_new(root, "scope", json_string(c->cluster));
	json_object_set_new(root, "name", json_string(c->node));
	json_object_set_new(root, "log", json_pack("{s:s}", "level", "INFO"));

	snprintf(buf, sizeof(buf), "%s:%d", c->ip, PG_API_PORT);
	json_t *api = json_pack("{s:s, s:s}", "listen", buf, "connect_address", buf);
	/* Unsafe methods (switchover, reload, reinitialize) need the
	 * password only the agent knows; GET/HEAD checks stay open. */
	json_object_set_new(
	    api, "authentication",
	    json_pack("{s:s, s:s}", "username", PG_API_USER, "password", c->api_pw));
	if (c->cert) {
		json_object_set_new(api, "certfile", json_string(PG_CONF_DIR "/server.crt"));
		json_object_set_new(api, "keyfile", json_string(PG_CONF_DIR "/server.key"));
		json_object_set_new(api, "cafile", json_string(PG_CONF_DIR "/ca.crt"));
		/* Patroni asking another member's REST API (leader race,
		 * switchover) verifies it with the cluster's CA. */
		json_object_set_new(root, "ctl",
				    json_pack("{s:s, s:s, s:s, s:b}", "cacert",
					      PG_CONF_DIR "/ca.crt", "certfile",
					      PG_CONF_DIR "/server.crt", "keyfile",
					      PG_CONF_DIR "/server.key", "insecure", 0));
	}
	json_object_set_new(root, "restapi", api);

	json_t *partners = json_array();
	for (size_t i = 0; i < c->nmembers; i++) {
		if (!strcmp(c->members[i], c->ip))
			continue;
		snprintf(buf, sizeof(buf), "%s:%d", c->members[i], PG_RAFT_PORT);
		json_array_append_new(partners, json_string(buf));
	}
	snprintf(buf, sizeof(buf), "%s:%d", c->ip, PG_RAFT_PORT);
	json_t *raft = json_pack("{s:s, s:s, s:o}", "data_dir", PG_RAFT_DIR, "self_addr", buf,
				 "partner_addrs", partners);
	if (c->cert)
		json_object_set_new(raft, "password", json_string(c->raft_pw));
	json_object_set_new(root, "raft", raft);

	json_t *dcs = json_pack(
	    "{s:I, s:I, s:I, s:I, s:b, s:{s:b, s:b, s:o}}", "ttl", (json_int_t)c->ttl, "loop_wait",
	    (json_int_t)c->loop_wait, "retry_timeout", (json_int_t)c->retry_timeout,
	    "maximum_lag_on_failover", (json_int_t)c->max_lag, "synchronous_mode", c->synchronous,
	    "postgresql", "use_pg_rewind", 1, "use_slots", 1, "parameters", dcs_params(c));
	json_object_set_new(root, "bootstrap",
			    json_pack("{s:o, s:[{s:s}, s]}", "dcs", dcs, "initdb", "encoding",
				      "UTF8", "data-checksums"));

	json_t *pg = json_object();
	snprintf(buf, sizeof(buf), "%s,127.0.0.1:%d", c->ip, PG_PORT);
	json_object_set_new(pg, "listen", json_string(buf));
	snprintf(buf, sizeof(buf), "%s:%d", c->ip, PG_PORT);
	json_object_set_new(pg, "connect_address", json_string(buf));
	json_object_set_new(pg, "data_dir", json_string(PG_DATA_DIR));
	json_object_set_new(pg, "bin_dir", json_string(PG_BIN_DIR));
	/* HOME is the read-only volume root's parent on a fresh start; /tmp
	 * is the container's own. */
	json_object_set_new(pg, "pgpass", json_string("/tmp/pgpass"));
	json_object_set_new(pg, "use_unix_socket", json_true());
	json_t *repl = json_pack("{s:s, s:s}", "username", "replicator", "password", c->repl_pw);
	if (c->cert) {
		json_object_set_new(repl, "sslmode", json_string("verify-ca"));
		json_object_set_new(repl, "sslrootcert", json_string(PG_CONF_DIR "/ca.crt"));
	}
	json_object_set_new(pg, "authentication",
			    json_pack("{s:{s:s, s:s}, s:o}", "superuser", "username", "postgres",
				      "password", c->su_pw, "replication", repl));
	json_object_set_new(pg, "parameters", params(c));
	json_object_set_new(pg, "pg_hba", hba(c));
	json_object_set_new(root, "postgresql", pg);
	json_object_set_new(root, "watchdog", json_pack("{s:s}", "mode", "off"));
	json_object_set_new(root, "tags",
			    json_pack("{s:b, s:b, s:b, s:b}", "nofailover", 0, "noloadbalance", 0,
				      "clonefrom", 0, "nosync", 0));
	return root;
}
