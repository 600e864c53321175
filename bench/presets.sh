#!/usr/bin/env bash
# Role presets benchmark (make bench, or alone), each beside its baseline in the same run:
#   - order-to-ready: PUT of a single-member postgres container until the leader accepts a
#     connection, beside initdb + pg_ctl start by hand on a fresh data dir until pg_isready,
#     median of BENCH_PG_RUNS (3). Goal <= 1.5x.
#   - gateway path: pgbench -S (select-only, BENCH_PGBENCH_S seconds, 4 clients) through the
#     gateway beside pgbench -S straight to the leader, same database. Goal >= 90 %.
#   - leader loss: kill -9 of the leader's Patroni (PostgreSQL dies with it) → first write
#     committed through the gateway, beside the same cluster switched live to Patroni's default
#     timings (ttl 30, loop_wait 10, retry_timeout 10), and once more with tighter ones (ttl 8,
#     loop_wait 1). Goal < 10 s.
#   - switchover through the agent: request → first committed write through the gateway, by a
#     client writing from the request on (Patroni's answer, polled once a second, beside). Goal < 3 s.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
RUNS=${BENCH_PG_RUNS:-3}
SECS=${BENCH_PGBENCH_S:-10}
# shellcheck source=../tests/lib.sh
source tests/lib.sh
# shellcheck source=summary.sh
source bench/summary.sh
export NA_LOG_LEVEL=warn
# The hand-run baseline's data dir lives below $NA_TMP (0700, root): postgres must traverse it.
chmod 0711 "$NA_TMP"
PGBIN=/usr/lib/postgresql/15/bin
[ -x $PGBIN/pg_ctl ] && command -v patroni >/dev/null && command -v haproxy >/dev/null ||
	{ echo "postgresql-15, patroni and haproxy are needed (scripts/deps.sh)"; exit 1; }

med() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ct_ns() { api "$1" GET "/v1/containers/$2"; json_get netns "$HTTP_BODY"; }
pg_json() { # CLUSTER NODE IP MEMBER…
	local cl=$1 node=$2 ip=$3
	shift 3
	$PY - "$cl" "$node" "$ip" "$@" <<'EOF'
import json, os, sys
cl, node, ip = sys.argv[1:4]
pg = {"cluster": cl, "node": node, "members": sys.argv[4:],
      "superuser_password": "bench-su", "replication_password": "bench-repl"}
if os.environ.get("PG_TIMINGS"):
    pg["patroni"] = json.loads(os.environ["PG_TIMINGS"])
print(json.dumps({"role": "postgres", "networks": [{"network": "b1", "ip": ip + "/24"}],
    "stop_timeout_s": 5, "postgres": pg}))
EOF
}
pg_ready() { # NETNS IP
	nsenter --net="$1" env PGPASSWORD=bench-su PGCONNECT_TIMEOUT=1 psql -X -q -A -t -h "$2" \
		-U postgres -d postgres -c 'select not pg_is_in_recovery()' 2>/dev/null | grep -qx t
}

start_etcd_cluster 1 >/dev/null || { echo "etcd did not start"; exit 1; }
for i in 1 2 3; do
	mkhost h$i
	start_agent h$i b$i --etcd "$ETCD_URLS" || { echo "agent b$i did not start"; exit 1; }
	api b$i PUT /v1/networks/b1 -d '{"vni":3001,"subnet":"198.18.30.0/24"}'
done

# ---- order-to-ready -------------------------------------------------------------
agent=() hand=()
for ((r = 0; r < RUNS; r++)); do
	t0=$(now_ms)
	api b1 PUT /v1/containers/s$r -d "$(pg_json s$r s$r-0 198.18.30.5$r 198.18.30.5$r)"
	[ "$HTTP_CODE" = 201 ] || { echo "PUT s$r: $HTTP_CODE $HTTP_BODY"; exit 1; }
	ns=$(ct_ns b1 s$r)
	while ! pg_ready "$ns" 198.18.30.5$r; do
		[ $(($(now_ms) - t0)) -gt 120000 ] && { echo "s$r not ready in 120 s"; exit 1; }
		sleep 0.05
	done
	agent+=($(($(now_ms) - t0)))
	api b1 DELETE "/v1/containers/s$r?purge=true"
	d=$NA_TMP/hand$r
	mkdir -p "$d" && chown postgres: "$d"
	t0=$(now_ms)
	runuser -u postgres -- $PGBIN/initdb -D "$d/data" -A trust -U postgres --data-checksums >/dev/null 2>&1 &&
		runuser -u postgres -- $PGBIN/pg_ctl -D "$d/data" -o "-c listen_addresses='' -c unix_socket_directories=$d -c port=5490" -w start >/dev/null 2>&1 ||
		{ echo "hand-run pg_ctl failed"; exit 1; }
	until $PGBIN/pg_isready -q -h "$d" -p 5490; do sleep 0.05; done
	hand+=($(($(now_ms) - t0)))
	runuser -u postgres -- $PGBIN/pg_ctl -D "$d/data" -m immediate stop >/dev/null 2>&1
