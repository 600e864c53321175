#!/usr/bin/env bash
# Role gateway (SPEC §4 gateway, issue 9): HAProxy 2.6 in a runc container in front of members
# that answer Patroni's /primary and /replica checks. Stand-in members (a generic container each:
# a TCP server on 5432 naming itself, an HTTP check endpoint on 8008 whose answer the test flips)
# prove: connections reach the member whose check says primary, and the new one after the roles
# swap; replica_port reaches a replica, and the primary when none is healthy; `allow` refuses a
# source outside it; an allow beyond the overlay without force_tls is 422; force_tls refuses a
# client that does not open with PostgreSQL's SSLRequest; a backends change reloads HAProxy
# without dropping an open session and 50 connections opened during reloads all reach the
# primary; a VIP with target {"container": gw} on the gateway's uplink macvlan answers a client
# namespace on the fabric. Bad input: 422s.
. "$(dirname "$0")/../lib.sh"

command -v runc >/dev/null || bail "runc not found (scripts/deps.sh)"
command -v haproxy >/dev/null || bail "haproxy not found (scripts/deps.sh)"
[ -x "$(dirname "$NETAGENT")/netagent-monitor" ] || bail "netagent-monitor not built next to $NETAGENT"

J=(-H 'Content-Type: application/json')
mkhost h1
start_agent h1 a1 || bail "agent a1 did not start"
CTL=("$NETAGENTCTL" --socket "$(agent_sock a1)")
NET=198.18.61
api a1 PUT /v1/networks/n1 "${J[@]}" -d "{\"vni\":4161,\"subnet\":\"$NET.0/24\"}"
[ "$HTTP_CODE" = 201 ] || bail "network n1: $(last_req)"

put() { # NAME BODY WANT DESC
	api a1 PUT "/v1/containers/$1" "${J[@]}" --data-binary "$2"
	if [ "$HTTP_CODE" = "$3" ]; then ok "$4"; else not_ok "$4" "$(last_req)"; return 1; fi
}
field() { api a1 GET "/v1/containers/$1" && json_get "$2" "$HTTP_BODY"; }
state_is() { [ "$(field "$1" state)" = "$2" ]; }

# A stand-in member: 5432 answers "<name> <role>" on connect and keeps the session open (echo);
# 8008 answers HEAD/GET /primary and /replica by the role in /tmp/role.
MEMBER='import http.server, socketserver, sys, threading, os
name = sys.argv[1]
open("/tmp/role", "w").write(sys.argv[2])
def role(): return open("/tmp/role").read().strip()
class H(http.server.BaseHTTPRequestHandler):
    def answer(self):
        self.send_response(200 if self.path.strip("/") == role() else 503); self.end_headers()
    do_HEAD = do_GET = answer
    def log_message(self, *a): pass
class T(socketserver.ThreadingMixIn, http.server.HTTPServer): daemon_threads = True
threading.Thread(target=T(("0.0.0.0", 8008), H).serve_forever, daemon=True).start()
class E(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.sendall(("%s %s\n" % (name, role())).encode())
        while True:
            d = self.request.recv(4096)
            if not d: return
            self.request.sendall(d)
class S(socketserver.ThreadingTCPServer): daemon_threads = True; allow_reuse_address = True
S(("0.0.0.0", 5432), E).serve_forever()'
member() { # NAME IP ROLE
	$PY -c 'import json,sys; print(json.dumps({"command":["python3","-c",sys.argv[1],sys.argv[2],sys.argv[4]],
	  "networks":[{"network":"n1","ip":sys.argv[3]+"/24"}],"restart":"always","stop_timeout_s":1}))' \
		"$MEMBER" "$1" "$2" "$3"
}
set_role() { "${CTL[@]}" ct exec "$1" -- sh -c "echo $2 > /tmp/role"; }
put m1 "$(member m1 $NET.11 primary)" 201 "stand-in member m1 (primary)"
put m2 "$(member m2 $NET.12 replica)" 201 "stand-in member m2 (replica)"
put cl1 "{\"command\":[\"sleep\",\"100000\"],\"networks\":[{\"network\":\"n1\",\"ip\":\"$NET.30/24\"}],\"stop_timeout_s\":1}" 201 "client container cl1"
put cl2 "{\"command\":[\"sleep\",\"100000\"],\"networks\":[{\"network\":\"n1\",\"ip\":\"$NET.31/24\"}],\"stop_timeout_s\":1}" 201 "client container cl2"
CL1_NS=$(field cl1 netns)
CL2_NS=$(field cl2 netns)

