#!/usr/bin/env bash
# The core's etcd session (netagent/etcd.h) against real etcd-server members on the fabric
# (tests/lib.sh: start_etcd_cluster). tests/integration/etcd_test*.c, built here with the
# Makefile's flags from the session's own sources, runs each scenario on the libuv loop and
# prints unnumbered TAP; when it needs a member killed, frozen or cut off it prints
# "CTL VERB I" and waits for this script's answer on its stdin.
#   single member:     basic (kv, txn, leases, keeper, watches, progress, 5,000 keys, cancel,
#                      endpoints), lease-timing (SIGSTOP: at_risk on time), close
#   3 members:         failover (kill -9 under writes/watch/claims, lost txn answer, hasleader,
#                      SIGSTOP, keeper through a kill), compaction (watch reset)
#   TLS member:        tls (--client-cert-auth: accepted with our cert, refused otherwise)
# Env: NA_TEST_CFLAGS (e.g. "-O1 -g -fsanitize=address,undefined"), NA_TEST_WRAPPER (a
# command line the program runs under, e.g. "valgrind -q --error-exitcode=9").
. "$(dirname "$0")/../lib.sh"

command -v etcd >/dev/null || bail "etcd not found (apt-get install etcd-server)"
command -v nft >/dev/null || bail "nft not found (isolate_etcd_member needs it)"

# ---- build the program from the session's sources (not from anyone's build dir)
BIN=$NA_TMP/etcd_test
PKGS="libuv libcurl jansson openssl"
# shellcheck disable=SC2046,SC2086 # pkg-config output and NA_TEST_CFLAGS are word lists
if ! ${CC:-cc} -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -I"$NA_ROOT" \
	$(pkg-config --cflags $PKGS) ${NA_TEST_CFLAGS:--O2 -g} -o "$BIN" \
	"$NA_ROOT"/tests/integration/etcd_test*.c "$NA_ROOT"/netagent/etcd_*.c \
	"$NA_ROOT/netagent/err.c" "$NA_ROOT/netagent/log.c" \
	$(pkg-config --libs $PKGS) ${NA_TEST_CFLAGS:+$NA_TEST_CFLAGS} >"$NA_TMP/build.log" 2>&1; then
	not_ok "etcd_test builds" "$(cat "$NA_TMP/build.log")"
	finish
fi
ok "etcd_test builds"

mkhost cli
PROGERR=$NA_TMP/etcd_test.err

# ctl_do VERB I: what the program asks of member I.
ctl_do() {
	case $1 in
	kill) stop_etcd_member "$2" -9 ;;
	start) start_etcd_member "$2" ;;
	pause) pause_etcd_member "$2" ;;
	resume) resume_etcd_member "$2" ;;
	isolate) isolate_etcd_member "$2" ;;
	heal) heal_etcd_member "$2" ;;
	*) return 2 ;;
	esac
}

# run_prog SCENARIO ARG…: etcd_test in host "cli"; its TAP renumbered, its CTL requests done.
run_prog() {
	local fifo=$NA_TMP/ctl.$1 line rc='' fd t0
	mkfifo "$fifo"
	# read-write: neither side blocks opening it, and the program never sees EOF early
	exec {fd}<>"$fifo"
	: >"$PROGERR"
	t0=$(now_ms)
	diag "etcd_test $*"
	# shellcheck disable=SC2086 # NA_TEST_WRAPPER (in the process substitution) is a command line
	while IFS= read -r line; do
		case $line in
		"CTL "*)
			# shellcheck disable=SC2086 # "VERB I"
			if ctl_do ${line#CTL }; then echo ok >&"$fd"; else
				not_ok "the script did '${line#CTL }' for etcd_test"
				echo failed >&"$fd"
			fi
			;;
		"ok - "*) ok "$1: ${line#ok - }" ;;
		"not ok - "*) not_ok "$1: ${line#not ok - }" ;;
		"# "*) echo "$line" ;;
		__RC=*) rc=${line#__RC=} ;;
		*) diag "$line" ;;
		esac
	done < <(in_host cli ${NA_TEST_WRAPPER:-} "$BIN" "$@" <&"$fd" 2>"$PROGERR"; echo "__RC=$?")
	exec {fd}>&-
	rm -f "$fifo"
	diag "etcd_test $1: $(($(now_ms) - t0)) ms"
	if [ "$rc" != 0 ]; then
		not_ok "etcd_test $1 exits 0 (got ${rc:-none})" "$(tail -n 30 "$PROGERR")"
	elif grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|ERROR SUMMARY: [1-9]' "$PROGERR"; then
		not_ok "etcd_test $1: no sanitizer/valgrind report" "$(grep -A 20 -E 'ERROR|runtime error' "$PROGERR" | head -n 40)"
	fi
}

PROGRESS=(--experimental-watch-progress-notify-interval=1s)

# ---- one member
start_etcd_cluster 1 -- "${PROGRESS[@]}" || bail "etcd (1 member) did not start"
diag "etcd $(etcd --version | awk 'NR==1 {print $3}'): $ETCD_URLS"
run_prog basic "$ETCD_URLS"
run_prog lease-timing "$ETCD_URLS"
run_prog close "$ETCD_URLS"

# ---- three members
start_etcd_cluster 3 -- "${PROGRESS[@]}" || bail "etcd (3 members) did not start"
diag "3 members: $ETCD_URLS (leader #$(etcd_leader))"
run_prog failover "$ETCD_URLS"
run_prog compaction "$ETCD_URLS"
n=0
for i in 1 2 3; do _etcd_healthy "$i" && n=$((n + 1)); done
is "every member is back and has a leader after the failures" "$n" 3

# ---- TLS with client certificates required
start_etcd_cluster 1 --tls -- "${PROGRESS[@]}" || bail "etcd (TLS) did not start"
like "the member serves https only" "$ETCD_URLS" '^https://'
code=$(in_host cli curl -s -o /dev/null -w '%{http_code}' --max-time 5 --cacert "$PKI/ca.pem" \
	-X POST "$ETCD_URLS/v3/maintenance/status" -d '{}' 2>/dev/null)
[ "$code" != 200 ] && ok "etcd itself refuses a client without a certificate (curl: '$code')" ||
	not_ok "etcd itself refuses a client without a certificate" "HTTP $code"
run_prog tls "$ETCD_URLS" "$PKI/ca.pem" "$PKI/etcd-client.pem" "$PKI/etcd-client.key" \
	"$PKI/other-ca.pem" "$PKI/other-client.pem" "$PKI/other-client.key"

stop_etcd_cluster
finish
