"""PDQ near matches over HTTP: POST /v1/pdq (the native batch) and the
matching endpoints of Meta's Hasher-Matcher-Actioner (HMA), GET
/m/raw_lookup and GET /m/lookup, with its request and answer shapes.

Every answer comes from the generation captured when the request starts
(``Dataset.current()``), searched by its ``NearIndex`` exactly as
``Dataset.near`` does (rows within the radius, nearest first then by
record, the dataset's suppressed labels dropped), so one request is
answered by one generation even when a reload swaps the dataset while a
large batch is searched in a thread.

The work one request can cause is bounded (docs/SERVER.md, "POST
/v1/pdq"): items per request, a narrower item limit past PDQ's usual
radius, matches per item and per answer.  Queried hashes are never logged
or echoed in errors (an error names the item's index and field).
"""

from __future__ import annotations

import asyncio
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import orjson

from hashlookup import _core
from hashlookup.errors import IndexFormatError
from hashlookup.near._defaults import DEFAULT_MAX_DISTANCE, DEFAULT_MIN_QUALITY
from hashlookup.server._check import json_kind
from hashlookup.server._http import (
    JSON,
    ItemBound,
    Response,
    UploadBudget,
    error,
    header,
    is_json,
    read_body,
    too_large,
)
from hashlookup.server._pdq_openapi import BOOLEANS, TRUE

if TYPE_CHECKING:
    from hashlookup.near.index import NearIndex
    from hashlookup.server._audit import AuditLog
    from hashlookup.server._config import ServerConfig
    from hashlookup.server._metrics import Metrics
    from hashlookup.store.dataset import Dataset, Generation

#: Items of one POST /v1/pdq (also at most --max-batch).
MAX_ITEMS = 10_000
#: Items of one request whose max_distance passes PDQ's usual threshold of
#: 31: the search's cost grows toward a scan of every hash (docs/NEAR.md).
MAX_ITEMS_WIDE = 1_000
#: Largest max_distance served (a quarter of the bits; unrelated PDQ hashes
#: are about 128 bits apart).
MAX_DISTANCE = 64
#: Matches returned per item: the default and the largest allowed.
DEFAULT_MAX_MATCHES = 100
MAX_MATCHES = 1_000
#: Matches in one answer; items past this point are cut (truncated).
MAX_TOTAL_MATCHES = 100_000
#: Fields of a POST /v1/pdq body.
FIELDS = ("hashes", "max_distance", "min_quality", "max_matches")

# Queries per search call: bounds the memory of one call's raw results and
# lets a batch stop once MAX_TOTAL_MATCHES are found.
_CHUNK = 1024
# Batches of up to this many queries at up to PDQ's usual radius are
# answered in the event loop (a few hundred microseconds); larger ones in a
# thread (the search releases the GIL), so other requests are answered
# meanwhile.
_INLINE = 64
# Chunks of up to this many queries are searched one query at a time.
_FEW = 8
_NO_PDQ = (
    "the dataset has no PDQ hashes (build it from inputs with a pdq column; "
    "docs/NEAR.md)"
)
_EMPTY_ITEM = b'{"matches":[],"truncated":false}'
_HEX = frozenset("0123456789abcdefABCDEF")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,23}")  # shorter than any digest


def unprocessable(field_name: str, message: str) -> Response:
    """422: the body is JSON but a field's value is wrong (named)."""
    return error(422, f"{field_name}: {message}", field=field_name)


@dataclass
class PdqRequest:
    """A validated POST /v1/pdq body."""

    rows: np.ndarray  # (n, 32) uint8
    max_distance: int = DEFAULT_MAX_DISTANCE
    min_quality: int = DEFAULT_MIN_QUALITY
    max_matches: int = DEFAULT_MAX_MATCHES


@dataclass
class PdqAnswer:
    """Per-item results of one batch, rendered, in input order."""

    items: list[bytes]
    matched: int = 0  # items with at least one match
    matches: int = 0  # matches returned
    truncated: int = 0  # items whose matches were cut
    #: (item index, match JSON) of every match, for the audit log
    hits: list[tuple[int, bytes]] = field(default_factory=list)


