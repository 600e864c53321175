#!/usr/bin/env bash
# Bad input for every field of the overlay routes (SPEC §4): each request gets the documented
# status, error code and `field`, and changes nothing — the API lists, the state files, the
# links of the host, of the network namespace and of the target namespace, the FDB and the
# neighbours are compared before and after all of them. Boundary values are accepted at the end.
. "$(dirname "$0")/../lib.sh"

command -v bridge >/dev/null || bail "bridge not found"
mkhost h1
start_agent h1 a1 || bail "agent did not start"
HOST_ADDR=$(host_ip h1)

J=(-H 'Content-Type: application/json')
C1=/run/netns/${NA_P}c1 # holds the good local endpoint l1
C2=/run/netns/${NA_P}c2 # a valid, empty target for endpoint probes
for c in c1 c2; do ip netns add "${NA_P}$c" && ip -n "${NA_P}$c" link set lo up || bail "ip netns add failed"; done
NET_NS=$(agent_dir a1)/run/netns/$(agent_name a1)-base

# ---- a good world to conflict with
api a1 PUT /v1/networks/base "${J[@]}" --data-binary '{"vni":201,"subnet":"198.18.1.0/24"}'
[ "$HTTP_CODE" = 201 ] || bail "PUT base: $(last_req)"
api a1 PUT /v1/networks/other "${J[@]}" --data-binary '{"vni":202,"subnet":"198.18.2.0/24"}'
[ "$HTTP_CODE" = 201 ] || bail "PUT other: $(last_req)"
api a1 PUT /v1/networks/base/endpoints/l1 "${J[@]}" --data-binary "{\"netns\":\"$C1\",\"ip\":\"198.18.1.11/24\"}"
[ "$HTTP_CODE" = 201 ] || bail "PUT l1: $(last_req)"
L1_MAC=$(json_get mac "$HTTP_BODY")
api a1 PUT /v1/networks/base/remote-endpoints/r1 "${J[@]}" --data-binary '{"ip":"198.18.1.12/24","mac":"02:42:c6:12:01:0c","vtep":"192.0.2.12"}'
[ "$HTTP_CODE" = 201 ] || bail "PUT r1: $(last_req)"
# r2 holds the MAC that 198.18.1.30 would derive (02:84 + its octets) under another address.
api a1 PUT /v1/networks/base/remote-endpoints/r2 "${J[@]}" --data-binary '{"ip":"198.18.1.40/24","mac":"02:84:c6:12:01:1e","vtep":"192.0.2.13"}'
[ "$HTTP_CODE" = 201 ] || bail "PUT r2: $(last_req)"
ok "setup: networks base (vni 201) and other (vni 202), local l1 .11 ($L1_MAC), remotes r1 .12, r2 .40"

# snapshot: everything a bad request could have changed
links() { nsenter --net="$1" ip -o link show | awk -F': ' '{sub(/@.*/, "", $2); print $1 ":" $2}' | sort; }
snapshot() {
	local n
	api a1 GET /v1/networks
	echo "networks: $HTTP_BODY"
	for n in base other; do
		api a1 GET "/v1/networks/$n/endpoints"
		echo "endpoints $n: $HTTP_BODY"
	done
	echo "state: $(cd "$(agent_dir a1)/state" && find . -type f | sort | xargs -r md5sum)"
	echo "run netns: $(ls "$(agent_dir a1)/run/netns" 2>&1)"
	echo "/run/netns: $(ip netns list | awk -v p="$NA_P" 'index($1, p) == 1 {print $1}' | sort | tr '\n' ' ')"
	echo "host links: $(links "/run/netns/$(hostns h1)" | tr '\n' ' ')"
	echo "c1 links: $(links "$C1" | tr '\n' ' ') $(ip -n "${NA_P}c1" -o -4 addr show | awk '{print $2, $4}')"
	echo "c2 links: $(links "$C2" | tr '\n' ' ')"
	echo "base links: $(links "$NET_NS" | tr '\n' ' ')"
	echo "base fdb: $(nsenter --net="$NET_NS" bridge fdb show dev vxlan0 | grep -v ' master ' | sort | tr '\n' ' ')"
	echo "base neigh: $(nsenter --net="$NET_NS" ip neigh show dev vxlan0 | sort | tr '\n' ' ')"
}
BEFORE=$(snapshot)

