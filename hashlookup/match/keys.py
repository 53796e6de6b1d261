"""Streaming matcher: check a text list of digests against an open index.

The input is the text format accepted by ``build_index`` (one hex digest per
line, or ``md5sum``/``sha1sum``/``sha256sum`` output).  It is read by the same
reader as the builder (``hashlookup.importers.digests.iter_parsed``): large chunks cut
after their last newline (the incomplete tail is carried over), each parsed in
C in one call; the keys of a chunk are looked up with one ``contains_many``
call, so memory stays bounded by the chunk size whatever the input size.

:func:`match_chunks` yields one :class:`ChunkMatch` per chunk: the parsed keys,
the boolean result per key, and the means to recover the input lines.  It does
no per-line Python work.  It fills an optional :class:`MatchStats` with counts
as it goes, so callers can tell, after consuming the iterator, how many input
digests were in the index.

It also takes an open :class:`hashlookup.Dataset` instead of an index: the
algorithm (md5, sha1 or sha256) is then detected from the first digest line of the
input, as the builder does, and the matching key table of the dataset is used.
With a dataset, ``want_records=True`` gives the record id of every hit
(``ChunkMatch.record_ids``), and ``only``/``exclude`` (labels) drop the hits whose
record is not wanted, with one ``find_many`` call per chunk and one bitmap
membership test per hit.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterator

from hashlookup._plain import dataclass_like
from hashlookup.errors import IndexFormatError, InputError
from hashlookup.importers.digests import iter_parsed
from hashlookup.store.format import ALGORITHM_BY_WIDTH

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO

    import numpy as np
    import numpy.typing as npt
else:
    from hashlookup._lazy import numpy as np

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "ChunkMatch",
    "MatchStats",
    "match_chunks",
]

#: Bytes read per chunk (the chunk actually parsed ends at the last newline).
#: Smaller than the builder's CHUNK_SIZE: each chunk in flight has its own
#: buffer and key arrays, and with 4 MiB chunks the few of them fit in cache
#: and cost fewer fresh pages (measured: 16 MiB chunks take ~8 % more CPU for
#: a 330 MB inventory, 2 MiB no less than 4 MiB).
DEFAULT_CHUNK_SIZE = 4 << 20

# From this many selected lines on (and when they are dense: more than one per
# 256 bytes), line ends are found with one numpy pass over the chunk instead of
# one bytes.find per line; sparse hits are cheaper to find one by one.
_VECTOR_LINES = 2048


@dataclass_like()
class MatchStats:
    """Counters filled while a match iterator is consumed."""

    bytes: int = 0
    """Input bytes read."""
    lines: int = 0
    """Input lines read (including blank, comment and skipped invalid lines)."""
    keys: int = 0
    """Valid digests looked up."""
    hits: int = 0
    """Digests found in the index."""
    invalid: int = 0
    """Invalid lines skipped (only with ``skip_invalid=True``)."""
    chunks: int = 0
    """Chunks parsed."""
    filtered: int = 0
    """Digests in the key table whose record was dropped by ``only``/``exclude``
    (or the dataset's ``suppress`` labels): counted as misses, not as hits."""
    algorithm: str = ""
    """Algorithm of the key table used ("" until the first digest was read)."""

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
    ) -> None:
        self.bytes = bytes
        self.lines = lines
        self.keys = keys
        self.hits = hits
        self.invalid = invalid
        self.chunks = chunks
        self.filtered = filtered
        self.algorithm = algorithm

    @property
    def misses(self) -> int:
        """Digests not found in the index."""
        return self.keys - self.hits


