#!/usr/bin/env bash
# VIP faults that an agent cannot announce (SPEC §3 "at most one holder"): three candidates
# h1..h3 with etcd on the fabric, a client cl, and a sampler of all three hosts' addresses at
# >= 20 Hz (address + live nftables fence element) that must never see the VIP twice. Drills:
# the holder host's underlay link cut (partitioned from etcd and peers: its fence expires
# within F_h, exactly one other takes it in < 1.5 s;
# healed, it comes back as a backup without taking it back); etcd frozen (SIGSTOP), then etcd
# killed and restarted: the holder drops the VIP within the fence time and nobody takes it;
# etcd back: one holder again;
# priority + preempt: a candidate PUT with a higher priority and preempt takes the VIP over;
# an IPv6 VIP elected the same way (ip6 fence table with the neighbour-solicitation rule),
# moved by SIGTERM of its holder, then by kill -9 of the next one in < 1.5 s.
. "$(dirname "$0")/../lib.sh"

command -v etcd >/dev/null || bail "etcd not installed (make deps installs etcd-server)"

VIP=192.0.2.100
VIP6=2001:db8::100
J=(-H 'Content-Type: application/json')
TTL=2
FENCE_MS=500 # the default F_h (NETAGENT_VIP_FENCE_MS)
HOSTS="h1 h2 h3"

