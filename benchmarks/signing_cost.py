#!/usr/bin/env python3
"""What require_signature= costs when opening a dataset (docs/SIGNING.md).

Run from the repository root::

    .venv/bin/python benchmarks/signing_cost.py [--keys 1400000] [--repeat 5]

Builds a dataset of N random md5 digests (fixed seed; one source, so N
records) in a temporary directory, signs it, and times, interleaved round
by round (best of --repeat, page cache warm):

* open_dataset() without a signature check (O(1): map + header);
* open_dataset(require_signature=KEY.pub): SHA-256 of every byte in 4 MiB
  chunks on the hashlookup thread pool, then one Ed25519 verification;
* Dataset.verify(): every xxh3 checksum plus the structural checks;
* hashlib.sha256 of the whole file in one thread (the floor without chunks).

Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time

import numpy as np

import hashlookup


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=1_400_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as d:
        keys = np.random.default_rng(1400).integers(
            0, 256, (args.keys, 16), dtype=np.uint8
        )
        src = os.path.join(d, "police.md5")
        with open(src, "w") as f:
            f.write("\n".join(bytes(k).hex() for k in keys) + "\n")
        path = os.path.join(d, "known.hlds")
        hashlookup.build_dataset({"police": src}, path)
        pair = hashlookup.generate_signing_key(os.path.join(d, "key"))
        t = time.perf_counter()
        hashlookup.sign_dataset(path, pair.private_key)
        sign_s = time.perf_counter() - t
        size = os.path.getsize(path)

        def plain() -> None:
            hashlookup.open_dataset(path).close()

        def signed() -> None:
            hashlookup.open_dataset(path, require_signature=pair.public_key).close()

        def verify() -> None:
            with hashlookup.open_dataset(path) as ds:
                ds.verify()

        def sha256_one_thread() -> None:
            with open(path, "rb") as f:
                hashlib.sha256(f.read()).digest()

        cases = {
            "open_dataset (no check)": plain,
            "open_dataset(require_signature=...)": signed,
            "Dataset.verify() (xxh3 + structure)": verify,
            "hashlib.sha256 of the file, 1 thread": sha256_one_thread,
        }
        times = {name: float("inf") for name in cases}
        for r in range(args.repeat):  # interleaved, rotating order
            names = list(cases)
            names = names[r % len(names) :] + names[: r % len(names)]
            for name in names:
                times[name] = min(times[name], _best(cases[name], 1))

    mb = size / 1e6
    print(
        f"Dataset: {args.keys:,} md5 digests, file {mb:.1f} MB; "
        f"`hashlookup sign` {sign_s:.2f} s (includes a full verify).\n"
    )
    print("| operation | time | throughput |")
    print("|---|---:|---:|")
    for name, s in times.items():
        rate = f"{mb / s:,.0f} MB/s" if "no check" not in name else ""
        print(f"| {name} | {s * 1000:.1f} ms | {rate} |")
    extra = (
        times["open_dataset(require_signature=...)"] - times["open_dataset (no check)"]
    )
    print(
        f"\nSignature check adds {extra * 1000:.1f} ms per open "
        f"({extra / times['Dataset.verify() (xxh3 + structure)']:.2f}x a full "
        f"verify())."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
