/* Debugging jobs: `net inspect` (kernel view beside desired view) and
 * `net check` (from every local endpoint, ping every other endpoint). */
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sys/socket.h>

#include "netagent/nl.h"
#include "netagent/nsworker.h"
#include "netagent/util.h"
#include "netagent/validate.h"
#include "vxlan/diff.h"

struct djob {
	struct vx_snap *snap;
	na_req_t *req;
	json_t *desired;		/* built on the loop thread */
	json_t *result;			/* built on the worker */
	int cur;			/* check: index of the local endpoint being probed from */
	unsigned long long deadline_ms; /* check: its whole budget */
};

/* A check pings every endpoint from every local one: n² echoes of up to
 * 1.2 s each. The budget bounds what one request may cost its lane. */
#define CHECK_BUDGET_MS 10000

static void djob_done(void *arg, int rc, const na_err_t *err)
{
	struct djob *j = arg;
	if (rc < 0) {
		na_err_t e = *err;
		na_reply_err(j->req, &e);
	} else {
		na_reply_json(j->req, 200, j->result);
		j->result = NULL;
	}
	json_decref(j->result);
	json_decref(j->desired);
	vx_snap_free(j->snap);
	free(j);
}

static struct djob *djob_new(vx_net_t *n, na_req_t *req)
{
	struct djob *j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	j->snap = vx_snap_take(n);
	j->req = req;
	if (!j->snap) {
		free(j);
		return NULL;
	}
	return j;
}

static int w_inspect(void *arg, na_err_t *err)
{
	struct djob *j = arg;
	struct vx_k_state k = {0};
	struct vx_k_ep_state *eps = calloc(j->snap->nlocal + 1, sizeof(*eps));
	if (!eps)
		return na_err_errno(err, ENOMEM, "inspect");
	if (vx_k_network_dump(j->snap->netns, &k, err) < 0) {
		free(eps);
		return -1;
	}
	for (size_t i = 0; i < j->snap->nlocal; i++)
		if (vx_k_endpoint_dump(j->snap->local[i].netns, j->snap->local[i].ifname, &eps[i],
				       err) < 0)
			na_err_clear(err); /* shown as missing */
	json_t *diff = vx_diff(j->snap, &k, eps, NULL);
	json_t *kern = vx_kernel_json(&k, j->snap, eps);
	j->result = json_pack("{s:O, s:o, s:o, s:b}", "desired", j->desired, "kernel", kern, "diff",
			      diff, "in_sync", json_array_size(diff) == 0);
	vx_k_state_free(&k);
	free(eps);
	return 0;
}

int vx_job_inspect(vx_net_t *n, na_req_t *req)
{
	struct djob *j = djob_new(n, req);
	if (!j)
		return -1;
	json_t *eps = json_array();
	for (vx_ep_t *e = n->eps; e; e = e->next)
		json_array_append_new(eps, vx_ep_json(n, e));
	j->desired = vx_net_json(n);
	json_object_set_new(j->desired, "endpoint_list", eps);
	if (na_ns_submit(n->name, NULL, w_inspect, djob_done, j) < 0) {
		json_decref(j->desired);
		vx_snap_free(j->snap);
		free(j);
		return -1;
	}
	return 0;
}

