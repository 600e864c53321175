#!/usr/bin/env bash
# Overlay networks coordinated through etcd (SPEC §2, §3): three simulated hosts, one agent each,
# a real etcd on the fabric. Two networks share 198.18.1.0/24 with different VNIs. Checks:
# concurrent allocation never hands out one address twice, every endpoint reaches every other
# of its network and nothing of the other, a delete reaches the other hosts' FDB, an agent
# killed with -9 keeps the datapath and re-learns, and an etcd outage fails claims closed
# (503) while traffic keeps flowing, then converges once etcd is back.
. "$(dirname "$0")/../lib.sh"

if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
	bail "etcd/etcdctl not installed (make deps installs etcd-server etcd-client)"
fi
command -v bridge >/dev/null && command -v ping >/dev/null || bail "bridge/ping not found"

ETCD_IP=192.0.2.5
ETCD_URL=http://$ETCD_IP:2379
SUBNET=198.18.1.0/24
mkhost etcd $ETCD_IP
mkhost h1 192.0.2.11
mkhost h2 192.0.2.12
mkhost h3 192.0.2.13

ETCD_PID=
start_etcd() {
	# nsenter execs etcd: $! is etcd itself, so kill -9 below hits it.
	nsenter --net="/run/netns/$(hostns etcd)" etcd --name "${NA_P}e" --data-dir "$NA_TMP/etcd-data" \
		--listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL" \
		--listen-peer-urls "http://$ETCD_IP:2380" \
		--initial-advertise-peer-urls "http://$ETCD_IP:2380" \
		--initial-cluster "${NA_P}e=http://$ETCD_IP:2380" --initial-cluster-state new \
		>>"$NA_TMP/etcd.log" 2>&1 &
	ETCD_PID=$!
	track_pid "$ETCD_PID"
	wait_for 20 in_host etcd curl -fsS --max-time 1 "$ETCD_URL/health"
}
ectl() { in_host etcd etcdctl --endpoints "$ETCD_URL" "$@"; }

start_etcd || bail "etcd did not start: $(tail -n 5 "$NA_TMP/etcd.log")"
for i in 1 2 3; do
	start_agent h$i a$i --etcd "$ETCD_URL" || bail "agent a$i did not start"
done

J='Content-Type: application/json'
# Network namespaces of the agent for a network, and of the test's "containers".
agent_ns() { echo "$(agent_dir "$1")/run/netns/$(agent_name "$1")-$2"; }
cns() { echo "${NA_P}$1"; }
in_c() {
	local c=$1
	shift
	nsenter --net="/run/netns/$(cns "$c")" "$@"
}
fdb_has() { nsenter --net="$(agent_ns "$1" "$2")" bridge fdb show dev vxlan0 | grep -qi "$3"; }
neigh_has() { nsenter --net="$(agent_ns "$1" "$2")" ip neigh show dev vxlan0 | grep -q "^$3 "; }
gone_everywhere() { # NET MAC IP HOST… : no FDB or neighbour entry left on those hosts
	local net=$1 mac=$2 ip=$3 a
	shift 3
	for a in "$@"; do
		fdb_has "$a" "$net" "$mac" && return 1
		neigh_has "$a" "$net" "$ip" && return 1
	done
	return 0
}
count_eps() { # AGENT NET [SOURCE]: number of endpoints listed (of that source)
	api "$1" GET "/v1/networks/$2/endpoints"
	json_get items "$HTTP_BODY" | $PY -c 'import json,sys; s=sys.argv[1]; print(sum(1 for e in json.load(sys.stdin) if not s or e.get("source")==s))' "${3:-}"
}
has_count() { [ "$(count_eps "$1" "$2" "${4:-}")" = "$3" ]; }
ip_of() { # JSON body → address without prefix
	json_get ip "$1" | cut -d/ -f1
}

# ---- networks: same subnet, different VNIs, on every host
for i in 1 2 3; do
	for nv in neta:4101 netb:4102; do
		api a$i PUT "/v1/networks/${nv%%:*}" -H "$J" --data-binary "{\"vni\":${nv##*:},\"subnet\":\"$SUBNET\"}"
		[ "$HTTP_CODE" = 201 ] || bail "PUT network ${nv%%:*} on a$i: $(last_req)"
	done
done
ok "networks neta (vni 4101) and netb (vni 4102), both $SUBNET, on 3 hosts"

# ---- endpoints: neta allocated (6 PUTs at the same time from 3 hosts), netb given
for i in 1 2 3; do
	for c in a1 a2 b; do ip netns add "$(cns "$i$c")" && ip -n "$(cns "$i$c")" link set lo up; done
