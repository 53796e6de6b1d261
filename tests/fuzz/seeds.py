"""Seed inputs of the fuzz targets, generated from fixed seeds (nothing is
committed but the regression corpus): valid small files of every kind the
library reads, so that mutations start from inputs that reach deep code.

Each function returns a list of bytes in the target's input encoding (see
targets.py: most targets take one leading byte of flags, then the file).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import hashlookup
import importer_data as data

# Flag bits of the index and dataset targets (targets.py).
FIX_HEADER = 1
FIX_SECTIONS = 2


def _keys(n: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, 256, (n, width), dtype=np.uint8)
    if n > 4:  # a run of keys sharing a long prefix (skewed locator slots)
        keys[: n // 4, : max(1, width - 1)] = keys[0, : max(1, width - 1)]
    return keys


def index_files() -> list[bytes]:
    """Small index files of every algorithm, raw widths, with and without a
    Bloom filter and a first-level filter, empty and not."""
    out = []
    configs = [
        ("md5", 16),
        ("sha1", 20),
        ("sha256", 32),
        ("raw", 1),
        ("raw", 5),
        ("raw", 8),
        ("raw", 64),
    ]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "seed.hlx"
        for i, (alg, width) in enumerate(configs):
            for n, bloom, pre in (
                (0, 12.0, 4.0),
                (1, 12.0, 4.0),
                (40, 12.0, 0.0),
                (300, 0.0, 4.0),
                (300, 4.0, 1.0),
            ):
                if alg == "raw" and width == 1:
                    n = min(n, 200)
                kw = {"width": width} if alg == "raw" else {}
                hashlookup.build_index(
                    _keys(n, width, 100 * i + n),
                    path,
                    algorithm=alg,
                    bloom_bits_per_key=bloom,
                    bloom_hashes=8 if i % 2 else 3,
                    prefilter_bits_per_key=pre,
                    metadata={"seed": i},
                    **kw,
                )
                out.append(path.read_bytes())
    return out


def dataset_files() -> list[bytes]:
    """Datasets with records, labels (sources, categories, VICS flags), an
    allow-list, and every combination of tables."""
    out = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        table = data.make_table(30, seed=7, missing=0.3, categories=3)
        data.write_csv(d / "cat.csv", table, category_name="Category")
        data.write_text(d / "police.md5", data.make_table(12, seed=8), "md5")
        media, _ = data.make_vics(10, seed=9, version="2.0", sha256=True)
        data.write_vics(d / "vics.json", media, version="2.0")
        allow = d / "allow.txt"
        allow.write_text(table.hex("md5")[0] or table.hex("sha1")[0])
        ds = d / "seed.hlds"
        hashlookup.build_dataset(
            {
                "cat": str(d / "cat.csv"),
                "police": str(d / "police.md5"),
                "vics": str(d / "vics.json"),
            },
            ds,
            allow=[str(allow)],
            label_columns={"category": "Category"},
        )
        out.append(ds.read_bytes())
        hashlookup.build_dataset(
            {"police": str(d / "police.md5")}, ds, bloom_bits_per_key=0
        )
        out.append(ds.read_bytes())
        one = data.make_table(5, seed=10, algos=("sha1",))
        data.write_text(d / "one.sha1", one, "sha1")
        hashlookup.build_dataset([str(d / "one.sha1")], ds)
        out.append(ds.read_bytes())
    return out


def with_flags(files: list[bytes]) -> list[bytes]:
    """Each file once as is and once with its checksums to be fixed up."""
    return [bytes([0]) + f for f in files] + [
        bytes([FIX_HEADER | FIX_SECTIONS]) + f for f in files
    ]


def importer_files(fmt: str) -> list[bytes]:
    """Small valid inputs of one importer format, in several styles."""
    files = []
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "seed"
        t = data.make_table(6, seed=11, missing=0.3, categories=2)
        if fmt == "text":
            for algo, style, nl, upper, comments in (
                ("md5", "plain", "\n", False, True),
                ("sha1", "sum", "\r\n", True, False),
                ("sha256", "binsum", "\n", False, True),
            ):
                data.write_text(
                    p, t, algo, style=style, newline=nl, upper=upper, comments=comments
                )
                files.append(p.read_bytes())
            files.append(b"\\" + t.hex("md5")[0].encode() + b"  a\\nb\n")
        elif fmt == "hashdeep":
            for cols in (
                ("size", "md5", "sha256", "filename"),
                ("size", "md5", "sha1", "sha256", "tiger", "whirlpool", "filename"),
            ):
                data.write_hashdeep(p, t, cols, upper=len(cols) > 4)
                files.append(p.read_bytes())
        elif fmt == "csv":
            data.write_csv(p, t, category_name="Category")
            files.append(p.read_bytes())
            data.write_csv(p, t, delimiter=";", size_name=None, newline="\r\n")
            files.append(p.read_bytes())
            full = data.make_table(4, seed=12, algos=("md5", "sha1"))
            data.write_csv(
                p,
                full,
                names={"md5": "hash_md5", "sha1": "SHA-1"},
                encoding="utf-16-le",
                bom=True,
            )
            files.append(p.read_bytes())
        elif fmt == "vics":
            for version, bools, sha256 in (
                ("1.3", "mixed", False),
                ("2.0", "str", True),
            ):
                media, _ = data.make_vics(
                    4, seed=12, version=version, bools=bools, sha256=sha256
                )
                data.write_vics(p, media, version=version, indent=1)
                files.append(p.read_bytes())
        elif fmt == "sqlite":
            data.write_nsrl(p, t)
            files.append(p.read_bytes())
            p.unlink()
            data.write_nsrl(p, t, extra_tables=False, not_null=False)
            files.append(p.read_bytes())
        else:
            raise ValueError(fmt)
    # flag byte: 0 = strict, 1 = skip_invalid, 2 = detect the format
    return [bytes([flags]) + f for f in files for flags in (0, 1, 2)]


def digest_lines() -> list[bytes]:
    """Text for the line parser (flags byte, width byte, then the text)."""
    rng = np.random.default_rng(13)
    out = []
    for width in (16, 20, 32, 1, 64):
        keys = rng.integers(0, 256, (5, width), dtype=np.uint8)
        lines = [bytes(k).hex() for k in keys]
        lines[1] = lines[1].upper() + "  name with spaces"
        lines[2] = "\\" + lines[2] + " *bin"
        lines.insert(3, "# comment")
        lines.insert(4, "  \t")
        text = "\r\n".join(lines).encode()
        out += [bytes([0, width]) + text, bytes([1, width]) + text + b"\nzz\n"]
    return out


def batch_programs() -> list[bytes]:
    """Byte strings for the FuzzedDataProvider of the batch target."""
    rng = np.random.default_rng(14)
    out = [
        rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in (8, 64, 256, 1024)
    ]
    out.append(json.dumps({"x": "d41d8cd98f00b204e9800998ecf8427e"}).encode() * 4)
    return out