# err DESC STATUS CODE FIELD: the last answer is STATUS with error.code CODE and error.field
# FIELD ("-": no field); error.message must be a non-empty sentence.
err() {
	local desc=$1 st=$2 code=$3 field=$4 got_code got_field got_msg want
	want="$st $code"
	[ "$field" = - ] || want="$want (field $field)"
	got_code=$(json_get error.code "$HTTP_BODY" 2>/dev/null)
	got_field=$(json_get error.field "$HTTP_BODY" 2>/dev/null) || got_field=-
	got_msg=$(json_get error.message "$HTTP_BODY" 2>/dev/null)
	if [ "$HTTP_CODE $got_code $got_field" = "$st $code $field" ] && [ -n "$got_msg" ]; then
		ok "$desc → $want"
	else
		not_ok "$desc → $want" "$(last_req)"
	fi
}
# bad DESC METHOD PATH BODY STATUS CODE FIELD
bad() {
	local desc=$1 m=$2 p=$3 body=$4
	shift 4
	if [ -n "$body" ]; then api a1 "$m" "$p" "${J[@]}" --data-binary "$body"; else api a1 "$m" "$p"; fi
	err "$desc" "$@"
}

# ---- network: vni
S='"subnet":"198.18.3.0/24"'
bad "vni 0" PUT /v1/networks/probe "{\"vni\":0,$S}" 422 out_of_range vni
bad "vni 16777216" PUT /v1/networks/probe "{\"vni\":16777216,$S}" 422 out_of_range vni
bad "vni -1" PUT /v1/networks/probe "{\"vni\":-1,$S}" 422 out_of_range vni
bad "vni \"100\" (string)" PUT /v1/networks/probe "{\"vni\":\"100\",$S}" 422 invalid_field vni
bad "vni 1.5" PUT /v1/networks/probe "{\"vni\":1.5,$S}" 422 invalid_field vni
bad "vni 100.0 (a real)" PUT /v1/networks/probe "{\"vni\":100.0,$S}" 422 invalid_field vni
bad "vni null" PUT /v1/networks/probe "{\"vni\":null,$S}" 422 invalid_field vni
bad "vni true" PUT /v1/networks/probe "{\"vni\":true,$S}" 422 invalid_field vni
bad "vni missing" PUT /v1/networks/probe "{$S}" 422 missing_field vni
bad "vni 201 used by base" PUT /v1/networks/probe "{\"vni\":201,$S}" 409 vni_in_use vni
bad "base: vni changed to 203" PUT /v1/networks/base '{"vni":203,"subnet":"198.18.1.0/24"}' 409 immutable_field vni
bad "base: vni changed to 202 (other's)" PUT /v1/networks/base '{"vni":202,"subnet":"198.18.1.0/24"}' 409 immutable_field vni
bad "base: subnet changed to 198.18.3.0/24" PUT /v1/networks/base '{"vni":201,"subnet":"198.18.3.0/24"}' 409 immutable_field subnet
bad "base: prefix changed to /25" PUT /v1/networks/base '{"vni":201,"subnet":"198.18.1.0/25"}' 409 immutable_field subnet
# ---- network: subnet
V='"vni":300'
for s in 198.18.1.0/33 198.18.1.5/24 abc 224.0.0.0/24 127.0.0.0/24 0.0.0.0/0 198.18.3.0 198.18.3.0/31 \
	198.18.3.0/024 '198.18.3.0/24 ' 198.18.3.256/24 ''; do
	bad "subnet '$s'" PUT /v1/networks/probe "{$V,\"subnet\":\"$s\"}" 422 invalid_field subnet
