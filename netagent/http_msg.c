#include "netagent/http_msg.h"
#include "netagent/util.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static na_msg_t *M(http_parser *p)
{
	return (na_msg_t *)p->data;
}

static int append(char **buf, size_t *len, const char *at, size_t n)
{
	char *nb = realloc(*buf, *len + n + 1);
	if (!nb)
		return -1;
	memcpy(nb + *len, at, n);
	*len += n;
	nb[*len] = 0;
	*buf = nb;
	return 0;
}

static int fail(na_msg_t *m, int status, const char *code, const char *msg)
{
	if (!m->err_status) {
		m->err_status = status;
		m->err_code = code;
		m->err_msg = msg;
	}
	return -1;
}

static int on_begin(http_parser *p)
{
	M(p)->begun = 1;
	return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
	na_msg_t *m = M(p);
	m->hdr_bytes += n;
	if (m->hdr_bytes > NA_HTTP_MAX_HDR_SIZE)
		return fail(m, 431, "headers_too_large", "request line and headers exceed 32 KiB");
	return append(&m->url, &m->url_len, at, n);
}

static int on_hfield(http_parser *p, const char *at, size_t n)
{
	na_msg_t *m = M(p);
	m->hdr_bytes += n;
	if (m->hdr_bytes > NA_HTTP_MAX_HDR_SIZE)
		return fail(m, 431, "headers_too_large", "request line and headers exceed 32 KiB");
	/* http-parser may split a field across calls: a new field starts after a value. */
	if (m->in_value || m->nhdrs == 0) {
		if (m->nhdrs == NA_HTTP_MAX_HDRS)
			return fail(m, 431, "headers_too_large", "too many headers");
		m->nhdrs++;
		m->in_value = 0;
	}
	int i = m->nhdrs - 1;
	return append(&m->hnames[i], &m->hname_len[i], at, n);
}

static int on_hvalue(http_parser *p, const char *at, size_t n)
{
	na_msg_t *m = M(p);
	m->hdr_bytes += n;
	if (m->hdr_bytes > NA_HTTP_MAX_HDR_SIZE)
		return fail(m, 431, "headers_too_large", "request line and headers exceed 32 KiB");
	if (m->nhdrs == 0)
		return -1;
	m->in_value = 1;
	int i = m->nhdrs - 1;
	return append(&m->hvalues[i], &m->hvalue_len[i], at, n);
}

static int on_headers_complete(http_parser *p)
{
	na_msg_t *m = M(p);
	/* Refuse a declared oversize body before reading a byte of it. */
	if ((p->flags & F_CONTENTLENGTH) && p->content_length > NA_API_MAX_BODY)
		return fail(m, 413, "body_too_large", "request body exceeds 1 MiB");
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
	na_msg_t *m = M(p);
	if (m->body_len + n > NA_API_MAX_BODY)
		return fail(m, 413, "body_too_large", "request body exceeds 1 MiB");
	if (m->budget_used) {
		if (*m->budget_used + n > m->budget_cap)
			return fail(m, 503, "server_busy",
				    "too many large requests in progress; retry shortly");
	}
	if (append(&m->body, &m->body_len, at, n) < 0)
		return -1;
	if (m->budget_used)
		*m->budget_used += n;
	return 0;
}

static int on_complete(http_parser *p)
{
	na_msg_t *m = M(p);
	m->complete = 1;
	m->keepalive = http_should_keep_alive(p);
	/* Stop after one request: the next pipelined one waits for our reply. */
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_begin,
    .on_url = on_url,
    .on_header_field = on_hfield,
    .on_header_value = on_hvalue,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_complete,
};

void na_msg_init(na_msg_t *m)
{
	memset(m, 0, sizeof(*m));
	http_parser_init(&m->p, HTTP_REQUEST);
	m->p.data = m;
}

void na_msg_reset(na_msg_t *m)
{
	free(m->url);
	for (int i = 0; i < m->nhdrs; i++) {
		free(m->hnames[i]);
		free(m->hvalues[i]);
	}
	free(m->body);
	free(m->path);
	free(m->query);
	size_t *used = m->budget_used, cap = m->budget_cap;
	if (used)
		*used -= m->body_len;
	na_msg_init(m);
	na_msg_set_budget(m, used, cap);
}

void na_msg_set_budget(na_msg_t *m, size_t *used, size_t cap)
{
	m->budget_used = used;
	m->budget_cap = cap;
}

size_t na_msg_feed(na_msg_t *m, const char *data, size_t len)
{
	if (m->complete || m->err_status)
		return 0;
	size_t n = http_parser_execute(&m->p, &settings, data, len);
	enum http_errno e = HTTP_PARSER_ERRNO(&m->p);
	if (e == HPE_PAUSED) {
		http_parser_pause(&m->p, 0);
		return n;
	}
	if (e != HPE_OK)
		fail(m, 400, "bad_request", "malformed HTTP request");
	return n;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static char *dup_range(const char *s, size_t off, size_t n)
{
	char *r = malloc(n + 1);
	if (!r)
		return NULL;
	memcpy(r, s + off, n);
	r[n] = 0;
	return r;
}

int na_msg_to_req(na_msg_t *m, na_req_t *req)
{
	struct http_parser_url u;

	memset(req, 0, sizeof(*req));
	if (!m->url)
		return -1;
	http_parser_url_init(&u);
	if (http_parser_parse_url(m->url, m->url_len, 0, &u) != 0 ||
	    !(u.field_set & (1 << UF_PATH)))
		return -1;
	m->path = dup_range(m->url, u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
	if (u.field_set & (1 << UF_QUERY))
		m->query =
		    dup_range(m->url, u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len);
	else
		m->query = strdup("");
	if (!m->path || !m->query)
		return -1;
	/* A NUL in the body would silently truncate it for string-based parsers. */
	if (m->body && memchr(m->body, 0, m->body_len))
		return -1;
	snprintf(m->method, sizeof(m->method), "%s", http_method_str(m->p.method));
	req->method = m->method;
	req->path = m->path;
	req->query = m->query;
	req->body = m->body ? m->body : "";
	req->body_len = m->body_len;
	return 0;
}

const char *na_msg_header(const na_msg_t *m, const char *name)
{
	for (int i = 0; i < m->nhdrs; i++)
		if (m->hnames[i] && strcasecmp(m->hnames[i], name) == 0)
			return m->hvalues[i] ? m->hvalues[i] : "";
	return NULL;
}

int na_pct_decode(char *s, int plus_is_space)
{
	char *w = s;
	for (char *r = s; *r; r++) {
		if (*r == '%') {
			int hi = hexval(r[1]), lo = hi < 0 ? -1 : hexval(r[2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return -1;
			*w++ = (char)(hi * 16 + lo);
			r += 2;
		} else if (*r == '+' && plus_is_space) {
			*w++ = ' ';
		} else {
			*w++ = *r;
		}
	}
	*w = 0;
	return 0;
}
