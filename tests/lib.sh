# shellcheck shell=bash
# Helpers for integration tests; `source "$(dirname "$0")/../lib.sh"` from a test.
#
# TAP (plan at the end):   ok DESC | not_ok DESC [DETAIL…] | skip DESC REASON | check DESC CMD…
#                          is DESC GOT WANT | like DESC GOT REGEX | diag MSG | finish
# Simulated hosts:         mkhost NAME [IP]   netns "na${NA_T}NAME" on the fabric bridge,
#                                             192.0.2.(10+i)/24, default route via 192.0.2.1
#                          hostns NAME, host_ip NAME, in_host NAME CMD…
# Agents:                  start_agent HOST NAME [ARGS…] | stop_agent NAME [SECS] |
#                          kill_agent NAME [-SIG] | agent_sock/agent_dir/agent_log/agent_pid/agent_name NAME
#                          (--name is NAME+token cut to 8 chars; state, run dir, socket, log
#                          in $NA_TMP/agent-NAME; env NA_AGENT_WRAPPER="valgrind -q" wraps it)
# Debugging: NA_KEEP_TMP=1 keeps $NA_TMP (logs, state); on failure finish prints log tails.
# HTTP over the socket:    api NAME METHOD PATH [CURL ARGS…]  → HTTP_CODE HTTP_BODY HTTP_HDRS HTTP_RC
#                          http_header NAME, json_get PATH JSON
# Misc:                    pick_port [HOST], track_pid PID, wait_for SECS CMD…, mkpki
# etcd (real etcd-server):  start_etcd_cluster N [--tls] [-- ETCD ARGS…]  member i in host "etcd<i>"
#                          (mkhost; clients http(s)://IP:2379, peers http://IP:2380); sets ETCD_URLS;
#                          --tls: https + --client-cert-auth, certificates from mkpki: clients use
#                          $PKI/ca.pem, $PKI/etcd-client.pem, $PKI/etcd-client.key
#                          etcd_urls | etcd_url I | etcd_pid I | etcd_leader (index, 0: none)
#                          stop_etcd_member I [-SIG] (default -9) | start_etcd_member I (rejoins)
#                          pause_etcd_member I / resume_etcd_member I (SIGSTOP / SIGCONT)
#                          isolate_etcd_member I / heal_etcd_member I (peer traffic dropped by nft;
#                          clients still reach it) | stop_etcd_cluster
# VIPs:                    start_vip_sampler OUT "ADDR…" HOST…  netlink sampler of who holds (address + live nft fence)
#
# Everything a test creates is named with the random prefix na${NA_T} (agents: their names)
# and lives in $NA_TMP; the EXIT/INT/TERM trap removes it all (agents, tracked processes,
# processes inside our namespaces, the namespaces, mounts under $NA_TMP, $NA_TMP) on every path.

set -u -o pipefail

