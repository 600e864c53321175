#!/usr/bin/env bash
# VIP failover time seen by a client (issue 7's benchmark): two candidate hosts with etcd on
# the fabric, a client connecting to VIP:port every 10 ms (100 ms connect timeout). A drill's
# time runs from the fault to the first connect answered by the new holder. Drills, each
# BENCH_VIP_DRILLS times (10): graceful step-down (SIGTERM of the holder's agent), agent killed
# (kill -9), host dead (its underlay link cut). A sampler of both hosts' addresses counts the
# samples with two holders (must be 0).
# Baseline in the same run: keepalived when installed (not on this image), else a hand-run
# failover script on the standby (TCP probe of the primary every 100 ms, 3 misses, then
# `ip addr add` + gratuitous ARP), for the dead-host drill; it has no fence, so the cut-off
# primary keeps its copy (counted as two-holder samples).
# Env: BENCH_VIP_DRILLS, NETAGENT_VIP_* (the agent's tunables, passed through).
set -uo pipefail
cd "$(dirname "$0")/.."
DRILLS=${BENCH_VIP_DRILLS:-10}
# shellcheck source=../tests/lib.sh
source tests/lib.sh
PY=/usr/bin/python3
VIP=192.0.2.100

start_etcd_cluster 1 >/dev/null || bail "etcd did not start"
mkhost h1
mkhost h2
mkhost cl
PORT=$(pick_port h1)
for h in h1 h2; do
	nsenter --net="/run/netns/$(hostns $h)" "$PY" -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(128)
while True:
    c, _ = s.accept()
    c.sendall(sys.argv[2].encode() + b"\n")
    c.close()
' "$PORT" "$h" </dev/null >/dev/null 2>&1 &
	track_pid $!
done

# The client: "ms host" per successful connect, "ms -" per failure.
PROBE=$NA_TMP/probe
nsenter --net="/run/netns/$(hostns cl)" "$PY" -u -c '
import socket, sys, time
while True:
    t = int(time.time() * 1000)
    try:
        s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=0.1)
        s.settimeout(0.1)
        who = s.recv(16).decode().strip() or "-"
        s.close()
    except OSError:
        who = "-"
    print(t, who)
    time.sleep(0.01)
' "$VIP" "$PORT" >"$PROBE" 2>/dev/null &
track_pid $!

SAMPLES=$NA_TMP/samples
sampler() {
	local a b x y t
	while :; do
		t=${EPOCHREALTIME/./}
		a=$(ip -n "$(hostns h1)" -o addr show dev eth0 2>/dev/null)
		b=$(ip -n "$(hostns h2)" -o addr show dev eth0 2>/dev/null)
		x=0 y=0
		[[ $a == *" $VIP/"* ]] && x=1
		[[ $b == *" $VIP/"* ]] && y=1
		echo "$((t / 1000)) $x $y"
		sleep 0.02
	done >"$SAMPLES"
}
sampler &
track_pid $!

mstime() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
has_vip() {
	local a
	a=$(in_host "$1" ip -o addr show dev eth0)
	[[ $a == *" $VIP/"* ]]
}
other() { [ "$1" = h1 ] && echo h2 || echo h1; }
ag() { echo "a${1#h}"; }
holder() {
	local h out=''
	for h in h1 h2; do has_vip $h && out="$out${out:+ }$h"; done
	echo "$out"
}
# answered SINCE HOST: ms from SINCE to the client's first connect answered by HOST.
answered() {
	awk -v t0="$1" -v h="$2" '$1 >= t0 && $2 == h { print $1 - t0; f = 1; exit } END { if (!f) print "none" }' "$PROBE"
}
both_samples() { awk -v a="$1" -v b="$2" '$1 >= a && $1 <= b && $2 == 1 && $3 == 1 { n++ } END { print n + 0 }' "$SAMPLES"; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (!NR) { print "-"; exit } if (NR % 2) print v[(NR + 1) / 2]; else print int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
minmax() { sort -n | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s-%s", lo, hi }'; }

for h in h1 h2; do
	start_agent $h "$(ag $h)" --etcd "$ETCD_URLS" --log-level info || bail "agent on $h did not start"
done
BODY='{"address":"'$VIP'/24","target":{"interface":"eth0"},"interval_ms":200,"rise":1,"fall":2,
 "checks":[{"type":"tcp","port":'$PORT'}]}'
for h in h1 h2; do
	api "$(ag $h)" PUT /v1/vips/gw -H 'Content-Type: application/json' --data-binary "$BODY"
	[ "$HTTP_CODE" = 201 ] || bail "PUT on $h: $(last_req)"
done
wait_for 5 sh -c "true" && sleep 2
[ "$(holder | wc -w)" = 1 ] || bail "no single holder: '$(holder)'"

declare -A RES BOTH
run_drill() { # KIND
	local kind=$1 old new t0 t
	old=$(holder)
	[ "$(wc -w <<<"$old")" = 1 ] || { echo "# $kind: no single holder ('$old')"; return 1; }
	new=$(other "$old")
	t0=$(mstime)
	case $kind in
	graceful) stop_agent "$(ag "$old")" ;;
	killed) kill_agent "$(ag "$old")" ;;
	dead) ip -n "$NA_FAB" link set "$(hostns "$old")" down ;;
	esac
	for _ in $(seq 60); do
		[ "$(answered "$t0" "$new")" != none ] && break
		sleep 0.1
	done
	t=$(answered "$t0" "$new")
	RES[$kind]="${RES[$kind]:-} $t"
	# restore the old holder as a backup
	case $kind in
	graceful | killed) start_agent "$old" "$(ag "$old")" --etcd "$ETCD_URLS" --log-level info >/dev/null || bail "restart failed" ;;
	dead) ip -n "$NA_FAB" link set "$(hostns "$old")" up ;;
	esac
	sleep 2.5 # the restored agent settles as backup; a new lease after a cut
	BOTH[$kind]=$((${BOTH[$kind]:-0} + $(both_samples "$t0" "$(mstime)")))
	echo "# $kind: $old → $new: first answer from $new after $t ms"
}

