"""Inventories to match: text digest lists, CSV/TSV and Parquet files.

Every input is cut into *pieces* (a chunk of text, a batch of table rows;
see ``hashlookup.match.pieces``) by the reader in the calling thread; each
piece is then decoded and looked up by a task (``_bind_text`` here,
``_bind_table`` in ``hashlookup.match.tables``), which does its heavy work in
C without the GIL (line parser or hex decoder, then the batch lookup kernel)
so that pieces of one file, or of several files, run in parallel on a thread
pool.  The pieces come
back in input order (see :func:`match_inventory`), so the output does not
depend on the number of threads.

How inputs are read (see also docs/CLI.md "match"):

* text pieces are the existing format (``hashlookup.importers.digests``): one digest or
  one md5sum line per line; they are numbered by **line** (1-based);
* table cells hold one digest as hex (any case, surrounding blanks ignored), or
  raw digest bytes in a binary Parquet column; empty and null cells are skipped
  and counted (``stats.empty``), like blank lines; table rows are numbered by
  **row** (1-based, the CSV header is not a row);
* CSV is read with pyarrow's streaming reader when pyarrow is installed (all
  columns as strings, quoted fields with newlines allowed), else with the
  standard ``csv`` module (the same results, slower).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence

from hashlookup import _core
from hashlookup._plain import dataclass_like
from hashlookup.errors import InputError
from hashlookup.importers.digests import (
    MAX_LINE,
    detect_width,
    invalid_message,
    too_long_message,
)
from hashlookup.match.keys import DEFAULT_CHUNK_SIZE, KeyMatcher, MatchStats
from hashlookup.match.pieces import (
    Inventory,
    Piece,
    Slabs,
    constant_task,
    detect_kind,
    read_chunks,
)
from hashlookup.store.format import ALGORITHM_BY_WIDTH

TYPE_CHECKING = False
if TYPE_CHECKING:
    from concurrent.futures import Future
    from typing import Any, TypeVar

    import numpy as np
    import numpy.typing as npt

    T = TypeVar("T")
else:
    from hashlookup._lazy import numpy as np

__all__ = [
    "Inventory",
    "InventoryStats",
    "Piece",
    "detect_kind",
    "match_inventory",
]


@dataclass_like()
class InventoryStats(MatchStats):
    """:class:`MatchStats` of inventories: ``lines`` counts lines (text) or rows
    (tables), ``chunks`` pieces; ``empty`` counts empty or null table cells."""

    empty: int = 0

    def __init__(
        self,
        bytes: int = 0,
        lines: int = 0,
        keys: int = 0,
        hits: int = 0,
        invalid: int = 0,
        chunks: int = 0,
        filtered: int = 0,
        algorithm: str = "",
        empty: int = 0,
    ) -> None:
        self.bytes = bytes
        self.lines = lines
        self.keys = keys
        self.hits = hits
        self.invalid = invalid
        self.chunks = chunks
        self.filtered = filtered
        self.algorithm = algorithm
        self.empty = empty

    def add(self, piece: Piece) -> None:
        self.bytes += piece.nbytes
        self.lines += piece.units
        self.chunks += 1
        self.keys += piece.n_keys
        self.hits += piece.hits
        self.invalid += piece.invalid
        self.empty += piece.empty
        self.filtered += piece.filtered
        if not self.algorithm and piece.n_keys:
            self.algorithm = ALGORITHM_BY_WIDTH[piece.key_width]


# --------------------------------------------------------------------------
# running pieces in order on a thread pool
# --------------------------------------------------------------------------


def _ordered(tasks: Iterator[Callable[[], T]], jobs: int) -> Iterator[T]:
    """Run tasks on ``jobs`` threads (inline for 1), yield results in order.
    At most ``2 * jobs`` tasks are in flight, which bounds memory."""
    if jobs <= 1:
        for task in tasks:
            yield task()
        return
    # Imported here: concurrent.futures brings logging, a start-up cost for
    # the one-piece inputs that run inline.
    from concurrent.futures import ThreadPoolExecutor

    pending: deque[Future[T]] = deque()
    with ThreadPoolExecutor(jobs, thread_name_prefix="hashlookup-match") as pool:
        try:
            for task in tasks:
                pending.append(pool.submit(task))
                if len(pending) >= 2 * jobs:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:  # an error or an abandoned iterator: drop what is queued
            for fut in pending:
                fut.cancel()


def _arrays(
    slab: dict[str, Any] | None, cap: int, width: int
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Parser output arrays for ``cap`` keys, from the slab when it has them."""
    if slab is not None:
        arrays = slab.get("arrays")
        if arrays is not None and arrays[0].shape == (cap, width):
            return arrays  # type: ignore[no-any-return]
    arrays = (
        np.empty((cap, width), dtype=np.uint8),
        np.empty(cap, dtype=np.int64),
        np.empty(cap, dtype=np.int64),
    )
    if slab is not None:
        slab["arrays"] = arrays
    return arrays


