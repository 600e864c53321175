#!/usr/bin/env bash
# Container benchmark (make bench, or alone):
#   - start latency: PUT of an `echo` container to the first byte of its output in its log,
#     median of BENCH_CT_RUNS (20), beside `runc run` of the same bundle by hand (joining a
#     network namespace made beforehand, so runc does the same work) to the first byte on its
#     stdout, in the same run. Goal: agent <= 1.3 x runc by hand.
#   - BENCH_CT_MANY (50) containers PUT at once: time until every one runs (each PUT answers
#     once its container runs), the agent's RSS then, and the monitors' RSS.
#   - adoption: kill -9 of the agent with those containers running, restart, time until every
#     one is reported running with its old pid (nothing restarted).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
RUNS=${BENCH_CT_RUNS:-20}
MANY=${BENCH_CT_MANY:-50}
# shellcheck source=../tests/lib.sh
source tests/lib.sh
PY=/usr/bin/python3
command -v runc >/dev/null || { echo "runc not installed (scripts/deps.sh)"; exit 1; }

mkhost h1
start_agent h1 b1 --log-level warn || { echo "agent did not start"; exit 1; }
S=$(agent_sock b1)
D=$(agent_dir b1)
AG=$(agent_name b1)

out=$($PY - "$S" "$D" "$AG" "$RUNS" "$MANY" "$NA_TMP" "$(agent_pid b1)" <<'PYEOF'
import ctypes, json, os, select, statistics, struct, subprocess, sys, time
sys.path.insert(0, "bench")
from client import UConn, run_parallel

sock, d, ag, runs, many, tmp, agent_pid = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], int(sys.argv[7])

