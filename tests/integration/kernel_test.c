/* Drives vxlan/kernel.h, netagent/nl.h and netagent/nsworker.h from the
 * command line inside a simulated host, for tests/integration/test_kernel.sh.
 *
 *   kernel_test --host NSPATH --run-dir DIR --name PREFIX COMMAND ARGS...
 *
 * The program enters the host namespace first, on its main thread, before
 * any other thread exists; every namespace it creates goes under
 * DIR/netns/PREFIX-*. Check results print as TAP lines without numbers
 * ("ok - desc"); the wrapper numbers them. */
#include "netagent/agent.h"
#include "netagent/log.h"
#include "netagent/nl.h"
#include "netagent/nsworker.h"
#include "netagent/util.h"
#include "vxlan/kernel.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const char *run_dir, *prefix;
static int opt_mtu; /* --mtu: the network's MTU for every command */
static na_underlay_t underlay;
static int failures;

static void tap(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tap(bool ok, const char *fmt, ...)
{
	va_list ap;
	printf("%s - ", ok ? "ok" : "not ok");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	if (!ok)
		failures++;
}

static void die_err(const char *what, const na_err_t *err)
{
	fprintf(stderr, "error: %s: %d %s: %s\n", what, err->status, err->code, err->msg);
	exit(1);
}

static void net_path(char *buf, size_t n, const char *name)
{
	na_err_t err = NA_ERR_INIT;
	if (vx_k_netns_path(buf, n, run_dir, prefix, name, &err) < 0)
		die_err("path", &err);
}

static struct vx_k_net mknet(char *path, size_t n, const char *name, uint32_t vni, int mtu)
{
	net_path(path, n, name);
	return (struct vx_k_net){
	    .netns_path = path, .vni = vni, .mtu = mtu ? mtu : opt_mtu, .underlay = &underlay};
}

static uint32_t parse_ip(const char *s, int *plen)
{
	char buf[64];
	struct in_addr a;
	snprintf(buf, sizeof(buf), "%s", s);
	char *slash = strchr(buf, '/');
	if (slash) {
		*slash = 0;
		if (plen)
			*plen = atoi(slash + 1);
	}
	if (inet_pton(AF_INET, buf, &a) != 1) {
		fprintf(stderr, "bad address %s\n", s);
		exit(2);
	}
	return ntohl(a.s_addr);
}

static void parse_mac(const char *s, uint8_t m[6])
{
	if (sscanf(s, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) !=
	    6) {
		fprintf(stderr, "bad mac %s\n", s);
		exit(2);
	}
}

static char *ipstr(uint32_t ip, char *b)
{
	uint32_t be = htonl(ip);
	inet_ntop(AF_INET, &be, b, INET_ADDRSTRLEN);
	return b;
}

static char *macstr(const uint8_t *m, char *b)
{
	sprintf(b, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
	return b;
}

static void print_state(const struct vx_k_state *s)
{
	char a[INET_ADDRSTRLEN], b[INET_ADDRSTRLEN], m[18];
	printf("exists %d\n", s->exists);
	for (size_t i = 0; i < s->nlinks; i++) {
		const struct vx_k_link *l = &s->links[i];
		printf("link %s index %d kind %s mtu %d up %d master %d mac %s", l->name,
		       l->ifindex, *l->kind ? l->kind : "-", l->mtu, l->up, l->master,
		       macstr(l->mac, m));
		if (!strcmp(l->kind, "vxlan"))
			printf(" vni %u port %u local %s link %d learning %d proxy %d", l->vni,
			       l->port, ipstr(l->local, a), l->vx_link, l->vx_learning,
			       l->vx_proxy);
		if (l->brport)
			printf(" brport learning %d neigh_suppress %d", l->br_learning,
			       l->br_neigh_suppress);
		printf("\n");
	}
	for (size_t i = 0; i < s->nfdb; i++)
		printf("fdb %s dst %s state 0x%x\n", macstr(s->fdb[i].mac, m),
		       ipstr(s->fdb[i].dst, a), s->fdb[i].state);
	for (size_t i = 0; i < s->nneigh; i++)
		printf("neigh %s lladdr %s state 0x%x\n", ipstr(s->neigh[i].ip, b),
		       macstr(s->neigh[i].mac, m), s->neigh[i].state);
}

/* ---- selftest: nsworker and namespace helpers ---- */

#define NKEYS 3
#define NJOBS 30

struct order {
	pthread_mutex_t mu;
	int running, max_running;
	int seen[NKEYS];
	bool out_of_order, key_overlap;
	int key_running[NKEYS];
	int done_calls;
	pthread_t loop_thread;
	bool done_off_loop;
};

struct ojob {
	struct order *o;
	int key, idx;
};

static int order_fn(void *arg, na_err_t *err)
{
	struct ojob *j = arg;
	struct order *o = j->o;
	(void)err;
	pthread_mutex_lock(&o->mu);
	if (o->key_running[j->key]++)
		o->key_overlap = true;
	if (o->seen[j->key] != j->idx)
		o->out_of_order = true;
	o->seen[j->key]++;
	if (++o->running > o->max_running)
		o->max_running = o->running;
	pthread_mutex_unlock(&o->mu);
	usleep(2000);
	pthread_mutex_lock(&o->mu);
	o->running--;
	o->key_running[j->key]--;
	pthread_mutex_unlock(&o->mu);
	return j->idx == 7 ? na_err_set(err, 418, "teapot", NULL, "job %d fails", j->idx) : 0;
}

static void order_done(void *arg, int rc, const na_err_t *err)
{
	struct ojob *j = arg;
	if (!pthread_equal(pthread_self(), j->o->loop_thread))
		j->o->done_off_loop = true;
	if ((j->idx == 7) != (rc < 0 && err->status == 418))
		j->o->out_of_order = true;
	j->o->done_calls++;
	free(j);
}

static ino_t thread_ns(void)
{
	struct stat st;
	return stat("/proc/thread-self/ns/net", &st) == 0 ? st.st_ino : 0;
}

struct nscheck {
	ino_t home, inside;
};

static int ns_fn(void *arg, na_err_t *err)
{
	struct nscheck *c = arg;
	(void)err;
	c->inside = thread_ns();
	return 0;
}

static void ns_done(void *arg, int rc, const na_err_t *err)
{
	(void)arg;
	(void)rc;
	(void)err;
}

static int back_fn(void *arg, na_err_t *err)
{
	(void)err;
	*(ino_t *)arg = thread_ns();
	return 0;
}

static int selftest(void)
{
	uv_loop_t loop;
	na_err_t err = NA_ERR_INIT;
	struct order o = {.mu = PTHREAD_MUTEX_INITIALIZER, .loop_thread = pthread_self()};
	char path[512], key[16];

	uv_loop_init(&loop);
	if (na_nsworker_init(&loop, 4, &err) < 0)
		die_err("nsworker init", &err);
	for (int i = 0; i < NJOBS; i++) {
		for (int k = 0; k < NKEYS; k++) {
			struct ojob *j = malloc(sizeof(*j));
			*j = (struct ojob){&o, k, i};
			snprintf(key, sizeof(key), "k%d", k);
			na_ns_submit(key, NULL, order_fn, order_done, j);
		}
	}
	while (na_nsworker_pending())
		uv_run(&loop, UV_RUN_ONCE);
	tap(!o.out_of_order && !o.key_overlap,
	    "nsworker: jobs of one key run one at a time in submission order, errors delivered");
	tap(o.max_running > 1, "nsworker: different keys run in parallel (max %d at once)",
	    o.max_running);
	tap(o.done_calls == NKEYS * NJOBS && !o.done_off_loop,
	    "nsworker: every done callback ran on the loop thread (%d)", o.done_calls);

	/* Namespace helpers. */
	net_path(path, sizeof(path), "selftest-ns");
	int c1 = -1, c2 = -1;
	int r1 = na_netns_create(path, &c1, &err), r2 = na_netns_create(path, &c2, &err);
	tap(r1 == 0 && r2 == 0 && c1 == 1 && c2 == 0 && na_netns_is_netns(path),
	    "netns create makes a namespace, again is a no-op (%d %d) %s", c1, c2, err.msg);
	struct nscheck c = {.home = thread_ns()};
	ino_t after[4] = {0};
	for (int i = 0; i < 8; i++)
		na_ns_submit("ns", path, ns_fn, ns_done, &c);
	for (int i = 0; i < 4; i++)
		na_ns_submit(NULL, NULL, back_fn, ns_done, &after[i]);
	while (na_nsworker_pending())
		uv_run(&loop, UV_RUN_ONCE);
	bool back = true;
	for (int i = 0; i < 4; i++)
		back = back && after[i] == c.home;
	tap(c.inside && c.inside != c.home && back,
	    "na_ns_run enters the namespace and workers come back to the agent's");
	tap(na_ns_run("/etc/hostname", ns_fn, &c, &err) < 0 && err.status == 422 &&
		thread_ns() == c.home,
	    "na_ns_run refuses a file that is not a namespace: %s", err.msg);
	na_nsworker_fini();
	uv_run(&loop, UV_RUN_DEFAULT);
	tap(uv_loop_close(&loop) == 0, "nsworker fini releases the loop");
	int d1 = -1, d2 = -1;
	r1 = na_netns_delete(path, &d1, &err);
	r2 = na_netns_delete(path, &d2, &err);
	struct stat st;
	tap(r1 == 0 && r2 == 0 && d1 == 1 && d2 == 0 && stat(path, &st) < 0 && errno == ENOENT,
	    "netns delete unmounts and unlinks, again is a no-op");

	/* Underlay detection and error texts. */
	na_underlay_t u;
	int rc = na_underlay_detect(NULL, &u, &err);
	char a[INET_ADDRSTRLEN];
	tap(rc == 0 && u.ifindex > 0 && u.addr && u.mtu > 0, "underlay: %s index %d %s mtu %d",
	    u.ifname, u.ifindex, ipstr(u.addr, a), u.mtu);
	na_err_clear(&err);
	rc = na_underlay_detect("nosuchif0", &u, &err);
	tap(rc < 0 && strstr(err.msg, "nosuchif0") && strstr(err.msg, "No such device"),
	    "underlay: unknown interface: %s", err.msg);
	return failures ? 1 : 0;
}

/* ---- bench ---- */

static double now_s(void)
{
	return (double)na_now_ns() / 1e9;
}

struct bjob {
	struct vx_k_net net;
	char path[256];
	int neps;
	int idx;
};

static int bench_net_fn(void *arg, na_err_t *err)
{
	struct bjob *b = arg;
	char tpath[256], name[64];
	if (vx_k_network_create(&b->net, NULL, err) < 0)
		return -1;
	for (int e = 0; e < b->neps; e++) {
		snprintf(name, sizeof(name), "b%d-e%d", b->idx, e);
		net_path(tpath, sizeof(tpath), name);
		struct vx_k_ep ep = {.name = name,
				     .netns_path = tpath,
				     .ip = 0xc6120000u | (uint32_t)(e + 2), /* 198.18.0.x */
				     .plen = 24};
		if (vx_k_endpoint_attach(&b->net, &ep, NULL, err) < 0)
			return -1;
	}
	return 0;
}

static int bench_fail;
static void bench_done(void *arg, int rc, const na_err_t *err)
{
	(void)arg;
	if (rc < 0 && !bench_fail++)
		fprintf(stderr, "bench: %s\n", err->msg);
}

static int bench_del_fn(void *arg, na_err_t *err)
{
	return vx_k_network_delete(((struct bjob *)arg)->path, NULL, err);
}

/* fn over every network: from this thread, or through nsworker. */
static int run_all(struct bjob *b, int nnets, int threads, na_ns_fn fn)
{
	na_err_t err = NA_ERR_INIT;
	uv_loop_t loop;

	if (threads <= 0) {
		for (int i = 0; i < nnets; i++)
			if (fn(&b[i], &err) < 0)
				die_err("bench", &err);
		return 0;
	}
	uv_loop_init(&loop);
	if (na_nsworker_init(&loop, threads, &err) < 0)
		die_err("nsworker", &err);
	for (int i = 0; i < nnets; i++)
		na_ns_submit(b[i].path, NULL, fn, bench_done, &b[i]);
	while (na_nsworker_pending())
		uv_run(&loop, UV_RUN_ONCE);
	na_nsworker_fini();
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	return bench_fail ? -1 : 0;
}

static int bench(int nnets, int neps, int nremote, int threads)
{
	na_err_t err = NA_ERR_INIT;
	struct bjob *b = calloc((size_t)nnets, sizeof(*b));
	char name[64], tpath[256];
	double t0;

	/* The endpoints' target namespaces play the containers' part: made
	 * beforehand and not timed. */
	t0 = now_s();
	for (int i = 0; i < nnets; i++)
		for (int e = 0; e < neps; e++) {
			snprintf(name, sizeof(name), "b%d-e%d", i, e);
			net_path(tpath, sizeof(tpath), name);
			if (na_netns_create(tpath, NULL, &err) < 0)
				die_err("bench netns", &err);
		}
	printf("bench: %d target namespaces in %.3f s (not counted)\n", nnets * neps, now_s() - t0);
	for (int i = 0; i < nnets; i++) {
		snprintf(name, sizeof(name), "b%d", i);
		b[i].net = mknet(b[i].path, sizeof(b[i].path), name, 100000u + (uint32_t)i, 0);
		b[i].neps = neps;
		b[i].idx = i;
	}
	t0 = now_s();
	if (run_all(b, nnets, threads, bench_net_fn) < 0)
		return 1;
	double tc = now_s() - t0;
	printf("bench: created %d networks + %d endpoints in %.3f s (%s)\n", nnets, nnets * neps,
	       tc, threads > 0 ? "nsworker" : "sequential");
	t0 = now_s();
	for (int i = 0; i < nnets; i++) {
		int changed;
		if (vx_k_network_create(&b[i].net, &changed, &err) < 0 || changed)
			die_err("bench re-create", &err);
	}
	printf("bench: idempotent re-create of %d networks in %.3f s\n", nnets, now_s() - t0);

	if (nremote > 0) {
		struct vx_k_remote *r = calloc((size_t)nremote, sizeof(*r));
		for (int i = 0; i < nremote; i++) {
			r[i].ip = 0xc6130000u + (uint32_t)i + 1; /* 198.19.x.y */
			vx_k_mac_from_ip(r[i].ip, r[i].mac);
			r[i].vtep = 0xcb007100u + (uint32_t)(i % 250) + 1; /* 203.0.113.x */
		}
		t0 = now_s();
		if (vx_k_remote_set_many(b[0].path, r, (size_t)nremote, &err) < 0)
			die_err("bench remotes", &err);
		printf("bench: %d remote endpoints (fdb+neigh) in %.3f s\n", nremote, now_s() - t0);
		t0 = now_s();
		if (vx_k_remote_set_many(b[0].path, r, (size_t)nremote, &err) < 0)
			die_err("bench remotes", &err);
		printf("bench: %d remote endpoints again (replace) in %.3f s\n", nremote,
		       now_s() - t0);
		struct vx_k_state s;
		t0 = now_s();
		if (vx_k_network_dump(b[0].path, &s, &err) < 0)
			die_err("bench dump", &err);
		printf("bench: dump with %zu fdb / %zu neigh in %.3f s\n", s.nfdb, s.nneigh,
		       now_s() - t0);
		if (s.nfdb != (size_t)nremote || s.nneigh != (size_t)nremote)
			bench_fail = 1;
		vx_k_state_free(&s);
		t0 = now_s();
		if (vx_k_remote_del_many(b[0].path, r, (size_t)nremote, &err) < 0)
			die_err("bench remote del", &err);
		printf("bench: deleted %d remote endpoints in %.3f s\n", nremote, now_s() - t0);
		/* Every request fails (ENOENT, ignored): error ACKs are the
		 * largest, the window must still fit the receive buffer. */
		t0 = now_s();
		if (vx_k_remote_del_many(b[0].path, r, (size_t)nremote, &err) < 0)
			die_err("bench remote del again", &err);
		printf("bench: deleted %d absent remote endpoints in %.3f s\n", nremote,
		       now_s() - t0);
		free(r);
	}
	t0 = now_s();
	if (run_all(b, nnets, threads, bench_del_fn) < 0)
		return 1;
	printf("bench: deleted %d networks in %.3f s\n", nnets, now_s() - t0);
	for (int i = 0; i < nnets; i++)
		for (int e = 0; e < neps; e++) {
			snprintf(name, sizeof(name), "b%d-e%d", i, e);
			net_path(tpath, sizeof(tpath), name);
			na_netns_delete(tpath, NULL, &err);
		}
	free(b);
	return bench_fail ? 1 : 0;
}

static int remote_file(const char *net, const char *file, bool del)
{
	char path[512], ip[64], mac[64], vtep[64];
	na_err_t err = NA_ERR_INIT;
	size_t n = 0, cap = 1024;
	struct vx_k_remote *r = malloc(cap * sizeof(*r));
	FILE *f = fopen(file, "r");
	if (!f)
		return perror(file), 1;
	while (fscanf(f, "%63s %63s %63s", ip, mac, vtep) == 3) {
		if (n == cap)
			r = realloc(r, (cap *= 2) * sizeof(*r));
		r[n].ip = parse_ip(ip, NULL);
		parse_mac(mac, r[n].mac);
		r[n].vtep = parse_ip(vtep, NULL);
		n++;
	}
	fclose(f);
	net_path(path, sizeof(path), net);
	double t0 = now_s();
	int rc =
	    del ? vx_k_remote_del_many(path, r, n, &err) : vx_k_remote_set_many(path, r, n, &err);
	if (rc < 0)
		die_err("remotes", &err);
	printf("%zu remotes in %.3f s\n", n, now_s() - t0);
	free(r);
	return 0;
}

static void usage(void)
{
	fprintf(
	    stderr,
	    "usage: kernel_test [--host NSPATH] [--mtu MTU] --run-dir DIR --name PREFIX CMD...\n"
	    "  selftest | underlay | bench NNETS NEPS NREMOTES THREADS\n"
	    "  net-create NET VNI [MTU] | net-delete NET | net-dump NET | net-path NET\n"
	    "  ep-attach NET EP NETNS IP/PLEN [MAC|-] [IFNAME] | ep-detach NET EP\n"
	    "  ep-dump NETNS [IFNAME]\n"
	    "  remote-set NET IP MAC VTEP | remote-del NET IP MAC\n"
	    "  remote-set-file NET FILE | remote-del-file NET FILE  (lines: IP MAC VTEP)\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"host", required_argument, NULL, 'h'},
					     {"run-dir", required_argument, NULL, 'r'},
					     {"name", required_argument, NULL, 'n'},
					     {"mtu", required_argument, NULL, 'm'},
					     {NULL, 0, NULL, 0}};
	const char *host = NULL;
	na_err_t err = NA_ERR_INIT;
	char path[512];
	int c, rc;

	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			host = optarg;
			break;
		case 'r':
			run_dir = optarg;
			break;
		case 'n':
			prefix = optarg;
			break;
		case 'm':
			opt_mtu = atoi(optarg);
			break;
		default:
			usage();
		}
	}
	if (!run_dir || !prefix || optind >= argc)
		usage();
	argv += optind;
	argc -= optind;
	if (host) {
		/* Before any thread exists: every later thread starts here. */
		int fd = open(host, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || setns(fd, CLONE_NEWNET) < 0)
			return perror(host), 1;
		close(fd);
	}
	if (na_underlay_detect(NULL, &underlay, &err) < 0 && strcmp(argv[0], "selftest") != 0)
		die_err("underlay", &err);
	const char *cmd = argv[0];
	if (!strcmp(cmd, "selftest"))
		return selftest();
	if (!strcmp(cmd, "underlay")) {
		char a[INET_ADDRSTRLEN];
		printf("%s %d %s %d\n", underlay.ifname, underlay.ifindex, ipstr(underlay.addr, a),
		       underlay.mtu);
		return 0;
	}
	if (!strcmp(cmd, "bench") && argc == 5)
		return bench(atoi(argv[1]), atoi(argv[2]), atoi(argv[3]), atoi(argv[4]));
	if (argc < 2)
		usage();
	if (!strcmp(cmd, "net-path")) {
		net_path(path, sizeof(path), argv[1]);
		printf("%s\n", path);
		return 0;
	}
	if (!strcmp(cmd, "net-create") && argc >= 3) {
		struct vx_k_net n =
		    mknet(path, sizeof(path), argv[1], (uint32_t)strtoul(argv[2], 0, 0),
			  argc > 3 ? atoi(argv[3]) : 0);
		int changed;
		if (vx_k_network_create(&n, &changed, &err) < 0)
			die_err("net-create", &err);
		printf("changed=%d\n", changed);
		return 0;
	}
	if (!strcmp(cmd, "net-delete")) {
		net_path(path, sizeof(path), argv[1]);
		int removed;
		if (vx_k_network_delete(path, &removed, &err) < 0)
			die_err("net-delete", &err);
		printf("changed=%d\n", removed);
		return 0;
	}
	if (!strcmp(cmd, "net-dump")) {
		struct vx_k_state s;
		net_path(path, sizeof(path), argv[1]);
		if (vx_k_network_dump(path, &s, &err) < 0)
			die_err("net-dump", &err);
		print_state(&s);
		vx_k_state_free(&s);
		return 0;
	}
	if (!strcmp(cmd, "ep-attach") && argc >= 5) {
		uint8_t mac[6];
		struct vx_k_ep ep = {.name = argv[2], .netns_path = argv[3]};
		ep.ip = parse_ip(argv[4], &ep.plen);
		if (argc > 5 && strcmp(argv[5], "-") != 0) {
			parse_mac(argv[5], mac);
			ep.mac = mac;
		}
		if (argc > 6)
			ep.ifname = argv[6];
		struct vx_k_net n = mknet(path, sizeof(path), argv[1], 0, 0);
		int changed;
		if (vx_k_endpoint_attach(&n, &ep, &changed, &err) < 0)
			die_err("ep-attach", &err);
		printf("changed=%d\n", changed);
		return 0;
	}
	if (!strcmp(cmd, "ep-detach") && argc >= 3) {
		net_path(path, sizeof(path), argv[1]);
		int removed;
		if (vx_k_endpoint_detach(path, argv[2], &removed, &err) < 0)
			die_err("ep-detach", &err);
		printf("changed=%d\n", removed);
		return 0;
	}
	if (!strcmp(cmd, "ep-dump")) {
		struct vx_k_ep_state st;
		char a[INET_ADDRSTRLEN], m[18];
		if (vx_k_endpoint_dump(argv[1], argc > 2 ? argv[2] : NULL, &st, &err) < 0)
			die_err("ep-dump", &err);
		printf("exists %d name %s mtu %d up %d mac %s\n", st.exists, st.link.name,
		       st.link.mtu, st.link.up, macstr(st.link.mac, m));
		for (size_t i = 0; i < st.naddrs; i++)
			printf("addr %s/%d\n", ipstr(st.addrs[i].ip, a), st.addrs[i].plen);
		return 0;
	}
	if ((!strcmp(cmd, "remote-set") && argc >= 5) ||
	    (!strcmp(cmd, "remote-del") && argc >= 4)) {
		struct vx_k_remote r = {0};
		r.ip = parse_ip(argv[2], NULL);
		parse_mac(argv[3], r.mac);
		if (argc > 4)
			r.vtep = parse_ip(argv[4], NULL);
		net_path(path, sizeof(path), argv[1]);
		rc = cmd[7] == 's' ? vx_k_remote_set(path, &r, &err)
				   : vx_k_remote_del(path, &r, &err);
		if (rc < 0)
			die_err(cmd, &err);
		return 0;
	}
	if (!strcmp(cmd, "remote-set-file") && argc >= 3)
		return remote_file(argv[1], argv[2], false);
	if (!strcmp(cmd, "remote-del-file") && argc >= 3)
		return remote_file(argv[1], argv[2], true);
	usage();
	return 2;
}
