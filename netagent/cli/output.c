/* Human output: aligned tables and flattened key/value listings; and the
 * machine output, which is the agent's JSON as is (pretty, sorted keys). */
#include "netagent/cli/cli.h"
#include "netagent/util.h"

#include <stdio.h>
#include <string.h>

void cli_print_json(json_t *j)
{
	cleanup_free char *s = NULL;

	if (!j)
		return;
	s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	if (s)
		printf("%s\n", s);
}

char *cli_scalar(json_t *v)
{
	char *s = NULL;

	switch (json_typeof(v)) {
	case JSON_STRING:
		s = strdup(json_string_value(v));
		break;
	case JSON_INTEGER:
		if (asprintf(&s, "%" JSON_INTEGER_FORMAT, json_integer_value(v)) < 0)
			s = NULL;
		break;
	case JSON_REAL: {
		/* Shortest form that reads back the same: 0.2, not
		 * 0.20000000000000001; 1714557600.25, not 1.71456e+09. */
		double d = json_real_value(v);
		for (int prec = 1; prec <= 17; prec++) {
			free(s);
			if (asprintf(&s, "%.*g", prec, d) < 0)
				return NULL;
			if (strtod(s, NULL) == d)
				break;
		}
		break;
	}
	case JSON_TRUE:
		s = strdup("true");
		break;
	case JSON_FALSE:
		s = strdup("false");
		break;
	case JSON_ARRAY: {
		/* Lists of scalars read best joined ("198.18.1.2,198.18.1.3");
		 * anything deeper stays JSON. */
		size_t i, len = 0;
		json_t *e;
		int flat = 1;
		json_array_foreach(v, i, e) if (json_is_object(e) || json_is_array(e)) flat = 0;
		if (!flat || !json_array_size(v))
			return json_dumps(v, JSON_COMPACT);
		json_array_foreach(v, i, e)
		{
			cleanup_free char *one = cli_scalar(e);
			size_t n = one ? strlen(one) : 0;
			char *t = realloc(s, len + n + 2);
			if (!t)
				break;
			s = t;
			if (len)
				s[len++] = ',';
			memcpy(s + len, one ? one : "", n);
			len += n;
			s[len] = '\0';
		}
		break;
	}
	case JSON_OBJECT:
		return json_dumps(v, JSON_COMPACT);
	case JSON_NULL:
	default:
		s = strdup("-");
	}
	return s;
}

char *cli_field(json_t *obj, const char *key)
{
	json_t *v = obj;
	const char *dot;
	char *s;

	while ((dot = strchr(key, '.'))) {
		v = json_object_getn(v, key, (size_t)(dot - key));
		key = dot + 1;
	}
	v = json_object_get(v, key);
	if (!v)
		return strdup("-");
	s = cli_scalar(v);
	if (s && !s[0]) {
		free(s);
		return strdup("-");
	}
	return s;
}

void cli_show(const cli_t *cli, json_t *obj)
{
	if (cli->json)
		cli_print_json(obj);
	else
		cli_print_kv(obj);
}

void cli_print_applied(const cli_t *cli, const char *kind, const char *name, long status,
		       json_t *obj)
{
	if (!cli->json)
		printf("%s %s %s\n", kind, name, status == 201 ? "created" : "updated");
	cli_show(cli, obj);
}

/* ---- tables ---- */

struct cli_table {
	int ncols, nrows, cap;
	const char *const *headers;
	char ***rows;
};

cli_table_t *cli_table_new(int ncols, const char *const *headers)
{
	cli_table_t *t = calloc(1, sizeof(*t));

	if (!t) {
		perror("netagentctl");
		exit(CLI_EXIT_ERROR);
	}
	t->ncols = ncols;
	t->headers = headers;
	return t;
}

void cli_table_add(cli_table_t *t, char **cells)
{
	char **row;

	if (t->nrows == t->cap) {
		int cap = t->cap ? t->cap * 2 : 16;
		char ***r = realloc(t->rows, (size_t)cap * sizeof(*r));
		if (!r)
			goto oom;
		t->rows = r;
		t->cap = cap;
	}
	row = calloc((size_t)t->ncols, sizeof(*row));
	if (!row)
		goto oom;
	for (int i = 0; i < t->ncols; i++)
		row[i] = cells[i] ? cells[i] : strdup("-");
	t->rows[t->nrows++] = row;
	return;
oom:
	/* Output tables are tiny; running out of memory here is not a state
	 * any caller could recover from. */
	perror("netagentctl");
	exit(CLI_EXIT_ERROR);
}

void cli_table_add_fields(cli_table_t *t, json_t *obj, const char *const *keys)
{
	char *cells[16];

	for (int i = 0; i < t->ncols && i < 16; i++)
		cells[i] = cli_field(obj, keys[i]);
	cli_table_add(t, cells);
}

int cli_table_rows(const cli_table_t *t)
{
	return t->nrows;
}

void cli_table_print(cli_table_t *t, const char *indent)
{
	size_t w[16] = {0};
	int n = t->ncols < 16 ? t->ncols : 16;

	for (int c = 0; c < n; c++) {
		w[c] = strlen(t->headers[c]);
		for (int r = 0; r < t->nrows; r++)
			if (strlen(t->rows[r][c]) > w[c])
				w[c] = strlen(t->rows[r][c]);
	}
	for (int r = -1; r < t->nrows; r++) {
		fputs(indent ? indent : "", stdout);
		for (int c = 0; c < n; c++) {
			const char *cell = r < 0 ? t->headers[c] : t->rows[r][c];
			if (c == n - 1)
				printf("%s\n", cell);
			else
				printf("%-*s  ", (int)w[c], cell);
		}
	}
}

void cli_table_free(cli_table_t *t)
{
	if (!t)
		return;
	for (int r = 0; r < t->nrows; r++) {
		for (int c = 0; c < t->ncols; c++)
			free(t->rows[r][c]);
		free(t->rows[r]);
	}
	free(t->rows);
	free(t);
}

/* ---- key/value listing ---- */

static void kv_collect(cli_table_t *t, json_t *obj, const char *prefix)
{
	const char *k;
	json_t *v;

	json_object_foreach(obj, k, v)
	{
		char *key = NULL;
		if (asprintf(&key, "%s%s%s", prefix, *prefix ? "." : "", k) < 0)
			continue;
		if (json_is_object(v) && json_object_size(v)) {
			kv_collect(t, v, key);
			free(key);
			continue;
		}
		char *cells[2] = {key, cli_scalar(v)};
		if (cells[1] && !cells[1][0]) {
			free(cells[1]);
			cells[1] = strdup("\"\"");
		}
		cli_table_add(t, cells);
	}
}

void cli_print_kv(json_t *obj)
{
	static const char *const hdr[] = {"KEY", "VALUE"};
	cli_table_t *t = cli_table_new(2, hdr);
	size_t w = 0;

	kv_collect(t, obj, "");
	for (int r = 0; r < t->nrows; r++)
		if (strlen(t->rows[r][0]) > w)
			w = strlen(t->rows[r][0]);
	/* No header: a listing of one object reads like `ip -d link show`. */
	for (int r = 0; r < t->nrows; r++)
		printf("%-*s  %s\n", (int)w, t->rows[r][0], t->rows[r][1]);
	cli_table_free(t);
}
