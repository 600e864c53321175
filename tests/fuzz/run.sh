#!/usr/bin/env bash
# Runs the request-path fuzzer for N seconds (default 60) on a copy of the
# seed corpus; a crash leaves its input in build/fuzz/ and fails the run.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
work=build/fuzz/corpus
mkdir -p "$work"
cp -n tests/fuzz/corpus/* "$work"/ 2>/dev/null || true
./build/fuzz/fuzz_request -max_total_time="$secs" -max_len=8192 -timeout=10 \
	-artifact_prefix=build/fuzz/ -print_final_stats=1 "$work"
