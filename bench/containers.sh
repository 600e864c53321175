#!/usr/bin/env bash
# Container benchmark (make bench, or alone):
#   - start latency: PUT of an `echo` container to the first byte of its output, beside
#     `runc run` by hand of the same bundle to the first byte on its stdout, BENCH_CT_RUNS (20)
#     of each, interleaved (the order rotates every round, so neither side always runs first or
#     after the other's clean-up), each one started on a settled machine: the previous run's
#     process, runc delete, netns removal and monitor exit are over, then BENCH_CT_SETTLE s.
#     Both sides give the container the same namespace set, including a new network namespace:
#     the agent makes a named one (lo up) for each container; by hand, runc makes it (and
#     brings lo up) from the same bundle without the netns path. Neither side attaches a veth
#     (the container has no network): the attach is the overlay's cost, not the start's, and
#     would be timed by hand through whatever tool made it. A third variant joins one existing
#     netns (less work than the agent does) and is shown for reference.
#     Timing is the same on both sides: time.monotonic() just before the request (the PUT on
#     the agent's socket; the fork of runc), and when the first byte reaches this process
#     (inotify on the container's log; a read on runc's stdout pipe).
#     Goal: median(agent) <= 1.3 x median(runc by hand); printed with min/median/max.
#     The agent's run dir (bundles, netns files, runc's root) and the hand runs' bundle and
#     runc root are on one tmpfs, as under /run on a host (BENCH_CT_TMPFS=0: on $NA_TMP's file
#     system instead, which on a test VM may be a disk other tests are busy fsyncing).
#   - BENCH_CT_MANY (50) containers PUT at once: time until every one runs (each PUT answers
#     once its container runs), the agent's RSS then, and the monitors' RSS.
#   - adoption: kill -9 of the agent with those containers running, restart, time until every
#     one is reported running with its old pid (nothing restarted).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
RUNS=${BENCH_CT_RUNS:-20}
MANY=${BENCH_CT_MANY:-50}
SETTLE=${BENCH_CT_SETTLE:-0.15}
TMPFS=${BENCH_CT_TMPFS:-1}
GOAL=1.3
# shellcheck source=../tests/lib.sh
source tests/lib.sh
# shellcheck source=summary.sh
source bench/summary.sh
PY=/usr/bin/python3
command -v runc >/dev/null || { echo "runc not installed (scripts/deps.sh)"; exit 1; }

mkhost h1
D=$(agent_dir b1)
if [ "$TMPFS" = 1 ]; then
	# Unmounted by the clean-up (a mount under $NA_TMP).
	mkdir -p "$D/run" && mount -t tmpfs -o size=512m,mode=0755 bench-run "$D/run" ||
		{ echo "cannot mount a tmpfs on $D/run"; exit 1; }
fi
start_agent h1 b1 --log-level warn || { echo "agent did not start"; exit 1; }
S=$(agent_sock b1)
AG=$(agent_name b1)

out=$($PY - "$S" "$D" "$AG" "$RUNS" "$MANY" "$NA_TMP" "$(agent_pid b1)" "$SETTLE" <<'PYEOF'
import ctypes, json, os, select, statistics, struct, subprocess, sys, time
sys.path.insert(0, "bench")
from client import UConn, run_parallel

sock, d, ag, runs, many, tmp, agent_pid = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], int(sys.argv[7])
settle = float(sys.argv[8])

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

def wait_exited(name, limit=10):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        st, data = req("GET", "/v1/containers/" + name)
        if st == 200 and json.loads(data)["state"] == "exited":
            return
        time.sleep(0.005)
    raise SystemExit("container %s did not exit" % name)

spec = {"command": ["/bin/echo", "first-byte"], "restart": "never"}
cts = d + "/run/containers"
# Warm-up (page cache, runc binary) for both, not counted; its bundle is the one run by hand.
req("PUT", "/v1/containers/warm", spec)
wait_exited("warm")

