#!/usr/bin/env bash
# netagentctl against the real daemon: two simulated hosts with an agent each, a network
# across them, over the unix socket and over mTLS. Checks output shapes and exit codes
# (0 ok, 1 API error, 2 usage, 3 cannot connect). fake_api.py remains for one thing the
# daemon cannot show on demand: a drift report (the daemon repairs drift within ~300 ms of
# the netlink notification, before a CLI could print it).
. "$(dirname "$0")/../lib.sh"
cd "$NA_ROOT" || bail "no repo"
CTL=$NETAGENTCTL
out_f=$NA_TMP/out
err_f=$NA_TMP/err
rc=0

# check DESC CONDITION: CONDITION is evaluated after a ctl/ctl_raw call.
check_ctl() {
	if eval "$2"; then
		ok "$1"
	else
		not_ok "$1" "exit status: $rc" "out: $(head -c 800 "$out_f")" "err: $(head -c 400 "$err_f")"
	fi
}
ctl() {
	"$CTL" --socket "$S" "$@" >"$out_f" 2>"$err_f" </dev/null
	rc=$?
}
ctl_raw() { # without the default --socket
	"$CTL" "$@" >"$out_f" 2>"$err_f" </dev/null
	rc=$?
}
has() { grep -qE -- "$1" "$out_f"; }
err_has() { grep -qE -- "$1" "$err_f"; }
is_json() { "$PY" -m json.tool "$out_f" >/dev/null 2>&1; }
lines() { [ "$(wc -l <"$out_f")" -eq "$1" ]; }

mkhost h1
mkhost h2
mkpki
PORT=$(pick_port h1)
start_agent h1 a1 --listen "0.0.0.0:$PORT" --tls-cert "$PKI/server.pem" --tls-key "$PKI/server.key" \
	--tls-ca "$PKI/ca.pem" || bail "agent a1 did not start"
start_agent h2 a2 || bail "agent a2 did not start"
S=$(agent_sock a1)
S2=$(agent_sock a2)
A1=$(agent_name a1)
for c in c1 c2 c3 c4 x1; do ip netns add "${NA_P}$c" || bail "netns ${NA_P}$c"; done

# ---- agent ----
ctl status
check_ctl "status: table" '[ $rc -eq 0 ] && has "^NAME +STATUS +VERSION$" && has "^$A1 +ok +[0-9]+\.[0-9]+\.[0-9]+$"'
ctl -o json status
check_ctl "status -o json: pretty JSON" '[ $rc -eq 0 ] && is_json && has "^  \"status\": \"ok\",$"'
ctl status -o json
check_ctl "-o after the command works too" '[ $rc -eq 0 ] && is_json'
ctl host
check_ctl "host: flattened key/value lines" \
	'[ $rc -eq 0 ] && has "^underlay\.mtu +1500$" && has "^counts\.networks +0$" && has "^state\.quarantined +0$"'
ctl -o json host
check_ctl "host -o json" '[ $rc -eq 0 ] && is_json'

# ---- networks ----
ctl net apply n1 --vni 100 --subnet 198.18.1.0/24
check_ctl "net apply: created (201)" '[ $rc -eq 0 ] && has "^network n1 created$" && has "^vni +100$"'
ctl net apply n1 --vni 100 --subnet 198.18.1.0/24
check_ctl "net apply again: updated (200)" '[ $rc -eq 0 ] && has "^network n1 updated$"'
echo '{"vni": 200, "subnet": "198.18.2.0/24", "mtu": 1400}' >"$NA_TMP/n2.json"
ctl net apply n2 -f "$NA_TMP/n2.json"
check_ctl "net apply -f FILE" '[ $rc -eq 0 ] && has "^network n2 created$" && has "^mtu +1400$"'
"$CTL" --socket "$S" -o json net apply n2 -f - <"$NA_TMP/n2.json" >"$out_f" 2>"$err_f"
rc=$?
check_ctl "net apply -f - (stdin), -o json" '[ $rc -eq 0 ] && is_json && ! has "updated"'
ctl -o json net show n2
cp "$out_f" "$NA_TMP/n2-shown.json"
ctl net apply n2 -f "$NA_TMP/n2-shown.json" --mtu 1380
check_ctl "net apply -f with the output of net show -o json, flag overrides" \
	'[ $rc -eq 0 ] && has "^network n2 updated$" && has "^mtu +1380$"'
