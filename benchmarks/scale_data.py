"""Synthetic inputs for the scale benchmarks, written fast with numpy.

hashdeep files (``%%%% size,md5,sha1,sha256,filename`` lines) of N records
whose digests are drawn from a seeded generator, and the same digests again
on demand (for the answers' check) without keeping them in memory: block
`b` of 1,000,000 records always comes from the generator seeded with
(seed, b).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

BLOCK = 1_000_000
WIDTHS = {"md5": 16, "sha1": 20, "sha256": 32}
_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)


def block_digests(seed: int, block: int, n: int) -> dict[str, np.ndarray]:
    """The digests (and sizes) of records block*BLOCK .. +n."""
    rng = np.random.default_rng([seed, block])
    out = {a: rng.integers(0, 256, (n, w), dtype=np.uint8) for a, w in WIDTHS.items()}
    out["size"] = rng.integers(0, 10**10, n, dtype=np.int64)
    return out


def blocks(records: int, seed: int) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """(first record, digests) of every block of `records` records."""
    for b, start in enumerate(range(0, records, BLOCK)):
        yield start, block_digests(seed, b, min(BLOCK, records - start))


def _hex(d: np.ndarray) -> np.ndarray:
    n, w = d.shape
    out = np.empty((n, 2 * w), np.uint8)
    out[:, 0::2] = _HEX[d >> 4]
    out[:, 1::2] = _HEX[d & 15]
    return out


def _decimal(values: np.ndarray, digits: int) -> np.ndarray:
    out = np.empty((len(values), digits), np.uint8)
    v = values.copy()
    for i in range(digits - 1, -1, -1):
        out[:, i] = 48 + v % 10
        v //= 10
    return out


def hashdeep_lines(start: int, d: dict[str, np.ndarray]) -> bytes:
    """The hashdeep lines of one block: size (10 digits), md5, sha1,
    sha256, file name /f/NNNNNNNNNN."""
    n = len(d["md5"])
    fields = [
        _decimal(d["size"], 10),
        _hex(d["md5"]),
        _hex(d["sha1"]),
        _hex(d["sha256"]),
        np.frombuffer(b"/f/", np.uint8)[None, :].repeat(n, 0),
        _decimal(np.arange(start, start + n, dtype=np.int64), 10),
    ]
    cols = []
    for i, f in enumerate(fields):
        cols.append(f)
        if i < 4:
            cols.append(np.full((n, 1), ord(","), np.uint8))
    cols.append(np.full((n, 1), ord("\n"), np.uint8))
    return np.hstack(cols).tobytes()


HEADER = b"%%%% HASHDEEP-1.0\n%%%% size,md5,sha1,sha256,filename\n"
LINE_BYTES = 10 + 32 + 40 + 64 + 3 + 10 + 5  # fields, 4 commas and a newline


def hashdeep_size(records: int) -> int:
    """The size in bytes of write_hashdeep's file of `records` records."""
    return len(HEADER) + LINE_BYTES * records


def write_hashdeep(path: str, records: int, seed: int) -> None:
    """A hashdeep file of `records` records."""
    with open(path, "wb") as f:
        f.write(HEADER)
        for start, d in blocks(records, seed):
            f.write(hashdeep_lines(start, d))