NA_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NETAGENT=${NETAGENT:-$NA_ROOT/bin/netagent}
NETAGENTCTL=${NETAGENTCTL:-$NA_ROOT/bin/netagentctl}
# Debian's interpreter: a python3 earlier on PATH (pyenv) may lack Debian's packages.
if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY=python3; fi
NA_T=${NA_T:-$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')}
NA_P="na${NA_T}"
NA_FAB="${NA_P}fab"
NA_TMP=$(mktemp -d "/tmp/${NA_P}.XXXXXX")
export NA_T NA_TMP

# ---------------------------------------------------------------- TAP
_NA_N=0
_NA_FAILED=0
ok() {
	_NA_N=$((_NA_N + 1))
	echo "ok $_NA_N - $1"
}
not_ok() {
	_NA_N=$((_NA_N + 1))
	_NA_FAILED=$((_NA_FAILED + 1))
	echo "not ok $_NA_N - $1"
	shift
	local d
	for d in "$@"; do
		[ -n "$d" ] && printf '%s\n' "$d" | head -n 40 | sed 's/^/#   /'
	done
	return 0
}
skip() {
	_NA_N=$((_NA_N + 1))
	echo "ok $_NA_N - $1 # SKIP ${2:-}"
}
diag() { printf '# %s\n' "$*"; }
# check DESC CMD…: ok when CMD succeeds; its output becomes the failure detail.
check() {
	local desc=$1 out rc
	shift
	out=$("$@" 2>&1)
	rc=$?
	if [ $rc -eq 0 ]; then ok "$desc"; else not_ok "$desc" "command: $* (exit $rc)" "$out"; fi
	return $rc
}
is() { # DESC GOT WANT
	if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got:  '$2'" "want: '$3'"; return 1; fi
}
like() { # DESC GOT ERE
	if [[ $2 =~ $3 ]]; then ok "$1"; else not_ok "$1" "got:  '$2'" "want match: /$3/"; return 1; fi
}
bail() {
	echo "Bail out! $*"
	_NA_FAILED=$((_NA_FAILED + 1))
	exit 1
}
finish() {
	echo "1..$_NA_N"
	[ $_NA_FAILED -eq 0 ] && exit 0
	diag "$_NA_FAILED of $_NA_N failed"
	# The agents' logs vanish with $NA_TMP: show their tails now (NA_KEEP_TMP=1 keeps all).
	local l
	for l in "$NA_TMP"/agent-*/log; do
		[ -f "$l" ] || continue
		diag "--- last lines of $(basename "$(dirname "$l")") log:"
		tail -n "${NA_LOG_TAIL:-15}" "$l" | sed 's/^/#   /'
	done
	exit 1
}

# ---------------------------------------------------------------- cleanup
# shellcheck disable=SC2034 # AGENT_HOST: the host of each agent, for tests
declare -A AGENT_PID=() AGENT_HOST=() AGENT_NAMES=()
_NA_PIDS=()
_NA_CLEANED=0
track_pid() { _NA_PIDS+=("$@"); }

# Kills every process whose network namespace is the one mounted at $1.
_na_kill_netns_procs() {
	local ino p
	ino=$(stat -L -c %i "$1" 2>/dev/null) || return 0
	# One find over /proc, not a readlink process per pid: a loaded machine has thousands.
	for p in $(find /proc -mindepth 3 -maxdepth 3 -path '/proc/[0-9]*/ns/net' -lname "net:\[$ino\]" 2>/dev/null); do
		p=${p#/proc/}
		kill -9 "${p%%/*}" 2>/dev/null
	done
	return 0
}

# Our namespaces in /run/netns: the test prefix, or an agent name of this run as prefix.
_na_our_netns() {
	local n re="^${NA_P}"
	for n in "${!AGENT_NAMES[@]}"; do re="$re|^$n"; done
	ip netns list 2>/dev/null | awk '{print $1}' | grep -E "$re"
}

# Containers of this run's agents (provision/): their monitors, the runtime containers in each
# agent's runc root, and their cgroups (/sys/fs/cgroup/*/netagent/AGENT). Runs after the agents
# are gone, so nothing restarts what it removes.
_na_cleanup_containers() {
	local p root id n
	for p in /proc/[0-9]*; do
		tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -q "netagent-monitor .*$NA_TMP/" && kill -9 "${p#/proc/}" 2>/dev/null
	done
	for root in "$NA_TMP"/agent-*/run/runc; do
		[ -d "$root" ] || continue
		for id in "$root"/*; do
			[ -d "$id" ] && runc --root "$root" delete --force "${id##*/}" >/dev/null 2>&1
		done
	done
	for n in "${!AGENT_NAMES[@]}"; do
		for p in /sys/fs/cgroup/*/netagent/"$n" /sys/fs/cgroup/netagent/"$n"; do
			[ -d "$p" ] || continue
			# Not the shared netagent/ parent: another run's runc may be creating below it.
			find "$p" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null
			rmdir "$p" 2>/dev/null
		done
	done
	return 0
}

na_cleanup() {
	[ $_NA_CLEANED -eq 1 ] && return 0
	_NA_CLEANED=1
	local n p pids=() ns m
	trap '' INT TERM
	for n in "${!AGENT_PID[@]}"; do pids+=("${AGENT_PID[$n]}"); done
	pids+=("${_NA_PIDS[@]}")
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for _ in $(seq 30); do
		local alive=0
		for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
		[ $alive -eq 0 ] && break
		sleep 0.1
	done
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
	_na_cleanup_containers
	# Namespaces: ours only (prefix), plus namespace mounts under our temp dir.
	for ns in $(_na_our_netns); do
		_na_kill_netns_procs "/run/netns/$ns"
	done
	for m in $(awk -v d="$NA_TMP/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r); do
		_na_kill_netns_procs "$m"
	done
	wait 2>/dev/null
	for ns in $(_na_our_netns); do
		ip netns del "$ns" 2>/dev/null || { umount -l "/run/netns/$ns" 2>/dev/null; rm -f "/run/netns/$ns"; }
	done
	for m in $(awk -v d="$NA_TMP/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r); do
		umount -l "$m" 2>/dev/null
	done
	if [ "${NA_KEEP_TMP:-0}" = 1 ]; then
		echo "# NA_KEEP_TMP=1: kept $NA_TMP" >&2
	else
		case "$NA_TMP" in /tmp/na*) rm -rf "$NA_TMP" ;; esac
	fi
	return 0
}
trap na_cleanup EXIT
trap 'echo "# interrupted"; na_cleanup; exit 130' INT
trap 'echo "# terminated"; na_cleanup; exit 143' TERM HUP

# ---------------------------------------------------------------- preconditions
[ "$(id -u)" -eq 0 ] || bail "integration tests need root (network namespaces)"
[ -x "$NETAGENT" ] || bail "$NETAGENT not built (make)"
for _c in ip nsenter curl ss "$PY"; do
	command -v "$_c" >/dev/null || bail "$_c not found (scripts/deps.sh)"
done
unset _c

# ---------------------------------------------------------------- misc
# wait_for SECS CMD…: polls CMD every 0.1 s until it succeeds.
wait_for() {
	local end=$(($(now_ms) + $1 * 1000))
	shift
	until "$@" >/dev/null 2>&1; do
		[ "$(now_ms)" -ge $end ] && return 1
		sleep 0.1
	done
	return 0
}

# now_ms: monotonic-enough wall clock in ms, for measuring durations.
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# pick_port [HOST]: a TCP port nobody listens on or uses (in HOST's namespace if given).
pick_port() {
	local used p
	if [ -n "${1:-}" ]; then used=$(in_host "$1" ss -Htan | awk '{print $4}'); else used=$(ss -Htan | awk '{print $4}'); fi
	for _ in $(seq 200); do
		p=$((20000 + RANDOM % 40000))
		grep -q ":$p\$" <<<"$used" || { echo "$p"; return 0; }
	done
	return 1
}

# mkpki: dev PKI in $NA_TMP/pki (sets PKI).
mkpki() {
	PKI=$NA_TMP/pki
	"$NA_ROOT/scripts/pki.sh" "$PKI" >/dev/null || bail "scripts/pki.sh failed"
}

# ---------------------------------------------------------------- simulated hosts
declare -A HOST_IP=()
_NA_NHOSTS=0
hostns() { echo "${NA_P}$1"; }
host_ip() { echo "${HOST_IP[$1]}"; }
in_host() {
	local h=$1
	shift
	nsenter --net="/run/netns/$(hostns "$h")" "$@"
}

_na_fabric() {
	[ -e "/run/netns/$NA_FAB" ] && return 0
	ip netns add "$NA_FAB" || return 1
	ip -n "$NA_FAB" link set lo up
	ip -n "$NA_FAB" link add fab0 type bridge
	ip -n "$NA_FAB" addr add 192.0.2.1/24 dev fab0
	ip -n "$NA_FAB" link set fab0 up
}

# mkhost NAME [IP]: a "host" namespace with eth0 on the fabric bridge.
mkhost() {
	local name=$1 ip=${2:-} ns
	ns=$(hostns "$name")
	[ ${#ns} -le 15 ] || bail "host name '$name' too long (netns/link name $ns > 15 chars)"
	_na_fabric || bail "cannot create fabric namespace"
	_NA_NHOSTS=$((_NA_NHOSTS + 1))
	[ -n "$ip" ] || ip=192.0.2.$((10 + _NA_NHOSTS))
	ip=${ip%/*}
	ip netns add "$ns" || bail "ip netns add $ns failed"
	# The fabric side of the veth is named like the host namespace: unique, ≤ 15 chars.
	ip link add eth0 netns "$ns" type veth peer name "$ns" netns "$NA_FAB" || bail "veth for $ns failed"
	ip -n "$NA_FAB" link set "$ns" master fab0 up
	ip -n "$ns" link set lo up
	ip -n "$ns" link set eth0 up
	ip -n "$ns" addr add "$ip/24" dev eth0
	ip -n "$ns" route add default via 192.0.2.1 dev eth0
	HOST_IP[$name]=$ip
}

# ---------------------------------------------------------------- agents
# The daemon takes at most 8 characters for --name (it prefixes interface names): NAME
# followed by the run's random token, cut to 8 ("a1" → "a1c3f9e2"); NAME itself when
# NA_AGENT_EXACT=1 (the demo: readable names; its objects are in our namespaces anyway).
agent_name() {
	local n="$1${NA_T}"
	if [ "${NA_AGENT_EXACT:-0}" = 1 ]; then echo "$1"; else echo "${n:0:8}"; fi
}
agent_dir() { echo "$NA_TMP/agent-$1"; }
agent_sock() { echo "$NA_TMP/agent-$1/sock"; }
agent_log() { echo "$NA_TMP/agent-$1/log"; }
agent_pid() { echo "${AGENT_PID[$1]:-}"; }

_na_ready() {
	local s=$1
	[ -S "$s" ] || return 1
	if [ -x "$NETAGENTCTL" ] && [ -z "${NA_READY_CURL:-}" ]; then
		"$NETAGENTCTL" --socket "$s" status >/dev/null 2>&1
	else
		curl -fsS --max-time 2 --unix-socket "$s" http://localhost/v1/health >/dev/null 2>&1
	fi
}

# wait_agent NAME [SECS]: until the agent answers on its socket; 1 if it died or timed out.
wait_agent() {
	local name=$1 secs=${2:-10} pid s
	pid=${AGENT_PID[$name]}
	s=$(agent_sock "$name")
	for _ in $(seq $((secs * 10))); do
		if ! kill -0 "$pid" 2>/dev/null; then
			wait "$pid" 2>/dev/null
			diag "agent $name exited (status $?) during start; log tail:"
			tail -n 20 "$(agent_log "$name")" | sed 's/^/#   /'
			unset "AGENT_PID[$name]"
			return 1
		fi
		_na_ready "$s" && return 0
		sleep 0.1
	done
	diag "agent $name not ready after ${secs}s; log tail:"
	tail -n 20 "$(agent_log "$name")" | sed 's/^/#   /'
	if [ -S "$s" ] && curl -fsS --max-time 2 --unix-socket "$s" http://localhost/v1/health >/dev/null 2>&1; then
		diag "(GET /v1/health answers: it is '$NETAGENTCTL --socket $s status' that fails)"
	fi
	return 1
}

# start_agent HOST NAME [ARGS…]: runs bin/netagent in HOST's namespace (nsenter, not
# `ip netns exec`: its private mount namespace would hide the namespaces the agent makes).
# Reuses the agent's state dir, so calling it again after stop/kill is a restart.
start_agent() {
	local host=$1 name=$2 d
	shift 2
	[ -e "/run/netns/$(hostns "$host")" ] || bail "start_agent: no host $host"
	d=$(agent_dir "$name")
	mkdir -p "$d/state" "$d/run"
	echo "=== start $(date +%T.%N) ${NA_AGENT_WRAPPER:-} $*" >>"$d/log"
	# shellcheck disable=SC2086 # NA_AGENT_WRAPPER is a command line (e.g. "valgrind -q")
	nsenter --net="/run/netns/$(hostns "$host")" ${NA_AGENT_WRAPPER:-} "$NETAGENT" \
		--name "$(agent_name "$name")" --state-dir "$d/state" --run-dir "$d/run" \
		--socket "$(agent_sock "$name")" --log-level "${NA_LOG_LEVEL:-debug}" "$@" \
		</dev/null >>"$d/log" 2>&1 &
	AGENT_PID[$name]=$!
	# Exact names are not unique: never match other namespaces by them.
	[ "${NA_AGENT_EXACT:-0}" = 1 ] || AGENT_NAMES[$(agent_name "$name")]=1
	# shellcheck disable=SC2034 # read by tests
	AGENT_HOST[$name]=$host
	wait_agent "$name" "${NA_START_TIMEOUT:-10}"
}

# stop_agent NAME [SECS]: SIGTERM, waits; returns the exit status (124 if it had to be killed).
stop_agent() {
	local name=$1 secs=${2:-5} pid rc
	pid=${AGENT_PID[$name]:-}
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null
	for _ in $(seq $((secs * 10))); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		rc=124
	else
		wait "$pid" 2>/dev/null
		rc=$?
	fi
	unset "AGENT_PID[$name]"
	return $rc
}

# kill_agent NAME [-SIG]: signal (default -9) and reap.
kill_agent() {
	local name=$1 sig=${2:--9} pid
	pid=${AGENT_PID[$name]:-}
	[ -n "$pid" ] || return 0
	kill "$sig" "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	unset "AGENT_PID[$name]"
	return 0
}

# ---------------------------------------------------------------- HTTP
HTTP_CODE='' HTTP_BODY='' HTTP_HDRS='' HTTP_RC=0
# api NAME METHOD PATH [CURL ARGS…]: one request over the agent's unix socket.
api() {
	local name=$1 m=$2 p=$3
	shift 3
	: >"$NA_TMP/.body"
	: >"$NA_TMP/.hdrs"
	HTTP_CODE=$(curl -sS --max-time "${NA_HTTP_TIMEOUT:-10}" --unix-socket "$(agent_sock "$name")" \
		-X "$m" -o "$NA_TMP/.body" -D "$NA_TMP/.hdrs" -w '%{http_code}' "$@" \
		"http://localhost$p" 2>"$NA_TMP/.err")
	HTTP_RC=$?
	HTTP_BODY=$(cat "$NA_TMP/.body")
	HTTP_HDRS=$(tr -d '\r' <"$NA_TMP/.hdrs")
	return 0
}
# http_header NAME: value of a header of the last api() answer (case-insensitive).
http_header() {
	awk -v h="$(echo "$1" | tr 'A-Z' 'a-z')" -F': *' 'tolower($1) == h { sub(/^[^:]*: */, ""); print; exit }' <<<"$HTTP_HDRS"
}
# json_get PATH JSON: value at a dotted path (".error.code", "items.0.name"); strings raw,
# anything else as JSON. Exit 1 if absent, 2 if JSON does not parse.
json_get() {
	"$PY" -c '
import json, sys
try:
    v = json.loads(sys.argv[2])
except Exception:
    sys.exit(2)
for k in [p for p in sys.argv[1].split(".") if p]:
    if isinstance(v, list):
        try:
            v = v[int(k)]
        except (ValueError, IndexError):
            sys.exit(1)
    elif isinstance(v, dict) and k in v:
        v = v[k]
    else:
        sys.exit(1)
print(v if isinstance(v, str) else json.dumps(v))
' "$1" "$2"
}
# last_req: one-line description of the last api() call result, for failure details.
last_req() { printf 'status=%s curl_rc=%s body=%s' "$HTTP_CODE" "$HTTP_RC" "$(head -c 400 <<<"$HTTP_BODY")"; }