def match_inventory(
    matcher_for: Callable[[Inventory], KeyMatcher],
    inventories: Sequence[Inventory],
    *,
    jobs: int = 1,
    skip_invalid: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    whole_rows: bool = False,
    engine: str = "auto",
    recycle: bool = False,
    render: str | None = None,
) -> Iterator[Piece]:
    """Yield the looked-up pieces of every input, file by file in the given
    order, each file's pieces in input order.

    ``matcher_for(inventory)`` gives the :class:`KeyMatcher` of an input (one
    per input, so that a dataset can use its md5 table for one file and its
    sha256 table for another).  ``whole_rows`` keeps every column of table
    inputs (to show or annotate rows), otherwise only the digest column is
    read.  ``engine`` (``auto``, ``pyarrow``, ``python``) chooses the CSV reader.
    With ``recycle`` the memory of a text piece is reused as soon as the
    consumer asks for the next piece: the consumer must not keep pieces.

    ``render`` (``"hits"``, ``"misses"`` or ``"count"``) asks for text inputs
    to be matched by the one-pass C path (``KeyTable.match_lines``) where the
    matcher allows it (no records wanted, no label filter): such pieces carry
    the selected lines in ``Piece.rendered`` (``"count"``: nothing) instead of
    keys and answers.  Table inputs and filtered lookups ignore it.
    """
    if render not in (None, "hits", "misses", "count"):
        raise ValueError(f"render must be hits, misses or count, got {render!r}")
    slabs = Slabs(2 * jobs + 4) if recycle else None

    def tasks() -> Iterator[Callable[[], Piece]]:
        for inv in inventories:
            matcher = matcher_for(inv)
            if inv.kind == "text":
                yield from _text_tasks(
                    inv, matcher, skip_invalid, chunk_size, slabs, render
                )
            else:  # tables: see tables.py (imported when a table is read)
                from hashlookup.match.tables import table_tasks

                yield from table_tasks(inv, matcher, skip_invalid, whole_rows, engine)

    def placed() -> Iterator[Piece]:
        current: Inventory | None = None
        line = 1
        for piece in _ordered(tasks(), jobs):
            if piece.inventory is not current:
                current, line = piece.inventory, 1
            if piece.relative:  # text: all its pieces are numbered here
                piece.place(line)
                line += piece.units
            yield piece
            if slabs is not None:
                slabs.give(piece.slab)

    return placed()


# --------------------------------------------------------------------------
# text
# --------------------------------------------------------------------------


def _first_key_line(buf: bytearray, length: int) -> int:
    """0-based index of the first line of buf that is neither blank nor a
    comment."""
    pos = index = 0
    while pos < length:
        end = buf.find(b"\n", pos, length)
        end = length if end < 0 else end
        token = bytes(buf[pos:end]).strip(b" \t\r\v\f")
        if token and not token.startswith(b"#"):
            return index
        pos, index = end + 1, index + 1
    return 0


def _text_tasks(
    inv: Inventory,
    matcher: KeyMatcher,
    skip_invalid: bool,
    chunk_size: int,
    slabs: Slabs | None = None,
    render: str | None = None,
) -> Iterator[Callable[[], Piece]]:
    # closed in the finally below, and only when opened here
    f = inv.stream if inv.stream is not None else open(inv.path, "rb")  # noqa: SIM115
    name = inv.name
    key_width = matcher.width or 0
    try:
        line = 1  # known only until the width is: then pieces are relative
        width = matcher.width
        for slab, length, dropped, too_long in read_chunks(
            f, chunk_size, skip_invalid, slabs
        ):
            buf = slab["buf"]
            if too_long:
                yield constant_task(
                    Piece(
                        inv,
                        *_nothing(key_width),
                        None,
                        first=dropped,
                        relative=True,
                        error=_too_long_error(name, dropped),
                    )
                )
                return
            if width is None and length:
                first = line + dropped
                data = bytes(buf[:length])
                width = detect_width(data, name, first, skip_invalid)
                if width is not None:
                    where = first + _first_key_line(buf, length)
                    matcher.bind(width, f"{name}:{where}")
                else:  # nothing but blank, comment or (skipped) bad lines
                    lines = data.count(b"\n") + (not data.endswith(b"\n"))
                    line = first + lines
                    yield constant_task(
                        Piece(
                            inv,
                            *_nothing(key_width),
                            None,
                            units=lines + dropped,
                            invalid=dropped + _count_data_lines(buf, length),
                            nbytes=length,
                            first=dropped,
                            relative=True,
                        )
                    )
                    continue
            if not length:  # only dropped lines at the end
                yield constant_task(
                    Piece(
                        inv,
                        *_nothing(key_width),
                        None,
                        units=dropped,
                        invalid=dropped,
                        first=dropped,
                        relative=True,
                    )
                )
                continue
            own = slab if slabs is not None else None
            if render is not None and matcher.renders_lines:
                yield _bind_rendered(
                    inv, matcher, own, buf, length, dropped, skip_invalid, render
                )
            else:
                yield _bind_text(inv, matcher, own, buf, length, dropped, skip_invalid)
    finally:
        if inv.stream is None:
            f.close()


