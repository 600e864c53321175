#!/usr/bin/env bash
# Containers, bad input: every refusal is a 4xx with `field` (400 invalid JSON, 404, 409, 413,
# 422) and changes nothing (no run dir, netns, runtime container, monitor, state file, volume,
# cgroup, endpoint afterwards). Hostile rootfs paths (missing, a file, a FIFO, a device, a
# symlink, a symlinked component, /proc/1/root, "/", ".."); a runtime container of the same
# id that the agent does not own (409, then collected at the next start); leftovers of a
# create that a kill -9 interrupted are collected or completed, never half there.
. "$(dirname "$0")/../lib.sh"

command -v runc >/dev/null || bail "runc not found (scripts/deps.sh)"
J=(-H 'Content-Type: application/json')
mkhost h1
# No periodic reconcile during the test: the clash below must stay until the restart.
start_agent h1 a1 --reconcile-ms 3600000 || bail "agent a1 did not start"
AG=$(agent_name a1)
D=$(agent_dir a1)
api a1 PUT /v1/networks/n1 "${J[@]}" -d '{"vni":4201,"subnet":"198.18.42.0/24"}'
[ "$HTTP_CODE" = 201 ] || bail "network: $(last_req)"
api a1 PUT /v1/containers/taken "${J[@]}" -d '{"command":["sleep","100000"],"stop_timeout_s":0,
  "networks":[{"network":"n1","ip":"198.18.42.7/24"}]}'
[ "$HTTP_CODE" = 201 ] || bail "container taken: $(last_req)"

# bad WANT FIELD DESC BODY [NAME]: PUT is refused with WANT and error.field FIELD.
bad() {
	local want=$1 f=$2 desc=$3 body=$4 name=${5:-bad}
	api a1 PUT "/v1/containers/$name" "${J[@]}" --data-binary "$body"
	if [ "$HTTP_CODE" = "$want" ] && [ "$(json_get error.field "$HTTP_BODY")" = "$f" ] &&
		[ -n "$(json_get error.message "$HTTP_BODY")" ]; then
		ok "$desc: $want, field $f"
	else
		not_ok "$desc: $want, field $f" "$(last_req)"
	fi
}
C='"command":["true"]'
bad 422 role "unknown role" "{\"role\":\"oracle\",$C}"
bad 422 role "role of the wrong type" "{\"role\":[],$C}"
bad 422 colour "unknown field" "{$C,\"colour\":\"red\"}"
bad 422 postgres "another role's section" "{$C,\"postgres\":{}}"
bad 422 command "command missing (generic)" '{}'
bad 422 command "command not an array" '{"command":"true"}'
bad 422 "command[1]" "command element not a string" '{"command":["a",{}]}'
bad 422 env.X "env value not a string" "{$C,\"env\":{\"X\":5}}"
bad 422 env "env name with '='" "{$C,\"env\":{\"A=B\":\"1\"}}"
bad 422 restart "unknown restart policy" "{$C,\"restart\":\"unless-stopped\"}"
bad 422 stop_timeout_s "stop timeout huge" "{$C,\"stop_timeout_s\":99999999}"

# ---- images
mkdir -p "$NA_TMP/img" && touch "$NA_TMP/file" && mkfifo "$NA_TMP/fifo" && ln -s "$NA_TMP/img" "$NA_TMP/link"
mkdir -p "$NA_TMP/real/dir" && ln -s "$NA_TMP/real" "$NA_TMP/via"
for p in /nonexistent/rootfs "$NA_TMP/file" "$NA_TMP/fifo" /dev/null "$NA_TMP/link" "$NA_TMP/via/dir" \
	/proc/1/root / "$NA_TMP/img/../img" "$NA_TMP/img/" relative/dir "$NA_TMP//img"; do
	bad 422 image.path "rootfs $p" "{$C,\"image\":{\"type\":\"rootfs\",\"path\":\"$p\"}}"
done
bad 422 image.type "image type unknown" "{$C,\"image\":{\"type\":\"oci\"}}"
bad 422 image.path "host image with a path" "{$C,\"image\":{\"type\":\"host\",\"path\":\"/srv\"}}"

# ---- networks
bad 404 "networks[0].network" "network that does not exist" "{$C,\"networks\":[{\"network\":\"nope\"}]}"
bad 422 "networks[0].ip" "IP outside the subnet" "{$C,\"networks\":[{\"network\":\"n1\",\"ip\":\"198.18.43.5/24\"}]}"
bad 422 "networks[0].ip" "the subnet's broadcast address" "{$C,\"networks\":[{\"network\":\"n1\",\"ip\":\"198.18.42.255/24\"}]}"
bad 409 "networks[0].ip" "IP taken by another container" "{$C,\"networks\":[{\"network\":\"n1\",\"ip\":\"198.18.42.7/24\"}]}"
bad 422 "networks[0].ip" "IP not an address" "{$C,\"networks\":[{\"network\":\"n1\",\"ip\":\"x\"}]}"
bad 422 "networks[1].network" "one network twice" "{$C,\"networks\":[{\"network\":\"n1\"},{\"network\":\"n1\"}]}"

