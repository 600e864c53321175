/* The two etcd threads behind etcd_sync.c. Every etcd call blocks (for
 * seconds while etcd is away), so none runs on the loop thread:
 *  - the ops thread runs claims, publishes and withdrawals one by one, in the
 *    order the loop thread queued them, and the full re-publish (with removal
 *    of our stale keys) whenever etcd comes back and every minute;
 *  - the watch thread learns the others' endpoints: a full range, then a
 *    watch from the range's revision + 1; after an error, a compaction or a
 *    kick (every 30 s, as a backstop) a full range again.
 * They see only records and talk to the loop thread through vx_etcd_post. */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "netagent/etcd_legacy.h"
#include "netagent/log.h"
#include "netagent/util.h"
#include "netagent/validate.h"
#include "vxlan/etcd_sync.h"

#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 2000
#define FULL_SYNC_MS   60000

/* What the ops thread last published for one endpoint: the address whose
 * claim it must release when the endpoint moves or goes. */
struct pubent {
	struct pubent *next;
	char net[64], ep[64];
	uint32_t ip;
};

static struct {
	na_etcdl_t *etcd;
	char us[64];
	atomic_int stop, kick, reachable;
	pthread_t ops_tid, watch_tid;
	int ops_up, watch_up;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct vx_eop *head, **tail;
	struct pubent *pubs; /* ops thread only */
} T = {.lock = PTHREAD_MUTEX_INITIALIZER, .reachable = -1};

/* ---- keys ---------------------------------------------------------------- */

static void ep_key(char *buf, size_t len, const char *net, const char *host, const char *ep)
{
	snprintf(buf, len, VX_ETCD_EPS "%s/%s/%s", net, host, ep);
}

static void claim_key(char *buf, size_t len, const char *net, uint32_t ip)
{
	char a[16];
	na_ipv4_fmt(ip, a, sizeof(a));
	snprintf(buf, len, VX_ETCD_IPAM "%s/%s", net, a);
}

static void claim_val(char *buf, size_t len, const char *ep)
{
	snprintf(buf, len, "%s/%s", T.us, ep);
}

/* ---- shared helpers ------------------------------------------------------ */

/* GET /v1/host shows what the last call saw; logs only the transitions. */
static void reach(int ok, const char *detail)
{
	int was = atomic_exchange(&T.reachable, ok);
	if (ok) {
		if (was != 1)
			na_info("etcd reachable", "endpoint=%s", na_etcdl_endpoint(T.etcd));
	} else {
		if (was != 0)
			na_warn("etcd unreachable", "error=\"%s\"", detail);
	}
}

/* Sleeps ms, waking early on stop. */
static void nap(unsigned ms)
{
	for (unsigned t = 0; t < ms && !atomic_load(&T.stop); t += 50) {
		struct timespec ts = {0, 50 * 1000000L};
		nanosleep(&ts, NULL);
	}
}

static void post_simple(enum vx_eres_type type)
{
	struct vx_eres *r = calloc(1, sizeof(*r));
	if (!r)
		return;
	r->type = type;
	vx_etcd_post(r);
}

/* ---- ops thread ---------------------------------------------------------- */

static struct pubent **pub_find(const char *net, const char *ep)
{
	struct pubent **p = &T.pubs;
	for (; *p; p = &(*p)->next)
		if (!strcmp((*p)->net, net) && !strcmp((*p)->ep, ep))
			break;
	return p;
}

static void pubs_clear(void)
{
	while (T.pubs) {
		struct pubent *p = T.pubs;
		T.pubs = p->next;
		free(p);
	}
}