# ---------------------------------------------------------------- etcd
# A real etcd-server cluster on the fabric, one member per host namespace, so that a test can
# kill, freeze or cut off one member. Members run etcd's defaults (heartbeat 100 ms, election
# 1000 ms) plus whatever follows "--".
declare -A _ETCD_PID=() _ETCD_IP=()
_ETCD_N=0 _ETCD_SCHEME=http _ETCD_ARGS=() _ETCD_CLUSTER=''

etcd_url() { echo "$_ETCD_SCHEME://${_ETCD_IP[$1]}:2379"; }
etcd_urls() {
	local i out=''
	for i in $(seq "$_ETCD_N"); do out="$out${out:+,}$(etcd_url "$i")"; done
	echo "$out"
}
etcd_pid() { echo "${_ETCD_PID[$1]:-}"; }

# _etcd_curl I PATH [BODY]: one gateway call from member I's own namespace.
_etcd_curl() {
	local tls=() body=${3:-'{}'}
	[ "$_ETCD_SCHEME" = https ] && tls=(--cacert "$PKI/ca.pem" --cert "$PKI/etcd-client.pem" --key "$PKI/etcd-client.key")
	in_host "etcd$1" curl -sS --max-time 2 "${tls[@]}" -X POST "$(etcd_url "$1")$2" -d "$body" 2>/dev/null
}

