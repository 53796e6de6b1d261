"""The lookup service's guards, each with its status code: API keys (401,
403, revocation while running), rate limits (429 + Retry-After), body and
batch limits (413), malformed JSON (400), wrong content types (415), huge
request heads (431), readiness (503), --no-auth; and the apikey command.
Real servers on loopback, synthetic data.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests

from server_utils import Server, add_key, bearer, make_dataset, random_misses

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("server-limits")
    path, oracle = make_dataset(d, n=800, seed=77)
    return d, path, oracle


@pytest.fixture(scope="module")
def guarded(data):
    """Auth on, 1 request/s with a burst of 3 for key 'slow', small limits."""
    d, path, _ = data
    keys = d / "keys.json"
    tokens = {name: add_key(keys, name) for name in ("acme", "gone")}
    tokens["slow"] = add_key(keys, "slow", "--rate", "1", "--burst", "3")
    with Server(
        path,
        "--api-keys",
        str(keys),
        "--rate-limit",
        "0",
        "--max-body",
        "20000",
        "--max-batch",
        "50",
        "--reload-interval",
        "0.1",
        "--no-audit-log",
        workdir=d,
    ) as srv:
        yield srv, keys, tokens


def _get(srv, path, **kw):
    return requests.get(srv.url + path, timeout=10, **kw)


def test_auth_required(guarded):
    srv, _, tokens = guarded
    good = tokens["acme"]
    wrong_secret = good[:-1] + ("B" if good.endswith("A") else "A")
    for path in (
        "/info",
        "/v1/ping",
        "/metrics",
        "/lookup/md5/" + "0" * 32,
        "/v1/bloom/md5",
    ):
        r = _get(srv, path)
        assert r.status_code == 401, path
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.json()["message"]
    for bad in (
        "Bearer",
        "Bearer nope",
        "Bearer " + wrong_secret,
        "Bearer " + good.replace("_", "-"),
        "Token " + good,
        "Basic !!!",
        "Bearer hlk_000000000000_" + "A" * 43,
    ):
        r = _get(srv, "/v1/ping", headers={"Authorization": bad})
        assert r.status_code == 401, bad
    assert _get(srv, "/v1/ping", headers=bearer(good)).json() == {"pong": True}
    assert _get(srv, "/v1/ping", auth=("anyone", good)).status_code == 200  # Basic
    # health and the API description need no key
    for path in ("/healthz", "/readyz", "/openapi.json"):
        assert _get(srv, path).status_code == 200, path


def test_revoke_while_running(guarded):
    srv, keys, tokens = guarded
    h = bearer(tokens["gone"])
    assert _get(srv, "/v1/ping", headers=h).status_code == 200
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "hashlookup",
            "apikey",
            "revoke",
            "--keys",
            str(keys),
            "gone",
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0 and "revoked" in out.stdout
    deadline = time.monotonic() + 10
    codes = set()
    while time.monotonic() < deadline:
        # every worker must have picked the change up
        codes = {_get(srv, "/v1/ping", headers=h).status_code for _ in range(8)}
        if codes == {403}:
            break
        time.sleep(0.1)
    assert codes == {403}
    assert "revoked" in _get(srv, "/v1/ping", headers=h).json()["message"]
    assert _get(srv, "/v1/ping", headers=bearer(tokens["acme"])).status_code == 200
    # a key added while running works without a restart
    fresh = add_key(keys, "late")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if {
            _get(srv, "/v1/ping", headers=bearer(fresh)).status_code for _ in range(8)
        } == {200}:
            break
        time.sleep(0.1)
    assert _get(srv, "/v1/ping", headers=bearer(fresh)).status_code == 200


def test_rate_limit_429_with_retry_after(guarded):
    srv, _, tokens = guarded
    h = bearer(tokens["slow"])
    codes = []
    with requests.Session() as s:
        for _ in range(8):  # faster than 2/s: the burst of 3, then 429
            r = s.get(srv.url + "/v1/ping", headers=h, timeout=10)
            codes.append(r.status_code)
            if r.status_code == 429:
                assert int(r.headers["retry-after"]) >= 1
                assert r.json()["message"] == "rate limit exceeded"
    assert codes[:3] == [200, 200, 200] and 429 in codes
    # shared over both workers: new connections (either worker) are limited too
    fresh = [
        _get(srv, "/v1/ping", headers={**h, "Connection": "close"}).status_code
        for _ in range(6)
    ]
    assert fresh.count(429) >= 4
    # other keys are not affected
    assert _get(srv, "/v1/ping", headers=bearer(tokens["acme"])).status_code == 200
    time.sleep(1.5)  # 1 token/s refill
    assert _get(srv, "/v1/ping", headers=h).status_code == 200


def test_body_and_batch_limits_413(guarded):
    srv, _, tokens = guarded
    h = bearer(tokens["acme"])
    url = srv.url + "/v1/check"
    ok = random_misses("md5", 50, 1)
    assert requests.post(url, json={"hashes": ok}, headers=h).status_code == 200
    r = requests.post(url, json={"hashes": ok + ok[:1]}, headers=h)
    assert r.status_code == 413 and "50" in r.json()["message"]
    r = requests.post(srv.url + "/bulk/md5", json={"hashes": ok + ok[:1]}, headers=h)
    assert r.status_code == 413
    r = requests.post(
        url,
        data=b"\n".join(x.encode() for x in ok + ok[:1]),
        headers={**h, "Content-Type": "text/plain"},
    )
    assert r.status_code == 413
    r = requests.post(
        url + "?algorithm=md5",
        data=bytes(16 * 51),
        headers={**h, "Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 413
    big = json.dumps({"hashes": ["0" * 64] * 400}).encode()  # > 20000 bytes
    r = requests.post(url, data=big, headers={**h, "Content-Type": "application/json"})
    assert r.status_code == 413 and "20000" in r.json()["message"]

    def chunks():  # no Content-Length: the limit applies while reading
        for _ in range(30):
            yield b" " * 1000

    r = requests.post(
        url, data=chunks(), headers={**h, "Content-Type": "application/json"}
    )
    assert r.status_code == 413


def test_malformed_json_400(guarded):
    srv, _, tokens = guarded
    h = {**bearer(tokens["acme"]), "Content-Type": "application/json"}
    for path in ("/v1/check", "/bulk/md5", "/bulk/sha1"):
        for body in (
            b"{",
            b"",
            b"\xff\xfe",
            b'{"hashes": [1,]}',
            b"[]",
            b'"x"',
            b'{"hashes": "abc"}',
            b'{"other": []}',
            b"null",
        ):
            r = requests.post(srv.url + path, data=body, headers=h)
            assert r.status_code == 400, (path, body)
            assert r.json()["message"]


def test_wrong_content_types_415(guarded):
    srv, _, tokens = guarded
    h = bearer(tokens["acme"])
    body = json.dumps({"hashes": ["0" * 32]}).encode()
    for ctype in (
        "text/html",
        "application/xml",
        "multipart/form-data; boundary=x",
        "image/png",
    ):
        r = requests.post(
            srv.url + "/v1/check", data=body, headers={**h, "Content-Type": ctype}
        )
        assert r.status_code == 415, ctype
        r = requests.post(
            srv.url + "/bulk/md5", data=body, headers={**h, "Content-Type": ctype}
        )
        assert r.status_code == 415, ctype
    r = requests.post(srv.url + "/v1/check", data=body, headers=h)  # no type
    assert r.status_code == 415
    # raw digests: the algorithm is required and the length must fit
    raw = {**h, "Content-Type": "application/octet-stream"}
    assert (
        requests.post(srv.url + "/v1/check", data=bytes(32), headers=raw).status_code
        == 400
    )
    assert (
        requests.post(
            srv.url + "/v1/check?algorithm=sha1", data=bytes(30), headers=raw
        ).status_code
        == 400
    )
    assert (
        requests.post(
            srv.url + "/v1/check?algorithm=crc", data=bytes(32), headers=raw
        ).status_code
        == 400
    )
    # curl -d sends a form type: CIRCL's bulk endpoints read it as JSON
    r = requests.post(
        srv.url + "/bulk/md5",
        data=body,
        headers={**h, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200 and r.json() == []


def _raw_request(url: str, head: bytes) -> bytes:
    u = urlparse(url)
    with socket.create_connection((u.hostname, u.port), timeout=10) as s:
        try:
            s.sendall(head)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return data


def test_huge_headers_431(guarded):
    srv, _, tokens = guarded
    auth = f"Authorization: Bearer {tokens['acme']}\r\n".encode()
    small = (
        b"GET /v1/ping HTTP/1.1\r\nHost: x\r\n"
        + auth
        + b"X-Pad: "
        + b"a" * 8000
        + b"\r\nConnection: close\r\n\r\n"
    )
    assert _raw_request(srv.url, small).startswith(b"HTTP/1.1 200")
    for size in (20_000, 1_000_000):
        huge = (
            b"GET /v1/ping HTTP/1.1\r\nHost: x\r\n"
            + auth
            + b"X-Pad: "
            + b"a" * size
            + b"\r\n\r\n"
        )
        got = _raw_request(srv.url, huge)
        assert got.startswith(b"HTTP/1.1 431"), got[:80]
    many = (
        b"GET /v1/ping HTTP/1.1\r\nHost: x\r\n"
        + auth
        + b"".join(b"X-H%d: v\r\n" % i for i in range(3000))
        + b"\r\n"
    )
    assert _raw_request(srv.url, many).startswith(b"HTTP/1.1 431")
    long_url = b"GET /lookup/md5/" + b"a" * 30000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    assert _raw_request(srv.url, long_url).startswith(b"HTTP/1.1 431")
    # the workers are fine afterwards
    assert _get(srv, "/v1/ping", headers=bearer(tokens["acme"])).status_code == 200


def test_garbage_http_does_not_hurt(guarded):
    srv, _, tokens = guarded
    for junk in (
        b"\x00\x01\x02\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"POST /v1/check HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
    ):
        got = _raw_request(srv.url, junk)
        assert got == b"" or got.startswith(b"HTTP/1.1 4"), got[:80]
    assert _get(srv, "/v1/ping", headers=bearer(tokens["acme"])).status_code == 200


def test_no_auth_and_readiness(data, tmp_path):
    _d, path, oracle = data
    copy = tmp_path / "copy.hlds"
    copy.write_bytes(path.read_bytes())
    with Server(
        copy,
        "--no-auth",
        "--rate-limit",
        "0",
        "--max-age",
        "3600",
        "--reload-interval",
        "0.1",
        workdir=tmp_path,
    ) as srv:
        hit = next(h for h in oracle if len(h) == 32)
        r = _get(srv, f"/lookup/md5/{hit}")
        assert r.status_code == 200 and r.json()["MD5"] == hit.upper()
        assert _get(srv, "/readyz").status_code == 200
        # a corrupt replacement: ignored, the old generation keeps answering,
        # readiness says so as a warning
        broken = tmp_path / "broken.tmp"
        broken.write_bytes(path.read_bytes()[:5000])
        os.replace(broken, copy)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ready = [
                _get(srv, "/readyz", headers={"Connection": "close"}).json()
                for _ in range(4)
            ]
            if all(r["warnings"] for r in ready):
                break
            time.sleep(0.1)
        assert all(r["warnings"] and r["status"] == "ready" for r in ready)
        assert _get(srv, f"/lookup/md5/{hit}").status_code == 200
        os.unlink(copy)  # the file is gone: not ready, but still answering
        r = _get(srv, "/readyz")
        assert r.status_code == 503
        assert "missing" in " ".join(r.json()["problems"])
        assert _get(srv, f"/lookup/md5/{hit}").status_code == 200
    assert "--no-auth" not in srv.stderr()  # loopback: no warning
    with Server(path, "--no-auth", "--max-age", "0.001", workdir=tmp_path) as srv:
        r = _get(srv, "/readyz")
        assert r.status_code == 503 and "old" in r.json()["problems"][0]


def test_no_auth_rate_limit_per_address(data, tmp_path):
    _d, path, _ = data
    with Server(
        path, "--no-auth", "--rate-limit", "1", "--burst", "2", workdir=tmp_path
    ) as srv:
        codes = [_get(srv, "/v1/ping").status_code for _ in range(5)]
        assert codes[:2] == [200, 200] and codes[-1] == 429


def test_serve_errors_exit_2(data, tmp_path):
    _d, path, _ = data

    def serve(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "hashlookup", "serve", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

    r = serve(str(path), "--port", "0")  # no keys file, no --no-auth
    assert r.returncode == 2 and "--api-keys" in r.stderr
    r = serve(str(tmp_path / "missing.hlds"), "--no-auth", "--port", "0")
    assert r.returncode == 2 and "missing.hlds" in r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 1, "keys": [{"id": "x"}]}')
    r = serve(str(path), "--api-keys", str(bad), "--port", "0")
    assert r.returncode == 2 and "bad.json" in r.stderr


def test_apikey_command(tmp_path):
    keys = tmp_path / "keys.json"
    token = add_key(keys, "acme")
    assert token.startswith("hlk_")
    text = keys.read_text()
    secret = token.split("_", 2)[2]
    assert secret not in text and token not in text
    assert stat.S_IMODE(os.stat(keys).st_mode) == 0o600
    second = add_key(keys, "acme")
    assert second != token
    doc = json.loads(keys.read_text())
    assert len(doc["keys"]) == 2 and doc["keys"][0]["salt"] != doc["keys"][1]["salt"]
    listed = subprocess.run(
        [sys.executable, "-m", "hashlookup", "apikey", "list", "--keys", str(keys)],
        capture_output=True,
        text=True,
    )
    assert listed.stdout.count("active") == 2 and secret not in listed.stdout

    def revoke(name: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "hashlookup",
                "apikey",
                "revoke",
                "--keys",
                str(keys),
                name,
            ],
            capture_output=True,
            text=True,
        )

    r = revoke("acme")
    assert r.returncode == 0 and r.stdout.count("revoked") == 2
    assert revoke("acme").returncode == 2  # nothing active left
    assert revoke("nobody").returncode == 2
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "hashlookup",
            "apikey",
            "add",
            "--keys",
            str(keys),
            "bad name",
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "invalid key name" in bad.stderr


def test_worker_restart_and_clean_stop(data, tmp_path):
    _d, path, oracle = data
    srv = Server(path, "--no-auth", "--rate-limit", "0", workdir=tmp_path)
    try:
        pid = srv.proc.pid
        children = Path(f"/proc/{pid}/task/{pid}/children")
        workers = [int(x) for x in children.read_text().split()]
        assert len(workers) == 2
        os.kill(workers[0], 9)
        deadline = time.monotonic() + 20
        now: list[int] = []
        while time.monotonic() < deadline:
            now = [int(x) for x in children.read_text().split()]
            if len(now) == 2 and workers[0] not in now:
                break
            time.sleep(0.1)
        assert len(now) == 2 and workers[0] not in now and workers[1] in now
        hit = next(h for h in oracle if len(h) == 64)
        for _ in range(10):  # new connections reach both workers
            r = requests.get(
                f"{srv.url}/lookup/sha256/{hit}",
                headers={"Connection": "close"},
                timeout=10,
            )
            assert r.status_code == 200
        assert "restarting it" in srv.stderr()
    finally:
        code = srv.stop()
    assert code == 0
    assert "stopped" in srv.stderr()
    for w in now:  # no orphan left behind
        stat_file = Path(f"/proc/{w}/stat")
        assert not stat_file.exists() or stat_file.read_text().split()[2] == "Z"


def test_no_auth_warns_off_loopback(data, tmp_path):
    _d, path, _ = data
    with Server(
        path, "--no-auth", "--host", "0.0.0.0", workers=1, workdir=tmp_path
    ) as srv:
        assert _get(srv, "/v1/ping").status_code == 200
    assert "warning: --no-auth on 0.0.0.0" in srv.stderr()


def test_verify_key(data, tmp_path):
    """--verify-key: a dataset signed by the key is served; one signed by
    another key, or unsigned, is refused at start (exit 2); an unsigned
    replacement is not loaded and the signed generation keeps answering."""
    import hashlookup

    _d, path, oracle = data
    copy = tmp_path / "signed.hlds"
    copy.write_bytes(path.read_bytes())
    hashlookup.generate_signing_key(tmp_path / "hotline")
    hashlookup.generate_signing_key(tmp_path / "other")
    hashlookup.sign_dataset(copy, tmp_path / "hotline")
    pub = str(tmp_path / "hotline.pub")

    def serve(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "hashlookup",
                "serve",
                *args,
                "--no-auth",
                "--port",
                "0",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )

    r = serve(str(copy), "--verify-key", str(tmp_path / "other.pub"))
    assert r.returncode == 2 and "not by the required key" in r.stderr
    r = serve(str(path), "--verify-key", pub)  # no .sig at all
    assert r.returncode == 2 and "signature" in r.stderr.lower()

    hit = next(h for h in oracle if len(h) == 32)
    with Server(
        copy,
        "--no-auth",
        "--verify-key",
        pub,
        "--reload-interval",
        "0.1",
        workers=1,
        workdir=tmp_path,
    ) as srv:
        r = _get(srv, f"/lookup/md5/{hit}")
        assert r.status_code == 200
        generation = r.headers["X-Dataset-Version"]
        # an unsigned replacement (same content, new file: the .sig names the
        # old version) must not be loaded
        fresh = tmp_path / "fresh.tmp"
        hashlookup.update_dataset(copy, output=fresh)
        os.replace(fresh, copy)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ready = _get(srv, "/readyz").json()
            if ready["warnings"]:
                break
            time.sleep(0.1)
        assert ready["warnings"], ready
        r = _get(srv, f"/lookup/md5/{hit}")
        assert r.status_code == 200 and r.headers["X-Dataset-Version"] == generation


def test_audit_log_write_failure_keeps_serving(data, tmp_path):
    """An audit log that cannot be written (here /dev/full: ENOSPC) does not
    fail lookups or stop the maintenance loop: hits are answered, /readyz
    warns (still 200), the log says it once, and a replaced dataset is still
    picked up."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    _d, path, oracle = data
    copy = tmp_path / "copy.hlds"
    copy.write_bytes(path.read_bytes())
    hits = [h for h in oracle if len(h) == 32][:50]
    with Server(
        copy,
        "--no-auth",
        "--rate-limit",
        "0",
        "--workers",
        "1",
        "--reload-interval",
        "0.1",
        "--audit-log",
        "/dev/full",
        workdir=tmp_path,
    ) as srv:
        gen = _get(srv, "/info").json()["generation"]
        for h in hits:
            assert _get(srv, f"/lookup/md5/{h}").status_code == 200
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ready = _get(srv, "/readyz")
            if ready.json()["warnings"]:
                break
            time.sleep(0.1)
        assert ready.status_code == 200
        warning = " ".join(ready.json()["warnings"])
        assert "audit log" in warning and "No space left" in warning, warning
        make_dataset(tmp_path, n=300, seed=78, name="copy.hlds", generation=gen + 1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if _get(srv, "/info").json()["generation"] == gen + 1:
                break
            time.sleep(0.1)
        assert _get(srv, "/info").json()["generation"] == gen + 1
    err = srv.stderr()
    assert err.count("hits are kept in memory") == 1, err  # warned once
    assert "lines not written" in err  # and said again at the stop
    assert not any(h in err for h in hits)


def test_audit_buffer_kept_and_bounded_while_unwritable(tmp_path, monkeypatch):
    """AuditLog.flush on a failing descriptor keeps the lines (whole lines,
    at most MAX_PENDING bytes, the oldest dropped and counted) and writes
    them once the log works again."""
    from hashlookup.server import _audit

    log = _audit.AuditLog("/dev/full")
    record = b'{"status":"hit"}'
    for i in range(10):
        log.hit(None, f"{i:032x}", 3, record)
    one = len(log.buffer) // 10
    log.flush()
    assert "No space left" in log.problem and len(log.buffer) == 10 * one
    monkeypatch.setattr(_audit, "MAX_PENDING", 4 * one + 5)
    log.hit(None, "f" * 32, 3, record)
    log.flush()  # within the second after a failure: no write, only the bound
    assert log.dropped == 7 and len(log.buffer) == 4 * one
    assert log.buffer.startswith(b'{"time":"') and log.buffer.endswith(b"}\n")
    good = tmp_path / "audit.jsonl"
    os.close(log._fd)
    log._fd = os.open(good, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    log.path = str(good)
    log._retry_at = 0.0
    log.flush()
    assert log.problem is None and not log.buffer
    lines = [json.loads(x) for x in good.read_text().splitlines()]
    assert [x["digest"] for x in lines] == [f"{i:032x}" for i in (7, 8, 9)] + ["f" * 32]
    assert all(x["generation"] == 3 and x["key"] is None for x in lines)
    log.close()
