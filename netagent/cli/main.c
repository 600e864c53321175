/* netagentctl: global options, the command table and the one place where
 * errors become messages and exit statuses. */
#include "netagent/cli/cli.h"
#include "netagent/agent.h"
#include "netagent/validate.h"
#include "netagent/util.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const cli_opt_t apply_opts[] = {
    {"vni", 0, "N", "VXLAN network identifier, 1..16777215"},
    {"subnet", 0, "CIDR", "overlay subnet, e.g. 198.18.1.0/24"},
    {"mtu", 0, "N", "MTU (default: underlay MTU - 50)"},
    {"file", 'f', "FILE", "JSON body from FILE ('-' = stdin); flags override its fields"},
    {0},
};
static const cli_opt_t net_rm_opts[] = {
    {"force", 0, NULL, "delete even when local endpoints are attached"},
    {0},
};
static const cli_opt_t ep_add_opts[] = {
    {"netns", 0, "PATH", "target network namespace (local endpoint)"},
    {"ip", 0, "CIDR", "address; allocated from the subnet when omitted (local)"},
    {"mac", 0, "MAC", "MAC address (default: derived from the IP)"},
    {"ifname", 0, "IF", "interface name inside the namespace (default eth0)"},
    {"remote", 0, NULL, "an endpoint on another host: needs --ip, --mac, --vtep"},
    {"vtep", 0, "ADDR", "underlay address of the remote endpoint's host"},
    {0},
};
static const cli_opt_t ep_rm_opts[] = {
    {"remote", 0, NULL, "remove a remote endpoint"},
    {0},
};
static const cli_opt_t ct_apply_opts[] = {
    {"file", 'f', "FILE", "JSON body from FILE ('-' = stdin); flags override its fields"},
    {"role", 0, "ROLE", "generic (default), postgres, gateway"},
    {"image", 0, "host|PATH", "the host image (default) or a rootfs directory"},
    {"net", 0, "NET[=IP],...", "overlay networks, eth0 first; IP allocated when omitted"},
    {"volume", 0, "NAME:/MOUNT,...", "volumes under the agent's state dir"},
    {"memory", 0, "MB", "memory limit in MiB (at least 32)"},
    {"restart", 0, "POLICY", "always, on-failure or never"},
    {"env", 0, "K=V,...", "environment variables (values without commas; else use -f)"},
    {0},
};
static const cli_opt_t ct_rm_opts[] = {
    {"purge", 0, NULL, "also delete the container's volumes"},
    {0},
};
static const cli_opt_t vip_apply_opts[] = {
    {"file", 'f', "FILE", "JSON body from FILE ('-' = stdin); flags override its fields"},
    {"address", 0, "CIDR", "the VIP with its prefix length (192.0.2.100/24)"},
    {"interface", 0, "IF", "target: a host interface (default eth0)"},
    {"container", 0, "NAME", "target: a gateway container's uplink"},
    {"priority", 0, "N", "0..255 (default 100)"},
    {"preempt", 0, NULL, "take the VIP back from a lower priority holder"},
    {0},
};
static const cli_opt_t ct_logs_opts[] = {
    {"tail", 0, "N", "last N lines (default 100)"},
    {"follow", 'f', NULL, "keep printing new lines"},
    {"timestamps", 't', NULL, "prefix each line with its time and stream"},
    {0},
};

