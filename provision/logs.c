/* GET /v1/containers/{name}/logs?tail=N[&follow=true]: the last N records
 * of the monitor's log files (read on a worker), as
 *   {"lines":[{"time":…,"stream":"stdout","text":…,"partial":false}]}
 * and, with follow, as a server-sent event stream ("event: log") that
 * goes on with every new record. A follower looks for new bytes every
 * 250 ms (reading a file is cheap; the container's exit is what must be
 * known at once, and that comes from the monitor's pidfd). */
#include "netagent/log.h"
#include "netagent/nsworker.h"
#include "netagent/util.h"
#include "provision/pv_int.h"

#include <fcntl.h>
#include <sys/stat.h>

#define TAIL_DEFAULT 100
#define TAIL_MAX     10000
#define FOLLOW_MS    250

/* One CRI record: "<time> <stream> <F|P> <text>". */
static json_t *parse_record(const char *l, size_t n)
{
	const char *sp1 = memchr(l, ' ', n);
	const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - l)) : NULL;
	if (!sp2 || (size_t)(sp2 + 3 - l) > n || sp2[2] != ' ')
		return json_pack("{s:n, s:s, s:s%, s:b}", "time", "stream", "stdout", "text", l, n,
				 "partial", 0);
	const char *text = sp2 + 3;
	return json_pack("{s:s%, s:s%, s:s%, s:b}", "time", l, (size_t)(sp1 - l), "stream", sp1 + 1,
			 (size_t)(sp2 - sp1 - 1), "text", text, n - (size_t)(text - l), "partial",
			 sp2[1] == 'P');
}

/* The whole file (at most a rotation's size); *keep, when non-NULL, gets
 * the descriptor, positioned at the end, for a follower. */
static char *slurp(const char *path, size_t *len, int *keep)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	size_t cap = (size_t)st.st_size + 1, got = 0;
	char *b = malloc(cap);
	ssize_t r;
	while (b && got < cap - 1 && (r = read(fd, b + got, cap - 1 - got)) > 0)
		got += (size_t)r;
	if (keep)
		*keep = fd;
	else
		close(fd);
	if (b)
		b[got] = 0;
	*len = got;
	return b;
}

struct ljob {
	na_req_t *req;
	char dir[512];
	long tail;
	json_t *lines;
	int follow, fd; /* follow: ctr.log's descriptor after the tail */
	dev_t dev;
	ino_t ino;
};

/* Newest file first, newest line first, until tail lines are found. */
static int w_tail(void *arg, na_err_t *err)
{
	struct ljob *j = arg;
	const char *names[] = {"ctr.log", "ctr.log.1", "ctr.log.2"};
	json_t *rev = json_array();
	(void)err;
	for (size_t f = 0; f < NA_ARRAY_SIZE(names) && (long)json_array_size(rev) < j->tail; f++) {
		char path[600];
		size_t len = 0;
		snprintf(path, sizeof(path), "%s/%s", j->dir, names[f]);
		cleanup_free char *b = slurp(path, &len, f == 0 && j->follow ? &j->fd : NULL);
		if (f == 0 && j->fd >= 0) {
			struct stat st;
			if (fstat(j->fd, &st) == 0)
				j->dev = st.st_dev, j->ino = st.st_ino;
		}
		if (!b)
			continue;
		size_t end = len;
		while (end > 0 && (long)json_array_size(rev) < j->tail) {
			if (b[end - 1] == '\n')
				end--;
			size_t start = end;
			while (start > 0 && b[start - 1] != '\n')
				start--;
			if (end > start || start > 0)
				json_array_append_new(rev, parse_record(b + start, end - start));
			end = start;
		}
	}
	j->lines = json_array();
	for (size_t i = json_array_size(rev); i-- > 0;)
		json_array_append(j->lines, json_array_get(rev, i));
	json_decref(rev);
	return 0;
}

static void tail_done(void *arg, int rc, const na_err_t *err)
{
	struct ljob *j = arg;
	if (rc < 0)
		na_reply_err(j->req, err);
	else
		na_reply_json(j->req, 200, json_pack("{s:o}", "lines", j->lines));
	free(j);
}

/* ---- follow ------------------------------------------------------------------- */

typedef struct follower {
	na_req_t *req;
	char name[64], dir[512];
	int fd; /* the file being read (owned by the worker jobs) */
	dev_t dev;
	ino_t ino;
	char part[16384]; /* bytes after the last newline */
	size_t plen;
	json_t *out; /* records read by the last job */
	int busy, closed, ended;
	na_timer_t *timer;
	struct follower *next;
} follower_t;

static follower_t *followers;

static void feed(follower_t *f, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (b[i] == '\n' || f->plen == sizeof(f->part)) {
			json_array_append_new(f->out, parse_record(f->part, f->plen));
			f->plen = 0;
			if (b[i] == '\n')
				continue;
		}
		f->part[f->plen++] = b[i];
	}
}

static void drain(follower_t *f)
{
	char b[65536];
	ssize_t r;
	while (f->fd >= 0 && (r = read(f->fd, b, sizeof(b))) > 0 && json_array_size(f->out) < 5000)
		feed(f, b, (size_t)r);
}

