"""Shared pieces of the importers: vectorised hex and size decoding, batch
assembly with per-record validation, encoding and header sniffing.

Every reader collects the raw cell values of up to batch_size records (str,
bytes or JSON values) and hands them to assemble(), which decodes whole
columns at once (one join + bytes.fromhex per column; a per-value pass only
when that fails, to find and name the bad values), drops or reports bad
records and returns a RecordBatch.
"""

from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from hashlookup import algorithms
from hashlookup.errors import InputError
from hashlookup.importers._records import ALGORITHMS, RecordBatch, _Options

_ALGO_BY_HEXLEN = algorithms.BY_HEX_LENGTH
_INT64_MAX = (1 << 63) - 1
_UNKNOWN = -(1 << 62)  # stands for a null size in the fast path
_SIZE_TYPES = {int, str, type(None)}


# ---------------------------------------------------------------------------
# messages


def quote(value: object, limit: int = 80) -> str:
    """Short repr of a cell value for error messages."""
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, str):
        return repr(value[:limit] + ("..." if len(value) > limit else ""))
    text = repr(value)
    return text[:limit] + ("..." if len(text) > limit else "")


def _is_hex(s: str) -> bool:
    try:
        return len(bytes.fromhex(s)) * 2 == len(s)
    except ValueError:
        return False


def hex_problem(value: str, algorithm: str) -> str:
    """Why the stripped, non-empty text `value` is not an `algorithm` digest."""
    want = 2 * ALGORITHMS[algorithm]
    label = f"{want} hex characters ({algorithm})"
    other = _ALGO_BY_HEXLEN.get(len(value))
    if len(value) == want:
        return f"expected {label}, got non-hex text {quote(value)}"
    if other and _is_hex(value):
        return f"expected {label}, got {len(value)} (an {other} digest?) {quote(value)}"
    return f"expected {label}, got {quote(value)}"


# ---------------------------------------------------------------------------
# column decoding


def decode_hex(
    values: Sequence[Any], algorithm: str, what: str, bad: dict[int, str]
) -> tuple[np.ndarray, np.ndarray]:
    """Decode a column of hex digests.

    values: str or bytes (hex, any case), None or "" for absent; anything
    else is a bad value.  Returns (digests (n, width) uint8, present (n,)
    bool); bad values are added to `bad` (row -> message) and left absent.
    """
    width = ALGORITHMS[algorithm]
    n = len(values)
    try:
        lens = np.fromiter(map(len, values), np.int64, n)
    except TypeError:  # None or a non-string value: per-value pass
        lens = None
    if lens is not None:
        full = lens == 2 * width
        k = int(np.count_nonzero(full))
        if k + int(np.count_nonzero(lens == 0)) == n:
            if k == 0:
                return np.zeros((n, width), np.uint8), full
            try:
                try:
                    joined = "".join(values)
                except TypeError:
                    joined = b"".join(values).decode("ascii")
                raw = bytearray.fromhex(joined)
            except (TypeError, ValueError):
                raw = None
            # bytes.fromhex skips whitespace: a short result means a value
            # held blanks, which the per-value pass strips or reports.
            if raw is not None and len(raw) == k * width:
                arr = np.frombuffer(raw, np.uint8).reshape(k, width)
                if k == n:
                    return arr, full
                out = np.zeros((n, width), np.uint8)
                out[full] = arr
                return out, full
    return _decode_hex_slow(values, algorithm, what, bad)


def _decode_hex_slow(
    values: Sequence[Any], algorithm: str, what: str, bad: dict[int, str]
) -> tuple[np.ndarray, np.ndarray]:
    width = ALGORITHMS[algorithm]
    n = len(values)
    out = np.zeros((n, width), np.uint8)
    present = np.zeros(n, bool)
    rows: list[int] = []
    chunks: list[str] = []
    for i, v in enumerate(values):
        if v is None:
            continue
        if isinstance(v, (bytes, bytearray)):
            v = bytes(v).decode("utf-8", "replace")
        if not isinstance(v, str):
            if i not in bad:
                bad[i] = (
                    f"{what}: expected a hex string, got {type(v).__name__} {quote(v)}"
                )
            continue
        s = v.strip()
        if not s:
            continue
        if len(s) == 2 * width and _is_hex(s):
            rows.append(i)
            chunks.append(s)
        elif i not in bad:
            bad[i] = f"{what}: {hex_problem(s, algorithm)}"
    if rows:
        idx = np.array(rows, np.int64)
        out[idx] = np.frombuffer(bytes.fromhex("".join(chunks)), np.uint8).reshape(
            -1, width
        )
        present[idx] = True
    return out, present


