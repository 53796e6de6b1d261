"""Deadlines and connection limits of the lookup service: real `hashlookup
serve` processes on loopback, real hostile clients (slow_clients.py, in a
process of their own), a normal client measuring its latency meanwhile.

- slow-loris heads, stalled bodies and bodies shorter than their
  Content-Length are closed at their deadline (408), while a normal
  client's p99 stays within P99_FACTOR of its unloaded p99;
- 2,000 slow connections from one address against 1,024 descriptors: the
  per-address cap holds, a normal client never fails;
- connections over the per-address and per-worker caps are refused at once
  (429, 503); a client that stops reading is dropped; idle keep-alive
  connections are closed, old ones get `Connection: close`, and busy
  keep-alive clients reach a restarted worker.

Hostile clients connect from 127.0.0.2 and up (the whole 127/8 is loopback
on Linux) so that the per-address cap does not hit the measuring client.
Bounds are generous for a loaded 2-core machine; the figures measured are
in docs/SERVER.md.  Every test is bounded in time and in requests.
Uploads, batches and the smaller checks are in test_server_uploads.py.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import statistics
import threading
import time
from pathlib import Path

import pytest

from limits_utils import (
    LATE,
    P99_FACTOR,
    P99_FLOOR,
    latencies,
    limit_count,
    make_data,
    open_by_worker,
    p99,
    port_of,
    slow_clients,
    workers_of,
)
from server_utils import Server, bearer

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(
        not Path("/proc/self/status").exists(), reason="needs Linux /proc"
    ),
]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("server-deadlines"))


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


def test_slow_clients_cut_off_normal_clients_keep_latency(data, strict):
    _, _, _, token, hits, _ = data
    n = 1000
    base = latencies(strict, token, hits, n)
    sources = [f"127.0.0.{i}" for i in range(2, 10)]
    duration = 6.0
    attackers = [
        # 240 slow-loris heads, a byte every 0.25 s
        slow_clients(
            strict,
            kind="loris",
            sources=sources,
            per_source=30,
            every=0.25,
            duration=duration,
        ),
        # 40 bodies that stall after 1,000 of 100,000 bytes, 40 one byte short
        slow_clients(
            strict,
            kind="stall",
            sources=sources[:2],
            per_source=20,
            length=100_000,
            sent=1000,
            token=token,
            duration=duration,
        ),
        slow_clients(
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
    open_during = sum(open_by_worker(strict, token).values())
    loaded = latencies(strict, token, hits, n)
    results = [json.loads(p.communicate(timeout=60)[0]) for p in attackers]
    loris, stalled, short = results
    p99_base, p99_loaded = p99(base), p99(loaded)
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
    assert limit_count(strict, token, "head_deadline") >= len(loris["closed"])
    assert limit_count(strict, token, "body_deadline") >= len(stalled["closed"])
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
        attack = slow_clients(
            srv,
            kind="loris",
            sources=["127.0.0.60"],
            per_source=2000,
            every=1.0,
            duration=6.0,
        )
        time.sleep(1.0)
        held = sum(open_by_worker(srv, token).values())
        port = port_of(srv)
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
        refused = limit_count(srv, token, "client_connections")
    finally:
        srv.stop()
    print(
        f"\n2,000 slow connections from one address, 1,024 descriptors: "
        f"{held} held, {refused:.0f} refused ({res['made']} made); normal "
        f"client on new connections: {failed} of 300 failed, p50 "
        f"{statistics.median(took) * 1e3:.2f} ms, p99 {p99(took) * 1e3:.2f} ms"
    )
    assert held <= 2 * 64 + 2
    assert refused >= 2000 - 2 * 64
    assert failed == 0


def test_unread_response_dropped(data, strict):
    """A client that stops reading a large answer: the connection is dropped
    after --body-timeout (1.5 s) of a full send buffer."""
    _, _, _, token, _, _ = data
    before = limit_count(strict, token, "send_deadline")
    body = json.dumps({"hashes": ["x"] * 100_000}).encode()  # ~13 MB answer
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port_of(strict)))
    s.sendall(
        (
            f"POST /v1/check HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}"
            f"\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
            "\r\n\r\n"
        ).encode()
        + body
    )
    t = time.monotonic()
    while limit_count(strict, token, "send_deadline") == before:
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
    port = port_of(strict)
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
    assert limit_count(strict, token, "idle") >= 1
    assert limit_count(strict, token, "max_age") >= 1


def test_keep_alive_clients_reach_a_restarted_worker(data, strict):
    """Busy keep-alive clients (never idle) spread over both workers again
    after one is killed and restarted: --connection-max-age makes their
    connections end, and the kernel hands the new ones to either worker."""
    _, _, _, token, _, _ = data
    port = port_of(strict)
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
        victim = workers_of(strict)[0]
        os.kill(victim, 9)
        killed = time.monotonic()
        # its clients reconnect at once, to the other worker; the gauge of
        # the dead one's slot is stale until the replacement starts serving
        while victim in workers_of(strict) or len(workers_of(strict)) < 2:
            assert time.monotonic() - killed < 10
            time.sleep(0.02)
        time.sleep(0.5)
        spread = None
        while time.monotonic() - killed < 2 + LATE + 3:
            time.sleep(0.1)
            counts = open_by_worker(strict, token)
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
    """Small connection caps."""
    d, path, keys, *_ = data
    srv = Server(
        path,
        "--api-keys",
        str(keys),
        "--rate-limit",
        "0",
        "--no-audit-log",
        "--max-connections",
        "60",
        "--max-client-connections",
        "20",
        "--head-timeout",
        "5",
        workdir=d,
    )
    yield srv
    srv.stop()


def test_connection_caps(data, capped):
    srv = capped
    token = data[5]
    port = port_of(srv)

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
    assert limit_count(srv, token, "client_connections") >= 10
    assert limit_count(srv, token, "worker_connections") >= 40
    assert "--max-client-connections" in srv.stderr()
