/* Files the agent renders for others (configuration, keys, state handed
 * to a container): written whole or not at all. */
#ifndef NA_FILE_H
#define NA_FILE_H

#include <stddef.h>
#include <sys/types.h>

#include "netagent/err.h"

/* Writes len bytes of data to path through a temporary file beside it,
 * then renames it over path: a reader sees the old file or the new one.
 * The owner (uid/gid, (uid_t)-1 to keep ours) and the mode are set on
 * the descriptor before the rename, so the file never exists under path
 * with another owner or mode (PostgreSQL refuses a key that is not its
 * own and 0600). No link is followed. No fsync: what calls this
 * re-renders from the durable state on every start. Worker threads. */
int na_file_put(const char *path, const void *data, size_t len, mode_t mode, uid_t uid, gid_t gid,
		na_err_t *err);

#endif
