"""NearIndex: a dataset's PDQ sections, searched in place.

Three sections of the mapped file (docs/FORMAT.md): the 32-byte hashes
(rows in record order), each row's record id and quality, and the
multi-index over the hashes (csrc/near/hl_near.h).  Opening points the C
search at them (O(chunks), nothing read or rebuilt); searches return rows
and distances, which the layer above turns into records.
"""

from __future__ import annotations

import itertools
import os
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import numpy as np
else:
    from hashlookup._lazy import numpy as np

from hashlookup._threads import thread_pool
from hashlookup.errors import IndexFormatError
from hashlookup.near import _near
from hashlookup.near._defaults import check_radius

#: Strategies: by the cost model, or forced (tests and benchmarks).
STRATEGIES = {"auto": _near.AUTO, "index": _near.MIH, "scan": _near.LINEAR}
# Below this many queries a batch runs on the calling thread: handing work
# to the pool costs more than a few searches.
_MIN_PER_THREAD = 64
# Up to this radius one query (about 1-5 us over 1.4 M hashes) keeps the GIL.
_KEEP_GIL_RADIUS = 15


class NearRows(NamedTuple):
    """Flat search results: for each hit its query number, row, distance."""

    query: np.ndarray  # int64
    row: np.ndarray  # uint32
    distance: np.ndarray  # uint16


