"""Inventories to match: text digest lists, CSV/TSV and Parquet files.

Every input is cut into *pieces* (a chunk of text, a batch of table rows) by
the reader in the calling thread; each piece is then decoded and looked up by
:func:`match_piece`, which does its heavy work in C without the GIL (line
parser or hex decoder, then the batch lookup kernel) so that pieces of one
file, or of several files, run in parallel on a thread pool.  The pieces come
back in input order (see :func:`match_inventory`), so the output does not
depend on the number of threads.

Where the issue was silent, decided here (see docs/CLI.md "match"):

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

import os
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
else:
    from hashlookup._lazy import numpy as np

from hashlookup import _core
from hashlookup.store.format import ALGORITHM_BY_WIDTH
from hashlookup.match.keys import DEFAULT_CHUNK_SIZE, KeyMatcher, MatchStats
from hashlookup.importers.digests import (
    CHUNK_SIZE,
    MAX_LINE,
    _invalid_message,
    _too_long,
    detect_width,
)
from hashlookup.errors import InputError

__all__ = [
    "Inventory",
    "InventoryStats",
    "Piece",
    "detect_kind",
    "match_inventory",
]

_KINDS = ("text", "csv", "tsv", "parquet")
T = TypeVar("T")


def detect_kind(path: str) -> str:
    """Input kind from the file name: ``.csv``, ``.tsv``/``.tab``, ``.parquet``/
    ``.pq``, anything else (and standard input) is text."""
    ext = os.path.splitext(path)[1].lower()
    if ext == ".csv":
        return "csv"
    if ext in (".tsv", ".tab"):
        return "tsv"
    if ext in (".parquet", ".pq"):
        return "parquet"
    return "text"


@dataclass
class Inventory:
    """One input to match: a path (or ``-``/a binary stream for text)."""

    path: str
    kind: str = "auto"
    column: str | None = None
    delimiter: str | None = None
    stream: BinaryIO | None = None

    def __post_init__(self) -> None:
        if self.kind == "auto":
            self.kind = detect_kind(self.path) if self.stream is None else "text"
            if self.kind == "text" and self.column is not None:
                self.kind = "csv"
        if self.kind not in _KINDS:
            raise ValueError(f"unknown input kind {self.kind!r} (one of {_KINDS})")
        if self.kind != "text" and not self.column:
            raise InputError(f"{self.path}: {self.kind} input needs a column name "
                             "(--column NAME)")
        if self.delimiter is None:
            self.delimiter = "\t" if self.kind == "tsv" else ","
        if len(self.delimiter) != 1:
            raise ValueError(f"delimiter must be one character, got "
                             f"{self.delimiter!r}")

    @property
    def name(self) -> str:
        return "<stdin>" if self.path == "-" else self.path

    @property
    def is_table(self) -> bool:
        return self.kind != "text"


@dataclass
class InventoryStats(MatchStats):
    """:class:`MatchStats` of inventories: ``lines`` counts lines (text) or rows
    (tables), ``chunks`` pieces; ``empty`` counts empty or null table cells."""

    empty: int = 0

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


@dataclass(repr=False)
class Piece:
    """A looked-up piece of one input: keys in input order, their line (text)
    or row (table) numbers, the lookup result, and what is needed to show the
    input lines or rows of any of them."""

    inventory: Inventory
    keys: npt.NDArray[np.uint8] | None
    """The digests, shape ``(n, width)`` (None when ``rendered``)."""
    numbers: npt.NDArray[np.int64] | None
    """Line or row number of each key, minus ``base`` (see number_list)."""
    found: npt.NDArray[np.bool_] | None
    record_ids: npt.NDArray[np.int64] | None
    filtered: int = 0
    units: int = 0
    invalid: int = 0
    empty: int = 0
    nbytes: int = 0
    first: int = 1
    """Number of the piece's first line or row."""
    text: bytes | bytearray | None = None
    """Text pieces: the chunk (complete lines; only ``text[:nbytes]`` is data)."""
    offsets: npt.NDArray[np.int64] | None = None
    """Text pieces: offset in ``text`` of each key's line."""
    batch: Any = None
    """Table pieces: the rows (a pyarrow RecordBatch, or a list of lists)."""
    relative: bool = False
    """Text pieces parsed in parallel: ``numbers`` and ``first`` count from 0
    until :meth:`place` gives them the line the piece starts on."""
    error: Callable[[int], Exception] | None = None
    """A bad line, raised by :meth:`place` (it needs the piece's first line)."""
    base: int = 0
    slab: dict[str, Any] | None = None
    """Text pieces: the recycled memory they live in (``recycle=True``)."""
    rendered: memoryview | None = None
    """Text pieces matched with ``render`` (see :func:`match_inventory`): the
    selected lines, each ending in ``\\n`` (empty for ``"count"``);
    ``keys``, ``numbers`` and ``found`` are then None (so that this path
    needs no numpy) and ``n_keys``, ``hits`` and ``key_width`` are given."""
    n_keys: int = -1
    """Digests looked up (``len(keys)`` unless rendered)."""
    hits: int = -1
    """Digests found (``found.sum()`` unless rendered)."""
    key_width: int = 0
    """Bytes per digest (``keys.shape[1]`` unless rendered)."""

    def __post_init__(self) -> None:
        if self.keys is not None:
            self.n_keys = int(self.keys.shape[0])
            self.key_width = int(self.keys.shape[1])
        if self.found is not None:
            self.hits = int(np.count_nonzero(self.found))

    def __repr__(self) -> str:
        return (f"<Piece {self.inventory.name} from {self.first}: "
                f"{self.n_keys} keys, {self.hits} hits>")

    def place(self, line: int) -> None:
        """Number the lines of a relative piece: ``line`` is the number of the
        first line after the previous piece.  Raises a deferred error.  (The
        numbers array is not rewritten: ``base`` is added when numbers are
        asked for, which is only for the hits.)"""
        if self.error is not None:
            raise self.error(line)
        if self.relative:
            self.base = line
            self.first += line
            self.relative = False

    def number_list(self, indices: npt.NDArray[np.intp]) -> list[int]:
        """Line (text) or row (table) numbers of the keys at ``indices``."""
        return (self.numbers[indices] + self.base).tolist()  # type: ignore[no-any-return]

    def positions(self, indices: npt.NDArray[np.intp] | None = None
                  ) -> npt.NDArray[np.int64]:
        """0-based line/row of the keys (all, or at ``indices``) within the
        piece."""
        numbers = self.numbers if indices is None else self.numbers[indices]
        return numbers + (self.base - self.first)

    def select(self, invert: bool = False) -> npt.NDArray[np.intp]:
        return np.flatnonzero(~self.found if invert else self.found)

    def hex_digests(self, indices: npt.NDArray[np.intp]) -> list[str]:
        step = 2 * int(self.keys.shape[1])
        text = np.ascontiguousarray(self.keys[indices]).tobytes().hex()
        return [text[j:j + step] for j in range(0, len(text), step)]

    def lines(self, indices: npt.NDArray[np.intp]) -> list[bytearray]:
        """Text pieces: the input lines (without line ends) of the keys.

        A key's line ends just before the next key's line when that is the
        next line (the usual case, found for all hits with numpy); otherwise
        the end is searched for."""
        buf, end = self.text, self.nbytes
        offsets = self.offsets
        assert buf is not None and offsets is not None
        if indices.size == 0:
            return []
        starts = offsets[indices]
        nxt = np.minimum(indices + 1, len(offsets) - 1)
        adjacent = (indices + 1 < len(offsets)) & (
            self.numbers[nxt] == self.numbers[indices] + 1)
        stops = np.where(adjacent, offsets[nxt] - 1, -1)
        for j in np.flatnonzero(~adjacent).tolist():
            stop = buf.find(b"\n", int(starts[j]), end)
            stops[j] = end if stop < 0 else stop
        view = np.frombuffer(buf, dtype=np.uint8, count=end)
        crlf = (stops > starts) & (view[np.maximum(stops - 1, 0)] == 0x0D)
        stops -= crlf
        return [buf[a:b] for a, b in zip(starts.tolist(), stops.tolist(), strict=True)]


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