/* Sorted as `help` shows them. */
static const cli_cmd_t commands[] = {
    {"status", "", 0, 0, 0, cmd_status, "agent health: name, status, version", NULL},
    {"host", "", 0, 0, 0, cmd_host, "host facts: underlay, etcd, runtime, counts, state", NULL},
    {"events", "", 0, 0, 0, cmd_events, "follow state changes until the agent closes the stream",
     NULL},
    {"net ls", "", 0, 0, 0, cmd_net_ls, "list networks", NULL},
    {"net show", "NAME", 1, 1, 0, cmd_net_show, "show one network", NULL},
    {"net apply", "NAME (--vni N --subnet CIDR [--mtu N] | -f FILE)", 1, 1, 0, cmd_net_apply,
     "create or update a network", apply_opts},
    {"net rm", "NAME [--force]", 1, 1, 0, cmd_net_rm, "delete a network", net_rm_opts},
    {"net inspect", "NAME", 1, 1, 0, cmd_net_inspect,
     "kernel view (links, FDB, neighbours) beside the desired one", NULL},
    {"net check", "NAME", 1, 1, 0, cmd_net_check,
     "reachability between the network's endpoints (exit 1 if a path fails)", NULL},
    {"net exec", "NAME [--] CMD [ARG...]", 2, -1, 1, cmd_net_exec,
     "run CMD in the network's namespace (local socket only, root)", NULL},
    {"ep ls", "NET", 1, 1, 0, cmd_ep_ls, "list a network's endpoints, local and remote", NULL},
    {"ep add",
     "NET NAME (--netns PATH [--ip CIDR] [--mac MAC] [--ifname IF] | "
     "--remote --ip CIDR --mac MAC --vtep ADDR)",
     2, 2, 0, cmd_ep_add, "attach a local endpoint, or declare a remote one", ep_add_opts},
    {"ep rm", "NET NAME [--remote]", 2, 2, 0, cmd_ep_rm, "remove an endpoint", ep_rm_opts},
    {"ct ls", "", 0, 0, 0, cmd_ct_ls, "list containers", NULL},
    {"ct show", "NAME", 1, 1, 0, cmd_ct_show, "show one container", NULL},
    {"ct apply", "NAME [-f FILE] [OPTIONS] [-- CMD [ARG...]]", 1, -1, 0, cmd_ct_apply,
     "create or update a container", ct_apply_opts},
    {"ct rm", "NAME [--purge]", 1, 1, 0, cmd_ct_rm, "delete a container (volumes kept)",
     ct_rm_opts},
    {"ct start", "NAME", 1, 1, 0, cmd_ct_start, "start a stopped container", NULL},
    {"ct stop", "NAME", 1, 1, 0, cmd_ct_stop, "stop a container (it stays stopped)", NULL},
    {"ct restart", "NAME", 1, 1, 0, cmd_ct_restart, "restart a container", NULL},
    {"ct logs", "NAME [--tail N] [-f] [-t]", 1, 1, 0, cmd_ct_logs, "a container's output",
     ct_logs_opts},
    {"ct exec", "NAME [--] CMD [ARG...]", 2, -1, 1, cmd_ct_exec,
     "run CMD inside the container (local socket only, root)", NULL},
    {"vip ls", "", 0, 0, 0, cmd_vip_ls, "list VIPs: state, holder, health", NULL},
    {"vip show", "NAME", 1, 1, 0, cmd_vip_show, "show one VIP (candidates with etcd)", NULL},
    {"vip apply", "NAME (--address CIDR [--interface IF | --container NAME] | -f FILE)", 1, 1, 0,
     cmd_vip_apply, "create or update a VIP", vip_apply_opts},
    {"vip rm", "NAME", 1, 1, 0, cmd_vip_rm, "delete a VIP (its address goes at once)", NULL},
    {"vip failover", "NAME", 1, 1, 0, cmd_vip_failover,
     "hand the VIP held here to another healthy candidate", NULL},
    {"vip history", "NAME", 1, 1, 0, cmd_vip_history, "the VIP's transitions on this agent", NULL},
    {"doctor", "", 0, 0, 0, cmd_doctor,
     "what is wrong on this agent: drift, MTU, etcd, runtime, containers, VIPs (exit 1 if any)",
     NULL},
    {"help", "[COMMAND...]", 0, -1, 0, NULL, "show this help, or one command's", NULL},
};

static const char global_usage[] =
    "usage: netagentctl [--socket PATH | --url https://HOST:PORT --cert FILE --key FILE\n"
    "                   --cacert FILE [--insecure-hostname]] [-o json|table] COMMAND [ARG...]\n";

static const char global_help[] =
    "Global options:\n"
    "  --socket PATH        agent's unix socket (default $NETAGENT_SOCKET or " CLI_DEFAULT_SOCKET
    ")\n"
    "  --url URL            agent's HTTPS API (mutual TLS), e.g. https://192.0.2.10:7443\n"
    "  --cert/--key FILE    client certificate and key for --url\n"
    "  --cacert FILE        CA that signed the agent's certificate\n"
    "  --insecure-hostname  accept a certificate for another host name (chain still verified)\n"
    "  --timeout SECONDS    give up on a request after this long (default 120)\n"
    "  -o, --output FORMAT  table (default) or json: the agent's answer, pretty, sorted keys\n"
    "  -h, --help           this help; --version prints the version\n"
    "Exit status: 0 ok, 1 the agent answered an error, 2 usage, 3 cannot reach the agent.\n";

/* The command whose usage a usage error refers to (NULL: the global one),
 * or the group ("net ") whose commands it lists. */
static const cli_cmd_t *usage_cmd;
static char usage_group[32];

int cli_usage_err(na_err_t *err, const char *fmt, ...)
{
	va_list ap;
	char msg[sizeof(err->msg)];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return na_err_set(err, CLI_EXIT_USAGE, "usage", NULL, "%s", msg);
}

