/* Role "gateway" (SPEC §4): HAProxy 2.6 in TCP mode as the container's PID
 * 1 (master-worker), routing to the backend whose Patroni says primary.
 * This file: validation, the files and the uplink made before a start,
 * what a live update may change, and the VIP target resolver. The
 * configuration text is gw_render.c's, the reload gw_reload.c's. */
#include "netagent/log.h"
#include "netagent/nl.h"
#include "netagent/file.h"
#include "netagent/util.h"
#include "provision/gw.h"
#include "vxlan/vxlan.h"

#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const na_field_t fields[] = {
    {"gateway", NA_F_OBJECT, 1, 0, 0},
};

/* The container's overlay subnets; *known = 0 when a network is unknown
 * (the network check refuses the PUT then). */
static size_t spec_subnets(const pv_spec_t *s, na_addr_t *out, int *known, int from_cache)
{
	size_t n = 0;
	*known = 1;
	if (!from_cache)
		pv_role_note_subnets(s);
	for (size_t i = 0; i < s->nnets && n < GW_MAX_NETS; i++) {
		if (pv_role_subnet(s->nets[i].network, &out[n]))
			n++;
		else
			*known = 0;
	}
	return n;
}

static int spec_conf(const pv_spec_t *s, int from_cache, gw_conf_t *c, na_err_t *err)
{
	na_addr_t nets[GW_MAX_NETS];
	int known;
	size_t n = spec_subnets(s, nets, &known, from_cache);
	if (from_cache && !known)
		return na_err_set(err, 500, "internal_error", NULL,
				  "the subnets of the gateway's networks are not known");
	return gw_parse(json_object_get(s->body, "gateway"), nets, n, known, c, err);
}

/* ---- validate ------------------------------------------------------------------ */

static int validate(const json_t *body, pv_spec_t *s, na_err_t *err)
{
	gw_conf_t c;
	static const char *const argv[] = {"/usr/sbin/haproxy", "-W", "-db", "-f",
					   GW_CONF_DIR "/haproxy.cfg"};
	(void)body;
	if (spec_conf(s, 0, &c, err) < 0 ||
	    pv_role_set_argv(s, argv, NA_ARRAY_SIZE(argv), "HAProxy", err) < 0)
		return -1;
	s->uid = s->gid = GW_UID;
	/* Nothing at all above port 1023; below, only the bind. */
	if (c.port < 1024 || (c.replica_port && c.replica_port < 1024))
		s->caps |= 1ULL << pv_cap_from_name("NET_BIND_SERVICE");
	if (!s->restart_set)
		s->restart = PV_RESTART_ALWAYS;
	s->shm_mb = 8;
	/* Rendered files read-only; the admin socket and the server-state
	 * file in a directory only HAProxy's user (and the agent) reach. */
	pv_bind_t *b = &s->binds[s->nbinds++];
	snprintf(b->sub, sizeof(b->sub), "conf");
	snprintf(b->dest, sizeof(b->dest), GW_CONF_DIR);
	b->mode = 0755;
	b = &s->binds[s->nbinds++];
	snprintf(b->sub, sizeof(b->sub), "admin");
	snprintf(b->dest, sizeof(b->dest), GW_ADMIN_DIR);
	b->rw = 1;
	b->uid = b->gid = GW_UID;
	b->mode = 0700;
	return 0;
}

/* ---- the agent's side of the uplink (worker) --------------------------------------- */

/* Before a create or an update stops anything: the uplink is an interface
 * of the agent's namespace (the one this worker runs in). */
static int check_fs(const pv_spec_t *s, na_err_t *err)
{
	const char *up =
	    json_string_value(json_object_get(json_object_get(s->body, "gateway"), "uplink"));
	if (!up || if_nametoindex(up) > 0)
		return 0;
	return na_err_set(err, 422, "invalid_field", "gateway.uplink",
			  "gateway.uplink %s: no such interface in the agent's network namespace",
			  up);
}

/* ---- prepare (worker) ----------------------------------------------------------- */

static int put(const char *dir, const char *name, const char *data, mode_t mode, na_err_t *err)
{
	char path[700];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return na_file_put(path, data, strlen(data), mode, (uid_t)-1, (gid_t)-1, err);
}

static int link_up(na_nl_t *nl, int idx, na_err_t *err)
{
	struct ifinfomsg ifi = {
	    .ifi_family = AF_UNSPEC, .ifi_index = idx, .ifi_flags = IFF_UP, .ifi_change = IFF_UP};
	struct nlmsghdr *nlh = na_nl_req(nl, RTM_NEWLINK, 0, &ifi, sizeof(ifi));
	return na_nl_call(nl, nlh, NULL, NULL, err, "set %s up", GW_UPLINK_IF) < 0 ? -1 : 0;
}

static int parent_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct nlattr *tb[IFLA_MAX + 1];
	na_nl_parse(nlh, sizeof(struct ifinfomsg), tb, IFLA_MAX);
	*(int *)data = tb[IFLA_LINK] ? (int)mnl_attr_get_u32(tb[IFLA_LINK]) : 0;
	return MNL_CB_OK;
}

/* The ifindex, in the agent's namespace, of the link uplink0 sits on. */
static int link_parent(na_nl_t *cnl, int idx, na_err_t *err)
{
	int parent = 0;
	struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC, .ifi_index = idx};
	struct nlmsghdr *nlh = na_nl_req(cnl, RTM_GETLINK, 0, &ifi, sizeof(ifi));
	if (na_nl_call(cnl, nlh, parent_cb, &parent, err, "get %s", GW_UPLINK_IF) < 0)
		return -1;
	return parent;
}

