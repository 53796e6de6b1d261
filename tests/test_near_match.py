"""match --pdq: inventories with a pdq column (and quality) against a
dataset with PDQ hashes, compared with the brute-force oracle for several
radii and quality floors; CSV and Parquet; bad cells; --invert, --count,
several inputs; what is refused.  Synthetic hashes, fixed seeds."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

import hashlookup
from hashlookup.match.near import match_pdq
from hashlookup.match.pieces import Inventory
from near_utils import build, flip, oracle, planted_set

HLOOKUP = [sys.executable, "-m", "hashlookup"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nearmatch")
    hashes, centers = planted_set(3000, seed=21)
    rng = np.random.default_rng(22)
    quality = rng.integers(0, 101, len(hashes))
    ds = build(tmp, hashes, quality)
    # Queries: the centres, near copies of some dataset hashes, random ones,
    # the all-zero and all-one hashes; a quality column with blanks.
    q = list(centers)
    q += [flip(hashes[i], int(d), rng) for i, d in zip(range(0, 3000, 97), range(60))]
    q += list(rng.integers(0, 256, (20, 32), dtype=np.uint8))
    q += [np.zeros(32, np.uint8), np.full(32, 255, np.uint8)]
    queries = np.stack(q)
    qual = [str(int(v)) if v >= 0 else "" for v in rng.integers(-10, 101, len(q))]
    inv = tmp / "inv.csv"
    with open(inv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "md5", "pdq", "pdq_quality"])
        for i, (h, qq) in enumerate(zip(queries, qual, strict=True)):
            w.writerow([f"file{i}", "0" * 32, h.tobytes().hex(), qq])
    return {
        "tmp": tmp,
        "ds": ds,
        "hashes": hashes,
        "quality": quality,
        "queries": queries,
        "qual": qual,
        "inv": inv,
    }


def expected(world, max_distance, min_quality):
    """(row, record, distance) by brute force; rows whose own quality is
    below the floor are not searched."""
    qi, rec, dist = oracle(
        world["queries"], world["hashes"], world["quality"], max_distance, min_quality
    )
    keep = [q == "" or int(q) >= min_quality for q in world["qual"]]
    return {
        (int(i) + 1, int(r), int(d))
        for i, r, d in zip(qi, rec, dist, strict=True)
        if keep[i]
    }


def run(*args):
    return subprocess.run(
        [*HLOOKUP, "match", *map(str, args)], capture_output=True, text=True
    )


@pytest.mark.parametrize("max_distance", [0, 15, 31, 40])
def test_cli_equals_brute_force(world, max_distance):
    for min_quality in (0, 50):
        p = run(
            world["ds"],
            world["inv"],
            "--pdq",
            "--format",
            "jsonl",
            "--max-distance",
            max_distance,
            "--min-quality",
            min_quality,
        )
        want = expected(world, max_distance, min_quality)
        assert p.returncode == (1 if want else 0), p.stderr
        rows = [json.loads(line) for line in p.stdout.splitlines()]
        got = {(r["row"], r["record"], r["distance"]) for r in rows}
        assert got == want
        # Output in row order, nearest first within a row.
        keys = [(r["row"], r["distance"], r["record"]) for r in rows]
        assert keys == sorted(keys)
        for r in rows:
            assert r["pdq"] == world["queries"][r["row"] - 1].tobytes().hex()
            assert r["match"] == world["hashes"][r["record"]].tobytes().hex()


def test_library_equals_brute_force_and_batches(world, monkeypatch):
    from hashlookup.match import near

    monkeypatch.setattr(near, "BATCH_ROWS", 7)  # many batches, one answer
    with hashlookup.open_dataset(world["ds"]) as ds:
        pieces = list(
            match_pdq(ds, Inventory(str(world["inv"]), "csv", column="pdq"), 31, 50)
        )
    assert len(pieces) > 5
    got = set()
    for piece in pieces:
        for qi, r, d in zip(piece.query, piece.record_id, piece.distance, strict=True):
            got.add((int(piece.rows[qi]), int(r), int(d)))
    assert got == expected(world, 31, 50)
    rows = np.concatenate([p.rows for p in pieces])
    assert rows.tolist() == list(range(1, len(world["queries"]) + 1))
    low = sum(1 for q in world["qual"] if q != "" and int(q) < 50)
    assert sum(p.low_quality for p in pieces) == low


def test_parquet_and_several_inputs(world):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = world["tmp"] / "inv.parquet"
    table = pa.table(
        {
            "pdq": [h.tobytes().hex() for h in world["queries"]],
            "quality": [int(q) if q else None for q in world["qual"]],
        }
    )
    pq.write_table(table, path)
    p = run(world["ds"], path, world["inv"], "--pdq", "--format", "csv")
    assert p.returncode == 1, p.stderr
    lines = list(csv.reader(p.stdout.splitlines()))
    assert lines[0][:4] == ["file", "row", "pdq", "record"]
    by_file: dict[str, set] = {}
    for r in lines[1:]:
        by_file.setdefault(r[0], set()).add((int(r[1]), int(r[3]), int(r[4])))
    want = expected(world, 31, 50)
    assert by_file == {str(path): want, str(world["inv"]): want}


def test_invert_count_and_text(world):
    want = expected(world, 31, 50)
    rows_hit = {r for r, _, _ in want}
    n = len(world["queries"])
    p = run(world["ds"], world["inv"], "--pdq", "--count")
    assert p.stdout.strip() == str(len(rows_hit))
    p = run(world["ds"], world["inv"], "--pdq", "--count", "--invert")
    assert p.stdout.strip() == str(n - len(rows_hit))
    p = run(world["ds"], world["inv"], "--pdq", "--invert")
    listed = {int(line.split("\t")[0]) for line in p.stdout.splitlines()}
    assert listed == set(range(1, n + 1)) - rows_hit
    p = run(world["ds"], world["inv"], "--pdq")
    got = set()
    for line in p.stdout.splitlines():
        f = line.split("\t")
        assert f[2] == "NEAR"
        kv = dict(x.split("=", 1) for x in f[3:])
        got.add((int(f[0]), int(kv["record"]), int(kv["distance"])))
    assert got == want
    assert "not searched" in p.stderr


def test_bad_cells(world):
    tmp = world["tmp"]
    bad = tmp / "bad.csv"
    good = world["queries"][0].tobytes().hex()
    bad.write_text(f"pdq,quality\n{good},90\n{good[:-1]},90\n{good},900\n{good},\n")
    p = run(world["ds"], bad, "--pdq")
    assert p.returncode == 2 and "row 2" in p.stderr and good[:-1] not in p.stderr
    p = run(world["ds"], bad, "--pdq", "--skip-invalid", "--format", "jsonl")
    assert p.returncode == 1, p.stderr
    assert {json.loads(x)["row"] for x in p.stdout.splitlines()} == {1, 4}
    assert "skipped 2 invalid rows" in p.stderr


def test_refusals(world, tmp_path):
    p = run(world["ds"], world["inv"], "--column", "pdq")
    assert p.returncode == 2 and "--pdq" in p.stderr
    plain = tmp_path / "plain.md5"
    plain.write_text("0" * 32 + "\n")
    hashlookup.build_dataset(str(plain), tmp_path / "plain.hlds")
    p = run(tmp_path / "plain.hlds", world["inv"], "--pdq")
    assert p.returncode == 2 and "no PDQ" in p.stderr
    text = tmp_path / "list.txt"
    text.write_text(world["queries"][0].tobytes().hex() + "\n")
    p = run(world["ds"], text, "--pdq", "--input-format", "text")
    assert p.returncode == 2 and "CSV" in p.stderr
    p = run(world["ds"], world["inv"], "--pdq", "--annotate")
    assert p.returncode == 2
    p = run(world["ds"], world["inv"], "--pdq", "--max-distance", "-1")
    assert p.returncode == 2 and "--max-distance" in p.stderr
    p = run(world["ds"], world["inv"], "--pdq", "--column", "nope")
    assert p.returncode == 2 and "nope" in p.stderr
    # Another column name, given.
    other = tmp_path / "other.csv"
    other.write_text("hash\n" + world["queries"][0].tobytes().hex() + "\n")
    p = run(world["ds"], other, "--pdq", "--column", "hash", "--format", "jsonl")
    got = {
        (json.loads(x)["row"], json.loads(x)["record"]) for x in p.stdout.splitlines()
    }
    # No quality column: the row is searched whatever the floor.
    _, rec, _ = oracle(world["queries"][:1], world["hashes"], world["quality"], 31, 50)
    assert got == {(1, int(r)) for r in rec} and got
