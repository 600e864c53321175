#!/usr/bin/env bash
# Containers: the security defaults, each probed inside a container the agent runs and, as the
# positive control, by the same probe in the same bundle run by hand with `runc run` and only
# that restriction lifted (so the probe itself works and the restriction is what stops it).
# mount, user namespaces (unshare and clone(CLONE_NEWUSER)), module loading, host pids,
# /proc/sys writes, masked /proc files, read-only root, no_new_privileges and capabilities (as
# the kernel reports them in /proc/self/status).
. "$(dirname "$0")/../lib.sh"

command -v runc >/dev/null || bail "runc not found (scripts/deps.sh)"
J=(-H 'Content-Type: application/json')
mkhost h1
start_agent h1 a1 || bail "agent a1 did not start"
CTL=("$NETAGENTCTL" --socket "$(agent_sock a1)")
AG=$(agent_name a1)

# The most a generic container may have: root with every capability the role allows.
api a1 PUT /v1/containers/root1 "${J[@]}" -d '{"command":["sleep","100000"],"user":{"uid":0},
  "capabilities":["CHOWN","DAC_OVERRIDE","FOWNER","FSETID","KILL","SETGID","SETUID","SETPCAP",
  "NET_BIND_SERVICE","NET_RAW","AUDIT_WRITE"],"stop_timeout_s":0}'
[ "$HTTP_CODE" = 201 ] || bail "root1: $(last_req)"
BUNDLE=$(json_get runtime.bundle "$HTTP_BODY")
api a1 PUT /v1/containers/nob "${J[@]}" -d '{"command":["sh","-c","grep -E \"^(NoNewPrivs|Seccomp|CapEff|CapBnd|CapAmb):\" /proc/self/status; sleep 100000"],"stop_timeout_s":0}'
[ "$HTTP_CODE" = 201 ] || bail "nob: $(last_req)"

inside() { "${CTL[@]}" ct exec "$@" 2>&1; } # CONTAINER CMD…

# control MODS CMD…: runs CMD in root1's bundle by hand, with MODS (comma-separated) lifted:
# seccomp, caps (all of them), pidns, readonly (readonlyPaths), masked (maskedPaths), nnp.
N=0
control() {
	local mods=$1 b
	shift
	N=$((N + 1))
	b=$NA_TMP/ctl$N
	mkdir -p "$b" "$NA_TMP/ctlroot"
	$PY - "$BUNDLE/config.json" "$b/config.json" "$BUNDLE/rootfs" "/netagent/$AG/ctl$N" "$mods" "$@" <<'PYEOF'
import json, sys
src, dst, rootfs, cg, mods = sys.argv[1:6]
args = sys.argv[6:]
mods = set(mods.split(","))
c = json.load(open(src))
c["root"]["path"] = rootfs
c["process"]["args"] = args
c["linux"]["cgroupsPath"] = cg
if "seccomp" in mods:
    del c["linux"]["seccomp"]
if "caps" in mods:
    names = ("CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP "
             "LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER "
             "SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE "
             "SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP").split()
    # Every capability this test holds itself (runc cannot give more).
    bnd = int([l.split()[1] for l in open("/proc/self/status") if l.startswith("CapBnd:")][0], 16)
    allc = ["CAP_" + n for i, n in enumerate(names) if bnd >> i & 1]
    c["process"]["capabilities"] = {k: allc for k in ("bounding", "effective", "permitted", "inheritable", "ambient")}
if "pidns" in mods:
    c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "pid"]
if "readonly" in mods:
    c["linux"]["readonlyPaths"] = []
if "masked" in mods:
    c["linux"]["maskedPaths"] = []
if "nnp" in mods:
    c["process"]["noNewPrivileges"] = False
if "nobody" in mods:
    c["process"]["user"] = {"uid": 65534, "gid": 65534}
json.dump(c, open(dst, "w"))
PYEOF
	timeout 20 runc --root "$NA_TMP/ctlroot" run --bundle "$b" "${AG}-ctl$N" </dev/null 2>&1
}

# ---- mount
out=$(inside root1 mount -t tmpfs x /tmp)
rc=$?
[ $rc -ne 0 ] && ok "mount fails inside, even as root (${out%%$'\n'*})" || not_ok "mount fails inside" "exit 0: $out"
out=$(control caps mount -t tmpfs x /tmp)
[ $? -ne 0 ] && ok "with CAP_SYS_ADMIN but the seccomp profile, mount still fails" ||
	not_ok "seccomp alone refuses mount" "$out"
out=$(control seccomp,caps sh -c 'mount -t tmpfs x /tmp && grep -c " /tmp tmpfs .*size=" /proc/self/mounts')
like "control: without seccomp and with CAP_SYS_ADMIN the same mount works" "$out" "^[1-9]"

