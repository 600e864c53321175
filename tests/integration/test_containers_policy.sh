#!/usr/bin/env bash
# Containers: restart policies (always / on-failure / never) with exponential backoff seen in
# `restarts` and in the times between runs; stop/start/restart; updates (identical PUT changes
# nothing, a changed spec restarts); logs captured per stream, capped and rotated, followed;
# resources applied by the kernel (memory OOM, pids, cpu shares); events and metrics; the CLI.
. "$(dirname "$0")/../lib.sh"

command -v runc >/dev/null || bail "runc not found (scripts/deps.sh)"
J=(-H 'Content-Type: application/json')
mkhost h1
start_agent h1 a1 || bail "agent a1 did not start"
CTL=("$NETAGENTCTL" --socket "$(agent_sock a1)")
AG=$(agent_name a1)

put() { # NAME BODY WANT DESC
	api a1 PUT "/v1/containers/$1" "${J[@]}" --data-binary "$2"
	if [ "$HTTP_CODE" = "$3" ]; then ok "$4"; else not_ok "$4" "$(last_req)"; return 1; fi
}
get() { api a1 GET "/v1/containers/$1"; }
val() { get "$1" && json_get "$2" "$HTTP_BODY"; }
state_is() { [ "$(val "$1" state)" = "$2" ]; }
restarts_at_least() { [ "$(val "$1" restarts)" -ge "$2" ] 2>/dev/null; }

# Events of the whole run, for the end.
curl -sN --unix-socket "$(agent_sock a1)" http://x/v1/events >"$NA_TMP/events" 2>/dev/null &
track_pid $!

# ---- on-failure with exponential backoff
put fail '{"command":["sh","-c","date +%s%N; exit 1"],"restart":"on-failure"}' 201 \
	"PUT a container that fails at once, restart on-failure"
