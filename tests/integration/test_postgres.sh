#!/usr/bin/env bash
# Role postgres (SPEC §4, issue 9): Patroni + PostgreSQL 15 in runc containers on three simulated
# hosts, Raft among the members over the overlay, TLS on replication and client connections, a
# gateway (HAProxy) in front. Proves: one leader and two streaming followers; a row written
# through the gateway is on both followers; pg_stat_ssl shows TLS for replication and the client;
# force_tls refuses sslmode=disable; the agent's Patroni view; the leader's container stopped and
# then its host's underlay cut: the gateway reaches the new leader and, synchronous mode being
# on, no row a writer saw acknowledged is lost; switchover through the agent; a parameter applied
# without a restart and one reported as pending_restart; a fourth member joins as a streaming
# replica without restarting anyone, and leaves Raft when removed. Bad input: 422s.
. "$(dirname "$0")/../lib.sh"
. "$NA_ROOT/tests/pg_lib.sh"

for c in runc patroni haproxy psql syncobj_admin; do
	command -v "$c" >/dev/null || bail "$c not found (scripts/deps.sh)"
done
"$PY" -c 'import psycopg2' 2>/dev/null || bail "python3-psycopg2 missing (scripts/deps.sh)"

J=(-H 'Content-Type: application/json')
NET=198.18.71
M=("$NET.11" "$NET.12" "$NET.13")
M4=$NET.14
GW=$NET.5
mkpki
pg_hosts_up 4 || bail "hosts and agents"
pg_net pn 4171 "$NET.0/24" || bail "network pn"
db_certs db "${M[@]}" "$M4" || bail "certificates"
export PG_TLS_DIR=$PKI/db/db
ctl() { "$NETAGENTCTL" --socket "$(agent_sock "$1")" "${@:2}"; }
field() { api "$1" GET "/v1/containers/$2" && json_get "$3" "$HTTP_BODY"; }

# ---- bad input (nothing created)
bad() { # DESC FIELD BODY
	pg_put a1 bad "$3"
	if [ "$HTTP_CODE" = 422 ] && [ "$(json_get error.field "$HTTP_BODY")" = "$2" ]; then
		ok "$1: 422 on $2"
	else
		not_ok "$1: 422 on $2" "$(last_req)"
	fi
}
GOOD=$(pg_body db bad "${M[0]}" pn "${M[@]}")
edit() { "$PY" -c 'import json,sys; b=json.loads(sys.argv[1]); exec(sys.argv[2]); print(json.dumps(b))' "$GOOD" "$1"; }
bad "no postgres section" postgres "$(edit 'del b["postgres"]')"
bad "no cluster name" postgres.cluster "$(edit 'del b["postgres"]["cluster"]')"
bad "no replication password" postgres.replication_password "$(edit 'del b["postgres"]["replication_password"]')"
bad "a member outside the network" "postgres.members[1]" "$(edit 'b["postgres"]["members"][1]="198.18.99.2"')"
bad "members without the container's own address" postgres.members "$(edit 'b["postgres"]["members"]=b["postgres"]["members"][1:]')"
bad "a TLS key that does not match its certificate" postgres.tls.key \
	"$(edit "b['postgres']['tls']['key']=open('$PG_TLS_DIR/${M[1]}.key').read()")"
bad "a certificate that is no PEM" postgres.tls.cert "$(edit 'b["postgres"]["tls"]["cert"]="nope"')"
bad "a parameter the role owns" postgres.parameters.port "$(edit 'b["postgres"]["parameters"]={"port":"5433"}')"
bad "a command for Patroni's container" command "$(edit 'b["command"]=["sh"]')"
bad "timings Patroni would refuse" postgres.patroni.ttl "$(edit 'b["postgres"]["patroni"]={"ttl":5,"loop_wait":2,"retry_timeout":3}')"
pg_put a1 bad "$(edit 'b["networks"]=[{"network":"pn"}]')"
is "no overlay address: 422 on networks[0].ip" "$HTTP_CODE/$(json_get error.field "$HTTP_BODY")" "422/networks[0].ip"
api a1 GET /v1/containers/bad
is "nothing was created" "$HTTP_CODE" 404

