#!/usr/bin/env python3
"""A tiny stand-in for netagent's v1 API, for netagentctl's contract test.

It keeps networks and endpoints in memory and answers the way SPEC.md §4
says the agent does (status codes, {"error":{code,message,field}} bodies,
{"items":[...]} lists, SSE on /v1/events). It never touches the kernel.

  fake_api.py --socket PATH [--netns-prefix P] [--events-hold]
  fake_api.py --tls-listen ADDR:PORT --cert F --key F --ca F

--events-hold keeps the event stream open after the 3 canned events (for the
Ctrl-C test); otherwise the server ends the stream after them.
"""
import argparse
import ipaddress
import json
import os
import socketserver
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

MAX_BODY = 1024 * 1024
UNDERLAY = "192.0.2.10"
LOCK = threading.Lock()
NETS = {}  # name -> {"vni","subnet","mtu"}
EPS = {}  # net -> {name -> endpoint dict}
OPTS = None

EVENTS = [
    {"seq": 1, "ts": "2024-05-01T10:00:00.000Z", "type": "network", "action": "created",
     "name": "n1", "object": {"vni": 100}},
    {"seq": 2, "ts": "2024-05-01T10:00:01.000Z", "type": "endpoint", "action": "created",
     "name": "ep1", "object": {"network": "n1"}},
    {"seq": 3, "ts": "2024-05-01T10:00:02.000Z", "type": "network", "action": "deleted",
     "name": "n1", "object": None},
]


