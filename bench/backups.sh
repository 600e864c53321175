#!/usr/bin/env bash
# Backups benchmark (make bench, or alone; issue 10): a three-member cluster with TLS and pitr,
# a pgbench database of scale BENCH_PG_SCALE (50, about 750 MB) written on the leader, then:
#   - a dump (POST …/backups {"type":"dump"}) on the asynchronous follower: its time and size,
#     and the leader's pgbench TPS (read-write, 4 clients) during it beside the same run's TPS
#     in the BENCH_BK_BASE_S (20) seconds before it. Goal: >= 90 % kept;
#   - a full pgBackRest backup from a follower (through the primary's TLS server);
#   - a point-in-time restore of that database into a new cluster: PUT → the restored leader
#     answers with the rows of the target and not those after it.
# The table goes to stdout; docs/backups.md and docs/benchmarks.md keep the numbers.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
SCALE=${BENCH_PG_SCALE:-50}
BASE_S=${BENCH_BK_BASE_S:-20}
# shellcheck source=../tests/lib.sh
source tests/lib.sh
# shellcheck source=summary.sh
source bench/summary.sh
# shellcheck source=../tests/pg_lib.sh
source tests/pg_lib.sh
export NA_LOG_LEVEL=info
command -v pgbench >/dev/null && command -v patroni >/dev/null && command -v pgbackrest >/dev/null ||
	{ echo "postgresql-15 (pgbench), patroni and pgbackrest are needed (scripts/deps.sh)"; exit 1; }
die() { echo "bench/backups.sh: $*"; exit 1; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; }

chmod 711 "$NA_TMP"
export NETAGENT_PGBACKREST_ROOT=$NA_TMP/pgbr
mkdir -p "$NETAGENT_PGBACKREST_ROOT"
NET=198.18.91
M=("$NET.11" "$NET.12" "$NET.13")
mkpki
pg_hosts_up 3 || die "hosts and agents"
pg_net bb 4191 "$NET.0/24" || die "network"
db_certs bk "${M[@]}" || die "certificates"
export PG_TLS_DIR=$PKI/db/bk
# hot_standby_feedback: a dump longer than max_standby_streaming_delay (30 s) on a follower is
# otherwise cancelled by replay conflicts while the leader vacuums (docs/backups.md).
export PG_EXTRA="{\"pitr\":{\"repo\":\"$NETAGENT_PGBACKREST_ROOT/bk\",\"retention_full\":2},\"backups\":{\"keep\":5,\"per_day\":20},\"parameters\":{\"hot_standby_feedback\":\"on\"}}"
big() { "$PY" -c 'import json,sys; b=json.load(sys.stdin); b["resources"]={"memory_mb":2048}; print(json.dumps(b))'; }
for i in 1 2 3; do
	pg_put "a$i" "bk-$i" "$(pg_body bk "bk-$i" "${M[$((i - 1))]}" bb "${M[@]}" | big)"
	[ "$HTTP_CODE" = 201 ] || die "PUT bk-$i: $(last_req)"
done
pg_wait_healthy bk 3 240 || die "no healthy cluster"
L=$(pg_leader bk 3)
# The dump goes to the asynchronous follower (a synchronous standby busy with it would slow every
# commit): the leader's pg_stat_replication names it once Patroni has chosen the synchronous one.
repl() { pg_sql "a$L" "bk-$L" "select application_name from pg_stat_replication where sync_state = '$1'"; }
wait_for 60 sh -c "[ -n \"\$('$NETAGENTCTL' --socket '$(agent_sock "a$L")' ct exec bk-$L -- psql -XAtq -h /var/run/postgresql -U postgres -c \"select 1 from pg_stat_replication where sync_state = 'sync'\")\" ]" ||
	die "no synchronous standby"
