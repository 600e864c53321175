/* The kernel fence of a VIP (etcd mode): nf_tables in the VIP's namespace
 * that drop ARP, neighbour solicitations and traffic for the VIP unless the
 * VIP is an element of a set with `flags timeout` whose element is still
 * live. The holder re-arms the element with each liveness renewal; when the
 * agent dies, hangs or is cut off, the kernel stops answering for the VIP
 * when the element's timeout runs out, to the jiffy (4 ms at HZ=250) — the
 * address lifetimes are whole seconds, this is the sub-second fence
 * (docs/vip.md, timing argument).
 *
 * Per VIP and agent (so other agents' and other people's tables are never
 * touched), all named netagent.<agent>.<vip> ('-' as '_': nft's syntax):
 *   IPv4: table arp  (set live ipv4_addr; chains in/out: arp tpa/spa == VIP
 *         and not in @live → drop) and table ip (daddr in / saddr out)
 *   IPv6: table ip6  (daddr in, neighbour solicitation target in, saddr out)
 * The tables outlive the agent on purpose: a dead holder's host must keep
 * dropping. Built over netlink with libnftnl, one atomic batch per change;
 * runs on namespace workers (the socket belongs to the calling thread's
 * namespace). */
#include "netagent/util.h"
#include "vip/vip_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter_arp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define SET_NAME "live"
/* Before the usual filter chains (0): a drop here is final anyway, the
 * early priority only spares other chains the work. */
#define CHAIN_PRIO (-150)
#define BUF_SIZE   (MNL_SOCKET_BUFFER_SIZE * 2)

static void mnl_closep(struct mnl_socket **s)
{
	if (*s)
		mnl_socket_close(*s);
}
#define cleanup_mnl __attribute__((cleanup(mnl_closep)))

/* One batch under construction: its messages count the ACKs to read. */
struct batch {
	char *buf;
	struct mnl_nlmsg_batch *b;
	uint32_t seq;
	int nmsgs;
};

static void batch_freep(struct batch *b)
{
	if (b->b)
		mnl_nlmsg_batch_stop(b->b);
	free(b->buf);
}
#define cleanup_batch __attribute__((cleanup(batch_freep)))

void vip_fence_table_name(const char *agent, const char *vip, char *buf, size_t n)
{
	snprintf(buf, n, "netagent.%s.%s", agent, vip);
	for (char *p = buf; *p; p++)
		if (*p == '-')
			*p = '_';
}

static int batch_init(struct batch *b, na_err_t *err)
{
	b->buf = malloc(BUF_SIZE);
	if (!b->buf)
		return na_err_errno(err, ENOMEM, "nft batch");
	b->b = mnl_nlmsg_batch_start(b->buf, BUF_SIZE);
	b->seq = (uint32_t)time(NULL);
	nftnl_batch_begin(mnl_nlmsg_batch_current(b->b), b->seq++);
	mnl_nlmsg_batch_next(b->b);
	return 0;
}

/* A message header in the batch; the caller fills its payload. */
static struct nlmsghdr *batch_msg(struct batch *b, int type, int family, int flags)
{
	struct nlmsghdr *nlh =
	    nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(b->b), (uint16_t)type, (uint16_t)family,
				  (uint16_t)(flags | NLM_F_ACK), b->seq++);
	b->nmsgs++;
	return nlh;
}

static void batch_next(struct batch *b)
{
	mnl_nlmsg_batch_next(b->b);
}

/* Sends the batch (one transaction: all or nothing) and reads one ACK or
 * error per message: the kernel reports them all once the batch is done.
 * Returns 0, or -errno of the first failed message (err filled). */
