#!/usr/bin/env bash
# The sub-second VIP fence (docs/vip.md "Fencing"): with etcd, the holder's host answers ARP
# and traffic for the VIP only while an nftables set element re-armed by each liveness renewal
# (every NETAGENT_VIP_LIVE_MS) is live; a standby takes over after NETAGENT_VIP_TAKEOVER_MS of
# silence of the holder's record. A real etcd-server, candidates h1 and h2, a client cl and a
# second client pin (its neighbour entry for the VIP pinned to the first holder's MAC: it only
# ever asks that machine). A sampler of both hosts (address AND live fence element) at >= 20
# Hz must never see two holders. Drills: the tables exist on the holder with a live element
# and another table in the same namespace is left alone; the fence removed by hand comes back
# (the next renewal rebuilds it); kill -9 of the holder's agent: the old host stops answering
# (pin) within F_h of the kill and the standby answers (cl) in < 1.5 s, while the old
# address is still there (the element, not the address, fenced it); etcd frozen: the holder
# stops answering within F_h and nobody takes the VIP, etcd back: one holder; SIGTERM and
# DELETE remove the agent's tables.
. "$(dirname "$0")/../lib.sh"

command -v etcd >/dev/null || bail "etcd not installed (make deps installs etcd-server)"
command -v nft >/dev/null || bail "nft not installed (make deps installs nftables)"

VIP=192.0.2.100
J=(-H 'Content-Type: application/json')
FENCE_MS=500    # the defaults (NETAGENT_VIP_FENCE_MS, _TAKEOVER_MS, _LIVE_MS)
TAKEOVER_MS=700
LIVE_MS=100

start_etcd_cluster 1 || bail "etcd did not start"
ETCD_REAL=$(pgrep -P "$(etcd_pid 1)" -x etcd | head -n1)
[ -n "$ETCD_REAL" ] || ETCD_REAL=$(etcd_pid 1)
mkhost h1
mkhost h2
mkhost cl
mkhost pin
declare -A MAC
for h in h1 h2; do
	MAC[$h]=$(in_host $h ip -o link show dev eth0 | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2)
done
PORT=$(pick_port h1)
for h in h1 h2; do
	nsenter --net="/run/netns/$(hostns $h)" "$PY" -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(64)
while True:
    c, _ = s.accept()
    c.sendall(sys.argv[2].encode() + b"\n")
    c.close()
' "$PORT" "$h" </dev/null >/dev/null 2>&1 &
	track_pid $!
done
for h in h1 h2; do wait_for 5 in_host $h sh -c "ss -Htln | grep -q ':$PORT\\b'" || bail "service on $h did not start"; done

# Someone else's table in h1's namespace: the agent must never touch it.
in_host h1 nft add table ip "${NA_P}other" || bail "nft add table failed"
in_host h1 nft add set ip "${NA_P}other" keep '{ type ipv4_addr; flags timeout; }'
in_host h1 nft add element ip "${NA_P}other" keep "{ $VIP }"

SAMPLES=$NA_TMP/samples
start_vip_sampler "$SAMPLES" "$VIP" h1 h2
SAMPLER=$VIP_SAMPLER

mstime() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
first_sample() { # SINCE COL VALUE
	awk -v t0="$1" -v c="$2" -v want="$3" '$1 >= t0 && $c == want { print $1 - t0; found = 1; exit }
		END { if (!found) print "none" }' "$SAMPLES"
}
col() { [ "$1" = h1 ] && echo 2 || echo 3; }      # holds (address + live element)
addr_col() { [ "$1" = h1 ] && echo 6 || echo 7; } # the bare address
holds() { # the sampler's last verdict for HOST
	tail -n 1 "$SAMPLES" | awk -v c="$(col "$1")" '{ print $c }'
}
holders() {
	local h out=''
	for h in h1 h2; do [ "$(holds $h)" = 1 ] && out="$out${out:+ }$h"; done
	echo "$out"
}
one_holder() { [ "$(holders | wc -w)" = 1 ]; }
no_holder() { [ -z "$(holders)" ]; }
ag() { echo "a${1#h}"; }
other() { [ "$1" = h1 ] && echo h2 || echo h1; }
state_is() {
	api "$1" GET /v1/vips/gw
	[ "$(json_get state "$HTTP_BODY")" = "$2" ]
}
table_of() { vip_fence_table "$(ag "$1")" gw; }
has_table() { in_host "$1" nft list table "$2" "$(table_of "$1")" >/dev/null 2>&1; }
live_elem() { in_host "$1" nft list set ip "$(table_of "$1")" live 2>/dev/null | grep -q "$VIP.*expires"; }

for h in h1 h2; do start_agent $h "$(ag $h)" --etcd "$ETCD_URLS" || bail "agent on $h did not start"; done
api a1 GET /v1/host
is "GET /v1/host shows the liveness defaults" "$(json_get vip.live_ms "$HTTP_BODY")/$(json_get vip.fence_ms "$HTTP_BODY")/$(json_get vip.takeover_ms "$HTTP_BODY")" "$LIVE_MS/$FENCE_MS/$TAKEOVER_MS"
BODY='{"address":"'$VIP'/24","target":{"interface":"eth0"},"interval_ms":200,"rise":1,"fall":2,
 "checks":[{"type":"tcp","port":'$PORT'}]}'