# hello NETNS IP PORT [PAYLOAD_HEX]: the first line the gateway's server sends, or "refused".
HELLO='import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
    if len(sys.argv) > 3: s.sendall(bytes.fromhex(sys.argv[3]))
    d = s.recv(100)
    print(d.split(b"\n")[0].decode() if d else "refused")
except Exception as e:
    print("refused")'
hello() { nsenter --net="$1" $PY -c "$HELLO" "${@:2}"; }

BACKENDS="[{\"address\":\"$NET.11\",\"port\":5432,\"check_port\":8008},{\"address\":\"$NET.12\",\"port\":5432,\"check_port\":8008}]"
gw_body() { # EXTRA-GATEWAY-FIELDS [BACKENDS]
	echo "{\"role\":\"gateway\",\"networks\":[{\"network\":\"n1\",\"ip\":\"$NET.5/24\"}],\"gateway\":{\"port\":5432,\"backends\":${2:-$BACKENDS}$1}}"
}

# ---- bad input
put gwbad "$(gw_body ',"allow":["0.0.0.0/0"]')" 422 "allow 0.0.0.0/0 without force_tls: 422"
is "its code says TLS must be forced" "$(json_get error.code "$HTTP_BODY")/$(json_get error.field "$HTTP_BODY")" "tls_required/gateway.allow[0]"
put gwbad "$(gw_body ',"allow":["198.51.100.0/24"]')" 422 "allow of a client subnet outside the overlay without force_tls: 422"
put gwbad "$(gw_body '' '[{"address":"198.18.99.2"}]')" 422 "a backend outside the container's networks: 422"
is "on the backend's address" "$(json_get error.field "$HTTP_BODY")" "gateway.backends[0].address"
put gwbad "$(gw_body ',"replica_port":5432')" 422 "replica_port equal to port: 422"
put gwbad "$(gw_body ',"allow":["198.18.61.7/24"]')" 422 "an allow CIDR with host bits: 422"
put gwbad "$(gw_body ',"allow":["not-a-cidr"]')" 422 "an allow entry that is no CIDR: 422"
put gwbad "$(gw_body ',"check_tls":{"ca":"nope"}')" 422 "check_tls.ca that is no PEM: 422"
put gwbad "$(gw_body ',"uplink":"nosuch0"')" 422 "an uplink the agent's namespace does not have: 422"
is "on gateway.uplink" "$(json_get error.field "$HTTP_BODY")" "gateway.uplink"
api a1 GET /v1/containers/gwbad
is "and nothing was left of it" "$HTTP_CODE" 404
put gwbad '{"role":"gateway","networks":[{"network":"n1"}],"gateway":{"port":0,"backends":[]}}' 422 "port 0: 422"
put gwbad '{"role":"gateway","networks":[{"network":"n1"}]}' 422 "no gateway section: 422"
put gwbad "$(gw_body ',"speed":1')" 422 "an unknown gateway field: 422"