static int batch_send(struct batch *b, const char *what, na_err_t *err)
{
	cleanup_mnl struct mnl_socket *nl = NULL;
	struct timeval tv = {.tv_sec = 1};
	char rbuf[MNL_SOCKET_BUFFER_SIZE];
	int first = 0;

	nftnl_batch_end(mnl_nlmsg_batch_current(b->b), b->seq++);
	mnl_nlmsg_batch_next(b->b);
	nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
	if (!nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0)
		return na_err_errno(err, errno, "nftables netlink socket (%s)", what);
	setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (mnl_socket_sendto(nl, mnl_nlmsg_batch_head(b->b), mnl_nlmsg_batch_size(b->b)) < 0)
		return na_err_errno(err, errno, "nftables batch (%s)", what);
	for (int acks = 0; acks < b->nmsgs;) {
		ssize_t n = mnl_socket_recvfrom(nl, rbuf, sizeof(rbuf));
		if (n < 0)
			return na_err_errno(err, errno, "nftables answer (%s)", what);
		for (struct nlmsghdr *h = (struct nlmsghdr *)rbuf; mnl_nlmsg_ok(h, (int)n);
		     h = mnl_nlmsg_next(h, (int *)&n)) {
			if (h->nlmsg_type != NLMSG_ERROR)
				continue;
			const struct nlmsgerr *e = mnl_nlmsg_get_payload(h);
			acks++;
			if (e->error && !first)
				first = e->error;
		}
	}
	if (first) {
		na_err_errno(err, -first, "nftables %s", what);
		return first;
	}
	return 0;
}

static int addr_len(const na_addr_t *a)
{
	return a->family == AF_INET ? 4 : 16;
}

static void add_table(struct batch *b, int family, const char *name, int type)
{
	struct nftnl_table *t = nftnl_table_alloc();
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, name);
	nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, (uint32_t)family);
	struct nlmsghdr *nlh =
	    batch_msg(b, type, family, type == NFT_MSG_NEWTABLE ? NLM_F_CREATE : 0);
	nftnl_table_nlmsg_build_payload(nlh, t);
	nftnl_table_free(t);
	batch_next(b);
}

static void add_set(struct batch *b, int family, const char *table, const na_addr_t *a)
{
	struct nftnl_set *s = nftnl_set_alloc();
	nftnl_set_set_str(s, NFTNL_SET_TABLE, table);
	nftnl_set_set_str(s, NFTNL_SET_NAME, SET_NAME);
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, (uint32_t)family);
	nftnl_set_set_u32(s, NFTNL_SET_FLAGS, NFT_SET_TIMEOUT);
	/* nft's datatypes ipv4_addr (7) / ipv6_addr (8), for `nft list` */
	nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, a->family == AF_INET ? 7 : 8);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, (uint32_t)addr_len(a));
	nftnl_set_set_u32(s, NFTNL_SET_ID, 1);
	struct nlmsghdr *nlh = batch_msg(b, NFT_MSG_NEWSET, family, NLM_F_CREATE);
	nftnl_set_nlmsg_build_payload(nlh, s);
	nftnl_set_free(s);
	batch_next(b);
}

/* timeout_ms 0: flush the set (every element goes; no error when it is
 * empty or its element expired). */
static void set_elem(struct batch *b, int family, const char *table, const na_addr_t *a,
		     unsigned timeout_ms)
{
	struct nftnl_set *s = nftnl_set_alloc();
	nftnl_set_set_str(s, NFTNL_SET_TABLE, table);
	nftnl_set_set_str(s, NFTNL_SET_NAME, SET_NAME);
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, (uint32_t)family);
	if (timeout_ms) {
		struct nftnl_set_elem *e = nftnl_set_elem_alloc();
		nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, a->u.b, (uint32_t)addr_len(a));
		nftnl_set_elem_set_u64(e, NFTNL_SET_ELEM_TIMEOUT, timeout_ms);
		nftnl_set_elem_add(s, e);
	}
	struct nlmsghdr *nlh = batch_msg(b, timeout_ms ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM,
					 family, timeout_ms ? NLM_F_CREATE : 0);
	nftnl_set_elems_nlmsg_build_payload(nlh, s);
	nftnl_set_free(s);
	batch_next(b);
}

