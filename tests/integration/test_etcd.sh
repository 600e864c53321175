#!/bin/bash
# Runs tests/integration/etcd_test.c against a real, private etcd on
# 127.0.0.1 (random free ports, temp data dir). TAP on stdout.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

if ! command -v etcd >/dev/null; then
	echo "1..0 # SKIP etcd not installed (apt-get install etcd-server)"
	exit 0
fi

tmp=$(mktemp -d /tmp/na-etcd-test.XXXXXX)
etcd_pid=

cleanup() {
	local rc=$?
	# a closed stdout (| head) must not stop the cleanup half-way
	set +e
	trap '' PIPE
	if [ -n "$etcd_pid" ] && kill -0 "$etcd_pid" 2>/dev/null; then
		kill "$etcd_pid" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$etcd_pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$etcd_pid" 2>/dev/null || true
		wait "$etcd_pid" 2>/dev/null || true
	fi
	if [ "$rc" -ne 0 ] && [ -f "$tmp/etcd.log" ]; then
		echo "# etcd log (tail):"
		tail -n 30 "$tmp/etcd.log" | sed 's/^/#   /'
	fi 2>/dev/null
	rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# A port nothing listens on now. Racy by nature; etcd failing to bind is
# detected below and reported.
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 40000))
		if ! ss -Htln "sport = :$p" | grep -q .; then
			echo "$p"
			return
		fi
	done
}

client_port=$(free_port)
peer_port=$(free_port)
while [ "$peer_port" = "$client_port" ]; do peer_port=$(free_port); done
name="na-test-$$"
client_url="http://127.0.0.1:$client_port"
peer_url="http://127.0.0.1:$peer_port"

# NA_TEST_CFLAGS: e.g. "-fsanitize=address,undefined" for a sanitizer run.
${CC:-cc} -std=gnu11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -I"$root" ${NA_TEST_CFLAGS:-} \
	$(pkg-config --cflags libcurl jansson openssl) \
	-o "$tmp/etcd_test" "$here/etcd_test.c" \
	"$root/netagent/etcd_legacy.c" "$root/netagent/etcd_legacy_kv.c" "$root/netagent/etcd_legacy_watch.c" \
	"$root/netagent/err.c" "$root/netagent/log.c" \
	$(pkg-config --libs libcurl jansson openssl) -lpthread

etcd --name "$name" --data-dir "$tmp/data" \
	--listen-client-urls "$client_url" --advertise-client-urls "$client_url" \
	--listen-peer-urls "$peer_url" --initial-advertise-peer-urls "$peer_url" \
	--initial-cluster "$name=$peer_url" --initial-cluster-state new \
	>"$tmp/etcd.log" 2>&1 &
etcd_pid=$!

healthy=
for _ in $(seq 100); do
	if ! kill -0 "$etcd_pid" 2>/dev/null; then
		echo "# etcd exited during startup"
		exit 1
	fi
	if curl -fsS --max-time 1 "$client_url/health" 2>/dev/null | grep -q '"health":"true"'; then
		healthy=1
		break
	fi
	sleep 0.1
done
if [ -z "$healthy" ]; then
	echo "# etcd did not become healthy on $client_url within 10 s"
	exit 1
fi
echo "# etcd $(etcd --version | head -n1 | awk '{print $3}') on $client_url (pid $etcd_pid)"

"$tmp/etcd_test" "$client_url"