# ---- routing to the primary, replica_port
T0=$(now_ms)
put gw "$(gw_body ",\"replica_port\":5433,\"allow\":[\"$NET.30/32\"]")" 201 "PUT a gateway with replica_port, allow = cl1 only"
GW_PID=$(field gw pid)
wait_for 10 sh -c "[ \"\$(nsenter --net='$CL1_NS' $PY -c '$HELLO' $NET.5 5432)\" = 'm1 primary' ]"
diag "PUT to the first connection reaching the primary: $(($(now_ms) - T0)) ms"
is "a connection through the gateway reaches the primary" "$(hello "$CL1_NS" $NET.5 5432)" "m1 primary"
api a1 GET /v1/containers/gw
like "HAProxy runs as nobody with no capability" "$(grep -E '^(Uid|CapEff)' /proc/"$GW_PID"/status | tr -s '\t ' ' ' | tr '\n' ' ')" "^Uid: 65534 65534 65534 65534 CapEff: 0+ $"
wait_for 5 sh -c "[ \"\$(nsenter --net='$CL1_NS' $PY -c '$HELLO' $NET.5 5433)\" = 'm2 replica' ]"
is "replica_port reaches the replica" "$(hello "$CL1_NS" $NET.5 5433)" "m2 replica"
is "a source outside allow is refused" "$(hello "$CL2_NS" $NET.5 5432)" refused
set_role m2 down
wait_for 5 sh -c "[ \"\$(nsenter --net='$CL1_NS' $PY -c '$HELLO' $NET.5 5433)\" = 'm1 primary' ]"
is "replica_port falls back to the primary when no replica is healthy" "$(hello "$CL1_NS" $NET.5 5433)" "m1 primary"
set_role m1 replica
set_role m2 primary
T0=$(now_ms)
wait_for 10 sh -c "[ \"\$(nsenter --net='$CL1_NS' $PY -c '$HELLO' $NET.5 5432)\" = 'm2 primary' ]"
diag "roles swapped to new connections on the new primary: $(($(now_ms) - T0)) ms"
is "after the roles swap, new connections reach the new primary" "$(hello "$CL1_NS" $NET.5 5432)" "m2 primary"
is "and replica_port the new replica" "$(hello "$CL1_NS" $NET.5 5433)" "m1 replica"

# ---- live reload: an open session survives, connections during reloads all reach the primary
SESSION='import socket, sys, time
s = socket.create_connection((sys.argv[1], 5432), timeout=5)
first = s.recv(100).decode().strip()
open(sys.argv[2], "w").write(first + "\n")
while True:
    time.sleep(0.2)
    try:
        s.sendall(b"ping\n")
        if s.recv(100) != b"ping\n": break
    except Exception: break
open(sys.argv[2], "a").write("closed\n")'
nsenter --net="$CL1_NS" $PY -c "$SESSION" $NET.5 "$NA_TMP/session" &
track_pid $!
wait_for 5 test -s "$NA_TMP/session"
is "a session is open to the primary" "$(head -1 "$NA_TMP/session")" "m2 primary"
put m3 "$(member m3 $NET.13 replica)" 201 "a third stand-in member m3 (replica)"
B3="[{\"address\":\"$NET.11\"},{\"address\":\"$NET.12\"},{\"address\":\"$NET.13\"}]"
put gw "$(gw_body ",\"replica_port\":5433,\"allow\":[\"$NET.30/32\"]" "$B3")" 200 "PUT the gateway with a third backend: 200"
is "applied live: same HAProxy master" "$(field gw pid)" "$GW_PID"
is "and the container was not restarted" "$(field gw restarts)" 0
sleep 1
is "the open session survived the reload" "$(cat "$NA_TMP/session")" "m2 primary"
MANY='import socket, sys, threading, time
out, ths = [], []
def one():
    try:
        s = socket.create_connection((sys.argv[1], 5432), timeout=5); out.append(s.recv(100).decode().strip())
    except Exception as e: out.append("error")
for i in range(int(sys.argv[2])):
    t = threading.Thread(target=one); t.start(); ths.append(t); time.sleep(float(sys.argv[3]))