_etcd_run() { # I new|existing
	local i=$1 ip=${_ETCD_IP[$1]} d="$NA_TMP/etcd$1" tls=()
	mkdir -p "$d"
	[ "$_ETCD_SCHEME" = https ] && tls=(--cert-file "$PKI/etcd-server.pem" --key-file "$PKI/etcd-server.key"
		--trusted-ca-file "$PKI/ca.pem" --client-cert-auth)
	echo "=== start $(date +%T.%N) $2" >>"$d/log"
	# nsenter itself, not in_host: a backgrounded function is a subshell, and its pid
	# (not etcd's) would be the one kill -9/-STOP reach; nsenter execs etcd in place
	nsenter --net="/run/netns/$(hostns "etcd$i")" etcd --name "m$i" --data-dir "$d/data" \
		--listen-client-urls "$(etcd_url "$i")" --advertise-client-urls "$(etcd_url "$i")" \
		--listen-peer-urls "http://$ip:2380" --initial-advertise-peer-urls "http://$ip:2380" \
		--initial-cluster "$_ETCD_CLUSTER" --initial-cluster-state "$2" \
		--initial-cluster-token "${NA_P}etcd" "${tls[@]}" "${_ETCD_ARGS[@]}" </dev/null >>"$d/log" 2>&1 &
	_ETCD_PID[$i]=$!
	track_pid "$!"
}