int cli_name_arg(const char *what, const char *name, na_err_t *err)
{
	/* Checked here because the name becomes a URL path segment: "a/../b"
	 * must not quietly address another resource. */
	if (na_name_valid(name))
		return 0;
	return cli_usage_err(err, "invalid %s name \"%s\": must match [a-z0-9][a-z0-9-]{0,62}",
			     what, name);
}

static int opt_index(const cli_cmd_t *cmd, const char *name)
{
	for (int i = 0; cmd->opts && cmd->opts[i].name; i++)
		if (!strcmp(cmd->opts[i].name, name))
			return i;
	return -1;
}

const char *cli_opt(const cli_args_t *a, const char *name)
{
	int i = opt_index(a->cmd, name);
	return i < 0 ? NULL : a->val[i];
}

int cli_opt_int(const cli_args_t *a, const char *name, long long min, long long max, long long *out,
		na_err_t *err)
{
	const char *s = cli_opt(a, name);
	char *end;
	long long v;

	if (!s)
		return 0;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (!*s || *end || errno || v < min || v > max)
		return cli_usage_err(err, "--%s: \"%s\" is not an integer in %lld..%lld", name, s,
				     min, max);
	*out = v;
	return 0;
}

static void print_cmd_line(FILE *f, const cli_cmd_t *c)
{
	char left[160];

	snprintf(left, sizeof(left), "%s%s%s", c->path, c->usage[0] ? " " : "", c->usage);
	if (strlen(left) <= 30)
		fprintf(f, "  %-30s  %s\n", left, c->help);
	else
		fprintf(f, "  %s\n  %-30s  %s\n", left, "", c->help);
}

static void print_help(FILE *f, const char *prefix)
{
	size_t plen = prefix ? strlen(prefix) : 0;

	fputs(global_usage, f);
	fputs("\nCommands:\n", f);
	for (size_t i = 0; i < NA_ARRAY_SIZE(commands); i++)
		if (!plen || !strncmp(commands[i].path, prefix, plen))
			print_cmd_line(f, &commands[i]);
	fputc('\n', f);
	fputs(global_help, f);
}

static void print_cmd_help(FILE *f, const cli_cmd_t *c)
{
	fprintf(f, "usage: netagentctl [GLOBAL OPTIONS] %s %s\n%s\n", c->path, c->usage, c->help);
	for (int i = 0; c->opts && c->opts[i].name; i++) {
		const cli_opt_t *o = &c->opts[i];
		char left[64];
		snprintf(left, sizeof(left), "%c%c%c --%s%s%s", o->shortname ? '-' : ' ',
			 o->shortname ? o->shortname : ' ', o->shortname ? ',' : ' ', o->name,
			 o->arg ? " " : "", o->arg ? o->arg : "");
		fprintf(f, "  %-24s %s\n", left, o->help);
	}
}

/* Words of argv matched against the table's paths: the longest match wins;
 * *nwords says how many argv entries the path used. */
static const cli_cmd_t *find_cmd(int argc, char **argv, int *nwords)
{
	const cli_cmd_t *best = NULL;
	int bestn = 0;

	for (size_t i = 0; i < NA_ARRAY_SIZE(commands); i++) {
		const char *p = commands[i].path;
		int n = 0;
		while (n < argc) {
			size_t l = strlen(argv[n]);
			if (strncmp(p, argv[n], l) || (p[l] != ' ' && p[l] != '\0'))
				break;
			n++;
			p += l;
			if (!*p)
				break;
			p++;
		}
		if (!*p && n > bestn)
			best = &commands[i], bestn = n;
	}
	*nwords = bestn;
	return best;
}

static int set_output(cli_t *cli, const char *v, na_err_t *err)
{
	if (!strcmp(v, "json"))
		cli->json = true;
	else if (!strcmp(v, "table"))
		cli->json = false;
	else
		return cli_usage_err(err, "-o: unknown format \"%s\" (json or table)", v);
	return 0;
}

/* One argv entry as an option: name (without dashes) and inline value. */
static int split_opt(const char *arg, char *name, size_t n, const char **inl)
{
	const char *eq;

	*inl = NULL;
	if (arg[1] != '-') { /* -f FILE, -fFILE, -ojson */
		snprintf(name, n, "%c", arg[1]);
		if (arg[2])
			*inl = arg + 2;
		return 1;
	}
	eq = strchr(arg, '=');
	snprintf(name, n, "%.*s", (int)(eq ? eq - arg - 2 : (ptrdiff_t)strlen(arg + 2)), arg + 2);
	if (eq)
		*inl = eq + 1;
	return 0;
}

