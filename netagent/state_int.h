/* Internals shared by the state store's two halves: state.c (open, the
 * directory walk, every write) and state_load.c (reads, scans, quarantine).
 * Core-private; the API is netagent/state.h. */
#ifndef NA_STATE_INT_H
#define NA_STATE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "netagent/state.h"

/* Temp files are ".<name>" TMP_MARK "<pid>-<token>-<random>": the leading
 * '.' can never start a valid name, so they are never mistaken for objects;
 * <pid>-<token> (own_mark) tells a crashed run's leftovers from a write in
 * flight in this process even when pids repeat (pid 1 in a container). */
#define NA_STATE_TMP_MARK   ".json.tmp-"
#define NA_STATE_QUARANTINE "quarantine"
/* A state object is at most a request body; anything far bigger was not
 * written by us and is not read into memory. */
#define NA_STATE_MAX_FILE (8u * 1024 * 1024)

struct known_dir;
#define NA_STATE_KNOWN_BUCKETS 256

struct na_state {
	char *dir;
	int rootfd;
	char own_mark[64]; /* NA_STATE_TMP_MARK "<pid>-<token>-" */
	/* Kind directories known to be durable in their parent (created by us
	 * and fsynced, or found and fsynced once): skips a parent fsync per write. */
	pthread_mutex_t mu;
	struct known_dir *known[NA_STATE_KNOWN_BUCKETS];
	atomic_size_t quarantined;
};

/* Every component of kind is a valid name; "quarantine" is reserved. */
int na_state_check_kind(const char *kind, na_err_t *err);
/* Opens <state>/<kind> as a directory, never following a symlink on the
 * way. create: missing components are made (0700), each one durable in its
 * parent before this returns. Returns the fd, -3 when absent (!create), or
 * -1 with err (500 state_corrupt when a component is not a directory). */
int na_state_open_kind(na_state_t *st, const char *kind, int create, na_err_t *err);
int na_state_fsync_dir(int fd, const char *what, na_err_t *err);

#endif
