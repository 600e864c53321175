/* Small helpers shared by every module: scoped cleanup and string copies. */
#ifndef NA_UTIL_H
#define NA_UTIL_H

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline void na_freep(void *p)
{
	free(*(void **)p);
}
static inline void na_closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}
static inline void na_fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}
static inline void na_json_decrefp(json_t **j)
{
	json_decref(*j);
}

#define cleanup_free   __attribute__((cleanup(na_freep)))
#define cleanup_close  __attribute__((cleanup(na_closep)))
#define cleanup_fclose __attribute__((cleanup(na_fclosep)))
#define cleanup_json   __attribute__((cleanup(na_json_decrefp)))

/* Move ownership out of a cleanup variable: `return NA_STEAL(p);` */
#define NA_STEAL(p)                                                                                \
	({                                                                                         \
		__typeof__(p) _tmp = (p);                                                          \
		(p) = NULL;                                                                        \
		_tmp;                                                                              \
	})
#define NA_STEAL_FD(fd)                                                                            \
	({                                                                                         \
		int _tmp = (fd);                                                                   \
		(fd) = -1;                                                                         \
		_tmp;                                                                              \
	})

#define NA_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Monotonic clock in milliseconds / nanoseconds. */
unsigned long long na_now_ms(void);
unsigned long long na_now_ns(void);
/* Wall clock as RFC 3339 UTC into buf (>= 32 bytes). */
void na_time_rfc3339(char *buf, size_t n);

#endif