def _int_field(doc: dict[str, Any], name: str, default: int, lo: int, hi: int) -> Any:
    v = doc.get(name, default)
    if isinstance(v, float) and v.is_integer():
        v = int(v)  # 31.0 is an integer to JSON Schema
    if not isinstance(v, int) or isinstance(v, bool):
        return unprocessable(name, f"expected an integer, got {json_kind(v)}")
    if not lo <= v <= hi:
        return unprocessable(name, f"must be {lo}..{hi}, got {v}")
    return v


def parse_request(body: bytes, max_items: int) -> PdqRequest | Response:
    """The request of a POST /v1/pdq body, or the answer refusing it: 400
    (not a JSON object), 413 (too many items), 422 (a field or an item:
    named, the first one found; a hash is never echoed)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return error(400, f"malformed JSON: {exc}")
    if not isinstance(doc, dict):
        return error(400, "expected a JSON object with an array 'hashes'")
    for name in doc:
        if name not in FIELDS:
            # a short word is named (a typo); anything else might be a hash
            shown = name if _WORD.fullmatch(name) else "(a key)"
            return unprocessable(shown, f"unknown field; known: {', '.join(FIELDS)}")
    hashes = doc.get("hashes")
    if not isinstance(hashes, list):
        return unprocessable(
            "hashes", f"expected an array of PDQ hashes, got {json_kind(hashes)}"
        )
    values = []
    for name, default, lo, hi in (
        ("max_distance", DEFAULT_MAX_DISTANCE, 0, MAX_DISTANCE),
        ("min_quality", DEFAULT_MIN_QUALITY, 0, 100),
        ("max_matches", DEFAULT_MAX_MATCHES, 1, MAX_MATCHES),
    ):
        v = _int_field(doc, name, default, lo, hi)
        if isinstance(v, tuple):
            return v
        values.append(v)
    n = len(hashes)
    limit = min(max_items, MAX_ITEMS)
    if n > limit:
        return too_large(f"{n} items, more than the limit of {limit} per request")
    if values[0] > DEFAULT_MAX_DISTANCE and n > MAX_ITEMS_WIDE:
        return too_large(
            f"{n} items, more than the limit of {MAX_ITEMS_WIDE} per request "
            f"with a max_distance above {DEFAULT_MAX_DISTANCE}"
        )
    rows = pack_hashes(hashes)
    if isinstance(rows, tuple):
        return rows
    return PdqRequest(rows, *values)


def pack_hashes(hashes: list[Any]) -> np.ndarray | Response:
    """The (n, 32) rows of a list of 64-hex PDQ hashes (any case), decoded
    in one C pass; or 422 naming the first item that is not one."""
    n = len(hashes)
    kinds = np.empty(n, dtype=np.uint8)
    out = np.empty(32 * n, dtype=np.uint8)
    # 64 hex characters are what the C pass calls a sha256: kind 2
    counts = _core.pack_any_hex(
        hashes, kinds, np.empty(16 * n, np.uint8), np.empty(20 * n, np.uint8), out
    )
    if counts[2] == n:
        return out.reshape(n, 32)
    i = int(np.flatnonzero(kinds != 2)[0])
    return unprocessable(f"hashes[{i}]", hash_problem(hashes[i]))


def hash_problem(x: Any) -> str:
    """Why `x` is not a PDQ hash in hex (without echoing it)."""
    if not isinstance(x, str):
        return f"expected a PDQ hash (64 hex characters), got {json_kind(x)}"
    if len(x) != 64:
        return f"expected a PDQ hash of 64 hex characters, got {len(x)} characters"
    bad = next((i for i, c in enumerate(x) if c not in _HEX), None)
    if bad is None:
        return "expected a PDQ hash in hex"
    return f"expected a PDQ hash in hex, got a non-hex character at position {bad}"


def no_pdq(ds: Dataset, hma: bool = False) -> Response | None:
    """The refusal when the served generation has no PDQ hashes: 409 for
    POST /v1/pdq (a valid request the dataset's state cannot answer; a
    reload to a dataset with PDQ hashes lifts it), and HMA's answer for a
    signal type it has no index of (400, "No such SignalType 'pdq'")."""
    if ds.current().pdq is not None:
        return None
    if hma:
        return error(400, f"No such SignalType 'pdq' ({_NO_PDQ})")
    return error(409, _NO_PDQ)


# -- search ------------------------------------------------------------------


class _Records:
    """The JSON of a matched record (its digests, size and labels, as
    /v1/check shows records), rendered once per record per request, and
    whether the dataset's suppressed labels drop it."""

    def __init__(self, gen: Generation) -> None:
        self.gen = gen
        self.keep = gen.record_filter()
        self.cache: dict[int, bytes | None] = {}

    def tail(self, rid: int) -> bytes | None:
        out = self.cache.get(rid, b"")
        if out == b"":
            if self.keep is not None and not self.keep(rid):
                out = None
            else:
                m = self.gen.record(rid)
                out = orjson.dumps(
                    {
                        "md5": m.md5,
                        "sha1": m.sha1,
                        "sha256": m.sha256,
                        "size": m.size,
                        "labels": list(m.labels),
                    }
                )[1:]
            self.cache[rid] = out
        return out