# The same bundle by hand: the warm-up container's config.json, with its rootfs (absolute).
b = d + "/run/handbundle"
os.makedirs(b, exist_ok=True)
cfg = json.load(open(cts + "/warm/bundle/config.json"))
cfg["root"]["path"] = cts + "/warm/bundle/rootfs"
netns = [n for n in cfg["linux"]["namespaces"] if n["type"] == "network"]
assert len(netns) == 1 and netns[0].get("path"), "the agent's bundle joins a network namespace"
join_path = netns[0]["path"]
root = d + "/run/handroot"
def by_hand(i, join):
    # join: the warm-up container's netns (exists); else runc makes a new one.
    if join:
        netns[0]["path"] = join_path
    else:
        netns[0].pop("path", None)
    cfg["linux"]["cgroupsPath"] = "/netagent/%s/hand%d" % (ag, i)
    with open(b + "/config.json", "w") as f:
        json.dump(cfg, f)
    t0 = time.monotonic()
    p = subprocess.Popen(["runc", "--root", root, "run", "--bundle", b, "%s-hand%d" % (ag, i)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    first = p.stdout.read(1)
    dt = time.monotonic() - t0
    p.stdout.read()
    if p.wait() != 0 or first != b"f":
        raise SystemExit("runc run by hand: exit %d, output %r" % (p.returncode, first))
    return dt
def agent_run(i):
    dt = put_first_byte("lat%d" % i, spec)
    wait_exited("lat%d" % i)
    req("DELETE", "/v1/containers/lat%d" % i)
    return dt

by_hand(0, False)
by_hand(1, True)
res = {"agent": [], "hand": [], "join": []}
sides = [("agent", lambda i: agent_run(i)), ("hand", lambda i: by_hand(1000 + i, False)),
         ("join", lambda i: by_hand(2000 + i, True))]
for i in range(runs):
    # A Latin square: each side runs first, second and third equally often.
    for k in range(len(sides)):
        key, fn = sides[(i + k) % len(sides)]
        time.sleep(settle)
        res[key].append(fn(i))
req("DELETE", "/v1/containers/warm")
agent, hand, join = res["agent"], res["hand"], res["join"]

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
# The containers' monitors: those with --id <agent>-<name> (not a spare one, idle).
def monitor_of_ours(p):
    a = cmdline(p)
    return a[0].endswith(b"netagent-monitor") and any(
        a[k] == b"--id" and a[k + 1].startswith((ag + "-").encode()) for k in range(len(a) - 1))
mons = [int(p) for p in os.listdir("/proc") if p.isdigit() and monitor_of_ours(p)]
rss_mon = sum(rss(p) for p in mons)
pids = {"m%d" % i: json.loads(req("GET", "/v1/containers/m%d" % i)[1])["pid"] for i in range(many)}
print(json.dumps({"agent": agent, "hand": hand, "join": join, "many": t_many, "running": running,
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

$PY - "$out" "$RUNS" "$MANY" "$GOAL" "$(stat -f -c %T "$D/run")" <<'PYEOF'
import json, statistics, sys
r = json.loads(sys.argv[1]); runs, many, goal, fs = sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5]
ms = lambda v: "%.1f" % (v * 1000)
med = statistics.median
a, h, j = med(r["agent"]), med(r["hand"]), med(r["join"])
row = lambda name, v: "| %-44s | %9s | %6s | %6s |" % (name, ms(med(v)), ms(min(v)), ms(max(v)))
# Ratio per round too (agent / by hand in the same round): drift cancels within a round.
pairs = [x / y for x, y in zip(r["agent"], r["hand"])]
print("""
container benchmark: start latency to the first byte of output, n=%s each, interleaved, run dir on %s
| variant                                      | median ms | min ms | max ms |
|----------------------------------------------|-----------|--------|--------|
%s
%s
%s
ratio of medians netagent / runc by hand: %.2f (goal <= %.1f: %s); per round: median %.2f (%.2f-%.2f)
for reference, netagent / runc joining an existing netns: %.2f
%s containers PUT at once: all running after %.2f s (%d running); deleted in %.2f s
agent RSS with %s containers: %.1f MiB; %d monitors: %.1f MiB in all (%.0f KiB each)
kill -9 of the agent, restart: %d of %s re-adopted (same pids, %d restarts) %.2f s after the restart""" % (
    runs, fs, row("netagent PUT (new netns, monitor)", r["agent"]),
    row("runc run by hand, same bundle, new netns", r["hand"]),
    row("runc run by hand, joining an existing netns", r["join"]),
    a / h, goal, "met" if a / h <= goal else "NOT met", med(pairs), min(pairs), max(pairs), a / j,
    many, r["many"], r["running"], r["delete_many"], many,
    r["rss_agent_kb"] / 1024, r["monitors"], r["rss_mon_kb"] / 1024,
    r["rss_mon_kb"] / max(1, r["monitors"]), r["adopted"], many, r["restarts"], r["adopt"]))
PYEOF
read -r a_ms h_ms ratio many_s rss < <($PY -c 'import json,statistics as s,sys; r=json.loads(sys.argv[1]); a,h=s.median(r["agent"]),s.median(r["hand"]); print("%.1f %.1f %.2f %.2f %.1f" % (a*1000, h*1000, a/h, r["many"], r["rss_agent_kb"]/1024))' "$out")
bench_row containers "start: PUT → first byte of output (median of $RUNS)" "$a_ms ms" "runc run by hand $h_ms ms" "${ratio}x" "<= ${GOAL}x"
bench_row containers "$MANY containers PUT at once → all running; agent RSS" "$many_s s; $rss MiB" "" "" ""
# The raw figures (seconds), for collecting several runs.
[ -z "${BENCH_CT_OUT:-}" ] || echo "$out" >"$BENCH_CT_OUT"
