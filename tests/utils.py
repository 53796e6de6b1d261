"""Helpers shared by the test modules (imported as ``utils``; tests/ is on sys.path).

Everything here is synthetic: keys come from ``numpy.random.default_rng(seed)`` with
fixed seeds, never from real hash lists.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import numpy as np

import hashlookup
from hashlookup.match.keys import match_chunks

TESTS_DIR = Path(__file__).resolve().parent

#: digest width in bytes of each named algorithm
ALGO_WIDTH = {"md5": 16, "sha1": 20, "sha256": 32}

#: raw widths the oracle tests cover (1, around the 8-byte sort prefix, the digest
#: widths, the maximum)
RAW_WIDTHS = (1, 7, 8, 9, 16, 20, 32, 64)

#: (algorithm, width) for every configuration the lookup tests run on
CONFIGS: list[tuple[str, int]] = list(ALGO_WIDTH.items()) + [
    ("raw", w) for w in RAW_WIDTHS
]


def config_id(cfg: tuple[str, int]) -> str:
    algo, width = cfg
    return algo if algo != "raw" else f"raw{width}"


CONFIG_IDS = [config_id(c) for c in CONFIGS]


# ---------------------------------------------------------------------------
# building


def build_kwargs(algorithm: str | None, width: int | None) -> dict:
    """Keyword arguments for ``build_index``: ``width=`` only goes with ``raw``."""
    kw: dict = {}
    if algorithm is not None:
        kw["algorithm"] = algorithm
    if algorithm == "raw":
        if width is None:
            raise ValueError("raw needs a width")
        kw["width"] = width
    return kw


def build(
    tmp_path: os.PathLike | str,
    keys,
    algorithm: str | None = None,
    width: int | None = None,
    name: str = "index.hlx",
    **kwargs,
) -> Path:
    """Build an index from ``keys`` (anything ``build_index`` accepts) in ``tmp_path``.

    Returns the path of the built index file (ready to be opened).  ``width`` is
    only passed for ``algorithm="raw"``; extra keyword arguments go to
    ``build_index``.
    """
    path = Path(tmp_path) / name
    if isinstance(keys, np.ndarray) and algorithm is not None and algorithm != "raw":
        assert keys.ndim == 2 and keys.shape[1] == ALGO_WIDTH[algorithm]
    report = hashlookup.build_index(
        keys, str(path), **build_kwargs(algorithm, width), **kwargs
    )
    assert Path(report.path).resolve() == path.resolve()
    assert path.is_file()
    return path


def open_index(path):
    return hashlookup.open_index(path)


# ---------------------------------------------------------------------------
# keys


def random_keys(n: int, width: int, seed: int) -> np.ndarray:
    """``(n, width)`` uint8 array of random keys (tiny widths: duplicates likely)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, width), dtype=np.uint8)


def unique_random_keys(n: int, width: int, seed: int) -> np.ndarray:
    """``(n, width)`` uint8 array of *distinct* random keys, in random order."""
    rng = np.random.default_rng(seed)
    if width == 1:
        assert n <= 256
        return rng.permutation(256)[:n].astype(np.uint8).reshape(n, 1)
    out: dict[bytes, None] = {}
    while len(out) < n:
        arr = rng.integers(0, 256, size=(n - len(out), width), dtype=np.uint8)
        for row in arr:
            out[row.tobytes()] = None
    return to_array(list(out), width)


