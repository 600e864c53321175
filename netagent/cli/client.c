/* libcurl transport to the agent: plain HTTP over the local unix socket, or
 * HTTPS with a client certificate (the agent requires mTLS), plus a
 * streaming reader for GET /v1/events. */
#include "netagent/cli/cli.h"
#include "netagent/agent.h"
#include "netagent/util.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

/* A JSON answer is small; anything far beyond the API's own body limit is a
 * confused peer, not something to buffer forever. */
#define MAX_RESPONSE (64u * 1024 * 1024)
/* A single SSE line is one event's JSON; a runaway line means garbage. */
#define MAX_SSE_LINE (4u * 1024 * 1024)

volatile int cli_interrupted;

typedef cli_buf_t buf_t;

static int buf_add(buf_t *b, const char *s, size_t n, size_t limit)
{
	if (b->len + n + 1 > limit)
		return -1;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *p;
		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p)
			return -1;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static size_t body_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
	size_t n = size * nmemb;
	return buf_add(ud, ptr, n, MAX_RESPONSE) < 0 ? 0 : n;
}

static const char *target(const cli_t *cli)
{
	return cli->url ? cli->url : cli->socket;
}

typedef struct conn {
	CURL *curl;
	struct curl_slist *headers;
	char errbuf[CURL_ERROR_SIZE];
} conn_t;

static void conn_free(conn_t *c)
{
	curl_slist_free_all(c->headers);
	if (c->curl)
		curl_easy_cleanup(c->curl);
}

static int conn_init(cli_t *cli, conn_t *c, const char *method, const char *path,
		     const char *accept, na_err_t *err)
{
	char url[2048];
	CURL *h;

	memset(c, 0, sizeof(*c));
	c->curl = h = curl_easy_init();
	if (!h)
		return na_err_set(err, CLI_EXIT_ERROR, "curl_init", NULL,
				  "cannot initialise libcurl");
	/* Over the unix socket the host part is only the Host header. */
	snprintf(url, sizeof(url), "%s%s", cli->url ? cli->url : "http://localhost", path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "netagentctl/" NA_VERSION);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, cli->url ? "https" : "http");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	if (cli->socket) {
		curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, cli->socket);
	} else {
		curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
		curl_easy_setopt(h, CURLOPT_SSLCERT, cli->cert);
		curl_easy_setopt(h, CURLOPT_SSLKEY, cli->key);
		curl_easy_setopt(h, CURLOPT_CAINFO, cli->cacert);
		/* Only the CA given: the agent's certificates come from the
		 * platform's private CA, never from the system store. */
		curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, cli->insecure_hostname ? 0L : 2L);
	}
	if (strcmp(method, "GET") != 0)
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	c->headers = curl_slist_append(c->headers, accept);
	/* A PUT body is small; waiting for 100-continue only adds latency. */
	c->headers = curl_slist_append(c->headers, "Expect:");
	return 0;
}

static int transport_err(cli_t *cli, conn_t *c, CURLcode rc, na_err_t *err)
{
	long oserr = 0;
	const char *why = c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc);
	char os[160] = "";

	curl_easy_getinfo(c->curl, CURLINFO_OS_ERRNO, &oserr);
	/* curl words a missing unix socket as a TCP failure to "localhost
	 * port 80"; the errno says what actually happened. */
	if (oserr)
		snprintf(os, sizeof(os), " (%s)", strerror((int)oserr));
	if (cli->socket && rc == CURLE_COULDNT_CONNECT && oserr)
		return na_err_set(err, CLI_EXIT_CONNECT, "connect_failed", NULL,
				  "cannot connect to %s: %s (is netagent running? --socket or "
				  "$NETAGENT_SOCKET select another)",
				  cli->socket, strerror((int)oserr));
	if (rc == CURLE_OPERATION_TIMEDOUT)
		return na_err_set(err, CLI_EXIT_CONNECT, "timeout", NULL, "no answer from %s: %s",
				  target(cli), why);
	return na_err_set(err, CLI_EXIT_CONNECT, "connect_failed", NULL,
			  "cannot connect to %s: %s%s", target(cli), why, os);
}

/* Turns an error answer into err: the agent's {"error":{…}} when present. */
static int http_err(long status, const char *body, size_t len, na_err_t *err)
{
	cleanup_json json_t *j = NULL;
	json_t *e;

	if (body && len)
		j = json_loadb(body, len, 0, NULL);
	e = json_object_get(j, "error");
	if (json_is_object(e) && json_is_string(json_object_get(e, "message"))) {
		const char *code = json_string_value(json_object_get(e, "code"));
		const char *field = json_string_value(json_object_get(e, "field"));
		return na_err_set(err, (int)status, code ? code : "error", field, "%s",
				  json_string_value(json_object_get(e, "message")));
	}
	/* Not the agent's error object (a proxy, a wrong port): one line of
	 * whatever came, so the message stays a single line. */
	char code[32], snippet[161];
	size_t n = 0;
	for (size_t i = 0; body && i < len && n < sizeof(snippet) - 1; i++) {
		char ch = (unsigned char)body[i] < 0x20 ? ' ' : body[i];
		if (ch != ' ' || (n && snippet[n - 1] != ' '))
			snippet[n++] = ch;
	}
	while (n && snippet[n - 1] == ' ')
		n--;
	snippet[n] = '\0';
	snprintf(code, sizeof(code), "http_%ld", status);
	return na_err_set(err, (int)status, code, NULL, "agent answered HTTP %ld%s%s", status,
			  n ? ": " : "", snippet);
}

