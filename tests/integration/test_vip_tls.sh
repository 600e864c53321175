#!/usr/bin/env bash
# VIP election over etcd with TLS and --client-cert-auth (SPEC §3, issue 7 "works with etcd
# over TLS"): one real etcd-server member serving https only to clients with a certificate
# of its CA. a1 (h1) and a2 (h2) connect with the agent's etcd client certificate; a3 (h3)
# trusts the right CA but presents a client certificate of another CA, so etcd refuses its
# handshakes. All three are candidates for the same VIP with a tcp check on a local service.
# Proves: exactly one of h1/h2 holds the VIP; a kill -9 of the holder's agent hands it to the
# other; with that one stopped too, a3 is the only healthy candidate left and still never
# holds it (no lease, no claim). A sampler of the three hosts' addresses at >= 20 Hz must
# never see the VIP on two hosts, and never on h3.
. "$(dirname "$0")/../lib.sh"

command -v etcd >/dev/null || bail "etcd not installed (make deps installs etcd-server)"

VIP=192.0.2.100
J=(-H 'Content-Type: application/json')
TTL=2 # the default lease TTL (NETAGENT_VIP_LEASE_TTL)
HOSTS="h1 h2 h3"

start_etcd_cluster 1 --tls || bail "etcd (TLS) did not start"
like "etcd serves https only" "$ETCD_URLS" '^https://'
for h in $HOSTS; do mkhost $h; done
PORT=$(pick_port h1)
for h in $HOSTS; do
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
for h in $HOSTS; do wait_for 5 in_host $h sh -c "ss -Htln | grep -q ':$PORT\\b'" || bail "service on $h did not start"; done

# The sampler: "ms h1 h2 h3 h1' h2' h3'" (1 = the VIP is there), tests/lib.sh's.
SAMPLES=$NA_TMP/samples
start_vip_sampler "$SAMPLES" "$VIP" $HOSTS
SAMPLER=$VIP_SAMPLER

mstime() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
has_vip() {
	local a
	a=$(in_host "$1" ip -o addr show dev eth0)
	[[ $a == *" $VIP/"* ]]
}
holder() {
	local h out=''
	for h in $HOSTS; do has_vip $h && out="$out${out:+ }$h"; done
	echo "$out"
}
holder_is() { [ "$(holder)" = "$1" ]; }
state_of() {
	api "$1" GET /v1/vips/gw
	json_get state "$HTTP_BODY"
}
col() { echo $((1 + ${1#h})); } # h1 → 2
first_sample() {
	awk -v t0="$1" -v c="$2" -v want="$3" '$1 >= t0 && $c == want { print $1 - t0; found = 1; exit }
		END { if (!found) print "none" }' "$SAMPLES"
}

TLS=(--etcd-ca "$PKI/ca.pem" --etcd-cert "$PKI/etcd-client.pem" --etcd-key "$PKI/etcd-client.key")
BADTLS=(--etcd-ca "$PKI/ca.pem" --etcd-cert "$PKI/other-client.pem" --etcd-key "$PKI/other-client.key")
start_agent h3 a3 --etcd "$ETCD_URLS" "${BADTLS[@]}" || bail "agent a3 did not start"
start_agent h1 a1 --etcd "$ETCD_URLS" "${TLS[@]}" || bail "agent a1 did not start"
start_agent h2 a2 --etcd "$ETCD_URLS" "${TLS[@]}" || bail "agent a2 did not start"
BODY='{"address":"'$VIP'/24","target":{"interface":"eth0"},"interval_ms":200,"rise":1,"fall":2,
 "checks":[{"type":"tcp","port":'$PORT'}]}'
# a3 first: were it able to claim, it would be the first candidate.
for a in a3 a1 a2; do
	api $a PUT /v1/vips/gw "${J[@]}" --data-binary "$BODY"
	is "PUT on $a (201)" "$HTTP_CODE" 201
done

one_of_12() { local x; x=$(holder); [ "$x" = h1 ] || [ "$x" = h2 ]; }
if wait_for 8 one_of_12; then ok "TLS: one holder among the agents with a valid certificate ($(holder))"; else not_ok "TLS: one holder among h1/h2" "holders: '$(holder)'" "$(tail -n 5 "$(agent_log a1)")"; fi
HOLDER=$(holder)
[ "$HOLDER" = h1 ] || [ "$HOLDER" = h2 ] || bail "no single holder to drill with"
OTHER=h1
[ "$HOLDER" = h1 ] && OTHER=h2
sleep 1
is "the holder is master over TLS" "$(state_of "a${HOLDER#h}")" master
api "a${OTHER#h}" GET /v1/vips/gw
is "the other valid agent is backup and names the holder" "$(json_get state "$HTTP_BODY")/$(json_get holder "$HTTP_BODY")" "backup/$(agent_name "a${HOLDER#h}")"
api a3 GET /v1/host
is "a3 (client certificate of another CA) has no lease" "$(json_get vip.lease "$HTTP_BODY")" null
isnt_master() { [ "$(state_of a3)" != master ]; }
check "a3 is not master" isnt_master

# kill -9 of the holder's agent: the other valid agent takes over within TTL + the tick.
T0=$(mstime)
kill_agent "a${HOLDER#h}"
if wait_for $((TTL + 3)) holder_is "$OTHER"; then
	sleep 0.2
	UP=$(first_sample "$T0" "$(col "$OTHER")" 1)
	GONE=$(first_sample "$T0" "$(col "$HOLDER")" 0)
	diag "kill -9 over TLS: old address gone after $GONE ms, new holder up after $UP ms"
	if [ "$UP" != none ] && [ "$UP" -le $((TTL * 1000 + 1000)) ]; then ok "kill -9 of the holder: $OTHER took over within $((TTL * 1000 + 1000)) ms ($UP ms)"; else not_ok "takeover within TTL + 1 s" "took $UP ms"; fi
else
	not_ok "kill -9 of the holder: $OTHER takes over" "holders: '$(holder)'"
fi

# The last valid agent stops: a3 is the only healthy candidate and must stay without the VIP.
T0=$(mstime)
stop_agent "a${OTHER#h}"
is "SIGTERM of the new holder: exit 0" "$?" 0
gone_all() { [ -z "$(holder)" ]; }
check "SIGTERM: the VIP is released" wait_for 2 gone_all
sleep $((TTL + 1))
is "a3 alone (invalid certificate) never took the VIP" "$(first_sample "$T0" 4 1)" none
check "a3 is still not master" isnt_master

kill $SAMPLER 2>/dev/null
wait $SAMPLER 2>/dev/null
read -r N BOTH H3 SPAN < <(awk 'NR == 1 { t0 = $1 } { n++; if ($5 + $6 + $7 >= 2) b++; if ($4 == 1) h3++; t = $1 } END { print n, b + 0, h3 + 0, t - t0 }' "$SAMPLES")
RATE=$((N * 1000 / (SPAN > 0 ? SPAN : 1)))
diag "sampler: $N samples over $SPAN ms ($RATE Hz), $BOTH with two holders, $H3 on h3"
[ "$RATE" -ge 20 ] && ok "sampler ran at >= 20 Hz ($RATE Hz)" || not_ok "sampler rate >= 20 Hz" "$RATE Hz"
is "no sample with the VIP on two hosts" "$BOTH" 0
is "no sample with the VIP on h3 (invalid certificate)" "$H3" 0

finish
