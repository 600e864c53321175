#!/usr/bin/env bash
# The whole system on one machine (make demo, as root): three simulated database hosts with an
# agent each, one etcd, a controller and a client, all network namespaces on a fabric bridge.
# This script plays the controller over the agents' HTTPS API (mTLS), and only that:
#   1. the platform: hosts prepared by provision/host-bootstrap.sh, agents with mTLS;
#   2. a database ordered on the Starter plan (one PostgreSQL node, one gateway, a VIP) and
#      migrated to the Business plan (three nodes, two gateways) while a client commits;
#   3. the client connects with TLS through the VIP, writes, reads back from a follower;
#   4. drills: the VIP holder's host loses its link; the leader is killed;
#   5. scale and replace: a fourth node joins, the first one leaves;
#   6. backups: a dump on a follower; a point-in-time restore into a new cluster;
#   7. isolation: a second network with the same subnet reaches nothing of the first;
#   8. netagentctl doctor on every host;
# then prints what it measured in one table, removes everything it made, and exits 0 only when
# every step held (also on Ctrl-C it removes everything).
#
#   DEMO_KEEP=1   keep the platform up at the end until Ctrl-C (interactive)
#   DEMO_TAP=1    also print each step as a TAP line (tests/integration/test_e2e.sh)
#   DEMO_UNTIL=6  stop after the drills (a shorter run while working on them)
if [ "$(id -u)" -ne 0 ]; then
	echo "demo: needs root (network namespaces, containers): run make demo as root (or with sudo)" >&2
	exit 1
fi
export NA_LOG_LEVEL=${NA_LOG_LEVEL:-info}
# shellcheck source=../tests/lib.sh
. "$(dirname "$0")/../tests/lib.sh"
# shellcheck source=../tests/cluster_lib.sh
. "$NA_ROOT/tests/cluster_lib.sh"

if [ -t 1 ] && [ "${DEMO_TAP:-0}" != 1 ]; then
	B=$'\e[1m' G=$'\e[32m' R=$'\e[31m' D=$'\e[2m' N=$'\e[0m'
else
	B='' G='' R='' D='' N=''
fi
FAILED=0 STEP=0
declare -a TIMES=()
T0=$(now_ms)
section() { printf '\n%s== %s ==%s\n' "$B" "$*" "$N"; }
info() { printf '   %s%s%s\n' "$D" "$*" "$N"; }
tap() { [ "${DEMO_TAP:-0}" = 1 ] && printf '%s %d - %s\n' "$1" "$STEP" "$2"; return 0; }
held() {
	STEP=$((STEP + 1))
	printf ' %s✔%s %s\n' "$G" "$N" "$*"
	tap ok "$*"
}
broke() {
	STEP=$((STEP + 1))
	printf ' %s✘ %s%s\n' "$R" "$*" "$N"
	tap "not ok" "$*"
	FAILED=$((FAILED + 1))
}
# step DESC CMD…: one progress line. CMD runs in this shell (it may set variables); its output
# is shown only when it fails.
step() {
	local desc=$1 t rc
	t=$(now_ms)
	shift
	# On a terminal the step shows while it runs and its result overwrites it.
	[ -t 1 ] && printf ' … %s' "$desc"
	"$@" >"$NA_TMP/.step" 2>&1
	rc=$?
	[ -t 1 ] && printf '\r'
	if [ $rc -eq 0 ]; then
		STEP=$((STEP + 1))
		printf ' %s✔%s %s %s(%d ms)%s\n' "$G" "$N" "$desc" "$D" $(($(now_ms) - t)) "$N"
		tap ok "$desc"
		return 0
	fi
	broke "$desc"
	tail -n 12 "$NA_TMP/.step" | sed 's/^/     /'
	return 1
}
# must DESC CMD…: a step the rest depends on.
must() { step "$@" || finish_demo 1; }
# record WHAT MEASURED_MS [BOUND_MS]: a row of the table; with a bound, a step that holds when
# the measure is below it.
record() {
	TIMES+=("$1|$2 ms|${3:+< $3 ms}")
	[ -z "${3:-}" ] && return 0
	if [ "$2" -lt "$3" ]; then held "$1: $2 ms (bound $3 ms)"; else broke "$1: $2 ms, bound $3 ms"; fi
}
note_row() { TIMES+=("$1|$2|${3:-}"); }

