#include "netagent/nl.h"
#include "netagent/util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NETLINK_GET_STRICT_CHK
#define NETLINK_GET_STRICT_CHK 12
#endif

/* Dumps come in skbs of up to 32 KiB; a larger buffer never truncates. */
#define RBUF_SIZE (64 * 1024)
/* Socket buffers: a batch window's ACKs must fit in the receive buffer,
 * otherwise the kernel drops them (ENOBUFS) and the outcome is unknown. */
#define RCVBUF_WANT (4 * 1024 * 1024)
#define SNDBUF_WANT (1024 * 1024)
/* Upper bound of the kernel's memory charge (skb truesize) for one ACK. */
#define ACK_COST 1024

struct na_nl {
	struct mnl_socket *sock;
	int fd;
	uint32_t portid;
	uint32_t seq;
	size_t window; /* requests in flight at most */
	size_t sndmax; /* bytes per sendmsg at most */
	char *rbuf;
	char req[NA_NL_MSG_MAX] __attribute__((aligned(8)));
	/* batch */
	char *bbuf;
	size_t blen, bcap, bcount;
	size_t blast; /* offset of the last request, not yet in blen */
	uint32_t bseq0;
};

static void setbuf_opt(int fd, int force, int plain, int want)
{
	/* The FORCE variants ignore rmem_max/wmem_max but need CAP_NET_ADMIN. */
	if (setsockopt(fd, SOL_SOCKET, force, &want, sizeof(want)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, plain, &want, sizeof(want));
}

int na_nl_open(na_nl_t **out, na_err_t *err)
{
	cleanup_free na_nl_t *nl = calloc(1, sizeof(*nl));
	int one = 1, rcv = 0;
	socklen_t sl = sizeof(rcv);

	if (!nl)
		return na_err_errno(err, ENOMEM, "netlink socket");
	nl->rbuf = malloc(RBUF_SIZE);
	if (!nl->rbuf)
		return na_err_errno(err, ENOMEM, "netlink socket");
	nl->sock = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	if (!nl->sock) {
		int e = errno;
		free(nl->rbuf);
		return na_err_errno(err, e, "open netlink socket");
	}
	nl->fd = mnl_socket_get_fd(nl->sock);
	/* CAP_ACK: errors do not echo our request back; EXT_ACK: the kernel
	 * says why it refused; STRICT_CHK: dump filters in headers are honoured
	 * (best effort: older kernels lack it and we filter again anyway). */
	if (mnl_socket_setsockopt(nl->sock, NETLINK_CAP_ACK, &one, sizeof(one)) < 0 ||
	    mnl_socket_setsockopt(nl->sock, NETLINK_EXT_ACK, &one, sizeof(one)) < 0 ||
	    mnl_socket_bind(nl->sock, 0, MNL_SOCKET_AUTOPID) < 0) {
		int e = errno;
		mnl_socket_close(nl->sock);
		free(nl->rbuf);
		return na_err_errno(err, e, "set up netlink socket");
	}
	(void)mnl_socket_setsockopt(nl->sock, NETLINK_GET_STRICT_CHK, &one, sizeof(one));
	setbuf_opt(nl->fd, SO_RCVBUFFORCE, SO_RCVBUF, RCVBUF_WANT);
	setbuf_opt(nl->fd, SO_SNDBUFFORCE, SO_SNDBUF, SNDBUF_WANT);
	if (getsockopt(nl->fd, SOL_SOCKET, SO_RCVBUF, &rcv, &sl) < 0)
		rcv = 212992;
	nl->window = (size_t)rcv / 2 / ACK_COST;
	if (nl->window < 8)
		nl->window = 8;
	if (nl->window > 1024)
		nl->window = 1024;
	rcv = 0;
	sl = sizeof(rcv);
	if (getsockopt(nl->fd, SOL_SOCKET, SO_SNDBUF, &rcv, &sl) < 0 || rcv < 65536)
		rcv = 65536;
	nl->sndmax = (size_t)rcv / 2;
	nl->portid = mnl_socket_get_portid(nl->sock);
	nl->seq = (uint32_t)time(NULL) ^ ((uint32_t)nl->portid << 16);
	*out = NA_STEAL(nl);
	return 0;
}

static int open_fn(void *arg, na_err_t *err)
{
	return na_nl_open(arg, err);
}

int na_nl_open_in(int nsfd, na_nl_t **out, na_err_t *err)
{
	return na_netns_run_fd(nsfd, open_fn, out, err);
}

struct monitor_args {
	unsigned groups;
	struct mnl_socket **out;
};

static int monitor_fn(void *arg, na_err_t *err)
{
	struct monitor_args *m = arg;
	struct mnl_socket *s = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (!s)
		return na_err_errno(err, errno, "open netlink monitor");
	if (mnl_socket_bind(s, m->groups, MNL_SOCKET_AUTOPID) < 0) {
		int e = errno;
		mnl_socket_close(s);
		return na_err_errno(err, e, "bind netlink monitor");
	}
	/* Bursts (5,000 FDB entries programmed at once) must not overflow it;
	 * an overflow (ENOBUFS) only means "something changed" anyway. */
	setbuf_opt(mnl_socket_get_fd(s), SO_RCVBUFFORCE, SO_RCVBUF, 1024 * 1024);
	*m->out = s;
	return 0;
}

int na_nl_monitor_open(int nsfd, unsigned groups, struct mnl_socket **out, na_err_t *err)
{
	struct monitor_args m = {groups, out};
	return na_netns_run_fd(nsfd, monitor_fn, &m, err);
}

void na_nl_close(na_nl_t *nl)
{
	if (!nl)
		return;
	mnl_socket_close(nl->sock);
	free(nl->rbuf);
	free(nl->bbuf);
	free(nl);
}

static struct nlmsghdr *put_req(char *buf, uint32_t seq, uint16_t type, uint16_t flags,
				const void *hdr, size_t hdrlen)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	void *fam;

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	/* NLM_F_DUMP's bits double as NEW flags (EXCL is MATCH, REPLACE is
	 * ROOT): only a GET (rtnetlink: type % 4 == 2) with both is a dump. */
	if ((flags & NLM_F_DUMP) != NLM_F_DUMP || (type & 3) != 2)
		nlh->nlmsg_flags |= NLM_F_ACK;
	nlh->nlmsg_seq = seq;
	fam = mnl_nlmsg_put_extra_header(nlh, hdrlen);
	if (hdr)
		memcpy(fam, hdr, hdrlen);
	return nlh;
}

