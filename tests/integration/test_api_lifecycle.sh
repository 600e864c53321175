#!/usr/bin/env bash
# Daemon lifecycle (SPEC §4, §5): corrupt state is quarantined, GET /v1/host, the SSE stream,
# SIGTERM drains and exits 0 removing the socket, restart after kill -9 with the same state dir.
. "$(dirname "$0")/../lib.sh"

mkhost h1 192.0.2.11
S=$(agent_sock a1)
ST=$(agent_dir a1)/state

# ---- a corrupt state file present at start
mkdir -p "$ST/networks"
printf '{"vni": 42, "subnet": ' >"$ST/networks/bad.json"
start_agent h1 a1 || bail "agent did not start with a corrupt state file"
ok "agent starts with a corrupt state file"
if [ -e "$ST/networks/bad.json" ]; then not_ok "corrupt file left <state>/networks/" "$(ls -la "$ST/networks")"; else ok "corrupt file left <state>/networks/"; fi
q=$(find "$ST/quarantine" -type f -name '*bad*' 2>/dev/null | head -n 1)
if [ -n "$q" ] && grep -q '"subnet"' "$q"; then
	ok "corrupt file moved, intact, to <state>/quarantine/ (${q#"$ST"/})"
else
	not_ok "corrupt file moved, intact, to <state>/quarantine/" "$(ls -laR "$ST" 2>&1)"
fi

# ---- GET /v1/host
api a1 GET /v1/host
is "GET /v1/host → 200" "$HTTP_CODE" 200
is "host reports quarantined 1 under state" "$(json_get state.quarantined "$HTTP_BODY")" 1
is "host reports the agent name" "$(json_get name "$HTTP_BODY")" "$(agent_name a1)"
# The underlay is found from the default route: eth0, 192.0.2.11, MTU 1500. Field names are
# the daemon's; look for the values anywhere under "underlay".
ul=$(json_get underlay "$HTTP_BODY")
for v in '"eth0"' '"192.0.2.11' '1500'; do
	like "host underlay shows $v" "$ul" "$v"
done

# ---- SSE
curl -sS -N --unix-socket "$S" -D "$NA_TMP/sse.hdrs" -o "$NA_TMP/sse.out" http://localhost/v1/events 2>"$NA_TMP/sse.err" &
SSE=$!
track_pid $SSE
sleep 1
if kill -0 $SSE 2>/dev/null; then ok "GET /v1/events stays open"; else not_ok "GET /v1/events stays open" "$(cat "$NA_TMP/sse.err" "$NA_TMP/sse.hdrs" "$NA_TMP/sse.out")"; fi
like "GET /v1/events → 200" "$(head -n 1 "$NA_TMP/sse.hdrs")" '^HTTP/1\.[01] 200'
like "GET /v1/events is text/event-stream" "$(tr -d '\r' <"$NA_TMP/sse.hdrs" | grep -i '^content-type:')" 'text/event-stream'
"$NETAGENTCTL" --socket "$S" events >"$NA_TMP/ctl-events.out" 2>&1 &
CTL=$!
track_pid $CTL
sleep 1
if kill -0 $CTL 2>/dev/null; then ok "netagentctl events follows the stream"; else not_ok "netagentctl events follows the stream" "$(cat "$NA_TMP/ctl-events.out")"; fi
# A state change shows up as an event.
api a1 PUT /v1/networks/ev1 --data-binary '{"vni":4001,"subnet":"198.18.1.0/24"}' -H 'Content-Type: application/json'
if wait_for 3 grep -q 'ev1' "$NA_TMP/sse.out"; then
	ok "PUT network → an event on the stream"
	ev=$(grep -m1 '^data:.*ev1' "$NA_TMP/sse.out" | sed 's/^data: *//')
	is "event data is JSON with type/action/name" "$(json_get name "$ev") $(json_get type "$ev" >/dev/null && echo t) $(json_get action "$ev" >/dev/null && echo a)" "ev1 t a"
else
	not_ok "PUT network → an event on the stream" "PUT: $(last_req)" "stream: $(head -c 600 "$NA_TMP/sse.out")"
fi
api a1 DELETE /v1/networks/ev1
wait_for 3 grep -q '"action":"deleted"' "$NA_TMP/sse.out"
ids=$(grep '^id:' "$NA_TMP/sse.out" | sed 's/^id: *//')
first_id=$(echo "$ids" | head -n 1)
last_id=$(echo "$ids" | tail -n 1)
like "events carry a numeric id" "$first_id" '^[0-9]+$'
sse_once() { # sse_once LAST-EVENT-ID: what a resuming client receives in 1 s
	curl -sS -N --max-time 1 --unix-socket "$S" -H "Last-Event-ID: $1" http://localhost/v1/events 2>/dev/null | tr -d '\r'
}
out=$(sse_once "$first_id")
like "resume from the first id replays what followed it (the delete)" "$out" '"action":"deleted"'
if echo "$out" | grep -q "^id: $first_id\$"; then not_ok "resume does not replay the event it resumed from"; else ok "resume does not replay the event it resumed from"; fi
like "an id never issued → event: resync" "$(sse_once 99999999999999999)" 'event: resync'
like "a malformed id → event: resync" "$(sse_once abc)" 'event: resync'

