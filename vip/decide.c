/* What a VIP should be, given its health and (with etcd) its ownership:
 * taking it (address, then the first announcement in the same job, then
 * the repeats) and dropping it (address first, then anything else). Local
 * mode decides here; etcd mode decides in elect.c and calls take/drop. */
#include "netagent/log.h"
#include "netagent/util.h"
#include "vip/vip_int.h"

#include <stdio.h>
#include <string.h>

int vip_etcd_mode(void)
{
	return vm.ag->etcd != NULL;
}

struct take {
	char reason[128];
};

#define RETRY_MIN_MS 500
#define RETRY_MAX_MS 8000

static void on_retry(void *ud)
{
	vip_evaluate(ud);
}

/* Doubles the wait before the next take (a missing interface, a refused
 * address): the loop would spin on it otherwise. */
static unsigned next_retry(vip_t *v)
{
	v->retry_ms = v->retry_ms ? v->retry_ms * 2 : RETRY_MIN_MS;
	if (v->retry_ms > RETRY_MAX_MS)
		v->retry_ms = RETRY_MAX_MS;
	v->retry_at_ms = na_now_ms() + v->retry_ms;
	return v->retry_ms;
}

/* 1 while a failed take waits for its retry (armed to evaluate again). */
static int backing_off(vip_t *v)
{
	unsigned long long now = na_now_ms();
	if (!v->retry_at_ms || now >= v->retry_at_ms)
		return 0;
	if (!v->retry_timer && !(v->retry_timer = na_timer_new(vm.ag, on_retry, v)))
		return 1;
	if (!na_timer_active(v->retry_timer))
		na_timer_start(v->retry_timer, v->retry_at_ms - now, 0);
	return 1;
}

static void took(vip_t *v, int rc, int added, const na_err_t *err, void *ud)
{
	struct take *t = ud;
	(void)added;
	v->taking = 0;
	if (rc < 0) {
		na_warn("vip take failed", "vip=%s error=\"%s\" retry_ms=%u", v->name, err->msg,
			next_retry(v));
		snprintf(v->last_error, sizeof(v->last_error), "%.150s", err->msg);
		vip_set_state(v, VIP_FAULT, "", err->msg);
		if (vip_etcd_mode())
			vip_elect_release(v);
	} else if (rc == 1) {
		/* The lease proof went stale before the address could be added:
		 * the next renewal takes it if we still own the key. */
		vip_set_state(v, VIP_FAULT, "",
			      "fenced: lease or liveness proof too old to add the address");
	} else if (!v->deleting && !vm.stopping) {
		v->retry_ms = 0;
		v->retry_at_ms = 0;
		v->last_error[0] = 0;
		v->last_failover_s = (double)(na_now_ms() - v->take_t0_ms) / 1000.0;
		v->has_failover = 1;
		vip_set_state(v, VIP_MASTER, vm.ag->cfg.name, t->reason);
		vip_garp_schedule(v);
	}
	free(t);
	vip_evaluate(v);
}

void vip_take(vip_t *v, const char *reason)
{
	struct take *t;
	unsigned long long until = 0;
	int lft = 0, fence;

	if (v->taking || v->dropping || v->deleting || vm.stopping || backing_off(v))
		return;
	if (vip_etcd_mode()) {
		until = vip_elect_until();
		lft = vm.addr_lft_s;
		if (!until)
			return;
		/* The fence must be provable for a while yet: else a renewal
		 * first (its success kicks the election again). */
		if (v->live_until < na_now_ms() + VIP_FENCE_MIN_MS + VIP_FENCE_GUARD_MS) {
			vip_live_kick();
			return;
		}
		fence = VIP_FENCE_ARM;
	} else {
		fence = VIP_FENCE_OFF;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return;
	snprintf(t->reason, sizeof(t->reason), "%s", reason);
	v->take_t0_ms = v->take_t0_ms ? v->take_t0_ms : na_now_ms();
	v->taking = 1;
	if (vip_k_ensure(v, lft, until, 1, fence, v->live_until, took, t) < 0) {
		v->taking = 0;
		free(t);
		na_warn("vip take not queued", "vip=%s", v->name);
	}
}

struct drop {
	enum vip_state to;
	char reason[128];
	void (*done)(vip_t *v, void *ud);
	void *ud;
};

static void dropped(vip_t *v, int rc, int added, const na_err_t *err, void *ud)
{
	struct drop *d = ud;
	(void)added;
	v->dropping = 0;
	if (rc < 0)
		na_warn("vip drop failed", "vip=%s error=\"%s\"", v->name, err->msg);
	vip_set_state(v, d->to, v->state == VIP_MASTER ? "" : v->holder, d->reason);
	if (d->done)
		d->done(v, d->ud);
	free(d);
}

void vip_drop(vip_t *v, enum vip_state to, const char *reason, void (*done)(vip_t *v, void *ud),
	      void *ud)
{
	struct drop *d = calloc(1, sizeof(*d));
	if (v->garp_timer)
		na_timer_stop(v->garp_timer);
	if (!d)
		return;
	d->to = to;
	snprintf(d->reason, sizeof(d->reason), "%s", reason);
	d->done = done;
	d->ud = ud;
	v->dropping = 1;
	v->take_t0_ms = 0;
	if (!v->resolved || vip_k_remove(v, dropped, d) < 0) {
		/* Nothing we can reach to remove (target gone): the state
		 * still changes, and reconcile retries the removal. */
		dropped(v, 0, 0, NULL, d);
	}
}

static void local_evaluate(vip_t *v)
{
	int want = v->resolved && v->health == VIP_H_UP;
	/* Adopted at start (address already there) and checks still
	 * pending: keep it rather than flap it. */
	if (v->state == VIP_MASTER && v->health == VIP_H_UNKNOWN)
		want = v->resolved;
	if (want && v->state != VIP_MASTER) {
		vip_take(v, v->spec.nchecks ? "checks pass" : "no checks");
	} else if (!want && v->state == VIP_MASTER) {
		vip_drop(v, VIP_FAULT, !v->resolved ? v->target_err : v->health_reason, NULL, NULL);
	} else if (!want && v->state != VIP_FAULT && (!v->resolved || v->health == VIP_H_DOWN)) {
		vip_set_state(v, VIP_FAULT, "", !v->resolved ? v->target_err : v->health_reason);
	}
}

void vip_evaluate(vip_t *v)
{
	if (v->deleting || vm.stopping || v->taking || v->dropping)
		return;
	if (vip_etcd_mode())
		vip_elect_kick(v);
	else
		local_evaluate(v);
}

void vip_health_changed(vip_t *v)
{
	if (vip_etcd_mode())
		vip_elect_health(v);
	else
		vip_evaluate(v);
}
