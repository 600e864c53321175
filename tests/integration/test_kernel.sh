#!/usr/bin/env bash
# Kernel layer of the overlay (vxlan/kernel.h, netagent/nl.h, nsworker) on two
# simulated hosts: namespaces hostA/hostB joined by a veth "wire" with
# underlay addresses 192.0.2.1/.2, endpoint namespaces playing containers.
# kernel_test (built here) runs every operation from inside a host namespace;
# this script checks the datapath with ping/tcpdump/ip. Prints TAP.
#
#   tests/integration/test_kernel.sh           functional checks
#   tests/integration/test_kernel.sh --bench   timings (200 networks x 2
#                                              endpoints, 5000 remotes vs
#                                              bridge/ip -batch)
set -u
cd "$(dirname "$0")/../.."

if [ "$(id -u)" != 0 ]; then
	echo "Bail out! needs root"
	exit 1
fi
for t in ip nsenter ping tcpdump ss bridge pkg-config cc; do
	command -v $t >/dev/null || { echo "Bail out! missing $t (make deps installs it)"; exit 1; }
done

MODE=${1:-test}
P=kt$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
RUN=/run/netagent-test-$P
TMP=$(mktemp -d /tmp/netagent-kt.XXXXXX)
BIN=$TMP/kernel_test
LOG=$TMP/log
NUM=0
FAILS=0

