/* Debugging commands: net inspect (kernel view beside the desired one) and
 * net check (reachability between endpoints). */
#include "netagent/cli/cli.h"
#include "netagent/util.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static const char *marker(const char *problem)
{
	if (!problem)
		return "?";
	if (!strcmp(problem, "missing"))
		return "!";
	if (!strcmp(problem, "extra"))
		return "+";
	if (!strcmp(problem, "mismatch"))
		return "~";
	return "?";
}

/* A diff names its object by the row's key, possibly followed by more
 * ("02:84:c6:12:01:03 192.0.2.12"): the key must end at a separator so
 * 198.18.1.3 does not claim 198.18.1.30. */
static int object_is(const char *object, const char *key)
{
	size_t n = strlen(key);
	char c;

	if (!object || !key[0] || strncmp(object, key, n))
		return 0;
	c = object[n];
	return c == '\0' || !(isalnum((unsigned char)c) || c == ':' || c == '.' || c == '-');
}

typedef struct section {
	const char *title;
	const char *kinds[3]; /* diff kinds shown in this section */
	const char *list;     /* member of "kernel" */
	int ncols;
	const char *hdr[7]; /* hdr[0] is the marker column */
	const char *keys[6];
} section_t;

static const section_t sections[] = {
    {"LINKS",
     {"link", "mtu"},
     "links",
     7,
     {"", "NAME", "KIND", "MTU", "UP", "MASTER", "VNI"},
     {"name", "kind", "mtu", "up", "master", "vni"}},
    {"FDB", {"fdb"}, "fdb", 3, {"", "MAC", "DST"}, {"mac", "dst"}},
    {"NEIGHBOURS",
     {"neighbour"},
     "neighbours",
     4,
     {"", "IP", "MAC", "STATE"},
     {"ip", "mac", "state"}},
};

static int kind_in(const section_t *s, const char *kind)
{
	for (int i = 0; i < 3 && s->kinds[i]; i++)
		if (kind && !strcmp(s->kinds[i], kind))
			return 1;
	return 0;
}

static void print_section(const section_t *s, json_t *kernel, json_t *diff)
{
	json_t *rows = json_object_get(kernel, s->list), *row, *d;
	const char *key = s->keys[0];
	cli_table_t *t = cli_table_new(s->ncols, s->hdr);
	size_t i, k;

	json_array_foreach(rows, i, row)
	{
		char *cells[7];
		const char *m = "";
		const char *rk = json_string_value(json_object_get(row, key));
		json_array_foreach(diff, k, d)
		{
			if (kind_in(s, json_string_value(json_object_get(d, "kind"))) && rk &&
			    object_is(json_string_value(json_object_get(d, "object")), rk)) {
				m = marker(json_string_value(json_object_get(d, "problem")));
				break;
			}
		}
		cells[0] = strdup(m);
		for (int c = 1; c < s->ncols; c++)
			cells[c] = cli_field(row, s->keys[c - 1]);
		cli_table_add(t, cells);
	}
	/* What the kernel lacks has no row of its own: show it where it
	 * would be, named by the diff. */
	json_array_foreach(diff, k, d)
	{
		const char *problem = json_string_value(json_object_get(d, "problem"));
		if (!kind_in(s, json_string_value(json_object_get(d, "kind"))) || !problem ||
		    strcmp(problem, "missing"))
			continue;
		char *cells[7] = {strdup("!"), cli_field(d, "object")};
		for (int c = 2; c < s->ncols; c++)
			cells[c] = NULL;
		cli_table_add(t, cells);
	}
	printf("%s\n", s->title);
	if (cli_table_rows(t))
		cli_table_print(t, "  ");
	else
		printf("  (none)\n");
	cli_table_free(t);
}

