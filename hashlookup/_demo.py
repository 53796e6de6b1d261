"""``hashlookup demo``: an end-to-end run on synthetic data.

1. Writes ``known.txt``: ``keys`` synthetic md5 digests (random 16-byte keys from
   ``numpy.random.default_rng(20240601)``) plus the md5 digests of the first
   ``stdlib_known`` ``.py`` files of the Python standard library (sorted by path):
   harmless real files standing in for "known" files.
2. Builds ``known.hlx`` from it with :func:`hashlookup.build_index` (timed).
3. Writes ``inventory.md5``: ``md5sum``-style lines for every readable ``.py`` file
   of the standard library, spread among ``inventory`` random non-member digests
   (``<hex>  blob/0000001.bin`` lines).
4. Opens the index and matches the inventory with the same code as
   ``hashlookup match`` (timed), then prints the numbers and the first hits.

The demo checks its own result (the number of hits must equal the number of
inventory files whose content is one of the known files) and exits 0 when it
does, although hits were found: finding them is the point of the demo.
"""

from __future__ import annotations

import binascii
import hashlib
import os
import sys
import sysconfig
import time
from pathlib import Path
from typing import TextIO

import numpy as np
import numpy.typing as npt

SEED = 20240601
DIGEST_WIDTH = 16  # md5


def stdlib_py_files() -> tuple[Path, list[Path]]:
    """The standard library directory and its ``.py`` files, sorted by path
    (third-party ``site-packages``/``dist-packages`` and ``__pycache__`` excluded)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files: list[Path] = []
    skip = {"site-packages", "dist-packages", "__pycache__"}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in skip]
        files.extend(Path(dirpath, f) for f in filenames if f.endswith(".py"))
    files.sort(key=str)
    return root, files


def _md5_files(paths: list[Path]) -> list[tuple[Path, bytes]]:
    """(path, raw md5) of every readable file in order; unreadable ones are skipped."""
    result = []
    for path in paths:
        try:
            with open(path, "rb") as f:
                digest = hashlib.md5(f.read(), usedforsecurity=False).digest()
        except OSError:
            continue
        result.append((path, digest))
    return result


def _hex_rows(keys: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Lowercase hex of each key as a (n, 2*width) uint8 array of ASCII."""
    n, width = keys.shape
    hexed = binascii.hexlify(np.ascontiguousarray(keys).tobytes())
    return np.frombuffer(hexed, dtype=np.uint8).reshape(n, 2 * width)


def _digest_lines(keys: npt.NDArray[np.uint8]) -> bytes:
    """``<hex>\\n`` for each key."""
    hexed = _hex_rows(keys)
    lines = np.empty((hexed.shape[0], hexed.shape[1] + 1), dtype=np.uint8)
    lines[:, :-1] = hexed
    lines[:, -1] = ord("\n")
    return lines.tobytes()