cleanup() {
	local f ns
	if [ -d "$RUN/netns" ]; then
		for f in "$RUN"/netns/*; do
			[ -e "$f" ] || continue
			umount -l "$f" 2>/dev/null
			rm -f "$f"
		done
		umount -l "$RUN/netns" 2>/dev/null
	fi
	rm -rf "$RUN"
	for ns in $(ip netns list | awk '{print $1}' | grep "^$P-"); do
		ip netns del "$ns"
	done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ok() { NUM=$((NUM + 1)); echo "ok $NUM - $*"; }
nok() {
	NUM=$((NUM + 1)); FAILS=$((FAILS + 1)); echo "not ok $NUM - $*"
	[ -s "$LOG" ] && sed 's/^/# /' "$LOG" | tail -n 5
}
# check DESC CMD...: ok when CMD succeeds (its output goes to $LOG).
check() { local d=$1; shift; if "$@" >"$LOG" 2>&1; then ok "$d"; else nok "$d"; fi; }
# fails DESC CMD...: ok when CMD fails.
fails() { local d=$1; shift; if "$@" >"$LOG" 2>&1; then nok "$d"; else ok "$d"; fi; }
# Renumbers the unnumbered TAP lines of kernel_test.
tapin() {
	local l
	while IFS= read -r l; do
		case $l in
		"ok - "*) ok "${l#ok - }" ;;
		"not ok - "*) nok "${l#not ok - }" ;;
		*) echo "# $l" ;;
		esac
	done
}
finish() {
	echo "1..$NUM"
	[ "$FAILS" = 0 ]
	exit $?
}

# ---- build kernel_test with the Makefile's flags ----
PKGS="libuv jansson libmnl"
if ! cc -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -I. $(pkg-config --cflags $PKGS) \
	${CFLAGS:--O2 -g} -o "$BIN" tests/integration/kernel_test.c \
	netagent/err.c netagent/log.c netagent/validate.c netagent/nl.c netagent/netns.c netagent/underlay.c \
	netagent/nsworker.c vxlan/kernel_*.c $(pkg-config --libs $PKGS) -lpthread >"$LOG" 2>&1; then
	nok "kernel_test builds"
	finish
fi
ok "kernel_test builds"

# ---- two hosts on a wire ----
HA=$P-hA
HB=$P-hB
ip netns add $HA && ip netns add $HB &&
	ip -n $HA link add eth0 type veth peer name eth0 netns $HB &&
	ip -n $HA addr add 192.0.2.1/24 dev eth0 && ip -n $HB addr add 192.0.2.2/24 dev eth0 &&
	ip -n $HA link set eth0 up && ip -n $HB link set eth0 up &&
	ip -n $HA link set lo up && ip -n $HB link set lo up &&
	ip -n $HA route add default via 192.0.2.254 && ip -n $HB route add default via 192.0.2.254 ||
	{ nok "set up simulated hosts"; finish; }

KA() { "$BIN" --host /run/netns/$HA --run-dir "$RUN" --name $P-A "$@"; }
KB() { "$BIN" --host /run/netns/$HB --run-dir "$RUN" --name $P-B "$@"; }
NA() { local n=$1; shift; nsenter --net="$RUN/netns/$P-A-$n" "$@"; }
NB() { local n=$1; shift; nsenter --net="$RUN/netns/$P-B-$n" "$@"; }
in_ns() { local n=$1; shift; ip netns exec "$P-$n" "$@"; }
ping1() { in_ns "$1" ping -c1 -W1 "${@:2}"; }
# expect OUTPUT PATTERN: grep -E on a command's output.
expect() { local out=$1 pat=$2; grep -qE -- "$pat" <<<"$out"; }

if [ "$MODE" = "--bench" ]; then
	ok "simulated hosts up"
	echo "# sequential, from one thread:"
	KA bench 200 2 5000 0 | sed 's/^/# /'
	rc1=${PIPESTATUS[0]}
	echo "# through nsworker (4 threads, key = network):"
	KA bench 200 2 5000 4 | sed 's/^/# /'
	rc2=${PIPESTATUS[0]}
	[ $rc1 = 0 ] && [ $rc2 = 0 ] && ok "bench runs" || nok "bench runs"

	# 5000 remotes: kernel_test (whole process) vs bridge -batch + ip -batch.
	KA net-create cmp 4000 >/dev/null && KA net-create cmp2 4001 >/dev/null
	: >"$TMP/remotes"; : >"$TMP/fdb.batch"; : >"$TMP/neigh.batch"
	for i in $(seq 0 4999); do
		a=$((i / 250)); b=$((i % 250 + 1))
		mac=$(printf '02:84:c6:13:%02x:%02x' $a $b)
		echo "198.19.$a.$b $mac 203.0.113.$((i % 250 + 1))" >>"$TMP/remotes"
		echo "fdb replace $mac dev vxlan0 dst 203.0.113.$((i % 250 + 1)) self permanent" >>"$TMP/fdb.batch"
		echo "neigh replace 198.19.$a.$b lladdr $mac dev vxlan0 nud permanent" >>"$TMP/neigh.batch"
	done
	t0=$(date +%s%N)
	NA cmp2 bridge -batch "$TMP/fdb.batch" && NA cmp2 ip -batch "$TMP/neigh.batch"
	t1=$(date +%s%N)
	KA remote-set-file cmp "$TMP/remotes" | sed 's/^/# kernel_test: /'
	t2=$(date +%s%N)
	echo "# 5000 remotes: bridge -batch + ip -batch $(((t1 - t0) / 1000000)) ms;" \
		"kernel_test process (incl. start-up) $(((t2 - t1) / 1000000)) ms"
	nf=$(NA cmp bridge fdb show dev vxlan0 | grep -c 'dst 203.0.113')
	nn=$(NA cmp ip neigh show dev vxlan0 | grep -c PERMANENT)
	[ "$nf" = 5000 ] && [ "$nn" = 5000 ] && ok "5000 fdb + 5000 neighbour entries programmed" ||
		nok "5000 fdb + 5000 neighbour entries programmed ($nf, $nn)"
	[ $((t2 - t1)) -lt $((t1 - t0)) ] && ok "faster than bridge -batch + ip -batch" ||
		nok "faster than bridge -batch + ip -batch"
	KA net-delete cmp >/dev/null; KA net-delete cmp2 >/dev/null
	finish
fi

# ---- in-process checks: nsworker, namespace helpers, underlay ----
tapin < <(KA selftest 2>&1)

out=$(KA underlay)
check "underlay is the default route's eth0 192.0.2.1 mtu 1500: $out" \
	expect "$out" '^eth0 [0-9]+ 192\.0\.2\.1 1500$'

# ---- network n1 (VNI 100) on both hosts ----
check "create n1 on hostA" expect "$(KA net-create n1 100 2>&1)" '^changed=1$'
check "create n1 on hostB" expect "$(KB net-create n1 100 2>&1)" '^changed=1$'
before=$(KA net-dump n1)
check "create n1 again changes nothing" expect "$(KA net-create n1 100 2>&1)" '^changed=0$'
check "... and the links are untouched (same ifindexes and flags)" \
	test "$before" = "$(KA net-dump n1)"
vx=$(NA n1 ip -d link show vxlan0)
check "vxlan0: VNI 100, local 192.0.2.1, port 4789, nolearning, proxy" \
	expect "$(tr '\n' ' ' <<<"$vx")" 'vxlan id 100 local 192\.0\.2\.1 .*dstport 4789 nolearning proxy'
check "vxlan0: MTU 1450, enslaved to br0, up" \
	expect "$vx" 'mtu 1450 .*master br0 state UNKNOWN'
check "vxlan0 bridge port: learning off, neigh_suppress on" \
	expect "$(tr '\n' ' ' <<<"$vx")" 'bridge_slave .* learning off .* neigh_suppress on'
check "br0 MTU 1450 and up, lo up" \
	expect "$(NA n1 ip link show br0; NA n1 ip link show lo)" 'br0: <[^>]*,UP,.*mtu 1450'
check "the VXLAN socket is on the underlay (hostA listens on UDP 4789)" \
	expect "$(ip netns exec $HA ss -Hnul)" ':4789 '
check "no VXLAN socket inside the network namespace" \
	test -z "$(NA n1 ss -Hnul)"
check "nothing of ours left in hostA's namespace (only lo, eth0)" \
	test "$(ip -n $HA -o link show | awk -F': ' '{print $2}' | tr '\n' ' ')" = "lo eth0@if2 "

# ---- endpoints ----
for e in a1 a3 b1 a2 b2; do ip netns add $P-$e; done
check "attach e1 (hostA) 198.18.1.11/24" expect "$(KA ep-attach n1 e1 /run/netns/$P-a1 198.18.1.11/24 2>&1)" '^changed=1$'
check "attach e2 (hostB) 198.18.1.12/24" expect "$(KB ep-attach n1 e2 /run/netns/$P-b1 198.18.1.12/24 2>&1)" '^changed=1$'
check "attach e3 (hostA) 198.18.1.13/24, given MAC" \
	expect "$(KA ep-attach n1 e3 /run/netns/$P-a3 198.18.1.13/24 02:84:c6:12:01:0d 2>&1)" '^changed=1$'
check "attach e1 again changes nothing" expect "$(KA ep-attach n1 e1 /run/netns/$P-a1 198.18.1.11/24 2>&1)" '^changed=0$'
e1=$(ip -n $P-a1 addr show eth0)
check "e1: eth0 up, MTU 1450, MAC 02:84:c6:12:01:0b derived from the IP, 198.18.1.11/24" \
	expect "$(tr '\n' ' ' <<<"$e1")" 'eth0@.*UP.*mtu 1450 .*link/ether 02:84:c6:12:01:0b .*inet 198\.18\.1\.11/24'
check "e1: connected route for 198.18.1.0/24" \
	expect "$(ip -n $P-a1 route)" '^198\.18\.1\.0/24 dev eth0 proto kernel'
check "e1: host side in n1 enslaved to br0, up, MTU 1450" \
	expect "$(NA n1 ip -o link show master br0 type veth)" 'mtu 1450 .*master br0 state UP'
fails "attach a second endpoint as eth0 into e1's namespace is refused" \
	KA ep-attach n1 e9 /run/netns/$P-a1 198.18.1.19/24
check "... with 409 conflict" expect "$(cat "$LOG")" '409 conflict'
fails "attach into a missing namespace fails" KA ep-attach n1 e9 /run/netns/$P-nope 198.18.1.19/24

# ---- remote endpoints, datapath ----
check "program remote e2 on hostA" KA remote-set n1 198.18.1.12 02:84:c6:12:01:0c 192.0.2.2
printf '198.18.1.11 02:84:c6:12:01:0b 192.0.2.1\n198.18.1.13 02:84:c6:12:01:0d 192.0.2.1\n' >"$TMP/rB"
check "program remotes e1, e3 on hostB (batch)" KB remote-set-file n1 "$TMP/rB"
check "fdb entry on hostA's vxlan0: permanent, dst 192.0.2.2" \
	expect "$(NA n1 bridge fdb show dev vxlan0)" '^02:84:c6:12:01:0c dst 192\.0\.2\.2 .*self permanent'
check "neighbour entry on hostA's vxlan0: permanent" \
	expect "$(NA n1 ip neigh show dev vxlan0)" '^198\.18\.1\.12 lladdr 02:84:c6:12:01:0c PERMANENT'
check "ping across hosts e1 -> e2" ping1 a1 198.18.1.12
check "ping across hosts e2 -> e3" ping1 b1 198.18.1.13
check "ping on the same host e1 -> e3" ping1 a1 198.18.1.13
check "DF ping of MTU-28 bytes passes" ping1 a1 -M do -s 1422 198.18.1.12
fails "DF ping of MTU-27 bytes fails" ping1 a1 -M do -s 1423 198.18.1.12

ip -n $P-a1 neigh flush all; ip -n $P-b1 neigh flush all
ip netns exec $HA tcpdump -i eth0 -nn -U --immediate-mode -w "$TMP/cap" udp port 4789 2>"$TMP/tcpdump.err" &
tcpd=$!
for i in $(seq 50); do grep -q listening "$TMP/tcpdump.err" && break; sleep 0.1; done
ping1 a1 -c3 -i 0.2 198.18.1.12 >/dev/null
sleep 0.3
kill -INT $tcpd; wait $tcpd 2>/dev/null
cap=$(tcpdump -r "$TMP/cap" -nn 2>/dev/null)
check "ARP is answered on the host: ICMP crosses the underlay, ARP does not" \
	eval 'echo "$cap"; expect "$cap" "ICMP echo request" && ! expect "$cap" "ARP"'
check "e1 learned e2's MAC from the proxy" \
	expect "$(ip -n $P-a1 neigh show 198.18.1.12)" 'lladdr 02:84:c6:12:01:0c'

# ---- isolation: n2, same subnet, VNI 200, MTU 1400 ----
KA --mtu 1400 net-create n2 200 >/dev/null && KB --mtu 1400 net-create n2 200 >/dev/null &&
	KA --mtu 1400 ep-attach n2 f1 /run/netns/$P-a2 198.18.1.21/24 >/dev/null &&
	KB --mtu 1400 ep-attach n2 f2 /run/netns/$P-b2 198.18.1.22/24 >/dev/null &&
	KA remote-set n2 198.18.1.22 02:84:c6:12:01:16 192.0.2.2 &&
	KB remote-set n2 198.18.1.21 02:84:c6:12:01:15 192.0.2.1
check "n2 (same subnet, VNI 200) set up on both hosts" test $? = 0
check "ping inside n2 across hosts" ping1 a2 198.18.1.22
check "n2 with MTU 1400: vxlan0, br0, both veth ends" \
	test "$(NA n2 ip -o link show | grep -c 'mtu 1400')$(ip -n $P-a2 -o link show eth0 | grep -c 'mtu 1400')" = 31
check "n2: DF ping of 1372 bytes passes" ping1 a2 -M do -s 1372 198.18.1.22
fails "n2: DF ping of 1373 bytes fails" ping1 a2 -M do -s 1373 198.18.1.22
fails "n2 cannot reach n1's remote endpoint" ping1 a2 198.18.1.12
fails "n1 cannot reach n2's remote endpoint" ping1 a1 198.18.1.22
ip -n $P-a2 neigh replace 198.18.1.12 lladdr 02:84:c6:12:01:0c dev eth0
fails "n2 cannot reach n1 even with n1's MAC forced (no FDB entry: no flooding)" \
	ping1 a2 198.18.1.12
fails "n2 cannot reach n1's local endpoint either" ping1 a2 198.18.1.13

# ---- errors ----
fails "a second network with VNI 100 is refused" KA net-create n3 100
check "... 409 vni_in_use with the kernel's reason" \
	expect "$(cat "$LOG")" '409 vni_in_use: .*File exists \(kernel: .*VNI'
check "... and leaves no namespace behind" test ! -e "$RUN/netns/$P-A-n3"
fails "an MTU above underlay - 50 is refused" KA net-create n3 300 1451
check "... 422 with the reason" expect "$(cat "$LOG")" '422 invalid_field: MTU 1451 out of range 68..1450'
fails "a remote with an all-zero MAC (flood default) is refused" \
	KA remote-set n1 198.18.1.99 00:00:00:00:00:00 192.0.2.2
fails "changing n1's VNI is refused" KA net-create n1 101
check "... 409 conflict" expect "$(cat "$LOG")" '409 conflict'

# ---- repairs (reconcile path) ----
NA n1 ip link del br0
check "br0 deleted: create repairs (changed=1)" expect "$(KA net-create n1 100 2>&1)" '^changed=1$'
check "... vxlan0 back in the new br0" expect "$(NA n1 ip -o link show vxlan0)" 'master br0'
check "... endpoint attach re-enslaves e1 (changed=1)" \
	expect "$(KA ep-attach n1 e1 /run/netns/$P-a1 198.18.1.11/24 2>&1)" '^changed=1$'
KA ep-attach n1 e3 /run/netns/$P-a3 198.18.1.13/24 02:84:c6:12:01:0d >/dev/null
check "... ping works again" ping1 a1 198.18.1.12
NA n1 ip link del vxlan0
check "vxlan0 deleted: create repairs" expect "$(KA net-create n1 100 2>&1)" '^changed=1$'
check "... remotes reprogrammed" KA remote-set n1 198.18.1.12 02:84:c6:12:01:0c 192.0.2.2
check "... ping works again" ping1 a1 198.18.1.12
NA n1 ip link set vxlan0 mtu 1400
NA n1 ip link set vxlan0 type bridge_slave learning on neigh_suppress off
check "vxlan0 MTU and port flags drifted: create repairs" \
	expect "$(KA net-create n1 100 2>&1)" '^changed=1$'
check "... MTU 1450, learning off, neigh_suppress on" \
	expect "$(NA n1 ip -d link show vxlan0 | tr '\n' ' ')" 'mtu 1450 .*learning off .*neigh_suppress on'
ip -n $P-a1 addr flush dev eth0
ip -n $P-a1 link set eth0 down
check "e1 address and link state drifted: attach repairs" \
	expect "$(KA ep-attach n1 e1 /run/netns/$P-a1 198.18.1.11/24 2>&1)" '^changed=1$'
check "... ping works again" ping1 a1 198.18.1.12
NA n1 bridge fdb del 02:84:c6:12:01:0c dev vxlan0 self
fails "fdb entry deleted: ping fails" ping1 a1 198.18.1.12
check "... remote set repairs it" KA remote-set n1 198.18.1.12 02:84:c6:12:01:0c 192.0.2.2
check "... ping works again" ping1 a1 198.18.1.12
ip netns del $P-a3
ip netns add $P-a3
check "e3's namespace replaced: attach rebuilds the pair" \
	expect "$(KA ep-attach n1 e3 /run/netns/$P-a3 198.18.1.13/24 02:84:c6:12:01:0d 2>&1)" '^changed=1$'
check "... ping e1 -> e3 works" ping1 a1 198.18.1.13
touch "$RUN/netns/$P-A-n4"
check "a stale namespace file is reused" expect "$(KA net-create n4 400 2>&1)" '^changed=1$'
check "... and is a namespace now" expect "$(NA n4 ip -o link show vxlan0)" 'vxlan0'
out=$(KA net-dump n1)
check "dump shows links, fdb and neighbours of n1" \
	eval 'expect "$out" "^link vxlan0 .* vni 100 port 4789 local 192.0.2.1 .* learning 0 proxy 1 brport learning 0 neigh_suppress 1" &&
	      expect "$out" "^fdb 02:84:c6:12:01:0c dst 192.0.2.2" && expect "$out" "^neigh 198.18.1.12 lladdr 02:84:c6:12:01:0c"'

# ---- removal ----
check "remote del removes fdb and neighbour" KA remote-del n1 198.18.1.12 02:84:c6:12:01:0c
check "... both gone" test -z "$(NA n1 bridge fdb show dev vxlan0 | grep 02:84:c6:12:01:0c; NA n1 ip neigh show dev vxlan0)"
check "remote del again is fine" KA remote-del n1 198.18.1.12 02:84:c6:12:01:0c
check "detach e1" expect "$(KA ep-detach n1 e1 2>&1)" '^changed=1$'
check "... e1's eth0 is gone" test -z "$(ip -n $P-a1 -o link show | grep eth0)"
check "detach e1 again changes nothing" expect "$(KA ep-detach n1 e1 2>&1)" '^changed=0$'
NA n1 ip link add stray0 type veth peer name stray1
for n in n1 n2 n4; do KA net-delete $n >"$LOG" 2>&1 || nok "delete $n on hostA"; done
for n in n1 n2; do KB net-delete $n >"$LOG" 2>&1 || nok "delete $n on hostB"; done
check "delete again changes nothing" expect "$(KA net-delete n1 2>&1)" '^changed=0$'
check "networks deleted, a device not made by us (stray0) included" test -z "$(ls -A "$RUN/netns")"
check "hostA and hostB have only lo and eth0" \
	test "$(ip -n $HA -o link show | wc -l)$(ip -n $HB -o link show | wc -l)" = 22
check "no VXLAN socket left on the underlay (VNIs released at once)" \
	test -z "$(ip netns exec $HA ss -Hnul; ip netns exec $HB ss -Hnul)"
check "endpoints' interfaces are gone" \
	test -z "$(for e in a2 a3 b1 b2; do ip -n $P-$e -o link show | grep eth0; done)"
check "VNI 100 can be reused right away" expect "$(KA net-create n5 100 2>&1)" '^changed=1$'
KA net-delete n5 >/dev/null
finish
