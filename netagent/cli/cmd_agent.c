/* Agent-wide commands: status, host, events. */
#include "netagent/cli/cli.h"
#include "netagent/util.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

int cmd_status(cli_t *cli, cli_args_t *a, na_err_t *err)
{
	static const char *const hdr[] = {"NAME", "STATUS", "VERSION"};
	static const char *const keys[] = {"name", "status", "version"};
	cleanup_json json_t *j = NULL;
	cli_table_t *t;

	(void)a;
	if (cli_call(cli, "GET", "/v1/health", NULL, &j, NULL, err) < 0)
		return -1;
	if (cli->json) {
		cli_print_json(j);
		return 0;
	}
	t = cli_table_new(3, hdr);
	cli_table_add_fields(t, j, keys);
	cli_table_print(t, NULL);
	cli_table_free(t);
	return 0;
}

int cmd_host(cli_t *cli, cli_args_t *a, na_err_t *err)
{
	cleanup_json json_t *j = NULL;

	(void)a;
	if (cli_call(cli, "GET", "/v1/host", NULL, &j, NULL, err) < 0)
		return -1;
	cli_show(cli, j);
	return 0;
}

static void on_signal(int sig)
{
	(void)sig;
	cli_interrupted = 1;
}

typedef struct ev_out {
	const cli_t *cli;
	int printed; /* events so far, to print the header once */
} ev_out_t;

static int on_event(const cli_sse_event_t *ev, void *ud)
{
	ev_out_t *o = ud;
	cleanup_json json_t *j = json_loads(ev->data, JSON_DECODE_ANY, NULL);

	if (o->cli->json) {
		/* One compact object per line, so `| jq -c` or a line reader
		 * can follow the stream. Non-JSON data passes through. */
		cleanup_free char *s =
		    j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
		printf("%s\n", s ? s : ev->data);
	} else {
		cleanup_free char *ts = cli_field(j, "ts");
		cleanup_free char *type = cli_field(j, "type");
		cleanup_free char *action = cli_field(j, "action");
		cleanup_free char *name = cli_field(j, "name");
		/* Lines are printed as they come, so columns have fixed
		 * widths instead of being sized on the whole table. */
		if (!o->printed)
			printf("%-24s  %-12s  %-10s  %s\n", "TS", "TYPE", "ACTION", "NAME");
		printf("%-24s  %-12s  %-10s  %s\n", ts,
		       json_is_object(j) && json_object_get(j, "type") ? type : ev->event, action,
		       name);
	}
	o->printed++;
	/* Someone is watching: each event must show now, not when a buffer
	 * fills. A closed stdout ends the stream. */
	if (fflush(stdout) != 0 || ferror(stdout))
		return -1;
	return 0;
}

int cmd_events(cli_t *cli, cli_args_t *a, na_err_t *err)
{
	struct sigaction sa = {.sa_handler = on_signal};
	ev_out_t o = {.cli = cli};

	(void)a;
	/* No SA_RESTART: the interrupted poll() returns and curl consults
	 * the progress callback, which ends the transfer. */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	return cli_stream(cli, "/v1/events", on_event, &o, err);
}
