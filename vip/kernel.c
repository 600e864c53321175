/* The kernel side of a VIP, on the namespace workers (keyed by VIP, so its
 * jobs run in order): arm the nftables fence (fence.c), add / renew the
 * address with a finite lifetime, remove it, announce it. Both are fences
 * that still work when the agent is dead: the set element's millisecond
 * timeout stops the host answering for the VIP, the whole-second lifetime
 * removes the address later. */
#include "netagent/log.h"
#include "netagent/nl.h"
#include "netagent/nsworker.h"
#include "netagent/util.h"
#include "vip/vip_int.h"

#include <errno.h>
#include <linux/if_addr.h>
#include <stdio.h>
#include <string.h>

enum kop { K_ENSURE, K_REMOVE, K_ANNOUNCE, K_PROBE, K_FENCE, K_FENCE_DEL };

struct kjob {
	vip_t *v;
	enum kop op;
	char name[64], netns[VIP_PATH_MAX], ifname[16];
	na_addr_t addr;
	int lft_s, slack_ms, announce;
	unsigned long long until_ms;
	/* fence: VIP_FENCE_* ; fence_until: the liveness proof (monotonic ms) */
	int fence;
	unsigned long long fence_until;
	char agent[64];
	/* results */
	int added, stale, rebuilt, late;
	char warn[256];
	vip_kdone_fn done;
	void *ud;
};

/* The renewal may only happen while the proof covers the whole lifetime it
 * gives the address, including the kernel's lateness in removing it. */
static int fresh(const struct kjob *j)
{
	return !j->until_ms ||
	       na_now_ms() + (unsigned long long)j->lft_s * 1000 + (unsigned)j->slack_ms <=
		   j->until_ms;
}

static int probe(na_nl_t *nl, int ifindex, struct kjob *j, na_err_t *err)
{
	na_nl_addr_info_t a[64];
	size_t n = 0;
	if (na_nl_addr_list(nl, ifindex, j->addr.family, a, NA_ARRAY_SIZE(a), &n, err) < 0)
		return -1;
	for (size_t i = 0; i < n && i < NA_ARRAY_SIZE(a); i++)
		if (na_addr_eq(&a[i].addr, &j->addr))
			j->added = 1;
	return 0;
}

/* 1 when the address is there with an infinite lifetime, else 0. */
static int permanent(na_nl_t *nl, int ifindex, const struct kjob *j, na_err_t *err)
{
	na_nl_addr_info_t a[64];
	size_t n = 0;
	if (na_nl_addr_list(nl, ifindex, j->addr.family, a, NA_ARRAY_SIZE(a), &n, err) < 0) {
		na_err_clear(err);
		return 0;
	}
	for (size_t i = 0; i < n && i < NA_ARRAY_SIZE(a); i++)
		if (na_addr_eq(&a[i].addr, &j->addr) && a[i].addr.plen == j->addr.plen)
			return a[i].valid_lft == 0xffffffffu;
	return 0;
}

/* Arms the fence element until j->fence_until: the timeout is computed
 * right before the batch and the kernel counts it from the batch, so a
 * stall between the two would push the expiry past the proof: past
 * VIP_FENCE_GUARD_MS the element is taken out again (the next renewal arms
 * it). 1: missing table (create = 0 only), 0 done, j->stale if not armed. */
static int arm_once(struct kjob *j, int create, na_err_t *err)
{
	unsigned long long t0 = na_now_ms();
	int rc;
	if (j->fence_until < t0 + VIP_FENCE_MIN_MS) {
		j->stale = 1;
		return vip_fence_disarm(j->agent, j->name, &j->addr, err);
	}
	unsigned ms = (unsigned)(j->fence_until - t0);
	rc = create ? vip_fence_create(j->agent, j->name, &j->addr, ms, err)
		    : vip_fence_renew(j->agent, j->name, &j->addr, ms, err);
	if (rc != 0)
		return rc;
	if (na_now_ms() - t0 > VIP_FENCE_GUARD_MS) {
		j->stale = 1;
		return vip_fence_disarm(j->agent, j->name, &j->addr, err);
	}
	return 0;
}

static int fence_arm(struct kjob *j, na_err_t *err)
{
	int rc = arm_once(j, 0, err);
	if (rc == 1) {
		j->rebuilt = 1;
		rc = arm_once(j, 1, err);
	}
	if (rc == 0 && j->stale && j->fence_until >= na_now_ms() + VIP_FENCE_MIN_MS) {
		/* A stall (a loaded machine preempts workers for tens of ms):
		 * one more try with the timeout computed anew, rather than a
		 * host that stops answering until the next renewal. */
		j->stale = 0;
		j->late = 1;
		rc = arm_once(j, 0, err);
	}
	return rc < 0 ? -1 : 0;
}