# ---- three members, one leader, two streaming followers
T0=$(now_ms)
pg_cluster_up db pn "${M[@]}" || bail "PUT the members"
ok "PUT three members on three hosts"
if pg_wait_healthy db 3 90; then
	ok "one leader and two streaming followers"
	diag "PUT to a healthy cluster: $(($(now_ms) - T0)) ms"
else
	not_ok "one leader and two streaming followers" "$(ctl a1 ct logs db-1 --tail 20 2>&1)"
	finish
fi
L=$(pg_leader db 3)
F=()
for i in 1 2 3; do [ "$i" = "$L" ] || F+=("$i"); done
wait_for 10 sh -c "[ \"\$(curl -s --unix-socket '$(agent_sock "a$L")' http://x/v1/containers/db-$L | $PY -c 'import json,sys; print(json.load(sys.stdin)[\"patroni\"].get(\"role\"))')\" = leader ]"
is "GET shows the leader's Patroni role" "$(pg_view "a$L" "db-$L" role)" leader
is "and its state" "$(pg_view "a$L" "db-$L" state)" running
like "and its timeline" "$(pg_view "a$L" "db-$L" timeline)" '^[1-9][0-9]*$'
wait_for 10 sh -c "curl -s --unix-socket '$(agent_sock "a${F[0]}")' http://x/v1/containers/db-${F[0]} | grep -q '\"lag\": *[0-9]'"
like "a follower's view: replica or sync_standby with its lag" \
	"$(pg_view "a${F[0]}" "db-${F[0]}" role)/$(pg_view "a${F[0]}" "db-${F[0]}" lag)" '^(replica|sync_standby)/[0-9]+$'
wait_for 20 sh -c "[ \"\$('$NETAGENTCTL' --socket '$(agent_sock "a$L")' ct exec db-$L -- psql -XAt -h /var/run/postgresql -U postgres -c \"select count(*) from pg_stat_replication where sync_state = 'sync'\")\" = 1 ]"
is "synchronous mode is on by default with three members" \
	"$(pg_sql "a$L" "db-$L" "select count(*) from pg_stat_replication where sync_state = 'sync'")" 1
is "replication runs over TLS (pg_stat_ssl of both walsenders)" \
	"$(pg_sql "a$L" "db-$L" "select count(*) from pg_stat_replication r join pg_stat_ssl s using (pid) where s.ssl")" 2
CONF=$(agent_dir "a$L")/run/containers/db-$L/conf
is "the TLS key is 0600 and postgres's" "$(stat -c '%a %U' "$CONF/server.key")" "600 postgres"
is "patroni.yml (passwords) is 0600 and postgres's" "$(stat -c '%a %U' "$CONF/patroni.yml")" "600 postgres"

