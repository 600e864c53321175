#!/usr/bin/env bash
# netagentctl doctor against the real daemon: healthy when nothing is wrong (exit 0), and each
# kind of problem named in plain words with exit 1: kernel drift in a network (reconcile slowed
# down so the drift stays), a container that should run and does not, a VIP in fault, etcd
# configured but unreachable.
source "$(dirname "$0")/../lib.sh"
CTL=$NETAGENTCTL
mkhost h1
# Reconcile every 10 minutes: drift made by hand stays until doctor has seen it.
start_agent h1 a1 --reconcile-ms 600000 || bail "agent a1 did not start"
doc() { "$CTL" --socket "$(agent_sock a1)" "$@" doctor >"$NA_TMP/out" 2>&1; echo $?; }
is "fresh agent: doctor exits 0" "$(doc)" 0
like "and says healthy" "$(cat "$NA_TMP/out")" "healthy"
api a1 PUT /v1/networks/n1 -d '{"vni":77,"subnet":"198.18.77.0/24"}'
ip netns add "${NA_P}e1"
api a1 PUT /v1/networks/n1/endpoints/e1 -d "{\"netns\":\"/run/netns/${NA_P}e1\",\"ip\":\"198.18.77.2/24\"}"
api a1 PUT /v1/networks/n1/remote-endpoints/r1 -d '{"ip":"198.18.77.9/24","mac":"02:84:c6:12:4d:09","vtep":"192.0.2.99"}'
is "a network with endpoints in sync: exit 0" "$(doc)" 0
ns=$(json_get netns "$(curl -s --unix-socket "$(agent_sock a1)" http://x/v1/networks/n1)")
nsenter --net="$ns" bridge fdb del 02:84:c6:12:4d:09 dev vxlan0 dst 192.0.2.99 2>/dev/null ||
	nsenter --net="$ns" bridge fdb del 02:84:c6:12:4d:09 dev vxlan0
is "an FDB entry deleted by hand: exit 1" "$(doc)" 1
like "the drift is named (network n1, the MAC)" "$(cat "$NA_TMP/out")" "PROBLEM +network +n1 .*02:84:c6:12:4d:09"
doc -o json >/dev/null
like "-o json: healthy false with the problems" "$(json_get healthy "$(cat "$NA_TMP/out")")" false
api a1 PUT /v1/containers/bad -d '{"command":["sh","-c","exit 3"],"restart":"never"}'
api a1 PUT /v1/containers/job -d '{"command":["true"],"restart":"never"}'
sleep 1
doc >/dev/null
like "a container that should run and exited 3 is named" "$(cat "$NA_TMP/out")" "PROBLEM +container +bad +should run but is exited"
if grep -q "PROBLEM.*container +job" "$NA_TMP/out"; then not_ok "a finished job (never, exit 0) is not a problem" "$(cat "$NA_TMP/out")"; else ok "a finished job (never, exit 0) is not a problem"; fi
api a1 PUT /v1/vips/v1 -d '{"address":"192.0.2.200/24","target":{"interface":"nosuch0"}}'
sleep 0.5
doc >/dev/null
like "a VIP whose target is missing is in fault, with the reason" "$(cat "$NA_TMP/out")" "PROBLEM +vip +v1 +fault"
api a1 DELETE /v1/vips/v1
api a1 DELETE /v1/containers/bad
api a1 DELETE /v1/containers/job
api a1 DELETE "/v1/networks/n1?force=true"
is "everything removed: healthy again" "$(doc)" 0

mkhost h2
start_agent h2 a2 --etcd http://192.0.2.250:2379 || bail "agent a2 did not start"
"$CTL" --socket "$(agent_sock a2)" doctor >"$NA_TMP/out2" 2>&1
is "etcd configured but unreachable: exit 1" "$?" 1
like "and said so" "$(cat "$NA_TMP/out2")" "PROBLEM +host +etcd +etcd is configured but not reachable"
finish
