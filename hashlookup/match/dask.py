"""Distributed matching of digest inventories on Dask (``pip install
'hashlookup[dask]'``).

:func:`match` takes a Dask DataFrame, or paths of Parquet/CSV/TSV files, and
returns the hits as a Dask DataFrame.  Every task opens the dataset by path on
its worker (memory-mapped, so all tasks of a worker process share one mapping
and the page cache) and matches its partition with the same batch kernel as
``hashlookup match`` (hex decoded in C, one lookup call per partition); only
the hits become Python objects.  The dataset is never pickled or shipped:
**the dataset path must be readable on every worker** (shared storage, or a
copy at the same path on each node).  See docs/DASK.md.
"""

from __future__ import annotations

import glob
import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from hashlookup.match.inventory import Inventory, detect_kind
from hashlookup.match.keys import KeyMatcher, record_labels
from hashlookup.match.tables import arrow_keys, bind_width, check_column, csv_header

if TYPE_CHECKING:
    import dask.dataframe as dd

    from hashlookup._types import PublicKeySpec
    from hashlookup.store.dataset import Dataset

__all__ = ["OUTPUT_COLUMNS", "match", "open_cached"]

#: Columns added to the input columns of every hit.
OUTPUT_COLUMNS = ("digest", "record", "labels")
#: Columns that identify a hit's input when :func:`match` reads files itself.
PATH_COLUMNS = ("file", "row")

_cache_lock = threading.Lock()
_cache: dict[tuple[object, ...], Dataset] = {}


def open_cached(
    path: str, suppress: Sequence[str] = (), require_signature: bytes | None = None
) -> Dataset:
    """The open :class:`hashlookup.Dataset` at ``path``, opened once per process.

    Cached by path and file identity (device, inode, size, mtime): a dataset
    replaced by a new generation (written atomically, so a new inode) is opened
    anew by the next task, while tasks still running keep the old mapping.
    ``require_signature`` (the 32 raw bytes of an Ed25519 public key): every
    file opened must carry a valid signature by it (docs/SIGNING.md)."""
    from hashlookup.store.dataset import open_dataset

    st = os.stat(path)
    key = (
        os.path.abspath(path),
        st.st_dev,
        st.st_ino,
        st.st_size,
        st.st_mtime_ns,
        tuple(suppress),
        require_signature,
    )
    with _cache_lock:
        ds = _cache.get(key)
        if ds is None:
            stale = [k for k in _cache if k[0] == key[0]]
            for k in stale:  # an older generation of the same path
                del _cache[k]
            ds = _cache[key] = open_dataset(
                path, suppress=suppress, require_signature=require_signature
            )
        return ds


def _labels_of(ds: Any, record_ids: np.ndarray) -> list[str]:
    return [";".join(labels) for labels in record_labels(ds, record_ids)]


def _match_arrow(
    column: Any,
    dataset_path: str,
    name: str,
    column_name: str,
    first_row: int,
    only: Any,
    exclude: Any,
    skip_invalid: bool,
    key: bytes | None,
) -> tuple[np.ndarray, list[str], np.ndarray, list[str]]:
    """``(positions, digests, record_ids, labels)`` of the hits of an Arrow
    digest column (positions count from 0 within the column)."""
    ds = open_cached(dataset_path, require_signature=key)
    matcher = KeyMatcher(ds, want_records=True, only=only, exclude=exclude)
    inv = Inventory(name, "parquet", column=column_name)
    empty = np.empty(0, np.int64)
    if len(column) == 0:
        return empty, [], empty, []
    if not bind_width(
        inv, matcher, column.slice(0, 4096).to_pylist(), first_row, skip_invalid
    ):
        if len(column) <= 4096 or not bind_width(
            inv, matcher, column.to_pylist(), first_row, skip_invalid
        ):
            return empty, [], empty, []  # no digest at all
    keys, rows, _invalid, _empty = arrow_keys(
        inv, matcher, column, first_row, skip_invalid
    )
    found, record_ids, _filtered = matcher.lookup(keys)
    sel = np.flatnonzero(found)
    assert record_ids is not None
    hit_keys = np.ascontiguousarray(keys[sel]).tobytes().hex()
    step = 2 * keys.shape[1]
    digests = [hit_keys[j : j + step] for j in range(0, len(hit_keys), step)]
    rids = record_ids[sel]
    return rows[sel] - first_row, digests, rids, _labels_of(ds, rids)


def _with_hits(
    frame: Any,
    positions: np.ndarray,
    digests: list[str],
    record_ids: np.ndarray,
    labels: list[str],
) -> Any:
    import pandas as pd

    hits = frame.iloc[positions].copy()
    hits["digest"] = pd.Series(digests, index=hits.index, dtype=object)
    hits["record"] = pd.Series(record_ids, index=hits.index, dtype="int64")
    hits["labels"] = pd.Series(labels, index=hits.index, dtype=object)
    return hits


