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

import mmap
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import numpy as np
else:
    from hashlookup._lazy import numpy as np

from hashlookup import algorithms
from hashlookup.store import format as _format
from hashlookup._core import RecordTable, TableSet
from hashlookup.store.index import (
    HashIndex,
    _raw_public_key,
    close_mapping,
    file_identity,
    map_file,
)
from hashlookup.store.labels import LabelStore
from hashlookup.errors import IndexFormatError

ALGORITHMS = algorithms.NAMES
_ALG_INDEX = {a: i for i, a in enumerate(ALGORITHMS)}
_BY_WIDTH = algorithms.BY_WIDTH


class Match(NamedTuple):
    """A digest found in a dataset: the whole record of the file."""

    record_id: int
    algorithm: str            # algorithm of the digest that was looked up
    md5: str | None           # lowercase hex, None if the record has none
    sha1: str | None
    sha256: str | None
    size: int | None          # bytes, None if unknown
    labels: tuple[str, ...]   # e.g. ("category:1", "source:police-nl")
    generation: int           # dataset version that answered
    built: str                # dataset build time (ISO 8601, UTC)


@dataclass(frozen=True)
class Invalid:
    """An item of lookup_many that is not a digest, and why."""

    reason: str


class _State:
    """One opened generation of a dataset file: the mapping and everything
    read from it.  Replaced as a whole on reload."""

    def __init__(self, path: str, signature_key: Any = None) -> None:
        mm, header, st = map_file(path)
        self.mm: mmap.mmap | None = mm
        self.identity = file_identity(st)
        try:
            if signature_key is not None:
                # Imported here: files opened without a key need no signing
                # code (start-up time of the CLI).
                from hashlookup.store.signature import check_signature

                # Before anything is read from the file (docs/SIGNING.md).
                check_signature(mm, header, path, signature_key)
            self._load(path, mm, header)
        except BaseException:
            self.close()
            raise

    def _load(self, path: str, mm: mmap.mmap, header: _format.Header) -> None:
        self.header = header
        groups = _format.table_groups(header)
        if not groups:
            raise IndexFormatError(f"{path}: no keys section")
        layouts = {g: _format.table_layout(header, path, g) for g in groups}
        self.layout = _format.dataset_layout(header, layouts, path)
        self.meta = _format.read_metadata(mm, header, path)
        self.tables: dict[str, HashIndex] = {}
        # Sections viewed as numpy arrays only when asked for (rowmaps,
        # records): opening needs no numpy (see hashlookup._lazy).
        self._rowmap_spans: dict[str, tuple[int, int]] = {}
        self._rowmaps: dict[str, np.ndarray] | None = None
        self._records: np.ndarray | None = None
        for g, lay in layouts.items():
            if lay.algorithm not in ALGORITHMS:
                raise IndexFormatError(f"{path}: a dataset holds md5, sha1 and "
                                       f"sha256 tables, not {lay.algorithm}")
            if lay.algorithm in self.tables:
                raise IndexFormatError(f"{path}: two {lay.algorithm} tables")
            table = HashIndex._from_mapping(mm, header, path, g, self.identity)
            table._ds_state = self
            self.tables[lay.algorithm] = table
            if self.layout is not None:
                self._rowmap_spans[lay.algorithm] = (self.layout.rowmaps[g].offset,
                                                     lay.count)
        # Where each table's keys are (offset, width, count): a hit's digests
        # are read off the map from there.
        self.key_spans = {a: (t._layout.keys.offset, t.width, len(t))
                          for a, t in self.tables.items()}
        self.reader: RecordTable | None = None
        if self.layout is None:  # a plain index: one record per key
            self.count = len(next(iter(self.tables.values())))
            self.labels = None
        else:
            rec = self.layout.records
            self.rec_offset = rec.offset
            self.count = self.layout.count
            # A hit's digests and size in one C call (see Dataset._hit).
            groups_of = {lay.algorithm: g for g, lay in layouts.items()}
            self.reader = RecordTable(
                mm, rec.offset, self.count, [self.key_spans.get(a) for a in ALGORITHMS],
                [self.layout.rowmaps[groups_of[a]].offset if a in groups_of else None
                 for a in ALGORITHMS], path)
            self.labels = None
            if self.layout.label_index is not None:
                assert self.layout.label_bitmaps is not None
                index = _format.read_json_section(mm, self.layout.label_index, path,
                                                  "label index")
                b = self.layout.label_bitmaps
                self.labels = LabelStore(mm, b.offset, b.length, index, self.count,
                                         path)
        ds = self.meta.get("dataset", {}) if isinstance(self.meta, dict) else {}
        self.name = str(ds.get("name") or os.path.splitext(os.path.basename(path))[0])
        gen = ds.get("generation", 0)
        self.generation = gen if isinstance(gen, int) else 0
        self.built = datetime.fromtimestamp(header.created_ns / 1e9,
                                            timezone.utc).isoformat()
        self.filters: dict[tuple[tuple[str, ...], tuple[str, ...]], Any] = {}

    @property
    def is_dataset(self) -> bool:
        """False for a plain index file (no records)."""
        return self.layout is not None

    @property
    def rowmaps(self) -> dict[str, np.ndarray]:
        """Algorithm -> uint32 record id of each row of its key table (empty
        for a plain index)."""
        if self._rowmaps is None:
            mm = self.mm
            if mm is None:
                return {}
            self._rowmaps = {a: np.frombuffer(mm, dtype="<u4", count=count,
                                              offset=offset)
                             for a, (offset, count) in self._rowmap_spans.items()}
        return self._rowmaps

    @property
    def records(self) -> np.ndarray | None:
        """The record table (RECORD_DTYPE), None for a plain index."""
        if self._records is None and self.layout is not None and self.mm is not None:
            self._records = np.frombuffer(self.mm, dtype=_format.RECORD_DTYPE,
                                          count=self.count, offset=self.rec_offset)
        return self._records

    def close(self) -> None:
        for t in getattr(self, "tables", {}).values():
            try:
                t.close()
            except BufferError:
                pass  # a batch in another thread still uses it; GC unmaps later
        self._rowmaps = {}
        self._records = None
        reader = getattr(self, "reader", None)
        if reader is not None:
            reader._detach()  # before the unmap: it holds a buffer export
        self.key_spans = {}
        self.keys = {}
        if self.mm is not None:
            close_mapping(self.mm)
            self.mm = None


