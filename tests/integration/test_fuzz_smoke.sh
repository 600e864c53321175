#!/usr/bin/env bash
# Keeps the libFuzzer target building and running: 15 s on the request path
# (make fuzz runs it for 60 s). A crash, leak or sanitizer report fails it.
source "$(dirname "$0")/../lib.sh"
cd "$NA_ROOT" || bail "no repo"
if ! command -v clang >/dev/null; then
	not_ok "fuzzer builds" "clang not installed (make deps installs it)"
	finish
fi
check "fuzz target builds with clang + libFuzzer" make -s fuzz-build
log=$NA_TMP/fuzz.log
mkdir -p "$NA_TMP/corpus"
cp tests/fuzz/corpus/* "$NA_TMP/corpus/"
./build/fuzz/fuzz_request -max_total_time=15 -max_len=8192 -timeout=10 \
	-artifact_prefix="$NA_TMP/" -print_final_stats=1 "$NA_TMP/corpus" >"$log" 2>&1
rc=$?
runs=$(awk '/stat::number_of_executed_units/ {print $NF}' "$log")
if [ "$rc" = 0 ] && [ "${runs:-0}" -gt 1000 ]; then
	ok "15 s of fuzzing the request path: $runs inputs, no crash"
else
	not_ok "fuzzing the request path" "rc=$rc runs=${runs:-0}" "$(tail -30 "$log")"
fi
finish
