"""Builds at scale with bounded memory: time, peak RSS, answers checked.

Two runs (docs/BENCHMARKS.md, "Builds past memory"; figures in README.md):

``--records N``
    A dataset of N records (md5 + sha1 + sha256 + size) from a synthetic
    hashdeep file (seeded; written first, its time reported apart), built
    by ``hlookup build --memory M`` under ``/usr/bin/time -v``.  Then every
    digest of a sample of records (all of them for N <= 2,000,000) must be
    found, with the record's size, and as many fresh digests must miss.
``--index-keys N``
    A single-table MD5 index of N keys, fed to ``build_index`` as numpy
    blocks from a seeded generator (a text file of a billion digests would
    take 33 GB of disk) in a child process under ``/usr/bin/time -v``.
    Then lookups, warm and from a cold page cache (posix_fadvise DONTNEED
    on the file), and the time ``open_index(preload=True)`` takes.

Everything goes to a directory under --dir (default: the current one),
removed at the end unless --keep; an --input file is read, never removed.  Example::

    python benchmarks/scale_build.py --records 100000000 --memory 2G
    python benchmarks/scale_build.py --records 100000000 --memory 2G \
        --input /work/scale/input-100M.hashdeep   # (a file written before)
    python benchmarks/scale_build.py --index-keys 1000000000 --memory 4G
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scale_data

SEED = 20261206


def _timed(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Run cmd under /usr/bin/time -v; wall, user, sys seconds and peak RSS."""
    proc = subprocess.run(
        ["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:3]} failed:\n{proc.stdout}\n{proc.stderr}")
    err = proc.stderr

    def field(name: str) -> str:
        m = re.search(rf"{re.escape(name)}: (.+)", err)
        if m is None:
            raise SystemExit(f"no {name!r} in:\n{err}")
        return m.group(1).strip()

    wall = 0.0
    for part in field("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":"):
        wall = wall * 60 + float(part)
    return {
        "wall_s": wall,
        "user_s": float(field("User time (seconds)")),
        "sys_s": float(field("System time (seconds)")),
        "max_rss_bytes": int(field("Maximum resident set size (kbytes)")) * 1024,
        "stdout": proc.stdout.strip(),  # type: ignore[dict-item]
    }


def _sample_blocks(records: int, full: bool) -> list[int]:
    nblocks = -(-records // scale_data.BLOCK)
    if full or nblocks <= 3:
        return list(range(nblocks))
    return sorted({0, nblocks // 2, nblocks - 1})


def run_dataset(args: argparse.Namespace, work: str) -> dict[str, object]:
    from hashlookup import open_dataset

    n = args.records
    src = args.input or os.path.join(work, "input.hashdeep")
    out = os.path.join(work, "scale.hlds")
    gen_s = 0.0
    if args.input is None:
        t = time.perf_counter()
        scale_data.write_hashdeep(src, n, SEED)
        gen_s = time.perf_counter() - t
    elif os.path.getsize(src) != scale_data.hashdeep_size(n):
        raise SystemExit(f"{src} is not the generated file of {n} records")
    cmd = [sys.executable, "-m", "hashlookup", "build", "-q", "-o", out, src]
    cmd += ["--memory", args.memory]
    if args.tmp_dir:
        cmd += ["--tmp-dir", args.tmp_dir]
    load_before = os.getloadavg()
    build = _timed(cmd)
    load_after = os.getloadavg()
    input_size = os.path.getsize(src)
    if args.input is None:
        os.unlink(src)
    checked = misses = 0
    with open_dataset(out) as ds:
        for b in _sample_blocks(n, n <= 2_000_000):
            start = b * scale_data.BLOCK
            d = scale_data.block_digests(SEED, b, min(scale_data.BLOCK, n - start))
            step = 1 if n <= 2_000_000 else 97
            for a in ("md5", "sha1", "sha256"):
                keys = d[a][::step]
                found = ds.table(a).find_many(keys)
                if (found < 0).any():
                    raise SystemExit(f"{a}: a digest of block {b} is missing")
                checked += len(keys)
            for i in range(0, len(d["md5"]), 9973):
                m = ds.lookup(d["md5"][i].tobytes())
                if m is None or m.size != int(d["size"][i]):
                    raise SystemExit(f"record {start + i}: wrong answer {m}")
        rng = np.random.default_rng([SEED, 999_999])
        fresh = rng.integers(0, 256, (100_000, 16), dtype=np.uint8)
        misses = int((ds.table("md5").find_many(fresh) >= 0).sum())
        if misses:  # 2^-128 per key: a hit is a bug
            raise SystemExit(f"{misses} fresh digests found")
        records = len(ds)
    if records != n:
        raise SystemExit(f"{records} records, expected {n}")
    return {
        "run": "dataset",
        "records": n,
        "memory": args.memory,
        "generate_s": round(gen_s, 2),
        "input_bytes": input_size,
        "file_bytes": os.path.getsize(out),
        "records_per_s_wall": round(n / build["wall_s"]),
        "records_per_s_cpu": round(n / (build["user_s"] + build["sys_s"])),
        **{k: v for k, v in build.items() if k != "stdout"},
        "digests_checked": checked,
        "fresh_misses_checked": 100_000,
        "load_average_before": load_before,
        "load_average_after": load_after,
    }


_CHILD = """
import sys, time, json
sys.path.insert(0, {bench!r})
import numpy as np, scale_data
from hashlookup import build_index
n, seed, memory = {n}, {seed}, {memory}
gen = [0.0]
def blocks():
    for b, start in enumerate(range(0, n, scale_data.BLOCK)):
        t = time.perf_counter()
        rng = np.random.default_rng([seed, b])
        x = rng.integers(0, 256, (min(scale_data.BLOCK, n - start), 16), dtype=np.uint8)
        gen[0] += time.perf_counter() - t
        yield x
r = build_index(blocks(), {out!r}, algorithm="md5", memory=memory, tmp_dir={tmp!r},
                progress=True)
out = {{"generate_s": gen[0], "unique": r.unique_keys, "seconds": r.seconds}}
print(json.dumps(out))
"""


def _drop_cache(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _lookups(path: str, keys: np.ndarray, preload: bool = False) -> dict[str, float]:
    from hashlookup import open_index

    t = time.perf_counter()
    with open_index(path, preload=preload) as ix:
        opened = time.perf_counter() - t
        t = time.perf_counter()
        hits = 0
        for k in keys[:20_000]:
            hits += k.tobytes() in ix
        single = (time.perf_counter() - t) / min(len(keys), 20_000)
        t = time.perf_counter()
        rows = ix.find_many(keys)
        batch = (time.perf_counter() - t) / len(keys)
    return {
        "open_s": round(opened, 4),
        "single_us": round(single * 1e6, 3),
        "batch_ns": round(batch * 1e9, 1),
        "single_hits": hits,
        "batch_hits": int((rows >= 0).sum()),
    }


def run_index(args: argparse.Namespace, work: str) -> dict[str, object]:
    n = args.index_keys
    out = os.path.join(work, "scale.hlx")
    bench = os.path.dirname(os.path.abspath(__file__))
    memory = _size(args.memory)
    code = _CHILD.format(
        bench=bench, n=n, seed=SEED, memory=memory, out=out, tmp=args.tmp_dir or work
    )
    build = _timed([sys.executable, "-c", code])
    child = json.loads(str(build.pop("stdout")).splitlines()[-1])
    # Queries: half hits (keys of three blocks), half fresh digests.
    nblocks = -(-n // scale_data.BLOCK)
    picks = sorted({0, nblocks // 2, nblocks - 1})
    hits = []
    for b in picks:
        rng = np.random.default_rng([SEED, b])
        m = min(scale_data.BLOCK, n - b * scale_data.BLOCK)
        hits.append(rng.integers(0, 256, (m, 16), dtype=np.uint8)[::7][:100_000])
    hit_keys = np.concatenate(hits)[:200_000]
    miss_keys = np.random.default_rng([SEED, 1 << 40]).integers(
        0, 256, (len(hit_keys), 16), dtype=np.uint8
    )
    queries = np.concatenate([hit_keys, miss_keys])
    np.random.default_rng(5).shuffle(queries)
    expected = len(hit_keys)
    _drop_cache(out)
    cold = _lookups(out, queries)
    warm = _lookups(out, queries)
    _drop_cache(out)
    preload = _lookups(out, queries, preload=True)
    for name, r in (("cold", cold), ("warm", warm), ("preload", preload)):
        if r["batch_hits"] != expected:
            raise SystemExit(f"{name}: {r['batch_hits']} hits, expected {expected}")
    return {
        "run": "index",
        "keys": n,
        "unique": child["unique"],
        "memory": args.memory,
        "generate_s": round(child["generate_s"], 1),
        "file_bytes": os.path.getsize(out),
        "keys_per_s_wall": round(n / build["wall_s"]),
        **build,
        "queries": len(queries),
        "lookups_cold": cold,
        "lookups_warm": warm,
        "lookups_after_preload": preload,
    }


def _size(text: str) -> int:
    from hashlookup.cli._memory import parse_size

    return parse_size(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--records", type=int, help="dataset records to build")
    g.add_argument("--index-keys", type=int, help="MD5 index keys to build")
    p.add_argument("--memory", default="2G", help="--memory of the build")
    p.add_argument("--dir", default=".", help="where the files go")
    p.add_argument("--tmp-dir", default=None, help="--tmp-dir of the build")
    p.add_argument("--keep", action="store_true", help="keep the files")
    p.add_argument(
        "--input",
        default=None,
        help=f"a hashdeep file written by scale_data.write_hashdeep for --records "
        f"(seed {SEED}) to build from instead of writing one; it is kept",
    )
    args = p.parse_args(argv)
    work = tempfile.mkdtemp(prefix="scale-build.", dir=args.dir)
    try:
        result = run_dataset(args, work) if args.records else run_index(args, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    result["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    result["load_average"] = os.getloadavg()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