_etcd_healthy() { _etcd_curl "$1" /v3/maintenance/status | grep -q '"leader"'; }

# start_etcd_member I: (re)starts member I on its data dir and waits until it has a leader.
start_etcd_member() {
	_etcd_run "$1" existing
	wait_for 20 _etcd_healthy "$1" || { diag "etcd member $1 not healthy; log:"; tail -n 15 "$NA_TMP/etcd$1/log" | sed 's/^/#   /'; return 1; }
}

start_etcd_cluster() {
	local n=$1 i
	shift
	stop_etcd_cluster
	_ETCD_SCHEME=http _ETCD_ARGS=() _ETCD_CLUSTER=''
	while [ $# -gt 0 ]; do
		case $1 in
		--tls) _ETCD_SCHEME=https ;;
		--) shift; _ETCD_ARGS=("$@"); break ;;
		*) bail "start_etcd_cluster: unknown argument $1" ;;
		esac
		shift
	done
	command -v etcd >/dev/null || bail "etcd not found (apt-get install etcd-server)"
	_ETCD_N=$n
	local sans=''
	for i in $(seq "$n"); do
		[ -e "/run/netns/$(hostns "etcd$i")" ] || mkhost "etcd$i"
		_ETCD_IP[$i]=$(host_ip "etcd$i")
		_ETCD_CLUSTER="$_ETCD_CLUSTER${_ETCD_CLUSTER:+,}m$i=http://${_ETCD_IP[$i]}:2380"
		sans="$sans${sans:+,}IP:${_ETCD_IP[$i]}"
	done
	if [ "$_ETCD_SCHEME" = https ]; then
		PKI=$NA_TMP/pki
		NA_PKI_ETCD_SANS=$sans "$NA_ROOT/scripts/pki.sh" "$PKI" >/dev/null || bail "scripts/pki.sh failed"
	fi
	for i in $(seq "$n"); do rm -rf "$NA_TMP/etcd$i/data"; _etcd_run "$i" new; done
	for i in $(seq "$n"); do
		wait_for 30 _etcd_healthy "$i" || { diag "etcd member $i not healthy; log:"; tail -n 15 "$NA_TMP/etcd$i/log" | sed 's/^/#   /'; return 1; }
	done
	ETCD_URLS=$(etcd_urls)
	export ETCD_URLS
}

