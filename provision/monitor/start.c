/* The monitor's options, and its side of the agent's socket: the hello,
 * the start line (a spare learns its container from it) and the command
 * line a spare takes from its container. */
#include "netagent/log.h"
#include "provision/monitor/mon.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

mon_cfg_t cfg = {.stop_timeout = 10, .sync_fd = -1, .log_files = 3, .log_max = 1 << 20, .tag = ""};

unsigned long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000ULL + (unsigned long long)ts.tv_nsec / 1000000;
}

unsigned long long mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000;
}

/* Strings are copied: a spare rewrites its argument area later. */
int mon_parse(int argc, char **argv)
{
	static const struct option o[] = {
	    {"id", 1, 0, 'i'},		 {"runtime", 1, 0, 'r'},
	    {"root", 1, 0, 'R'},	 {"bundle", 1, 0, 'b'},
	    {"dir", 1, 0, 'd'},		 {"cgroup", 1, 0, 'c'},
	    {"stop-timeout", 1, 0, 's'}, {"restarts", 1, 0, 'n'},
	    {"tag", 1, 0, 't'},		 {"log-max", 1, 0, 'm'},
	    {"log-files", 1, 0, 'f'},	 {"sync-fd", 1, 0, 'S'},
	    {"spare", 0, 0, 'p'},	 {0, 0, 0, 0},
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "", o, NULL)) != -1) {
		switch (ch) {
		case 'i':
			cfg.id = strdup(optarg);
			break;
		case 'r':
			cfg.runtime = strdup(optarg);
			break;
		case 'R':
			cfg.root = strdup(optarg);
			break;
		case 'b':
			cfg.bundle = strdup(optarg);
			break;
		case 'd':
			cfg.dir = strdup(optarg);
			break;
		case 'c':
			cfg.cgroup = strdup(optarg);
			break;
		case 't':
			cfg.tag = strdup(optarg);
			break;
		case 's':
			cfg.stop_timeout = atoi(optarg);
			break;
		case 'n':
			cfg.restarts = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'm':
			cfg.log_max = atoll(optarg);
			break;
		case 'f':
			cfg.log_files = atoi(optarg);
			break;
		case 'S':
			cfg.sync_fd = atoi(optarg);
			break;
		case 'p':
			cfg.spare = 1;
			break;
		default:
			return -1;
		}
	}
	/* A spare learns its container from the agent (start_msg). */
	if (cfg.spare)
		return cfg.sync_fd >= 0 ? 0 : -1;
	return cfg.id && cfg.runtime && cfg.root && cfg.bundle && cfg.dir ? 0 : -1;
}

static const char *opt_str(json_t *o, const char *k, const char *dflt)
{
	const char *v = json_string_value(json_object_get(o, k));
	return v ? strdup(v) : dflt; /* kept for the process's life */
}

static long long opt_int(json_t *o, const char *k, long long dflt)
{
	json_t *v = json_object_get(o, k);
	return json_is_integer(v) ? json_integer_value(v) : dflt;
}

/* The agent's start line: the container's options. */
static int start_msg(const char *line)
{
	json_t *o = json_loads(line, 0, NULL);
	if (!json_is_object(o)) {
		json_decref(o);
		return -1;
	}
	cfg.id = opt_str(o, "id", cfg.id);
	cfg.runtime = opt_str(o, "runtime", cfg.runtime);
	cfg.root = opt_str(o, "root", cfg.root);
	cfg.bundle = opt_str(o, "bundle", cfg.bundle);
	cfg.dir = opt_str(o, "dir", cfg.dir);
	cfg.cgroup = opt_str(o, "cgroup", cfg.cgroup);
	cfg.tag = opt_str(o, "tag", cfg.tag);
	cfg.stop_timeout = (int)opt_int(o, "stop_timeout", cfg.stop_timeout);
	cfg.restarts = (unsigned)opt_int(o, "restarts", cfg.restarts);
	cfg.log_max = opt_int(o, "log_max", cfg.log_max);
	cfg.log_files = (int)opt_int(o, "log_files", cfg.log_files);
	json_decref(o);
	return cfg.id && cfg.runtime && cfg.root && cfg.bundle && cfg.dir ? 0 : -1;
}

void mon_sync_send(json_t *msg)
{
	char *s = json_dumps(msg, JSON_COMPACT);
	json_decref(msg);
	if (s && cfg.sync_fd >= 0) {
		size_t n = strlen(s);
		s[n] = '\n'; /* the NUL becomes the line end */
		if (write(cfg.sync_fd, s, n + 1) < 0)
			na_warn("sync write failed", "error=\"%s\"", strerror(errno));
	}
	free(s);
}

/* Waits for the agent's start line: it holds a pidfd of us now, so it will
 * see our exit whatever happens next. EOF, SIGTERM or (for a monitor
 * spawned for one start) silence means the agent is gone or changed its
 * mind: start nothing (its reconcile would find an unknown container). */
int mon_wait_go(int sfd)
{
	static char buf[8192];
	size_t got = 0;
	unsigned long long end = mono_ms() + 10000;
	for (;;) {
		struct pollfd p[2] = {{cfg.sync_fd, POLLIN, 0}, {sfd, POLLIN, 0}};
		long long left = cfg.spare ? -1 : (long long)(end - mono_ms());
		if (!cfg.spare && left <= 0)
			return -1;
		int n = poll(p, 2, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		if (p[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) == sizeof(si) && si.ssi_signo == SIGTERM)
				return -1;
		}
		if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		ssize_t r = read(cfg.sync_fd, buf + got, sizeof(buf) - 1 - got);
		if (r <= 0)
			return -1;
		got += (size_t)r;
		buf[got] = 0;
		char *nl = strchr(buf, '\n');
		if (nl) {
			*nl = 0;
			return start_msg(buf);
		}
		if (got >= sizeof(buf) - 1)
			return -1;
	}
}

/* A spare's command line names its container now, as a monitor spawned
 * for it would: "--id ID --dir DIR" written over the argument area (the
 * kernel shows /proc/PID/cmdline from the process's own memory; no
 * privilege needed, unlike PR_SET_MM), the rest zeroed. */
void mon_set_cmdline(void)
{
	if (cfg.argc < 2)
		return;
	char *start = cfg.argv[1], *last = cfg.argv[cfg.argc - 1];
	char *end = last + strlen(last); /* the area's final NUL */
	const char *parts[] = {"--id", cfg.id, "--dir", cfg.dir};
	size_t need = 0;
	for (size_t i = 0; i < 4; i++)
		need += strlen(parts[i]) + 1;
	if (need > (size_t)(end + 1 - start)) {
		na_warn("command line too short to name the container", "id=%s", cfg.id);
		return;
	}
	memset(start, 0, (size_t)(end + 1 - start));
	for (size_t i = 0; i < 4; i++) {
		size_t l = strlen(parts[i]);
		memcpy(start, parts[i], l);
		start += l + 1;
	}
}
