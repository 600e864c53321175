# shellcheck shell=bash
# A platform in miniature, for the demo and the end-to-end test: simulated database hosts
# with an agent each (mTLS API, etcd for endpoints and VIP ownership), a controller that
# speaks only HTTPS with its client certificate, and the calls it makes for a cluster.
# Source after tests/lib.sh.
#
#   plat_up N                 fabric, etcd (host "etcd1"), controller host "ctl", client host
#                             "cl" (192.0.2.50), N database hosts h1..hN (192.0.2.21…) each
#                             bootstrapped by provision/host-bootstrap.sh and running an agent
#                             on https://192.0.2.2i:7443
#   ctl_api HOST METHOD PATH [BODY]    → HTTP_CODE, HTTP_BODY (from host "ctl", client cert)
#   gw_body CLUSTER NET IP BACKEND_IP…  a gateway's body (TLS forced, uplink eth0, checks over TLS
#                             with $PKI/db/CLUSTER/ca.pem); postgres bodies: pg_body (tests/pg_lib.sh)
#   psql_cl CONNINFO SQL      psql from the client host (Debian's client), stdout only

# shellcheck source=tests/pg_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/pg_lib.sh"

PLAT_PORT=7443
PLAT_HOSTS=()

ctl_api() { # HOST METHOD PATH [BODY]
	local h=$1 m=$2 p=$3 body=${4:-}
	local args=(-sS --max-time "${NA_HTTP_TIMEOUT:-60}" --cacert "$PKI/ca.pem" --cert "$PKI/client.pem"
		--key "$PKI/client.key" -X "$m" -o "$NA_TMP/.cbody" -w '%{http_code}')
	[ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
	HTTP_CODE=$(in_host ctl curl "${args[@]}" "https://$(host_ip "$h"):$PLAT_PORT$p" 2>"$NA_TMP/.cerr")
	HTTP_RC=$?
	HTTP_BODY=$(cat "$NA_TMP/.cbody" 2>/dev/null)
	return 0
}

plat_up() {
	local n=$1 i h
	mkpki
	start_etcd_cluster 1 >/dev/null || return 1
	mkhost ctl 192.0.2.2
	mkhost cl 192.0.2.50
	for ((i = 1; i <= n; i++)); do
		h=h$i
		mkhost "$h" "192.0.2.2$i"
		PLAT_HOSTS+=("$h")
		"$NA_ROOT/provision/host-bootstrap.sh" --name "$(agent_name "$h")" --root "$NA_TMP/root-$h" \
			--ca-cert "$PKI/ca.pem" --ca-key "$PKI/ca.key" --san "IP:192.0.2.2$i" \
			--underlay-if eth0 --netns "/run/netns/$(hostns "$h")" --listen "192.0.2.2$i:$PLAT_PORT" \
			--etcd "$ETCD_URLS" --no-packages >"$NA_TMP/bootstrap-$h.log" 2>&1 || {
			diag "host-bootstrap of $h failed:"
			sed 's/^/#   /' "$NA_TMP/bootstrap-$h.log" | tail -n 15
			return 1
		}
		local etc="$NA_TMP/root-$h/etc/netagent/$(agent_name "$h")"
		start_agent "$h" "$h" --listen "192.0.2.2$i:$PLAT_PORT" --tls-cert "$etc/agent.pem" \
			--tls-key "$etc/agent.key" --tls-ca "$etc/ca.pem" --etcd "$ETCD_URLS" || return 1
	done
}

# gw_body CLUSTER NET IP BACKEND_IP…: a gateway on 5432 (leader) and 5433 (followers), TLS forced,
# reachable from the fabric through its uplink.
gw_body() {
	local cl=$1 net=$2 ip=$3
	shift 3
	"$PY" - "$cl" "$net" "$ip" "$PKI/db/$cl" "$@" <<'EOF'
import json, sys
cl, net, ip, d = sys.argv[1:5]
print(json.dumps({"role": "gateway",
    "networks": [{"network": net, "ip": ip + "/24"}],
    "gateway": {"port": 5432, "replica_port": 5433, "force_tls": True, "uplink": "eth0",
        "allow": ["192.0.2.0/24"], "check_tls": {"ca": open(d + "/ca.pem").read()},
        "backends": [{"address": b, "port": 5432, "check_port": 8008} for b in sys.argv[5:]]}}))
EOF
}

psql_cl() { # CONNINFO SQL
	in_host cl env PGCONNECT_TIMEOUT=3 psql -X -q -A -t -d "$1" -c "$2" 2>&1
}
