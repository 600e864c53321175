#!/usr/bin/env bash
# VIP failover time seen by a client (issue 7's benchmark): two candidate hosts with etcd on
# the fabric, a client connecting to VIP:port every 10 ms (100 ms connect timeout). A drill's
# time runs from the fault to the first connect answered by the new holder. Drills, each
# BENCH_VIP_DRILLS times (10): graceful step-down (SIGTERM of the holder's agent), agent killed
# (kill -9), host dead (its underlay link cut). A sampler of both hosts counts the samples with
# two holders (must be 0): a host holds the VIP when it has the address and, where netagent
# fences it (etcd mode), its nftables fence element is live (tests/lib.sh start_vip_sampler):
# after a kill the old address lingers up to its whole-second lifetime, unanswering.
# Baseline in the same run, same hosts, client and sampler: keepalived (Debian's), started
# here in the host namespaces with its config and pid files in $NA_TMP (never the system's
# /etc/keepalived or service): defaults (VRRPv2, advert_int 1) and VRRPv3 with advert_int
# 0.1, both BACKUP with nopreempt (like netagent, the restored host does not take the VIP
# back), host dead = the master's underlay link cut. One more drill for both systems: the two
# candidates cannot hear each other while the client and etcd hear both (bridge port
# isolation of the candidates' ports, BENCH_VIP_PART_DRILLS times, 5 s each: longer than
# VRRPv2's master-down interval of 3.6 s).
# Env: BENCH_VIP_DRILLS, BENCH_VIP_PART_DRILLS (3), BENCH_VIP_NETAGENT=0 / BENCH_VIP_KEEPALIVED=0
# (skip one side), NETAGENT_VIP_* (the agent's tunables, passed through).
set -uo pipefail
cd "$(dirname "$0")/.."
DRILLS=${BENCH_VIP_DRILLS:-10}
PDRILLS=${BENCH_VIP_PART_DRILLS:-3}
# shellcheck source=../tests/lib.sh
source tests/lib.sh
# shellcheck source=summary.sh
source bench/summary.sh
PY=/usr/bin/python3
VIP=192.0.2.100
KA=/usr/sbin/keepalived
DO_NA=${BENCH_VIP_NETAGENT:-1}
DO_KA=${BENCH_VIP_KEEPALIVED:-1}
[ "$DO_KA" = 0 ] || [ -x $KA ] || bail "keepalived not installed (bash scripts/deps.sh)"

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

# The sampler: "ms h1 h2 h1' h2' …" (1 = the host holds the VIP), tests/lib.sh's netlink
# sampler (100+ Hz on a loaded machine; the primed columns are the two-holder verdict's).
SAMPLES=$NA_TMP/samples
start_vip_sampler "$SAMPLES" "$VIP" h1 h2

mstime() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
other() { [ "$1" = h1 ] && echo h2 || echo h1; }
ag() { echo "a${1#h}"; }
# The sampler's latest verdict (address + live fence element), not the bare address.
holder() {
	local h out='' c=2
	for h in h1 h2; do
		[ "$(tail -n 1 "$SAMPLES" | awk -v c=$c '{ print $c }')" = 1 ] && out="$out${out:+ }$h"
		c=$((c + 1))
	done
	echo "$out"
}
one_holder() { [ "$(holder | wc -w)" = 1 ]; }
# answered SINCE HOST: ms from SINCE to the client's first connect answered by HOST.
answered() {
	awk -v t0="$1" -v h="$2" '$1 >= t0 && $2 == h { print $1 - t0; f = 1; exit } END { if (!f) print "none" }' "$PROBE"
}
both_samples() { awk -v a="$1" -v b="$2" '$1 >= a && $1 <= b && $4 == 1 && $5 == 1 { n++ } END { print n + 0 }' "$SAMPLES"; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (!NR) { print "-"; exit } if (NR % 2) print v[(NR + 1) / 2]; else print int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
minmax() { sort -n | awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR) printf "%s-%s", lo, hi; else printf "-" }'; }
link_cut() { ip -n "$NA_FAB" link set "$(hostns "$1")" down; }
link_heal() { ip -n "$NA_FAB" link set "$(hostns "$1")" up; }
# The candidates' bridge ports isolated: they cannot reach each other, everyone else
# (client, etcd) still reaches both.
isolate() { local h; for h in h1 h2; do bridge -n "$NA_FAB" link set dev "$(hostns $h)" isolated "$1" || return 1; done; }

