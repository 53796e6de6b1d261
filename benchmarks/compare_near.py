#!/usr/bin/env python3
"""PDQ near search, side by side: hashlookup's Dataset.near / near_many
against faiss IndexBinaryMultiHash configured as Meta's HMA configures it
(256 bits, 16 chunks of 16 bits, nflip = 31 // 16) and IndexBinaryFlat, on
the same queries, with identical results required.

Run from the repository root (``make bench`` does; faiss-cpu is a
bench-only dependency)::

    .venv/bin/python benchmarks/compare_near.py [--rows 1400000] [--quick]

Data (fixed seed): N random PDQ hashes, one record each (with a random
md5); queries are dataset hashes with exactly d bits flipped, d = 0..40 in
turn, so every query has a planted neighbour at every distance of the
range.  Figures: near() median and p99 at radius 31 (one query per call,
records and labels included), near_many on 2 threads (queries/s), the
size of the PDQ sections, the PDQ part of the build and the whole dataset
build, open time; faiss's build time, memory, per-query median (one
thread) and batch throughput (2 threads).  Every engine's answers must be
identical for every query, or the script exits 1.

Output: a Markdown table on stdout and in benchmarks/near_results.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import hashlookup
from hashlookup.builders import pdq as pdq_builder
from hashlookup.importers import RecordBatch
from hashlookup.store import format as _format

HERE = Path(__file__).resolve().parent
SEED = 0x504451  # "PDQ"
RADIUS = 31


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def planted_queries(hashes: np.ndarray, per_distance: int, seed: int) -> np.ndarray:
    """Dataset rows with exactly d bits flipped, d = 0..40 in turn."""
    rng = np.random.default_rng(seed)
    n = 41 * per_distance
    rows = rng.integers(0, len(hashes), n)
    q = hashes[rows].copy()
    bits = np.unpackbits(q, axis=1)
    for i in range(n):
        d = i % 41
        flip = rng.choice(256, d, replace=False)
        bits[i, flip] ^= 1
    return np.packbits(bits, axis=1)


def build(path: Path, hashes: np.ndarray, seed: int) -> tuple[float, float]:
    """The dataset (one record per hash); (whole build s, PDQ sections s)."""
    rng = np.random.default_rng(seed)
    n = len(hashes)
    b = RecordBatch.empty(n)
    b.md5 = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    b.has_md5[:] = True
    b.pdq = hashes
    b.has_pdq = np.ones(n, bool)
    b.pdq_quality = np.full(n, 100, np.uint8)
    t0 = time.perf_counter()
    # Records handed over as already-numbered rows (the path update_dataset
    # uses), so the figure is the build, not the parsing of a CSV.
    hashlookup.build_dataset(None, path, _records=[(b, np.arange(n))])
    whole = time.perf_counter() - t0
    cols = pdq_builder.PdqColumns()
    cols.add(b, 0)
    t0 = time.perf_counter()
    pdq_builder.pdq_sections(cols, np.arange(n, dtype=np.int64))
    return whole, time.perf_counter() - t0


def per_query(fn, queries: np.ndarray) -> list[float]:
    out = []
    for q in queries:
        t0 = time.perf_counter_ns()
        fn(q)
        out.append((time.perf_counter_ns() - t0) / 1e3)
    return out


def pairs_of(query: np.ndarray, ids: np.ndarray, dist: np.ndarray) -> list:
    return sorted(zip(query.tolist(), ids.tolist(), dist.tolist()))


def faiss_pairs(lims: np.ndarray, dist: np.ndarray, ids: np.ndarray) -> list:
    q = np.repeat(np.arange(len(lims) - 1), np.diff(lims.astype(np.int64)))
    return sorted(zip(q.tolist(), ids.tolist(), dist.tolist()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_400_000)
    ap.add_argument("--quick", action="store_true", help="fewer queries")
    ap.add_argument("--no-faiss", action="store_true")
    ap.add_argument("--out", default=str(HERE / "near_results.md"))
    args = ap.parse_args()
    per = 10 if args.quick else 30
    rng = np.random.default_rng(SEED)
    hashes = rng.integers(0, 256, (args.rows, 32), dtype=np.uint8)
    queries = planted_queries(hashes, per, SEED + 1)
    batch = planted_queries(hashes, 250 if args.quick else 1000, SEED + 2)
    rows: list[tuple[str, str, str, str]] = []
    failed = False
    # The goals: for 1.4 M hashes; for 10 M (a run documented in NEAR.md),
    # 0.5 ms per query and 1 GB of file, the rest for information.
    small = args.rows <= 2_000_000
    goal_ms, goal_mb = (0.1, 150) if small else (0.5, 1000)

    with tempfile.TemporaryDirectory(dir=HERE.parent / "build") as tmp:
        path = Path(tmp) / "pdq.hlds"
        whole, pdq_s = build(path, hashes, SEED + 3)
        opens = []
        for _ in range(50):
            t0 = time.perf_counter_ns()
            ds = hashlookup.open_dataset(path)
            opens.append((time.perf_counter_ns() - t0) / 1e6)
            ds.close()
        ds = hashlookup.open_dataset(path)
        header = ds.current().header
        size = sum(s.length for s in header.sections if s.kind in _format.PDQ_KINDS)
        idx = ds.current().pdq
        assert idx is not None

        ds.near(queries[0].tobytes(), RADIUS, min_quality=0)  # warm the pages
        ds.near_many(batch, RADIUS, min_quality=0, threads=2)
        near_t = per_query(
            lambda q: ds.near(q.tobytes(), RADIUS, min_quality=0), queries
        )
        raw_t = per_query(lambda q: idx.search(q[None], RADIUS, 0), queries)
        best = cpu = float("inf")
        for _ in range(5):
            t0, c0 = time.perf_counter(), time.process_time()
            ours = ds.near_many(batch, RADIUS, min_quality=0, threads=2)
            best = min(best, time.perf_counter() - t0)
            cpu = min(cpu, time.process_time() - c0)
        qps = len(batch) / best
        # On a loaded machine the wall clock shows the share of the two cores
        # this process got; CPU seconds show what two idle cores would do.
        qps_cpu = 2 * len(batch) / cpu
        t0 = time.perf_counter()
        one = ds.near_many(batch, RADIUS, min_quality=0, threads=1)
        qps1 = len(batch) / (time.perf_counter() - t0)
        assert all(np.array_equal(a, b) for a, b in zip(ours, one))
        our_pairs = pairs_of(ours.query, ours.record_id, ours.distance)
        planted_found = len(np.unique(ours.query[ours.distance <= RADIUS]))
        med = statistics.median(near_t)
        p99 = float(np.percentile(near_t, 99))
        rows += [
            ("N PDQ hashes (records)", f"{args.rows:,}", "", ""),
            (
                "near() at radius 31, median (ms)",
                f"{med / 1e3:.4f}",
                f"<= {goal_ms}",
                _ok(med <= goal_ms * 1000),
            ),
            ("near() at radius 31, p99 (ms)", f"{p99 / 1e3:.4f}", "info", ""),
            (
                "search only (rows), median (ms)",
                f"{statistics.median(raw_t) / 1e3:.4f}",
                "info",
                "",
            ),
            (
                "near_many, 2 threads (queries/s)",
                f"{qps:,.0f}",
                ">= 20,000" if small else "info",
                _ok(qps >= 20000) if small else "",
            ),
            ("near_many, 1 thread (queries/s)", f"{qps1:,.0f}", "info", ""),
            (
                "near_many, 2 threads, per 2 CPU-seconds (queries/s)",
                f"{qps_cpu:,.0f}",
                "info",
                "",
            ),
            (
                "PDQ sections (MB)",
                f"{size / 1e6:.1f}",
                f"<= {goal_mb:,}",
                _ok(size <= goal_mb * 1e6),
            ),
            (
                "PDQ sections build (s)",
                f"{pdq_s:.2f}",
                "<= 2" if small else "info",
                _ok(pdq_s <= 2) if small else "",
            ),
            ("whole dataset build, md5 + PDQ (s)", f"{whole:.2f}", "info", ""),
            (
                "open_dataset, median (ms)",
                f"{statistics.median(opens):.3f}",
                "< 1",
                _ok(statistics.median(opens) < 1),
            ),
            (
                "batch queries with a hit within 31",
                f"{planted_found:,} of {len(batch):,}",
                "info",
                "",
            ),
        ]

        if not args.no_faiss:
            import faiss

            faiss.omp_set_num_threads(1)
            r0 = rss_mib()
            t0 = time.perf_counter()
            mh = faiss.IndexBinaryMultiHash(256, 16, 16)
            mh.nflip = RADIUS // 16
            mh.add(hashes)
            mh_build = time.perf_counter() - t0
            mh_mem = rss_mib() - r0
            r0 = rss_mib()
            t0 = time.perf_counter()
            flat = faiss.IndexBinaryFlat(256)
            flat.add(hashes)
            flat_build = time.perf_counter() - t0
            flat_mem = rss_mib() - r0
            # faiss's binary range search keeps distances < radius.
            mh_t = per_query(lambda q: mh.range_search(q[None], RADIUS + 1), queries)
            fl_t = per_query(
                lambda q: flat.range_search(q[None], RADIUS + 1), queries[:200]
            )
            faiss.omp_set_num_threads(2)
            t0 = time.perf_counter()
            res = mh.range_search(batch, RADIUS + 1)
            mh_qps = len(batch) / (time.perf_counter() - t0)
            same_mh = faiss_pairs(*res) == our_pairs
            sub = batch[:2000]
            t0 = time.perf_counter()
            res_f = flat.range_search(sub, RADIUS + 1)
            fl_qps = len(sub) / (time.perf_counter() - t0)
            mine = ds.near_many(sub, RADIUS, min_quality=0)
            same_fl = faiss_pairs(*res_f) == pairs_of(
                mine.query, mine.record_id, mine.distance
            )
            mh_med = statistics.median(mh_t)
            fl_med = statistics.median(fl_t)
            failed |= not (same_mh and same_fl)
            rows += [
                (
                    "faiss MultiHash(256,16,16) nflip=1: build (s)",
                    f"{mh_build:.2f}",
                    "info",
                    "",
                ),
                (
                    "faiss MultiHash: memory (MiB, RSS increase)",
                    f"{mh_mem:.0f}",
                    "info",
                    "",
                ),
                (
                    "faiss MultiHash: range_search median, 1 thread (ms)",
                    f"{mh_med / 1e3:.3f}",
                    "info",
                    "",
                ),
                (
                    "near() speed-up over faiss MultiHash",
                    f"{mh_med / med:.1f}x",
                    ">= 20x",
                    _ok(mh_med / med >= 20),
                ),
                (
                    "faiss MultiHash: batch, 2 threads (queries/s)",
                    f"{mh_qps:,.0f}",
                    "info",
                    "",
                ),
                (
                    "faiss Flat: build (s) / memory (MiB)",
                    f"{flat_build:.2f} / {flat_mem:.0f}",
                    "info",
                    "",
                ),
                (
                    "faiss Flat: range_search median, 1 thread (ms)",
                    f"{fl_med / 1e3:.3f}",
                    "slower than near()",
                    _ok(fl_med > med),
                ),
                (
                    "faiss Flat: batch, 2 threads (queries/s)",
                    f"{fl_qps:,.0f}",
                    "info",
                    "",
                ),
                (
                    "results identical (MultiHash: all batch queries; Flat: 2,000)",
                    "yes" if same_mh and same_fl else "NO",
                    "yes",
                    _ok(same_mh and same_fl),
                ),
            ]
        ds.close()

    load = os.getloadavg()
    text = [
        "# PDQ near search: hashlookup vs faiss",
        "",
        f"`benchmarks/compare_near.py --rows {args.rows}`: random PDQ hashes, "
        f"queries with a planted neighbour at each distance 0..40 "
        f"({len(queries):,} timed one by one, {len(batch):,} in batches), seed {SEED}. "
        f"Python {sys.version.split()[0]}, numpy {np.__version__}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average "
        f"{load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} at the end (a shared 2-core VM: "
        "figures vary by a few tens of percent between runs).",
        "",
        "| figure | value | goal | result |",
        "|---|---:|---:|:---:|",
        *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows],
        "",
    ]
    out = "\n".join(text)
    print(out)
    Path(args.out).write_text(out)
    return 1 if failed else 0


def _ok(flag: bool) -> str:
    return "PASS" if flag else "FAIL"


if __name__ == "__main__":
    sys.exit(main())