/* Returns 1 when --help was asked for. */
static int parse_cmd_args(cli_t *cli, const cli_cmd_t *cmd, int argc, char **argv, cli_args_t *a,
			  na_err_t *err)
{
	bool opts_done = false;

	memset(a, 0, sizeof(*a));
	a->cmd = cmd;
	a->argv = calloc((size_t)argc + 1, sizeof(char *));
	if (!a->argv)
		return na_err_errno(err, ENOMEM, "cannot parse arguments");
	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i], *val;
		char name[64];
		int idx, isshort;

		if (cmd->stop_after && a->argc >= cmd->stop_after && !opts_done) {
			opts_done = true;
			if (!strcmp(arg, "--"))
				continue;
		}
		if (opts_done || arg[0] != '-' || !arg[1]) {
			a->argv[a->argc++] = argv[i];
			continue;
		}
		if (!strcmp(arg, "--")) {
			opts_done = true;
			continue;
		}
		isshort = split_opt(arg, name, sizeof(name), &val);
		if (!strcmp(name, "h") || !strcmp(name, "help"))
			return 1;
		idx = -1;
		for (int k = 0; cmd->opts && cmd->opts[k].name && k < CLI_MAX_OPTS; k++)
			if (isshort ? cmd->opts[k].shortname == name[0] && !name[1]
				    : !strcmp(cmd->opts[k].name, name))
				idx = k;
		bool output = !strcmp(name, "o") || !strcmp(name, "output");
		if (idx < 0 && !output)
			return cli_usage_err(err, "%s: unknown option %s", cmd->path, arg);
		if (output || cmd->opts[idx].arg) {
			if (!val && i + 1 >= argc)
				return cli_usage_err(err, "%s: option %s needs a value", cmd->path,
						     arg);
			if (!val)
				val = argv[++i];
			if (output) {
				if (set_output(cli, val, err) < 0)
					return -1;
				continue;
			}
		} else if (val) {
			return cli_usage_err(err, "%s: option %s takes no value", cmd->path, arg);
		}
		a->val[idx] = val ? val : "";
	}
	if (a->argc < cmd->min_args || (cmd->max_args >= 0 && a->argc > cmd->max_args))
		return cli_usage_err(err, "%s: expected %s", cmd->path,
				     cmd->usage[0] ? cmd->usage : "no arguments");
	return 0;
}

static int global_opts(cli_t *cli, int argc, char **argv, int *used, na_err_t *err)
{
	int i;

	for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
		const char *arg = argv[i], *val;
		char name[64];
		const char **dst = NULL;

		if (!strcmp(arg, "--")) {
			i++;
			break;
		}
		split_opt(arg, name, sizeof(name), &val);
		if (!strcmp(name, "h") || !strcmp(name, "help")) {
			print_help(stdout, NULL);
			return 1;
		}
		if (!strcmp(name, "version")) {
			printf("netagentctl %s\n", NA_VERSION);
			return 1;
		}
		if (!strcmp(name, "insecure-hostname")) {
			cli->insecure_hostname = true;
			continue;
		}
		if (!strcmp(name, "socket"))
			dst = &cli->socket;
		else if (!strcmp(name, "url"))
			dst = &cli->url;
		else if (!strcmp(name, "cert"))
			dst = &cli->cert;
		else if (!strcmp(name, "key"))
			dst = &cli->key;
		else if (!strcmp(name, "cacert"))
			dst = &cli->cacert;
		else if (strcmp(name, "o") && strcmp(name, "output") && strcmp(name, "timeout"))
			return cli_usage_err(err, "unknown option %s", arg);
		if (!val && i + 1 >= argc)
			return cli_usage_err(err, "option %s needs a value", arg);
		if (!val)
			val = argv[++i];
		if (dst) {
			*dst = val;
		} else if (!strcmp(name, "timeout")) {
			char *end;
			cli->timeout_s = strtol(val, &end, 10);
			if (!*val || *end || cli->timeout_s <= 0)
				return cli_usage_err(err,
						     "--timeout: \"%s\" is not a positive "
						     "number of seconds",
						     val);
		} else if (set_output(cli, val, err) < 0) {
			return -1;
		}
	}
	*used = i;
	if (cli->url && cli->socket)
		return cli_usage_err(err, "--socket and --url exclude each other");
	if (cli->url) {
		size_t n = strlen(cli->url);
		if (strncmp(cli->url, "https://", 8))
			return cli_usage_err(err,
					     "--url must be https:// (the API is mutual TLS only)");
		if (!cli->cert || !cli->key || !cli->cacert)
			return cli_usage_err(err, "--url needs --cert, --key and --cacert");
		static char url[1024];
		while (n > 8 && cli->url[n - 1] == '/')
			n--;
		if (n >= sizeof(url))
			return cli_usage_err(err, "--url is too long");
		snprintf(url, sizeof(url), "%.*s", (int)n, cli->url);
		cli->url = url;
	} else if (cli->cert || cli->key || cli->cacert || cli->insecure_hostname) {
		return cli_usage_err(
		    err, "--cert, --key, --cacert and --insecure-hostname go with --url");
	} else if (!cli->socket) {
		const char *env = getenv("NETAGENT_SOCKET");
		cli->socket = env && *env ? env : CLI_DEFAULT_SOCKET;
	}
	return 0;
}

