"""Generation: one opened version of a dataset (or plain index) file.

Everything read from one mapping of the file: its key tables, records,
rowmaps, labels and facts, and the native TableSet that answers single
lookups from them.  A Dataset hands out its current generation
(Dataset.current()); a reload makes a new one and swaps it in whole, so
code that holds a generation keeps answering from the file it was opened
on (its mapping goes when the last holder lets go).
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable, Mapping

from hashlookup import algorithms
from hashlookup._core import RecordTable
from hashlookup._lookup import EMPTY_ATTRIBUTES, TableSet
from hashlookup.errors import HashLookupError, IndexFormatError
from hashlookup.store import format as _format
from hashlookup.store.index import (
    HashIndex,
    Identity,
    close_mapping,
    file_identity,
    map_file,
)
from hashlookup.store.labels import LabelStore

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NamedTuple

    import numpy as np

    from hashlookup._types import Digest, Labels
    from hashlookup.near.index import NearIndex
    from hashlookup.store.attributes import AttributeStore
    from hashlookup.store.code_tables import CodeTable
else:
    from hashlookup._lazy import NamedTuple
    from hashlookup._lazy import numpy as np

ALGORITHMS = algorithms.NAMES
_ALG_INDEX = {a: i for i, a in enumerate(ALGORITHMS)}
_ATTRIBUTE_KINDS = {_format.KIND_ATTR_STRINGS, _format.KIND_ATTR_REFS}


class OlderGenerationError(HashLookupError):
    """A replacement file holds an older generation than the one served.

    Raised by ``Dataset.reload`` and ``Dataset.check_replacement`` with
    ``allow_older=False``: a generation number that goes backwards is more
    often a stale copy put back by mistake than a wanted rollback.
    """


class Match(NamedTuple):
    """A digest found in a dataset: the whole record of the file.

    A named tuple, returned by ``Dataset.lookup``, ``Dataset.lookup_many``
    and ``Dataset.record`` (and their ``Generation`` counterparts).

    Attributes
    ----------
    record_id : int
        The record's id in its generation (the row, for a plain index
        file).
    algorithm : str
        Algorithm of the digest that was looked up (for
        ``Dataset.record``: the record's first digest in md5, sha1, sha256
        order).
    md5, sha1, sha256 : str or None
        The record's digests in lowercase hex, None where it has none (a
        plain index file knows only its own algorithm's).
    size : int or None
        The file's size in bytes, None if unknown.
    labels : tuple of str
        The record's labels, sorted, e.g. ``("category:1",
        "source:police-nl")``; empty without labels.
    generation : int
        Version number of the dataset generation that answered.
    built : str
        Build time of that generation (ISO 8601, UTC).
    attributes : Mapping[str, str]
        The record's attributes (docs/DATASETS.md), name -> value, e.g.
        ``{"FileName": "setup.exe", "CRC32": "6B0C6F4E"}``: a read-only
        mapping, empty when it has none.
    """

    record_id: int
    algorithm: str
    md5: str | None
    sha1: str | None
    sha256: str | None
    size: int | None
    labels: tuple[str, ...]
    generation: int
    built: str
    attributes: Mapping[str, str] = EMPTY_ATTRIBUTES


class Generation:
    """One opened generation of a dataset or plain index file.

    Made by :class:`hashlookup.Dataset` (``Dataset.current()``); immutable
    until closed.  A plain index file is a generation of one table whose
    rows are its records (no record table, no labels, no sizes).

    Parameters
    ----------
    path : str
        The file to map.
    signature_key : optional
        A loaded public key (``hashlookup.store.signature.load_public_key``):
        the file must carry a valid signature by it, checked before anything
        else is read.
    suppress : tuple of str, default ()
        Labels whose records never match (the dataset's).
    source : str, optional
        The file to map instead of `path`, which then only names it (in
        messages, and for the in-place change check of ``verify``): e.g.
        ``/proc/self/fd/N`` of a descriptor kept open on a file that `path`
        no longer names.

    Attributes
    ----------
    path : str
        The file.
    name : str
        The dataset's name (metadata, else the file's stem).
    generation : int
        The version number stored in the file (0 if none).
    built : str
        Build time of the file, ISO 8601 UTC.
    count : int
        Number of records (of keys, for a plain index).
    tables : dict[str, HashIndex]
        Algorithm -> key table, in the file's order.
    record_table : RecordTable or None
        A hit's digests and size in one C call (None for a plain index).
    labels : LabelStore or None
        The label bitmaps (None without labels).
    attributes : AttributeStore or None
        The record attributes (None without any).
    code_tables : dict[str, CodeTable]
        Tables keyed by an attribute's values (NSRL's products, operating
        systems, manufacturers), by name; empty without any.
    nsrl_version : str or None
        The RDS version of the NSRL sources the dataset was built from.
    lookups : TableSet
        Single-digest lookups of this generation, answered in C.
    mapping : mmap.mmap or None
        The file's mapping (None once closed).
    header : hashlookup.store.format.Header
        The file's header.
    layout : hashlookup.store.format.DatasetLayout or None
        Where the dataset sections are (None for a plain index).
    metadata : dict
        The file's JSON metadata.
    identity : tuple or None
        (device, inode, mtime, size) of the mapped file.
    key_spans : dict[str, tuple[int, int, int]]
        Algorithm -> (offset, width, count) of its keys in the mapping.
    records_offset : int
        Where the record table is in the mapping (0 for a plain index).
    """

    def __init__(
        self,
        path: str,
        signature_key: Any = None,
        suppress: tuple[str, ...] = (),
        source: str | None = None,
    ) -> None:
        try:
            mm, header, st = map_file(path if source is None else source)
        except IndexFormatError as e:
            if source is None:
                raise
            # name the file by its path, not by /proc/self/fd/N
            raise type(e)(str(e).replace(source, path)) from None
        self._owns_mapping = True
        self.mapping: mmap.mmap | None = mm
        self.identity: Identity | None = file_identity(st)
        try:
            if signature_key is not None:
                # Imported here: files opened without a key need no signing
                # code (start-up time of the CLI).
                from hashlookup.store.signature import check_signature

                # Before anything is read from the file (docs/SIGNING.md).
                check_signature(mm, header, path, signature_key)
            self._load(path, mm, header, suppress)
        except BaseException:
            self.close()
            raise

    @classmethod
    def over_mapping(
        cls, path: str, mm: mmap.mmap, header: _format.Header
    ) -> Generation:
        """Make a generation over a mapping that the caller owns.

        The caller closes the mapping after closing the generation; used,
        for example, to verify a file about to be signed.  No signature is
        checked and no label is suppressed.

        Parameters
        ----------
        path : str
            The mapped file, for error messages.
        mm : mmap.mmap
            Its mapping (``hashlookup.store.index.map_file``).
        header : hashlookup.store.format.Header
            Its validated header.

        Returns
        -------
        Generation
            An open generation that does not own `mm`.

        Raises
        ------
        IndexFormatError
            The file's sections are missing or inconsistent.
        """
        self = cls.__new__(cls)
        self._owns_mapping = False
        self.mapping = mm
        self.identity = None
        try:
            self._load(path, mm, header, ())
        except BaseException:
            self.close()
            raise
        return self

    def _load(
        self,
        path: str,
        mm: mmap.mmap,
        header: _format.Header,
        suppress: tuple[str, ...],
    ) -> None:
        self.path = path
        self.header = header
        groups = _format.table_groups(header)
        if not groups:
            raise IndexFormatError(f"{path}: no keys section")
        layouts = {g: _format.table_layout(header, path, g) for g in groups}
        self.layout = _format.dataset_layout(header, layouts, path)
        pdq = _format.pdq_layout(header, self.layout, path)
        self._pdq: NearIndex | None = None
        if pdq is not None:
            from hashlookup.near.index import NearIndex  # only files with PDQ

            self._pdq = NearIndex(
                mm,
                pdq.hashes.offset,
                pdq.records.offset,
                pdq.index.offset,
                pdq.count,
                pdq.chunks,
                pdq.bucket_bits,
                pdq.index.length,
                path,
            )
        self.metadata = _format.read_metadata(mm, header, path)
        self.tables: dict[str, HashIndex] = {}
        # Sections viewed as numpy arrays only when asked for (rowmaps,
        # records): opening needs no numpy (see hashlookup._lazy).
        self._rowmap_spans: dict[str, tuple[int, int]] = {}
        self._rowmaps: dict[str, np.ndarray] | None = None
        self._records: np.ndarray | None = None
        for g, lay in layouts.items():
            if lay.algorithm not in ALGORITHMS:
                raise IndexFormatError(
                    f"{path}: a dataset holds md5, sha1 and "
                    f"sha256 tables, not {lay.algorithm}"
                )
            if lay.algorithm in self.tables:
                raise IndexFormatError(f"{path}: two {lay.algorithm} tables")
            table = HashIndex.over_mapping(mm, header, path, g, self.identity)
            table._generation = self  # for Dataset.record_ids / record_filter
            self.tables[lay.algorithm] = table
            if self.layout is not None:
                self._rowmap_spans[lay.algorithm] = (
                    self.layout.rowmaps[g].offset,
                    lay.count,
                )
        # Where each table's keys are in the mapping: (offset, width, count).
        self.key_spans = {
            a: (t._layout.keys.offset, t.width, len(t)) for a, t in self.tables.items()
        }
        self.record_table: RecordTable | None = None
        self.labels: LabelStore | None = None
        self.attributes: AttributeStore | None = None
        self.code_tables: dict[str, CodeTable] = {}
        if self.layout is None:  # a plain index: one record per key
            self.count = len(next(iter(self.tables.values())))
            self.records_offset = 0
        else:
            rec = self.layout.records
            self.records_offset = rec.offset
            self.count = self.layout.count
            groups_of = {lay.algorithm: g for g, lay in layouts.items()}
            self.record_table = RecordTable(
                mm,
                rec.offset,
                self.count,
                [self.key_spans.get(a) for a in ALGORITHMS],
                [
                    self.layout.rowmaps[groups_of[a]].offset if a in groups_of else None
                    for a in ALGORITHMS
                ],
                path,
            )
            if self.layout.label_index is not None:
                assert self.layout.label_bitmaps is not None
                index = _format.read_json_section(
                    mm, self.layout.label_index, path, "label index"
                )
                b = self.layout.label_bitmaps
                self.labels = LabelStore(
                    mm, b.offset, b.length, index, self.count, path
                )
            # (their modules imported only for files with such sections)
            kinds = {s.kind for s in header.sections}
            if kinds & _ATTRIBUTE_KINDS:
                from hashlookup.store.attributes import open_store

                self.attributes = open_store(mm, header, self.count, path)
            if _format.KIND_CODE_TABLE in kinds:
                from hashlookup.store.code_tables import open_tables

                self.code_tables = open_tables(mm, header, path)
        ds = self.metadata.get("dataset", {}) if isinstance(self.metadata, dict) else {}
        nsrl = ds.get("nsrl-version") if isinstance(ds, dict) else None
        self.nsrl_version = nsrl if isinstance(nsrl, str) else None
        self.name = str(ds.get("name") or os.path.splitext(os.path.basename(path))[0])
        gen = ds.get("generation", 0)
        self.generation = gen if isinstance(gen, int) else 0
        self.built = _format.iso_utc(header.created_ns)
        md5, sha1, sha256 = (self.tables.get(a) for a in ALGORITHMS)
        self.lookups = TableSet(
            (md5, sha1, sha256),
            self.record_table,
            self.labels,
            tuple(suppress),
            self.generation,
            self.built,
            Match,
            self.attributes,
        )

    # -- facts ---------------------------------------------------------------

    @property
    def is_dataset(self) -> bool:
        """False for a plain index file (no records)."""
        return self.layout is not None

    @property
    def algorithms(self) -> tuple[str, ...]:
        """The algorithms of the key tables, in md5, sha1, sha256 order."""
        return tuple(a for a in ALGORITHMS if a in self.tables)

    @property
    def pdq(self) -> NearIndex | None:
        """The PDQ hashes and their search index, None without them."""
        return self._pdq

    @property
    def rowmaps(self) -> dict[str, np.ndarray]:
        """Algorithm -> uint32 record id of each row of its key table.

        Read-only numpy arrays over the mapping; empty for a plain index,
        and once closed.
        """
        if self._rowmaps is None:
            mm = self.mapping
            if mm is None:
                return {}
            self._rowmaps = {
                a: np.frombuffer(mm, dtype="<u4", count=count, offset=offset)
                for a, (offset, count) in self._rowmap_spans.items()
            }
        return self._rowmaps

    @property
    def records(self) -> np.ndarray | None:
        """The record table as a numpy array, None for a plain index.

        A read-only array of ``format.RECORD_DTYPE`` over the mapping: per
        record the row of each digest (``NO_ROW`` where none) and the size.
        None also once closed.
        """
        mm = self.mapping
        if self._records is None and self.layout is not None and mm is not None:
            self._records = np.frombuffer(
                mm,
                dtype=_format.RECORD_DTYPE,
                count=self.count,
                offset=self.records_offset,
            )
        return self._records

    # -- hits ----------------------------------------------------------------

    def record_id(self, algorithm: str, row: int) -> int:
        """The record id of a row of one key table.

        Parameters
        ----------
        algorithm : str
            ``"md5"``, ``"sha1"`` or ``"sha256"``: a table of this
            generation.
        row : int
            A row of that table (as ``find`` or ``find_many`` return it).

        Returns
        -------
        int
            The id of the record the row belongs to (the row itself for a
            plain index).
        """
        if self.layout is None:
            return row
        return int(self.rowmaps[algorithm][row])

    def lookup(
        self, digest: Digest, only: Labels = None, exclude: Labels = None
    ) -> Match | None:
        """The Match of a digest in this generation, or None.

        As ``Dataset.lookup`` (one call into C), without its auto-reload.

        Parameters
        ----------
        digest : str or bytes-like
            Hex str (any case) or raw bytes of an md5, sha1 or sha256.
        only, exclude : str or iterable of str, optional
            Label filters as for ``Dataset.lookup`` (the dataset's
            suppressed labels always apply).

        Returns
        -------
        Match or None
            The digest's record, or None if it is absent or filtered out.

        Raises
        ------
        TypeError
            `digest` is not a str or bytes-like object.
        ValueError
            `digest` has the length of no algorithm or a non-hex
            character, or the generation is closed.
        """
        return self.lookups.lookup(digest, only, exclude)

    def match(
        self, algorithm: str, row: int, only: Labels = None, exclude: Labels = None
    ) -> Match | None:
        """The Match of a row of one key table, or None if filtered out.

        The row is one found by ``tables[algorithm].find`` or
        ``find_many``; None if the label filters drop its record.

        Parameters
        ----------
        algorithm : str
            "md5", "sha1" or "sha256": a table of this generation.
        row : int
            A row of that table.
        only, exclude : str or iterable of str, optional
            Label filters as for ``Dataset.lookup`` (the dataset's suppressed
            labels always apply).

        Returns
        -------
        Match or None
            The row's record, or None if the filters drop it.

        Raises
        ------
        KeyError
            This generation has no table of `algorithm`.
        ValueError
            The generation is closed.
        IndexFormatError
            The row's record cannot be read (a rowmap pointing past the
            records, a label bitmap that cannot be read).
        """
        found: Match | None = self.lookups.hit(
            _ALG_INDEX[algorithm], row, only, exclude
        )
        return found

    def record(self, record_id: int) -> Match:
        """The record with this id (algorithm field: its first known digest).

        Parameters
        ----------
        record_id : int
            From 0 to ``count - 1``.

        Returns
        -------
        Match
            The record, with no label filter applied.

        Raises
        ------
        IndexError
            `record_id` is out of range.
        IndexFormatError
            The record has neither a digest nor a PDQ hash.
        ValueError
            The generation is closed.
        """
        if not 0 <= record_id < self.count:
            raise IndexError(
                f"record id {record_id} out of range (0..{self.count - 1})"
            )
        alg = next(iter(self.tables))
        records = self.records
        if records is not None:
            r = records[record_id]
            present = [
                a
                for a in ALGORITHMS
                if int(r[f"{a}_row"]) != _format.NO_ROW and a in self.tables
            ]
            if present:
                alg = present[0]
            elif not self._has_pdq(record_id):
                raise IndexFormatError(f"{self.path}: record {record_id} has no digest")
        elif self.mapping is None:
            raise ValueError("I/O operation on closed dataset")
        return self.lookups.match(_ALG_INDEX[alg], record_id)

    def _has_pdq(self, record_id: int) -> bool:
        """Whether the record has a PDQ row (record ids are in order)."""
        if self._pdq is None:
            return False
        ids = self._pdq.record_ids
        i = int(np.searchsorted(ids, record_id))
        return i < len(ids) and int(ids[i]) == record_id

    def record_filter(
        self, only: Labels = None, exclude: Labels = None
    ) -> Callable[[int], bool] | None:
        """Predicate record id -> wanted, or None when nothing is filtered.

        Parameters
        ----------
        only : str or iterable of str, optional
            Wanted records carry at least one of these labels.
        exclude : str or iterable of str, optional
            Wanted records carry none of these; the dataset's suppressed
            labels are always excluded.

        Returns
        -------
        callable or None
            A function of a record id returning True if the record is
            wanted (label bitmap algebra, cached), or None when there is no
            `only`, no `exclude` and no suppressed label.  Unknown labels
            match nothing.
        """
        return self.lookups.record_filter(only, exclude)

    # -- checks and lifecycle ------------------------------------------------

    def verify(self) -> None:
        """Check every checksum, every table's structure, rowmaps and records.

        Reads the whole file once; also checks that rows and records point
        at each other, that every record has a digest and that every label
        bitmap can be read.

        Raises
        ------
        IndexFormatError
            What is wrong, and where (also: the file was modified in place
            since it was mapped, when its identity is known).
        ValueError
            The generation is closed.
        """
        for i, table in enumerate(self.tables.values()):
            table.verify(checksums=i == 0)  # the file's checksums once, every table
        records = self.records
        if records is None:
            return
        rowmaps = self.rowmaps
        for a, rm in rowmaps.items():
            if len(rm) and int(rm.max()) >= self.count:
                raise IndexFormatError(
                    f"{self.path}: rowmap of {a} points past the {self.count} records"
                )
        anything = np.zeros(self.count, dtype=bool)
        for a in ALGORITHMS:
            col = records[f"{a}_row"]
            present = col != _format.NO_ROW
            anything |= present
            t = self.tables.get(a)
            n = len(t) if t is not None else 0
            if np.any(col[present] >= n):
                raise IndexFormatError(
                    f"{self.path}: a record points past the {a} table"
                )
            if a in rowmaps:
                self._verify_links(a, col, present, rowmaps[a])
        if self._pdq is not None:  # a record of a PDQ list has only that
            ids = self._pdq.record_ids
            anything[ids[ids < self.count]] = True
        if not anything.all():
            raise IndexFormatError(
                f"{self.path}: record {int(np.argmin(anything))} has no digest"
            )
        if self.labels is not None:
            for name in self.labels.names():
                self.labels.bitmap(name)
        if self._pdq is not None:
            self._pdq.verify(self.count)
        if self.attributes is not None:
            self.attributes.verify()
        for code_table in self.code_tables.values():
            code_table.verify()

    def _verify_links(
        self, alg: str, col: np.ndarray, present: np.ndarray, rowmap: np.ndarray
    ) -> None:
        """Rows and records agree: every row of the alg table maps to a
        record that has an alg digest, and the row a record shows maps back
        to that record (a merged record may own several rows of one table;
        it shows the first).  Without this a lookup could answer with a
        record whose digests lead to another file."""
        bad = np.flatnonzero(col[rowmap] == _format.NO_ROW)
        if bad.size:
            r = int(bad[0])
            raise IndexFormatError(
                f"{self.path}: {alg} row {r} maps to record "
                f"{int(rowmap[r])}, which has no {alg} digest"
            )
        ids = np.flatnonzero(present)
        bad = np.flatnonzero(rowmap[col[present]] != ids)
        if bad.size:
            rid = int(ids[bad[0]])
            raise IndexFormatError(
                f"{self.path}: record {rid} points at {alg} row "
                f"{int(col[rid])}, which maps to another record"
            )

    def close(self) -> None:
        """Unmap the file; lookups on this generation raise ValueError from now on.

        Never raises; closing twice is fine.  Tables still used by a batch
        in another thread are left to the garbage collector, and a mapping
        made by the caller (:meth:`over_mapping`) is left to the caller.
        """
        for t in getattr(self, "tables", {}).values():
            try:
                t.close()
            except BufferError:
                pass  # a batch in another thread still uses it; GC unmaps later
        self._rowmaps = {}
        self._records = None
        pdq = getattr(self, "_pdq", None)
        if pdq is not None:
            try:
                pdq.close()
            except BufferError:
                pass  # a search in another thread still uses it; GC unmaps later
        record_table = getattr(self, "record_table", None)
        if record_table is not None:
            record_table._detach()  # before the unmap: it holds a buffer export
        self.key_spans = {}
        mm, self.mapping = self.mapping, None
        if mm is not None and self._owns_mapping:
            close_mapping(mm)


def checked_replacement(
    path: str,
    current: Generation,
    signature_key: Any = None,
    suppress: tuple[str, ...] = (),
    verify: bool = False,
    allow_older: bool = True,
    source: str | None = None,
) -> Generation:
    """Open the file at `path` as the successor of `current`, checked.

    Parameters
    ----------
    path : str
        The replacement file.
    current : Generation
        The generation it replaces (its number is compared).
    signature_key, suppress
        As for :class:`Generation`.
    verify : bool, default False
        Check the body first (:meth:`Generation.verify`, O(file size)).
    allow_older : bool, default True
        Accept a lower generation number than `current`'s.
    source : str, optional
        The file to map instead of `path` (as for :class:`Generation`).

    Returns
    -------
    Generation
        The new generation, open.

    Raises
    ------
    IndexFormatError
        The file is invalid, or (with `verify`) its body is damaged.
    OlderGenerationError
        Without `allow_older`: its generation number is lower.
    OSError
        The file cannot be opened.
    """
    new = Generation(path, signature_key, suppress, source)
    try:
        # the generation first: a stale file is refused without reading it
        if not allow_older and new.generation < current.generation:
            raise OlderGenerationError(
                f"{path}: generation {new.generation} is older than "
                f"generation {current.generation}, which is served"
            )
        if verify:
            try:
                new.verify()
            except IndexFormatError as e:  # say which generation was refused
                raise type(e)(f"{e} (generation {new.generation})") from e
    except BaseException:
        new.close()
        raise
    return new


def file_versions(
    path: str, s: os.stat_result, signature_key: Any = None
) -> tuple[Any, ...]:
    """What tells a version of a dataset apart, for remembering refusals:
    the identity of the data file (its stat `s`) and, with a signature key,
    of its signature file."""
    if signature_key is None:
        return (file_identity(s),)
    from hashlookup.store.signature import signature_path

    try:
        sig = file_identity(os.stat(signature_path(path)))
    except OSError:
        sig = None
    return (file_identity(s), sig)
