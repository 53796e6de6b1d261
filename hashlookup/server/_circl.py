"""The CIRCL hashlookup-server answer shapes that need record attributes,
and its routes hashlookup has nothing else to say for (docs/SERVER.md).

CIRCL's single lookup returns a record's fields under their own names
(``FileName``, ``CRC32``, ``SpecialCode``, ...) with ``ProductCode`` and
``OpSystemCode`` replaced by the NSRL table rows they name (objects of
strings), plus ``hashlookup:trust``; its bulk answers keep every field
flat and have no trust.  A dataset with attributes is answered here: the
C renderer's record with the attribute members put in front (misses cost
what they cost without attributes); a dataset without attributes keeps
the C path of _render.HitRenderer unchanged (CirclSingleHits only looks at
whether the generation has attributes, once per generation).
single_record is the reference of the single shape, bulk_json renders the
bulk one.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import orjson

from hashlookup.server._check import (
    SingleHits,
    circl_json,
    circl_record,
)
from hashlookup.store.code_tables import CodeTable
from hashlookup.store.dataset import Generation, Match

#: GET /stats/top: CIRCL's most-queried lists; hashlookup never records
#: queries, so both are always empty
TOP = b'{"nx":[],"exist":[]}'
#: the attributes a single lookup expands into the code table row they name
EXPANDED = ("OpSystemCode", "ProductCode")
#: hashlookup-server's trust: 50 ("unknown"), 5 more per parent (hashlookup
#: keeps no parents), 20 less for a record marked KnownMalicious, at most 100
TRUST_UNKNOWN = 50
TRUST_MALICIOUS_PENALTY = 20
#: the keys of our own record: an attribute of one of these names is never
#: shown (the record's digests, size and facts are the answer's)
RESERVED = frozenset(
    (
        "MD5",
        "SHA-1",
        "SHA-256",
        "FileSize",
        "hashlookup:labels",
        "hashlookup:dataset",
        "hashlookup:generation",
        "hashlookup:built",
        "hashlookup:trust",
    )
)


def trust(attributes: Mapping[str, str]) -> int:
    """hashlookup-server's ``hashlookup:trust`` of a record.

    Parameters
    ----------
    attributes : Mapping[str, str]
        The record's attributes.

    Returns
    -------
    int
        50, less 20 when the record carries a ``KnownMalicious`` attribute
        (CIRCL's rule; the parents it also counts are not kept here).
    """
    value = TRUST_UNKNOWN
    if "KnownMalicious" in attributes:
        value -= TRUST_MALICIOUS_PENALTY
    return max(0, min(100, value))


def _flat(m: Match, dataset: str, attributes: dict[str, str]) -> dict[str, Any]:
    """The record's attributes, then our CIRCL record over them (digests,
    size and the hashlookup: keys win over attributes of the same name)."""
    d: dict[str, Any] = {k: v for k, v in attributes.items() if k not in RESERVED}
    d.update(circl_record(m, dataset))
    return d


def single_record(
    m: Match, dataset: str, tables: Mapping[str, CodeTable]
) -> dict[str, Any]:
    """A hit as CIRCL's GET /lookup/... answers it.

    Parameters
    ----------
    m : Match
        The hit.
    dataset : str
        The dataset's name.
    tables : mapping
        The generation's code tables (Generation.code_tables).

    Returns
    -------
    dict
        Attributes under their names, ``OpSystemCode`` and ``ProductCode``
        expanded into their table rows (every column, "" where empty) when
        the table has the code, digests in upper case, ``FileSize`` as a
        string, ``hashlookup:trust`` and our ``hashlookup:`` facts.
    """
    attributes = dict(m.attributes)  # one conversion: plain dict reads below
    d = _flat(m, dataset, attributes)
    for name in EXPANDED:
        code = attributes.get(name)
        table = tables.get(name)
        if code is None or table is None:
            continue
        row = table.expanded(code)
        if row is not None:
            d[name] = row
    d["hashlookup:trust"] = trust(attributes)
    return d


def bulk_json(m: Match, dataset: str) -> bytes:
    """A hit of POST /bulk/...: CIRCL keeps bulk records flat (codes stay
    strings, no trust); without attributes exactly _check.circl_json."""
    if not m.attributes:
        return circl_json(m, dataset)
    return orjson.dumps(_flat(m, dataset, dict(m.attributes)))


class _Shape:
    """The attribute part of the single-lookup answers of one generation:
    `head(record_id)` is the JSON members (without braces) that
    single_record adds to the record, with each code's expanded object
    rendered once (cached per code)."""

    def __init__(self, st: Generation) -> None:
        assert st.attributes is not None
        self.values = st.attributes.values
        self.tables = st.code_tables
        self.codes: dict[tuple[str, str], bytes] = {}

    def head(self, record_id: int) -> bytes:
        values = self.values(record_id)
        parts = []
        for name in EXPANDED:
            code = values.get(name)
            if code is not None and name in self.tables:
                part = self.codes.get((name, code))
                if part is None:
                    part = self._expanded(name, code)
                if part:
                    del values[name]
                    parts.append(part)
        flat = {k: v for k, v in values.items() if k not in RESERVED}
        if flat:
            parts.append(orjson.dumps(flat)[1:-1])
        parts.append(b'"hashlookup:trust":%d' % trust(values))
        return b",".join(parts)

    def _expanded(self, name: str, code: str) -> bytes:
        """`"name":{row}` of a code ("" when the table lacks it), cached."""
        row = self.tables[name].expanded(code)
        part = b"" if row is None else orjson.dumps({name: row})[1:-1]
        if len(self.codes) >= 4096:
            self.codes.clear()
        self.codes[(name, code)] = part
        return part


class CirclSingleHits(SingleHits):
    """SingleHits whose generations with record attributes are answered in
    CIRCL's full single-lookup shape (single_record); others keep
    SingleHits' C renderer as it is."""

    def prepare(self) -> None:
        """Answer from the dataset's current generation from now on."""
        for _ in range(3):  # the same generation as SingleHits prepared
            super().prepare()
            st = self.ds.current()
            if st.generation == self.generation:
                break
        if st.attributes is not None and st.generation == self.generation:
            # misses and bad digests stay with SingleHits' answer (the C
            # renderer): only hits pay for their attributes
            self.answer = functools.partial(
                _answer_with_attributes, st, self.answer, _Shape(st)
            )


def _answer_with_attributes(
    st: Generation,
    first: Any,
    shape: _Shape,
    algorithm: str,
    digest: str,
    audit: bytearray | None = None,
    who: bytes | None = None,
) -> bytes | int:
    """SingleHits.answer with a hit in CIRCL's single shape: `first` (the
    plain answerer: the C renderer) answers, and writes the audit line; a
    hit's record is then found again (one C search) for its attributes,
    which go in front of the plain record (the same members as
    single_record: the tests compare the two)."""
    got = first(algorithm, digest, audit, who)
    if type(got) is not bytes:
        return got
    rid = st.record_id(algorithm, st.tables[algorithm].find(digest))
    return b"{" + shape.head(rid) + b"," + got[1:]
