/* The VIPs this agent knows: lookup, JSON views, the transition history
 * (every change of state goes through vip_set_state: history, SSE event,
 * metrics, log), the metrics collector and loading state files at start. */
#include "netagent/events.h"
#include "netagent/log.h"
#include "netagent/util.h"
#include "vip/vip.h"
#include "vip/vip_int.h"

#include <stdio.h>
#include <string.h>

static struct {
	vip_container_resolver_fn fn;
	void *ud;
} resolver;

void vip_set_container_resolver(vip_container_resolver_fn fn, void *ud)
{
	resolver.fn = fn;
	resolver.ud = ud;
}

void vip_container_changed(const char *container)
{
	for (vip_t *v = vm.vips; v; v = v->next) {
		if (v->deleting || v->spec.target_kind != VIP_T_CONTAINER ||
		    strcmp(v->spec.target, container))
			continue;
		vip_resolve(v);
		vip_evaluate(v);
	}
}

void vip_resolve(vip_t *v)
{
	na_err_t err = NA_ERR_INIT;
	char netns[VIP_PATH_MAX] = "", ifname[16] = "";
	int rc;

	if (v->spec.target_kind == VIP_T_INTERFACE) {
		v->netns[0] = 0;
		snprintf(v->ifname, sizeof(v->ifname), "%.15s", v->spec.target);
		v->resolved = 1;
		v->target_err[0] = 0;
		return;
	}
	if (!resolver.fn) {
		v->resolved = 0;
		snprintf(v->target_err, sizeof(v->target_err),
			 "container targets need the containers module");
		return;
	}
	rc = resolver.fn(resolver.ud, v->spec.target, netns, sizeof(netns), ifname, sizeof(ifname),
			 &err);
	if (rc == 1 && netns[0] == '/' && ifname[0]) {
		snprintf(v->netns, sizeof(v->netns), "%s", netns);
		snprintf(v->ifname, sizeof(v->ifname), "%s", ifname);
		v->resolved = 1;
		v->target_err[0] = 0;
		return;
	}
	v->resolved = 0;
	snprintf(v->target_err, sizeof(v->target_err), "%.150s",
		 rc < 0 ? err.msg : "container has no uplink (yet)");
}

vip_t *vip_find(const char *name)
{
	for (vip_t *v = vm.vips; v; v = v->next)
		if (!v->deleting && !strcmp(v->name, name))
			return v;
	return NULL;
}

vip_t *vip_new(const char *name, const vip_spec_t *spec)
{
	vip_t *v = calloc(1, sizeof(*v));
	if (!v)
		return NULL;
	snprintf(v->name, sizeof(v->name), "%s", name);
	v->spec = *spec;
	v->state = VIP_BACKUP;
	v->health = spec->nchecks ? VIP_H_UNKNOWN : VIP_H_UP;
	v->since_ms = na_now_ms();
	na_time_rfc3339(v->since, sizeof(v->since));
	snprintf(v->health_reason, sizeof(v->health_reason), "%s",
		 spec->nchecks ? "checks pending" : "no checks");
	v->next = vm.vips;
	vm.vips = v;
	vm.nvips++;
	vip_resolve(v);
	return v;
}

void vip_unlink_free(vip_t *v)
{
	for (vip_t **p = &vm.vips; *p; p = &(*p)->next) {
		if (*p == v) {
			*p = v->next;
			break;
		}
	}
	vm.nvips--;
	vip_checks_stop(v);
	na_timer_free(v->garp_timer);
	na_timer_free(v->elect_timer);
	na_timer_free(v->retry_timer);
	free(v);
}

const char *vip_state_name(enum vip_state s)
{
	return s == VIP_MASTER ? "master" : s == VIP_FAULT ? "fault" : "backup";
}

static const char *health_name(enum vip_health h)
{
	return h == VIP_H_UP ? "up" : h == VIP_H_DOWN ? "down" : "unknown";
}

json_t *vip_json(const vip_t *v)
{
	json_t *o = vip_spec_json(&v->spec);
	json_object_set_new(o, "name", json_string(v->name));
	json_object_set_new(o, "state", json_string(vip_state_name(v->state)));
	json_object_set_new(o, "holder", v->holder[0] ? json_string(v->holder) : json_null());
	json_object_set_new(o, "since", json_string(v->since));
	json_object_set_new(o, "transitions", json_integer((json_int_t)v->transitions));
	json_object_set_new(
	    o, "health",
	    json_pack("{s:s, s:s}", "status", health_name(v->health), "reason", v->health_reason));
	json_object_set_new(o, "mode", json_string(vip_etcd_mode() ? "etcd" : "local"));
	if (v->resolved)
		json_object_set_new(o, "resolved",
				    json_pack("{s:s, s:s}", "interface", v->ifname, "netns",
					      v->netns[0] ? v->netns : "agent"));
	else
		json_object_set_new(o, "resolved", json_pack("{s:s}", "error", v->target_err));
	if (v->last_error[0])
		json_object_set_new(o, "error", json_string(v->last_error));
	if (vip_etcd_mode()) {
		json_t *c = json_array();
		for (int i = 0; i < v->ncands; i++)
			json_array_append_new(
			    c, json_pack("{s:s, s:i, s:b, s:b}", "agent", v->cands[i].agent,
					 "priority", v->cands[i].priority, "healthy",
					 v->cands[i].healthy, "preempt", v->cands[i].preempt));
		json_object_set_new(o, "candidates", c);
	}
	if (v->has_failover)
		json_object_set_new(o, "last_failover_ms",
				    json_real((double)(long long)(v->last_failover_s * 1e4) / 10));
	return o;
}

