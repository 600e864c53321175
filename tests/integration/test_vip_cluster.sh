#!/usr/bin/env bash
# VIP election over a 3-member etcd cluster (SPEC §3): two
# candidates h1, h2 whose preferred etcd endpoint is a follower. Killing that member (-9) must
# not move or drop the VIP (the renewal goes to another member within the fence margin); a
# kill -9 of the holder's agent then still hands over through the remaining two members. A
# sampler of both hosts' addresses at >= 20 Hz must never see the VIP twice.
. "$(dirname "$0")/../lib.sh"

command -v etcd >/dev/null || bail "etcd not installed (make deps installs etcd-server)"

VIP=192.0.2.100
J=(-H 'Content-Type: application/json')

start_etcd_cluster 3 || bail "etcd cluster did not start"
LEADER=$(etcd_leader)
[ "$LEADER" != 0 ] || bail "etcd cluster has no leader"
for i in 1 2 3; do [ "$i" != "$LEADER" ] && FOLLOWER=$i && break; done
# The follower first: the agents prefer it.
URLS=$(etcd_url "$FOLLOWER")
for i in 1 2 3; do [ "$i" != "$FOLLOWER" ] && URLS="$URLS,$(etcd_url $i)"; done
# start_etcd_cluster runs each member under a subshell: signal etcd itself (our child, by id).
member_pid() {
	local p
	p=$(pgrep -P "$(etcd_pid "$1")" -x etcd | head -n1)
	echo "${p:-$(etcd_pid "$1")}"
}

mkhost h1
mkhost h2
PORT=$(pick_port h1)
for h in h1 h2; do
	nsenter --net="/run/netns/$(hostns $h)" "$PY" -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(64)
while True:
    c, _ = s.accept()
    c.close()
' "$PORT" </dev/null >/dev/null 2>&1 &
	track_pid $!
done

SAMPLES=$NA_TMP/samples
# tests/lib.sh's netlink sampler: same columns, 150+ Hz under load.
start_vip_sampler "$SAMPLES" "$VIP" h1 h2
SAMPLER=$VIP_SAMPLER

mstime() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
has_vip() {
	local a
	a=$(in_host "$1" ip -o addr show dev eth0)
	[[ $a == *" $VIP/"* ]]
}
holder() {
	local h out=''
	for h in h1 h2; do has_vip $h && out="$out${out:+ }$h"; done
	echo "$out"
}
one_holder() { [ "$(holder | wc -w)" = 1 ]; }
col() { [ "$1" = h1 ] && echo 2 || echo 3; }
# samples since T0 where column COL is VALUE
count() { awk -v t0="$1" -v c="$2" -v want="$3" '$1 >= t0 && $c == want { n++ } END { print n + 0 }' "$SAMPLES"; }
first_sample() {
	awk -v t0="$1" -v c="$2" -v want="$3" '$1 >= t0 && $c == want { print $1 - t0; found = 1; exit }
		END { if (!found) print "none" }' "$SAMPLES"
}

start_agent h1 a1 --etcd "$URLS" || bail "agent a1 did not start"
start_agent h2 a2 --etcd "$URLS" || bail "agent a2 did not start"
BODY='{"address":"'$VIP'/24","target":{"interface":"eth0"},"interval_ms":200,"rise":1,"checks":[{"type":"tcp","port":'$PORT'}]}'
for a in a1 a2; do
	api $a PUT /v1/vips/gw "${J[@]}" --data-binary "$BODY"
	[ "$HTTP_CODE" = 201 ] || bail "PUT on $a: $(last_req)"
done
if wait_for 5 one_holder; then ok "3-member cluster: one holder ($(holder))"; else not_ok "one holder" "holders: '$(holder)'"; fi
sleep 1
HOLDER=$(holder)

# The agents' preferred member dies: the holder keeps the VIP throughout.
T0=$(mstime)
P=$(member_pid "$FOLLOWER")
[ -n "$P" ] || bail "no etcd process for member $FOLLOWER"
kill -9 "$P"
wait "$P" 2>/dev/null
sleep 4
is "member $FOLLOWER killed: $HOLDER kept the VIP (samples without it)" "$(count "$T0" "$(col "$HOLDER")" 0)" 0
is "member $FOLLOWER killed: still one holder" "$(holder)" "$HOLDER"
api "a${HOLDER#h}" GET /v1/vips/gw
is "the holder is still master" "$(json_get state "$HTTP_BODY")" master

# kill -9 of the holder's agent: takeover through the two members left.
OTHER=h1
[ "$HOLDER" = h1 ] && OTHER=h2
T0=$(mstime)
kill_agent "a${HOLDER#h}"
moved() { [ "$(holder)" = "$OTHER" ]; }
if wait_for 5 moved; then
	sleep 0.2
	ok "kill -9 of the holder: $OTHER took over ($(first_sample "$T0" "$(col "$OTHER")" 1) ms; old address gone after $(first_sample "$T0" "$(col "$HOLDER")" 0) ms)"
else
	not_ok "kill -9 of the holder: $OTHER takes over" "holders: '$(holder)'"
fi

kill $SAMPLER 2>/dev/null
wait $SAMPLER 2>/dev/null
read -r N BOTH SPAN < <(awk 'NR == 1 { t0 = $1 } { n++; if ($4 == 1 && $5 == 1) b++; t = $1 } END { print n, b + 0, t - t0 }' "$SAMPLES")
RATE=$((N * 1000 / (SPAN > 0 ? SPAN : 1)))
diag "sampler: $N samples over $SPAN ms ($RATE Hz), $BOTH with two holders"
[ "$RATE" -ge 20 ] && ok "sampler ran at >= 20 Hz ($RATE Hz)" || not_ok "sampler rate >= 20 Hz" "$RATE Hz"
is "no sample with the VIP on both hosts" "$BOTH" 0

finish
