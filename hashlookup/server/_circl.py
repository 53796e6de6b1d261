"""The CIRCL hashlookup-server answer shapes that need record attributes,
and its routes hashlookup has nothing else to say for (docs/SERVER.md).

CIRCL's single lookup returns a record's fields under their own names
(``FileName``, ``CRC32``, ``SpecialCode``, ...) with ``ProductCode`` and
``OpSystemCode`` replaced by the NSRL table rows they name (objects of
strings), plus ``hashlookup:trust``; its bulk answers keep every field
flat and have no trust.  A dataset with attributes is answered here (one
Match per hit, in Python); a dataset without attributes keeps the C path
of _render.HitRenderer unchanged (CirclSingleHits only looks at whether the
generation has attributes, once per generation).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import orjson

from hashlookup.algorithms import WIDTH
from hashlookup.errors import IndexFormatError
from hashlookup.server._audit import generation_part
from hashlookup.server._check import (
    INVALID,
    MISS,
    SingleHits,
    circl_json,
    circl_record,
    native_json,
)
from hashlookup.server._render import append_audit_line
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
    d: dict[str, Any] = dict(attributes)
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
            # renderer): only hits pay for the Match and the full shape
            self.answer = functools.partial(_answer_with_attributes, st, self.answer)


def _answer_with_attributes(
    st: Generation,
    first: Any,
    algorithm: str,
    digest: str,
    audit: bytearray | None = None,
    who: bytes | None = None,
) -> bytes | int:
    """SingleHits.answer with a hit in CIRCL's single shape: `first` (the
    plain answerer) tells hits from the rest, the Match renders the hit."""
    got = first(algorithm, digest)
    if type(got) is not bytes:
        return got
    if algorithm not in WIDTH or len(digest) != 2 * WIDTH[algorithm]:
        return INVALID
    try:
        m = st.lookup(digest)
    except ValueError as exc:
        if isinstance(exc, IndexFormatError):
            raise  # a damaged record, label bitmap or attribute
        return INVALID
    if m is None or m.algorithm != algorithm:
        return MISS
    if audit is not None:
        assert who is not None
        append_audit_line(
            audit, who, digest, generation_part(m.generation), native_json(m)
        )
    return orjson.dumps(single_record(m, st.name, st.code_tables))