/* Remembers ip as r's published address; returns the previous one (0: none). */
static uint32_t pub_set(const struct vx_erec *r)
{
	struct pubent **pp = pub_find(r->net, r->ep), *p = *pp;
	if (!p) {
		if (!(p = calloc(1, sizeof(*p))))
			return 0; /* only an early claim release is lost: full sync cleans up */
		snprintf(p->net, sizeof(p->net), "%s", r->net);
		snprintf(p->ep, sizeof(p->ep), "%s", r->ep);
		p->next = T.pubs;
		T.pubs = p;
		p->ip = r->ip;
		return 0;
	}
	uint32_t old = p->ip;
	p->ip = r->ip;
	return old;
}

static uint32_t pub_del(const struct vx_erec *r)
{
	struct pubent **pp = pub_find(r->net, r->ep), *p = *pp;
	if (!p)
		return 0;
	uint32_t old = p->ip;
	*pp = p->next;
	free(p);
	return old;
}

/* Releases our claim of ip, only if it is still ours. */
static int release(const char *net, const char *ep, uint32_t ip, na_err_t *err)
{
	char key[200], val[140];
	claim_key(key, sizeof(key), net, ip);
	claim_val(val, sizeof(val), ep);
	return na_etcdl_delete_if_value(T.etcd, key, val, strlen(val), err) < 0 ? -1 : 0;
}

static int do_claim(const struct vx_erec *r, na_err_t *err)
{
	char key[200], val[140], ip[16];
	na_etcdl_kv_t cur = {0};
	claim_key(key, sizeof(key), r->net, r->ip);
	claim_val(val, sizeof(val), r->ep);
	na_ipv4_fmt(r->ip, ip, sizeof(ip));
	size_t vl = strlen(val);
	if (na_etcdl_put_if_absent(T.etcd, key, val, vl, 0, &cur, NULL, err) == 0)
		return 0;
	if (err->status == 409 && !strcmp(err->code, NA_ETCDL_EEXISTS)) {
		int ours = cur.value && cur.value_len == vl && !memcmp(cur.value, val, vl);
		char owner[160] = "?";
		if (cur.value)
			snprintf(owner, sizeof(owner), "%s", cur.value);
		na_etcdl_kv_clear(&cur);
		if (ours) {
			na_err_clear(err);
			return 0;
		}
		char *slash = strchr(owner, '/');
		if (slash)
			*slash = 0;
		return na_err_set(err, 409, "ip_in_use", "ip",
				  "%s is claimed in network %s by endpoint %s on host %s", ip,
				  r->net, slash ? slash + 1 : "?", owner);
	}
	na_etcdl_kv_clear(&cur);
	if (err->status == 503) {
		/* The answer may be lost after etcd applied the transaction:
		 * what the key holds now decides. */
		na_err_t e2 = NA_ERR_INIT;
		int got = na_etcdl_get(T.etcd, key, &cur, NULL, &e2);
		int ours = got == 1 && cur.value_len == vl && !memcmp(cur.value, val, vl);
		na_etcdl_kv_clear(&cur);
		if (ours) {
			na_err_clear(err);
			return 0;
		}
		char why[512];
		snprintf(why, sizeof(why), "%s", err->msg);
		return na_err_set(err, 503, NA_ETCDL_EUNAVAILABLE, NULL,
				  "cannot claim %s in network %s cluster-wide, etcd is unreachable "
				  "(%s); retry later",
				  ip, r->net, why);
	}
	na_err_prefix(err, "claim %s in network %s", ip, r->net);
	return -1;
}

static int do_publish(const struct vx_erec *r, int offline, na_err_t *err)
{
	uint32_t old = pub_set(r);
	if (offline)
		return 0; /* the full sync after reconnecting covers it */
	char key[256];
	cleanup_free char *v = vx_erec_value(r);
	ep_key(key, sizeof(key), r->net, r->host, r->ep);
	if (!v)
		return na_err_errno(err, ENOMEM, "publish %s", key);
	if (na_etcdl_put(T.etcd, key, v, strlen(v), 0, NULL, err) < 0)
		return -1;
	/* The endpoint moved: its old address is free for the others again. */
	if (old && old != r->ip && release(r->net, r->ep, old, err) < 0)
		return -1;
	return 0;
}