stop_etcd_member() {
	local pid=${_ETCD_PID[$1]:-}
	[ -n "$pid" ] || return 0
	kill -CONT "$pid" 2>/dev/null
	kill "${2:--9}" "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	unset "_ETCD_PID[$1]"
	return 0
}
pause_etcd_member() { kill -STOP "${_ETCD_PID[$1]}"; }
resume_etcd_member() { kill -CONT "${_ETCD_PID[$1]}"; }

# The member keeps its client port but hears no peer: it loses its leader (and with
# "hasleader" metadata refuses clients) while the others keep a quorum.
isolate_etcd_member() {
	in_host "etcd$1" nft -f - <<-EOF
		table inet ${NA_P}iso {
			chain in { type filter hook input priority 0; tcp dport 2380 drop; tcp sport 2380 drop; }
			chain out { type filter hook output priority 0; tcp dport 2380 drop; tcp sport 2380 drop; }
		}
	EOF
}
heal_etcd_member() { in_host "etcd$1" nft delete table inet "${NA_P}iso" 2>/dev/null; return 0; }

# etcd_leader: index of the member that leads (asked of each member), 0 if none knows.
etcd_leader() {
	local i j st leader id
	for i in $(seq "$_ETCD_N"); do
		st=$(_etcd_curl "$i" /v3/maintenance/status) || continue
		leader=$(json_get leader "$st") || continue
		for j in $(seq "$_ETCD_N"); do
			id=$(json_get header.member_id "$(_etcd_curl "$j" /v3/maintenance/status)") || continue
			[ "$id" = "$leader" ] && { echo "$j"; return 0; }
		done
	done
	echo 0
}