class Dataset(TableSet):
    """An opened dataset (or single-table index) file.

    Use :func:`hashlookup.open_dataset`.  ``lookup(digest)`` takes a hex str
    or raw bytes of an md5, sha1 or sha256 and returns a :class:`Match` or
    None; ``table(algorithm)`` gives the :class:`HashIndex` of one algorithm
    for vectorised lookups.
    """

    path: str

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, suppress: Iterable[str] = (),
             auto_reload: bool = False, reload_interval: float = 1.0,
             require_signature: Any = None) -> Dataset:
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
        self._state: _State | None = None
        self._signature_key = None
        if require_signature is not None:
            from hashlookup.store.signature import load_public_key

            self._signature_key = load_public_key(require_signature)
        self._rejected: tuple[Any, Exception] | None = None
        self._install(_State(self.path, self._signature_key))
        if reload_interval <= 0:
            raise ValueError(f"reload_interval must be > 0, got {reload_interval}")
        self._set_auto_reload(auto_reload, reload_interval)
        return self

    def _install(self, state: _State) -> None:
        t = state.tables
        self._state = state
        self._set_tables(t.get("md5"), t.get("sha1"), t.get("sha256"))

    def _current(self) -> _State:
        st = self._state
        if st is None:
            raise ValueError("I/O operation on closed dataset")
        return st

    # -- facts ---------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._current().name

    @property
    def generation(self) -> int:
        return self._current().generation

    @property
    def built(self) -> str:
        return self._current().built

    @property
    def algorithms(self) -> tuple[str, ...]:
        return tuple(a for a in ALGORITHMS if a in self._current().tables)

    def __len__(self) -> int:
        """Number of records."""
        return self._current().count

    def table(self, algorithm: str) -> HashIndex:
        """The key table of one algorithm ("md5", "sha1" or "sha256").

        With auto_reload, the returned table is the current generation's; a
        caller holding a table keeps the generation it got."""
        self._reload_tick()
        st = self._current()
        if algorithm not in st.tables:
            raise KeyError(f"{self.path}: no {algorithm} table (has "
                           f"{', '.join(self.algorithms)})")
        return st.tables[algorithm]

    def record_ids(self, table: HashIndex, rows: np.ndarray) -> np.ndarray:
        """Record ids (int64) of rows found in `table` (from table() and
        find_many), -1 where rows is -1.  Uses the generation the table
        belongs to, so ids stay right across a reload."""
        st: _State = table._ds_state
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
            raise IndexFormatError(f"{self.path}: rowmap of {table.algorithm} points "
                                   f"past the {st.count} records")
        out[hit] = ids
        return out

    def record_filter(self, table: HashIndex, only: Any = None,
                      exclude: Any = None) -> Any:
        """Predicate record id -> wanted for the generation of `table` (label
        bitmap algebra, cached), or None when nothing is filtered."""
        if only is None and exclude is None and not self._suppress:
            return None
        return self._filter(table._ds_state, only, exclude)

    def labels(self) -> dict[str, int]:
        """Every label with its number of records."""
        st = self._current()
        if st.labels is None:
            return {}
        return {n: st.labels.count(n) for n in st.labels.names()}

    def records_with(self, label: str) -> Any:
        """Record ids carrying `label`, as a pyroaring FrozenBitMap."""
        st = self._current()
        if st.labels is None or label not in st.labels.entries:
            raise KeyError(f"{self.path}: no label {label!r}")
        return st.labels.bitmap(label)

    def __repr__(self) -> str:
        if self._state is None:
            return f"<Dataset {self.path!r} (closed)>"
        return (f"<Dataset {self.path!r} {self.name} generation {self.generation}: "
                f"{len(self):,} records, {', '.join(self.algorithms)}>")

    # -- lookups -------------------------------------------------------------

    def _hit(self, table: HashIndex, row: int, only: Any, exclude: Any
             ) -> Match | None:
        # The table that found the row names the generation to answer from,
        # even if another thread reloaded in between.
        st: _State = table._ds_state
        alg = table.algorithm
        reader = st.reader
        if reader is None:  # a plain index: the row is the record
            if not self._allowed(st, row, only, exclude):
                return None
            return self._match(st, row, alg)
        # rowmap, record, digests as hex and size in one C call (it raises
        # ValueError once the generation is closed, IndexFormatError if the
        # rowmap points past the records)
        rid, md5, sha1, sha256, size = reader.hit(_ALG_INDEX[alg], row)
        if (only is not None or exclude is not None or self._suppress) and \
                not self._filter(st, only, exclude)(rid):
            return None
        return tuple.__new__(Match, (rid, alg, md5, sha1, sha256, size,
                                     st.labels.of(rid) if st.labels is not None
                                     else (), st.generation, st.built))

    def _allowed(self, st: _State, rid: int, only: Any, exclude: Any) -> bool:
        if only is None and exclude is None and not self._suppress:
            return True
        keep = self._filter(st, only, exclude)
        return keep(rid)

    def _filter(self, st: _State, only: Any, exclude: Any) -> Any:
        """A predicate record id -> allowed, from bitmap algebra (cached)."""
        o = tuple(sorted(_as_labels(only))) if only is not None else None
        x = tuple(sorted(set(_as_labels(exclude)) | set(self._suppress)))
        key = (o, x)
        f = st.filters.get(key)
        if f is None:
            if st.labels is None:
                f = (lambda rid: False) if o else (lambda rid: True)
            else:
                allowed = st.labels.union(o) if o else None
                if allowed is not None and x:
                    allowed = allowed - st.labels.union(x)
                    f = allowed.__contains__
                elif allowed is not None:
                    f = allowed.__contains__
                elif x:
                    blocked = st.labels.union(x)
                    f = (lambda rid, b=blocked: rid not in b)
                else:
                    f = (lambda rid: True)
            st.filters[key] = f
        return f

    def _match(self, st: _State, rid: int, alg: str) -> Match:
        mm, spans = st.mm, st.key_spans
        if mm is None or not spans:
            raise ValueError("I/O operation on closed dataset")
        if st.layout is None:  # plain index: the key is the whole record
            off, w, _ = spans[alg]
            d = {alg: mm[off + rid * w:off + (rid + 1) * w].hex()}
            return Match(rid, alg, d.get("md5"), d.get("sha1"), d.get("sha256"),
                         None, (), st.generation, st.built)
        assert st.reader is not None
        md5, sha1, sha256, size = st.reader.read(rid)
        labels = st.labels.of(rid) if st.labels is not None else ()
        return Match(rid, alg, md5, sha1, sha256, size, labels, st.generation,
                     st.built)

    def record(self, record_id: int) -> Match:
        """The record with this id (algorithm field: its first known digest)."""
        st = self._current()
        if not 0 <= record_id < st.count:
            raise IndexError(f"record id {record_id} out of range (0..{st.count - 1})")
        alg = next(iter(st.tables))
        if st.records is not None:
            r = st.records[record_id]
            present = [a for a in ALGORITHMS
                       if int(r[f"{a}_row"]) != _format.NO_ROW and a in st.tables]
            if not present:
                raise IndexFormatError(f"{self.path}: record {record_id} has no "
                                       "digest")
            alg = present[0]
        return self._match(st, record_id, alg)

    def lookup_many(self, digests: Any, *, only: Any = None, exclude: Any = None
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
            self._reload_tick()
            st = self._current()
            if alg not in st.tables:
                return [None] * len(digests)
            table = st.tables[alg]
            rows = table.find_many(digests)
            return [None if r < 0 else self._hit(table, int(r), only, exclude)
                    for r in rows.tolist()]
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
        st = self._current()
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
                new = _State(self.path, self._signature_key)
            except IndexFormatError as e:
                if self._signature_key is not None:
                    self._rejected = (versions, e)
                raise
            self._install(new)
        # The old state is not closed here: batch calls in other threads may
        # still run on its tables; its mapping goes when they let go of it.
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

    def _maybe_reload(self) -> None:
        try:
            self.reload()
        except (OSError, IndexFormatError):
            pass  # a broken replacement: keep answering from what we have

    # -- lifecycle -----------------------------------------------------------

    def info(self) -> dict[str, Any]:
        st = self._current()
        return {
            "path": self.path, "kind": "dataset" if st.is_dataset else "index",
            "name": st.name, "generation": st.generation, "built": st.built,
            "records": st.count, "file_size": st.header.file_size,
            "tables": {a: t.info() for a, t in st.tables.items()},
            "labels": self.labels(), "metadata": st.meta,
        }

    def verify(self) -> dict[str, Any]:
        """Every checksum, every table's structure, rowmaps and records."""
        st = self._current()
        for i, t in enumerate(st.tables.values()):
            t.verify(checksums=i == 0)  # the file's checksums once, every table
        if st.records is not None:
            for a, rm in st.rowmaps.items():
                if len(rm) and int(rm.max()) >= st.count:
                    raise IndexFormatError(f"{self.path}: rowmap of {a} points past "
                                           f"the {st.count} records")
            anything = np.zeros(st.count, dtype=bool)
            for a in ALGORITHMS:
                col = st.records[f"{a}_row"]  # noqa: verify() may use numpy
                present = col != _format.NO_ROW
                anything |= present
                t = st.tables.get(a)
                n = len(t) if t is not None else 0
                if np.any(col[present] >= n):
                    raise IndexFormatError(f"{self.path}: a record points past the "
                                           f"{a} table")
                if a in st.rowmaps:
                    self._verify_links(a, col, present, st.rowmaps[a])
            if not anything.all():
                raise IndexFormatError(f"{self.path}: record "
                                       f"{int(np.argmin(anything))} has no digest")
            if st.labels is not None:
                for name in st.labels.names():
                    st.labels.bitmap(name)
        return {"path": self.path, "records": st.count, "ok": True,
                "tables": list(st.tables)}

    def _verify_links(self, alg: str, col: np.ndarray, present: np.ndarray,
                      rowmap: np.ndarray) -> None:
        """Rows and records agree: every row of the alg table maps to a
        record that has an alg digest, and the row a record shows maps back
        to that record (a merged record may own several rows of one table;
        it shows the first).  Without this a lookup could answer with a
        record whose digests lead to another file."""
        bad = np.flatnonzero(col[rowmap] == _format.NO_ROW)
        if bad.size:
            r = int(bad[0])
            raise IndexFormatError(f"{self.path}: {alg} row {r} maps to record "
                                   f"{int(rowmap[r])}, which has no {alg} digest")
        ids = np.flatnonzero(present)
        bad = np.flatnonzero(rowmap[col[present]] != ids)
        if bad.size:
            rid = int(ids[bad[0]])
            raise IndexFormatError(f"{self.path}: record {rid} points at {alg} row "
                                   f"{int(col[rid])}, which maps to another record")

    def close(self) -> None:
        st, self._state = self._state, None
        if st is not None:
            self._set_tables(None, None, None)
            st.close()

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce__(self) -> tuple[Any, ...]:
        return (_reopen, (self.path, self._suppress,
                          _raw_public_key(self._signature_key)))


def _reopen(path: str, suppress: tuple[str, ...], key: bytes | None = None
            ) -> Dataset:
    return Dataset.open(path, suppress=suppress, require_signature=key)


def _as_labels(x: Any) -> Sequence[str]:
    if x is None:
        return ()
    if isinstance(x, str):
        return (x,)
    return tuple(x)


def open_dataset(path: str | os.PathLike[str], *, suppress: Iterable[str] = (),
                 auto_reload: bool = False, reload_interval: float = 1.0,
                 require_signature: Any = None) -> Dataset:
    """Open a dataset (or single-table index) file; see Dataset.open."""
    return Dataset.open(path, suppress=suppress, auto_reload=auto_reload,
                        reload_interval=reload_interval,
                        require_signature=require_signature)
