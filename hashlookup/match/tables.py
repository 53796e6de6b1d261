"""Table inventories for `match`: CSV/TSV and Parquet digest columns.

Cells become keys with one C call per batch when they can (an Arrow string
column whose cells all have a digest's length is one run of hex; a binary
column of raw digests is used as is), otherwise cell by cell.  CSV is read by
pyarrow's streaming reader when it is installed (it parses in its own
threads), else by the standard csv module; Parquet row groups are read inside
the parallel tasks.  Tasks and pieces are those of ``hashlookup.match.inventory``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from hashlookup import _core, algorithms
from hashlookup.errors import InputError
from hashlookup.importers.digests import CHUNK_SIZE, invalid_message, quote_token
from hashlookup.match.keys import KeyMatcher
from hashlookup.match.pieces import Inventory, Piece, constant_task, read_chunks

#: Rows per batch of a CSV input read with the csv module.
TABLE_BATCH_ROWS = 1 << 18


def table_tasks(
    inv: Inventory,
    matcher: KeyMatcher,
    skip_invalid: bool,
    whole_rows: bool,
    engine: str,
) -> Iterator[Callable[[], Piece]]:
    """Tasks of a CSV/TSV or Parquet input (see ``match_inventory``)."""
    if inv.kind == "parquet":
        return _parquet_tasks(inv, matcher, skip_invalid, whole_rows)
    return _csv_tasks(inv, matcher, skip_invalid, whole_rows, engine)


def _cell_error(inv: Inventory, row: int, what: str) -> InputError:
    where = f"{inv.name}: row {row}"
    line = _csv_line_of_row(inv, row) if inv.kind in ("csv", "tsv") else None
    if line is not None:
        where = f"{inv.name}:{line}: row {row}"
    return InputError(f"{where}: column {inv.column!r}: {what}")


def _csv_line_of_row(inv: Inventory, row: int) -> int | None:
    """Line on which data row ``row`` starts (error path only: rereads the
    file with the csv module, which counts quoted newlines)."""
    try:
        with open(
            inv.path, newline="", encoding="utf-8", errors="surrogateescape"
        ) as f:
            reader = csv.reader(f, delimiter=inv.delimiter or ",")
            line = 1
            i = 0
            for fields in reader:
                if fields or i == 0:  # empty lines are not rows
                    if i == row:
                        return line
                    i += 1
                line = reader.line_num + 1
    except (OSError, csv.Error):
        return None
    return None


def bind_width(
    inv: Inventory,
    matcher: KeyMatcher,
    cells: Sequence[Any],
    first_row: int,
    skip_invalid: bool,
) -> bool:
    """Bind the matcher to the width of the first non-empty cell; False if the
    batch has none."""
    for i, cell in enumerate(cells):
        if cell is None:
            continue
        if (
            isinstance(cell, (bytes, bytearray))
            and len(cell) in (16, 20, 32)
            and not _looks_hex(cell)
        ):
            width = len(cell)
        else:
            token = (
                cell.strip()
                if isinstance(cell, str)
                else bytes(cell).decode("ascii", "replace").strip()
            )
            if not token:
                continue
            width = algorithms.HEX_WIDTH.get(len(token), 0)
            if not width or not _looks_hex(token):
                if skip_invalid:
                    continue
                raise _cell_error(
                    inv,
                    first_row + i,
                    "expected a hex md5, sha1 or sha256 digest (32, 40 or 64 hex "
                    f"characters), got {quote_token(token.encode('utf-8', 'replace'))}",
                )
        matcher.bind(width, f"{inv.name}: row {first_row + i}")
        return True
    return False


def _looks_hex(token: str | bytes | bytearray) -> bool:
    try:
        bytes.fromhex(token if isinstance(token, str) else token.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return False
    return True


def _cells_to_keys(
    inv: Inventory,
    matcher: KeyMatcher,
    cells: Sequence[Any],
    first_row: int,
    skip_invalid: bool,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64], int, int]:
    """Slow path (any cell): ``(keys, rows, invalid, empty)``."""
    width = int(matcher.width)  # type: ignore[arg-type]
    want = 2 * width
    if cells and all(type(c) is str and len(c) == want for c in cells):
        try:  # every cell one digest long: one C call for the batch
            text = "".join(cells).encode("ascii")
        except UnicodeEncodeError:
            text = b""
        if text:
            keys = np.empty((len(cells), width), dtype=np.uint8)
            if _core.decode_hex(text, keys.reshape(-1)) < 0:
                return (
                    keys,
                    np.arange(first_row, first_row + len(cells), dtype=np.int64),
                    0,
                    0,
                )
    out = bytearray()
    rows: list[int] = []
    invalid = empty = 0
    for i, cell in enumerate(cells):
        if cell is None:
            empty += 1
            continue
        if isinstance(cell, (bytes, bytearray)) and len(cell) == width:
            out += cell
            rows.append(first_row + i)
            continue
        token = (
            cell.strip()
            if isinstance(cell, str)
            else bytes(cell).decode("utf-8", "replace").strip()
        )
        if not token:
            empty += 1
            continue
        if len(token) == want:
            try:
                out += bytes.fromhex(token)
                rows.append(first_row + i)
                continue
            except ValueError:
                pass
        if skip_invalid:
            invalid += 1
            continue
        raise _cell_error(
            inv,
            first_row + i,
            invalid_message(
                token.encode("utf-8", "surrogateescape"), width, matcher.algorithm
            ),
        )
    keys = np.frombuffer(bytes(out), dtype=np.uint8).reshape(-1, width)
    return keys, np.asarray(rows, dtype=np.int64), invalid, empty


def arrow_keys(
    inv: Inventory, matcher: KeyMatcher, arr: Any, first_row: int, skip_invalid: bool
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64], int, int]:
    """Keys of an Arrow string/binary column.  Fast path: no nulls and every
    cell exactly one digest long, so the data buffer is one run of hex (or raw
    bytes) decoded with a single C call; anything else takes the cell path."""
    import pyarrow as pa

    n = len(arr)
    width = int(matcher.width)  # type: ignore[arg-type]
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    t = arr.type
    if (
        arr.null_count == 0
        and n
        and (
            pa.types.is_string(t)
            or pa.types.is_binary(t)
            or pa.types.is_large_string(t)
            or pa.types.is_large_binary(t)
        )
    ):
        bufs = arr.buffers()
        otype = (
            np.int64
            if (pa.types.is_large_string(t) or pa.types.is_large_binary(t))
            else np.int32
        )
        offs = np.frombuffer(bufs[1], dtype=otype)[arr.offset : arr.offset + n + 1]
        lengths = np.diff(offs)
        data = (
            np.frombuffer(bufs[2], dtype=np.uint8)
            if bufs[2] is not None
            else np.empty(0, np.uint8)
        )
        span = data[int(offs[0]) : int(offs[-1])]
        rows = np.arange(first_row, first_row + n, dtype=np.int64)
        if bool((lengths == 2 * width).all()):
            keys = np.empty((n, width), dtype=np.uint8)
            if _core.decode_hex(span, keys.reshape(-1)) < 0:
                return keys, rows, 0, 0
        elif pa.types.is_binary(t) and bool((lengths == width).all()):
            return span.reshape(n, width).copy(), rows, 0, 0
    elif pa.types.is_fixed_size_binary(t) and t.byte_width == width and n:
        if arr.null_count == 0:
            raw = np.frombuffer(arr.buffers()[1], dtype=np.uint8)
            raw = raw[arr.offset * width : (arr.offset + n) * width]
            rows = np.arange(first_row, first_row + n, dtype=np.int64)
            return raw.reshape(n, width).copy(), rows, 0, 0
    return _cells_to_keys(inv, matcher, arr.to_pylist(), first_row, skip_invalid)


def _have_pyarrow() -> bool:
    try:
        import pyarrow.csv  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------
# CSV / TSV
# --------------------------------------------------------------------------


def csv_header(inv: Inventory) -> list[str]:
    """Column names (a UTF-8 byte order mark, as spreadsheets write, is not
    part of the first name; pyarrow drops it too)."""
    with open(
        inv.path, newline="", encoding="utf-8-sig", errors="surrogateescape"
    ) as f:
        try:
            header = next(csv.reader(f, delimiter=inv.delimiter or ","))
        except StopIteration:
            raise InputError(f"{inv.name}: empty file (no header row)") from None
        except csv.Error as exc:
            raise InputError(f"{inv.name}:1: header row: {exc}") from None
    return header


def check_column(inv: Inventory, names: Sequence[str]) -> None:
    if inv.column not in names:
        shown = ", ".join(repr(n) for n in names[:20])
        more = ", ..." if len(names) > 20 else ""
        raise InputError(
            f"{inv.name}: no column {inv.column!r} (columns: {shown}{more})"
        )
    if list(names).count(inv.column) > 1:  # type: ignore[arg-type]  # a str here
        raise InputError(f"{inv.name}: column {inv.column!r} appears more than once")


def _csv_tasks(
    inv: Inventory,
    matcher: KeyMatcher,
    skip_invalid: bool,
    whole_rows: bool,
    engine: str,
) -> Iterator[Callable[[], Piece]]:
    names = csv_header(inv)
    check_column(inv, names)
    use_arrow = engine == "pyarrow" or (engine == "auto" and _have_pyarrow())
    batches = (
        _arrow_csv_batches(inv, names, whole_rows)
        if use_arrow
        else _python_csv_batches(inv, names, whole_rows)
    )
    yield from _table_tasks(inv, matcher, batches, skip_invalid)


def _arrow_csv_batches(
    inv: Inventory, names: list[str], whole_rows: bool
) -> Iterator[tuple[Any, Any]]:
    """``(digest column, batch or None)`` per batch of rows, all as strings."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    columns = names if whole_rows else [inv.column]
    try:
        reader = pacsv.open_csv(
            inv.path,
            read_options=pacsv.ReadOptions(block_size=CHUNK_SIZE, use_threads=True),
            parse_options=pacsv.ParseOptions(
                delimiter=inv.delimiter, newlines_in_values=True
            ),
            convert_options=pacsv.ConvertOptions(
                include_columns=columns,
                column_types={c: pa.string() for c in names},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        for batch in reader:
            col = batch.column(batch.schema.get_field_index(inv.column))
            yield col, (batch if whole_rows else None)
    except pa.ArrowInvalid as exc:
        raise InputError(f"{inv.name}: {exc}") from None


def _python_csv_batches(
    inv: Inventory, names: list[str], whole_rows: bool
) -> Iterator[tuple[Any, Any]]:
    """Batches without pyarrow: a file without any double quote is split on
    the delimiter line by line (about 10x faster than the csv module, which
    reads the rest: quoted fields need its parser).  Empty lines are skipped,
    as pyarrow does, and are not rows."""
    if not _has_quotes(inv.path):
        yield from _plain_csv_batches(inv, names, whole_rows)
        return
    index = names.index(inv.column)  # type: ignore[arg-type]
    with open(inv.path, newline="", encoding="utf-8", errors="surrogateescape") as f:
        reader = csv.reader(f, delimiter=inv.delimiter or ",")
        next(reader)
        rows: list[list[str]] = []
        try:
            for row in reader:
                if not row:
                    continue
                if len(row) != len(names):
                    raise InputError(
                        f"{inv.name}:{reader.line_num}: expected {len(names)} "
                        f"fields, got {len(row)}"
                    )
                rows.append(row)
                if len(rows) == TABLE_BATCH_ROWS:
                    yield [r[index] for r in rows], (rows if whole_rows else None)
                    rows = []
        except csv.Error as exc:
            raise InputError(f"{inv.name}:{reader.line_num}: {exc}") from None
        if rows:
            yield [r[index] for r in rows], (rows if whole_rows else None)


def _has_quotes(path: str) -> bool:
    with open(path, "rb") as f:
        while block := f.read(CHUNK_SIZE):
            if b'"' in block:
                return True
    return False


def _plain_csv_batches(
    inv: Inventory, names: list[str], whole_rows: bool
) -> Iterator[tuple[Any, Any]]:
    """Quote-free CSV: the fields of a whole chunk are found with numpy
    (positions of line ends and delimiters), and when every digest cell has a
    digest's length the cells are gathered into one run of hex for the C
    decoder.  Python objects are made per row only for whole rows."""
    index = names.index(inv.column)  # type: ignore[arg-type]
    delim = inv.delimiter or ","
    line = 0  # lines before the chunk
    with open(inv.path, "rb") as f:
        for slab, length, _dropped, too_long in read_chunks(f, CHUNK_SIZE, False):
            if too_long:
                raise InputError(f"{inv.name}:{line + 1}: line longer than 1 MiB")
            data = bytes(slab["buf"][:length])
            spans, cells = _plain_fields(inv, data, ord(delim), len(names), index, line)
            line += data.count(b"\n") + (not data.endswith(b"\n"))
            if not len(cells):
                continue
            rows = None
            if whole_rows:
                rows = [
                    data[a:b].decode("utf-8", "surrogateescape").split(delim)
                    for a, b in zip(*spans, strict=True)
                ]
            yield cells, rows


class _PlainCells:
    """Digest cells of a quote-free CSV chunk, as byte spans of its text."""

    def __init__(
        self, data: bytes, starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64]
    ) -> None:
        self.data, self.starts, self.ends = data, starts, ends

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, item: slice) -> _PlainCells:
        return _PlainCells(self.data, self.starts[item], self.ends[item])

    def to_pylist(self) -> list[str]:
        d = self.data
        return [
            d[a:b].decode("utf-8", "surrogateescape")
            for a, b in zip(self.starts.tolist(), self.ends.tolist(), strict=True)
        ]

    def keys(self, width: int) -> npt.NDArray[np.uint8] | None:
        """Every cell decoded with one C call, or None when some cell is not
        one digest long or not hex (then the cells are checked one by one)."""
        want = 2 * width
        if not bool(((self.ends - self.starts) == want).all()):
            return None
        keys = np.empty((len(self.starts), width), dtype=np.uint8)
        if _core.decode_hex_at(self.data, self.starts, width, keys.reshape(-1)) >= 0:
            return None
        return keys