done
bad "subnet 5 (number)" PUT /v1/networks/probe "{$V,\"subnet\":5}" 422 invalid_field subnet
bad "subnet missing" PUT /v1/networks/probe "{$V}" 422 missing_field subnet
# ---- network: mtu (underlay 1500 → at most 1450)
S2='"vni":300,"subnet":"198.18.3.0/24"'
bad "mtu 100" PUT /v1/networks/probe "{$S2,\"mtu\":100}" 422 out_of_range mtu
bad "mtu 99999" PUT /v1/networks/probe "{$S2,\"mtu\":99999}" 422 out_of_range mtu
bad "mtu \"1400\" (string)" PUT /v1/networks/probe "{$S2,\"mtu\":\"1400\"}" 422 invalid_field mtu
bad "mtu 1400.5" PUT /v1/networks/probe "{$S2,\"mtu\":1400.5}" 422 invalid_field mtu
bad "mtu 1451 (> underlay 1500 − 50)" PUT /v1/networks/probe "{$S2,\"mtu\":1451}" 422 invalid_field mtu
bad "base: mtu 1451 on an existing network" PUT /v1/networks/base '{"vni":201,"subnet":"198.18.1.0/24","mtu":1451}' 422 invalid_field mtu
bad "unknown field" PUT /v1/networks/probe "{$S2,\"bogus\":1}" 422 unknown_field bogus
bad "misspelt field (MTU)" PUT /v1/networks/probe "{$S2,\"MTU\":1400}" 422 unknown_field MTU
# ---- names
n64=$(printf 'a%.0s' $(seq 64))
for nm in Bad a%2Fb a_b "$n64" -x x%20y; do
	bad "network name '$nm'" PUT "/v1/networks/$nm" "{$S2}" 422 invalid_name name
done
api a1 PUT /v1/networks/.. --path-as-is "${J[@]}" --data-binary "{$S2}"
err "network name '..'" 422 invalid_name name
# ---- body
bad "invalid JSON" PUT /v1/networks/probe '{"vni":' 400 invalid_json -
bad "JSON array" PUT /v1/networks/probe '[{"vni":300}]' 400 invalid_json -
bad "JSON string" PUT /v1/networks/probe '"x"' 400 invalid_json -
bad "duplicate key" PUT /v1/networks/probe '{"vni":300,"vni":301,"subnet":"198.18.3.0/24"}' 400 invalid_json -
api a1 PUT /v1/networks/probe "${J[@]}"
err "empty body" 400 invalid_json -
{
	printf '{"vni":300,"subnet":"198.18.3.0/24","pad":"'
	head -c $((1024 * 1024)) /dev/zero | tr '\0' a
	printf '"}'
} >"$NA_TMP/big.json"
api a1 PUT /v1/networks/probe "${J[@]}" --data-binary @"$NA_TMP/big.json"
err "body of 1 MiB + 52 bytes" 413 body_too_large -
api a1 PUT /v1/networks/probe "${J[@]}" -H 'Expect:' --data-binary @"$NA_TMP/big.json"
err "body of 1 MiB + 52 bytes, no Expect" 413 body_too_large -

# ---- endpoint
EP=/v1/networks/base/endpoints/probe
ep() { bad "endpoint: $1" PUT "$EP" "$2" "${@:3}"; }
ep "netns missing" '{"ip":"198.18.1.20/24"}' 422 missing_field netns
printf 'x' >"$NA_TMP/notns"
mkdir -p "$NA_TMP/dir"
for p in run/netns/${NA_P}c2 /run/netns/../x "/run/netns/../netns/${NA_P}c2" "/run/netns/${NA_P}c2/.." "$NA_TMP/notns" "$NA_TMP/dir" \
	"/run/netns/${NA_P}nope" ''; do
	ep "netns '$p'" "{\"netns\":\"$p\"}" 422 invalid_field netns