start_etcd_cluster 1 || bail "etcd did not start"
# start_etcd_cluster runs etcd under a subshell: signal etcd itself (our child, by its id).
ETCD_REAL=$(pgrep -P "$(etcd_pid 1)" -x etcd | head -n1)
[ -n "$ETCD_REAL" ] || ETCD_REAL=$(etcd_pid 1)
for h in $HOSTS; do mkhost $h; done
mkhost cl
# Fixed, distinct host addresses (nodad hides a duplicate; a random draw once could repeat
# one or equal the VIP): h1..h3 are ::11..::13, the client ::20.
for h in $HOSTS cl; do
	a=20
	[ "$h" != cl ] && a=1${h#h}
	in_host $h ip -6 addr add "2001:db8::$a/64" dev eth0 nodad || bail "IPv6 address on $h"
done
PORT=$(pick_port h1)
for h in $HOSTS; do
	nsenter --net="/run/netns/$(hostns $h)" "$PY" -c '
import socket, sys
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", int(sys.argv[1])))
s.listen(64)
while True:
    c, _ = s.accept()
    c.sendall(sys.argv[2].encode() + b"\n")
    c.close()
' "$PORT" "$h" </dev/null >/dev/null 2>&1 &
	track_pid $!
done
for h in $HOSTS; do wait_for 5 in_host $h sh -c "ss -Htln | grep -q ':$PORT\\b'" || bail "service on $h did not start"; done

SAMPLES=$NA_TMP/samples
# "ms h1 h2 h3 | h1 h2 h3 (IPv6)" every ~20 ms.
# tests/lib.sh's netlink sampler: same columns, 150+ Hz under load.
start_vip_sampler "$SAMPLES" "$VIP $VIP6" $HOSTS
SAMPLER=$VIP_SAMPLER

mstime() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
has_vip() {
	local a
	a=$(in_host "$1" ip -o addr show dev eth0)
	[[ $a == *" ${2:-$VIP}/"* ]]
}
holders() {
	local h out=''
	for h in $HOSTS; do has_vip $h "${1:-$VIP}" && out="$out${out:+ }$h"; done
	echo "$out"
}
one_holder() { [ "$(holders "${1:-}" | wc -w)" = 1 ]; }
no_holder() { [ -z "$(holders "${1:-}")" ]; }
ag() { echo "a${1#h}"; }
state_is() {
	api "$1" GET "/v1/vips/${3:-gw}"
	[ "$(json_get state "$HTTP_BODY")" = "$2" ]
}
cl_says() { in_host cl "$PY" -c '
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1)
print(s.recv(16).decode().strip())' "${1:-$VIP}" "$PORT" 2>/dev/null; }
# col HOST [6]: the sampler's column of HOST's IPv4 (or IPv6) VIP.
col() {
	local i=${1#h} o=0
	[ -n "${2:-}" ] && o=1
	echo $((2 * i + o))
}
first_sample() { # SINCE COL VALUE
	awk -v t0="$1" -v c="$2" -v want="$3" '$1 >= t0 && $c == want { print $1 - t0; found = 1; exit }
		END { if (!found) print "none" }' "$SAMPLES"
}

for h in $HOSTS; do start_agent $h "$(ag $h)" --etcd "$ETCD_URLS" || bail "agent on $h did not start"; done
BODY='{"address":"'$VIP'/24","target":{"interface":"eth0"},"interval_ms":200,"rise":1,"fall":2,
 "checks":[{"type":"tcp","port":'$PORT'}]}'
for h in $HOSTS; do
	api "$(ag $h)" PUT /v1/vips/gw "${J[@]}" --data-binary "$BODY"
	[ "$HTTP_CODE" = 201 ] || bail "PUT on $h: $(last_req)"
done
if wait_for 5 one_holder; then ok "three candidates: one holder ($(holders))"; else not_ok "one holder of three" "holders: '$(holders)'"; fi
sleep 1
OLD=$(holders)
is "still exactly one holder a second later" "$(holders)" "$OLD"
like "the client reaches the holder" "$(cl_says)" "^$OLD\$"

# ---- the holder's underlay link cut: it is alone, without etcd and peers.
T0=$(mstime)
ip -n "$NA_FAB" link set "$(hostns "$OLD")" down
# the cut happened somewhere before the command returned (a loaded machine starts ip slowly)
CUT_MS=$(($(mstime) - T0))
one_other() { local h; h=$(holders); [ -n "$h" ] && [ "$h" != "$OLD" ] && [ "$(wc -w <<<"$h")" = 1 ]; }
if wait_for $((TTL + 3)) one_other; then
	NEW=$(holders)
	sleep 0.2
	GONE=$(first_sample "$T0" "$(col "$OLD")" 0)
	UP=$(first_sample "$T0" "$(col "$NEW")" 1)
	diag "link cut: $OLD's address gone after $GONE ms, $NEW's up after $UP ms"
	ok "link cut: exactly one other host ($NEW) took the VIP"
	[ "$UP" != none ] && [ "$UP" -lt 1500 ] && ok "link cut: $NEW holds the VIP in < 1.5 s ($UP ms)" || not_ok "link cut: taken over in < 1.5 s" "$UP ms"
	[ "$GONE" != none ] && [ "$GONE" -le $((CUT_MS + FENCE_MS + 50)) ] && ok "link cut: the partitioned holder fenced within F_h ($GONE ms, the cut took $CUT_MS ms)" || not_ok "partitioned holder fenced within F_h" "gone after $GONE ms (cut command took $CUT_MS ms)"
else
	not_ok "link cut: another host takes the VIP" "holders: '$(holders)'"
	NEW=''
fi
wait_for 3 state_is "$(ag "$OLD")" fault
is "the partitioned agent says fault" "$(json_get state "$HTTP_BODY")" fault
wait_for 3 sh -c "[ \"\$(nsenter --net=/run/netns/$(hostns cl) $PY -c 'import socket,sys; s=socket.create_connection((\"$VIP\",$PORT),timeout=1); print(s.recv(16).decode().strip())' 2>/dev/null)\" = '$NEW' ]"
like "the client reaches the new holder" "$(cl_says)" "^$NEW\$"
T0=$(mstime)
ip -n "$NA_FAB" link set "$(hostns "$OLD")" up
wait_for 5 state_is "$(ag "$OLD")" backup
is "healed: the old holder is a backup" "$(json_get state "$HTTP_BODY")" backup
sleep 1
is "healed: the VIP stayed on $NEW" "$(holders)" "$NEW"

# ---- etcd frozen: the holder fences itself, nobody takes the VIP; back: one holder.
HOLDER=$(holders)
T0=$(mstime)
kill -STOP "$ETCD_REAL"
if wait_for $((TTL + 2)) no_holder; then
	sleep 0.2 # the sampler's next line
	GONE=$(first_sample "$T0" "$(col "$HOLDER")" 0)
	diag "etcd frozen: $HOLDER's address gone after $GONE ms"
	[ "$GONE" != none ] && [ "$GONE" -le $((FENCE_MS + 50)) ] && ok "etcd frozen: the holder fenced within F_h ($GONE ms)" || not_ok "holder fenced within F_h with etcd frozen" "gone after $GONE ms"
else
	not_ok "etcd frozen: the holder drops the VIP" "holders: '$(holders)'"
fi
sleep 3
is "etcd frozen: nobody holds the VIP 3 s later" "$(holders)" ""
T0=$(mstime)
kill -CONT "$ETCD_REAL"
if wait_for 10 one_holder; then ok "etcd back: one holder again ($(holders), $(($(mstime) - T0)) ms)"; else not_ok "one holder after etcd is back" "holders: '$(holders)'"; fi
sleep 1
one_holder
is "etcd back: still one holder a second later" "$?" 0

# ---- etcd killed and restarted on its data: leases survive a restart, so the holder's key is
# still its own and it takes the VIP back; meanwhile nobody holds it.
HOLDER=$(holders)
T0=$(mstime)
stop_etcd_member 1 -9
kill -9 "$ETCD_REAL" 2>/dev/null
if wait_for $((TTL + 2)) no_holder && sleep 0.2; then ok "etcd killed: the holder dropped the VIP ($(first_sample "$T0" "$(col "$HOLDER")" 0) ms)"; else not_ok "etcd killed: the holder drops the VIP" "holders: '$(holders)'"; fi
sleep 1
is "etcd killed: nobody holds the VIP" "$(holders)" ""
start_etcd_member 1 || bail "etcd did not restart"
ETCD_REAL=$(pgrep -P "$(etcd_pid 1)" -x etcd | head -n1)
[ -n "$ETCD_REAL" ] || ETCD_REAL=$(etcd_pid 1)
if wait_for 10 one_holder; then ok "etcd restarted: one holder again ($(holders))"; else not_ok "one holder after etcd restart" "holders: '$(holders)'"; fi

# ---- priority + preempt: a backup asks for priority 200 with preempt: it takes over.
HOLDER=$(holders)
for h in $HOSTS; do [ "$h" != "$HOLDER" ] && PRE=$h && break; done
PBODY='{"address":"'$VIP'/24","target":{"interface":"eth0"},"interval_ms":200,"rise":1,"fall":2,"priority":200,"preempt":true,
 "checks":[{"type":"tcp","port":'$PORT'}]}'