for t in ths: t.join()
print(" ".join(sorted(set(out))), len(out))'
nsenter --net="$CL1_NS" $PY -c "$MANY" $NET.5 50 0.04 >"$NA_TMP/many" &
MPID=$!
T0=$(now_ms)
put gw "$(gw_body ",\"replica_port\":5433,\"allow\":[\"$NET.30/32\"]" "[{\"address\":\"$NET.12\"},{\"address\":\"$NET.11\"}]")" 200 "reload 1 during 50 connections (backends reordered, m3 removed)"
diag "live reload (PUT to 200): $(($(now_ms) - T0)) ms"
put gw "$(gw_body ",\"replica_port\":5433,\"allow\":[\"$NET.30/32\"]" "$B3")" 200 "reload 2 during them (m3 back: a server new to the process)"
wait "$MPID"
is "all 50 connections opened during the reloads reached the primary" "$(cat "$NA_TMP/many")" "m2 primary 50"
is "the session still runs" "$(cat "$NA_TMP/session")" "m2 primary"
kill_agent a1 -9
start_agent h1 a1 || bail "agent a1 did not restart"
wait_for 10 state_is gw running
is "kill -9 of the agent: the restarted one adopts the gateway (same HAProxy)" "$(field gw pid)" "$GW_PID"
put gw "$(gw_body ",\"replica_port\":5433,\"allow\":[\"$NET.30/32\"]" "[{\"address\":\"$NET.12\"},{\"address\":\"$NET.11\"}]")" 200 "and reloads it live after the restart"
is "same master still" "$(field gw pid)/$(field gw restarts)" "$GW_PID/0"
is "the session survived the agent's restart and that reload" "$(cat "$NA_TMP/session")" "m2 primary"
is "new connections reach the primary" "$(hello "$CL1_NS" $NET.5 5432)" "m2 primary"

# ---- force_tls, in front of a real PostgreSQL 15 with ssl=on (a generic container: initdb, a
# self-signed certificate, and a check endpoint that calls it primary)
PGM='set -e
D=/var/lib/postgresql/d
B=/usr/lib/postgresql/15/bin
if [ ! -f $D/PG_VERSION ]; then
	$B/initdb -D $D -A trust -U postgres >/dev/null
	echo "host all all 0.0.0.0/0 trust" >>$D/pg_hba.conf
	openssl req -x509 -newkey rsa:2048 -nodes -keyout $D/k.pem -out $D/c.pem -days 2 -subj /CN=pgm 2>/dev/null
	chmod 600 $D/k.pem
fi
python3 -c "$CHECK" &
exec $B/postgres -D $D -c listen_addresses=* -c ssl=on -c ssl_cert_file=$D/c.pem -c ssl_key_file=$D/k.pem -c unix_socket_directories=/tmp -c fsync=off'
PGCHECK='import http.server
class H(http.server.BaseHTTPRequestHandler):
    def answer(self): self.send_response(200 if self.path == "/primary" else 503); self.end_headers()
    do_HEAD = do_GET = answer
    def log_message(self, *a): pass
http.server.HTTPServer(("0.0.0.0", 8008), H).serve_forever()'
body=$($PY -c 'import json,sys; print(json.dumps({"command":["sh","-c",sys.argv[1]],"env":{"CHECK":sys.argv[2]},
  "user":{"uid":int(sys.argv[3]),"gid":int(sys.argv[4])},"volumes":[{"name":"data","mount":"/var/lib/postgresql"}],
  "networks":[{"network":"n1","ip":sys.argv[5]+".20/24"}],"restart":"always","stop_timeout_s":2}))' \
	"$PGM" "$PGCHECK" "$(id -u postgres)" "$(id -g postgres)" $NET)
