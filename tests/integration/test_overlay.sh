#!/usr/bin/env bash
# Overlay networks with controller-pushed remote endpoints (SPEC §2, §4, §5), real kernel objects:
# three simulated hosts, one agent each, no etcd. Networks na (VNI 101) and nb (VNI 102) use the
# SAME subnet and the SAME addresses (.11/.12/.13, nb with its own MACs). The test plays the
# controller: it pushes every host the other hosts' endpoints (bulk POST on h1, single PUTs on
# h2/h3). Checks: full mesh per network, isolation (same addresses, forced neighbours, captures
# in the target namespaces), no ARP on the fabric (pcap of the whole ping phase), MTU (default
# and explicit), drift repair within 5 s, zero loss across SIGTERM/kill -9 restarts without link
# recreation, idempotent PUTs (no kernel events), deletes, and IPAM.
. "$(dirname "$0")/../lib.sh"

for _c in bridge ping tcpdump; do command -v $_c >/dev/null || bail "$_c not found"; done
env --default-signal=INT true 2>/dev/null || bail "env --default-signal not supported (coreutils >= 8.31)"

SUB=198.18.1.0/24
mkhost h1
mkhost h2
mkhost h3
for i in 1 2 3; do
	start_agent h$i a$i || bail "agent a$i did not start"
done

J=(-H 'Content-Type: application/json')
ens() { echo "${NA_P}$1"; } # the test's endpoint ("container") namespaces
in_e() {
	local e=$1
	shift
	nsenter --net="/run/netns/$(ens "$e")" "$@"
}
nns() { echo "$(agent_dir "$1")/run/netns/$(agent_name "$1")-$2"; } # agent's network namespace
in_n() {
	local a=$1 n=$2
	shift 2
	nsenter --net="$(nns "$a" "$n")" "$@"
}
ifindex() { # NSPATH IFNAME
	# Not /sys/class/net: nsenter keeps the mount namespace, so sysfs shows the host's links.
	local i
	i=$(nsenter --net="$1" ip -o link show dev "$2" 2>/dev/null | cut -d: -f1)
	echo "${i:-none}"
}
insync() {
	api "$1" GET "/v1/networks/$2/inspect"
	[ "$HTTP_CODE" = 200 ] && [ "$(json_get in_sync "$HTTP_BODY")" = true ]
}
ping1() { in_e "$1" ping -c1 -W1 -q "$2" >/dev/null 2>&1; }
fdb_has() { # AGENT NET MAC [VTEP]: a permanent FDB entry for MAC (→ VTEP) on vxlan0
	in_n "$1" "$2" bridge fdb show dev vxlan0 | grep -i "^$3 " | grep -q "dst ${4:-[0-9.]*} .*permanent"
}
# req AGENT METHOD PATH BODY WANT DESC: one request, ok when the status is WANT.
req() {
	if [ -n "$4" ]; then api "$1" "$2" "$3" "${J[@]}" --data-binary "$4"; else api "$1" "$2" "$3"; fi
	if [ "$HTTP_CODE" = "$5" ]; then ok "$6"; else not_ok "$6" "$(last_req)"; return 1; fi
}

# ---- the desired world: endpoint → network, host, namespace, address, (nb: MAC)
declare -A EP_NET EP_HOST EP_NS EP_IP EP_MAC
ep_def() { EP_NET[$1]=$2 EP_HOST[$1]=$3 EP_NS[$1]=$4 EP_IP[$1]=$5 EP_MAC[$1]=${6:-}; }
ep_def a1 na 1 1a 198.18.1.11
ep_def a2 na 2 2a 198.18.1.12
ep_def a3 na 3 3a 198.18.1.13
ep_def b1 nb 1 1b 198.18.1.11 02:42:c6:12:02:0b
ep_def b2 nb 2 2b 198.18.1.12 02:42:c6:12:02:0c
ep_def b3 nb 3 3b 198.18.1.13 02:42:c6:12:02:0d
ep_def bx nb 2 2x 198.18.1.21 02:42:c6:12:02:15 # an address only nb has
EPS="a1 a2 a3 b1 b2 b3 bx"

bad=''
for i in 1 2 3; do
	for nv in na:101 nb:102; do
		api a$i PUT "/v1/networks/${nv%%:*}" "${J[@]}" --data-binary "{\"vni\":${nv##*:},\"subnet\":\"$SUB\"}"
		[ "$HTTP_CODE" = 201 ] || bad="$bad a$i/${nv%%:*}: $(last_req)"
	done
