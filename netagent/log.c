#include "netagent/log.h"
#include "netagent/util.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static enum na_log_level min_level = NA_LOG_INFO;
static const char *names[] = {"debug", "info", "warn", "error"};

int na_log_set_level(const char *name)
{
	for (size_t i = 0; i < NA_ARRAY_SIZE(names); i++) {
		if (strcasecmp(name, names[i]) == 0) {
			min_level = (enum na_log_level)i;
			return 0;
		}
	}
	return -1;
}

void na_log(enum na_log_level lvl, const char *msg, const char *fmt, ...)
{
	char ts[40], rest[1024] = "";
	va_list ap;

	if (lvl < min_level)
		return;
	na_time_rfc3339(ts, sizeof(ts));
	if (fmt && *fmt) {
		va_start(ap, fmt);
		vsnprintf(rest, sizeof(rest), fmt, ap);
		va_end(ap);
	}
	/* One fprintf per line: stderr is unbuffered, and a single write keeps
	 * lines from worker threads whole. */
	char line[1400];
	char qmsg[400];
	size_t j = 0;
	for (const char *p = msg; *p && j < sizeof(qmsg) - 3; p++) {
		if (*p == '"' || *p == '\\')
			qmsg[j++] = '\\';
		qmsg[j++] = (*p == '\n') ? ' ' : *p;
	}
	qmsg[j] = 0;
	int n = snprintf(line, sizeof(line), "ts=%s level=%s msg=\"%s\"%s%s\n", ts, names[lvl],
			 qmsg, *rest ? " " : "", rest);
	if (n > (int)sizeof(line))
		n = sizeof(line);
	if (n > 0)
		fwrite(line, 1, (size_t)n, stderr);
}

unsigned long long na_now_ms(void)
{
	return na_now_ns() / 1000000ULL;
}

unsigned long long na_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ULL + (unsigned long long)ts.tv_nsec;
}

void na_time_rfc3339(char *buf, size_t n)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	char base[24];
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, n, "%s.%03ldZ", base, ts.tv_nsec / 1000000L);
}
