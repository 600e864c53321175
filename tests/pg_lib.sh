# shellcheck shell=bash
# A Patroni/PostgreSQL 15 cluster through the postgres role, for tests. Source after
# tests/lib.sh (and, for TLS, tests/cluster_lib.sh's db_certs or pg_tls_certs below).
#
#   pg_hosts_up N [ETCD]        mkhost h1..hN (after etcd1 on the fabric), one etcd (start_etcd_cluster 1)
#                               unless ETCD=0, an agent aI on each with --etcd
#   pg_net NET VNI SUBNET       the overlay network on every agent of pg_hosts_up
#   pg_body CLUSTER NODE IP NET MEMBER_IP… → a postgres body on stdout; env knobs:
#                               PG_TLS_DIR (dir with ca.pem, IP.pem, IP.key: TLS on),
#                               PG_EXTRA (JSON merged into the postgres section)
#   pg_cluster_up CLUSTER NET MEMBER_IP…  PUTs container "CLUSTER-I" with node
#                               "CLUSTER-I" on agent aI for every member (I = 1…)
#                               (then pg_wait_healthy CLUSTER N SECS: one leader, N-1 streaming)
#   pg_sql AGENT CT SQL         psql -Atc SQL as postgres on the member's socket (ct exec)
#   pg_view AGENT CT FIELD      a field of GET's "patroni" view (role, state, timeline, lag…)
#   pg_leader CLUSTER N         the index I whose member calls itself leader, else nothing
#   pg_wait_healthy CLUSTER N SECS
#   pg_wait_sync CLUSTER N SECS   healthy and a member named synchronous standby (before a drill)
#   db_certs CLUSTER IP…        a CA and one certificate per member IP under $PKI/db/CLUSTER
#                               (the layout PG_TLS_DIR wants; needs PKI set, e.g. by mkpki)
# A client committing in a loop (for drills), table TABLE (id bigint primary key) made by the caller:
#   pg_writer_start LOG DSN TABLE CMD-PREFIX…   e.g. nsenter --net=NS, or in_host cl; sets PG_WRITER
#                               LOG lines: "ok ID MS SERVER_IP" per acknowledged commit, "fail MS"
#   pg_writer_stop | pg_acked LOG (acknowledged ids, sorted as text) | pg_gap LOG SINCE_MS
#   (longest time without an acknowledged commit since SINCE_MS) | pg_fails LOG SINCE_MS
#   (failed attempts since) | pg_lost LOG HAVE_FILE (acknowledged ids missing from HAVE_FILE)
PG_AGENTS=()
db_certs() { # CLUSTER IP…
	local cl=$1 d ip
	shift
	d=$PKI/db/$cl
	mkdir -p "$d"
	openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -days 30 \
		-subj "/CN=$cl-ca" -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null || return 1
	for ip in "$@"; do
		openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -subj "/CN=$ip" \
			-keyout "$d/$ip.key" -out "$d/$ip.csr" 2>/dev/null || return 1
		printf 'subjectAltName=IP:%s,DNS:%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$ip" "$ip" >"$d/$ip.ext"
		openssl x509 -req -in "$d/$ip.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
			-days 30 -extfile "$d/$ip.ext" -out "$d/$ip.pem" 2>/dev/null || return 1
	done
}


pg_hosts_up() {
	local n=$1 etcd=${2:-1} i args=()
	if [ "$etcd" = 1 ]; then
		start_etcd_cluster 1 >/dev/null || return 1
		args=(--etcd "$ETCD_URLS")
	fi
	for ((i = 1; i <= n; i++)); do
		mkhost "h$i"
		start_agent "h$i" "a$i" "${args[@]}" || return 1
		PG_AGENTS+=("a$i")
	done
}

pg_net() { # NET VNI SUBNET
	local a
	for a in "${PG_AGENTS[@]}"; do
		api "$a" PUT "/v1/networks/$1" -H 'Content-Type: application/json' \
			--data-binary "{\"vni\":$2,\"subnet\":\"$3\"}"
		case $HTTP_CODE in 200 | 201) ;; *) diag "network $1 on $a: $(last_req)"; return 1 ;; esac
	done
}

pg_body() { # CLUSTER NODE IP NET MEMBER_IP…
	local cl=$1 node=$2 ip=$3 net=$4
	shift 4
	"$PY" - "$cl" "$node" "$ip" "$net" "${PG_TLS_DIR:-}" "${PG_EXTRA:-}" "$@" <<'EOF'
import json, sys
cl, node, ip, net, d, extra = sys.argv[1:7]
pg = {"cluster": cl, "node": node, "members": sys.argv[7:],
      "superuser_password": "su-" + cl, "replication_password": "repl-" + cl}
if d:
    rd = lambda p: open(p).read()
    pg["tls"] = {"cert": rd("%s/%s.pem" % (d, ip)), "key": rd("%s/%s.key" % (d, ip)), "ca": rd(d + "/ca.pem")}
if extra:
    pg.update(json.loads(extra))
print(json.dumps({"role": "postgres", "networks": [{"network": net, "ip": ip + "/24"}],
                  "resources": {"memory_mb": 512}, "postgres": pg}))
EOF
}

pg_put() { # AGENT CT BODY
	api "$1" PUT "/v1/containers/$2" -H 'Content-Type: application/json' --data-binary "$3"
}