ctl net apply n3 --vni 100 --subnet 198.18.3.0/24
check_ctl "net apply: VNI in use → exit 1, error line with code and field" \
	'[ $rc -eq 1 ] && err_has "^error: .*\(vni_in_use, field vni\)$"'
ctl net apply n3 --vni 300 --subnet 198.18.3.1/24
check_ctl "net apply: 422 invalid field → exit 1" '[ $rc -eq 1 ] && err_has "\(invalid_field, field subnet\)$"'
ctl net apply n3 --vni 300
check_ctl "net apply without --subnet → exit 2 with usage" \
	'[ $rc -eq 2 ] && err_has "required" && err_has "^usage: netagentctl .*net apply"'
ctl net apply n3 --vni 12x --subnet 198.18.3.0/24
check_ctl "net apply --vni not a number → exit 2" '[ $rc -eq 2 ] && err_has "--vni"'
ctl net apply n3 --vni 16777216 --subnet 198.18.3.0/24
check_ctl "net apply --vni out of range → exit 2" '[ $rc -eq 2 ]'
echo '{"vni": ' >"$NA_TMP/bad.json"
ctl net apply n3 -f "$NA_TMP/bad.json"
check_ctl "net apply -f with invalid JSON → exit 1" '[ $rc -eq 1 ] && err_has "bad\.json"'
ctl net show n3
check_ctl "nothing was created by the refused applies" '[ $rc -eq 1 ] && err_has "\(not_found\)$"'
ctl net ls
check_ctl "net ls: table, the agent's namespace path" \
	'[ $rc -eq 0 ] && has "^NAME +VNI +SUBNET +MTU +LOCAL +REMOTE +NETNS$" && has "^n1 +100 +198\.18\.1\.0/24 +1450 +0 +0 +/.*/netns/$A1-n1$" && lines 3'
ns_n1=$(awk '$1 == "n1" {print $7}' "$out_f")
check "the NETNS column is the network's real namespace" test "$(stat -f -c %T "$ns_n1" 2>/dev/null)" = nsfs
ctl -o json net ls
check_ctl "net ls -o json: items" '[ $rc -eq 0 ] && is_json && has "\"items\": \["'
ctl net show n1
check_ctl "net show: key/value" '[ $rc -eq 0 ] && has "^vni +100$" && has "^endpoints\.local +0$"'
ctl net show nope
check_ctl "net show unknown → exit 1 (not_found)" '[ $rc -eq 1 ] && err_has "^error: .*\(not_found\)$"'
ctl net show ../n1
check_ctl "net show with an invalid name → exit 2, nothing sent" '[ $rc -eq 2 ] && err_has "invalid network name"'

# ---- endpoints: ep1, ep2 on a1; ep9 on a2; each agent told of the other's ----
ctl ep add n1 ep1 --netns "/run/netns/${NA_P}c1"
check_ctl "ep add local: IP allocated" '[ $rc -eq 0 ] && has "^endpoint ep1 created$" && has "^ip +198\.18\.1\.[0-9]+/24$"'
ep1_ip=$(awk '$1 == "ip" {print $2}' "$out_f")
ep1_mac=$(awk '$1 == "mac" {print $2}' "$out_f")
ctl ep add n1 ep2 --netns "/run/netns/${NA_P}c2" --ip 198.18.1.7/24 --ifname eth1 --mac 02:00:00:00:00:07
check_ctl "ep add local with --ip/--mac/--ifname" '[ $rc -eq 0 ] && has "^ifname +eth1$" && has "^mac +02:00:00:00:00:07$"'
check "the interface is in the target namespace with its address" \
	bash -c "ip -n ${NA_P}c2 -o addr show dev eth1 | grep -q '198.18.1.7/24'"
ctl ep add n1 ep3 --netns "/run/netns/${NA_P}c3" --ip 198.18.1.7/24
check_ctl "ep add with an IP in use → exit 1 (409)" '[ $rc -eq 1 ] && err_has "\(ip_in_use, field ip\)$"'
"$CTL" --socket "$S2" net apply n1 --vni 100 --subnet 198.18.1.0/24 >/dev/null 2>&1
"$CTL" --socket "$S2" ep add n1 ep9 --netns "/run/netns/${NA_P}x1" --ip 198.18.1.9/24 --mac 02:84:c6:12:01:09 >/dev/null 2>&1
for e in "ep1 $ep1_ip $ep1_mac" "ep2 198.18.1.7/24 02:00:00:00:00:07"; do
	set -- $e
	"$CTL" --socket "$S2" ep add n1 "$1" --remote --ip "$2" --mac "$3" --vtep "$(host_ip h1)" >/dev/null 2>&1
