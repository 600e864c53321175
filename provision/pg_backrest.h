/* pgBackRest for the postgres role (point-in-time recovery): the preset's
 * `pitr` and `restore` sections, the files and Patroni settings they
 * render, and the facts read from a repository. provision-internal: used
 * by the postgres role's files and by the backup jobs (backup.h).
 *
 * Repositories are host directories under one root (environment
 * NETAGENT_PGBACKREST_ROOT, default /srv/pgbackrest): a hostile `repo`
 * can name no other place of the host. Inside the member the repository
 * is bound at the same path. */
#ifndef PV_PG_BACKREST_H
#define PV_PG_BACKREST_H

#include <jansson.h>
#include <time.h>

#include "netagent/err.h"
#include "provision/spec.h"

/* pgBackRest's config inside the member: a read-only bind of the run dir's
 * "pgbr" sub-directory (pgbr_binds adds it, pgbr_write fills it). */
#define PGBR_SUB	"pgbr"
#define PGBR_DIR_IN_CT	"/run/pgbackrest"
#define PGBR_CONF_IN_CT PGBR_DIR_IN_CT "/pgbackrest.conf"

/* The root repositories must live under. */
const char *pgbr_root(void);
/* RFC 3339 in UTC ("Z") or with an offset: seconds since the epoch in
 * *out, or -1. */
int pgbr_parse_time(const char *s, time_t *out);

/* Pure: pitr {repo, retention_full?} and restore {repo, stanza,
 * target_time} of the postgres section pg; `cluster` is the new
 * cluster's name (its own stanza). 422 with field "postgres.pitr..." /
 * "postgres.restore...". */
int pgbr_validate(const json_t *pg, const char *cluster, na_err_t *err);

/* The PostgreSQL major version of this host's members. */
#define PGBR_PG_MAJOR "15"
/* pgBackRest's TLS server port (its default). */
#define PGBR_TLS_PORT 8432

/* Worker (reads the repository): for restore, the stanza exists, and the
 * newest backup that ended before target_time exists and was taken by
 * this PostgreSQL major version (a backup taken before a major upgrade
 * cannot restore after it). For pitr, the repository directory exists or
 * can be made (owned by uid:gid, 0750). Every path is walked from the
 * root without following a link: a repository that is a symlink, a FIFO
 * or a file is refused. 422 with the field on failure. */
int pgbr_check_fs(const json_t *pg, unsigned uid, unsigned gid, na_err_t *err);

/* Where the member's pieces are, inside the container. */
typedef struct pgbr_paths {
	const char *data_dir; /* PGDATA */
	const char *socket_dir;
	const char *scratch; /* writable dir for log, lock, spool (e.g. /tmp/pgbackrest) */
	/* The member's overlay address and the directory of its TLS files
	 * (server.crt, server.key, ca.crt); both given with tls: the TLS
	 * server and the other members as pgN hosts (backup from a
	 * follower). NULL: neither. */
	const char *ip;
	const char *tls_dir;
} pgbr_paths_t;

/* Pure: whether the preset pg runs pgBackRest's TLS server (pitr, tls and
 * more than one member): a backup can then run on any member. */
int pgbr_tls_server(const json_t *pg);

/* Pure: whether a pgBackRest backup can run on member `name` whose Patroni
 * role is `role` ("leader", "replica", "sync_standby"; "" or NULL when
 * unknown: let pgBackRest say). pgBackRest needs the primary: a follower
 * reaches it only through the TLS server. 0, or 409 not_leader. */
int pgbr_can_backup(const json_t *pg, const char *name, const char *role, na_err_t *err);

/* Pure: adds what pitr/restore need to Patroni's configuration (JSON
 * object, patroni.yml's content): archive_mode/archive_timeout in
 * bootstrap.dcs, archive_command in postgresql.parameters, and for a
 * restore the custom bootstrap method. *conf (malloc'd) is the text of
 * pgbackrest.conf, or NULL when the preset has neither section. With
 * pgbr_tls_server(pg) and p->ip, p->tls_dir: the [global] tls-server-*
 * keys (clients: the certificates' CNs, i.e. each member's address and
 * this member's own CN) and every other member as pg2..pgN over TLS. */
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

/* Pure: the options that leave out of a command line the peers of pg (its
 * members but self_ip, numbered pg2.. as pgbr_render does) that are not
 * in up: pgBackRest's --reset-pgN-<option> for each of the
 * PGBR_PEER_OPTS options a peer has. At most max into out; returns how
 * many. */
#define PGBR_PEER_OPTS 9
#define PGBR_OPT_LEN   40
size_t pgbr_skip_peers(const json_t *pg, const char *self_ip, const char *const *up, size_t nup,
		       char (*out)[PGBR_OPT_LEN], size_t max);

/* Fills argv (NULL-terminated, pointers into buf, opts and the static
 * strings) for `pgbackrest --config=<the member's> --stanza=S [opts...]
 * command`; max counts argv's slots. Returns the number of arguments, or
 * -1 when they do not fit. */
int pgbr_argv(const char *stanza, const char *command, const char *const *opts, const char **argv,
	      size_t max, char *buf, size_t n);

#endif