int cmd_net_inspect(cli_t *cli, cli_args_t *a, na_err_t *err)
{
	static const char *const dhdr[] = {"", "KIND", "OBJECT", "PROBLEM", "DETAIL"};
	static const char *const dkeys[] = {"kind", "object", "problem", "detail"};
	cleanup_json json_t *j = NULL;
	json_t *desired, *kernel, *diff, *d;
	char path[160];
	size_t n, i;

	if (cli_name_arg("network", a->argv[0], err) < 0)
		return -1;
	snprintf(path, sizeof(path), "/v1/networks/%s/inspect", a->argv[0]);
	if (cli_call(cli, "GET", path, NULL, &j, NULL, err) < 0)
		return -1;
	if (cli->json) {
		cli_print_json(j);
		return 0;
	}
	desired = json_object_get(j, "desired");
	kernel = json_object_get(j, "kernel");
	diff = json_object_get(j, "diff");
	{
		cleanup_free char *vni = cli_field(desired, "vni");
		cleanup_free char *subnet = cli_field(desired, "subnet");
		cleanup_free char *mtu = cli_field(desired, "mtu");
		cleanup_free char *netns = cli_field(kernel, "netns");
		printf("NETWORK %s  vni %s  subnet %s  mtu %s\nNETNS   %s\n", a->argv[0], vni,
		       subnet, mtu, netns);
	}
	for (i = 0; i < NA_ARRAY_SIZE(sections); i++)
		print_section(&sections[i], kernel, diff);

	n = json_array_size(diff);
	if (n) {
		cli_table_t *t = cli_table_new(5, dhdr);
		json_array_foreach(diff, i, d)
		{
			char *cells[5] = {
			    strdup(marker(json_string_value(json_object_get(d, "problem"))))};
			for (int c = 1; c < 5; c++)
				cells[c] = cli_field(d, dkeys[c - 1]);
			cli_table_add(t, cells);
		}
		printf("DIFFERENCES\n");
		cli_table_print(t, "  ");
		cli_table_free(t);
		printf("%zu difference%s\n", n, n == 1 ? "" : "s");
	} else {
		printf("in sync\n");
	}
	return 0;
}

int cmd_net_check(cli_t *cli, cli_args_t *a, na_err_t *err)
{
	static const char *const hdr[] = {"FROM", "TO", "IP", "RESULT", "RTT"};
	cleanup_json json_t *j = NULL;
	json_t *results, *r;
	cli_table_t *t;
	size_t i, total, failed = 0;
	char path[160];
	int ok;

	if (cli_name_arg("network", a->argv[0], err) < 0)
		return -1;
	snprintf(path, sizeof(path), "/v1/networks/%s/check", a->argv[0]);
	if (cli_call(cli, "POST", path, NULL, &j, NULL, err) < 0)
		return -1;
	results = json_object_get(j, "results");
	total = json_array_size(results);
	json_array_foreach(results, i, r) if (!json_is_true(json_object_get(r, "ok"))) failed++;
	/* The agent's verdict counts too: it may fail the check as a whole
	 * (no namespace to probe from) with every listed path fine. */
	ok = failed == 0 && !json_is_false(json_object_get(j, "ok"));

	if (cli->json) {
		cli_print_json(j);
	} else {
		t = cli_table_new(5, hdr);
		json_array_foreach(results, i, r)
		{
			json_t *rtt = json_object_get(r, "rtt_ms");
			char *cells[5] = {cli_field(r, "from"), cli_field(r, "to"),
					  cli_field(r, "ip")};
			if (json_is_true(json_object_get(r, "ok"))) {
				cells[3] = strdup("ok");
			} else {
				cleanup_free char *why = cli_field(r, "error");
				if (asprintf(&cells[3], "FAILED (%s)", why) < 0)
					cells[3] = NULL;
			}
			if (!json_is_number(rtt) ||
			    asprintf(&cells[4], "%.3f ms", json_number_value(rtt)) < 0)
				cells[4] = NULL;
			cli_table_add(t, cells);
		}
		cli_table_print(t, NULL);
		cli_table_free(t);
		if (total == 0 && ok)
			printf("no paths to check (fewer than two endpoints)\n");
		else if (ok)
			printf("all %zu paths ok\n", total);
	}
	if (ok)
		return 0;
	/* A result, not an error: the table above says which paths failed. */
	if (failed)
		fprintf(cli->json ? stderr : stdout, "%zu of %zu paths failed\n", failed, total);
	else
		fprintf(cli->json ? stderr : stdout, "check failed\n");
	return CLI_EXIT_ERROR;
}