def _nothing(
    width: int,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Keys, numbers and answers of a piece without digests."""
    return (np.empty((0, width), np.uint8), np.empty(0, np.int64), np.empty(0, bool))


def _too_long_error(name: str, dropped: int) -> Callable[[int], Exception]:
    return lambda line: InputError(f"{name}:{line + dropped}: {too_long_message()}")


def _count_data_lines(buf: bytearray, length: int) -> int:
    count = 0
    for raw in bytes(buf[:length]).split(b"\n"):
        token = raw.strip(b" \t\r\v\f")
        if token and not token.startswith(b"#"):
            count += 1
    return count


def _line_error(
    inv: Inventory,
    matcher: KeyMatcher,
    buf: bytearray,
    status: int,
    err_line: int,
    err_off: int,
    err_len: int,
    dropped: int,
) -> Callable[[int], Exception]:
    """The deferred error of a piece's first bad line (``Piece.place`` gives
    it the piece's first line number)."""
    if status == _core.ETOOLONG:
        text = too_long_message()
    else:
        token = bytes(buf[err_off : err_off + err_len])
        text = invalid_message(token, int(matcher.width or 0), matcher.algorithm)
    where = dropped + int(err_line)
    return lambda first: InputError(f"{inv.name}:{first + where}: {text}")


def _bind_rendered(
    inv: Inventory,
    matcher: KeyMatcher,
    slab: dict[str, Any] | None,
    buf: bytearray,
    length: int,
    dropped: int,
    skip_invalid: bool,
    render: str,
) -> Callable[[], Piece]:
    """Task: parse, look up and select the lines of one chunk in one C call
    (``KeyTable.match_lines``); numbered later by ``Piece.place`` like
    :func:`_bind_text`'s pieces."""

    def run() -> Piece:
        out = None
        if render != "count":
            out = slab.get("out") if slab is not None else None
            if out is None or len(out) < length + 1:
                out = bytearray(length + 1)
                if slab is not None:
                    slab["out"] = out
        (
            status,
            n,
            lines,
            invalid,
            found,
            _selected,
            out_len,
            err_line,
            err_off,
            err_len,
        ) = matcher.table.match_lines(
            memoryview(buf)[:length], MAX_LINE, skip_invalid, render == "misses", out
        )
        error = None
        if status != _core.OK:
            error = _line_error(
                inv, matcher, buf, status, err_line, err_off, err_len, dropped
            )
            n = found = out_len = 0
        return Piece(
            inv,
            None,
            None,
            None,
            None,
            0,
            int(lines) + dropped,
            int(invalid) + dropped,
            0,
            length,
            dropped,
            relative=True,
            error=error,
            slab=slab,
            rendered=memoryview(out)[:out_len] if out is not None else memoryview(b""),
            n_keys=int(n),
            hits=int(found),
            key_width=int(matcher.width),  # type: ignore[arg-type]
        )

    return run


def _bind_text(
    inv: Inventory,
    matcher: KeyMatcher,
    slab: dict[str, Any] | None,
    buf: bytearray,
    length: int,
    dropped: int,
    skip_invalid: bool,
) -> Callable[[], Piece]:
    """Task: parse and look up one chunk.  Its line numbers count from 0 (the
    lines before it are still being parsed); ``Piece.place`` fixes them."""

    def run() -> Piece:
        width = int(matcher.width)  # type: ignore[arg-type]
        cap = length // (2 * width + 1) + 1
        keys, numbers, offsets = _arrays(slab, cap, width)
        data = memoryview(buf)[:length]
        (status, n, lines, invalid, err_line, err_off, err_len, _err) = (
            _core.parse_lines(
                data, width, MAX_LINE, keys.reshape(-1), numbers, offsets, skip_invalid
            )
        )
        error = None
        if status != _core.OK:
            error = _line_error(
                inv, matcher, buf, status, err_line, err_off, err_len, dropped
            )
            n = 0
        keys = keys[:n]
        numbers = numbers[:n]
        if dropped:
            numbers += dropped
        found, record_ids, filtered = matcher.lookup(keys)
        return Piece(
            inv,
            keys,
            numbers,
            found,
            record_ids,
            filtered,
            int(lines) + dropped,
            int(invalid) + dropped,
            0,
            length,
            dropped,
            buf,
            offsets[:n],
            relative=True,
            error=error,
            slab=slab,
        )

    return run