wait_for 20 restarts_at_least fail 4
get fail
R=$(json_get restarts "$HTTP_BODY")
[ "$R" -ge 4 ] && ok "it is restarted (restarts=$R)" || not_ok "it is restarted" "$(last_req)"
# Five runs logged (the fifth's output may come after its restart is counted): four gaps.
runs_logged() {
	api a1 GET "/v1/containers/fail/logs?tail=20"
	[ "$(json_get lines "$HTTP_BODY" | $PY -c 'import json, sys; print(sum(l["text"].isdigit() for l in json.load(sys.stdin)))')" -ge "$1" ]
}
wait_for 10 runs_logged 5
api a1 GET "/v1/containers/fail/logs?tail=20"
GAPS=$(json_get lines "$HTTP_BODY" | $PY -c '
import json, sys
t = [int(l["text"]) / 1e9 for l in json.load(sys.stdin) if l["text"].isdigit()]
print(" ".join("%.3f" % (b - a) for a, b in zip(t, t[1:])))')
diag "gaps between runs (s): $GAPS"
# 250 ms, 500 ms, 1 s, 2 s... plus the start itself, which a loaded host stretches to a second
# or more (the same for every run, roughly): the 4th gap exceeds the 1st by the backoff's growth.
$PY -c 'import sys; g=[float(x) for x in sys.argv[1:]]; sys.exit(0 if len(g) >= 4 and g[3] - g[0] >= 1.0 and g[3] >= 2.0 else 1)' $GAPS &&
	ok "the backoff grows (gap 4 >= gap 1 + 1 s, >= 2 s)" || not_ok "the backoff grows" "gaps: $GAPS"
wait_for 5 state_is fail restarting
get fail
like "between runs: state restarting with the time to the next start" \
	"$(json_get state "$HTTP_BODY") $(json_get next_restart_ms "$HTTP_BODY")" "^restarting [0-9]+$"
is "the last exit code is shown meanwhile" "$(json_get exit_code "$HTTP_BODY")" 1

put ok0 '{"command":["true"],"restart":"on-failure"}' 201 "on-failure, exit 0"
put nev '{"command":["sh","-c","exit 1"],"restart":"never"}' 201 "never, exit 1"
put alw '{"command":["sh","-c","echo run; exit 0"],"restart":"always"}' 201 "always, exit 0"
wait_for 10 restarts_at_least alw 2
sleep 1.5
is "on-failure does not restart a success" "$(val ok0 state)/$(val ok0 restarts)" exited/0
is "never does not restart a failure" "$(val nev state)/$(val nev restarts)/$(val nev exit_code)" exited/0/1
[ "$(val alw restarts)" -ge 2 ] && ok "always restarts a success" || not_ok "always restarts a success" "$(last_req)"

# ---- stop / start / restart
api a1 POST /v1/containers/alw/stop
is "POST stop: the policy no longer applies" "$HTTP_CODE/$(json_get state "$HTTP_BODY")/$(json_get desired "$HTTP_BODY")" 200/stopped/stopped
R=$(val alw restarts)
sleep 1.5
is "it stays stopped" "$(val alw state)/$(val alw restarts)" "stopped/$R"
api a1 POST /v1/containers/alw/stop
is "stop again: 200, nothing to do" "$HTTP_CODE/$(json_get state "$HTTP_BODY")" 200/stopped
put long '{"command":["sleep","100000"],"stop_timeout_s":1}' 201 "PUT a long-running container"
P1=$(json_get pid "$HTTP_BODY")
api a1 POST /v1/containers/long/start
is "POST start on a running container: same process" "$HTTP_CODE/$(json_get pid "$HTTP_BODY")" "200/$P1"
t0=$(now_ms)
api a1 POST /v1/containers/long/restart
P2=$(json_get pid "$HTTP_BODY")
dt=$(($(now_ms) - t0))
[ "$HTTP_CODE" = 200 ] && [ -n "$P2" ] && [ "$P2" != "$P1" ] && ! kill -0 "$P1" 2>/dev/null &&
	ok "POST restart: a new process, the old one gone" || not_ok "POST restart" "$(last_req)"
# sleep as PID 1 ignores SIGTERM: the monitor kills it after stop_timeout_s.
[ $dt -ge 900 ] && [ $dt -lt 6000 ] && ok "the restart waited out the 1 s stop timeout ($dt ms)" ||
	not_ok "the restart waited out the 1 s stop timeout" "$dt ms"

# ---- updates
get long
S1=$(json_get started "$HTTP_BODY")
put long '{"command":["sleep","100000"],"stop_timeout_s":1,"restart":"never","image":{"type":"host"}}' 200 \
	"an identical PUT (defaults spelled out): 200"
is "it changed nothing: same process, same start" "$(json_get pid "$HTTP_BODY") $(json_get started "$HTTP_BODY")" "$P2 $S1"
put long '{"command":["sleep","100000"],"stop_timeout_s":1,"env":{"COLOUR":"blue"}}' 200 "a changed PUT: 200"
P3=$(json_get pid "$HTTP_BODY")
[ -n "$P3" ] && [ "$P3" != "$P2" ] && ok "it restarted the container" || not_ok "it restarted the container" "$(last_req)"
is "with the new spec" "$("${CTL[@]}" ct exec long -- printenv COLOUR)" blue
api a1 PUT /v1/containers/long "${J[@]}" -d '{"role":"generic","command":["x"],"image":{"type":"rootfs","path":"/nonexistent"}}'
is "a bad update: 422" "$HTTP_CODE/$(json_get error.field "$HTTP_BODY")" 422/image.path
is "and the container was left alone" "$(val long pid)/$(val long state)" "$P3/running"

# ---- logs: streams, cap and rotation
put chatty '{"command":["sh","-c","echo to-err >&2; i=0; while [ $i -lt 50 ]; do head -c 100000 /dev/zero | tr \"\\\\0\" x | fold -w 99; i=$((i+1)); done; echo END; sleep 100000"],"stop_timeout_s":0}' \
	201 "PUT a container that writes 5 MB"
last_is_end() { api a1 GET "/v1/containers/chatty/logs?tail=1"; [[ $(json_get lines.0.text "$HTTP_BODY") == *END ]]; }
wait_for 30 last_is_end && ok "its last line is in the log (tail=1)" || not_ok "its last line is in the log" "$(last_req)"
D=$(agent_dir a1)/run/containers/chatty
files=$(find "$D" -maxdepth 1 -name 'ctr.log*' | wc -l)
total=$(cat "$D"/ctr.log* | wc -c)
is "logs rotate into 3 files at most" "$files" 3
[ "$total" -le $((3 * 1048576 + 65536)) ] && ok "and stay capped ($total bytes for 5 MB written)" ||
	not_ok "and stay capped" "$total bytes"
api a1 GET "/v1/containers/chatty/logs?tail=5"
is "tail=5 gives 5 records" "$(json_get lines "$HTTP_BODY" | $PY -c 'import json,sys; print(len(json.load(sys.stdin)))')" 5
put errs '{"command":["sh","-c","echo out; echo err >&2"]}' 201 "PUT a container writing both streams"
wait_for 5 state_is errs exited
api a1 GET "/v1/containers/errs/logs"
is "each record keeps its stream" \
	"$(json_get lines "$HTTP_BODY" | $PY -c 'import json,sys; print(" ".join(sorted(l["stream"]+":"+l["text"] for l in json.load(sys.stdin))))')" \
	"stderr:err stdout:out"
put tick '{"command":["sh","-c","i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.2; done"],"stop_timeout_s":0}' \
	201 "PUT a container printing 5 lines a second"
timeout 3 "${CTL[@]}" ct logs -f --tail 1 tick >"$NA_TMP/follow" 2>&1
n=$(grep -c '^tick' "$NA_TMP/follow")
[ "$n" -ge 6 ] && ok "ct logs -f follows new lines ($n in 3 s)" || not_ok "ct logs -f follows new lines" "$(cat "$NA_TMP/follow")"
is "and shows them in order" "$(grep '^tick' "$NA_TMP/follow" | sed 's/tick//' | sort -n | tr '\n' ' ')" "$(grep '^tick' "$NA_TMP/follow" | sed 's/tick//' | tr '\n' ' ')"

# ---- resources, as the kernel applies them
OOM='b = []
while True: b.append(bytearray(16 << 20))'
put oom "$($PY -c 'import json,sys; print(json.dumps({"command":["python3","-c",sys.argv[1]],"resources":{"memory_mb":48}}))' "$OOM")" \
	201 "PUT a container allocating without end, memory_mb 48"
wait_for 20 state_is oom exited
get oom
is "the kernel OOM-kills it: 137, oom_killed" "$(json_get exit_code "$HTTP_BODY")/$(json_get oom_killed "$HTTP_BODY")" 137/true
FORK='import os, time
ok = failed = 0
for i in range(30):
    try:
        if os.fork() == 0:
            time.sleep(100000)
        ok += 1
    except OSError:
        failed += 1
print("forked", ok, "failed", failed, flush=True)
time.sleep(100000)'
put lim "$($PY -c 'import json,sys; print(json.dumps({"command":["python3","-c",sys.argv[1]],
  "resources":{"memory_mb":64,"cpu_shares":256,"pids_max":10},"stop_timeout_s":0}))' "$FORK")" \
	201 "PUT a container with memory, cpu and pids limits that forks 30 times"
