"""Record attributes: named strings a record carries besides its digests,
size and labels (a file name, a CRC32, NSRL product / OS / special codes,
CSV columns the builder named).  Specified in docs/FORMAT.md.

Two optional sections hold them, both absent when a dataset has no
attributes (so such a dataset costs nothing and opens, looks up and
verifies exactly as before):

- the *string table* (``KIND_ATTR_STRINGS``): every distinct string once,
  the attribute names first, then the values;
- the *references* (``KIND_ATTR_REFS``): per record, one string id per
  attribute name (0: the record has no value for that name).

Files are untrusted: opening checks the sections' sizes and the names
(O(number of names)); a value's bounds and UTF-8 are checked when it is
read, and ``verify`` checks every value and reference.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence

from hashlookup._lookup import EMPTY_ATTRIBUTES, Attributes
from hashlookup.errors import IndexFormatError
from hashlookup.store import format as _format

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: the attributes of a record without any (shared, read-only)
EMPTY: Mapping[str, str] = EMPTY_ATTRIBUTES

#: at most this many attribute names per dataset
MAX_NAMES = 255
#: longest attribute name, in UTF-8 bytes
MAX_NAME = 200
_OFFSET = struct.Struct("<Q")
_SPAN = struct.Struct("<2Q")  # a string's start and end offsets
#: decoded values kept per store (shared values such as product codes are
#: read again and again; past this the cache starts over)
CACHE_STRINGS = 65536
_CODES = {1: "B", 2: "H", 4: "I"}


def ref_width(strings: int) -> int:
    """Bytes per reference for a string table of `strings` entries.

    Parameters
    ----------
    strings : int
        Number of strings (names and values) in the table.

    Returns
    -------
    int
        1, 2 or 4: the narrowest unsigned width that holds every string id.
    """
    return 1 if strings <= 0xFF else 2 if strings <= 0xFFFF else 4


def encode(
    names: Sequence[str], values: Sequence[Sequence[str | None]]
) -> tuple[bytes, bytes, int, int]:
    """The two sections' bodies for per-record values of named attributes.

    Parameters
    ----------
    names : sequence of str
        The attribute names, in the order they are shown.
    values : sequence of sequences of str or None
        Per name, one value per record (None or "": the record has none);
        all of one length (the record count).

    Returns
    -------
    strings : bytes
        The string table section body.
    refs : bytes
        The references section body.
    count : int
        Number of strings in the table (names and distinct values).
    width : int
        Bytes per reference (1, 2 or 4).

    Raises
    ------
    ValueError
        Too many, empty, too long or repeated names, or value columns of
        different lengths.
    """
    import numpy as np

    check_names(names)
    if len(values) != len(names) or not names:
        raise ValueError("one value column per attribute name, at least one")
    n = len(values[0])
    if any(len(v) != n for v in values):
        raise ValueError("attribute value columns differ in length")
    table: dict[str, int] = {}
    strings = list(names)
    ids = np.zeros((n, len(names)), dtype=np.int64)
    for k, col in enumerate(values):
        out = ids[:, k]
        for i, v in enumerate(col):
            if v:
                sid = table.get(v)
                if sid is None:
                    sid = table[v] = len(strings)
                    strings.append(v)
                out[i] = sid
    width = ref_width(len(strings))
    blobs = [s.encode("utf-8", "surrogatepass") for s in strings]
    offsets = np.zeros(len(blobs) + 1, dtype="<u8")
    np.cumsum([len(b) for b in blobs], out=offsets[1:])
    body = offsets.tobytes() + b"".join(blobs)
    # record-major: a record's references are adjacent (one read per lookup)
    refs = ids.astype(f"<u{width}").tobytes()
    return body, refs, len(strings), width


def check_names(names: Sequence[str]) -> None:
    """Refuse attribute names a dataset cannot hold.

    Parameters
    ----------
    names : sequence of str
        Candidate attribute names.

    Raises
    ------
    ValueError
        More than MAX_NAMES names, an empty, over-long or repeated name, or
        one with a control character.
    """
    if len(names) > MAX_NAMES:
        raise ValueError(f"{len(names)} attribute names; at most {MAX_NAMES}")
    if len(set(names)) != len(names):
        raise ValueError(f"repeated attribute names in {list(names)}")
    for name in names:
        if (
            not isinstance(name, str)
            or not name
            or len(name.encode("utf-8", "surrogatepass")) > MAX_NAME
            or any(ord(c) < 32 or ord(c) == 127 for c in name)
        ):
            raise ValueError(
                f"attribute name {name!r}: expected 1 to {MAX_NAME} bytes of "
                f"printable text"
            )


def sections(header: _format.Header, name: str) -> tuple[Any, Any] | None:
    """The (strings, refs) sections of a file, or None if it has none.

    Parameters
    ----------
    header : hashlookup.store.format.Header
        The file's validated header.
    name : str
        The file, for error messages.

    Returns
    -------
    tuple of Section, or None
        Both sections, or None when the file has neither.

    Raises
    ------
    IndexFormatError
        Only one of the two, or more than one of either.
    """
    s = _format.find_sections(header, _format.KIND_ATTR_STRINGS)
    r = _format.find_sections(header, _format.KIND_ATTR_REFS)
    if not s and not r:
        return None
    if len(s) != 1 or len(r) != 1:
        raise IndexFormatError(
            f"{name}: attribute sections must come as one strings and one refs "
            f"section (found {len(s)} and {len(r)})"
        )
    return s[0], r[0]


class AttributeStore:
    """Read side: the attributes of the records of one mapped dataset.

    Parameters
    ----------
    buf : mmap.mmap or bytes-like
        The mapping the sections are in.
    strings, refs : hashlookup.store.format.Section
        The string table and references sections.
    records : int
        The dataset's record count.
    name : str
        The file, for error messages.

    Raises
    ------
    IndexFormatError
        The sections' parameters, sizes or names are wrong.

    Attributes
    ----------
    names : tuple of str
        The attribute names, in the file's order.
    """

    def __init__(
        self, buf: Any, strings: Any, refs: Any, records: int, name: str
    ) -> None:
        self._buf = buf
        self._path = name
        self._records = records
        count, nnames, width = refs.params
        nstr = strings.params[0]
        if count != records:
            raise self._fail(
                f"attribute refs: {count} records, the dataset has {records}"
            )
        if not 1 <= nnames <= MAX_NAMES or nnames > nstr:
            raise self._fail(
                f"attribute refs: {nnames} names (1..{MAX_NAMES}, at most {nstr})"
            )
        if width != ref_width(nstr):
            raise self._fail(f"attribute refs: width {width} for {nstr} strings")
        if refs.length != count * nnames * width:
            raise self._fail(
                f"attribute refs: length {refs.length} is not "
                f"{count} x {nnames} x {width}"
            )
        table = 8 * (nstr + 1)
        if strings.length < table:
            raise self._fail(
                f"attribute strings: {nstr} offsets do not fit in "
                f"{strings.length} bytes"
            )
        self._strings = strings.offset
        self._blob = strings.offset + table
        self._blob_len = strings.length - table
        self._nstr = nstr
        if self._offset(0) != 0 or self._offset(nstr) != self._blob_len:
            raise self._fail("attribute strings: offsets do not span the text")
        self._refs = refs.offset
        self._row = struct.Struct(f"<{nnames}{_CODES[width]}")
        self._cache: dict[int, str] = {}
        self.names = tuple(self._string(i) for i in range(nnames))
        try:
            check_names(self.names)
        except ValueError as e:
            raise self._fail(f"attribute strings: {e}") from None

    def _fail(self, msg: str) -> IndexFormatError:
        return IndexFormatError(f"{self._path}: {msg}")

    def _offset(self, i: int) -> int:
        return int(_OFFSET.unpack_from(self._buf, self._strings + 8 * i)[0])

    def _string(self, i: int) -> str:
        lo, hi = _SPAN.unpack_from(self._buf, self._strings + 8 * i)
        if not 0 <= lo <= hi <= self._blob_len:
            raise self._fail(f"attribute strings: string {i} out of bounds")
        try:
            return str(self._buf[self._blob + lo : self._blob + hi], "utf-8")
        except UnicodeDecodeError:
            raise self._fail(f"attribute strings: string {i} is not UTF-8") from None

    def of(self, record_id: int) -> Mapping[str, str]:
        """The attributes of one record.

        Parameters
        ----------
        record_id : int
            A record id of the dataset (in range: the caller checked it).

        Returns
        -------
        Mapping[str, str]
            Name -> value, read-only, in the names' order; empty when the
            record has none.

        Raises
        ------
        IndexFormatError
            A reference or string of the record is damaged.
        """
        out = self.values(record_id)
        return Attributes(out) if out else EMPTY

    def values(self, record_id: int) -> dict[str, str]:
        """The attributes of one record as a new plain dict (what `of`
        wraps; for callers that render them).

        Parameters
        ----------
        record_id : int
            A record id of the dataset (in range: the caller checked it).

        Returns
        -------
        dict[str, str]
            Name -> value, in the names' order.

        Raises
        ------
        IndexFormatError
            A reference or string of the record is damaged.
        """
        refs = self._row.unpack_from(self._buf, self._refs + record_id * self._row.size)
        out = {}
        cache = self._cache
        for name, sid in zip(self.names, refs, strict=True):
            if sid:
                text = cache.get(sid)
                if text is None:
                    if not len(self.names) <= sid < self._nstr:
                        raise self._fail(
                            f"attribute refs: record {record_id} refers to string "
                            f"{sid} (values are {len(self.names)}..{self._nstr - 1})"
                        )
                    text = self._string(sid)
                    if len(cache) >= CACHE_STRINGS:
                        cache.clear()
                    cache[sid] = text
                out[name] = text
        return out

    def verify(self) -> None:
        """Check every string (bounds, UTF-8) and every reference.

        Raises
        ------
        IndexFormatError
            What is wrong and where.
        """
        import numpy as np

        off = np.frombuffer(self._buf, "<u8", self._nstr + 1, self._strings)
        bad = np.flatnonzero(off[1:] < off[:-1])
        if bad.size:
            raise self._fail(f"attribute strings: string {int(bad[0])} out of bounds")
        for i in range(self._nstr):
            self._string(i)
        width = self._row.size // len(self.names)
        refs = np.frombuffer(
            self._buf, f"<u{width}", len(self.names) * self._records, self._refs
        )
        wrong = np.flatnonzero(
            (refs != 0) & ((refs < len(self.names)) | (refs >= self._nstr))
        )
        if wrong.size:
            k = int(wrong[0])
            raise self._fail(
                f"attribute refs: record {k // len(self.names)} refers to string "
                f"{int(refs[k])} (values are {len(self.names)}..{self._nstr - 1})"
            )

    def columns(self, start: int, stop: int) -> dict[str, list[str | None]]:
        """Every attribute's values of records start..stop-1.

        Parameters
        ----------
        start, stop : int
            The record id range (within the records).

        Returns
        -------
        dict[str, list of str or None]
            Name -> one value per record (None: absent).

        Raises
        ------
        IndexFormatError
            A reference or string in the range is damaged.
        """
        import numpy as np

        nn = len(self.names)
        width = self._row.size // nn
        refs = np.frombuffer(
            self._buf,
            f"<u{width}",
            (stop - start) * nn,
            self._refs + start * self._row.size,
        ).reshape(-1, nn)
        out = {}
        for k, name in enumerate(self.names):
            ids, inverse = np.unique(refs[:, k], return_inverse=True)
            texts: list[str | None] = []
            for sid in ids.tolist():
                if sid and not nn <= sid < self._nstr:
                    raise self._fail(
                        f"attribute refs: a record refers to string {sid} "
                        f"(values are {nn}..{self._nstr - 1})"
                    )
                texts.append(self._string(sid) if sid else None)
            column = np.empty(len(texts), dtype=object)
            column[:] = texts
            out[name] = column[inverse.reshape(-1)].tolist()
        return out


def open_store(
    buf: Any, header: _format.Header, records: int, name: str
) -> AttributeStore | None:
    """The AttributeStore of a mapped dataset, None when it has no attributes.

    Parameters
    ----------
    buf : mmap.mmap or bytes-like
        The file's mapping.
    header : hashlookup.store.format.Header
        Its validated header.
    records : int
        Its record count.
    name : str
        The file, for error messages.

    Returns
    -------
    AttributeStore or None
        The attributes, or None without attribute sections.

    Raises
    ------
    IndexFormatError
        The sections are incomplete or wrong.
    """
    found = sections(header, name)
    if found is None:
        return None
    return AttributeStore(buf, found[0], found[1], records, name)


def attributes_of(dataset: Any, record_ids: Sequence[int]) -> list[Mapping[str, str]]:
    """The attributes of each record id of an open dataset (command output).

    Parameters
    ----------
    dataset : hashlookup.Dataset
        An open dataset (its current generation is read).
    record_ids : sequence of int
        Record ids; -1 (no record) gives an empty mapping.

    Returns
    -------
    list of Mapping[str, str]
        One mapping per id (repeated ids read once).

    Raises
    ------
    IndexFormatError
        A reference or string of one of the records is damaged.
    """
    store: AttributeStore | None = dataset.current().attributes
    if store is None:
        return [EMPTY] * len(record_ids)
    seen: dict[int, Mapping[str, str]] = {}
    out = []
    for rid in record_ids:
        got = seen.get(rid)
        if got is None:
            got = seen[rid] = store.of(rid) if rid >= 0 else EMPTY
        out.append(got)
    return out