done
put_bg() { # AGENT NET EP BODY OUT
	curl -sS --max-time 20 --unix-socket "$(agent_sock "$1")" -X PUT -H "$J" \
		--data-binary "$4" -o "$5.body" -w '%{http_code}' \
		"http://localhost/v1/networks/$2/endpoints/$3" >"$5.code" 2>&1 &
}
pids=()
for i in 1 2 3; do
	for k in 1 2; do
		put_bg a$i neta e$i$k "{\"netns\":\"/run/netns/$(cns "${i}a$k")\"}" "$NA_TMP/put-e$i$k"
		pids+=($!)
	done
done
wait "${pids[@]}"
declare -A IP MAC
bad=''
for i in 1 2 3; do
	for k in 1 2; do
		code=$(cat "$NA_TMP/put-e$i$k.code") body=$(cat "$NA_TMP/put-e$i$k.body")
		[ "$code" = 201 ] || bad="$bad e$i$k:$code:$body"
		IP[e$i$k]=$(ip_of "$body")
		MAC[e$i$k]=$(json_get mac "$body")
	done
done
[ -z "$bad" ] && ok "6 concurrent PUTs without ip on 3 hosts → 201" || not_ok "6 concurrent PUTs without ip on 3 hosts → 201" "$bad"
dups=$(printf '%s\n' "${IP[@]}" | sort | uniq -d)
is "allocated addresses are unique across hosts (${IP[*]})" "$(printf '%s\n' "${IP[@]}" | sort -u | grep -c .)/$dups" "6/"
for i in 1 2 3; do
	api a$i PUT /v1/networks/netb/endpoints/b$i -H "$J" \
		--data-binary "{\"netns\":\"/run/netns/$(cns "${i}b")\",\"ip\":\"198.18.1.10$i/24\"}"
	[ "$HTTP_CODE" = 201 ] || not_ok "PUT netb/b$i with ip 198.18.1.10$i → 201" "$(last_req)"
	IP[b$i]=198.18.1.10$i
	MAC[b$i]=$(json_get mac "$HTTP_BODY")
done
ok "netb endpoints with given addresses 198.18.1.101-103"
# Somebody else's address, given explicitly: the claim loses → 409 naming the owner.
ip netns add "$(cns 2x)"
api a2 PUT /v1/networks/netb/endpoints/bx -H "$J" \
	--data-binary "{\"netns\":\"/run/netns/$(cns 2x)\",\"ip\":\"198.18.1.101/24\"}"
like "given address held by host 1 → 409 ip_in_use naming b1" "$HTTP_CODE $(json_get error.code "$HTTP_BODY") $(json_get error.message "$HTTP_BODY")" "^409 ip_in_use .*b1"
api a2 GET /v1/networks/netb/endpoints/bx
is "the refused endpoint does not exist" "$HTTP_CODE" 404

# ---- learning
t0=$(now_ms)
learned=1
for i in 1 2 3; do
	wait_for 10 has_count a$i neta 6 || learned=0
	wait_for 10 has_count a$i netb 3 || learned=0
done
if [ $learned = 1 ]; then
	ok "every host lists 6 neta and 3 netb endpoints ($(($(now_ms) - t0)) ms after the last PUT)"
else
	not_ok "every host lists 6 neta and 3 netb endpoints" "$(for i in 1 2 3; do echo "a$i: $(count_eps a$i neta) $(count_eps a$i netb)"; done)"
fi
# Learned entries are named <endpoint>.<host>: unique across hosts, not an API name.
api a2 GET /v1/networks/neta/endpoints
e=$(json_get items "$HTTP_BODY" | $PY -c 'import json,sys; print(json.dumps([e for e in json.load(sys.stdin) if e["name"]==sys.argv[1]][0]))' "e11.$(agent_name a1)" 2>/dev/null)
like "h2 lists e11.<a1> with source etcd, host and vtep" "$(json_get source "$e") $(json_get host "$e") $(json_get vtep "$e") $(json_get ip "$e")" "^etcd $(agent_name a1) 192.0.2.11 ${IP[e11]}/24$"
check "h2's neta FDB: e11's MAC → 192.0.2.11 (permanent)" \
	bash -c "nsenter --net='$(agent_ns a2 neta)' bridge fdb show dev vxlan0 | grep -i '${MAC[e11]}' | grep -q 'dst 192.0.2.11'"