finish_demo() {
	section "Measured"
	printf '   %-60s %14s  %s\n' "what" "measured" "bound"
	local r a b c
	for r in "${TIMES[@]}"; do
		IFS='|' read -r a b c <<<"$r"
		printf '   %-60s %14s  %s\n' "$a" "$b" "$c"
	done
	printf '   %-60s %14s\n' "whole demo" "$((($(now_ms) - T0) / 1000)) s"
	if [ "${DEMO_KEEP:-0}" = 1 ] && [ -t 0 ]; then
		section "Platform kept up: Ctrl-C removes everything"
		while :; do sleep 3600; done
	fi
	section "Teardown"
	na_cleanup
	printf ' %s✔%s every namespace, container, process and file of prefix %s removed\n' "$G" "$N" "$NA_P"
	[ "${DEMO_TAP:-0}" = 1 ] && echo "1..$STEP"
	trap - EXIT
	if [ "${1:-0}" -ne 0 ] || [ $FAILED -gt 0 ]; then
		printf '\n%sdemo: %d step(s) did not hold%s\n' "$R" "$FAILED" "$N"
		exit 1
	fi
	printf '\n%sdemo: every step held%s\n' "$G" "$N"
	exit 0
}
trap 'echo; broke "interrupted"; na_cleanup; exit 130' INT TERM

put() { # HOST PATH BODY → 200/201; a 503 (busy, retry later) is retried as a controller would
	local try
	for try in 1 2 3; do
		ctl_api "$1" PUT "$2" "$3"
		case $HTTP_CODE in
		200 | 201) return 0 ;;
		503) echo "PUT $2 on $1: $HTTP_CODE $HTTP_BODY (try $try)"; sleep 2 ;;
		*) break ;;
		esac
	done
	echo "PUT $2 on $1: $HTTP_CODE $HTTP_BODY"
	return 1
}
call() { # HOST METHOD PATH [BODY] WANT
	ctl_api "$1" "$2" "$3" "${5:+$4}"
	[ "$HTTP_CODE" = "${5:-$4}" ] || { echo "$2 $3 on $1: $HTTP_CODE $HTTP_BODY"; return 1; }
}

# ------------------------------------------------------------------ the platform
section "1. Hosts, etcd, controller and client (network namespaces on one bridge)"
# pgBackRest repositories stand in for a shared mount: a directory every simulated host sees.
export NETAGENT_PGBACKREST_ROOT=$NA_TMP/pgbackrest
mkdir -p "$NETAGENT_PGBACKREST_ROOT"
chmod 0711 "$NA_TMP"
must "fabric, etcd, 3 hosts prepared by host-bootstrap.sh, 3 agents with mTLS" plat_up 3
for h in h1 h2 h3; do info "$h: $(host_ip $h)  agent $(agent_name $h)  https://$(host_ip $h):$PLAT_PORT"; done
info "etcd: $ETCD_URLS   controller: 192.0.2.2   client: 192.0.2.50"
reach_all() {
	local h
	for h in h1 h2 h3; do call $h GET /v1/health 200 || return 1; done
}
must "the controller reaches every agent with its client certificate" reach_all
nocert() { ! in_host ctl curl -sS --max-time 3 --cacert "$PKI/ca.pem" "https://$(host_ip h1):$PLAT_PORT/v1/health"; }
step "without a client certificate the API refuses the TLS handshake" nocert

