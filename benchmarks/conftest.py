"""Shared data for the pytest-benchmark suites in this directory.

Run from the repository root with ``make bench``, or::

    cd benchmarks && ../.venv/bin/pytest -q -p no:cacheprovider --benchmark-disable-gc .

Set HASHLOOKUP_BENCH_BIG=1 to add N = 10**7 (about 2 GB of RAM and a few
extra minutes).  All keys and queries come from fixed seeds, so every run
benchmarks the same data.  Indexes are built lazily, once per session, in a
temporary directory.

With ``--benchmark-disable`` (``make test``) every benchmark runs once, on
tiny data (:data:`TINY`), so that none rots: the answers are still checked
against their baselines.  The ``bench_ratio_*.py`` files time each figure of
the README against its baseline in the same run (:func:`versus`) and store
the ratio in ``extra_info``; ``benchmarks/compare_ratios.py`` compares the
ratios of two saved runs (``make bench-compare``, docs/BENCHMARKS.md).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

WIDTH = 16  # md5
SEED = 0x484C  # "HL"

SIZES = [10**3, 10**5, 10**6]
if os.environ.get("HASHLOOKUP_BENCH_BIG", "") not in ("", "0"):
    SIZES.append(10**7)
HIT_RATIOS = (0.0, 0.5, 1.0)
BATCH_SIZES = (1, 1000, 1_000_000)


#: True with --benchmark-disable: each benchmark runs once, on tiny data.
TINY = False


def pytest_configure(config: pytest.Config) -> None:
    # Before the bench files are imported (collection): their parameters
    # read SIZES and BATCH_SIZES then.
    global TINY, BATCH_SIZES
    if config.getoption("benchmark_disable", False):
        TINY = True
        SIZES[:] = [10**3]
        BATCH_SIZES = (1, 1000)


def scaled(full: int, tiny: int) -> int:
    """``tiny`` in a run with --benchmark-disable, else ``full``."""
    return tiny if TINY else full


#: Rounds of each ratio figure (HASHLOOKUP_BENCH_ROUNDS overrides).
ROUNDS = int(os.environ.get("HASHLOOKUP_BENCH_ROUNDS", "7"))


def versus(
    benchmark: Any,
    ours: Callable[..., object],
    baseline: Callable[..., object],
    *,
    name: str,
    goal: str = "",
    make_input: Callable[[], object] | None = None,
    check: Callable[[object, object], None] | None = None,
    rounds: int = ROUNDS,
    gate: bool = True,
) -> object:
    """Time ``ours`` (pytest-benchmark's statistics) and ``baseline`` (in the
    set-up of each round, so the two alternate round by round and a burst of
    load on a shared machine hits both alike); store in ``extra_info`` the
    ratio of their best rounds (``ratio``, ours / baseline: below 1 is
    faster) and of their medians (``ratio_median``).

    Parameters
    ----------
    benchmark
        The pytest-benchmark fixture.
    ours, baseline
        The timed calls; with ``make_input``, each is called with a fresh
        input per round (e.g. new ``bytes`` objects, whose hash is not
        cached yet), made outside the timing.
    name
        What the baseline is (``extra_info["baseline"]``).
    goal
        The README's goal for the ratio (``extra_info["goal"]``), if any.
    check
        ``check(ours_result, baseline_result)`` asserts that the answers are
        identical (run once, on the last round's results).
    rounds
        Rounds of each (one warm-up round of each comes first).
    gate
        False for a figure that compare_ratios.py reports but never fails
        on (``extra_info["gate"]``).

    Returns
    -------
    object
        The last result of ``ours``.
    """
    base_times: list[float] = []
    base_result: list[object] = []

    def setup() -> tuple[tuple[object, ...], dict[str, object]]:
        args: tuple[object, ...] = () if make_input is None else (make_input(),)
        t0 = time.perf_counter()
        r = baseline(*args)
        base_times.append(time.perf_counter() - t0)
        base_result[:] = [r]
        return ((() if make_input is None else (make_input(),)), {})

    result = benchmark.pedantic(ours, setup=setup, rounds=rounds, warmup_rounds=1)
    if check is not None:
        check(result, base_result[0])
    info = benchmark.extra_info
    info["baseline"] = name
    info["gate"] = gate
    if goal:
        info["goal"] = goal
    if not getattr(benchmark, "disabled", False) and benchmark.stats is not None:
        # The best rounds: the ones least disturbed by other tenants (as
        # compare.py); the medians' ratio is kept beside it.
        ours_stats = benchmark.stats.stats
        timed = base_times[1:] or base_times  # without the warm-up round
        base_min, base_median = min(timed), statistics.median(timed)
        info["baseline_min_s"] = base_min
        info["baseline_median_s"] = base_median
        info["ratio"] = ours_stats.min / base_min if base_min > 0 else None
        info["ratio_median"] = (
            ours_stats.median / base_median if base_median > 0 else None
        )
    return result


def size_id(n: int) -> str:
    return f"N=1e{len(str(n)) - 1}"


# bench_*.py files are not matched by the project's default python_files
# (test_*.py); collect them here without touching the project's pytest config.
def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if (
        file_path.suffix == ".py"
        and file_path.name.startswith("bench_")
        and not parent.session.isinitpath(file_path)
    ):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


# pytest-benchmark 5.2.3 (pinned in the Makefile) reads `node._nodeid`, which
# pytest 9.2 removed (nodeid is now a property over `node._id`); without this
# every benchmark errors with "'Function' object has no attribute '_nodeid'".
def pytest_itemcollected(item: pytest.Item) -> None:
    if not hasattr(item, "_nodeid"):
        item._nodeid = item.nodeid


class Dataset:
    """N random md5 keys, their hex text file, a built and opened index."""

    def __init__(self, n: int, root: Path) -> None:
        import hashlookup

        self.n = n
        rng = np.random.default_rng([SEED, n])
        # 128-bit random keys: no duplicates in practice (checked below), and
        # a random non-member is a miss with probability 1 - N/2**128.
        self.keys = rng.integers(0, 256, size=(n, WIDTH), dtype=np.uint8)
        self.root = root
        self.txt = root / f"keys-{n}.txt"
        hx = np.frombuffer(self.keys.tobytes().hex().encode("ascii"), np.uint8)
        lines = np.empty((len(self.keys), 2 * WIDTH + 1), np.uint8)
        lines[:, : 2 * WIDTH] = hx.reshape(-1, 2 * WIDTH)
        lines[:, 2 * WIDTH] = ord("\n")
        self.txt.write_bytes(lines.tobytes())
        del hx, lines
        self.path = root / f"keys-{n}.hlx"
        hashlookup.build_index(str(self.txt), str(self.path))
        self.index = hashlookup.open_index(str(self.path))
        if len(self.index) != n:
            raise RuntimeError(f"random keys collided ({len(self.index)} != {n})")
        self._set: frozenset[bytes] | None = None
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None
        self._queries: dict[tuple[int, float], np.ndarray] = {}
        self._lists: dict[tuple[int, float], list[bytes]] = {}

    # -- baselines, built on first use -------------------------------------
    @property
    def key_set(self) -> frozenset[bytes]:
        if self._set is None:
            b = self.keys.tobytes()
            self._set = frozenset(b[i : i + WIDTH] for i in range(0, len(b), WIDTH))
        return self._set

    @property
    def sorted_prefixes(self) -> tuple[np.ndarray, np.ndarray]:
        """(hi, lo) big-endian uint64 halves of the keys, sorted."""
        if self._sorted is None:
            be = self.keys.view(">u8")
            hi = be[:, 0].astype(np.uint64)
            lo = be[:, 1].astype(np.uint64)
            order = np.lexsort((lo, hi))
            self._sorted = (hi[order], lo[order])
        return self._sorted

    # -- queries -------------------------------------------------------------
    def queries(self, batch: int, hit_ratio: float) -> np.ndarray:
        """(batch, 16) uint8: round(batch*hit_ratio) members (sampled with
        replacement when the batch is larger than N) and random non-members,
        shuffled.  Fixed seed per (N, batch, hit_ratio)."""
        key = (batch, hit_ratio)
        if key not in self._queries:
            rng = np.random.default_rng([SEED, self.n, batch, int(hit_ratio * 1000)])
            nhit = round(batch * hit_ratio)
            rows = rng.choice(len(self.keys), size=nhit, replace=nhit > len(self.keys))
            miss = rng.integers(0, 256, size=(batch - nhit, WIDTH), dtype=np.uint8)
            q = np.concatenate([self.keys[rows], miss])
            self._queries[key] = np.ascontiguousarray(q[rng.permutation(batch)])
        return self._queries[key]

    def query_list(self, batch: int, hit_ratio: float) -> list[bytes]:
        key = (batch, hit_ratio)
        if key not in self._lists:
            b = self.queries(batch, hit_ratio).tobytes()
            self._lists[key] = [b[i : i + WIDTH] for i in range(0, len(b), WIDTH)]
        return self._lists[key]

    def close(self) -> None:
        self.index.close()


class BenchData:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._sets: dict[int, Dataset] = {}

    def __call__(self, n: int) -> Dataset:
        if n not in self._sets:
            self._sets[n] = Dataset(n, self.root)
        return self._sets[n]

    def close(self) -> None:
        for d in self._sets.values():
            d.close()


@pytest.fixture(scope="session")
def bench_data(tmp_path_factory: pytest.TempPathFactory):
    """Callable N -> Dataset; each N is generated, built and opened once."""
    data = BenchData(tmp_path_factory.mktemp("hashlookup-bench"))
    yield data
    data.close()


@pytest.fixture(scope="session")
def hashlookup_module():
    import hashlookup

    return hashlookup
