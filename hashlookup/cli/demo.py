"""``hashlookup demo``: an end-to-end run on synthetic data.

Nothing here is a real hash list: the "known" digests are random numbers from
``numpy.random.default_rng(20240601)`` plus the digests of harmless files, the
``.py`` files of the Python standard library standing in for known files.

1. Writes three known-hash lists in three formats, as a hotline or a police force
   would receive them (``stdlib`` = the ``.py`` files of the standard library,
   sorted by path, first ``stdlib_known`` of them = the known ones):

   * ``police.txt`` -- a plain md5 list: ``keys`` synthetic digests plus the md5
     of the first two thirds of the known stdlib files;
   * ``hotline.hashdeep`` -- hashdeep output (size, md5, sha256, file name):
     ``keys // 4`` synthetic records, half of which list an md5 of the police
     list (the same file: the records merge), plus the last two thirds of the
     known stdlib files, so both lists share the middle third;
   * ``partner.csv`` -- CSV with a ``Category`` column: ``keys // 28`` synthetic
     sha1-only rows plus md5 + sha1 of the last sixth of the known stdlib files;

   and ``allow.txt``, an allow-list with the md5 of one known stdlib file that
   is on both the police and the hotline lists (it must never match).
2. Builds the dataset ``known.hlds`` from them with :func:`hashlookup.build_dataset`
   (timed): sources ``police``, ``hotline``, ``partner``; labels ``source:*`` and
   ``category:*``; the allow-listed file suppressed.
3. Prints a summary: records, keys per algorithm, labels, suppressed records per
   source, and the record of one stdlib file found by its sha256.
4. Writes ``inventory.md5``: ``md5sum``-style lines for every readable ``.py`` file
   of the standard library, spread among ``inventory`` random non-member digests
   (``<hex>  blob/0000001.bin`` lines).
5. Opens the dataset and matches the inventory against its md5 table with the
   same code as ``hashlookup match`` (timed), then prints the numbers and the
   first hits.

The demo checks its own result (the number of hits must equal the number of
inventory files whose content is one of the known files, the allow-listed one
excepted) and exits 0 when it does, although hits were found: finding them is the
point of the demo.
"""

from __future__ import annotations

import argparse
import binascii
import hashlib
import os
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
import numpy.typing as npt

from hashlookup.algorithms import MD5, SHA1, SHA256
from hashlookup.cli._common import Context
from hashlookup.cli._options import add_lookup_threads, int_arg

DESCRIPTION = (
    "Build a dataset from three synthetic known-hash lists (a plain md5 list, "
    "hashdeep output, a CSV with categories) that also list ~300 Python "
    "standard library files, with an allow-list; then match an inventory of "
    "all the standard library's .py files and random digests against it, "
    "printing a summary and timings."
)

SEED = 20240601
DIGEST_WIDTH = MD5.width  # the inventory's algorithm


@dataclass(frozen=True)
class FileDigests:
    """Digests and size of one real (harmless) file."""

    path: Path
    md5: bytes
    sha1: bytes
    sha256: bytes
    size: int


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


def _hash_files(paths: list[Path]) -> list[FileDigests]:
    """Digests of every readable file in order; unreadable ones are skipped."""
    result = []
    for path in paths:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            continue
        result.append(
            FileDigests(
                path,
                hashlib.md5(data, usedforsecurity=False).digest(),
                hashlib.sha1(data, usedforsecurity=False).digest(),
                hashlib.sha256(data).digest(),
                len(data),
            )
        )
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


def _numbered_lines(
    columns: list[npt.NDArray[np.uint8] | bytes | None], n: int, digits: int = 7
) -> bytes:
    """Fixed-length lines (vectorised): each column is a (n, k) uint8 array of
    ASCII, a constant ``bytes`` piece, or None, which stands for the row number
    (1-based, zero-padded to ``digits``)."""
    parts: list[npt.NDArray[np.uint8]] = []
    for col in columns:
        if col is None:
            parts.append(_decimal_rows(np.arange(1, n + 1, dtype=np.int64), digits))
        elif isinstance(col, bytes):
            parts.append(
                np.broadcast_to(np.frombuffer(col, dtype=np.uint8), (n, len(col)))
            )
        else:
            parts.append(col)
    if n == 0:
        return b""
    return np.ascontiguousarray(np.hstack(parts)).tobytes()


