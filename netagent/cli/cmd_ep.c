/* Endpoint commands: ls, add (local or remote), rm. */
#include "netagent/cli/cli.h"
#include "netagent/util.h"

#include <stdio.h>
#include <string.h>

int cmd_ep_ls(cli_t *cli, cli_args_t *a, na_err_t *err)
{
	static const char *const hdr[] = {"NAME", "IP", "MAC", "IFNAME", "LOCAL", "VTEP", "NETNS"};
	static const char *const keys[] = {"name", "ip", "mac", "ifname", "local", "vtep", "netns"};
	cleanup_json json_t *j = NULL;
	json_t *e;
	cli_table_t *t;
	char path[160];
	size_t i;

	if (cli_name_arg("network", a->argv[0], err) < 0)
		return -1;
	snprintf(path, sizeof(path), "/v1/networks/%s/endpoints", a->argv[0]);
	if (cli_call(cli, "GET", path, NULL, &j, NULL, err) < 0)
		return -1;
	if (cli->json) {
		cli_print_json(j);
		return 0;
	}
	t = cli_table_new(7, hdr);
	json_array_foreach(json_object_get(j, "items"), i, e) cli_table_add_fields(t, e, keys);
	cli_table_print(t, NULL);
	cli_table_free(t);
	return 0;
}

static int need(cli_args_t *a, const char *const *names, size_t n, const char *why, na_err_t *err)
{
	for (size_t i = 0; i < n; i++)
		if (!cli_opt(a, names[i]))
			return cli_usage_err(err, "ep add: %s needs --%s", why, names[i]);
	return 0;
}

static int refuse(cli_args_t *a, const char *const *names, size_t n, const char *why, na_err_t *err)
{
	for (size_t i = 0; i < n; i++)
		if (cli_opt(a, names[i]))
			return cli_usage_err(err, "ep add: --%s does not apply to %s", names[i],
					     why);
	return 0;
}

static void set_opt(json_t *body, cli_args_t *a, const char *name)
{
	const char *v = cli_opt(a, name);
	if (v)
		json_object_set_new(body, name, json_string(v));
}

int cmd_ep_add(cli_t *cli, cli_args_t *a, na_err_t *err)
{
	static const char *const remote_need[] = {"ip", "mac", "vtep"};
	static const char *const remote_refuse[] = {"netns", "ifname"};
	static const char *const local_need[] = {"netns"};
	static const char *const local_refuse[] = {"vtep"};
	static const char *const fields[] = {"netns", "ip", "mac", "ifname", "vtep"};
	const char *net = a->argv[0], *name = a->argv[1];
	bool remote = cli_opt(a, "remote") != NULL;
	cleanup_json json_t *body = json_object();
	cleanup_json json_t *res = NULL;
	long status = 0;
	char path[192];

	if (cli_name_arg("network", net, err) < 0 || cli_name_arg("endpoint", name, err) < 0)
		return -1;
	if (remote) {
		if (need(a, remote_need, 3, "a remote endpoint", err) < 0 ||
		    refuse(a, remote_refuse, 2, "a remote endpoint", err) < 0)
			return -1;
	} else if (need(a, local_need, 1, "a local endpoint", err) < 0 ||
		   refuse(a, local_refuse, 1, "a local endpoint (add --remote)", err) < 0) {
		return -1;
	}
	for (size_t i = 0; i < NA_ARRAY_SIZE(fields); i++)
		set_opt(body, a, fields[i]);
	snprintf(path, sizeof(path), "/v1/networks/%s/%s/%s", net,
		 remote ? "remote-endpoints" : "endpoints", name);
	if (cli_call(cli, "PUT", path, body, &res, &status, err) < 0)
		return -1;
	cli_print_applied(cli, remote ? "remote endpoint" : "endpoint", name, status, res);
	return 0;
}

int cmd_ep_rm(cli_t *cli, cli_args_t *a, na_err_t *err)
{
	const char *net = a->argv[0], *name = a->argv[1];
	bool remote = cli_opt(a, "remote") != NULL;
	char path[192];

	if (cli_name_arg("network", net, err) < 0 || cli_name_arg("endpoint", name, err) < 0)
		return -1;
	snprintf(path, sizeof(path), "/v1/networks/%s/%s/%s", net,
		 remote ? "remote-endpoints" : "endpoints", name);
	if (cli_call(cli, "DELETE", path, NULL, NULL, NULL, err) < 0)
		return -1;
	if (!cli->json)
		printf("%s %s deleted\n", remote ? "remote endpoint" : "endpoint", name);
	return 0;
}
