/* One line per event on stderr, logfmt: ts=… level=… msg="…" key=value … */
#ifndef NA_LOG_H
#define NA_LOG_H

enum na_log_level { NA_LOG_DEBUG, NA_LOG_INFO, NA_LOG_WARN, NA_LOG_ERROR };

int na_log_set_level(const char *name); /* < 0 on unknown name */
/* fmt yields the rest of the line after msg, e.g. "net=%s vni=%u". */
void na_log(enum na_log_level lvl, const char *msg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define na_debug(msg, ...) na_log(NA_LOG_DEBUG, msg, __VA_ARGS__)
#define na_info(msg, ...)  na_log(NA_LOG_INFO, msg, __VA_ARGS__)
#define na_warn(msg, ...)  na_log(NA_LOG_WARN, msg, __VA_ARGS__)
#define na_error(msg, ...) na_log(NA_LOG_ERROR, msg, __VA_ARGS__)

#endif
