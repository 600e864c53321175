/* The vxlan module's use of the core's etcd session: start and stop of its
 * three parts, claims.c, publish.c and learn.c (vx_etcd.h). Without --etcd
 * every hook is a no-op and claims succeed at once. */
#include "netagent/log.h"
#include "vxlan/vx_etcd.h"

/* Claims and publishing answer to the controller: 5 s, across members. */
const na_etcd_opts_t vx_etcd_opts = {.user = VX_ETCD_USER, .deadline_ms = 5000};

static struct {
	na_etcd_t *e;
	char us[64];
} E;

na_etcd_t *vx_etcd(void)
{
	return E.e;
}

const char *vx_etcd_us(void)
{
	return E.us;
}

int vx_etcd_enabled(void)
{
	return E.e != NULL;
}

/* Nothing here waits for etcd: the watch's first reset arrives whenever it
 * does, and until then reconcile keeps remote entries it does not know. */
int vx_etcd_start(na_agent_t *ag, na_err_t *err)
{
	if (!ag->etcd)
		return 0;
	E.e = ag->etcd;
	snprintf(E.us, sizeof(E.us), "%s", ag->cfg.name);
	vx_publish_start();
	if (vx_learn_start(err) < 0) {
		vx_publish_stop();
		E.e = NULL;
		return -1;
	}
	na_info("etcd sync started", "endpoints=%s", ag->cfg.etcd);
	return 0;
}

void vx_etcd_tick(void)
{
	if (E.e)
		vx_claims_sweep(0);
}

void vx_etcd_stop(void)
{
	if (!E.e)
		return;
	vx_learn_stop();
	vx_publish_stop();
	vx_claims_stop();
	E.e = NULL;
}
