"""What record attributes cost: single lookups in a dataset without
attributes (run it under two builds of the package to compare them), the
file size of NSRL-like attributes per record, and the lookup service's
answer to a single GET.

    python benchmarks/attributes_cost.py lookup DIR [N]   # build once, time
    python benchmarks/attributes_cost.py size DIR [N]
    python benchmarks/attributes_cost.py server DIR [N]

`lookup` builds DIR/plain.hld (N md5 records, no attributes) unless it
exists, then times ds.lookup on 100,000 hits and 100,000 misses (best of
5).  Run it with the package of each build on PYTHONPATH for a
side-by-side.  `size` builds N NSRL-like records (distinct FileName and
CRC32, ProductCode from 1,000 values, OpSystemCode from 50, SpecialCode
mostly empty) with and without their attributes and prints the file sizes.
`server` times the service's answerer of GET /lookup/md5 in-process (what
LookupApp calls per request: the C renderer for a dataset without
attributes; CIRCL's full shape, codes expanded, for one with them) on
DIR/plain.hld (as `lookup` builds it) and on an NSRL RDS 2.x set of N
records (1,000 products, 50 operating systems) built into DIR/rds2.hld:
100,000 hits and 100,000 misses, best of 5.  Synthetic data, fixed seeds.
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


def _rds2(d: str, n: int) -> str:
    """An RDS 2.x set of n records and its dataset (built once); its md5s."""
    root = os.path.join(d, "rds2")
    out = os.path.join(d, "rds2.hld")
    md5s = _hexes(n, 7)
    if os.path.exists(out):
        return out
    os.makedirs(root, exist_ok=True)
    rng = np.random.default_rng(8)
    with open(os.path.join(root, "NSRLFile.txt"), "w") as f:
        f.write(
            '"SHA-1","MD5","CRC32","FileName","FileSize","ProductCode",'
            '"OpSystemCode","SpecialCode"\n'
        )
        for i, (a, b) in enumerate(zip(_hexes(n, 6), md5s, strict=True)):
            f.write(
                f'"{a.upper()}{i:08X}","{b.upper()}",'
                f'"{int(rng.integers(1 << 32)):08X}","file_{i}.dll",{i},'
                f'{int(rng.integers(1000))},"{int(rng.integers(50))}",""\n'
            )
    with open(os.path.join(root, "NSRLProd.txt"), "w") as f:
        f.write(
            '"ProductCode","ProductName","ProductVersion","OpSystemCode",'
            '"MfgCode","Language","ApplicationType"\n'
        )
        f.writelines(
            f'{p},"Product {p}","{p % 7}.0","{p % 50}","{p % 30}","English","Utility"\n'
            for p in range(1000)
        )
    with open(os.path.join(root, "NSRLOS.txt"), "w") as f:
        f.write('"OpSystemCode","OpSystemName","OpSystemVersion","MfgCode"\n')
        f.writelines(f'"{o}","OS {o}","{o}","{o % 30}"\n' for o in range(50))
    with open(os.path.join(root, "NSRLMfg.txt"), "w") as f:
        f.write('"MfgCode","MfgName"\n')
        f.writelines(f'"{m}","Maker {m}"\n' for m in range(30))
    with open(os.path.join(root, "version.txt"), "w") as f:
        f.write("RDS Version 2.99 - synthetic\n")
    hashlookup.build_dataset({"nsrl": root}, out)
    return out


def server(d: str, n: int) -> None:
    from hashlookup.server import _check

    try:  # the service's answerer (CIRCL's shape for datasets with attributes)
        from hashlookup.server._circl import CirclSingleHits as Hits
    except ImportError:  # a build without it
        Hits = _check.SingleHits  # type: ignore[misc]
    lookup(d, n) if not os.path.exists(os.path.join(d, "plain.hld")) else None
    plain_keys = _hexes(n, 1)
    cases = [("plain", os.path.join(d, "plain.hld"), plain_keys)]
    cases.append(("rds2", _rds2(d, n), _hexes(n, 7)))
    misses = _hexes(100_000, 2)
    for name, path, keys in cases:
        hits = keys[:: max(1, n // 100_000)][:100_000]
        with hashlookup.open_dataset(path) as ds:
            answerer = Hits(ds)
            answerer.prepare()
            answer = answerer.answer
            assert all(isinstance(answer("md5", h), bytes) for h in hits[:100])
            for kind, qs in (("hits", hits), ("misses", misses)):
                best = min(
                    timeit.repeat(
                        lambda qs=qs, answer=answer: [answer("md5", q) for q in qs],
                        number=1,
                        repeat=5,
                    )
                )
                print(
                    f"{Hits.__module__}.{Hits.__name__} {name}: {kind}: "
                    f"{best / len(qs) * 1e9:.0f} ns/answer"
                )


if __name__ == "__main__":
    what, d = sys.argv[1], sys.argv[2]
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000
    os.makedirs(d, exist_ok=True)
    {"lookup": lookup, "size": size, "server": server}[what](d, count)