done
ctl ep add n1 r9 --remote --ip 198.18.1.9/24 --mac 02:84:c6:12:01:09 --vtep "$(host_ip h2)"
check_ctl "ep add --remote" '[ $rc -eq 0 ] && has "^remote endpoint r9 created$" && has "^vtep +192\.0\.2\.12$"'
ctl ep add n1 r2 --remote --ip 198.18.1.10/24 --mac 02:84:c6:12:01:0a
check_ctl "ep add --remote without --vtep → exit 2" '[ $rc -eq 2 ] && err_has "--vtep"'
ctl ep add n1 r2 --netns /x --vtep 192.0.2.13
check_ctl "ep add local with --vtep → exit 2" '[ $rc -eq 2 ]'
ctl ep add n1 r2
check_ctl "ep add without --netns → exit 2" '[ $rc -eq 2 ] && err_has "--netns"'
ctl ep add n1 bad --netns /proc/1/ns/net
check_ctl "ep add into the host's namespace → exit 1 (invalid_netns or invalid_field)" \
	'[ $rc -eq 1 ] && err_has "field netns\)$"'
ctl ep ls n1
check_ctl "ep ls: table with local and remote" \
	'[ $rc -eq 0 ] && has "^NAME +IP +MAC +IFNAME +LOCAL +VTEP +NETNS$" && has "^ep2 +198\.18\.1\.7/24 +02:00:00:00:00:07 +eth1 +true +192\.0\.2\.11 +/run/netns/${NA_P}c2$" && has "^r9 .* +false +192\.0\.2\.12 +-$"'
ctl -o json ep ls n1
check_ctl "ep ls -o json" '[ $rc -eq 0 ] && is_json'
ctl ep ls nope
check_ctl "ep ls of an unknown network → exit 1" '[ $rc -eq 1 ]'

# ---- debugging ----
ctl net inspect n1
check_ctl "net inspect in sync: sections and verdict" \
	'[ $rc -eq 0 ] && has "^LINKS$" && has "^FDB$" && has "^NEIGHBOURS$" && has "NAME +KIND +MTU +UP" && has "02:84:c6:12:01:09 +192\.0\.2\.12" && has "^in sync$"'
ctl -o json net inspect n1
check_ctl "net inspect -o json" '[ $rc -eq 0 ] && is_json && has "\"diff\": \["'
# ep1, ep2 → each other and r9 (on h2, over VXLAN): 4 paths, all answered for real.
if wait_for 10 bash -c "'$CTL' --socket '$S' net check n1 >/dev/null 2>&1"; then :; fi
ctl net check n1
check_ctl "net check all ok across hosts: table, exit 0" \
	'[ $rc -eq 0 ] && has "^FROM +TO +IP +RESULT +RTT$" && has "^ep1 +r9 +198\.18\.1\.9 +ok +[0-9.]+ ms$" && has "^ep2 +ep1 "'
ctl ep add n1 r8 --remote --ip 198.18.1.8/24 --mac 02:84:c6:12:01:08 --vtep 192.0.2.99
ctl net check n1
check_ctl "net check with a dead path (a remote on no host): exit 1 and N of M" \
	'[ $rc -eq 1 ] && has "^ep1 +r8 .*FAILED" && has "^2 of 6 paths failed$"'
ctl -o json net check n1
check_ctl "net check -o json: JSON, exit 1" '[ $rc -eq 1 ] && is_json && err_has "paths failed"'

# ---- net exec ----
ctl net exec n1 -- ip -o link show dev br0
check_ctl "net exec: runs in the network's namespace" '[ $rc -eq 0 ] && lines 1 && has "br0"'
ctl net exec n1 ip -o -4 addr show dev lo
check_ctl "net exec without --: the command keeps its dashes" '[ $rc -eq 0 ]'
ctl net exec n1 -- sh -c "exit 7"
check_ctl "net exec: the command's exit status" '[ $rc -eq 7 ]'
ctl net exec n1 -- /nonexistent/cmd
check_ctl "net exec: command not found → 127" '[ $rc -eq 127 ] && err_has "cannot run"'
ctl net exec nope -- true
check_ctl "net exec: unknown network → exit 1" '[ $rc -eq 1 ]'