# ---- SIGHUP: nothing to reload, and not fatal
kill -HUP "$(agent_pid a1)"
sleep 0.3
api a1 GET /v1/health
if kill -0 "$(agent_pid a1)" 2>/dev/null && [ "$HTTP_CODE" = 200 ]; then ok "SIGHUP is not fatal: the agent still answers"; else not_ok "SIGHUP is not fatal" "$(last_req)"; fi

# ---- SIGTERM: drain, exit 0 within 5 s, socket removed, SSE clients released
"$PY" -c 'import socket,sys,time; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); time.sleep(30)' "$S" &
track_pid $!
sleep 0.2
t0=$(now_ms)
stop_agent a1 5
rc=$?
dt=$(($(now_ms) - t0))
is "SIGTERM → exit status 0 within 5 s (${dt} ms)" "$rc" 0
if [ -e "$S" ]; then not_ok "socket removed on SIGTERM" "$(ls -la "$S")"; else ok "socket removed on SIGTERM"; fi
if wait_for 2 bash -c "! kill -0 $SSE 2>/dev/null"; then ok "SSE client released on SIGTERM"; else not_ok "SSE client released on SIGTERM"; fi

# ---- restart with the same state dir
start_agent h1 a1 || bail "restart after SIGTERM failed"
ok "restart with the same state dir"
# Ids never restart: a client resuming with the previous run's id is told to resync, and the
# new run's ids are above the old ones, so its Last-Event-ID logic keeps working.
out=$(sse_once "$last_id")
like "after a restart, resuming with an old id → event: resync (agent restarted)" "$out" 'event: resync'
like "the resync names the restart" "$out" 'agent restarted'
api a1 PUT /v1/networks/ev2 --data-binary '{"vni":4002,"subnet":"198.18.2.0/24"}' -H 'Content-Type: application/json'
new_id=$(curl -sS -N --max-time 1 --unix-socket "$S" -H "Last-Event-ID: $(echo "$out" | sed -n 's/^id: *//p' | head -n 1)" \
	http://localhost/v1/events 2>/dev/null | tr -d '\r' | sed -n 's/^id: *//p' | tail -n 1)
if [ -n "$new_id" ] && [ "$new_id" -gt "$last_id" ] 2>/dev/null; then ok "ids keep growing across restarts ($last_id → $new_id)"; else not_ok "ids keep growing across restarts" "old=$last_id new=$new_id"; fi
api a1 DELETE /v1/networks/ev2
api a1 GET /v1/host
is "after restart, nothing new is quarantined" "$(json_get state.quarantined "$HTTP_BODY")" 0
check "quarantined file is kept across restarts" test -n "$(find "$ST/quarantine" -type f -name "*bad*" 2>/dev/null)"

# ---- kill -9, then restart (stale socket left behind)
kill_agent a1 -9
if [ -e "$S" ]; then diag "stale socket left by kill -9 (expected)"; fi
start_agent h1 a1 || bail "restart after kill -9 failed"
ok "restart after kill -9 (stale socket reclaimed)"
api a1 GET /v1/health
is "health after kill -9 restart" "$HTTP_CODE $(json_get status "$HTTP_BODY")" "200 ok"
is "socket still mode 0600 after restart" "$(stat -c %a "$S")" 600

# ---- a second agent on the same socket must not steal it from a live one
d2=$(agent_dir dup)
mkdir -p "$d2/state" "$d2/run"
nsenter --net="/run/netns/$(hostns h1)" timeout 5 "$NETAGENT" --name "$(agent_name dup)" --state-dir "$d2/state" \
	--run-dir "$d2/run" --socket "$S" >"$d2/log" 2>&1
rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 124 ]; then ok "a second agent on a live socket exits nonzero ($rc)"; else not_ok "a second agent on a live socket exits nonzero" "exit $rc" "$(tail -n 5 "$d2/log")"; fi
api a1 GET /v1/health
is "the first agent still owns its socket" "$HTTP_CODE $(json_get name "$HTTP_BODY")" "200 $(agent_name a1)"

# ---- a tuning variable out of its range stops the agent at start, naming it (exit 2)
d3=$(agent_dir knob)
mkdir -p "$d3/state" "$d3/run"
for v in 12ms 999 " 60000"; do
	NETAGENT_VX_SWEEP_MS=$v nsenter --net="/run/netns/$(hostns h1)" timeout 5 "$NETAGENT" --name "$(agent_name knob)" \
		--state-dir "$d3/state" --run-dir "$d3/run" --socket "$d3/sock" >"$d3/log" 2>&1
	rc=$?
	if [ $rc -eq 2 ] && grep -q "NETAGENT_VX_SWEEP_MS must be an integer in 1000\.\.86400000" "$d3/log" && [ ! -S "$d3/sock" ]; then
		ok "NETAGENT_VX_SWEEP_MS='$v' → exit 2, the variable and its range named, no socket"
	else
		not_ok "NETAGENT_VX_SWEEP_MS='$v' refused at start" "exit $rc" "$(tail -n 3 "$d3/log")"
	fi
done

stop_agent a1 5
is "final SIGTERM → exit 0" "$?" 0

finish