static int do_unpublish(const struct vx_erec *r, int offline, na_err_t *err)
{
	uint32_t old = pub_del(r);
	if (offline)
		return 0;
	char key[256];
	ep_key(key, sizeof(key), r->net, T.us, r->ep);
	if (na_etcdl_delete(T.etcd, key, NULL, NULL, err) < 0 ||
	    release(r->net, r->ep, r->ip, err) < 0)
		return -1;
	if (old && old != r->ip && release(r->net, r->ep, old, err) < 0)
		return -1;
	return 0;
}

static ssize_t rec_index(const struct vx_erec *v, size_t n, const char *net, const char *ep)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].net, net) && !strcmp(v[i].ep, ep))
			return (ssize_t)i;
	return -1;
}

/* Endpoint keys: ours that nobody wants go, wanted ones are (re)written
 * when missing or different. */
static int sync_endpoints(const struct vx_eop *op, na_err_t *err)
{
	na_etcdl_range_t rg;
	if (na_etcdl_range(T.etcd, VX_ETCD_EPS, &rg, err) < 0)
		return -1;
	cleanup_free char *seen = calloc(op->npub + 1, 1);
	int rc = seen ? 0 : na_err_errno(err, ENOMEM, "full sync");
	for (size_t i = 0; rc == 0 && i < rg.n; i++) {
		struct vx_erec k;
		if (vx_erec_parse_key(rg.items[i].key, &k) < 0 || strcmp(k.host, T.us) != 0)
			continue;
		ssize_t x = rec_index(op->pub, op->npub, k.net, k.ep);
		if (x < 0) {
			na_info("withdrew stale endpoint from etcd", "key=%s", rg.items[i].key);
			rc = na_etcdl_delete(T.etcd, rg.items[i].key, NULL, NULL, err);
			continue;
		}
		seen[x] = 1;
		cleanup_free char *v = vx_erec_value(&op->pub[x]);
		if (v && strcmp(v, rg.items[i].value) != 0)
			rc = na_etcdl_put(T.etcd, rg.items[i].key, v, strlen(v), 0, NULL, err);
	}
	na_etcdl_range_clear(&rg);
	for (size_t i = 0; rc == 0 && i < op->npub; i++) {
		if (seen[i])
			continue;
		char key[256];
		cleanup_free char *v = vx_erec_value(&op->pub[i]);
		ep_key(key, sizeof(key), op->pub[i].net, T.us, op->pub[i].ep);
		if (v)
			rc = na_etcdl_put(T.etcd, key, v, strlen(v), 0, NULL, err);
	}
	return rc;
}

/* Claims: ours that no local endpoint uses go (crash between claim and
 * attach, failed attach, release lost while etcd was away); published
 * endpoints get theirs back if etcd lost it. */
static int sync_claims(const struct vx_eop *op, na_err_t *err)
{
	na_etcdl_range_t rg;
	if (na_etcdl_range(T.etcd, VX_ETCD_IPAM, &rg, err) < 0)
		return -1;
	size_t ul = strlen(T.us), pl = strlen(VX_ETCD_IPAM);
	cleanup_free char *held = calloc(op->npub + 1, 1);
	int rc = held ? 0 : na_err_errno(err, ENOMEM, "full sync");
	for (size_t i = 0; rc == 0 && i < rg.n; i++) {
		na_etcdl_kv_t *kv = &rg.items[i];
		char net[64] = "";
		const char *k = kv->key + pl, *slash = strchr(k, '/');
		uint32_t ip;
		if (!slash || (size_t)(slash - k) >= sizeof(net) ||
		    na_ipv4_parse(slash + 1, &ip) < 0)
			continue;
		memcpy(net, k, (size_t)(slash - k));
		if (kv->value_len <= ul + 1 || strncmp(kv->value, T.us, ul) || kv->value[ul] != '/')
			continue; /* another agent's */
		const char *ep = kv->value + ul + 1;
		ssize_t x = rec_index(op->pub, op->npub, net, ep);
		if (x >= 0 && op->pub[x].ip == ip)
			held[x] = 1;
		x = rec_index(op->keep, op->nkeep, net, ep);
		if (x >= 0 && op->keep[x].ip == ip)
			continue;
		na_info("released stale address claim", "key=%s owner=%s", kv->key, kv->value);
		rc = release(net, ep, ip, err);
	}
	na_etcdl_range_clear(&rg);
	for (size_t i = 0; rc == 0 && i < op->npub; i++) {
		if (held[i])
			continue;
		struct vx_erec r = op->pub[i];
		if (do_claim(&r, err) == 0)
			continue;
		if (err->status != 409)
			return -1;
		/* Both hosts use the address: nothing safe to do automatically. */
		na_warn("address of a local endpoint is claimed by another host",
			"network=%s endpoint=%s error=\"%s\"", r.net, r.ep, err->msg);
		na_err_clear(err);
	}
	return rc;
}