# ---- events: follows the real stream; ends with exit 0 when the agent ends it ----
"$CTL" --socket "$S2" events >"$NA_TMP/ev.out" 2>"$NA_TMP/ev.err" &
EV=$!
"$CTL" --socket "$S2" -o json events >"$NA_TMP/evj.out" 2>"$NA_TMP/evj.err" &
EVJ=$!
track_pid $EV $EVJ
sleep 0.5
"$CTL" --socket "$S2" net apply ev1 --vni 901 --subnet 198.18.9.0/24 >/dev/null 2>&1
"$CTL" --socket "$S2" net rm ev1 >/dev/null 2>&1
wait_for 3 grep -q 'deleted' "$NA_TMP/ev.out"
stop_agent a2 5
wait $EV
rc=$?
cp "$NA_TMP/ev.out" "$out_f"
check_ctl "events: a table line per change, exit 0 when the agent ends the stream" \
	'[ $rc -eq 0 ] && has "^TS +TYPE +ACTION +NAME$" && has "^20[0-9-]+T[0-9:.]+Z +network +created +ev1$" && has "network +deleted +ev1$"'
wait $EVJ
rc=$?
cp "$NA_TMP/evj.out" "$out_f"
check_ctl "events -o json: one compact object per line, ids increasing" \
	'[ $rc -eq 0 ] && "$PY" -c "