api a1 PUT /v1/vips/gw "${J[@]}" --data-binary "$BODY"
is "PUT on a1 (201)" "$HTTP_CODE" 201
wait_for 5 state_is a1 master || bail "a1 did not take the VIP: $(tail -n 5 "$(agent_log a1)")"
api a2 PUT /v1/vips/gw "${J[@]}" --data-binary "$BODY"
is "PUT on a2 (201)" "$HTTP_CODE" 201
wait_for 3 state_is a2 backup
sleep 1
is "one holder: h1" "$(holders)" h1

# ---- the tables on the holder
check "h1 has its arp fence table" has_table h1 arp
check "h1 has its ip fence table" has_table h1 ip
OUT=$(in_host h1 nft list table ip "$(table_of h1)" 2>&1)
like "the ip table drops traffic to the VIP unless it is in @live" "$OUT" "ip daddr $VIP ip daddr != @live drop"
like "the VIP's element is live, with a timeout of at most F_h" "$OUT" "$VIP timeout [0-9]+ms expires [0-9]+ms"
OUT=$(in_host h1 nft list table arp "$(table_of h1)" 2>&1)
like "the arp table drops ARP for the VIP unless it is in @live" "$OUT" "drop"
T1=$(in_host h1 nft list set ip "$(table_of h1)" live | grep -o 'expires [0-9]*' | head -n1)
sleep 0.3
T2=$(in_host h1 nft list set ip "$(table_of h1)" live | grep -o 'expires [0-9]*' | head -n1)
diag "element: $T1 ms, 0.3 s later $T2 ms"
[ "${T2#expires }" -gt 200 ] 2>/dev/null && ok "the element is re-armed by each renewal (still ${T2#expires } ms to go 0.3 s later)" || not_ok "element re-armed" "$T1 then $T2"
if has_table h2 ip; then not_ok "the standby has no fence table (it never held the VIP)" "$(in_host h2 nft list ruleset)"; else ok "the standby has no fence table (it never held the VIP)"; fi
is "fence state in GET /v1/host of the holder: renewals succeed" "$(api a1 GET /v1/host; [ "$(json_get vip.liveness.renewals_ok "$HTTP_BODY")" -gt 5 ] && echo yes)" yes

# ---- removed by hand: the next renewal builds it again; nothing else changes
T0=$(mstime)
in_host h1 nft delete table ip "$(table_of h1)"
in_host h1 nft delete table arp "$(table_of h1)"
rebuilt() { has_table h1 ip && has_table h1 arp && live_elem h1; }
if wait_for 2 rebuilt; then ok "fence tables deleted by hand are back with a live element ($(($(mstime) - T0)) ms)"; else not_ok "fence rebuilt" "$(in_host h1 nft list ruleset)"; fi
grep -q "vip fence built" "$(agent_log a1)" && ok "the agent logged the rebuild" || not_ok "rebuild logged"
sleep 0.5
is "still h1 after the rebuild" "$(holders)" h1

# ---- kill -9 of the holder's agent: the element expires, the standby takes over
PROBE=$NA_TMP/probe
PIN=$NA_TMP/pin
start_vip_prober "$PROBE" cl "$VIP" "$PORT"
start_vip_prober "$PIN" pin "$VIP" "$PORT" "${MAC[h1]}" || bail "pinning the neighbour entry failed"
sleep 1
[ "$(tail -n 3 "$PIN" | awk '$2 == "h1"' | wc -l)" -ge 1 ] && ok "the pinned client reaches h1 before the kill" || not_ok "pinned client reaches h1" "$(tail -n 3 "$PIN")"
T0=$(mstime)
kill_agent a1
wait_for 3 sh -c "tail -n 1 '$PROBE' | grep -q ' h2\$'"
sleep 0.3
LAST=$(prober_last "$PIN" "$T0" h1)
FIRST=$(prober_first "$PROBE" "$T0" h2)
GONE=$(first_sample "$T0" "$(col h1)" 0)
ADDR_GONE=$(first_sample "$T0" "$(addr_col h1)" 0)
UP=$(first_sample "$T0" "$(col h2)" 1)
diag "kill -9: h1 last answered the pinned client at ${LAST} ms, fence gone at ${GONE} ms (address gone at ${ADDR_GONE} ms); h2 holds at ${UP} ms, answers the client at ${FIRST} ms"
if [ "$LAST" = none ] || [ "$LAST" -le $((FENCE_MS + 50)) ]; then ok "kill -9: the old host stops answering within F_h of the kill (last answer at $LAST ms <= $((FENCE_MS + 50)))"; else not_ok "old host stops answering within F_h" "last answer $LAST ms after the kill"; fi
if [ "$GONE" != none ] && [ "$GONE" -le $((FENCE_MS + 50)) ]; then ok "kill -9: h1's element expired within F_h ($GONE ms)"; else not_ok "h1's element expired within F_h" "$GONE"; fi
if [ "$FIRST" != none ] && [ "$FIRST" -lt 1500 ]; then ok "kill -9: the client reaches the new holder in < 1.5 s ($FIRST ms)"; else not_ok "new holder answers in < 1.5 s" "$FIRST ms"; fi
if [ "$ADDR_GONE" = none ] || [ "$ADDR_GONE" -gt "$GONE" ]; then ok "the element, not the address lifetime, fenced h1 (address gone at $ADDR_GONE ms)"; else not_ok "fenced by the element first" "address $ADDR_GONE, element $GONE"; fi
api a2 GET /v1/vips/gw/history
like "a2's history: it took over from a silent holder" "$HTTP_BODY" "took over: holder silent"
sleep 1
is "after the kill: the pinned client got nothing from h1 since F_h + 50 ms" "$(awk -v t="$((T0 + FENCE_MS + 50))" '$1 >= t && $2 == "h1"' "$PIN" | wc -l)" 0
[ "$(awk -v t="$((T0 + FENCE_MS + 50))" '$1 >= t' "$PIN" | wc -l)" -ge 5 ] && ok "the pinned client kept trying meanwhile" || not_ok "pinned client kept trying" "$(tail -n 5 "$PIN")"
kill "$VIP_PROBER" 2>/dev/null
in_host pin ip neigh del "$VIP" dev eth0 2>/dev/null