# ---- a gateway and a client on the overlay (host h4)
GWB=$("$PY" - "$GW" "$PG_TLS_DIR/ca.pem" "${M[@]}" <<'EOF'
import json, sys
print(json.dumps({"role": "gateway", "networks": [{"network": "pn", "ip": sys.argv[1] + "/24"}],
    "gateway": {"port": 5432, "replica_port": 5433, "force_tls": True,
        "check_tls": {"ca": open(sys.argv[2]).read()},
        "backends": [{"address": m, "port": 5432, "check_port": 8008} for m in sys.argv[3:]]}}))
EOF
)
pg_put a4 gw "$GWB"
is "PUT a gateway with force_tls over the three members" "$HTTP_CODE" 201
pg_put a4 cl "{\"command\":[\"sleep\",\"1000000\"],\"networks\":[{\"network\":\"pn\",\"ip\":\"$NET.30/24\"}],\"stop_timeout_s\":1}"
is "PUT a client container" "$HTTP_CODE" 201
CL_NS=$(field a4 cl netns)
DSN="host=$GW port=5432 dbname=postgres user=postgres password=su-db sslmode=require connect_timeout=3"
cl_sql() { nsenter --net="$CL_NS" env PGCONNECT_TIMEOUT=3 psql -X -q -A -t -d "$1" -c "$2" 2>&1; }
wait_for 20 sh -c "nsenter --net='$CL_NS' psql -X -At -d '$DSN' -c 'select 1' >/dev/null 2>&1"
is "a client connects through the gateway with TLS" "$(cl_sql "$DSN" "select ssl from pg_stat_ssl where pid = pg_backend_pid()")" t
is "and reaches the leader" "$(cl_sql "$DSN" "select pg_is_in_recovery()")" f
like "sslmode=disable is refused by force_tls" "$(cl_sql "${DSN/sslmode=require/sslmode=disable}" "select 1")" "(closed|refused|terminated|could not|failed|error)"
cl_sql "$DSN" "create table t (id bigint primary key, at timestamptz default now())" >/dev/null
cl_sql "$DSN" "insert into t (id) values (-1)" >/dev/null
wait_for 10 sh -c "[ \"\$('$NETAGENTCTL' --socket '$(agent_sock "a${F[0]}")' ct exec db-${F[0]} -- psql -XAt -h /var/run/postgresql -U postgres -c 'select count(*) from t where id = -1')\" = 1 ]"
is "a row written through the gateway is on follower ${F[0]}" "$(pg_sql "a${F[0]}" "db-${F[0]}" "select count(*) from t where id = -1")" 1
wait_for 10 sh -c "[ \"\$('$NETAGENTCTL' --socket '$(agent_sock "a${F[1]}")' ct exec db-${F[1]} -- psql -XAt -h /var/run/postgresql -U postgres -c 'select count(*) from t where id = -1')\" = 1 ]"
is "and on follower ${F[1]}" "$(pg_sql "a${F[1]}" "db-${F[1]}" "select count(*) from t where id = -1")" 1
RDSN=${DSN/port=5432/port=5433}
wait_for 10 sh -c "[ \"\$(nsenter --net='$CL_NS' psql -X -At -d '$RDSN' -c 'select pg_is_in_recovery()' 2>/dev/null)\" = t ]"
is "replica_port reaches a follower" "$(cl_sql "$RDSN" "select pg_is_in_recovery()")" t

# ---- a writer commits in a loop through the gateway during the drills
pg_writer_start "$NA_TMP/acked" "$DSN" t nsenter --net="$CL_NS" || not_ok "the writer commits"

# drill_end DESC T0 BOUND_MS OLD_IP: waits for commits on another member than OLD_IP, then
# checks the longest gap since T0 against the bound.
drill_end() {
	local t0=$2 old=$4 d
	if wait_for 60 sh -c "[ \$(awk -v s=$t0 -v o=$old '\$1 == \"ok\" && \$3 > s && \$4 != o' '$NA_TMP/acked' | wc -l) -gt 20 ]"; then
		d=$(pg_gap "$NA_TMP/acked" "$t0")
		diag "$1: longest gap between acknowledged commits $d ms"
		if [ "$d" -lt "$3" ]; then ok "$1: writes resume through the gateway within $3 ms ($d ms)"; else not_ok "$1: writes resume within $3 ms" "gap $d ms"; fi
	else
		not_ok "$1: writes resume on another member through the gateway" "$(tail -3 "$NA_TMP/acked")"
		for i in 1 2 3; do
			diag "db-$i: $(pg_view "a$i" "db-$i" role) $(pg_view "a$i" "db-$i" state); its last lines:"
			ctl "a$i" ct logs "db-$i" --tail 40 2>&1 | grep -v "no action\|Thread-\|^  \|^Traceback\|Error\|^\s*\^" | tail -8 | sed 's/^/#     /'
		done
	fi
}

sleep 1
T0=$(now_ms)
api "a$L" POST "/v1/containers/db-$L/stop"
is "drill 1: the leader's container stopped" "$HTTP_CODE" 200
drill_end "drill 1 (leader container stopped)" "$T0" 15000 "${M[$((L - 1))]}"
NL=$(pg_leader db 3)
like "a follower became the leader" "$NL" "^[${F[0]}${F[1]}]\$"
api "a$L" POST "/v1/containers/db-$L/start"
if pg_wait_healthy db 3 60; then ok "the old leader rejoins as a streaming follower"; else not_ok "the old leader rejoins"; fi
if pg_wait_sync db 3 60; then ok "a synchronous standby is named again"; else not_ok "a synchronous standby is named again"; fi

L=$(pg_leader db 3)
sleep 1
T0=$(now_ms)
in_host "h$L" ip link set eth0 down
drill_end "drill 2 (leader's host underlay cut)" "$T0" 20000 "${M[$((L - 1))]}"
in_host "h$L" ip link set eth0 up
if pg_wait_healthy db 3 90; then ok "the cut host's member rejoins once its link is back"; else not_ok "the cut host's member rejoins"; fi
pg_wait_sync db 3 60 || not_ok "a synchronous standby is named after drill 2"

