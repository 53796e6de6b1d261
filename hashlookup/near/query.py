"""Near matches of a dataset generation: rows found by the PDQ index ->
records (digests, labels), with the label filters applied.

``hashlookup.Dataset.near`` and ``near_many`` delegate here with their
current generation.  This module sits below the store, so it takes the
generation as any object with the attributes of ``Generation`` that it
uses (``pdq``, ``path``, ``record``, ``record_filter``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np

    from hashlookup.near.index import NearIndex
else:
    from hashlookup._lazy import numpy as np

from hashlookup.errors import IndexFormatError
from hashlookup.near._defaults import check_radius
from hashlookup.near.hashes import pdq_bytes, pdq_rows


class NearMatch(NamedTuple):
    """A record whose PDQ hash is within the radius of a query.

    Returned by ``Dataset.near``, nearest first.

    Attributes
    ----------
    record_id : int
        The record's id in its generation.
    distance : int
        Hamming distance (bits) between the query and the record's PDQ.
    pdq : str
        The record's PDQ hash (64 lowercase hex characters).
    quality : int
        Its PDQ quality, 0..100.
    md5, sha1, sha256 : str or None
        The record's digests in lowercase hex, None where it has none.
    size : int or None
        The file's size in bytes, None if unknown.
    labels : tuple of str
        The record's labels, sorted.
    generation : int
        Version number of the dataset generation that answered.
    built : str
        Build time of that generation (ISO 8601, UTC).
    """

    record_id: int
    distance: int
    pdq: str
    quality: int
    md5: str | None
    sha1: str | None
    sha256: str | None
    size: int | None
    labels: tuple[str, ...]
    generation: int
    built: str


class NearHits(NamedTuple):
    """Flat results of ``Dataset.near_many``, in query order.

    Attributes
    ----------
    query : numpy.ndarray
        int64 position of the query of each hit.
    record_id : numpy.ndarray
        int64 record id of each hit.
    distance : numpy.ndarray
        int64 Hamming distance of each hit; per query nearest first, then
        by record id.
    """

    query: np.ndarray
    record_id: np.ndarray
    distance: np.ndarray


class _Generation(Protocol):
    path: str
    count: int

    @property
    def pdq(self) -> NearIndex | None: ...

    def record(self, record_id: int) -> Any: ...

    def record_filter(
        self, only: Any = None, exclude: Any = None
    ) -> Callable[[int], bool] | None: ...


def _check_ids(gen: _Generation, ids: np.ndarray) -> None:
    """A record id past the records is damage (verify() finds it too)."""
    if len(ids) and int(ids.max()) >= gen.count:
        raise IndexFormatError(
            f"{gen.path}: a PDQ row points past the {gen.count} records"
        )


def _index(gen: _Generation) -> NearIndex:
    idx = gen.pdq
    if idx is None:
        raise ValueError(
            f"{gen.path}: the dataset has no PDQ hashes (build it from inputs "
            "with a pdq column, docs/NEAR.md)"
        )
    return idx


def near(
    gen: _Generation,
    query: Any,
    max_distance: int,
    min_quality: int,
    only: Any = None,
    exclude: Any = None,
) -> list[NearMatch]:
    """The records within `max_distance` of one PDQ hash (see
    ``Dataset.near``)."""
    q = pdq_bytes(query)
    check_radius(max_distance, min_quality)
    idx = _index(gen)
    found = idx.search_one(q, max_distance, min_quality)
    if not found:
        return []
    keep = gen.record_filter(only, exclude)
    hashes, ids, quality = idx.hashes, idx.record_ids, idx.quality
    count = gen.count
    out = []
    for row, dist in found:
        rid = int(ids[row])
        if rid >= count:
            _check_ids(gen, ids[row : row + 1])
        if keep is not None and not keep(rid):
            continue
        m = gen.record(rid)
        out.append(
            NearMatch(
                rid,
                dist,
                hashes[row].tobytes().hex(),
                int(quality[row]),
                m.md5,
                m.sha1,
                m.sha256,
                m.size,
                m.labels,
                m.generation,
                m.built,
            )
        )
    return out


def near_many(
    gen: _Generation,
    queries: Any,
    max_distance: int,
    min_quality: int,
    threads: int | None,
    only: Any = None,
    exclude: Any = None,
) -> NearHits:
    """Flat near matches of many PDQ hashes (see ``Dataset.near_many``)."""
    rows = pdq_rows(queries)
    check_radius(max_distance, min_quality)
    idx = _index(gen)
    found = idx.search(rows, max_distance, min_quality, threads=threads)
    rid = idx.record_ids[found.row].astype(np.int64)
    _check_ids(gen, rid)
    query = found.query
    dist = found.distance.astype(np.int64)
    keep = gen.record_filter(only, exclude)
    if keep is not None and len(rid):
        uniq = np.unique(rid)
        wanted = np.fromiter((keep(int(r)) for r in uniq), bool, len(uniq))
        mask = wanted[np.searchsorted(uniq, rid)]
        query, rid, dist = query[mask], rid[mask], dist[mask]
    return NearHits(query, rid, dist)