static int k_run(void *arg, na_err_t *err)
{
	struct kjob *j = arg;
	cleanup_nl na_nl_t *nl = NULL;
	na_nl_addr_opts_t o = {0};
	int ifindex, rc;

	if (j->op == K_FENCE_DEL)
		return vip_fence_delete(j->agent, j->name, &j->addr, err);
	if (j->op == K_FENCE)
		return fence_arm(j, err);
	if (na_nl_open(&nl, err) < 0)
		return -1;
	ifindex = na_nl_ifindex(nl, j->ifname, err);
	if (ifindex < 0)
		return -1;
	if (ifindex == 0) {
		na_err_set(err, 404, "target_missing", NULL, "interface %s does not exist%s%s",
			   j->ifname, j->netns[0] ? " in " : "", j->netns);
		if (j->op != K_REMOVE)
			return -1;
		na_err_clear(err); /* no address to remove; the element still goes */
		return j->fence == VIP_FENCE_ARM
			   ? vip_fence_disarm(j->agent, j->name, &j->addr, err)
			   : 0;
	}
	if (j->op == K_REMOVE) {
		if (na_nl_addr_del(nl, ifindex, &j->addr, NULL, err) < 0)
			return -1;
		/* belt and braces: the address is gone, the element too */
		return j->fence == VIP_FENCE_ARM
			   ? vip_fence_disarm(j->agent, j->name, &j->addr, err)
			   : 0;
	}
	if (j->op == K_ANNOUNCE)
		return vip_announce_send(ifindex, j->ifname, &j->addr, err);
	if (j->op == K_PROBE)
		return probe(nl, ifindex, j, err);

	if (j->fence == VIP_FENCE_OFF) {
		/* local mode: a fence left by an earlier etcd-mode run would
		 * keep the host from answering */
		na_err_t e = NA_ERR_INIT;
		vip_fence_delete(j->agent, j->name, &j->addr, &e);
	} else if (j->fence == VIP_FENCE_ARM && (fence_arm(j, err) < 0 || j->stale)) {
		/* never an address without a live fence in etcd mode */
		j->stale = 1;
		na_err_t e = NA_ERR_INIT;
		na_nl_addr_del(nl, ifindex, &j->addr, NULL, &e);
		return err->status ? -1 : 0;
	}
	if (!fresh(j)) {
		j->stale = 1;
		return na_nl_addr_del(nl, ifindex, &j->addr, NULL, err) < 0 ? -1 : 0;
	}
	o.valid_lft = o.preferred_lft = (uint32_t)j->lft_s;
	/* DAD would keep the VIP tentative (unusable) for ~1.5 s, and it only
	 * catches a second holder on the same link, which the election
	 * already excludes. */
	o.flags = j->addr.family == AF_INET6 ? IFA_F_NODAD : 0;
	rc = na_nl_addr_add(nl, ifindex, &j->addr, &o, err);
	if (rc == -EEXIST) {
		na_err_clear(err);
		/* A permanent address already permanent is left alone: a
		 * reconcile round must not touch the kernel (nor restart the
		 * netns's lifetime checks). */
		if (j->lft_s == 0 && permanent(nl, ifindex, j, err) == 1)
			return 0;
		o.replace = 1;
		rc = na_nl_addr_add(nl, ifindex, &j->addr, &o, err);
	} else if (rc == 0) {
		j->added = 1;
	}
	if (rc < 0)
		return -1;
	/* A stall between the check and the call (the renewal would then have
	 * resurrected the address past the proof): look again, remove. */
	if (!fresh(j)) {
		j->stale = 1;
		j->added = 0;
		return na_nl_addr_del(nl, ifindex, &j->addr, NULL, err) < 0 ? -1 : 0;
	}
	if (j->added && j->announce) {
		na_err_t e = NA_ERR_INIT;
		if (vip_announce_send(ifindex, j->ifname, &j->addr, &e) < 0)
			snprintf(j->warn, sizeof(j->warn), "%.200s", e.msg);
	}
	return 0;
}