def _plain_fields(
    inv: Inventory, data: bytes, delim: int, ncols: int, index: int, line: int
) -> tuple[tuple[Any, Any], _PlainCells]:
    """``((line starts, line ends), cells)`` of the non-empty lines of
    ``data`` (line ends without CR; line 1, the header, left out); a line
    with another number of fields than the header raises InputError."""
    arr = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(arr == 0x0A)
    if not data.endswith(b"\n"):
        ends = np.append(ends, len(arr))
    starts = np.concatenate(([0], ends[:-1] + 1)).astype(np.int64)
    ends = ends - ((ends > starts) & (arr[np.maximum(ends - 1, 0)] == 0x0D))
    numbers = np.arange(line + 1, line + 1 + len(starts), dtype=np.int64)
    keep = (ends > starts) & (numbers > 1)
    starts, ends, numbers = starts[keep], ends[keep], numbers[keep]
    delims = np.flatnonzero(arr == delim)
    first = np.searchsorted(delims, starts)
    count = np.searchsorted(delims, ends) - first
    bad = np.flatnonzero(count != ncols - 1)
    if bad.size:
        i = int(bad[0])
        raise InputError(
            f"{inv.name}:{int(numbers[i])}: expected {ncols} fields, "
            f"got {int(count[i]) + 1}"
        )
    cell_start = starts if index == 0 else delims[first + index - 1] + 1
    cell_end = ends if index == ncols - 1 else delims[first + index]
    return (starts.tolist(), ends.tolist()), _PlainCells(
        data, cell_start.astype(np.int64), cell_end.astype(np.int64)
    )


