"""pytest-benchmark suites: lookups, open and build, with set/numpy baselines.

Parameters: N keys in the index (1e3, 1e5, 1e6; 1e7 with HASHLOOKUP_BENCH_BIG=1),
fraction of queries that are members (0, 0.5, 1) and keys per timed call
("batch": 1, 1000, 1e6).  Benchmarks are grouped so that ours and the
baselines for the same (N, hits, batch) are printed next to each other;
``extra_info["keys_per_call"]`` gives the divisor for a per-key figure.

Each index is built with the defaults (a Bloom filter, no first-level
filter); ``in`` and ``contains_many`` are also timed on the same keys built
with a first-level filter beside the Bloom filter (``prefilter_bits_per_key=4``,
the former default, which lookups no longer read there:
``test_in_prefiltered``, ``test_contains_many_prefiltered``), in the same group.

The set baselines here reuse one query list, so Python has cached the hash
of every query ``bytes`` (the set's best case); compare.py times them with
fresh objects.  benchmarks/compare.py is the side-by-side measurement with
targets; this suite tracks how each operation scales.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import BATCH_SIZES, HIT_RATIOS, SIZES, Dataset, size_id

# Single `in` loops over the batch in Python; a million iterations per round
# would only re-measure the same per-call cost, so cap it.
SINGLE_BATCHES = tuple(b for b in BATCH_SIZES if b <= 1000)


def combos(batches, hits=HIT_RATIOS, threads=(1,)):
    """(n, hit, batch[, threads]) without meaningless combinations: a batch of
    one key is either a hit or a miss, and threads only matter for big batches."""
    out = []
    for n in SIZES:
        for batch in batches:
            for hit in hits:
                if batch == 1 and hit not in (0.0, 1.0):
                    continue
                for t in threads:
                    if t != 1 and batch < 100_000:
                        continue
                    tid = f"{size_id(n)}-hits={hit:g}-batch={batch}"
                    if t != 1:
                        tid += f"-threads={t}"
                    out.append(pytest.param(n, hit, batch, t, id=tid))
    return out


def group(kind: str, n: int, hit: float, batch: int) -> str:
    return f"{kind} {size_id(n)} hits={hit:g} batch={batch}"


def loop_in(container, queries) -> None:
    for k in queries:
        k in container  # noqa: B015


def searchsorted_contains(hi: np.ndarray, lo: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The numpy baseline: binary search on the big-endian first 8 bytes, then
    compare the last 8 (random digests have no repeated prefixes)."""
    be = q.view(">u8")
    qh = be[:, 0].astype(np.uint64)
    ql = be[:, 1].astype(np.uint64)
    pos = np.searchsorted(hi, qh)
    np.minimum(pos, len(hi) - 1, out=pos)
    return (hi[pos] == qh) & (lo[pos] == ql)


def _check(d: Dataset, hit: float, batch: int, got: np.ndarray) -> None:
    exp = np.array([k in d.key_set for k in d.query_list(batch, hit)], bool)
    assert np.array_equal(got, exp)


# --------------------------------------------------------------------------
# single `in`
# --------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "hit", "batch", "threads"), combos(SINGLE_BATCHES))
def test_in(benchmark, bench_data, n, hit, batch, threads):
    d = bench_data(n)
    lst = d.query_list(batch, hit)
    benchmark.group = group("in", n, hit, batch)
    benchmark.extra_info["keys_per_call"] = batch
    benchmark(loop_in, d.index, lst)


_PREFILTERED: dict[int, object] = {}


def prefiltered_index(d: Dataset, hashlookup_module):
    """d's keys as an index with a first-level filter (built once)."""
    if d.n not in _PREFILTERED:
        path = d.path.with_name(f"prefiltered-{d.n}.hlx")
        hashlookup_module.build_index(d.keys, str(path), prefilter_bits_per_key=4)
        _PREFILTERED[d.n] = hashlookup_module.open_index(str(path))
    return _PREFILTERED[d.n]


@pytest.mark.parametrize(("n", "hit", "batch", "threads"), combos(SINGLE_BATCHES))
def test_in_prefiltered(
    benchmark, bench_data, hashlookup_module, n, hit, batch, threads
):
    d = bench_data(n)
    lst = d.query_list(batch, hit)
    benchmark.group = group("in", n, hit, batch)
    benchmark.extra_info["keys_per_call"] = batch
    benchmark(loop_in, prefiltered_index(d, hashlookup_module), lst)


