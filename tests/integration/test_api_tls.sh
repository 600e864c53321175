#!/usr/bin/env bash
# mTLS transport (SPEC §4): TLS 1.2+, a client certificate chaining to --tls-ca is required;
# the unix socket is mode 0600. A client that never handshakes does not stall others.
. "$(dirname "$0")/../lib.sh"

HDR_MS=1500
mkpki
mkhost h1
PORT=$(pick_port h1)
start_agent h1 a1 --listen "127.0.0.1:$PORT" --tls-cert "$PKI/server.pem" --tls-key "$PKI/server.key" \
	--tls-ca "$PKI/ca.pem" --header-timeout-ms $HDR_MS || bail "agent did not start"
URL="https://127.0.0.1:$PORT"

# tls_get [CURL ARGS…] PATH: GET over mTLS inside h1; sets CODE and RC, body in $NA_TMP/tls.body.
tls_get() {
	local path=${*: -1}
	CODE=$(in_host h1 curl -sS --max-time 5 --cacert "$PKI/ca.pem" -o "$NA_TMP/tls.body" -w '%{http_code}' \
		"${@:1:$#-1}" "$URL$path" 2>"$NA_TMP/tls.err")
	RC=$?
}
CLIENT=(--cert "$PKI/client.pem" --key "$PKI/client.key")

tls_get "${CLIENT[@]}" /v1/health
is "controller client cert → 200 /v1/health" "$CODE" 200
body=$(cat "$NA_TMP/tls.body")
is "health says status ok" "$(json_get status "$body")" ok
is "health names the agent" "$(json_get name "$body")" "$(agent_name a1)"
check "health has a version" test -n "$(json_get version "$body")"

tls_get "${CLIENT[@]}" --tls-max 1.2 /v1/host
is "TLS 1.2 with client cert → 200 /v1/host" "$CODE" 200

# rejected ATTEMPT DESC: the handshake must fail — no HTTP status at all.
rejected() {
	if [ "$RC" -ne 0 ] && [ "$CODE" = 000 ]; then
		ok "$1 (curl exit $RC)"
	else
		not_ok "$1" "curl exit $RC, HTTP status $CODE" "$(cat "$NA_TMP/tls.err")"
	fi
}
tls_get /v1/health
rejected "no client certificate → handshake fails"
tls_get --cert "$PKI/expired-client.pem" --key "$PKI/expired-client.key" /v1/health
rejected "expired client certificate → handshake fails"
tls_get --cert "$PKI/other-client.pem" --key "$PKI/other-client.key" /v1/health
rejected "client certificate from another CA → handshake fails"
# curl refuses TLS 1.1 itself at OpenSSL's default security level; SECLEVEL=0 makes it offer
# TLS 1.1 for real, so that it is the server that refuses.
tls_get "${CLIENT[@]}" --tls-max 1.1 --ciphers 'DEFAULT:@SECLEVEL=0' /v1/health
rejected "TLS 1.1 → handshake fails"
tls_get "${CLIENT[@]}" --tls-max 1.0 --ciphers 'DEFAULT:@SECLEVEL=0' /v1/health
rejected "TLS 1.0 → handshake fails"
if command -v openssl >/dev/null; then
	out=$(in_host h1 timeout 5 openssl s_client -connect "127.0.0.1:$PORT" -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' \
		-cert "$PKI/client.pem" -key "$PKI/client.key" -CAfile "$PKI/ca.pem" </dev/null 2>&1)
	if grep -q 'Protocol *: TLSv1.1' <<<"$out" && ! grep -qiE 'alert|error' <<<"$out"; then
		not_ok "openssl s_client -tls1_1 → no TLS 1.1 session" "$(grep -E 'Protocol|Cipher' <<<"$out")"
	else
		ok "openssl s_client -tls1_1 → no TLS 1.1 session"
	fi
fi
CODE=$(in_host h1 curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/v1/health" 2>/dev/null)
if [ "$CODE" != 200 ]; then ok "plain HTTP on the TLS port → no 200 (got $CODE)"; else not_ok "plain HTTP on the TLS port → no 200"; fi

tls_get "${CLIENT[@]}" /v1/health
is "service continues after rejected handshakes" "$CODE" 200

# A TCP client that never starts the handshake is cut off and does not stall others.
cat >"$NA_TMP/silent.py" <<'EOF'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
t0 = time.time()
try:
    while s.recv(4096):
        pass
except OSError:
    pass
print("%.2f" % (time.time() - t0))
EOF
in_host h1 "$PY" "$NA_TMP/silent.py" "$PORT" >"$NA_TMP/silent.out" 2>&1 &
SPID=$!
track_pid $SPID
sleep 0.3
t0=$(now_ms)
tls_get "${CLIENT[@]}" /v1/health
dt=$(($(now_ms) - t0))
if [ "$CODE" = 200 ] && [ $dt -lt 1000 ]; then
	ok "request completes in < 1 s while a silent TCP client is connected (${dt} ms)"
else
	not_ok "request completes in < 1 s while a silent TCP client is connected" "status $CODE after ${dt} ms"
fi
wait $SPID
el=$(cat "$NA_TMP/silent.out")
lim=$(((HDR_MS + 2000) / 1000))
if [[ $el =~ ^[0-9.]+$ ]] && "$PY" -c "import sys; sys.exit(0 if $el <= $lim else 1)"; then
	ok "silent TCP client is cut off within header timeout + 2 s (${el} s)"
else
	not_ok "silent TCP client is cut off within header timeout + 2 s" "got: $el"
fi

# 50 concurrent mTLS clients.
cat >"$NA_TMP/tlsload.py" <<'EOF'
import http.client, ssl, sys, threading
port, pki, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
ctx = ssl.create_default_context(cafile=pki + "/ca.pem")
ctx.load_cert_chain(pki + "/client.pem", pki + "/client.key")
res, bar = [], threading.Barrier(n)
def one():
    try:
        bar.wait(10)
        c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=15)
        c.request("GET", "/v1/health")
        res.append(c.getresponse().status)
    except Exception as e:
        res.append(repr(e))
ts = [threading.Thread(target=one) for _ in range(n)]
[t.start() for t in ts]
[t.join() for t in ts]
bad = [r for r in res if r != 200]
print("%d/%d ok%s" % (n - len(bad), n, ("; " + "; ".join(map(str, bad[:5]))) if bad else ""))
EOF
out=$(in_host h1 "$PY" "$NA_TMP/tlsload.py" "$PORT" "$PKI" 50 2>&1)
is "50 concurrent mTLS clients all get 200" "$out" "50/50 ok"

# The local socket: no TLS, owner-only.
is "unix socket is mode 0600" "$(stat -c %a "$(agent_sock a1)")" 600
is "unix socket is a socket owned by root" "$(stat -c %F:%U "$(agent_sock a1)")" "socket:root"

finish