for kind in graceful killed dead; do
	for _ in $(seq "$DRILLS"); do run_drill $kind; done
done
for h in h1 h2; do stop_agent "$(ag $h)"; done

# ---- baseline: a hand-run failover script on the standby, dead-host drill
base_drill() {
	local t0 t
	in_host h2 ip addr del "$VIP/24" dev eth0 2>/dev/null
	in_host h1 ip addr replace "$VIP/24" dev eth0
	in_host h1 "$PY" -c "$GARP" "$VIP" eth0
	sleep 1
	nsenter --net="/run/netns/$(hostns h2)" bash -c '
		miss=0
		while :; do
			if timeout 0.1 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; then miss=0; else miss=$((miss + 1)); fi
			if [ $miss -ge 3 ]; then ip addr add "$3/24" dev eth0; "$4" -c "$5" "$3" eth0; exit 0; fi
			sleep 0.1
		done' _ "$(host_ip h1)" "$PORT" "$VIP" "$PY" "$GARP" &
	local mon=$!
	track_pid $mon
	sleep 0.5
	t0=$(mstime)
	ip -n "$NA_FAB" link set "$(hostns h1)" down
	for _ in $(seq 50); do
		[ "$(answered "$t0" h2)" != none ] && break
		sleep 0.1
	done
	t=$(answered "$t0" h2)
	RES[baseline]="${RES[baseline]:-} $t"
	sleep 0.3
	BOTH[baseline]=$((${BOTH[baseline]:-0} + $(both_samples "$t0" "$(mstime)")))
	kill $mon 2>/dev/null
	wait $mon 2>/dev/null
	ip -n "$NA_FAB" link set "$(hostns h1)" up
	echo "# baseline script, dead host: first answer from h2 after $t ms"
}
GARP='
import socket, struct, sys
ip, dev = socket.inet_aton(sys.argv[1]), sys.argv[2]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((dev, 0))
mac = s.getsockname()[4]
for op in (1, 2):
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, mac, ip, mac if op == 2 else b"\0" * 6, ip)
    s.send(b"\xff" * 6 + mac + b"\x08\x06" + arp)
'
if command -v keepalived >/dev/null; then
	echo "# keepalived is installed but this script has no keepalived drill yet"
fi
for _ in $(seq "$DRILLS"); do base_drill; done

echo
printf '%-34s %8s %14s %6s %s\n' "drill (client side, ms)" median min-max n "two-holder samples"
for kind in graceful killed dead baseline; do
	vals=$(tr ' ' '\n' <<<"${RES[$kind]:-}" | grep -E '^[0-9]+$')
	n=$(grep -c . <<<"$vals")
	label=$kind
	case $kind in
	graceful) label="netagent: SIGTERM of the holder" ;;
	killed) label="netagent: kill -9 of the holder" ;;
	dead) label="netagent: holder's link cut" ;;
	baseline) label="ip-addr script: holder's link cut" ;;
	esac
	printf '%-34s %8s %14s %6s %s\n' "$label" "$(median <<<"$vals")" "$(minmax <<<"$vals")" "$n" "${BOTH[$kind]:-0}"
done
