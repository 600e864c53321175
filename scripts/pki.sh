#!/usr/bin/env bash
# Development PKI for netagent's mTLS API, with the openssl CLI only.
#
#   scripts/pki.sh DIR
#
# Writes into DIR (EC P-256 keys, mode 0600):
#   ca.pem ca.key                      the CA the agent trusts (--tls-ca)
#   server.pem server.key              agent certificate, SAN IP:127.0.0.1, DNS:localhost
#                                      plus $NA_PKI_SANS (e.g. "IP:192.0.2.10,DNS:agent1")
#   client.pem client.key              controller client certificate (CN=controller, clientAuth)
#   expired-client.pem .key            same CA, valid only 2020-01-01..2020-01-02
#   other-ca.pem other-ca.key          an unrelated CA
#   other-client.pem .key              client certificate (CN=controller) from the other CA
#   etcd-server.pem .key               etcd member certificate (serverAuth, clientAuth), SAN IP:127.0.0.1,
#                                      DNS:localhost plus $NA_PKI_ETCD_SANS ("IP:192.0.2.11,…")
#   etcd-client.pem .key               the agent's etcd client certificate (CN=netagent, clientAuth)
#
# Idempotent: what already exists in DIR and still verifies is reused; anything missing,
# invalid, about to expire, or (server) issued for other SANs is reissued.
set -euo pipefail

die() { echo "pki.sh: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: $0 DIR"
DIR=$1
command -v openssl >/dev/null || die "openssl not found (run scripts/deps.sh)"
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
umask 077

SANS="IP:127.0.0.1,DNS:localhost${NA_PKI_SANS:+,$NA_PKI_SANS}"
DAYS_CA=3650
DAYS_LEAF=825

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

genkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; chmod 600 "$1"; }
serial() { echo "0x7$(openssl rand -hex 15)"; }

# A certificate is reusable when it verifies against its CA and is valid for another day.
valid_leaf() { # cert ca
	[ -s "$1" ] && [ -s "${1%.pem}.key" ] || return 1
	openssl x509 -in "$1" -noout -checkend 86400 >/dev/null 2>&1 || return 1
	openssl verify -CAfile "$2" "$1" >/dev/null 2>&1 || return 1
	# The key must match the certificate.
	[ "$(openssl x509 -in "$1" -noout -pubkey 2>/dev/null)" = \
	  "$(openssl pkey -in "${1%.pem}.key" -pubout 2>/dev/null)" ]
}

valid_ca() { # name
	[ -s "$DIR/$1.pem" ] && [ -s "$DIR/$1.key" ] || return 1
	openssl x509 -in "$DIR/$1.pem" -noout -checkend $((30 * 86400)) >/dev/null 2>&1 || return 1
	openssl verify -CAfile "$DIR/$1.pem" "$DIR/$1.pem" >/dev/null 2>&1 || return 1
	[ "$(openssl x509 -in "$DIR/$1.pem" -noout -pubkey 2>/dev/null)" = \
	  "$(openssl pkey -in "$DIR/$1.key" -pubout 2>/dev/null)" ]
}

make_ca() { # name CN
	echo "pki: new CA $1 ($2)"
	genkey "$DIR/$1.key"
	openssl req -x509 -new -key "$DIR/$1.key" -sha256 -days $DAYS_CA -subj "/O=netagent dev/CN=$2" \
		-addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" \
		-addext "subjectKeyIdentifier=hash" \
		-out "$DIR/$1.pem" 2>/dev/null
	chmod 644 "$DIR/$1.pem"
}

# issue NAME CA CN EXTFILE: key + CSR + certificate signed by CA.
issue() {
	local name=$1 ca=$2 cn=$3 ext=$4
	echo "pki: issue $name (CN=$cn, by $ca)"
	genkey "$DIR/$name.key"
	openssl req -new -key "$DIR/$name.key" -subj "/O=netagent dev/CN=$cn" -out "$WORK/$name.csr" 2>/dev/null
	openssl x509 -req -in "$WORK/$name.csr" -CA "$DIR/$ca.pem" -CAkey "$DIR/$ca.key" \
		-set_serial "$(serial)" -days $DAYS_LEAF -sha256 -extfile "$ext" \
		-out "$DIR/$name.pem" 2>/dev/null
	chmod 644 "$DIR/$name.pem"
}

cat >"$WORK/server.ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$SANS
authorityKeyIdentifier=keyid
EOF
cat >"$WORK/client.ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
authorityKeyIdentifier=keyid
EOF

# CAs. A new CA invalidates everything it signed.
if ! valid_ca ca; then
	make_ca ca "netagent dev CA"
	rm -f "$DIR"/server.pem "$DIR"/client.pem "$DIR"/expired-client.pem "$DIR"/server.sans \
		"$DIR"/etcd-server.pem "$DIR"/etcd-client.pem "$DIR"/etcd-server.sans
fi
if ! valid_ca other-ca; then
	make_ca other-ca "netagent other CA"
	rm -f "$DIR"/other-client.pem
