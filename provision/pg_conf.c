/* The postgres role's configuration of one container, from its spec: the
 * parsed section (pg_render.c's pg_parse with the overlay subnet the loop
 * thread noted) and the files rendered from it (Patroni's, pgBackRest's).
 * Any thread: the role's prepare renders on a worker, the live update
 * takes Patroni's dynamic configuration from the same render. */
#include "netagent/util.h"
#include "provision/pg.h"
#include "provision/pg_backrest.h"

#include <pthread.h>
#include <pwd.h>

static pthread_once_t ids_once = PTHREAD_ONCE_INIT;
static unsigned pg_uid = 65534, pg_gid = 65534;

static void ids_lookup(void)
{
	/* Debian's postgresql-common makes the user; its ids differ from
	 * host to host, so they are read, not assumed. */
	struct passwd pw, *res = NULL;
	char buf[4096];
	if (getpwnam_r("postgres", &pw, buf, sizeof(buf), &res) == 0 && res) {
		pg_uid = pw.pw_uid;
		pg_gid = pw.pw_gid;
	}
}

void pg_ids(unsigned *uid, unsigned *gid)
{
	pthread_once(&ids_once, ids_lookup);
	*uid = pg_uid;
	*gid = pg_gid;
}

int pg_spec_conf(const pv_spec_t *s, pg_conf_t *c, na_err_t *err)
{
	char subnet[NA_ADDR_STRLEN] = "";
	na_addr_t a;
	if (s->nnets && pv_role_subnet(s->nets[0].network, &a))
		na_addr_fmt(&a, subnet, sizeof(subnet));
	return pg_parse(json_object_get(s->body, "postgres"), s->nnets ? s->nets[0].ip : NULL,
			subnet, c, err);
}

json_t *pg_spec_render(const pv_spec_t *s, pg_conf_t *c, char **pgbr, na_err_t *err)
{
	*pgbr = NULL;
	if (pg_spec_conf(s, c, err) < 0)
		return NULL;
	json_t *root = pg_render(c);
	if (!root)
		return na_err_errno(err, ENOMEM, "patroni.yml"), NULL;
	const pgbr_paths_t paths = {PG_DATA_DIR, PG_SOCKET_DIR, "/tmp/pgbackrest", c->ip,
				    c->cert ? PG_CONF_DIR : NULL};
	if (pgbr_render(json_object_get(s->body, "postgres"), c->cluster, &paths, root, pgbr, err) <
	    0) {
		json_decref(root);
		return NULL;
	}
	return root;
}