def match_json(idx: NearIndex, row: int, rid: int, distance: int, tail: bytes) -> bytes:
    """One match: record id, distance, the row's PDQ and quality, then the
    record's `tail` (_Records.tail)."""
    return b'{"record":%d,"distance":%d,"pdq":"%s","quality":%d,%s' % (
        rid,
        distance,
        idx.hashes[row].tobytes().hex().encode(),
        int(idx.quality[row]),
        tail,
    )


def _search_chunk(
    idx: NearIndex, rows: np.ndarray, req: PdqRequest
) -> tuple[list[int], list[int], list[int]]:
    """(query, row, distance) lists of the hits of `rows`, per query nearest
    first.  A few queries go through search_one, one C call each without
    numpy around it (its overhead is most of a small batch's cost)."""
    if len(rows) <= _FEW:
        q: list[int] = []
        r: list[int] = []
        d: list[int] = []
        for i, row in enumerate(rows.tolist()):
            for hit_row, dist in idx.search_one(
                bytes(row), req.max_distance, req.min_quality
            ):
                q.append(i)
                r.append(hit_row)
                d.append(dist)
        return q, r, d
    found = idx.search(rows, req.max_distance, req.min_quality)
    return found.query.tolist(), found.row.tolist(), found.distance.tolist()


def search(gen: Generation, req: PdqRequest) -> PdqAnswer:
    """Search every row of `req` in `gen` (which has PDQ hashes) and render
    the per-item results; matches past `max_matches` per item or
    MAX_TOTAL_MATCHES per answer are cut (the item says truncated)."""
    idx = gen.pdq
    assert idx is not None
    rows = req.rows
    n = len(rows)
    ans = PdqAnswer([_EMPTY_ITEM] * n)
    ids = idx.record_ids
    records = _Records(gen)
    budget = MAX_TOTAL_MATCHES
    for start in range(0, n, _CHUNK):
        if budget <= 0:
            # nothing left for these items: cut, unsearched
            for i in range(start, n):
                ans.items[i] = b'{"matches":[],"truncated":true}'
            ans.truncated += n - start
            break
        q, r, d = _search_chunk(idx, rows[start : start + _CHUNK], req)
        if not q:
            continue
        rid = ids[r].tolist()
        if max(rid) >= gen.count:
            raise IndexFormatError(
                f"{gen.path}: a PDQ row points past the {gen.count} records"
            )
        k = 0
        total = len(q)
        while k < total:
            item = q[k]
            end = k
            while end < total and q[end] == item:
                end += 1
            i = start + item
            parts: list[bytes] = []
            cut = False
            for j in range(k, end):
                tail = records.tail(rid[j])
                if tail is None:
                    continue  # a suppressed label
                if len(parts) >= req.max_matches or budget <= 0:
                    cut = True
                    break
                match = match_json(idx, r[j], rid[j], d[j], tail)
                parts.append(match)
                ans.hits.append((i, match))
                budget -= 1
            if parts or cut:
                ans.items[i] = b'{"matches":[%s],"truncated":%s}' % (
                    b",".join(parts),
                    b"true" if cut else b"false",
                )
                ans.matched += bool(parts)
                ans.matches += len(parts)
                ans.truncated += cut
            k = end
    return ans


