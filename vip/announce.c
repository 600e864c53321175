/* Announcing a VIP on its new holder: gratuitous ARP in both forms (some
 * clients only act on one) and, for IPv6, an unsolicited neighbour
 * advertisement with the Override flag — the kernel sends neither by itself
 * (adding an address announces nothing, ndisc_notify skips nodad
 * addresses, arp_notify only fires on link changes). Worker threads only:
 * the sockets belong to the namespace of the calling thread. */
#include "netagent/util.h"
#include "vip/vip_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

struct arp_pkt {
	struct arphdr h;
	uint8_t sha[ETH_ALEN];
	uint8_t spa[4];
	uint8_t tha[ETH_ALEN];
	uint8_t tpa[4];
} __attribute__((packed));

static int get_mac(int fd, const char *ifname, uint8_t mac[ETH_ALEN], na_err_t *err)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0)
		return na_err_errno(err, errno, "hardware address of %s", ifname);
	if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER)
		return na_err_set(err, 422, "not_ethernet", NULL,
				  "%s is not an Ethernet interface: nothing to announce", ifname);
	memcpy(mac, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
	return 0;
}

/* Request form (op 1, target MAC zero) and reply form (op 2, target MAC =
 * our own, as arping -A), both broadcast: a client with an entry for the
 * VIP moves it to our MAC on either (arp_accept=0 updates existing ones). */
static int send_garp(int ifindex, const char *ifname, const na_addr_t *a, na_err_t *err)
{
	cleanup_close int fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ARP));
	struct sockaddr_ll ll = {.sll_family = AF_PACKET,
				 .sll_protocol = htons(ETH_P_ARP),
				 .sll_ifindex = ifindex,
				 .sll_halen = ETH_ALEN};
	struct arp_pkt p;
	uint8_t mac[ETH_ALEN];

	if (fd < 0)
		return na_err_errno(err, errno, "ARP socket");
	if (get_mac(fd, ifname, mac, err) < 0)
		return -1;
	memset(ll.sll_addr, 0xff, ETH_ALEN);
	memset(&p, 0, sizeof(p));
	p.h.ar_hrd = htons(ARPHRD_ETHER);
	p.h.ar_pro = htons(ETH_P_IP);
	p.h.ar_hln = ETH_ALEN;
	p.h.ar_pln = 4;
	memcpy(p.sha, mac, ETH_ALEN);
	memcpy(p.spa, a->u.b, 4);
	memcpy(p.tpa, a->u.b, 4);
	for (int form = 0; form < 2; form++) {
		p.h.ar_op = htons(form ? ARPOP_REPLY : ARPOP_REQUEST);
		if (form)
			memcpy(p.tha, mac, ETH_ALEN);
		if (sendto(fd, &p, sizeof(p), 0, (struct sockaddr *)&ll, sizeof(ll)) < 0)
			return na_err_errno(err, errno, "send gratuitous ARP on %s", ifname);
	}
	return 0;
}

/* RFC 4861 7.2.6: to all-nodes, hop limit 255 (receivers drop anything
 * else), Override set so existing entries move to us, target link-layer
 * option with our MAC. The kernel fills the ICMPv6 checksum. */
static int send_na(int ifindex, const char *ifname, const na_addr_t *a, na_err_t *err)
{
	cleanup_close int fd = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMPV6);
	struct {
		struct nd_neighbor_advert na;
		struct nd_opt_hdr opt;
		uint8_t mac[ETH_ALEN];
	} __attribute__((packed)) m;
	struct sockaddr_in6 dst = {.sin6_family = AF_INET6, .sin6_scope_id = (uint32_t)ifindex};
	int hops = 255, ifi = ifindex;

	if (fd < 0)
		return na_err_errno(err, errno, "ICMPv6 socket");
	if (get_mac(fd, ifname, m.mac, err) < 0)
		return -1;
	if (setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof(hops)) < 0 ||
	    setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifi, sizeof(ifi)) < 0)
		return na_err_errno(err, errno, "ICMPv6 socket options");
	memset(&m.na, 0, sizeof(m.na));
	m.na.nd_na_type = ND_NEIGHBOR_ADVERT;
	m.na.nd_na_flags_reserved = ND_NA_FLAG_OVERRIDE;
	memcpy(&m.na.nd_na_target, a->u.b, 16);
	m.opt.nd_opt_type = ND_OPT_TARGET_LINKADDR;
	m.opt.nd_opt_len = 1; /* units of 8 bytes: header + MAC */
	inet_pton(AF_INET6, "ff02::1", &dst.sin6_addr);
	if (sendto(fd, &m, sizeof(m), 0, (struct sockaddr *)&dst, sizeof(dst)) < 0)
		return na_err_errno(err, errno, "send neighbour advertisement on %s", ifname);
	return 0;
}

int vip_announce_send(int ifindex, const char *ifname, const na_addr_t *a, na_err_t *err)
{
	return a->family == AF_INET ? send_garp(ifindex, ifname, a, err)
				    : send_na(ifindex, ifname, a, err);
}
