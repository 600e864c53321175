#!/usr/bin/env bash
# Bad input on the VIP routes (SPEC §4): each refused PUT answers its status with the error
# code and the offending `field`, and changes nothing (no VIP in the list, no address in the
# kernel); unknown VIPs are 404 on every route; failover without etcd or while not master is
# 409; two VIPs cannot share an address (409).
. "$(dirname "$0")/../lib.sh"

J=(-H 'Content-Type: application/json')
mkhost h1
start_agent h1 a1 || bail "agent a1 did not start"

# bad BODY STATUS CODE FIELD DESC
bad() {
	api a1 PUT /v1/vips/v1 "${J[@]}" --data-binary "$1"
	local got want
	got="$HTTP_CODE $(json_get error.code "$HTTP_BODY") $(json_get error.field "$HTTP_BODY" 2>/dev/null || echo -)"
	want="$2 $3 $4"
	if [ "$got" = "$want" ]; then ok "$5 → $2 $3 field=$4"; else not_ok "$5" "got:  $got" "want: $want" "$(last_req)"; fi
}
T='"target":{"interface":"eth0"}'
A='"address":"192.0.2.100/24"'
bad '{' 400 invalid_json - "invalid JSON"
bad '[]' 400 invalid_json - "body not an object"
bad '{'"$T"'}' 422 missing_field address "no address"
bad '{'"$A"'}' 422 missing_field target "no target"
bad '{"address":"192.0.2.300/24",'"$T"'}' 422 invalid_field address "address out of range"
bad '{"address":"192.0.2.100",'"$T"'}' 422 invalid_field address "address without prefix length"
bad '{"address":"192.0.2.0/24",'"$T"'}' 422 invalid_field address "network address"
bad '{"address":"192.0.2.255/24",'"$T"'}' 422 invalid_field address "broadcast address"
bad '{"address":"224.0.0.5/24",'"$T"'}' 422 invalid_field address "multicast address"
bad '{"address":"127.0.0.5/8",'"$T"'}' 422 invalid_field address "loopback address"
bad '{"address":"fe80::5/64",'"$T"'}' 422 invalid_field address "IPv6 link-local"
bad '{"address":5,'"$T"'}' 422 invalid_field address "address not a string"
bad '{'"$A"',"target":{}}' 422 invalid_field target "target with neither interface nor container"
bad '{'"$A"',"target":{"interface":"eth0","container":"gw-1"}}' 422 invalid_field target "target with both"
bad '{'"$A"',"target":{"interface":"a/b"}}' 422 invalid_field target.interface "interface name with /"
bad '{'"$A"',"target":{"interface":"abcdefghijklmnopq"}}' 422 invalid_field target.interface "interface name too long"
bad '{'"$A"',"target":{"container":"GW_1"}}' 422 invalid_name target.container "bad container name"
bad '{'"$A"',"target":{"vm":"x"}}' 422 unknown_field target.vm "unknown target kind"
bad '{'"$A"','"$T"',"colour":"red"}' 422 unknown_field colour "unknown field"
bad '{'"$A"','"$T"',"interval_ms":10}' 422 out_of_range interval_ms "interval_ms too small"
bad '{'"$A"','"$T"',"rise":0}' 422 out_of_range rise "rise 0"
bad '{'"$A"','"$T"',"fall":"2"}' 422 invalid_field fall "fall a string"
bad '{'"$A"','"$T"',"priority":256}' 422 out_of_range priority "priority 256"
bad '{'"$A"','"$T"',"preempt":1}' 422 invalid_field preempt "preempt not a boolean"
bad '{'"$A"','"$T"',"checks":{}}' 422 invalid_field checks "checks not an array"
bad '{'"$A"','"$T"',"checks":[{"port":80}]}' 422 missing_field checks.0.type "check without type"
bad '{'"$A"','"$T"',"checks":[{"type":"icmp","port":80}]}' 422 invalid_field checks.0.type "check type icmp"
bad '{'"$A"','"$T"',"checks":[{"type":"tcp","port":80},{"type":"tcp"}]}' 422 missing_field checks.1.port "second check without port"
bad '{'"$A"','"$T"',"checks":[{"type":"tcp","port":65536}]}' 422 out_of_range checks.0.port "port 65536"
bad '{'"$A"','"$T"',"checks":[{"type":"tcp","port":80,"path":"/"}]}' 422 invalid_field checks.0.path "path on a tcp check"
bad '{'"$A"','"$T"',"checks":[{"type":"http","port":80,"path":"no-slash"}]}' 422 invalid_field checks.0.path "http path without /"
bad '{'"$A"','"$T"',"checks":[{"type":"http","port":80,"path":"/a b"}]}' 422 invalid_field checks.0.path "http path with a space"
bad '{'"$A"','"$T"',"checks":[{"type":"tcp","port":80,"timeout_ms":1}]}' 422 out_of_range checks.0.timeout_ms "timeout_ms 1"
bad '{'"$A"','"$T"',"checks":[{"type":"tcp","port":80,"address":"224.0.0.1"}]}' 422 invalid_field checks.0.address "multicast check address"
C='{"type":"tcp","port":80}'
bad '{'"$A"','"$T"',"checks":['"$C,$C,$C,$C,$C,$C,$C,$C,$C"']}' 422 invalid_field checks "nine checks"

