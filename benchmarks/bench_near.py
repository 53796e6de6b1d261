"""pytest-benchmark: Dataset.near and near_many over 200,000 random PDQ
hashes with planted neighbours (``make bench``; the full-size comparison
with faiss is benchmarks/compare_near.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import hashlookup
from conftest import scaled
from hashlookup.importers import RecordBatch

N = scaled(200_000, 2000)  # tiny with --benchmark-disable (make test)


@pytest.fixture(scope="module")
def near_ds(tmp_path_factory):
    rng = np.random.default_rng(0x504451)
    hashes = rng.integers(0, 256, (N, 32), dtype=np.uint8)
    b = RecordBatch.empty(N)
    b.md5 = rng.integers(0, 256, (N, 16), dtype=np.uint8)
    b.has_md5[:] = True
    b.pdq = hashes
    b.has_pdq = np.ones(N, bool)
    b.pdq_quality = np.full(N, 100, np.uint8)
    path = Path(tmp_path_factory.mktemp("benchnear")) / "near.hlds"
    hashlookup.build_dataset(None, path, _records=[(b, np.arange(N))])
    # Queries: dataset hashes with 0..40 bits flipped.
    q = hashes[rng.integers(0, N, 4100)].copy()
    bits = np.unpackbits(q, axis=1)
    for i in range(len(q)):
        bits[i, rng.choice(256, i % 41, replace=False)] ^= 1
    with hashlookup.open_dataset(path) as ds:
        yield ds, np.packbits(bits, axis=1)


@pytest.mark.parametrize("radius", [0, 15, 31, 47])
def test_near_one(benchmark, near_ds, radius):
    ds, q = near_ds
    queries = [x.tobytes() for x in q[:41]]
    it = iter(range(10**9))

    def one():
        return ds.near(queries[next(it) % 41], radius, min_quality=0)

    benchmark(one)


@pytest.mark.parametrize("threads", [1, 2])
def test_near_many(benchmark, near_ds, threads):
    ds, q = near_ds
    hits = benchmark(ds.near_many, q, 31, min_quality=0, threads=threads)
    assert len(np.unique(hits.query)) >= len(q) * 30 // 41