def _decimal_rows(values: npt.NDArray[np.int64], digits: int) -> npt.NDArray[np.uint8]:
    """Zero-padded decimal ASCII of non-negative values, (n, digits)."""
    out = np.empty((values.shape[0], digits), dtype=np.uint8)
    for k in range(digits):
        out[:, k] = (values // 10 ** (digits - 1 - k)) % 10 + ord("0")
    return out


def _md5sum_blob_lines(keys: npt.NDArray[np.uint8]) -> tuple[bytes, int]:
    """``<hex>  blob/NNNNNNN.bin\\n`` for each key (vectorised); returns the bytes
    and the fixed line length."""
    n = keys.shape[0]
    digits = max(7, len(str(n)))
    data = _numbered_lines(
        [_hex_rows(keys), b"  blob/", None, b".bin\n"], n, digits=digits
    )
    return data, 2 * keys.shape[1] + len(b"  blob/") + digits + len(b".bin\n")


def _random_keys(rng: np.random.Generator, n: int, width: int) -> npt.NDArray[np.uint8]:
    return rng.integers(0, 256, size=(n, width), dtype=np.uint8)


def _stack(rows: list[bytes], width: int) -> npt.NDArray[np.uint8]:
    return np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(len(rows), width)


def write_police(
    path: Path, synthetic: npt.NDArray[np.uint8], files: list[FileDigests]
) -> None:
    """A plain md5 list (one lowercase hex digest per line, a comment first)."""
    with open(path, "wb") as f:
        f.write(b"# police list (hashlookup demo): synthetic digests + stdlib files\n")
        f.write(_digest_lines(synthetic))
        if files:
            f.write(_digest_lines(_stack([x.md5 for x in files], MD5.width)))


def write_hotline(
    path: Path,
    md5: npt.NDArray[np.uint8],
    sha256: npt.NDArray[np.uint8],
    sizes: npt.NDArray[np.int64],
    files: list[FileDigests],
    root: Path,
) -> None:
    """hashdeep output: ``size,md5,sha256,filename`` lines after the header
    (synthetic sizes have 8 digits)."""
    n = md5.shape[0]
    with open(path, "wb") as f:
        f.write(
            b"%%%% HASHDEEP-1.0\n"
            b"%%%% size,md5,sha256,filename\n"
            b"## Invoked from: /srv/hotline\n"
            b"## $ hashdeep -c md5,sha256 -r .\n"
            b"##\n"
        )
        f.write(
            _numbered_lines(
                [
                    _decimal_rows(sizes, 8),
                    b",",
                    _hex_rows(md5),
                    b",",
                    _hex_rows(sha256),
                    b",./reports/",
                    None,
                    b".jpg\n",
                ],
                n,
            )
        )
        for x in files:
            name = os.fsencode(x.path.relative_to(root))
            f.write(
                b"%d,%s,%s,./stdlib/%s\n"
                % (x.size, x.md5.hex().encode(), x.sha256.hex().encode(), name)
            )


def write_partner(
    path: Path,
    sha1: npt.NDArray[np.uint8],
    categories: npt.NDArray[np.int64],
    files: list[FileDigests],
) -> None:
    """CSV with a header: ``MD5,SHA-1,Category,FileName`` (md5 empty for the
    synthetic rows)."""
    n = sha1.shape[0]
    with open(path, "wb") as f:
        f.write(b"MD5,SHA-1,Category,FileName\n")
        f.write(
            _numbered_lines(
                [
                    b",",
                    _hex_rows(sha1),
                    b",",
                    _decimal_rows(categories, 1),
                    b",item",
                    None,
                    b".bin\n",
                ],
                n,
            )
        )
        f.writelines(
            b"%s,%s,%d,%s\n"
            % (
                x.md5.hex().encode(),
                x.sha1.hex().encode(),
                1 + i % 3,
                x.path.name.encode("utf-8", "surrogateescape"),
            )
            for i, x in enumerate(files)
        )


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
    from hashlookup import build_dataset, open_dataset
    from hashlookup.match.keys import MatchStats, match_chunks

    if out is None:
        out = sys.stdout

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    workdir = Path(directory)
    workdir.mkdir(parents=True, exist_ok=True)
    police_path = workdir / "police.txt"
    hotline_path = workdir / "hotline.hashdeep"
    partner_path = workdir / "partner.csv"
    allow_path = workdir / "allow.txt"
    dataset_path = workdir / "known.hlds"
    inventory_path = workdir / "inventory.md5"
    rng = np.random.default_rng(SEED)

    say(f"hashlookup demo in {workdir}/")

    # 1. the known lists --------------------------------------------------------
    t0 = time.perf_counter()
    root, py_files = stdlib_py_files()
    hashed = _hash_files(py_files)  # every readable stdlib .py file
    known = hashed[:stdlib_known]
    third = len(known) // 3
    police_files = known[: 2 * third]
    hotline_files = known[third:]
    partner_files = known[len(known) - len(known) // 6 :]
    md5_count: dict[bytes, int] = {}
    for x in hashed:
        md5_count[x.md5] = md5_count.get(x.md5, 0) + 1
    # the allow-listed file: on both lists, not empty, its content unique
    shared = known[third : 2 * third]
    allowed = next((x for x in shared if x.size and md5_count[x.md5] == 1), None)

    police_keys = _random_keys(rng, keys, MD5.width)
    n_hotline = keys // 4
    hotline_md5 = _random_keys(rng, n_hotline, MD5.width)
    overlap = n_hotline // 2
    if overlap:
        hotline_md5[:overlap] = police_keys[
            np.sort(rng.choice(keys, size=overlap, replace=False))
        ]
    hotline_sha256 = _random_keys(rng, n_hotline, SHA256.width)
    hotline_sizes = rng.integers(10**7, 10**8, size=n_hotline, dtype=np.int64)
    n_partner = keys // 28
    partner_sha1 = _random_keys(rng, n_partner, SHA1.width)
    partner_categories = rng.integers(1, 4, size=n_partner, dtype=np.int64)

    write_police(police_path, police_keys, police_files)
    write_hotline(
        hotline_path, hotline_md5, hotline_sha256, hotline_sizes, hotline_files, root
    )
    write_partner(partner_path, partner_sha1, partner_categories, partner_files)
    with open(allow_path, "wb") as f:
        f.write(b"# allow-list: files that must never match\n")
        if allowed is not None:
            f.write(allowed.md5.hex().encode() + b"\n")
    t_lists = time.perf_counter() - t0
    say(
        f"police       {police_path}: {keys:,} synthetic + {len(police_files)} "
        f"stdlib md5 digests (plain list, {_fmt_size(police_path.stat().st_size)})"
    )
    say(
        f"hotline      {hotline_path}: {n_hotline:,} synthetic ({overlap:,} also on "
        f"the police list) + {len(hotline_files)} stdlib records with size, md5 "
        f"and sha256 (hashdeep, {_fmt_size(hotline_path.stat().st_size)})"
    )
    say(
        f"partner      {partner_path}: {n_partner:,} synthetic sha1 + "
        f"{len(partner_files)} stdlib md5+sha1 rows with a Category column (CSV, "
        f"{_fmt_size(partner_path.stat().st_size)})"
    )
    allowed_name = allowed.path.relative_to(root) if allowed is not None else "-"
    say(
        f"allow-list   {allow_path}: md5 of {allowed_name} (on both lists; must "
        f"never match); lists written in {t_lists:.2f} s"
    )

    # 2. build -------------------------------------------------------------------
    t0 = time.perf_counter()
    report = build_dataset(
        [
            ("police", str(police_path)),
            ("hotline", str(hotline_path)),
            ("partner", str(partner_path)),
        ],
        str(dataset_path),
        name="demo",
        allow=[str(allow_path)],
        label_columns={"category": "Category"},
        generation=1,
    )
    t_build = time.perf_counter() - t0
    read = sum(report.inputs.values())
    say(
        f"build        {dataset_path}: {report.records:,} records from {read:,} "
        f"input records ({report.merged:,} merged) in {t_build:.2f} s "
        f"= {_fmt_rate(read, t_build)}records/s"
    )
    total_keys = sum(report.keys.values())
    say(
        f"file size    {_fmt_size(report.file_size)} ({report.file_size:,} bytes, "
        f"{report.file_size / max(total_keys, 1):.1f} bytes/key; keys: "
        + ", ".join(f"{a} {n:,}" for a, n in report.keys.items())
        + ")"
    )

    # 3. what is in it -----------------------------------------------------------
    with open_dataset(str(dataset_path)) as ds:
        labels = ds.labels()
        say(
            "labels       "
            + ", ".join(f"{name} {count:,}" for name, count in sorted(labels.items()))
        )
        say(
            "suppressed   "
            + ", ".join(f"{src} {n}" for src, n in report.suppressed.items())
            + " (records left out by the allow-list)"
        )
        example = next(
            (x for x in partner_files if md5_count[x.md5] == 1 and x is not allowed),
            None,
        )
        if example is not None:
            m = ds.lookup(example.sha256)
            if m is not None:
                say(
                    f"example      sha256 of {example.path.relative_to(root)} -> "
                    f"record {m.record_id}: md5 {m.md5}, sha1 {m.sha1}, size "
                    f"{m.size}, labels {', '.join(m.labels)}"
                )
        if allowed is not None:
            gone = ds.lookup(allowed.sha256) is None and ds.lookup(allowed.md5) is None
            say(
                f"allow-listed {allowed_name}: "
                + ("not in the dataset" if gone else "FOUND (wrong)")
            )

    # 4. the inventory -----------------------------------------------------------
    t0 = time.perf_counter()
    others = rng.integers(0, 256, size=(inventory, DIGEST_WIDTH), dtype=np.uint8)
    blob_bytes, blob_len = _md5sum_blob_lines(others)
    stdlib_lines = [
        x.md5.hex().encode("ascii") + b"  " + os.fsencode(x.path) + b"\n"
        for x in hashed
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
    known_md5 = {x.md5 for x in known}
    if allowed is not None:
        known_md5.discard(allowed.md5)
    expected = sum(1 for x in hashed if x.md5 in known_md5)
    total_lines = inventory + len(stdlib_lines)
    t_inv = time.perf_counter() - t0
    say(
        f"inventory    {inventory_path}: {total_lines:,} md5sum lines "
        f"({len(stdlib_lines)} stdlib .py files from {root} + {inventory:,} random), "
        f"{_fmt_size(inventory_path.stat().st_size)}, written in {t_inv:.2f} s"
    )

    # 5. open + match --------------------------------------------------------------
    t0 = time.perf_counter()
    ds = open_dataset(str(dataset_path))
    t_open = time.perf_counter() - t0
    first_hits: list[str] = []
    stats = MatchStats()
    try:
        say(
            f"open         {t_open * 1e3:.2f} ms ({len(ds):,} records, "
            f"{', '.join(ds.algorithms)} tables)"
        )
        t0 = time.perf_counter()
        with open(inventory_path, "rb") as stream:
            for chunk in match_chunks(
                ds, stream, name=str(inventory_path), threads=threads, stats=stats
            ):
                if len(first_hits) < 10:
                    for i in chunk.select()[: 10 - len(first_hits)].tolist():
                        text = chunk.line_bytes(i).decode("utf-8", "surrogateescape")
                        fields = text.split(None, 1)
                        first_hits.append(fields[-1].lstrip("*"))
        t_match = time.perf_counter() - t0
    finally:
        ds.close()
    say(
        f"match        {stats.lines:,} lines in {t_match:.2f} s "
        f"= {_fmt_rate(stats.lines, t_match)}lines/s ({_fmt_size(stats.bytes)}, "
        f"{_plural(stats.chunks, 'chunk')}, {_plural(threads, 'thread')}, "
        f"{stats.algorithm or 'md5'} table)"
    )
    say(
        f"hits         {stats.hits:,} (expected {expected:,}: inventory files whose "
        f"content is one of the {len(known)} known stdlib files, the allow-listed "
        "one excepted)"
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
        f"`hlookup match {dataset_path} {inventory_path}` would exit 1 "
        "because it found hits."
    )
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Register the options of ``demo``."""
    p.add_argument("--dir", default="demo", help="working directory (default: ./demo)")
    p.add_argument(
        "--keys",
        type=int_arg(0),
        default=1_400_000,
        metavar="N",
        help="synthetic digests on the police list; the hotline and partner lists "
        "get N/4 and N/28 (default: 1400000)",
    )
    p.add_argument(
        "--inventory",
        type=int_arg(0),
        default=1_000_000,
        metavar="N",
        help="random non-member digests in the inventory (default: 1000000)",
    )
    add_lookup_threads(p)


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Run the demo in ``--dir``, its report on stdout."""
    ctx.out.flush()
    return run_demo(
        args.dir,
        keys=args.keys,
        inventory=args.inventory,
        threads=args.threads,
        out=sys.stdout,
    )