# ------------------------------------------------------------------ Starter, then Business
M=(198.18.10.11 198.18.10.12 198.18.10.13 198.18.10.14)
VIP=192.0.2.100
PW=su-db1
URL="postgres://postgres:$PW@$VIP:5432/postgres?sslmode=require"
RURL="postgres://postgres:$PW@$VIP:5433/postgres?sslmode=require"
db_certs db1 "${M[@]}" || finish_demo 1
export PG_TLS_DIR=$PKI/db/db1
export PG_EXTRA="{\"pitr\":{\"repo\":\"$NETAGENT_PGBACKREST_ROOT/db1\",\"retention_full\":2}}"
member() { # I MEMBER-INDEXES…: PUT db1-I on its host with the members listed
	local i=$1 ips=() k
	shift
	for k in "$@"; do ips+=("${M[$k]}"); done
	put "$(host_of "$i")" "/v1/containers/db1-$i" "$(pg_body db1 "db1-$i" "${M[$i]}" db1 "${ips[@]}")"
}
host_of() { case $1 in 0 | 3) echo h1 ;; 1) echo h2 ;; 2) echo h3 ;; esac; }
gateway() { # HOST NAME IP MEMBER-INDEXES…
	local h=$1 n=$2 ip=$3 ips=() k
	shift 3
	for k in "$@"; do ips+=("${M[$k]}"); done
	put "$h" "/v1/containers/$n" "$(gw_body db1 db1 "$ip" "${ips[@]}")"
}
vip_on() { # HOST GATEWAY
	put "$1" /v1/vips/db1 "{\"address\":\"$VIP/24\",\"target\":{\"container\":\"$2\"},\"checks\":[{\"type\":\"tcp\",\"port\":5432}],\"interval_ms\":200,\"fall\":2,\"rise\":1}"
}
view() { # I FIELD: a field of db1-I's Patroni view
	ctl_api "$(host_of "$1")" GET "/v1/containers/db1-$1"
	json_get "patroni.$2" "$HTTP_BODY" 2>/dev/null
}
leader_idx() {
	local i
	for i in "$@"; do [ "$(view "$i" role)" = leader ] && { echo "$i"; return 0; }; done
	return 1
}
streaming() { # N I…: N members of I… are followers with a known lag
	local n=0 want=$1 i
	shift
	for i in "$@"; do
		case $(view "$i" role) in replica | sync_standby) [[ $(view "$i" lag) =~ ^[0-9]+$ ]] && n=$((n + 1)) ;; esac
	done
	[ $n -eq "$want" ]
}
answers() { [ "$(psql_cl "$1" 'select 1')" = 1 ]; }
# backup_wait I ID: until backup ID of db1-I is no longer running; 0 when it is done.
backup_state() { call "$(host_of "$1")" GET "/v1/containers/db1-$1/backups/$2" 200 && json_get state "$HTTP_BODY"; }
backup_ended() { [ "$(backup_state "$1" "$2")" != running ]; }
backup_wait() {
	wait_for "${3:-300}" backup_ended "$1" "$2" && [ "$(backup_state "$1" "$2")" = done ] ||
		{ echo "backup $2 of db1-$1: $HTTP_BODY"; return 1; }
}
backup() { # I TYPE: a backup of db1-I, waited for; BACKUP_ID
	call "$(host_of "$1")" POST "/v1/containers/db1-$1/backups" "{\"type\":\"$2\"}" 202 || return 1
	BACKUP_ID=$(json_get id "$HTTP_BODY")
	backup_wait "$1" "$BACKUP_ID"
}

section "2. A database on the Starter plan: one PostgreSQL node, one gateway, one VIP"
netall() { local h; for h in h1 h2 h3; do put $h "/v1/networks/$1" "{\"vni\":$2,\"subnet\":\"198.18.10.0/24\"}" || return 1; done; }
must "network db1 (VNI 1010, 198.18.10.0/24) on h1, h2, h3" netall db1 1010
t=$(now_ms)
must "db1-0 on h1: Patroni + PostgreSQL 15, TLS, point-in-time archiving" member 0 0
must "gw-1 on h1: HAProxy, TLS forced, uplink on the host's NIC" gateway h1 gw-1 198.18.10.21 0
must "VIP $VIP on gw-1" vip_on h1 gw-1
must "the database answers through the VIP, with TLS" wait_for 90 answers "$URL"
record "order to a database answering through the VIP" "$(($(now_ms) - t))"
printf '\n   %sconnection URL:%s postgres://postgres:…@%s:5432/postgres?sslmode=require\n\n' "$B" "$N" "$VIP"
must "table w created through the VIP" psql_cl "$URL" "create table w (id bigint primary key, at timestamptz default now())"
is_leader() { [ "$(view "$1" role)" = leader ]; }
must "the agent's Patroni view shows db1-0 as the leader" wait_for 30 is_leader 0
must "first full backup (it creates the pgBackRest stanza the archiver needs)" backup 0 full
must "a client commits a row every 20 ms through the VIP" pg_writer_start "$NA_TMP/w1" "$URL" w in_host cl

