/* The one input helper: a resource body for `apply -f FILE` ('-' = stdin). */
#include "netagent/cli/cli.h"

#include <string.h>

json_t *cli_load_object(const char *file, na_err_t *err)
{
	const char *what = strcmp(file, "-") ? file : "stdin";
	json_error_t je;
	json_t *j = strcmp(file, "-") ? json_load_file(file, 0, &je) : json_loadf(stdin, 0, &je);
	if (!j) {
		na_err_set(err, CLI_EXIT_ERROR, "invalid_file", NULL, "%s: line %d: %s", what,
			   je.line, je.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		na_err_set(err, CLI_EXIT_ERROR, "invalid_file", NULL, "%s: not a JSON object",
			   what);
		return NULL;
	}
	return j;
}