static uint16_t csum(const void *data, size_t len)
{
	const uint16_t *p = data;
	uint32_t sum = 0;
	for (; len > 1; len -= 2)
		sum += *p++;
	if (len)
		sum += *(const uint8_t *)p;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* One ICMP echo over a raw socket (root; ping sockets are often disabled by
 * net.ipv4.ping_group_range in fresh namespaces). Returns RTT ms or -1. */
static double ping1(uint32_t dst, uint16_t id, uint16_t seq, int timeout_ms)
{
	cleanup_close int fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
	if (fd < 0)
		return -1;
	struct icmphdr h = {.type = ICMP_ECHO};
	h.un.echo.id = htons(id);
	h.un.echo.sequence = htons(seq);
	h.checksum = csum(&h, sizeof(h));
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(dst)};
	unsigned long long t0 = na_now_ns();
	if (sendto(fd, &h, sizeof(h), 0, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -1;
	for (;;) {
		long left = timeout_ms - (long)((na_now_ns() - t0) / 1000000ULL);
		if (left <= 0)
			return -1;
		struct pollfd pfd = {fd, POLLIN, 0};
		if (poll(&pfd, 1, (int)left) <= 0)
			return -1;
		char buf[512];
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
		if (n < (ssize_t)sizeof(struct iphdr))
			continue;
		const struct iphdr *ip = (const struct iphdr *)buf;
		size_t hl = (size_t)ip->ihl * 4;
		if ((size_t)n < hl + sizeof(struct icmphdr) ||
		    from.sin_addr.s_addr != sa.sin_addr.s_addr)
			continue;
		const struct icmphdr *r = (const struct icmphdr *)(buf + hl);
		if (r->type == ICMP_ECHOREPLY && r->un.echo.id == h.un.echo.id &&
		    r->un.echo.sequence == h.un.echo.sequence)
			return (double)(na_now_ns() - t0) / 1e6;
	}
}

static int w_probe_from(void *arg, na_err_t *err)
{
	(void)err;
	struct djob *j = arg;
	const struct vx_snap *s = j->snap;
	const struct vx_snap_ep *from = &s->local[j->cur];
	uint16_t id = (uint16_t)(na_now_ns() ^ (unsigned long long)j->cur);
	json_t *results = json_object_get(j->result, "results");
	for (size_t t = 0; t < s->nlocal + s->nremote; t++) {
		int is_local = t < s->nlocal;
		uint32_t ip = is_local ? s->local[t].ip : s->remote[t - s->nlocal].ip;
		const char *to = is_local ? s->local[t].name : s->remote_name[t - s->nlocal];
		if (is_local && (int)t == j->cur)
			continue;
		double rtt = -1;
		int late = na_now_ms() >= j->deadline_ms;
		for (int attempt = 0; !late && attempt < 3 && rtt < 0; attempt++)
			rtt = ping1(ip, id, (uint16_t)(t * 4 + (size_t)attempt), 400);
		char a[16];
		na_ipv4_fmt(ip, a, sizeof(a));
		json_t *r = json_pack("{s:s, s:s, s:s, s:b}", "from", from->name, "to", to, "ip", a,
				      "ok", rtt >= 0);
		if (rtt >= 0)
			json_object_set_new(r, "rtt_ms", json_real(rtt));
		else
			json_object_set_new(r, "error",
					    json_string(late ? "not checked: the check's time "
							       "budget (10 s) ran out"
							     : "no echo reply within 1.2 s"));
		json_array_append_new(results, r);
	}
	return 0;
}

/* Enters each local endpoint's namespace in turn on this worker thread. */
static int w_check(void *arg, na_err_t *err)
{
	struct djob *j = arg;
	j->result = json_pack("{s:s, s:[]}", "network", j->snap->name, "results");
	for (size_t i = 0; i < j->snap->nlocal; i++) {
		j->cur = (int)i;
		if (na_ns_run(j->snap->local[i].netns, w_probe_from, j, err) < 0) {
			json_array_append_new(json_object_get(j->result, "results"),
					      json_pack("{s:s, s:s, s:b, s:s}", "from",
							j->snap->local[i].name, "to", "*", "ok", 0,
							"error", err->msg));
			na_err_clear(err);
		}
	}
	size_t i, bad = 0;
	json_t *r;
	json_array_foreach(json_object_get(j->result, "results"), i, r) bad +=
	    !json_is_true(json_object_get(r, "ok"));
	json_object_set_new(j->result, "ok", json_boolean(bad == 0));
	json_object_set_new(j->result, "failed", json_integer((json_int_t)bad));
	return 0;
}

int vx_job_check(vx_net_t *n, na_req_t *req)
{
	struct djob *j = djob_new(n, req);
	if (!j)
		return -1;
	j->deadline_ms = na_now_ms() + CHECK_BUDGET_MS;
	/* Its own bounded lane, not keyed by the network: a slow check must
	 * not hold up writes, reconcile, or the network's other requests. */
	if (na_ns_submit_lane(NA_LANE_DIAG, NULL, NULL, w_check, djob_done, j) < 0) {
		int busy = errno == EBUSY;
		vx_snap_free(j->snap);
		free(j);
		if (busy) {
			na_err_t err = NA_ERR_INIT;
			na_err_set(&err, 429, "too_many_checks", NULL,
				   "%d reachability checks are running already; retry later",
				   NA_DIAG_MAX_JOBS);
			na_reply_err(req, &err);
			return 0;
		}
		return -1;
	}
	return 0;
}
