/* Integration test of the etcd session (netagent/etcd.h) against real
 * etcd-server members started by test_etcd.sh. Usage:
 *   etcd_test basic|lease-timing|close URL          (one member)
 *   etcd_test failover|compaction URL,URL,URL      (three members)
 *   etcd_test tls URL CA CERT KEY OTHER_CA OTHER_CERT OTHER_KEY
 * This file: the harness; the scenarios are in etcd_test_basic.c (kv, txn,
 * leases, keeper, watches, progress, compaction, 5,000 keys, cancel,
 * endpoints) and etcd_test_fail.c (failures, lease timing, TLS, close). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "netagent/util.h"
#include "tests/integration/etcd_test.h"

uv_loop_t *loop;
char *urls[8];
int nurls;
static int n_failed;

void ok(int cond, const char *fmt, ...)
{
	va_list ap;
	printf("%s - ", cond ? "ok" : "not ok");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	if (!cond)
		n_failed++;
}

void diag(const char *fmt, ...)
{
	va_list ap;
	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static void on_wake(uv_timer_t *t)
{
	*(int *)t->data = 1;
}

int run_until(const int *flag, long ms)
{
	static uv_timer_t t;
	static int init;
	int expired = 0;
	if (!init) {
		/* stays referenced: with nothing else active (an idle session) an
		 * unreferenced timer lets UV_RUN_ONCE return at once, unfired */
		uv_timer_init(loop, &t);
		init = 1;
	}
	t.data = &expired;
	uv_timer_start(&t, on_wake, (uint64_t)ms, 0);
	while (!(flag && *flag) && !expired)
		uv_run(loop, UV_RUN_ONCE);
	uv_timer_stop(&t);
	return flag ? *flag : 0;
}

void run_for(long ms)
{
	run_until(NULL, ms);
}

/* ---- control channel: "CTL …" out, one line back on stdin ---- */

static uv_pipe_t ctl_in;
static int ctl_ready, ctl_answered;
static char ctl_buf[256];
static size_t ctl_len;

static void ctl_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
	(void)h, (void)sz;
	b->base = ctl_buf + ctl_len;
	b->len = sizeof(ctl_buf) - 1 - ctl_len;
}

static void ctl_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	(void)s, (void)b;
	if (n < 0) {
		fprintf(stderr, "etcd_test: control channel closed\n");
		exit(3);
	}
	ctl_len += (size_t)n;
	if (memchr(ctl_buf, '\n', ctl_len) || ctl_len >= sizeof(ctl_buf) - 1) {
		ctl_answered = 1;
		ctl_len = 0;
		uv_read_stop((uv_stream_t *)&ctl_in);
	}
}

