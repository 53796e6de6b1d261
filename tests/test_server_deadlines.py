"""Deadlines and connection limits of the lookup service: real `hashlookup
serve` processes on loopback, real hostile clients (slow_clients.py, in a
process of their own), a normal client measuring its latency meanwhile.

- slow-loris heads, stalled bodies and bodies shorter than their
  Content-Length are closed at their deadline (408), while a normal
  client's p99 stays within P99_FACTOR of its unloaded p99;
- connections over the per-address and per-worker caps are refused at once
  (429, 503); idle keep-alive connections are closed, old ones get
  `Connection: close`;
- stalled uploads hold a bounded amount of memory (64 uploads one byte short
  of 16 MiB from one address: two per worker are read, the rest refused);
- batches of millions of tiny items are refused while their body is read,
  before parsing: little CPU and memory, and a normal client keeps its
  latency;
- the 429 body and its Retry-After header agree; an unknown key id costs
  what a wrong secret costs; an existing audit log readable by others is
  reported at start.

Hostile clients connect from 127.0.0.2 and up (the whole 127/8 is loopback
on Linux) so that the per-address cap does not hit the measuring client.
Bounds are generous for a loaded 2-core machine; the figures measured are
in docs/SERVER.md.  Every test is bounded in time and in requests.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hashlookup.server._http import ItemBound, UploadBudget
from hashlookup.server._keys import KeyStore
from hashlookup.server._keys import add_key as add_key_entry
from server_utils import Server, add_key, bearer, make_dataset, random_misses

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(
        not Path("/proc/self/status").exists(), reason="needs Linux /proc"
    ),
]

HERE = Path(__file__).parent
#: a deadline is met when the server closes within this many seconds after
#: it (the event loop's timer granularity is ms; the rest is a loaded machine)
LATE = 2.0
#: the normal client's p99 under attack, at most this times its unloaded p99
#: (or P99_FLOOR seconds more, whichever is larger: on a shared 2-core
#: machine a few ms of scheduling noise is a large ratio of a 1 ms p99)
P99_FACTOR = 3.0
P99_FLOOR = 0.025


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("server-deadlines")
    path, oracle = make_dataset(d, n=600, seed=1723)
    keys = d / "keys.json"
    token = add_key(keys, "client")
    fast = add_key(keys, "fast", "--rate", "100000", "--burst", "100000")
    hits = [h for h in oracle if len(h) == 32][:50]
    return d, path, keys, token, hits, fast


@pytest.fixture(scope="module")
def strict(data):
    """Short deadlines, no rate limit."""
    d, path, keys, *_ = data
    srv = Server(
        path,
        "--api-keys",
        str(keys),
        "--rate-limit",
        "0",
        "--no-audit-log",
        "--head-timeout",
        "1",
        "--body-timeout",
        "1.5",
        "--idle-timeout",
        "1",
        "--connection-max-age",
        "2",
        workdir=d,
    )
    yield srv
    srv.stop()


def _port(srv: Server) -> int:
    return int(srv.url.rsplit(":", 1)[1])


def _workers(srv: Server) -> list[int]:
    pid = srv.proc.pid
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(x) for x in path.read_text().split()]


def _status_kb(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1))


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _slow(srv: Server, **args) -> subprocess.Popen:
    args["port"] = _port(srv)
    return subprocess.Popen(
        [sys.executable, str(HERE / "slow_clients.py"), json.dumps(args)],
        stdout=subprocess.PIPE,
        text=True,
    )


def _latencies(srv: Server, token: str, digests: list[str], n: int) -> list[float]:
    """n GET /lookup on keep-alive connections from 127.0.0.1, paced 2 ms
    apart; every answer must be a 200 (they are hits)."""
    host = "127.0.0.1"
    conn = http.client.HTTPConnection(host, _port(srv), timeout=10)
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
            conn = http.client.HTTPConnection(host, _port(srv), timeout=10)
            conn.request(
                "GET", f"/lookup/md5/{digests[i % len(digests)]}", headers=headers
            )
            r = conn.getresponse()
            r.read()
        out.append(time.perf_counter() - t)
        assert r.status == 200
        if r.getheader("connection") == "close":
            conn.close()
            conn = http.client.HTTPConnection(host, _port(srv), timeout=10)
        time.sleep(0.002)
    conn.close()
    return out


def _p99(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.99)]


def _metric(srv: Server, token: str, name: str) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", _port(srv), timeout=10)
    conn.request("GET", "/metrics", headers=bearer(token))
    text = conn.getresponse().read().decode()
    conn.close()
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert m, name
    return float(m.group(1))


def _open_by_worker(srv: Server, token: str) -> dict[int, int]:
    conn = http.client.HTTPConnection("127.0.0.1", _port(srv), timeout=10)
    conn.request("GET", "/metrics", headers=bearer(token))
    text = conn.getresponse().read().decode()
    conn.close()
    return {
        int(w): int(float(n))
        for w, n in re.findall(
            r'^hashlookup_connections_open\{worker="(\d+)"\} (\S+)$', text, re.M
        )
    }


def _limit(srv: Server, token: str, reason: str) -> float:
    return _metric(srv, token, f'hashlookup_limits_total{{reason="{reason}"}}')


def test_slow_clients_cut_off_normal_clients_keep_latency(data, strict):
    _, _, _, token, hits, _ = data
    n = 1000
    base = _latencies(strict, token, hits, n)
    sources = [f"127.0.0.{i}" for i in range(2, 10)]
    duration = 6.0
    attackers = [
        # 240 slow-loris heads, a byte every 0.25 s
        _slow(
            strict,
            kind="loris",
            sources=sources,
            per_source=30,
            every=0.25,
            duration=duration,
        ),
        # 40 bodies that stall after 1,000 of 100,000 bytes, 40 one byte short
        _slow(
            strict,
            kind="stall",
            sources=sources[:2],
            per_source=20,
            length=100_000,
            sent=1000,
            token=token,
            duration=duration,
        ),
        _slow(
            strict,
            kind="stall",
            sources=sources[2:4],
            per_source=20,
            length=1000,
            sent=999,
            token=token,
            duration=duration,
        ),
    ]
    time.sleep(0.5)
    open_during = sum(_open_by_worker(strict, token).values())
    loaded = _latencies(strict, token, hits, n)
    results = [json.loads(p.communicate(timeout=60)[0]) for p in attackers]
    loris, stalled, short = results
    p99_base, p99_loaded = _p99(base), _p99(loaded)
    print(
        f"\nslow clients: {open_during:.0f} connections open; normal client "
        f"p99 {p99_base * 1e3:.2f} ms unloaded, {p99_loaded * 1e3:.2f} ms under "
        f"attack (x{p99_loaded / p99_base:.2f}); p50 "
        f"{statistics.median(base) * 1e3:.2f} / "
        f"{statistics.median(loaded) * 1e3:.2f} ms"
    )
    assert open_during >= 250  # the attack was on
    for name, res, deadline in (
        ("loris", loris, 1.0),
        ("stalled body", stalled, 1.5),
        ("short body", short, 1.5),
    ):
        lives = [life for life, _ in res["closed"]]
        codes = {code for _, code in res["closed"]}
        print(
            f"{name}: {res['made']} connections, {len(lives)} closed by the "
            f"server after {min(lives):.2f}-{max(lives):.2f} s (median "
            f"{statistics.median(lives):.2f}), answers {sorted(codes)}"
        )
        assert len(lives) >= res["made"] // 2
        assert max(lives) <= deadline + LATE
        assert min(lives) >= deadline - 0.1
        assert codes == {408}
    assert p99_loaded <= max(P99_FACTOR * p99_base, p99_base + P99_FLOOR)
    assert _limit(strict, token, "head_deadline") >= len(loris["closed"])
    assert _limit(strict, token, "body_deadline") >= len(stalled["closed"])
    err = strict.stderr()
    assert "limits:" in err and "request head not complete" in err
    # about 1,400 cut-offs: at most a line per worker every 10 s
    assert err.count("limits:") <= 2 * 3
    assert not any(h in err for h in hits)


def _response(s: socket.socket) -> bytes:
    """The head of one whole response read from `s` (b"": closed)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))
    while len(body) < length:
        body += s.recv(65536)
    return head + b"\r\n"