def decode_sizes(values: Sequence[Any], what: str, bad: dict[int, str]) -> np.ndarray:
    """Decode a column of sizes: int, decimal text (str or bytes, blanks
    around it ignored), None or "" (unknown: -1).  Negative, fractional or
    non-numeric values are bad."""
    n = len(values)
    types = set(map(type, values))
    arr = None
    try:
        if types <= {int}:
            arr = np.array(values, np.int64) if n else np.empty(0, np.int64)
        elif types <= {str} or types <= {bytes}:
            arr = np.array(list(map(int, values)), np.int64)
        elif types <= _SIZE_TYPES:  # JSON: ints, decimal strings, nulls
            arr = np.array(
                [_UNKNOWN if v is None else int(v) for v in values], np.int64
            )
            unknown = arr == _UNKNOWN
            if unknown.any():
                arr[unknown] = 0
                if int(arr.min()) < 0:
                    arr = None
                else:
                    arr[unknown] = -1
                    return arr
    except (ValueError, OverflowError):
        arr = None
    if arr is not None and (n == 0 or int(arr.min()) >= 0):
        return arr
    out = np.full(n, -1, np.int64)
    for i, v in enumerate(values):
        size = _one_size(v)
        if size is None:
            if i not in bad:
                bad[i] = f"{what}: expected a non-negative integer, got {quote(v)}"
        else:
            out[i] = size
    return out


def _one_size(v: object) -> int | None:
    """The size in v, -1 for unknown, None if v is bad."""
    if v is None:
        return -1
    if isinstance(v, bool):
        return None
    if isinstance(v, float):
        if not v.is_integer():
            return None
        v = int(v)
    elif isinstance(v, (str, bytes, bytearray)):
        s = v.strip()
        if not s:
            return -1
        try:
            v = int(s)
        except ValueError:
            return None
    if not isinstance(v, int) or not 0 <= v <= _INT64_MAX:
        return None
    return v


# ---------------------------------------------------------------------------
# batches


def assemble(
    opts: _Options,
    n: int,
    hexcols: Mapping[str, tuple[Sequence[Any], str]],
    sizes: tuple[Sequence[Any], str] | None = None,
    labels: dict[str, list[int]] | None = None,
    bad: dict[int, str] | None = None,
    where: Callable[[int], str] = lambda i: f": record {i}",
    *,
    pdq: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    attributes: dict[str, list[str | None]] | None = None,
) -> RecordBatch:
    """Build a RecordBatch from n records' raw values.

    hexcols: algorithm -> (values, how messages name the field, e.g.
    "column MD5"); sizes likewise; labels: label -> ascending row indices;
    bad: rows the reader already found bad (row -> message); attributes:
    attribute name -> one value per record (None: none).  where(i) is
    the location of row i appended to the file name in messages, e.g. ":17"
    or ": value[3] (MediaID 12)".  pdq: (hashes, present, quality) of the
    rows (hashlookup.importers.pdq), or None.

    A record with any bad field, or without any digest, is bad: InputError
    for the first one, or with opts.skip_invalid dropped and counted.
    """
    bad = {} if bad is None else bad
    batch = RecordBatch.empty(n)
    for algo, (values, what) in hexcols.items():
        digests, present = decode_hex(values, algo, what, bad)
        setattr(batch, algo, digests)
        setattr(batch, "has_" + algo, present)
    if sizes is not None:
        batch.size = decode_sizes(sizes[0], sizes[1], bad)
    none = ~(batch.has_md5 | batch.has_sha1 | batch.has_sha256)
    if none.any():
        fields = ", ".join(what for _, what in hexcols.values()) or "digests"
        msg = f"no digest ({fields}: all empty)"
        for i in np.flatnonzero(none).tolist():
            bad.setdefault(i, msg)
    if labels:
        batch.labels = {k: np.asarray(v, np.int64) for k, v in labels.items() if len(v)}
    if pdq is not None:
        batch.pdq, batch.has_pdq, batch.pdq_quality = pdq
    if attributes:
        batch.attributes = attributes
    if not bad:
        return batch
    rows = sorted(bad)
    if not opts.skip_invalid:
        i = rows[0]
        raise InputError(f"{opts.name}{where(i)}: {bad[i]}")
    opts.report._skip(
        len(rows), [f"{opts.name}{where(i)}: {bad[i]}" for i in rows[:10]]
    )
    return drop_rows(batch, np.array(rows, np.int64))