done
# Hostile targets. A FIFO opened for real blocks until a writer comes (it used to hang the whole
# daemon); a device's open has side effects; a symlink or /proc/PID/ns/net leads wherever it
# points. The agent's own namespace, the host's and the networks' own namespaces are refused
# by identity, so a bind mount of them under an innocent name is refused too.
mkfifo "$NA_TMP/fifo"
ln -s "$C2" "$NA_TMP/link-to-c2"
APID=$(agent_pid a1)
for f in own init base other; do : >"$NA_TMP/ns-$f"; done
# PID 1's namespace is the host's root one; a sandbox may hide PID 1 (then the agent cannot
# see it either, and what stands for it here is the test's own namespace).
INIT_NS=/proc/1/ns/net
readlink "$INIT_NS" >/dev/null 2>&1 || INIT_NS=/proc/$$/ns/net
mount --bind "/proc/$APID/ns/net" "$NA_TMP/ns-own" &&
	mount --bind "$NET_NS" "$NA_TMP/ns-base" &&
	mount --bind "$(agent_dir a1)/run/netns/$(agent_name a1)-other" "$NA_TMP/ns-other" ||
	bail "bind mounts of namespaces failed"
t0=$(now_ms)
ep "netns a FIFO" "{\"netns\":\"$NA_TMP/fifo\"}" 422 invalid_field netns
t1=$(now_ms)
check "the FIFO was refused without blocking ($((t1 - t0)) ms)" test $((t1 - t0)) -lt 2000
api a1 GET /v1/health
is "health still answers after the FIFO" "$HTTP_CODE" 200
bad_ns=(/dev/null /dev/zero "$NA_TMP/link-to-c2" "/proc/$APID/ns/net" /proc/1/ns/net /proc/self/ns/net
	"$NA_TMP/ns-own" "$NET_NS" "$NA_TMP/ns-base" "$NA_TMP/ns-other")
[ "$INIT_NS" = /proc/1/ns/net ] && mount --bind "$INIT_NS" "$NA_TMP/ns-init" && bad_ns+=("$NA_TMP/ns-init")
for p in "${bad_ns[@]}"; do
	ep "netns '$p'" "{\"netns\":\"$p\"}" 422 invalid_field netns
done
umount "$NA_TMP/ns-own" "$NA_TMP/ns-base" "$NA_TMP/ns-other"
umount "$NA_TMP/ns-init" 2>/dev/null
ep "netns 5" '{"netns":5}' 422 invalid_field netns
ep "netns null" '{"netns":null}' 422 invalid_field netns
for ip in 198.18.2.5/24 198.18.1.0/24 198.18.1.255/24 198.18.1.5/25 198.18.1.5/16 198.18.1.0 198.18.1.255 abc \
	198.18.1.300/24 198.18.1.5/ /24 ''; do
	ep "ip '$ip'" "{\"netns\":\"$C2\",\"ip\":\"$ip\"}" 422 invalid_field ip
done
ep "ip 5 (number)" "{\"netns\":\"$C2\",\"ip\":5}" 422 invalid_field ip
ep "ip of local l1" "{\"netns\":\"$C2\",\"ip\":\"198.18.1.11/24\"}" 409 ip_in_use ip
ep "ip of local l1 without prefix" "{\"netns\":\"$C2\",\"ip\":\"198.18.1.11\"}" 409 ip_in_use ip
ep "ip of remote r1" "{\"netns\":\"$C2\",\"ip\":\"198.18.1.12/24\"}" 409 ip_in_use ip
for mac in zz 01:00:5e:00:00:01 ff:ff:ff:ff:ff:ff 00:00:00:00:00:00 02:42:c6:12:01 02-42-c6-12-01-20 \
	02:42:c6:12:01:2 '02:42:c6:12:01:20 ' ''; do
	ep "mac '$mac'" "{\"netns\":\"$C2\",\"ip\":\"198.18.1.20/24\",\"mac\":\"$mac\"}" 422 invalid_field mac
done
ep "mac of local l1" "{\"netns\":\"$C2\",\"ip\":\"198.18.1.20/24\",\"mac\":\"$L1_MAC\"}" 409 mac_in_use mac
ep "mac of remote r1" "{\"netns\":\"$C2\",\"ip\":\"198.18.1.20/24\",\"mac\":\"02:42:c6:12:01:0c\"}" 409 mac_in_use mac
ep "derived mac of .30 held by remote r2" "{\"netns\":\"$C2\",\"ip\":\"198.18.1.30/24\"}" 409 mac_in_use mac
for ifn in eth0123456789abc a/b '' .. 'a b' eth0:1; do
	ep "ifname '$ifn'" "{\"netns\":\"$C2\",\"ip\":\"198.18.1.20/24\",\"ifname\":\"$ifn\"}" 422 invalid_field ifname