fi

# Agent server certificate; reissued when the requested SANs change.
if ! valid_leaf "$DIR/server.pem" "$DIR/ca.pem" || [ "$(cat "$DIR/server.sans" 2>/dev/null)" != "$SANS" ]; then
	issue server ca "${NA_PKI_SERVER_CN:-netagent}" "$WORK/server.ext"
	echo "$SANS" >"$DIR/server.sans"
fi

valid_leaf "$DIR/client.pem" "$DIR/ca.pem" || issue client ca controller "$WORK/client.ext"
valid_leaf "$DIR/other-client.pem" "$DIR/other-ca.pem" || issue other-client other-ca controller "$WORK/client.ext"

# etcd: a member certificate for the members' addresses, and the agent's client certificate.
ETCD_SANS="IP:127.0.0.1,DNS:localhost${NA_PKI_ETCD_SANS:+,$NA_PKI_ETCD_SANS}"
# clientAuth too: with --client-cert-auth, etcd's own HTTP gateway dials the member's gRPC
# port with this certificate and is refused ("incompatible key usage") without it.
sed -e "s/^subjectAltName=.*/subjectAltName=$ETCD_SANS/" \
	-e "s/^extendedKeyUsage=.*/extendedKeyUsage=serverAuth,clientAuth/" "$WORK/server.ext" >"$WORK/etcd-server.ext"
ETCD_TAG="$ETCD_SANS;serverAuth,clientAuth"
if ! valid_leaf "$DIR/etcd-server.pem" "$DIR/ca.pem" || [ "$(cat "$DIR/etcd-server.sans" 2>/dev/null)" != "$ETCD_TAG" ]; then
	issue etcd-server ca etcd "$WORK/etcd-server.ext"
	echo "$ETCD_TAG" >"$DIR/etcd-server.sans"
fi
valid_leaf "$DIR/etcd-client.pem" "$DIR/ca.pem" || issue etcd-client ca netagent "$WORK/client.ext"

# Expired client: `openssl x509 -req` (3.0) cannot back-date, `openssl ca` can (-startdate/-enddate).
expired_ok() {
	[ -s "$DIR/expired-client.pem" ] && [ -s "$DIR/expired-client.key" ] || return 1
	! openssl x509 -in "$DIR/expired-client.pem" -noout -checkend 0 >/dev/null 2>&1 || return 1
	openssl verify -CAfile "$DIR/ca.pem" -no_check_time "$DIR/expired-client.pem" >/dev/null 2>&1
}
if ! expired_ok; then
	echo "pki: issue expired-client (CN=controller, 2020-01-01..2020-01-02)"
	mkdir -p "$WORK/db"
	: >"$WORK/db/index.txt"
	openssl rand -hex 16 >"$WORK/db/serial"
	cat >"$WORK/ca.cnf" <<EOF
[ca]
default_ca = dev
[dev]
dir = $WORK/db
database = $WORK/db/index.txt
new_certs_dir = $WORK/db
serial = $WORK/db/serial
certificate = $DIR/ca.pem
private_key = $DIR/ca.key
default_md = sha256
policy = pol
unique_subject = no
copy_extensions = none
x509_extensions = client_ext
[pol]
organizationName = optional
commonName = supplied
[client_ext]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
authorityKeyIdentifier=keyid
EOF
	genkey "$DIR/expired-client.key"
	openssl req -new -key "$DIR/expired-client.key" -subj "/O=netagent dev/CN=controller" \
		-out "$WORK/expired.csr" 2>/dev/null
	openssl ca -batch -config "$WORK/ca.cnf" -startdate 20200101000000Z -enddate 20200102000000Z \
		-notext -in "$WORK/expired.csr" -out "$DIR/expired-client.pem" >"$WORK/ca.log" 2>&1 ||
		{ cat "$WORK/ca.log" >&2; die "openssl ca failed"; }
	chmod 644 "$DIR/expired-client.pem"
fi

# Final self-check, so a caller never gets a half-made PKI.
openssl verify -CAfile "$DIR/ca.pem" "$DIR/server.pem" "$DIR/client.pem" >/dev/null ||
	die "verification of server/client certificates failed"
openssl verify -CAfile "$DIR/ca.pem" "$DIR/etcd-server.pem" "$DIR/etcd-client.pem" >/dev/null ||
	die "verification of the etcd certificates failed"
openssl verify -CAfile "$DIR/other-ca.pem" "$DIR/other-client.pem" >/dev/null ||
	die "verification of other-client failed"
if openssl verify -CAfile "$DIR/ca.pem" "$DIR/expired-client.pem" >/dev/null 2>&1; then
	die "expired-client.pem unexpectedly verifies"
fi
if openssl verify -CAfile "$DIR/ca.pem" "$DIR/other-client.pem" >/dev/null 2>&1; then
	die "other-client.pem unexpectedly verifies against ca.pem"
fi
echo "pki: ready in $DIR"