def _md5sum_blob_lines(keys: npt.NDArray[np.uint8]) -> tuple[bytes, int]:
    """``<hex>  blob/NNNNNNN.bin\\n`` for each key (vectorised); returns the bytes
    and the fixed line length."""
    n = keys.shape[0]
    digits = max(7, len(str(n)))
    hexed = _hex_rows(keys)
    prefix = np.frombuffer(b"  blob/", dtype=np.uint8)
    suffix = np.frombuffer(b".bin\n", dtype=np.uint8)
    hw = hexed.shape[1]
    length = hw + prefix.size + digits + suffix.size
    lines = np.empty((n, length), dtype=np.uint8)
    lines[:, :hw] = hexed
    col = hw
    lines[:, col : col + prefix.size] = prefix
    col += prefix.size
    numbers = np.arange(1, n + 1, dtype=np.int64)
    for k in range(digits):
        lines[:, col + k] = (numbers // 10 ** (digits - 1 - k)) % 10 + ord("0")
    col += digits
    lines[:, col:] = suffix
    return lines.tobytes(), length


def _fmt_rate(count: float, seconds: float) -> str:
    if seconds <= 0:
        return "n/a"
    rate = count / seconds
    if rate >= 1e6:
        return f"{rate / 1e6:.2f} M"
    if rate >= 1e3:
        return f"{rate / 1e3:.1f} k"
    return f"{rate:.0f} "


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _fmt_size(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB" if n >= 1 << 20 else f"{n / 1024:.1f} KiB"


def run_demo(
    directory: str | os.PathLike[str] = "demo",
    *,
    keys: int = 1_400_000,
    inventory: int = 1_000_000,
    stdlib_known: int = 300,
    threads: int = 1,
    out: TextIO | None = None,
) -> int:
    """Run the demo in ``directory``; print a report to ``out`` (default stdout).

    Returns 0 when the matcher found exactly the expected hits, 2 otherwise.
    """
    from . import build_index, open_index
    from ._match import MatchStats, match_chunks

    if out is None:
        out = sys.stdout

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    workdir = Path(directory)
    workdir.mkdir(parents=True, exist_ok=True)
    known_txt = workdir / "known.txt"
    index_path = workdir / "known.hlx"
    inventory_path = workdir / "inventory.md5"
    rng = np.random.default_rng(SEED)

    say(f"hashlookup demo in {workdir}/")

    # 1. the known list -------------------------------------------------------
    t0 = time.perf_counter()
    root, py_files = stdlib_py_files()
    hashed = _md5_files(py_files)  # every readable stdlib .py file
    known_files = hashed[:stdlib_known]
    known_digests = {d for _, d in known_files}
    members = rng.integers(0, 256, size=(keys, DIGEST_WIDTH), dtype=np.uint8)
    with open(known_txt, "wb") as f:
        f.write(b"# hashlookup demo: synthetic md5 digests + md5 of stdlib files\n")
        f.write(_digest_lines(members))
        if known_files:
            f.write(
                _digest_lines(
                    np.frombuffer(
                        b"".join(d for _, d in known_files), dtype=np.uint8
                    ).reshape(-1, DIGEST_WIDTH)
                )
            )
    t_known = time.perf_counter() - t0
    say(
        f"known list   {known_txt}: {keys:,} synthetic + {len(known_files)} stdlib "
        f"md5 digests ({_fmt_size(known_txt.stat().st_size)}, "
        f"written in {t_known:.2f} s)"
    )

    # 2. build ------------------------------------------------------------------
    t0 = time.perf_counter()
    report = build_index(str(known_txt), str(index_path), algorithm="md5")
    t_build = time.perf_counter() - t0
    say(
        f"build        {index_path}: {report.unique_keys:,} unique keys "
        f"({_plural(report.duplicates, 'duplicate')}) in {t_build:.2f} s "
        f"= {_fmt_rate(report.input_keys, t_build)}keys/s"
    )
    say(
        f"index size   {_fmt_size(report.file_size)} ({report.file_size:,} bytes, "
        f"{report.file_size / max(report.unique_keys, 1):.1f} bytes/key)"
    )

    # 3. the inventory ------------------------------------------------------------
    t0 = time.perf_counter()
    others = rng.integers(0, 256, size=(inventory, DIGEST_WIDTH), dtype=np.uint8)
    blob_bytes, blob_len = _md5sum_blob_lines(others)
    stdlib_lines = [
        d.hex().encode("ascii") + b"  " + os.fsencode(p) + b"\n" for p, d in hashed
    ]
    # spread the stdlib lines (in path order) among the random ones
    positions = np.sort(rng.integers(0, inventory + 1, size=len(stdlib_lines)))
    pieces: list[bytes | memoryview] = []
    view = memoryview(blob_bytes)
    prev = 0
    for pos, stdlib_line in zip(positions.tolist(), stdlib_lines, strict=True):
        if pos > prev:
            pieces.append(view[prev * blob_len : pos * blob_len])
            prev = pos
        pieces.append(stdlib_line)
    pieces.append(view[prev * blob_len :])
    with open(inventory_path, "wb") as f:
        f.write(b"".join(pieces))
    del pieces, view, blob_bytes
    expected = sum(1 for _, d in hashed if d in known_digests)
    total_lines = inventory + len(stdlib_lines)
    t_inv = time.perf_counter() - t0
    say(
        f"inventory    {inventory_path}: {total_lines:,} md5sum lines "
        f"({len(stdlib_lines)} stdlib .py files from {root} + {inventory:,} random), "
        f"{_fmt_size(inventory_path.stat().st_size)}, written in {t_inv:.2f} s"
    )

    # 4. open + match --------------------------------------------------------------
    t0 = time.perf_counter()
    index = open_index(str(index_path))
    t_open = time.perf_counter() - t0
    first_hits: list[str] = []
    stats = MatchStats()
    try:
        say(
            f"open         {t_open * 1e3:.2f} ms "
            f"({len(index):,} keys, {index.algorithm})"
        )
        t0 = time.perf_counter()
        with open(inventory_path, "rb") as stream:
            for chunk in match_chunks(
                index, stream, name=str(inventory_path), threads=threads, stats=stats
            ):
                if len(first_hits) < 10:
                    for i in chunk.select()[: 10 - len(first_hits)].tolist():
                        text = chunk.line_bytes(i).decode("utf-8", "surrogateescape")
                        fields = text.split(None, 1)
                        first_hits.append(fields[-1].lstrip("*"))
        t_match = time.perf_counter() - t0
    finally:
        index.close()
    say(
        f"match        {stats.lines:,} lines in {t_match:.2f} s "
        f"= {_fmt_rate(stats.lines, t_match)}lines/s ({_fmt_size(stats.bytes)}, "
        f"{_plural(stats.chunks, 'chunk')}, {_plural(threads, 'thread')})"
    )
    say(
        f"hits         {stats.hits:,} (expected {expected:,}: inventory files whose "
        f"content is one of the {len(known_files)} known stdlib files)"
    )
    if first_hits:
        say("first hits:")
        for hit in first_hits:
            say(f"  {hit}")
    if stats.hits != expected:
        print(
            f"hashlookup: error: demo found {stats.hits} hits, expected {expected}",
            file=sys.stderr,
        )
        return 2
    say()
    say("Demo succeeded (exit status 0). Finding these hits is the expected result;")
    say(
        f"`hashlookup match {index_path} {inventory_path}` would exit 1 "
        "because it found hits."
    )
    return 0