pg_writer_stop
L=$(pg_leader db 3)
pg_sql "a$L" "db-$L" "select id from t where id >= 0" >"$NA_TMP/have.ids"
diag "$(pg_acked "$NA_TMP/acked" | wc -l) rows acknowledged during the drills"
is "no acknowledged row was lost (synchronous mode)" "$(pg_lost "$NA_TMP/acked" "$NA_TMP/have.ids")" 0

# ---- switchover through the agent (synchronous mode: Patroni hands over to the sync standby only)
T=
for i in 1 2 3; do [ "$(pg_view "a$i" "db-$i" role)" = sync_standby ] && T=$i; done
[ -n "$T" ] || not_ok "a member shows role sync_standby"
T0=$(now_ms)
api "a$L" POST "/v1/containers/db-$L/switchover" "${J[@]}" -d "{\"to\":\"db-$T\"}"
is "POST switchover to db-$T: 200" "$HTTP_CODE" 200
wait_for 20 sh -c "[ \"\$(nsenter --net='$CL_NS' psql -X -At -d '$DSN' -c 'select inet_server_addr() where not pg_is_in_recovery()' 2>/dev/null)\" = '$NET.1$T' ]"
diag "switchover: request to the first connection on the new leader $(($(now_ms) - T0)) ms"
is "new writes land on db-$T" "$(cl_sql "$DSN" "insert into t (id) values (-2) returning inet_server_addr()" | head -1)" "$NET.1$T"
pg_wait_healthy db 3 60 || not_ok "healthy after the switchover"
api a1 POST /v1/containers/nosuch/switchover
is "switchover of an unknown container: 404" "$HTTP_CODE" 404
api a4 POST /v1/containers/gw/switchover
is "switchover of a gateway: 409" "$HTTP_CODE" 409

# ---- parameters (cluster-wide): live where PostgreSQL allows it, pending_restart where not
put_params() { # PARAMETERS-JSON
	local i
	for i in 1 2 3; do
		pg_put "a$i" "db-$i" "$(PG_EXTRA="{\"parameters\":$1}" pg_body db "db-$i" "${M[$((i - 1))]}" pn "${M[@]}")"
		[ "$HTTP_CODE" = 200 ] || { not_ok "PUT parameters $1 on db-$i" "$(last_req)"; return 1; }
	done
}
L=$(pg_leader db 3)
START=$(pg_sql "a$L" "db-$L" "select pg_postmaster_start_time()")
PID=$(field "a$L" "db-$L" pid)
put_params '{"work_mem":"7MB"}' && ok "PUT work_mem on the three members: 200"
F1=$([ "$L" = 1 ] && echo 2 || echo 1)
# Patroni applies a reload in its next loop (loop_wait, 2 s): the PUT returns once it was asked.
for i in "$F1" "$L"; do
	wait_for 15 sh -c "[ \"\$('$NETAGENTCTL' --socket '$(agent_sock "a$i")' ct exec db-$i -- psql -XAt -h /var/run/postgresql -U postgres -c 'show work_mem')\" = 7MB ]"
done
is "work_mem applied on a follower" "$(pg_sql "a$F1" "db-$F1" "show work_mem")" 7MB
is "and on the leader" "$(pg_sql "a$L" "db-$L" "show work_mem")" 7MB
is "without a restart of PostgreSQL" "$(pg_sql "a$L" "db-$L" "select pg_postmaster_start_time()")" "$START"
is "nor of the container" "$(field "a$L" "db-$L" pid)" "$PID"
put_params '{"work_mem":"7MB","max_connections":"150"}' && ok "PUT max_connections (needs a restart): 200"
wait_for 20 sh -c "curl -s --unix-socket '$(agent_sock "a$L")' http://x/v1/containers/db-$L | grep -q '\"pending_restart\": *true'"
is "GET reports pending_restart" "$(pg_view "a$L" "db-$L" pending_restart)" true
is "and the container was not restarted" "$(field "a$L" "db-$L" pid)" "$PID"
put_params '{}' && ok "PUT without parameters: 200"
wait_for 15 sh -c "[ \"\$('$NETAGENTCTL' --socket '$(agent_sock "a$L")' ct exec db-$L -- psql -XAt -h /var/run/postgresql -U postgres -c 'show work_mem')\" = 4MB ]"
is "work_mem is back to PostgreSQL's default" "$(pg_sql "a$L" "db-$L" "show work_mem")" 4MB