def to_list(arr: np.ndarray) -> list[bytes]:
    """Rows of a ``(n, width)`` uint8 array as a list of bytes."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    if arr.shape[0] == 0:
        return []
    w = arr.shape[1]
    flat = arr.tobytes()
    return [flat[i : i + w] for i in range(0, len(flat), w)]


def to_array(keys: Sequence[bytes], width: int) -> np.ndarray:
    """List of bytes -> ``(n, width)`` uint8 array."""
    if not keys:
        return np.empty((0, width), dtype=np.uint8)
    buf = b"".join(keys)
    assert len(buf) == len(keys) * width
    return np.frombuffer(buf, dtype=np.uint8).reshape(len(keys), width).copy()


def hexes(keys: Iterable[bytes], upper: bool = False) -> list[str]:
    out = [k.hex() for k in keys]
    return [h.upper() for h in out] if upper else out


def near_misses(keys: Sequence[bytes], rng: np.random.Generator, n: int) -> list[bytes]:
    """Keys next to existing keys in memcmp order (last byte +-1, one byte flipped)."""
    out: list[bytes] = []
    if not keys:
        return out
    for _ in range(n):
        k = bytearray(keys[int(rng.integers(len(keys)))])
        how = int(rng.integers(4))
        if how == 0:
            k[-1] = (k[-1] + 1) & 0xFF
        elif how == 1:
            k[-1] = (k[-1] - 1) & 0xFF
        elif how == 2:
            i = int(rng.integers(len(k)))
            k[i] ^= 1 << int(rng.integers(8))
        else:
            k[0] = (k[0] + 1) & 0xFF
        out.append(bytes(k))
    return out


class Oracle:
    """The expected answers: a Python set and the sorted unique key list."""

    def __init__(self, keys: Iterable[bytes]):
        self.sorted = sorted(set(keys))
        self.rows = {k: i for i, k in enumerate(self.sorted)}

    def __len__(self) -> int:
        return len(self.sorted)

    def contains(self, queries: Sequence[bytes]) -> np.ndarray:
        return np.array([q in self.rows for q in queries], dtype=bool)

    def find(self, queries: Sequence[bytes]) -> np.ndarray:
        return np.array([self.rows.get(q, -1) for q in queries], dtype=np.int64)


# ---------------------------------------------------------------------------
# subprocesses


def run_in_subprocess(
    code: str,
    *args: str,
    timeout: float = 300,
    cwd: os.PathLike | str | None = None,
    env: dict | None = None,
    check: bool = False,
) -> tuple[int, str, str]:
    """Run a Python snippet with ``sys.executable`` in a fresh process.

    Asserts that the process exited normally (``returncode >= 0``: not killed by a
    signal such as SIGSEGV, SIGBUS or SIGABRT) and returns
    ``(returncode, stdout, stderr)``.  With ``check=True`` it also asserts
    ``returncode == 0``.  The snippet runs with faulthandler on, from a directory
    that has no ``hashlookup`` source package, so it imports the installed one.
    """
    code = textwrap.dedent(code)
    full_env = dict(os.environ)
    full_env.pop("PYTHONPATH", None)
    full_env["PYTHONFAULTHANDLER"] = "1"
    if env:
        full_env.update(env)
    proc = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(cwd) if cwd is not None else str(TESTS_DIR),
        env=full_env,
    )
    tail_out = "\n".join(proc.stdout.splitlines()[-5:])
    tail_err = proc.stderr[-4000:]
    assert proc.returncode >= 0, (
        f"subprocess killed by signal {-proc.returncode}\n"
        f"--- last stdout lines ---\n{tail_out}\n--- stderr ---\n{tail_err}"
    )
    if check:
        assert proc.returncode == 0, (
            f"subprocess exited with {proc.returncode}\n"
            f"--- last stdout lines ---\n{tail_out}\n--- stderr ---\n{tail_err}"
        )
    return proc.returncode, proc.stdout, proc.stderr


class Match(NamedTuple):
    """One reported input line of :func:`match_stream`."""

    line: int
    digest: str
    text: str


def match_stream(
    index: Any, binary_file: BinaryIO, *, invert: bool = False, **kwargs: Any
) -> Iterator[Match]:
    """One :class:`Match` (1-based line number, lowercase hex digest, the line
    without its line end) per input line whose digest is in ``index`` (not in
    it with ``invert=True``), built on ``match_chunks`` (which gets
    ``kwargs``): a line-by-line view to check the chunked matcher against."""
    for chunk in match_chunks(index, binary_file, **kwargs):
        assert chunk.line_numbers is not None
        sel = chunk.select(invert)
        if sel.size == 0:
            continue
        numbers = chunk.line_numbers[sel].tolist()
        for number, digest, text in zip(
            numbers, chunk.hex_digests(sel), chunk.lines(sel), strict=True
        ):
            yield Match(number, digest, text.decode("utf-8", "surrogateescape"))