class NearIndex:
    """The PDQ search structure of one mapped dataset generation.

    Parameters
    ----------
    mapping : buffer
        The whole file (an ``mmap``).
    hashes_offset, records_offset, index_offset : int
        Where the PDQ hashes, PDQ records and index sections start.
    count : int
        PDQ rows.
    chunks, bucket_bits : int
        The index parameters (validated by ``store.format.pdq_layout``).
    index_length : int
        Bytes of the index section.
    path : str
        The file, for error messages.
    """

    def __init__(
        self,
        mapping: Any,
        hashes_offset: int,
        records_offset: int,
        index_offset: int,
        count: int,
        chunks: int,
        bucket_bits: int,
        index_length: int,
        path: str,
    ) -> None:
        self.path = path
        self.count = count
        self.chunks = chunks
        self.bucket_bits = bucket_bits
        self._mapping = mapping
        self._spans = (hashes_offset, records_offset)
        self._arrays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.table = _near.NearTable()
        self.table._attach(
            mapping,
            hashes_offset,
            records_offset + 4 * count,
            count,
            chunks,
            bucket_bits,
            index_offset,
            index_length,
        )

    def _views(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(hashes (n, 32), record ids, quality): numpy views, on first use."""
        if self._arrays is None:
            if self._mapping is None:
                raise ValueError("I/O operation on closed dataset")
            h, r = self._spans
            n = self.count
            self._arrays = (
                np.frombuffer(self._mapping, np.uint8, 32 * n, h).reshape(n, 32),
                np.frombuffer(self._mapping, "<u4", n, r),
                np.frombuffer(self._mapping, np.uint8, n, r + 4 * n),
            )
        return self._arrays

    @property
    def hashes(self) -> np.ndarray:
        """``(count, 32)`` uint8: the hash of each row (read-only view)."""
        return self._views()[0]

    @property
    def record_ids(self) -> np.ndarray:
        """uint32 record id of each row (non-decreasing)."""
        return self._views()[1]

    @property
    def quality(self) -> np.ndarray:
        """uint8 quality (0..100) of each row."""
        return self._views()[2]

    def search(
        self,
        queries: np.ndarray,
        max_distance: int,
        min_quality: int,
        *,
        threads: int | None = 1,
        strategy: str = "auto",
    ) -> NearRows:
        """Rows within `max_distance` of each row of `queries`.

        Parameters
        ----------
        queries : numpy.ndarray
            ``(n, 32)`` uint8, C-contiguous.
        max_distance, min_quality : int
            Radius (any value >= 0; >= 256 matches every row) and the
            lowest quality matched (0 matches all).
        threads : int or None, default 1
            Threads to split the queries over (None: one per core); the
            GIL is released while they search.
        strategy : str, default "auto"
            "auto", "index" (always the multi-index) or "scan" (always a
            linear scan): all three give identical results.

        Returns
        -------
        NearRows
            Per query (in query order) nearest first, then by row.
        """
        check_radius(max_distance, min_quality)
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}")
        code = STRATEGIES[strategy]
        radius = min(max_distance, 1 << 16)
        n = len(queries)
        flat = queries.reshape(-1)
        if threads is None:
            threads = os.cpu_count() or 1
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        parts = min(threads, max(1, n // _MIN_PER_THREAD))
        table = self.table
        try:
            chunks = self._run(table, flat, n, parts, radius, min_quality, code)
        except IndexFormatError as e:
            raise IndexFormatError(f"{self.path}: {e}") from None
        q = b"".join(c[0] for c in chunks)
        r = b"".join(c[1] for c in chunks)
        d = b"".join(c[2] for c in chunks)
        return NearRows(
            np.frombuffer(q, np.int64),
            np.frombuffer(r, np.uint32),
            np.frombuffer(d, np.uint16),
        )

    @staticmethod
    def _run(
        table: Any,
        flat: np.ndarray,
        n: int,
        parts: int,
        radius: int,
        min_quality: int,
        code: int,
    ) -> list[tuple[bytes, bytes, bytes]]:
        if parts <= 1:
            # A batch, or one query at a radius where a search takes tens of
            # microseconds, releases the GIL; a search within a few bits
            # (about a microsecond) keeps it: releasing would cost as much.
            release = n > 1 or radius > _KEEP_GIL_RADIUS
            chunks = [table.search(flat, radius, min_quality, code, 0, release)]
        else:
            bounds = [n * i // parts for i in range(parts + 1)]
            futures = [
                thread_pool().submit(
                    table.search,
                    flat[32 * a : 32 * b],
                    radius,
                    min_quality,
                    code,
                    a,
                )
                for a, b in itertools.pairwise(bounds)
            ]
            chunks = [f.result() for f in futures]
        return chunks

    def search_one(
        self, query: bytes, max_distance: int, min_quality: int
    ) -> list[tuple[int, int]]:
        """``[(row, distance)]`` within `max_distance` of one 32-byte query,
        nearest first: :meth:`search` without numpy, for single queries
        (arguments already checked by the caller)."""
        radius = min(max_distance, 1 << 16)
        try:
            _, r, d = self.table.search(
                query, radius, min_quality, 0, 0, radius > _KEEP_GIL_RADIUS
            )
        except IndexFormatError as e:
            raise IndexFormatError(f"{self.path}: {e}") from None
        rows = memoryview(r).cast("I").tolist()
        return list(zip(rows, memoryview(d).cast("H").tolist(), strict=True))

    def verify(self, record_count: int) -> None:
        """Check the PDQ sections' values (O(n * chunks)).

        Record ids are non-decreasing and below `record_count`, qualities
        are 0..100, and the multi-index is exactly what the builder writes
        for these hashes.  (The checksums are checked with the file's.)

        Raises
        ------
        IndexFormatError
            What is wrong, naming the file.
        """
        _, ids, quality = self._views()
        if len(ids):
            if int(ids.max()) >= record_count:
                raise IndexFormatError(
                    f"{self.path}: a PDQ row points past the {record_count} records"
                )
            if np.any(ids[1:] < ids[:-1]):
                raise IndexFormatError(f"{self.path}: PDQ rows are not in record order")
            if int(quality.max()) > 100:
                raise IndexFormatError(f"{self.path}: a PDQ quality above 100")
        try:
            self.table.check()
        except IndexFormatError as e:
            raise IndexFormatError(f"{self.path}: {e}") from None

    def close(self) -> None:
        """Drop the views and the C pointers (BufferError while searches in
        other threads still run)."""
        self._arrays = None
        self.table._detach()
        self._mapping = None
