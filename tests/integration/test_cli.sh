#!/usr/bin/env bash
# netagentctl's contract test: the CLI against fake_api.py (a stdlib stand-in
# for the agent's v1 API) over a unix socket, and over mTLS inside a network
# namespace of our own. Checks output shapes and exit codes
# (0 ok, 1 API error, 2 usage, 3 cannot connect). Prints TAP.
set -u

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
CTL=${NETAGENTCTL:-$top/bin/netagentctl}
FAKE="$here/fake_api.py"
# Debian's interpreter when there is one (as tests/lib.sh does); the fake
# needs only the standard library.
if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY=python3; fi
tmp=$(mktemp -d /tmp/nactl-test.XXXXXX)
P="nt$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')-" # prefix of our namespaces
SOCK="$tmp/api.sock"
pids=()
namespaces=()

cleanup() {
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	for ns in "${namespaces[@]}"; do
		ip netns del "$ns" 2>/dev/null
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

n=0
failed=0
t_ok() {
	n=$((n + 1))
	echo "ok $n - $*"
}
t_fail() {
	n=$((n + 1))
	failed=$((failed + 1))
	echo "not ok $n - $*"
	echo "#   exit status: $rc"
	sed 's/^/#   out: /' "$tmp/out" | head -15
	sed 's/^/#   err: /' "$tmp/err" | head -15
}
t_skip() {
	n=$((n + 1))
	echo "ok $n - $* # SKIP"
}
# check DESC CONDITION: CONDITION is evaluated after a ctl/ctl_in call.
check() {
	if eval "$2"; then t_ok "$1"; else t_fail "$1"; fi
}
ctl() {
	"$CTL" --socket "$SOCK" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
	rc=$?
}
ctl_raw() { # without the default --socket
	"$CTL" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
	rc=$?
}
has() { grep -qE -- "$1" "$tmp/out"; }
err_has() { grep -qE -- "$1" "$tmp/err"; }
is_json() { "$PY" -m json.tool "$tmp/out" >/dev/null 2>&1; }
lines() { [ "$(wc -l <"$tmp/out")" -eq "$1" ]; }

# start_fake LOG ARGS...: starts fake_api.py, waits for "ready".
start_fake() {
	local log=$1
	shift
	"$@" >"$log" 2>&1 &
	pids+=($!)
	for _ in $(seq 100); do
		grep -q ready "$log" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "# fake API did not start:" && sed 's/^/#   /' "$log"
	return 1
}

[ -x "$CTL" ] || {
	echo "1..0 # SKIP $CTL not built"
	exit 0
}
start_fake "$tmp/fake.log" "$PY" "$FAKE" --socket "$SOCK" --netns-prefix "$P" || exit 1

# ---- agent ----
ctl status
check "status: table" '[ $rc -eq 0 ] && has "^NAME +STATUS +VERSION$" && has "^fake +ok +0\.1\.0$"'
ctl -o json status
check "status -o json: pretty JSON" '[ $rc -eq 0 ] && is_json && has "^  \"status\": \"ok\",$"'
ctl status -o json
check "-o after the command works too" '[ $rc -eq 0 ] && is_json'
ctl host
check "host: flattened key/value lines" \
	'[ $rc -eq 0 ] && has "^underlay\.mtu +1500$" && has "^counts\.networks +0$" && has "^state\.quarantined +0$"'
ctl -o json host
check "host -o json" '[ $rc -eq 0 ] && is_json'

# ---- networks ----
ctl net apply n1 --vni 100 --subnet 198.18.1.0/24
check "net apply: created (201)" '[ $rc -eq 0 ] && has "^network n1 created$" && has "^vni +100$"'
ctl net apply n1 --vni 100 --subnet 198.18.1.0/24
check "net apply again: updated (200)" '[ $rc -eq 0 ] && has "^network n1 updated$"'
echo '{"vni": 200, "subnet": "198.18.2.0/24", "mtu": 1400}' >"$tmp/n2.json"
ctl net apply n2 -f "$tmp/n2.json"
check "net apply -f FILE" '[ $rc -eq 0 ] && has "^network n2 created$" && has "^mtu +1400$"'
"$CTL" --socket "$SOCK" -o json net apply n2 -f - <"$tmp/n2.json" >"$tmp/out" 2>"$tmp/err"
rc=$?
check "net apply -f - (stdin), -o json" '[ $rc -eq 0 ] && is_json && ! has "updated"'
ctl -o json net show n2
cp "$tmp/out" "$tmp/n2-shown.json"
ctl net apply n2 -f "$tmp/n2-shown.json" --mtu 1380
check "net apply -f with the output of net show -o json, flag overrides" \
	'[ $rc -eq 0 ] && has "^network n2 updated$" && has "^mtu +1380$"'
ctl net apply n3 --vni 100 --subnet 198.18.3.0/24
check "net apply: VNI in use → exit 1, error line with code and field" \
	'[ $rc -eq 1 ] && err_has "^error: vni 100 is used by network n1 \(vni_in_use, field vni\)$"'
ctl net apply n3 --vni 300 --subnet 198.18.3.1/24
check "net apply: 422 invalid field → exit 1" '[ $rc -eq 1 ] && err_has "\(invalid_field, field subnet\)$"'
ctl net apply n3 --vni 300
check "net apply without --subnet → exit 2 with usage" \
	'[ $rc -eq 2 ] && err_has "required" && err_has "^usage: netagentctl .*net apply"'
ctl net apply n3 --vni 12x --subnet 198.18.3.0/24
check "net apply --vni not a number → exit 2" '[ $rc -eq 2 ] && err_has "--vni"'
ctl net apply n3 --vni 16777216 --subnet 198.18.3.0/24
check "net apply --vni out of range → exit 2" '[ $rc -eq 2 ]'
echo '{"vni": ' >"$tmp/bad.json"
ctl net apply n3 -f "$tmp/bad.json"
check "net apply -f with invalid JSON → exit 1" '[ $rc -eq 1 ] && err_has "bad\.json"'
ctl net ls
check "net ls: table" \
	'[ $rc -eq 0 ] && has "^NAME +VNI +SUBNET +MTU +LOCAL +REMOTE +NETNS$" && has "^n1 +100 +198\.18\.1\.0/24 +1450 +0 +0 +/run/netns/${P}n1$" && lines 3'
ctl -o json net ls
check "net ls -o json: items" '[ $rc -eq 0 ] && is_json && has "\"items\": \["'
ctl net show n1
check "net show: key/value" '[ $rc -eq 0 ] && has "^vni +100$" && has "^endpoints\.local +0$"'
ctl net show nope
check "net show unknown → exit 1 (not_found)" '[ $rc -eq 1 ] && err_has "^error: .*\(not_found\)$"'
ctl net show ../n1
check "net show with an invalid name → exit 2, nothing sent" '[ $rc -eq 2 ] && err_has "invalid network name"'

# ---- endpoints ----
ctl ep add n1 ep1 --netns /run/netns/c1
check "ep add local: IP allocated" '[ $rc -eq 0 ] && has "^endpoint ep1 created$" && has "^ip +198\.18\.1\.2/24$"'
ctl ep add n1 ep2 --netns /run/netns/c2 --ip 198.18.1.7/24 --ifname eth1 --mac 02:00:00:00:00:07
check "ep add local with --ip/--mac/--ifname" '[ $rc -eq 0 ] && has "^ifname +eth1$" && has "^mac +02:00:00:00:00:07$"'
ctl ep add n1 ep3 --netns /run/netns/c3 --ip 198.18.1.7/24
check "ep add with an IP in use → exit 1 (409)" '[ $rc -eq 1 ] && err_has "\(ip_in_use, field ip\)$"'
ctl ep add n1 r1 --remote --ip 198.18.1.9/24 --mac 02:84:c6:12:01:09 --vtep 192.0.2.12
check "ep add --remote" '[ $rc -eq 0 ] && has "^remote endpoint r1 created$" && has "^vtep +192\.0\.2\.12$"'
ctl ep add n1 r2 --remote --ip 198.18.1.10/24 --mac 02:84:c6:12:01:0a
check "ep add --remote without --vtep → exit 2" '[ $rc -eq 2 ] && err_has "--vtep"'
ctl ep add n1 r2 --netns /x --vtep 192.0.2.13
check "ep add local with --vtep → exit 2" '[ $rc -eq 2 ]'
ctl ep add n1 r2
check "ep add without --netns → exit 2" '[ $rc -eq 2 ] && err_has "--netns"'
ctl ep ls n1
check "ep ls: table with local and remote" \
	'[ $rc -eq 0 ] && has "^NAME +IP +MAC +IFNAME +LOCAL +VTEP +NETNS$" && has "^ep1 +198\.18\.1\.2/24 +02:84:c6:12:01:02 +eth0 +true +192\.0\.2\.10 +/run/netns/c1$" && has "^r1 .* +false +192\.0\.2\.12 +-$"'
ctl -o json ep ls n1
check "ep ls -o json" '[ $rc -eq 0 ] && is_json'
ctl ep ls nope
check "ep ls of an unknown network → exit 1" '[ $rc -eq 1 ]'

# ---- debugging ----
ctl net inspect n1
check "net inspect in sync: sections and verdict" \
	'[ $rc -eq 0 ] && has "^LINKS$" && has "^FDB$" && has "^NEIGHBOURS$" && has "NAME +KIND +MTU +UP" && has "02:84:c6:12:01:09 +192\.0\.2\.12" && has "^in sync$"'
ctl net apply drift1 --vni 7 --subnet 198.18.7.0/24
ctl net inspect drift1
check "net inspect with drift: ! + ~ markers, N differences, exit 0" \
	'[ $rc -eq 0 ] && has "^  ! +02:84:c6:12:01:09" && has "^  \+ +198\.18\.1\.66 " && has "^  ~ +vx0 +vxlan +1500" && has "^3 differences$"'
ctl -o json net inspect drift1
check "net inspect -o json" '[ $rc -eq 0 ] && is_json && has "\"diff\": \["'
ctl net check n1
check "net check all ok: table, exit 0" '[ $rc -eq 0 ] && has "^FROM +TO +IP +RESULT +RTT$" && has "^ep1 +r1 +198\.18\.1\.9 +ok +0\.200 ms$"'
ctl ep add n1 ep-down --netns /run/netns/c4
ctl net check n1
check "net check with a failed path: exit 1 and N of M" \
	'[ $rc -eq 1 ] && has "FAILED \(no reply" && has "^2 of 9 paths failed$"'
ctl -o json net check n1
check "net check -o json: JSON, exit 1" '[ $rc -eq 1 ] && is_json && err_has "paths failed"'

# ---- deletes ----
ctl net rm n1
check "net rm with local endpoints → exit 1 (409)" '[ $rc -eq 1 ] && err_has "\(has_endpoints\)$"'
ctl ep rm n1 r1 --remote
check "ep rm --remote" '[ $rc -eq 0 ] && has "^remote endpoint r1 deleted$"'
ctl ep rm n1 r1 --remote
check "ep rm of an absent endpoint → exit 1" '[ $rc -eq 1 ] && err_has "\(not_found\)$"'
ctl ep rm n1 ep2
check "ep rm local" '[ $rc -eq 0 ] && has "^endpoint ep2 deleted$"'
ctl net rm n1 --force
check "net rm --force" '[ $rc -eq 0 ] && has "^network n1 deleted$"'
ctl net rm n1
check "net rm of an absent network → exit 1" '[ $rc -eq 1 ] && err_has "\(not_found\)$"'

# ---- events ----
ctl events
check "events: 3 events then exit 0 when the server ends the stream" \
	'[ $rc -eq 0 ] && lines 4 && has "^TS +TYPE +ACTION +NAME$" && has "^2024-05-01T10:00:01\.000Z +endpoint +created +ep1$" && has "deleted +n1$"'
ctl -o json events
check "events -o json: one compact object per line" \
	'[ $rc -eq 0 ] && lines 3 && "$PY" -c "
import json, sys
seqs = [json.loads(l)[\"seq\"] for l in open(sys.argv[1])]
assert seqs == [1, 2, 3], seqs" "$tmp/out"'
hold_sock="$tmp/hold.sock"
if start_fake "$tmp/hold.log" "$PY" "$FAKE" --socket "$hold_sock" --events-hold; then
	"$CTL" --socket "$hold_sock" events >"$tmp/out" 2>"$tmp/err" &
	ev=$!
	for _ in $(seq 100); do
		[ "$(wc -l <"$tmp/out")" -ge 4 ] && break
		sleep 0.05
	done
	kill -INT "$ev"
	wait "$ev"
	rc=$?
	check "events: Ctrl-C on an open stream exits 0" '[ $rc -eq 0 ] && lines 4'
else
	t_fail "events: Ctrl-C (fake did not start)"
fi

# ---- usage and transport errors ----
ctl frobnicate
check "unknown command → exit 2 with usage" '[ $rc -eq 2 ] && err_has "unknown command" && err_has "^Commands:"'
ctl net
check "group without subcommand → exit 2" '[ $rc -eq 2 ] && err_has "net ls"'
ctl net ls --bogus
check "unknown option → exit 2" '[ $rc -eq 2 ] && err_has "unknown option --bogus"'
ctl net show
check "missing argument → exit 2" '[ $rc -eq 2 ] && err_has "^usage: .*net show NAME"'
ctl net show a b
check "too many arguments → exit 2" '[ $rc -eq 2 ]'
ctl -o yaml status
check "-o yaml → exit 2" '[ $rc -eq 2 ]'
ctl help
check "help lists the command table" '[ $rc -eq 0 ] && has "^  net inspect NAME" && has "^  ep add NET NAME"'
ctl_raw --help
check "--help" '[ $rc -eq 0 ] && has "^Commands:"'
ctl net apply --help
check "command --help shows its options" '[ $rc -eq 0 ] && has "--subnet CIDR" && has "-f, --file FILE"'
ctl_raw --socket "$tmp/absent.sock" status
check "no agent on the socket → exit 3 with the reason" \
	'[ $rc -eq 3 ] && err_has "^error: cannot connect to .*absent\.sock: No such file or directory"'
NETAGENT_SOCKET="$SOCK" "$CTL" status >"$tmp/out" 2>"$tmp/err"
rc=$?
check "\$NETAGENT_SOCKET selects the socket" '[ $rc -eq 0 ] && has "^fake"'
ctl_raw --url http://192.0.2.1:7443 --cert a --key b --cacert c status
check "--url http:// refused → exit 2" '[ $rc -eq 2 ] && err_has "https"'
ctl_raw --url https://192.0.2.1:7443 status
check "--url without client certificate → exit 2" '[ $rc -eq 2 ] && err_has "--cert"'
ctl_raw --url https://192.0.2.1:7443 --cert a --key b --cacert c net exec n1 -- true
check "net exec with --url → exit 2" '[ $rc -eq 2 ] && err_has "local"'

# ---- net exec and mTLS: need namespaces (root) ----
if ip netns add "${P}ex" 2>/dev/null; then
	namespaces+=("${P}ex")
	ctl net apply ex --vni 9 --subnet 198.18.9.0/24
	ctl net exec ex -- ip -o link show
	check "net exec: runs in the network's namespace" '[ $rc -eq 0 ] && lines 1 && has "^1: lo:"'
	ctl net exec ex ip -o -4 addr show dev lo
	check "net exec without --: the command keeps its dashes" '[ $rc -eq 0 ]'
	ctl net exec ex -- sh -c "exit 7"
	check "net exec: the command's exit status" '[ $rc -eq 7 ]'
	ctl net exec ex -- /nonexistent/cmd
	check "net exec: command not found → 127" '[ $rc -eq 127 ] && err_has "cannot run"'
	ctl net apply gone --vni 10 --subnet 198.18.10.0/24
	ctl net exec gone -- true
	check "net exec: namespace path missing → exit 1" '[ $rc -eq 1 ] && err_has "cannot open"'
else
	for d in "net exec" "net exec --" "net exec status" "net exec 127" "net exec no netns"; do
		t_skip "$d (cannot create a network namespace)"
	done
fi

tls_ns="${P}tls"
if ip netns add "$tls_ns" 2>/dev/null; then
	namespaces+=("$tls_ns")
	ip -n "$tls_ns" link set lo up
	c="$tmp/pki"
	mkdir -p "$c"
	mkcert() { # name subj ext [ca]
		local ca=${4:-ca}
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
			-keyout "$c/$1.key" -out "$c/$1.csr" -subj "$2" 2>/dev/null &&
			printf '%s\n' "$3" >"$c/$1.ext" &&
			openssl x509 -req -in "$c/$1.csr" -CA "$c/$ca.crt" -CAkey "$c/$ca.key" \
				-CAcreateserial -days 1 -out "$c/$1.crt" -extfile "$c/$1.ext" 2>/dev/null
	}
	for ca in ca other-ca; do
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
			-keyout "$c/$ca.key" -out "$c/$ca.crt" -days 1 -subj "/CN=$ca" 2>/dev/null
	done
	mkcert srv "/CN=agent" "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth"
	mkcert srv-other-name "/CN=agent" "subjectAltName=DNS:agent.example
extendedKeyUsage=serverAuth"
	mkcert client "/CN=controller" "extendedKeyUsage=clientAuth"
	mkcert rogue "/CN=rogue" "extendedKeyUsage=clientAuth" other-ca
	# Not a function in start_fake: nsenter execs, so $! is the server.
	in_ns() { nsenter --net="/run/netns/$tls_ns" "$@"; }
	tls() { # port [extra args] command...
		local port=$1
		shift
		in_ns "$CTL" --url "https://127.0.0.1:$port" --cacert "$c/ca.crt" "$@" \
			>"$tmp/out" 2>"$tmp/err" </dev/null
		rc=$?
	}
	cl=(--cert "$c/client.crt" --key "$c/client.key")
	if start_fake "$tmp/tls1.log" nsenter --net="/run/netns/$tls_ns" "$PY" "$FAKE" --tls-listen 127.0.0.1:7443 \
		--cert "$c/srv.crt" --key "$c/srv.key" --ca "$c/ca.crt" &&
		start_fake "$tmp/tls2.log" nsenter --net="/run/netns/$tls_ns" "$PY" "$FAKE" --tls-listen 127.0.0.1:7444 \
			--cert "$c/srv-other-name.crt" --key "$c/srv-other-name.key" --ca "$c/ca.crt"; then
		tls 7443 "${cl[@]}" status
		check "mTLS: status over --url" '[ $rc -eq 0 ] && has "^fake +ok"'
		tls 7443 "${cl[@]}" net show nope
		check "mTLS: API error → exit 1" '[ $rc -eq 1 ] && err_has "\(not_found\)$"'
		tls 7443 --cert "$c/rogue.crt" --key "$c/rogue.key" status
		check "mTLS: client certificate from another CA → exit 3" '[ $rc -eq 3 ] && err_has "^error: "'
		in_ns "$CTL" --url https://127.0.0.1:7443 --cacert "$c/other-ca.crt" "${cl[@]}" status \
			>"$tmp/out" 2>"$tmp/err"
		rc=$?
		check "mTLS: agent certificate not from --cacert → exit 3" \
			'[ $rc -eq 3 ] && err_has "cannot connect to https://127\.0\.0\.1:7443"'
		tls 7444 "${cl[@]}" status
		check "mTLS: host name mismatch → exit 3" '[ $rc -eq 3 ]'
		tls 7444 "${cl[@]}" --insecure-hostname status
		check "mTLS: --insecure-hostname skips only the name check" '[ $rc -eq 0 ]'
		tls 7445 "${cl[@]}" status
		check "mTLS: nothing listening → exit 3" '[ $rc -eq 3 ]'
	else
		t_fail "mTLS fake servers did not start"
	fi
else
	for d in status api-error rogue-client wrong-ca name-mismatch insecure-hostname refused; do
		t_skip "mTLS $d (cannot create a network namespace)"
	done
fi

echo "1..$n"
[ "$failed" -eq 0 ]
