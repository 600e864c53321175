/* netagentctl internals: one command table, a libcurl transport to the
 * agent's API (unix socket or HTTPS + client certificate) and the table/JSON
 * printers. Handlers return 0, a positive exit status for an outcome that is
 * not an error (a failed reachability check), or < 0 with err filled.
 *
 * The CLI reuses na_err_t with its own meaning of `status`: an HTTP status
 * (>= 300: no final answer below that is an error) for an error the agent
 * answered, otherwise the process exit status itself (CLI_EXIT_*), so
 * main() maps every error in one place. */
#ifndef NA_CLI_H
#define NA_CLI_H

#include <jansson.h>
#include <stdbool.h>

#include "netagent/err.h"

enum {
	CLI_EXIT_OK = 0,
	CLI_EXIT_ERROR = 1,   /* the agent answered an error, or a local failure */
	CLI_EXIT_USAGE = 2,   /* unknown command, missing or malformed arguments */
	CLI_EXIT_CONNECT = 3, /* cannot reach the agent (connect, TLS, transfer) */
	CLI_EXIT_NOEXEC = 126,
	CLI_EXIT_NOTFOUND = 127,
};

#define CLI_DEFAULT_SOCKET "/run/netagent/netagent.sock"

typedef struct cli {
	const char *socket; /* unix socket path, or NULL when url is set */
	const char *url;    /* https://host:port without trailing '/' */
	const char *cert, *key, *cacert;
	bool insecure_hostname; /* skip only the hostname check, never the chain */
	bool json;		/* -o json */
	long timeout_s;		/* whole-request limit; streams ignore it */
} cli_t;

/* ---- arguments: every command declares its options in the table ---- */
#define CLI_MAX_OPTS 8

typedef struct cli_opt {
	const char *name; /* long name: "vni" → --vni */
	char shortname;	  /* 'f' → -f, or 0 */
	const char *arg;  /* metavar ("N") when it takes a value, NULL for a flag */
	const char *help;
} cli_opt_t;

typedef struct cli_cmd cli_cmd_t;

typedef struct cli_args {
	const cli_cmd_t *cmd;
	int argc; /* positional arguments only */
	char **argv;
	const char *val[CLI_MAX_OPTS]; /* per cmd->opts index; "" for a set flag */
} cli_args_t;

typedef int (*cli_fn)(cli_t *cli, cli_args_t *a, na_err_t *err);

struct cli_cmd {
	const char *path;	/* "net ls" */
	const char *usage;	/* synopsis after the path */
	int min_args, max_args; /* positional arguments; max -1 = unbounded */
	/* Options stop after this many positionals (exec's command line
	 * keeps its own dashes); 0 = never. */
	int stop_after;
	cli_fn fn;
	const char *help;
	const cli_opt_t *opts; /* NULL-name terminated, or NULL */
};

/* Value of option `name` or NULL when absent ("" for a set flag). */
const char *cli_opt(const cli_args_t *a, const char *name);
/* Parses a decimal option into [min, max]; absent → 0 and *out untouched. */
int cli_opt_int(const cli_args_t *a, const char *name, long long min, long long max, long long *out,
		na_err_t *err);
