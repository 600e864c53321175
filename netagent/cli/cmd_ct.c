/* Container commands: ct ls, show, apply, rm, start, stop, restart, logs,
 * exec. */
#include "netagent/cli/cli.h"
#include "netagent/util.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int ct_path(const char *name, const char *suffix, char *buf, size_t n, na_err_t *err)
{
	if (cli_name_arg("container", name, err) < 0)
		return -1;
	snprintf(buf, n, "/v1/containers/%s%s", name, suffix ? suffix : "");
	return 0;
}

static char *ips(json_t *c)
{
	json_t *ifs = json_object_get(c, "interfaces"), *f;
	size_t i;
	char buf[512] = "";
	json_array_foreach(ifs, i, f)
	{
		const char *ip = json_string_value(json_object_get(f, "ip"));
		const char *net = json_string_value(json_object_get(f, "network"));
		snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%s:%s", i ? "," : "",
			 net ? net : "?", ip ? ip : "?");
	}
	return strdup(buf[0] ? buf : "-");
}

int cmd_ct_ls(cli_t *cli, cli_args_t *a, na_err_t *err)
{
	static const char *const hdr[] = {"NAME", "ROLE",     "STATE",	 "PID",
					  "EXIT", "RESTARTS", "NETWORKS"};
	static const char *const keys[] = {"name", "role", "state", "pid", "exit_code", "restarts"};
	cleanup_json json_t *j = NULL;
	json_t *c;
	size_t i;

	(void)a;
	if (cli_call(cli, "GET", "/v1/containers", NULL, &j, NULL, err) < 0)
		return -1;
	if (cli->json) {
		cli_print_json(j);
		return 0;
	}
	cli_table_t *t = cli_table_new(7, hdr);
	json_array_foreach(json_object_get(j, "items"), i, c)
	{
		char *cells[7];
		for (int k = 0; k < 6; k++)
			cells[k] = cli_field(c, keys[k]);
		cells[6] = ips(c);
		cli_table_add(t, cells);
	}
	cli_table_print(t, NULL);
	cli_table_free(t);
	return 0;
}

int cmd_ct_show(cli_t *cli, cli_args_t *a, na_err_t *err)
{
	cleanup_json json_t *j = NULL;
	char path[128];
	if (ct_path(a->argv[0], NULL, path, sizeof(path), err) < 0 ||
	    cli_call(cli, "GET", path, NULL, &j, NULL, err) < 0)
		return -1;
	cli_show(cli, j);
	return 0;
}

/* "a,b,c" → each item to fn; 0 or -1 (usage error in err). */
typedef int (*item_fn)(json_t *body, const char *item, na_err_t *err);

static int each_item(json_t *body, const char *list, item_fn fn, na_err_t *err)
{
	cleanup_free char *copy = strdup(list);
	char *save = NULL;
	if (!copy)
		return na_err_errno(err, ENOMEM, "arguments");
	for (char *it = strtok_r(copy, ",", &save); it; it = strtok_r(NULL, ",", &save))
		if (fn(body, it, err) < 0)
			return -1;
	return 0;
}

static json_t *array_of(json_t *body, const char *key)
{
	json_t *a = json_object_get(body, key);
	if (!json_is_array(a)) {
		a = json_array();
		json_object_set_new(body, key, a);
	}
	return a;
}

static int add_net(json_t *body, const char *it, na_err_t *err)
{
	const char *eq = strchr(it, '=');
	char net[64];
	(void)err;
	snprintf(net, sizeof(net), "%.*s", (int)(eq ? eq - it : (long)strlen(it)), it);
	json_t *n = json_pack("{s:s}", "network", net);
	if (eq)
		json_object_set_new(n, "ip", json_string(eq + 1));
	json_array_append_new(array_of(body, "networks"), n);
	return 0;
}

static int add_vol(json_t *body, const char *it, na_err_t *err)
{
	const char *colon = strchr(it, ':');
	char name[64];
	if (!colon)
		return cli_usage_err(err, "--volume: \"%s\" is not NAME:/MOUNT", it);
	snprintf(name, sizeof(name), "%.*s", (int)(colon - it), it);
	json_array_append_new(array_of(body, "volumes"),
			      json_pack("{s:s, s:s}", "name", name, "mount", colon + 1));
	return 0;
}

static int add_env(json_t *body, const char *it, na_err_t *err)
{
	const char *eq = strchr(it, '=');
	char k[256];
	if (!eq)
		return cli_usage_err(err, "--env: \"%s\" is not KEY=VALUE", it);
	snprintf(k, sizeof(k), "%.*s", (int)(eq - it), it);
	json_t *env = json_object_get(body, "env");
	if (!json_is_object(env)) {
		env = json_object();
		json_object_set_new(body, "env", env);
	}
	json_object_set_new(env, k, json_string(eq + 1));
	return 0;
}

