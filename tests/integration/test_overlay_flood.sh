#!/usr/bin/env bash
# Unicast to a remote endpoint goes to vxlan0 only: it is not flooded to the
# other local endpoints of the network (the bridge has a static entry for
# every remote MAC, since learning is off on the vxlan0 port). Two hosts,
# two local endpoints on h1, one endpoint on h2.
source "$(dirname "$0")/../lib.sh"
command -v tcpdump >/dev/null || bail "tcpdump not installed"
mkhost h1
mkhost h2
start_agent h1 a1 || bail "a1"
start_agent h2 a2 || bail "a2"
for c in x y z; do ip netns add "${NA_P}$c" || bail "netns"; done
J=(-H 'Content-Type: application/json')
for a in a1 a2; do
	api $a PUT /v1/networks/fl "${J[@]}" --data-binary '{"vni":3001,"subnet":"198.18.7.0/24"}'
	is "network on $a" "$HTTP_CODE" 201
done
api a1 PUT /v1/networks/fl/endpoints/x "${J[@]}" --data-binary "{\"netns\":\"/run/netns/${NA_P}x\",\"ip\":\"198.18.7.11/24\"}"
is "endpoint x on h1" "$HTTP_CODE" 201
api a1 PUT /v1/networks/fl/endpoints/y "${J[@]}" --data-binary "{\"netns\":\"/run/netns/${NA_P}y\",\"ip\":\"198.18.7.12/24\"}"
is "endpoint y on h1" "$HTTP_CODE" 201
api a2 PUT /v1/networks/fl/endpoints/z "${J[@]}" --data-binary "{\"netns\":\"/run/netns/${NA_P}z\",\"ip\":\"198.18.7.21/24\"}"
is "endpoint z on h2" "$HTTP_CODE" 201
api a1 PUT /v1/networks/fl/remote-endpoints/z "${J[@]}" --data-binary "{\"ip\":\"198.18.7.21/24\",\"mac\":\"02:84:c6:12:07:15\",\"vtep\":\"$(host_ip h2)\"}"
is "remote z on h1" "$HTTP_CODE" 201
api a2 POST /v1/networks/fl/remote-endpoints "${J[@]}" --data-binary "{\"items\":[{\"name\":\"x\",\"ip\":\"198.18.7.11/24\",\"mac\":\"02:84:c6:12:07:0b\",\"vtep\":\"$(host_ip h1)\"},{\"name\":\"y\",\"ip\":\"198.18.7.12/24\",\"mac\":\"02:84:c6:12:07:0c\",\"vtep\":\"$(host_ip h1)\"}]}"
is "remotes x, y on h2 (bulk)" "$HTTP_CODE" 200

# Capture on y while x talks to z and to y. A background job of a script
# ignores SIGINT: the capture is bounded by timeout instead.
cap=$NA_TMP/y.txt
ip netns exec "${NA_P}y" timeout 6 tcpdump -i eth0 -nn -l icmp >"$cap" 2>"$NA_TMP/tcpdump.err" &
tp=$!
track_pid $tp
wait_for 3 grep -q listening "$NA_TMP/tcpdump.err"
check "x reaches z across hosts" ip netns exec "${NA_P}x" ping -c 20 -i 0.05 -W 1 198.18.7.21
check "x reaches y on the same host" ip netns exec "${NA_P}x" ping -c 3 -i 0.05 -W 1 198.18.7.12
wait $tp 2>/dev/null
to_y=$(grep -c '198.18.7.11 > 198.18.7.12: ICMP echo request' "$cap")
to_z=$(grep -c '198.18.7.21' "$cap")
# The capture works (it saw y's own traffic), so an empty count means something.
like "capture on y saw x's pings to y (positive control)" "$to_y" '^[1-9]'
is "y saw none of the 20 echo requests/replies between x and z" "$to_z" 0
BR=$(agent_dir a1)/run/netns/$(agent_name a1)-fl
like "h1's bridge holds a static entry for z's MAC on vxlan0" \
	"$(nsenter --net="$BR" bridge fdb show dev vxlan0 2>&1)" '02:84:c6:12:07:15 master br0 static'
api a1 DELETE /v1/networks/fl/remote-endpoints/z
is "remote z deleted" "$HTTP_CODE" 204
if nsenter --net="$BR" bridge fdb show dev vxlan0 2>/dev/null | grep -q 02:84:c6:12:07:15; then
	not_ok "z's MAC gone from both FDBs of h1" "$(nsenter --net="$BR" bridge fdb show dev vxlan0)"
else
	ok "z's MAC gone from both FDBs of h1"
fi
finish