CG=/netagent/$AG/lim
is "memory limit in the cgroup" "$(cat /sys/fs/cgroup/memory$CG/memory.limit_in_bytes)" $((64 << 20))
is "cpu shares in the cgroup" "$(cat /sys/fs/cgroup/cpu$CG/cpu.shares)" 256
is "pids limit in the cgroup" "$(cat /sys/fs/cgroup/pids$CG/pids.max)" 10
forked() { api a1 GET "/v1/containers/lim/logs"; [[ $HTTP_BODY == *forked* ]]; }
wait_for 10 forked
is "the pids limit holds: 9 forks, 21 refused" "$(json_get lines.0.text "$HTTP_BODY")" "forked 9 failed 21"
is "10 tasks in the cgroup" "$(cat /sys/fs/cgroup/pids$CG/pids.current)" 10

# ---- the CLI
out=$("${CTL[@]}" ct apply web --restart always --env A=1,B=2 --memory 64 -- \
	sh -c 'trap "exit 0" TERM; echo "$A$B"; sleep 100000 & wait' 2>&1)
like "ct apply: created" "$out" "container web created"
wait_for 5 state_is web running
out=$("${CTL[@]}" ct ls)
like "ct ls lists it as running" "$out" "web +generic +running"
is "ct show -o json" "$("${CTL[@]}" -o json ct show web | $PY -c 'import json,sys; d=json.load(sys.stdin); print(d["resources"]["memory_mb"], d["env"]["B"])')" "64 2"
"${CTL[@]}" -o json ct show web >"$NA_TMP/web.json"
out=$("${CTL[@]}" ct apply web -f "$NA_TMP/web.json" 2>&1)
like "ct apply -f of ct show's output: unchanged" "$out" "container web updated"
is "same process" "$(val web pid)" "$(json_get pid "$(cat "$NA_TMP/web.json")")"
is "ct logs" "$("${CTL[@]}" ct logs web)" 12
like "ct stop" "$("${CTL[@]}" ct stop web)" "web stopped"
like "ct start" "$("${CTL[@]}" ct start web)" "web running"
like "ct restart" "$("${CTL[@]}" ct restart web)" "web running"
is "ct exec runs inside (its hostname)" "$("${CTL[@]}" ct exec web -- hostname)" web
"${CTL[@]}" ct exec web -- sh -c 'exit 3'
is "ct exec passes the exit status" "$?" 3
"${CTL[@]}" ct show nope >/dev/null 2>&1
is "ct show of an unknown container: exit 1" "$?" 1
"${CTL[@]}" ct apply 'Bad/Name' -- true >/dev/null 2>&1
is "ct apply with a bad name: usage, exit 2" "$?" 2
jq_py() { $PY -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
is "ct ls -o json" "$("${CTL[@]}" -o json ct ls | jq_py '[c["name"] + "/" + c["state"] for c in d["items"] if c["name"] == "web"]')" "['web/running']"
is "ct logs -o json: one record per line" "$("${CTL[@]}" -o json ct logs --tail 1 web | jq_py 'd["stream"] + " " + d["text"]')" "stdout 12"
is "ct stop -o json" "$("${CTL[@]}" -o json ct stop web | jq_py 'd["state"], d["pid"]')" "stopped None"
is "ct start -o json" "$("${CTL[@]}" -o json ct start web | jq_py 'd["state"]')" running
like "ct rm" "$("${CTL[@]}" ct rm web --purge)" "web deleted"
"${CTL[@]}" ct show web >/dev/null 2>&1
is "then ct show: exit 1 (not found)" "$?" 1

# ---- reconcile collects a runtime container with our prefix that nobody wants
AD=$(agent_dir a1)
B=$NA_TMP/stray
mkdir -p "$B/rootfs"
put tmpl '{"command":["sleep","100000"],"stop_timeout_s":0}' 201 "PUT a container whose bundle serves as a template"
# Its own rootfs and no file binds from the template's run dir, which goes with the template.
$PY - "$AD/run/containers/tmpl/bundle/config.json" "$B/config.json" "$B/rootfs" "/netagent/$AG" "$AD/run/" <<'PYEOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["root"]["path"] = sys.argv[3]
c["mounts"] = [m for m in c["mounts"] if not m["source"].startswith(sys.argv[5])]
c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "network"] + [{"type": "network"}]
c["process"]["args"] = ["sleep", "100000"]
for name in ("stray", "nope"):
    c["linux"]["cgroupsPath"] = sys.argv[4] + "/" + name
    json.dump(c, open(sys.argv[2] + "." + name, "w"))