async def answer_batch(ds: Dataset, req: PdqRequest) -> tuple[Generation, PdqAnswer]:
    """search() on the current generation: in the event loop for a few
    queries within PDQ's usual radius, else in a thread."""
    gen = ds.current()
    if len(req.rows) <= _INLINE and req.max_distance <= DEFAULT_MAX_DISTANCE:
        return gen, search(gen, req)
    return gen, await asyncio.to_thread(search, gen, req)


def render(gen: Generation, req: PdqRequest, ans: PdqAnswer) -> bytes:
    """The JSON body of a POST /v1/pdq answer."""
    head = orjson.dumps(
        {
            "dataset": gen.name,
            "generation": gen.generation,
            "count": len(ans.items),
            "max_distance": req.max_distance,
            "min_quality": req.min_quality,
            "matched": ans.matched,
            "matches": ans.matches,
            "truncated": ans.truncated,
        }
    )
    return b"".join((head[:-1], b',"results":[', b",".join(ans.items), b"]}"))


# -- HMA ---------------------------------------------------------------------


@dataclass
class HmaQuery:
    """A validated HMA lookup: the hash, bank (label) filter, distances."""

    row: np.ndarray  # (1, 32)
    banks: set[str] | None
    include_distance: bool


def hma_query(scope: Any, raw: bool) -> HmaQuery | Response:
    """The query of GET /m/raw_lookup (`raw`) or /m/lookup, or the 400 or
    403 HMA answers (the messages are HMA's)."""
    try:
        params = dict(
            urllib.parse.parse_qsl(
                scope.get("query_string", b"").decode("latin-1"),
                keep_blank_values=True,
                max_num_fields=32,
            )
        )
    except ValueError:
        return error(400, "too many query parameters")
    if not raw and params.get("url"):
        # HMA without its hasher role; this service never fetches URLs
        return error(403, "Hashing is disabled, missing role")
    for name in ("signal", "signal_type"):
        if name not in params:
            return error(400, f"{name} is required")
    signal_type = params["signal_type"]
    if signal_type != "pdq":
        # named as HMA names it, if it looks like a type's name (a misplaced
        # hash is not echoed)
        shown = signal_type if _WORD.fullmatch(signal_type) else "?"
        return error(400, f"No such SignalType '{shown}'")
    signal = params["signal"]
    if len(signal) != 64 or not _HEX.issuperset(signal):
        return error(400, "invalid signal: invalid PDQ hash")
    include = params.get("include_distance", "false")
    if include not in BOOLEANS:
        return error(400, "invalid boolean parameter - prefer true/false")
    banks = params.get("banks")
    return HmaQuery(
        np.frombuffer(bytes.fromhex(signal), np.uint8).reshape(1, 32),
        set(banks.split(",")) if banks else None,
        include in TRUE,
    )


def hma_matches(
    ds: Dataset, q: HmaQuery
) -> tuple[Generation, list[tuple[int, int, int]]]:
    """(record id, distance, PDQ row) of the records within HMA's PDQ
    threshold (31, quality >= 50: Dataset.near's defaults), nearest first,
    each record once (its nearest row), restricted to the records carrying
    one of the banks' labels."""
    gen = ds.current()
    idx = gen.pdq
    assert idx is not None
    found = idx.search_one(q.row.tobytes(), DEFAULT_MAX_DISTANCE, DEFAULT_MIN_QUALITY)
    if not found:
        return gen, []
    ids = idx.record_ids
    rows = [row for row, _ in found]
    rids = [int(ids[row]) for row in rows]
    if max(rids) >= gen.count:
        raise IndexFormatError(
            f"{gen.path}: a PDQ row points past the {gen.count} records"
        )
    keep = gen.record_filter(q.banks) if q.banks is not None else gen.record_filter()
    seen: set[int] = set()
    out = []
    for rid, (row, dist) in zip(rids, found, strict=True):
        if rid in seen or (keep is not None and not keep(rid)):
            continue
        seen.add(rid)
        out.append((rid, dist, row))
    return gen, out