struct nlmsghdr *na_nl_req(na_nl_t *nl, uint16_t type, uint16_t flags, const void *hdr,
			   size_t hdrlen)
{
	memset(nl->req, 0, sizeof(nl->req));
	return put_req(nl->req, ++nl->seq, type, flags, hdr, hdrlen);
}

/* The kernel's reason for a refusal, from the TLVs after struct nlmsgerr. */
static void extack_msg(const struct nlmsghdr *nlh, char *out, size_t n)
{
	const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *a;
	size_t off = sizeof(*e);

	out[0] = 0;
	if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
		return;
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
		off += e->msg.nlmsg_len - sizeof(struct nlmsghdr);
	if (off > mnl_nlmsg_get_payload_len(nlh))
		return;
	mnl_attr_for_each(a, nlh, off)
	{
		if (mnl_attr_get_type(a) == NLMSGERR_ATTR_MSG &&
		    mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0) {
			snprintf(out, n, "%s", mnl_attr_get_str(a));
			/* The kernel's sentences end with a period; ours add context. */
			size_t l = strlen(out);
			if (l && out[l - 1] == '.')
				out[l - 1] = 0;
			return;
		}
	}
}

static int set_kernel_err(na_err_t *err, int errnum, const char *ext, const char *what)
{
	if (ext && *ext)
		return na_err_set(err, 500, "netlink_error", NULL, "%s: %s (kernel: %s)", what,
				  strerror(errnum), ext);
	return na_err_set(err, 500, "netlink_error", NULL, "%s: %s", what, strerror(errnum));
}

/* One terminal reply per request: an ACK/error, or NLMSG_DONE for a dump. */
struct rx {
	uint32_t seq0;
	size_t count, done;
	mnl_cb_t cb;
	void *data;
	int ignore_errno;
	bool intr, cb_failed;
	/* failures */
	size_t nfailed, first_idx;
	int first_errno;
	char ext[256];
};

