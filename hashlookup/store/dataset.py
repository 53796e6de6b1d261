"""Dataset: one memory-mapped file with a key table per algorithm (md5,
sha1, sha256), a record table and labels.  See docs/DATASETS.md.

A lookup by any digest finds its record: the digest's length picks the
table (in C, hashlookup._core.TableSet), the row's entry in the table's
rowmap is the record id, and the record points at the rows of the file's
other digests.  Labels are roaring bitmaps of record ids.

Updates replace the file atomically; reload() (or auto_reload=True) maps
the new file and swaps it in as one reference, so lookups in flight finish
on the generation they started on and the old mapping is released when the
last of them lets go.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
else:
    from hashlookup._lazy import numpy as np

from hashlookup import algorithms
from hashlookup._lookup import TableSetRef
from hashlookup.errors import IndexFormatError
from hashlookup.store.generation import ALGORITHMS, Generation, Match
from hashlookup.store.index import HashIndex, _raw_public_key, file_identity

_BY_WIDTH = algorithms.BY_WIDTH


@dataclass(frozen=True)
class Invalid:
    """An item of lookup_many that is not a digest, and why."""

    reason: str


class Dataset(TableSetRef):
    """An opened dataset (or single-table index) file.

    Use :func:`hashlookup.open_dataset`.  ``lookup(digest)`` takes a hex str
    or raw bytes of an md5, sha1 or sha256 and returns a :class:`Match` or
    None; ``table(algorithm)`` gives the :class:`HashIndex` of one algorithm
    for vectorised lookups; ``current()`` the :class:`Generation` everything
    is read from (tables, records, labels), which layers above use.

    ``lookup`` and ``find_row`` are hashlookup._core.TableSetRef's: one call
    into C per digest, hit or miss.
    """

    path: str
    _suppress: tuple[str, ...]
    _lock: threading.Lock
    _state: Generation | None
    _signature_key: Any
    _rejected: tuple[Any, Exception] | None

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        suppress: Iterable[str] = (),
        auto_reload: bool = False,
        reload_interval: float = 1.0,
        require_signature: Any = None,
    ) -> Dataset:
        """Map the file at `path` (O(1) apart from reading the JSON label index).

        Parameters
        ----------
        suppress
            Labels whose records never match (e.g. ``["source:nsrl"]``), on
            top of the allow-list applied at build time.
        auto_reload
            Check at most every `reload_interval` seconds (one stat) whether
            the file was replaced, and if so map the new one.
        require_signature
            A public key (path of NAME.pub, its bytes, 32 raw bytes or an
            Ed25519PublicKey): the file, and every generation reloaded
            later, must carry a valid signature by it (docs/SIGNING.md).
            A replacement that fails the check is not loaded.
        """
        self = cls.__new__(cls)
        self.path = os.fspath(path)
        self._suppress = tuple(suppress)
        self._lock = threading.Lock()
        self._state = None
        self._signature_key = None
        if require_signature is not None:
            from hashlookup.store.signature import load_public_key

            self._signature_key = load_public_key(require_signature)
        self._rejected = None
        self._install(Generation(self.path, self._signature_key, self._suppress))
        if reload_interval <= 0:
            raise ValueError(f"reload_interval must be > 0, got {reload_interval}")
        self._set_auto_reload(auto_reload, reload_interval, _reload_quietly)
        return self

    def _install(self, generation: Generation) -> None:
        self._state = generation
        self._set_current(generation.lookups)

    def _live(self) -> Generation:
        st = self._state
        if st is None:
            raise ValueError("I/O operation on closed dataset")
        return st

    def current(self) -> Generation:
        """The current generation: its tables, records, labels and facts.

        With auto_reload, first reloads if the interval has passed.  A
        caller holding a generation keeps answering from it across reloads.

        Raises
        ------
        ValueError
            The dataset is closed.
        """
        if self._reload_due():
            _reload_quietly(self)
        return self._live()

    # -- facts ---------------------------------------------------------------

    @property
    def suppress(self) -> tuple[str, ...]:
        """Labels whose records never match (given to open)."""
        return self._suppress

    @property
    def name(self) -> str:
        """The dataset's name."""
        return self._live().name

    @property
    def generation(self) -> int:
        """The current generation's version number."""
        return self._live().generation

    @property
    def built(self) -> str:
        """Build time of the current generation (ISO 8601, UTC)."""
        return self._live().built

    @property
    def algorithms(self) -> tuple[str, ...]:
        """Algorithms of the key tables, in md5, sha1, sha256 order."""
        return self._live().algorithms

    def __len__(self) -> int:
        """Number of records."""
        return self._live().count

    def table(self, algorithm: str) -> HashIndex:
        """The key table of one algorithm ("md5", "sha1" or "sha256").

        With auto_reload, the returned table is the current generation's; a
        caller holding a table keeps the generation it got."""
        st = self.current()
        if algorithm not in st.tables:
            raise KeyError(
                f"{self.path}: no {algorithm} table (has {', '.join(self.algorithms)})"
            )
        return st.tables[algorithm]

    def record_ids(self, table: HashIndex, rows: np.ndarray) -> np.ndarray:
        """Record ids (int64) of rows found in `table` (from table() and
        find_many), -1 where rows is -1.  Uses the generation the table
        belongs to, so ids stay right across a reload."""
        st: Generation = table._generation
        rows = np.asarray(rows, dtype=np.int64)
        out = np.full(rows.shape, -1, dtype=np.int64)
        hit = rows >= 0
        if st.layout is None:  # a plain index: the row is the record
            out[hit] = rows[hit]
            return out
        rowmap = st.rowmaps.get(table.algorithm)
        if rowmap is None:
            raise ValueError("I/O operation on closed dataset")
        ids = rowmap[rows[hit]].astype(np.int64)
        if ids.size and int(ids.max()) >= st.count:
            raise IndexFormatError(
                f"{self.path}: rowmap of {table.algorithm} points "
                f"past the {st.count} records"
            )
        out[hit] = ids
        return out

    def record_filter(
        self, table: HashIndex, only: Any = None, exclude: Any = None
    ) -> Any:
        """Predicate record id -> wanted for the generation of `table` (label
        bitmap algebra, cached), or None when nothing is filtered."""
        return table._generation.record_filter(only, exclude)

    def labels(self) -> dict[str, int]:
        """Every label with its number of records."""
        st = self._live()
        if st.labels is None:
            return {}
        return {n: st.labels.count(n) for n in st.labels.names()}

    def records_with(self, label: str) -> Any:
        """Record ids carrying `label`, as a pyroaring FrozenBitMap."""
        st = self._live()
        if st.labels is None or label not in st.labels.entries:
            raise KeyError(f"{self.path}: no label {label!r}")
        return st.labels.bitmap(label)

    def __repr__(self) -> str:
        if self._state is None:
            return f"<Dataset {self.path!r} (closed)>"
        return (
            f"<Dataset {self.path!r} {self.name} generation {self.generation}: "
            f"{len(self):,} records, {', '.join(self.algorithms)}>"
        )

    # -- lookups -------------------------------------------------------------

    def record(self, record_id: int) -> Match:
        """The record with this id (algorithm field: its first known digest)."""
        return self._live().record(record_id)

    def lookup_many(
        self, digests: Any, *, only: Any = None, exclude: Any = None
    ) -> list[Match | Invalid | None]:
        """Per-item results in input order: a Match, None (miss) or Invalid.

        `digests` is a sequence of hex str / raw bytes of any of the three
        algorithms, or a (n, width) uint8 array of one algorithm.
        """
        if isinstance(digests, np.ndarray):
            if digests.ndim != 2 or digests.dtype != np.uint8:
                raise TypeError("expected a (n, width) uint8 array")
            alg = _BY_WIDTH.get(digests.shape[1])
            if alg is None:
                raise ValueError(f"no digest algorithm has {digests.shape[1]} bytes")
            st = self.current()
            if alg not in st.tables:
                return [None] * len(digests)
            rows = st.tables[alg].find_many(digests)
            match = st.match
            return [
                None if r < 0 else match(alg, r, only, exclude) for r in rows.tolist()
            ]
        out: list[Match | Invalid | None] = []
        lookup = self.lookup
        for item in digests:
            try:
                out.append(lookup(item, only, exclude))
            except (TypeError, ValueError) as e:
                out.append(Invalid(str(e)))
        return out

    # -- generations ---------------------------------------------------------

    def reload(self) -> bool:
        """Map the file again if it was replaced; True if it was.  Lookups in
        flight finish on the old generation; never blocks them.  With
        require_signature, a replacement whose signature fails raises
        SignatureError and the old generation stays (the same pair of files
        is not checked twice)."""
        st = self._live()
        try:
            s = os.stat(self.path)
        except FileNotFoundError:
            return False  # being replaced, or removed: keep serving the old one
        if file_identity(s) == st.identity:
            return False
        with self._lock:
            if self._state is not st:
                return True  # another thread reloaded meanwhile
            versions = self._versions(s)
            rejected = self._rejected
            if rejected is not None and rejected[0] == versions:
                raise rejected[1]  # same files as last time: not checked again
            try:
                new = Generation(self.path, self._signature_key, self._suppress)
            except IndexFormatError as e:
                if self._signature_key is not None:
                    self._rejected = (versions, e)
                raise
            self._install(new)
        # The old generation is not closed here: batch calls in other threads
        # may still run on its tables; its mapping goes when they let go of it.
        return True

    def _versions(self, s: os.stat_result) -> tuple[Any, ...]:
        """Identity of the data file and (if required) its signature file."""
        if self._signature_key is None:
            return (file_identity(s),)
        from hashlookup.store.signature import signature_path

        try:
            sig = file_identity(os.stat(signature_path(self.path)))
        except OSError:
            sig = None
        return (file_identity(s), sig)

    # -- lifecycle -----------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """The file's facts: kind, name, generation, sizes, tables, labels."""
        st = self._live()
        return {
            "path": self.path,
            "kind": "dataset" if st.is_dataset else "index",
            "name": st.name,
            "generation": st.generation,
            "built": st.built,
            "records": st.count,
            "file_size": st.header.file_size,
            "tables": {a: t.info() for a, t in st.tables.items()},
            "labels": self.labels(),
            "metadata": st.metadata,
        }

    def verify(self) -> dict[str, Any]:
        """Every checksum, every table's structure, rowmaps and records."""
        st = self._live()
        st.verify()
        return {
            "path": self.path,
            "records": st.count,
            "ok": True,
            "tables": list(st.tables),
        }

    def close(self) -> None:
        """Unmap the file; further use raises ValueError."""
        st, self._state = self._state, None
        if st is not None:
            self._set_current(None)
            st.close()

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _reopen,
            (self.path, self._suppress, _raw_public_key(self._signature_key)),
        )


def _reload_quietly(ds: Dataset) -> None:
    """The auto-reload step: given to TableSetRef, which calls it at most
    once per reload interval from lookup and find_row (current() calls it
    itself)."""
    try:
        ds.reload()
    except (OSError, IndexFormatError):
        pass  # a broken replacement: keep answering from what we have


def _reopen(path: str, suppress: tuple[str, ...], key: bytes | None = None) -> Dataset:
    return Dataset.open(path, suppress=suppress, require_signature=key)


def open_dataset(
    path: str | os.PathLike[str],
    *,
    suppress: Iterable[str] = (),
    auto_reload: bool = False,
    reload_interval: float = 1.0,
    require_signature: Any = None,
) -> Dataset:
    """Open a dataset (or single-table index) file; see Dataset.open."""
    return Dataset.open(
        path,
        suppress=suppress,
        auto_reload=auto_reload,
        reload_interval=reload_interval,
        require_signature=require_signature,
    )


__all__ = ["ALGORITHMS", "Dataset", "Generation", "Invalid", "Match", "open_dataset"]
