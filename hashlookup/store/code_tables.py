"""Code tables: small per-dataset tables keyed by the value of a record
attribute, such as NSRL's products (keyed by ``ProductCode``), operating
systems (``OpSystemCode``) and manufacturers (``MfgCode``).  Specified in
docs/FORMAT.md (section kind 19).

A record keeps only the code (one attribute reference); the table row it
names is stored once per dataset, so the service can expand a code into
the row's object (as CIRCL's hashlookup-server does) without a per-record
copy.  One section per table, absent when a dataset has none: a dataset
without code tables is byte for byte what it was before.

Files are untrusted: opening checks the section's sizes and column names
(O(columns)); a row's strings and references are checked when read, and
``verify`` checks all of them and the keys' order.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Iterator, Mapping, Sequence

from hashlookup._lookup import Attributes
from hashlookup.errors import IndexFormatError
from hashlookup.store import format as _format
from hashlookup.store.attributes import MAX_NAMES, check_names, ref_width

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: at most this many rows per table (row numbers are u32)
MAX_ROWS = 2**32 - 2
#: rows kept decoded per table (a service answers the same few codes again
#: and again; past this the cache starts over)
CACHE_ROWS = 4096
_OFFSET = struct.Struct("<Q")
_CODES = {1: "B", 2: "H", 4: "I"}


def encode(
    columns: Sequence[str], rows: Mapping[str, Mapping[str, str]]
) -> _format.SectionData:
    """The section of one code table.

    Parameters
    ----------
    columns : sequence of str
        The column names; the first is the key (the table's name, the
        attribute whose values are its codes).
    rows : mapping of str to mapping of str to str
        Code -> row (column -> value; columns it lacks or "" values are
        empty).  A row's own key column is taken from the code.

    Returns
    -------
    hashlookup.store.format.SectionData
        The section (kind 19, not required), rows sorted by the codes' UTF-8
        bytes.

    Raises
    ------
    ValueError
        Bad column names, an empty code or too many rows.
    """
    check_names(list(columns))
    if not columns:
        raise ValueError("a code table needs at least its key column")
    if len(rows) > MAX_ROWS:
        raise ValueError(f"{len(rows)} rows in code table {columns[0]!r}")
    strings = list(columns)
    ids: dict[str, int] = {}
    codes = sorted(rows, key=lambda c: c.encode("utf-8", "surrogatepass"))
    refs: list[int] = []
    for code in codes:
        if not code:
            raise ValueError(f"an empty code in code table {columns[0]!r}")
        row = rows[code]
        for k, col in enumerate(columns):
            v = code if k == 0 else row.get(col)
            if not v:
                refs.append(0)
                continue
            sid = ids.get(v)
            if sid is None:
                sid = ids[v] = len(strings)
                strings.append(v)
            refs.append(sid)
    width = ref_width(len(strings))
    blobs = [s.encode("utf-8", "surrogatepass") for s in strings]
    offsets = [0]
    for b in blobs:
        offsets.append(offsets[-1] + len(b))
    body = (
        struct.pack(f"<{len(offsets)}Q", *offsets)
        + b"".join(blobs)
        + struct.pack(f"<{len(refs)}{_CODES[width]}", *refs)
    )
    return _format.SectionData(
        _format.KIND_CODE_TABLE,
        body,
        flags=0,
        params=(len(strings), len(codes), len(columns)),
    )


class CodeTable(Mapping[str, Mapping[str, str]]):
    """Read side of one code table: code -> its row (column -> value, read
    only, empty values left out), in the order of the codes' UTF-8 bytes.

    Parameters
    ----------
    buf : mmap.mmap or bytes-like
        The mapping the section is in.
    section : hashlookup.store.format.Section
        The code table section.
    path : str
        The file, for error messages.

    Raises
    ------
    IndexFormatError
        The section's parameters, size or column names are wrong.

    Attributes
    ----------
    name : str
        The table's name: its key column, the attribute its codes are values
        of.
    columns : tuple of str
        The column names, the key first.
    """

    def __init__(self, buf: Any, section: Any, path: str) -> None:
        self._buf = buf
        self._path = path
        nstr, nrows, ncols = section.params
        if not 1 <= ncols <= min(MAX_NAMES, nstr) or nrows > MAX_ROWS:
            raise self._fail(
                f"{ncols} columns, {nrows} rows and {nstr} strings are not a table"
            )
        table = 8 * (nstr + 1)
        if section.length < table:
            raise self._fail(f"{nstr} offsets do not fit in {section.length} bytes")
        self._base = section.offset
        self._nstr = nstr
        self._text = section.offset + table
        text_len = self._text_len = self._offset(nstr)
        width = ref_width(nstr)
        if self._offset(0) != 0 or section.length != table + text_len + (
            nrows * ncols * width
        ):
            raise self._fail(
                f"length {section.length} is not that of {nstr} strings of "
                f"{text_len} bytes and {nrows} x {ncols} references"
            )
        self._refs = self._text + text_len
        self._rows = int(nrows)
        self._row = struct.Struct(f"<{ncols}{_CODES[width]}")
        self._key_ref = struct.Struct(f"<{_CODES[width]}")
        self._cache: dict[str, Mapping[str, str] | None] = {}
        self._objects: dict[str, dict[str, str] | None] = {}
        self.columns = tuple(self._string(i) for i in range(ncols))
        try:
            check_names(self.columns)
        except ValueError as e:
            raise self._fail(str(e)) from None
        self.name = self.columns[0]

    def _fail(self, msg: str) -> IndexFormatError:
        return IndexFormatError(f"{self._path}: code table: {msg}")

    def _offset(self, i: int) -> int:
        return int(_OFFSET.unpack_from(self._buf, self._base + 8 * i)[0])

    def _string(self, i: int) -> str:
        lo, hi = self._offset(i), self._offset(i + 1)
        if not 0 <= lo <= hi <= self._text_len:
            raise self._fail(f"string {i} out of bounds")
        try:
            return bytes(self._buf[self._text + lo : self._text + hi]).decode("utf-8")
        except UnicodeDecodeError:
            raise self._fail(f"string {i} is not UTF-8") from None

    def _refs_of(self, row: int) -> tuple[int, ...]:
        refs: tuple[int, ...] = self._row.unpack_from(
            self._buf, self._refs + row * self._row.size
        )
        for sid in refs:
            if sid and not len(self.columns) <= sid < self._nstr:
                raise self._fail(
                    f"row {row} refers to string {sid} (values are "
                    f"{len(self.columns)}..{self._nstr - 1})"
                )
        return refs

    def _code(self, row: int) -> str:
        sid = self._refs_of(row)[0]
        if not sid:
            raise self._fail(f"row {row} has no code")
        return self._string(sid)

    def _key_bytes(self, row: int) -> bytes:
        """The UTF-8 bytes of a row's code (binary search: only its key
        reference and bytes are read, nothing decoded)."""
        (sid,) = self._key_ref.unpack_from(self._buf, self._refs + row * self._row.size)
        if not len(self.columns) <= sid < self._nstr:
            raise self._fail(f"row {row} has no code or refers to string {sid}")
        lo, hi = self._offset(sid), self._offset(sid + 1)
        if not 0 <= lo <= hi <= self._text_len:
            raise self._fail(f"string {sid} out of bounds")
        return bytes(self._buf[self._text + lo : self._text + hi])

    def _row_mapping(self, row: int) -> Mapping[str, str]:
        return Attributes(
            {
                col: self._string(sid)
                for col, sid in zip(self.columns, self._refs_of(row), strict=True)
                if sid
            }
        )

    def __getitem__(self, code: str) -> Mapping[str, str]:
        if not isinstance(code, str):
            raise KeyError(code)
        try:
            got = self._cache[code]
        except KeyError:
            got = self._find(code)
            if len(self._cache) >= CACHE_ROWS:
                self._cache.clear()
            self._cache[code] = got
        if got is None:
            raise KeyError(code)
        return got

    def expanded(self, code: str) -> dict[str, str] | None:
        """The row of `code` with every column ("" where empty), as the
        lookup service shows it (CIRCL's object of an NSRL code), or None.

        Parameters
        ----------
        code : str
            A code (the key column's value).

        Returns
        -------
        dict[str, str] or None
            A dict shared by every call for the code (cached): read it, do
            not change it.

        Raises
        ------
        IndexFormatError
            The table is damaged where the search reads it.
        """
        try:
            return self._objects[code]
        except KeyError:
            pass
        row = self.get(code)
        got = None if row is None else {c: row.get(c, "") for c in self.columns}
        if len(self._objects) >= CACHE_ROWS:
            self._objects.clear()
        self._objects[code] = got
        return got

    def _find(self, code: str) -> Mapping[str, str] | None:
        key = code.encode("utf-8", "surrogatepass")
        # the rows are sorted by their codes' bytes: a binary search reads
        # about log2(rows) codes, no index held in memory
        at = bisect.bisect_left(range(self._rows), key, key=self._key_bytes)
        if at < self._rows and self._key_bytes(at) == key:
            return self._row_mapping(at)
        return None

    def __len__(self) -> int:
        return self._rows

    def __iter__(self) -> Iterator[str]:
        return (self._code(r) for r in range(self._rows))

    def verify(self) -> None:
        """Check every string, every reference and the order of the codes.

        Raises
        ------
        IndexFormatError
            What is wrong and where.
        """
        for i in range(self._nstr):
            if self._offset(i) > self._offset(i + 1):
                raise self._fail(f"string {i} out of bounds")
            self._string(i)
        previous = b""
        for r in range(self._rows):
            code = self._code(r).encode("utf-8")
            if r and code <= previous:
                raise self._fail(f"row {r}: codes are not in strictly increasing order")
            previous = code
            self._row_mapping(r)


def open_tables(buf: Any, header: _format.Header, path: str) -> dict[str, CodeTable]:
    """The code tables of a mapped file, by name ({} when it has none).

    Parameters
    ----------
    buf : mmap.mmap or bytes-like
        The file's mapping.
    header : hashlookup.store.format.Header
        Its validated header.
    path : str
        The file, for error messages.

    Returns
    -------
    dict[str, CodeTable]
        Table name (its key column) -> table.

    Raises
    ------
    IndexFormatError
        A table's section is wrong, or two tables have one name.
    """
    out: dict[str, CodeTable] = {}
    for s in _format.find_sections(header, _format.KIND_CODE_TABLE):
        t = CodeTable(buf, s, path)
        if t.name in out:
            raise IndexFormatError(f"{path}: two code tables named {t.name!r}")
        out[t.name] = t
    return out
