#!/usr/bin/env bash
# VIPs in local mode (no etcd, SPEC §3: held whenever the checks pass), real kernel objects.
# Host h1 runs the agent and two services (a TCP port, an HTTP server); host cl is a client
# on the same fabric. Checks: the VIP appears on h1's eth0 and answers the client's TCP
# connect; the client's neighbour entry for the VIP moves to h1's MAC (gratuitous ARP); a
# failing tcp check and a failing http check (404) each remove it, passing again brings it
# back; an address deleted behind the agent's back is re-added and re-announced; an
# unchanged PUT is idempotent (no address event); events (SSE) and metrics for transitions;
# an update moving the address;
# an IPv6 VIP with an unsolicited NA; DELETE removes it at once; SIGTERM removes it.
. "$(dirname "$0")/../lib.sh"

for _c in ip ss; do command -v $_c >/dev/null || bail "$_c not found"; done

VIP=192.0.2.100
VIP6=2001:db8::100
J=(-H 'Content-Type: application/json')
FAKE_MAC=02:00:5e:00:53:99

mkhost h1
mkhost cl
in_host h1 ip -6 addr add 2001:db8::11/64 dev eth0 nodad
in_host cl ip -6 addr add 2001:db8::99/64 dev eth0 nodad
start_agent h1 a1 --reconcile-ms 500 || bail "agent a1 did not start"
H1_MAC=$(in_host h1 ip -o link show dev eth0 | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2)
[ -n "$H1_MAC" ] || bail "no MAC for h1 eth0"

# Services on h1: a TCP listener (tcp check) and an HTTP server whose /ok exists (http check).
TCP_PORT=$(pick_port h1)
HTTP_PORT=$(pick_port h1)
WWW=$NA_TMP/www
mkdir -p "$WWW"
echo ok >"$WWW/ok"
TCP_PID=''
start_tcp() {
	# nsenter itself (not the in_host function) in the background: $! is the server.
	nsenter --net="/run/netns/$(hostns h1)" "$PY" -c '
import socket, sys
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", int(sys.argv[1])))
s.listen(64)
while True:
    c, _ = s.accept()
    c.sendall(b"h1\n")
    c.close()
' "$TCP_PORT" </dev/null >/dev/null 2>&1 &
	TCP_PID=$!
	track_pid "$TCP_PID"
	wait_for 5 in_host h1 sh -c "ss -Htln | grep -q ':$TCP_PORT\\b'"
}
stop_tcp() { kill "$TCP_PID" 2>/dev/null; wait "$TCP_PID" 2>/dev/null; TCP_PID=''; }
start_tcp || bail "tcp service did not start"
in_host h1 "$PY" -m http.server "$HTTP_PORT" --bind 127.0.0.1 --directory "$WWW" </dev/null >/dev/null 2>&1 &
track_pid $!
wait_for 5 in_host h1 sh -c "ss -Htln | grep -q ':$HTTP_PORT\\b'" || bail "http service did not start"

# Output captured first: grep -q ending the pipe early would be a SIGPIPE failure under pipefail.
has_vip() {
	local a
	a=$(in_host h1 ip -o addr show dev eth0)
	[[ $a == *" ${1:-$VIP}/"* ]]
}
no_vip() { ! has_vip "$@"; }
state_is() {
	api a1 GET "/v1/vips/$1"
	[ "$HTTP_CODE" = 200 ] && [ "$(json_get state "$HTTP_BODY")" = "$2" ]
}
# The client's neighbour entry for an address, its MAC ("" if none).
cl_mac() { in_host cl ip neigh show "$1" dev eth0 | grep -o 'lladdr [0-9a-f:]*' | cut -d' ' -f2; }
cl_mac_is() { [ "$(cl_mac "$1")" = "$2" ]; }
# A connect from the client to VIP:port that the holder answers.
cl_connect() { in_host cl "$PY" -c '
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1)
sys.exit(0 if s.recv(16).startswith(b"h1") else 1)' "$1" "$2" 2>/dev/null; }

# SSE: every event of the run, from before the first VIP.
EV=$NA_TMP/events
curl -sN --unix-socket "$(agent_sock a1)" http://localhost/v1/events >"$EV" 2>/dev/null &
track_pid $!
wait_for 5 test -s "$EV" || sleep 0.5

# The client knows the VIP by a stale MAC (an old holder's): the announcement must move it.
in_host cl ip neigh replace "$VIP" lladdr "$FAKE_MAC" dev eth0 nud stale
sleep 1.1 # arp locktime: an entry younger than 1 s ignores gratuitous ARP