PYEOF
cp -a "$AD/run/containers/tmpl/bundle/rootfs/." "$B/rootfs/" # the merged-/usr symlinks
api a1 DELETE "/v1/containers/tmpl?purge=true"
for n in stray nope; do
	cp "$B/config.json.$n" "$B/config.json"
	id=$AG-$n
	[ $n = nope ] && id=${NA_P}other-$n
	# The agent's periodic reconcile may remove our stray while runc is still creating it
	# (that is the behaviour under test, only too early): then start it again.
	started=0
	for _ in 1 2 3; do
		if runc --root "$AD/run/runc" run -d --bundle "$B" "$id" </dev/null >/dev/null 2>&1; then
			started=1
			break
		fi
		runc --root "$AD/run/runc" delete --force "$id" >/dev/null 2>&1
		sleep 0.2
	done
	[ $started = 1 ] || bail "cannot start $id by hand"
done
stray_gone() { ! runc --root "$AD/run/runc" state "$AG-stray" >/dev/null 2>&1; }
t0=$(now_ms)
wait_for 10 stray_gone && ok "a runtime container named $AG-* that is not wanted: removed by the periodic reconcile ($(($(now_ms) - t0)) ms)" ||
	not_ok "a runtime container named $AG-* that is not wanted: removed by the periodic reconcile"
