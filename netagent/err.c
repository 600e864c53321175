#include "netagent/err.h"

#include <stdio.h>
#include <string.h>

static void copy(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src ? src : "");
}

int na_err_set(na_err_t *err, int status, const char *code, const char *field, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return -1;
	err->status = status;
	copy(err->code, sizeof(err->code), code);
	copy(err->field, sizeof(err->field), field);
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return -1;
}

int na_err_errno(na_err_t *err, int errnum, const char *fmt, ...)
{
	char buf[384];
	va_list ap;

	if (!err)
		return -1;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return na_err_set(err, 500, "system_error", NULL, "%s: %s", buf, strerror(errnum));
}

void na_err_prefix(na_err_t *err, const char *fmt, ...)
{
	char ctx[256], old[sizeof(err->msg)], both[sizeof(ctx) + sizeof(old) + 2];
	va_list ap;

	if (!err)
		return;
	va_start(ap, fmt);
	vsnprintf(ctx, sizeof(ctx), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	snprintf(both, sizeof(both), "%s: %s", ctx, old);
	memcpy(err->msg, both, sizeof(err->msg) - 1);
	err->msg[sizeof(err->msg) - 1] = 0;
}

void na_err_clear(na_err_t *err)
{
	if (err)
		memset(err, 0, sizeof(*err));
}
