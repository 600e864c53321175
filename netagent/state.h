/* Desired state on disk: one JSON file per object under
 * <state-dir>/<kind>/<name>.json, written atomically (temp file, fsync,
 * rename, fsync dir) so that `kill -9` at any moment loses nothing that was
 * acknowledged. A file that does not parse is moved to
 * <state-dir>/quarantine/ and reported, never silently dropped. */
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
 * "endpoints/n1"); name a valid name. */
int na_state_put(na_state_t *st, const char *kind, const char *name, json_t *obj, na_err_t *err);
/* Removing an absent object is not an error. */
int na_state_del(na_state_t *st, const char *kind, const char *name, na_err_t *err);
/* Removes every object of kind and its directory (e.g. "endpoints/n1" when
 * network n1 goes). A missing kind is not an error. */
int na_state_del_kind(na_state_t *st, const char *kind, na_err_t *err);
/* Reads one object: 0 and *out, or -1 with 404 not_found / the parse error. */
int na_state_get(na_state_t *st, const char *kind, const char *name, json_t **out, na_err_t *err);

/* Calls fn for every object of kind in name order. Corrupt files are
 * quarantined, logged and counted, and loading goes on. fn returning < 0
 * stops the load and the error is returned. A missing kind dir is empty. */
typedef int (*na_state_load_fn)(const char *name, json_t *obj, void *ud, na_err_t *err);
int na_state_load(na_state_t *st, const char *kind, na_state_load_fn fn, void *ud, na_err_t *err);
/* Lists sub-kinds (directories) under kind, e.g. the networks that have
 * endpoints under "endpoints". Calls fn(name, NULL, ud, err). */
int na_state_list_kinds(na_state_t *st, const char *kind, na_state_load_fn fn, void *ud,
			na_err_t *err);

/* Number of files quarantined since open. */
size_t na_state_quarantined(const na_state_t *st);

#endif