class ApiError(Exception):
    def __init__(self, status, code, message, field=None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def valid_name(s):
    import re
    return isinstance(s, str) and re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", s) is not None


def mac_of(ip):
    a, b, c, d = ipaddress.IPv4Address(ip).packed
    return "02:84:%02x:%02x:%02x:%02x" % (a, b, c, d)


def check_fields(body, spec):
    for k in body:
        if k not in spec:
            raise ApiError(422, "unknown_field", "unknown field %s" % k, k)
    for k, (typ, required) in spec.items():
        if k not in body:
            if required:
                raise ApiError(422, "missing_field", "%s is required" % k, k)
            continue
        v = body[k]
        if typ is int and (isinstance(v, bool) or not isinstance(v, int)):
            raise ApiError(422, "invalid_field", "%s must be an integer" % k, k)
        if typ is str and not isinstance(v, str):
            raise ApiError(422, "invalid_field", "%s must be a string" % k, k)


def net_view(name):
    n = NETS[name]
    eps = EPS.get(name, {}).values()
    return {"name": name, "vni": n["vni"], "subnet": n["subnet"], "mtu": n["mtu"],
            "netns": "/run/netns/%s%s" % (OPTS.netns_prefix, name),
            "endpoints": {"local": sum(1 for e in eps if e["local"]),
                          "remote": sum(1 for e in eps if not e["local"])},
            "status": "ready"}


def get_net(name):
    if name not in NETS:
        raise ApiError(404, "not_found", "network %s does not exist" % name)
    return NETS[name]


def put_network(name, body, query):
    check_fields(body, {"vni": (int, True), "subnet": (str, True), "mtu": (int, False)})
    if not 1 <= body["vni"] <= 16777215:
        raise ApiError(422, "invalid_field", "vni must be in 1..16777215", "vni")
    try:
        subnet = ipaddress.IPv4Network(body["subnet"], strict=True)
    except ValueError as e:
        raise ApiError(422, "invalid_field", "subnet: %s" % e, "subnet")
    mtu = body.get("mtu", 1450)
    for other, n in NETS.items():
        if other != name and n["vni"] == body["vni"]:
            raise ApiError(409, "vni_in_use", "vni %d is used by network %s" % (n["vni"], other),
                           "vni")
    old = NETS.get(name)
    if old and (old["vni"] != body["vni"] or old["subnet"] != str(subnet)):
        raise ApiError(409, "immutable_field", "vni and subnet of a network cannot change")
    NETS[name] = {"vni": body["vni"], "subnet": str(subnet), "mtu": mtu}
    EPS.setdefault(name, {})
    return (200 if old else 201), net_view(name)


def del_network(name, query):
    get_net(name)
    force = query.get("force", ["false"])[0] in ("true", "1")
    if any(e["local"] for e in EPS.get(name, {}).values()) and not force:
        raise ApiError(409, "has_endpoints", "network %s has local endpoints" % name)
    del NETS[name]
    EPS.pop(name, None)
    return 204, None


def put_endpoint(net, name, body, remote):
    n = get_net(net)
    subnet = ipaddress.IPv4Network(n["subnet"])
    if remote:
        check_fields(body, {"ip": (str, True), "mac": (str, True), "vtep": (str, True)})
    else:
        check_fields(body, {"netns": (str, True), "ip": (str, False), "mac": (str, False),
                            "ifname": (str, False)})
    eps = EPS[net]
    used = {e["ip"].split("/")[0] for k, e in eps.items() if k != name}
    if "ip" in body:
        try:
            iface = ipaddress.IPv4Interface(body["ip"])
        except ValueError as e:
            raise ApiError(422, "invalid_field", "ip: %s" % e, "ip")
        if iface.ip not in subnet:
            raise ApiError(422, "invalid_field", "ip %s is outside %s" % (iface.ip, subnet), "ip")
        if str(iface.ip) in used:
            raise ApiError(409, "ip_in_use", "ip %s is in use" % iface.ip, "ip")
        ip = "%s/%d" % (iface.ip, subnet.prefixlen)
    else:
        free = [h for h in list(subnet.hosts())[1:] if str(h) not in used]
        if not free:
            raise ApiError(409, "subnet_full", "no free address in %s" % subnet)
        ip = "%s/%d" % (free[0], subnet.prefixlen)
    ep = {"name": name, "network": net, "ip": ip, "mac": body.get("mac") or mac_of(ip.split("/")[0])}
    if remote:
        ep.update({"vtep": body["vtep"], "local": False, "host": "peer"})
    else:
        ep.update({"netns": body["netns"], "ifname": body.get("ifname", "eth0"),
                   "vtep": UNDERLAY, "local": True})
    old = eps.get(name)
    if old and old["local"] != (not remote):
        raise ApiError(409, "conflict", "endpoint %s exists with another kind" % name)
    eps[name] = ep
    return (200 if old else 201), ep


def del_endpoint(net, name, remote):
    get_net(net)
    ep = EPS[net].get(name)
    if not ep or ep["local"] == remote:
        raise ApiError(404, "not_found", "endpoint %s does not exist" % name)
    del EPS[net][name]
    return 204, None


def inspect(name):
    get_net(name)
    view = net_view(name)
    eps = list(EPS[name].values())
    links = [{"name": "br0", "kind": "bridge", "mtu": view["mtu"], "up": True},
             {"name": "vx0", "kind": "vxlan", "mtu": view["mtu"], "up": True, "master": "br0",
              "vni": view["vni"]}]
    links += [{"name": "ve-" + e["name"], "kind": "veth", "mtu": view["mtu"], "up": True,
               "master": "br0"} for e in eps if e["local"]]
    fdb = [{"mac": e["mac"], "dst": e["vtep"]} for e in eps if not e["local"]]
    neigh = [{"ip": e["ip"].split("/")[0], "mac": e["mac"], "state": "permanent"}
             for e in eps if not e["local"]]
    diff = []
    if name.startswith("drift"):
        # One of each marker: a missing FDB entry, an extra neighbour and a
        # link whose MTU differs.
        links[1]["mtu"] = 1500
        neigh.append({"ip": "198.18.1.66", "mac": "02:84:c6:12:01:42", "state": "reachable"})
        diff = [{"kind": "fdb", "object": "02:84:c6:12:01:09", "problem": "missing",
                 "detail": "remote endpoint r9 via 192.0.2.12"},
                {"kind": "neighbour", "object": "198.18.1.66", "problem": "extra",
                 "detail": "no endpoint has this address"},
                {"kind": "mtu", "object": "vx0", "problem": "mismatch",
                 "detail": "mtu 1500, want %d" % view["mtu"]}]
    return 200, {"desired": view, "kernel": {"netns": view["netns"], "links": links,
                                             "fdb": fdb, "neighbours": neigh}, "diff": diff}


def check(name):
    get_net(name)
    eps = list(EPS[name].values())
    results = []
    for a in eps:
        if not a["local"]:
            continue
        for b in eps:
            if b is a:
                continue
            r = {"from": a["name"], "to": b["name"], "ip": b["ip"].split("/")[0]}
            if "down" in b["name"]:
                r.update({"ok": False, "error": "no reply within 1000 ms"})
            else:
                r.update({"ok": True, "rtt_ms": 0.2})
            results.append(r)
    return 200, {"results": results, "ok": all(r["ok"] for r in results)}


def host():
    eps = [e for d in EPS.values() for e in d.values()]
    return 200, {"name": "fake", "version": "0.1.0",
                 "underlay": {"interface": "eth0", "address": UNDERLAY, "mtu": 1500},
                 "etcd": {"configured": False, "reachable": False, "endpoints": []},
                 "runtime": "runc", "uptime_s": 42,
                 "counts": {"networks": len(NETS), "endpoints": sum(e["local"] for e in eps),
                            "remote_endpoints": sum(not e["local"] for e in eps),
                            "vips": 0, "containers": 0},
                 "state": {"dir": "/var/lib/netagent/fake", "quarantined": 0}}


def route(method, parts, body, query):
    """parts: path segments after /v1. Returns (status, json or None)."""
    def need(m):
        if method != m:
            raise ApiError(405, "method_not_allowed", "%s is not allowed here" % method)

    for p in parts[1:]:
        if not valid_name(p) and p not in ("endpoints", "remote-endpoints", "inspect", "check"):
            raise ApiError(404, "not_found", "no such resource")
    if parts == ["health"]:
        need("GET")
        return 200, {"status": "ok", "version": "0.1.0", "name": "fake"}
    if parts == ["host"]:
        need("GET")
        return host()
    if parts == ["networks"]:
        need("GET")
        return 200, {"items": [net_view(n) for n in sorted(NETS)]}
    if len(parts) == 2 and parts[0] == "networks":
        name = parts[1]
        if method == "GET":
            get_net(name)
            return 200, net_view(name)
        if method == "PUT":
            return put_network(name, body, query)
        need("DELETE")
        return del_network(name, query)
    if len(parts) == 3 and parts[0] == "networks" and parts[2] == "inspect":
        need("GET")
        return inspect(parts[1])
    if len(parts) == 3 and parts[0] == "networks" and parts[2] == "check":
        need("POST")
        return check(parts[1])
    if len(parts) == 3 and parts[0] == "networks" and parts[2] == "endpoints":
        need("GET")
        get_net(parts[1])
        return 200, {"items": [EPS[parts[1]][k] for k in sorted(EPS[parts[1]])]}
    if len(parts) == 4 and parts[0] == "networks" and parts[2] in ("endpoints", "remote-endpoints"):
        remote = parts[2] == "remote-endpoints"
        if method == "GET" and not remote:
            get_net(parts[1])
            if parts[3] not in EPS[parts[1]]:
                raise ApiError(404, "not_found", "endpoint %s does not exist" % parts[3])
            return 200, EPS[parts[1]][parts[3]]
        if method == "PUT":
            return put_endpoint(parts[1], parts[3], body, remote)
        need("DELETE")
        return del_endpoint(parts[1], parts[3], remote)
    raise ApiError(404, "not_found", "no route for %s" % "/".join(parts))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # unix peers have no address to log
        if os.environ.get("FAKE_API_LOG"):
            sys.stderr.write("fake_api: " + (fmt % args) + "\n")

    def send_json(self, status, obj):
        data = b"" if obj is None else (json.dumps(obj) + "\n").encode()
        self.send_response(status)
        if obj is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self, method):
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        length = int(self.headers.get("Content-Length") or 0)
        try:
            if length > MAX_BODY:
                self.close_connection = True
                raise ApiError(413, "body_too_large", "body exceeds 1 MiB")
            raw = self.rfile.read(length) if length else b""
            if url.path == "/v1/events" and method == "GET":
                return self.events()
            parts = url.path.split("/")[1:]
            if not parts or parts[0] != "v1" or len(parts) < 2:
                raise ApiError(404, "not_found", "no route for %s" % url.path)
            body = {}
            if method in ("PUT", "POST") and raw:
                try:
                    body = json.loads(raw)
                except ValueError as e:
                    raise ApiError(400, "invalid_json", "body is not JSON: %s" % e)
                if not isinstance(body, dict):
                    raise ApiError(400, "invalid_json", "body must be a JSON object")
            with LOCK:
                status, obj = route(method, parts[1:], body, query)
            self.send_json(status, obj)
        except ApiError as e:
            err = {"code": e.code, "message": e.message}
            if e.field:
                err["field"] = e.field
            self.send_json(e.status, {"error": err})

    def chunk(self, data):
        data = data.encode() if isinstance(data, str) else data
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()
        time.sleep(0.05)  # separate TCP/unix writes, so the client sees pieces

    def events(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        e1, e2, e3 = (json.dumps(e, separators=(",", ":")) for e in EVENTS)
        # 1: one plain frame in one write.
        self.chunk("id: 1\nevent: network\ndata: %s\n\n" % e1)
        # 2: CRLF line ends, split inside a field name, inside the data and
        # between the CR and the LF of the blank line.
        f2 = "id: 2\r\nevent: endpoint\r\ndata: %s\r\n\r\n" % e2
        cut = [0, 5, 20, 40, len(f2) - 1, len(f2)]
        for a, b in zip(cut, cut[1:]):
            self.chunk(f2[a:b])
        # 3: a keepalive comment, then data over two data: lines (joined
        # with "\n" by the client, still valid JSON).
        half = e3.index(',"name"')
        self.chunk(": keepalive\n\nid: 3\nevent: network\ndata: %s\ndata: %s\n" %
                   (e3[:half], e3[half:]))
        self.chunk("\n")
        if OPTS.events_hold:
            try:
                while True:
                    self.chunk(": keepalive\n\n")
                    time.sleep(0.5)
            except OSError:
                return
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        self.close_connection = True

    def do_GET(self):
        self.handle_any("GET")

    def do_PUT(self):
        self.handle_any("PUT")

    def do_POST(self):
        self.handle_any("POST")

    def do_DELETE(self):
        self.handle_any("DELETE")

    def do_PATCH(self):
        self.handle_any("PATCH")


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        sock, _ = super().get_request()
        return sock, ("unix", 0)  # BaseHTTPRequestHandler wants an address tuple


def main():
    global OPTS
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket")
    ap.add_argument("--netns-prefix", default="fake-")
    ap.add_argument("--events-hold", action="store_true")
    ap.add_argument("--tls-listen")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--ca")
    OPTS = ap.parse_args()
    if OPTS.socket:
        try:
            os.unlink(OPTS.socket)
        except FileNotFoundError:
            pass
        srv = UnixServer(OPTS.socket, Handler)
        os.chmod(OPTS.socket, 0o600)
    elif OPTS.tls_listen:
        addr, port = OPTS.tls_listen.rsplit(":", 1)
        srv = ThreadingHTTPServer((addr, int(port)), Handler)
        srv.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(OPTS.cert, OPTS.key)
        ctx.load_verify_locations(OPTS.ca)
        ctx.verify_mode = ssl.CERT_REQUIRED  # mTLS, as the agent requires
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        srv.handle_error = lambda req, addr: None  # failed handshakes are the test
    else:
        ap.error("--socket or --tls-listen")
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    srv.serve_forever()


if __name__ == "__main__":
    main()