# ---- reachability and isolation
ping1() { in_c "$1" ping -c1 -W2 -q "$2" >/dev/null 2>&1; }
mesh() { # CONTAINER:EP…: every pair pings; prints failures
	local a b fail=''
	for a in "$@"; do
		for b in "$@"; do
			[ "$a" = "$b" ] && continue
			ping1 "${a%%:*}" "${IP[${b##*:}]}" || fail="$fail ${a##*:}->${b##*:}"
		done
	done
	echo "$fail"
}
A_ALL="1a1:e11 1a2:e12 2a1:e21 2a2:e22 3a1:e31 3a2:e32"
f=$(mesh $A_ALL)
[ -z "$f" ] && ok "neta: every endpoint pings every other across hosts (30 pairs)" || not_ok "neta: every endpoint pings every other" "failed:$f"
f=$(mesh 1b:b1 2b:b2 3b:b3)
[ -z "$f" ] && ok "netb: every endpoint pings every other across hosts (6 pairs)" || not_ok "netb: every endpoint pings every other" "failed:$f"
# (A retried claim picks a random address: one of neta's may equal one of netb's, which is
# fine in separate networks; only addresses absent from the source network are probed.)
A_IPS=" ${IP[e11]} ${IP[e12]} ${IP[e21]} ${IP[e22]} ${IP[e31]} ${IP[e32]} "
B_IPS=" ${IP[b1]} ${IP[b2]} ${IP[b3]} "
leak='' probed=0
for c in 1a1 2a2 3a1; do
	for b in b1 b2 b3; do
		[[ $A_IPS == *" ${IP[$b]} "* ]] && continue
		probed=$((probed + 1))
		in_c $c ping -c1 -W1 -q "${IP[$b]}" >/dev/null 2>&1 && leak="$leak $c->$b"
	done
done
for c in 1b 2b; do
	for e in e11 e21 e32; do
		[[ $B_IPS == *" ${IP[$e]} "* ]] && continue
		probed=$((probed + 1))
		in_c $c ping -c1 -W1 -q "${IP[$e]}" >/dev/null 2>&1 && leak="$leak $c->$e"
	done
done
[ -z "$leak" ] && ok "neta and netb cannot reach each other's endpoints ($probed probes)" || not_ok "networks isolated" "reached:$leak"
leak=''
for b in b1 b2 b3; do
	[[ $A_IPS == *" ${IP[$b]} "* ]] && continue # same address, same derived MAC
	fdb_has a2 neta "${MAC[$b]}" && leak="$leak $b"
done
is "no netb MAC in neta's FDB on h2" "$leak" ""

# ---- delete on host 1 → gone from hosts 2 and 3
api a1 DELETE /v1/networks/neta/endpoints/e11
is "DELETE e11 on h1 → 204" "$HTTP_CODE" 204
t0=$(now_ms)
if wait_for 5 gone_everywhere neta "${MAC[e11]}" "${IP[e11]}" a2 a3; then
	ok "e11's FDB and neighbour entries gone on h2 and h3 within 5 s ($(($(now_ms) - t0)) ms)"
else
	not_ok "e11's entries gone on h2 and h3 within 5 s" "$(nsenter --net="$(agent_ns a2 neta)" bridge fdb show dev vxlan0)"
fi
wait_for 5 has_count a3 neta 5
is "h3 lists 5 neta endpoints after the delete" "$(count_eps a3 neta)" 5

# ---- kill -9 an agent: the datapath stays, it re-learns
in_c 1a2 ping -i 0.2 -c 40 -W1 -q "${IP[e21]}" >"$NA_TMP/ping-restart" 2>&1 &
PING=$!
track_pid $PING
sleep 1
kill_agent a2 -9
sleep 1
start_agent h2 a2 --etcd "$ETCD_URL" || bail "agent a2 did not restart"
wait $PING
recv=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' "$NA_TMP/ping-restart")
if [ "${recv:-0}" -ge 39 ]; then
	ok "traffic h1→h2 kept flowing across kill -9 and restart of a2 ($recv/40 replies)"
else
	not_ok "traffic h1→h2 kept flowing across kill -9 and restart of a2" "$(cat "$NA_TMP/ping-restart")"
fi
check "restarted a2 lists 5 neta endpoints (2 local, 3 learned)" wait_for 5 has_count a2 neta 3 etcd
api a1 PUT /v1/networks/neta/endpoints/e13 -H "$J" --data-binary "{\"netns\":\"/run/netns/$(cns 1a1)\"}"
is "PUT e13 (allocated) on h1 → 201" "$HTTP_CODE" 201
IP[e13]=$(ip_of "$HTTP_BODY")
MAC[e13]=$(json_get mac "$HTTP_BODY")
t0=$(now_ms)
if wait_for 5 fdb_has a2 neta "${MAC[e13]}" && wait_for 5 ping1 2a1 "${IP[e13]}"; then
	ok "restarted a2 learns the new e13 and reaches it ($(($(now_ms) - t0)) ms)"
else
	not_ok "restarted a2 learns e13" "$(count_eps a2 neta etcd)"
fi

