/* The session's life: open (endpoints, TLS material read once, nobody
 * contacted), close (watches and keepers end silently, pending calls get
 * "cancelled", libcurl and the uv handles go, the memory last), and what
 * GET /v1/host shows of it. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "netagent/etcd_int.h"
#include "netagent/log.h"
#include "netagent/util.h"

#define PEM_MAX (1u << 20)

static int add_endpoint(na_etcd_t *e, const char *s, size_t len, na_err_t *err)
{
	char u[257];
	while (len && isspace((unsigned char)*s))
		s++, len--;
	while (len && (isspace((unsigned char)s[len - 1]) || s[len - 1] == '/'))
		len--;
	if (!len)
		return 0;
	if (e->neps == ETCD_MAX_EPS)
		return na_err_set(err, 422, "invalid_field", "etcd", "more than %d etcd endpoints",
				  ETCD_MAX_EPS);
	if (len >= sizeof(u))
		return na_err_set(err, 422, "invalid_field", "etcd", "etcd endpoint too long");
	memcpy(u, s, len);
	u[len] = '\0';
	for (size_t i = 0; i < len; i++)
		if (isspace((unsigned char)u[i]) || !isprint((unsigned char)u[i]) || u[i] == '?' ||
		    u[i] == '#' || u[i] == '@')
			return na_err_set(err, 422, "invalid_field", "etcd",
					  "invalid etcd endpoint '%s'", u);
	const char *sep = strstr(u, "://");
	if (sep && strncmp(u, "http://", 7) && strncmp(u, "https://", 8))
		return na_err_set(err, 422, "invalid_field", "etcd",
				  "etcd endpoint '%s': only http:// and https:// are supported", u);
	const char *host = sep ? sep + 3 : u;
	/* a path would be glued to /v3/…: only scheme://host[:port] */
	const char *close = *host == '[' ? strchr(host, ']') : NULL;
	const char *colon = strrchr(close ? close : host, ':');
	char *end = NULL;
	long port = colon ? strtol(colon + 1, &end, 10) : 0;
	if (!*host || strchr(host, '/') || *host == ':' || (*host == '[' && !close) ||
	    (colon && (!colon[1] || *end || port < 1 || port > 65535)))
		return na_err_set(err, 422, "invalid_field", "etcd", "invalid etcd endpoint '%s'",
				  u);
	char *ep = NULL;
	if (asprintf(&ep, "%s%s", sep ? "" : "http://", u) < 0)
		return na_err_errno(err, ENOMEM, "etcd endpoint");
	e->eps[e->neps].url = ep;
	e->eps[e->neps].state = -1;
	e->neps++;
	return 0;
}

/* Whole PEM file into memory, at start (before the loop runs). O_NONBLOCK:
 * a FIFO given by mistake must not hang the start; only regular files. */
static int read_pem(const char *path, const char *field, char **out, size_t *len, na_err_t *err)
{
	cleanup_close int fd = -1;
	struct stat st;

	*out = NULL;
	*len = 0;
	if (!path)
		return 0;
	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return na_err_set(err, 422, "invalid_field", field, "--%s %s: %s", field, path,
				  strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
	    st.st_size > (off_t)PEM_MAX)
		return na_err_set(err, 422, "invalid_field", field,
				  "--%s %s: not a regular, non-empty file below %u bytes", field,
				  path, PEM_MAX);
	char *buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return na_err_errno(err, ENOMEM, "--%s", field);
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			free(buf);
			return na_err_set(err, 422, "invalid_field", field, "--%s %s: read: %s",
					  field, path, n < 0 ? strerror(errno) : "short file");
		}
		got += (size_t)n;
	}
	buf[got] = '\0';
	if (!strstr(buf, "-----BEGIN ")) {
		OPENSSL_cleanse(buf, got);
		free(buf);
		return na_err_set(err, 422, "invalid_field", field, "--%s %s: not a PEM file",
				  field, path);
	}
	*out = buf;
	*len = got;
	return 0;
}

static void session_free(na_etcd_t *e)
{
	etcd_watches_free(e);
	etcd_leases_free(e);
	for (size_t i = 0; i < e->neps; i++)
		free(e->eps[i].url);
	if (e->key)
		OPENSSL_cleanse(e->key, e->key_len);
	free(e->ca);
	free(e->cert);
	free(e->key);
	free(e);
}