done
[ -z "$bad" ] || bail "creating networks failed:$bad"
ok "networks na (vni 101) and nb (vni 102), both $SUB, on 3 hosts"

bad=''
for e in $EPS; do
	ip netns add "$(ens "${EP_NS[$e]}")" || bail "ip netns add failed"
	ip -n "$(ens "${EP_NS[$e]}")" link set lo up
	body="{\"netns\":\"/run/netns/$(ens "${EP_NS[$e]}")\",\"ip\":\"${EP_IP[$e]}/24\""
	[ -n "${EP_MAC[$e]}" ] && body="$body,\"mac\":\"${EP_MAC[$e]}\""
	api a${EP_HOST[$e]} PUT "/v1/networks/${EP_NET[$e]}/endpoints/$e" "${J[@]}" --data-binary "$body}"
	if [ "$HTTP_CODE" != 201 ]; then
		bad="$bad $e: $(last_req)"
	elif [ -z "${EP_MAC[$e]}" ]; then
		EP_MAC[$e]=$(json_get mac "$HTTP_BODY")
	elif [ "$(json_get mac "$HTTP_BODY")" != "${EP_MAC[$e]}" ]; then
		bad="$bad $e: MAC not the given one: $HTTP_BODY"
	fi
done
[ -z "$bad" ] || bail "attaching endpoints failed:$bad"
ok "7 local endpoints attached (na .11-.13 derived MACs, nb .11-.13 + .21 given MACs)"
is "na's derived MAC for 198.18.1.11 is SAND's 02:84:c6:12:01:0b" "${EP_MAC[a1]}" 02:84:c6:12:01:0b

# ---- the controller pushes each host the other hosts' endpoints
remote_json() { # EP → {"ip","mac","vtep"} (+ "name" when $2 = named)
	local s
	s="\"ip\":\"${EP_IP[$1]}/24\",\"mac\":\"${EP_MAC[$1]}\",\"vtep\":\"$(host_ip "h${EP_HOST[$1]}")\""
	[ "${2:-}" = named ] && s="\"name\":\"$1\",$s"
	echo "{$s}"
}
bad=''
for net in na nb; do
	items=''
	for e in $EPS; do
		[ "${EP_NET[$e]}" = $net ] && [ "${EP_HOST[$e]}" != 1 ] && items="$items${items:+,}$(remote_json $e named)"
	done
	api a1 POST "/v1/networks/$net/remote-endpoints" "${J[@]}" --data-binary "{\"items\":[$items]}"
	[ "$HTTP_CODE" = 200 ] || bad="$bad bulk a1/$net: $(last_req)"
done
[ -z "$bad" ] && ok "bulk POST remote-endpoints on h1 (na: 2 items, nb: 3 items) → 200" || not_ok "bulk POST on h1" "$bad"
bad=''
for i in 2 3; do
	for e in $EPS; do
		[ "${EP_HOST[$e]}" = $i ] && continue
		api a$i PUT "/v1/networks/${EP_NET[$e]}/remote-endpoints/$e" "${J[@]}" --data-binary "$(remote_json $e)"
		[ "$HTTP_CODE" = 201 ] || bad="$bad a$i/$e: $(last_req)"
	done
done
[ -z "$bad" ] && ok "single PUT remote-endpoints on h2 and h3 → 201" || not_ok "single PUTs on h2/h3" "$bad"
api a1 GET /v1/networks/nb/endpoints
is "h1 lists nb: b1 local, b2 b3 bx from the controller" \
	"$(json_get items "$HTTP_BODY" | $PY -c 'import json,sys; print(" ".join("%s:%s:%s" % (e["name"], e["source"], e.get("vtep")) for e in json.load(sys.stdin)))')" \
	"b1:local:192.0.2.11 b2:controller:192.0.2.12 b3:controller:192.0.2.13 bx:controller:192.0.2.12"
check "h2's nb FDB: b3's MAC → 192.0.2.13 (permanent)" fdb_has a2 nb "${EP_MAC[b3]}" 192.0.2.13
for i in 1 2 3; do
	for net in na nb; do
		insync a$i $net || not_ok "a$i/$net in sync after setup" "$HTTP_BODY"
	done
done

# ---- capture the fabric for the whole ping phase
FAB_PCAP=$NA_TMP/fabric.pcap
nsenter --net="/run/netns/$NA_FAB" tcpdump -i any -nn -U --immediate-mode -w "$FAB_PCAP" 'udp port 4789 or arp' \
	2>"$NA_TMP/tcpdump-fab.err" &
