#!/usr/bin/env python3
"""Batch matching, side by side: `hashlookup match` against awk and a Python
set script, and hashlookup.dask on a LocalCluster with 1 and 2 workers.

Run from the repository root (``make bench`` does)::

    .venv/bin/python benchmarks/compare_match.py [--quick] [--no-dask]
        [--rounds N] [--dask-rows 50000000] [--workdir DIR]

Text part: a dataset of 1.4 M md5 records and an inventory of 10 M hex md5
digests (330 MB, 1 % hits), both from fixed seeds.  Every contender is a
separate process timed from start to exit, so the competitors pay for loading
their set from ``known.txt`` and hashlookup for starting Python and opening
the dataset (its one-time build is reported apart).  Rounds interleave the
contenders (the order rotates) and the best round is kept: the machine is a
shared 2-core VM and only ratios measured this way are stable.  All outputs
must be identical (same lines, same order) or the script exits 1.

Dask part: the same dataset and 50 M digests in 10 Parquet files of 5 row
groups each; hits of the single-machine ``hashlookup match`` (CLI) and of
``hashlookup.dask.match`` on a LocalCluster (processes, 1 thread each) with 1
and 2 workers must be identical; cluster start-up is reported apart.

Output: a Markdown table on stdout and in benchmarks/match_results.md.
"""

from __future__ import annotations

import argparse
import binascii
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
# `python -I -m hashlookup`, not the venv's `hashlookup` script: the test
# dependencies include the PyPI client pyhashlookup, whose console script is
# also named `hashlookup` and replaces ours when installed after it.  -I keeps
# the current directory (the source tree, without the compiled core) off
# sys.path.
HL = [sys.executable, "-I", "-m", "hashlookup"]
SEED = 0x4D42  # "MB"

AWK = "NR==FNR{a[$1];next} ($1 in a)"
SET_SCRIPT = """import sys
known = set()
with open(sys.argv[1]) as f:
    for line in f:
        known.add(line.split()[0].lower())
write = sys.stdout.write
with open(sys.argv[2]) as f:
    for line in f:
        if line.split()[0].lower() in known:
            write(line)
"""


def log(*a: object) -> None:
    print(*a, file=sys.stderr, flush=True)


def hex_lines(keys: np.ndarray) -> bytes:
    """One lowercase hex digest per line, built without a Python loop."""
    text = np.frombuffer(binascii.hexlify(keys.tobytes()), dtype=np.uint8)
    text = text.reshape(len(keys), 2 * keys.shape[1])
    out = np.empty((len(keys), text.shape[1] + 1), dtype=np.uint8)
    out[:, :-1] = text
    out[:, -1] = 0x0A
    return out.tobytes()


def inventory(
    rng: np.random.Generator, known: np.ndarray, n: int, hit: float
) -> np.ndarray:
    q = rng.integers(0, 256, size=(n, known.shape[1]), dtype=np.uint8)
    rows = rng.choice(n, int(n * hit), replace=False)
    q[rows] = known[rng.integers(0, len(known), len(rows))]
    return q