def _match_frame(
    frame: Any,
    dataset_path: str,
    column: str,
    only: Any,
    exclude: Any,
    skip_invalid: bool,
    key: bytes | None,
    partition_info: Any = None,
) -> Any:
    """map_partitions task: the hit rows of one pandas partition."""
    import pyarrow as pa

    part = partition_info["number"] if partition_info else "?"
    cells = frame[column]
    try:
        arr = pa.array(cells, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        arr = pa.array([None if c is None or c != c else c for c in cells.tolist()])
    positions, digests, rids, labels = _match_arrow(
        arr,
        dataset_path,
        f"partition {part}",
        column,
        1,
        only,
        exclude,
        skip_invalid,
        key,
    )
    return _with_hits(frame, positions, digests, rids, labels)


class _Piece:
    """A part of an input file read by one task: a Parquet row group or a
    whole CSV/TSV file."""

    def __init__(
        self, path: str, kind: str, row_group: int, first_row: int, delimiter: str
    ) -> None:
        self.path, self.kind = path, kind
        self.row_group, self.first_row = row_group, first_row
        self.delimiter = delimiter


def _read_piece(piece: _Piece, column: str) -> Any:
    import pyarrow as pa

    if piece.kind == "parquet":
        import pyarrow.parquet as pq

        with pq.ParquetFile(piece.path) as pf:
            return pf.read_row_group(piece.row_group)
    import pyarrow.csv as pacsv

    inv = Inventory(piece.path, piece.kind, column=column, delimiter=piece.delimiter)
    names = csv_header(inv)
    return pacsv.read_csv(
        piece.path,
        parse_options=pacsv.ParseOptions(
            delimiter=piece.delimiter, newlines_in_values=True
        ),
        convert_options=pacsv.ConvertOptions(
            column_types={c: pa.string() for c in names},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )


def _match_piece(
    piece: _Piece,
    dataset_path: str,
    column: str,
    only: Any,
    exclude: Any,
    skip_invalid: bool,
    key: bytes | None = None,
) -> Any:
    """from_map task: read one piece with pyarrow, match its digest column,
    convert only the hit rows to pandas."""
    import pyarrow as pa

    table = _read_piece(piece, column)
    positions, digests, rids, labels = _match_arrow(
        table.column(column),
        dataset_path,
        piece.path,
        column,
        piece.first_row,
        only,
        exclude,
        skip_invalid,
        key,
    )
    hits = table.take(pa.array(positions, type=pa.int64())).to_pandas()
    hits.insert(0, "row", (positions + piece.first_row).astype("int64"))
    hits.insert(0, "file", piece.path)
    hits["file"] = hits["file"].astype(object)
    hits["digest"] = np.asarray(digests, dtype=object)
    hits["record"] = rids.astype("int64")
    hits["labels"] = np.asarray(labels, dtype=object)
    return hits


def expand_paths(paths: str | os.PathLike[str] | Sequence[Any]) -> list[str]:
    """Paths in the given order; glob patterns expanded (sorted)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: list[str] = []
    for p in paths:
        p = os.fspath(p)
        if glob.has_magic(p):
            found = sorted(glob.glob(p))
            if not found:
                raise FileNotFoundError(f"no file matches {p!r}")
            out += found
        else:
            out.append(p)
    return out


def _pieces(
    paths: list[str], column: str, delimiter: str | None
) -> tuple[list[_Piece], Any]:
    """Pieces of every file (Parquet: one per row group) and the pyarrow
    schema of the first file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pieces: list[_Piece] = []
    schema = None
    for path in paths:
        kind = detect_kind(path)
        if kind == "parquet":
            with pq.ParquetFile(path) as pf:
                inv = Inventory(path, kind, column=column)
                check_column(inv, pf.schema_arrow.names)
                schema = schema or pf.schema_arrow
                row = 1
                for g in range(pf.metadata.num_row_groups):
                    pieces.append(_Piece(path, kind, g, row, ","))
                    row += pf.metadata.row_group(g).num_rows
        elif kind in ("csv", "tsv"):
            inv = Inventory(path, kind, column=column, delimiter=delimiter)
            names = csv_header(inv)
            check_column(inv, names)
            schema = schema or pa.schema([(n, pa.string()) for n in names])
            pieces.append(_Piece(path, kind, 0, 1, inv.delimiter or ","))
        else:
            raise ValueError(
                f"{path}: hashlookup.dask.match reads Parquet and "
                "CSV/TSV files (.parquet, .pq, .csv, .tsv, .tab)"
            )
    return pieces, schema


def _check_names(names: Sequence[str], column: str, reserved: Sequence[str]) -> None:
    for name in reserved:
        if name in names and name != column:
            raise ValueError(
                f"the input already has a column {name!r}, which the "
                "hits add: rename it first"
            )


def match(
    data: dd.DataFrame | str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    dataset_path: str | os.PathLike[str],
    column: str = "md5",
    *,
    only: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
    skip_invalid: bool = False,
    delimiter: str | None = None,
    require_signature: PublicKeySpec | None = None,
) -> dd.DataFrame:
    """Match the digests of ``column`` against the dataset at ``dataset_path``.

    Cells hold one hex digest (any case, blanks around it ignored) or raw
    digest bytes; empty and null cells are skipped.  The first digest of
    each partition picks the md5, sha1 or sha256 table.  Nothing runs until
    the result is computed; the dataset is opened on the workers, by path,
    once per worker process (:func:`open_cached`), so it must be readable at
    ``dataset_path`` on every worker.

    Parameters
    ----------
    data : dask.dataframe.DataFrame, str, os.PathLike or sequence of them
        A Dask DataFrame (each partition matched by a ``map_partitions``
        task), or a path, glob pattern or list of paths of Parquet
        (``.parquet``/``.pq``) or CSV/TSV files (all columns read as
        strings; one piece per Parquet row group, one per CSV file).
    dataset_path : str or os.PathLike
        The dataset (or index) file.
    column : str, default "md5"
        The column holding the digests.
    only, exclude : str or sequence of str, optional
        Keep only the hits with one of these labels, or drop those with
        one of them, as in ``Dataset.lookup``.
    skip_invalid : bool, default False
        Skip cells that are not a digest instead of failing the task.
    delimiter : str, optional
        The field separator of CSV/TSV files (one character; by default
        "," for CSV and a tab for TSV).
    require_signature : optional
        A public key, as for :func:`hashlookup.open_dataset`: the dataset
        must be signed by it, checked here and again by every worker when
        it opens the file (a file replaced in between is refused, not
        matched).

    Returns
    -------
    dask.dataframe.DataFrame
        The hits, lazily, one row per hit: the input columns, then
        ``digest`` (lowercase hex), ``record`` (record id) and ``labels``
        (the record's labels joined with ``;``).  Read from paths, the rows
        start with ``file`` and ``row`` (1-based row in that file); from a
        DataFrame they keep its index.

    Raises
    ------
    FileNotFoundError
        ``dataset_path`` does not exist, or a pattern matches no file.
    ValueError
        No input file, no column ``column`` in the DataFrame, or an input
        column named like one the hits add.
    hashlookup.SignatureError
        With ``require_signature``: the dataset is not signed by that key.
    hashlookup.InputError
        When a task runs, unless ``skip_invalid``: an invalid cell, named by
        its file (or partition), row and column.

    Examples
    --------
    >>> import hashlookup.dask
    >>> hits = hashlookup.dask.match(
    ...     "inventory/*.parquet", "known.hlx", column="md5", exclude="nsrl"
    ... )  # doctest: +SKIP
    >>> hits.to_parquet("hits/")  # doctest: +SKIP
    """
    import dask.dataframe as dd
    import pandas as pd

    dataset_path = os.fspath(dataset_path)
    if not os.path.exists(dataset_path):  # a typo is cheaper to catch here
        raise FileNotFoundError(f"dataset not found: {dataset_path}")
    key = None
    if require_signature is not None:
        from hashlookup.store.dataset import open_dataset
        from hashlookup.store.signature import public_key_bytes

        key = public_key_bytes(require_signature)
        open_dataset(dataset_path, require_signature=key).close()  # fail fast
    only_t = (only,) if isinstance(only, str) else (tuple(only) if only else None)
    exclude_t = (
        (exclude,)
        if isinstance(exclude, str)
        else (tuple(exclude) if exclude else None)
    )
    if isinstance(data, dd.DataFrame):
        if column not in data.columns:
            raise ValueError(
                f"no column {column!r} in the DataFrame (columns: "
                f"{', '.join(map(str, data.columns))})"
            )
        _check_names(list(data.columns), column, OUTPUT_COLUMNS)
        meta = _with_hits(
            data._meta.iloc[:0], np.empty(0, np.int64), [], np.empty(0, np.int64), []
        )
        frame: dd.DataFrame = data.map_partitions(
            _match_frame,
            dataset_path,
            column,
            only_t,
            exclude_t,
            skip_invalid,
            key,
            meta=meta,
        )
        return frame
    paths = expand_paths(data)
    if not paths:
        raise ValueError("no input files")
    pieces, schema = _pieces(paths, column, delimiter)
    _check_names(schema.names, column, (*PATH_COLUMNS, *OUTPUT_COLUMNS))
    empty = schema.empty_table().to_pandas()
    empty.insert(0, "row", pd.Series(dtype="int64"))
    empty.insert(0, "file", pd.Series(dtype=object))
    empty["digest"] = pd.Series(dtype=object)
    empty["record"] = pd.Series(dtype="int64")
    empty["labels"] = pd.Series(dtype=object)
    hits: dd.DataFrame = dd.from_map(
        _match_piece,
        pieces,
        dataset_path=dataset_path,
        column=column,
        only=only_t,
        exclude=exclude_t,
        skip_invalid=skip_invalid,
        key=key,
        meta=empty,
        enforce_metadata=False,
        label="hashlookup-match",
    )
    return hits