done
ep "ifname 5" "{\"netns\":\"$C2\",\"ifname\":5}" 422 invalid_field ifname
ep "same netns and ifname as l1" "{\"netns\":\"$C1\",\"ip\":\"198.18.1.20/24\"}" 409 ifname_in_use ifname
ep "same netns and ifname as l1, given explicitly" "{\"netns\":\"$C1\",\"ip\":\"198.18.1.20/24\",\"ifname\":\"eth0\"}" 409 ifname_in_use ifname
ep "unknown field" "{\"netns\":\"$C2\",\"vtep\":\"192.0.2.12\"}" 422 unknown_field vtep
bad "endpoint: name 'Bad'" PUT /v1/networks/base/endpoints/Bad "{\"netns\":\"$C2\"}" 422 invalid_name name
bad "endpoint: name 'a%2Fb'" PUT /v1/networks/base/endpoints/a%2Fb "{\"netns\":\"$C2\"}" 422 invalid_name name
bad "endpoint: name of remote r1" PUT /v1/networks/base/endpoints/r1 "{\"netns\":\"$C2\",\"ip\":\"198.18.1.20/24\"}" 409 conflict -
bad "endpoint: on unknown network" PUT /v1/networks/nonet/endpoints/probe "{\"netns\":\"$C2\"}" 404 not_found -
bad "endpoint: invalid JSON" PUT "$EP" '{"netns":' 400 invalid_json -

# ---- remote endpoint (single)
RP=/v1/networks/base/remote-endpoints/probe
GOOD_IP='"ip":"198.18.1.50/24"'
GOOD_MAC='"mac":"02:42:c6:12:01:32"'
GOOD_VTEP='"vtep":"192.0.2.12"'
re() { bad "remote: $1" PUT "$RP" "$2" "${@:3}"; }
for vt in abc 224.0.0.1 0.0.0.0 255.255.255.255 127.0.0.1 "$HOST_ADDR" 192.0.2.12/24 192.0.2.256 ''; do
	re "vtep '$vt'" "{$GOOD_IP,$GOOD_MAC,\"vtep\":\"$vt\"}" 422 invalid_field vtep
done
re "vtep 5" "{$GOOD_IP,$GOOD_MAC,\"vtep\":5}" 422 invalid_field vtep
re "ip missing" "{$GOOD_MAC,$GOOD_VTEP}" 422 missing_field ip
re "mac missing" "{$GOOD_IP,$GOOD_VTEP}" 422 missing_field mac
re "vtep missing" "{$GOOD_IP,$GOOD_MAC}" 422 missing_field vtep
re "ip outside the subnet" "{\"ip\":\"198.18.2.50/24\",$GOOD_MAC,$GOOD_VTEP}" 422 invalid_field ip
re "ip broadcast" "{\"ip\":\"198.18.1.255/24\",$GOOD_MAC,$GOOD_VTEP}" 422 invalid_field ip
re "mac multicast" "{$GOOD_IP,\"mac\":\"01:00:5e:00:00:01\",$GOOD_VTEP}" 422 invalid_field mac
re "ip of local l1" "{\"ip\":\"198.18.1.11/24\",$GOOD_MAC,$GOOD_VTEP}" 409 ip_in_use ip
re "ip of remote r1" "{\"ip\":\"198.18.1.12/24\",$GOOD_MAC,$GOOD_VTEP}" 409 ip_in_use ip
re "mac of local l1" "{$GOOD_IP,\"mac\":\"$L1_MAC\",$GOOD_VTEP}" 409 mac_in_use mac
re "mac of remote r1" "{$GOOD_IP,\"mac\":\"02:42:c6:12:01:0c\",$GOOD_VTEP}" 409 mac_in_use mac
re "name in the body" "{\"name\":\"probe\",$GOOD_IP,$GOOD_MAC,$GOOD_VTEP}" 422 unknown_field name
re "unknown field" "{$GOOD_IP,$GOOD_MAC,$GOOD_VTEP,\"netns\":\"$C2\"}" 422 unknown_field netns
bad "remote: name of local l1" PUT /v1/networks/base/remote-endpoints/l1 "{$GOOD_IP,$GOOD_MAC,$GOOD_VTEP}" 409 conflict -
bad "remote: name 'Bad'" PUT /v1/networks/base/remote-endpoints/Bad "{$GOOD_IP,$GOOD_MAC,$GOOD_VTEP}" 422 invalid_name name
bad "remote: on unknown network" PUT /v1/networks/nonet/remote-endpoints/probe "{$GOOD_IP,$GOOD_MAC,$GOOD_VTEP}" 404 not_found -

