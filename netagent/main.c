/* netagent: the host agent. Composes the core and the modules, then runs
 * the loop until SIGTERM/SIGINT, which drains in-flight requests and exits 0. */
#include "netagent/agent.h"
#include "netagent/events.h"
#include "netagent/http.h"
#include "netagent/log.h"
#include "netagent/metrics.h"
#include "netagent/nsworker.h"
#include "netagent/util.h"
#include "netagent/validate.h"
#include "provision/provision.h"
#include "vxlan/vxlan.h"
#include "vip/vip.h"

#include <ctype.h>
#include <getopt.h>
#include <signal.h>
#include <sys/stat.h>

/* The module table: the only place that knows every module. */
static const na_module_t *const modules[] = {
    &vx_module,
    &vip_module,
    &pv_module,
    NULL,
};
static size_t nmods(void)
{
	size_t n = 0;
	while (modules[n])
		n++;
	return n;
}

#define DRAIN_DEADLINE_MS 4000

static struct {
	na_agent_t ag;
	na_http_t *http;
	SSL_CTX *tls;
	uv_signal_t sigterm, sigint, sighup;
	uv_timer_t reconcile, deadline;
	int exit_code;
	/* reconcile rounds: module index of the round in progress, or -1 */
	int round_mod, round_again;
	unsigned long long rounds;
	/* drain: the HTTP side and the modules' stops both must finish */
	int http_drained, stop_mod;
} d = {.round_mod = -1, .stop_mod = -1};

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: netagent [options]\n"
	    "  --name NAME            agent name; prefixes every kernel object (env "
	    "NETAGENT_NAME)\n"
	    "  --underlay-if IF       underlay interface (default: the default route's)\n"
	    "  --state-dir DIR        desired state (default /var/lib/netagent/NAME)\n"
	    "  --run-dir DIR          runtime files, netns mounts (default /run/netagent/NAME)\n"
	    "  --socket PATH          local API socket, mode 0600 (default "
	    "/run/netagent/netagent.sock)\n"
	    "  --listen ADDR:PORT     controller API over mutual TLS\n"
	    "  --tls-cert F --tls-key F --tls-ca F\n"
	    "  --etcd URL[,URL...]    coordinate through etcd v3\n"
	    "  --etcd-cert F --etcd-key F --etcd-ca F\n"
	    "                         client certificate, key and CA (PEM) for https:// etcd\n"
	    "  --log-level LEVEL      debug|info|warn|error (default info)\n"
	    "  --max-conns N          concurrent connection cap (default 512)\n"
	    "  --header-timeout-ms N  a request must arrive within N ms (default 10000)\n"
	    "  --idle-timeout-ms N    keep-alive idle cut-off (default 60000)\n"
	    "  --reconcile-ms N       periodic reconcile interval (default 2000)\n"
	    "Every option can also be given as NETAGENT_<OPTION> in the environment.\n");
}

