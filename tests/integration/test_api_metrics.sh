#!/usr/bin/env bash
# GET /metrics (SPEC §4): Prometheus text format with request counts by route/method/code,
# a latency histogram and the uptime.
. "$(dirname "$0")/../lib.sh"

mkhost h1
start_agent h1 a1 || bail "agent did not start"

for _ in 1 2 3; do api a1 GET /v1/health; done
api a1 GET /v1/host
api a1 GET /v1/nope
api a1 DELETE /v1/health

api a1 GET /metrics
is "GET /metrics → 200" "$HTTP_CODE" 200
like "metrics content type is Prometheus text" "$(http_header Content-Type)" '^text/plain'
M1=$HTTP_BODY
printf '%s\n' "$M1" >"$NA_TMP/m1"
sleep 1.2
api a1 GET /v1/health
api a1 GET /metrics
printf '%s\n' "$HTTP_BODY" >"$NA_TMP/m2"

# One Python pass parses both scrapes strictly and prints one verdict per line:
# "ok|not ok<TAB>description<TAB>detail".
cat >"$NA_TMP/prom.py" <<'EOF'
import re, sys
LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (-?[0-9.eE+-]+|[+-]Inf|NaN)( [0-9]+)?$')
LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)')

def parse(path):
    samples, types, bad = [], {}, []
    for ln in open(path).read().splitlines():
        if not ln.strip():
            continue
        if ln.startswith("# TYPE "):
            p = ln.split()
            types[p[2]] = p[3] if len(p) > 3 else ""
            continue
        if ln.startswith("#"):
            continue
        m = LINE.match(ln)
        if not m:
            bad.append(ln)
            continue
        labels, rest = {}, m.group(3) or ""
        while rest:
            lm = LABEL.match(rest)
            if not lm:
                bad.append(ln)
                break
            labels[lm.group(1)] = lm.group(2)
            rest = rest[lm.end():]
        samples.append((m.group(1), labels, float(m.group(4))))
    return samples, types, bad

out = []
def verdict(good, desc, detail=""):
    out.append("%s\t%s\t%s" % ("ok" if good else "not ok", desc, detail))

s1, t1, bad1 = parse(sys.argv[1])
s2, t2, bad2 = parse(sys.argv[2])
verdict(not bad1 and not bad2, "every sample line parses", "; ".join((bad1 + bad2)[:3]))

def find(samples, name, **want):
    return [v for n, l, v in samples if n == name and all(l.get(k) == x for k, x in want.items())]

R = "netagent_http_requests_total"
verdict(t1.get(R) == "counter", R + " is TYPE counter", t1.get(R, "missing"))
h = find(s1, R, route="/v1/health", method="GET", code="200")
verdict(h and h[0] >= 3, R + '{route="/v1/health",method="GET",code="200"} >= 3', str(h))
h2 = find(s2, R, route="/v1/health", method="GET", code="200")
verdict(h and h2 and h2[0] > h[0], "the counter grows between scrapes", "%s -> %s" % (h, h2))
verdict(bool(find(s1, R, route="/v1/host", method="GET", code="200")), "GET /v1/host counted")
verdict(sum(find(s1, R, code="404")) >= 1, "a 404 is counted with code=\"404\"",
        str([(n, l) for n, l, v in s1 if n == R]))
verdict(sum(find(s1, R, code="405")) >= 1, "a 405 is counted with code=\"405\"")
labels = set(k for n, l, v in s1 if n == R for k in l)
verdict({"route", "method", "code"} <= labels, R + " has route, method and code labels", str(labels))
# Unmatched paths must not become label values: that would be unbounded cardinality.
verdict(not any(l.get("route") == "/v1/nope" for n, l, v in s1 if n == R),
        "an unknown path does not become a route label value")

H = "netagent_http_request_duration_seconds"
verdict(t1.get(H) == "histogram", H + " is TYPE histogram", t1.get(H, "missing"))
series = {}
for n, l, v in s1:
    if n == H + "_bucket":
        key = tuple(sorted((k, x) for k, x in l.items() if k != "le"))
        series.setdefault(key, []).append((float(l["le"]), v))
verdict(bool(series), H + "_bucket samples present")
good, detail = True, ""
total = 0
for key, b in series.items():
    b.sort()
    vals = [v for _, v in b]
    cnt = find(s1, H + "_count", **dict(key))
    sm = find(s1, H + "_sum", **dict(key))
    if b[-1][0] != float("inf") or vals != sorted(vals) or not cnt or cnt[0] != vals[-1] or not sm:
        good, detail = False, "series %s buckets %s count %s sum %s" % (key, b, cnt, sm)
    total += vals[-1] if vals else 0
verdict(good and len(series) > 0, "buckets cumulative, +Inf bucket == _count, _sum present", detail)
verdict(total >= 6, "histogram counted the requests (>= 6)", str(total))

U = "netagent_uptime_seconds"
u1, u2 = find(s1, U), find(s2, U)
verdict(bool(u1) and u1[0] >= 0, U + " present", str(u1))
verdict(bool(u1) and bool(u2) and u2[0] > u1[0], U + " grows (1.2 s apart)", "%s -> %s" % (u1, u2))
print("\n".join(out))
EOF
while IFS=$'\t' read -r verdict desc detail; do
	if [ "$verdict" = ok ]; then ok "$desc"; else not_ok "$desc" "$detail"; fi
done < <("$PY" "$NA_TMP/prom.py" "$NA_TMP/m1" "$NA_TMP/m2" 2>&1 | sed '/^\(ok\|not ok\)\t/!s/^/not ok\tmetrics parser crashed\t/')

finish