A=$(repl async) S=$(repl sync)
A=${A##*-} S=${S##*-}
[ -n "$A" ] && [ -n "$S" ] || die "cannot tell the followers apart (async '$A', sync '$S')"
LNS=$(api "a$L" GET "/v1/containers/bk-$L" && json_get netns "$HTTP_BODY")
DSN="host=${M[$((L - 1))]} user=postgres password=su-bk dbname=postgres sslmode=require"
lsql() { pg_sql "a$L" "bk-$L" "$1"; }
post() { api "$1" POST "/v1/containers/$2/backups" -H 'Content-Type: application/json' -d "{\"type\":\"$3\"}"; }
# backup AGENT CT TYPE: waits until it ended; sets BK_MS (POST → done) and BK_SIZE
backup() {
	local t0 id st
	t0=$(now_ms)
	post "$1" "$2" "$3"
	[ "$HTTP_CODE" = 202 ] || die "POST $3 on $2: $(last_req)"
	id=$(json_get id "$HTTP_BODY")
	while :; do
		api "$1" GET "/v1/containers/$2/backups/$id"
		st=$(json_get state "$HTTP_BODY")
		[ "$st" = running ] || break
		sleep 0.2
	done
	[ "$st" = done ] || die "$3 backup on $2: $HTTP_BODY"
	BK_MS=$(($(now_ms) - t0)) BK_SIZE=$(json_get size "$HTTP_BODY")
}

# The stanza first (until it exists, archiving fails and WAL piles up), then the data.
backup "a$L" "bk-$L" full
t0=$(now_ms)
nsenter --net="$LNS" pgbench -i -q -s "$SCALE" "$DSN" >"$NA_TMP/init.log" 2>&1 || die "pgbench -i: $(tail -3 "$NA_TMP/init.log")"
t_init=$(secs "$t0" "$(now_ms)")
DBMB=$(lsql "select pg_database_size('postgres') / 1048576")
SEG=$(lsql "select pg_walfile_name(pg_current_wal_lsn())")
lsql "select pg_switch_wal()" >/dev/null
wait_for 600 sh -c "[ \"\$('$NETAGENTCTL' --socket '$(agent_sock "a$L")' ct exec bk-$L -- psql -XAtq -h /var/run/postgresql -U postgres -c \"select last_archived_wal >= '$SEG' from pg_stat_archiver\")\" = t ]" ||
	die "the init's WAL was not archived"
backup "a$A" "bk-$A" full
t_full=$BK_MS full_size=$BK_SIZE

# The leader's TPS before, during and after a dump on the asynchronous follower, in one pgbench
# run (progress every second, with timestamps); the baseline is the mean of the windows around
# the dump. measure LABEL [CPU]: with CPU, pgbench runs on that CPU only (see pin below).
tps_avg() { # LOG FROM_MS TO_MS: mean of the per-second TPS reported in the window
	awk -v a="$2" -v b="$3" '$1 == "progress:" { t = $2 * 1000; if (t > a && t <= b) { s += $4; n++ } }
		END { if (n) printf "%.0f", s / n; else print 0 }' "$1"
}
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f", a / b * 100; else print 0 }'; }
measure() {
	local log=$NA_TMP/tps-$1.log pgb b0 b1 d1 a1 pre=()
	[ -n "${2:-}" ] && pre=(taskset -c "$2")
	nsenter --net="$LNS" "${pre[@]}" pgbench -n -c 4 -j 2 -T 900 -P 1 --progress-timestamp "$DSN" 2>"$log" >/dev/null &
	pgb=$!
	track_pid $pgb
	sleep 5 # connections and caches settle
	b0=$(now_ms)
	sleep "$BASE_S"
	b1=$(now_ms)
	backup "a$A" "bk-$A" dump
	d1=$(now_ms)
	sleep "$BASE_S"
	a1=$(now_ms)
	kill -TERM $pgb 2>/dev/null # a script's background jobs ignore SIGINT
	wait $pgb 2>/dev/null
	M_DUMP=$BK_MS M_SIZE=$BK_SIZE
	M_BEFORE=$(tps_avg "$log" "$b0" "$b1") M_AFTER=$(tps_avg "$log" "$d1" "$a1")
	M_BASE=$(((M_BEFORE + M_AFTER) / 2))
	M_DURING=$(tps_avg "$log" "$b1" "$d1")
	M_KEPT=$(pct "$M_DURING" "$M_BASE")
}
measure shared
t_dump=$M_DUMP dump_size=$M_SIZE tps_base=$M_BASE tps_dump=$M_DURING kept=$M_KEPT
tps_b=$M_BEFORE tps_a=$M_AFTER

# The same as on separate hosts, as far as one machine allows: the dumped follower (and its host's
# agent, whose child runs pg_dumpall) on CPU 1 and
# everything of the leader's side (its member, the synchronous standby, pgbench) on CPU 0, and
# the dump written to memory (a tmpfs over the follower's dump dir) instead of the disk the
# leader fsyncs its WAL to: on real hosts neither the follower's CPU nor its disk is the
# leader's. pin CT CPU: every process of the member's PID namespace (the postmaster's future
# backends inherit it).
pin() {
	local pid ns p
	api "a${1##*-}" GET "/v1/containers/$1"
	pid=$(json_get pid "$HTTP_BODY") || return 1
	ns=$(readlink "/proc/$pid/ns/pid") || return 1
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/ns/pid" 2>/dev/null)" = "$ns" ] && taskset -a -p -c "$2" "${p#/proc/}" >/dev/null 2>&1
	done
	return 0
}
pin "bk-$A" 1 && pin "bk-$L" 0 && pin "bk-$S" 0 || die "cannot pin the members"
# The follower's agent too: the dump's pg_dumpall is its child (runc exec), not the member's.
taskset -a -p -c 1 "$(agent_pid "a$A")" >/dev/null || die "cannot pin agent a$A"
mount -t tmpfs -o size=2g,mode=0700 "${NA_P}dumps" "$(agent_dir "a$A")/state/dumps/bk-$A" || die "tmpfs"
measure pinned 0
p_dump=$M_DUMP p_base=$M_BASE p_during=$M_DURING p_kept=$M_KEPT p_b=$M_BEFORE p_a=$M_AFTER
pin "bk-$A" 0-1 && pin "bk-$L" 0-1 && pin "bk-$S" 0-1
taskset -a -p -c 0-1 "$(agent_pid "a$A")" >/dev/null