def cpu_children() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def timed(cmd: list[str], out: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system of the process and its
    children).  CPU time is the steadier figure on a shared machine: other
    load stretches the wall time, much less the CPU time."""
    with open(out, "wb") as f:
        c = cpu_children()
        t = time.perf_counter()
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.PIPE, check=False)
        dt = time.perf_counter() - t
        cpu = cpu_children() - c
    if proc.returncode not in (0, 1):
        raise SystemExit(
            f"{cmd[0]} failed ({proc.returncode}): "
            f"{proc.stderr.decode(errors='replace')}"
        )
    return dt, cpu


def text_part(
    work: Path, n_known: int, n_input: int, rounds: int
) -> tuple[list[str], bool]:
    rng = np.random.default_rng(SEED)
    known = rng.integers(0, 256, size=(n_known, 16), dtype=np.uint8)
    known_txt, input_txt = work / "known.txt", work / "input.txt"
    known_txt.write_bytes(hex_lines(known))
    input_txt.write_bytes(hex_lines(inventory(rng, known, n_input, 0.01)))
    size = input_txt.stat().st_size
    dataset = work / "known.hlx"
    t = time.perf_counter()
    subprocess.run(
        [*HL, "build", str(known_txt), "-o", str(dataset), "--quiet"],
        check=True,
        capture_output=True,
    )
    build_s = time.perf_counter() - t
    script = work / "set_match.py"
    script.write_text(SET_SCRIPT)
    awk = shutil.which("awk") or "awk"
    contenders = {
        "hashlookup match": [*HL, "match", str(dataset), str(input_txt)],
        "hashlookup match -j 1": [
            *HL,
            "match",
            str(dataset),
            str(input_txt),
            "-j",
            "1",
        ],
        "Python set script": [
            sys.executable,
            str(script),
            str(known_txt),
            str(input_txt),
        ],
        "awk": [awk, AWK, str(known_txt), str(input_txt)],
    }
    walls: dict[str, list[float]] = {k: [] for k in contenders}
    cpus: dict[str, list[float]] = {k: [] for k in contenders}
    names = list(contenders)
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            dt, cpu = timed(contenders[name], work / f"out-{len(name)}.txt")
            walls[name].append(dt)
            cpus[name].append(cpu)
            log(f"round {r + 1}: {name}: {dt:.2f} s, CPU {cpu:.2f} s")
    best = {k: min(v) for k, v in walls.items()}
    med = {k: statistics.median(v) for k, v in walls.items()}
    cpu_med = {k: statistics.median(v) for k, v in cpus.items()}
    outputs = {name: (work / f"out-{len(name)}.txt").read_bytes() for name in names}
    same = len(set(outputs.values())) == 1
    hits = outputs[names[0]].count(b"\n")
    hm = "hashlookup match"
    ours, ours_med, ours_cpu = best[hm], med[hm], cpu_med[hm]

    def ratio(name: str, table: dict[str, float], base: float) -> str:
        return "—" if name == hm else f"{table[name] / base:.1f}x"

    rows = [
        f"Input: {n_input:,} hex md5 lines ({size / 1e6:.0f} MB, {hits:,} hits), "
        f"dataset of {n_known:,} records (built once in {build_s:.2f} s); "
        f"{rounds} rounds (the order of the contenders rotates), whole process "
        f"(start-up included), page cache warm.  CPU = user + system seconds.",
        "",
        "| contender | best s | median s | MB/s (best) | MB/s (median) | median CPU s "
        "| faster by (best) | faster by (median) | faster by (CPU) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in names:
        rows.append(
            f"| {name} | {best[name]:.2f} | {med[name]:.2f} | "
            f"{size / best[name] / 1e6:.0f} | {size / med[name] / 1e6:.0f} | "
            f"{cpu_med[name]:.2f} | {ratio(name, best, ours)} | "
            f"{ratio(name, med, ours_med)} | {ratio(name, cpu_med, ours_cpu)} |"
        )
    rows.append("")
    py, awk = "Python set script", "awk"
    rows.append(
        f"Identical output (same lines, same order) from every contender: "
        f"{'yes' if same else 'NO'}.  Targets (best / median / CPU): >= 10x "
        f"awk ({best[awk] / ours:.1f}x / {med[awk] / ours_med:.1f}x / "
        f"{cpu_med[awk] / ours_cpu:.1f}x), >= 20x the Python set script "
        f"({best[py] / ours:.1f}x / {med[py] / ours_med:.1f}x / "
        f"{cpu_med[py] / ours_cpu:.1f}x), 300 MB/s ({size / ours / 1e6:.0f} / "
        f"{size / ours_med / 1e6:.0f} MB/s)."
    )
    return rows, same


def write_parquet(
    work: Path,
    known: np.ndarray,
    rng: np.random.Generator,
    rows: int,
    files: int,
    groups: int,
) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    per_file = rows // files
    paths = []
    for k in range(files):
        q = inventory(rng, known, per_file, 0.01)
        text = binascii.hexlify(q.tobytes())
        offsets = np.arange(0, 32 * (per_file + 1), 32, dtype=np.int32)
        col = pa.StringArray.from_buffers(
            per_file, pa.py_buffer(offsets.tobytes()), pa.py_buffer(text)
        )
        path = work / f"inv{k:02d}.parquet"
        pq.write_table(
            pa.table({"md5": col}),
            path,
            row_group_size=-(-per_file // groups),
            compression="none",
        )
        paths.append(str(path))
    return paths


def dask_part(
    work: Path, n_known: int, n_rows: int, files: int
) -> tuple[list[str], bool]:
    import distributed

    from hashlookup import dask as hl_dask

    rng = np.random.default_rng(SEED + 1)
    known = rng.integers(0, 256, size=(n_known, 16), dtype=np.uint8)
    known_txt = work / "dknown.txt"
    known_txt.write_bytes(hex_lines(known))
    dataset = work / "dknown.hlx"
    subprocess.run(
        [*HL, "build", str(known_txt), "-o", str(dataset), "--quiet"],
        check=True,
        capture_output=True,
    )
    log(f"writing {n_rows:,} digests to {files} Parquet files")
    paths = write_parquet(work, known, rng, n_rows, files, 5)
    size = sum(os.path.getsize(p) for p in paths)

    out = work / "single.csv"
    t = time.perf_counter()
    with open(out, "wb") as f:
        subprocess.run(
            [*HL, "match", str(dataset), *paths, "--column", "md5", "--format", "csv"],
            stdout=f,
            check=False,
        )
    single_s = time.perf_counter() - t
    single = sorted(
        tuple(line.split(",")[:3]) for line in out.read_text().splitlines()[1:]
    )
    results = {}
    same = True
    for workers in (1, 2):
        t = time.perf_counter()
        cluster = distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
        )
        client = distributed.Client(cluster)
        start_s = time.perf_counter() - t
        try:
            t = time.perf_counter()
            frame = hl_dask.match(paths, str(dataset), column="md5").compute()
            run_s = time.perf_counter() - t
        finally:
            client.close()
            cluster.close()
        got = sorted(
            zip(frame["file"], frame["row"].astype(str), frame["digest"], strict=True)
        )
        same &= got == single
        results[workers] = (start_s, run_s, len(frame))
        log(f"dask {workers} worker(s): start {start_s:.1f} s, match {run_s:.2f} s")
    rows = [
        f"Input: {n_rows:,} hex md5 digests in {files} Parquet files "
        f"({size / 1e9:.2f} GB, 5 row groups each, uncompressed), 1 % hits; "
        f"dataset of {n_known:,} records.",
        "",
        "| run | seconds | digests/s | MB/s of Parquet |",
        "|---|---:|---:|---:|",
        f"| single machine, `hashlookup match` (CLI, whole process) | {single_s:.2f} | "
        f"{n_rows / single_s / 1e6:.1f} M | {size / single_s / 1e6:.0f} |",
    ]
    for workers, (start_s, run_s, _n) in results.items():
        rows.append(
            f"| Dask LocalCluster, {workers} worker process"
            f"{'es' if workers > 1 else ''} (start-up {start_s:.1f} s not "
            f"counted) | {run_s:.2f} | {n_rows / run_s / 1e6:.1f} M | "
            f"{size / run_s / 1e6:.0f} |"
        )
    rows.append("")
    rows.append(
        f"Hits: {len(single):,}; identical (file, row, digest) sets from the "
        f"single-machine match and both clusters: {'yes' if same else 'NO'}."
        f"  2 vs 1 workers: {results[1][1] / results[2][1]:.2f}x."
    )
    return rows, same


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--quick",
        action="store_true",
        help="small inputs (1 M lines, 5 M Parquet rows), 1 round",
    )
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-dask", action="store_true")
    ap.add_argument("--dask-rows", type=int, default=50_000_000)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    n_input, rounds, dask_rows = 10_000_000, args.rounds, args.dask_rows
    if args.quick:
        n_input, rounds, dask_rows = 1_000_000, 1, 5_000_000
    tmp = tempfile.mkdtemp(prefix="hl-match-bench-", dir=args.workdir)
    work = Path(tmp)
    try:
        text_rows, ok = text_part(work, 1_400_000, n_input, rounds)
        report = [
            "## Batch matching (`benchmarks/compare_match.py`)",
            "",
            "### Text inventory vs awk and a Python set script",
            "",
            *text_rows,
        ]
        if not args.no_dask:
            for f in work.glob("*.txt"):
                f.unlink()
            dask_rows_md, ok_dask = dask_part(work, 1_400_000, dask_rows, 10)
            ok &= ok_dask
            report += [
                "",
                "### Dask: Parquet partitions, 1 and 2 workers",
                "",
                *dask_rows_md,
            ]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    text = "\n".join(report) + "\n"
    print(text)
    if not args.no_write:
        (HERE / "match_results.md").write_text(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
