#!/usr/bin/env bash
# The state store (netagent/state*.c) under kill -9: tests/integration/state_crash.c, built
# here from the store's own sources, streams single and batched puts/deletes from two threads
# (one kind each) and logs every operation before it starts and its ack once it returned.
# Each round kills it at a random moment and reloads: every acknowledged change must be there,
# of the one operation in flight per thread a prefix of its objects (what state.h promises
# for a batch), every object whole, and nothing quarantined. Then the cost of one change: per-put time flat from 100 to 5,000 objects.
. "$(dirname "$0")/../lib.sh"

command -v python3 >/dev/null || bail "python3 not found"

BIN=$NA_TMP/state_crash
# shellcheck disable=SC2046 # pkg-config output is a word list
if ! ${CC:-cc} -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -I"$NA_ROOT" -O2 -g -o "$BIN" \
	"$NA_ROOT/tests/integration/state_crash.c" "$NA_ROOT/netagent/state.c" \
	"$NA_ROOT/netagent/state_load.c" "$NA_ROOT/netagent/validate.c" "$NA_ROOT/netagent/err.c" \
	"$NA_ROOT/netagent/log.c" $(pkg-config --cflags --libs jansson) -lpthread \
	>"$NA_TMP/build.log" 2>&1; then
	not_ok "state_crash builds" "$(cat "$NA_TMP/build.log")"
	finish
fi
ok "state_crash builds"

DIR=$NA_TMP/state
ROUNDS=${NA_CRASH_ROUNDS:-12}

# check.py BEFORE LOG AFTER: AFTER = BEFORE + every acked op of LOG + a prefix (maybe empty,
# maybe all) of each thread's last op when it has no ack (it was in flight). Prints one line;
# exit 1 on a mismatch.
cat >"$NA_TMP/check.py" <<'EOF'
import json, sys
before = json.load(open(sys.argv[1]))
after = json.load(open(sys.argv[3]))
ops, acked = {}, set()
raw = open(sys.argv[2], "rb").read().decode()
lines = raw.split("\n")
if not raw.endswith("\n"):
    lines = lines[:-1]  # cut mid-write: that op never started
for ln in lines:
    f = ln.split()
    if not f:
        continue
    if f[0] == "op":
        ops.setdefault(int(f[1]), []).append(f[2:])
    elif f[0] == "ack":
        acked.add((int(f[1]), int(f[2])))

def apply(state, t, op):
    i, typ, kind, args = int(op[0]), op[1], op[2], op[3:]
    k = state.setdefault(kind, {})
    for a in args:
        if typ.startswith("del"):
            k.pop(a, None)
        else:
            name, slot, pad = a.split(":")
            k[name] = {"op": i, "t": t, "slot": int(slot), "pad": "x" * int(pad)}

want = {k: dict(v) for k, v in before.items() if k != "quarantined"}
pending, nack = [], 0
for t, tops in sorted(ops.items()):
    for op in tops:
        if (t, int(op[0])) in acked:
            apply(want, t, op)
            nack += 1
        else:
            pending.append((t, op))
# each thread's unacked op (at most one: the next one starts after the ack) applied up to
# some prefix of its objects (state.h: after kill -9 a batch leaves a prefix in array order)
cands = [want]
for t, op in pending:
    nxt = []
    for c in cands:
        for n in range(len(op) - 3 + 1):
            w = {k: dict(v) for k, v in c.items()}
            apply(w, t, op[:3 + n])
            nxt.append(w)
    cands = nxt
got = {k: v for k, v in after.items() if k != "quarantined"}
def norm(s):
    return {k: v for k, v in s.items() if v}
okk = any(norm(c) == norm(got) for c in cands) and after.get("quarantined", 0) == 0
print("%d acked ops, %d in flight, %d objects after reload, quarantined %s" %
      (nack, len(pending), sum(len(v) for v in got.values()), after.get("quarantined")))
if not okk:
    for kind in sorted(set(want) | set(got)):
        w, g = want.get(kind, {}), got.get(kind, {})
        for n in sorted(set(w) | set(g)):
            if w.get(n) != g.get(n):
                print("  %s/%s: want op %s, got op %s" % (kind, n, (w.get(n) or {}).get("op"),
                      (g.get(n) or {}).get("op")))
                break
sys.exit(0 if okk else 1)
EOF

mkdir -p "$DIR"
"$BIN" dump "$DIR" >"$NA_TMP/before.json" || bail "state_crash dump of an empty store failed"
bad=0 total=0
for r in $(seq "$ROUNDS"); do
	log=$NA_TMP/ops.$r
	"$BIN" run "$DIR" "$r$RANDOM" "$log" &
	pid=$!
	track_pid "$pid"
	# 150..650 ms: a different point of some operation each round
	sleep "0.$((150 + RANDOM % 500))"
	kill -9 "$pid"
	wait "$pid" 2>/dev/null
	if ! "$BIN" dump "$DIR" >"$NA_TMP/after.json" 2>"$NA_TMP/dump.err"; then
		not_ok "round $r: the store reloads after kill -9" "$(cat "$NA_TMP/dump.err")"
		bad=$((bad + 1))
		break
	fi
	if out=$(python3 "$NA_TMP/check.py" "$NA_TMP/before.json" "$log" "$NA_TMP/after.json"); then
		diag "round $r: $out"
		total=$((total + $(awk '{print $1; exit}' <<<"$out")))
	else
		not_ok "round $r: every acknowledged change survives kill -9" "$out"
		bad=$((bad + 1))
	fi
	mv "$NA_TMP/after.json" "$NA_TMP/before.json"
done
[ "$bad" = 0 ] && ok "kill -9 in $ROUNDS rounds ($total acknowledged operations): every acknowledged change survived, in-flight batches a prefix, no torn object, nothing quarantined"
if [ "$total" -ge $((ROUNDS * 20)) ]; then
	ok "the rounds did real work ($total acknowledged operations)"
else
	not_ok "the rounds did real work" "only $total acknowledged operations"
fi

# ---- cost of one change: a put's time must not grow with the objects already stored
declare -A each=()
for n in 100 1000 5000; do
	line=$("$BIN" bench "$NA_TMP/bench$n" "$n") || { not_ok "bench $n runs"; continue; }
	diag "$line"
	each[$n]=$(sed -n 's/.*put: [0-9.]* s (\([0-9.]*\) ms each).*/\1/p' <<<"$line")
done
if [ -n "${each[100]:-}" ] && [ -n "${each[5000]:-}" ]; then
	# 3x (plus 0.2 ms for a noisy disk) allows jitter; an O(n) rewrite would be ~50x
	if python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); sys.exit(0 if b <= 3*a + 0.2 else 1)" \
		"${each[100]}" "${each[5000]}"; then
		ok "single put: ${each[100]} ms each at 100 objects, ${each[1000]:-?} at 1000, ${each[5000]} at 5000 (flat)"
	else
		not_ok "single put cost is flat" "${each[100]} ms at 100, ${each[5000]} ms at 5000 objects"
	fi
else
	not_ok "bench printed its timings"
fi

finish
