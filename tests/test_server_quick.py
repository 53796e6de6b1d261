"""GET answers written by the protocol at once (LookupApp.quick through
_protocol) against the ASGI path: a real `hashlookup serve` on loopback and
raw sockets, so that every byte of an answer is compared.

A request with a query string always takes the ASGI path (the lookup
ignores the query), so the same request with and without `?x=1` must give
the same bytes but the date line: status, headers, body, the connection's
fate, for hits, misses, invalid and unknown digests, /v1/ping and /healthz,
without or with a wrong key, as HEAD, HTTP/1.0 and with Connection: close.
Pipelined requests mixing both paths are answered in order; each path
writes its audit line and counts its request.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from server_utils import Server, add_key, make_dataset

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    d = tmp_path_factory.mktemp("server-quick")
    path, oracle = make_dataset(d, n=400, seed=4242)
    keys = d / "keys.json"
    token = add_key(keys, "client", "--rate", "100000", "--burst", "100000")
    slow = add_key(keys, "slow", "--rate", "0.01", "--burst", "1")
    revoked = add_key(keys, "gone")
    subprocess.run(
        [sys.executable, "-m", "hashlookup", "apikey", "revoke"]
        + ["--keys", str(keys), "gone"],
        check=True,
        capture_output=True,
    )
    audit = d / "audit.jsonl"
    srv = Server(
        path,
        "--api-keys",
        str(keys),
        "--audit-log",
        str(audit),
        "--reload-interval",
        "0.2",
        workdir=d,
        workers=1,
    )
    try:
        yield srv, oracle, token, slow, revoked, audit
    finally:
        srv.stop()


def _port(srv: Server) -> int:
    return int(srv.url.rsplit(":", 1)[1])


def _exchange(port: int, data: bytes, wait: float = 0.3) -> bytes:
    """Send `data`, read until the server closes or is quiet for `wait` s."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        s.settimeout(wait)
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return out + b"<closed>"
                out += chunk
        except TimeoutError:
            return out


def _undated(raw: bytes) -> bytes:
    return re.sub(rb"\r\ndate: [^\r]*", b"", raw)


def test_same_bytes_as_the_asgi_path(served):
    srv, oracle, token, _, revoked, _ = served
    port = _port(srv)
    digests = sorted(oracle)
    hits = [next(h for h in digests if len(h) == n) for n in (32, 40, 64)]
    alg = {32: "md5", 40: "sha1", 64: "sha256"}
    paths = [f"/lookup/{alg[len(h)]}/{h}" for h in hits]
    paths += [
        f"/lookup/md5/{hits[0].upper()}",
        "/lookup/md5/" + "0" * 32,  # a miss
        "/lookup/sha1/" + hits[0],  # the wrong length
        "/lookup/md5/zz",
        "/lookup/sha9/00",
        "/lookup/md5",
        "/v1/ping",
        "/healthz",
    ]
    auths = [
        f"Authorization: Bearer {token}\r\n",
        "",
        "Authorization: Bearer hlk_000000000000_nope\r\n",
        f"Authorization: Bearer {revoked}\r\n",
    ]
    compared = 0
    for path in paths:
        for method, version, extra in [
            ("GET", "1.1", auths[0]),
            ("HEAD", "1.1", auths[0]),
            ("GET", "1.0", auths[0]),
            ("GET", "1.1", auths[0] + "Connection: close\r\n"),
            ("GET", "1.1", auths[1]),
            ("GET", "1.1", auths[2]),
            ("GET", "1.1", auths[3]),
        ]:
            head = f" HTTP/{version}\r\nHost: t\r\n{extra}\r\n"
            quick = _exchange(port, f"{method} {path}{head}".encode())
            asgi = _exchange(port, f"{method} {path}?x=1{head}".encode())
            assert quick.startswith(b"HTTP/1.1 "), quick
            assert _undated(quick) == _undated(asgi), (method, version, path, extra)
            compared += 1
    assert compared == len(paths) * 7
    # a hit's body is the CIRCL record of the oracle's row
    body = requests.get(
        srv.url + paths[0], headers={"Authorization": f"Bearer {token}"}
    ).json()
    assert body["MD5"].lower() == hits[0]