done
a_med=$(printf '%s\n' "${agent[@]}" | med)
h_med=$(printf '%s\n' "${hand[@]}" | med)

# ---- a three-member cluster behind a gateway --------------------------------------
M=(198.18.30.11 198.18.30.12 198.18.30.13)
for i in 0 1 2; do
	api b$((i + 1)) PUT /v1/containers/m$i -d "$(pg_json c1 m$i "${M[$i]}" "${M[@]}")"
	[ "$HTTP_CODE" = 201 ] || { echo "PUT m$i: $HTTP_CODE $HTTP_BODY"; exit 1; }
done
gwbody=$($PY - "${M[@]}" <<'EOF'
import json, sys
print(json.dumps({"role": "gateway", "networks": [{"network": "b1", "ip": "198.18.30.21/24"}],
    "gateway": {"port": 5432, "backends": [{"address": a, "port": 5432, "check_port": 8008} for a in sys.argv[1:]]}}))
EOF
)
api b1 PUT /v1/containers/gw -d "$gwbody"
[ "$HTTP_CODE" = 201 ] || { echo "PUT gw: $HTTP_CODE $HTTP_BODY"; exit 1; }
GWNS=$(ct_ns b1 gw)
leader() {
	local i
	for i in 0 1 2; do
		api b$((i + 1)) GET /v1/containers/m$i
		[ "$(json_get patroni.role "$HTTP_BODY" 2>/dev/null)" = leader ] && { echo $i; return 0; }
	done
	return 1
}
wait_for 120 leader >/dev/null || { echo "no leader"; exit 1; }
# The client runs in the gateway's namespace: 127.0.0.1:5432 is the gateway, the leader's
# overlay address is direct.
wait_for 60 bash -c "nsenter --net=$GWNS env PGPASSWORD=bench-su psql -X -q -h 127.0.0.1 -U postgres -d postgres -c 'create table if not exists w(id serial, at timestamptz default now())' 2>/dev/null" ||
	{ echo "gateway does not reach the leader"; exit 1; }
L=$(leader)
nsenter --net="$GWNS" env PGPASSWORD=bench-su pgbench -q -i -s 5 -h 127.0.0.1 -U postgres postgres >/dev/null 2>&1
tps() { # HOST
	nsenter --net="$GWNS" env PGPASSWORD=bench-su pgbench -S -n -c 4 -j 2 -T "$SECS" -h "$1" -U postgres postgres 2>/dev/null |
		awk '/^tps/ { print int($3); exit }'
}
t_direct=$(tps "${M[$L]}")
t_gw=$(tps 127.0.0.1)

# ---- leader loss and switchover, client side ------------------------------------------
# gw_write_on: the address of the member that committed a write through the gateway.
gw_write_on() {
	nsenter --net="$GWNS" env PGPASSWORD=bench-su PGCONNECT_TIMEOUT=1 psql -X -q -A -t -h 127.0.0.1 \
		-U postgres -d postgres -c 'insert into w default values returning inet_server_addr()' 2>/dev/null | head -1
}
# loss: kill -9 of the leader's Patroni (the container's PID 1: PostgreSQL dies with it), as a
# crash, not a graceful stop that hands the lock over; returns ms until a write commits through
# the gateway (on whichever member Patroni makes leader); then waits for three members again.
loss() {
	local l t0 pid
	l=$(leader)
	api b$((l + 1)) GET "/v1/containers/m$l"
	pid=$(json_get pid "$HTTP_BODY")
	t0=$(now_ms)
	kill -9 "$pid"
	until [ -n "$(gw_write_on)" ]; do
		[ $(($(now_ms) - t0)) -gt 120000 ] && break
		sleep 0.05
	done
	echo $(($(now_ms) - t0))
	wait_for 120 bash -c "[ \$(for i in 0 1 2; do curl -s --unix-socket $NA_TMP/agent-b\$((i + 1))/sock http://x/v1/containers/m\$i; done | grep -c '\"role\": *\"\(leader\|replica\|sync_standby\)\"') = 3 ]"
	sleep 3
}
t_loss=$(loss)
# Tighter than the agent's defaults (ttl 8, loop_wait 1, retry_timeout 3: the leader key is renewed
# every second and lives 8), applied live: what the goal costs.
for i in 0 1 2; do
	api b$((i + 1)) PUT /v1/containers/m$i -d "$(PG_TIMINGS='{"ttl":8,"loop_wait":1,"retry_timeout":3}' pg_json c1 m$i "${M[$i]}" "${M[@]}")"
