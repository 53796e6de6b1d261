"""PDQ inventories: a table's column of PDQ hashes matched within a Hamming
radius (``hlookup match --pdq``, docs/NEAR.md).

A CSV/TSV or Parquet inventory's PDQ column is the one its ``column``
names (``pdq`` also finds the column the importers read as PDQ: ``pdq``,
``pdqhash``, any case and spacing); its quality column, when there is one,
is ``quality`` or ``pdq_quality``, as the importers read it.  Each
row's hash is searched with ``Dataset.near_many`` in batches; a row whose
quality is below `min_quality` is not searched (as the dataset's own hashes
of low quality are not matched).  An empty PDQ cell is no query.  A bad
cell (not 64 hex characters, a quality outside 0..100) is an InputError
naming the file, row and column, or with ``skip_invalid`` a counted skip.

Only the PDQ column is read: digest columns of the same inventory are
matched by a run over that column (the outputs differ in shape: a row has
any number of near matches, each with its distance).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from hashlookup.store.dataset import Dataset
else:
    from hashlookup._lazy import numpy as np

from hashlookup.errors import InputError
from hashlookup.importers import pdq as _pdq
from hashlookup.importers._common import normalise_name
from hashlookup.match.pieces import Inventory

#: Rows searched at once.
BATCH_ROWS = 1 << 14


@dataclass
class NearPiece:
    """The near matches of a batch of rows of one inventory.

    Attributes
    ----------
    inventory : Inventory
        The input.
    rows : numpy.ndarray
        int64 data-row number (1 = the first row after the header) of each
        query.
    hashes : numpy.ndarray
        ``(n, 32)`` uint8 PDQ hash of each query.
    quality : numpy.ndarray or None
        Each query's quality (-1: empty cell), None without a quality
        column.
    query, record_id, distance : numpy.ndarray
        The matches (``Dataset.near_many``): index into ``rows``, record,
        distance; per query nearest first, then by record id.
    low_quality : int
        Rows not searched: quality below the floor.
    invalid : int
        Rows skipped as invalid (``skip_invalid``).
    """

    inventory: Inventory
    rows: np.ndarray
    hashes: np.ndarray
    quality: np.ndarray | None
    query: np.ndarray
    record_id: np.ndarray
    distance: np.ndarray
    low_quality: int = 0
    invalid: int = 0

    @property
    def found(self) -> np.ndarray:
        """Per query: whether it has a match."""
        out = np.zeros(len(self.rows), bool)
        out[self.query] = True
        return out


def _columns(inv: Inventory, names: list[str]) -> tuple[int, int | None]:
    """(PDQ column, quality column or None) of a header: the column named
    as `inv.column` says, or when that is a PDQ name (``pdq``) and no column
    is named so exactly, the one the importers would read as PDQ."""
    found = _pdq.find_columns(names)
    quality = found[1] if found is not None else None
    assert inv.column is not None  # tables always name one
    if inv.column in names:
        return names.index(inv.column), quality
    if found is not None and normalise_name(inv.column) in _pdq.PDQ_NAMES:
        return found
    shown = ", ".join(repr(n) for n in names[:20])
    raise InputError(f"{inv.name}: no column {inv.column!r} (columns: {shown})")


def _csv_cells(
    inv: Inventory,
) -> Iterator[tuple[int, list[Any], list[Any] | None, str]]:
    """(first row, PDQ cells, quality cells or None) per batch of a CSV/TSV."""
    with open(
        inv.path, newline="", encoding="utf-8-sig", errors="surrogateescape"
    ) as f:
        reader = csv.reader(f, delimiter=inv.delimiter or ",")
        try:
            names = next(reader)
        except StopIteration:
            raise InputError(f"{inv.name}: empty file (no header row)") from None
        except csv.Error as e:
            raise InputError(f"{inv.name}:1: header row: {e}") from None
        col, qcol = _columns(inv, names)
        row = 1
        hashes: list[Any] = []
        quality: list[Any] = []
        try:
            for fields in reader:
                if not fields:
                    continue  # an empty line is no row
                hashes.append(fields[col] if col < len(fields) else "")
                if qcol is not None:
                    quality.append(fields[qcol] if qcol < len(fields) else "")
                if len(hashes) == BATCH_ROWS:
                    yield row, hashes, quality if qcol is not None else None, names[col]
                    row += len(hashes)
                    hashes, quality = [], []
        except csv.Error as e:
            raise InputError(f"{inv.name}:{reader.line_num}: {e}") from None
        if hashes:
            yield row, hashes, quality if qcol is not None else None, names[col]


def _parquet_cells(
    inv: Inventory,
) -> Iterator[tuple[int, list[Any], list[Any] | None, str]]:
    import pyarrow.parquet as pq

    f = pq.ParquetFile(inv.path)
    names = list(f.schema_arrow.names)
    col, qcol = _columns(inv, names)
    want = [names[col]] + ([names[qcol]] if qcol is not None else [])
    row = 1
    for batch in f.iter_batches(batch_size=BATCH_ROWS, columns=want):
        hashes = [_text(v) for v in batch.column(0).to_pylist()]
        quality = batch.column(1).to_pylist() if qcol is not None else None
        if quality is not None:
            quality = [_text(v) for v in quality]
        yield row, hashes, quality, names[col]
        row += len(hashes)


def _text(v: Any) -> Any:
    """A Parquet cell as the CSV reader would give it (None: empty)."""
    if v is None:
        return ""
    if isinstance(v, (bytes, bytearray)):
        return v.decode("ascii", "replace")
    return str(v) if isinstance(v, int) else v


def match_pdq(
    ds: Dataset,
    inv: Inventory,
    max_distance: int,
    min_quality: int,
    *,
    skip_invalid: bool = False,
    only: tuple[str, ...] | None = None,
    exclude: tuple[str, ...] | None = None,
    threads: int | None = None,
) -> Iterator[NearPiece]:
    """The near matches of the PDQ column of one inventory, batch by batch
    in row order.

    Parameters
    ----------
    ds : Dataset
        A dataset with PDQ hashes.
    inv : Inventory
        A CSV/TSV or Parquet inventory; its ``column`` names the PDQ column
        (``"pdq"`` also finds one the importers read as PDQ, such as
        ``PDQ Hash``).
    max_distance, min_quality, only, exclude, threads
        As for ``Dataset.near_many``; `min_quality` also drops the rows of
        lower quality.
    skip_invalid : bool
        Skip bad cells (counted in ``NearPiece.invalid``) instead of
        raising InputError.

    Yields
    ------
    NearPiece
        One per batch of rows.
    """
    if inv.kind == "text":
        raise InputError(
            f"{inv.name}: PDQ hashes are matched from a CSV/TSV or Parquet "
            "inventory (a column named pdq); for a few hashes use "
            "`hlookup check DATASET --pdq HEX...`"
        )
    cells = _parquet_cells(inv) if inv.kind == "parquet" else _csv_cells(inv)
    for first, hashes, quality, name in cells:
        bad: dict[int, str] = {}
        raw, present, q = _pdq.decode(hashes, quality, ("h", "q"), bad)
        if bad:
            if not skip_invalid:
                # The cell is not echoed: it may be a queried hash.
                i = min(bad)
                what = (
                    f"column {name!r}: not a PDQ hash (64 hex characters)"
                    if bad[i].startswith("h")
                    else "its PDQ quality is not 0..100"
                )
                raise InputError(f"{inv.name}: row {first + i}: {what}")
            present[list(bad)] = False
        keep = present.copy()
        qarr = None
        if quality is not None:
            empty = np.array([str(v).strip() == "" for v in quality], bool)
            qarr = np.where(empty, -1, q.astype(np.int64))
            keep &= (qarr < 0) | (qarr >= min_quality)
        low = int(np.count_nonzero(present & ~keep))
        idx = np.flatnonzero(keep)
        rows = idx.astype(np.int64) + first
        queries = np.ascontiguousarray(raw[idx])
        if len(queries):
            hits = ds.near_many(
                queries,
                max_distance,
                min_quality=min_quality,
                threads=threads,
                only=only,
                exclude=exclude,
            )
            query, rid, dist = hits.query, hits.record_id, hits.distance
        else:
            query = rid = dist = np.zeros(0, np.int64)
        # Rows below the floor are listed too (as not found), in row order.
        lows = np.flatnonzero(present & ~keep)
        order_rows = np.concatenate([rows, lows.astype(np.int64) + first])
        order = np.argsort(order_rows, kind="stable")
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        all_hashes = np.concatenate([queries, raw[lows]])[order]
        all_quality = None
        if qarr is not None:
            all_quality = np.concatenate([qarr[idx], qarr[lows]])[order]
        yield NearPiece(
            inv,
            order_rows[order],
            all_hashes,
            all_quality,
            inverse[query],
            rid,
            dist,
            low,
            len(bad),
        )