static int full_sync(const struct vx_eop *op, na_err_t *err)
{
	if (sync_endpoints(op, err) < 0 || sync_claims(op, err) < 0)
		return -1;
	pubs_clear();
	for (size_t i = 0; i < op->npub; i++)
		pub_set(&op->pub[i]);
	return 0;
}

static void cond_wait_until(unsigned long long until_ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	unsigned long long now = na_now_ms();
	unsigned long long d = until_ms > now ? until_ms - now : 0;
	if (d > 1000)
		d = 1000;
	ts.tv_sec += (time_t)(d / 1000);
	ts.tv_nsec += (long)(d % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&T.cond, &T.lock, &ts);
}

static void *ops_main(void *arg)
{
	(void)arg;
	/* need_full: etcd may miss some of our writes; asked: when a snapshot
	 * of the local endpoints was requested from the loop thread (0: not). */
	int need_full = 1;
	unsigned backoff = BACKOFF_MIN_MS;
	unsigned long long retry_at = 0, full_at = 0, asked = 0;
	pthread_mutex_lock(&T.lock);
	while (!atomic_load(&T.stop)) {
		unsigned long long now = na_now_ms();
		struct vx_eop *op = T.head;
		if (!op) {
			if (asked && now - asked > 5000)
				asked = 0; /* the loop thread could not answer: ask again */
			if (need_full && !asked && now >= retry_at) {
				asked = now;
				pthread_mutex_unlock(&T.lock);
				post_simple(VX_ERES_SNAPSHOT);
				pthread_mutex_lock(&T.lock);
			} else if (!need_full && now >= full_at) {
				need_full = 1; /* periodic: catches keys removed behind our back */
				retry_at = now;
			} else {
				cond_wait_until(need_full ? (asked ? now + 1000 : retry_at)
							  : full_at);
			}
			continue;
		}
		T.head = op->next;
		if (!T.head)
			T.tail = &T.head;
		pthread_mutex_unlock(&T.lock);

		na_err_t err = NA_ERR_INIT;
		int rc = 0;
		switch (op->type) {
		case VX_EOP_CLAIM: {
			struct vx_eres *r = calloc(1, sizeof(*r));
			rc = do_claim(&op->rec, &err);
			if (r) {
				r->type = VX_ERES_CLAIM;
				r->claim = NA_STEAL(op->claim);
				r->rc = rc;
				r->err = err;
				vx_etcd_post(r);
			}
			if (rc == 0 || err.status == 409) {
				reach(1, NULL);
				if (need_full && !asked)
					retry_at = 0; /* etcd is back: re-publish now */
			} else if (err.status == 503) {
				reach(0, err.msg);
			}
			rc = 0;
			break;
		}
		case VX_EOP_PUBLISH:
			rc = do_publish(&op->rec, need_full, &err);
			break;
		case VX_EOP_UNPUBLISH:
			rc = do_unpublish(&op->rec, need_full, &err);
			break;
		case VX_EOP_GONE:
			if (*pub_find(op->rec.net, op->rec.ep) && !need_full) {
				na_warn("endpoint removed from etcd behind our back, re-publishing",
					"network=%s endpoint=%s", op->rec.net, op->rec.ep);
				need_full = 1;
				retry_at = 0;
			}
			break;
		case VX_EOP_SNAPSHOT:
			asked = 0;
			rc = full_sync(op, &err);
			if (rc == 0) {
				/* Routine every minute; worth a line after trouble. */
				na_log(backoff > BACKOFF_MIN_MS || !full_at ? NA_LOG_INFO
									    : NA_LOG_DEBUG,
				       "local endpoints published to etcd", "endpoints=%zu",
				       op->npub);
				reach(1, NULL);
				need_full = 0;
				backoff = BACKOFF_MIN_MS;
				full_at = na_now_ms() + FULL_SYNC_MS;
			}
			break;
		}
		if (rc < 0) {
			na_log(backoff == BACKOFF_MIN_MS ? NA_LOG_WARN : NA_LOG_DEBUG,
			       "etcd sync failed, will re-publish everything",
			       "retry_ms=%u error=\"%s\"", backoff, err.msg);
			if (err.status == 503)
				reach(0, err.msg);
			need_full = 1;
			retry_at = na_now_ms() + backoff;
			backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
		}
		vx_eop_free(op);
		pthread_mutex_lock(&T.lock);
	}
	pthread_mutex_unlock(&T.lock);
	return NULL;
}