static void add_chain(struct batch *b, int family, const char *table, const char *name, int hook)
{
	struct nftnl_chain *c = nftnl_chain_alloc();
	nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, table);
	nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, (uint32_t)family);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, (uint32_t)hook);
	nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, CHAIN_PRIO);
	nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, "filter");
	nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
	struct nlmsghdr *nlh = batch_msg(b, NFT_MSG_NEWCHAIN, family, NLM_F_CREATE);
	nftnl_chain_nlmsg_build_payload(nlh, c);
	nftnl_chain_free(c);
	batch_next(b);
}

static void expr_payload(struct nftnl_rule *r, uint32_t base, uint32_t off, uint32_t len)
{
	struct nftnl_expr *e = nftnl_expr_alloc("payload");
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, off);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
	nftnl_rule_add_expr(r, e);
}

static void expr_cmp(struct nftnl_rule *r, const void *data, uint32_t len)
{
	struct nftnl_expr *e = nftnl_expr_alloc("cmp");
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, NFT_CMP_EQ);
	nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
	nftnl_rule_add_expr(r, e);
}

/* "… and (register 1 = the VIP) not in @live: drop", on a rule whose
 * earlier expressions matched the packet kind. */
static void add_rule(struct batch *b, int family, const char *table, const char *chain,
		     struct nftnl_rule *r, const na_addr_t *a, uint32_t base, uint32_t off)
{
	struct nftnl_expr *e;
	uint32_t len = (uint32_t)addr_len(a);
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, table);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain);
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, (uint32_t)family);
	expr_payload(r, base, off, len);
	expr_cmp(r, a->u.b, len);
	e = nftnl_expr_alloc("lookup");
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
	nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, SET_NAME);
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SET_ID, 1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
	nftnl_rule_add_expr(r, e);
	e = nftnl_expr_alloc("immediate");
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, NF_DROP);
	nftnl_rule_add_expr(r, e);
	struct nlmsghdr *nlh = batch_msg(b, NFT_MSG_NEWRULE, family, NLM_F_CREATE | NLM_F_APPEND);
	nftnl_rule_nlmsg_build_payload(nlh, r);
	nftnl_rule_free(r);
	batch_next(b);
}

/* A whole table, replaced atomically (add, delete, add: no error whether
 * it existed or not), element included. */
static void build_table(struct batch *b, int family, const char *name, const na_addr_t *a,
			unsigned timeout_ms)
{
	const uint32_t NH = NFT_PAYLOAD_NETWORK_HEADER, TH = NFT_PAYLOAD_TRANSPORT_HEADER;
	add_table(b, family, name, NFT_MSG_NEWTABLE);
	add_table(b, family, name, NFT_MSG_DELTABLE);
	add_table(b, family, name, NFT_MSG_NEWTABLE);
	add_set(b, family, name, a);
	if (family == NFPROTO_ARP) {
		add_chain(b, family, name, "in", NF_ARP_IN);
		add_chain(b, family, name, "out", NF_ARP_OUT);
		/* Ethernet/IPv4 ARP: 8-byte header, sha 6, spa 4, tha 6, tpa 4 */
		add_rule(b, family, name, "in", nftnl_rule_alloc(), a, NH, 24);
		add_rule(b, family, name, "out", nftnl_rule_alloc(), a, NH, 14);
	} else {
		int v4 = family == NFPROTO_IPV4;
		add_chain(b, family, name, "in", NF_INET_LOCAL_IN);
		add_chain(b, family, name, "out", NF_INET_LOCAL_OUT);
		add_rule(b, family, name, "in", nftnl_rule_alloc(), a, NH, v4 ? 16 : 24);
		add_rule(b, family, name, "out", nftnl_rule_alloc(), a, NH, v4 ? 12 : 8);
		if (!v4) {
			/* Neighbour solicitations for the VIP go to its
			 * solicited-node group, not to the VIP: match the
			 * ICMPv6 target (type 135, target at offset 8). */
			struct nftnl_rule *r = nftnl_rule_alloc();
			struct nftnl_expr *e = nftnl_expr_alloc("meta");
			uint8_t icmp6 = IPPROTO_ICMPV6, ns = 135;
			nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, NFT_META_L4PROTO);
			nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
			nftnl_rule_add_expr(r, e);
			expr_cmp(r, &icmp6, 1);
			expr_payload(r, TH, 0, 1);
			expr_cmp(r, &ns, 1);
			add_rule(b, family, name, "in", r, a, TH, 8);
		}
	}
	set_elem(b, family, name, a, timeout_ms);
}