stop_etcd_cluster() {
	local i
	for i in "${!_ETCD_PID[@]}"; do stop_etcd_member "$i"; heal_etcd_member "$i"; done
	_ETCD_N=0
	return 0
}

# ---------------------------------------------------------------- VIP sampler
# start_vip_sampler OUT "ADDR [ADDR6…]" HOST…: (a HOST starting with / is a namespace path, e.g. a
# gateway container's) in the background, one line per round into OUT:
# "ms" then, for each host and each address, 1 when the host holds the address (first read),
# then the same columns again counting a host only when a second read, made in the reverse
# host order, saw it hold it too, then (diagnostics) the first read's bare address columns.
# A host holds an address when its namespace has it AND, where the agent fences it with
# nftables (etcd mode: tables netagent.<agent>.<vip> in the address's family), one of those
# tables' set "live" has a live element for it: expired elements are not dumped, and
# an expired element means the host no longer answers ARP/NS or traffic for it. Without such
# tables (local mode) the address alone counts. Reads in turn are not one instant: a handover
# from a host read earlier to one read later would look like two holders; the second columns
# are the two-holder verdict's. Netlink dumps (rtnetlink and nfnetlink) on sockets made once
# per namespace, not a process per read, so the rate holds on a loaded machine (100+ Hz).
# Sets VIP_SAMPLER (pid).
start_vip_sampler() {
	local out=$1 addrs=$2 h nss=()
	shift 2
	for h in "$@"; do
		case $h in /*) nss+=("$h") ;; *) nss+=("/run/netns/$(hostns "$h")") ;; esac
	done
	"$PY" - "$addrs" "${nss[@]}" >"$out" 2>"$out.err" <<'PYEOF' &
import ctypes, os, socket, struct, sys, time
libc = ctypes.CDLL(None, use_errno=True)
addrs = [socket.inet_pton(socket.AF_INET6 if ":" in a else socket.AF_INET, a) for a in sys.argv[1].split()]
fams = sorted(set(2 if len(a) == 4 else 10 for a in addrs))  # NFPROTO_IPV4 / NFPROTO_IPV6
me = os.open("/proc/self/ns/net", os.O_RDONLY)
socks = []
for p in sys.argv[2:]:
    fd = os.open(p, os.O_RDONLY)
    if libc.setns(fd, 0x40000000) != 0:
        sys.exit("setns %s failed" % p)
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    s.bind((0, 0))
    n = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)  # NETLINK_NETFILTER
    n.bind((0, 0))
    socks.append((s, n))
    os.close(fd)
libc.setns(me, 0x40000000)
seq = 0
def dump(s, req):
    """Sends one dump request; the attribute bytes of each answer, [] on error."""
    global seq
    seq += 1
    s.send(req(seq))
    msgs = []
    while True:
        data = s.recv(1 << 16)
        off = 0
        while off + 16 <= len(data):
            ln, typ, _, sq, _ = struct.unpack_from("=IHHII", data, off)
            if ln < 16 or typ in (2, 3):  # ERROR, DONE
                return msgs
            msgs.append(bytes(data[off + 16:off + ln]))
            off += (ln + 3) & ~3
def attrs(b, off=0):
    out = []
    while off + 4 <= len(b):
        al, at = struct.unpack_from("=HH", b, off)
        if al < 4:
            break
        out.append((at & 0x3fff, b[off + 4:off + al]))
        off += (al + 3) & ~3
    return out
def nla(t, v):
    return struct.pack("=HH", 4 + len(v), t) + v + b"\0" * ((4 - len(v) % 4) % 4)
def nft(sub, fam, body=b""):
    # nlmsghdr + nfgenmsg (family, version 0, res_id 0); NFNL_SUBSYS_NFTABLES = 10
    return lambda q: struct.pack("=IHHII", 20 + len(body), (10 << 8) | sub, 0x301, q, 0) + struct.pack("=BBH", fam, 0, 0) + body
def addrs_of(s):
    found = set()
    for m in dump(s, lambda q: struct.pack("=IHHII", 24, 22, 0x301, q, 0) + struct.pack("=BBBBI", 0, 0, 0, 0, 0)):
        for t, v in attrs(m, 8):
            if t in (1, 2):  # IFA_ADDRESS, IFA_LOCAL
                found.add(v)
    return found
def fence_of(n):
    """{family: set of live keys} for the families that have netagent tables."""
    out = {}
    for fam in fams:
        for m in dump(n, nft(1, fam)):  # NFT_MSG_GETTABLE
            name = dict(attrs(m, 4)).get(1, b"").rstrip(b"\0")
            if not name.startswith(b"netagent."):
                continue
            live = out.setdefault(fam, set())
            body = nla(1, name + b"\0") + nla(2, b"live\0")
            for e in dump(n, nft(13, fam, body)):  # NFT_MSG_GETSETELEM
                for t, lst in attrs(e, 4):
                    if t != 3:  # NFTA_SET_ELEM_LIST_ELEMENTS
                        continue
                    for _, el in attrs(lst):
                        for t2, key in attrs(el):
                            if t2 == 1:  # NFTA_SET_ELEM_KEY → NFTA_DATA_VALUE
                                live.update(v for t3, v in attrs(key) if t3 == 1)
    return out
def read(sn):
    s, n = sn
    have = addrs_of(s)
    fence = fence_of(n)
    holds = []
    for a in addrs:
        fam = 2 if len(a) == 4 else 10
        holds.append(int(a in have and (fam not in fence or a in fence[fam])))
    return holds, [int(a in have) for a in addrs]
out = sys.stdout
while True:
    t = int(time.time() * 1000)
    first = [read(sn) for sn in socks]
    second = [read(sn)[0] for sn in reversed(socks)][::-1]
    cols = [str(x) for h, _ in first for x in h]
    cols += [str(int(x and y)) for (h1, _), h2 in zip(first, second) for x, y in zip(h1, h2)]
    cols += [str(x) for _, r in first for x in r]
    out.write("%d %s\n" % (t, " ".join(cols)))
    out.flush()
    time.sleep(0.005)
PYEOF
	VIP_SAMPLER=$!
	track_pid $VIP_SAMPLER
}

# ---------------------------------------------------------------- VIP helpers
# vip_fence_table AGENT VIP: the nftables table name of AGENT's fence of VIP (etcd mode,
# vip/fence.c): netagent.<agent name>.<vip>, '-' written '_'.
vip_fence_table() { local t; t="netagent.$(agent_name "$1").$2"; echo "${t//-/_}"; }
# start_vip_prober OUT HOST ADDR PORT [MAC]: in the background, from HOST's namespace, a TCP
# connect to ADDR:PORT every 10 ms with a 100 ms timeout; one line per try into OUT: "ms
# answer" (the first line the service sent, or "-"). With MAC, HOST's neighbour entry for
# ADDR is pinned to MAC first (permanent): the prober then only ever asks that one machine,
# e.g. the old holder, whatever gratuitous ARPs say. Sets VIP_PROBER (pid).
start_vip_prober() {
	local out=$1 host=$2 addr=$3 port=$4 mac=${5:-}
	if [ -n "$mac" ]; then
		in_host "$host" ip neigh replace "$addr" lladdr "$mac" dev eth0 nud permanent || return 1
	fi
	nsenter --net="/run/netns/$(hostns "$host")" "$PY" - "$addr" "$port" >"$out" 2>"$out.err" <<'PYEOF' &
import socket, sys, time
addr, port = sys.argv[1], int(sys.argv[2])
fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
while True:
    t = int(time.time() * 1000)
    got = "-"
    try:
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(0.1)
        s.connect((addr, port))
        got = s.recv(32).decode().strip() or "-"
    except OSError:
        pass
    finally:
        s.close()
    sys.stdout.write("%d %s\n" % (t, got))
    sys.stdout.flush()
    time.sleep(0.01)
PYEOF
	VIP_PROBER=$!
	track_pid $VIP_PROBER
}
# prober_first OUT SINCE_MS ANSWER: ms from SINCE_MS to the first try answered ANSWER ("none").
prober_first() {
	awk -v t0="$2" -v a="$3" '$1 >= t0 && $2 == a { print $1 - t0; f = 1; exit } END { if (!f) print "none" }' "$1"
}
# prober_last OUT SINCE_MS ANSWER: ms from SINCE_MS to the last try answered ANSWER ("none").
prober_last() {
	awk -v t0="$2" -v a="$3" '$1 >= t0 && $2 == a { l = $1 - t0; f = 1 } END { print f ? l : "none" }' "$1"
}