static void rx_fail(struct rx *rx, size_t idx, int errnum, const struct nlmsghdr *nlh)
{
	if (errnum == rx->ignore_errno)
		return;
	if (rx->nfailed++ == 0) {
		rx->first_idx = idx;
		rx->first_errno = errnum;
		if (nlh)
			extack_msg(nlh, rx->ext, sizeof(rx->ext));
	}
}

static int rx_run(na_nl_t *nl, struct rx *rx, na_err_t *err)
{
	while (rx->done < rx->count) {
		ssize_t len = recv(nl->fd, nl->rbuf, RBUF_SIZE, 0);
		if (len < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ENOBUFS)
				return na_err_set(err, 500, "netlink_error", NULL,
						  "netlink replies lost (receive buffer overrun)");
			return na_err_errno(err, errno, "netlink receive");
		}
		int left = (int)len;
		for (const struct nlmsghdr *nlh = (void *)nl->rbuf; mnl_nlmsg_ok(nlh, left);
		     nlh = mnl_nlmsg_next(nlh, &left)) {
			size_t idx = nlh->nlmsg_seq - rx->seq0;
			/* Leftovers of an earlier request that failed locally. */
			if (nlh->nlmsg_pid != nl->portid || idx >= rx->count)
				continue;
			if (nlh->nlmsg_flags & NLM_F_DUMP_INTR)
				rx->intr = true;
			switch (nlh->nlmsg_type) {
			case NLMSG_NOOP:
			case NLMSG_OVERRUN:
				break;
			case NLMSG_ERROR: {
				const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
				if (mnl_nlmsg_get_payload_len(nlh) < sizeof(*e))
					rx_fail(rx, idx, EBADMSG, NULL);
				else if (e->error)
					rx_fail(rx, idx, -e->error, nlh);
				rx->done++;
				break;
			}
			case NLMSG_DONE: {
				if (mnl_nlmsg_get_payload_len(nlh) >= sizeof(int)) {
					int e = *(const int *)mnl_nlmsg_get_payload(nlh);
					if (e)
						rx_fail(rx, idx, -e, nlh);
				}
				rx->done++;
				break;
			}
			default:
				if (rx->cb && !rx->cb_failed &&
				    rx->cb(nlh, rx->data) == MNL_CB_ERROR)
					rx->cb_failed = true;
			}
		}
	}
	return 0;
}

static int send_all(na_nl_t *nl, const void *buf, size_t len, na_err_t *err)
{
	for (;;) {
		ssize_t n = mnl_socket_sendto(nl->sock, buf, len);
		if (n == (ssize_t)len)
			return 0;
		if (n < 0 && errno == EINTR)
			continue;
		return na_err_errno(err, n < 0 ? errno : EIO, "netlink send");
	}
}

int na_nl_call(na_nl_t *nl, struct nlmsghdr *nlh, mnl_cb_t cb, void *data, na_err_t *err,
	       const char *fmt, ...)
{
	struct rx rx = {.seq0 = nlh->nlmsg_seq, .count = 1, .cb = cb, .data = data};
	char what[256];
	va_list ap;
	int rc;

	rc = send_all(nl, nlh, nlh->nlmsg_len, err);
	if (rc == 0)
		rc = rx_run(nl, &rx, err);
	if (rc == 0 && !rx.nfailed && !rx.intr && !rx.cb_failed)
		return 0;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (rc < 0) {
		na_err_prefix(err, "%s", what);
		return -EIO;
	}
	if (rx.nfailed)
		return set_kernel_err(err, rx.first_errno, rx.ext, what), -rx.first_errno;
	if (rx.cb_failed)
		return na_err_set(err, 500, "netlink_error", NULL, "%s: unexpected reply", what),
		       -EBADMSG;
	na_err_set(err, 500, "netlink_error", NULL, "%s: dump interrupted by a change", what);
	return -EAGAIN;
}

/* The last request's length is known only once its attributes are in. */
static void batch_commit(na_nl_t *nl)
{
	if (nl->bcount && nl->blast == nl->blen) {
		const struct nlmsghdr *last = (const void *)(nl->bbuf + nl->blast);
		nl->blen += NLMSG_ALIGN(last->nlmsg_len);
	}
}

