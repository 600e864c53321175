#!/usr/bin/env bash
# Prepares a database host for netagent and says, in plain words, what is missing.
#
#   provision/host-bootstrap.sh --name NAME [options]
#
#   --name NAME          the agent's name (<= 8 chars: it prefixes kernel objects)
#   --ca-cert F          the platform CA certificate: agents trust controllers it signed
#   --ca-key F           sign the agent's certificate here with this CA key (dev, demo);
#                        without it a CSR is written for the platform's CA to sign
#   --san LIST           extra subjectAltNames of the agent certificate ("IP:192.0.2.11")
#   --underlay-if IF     the underlay interface (checked: exists, up, has an IPv4 address)
#   --listen ADDR:PORT   the controller API address written into the unit's environment
#   --etcd URLS          etcd endpoints written into the unit's environment
#   --root DIR           install under DIR instead of / (tests, the demo's simulated hosts)
#   --netns PATH         run the kernel self-test inside this network namespace
#   --no-packages        do not install packages (only report what is missing)
#   --check              change nothing: report only (exit 1 when something is missing)
#
# Idempotent: run it again and it changes only what drifted. Exit status 0 when the host is
# ready, 1 when something is missing (listed), 2 on usage errors.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
NAME='' CA_CERT='' CA_KEY='' SAN='' UNDERLAY='' LISTEN='' ETCD='' ROOT='' NETNS=''
PACKAGES=1 CHECK=0

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
	case $1 in
	--name) NAME=${2:-}; shift 2 ;;
	--ca-cert) CA_CERT=${2:-}; shift 2 ;;
	--ca-key) CA_KEY=${2:-}; shift 2 ;;
	--san) SAN=${2:-}; shift 2 ;;
	--underlay-if) UNDERLAY=${2:-}; shift 2 ;;
	--listen) LISTEN=${2:-}; shift 2 ;;
	--etcd) ETCD=${2:-}; shift 2 ;;
	--root) ROOT=${2:-}; shift 2 ;;
	--netns) NETNS=${2:-}; shift 2 ;;
	--no-packages) PACKAGES=0; shift ;;
	--check) CHECK=1; PACKAGES=0; shift ;;
	-h | --help) usage ;;
	*) echo "host-bootstrap: unknown option $1" >&2; usage ;;
	esac
done
[[ $NAME =~ ^[a-z0-9][a-z0-9-]{0,7}$ ]] || { echo "host-bootstrap: --name must match [a-z0-9][a-z0-9-]{0,7}" >&2; exit 2; }

MISSING=()
ok() { printf '  ok       %s\n' "$*"; }
fixed() { printf '  fixed    %s\n' "$*"; }
missing() { printf '  MISSING  %s\n' "$*"; MISSING+=("$*"); }
note() { printf '  note     %s\n' "$*"; }
section() { printf '%s\n' "$*"; }
do_it() { [ $CHECK -eq 0 ]; }
in_ns() { if [ -n "$NETNS" ]; then nsenter --net="$NETNS" "$@"; else "$@"; fi; }

[ "$(id -u)" -eq 0 ] || { echo "host-bootstrap: run it as root (network namespaces, /etc, packages)" >&2; exit 2; }

# ---- packages: the project's own list (scripts/deps.sh)
section "packages"
if [ $PACKAGES -eq 1 ]; then
	if "$TOP/scripts/deps.sh" >/dev/null 2>&1; then ok "every package netagent needs is installed"
	else missing "packages could not be installed: run $TOP/scripts/deps.sh to see why"; fi
elif "$TOP/scripts/deps.sh" --check >/dev/null 2>&1; then
	ok "every package netagent needs is installed"
else
	missing "packages: $("$TOP/scripts/deps.sh" --check 2>&1 | sed -n 's/^deps: missing: //p')"
fi
for b in runc patroni haproxy pgbackrest; do
	command -v "$b" >/dev/null 2>&1 && ok "$b is on PATH" || missing "$b is not installed"
done
[ -x /usr/lib/postgresql/15/bin/postgres ] && ok "PostgreSQL 15 server binaries" || missing "PostgreSQL 15 (postgresql-15) is not installed"