# ---- a fourth member joins, then leaves
# Patroni's own request to join Raft is made to fail: the three members drop the new node's Raft
# connections for its first 6 s, so its membership query times out and it never asks to be
# added. pysyncobj hangs up on a node it does not count as a voter, so the node cannot disturb
# the cluster meanwhile; the agent's join watch (provision/pg_raft.c) must have it added.
raft_voters() { ctl "a$1" ct exec "db-$1" -- syncobj_admin -conn "${M[$(($1 - 1))]}:5010" -pass "$2" -status 2>/dev/null | grep -c '^partner_node_status_server_'; }
RAFT_PW=$(python3 -c 'import hashlib,sys; print(hashlib.sha256(b"raft:repl-db").hexdigest())')
raft_block() { # add|delete
	local i ns
	for i in 1 2 3; do
		ns=$(field "a$i" "db-$i" netns)
		if [ "$1" = add ]; then
			printf 'table inet najoin {\n chain in { type filter hook input priority 0; ip saddr %s tcp dport 5010 drop; }\n}\n' "$M4" |
				nsenter --net="$ns" nft -f - || return 1
		else
			nsenter --net="$ns" nft delete table inet najoin 2>/dev/null
		fi
	done
}
M5=("${M[@]}" "$M4")
raft_block add || not_ok "Raft port of the three members closed to the new node" "nft failed"
T0=$(now_ms)
pg_put a4 db-4 "$(pg_body db db-4 "$M4" pn "${M5[@]}")"
is "PUT a fourth member" "$HTTP_CODE" 201
sleep 6
raft_block delete
is "its own request to join did not reach Raft: still three voters" "$(raft_voters "$L" "$RAFT_PW")" 2
for i in 1 2 3; do
	pg_put "a$i" "db-$i" "$(pg_body db "db-$i" "${M[$((i - 1))]}" pn "${M5[@]}")"
	[ "$HTTP_CODE" = 200 ] || not_ok "PUT members+1 on db-$i" "$(last_req)"
done
is "the three members took the new list live (same pid on the leader)" "$(field "a$L" "db-$L" pid)" "$PID"
if pg_wait_healthy db 4 120; then
	ok "the fourth member streams from the leader (the agent had Raft add it)"
	diag "fourth member: PUT to streaming $(($(now_ms) - T0)) ms"
else
	not_ok "the fourth member streams from the leader" "$(ctl a4 ct logs db-4 --tail 15 2>&1)"
fi
is "the leader did not restart" "$(pg_sql "a$L" "db-$L" "select pg_postmaster_start_time()")" "$START"
is "Raft has four voters (self and three partners)" "$(raft_voters "$L" "$RAFT_PW")" 3
api a4 DELETE /v1/containers/db-4
is "DELETE the fourth member" "$HTTP_CODE" 204
for i in 1 2 3; do
	pg_put "a$i" "db-$i" "$(pg_body db "db-$i" "${M[$((i - 1))]}" pn "${M[@]}")"
	[ "$HTTP_CODE" = 200 ] || not_ok "PUT members-1 on db-$i" "$(last_req)"
done
is "Raft is back to three voters" "$(raft_voters "$L" "$RAFT_PW")" 2
T0=$(now_ms)
cl_sql "$DSN" "insert into t (id) values (-3)" >/dev/null
is "the cluster still commits" "$(cl_sql "$DSN" "select count(*) from t where id = -3")" 1

# ---- clean-up through the API
for i in 1 2 3; do api "a$i" DELETE "/v1/containers/db-$i?purge=true"; done
api a4 DELETE /v1/containers/gw
api a4 DELETE /v1/containers/cl
is "members and gateway deleted" "$HTTP_CODE" 204
LEFT=0
for i in 1 2 3 4; do
	[ -n "$(ls "$(agent_dir "a$i")/run/runc" 2>/dev/null)" ] && LEFT=1
done
is "no runtime container is left" "$LEFT" 0
finish