section "3. The plan changes to Business: three nodes, two gateways (the client keeps writing)"
t=$(now_ms)
# Both new nodes at once: Raft takes one membership change at a time, and the agent of a node
# left out has it added (provision/pg_raft.c).
grow() {
	member 1 0 1 2 &
	local a=$! rc
	member 2 0 1 2
	rc=$?
	wait $a && [ $rc = 0 ] && member 0 0 1 2
}
must "db1-1 (h2) and db1-2 (h3) ordered at once; db1-0 told the new member list (live)" grow
must "both new nodes stream from the leader" wait_for 120 streaming 2 0 1 2
must "gw-1 routes over the three nodes (live reload)" gateway h1 gw-1 198.18.10.21 0 1 2
must "gw-2 on h2 over the three nodes" gateway h2 gw-2 198.18.10.22 0 1 2
must "gw-2 is the VIP's second candidate" vip_on h2 gw-2
sleep 2
pg_writer_stop
record "Starter → Business, order to the last step" "$(($(now_ms) - t))"
note_row "failed commits during the migration" "$(pg_fails "$NA_TMP/w1" "$t")" "0"
step "no commit failed during the migration" test "$(pg_fails "$NA_TMP/w1" "$t")" = 0
psql_cl "$URL" "select id from w" >"$NA_TMP/have1"
step "no acknowledged commit is missing" test "$(pg_lost "$NA_TMP/w1" "$NA_TMP/have1")" = 0
sync_on() { [ "$(psql_cl "$URL" "select count(*) from pg_stat_replication where sync_state = 'sync'")" = 1 ]; }
step "synchronous replication is on (three members)" wait_for 30 sync_on

section "4. The client: TLS through the VIP, a read from a follower"
tls() { [ "$(psql_cl "$URL" 'select ssl from pg_stat_ssl where pid = pg_backend_pid()')" = t ]; }
step "the client's connection is TLS (pg_stat_ssl)" tls
repl_tls() { [ "$(psql_cl "$URL" "select count(*) from pg_stat_ssl s join pg_stat_replication r using (pid) where s.ssl")" = 2 ]; }
step "both replication connections are TLS" repl_tls
must "a row written through the VIP" psql_cl "$URL" "insert into w (id) values (-1)"
follower_read() { [ "$(psql_cl "$RURL" 'select pg_is_in_recovery()')" = t ] && [ "$(psql_cl "$RURL" 'select count(*) from w where id = -1')" = 1 ]; }
step "port 5433 reads it back from a follower" wait_for 10 follower_read
plain() { ! psql_cl "postgres://postgres:$PW@$VIP:5432/postgres?sslmode=disable" 'select 1' | grep -qx 1; }
step "a client without TLS is refused (force_tls)" plain