@pytest.mark.parametrize(("n", "hit", "batch", "threads"), combos((1000,)))
def test_in_set_baseline(benchmark, bench_data, n, hit, batch, threads):
    d = bench_data(n)
    lst = d.query_list(batch, hit)
    s = d.key_set
    benchmark.group = group("in", n, hit, batch)
    benchmark.extra_info["keys_per_call"] = batch
    benchmark(loop_in, s, lst)


# --------------------------------------------------------------------------
# batch
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "hit", "batch", "threads"), combos(BATCH_SIZES, threads=(1, 2))
)
def test_contains_many(benchmark, bench_data, n, hit, batch, threads):
    d = bench_data(n)
    q = d.queries(batch, hit)
    out = np.empty(batch, bool)
    benchmark.group = group("batch", n, hit, batch)
    benchmark.extra_info["keys_per_call"] = batch
    res = benchmark(d.index.contains_many, q, out=out, threads=threads)
    if batch <= 1000 or n <= 10**6:
        _check(d, hit, batch, res)


@pytest.mark.parametrize(("n", "hit", "batch", "threads"), combos(BATCH_SIZES))
def test_contains_many_prefiltered(
    benchmark, bench_data, hashlookup_module, n, hit, batch, threads
):
    d = bench_data(n)
    q = d.queries(batch, hit)
    out = np.empty(batch, bool)
    benchmark.group = group("batch", n, hit, batch)
    benchmark.extra_info["keys_per_call"] = batch
    res = benchmark(prefiltered_index(d, hashlookup_module).contains_many, q, out=out)
    if batch <= 1000 or n <= 10**6:
        _check(d, hit, batch, res)


@pytest.mark.parametrize(("n", "hit", "batch", "threads"), combos(BATCH_SIZES))
def test_find_many(benchmark, bench_data, n, hit, batch, threads):
    d = bench_data(n)
    q = d.queries(batch, hit)
    out = np.empty(batch, np.int64)
    benchmark.group = group("batch", n, hit, batch)
    benchmark.extra_info["keys_per_call"] = batch
    res = benchmark(d.index.find_many, q, out=out, threads=threads)
    hits = res >= 0
    assert np.array_equal(d.index.keys()[res[hits]], q[hits])


@pytest.mark.parametrize(
    ("n", "hit", "batch", "threads"), combos(tuple(b for b in BATCH_SIZES if b >= 1000))
)
def test_set_intersection_baseline(benchmark, bench_data, n, hit, batch, threads):
    d = bench_data(n)
    lst = d.query_list(batch, hit)
    s = d.key_set
    benchmark.group = group("batch", n, hit, batch)
    benchmark.extra_info["keys_per_call"] = batch
    benchmark(s.intersection, lst)


@pytest.mark.parametrize(
    ("n", "hit", "batch", "threads"), combos(tuple(b for b in BATCH_SIZES if b >= 1000))
)
def test_searchsorted_baseline(benchmark, bench_data, n, hit, batch, threads):
    d = bench_data(n)
    q = d.queries(batch, hit)
    hi, lo = d.sorted_prefixes
    benchmark.group = group("batch", n, hit, batch)
    benchmark.extra_info["keys_per_call"] = batch
    res = benchmark(searchsorted_contains, hi, lo, q)
    if n <= 10**6:
        _check(d, hit, batch, res)


# --------------------------------------------------------------------------
# open and build
# --------------------------------------------------------------------------


@pytest.mark.parametrize("n", SIZES, ids=size_id)
def test_open_index(benchmark, bench_data, hashlookup_module, n):
    d = bench_data(n)
    opened = []

    def open_():
        opened.append(hashlookup_module.open_index(str(d.path)))

    def close_():
        opened.pop().close()

    benchmark.group = "open_index"
    benchmark.pedantic(open_, teardown=close_, rounds=200, warmup_rounds=5)


BUILD_ROUNDS = {10**3: 20, 10**5: 5, 10**6: 3, 10**7: 1}


@pytest.mark.parametrize("n", SIZES, ids=size_id)
def test_build_index(benchmark, bench_data, hashlookup_module, n, tmp_path):
    d = bench_data(n)
    out = tmp_path / "built.hlx"
    benchmark.group = "build_index (hex text file)"
    benchmark.extra_info["keys_per_call"] = n
    rep = benchmark.pedantic(
        hashlookup_module.build_index,
        args=(str(d.txt), str(out)),
        rounds=BUILD_ROUNDS.get(n, 1),
        warmup_rounds=0,
    )
    assert rep.unique_keys == n
