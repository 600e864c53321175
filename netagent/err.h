/* Error objects in the style of crun: a fallible function returns < 0 and
 * fills the na_err_t passed last; callers add context on the way up and only
 * main() (or the API layer, which turns it into a response) reports it. */
#ifndef NA_ERR_H
#define NA_ERR_H

#include <stdarg.h>

typedef struct na_err {
	int status;	/* HTTP status the API answers with; 0 means "no error" */
	char code[48];	/* snake_case machine code, e.g. "invalid_field" */
	char field[64]; /* offending field for 422, else "" */
	char msg[512];	/* human sentence, context prefixed with ": " */
} na_err_t;

/* Sets err and returns -1 so callers can `return na_err_set(...)`. */
int na_err_set(na_err_t *err, int status, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* 500 "system_error" with strerror(errnum) appended. Returns -1. */
int na_err_errno(na_err_t *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prepends "context: " to the message, keeping status/code/field. */
void na_err_prefix(na_err_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void na_err_clear(na_err_t *err);

#define NA_ERR_INIT                                                                                \
	{                                                                                          \
		0, "", "", ""                                                                      \
	}

#endif
