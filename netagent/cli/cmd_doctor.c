/* netagentctl doctor: one pass over what the agent reports, in plain words:
 * the host (underlay, etcd, runtime, quarantined state files), every
 * network's kernel view against the desired one (drift, MTU), containers
 * that should run and do not, VIPs in fault, postgres members Patroni has
 * not reported on. Exit 1 when something is wrong, 0 when all is well. */
#include "netagent/cli/cli.h"
#include "netagent/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct doc {
	json_t *problems; /* [{"area","object","problem"}] */
	unsigned checked;
	bool quiet; /* -o json: no lines, one object at the end */
} doc_t;

static void problem(doc_t *d, const char *area, const char *object, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void problem(doc_t *d, const char *area, const char *object, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_array_append_new(d->problems, json_pack("{s:s, s:s, s:s}", "area", area, "object",
						     object, "problem", msg));
	if (!d->quiet)
		printf("PROBLEM  %-9s %-20s %s\n", area, object, msg);
}

static void fine(doc_t *d, const char *area, const char *object, const char *what)
{
	d->checked++;
	if (!d->quiet)
		printf("ok       %-9s %-20s %s\n", area, object, what);
}

static const char *str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

static void check_host(doc_t *d, json_t *h, long *underlay_mtu)
{
	json_t *u = json_object_get(h, "underlay"), *e = json_object_get(h, "etcd");
	*underlay_mtu = json_integer_value(json_object_get(u, "mtu"));
	if (!str(u, "address")[0])
		problem(d, "host", "underlay", "no underlay address on %s: VXLAN cannot send",
			str(u, "interface")[0] ? str(u, "interface") : "(no interface)");
	else
		fine(d, "host", "underlay", "address and MTU known");
	if (json_is_true(json_object_get(e, "configured"))) {
		if (json_is_true(json_object_get(e, "reachable")))
			fine(d, "host", "etcd", "reachable");
		else
			problem(d, "host", "etcd",
				"etcd is configured but not reachable: endpoints are not "
				"published or learned, VIPs cannot be held");
	}
	json_t *rt = json_object_get(h, "runtime");
	if (rt && str(rt, "error")[0])
		problem(d, "host", "runtime", "containers cannot run: %s", str(rt, "error"));
	else if (rt)
		fine(d, "host", "runtime", str(rt, "name"));
	json_int_t q =
	    json_integer_value(json_object_get(json_object_get(h, "state"), "quarantined"));
	if (q)
		problem(d, "host", "state", "%lld state file(s) were unreadable and quarantined",
			(long long)q);
}

static void check_networks(doc_t *d, cli_t *cli, long underlay_mtu, na_err_t *err)
{
	cleanup_json json_t *l = NULL;
	size_t i;
	json_t *n;
	if (cli_call(cli, "GET", "/v1/networks", NULL, &l, NULL, err) < 0) {
		problem(d, "network", "-", "cannot list networks: %s", err->msg);
		na_err_clear(err);
		return;
	}
	json_array_foreach(json_object_get(l, "items"), i, n)
	{
		const char *name = str(n, "name");
		json_int_t mtu = json_integer_value(json_object_get(n, "mtu"));
		/* VXLAN over IPv4 adds 50 bytes: a larger overlay MTU fragments
		 * or drops full-size packets on the underlay. */
		if (underlay_mtu && mtu > underlay_mtu - 50)
			problem(d, "network", name,
				"MTU %lld is above the underlay's %ld - 50: full-size packets will "
				"not cross",
				(long long)mtu, underlay_mtu);
		char path[160];
		snprintf(path, sizeof(path), "/v1/networks/%s/inspect", name);
		cleanup_json json_t *ins = NULL;
		if (cli_call(cli, "GET", path, NULL, &ins, NULL, err) < 0) {
			problem(d, "network", name, "cannot inspect: %s", err->msg);
			na_err_clear(err);
			continue;
		}
		json_t *diff = json_object_get(ins, "diff"), *x;
		size_t k;
		if (!json_array_size(diff))
			fine(d, "network", name, "kernel matches the desired state");
		json_array_foreach(diff, k, x)
		    problem(d, "network", name, "%s %s %s%s%s", str(x, "kind"), str(x, "object"),
			    str(x, "problem"), str(x, "detail")[0] ? ": " : "", str(x, "detail"));
	}
}

static void check_containers(doc_t *d, cli_t *cli, na_err_t *err)
{
	cleanup_json json_t *l = NULL;
	size_t i;
	json_t *c;
	if (cli_call(cli, "GET", "/v1/containers", NULL, &l, NULL, err) < 0) {
		if (err->status != 404)
			problem(d, "container", "-", "cannot list containers: %s", err->msg);
		na_err_clear(err);
		return;
	}
	json_array_foreach(json_object_get(l, "items"), i, c)
	{
		const char *name = str(c, "name"), *st = str(c, "state");
		/* A `never` container that exited 0 did its job. */
		json_t *code = json_object_get(c, "exit_code");
		int done = !strcmp(str(c, "restart"), "never") && !strcmp(st, "exited") &&
			   json_is_integer(code) && json_integer_value(code) == 0;
		if (!strcmp(str(c, "desired"), "running") && strcmp(st, "running") && !done)
			problem(d, "container", name, "should run but is %s%s%s", st,
				str(c, "error")[0] ? ": " : "", str(c, "error"));
		else
			fine(d, "container", name, st);
		json_t *p = json_object_get(c, "patroni");
		if (p && !strcmp(st, "running") && !strcmp(str(p, "role"), "unknown"))
			problem(d, "container", name,
				"Patroni has not answered the agent (state %s): PostgreSQL may be "
				"down in a running container",
				str(p, "state"));
		if (p && json_is_true(json_object_get(p, "pending_restart")))
			problem(d, "container", name,
				"a parameter change waits for a restart (pending_restart)");
	}
}

static void check_vips(doc_t *d, cli_t *cli, na_err_t *err)
{
	cleanup_json json_t *l = NULL;
	size_t i;
	json_t *v;
	if (cli_call(cli, "GET", "/v1/vips", NULL, &l, NULL, err) < 0) {
		if (err->status != 404)
			problem(d, "vip", "-", "cannot list VIPs: %s", err->msg);
		na_err_clear(err);
		return;
	}
	json_array_foreach(json_object_get(l, "items"), i, v)
	{
		const char *name = str(v, "name");
		json_t *h = json_object_get(v, "health"), *r = json_object_get(v, "resolved");
		if (!strcmp(str(v, "state"), "fault"))
			problem(d, "vip", name, "fault: %s%s%s", str(h, "reason"),
				str(r, "error")[0] ? "; target: " : "", str(r, "error"));
		else
			fine(d, "vip", name, str(v, "state"));
	}
}

int cmd_doctor(cli_t *cli, cli_args_t *a, na_err_t *err)
{
	(void)a;
	cleanup_json json_t *host = NULL;
	if (cli_call(cli, "GET", "/v1/host", NULL, &host, NULL, err) < 0)
		return -1;
	doc_t d = {.problems = json_array(), .quiet = cli->json};
	long mtu = 0;
	check_host(&d, host, &mtu);
	check_networks(&d, cli, mtu, err);
	check_containers(&d, cli, err);
	check_vips(&d, cli, err);
	size_t n = json_array_size(d.problems);
	if (cli->json) {
		json_t *o = json_pack("{s:s, s:b, s:i, s:O}", "agent", str(host, "name"), "healthy",
				      n == 0, "checked", (int)d.checked, "problems", d.problems);
		cli_print_json(o);
		json_decref(o);
	} else if (n) {
		printf("\n%zu problem(s) on agent %s\n", n, str(host, "name"));
	} else {
		printf("\nagent %s: healthy (%u checks)\n", str(host, "name"), d.checked);
	}
	json_decref(d.problems);
	return n ? CLI_EXIT_ERROR : 0;
}
