"""Library figures as ratios against their baselines in the same run:
single lookups, batches, open and build (README, "Performance").

Each test times hashlookup with pytest-benchmark and its baseline in the
set-up of each round (conftest.versus), checks that both answer the same,
and stores ``ratio`` (our median / the baseline's) in ``extra_info``.
N is the largest of conftest.SIZES (10**6; 10**3 with --benchmark-disable).
"""

from __future__ import annotations

import pickle
from collections.abc import Container

import numpy as np
import pytest

from conftest import SIZES, WIDTH, Dataset, scaled, versus

#: Query batches: fresh bytes objects for single lookups, arrays for batches.
SINGLE = scaled(100_000, 1000)
BATCH = scaled(1_000_000, 1000)


@pytest.fixture(scope="module")
def data(bench_data) -> Dataset:
    return bench_data(max(SIZES))


def fresh(q: np.ndarray) -> list[bytes]:
    """New bytes objects for every key (a set has not cached their hash)."""
    b = q.tobytes()
    return [b[i : i + WIDTH] for i in range(0, len(b), WIDTH)]


def count_in(container: Container[bytes], keys: list[bytes]) -> int:
    found = 0
    for k in keys:
        if k in container:
            found += 1
    return found


def equal(ours: object, base: object) -> None:
    assert ours == base


@pytest.mark.parametrize(
    ("hit", "goal"), [(0.01, "<= 0.2"), (1.0, "<= 0.9")], ids=["hits=1%", "hits=100%"]
)
def test_in_vs_frozenset(benchmark, data: Dataset, hit: float, goal: str) -> None:
    benchmark.group = f"ratio: key in index, {hit:.0%} hits, vs frozenset"
    q = data.queries(SINGLE, hit)
    idx, keys = data.index, data.key_set
    versus(
        benchmark,
        lambda qs: count_in(idx, qs),
        lambda qs: count_in(keys, qs),
        name="frozenset of bytes, fresh query objects",
        goal=goal,
        make_input=lambda: fresh(q),
        check=equal,
    )


def test_in_floor_vs_frozenset(benchmark, data: Dataset) -> None:
    """The floor under the 0.2x goal: ``k in ()`` runs the interpreter's
    ``in`` down to a C ``sq_contains`` that returns at once (no hash, no
    element), so no container can take less than this ratio (README)."""
    benchmark.group = "ratio: key in () (the interpreter's floor), vs frozenset"
    q = data.queries(SINGLE, 0.01)
    keys = data.key_set
    versus(
        benchmark,
        lambda qs: count_in((), qs),
        lambda qs: count_in(keys, qs),
        name="frozenset of bytes, fresh query objects",
        make_input=lambda: fresh(q),
        gate=False,
    )


def test_contains_many_vs_set_intersection(benchmark, data: Dataset) -> None:
    benchmark.group = "ratio: contains_many, 1% hits, vs set.intersection"
    q = data.queries(BATCH, 0.01)
    idx, keys = data.index, data.key_set

    def check(ours: object, base: object) -> None:
        assert isinstance(ours, np.ndarray) and isinstance(base, frozenset)
        assert set(fresh(q[ours.astype(bool)])) == base

    versus(
        benchmark,
        lambda inp: idx.contains_many(inp[0]),
        lambda inp: keys.intersection(inp[1]),
        name="frozenset.intersection of a list of bytes",
        goal="<= 0.125 (>= 8x)",
        make_input=lambda: (q, fresh(q)),
        check=check,
    )


def searchsorted_contains(hi: np.ndarray, lo: np.ndarray, q: np.ndarray) -> np.ndarray:
    """numpy: binary search on the big-endian first 8 bytes, then compare
    the last 8 (random keys: no repeated prefixes)."""
    be = q.view(">u8")
    qh = be[:, 0].astype(np.uint64)
    ql = be[:, 1].astype(np.uint64)
    pos = np.searchsorted(hi, qh)
    np.minimum(pos, len(hi) - 1, out=pos)
    return (hi[pos] == qh) & (lo[pos] == ql)


def test_contains_many_vs_numpy_searchsorted(benchmark, data: Dataset) -> None:
    benchmark.group = "ratio: contains_many, 1% hits, vs numpy searchsorted"
    q = data.queries(BATCH, 0.01)
    hi, lo = data.sorted_prefixes
    versus(
        benchmark,
        lambda: data.index.contains_many(q),
        lambda: searchsorted_contains(hi, lo, q),
        name="numpy.searchsorted over sorted uint64 halves",
        goal="<= 0.05 (>= 20x)",
        check=lambda a, b: np.testing.assert_array_equal(a, b),
    )


def test_contains_many_two_threads_vs_one(benchmark, data: Dataset) -> None:
    benchmark.group = "ratio: contains_many, all hits, threads=2 vs 1"
    q = data.queries(BATCH, 1.0)
    idx = data.index
    versus(
        benchmark,
        lambda: idx.contains_many(q, threads=2),
        lambda: idx.contains_many(q, threads=1),
        name="the same call on one thread",
        check=lambda a, b: np.testing.assert_array_equal(a, b),
        gate=False,  # needs the second core free: information only
    )


def test_open_index_vs_unpickling_a_frozenset(benchmark, data: Dataset) -> None:
    benchmark.group = "ratio: open_index vs pickle.loads of the frozenset"
    import hashlookup

    blob = pickle.dumps(data.key_set, protocol=pickle.HIGHEST_PROTOCOL)

    def ours() -> int:
        with hashlookup.open_index(str(data.path)) as idx:
            return len(idx)

    versus(
        benchmark,
        ours,
        lambda: len(pickle.loads(blob)),
        name="pickle.loads of the frozenset",
        goal="< 1 ms absolute",
        check=equal,
    )


def test_build_index_vs_frozenset_from_text(benchmark, data: Dataset) -> None:
    benchmark.group = "ratio: build_index from hex text vs frozenset from text"
    import hashlookup

    out = data.root / "rebuilt.hlx"

    def ours() -> int:
        hashlookup.build_index(str(data.txt), str(out))
        with hashlookup.open_index(str(out)) as idx:
            return len(idx)

    def baseline() -> int:
        with open(data.txt, "rb") as f:
            return len(frozenset(bytes.fromhex(line.decode()) for line in f))

    versus(
        benchmark,
        ours,
        baseline,
        name="frozenset of bytes.fromhex of each line",
        rounds=scaled(3, 1),
        check=equal,
    )
