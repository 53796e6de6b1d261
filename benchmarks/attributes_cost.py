"""What record attributes cost: single lookups in a dataset without
attributes (run it under two builds of the package to compare them), and
the file size of NSRL-like attributes per record.

    python benchmarks/attributes_cost.py lookup DIR [N]   # build once, time
    python benchmarks/attributes_cost.py size DIR [N]

`lookup` builds DIR/plain.hld (N md5 records, no attributes) unless it
exists, then times ds.lookup on 100,000 hits and 100,000 misses (best of
5).  Run it with the package of each build on PYTHONPATH for a
side-by-side.  `size` builds N NSRL-like records (distinct FileName and
CRC32, ProductCode from 1,000 values, OpSystemCode from 50, SpecialCode
mostly empty) with and without their attributes and prints the file sizes.
Synthetic data, fixed seeds.
"""

from __future__ import annotations

import os
import sys
import timeit

import numpy as np

import hashlookup


def _hexes(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [bytes(r).hex() for r in rng.integers(0, 256, (n, 16), dtype=np.uint8)]


def lookup(d: str, n: int) -> None:
    path = os.path.join(d, "plain.hld")
    src = os.path.join(d, "plain.txt")
    keys = _hexes(n, 1)
    if not os.path.exists(path):
        with open(src, "w") as f:
            f.writelines(k + "\n" for k in keys)
        hashlookup.build_dataset([src], path)
    hits = keys[:: max(1, n // 100_000)][:100_000]
    misses = _hexes(100_000, 2)
    with hashlookup.open_dataset(path) as ds:
        for name, qs in (("hits", hits), ("misses", misses)):
            best = min(
                timeit.repeat(
                    lambda qs=qs: [ds.lookup(q) for q in qs], number=1, repeat=5
                )
            )
            print(
                f"{hashlookup.__file__}: {name}: {best / len(qs) * 1e9:.0f} ns/lookup"
            )


def size(d: str, n: int) -> None:
    rng = np.random.default_rng(3)
    src = os.path.join(d, "nsrl_like.csv")
    with open(src, "w") as f:
        f.write(
            "SHA-1,MD5,CRC32,FileName,FileSize,ProductCode,OpSystemCode,SpecialCode\n"
        )
        for i, (a, b) in enumerate(zip(_hexes(n, 4), _hexes(n, 5), strict=True)):
            special = "M" if i % 50 == 0 else ""
            f.write(
                f"{a}{i:08x},{b},{int(rng.integers(1 << 32)):08X},"
                f"file_{i}_{int(rng.integers(1 << 20))}.dll,{i},"
                f"{int(rng.integers(1000))},{int(rng.integers(50))},{special}\n"
            )
    names = ["FileName", "CRC32", "ProductCode", "OpSystemCode", "SpecialCode"]
    sizes = {}
    for label, attrs in (("without", None), ("with", names)):
        out = os.path.join(d, f"nsrl_{label}.hld")
        rep = hashlookup.build_dataset([src], out, attributes=attrs)
        sizes[label] = rep.file_size
        print(f"{label} attributes: {rep.file_size} bytes, {rep.seconds:.1f} s")
    extra = sizes["with"] - sizes["without"]
    print(f"attributes: {extra} bytes, {extra / n:.1f} bytes per record")


if __name__ == "__main__":
    what, d = sys.argv[1], sys.argv[2]
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000
    os.makedirs(d, exist_ok=True)
    {"lookup": lookup, "size": size}[what](d, count)
