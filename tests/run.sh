#!/usr/bin/env bash
# Test runner: runs suites, parses their TAP, prints a summary.
#
#   tests/run.sh --unit DIR              every test_* binary in DIR (cmocka, TAP output)
#   tests/run.sh --integration [FILTER]  tests/integration/test_*.sh (names containing FILTER)
#   tests/run.sh --all [FILTER]          unit build/tests, unit build/asan/tests, integration
#   -q                                   print only failures and the summary
#
# A suite's "ok" lines count as passed, "not ok" as failed, "# SKIP" lines as skipped
# ("# TODO" not-ok lines are not failures). A suite that exits nonzero or times out without
# any "not ok" line counts as one failure. The last line is "N passed, N failed[, N skipped]";
# the exit status is nonzero when anything failed.
# Env: NA_UNIT_TIMEOUT (300 s), NA_TEST_TIMEOUT (600 s per integration script, or the
#      script's own "# timeout: SECS" line),
#      NA_TEST_LOGS (build/test-logs).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2
LOGS=${NA_TEST_LOGS:-$ROOT/build/test-logs}
mkdir -p "$LOGS"

QUIET=0
TOTAL_PASS=0 TOTAL_FAIL=0 TOTAL_SKIP=0
SUMMARY=()

usage() {
	sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

# run_suite LABEL TIMEOUT CMD…: runs one suite, parses its TAP, adds to the totals.
run_suite() {
	local label=$1 tmo=$2 log pass=0 fail=0 skip=0 rc line status note=''
	shift 2
	log="$LOGS/$(echo "$label" | tr '/ ' '__').log"
	[ $QUIET -eq 1 ] || echo "=== $label"
	local t0=$SECONDS in_fail=0
	# timeout: TERM first (the suite's trap cleans up), KILL 15 s later.
	: >"$log"
	rc=''
	while IFS= read -r line; do
		# The exit status travels as the last line of the stream.
		if [[ $line == __NA_RC=* ]]; then rc=${line#__NA_RC=}; continue; fi
		printf '%s\n' "$line" >>"$log"
		# -q still shows the diagnostics that follow a failure.
		if [ $in_fail -eq 1 ] && [[ $line == "#"* ]]; then echo "$label: $line"; else in_fail=0; fi
		case "$line" in
		1..0*)
			# "1..0 # SKIP reason": the whole suite skipped itself.
			[[ $line =~ \#[[:space:]]*[Ss][Kk][Ii][Pp] ]] && skip=$((skip + 1))
			;;
		"ok "* | "ok" | "not ok "* | "not ok")
			if [[ $line =~ \#[[:space:]]*[Ss][Kk][Ii][Pp] ]]; then
				skip=$((skip + 1))
			elif [[ $line == "not ok"* ]] && ! [[ $line =~ \#[[:space:]]*[Tt][Oo][Dd][Oo] ]]; then
				fail=$((fail + 1))
				[ $QUIET -eq 1 ] && { echo "$label: $line"; in_fail=1; }
			else
				pass=$((pass + 1))
			fi
			;;
		esac
		[ $QUIET -eq 1 ] || printf '%s\n' "$line"
	done < <(timeout --kill-after=15 "$tmo" "$@" 2>&1; echo "__NA_RC=$?")
	rc=${rc:-1}
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then note=" TIMEOUT after ${tmo}s"; fi
	if [ "$rc" -ne 0 ] && [ $fail -eq 0 ]; then
		fail=1
		[ -n "$note" ] || note=" (no failing test line)"
		echo "--- $label exited with status $rc$note; last lines of $log:"
		tail -n 25 "$log" | sed 's/^/    /'
	fi
	if [ $fail -gt 0 ]; then status=FAIL; elif [ $pass -eq 0 ] && [ $skip -gt 0 ]; then status=SKIP; else status=PASS; fi
	SUMMARY+=("$(printf '%-4s %-45s %3d passed, %3d failed, %3d skipped  %4ds%s' \
		"$status" "$label" $pass $fail $skip $((SECONDS - t0)) "$note")")
	TOTAL_PASS=$((TOTAL_PASS + pass))
	TOTAL_FAIL=$((TOTAL_FAIL + fail))
	TOTAL_SKIP=$((TOTAL_SKIP + skip))
}

run_unit_dir() {
	local dir=$1 t found=0
	if [ ! -d "$dir" ]; then
		SUMMARY+=("$(printf '%-4s %-45s (no such directory: nothing built)' NONE "$dir")")
		return
	fi
	for t in "$dir"/test_*; do
		[ -f "$t" ] && [ -x "$t" ] || continue
		case "$t" in *.o | *.d) continue ;; esac
		found=1
		CMOCKA_MESSAGE_OUTPUT=TAP \
			ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} \
			UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
			run_suite "${t#"$ROOT"/}" "${NA_UNIT_TIMEOUT:-300}" "$t"
	done
	[ $found -eq 1 ] || SUMMARY+=("$(printf '%-4s %-45s (no test binaries)' NONE "$dir")")
}

run_integration() {
	local filter=${1:-} t found=0
	for t in "$ROOT"/tests/integration/test_*.sh; do
		[ -f "$t" ] || continue
		[ -z "$filter" ] || [[ $(basename "$t") == *"$filter"* ]] || continue
		found=1
		# A script may ask for more time than the default with a "# timeout: SECS" line.
		local tmo
		tmo=$(sed -n 's/^# timeout: \([0-9][0-9]*\)$/\1/p' "$t" | head -1)
		run_suite "${t#"$ROOT"/}" "${NA_TEST_TIMEOUT:-${tmo:-600}}" bash "$t"
	done
	if [ $found -eq 0 ] && [ -n "$filter" ]; then
		# A filter that matches nothing is a typo, not a pass.
		SUMMARY+=("$(printf '%-4s %-45s (no script matches "%s")' FAIL tests/integration "$filter")")
		TOTAL_FAIL=$((TOTAL_FAIL + 1))
	fi
}

[ $# -ge 1 ] || usage
if [ "$1" = "-q" ]; then QUIET=1; shift; fi
[ $# -ge 1 ] || usage
mode=$1
shift
if [ "${1:-}" = "-q" ]; then QUIET=1; shift; fi
case "$mode" in
--unit)
	[ $# -ge 1 ] || usage
	run_unit_dir "${1%/}"
	;;
--integration)
	run_integration "${1:-}"
	;;
--all)
	run_unit_dir build/tests
	run_unit_dir build/asan/tests
	run_integration "${1:-}"
	;;
*) usage ;;
esac

echo
echo "=== summary"
for line in "${SUMMARY[@]}"; do echo "$line"; done
[ $TOTAL_FAIL -eq 0 ] || echo "logs: ${LOGS#"$ROOT"/}/"
if [ $TOTAL_SKIP -gt 0 ]; then
	echo "$TOTAL_PASS passed, $TOTAL_FAIL failed, $TOTAL_SKIP skipped"
else
	echo "$TOTAL_PASS passed, $TOTAL_FAIL failed"
fi
[ $TOTAL_FAIL -eq 0 ]