def test_two_thousand_slow_connections_with_1024_descriptors(data):
    """2,000 slow-loris connections from one address against workers limited
    to 1,024 descriptors: the per-address cap keeps 64 per worker, the rest
    are refused at once, and a normal client opening a new connection per
    request never fails (before: 35-39 % of its requests did)."""
    import resource

    d, path, keys, token, hits, _ = data
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
    try:
        srv = Server(
            path,
            "--api-keys",
            str(keys),
            "--rate-limit",
            "0",
            "--no-audit-log",
            "--head-timeout",
            "3",
            workdir=d,
        )
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        attack = _slow(
            srv,
            kind="loris",
            sources=["127.0.0.60"],
            per_source=2000,
            every=1.0,
            duration=6.0,
        )
        time.sleep(1.0)
        held = sum(_open_by_worker(srv, token).values())
        port = _port(srv)
        failed = 0
        took = []
        for i in range(300):
            t = time.perf_counter()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request(
                    "GET", f"/lookup/md5/{hits[i % len(hits)]}", headers=bearer(token)
                )
                r = conn.getresponse()
                r.read()
                conn.close()
                failed += r.status != 200
            except (OSError, http.client.HTTPException):
                failed += 1
            took.append(time.perf_counter() - t)
        res = json.loads(attack.communicate(timeout=60)[0])
        refused = _limit(srv, token, "client_connections")
    finally:
        srv.stop()
    print(
        f"\n2,000 slow connections from one address, 1,024 descriptors: "
        f"{held} held, {refused:.0f} refused ({res['made']} made); normal "
        f"client on new connections: {failed} of 300 failed, p50 "
        f"{statistics.median(took) * 1e3:.2f} ms, p99 {_p99(took) * 1e3:.2f} ms"
    )
    assert held <= 2 * 64 + 2
    assert refused >= 2000 - 2 * 64
    assert failed == 0