# ------------------------------------------------------------------ drills
holder() { # the gateway host whose agent says master (short timeouts: a cut host does not answer)
	local h
	for h in "$@"; do
		NA_HTTP_TIMEOUT=2 ctl_api $h GET /v1/vips/db1
		[ "$(json_get state "$HTTP_BODY" 2>/dev/null)" = master ] && { echo $h; return 0; }
	done
	return 1
}
vip_tcp() { in_host cl timeout 0.3 bash -c "exec 3<>/dev/tcp/$VIP/5432" 2>/dev/null; }
section "5. Drill: the VIP holder's host loses its underlay link"
# Both gateways' namespaces read over netlink at 100+ Hz through both drills: never two holders.
gw_ns() { ctl_api "$1" GET "/v1/containers/$2" && json_get netns "$HTTP_BODY"; }
start_vip_sampler "$NA_TMP/samples" "$VIP" "$(gw_ns h1 gw-1)" "$(gw_ns h2 gw-2)"
H=$(holder h1 h2) || { broke "no VIP holder"; finish_demo 1; }
O=$([ "$H" = h1 ] && echo h2 || echo h1)
info "VIP holder: $H ($(host_ip $H)); the client commits a row every 20 ms"
must "a client commits a row every 20 ms through the VIP" pg_writer_start "$NA_TMP/w2" "$URL" w in_host cl
sleep 1
t=$(now_ms)
ip -n "$NA_FAB" link set "$(hostns $H)" down
# The cut host cannot answer any more: the first TCP connect answered is the new holder's.
if step "the VIP answers again, from $O's gateway" wait_for 20 vip_tcp; then
	record "VIP move after the holder's link cut (client TCP connect)" "$(($(now_ms) - t))" 3000
fi
step "$O's agent holds the VIP" wait_for 5 holder "$O"
resumed() { [ "$(awk -v s="$1" '$1 == "ok" && $3 > s' "$2" | wc -l)" -gt 5 ]; }
step "the client commits again through the VIP" wait_for 40 resumed "$t" "$NA_TMP/w2"
pg_writer_stop
note_row "  longest commit gap (a database member was on the cut host)" "$(pg_gap "$NA_TMP/w2" "$t") ms"
ip -n "$NA_FAB" link set "$(hostns $H)" up
must "the cut host is back: three streaming again" wait_for 120 streaming 2 0 1 2
# Patroni rewrites its /sync key after a failover; a leader lost before that leaves no member
# allowed to promote: the next drill waits for a named synchronous standby.
sync_named() { local i; for i in "$@"; do [ "$(view "$i" role)" = sync_standby ] && return 0; done; return 1; }
must "Patroni has named a synchronous standby again" wait_for 60 sync_named 0 1 2

section "6. Drill: the leader is killed"
L=$(leader_idx 0 1 2) || { broke "no leader"; finish_demo 1; }
info "leader: db1-$L on $(host_of "$L"); kill -9 of its Patroni (PID 1: PostgreSQL dies with it)"
must "a client commits a row every 20 ms through the VIP" pg_writer_start "$NA_TMP/w3" "$URL" w in_host cl
sleep 1
ctl_api "$(host_of "$L")" GET "/v1/containers/db1-$L"
t=$(now_ms)
kill -9 "$(json_get pid "$HTTP_BODY")"
if step "the client commits again (Patroni promotes or recovers, the gateways follow)" wait_for 40 resumed "$t" "$NA_TMP/w3"; then
	record "leader killed → commits resume through the VIP" "$(pg_gap "$NA_TMP/w3" "$t")" 15000
fi
pg_writer_stop
psql_cl "$URL" "select id from w" >"$NA_TMP/have3"
step "no acknowledged commit was lost (synchronous replication)" test "$(pg_lost "$NA_TMP/w3" "$NA_TMP/have3")" = 0
must "the killed node is back as a member (restart policy, pg_rewind)" wait_for 120 streaming 2 0 1 2
must "Patroni has named a synchronous standby again" wait_for 60 sync_named 0 1 2
kill "$VIP_SAMPLER" 2>/dev/null
# Columns 4 and 5: each gateway holds the VIP by two reads in opposite orders (tests/lib.sh).
read -r NS SPAN TWO <<<"$(awk 'NR == 1 { a = $1 } { n++; b = $1; if ($4 + $5 > 1) t++ } END { print n + 0, b - a, t + 0 }' "$NA_TMP/samples")"
info "VIP sampler: $NS samples of both gateways over $((SPAN / 1000)) s ($((NS * 1000 / (SPAN > 0 ? SPAN : 1))) Hz)"
step "at most one VIP holder at every sample of both drills" test "$NS" -gt $((SPAN / 50)) -a "$TWO" = 0
note_row "samples with two VIP holders (both drills, $((NS * 1000 / (SPAN > 0 ? SPAN : 1))) Hz)" "$TWO" "0"

