"""Concurrency: many threads looking up in one index (and one dataset) while
other threads open and close handles and a writer keeps replacing the file.

Every answer is checked against a Python set oracle of the generation that
gave it (generation numbers are stored in the files' metadata).  At the end
no file descriptor and no mapping of the files may be left.
"""

from __future__ import annotations

import gc
import os
import random
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import hashlookup

LOOKUP_THREADS = 8
OPENER_THREADS = 2
RUN_SECONDS = 4.0
CORE = 4000  # digests in every generation
PER_GEN = 6000  # digests of one generation only


def _digests(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 16), dtype=np.uint8)


def _open_files_under(directory: Path) -> tuple[list[str], list[str]]:
    """fds and mappings of this process that refer to files under directory
    (replaced files show as "... (deleted)")."""
    prefix = str(directory)
    fds = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(prefix):
            fds.append(target)
    with open("/proc/self/maps") as f:
        maps = [line.split(None, 5)[-1].strip() for line in f if prefix in line]
    return fds, maps


class Generations:
    """The writer's record of what each generation holds: the oracle."""

    def __init__(self) -> None:
        self.core = _digests(1, CORE)
        self.sets: dict[int, frozenset[bytes]] = {}
        self.own: dict[int, np.ndarray] = {}
        self.lock = threading.Lock()

    def keys(self, g: int) -> np.ndarray:
        return np.concatenate([self.core, _digests(1000 + g, PER_GEN)])

    def add(self, g: int) -> np.ndarray:
        keys = self.keys(g)
        with self.lock:
            self.sets[g] = frozenset(bytes(k) for k in keys)
            self.own[g] = keys[CORE:]
        return keys

    def oracle(self, g: int) -> frozenset[bytes]:
        with self.lock:
            return self.sets[g]

    def queries(self, rng: random.Random, n: int) -> np.ndarray:
        """Digests of the core, of random recent generations, and misses."""
        with self.lock:
            own = list(self.own.values())[-8:]
        parts = [self.core[rng.randrange(CORE)] for _ in range(n // 4)]
        for _ in range(n // 2):
            parts.append(rng.choice(own)[rng.randrange(PER_GEN)])
        miss = np.frombuffer(rng.randbytes(16 * (n - len(parts))), dtype=np.uint8)
        return np.concatenate([np.array(parts).reshape(-1, 16), miss.reshape(-1, 16)])


class Failures:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()

    def fail(self, msg: str) -> None:
        with self.lock:
            self.errors.append(msg)

    def count(self, what: str, n: int = 1) -> None:
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + n


def _guard(fails: Failures, fn, *args):
    def run():
        try:
            fn(*args)
        except BaseException as e:
            fails.fail(f"{fn.__name__}: {type(e).__name__}: {e}")

    return threading.Thread(target=run)


def _run_for(
    seconds: float, stop: threading.Event, fails: Failures, lookups, openers, writer
) -> None:
    """LOOKUP_THREADS lookups, OPENER_THREADS openers and one writer, for
    `seconds`, then stop them all."""
    threads = [_guard(fails, lookups, i) for i in range(LOOKUP_THREADS)]
    threads += [_guard(fails, openers, 100 + i) for i in range(OPENER_THREADS)]
    threads.append(_guard(fails, writer))
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(60)


def _check_index(
    index, gen: int, gens: Generations, rng: random.Random, fails: Failures, batch: bool
) -> None:
    truth = gens.oracle(gen)
    q = gens.queries(rng, 64 if batch else 8)
    expect = np.array([bytes(k) in truth for k in q])
    if batch:
        threads = rng.choice([1, 1, 2])
        got = index.contains_many(q, threads=threads)
        rows = index.find_many(q, threads=threads)
        if not np.array_equal(got, expect) or not np.array_equal(rows >= 0, expect):
            fails.fail(f"batch answer differs from generation {gen}'s oracle")
        keys = index.keys()
        hit = np.flatnonzero(rows >= 0)
        if not np.array_equal(keys[rows[hit]], q[hit]):
            fails.fail("find_many row does not hold the key")
        fails.count("batch lookups", 2 * len(q))
    else:
        for k, e in zip(q, expect):
            b = bytes(k)
            if (b in index) != e or (index.find(b.hex()) >= 0) != e:
                fails.fail(f"single lookup differs from generation {gen}'s oracle")
        fails.count("single lookups", 2 * len(q))


def test_index_lookups_while_replaced_opened_and_closed(tmp_path):
    path = tmp_path / "known.hlx"
    gens = Generations()
    hashlookup.build_index(gens.add(0), path, metadata={"generation": 0})
    before = _open_files_under(tmp_path)
    fails = Failures()
    stop = threading.Event()
    shared = hashlookup.open_index(path)  # generation 0 for its whole life

    def lookups(seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            _check_index(shared, 0, gens, rng, fails, batch=rng.random() < 0.5)

    def openers(seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            with hashlookup.open_index(path) as h:
                gen = h.info()["metadata"]["user"]["generation"]
                _check_index(h, gen, gens, rng, fails, batch=rng.random() < 0.5)
            fails.count("opens")

    def writer() -> None:
        g = 0
        while not stop.is_set():
            g += 1
            hashlookup.build_index(gens.add(g), path, metadata={"generation": g})
            fails.count("replacements")
            time.sleep(0.01)

    _run_for(RUN_SECONDS, stop, fails, lookups, openers, writer)
    shared.close()
    gc.collect()
    print(f"\nindex: {fails.counts}")
    assert not fails.errors, fails.errors[:5]
    assert fails.counts["replacements"] >= 5 and fails.counts["opens"] >= 20
    assert _open_files_under(tmp_path) == before == ([], [])


def _build_generation(path: Path, gens: Generations, g: int) -> None:
    src = path.parent / f"gen{g}.txt"
    src.write_text("".join(bytes(k).hex() + "\n" for k in gens.keys(g)))
    gens.add(g)
    hashlookup.build_dataset({"police": str(src)}, path, generation=g)
    src.unlink()


def test_dataset_lookups_while_reloaded_opened_and_closed(tmp_path):
    path = tmp_path / "known.hlds"
    gens = Generations()
    _build_generation(path, gens, 1)
    before = _open_files_under(tmp_path)
    fails = Failures()
    stop = threading.Event()
    shared = hashlookup.open_dataset(path, auto_reload=True, reload_interval=0.005)
    seen_generations: set[int] = set()

    def check_match(m, q: bytes, fails: Failures) -> None:
        if (
            m.md5 != q.hex()
            or q not in gens.oracle(m.generation)
            or m.labels != ("source:police",)
        ):
            fails.fail(f"wrong match for a digest of generation {m.generation}")

    def lookups(seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            q = gens.queries(rng, 32)
            if rng.random() < 0.5:
                # A table is one generation: exact oracle, hits and misses.
                t = shared.table("md5")
                gen = t.info()["metadata"]["dataset"]["generation"]
                seen_generations.add(gen)
                truth = gens.oracle(gen)
                expect = np.array([bytes(k) in truth for k in q])
                rows = t.find_many(q)
                ids = shared.record_ids(t, rows)
                if not np.array_equal(rows >= 0, expect) or not np.array_equal(
                    ids >= 0, expect
                ):
                    fails.fail(f"table batch differs from generation {gen}")
                fails.count("batch lookups", len(q))
            else:
                # Single lookups: a hit names its generation; core digests
                # always hit, random ones never.
                for i, k in enumerate(q):
                    b = bytes(k)
                    m = shared.lookup(b if i % 2 else b.hex())
                    if m is not None:
                        check_match(m, b, fails)
                    elif i < len(q) // 4:
                        fails.fail("a digest of every generation was missed")
                for i, m in enumerate(shared.lookup_many(q)):
                    if m is not None:
                        check_match(m, bytes(q[i]), fails)
                    elif i < len(q) // 4:
                        fails.fail("lookup_many missed a digest of every generation")
                fails.count("single lookups", 2 * len(q))

    def openers(seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            with hashlookup.open_dataset(path) as ds:
                truth = gens.oracle(ds.generation)
                for k in gens.queries(rng, 16):
                    m = ds.lookup(bytes(k))
                    if (m is not None) != (bytes(k) in truth):
                        fails.fail(
                            f"fresh handle differs from generation {ds.generation}"
                        )
            fails.count("opens")

    def writer() -> None:
        g = 1
        while not stop.is_set():
            g += 1
            _build_generation(path, gens, g)
            fails.count("replacements")
            time.sleep(0.02)

    _run_for(RUN_SECONDS, stop, fails, lookups, openers, writer)
    shared.close()
    gc.collect()
    print(
        f"\ndataset: {fails.counts}, generations answered by the shared "
        f"handle: {len(seen_generations)}"
    )
    assert not fails.errors, fails.errors[:5]
    assert fails.counts["replacements"] >= 2 and len(seen_generations) >= 2
    assert _open_files_under(tmp_path) == before == ([], [])


# ---------------------------------------------------------------------------
# closing while another thread is inside a batch call


@pytest.fixture(scope="module")
def big_index(tmp_path_factory):
    path = tmp_path_factory.mktemp("big") / "big.hlx"
    keys = _digests(77, 1_000_000)
    hashlookup.build_index(keys, path)
    queries = np.concatenate([keys[:1_000_000:2], _digests(78, 1_500_000)])
    expect = np.zeros(len(queries), dtype=bool)
    expect[:500_000] = True
    return path, queries, expect


def _inside_batch(index, queries, result: dict) -> threading.Thread:
    """Start a batch call of ~0.1 s in a thread; return once it is about to
    enter the call."""
    calling = threading.Event()

    def run():
        calling.set()
        try:
            result["mask"] = index.contains_many(queries)
        except ValueError as e:  # closed before the call got in: allowed
            result["error"] = e

    t = threading.Thread(target=run)
    t.start()
    calling.wait()
    return t


def test_close_index_during_batch_does_not_crash(big_index):
    path, queries, expect = big_index
    raised = attempt = 0
    while attempt < 6 or (raised < 2 and attempt < 30):
        attempt += 1
        index = hashlookup.open_index(path)
        result: dict = {}
        t = _inside_batch(index, queries, result)
        time.sleep(0.002 * (attempt % 6))
        try:
            index.close()
        except BufferError as e:
            # Refused while the batch runs: the index stays usable.
            assert "batch lookup" in str(e)
            raised += 1
            assert not index.closed
        t.join()
        if "mask" in result:
            assert np.array_equal(result["mask"], expect)
        else:
            assert "closed" in str(result["error"])
        index.close()
        assert index.closed
    assert raised >= 2  # the busy path was exercised


def test_close_dataset_during_batch_does_not_crash(big_index):
    path, queries, expect = big_index
    for attempt in range(4):
        ds = hashlookup.open_dataset(path)
        table = ds.table("md5")
        result: dict = {}
        t = _inside_batch(table, queries, result)
        time.sleep(0.002 * attempt)
        ds.close()  # never raises: the table goes when the batch ends
        with pytest.raises(ValueError, match="closed"):
            ds.lookup(bytes(16))
        t.join()
        if "mask" in result:
            assert np.array_equal(result["mask"], expect)
        del table, t
    gc.collect()
    assert _open_files_under(path.parent) == ([], [])


def test_close_dataset_during_single_lookups(tmp_path):
    """Threads looking up while the dataset is closed: each call answers
    right or raises ValueError("... closed ..."), nothing else."""
    path = tmp_path / "d.hlds"
    keys = _digests(90, 20_000)
    src = tmp_path / "l.txt"
    src.write_text("".join(bytes(k).hex() + "\n" for k in keys))
    hashlookup.build_dataset({"police": str(src)}, path)
    fails = Failures()
    # Switch threads as often as possible, so that close() lands between
    # the steps of a lookup (C search, rowmap, record) as well.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        _close_during_lookups(path, keys, fails)
    finally:
        sys.setswitchinterval(interval)
    gc.collect()
    assert not fails.errors, fails.errors[:5]
    assert fails.counts["lookups"] > 100
    assert _open_files_under(tmp_path) == ([], [])


def _close_during_lookups(path: Path, keys: np.ndarray, fails: Failures) -> None:
    for _ in range(20):
        ds = hashlookup.open_dataset(path)
        go = threading.Barrier(5)

        def hammer(
            seed: int, ds: hashlookup.Dataset = ds, go: threading.Barrier = go
        ) -> None:
            rng = random.Random(seed)
            go.wait()
            while True:
                k = bytes(keys[rng.randrange(len(keys))])
                try:
                    m = ds.lookup(k)
                    ids = ds.record_ids(ds.table("md5"), np.array([0]))
                except ValueError as e:
                    assert "closed" in str(e), e
                    return
                if m is None or m.md5 != k.hex() or ids[0] < 0:
                    fails.fail("wrong answer while closing")
                fails.count("lookups")

        threads = [_guard(fails, hammer, i) for i in range(4)]
        for t in threads:
            t.start()
        go.wait()
        time.sleep(0.005)
        ds.close()
        for t in threads:
            t.join(30)
