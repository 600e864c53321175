/* Netlink (rtnetlink over libmnl) and network-namespace helpers shared by
 * the modules. A socket talks to the namespace of the thread that opened it,
 * for its whole life: open it inside a namespace (na_nl_open_in) and use it
 * from anywhere afterwards.
 *
 * Every request asks for an ACK; replies are matched by sequence number and
 * kernel errors come back as -errno with the extended-ack text in err, e.g.
 * "create vxlan0: File exists (kernel: A VXLAN device with the specified VNI
 * already exists)". err gets 500 "netlink_error"; callers that know better
 * (EEXIST is a conflict for them) change err->status/code. */
#ifndef NA_NL_H
#define NA_NL_H

#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <stddef.h>
#include <stdint.h>

#include "netagent/err.h"
#include "netagent/nsworker.h"

typedef struct na_nl na_nl_t;

/* Largest request the helpers make room for (single or batched). */
#define NA_NL_MSG_MAX 1024

/* NETLINK_ROUTE socket in the calling thread's namespace / in nsfd's. */
int na_nl_open(na_nl_t **out, na_err_t *err);
int na_nl_open_in(int nsfd, na_nl_t **out, na_err_t *err);
void na_nl_close(na_nl_t *nl);
/* A non-blocking socket of nsfd's namespace subscribed to its rtnetlink
 * notifications (groups: RTMGRP_* bitmask), for drift detection without
 * polling. A socket holds its namespace: close it when done watching. */
int na_nl_monitor_open(int nsfd, unsigned groups, struct mnl_socket **out, na_err_t *err);
static inline void na_nl_closep(na_nl_t **nl)
{
	if (*nl)
		na_nl_close(*nl);
}
#define cleanup_nl __attribute__((cleanup(na_nl_closep)))

/* Starts the socket's single request: header + zeroed family header
 * (hdrlen bytes, copied from hdr when non-NULL). NLM_F_REQUEST is added,
 * NLM_F_ACK too unless it is a dump (a GET with NLM_F_DUMP). Add attributes with mnl_attr_put*
 * (at most NA_NL_MSG_MAX bytes in all). */
struct nlmsghdr *na_nl_req(na_nl_t *nl, uint16_t type, uint16_t flags, const void *hdr,
			   size_t hdrlen);
/* Sends the request made by na_nl_req and reads until its ACK (or, for a
 * dump, NLMSG_DONE). Data replies go to cb (may be NULL). fmt names the
 * operation for the error message. Returns 0 or -errno. A dump that the
 * kernel flagged as interrupted returns -EAGAIN: the caller starts over. */
