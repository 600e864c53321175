#!/usr/bin/env bash
# One status per error code (SPEC §4): every error the daemon can answer is set in the source as
# na_err_set(err, STATUS, "code", …) (the HTTP parser's fail(m, …) too) or a named NA_*_E* code; a code answered with two statuses,
# or missing from docs/api.md's table (or documented with another status), fails here. A
# controller branches on the code, so the code must mean one thing.
. "$(dirname "$0")/../lib.sh"
cd "$NA_ROOT" || bail "no repo"
cat >"$NA_TMP/codes.py" <<'PY'
import glob, re, sys
src = [f for d in ("netagent", "vxlan", "vip", "provision") for f in glob.glob(d + "/**/*.[ch]", recursive=True)
       if "/cli/" not in f]
macros = {}
for f in src:
    for m in re.finditer(r'#define\s+(NA_[A-Z0-9_]*E[A-Z0-9_]+)\s+"([a-z_]+)"', open(f).read()):
        macros[m.group(1)] = m.group(2)
uses = {}
pat = re.compile(r'(?:na_err_set\(\s*[^,]+|\bfail\(\s*m)\s*,\s*(\d{3})\s*,\s*("([a-z_]+)"|(NA_[A-Z0-9_]+))')
pat2 = re.compile(r'->status\s*=\s*(\d{3});\s*\n\s*snprintf\([^,]*code,[^,]*,\s*"([a-z_]+)"')
for f in src:
    text = open(f).read()
    for m in pat.finditer(text):
        code = m.group(3) or macros.get(m.group(4))
        if code:
            uses.setdefault(code, set()).add((int(m.group(1)), f))
    for m in pat2.finditer(text):
        uses.setdefault(m.group(2), set()).add((int(m.group(1)), f))
doc = {}
for line in open("docs/api.md"):
    m = re.match(r'\|\s*`([a-z_]+)`\s*\|\s*(\d{3})\s*\|', line)
    if m:
        doc[m.group(1)] = int(m.group(2))
bad = 0
for code in sorted(uses):
    statuses = sorted({s for s, _ in uses[code]})
    if len(statuses) > 1:
        print("TWO %s %s" % (code, " ".join("%d:%s" % (s, f) for s, f in sorted(uses[code]))))
        bad += 1
    elif code not in doc:
        print("UNDOC %s %d" % (code, statuses[0]))
        bad += 1
    elif doc[code] != statuses[0]:
        print("DOCDIFF %s source=%d doc=%d" % (code, statuses[0], doc[code]))
        bad += 1
print("codes=%d bad=%d" % (len(uses), bad))
PY
out=$("$PY" "$NA_TMP/codes.py" 2>&1)
n=$(echo "$out" | sed -n 's/^codes=\([0-9]*\).*/\1/p')
if [ "${n:-0}" -gt 20 ]; then ok "the source's error codes were found ($n)"; else not_ok "the source's error codes were found" "$out"; fi
two=$(echo "$out" | grep '^TWO' || true)
is "no error code is answered with two statuses" "$two" ""
undoc=$(echo "$out" | grep -E '^(UNDOC|DOCDIFF)' || true)
is "every error code is in docs/api.md with its status" "$undoc" ""
finish