FAB_TD=$!
track_pid $FAB_TD
wait_for 5 grep -q 'listening on' "$NA_TMP/tcpdump-fab.err" || bail "tcpdump on the fabric did not start: $(cat "$NA_TMP/tcpdump-fab.err")"
# Forget the underlay neighbours: the hosts ARP for each other's VTEPs on the fabric, which
# proves the capture would see an ARP if one crossed it.
for i in 1 2 3; do ip -n "$(hostns h$i)" neigh flush all 2>/dev/null; done

# ---- full mesh inside each network
mesh() { # EP… : every ordered pair pings; prints the failures
	local a b fail=''
	for a in "$@"; do
		for b in "$@"; do
			[ "$a" = "$b" ] && continue
			ping1 "${EP_NS[$a]}" "${EP_IP[$b]}" || fail="$fail $a->$b"
		done
	done
	echo "$fail"
}
f=$(mesh a1 a2 a3)
[ -z "$f" ] && ok "na: every endpoint pings every other across hosts (6 pairs)" || not_ok "na mesh" "failed:$f"
f=$(mesh b1 b2 b3 bx)
[ -z "$f" ] && ok "nb: every endpoint pings every other across hosts (12 pairs)" || not_ok "nb mesh" "failed:$f"

# ---- isolation: same addresses, different networks
neigh_mac() { ip -n "$(ens "$1")" neigh show "$2" dev eth0 | awk '{for (i = 1; i < NF; i++) if ($i == "lladdr") print $(i + 1)}'; }
is "na-h1 resolved 198.18.1.12 to na's a2 MAC (proxy ARP of its own network)" "$(neigh_mac 1a 198.18.1.12)" "${EP_MAC[a2]}"
is "nb-h1 resolved 198.18.1.12 to nb's b2 MAC" "$(neigh_mac 1b 198.18.1.12)" "${EP_MAC[b2]}"
if in_e 1a ping -c2 -W1 -q "${EP_IP[bx]}" >/dev/null 2>&1; then
	not_ok "na-h1 cannot reach nb-only address ${EP_IP[bx]}" "ping succeeded"
else
	ok "na-h1 cannot reach nb-only address ${EP_IP[bx]} (100% loss)"
fi
leak=''
for i in 1 2 3; do
	for b in b1 b2 b3 bx; do in_n a$i na bridge fdb show | grep -qi "^${EP_MAC[$b]} " && leak="$leak h$i/na:$b"; done
	for a in a1 a2 a3; do in_n a$i nb bridge fdb show | grep -qi "^${EP_MAC[$a]} " && leak="$leak h$i/nb:$a"; done
done
is "no MAC of one network in the other's FDB on any host" "$leak" ""