# ---- remote endpoints (bulk): all or nothing
BP=/v1/networks/base/remote-endpoints
item() { echo "{\"name\":\"g$1\",\"ip\":\"198.18.1.$((60 + $1))/24\",\"mac\":\"02:42:c6:12:01:$((60 + $1))\",\"vtep\":\"192.0.2.1$((2 + $1 % 2))\"}"; }
G0=$(item 0) G1=$(item 1) G2=$(item 2)
bk() { bad "bulk: $1" POST "$BP" "{\"items\":[$2]}" "${@:3}"; }
bk "bad vtep in item 1 of 3" "$G0,{\"name\":\"g9\",\"ip\":\"198.18.1.69/24\",\"mac\":\"02:42:c6:12:01:69\",\"vtep\":\"abc\"},$G2" 422 invalid_field "items[1].vtep"
bk "own address as vtep in item 2" "$G0,$G1,{\"name\":\"g9\",\"ip\":\"198.18.1.69/24\",\"mac\":\"02:42:c6:12:01:69\",\"vtep\":\"$HOST_ADDR\"}" 422 invalid_field "items[2].vtep"
bk "item 2 without name" "$G0,$G1,{\"ip\":\"198.18.1.69/24\",\"mac\":\"02:42:c6:12:01:69\",\"vtep\":\"192.0.2.12\"}" 422 missing_field "items[2].name"
bk "item 1 without mac" "$G0,{\"name\":\"g9\",\"ip\":\"198.18.1.69/24\",\"vtep\":\"192.0.2.12\"},$G2" 422 missing_field "items[1].mac"
bk "item 0 named 'Bad'" "{\"name\":\"Bad\",\"ip\":\"198.18.1.69/24\",\"mac\":\"02:42:c6:12:01:69\",\"vtep\":\"192.0.2.12\"},$G1" 422 invalid_name "items[0].name"
bk "item 1 outside the subnet" "$G0,{\"name\":\"g9\",\"ip\":\"198.18.2.69/24\",\"mac\":\"02:42:c6:12:01:69\",\"vtep\":\"192.0.2.12\"}" 422 invalid_field "items[1].ip"
bk "item 1 with multicast mac" "$G0,{\"name\":\"g9\",\"ip\":\"198.18.1.69/24\",\"mac\":\"01:00:5e:00:00:01\",\"vtep\":\"192.0.2.12\"}" 422 invalid_field "items[1].mac"
bk "item 1 with an unknown field" "$G0,{\"name\":\"g9\",\"ip\":\"198.18.1.69/24\",\"mac\":\"02:42:c6:12:01:69\",\"vtep\":\"192.0.2.12\",\"x\":1},$G2" 422 unknown_field "items[1].x"
bk "item 1 not an object" "$G0,5,$G2" 422 invalid_field "items[1]"
bk "item 1 takes local l1's ip" "$G0,{\"name\":\"g9\",\"ip\":\"198.18.1.11/24\",\"mac\":\"02:42:c6:12:01:69\",\"vtep\":\"192.0.2.12\"},$G2" 409 ip_in_use "items[1].ip"
bk "item 1 takes remote r1's mac" "$G0,{\"name\":\"g9\",\"ip\":\"198.18.1.69/24\",\"mac\":\"02:42:c6:12:01:0c\",\"vtep\":\"192.0.2.12\"},$G2" 409 mac_in_use "items[1].mac"
bk "item 2 repeats item 0's ip" "$G0,$G1,{\"name\":\"g9\",\"ip\":\"198.18.1.60/24\",\"mac\":\"02:42:c6:12:01:69\",\"vtep\":\"192.0.2.12\"}" 409 ip_in_use "items[2].ip"
bk "item 2 repeats item 0's mac" "$G0,$G1,{\"name\":\"g9\",\"ip\":\"198.18.1.69/24\",\"mac\":\"02:42:c6:12:01:60\",\"vtep\":\"192.0.2.12\"}" 409 mac_in_use "items[2].mac"
bk "item 1 named like local l1" "$G0,{\"name\":\"l1\",\"ip\":\"198.18.1.69/24\",\"mac\":\"02:42:c6:12:01:69\",\"vtep\":\"192.0.2.12\"}" 409 conflict "items[1].name"
bad "bulk: items not an array" POST "$BP" '{"items":{}}' 422 invalid_field items
bad "bulk: items missing" POST "$BP" '{}' 422 missing_field items
bad "bulk: unknown top-level field" POST "$BP" "{\"items\":[$G0],\"force\":true}" 422 unknown_field force
bad "bulk: JSON array body" POST "$BP" "[$G0]" 400 invalid_json -
bad "bulk: unknown network" POST /v1/networks/nonet/remote-endpoints "{\"items\":[$G0]}" 404 not_found -
api a1 GET /v1/networks/base/endpoints
is "no item of a refused batch was applied (g0 g1 g2 absent)" "$(json_get items "$HTTP_BODY" | $PY -c 'import json,sys; print(" ".join(sorted(e["name"] for e in json.load(sys.stdin))))')" "l1 r1 r2"
is "no FDB entry of a refused batch in the kernel" "$(nsenter --net="$NET_NS" bridge fdb show dev vxlan0 | grep -ci '02:42:c6:12:01:6')" 0