T0=$(mstime)
api "$(ag "$PRE")" PUT /v1/vips/gw "${J[@]}" --data-binary "$PBODY"
is "PUT priority 200 + preempt on $PRE (200)" "$HTTP_CODE" 200
only_pre() { [ "$(holders)" = "$PRE" ]; }
if wait_for 5 only_pre && sleep 0.2; then ok "preempt: $PRE took the VIP from $HOLDER ($(first_sample "$T0" "$(col "$PRE")" 1) ms)"; else not_ok "preempt: $PRE takes the VIP" "holders: '$(holders)'"; fi
api "$(ag "$HOLDER")" GET /v1/vips/gw/history
like "the preempted holder's history says why" "$HTTP_BODY" "preempted by $(agent_name "$(ag "$PRE")")"

# ---- kill -9 of that priority-200 holder: its candidacy (healthy, 200) outlives it by a lease,
# but the others do not wait for it as for a better candidate: it is the one gone silent.
T0=$(mstime)
kill_agent "$(ag "$PRE")"
moved_off_pre() { local h; h=$(holders); [ -n "$h" ] && [ "$h" != "$PRE" ] && [ "$(wc -w <<<"$h")" = 1 ]; }
if wait_for 3 moved_off_pre; then
	sleep 0.2
	UP=$(first_sample "$T0" "$(col "$(holders)")" 1)
	[ "$UP" != none ] && [ "$UP" -lt 1500 ] && ok "kill -9 of the priority-200 holder: $(holders) took over in < 1.5 s ($UP ms)" || not_ok "taken over from the dead priority-200 holder in < 1.5 s" "$UP ms"
else
	not_ok "kill -9 of the priority-200 holder: another takes over" "holders: '$(holders)'"