import json, sys
seqs = [json.loads(l)[\"seq\"] for l in open(sys.argv[1])]
assert len(seqs) >= 2 and seqs == sorted(seqs), seqs" "$out_f"'
"$CTL" --socket "$S" events >"$out_f" 2>"$err_f" &
EV=$!
sleep 0.5
kill -INT "$EV"
wait "$EV"
rc=$?
check_ctl "events: Ctrl-C on an open stream exits 0" '[ $rc -eq 0 ]'

# ---- deletes ----
ctl net rm n1
check_ctl "net rm with local endpoints → exit 1 (409)" '[ $rc -eq 1 ] && err_has "\(has_endpoints\)$"'
ctl ep rm n1 r9 --remote
check_ctl "ep rm --remote" '[ $rc -eq 0 ] && has "^remote endpoint r9 deleted$"'
ctl ep rm n1 r9 --remote
check_ctl "ep rm of an absent endpoint → exit 1" '[ $rc -eq 1 ] && err_has "\(not_found\)$"'
ctl ep rm n1 ep2
check_ctl "ep rm local" '[ $rc -eq 0 ] && has "^endpoint ep2 deleted$"'
check "ep rm removed the interface from the target namespace" bash -c "! ip -n ${NA_P}c2 link show eth1 2>/dev/null"
ctl net rm n1 --force
check_ctl "net rm --force" '[ $rc -eq 0 ] && has "^network n1 deleted$"'
check "net rm removed the network's namespace" test ! -e "$ns_n1"
ctl net rm n1
check_ctl "net rm of an absent network → exit 1" '[ $rc -eq 1 ] && err_has "\(not_found\)$"'

# ---- usage and transport errors ----
ctl frobnicate
check_ctl "unknown command → exit 2 with usage" '[ $rc -eq 2 ] && err_has "unknown command" && err_has "^Commands:"'
ctl net
check_ctl "group without subcommand → exit 2" '[ $rc -eq 2 ] && err_has "net ls"'
ctl net ls --bogus
check_ctl "unknown option → exit 2" '[ $rc -eq 2 ] && err_has "unknown option --bogus"'
ctl net show
check_ctl "missing argument → exit 2" '[ $rc -eq 2 ] && err_has "^usage: .*net show NAME"'
ctl net show a b
check_ctl "too many arguments → exit 2" '[ $rc -eq 2 ]'
ctl -o yaml status
check_ctl "-o yaml → exit 2" '[ $rc -eq 2 ]'
ctl help
check_ctl "help lists the command table" '[ $rc -eq 0 ] && has "^  net inspect NAME" && has "^  ep add NET NAME"'
ctl_raw --help
check_ctl "--help" '[ $rc -eq 0 ] && has "^Commands:"'
ctl net apply --help
check_ctl "command --help shows its options" '[ $rc -eq 0 ] && has "--subnet CIDR" && has "-f, --file FILE"'
ctl_raw --socket "$NA_TMP/absent.sock" status
check_ctl "no agent on the socket → exit 3 with the reason" \
	'[ $rc -eq 3 ] && err_has "^error: cannot connect to .*absent\.sock: No such file or directory"'
ctl_raw --socket "$S2" status
check_ctl "a stopped agent's socket → exit 3" '[ $rc -eq 3 ]'
NETAGENT_SOCKET="$S" "$CTL" status >"$out_f" 2>"$err_f"
rc=$?
check_ctl "\$NETAGENT_SOCKET selects the socket" '[ $rc -eq 0 ] && has "^$A1 "'
ctl_raw --url http://192.0.2.1:7443 --cert a --key b --cacert c status
check_ctl "--url http:// refused → exit 2" '[ $rc -eq 2 ] && err_has "https"'
ctl_raw --url https://192.0.2.1:7443 status
check_ctl "--url without client certificate → exit 2" '[ $rc -eq 2 ] && err_has "--cert"'
ctl_raw --url https://192.0.2.1:7443 --cert a --key b --cacert c net exec n1 -- true
check_ctl "net exec with --url → exit 2" '[ $rc -eq 2 ] && err_has "local"'

# ---- mTLS against the agent's listener ----
tls() { # HOST-IP [args] command...: netagentctl --url from inside h1
	local ip=$1
	shift
	in_host h1 "$CTL" --url "https://$ip:$PORT" --cacert "$PKI/ca.pem" "$@" >"$out_f" 2>"$err_f" </dev/null
	rc=$?
}
cl=(--cert "$PKI/client.pem" --key "$PKI/client.key")
tls 127.0.0.1 "${cl[@]}" status
check_ctl "mTLS: status over --url" '[ $rc -eq 0 ] && has "^$A1 +ok"'
tls 127.0.0.1 "${cl[@]}" net apply t1 --vni 77 --subnet 198.18.7.0/24
check_ctl "mTLS: a change over --url" '[ $rc -eq 0 ] && has "^network t1 created$"'
tls 127.0.0.1 "${cl[@]}" net show nope
check_ctl "mTLS: API error → exit 1" '[ $rc -eq 1 ] && err_has "\(not_found\)$"'
tls 127.0.0.1 --cert "$PKI/other-client.pem" --key "$PKI/other-client.key" status
check_ctl "mTLS: client certificate from another CA → exit 3" '[ $rc -eq 3 ] && err_has "^error: "'
tls 127.0.0.1 --cert "$PKI/expired-client.pem" --key "$PKI/expired-client.key" status
check_ctl "mTLS: expired client certificate → exit 3" '[ $rc -eq 3 ]'
in_host h1 "$CTL" --url "https://127.0.0.1:$PORT" --cacert "$PKI/other-ca.pem" "${cl[@]}" status >"$out_f" 2>"$err_f"
rc=$?
check_ctl "mTLS: agent certificate not from --cacert → exit 3" \
	'[ $rc -eq 3 ] && err_has "cannot connect to https://127\.0\.0\.1:$PORT"'
tls "$(host_ip h1)" "${cl[@]}" status
check_ctl "mTLS: host name mismatch (certificate for 127.0.0.1/localhost only) → exit 3" '[ $rc -eq 3 ]'
tls "$(host_ip h1)" "${cl[@]}" --insecure-hostname status
check_ctl "mTLS: --insecure-hostname skips only the name check" '[ $rc -eq 0 ]'
p2=$(pick_port h1)
in_host h1 "$CTL" --url "https://127.0.0.1:$p2" --cacert "$PKI/ca.pem" "${cl[@]}" status >"$out_f" 2>"$err_f"
rc=$?
check_ctl "mTLS: nothing listening → exit 3" '[ $rc -eq 3 ]'

# ---- drift rendering (fake API: see the header) ----
FS=$NA_TMP/fake.sock
"$PY" "$NA_ROOT/tests/integration/fake_api.py" --socket "$FS" --netns-prefix "${NA_P}f" >"$NA_TMP/fake.log" 2>&1 &
track_pid $!
wait_for 5 grep -q ready "$NA_TMP/fake.log" || bail "fake API did not start"
"$CTL" --socket "$FS" net apply drift1 --vni 7 --subnet 198.18.7.0/24 >/dev/null 2>&1
"$CTL" --socket "$FS" net inspect drift1 >"$out_f" 2>"$err_f"
rc=$?
check_ctl "net inspect with drift: ! + ~ markers, N differences, exit 0" \
	'[ $rc -eq 0 ] && has "^  ! +02:84:c6:12:01:09" && has "^  \+ +198\.18\.1\.66 " && has "^  ~ +vx0 +vxlan +1500" && has "^3 differences$"'

finish
