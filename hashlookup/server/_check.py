"""Batch checks for POST /v1/check and /bulk/*: many digests per request,
vectorised.

Items are grouped by length (32, 40, 64 hex characters: md5, sha1,
sha256); each group is packed to raw bytes in C (_core.pack_keys) and
looked up with one find_many call on the table of its algorithm.  No
Python object is made per miss: the response starts as n references to
one constant miss item and only hits and invalid items are rendered.
Hits go through Generation.match, the same code as Dataset.lookup, on the
generation captured at the start of the request, so one request is answered
by one generation (reloads happen between requests, in the event loop).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from hashlookup import _core
from hashlookup.algorithms import BY_HEX_LENGTH, WIDTH
from hashlookup.errors import IndexFormatError
from hashlookup.server._audit import generation_part
from hashlookup.server._render import (
    ANSWER_INVALID,
    ANSWER_MISS,
    ANSWER_UNKNOWN,
    HitRenderer,
    append_audit_line,
)
from hashlookup.store.dataset import ALGORITHMS, Dataset, Generation, Match

MISS_ITEM = b'{"status":"miss"}'


@dataclass
class CheckResult:
    """Per-item outcome of one batch, in input order."""

    n: int
    items: list[bytes]  # rendered native items
    hits: list[tuple[int, Match]] = field(default_factory=list)  # (index, match)
    invalid: int = 0
    marked: list[int] = field(default_factory=list)  # indices of non-miss items

    @property
    def misses(self) -> int:
        return self.n - len(self.hits) - self.invalid


def circl_record(m: Match, dataset: str) -> dict[str, Any]:
    """A hit in the shape of hashlookup-server 1.2 (CIRCL): uppercase hex
    under MD5 / SHA-1 / SHA-256, FileSize as a string, our facts under
    hashlookup: keys.  Digests and sizes the record lacks are left out.
    (circl_json renders the same, faster; this is the reference.)"""
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
    """A hit of the native API (lowercase hex, size as a number).
    (native_json renders the same, faster; this is the reference.)"""
    return {
        "status": "hit",
        "algorithm": m.algorithm,
        "record": m.record_id,
        "md5": m.md5,
        "sha1": m.sha1,
        "sha256": m.sha256,
        "size": m.size,
        "labels": list(m.labels),
    }


# JSON of label tuples and dataset names: few distinct values, rendered once.
_JSON_CACHE: dict[Any, str] = {}


def _json_text(value: Any) -> str:
    text = _JSON_CACHE.get(value)
    if text is None:
        if len(_JSON_CACHE) > 4096:
            _JSON_CACHE.clear()
        text = _JSON_CACHE[value] = orjson.dumps(
            list(value) if isinstance(value, tuple) else value
        ).decode()
    return text


def circl_json(m: Match, dataset: str) -> bytes:
    """orjson.dumps(circl_record(m, dataset)), built as text: every field is
    hex, a number or an ISO time (no escaping needed) except the labels and
    the name, whose JSON is cached.  A hit costs a third of the dict path."""
    md5, sha1, sha256, size = m.md5, m.sha1, m.sha256, m.size
    if md5 and sha1 and sha256 and size is not None:  # the usual record
        return (
            f'{{"MD5":"{md5.upper()}","SHA-1":"{sha1.upper()}","SHA-256":'
            f'"{sha256.upper()}","FileSize":"{size}","hashlookup:labels":'
            f"{_json_text(m.labels)}{_circl_tail(m.generation, m.built, dataset)}"
        ).encode()
    parts = []
    if m.md5:
        parts.append(f'"MD5":"{m.md5.upper()}"')
    if m.sha1:
        parts.append(f'"SHA-1":"{m.sha1.upper()}"')
    if m.sha256:
        parts.append(f'"SHA-256":"{m.sha256.upper()}"')
    if m.size is not None:
        parts.append(f'"FileSize":"{m.size}"')
    parts.append(f'"hashlookup:labels":{_json_text(m.labels)}')
    return (
        "{" + ",".join(parts) + _circl_tail(m.generation, m.built, dataset)
    ).encode()


@functools.lru_cache(maxsize=64)
def _circl_tail(generation: int, built: str, dataset: str) -> str:
    """The end of a CIRCL record: our facts of the generation that answered
    (the same for every hit of a generation, so rendered once)."""
    return (
        f',"hashlookup:dataset":{_json_text(dataset)},"hashlookup:generation":'
        f'{generation},"hashlookup:built":"{built}"}}'
    )


def native_json(m: Match) -> bytes:
    """orjson.dumps(native_record(m)), built as text (see circl_json)."""
    md5, sha1, sha256, size = m.md5, m.sha1, m.sha256, m.size
    if md5 and sha1 and sha256 and size is not None:  # the usual record
        return (
            f'{{"status":"hit","algorithm":"{m.algorithm}","record":'
            f'{m.record_id},"md5":"{md5}","sha1":"{sha1}","sha256":"{sha256}",'
            f'"size":{size},"labels":{_json_text(m.labels)}}}'
        ).encode()
    return (
        f'{{"status":"hit","algorithm":"{m.algorithm}","record":{m.record_id},'
        f'"md5":{_str_or_null(m.md5)},"sha1":{_str_or_null(m.sha1)},'
        f'"sha256":{_str_or_null(m.sha256)},'
        f'"size":{"null" if m.size is None else m.size},'
        f'"labels":{_json_text(m.labels)}}}'
    ).encode()


class SingleHits:
    """The answers of GET /lookup/...: `answer(algorithm, digest[, audit,
    who])` is, for a hit in the generation prepared last, its CIRCL record
    (the same bytes as circl_json of its Match), and then, given the audit
    log's buffer and the key's part of a line, its audit line appended to
    the buffer (with the native record: native_json of the Match); else
    MISS (also for a record the dataset's suppressed labels drop), INVALID
    (not a hex digest of that algorithm) or UNKNOWN (not md5, sha1 or
    sha256).  The owner prepares every new generation (after a reload).

    `answer` is _render.HitRenderer.answer: decoding, lookup, both records
    and the audit line in one C call, with no Match, no str per digest, no
    format per field and no Python frame; the labels' JSON and the CIRCL
    tail are cached in it.  A plain index file (no records) or a dataset of
    more than 64 labels is answered through Generation.lookup and the Match."""

    def __init__(self, ds: Dataset) -> None:
        self.ds = ds
        self.generation = 0
        self.answer: Any = None
        #: why the generation prepared last is answered through the Match
        #: (its labels cannot be read), else None
        self.problem: str | None = None

    def prepare(self) -> None:
        """Answer from the dataset's current generation from now on.  (The
        label table takes a few milliseconds per million records to build:
        done here, at start and after a reload, not at a first hit.)"""
        ds = self.ds
        st = ds.current()
        self.generation = st.generation
        self.problem = None
        try:
            pairs = st.labels.pairs() if st.labels is not None else ()
        except IndexFormatError as exc:
            # a label bitmap that cannot be read (section bodies are only
            # checksummed by verify()): the Match path reports it per hit,
            # as Dataset.lookup does, and misses are still answered
            self.problem = str(exc)
            pairs = None
        if st.record_table is None or pairs is None or len(pairs) > 64:
            self.answer = functools.partial(_answer_by_match, st)
            return
        suppressed = set(ds.suppress)
        drop = sum(1 << i for i, (name, _) in enumerate(pairs) if name in suppressed)
        tail = _circl_tail(st.generation, st.built, st.name).encode()
        md5, sha1, sha256 = (st.tables.get(a) for a in ALGORITHMS)
        self.answer = HitRenderer(
            st.record_table,
            (md5, sha1, sha256),
            pairs,
            drop,
            _labels_json,
            tail,
            generation_part(st.generation),
            label_masks(pairs, st.count),
        ).answer


MISS, INVALID, UNKNOWN = ANSWER_MISS, ANSWER_INVALID, ANSWER_UNKNOWN


def _answer_by_match(
    st: Generation,
    algorithm: str,
    digest: str,
    audit: bytearray | None = None,
    who: bytes | None = None,
) -> bytes | int:
    """SingleHits.answer through Generation.lookup and the Match."""
    if algorithm not in WIDTH:
        return UNKNOWN
    if len(digest) != 2 * WIDTH[algorithm]:
        return INVALID
    try:
        m = st.lookup(digest)
    except ValueError as exc:
        if isinstance(exc, IndexFormatError):
            raise  # a record or label bitmap that cannot be read
        return INVALID
    if m is None:
        return MISS
    if audit is not None:
        assert who is not None
        append_audit_line(
            audit, who, digest, generation_part(m.generation), native_json(m)
        )
    return circl_json(m, st.name)


def _labels_json(labels: tuple[str, ...]) -> bytes:
    return _json_text(labels).encode()


def label_masks(pairs: tuple[tuple[str, Any], ...], records: int) -> Any:
    """Per record the bit mask of its labels (bit i: label i of `pairs`), in
    the narrowest unsigned type, or None if that table would take more than
    _MASKS_MAX_BYTES (the renderer then tests each label's bitmap).

    Why: a hit's labels were one bitmap membership test each, a cache miss
    each on a busy server (six labels cost more than the rest of a hit's
    memory reads); the table makes it one read.  Built by SingleHits.prepare
    for each generation, from the bitmaps, in a few milliseconds per million
    records; private memory of each worker."""
    if not pairs:
        return None
    dtype = next(
        t
        for t in (np.uint8, np.uint16, np.uint32, np.uint64)
        if 8 * np.dtype(t).itemsize >= len(pairs)
    )
    if records * np.dtype(dtype).itemsize > _MASKS_MAX_BYTES:
        return None
    masks: np.ndarray[Any, np.dtype[np.unsignedinteger[Any]]]
    masks = np.zeros(records, dtype=dtype)
    for i, (_, bitmap) in enumerate(pairs):
        ids = np.frombuffer(bitmap.to_array(), dtype=np.uint32)
        masks[ids] |= dtype(1 << i)
    return masks


_MASKS_MAX_BYTES = 64 << 20


def _str_or_null(hex_digest: str | None) -> str:
    return "null" if hex_digest is None else f'"{hex_digest}"'


def _invalid_item(reason: str) -> bytes:
    return orjson.dumps({"status": "invalid", "reason": reason})


def _record_hits(
    gen: Generation, algorithm: str, rows: np.ndarray, positions: Any, res: CheckResult
) -> None:
    """Render the hits among `rows` (find_many output for the items at
    `positions`; None: positions are 0..n-1)."""
    found = np.flatnonzero(rows >= 0)
    if not found.size:
        return
    where = (
        found.tolist() if positions is None else np.asarray(positions)[found].tolist()
    )
    for i, m in zip(where, _matches(gen, algorithm, rows[found]), strict=True):
        if m is None:  # dropped by the dataset's suppress labels
            continue
        res.hits.append((i, m))
        res.items[i] = native_json(m)
        res.marked.append(i)


def _matches(gen: Generation, algorithm: str, rows: np.ndarray) -> list[Match | None]:
    """The Match of each found row of the `algorithm` table of `gen`, by
    Generation.match (one C call per hit for its record and labels): the
    same answer as Dataset.lookup."""
    match = gen.match
    return [match(algorithm, r) for r in rows.tolist()]


def check_strings(
    ds: Dataset, items: list[Any], *, algorithm: str | None = None
) -> CheckResult:
    """Check a list of hex digests (any of md5/sha1/sha256 unless
    `algorithm` is given; other items are invalid with a reason).

    One C pass (_core.pack_any_hex) sorts the items by length and decodes
    them into one buffer per algorithm; no Python object is made per item."""
    n = len(items)
    res = CheckResult(n, [MISS_ITEM] * n)
    if not n:
        return res
    gen = ds.current()
    tables = gen.tables
    kinds = np.empty(n, dtype=np.uint8)
    outs = [np.empty(n * WIDTH[a], dtype=np.uint8) for a in ALGORITHMS]
    counts = _core.pack_any_hex(items, kinds, *outs)
    for k, alg in enumerate(ALGORITHMS):
        if not counts[k]:
            continue
        pos = np.flatnonzero(kinds == k)
        if algorithm is not None and alg != algorithm:
            for i in pos.tolist():
                _mark_invalid(res, i, _length_reason(len(items[i]), algorithm))
            continue
        table = tables.get(alg)
        if table is None:
            continue  # no table of this algorithm: all misses
        keys = outs[k][: counts[k] * WIDTH[alg]].reshape(-1, WIDTH[alg])
        _record_hits(
            gen, alg, table.find_many(keys), None if counts[k] == n else pos, res
        )
    if counts[0] + counts[1] + counts[2] < n:
        for i in np.flatnonzero(kinds > 2).tolist():
            x = items[i]
            kind = int(kinds[i])
            if kind == _core.KIND_NOT_STR:
                reason = f"expected a hex digest string, got {json_kind(x)}"
            elif kind == _core.KIND_LENGTH:
                reason = _length_reason(len(x), algorithm)
            elif len(x) in BY_HEX_LENGTH:
                reason = f"not a hex {BY_HEX_LENGTH[len(x)]} digest: non-hex character"
            else:  # non-ASCII text of another length
                reason = _length_reason(len(x), algorithm)
            _mark_invalid(res, i, reason)
    if res.hits:
        res.hits.sort(key=lambda h: h[0])
    return res


def _mark_invalid(res: CheckResult, i: int, reason: str) -> None:
    res.items[i] = _invalid_item(reason)
    res.marked.append(i)
    res.invalid += 1


def _length_reason(length: int, algorithm: str | None) -> str:
    if algorithm is not None:
        return (
            f"expected a {algorithm} digest of {2 * WIDTH[algorithm]} hex "
            f"characters, got {length} characters"
        )
    return (
        "expected an md5, sha1 or sha256 digest (32, 40 or 64 hex "
        f"characters), got {length} characters"
    )


def json_kind(x: Any) -> str:
    """What a decoded JSON value is, for error messages ("a string", "an
    array"...), never the value itself (it may be a queried digest)."""
    if x is None:
        return "null"
    if isinstance(x, bool):
        return "a boolean"
    if isinstance(x, (int, float)):
        return "a number"
    if isinstance(x, str):
        return "a string"
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
    if not n:
        return res
    gen = ds.current()
    table = gen.tables.get(algorithm)
    if table is None:
        return res
    keys = np.frombuffer(body, dtype=np.uint8).reshape(n, w)
    _record_hits(gen, algorithm, table.find_many(keys), None, res)
    return res


def split_text(body: bytes) -> list[str]:
    """Items of a text/plain body: one digest per line, surrounding blanks
    stripped, blank lines skipped (they are not items)."""
    text = body.decode("utf-8", "replace")
    if " " not in text and "\t" not in text:
        return text.split()  # the same, in C: no blanks inside lines
    return [s for s in (line.strip() for line in text.split("\n")) if s]


def render_check(res: CheckResult, ds: Dataset) -> bytes:
    """The JSON body of a /v1/check answer."""
    head = orjson.dumps(
        {
            "dataset": ds.name,
            "generation": ds.generation,
            "count": res.n,
            "hits": len(res.hits),
            "misses": res.misses,
            "invalid": res.invalid,
        }
    )
    return b"".join((head[:-1], b',"results":[', _results_json(res), b"]}"))


_MISS_COMMA = MISS_ITEM + b","


def _results_json(res: CheckResult) -> bytes:
    """b",".join(res.items), but the runs of misses between the marked
    items (hits, invalid) are one bytes repetition each: with 99% misses a
    10,000-item answer is a join of a few hundred pieces, not 10,000."""
    if not res.n:
        return b""
    parts = []
    items = res.items
    prev = 0
    for i in sorted(res.marked):
        if i > prev:
            parts.append(_MISS_COMMA * (i - prev))
        parts.append(items[i])
        parts.append(b",")
        prev = i + 1
    if prev < res.n:
        parts.append(_MISS_COMMA * (res.n - prev))
    parts[-1] = parts[-1][:-1]  # no comma after the last item
    return b"".join(parts)


__all__ = [
    "ALGORITHMS",
    "CheckResult",
    "check_raw",
    "check_strings",
    "circl_record",
    "native_record",
    "render_check",
    "split_text",
]
