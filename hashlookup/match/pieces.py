"""Inventories and their pieces, below the readers of every kind of input.

An :class:`Inventory` names one input to match; its reader (text in
``inventory``, tables in ``tables``) cuts it into :class:`Piece` objects.
Both readers share the chunked text reader (:func:`read_chunks`) and its
recycled buffers (:class:`Slabs`), so those live here too.
"""

from __future__ import annotations

import _thread
import os
from collections.abc import Callable, Iterator

from hashlookup._plain import dataclass_like
from hashlookup.errors import InputError
from hashlookup.importers.digests import MAX_LINE, UTF8_BOM

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO

    import numpy as np
    import numpy.typing as npt
else:
    from hashlookup._lazy import numpy as np

__all__ = [
    "Inventory",
    "Piece",
    "Slabs",
    "constant_task",
    "detect_kind",
    "read_chunks",
]

_KINDS = ("text", "csv", "tsv", "parquet")


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


def _is_stream(path: str) -> bool:
    """Whether path names something other than a regular file (a FIFO, a
    pipe's /dev/fd/N, a terminal); False if it cannot be stat'ed (opening it
    reports that)."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


@dataclass_like()
class Inventory:
    """One input to match: a path (or ``-``/a binary stream for text)."""

    path: str
    kind: str = "auto"
    column: str | None = None
    delimiter: str | None = None
    stream: BinaryIO | None = None

    def __init__(
        self,
        path: str,
        kind: str = "auto",
        column: str | None = None,
        delimiter: str | None = None,
        stream: BinaryIO | None = None,
    ) -> None:
        self.path = path
        self.kind = kind
        self.column = column
        self.delimiter = delimiter
        self.stream = stream
        self.__post_init__()

    def __post_init__(self) -> None:
        if self.kind == "auto":
            self.kind = detect_kind(self.path) if self.stream is None else "text"
            if self.kind == "text" and self.column is not None:
                self.kind = "csv"
        if self.kind not in _KINDS:
            raise ValueError(f"unknown input kind {self.kind!r} (one of {_KINDS})")
        if self.kind != "text" and not self.column:
            raise InputError(
                f"{self.path}: {self.kind} input needs a column name (--column NAME)"
            )
        if self.delimiter is None:
            self.delimiter = "\t" if self.kind == "tsv" else ","
        if len(self.delimiter) != 1:
            raise ValueError(f"delimiter must be one character, got {self.delimiter!r}")
        if self.kind != "text" and self.stream is None and _is_stream(self.path):
            # Tables are read more than once (header, then the rows): a
            # second open of a FIFO would wait for a writer for ever.
            raise InputError(
                f"{self.path}: a {self.kind} inventory must be a regular file, "
                f"not a pipe or other stream (copy it to a file first; digest "
                f"lists can be piped)"
            )

    @property
    def name(self) -> str:
        return "<stdin>" if self.path == "-" else self.path

    @property
    def is_table(self) -> bool:
        return self.kind != "text"


@dataclass_like(repr=False)
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

    def __init__(
        self,
        inventory: Inventory,
        keys: npt.NDArray[np.uint8] | None,
        numbers: npt.NDArray[np.int64] | None,
        found: npt.NDArray[np.bool_] | None,
        record_ids: npt.NDArray[np.int64] | None,
        filtered: int = 0,
        units: int = 0,
        invalid: int = 0,
        empty: int = 0,
        nbytes: int = 0,
        first: int = 1,
        text: bytes | bytearray | None = None,
        offsets: npt.NDArray[np.int64] | None = None,
        batch: Any = None,
        relative: bool = False,
        error: Callable[[int], Exception] | None = None,
        base: int = 0,
        slab: dict[str, Any] | None = None,
        rendered: memoryview | None = None,
        n_keys: int = -1,
        hits: int = -1,
        key_width: int = 0,
    ) -> None:
        self.inventory = inventory
        self.keys = keys
        self.numbers = numbers
        self.found = found
        self.record_ids = record_ids
        self.filtered = filtered
        self.units = units
        self.invalid = invalid
        self.empty = empty
        self.nbytes = nbytes
        self.first = first
        self.text = text
        self.offsets = offsets
        self.batch = batch
        self.relative = relative
        self.error = error
        self.base = base
        self.slab = slab
        self.rendered = rendered
        self.n_keys = n_keys
        self.hits = hits
        self.key_width = key_width
        self.__post_init__()

    def __post_init__(self) -> None:
        if self.keys is not None:
            self.n_keys = int(self.keys.shape[0])
            self.key_width = int(self.keys.shape[1])
        if self.found is not None:
            self.hits = int(np.count_nonzero(self.found))

    def __repr__(self) -> str:
        return (
            f"<Piece {self.inventory.name} from {self.first}: "
            f"{self.n_keys} keys, {self.hits} hits>"
        )

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
        assert self.numbers is not None  # not a rendered piece
        numbers: list[int] = (self.numbers[indices] + self.base).tolist()
        return numbers

    def positions(
        self, indices: npt.NDArray[np.intp] | None = None
    ) -> npt.NDArray[np.int64]:
        """0-based line/row of the keys (all, or at ``indices``) within the
        piece."""
        assert self.numbers is not None  # not a rendered piece
        numbers = self.numbers if indices is None else self.numbers[indices]
        return numbers + (self.base - self.first)

    def select(self, invert: bool = False) -> npt.NDArray[np.intp]:
        """Indices of the hits (or of the misses with ``invert=True``)."""
        assert self.found is not None  # not a rendered piece
        return np.flatnonzero(~self.found if invert else self.found)

    def hex_digests(self, indices: npt.NDArray[np.intp]) -> list[str]:
        """Lowercase hex digests of the keys at ``indices``."""
        assert self.keys is not None  # not a rendered piece
        step = 2 * int(self.keys.shape[1])
        text = np.ascontiguousarray(self.keys[indices]).tobytes().hex()
        return [text[j : j + step] for j in range(0, len(text), step)]

    def lines(self, indices: npt.NDArray[np.intp]) -> list[bytes | bytearray]:
        """Text pieces: the input lines (without line ends) of the keys.

        A key's line ends just before the next key's line when that is the
        next line (the usual case, found for all hits with numpy); otherwise
        the end is searched for."""
        buf, end = self.text, self.nbytes
        offsets, numbers = self.offsets, self.numbers
        assert buf is not None and offsets is not None and numbers is not None
        if indices.size == 0:
            return []
        starts = offsets[indices]
        nxt = np.minimum(indices + 1, len(offsets) - 1)
        adjacent = (indices + 1 < len(offsets)) & (numbers[nxt] == numbers[indices] + 1)
        stops = np.where(adjacent, offsets[nxt] - 1, -1)
        for j in np.flatnonzero(~adjacent).tolist():
            stop = buf.find(b"\n", int(starts[j]), end)
            stops[j] = end if stop < 0 else stop
        view = np.frombuffer(buf, dtype=np.uint8, count=end)
        crlf = (stops > starts) & (view[np.maximum(stops - 1, 0)] == 0x0D)
        stops -= crlf
        return [buf[a:b] for a, b in zip(starts.tolist(), stops.tolist(), strict=True)]


class Slabs:
    """Free chunk buffers and parser output arrays, for reuse.

    A slab is handed back when the consumer has finished with its piece
    (``recycle=True``): a fresh 4 MiB buffer per chunk costs page faults and
    zeroing, about as much CPU as the parse itself.

    Parameters
    ----------
    limit
        Most slabs kept for reuse; more are left to the garbage collector.
    """

    def __init__(self, limit: int) -> None:
        self._free: list[dict[str, Any]] = []
        self._limit = limit
        self._lock = _thread.allocate_lock()  # threading.Lock, without threading

    def take(self, size: int) -> dict[str, Any]:
        """A free slab whose buffer (``slab["buf"]``) has ``size`` bytes, or a
        new one."""
        with self._lock:
            for i, slab in enumerate(self._free):
                if len(slab["buf"]) == size:
                    return self._free.pop(i)
        return {"buf": bytearray(size)}

    def give(self, slab: dict[str, Any] | None) -> None:
        """Hand back ``slab`` (None: nothing) once its piece is consumed."""
        if slab is not None:
            with self._lock:
                if len(self._free) < self._limit:
                    self._free.append(slab)


def _file_size(f: BinaryIO) -> int | None:
    """The size of `f` if it is a regular file read from its start, else None."""
    import stat

    try:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or f.tell() != 0:
            return None
    except (AttributeError, OSError, ValueError):
        return None  # no descriptor (an in-memory stream), not seekable
    return st.st_size


def read_chunks(
    f: BinaryIO, chunk_size: int, skip_invalid: bool, slabs: Slabs | None = None
) -> Iterator[tuple[dict[str, Any], int, int, bool]]:
    """Read a binary stream as chunks of complete lines.

    Each chunk gets its own buffer (pieces are parsed concurrently), filled
    with ``readinto`` (one copy from the page cache).  Lines are not counted
    here: the parser counts them, in parallel.

    Parameters
    ----------
    f
        The input, read to its end.
    chunk_size
        Bytes read per chunk (more when a line does not fit).
    skip_invalid
        Skip lines longer than MAX_LINE (counted in ``dropped``) instead of
        ending the stream at the first one.
    slabs
        Where buffers are taken from (and later given back to); None: a new
        buffer per chunk.

    Yields
    ------
    tuple
        ``(slab, length, dropped, too_long)``: complete lines in
        ``slab["buf"][:length]``; ``dropped`` over-long lines were skipped
        just before them; ``too_long`` is set (on an empty last chunk) when
        an over-long line ends the stream without ``skip_invalid``.
    """
    tail = b""
    dropped = 0
    eof = False
    first = True
    # A regular file smaller than a chunk is read into a buffer of its size
    # (+1 byte to see the end): making a 4 MiB buffer for a 10-line list
    # costs more (zeroed pages) than the whole match of it.
    small = _file_size(f)
    if small is not None and small >= chunk_size:
        small = None
    while not eof:
        size = max(chunk_size, 2 * len(tail))
        if first and small is not None:
            size = small + 1
        slab = slabs.take(size) if slabs is not None else {"buf": bytearray(size)}
        buf = slab["buf"]
        buf[: len(tail)] = tail
        filled = len(tail)
        view = memoryview(buf)
        while filled < size:
            n = f.readinto(view[filled:])  # type: ignore[attr-defined]
            if not n:
                eof = True
                break
            filled += n
        view.release()
        if first:  # a UTF-8 byte-order mark is skipped, as every reader does
            first = False
            if buf.startswith(UTF8_BOM):
                n = len(UTF8_BOM)
                buf[: filled - n] = buf[n:filled]  # same length: no resize
                filled -= n
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
            return block[nl + 1 :]


def constant_task(piece: Piece) -> Callable[[], Piece]:
    """A task that returns piece (already looked up) when run."""
    return lambda: piece
