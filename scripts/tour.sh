#!/usr/bin/env bash
# A guided tour of the agent's API and overlay networks on simulated hosts (network
# namespaces; nothing outside them is touched): `make tour`, as root. `make demo` is the
# whole system (scripts/demo.sh).
#
#   scripts/tour.sh                 tour, then follow the event stream until Ctrl-C
#   DEMO_NONINTERACTIVE=1 scripts/tour.sh   tour only (also when stdin is not a terminal)
#
# Everything is named with a random prefix and removed on exit, Ctrl-C or failure.
# The building blocks (hosts, agents, cleanup) come from tests/lib.sh.

if [ "$(id -u)" -ne 0 ]; then
	echo "demo: needs root (network namespaces): run make demo as root (or with sudo)" >&2
	exit 1
fi
export NA_LOG_LEVEL=${NA_LOG_LEVEL:-info} NA_AGENT_EXACT=1
# shellcheck source=../tests/lib.sh
. "$(dirname "$0")/../tests/lib.sh"
[ -x "$NETAGENTCTL" ] || { echo "demo: $NETAGENTCTL not built (make)" >&2; exit 1; }

API_PORT=7443
AGENT=agent1
AGENT2=agent2
CTL() { "$NETAGENTCTL" --socket "$(agent_sock $AGENT)" "$@"; }

# ------------------------------------------------------------------ presentation
if [ -t 1 ]; then B=$'\e[1m' D=$'\e[2m' G=$'\e[32m' R=$'\e[31m' N=$'\e[0m'; else B='' D='' G='' R='' N=''; fi
section() { printf '\n%s== %s ==%s\n' "$B" "$*" "$N"; }
say() { printf '%s\n' "$*"; }
# run CMD…: shows the command, then runs it (output indented).
run() {
	printf '%s$ %s%s\n' "$D" "$*" "$N"
	"$@" 2>&1 | sed 's/^/  /'
	return "${PIPESTATUS[0]}"
}
show_cmd() { printf '%s$ %s%s\n' "$D" "$*" "$N"; }
# ctl ARGS…: netagentctl on the local socket, shown as typed on the host.
ctl() {
	show_cmd netagentctl "$@"
	CTL "$@" 2>&1 | sed 's/^/  /'
}
# on HOST CMD…: shows "[HOST]$ CMD" and runs it in that simulated host.
on() {
	local h=$1
	shift
	printf '%s[%s]$ %s%s\n' "$D" "$h" "$*" "$N"
	in_host "$h" "$@" 2>&1 | sed 's/^/  /'
	return "${PIPESTATUS[0]}"
}
good() { printf '  %s✔ %s%s\n' "$G" "$*" "$N"; }
bad() { printf '  %s✘ %s%s\n' "$R" "$*" "$N"; }

# ------------------------------------------------------------------ teardown
DEMO_STOPPING=0
demo_stop() {
	[ $DEMO_STOPPING -eq 1 ] && return 0
	DEMO_STOPPING=1
	trap '' INT TERM
	section "Teardown"
	if [ -n "$(agent_pid $AGENT)" ]; then
		stop_agent $AGENT 5
		local rc=$?
		if [ $rc -eq 0 ]; then good "agent stopped cleanly (SIGTERM, exit 0)"; else bad "agent exit status $rc"; fi
	fi
	[ -n "$(agent_pid $AGENT2)" ] && stop_agent $AGENT2 5
	na_cleanup
	good "namespaces, processes and temp files of prefix ${NA_P} removed"
}
trap 'demo_stop; exit 130' INT
trap 'demo_stop; exit 143' TERM HUP
trap 'demo_stop' EXIT

# ------------------------------------------------------------------ steps
demo_hosts() {
	section "1. Simulated hosts (network namespaces on a fabric bridge, underlay 192.0.2.0/24)"
	mkhost h1 192.0.2.11
	mkhost ctl 192.0.2.2
	say "host h1  = netns $(hostns h1)  (eth0 192.0.2.11, default route via 192.0.2.1)"
	say "host ctl = netns $(hostns ctl) (eth0 192.0.2.2, plays the controller)"
	run ip -n "$(hostns h1)" -br addr show dev eth0
	run ip -n "$(hostns h1)" route
}

demo_pki() {
	section "2. Development PKI (CA, agent server cert, controller client cert)"
	NA_PKI_SANS="IP:192.0.2.11" mkpki
	say "in $PKI:"
	run ls "$PKI"
	run openssl x509 -in "$PKI/client.pem" -noout -subject -ext extendedKeyUsage
}

demo_agent() {
	section "3. Start netagent in host h1 (nsenter --net, mTLS on 192.0.2.11:$API_PORT)"
	show_cmd nsenter --net=/run/netns/"$(hostns h1)" "$NETAGENT" --name "$(agent_name $AGENT)" \
		--listen 192.0.2.11:$API_PORT --tls-cert server.pem --tls-key server.key --tls-ca ca.pem \
		--socket "$(agent_sock $AGENT)" --state-dir … --run-dir …
	if ! start_agent h1 $AGENT --listen 192.0.2.11:$API_PORT --tls-cert "$PKI/server.pem" \
		--tls-key "$PKI/server.key" --tls-ca "$PKI/ca.pem"; then
		bad "agent did not start; log:"
		tail -n 30 "$(agent_log $AGENT)" | sed 's/^/  /'
		exit 1
	fi
	good "agent $(agent_name $AGENT) running, pid $(agent_pid $AGENT), log $(agent_log $AGENT)"
}