static int w_follow(void *arg, na_err_t *err)
{
	follower_t *f = arg;
	char path[600];
	struct stat st;
	(void)err;
	snprintf(path, sizeof(path), "%s/ctr.log", f->dir);
	f->out = json_array();
	drain(f);
	/* Rotated (or created): the old file was read to its end above. */
	if (stat(path, &st) == 0 && (f->fd < 0 || st.st_ino != f->ino || st.st_dev != f->dev)) {
		if (f->fd >= 0)
			close(f->fd);
		f->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		f->dev = st.st_dev;
		f->ino = st.st_ino;
		drain(f);
	}
	return 0;
}

static void follower_free(follower_t *f)
{
	for (follower_t **p = &followers; *p; p = &(*p)->next)
		if (*p == f) {
			*p = f->next;
			break;
		}
	na_timer_free(f->timer);
	if (f->fd >= 0)
		close(f->fd);
	json_decref(f->out);
	free(f);
}

static void followed(void *arg, int rc, const na_err_t *err)
{
	follower_t *f = arg;
	(void)rc, (void)err;
	f->busy = 0;
	if (f->closed) {
		follower_free(f);
		return;
	}
	size_t i;
	json_t *l;
	json_array_foreach(f->out, i, l)
	{
		char *s = json_dumps(l, JSON_COMPACT);
		char *ev = NULL;
		if (s && asprintf(&ev, "event: log\ndata: %s\n\n", s) > 0)
			na_stream_send(f->req, ev, strlen(ev));
		free(ev);
		free(s);
	}
	json_decref(f->out);
	f->out = NULL;
	if (!f->ended)
		na_timer_start(f->timer, FOLLOW_MS, 0);
}

static void tick(void *ud)
{
	follower_t *f = ud;
	char key[80];
	if (f->busy || f->closed || f->ended)
		return;
	f->busy = 1;
	snprintf(key, sizeof(key), "ct-log/%s", f->name);
	if (na_ns_submit(key, NULL, w_follow, followed, f) < 0) {
		f->busy = 0;
		na_timer_start(f->timer, FOLLOW_MS, 0);
	}
}

static void on_close(na_req_t *req, void *ud)
{
	follower_t *f = ud;
	(void)req;
	f->closed = 1;
	if (!f->busy)
		follower_free(f);
}

/* The tail goes out first; from there on, new bytes of the files. */
static void follow_tail_done(void *arg, int rc, const na_err_t *err)
{
	struct ljob *j = arg;
	follower_t *f = rc < 0 ? NULL : calloc(1, sizeof(*f));
	if (!f) {
		if (rc < 0)
			na_reply_err(j->req, err);
		else
			na_reply_empty(j->req, 503);
		if (j->fd >= 0)
			close(j->fd);
		json_decref(j->lines);
		free(j);
		return;
	}
	f->req = j->req;
	f->fd = j->fd;
	f->dev = j->dev;
	f->ino = j->ino;
	snprintf(f->dir, sizeof(f->dir), "%s", j->dir);
	snprintf(f->name, sizeof(f->name), "%s", strrchr(j->dir, '/') + 1);
	f->timer = na_timer_new(pv.ag, tick, f);
	f->next = followers;
	followers = f;
	f->out = j->lines;
	free(j);
	na_stream_begin(f->req, on_close, f);
	f->busy = 1;
	followed(f, 0, NULL);
}

void pv_logs_get(na_req_t *req, pv_ct_t *c)
{
	na_err_t err = NA_ERR_INIT;
	char buf[32];
	int follow = 0;
	long tail = TAIL_DEFAULT;
	const char *t = na_req_query(req, "tail", buf, sizeof(buf));
	if (t) {
		char *end;
		tail = strtol(t, &end, 10);
		if (!*t || *end || tail < 1 || tail > TAIL_MAX) {
			na_err_set(&err, 422, "invalid_field", "tail",
				   "tail must be an integer in 1..%d", TAIL_MAX);
			na_reply_err(req, &err);
			return;
		}
	}
	if (na_req_query_bool(req, "follow", &follow, &err) < 0) {
		na_reply_err(req, &err);
		return;
	}
	struct ljob *j = calloc(1, sizeof(*j));
	char key[80];
	if (!j) {
		na_err_errno(&err, ENOMEM, "logs");
		na_reply_err(req, &err);
		return;
	}
	j->req = req;
	j->tail = tail;
	j->follow = follow;
	j->fd = -1;
	pv_ct_path(c, NULL, j->dir, sizeof(j->dir));
	snprintf(key, sizeof(key), "ct-log/%s", c->name);
	if (na_ns_submit(key, NULL, w_tail, follow ? follow_tail_done : tail_done, j) < 0) {
		free(j);
		na_err_set(&err, 503, "unavailable", NULL, "cannot queue the log read");
		na_reply_err(req, &err);
	}
}

void pv_logs_close_all(const char *name)
{
	/* The client ends on "end"; its leaving frees the follower. */
	for (follower_t *f = followers; f; f = f->next)
		if (!strcmp(f->name, name) && !f->closed && !f->ended) {
			f->ended = 1;
			na_timer_stop(f->timer);
			na_stream_send(f->req, "event: end\ndata: {}\n\n", 21);
		}
}