api a1 PUT /v1/vips/Bad_Name "${J[@]}" --data-binary '{'"$A"','"$T"'}'
is "bad VIP name → 422 field name" "$HTTP_CODE $(json_get error.field "$HTTP_BODY")" "422 name"
api a1 GET /v1/vips
is "no refused PUT left a VIP behind" "$(json_get items "$HTTP_BODY")" "[]"
check "no refused PUT left an address" sh -c "! nsenter --net=/run/netns/$(hostns h1) ip -o addr show | grep -q 192.0.2.100/"

for r in "GET /v1/vips/nope" "DELETE /v1/vips/nope" "POST /v1/vips/nope/failover" "GET /v1/vips/nope/history"; do
	api a1 ${r% *} "${r#* }"
	is "$r → 404 not_found" "$HTTP_CODE $(json_get error.code "$HTTP_BODY")" "404 not_found"
done
api a1 PATCH /v1/vips/nope
is "PATCH → 405" "$HTTP_CODE" 405

# A real VIP: failover without etcd is 409; a second VIP on its address is 409.
api a1 PUT /v1/vips/v1 "${J[@]}" --data-binary '{'"$A"','"$T"'}'
is "valid PUT (201)" "$HTTP_CODE" 201
wait_for 5 sh -c "nsenter --net=/run/netns/$(hostns h1) ip -o addr show dev eth0 | grep -q ' 192.0.2.100/'"
# The address lands a moment before the state says master; failover asks the state.
v1_master() { api a1 GET /v1/vips/v1; [ "$(json_get state "$HTTP_BODY")" = master ]; }
wait_for 5 v1_master
api a1 POST /v1/vips/v1/failover
is "failover in local mode → 409 no_candidate" "$HTTP_CODE $(json_get error.code "$HTTP_BODY")" "409 no_candidate"
api a1 PUT /v1/vips/v2 "${J[@]}" --data-binary '{'"$A"',"target":{"interface":"eth0"}}'
is "a second VIP on the same address → 409 address_in_use field address" "$HTTP_CODE $(json_get error.code "$HTTP_BODY") $(json_get error.field "$HTTP_BODY")" "409 address_in_use address"
api a1 PUT /v1/vips/v1 "${J[@]}" --data-binary '{'"$A"','"$T"',"rise":0}'
is "bad update → 422, the VIP unchanged" "$HTTP_CODE $(json_get rise "$(api a1 GET /v1/vips/v1; echo "$HTTP_BODY")")" "422 2"

# A VIP on an interface that does not exist: accepted (it may appear), state fault with why.
api a1 PUT /v1/vips/v3 "${J[@]}" --data-binary '{"address":"192.0.2.101/24","target":{"interface":"nosuch0"}}'
is "VIP on a missing interface accepted (201)" "$HTTP_CODE" 201
fault_v3() {
	api a1 GET /v1/vips/v3
	[ "$(json_get state "$HTTP_BODY")" = fault ]
}
if wait_for 5 fault_v3; then ok "VIP on a missing interface is fault"; else not_ok "v3 fault" "$(last_req)"; fi
like "its error says the interface is missing" "$(json_get error "$HTTP_BODY")" "nosuch0 does not exist"
N1=$(grep -c 'vip take failed' "$(agent_log a1)")
sleep 2
N2=$(grep -c 'vip take failed' "$(agent_log a1)")
[ $((N2 - N1)) -le 3 ] && ok "a failing take is retried with a backoff ($((N2 - N1)) tries in 2 s)" || not_ok "take retry backoff" "$((N2 - N1)) tries in 2 s"

finish
