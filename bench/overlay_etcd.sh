#!/usr/bin/env bash
# make bench, part of the overlay benchmark: time to learn BENCH_LEARN (5,000)
# endpoints published in etcd by other hosts, (1) at start — one range, the
# watch's reset — and (2) while running — 5,000 watch events in 50 txns of
# 100 puts — until every one is in the agent's model and in the kernel
# (neighbour entries on vxlan0).
set -uo pipefail
cd "$(dirname "$0")/.."
N=${BENCH_LEARN:-5000}
# shellcheck source=../tests/lib.sh
source tests/lib.sh
PY=/usr/bin/python3

start_etcd_cluster 1 || { echo "etcd did not start"; exit 1; }
mkhost h1

# publish NET VNI: N endpoint keys of net NET from 100 invented hosts.
publish() {
	in_host etcd1 "$PY" - "$(etcd_url 1)" "$1" "$N" "$2" <<'PYEOF'
import base64, json, sys, urllib.request
url, net, n, vni = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
b = lambda s: base64.b64encode(s.encode()).decode()
ops = []
for k in range(n):
    a = 100 + k
    host = "x%02d" % (k % 100)
    v = {"host": host, "ip": "198.19.%d.%d/16" % (a // 256, a % 256),
         "mac": "02:84:c6:13:%02x:%02x" % (a // 256, a % 256), "vni": vni,
         "vtep": "192.0.2.%d" % (100 + k % 100)}
    ops.append({"request_put": {"key": b("/netagent/v1/endpoints/%s/%s/e%d" % (net, host, k)),
                                "value": b(json.dumps(v, sort_keys=True))}})
for i in range(0, n, 100):
    req = urllib.request.Request(url + "/v3/kv/txn", json.dumps({"success": ops[i:i + 100]}).encode())
    urllib.request.urlopen(req, timeout=10).read()
PYEOF
}
learned() { # NET → number of learned endpoints the agent lists
	api a1 GET "/v1/networks/$1"
	json_get endpoints.remote "$HTTP_BODY" 2>/dev/null
}
in_kernel() { nsenter --net="$(agent_dir a1)/run/netns/$(agent_name a1)-$1" ip neigh show dev vxlan0 | grep -c PERMANENT; }
wait_count() { # SECS CMD… : until CMD prints N
	local end=$(($(now_ms) + $1 * 1000))
	shift
	until [ "$("$@")" = "$N" ]; do [ "$(now_ms)" -ge $end ] && return 1; sleep 0.05; done
}

publish big 7001 || { echo "publishing to etcd failed"; exit 1; }
t0=$(now_ms)
start_agent h1 a1 --log-level warn --etcd "$(etcd_urls)" || exit 1
api a1 PUT /v1/networks/big -d '{"vni":7001,"subnet":"198.19.0.0/16"}'
wait_count 60 learned big || { echo "not learned at start"; exit 1; }
t_model=$(($(now_ms) - t0))
wait_count 60 in_kernel big || { echo "not programmed at start"; exit 1; }
t_kern=$(($(now_ms) - t0))

# While running: every key arrives as a watch event (50 txns of 100 puts).
api a1 PUT /v1/networks/run -d '{"vni":7002,"subnet":"198.19.0.0/16"}'
t0=$(now_ms)
publish run 7002 || { echo "publishing to etcd failed"; exit 1; }
t_pub=$(($(now_ms) - t0))
wait_count 60 learned run || { echo "not learned while running"; exit 1; }
t_run=$(($(now_ms) - t0))
wait_count 60 in_kernel run || { echo "not programmed while running"; exit 1; }
t_runk=$(($(now_ms) - t0))
rss=$(awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$(agent_pid a1)/status")
cat <<TXT

learning $N endpoints from etcd (one etcd member, agent on a simulated host)
| what                                             | ms     |
|--------------------------------------------------|--------|
| at start: agent start → all $N in the model       | $(printf '%6s' "$t_model") |
| at start: agent start → all $N in the kernel      | $(printf '%6s' "$t_kern") |
| running: $N keys published (50 txns), by the writer | $(printf '%6s' "$t_pub") |
| running: first put → all $N in the model          | $(printf '%6s' "$t_run") |
| running: first put → all $N in the kernel         | $(printf '%6s' "$t_runk") |
agent RSS with $((2 * N)) endpoints cached: ${rss} MiB
TXT
finish >/dev/null