struct nlmsghdr *na_nl_batch_add(na_nl_t *nl, uint16_t type, uint16_t flags, const void *hdr,
				 size_t hdrlen)
{
	batch_commit(nl);
	/* Room for this request at its largest, so mnl_attr_put stays inside. */
	if (nl->bcap - nl->blen < NA_NL_MSG_MAX) {
		size_t cap = nl->bcap ? nl->bcap * 2 : 64 * 1024;
		char *p = realloc(nl->bbuf, cap);
		if (!p)
			abort(); /* as any allocation failure in a worker: no sane recovery */
		nl->bbuf = p;
		nl->bcap = cap;
	}
	if (nl->bcount == 0)
		nl->bseq0 = nl->seq + 1;
	memset(nl->bbuf + nl->blen, 0, NA_NL_MSG_MAX);
	nl->bcount++;
	nl->blast = nl->blen;
	return put_req(nl->bbuf + nl->blen, ++nl->seq, type, flags, hdr, hdrlen);
}

size_t na_nl_batch_len(const na_nl_t *nl)
{
	return nl->bcount;
}

static void batch_reset(na_nl_t *nl)
{
	nl->blen = nl->bcount = nl->blast = 0;
}

int na_nl_batch_send(na_nl_t *nl, int ignore_errno, na_nl_describe_fn describe, void *ud,
		     size_t *nfailed, na_err_t *err)
{
	struct rx rx = {.seq0 = nl->bseq0, .ignore_errno = ignore_errno};
	size_t off = 0, sent = 0;
	int rc = 0;

	batch_commit(nl);
	if (nfailed)
		*nfailed = 0;
	while (sent < nl->bcount && rc == 0) {
		/* A window: as many requests as the receive buffer holds ACKs
		 * for, in one sendmsg; the kernel answers all of them before
		 * the send returns. */
		size_t start = off, n = 0;
		while (sent + n < nl->bcount && n < nl->window) {
			const struct nlmsghdr *h = (const void *)(nl->bbuf + off);
			size_t l = NLMSG_ALIGN(h->nlmsg_len);
			if (n && off + l - start > nl->sndmax)
				break;
			off += l;
			n++;
		}
		rc = send_all(nl, nl->bbuf + start, off - start, err);
		if (rc == 0) {
			rx.count += n;
			rc = rx_run(nl, &rx, err);
		}
		sent += n;
	}
	batch_reset(nl);
	if (rc < 0) {
		na_err_prefix(err, "netlink batch of %zu", sent);
		return -EIO;
	}
	if (nfailed)
		*nfailed = rx.nfailed;
	if (!rx.nfailed)
		return 0;
	char what[256] = "netlink request";
	if (describe)
		describe(ud, rx.first_idx, what, sizeof(what));
	set_kernel_err(err, rx.first_errno, rx.ext, what);
	if (rx.nfailed > 1)
		na_err_prefix(err, "%zu of %zu requests failed, first", rx.nfailed, sent);
	return -rx.first_errno;
}

static void parse_attrs(const struct nlattr *a, size_t len, const struct nlattr **tb, int max)
{
	memset(tb, 0, sizeof(*tb) * (size_t)(max + 1));
	while (mnl_attr_ok(a, (int)len)) {
		int t = mnl_attr_get_type(a);
		if (t <= max)
			tb[t] = a;
		size_t step = MNL_ALIGN(a->nla_len);
		if (step > len)
			break;
		len -= step;
		a = (const void *)((const char *)a + step);
	}
}

void na_nl_parse(const struct nlmsghdr *nlh, size_t hdrlen, const struct nlattr **tb, int max)
{
	size_t plen = mnl_nlmsg_get_payload_len(nlh);
	size_t off = MNL_ALIGN(hdrlen);

	if (off > plen) {
		memset(tb, 0, sizeof(*tb) * (size_t)(max + 1));
		return;
	}
	parse_attrs(mnl_nlmsg_get_payload_offset(nlh, hdrlen), plen - off, tb, max);
}

void na_nl_parse_nested(const struct nlattr *nest, const struct nlattr **tb, int max)
{
	parse_attrs(mnl_attr_get_payload(nest), mnl_attr_get_payload_len(nest), tb, max);
}