static int link_del(na_nl_t *cnl, int idx, na_err_t *err)
{
	struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC, .ifi_index = idx};
	struct nlmsghdr *nlh = na_nl_req(cnl, RTM_DELLINK, 0, &ifi, sizeof(ifi));
	return na_nl_call(cnl, nlh, NULL, NULL, err, "delete %s", GW_UPLINK_IF) < 0 ? -1 : 0;
}

/* A macvlan (bridge mode) of the agent's uplink interface, made inside the
 * container's namespace; an existing one on the same link is kept (its
 * address may hold the VIP), one on another link (the uplink changed, or
 * was recreated) is replaced. No uplink: one left from an earlier spec
 * goes. */
static int uplink_sync(const char *uplink, const char *netns, na_err_t *err)
{
	cleanup_close int nsfd = na_netns_open(netns, NULL, err);
	if (nsfd < 0)
		return -1;
	cleanup_nl na_nl_t *cnl = NULL;
	if (na_nl_open_in(nsfd, &cnl, err) < 0)
		return -1;
	int idx = na_nl_ifindex(cnl, GW_UPLINK_IF, err);
	if (idx < 0)
		return -1;
	if (!uplink[0])
		return idx ? link_del(cnl, idx, err) : 0;
	cleanup_nl na_nl_t *nl = NULL;
	if (na_nl_open(&nl, err) < 0)
		return -1;
	int parent = na_nl_ifindex(nl, uplink, err);
	if (parent < 0)
		return -1;
	if (!parent)
		return na_err_set(err, 422, "invalid_field", "gateway.uplink",
				  "gateway.uplink %s: no such interface in the agent's network "
				  "namespace",
				  uplink);
	if (idx > 0) {
		int cur = link_parent(cnl, idx, err);
		if (cur < 0)
			return -1;
		if (cur == parent)
			return link_up(cnl, idx, err);
		if (link_del(cnl, idx, err) < 0)
			return -1;
	}
	struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
	struct nlmsghdr *nlh =
	    na_nl_req(nl, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof(ifi));
	mnl_attr_put_strz(nlh, IFLA_IFNAME, GW_UPLINK_IF);
	mnl_attr_put_u32(nlh, IFLA_LINK, (uint32_t)parent);
	mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, (uint32_t)nsfd);
	struct nlattr *li = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "macvlan");
	struct nlattr *data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
	mnl_attr_put_u32(nlh, IFLA_MACVLAN_MODE, MACVLAN_MODE_BRIDGE);
	mnl_attr_nest_end(nlh, data);
	mnl_attr_nest_end(nlh, li);
	if (na_nl_call(nl, nlh, NULL, NULL, err, "create macvlan %s on %s", GW_UPLINK_IF, uplink) <
	    0) {
		/* The uplink is the caller's choice: a link that cannot carry
		 * a macvlan is a bad field, not the agent's failure. */
		if (!strcmp(err->code, "netlink_error")) {
			char msg[sizeof(err->msg)];
			snprintf(msg, sizeof(msg), "%s", err->msg);
			na_err_set(err, 422, "invalid_field", "gateway.uplink", "%s", msg);
		}
		return -1;
	}
	idx = na_nl_ifindex(cnl, GW_UPLINK_IF, err);
	if (idx <= 0)
		return idx < 0 ? -1
			       : na_err_set(err, 500, "system_error", NULL,
					    "%s vanished after its creation", GW_UPLINK_IF);
	return link_up(cnl, idx, err);
}

static int prepare(const pv_spec_t *s, const pv_prep_ctx_t *ctx, na_err_t *err)
{
	gw_conf_t c;
	char conf[600], admin[600];
	if (spec_conf(s, 1, &c, err) < 0)
		return -1;
	snprintf(conf, sizeof(conf), "%s/conf", ctx->dir);
	snprintf(admin, sizeof(admin), "%s/admin", ctx->dir);
	char *cfg = gw_render(&c);
	if (!cfg)
		return na_err_errno(err, ENOMEM, "haproxy.cfg");
	int rc = put(conf, "haproxy.cfg", cfg, 0644, err);
	free(cfg);
	if (rc < 0)
		return -1;
	if (c.ca && put(conf, "check-ca.pem", c.ca, 0644, err) < 0)
		return -1;
	if (ctx->render_only)
		return 0; /* the reload saves the running process's state itself */
	/* A fresh process: every server down until its first check, not the
	 * state a process of an earlier run left. */
	char *st = gw_state_file(&c, NULL);
	if (!st)
		return na_err_errno(err, ENOMEM, "servers.state");
	rc = put(admin, "servers.state", st, 0644, err);
	free(st);
	if (rc < 0)
		return -1;
	return uplink_sync(c.uplink, ctx->netns, err);
}

/* ---- live updates ------------------------------------------------------------------ */

/* Everything HAProxy takes on a reload; the uplink is a kernel object made
 * before the start, so changing it restarts. */
static void live_fields(json_t *canon)
{
	json_t *gw = json_object_get(canon, "gateway");
	const char *k;
	json_t *v;
	void *tmp;
	json_object_foreach_safe(gw, tmp, k, v)
	{
		(void)v;
		if (strcmp(k, "uplink"))
			json_object_del(gw, k);
	}
}

const pv_role_t pv_role_gateway = {
    .name = "gateway",
    .fields = fields,
    .nfields = NA_ARRAY_SIZE(fields),
    .validate = validate,
    .check_fs = check_fs,
    .prepare = prepare,
    .init = gw_init,
    .live_fields = live_fields,
    .apply = gw_apply,
    .state = gw_state,
    .fini = gw_fini,
};
