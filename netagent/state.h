/* Desired state on disk: one JSON file per object under
 * <state-dir>/<kind>/<name>.json, written atomically (temp file, fdatasync,
 * rename, fsync of the directory) so that `kill -9` at any moment loses
 * nothing that was acknowledged and never leaves a torn object. A single
 * write costs O(1) whatever the number of objects of its kind.
 *
 * A file that does not parse, or that is not a regular file (symlink, FIFO,
 * device, directory), is moved to <state-dir>/quarantine/ and reported,
 * never followed, opened blocking or silently dropped.
 *
 * Threads: every function may be called from several threads at once
 * (namespace workers) for different objects; two writes of one object race
 * like two renames (one of them wins, both intact). Callers serialize a
 * na_state_del_kind with the writes into that kind. No function may run on
 * the libuv loop thread once it serves requests: they fsync. */
#ifndef NA_STATE_H
#define NA_STATE_H

#include <jansson.h>
#include <stddef.h>

#include "netagent/err.h"

typedef struct na_state na_state_t;

/* Creates the directory (0700) if needed. */
int na_state_open(const char *dir, na_state_t **out, na_err_t *err);
void na_state_close(na_state_t *st);
const char *na_state_dir(const na_state_t *st);

/* kind is one or more '/'-separated valid names ("networks",
 * "endpoints/n1"); name a valid name. Durable when it returns 0. */
int na_state_put(na_state_t *st, const char *kind, const char *name, json_t *obj, na_err_t *err);
/* Removing an absent object is not an error. */
int na_state_del(na_state_t *st, const char *kind, const char *name, na_err_t *err);

/* Batches of one kind: n objects written (or removed) with one directory
 * fsync instead of n, and the data syncs of the batch grouped. Every name and
 * object is checked before anything is written: an invalid one fails the
 * call with nothing changed. When 0 is returned, every object is durable.
 * Crash semantics: a crash (or an I/O error, reported as -1) during the call
 * may leave any subset of the batch applied -- after kill -9 exactly a prefix
 * in array order -- each object either its old or its new content, whole,
 * never torn. That is acceptable for a request not yet acknowledged; the
 * caller answers only after 0. A name repeated in the batch ends with its
 * last object. */
int na_state_put_many(na_state_t *st, const char *kind, const char *const *names,
		      json_t *const *objs, size_t n, na_err_t *err);
int na_state_del_many(na_state_t *st, const char *kind, const char *const *names, size_t n,
		      na_err_t *err);

/* Removes every object of kind and its directory (e.g. "endpoints/n1" when
 * network n1 goes). A missing kind is not an error. */
int na_state_del_kind(na_state_t *st, const char *kind, na_err_t *err);
/* Reads one object: 0 and *out, or -1 with 404 not_found / 500 state_corrupt. */
int na_state_get(na_state_t *st, const char *kind, const char *name, json_t **out, na_err_t *err);

/* Calls fn for every object of kind in name order (strcmp). Corrupt and
 * non-regular files are quarantined, logged and counted, and loading goes
 * on; temp files left by a crashed run are removed. fn returning < 0 stops
 * the load and the error is returned. A missing kind dir is empty. */
typedef int (*na_state_load_fn)(const char *name, json_t *obj, void *ud, na_err_t *err);
int na_state_load(na_state_t *st, const char *kind, na_state_load_fn fn, void *ud, na_err_t *err);
/* Lists sub-kinds (real directories, never symlinks) under kind in name
 * order, e.g. the networks that have endpoints under "endpoints". Calls
 * fn(name, NULL, ud, err). */
int na_state_list_kinds(na_state_t *st, const char *kind, na_state_load_fn fn, void *ud,
			na_err_t *err);

/* Number of files quarantined since open. */
size_t na_state_quarantined(const na_state_t *st);

#endif