@dataclass_like(repr=False)
class ChunkMatch:
    """The result of looking up the keys of one chunk of input."""

    buf: bytes
    """The chunk's bytes (whole lines only)."""
    keys: npt.NDArray[np.uint8]
    """Parsed keys, shape ``(n, width)``, in input order."""
    found: npt.NDArray[np.bool_]
    """``found[i]`` is True when ``keys[i]`` is in the index."""
    line_numbers: npt.NDArray[np.int64] | None
    """1-based input line number of each key (None with ``want_lines=False``)."""
    line_offsets: npt.NDArray[np.int64] | None
    """Byte offset in ``buf`` of each key's line (None with ``want_lines=False``)."""
    record_ids: npt.NDArray[np.int64] | None = None
    """Record id of each key, -1 where ``found`` is False (only with
    ``want_records=True`` or label filters; for a single-table index file the
    record id is the key's row)."""

    def __init__(
        self,
        buf: bytes,
        keys: npt.NDArray[np.uint8],
        found: npt.NDArray[np.bool_],
        line_numbers: npt.NDArray[np.int64] | None,
        line_offsets: npt.NDArray[np.int64] | None,
        record_ids: npt.NDArray[np.int64] | None = None,
    ) -> None:
        self.buf = buf
        self.keys = keys
        self.found = found
        self.line_numbers = line_numbers
        self.line_offsets = line_offsets
        self.record_ids = record_ids

    def __repr__(self) -> str:
        first = int(self.line_numbers[0]) if self.line_numbers is not None else "?"
        return (
            f"<ChunkMatch {len(self.buf)} bytes, {self.keys.shape[0]} keys from line "
            f"{first}, {int(np.count_nonzero(self.found))} found>"
        )

    def select(self, invert: bool = False) -> npt.NDArray[np.intp]:
        """Indices of the hits (or of the misses with ``invert=True``)."""
        mask = ~self.found if invert else self.found
        return np.flatnonzero(mask)

    def line_bytes(self, i: int) -> bytes:
        """Input line of key ``i`` without its line ending."""
        if self.line_offsets is None:
            raise ValueError("lines were not kept (want_lines=False)")
        buf = self.buf
        start = int(self.line_offsets[i])
        end = buf.find(b"\n", start)
        if end < 0:
            end = len(buf)
        if end > start and buf[end - 1] == 0x0D:  # CRLF
            end -= 1
        return buf[start:end]

    def lines(self, indices: npt.NDArray[np.intp]) -> list[bytes]:
        """Input lines (without line endings) of the keys at ``indices``."""
        offsets = self.line_offsets
        if offsets is None:
            raise ValueError("lines were not kept (want_lines=False)")
        if len(indices) < _VECTOR_LINES or len(indices) * 256 < len(self.buf):
            return [self.line_bytes(i) for i in indices.tolist()]
        # many lines: find all their ends at once
        buf = self.buf
        arr = np.frombuffer(buf, dtype=np.uint8)
        newlines = np.append(np.flatnonzero(arr == 0x0A), len(buf))
        starts = offsets[indices]
        ends = newlines[np.searchsorted(newlines, starts)]
        crlf = (ends > starts) & (arr[np.maximum(ends - 1, 0)] == 0x0D)
        ends -= crlf
        return [buf[a:b] for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]

    def hex_digests(self, indices: npt.NDArray[np.intp]) -> list[str]:
        """Lowercase hex digests of the keys at ``indices``."""
        width = self.keys.shape[1]
        step = 2 * width
        joined = binascii.hexlify(np.ascontiguousarray(self.keys[indices]).tobytes())
        text = joined.decode("ascii")
        return [text[j : j + step] for j in range(0, len(text), step)]


def _first_digest_line(data: bytes, first_line: int) -> int:
    """Number of the first non-blank, non-comment line of ``data``."""
    line = first_line
    for raw in data.split(b"\n"):
        token = raw.strip(b" \t\r\v\f")
        if token and not token.startswith(b"#"):
            return line
        line += 1
    return first_line