static const char *envopt(const char *opt)
{
	char name[64] = "NETAGENT_";
	size_t j = strlen(name);
	for (const char *p = opt; *p && j < sizeof(name) - 1; p++)
		name[j++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
	name[j] = 0;
	return getenv(name);
}

static int parse_int(const char *opt, const char *v, int min, int max, int *out, na_err_t *err)
{
	if (na_int_parse(v, min, max, out) < 0)
		return na_err_set(err, 2, "usage", opt, "--%s must be an integer in %d..%d", opt,
				  min, max);
	return 0;
}

static int parse_args(int argc, char **argv, na_config_t *c, na_err_t *err)
{
	static const struct option opts[] = {
	    {"name", 1, 0, 'n'},
	    {"underlay-if", 1, 0, 'u'},
	    {"state-dir", 1, 0, 's'},
	    {"run-dir", 1, 0, 'r'},
	    {"socket", 1, 0, 'S'},
	    {"listen", 1, 0, 'l'},
	    {"tls-cert", 1, 0, 'C'},
	    {"tls-key", 1, 0, 'K'},
	    {"tls-ca", 1, 0, 'A'},
	    {"etcd", 1, 0, 'e'},
	    {"etcd-cert", 1, 0, 'c'},
	    {"etcd-key", 1, 0, 'k'},
	    {"etcd-ca", 1, 0, 'a'},
	    {"log-level", 1, 0, 'L'},
	    {"max-conns", 1, 0, 'm'},
	    {"header-timeout-ms", 1, 0, 'H'},
	    {"idle-timeout-ms", 1, 0, 'I'},
	    {"reconcile-ms", 1, 0, 'R'},
	    {"help", 0, 0, 'h'},
	    {"version", 0, 0, 'V'},
	    {0, 0, 0, 0},
	};
	const char **slot[128] = {0};
	slot['n'] = &c->name, slot['u'] = &c->underlay_if, slot['s'] = &c->state_dir;
	slot['r'] = &c->run_dir, slot['S'] = &c->socket, slot['l'] = &c->listen;
	slot['C'] = &c->tls_cert, slot['K'] = &c->tls_key, slot['A'] = &c->tls_ca;
	slot['e'] = &c->etcd, slot['L'] = &c->log_level;
	slot['c'] = &c->etcd_cert, slot['k'] = &c->etcd_key, slot['a'] = &c->etcd_ca;
	const char *ints[128] = {0};

	/* Environment first, flags override. */
	for (const struct option *o = opts; o->name; o++) {
		const char *v = envopt(o->name);
		if (v && slot[o->val])
			*slot[o->val] = v;
		else if (v && o->has_arg)
			ints[o->val] = v;
	}
	int ch;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'h') {
			usage(stdout);
			exit(0);
		}
		if (ch == 'V') {
			printf("netagent %s\n", NA_VERSION);
			exit(0);
		}
		if (ch == '?' || ch < 0 || ch >= 128)
			return na_err_set(err, 2, "usage", NULL, "unknown option (see --help)");
		if (slot[ch])
			*slot[ch] = optarg;
		else
			ints[ch] = optarg;
	}
	if (optind < argc)
		return na_err_set(err, 2, "usage", NULL, "unexpected argument '%s'", argv[optind]);
	if ((ints['m'] && parse_int("max-conns", ints['m'], 1, 100000, &c->max_conns, err) < 0) ||
	    (ints['H'] && parse_int("header-timeout-ms", ints['H'], 100, 600000,
				    &c->header_timeout_ms, err) < 0) ||
	    (ints['I'] &&
	     parse_int("idle-timeout-ms", ints['I'], 100, 3600000, &c->idle_timeout_ms, err) < 0) ||
	    (ints['R'] &&
	     parse_int("reconcile-ms", ints['R'], 100, 3600000, &c->reconcile_ms, err) < 0))
		return -1;
	if (!c->name)
		c->name = "netagent";
	if (na_name_check(c->name, "name", err) < 0 || strlen(c->name) > 8) {
		if (err->status == 0 || strlen(c->name) > 8)
			na_err_set(err, 2, "usage", "name",
				   "--name must match [a-z0-9][a-z0-9-]* and have at most 8 "
				   "characters (it prefixes kernel interface names)");
		return -1;
	}
	return 0;
}

static char *default_path(const char *base, const char *name)
{
	char *p = NULL;
	if (asprintf(&p, "%s/%s", base, name) < 0)
		return NULL;
	return p;
}

/* A round runs the modules' reconciles one after the other, in table order
 * (vxlan's networks exist before vip and provision look at them). A round
 * asked for while one is out runs right after it. */
static void round_next(void *ud);

static void round_step(void)
{
	while (modules[d.round_mod] && !modules[d.round_mod]->reconcile)
		d.round_mod++;
	if (!modules[d.round_mod] || d.ag.draining) {
		d.round_mod = -1;
		d.rounds++;
		if (d.round_again && !d.ag.draining) {
			d.round_again = 0;
			d.round_mod = 0;
			round_step();
		}
		return;
	}
	modules[d.round_mod]->reconcile(&d.ag, round_next, &d.round_mod);
}

static void round_next(void *ud)
{
	(void)ud;
	if (d.round_mod < 0)
		return; /* a module called done twice */
	d.round_mod++;
	round_step();
}

void na_agent_reconcile_soon(na_agent_t *ag)
{
	(void)ag;
	if (d.ag.draining)
		return;
	if (d.round_mod >= 0) {
		d.round_again = 1;
		return;
	}
	d.round_mod = 0;
	round_step();
}

static void on_reconcile(uv_timer_t *t)
{
	(void)t;
	na_agent_reconcile_soon(&d.ag);
}