int cmd_ct_apply(cli_t *cli, cli_args_t *a, na_err_t *err)
{
	/* What GET shows but PUT does not take, so `ct show -o json` output
	 * can be fed back with -f. */
	static const char *const readonly[] = {
	    "name",	  "state",	"desired",   "pid",
	    "netns",	  "interfaces", "exit_code", "signal",
	    "oom_killed", "restarts",	"started",   "finished",
	    "error",	  "process",	"runtime",   "next_restart_ms"};
	const char *name = a->argv[0], *file = cli_opt(a, "file"), *v;
	cleanup_json json_t *body = NULL;
	cleanup_json json_t *res = NULL;
	long long mem = -1;
	long status = 0;
	char path[128];

	if (ct_path(name, NULL, path, sizeof(path), err) < 0 ||
	    cli_opt_int(a, "memory", 1, 1LL << 30, &mem, err) < 0)
		return -1;
	body = file ? cli_load_object(file, err) : json_object();
	if (!body)
		return -1;
	json_t *fname = json_object_get(body, "name");
	if (fname && (!json_is_string(fname) || strcmp(json_string_value(fname), name)))
		return cli_usage_err(err, "ct apply: %s names another container than \"%s\"", file,
				     name);
	for (size_t i = 0; i < NA_ARRAY_SIZE(readonly); i++)
		json_object_del(body, readonly[i]);
	if ((v = cli_opt(a, "role")))
		json_object_set_new(body, "role", json_string(v));
	if ((v = cli_opt(a, "image")))
		json_object_set_new(body, "image",
				    !strcmp(v, "host")
					? json_pack("{s:s}", "type", "host")
					: json_pack("{s:s, s:s}", "type", "rootfs", "path", v));
	if ((v = cli_opt(a, "restart")))
		json_object_set_new(body, "restart", json_string(v));
	if (mem >= 0) {
		json_t *r = json_object_get(body, "resources");
		if (!json_is_object(r)) {
			r = json_object();
			json_object_set_new(body, "resources", r);
		}
		json_object_set_new(r, "memory_mb", json_integer(mem));
	}
	if (((v = cli_opt(a, "net")) && each_item(body, v, add_net, err) < 0) ||
	    ((v = cli_opt(a, "volume")) && each_item(body, v, add_vol, err) < 0) ||
	    ((v = cli_opt(a, "env")) && each_item(body, v, add_env, err) < 0))
		return -1;
	if (a->argc > 1) {
		json_t *cmd = json_array();
		for (int i = 1; i < a->argc; i++)
			json_array_append_new(cmd, json_string(a->argv[i]));
		json_object_set_new(body, "command", cmd);
	}
	if (cli_call(cli, "PUT", path, body, &res, &status, err) < 0)
		return -1;
	cli_print_applied(cli, "container", name, status, res);
	return 0;
}

int cmd_ct_rm(cli_t *cli, cli_args_t *a, na_err_t *err)
{
	char path[160];
	if (ct_path(a->argv[0], cli_opt(a, "purge") ? "?purge=true" : NULL, path, sizeof(path),
		    err) < 0 ||
	    cli_call(cli, "DELETE", path, NULL, NULL, NULL, err) < 0)
		return -1;
	if (!cli->json)
		printf("container %s deleted%s\n", a->argv[0],
		       cli_opt(a, "purge") ? " (volumes purged)" : "");
	return 0;
}

static int action(cli_t *cli, cli_args_t *a, const char *what, na_err_t *err)
{
	cleanup_json json_t *j = NULL;
	char path[160], suffix[16];
	snprintf(suffix, sizeof(suffix), "/%s", what);
	if (ct_path(a->argv[0], suffix, path, sizeof(path), err) < 0 ||
	    cli_call(cli, "POST", path, NULL, &j, NULL, err) < 0)
		return -1;
	if (cli->json) {
		cli_print_json(j);
	} else {
		cleanup_free char *st = cli_field(j, "state");
		cleanup_free char *pid = cli_field(j, "pid");
		printf("container %s %s (pid %s)\n", a->argv[0], st, pid);
	}
	return 0;
}

int cmd_ct_start(cli_t *cli, cli_args_t *a, na_err_t *err)
{
	return action(cli, a, "start", err);
}

int cmd_ct_stop(cli_t *cli, cli_args_t *a, na_err_t *err)
{
	return action(cli, a, "stop", err);
}

int cmd_ct_restart(cli_t *cli, cli_args_t *a, na_err_t *err)
{
	return action(cli, a, "restart", err);
}