def record_labels(
    dataset: Any, record_ids: npt.NDArray[np.int64]
) -> list[tuple[str, ...]]:
    """Sorted labels of each record id (-1: none), as ``dataset.record(id).labels``
    but vectorised: one bitmap intersection per label, then one tuple per
    distinct label combination.  ``record()`` costs tens of microseconds per
    call, which a batch job with 10^5-10^6 hits cannot afford."""
    rids = np.asarray(record_ids, dtype=np.int64)
    if rids.size == 0:
        return []
    names = sorted(dataset.labels())
    valid = rids >= 0
    if not names or not valid.any():
        return [()] * int(rids.size)
    from pyroaring import BitMap

    wanted = BitMap(np.unique(rids[valid]).astype(np.uint32))
    codes = np.zeros((rids.size, (len(names) + 63) // 64), dtype=np.uint64)
    for j, name in enumerate(names):
        have = dataset.records_with(name) & wanted
        if have:
            members = np.frombuffer(have.to_array(), dtype=np.uint32).astype(np.int64)
            hit = np.isin(rids, members) & valid
            codes[hit, j // 64] |= np.uint64(1) << np.uint64(j % 64)
    combos, inverse = np.unique(codes, axis=0, return_inverse=True)
    tuples = [
        tuple(
            name for j, name in enumerate(names) if int(combo[j // 64]) >> (j % 64) & 1
        )
        for combo in combos
    ]
    return [tuples[i] for i in inverse.reshape(-1).tolist()]


class KeyMatcher:
    """Batch lookups of parsed keys in an index or a dataset: the one kernel
    every matcher (text, CSV, Parquet, Dask partitions) goes through.

    With a dataset the key table is chosen by :meth:`bind` from the keys' width
    (the first digest of an input decides); with an index the width is fixed.
    :meth:`lookup` may be called from several threads at once: the C kernels
    release the GIL, only the per-hit label filter runs under it.
    """

    def __init__(
        self,
        index: Any,
        *,
        want_records: bool = False,
        only: Any = None,
        exclude: Any = None,
        threads: int = 1,
    ) -> None:
        if threads < 0:
            raise ValueError(f"threads must be >= 0, got {threads}")
        self.dataset: Any = None
        self.table: Any = None
        self.width: int | None = None
        self.algorithm = ""
        self.want_records = want_records
        self.threads = threads
        self._only, self._exclude = only, exclude
        self._rowmap: npt.NDArray[np.uint32] | None = None
        self._records = 0
        self._keep: Any = None
        if hasattr(index, "width"):  # a HashIndex: one fixed width
            if only is not None or exclude is not None:
                raise ValueError(
                    "only= and exclude= need a Dataset (labels), not an index"
                )
            self.table = index
            self.width = int(index.width)
            self.algorithm = str(index.algorithm)
        elif hasattr(index, "table"):
            self.dataset = index
        else:
            raise TypeError(
                f"expected a HashIndex or a Dataset, got {type(index).__name__}"
            )

    @property
    def bound(self) -> bool:
        return self.table is not None

    @property
    def renders_lines(self) -> bool:
        """True when lines can be selected by the table alone
        (``KeyTable.match_lines``): bound, and neither records nor a label
        filter (the dataset's suppressed labels included) are wanted."""
        return (
            self.table is not None
            and not self.want_records
            and self._keep is None
            and hasattr(self.table, "match_lines")
        )

    def bind(self, width: int, where: str) -> None:
        """Choose the dataset's key table for digests of ``width`` bytes;
        ``where`` ("file:line") names the first such digest in errors."""
        if self.table is not None:
            return
        alg = ALGORITHM_BY_WIDTH[width]
        ds = self.dataset
        if alg not in ds.algorithms:
            raise InputError(
                f"{where}: {alg} digests, but {ds.path} has no {alg} "
                f"table (it has {', '.join(ds.algorithms)})"
            )
        # One generation for the table, its rowmap and the filter, so that
        # the ids belong to the generation the rows come from across a reload.
        generation = ds.current()
        table = generation.tables[alg]
        self._keep = generation.record_filter(self._only, self._exclude)
        if self.want_records or self._keep is not None:  # else never read
            self._rowmap = generation.rowmaps[alg] if generation.is_dataset else None
            self._records = generation.count
        self.width = width
        self.algorithm = alg
        self.table = table

    def lookup(
        self, keys: npt.NDArray[np.uint8]
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64] | None, int]:
        """``(found, record_ids, filtered)`` for keys of shape ``(n, width)``:
        record ids (-1 for misses) only with ``want_records`` or a label filter;
        ``filtered`` counts the hits dropped by the filter (they are misses)."""
        table = self.table
        n = int(keys.shape[0])
        keep = self._keep
        if not (self.want_records or keep is not None):
            return table.contains_many(keys, threads=self.threads), None, 0
        rows = table.find_many(keys, threads=self.threads)
        found = rows >= 0
        hits = np.flatnonzero(found)
        record_ids = np.full(n, -1, dtype=np.int64)
        filtered = 0
        if hits.size:
            hit_rows = rows[hits]
            rowmap = self._rowmap
            if rowmap is not None:
                hit_ids = rowmap[hit_rows]
                if int(hit_ids.max()) >= self._records:  # a corrupt rowmap
                    raise IndexFormatError(
                        f"{table.path}: rowmap of {table.algorithm} row "
                        f"{int(hit_rows[np.argmax(hit_ids)])} points past the "
                        f"{self._records} records"
                    )
                record_ids[hits] = hit_ids
            else:
                record_ids[hits] = hit_rows
            if keep is not None:
                wanted = np.fromiter(
                    map(keep, record_ids[hits].tolist()), dtype=bool, count=hits.size
                )
                if not wanted.all():
                    dropped = hits[~wanted]
                    found[dropped] = False
                    record_ids[dropped] = -1
                    filtered = int(dropped.size)
        return found, record_ids, filtered


def match_chunks(
    index: Any,
    binary_file: BinaryIO,
    *,
    skip_invalid: bool = False,
    name: str = "<stdin>",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    threads: int = 1,
    want_lines: bool = True,
    stats: MatchStats | None = None,
    want_records: bool = False,
    only: Any = None,
    exclude: Any = None,
) -> Iterator[ChunkMatch]:
    """Look up every digest of a text input in ``index``, one chunk at a time.

    ``index`` is an open :class:`hashlookup.HashIndex` (the digests must have its
    width, ``2 * index.width`` hex characters) or an open
    :class:`hashlookup.Dataset`: then the width of the first digest line picks
    the key table (``index.table(algorithm)``) and every later line must have
    that width too; a dataset without a table of that algorithm raises
    :class:`hashlookup.InputError` naming the line.  ``binary_file`` is read with
    ``read(chunk_size)`` until it returns ``b""``.  ``name`` is used in error
    messages (``name:line: ...``).

    An invalid line raises :class:`hashlookup.InputError` naming ``name``, the line
    number and the text, unless ``skip_invalid`` is true (then it is counted in
    ``stats.invalid``).  Chunks without any key are not yielded.  With
    ``want_lines=False`` line numbers and offsets are not computed (``line_bytes``
    and ``matches`` are then unavailable): use it when only counts are needed.

    ``want_records=True`` fills ``ChunkMatch.record_ids``.  ``only`` and
    ``exclude`` (a label or a list of labels; dataset only) keep only the hits
    whose record carries one of the ``only`` labels and none of the ``exclude``
    labels, as ``Dataset.lookup(..., only=, exclude=)`` does; the labels the
    dataset was opened with ``suppress=`` are always excluded.  Dropped hits
    count as misses (``found`` is False for them) and in ``stats.filtered``.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    st = stats if stats is not None else MatchStats()
    matcher = KeyMatcher(
        index, want_records=want_records, only=only, exclude=exclude, threads=threads
    )
    if matcher.bound:
        st.algorithm = matcher.algorithm
    for parsed in iter_parsed(
        binary_file,
        matcher.width,
        algorithm=matcher.algorithm or None,
        name=name,
        skip_invalid=skip_invalid,
        want_lines=want_lines,
        chunk_size=chunk_size,
    ):
        st.bytes += len(parsed.data)
        st.lines += int(parsed.lines)
        st.chunks += 1
        st.invalid += int(parsed.invalid)
        keys = parsed.keys
        n = int(keys.shape[0])
        if n == 0:
            continue
        if not matcher.bound:  # dataset: the first digest decides the table
            line = (
                int(parsed.line_numbers[0])
                if parsed.line_numbers is not None
                else _first_digest_line(parsed.data, parsed.first_line)
            )
            matcher.bind(int(keys.shape[1]), f"{name}:{line}")
            st.algorithm = matcher.algorithm
        found, record_ids, filtered = matcher.lookup(keys)
        st.filtered += filtered
        st.keys += n
        st.hits += int(np.count_nonzero(found))
        yield ChunkMatch(
            parsed.data,
            keys,
            found,
            parsed.line_numbers,
            parsed.line_offsets,
            record_ids,
        )