/* ---- watch thread -------------------------------------------------------- */

static int on_event(const na_etcdl_event_t *ev, void *ud)
{
	(void)ud;
	struct vx_eres *r = calloc(1, sizeof(*r));
	if (!r || vx_erec_parse_key(ev->key, &r->rec) < 0) {
		free(r);
		return 0;
	}
	if (!strcmp(r->rec.host, T.us)) {
		/* Ours, deleted: by us, or behind our back (operator, restore
		 * of an old snapshot): the ops thread tells them apart. */
		struct vx_eop *op = ev->type == NA_ETCDL_DELETE ? calloc(1, sizeof(*op)) : NULL;
		if (op) {
			op->type = VX_EOP_GONE;
			op->rec = r->rec;
			vx_ethreads_push(op);
		}
		free(r);
		return 0;
	}
	r->type = ev->type == NA_ETCDL_PUT ? VX_ERES_PUT : VX_ERES_DEL;
	if (r->type == VX_ERES_PUT && vx_erec_parse_value(ev->value, ev->value_len, &r->rec) < 0) {
		/* Unusable: forget what we had rather than keep a stale entry. */
		na_warn("ignoring malformed endpoint in etcd", "key=%s", ev->key);
		r->type = VX_ERES_DEL;
	}
	vx_etcd_post(r);
	return 0;
}

/* Posts every endpoint published by the others. */
static void post_resync(const na_etcdl_range_t *rg)
{
	struct vx_eres *r = calloc(1, sizeof(*r));
	if (!r || !(r->recs = calloc(rg->n + 1, sizeof(*r->recs)))) {
		free(r);
		return;
	}
	r->type = VX_ERES_RESYNC;
	for (size_t i = 0; i < rg->n; i++) {
		struct vx_erec *x = &r->recs[r->nrecs];
		if (vx_erec_parse_key(rg->items[i].key, x) < 0 || !strcmp(x->host, T.us))
			continue;
		if (vx_erec_parse_value(rg->items[i].value, rg->items[i].value_len, x) < 0) {
			na_warn("ignoring malformed endpoint in etcd", "key=%s", rg->items[i].key);
			continue;
		}
		r->nrecs++;
	}
	vx_etcd_post(r);
}