void ctl(const char *fmt, ...)
{
	va_list ap;
	if (!ctl_ready) {
		uv_pipe_init(loop, &ctl_in, 0);
		uv_pipe_open(&ctl_in, 0);
		ctl_ready = 1;
	}
	printf("CTL ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	ctl_answered = 0;
	uv_read_start((uv_stream_t *)&ctl_in, ctl_alloc, ctl_read);
	if (!run_until(&ctl_answered, 60000)) {
		fprintf(stderr, "etcd_test: no answer to a CTL request\n");
		exit(3);
	}
}

int member_of(const char *url)
{
	for (int i = 0; i < nurls; i++)
		if (!strcmp(urls[i], url))
			return i + 1;
	return 0;
}

const char *preferred(na_etcd_t *e)
{
	static char buf[256];
	cleanup_json json_t *o = json_object();
	na_etcd_info(e, o);
	snprintf(buf, sizeof(buf), "%s", json_string_value(json_object_get(o, "endpoint")) ?: "");
	return buf;
}

/* ---- sessions and results ---- */

na_etcd_t *session(const char *eps, const char *ca, const char *cert, const char *key)
{
	na_err_t err = NA_ERR_INIT;
	na_etcd_t *e = NULL;
	na_etcd_config_t c = {.endpoints = eps, .ca = ca, .cert = cert, .key = key};
	if (na_etcd_open(loop, &c, &e, &err) < 0) {
		fprintf(stderr, "etcd_test: na_etcd_open(%s): %s\n", eps, err.msg);
		exit(2);
	}
	return e;
}

void session_end(na_etcd_t *e)
{
	na_etcd_close(e);
	run_for(200);
}

static void kv_copy(na_etcd_kv_t *d, const na_etcd_kv_t *s)
{
	*d = *s;
	d->key = malloc(s->key_len + 1);
	d->value = malloc(s->value_len + 1);
	memcpy(d->key, s->key, s->key_len + 1);
	memcpy(d->value, s->value, s->value_len + 1);
}

void res_clear(res_t *r)
{
	for (size_t i = 0; i < r->nkvs; i++)
		na_etcd_kv_clear(&r->kvs[i]);
	free(r->kvs);
	memset(r, 0, sizeof(*r));
}

void res_cb(void *ud, int rc, const na_err_t *err, const na_etcd_result_t *x)
{
	res_t *r = ud;
	r->calls++;
	r->done = 1;
	r->rc = rc;
	r->at_ms = na_now_ms();
	if (rc < 0) {
		r->err = *err;
		return;
	}
	r->revision = x->revision;
	r->succeeded = x->succeeded;
	r->retried = x->retried;
	r->nresps = (int)x->nresps;
	r->lease_id = x->lease_id;
	r->ttl = x->ttl;
	r->member_id = x->member_id;
	r->leader = x->leader;
	snprintf(r->version, sizeof(r->version), "%s", x->version);
	snprintf(r->endpoint, sizeof(r->endpoint), "%s", x->endpoint);
	for (size_t i = 0; i < x->nresps; i++)
		if (x->resps[i].type == NA_ETCD_OP_DELETE)
			r->deleted = x->resps[i].deleted;
	size_t n;
	const na_etcd_kv_t *kvs = na_etcd_result_kvs(x, &n);
	if (n && !r->kvs) {
		r->kvs = calloc(n, sizeof(*r->kvs));
		for (size_t i = 0; i < n; i++)
			kv_copy(&r->kvs[i], &kvs[i]);
		r->nkvs = n;
	}
}

res_t *wait_res(res_t *r, int qrc, na_err_t *qerr)
{
	if (qrc < 0) {
		r->rc = qrc;
		r->err = *qerr;
		r->done = 1;
		return r;
	}
	if (!run_until(&r->done, 30000)) {
		r->rc = -99;
		snprintf(r->err.msg, sizeof(r->err.msg), "no callback within 30 s");
	}
	return r;
}

const char *res_val(const res_t *r)
{
	return r->nkvs ? r->kvs[0].value : "";
}

/* ---- watch collector ---- */

static void wc_reset(void *ud, const na_etcd_kv_t *kvs, size_t n, int64_t rev)
{
	wcol_t *c = ud;
	c->resets++;
	c->reset_n = n;
	c->reset_rev = rev;
	snprintf(c->reset_first, sizeof(c->reset_first), "%s", n ? kvs[0].key : "");
}

static void wc_event(void *ud, const na_etcd_event_t *ev)
{
	wcol_t *c = ud;
	if (c->nev == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 256;
		c->ev = realloc(c->ev, c->cap * sizeof(*c->ev));
	}
	wev_t *w = &c->ev[c->nev++];
	w->del = ev->type == NA_ETCD_DELETE;
	w->rev = ev->mod_revision;
	snprintf(w->key, sizeof(w->key), "%s", ev->key);
	snprintf(w->value, sizeof(w->value), "%s", ev->value);
}

static void wc_state(void *ud, int up, const na_err_t *err)
{
	wcol_t *c = ud;
	if (up) {
		c->ups++;
		c->last_up_ms = na_now_ms();
	} else {
		c->downs++;
		c->last_down_ms = na_now_ms();
		snprintf(c->last_down, sizeof(c->last_down), "%s", err ? err->msg : "");
	}
}

const na_etcd_watch_ops_t wcol_ops = {wc_reset, wc_event, wc_state};

void wcol_free(wcol_t *c)
{
	free(c->ev);
	memset(c, 0, sizeof(*c));
}

/* ---- writer ---- */

static void writer_next(writer_t *w);

static void on_written(void *ud, int rc, const na_err_t *err, const na_etcd_result_t *r)
{
	writer_t *w = ud;
	unsigned long long dt = na_now_ms() - w->sent_at;
	w->inflight = 0;
	if (dt > w->max_ms)
		w->max_ms = dt;
	if (rc < 0) {
		w->failc++;
		snprintf(w->last_err, sizeof(w->last_err), "%s", err->msg);
	} else {
		w->okc++;
		w->last_rev = r->revision;
		if (r->retried && w->nretried < WRITER_MAX_RETRIED)
			w->retried[w->nretried++] = w->next - 1;
	}
	if (w->running)
		writer_next(w);
}

static void writer_next(writer_t *w)
{
	char key[96], val[16];
	na_err_t err = NA_ERR_INIT;
	snprintf(key, sizeof(key), "%s%06d", w->prefix, w->next);
	snprintf(val, sizeof(val), "%d", w->next);
	w->next++;
	w->sent_at = na_now_ms();
	w->inflight = 1;
	if (na_etcd_put(w->e, key, val, strlen(val), 0, &w->opts, on_written, w, &err) < 0) {
		w->inflight = 0;
		w->failc++;
		snprintf(w->last_err, sizeof(w->last_err), "%s", err.msg);
	}
}

void writer_start(writer_t *w)
{
	w->running = 1;
	writer_next(w);
}

void writer_stop(writer_t *w)
{
	w->running = 0;
	for (int i = 0; i < 300 && w->inflight; i++)
		run_for(50);
}

static int was_retried(const writer_t *w, int seq)
{
	for (int i = 0; i < w->nretried; i++)
		if (w->retried[i] == seq)
			return 1;
	return 0;
}

void check_sequence(const char *what, const writer_t *w, const wcol_t *c)
{
	size_t want = (size_t)w->okc, bad = 0, n = 0, again = 0;
	int64_t last = 0;
	int expect = 0;
	for (size_t i = 0; i < c->nev; i++) {
		const wev_t *ev = &c->ev[i];
		if (strncmp(ev->key, w->prefix, strlen(w->prefix)))
			continue;
		int seq = atoi(ev->key + strlen(w->prefix));
		/* a retried put applied twice: a second revision of the same key */
		int reapplied = seq == expect - 1 && was_retried(w, seq);
		if ((seq != expect && !reapplied) || ev->rev <= last || ev->del ||
		    atoi(ev->value) != seq) {
			if (bad++ < 5)
				diag("%s: event %zu is %s=%s rev %lld, expected #%d after rev %lld",
				     what, i, ev->key, ev->value, (long long)ev->rev, expect,
				     (long long)last);
		}
		if (reapplied) {
			again++;
		} else {
			expect = seq + 1;
			n++;
		}
		last = ev->rev;
	}
	ok(n == want && !bad,
	   "%s: the watch saw each of the %zu acknowledged puts, in order, no revision twice "
	   "(%zu distinct, %zu re-applied after a retry, %d puts retried)",
	   what, want, n, again, w->nretried);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr,
			"usage: %s basic|lease-timing|close|failover|compaction|tls URL[,URL…] …\n",
			argv[0]);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	loop = uv_default_loop();
	char *list = strdup(argv[2]);
	for (char *tok = strtok(list, ","); tok && nurls < 8; tok = strtok(NULL, ","))
		urls[nurls++] = tok;
	if (!strcmp(argv[1], "basic"))
		scenario_basic();
	else if (!strcmp(argv[1], "failover"))
		scenario_failover();
	else if (!strcmp(argv[1], "compaction"))
		scenario_compaction();
	else if (!strcmp(argv[1], "lease-timing"))
		scenario_lease_timing();
	else if (!strcmp(argv[1], "close"))
		scenario_close();
	else if (!strcmp(argv[1], "tls") && argc == 9)
		scenario_tls(argv[3], argv[4], argv[5], argv[6], argv[7], argv[8]);
	else
		return fprintf(stderr, "etcd_test: unknown scenario %s\n", argv[1]), 2;
	if (ctl_ready)
		uv_close((uv_handle_t *)&ctl_in, NULL);
	run_for(100);
	free(list);
	return n_failed ? 1 : 0;
}