# ---- kernel features: made for real in a throwaway namespace
section "kernel"
T="nabs$$"
if ip netns add "$T" 2>/dev/null; then
	ok "network namespaces"
	ip -n "$T" link add t0 type veth peer name t1 2>/dev/null && ok "veth" || missing "veth links cannot be created (CONFIG_VETH)"
	ip -n "$T" link add b0 type bridge 2>/dev/null && ok "bridge" || missing "bridges cannot be created (CONFIG_BRIDGE)"
	ip -n "$T" link add x0 type vxlan id 42 dstport 4789 nolearning 2>/dev/null && ok "vxlan" || missing "VXLAN devices cannot be created (CONFIG_VXLAN)"
	ip -n "$T" link add m0 link t0 type macvlan mode bridge 2>/dev/null && ok "macvlan" || missing "macvlan links cannot be created (CONFIG_MACVLAN)"
	ip -n "$T" link set t0 up 2>/dev/null
	ip -n "$T" addr add 192.0.2.254/24 dev t0 valid_lft 5 preferred_lft 5 2>/dev/null &&
		ok "addresses with lifetimes (VIP fencing)" || missing "addresses with a valid lifetime are refused"
	ip netns del "$T"
else
	missing "network namespaces cannot be created (CONFIG_NET_NS, or not root)"
fi
grep -qw cpu /proc/cgroups && grep -qw memory /proc/cgroups && grep -qw pids /proc/cgroups &&
	ok "cgroup controllers cpu, memory, pids" || missing "cgroup controllers cpu/memory/pids are not all available"

# ---- sysctls the agent relies on. These are machine-wide (not per network namespace): a
# simulated host (--netns) shares them with the machine, so there they are only reported.
section "sysctls"
sysctl_want() { # KEY VALUE WHY
	local cur
	cur=$(sysctl -n "$1" 2>/dev/null) || { missing "sysctl $1 is not available ($3)"; return; }
	if [ "$cur" -ge "$2" ] 2>/dev/null; then ok "$1 = $cur ($3)"; return; fi
	if [ -n "$NETNS" ]; then note "$1 is $cur, a real host wants >= $2 ($3; machine-wide, left alone for a simulated host)"; return; fi
	if do_it && sysctl -qw "$1=$2" 2>/dev/null; then fixed "$1 = $2 (was $cur; $3)"
	else missing "$1 is $cur, wants >= $2 ($3)"; fi
}
sysctl_want net.core.rmem_max 4194304 "netlink batches of 5,000 entries"
sysctl_want fs.inotify.max_user_instances 512 "one container log watcher each"
sysctl_want kernel.pid_max 65536 "containers count their threads as pids"
sysctl_want net.ipv4.neigh.default.gc_thresh3 16384 "proxy-ARP neighbours of every remote endpoint"

# ---- the underlay
section "underlay"
if [ -n "$UNDERLAY" ]; then
	if in_ns ip -o link show dev "$UNDERLAY" >/dev/null 2>&1; then
		in_ns ip -o link show dev "$UNDERLAY" | grep -q 'state UP\|,UP' && ok "$UNDERLAY is up" || missing "$UNDERLAY is down"
		a=$(in_ns ip -o -4 addr show dev "$UNDERLAY" | awk '{print $4; exit}')
		[ -n "$a" ] && ok "$UNDERLAY has $a (the VTEP address)" || missing "$UNDERLAY has no IPv4 address (VXLAN needs one)"
		# From netlink, not /sys: nsenter --net keeps the caller's /sys (another namespace's eth0).
		mtu=$(in_ns ip -o link show dev "$UNDERLAY" | sed -n 's/.* mtu \([0-9]*\).*/\1/p')
		if [ "${mtu:-0}" -ge 1500 ] 2>/dev/null; then ok "$UNDERLAY MTU $mtu (overlay MTU $((mtu - 50)))"
		else note "$UNDERLAY MTU ${mtu:-?}: overlay MTU $((${mtu:-0} - 50)), below the usual 1450 (PostgreSQL works; large frames fragment less with 1500+)"; fi
	else
		missing "underlay interface $UNDERLAY does not exist"
	fi
else
	d=$(in_ns ip -o route show default | awk '{for (i = 1; i < NF; i++) if ($i == "dev") print $(i + 1); exit}')
	[ -n "$d" ] && ok "default route via $d (the agent's default underlay)" || missing "no default route and no --underlay-if"
fi

# ---- directories
section "directories"
ETC=$ROOT/etc/netagent/$NAME STATE=$ROOT/var/lib/netagent/$NAME RUN=$ROOT/run/netagent/$NAME
for d in "$ETC" "$STATE" "$RUN"; do
	if [ -d "$d" ]; then
		[ "$(stat -c %a "$d")" = 700 ] && ok "$d (0700)" || { do_it && chmod 700 "$d" && fixed "$d mode 0700"; }
	elif do_it && mkdir -p -m 700 "$d"; then fixed "created $d"
	else missing "directory $d"; fi
