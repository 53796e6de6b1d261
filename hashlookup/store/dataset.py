"""Dataset: one memory-mapped file with a key table per algorithm (md5,
sha1, sha256), a record table and labels.  See docs/DATASETS.md.

A lookup by any digest finds its record: the digest's length picks the
table (in C, hashlookup._lookup.TableSet), the row's entry in the table's
rowmap is the record id, and the record points at the rows of the file's
other digests.  Labels are roaring bitmaps of record ids.

Updates replace the file atomically; reload() (or auto_reload=True) maps
the new file and swaps it in as one reference, so lookups in flight finish
on the generation they started on and the old mapping is released when the
last of them lets go.
"""

from __future__ import annotations

import _thread
import os
from collections.abc import Callable, Iterable, Mapping

from hashlookup import algorithms
from hashlookup._lookup import TableSetRef
from hashlookup._plain import dataclass_like
from hashlookup.errors import IndexFormatError
from hashlookup.store._near_search import NearSearch
from hashlookup.store._reloading import Reloading
from hashlookup.store.generation import (
    ALGORITHMS,
    Generation,
    Match,
    OlderGenerationError,
)
from hashlookup.store.index import HashIndex, _raw_public_key, preload_mapping

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    import numpy as np
    import numpy.typing as npt
    from pyroaring import FrozenBitMap

    from hashlookup._types import Digest, Labels, PublicKeySpec
else:
    from hashlookup._lazy import numpy as np

_BY_WIDTH = algorithms.BY_WIDTH


@dataclass_like(frozen=True)
class Invalid:
    """An item of :meth:`Dataset.lookup_many` that is not a digest, and why.

    A small immutable value (compares and hashes by `reason`), written out
    as a frozen dataclass by :func:`hashlookup._plain.dataclass_like`:
    making a real one costs the ``dataclasses`` import (with ``re`` and
    ``enum``) on every lookup's start-up.

    Attributes
    ----------
    reason : str
        The message of the ``TypeError`` or ``ValueError`` that
        :meth:`Dataset.lookup` raises for the item, e.g. "expected a digest
        as hex str or raw bytes, got int".
    """

    __slots__ = ("reason",)
    reason: str

    def __init__(self, reason: str) -> None:
        object.__setattr__(self, "reason", reason)

    def __reduce__(self) -> tuple[type[Invalid], tuple[str]]:
        return Invalid, (self.reason,)