[ "${DEMO_UNTIL:-99}" -le 6 ] && finish_demo 0
# ------------------------------------------------------------------ scale and replace
section "7. Scale and replace: db1-3 joins, then db1-0 leaves (the client keeps writing)"
must "a client commits a row every 20 ms through the VIP" pg_writer_start "$NA_TMP/w4" "$URL" w in_host cl
t=$(now_ms)
four() { member 3 0 1 2 3 && member 0 0 1 2 3 && member 1 0 1 2 3 && member 2 0 1 2 3; }
must "db1-3 ordered on h1; the others told the four-member list (live)" four
must "db1-3 streams from the leader" wait_for 120 streaming 3 0 1 2 3
gws() { gateway h1 gw-1 198.18.10.21 "$@" && gateway h2 gw-2 198.18.10.22 "$@"; }
must "both gateways route over the four nodes (live reload)" gws 0 1 2 3
if [ "$(leader_idx 0 1 2 3)" = 0 ]; then
	must "db1-0 leads: switchover first (Patroni picks the synchronous standby)" call h1 POST /v1/containers/db1-0/switchover '{}' 200
	wait_for 30 bash -c '! [ "$(leader_idx 0 1 2 3)" = 0 ]'
fi
must "gateways stop routing to db1-0" gws 1 2 3
must "db1-0 deleted (its volume purged)" call h1 DELETE "/v1/containers/db1-0?purge=true" 204
shrink() { member 1 1 2 3 && member 2 1 2 3 && member 3 1 2 3; }
must "the others told the three-member list (live: Raft shrinks)" shrink
sleep 2
pg_writer_stop
record "scale and replace, order to the last step" "$(($(now_ms) - t))"
note_row "  failed commits (switchover window)" "$(pg_fails "$NA_TMP/w4" "$t")"
note_row "  longest gap between acknowledged commits" "$(pg_gap "$NA_TMP/w4" "$t") ms"
psql_cl "$URL" "select id from w" >"$NA_TMP/have4"
step "no acknowledged commit was lost" test "$(pg_lost "$NA_TMP/w4" "$NA_TMP/have4")" = 0
step "three nodes: one leader, two streaming" wait_for 60 streaming 2 1 2 3

[ "${DEMO_UNTIL:-99}" -le 7 ] && finish_demo 0
# ------------------------------------------------------------------ backups
section "8. Backups: a dump on a follower; a point-in-time restore into a new cluster"
F=
for i in 1 2 3; do case $(view "$i" role) in replica | sync_standby) F=$i ;; esac; done
dump() {
	backup "$F" dump || return 1
	call "$(host_of "$F")" GET "/v1/containers/db1-$F/backups" 200 || return 1
	info "$(json_get items.0.id "$HTTP_BODY"): $(json_get items.0.type "$HTTP_BODY"), $(json_get items.0.size "$HTTP_BODY") bytes"
}
must "a dump of db1-$F (a follower), listed" dump
L=$(leader_idx 1 2 3)
must "a full backup on the leader (db1-$L)" backup "$L" full
t1() { psql_cl "$URL" "create table ledger (n int, note text); insert into ledger values (1, 'before'), (2, 'before')"; }
must "two rows committed before the chosen time" t1
sleep 2
TARGET=$(date -u +%Y-%m-%dT%H:%M:%SZ)
sleep 2
# Three calls, not one: psql -c runs "insert; select pg_switch_wal()" as one transaction, whose
# commit record then lands in the segment after the switch, archived only at archive_timeout
# (60 s), and every restore before that ends short of the target.
t3() {
	psql_cl "$URL" "insert into ledger values (3, 'after')" >/dev/null || return 1
	SEG=$(psql_cl "$URL" "select pg_walfile_name(pg_current_wal_lsn())" | tail -1)
	[[ $SEG =~ ^[0-9A-F]{24}$ ]] && psql_cl "$URL" "select pg_switch_wal()" >/dev/null
}
must "a third row committed after it ($TARGET), WAL switched to the archive" t3
# In the repository itself, not only in pg_stat_archiver: a restore whose WAL ends before the
# target fails ("recovery ended before configured recovery target was reached") and Patroni
# starts the bootstrap over until the segment is there.
archived() {
	[ "$(psql_cl "$URL" "select last_archived_wal >= '$SEG' from pg_stat_archiver")" = t ] &&
		compgen -G "$NETAGENT_PGBACKREST_ROOT/db1/archive/db1/15-*/${SEG:0:16}/$SEG-*" >/dev/null
}
if ! step "the segment holding the third row is in the repository" wait_for 120 archived; then
	info "pg_stat_archiver: $(psql_cl "$URL" "select archived_count, last_archived_wal, failed_count, last_failed_wal from pg_stat_archiver")"
	info "the third row's segment: $SEG"