fi
start_agent "$PRE" "$(ag "$PRE")" --etcd "$ETCD_URLS" || bail "agent on $PRE did not restart"
if wait_for 5 only_pre; then ok "restarted with priority 200 + preempt: $PRE takes the VIP back"; else not_ok "$PRE preempts again" "holders: '$(holders)'"; fi

# ---- IPv6 VIP, elected the same way (nodad, unsolicited NA).
B6='{"address":"'$VIP6'/64","target":{"interface":"eth0"},"interval_ms":200,"rise":1,"checks":[{"type":"tcp","port":'$PORT'}]}'
for h in $HOSTS; do api "$(ag $h)" PUT /v1/vips/gw6 "${J[@]}" --data-binary "$B6"; done
if wait_for 5 one_holder "$VIP6"; then ok "IPv6 VIP: one holder ($(holders "$VIP6"))"; else not_ok "IPv6 VIP one holder" "holders: '$(holders "$VIP6")'"; fi
H6=$(holders "$VIP6")
like "IPv6 VIP: the client reaches the holder" "$(cl_says "$VIP6")" "^$H6\$"
OUT=$(in_host "$H6" nft list table ip6 "$(vip_fence_table "$(ag "$H6")" gw6)" 2>&1)
is "IPv6 VIP: the holder's ip6 fence has its three rules (daddr in, solicitation target in, saddr out)" "$(grep -c '@live drop' <<<"$OUT")" 3
like "IPv6 VIP: one of them matches neighbour solicitations (ICMPv6 type 135)" "$OUT" "(nd-neighbor-solicit|ipv6-icmp|135)"
like "IPv6 VIP: its element is live" "$OUT" "$VIP6 timeout [0-9]+ms expires"
T0=$(mstime)
stop_agent "$(ag "$H6")"
moved6() { local h; h=$(holders "$VIP6"); [ -n "$h" ] && [ "$h" != "$H6" ] && [ "$(wc -w <<<"$h")" = 1 ]; }
if wait_for 3 moved6; then ok "IPv6 VIP: SIGTERM of its holder moves it to $(holders "$VIP6") ($(($(mstime) - T0)) ms)"; else not_ok "IPv6 VIP moves on SIGTERM" "holders: '$(holders "$VIP6")'"; fi
like "IPv6 VIP: the client reaches the new holder" "$(cl_says "$VIP6")" "^$(holders "$VIP6")\$"
H6=$(holders "$VIP6")
T0=$(mstime)
kill_agent "$(ag "$H6")"
if wait_for 3 moved6; then
	sleep 0.2
	UP=$(first_sample "$T0" "$(col "$(holders "$VIP6")" 6)" 1)
	[ "$UP" != none ] && [ "$UP" -lt 1500 ] && ok "IPv6 VIP: kill -9 of its holder moves it to $(holders "$VIP6") in < 1.5 s ($UP ms)" || not_ok "IPv6 VIP moves on kill -9 in < 1.5 s" "$UP ms"
else
	not_ok "IPv6 VIP moves on kill -9" "holders: '$(holders "$VIP6")'"
fi
like "IPv6 VIP: the client reaches the holder after the kill" "$(cl_says "$VIP6")" "^$(holders "$VIP6")\$"

kill $SAMPLER 2>/dev/null
wait $SAMPLER 2>/dev/null
read -r N BOTH4 BOTH6 SPAN < <(awk 'NR == 1 { t0 = $1 } { n++; if ($8 + $10 + $12 > 1) b4++; if ($9 + $11 + $13 > 1) b6++; t = $1 } END { print n, b4 + 0, b6 + 0, t - t0 }' "$SAMPLES")
RATE=$((N * 1000 / (SPAN > 0 ? SPAN : 1)))
diag "sampler: $N samples over $SPAN ms ($RATE Hz); two holders: IPv4 $BOTH4, IPv6 $BOTH6"
[ "$RATE" -ge 20 ] && ok "sampler ran at >= 20 Hz ($RATE Hz)" || not_ok "sampler rate >= 20 Hz" "$RATE Hz"
is "no sample with the IPv4 VIP on two hosts" "$BOTH4" 0
is "no sample with the IPv6 VIP on two hosts" "$BOTH6" 0

finish