sleep 2.5
is "one without our prefix in the same root is left alone" \
	"$(runc --root "$AD/run/runc" state "${NA_P}other-nope" | $PY -c 'import json,sys; print(json.load(sys.stdin)["status"])')" running
runc --root "$AD/run/runc" delete --force "${NA_P}other-nope" >/dev/null 2>&1

# ---- metrics and events
api a1 GET /metrics
like "metrics: containers by state" "$HTTP_BODY" 'netagent_containers\{state="running"\} [1-9]'
like "metrics: restarts" "$HTTP_BODY" 'netagent_container_restarts_total [1-9]'
like "metrics: start latency histogram" "$HTTP_BODY" 'netagent_container_start_seconds_count [1-9]'
sleep 0.3
ev=$($PY -c '
import json, sys
acts = set()
for line in open(sys.argv[1]):
    if line.startswith("data: "):
        e = json.loads(line[6:])
        if e.get("type") == "container" and e.get("name") == "fail":
            acts.add(e["action"])
print(" ".join(sorted(acts)))' "$NA_TMP/events")
like "events for every transition (created, started, exited, restarting, restarted)" "$ev" "created exited restarted restarting started"

# ---- the policy applies to an exit that happened while the agent was down
put down '{"command":["sh","-c","test -e /v/again && exec sleep 100000; touch /v/again; sleep 1; exit 3"],
  "restart":"on-failure","volumes":[{"name":"v","mount":"/v"}],"stop_timeout_s":0}' 201 \
	"PUT an on-failure container that fails after 1 s (once)"
kill_agent a1 -9
VD=$(agent_dir a1)/state/volumes/down/v
wait_for 5 test -e "$VD/again"
sleep 1.5 # its exit (3), with no agent
start_agent h1 a1 || bail "agent a1 did not restart"
wait_for 10 bash -c "curl -s --unix-socket $(agent_sock a1) http://x/v1/containers/down | grep -q '\"restarts\": *1'"
# restarts counts from the decision; running follows once the monitor reports the pid
wait_for 10 bash -c "curl -s --unix-socket $(agent_sock a1) http://x/v1/containers/down | grep -q '\"state\": *\"running\"'"
get down
is "the restarted agent saw the exit and restarted it per its policy" \
	"$(json_get state "$HTTP_BODY")/$(json_get restarts "$HTTP_BODY")" running/1
api a1 DELETE "/v1/containers/down?purge=true"
finish