class Dataset(TableSetRef, Reloading, NearSearch):
    """An opened dataset (or single-table index) file.

    Use :func:`hashlookup.open_dataset` (or ``Dataset.open``).
    ``lookup(digest)`` takes a hex str or raw bytes of an md5, sha1 or
    sha256 and returns a :class:`Match` or None; ``table(algorithm)`` gives
    the :class:`HashIndex` of one algorithm for vectorised lookups;
    ``current()`` the :class:`Generation` everything is read from (tables,
    records, labels), which layers above use.

    A dataset answers from its current generation, one mapping of the file;
    :meth:`reload` (or ``auto_reload=True``) maps a replaced file and swaps
    the new generation in whole, so a lookup finishes on the generation it
    started on.  A plain index file (md5, sha1 or sha256) opens as a
    dataset of one table whose rows are its records (no sizes, no labels).
    ``len(ds)`` is the number of records; ``with`` closes the dataset; a
    handle can be shared between threads and pickles by path (the
    receiver opens the file again, with the same `suppress` and required
    signature key).  After :meth:`close`, lookups and the methods and
    properties that read the current generation raise
    ``ValueError("I/O operation on closed dataset")``.

    Attributes
    ----------
    path : str
        Path of the file, as given to :meth:`open`.
    suppress : tuple of str
        Labels whose records never match.
    name, generation, built, algorithms
        Facts of the current generation (properties below).

    Methods
    -------
    lookup(digest, only=None, exclude=None)
        The :class:`Match` of one digest, or None.  `digest` is a hex
        ``str`` (any case) or raw bytes of an md5, sha1 or sha256: its
        length picks the table.  `only` (a label or labels: match only
        records carrying one of them) and `exclude` (never match records
        carrying one of them, on top of `suppress`) filter the answer;
        unknown labels match nothing.  Raises ``TypeError`` for what is
        not a str or bytes-like, ``ValueError`` for a length of no
        algorithm or a non-hex character (even when the dataset has no
        table of that algorithm, where a well-formed digest is a miss).
    find_row(digest)
        ``(table, row)`` of a digest, or None: :meth:`lookup` without
        building the Match (no label filter applies); raises as it does.

    Both are one call into C per digest, hit or miss
    (``hashlookup._lookup.TableSetRef``); with ``auto_reload`` they check
    for a replaced file at most once per interval.

    Examples
    --------
    ::

        with hashlookup.open_dataset("known.hlds") as ds:
            m = ds.lookup("d41d8cd98f00b204e9800998ecf8427e")
            if m is not None:
                print(m.record_id, m.sha256, m.labels)
    """

    path: str
    _suppress: tuple[str, ...]
    _lock: _thread.LockType
    _state: Generation | None
    _signature_key: Any
    _rejected: tuple[Any, Exception] | None
    _preload: bool

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        suppress: Iterable[str] = (),
        auto_reload: bool = False,
        reload_interval: float = 1.0,
        require_signature: PublicKeySpec | None = None,
        source: str | os.PathLike[str] | None = None,
        preload: bool = False,
    ) -> Dataset:
        """Map the file at `path` (O(1) apart from reading the JSON label index).

        Parameters
        ----------
        path : str or os.PathLike
            A dataset file, or an index file of md5, sha1 or sha256 keys.
        suppress : iterable of str, default ()
            Labels whose records never match (e.g. ``["source:nsrl"]``), on
            top of the allow-list applied at build time.
        auto_reload : bool, default False
            Check at most every `reload_interval` seconds (one stat, made
            by ``lookup``, ``find_row``, :meth:`lookup_many`, :meth:`table`
            and :meth:`current`) whether the file was replaced, and if so
            map the new one.  A
            replacement that cannot be loaded is ignored: the dataset keeps
            answering from the generation it has.
        reload_interval : float, default 1.0
            Seconds between two checks with `auto_reload`; must be > 0.
        require_signature : optional
            A public key (path of NAME.pub, its bytes, 32 raw bytes or an
            ``Ed25519PublicKey``): the file, and every generation reloaded
            later, must carry a valid signature by it (docs/SIGNING.md).
            A replacement that fails the check is not loaded.
        source : str or os.PathLike, optional
            Map this file instead (e.g. ``/proc/self/fd/N`` of a descriptor
            kept on the last good version); :meth:`reload` watches `path`.
        preload : bool, default False
            Read the whole file into memory now, and every generation
            reloaded later (MADV_POPULATE_READ, else MADV_WILLNEED): for
            services that must not wait for the disk on a first lookup.

        Returns
        -------
        Dataset
            The open dataset (a context manager).

        Raises
        ------
        IndexFormatError
            The file is not a valid dataset or index: corrupt, truncated,
            foreign, a table of another algorithm than md5, sha1 or sha256,
            two tables of one algorithm.  Subclasses: ``IndexVersionError``
            (a newer format version) and ``SignatureError`` (the required
            signature does not verify, or an unusable key).
        TypeError
            `require_signature` is not one of the accepted forms.
        ValueError
            `reload_interval` is not > 0.
        HashLookupError
            `require_signature` is given without the ``cryptography``
            package.
        OSError
            The file or the public key file cannot be opened
            (``FileNotFoundError``...), unchanged.
        """
        self = cls.__new__(cls)
        self.path = os.fspath(path)
        self._suppress = tuple(suppress)
        # threading.Lock, without importing threading (start-up)
        self._lock = _thread.allocate_lock()
        self._state = None
        self._signature_key = None
        if require_signature is not None:
            from hashlookup.store.signature import load_public_key

            self._signature_key = load_public_key(require_signature)
        self._rejected = None
        self._preload = preload
        src = None if source is None else os.fspath(source)
        self._install(Generation(self.path, self._signature_key, self._suppress, src))
        if reload_interval <= 0:
            raise ValueError(f"reload_interval must be > 0, got {reload_interval}")
        self._set_auto_reload(auto_reload, reload_interval, _reload_quietly)
        return self

    def _install(self, generation: Generation) -> None:
        if getattr(self, "_preload", False):
            preload_mapping(generation.mapping)
        self._state = generation
        self._set_current(generation.lookups)

    def _live(self) -> Generation:
        st = self._state
        if st is None:
            raise ValueError("I/O operation on closed dataset")
        return st

    def current(self) -> Generation:
        """The current generation: its tables, records, labels and facts.

        With auto_reload, first reloads if the interval has passed (a
        replacement that cannot be loaded is ignored).  A caller holding a
        generation keeps answering from it across reloads.

        Returns
        -------
        Generation
            The generation lookups answer from now.

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
        """Labels whose records never match (given to :meth:`open`)."""
        return self._suppress

    @property
    def name(self) -> str:
        """The dataset's name: from its metadata, else the file's stem.

        Raises ``ValueError`` once the dataset is closed, as the other
        facts of the current generation do.
        """
        return self._live().name

    @property
    def generation(self) -> int:
        """The current generation's version number (0 for a plain index)."""
        return self._live().generation

    @property
    def built(self) -> str:
        """Build time of the current generation (ISO 8601, UTC)."""
        return self._live().built

    @property
    def algorithms(self) -> tuple[str, ...]:
        """Algorithms of the key tables, in md5, sha1, sha256 order."""
        return self._live().algorithms

    @property
    def code_tables(self) -> Mapping[str, Mapping[str, Mapping[str, str]]]:
        """Tables keyed by an attribute's values, by name (NSRL's
        ``ProductCode``, ``OpSystemCode``, ``MfgCode``): ``code_tables[
        "ProductCode"]["190"]`` is that product's row (column -> value).
        Empty when the dataset has none (docs/DATASETS.md)."""
        return self._live().code_tables

    @property
    def nsrl_version(self) -> str | None:
        """The RDS version of the NSRL sources the current generation was
        built from (version.txt, RDSv3's VERSION table), else None."""
        return self._live().nsrl_version

    def __len__(self) -> int:
        """Number of records."""
        return self._live().count

    def table(self, algorithm: str) -> HashIndex:
        """The key table of one algorithm, for batch lookups.

        With auto_reload, the returned table is the current generation's
        (reloading first if the interval has passed); a caller holding a
        table keeps the generation it got.

        Parameters
        ----------
        algorithm : str
            ``"md5"``, ``"sha1"`` or ``"sha256"``.

        Returns
        -------
        HashIndex
            The table; its rows lead to records through :meth:`record_ids`.
            It belongs to the dataset: do not close it.

        Raises
        ------
        KeyError
            The dataset has no table of `algorithm`.
        ValueError
            The dataset is closed.
        """
        st = self.current()
        if algorithm not in st.tables:
            raise KeyError(
                f"{self.path}: no {algorithm} table (has {', '.join(self.algorithms)})"
            )
        return st.tables[algorithm]

    def record_ids(self, table: HashIndex, rows: np.ndarray) -> np.ndarray:
        """Record ids of rows found in a table of this dataset.

        Uses the generation the table belongs to, so ids stay right across
        a reload.  For a plain index file the row is the record id.

        Parameters
        ----------
        table : HashIndex
            A table from :meth:`table` (or ``current().tables``).
        rows : array_like of int
            Rows of `table`, -1 for misses (as ``table.find_many``
            returns them).

        Returns
        -------
        numpy.ndarray
            ``int64`` array of the shape of `rows`: the record id of each
            row, -1 where the row is -1.

        Raises
        ------
        ValueError
            The table's generation is closed.
        IndexFormatError
            The table's rowmap points past the records.
        """
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
        self, table: HashIndex, only: Labels = None, exclude: Labels = None
    ) -> Callable[[int], bool] | None:
        """Predicate record id -> wanted, for the generation of `table`.

        Parameters
        ----------
        table : HashIndex
            A table from :meth:`table`: the filter is for its generation.
        only : str or iterable of str, optional
            Wanted records carry at least one of these labels.
        exclude : str or iterable of str, optional
            Wanted records carry none of these labels; the dataset's
            `suppress` labels are always excluded.

        Returns
        -------
        callable or None
            A function of a record id returning True if the record is
            wanted (label bitmap algebra, cached per generation), or None
            when nothing is filtered (no `only`, no `exclude`, no
            `suppress`).  Unknown labels match nothing.
        """
        st: Generation = table._generation
        return st.record_filter(only, exclude)

    def labels(self) -> dict[str, int]:
        """Every label with its number of records.

        Returns
        -------
        dict[str, int]
            Label -> number of records carrying it (``{}`` for a file
            without labels, such as a plain index).

        Raises
        ------
        ValueError
            The dataset is closed.
        """
        st = self._live()
        if st.labels is None:
            return {}
        return {n: st.labels.count(n) for n in st.labels.names()}

    def records_with(self, label: str) -> FrozenBitMap:
        """Record ids carrying `label`.

        Parameters
        ----------
        label : str
            A label, e.g. ``"source:police"``.

        Returns
        -------
        pyroaring.FrozenBitMap
            The ids of the records carrying it.

        Raises
        ------
        KeyError
            No record carries `label` (or the file has no labels).
        ValueError
            The dataset is closed.
        """
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
        """The record with this id, as a :class:`Match`.

        No label filter applies.

        Parameters
        ----------
        record_id : int
            From 0 to ``len(ds) - 1``.

        Returns
        -------
        Match
            The record; its ``algorithm`` field names its first digest in
            md5, sha1, sha256 order.

        Raises
        ------
        IndexError
            `record_id` is out of range.
        IndexFormatError
            The record has no digest.
        ValueError
            The dataset is closed.
        """
        return self._live().record(record_id)

    def lookup_many(
        self,
        digests: Iterable[Digest] | npt.NDArray[np.uint8],
        *,
        only: Labels = None,
        exclude: Labels = None,
    ) -> list[Match | Invalid | None]:
        """Look up many digests: per item a Match, None (miss) or Invalid.

        Parameters
        ----------
        digests : iterable or numpy.ndarray
            An iterable of hex str / raw bytes of any of the three
            algorithms (each looked up as by :meth:`lookup`), or a
            ``(n, width)`` uint8 numpy array of one algorithm (width 16, 20
            or 32), looked up as one batch.
        only, exclude : str or iterable of str, optional
            Label filters, as for :meth:`lookup`.

        Returns
        -------
        list
            One entry per item, in input order: its :class:`Match`, None
            if it is not in the dataset (or filtered out), or an
            :class:`Invalid` saying why it is not a digest.

        Raises
        ------
        TypeError
            A numpy array that is not 2-d uint8.
        ValueError
            An array whose width is no algorithm's, or an array given to a
            closed dataset.  (For an iterable, the ``TypeError`` or
            ``ValueError`` an item's lookup raises, a closed dataset's
            included, becomes that item's :class:`Invalid`.)
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

    # -- lifecycle -----------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """The file's facts: kind, name, generation, sizes, tables, labels.

        Returns
        -------
        dict
            ``path``, ``kind`` (``"dataset"`` or ``"index"``), ``name``,
            ``generation``, ``built``, ``records``, ``file_size``,
            ``tables`` (algorithm -> :meth:`HashIndex.info`), ``labels``
            (as :meth:`labels`), ``pdq`` (None, or ``hashes``, ``chunks``
            and ``bucket_bits`` of the PDQ near index: docs/NEAR.md),
            ``attributes`` (the record attribute names, docs/DATASETS.md),
            ``code_tables`` (name -> rows), ``nsrl_version`` and ``metadata``.

        Raises
        ------
        ValueError
            The dataset is closed.
        """
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
            "pdq": None
            if st.pdq is None
            else {
                "hashes": st.pdq.count,
                "chunks": st.pdq.chunks,
                "bucket_bits": st.pdq.bucket_bits,
            },
            "attributes": [] if st.attributes is None else list(st.attributes.names),
            "code_tables": {n: len(t) for n, t in st.code_tables.items()},
            "nsrl_version": st.nsrl_version,
            "metadata": st.metadata,
        }

    def verify(self) -> dict[str, Any]:
        """Check every checksum, every table's structure, rowmaps and records.

        Reads the whole file (O(file size)).  Also checks that rows and
        records point at each other and that every record has a digest.

        Returns
        -------
        dict
            ``{"path": ..., "records": ..., "ok": True, "tables": [...]}``:
            the number of records and the algorithms of the tables.

        Raises
        ------
        IndexFormatError
            What is wrong, and where; also when the file was modified in
            place since it was opened.
        ValueError
            The dataset is closed.
        """
        st = self._live()
        st.verify()
        return {
            "path": self.path,
            "records": st.count,
            "ok": True,
            "tables": list(st.tables),
        }

    def close(self) -> None:
        """Unmap the file; further use raises ValueError.

        Never raises; closing twice is fine.  Tables still used by a batch
        call in another thread are unmapped when they are freed.
        """
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
    require_signature: PublicKeySpec | None = None,
    preload: bool = False,
) -> Dataset:
    """Open a dataset (or single-table index) file for lookups.

    The same as :meth:`Dataset.open`, which describes the parameters and
    the errors (``IndexFormatError``, ``SignatureError``, ``TypeError``,
    ``ValueError``, ``OSError``).

    Parameters
    ----------
    path : str or os.PathLike
        A dataset file, or an index file of md5, sha1 or sha256 keys.
    suppress : iterable of str, default ()
        Labels whose records never match.
    auto_reload : bool, default False
        Pick up a replaced file by itself (checked every `reload_interval`
        seconds, which must be > 0).
    reload_interval : float, default 1.0
        Seconds between two checks with `auto_reload`.
    require_signature : optional
        A public key that must have signed the file and every replacement.
    preload : bool, default False
        Read the whole file (and every reloaded generation) into memory
        now, so that no lookup waits for the disk.

    Returns
    -------
    Dataset
        The open dataset (a context manager).

    Examples
    --------
    ::

        ds = hashlookup.open_dataset("known.hlds", suppress=["source:nsrl"])
        ds.lookup(digest, only="category:1")   # Match or None
        ds.close()
    """
    return Dataset.open(
        path,
        suppress=suppress,
        auto_reload=auto_reload,
        reload_interval=reload_interval,
        require_signature=require_signature,
        preload=preload,
    )


__all__ = [
    "ALGORITHMS",
    "Dataset",
    "Generation",
    "Invalid",
    "Match",
    "OlderGenerationError",
    "open_dataset",
]
