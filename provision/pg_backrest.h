/* pgBackRest for the postgres role (point-in-time recovery): the preset's
 * `pitr` and `restore` sections, the files and Patroni settings they
 * render, and the facts read from a repository. provision-internal: used
 * by the postgres role's files and by backup.c.
 *
 * Repositories are host directories under one root (environment
 * NETAGENT_PGBACKREST_ROOT, default /srv/pgbackrest): a hostile `repo`
 * can name no other place of the host. Inside the member the repository
 * is bound at the same path. */
#ifndef PV_PG_BACKREST_H
#define PV_PG_BACKREST_H

#include <jansson.h>

#include "netagent/err.h"
#include "provision/spec.h"

/* pgBackRest's config inside the member: a read-only bind of the run dir's
 * "pgbr" sub-directory (pgbr_binds adds it, pgbr_write fills it). */
#define PGBR_SUB	"pgbr"
#define PGBR_DIR_IN_CT	"/run/pgbackrest"
#define PGBR_CONF_IN_CT PGBR_DIR_IN_CT "/pgbackrest.conf"

/* The root repositories must live under. */
const char *pgbr_root(void);

/* Pure: pitr {repo, retention_full?} and restore {repo, stanza,
 * target_time} of the postgres section pg; `cluster` is the new
 * cluster's name (its own stanza). 422 with field "postgres.pitr..." /
 * "postgres.restore...". */
int pgbr_validate(const json_t *pg, const char *cluster, na_err_t *err);

/* Worker (reads the repository): for restore, the stanza exists, was
 * written by this PostgreSQL major version, and has a backup that ended
 * before target_time. For pitr, the repository directory exists or can
 * be made (owned by uid:gid, 0750). 422 with the field on failure. */
int pgbr_check_fs(const json_t *pg, unsigned uid, unsigned gid, na_err_t *err);

/* Where the member's pieces are, inside the container. */
typedef struct pgbr_paths {
	const char *data_dir; /* PGDATA */
	const char *socket_dir;
	const char *scratch; /* writable dir for log, lock, spool (e.g. /tmp/pgbackrest) */
} pgbr_paths_t;

/* Pure: adds what pitr/restore need to Patroni's configuration (JSON
 * object, patroni.yml's content): archive_mode/archive_timeout in
 * bootstrap.dcs, archive_command in postgresql.parameters, and for a
 * restore the custom bootstrap method. *conf (malloc'd) is the text of
 * pgbackrest.conf, or NULL when the preset has neither section. */
int pgbr_render(const json_t *pg, const char *cluster, const pgbr_paths_t *p, json_t *patroni,
		char **conf, na_err_t *err);

/* The member's binds (validate, pure): the config dir and the
 * repositories (pitr read-write, restore read-only; same path in and
 * out), appended to spec->binds; uid/gid own the config dir. Nothing
 * when the preset has neither section. */
int pgbr_binds(const json_t *pg, pv_spec_t *spec, unsigned uid, unsigned gid, na_err_t *err);

/* Worker (the role's prepare): writes conf into <run_dir>/pgbr, 0600,
 * owned by uid:gid. conf NULL: nothing. */
int pgbr_write(const char *run_dir, const char *conf, unsigned uid, unsigned gid, na_err_t *err);

/* Fills argv (NULL-terminated, pointers into the static strings and buf)
 * for `pgbackrest <command>` with the member's config and this stanza. */
void pgbr_argv(const char *stanza, const char *command, const char *type, const char *argv[8],
	       char *buf, size_t n);

#endif
