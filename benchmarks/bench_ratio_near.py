"""PDQ near search as a ratio against brute force in the same run:
``Dataset.near_many`` (multi-index hashing over the file's sections) against
numpy's exact Hamming distance to every hash (XOR, ``np.bitwise_count``).

Random 256-bit hashes with planted neighbours (0-40 bits flipped), radius 31,
quality filter off; the hits must be identical to brute force's.  The
comparison with faiss (HMA's index) at full size is
benchmarks/compare_near.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import hashlookup
from conftest import scaled, versus
from hashlookup.importers import RecordBatch

N = scaled(200_000, 2000)
QUERIES = scaled(60, 41)
RADIUS = 31


@pytest.fixture(scope="module")
def near(tmp_path_factory: pytest.TempPathFactory):
    rng = np.random.default_rng(0x504452)
    hashes = rng.integers(0, 256, (N, 32), dtype=np.uint8)
    b = RecordBatch.empty(N)
    b.md5 = rng.integers(0, 256, (N, 16), dtype=np.uint8)
    b.has_md5[:] = True
    b.pdq = hashes
    b.has_pdq = np.ones(N, bool)
    b.pdq_quality = np.full(N, 100, np.uint8)
    path = Path(tmp_path_factory.mktemp("bench-near")) / "near.hlds"
    hashlookup.build_dataset(None, path, _records=[(b, np.arange(N))])
    q = hashes[rng.integers(0, N, QUERIES)].copy()
    bits = np.unpackbits(q, axis=1)
    for i in range(len(q)):
        bits[i, rng.choice(256, i % 41, replace=False)] ^= 1
    with hashlookup.open_dataset(path) as ds:
        yield ds, hashes, np.packbits(bits, axis=1)


def brute_force(hashes: np.ndarray, queries: np.ndarray) -> set[tuple[int, int, int]]:
    """(query, record id, distance) of every hash within RADIUS."""
    out: set[tuple[int, int, int]] = set()
    words = hashes.view(np.uint64)
    for i, q in enumerate(queries.view(np.uint64)):
        dist = np.bitwise_count(words ^ q).sum(axis=1, dtype=np.int64)
        for rid in np.flatnonzero(dist <= RADIUS):
            out.add((i, int(rid), int(dist[rid])))
    return out


def test_near_many_vs_brute_force(benchmark, near) -> None:
    benchmark.group = "ratio: PDQ near_many (radius 31) vs numpy brute force"
    ds, hashes, queries = near

    def ours() -> set[tuple[int, int, int]]:
        h = ds.near_many(queries, RADIUS, min_quality=0)
        return set(
            zip(
                h.query.tolist(), h.record_id.tolist(), h.distance.tolist(), strict=True
            )
        )

    def check(a: object, b: object) -> None:
        assert a == b and len(b) >= QUERIES * 30 // 41  # type: ignore[arg-type]

    versus(
        benchmark,
        ours,
        lambda: brute_force(hashes, queries),
        name="numpy XOR + bitwise_count against every hash",
        goal="<= 0.1 ms per query absolute (compare_near.py)",
        rounds=scaled(5, 1),
        check=check,
    )