demo_cli() {
	section "4. netagentctl over the local unix socket (mode $(stat -c %a "$(agent_sock $AGENT)"), no TLS)"
	say "(netagentctl = $NETAGENTCTL --socket $(agent_sock $AGENT))"
	ctl status
	ctl host
	ctl -o json host
}

demo_mtls() {
	section "5. The controller's view: HTTPS with a client certificate (from host ctl)"
	local url=https://192.0.2.11:$API_PORT
	cd "$PKI" || return 1
	say "(in $PKI)"
	on ctl curl -sS --cacert ca.pem --cert client.pem --key client.key "$url/v1/health"
	echo
	on ctl "$NETAGENTCTL" --url "$url" --cacert ca.pem --cert client.pem --key client.key status
	say ""
	say "Without a client certificate the TLS handshake itself is refused:"
	if on ctl curl -sS --max-time 5 --cacert ca.pem "$url/v1/health"; then
		bad "accepted without a client certificate!"
	else
		good "rejected"
	fi
	say "A client certificate from another CA is refused too:"
	if on ctl curl -sS --max-time 5 --cacert ca.pem --cert other-client.pem --key other-client.key "$url/v1/health"; then
		bad "accepted a foreign certificate!"
	else
		good "rejected"
	fi
	cd - >/dev/null || true
}

demo_metrics() {
	section "7. Prometheus metrics (excerpt of GET /metrics)"
	show_cmd curl --unix-socket "$(agent_sock $AGENT)" http://localhost/metrics
	curl -sS --unix-socket "$(agent_sock $AGENT)" http://localhost/metrics |
		grep -E '^netagent_(http_requests_total|uptime_seconds|http_request_duration_seconds_(count|sum))' |
		head -n 15 | sed 's/^/  /'
}

# ctl2 ARGS…: netagentctl on host h2's agent.
ctl2() {
	show_cmd "[h2] netagentctl" "$@"
	"$NETAGENTCTL" --socket "$(agent_sock $AGENT2)" "$@" 2>&1 | sed 's/^/  /'
}

demo_overlay() {
	section "6. A private overlay network for cluster db1 across two hosts (VXLAN over netlink)"
	mkhost h2 192.0.2.12
	start_agent h2 $AGENT2 || { bad "agent on h2 did not start"; exit 1; }
	good "second agent $(agent_name $AGENT2) running in host h2 (192.0.2.12)"
	# "Containers": one namespace per PostgreSQL node, on each host.
	ip netns add "${NA_P}pg0" && ip netns add "${NA_P}pg1"
	say "container namespaces: ${NA_P}pg0 (on h1), ${NA_P}pg1 (on h2)"
	ctl net apply db1 --vni 4001 --subnet 198.18.1.0/24
	ctl2 net apply db1 --vni 4001 --subnet 198.18.1.0/24
	ctl ep add db1 pg-0 --netns "/run/netns/${NA_P}pg0" --ip 198.18.1.2/24
	ctl2 ep add db1 pg-1 --netns "/run/netns/${NA_P}pg1" --ip 198.18.1.3/24
	say "The controller tells each host where the other's endpoint lives (static FDB + neighbour):"
	ctl ep add db1 pg-1 --remote --ip 198.18.1.3/24 --mac 02:84:c6:12:01:03 --vtep 192.0.2.12
	ctl2 ep add db1 pg-0 --remote --ip 198.18.1.2/24 --mac 02:84:c6:12:01:02 --vtep 192.0.2.11
	ctl ep ls db1
	run ip netns exec "${NA_P}pg0" ping -c 2 -W 1 198.18.1.3 &&
		good "pg-0 (h1) reaches pg-1 (h2) through VXLAN 4001" || bad "no reply across hosts"
	ctl net check db1
	say "Drift: delete vxlan0 by hand; the agent repairs it within one reconcile (2 s)."
	local ns
	ns=$(CTL -o json net show db1 | $PY -c 'import json,sys; print(json.load(sys.stdin)["netns"])')
	run nsenter --net="$ns" ip link del vxlan0
	if wait_for 6 sh -c "'$NETAGENTCTL' --socket '$(agent_sock $AGENT)' -o json net inspect db1 | grep -q '\"in_sync\": true'"; then
		good "repaired"
	else
		bad "not repaired within 6 s"
	fi
	ctl net inspect db1
}

demo_events() {
	section "8. Following the event stream (every state change of the agent)"
	say "In another terminal, try for example:"
	say "  $NETAGENTCTL --socket $(agent_sock $AGENT) host"
	say "  $NETAGENTCTL --socket $(agent_sock $AGENT) net apply demo --vni 100 --subnet 198.18.1.0/24"
	say "Ctrl-C stops the agent and removes everything."
	show_cmd netagentctl events
	CTL events &
	local p=$!
	track_pid $p
	# `wait` returns when a trapped signal arrives; the trap does the teardown.
	while kill -0 $p 2>/dev/null; do wait $p; done
	say "(event stream closed by the agent)"
}

# ------------------------------------------------------------------ main
demo_hosts
demo_pki
demo_agent
demo_cli
demo_mtls
demo_overlay
demo_metrics
if [ "${DEMO_NONINTERACTIVE:-0}" = 1 ] || ! [ -t 0 ]; then
	section "Non-interactive run: skipping the event stream"
else
	demo_events
fi
demo_stop
trap - EXIT
exit 0
