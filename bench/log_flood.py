#!/usr/bin/env python3
"""The request-log flood of the logcap issue, against a gateway already running.

usage: bench/log_flood.py HOST:PORT DATA_DIR [SECONDS] [THREADS] [URL_BYTES] [BODY_BYTES]

Each thread POSTs a URL of URL_BYTES (default 30,000, inside the 32 KiB head) and a form of
BODY_BYTES (default 65,536, the largest body /payment takes) to /payment over keep-alive
connections for SECONDS (default 10). Prints the requests sent, their statuses and how much
DATA_DIR (the database folder, WAL included: it holds up to 64 MiB before it is cut back) grew,
in MB and MB/s, and each file's size. Loopback only.
"""
import collections
import http.client
import os
import sys
import threading
import time


def du(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.stat(os.path.join(root, f)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    data = sys.argv[2]
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 10
    threads = int(sys.argv[4]) if len(sys.argv) > 4 else 4
    url_bytes = int(sys.argv[5]) if len(sys.argv) > 5 else 30_000
    body_bytes = int(sys.argv[6]) if len(sys.argv) > 6 else 65_536
    prefix = "/payment?command=check&txn_id=1&account=a&sum=1&junk="
    url = prefix + "j" * (url_bytes - len(prefix))
    body = ("form=" + "f" * (body_bytes - 5)).encode()
    statuses = collections.Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def run():
        conn = None
        while time.monotonic() < deadline:
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host, int(port), timeout=30)
                conn.request("POST", url, body,
                             {"Content-Type": "application/x-www-form-urlencoded"})
                r = conn.getresponse()
                r.read()
                status = r.status
            except Exception as e:  # noqa: BLE001 - a reset is a result too
                status = type(e).__name__
                conn = None
            with lock:
                statuses[status] += 1

    before = du(data)
    started = time.monotonic()
    ts = [threading.Thread(target=run) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    took = time.monotonic() - started
    time.sleep(1)  # let the last commits and the WAL settle
    after = du(data)
    grew = (after - before) / 1e6
    files = {f: os.stat(os.path.join(data, f)).st_size / 1e6 for f in sorted(os.listdir(data))}
    print(f"{sum(statuses.values())} requests in {took:.1f} s {dict(statuses)}; "
          f"{data} grew {before / 1e6:.1f} -> {after / 1e6:.1f} MB: "
          f"{grew:.1f} MB, {grew / took:.2f} MB/s; files (MB): "
          + ", ".join(f"{f} {m:.1f}" for f, m in files.items()))


if __name__ == "__main__":
    main()