declare -A RES BOTH
# fault KIND SYSTEM HOST: the fault; restore KIND SYSTEM HOST: the old holder back as a backup.
fault() {
	case $1 in
	graceful) stop_agent "$(ag "$3")" ;;
	killed) kill_agent "$(ag "$3")" ;;
	dead) link_cut "$3" ;;
	esac
}
restore() {
	case $1 in
	graceful | killed) start_agent "$3" "$(ag "$3")" --etcd "$ETCD_URLS" --log-level info >/dev/null || bail "restart failed" ;;
	dead) link_heal "$3" ;;
	esac
}
# run_drill KIND SYSTEM SETTLE_S: one takeover, its time and its two-holder samples, recorded
# under "SYSTEM:KIND".
run_drill() {
	local kind=$1 sys=$2 settle=$3 old new t0 t
	wait_for 3 one_holder
	old=$(holder)
	[ "$(wc -w <<<"$old")" = 1 ] || { echo "# $sys $kind: no single holder ('$old')"; return 1; }
	new=$(other "$old")
	t0=$(mstime)
	fault "$kind" "$sys" "$old"
	for _ in $(seq 100); do
		[ "$(answered "$t0" "$new")" != none ] && break
		sleep 0.1
	done
	t=$(answered "$t0" "$new")
	RES[$sys:$kind]="${RES[$sys:$kind]:-} $t"
	restore "$kind" "$sys" "$old"
	sleep "$settle"
	BOTH[$sys:$kind]=$((${BOTH[$sys:$kind]:-0} + $(both_samples "$t0" "$(mstime)")))
	echo "# $sys $kind: $old → $new: first answer from $new after $t ms"
}
# part_drill SYSTEM: the candidates cut from each other for 5 s; counts two-holder samples.
part_drill() {
	local sys=$1 t0
	wait_for 3 one_holder || { echo "# $sys partition: no single holder ('$(holder)')"; return 1; }
	t0=$(mstime)
	isolate on || bail "bridge port isolation failed"
	sleep 5
	isolate off
	sleep 3 # both masters (keepalived) settle on one again
	local n
	n=$(both_samples "$t0" "$(mstime)")
	RES[$sys:part]="${RES[$sys:part]:-} 3000"
	BOTH[$sys:part]=$((${BOTH[$sys:part]:-0} + n))
	echo "# $sys partition between the candidates: $n samples with two holders"
}

# ---- netagent
if [ "$DO_NA" != 0 ]; then
	for h in h1 h2; do
		start_agent $h "$(ag $h)" --etcd "$ETCD_URLS" --log-level info || bail "agent on $h did not start"
	done
	BODY='{"address":"'$VIP'/24","target":{"interface":"eth0"},"interval_ms":200,"rise":1,"fall":2,
 "checks":[{"type":"tcp","port":'$PORT'}]}'
	for h in h1 h2; do
		api "$(ag $h)" PUT /v1/vips/gw -H 'Content-Type: application/json' --data-binary "$BODY"
		[ "$HTTP_CODE" = 201 ] || bail "PUT on $h: $(last_req)"
	done
	wait_for 5 one_holder && sleep 2
	one_holder || bail "no single holder: '$(holder)'"
	for kind in graceful killed dead; do
		# 2.5 s: the restored agent settles as backup; a new lease after a cut
		for _ in $(seq "$DRILLS"); do run_drill $kind na 2.5; done
	done
	for _ in $(seq "$PDRILLS"); do part_drill na; done
	for h in h1 h2; do stop_agent "$(ag $h)"; done
fi