/* A resource name from the command line: 2 (usage) unless it is valid. */
int cli_name_arg(const char *what, const char *name, na_err_t *err);
int cli_usage_err(na_err_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- transport (client.c) ---- */
typedef struct cli_resp {
	long status;
	json_t *json; /* parsed body, NULL for an empty body */
} cli_resp_t;

void cli_resp_clear(cli_resp_t *r);
/* cli_request for the common case: the answer must be a JSON object
 * (*out, caller owns) unless out is NULL; *status gets the HTTP status. */
int cli_call(cli_t *cli, const char *method, const char *path, json_t *body, json_t **out,
	     long *status, na_err_t *err);
/* One request. 2xx → 0 and *resp; an error status → -1 with the agent's
 * error object in err (status = HTTP status); no answer → -1, status 3.
 * body is borrowed and may be NULL. */
int cli_request(cli_t *cli, const char *method, const char *path, json_t *body, cli_resp_t *resp,
		na_err_t *err);

/* One server-sent event as parsed from the stream. */
typedef struct cli_sse_event {
	const char *id, *event, *data; /* never NULL; "" when absent */
} cli_sse_event_t;
typedef int (*cli_sse_fn)(const cli_sse_event_t *ev, void *ud); /* < 0 stops */
/* Follows a text/event-stream until the server ends it (0), the user
 * interrupts (0) or the transport fails (-1, status 3). */
int cli_stream(cli_t *cli, const char *path, cli_sse_fn fn, void *ud, na_err_t *err);
/* Set from the SIGINT/SIGTERM handler; makes cli_stream return 0. */
extern volatile int cli_interrupted;

typedef struct cli_buf {
	char *p;
	size_t len, cap;
} cli_buf_t;

/* SSE frame parser (exposed for tests of split frames). */
typedef struct cli_sse {
	cli_buf_t in;		 /* unconsumed bytes (an incomplete line) */
	char *id, *event, *data; /* fields of the event being assembled */
	size_t data_len;
	bool have_data;
	cli_sse_fn fn;
	void *ud;
} cli_sse_t;
int cli_sse_feed(cli_sse_t *p, const char *chunk, size_t n);
void cli_sse_free(cli_sse_t *p);

/* ---- output (output.c) ---- */
void cli_print_json(json_t *j);
/* Scalar as text: strings as-is, null as "-", numbers and bools. Caller frees. */
char *cli_scalar(json_t *v);
/* Member `key` of obj as text (see cli_scalar); "-" when absent or empty.
 * A dotted key walks nested objects ("endpoints.local"). Caller frees. */
char *cli_field(json_t *obj, const char *key);
/* "key  value" lines, nested objects flattened ("underlay.mtu  1500"). */
void cli_print_kv(json_t *obj);
/* An answer as the user asked for it: JSON (-o json) or key/value lines. */
void cli_show(const cli_t *cli, json_t *obj);
/* What a PUT answered: "<kind> <name> created|updated" (201/200) and the
 * resource; with -o json only the resource, so the output stays JSON. */
void cli_print_applied(const cli_t *cli, const char *kind, const char *name, long status,
		       json_t *obj);

typedef struct cli_table cli_table_t;
cli_table_t *cli_table_new(int ncols, const char *const *headers);
/* Takes ownership of the ncols malloc'd strings (NULL → "-"). */
void cli_table_add(cli_table_t *t, char **cells);
/* Convenience: row from members of obj named by keys (ncols of them). */
void cli_table_add_fields(cli_table_t *t, json_t *obj, const char *const *keys);
void cli_table_print(cli_table_t *t, const char *indent);
int cli_table_rows(const cli_table_t *t);
void cli_table_free(cli_table_t *t);

/* ---- commands ---- */
int cmd_status(cli_t *cli, cli_args_t *a, na_err_t *err);
int cmd_host(cli_t *cli, cli_args_t *a, na_err_t *err);
int cmd_events(cli_t *cli, cli_args_t *a, na_err_t *err);
int cmd_net_ls(cli_t *cli, cli_args_t *a, na_err_t *err);
int cmd_net_show(cli_t *cli, cli_args_t *a, na_err_t *err);
int cmd_net_apply(cli_t *cli, cli_args_t *a, na_err_t *err);
int cmd_net_rm(cli_t *cli, cli_args_t *a, na_err_t *err);
int cmd_net_inspect(cli_t *cli, cli_args_t *a, na_err_t *err);
int cmd_net_check(cli_t *cli, cli_args_t *a, na_err_t *err);
int cmd_net_exec(cli_t *cli, cli_args_t *a, na_err_t *err);
int cmd_ep_ls(cli_t *cli, cli_args_t *a, na_err_t *err);
int cmd_ep_add(cli_t *cli, cli_args_t *a, na_err_t *err);
int cmd_ep_rm(cli_t *cli, cli_args_t *a, na_err_t *err);
/* The body for `apply -f FILE` ('-' = stdin): a JSON object, or NULL with err. */
json_t *cli_load_object(const char *file, na_err_t *err);

int cmd_ct_ls(cli_t *cli, cli_args_t *a, na_err_t *err);
int cmd_ct_show(cli_t *cli, cli_args_t *a, na_err_t *err);
int cmd_ct_apply(cli_t *cli, cli_args_t *a, na_err_t *err);
int cmd_ct_rm(cli_t *cli, cli_args_t *a, na_err_t *err);
int cmd_ct_start(cli_t *cli, cli_args_t *a, na_err_t *err);
int cmd_ct_stop(cli_t *cli, cli_args_t *a, na_err_t *err);
int cmd_ct_restart(cli_t *cli, cli_args_t *a, na_err_t *err);
int cmd_ct_logs(cli_t *cli, cli_args_t *a, na_err_t *err);
int cmd_ct_exec(cli_t *cli, cli_args_t *a, na_err_t *err);
int cmd_vip_ls(cli_t *cli, cli_args_t *a, na_err_t *err);
int cmd_vip_show(cli_t *cli, cli_args_t *a, na_err_t *err);
int cmd_vip_apply(cli_t *cli, cli_args_t *a, na_err_t *err);
int cmd_vip_rm(cli_t *cli, cli_args_t *a, na_err_t *err);
int cmd_vip_failover(cli_t *cli, cli_args_t *a, na_err_t *err);
int cmd_vip_history(cli_t *cli, cli_args_t *a, na_err_t *err);
int cmd_doctor(cli_t *cli, cli_args_t *a, na_err_t *err);

#endif
