#!/usr/bin/env bash
# Regressions of the overlay's review (Core v2): what reconcile must repair, what it must never
# do, and how state is kept. Each check fails on the code before its fix:
#  - a target namespace is pinned by identity: a namespace mounted later on the same path is
#    never wired into the network;
#  - a host-side veth no acknowledged endpoint owns is removed;
#  - the bridge's static FDB entry of a remote is diffed and repaired like vxlan0's own;
#  - one file per remote endpoint: a single PUT writes one file, and the old one-file layout is
#    migrated at start.
. "$(dirname "$0")/../lib.sh"

mkhost h1
start_agent h1 a1 || bail "agent did not start"
J=(-H 'Content-Type: application/json')
NET_NS=$(agent_dir a1)/run/netns/$(agent_name a1)-n1
innet() { nsenter --net="$NET_NS" "$@"; }

api a1 PUT /v1/networks/n1 "${J[@]}" -d '{"vni":501,"subnet":"198.18.5.0/24"}'
[ "$HTTP_CODE" = 201 ] || bail "PUT n1: $(last_req)"
# The target lives on a file of our own, so that another namespace can be mounted on it.
T=$NA_TMP/target
: >"$T"
ip netns add "${NA_P}t1" && mount --bind "/run/netns/${NA_P}t1" "$T" || bail "target namespace"
api a1 PUT /v1/networks/n1/endpoints/l1 "${J[@]}" -d "{\"netns\":\"$T\",\"ip\":\"198.18.5.11/24\"}"
[ "$HTTP_CODE" = 201 ] || bail "PUT l1: $(last_req)"
api a1 PUT /v1/networks/n1/remote-endpoints/r1 "${J[@]}" -d '{"ip":"198.18.5.21/24","mac":"02:84:c6:12:05:15","vtep":"192.0.2.21"}'
[ "$HTTP_CODE" = 201 ] || bail "PUT r1: $(last_req)"
api a1 PUT /v1/networks/n1/remote-endpoints/r2 "${J[@]}" -d '{"ip":"198.18.5.22/24","mac":"02:84:c6:12:05:16","vtep":"192.0.2.22"}'
[ "$HTTP_CODE" = 201 ] || bail "PUT r2: $(last_req)"
ok "setup: network n1, local l1 in a pinned target, remotes r1 r2"

# ---- bridge static FDB entry
brentry() { innet bridge fdb show dev vxlan0 | grep "^02:84:c6:12:05:15 master br0 static" >/dev/null; }
check "r1 has its bridge static entry on the vxlan0 port" brentry
t0=$(now_ms)
# (the repair is event-driven: it may be back before a check could see it gone)
check "deleted by hand" innet bridge fdb del 02:84:c6:12:05:15 dev vxlan0 master
if wait_for 5 brentry; then ok "the bridge entry is back after $(($(now_ms) - t0)) ms"; else not_ok "bridge entry repaired within 5 s"; fi
api a1 GET /v1/networks/n1/inspect
is "in sync afterwards" "$(json_get in_sync "$HTTP_BODY")" true

# ---- unowned veth
# What an attach whose endpoint never got acknowledged leaves: our name scheme, our group, a
# port of br0, its peer somewhere.
l1veth=$(innet ip -o link show master br0 | awk -F': ' '{sub(/@.*/, "", $2); print $2}' | grep '^ve-')
t0=$(now_ms)
check "a stray veth is put on br0 next to l1's ($l1veth)" \
	innet ip link add ve-0123456789ab group 30328 master br0 up type veth peer name stray0
if wait_for 5 bash -c "! nsenter --net='$NET_NS' ip link show ve-0123456789ab >/dev/null 2>&1"; then
	ok "the veth nobody owns is removed after $(($(now_ms) - t0)) ms"
else
	not_ok "stray veth removed within 5 s"
fi
check "l1's own veth stays" innet ip link show "$l1veth"
check "l1 still has its address" bash -c "ip -n ${NA_P}t1 -4 addr show eth0 | grep -q 198.18.5.11/24"

# ---- pinned namespace
# Another namespace mounted on the same path (a container recreated under the same name, or
# someone pointing the path at the host): reconcile must not attach there.
ip netns add "${NA_P}t2" || bail "second namespace"
umount "$T" && mount --bind "/run/netns/${NA_P}t2" "$T" || bail "remount target"
ip -n "${NA_P}t1" link del eth0 # drift: l1 needs repair now
sleep 5
check "nothing was attached into the namespace now at the path" \
	bash -c "! ip -n ${NA_P}t2 link show eth0 >/dev/null 2>&1"