def req(m, u, b=None):
    c = UConn(sock)
    c.request(m, u, body=json.dumps(b) if b is not None else None,
              headers={"Content-Type": "application/json"} if b is not None else {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data

# The first byte of a container's output, waited for with inotify (blocking,
# no CPU: a polling loop would take one of the two cores from runc). The
# container's run dir appears during the PUT; then its ctr.log is modified.
libc = ctypes.CDLL(None, use_errno=True)
IN_MODIFY, IN_CREATE = 0x2, 0x100
def inotify_watch(fd, path, mask):
    wd = libc.inotify_add_watch(fd, path.encode(), mask)
    if wd < 0:
        raise SystemExit("inotify_add_watch %s: errno %d" % (path, ctypes.get_errno()))
    return wd
def events(fd, limit):
    if not select.select([fd], [], [], limit)[0]:
        raise SystemExit("no output within %.0f s" % limit)
    buf, off = os.read(fd, 65536), 0
    while off < len(buf):
        wd, mask, _, n = struct.unpack_from("iIII", buf, off)
        name = buf[off + 16:off + 16 + n].split(b"\0")[0].decode()
        off += 16 + n
        yield wd, mask, name
def put_first_byte(name, body, limit=10):
    fd = libc.inotify_init1(os.O_CLOEXEC)
    top = inotify_watch(fd, cts, IN_CREATE)
    c = UConn(sock)
    t0 = time.monotonic()
    c.request("PUT", "/v1/containers/" + name, body=json.dumps(body),
              headers={"Content-Type": "application/json"})
    log, dt = cts + "/" + name + "/ctr.log", None
    while dt is None:
        for wd, mask, n in events(fd, limit):
            if wd == top and n == name:
                inotify_watch(fd, cts + "/" + name, IN_MODIFY)
            elif wd != top and n == "ctr.log" and mask & IN_MODIFY:
                dt = time.monotonic() - t0
        # The write may have come before the watch on the run dir.
        if dt is None and os.path.exists(log) and os.path.getsize(log) > 0:
            dt = time.monotonic() - t0
    os.close(fd)
    r = c.getresponse()
    data = r.read()
    c.close()
    if r.status != 201:
        raise SystemExit("PUT %s: %d %s" % (name, r.status, data[:200]))
    return dt

spec = {"command": ["/bin/echo", "first-byte"], "restart": "never"}
# Warm-up (page cache, runc binary) for both, not counted.
req("PUT", "/v1/containers/warm", spec)
cts = d + "/run/containers"

# The same bundle by hand: the warm-up container's config.json, its rootfs, its namespace.
b = tmp + "/handbundle"
os.makedirs(b, exist_ok=True)
cfg = json.load(open(d + "/run/containers/warm/bundle/config.json"))
cfg["root"]["path"] = d + "/run/containers/warm/bundle/rootfs"
root = tmp + "/handroot"
def by_hand(i):
    cfg["linux"]["cgroupsPath"] = "/netagent/%s/hand%d" % (ag, i)
    json.dump(cfg, open(b + "/config.json", "w"))
    t0 = time.monotonic()
    p = subprocess.Popen(["runc", "--root", root, "run", "--bundle", b, "%s-hand%d" % (ag, i)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    p.stdout.read(1)
    dt = time.monotonic() - t0
    p.stdout.read()
    p.wait()
    return dt

# Alternating, so that both see the same load from whatever else runs on the machine.
by_hand(0)
agent, hand = [], []
for i in range(runs):
    agent.append(put_first_byte("lat%d" % i, spec))
    hand.append(by_hand(i + 1))
    req("DELETE", "/v1/containers/lat%d" % i)
req("DELETE", "/v1/containers/warm")

# Many at once.
t0 = time.monotonic()
run_parallel(sock, [("PUT", "/v1/containers/m%d" % i,
                     {"command": ["sleep", "100000"], "stop_timeout_s": 0}, (201,))
                    for i in range(many)], workers=many)
t_many = time.monotonic() - t0
running = sum(1 for i in range(many)
              if json.loads(req("GET", "/v1/containers/m%d" % i)[1])["state"] == "running")
def rss(pid):
    try:
        for l in open("/proc/%d/status" % pid):
            if l.startswith("VmRSS:"):
                return int(l.split()[1])
    except OSError:
        pass
    return 0
rss_agent = rss(agent_pid)
def cmdline(pid):
    try:
        return open("/proc/%s/cmdline" % pid, "rb").read().split(b"\0")
    except OSError:  # gone meanwhile
        return [b""]
mons = [int(p) for p in os.listdir("/proc") if p.isdigit()
        and cmdline(p)[0].endswith(b"netagent-monitor") and (d + "/").encode() in b" ".join(cmdline(p))]
rss_mon = sum(rss(p) for p in mons)
pids = {"m%d" % i: json.loads(req("GET", "/v1/containers/m%d" % i)[1])["pid"] for i in range(many)}
print(json.dumps({"agent": agent, "hand": hand, "many": t_many, "running": running,
                  "rss_agent_kb": rss_agent, "monitors": len(mons), "rss_mon_kb": rss_mon,
                  "pids": pids}))
PYEOF
) || { echo "container benchmark failed"; tail -20 "$(agent_log b1)"; exit 1; }

# Adoption: kill -9 of the agent with the containers running, then a restart; the time from
# the restart to every container reported running with the pid it had (none restarted).
kill_agent b1 -9
t0=$(date +%s.%N)
start_agent h1 b1 --log-level warn || { echo "agent did not restart"; exit 1; }
adopt=$($PY - "$S" "$t0" "$out" <<'PYEOF'
import json, sys, time
sys.path.insert(0, "bench")
from client import UConn, run_parallel
sock, t0, pids = sys.argv[1], float(sys.argv[2]), json.loads(sys.argv[3])["pids"]
def items():
    c = UConn(sock)
    c.request("GET", "/v1/containers")
    r = c.getresponse()
    d = json.loads(r.read())
    c.close()
    return {i["name"]: i for i in d["items"]}
deadline = time.time() + 30
while True:
    cur = items()
    same = sum(1 for n, p in pids.items() if cur.get(n, {}).get("state") == "running"
               and cur[n].get("pid") == p)
    if same == len(pids) or time.time() > deadline:
        break
    time.sleep(0.01)
t_adopt = time.time() - t0
restarts = sum(cur.get(n, {}).get("restarts", 0) for n in pids)
t1 = time.monotonic()
run_parallel(sock, [("DELETE", "/v1/containers/%s" % n, None, (204,)) for n in pids],
             workers=len(pids))
print(json.dumps({"adopt": t_adopt, "adopted": same, "restarts": restarts,
                  "delete_many": time.monotonic() - t1}))
PYEOF
) || { echo "adoption benchmark failed"; tail -20 "$(agent_log b1)"; exit 1; }
stop_agent b1
out=$($PY -c 'import json,sys; a=json.loads(sys.argv[1]); a.update(json.loads(sys.argv[2])); print(json.dumps(a))' "$out" "$adopt")

$PY - "$out" "$RUNS" "$MANY" <<'PYEOF'
import json, statistics, sys
r = json.loads(sys.argv[1]); runs, many = sys.argv[2], sys.argv[3]
ms = lambda v: "%.1f" % (v * 1000)
a, h = statistics.median(r["agent"]), statistics.median(r["hand"])
print("""
container benchmark: start latency to the first byte of output, median of %s
| variant                          | median ms | min ms | max ms |
|----------------------------------|-----------|--------|--------|
| netagent PUT (netns, monitor)    | %9s | %6s | %6s |
| runc run by hand, same bundle    | %9s | %6s | %6s |
ratio netagent / runc by hand: %.2f (goal <= 1.3)
%s containers PUT at once: all running after %.2f s (%d running); deleted in %.2f s
agent RSS with %s containers: %.1f MiB; %d monitors: %.1f MiB in all (%.0f KiB each)
kill -9 of the agent, restart: %d of %s re-adopted (same pids, %d restarts) %.2f s after the restart""" % (
    runs, ms(a), ms(min(r["agent"])), ms(max(r["agent"])), ms(h), ms(min(r["hand"])),
    ms(max(r["hand"])), a / h, many, r["many"], r["running"], r["delete_many"], many,
    r["rss_agent_kb"] / 1024, r["monitors"], r["rss_mon_kb"] / 1024,
    r["rss_mon_kb"] / max(1, r["monitors"]), r["adopted"], many, r["restarts"], r["adopt"]))
PYEOF