class _Slabs:
    """Free chunk buffers and parser output arrays, handed back when the
    consumer has finished with a piece (``recycle=True``): a fresh 4 MiB
    buffer per chunk costs page faults and zeroing, about as much CPU as the
    parse itself."""

    def __init__(self, limit: int) -> None:
        self._free: list[dict[str, Any]] = []
        self._limit = limit
        self._lock = threading.Lock()

    def take(self, size: int) -> dict[str, Any]:
        with self._lock:
            for i, slab in enumerate(self._free):
                if len(slab["buf"]) == size:
                    return self._free.pop(i)
        return {"buf": bytearray(size)}

    def give(self, slab: dict[str, Any] | None) -> None:
        if slab is not None:
            with self._lock:
                if len(self._free) < self._limit:
                    self._free.append(slab)


def _arrays(slab: dict[str, Any] | None, cap: int, width: int
            ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64],
                       npt.NDArray[np.int64]]:
    """Parser output arrays for ``cap`` keys, from the slab when it has them."""
    if slab is not None:
        arrays = slab.get("arrays")
        if arrays is not None and arrays[0].shape == (cap, width):
            return arrays  # type: ignore[no-any-return]
    arrays = (np.empty((cap, width), dtype=np.uint8), np.empty(cap, dtype=np.int64),
              np.empty(cap, dtype=np.int64))
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
    to be matched by the one-pass C path (``KeyTable._match_lines``) where the
    matcher allows it (no records wanted, no label filter): such pieces carry
    the selected lines in ``Piece.rendered`` (``"count"``: nothing) instead of
    keys and answers.  Table inputs and filtered lookups ignore it.
    """
    if render not in (None, "hits", "misses", "count"):
        raise ValueError(f"render must be hits, misses or count, got {render!r}")
    slabs = _Slabs(2 * jobs + 4) if recycle else None

    def tasks() -> Iterator[Callable[[], Piece]]:
        for inv in inventories:
            matcher = matcher_for(inv)
            if inv.kind == "text":
                yield from _text_tasks(inv, matcher, skip_invalid, chunk_size,
                                      slabs, render)
            else:  # tables: see _tables.py
                from hashlookup.match.tables import table_tasks

                yield from table_tasks(inv, matcher, skip_invalid, whole_rows,
                                       engine)

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

def _read_chunks(f: BinaryIO, chunk_size: int, skip_invalid: bool,
                 slabs: _Slabs | None = None
                 ) -> Iterator[tuple[dict[str, Any], int, int, bool]]:
    """``(slab, length, dropped, too_long)``: a buffer per chunk (pieces are
    parsed concurrently) holding complete lines in ``slab["buf"][:length]``,
    filled with ``readinto`` (one copy from the page cache).  ``dropped`` lines
    longer than MAX_LINE were skipped just before it (with ``skip_invalid``);
    without it such a line ends the stream with ``too_long`` set.  Lines are
    not counted here: the parser counts them, in parallel."""
    tail = b""
    dropped = 0
    eof = False
    while not eof:
        size = max(chunk_size, 2 * len(tail))
        slab = slabs.take(size) if slabs is not None else {"buf": bytearray(size)}
        buf = slab["buf"]
        buf[:len(tail)] = tail
        filled = len(tail)
        view = memoryview(buf)
        while filled < size:
            n = f.readinto(view[filled:])  # type: ignore[attr-defined]
            if not n:
                eof = True
                break
            filled += n
        view.release()
        cut = filled if eof else buf.rfind(b"\n", 0, filled) + 1
        if cut:
            tail = bytes(buf[cut:filled])
            yield slab, cut, dropped, False
            dropped = 0
        else:  # no line end in the whole buffer
            tail = bytes(buf[:filled])
        if len(tail) > MAX_LINE:
            if not skip_invalid:
                yield {"buf": bytearray()}, 0, dropped, True
                return
            rest = _skip_line(f)
            dropped += 1
            eof = rest is None
            tail = rest or b""
    if dropped:
        yield {"buf": bytearray()}, 0, dropped, False


def _skip_line(f: BinaryIO) -> bytes | None:
    """Read past the end of the current line; return what follows its '\\n'
    in the last block read, or None at the end of the input."""
    while True:
        block = f.read(1 << 20)
        if not block:
            return None
        nl = block.find(b"\n")
        if nl >= 0:
            return block[nl + 1:]


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


def _text_tasks(inv: Inventory, matcher: KeyMatcher, skip_invalid: bool,
                chunk_size: int, slabs: _Slabs | None = None,
                render: str | None = None) -> Iterator[Callable[[], Piece]]:
    f = inv.stream if inv.stream is not None else open(inv.path, "rb")
    name = inv.name
    key_width = matcher.width or 0
    try:
        line = 1  # known only until the width is: then pieces are relative
        width = matcher.width
        for slab, length, dropped, too_long in _read_chunks(f, chunk_size,
                                                            skip_invalid, slabs):
            buf = slab["buf"]
            if too_long:
                yield _constant(Piece(inv, *_nothing(key_width),
                                      None, first=dropped,
                                      relative=True, error=_too_long_error(name, dropped)))
                return
            if width is None and length:
                first = line + dropped
                data = bytes(buf[:length])
                width = detect_width(data, name, first, skip_invalid)
                if width is not None:
                    matcher.bind(width, f"{name}:{first + _first_key_line(buf, length)}")
                else:  # nothing but blank, comment or (skipped) bad lines
                    lines = data.count(b"\n") + (not data.endswith(b"\n"))
                    line = first + lines
                    yield _constant(Piece(
                        inv, *_nothing(key_width), None, units=lines + dropped,
                        invalid=dropped + _count_data_lines(buf, length),
                        nbytes=length, first=dropped, relative=True))
                    continue
            if not length:  # only dropped lines at the end
                yield _constant(Piece(inv, *_nothing(key_width),
                                      None, units=dropped,
                                      invalid=dropped, first=dropped, relative=True))
                continue
            own = slab if slabs is not None else None
            if render is not None and matcher.renders_lines:
                yield _bind_rendered(inv, matcher, own, buf, length, dropped,
                                     skip_invalid, render)
            else:
                yield _bind_text(inv, matcher, own, buf, length, dropped, skip_invalid)
    finally:
        if inv.stream is None:
            f.close()


def _nothing(width: int) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64],
                                  npt.NDArray[np.bool_]]:
    """Keys, numbers and answers of a piece without digests."""
    return (np.empty((0, width), np.uint8), np.empty(0, np.int64),
            np.empty(0, bool))


def _too_long_error(name: str, dropped: int) -> Callable[[int], Exception]:
    return lambda line: InputError(f"{name}:{line + dropped}: {_too_long()}")


def _constant(piece: Piece) -> Callable[[], Piece]:
    return lambda: piece


def _count_data_lines(buf: bytearray, length: int) -> int:
    count = 0
    for raw in bytes(buf[:length]).split(b"\n"):
        token = raw.strip(b" \t\r\v\f")
        if token and not token.startswith(b"#"):
            count += 1
    return count


def _line_error(inv: Inventory, matcher: KeyMatcher, buf: bytearray, status: int,
                err_line: int, err_off: int, err_len: int, dropped: int
                ) -> Callable[[int], Exception]:
    """The deferred error of a piece's first bad line (``Piece.place`` gives
    it the piece's first line number)."""
    if status == _core.ETOOLONG:
        text = _too_long()
    else:
        token = bytes(buf[err_off:err_off + err_len])
        text = _invalid_message(token, int(matcher.width or 0), matcher.algorithm)
    where = dropped + int(err_line)
    return lambda first: InputError(f"{inv.name}:{first + where}: {text}")


