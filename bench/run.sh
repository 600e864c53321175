#!/usr/bin/env bash
# make bench: netagent (through its API) against iproute2 doing the same
# kernel work, measured in the same run on the same machine:
#   - 200 networks, 2 endpoints each; 5,000 remote endpoints into one network;
#     then delete everything. Baselines: a script with one ip/bridge process
#     per object, and the same work in ip -batch / bridge -batch files.
#   - agent RSS with 1,000 networks.
# Sizes: BENCH_NETS (200), BENCH_REMOTES (5000), BENCH_RSS_NETS (1000).
set -uo pipefail
cd "$(dirname "$0")/.."
NETS=${BENCH_NETS:-200}
REMOTES=${BENCH_REMOTES:-5000}
RSS_NETS=${BENCH_RSS_NETS:-1000}
# shellcheck source=../tests/lib.sh
source tests/lib.sh
PY=/usr/bin/python3

mkhost h1
H=$(hostns h1)
mk_endpoint_ns() {
	for ((i = 0; i < NETS; i++)); do
		for e in 0 1; do echo "netns add ${NA_P}e$i-$e"; done
	done >"$NA_TMP/epns"
	ip -batch "$NA_TMP/epns"
}
mk_endpoint_ns

secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b - a) / 1000 }'; }

# --- netagent ---------------------------------------------------------------
start_agent h1 a1 --log-level warn || { echo "agent did not start"; exit 1; }
wait_agent a1 || exit 1
out=$($PY bench/client.py "$(agent_sock a1)" "$NA_P" "$NETS" "$REMOTES") || {
	echo "netagent run failed"; tail -20 "$(agent_log a1)"; exit 1; }
t_agent=$(echo "$out" | $PY -c 'import json,sys; print("%.2f" % json.load(sys.stdin)["total"])')
phases=$(echo "$out" | $PY -c 'import json,sys; d=json.load(sys.stdin); print(" ".join("%s=%.2fs" % (k, d[k]) for k in ("networks","endpoints","remotes","delete")))')
stop_agent a1

# --- iproute2, one process per object ----------------------------------------
t0=$(now_ms)
bench/iproute2.sh script "$H" "$NA_P" "$NETS" "$REMOTES" >"$NA_TMP/script.log" 2>&1 || {
	echo "iproute2 script failed:"; tail "$NA_TMP/script.log"; exit 1; }
t_script=$(secs "$t0" "$(now_ms)")

# --- iproute2 batch ------------------------------------------------------------
t0=$(now_ms)
bench/iproute2.sh batch "$H" "$NA_P" "$NETS" "$REMOTES" >"$NA_TMP/batch.log" 2>&1 || {
	echo "iproute2 batch failed:"; tail "$NA_TMP/batch.log"; exit 1; }
t_batch=$(secs "$t0" "$(now_ms)")

# --- RSS with many networks -------------------------------------------------------
start_agent h1 a2 --log-level warn && wait_agent a2 || exit 1
S=$(agent_sock a2)
$PY - "$S" "$RSS_NETS" <<'PYEOF'
import sys
sys.path.insert(0, "bench")
from client import run_parallel
sock, n = sys.argv[1], int(sys.argv[2])
run_parallel(sock, [("PUT", "/v1/networks/m%d" % i,
                     {"vni": 20000 + i, "subnet": "198.18.%d.0/24" % (i % 256)}, (201,))
                    for i in range(n)])
PYEOF
rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$(agent_pid a2)/status")
$PY - "$S" "$RSS_NETS" <<'PYEOF'
import sys
sys.path.insert(0, "bench")
from client import run_parallel
sock, n = sys.argv[1], int(sys.argv[2])
run_parallel(sock, [("DELETE", "/v1/networks/m%d" % i, None, (204,)) for i in range(n)])
PYEOF
stop_agent a2

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
cat <<TXT

netagent benchmark: $NETS networks x 2 endpoints, $REMOTES remote endpoints, delete all
| variant                         | seconds | netagent / variant |
|---------------------------------|---------|--------------------|
| netagent API                    | $(printf '%7s' "$t_agent") | 1.00               |
| iproute2 script (1 proc/object) | $(printf '%7s' "$t_script") | $(printf '%-18s' "$(ratio "$t_agent" "$t_script")") |
| iproute2 -batch (floor)         | $(printf '%7s' "$t_batch") | $(printf '%-18s' "$(ratio "$t_agent" "$t_batch")") |
netagent phases: $phases
speed-up over the script: $(ratio "$t_script" "$t_agent")x; goal: ratio vs batch <= 1.0
agent RSS with $RSS_NETS networks: $((rss_kb / 1024)) MiB (goal < 30 MiB)
TXT