# Point-in-time restore of the same database into a new cluster.
lsql "create table mark(t text)" >/dev/null
lsql "insert into mark values ('before')" >/dev/null
sleep 1.2
TARGET=$(date -u +%Y-%m-%dT%H:%M:%SZ)
sleep 1.5
lsql "insert into mark values ('after')" >/dev/null
SEG=$(lsql "select pg_walfile_name(pg_current_wal_lsn())")
lsql "select pg_switch_wal()" >/dev/null
wait_for 120 sh -c "[ \"\$('$NETAGENTCTL' --socket '$(agent_sock "a$L")' ct exec bk-$L -- psql -XAtq -h /var/run/postgresql -U postgres -c \"select last_archived_wal >= '$SEG' from pg_stat_archiver\")\" = t ]" ||
	die "the target's WAL was not archived"
RIP=$NET.21
rbody=$(PG_TLS_DIR='' PG_EXTRA="{\"restore\":{\"repo\":\"$NETAGENT_PGBACKREST_ROOT/bk\",\"stanza\":\"bk\",\"target_time\":\"$TARGET\"}}" \
	pg_body bkr bkr-1 "$RIP" bb "$RIP" | big)
t0=$(now_ms)
pg_put a1 bkr-1 "$rbody"
[ "$HTTP_CODE" = 201 ] || die "PUT the restore: $(last_req)"
restored() {
	[ "$(pg_view a1 bkr-1 role)" = leader ] && [ "$(pg_view a1 bkr-1 state)" = running ] &&
		[ "$(pg_sql a1 bkr-1 "select string_agg(t, ',') from mark")" = before ]
}
wait_for 900 restored || die "the restored cluster did not come up: $(pg_sql a1 bkr-1 'select 1')"
t_restore=$(secs "$t0" "$(now_ms)")
rows=$(pg_sql a1 bkr-1 "select count(*) from pgbench_accounts")
[ "$rows" = $((SCALE * 100000)) ] || die "restored pgbench_accounts has $rows rows, want $((SCALE * 100000))"

mb() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }
cat <<TXT

backups benchmark: pgbench scale $SCALE ($DBMB MB database), 3 members with TLS on 3 simulated hosts
| what | measured |
|---|---|
| pgbench -i -s $SCALE on the leader (for reference) | $t_init s |
| dump on the asynchronous follower bk-$A (POST → done) | $(secs 0 "$t_dump") s, $(mb "$dump_size") MB of SQL |
| leader pgbench TPS ${BASE_S} s before / during / ${BASE_S} s after the dump | $tps_b / $tps_dump / $tps_a ($kept % of the mean around it kept; goal >= 90 %) |
| as on separate hosts (follower and its agent on CPU 1, leader's side on CPU 0, dump file in memory): dump | $(secs 0 "$p_dump") s |
| leader pgbench TPS before / during / after that dump | $p_b / $p_during / $p_a ($p_kept % kept) |
| full pgBackRest backup from the follower bk-$A (POST → done) | $(secs 0 "$t_full") s, $(mb "$full_size") MB stored (lz4) |
| point-in-time restore into a new cluster (PUT → restored leader answers) | $t_restore s |
TXT

if declare -F bench_row >/dev/null; then
	bench_row backups "dump of pgbench scale $SCALE ($DBMB MB) on a follower" "$(secs 0 "$t_dump") s" "" "" ""
	bench_row backups "leader pgbench TPS during the dump" "$tps_dump tps" "around it $tps_base tps" "$kept %" ">= 90 %"
	bench_row backups "the same, follower's CPU and dump disk apart from the leader's" "$p_during tps" "around it $p_base tps" "$p_kept %" ">= 90 %"
	bench_row backups "point-in-time restore of the same database" "$t_restore s" "" "" ""
fi
