/* netagent-monitor internals: one monitor per running container (what
 * conmon is to podman). It is runc's parent and the container init's
 * subreaper, so it alone collects the exit status; it owns the output
 * pipes and writes the size-capped, rotated log; it leaves its state in
 * the container's run dir for the agent, which may come and go. */
#ifndef PV_MON_H
#define PV_MON_H

#include <jansson.h>
#include <stddef.h>

/* ---- options and the agent's socket (start.c) ---- */
typedef struct mon_cfg {
	const char *id, *runtime, *root, *bundle, *dir, *cgroup, *tag;
	int stop_timeout, sync_fd, log_files, spare;
	long long log_max;
	unsigned restarts;
	int argc;
	char **argv;
} mon_cfg_t;
extern mon_cfg_t cfg;

/* The command line; 0 when it is complete (a spare's needs only
 * --sync-fd), -1 for the usage. */
int mon_parse(int argc, char **argv);
/* One JSON line to the agent (msg taken). */
void mon_sync_send(json_t *msg);
/* Waits for the agent's start line and takes its options: 0, or -1 when
 * nothing is to start (EOF, SIGTERM on sfd, garbage; the 10 s limit of a
 * monitor spawned for one start). */
int mon_wait_go(int sfd);
/* A spare's command line names its container: --id ID --dir DIR. */
void mon_set_cmdline(void);
unsigned long long mono_ms(void);
unsigned long long mono_us(void);

/* ---- files (files.c) ---- */
/* Writes dir/name through a temporary file and rename(2), so a reader
 * sees the old or the new content, never a torn one. Returns 0 or -errno. */
int mon_write_atomic(const char *dir, const char *name, const char *data, size_t len);
/* "2026-12-02T08:17:38.123Z" (UTC, milliseconds). buf >= 32. */
void mon_timestamp(char *buf, size_t n);
unsigned long long mon_realtime_ms(void);

/* ---- the container log (logw.c) ----
 * CRI format, one record per line: "<time> <stream> <F|P> <text>\n",
 * P when a line was cut (longer than the buffer, or unterminated at exit).
 * The current file is <dir>/ctr.log; when a record would take it over max
 * bytes it becomes ctr.log.1 (ctr.log.1 becomes .2, ...), keeping `files`
 * files in all. */
typedef struct mon_log {
	char dir[512];
	int fd;
	long long size, max;
	int files;
} mon_log_t;

typedef struct mon_stream {
	int fd; /* read end of the pipe, -1 at EOF */
	const char *name;
	char buf[16384];
	size_t len;
} mon_stream_t;

int mon_log_open(mon_log_t *l, const char *dir, long long max, int files);
/* Appends data read from s's pipe: complete lines become F records. */
void mon_stream_feed(mon_log_t *l, mon_stream_t *s, const char *data, size_t n);
/* At EOF: what is left becomes a P record. */
void mon_stream_flush(mon_log_t *l, mon_stream_t *s);

#endif