def hma_audit(gen: Generation, matches: list[tuple[int, int, int]]) -> list[bytes]:
    """The audit log's record of each HMA match: as POST /v1/pdq shows it."""
    idx = gen.pdq
    assert idx is not None
    records = _Records(gen)
    out = []
    for rid, dist, row in matches:
        tail = records.tail(rid)
        if tail is not None:
            out.append(match_json(idx, row, rid, dist, tail))
    return out


def hma_raw_answer(q: HmaQuery, matches: list[tuple[int, int, int]]) -> bytes:
    """HMA's raw_lookup answer: content ids, or with include_distance
    ``{"bank_content_id", "distance"}`` objects (distance as a string)."""
    if q.include_distance:
        return orjson.dumps(
            {
                "matches": [
                    {"bank_content_id": rid, "distance": str(d)}
                    for rid, d, _ in matches
                ]
            }
        )
    return orjson.dumps({"matches": [rid for rid, _, _ in matches]})


def hma_lookup_answer(
    gen: Generation, q: HmaQuery, matches: list[tuple[int, int, int]]
) -> bytes:
    """HMA's lookup answer: bank -> matches; a record is listed under each
    of its labels (a record without labels under the dataset's name), and
    with `banks` under those banks only."""
    out: dict[str, list[dict[str, Any]]] = {}
    for rid, d, _ in matches:
        labels = gen.record(rid).labels or (gen.name,)
        for bank in labels:
            if q.banks is None or bank in q.banks:
                out.setdefault(bank, []).append(
                    {"bank_content_id": rid, "distance": str(d)}
                )
    return orjson.dumps(out)


# -- endpoints ---------------------------------------------------------------


class _App(Protocol):
    """What the endpoints use of the application (server/app.py)."""

    ds: Dataset | None
    config: ServerConfig
    uploads: UploadBudget
    metrics: Metrics
    audit: AuditLog | None


class PdqEndpoints:
    """POST /v1/pdq and HMA's GET /m/raw_lookup and /m/lookup, answered
    from the application's current dataset, behind its guards (method, API
    key, rate limit)."""

    def __init__(self, app: _App) -> None:
        self.app = app

    async def batch(self, scope: Any, receive: Any) -> Response:
        """POST /v1/pdq: near matches of a batch of PDQ hashes."""
        app = self.app
        ctype = header(scope, b"content-type")
        json_body = ctype is None or is_json(ctype)
        cfg = app.config
        limit = min(cfg.max_batch, MAX_ITEMS)
        body = await read_body(
            scope,
            receive,
            cfg.max_body,
            app.uploads,
            app.metrics.limit,
            ItemBound("json") if json_body else None,
            limit,
        )
        if isinstance(body, tuple):
            return body
        if not json_body:
            return error(415, "expected Content-Type application/json")
        req = parse_request(body, limit)
        if isinstance(req, tuple):
            return req
        ds = app.ds
        assert ds is not None
        refused = no_pdq(ds)
        if refused is not None:
            return refused
        gen, ans = await answer_batch(ds, req)
        app.metrics.pdq(len(req.rows), ans.matched, ans.matches)
        audit = app.audit
        if ans.hits and audit is not None:
            rows = req.rows
            audit.hits(
                scope.get("hashlookup.key"),
                [(rows[i].tobytes().hex(), gen.generation, m) for i, m in ans.hits],
            )
        return 200, render(gen, req, ans), JSON, []

    async def hma(self, scope: Any, receive: Any) -> Response:
        """GET /m/raw_lookup and /m/lookup: one PDQ hash, HMA's shapes."""
        raw = scope["path"] == "/m/raw_lookup"
        q = hma_query(scope, raw)
        if isinstance(q, tuple):
            return q
        app = self.app
        ds = app.ds
        assert ds is not None
        refused = no_pdq(ds, hma=True)
        if refused is not None:
            return refused
        gen, matches = hma_matches(ds, q)
        app.metrics.pdq(1, bool(matches), len(matches))
        audit = app.audit
        if matches and audit is not None:
            query = q.row.tobytes().hex()
            audit.hits(
                scope.get("hashlookup.key"),
                [(query, gen.generation, m) for m in hma_audit(gen, matches)],
            )
        if raw:
            return 200, hma_raw_answer(q, matches), JSON, []
        return 200, hma_lookup_answer(gen, q, matches), JSON, []