static void print_line(const cli_t *cli, json_t *l, int ts)
{
	if (cli->json) {
		cleanup_free char *s = json_dumps(l, JSON_COMPACT | JSON_SORT_KEYS);
		printf("%s\n", s ? s : "{}");
		return;
	}
	const char *t = json_string_value(json_object_get(l, "time"));
	const char *text = json_string_value(json_object_get(l, "text"));
	const char *stream = json_string_value(json_object_get(l, "stream"));
	if (ts)
		printf("%s %s ", t ? t : "-", stream ? stream : "-");
	printf("%s%s", text ? text : "", json_is_true(json_object_get(l, "partial")) ? "" : "\n");
}

typedef struct follow {
	const cli_t *cli;
	int ts;
} follow_t;

static void on_signal(int sig)
{
	(void)sig;
	cli_interrupted = 1;
}

static int on_log(const cli_sse_event_t *ev, void *ud)
{
	follow_t *f = ud;
	if (!strcmp(ev->event, "end")) {
		cli_interrupted = 1; /* the container was deleted */
		return 0;
	}
	cleanup_json json_t *l = json_loads(ev->data, 0, NULL);
	if (l)
		print_line(f->cli, l, f->ts);
	return fflush(stdout) != 0 ? -1 : 0;
}

int cmd_ct_logs(cli_t *cli, cli_args_t *a, na_err_t *err)
{
	long long tail = 100;
	char path[200], q[64];
	int ts = cli_opt(a, "timestamps") != NULL;
	if (cli_opt_int(a, "tail", 1, 10000, &tail, err) < 0)
		return -1;
	snprintf(q, sizeof(q), "/logs?tail=%lld%s", tail,
		 cli_opt(a, "follow") ? "&follow=true" : "");
	if (ct_path(a->argv[0], q, path, sizeof(path), err) < 0)
		return -1;
	if (cli_opt(a, "follow")) {
		struct sigaction sa = {.sa_handler = on_signal};
		follow_t f = {cli, ts};
		sigemptyset(&sa.sa_mask);
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		return cli_stream(cli, path, on_log, &f, err);
	}
	cleanup_json json_t *j = NULL;
	if (cli_call(cli, "GET", path, NULL, &j, NULL, err) < 0)
		return -1;
	size_t i;
	json_t *l;
	json_array_foreach(json_object_get(j, "lines"), i, l) print_line(cli, l, ts);
	return 0;
}

/* Local only: `runc exec` with the agent's runtime root, so the command
 * gets the container's namespaces, cgroup, user and restrictions. */
int cmd_ct_exec(cli_t *cli, cli_args_t *a, na_err_t *err)
{
	cleanup_json json_t *j = NULL;
	char path[128];
	if (cli->url)
		return cli_usage_err(err, "ct exec runs the runtime of this host: use the local "
					  "--socket, not --url");
	if (ct_path(a->argv[0], NULL, path, sizeof(path), err) < 0 ||
	    cli_call(cli, "GET", path, NULL, &j, NULL, err) < 0)
		return -1;
	const char *state = json_string_value(json_object_get(j, "state"));
	json_t *rt = json_object_get(j, "runtime");
	const char *bin = json_string_value(json_object_get(rt, "path"));
	const char *root = json_string_value(json_object_get(rt, "root"));
	const char *id = json_string_value(json_object_get(rt, "id"));
	if (!state || strcmp(state, "running"))
		return na_err_set(err, CLI_EXIT_ERROR, "not_running", NULL, "container %s is %s",
				  a->argv[0], state ? state : "in an unknown state");
	if (!bin || bin[0] != '/' || !root || root[0] != '/' || !id)
		return na_err_set(err, CLI_EXIT_ERROR, "no_runtime", NULL,
				  "the agent did not say which runtime runs %s", a->argv[0]);
	char **argv = calloc((size_t)a->argc + 8, sizeof(char *));
	if (!argv)
		return na_err_errno(err, ENOMEM, "exec");
	int k = 0;
	argv[k++] = (char *)bin;
	argv[k++] = "--root";
	argv[k++] = (char *)root;
	argv[k++] = "exec";
	if (isatty(0) && isatty(1))
		argv[k++] = "--tty";
	argv[k++] = (char *)id;
	for (int i = 1; i < a->argc; i++)
		argv[k++] = a->argv[i];
	fflush(stdout);
	execv(bin, argv);
	int e = errno;
	free(argv);
	return na_err_set(err, e == ENOENT ? CLI_EXIT_NOTFOUND : CLI_EXIT_NOEXEC, "exec", NULL,
			  "cannot run %s: %s", bin, strerror(e));
}
