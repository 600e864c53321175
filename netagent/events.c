#include "netagent/events.h"
#include "netagent/log.h"
#include "netagent/util.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RING	     1024
#define HEARTBEAT_MS 15000
#define MAX_SUBS     256

struct sub {
	na_req_t *req;
	struct sub *next;
};

static struct {
	uv_timer_t heartbeat;
	/* Event ids are base + seq. The base is this run's start in microseconds, so ids keep
	 * growing across restarts (a run would need a million events a second to catch up
	 * with the next run's base) and an id from an earlier run, or from nowhere, falls
	 * outside [base+1, base+seq]: the client is told to resync rather than left waiting. */
	unsigned long long base;
	unsigned long long seq;
	char *ring[RING]; /* formatted frames; ring[seq % RING] */
	unsigned long long ring_seq[RING];
	struct sub *subs;
	int nsubs;
	int up;
} ev;

static void unsubscribe(na_req_t *req, void *ud)
{
	(void)ud;
	for (struct sub **p = &ev.subs; *p; p = &(*p)->next) {
		if ((*p)->req == req) {
			struct sub *s = *p;
			*p = s->next;
			free(s);
			ev.nsubs--;
			return;
		}
	}
}

static void broadcast(const char *frame, size_t len)
{
	for (struct sub *s = ev.subs, *next; s; s = next) {
		next = s->next;
		/* A failed send closes the stream, which unsubscribes through the
		 * close callback; `next` was taken before that. */
		na_stream_send(s->req, frame, len);
	}
}

void na_events_publish(const char *type, const char *action, const char *name, json_t *object)
{
	char ts[40];
	if (!ev.up)
		return;
	na_time_rfc3339(ts, sizeof(ts));
	unsigned long long seq = ++ev.seq;
	unsigned long long id = ev.base + seq;
	json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:s}", "seq", (json_int_t)id, "ts", ts, "type",
			      type, "action", action, "name", name ? name : "");
	if (!o)
		return;
	if (object)
		json_object_set(o, "object", object);
	char *data = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	if (!data)
		return;
	char *frame = NULL;
	int n = asprintf(&frame, "id: %llu\nevent: %s\ndata: %s\n\n", id, type, data);
	free(data);
	if (n < 0)
		return;
	free(ev.ring[seq % RING]);
	ev.ring[seq % RING] = frame;
	ev.ring_seq[seq % RING] = seq;
	na_debug("event", "id=%llu type=%s action=%s name=%s", id, type, action, name ? name : "");
	broadcast(frame, (size_t)n);
}

static void send_resync(na_req_t *req, const char *reason)
{
	char frame[160];
	int n =
	    snprintf(frame, sizeof(frame), "id: %llu\nevent: resync\ndata: {\"reason\":\"%s\"}\n\n",
		     ev.base + ev.seq, reason);
	na_stream_send(req, frame, (size_t)n);
}

/* Replays what followed `last` (a Last-Event-ID), or says resync when we cannot. */
static void replay(na_req_t *req, const char *last)
{
	char *end = NULL;
	errno = 0;
	unsigned long long id = strtoull(last, &end, 10);
	if (errno || end == last || *end) {
		send_resync(req, "unknown event id");
		return;
	}
	if (id < ev.base || id > ev.base + ev.seq) {
		/* Another run's id (the agent restarted) or one we never issued. */
		send_resync(req, id < ev.base ? "agent restarted" : "unknown event id");
		return;
	}
	unsigned long long after = id - ev.base;
	unsigned long long first = ev.seq > RING ? ev.seq - RING + 1 : 1;
	if (after + 1 < first) {
		send_resync(req, "events lost");
		return;
	}
	for (unsigned long long s = after + 1; s <= ev.seq; s++) {
		const char *f = ev.ring[s % RING];
		if (f && ev.ring_seq[s % RING] == s && na_stream_send(req, f, strlen(f)) < 0)
			return;
	}
}

static void h_events(na_req_t *req, void *ud)
{
	(void)ud;
	if (ev.nsubs >= MAX_SUBS) {
		na_err_t err = NA_ERR_INIT;
		na_err_set(&err, 503, "too_many_subscribers", NULL,
			   "at most %d event streams at once", MAX_SUBS);
		na_reply_err(req, &err);
		return;
	}
	const char *last = na_req_header(req, "Last-Event-ID");
	struct sub *s = calloc(1, sizeof(*s));
	if (!s) {
		na_err_t err = NA_ERR_INIT;
		na_err_errno(&err, ENOMEM, "subscribe");
		na_reply_err(req, &err);
		return;
	}
	s->req = req;
	s->next = ev.subs;
	ev.subs = s;
	ev.nsubs++;
	na_stream_begin(req, unsubscribe, NULL);
	char hello[64];
	int n = snprintf(hello, sizeof(hello), "retry: 2000\n: last id %llu\n\n", ev.base + ev.seq);
	if (na_stream_send(req, hello, (size_t)n) < 0)
		return;
	if (last && *last)
		replay(req, last);
}

static void on_heartbeat(uv_timer_t *t)
{
	(void)t;
	/* Comments keep proxies from timing the stream out and reveal dead peers. */
	static const char ping[] = ": keepalive\n\n";
	broadcast(ping, sizeof(ping) - 1);
}

static const na_route_t routes[] = {
    {"GET", "/v1/events", h_events, NULL},
};

int na_events_init(uv_loop_t *loop, na_api_t *api, na_err_t *err)
{
	if (na_api_register(api, routes, NA_ARRAY_SIZE(routes), err) < 0)
		return -1;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	ev.base =
	    (unsigned long long)now.tv_sec * 1000000ULL + (unsigned long long)now.tv_nsec / 1000;
	ev.seq = 0;
	uv_timer_init(loop, &ev.heartbeat);
	uv_timer_start(&ev.heartbeat, on_heartbeat, HEARTBEAT_MS, HEARTBEAT_MS);
	uv_unref((uv_handle_t *)&ev.heartbeat);
	ev.up = 1;
	return 0;
}

void na_events_close_all(void)
{
	/* The transport's drain closes every stream, which unsubscribes it. */
	if (ev.up)
		uv_timer_stop(&ev.heartbeat);
}

void na_events_fini(void)
{
	for (int i = 0; i < RING; i++) {
		free(ev.ring[i]);
		ev.ring[i] = NULL;
	}
	if (ev.up)
		uv_close((uv_handle_t *)&ev.heartbeat, NULL);
	ev.up = 0;
}
