"""``hashlookup check DATASET --pdq HEX``: near matches on the command line
(a real ``python -m hashlookup`` process), in every output format, with
the exit codes of ``check`` and errors that never echo a queried hash."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import numpy as np
import pytest

import hashlookup
from near_utils import build, flip


def _hl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hashlookup", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nearcli")
    rng = np.random.default_rng(31)
    h = rng.integers(0, 256, (200, 32), dtype=np.uint8)
    q = np.full(200, 90, np.uint8)
    q[7] = 10
    path = build(tmp, h, q)
    return str(path), h


def test_check_pdq_text_and_exit_codes(dataset):
    path, h = dataset
    near = flip(h[3], 5, np.random.default_rng(1)).tobytes().hex()
    far = np.random.default_rng(2).integers(0, 256, 32, dtype=np.uint8).tobytes().hex()
    r = _hl("check", path, "--pdq", near.upper(), far)
    assert r.returncode == 1, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"{near}\tNEAR\tdistance=5\tquality=90\trecord=3\t")
    assert f"match={h[3].tobytes().hex()}" in lines[0]
    assert lines[1] == f"{far}\tnot found"
    r = _hl("check", path, "--pdq", far)
    assert (r.returncode, r.stdout) == (0, f"{far}\tnot found\n")
    # Quality: record 7 (quality 10) only with --min-quality 0.
    q7 = h[7].tobytes().hex()
    assert _hl("check", path, "--pdq", q7).returncode == 0
    assert _hl("check", path, "--pdq", q7, "--min-quality", "0").returncode == 1
    assert _hl("check", path, "--pdq", near, "--max-distance", "4").returncode == 0


def test_check_pdq_jsonl_and_csv_agree_with_the_api(dataset):
    path, h = dataset
    q = flip(h[9], 12, np.random.default_rng(3)).tobytes().hex()
    with hashlookup.open_dataset(path) as ds:
        want = ds.near(q, 40)
    r = _hl("check", path, "--pdq", q, "--max-distance", "40", "--format", "jsonl")
    (doc,) = [json.loads(x) for x in r.stdout.splitlines()]
    assert doc["pdq"] == q and doc["found"] is True
    assert [(m["record"], m["distance"], m["pdq"]) for m in doc["matches"]] == [
        (m.record_id, m.distance, m.pdq) for m in want
    ]
    r = _hl("check", path, "--pdq", q, "--max-distance", "40", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [(int(x["record"]), int(x["distance"])) for x in rows] == [
        (m.record_id, m.distance) for m in want
    ]
    assert rows[0]["md5"] == want[0].md5


def test_check_pdq_arguments_are_pdq_only(dataset):
    """With --pdq every argument is a PDQ hash: an md5 is refused, and the
    same 64 hex characters without --pdq are a SHA-256 digest."""
    path, h = dataset
    with hashlookup.open_dataset(path) as ds:
        md5 = ds.record(0).md5
    r = _hl("check", path, "--pdq", h[0].tobytes().hex(), md5)
    assert r.returncode == 2 and "PDQ argument 2" in r.stderr
    r = _hl("check", path, h[0].tobytes().hex())
    assert r.returncode == 2 and "no sha256 table" in r.stderr
    r = _hl("check", "--format", "jsonl", path, "--pdq", h[0].tobytes().hex())
    assert r.returncode == 1 and json.loads(r.stdout)["matches"][0]["record"] == 0


def test_check_pdq_errors(dataset, tmp_path):
    path, _ = dataset
    secret = "ab" * 31 + "zz"
    r = _hl("check", path, "--pdq", secret)
    assert r.returncode == 2 and "PDQ argument 1" in r.stderr
    assert secret not in r.stderr
    assert "64 hex" in _hl("check", path, "--pdq", "abc").stderr
    r = _hl("check", path, "--pdq")
    assert r.returncode == 2 and "usage:" in r.stderr
    r = _hl("check", path, "--pdq", "00" * 32, "--max-distance", "-1")
    assert r.returncode == 2 and "--max-distance" in r.stderr
    plain = tmp_path / "plain.txt"
    plain.write_text("d41d8cd98f00b204e9800998ecf8427e\n")
    hashlookup.build_dataset(str(plain), tmp_path / "plain.hlds")
    r = _hl("check", str(tmp_path / "plain.hlds"), "--pdq", "00" * 32)
    assert r.returncode == 2 and "no PDQ hashes" in r.stderr


def test_build_update_check_on_the_command_line(tmp_path):
    """A CSV with a pdq column built, a PDQ list added with --input-format
    pdq, both found by check --pdq: the operator's path end to end."""
    rng = np.random.default_rng(32)
    h = rng.integers(0, 256, (4, 32), dtype=np.uint8)
    known = tmp_path / "known.csv"
    known.write_text(
        "md5,pdq,pdq_quality\n"
        + "".join(f"{i + 1:032x},{x.tobytes().hex()},80\n" for i, x in enumerate(h[:2]))
    )
    shared = tmp_path / "shared.txt"
    shared.write_text("".join(f"{x.tobytes().hex()}\n" for x in h[2:]))
    out = str(tmp_path / "known.hlds")
    assert _hl("build", "-o", out, str(known)).returncode == 0
    r = _hl("update", out, "--add", f"shared={shared}", "--input-format", "pdq")
    assert r.returncode == 0, r.stderr
    near = [flip(x, 3, rng).tobytes().hex() for x in h]
    r = _hl("check", out, "--pdq", *near, "--format", "jsonl")
    assert r.returncode == 1, r.stderr
    docs = [json.loads(x) for x in r.stdout.splitlines()]
    got = [(d["matches"][0]["record"], d["matches"][0]["distance"]) for d in docs]
    assert got == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert [d["matches"][0]["quality"] for d in docs] == [80, 80, 100, 100]
    assert docs[2]["matches"][0]["md5"] is None
    assert docs[2]["matches"][0]["labels"] == ["source:shared"]
    assert _hl("verify", out).returncode == 0


def test_info_shows_the_pdq_index_only_when_there_is_one(dataset, tmp_path):
    path, h = dataset
    res = _hl("info", path, "--json")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    with hashlookup.open_dataset(path) as ds:
        pdq = ds.current().pdq
        assert pdq is not None
        expected = {
            "hashes": len(h),
            "chunks": pdq.chunks,
            "bucket_bits": pdq.bucket_bits,
        }
        assert ds.info()["pdq"] == expected
    assert info["pdq"] == expected
    assert "pdq:" in _hl("info", path).stdout
    # a dataset without PDQ hashes: no pdq key, its facts read as before
    plain = tmp_path / "plain.md5"
    plain.write_text("d41d8cd98f00b204e9800998ecf8427e\n")
    out = tmp_path / "plain.hlds"
    hashlookup.build_dataset({"plain": str(plain)}, out)
    with hashlookup.open_dataset(out) as ds:
        assert ds.info()["pdq"] is None
        assert ds.info()["attributes"] == []
    info = json.loads(_hl("info", str(out), "--json").stdout)
    assert "pdq" not in info
    assert "attributes" not in info
