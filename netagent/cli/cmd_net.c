/* Network commands: ls, show, apply, rm, exec. */
#include "netagent/cli/cli.h"
#include "netagent/util.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

int cmd_net_ls(cli_t *cli, cli_args_t *a, na_err_t *err)
{
	static const char *const hdr[] = {"NAME",  "VNI",    "SUBNET", "MTU",
					  "LOCAL", "REMOTE", "NETNS"};
	static const char *const keys[] = {
	    "name", "vni", "subnet", "mtu", "endpoints.local", "endpoints.remote", "netns"};
	cleanup_json json_t *j = NULL;
	json_t *items, *n;
	cli_table_t *t;
	size_t i;

	(void)a;
	if (cli_call(cli, "GET", "/v1/networks", NULL, &j, NULL, err) < 0)
		return -1;
	if (cli->json) {
		cli_print_json(j);
		return 0;
	}
	items = json_object_get(j, "items");
	t = cli_table_new(7, hdr);
	json_array_foreach(items, i, n) cli_table_add_fields(t, n, keys);
	cli_table_print(t, NULL);
	cli_table_free(t);
	return 0;
}

int cmd_net_show(cli_t *cli, cli_args_t *a, na_err_t *err)
{
	cleanup_json json_t *j = NULL;
	char path[128];

	if (cli_name_arg("network", a->argv[0], err) < 0)
		return -1;
	snprintf(path, sizeof(path), "/v1/networks/%s", a->argv[0]);
	if (cli_call(cli, "GET", path, NULL, &j, NULL, err) < 0)
		return -1;
	cli_show(cli, j);
	return 0;
}

int cmd_net_apply(cli_t *cli, cli_args_t *a, na_err_t *err)
{
	/* What GET shows but PUT does not take, so that the output of
	 * `net show -o json` can be fed back with -f. */
	static const char *const readonly[] = {"netns", "endpoints", "status", "repairs"};
	const char *name = a->argv[0], *file = cli_opt(a, "file"), *subnet = cli_opt(a, "subnet");
	cleanup_json json_t *body = NULL;
	cleanup_json json_t *res = NULL;
	long long vni = -1, mtu = -1;
	long status = 0;
	json_t *fname;
	char path[128];

	if (cli_name_arg("network", name, err) < 0)
		return -1;
	if (cli_opt_int(a, "vni", 1, 16777215, &vni, err) < 0 ||
	    cli_opt_int(a, "mtu", 68, 65535, &mtu, err) < 0)
		return -1;
	if (!file && (vni < 0 || !subnet))
		return cli_usage_err(err, "net apply: --vni and --subnet are required without -f");
	body = file ? cli_load_object(file, err) : json_object();
	if (!body)
		return -1;
	fname = json_object_get(body, "name");
	if (fname && (!json_is_string(fname) || strcmp(json_string_value(fname), name)))
		return cli_usage_err(err, "net apply: %s names another network than \"%s\"", file,
				     name);
	json_object_del(body, "name");
	for (size_t i = 0; i < NA_ARRAY_SIZE(readonly); i++)
		json_object_del(body, readonly[i]);
	if (vni >= 0)
		json_object_set_new(body, "vni", json_integer(vni));
	if (subnet)
		json_object_set_new(body, "subnet", json_string(subnet));
	if (mtu >= 0)
		json_object_set_new(body, "mtu", json_integer(mtu));

	snprintf(path, sizeof(path), "/v1/networks/%s", name);
	if (cli_call(cli, "PUT", path, body, &res, &status, err) < 0)
		return -1;
	cli_print_applied(cli, "network", name, status, res);
	return 0;
}

int cmd_net_rm(cli_t *cli, cli_args_t *a, na_err_t *err)
{
	char path[160];

	if (cli_name_arg("network", a->argv[0], err) < 0)
		return -1;
	snprintf(path, sizeof(path), "/v1/networks/%s%s", a->argv[0],
		 cli_opt(a, "force") ? "?force=true" : "");
	if (cli_call(cli, "DELETE", path, NULL, NULL, NULL, err) < 0)
		return -1;
	if (!cli->json)
		printf("network %s deleted\n", a->argv[0]);
	return 0;
}

int cmd_net_exec(cli_t *cli, cli_args_t *a, na_err_t *err)
{
	cleanup_json json_t *net = NULL;
	cleanup_close int fd = -1;
	const char *netns;
	char path[128];

	if (cli->url)
		return cli_usage_err(err, "net exec enters a namespace of this host: use the local "
					  "--socket, not --url");
	if (cli_name_arg("network", a->argv[0], err) < 0)
		return -1;
	snprintf(path, sizeof(path), "/v1/networks/%s", a->argv[0]);
	if (cli_call(cli, "GET", path, NULL, &net, NULL, err) < 0)
		return -1;
	netns = json_string_value(json_object_get(net, "netns"));
	if (!netns || netns[0] != '/')
		return na_err_set(err, CLI_EXIT_ERROR, "no_netns", NULL,
				  "network %s has no namespace path", a->argv[0]);
	fd = open(netns, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return na_err_set(err, CLI_EXIT_ERROR, "netns", NULL, "cannot open %s: %s", netns,
				  strerror(errno));
	/* Only the network namespace: the mount namespace stays ours, so
	 * /sys still shows the host's devices (unlike `ip netns exec`), but
	 * netlink-based tools (ip, bridge, ss) see the network's view. */
	if (setns(fd, CLONE_NEWNET) < 0)
		return na_err_set(err, CLI_EXIT_ERROR, "netns", NULL, "cannot enter %s: %s%s",
				  netns, strerror(errno), errno == EPERM ? " (run as root)" : "");
	fflush(stdout);
	execvp(a->argv[1], a->argv + 1);
	int e = errno;
	/* Same statuses as env(1) and shells: 127 not found, 126 not runnable. */
	return na_err_set(err, e == ENOENT ? CLI_EXIT_NOTFOUND : CLI_EXIT_NOEXEC, "exec", NULL,
			  "cannot run %s: %s", a->argv[1], strerror(e));
}