/* The families holding a VIP's tables: arp + ip for IPv4, ip6 for IPv6. */
static int families(const na_addr_t *a, int fam[2])
{
	if (a->family == AF_INET) {
		fam[0] = NFPROTO_ARP;
		fam[1] = NFPROTO_IPV4;
		return 2;
	}
	fam[0] = NFPROTO_IPV6;
	return 1;
}

int vip_fence_create(const char *agent, const char *vip, const na_addr_t *a, unsigned timeout_ms,
		     na_err_t *err)
{
	cleanup_batch struct batch b = {0};
	char name[160];
	int fam[2], n = families(a, fam);
	if (batch_init(&b, err) < 0)
		return -1;
	vip_fence_table_name(agent, vip, name, sizeof(name));
	for (int i = 0; i < n; i++)
		build_table(&b, fam[i], name, a, timeout_ms);
	return batch_send(&b, "create fence", err) < 0 ? -1 : 0;
}

/* Adding an element that exists does not refresh its timeout (field
 * notes): flush + add in one batch does, atomically (no packet sees the
 * set empty). Returns 1 when the table or set is missing (first arm,
 * removed by hand): the caller builds the whole fence anew. */
int vip_fence_renew(const char *agent, const char *vip, const na_addr_t *a, unsigned timeout_ms,
		    na_err_t *err)
{
	cleanup_batch struct batch b = {0};
	char name[160];
	int fam[2], n = families(a, fam), rc;
	vip_fence_table_name(agent, vip, name, sizeof(name));
	if (batch_init(&b, err) < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		set_elem(&b, fam[i], name, a, 0);
		set_elem(&b, fam[i], name, a, timeout_ms);
	}
	rc = batch_send(&b, "renew fence", err);
	if (rc == -ENOENT) {
		na_err_clear(err);
		return 1;
	}
	return rc < 0 ? -1 : 0;
}

/* Each table on its own: one missing must not keep the other armed. */
static int each_table(const char *agent, const char *vip, const na_addr_t *a, int del,
		      na_err_t *err)
{
	char name[160];
	int fam[2], n = families(a, fam), ret = 0;
	vip_fence_table_name(agent, vip, name, sizeof(name));
	for (int i = 0; i < n; i++) {
		cleanup_batch struct batch b = {0};
		na_err_t e = NA_ERR_INIT;
		if (batch_init(&b, err) < 0)
			return -1;
		if (del)
			add_table(&b, fam[i], name, NFT_MSG_DELTABLE);
		else
			set_elem(&b, fam[i], name, a, 0);
		int rc = batch_send(&b, del ? "delete fence" : "disarm fence", &e);
		if (rc < 0 && rc != -ENOENT && !ret) {
			*err = e;
			ret = -1;
		}
	}
	return ret;
}

int vip_fence_disarm(const char *agent, const char *vip, const na_addr_t *a, na_err_t *err)
{
	return each_table(agent, vip, a, 0, err);
}

int vip_fence_delete(const char *agent, const char *vip, const na_addr_t *a, na_err_t *err)
{
	return each_table(agent, vip, a, 1, err);
}
