#!/usr/bin/env python3
"""Side-by-side benchmark of hashlookup against the obvious Python baselines.

Run from the repository root (``make bench`` does)::

    .venv/bin/python benchmarks/compare.py [--keys 1400000] [--queries 1000000]
                                           [--quick] [--sweep] [--prefilter-sweep]
                                           [--repeat N]

Everything is measured in ONE process, our code and the competitor
interleaved round by round (the order rotates every round), and the best
(minimum) of several rounds is kept: the machine this was written on is a
shared 2-core VM, and only ratios measured this way are stable.  All data come
from ``numpy.random.default_rng(seed)`` so every run sees the same keys.

Baselines:

* a ``frozenset`` of the keys as ``bytes`` (single ``in``; ``set.intersection``
  of the query list is its batch form; ``pickle.loads`` is its "open");
* ``numpy.searchsorted`` over the sorted big-endian uint64 prefixes of the
  keys, followed by an equality check of the second half of each candidate
  (the realistic pure-numpy approach).

The index is built with the library defaults (a Bloom filter and, since
lookups do not read it beside one, no first-level filter); the same keys
built with a first-level filter (docs/FORMAT.md, kind 12;
``prefilter_bits_per_key=4``, the former default) are raced in the same
rounds, so that a file written by the former default is measured too.

Query ``bytes`` objects are created fresh before every timed round (outside
the timed region), so the set pays for hashing them like it would for digests
that just came out of ``hashlib``; the figure with hashes already cached is
reported as information.

Output: a Markdown table on stdout, the same in benchmarks/results.md and all
raw numbers in benchmarks/results.json (``--no-write`` skips the files).
The exit status is 0 unless the answers differ from the set's (a bug) or
``--strict`` is given and a target fails.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import math
import os
import pickle
import platform
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WIDTH = 16  # md5
MiB = 1 << 20
SWEEP_BITS = (0, 8, 10, 12, 16)
PREFILTER_SWEEP_BITS = (0, 2, 3, 4, 6)


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def log(*a: object) -> None:
    print(*a, file=sys.stderr, flush=True)


def proc_status() -> dict[str, int]:
    """VmRSS / RssAnon / RssFile of this process in bytes (Linux)."""
    out: dict[str, int] = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                name, _, rest = line.partition(":")
                if name in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM"):
                    out[name] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return out


def fresh_list(buf: bytes, width: int = WIDTH) -> list[bytes]:
    """New bytes objects (hash not yet computed) for every key in buf."""
    return [buf[i : i + width] for i in range(0, len(buf), width)]


def loop_in(container, queries) -> None:
    # The plain `k in container` loop; the same function times both sides.
    for k in queries:
        k in container  # noqa: B015


def loop_empty(container, queries) -> None:
    for _k in queries:
        pass


def race(contenders: dict, repeat: int) -> dict[str, float]:
    """Best (min) wall time in seconds of each contender over `repeat` rounds.

    contenders: name -> (setup, fn); setup() (untimed, may be None) returns the
    argument of fn.  Contenders run interleaved, the order rotating each round,
    with the garbage collector off inside the timed region.
    """
    names = list(contenders)
    best = dict.fromkeys(names, math.inf)
    for r in range(repeat):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            setup, fn = contenders[name]
            arg = setup() if setup is not None else None
            gc.collect()
            gc.disable()
            try:
                t0 = time.perf_counter()
                res = fn(arg)
                dt = time.perf_counter() - t0
            finally:
                gc.enable()
            del res, arg
            best[name] = min(best[name], dt)
    return best


def fmt_num(v: float, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 100:
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.{digits}g}"


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------


class Data:
    """Keys, query sets and the reference answers, all from one seed."""

    def __init__(self, n: int, q: int, seed: int, hit_ratio: float = 0.01) -> None:
        rng = np.random.default_rng(seed)
        self.n, self.q = n, q
        self.keys = rng.integers(0, 256, size=(n, WIDTH), dtype=np.uint8)
        self.key_buf = self.keys.tobytes()
        self.key_set = frozenset(fresh_list(self.key_buf))
        if len(self.key_set) != n:
            raise SystemExit("random keys collided; change --seed")

        # 1 % hits: distinct members + distinct random non-members, shuffled.
        nhit = max(1, round(q * hit_ratio)) if q else 0
        hit_rows = rng.choice(n, size=min(nhit, n), replace=False)
        miss = rng.integers(0, 256, size=(q - len(hit_rows), WIDTH), dtype=np.uint8)
        mixed = np.concatenate([self.keys[hit_rows], miss])
        self.q1 = np.ascontiguousarray(mixed[rng.permutation(len(mixed))])
        # 100 % hits: distinct members in random order.
        self.qall = np.ascontiguousarray(
            self.keys[rng.choice(n, size=q, replace=q > n)]
        )

        self.q1_buf = self.q1.tobytes()
        self.qall_buf = self.qall.tobytes()
        l1 = fresh_list(self.q1_buf)
        lall = fresh_list(self.qall_buf)
        self.exp1 = np.fromiter((k in self.key_set for k in l1), bool, count=q)
        self.expall = np.fromiter((k in self.key_set for k in lall), bool, count=q)
        self.q1_distinct = len(set(l1)) == q
        self.qall_distinct = len(set(lall)) == q
        self.q1_hits = int(self.exp1.sum())

    def write_hex(self, path: Path) -> None:
        """One lowercase hex digest per line."""
        hx = np.frombuffer(self.key_buf.hex().encode("ascii"), np.uint8)
        lines = np.empty((self.n, 2 * WIDTH + 1), np.uint8)
        lines[:, : 2 * WIDTH] = hx.reshape(self.n, 2 * WIDTH)
        lines[:, 2 * WIDTH] = ord("\n")
        path.write_bytes(lines.tobytes())


class SortedPrefixes:
    """The numpy baseline: searchsorted on sorted big-endian uint64 prefixes,
    then compare the second 8 bytes of the candidate row."""

    def __init__(self, keys: np.ndarray) -> None:
        be = np.ascontiguousarray(keys).view(">u8")  # (n, 2)
        hi = be[:, 0].astype(np.uint64)
        lo = be[:, 1].astype(np.uint64)
        order = np.lexsort((lo, hi))
        self.hi = hi[order]
        self.lo = lo[order]
        self.n = len(self.hi)
        # Longest run of equal prefixes (1 for random digests).
        if self.n > 1:
            change = np.flatnonzero(np.diff(self.hi) != 0)
            bounds = np.concatenate([[-1], change, [self.n - 1]])
            self.max_run = int(np.diff(bounds).max())
        else:
            self.max_run = 1

    def contains(self, q: np.ndarray) -> np.ndarray:
        be = np.ascontiguousarray(q).view(">u8")
        qh = be[:, 0].astype(np.uint64)
        ql = be[:, 1].astype(np.uint64)
        pos = np.searchsorted(self.hi, qh)
        np.minimum(pos, self.n - 1, out=pos)
        same_hi = self.hi[pos] == qh
        found = same_hi & (self.lo[pos] == ql)
        if self.max_run > 1:
            pending = same_hi & ~found
            for _ in range(self.max_run - 1):
                pos = np.minimum(pos + 1, self.n - 1)
                found |= pending & (self.hi[pos] == qh) & (self.lo[pos] == ql)
        return found


# --------------------------------------------------------------------------
# Bloom false-positive rate, recomputed in numpy from the stored filter
# --------------------------------------------------------------------------

_SALT = np.array(
    [
        0x1EFFB7D5,
        0xE6C51F43,
        0xB0E30B9B,
        0xA5F9D97D,
        0xD85D4ACD,
        0x6AD25F57,
        0xA8475A17,
        0x9EE6B2E7,
        0x9097B393,
        0x2383EBE5,
        0xD3E0C7D7,
        0x451D214D,
        0x18F3D7AB,
        0x3F8FFAFF,
        0x3026ADCF,
        0x535F08CB,
    ],
    dtype=np.uint64,
)
_M1, _M2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F)
_F1, _F2 = np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53)


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


def bloom_hash64(keys: np.ndarray, seed: int) -> np.ndarray:
    """numpy port of hl_hash64 (csrc/hl_hash.h) for keys whose width is a
    multiple of 8."""
    n, width = keys.shape
    assert width % 8 == 0
    words = np.ascontiguousarray(keys).view("<u8").astype(np.uint64)
    with np.errstate(over="ignore"):
        h = np.full(n, np.uint64(seed) ^ (np.uint64(width) * _M1), np.uint64)
        for j in range(width // 8):
            h ^= _rotl(words[:, j] * _M2, 31) * _M1
            h = _rotl(h, 27) * np.uint64(5) + np.uint64(0x52DCE729)
        h ^= np.uint64(width)
        h ^= h >> np.uint64(33)
        h *= _F1
        h ^= h >> np.uint64(33)
        h *= _F2
        h ^= h >> np.uint64(33)
    return h


def bloom_pass(
    bloom: np.ndarray, nblocks: int, k: int, seed: int, keys: np.ndarray
) -> np.ndarray:
    """True where every probed bit is set (hl_bloom_block_test)."""
    h = bloom_hash64(keys, seed)
    with np.errstate(over="ignore"):
        block = ((h >> np.uint64(32)) * np.uint64(nblocks)) >> np.uint64(32)
        lo = h & np.uint64(0xFFFFFFFF)
        base = block.astype(np.int64) * 64
        ok = np.ones(len(keys), bool)
        for i in range(k):
            bit = ((lo * _SALT[i]) & np.uint64(0xFFFFFFFF)) >> np.uint64(26)
            byte = base + (i & 7) * 8 + (bit >> np.uint64(3)).astype(np.int64)
            ok &= ((bloom[byte] >> (bit & np.uint64(7)).astype(np.uint8)) & 1) == 1
    return ok


def bloom_stats(index, path: Path, misses: np.ndarray) -> dict:
    """Measured false-positive rate of the stored Bloom filter over `misses`
    (keys known to be absent), if info() exposes where the filter is."""
    info = index.info()
    res: dict[str, object] = {}
    try:
        b = _bloom_info(info)
    except (KeyError, TypeError, ValueError) as e:  # depends on info() layout
        res["error"] = f"info() layout not understood: {e!r}"
        return res
    if b is None:
        res["error"] = "info() does not expose the Bloom section"
        return res
    res.update({k: v for k, v in b.items() if k != "offset"})
    if b.get("nblocks", 0) == 0:
        res["fp_rate"] = 1.0
        return res
    raw = np.fromfile(path, dtype=np.uint8, count=b["nblocks"] * 64, offset=b["offset"])
    passed = bloom_pass(raw, b["nblocks"], b["k"], b["seed"], misses)
    res["fp_rate"] = float(passed.mean())
    # Validates the numpy port of the hash: every member must pass.
    members = np.ascontiguousarray(index.keys()[:200_000])
    res["members_pass"] = bool(
        bloom_pass(raw, b["nblocks"], b["k"], b["seed"], members).all()
    )
    lam = len(index) * 1.0 / b["nblocks"]
    res["fp_theory"] = blocked_bloom_fp(lam, b["k"])
    return res


def blocked_bloom_fp(keys_per_block: float, k: int, terms: int = 200) -> float:
    """Expected FP rate of the split-block filter: block loads are Poisson,
    each key sets one bit per probe in lane i%8 (64 bits per lane)."""
    lanes = [0] * 8
    for i in range(k):
        lanes[i & 7] += 1
    fp = 0.0
    p = math.exp(-keys_per_block)
    for j in range(terms):
        if j:
            p *= keys_per_block / j
        q = 1.0
        for c in lanes:
            if c:
                q *= (1 - (1 - 1 / 64) ** (c * j)) ** c
        fp += p * q
    return fp


def _bloom_info(info: dict) -> dict | None:
    """{offset, nblocks, k, seed, bits_per_key} from index.info(): the "bloom"
    entry (blocks, hashes, seed, bits_per_key) and the "bloom" section's
    offset.  {"nblocks": 0} when the index has no filter; None when info()
    does not say."""
    if "bloom" not in info:
        return None
    params = info["bloom"]
    if params is None:
        return {"nblocks": 0}
    sec = next(
        (
            s
            for s in info.get("sections", ())
            if isinstance(s, dict) and s.get("kind") == "bloom"
        ),
        None,
    )
    if sec is None:
        return None
    return {
        "offset": int(sec["offset"]),
        "nblocks": int(params["blocks"]),
        "k": int(params["hashes"]),
        "seed": int(params["seed"]),
        "bits_per_key": params.get("bits_per_key"),
    }


# --------------------------------------------------------------------------
# memory (measured in a fresh child process so that nothing else pollutes RSS)
# --------------------------------------------------------------------------


def memory_child(idx_path: str, keys_npy: str, q1_npy: str, qall_npy: str) -> None:
    import hashlookup

    q1 = np.load(q1_npy)
    qall = np.load(qall_npy)
    o1 = np.zeros(len(q1), bool)
    o2 = np.zeros(len(qall), bool)
    # Touch everything allocated before the "before" reading.
    o1[:] = True
    o2[:] = True
    # Open and close once so that modules imported lazily by the first open
    # are already resident: the measured growth is then the mapping alone.
    hashlookup.open_index(idx_path).close()
    gc.collect()
    before = proc_status()
    index = hashlookup.open_index(idx_path)
    index.contains_many(q1, out=o1)
    index.contains_many(qall, out=o2)
    after = proc_status()
    lookups = len(q1) + len(qall)
    index.close()
    del index

    keys = np.load(keys_npy)
    buf = keys.tobytes()
    del keys
    gc.collect()
    s_before = proc_status()
    tracemalloc.start()
    lst = fresh_list(buf)
    s = frozenset(lst)
    del lst
    traced = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    s_after = proc_status()
    print(
        json.dumps(
            {
                "lookups": lookups,
                "before": before,
                "after": after,
                "set_tracemalloc": traced,
                "set_rss_delta": s_after.get("VmRSS", 0) - s_before.get("VmRSS", 0),
                "set_len": len(s),
            }
        )
    )


# --------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------


class Table:
    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(
        self,
        figure: str,
        ours: str,
        base: str,
        ratio: str,
        target: str,
        ok: bool | None,
    ) -> None:
        self.rows.append(
            {
                "figure": figure,
                "hashlookup": ours,
                "baseline": base,
                "ratio": ratio,
                "target": target,
                "result": "—" if ok is None else ("PASS" if ok else "FAIL"),
            }
        )

    def markdown(self) -> str:
        cols = ["figure", "hashlookup", "baseline", "ratio", "target", "result"]
        out = [
            "| " + " | ".join(cols) + " |",
            "|" + "|".join(["---"] + ["---:"] * 4 + [":---:"]) + "|",
        ]
        for r in self.rows:
            out.append("| " + " | ".join(str(r[c]) for c in cols) + " |")
        return "\n".join(out)

    @property
    def failed(self) -> list[str]:
        return [r["figure"] for r in self.rows if r["result"] == "FAIL"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--keys",
        type=int,
        default=None,
        help="keys in the index (default 1,400,000; 200,000 with --quick)",
    )
    ap.add_argument(
        "--queries",
        type=int,
        default=None,
        help="queries per list (default 1,000,000; 100,000 with --quick)",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smaller data and fewer rounds (a smoke test, not a measurement)",
    )
    ap.add_argument(
        "--sweep",
        action="store_true",
        help="also sweep bloom_bits_per_key over 0, 8, 10, 12, 16",
    )
    ap.add_argument(
        "--prefilter-sweep",
        action="store_true",
        help="also sweep prefilter_bits_per_key over 0, 2, 3, 4, 6",
    )
    ap.add_argument(
        "--size-sweep",
        action="store_true",
        help="also time `in` (1%% hits) against tables of 1,000 to all keys",
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="rounds per figure (best is kept); default 5, 2 with --quick",
    )
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument(
        "--tmpdir", default=None, help="where to put the text and index files"
    )
    ap.add_argument(
        "--out",
        default=str(HERE / "results"),
        help="write OUT.md and OUT.json (default benchmarks/results)",
    )
    ap.add_argument(
        "--no-write", action="store_true", help="do not write results files"
    )
    ap.add_argument("--strict", action="store_true", help="exit 1 if any target fails")
    ap.add_argument("--_memory-child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args._memory_child:
        memory_child(*args._memory_child)
        return 0

    import hashlookup

    n = args.keys if args.keys is not None else (200_000 if args.quick else 1_400_000)
    q = (
        args.queries
        if args.queries is not None
        else (100_000 if args.quick else 1_000_000)
    )
    R = args.repeat if args.repeat is not None else (2 if args.quick else 5)
    RB = max(R, 3 if args.quick else 7)  # batch figures: a few more rounds
    t_start = time.perf_counter()

    results: dict[str, object] = {
        "params": {
            "keys": n,
            "queries": q,
            "seed": args.seed,
            "repeat": R,
            "batch_repeat": RB,
            "quick": args.quick,
        },
        "env": {
            "python": sys.version.split()[0],
            "numpy": np.__version__,
            "hashlookup": getattr(hashlookup, "__version__", "?"),
            "machine": platform.machine(),
            "cpu": _cpu_name(),
            "cores": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "loadavg_start": _loadavg(),
        },
    }
    table = Table()
    phases: dict[str, float] = {}
    results["phase_seconds"] = phases
    current = ["data", time.perf_counter()]

    def phase(name: str) -> None:
        now = time.perf_counter()
        phases[current[0]] = round(now - current[1], 2)
        current[:] = [name, now]
        log(f"{name} ...")

    log(f"generating {n:,} keys and 2 x {q:,} queries (seed {args.seed}) ...")
    d = Data(n, q, args.seed)
    results["data"] = {
        "q1_hits": d.q1_hits,
        "q1_distinct": d.q1_distinct,
        "qall_distinct": d.qall_distinct,
    }

    with tempfile.TemporaryDirectory(prefix="hlbench-", dir=args.tmpdir) as tmp:
        tmp = Path(tmp)
        txt = tmp / "keys.txt"
        idx_path = tmp / "keys.hlx"
        d.write_hex(txt)

        # ---------------- build ----------------
        phase("build")
        reports = []

        def build(_):
            rep = hashlookup.build_index(str(txt), str(idx_path))
            reports.append(rep)
            return rep

        def set_from_text(_):
            with open(txt) as f:
                return frozenset(map(bytes.fromhex, f.read().split()))

        t = race(
            {"hl": (None, build), "set": (None, set_from_text)}, 1 if args.quick else 3
        )
        rep = reports[-1]
        file_size = idx_path.stat().st_size
        results["build"] = {
            "seconds": t["hl"],
            "set_from_text_seconds": t["set"],
            "report_seconds": [r.seconds for r in reports],
            "unique_keys": rep.unique_keys,
            "file_size": file_size,
        }
        table.add(
            f"build: {n:,} md5 from hex text (s)",
            fmt_num(t["hl"]),
            f"{fmt_num(t['set'])} (frozenset from text)",
            f"{t['hl'] / t['set']:.2f}x",
            "< 1.5 s",
            t["hl"] < 1.5,
        )

        index = hashlookup.open_index(str(idx_path))
        assert len(index) == n, (len(index), n)
        # the same keys with a first-level filter (the former default)
        plain_path = tmp / "prefiltered.hlx"
        hashlookup.build_index(d.keys, str(plain_path), prefilter_bits_per_key=4)
        plain = hashlookup.open_index(str(plain_path))
        plain_size = plain_path.stat().st_size
        info = index.info()
        results["index_info"] = {
            k: info.get(k)
            for k in (
                "kernel",
                "locator_bits",
                "bloom",
                "file_size",
                "header_size",
                "key_bytes",
            )
        }

        # ---------------- correctness ----------------
        phase("correctness")
        problems = check_answers(index, d)
        problems += [f"with a first-level filter: {p}" for p in check_answers(plain, d)]
        results["correctness"] = {"identical": not problems, "problems": problems}

        # ---------------- single lookups ----------------
        phase("single lookups")
        single = {}
        # The floor, in the same rounds as the frozenset: `k in ()` runs the
        # interpreter's `in` down to a C sq_contains that returns at once
        # (an empty tuple: no hash, no element), and a 1,000-key index is our
        # whole call with every filter and row in L1.
        small_path = tmp / "floor1000.hlx"
        hashlookup.build_index(np.ascontiguousarray(d.keys[:1000]), str(small_path))
        small = hashlookup.open_index(str(small_path))
        for label, buf in (("1% hits", d.q1_buf), ("all hits", d.qall_buf)):
            mk = functools.partial(fresh_list, buf)

            def cached(b=buf):
                lst = fresh_list(b)
                for k in lst:
                    hash(k)
                return lst

            t = race(
                {
                    "hl": (mk, lambda lst: loop_in(index, lst)),
                    "hl_plain": (mk, lambda lst: loop_in(plain, lst)),
                    "set": (mk, lambda lst: loop_in(d.key_set, lst)),
                    "set_cached_hash": (cached, lambda lst: loop_in(d.key_set, lst)),
                    "empty_loop": (mk, lambda lst: loop_empty(None, lst)),
                    "floor_tuple": (mk, lambda lst: loop_in((), lst)),
                    "small1000": (mk, lambda lst: loop_in(small, lst)),
                },
                R,
            )
            ns = {k: v / q * 1e9 for k, v in t.items()}
            single[label] = ns
            target = 0.2 if label == "1% hits" else 0.9
            ratio = ns["hl"] / ns["set"]
            table.add(
                f"`k in index`, {label} (ns/lookup)",
                fmt_num(ns["hl"]),
                f"{fmt_num(ns['set'])} (frozenset)",
                f"{ratio:.2f}x",
                f"<= {target}x set",
                ratio <= target,
            )
            table.add(
                f"`k in index`, {label}, file with a first-level filter "
                "(former default)",
                fmt_num(ns["hl_plain"]),
                f"{fmt_num(ns['set'])} (frozenset)",
                f"{ns['hl_plain'] / ns['set']:.2f}x",
                "info (former default)",
                None,
            )
        results["single_ns"] = single
        small.close()
        f1 = single["1% hits"]
        table.add(
            "`k in ()`: the interpreter's `in` alone (ns/lookup, 1% hits list)",
            fmt_num(f1["floor_tuple"]),
            f"{fmt_num(f1['set'])} (frozenset)",
            f"{f1['floor_tuple'] / f1['set']:.2f}x",
            "info (floor)",
            None,
        )
        table.add(
            "`k in index` of 1,000 keys, cache-resident (ns/lookup, 1% hits list)",
            fmt_num(f1["small1000"]),
            f"{fmt_num(f1['set'])} (frozenset)",
            f"{f1['small1000'] / f1['set']:.2f}x",
            "info (floor)",
            None,
        )

        # ---------------- batch ----------------
        phase("batch lookups")
        sp = SortedPrefixes(d.keys)
        batch = {}
        for label, arr, buf in (
            ("1% hits", d.q1, d.q1_buf),
            ("all hits", d.qall, d.qall_buf),
        ):
            mk = functools.partial(fresh_list, buf)
            t = race(
                {
                    "hl": (None, lambda _, a=arr: index.contains_many(a)),
                    "hl_plain": (None, lambda _, a=arr: plain.contains_many(a)),
                    "hl_threads2": (
                        None,
                        lambda _, a=arr: index.contains_many(a, threads=2),
                    ),
                    "hl_find_many": (None, lambda _, a=arr: index.find_many(a)),
                    "set_intersection": (mk, d.key_set.intersection),
                    "searchsorted": (None, lambda _, a=arr: sp.contains(a)),
                },
                RB,
            )
            mks = {k: q / v / 1e6 for k, v in t.items()}
            batch[label] = mks
            # The 50 M/s and 20x-searchsorted targets are for 1 % hits;
            # for all-hit batches only ">= 8x the set" applies.
            one_pct = label.startswith("1")
            table.add(
                f"`contains_many`, {label}, 1 thread (M keys/s)",
                fmt_num(mks["hl"]),
                "",
                "",
                ">= 50 M/s" if one_pct else "info",
                mks["hl"] >= 50 if one_pct else None,
            )
            r = mks["hl"] / mks["set_intersection"]
            table.add(
                f"`contains_many` vs `set.intersection`, {label} (M keys/s)",
                fmt_num(mks["hl"]),
                fmt_num(mks["set_intersection"]),
                f"{r:.1f}x",
                ">= 8x",
                r >= 8,
            )
            r = mks["hl"] / mks["searchsorted"]
            table.add(
                f"`contains_many` vs numpy searchsorted, {label} (M keys/s)",
                fmt_num(mks["hl"]),
                fmt_num(mks["searchsorted"]),
                f"{r:.1f}x",
                ">= 20x" if one_pct else "info",
                r >= 20 if one_pct else None,
            )
            r = mks["hl"] / mks["hl_plain"]
            table.add(
                f"`contains_many`, {label}: default file / file with a first-level "
                "filter (M keys/s)",
                fmt_num(mks["hl"]),
                f"{fmt_num(mks['hl_plain'])} (with a first-level filter)",
                f"{r:.2f}x",
                "info (former default)",
                None,
            )
            r = mks["hl_threads2"] / mks["hl"]
            table.add(
                f"`contains_many(threads=2)`, {label} (M keys/s)",
                fmt_num(mks["hl_threads2"]),
                f"{fmt_num(mks['hl'])} (1 thread)",
                f"{r:.2f}x",
                "info",
                None,
            )
        results["batch_mkeys_per_s"] = batch

        # ---------------- open ----------------
        phase("open")
        blob = pickle.dumps(d.key_set, protocol=pickle.HIGHEST_PROTOCOL)
        opens = []

        def time_open(rounds: int) -> None:
            for _ in range(rounds):
                gc.disable()
                t0 = time.perf_counter()
                ix = hashlookup.open_index(str(idx_path))
                dt = time.perf_counter() - t0
                gc.enable()
                ix.close()
                opens.append(dt)

        unpickles = []
        for _ in range(1 if args.quick else 3):
            time_open(50)
            gc.collect()
            gc.disable()
            t0 = time.perf_counter()
            s = pickle.loads(blob)
            dt = time.perf_counter() - t0
            gc.enable()
            del s
            unpickles.append(dt)
        time_open(50)
        t_open, t_pickle = min(opens), min(unpickles)
        results["open"] = {
            "seconds": t_open,
            "median_seconds": float(np.median(opens)),
            "rounds": len(opens),
            "pickle_loads_seconds": t_pickle,
            "pickle_bytes": len(blob),
        }
        del blob
        table.add(
            "`open_index` (ms)",
            fmt_num(t_open * 1e3),
            f"{fmt_num(t_pickle * 1e3)} (pickle.loads frozenset)",
            f"{t_open / t_pickle:.1e}x",
            "< 1 ms",
            t_open < 1e-3,
        )

        # ---------------- memory ----------------
        phase("memory")
        for name, a in (("keys", d.keys), ("q1", d.q1), ("qall", d.qall)):
            np.save(tmp / f"{name}.npy", a)
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--_memory-child",
                str(idx_path),
                str(tmp / "keys.npy"),
                str(tmp / "q1.npy"),
                str(tmp / "qall.npy"),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        mem = json.loads(out.stdout)
        rss_delta = mem["after"]["VmRSS"] - mem["before"]["VmRSS"]
        anon_delta = mem["after"].get("RssAnon", 0) - mem["before"].get("RssAnon", 0)
        file_delta = mem["after"].get("RssFile", 0) - mem["before"].get("RssFile", 0)
        set_mem = mem["set_tracemalloc"]
        results["memory"] = {
            **mem,
            "rss_delta": rss_delta,
            "anon_delta": anon_delta,
            "file_delta": file_delta,
            "file_size": file_size,
        }
        # The kernel maps whole pages: a file of S bytes that is entirely
        # touched adds ceil(S / page) pages to RSS, which is the bound.
        page = os.sysconf("SC_PAGE_SIZE")
        file_pages = -(-file_size // page) * page
        results["memory"]["file_pages_bytes"] = file_pages
        table.add(
            f"RSS increase after open + {mem['lookups']:,} lookups (MiB)",
            f"{rss_delta / MiB:.2f} (anon {anon_delta / MiB:.2f})",
            f"{file_size / MiB:.2f} (file size)",
            f"{rss_delta / file_size:.3f}x",
            "<= file size (in pages)",
            rss_delta <= file_pages,
        )
        per_key = file_size / (WIDTH * n)
        table.add(
            "file size / (16 B x keys)",
            f"{per_key:.3f}",
            f"{set_mem / (WIDTH * n):.2f} (frozenset)",
            f"{file_size / set_mem:.2f}x",
            "<= 1.3",
            per_key <= 1.3,
        )
        table.add(
            "file size / (16 B x keys), with a first-level filter (former default)",
            f"{plain_size / (WIDTH * n):.3f}",
            "",
            "",
            "info (former default)",
            None,
        )
        table.add(
            "memory: index file vs frozenset of bytes (MiB)",
            f"{file_size / MiB:.1f}",
            f"{set_mem / MiB:.1f} (tracemalloc; RSS +{mem['set_rss_delta'] / MiB:.0f})",
            f"{file_size / set_mem:.2f}x",
            "info",
            None,
        )

        # ---------------- where the time goes ----------------
        phase("breakdown")
        results["breakdown"] = breakdown(hashlookup, d, index, tmp, R, RB)

        # ---------------- correctness row ----------------
        table.add(
            "answers identical to set (`in`, contains_many, find_many, threads=2)",
            "yes" if not problems else "NO",
            "",
            "",
            "yes",
            not problems,
        )

        # ---------------- Bloom sweep ----------------
        if args.sweep:
            phase("Bloom sweep")
            results["sweep"] = bloom_sweep(hashlookup, d, txt, tmp, R, RB)

        if args.prefilter_sweep:
            phase("prefilter sweep")
            results["prefilter_sweep"] = prefilter_sweep(hashlookup, d, tmp, R, RB)

        if args.size_sweep:
            phase("size sweep")
            results["size_sweep"] = size_sweep(hashlookup, d, tmp, R)

        plain.close()
        index.close()
    phase("report")

    results["env"]["loadavg_end"] = _loadavg()
    results["table"] = table.rows
    results["elapsed_seconds"] = time.perf_counter() - t_start
    md = render(results, table)
    print(md)
    print()
    print("answers identical to set:", "yes" if not problems else "NO")
    if problems:
        for p in problems:
            print("  -", p)
    if not args.no_write:
        Path(args.out + ".md").write_text(md + "\n")
        Path(args.out + ".json").write_text(
            json.dumps(results, indent=2, default=str) + "\n"
        )
        log(f"wrote {args.out}.md and {args.out}.json")
    log(f"total {results['elapsed_seconds']:.0f} s")
    if problems:
        return 2
    if args.strict and table.failed:
        return 1
    return 0


def check_answers(index, d: Data) -> list[str]:
    """Compare every API's answers to the frozenset's. Returns problems."""
    problems = []
    keys_view = index.keys()
    for label, arr, buf, exp in (
        ("1% hits", d.q1, d.q1_buf, d.exp1),
        ("all hits", d.qall, d.qall_buf, d.expall),
    ):
        lst = fresh_list(buf)
        got = index.contains_many(arr)
        if (
            got.dtype != np.bool_
            or got.shape != exp.shape
            or not np.array_equal(got, exp)
        ):
            problems.append(
                f"contains_many differs from set ({label}): "
                f"{int((got != exp).sum())} of {len(exp)}"
            )
        got2 = index.contains_many(arr, threads=2)
        if not np.array_equal(got2, exp):
            problems.append(f"contains_many(threads=2) differs from set ({label})")
        got3 = index.contains_many(lst)
        if not np.array_equal(got3, exp):
            problems.append(f"contains_many(list of bytes) differs from set ({label})")
        rows = index.find_many(arr)
        if rows.dtype != np.int64 or not np.array_equal(rows >= 0, exp):
            problems.append(f"find_many hit/miss differs from set ({label})")
        else:
            hit = rows >= 0
            if not np.array_equal(keys_view[rows[hit]], arr[hit]):
                problems.append(f"find_many rows point at other keys ({label})")
            if np.any(rows[~hit] != -1):
                problems.append(f"find_many misses not -1 ({label})")
        rows2 = index.find_many(arr, threads=2)
        if not np.array_equal(rows2, rows):
            problems.append(f"find_many(threads=2) differs from threads=1 ({label})")
        single = np.fromiter((k in index for k in lst), bool, count=len(lst))
        if not np.array_equal(single, exp):
            problems.append(
                f"`in` differs from set ({label}): "
                f"{int((single != exp).sum())} of {len(exp)}"
            )
        sample = lst[:2000]
        hexes = [k.hex().upper() if i % 2 else k.hex() for i, k in enumerate(sample)]
        if [h in index for h in hexes] != [k in d.key_set for k in sample]:
            problems.append(f"`in` with hex str differs from set ({label})")
        finds = [index.find(k) for k in sample]
        if [f >= 0 for f in finds] != [k in d.key_set for k in sample] or list(
            rows[: len(sample)]
        ) != finds:
            problems.append(f"find() differs from find_many/set ({label})")
    return problems


def breakdown(hashlookup, d: Data, index, tmp: Path, R: int, RB: int) -> dict:
    """The same lookups against a cache-resident index (1,000 of the keys):
    what is left is call overhead and computation; the difference to the
    full index is the cost of cache and TLB misses."""
    small_keys = np.ascontiguousarray(d.keys[:1000])
    path = tmp / "small.hlx"
    hashlookup.build_index(small_keys, str(path))
    small = hashlookup.open_index(str(path))
    rng = np.random.default_rng(1)
    # Misses: the 1% list minus its hits; hits: members of each index.
    miss = np.ascontiguousarray(d.q1[~d.exp1])
    small_hits = np.ascontiguousarray(small_keys[rng.integers(0, 1000, len(d.qall))])
    miss_buf, hit_buf, shit_buf = miss.tobytes(), d.qall_buf, small_hits.tobytes()
    tb = race(
        {
            "small_miss": (None, lambda _: small.contains_many(miss)),
            "full_miss": (None, lambda _: index.contains_many(miss)),
            "small_hit": (None, lambda _: small.contains_many(small_hits)),
            "full_hit": (None, lambda _: index.contains_many(d.qall)),
        },
        RB,
    )
    lists = {
        "miss": fresh_list(miss_buf),
        "hit": fresh_list(hit_buf),
        "shit": fresh_list(shit_buf),
    }
    ts = race(
        {
            "small_miss": (None, lambda _: loop_in(small, lists["miss"])),
            "full_miss": (None, lambda _: loop_in(index, lists["miss"])),
            "small_hit": (None, lambda _: loop_in(small, lists["shit"])),
            "full_hit": (None, lambda _: loop_in(index, lists["hit"])),
            "empty": (None, lambda _: loop_empty(None, lists["miss"])),
        },
        R,
    )
    small.close()
    nm, nh = len(miss), len(d.qall)
    per = {"miss": nm, "hit": nh}
    out = {}
    for kind in ("miss", "hit"):
        out[f"contains_many_{kind}_ns"] = {
            "small": tb[f"small_{kind}"] / per[kind] * 1e9,
            "full": tb[f"full_{kind}"] / per[kind] * 1e9,
        }
        out[f"in_{kind}_ns"] = {
            "small": ts[f"small_{kind}"] / per[kind] * 1e9,
            "full": ts[f"full_{kind}"] / per[kind] * 1e9,
        }
    out["empty_loop_ns"] = ts["empty"] / nm * 1e9
    return out


def bloom_sweep(hashlookup, d: Data, txt: Path, tmp: Path, R: int, RB: int) -> dict:
    """Build with each bloom_bits_per_key and race them all together."""
    indexes = {}
    sweep: dict[str, dict] = {}
    miss_rows = d.q1[~d.exp1]
    for bits in SWEEP_BITS:
        path = tmp / f"bloom{bits}.hlx"
        try:
            t0 = time.perf_counter()
            hashlookup.build_index(str(txt), str(path), bloom_bits_per_key=bits)
            build_s = time.perf_counter() - t0
        except (ValueError, TypeError) as e:
            sweep[str(bits)] = {"skipped": f"{type(e).__name__}: {e}"}
            continue
        ix = hashlookup.open_index(str(path))
        if not np.array_equal(ix.contains_many(d.q1), d.exp1):
            sweep[str(bits)] = {"error": "wrong answers"}
        indexes[bits] = ix
        sweep[str(bits)] = {
            "file_size": path.stat().st_size,
            "build_seconds": build_s,
            "bloom": bloom_stats(ix, path, miss_rows),
        }
    lst1 = fresh_list(d.q1_buf)
    lstall = fresh_list(d.qall_buf)
    cont = {}
    for bits, ix in indexes.items():
        cont[f"{bits}/batch1"] = (None, lambda _, ix=ix: ix.contains_many(d.q1))
        cont[f"{bits}/batchall"] = (None, lambda _, ix=ix: ix.contains_many(d.qall))
    tb = race(cont, RB)
    cont = {}
    for bits, ix in indexes.items():
        cont[f"{bits}/in1"] = (None, lambda _, ix=ix: loop_in(ix, lst1))
        cont[f"{bits}/inall"] = (None, lambda _, ix=ix: loop_in(ix, lstall))
    ts = race(cont, R)
    q = d.q
    for bits, ix in indexes.items():
        s = sweep[str(bits)]
        s["contains_many_1pct_mkeys"] = q / tb[f"{bits}/batch1"] / 1e6
        s["contains_many_all_mkeys"] = q / tb[f"{bits}/batchall"] / 1e6
        s["in_1pct_ns"] = ts[f"{bits}/in1"] / q * 1e9
        s["in_all_ns"] = ts[f"{bits}/inall"] / q * 1e9
        ix.close()
    return sweep


def prefilter_sweep(hashlookup, d: Data, tmp: Path, R: int, RB: int) -> dict:
    """Build with each prefilter_bits_per_key; race `in` and contains_many
    (1 % hits) of them all together."""
    sweep: dict[str, dict] = {}
    indexes = {}
    for bits in PREFILTER_SWEEP_BITS:
        path = tmp / f"pre{bits}.hlx"
        hashlookup.build_index(d.keys, str(path), prefilter_bits_per_key=bits)
        ix = hashlookup.open_index(str(path))
        if not np.array_equal(ix.contains_many(d.q1), d.exp1):
            sweep[str(bits)] = {"error": "wrong answers"}
            continue
        indexes[bits] = ix
        sweep[str(bits)] = {"file_size": path.stat().st_size}
    mk = functools.partial(fresh_list, d.q1_buf)
    ts = race(
        {
            f"{b}/in1": (mk, lambda lst, ix=ix: loop_in(ix, lst))
            for b, ix in indexes.items()
        }
        | {"set": (mk, lambda lst: loop_in(d.key_set, lst))},
        R,
    )
    tb = race(
        {
            f"{b}/batch1": (None, lambda _, ix=ix: ix.contains_many(d.q1))
            for b, ix in indexes.items()
        },
        RB,
    )
    for b, ix in indexes.items():
        s = sweep[str(b)]
        s["in_1pct_ns"] = ts[f"{b}/in1"] / d.q * 1e9
        s["in_1pct_vs_set"] = ts[f"{b}/in1"] / ts["set"]
        s["contains_many_1pct_mkeys"] = d.q / tb[f"{b}/batch1"] / 1e6
        ix.close()
    return sweep


SIZE_SWEEP_KEYS = (1000, 20_000, 100_000, 300_000, 700_000)


def size_sweep(hashlookup, d: Data, tmp: Path, R: int) -> dict:
    """`in` over the 1 % hits list against the first n keys (default build),
    raced with the frozenset and `k in ()`: where the Bloom filter's probe
    stops being free as it outgrows the caches."""
    ix = {}
    for n in (*(k for k in SIZE_SWEEP_KEYS if k < d.n), d.n):
        path = tmp / f"size{n}.hlx"
        hashlookup.build_index(np.ascontiguousarray(d.keys[:n]), str(path))
        ix[str(n)] = hashlookup.open_index(str(path))
    mk = functools.partial(fresh_list, d.q1_buf)
    cont = {k: (mk, lambda lst, i=i: loop_in(i, lst)) for k, i in ix.items()}
    cont["set"] = (mk, lambda lst: loop_in(d.key_set, lst))
    cont["floor"] = (mk, lambda lst: loop_in((), lst))
    t = race(cont, R)
    for i in ix.values():
        i.close()
    return {k: {"ns": v / d.q * 1e9, "vs_set": v / t["set"]} for k, v in t.items()}


def render(results: dict, table: Table) -> str:
    p, e = results["params"], results["env"]
    quick = ", **--quick** (smoke test, not a measurement)" if p["quick"] else ""
    kernel = results.get("index_info", {}).get("kernel")
    kernel = f", kernel {kernel}" if kernel else ""
    lines = [
        "# hashlookup benchmark results",
        "",
        (
            f"`benchmarks/compare.py` — {p['keys']:,} random md5 keys, "
            f"{p['queries']:,} distinct queries per list, seed {p['seed']}, "
            f"best of {p['repeat']} rounds ({p['batch_repeat']} for batch "
            f"figures){quick}."
        ),
        (
            f"Python {e['python']}, numpy {e['numpy']}, hashlookup {e['hashlookup']}, "
            f"{e['cpu']} ({e['cores']} cores), {e['date']}, load average "
            f"{_fmt_load(e.get('loadavg_start'))} at start, "
            f"{_fmt_load(e.get('loadavg_end'))} at end{kernel}."
        ),
        (
            "Ours and the baseline are timed interleaved in the same process; "
            "ratios are hashlookup / baseline (time for `in`, speed for batches)."
        ),
        "",
        table.markdown(),
        "",
    ]
    s = results["single_ns"]
    lines.append(
        "Notes (ns per lookup, same loop): "
        + "; ".join(
            f"{lab}: empty loop {fmt_num(v['empty_loop'])}, "
            f"set with hashes already cached "
            f"{fmt_num(v['set_cached_hash'])}"
            for lab, v in s.items()
        )
        + "."
    )
    f1 = s.get("1% hits", {})
    if "floor_tuple" in f1:
        budget = 0.2 * f1["set"]
        lines.append(
            f"Of the 0.2x budget for `in` at 1% hits ({fmt_num(budget)} ns here), "
            f"the empty loop takes {f1['empty_loop'] / budget:.0%}, `k in ()` "
            f"{f1['floor_tuple'] / budget:.0%} and a cache-resident 1,000-key index "
            f"{f1['small1000'] / budget:.0%}."
        )
    b = results["batch_mkeys_per_s"]
    lines.append(
        "`find_many` (M keys/s, 1 thread): "
        + ", ".join(f"{lab} {fmt_num(v['hl_find_many'])}" for lab, v in b.items())
        + "."
    )
    if "breakdown" in results:
        bd = results["breakdown"]
        lines += [
            "",
            "## Where the time goes",
            "",
            (
                "Same queries against a cache-resident index of 1,000 of the "
                "keys (call overhead + computation only) and against the full "
                "index; the difference is cache/TLB misses.  ns per key."
            ),
            "",
            ("| operation | 1,000-key index | full index | share of memory stalls |"),
            "|---|---:|---:|---:|",
        ]
        for label, key in (
            ("`contains_many`, misses", "contains_many_miss_ns"),
            ("`contains_many`, hits", "contains_many_hit_ns"),
            ("`k in index`, misses", "in_miss_ns"),
            ("`k in index`, hits", "in_hit_ns"),
        ):
            v = bd[key]
            share = max(0.0, 1 - v["small"] / v["full"]) if v["full"] else 0.0
            lines.append(
                f"| {label} | {fmt_num(v['small'])} | {fmt_num(v['full'])} "
                f"| {share:.0%} |"
            )
        lines.append(
            f"| empty `for` loop (same list) | {fmt_num(bd['empty_loop_ns'])} | | |"
        )
    if "sweep" in results:
        lines += [
            "",
            "## Bloom filter sweep (`bloom_bits_per_key`)",
            "",
            (
                "| bits/key | file size / 16n | contains_many 1% hits (M/s) "
                "| contains_many all hits (M/s) | `in` 1% hits (ns) "
                "| `in` all hits (ns) | measured FP rate | expected FP |"
            ),
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        n = p["keys"]
        for bits, s in results["sweep"].items():
            if "skipped" in s or "error" in s:
                lines.append(
                    f"| {bits} | {s.get('skipped', s.get('error'))} | | | | | | |"
                )
                continue
            bl = s.get("bloom", {})
            fp = bl.get("fp_rate")
            fpt = bl.get("fp_theory")
            if bl.get("members_pass") is False:
                fp = None  # the numpy port of the filter hash does not match
            lines.append(
                f"| {bits} | {s['file_size'] / (16 * n):.3f} "
                f"| {fmt_num(s['contains_many_1pct_mkeys'])} "
                f"| {fmt_num(s['contains_many_all_mkeys'])} "
                f"| {fmt_num(s['in_1pct_ns'])} | {fmt_num(s['in_all_ns'])} "
                f"| {'—' if fp is None else f'{fp:.4%}'} "
                f"| {'—' if fpt is None else f'{fpt:.4%}'} |"
            )
    if "prefilter_sweep" in results:
        lines += [
            "",
            "## First-level filter sweep (`prefilter_bits_per_key`)",
            "",
            "| bits/key | file size / 16n | `in` 1% hits (ns) | vs frozenset "
            "| contains_many 1% hits (M/s) |",
            "|---:|---:|---:|---:|---:|",
        ]
        n = p["keys"]
        for bits, s in results["prefilter_sweep"].items():
            if "error" in s:
                lines.append(f"| {bits} | {s['error']} | | | |")
                continue
            lines.append(
                f"| {bits} | {s['file_size'] / (16 * n):.3f} "
                f"| {fmt_num(s['in_1pct_ns'])} | {s['in_1pct_vs_set']:.2f}x "
                f"| {fmt_num(s['contains_many_1pct_mkeys'])} |"
            )
    if "size_sweep" in results:
        sw = results["size_sweep"]
        lines += [
            "",
            "## `in` against tables of n keys (1% hits list, ns; ratio to frozenset)",
            "",
            f"Floor `k in ()`: {fmt_num(sw['floor']['ns'])} "
            f"({sw['floor']['vs_set']:.2f}x); frozenset {fmt_num(sw['set']['ns'])}.",
            "",
            "| keys | Bloom filter | `k in index` (ns) | vs frozenset |",
            "|---:|---:|---:|---:|",
        ]
        for k, v in sw.items():
            if k in ("set", "floor"):
                continue
            bloom = int(k) * 12 // 8
            lines.append(
                f"| {int(k):,} | {bloom / 1024:,.0f} KiB | {fmt_num(v['ns'])} "
                f"| {v['vs_set']:.2f}x |"
            )
    fails = table.failed
    lines += [
        "",
        f"Targets failed: {', '.join(fails) if fails else 'none'}.",
        f"Run time {results['elapsed_seconds']:.0f} s.",
    ]
    return "\n".join(lines)


def _fmt_load(v) -> str:
    return "?" if not v else "/".join(f"{x:.1f}" for x in v)


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


if __name__ == "__main__":
    sys.exit(main())
