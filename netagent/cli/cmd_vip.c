/* VIP commands: vip ls, show, apply, rm, failover, history. */
#include "netagent/cli/cli.h"
#include "netagent/util.h"

#include <stdio.h>
#include <string.h>

static int vip_path(const char *name, const char *suffix, char *buf, size_t n, na_err_t *err)
{
	if (cli_name_arg("vip", name, err) < 0)
		return -1;
	snprintf(buf, n, "/v1/vips/%s%s", name, suffix ? suffix : "");
	return 0;
}

/* "interface:eth0" or "container:gw-1". */
static char *target(json_t *v)
{
	json_t *t = json_object_get(v, "target");
	const char *k;
	json_t *val;
	char buf[128] = "-";
	json_object_foreach(t, k, val)
	{
		snprintf(buf, sizeof(buf), "%s:%s", k,
			 json_string_value(val) ? json_string_value(val) : "?");
		break;
	}
	return strdup(buf);
}

int cmd_vip_ls(cli_t *cli, cli_args_t *a, na_err_t *err)
{
	static const char *const hdr[] = {"NAME",   "ADDRESS", "TARGET", "STATE",
					  "HOLDER", "HEALTH",  "SINCE",	 "TRANSITIONS"};
	static const char *const keys[] = {"name",   "address",	      "",      "state",
					   "holder", "health.status", "since", "transitions"};
	cleanup_json json_t *j = NULL;
	json_t *v;
	size_t i;

	(void)a;
	if (cli_call(cli, "GET", "/v1/vips", NULL, &j, NULL, err) < 0)
		return -1;
	if (cli->json) {
		cli_print_json(j);
		return 0;
	}
	cli_table_t *t = cli_table_new(8, hdr);
	json_array_foreach(json_object_get(j, "items"), i, v)
	{
		char *cells[8];
		for (int k = 0; k < 8; k++)
			cells[k] = k == 2 ? target(v) : cli_field(v, keys[k]);
		cli_table_add(t, cells);
	}
	cli_table_print(t, NULL);
	cli_table_free(t);
	return 0;
}

int cmd_vip_show(cli_t *cli, cli_args_t *a, na_err_t *err)
{
	cleanup_json json_t *j = NULL;
	char path[128];
	if (vip_path(a->argv[0], NULL, path, sizeof(path), err) < 0 ||
	    cli_call(cli, "GET", path, NULL, &j, NULL, err) < 0)
		return -1;
	cli_show(cli, j);
	return 0;
}

int cmd_vip_apply(cli_t *cli, cli_args_t *a, na_err_t *err)
{
	/* What GET shows but PUT does not take: `vip show -o json` output
	 * can be fed back with -f. */
	static const char *const readonly[] = {
	    "name", "state",	"holder",     "since", "transitions",	  "health",
	    "mode", "resolved", "candidates", "error", "last_failover_ms"};
	const char *name = a->argv[0], *file = cli_opt(a, "file");
	const char *addr = cli_opt(a, "address"), *ifn = cli_opt(a, "interface");
	const char *ctr = cli_opt(a, "container");
	cleanup_json json_t *body = NULL;
	cleanup_json json_t *out = NULL;
	long long prio = -1;
	long status = 0;
	char path[128];

	if (vip_path(name, NULL, path, sizeof(path), err) < 0)
		return -1;
	if (!file && !addr)
		return cli_usage_err(err, "vip apply: give -f FILE or --address CIDR");
	if (ifn && ctr)
		return cli_usage_err(err, "vip apply: --interface or --container, not both");
	body = file ? cli_load_object(file, err) : json_object();
	if (!body)
		return -1;
	for (size_t i = 0; i < NA_ARRAY_SIZE(readonly); i++)
		json_object_del(body, readonly[i]);
	if (addr)
		json_object_set_new(body, "address", json_string(addr));
	if (ifn || ctr)
		json_object_set_new(
		    body, "target",
		    json_pack("{s:s}", ifn ? "interface" : "container", ifn ? ifn : ctr));
	if (!json_object_get(body, "target"))
		json_object_set_new(body, "target", json_pack("{s:s}", "interface", "eth0"));
	if (cli_opt_int(a, "priority", 0, 255, &prio, err) < 0)
		return -1;
	if (prio >= 0 && cli_opt(a, "priority"))
		json_object_set_new(body, "priority", json_integer(prio));
	if (cli_opt(a, "preempt"))
		json_object_set_new(body, "preempt", json_true());
	if (cli_call(cli, "PUT", path, body, &out, &status, err) < 0)
		return -1;
	cli_print_applied(cli, "vip", name, status, out);
	return 0;
}

int cmd_vip_rm(cli_t *cli, cli_args_t *a, na_err_t *err)
{
	char path[128];
	if (vip_path(a->argv[0], NULL, path, sizeof(path), err) < 0 ||
	    cli_call(cli, "DELETE", path, NULL, NULL, NULL, err) < 0)
		return -1;
	if (!cli->json)
		printf("vip %s deleted\n", a->argv[0]);
	return 0;
}

int cmd_vip_failover(cli_t *cli, cli_args_t *a, na_err_t *err)
{
	cleanup_json json_t *j = NULL;
	char path[128];
	if (vip_path(a->argv[0], "/failover", path, sizeof(path), err) < 0 ||
	    cli_call(cli, "POST", path, NULL, &j, NULL, err) < 0)
		return -1;
	if (cli->json) {
		cli_print_json(j);
		return 0;
	}
	cleanup_free char *st = cli_field(j, "state");
	printf("vip %s handed over (this agent is now %s)\n", a->argv[0], st);
	return 0;
}

int cmd_vip_history(cli_t *cli, cli_args_t *a, na_err_t *err)
{
	static const char *const hdr[] = {"TIME", "FROM", "TO", "HOLDER", "REASON"};
	static const char *const keys[] = {"ts", "from", "to", "holder", "reason"};
	cleanup_json json_t *j = NULL;
	json_t *h;
	size_t i;
	char path[128];

	if (vip_path(a->argv[0], "/history", path, sizeof(path), err) < 0 ||
	    cli_call(cli, "GET", path, NULL, &j, NULL, err) < 0)
		return -1;
	if (cli->json) {
		cli_print_json(j);
		return 0;
	}
	cli_table_t *t = cli_table_new(5, hdr);
	json_array_foreach(json_object_get(j, "items"), i, h) cli_table_add_fields(t, h, keys);
	cli_table_print(t, NULL);
	cli_table_free(t);
	return 0;
}