# ---- keepalived, its own process per host namespace, files under $NA_TMP/keepalived
KD=$NA_TMP/keepalived
mkdir -p "$KD"
declare -A KA_PID
VRID=$((1 + 16#${NA_T:0:2} % 250))
ka_start() { # HOST VERSION ADVERT
	local h=$1 conf=$KD/$1.conf
	cat >"$conf" <<-KAEOF
		global_defs {
			router_id ${NA_P}$h
			vrrp_version $2
		}
		vrrp_instance gw {
			state BACKUP
			nopreempt
			interface eth0
			virtual_router_id $VRID
			priority 100
			advert_int $3
			virtual_ipaddress {
				$VIP/24 dev eth0
			}
		}
	KAEOF
	# -n: no daemon fork, so the pid is keepalived's own parent (its VRRP child dies with
	# it); lib.sh's trap also kills whatever runs in our namespaces on any exit
	nsenter --net="/run/netns/$(hostns "$h")" $KA -n -P -l -D -G -f "$conf" \
		-p "$KD/$h.pid" -r "$KD/$h.vrrp.pid" </dev/null >>"$KD/$h.log" 2>&1 &
	KA_PID[$h]=$!
	track_pid $!
}
ka_stop() {
	local h p
	for h in h1 h2; do
		p=${KA_PID[$h]:-}
		[ -n "$p" ] || continue
		kill -TERM "$p" 2>/dev/null
		wait "$p" 2>/dev/null
		unset "KA_PID[$h]"
	done
	for h in h1 h2; do in_host $h ip addr del "$VIP/24" dev eth0 2>/dev/null; done
	return 0
}
if [ "$DO_KA" != 0 ]; then
	for cfg in "2 1" "3 0.1"; do
		read -r ver adv <<<"$cfg"
		sys="ka${ver}"
		ka_start h1 "$ver" "$adv"
		sleep 0.3 # h1 first, so that it is the master
		ka_start h2 "$ver" "$adv"
		wait_for 10 one_holder || bail "keepalived VRRPv$ver: no single holder ('$(holder)'); log: $(tail -n 5 "$KD/h1.log")"
		sleep 1
		settle=2.5
		[ "$ver" = 3 ] && settle=1.5
		for _ in $(seq "$DRILLS"); do run_drill dead "$sys" $settle; done
		for _ in $(seq "$PDRILLS"); do part_drill "$sys"; done
		ka_stop
	done
fi

echo
printf '%-54s %8s %14s %4s %s\n' "drill (client side, ms)" median min-max n "two-holder samples"
row() { # KEY LABEL
	local vals n
	[ -n "${RES[$1]:-}" ] || return 0
	vals=$(tr ' ' '\n' <<<"${RES[$1]}" | grep -E '^[0-9]+$')
	n=$(grep -c . <<<"$vals")
	if [[ $1 == *:part ]]; then
		printf '%-54s %8s %14s %4s %s\n' "$2" - - "$n" "${BOTH[$1]:-0}"
	else
		printf '%-54s %8s %14s %4s %s\n' "$2" "$(median <<<"$vals")" "$(minmax <<<"$vals")" "$n" "${BOTH[$1]:-0}"
	fi
}
row na:graceful "netagent: SIGTERM of the holder"
row na:killed "netagent: kill -9 of the holder's agent"
row na:dead "netagent: holder's link cut"
row na:part "netagent: candidates cut from each other (5 s)"
row ka2:dead "keepalived VRRPv2 advert 1 s: master's link cut"
row ka2:part "keepalived VRRPv2 advert 1 s: cut from each other (5 s)"
row ka3:dead "keepalived VRRPv3 advert 0.1 s: master's link cut"
row ka3:part "keepalived VRRPv3 advert 0.1 s: cut from each other (5 s)"
med_of() { [ -n "${RES[$1]:-}" ] && tr ' ' '\n' <<<"${RES[$1]}" | grep -E '^[0-9]+$' | median || echo -; }
ka3=$(med_of ka3:dead)
ka2=$(med_of ka2:dead)
bench_row vip "graceful step-down (SIGTERM) → new holder answers" "$(med_of na:graceful) ms" "" "" "< 300 ms"
bench_row vip "holder's agent kill -9 → new holder answers" "$(med_of na:killed) ms" "" "" "< 1500 ms"
bench_row vip "holder's link cut → new holder answers" "$(med_of na:dead) ms" "keepalived VRRPv3 0.1 s $ka3 ms, VRRPv2 $ka2 ms" "" "< 1500 ms"
bench_row vip "candidates cut from each other: samples with two holders" "${BOTH[na:part]:-0}" "keepalived VRRPv3 ${BOTH[ka3:part]:-n/a}, VRRPv2 ${BOTH[ka2:part]:-n/a}" "" "0"
read -r N SPAN < <(awk 'NR == 1 { t0 = $1 } { n++; t = $1 } END { print n + 0, t - t0 }' "$SAMPLES")
echo "sampler: $N samples over $SPAN ms ($((N * 1000 / (SPAN > 0 ? SPAN : 1))) Hz)"