# ---- volumes
bad 422 "volumes[0].name" "volume name with /" "{$C,\"volumes\":[{\"name\":\"a/b\",\"mount\":\"/d\"}]}"
bad 422 "volumes[0].name" "volume name .." "{$C,\"volumes\":[{\"name\":\"..\",\"mount\":\"/d\"}]}"
bad 422 "volumes[0].mount" "mount target not absolute" "{$C,\"volumes\":[{\"name\":\"v\",\"mount\":\"data\"}]}"
bad 422 "volumes[0].mount" "mount target with .." "{$C,\"volumes\":[{\"name\":\"v\",\"mount\":\"/a/../etc\"}]}"
bad 422 "volumes[0].mount" "mount target over /proc" "{$C,\"volumes\":[{\"name\":\"v\",\"mount\":\"/proc/sys\"}]}"
bad 422 "volumes[1].mount" "two volumes on one target" \
	"{$C,\"volumes\":[{\"name\":\"v\",\"mount\":\"/d\"},{\"name\":\"w\",\"mount\":\"/d\"}]}"

# ---- resources and numbers
bad 422 resources.memory_mb "memory below the floor" "{$C,\"resources\":{\"memory_mb\":8}}"
bad 422 resources.memory_mb "memory above the host's" "{$C,\"resources\":{\"memory_mb\":99999999}}"
bad 422 resources.memory_mb "negative memory" "{$C,\"resources\":{\"memory_mb\":-64}}"
bad 422 resources.memory_mb "memory as a string" "{$C,\"resources\":{\"memory_mb\":\"64\"}}"
bad 422 resources.memory_mb "memory as a float" "{$C,\"resources\":{\"memory_mb\":64.5}}"
bad 422 resources.cpu_shares "cpu shares 0" "{$C,\"resources\":{\"cpu_shares\":0}}"
bad 422 resources.pids_max "pids huge" "{$C,\"resources\":{\"pids_max\":9223372036854775807}}"
bad 422 resources.swap_mb "unknown resource" "{$C,\"resources\":{\"swap_mb\":1}}"
bad 422 "capabilities[0]" "a capability generic may not have" "{$C,\"capabilities\":[\"SYS_ADMIN\"]}"
bad 422 user.uid "uid out of range" "{$C,\"user\":{\"uid\":4294967296}}"

# ---- transport-level
api a1 PUT /v1/containers/bad "${J[@]}" --data-binary '{"command":["true"'
is "malformed JSON: 400" "$HTTP_CODE/$(json_get error.code "$HTTP_BODY")" 400/invalid_json
api a1 PUT /v1/containers/bad "${J[@]}" --data-binary '["true"]'
is "a JSON array body: 400" "$HTTP_CODE" 400
head -c $((1024 * 1024 + 10)) /dev/zero | tr '\0' ' ' >"$NA_TMP/big"
api a1 PUT /v1/containers/bad "${J[@]}" --data-binary @"$NA_TMP/big"
is "a body over 1 MiB: 413" "$HTTP_CODE" 413
api a1 PUT /v1/containers/Bad "${J[@]}" -d "{$C}"
is "a name with upper case: 422 field name" "$HTTP_CODE/$(json_get error.field "$HTTP_BODY")" 422/name
api a1 PUT /v1/containers/a..b "${J[@]}" -d "{$C}"
is "a name with '..': 422" "$HTTP_CODE" 422
api a1 PUT /v1/containers/a%2Fb "${J[@]}" -d "{$C}"
like "a name with an encoded '/': refused" "$HTTP_CODE" "^(404|422)$"
api a1 GET "/v1/containers/taken/logs?tail=0"
is "logs?tail=0: 422 field tail" "$HTTP_CODE/$(json_get error.field "$HTTP_BODY")" 422/tail
api a1 GET "/v1/containers/taken/logs?tail=x"
is "logs?tail=x: 422" "$HTTP_CODE" 422
api a1 DELETE "/v1/containers/taken?purge=maybe"
is "DELETE ?purge=maybe: 422, nothing deleted" "$HTTP_CODE/$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$(agent_sock a1)" http://x/v1/containers/taken)" 422/200
api a1 POST /v1/containers/ghost/start
is "POST start of an unknown container: 404" "$HTTP_CODE" 404
api a1 DELETE /v1/containers/ghost
is "DELETE of an unknown container: 404" "$HTTP_CODE" 404
api a1 GET /v1/containers/ghost/logs
is "logs of an unknown container: 404" "$HTTP_CODE" 404
api a1 POST /v1/containers/taken/frob
like "an unknown action: 404/405" "$HTTP_CODE" "^(404|405)$"

