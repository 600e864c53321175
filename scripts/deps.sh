#!/usr/bin/env bash
# Installs the Debian packages netagent needs to build, test and demo.
# Does nothing when everything is already installed; otherwise needs root.
#   scripts/deps.sh          install what is missing
#   scripts/deps.sh --check  only report, exit 1 if something is missing
set -euo pipefail

PACKAGES=(
	# build
	build-essential pkg-config clang libclang-rt-14-dev
	# libraries
	libuv1-dev libssl-dev openssl libjansson-dev libhttp-parser-dev
	libnl-3-dev libnl-route-3-dev libmnl-dev libnftnl-dev libcurl4-openssl-dev libcmocka-dev
	# tools the tests, demo and operators use
	curl iproute2 iputils-ping tcpdump etcd-server etcd-client python3 nftables
	valgrind procps psmisc util-linux kmod
	# containers (provision/): the OCI runtime
	runc
	# role presets (provision/role_*.c) and backups: what runs inside the
	# containers, from the host image. Patroni's Raft DCS needs pysyncobj.
	postgresql-15 postgresql-client-15 patroni python3-pysyncobj python3-psycopg2
	haproxy pgbackrest
	# benchmark baselines (bench/): keepalived for VIP failover
	keepalived
)

missing=()
for p in "${PACKAGES[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$status" = "install ok installed" ] || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
	[ "${1:-}" = "--check" ] && echo "deps: all ${#PACKAGES[@]} packages installed"
	exit 0
fi

echo "deps: missing: ${missing[*]}" >&2
[ "${1:-}" = "--check" ] && exit 1

if [ "$(id -u)" -ne 0 ]; then
	echo "deps: installing packages needs root; run: sudo $0  (or sudo make check)" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"
echo "deps: installed ${missing[*]}"
