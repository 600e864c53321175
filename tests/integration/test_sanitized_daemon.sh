#!/usr/bin/env bash
# Runs three suites against the daemon built with ASan+UBSan (make
# asan-daemon): the API error paths, the overlay bad-input suite and the
# flooding test. UB is fatal (-fno-sanitize-recover) and every report goes
# to a file here, so a memory error or a leak fails this test even when the
# suite itself passed.
source "$(dirname "$0")/../lib.sh"
cd "$NA_ROOT" || bail "no repo"
check "sanitized daemon builds" make -s asan-daemon
[ -f build/asan/bin/netagent ] || bail "no build/asan/bin/netagent"
rep=$NA_TMP/reports
mkdir -p "$rep"
export NETAGENT=$NA_ROOT/build/asan/bin/netagent
export ASAN_OPTIONS="log_path=$rep/asan:detect_leaks=1"
export UBSAN_OPTIONS="log_path=$rep/ubsan:print_stacktrace=1"
for t in test_api_errors.sh test_overlay_errors.sh test_overlay_flood.sh; do
	out=$NA_TMP/$t.out
	# Each suite runs with its own prefix and cleans up after itself.
	env -u NA_T -u NA_TMP bash "tests/integration/$t" >"$out" 2>&1
	rc=$?
	bad=$(grep -c '^not ok' "$out")
	good=$(grep -c '^ok' "$out")
	if [ "$rc" = 0 ] && [ "$bad" = 0 ] && [ "$good" -gt 0 ]; then
		ok "$t passes against the sanitized daemon ($good checks)"
	else
		not_ok "$t passes against the sanitized daemon" "rc=$rc ok=$good not_ok=$bad" \
			"$(grep -A3 '^not ok' "$out" | head -20)"
	fi
done
if compgen -G "$rep/*" >/dev/null; then
	not_ok "no sanitizer reports" "$(head -60 "$rep"/* 2>/dev/null)"
else
	ok "no sanitizer reports (ASan, LeakSanitizer, UBSan)"
fi
finish