fi
restore() {
	put h3 /v1/containers/db1r-0 "$(PG_TLS_DIR=$PKI/db/db1r PG_EXTRA="{\"restore\":{\"repo\":\"$NETAGENT_PGBACKREST_ROOT/db1\",\"stanza\":\"db1\",\"target_time\":\"$TARGET\"}}" \
		pg_body db1r db1r-0 198.18.10.31 db1 198.18.10.31)"
}
db_certs db1r 198.18.10.31 || finish_demo 1
t=$(now_ms)
must "db1r-0 on h3: a new cluster restored from db1's repository to $TARGET" restore
RDB="postgres://postgres:su-db1r@198.18.10.31:5432/postgres?sslmode=require"
rpsql() {
	ctl_api h3 GET /v1/containers/db1r-0
	nsenter --net="$(json_get netns "$HTTP_BODY")" env PGCONNECT_TIMEOUT=3 psql -X -q -A -t -d "$RDB" -c "$1" 2>&1
}
restored() { [ "$(rpsql 'select not pg_is_in_recovery()')" = t ]; }
if ! step "db1r-0 restored and promoted" wait_for 180 restored; then
	"$NETAGENTCTL" --socket "$(agent_sock h3)" ct logs db1r-0 --tail 15 2>&1 | sed 's/^/     /'
	finish_demo 1
fi
record "point-in-time restore, order to a primary" "$(($(now_ms) - t))"
note_row "  rows in db1 now" "$(psql_cl "$URL" 'select count(*) from ledger')" "3"
note_row "  rows in db1r (restored to $TARGET)" "$(rpsql 'select count(*) from ledger')" "2"
step "the restored cluster has exactly the rows committed before $TARGET" test "$(rpsql "select string_agg(note, ',' order by n) from ledger")" = "before,before"

# ------------------------------------------------------------------ isolation
section "9. Isolation: network db2 with the same subnet on the same hosts"
must "network db2 (VNI 1020, 198.18.10.0/24 again) on h1, h2, h3" netall db2 1020
iso() {
	put h3 /v1/containers/probe "{\"role\":\"generic\",\"command\":[\"sleep\",\"600\"],\"networks\":[{\"network\":\"db2\",\"ip\":\"198.18.10.12/24\"}]}" || return 1
	ctl_api h3 GET /v1/containers/probe
	local ns
	ns=$(json_get netns "$HTTP_BODY")
	# 198.18.10.13 is db1-2 in db1; from db2 nothing answers there.
	! nsenter --net="$ns" bash -c 'exec 3<>/dev/tcp/198.18.10.13/5432' 2>/dev/null &&
		! nsenter --net="$ns" bash -c 'exec 3<>/dev/tcp/198.18.10.13/8008' 2>/dev/null
}
step "a container of db2 reaches nothing of db1 (same addresses, other network)" iso

# ------------------------------------------------------------------ doctor
section "10. netagentctl doctor on every host"
doctor() { # HOST
	"$NETAGENTCTL" --socket "$(agent_sock "$1")" doctor
}
for h in h1 h2 h3; do step "doctor on $h: healthy" doctor $h; done

finish_demo 0