void cli_resp_clear(cli_resp_t *r)
{
	json_decref(r->json);
	r->json = NULL;
	r->status = 0;
}

int cli_request(cli_t *cli, const char *method, const char *path, json_t *body, cli_resp_t *resp,
		na_err_t *err)
{
	cleanup_free char *payload = NULL;
	buf_t out = {0};
	conn_t c;
	CURLcode rc;
	int ret = -1;

	resp->status = 0;
	resp->json = NULL;
	if (conn_init(cli, &c, method, path, "Accept: application/json", err) < 0)
		goto done;
	if (body) {
		payload = json_dumps(body, JSON_COMPACT);
		if (!payload) {
			na_err_set(err, CLI_EXIT_ERROR, "encode", NULL, "cannot encode request");
			goto done;
		}
		c.headers = curl_slist_append(c.headers, "Content-Type: application/json");
		curl_easy_setopt(c.curl, CURLOPT_POSTFIELDS, payload);
		curl_easy_setopt(c.curl, CURLOPT_POSTFIELDSIZE, (long)strlen(payload));
	} else if (!strcmp(method, "POST") || !strcmp(method, "PUT")) {
		curl_easy_setopt(c.curl, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(c.curl, CURLOPT_POSTFIELDSIZE, 0L);
	}
	curl_easy_setopt(c.curl, CURLOPT_HTTPHEADER, c.headers);
	curl_easy_setopt(c.curl, CURLOPT_WRITEFUNCTION, body_cb);
	curl_easy_setopt(c.curl, CURLOPT_WRITEDATA, &out);
	if (cli->timeout_s > 0)
		curl_easy_setopt(c.curl, CURLOPT_TIMEOUT, cli->timeout_s);

	rc = curl_easy_perform(c.curl);
	if (rc != CURLE_OK) {
		transport_err(cli, &c, rc, err);
		goto done;
	}
	curl_easy_getinfo(c.curl, CURLINFO_RESPONSE_CODE, &resp->status);
	if (resp->status < 200 || resp->status > 299) {
		http_err(resp->status, out.p, out.len, err);
		goto done;
	}
	if (out.len) {
		json_error_t je;
		resp->json = json_loadb(out.p, out.len, 0, &je);
		if (!resp->json) {
			na_err_set(err, CLI_EXIT_ERROR, "invalid_response", NULL,
				   "agent answered invalid JSON: %s", je.text);
			goto done;
		}
	}
	ret = 0;
done:
	free(out.p);
	conn_free(&c);
	return ret;
}

int cli_call(cli_t *cli, const char *method, const char *path, json_t *body, json_t **out,
	     long *status, na_err_t *err)
{
	cli_resp_t r;

	if (cli_request(cli, method, path, body, &r, err) < 0)
		return -1;
	if (status)
		*status = r.status;
	if (out) {
		if (!json_is_object(r.json)) {
			cli_resp_clear(&r);
			return na_err_set(err, CLI_EXIT_ERROR, "invalid_response", NULL,
					  "agent answered %s %s without a JSON object", method,
					  path);
		}
		*out = NA_STEAL(r.json);
	}
	cli_resp_clear(&r);
	return 0;
}

/* ---- server-sent events (WHATWG "event stream interpretation") ---- */

static int set_str(char **dst, const char *s, size_t n)
{
	char *p = strndup(s, n);
	if (!p)
		return -1;
	free(*dst);
	*dst = p;
	return 0;
}

static int sse_dispatch(cli_sse_t *p)
{
	cli_sse_event_t ev;
	int rc = 0;

	/* An event without data lines is not dispatched (spec), but its
	 * event name must not leak into the next one. */
	if (p->have_data) {
		if (p->data_len && p->data[p->data_len - 1] == '\n')
			p->data[--p->data_len] = '\0';
		ev.id = p->id ? p->id : "";
		ev.event = p->event ? p->event : "message";
		ev.data = p->data ? p->data : "";
		rc = p->fn(&ev, p->ud);
	}
	free(p->event);
	p->event = NULL;
	free(p->data);
	p->data = NULL;
	p->data_len = 0;
	p->have_data = false;
	return rc;
}

static int sse_line(cli_sse_t *p, const char *line, size_t n)
{
	const char *colon, *val;
	size_t flen, vlen;

	if (n == 0)
		return sse_dispatch(p);
	if (line[0] == ':') /* comment: the server's keepalive */
		return 0;
	colon = memchr(line, ':', n);
	flen = colon ? (size_t)(colon - line) : n;
	val = colon ? colon + 1 : line + n;
	vlen = n - (size_t)(val - line);
	if (vlen && val[0] == ' ')
		val++, vlen--;
	if (flen == 4 && !memcmp(line, "data", 4)) {
		char *d = realloc(p->data, p->data_len + vlen + 2);
		if (!d)
			return -1;
		memcpy(d + p->data_len, val, vlen);
		p->data_len += vlen;
		d[p->data_len++] = '\n';
		d[p->data_len] = '\0';
		p->data = d;
		p->have_data = true;
	} else if (flen == 5 && !memcmp(line, "event", 5)) {
		return set_str(&p->event, val, vlen);
	} else if (flen == 2 && !memcmp(line, "id", 2)) {
		if (!memchr(val, '\0', vlen))
			return set_str(&p->id, val, vlen);
	}
	return 0; /* "retry" and unknown fields are ignored */
}

/* Bytes may arrive split anywhere, even between the CR and LF of one line
 * ending: keep the tail and only consume complete lines. */
int cli_sse_feed(cli_sse_t *p, const char *chunk, size_t n)
{
	size_t start = 0, i;

	buf_t *b = &p->in;

	if (buf_add(b, chunk, n, MAX_SSE_LINE) < 0)
		return -1;
	for (i = 0; i < b->len; i++) {
		char c = b->p[i];
		if (c != '\n' && c != '\r')
			continue;
		if (c == '\r' && i + 1 == b->len)
			break; /* a CR at the end: wait to see whether LF follows */
		if (sse_line(p, b->p + start, i - start) < 0)
			return -1;
		if (c == '\r' && b->p[i + 1] == '\n')
			i++;
		start = i + 1;
	}
	memmove(b->p, b->p + start, b->len - start);
	b->len -= start;
	if (b->p)
		b->p[b->len] = '\0';
	return 0;
}

void cli_sse_free(cli_sse_t *p)
{
	free(p->in.p);
	free(p->id);
	free(p->event);
	free(p->data);
	memset(p, 0, sizeof(*p));
}

typedef struct stream {
	CURL *curl;
	cli_sse_t sse;
	buf_t errbody; /* body of a non-200 answer */
	long status;
	int failed; /* the consumer or the parser gave up */
} stream_t;

static size_t stream_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
	stream_t *s = ud;
	size_t n = size * nmemb;

	if (!s->status)
		curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &s->status);
	if (s->status != 200)
		return buf_add(&s->errbody, ptr, n, 65536) < 0 ? 0 : n;
	if (cli_interrupted)
		return 0;
	if (cli_sse_feed(&s->sse, ptr, n) < 0) {
		s->failed = 1;
		return 0;
	}
	return n;
}