def test_rate_limited_answer_matches(served):
    srv, oracle, _, slow, _, _ = served
    port = _port(srv)
    h = next(h for h in oracle if len(h) == 32)
    head = f" HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {slow}\r\n\r\n"
    first = _exchange(port, f"GET /lookup/md5/{h}{head}".encode())
    assert first.startswith(b"HTTP/1.1 200 "), first
    quick = _exchange(port, f"GET /lookup/md5/{h}{head}".encode())
    asgi = _exchange(port, f"GET /lookup/md5/{h}?x=1{head}".encode())
    assert quick.startswith(b"HTTP/1.1 429 "), quick
    # retry-after may differ by a second between the two
    strip = rb"\r\ndate: [^\r]*|retry-after: \d+|\"retry_after\":\d+"
    assert re.sub(strip, b"", quick) == re.sub(strip, b"", asgi)


def _answers(raw: bytes) -> list[tuple[int, bytes]]:
    """(status, body) of each answer in a stream of HTTP/1.1 answers."""
    out = []
    while raw.startswith(b"HTTP/1.1 "):
        head, _, rest = raw.partition(b"\r\n\r\n")
        length = int(re.search(rb"content-length: (\d+)", head).group(1))
        out.append((int(head[9:12]), rest[:length]))
        raw = rest[length:]
    return out


def test_pipelined_requests_answered_in_order(served):
    srv, oracle, token, _, _, _ = served
    port = _port(srv)
    hits = [h for h in oracle if len(h) == 32][:3]
    auth = f"Authorization: Bearer {token}\r\n"
    body = json.dumps({"hashes": hits[:2]}).encode()
    reqs = [
        f"GET /lookup/md5/{hits[0]} HTTP/1.1\r\nHost: t\r\n{auth}\r\n".encode(),
        f"POST /v1/check HTTP/1.1\r\nHost: t\r\n{auth}Content-Type: application/json"
        f"\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body,
        f"GET /v1/ping HTTP/1.1\r\nHost: t\r\n{auth}\r\n".encode(),
        f"GET /info HTTP/1.1\r\nHost: t\r\n{auth}\r\n".encode(),
        f"GET /lookup/md5/{hits[1]} HTTP/1.1\r\nHost: t\r\n{auth}\r\n".encode(),
        f"GET /lookup/md5/{'0' * 32} HTTP/1.1\r\nHost: t\r\n{auth}\r\n".encode(),
        f"GET /lookup/md5/{hits[2]} HTTP/1.1\r\nHost: t\r\n{auth}"
        "Connection: close\r\n\r\n".encode(),
        b"GET /v1/ping HTTP/1.1\r\nHost: t\r\n\r\n",  # after a close: unanswered
    ]
    raw = _exchange(port, b"".join(reqs), wait=2)
    assert raw.endswith(b"<closed>")
    got = _answers(raw)
    assert [s for s, _ in got] == [200, 200, 200, 200, 200, 404, 200]
    assert json.loads(got[0][1])["MD5"].lower() == hits[0]
    assert json.loads(got[1][1])["hits"] == 2
    assert got[2][1] == b'{"pong":true}'
    assert "records" in json.loads(got[3][1])
    assert json.loads(got[4][1])["MD5"].lower() == hits[1]
    assert json.loads(got[6][1])["MD5"].lower() == hits[2]


def test_audit_lines_and_metrics_of_both_paths(served):
    srv, oracle, token, _, _, audit = served
    h = [h for h in oracle if len(h) == 64][-1]
    headers = {"Authorization": f"Bearer {token}"}

    def lookups() -> float:
        text = requests.get(srv.url + "/metrics", headers=headers).text
        m = re.search(
            r'^hashlookup_requests_total\{endpoint="lookup",code="200"\} (\S+)$',
            text,
            re.M,
        )
        return float(m.group(1)) if m else 0.0

    before = lookups()
    quick = requests.get(srv.url + f"/lookup/sha256/{h}", headers=headers)
    asgi = requests.get(srv.url + f"/lookup/sha256/{h}?x=1", headers=headers)
    assert quick.status_code == asgi.status_code == 200
    assert quick.content == asgi.content
    assert lookups() - before == 2
    deadline = time.monotonic() + 20  # flushed by the worker's upkeep
    lines: list[dict] = []
    while time.monotonic() < deadline:
        text = Path(audit).read_text() if Path(audit).exists() else ""
        lines = [json.loads(x) for x in text.splitlines() if h in x]
        if len(lines) >= 2:
            break
        time.sleep(0.2)
    assert len(lines) == 2, lines
    for line in lines:
        line.pop("time")
    assert lines[0] == lines[1]
    assert lines[0]["digest"] == h