start_agent h1 a1 --etcd "$ETCD_URLS" || bail "agent a1 did not restart"
wait_for 3 state_is a1 backup
is "restarted a1 is backup" "$(json_get state "$HTTP_BODY")" backup
sleep 1
is "h2 holds the VIP" "$(holders)" h2

# ---- etcd frozen: the holder stops answering within F_h; nobody takes it
T0=$(mstime)
kill -STOP "$ETCD_REAL"
if wait_for 3 no_holder; then
	sleep 0.2
	GONE=$(first_sample "$T0" "$(col h2)" 0)
	diag "etcd frozen: h2's fence gone after $GONE ms"
	if [ "$GONE" != none ] && [ "$GONE" -le $((FENCE_MS + 50)) ]; then ok "etcd frozen: the holder stops answering within F_h ($GONE ms)"; else not_ok "holder fenced within F_h with etcd frozen" "$GONE ms"; fi
else
	not_ok "etcd frozen: the holder is fenced" "holders: '$(holders)'"
fi
sleep 2.5
is "etcd frozen: nobody holds the VIP 2.5 s later" "$(holders)" ""
wait_for 2 state_is a2 fault
is "etcd frozen: the holder's agent says fault" "$(json_get state "$HTTP_BODY")" fault
kill -CONT "$ETCD_REAL"
if wait_for 10 one_holder; then ok "etcd back: one holder ($(holders))"; else not_ok "one holder after etcd is back" "holders: '$(holders)'"; fi

# ---- SIGTERM and DELETE clean the fence tables up
HOLDER=$(holders)
OTHER=$(other "$HOLDER")
stop_agent "$(ag "$HOLDER")"
if has_table "$HOLDER" ip || has_table "$HOLDER" arp; then not_ok "SIGTERM: $HOLDER's fence tables removed" "$(in_host "$HOLDER" nft list tables)"; else ok "SIGTERM: $HOLDER's fence tables removed"; fi
wait_for 3 one_holder
is "SIGTERM: $OTHER holds the VIP" "$(holders)" "$OTHER"
api "$(ag "$OTHER")" DELETE /v1/vips/gw
is "DELETE on $OTHER (204)" "$HTTP_CODE" 204
if has_table "$OTHER" ip || has_table "$OTHER" arp; then not_ok "DELETE: $OTHER's fence tables removed" "$(in_host "$OTHER" nft list tables)"; else ok "DELETE: $OTHER's fence tables removed"; fi
OUT=$(in_host h1 nft list table ip "${NA_P}other" 2>&1)
like "the other table in h1's namespace is untouched" "$OUT" "elements = \\{ $VIP \\}"

kill $SAMPLER 2>/dev/null
wait $SAMPLER 2>/dev/null
read -r N BOTH SPAN < <(awk 'NR == 1 { t0 = $1 } { n++; if ($4 == 1 && $5 == 1) b++; t = $1 } END { print n, b + 0, t - t0 }' "$SAMPLES")
RATE=$((N * 1000 / (SPAN > 0 ? SPAN : 1)))
diag "sampler: $N samples over $SPAN ms ($RATE Hz), $BOTH with two holders"
[ "$RATE" -ge 20 ] && ok "sampler ran at >= 20 Hz ($RATE Hz)" || not_ok "sampler rate >= 20 Hz" "$RATE Hz"
is "no sample with two holders" "$BOTH" 0

finish
