"""Helpers of the near-match tests: synthetic PDQ sets with planted
neighbours, datasets built from them through a CSV (the real build path),
and the brute-force numpy oracle.  Fixed seeds; no real hash lists."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import hashlookup

#: popcount of every byte value
POPCOUNT = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(1)


def flip(h: np.ndarray, bits: int, rng: np.random.Generator) -> np.ndarray:
    """A copy of the 32-byte hash h with exactly `bits` distinct bits flipped."""
    out = h.copy()
    for b in rng.choice(256, size=bits, replace=False):
        out[b // 8] ^= np.uint8(0x80 >> (b % 8))
    return out


def planted_set(
    n: int, seed: int, centers: int = 8, max_plant: int = 70
) -> tuple[np.ndarray, np.ndarray]:
    """(hashes (n, 32), centers (k, 32)): random hashes, and around each
    center neighbours planted at every distance 0..max_plant (as far as n
    allows), two duplicated hashes, an all-zero and an all-one hash."""
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    c = rng.integers(0, 256, (centers, 32), dtype=np.uint8)
    slots = rng.permutation(n)
    k = 0
    for i in range(centers):
        for d in range(0, max_plant + 1, 1 + i % 3):
            if k >= n - 6:
                break
            h[slots[k]] = flip(c[i], d, rng)
            k += 1
    if n >= 8:
        h[slots[-1]] = 0
        h[slots[-2]] = 255
        h[slots[-3]] = h[slots[-4]] = h[slots[-5]]  # one hash on three records
    return h, c


def oracle(
    queries: np.ndarray,
    hashes: np.ndarray,
    quality: np.ndarray,
    max_distance: int,
    min_quality: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query, record, distance) by brute force: per query nearest first,
    then by record (record i has hashes[i])."""
    d = POPCOUNT[queries[:, None, :] ^ hashes[None, :, :]].sum(axis=2)
    ok = (d <= max_distance) & (quality[None, :] >= min_quality)
    qi, ri = np.nonzero(ok)
    dist = d[qi, ri]
    order = np.lexsort((ri, dist, qi))
    return qi[order], ri[order], dist[order]


def write_csv(
    path: Path,
    hashes: np.ndarray,
    quality: np.ndarray | None = None,
    seed: int = 0,
    labels: list[str] | None = None,
) -> np.ndarray:
    """A CSV of one record per hash (random md5, pdq, quality, optional
    category column); returns the md5s."""
    rng = np.random.default_rng(seed + 1_000_003)
    md5 = rng.integers(0, 256, (len(hashes), 16), dtype=np.uint8)
    cols = ["md5", "pdq"] + (["quality"] if quality is not None else [])
    cols += ["category"] if labels is not None else []
    lines = [",".join(cols)]
    for i in range(len(hashes)):
        row = [md5[i].tobytes().hex(), hashes[i].tobytes().hex()]
        if quality is not None:
            row.append(str(int(quality[i])))
        if labels is not None:
            row.append(labels[i])
        lines.append(",".join(row))
    path.write_text("\n".join(lines) + "\n")
    return md5


def build(
    tmp: Path,
    hashes: np.ndarray,
    quality: np.ndarray | None = None,
    name: str = "near",
    labels: list[str] | None = None,
    seed: int = 0,
) -> Path:
    """A dataset of one record per hash (record i has hashes[i])."""
    csv = tmp / f"{name}.csv"
    write_csv(csv, hashes, quality, seed, labels)
    out = tmp / f"{name}.hlds"
    kw = {"label_columns": {"category": "category"}} if labels is not None else {}
    hashlookup.build_dataset({name: str(csv)}, out, **kw)
    return out