# ---- a command the runtime cannot start
bad 422 command "a command that does not exist" '{"command":["/no/such/binary"]}' nobin
like "the runtime's reason is in the message" "$(json_get error.message "$HTTP_BODY")" "no such file"

# ---- nothing was created by any of it
nothing_left() {
	local n=$1
	[ ! -e "$D/run/containers/$n" ] && [ ! -e "$D/run/ctns/$AG-$n" ] && [ ! -e "$D/run/runc/$AG-$n" ] &&
		[ ! -e "$D/state/containers/$n.json" ] && [ ! -e "$D/state/volumes/$n" ] &&
		! ls -d /sys/fs/cgroup/*/netagent/"$AG"/"$n" >/dev/null 2>&1 &&
		! pgrep -f "netagent-monitor --id $AG-$n " >/dev/null
}
for n in bad nobin; do
	check "nothing of '$n' exists (run dir, netns, runtime, state, volumes, cgroups, monitor)" nothing_left $n
done
api a1 GET /v1/containers
is "the list has only the good container" "$(json_get items "$HTTP_BODY" | $PY -c 'import json,sys; print([c["name"] for c in json.load(sys.stdin)])')" "['taken']"
api a1 GET /v1/networks/n1/endpoints
is "the network has only its endpoint" "$(json_get items "$HTTP_BODY" | $PY -c 'import json,sys; print([e["name"] for e in json.load(sys.stdin)])')" "['taken']"

# ---- a foreign runtime container with our id
B=$NA_TMP/foreign
mkdir -p "$B/rootfs"
cp "$D/run/containers/taken/bundle/config.json" "$B/config.json"
$PY - "$B/config.json" "$D/run/containers/taken/bundle/rootfs" "/netagent/$AG/clash" <<'PYEOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["root"]["path"] = sys.argv[2]
c["linux"]["cgroupsPath"] = sys.argv[3]
c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "network"] + [{"type": "network"}]
c["process"]["args"] = ["sleep", "100000"]
json.dump(c, open(sys.argv[1], "w"))
PYEOF
runc --root "$D/run/runc" run -d --bundle "$B" "$AG-clash" </dev/null >/dev/null 2>&1 || bail "cannot start the foreign container"
bad 409 name "a runtime container of that id runs, not ours" "{$C}" clash
is "it was left running" "$(runc --root "$D/run/runc" state "$AG-clash" | $PY -c 'import json,sys; print(json.load(sys.stdin)["status"])')" running
stop_agent a1
start_agent h1 a1 --reconcile-ms 3600000 || bail "agent a1 did not restart"
gone() { ! runc --root "$D/run/runc" state "$AG-clash" >/dev/null 2>&1; }
wait_for 10 gone && ok "the restarted agent's reconcile removed it" || not_ok "the restarted agent's reconcile removed it"
api a1 PUT /v1/containers/clash "${J[@]}" -d '{"command":["sleep","100000"],"stop_timeout_s":0}'
is "then the name is free: 201" "$HTTP_CODE" 201

# ---- leftovers of an interrupted create
# A kill -9 at some point of a create: after the restart either it was acknowledged (its state
# file exists and it runs) or nothing of it is left. Several cut points, by delay.
for delay in 0.05 0.1 0.15 0.2; do
	n=cut${delay#0.}
	curl -s --max-time 5 --unix-socket "$(agent_sock a1)" -X PUT -H 'Content-Type: application/json' \
		-d '{"command":["sleep","100000"],"stop_timeout_s":0,"networks":[{"network":"n1"}],"volumes":[{"name":"v","mount":"/v"}]}' \
		"http://x/v1/containers/$n" >/dev/null 2>&1 &
	sleep "$delay"
	kill_agent a1 -9
	wait
	start_agent h1 a1 --reconcile-ms 3600000 || bail "agent a1 did not restart"
	settled() {
		if [ -e "$D/state/containers/$n.json" ]; then
			api a1 GET "/v1/containers/$n"
			[ "$(json_get state "$HTTP_BODY")" = running ]
		else
			[ ! -e "$D/run/containers/$n" ] && [ ! -e "$D/run/ctns/$AG-$n" ] && [ ! -e "$D/run/runc/$AG-$n" ] &&
				! pgrep -f "netagent-monitor --id $AG-$n " >/dev/null &&
				! curl -sf --unix-socket "$(agent_sock a1)" "http://x/v1/networks/n1/endpoints/$n" >/dev/null
		fi
	}
	if wait_for 10 settled; then
		ok "kill -9 ${delay}s into a create: $([ -e "$D/state/containers/$n.json" ] && echo "acknowledged, running" || echo "collected, nothing left")"
	else
		not_ok "kill -9 ${delay}s into a create: consistent after the restart" \
			"state file: $(ls "$D/state/containers/" 2>&1)" "run dir: $(ls "$D/run/containers" 2>&1)" \
			"runc: $(ls "$D/run/runc" 2>&1)" "$(last_req)"
	fi
done
finish