static void close_walk(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void maybe_exit(void)
{
	if (!d.http_drained || d.stop_mod >= 0)
		return;
	na_info("drained, exiting", "name=%s", d.ag.cfg.name);
	uv_stop(d.ag.loop);
}

static void drained(void *ud)
{
	(void)ud;
	d.http_drained = 1;
	maybe_exit();
}

/* Modules stop in reverse table order, each after the previous one is done:
 * provision first, then vip (steps down, revokes its lease), then vxlan. */
static void stop_next(void *ud);

static void stop_step(void)
{
	while (d.stop_mod >= 0 && !modules[d.stop_mod]->stop)
		d.stop_mod--;
	if (d.stop_mod < 0) {
		maybe_exit();
		return;
	}
	modules[d.stop_mod]->stop(&d.ag, stop_next, &d.stop_mod);
}

static void stop_next(void *ud)
{
	(void)ud;
	if (d.stop_mod < 0)
		return;
	d.stop_mod--;
	stop_step();
}

static void on_deadline(uv_timer_t *t)
{
	(void)t;
	na_warn("drain deadline reached, exiting with requests in flight", "pending=%u",
		na_nsworker_pending());
	uv_stop(d.ag.loop);
}

static void on_signal(uv_signal_t *s, int signum)
{
	(void)s;
	if (d.ag.draining) {
		na_warn("second signal, exiting now", "signal=%d", signum);
		uv_stop(d.ag.loop);
		return;
	}
	na_info("signal received, draining", "signal=%d", signum);
	d.ag.draining = 1;
	uv_timer_stop(&d.reconcile);
	na_timer_stop_all();
	uv_timer_start(&d.deadline, on_deadline, DRAIN_DEADLINE_MS, 0);
	na_events_close_all();
	d.stop_mod = (int)nmods() - 1;
	stop_step();
	na_http_drain(d.http, drained, NULL);
}

/* Nothing is reloaded on SIGHUP (desired state comes from the API, not from
 * files); a terminal hanging up or a log rotation must not kill the agent. */
static void on_sighup(uv_signal_t *s, int signum)
{
	(void)s, (void)signum;
	na_info("SIGHUP received, nothing to reload", "name=%s", d.ag.cfg.name);
}

static int start(int argc, char **argv, na_err_t *err)
{
	na_config_t *c = &d.ag.cfg;
	c->log_level = "info";
	if (parse_args(argc, argv, c, err) < 0)
		return -1;
	if (na_log_set_level(c->log_level) < 0)
		return na_err_set(err, 2, "usage", "log-level", "unknown --log-level '%s'",
				  c->log_level);
	if (!c->state_dir)
		c->state_dir = default_path("/var/lib/netagent", c->name);
	if (!c->run_dir)
		c->run_dir = default_path("/run/netagent", c->name);
	if (!c->socket)
		c->socket = "/run/netagent/netagent.sock";
	if (!c->reconcile_ms)
		c->reconcile_ms = 2000;
	signal(SIGPIPE, SIG_IGN);

	d.ag.loop = uv_default_loop();
	d.ag.started_ms = na_now_ms();
	if (na_underlay_detect(c->underlay_if, &d.ag.underlay, err) < 0) {
		na_err_prefix(err, "underlay");
		return -1;
	}
	if (mkdir(c->run_dir, 0700) < 0 && errno != EEXIST) {
		/* The parent may be missing on a fresh host: create one level up. */
		char *parent = strdup(c->run_dir), *slash = parent ? strrchr(parent, '/') : NULL;
		if (slash && slash != parent) {
			*slash = 0;
			mkdir(parent, 0755);
		}
		free(parent);
		if (mkdir(c->run_dir, 0700) < 0 && errno != EEXIST)
			return na_err_errno(err, errno, "create run dir %s", c->run_dir);
	}
	if (na_state_open(c->state_dir, &d.ag.state, err) < 0)
		return -1;
	/* The shared etcd session, before the modules that use it: it only
	 * parses and reads its TLS files here, contacting nobody. */
	if (c->etcd) {
		na_etcd_config_t ec = {.endpoints = c->etcd,
				       .ca = c->etcd_ca,
				       .cert = c->etcd_cert,
				       .key = c->etcd_key};
		if (na_etcd_open(d.ag.loop, &ec, &d.ag.etcd, err) < 0) {
			if (err->status == 422)
				err->status = 2; /* a bad flag: usage error */
			return -1;
		}
	}
	d.ag.api = na_api_new();
	if (!d.ag.api)
		return na_err_errno(err, ENOMEM, "api");
	if (na_events_init(d.ag.loop, d.ag.api, err) < 0 || na_metrics_init(d.ag.api, err) < 0 ||
	    na_host_init(&d.ag, modules, nmods(), err) < 0)
		return -1;
	if (na_nsworker_init(d.ag.loop, 4, err) < 0)
		return -1;
	for (size_t i = 0; modules[i]; i++) {
		if (modules[i]->init && modules[i]->init(&d.ag, err) < 0) {
			na_err_prefix(err, "module %s", modules[i]->name);
			return -1;
		}
	}
	na_http_opts_t ho = {c->max_conns, c->header_timeout_ms, c->idle_timeout_ms};
	if (na_http_new(d.ag.loop, d.ag.api, &ho, &d.http, err) < 0)
		return -1;
	char *sockdir = strdup(c->socket), *slash = sockdir ? strrchr(sockdir, '/') : NULL;
	if (slash && slash != sockdir) {
		*slash = 0;
		mkdir(sockdir, 0755);
	}
	free(sockdir);
	if (na_http_listen_unix(d.http, c->socket, err) < 0)
		return -1;
	if (c->listen) {
		d.tls = na_tls_server_ctx(c->tls_cert, c->tls_key, c->tls_ca, err);
		if (!d.tls || na_http_listen_tcp(d.http, c->listen, d.tls, err) < 0)
			return -1;
	}
	uv_signal_init(d.ag.loop, &d.sigterm);
	uv_signal_start(&d.sigterm, on_signal, SIGTERM);
	uv_signal_init(d.ag.loop, &d.sigint);
	uv_signal_start(&d.sigint, on_signal, SIGINT);
	uv_signal_init(d.ag.loop, &d.sighup);
	uv_signal_start(&d.sighup, on_sighup, SIGHUP);
	uv_timer_init(d.ag.loop, &d.deadline);
	uv_timer_init(d.ag.loop, &d.reconcile);
	uv_timer_start(&d.reconcile, on_reconcile, 0, (uint64_t)c->reconcile_ms);
	char ua[16] = "";
	if (d.ag.underlay.addr)
		na_ipv4_fmt(d.ag.underlay.addr, ua, sizeof(ua));
	na_info("netagent started",
		"name=%s version=%s socket=%s listen=%s underlay=%s underlay_addr=%s mtu=%d "
		"state_dir=%s etcd=%s",
		c->name, NA_VERSION, c->socket, c->listen ? c->listen : "-", d.ag.underlay.ifname,
		ua, d.ag.underlay.mtu, c->state_dir, c->etcd ? c->etcd : "-");
	return 0;
}

int main(int argc, char **argv)
{
	na_err_t err = NA_ERR_INIT;
	if (start(argc, argv, &err) < 0) {
		if (err.status == 2) {
			fprintf(stderr, "netagent: %s\n", err.msg);
			return 2;
		}
		na_error("cannot start", "error=\"%s\"", err.msg);
		return 1;
	}
	uv_run(d.ag.loop, UV_RUN_DEFAULT);
	/* etcd first: calls still pending complete with "cancelled" into the
	 * modules while they exist (watches and lease keepers end silently);
	 * the session's memory goes in the last uv_run below. */
	na_etcd_close(d.ag.etcd);
	/* Workers next: finished and cancelled jobs call back into the
	 * modules, whose state must still be there. */
	na_nsworker_fini();
	for (size_t i = nmods(); i-- > 0;)
		if (modules[i]->fini)
			modules[i]->fini(&d.ag);
	na_events_fini();
	na_timer_free_all();
	uv_walk(d.ag.loop, close_walk, NULL);
	uv_run(d.ag.loop, UV_RUN_DEFAULT);
	uv_loop_close(d.ag.loop);
	na_http_free(d.http);
	na_api_free(d.ag.api);
	na_state_close(d.ag.state);
	if (d.tls)
		SSL_CTX_free(d.tls);
	return d.exit_code;
}
