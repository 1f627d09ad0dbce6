#!/usr/bin/env python3
"""A connection flood from one address (docs/operations.md, "Limits"): N (1,154) idle
half-requests from 127.0.0.1, then one real request from 127.0.0.2 and one from 127.0.0.1,
timed; then the connection metrics and the WARN lines the gateway logged.

usage: SETTLE=6 python3 bench/flood.py BINARY CAP [N]
  CAP: HTTP_MAX_CONNECTIONS_PER_IP ("" = the default, "0" = no cap, as before the cap existed)
  SETTLE: seconds between the flood and the real request (default 3)
Loopback only; needs 127.0.0.2 and 127.0.0.3 (any 127/8 address works on Linux)."""
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
binary, cap = sys.argv[1], sys.argv[2]
n = int(sys.argv[3]) if len(sys.argv) > 3 else 1154
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
d = tempfile.mkdtemp()
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
env = dict(PATH=os.environ["PATH"], LISTEN_ADDR=f"127.0.0.1:{port}", DATABASE_PATH=f"{d}/q.db",
           ADMIN_PASSWORD="the-right-password-1", LOG_FORMAT="json")
if cap != "":
    env["HTTP_MAX_CONNECTIONS_PER_IP"] = cap
log = open(f"{d}/log", "w")
p = subprocess.Popen([binary], env=env, cwd=d, stdout=log, stderr=subprocess.STDOUT)
deadline = time.time() + 30
while True:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read(); break
    except Exception:
        assert time.time() < deadline; time.sleep(0.05)

def request(src):
    c = socket.socket(); c.bind((src, 0)); c.settimeout(30)
    t = time.monotonic()
    try:
        c.connect(("127.0.0.1", port))
        c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = c.recv(100)
    except OSError as e:
        data = repr(e).encode()
    took = time.monotonic() - t
    c.close()
    return took, data.split(b"\r\n")[0].decode(errors="replace") or "(closed, no answer)"

held = []
t0 = time.monotonic()
for i in range(n):
    c = socket.socket(); c.bind(("127.0.0.1", 0)); c.setblocking(False)
    try:
        c.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    try:
        c.send(b"POST /payment HTTP/1.1\r\nHost: x\r\n")  # half a request, never finished
    except OSError:
        pass
    held.append(c)
print(f"opened {n} half-requests from 127.0.0.1 in {time.monotonic()-t0:.2f} s "
      f"(HTTP_MAX_CONNECTIONS_PER_IP={cap or 'default'})")
# A benchmark, not a test: the flood's connections are still being accepted (SYNs over the
# listen backlog are retried by the kernel after 1 and 3 s).
time.sleep(float(os.environ.get("SETTLE", "3")))
took, line = request("127.0.0.2")
print(f"a real request from 127.0.0.2: {line!r} after {took*1000:.1f} ms")
took, line = request("127.0.0.1")
print(f"a real request from 127.0.0.1 (the flooder's address): {line!r} after {took*1000:.1f} ms")
c = socket.socket(); c.bind(("127.0.0.3", 0)); c.settimeout(30)
c.connect(("127.0.0.1", port))
c.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
m = b""
while chunk := c.recv(65536):
    m += chunk
m = m.decode(errors="replace")
for l in m.splitlines():
    if l.startswith(("qiwi_connection", "qiwi_connections")):
        print("  metric", l)
for c in held:
    c.close()
p.terminate(); p.wait()
log.close()
warns = [json.loads(l) for l in open(f"{d}/log") if '"WARN"' in l and "connection" in l]
print(f"connection WARN lines in the log: {len(warns)}")
for w in warns:
    f = w.get("fields", w)
    print("  ", {k: v for k, v in f.items()})