json_t *vip_history_json(const vip_t *v)
{
	json_t *items = json_array();
	unsigned n = v->nhist < VIP_HISTORY ? v->nhist : VIP_HISTORY;
	for (unsigned i = v->nhist - n; i < v->nhist; i++) {
		const vip_hist_t *h = &v->hist[i % VIP_HISTORY];
		json_array_append_new(
		    items, json_pack("{s:s, s:s, s:s, s:o, s:s}", "ts", h->ts, "from",
				     vip_state_name(h->from), "to", vip_state_name(h->to), "holder",
				     h->holder[0] ? json_string(h->holder) : json_null(), "reason",
				     h->reason));
	}
	return json_pack("{s:s, s:o}", "name", v->name, "items", items);
}

void vip_set_state(vip_t *v, enum vip_state to, const char *holder, const char *reason)
{
	enum vip_state from = v->state;
	if (!holder)
		holder = "";
	if (from == to && !strcmp(v->holder, holder))
		return;
	snprintf(v->holder, sizeof(v->holder), "%s", holder);
	if (from == to)
		return; /* another agent took over from another one: not our transition */
	vip_hist_t *h = &v->hist[v->nhist++ % VIP_HISTORY];
	v->state = to;
	v->transitions++;
	vm.transitions_total++;
	v->since_ms = na_now_ms();
	na_time_rfc3339(v->since, sizeof(v->since));
	snprintf(h->ts, sizeof(h->ts), "%s", v->since);
	h->from = from;
	h->to = to;
	snprintf(h->holder, sizeof(h->holder), "%s", holder);
	snprintf(h->reason, sizeof(h->reason), "%s", reason ? reason : "");
	json_t *j = vip_json(v);
	json_object_set_new(j, "from", json_string(vip_state_name(from)));
	json_object_set_new(j, "reason", json_string(h->reason));
	na_events_publish("vip", vip_state_name(to), v->name, j);
	json_decref(j);
	if (vip_etcd_mode())
		vip_live_held(); /* the self-fence timer follows what we hold */
	na_info("vip state", "vip=%s from=%s to=%s holder=%s reason=\"%s\"", v->name,
		vip_state_name(from), vip_state_name(to), holder[0] ? holder : "-", h->reason);
}

void vip_metrics_collect(FILE *out, void *ud)
{
	static const enum vip_state states[] = {VIP_MASTER, VIP_BACKUP, VIP_FAULT};
	(void)ud;
	fprintf(out, "# HELP netagent_vip_state 1 for the state each VIP is in on this agent.\n"
		     "# TYPE netagent_vip_state gauge\n");
	for (vip_t *v = vm.vips; v; v = v->next)
		for (size_t i = 0; i < NA_ARRAY_SIZE(states); i++)
			fprintf(out, "netagent_vip_state{vip=\"%s\",state=\"%s\"} %d\n", v->name,
				vip_state_name(states[i]), v->state == states[i]);
	fprintf(out, "# HELP netagent_vip_transitions_total State changes of each VIP.\n"
		     "# TYPE netagent_vip_transitions_total counter\n");
	for (vip_t *v = vm.vips; v; v = v->next)
		fprintf(out, "netagent_vip_transitions_total{vip=\"%s\"} %llu\n", v->name,
			v->transitions);
	fprintf(out, "# HELP netagent_vip_healthy 1 when every check of the VIP passes.\n"
		     "# TYPE netagent_vip_healthy gauge\n");
	for (vip_t *v = vm.vips; v; v = v->next)
		fprintf(out, "netagent_vip_healthy{vip=\"%s\"} %d\n", v->name,
			v->health == VIP_H_UP);
	fprintf(out, "# HELP netagent_vip_last_failover_seconds Decision to take over until the "
		     "first announcement was sent, last takeover by this agent.\n"
		     "# TYPE netagent_vip_last_failover_seconds gauge\n");
	for (vip_t *v = vm.vips; v; v = v->next)
		if (v->has_failover)
			fprintf(out, "netagent_vip_last_failover_seconds{vip=\"%s\"} %.6f\n",
				v->name, v->last_failover_s);
}

static int load_vip(const char *name, json_t *o, void *ud, na_err_t *err)
{
	(void)ud;
	vip_spec_t s;
	na_err_t e = NA_ERR_INIT;
	if (vip_spec_from_json(o, &s, &e) < 0) {
		na_error("vip state skipped", "vip=%s error=\"%s\"", name, e.msg);
		return 0;
	}
	if (!vip_new(name, &s))
		return na_err_errno(err, ENOMEM, "vip %s", name);
	return 0;
}

int vip_load_state(na_err_t *err)
{
	if (na_state_load(vm.ag->state, "vips", load_vip, NULL, err) < 0)
		return -1;
	na_info("vip state loaded", "vips=%u", vm.nvips);
	return 0;
}
