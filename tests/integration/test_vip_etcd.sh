#!/usr/bin/env bash
# VIP election through etcd (SPEC §3): a real etcd-server, two candidate hosts h1 and h2 (one
# agent each, the same VIP with a tcp check on a local service that answers its host's name)
# and a client cl. A sampler polls both hosts' addresses at >= 20 Hz for the whole run: no
# sample may show the VIP on both. Drills, each followed by the client's TCP connect to
# VIP:port reaching the new holder and its neighbour entry moved to the new MAC (gratuitous
# ARP): POST /failover; kill -9 of the holder's agent (its nftables fence element expires
# within F_h of the kill, the standby takes over after F of silence: in < 1.5 s); the killed
# agent comes back as backup without a flap; the holder's check fails; SIGTERM of the holder
# (steps down at once); DELETE on the holder (address gone when it answers). Times measured
# are printed as diagnostics (fence, takeover).
. "$(dirname "$0")/../lib.sh"

command -v etcd >/dev/null || bail "etcd not installed (make deps installs etcd-server)"

VIP=192.0.2.100
J=(-H 'Content-Type: application/json')
FENCE_MS=500 # the default fence time F_h (NETAGENT_VIP_FENCE_MS)

start_etcd_cluster 1 || bail "etcd did not start"
mkhost h1
mkhost h2
mkhost cl
declare -A MAC SVC
for h in h1 h2; do
	MAC[$h]=$(in_host $h ip -o link show dev eth0 | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2)
done
PORT=$(pick_port h1)

# A TCP service on HOST:PORT answering the host's name (the holder's identity for the client).
start_svc() {
	nsenter --net="/run/netns/$(hostns "$1")" "$PY" -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(64)
while True:
    c, _ = s.accept()
    c.sendall(sys.argv[2].encode() + b"\n")
    c.close()
' "$PORT" "$1" </dev/null >/dev/null 2>&1 &
	SVC[$1]=$!
	track_pid "${SVC[$1]}"
	wait_for 5 in_host "$1" sh -c "ss -Htln | grep -q ':$PORT\\b'"
}
stop_svc() { kill "${SVC[$1]}" 2>/dev/null; wait "${SVC[$1]}" 2>/dev/null; }
start_svc h1 || bail "service on h1 did not start"
start_svc h2 || bail "service on h2 did not start"

mstime() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

# The sampler: "ms h1 h2 h1' h2' …" (1 = the host holds the VIP: address + live fence).
SAMPLES=$NA_TMP/samples
# tests/lib.sh's netlink sampler: same columns, 150+ Hz under load.
start_vip_sampler "$SAMPLES" "$VIP" h1 h2
SAMPLER=$VIP_SAMPLER

has_vip() {
	local a
	a=$(in_host "$1" ip -o addr show dev eth0)
	[[ $a == *" $VIP/"* ]]
}
no_vip() { ! has_vip "$1"; }
holder_count() {
	local n=0 h
	for h in h1 h2; do has_vip $h && n=$((n + 1)); done
	echo $n
}
state_of() {
	api "$1" GET /v1/vips/gw
	json_get state "$HTTP_BODY"
}
state_is() { [ "$(state_of "$1")" = "$2" ]; }
cl_says() { in_host cl "$PY" -c '
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1)
print(s.recv(16).decode().strip())' "$VIP" "$PORT" 2>/dev/null; }
cl_reaches() { [ "$(cl_says)" = "$1" ]; }
cl_mac() { in_host cl ip neigh show "$VIP" dev eth0 | grep -o 'lladdr [0-9a-f:]*' | cut -d' ' -f2; }
cl_mac_is() { [ "$(cl_mac)" = "${MAC[$1]}" ]; }
# first_sample SINCE_MS COL VALUE: ms from SINCE_MS to the first sample where column COL
# (2 = h1, 3 = h2) is VALUE; "none" if never.
first_sample() {
	awk -v t0="$1" -v c="$2" -v want="$3" '$1 >= t0 && $c == want { print $1 - t0; found = 1; exit }
		END { if (!found) print "none" }' "$SAMPLES"
}
col() { [ "$1" = h1 ] && echo 2 || echo 3; }
other() { [ "$1" = h1 ] && echo h2 || echo h1; }
agent_of() { [ "$1" = h1 ] && echo a1 || echo a2; }