static int xfer_cb(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	(void)ud, (void)dt, (void)dn, (void)ut, (void)un;
	return cli_interrupted ? 1 : 0;
}

int cli_stream(cli_t *cli, const char *path, cli_sse_fn fn, void *ud, na_err_t *err)
{
	stream_t s = {0};
	conn_t c;
	CURLcode rc;
	int ret = -1;

	if (conn_init(cli, &c, "GET", path, "Accept: text/event-stream", err) < 0)
		goto done;
	s.curl = c.curl;
	s.sse.fn = fn;
	s.sse.ud = ud;
	curl_easy_setopt(c.curl, CURLOPT_HTTPHEADER, c.headers);
	curl_easy_setopt(c.curl, CURLOPT_WRITEFUNCTION, stream_cb);
	curl_easy_setopt(c.curl, CURLOPT_WRITEDATA, &s);
	/* The progress callback is the hook through which Ctrl-C ends an
	 * idle stream: curl calls it about once a second even without data. */
	curl_easy_setopt(c.curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c.curl, CURLOPT_XFERINFOFUNCTION, xfer_cb);
	/* No overall timeout: a quiet event stream is healthy. TCP keepalive
	 * notices a peer that vanished without closing. */
	curl_easy_setopt(c.curl, CURLOPT_TCP_KEEPALIVE, 1L);

	rc = curl_easy_perform(c.curl);
	if (!s.status)
		curl_easy_getinfo(c.curl, CURLINFO_RESPONSE_CODE, &s.status);
	if (cli_interrupted && (rc == CURLE_ABORTED_BY_CALLBACK || rc == CURLE_WRITE_ERROR)) {
		ret = 0;
	} else if (s.failed) {
		na_err_set(err, CLI_EXIT_ERROR, "invalid_stream", NULL,
			   "event stream aborted (output failed, line too long or out of memory)");
	} else if (s.status && s.status != 200 && (rc == CURLE_OK || rc == CURLE_WRITE_ERROR)) {
		http_err(s.status, s.errbody.p, s.errbody.len, err);
	} else if (rc == CURLE_OK || (s.status == 200 && rc == CURLE_PARTIAL_FILE)) {
		/* The server ended the stream (drain on shutdown); a chunked
		 * body cut short is the same thing seen from here. */
		ret = 0;
	} else {
		transport_err(cli, &c, rc, err);
	}
done:
	cli_sse_free(&s.sse);
	free(s.errbody.p);
	conn_free(&c);
	return ret;
}
