#!/usr/bin/python3
"""Drives netagent's API for the benchmark: parallel keep-alive clients on
the unix socket, one phase at a time, printing seconds per phase as JSON."""
import http.client, json, socket, sys, threading, time

class UConn(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=120)
        self.path = path
    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(120)
        s.connect(self.path)
        self.sock = s

def run_parallel(sock, reqs, workers=8):
    """reqs: list of (method, url, body or None, expected statuses)."""
    errors = []
    idx = [0]
    lock = threading.Lock()
    def worker():
        c = UConn(sock)
        while True:
            with lock:
                if idx[0] >= len(reqs):
                    return
                m, u, b, ok = reqs[idx[0]]
                idx[0] += 1
            body = json.dumps(b) if b is not None else None
            c.request(m, u, body=body, headers={"Content-Type": "application/json"} if body else {})
            r = c.getresponse()
            data = r.read()
            if r.status not in ok:
                with lock:
                    errors.append("%s %s -> %d %s" % (m, u, r.status, data[:200]))
    ts = [threading.Thread(target=worker) for _ in range(workers)]
    for t in ts: t.start()
    for t in ts: t.join()
    if errors:
        print("\n".join(errors[:5]), file=sys.stderr)
        sys.exit(1)

def subnet(i):
    # Network n0 receives the 5,000 remote endpoints: it needs a /16.
    return "198.19.0.0/16" if i == 0 else "198.18.%d.0/24" % i

def ep_ip(i, e):
    return ("198.19.0.%d/16" if i == 0 else "198.18.%d.%%d/24" % i) % (10 + e)

def main():
    sock, prefix, nnets, nremote = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    # "bulk": one POST of every remote; "single": the controller's usual
    # pattern, one PUT per remote endpoint, each acknowledged durably.
    mode = sys.argv[5] if len(sys.argv) > 5 else "bulk"
    out = {}
    t0 = time.monotonic()
    run_parallel(sock, [("PUT", "/v1/networks/n%d" % i,
                         {"vni": 1000 + i, "subnet": subnet(i)}, (201,))
                        for i in range(nnets)])
    out["networks"] = time.monotonic() - t0
    t = time.monotonic()
    reqs = []
    for i in range(nnets):
        for e in range(2):
            reqs.append(("PUT", "/v1/networks/n%d/endpoints/e%d" % (i, e),
                         {"netns": "/run/netns/%se%d-%d" % (prefix, i, e),
                          "ip": ep_ip(i, e)}, (201,)))
    run_parallel(sock, reqs)
    out["endpoints"] = time.monotonic() - t
    t = time.monotonic()
    items = []
    for k in range(nremote):
        a = 100 + k
        items.append({"name": "r%d" % k, "ip": "198.19.%d.%d/16" % (a // 256, a % 256),
                      "mac": "02:84:c6:13:%02x:%02x" % (a // 256, a % 256),
                      "vtep": "192.0.2.%d" % (20 + k % 200)})
    if nremote and mode == "bulk":
        run_parallel(sock, [("POST", "/v1/networks/n0/remote-endpoints", {"items": items},
                             (200,))], 1)
    elif nremote:
        run_parallel(sock, [("PUT", "/v1/networks/n0/remote-endpoints/" + it["name"],
                             {k: v for k, v in it.items() if k != "name"}, (201,))
                            for it in items])
    out["remotes"] = time.monotonic() - t
    t = time.monotonic()
    reqs = [("DELETE", "/v1/networks/n%d?force=true" % i, None, (204,)) for i in range(nnets)]
    run_parallel(sock, reqs)
    out["delete"] = time.monotonic() - t
    out["total"] = time.monotonic() - t0
    print(json.dumps(out))

if __name__ == "__main__":
    main()