def _bind_rendered(inv: Inventory, matcher: KeyMatcher, slab: dict[str, Any] | None,
                   buf: bytearray, length: int, dropped: int, skip_invalid: bool,
                   render: str) -> Callable[[], Piece]:
    """Task: parse, look up and select the lines of one chunk in one C call
    (``KeyTable._match_lines``); numbered later by ``Piece.place`` like
    :func:`_bind_text`'s pieces."""
    def run() -> Piece:
        out = None
        if render != "count":
            out = slab.get("out") if slab is not None else None
            if out is None or len(out) < length + 1:
                out = bytearray(length + 1)
                if slab is not None:
                    slab["out"] = out
        (status, n, lines, invalid, found, _selected, out_len, err_line, err_off,
         err_len) = matcher.table._match_lines(memoryview(buf)[:length], MAX_LINE,
                                               skip_invalid, render == "misses", out)
        error = None
        if status != _core.OK:
            error = _line_error(inv, matcher, buf, status, err_line, err_off,
                                err_len, dropped)
            n = found = out_len = 0
        return Piece(inv, None, None, None, None, 0, int(lines) + dropped,
                     int(invalid) + dropped, 0, length, dropped, relative=True,
                     error=error, slab=slab,
                     rendered=memoryview(out)[:out_len] if out is not None
                     else memoryview(b""),
                     n_keys=int(n), hits=int(found),
                     key_width=int(matcher.width))  # type: ignore[arg-type]
    return run