# ---- user namespaces
out=$(inside root1 unshare -U true)
[ $? -ne 0 ] && ok "unshare -U fails inside ($out)" || not_ok "unshare -U fails inside" "$out"
out=$(control seccomp unshare -U true)
[ $? -eq 0 ] && ok "control: without seccomp, unshare -U works" || not_ok "control: unshare -U" "$out"
CLONE='import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
r = libc.syscall(56, 0x10000000 | 17, 0, 0, 0, 0)  # clone(CLONE_NEWUSER | SIGCHLD)
if r == 0:
    os._exit(0)
if r > 0:
    os.waitpid(r, 0)
    print("cloned")
else:
    print("errno", ctypes.get_errno())'
is "clone(CLONE_NEWUSER) fails inside: EPERM" "$(inside root1 python3 -c "$CLONE")" "errno 1"
is "control: without seccomp it makes a user namespace" "$(control seccomp python3 -c "$CLONE")" cloned
THREAD='import threading; t = threading.Thread(target=lambda: None); t.start(); t.join(); print("thread ok")'
is "threads still work (clone3 is ENOSYS, glibc falls back to clone)" "$(inside root1 python3 -c "$THREAD")" "thread ok"

# ---- kernel modules
MOD='import ctypes
libc = ctypes.CDLL(None, use_errno=True)
r = libc.syscall(175, None, 0, b"")  # init_module(NULL, 0, "")
print("errno", ctypes.get_errno())'
is "init_module fails inside: EPERM from the seccomp profile" "$(inside root1 python3 -c "$MOD")" "errno 1"
out=$(control seccomp,caps python3 -c "$MOD")
# This kernel has no module support: without the filter the call reaches the kernel, which
# answers ENOSYS (38) or, with modules, EFAULT/EINVAL: anything but the filter's EPERM.
like "control: without seccomp (CAP_SYS_MODULE) the call reaches the kernel" "$out" "^errno ([02-9]|[1-9][0-9])"

# ---- host pids
out=$(inside nob sh -c "ls /proc | grep -c '^[0-9]'; test -e /proc/$$ && echo sees-host")
like "inside, /proc shows only the container's processes" "$out" "^[1-5]$"
out=$(control pidns sh -c "test -e /proc/$$ && echo sees-host")
is "control: without the pid namespace the test's shell ($$) is visible" "$out" sees-host

# ---- /proc/sys
out=$(inside root1 sh -c 'echo ctl > /proc/sys/kernel/hostname')
like "writing /proc/sys fails inside" "$out" "Read-only file system"
out=$(control readonly,caps,seccomp sh -c 'echo probe > /proc/sys/kernel/hostname && cat /proc/sys/kernel/hostname')
is "control: without readonlyPaths (and with CAP_SYS_ADMIN) the write works (own UTS ns)" "$out" probe

# ---- masked /proc files
is "/proc/keys is masked (a character device: /dev/null)" "$(inside nob sh -c 'test -c /proc/keys && echo masked')" masked
is "control: without maskedPaths it is the kernel's file" "$(control masked sh -c 'test -f /proc/keys && echo file')" file

# ---- read-only root
like "the root is read-only, even for root" "$(inside root1 touch /probe)" "Read-only file system"
like "so is the host's /usr" "$(inside root1 touch /usr/probe)" "Read-only file system"
is "control: /tmp, a private tmpfs, is writable" "$(inside nob sh -c 'touch /tmp/probe && ls -ld /tmp | cut -c1-10')" drwxrwxrwt

# ---- no_new_privileges, capabilities
api a1 GET /v1/containers/nob/logs
st=$(json_get lines "$HTTP_BODY" | $PY -c 'import json,sys; print(" ".join(l["text"].replace("\t","") for l in json.load(sys.stdin)))')
like "the container's process: NoNewPrivs 1, seccomp filter mode" "$st" "NoNewPrivs:1 Seccomp:2"
like "and no capability at all (unprivileged default)" "$st" "CapEff:0000000000000000 CapBnd:0000000000000000 CapAmb:0000000000000000"
like "root1 has only the allowed capabilities (no SYS_ADMIN: bit 21)" "$(inside root1 grep CapBnd /proc/self/status)" "CapBnd:	00000000200025fb"
out=$(control nnp,caps grep -E "^(NoNewPrivs|CapBnd):" /proc/self/status | tr -d '\t' | tr '\n' ' ')
like "control: the same probe sees NoNewPrivs 0 and capabilities when those are lifted" "$out" "CapBnd:0+[1-9a-f][0-9a-f]* NoNewPrivs:0"
api a1 DELETE /v1/containers/root1
api a1 DELETE /v1/containers/nob
is "controls cleaned up: no container left in the hand-run root" "$(runc --root "$NA_TMP/ctlroot" list -q | wc -l)" 0
finish
