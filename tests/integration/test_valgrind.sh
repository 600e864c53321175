#!/usr/bin/env bash
# The daemon under valgrind memcheck: API errors, a network with endpoints,
# an event stream, then SIGTERM. Any invalid access or definite leak fails.
source "$(dirname "$0")/../lib.sh"
command -v valgrind >/dev/null || bail "valgrind not installed (make deps installs it)"
mkhost h1
ip netns add "${NA_P}c1" || bail "netns"
vg="$NA_TMP/vg.log"
NA_AGENT_WRAPPER="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --log-file=$vg" \
	start_agent h1 a1 --log-level info
wait_agent a1 60 || bail "agent under valgrind did not start"
api a1 GET /v1/nope
is "404 under valgrind" "$HTTP_CODE" 404
api a1 PUT /v1/networks/v1 -d '{"vni":"x"}'
is "422 under valgrind" "$HTTP_CODE" 422
api a1 PUT /v1/networks/v1 -d '{"vni":4100,"subnet":"198.18.4.0/24"}'
is "network created under valgrind" "$HTTP_CODE" 201
api a1 PUT /v1/networks/v1/endpoints/e1 -d "{\"netns\":\"/run/netns/${NA_P}c1\"}"
is "endpoint created under valgrind" "$HTTP_CODE" 201
api a1 PUT /v1/networks/v1/remote-endpoints/r1 -d '{"ip":"198.18.4.50/24","mac":"02:84:c6:12:04:32","vtep":"192.0.2.99"}'
is "remote endpoint created under valgrind" "$HTTP_CODE" 201
api a1 GET /v1/networks/v1/inspect
is "inspect under valgrind" "$HTTP_CODE" 200
timeout 3 curl -sN --unix-socket "$(agent_sock a1)" http://x/v1/events >/dev/null 2>&1 &
sleep 4 # one reconcile round
api a1 DELETE '/v1/networks/v1?force=true'
is "network deleted under valgrind" "$HTTP_CODE" 204
pid=$(agent_pid a1)
kill -TERM "$pid"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
wait "$pid" 2>/dev/null
rc=$?
unset "AGENT_PID[a1]"
is "agent exits 0 under valgrind (99 = memcheck errors)" "$rc" 0
# valgrind has no wrapper for the NS_GET_NSTYPE ioctl and warns about it:
# that warning is not an error of ours.
report=$(grep -v -e 'unhandled ioctl 0xb703' -e 'could cause spurious value errors' \
	-e 'README_MISSING_SYSCALL_OR_IOCTL' "$vg" 2>/dev/null)
if [ -n "$report" ]; then not_ok "valgrind reports no errors" "$(head -40 <<<"$report")"; else ok "valgrind reports no errors"; fi
finish