BODY='{"address":"'$VIP'/24","target":{"interface":"eth0"},"interval_ms":200,"rise":1,"fall":2,
 "checks":[{"type":"tcp","port":'$TCP_PORT'},{"type":"http","port":'$HTTP_PORT',"path":"/ok"}]}'
T0=$(now_ms)
api a1 PUT /v1/vips/gw "${J[@]}" --data-binary "$BODY"
is "PUT /v1/vips/gw creates (201)" "$HTTP_CODE" 201
if wait_for 5 has_vip; then ok "VIP on h1 eth0 while both checks pass ($(($(now_ms) - T0)) ms after PUT)"; else not_ok "VIP on h1 eth0" "$(in_host h1 ip addr show dev eth0)"; fi
wait_for 3 state_is gw master
is "state master, holder is the agent" "$(json_get state "$HTTP_BODY")/$(json_get holder "$HTTP_BODY")" "master/$(agent_name a1)"
if wait_for 3 cl_mac_is "$VIP" "$H1_MAC"; then ok "gratuitous ARP: the client's entry for the VIP moved to h1's MAC"; else not_ok "gratuitous ARP moved the client's entry" "$(in_host cl ip neigh show)"; fi
check "the client's TCP connect to VIP:$TCP_PORT reaches h1" cl_connect "$VIP" "$TCP_PORT"
like "the address has no lifetime in local mode" "$(in_host h1 ip -o addr show dev eth0 to "$VIP/32")" "valid_lft forever"

# Idempotent PUT: same body, 200, no address event on h1.
MON=$NA_TMP/mon
in_host h1 ip monitor address >"$MON" 2>/dev/null &
MONPID=$!
track_pid $MONPID
sleep 0.3
api a1 PUT /v1/vips/gw "${J[@]}" --data-binary "$BODY"
is "the same PUT again answers 200" "$HTTP_CODE" 200
sleep 1.5 # three reconcile rounds
kill $MONPID 2>/dev/null
wait $MONPID 2>/dev/null
is "the same PUT and reconcile rounds change no address" "$(grep -c "$VIP" "$MON")" 0

# The tcp check fails → the VIP goes; passes again → back.
stop_tcp
T0=$(now_ms)
if wait_for 5 no_vip; then ok "tcp check fails → VIP removed ($(($(now_ms) - T0)) ms; interval 200 ms, fall 2)"; else not_ok "tcp check fails → VIP removed"; fi
wait_for 2 state_is gw fault
is "state fault" "$(json_get state "$HTTP_BODY")" fault
like "health says why" "$(json_get health.reason "$HTTP_BODY")" "tcp check :$TCP_PORT"
start_tcp || bail "tcp service did not restart"
T0=$(now_ms)
if wait_for 5 has_vip; then ok "tcp check passes again → VIP back ($(($(now_ms) - T0)) ms)"; else not_ok "VIP back after tcp recovers"; fi

# The http check answers 404 → the VIP goes; 200 again → back.
rm -f "$WWW/ok"
if wait_for 5 no_vip; then ok "http check answers 404 → VIP removed"; else not_ok "http 404 → VIP removed"; fi
wait_for 2 state_is gw fault
like "health names the http status" "$(json_get health.reason "$HTTP_BODY")" "http check :$HTTP_PORT: status 404"
echo ok >"$WWW/ok"
if wait_for 5 has_vip; then ok "http check 200 again → VIP back"; else not_ok "VIP back after http recovers"; fi
wait_for 2 state_is gw master

# Someone deletes the address: re-added (reconcile) and announced again.
in_host cl ip neigh replace "$VIP" lladdr "$FAKE_MAC" dev eth0 nud stale
sleep 1.1
in_host h1 ip addr del "$VIP/24" dev eth0
T0=$(now_ms)
if wait_for 5 has_vip; then ok "address deleted by hand is re-added ($(($(now_ms) - T0)) ms, reconcile every 500 ms)"; else not_ok "deleted address re-added" "$(in_host h1 ip addr show dev eth0)"; fi
if wait_for 3 cl_mac_is "$VIP" "$H1_MAC"; then ok "re-added address is announced again (client entry back to h1's MAC)"; else not_ok "re-announce after re-add" "$(in_host cl ip neigh show)"; fi
state_is gw master
is "still master after the repair" "$(json_get state "$HTTP_BODY")" master