int na_nl_call(na_nl_t *nl, struct nlmsghdr *nlh, mnl_cb_t cb, void *data, na_err_t *err,
	       const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Pipelined requests: na_nl_batch_add appends a request (same rules as
 * na_nl_req) to the socket's batch; na_nl_batch_send sends them back to back
 * in windows sized to the receive buffer and collects one ACK each. Every
 * request is tried even after a failure. Failures whose errno equals
 * ignore_errno (0: none) count as success. The first failure is described in
 * err (describe names request idx, in add order); *nfailed (may be NULL)
 * counts failures. Returns 0 or the first failure's -errno. The batch is
 * empty afterwards either way. */
struct nlmsghdr *na_nl_batch_add(na_nl_t *nl, uint16_t type, uint16_t flags, const void *hdr,
				 size_t hdrlen);
size_t na_nl_batch_len(const na_nl_t *nl);
typedef void (*na_nl_describe_fn)(void *ud, size_t idx, char *buf, size_t n);
int na_nl_batch_send(na_nl_t *nl, int ignore_errno, na_nl_describe_fn describe, void *ud,
		     size_t *nfailed, na_err_t *err);

/* Attribute table of a message after its family header of hdrlen bytes /
 * of a nested attribute: tb[type] for type <= max, NULL when absent. */
void na_nl_parse(const struct nlmsghdr *nlh, size_t hdrlen, const struct nlattr **tb, int max);
void na_nl_parse_nested(const struct nlattr *nest, const struct nlattr **tb, int max);

/* ---- addresses (RTM_NEWADDR / RTM_DELADDR), IPv4 and IPv6 ---- */
#include "netagent/addr.h"

/* Lifetimes travel as IFA_CACHEINFO; 0 means forever (INFINITY_LIFE_TIME).
 * A finite valid_lft makes the kernel remove the address by itself when it
 * runs out (about 1 s granularity): the VIP fence. */
typedef struct na_nl_addr_opts {
	uint32_t valid_lft, preferred_lft; /* seconds; 0 = forever */
	uint32_t flags;			   /* IFA_F_NODAD, IFA_F_NOPREFIXROUTE, ... */
	int replace;			   /* NLM_F_REPLACE: add or renew in place */
} na_nl_addr_opts_t;

/* Interface index by name in the socket's namespace: > 0, or 0 when there
 * is no such interface, or -errno. */
int na_nl_ifindex(na_nl_t *nl, const char *ifname, na_err_t *err);
/* Adds a (with a->plen; -1 means /32 or /128). Without replace an existing
 * address fails with -EEXIST; with replace it is renewed (lifetimes). */
int na_nl_addr_add(na_nl_t *nl, int ifindex, const na_addr_t *a, const na_nl_addr_opts_t *o,
		   na_err_t *err);
/* Removes a; an absent address is no error. *removed (may be NULL) says whether it was there. */
int na_nl_addr_del(na_nl_t *nl, int ifindex, const na_addr_t *a, int *removed, na_err_t *err);
typedef struct na_nl_addr_info {
	na_addr_t addr;
	int ifindex;
	uint32_t flags;			   /* IFA_F_* (IFA_FLAGS when present) */
	uint32_t valid_lft, preferred_lft; /* remaining, seconds; 0xffffffff forever */
} na_nl_addr_info_t;
/* Addresses of ifindex (0: every interface), family 0 for both. Up to max
 * into out; the total in *n (may exceed max). */
int na_nl_addr_list(na_nl_t *nl, int ifindex, int family, na_nl_addr_info_t *out, size_t max,
		    size_t *n, na_err_t *err);

/* ---- network namespaces, the way `ip netns add/del` keeps them ---- */

/* Creates the namespace file `path` (its directory is made a shared mount
 * point first, like iproute2 does for /run/netns) and bind-mounts a new,
 * empty network namespace on it. The namespace is made on a short-lived
 * thread, so no caller thread ever changes namespace. Already being a
 * network namespace is success. *created (may be NULL): 1 when this call
 * made it, 0 when it existed, so a caller sets up only what it made. */
int na_netns_create(const char *path, int *created, na_err_t *err);
/* Unmounts (MNT_DETACH) and unlinks path; a missing path is success.
 * *removed (may be NULL): 1 when something was unmounted or unlinked, 0 when
 * path did not exist. */
int na_netns_delete(const char *path, int *removed, na_err_t *err);
/* A namespace's identity: the nsfs device and inode, what `ip netns
 * identify` and /proc/PID/ns/net's "net:[ino]" compare. */
typedef struct na_ns_id {
	unsigned long long dev, ino;
} na_ns_id_t;
static inline int na_ns_id_eq(const na_ns_id_t *a, const na_ns_id_t *b)
{
	return a->ino && a->dev == b->dev && a->ino == b->ino;
}

/* 1 when path is a mounted network namespace, 0 otherwise. */
int na_netns_is_netns(const char *path);
/* O_RDONLY|O_CLOEXEC descriptor of the network namespace file at path, which
 * may come from a client: it is first opened O_PATH|O_NOFOLLOW, so a
 * symlink (/proc/PID/ns/net included), a FIFO or a device is refused without
 * ever being opened for real; it must be on nsfs and a network namespace.
 * id (nullable) receives its identity. Returns -ENOENT (404 "not_found") when
 * missing, -EINVAL (422 "invalid_netns") when not a network namespace file.
 * Worker threads only: a path on a hung filesystem blocks. */
int na_netns_open(const char *path, na_ns_id_t *id, na_err_t *err);
/* Identity of an open namespace descriptor. */
int na_netns_fd_id(int fd, na_ns_id_t *id, na_err_t *err);
/* The calling thread's network namespace and PID 1's (the host's root
 * namespace), for refusing them as endpoint targets. */
int na_netns_self_ids(na_ns_id_t *self, na_ns_id_t *init, na_err_t *err);
/* Runs fn with the calling thread inside nsfd and returns it to its previous
 * namespace afterwards; aborts when it cannot return (a thread left in a
 * foreign namespace would corrupt every later job). */
int na_netns_run_fd(int nsfd, na_ns_fn fn, void *arg, na_err_t *err);

#endif