pg_cluster_up() { # CLUSTER NET MEMBER_IP…
	local cl=$1 net=$2 i=0 ip
	shift 2
	for ip in "$@"; do
		i=$((i + 1))
		pg_put "a$i" "$cl-$i" "$(pg_body "$cl" "$cl-$i" "$ip" "$net" "$@")"
		case $HTTP_CODE in 200 | 201) ;; *) diag "PUT $cl-$i on a$i: $(last_req)"; return 1 ;; esac
	done
}

pg_sql() { # AGENT CT SQL
	"$NETAGENTCTL" --socket "$(agent_sock "$1")" ct exec "$2" -- \
		psql -X -q -A -t -h /var/run/postgresql -U postgres -d postgres -c "$3" 2>&1
}

pg_view() { # AGENT CT FIELD
	api "$1" GET "/v1/containers/$2"
	json_get "patroni.$3" "$HTTP_BODY"
}

pg_leader() { # CLUSTER N
	local i
	for ((i = 1; i <= $2; i++)); do
		[ "$(pg_sql "a$i" "$1-$i" "select pg_is_in_recovery()")" = f ] && { echo "$i"; return 0; }
	done
	return 1
}

# One member not in recovery and every other streaming from it (pg_stat_replication on the leader).
_pg_healthy() { # CLUSTER N
	local l
	l=$(pg_leader "$1" "$2") || return 1
	[ "$(pg_sql "a$l" "$1-$l" "select count(*) from pg_stat_replication where state = 'streaming'")" = $(($2 - 1)) ]
}
pg_wait_healthy() { wait_for "$3" _pg_healthy "$1" "$2"; }

# Healthy, and Patroni has named a synchronous standby (its view shows one): a drill on a cluster
# whose /sync key is still being rewritten after a failover can leave no member allowed to promote.
_pg_sync() { # CLUSTER N
	local i
	_pg_healthy "$1" "$2" || return 1
	for ((i = 1; i <= $2; i++)); do
		[ "$(pg_view "a$i" "$1-$i" role)" = sync_standby ] && return 0
	done
	return 1
}
pg_wait_sync() { wait_for "$3" _pg_sync "$1" "$2"; }

# Each commit has 3 s (SIGALRM; psycopg2's select-based wait makes libpq interruptible): a
# commit waiting on a synchronous standby that is gone counts as failed, not as a hang. Its
# pid goes to LOG.pid: the prefix (a shell function, nsenter) may not exec it.
PG_WRITER_PY='import os, psycopg2, psycopg2.extensions, psycopg2.extras, signal, sys, time
dsn, out, table = sys.argv[1], sys.argv[2], sys.argv[3]
open(out + ".pid", "w").write("%d\n" % os.getpid())
psycopg2.extensions.set_wait_callback(psycopg2.extras.wait_select)
class Late(Exception):
    pass
def late(*a):
    raise Late()
signal.signal(signal.SIGALRM, late)
f = open(out, "a", buffering=1)
# Ids unique across writers on one table (bigint): this start in ms, then a counter.
i, conn = int(time.time() * 1000) * 1000, None
while True:
    i += 1
    try:
        signal.alarm(3)
        if conn is None:
            conn = psycopg2.connect(dsn, connect_timeout=2)
            conn.autocommit = True
        cur = conn.cursor()
        cur.execute("insert into " + table + " (id) values (%s) returning inet_server_addr()", (i,))
        row = cur.fetchone()
        signal.alarm(0)
        f.write("ok %d %d %s\n" % (i, time.time() * 1000, row[0]))
        time.sleep(0.02)
    except BaseException as e:
        signal.alarm(0)
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        f.write("fail %d %s\n" % (time.time() * 1000, str(e).replace("\n", " ")[:120]))
        try:
            conn.close()
        except Exception:
            pass
        conn = None
        time.sleep(0.05)'
pg_writer_start() { # LOG DSN TABLE CMD-PREFIX…
	local log=$1 dsn=$2 table=$3
	shift 3
	: >"$log"
	rm -f "$log.pid"
	"$@" "$PY" -c "$PG_WRITER_PY" "$dsn" "$log" "$table" &
	track_pid $!
	wait_for 10 test -s "$log.pid" || { echo "pg_writer_start: the writer did not start"; return 1; }
	PG_WRITER=$(cat "$log.pid")
	track_pid "$PG_WRITER"
	wait_for 15 grep -q '^ok ' "$log" || { echo "pg_writer_start: no commit in 15 s: $(tail -c 300 "$log")"; return 1; }
}
pg_writer_stop() {
	kill "$PG_WRITER" 2>/dev/null
	local i
	for i in $(seq 50); do kill -0 "$PG_WRITER" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$PG_WRITER" 2>/dev/null
	return 0
}
pg_acked() { awk '$1 == "ok" { print $2 }' "$1" | sort; }
pg_gap() { awk -v s="$2" 'BEGIN { p = s } $1 == "ok" && $3 >= s { if ($3 - p > g) g = $3 - p; p = $3 } END { print g + 0 }' "$1"; }
pg_fails() { awk -v s="$2" '$1 == "fail" && $2 >= s' "$1" | wc -l; }
pg_lost() { pg_acked "$1" | comm -23 - <(sort "$2") | wc -l; }
