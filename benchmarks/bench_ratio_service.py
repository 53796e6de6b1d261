"""The lookup service's GET hit path as a ratio against its constant
endpoint in the same run: ``GET /lookup/md5/<hit>`` against ``GET /v1/ping``
(same server, same connection handling, a constant JSON body).

A real ``hashlookup serve`` (one worker, no auth, no rate limit) on
loopback; the client is this process, one keep-alive connection, so the
ratio includes the client's share of each request and sits closer to 1 than
wrk's (benchmarks/load_server.py, the README's figure, runs wrk with
several connections).  Every hit's answer is checked.
"""

from __future__ import annotations

import http.client
import json
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import scaled, versus

REQUESTS = scaled(2000, 20)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, int, list[str]]]:
    pytest.importorskip("uvicorn")
    root = tmp_path_factory.mktemp("bench-service")
    rng = random.Random(0x5356)
    digests = [f"{rng.getrandbits(128):032x}" for _ in range(scaled(100_000, 1000))]
    (root / "known.md5").write_text("".join(f"{d}  x\n" for d in digests))
    hlookup = str(Path(sys.executable).with_name("hlookup"))
    subprocess.run(
        [
            hlookup,
            "build",
            "-q",
            "-o",
            str(root / "known.hlds"),
            f"known={root / 'known.md5'}",
        ],
        check=True,
        timeout=300,
    )
    err = open(root / "serve.err", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [hlookup, "serve", str(root / "known.hlds"), "--port", "0", "--workers", "1",
         "--no-auth", "--rate-limit", "0"],
        stdout=subprocess.DEVNULL,
        stderr=err,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            m = re.search(
                r"listening on http://([\d.]+):(\d+)", (root / "serve.err").read_text()
            )
            if m:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((root / "serve.err").read_text())
            time.sleep(0.05)
        host, port = m.group(1), int(m.group(2))
        for _ in range(600):  # the worker is up when /healthz answers
            c = http.client.HTTPConnection(host, port, timeout=5)
            try:
                c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.05)
            finally:
                c.close()
        yield host, port, rng.sample(digests, REQUESTS)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        err.close()


def get_all(host: str, port: int, paths: list[str]) -> list[bytes]:
    """GET every path on one keep-alive connection; the bodies."""
    conn = http.client.HTTPConnection(host, port, timeout=30)
    bodies = []
    try:
        for path in paths:
            conn.request("GET", path)
            r = conn.getresponse()
            body = r.read()
            if r.status != 200:
                raise AssertionError(f"GET {path}: {r.status} {body[:200]!r}")
            bodies.append(body)
    finally:
        conn.close()
    return bodies


def test_get_hit_vs_constant_endpoint(benchmark, server) -> None:
    benchmark.group = "ratio: service GET hit vs GET /v1/ping"
    host, port, hits = server
    paths = [f"/lookup/md5/{d}" for d in hits]

    def check(ours: object, base: object) -> None:
        assert isinstance(ours, list) and isinstance(base, list)
        for d, body in zip(hits, ours, strict=True):
            assert json.loads(body)["MD5"].lower() == d
        assert all(json.loads(b) == {"pong": True} for b in base)

    versus(
        benchmark,
        lambda: get_all(host, port, paths),
        lambda: get_all(host, port, ["/v1/ping"] * len(paths)),
        name="GET /v1/ping (constant JSON), same server",
        goal="requests/s >= 0.8 of the constant endpoint's under wrk",
        rounds=scaled(7, 1),
        check=check,
    )