done
sleep 5
t_loss_fast=$(loss)
# The same cluster with Patroni's default timings (ttl 30, loop_wait 10, retry_timeout 10),
# applied live through the agent, as the baseline.
for i in 0 1 2; do
	api b$((i + 1)) PUT /v1/containers/m$i -d "$(PG_TIMINGS='{"ttl":30,"loop_wait":10,"retry_timeout":10}' pg_json c1 m$i "${M[$i]}" "${M[@]}")"
done
sleep 12
t_loss_def=$(loss)
for i in 0 1 2; do
	api b$((i + 1)) PUT /v1/containers/m$i -d "$(pg_json c1 m$i "${M[$i]}" "${M[@]}")"
done
# The switchover starts from a settled cluster: one leader, a synchronous standby Patroni has
# named (after a failover it rewrites /sync), a replica.
settled() {
	local i r roles=
	N= T=
	for i in 0 1 2; do
		api b$((i + 1)) GET /v1/containers/m$i
		r=$(json_get patroni.role "$HTTP_BODY" 2>/dev/null)
		roles+="$r "
		case $r in leader) N=$i ;; sync_standby) T=$i ;; esac
	done
	[ -n "$N" ] && [ -n "$T" ] && [[ $roles == *replica* ]]
}
wait_for 120 settled || echo "cluster not settled before the switchover: $(for i in 0 1 2; do api b$((i + 1)) GET /v1/containers/m$i; json_get patroni.role "$HTTP_BODY"; done | tr '\n' ' ')"
# A client writes through the gateway from the request on, as an application does: Patroni's
# own answer comes later (its API checks the outcome once a second, after a first 1 s sleep),
# and the time it answers is reported beside.
t0=$(now_ms)
(
	until [ "$(gw_write_on)" = "${M[$T]}" ]; do sleep 0.05; [ $(($(now_ms) - t0)) -gt 60000 ] && break; done
	echo $(($(now_ms) - t0)) >"$NA_TMP/sw_ms"
) &
SWW=$!
# Patroni answers 412/503 while it is not ready for it (the agent passes it on): asked again.
for _ in $(seq 20); do
	api b$((N + 1)) POST "/v1/containers/m$N/switchover" -H 'Content-Type: application/json' -d "{\"to\":\"m$T\"}"
	[ "$HTTP_CODE" = 200 ] && break
	sleep 0.5
done
sw_code=$HTTP_CODE
t_sw_api=$(($(now_ms) - t0))
wait $SWW
t_sw=$(cat "$NA_TMP/sw_ms")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (b > 0) ? 100 * a / b : 0 }'; }
cat <<TXT

role presets (postgres, gateway): real Patroni/PostgreSQL 15 and HAProxy in runc containers
| what | netagent | baseline | ratio | goal |
|---|---|---|---|---|
| order-to-ready (PUT → leader accepts), median of $RUNS | ${a_med} ms | initdb + pg_ctl by hand: ${h_med} ms | $(ratio "$a_med" "$h_med")x | <= 1.5x |
| pgbench -S, 4 clients, ${SECS} s | through the gateway: ${t_gw} tps | direct to the leader: ${t_direct} tps | $(pct "$t_gw" "$t_direct") % | >= 90 % |
| leader loss: kill -9 of the leader → first write through the gateway | ${t_loss} ms | the same with Patroni's defaults (ttl 30, loop_wait 10, retry_timeout 10): ${t_loss_def} ms | $(ratio "$t_loss" "$t_loss_def")x | < 10 s |
| the same with ttl 8, loop_wait 1, retry_timeout 3 | ${t_loss_fast} ms | | | < 10 s |
| switchover (HTTP $sw_code): request → first write on the new leader through the gateway | ${t_sw} ms | Patroni's answer to the request: ${t_sw_api} ms | | < 3 s |
TXT
bench_row presets "order-to-ready: PUT → leader accepts (median of $RUNS)" "${a_med} ms" "initdb + pg_ctl by hand ${h_med} ms" "$(ratio "$a_med" "$h_med")x" "<= 1.5x"
bench_row presets "pgbench -S through the gateway" "${t_gw} tps" "direct to the leader ${t_direct} tps" "$(pct "$t_gw" "$t_direct") %" ">= 90 %"
bench_row presets "leader kill -9 → first write through the gateway" "${t_loss} ms" "Patroni defaults ${t_loss_def} ms" "$(ratio "$t_loss" "$t_loss_def")x" "< 10 s"
bench_row presets "leader kill -9 with ttl 8, loop_wait 1 → first write" "${t_loss_fast} ms" "" "" "< 10 s"
bench_row presets "switchover → first write on the new leader" "${t_sw} ms" "Patroni answered after ${t_sw_api} ms" "" "< 3 s"