int na_etcd_open(uv_loop_t *loop, const na_etcd_config_t *cfg, na_etcd_t **out, na_err_t *err)
{
	static int curl_ready;
	*out = NULL;
	if (!curl_ready) {
		CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
		if (rc != CURLE_OK)
			return na_err_set(err, 500, "system_error", NULL, "libcurl init: %s",
					  curl_easy_strerror(rc));
		curl_ready = 1;
	}
	na_etcd_t *e = calloc(1, sizeof(*e));
	if (!e)
		return na_err_errno(err, ENOMEM, "etcd session");
	e->loop = loop;
	e->connect_ms = cfg->connect_ms > 0 ? cfg->connect_ms : 1000;
	e->request_ms = cfg->request_ms > 0 ? cfg->request_ms : 5000;
	const char *p = cfg->endpoints ? cfg->endpoints : "";
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		if (add_endpoint(e, p, len, err) < 0)
			goto fail;
		if (!comma)
			break;
		p = comma + 1;
	}
	if (!e->neps) {
		na_err_set(err, 422, "invalid_field", "etcd", "no etcd endpoint given");
		goto fail;
	}
	if (!cfg->cert != !cfg->key) {
		na_err_set(err, 422, "invalid_field", cfg->cert ? "etcd-key" : "etcd-cert",
			   "--etcd-cert and --etcd-key go together");
		goto fail;
	}
	if (read_pem(cfg->ca, "etcd-ca", &e->ca, &e->ca_len, err) < 0 ||
	    read_pem(cfg->cert, "etcd-cert", &e->cert, &e->cert_len, err) < 0 ||
	    read_pem(cfg->key, "etcd-key", &e->key, &e->key_len, err) < 0)
		goto fail;
	if (etcd_transport_init(e, err) < 0)
		goto fail;
	e->release = session_free;
	*out = e;
	return 0;
fail:
	session_free(e);
	return -1;
}

void na_etcd_close(na_etcd_t *e)
{
	if (!e || e->closing)
		return;
	e->closing = 1;
	/* silent ends first, so the cancelled calls' callbacks (the only ones
	 * left to run) find no watch or keeper that would start anything */
	etcd_watches_close(e);
	etcd_leases_close(e);
	etcd_calls_cancel_all(e);
	etcd_transport_teardown(e);
}

int na_etcd_reachable(const na_etcd_t *e)
{
	return e && e->last_ok;
}

static json_t *ago(unsigned long long t)
{
	return json_integer((json_int_t)(na_now_ms() - t));
}

void na_etcd_info(na_etcd_t *e, json_t *obj)
{
	if (!e || !obj)
		return;
	json_t *eps = json_array();
	for (size_t i = 0; i < e->neps; i++) {
		etcd_ep_t *p = &e->eps[i];
		json_t *o = json_pack("{s:s,s:b}", "url", p->url, "healthy", p->state == 1);
		if (p->state == 0 && p->last_error[0])
			json_object_set_new(o, "last_error", json_string(p->last_error));
		if (p->last_ok_ms)
			json_object_set_new(o, "last_ok_ms_ago", ago(p->last_ok_ms));
		json_array_append_new(eps, o);
	}
	json_object_set_new(obj, "endpoints", eps);
	json_object_set_new(obj, "endpoint", json_string(e->eps[e->pref].url));
	json_object_set_new(obj, "reachable", json_boolean(e->last_ok));
	json_t *users = json_object();
	for (size_t i = 0; i < e->nusers; i++) {
		etcd_user_t *u = &e->users[i];
		json_t *o = json_pack("{s:b,s:I,s:I}", "reachable", u->state == 1, "calls",
				      (json_int_t)u->calls, "failures", (json_int_t)u->failures);
		if (u->last_ok_ms)
			json_object_set_new(o, "last_ok_ms_ago", ago(u->last_ok_ms));
		if (u->last_error[0])
			json_object_set_new(o, "last_error", json_string(u->last_error));
		json_object_set_new(users, u->name, o);
	}
	json_object_set_new(obj, "users", users);
}