# One takeover drill's checks: NEW holds the VIP, OLD does not, the client reaches NEW and
# its neighbour entry moved by the announcement. Prints the times from T0.
settled() { has_vip "$1" && no_vip "$(other "$1")"; }
took_over() { # DESC NEW T0 MAX_MS
	local desc=$1 new=$2 t0=$3 max=$4 old gone up
	old=$(other "$new")
	if ! wait_for $(((max + 999) / 1000 + 2)) settled "$new"; then
		not_ok "$desc: $new holds the VIP" "h1: $(in_host h1 ip -o addr show dev eth0 | grep "$VIP")" "h2: $(in_host h2 ip -o addr show dev eth0 | grep "$VIP")"
		return 1
	fi
	sleep 0.1
	gone=$(first_sample "$t0" "$(col "$old")" 0)
	up=$(first_sample "$t0" "$(col "$new")" 1)
	diag "$desc: old holder's address gone after ${gone} ms, new holder's up after ${up} ms"
	if [ "$up" != none ] && [ "$up" -le "$max" ]; then ok "$desc: $new holds the VIP within $max ms ($up ms)"; else not_ok "$desc: $new holds the VIP within $max ms" "took $up ms"; fi
	if wait_for 2 cl_mac_is "$new"; then ok "$desc: client's neighbour entry moved to $new's MAC"; else not_ok "$desc: client's entry moved to $new" "$(in_host cl ip neigh show)"; fi
	if wait_for 2 cl_reaches "$new"; then ok "$desc: client's TCP connect to VIP:$PORT reaches $new"; else not_ok "$desc: client reaches $new" "answer: $(cl_says)"; fi
}

start_agent h1 a1 --etcd "$ETCD_URLS" || bail "agent a1 did not start"
start_agent h2 a2 --etcd "$ETCD_URLS" || bail "agent a2 did not start"
BODY='{"address":"'$VIP'/24","target":{"interface":"eth0"},"interval_ms":200,"rise":1,"fall":2,
 "checks":[{"type":"tcp","port":'$PORT'}]}'
api a1 PUT /v1/vips/gw "${J[@]}" --data-binary "$BODY"
is "PUT on a1 (201)" "$HTTP_CODE" 201
if wait_for 5 has_vip h1; then ok "a1 takes the VIP (only candidate)"; else not_ok "a1 takes the VIP" "$(tail -n 20 "$(agent_log a1)")"; fi
api a2 PUT /v1/vips/gw "${J[@]}" --data-binary "$BODY"
is "PUT on a2 (201)" "$HTTP_CODE" 201
wait_for 3 state_is a2 backup
api a2 GET /v1/vips/gw
is "a2 is backup and names a1 as holder" "$(json_get state "$HTTP_BODY")/$(json_get holder "$HTTP_BODY")" "backup/$(agent_name a1)"
sleep 1
is "exactly one host holds the VIP" "$(holder_count)" 1
like "the holder's address has a short lifetime (the fence)" "$(in_host h1 ip -o addr show dev eth0 to "$VIP/32")" "valid_lft [01]sec"
check "client reaches h1" cl_reaches h1
sleep 1.5
like "the lifetime is renewed with each keepalive (still there 1.5 s later)" "$(in_host h1 ip -o addr show dev eth0 to "$VIP/32")" "valid_lft [01]sec"

# POST /failover: a1 hands over to a2.
api a2 POST /v1/vips/gw/failover
is "failover on the backup: 409" "$HTTP_CODE" 409
T0=$(mstime)
api a1 POST /v1/vips/gw/failover
is "POST /failover on the holder (200)" "$HTTP_CODE" 200
took_over "failover" h2 "$T0" 1000
wait_for 2 state_is a1 backup
is "a1 is backup after handing over" "$(state_of a1)" backup

# kill -9 of the holder's agent: its fence element expires, a1 takes over after F of silence.
sleep 1
T0=$(mstime)
kill_agent a2
took_over "kill -9 of the holder" h1 "$T0" 1500
GONE=$(first_sample "$T0" 3 0)
if [ "$GONE" != none ] && [ "$GONE" -le $((FENCE_MS + 50)) ]; then ok "killed holder fenced by the kernel within F_h ($GONE ms <= $((FENCE_MS + 50)) ms)"; else not_ok "fence within F_h" "gone after $GONE ms"; fi

# The killed agent comes back: backup, the VIP stays where it is (no flap).
T0=$(mstime)
start_agent h2 a2 --etcd "$ETCD_URLS" || bail "agent a2 did not restart"
wait_for 3 state_is a2 backup
is "restarted a2 is backup" "$(state_of a2)" backup
sleep 1.5
is "h1 kept the VIP all along" "$(first_sample "$T0" 2 0)" none

# The holder's check fails: a2 takes over.
T0=$(mstime)
stop_svc h1
took_over "holder's check fails" h2 "$T0" 1500
wait_for 2 state_is a1 fault
is "a1 is fault while its check fails" "$(state_of a1)" fault
start_svc h1 || bail "service on h1 did not restart"
wait_for 3 state_is a1 backup
is "a1 back to backup when its check passes (no preempt)" "$(state_of a1)" backup
sleep 1
is "h2 kept the VIP (no preempt by default)" "$(holder_count)/$(has_vip h2 && echo h2)" "1/h2"