put pgm "$body" 201 "a PostgreSQL 15 member with ssl=on (generic container)"
PGB="[{\"address\":\"$NET.20\"}]"
put gwt "{\"role\":\"gateway\",\"networks\":[{\"network\":\"n1\",\"ip\":\"$NET.6/24\"}],\"gateway\":{\"port\":5432,\"backends\":$PGB,\"force_tls\":true,\"allow\":[\"0.0.0.0/0\"]}}" 201 "a gateway with allow 0.0.0.0/0 and force_tls: 201"
PSQL=/usr/lib/postgresql/15/bin/psql
psql_in() { # NETNS HOST SSLMODE: the server's ssl flag for this connection, or the error
	nsenter --net="$1" env PGCONNECT_TIMEOUT=3 $PSQL -XAtq "host=$2 port=5432 user=postgres dbname=postgres sslmode=$3" \
		-c "select ssl from pg_stat_ssl where pid = pg_backend_pid()" 2>&1 | tr '\n\t' '  ' | sed 's/ *$//'

}
wait_for 20 sh -c "nsenter --net='$CL2_NS' env PGCONNECT_TIMEOUT=2 $PSQL -XAtq 'host=$NET.6 user=postgres dbname=postgres sslmode=require' -c 'select 1'"
is "force_tls: psql sslmode=require passes (TLS to PostgreSQL)" "$(psql_in "$CL2_NS" $NET.6 require)" t
like "force_tls: psql sslmode=disable is refused" "$(psql_in "$CL2_NS" $NET.6 disable)" "server closed the connection|connection to server .* failed"
is "force_tls: psql sslmode=prefer goes over TLS" "$(psql_in "$CL2_NS" $NET.6 prefer)" t
SSLREQ=0000000804d2162f
STARTUP=0000000800030000

# ---- VIP on the gateway's uplink, answering a client on the fabric
mkhost c1 192.0.2.50
put gwv "{\"role\":\"gateway\",\"networks\":[{\"network\":\"n1\",\"ip\":\"$NET.7/24\"}],\"gateway\":{\"port\":5432,\"backends\":$PGB,\"force_tls\":true,\"allow\":[\"192.0.2.0/24\"],\"uplink\":\"eth0\"}}" 201 "a gateway with uplink eth0 (the host's underlay NIC), force_tls, allow the fabric"
GWV_NS=$(field gwv netns)
like "its namespace has the macvlan uplink0, up" "$(nsenter --net="$GWV_NS" ip -o link show uplink0)" "uplink0@.*<.*UP.*macvlan|uplink0@.*state UP"
api a1 PUT /v1/vips/v1 "${J[@]}" -d '{"address":"192.0.2.100/24","target":{"container":"gwv"},"checks":[{"type":"tcp","port":5432}],"interval_ms":200,"rise":1,"fall":2}'
is "PUT a VIP with target {container: gwv}: 201" "$HTTP_CODE" 201
vip_state() { api a1 GET /v1/vips/v1 && json_get state "$HTTP_BODY"; }
wait_for 10 sh -c "[ \"\$(curl -s --unix-socket '$(agent_sock a1)' http://localhost/v1/vips/v1 | $PY -c 'import json,sys; print(json.load(sys.stdin)[\"state\"])')\" = master ]"
is "the VIP is master" "$(vip_state)" master
like "the address sits on uplink0 inside the gateway" "$(nsenter --net="$GWV_NS" ip -o -4 addr show dev uplink0)" "192.0.2.100/24"
C1NS=/run/netns/$(hostns c1)
wait_for 10 sh -c "nsenter --net='$C1NS' env PGCONNECT_TIMEOUT=2 $PSQL -XAtq 'host=192.0.2.100 user=postgres dbname=postgres sslmode=require' -c 'select 1'"
is "a psql from a client namespace on the fabric works through the VIP (over TLS)" "$(psql_in "$C1NS" 192.0.2.100 require)" t
is "in clear text it is refused there too" "$(hello "$C1NS" 192.0.2.100 5432 $STARTUP)" refused
api a1 POST /v1/containers/gwv/stop
wait_for 10 sh -c "! nsenter --net='$GWV_NS' ip -o -4 addr show dev uplink0 | grep -q 192.0.2.100"
is "gateway stopped: the VIP leaves uplink0" "$(nsenter --net="$GWV_NS" ip -o -4 addr show dev uplink0 | grep -c 192.0.2.100)" 0
api a1 DELETE /v1/vips/v1
# the uplink changed (the gateway stopped: the update only prepares): uplink0 moves to the new
# parent; the uplink removed: uplink0 goes
in_host h1 ip link add up2 type veth peer name up2p
UP2=$(in_host h1 ip -o link show up2 | cut -d: -f1)
gwv_body() { echo "{\"role\":\"gateway\",\"networks\":[{\"network\":\"n1\",\"ip\":\"$NET.7/24\"}],\"gateway\":{\"port\":5432,\"backends\":$PGB,\"force_tls\":true,\"allow\":[\"192.0.2.0/24\"]$1}}"; }
put gwv "$(gwv_body ',"uplink":"up2"')" 200 "the gateway's uplink changed to up2: 200"
like "uplink0 now sits on up2" "$(nsenter --net="$GWV_NS" ip -o link show uplink0)" "uplink0@if$UP2:"
put gwv "$(gwv_body '')" 200 "the uplink removed: 200"
is "uplink0 is gone" "$(nsenter --net="$GWV_NS" ip -o link show 2>/dev/null | grep -c uplink0)" 0