# ---- deletes of what is not there, and other refusals
bad "DELETE absent remote endpoint" DELETE /v1/networks/base/remote-endpoints/nope '' 404 not_found -
bad "DELETE absent local endpoint" DELETE /v1/networks/base/endpoints/nope '' 404 not_found -
bad "DELETE remote r1 through endpoints/ (local only)" DELETE /v1/networks/base/endpoints/r1 '' 404 not_found -
bad "DELETE local l1 through remote-endpoints/" DELETE /v1/networks/base/remote-endpoints/l1 '' 404 not_found -
bad "DELETE endpoint of an unknown network" DELETE /v1/networks/nonet/endpoints/l1 '' 404 not_found -
bad "DELETE absent network" DELETE /v1/networks/nonet '' 404 not_found -
bad "DELETE network named 'Bad'" DELETE /v1/networks/Bad '' 422 invalid_name network
bad "DELETE base with a local endpoint" DELETE /v1/networks/base '' 409 has_endpoints -
bad "DELETE base ?force=maybe" DELETE '/v1/networks/base?force=maybe' '' 422 invalid_field force
bad "GET unknown network" GET /v1/networks/nonet '' 404 not_found -
bad "GET unknown network's inspect" GET /v1/networks/nonet/inspect '' 404 not_found -
bad "POST unknown network's check" POST /v1/networks/nonet/check '' 404 not_found -

# ---- nothing changed
AFTER=$(snapshot)
if [ "$AFTER" = "$BEFORE" ]; then
	ok "after all bad requests: API lists, state files, links, netns, FDB and neighbours unchanged"
else
	not_ok "after all bad requests nothing changed" "$(diff <(echo "$BEFORE") <(echo "$AFTER"))"
fi
api a1 GET /v1/networks/base/inspect
is "base still in sync" "$HTTP_CODE $(json_get in_sync "$HTTP_BODY")" "200 true"

