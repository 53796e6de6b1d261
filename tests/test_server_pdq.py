"""POST /v1/pdq and HMA's /m/raw_lookup and /m/lookup against a real
`hashlookup serve` on loopback: answers equal to the library's Dataset.near
(random queries with neighbours planted at every distance 0..40), input
validation, the limits, API keys, metrics, the audit log, a dataset
without PDQ hashes and reloads.  Synthetic hashes with fixed seeds."""

from __future__ import annotations

import select
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import requests

import hashlookup
from near_utils import build, flip, planted_set, write_csv
from server_utils import Server, add_key, bearer, make_dataset
from test_server_schema import CHECKS

pytestmark = pytest.mark.timeout(240)

N = 4000
SEED = 8231


def _labels(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [f"c{v}" for v in rng.integers(0, 3, n)]


def _quality(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 7)
    q = rng.integers(0, 101, n).astype(np.uint8)
    q[rng.random(n) < 0.7] = 100  # most hashes good, some below 50
    return q


def _dataset(tmp, seed: int = SEED, name: str = "near"):
    hashes, centers = planted_set(N, seed, centers=6, max_plant=45)
    path = build(
        tmp, hashes, _quality(N, seed), name=name, labels=_labels(N, seed), seed=seed
    )
    return path, hashes, centers


def _queries(hashes, centers, n, seed):
    """Queries near the centers (planted neighbours at 0..40 bits around
    them), copies of stored hashes, flips of those, and random hashes."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            out.append(flip(centers[i % len(centers)], int(rng.integers(0, 41)), rng))
        elif kind == 1:
            out.append(hashes[rng.integers(0, len(hashes))].copy())
        elif kind == 2:
            h = hashes[rng.integers(0, len(hashes))]
            out.append(flip(h, int(rng.integers(1, 40)), rng))
        else:
            out.append(rng.integers(0, 256, 32, dtype=np.uint8))
    return [q.tobytes().hex() for q in out]


def _expected(ds, q, d, mq):
    return [
        {
            "record": m.record_id,
            "distance": m.distance,
            "pdq": m.pdq,
            "quality": m.quality,
            "md5": m.md5,
            "sha1": m.sha1,
            "sha256": m.sha256,
            "size": m.size,
            "labels": list(m.labels),
        }
        for m in ds.near(q, d, min_quality=mq)
    ]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pdq")
    path, hashes, centers = _dataset(tmp)
    keys = tmp / "keys.json"
    token = add_key(keys, "client")
    slow = add_key(keys, "slow", "--rate", "1", "--burst", "2")
    audit = tmp / "audit.log"
    srv = Server(
        path,
        "--api-keys",
        str(keys),
        "--audit-log",
        str(audit),
        "--max-body",
        "1000000",
        "--rate-limit",
        "2000",
        "--upload-memory",
        "1000000",
        workdir=tmp,
    )
    ds = hashlookup.open_dataset(path)
    try:
        yield {
            "srv": srv,
            "ds": ds,
            "hashes": hashes,
            "centers": centers,
            "token": token,
            "slow": slow,
            "keys": keys,
            "audit": audit,
        }
    finally:
        srv.stop()
        ds.close()


def _post(s, body, token=None, **kw):
    return requests.post(
        s["srv"].url + "/v1/pdq",
        json=body,
        headers=bearer(token or s["token"]),
        timeout=60,
        **kw,
    )


@pytest.mark.parametrize(
    ("max_distance", "min_quality"),
    [(0, 50), (1, 0), (15, 50), (31, 50), (31, 0), (32, 50), (47, 0), (63, 50)],
)
def test_answers_equal_dataset_near(served, max_distance, min_quality):
    ds = served["ds"]
    qs = _queries(
        served["hashes"], served["centers"], 240, 100 + max_distance + min_quality
    )
    r = _post(
        served,
        {
            "hashes": qs,
            "max_distance": max_distance,
            "min_quality": min_quality,
            "max_matches": 1000,
        },
    )
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["count"] == len(qs) and len(doc["results"]) == len(qs)
    assert doc["generation"] == ds.generation == int(r.headers["x-dataset-version"])
    assert doc["max_distance"] == max_distance
    assert doc["min_quality"] == min_quality
    total = matched = 0
    for q, item in zip(qs, doc["results"], strict=True):
        want = _expected(ds, q, max_distance, min_quality)
        assert len(want) <= 1000
        assert item == {"matches": want, "truncated": False}
        total += len(want)
        matched += bool(want)
    assert doc["matches"] == total and doc["matched"] == matched
    assert doc["truncated"] == 0
    assert matched > 0  # the planted neighbours are found


def test_defaults_and_case(served):
    ds = served["ds"]
    qs = _queries(served["hashes"], served["centers"], 40, 7)
    r = _post(served, {"hashes": [q.upper() for q in qs]})
    assert r.status_code == 200
    doc = r.json()
    assert (doc["max_distance"], doc["min_quality"]) == (31, 50)
    for q, item in zip(qs, doc["results"], strict=True):
        assert item["matches"] == _expected(ds, q, 31, 50)[:100]
    # an empty batch
    r = _post(served, {"hashes": []})
    assert r.status_code == 200 and r.json()["results"] == []


def test_max_matches_truncates_nearest_first(served):
    ds = served["ds"]
    # a center: neighbours at many distances (quality filter off: all count)
    q = served["centers"][0].tobytes().hex()
    want = _expected(ds, q, 63, 0)
    assert len(want) > 3
    r = _post(
        served, {"hashes": [q], "max_distance": 63, "min_quality": 0, "max_matches": 3}
    )
    item = r.json()["results"][0]
    assert item == {"matches": want[:3], "truncated": True}
    assert r.json()["truncated"] == 1


def test_total_matches_cap(served, monkeypatch):
    """The cap on matches per answer, through the endpoint's search on the
    served file (in-process: a cap of 100,000 needs a large answer)."""
    from hashlookup.server import _pdq

    ds = served["ds"]
    qs = _queries(served["hashes"], served["centers"], 2000, 11)
    req = _pdq.parse_request(
        __import__("json").dumps({"hashes": qs, "min_quality": 0}).encode(), 10000
    )
    assert isinstance(req, _pdq.PdqRequest)
    full = _pdq.search(ds.current(), req)
    assert full.truncated == 0 and full.matches > 60
    monkeypatch.setattr(_pdq, "MAX_TOTAL_MATCHES", 50)
    monkeypatch.setattr(_pdq, "_CHUNK", 256)
    cut = _pdq.search(ds.current(), req)
    assert cut.matches == 50 and cut.truncated > 0
    # items before the cut are whole, the one cut has its nearest matches
    first_cut = next(i for i, b in enumerate(cut.items) if b.endswith(b"true}"))
    assert cut.items[:first_cut] == full.items[:first_cut]
    assert all(
        b.endswith(b"true}") or b == _pdq._EMPTY_ITEM for b in cut.items[first_cut:]
    )


@pytest.mark.parametrize(
    ("body", "status", "field", "fragment"),
    [
        ({"hashes": ["0" * 64, "0" * 63]}, 422, "hashes[1]", "63 characters"),
        (
            {"hashes": ["0" * 64, "0" * 64, "0" * 63 + "g"]},
            422,
            "hashes[2]",
            "position 63",
        ),
        ({"hashes": [1]}, 422, "hashes[0]", "a number"),
        ({"hashes": [None]}, 422, "hashes[0]", "null"),
        ({"hashes": "ab" * 32}, 422, "hashes", "a string"),
        ({}, 422, "hashes", "null"),
        ({"hashes": [], "max_distance": 65}, 422, "max_distance", "0..64"),
        ({"hashes": [], "max_distance": -1}, 422, "max_distance", "0..64"),
        ({"hashes": [], "max_distance": "31"}, 422, "max_distance", "integer"),
        ({"hashes": [], "max_distance": True}, 422, "max_distance", "integer"),
        ({"hashes": [], "min_quality": 101}, 422, "min_quality", "0..100"),
        ({"hashes": [], "max_matches": 0}, 422, "max_matches", "1..1000"),
        ({"hashes": [], "max_dist": 3}, 422, "max_dist", "unknown field"),
        ({"hashes": [], "0" * 64: 3}, 422, "(a key)", "unknown field"),
        ([], 400, None, "JSON object"),
    ],
)
def test_validation(served, body, status, field, fragment):
    r = _post(served, body)
    assert r.status_code == status, r.text
    doc = r.json()
    assert fragment in doc["message"]
    if field is not None:
        assert doc["field"] == field and doc["message"].startswith(field + ":")
    assert "0" * 60 not in r.text  # a hash is never echoed


def test_body_errors_and_limits(served):
    url = served["srv"].url + "/v1/pdq"
    h = bearer(served["token"])
    r = requests.post(
        url, data=b"{not json", headers={**h, "Content-Type": "application/json"}
    )
    assert r.status_code == 400 and "malformed JSON" in r.json()["message"]
    r = requests.post(url, data=b"x", headers={**h, "Content-Type": "text/plain"})
    assert r.status_code == 415
    r = requests.get(url, headers=h)
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    one = "ab" * 32
    r = _post(served, {"hashes": [one] * 10_001})
    assert r.status_code == 413 and "10000" in r.json()["message"]
    r = _post(served, {"hashes": [one] * 1001, "max_distance": 32})
    assert r.status_code == 413 and "1000" in r.json()["message"]
    r = _post(served, {"hashes": [one] * 1000, "max_distance": 32})
    assert r.status_code == 200
    # the body limit of the service (--max-body 1000000 here)
    r = requests.post(
        url, data=b" " * 1_000_001, headers={**h, "Content-Type": "application/json"}
    )
    assert r.status_code == 413
    # a body of many tiny items is refused while it is read
    r = requests.post(
        url,
        data=b'{"hashes":[' + b"0," * 200_000 + b"0]}",
        headers={**h, "Content-Type": "application/json"},
    )
    assert r.status_code == 413


def test_upload_memory(served):
    """Stalled uploads to /v1/pdq hold the worker's upload memory
    (--upload-memory 1000000 here, all of it one address's share): an
    upload that does not fit is refused at once with 429."""
    host, port = served["srv"].url.rsplit("//", 1)[1].rsplit(":", 1)
    head = (
        f"POST /v1/pdq HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {served['token']}\r\n"
        "Content-Type: application/json\r\nContent-Length: 600000\r\n\r\n"
        '{"hashes": ['
    ).encode()
    socks = []
    try:
        for _ in range(6):  # at most one fits per worker (2 workers)
            s = socket.create_connection(
                (host, int(port)), source_address=("127.0.0.77", 0)
            )
            s.sendall(head)
            socks.append(s)
        # the refusals come at once; the uploads read wait for their body:
        # collect what arrives within a few seconds (generous on a loaded
        # machine), from all connections at the same time
        refused = 0
        waiting = set(socks)
        deadline = time.monotonic() + 5
        while waiting and time.monotonic() < deadline:
            ready, _, _ = select.select(list(waiting), [], [], 0.2)
            for s in ready:
                s.settimeout(5)
                answer = s.recv(4096)
                while answer and not answer.endswith(b"}"):  # head, then body
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    answer += chunk
                assert answer.startswith(b"HTTP/1.1 429"), answer[:200]
                assert b"too many uploads in progress from this address" in answer
                refused += 1
                waiting.discard(s)
        assert refused >= 4
    finally:
        for s in socks:
            s.close()


def test_keys_and_rate_limit(served):
    url = served["srv"].url
    body = {"hashes": ["ab" * 32]}
    assert requests.post(url + "/v1/pdq", json=body).status_code == 401
    assert (
        requests.post(url + "/v1/pdq", json=body, headers=bearer("hl_x.y")).status_code
        == 401
    )
    sig = {"signal_type": "pdq", "signal": "ab" * 32}
    assert requests.get(url + "/m/raw_lookup", params=sig).status_code == 401
    codes = [_post(served, body, token=served["slow"]).status_code for _ in range(6)]
    assert codes[0] == 200 and 429 in codes
    r = requests.get(url + "/m/raw_lookup", params=sig, headers=bearer(served["slow"]))
    assert r.status_code == 429 and r.headers["retry-after"]


def _hma_get(served, path, params, token=None):
    return requests.get(
        served["srv"].url + path,
        params=params,
        headers=bearer(token or served["token"]),
        timeout=30,
    )


def test_hma_raw_lookup_like_its_clients(served):
    """GET /m/raw_lookup as HMA's API tests and clients call it: signal_type
    and signal, optional include_distance (True from Python) and banks."""
    ds = served["ds"]
    qs = _queries(served["hashes"], served["centers"], 60, 23)
    found = 0
    for q in qs:
        want = []
        for m in ds.near(q):
            if m.record_id not in [w[0] for w in want]:
                want.append((m.record_id, m.distance))
        query_str = {"signal": q, "signal_type": "pdq"}
        r = _hma_get(served, "/m/raw_lookup", query_str)
        assert r.status_code == 200, r.text
        assert r.json() == {"matches": [rid for rid, _ in want]}
        query_str["include_distance"] = True  # type: ignore[assignment]
        r = _hma_get(served, "/m/raw_lookup", query_str)
        assert r.json() == {
            "matches": [{"bank_content_id": rid, "distance": str(d)} for rid, d in want]
        }
        query_str["banks"] = "c0,c2"  # type: ignore[assignment]
        r = _hma_get(served, "/m/raw_lookup", query_str)
        banked = [
            {"bank_content_id": m.record_id, "distance": str(m.distance)}
            for m in ds.near(q, only=["c0", "c2"])
        ]
        assert r.json() == {"matches": banked}
        # /m/lookup: matches by bank (label)
        r = _hma_get(served, "/m/lookup", {"signal_type": "pdq", "signal": q})
        by_bank: dict = {}
        for rid, d in want:
            for label in ds.record(rid).labels:
                by_bank.setdefault(label, []).append(
                    {"bank_content_id": rid, "distance": str(d)}
                )
        assert r.json() == by_bank
        found += bool(want)
    assert found > 10
    log = served["srv"].stderr()  # query strings are never logged
    assert not any(q in log for q in qs)


@pytest.mark.parametrize(
    ("path", "params", "status", "message"),
    [
        ("/m/raw_lookup", {"signal_type": "pdq"}, 400, "signal is required"),
        ("/m/raw_lookup", {"signal": "ab" * 32}, 400, "signal_type is required"),
        (
            "/m/raw_lookup",
            {"signal_type": "video_md5", "signal": "ab" * 32},
            400,
            "No such SignalType 'video_md5'",
        ),
        (
            "/m/raw_lookup",
            {"signal_type": "ab" * 32, "signal": "ab" * 32},
            400,
            "No such SignalType '?'",
        ),
        (
            "/m/raw_lookup",
            {"signal_type": "pdq", "signal": "ab" * 31},
            400,
            "invalid signal",
        ),
        (
            "/m/raw_lookup",
            {"signal_type": "pdq", "signal": "ab" * 32, "include_distance": "maybe"},
            400,
            "boolean",
        ),
        (
            "/m/lookup",
            {"url": "http://example.invalid/x.jpg"},
            403,
            "Hashing is disabled",
        ),
    ],
)
def test_hma_errors(served, path, params, status, message):
    r = _hma_get(served, path, params)
    assert r.status_code == status
    assert message in r.json()["message"]


def test_metrics_and_privacy(served):
    url = served["srv"].url
    h = bearer(served["token"])

    def counters():
        text = requests.get(url + "/metrics", headers=h).text
        out = {}
        for line in text.splitlines():
            for name in ("pdq_queries", "pdq_matched", "pdq_matches"):
                if line.startswith(f"hashlookup_{name}_total "):
                    out[name] = float(line.split()[1])
        return out, text

    before, _ = counters()
    ds = served["ds"]
    qs = _queries(served["hashes"], served["centers"], 50, 31)
    r = _post(served, {"hashes": qs})
    doc = r.json()
    after, text = counters()
    assert after["pdq_queries"] - before["pdq_queries"] == 50
    assert after["pdq_matched"] - before["pdq_matched"] == doc["matched"]
    assert after["pdq_matches"] - before["pdq_matches"] == doc["matches"]
    assert 'endpoint="pdq"' in text and 'endpoint="hma"' in text
    # queried hashes: never in the service's log or metrics; in the audit
    # log only those that matched (hits are logged)
    time.sleep(1.5)  # the audit log is flushed every second
    audit = served["audit"].read_text()
    log = served["srv"].stderr()
    for q, item in zip(qs, doc["results"], strict=True):
        assert q not in log and q not in text
        assert (q in audit) == bool(item["matches"]), q
    assert all(ds.near(q) == [] or q in audit for q in qs)


def test_dataset_without_pdq_then_reload(tmp_path):
    """A dataset without PDQ hashes answers 409 (after validation); a
    replacement with PDQ hashes is served after a reload, and each answer
    equals Dataset.near on the generation it names."""
    path, _ = make_dataset(tmp_path, n=300, seed=3)
    keys = tmp_path / "keys.json"
    token = add_key(keys, "client")
    h = bearer(token)
    with Server(
        path, "--api-keys", str(keys), "--reload-interval", "0.1", workdir=tmp_path
    ) as srv:
        q = "ab" * 32
        r = requests.post(srv.url + "/v1/pdq", json={"hashes": [q]}, headers=h)
        assert r.status_code == 409 and "no PDQ hashes" in r.json()["message"]
        r = requests.post(srv.url + "/v1/pdq", json={"hashes": ["x"]}, headers=h)
        assert r.status_code == 422
        r = requests.get(
            srv.url + "/m/raw_lookup",
            params={"signal_type": "pdq", "signal": q},
            headers=h,
        )
        assert r.status_code == 400
        assert r.json()["message"].startswith("No such SignalType 'pdq'")
        # the CIRCL and native endpoints are unaffected
        assert requests.get(srv.url + "/info", headers=h).status_code == 200

        oracles = {}
        for k, seed in enumerate((41, 42)):
            hashes, centers = planted_set(N, seed, centers=6, max_plant=45)
            csv = tmp_path / f"g{k}.csv"
            write_csv(csv, hashes, seed=seed)
            # the replacement: same path, the next generation (atomic replace)
            with hashlookup.open_dataset(path) as old:
                gen = old.generation + 1
            hashlookup.build_dataset({f"g{k}": str(csv)}, str(path), generation=gen)
            oracles[gen] = hashlookup.open_dataset(path)
            assert oracles[gen].generation == gen
            qs = _queries(hashes, centers, 80, seed)
            deadline = time.monotonic() + 20
            in_a_row = 0  # answers of the new generation, one after another
            while in_a_row < 6:
                assert time.monotonic() < deadline, "the reload was not served"
                r = requests.post(
                    srv.url + "/v1/pdq", json={"hashes": qs}, headers=h, timeout=30
                )
                if r.status_code == 409:  # a worker still without PDQ
                    assert k == 0
                    in_a_row = 0
                    continue
                assert r.status_code == 200, r.text
                doc = r.json()
                in_a_row = in_a_row + 1 if doc["generation"] == gen else 0
                # every answer equals Dataset.near on the generation it names
                ds = oracles[doc["generation"]]
                for qh, item in zip(qs, doc["results"], strict=True):
                    assert item["matches"] == _expected(ds, qh, 31, 50)[:100]
                time.sleep(0.02)
        for ds in oracles.values():
            ds.close()


def test_schemathesis_pdq_paths(served, tmp_path):
    """schemathesis over the PDQ operations of /openapi.json, on a dataset
    that has PDQ hashes (tests/test_server_schema.py runs every operation
    on one without)."""
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            served["srv"].url + "/openapi.json",
            "-H",
            f"Authorization: Bearer {served['token']}",
            "--checks",
            CHECKS,
            "--include-path-regex",
            "^/(v1/pdq|m/)",
            "--max-examples",
            "30",
            "--seed",
            "20261206",
            "--generation-database",
            "none",
            "--no-color",
            "--mode",
            "all",
            "--request-timeout",
            "30",
        ],
        capture_output=True,
        text=True,
        timeout=200,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
    assert "passed" in run.stdout
    assert "Traceback" not in served["srv"].stderr()