done

# ---- the agent's certificate
section "certificate"
CRT=$ETC/agent.pem KEY=$ETC/agent.key CSR=$ETC/agent.csr
if [ -z "$CA_CERT" ]; then
	missing "no --ca-cert: the agent cannot verify controllers (mTLS is mandatory on --listen)"
elif [ -s "$CRT" ] && openssl verify -CAfile "$CA_CERT" "$CRT" >/dev/null 2>&1 &&
	openssl x509 -in "$CRT" -noout -checkend $((30 * 86400)) >/dev/null 2>&1 &&
	[ "$(openssl x509 -in "$CRT" -noout -pubkey)" = "$(openssl pkey -in "$KEY" -pubout 2>/dev/null)" ]; then
	ok "$CRT is valid for 30 more days and matches its key"
	cmp -s "$CA_CERT" "$ETC/ca.pem" || { do_it && install -m 644 "$CA_CERT" "$ETC/ca.pem" && fixed "$ETC/ca.pem"; }
elif do_it; then
	[ -s "$KEY" ] || { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$KEY" 2>/dev/null; chmod 600 "$KEY"; }
	openssl req -new -key "$KEY" -subj "/O=netagent/CN=$NAME" -out "$CSR" 2>/dev/null
	install -m 644 "$CA_CERT" "$ETC/ca.pem"
	if [ -n "$CA_KEY" ]; then
		ext=$(mktemp)
		printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:%s%s\n' \
			"$NAME" "${SAN:+,$SAN}" >"$ext"
		if openssl x509 -req -in "$CSR" -CA "$CA_CERT" -CAkey "$CA_KEY" -set_serial "0x7$(openssl rand -hex 15)" \
			-days 825 -sha256 -extfile "$ext" -out "$CRT" 2>/dev/null; then
			chmod 644 "$CRT"
			fixed "issued $CRT (CN=$NAME${SAN:+, $SAN})"
		else
			missing "signing $CSR with $CA_KEY failed"
		fi
		rm -f "$ext"
	else
		missing "certificate: have the platform CA sign $CSR, then put the certificate at $CRT"
	fi
else
	missing "certificate $CRT is missing, invalid, expiring or does not match $KEY"
fi

# ---- the service
section "service"
UNIT=$ROOT/etc/systemd/system/netagent@.service ENV=$ETC/env
if do_it; then
	mkdir -p "$(dirname "$UNIT")"
	cmp -s "$HERE/netagent@.service" "$UNIT" || { install -m 644 "$HERE/netagent@.service" "$UNIT" && fixed "installed $UNIT"; }
	want=$(printf 'NETAGENT_LISTEN=%s\nNETAGENT_ETCD=%s\nNETAGENT_UNDERLAY_IF=%s\n' "$LISTEN" "$ETCD" "$UNDERLAY")
	[ "$(cat "$ENV" 2>/dev/null)" = "$want" ] || { printf '%s\n' "$want" >"$ENV" && fixed "wrote $ENV"; }
fi
[ -s "$UNIT" ] && ok "$UNIT" || missing "systemd unit $UNIT"
if [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then
	systemctl daemon-reload 2>/dev/null
	systemctl is-enabled "netagent@$NAME" >/dev/null 2>&1 && ok "netagent@$NAME is enabled" ||
		{ do_it && systemctl enable "netagent@$NAME" >/dev/null 2>&1 && fixed "enabled netagent@$NAME"; }
else
	ok "no systemd here: start bin/netagent yourself (the unit shows the command line)"
fi
command -v netagent >/dev/null 2>&1 || [ -x "$TOP/bin/netagent" ] && ok "netagent binary" || missing "netagent is not built (make)"
[ -x "$TOP/bin/netagent-monitor" ] || command -v netagent-monitor >/dev/null 2>&1 && ok "netagent-monitor binary" || missing "netagent-monitor is not built (make)"

echo
if [ ${#MISSING[@]} -eq 0 ]; then
	echo "host $NAME is ready for netagent"
	exit 0
fi
echo "host $NAME is NOT ready: ${#MISSING[@]} thing(s) missing:"
for m in "${MISSING[@]}"; do echo "  - $m"; done
exit 1
