/* Backups of postgres containers (SPEC §4 backups, docs/backups.md),
 * provision-internal. Three layers, each calling only the ones below it
 * (completions travel back as callbacks):
 *
 *   backup_routes.c                 the API: POST/GET/DELETE, the file
 *   backup_dump.c backup_pgbr.c     the jobs: pg_dumpall, pgbackrest
 *   backup_server.c                 pgBackRest's TLS server beside Patroni
 *   backup_store.c                  records, quota, rotation, load, metrics
 *
 * Loop thread unless a function says "worker". */
#ifndef PV_BACKUP_H
#define PV_BACKUP_H

#include <jansson.h>

#include "netagent/agent.h"
#include "netagent/api.h"
#include "provision/pv_int.h"

/* One backup. A dump has a file <state>/dumps/<ct>/<id>.sql; a pgBackRest
 * backup lives in the repository and has its label and WAL range. */
typedef struct bk {
	char ct[64], id[64], type[8], state[8];
	char started[32], finished[32], error[256];
	char day[11]; /* UTC date the backup was requested: per_day counts these */
	char label[64], wal_start[32], wal_stop[32]; /* pgBackRest's */
	char from[16];				     /* pgBackRest: "leader", "replica" */
	unsigned long long size;
	unsigned long long t0_ms;
	struct bk *next;
} bk_t;

/* ---- backup_store.c ------------------------------------------------------ */

/* Records, newest first. */
bk_t *bk_first(void);
bk_t *bk_find(const char *ct, const char *id);
/* A new running record of ct, linked first; NULL when out of memory. */
bk_t *bk_new(const char *ct, const char *type, const char *day);
/* Unlinks and frees b (memory only: the record on disk is the caller's). */
void bk_forget(bk_t *b);
json_t *bk_json(const bk_t *b);
void bk_publish(const bk_t *b, const char *action);
void bk_file(const char *ct, const char *id, char *buf, size_t n);
void bk_today(char out[11]);

/* The preset's limits ("backups": keep, per_day) of a container. */
void bk_limits(const pv_ct_t *c, long long *keep, long long *per_day);
/* Dumps requested by ct on day (UTC). */
unsigned bk_quota_used(const char *ct, const char *day);

/* A change on disk, run on a worker keyed by the container (so that the
 * changes of one container stay in order); done on the loop thread. */
typedef struct bk_wjob bk_wjob_t;
typedef void (*bk_wjob_done)(bk_wjob_t *j, int rc, const na_err_t *err);
struct bk_wjob {
	char ct[64], id[64], path[600];
	json_t *obj;	/* record to write, or NULL */
	json_t *quota;	/* the container's day count to write, or NULL */
	int del_record; /* remove the record */
	int del_file;	/* remove the dump file */
	int mkdirs;	/* make <state>/dumps/<ct> */
	int stat_file;	/* read the file's size into size */
	unsigned long long size;
	bk_wjob_done done;
	na_req_t *req;
};
/* A job for b (ct, id and the dump's path filled in), or NULL. */
bk_wjob_t *bk_wjob_new(const bk_t *b);
/* The record of b as the job's obj (what bk_save writes). */
void bk_wjob_record(bk_wjob_t *j, const bk_t *b);
/* Counts one more dump of ct today (memory now, disk with j). */
void bk_wjob_quota(bk_wjob_t *j, const char *ct, const char *day);
/* Submits j (freed after its done); < 0: j is freed, nothing ran. */
int bk_wjob_submit(bk_wjob_t *j);
/* Writes b's record, fire and forget (a failure is logged). */
void bk_save(const bk_t *b);

/* A job ended: state done/failed, finished, counters, log line, record
 * saved and event published. error NULL: done. */
void bk_finish(bk_t *b, const char *error);
/* The preset's `keep`: the oldest finished dumps of ct beyond it go
 * (record and file, event "rotated"). */
void bk_rotate(const char *ct, long long keep);
/* One more request refused by the quota (metrics). */
void bk_count_refused(void);

int bk_store_init(na_agent_t *ag, na_err_t *err);
void bk_store_fini(void);

/* ---- jobs ------------------------------------------------------------------ */

/* backup_dump.c: b's record is on disk; runs pg_dumpall in the member and
 * answers req (202 with the record, or the error: the record is then
 * gone). */
void bk_dump_run(bk_t *b, na_req_t *req);

/* backup_pgbr.c: the same for a pgBackRest backup (stanza-create, backup,
 * info). */
void bk_pgbr_run(bk_t *b, na_req_t *req);
/* Where a pgBackRest backup of c can run: 0, or 409 when c is a follower
 * of a cluster without the TLS server (pgBackRest needs the primary). */
int bk_pgbr_check(const pv_ct_t *c, na_err_t *err);

/* backup_server.c: `pgbackrest server` in every running member of a
 * cluster with pitr and tls, restarted when it exits (role_postgres.c's
 * state hook calls this). */
void bk_server_state(const char *name, const pv_spec_t *spec, const char *state);
void bk_server_fini(void);

#endif
