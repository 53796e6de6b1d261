"""Helpers of the deadline and upload tests (test_server_deadlines.py,
test_server_uploads.py): a dataset with keys, the hostile clients of
slow_clients.py in a process of their own, a normal client measuring its
latency, the workers' RSS and CPU from /proc, the service's counters."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from server_utils import Server, add_key, bearer, make_dataset

HERE = Path(__file__).parent
#: a deadline is met when the server closes within this many seconds after
#: it (the event loop's timer granularity is ms; the rest is a loaded machine)
LATE = 2.0
#: the normal client's p99 under attack, at most this times its unloaded p99
#: (or P99_FLOOR seconds more, whichever is larger: on a shared 2-core
#: machine a few ms of scheduling noise is a large ratio of a 1 ms p99)
P99_FACTOR = 3.0
P99_FLOOR = 0.025


def make_data(d: Path) -> tuple:
    """(directory, dataset, keys file, token, 50 md5 hits, token of a key
    with no practical rate limit)."""
    path, oracle = make_dataset(d, n=600, seed=1723)
    keys = d / "keys.json"
    token = add_key(keys, "client")
    fast = add_key(keys, "fast", "--rate", "100000", "--burst", "100000")
    hits = [h for h in oracle if len(h) == 32][:50]
    return d, path, keys, token, hits, fast


def port_of(srv: Server) -> int:
    return int(srv.url.rsplit(":", 1)[1])


def workers_of(srv: Server) -> list[int]:
    pid = srv.proc.pid
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(x) for x in path.read_text().split()]


def status_kb(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def slow_clients(srv: Server, **args) -> subprocess.Popen:
    args["port"] = port_of(srv)
    return subprocess.Popen(
        [sys.executable, str(HERE / "slow_clients.py"), json.dumps(args)],
        stdout=subprocess.PIPE,
        text=True,
    )


def latencies(srv: Server, token: str, digests: list[str], n: int) -> list[float]:
    """n GET /lookup on keep-alive connections from 127.0.0.1, paced 2 ms
    apart; every answer must be a 200 (they are hits)."""
    host = "127.0.0.1"
    conn = http.client.HTTPConnection(host, port_of(srv), timeout=10)
    out = []
    headers = bearer(token)
    for i in range(n):
        t = time.perf_counter()
        try:
            conn.request(
                "GET", f"/lookup/md5/{digests[i % len(digests)]}", headers=headers
            )
            r = conn.getresponse()
            r.read()
        except (ConnectionError, http.client.HTTPException):
            # an idle or aged keep-alive connection closed by the server: a
            # client retries an idempotent GET on a new one
            conn.close()
            conn = http.client.HTTPConnection(host, port_of(srv), timeout=10)
            conn.request(
                "GET", f"/lookup/md5/{digests[i % len(digests)]}", headers=headers
            )
            r = conn.getresponse()
            r.read()
        out.append(time.perf_counter() - t)
        assert r.status == 200
        if r.getheader("connection") == "close":
            conn.close()
            conn = http.client.HTTPConnection(host, port_of(srv), timeout=10)
        time.sleep(0.002)
    conn.close()
    return out


def p99(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.99)]


def metric(srv: Server, token: str, name: str) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port_of(srv), timeout=10)
    conn.request("GET", "/metrics", headers=bearer(token))
    text = conn.getresponse().read().decode()
    conn.close()
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert m, name
    return float(m.group(1))


def open_by_worker(srv: Server, token: str) -> dict[int, int]:
    conn = http.client.HTTPConnection("127.0.0.1", port_of(srv), timeout=10)
    conn.request("GET", "/metrics", headers=bearer(token))
    text = conn.getresponse().read().decode()
    conn.close()
    return {
        int(w): int(float(n))
        for w, n in re.findall(
            r'^hashlookup_connections_open\{worker="(\d+)"\} (\S+)$', text, re.M
        )
    }


def limit_count(srv: Server, token: str, reason: str) -> float:
    return metric(srv, token, f'hashlookup_limits_total{{reason="{reason}"}}')


def upload(port: int, src: str, token: str, length: int, sent: int) -> tuple:
    """POST /v1/check with Content-Length `length`, `sent` bytes of body,
    then a stall; returns (status or 0, seconds to the answer or close)."""
    s = socket.socket()
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    s.settimeout(30)
    head = (
        f"POST /v1/check HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()
    t = time.monotonic()
    got = b""
    try:
        s.sendall(head)
        view = memoryview(_SPACES)[:sent]
        while view:
            k = s.send(view[: 1 << 20])
            view = view[k:]
        got = s.recv(64)
    except OSError:
        try:
            got = s.recv(64)
        except OSError:
            pass
    s.close()
    status = int(got[9:12]) if got.startswith(b"HTTP/1.1 ") else 0
    return status, time.monotonic() - t


_SPACES = b" " * (16 << 20)


class PeakRss:
    """Samples the workers' RSS every 20 ms until stop(): the largest growth
    of one worker over its RSS at the start, in MB."""

    def __init__(self, workers: list[int]) -> None:
        self.rss0 = {w: status_kb(w, "VmRSS") for w in workers}
        self.peak = dict(self.rss0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            for w in self.peak:
                self.peak[w] = max(self.peak[w], status_kb(w, "VmRSS"))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return max(self.peak[w] - self.rss0[w] for w in self.peak) / 1024


def parallel(fn, args_list):
    out = [None] * len(args_list)

    def one(i, args):
        out[i] = fn(*args)

    threads = [
        threading.Thread(target=one, args=(i, a)) for i, a in enumerate(args_list)
    ]
    for t in threads:
        t.start()
    return threads, out


def post_raw(port: int, token: str, body: bytes, ctype: str) -> int:
    """POST /v1/check; the status."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(
        "POST",
        "/v1/check",
        body=body,
        headers={**bearer(token), "Content-Type": ctype},
    )
    status = conn.getresponse().status
    conn.close()
    return status