# Forced neighbours: na-h1 sends to nb-h2's MAC, nb-h3 to na-h1's MAC. Captures in the target
# namespaces show that nothing arrives, while the same capture sees nb's own traffic.
cap_start() { # NS FILE (nsenter execs tcpdump: $! is tcpdump itself)
	nsenter --net="/run/netns/$(ens "$1")" tcpdump -i eth0 -nn -U --immediate-mode -w "$2" 2>"$2.err" &
	CAP_PID=$!
	track_pid $CAP_PID
	wait_for 5 grep -q 'listening on' "$2.err"
}
cap_stop() {
	kill -TERM "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}
cap_count() { tcpdump -r "$1" -nn "$2" 2>/dev/null | grep -c .; }
cap_start 2b "$NA_TMP/b2.pcap" || not_ok "tcpdump in nb-h2's namespace started" "$(cat "$NA_TMP/b2.pcap.err")"
CAP_B2=$CAP_PID
cap_start 1a "$NA_TMP/a1.pcap" || not_ok "tcpdump in na-h1's namespace started" "$(cat "$NA_TMP/a1.pcap.err")"
CAP_A1=$CAP_PID
ip -n "$(ens 1a)" neigh replace 198.18.1.12 lladdr "${EP_MAC[b2]}" dev eth0 nud permanent
ip -n "$(ens 3b)" neigh replace 198.18.1.11 lladdr "${EP_MAC[a1]}" dev eth0 nud permanent
r1=0 r2=0
in_e 1a ping -c3 -i 0.2 -W1 -q 198.18.1.12 >/dev/null 2>&1 && r1=1
in_e 3b ping -c3 -i 0.2 -W1 -q 198.18.1.11 >/dev/null 2>&1 && r2=1
# Positive controls: nb's own traffic reaches nb-h2's capture, na's own na-h1's.
ping1 1b 198.18.1.12 || diag "control ping b1 → b2 failed: $(in_e 1b ping -c1 -W1 198.18.1.12 2>&1 | tail -n 3)"
ping1 1a 198.18.1.13 || diag "control ping a1 → a3 failed"
sleep 0.3
cap_stop $CAP_B2
cap_stop $CAP_A1
ip -n "$(ens 1a)" neigh del 198.18.1.12 dev eth0
ip -n "$(ens 3b)" neigh del 198.18.1.11 dev eth0
is "na-h1 with a forced neighbour 198.18.1.12 → nb-h2's MAC gets no reply" "$r1" 0
is "nb-h3 with a forced neighbour 198.18.1.11 → na-h1's MAC gets no reply" "$r2" 0
got="from-na:$(cap_count "$NA_TMP/b2.pcap" "ether src ${EP_MAC[a1]}") from-b1:$(cap_count "$NA_TMP/b2.pcap" "icmp and ether src ${EP_MAC[b1]}")"
like "nb-h2's eth0 saw no frame from na-h1, but nb-h1's echo (capture works)" "$got" '^from-na:0 from-b1:[1-9]'
got="from-nb:$(cap_count "$NA_TMP/a1.pcap" "ether src ${EP_MAC[b3]}") from-a3:$(cap_count "$NA_TMP/a1.pcap" "icmp and ether src ${EP_MAC[a3]}")"
like "na-h1's eth0 saw no frame from nb-h3, but a3's echo reply (capture works)" "$got" '^from-nb:0 from-a3:[1-9]'

# ---- no ARP on the fabric: neither encapsulated nor plain from overlay addresses
kill -TERM $FAB_TD 2>/dev/null
wait $FAB_TD 2>/dev/null
# UDP payload: VXLAN header (8) + inner Ethernet dst (6) src (6) type (2): type at udp[28:2].
n_icmp=$(cap_count "$FAB_PCAP" 'udp port 4789 and udp[28:2] = 0x0800 and udp[8+8+14+9] = 1')
n_arp_in=$(cap_count "$FAB_PCAP" 'udp port 4789 and udp[28:2] = 0x0806')
n_bcast_in=$(cap_count "$FAB_PCAP" 'udp port 4789 and udp[16:4] = 0xffffffff and udp[20:2] = 0xffff')
n_arp_ov=$(cap_count "$FAB_PCAP" 'arp and net 198.18.0.0/15')
n_arp_ul=$(cap_count "$FAB_PCAP" 'arp and net 192.0.2.0/24')
n_txt=$(tcpdump -r "$FAB_PCAP" -nn -e 'udp port 4789' 2>/dev/null | grep -ciE 'ARP|ff:ff:ff:ff:ff:ff|Broadcast')
like "fabric capture recorded VXLAN-encapsulated ICMP ($n_icmp frames) and underlay ARP ($n_arp_ul)" \
	"$n_icmp $n_arp_ul" '^[1-9][0-9]* [1-9]'
is "no encapsulated ARP, no encapsulated broadcast, no overlay ARP on the fabric" \
	"arp:$n_arp_in bcast:$n_bcast_in plain:$n_arp_ov text:$n_txt" "arp:0 bcast:0 plain:0 text:0"

# ---- MTU: default = underlay − 50; explicit
api a1 GET /v1/networks/na
is "na's mtu is 1500 − 50" "$(json_get mtu "$HTTP_BODY")" 1450
check "na: ping -M do -s 1422 (1450-byte packets) h1 → h2 passes" in_e 1a ping -M "do" -s 1422 -c2 -W2 -q 198.18.1.12
if in_e 1a ping -M "do" -s 1423 -c2 -W1 -q 198.18.1.12 >/dev/null 2>&1; then
	not_ok "na: ping -M do -s 1423 fails" "it passed"
else
	ok "na: ping -M do -s 1423 fails"
fi
bad=''
for i in 1 2; do
	api a$i PUT /v1/networks/nm "${J[@]}" --data-binary '{"vni":103,"subnet":"198.18.2.0/24","mtu":1400}'
	[ "$HTTP_CODE" = 201 ] && [ "$(json_get mtu "$HTTP_BODY")" = 1400 ] || bad="$bad net a$i: $(last_req)"
	# A second interface (eth1) in the na endpoints' namespaces.
	api a$i PUT /v1/networks/nm/endpoints/m$i "${J[@]}" \
		--data-binary "{\"netns\":\"/run/netns/$(ens ${i}a)\",\"ip\":\"198.18.2.1$i/24\",\"ifname\":\"eth1\"}"
	[ "$HTTP_CODE" = 201 ] || bad="$bad ep m$i: $(last_req)"
	EP_MAC[m$i]=$(json_get mac "$HTTP_BODY")
done
api a1 PUT /v1/networks/nm/remote-endpoints/m2 "${J[@]}" --data-binary "{\"ip\":\"198.18.2.12/24\",\"mac\":\"${EP_MAC[m2]}\",\"vtep\":\"$(host_ip h2)\"}"
[ "$HTTP_CODE" = 201 ] || bad="$bad remote m2: $(last_req)"
api a2 PUT /v1/networks/nm/remote-endpoints/m1 "${J[@]}" --data-binary "{\"ip\":\"198.18.2.11/24\",\"mac\":\"${EP_MAC[m1]}\",\"vtep\":\"$(host_ip h1)\"}"
[ "$HTTP_CODE" = 201 ] || bad="$bad remote m1: $(last_req)"
[ -z "$bad" ] && ok "network nm (vni 103, mtu 1400) on h1/h2, endpoints as eth1 beside na's eth0" || not_ok "network nm set up" "$bad"
is "nm: eth1 in the endpoint namespace has mtu 1400" "$(ip -n "$(ens 1a)" -o link show dev eth1 | grep -o 'mtu [0-9]*')" "mtu 1400"
check "nm: ping -M do -s 1372 h1 → h2 passes" in_e 1a ping -M "do" -s 1372 -c2 -W2 -q 198.18.2.12
if in_e 1a ping -M "do" -s 1373 -c2 -W1 -q 198.18.2.12 >/dev/null 2>&1; then
	not_ok "nm: ping -M do -s 1373 fails" "it passed"
else
	ok "nm: ping -M do -s 1373 fails"
fi

# ---- drift repair on h1 (reconcile every 3 s): each must be back within 5 s
# repaired DESC PRED: waits for PRED (which includes inspect in_sync), reports the time since T0.
repaired() {
	if wait_for 5 "$2"; then
		ok "$1 ($(($(now_ms) - T0)) ms)"
		diag "repair time: $1: $(($(now_ms) - T0)) ms"
	else
		not_ok "$1 within 5 s" "$(api a1 GET /v1/networks/na/inspect; json_get diff "$HTTP_BODY")"
	fi
	check "  … and na-h1 reaches na-h2 again" wait_for 3 ping1 1a 198.18.1.12
}
pred_vxlan() { in_n a1 na ip link show vxlan0 >/dev/null 2>&1 && fdb_has a1 na "${EP_MAC[a2]}" 192.0.2.12 && insync a1 na; }
pred_br0() {
	local l
	l=$(in_n a1 na ip -o link show master br0 2>/dev/null)
	grep -q vxlan0 <<<"$l" && [ "$(grep -c ' ve-' <<<"$l")" = 1 ] && insync a1 na
}
pred_fdb() { fdb_has a1 na "${EP_MAC[a2]}" 192.0.2.12 && insync a1 na; }
pred_addr() { ip -n "$(ens 1a)" -4 -o addr show dev eth0 | grep -q 'inet 198.18.1.11/24' && insync a1 na; }
check "delete vxlan0 in h1's na namespace" in_n a1 na ip link del vxlan0
T0=$(now_ms)
repaired "vxlan0 recreated with the FDB re-programmed" pred_vxlan
check "delete br0 in h1's na namespace" in_n a1 na ip link del br0
T0=$(now_ms)
repaired "br0 recreated, vxlan0 and the veth enslaved" pred_br0
T_BR=$(now_ms)
check "delete a2's FDB entry on h1 (bridge fdb del … self)" in_n a1 na bridge fdb del "${EP_MAC[a2]}" dev vxlan0 self
T0=$(now_ms)
repaired "a2's FDB entry re-programmed" pred_fdb
check "flush the address of a1's eth0" ip -n "$(ens 1a)" addr flush dev eth0
T0=$(now_ms)
repaired "a1's address 198.18.1.11/24 back on eth0" pred_addr
api a1 GET /v1/networks/na
diag "h1's na network reports repairs=$(json_get repairs "$HTTP_BODY")"

# ---- IPAM (on h1)
for k in 1 2 3 4 5 6; do ip netns add "$(ens p$k)" && ip -n "$(ens p$k)" link set lo up; done
pns() { echo "/run/netns/$(ens p$1)"; }
req a1 PUT /v1/networks/ni '{"vni":104,"subnet":"198.18.4.0/29"}' 201 "network ni 198.18.4.0/29 (6 hosts)"
req a1 POST /v1/networks/ni/remote-endpoints \
	'{"items":[{"name":"r1","ip":"198.18.4.1/29","mac":"02:42:c6:12:04:01","vtep":"192.0.2.12"},{"name":"r3","ip":"198.18.4.3/29","mac":"02:42:c6:12:04:03","vtep":"192.0.2.13"}]}' \
	200 "ni: remote endpoints at .1 and .3"
req a1 PUT /v1/networks/ni/endpoints/x2 "{\"netns\":\"$(pns 1)\",\"ip\":\"198.18.4.2/29\"}" 201 "ni: local x2 at .2 (given)"
alloc() { # EP NS# → prints the allocated address or the status
	api a1 PUT "/v1/networks/ni/endpoints/$1" "${J[@]}" --data-binary "{\"netns\":\"$(pns "$2")\"}"
	if [ "$HTTP_CODE" = 201 ]; then json_get ip "$HTTP_BODY"; else echo "$HTTP_CODE $(json_get error.code "$HTTP_BODY")"; fi
}
got="$(alloc y1 2) $(alloc y2 3) $(alloc y3 4)"
is "ni: allocations skip network, remote and local addresses: .4 .5 .6" "$got" "198.18.4.4/29 198.18.4.5/29 198.18.4.6/29"
like "ni: y1's eth0 carries its allocated address" "$(ip -n "$(ens p2)" -4 -o addr show dev eth0 2>&1)" 'inet 198\.18\.4\.4/29'
is "ni: a 4th allocation (only the broadcast left) → 409 subnet_exhausted" "$(alloc y4 5)" "409 subnet_exhausted"
api a1 GET /v1/networks/ni/endpoints/y4
is "ni: the refused endpoint does not exist and got no interface" "$HTTP_CODE $(ip -n "$(ens p5)" -o link show eth0 2>/dev/null | grep -c .)" "404 0"
req a1 DELETE /v1/networks/ni/endpoints/y1 '' 204 "ni: DELETE y1 → 204"
check "ni: y1's veth is gone from its namespace" wait_for 3 bash -c "! ip -n $(ens p2) link show eth0"
is "ni: re-add after the delete gets the freed .4 (lowest free)" "$(alloc y4 5)" "198.18.4.4/29"
req a1 DELETE /v1/networks/ni/remote-endpoints/r1 '' 204 "ni: DELETE remote r1 → 204"
is "ni: a deleted remote endpoint's address is free again (.1)" "$(alloc y5 2)" "198.18.4.1/29"
req a1 PUT /v1/networks/nd '{"vni":109,"subnet":"198.18.9.0/30"}' 201 "network nd 198.18.9.0/30"
got=''
for k in 1 2 3; do
	api a1 PUT "/v1/networks/nd/endpoints/d$k" "${J[@]}" --data-binary "{\"netns\":\"$(pns $k)\",\"ifname\":\"eth1\"}"
	got="$got $HTTP_CODE:$(json_get ip "$HTTP_BODY" 2>/dev/null || json_get error.code "$HTTP_BODY")"
done
is "nd (/30): exactly 2 endpoints (.1, .2), the third → 409 subnet_exhausted" "$got" " 201:198.18.9.1/30 201:198.18.9.2/30 409:subnet_exhausted"

# ---- crash / restart under continuous ping (h1 → h2, ~20 pps)
snap_api() { # AGENT → networks and all endpoints, without run-time counters
	local n out=''
	api "$1" GET /v1/networks
	out=$(json_get items "$HTTP_BODY" | $PY -c 'import json,sys
for n in json.load(sys.stdin):
    n.pop("repairs", None); n.pop("status", None)
    print(json.dumps(n, sort_keys=True))')
	for n in $(json_get items "$HTTP_BODY" | $PY -c 'import json,sys; print(" ".join(n["name"] for n in json.load(sys.stdin)))'); do
		api "$1" GET "/v1/networks/$n/endpoints"
		out="$out
$(json_get items "$HTTP_BODY")"
	done
	echo "$out"
}
snap_links() { # AGENT NET EPNS → ifindexes of vxlan0, br0, the veths, and eth0 in EPNS
	local s
	s="vxlan0=$(ifindex "$(nns "$1" "$2")" vxlan0) br0=$(ifindex "$(nns "$1" "$2")" br0)"
	s="$s $(in_n "$1" "$2" ip -o link show type veth | awk -F': ' '{sub(/@.*/, "", $2); printf "%s=%s ", $2, $1}')"
	echo "$s eth0=$(ifindex "/run/netns/$(ens "$3")" eth0)"
}
API1=$(snap_api a1)
API2=$(snap_api a2)
L1=$(snap_links a1 na 1a)
L2=$(snap_links a2 na 2a)
diag "ifindexes before the restarts: h1: $L1; h2: $L2"
[[ $L1 =~ vxlan0=[0-9]+\ br0=[0-9]+\ ve-[0-9a-f]+=[0-9]+\ +eth0=[0-9]+$ ]] || not_ok "link snapshot of h1 is complete" "$L1"
env --default-signal=INT nsenter --net="/run/netns/$(ens 1a)" ping -i 0.05 198.18.1.12 >"$NA_TMP/ping-restart" 2>&1 &
PING=$!
track_pid $PING
sleep 1
t0=$(now_ms)
stop_agent a1
is "SIGTERM: a1 exits 0" "$?" 0
start_agent h1 a1 || bail "a1 did not restart"
diag "a1 SIGTERM → answering again: $(($(now_ms) - t0)) ms"
sleep 1
kill_agent a2 -9
start_agent h2 a2 || bail "a2 did not restart"
sleep 1
kill_agent a1 -9
start_agent h1 a1 || bail "a1 did not restart after kill -9"
sleep 4 # a full reconcile round after the last restart: it must not disturb traffic either
kill -INT $PING
wait $PING
sent=$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' "$NA_TMP/ping-restart")
recv=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' "$NA_TMP/ping-restart")
# The echo in flight when ping got SIGINT may lack its reply: count losses among the others.
lost=$($PY -c '
import re, sys
t = int(sys.argv[2] or 0)
seen = {int(m) for m in re.findall(r"icmp_seq=(\d+) ", open(sys.argv[1]).read())}
print(sum(1 for s in range(1, t) if s not in seen))' "$NA_TMP/ping-restart" "${sent:-0}")
diag "continuous ping across 3 restarts: $sent transmitted, $recv received, $lost lost (last echo in flight excluded)"
if [ "${sent:-0}" -ge 100 ] && [ "$lost" = 0 ]; then
	ok "zero loss h1 → h2 across SIGTERM+restart a1, kill -9+restart a2, kill -9+restart a1 ($recv/$sent)"
else
	not_ok "zero loss across restarts" "sent=$sent recv=$recv lost=$lost" "$(grep -v 'icmp_seq=.*time=' "$NA_TMP/ping-restart" | tail -n 20)"
fi
is "a1 after restarts: same networks and endpoints (state persisted)" "$(snap_api a1)" "$API1"
is "a2 after kill -9: same networks and endpoints" "$(snap_api a2)" "$API2"
is "a1: links not recreated (ifindexes of vxlan0, br0, veths, eth0)" "$(snap_links a1 na 1a)" "$L1"
is "a2: links not recreated" "$(snap_links a2 na 2a)" "$L2"
bad=''
for a in a1 a2; do
	for net in na nb nm; do insync $a $net || bad="$bad $a/$net"; done
done
insync a1 ni || bad="$bad a1/ni"
insync a1 nd || bad="$bad a1/nd"
is "every network on a1 and a2 in sync after the restarts" "$bad" ""
is "IPAM state survived: ni still full (→ 409 subnet_exhausted)" "$(alloc y6 6)" "409 subnet_exhausted"

# ---- idempotent PUTs: 200 and not a single kernel event
# The kernel itself notifies every bridge port once more when its forward-delay timer (15 s)
# expires, even with STP off: let that pass for the ports re-enslaved to the repaired br0.
while [ "$(now_ms)" -lt $((T_BR + 16000)) ]; do sleep 0.2; done
nsenter --net="$(nns a1 na)" ip -o monitor link address neigh >"$NA_TMP/mon-net" 2>&1 &
MON1=$!
nsenter --net="$(nns a1 na)" bridge monitor fdb >"$NA_TMP/mon-fdb" 2>&1 &
MON2=$!
nsenter --net="/run/netns/$(ens 1a)" ip -o monitor link address >"$NA_TMP/mon-ep" 2>&1 &
MON3=$!
track_pid $MON1 $MON2 $MON3
sleep 0.5
LB=$(snap_links a1 na 1a)
req a1 PUT /v1/networks/na "{\"vni\":101,\"subnet\":\"$SUB\"}" 200 "identical network PUT → 200"
req a1 PUT /v1/networks/na/endpoints/a1 "{\"netns\":\"/run/netns/$(ens 1a)\",\"ip\":\"198.18.1.11/24\"}" 200 "identical endpoint PUT → 200"
req a1 PUT /v1/networks/na/remote-endpoints/a2 "$(remote_json a2)" 200 "identical remote-endpoint PUT (first pushed in bulk) → 200"
sleep 1
# Positive control: the endpoint namespace monitor does see a change (a veth pair made and removed).
ip -n "$(ens 1a)" link add "${NA_P}d" type veth peer name "${NA_P}e" && ip -n "$(ens 1a)" link del "${NA_P}d"
sleep 0.3
kill $MON1 $MON2 $MON3 2>/dev/null
wait $MON1 $MON2 $MON3 2>/dev/null
is "identical PUTs: no link/address/neighbour/FDB event in the network namespace" "$(cat "$NA_TMP/mon-net" "$NA_TMP/mon-fdb")" ""
like "identical PUTs: the endpoint namespace saw only the control veth's events" \
	"$(grep -v "${NA_P}[de]" "$NA_TMP/mon-ep" | grep -c .) $(grep -c "${NA_P}[de]" "$NA_TMP/mon-ep")" '^0 [1-9]' ||
	diag "$(cat "$NA_TMP/mon-ep")"
is "identical PUTs: ifindexes unchanged" "$(snap_links a1 na 1a)" "$LB"
req a1 POST /v1/networks/na/remote-endpoints "{\"items\":[$(remote_json a2 named),$(remote_json a3 named)]}" 200 "identical bulk POST → 200"
is "… ifindexes still unchanged" "$(snap_links a1 na 1a)" "$LB"

# ---- deletes
req a3 DELETE /v1/networks/na/endpoints/a3 '' 204 "DELETE local endpoint a3 on h3 → 204"
check "a3's veth is gone from its namespace" wait_for 3 bash -c "! ip -n $(ens 3a) link show eth0"
is "h3's na namespace has no veth left" "$(in_n a3 na ip -o link show type veth | grep -c .)" 0
req a3 GET /v1/networks/na/endpoints/a3 '' 404 "GET deleted endpoint → 404"
req a3 DELETE /v1/networks/na/endpoints/a3 '' 404 "DELETE it again → 404"
req a1 DELETE /v1/networks/na/remote-endpoints/a3 '' 204 "controller: DELETE remote a3 on h1 → 204"
fdb_lacks() { ! in_n "$1" "$2" bridge fdb show dev vxlan0 | grep -qi "^$3 "; }
check "h1's FDB no longer has a3's MAC" fdb_lacks a1 na "${EP_MAC[a3]}"
api a1 DELETE /v1/networks/na
is "DELETE network na with a local endpoint → 409 has_endpoints" "$HTTP_CODE $(json_get error.code "$HTTP_BODY")" "409 has_endpoints"
check "… and na on h1 still works" ping1 1a 198.18.1.12
NS_NA=$(nns a1 na)
req a1 DELETE '/v1/networks/na?force=true' '' 204 "DELETE na ?force=true → 204"
check "na's network namespace file is gone" bash -c "[ ! -e '$NS_NA' ]"
is "no link with vxlan id 101 left in h1's host namespace" "$(ip -n "$(hostns h1)" -d link | grep -c 'vxlan id 101')" 0
check "a1's veth is gone from its namespace (eth1 of nm stays)" \
	wait_for 3 bash -c "! ip -n $(ens 1a) link show eth0 && ip -n $(ens 1a) link show eth1"
req a1 GET /v1/networks/na '' 404 "GET na → 404"
req a1 DELETE /v1/networks/na '' 404 "DELETE na again → 404"
check "nb on h1 unaffected: b1 still reaches b2 and bx" bash -c "nsenter --net=/run/netns/$(ens 1b) ping -c1 -W1 -q 198.18.1.12 && nsenter --net=/run/netns/$(ens 1b) ping -c1 -W1 -q 198.18.1.21"
req a2 DELETE /v1/networks/nm/endpoints/m2 '' 204 "DELETE nm's only local endpoint on h2 → 204"
req a2 DELETE /v1/networks/nm '' 204 "DELETE nm (no local endpoint left) on h2 without force → 204"

finish
