/* Incremental HTTP/1.1 request assembly on top of http-parser, shared by the
 * socket transport and the fuzzer. Internal to the core. */
#ifndef NA_HTTP_MSG_H
#define NA_HTTP_MSG_H

#include <http_parser.h>
#include <stddef.h>

#include "netagent/api.h"

#define NA_HTTP_MAX_HDRS     48
#define NA_HTTP_MAX_HDR_SIZE (32 * 1024)

typedef struct na_msg {
	http_parser p;
	char *url;
	size_t url_len;
	char *hnames[NA_HTTP_MAX_HDRS];
	char *hvalues[NA_HTTP_MAX_HDRS];
	size_t hname_len[NA_HTTP_MAX_HDRS], hvalue_len[NA_HTTP_MAX_HDRS];
	int nhdrs;
	int in_value;
	size_t hdr_bytes;
	char *body;
	size_t body_len, body_cap;
	/* Server-wide bytes of bodies being assembled, shared by every connection (NULL: no cap).
	 */
	size_t *budget_used;
	size_t budget_cap;
	int begun;    /* first byte of a request seen */
	int complete; /* a whole request is assembled */
	int keepalive;
	/* When set, the request is rejected before dispatch. */
	int err_status;
	const char *err_code;
	const char *err_msg;
	/* Filled by na_msg_to_req. */
	char method[16];
	char *path, *query;
} na_msg_t;

void na_msg_init(na_msg_t *m);
/* Frees what the message holds and prepares for the next request (the budget stays). */
void na_msg_reset(na_msg_t *m);
/* Charges every body byte to *used, refusing with 503 past cap: with hundreds of
 * connections, each allowed a 1 MiB body, the sum is what bounds the daemon's memory. */
void na_msg_set_budget(na_msg_t *m, size_t *used, size_t cap);
/* Consumes bytes up to the end of one request. Returns bytes consumed; check
 * m->complete and m->err_status afterwards. */
size_t na_msg_feed(na_msg_t *m, const char *data, size_t len);
/* Points req at the assembled request (valid until reset). -1 on a bad URL. */
int na_msg_to_req(na_msg_t *m, na_req_t *req);
const char *na_msg_header(const na_msg_t *m, const char *name);
/* Decodes %XX in place ('+' too in queries); -1 on a malformed escape or NUL. */
int na_pct_decode(char *s, int plus_is_space);

#endif