def _table_tasks(
    inv: Inventory,
    matcher: KeyMatcher,
    batches: Iterator[tuple[Any, Any]],
    skip_invalid: bool,
) -> Iterator[Callable[[], Piece]]:
    row = 1
    for cells, batch in batches:
        n = len(cells)
        if not n:
            continue
        first = row
        row += n
        if not matcher.bound:
            head = cells[:4096]
            sample = head.to_pylist() if hasattr(head, "to_pylist") else head
            if not bind_width(inv, matcher, sample, first, skip_invalid):
                whole = cells.to_pylist() if hasattr(cells, "to_pylist") else cells
                if len(whole) <= 4096 or not bind_width(
                    inv, matcher, whole, first, skip_invalid
                ):
                    yield constant_task(_no_digest_piece(inv, whole, first, batch))
                    continue
        yield _bind_table(inv, matcher, cells, batch, first, n, skip_invalid)


def _bind_table(
    inv: Inventory,
    matcher: KeyMatcher,
    cells: Any,
    batch: Any,
    first: int,
    n: int,
    skip_invalid: bool,
) -> Callable[[], Piece]:
    def run() -> Piece:
        width = int(matcher.width)  # type: ignore[arg-type]  # bound by now
        fast = cells.keys(width) if isinstance(cells, _PlainCells) else None
        if fast is not None:
            keys, invalid, empty = fast, 0, 0
            rows = np.arange(first, first + n, dtype=np.int64)
        elif isinstance(cells, (list, _PlainCells)):
            cell_list = cells if isinstance(cells, list) else cells.to_pylist()
            keys, rows, invalid, empty = _cells_to_keys(
                inv, matcher, cell_list, first, skip_invalid
            )
        else:
            keys, rows, invalid, empty = arrow_keys(
                inv, matcher, cells, first, skip_invalid
            )
        return _table_piece(inv, matcher, keys, rows, n, invalid, empty, first, batch)

    return run


