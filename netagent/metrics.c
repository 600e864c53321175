#include "netagent/metrics.h"
#include "netagent/util.h"

#include <stdlib.h>
#include <string.h>

static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
				 0.1,	 0.25,	0.5,	1,     2.5,  5,	    10};
#define NB	       NA_ARRAY_SIZE(buckets)
#define MAX_SERIES     256
#define MAX_COLLECTORS 16

struct series {
	const char *route; /* route patterns are static strings */
	char method[8];
	int code;
	unsigned long long count;
};
struct hist {
	const char *route;
	unsigned long long b[NB], count;
	double sum;
};

static struct {
	struct series s[MAX_SERIES];
	int ns;
	struct hist h[MAX_SERIES];
	int nh;
	unsigned long long start_ms;
	struct {
		na_metrics_collect_fn fn;
		void *ud;
	} col[MAX_COLLECTORS];
	int ncol;
} m;

static void observe(const na_req_t *req, int status, double secs)
{
	const char *route = req->route ? req->route : "unmatched";
	struct series *s = NULL;
	for (int i = 0; i < m.ns; i++)
		if (!strcmp(m.s[i].route, route) && m.s[i].code == status &&
		    !strcmp(m.s[i].method, req->method)) {
			s = &m.s[i];
			break;
		}
	if (!s && m.ns < MAX_SERIES) {
		s = &m.s[m.ns++];
		s->route = route;
		/* Unknown methods would explode label cardinality: fold them. */
		const char *meth = req->method;
		if (strlen(meth) >= sizeof(s->method))
			meth = "OTHER";
		snprintf(s->method, sizeof(s->method), "%s", meth);
		s->code = status;
	}
	if (s)
		s->count++;
	struct hist *h = NULL;
	for (int i = 0; i < m.nh; i++)
		if (!strcmp(m.h[i].route, route)) {
			h = &m.h[i];
			break;
		}
	if (!h && m.nh < MAX_SERIES) {
		h = &m.h[m.nh++];
		h->route = route;
	}
	if (!h)
		return;
	for (size_t i = 0; i < NB; i++)
		if (secs <= buckets[i])
			h->b[i]++;
	h->count++;
	h->sum += secs;
}

static long rss_bytes(void)
{
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "re");
	if (!f)
		return 0;
	if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
		rss = 0;
	fclose(f);
	return rss * sysconf(_SC_PAGESIZE);
}

static void h_metrics(na_req_t *req, void *ud)
{
	(void)ud;
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	if (!out) {
		na_err_t err = NA_ERR_INIT;
		na_err_errno(&err, errno, "metrics");
		na_reply_err(req, &err);
		return;
	}
	fprintf(out, "# HELP netagent_http_requests_total API requests by route, method and code.\n"
		     "# TYPE netagent_http_requests_total counter\n");
	for (int i = 0; i < m.ns; i++)
		fprintf(
		    out,
		    "netagent_http_requests_total{route=\"%s\",method=\"%s\",code=\"%d\"} %llu\n",
		    m.s[i].route, m.s[i].method, m.s[i].code, m.s[i].count);
	fprintf(out, "# HELP netagent_http_request_duration_seconds API latency by route.\n"
		     "# TYPE netagent_http_request_duration_seconds histogram\n");
	for (int i = 0; i < m.nh; i++) {
		for (size_t b = 0; b < NB; b++)
			fprintf(
			    out,
			    "netagent_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} "
			    "%llu\n",
			    m.h[i].route, buckets[b], m.h[i].b[b]);
		fprintf(out,
			"netagent_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} "
			"%llu\n",
			m.h[i].route, m.h[i].count);
		fprintf(out, "netagent_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n",
			m.h[i].route, m.h[i].sum);
		fprintf(out, "netagent_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
			m.h[i].route, m.h[i].count);
	}
	fprintf(out,
		"# HELP netagent_uptime_seconds Seconds since the agent started.\n"
		"# TYPE netagent_uptime_seconds gauge\nnetagent_uptime_seconds %.3f\n",
		(double)(na_now_ms() - m.start_ms) / 1000.0);
	fprintf(out,
		"# HELP process_resident_memory_bytes Resident set size.\n"
		"# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %ld\n",
		rss_bytes());
	for (int i = 0; i < m.ncol; i++)
		m.col[i].fn(out, m.col[i].ud);
	fclose(out);
	na_reply_text(req, 200, "text/plain; version=0.0.4", buf, len);
	free(buf);
}

static const na_route_t routes[] = {
    {"GET", "/metrics", h_metrics, NULL},
};

int na_metrics_init(na_api_t *api, na_err_t *err)
{
	m.start_ms = na_now_ms();
	na_api_set_observer(observe);
	return na_api_register(api, routes, NA_ARRAY_SIZE(routes), err);
}

void na_metrics_add_collector(na_metrics_collect_fn fn, void *ud)
{
	if (m.ncol < MAX_COLLECTORS) {
		m.col[m.ncol].fn = fn;
		m.col[m.ncol].ud = ud;
		m.ncol++;
	}
}

void na_metrics_fini(void)
{
	memset(&m, 0, sizeof(m));
}