static void *watch_main(void *arg)
{
	(void)arg;
	unsigned backoff = BACKOFF_MIN_MS;
	int first = 1;
	while (!atomic_load(&T.stop)) {
		/* kick doubles as the watch's stop flag: clear it, then look at
		 * stop again, so a stop set meanwhile is never missed. */
		atomic_store(&T.kick, 0);
		if (atomic_load(&T.stop))
			break;
		na_etcdl_range_t rg;
		na_err_t err = NA_ERR_INIT;
		if (na_etcdl_range(T.etcd, VX_ETCD_EPS, &rg, &err) < 0) {
			reach(0, err.msg);
			if (first)
				post_simple(VX_ERES_FIRST);
			first = 0;
			nap(backoff);
			backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
			continue;
		}
		reach(1, NULL);
		post_resync(&rg);
		first = 0;
		int64_t rev = rg.revision;
		na_etcdl_range_clear(&rg);
		unsigned long long t0 = na_now_ms();
		int rc =
		    na_etcdl_watch(T.etcd, VX_ETCD_EPS, rev + 1, on_event, NULL, &T.kick, &err);
		if (atomic_load(&T.stop))
			break;
		if (rc == NA_ETCDL_WATCH_STOPPED) {
			backoff = BACKOFF_MIN_MS;
			continue; /* kicked: full range now */
		}
		if (rc == NA_ETCDL_WATCH_COMPACTED) {
			na_info("etcd watch compacted, full resync", "error=\"%s\"", err.msg);
		} else {
			na_warn("etcd watch failed, full resync", "retry_ms=%u error=\"%s\"",
				backoff, err.msg);
			reach(0, err.msg);
		}
		if (na_now_ms() - t0 > 5000)
			backoff = BACKOFF_MIN_MS;
		nap(backoff);
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
	}
	return NULL;
}

/* ---- lifecycle ----------------------------------------------------------- */

void vx_eop_free(struct vx_eop *op)
{
	if (!op)
		return;
	free(op->claim);
	free(op->pub);
	free(op->keep);
	free(op);
}

void vx_ethreads_push(struct vx_eop *op)
{
	op->next = NULL;
	pthread_mutex_lock(&T.lock);
	*T.tail = op;
	T.tail = &op->next;
	pthread_cond_signal(&T.cond);
	pthread_mutex_unlock(&T.lock);
}

void vx_ethreads_kick(void)
{
	atomic_store(&T.kick, 1);
}

int vx_ethreads_start(const char *endpoints, const char *us, na_err_t *err)
{
	T.etcd = na_etcdl_new(endpoints, err);
	if (!T.etcd)
		return -1;
	snprintf(T.us, sizeof(T.us), "%s", us);
	T.head = NULL;
	T.tail = &T.head;
	atomic_store(&T.stop, 0);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&T.cond, &ca);
	pthread_condattr_destroy(&ca);
	int e = pthread_create(&T.ops_tid, NULL, ops_main, NULL);
	T.ops_up = e == 0;
	if (e == 0) {
		e = pthread_create(&T.watch_tid, NULL, watch_main, NULL);
		T.watch_up = e == 0;
	}
	if (e != 0) {
		vx_ethreads_stop();
		return na_err_errno(err, e, "start etcd threads");
	}
	return 0;
}

void vx_ethreads_stop(void)
{
	atomic_store(&T.stop, 1);
	atomic_store(&T.kick, 1);
	pthread_mutex_lock(&T.lock);
	pthread_cond_broadcast(&T.cond);
	pthread_mutex_unlock(&T.lock);
	if (T.ops_up)
		pthread_join(T.ops_tid, NULL);
	if (T.watch_up)
		pthread_join(T.watch_tid, NULL);
	T.ops_up = T.watch_up = 0;
	while (T.head) {
		struct vx_eop *op = T.head;
		T.head = op->next;
		vx_eop_free(op);
	}
	T.tail = &T.head;
	pubs_clear();
	pthread_cond_destroy(&T.cond);
	na_etcdl_free(T.etcd);
	T.etcd = NULL;
}