static int run(cli_t *cli, int argc, char **argv, na_err_t *err)
{
	const cli_cmd_t *cmd;
	cli_args_t a = {0};
	int used = 0, nw, rc;

	rc = global_opts(cli, argc, argv, &used, err);
	if (rc)
		return rc > 0 ? 0 : rc;
	argc -= used;
	argv += used;
	if (argc == 0)
		return cli_usage_err(err, "missing command");
	cmd = find_cmd(argc, argv, &nw);
	if (!cmd) {
		/* "net" alone, or "net frob": show that group's commands. */
		for (size_t i = 0; i < NA_ARRAY_SIZE(commands); i++) {
			size_t l = strlen(argv[0]);
			if (!strncmp(commands[i].path, argv[0], l) && commands[i].path[l] == ' ') {
				snprintf(usage_group, sizeof(usage_group), "%s ", argv[0]);
				return cli_usage_err(err, "%s: %s subcommand%s%s", argv[0],
						     argc > 1 ? "unknown" : "missing",
						     argc > 1 ? " " : "", argc > 1 ? argv[1] : "");
			}
		}
		return cli_usage_err(err, "unknown command \"%s\"", argv[0]);
	}
	usage_cmd = cmd;
	if (!cmd->fn) { /* help [COMMAND...] */
		const cli_cmd_t *c = argc > 1 ? find_cmd(argc - 1, argv + 1, &nw) : NULL;
		if (c && c->fn) {
			print_cmd_help(stdout, c);
			return 0;
		}
		if (argc > 1) {
			size_t l = strlen(argv[1]), i;
			for (i = 0; i < NA_ARRAY_SIZE(commands); i++)
				if (!strncmp(commands[i].path, argv[1], l) &&
				    (commands[i].path[l] == ' ' || !commands[i].path[l]))
					break;
			if (i == NA_ARRAY_SIZE(commands))
				return cli_usage_err(err, "help: unknown command \"%s\"", argv[1]);
			snprintf(usage_group, sizeof(usage_group), "%s ", argv[1]);
		}
		print_help(stdout, usage_group[0] ? usage_group : NULL);
		return 0;
	}
	rc = parse_cmd_args(cli, cmd, argc - nw, argv + nw, &a, err);
	if (rc > 0) {
		print_cmd_help(stdout, cmd);
		rc = 0;
	} else if (rc == 0) {
		rc = cmd->fn(cli, &a, err);
	}
	free(a.argv);
	return rc;
}

/* The single place where errors are printed and turned into exit codes. */
static int report(const na_err_t *err)
{
	if (err->status >= 300) {
		fprintf(stderr, "error: %s (%s%s%s)\n", err->msg,
			err->code[0] ? err->code : "error", err->field[0] ? ", field " : "",
			err->field);
		return CLI_EXIT_ERROR;
	}
	fprintf(stderr, "error: %s\n", err->msg);
	if (err->status == CLI_EXIT_USAGE) {
		if (usage_cmd && usage_cmd->fn)
			fprintf(stderr,
				"usage: netagentctl [GLOBAL OPTIONS] %s %s\n"
				"Run 'netagentctl help %s' for its options.\n",
				usage_cmd->path, usage_cmd->usage, usage_cmd->path);
		else
			print_help(stderr, usage_group[0] ? usage_group : NULL);
	}
	return err->status > 0 ? err->status : CLI_EXIT_ERROR;
}

int main(int argc, char **argv)
{
	cli_t cli = {.timeout_s = 120};
	na_err_t err = NA_ERR_INIT;
	int rc;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "error: cannot initialise libcurl\n");
		return CLI_EXIT_ERROR;
	}
	rc = run(&cli, argc, argv, &err);
	if (rc < 0)
		rc = report(&err);
	if (fflush(stdout) != 0 && rc == 0)
		rc = CLI_EXIT_ERROR;
	curl_global_cleanup();
	return rc;
}