def _bind_text(inv: Inventory, matcher: KeyMatcher, slab: dict[str, Any] | None,
               buf: bytearray, length: int, dropped: int, skip_invalid: bool
               ) -> Callable[[], Piece]:
    """Task: parse and look up one chunk.  Its line numbers count from 0 (the
    lines before it are still being parsed); ``Piece.place`` fixes them."""
    def run() -> Piece:
        width = int(matcher.width)  # type: ignore[arg-type]
        cap = length // (2 * width + 1) + 1
        keys, numbers, offsets = _arrays(slab, cap, width)
        data = memoryview(buf)[:length]
        (status, n, lines, invalid, err_line, err_off, err_len,
         _err) = _core.parse_lines(data, width, MAX_LINE, keys.reshape(-1), numbers,
                                   offsets, skip_invalid)
        error = None
        if status != _core.OK:
            error = _line_error(inv, matcher, buf, status, err_line, err_off,
                                err_len, dropped)
            n = 0
        keys = keys[:n]
        numbers = numbers[:n]
        if dropped:
            numbers += dropped
        found, record_ids, filtered = matcher.lookup(keys)
        return Piece(inv, keys, numbers, found, record_ids, filtered,
                     int(lines) + dropped, int(invalid) + dropped, 0, length, dropped,
                     buf, offsets[:n], relative=True, error=error, slab=slab)
    return run