static void k_done(void *arg, int rc, const na_err_t *err)
{
	struct kjob *j = arg;
	vip_t *v = j->v;

	v->kjobs--;
	if (j->warn[0])
		na_warn("vip announce failed", "vip=%s error=\"%s\"", j->name, j->warn);
	if (j->rebuilt)
		na_info("vip fence built", "vip=%s", j->name);
	if (j->late || (j->op == K_FENCE && j->stale)) {
		vm.fence_late++;
		na_info("vip fence renewal stalled", "vip=%s disarmed=%s", j->name,
			j->stale ? "yes" : "no");
	}
	if (rc == 0 && (j->op == K_FENCE || j->op == K_FENCE_DEL)) {
		/* the address is not these jobs' business */
	} else if (rc == 0) {
		if (j->op == K_REMOVE || j->stale)
			v->addr_present = 0;
		else if (j->op == K_ENSURE)
			v->addr_present = 1;
		else if (j->op == K_PROBE)
			v->addr_present = j->added;
	}
	if (j->done)
		j->done(v, rc < 0 ? rc : j->stale, j->added, err, j->ud);
	free(j);
	if (v->deleting == 2 && v->kjobs == 0)
		vip_unlink_free(v);
}

static int submit(vip_t *v, enum kop op, int lft_s, unsigned long long until_ms, int announce,
		  int fence, unsigned long long fence_until, vip_kdone_fn done, void *ud)
{
	struct kjob *j = calloc(1, sizeof(*j));
	char key[80];

	if (!j)
		return -1;
	if (!v->resolved) {
		free(j);
		errno = ENODEV;
		return -1;
	}
	j->v = v;
	j->op = op;
	snprintf(j->name, sizeof(j->name), "%s", v->name);
	snprintf(j->netns, sizeof(j->netns), "%s", v->netns);
	snprintf(j->ifname, sizeof(j->ifname), "%s", v->ifname);
	j->addr = v->spec.addr;
	j->lft_s = lft_s;
	j->slack_ms = vm.lft_slack_ms;
	j->until_ms = until_ms;
	j->announce = announce;
	j->fence = fence;
	j->fence_until = fence_until;
	snprintf(j->agent, sizeof(j->agent), "%s", vm.ag->cfg.name);
	j->done = done;
	j->ud = ud;
	snprintf(key, sizeof(key), "vip:%s", v->name);
	if (na_ns_submit(key, v->netns[0] ? v->netns : NULL, k_run, k_done, j) < 0) {
		free(j);
		return -1;
	}
	v->kjobs++;
	return 0;
}

int vip_k_ensure(vip_t *v, int lft_s, unsigned long long until_ms, int announce, int fence,
		 unsigned long long fence_until, vip_kdone_fn done, void *ud)
{
	return submit(v, K_ENSURE, lft_s, until_ms, announce, fence, fence_until, done, ud);
}

int vip_k_remove(vip_t *v, vip_kdone_fn done, void *ud)
{
	return submit(v, K_REMOVE, 0, 0, 0, vip_etcd_mode() ? VIP_FENCE_ARM : VIP_FENCE_KEEP, 0,
		      done, ud);
}

int vip_k_probe(vip_t *v, vip_kdone_fn done, void *ud)
{
	return submit(v, K_PROBE, 0, 0, 0, VIP_FENCE_KEEP, 0, done, ud);
}

int vip_k_announce(vip_t *v)
{
	return submit(v, K_ANNOUNCE, 0, 0, 0, VIP_FENCE_KEEP, 0, NULL, NULL);
}

int vip_k_fence(vip_t *v, unsigned long long fence_until, vip_kdone_fn done, void *ud)
{
	return submit(v, K_FENCE, 0, 0, 0, VIP_FENCE_ARM, fence_until, done, ud);
}

int vip_k_fence_delete(vip_t *v, vip_kdone_fn done, void *ud)
{
	return submit(v, K_FENCE_DEL, 0, 0, 0, VIP_FENCE_KEEP, 0, done, ud);
}

static void on_garp(void *ud)
{
	vip_t *v = ud;
	if (v->state != VIP_MASTER || !v->addr_present || v->garp_left <= 0) {
		na_timer_stop(v->garp_timer);
		return;
	}
	v->garp_left--;
	if (vip_k_announce(v) < 0)
		na_warn("vip announce not queued", "vip=%s", v->name);
	if (v->garp_left <= 0)
		na_timer_stop(v->garp_timer);
}

void vip_garp_schedule(vip_t *v)
{
	if (v->spec.garp_count <= 1)
		return;
	if (!v->garp_timer && !(v->garp_timer = na_timer_new(vm.ag, on_garp, v)))
		return;
	v->garp_left = v->spec.garp_count - 1;
	na_timer_start(v->garp_timer, (unsigned long long)v->spec.garp_interval_ms,
		       (unsigned long long)v->spec.garp_interval_ms);
}
