"""Building the PDQ sections of a dataset: hashes, their records and
qualities, and the multi-index over them (docs/NEAR.md, docs/FORMAT.md).

The dataset builder collects the PDQ columns of its input batches
(PdqColumns), numbers the records, and asks for the sections here with
each input row's record id.  Rows are stored in record order (a record's
several hashes by hash), one per distinct (record, hash) pair with the
highest quality seen, so that search results ordered by row are ordered by
record id.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hashlookup.near import _near
from hashlookup.store import format as _format

#: Chunks of the multi-index (docs/NEAR.md has the measurements).
DEFAULT_CHUNKS = _near.DEFAULT_CHUNKS


@dataclass
class PdqColumns:
    """PDQ hashes of the input rows read so far, as blocks."""

    rows: list[np.ndarray] = field(default_factory=list)  # int64 input rows
    hashes: list[np.ndarray] = field(default_factory=list)  # (k, 32) uint8
    quality: list[np.ndarray] = field(default_factory=list)  # (k,) uint8

    def add(self, batch: Any, first_row: int) -> None:
        """Take the PDQ hashes of a batch whose rows start at first_row."""
        pdq = getattr(batch, "pdq", None)
        if pdq is None:
            return
        has = batch.has_pdq
        present = np.flatnonzero(has) if has is not None else np.arange(len(pdq))
        if not len(present):
            return
        q = batch.pdq_quality
        self.rows.append(present.astype(np.int64) + first_row)
        self.hashes.append(np.array(pdq[present], dtype=np.uint8, copy=True))
        self.quality.append(
            np.full(len(present), 100, np.uint8)
            if q is None
            else np.asarray(q[present], dtype=np.uint8)
        )

    def __len__(self) -> int:
        return sum(len(r) for r in self.rows)


def pdq_sections(
    cols: PdqColumns, record_ids: np.ndarray, chunks: int = DEFAULT_CHUNKS
) -> tuple[list[_format.SectionData], int]:
    """The three PDQ sections for the collected hashes, and their row count.

    Parameters
    ----------
    cols : PdqColumns
        The hashes and the input rows they came from.
    record_ids : numpy.ndarray
        int64 record id of every input row, -1 for a row left out (the
        allow-list); its PDQ hash is left out too.
    chunks : int
        Chunks of the multi-index (8..64).

    Returns
    -------
    (list of SectionData, int)
        No sections (and 0) when no kept row has a PDQ hash.
    """
    if not len(cols):
        return [], 0
    ids = record_ids[np.concatenate(cols.rows)]
    hashes = np.concatenate(cols.hashes)
    quality = np.concatenate(cols.quality)
    keep = ids >= 0
    ids, hashes, quality = ids[keep], hashes[keep], quality[keep]
    if not len(ids):
        return [], 0
    if quality.max(initial=0) > 100:
        raise ValueError("PDQ quality above 100")
    # Rows in record order (stable: a record's hashes in input order); a
    # record with one hash (the usual case) needs nothing more.
    order = np.argsort(ids, kind="stable")
    ids, hashes, quality = ids[order], hashes[order], quality[order]
    multi = np.zeros(len(ids), bool)
    same = ids[1:] == ids[:-1]
    multi[1:] |= same
    multi[:-1] |= same
    if multi.any():
        ids, hashes, quality = _dedupe(ids, hashes, quality, multi)
    n = len(ids)
    out_ids = ids.astype("<u4")
    out_hashes = np.ascontiguousarray(hashes)
    best = np.ascontiguousarray(quality, dtype=np.uint8)
    bits = _near.bucket_bits_for(chunks, n)
    body = _near.build(out_hashes.reshape(-1), chunks, bits)
    rec = np.concatenate([out_ids.view(np.uint8), best])
    return [
        _format.SectionData(
            _format.KIND_PDQ_HASHES, out_hashes.reshape(-1), flags=0, params=(n, 0, 0)
        ),
        _format.SectionData(_format.KIND_PDQ_RECORDS, rec, flags=0, params=(n, 0, 0)),
        _format.SectionData(
            _format.KIND_PDQ_INDEX,
            np.frombuffer(body, np.uint8),
            flags=0,
            params=(chunks, bits, n),
        ),
    ], n


def _dedupe(
    ids: np.ndarray, hashes: np.ndarray, quality: np.ndarray, multi: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of records with several hashes: one per (record, hash), with the
    highest quality, sorted by hash within the record (the record id
    big-endian in front of the hash makes byte order that order)."""
    sub = np.flatnonzero(multi)
    key = np.empty((len(sub), 36), np.uint8)
    key[:, :4] = ids[sub].astype(">u4").view(np.uint8).reshape(-1, 4)
    key[:, 4:] = hashes[sub]
    uniq, inverse = np.unique(
        key.view(np.dtype((np.void, 36))).ravel(), return_inverse=True
    )
    best = np.zeros(len(uniq), np.uint8)
    np.maximum.at(best, inverse.ravel(), quality[sub])
    table = uniq.view(np.uint8).reshape(-1, 36)
    single = ~multi
    all_ids = np.concatenate(
        [ids[single], table[:, :4].copy().view(">u4").ravel().astype(ids.dtype)]
    )
    all_hashes = np.concatenate([hashes[single], table[:, 4:]])
    all_quality = np.concatenate([quality[single], best])
    order = np.argsort(all_ids, kind="stable")
    return all_ids[order], all_hashes[order], all_quality[order]


def pdq_batches(generation: Any, batch_size: int) -> Iterator[tuple[Any, np.ndarray]]:
    """A generation's PDQ rows as (RecordBatch, record ids) pairs without
    digests, for update_dataset to carry over (each row joins its record
    through the id)."""
    from hashlookup.importers import RecordBatch

    idx = generation.pdq
    if idx is None:
        return
    for start in range(0, idx.count, batch_size):
        stop = min(idx.count, start + batch_size)
        b = RecordBatch.empty(stop - start)
        b.pdq = np.array(idx.hashes[start:stop])
        b.has_pdq = np.ones(stop - start, bool)
        b.pdq_quality = np.array(idx.quality[start:stop])
        yield b, idx.record_ids[start:stop].astype(np.int64)