def test_unread_response_dropped(data, strict):
    """A client that stops reading a large answer: the connection is dropped
    after --body-timeout (1.5 s) of a full send buffer."""
    _, _, _, token, _, _ = data
    before = _limit(strict, token, "send_deadline")
    body = json.dumps({"hashes": ["x"] * 100_000}).encode()  # ~13 MB answer
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", _port(strict)))
    s.sendall(
        (
            f"POST /v1/check HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}"
            f"\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
            "\r\n\r\n"
        ).encode()
        + body
    )
    t = time.monotonic()
    while _limit(strict, token, "send_deadline") == before:
        assert time.monotonic() - t < 1.5 + LATE + 3  # + the answer's making
        time.sleep(0.1)
    dropped = time.monotonic() - t
    got = 0
    s.settimeout(5)
    with pytest.raises(OSError):  # reset: the answer never completes
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                raise ConnectionResetError("closed")
            got += len(chunk)
    s.close()
    print(f"\nunread answer: connection dropped {dropped:.2f} s after the request")
    assert got < 13_000_000


def test_idle_and_old_connections_closed(data, strict):
    _, _, _, token, hits, _ = data
    port = _port(strict)
    req = (
        f"GET /lookup/md5/{hits[0]} HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {token}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(req.encode())
        assert _response(s).startswith(b"HTTP/1.1 200")
        t = time.monotonic()
        assert s.recv(65536) == b""  # idle: closed by the server
        idle = time.monotonic() - t
    assert 0.9 <= idle <= 1.0 + LATE
    # busy: never idle, closed by its first answer after 2 s
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        t = time.monotonic()
        while True:
            s.sendall(req.encode())
            answer = _response(s)
            assert answer.startswith(b"HTTP/1.1 200")
            if b"\r\nconnection: close\r\n" in answer:
                break
            assert time.monotonic() - t < 2 + LATE
            time.sleep(0.05)
        age = time.monotonic() - t
    assert 2.0 <= age <= 2 + LATE
    print(
        f"\nidle connection closed after {idle:.2f} s; "
        f"busy one told to close after {age:.2f} s"
    )
    assert _limit(strict, token, "idle") >= 1
    assert _limit(strict, token, "max_age") >= 1


def test_keep_alive_clients_reach_a_restarted_worker(data, strict):
    """Busy keep-alive clients (never idle) spread over both workers again
    after one is killed and restarted: --connection-max-age makes their
    connections end, and the kernel hands the new ones to either worker."""
    _, _, _, token, _, _ = data
    port = _port(strict)
    stop = threading.Event()
    errors: list[str] = []

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while not stop.is_set():
            try:
                conn.request("GET", "/v1/ping", headers=bearer(token))
                r = conn.getresponse()
                r.read()
                if r.status != 200:
                    errors.append(str(r.status))
                if r.getheader("connection") == "close":
                    conn.close()
            except (ConnectionError, http.client.HTTPException):
                conn.close()  # its worker was killed: a new connection
            time.sleep(0.005)
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(6)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        victim = _workers(strict)[0]
        os.kill(victim, 9)
        killed = time.monotonic()
        # its clients reconnect at once, to the other worker; the gauge of
        # the dead one's slot is stale until the replacement starts serving
        while victim in _workers(strict) or len(_workers(strict)) < 2:
            assert time.monotonic() - killed < 10
            time.sleep(0.02)
        time.sleep(0.5)
        spread = None
        while time.monotonic() - killed < 2 + LATE + 3:
            time.sleep(0.1)
            counts = _open_by_worker(strict, token)
            if len(counts) == 2 and min(counts.values()) >= 2:
                spread = time.monotonic() - killed
                break
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    print(f"\nclients on both workers again {spread} s after the kill: {counts}")
    assert spread is not None
    assert not errors


def _raw_answers(socks: list[socket.socket], wait: float) -> list[int]:
    """The status each socket got within `wait` seconds (0: none)."""
    out = []
    end = time.monotonic() + wait
    for s in socks:
        s.settimeout(max(0.01, end - time.monotonic()))
        try:
            head = s.recv(64)
        except (TimeoutError, OSError):
            head = b""
        out.append(int(head[9:12]) if head.startswith(b"HTTP/1.1 ") else 0)
    return out


@pytest.fixture(scope="module")
def capped(data):
    """Small caps, a rate limit, an audit log that others may read."""
    d, path, keys, *_ = data
    audit = d / "audit-open.log"
    audit.write_bytes(b"")
    audit.chmod(0o644)
    srv = Server(
        path,
        "--api-keys",
        str(keys),
        "--rate-limit",
        "1",
        "--burst",
        "2",
        "--audit-log",
        str(audit),
        "--max-connections",
        "60",
        "--max-client-connections",
        "20",
        "--max-body",
        str(1 << 20),
        "--upload-memory",
        str(4 << 20),
        "--head-timeout",
        "5",
        "--body-timeout",
        "3",
        workdir=d,
    )
    yield srv, audit
    srv.stop()


def test_connection_caps(data, capped):
    srv, _ = capped
    token = data[5]
    port = _port(srv)

    def open_from(src: str, n: int) -> list[socket.socket]:
        out = []
        for _ in range(n):
            s = socket.socket()
            s.bind((src, 0))
            s.connect(("127.0.0.1", port))
            out.append(s)
        return out

    # one address, 50 connections: at most 20 per worker stay
    one = open_from("127.0.0.20", 50)
    codes = _raw_answers(one, 1.0)
    kept, refused = codes.count(0), [c for c in codes if c]
    for s in one:
        s.close()
    print(f"\none address, 50 connections: {kept} kept, {len(refused)} refused")
    assert kept <= 40 and set(refused) == {429} and len(refused) >= 10
    time.sleep(0.3)  # the closes reach the workers
    # 8 addresses of 20: at most 60 per worker stay
    many = [s for i in range(21, 29) for s in open_from(f"127.0.0.{i}", 20)]
    codes = _raw_answers(many, 1.0)
    kept, refused = codes.count(0), [c for c in codes if c]
    for s in many:
        s.close()
    print(f"8 addresses, 160 connections: {kept} kept, {len(refused)} refused")
    assert kept <= 120 and set(refused) == {503} and len(refused) >= 40
    assert _limit(srv, token, "client_connections") >= 10
    assert _limit(srv, token, "worker_connections") >= 40
    assert "--max-client-connections" in srv.stderr()


def _upload(port: int, src: str, token: str, length: int, sent: int) -> tuple:
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


class _PeakRss:
    """Samples the workers' RSS every 20 ms until stop(): the largest growth
    of one worker over its RSS at the start, in MB."""

    def __init__(self, workers: list[int]) -> None:
        self.rss0 = {w: _status_kb(w, "VmRSS") for w in workers}
        self.peak = dict(self.rss0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            for w in self.peak:
                self.peak[w] = max(self.peak[w], _status_kb(w, "VmRSS"))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return max(self.peak[w] - self.rss0[w] for w in self.peak) / 1024


def _parallel(fn, args_list):
    out = [None] * len(args_list)

    def one(i, args):
        out[i] = fn(*args)

    threads = [
        threading.Thread(target=one, args=(i, a)) for i, a in enumerate(args_list)
    ]
    for t in threads:
        t.start()
    return threads, out


@pytest.fixture(scope="module")
def default_limits(data):
    """The default limits (16 MiB bodies, 128 MiB of uploads per worker,
    100,000 items); a short body deadline to keep the test short; a new
    audit log file."""
    d, path, keys, *_ = data
    audit = d / "audit-new.log"
    srv = Server(
        path,
        "--api-keys",
        str(keys),
        "--rate-limit",
        "0",
        "--audit-log",
        str(audit),
        "--body-timeout",
        "3",
        workdir=d,
    )
    yield srv, audit
    srv.stop()


def test_stalled_uploads_hold_bounded_memory(data, default_limits):
    srv, _ = default_limits
    token = data[3]
    rss = _PeakRss(_workers(srv))
    size = 16 << 20
    threads, out = _parallel(
        _upload, [(_port(srv), "127.0.0.40", token, size, size - 1)] * 64
    )
    for t in threads:
        t.join(60)
    growth = rss.stop()
    codes = [c for c, _ in out]
    stalled = [t for c, t in out if c == 408]
    print(
        f"\n64 uploads one byte short of 16 MiB from one address: "
        f"{codes.count(408)} read and cut off at the deadline after "
        f"{min(stalled):.2f}-{max(stalled):.2f} s, {codes.count(429)} refused "
        f"at once; worker RSS grew by {growth:.0f} MB at most"
    )
    # a client address may hold a quarter of 128 MiB per worker: 2 uploads
    assert codes.count(408) <= 4 and codes.count(429) >= 60
    assert set(codes) <= {408, 429}
    assert max(stalled) <= 3 + LATE + 2  # + the upload itself
    assert growth < 150  # 1 GB without the budget
    assert _limit(srv, token, "upload_memory") >= 60


def test_uploads_from_many_addresses_share_the_worker_budget(data, capped):
    srv, _ = capped
    token = data[5]
    size = 1 << 20  # --max-body; 4 MiB per worker: 4 uploads each
    args = [(_port(srv), f"127.0.0.{50 + i}", token, size, size - 1) for i in range(24)]
    threads, out = _parallel(_upload, args)
    for t in threads:
        t.join(30)
    codes = [c for c, _ in out]
    print(f"\n24 stalled uploads from 24 addresses: {sorted(codes)}")
    assert codes.count(408) <= 8 and codes.count(503) >= 16
    assert set(codes) <= {408, 503}


def _post_raw(port: int, token: str, body: bytes, ctype: str) -> int:
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


def test_oversized_batches_refused_before_parsing(data, default_limits):
    srv, _ = default_limits
    _, _, _, token, hits, _ = data
    port = _port(srv)
    workers = _workers(srv)
    base = _latencies(srv, token, hits, 600)
    rss = _PeakRss(workers)
    cpu0 = sum(_cpu_seconds(w) for w in workers)
    # 29 requests of 5.6 M tiny items (11 MB each, under the body limit),
    # sent at once from another process
    attack = _slow(
        srv,
        kind="batch",
        count=29,
        items=5_600_000,
        token=token,
        sources=[f"127.0.1.{i}" for i in range(1, 30)],
    )
    loaded = _latencies(srv, token, hits, 600)
    out = json.loads(attack.communicate(timeout=120)[0])["answers"]
    cpu = sum(_cpu_seconds(w) for w in workers) - cpu0
    growth = rss.stop()
    codes = [c for c, _ in out]
    took = [t for _, t in out]
    p99_base, p99_loaded = _p99(base), _p99(loaded)
    print(
        f"\n29 batches of 5.6 M tiny items: answers {sorted(set(codes))}, refused "
        f"after {statistics.median(took) * 1e3:.0f} ms (median), "
        f"{max(took) * 1e3:.0f} ms at most; worker RSS grew by "
        f"{growth:.1f} MB at most; workers' CPU {cpu * 1e3:.0f} ms in all "
        f"(with the normal client's); normal client p99 {p99_base * 1e3:.2f} -> "
        f"{p99_loaded * 1e3:.2f} ms (x{p99_loaded / p99_base:.2f})"
    )
    # refused with 413, or the connection reset while the client still sent
    # (the server closes after its answer without reading the rest); or,
    # before reading, 503 when the worker holds its --upload-memory
    assert set(codes) <= {413, 503, 0} and codes.count(413) >= 10
    # the answer names the limit (a small batch refused early shows it)
    over = b'{"hashes":[' + b"0," * 101_100 + b"0]}"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(
        "POST",
        "/v1/check",
        body=over,
        headers={**bearer(token), "Content-Type": "application/json"},
    )
    r = conn.getresponse()
    message = json.loads(r.read())["message"]
    conn.close()
    assert r.status == 413 and message.startswith("more than 100000 items")
    assert growth < 50  # parsing one such body costs ~500 MB
    assert cpu < 5.0
    assert p99_loaded <= max(P99_FACTOR * p99_base, p99_base + P99_FLOOR)
    assert _limit(srv, token, "batch_items") >= codes.count(413)
    # a batch at the limit is still answered (the bound does not refuse it)
    ok = random_misses("md5", 100_000, 7)
    body = json.dumps({"hashes": ok}).encode()
    assert _post_raw(port, token, body, "application/json") == 200
    assert _post_raw(port, token, "\r\n".join(ok).encode(), "text/plain") == 200


def test_new_audit_log_is_private(default_limits):
    _, audit = default_limits
    assert audit.stat().st_mode & 0o777 == 0o600


def test_open_audit_log_warned_at_start(capped):
    srv, audit = capped
    err = srv.stderr()
    assert f"audit log {audit} has mode 0644" in err


def test_429_body_agrees_with_retry_after(data, capped):
    srv, _ = capped
    token = data[3]
    conn = http.client.HTTPConnection("127.0.0.1", _port(srv), timeout=10)
    seen = 0
    for _ in range(10):
        conn.request("GET", "/v1/ping", headers=bearer(token))
        r = conn.getresponse()
        body = r.read()
        if r.status == 429:
            doc = json.loads(body)
            assert doc["retry_after"] == int(r.getheader("retry-after")) >= 1
            assert isinstance(doc["retry_after"], int)
            seen += 1
    conn.close()
    assert seen


def test_unknown_key_id_costs_a_wrong_secret(tmp_path):
    """Both paths hash and compare: interleaved medians of 20,000 checks
    each within 25 % (before: an unknown id answered in half the time)."""
    keys = tmp_path / "keys.json"
    token, _ = add_key_entry(keys, "known")
    for i in range(20):
        add_key_entry(keys, f"other{i}")
    store = KeyStore.load(keys)
    wrong = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    unknown = "hlk_0123456789ab_" + token.split("_", 2)[2]
    assert store.check(wrong) == ("unknown", None)
    assert store.check(unknown) == ("unknown", None)
    assert store.check(token)[0] == "ok"
    clock = time.perf_counter_ns
    a, b = [], []
    for _ in range(20_000):
        t = clock()
        store.check(unknown)
        a.append(clock() - t)
        t = clock()
        store.check(wrong)
        b.append(clock() - t)
    ma, mb = statistics.median(a), statistics.median(b)
    print(f"\nkey check: unknown id {ma:.0f} ns, wrong secret {mb:.0f} ns (median)")
    assert abs(ma - mb) <= 0.25 * max(ma, mb)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "a",
                "0f",
                " ",
                "\n",
                "\r\n",
                "\t",
                "\x0b",
                "\x1c",
                "é",
                "\u00a0",
                "\u2028",
                "\x85",
                ",",
                "\u3000",
            ]
        ),
        max_size=40,
    ),
    st.lists(st.integers(1, 9), min_size=1, max_size=8),
)
def test_text_item_bound_is_an_upper_bound(parts, cuts):
    """ItemBound("text") fed in chunks is never below the items split_text
    makes, nor below str.split()'s tokens; equal to the tokens for ASCII."""
    from hashlookup.server._check import split_text

    body = "".join(parts).encode()
    bound = ItemBound("text")
    i = k = 0
    while i < len(body):
        j = i + cuts[k % len(cuts)]
        bound.feed(body[i:j])
        i, k = j, k + 1
    tokens = len(body.decode("utf-8", "replace").split())
    assert bound.count >= len(split_text(body))
    assert bound.count >= tokens
    if body.isascii():
        assert bound.count == tokens


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=5), max_size=30), st.integers(1, 50))
def test_json_item_bound_counts_array_items(items, cut):
    """A JSON batch of n items has at least n - 1 commas in the bound."""
    body = json.dumps({"hashes": items}).encode()
    bound = ItemBound("json")
    for i in range(0, len(body), cut):
        bound.feed(body[i : i + cut])
    assert bound.count >= len(items) - 1


def test_upload_budget():
    b = UploadBudget(100, 40)
    assert b.take("a", 40) is None
    assert b.take("a", 1) == "client"
    assert b.take("b", 40) is None
    assert b.take("c", 21) == "worker"
    b.give("a", 40)
    assert b.take("c", 21) is None
    b.give("b", 40)
    b.give("c", 21)
    assert b.used == 0 and not b.by_client
