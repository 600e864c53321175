/* Patroni's REST API (<overlay ip>:8008) of one member, one call at a
 * time from a worker thread inside the member's network namespace (the
 * agent has no route into the overlay, by design). Unsafe methods carry
 * the REST password the role rendered; with TLS the member's certificate
 * is verified against the cluster's CA. */
#include "provision/pg.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ANSWER (256 * 1024)

int pg_target_of(const pv_spec_t *s, pg_target_t *t, na_err_t *err)
{
	pg_conf_t c;
	memset(t, 0, sizeof(*t));
	if (pg_spec_conf(s, &c, err) < 0)
		return -1;
	snprintf(t->ip, sizeof(t->ip), "%s", c.ip);
	snprintf(t->node, sizeof(t->node), "%s", c.node);
	snprintf(t->pw, sizeof(t->pw), "%s", c.api_pw);
	if (c.ca && !(t->ca = strdup(c.ca)))
		return na_err_errno(err, ENOMEM, "ca");
	return 0;
}

struct buf {
	char *p;
	size_t n;
};

static size_t on_data(char *d, size_t sz, size_t nm, void *ud)
{
	struct buf *b = ud;
	size_t len = sz * nm;
	if (b->n + len > MAX_ANSWER)
		return 0;
	char *np = realloc(b->p, b->n + len + 1);
	if (!np)
		return 0;
	memcpy(np + b->n, d, len);
	b->p = np;
	b->n += len;
	b->p[b->n] = 0;
	return len;
}

/* status and the answer (malloc'd, NUL-terminated), or -1 with 502
 * patroni_unreachable. */
int pg_http(const pg_target_t *t, const char *method, const char *path, const char *body,
	    long timeout_ms, long *status, char **out, na_err_t *err)
{
	char url[160], auth[96];
	snprintf(url, sizeof(url), "%s://%s:%d%s", t->ca ? "https" : "http", t->ip, PG_API_PORT,
		 path);
	struct buf b = {NULL, 0};
	CURL *h = curl_easy_init();
	if (!h)
		return na_err_errno(err, ENOMEM, "curl");
	struct curl_slist *hdr = NULL;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 1000 ? timeout_ms : 1000L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	if (t->ca) {
		struct curl_blob blob = {t->ca, strlen(t->ca), CURL_BLOB_COPY};
		curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
		/* verify-ca, like replication: the member is the address we
		 * dialled, its certificate need not name it. */
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (strcmp(method, "GET")) {
		snprintf(auth, sizeof(auth), "%s:%s", PG_API_USER, t->pw);
		curl_easy_setopt(h, CURLOPT_USERPWD, auth);
		hdr = curl_slist_append(hdr, "Content-Type: application/json");
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
	}
	CURLcode rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
	if (rc != CURLE_OK) {
		free(b.p);
		return na_err_set(err, 502, "patroni_unreachable", NULL,
				  "Patroni's REST API at %s did not answer %s %s: %s", url, method,
				  path, curl_easy_strerror(rc));
	}
	*out = b.p ? b.p : strdup("");
	return 0;
}

/* The member Patroni names leader in /cluster, or -1. */
int pg_cluster_leader(const pg_target_t *t, char *leader, size_t n, na_err_t *err)
{
	long st = 0;
	char *out = NULL;
	if (pg_http(t, "GET", "/cluster", NULL, 3000, &st, &out, err) < 0)
		return -1;
	json_t *j = json_loads(out, 0, NULL);
	free(out);
	size_t i;
	json_t *m;
	leader[0] = 0;
	json_array_foreach(json_object_get(j, "members"), i, m)
	{
		if (!strcmp(json_string_value(json_object_get(m, "role")) ?: "", "leader"))
			snprintf(leader, n, "%s",
				 json_string_value(json_object_get(m, "name")) ?: "");
	}
	json_decref(j);
	if (!leader[0])
		return na_err_set(err, 503, "patroni_refused", NULL,
				  "Patroni's cluster has no leader now");
	return 0;
}