# History, events and metrics of the transitions so far: master, fault, master, fault, master.
api a1 GET /v1/vips/gw/history
is "history lists the transitions" "$("$PY" -c 'import json,sys; print(" ".join(i["to"] for i in json.load(sys.stdin)["items"]))' <<<"$HTTP_BODY")" "master fault master fault master"
TR=$(json_get transitions "$(api a1 GET /v1/vips/gw; echo "$HTTP_BODY")")
is "transitions counter" "$TR" 5
api a1 GET /metrics
like "metric netagent_vip_state master = 1" "$HTTP_BODY" "netagent_vip_state\{vip=\"gw\",state=\"master\"\} 1"
like "metric netagent_vip_transitions_total = 5" "$HTTP_BODY" "netagent_vip_transitions_total\{vip=\"gw\"\} 5"
like "metric netagent_vip_last_failover_seconds" "$HTTP_BODY" "netagent_vip_last_failover_seconds\{vip=\"gw\"\} [0-9.]+"
NEV=$(grep -c '^event: vip' "$EV")
NMASTER=$(grep '^data: .*"type":"vip"' "$EV" | grep -c '"action":"master"')
[ "$NEV" -ge 6 ] && [ "$NMASTER" -ge 3 ] && ok "SSE: vip events for created and each transition ($NEV events)" || not_ok "SSE vip events" "$(grep -A2 '^event: vip' "$EV" | head -30)"

# An update that moves the address: the old one goes, the new one comes; and back.
VIP2=192.0.2.101
api a1 PUT /v1/vips/gw "${J[@]}" --data-binary "${BODY/$VIP\/24/$VIP2/24}"
is "PUT with a new address updates (200)" "$HTTP_CODE" 200
moved() { has_vip "$VIP2" && no_vip "$VIP"; }
if wait_for 5 moved; then ok "the address moved to $VIP2 (old one removed)"; else not_ok "address moved" "$(in_host h1 ip -o addr show dev eth0)"; fi
api a1 PUT /v1/vips/gw "${J[@]}" --data-binary "$BODY"
back() { has_vip "$VIP" && no_vip "$VIP2"; }
if wait_for 5 back; then ok "and back to $VIP"; else not_ok "address back" "$(in_host h1 ip -o addr show dev eth0)"; fi

# IPv6 VIP: added nodad (usable at once), unsolicited NA moves the client's entry.
in_host cl ip -6 neigh replace "$VIP6" lladdr "$FAKE_MAC" dev eth0 nud stale
sleep 1.1
api a1 PUT /v1/vips/gw6 "${J[@]}" --data-binary '{"address":"'$VIP6'/64","target":{"interface":"eth0"},"interval_ms":200,"rise":1,"checks":[{"type":"tcp","port":'$TCP_PORT'}]}'
is "PUT IPv6 VIP (201)" "$HTTP_CODE" 201
if wait_for 5 has_vip "$VIP6"; then ok "IPv6 VIP on h1 eth0"; else not_ok "IPv6 VIP on h1" "$(in_host h1 ip -6 addr show dev eth0)"; fi
unlike_tent=$(in_host h1 ip -o -6 addr show dev eth0 | grep "$VIP6/" | grep -c tentative)
is "IPv6 VIP not tentative (nodad)" "$unlike_tent" 0
if wait_for 3 cl_mac_is "$VIP6" "$H1_MAC"; then ok "unsolicited NA moved the client's IPv6 entry to h1's MAC"; else not_ok "unsolicited NA" "$(in_host cl ip -6 neigh show)"; fi
check "the client's TCP connect to [VIP6]:$TCP_PORT reaches h1" cl_connect "$VIP6" "$TCP_PORT"

# DELETE: the address goes before the answer.
api a1 DELETE /v1/vips/gw6
is "DELETE gw6 (204)" "$HTTP_CODE" 204
check "IPv6 VIP gone when DELETE answers" no_vip "$VIP6"
api a1 GET /v1/vips/gw6
is "GET after DELETE (404)" "$HTTP_CODE" 404

# Restart with SIGTERM: the VIP is removed on the way down, held again after the start.
stop_agent a1
is "agent exits 0 on SIGTERM" "$?" 0
check "VIP removed on SIGTERM" no_vip
start_agent h1 a1 --reconcile-ms 500 || bail "agent a1 did not restart"
if wait_for 5 has_vip; then ok "VIP back after restart (state file kept)"; else not_ok "VIP back after restart"; fi
# kill -9: local mode keeps the address (no etcd, no fence); the next run adopts it without a flap.
kill_agent a1
check "kill -9 leaves the local VIP in place" has_vip
in_host h1 ip monitor address >"$MON" 2>/dev/null &
MONPID=$!
track_pid $MONPID
sleep 0.3
start_agent h1 a1 --reconcile-ms 500 || bail "agent a1 did not restart"
sleep 1.5
kill $MONPID 2>/dev/null
wait $MONPID 2>/dev/null
is "restart after kill -9 adopts the VIP (no delete/add)" "$(grep -c "Deleted.*$VIP" "$MON")" 0
wait_for 3 state_is gw master
is "master again after adoption" "$(json_get state "$HTTP_BODY")" master

finish