# SIGTERM of the holder: it steps down at once (address, then the lease revoked).
T0=$(mstime)
stop_agent a2
is "a2 exits 0 on SIGTERM" "$?" 0
took_over "SIGTERM of the holder" h1 "$T0" 1000
start_agent h2 a2 --etcd "$ETCD_URLS" || bail "agent a2 did not restart"
wait_for 3 state_is a2 backup

# DELETE on the holder: the address is gone when it answers; the other takes over.
T0=$(mstime)
api a1 DELETE /v1/vips/gw
is "DELETE on the holder (204)" "$HTTP_CODE" 204
check "a1's address gone when DELETE answers" no_vip h1
took_over "DELETE on the holder" h2 "$T0" 1000
api a1 PUT /v1/vips/gw "${J[@]}" --data-binary "$BODY"
is "PUT again on a1 (201)" "$HTTP_CODE" 201
wait_for 3 state_is a1 backup
is "a1 is a backup again" "$(state_of a1)" backup

# History and metrics of a holder.
api a2 GET /v1/vips/gw/history
like "history on a2 lists its transitions" "$HTTP_BODY" '"to": *"master"'
api a2 GET /metrics
like "metric: a2 master" "$HTTP_BODY" 'netagent_vip_state\{vip="gw",state="master"\} 1'
like "metric: last failover duration" "$HTTP_BODY" 'netagent_vip_last_failover_seconds\{vip="gw"\} [0-9.]+'

# netagentctl: vip ls / show / history / failover / apply -f of show's output.
ctl() { local n=$1; shift; "$NETAGENTCTL" --socket "$(agent_sock "$n")" "$@"; }
OUT=$(ctl a1 vip ls 2>&1)
like "vip ls on a1: gw backup, holder a2" "$OUT" "gw +192\.0\.2\.100/24 +interface:eth0 +backup +$(agent_name a2) +up"
OUT=$(ctl a2 vip history gw 2>&1)
like "vip history on a2 shows its takeovers" "$OUT" "backup +master +$(agent_name a2) +elected"
OUT=$(ctl a2 vip show gw 2>&1)
like "vip show lists both candidates" "$OUT" "candidates.*$(agent_name a1)"
OUT=$(ctl a2 vip show gw -o json | ctl a2 vip apply gw -f - 2>&1)
like "vip apply -f of vip show -o json is accepted unchanged" "$OUT" "^vip gw updated"
OUT=$(ctl a1 vip failover gw 2>&1)
is "vip failover on the backup exits 1" "$?" 1
T0=$(mstime)
OUT=$(ctl a2 vip failover gw 2>&1)
like "vip failover on the holder" "$OUT" "handed over"
took_over "netagentctl vip failover" h1 "$T0" 1000

# kill -9 of the holder's agent and an immediate restart: it adopts its lease (persisted id)
# and keeps the VIP; the standby never takes it.
sleep 0.5
T0=$(mstime)
kill_agent a1
start_agent h1 a1 --etcd "$ETCD_URLS" || bail "agent a1 did not restart"
wait_for 3 state_is a1 master
api a1 GET /v1/vips/gw/history
like "restarted within the lease: a1 is master again by adoption" "$HTTP_BODY" "adopted"
sleep 2.5
is "restarted within the lease: h2 never held the VIP" "$(first_sample "$T0" 3 1)" none
check "restarted within the lease: h1 holds the VIP" has_vip h1
diag "restart within the lease: h1's address absent for $(awk -v t0="$T0" '$1 >= t0 && $2 == 0 { n++ } END { print n + 0 }' "$SAMPLES") samples"

# The sampler's verdict over the whole run.
kill $SAMPLER 2>/dev/null
wait $SAMPLER 2>/dev/null
read -r N BOTH SPAN < <(awk 'NR == 1 { t0 = $1 } { n++; if ($4 == 1 && $5 == 1) b++; t = $1 } END { print n, b + 0, t - t0 }' "$SAMPLES")
RATE=$((N * 1000 / (SPAN > 0 ? SPAN : 1)))
diag "sampler: $N samples over $SPAN ms ($RATE Hz), $BOTH with two holders"
[ "$RATE" -ge 20 ] && ok "sampler ran at >= 20 Hz ($RATE Hz)" || not_ok "sampler rate >= 20 Hz" "$RATE Hz"
is "no sample with the VIP on both hosts" "$BOTH" 0

finish