# ---- real Patroni 3.0.2 members (three generic containers running Patroni with its Raft DCS
# over the overlay; the postgres role renders the same), a gateway in front of them
PAT='printf "%s" "$PCFG" >/tmp/patroni.yml
exec /usr/bin/python3 /usr/bin/patroni /tmp/patroni.yml'
patroni_member() { # NAME IP PARTNER_IP PARTNER_IP
	$PY - "$PAT" "$(id -u postgres)" "$(id -g postgres)" "$@" <<'PY'
import json, sys
pat, uid, gid, name, ip, *partners = sys.argv[1:]
cfg = {"scope": "gwc", "name": name,
  "restapi": {"listen": ip + ":8008", "connect_address": ip + ":8008"},
  "raft": {"data_dir": "/var/lib/postgresql/raft", "self_addr": ip + ":5010",
           "partner_addrs": [p + ":5010" for p in partners]},
  "bootstrap": {"dcs": {"ttl": 10, "loop_wait": 2, "retry_timeout": 3,
                        "postgresql": {"use_pg_rewind": True, "parameters": {"wal_log_hints": "on", "fsync": "off"}}}},
  "postgresql": {"listen": ip + ":5432", "connect_address": ip + ":5432",
                 "data_dir": "/var/lib/postgresql/data", "bin_dir": "/usr/lib/postgresql/15/bin",
                 "pgpass": "/tmp/pgpass",
                 "authentication": {"superuser": {"username": "postgres", "password": "pw"},
                                    "replication": {"username": "repl", "password": "rpw"}},
                 "parameters": {"unix_socket_directories": "/tmp"},
                 "pg_hba": ["local all all trust", "host all all 0.0.0.0/0 trust",
                            "host replication repl 0.0.0.0/0 trust"]},
  "tags": {}}
print(json.dumps({"command": ["sh", "-c", pat], "env": {"PCFG": json.dumps(cfg), "USER": "postgres",
  "PATH": "/usr/lib/postgresql/15/bin:/usr/bin:/bin"},
  "user": {"uid": int(uid), "gid": int(gid)}, "volumes": [{"name": "data", "mount": "/var/lib/postgresql"}],
  "networks": [{"network": "n1", "ip": ip + "/24"}], "restart": "always", "stop_timeout_s": 5}))
PY
}
P1=$NET.41 P2=$NET.42 P3=$NET.43
T0=$(now_ms)
put p1 "$(patroni_member p1 $P1 $P2 $P3)" 201 "Patroni member p1"
put p2 "$(patroni_member p2 $P2 $P1 $P3)" 201 "Patroni member p2"
put p3 "$(patroni_member p3 $P3 $P1 $P2)" 201 "Patroni member p3"
PB="[{\"address\":\"$P1\"},{\"address\":\"$P2\"},{\"address\":\"$P3\"}]"
put gwp "{\"role\":\"gateway\",\"networks\":[{\"network\":\"n1\",\"ip\":\"$NET.8/24\"}],\"gateway\":{\"port\":5432,\"replica_port\":5433,\"backends\":$PB}}" 201 "a gateway in front of the three Patroni members"
# gq PORT SQL: the answer through the gateway from cl1 (one line), or the error
gq() {
	nsenter --net="$CL1_NS" env PGCONNECT_TIMEOUT=3 $PSQL -XAtq "host=$NET.8 port=$1 user=postgres dbname=postgres sslmode=disable" \
		-c "$2" 2>&1 | tr '\n\t' '  ' | sed 's/ *$//'
}
leader_via_gw() { gq 5432 "select inet_server_addr()::text || ' ' || pg_is_in_recovery()::text"; }
wait_for 60 sh -c "[ \"\$(nsenter --net='$CL1_NS' env PGCONNECT_TIMEOUT=2 $PSQL -XAtq 'host=$NET.8 user=postgres dbname=postgres' -c 'select pg_is_in_recovery()' 2>/dev/null)\" = f ]"
diag "PUT of three Patroni members to the first connection through the gateway on the leader: $(($(now_ms) - T0)) ms"
L=$(leader_via_gw)
like "connections through the gateway reach the Patroni leader (not in recovery)" "$L" "^198\.18\.61\.4[123]/32 false$"
LEADER=${L%%/*}
is "a write through the gateway commits" "$(gq 5432 "create table t(x int); insert into t values (1) returning x")" 1
wait_for 30 sh -c "[ \"\$(nsenter --net='$CL1_NS' env PGCONNECT_TIMEOUT=2 $PSQL -XAtq 'host=$NET.8 port=5433 user=postgres dbname=postgres' -c 'select pg_is_in_recovery() and count(*) = 1 from t' 2>/dev/null)\" = t ]"
R=$(gq 5433 "select inet_server_addr()::text || ' ' || pg_is_in_recovery()::text || ' ' || (select count(*) from t)")
like "replica_port reaches a streaming follower (in recovery, the row is there)" "$R" "^198\.18\.61\.4[123]/32 true 1$"
if [ "${R%%/*}" != "$LEADER" ]; then ok "which is not the leader"; else not_ok "which is not the leader" "$R"; fi

name_of() { case $1 in "$P1") echo p1 ;; "$P2") echo p2 ;; "$P3") echo p3 ;; esac; }
# switchover through Patroni's REST API to a chosen follower
CAND=$P1; [ "$CAND" = "$LEADER" ] && CAND=$P2
T0=$(now_ms)
# Patroni refuses (412) while the candidate is not yet a healthy streaming replica: ask again.
switchover() {
	[ "$(nsenter --net="$CL1_NS" curl -s -m 10 -o /dev/null -w '%{http_code}' -XPOST "http://$LEADER:8008/switchover" \
		-d "{\"leader\":\"$(name_of "$LEADER")\",\"candidate\":\"$(name_of "$CAND")\"}")" = 200 ]
}
wait_for 20 switchover
wait_for 30 sh -c "nsenter --net='$CL1_NS' env PGCONNECT_TIMEOUT=2 $PSQL -XAtq 'host=$NET.8 user=postgres dbname=postgres' -c 'insert into t values (2)' 2>/dev/null && [ \"\$(nsenter --net='$CL1_NS' $PSQL -XAtq 'host=$NET.8 user=postgres dbname=postgres' -c 'select inet_server_addr()' 2>/dev/null)\" = $CAND ]"
diag "switchover request to the first write through the gateway on the new leader: $(($(now_ms) - T0)) ms"
is "after a switchover, new connections reach the new leader" "$(leader_via_gw)" "$CAND/32 false"
LEADER=$CAND

# the leader's container stopped: a new leader, and the gateway follows
T0=$(now_ms)
api a1 POST "/v1/containers/$(name_of "$LEADER")/stop"
wait_for 40 sh -c "nsenter --net='$CL1_NS' env PGCONNECT_TIMEOUT=2 $PSQL -XAtq 'host=$NET.8 user=postgres dbname=postgres' -c 'insert into t values (3)' 2>/dev/null"
diag "leader container stopped to the first committed write through the gateway: $(($(now_ms) - T0)) ms"
L=$(leader_via_gw)
like "after the leader stops, new connections reach the new leader" "$L" "^198\.18\.61\.4[123]/32 false$"
if [ "${L%%/*}" != "$LEADER" ]; then ok "which is another member"; else not_ok "which is another member" "$L"; fi
NEWL=${L%%/*}
# replica_port with no healthy follower: the remaining follower leaves load balancing
# (Patroni's noloadbalance tag: /replica answers 503), the old leader stays down
for m in $P1 $P2 $P3; do [ "$m" != "$NEWL" ] && [ "$m" != "$LEADER" ] && FOL=$m; done
# SIGHUP makes Patroni re-read its file; sent again until Patroni shows the tag and /replica
# says 503 (a member rejoining after the switchover answers 503 for a while without it).
noloadbalance() {
	"${CTL[@]}" ct exec "$(name_of "$FOL")" -- sh -c 'grep -q noloadbalance /tmp/patroni.yml ||
		sed -i "s/\"tags\": {}/\"tags\": {\"noloadbalance\": true}/" /tmp/patroni.yml; kill -HUP 1' &&
		sleep 0.5 &&
		nsenter --net="$CL1_NS" curl -s -m 2 "http://$FOL:8008/patroni" | grep -q '"noloadbalance": true' &&
		[ "$(nsenter --net="$CL1_NS" curl -s -m 2 -o /dev/null -w '%{http_code}' "http://$FOL:8008/replica")" = 503 ]
}
wait_for 30 noloadbalance || diag "noloadbalance on $FOL not seen: $("${CTL[@]}" ct exec "$(name_of "$FOL")" -- sh -c 'grep -o "\"tags\": {[^}]*}" /tmp/patroni.yml; ps -eo pid,ppid,args' 2>&1) $(nsenter --net="$CL1_NS" curl -s -m 2 "http://$FOL:8008/patroni")"
# Once no member's /replica says 200, HAProxy needs fall (2) failed checks, inter 1 s apart, to
# take the last one out: until then a new connection may still land on it (the new leader too).
no_replica() {
	local m c
	for m in $P1 $P2 $P3; do
		c=$(nsenter --net="$CL1_NS" curl -s -m 2 -I -o /dev/null -w '%{http_code}' "http://$m:8008/replica")
		[ "$c" = 200 ] && return 1
	done
	return 0
}
wait_for 20 no_replica
sleep 3
wait_for 20 sh -c "[ \"\$(nsenter --net='$CL1_NS' env PGCONNECT_TIMEOUT=2 $PSQL -XAtq 'host=$NET.8 port=5433 user=postgres dbname=postgres' -c 'select pg_is_in_recovery()' 2>/dev/null)\" = f ]"
R=$(gq 5433 "select inet_server_addr()::text || ' ' || pg_is_in_recovery()::text")
is "replica_port reaches the leader when no follower is healthy" "$R" "$NEWL/32 false" ||
	diag "follower $FOL, new leader $NEWL; HEAD /replica: $(for m in $P1 $P2 $P3; do printf '%s=%s ' "$m" "$(nsenter --net="$CL1_NS" curl -s -m 2 -I -o /dev/null -w '%{http_code}' "http://$m:8008/replica")"; done); HAProxy: $("${CTL[@]}" ct logs gwp --tail 15 2>&1 | tr '\n' '|') stat: $("${CTL[@]}" ct exec gwp -- python3 -c 'import socket; s = socket.socket(socket.AF_UNIX); s.connect("/run/haproxy-admin/admin.sock"); s.sendall(b"show stat\n"); print(s.makefile().read())' 2>&1 | cut -d, -f1,2,18,19,37,38,39,40,57,62,63 | tr '\n' '|')"

finish
