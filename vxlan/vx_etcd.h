/* Private to the vxlan module's etcd files: claims.c (address claims),
 * publish.c (our endpoints in etcd), learn.c (everybody else's), and
 * etcd.c (their start and stop). Everything runs on the loop thread on the
 * core's shared session (ag->etcd); vx_int.h has the module's entry points. */
#ifndef VX_ETCD_INT_H
#define VX_ETCD_INT_H

#include "vxlan/erec.h"
#include "vxlan/vx_int.h"

/* etcd.c */
na_etcd_t *vx_etcd(void); /* NULL without --etcd */
const char *vx_etcd_us(void);
extern const na_etcd_opts_t vx_etcd_opts;

/* claims.c */
/* Releases our claim of ip (deletes the key only if it still holds our
 * value). done may be NULL. */
void vx_claim_release(const char *net, const char *ep, uint32_t ip,
		      void (*done)(void *ud, int rc, const na_err_t *err), void *ud);
/* Reserved addresses a claim of ours lost, held out of allocation a while. */
void vx_claims_sweep(int all);
void vx_claims_stop(void);

/* publish.c */
void vx_publish_start(void);
void vx_publish_stop(void);
/* The watch (learn.c) saw our own key change or vanish, or was reset:
 * compare with what we publish and repair. */
void vx_publish_check(const struct vx_erec *seen, int present);
void vx_publish_resync(void);

/* learn.c */
int vx_learn_start(na_err_t *err);
void vx_learn_stop(void);
/* Our own keys as the watch last saw them (for publish.c): calls fn for
 * each one. */
void vx_learn_own_foreach(void (*fn)(const struct vx_erec *r, void *ud), void *ud);
const struct vx_erec *vx_learn_own_find(const char *net, const char *ep);
int vx_learn_synced(void); /* the watch has delivered a reset */
/* Makes n's learned endpoints match the cache; all: reprograms every one. */
void vx_learn_apply(vx_net_t *n, int all);

#endif