# ---- etcd outage: claims fail closed, traffic flows, convergence afterwards
{
	kill -9 "$ETCD_PID"
	wait "$ETCD_PID"
} 2>/dev/null
api a1 DELETE /v1/networks/neta/endpoints/e12
is "etcd down: DELETE e12 on h1 still → 204" "$HTTP_CODE" 204
api a1 PUT /v1/networks/neta/endpoints/e14 -H "$J" --data-binary "{\"netns\":\"/run/netns/$(cns 1a2)\"}"
is "etcd down: PUT without ip → 503 etcd_unavailable (fail closed)" "$HTTP_CODE $(json_get error.code "$HTTP_BODY")" "503 etcd_unavailable"
api a1 PUT /v1/networks/netb/endpoints/bz -H "$J" --data-binary "{\"netns\":\"/run/netns/$(cns 1a2)\",\"ip\":\"198.18.1.120/24\"}"
is "etcd down: PUT with ip → 503" "$HTTP_CODE" 503
api a1 GET /v1/networks/neta/endpoints/e14
is "etcd down: the refused endpoint does not exist" "$HTTP_CODE" 404
f=$(mesh 2a1:e21 3a2:e32 1a1:e13)
[ -z "$f" ] && ok "etcd down: existing neta traffic keeps flowing" || not_ok "etcd down: existing traffic keeps flowing" "failed:$f"
f=$(mesh 1b:b1 3b:b3)
is "etcd down: existing netb traffic keeps flowing" "$f" ""
etcd_reach() { api "$1" GET /v1/host; json_get etcd.reachable "$HTTP_BODY"; }
etcd_is() { [ "$(etcd_reach "$1")" = "$2" ]; }
check "etcd down: GET /v1/host says etcd unreachable" wait_for 5 etcd_is a1 false

t0=$(now_ms)
start_etcd || bail "etcd did not restart"
te=$(now_ms)
if wait_for 10 gone_everywhere neta "${MAC[e12]}" "${IP[e12]}" a2 a3; then
	ok "etcd back: e12 (deleted during the outage) gone on h2 and h3 ($(($(now_ms) - te)) ms after etcd was healthy, $(($(now_ms) - t0)) ms after its start)"
else
	not_ok "etcd back: e12 gone on h2 and h3 within 10 s" "$(ectl get --prefix /netagent/v1/endpoints/neta --keys-only)"
fi
wait_for 10 bash -c "curl -sS --unix-socket '$(agent_sock a1)' -X PUT -H '$J' --data-binary '{\"netns\":\"/run/netns/$(cns 1a2)\"}' -o /dev/null -w '%{http_code}' http://localhost/v1/networks/neta/endpoints/e14 | grep -q 201"
api a1 GET /v1/networks/neta/endpoints/e14
is "etcd back: PUT e14 on h1 succeeds" "$HTTP_CODE" 200
IP[e14]=$(ip_of "$HTTP_BODY")
check "etcd back: e14 reachable from h3" wait_for 5 ping1 3a1 "${IP[e14]}"
check "etcd back: GET /v1/host says etcd reachable" wait_for 5 etcd_is a1 true

# Compaction: history before the current revision is gone; the watches go on and a
# later change still reaches everyone.
rev=$(ectl endpoint status -w json | $PY -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["header"]["revision"])')
check "etcdctl compact $rev" ectl compact "$rev"
api a3 DELETE /v1/networks/neta/endpoints/e32
t0=$(now_ms)
if wait_for 5 gone_everywhere neta "${MAC[e32]}" "${IP[e32]}" a1 a2; then
	ok "after compaction: e32 deleted on h3 gone on h1 and h2 ($(($(now_ms) - t0)) ms)"
else
	not_ok "after compaction: e32 gone on h1 and h2"
fi
# A key of ours removed behind the agent's back comes back.
k=/netagent/v1/endpoints/neta/$(agent_name a2)/e21
ectl del "$k" >/dev/null
t0=$(now_ms)
if wait_for 10 bash -c "[ -n \"\$(nsenter --net=/run/netns/$(hostns etcd) etcdctl --endpoints $ETCD_URL get $k --print-value-only)\" ]"; then
	ok "a2's endpoint key deleted behind its back is re-published ($(($(now_ms) - t0)) ms)"
else
	not_ok "a2's endpoint key deleted behind its back is re-published"
fi
check "h1 still reaches e21 afterwards" wait_for 5 ping1 1a1 "${IP[e21]}"
keys=$(ectl get --prefix /netagent/v1/ --keys-only | grep -c .)
# neta: e13 e14 e21 e22 e31; netb: b1 b2 b3 → 8 endpoint keys + 8 claims
is "etcd holds exactly the live endpoints and their claims" "$keys" 16

finish