api a1 GET /v1/networks/n1
like "the network reports why it cannot repair l1" "$(json_get error "$HTTP_BODY")" "no longer the namespace"
# The controller re-PUTs the endpoint with the same path: validated again, it moves.
api a1 PUT /v1/networks/n1/endpoints/l1 "${J[@]}" -d "{\"netns\":\"$T\",\"ip\":\"198.18.5.11/24\"}"
is "re-PUT of l1 on the new namespace → 200" "$HTTP_CODE" 200
check "l1 is now in the new namespace" bash -c "ip -n ${NA_P}t2 -4 addr show eth0 | grep -q 198.18.5.11/24"
umount "$T"

# ---- one state file per remote endpoint
SD=$(agent_dir a1)/state
check "r1 and r2 have a file each" test -f "$SD/remotes/n1/r1.json" -a -f "$SD/remotes/n1/r2.json"
m1=$(stat -c %Y.%N "$SD/remotes/n1/r1.json" 2>/dev/null || stat -c %y "$SD/remotes/n1/r1.json")
i1=$(stat -c %i "$SD/remotes/n1/r1.json")
sleep 1.1
api a1 PUT /v1/networks/n1/remote-endpoints/r3 "${J[@]}" -d '{"ip":"198.18.5.23/24","mac":"02:84:c6:12:05:17","vtep":"192.0.2.23"}'
is "PUT r3 → 201" "$HTTP_CODE" 201
is "PUT r3 did not rewrite r1's file (same inode)" "$(stat -c %i "$SD/remotes/n1/r1.json")" "$i1"
check "r3 has its own file" test -f "$SD/remotes/n1/r3.json"

# The layout before per-endpoint files: one remotes/<net>.json. An upgraded agent moves it.
stop_agent a1 || not_ok "agent stops on SIGTERM"
rm -f "$SD"/remotes/n1/r*.json
cat >"$SD/remotes/n1.json" <<'EOF'
{"items":{"r1":{"ip":"198.18.5.21/24","mac":"02:84:c6:12:05:15","vtep":"192.0.2.21"},"r9":{"ip":"198.18.5.29/24","mac":"02:84:c6:12:05:1d","vtep":"192.0.2.29"}}}
EOF
start_agent h1 a1 || bail "agent did not restart"
api a1 GET /v1/networks/n1/remote-endpoints
names=$(echo "$HTTP_BODY" | $PY -c 'import json,sys; print(" ".join(sorted(e["name"] for e in json.load(sys.stdin)["items"] if e["source"] == "controller")))')
is "the old file's remotes are loaded" "$names" "r1 r9"
check "and moved to one file each" test -f "$SD/remotes/n1/r1.json" -a -f "$SD/remotes/n1/r9.json"
check "the old file is gone" test ! -e "$SD/remotes/n1.json"
check "r9 is programmed" wait_for 5 bash -c "nsenter --net='$NET_NS' ip neigh show dev vxlan0 | grep -q '198.18.5.29 lladdr 02:84:c6:12:05:1d PERMANENT'"
check "r2 and r3 (removed from disk) are not programmed any more" \
	wait_for 5 bash -c "! nsenter --net='$NET_NS' ip neigh show dev vxlan0 | grep -qE '198.18.5.2[23] '"

# ---- start with etcd away
# The agent used to block its loop for up to 3 s at start waiting for etcd's first answer.
mkhost h2
t0=$(now_ms)
start_agent h2 a2 --etcd http://192.0.2.250:2379 || bail "agent with an unreachable etcd did not start"
is "with etcd unreachable, the agent answers within 1.5 s of its start" "$(( $(now_ms) - t0 < 1500 ))" 1
api a2 PUT /v1/networks/n2 "${J[@]}" -d '{"vni":502,"subnet":"198.18.6.0/24"}'
is "a network needs no etcd → 201" "$HTTP_CODE" 201
ip netns add "${NA_P}t3" || bail "t3"
t0=$(now_ms)
api a2 PUT /v1/networks/n2/endpoints/x "${J[@]}" -d "{\"netns\":\"/run/netns/${NA_P}t3\"}"
t1=$(now_ms)
is "an endpoint needs its claim → 503 etcd_unavailable" "$HTTP_CODE $(json_get error.code "$HTTP_BODY")" "503 etcd_unavailable"
is "… after the claim's 5 s deadline, not before ($((t1 - t0)) ms)" "$(( t1 - t0 >= 4500 && t1 - t0 < 8000 ))" 1
api a2 GET /v1/health
is "health answered meanwhile" "$HTTP_CODE" 200
api a2 GET /v1/host
is "GET /v1/host: etcd not reachable for user vxlan" "$(json_get etcd.users.vxlan.reachable "$HTTP_BODY")" false

finish