def drop_rows(batch: RecordBatch, rows: np.ndarray) -> RecordBatch:
    """The batch without the given rows (labels renumbered)."""
    n = len(batch)
    keep = np.ones(n, bool)
    keep[rows] = False
    newpos = np.cumsum(keep) - 1
    labels = {}
    for label, idx in batch.labels.items():
        idx = idx[keep[idx]]
        if len(idx):
            labels[label] = newpos[idx]
    return RecordBatch(
        md5=batch.md5[keep],
        sha1=batch.sha1[keep],
        sha256=batch.sha256[keep],
        has_md5=batch.has_md5[keep],
        has_sha1=batch.has_sha1[keep],
        has_sha256=batch.has_sha256[keep],
        size=batch.size[keep],
        labels=labels,
        pdq=None if batch.pdq is None else batch.pdq[keep],
        has_pdq=None if batch.has_pdq is None else batch.has_pdq[keep],
        pdq_quality=None if batch.pdq_quality is None else batch.pdq_quality[keep],
        attributes={
            k: list(itertools.compress(v, keep.tolist()))
            for k, v in batch.attributes.items()
        },
    )


#: what a label may be (as the dataset format stores them)
MAX_LABEL = 200
_LABEL_RE = re.compile(rf"^[^\x00-\x1f]{{1,{MAX_LABEL}}}$")


def bad_label(label: str) -> str | None:
    """Why `label` cannot be a label, or None if it can."""
    if _LABEL_RE.match(label):
        return None
    return f"label {quote(label)}: expected at most {MAX_LABEL} printable characters"


def label_rows(
    values: Sequence[Any], prefix: str, what: str, bad: dict[int, str]
) -> dict[str, list[int]]:
    """Label column -> {"prefix:value": rows}; blanks around a value are
    stripped, empty values give no label; a value that makes no valid label
    (control characters, too long) makes its row bad."""
    out: dict[str, list[int]] = {}
    checked: set[str] = set()
    for i, v in enumerate(values):
        if v:
            v = v.strip()
            if v:
                key = f"{prefix}:{v}"
                if key not in checked:
                    problem = bad_label(key)
                    if problem:
                        bad.setdefault(i, f"{what}: {problem}")
                        continue
                    checked.add(key)
                rows = out.get(key)
                if rows is None:
                    out[key] = [i]
                else:
                    rows.append(i)
    return out


# ---------------------------------------------------------------------------
# sniffing


def sniff_encoding(head: bytes) -> tuple[str, int]:
    """(codec, BOM length) from a byte-order mark; UTF-8 without one."""
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8", 3
    if head.startswith(b"\xff\xfe"):
        return "utf-16-le", 2
    if head.startswith(b"\xfe\xff"):
        return "utf-16-be", 2
    return "utf-8", 0


def first_line(text: str, skip_comments: bool = False) -> str:
    """The first non-blank line of text, stripped ("" if none); with
    skip_comments also skipping lines that start with '#'."""
    for line in text.splitlines():
        line = line.strip()
        if line and not (skip_comments and line.startswith("#")):
            return line
    return ""


def is_digest_line(line: str) -> bool:
    """Is line a plain digest or md5sum-style line (first blank-separated
    token, without md5sum's leading backslash, is 32/40/64 hex chars)?"""
    parts = line.split(None, 1)
    if not parts:
        return False
    token = parts[0].removeprefix("\\")
    return len(token) in _ALGO_BY_HEXLEN and _is_hex(token)


_NON_ALNUM = re.compile(r"[^0-9a-z]+")
DELIMITERS = (",", "\t", ";")


def normalise_name(name: str) -> str:
    """Column name as compared by auto-detection: lower case, only letters
    and digits ("SHA-256" -> "sha256", "File Size" -> "filesize")."""
    return _NON_ALNUM.sub("", name.lower())


def split_header(line: str, delimiter: str) -> list[str]:
    """Fields of a header line.  Raises csv.Error for a line the csv module
    cannot read (a bare CR inside an unquoted field)."""
    return next(csv.reader([line], delimiter=delimiter), [])


def csv_header_delimiter(line: str, wanted: list[str] | None = None) -> str | None:
    """The delimiter (',', tab or ';') that splits line into a header with a
    digest column (a name containing md5, sha1 or sha256, in any case and
    punctuation), or, given `wanted` column names, one holding all of them.
    None if there is no such delimiter."""
    best = None
    best_fields = 0
    for d in DELIMITERS:
        try:
            fields = [f.strip() for f in split_header(line, d)]
        except csv.Error:
            continue  # not a CSV header with this delimiter
        if wanted:
            low = {f.lower() for f in fields}
            ok = all(w in fields or w.lower() in low for w in wanted)
        else:
            ok = any(a in normalise_name(f) for f in fields for a in ALGORITHMS)
        if ok and len(fields) > best_fields:
            best, best_fields = d, len(fields)
    return best