# ---- the boundaries themselves are accepted
n63=${n64:1}
api a1 PUT "/v1/networks/$n63" "${J[@]}" --data-binary '{"vni":16777215,"subnet":"198.18.4.0/30","mtu":1450}'
is "63-char name, vni 16777215, /30, mtu 1450 (= underlay − 50) → 201" "$HTTP_CODE $(json_get mtu "$HTTP_BODY")" "201 1450"
api a1 PUT /v1/networks/edge1 "${J[@]}" --data-binary '{"vni":1,"subnet":"198.18.5.0/24","mtu":576}'
is "vni 1, mtu 576 → 201" "$HTTP_CODE $(json_get mtu "$HTTP_BODY")" "201 576"
api a1 PUT /v1/networks/base/endpoints/edge "${J[@]}" \
	--data-binary "{\"netns\":\"$C2\",\"ip\":\"198.18.1.254\",\"mac\":\"02:AA:BB:CC:DD:EE\",\"ifname\":\"eth0123456789ab\"}"
is "endpoint: last host address without prefix, upper-case mac, 15-char ifname → 201" \
	"$HTTP_CODE $(json_get ip "$HTTP_BODY") $(json_get mac "$HTTP_BODY")" "201 198.18.1.254/24 02:aa:bb:cc:dd:ee"
check "  … eth0123456789ab exists in the target namespace" ip -n "${NA_P}c2" link show eth0123456789ab
bad "endpoint: the same ifname in the same netns for another endpoint" PUT "$EP" \
	"{\"netns\":\"$C2\",\"ip\":\"198.18.1.20/24\",\"ifname\":\"eth0123456789ab\"}" 409 ifname_in_use ifname
# The addresses and MACs of refused requests were not left reserved.
api a1 POST "$BP" "${J[@]}" --data-binary "{\"items\":[$G0,$G1,$G2,{\"name\":\"g9\",\"ip\":\"198.18.1.69/24\",\"mac\":\"02:42:c6:12:01:69\",\"vtep\":\"192.0.2.12\"}]}"
is "the refused batches' items are accepted now (no leaked reservation) → 200, 4 applied" "$HTTP_CODE $(json_get applied "$HTTP_BODY")" "200 4"
api a1 PUT /v1/networks/base/remote-endpoints/probe "${J[@]}" --data-binary "{$GOOD_IP,$GOOD_MAC,$GOOD_VTEP}"
is "the refused remote's .50 is accepted now → 201" "$HTTP_CODE" 201
got=''
for k in 20 30; do
	ip netns add "${NA_P}d$k"
	api a1 PUT "/v1/networks/base/endpoints/p$k" "${J[@]}" \
		--data-binary "{\"netns\":\"/run/netns/${NA_P}d$k\",\"ip\":\"198.18.1.$k/24\",\"mac\":\"02:42:c6:12:01:$k\"}"
	got="$got $HTTP_CODE"
done
is "the refused endpoints' .20 and .30 are accepted now → 201" "$got" " 201 201"
for p in /v1/networks/base/endpoints/p20 /v1/networks/base/endpoints/p30 /v1/networks/base/remote-endpoints/probe \
	/v1/networks/base/remote-endpoints/g0 /v1/networks/base/remote-endpoints/g1 /v1/networks/base/remote-endpoints/g2 \
	/v1/networks/base/remote-endpoints/g9 "/v1/networks/base/endpoints/edge" "/v1/networks/$n63" /v1/networks/edge1; do
	api a1 DELETE "$p"
	[ "$HTTP_CODE" = 204 ] || not_ok "DELETE $p → 204" "$(last_req)"
done
wait_for 3 bash -c "! ip -n ${NA_P}c2 link show eth0123456789ab"
ip netns del "${NA_P}d20"
ip netns del "${NA_P}d30"
FINAL=$(snapshot)
if [ "$FINAL" = "$BEFORE" ]; then
	ok "after deleting the boundary objects the world is as before"
else
	not_ok "after deleting the boundary objects the world is as before" "$(diff <(echo "$BEFORE") <(echo "$FINAL"))"
fi

finish
