"""Batch checks for POST /v1/check and /bulk/*: many digests per request,
vectorised.

Items are grouped by length (32, 40, 64 hex characters: md5, sha1,
sha256); each group is packed to raw bytes in C (_core.pack_keys) and
looked up with one find_many call on the table of its algorithm.  No
Python object is made per miss: the response starts as n references to
one constant miss item and only hits and invalid items are rendered.
Hits go through Dataset._hit, the same code as Dataset.lookup, on the
table captured at the start of the request, so one request is answered by
one generation (reloads happen between requests, in the event loop).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from hashlookup import _core
from hashlookup._dataset import ALGORITHMS, Dataset, Match

WIDTH = {"md5": 16, "sha1": 20, "sha256": 32}
_BY_HEX_LEN = {32: "md5", 40: "sha1", 64: "sha256"}
MISS_ITEM = b'{"status":"miss"}'
CIRCL_NAMES = {"md5": "MD5", "sha1": "SHA-1", "sha256": "SHA-256"}


@dataclass
class CheckResult:
    """Per-item outcome of one batch, in input order."""

    n: int
    items: list[bytes]                   # rendered native items
    hits: list[tuple[int, Match]] = field(default_factory=list)  # (index, match)
    invalid: int = 0

    @property
    def misses(self) -> int:
        return self.n - len(self.hits) - self.invalid


def circl_record(m: Match, dataset: str) -> dict[str, Any]:
    """A hit in the shape of hashlookup-server 1.2 (CIRCL): uppercase hex
    under MD5 / SHA-1 / SHA-256, FileSize as a string, our facts under
    hashlookup: keys.  Digests and sizes the record lacks are left out."""
    d: dict[str, Any] = {}
    if m.md5:
        d["MD5"] = m.md5.upper()
    if m.sha1:
        d["SHA-1"] = m.sha1.upper()
    if m.sha256:
        d["SHA-256"] = m.sha256.upper()
    if m.size is not None:
        d["FileSize"] = str(m.size)
    d["hashlookup:labels"] = list(m.labels)
    d["hashlookup:dataset"] = dataset
    d["hashlookup:generation"] = m.generation
    d["hashlookup:built"] = m.built
    return d


def native_record(m: Match) -> dict[str, Any]:
    """A hit of the native API (lowercase hex, size as a number)."""
    return {"status": "hit", "algorithm": m.algorithm, "record": m.record_id,
            "md5": m.md5, "sha1": m.sha1, "sha256": m.sha256, "size": m.size,
            "labels": list(m.labels)}


def _invalid_item(reason: str) -> bytes:
    return orjson.dumps({"status": "invalid", "reason": reason})


def _tables(ds: Dataset) -> dict[str, Any]:
    return {a: ds.table(a) for a in ds.algorithms}


def _record_hits(ds: Dataset, table: Any, rows: np.ndarray, positions: Any,
                 res: CheckResult) -> None:
    """Render the hits among `rows` (find_many output for the items at
    `positions`; None: positions are 0..n-1)."""
    found = np.flatnonzero(rows >= 0)
    if not found.size:
        return
    hit_rows = rows[found].tolist()
    where = (found.tolist() if positions is None
             else np.asarray(positions)[found].tolist())
    for i, row in zip(where, hit_rows):
        m = ds._hit(table, row, None, None)
        if m is None:  # dropped by the dataset's suppress labels
            continue
        res.hits.append((i, m))
        res.items[i] = orjson.dumps(native_record(m))


def check_strings(ds: Dataset, items: list[Any], *,
                  algorithm: str | None = None) -> CheckResult:
    """Check a list of hex digests (any of md5/sha1/sha256 unless
    `algorithm` is given; other items are invalid with a reason)."""
    n = len(items)
    res = CheckResult(n, [MISS_ITEM] * n)
    if not n:
        return res
    tables = _tables(ds)
    if all(type(x) is str for x in items):
        lens = np.fromiter(map(len, items), dtype=np.int64, count=n)
        groups = []
        matched = np.zeros(n, dtype=bool)
        for length, alg in _BY_HEX_LEN.items():
            if algorithm is not None and alg != algorithm:
                continue
            pos = np.flatnonzero(lens == length)
            if pos.size:
                matched[pos] = True
                groups.append((alg, pos))
        for i in np.flatnonzero(~matched).tolist():
            _mark_invalid(res, i, _length_reason(len(items[i]), algorithm))
    else:  # some items are not strings: sort them out one by one
        buckets: dict[str, list[int]] = {}
        for i, x in enumerate(items):
            if type(x) is not str:
                _mark_invalid(res, i, f"expected a hex digest string, got "
                                      f"{_json_kind(x)}")
                continue
            alg = _BY_HEX_LEN.get(len(x))
            if alg is None or (algorithm is not None and alg != algorithm):
                _mark_invalid(res, i, _length_reason(len(x), algorithm))
                continue
            buckets.setdefault(alg, []).append(i)
        groups = [(a, np.asarray(p, dtype=np.int64)) for a, p in buckets.items()]
    for alg, pos in groups:
        whole = pos.size == n
        group = items if whole else [items[i] for i in pos.tolist()]
        try:
            packed = _core.pack_keys(group, WIDTH[alg], alg)
        except (TypeError, ValueError):
            _check_one_by_one(ds, tables.get(alg), alg, group, pos, res)
            continue
        table = tables.get(alg)
        if table is None:
            continue  # no table of this algorithm: all misses
        keys = np.frombuffer(packed, dtype=np.uint8).reshape(-1, WIDTH[alg])
        _record_hits(ds, table, table.find_many(keys), None if whole else pos, res)
    if res.hits:
        res.hits.sort(key=lambda h: h[0])
    return res


def _check_one_by_one(ds: Dataset, table: Any, alg: str, group: list[str],
                      pos: np.ndarray, res: CheckResult) -> None:
    """A group with a bad item: find which, and why, item by item."""
    good: list[str] = []
    good_pos: list[int] = []
    for i, x in zip(pos.tolist(), group):
        try:
            _core.pack_keys([x], WIDTH[alg], alg)
        except (TypeError, ValueError):
            _mark_invalid(res, i, f"not a hex {alg} digest: non-hex character")
            continue
        good.append(x)
        good_pos.append(i)
    if good and table is not None:
        keys = np.frombuffer(_core.pack_keys(good, WIDTH[alg], alg),
                             dtype=np.uint8).reshape(-1, WIDTH[alg])
        _record_hits(ds, table, table.find_many(keys), good_pos, res)


def _mark_invalid(res: CheckResult, i: int, reason: str) -> None:
    res.items[i] = _invalid_item(reason)
    res.invalid += 1


def _length_reason(length: int, algorithm: str | None) -> str:
    if algorithm is not None:
        return (f"expected a {algorithm} digest of {2 * WIDTH[algorithm]} hex "
                f"characters, got {length} characters")
    return ("expected an md5, sha1 or sha256 digest (32, 40 or 64 hex "
            f"characters), got {length} characters")


def _json_kind(x: Any) -> str:
    if x is None:
        return "null"
    if isinstance(x, bool):
        return "a boolean"
    if isinstance(x, (int, float)):
        return "a number"
    if isinstance(x, list):
        return "an array"
    if isinstance(x, dict):
        return "an object"
    return type(x).__name__


def check_raw(ds: Dataset, body: bytes, algorithm: str) -> CheckResult:
    """Check fixed-width raw digests of one algorithm (len(body) must be a
    multiple of the width; the caller checks)."""
    w = WIDTH[algorithm]
    n = len(body) // w
    res = CheckResult(n, [MISS_ITEM] * n)
    if not n or algorithm not in ds.algorithms:
        return res
    table = ds.table(algorithm)
    keys = np.frombuffer(body, dtype=np.uint8).reshape(n, w)
    _record_hits(ds, table, table.find_many(keys), None, res)
    return res


def split_text(body: bytes) -> list[str]:
    """Items of a text/plain body: one digest per line, surrounding blanks
    stripped, blank lines skipped (they are not items)."""
    text = body.decode("utf-8", "replace")
    return [s for s in (line.strip() for line in text.split("\n")) if s]


def render_check(res: CheckResult, ds: Dataset) -> bytes:
    """The JSON body of a /v1/check answer."""
    head = orjson.dumps({"dataset": ds.name, "generation": ds.generation,
                         "count": res.n, "hits": len(res.hits),
                         "misses": res.misses, "invalid": res.invalid})
    return b"".join((head[:-1], b',"results":[', b",".join(res.items), b"]}"))


__all__ = ["ALGORITHMS", "CheckResult", "check_raw", "check_strings",
           "circl_record", "native_record", "render_check", "split_text"]