# --------------------------------------------------------------------------
# Parquet
# --------------------------------------------------------------------------


def _parquet_tasks(
    inv: Inventory, matcher: KeyMatcher, skip_invalid: bool, whole_rows: bool
) -> Iterator[Callable[[], Piece]]:
    """One task per row group, which reads it too (``read_row_group`` is several
    times faster than ``iter_batches`` and releases the GIL), so row groups of
    one file are read, decoded and looked up in parallel.  Row groups are read
    in this thread only until the first digest has chosen the key table."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(
            f"{inv.name}: reading Parquet needs pyarrow "
            "(pip install 'hashlookup[dask]')"
        ) from None
    import pyarrow as pa

    try:
        pf = pq.ParquetFile(inv.path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{inv.name}: not a readable Parquet file: {exc}") from None
    check_column(inv, pf.schema_arrow.names)
    cols = None if whole_rows else [inv.column]
    first = 1
    try:
        for g in range(pf.metadata.num_row_groups):
            n = pf.metadata.row_group(g).num_rows
            if not n:
                continue
            read = _row_group_reader(inv, pf, g, cols)
            if not matcher.bound:
                table = read()
                read = constant_task(table)
                sample = table.column(inv.column).slice(0, 4096).to_pylist()
                if not bind_width(
                    inv, matcher, sample, first, skip_invalid
                ) and not bind_width(
                    inv,
                    matcher,
                    table.column(inv.column).to_pylist(),
                    first,
                    skip_invalid,
                ):
                    cells = table.column(inv.column).to_pylist()
                    batch = (
                        table.combine_chunks().to_batches()[0] if whole_rows else None
                    )
                    yield constant_task(_no_digest_piece(inv, cells, first, batch))
                    first += n
                    continue
            yield _row_group_task(
                inv, matcher, read, first, n, skip_invalid, whole_rows
            )
            first += n
    finally:
        pf.close()


def _row_group_reader(
    inv: Inventory, pf: Any, group: int, cols: Any
) -> Callable[[], Any]:
    """Reads one row group through its own file handle (tasks run after the
    listing's handle is closed, and concurrently); the footer is reused."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    metadata = pf.metadata

    def read() -> Any:
        try:
            with pq.ParquetFile(inv.path, metadata=metadata) as own:
                return own.read_row_group(group, columns=cols, use_threads=False)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(f"{inv.name}: row group {group}: {exc}") from None

    return read


def _no_digest_piece(
    inv: Inventory, cells: Sequence[Any], first: int, batch: Any
) -> Piece:
    """A batch without a single digest (all empty, or invalid and skipped)."""
    empty = sum(1 for c in cells if c is None or (isinstance(c, str) and not c.strip()))
    return Piece(
        inv,
        np.empty((0, 0), np.uint8),
        np.empty(0, np.int64),
        np.empty(0, bool),
        None,
        units=len(cells),
        invalid=len(cells) - empty,
        empty=empty,
        first=first,
        batch=batch,
    )


def _row_group_task(
    inv: Inventory,
    matcher: KeyMatcher,
    read: Callable[[], Any],
    first: int,
    n: int,
    skip_invalid: bool,
    whole_rows: bool,
) -> Callable[[], Piece]:
    def run() -> Piece:
        table = read()
        keys, rows, invalid, empty = arrow_keys(
            inv, matcher, table.column(inv.column), first, skip_invalid
        )
        batch = table.combine_chunks().to_batches()[0] if whole_rows else None
        return _table_piece(inv, matcher, keys, rows, n, invalid, empty, first, batch)

    return run


def _table_piece(
    inv: Inventory,
    matcher: KeyMatcher,
    keys: npt.NDArray[np.uint8],
    rows: npt.NDArray[np.int64],
    n: int,
    invalid: int,
    empty: int,
    first: int,
    batch: Any,
) -> Piece:
    """The piece of one chunk of table rows: its keys looked up."""
    found, record_ids, filtered = matcher.lookup(keys)
    return Piece(
        inv,
        keys,
        rows,
        found,
        record_ids,
        filtered,
        n,
        invalid,
        empty,
        0,
        first,
        batch=batch,
    )


def render_rows(
    piece: Piece,
    indices: npt.NDArray[np.intp],
    *,
    header: bool,
    extra: dict[str, Sequence[Any]] | None = None,
    prefix: str = "",
) -> bytes:
    """The table rows of ``indices`` (row positions in the piece's batch) as
    CSV text (the input's delimiter; comma for Parquet), with ``extra``
    columns appended; ``header`` writes the column names first; ``prefix``
    (e.g. ``"FILE:"``) starts every row, also rows with quoted newlines."""
    inv = piece.inventory
    delim = inv.delimiter if inv.kind in ("csv", "tsv") else ","
    batch = piece.batch
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delim or ",", lineterminator="\n")
    extra = extra or {}
    if isinstance(batch, list):
        names = csv_header(inv)
        rows: Iterator[list[Any]] = (batch[i] for i in indices.tolist())
    else:
        names = batch.schema.names
        columns = [batch.column(k).take(indices).to_pylist() for k in range(len(names))]
        rows = (
            ["" if v is None else _cell_text(v) for v in row]
            for row in zip(*columns, strict=True)
        )
    if header:
        writer.writerow([*names, *extra])
    cols = list(extra.values())
    for j, row in enumerate(rows):
        out.write(prefix)
        writer.writerow([*row, *(c[j] for c in cols)])
    return out.getvalue().encode("utf-8", "surrogateescape")


def _cell_text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
