# shellcheck shell=bash
# One table of every benchmark in the run (make bench ends with it): each bench script sources
# this and adds its headline rows; bench/run.sh prints them all at the end and keeps them in
# build/bench/summary.md (copy it into docs/performance.md with the machine it ran on).
#   bench_row AREA WHAT NETAGENT BASELINE RATIO GOAL
# A bench run alone (not from bench/run.sh) prints its own table only.
bench_row() {
	[ -n "${BENCH_SUMMARY:-}" ] || return 0
	printf '| %s | %s | %s | %s | %s | %s |\n' "$@" >>"$BENCH_SUMMARY"
}
