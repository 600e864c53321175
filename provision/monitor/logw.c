/* The container log: CRI records into size-capped files, rotated. */
#include "provision/monitor/mon.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

static int open_current(mon_log_t *l)
{
	char p[600];
	struct stat st;
	snprintf(p, sizeof(p), "%s/ctr.log", l->dir);
	l->fd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (l->fd < 0)
		return -errno;
	l->size = fstat(l->fd, &st) == 0 ? (long long)st.st_size : 0;
	return 0;
}

int mon_log_open(mon_log_t *l, const char *dir, long long max, int files)
{
	snprintf(l->dir, sizeof(l->dir), "%s", dir);
	l->max = max > 4096 ? max : 4096;
	l->files = files > 0 ? files : 1;
	return open_current(l);
}

static void rotate(mon_log_t *l)
{
	char from[600], to[600];
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	/* The oldest goes; every other moves one up; ctr.log becomes .1. */
	snprintf(to, sizeof(to), "%s/ctr.log.%d", l->dir, l->files - 1);
	if (l->files > 1)
		unlink(to);
	for (int i = l->files - 2; i >= 1; i--) {
		snprintf(from, sizeof(from), "%s/ctr.log.%d", l->dir, i);
		snprintf(to, sizeof(to), "%s/ctr.log.%d", l->dir, i + 1);
		rename(from, to);
	}
	snprintf(from, sizeof(from), "%s/ctr.log", l->dir);
	if (l->files > 1) {
		snprintf(to, sizeof(to), "%s/ctr.log.1", l->dir);
		rename(from, to);
	} else {
		unlink(from);
	}
	open_current(l);
}

static void record(mon_log_t *l, const char *stream, const char *text, size_t n, int partial)
{
	char head[64];
	mon_timestamp(head, 32);
	size_t hl = strlen(head);
	hl +=
	    (size_t)snprintf(head + hl, sizeof(head) - hl, " %s %c ", stream, partial ? 'P' : 'F');
	long long len = (long long)(hl + n + 1);
	if (l->size > 0 && l->size + len > l->max)
		rotate(l);
	if (l->fd < 0 && open_current(l) < 0)
		return;
	struct iovec iov[3] = {{head, hl}, {(void *)text, n}, {"\n", 1}};
	ssize_t w = writev(l->fd, iov, 3);
	if (w > 0)
		l->size += w;
}

void mon_stream_feed(mon_log_t *l, mon_stream_t *s, const char *data, size_t n)
{
	while (n > 0) {
		size_t room = sizeof(s->buf) - s->len, k = n < room ? n : room;
		memcpy(s->buf + s->len, data, k);
		s->len += k;
		data += k;
		n -= k;
		size_t start = 0;
		for (size_t i = 0; i < s->len; i++)
			if (s->buf[i] == '\n') {
				record(l, s->name, s->buf + start, i - start, 0);
				start = i + 1;
			}
		if (start == 0 && s->len == sizeof(s->buf)) {
			/* A line longer than the buffer: cut, marked partial. */
			record(l, s->name, s->buf, s->len, 1);
			s->len = 0;
		} else if (start) {
			memmove(s->buf, s->buf + start, s->len - start);
			s->len -= start;
		}
	}
}

void mon_stream_flush(mon_log_t *l, mon_stream_t *s)
{
	if (s->len)
		record(l, s->name, s->buf, s->len, 1);
	s->len = 0;
}
